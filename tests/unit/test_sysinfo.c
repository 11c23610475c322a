#include "../test.h"
#include "codictate/sysinfo.h"

#include <ctype.h>

TEST(parse_meminfo)
{
    uint64_t b = 1;

    CHECK_INT(cdt_sysinfo_parse_meminfo("MemTotal:       24568456 kB\nMemFree: 1 kB\n", &b), 0);
    CHECK(b == UINT64_C(24568456) * 1024);
    CHECK_INT(cdt_sysinfo_parse_meminfo("Foo: 1 kB\nMemTotal:\t8000000 kB\n", &b), 0);
    CHECK(b == UINT64_C(8000000) * 1024);
    CHECK_INT(cdt_sysinfo_parse_meminfo("MemFree: 1 kB\n", &b), CDT_EFORMAT);
    CHECK(b == 0);
    CHECK_INT(cdt_sysinfo_parse_meminfo("MemTotal: lots kB\n", &b), CDT_EFORMAT);
    CHECK_INT(cdt_sysinfo_parse_meminfo("MemTotal: 12 MB\n", &b), CDT_EFORMAT);
    CHECK_INT(cdt_sysinfo_parse_meminfo("MemTotal: 99999999999999999999999 kB\n", &b), CDT_EFORMAT);
    CHECK_INT(cdt_sysinfo_parse_meminfo("", &b), CDT_EFORMAT);
}

TEST(total_ram)
{
    uint64_t b = 0;

    CHECK_INT(cdt_sysinfo_total_ram(&b), 0);
    CHECK(b > (UINT64_C(256) << 20));
}

TEST(free_disk)
{
    uint64_t b = 0;

    CHECK_INT(cdt_sysinfo_free_disk(".", &b), 0);
    CHECK(b > 0);
    CHECK_INT(cdt_sysinfo_free_disk("/no/such/dir/here", &b), CDT_ENOTFOUND);
    CHECK_INT(cdt_sysinfo_free_disk(NULL, &b), CDT_EINVAL);
}

TEST(cpu_count_and_features)
{
    char buf[512], small[8];
    size_t n, m;

    CHECK(cdt_sysinfo_cpu_count() >= 1);
    n = cdt_sysinfo_cpu_features(buf, sizeof(buf));
    CHECK_INT(n, strlen(buf));
#if defined(__x86_64__)
    CHECK(strstr(buf, "SSE3") != NULL);
#endif
    m = cdt_sysinfo_cpu_features(small, sizeof(small));
    CHECK_INT(m, n);
    CHECK(strlen(small) < sizeof(small));
}

TEST(engine_versions)
{
    struct cdt_engine_versions v = cdt_sysinfo_engine_versions();

    REQUIRE(v.llama_commit && v.ggml_version && v.whisper_version);
    CHECK_INT(strlen(v.llama_commit), 40);
    for (const char *p = v.llama_commit; *p; p++)
        CHECK(isxdigit((unsigned char)*p));
    CHECK(strchr(v.ggml_version, '.') != NULL);
    CHECK(strchr(v.whisper_version, '.') != NULL);
}

int main(void)
{
    RUN(parse_meminfo);
    RUN(total_ram);
    RUN(free_disk);
    RUN(cpu_count_and_features);
    RUN(engine_versions);
    return TEST_END();
}
