/* Machine facts. Memory from /proc/meminfo (sysctl on macOS), disk from statvfs,
 * CPUs from the affinity mask, CPU features from ggml's own detection (what the
 * engines will actually use), versions from the engines themselves. */
#include "codictate/sysinfo.h"

#include <errno.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <whisper.h>
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#ifndef CDT_LLAMA_COMMIT
#define CDT_LLAMA_COMMIT "unknown"
#endif
#ifndef CDT_ENGINES_AMX
#define CDT_ENGINES_AMX "unknown"
#endif
#ifndef CDT_WHISPER_VERSION
#define CDT_WHISPER_VERSION "unknown"
#endif

#define CDT_MEMINFO_MAX 65536 /* bytes of /proc/meminfo read */

int cdt_sysinfo_parse_meminfo(const char *text, uint64_t *bytes)
{
    const char *p = text;

    *bytes = 0;
    while (p && *p) {
        if (strncmp(p, "MemTotal:", 9) == 0) {
            char *end;
            unsigned long long kb;

            p += 9;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p < '0' || *p > '9')
                return CDT_EFORMAT;
            errno = 0;
            kb = strtoull(p, &end, 10);
            if (errno || end == p || kb > UINT64_MAX / 1024)
                return CDT_EFORMAT;
            while (*end == ' ' || *end == '\t')
                end++;
            if (strncmp(end, "kB", 2) != 0)
                return CDT_EFORMAT;
            *bytes = (uint64_t)kb * 1024;
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return CDT_EFORMAT;
}

int cdt_sysinfo_total_ram(uint64_t *bytes)
{
#ifdef __APPLE__
    uint64_t mem = 0;
    size_t len = sizeof(mem);

    *bytes = 0;
    if (sysctlbyname("hw.memsize", &mem, &len, NULL, 0) != 0)
        return CDT_EIO;
    *bytes = mem;
    return 0;
#else
    char *buf;
    size_t n;
    FILE *f;
    int rc;

    *bytes = 0;
    f = fopen("/proc/meminfo", "r");
    if (!f)
        return CDT_EIO;
    buf = malloc(CDT_MEMINFO_MAX);
    if (!buf) {
        fclose(f);
        return CDT_ENOMEM;
    }
    n = fread(buf, 1, CDT_MEMINFO_MAX - 1, f);
    fclose(f);
    buf[n] = '\0';
    rc = cdt_sysinfo_parse_meminfo(buf, bytes);
    free(buf);
    return rc;
#endif
}

int cdt_sysinfo_free_disk(const char *path, uint64_t *bytes)
{
    struct statvfs st;

    *bytes = 0;
    if (!path)
        return CDT_EINVAL;
    if (statvfs(path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR ? CDT_ENOTFOUND : CDT_EIO;
    *bytes = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    return 0;
}

uint64_t cdt_sysinfo_process_rss(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;

    if (!f)
        return 0;
    n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

int cdt_sysinfo_cpu_count(void)
{
#if defined(__linux__)
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#ifdef CDT_ENGINES_SHARED
static void load_backends_once(void)
{
    /* Where the engines were built (scripts/engines.sh installs the modules next to
     * the peer tools), else next to the executable and in the working directory. */
    if (ggml_backend_reg_count() == 0)
        ggml_backend_load_all_from_path(CDT_GGML_BACKEND_DIR);
    if (ggml_backend_reg_count() == 0)
        ggml_backend_load_all();
}
#endif

void cdt_sysinfo_load_backends(void)
{
#ifdef CDT_ENGINES_SHARED
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, load_backends_once);
#endif
}

/* Appends `name` to the space-separated list buf[0..len) (written while it fits in
 * cap); returns the length the list then needs. */
static size_t add_feature(char *buf, size_t cap, size_t len, const char *name)
{
    size_t n = strlen(name) + (len ? 1 : 0);

    if (len + n < cap)
        snprintf(buf + len, cap - len, "%s%s", len ? " " : "", name);
    return len + n;
}

#ifdef CDT_ENGINES_SHARED
/* Backends as modules: the CPU module reports what it was built for and detected. */
size_t cdt_sysinfo_cpu_features(char *buf, size_t cap)
{
    const struct ggml_backend_feature *f = NULL;
    ggml_backend_get_features_t get;
    ggml_backend_reg_t reg;
    size_t len = 0;

    if (cap > 0)
        buf[0] = '\0';
    cdt_sysinfo_load_backends();
    reg = ggml_backend_reg_by_name("CPU");
    get = reg ? (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(
                    reg, "ggml_backend_get_features")
              : NULL;
    if (get)
        f = get(reg);
    for (; f && f->name; f++)
        if (f->value && strcmp(f->value, "1") == 0)
            len = add_feature(buf, cap, len, f->name);
    return len;
}
#else
size_t cdt_sysinfo_cpu_features(char *buf, size_t cap)
{
    static const struct {
        const char *name;
        int (*has)(void);
    } features[] = {
        {"SSE3", ggml_cpu_has_sse3},
        {"SSSE3", ggml_cpu_has_ssse3},
        {"AVX", ggml_cpu_has_avx},
        {"AVX2", ggml_cpu_has_avx2},
        {"AVX_VNNI", ggml_cpu_has_avx_vnni},
        {"BMI2", ggml_cpu_has_bmi2},
        {"F16C", ggml_cpu_has_f16c},
        {"FMA", ggml_cpu_has_fma},
        {"AVX512", ggml_cpu_has_avx512},
        {"AVX512_VBMI", ggml_cpu_has_avx512_vbmi},
        {"AVX512_VNNI", ggml_cpu_has_avx512_vnni},
        {"AVX512_BF16", ggml_cpu_has_avx512_bf16},
        {"AMX_INT8", ggml_cpu_has_amx_int8},
        {"NEON", ggml_cpu_has_neon},
        {"ARM_FMA", ggml_cpu_has_arm_fma},
        {"FP16_VA", ggml_cpu_has_fp16_va},
        {"DOTPROD", ggml_cpu_has_dotprod},
        {"MATMUL_INT8", ggml_cpu_has_matmul_int8},
        {"SVE", ggml_cpu_has_sve},
        {"SME", ggml_cpu_has_sme},
        {"RISCV_V", ggml_cpu_has_riscv_v},
        {"VSX", ggml_cpu_has_vsx},
        {"WASM_SIMD", ggml_cpu_has_wasm_simd},
        {"LLAMAFILE", ggml_cpu_has_llamafile},
    };
    size_t len = 0;

    if (cap > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
        if (features[i].has())
            len = add_feature(buf, cap, len, features[i].name);
    return len;
}
#endif

struct cdt_engine_versions cdt_sysinfo_engine_versions(void)
{
    struct cdt_engine_versions v;

    v.llama_commit = CDT_LLAMA_COMMIT;
    v.ggml_version = ggml_version();
    v.ggml_commit = ggml_commit();
    v.whisper_version = whisper_version();
    v.amx = CDT_ENGINES_AMX;
    if (!v.whisper_version || !*v.whisper_version)
        v.whisper_version = CDT_WHISPER_VERSION;
    return v;
}
