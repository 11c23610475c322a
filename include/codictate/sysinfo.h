/* Facts about the machine: memory, disk, CPUs, and the engines' versions.
 * All functions are thread-safe and never print. */
#ifndef CODICTATE_SYSINFO_H
#define CODICTATE_SYSINFO_H

#include "codictate/err.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Total physical memory in bytes (Linux: MemTotal of /proc/meminfo; macOS:
 * sysctl hw.memsize). Returns 0, CDT_EIO when it cannot be read, CDT_EFORMAT when
 * it cannot be parsed. */
CDT_NODISCARD int cdt_sysinfo_total_ram(uint64_t *bytes);

/* Parses the MemTotal line of a /proc/meminfo text into bytes. Returns 0 or
 * CDT_EFORMAT. (Exposed for tests.) */
CDT_NODISCARD int cdt_sysinfo_parse_meminfo(const char *text, uint64_t *bytes);

/* Bytes available to an unprivileged user on the filesystem holding `path`
 * (statvfs f_bavail × f_frsize). Returns 0, CDT_ENOTFOUND when path does not
 * exist, CDT_EIO otherwise. */
CDT_NODISCARD int cdt_sysinfo_free_disk(const char *path, uint64_t *bytes);

/* Resident set size of this process in bytes (Linux: /proc/self/statm; 0 when
 * unknown). */
uint64_t cdt_sysinfo_process_rss(void);

/* CPUs this process may run on (affinity mask; at least 1). */
int cdt_sysinfo_cpu_count(void);

/* The CPU features ggml detected and was built for, space-separated (e.g.
 * "SSE3 SSSE3 AVX AVX2 F16C FMA"), written into buf (always NUL-terminated when
 * cap > 0). Returns the length the full string needs, like snprintf. With the
 * backends as modules the list comes from the CPU module, so this loads them
 * (cdt_sysinfo_load_backends) and adds what that module reports (e.g. OPENMP). */
size_t cdt_sysinfo_cpu_features(char *buf, size_t cap);

/* Loads the engines' ggml backends (CPU, CUDA, ...) once per process where they are
 * loadable modules (engines built with CODICTATE_ENGINES_DL, the default with CUDA);
 * a no-op where they are linked in. Call before the first whisper or llama model
 * load; thread-safe. */
void cdt_sysinfo_load_backends(void);

/* Engine versions; static strings, valid for the process lifetime. */
struct cdt_engine_versions {
    const char *llama_commit;    /* llama.cpp git commit, 40 hex digits or "unknown" */
    const char *ggml_version;    /* ggml's version, e.g. "0.23.0" */
    const char *ggml_commit;     /* ggml's commit as ggml reports it */
    const char *whisper_version; /* whisper.cpp's version, e.g. "1.9.1" */
    /* What the engine build did about Intel AMX (scripts/engines.sh, CODICTATE_AMX):
     * "none" (the build machine's CPU has none), "off" (ggml's AMX kernels left
     * out: they crash in this llama.cpp, #20824), "patched" (kept, with the fix of
     * scripts/patches/ggml-amx-xfd.patch) or "unknown". */
    const char *amx;
};

struct cdt_engine_versions cdt_sysinfo_engine_versions(void);

#ifdef __cplusplus
}
#endif
#endif
