/* util.c: the base layer's helpers. */
#include "../test.h"
#include "codictate/err.h"
#include "codictate/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

/* 0 and negative PIDs name process groups: refused, and nothing is sent (this
 * process would otherwise receive SIGUSR1 through its group). */
TEST(proc_signal_refuses_group_pids)
{
    struct sigaction sa = {0};

    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    got_usr1 = 0;
    CHECK_INT(cdt_proc_signal(0, SIGUSR1), CDT_EINVAL);
    CHECK_INT(cdt_proc_signal(-1, SIGUSR1), CDT_EINVAL);
    CHECK_INT(cdt_proc_signal(-(pid_t)getpgrp(), SIGUSR1), CDT_EINVAL);
    CHECK_INT(got_usr1, 0);
    CHECK_INT(cdt_proc_signal(getpid(), SIGUSR1), 0);
    CHECK_INT(got_usr1, 1);
}

TEST(proc_signal_child_and_gone)
{
    int st;
    pid_t child = fork();

    REQUIRE(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    CHECK_INT(cdt_proc_signal(child, 0), 0);
    CHECK_INT(cdt_proc_signal(child, SIGKILL), 0);
    CHECK(waitpid(child, &st, 0) == child);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK_INT(cdt_proc_signal(child, 0), CDT_ENOTFOUND); /* reaped: gone */
}

/* ---- clock ---- */

TEST(clock_is_monotonic_and_units_agree)
{
    struct timespec ts = {0, 2 * 1000000}; /* 2 ms */
    double a = cdt_now_ms();
    int64_t na = cdt_now_ns();
    double b, d;
    int64_t nb;

    nanosleep(&ts, NULL);
    b = cdt_now_ms();
    nb = cdt_now_ns();
    CHECK(b - a >= 2.0);
    CHECK(nb - na >= 2000000);
    /* The two read the same clock: ms and ns/1e6 agree within this test's time. */
    d = cdt_now_ms() - (double)cdt_now_ns() / 1e6;
    CHECK(fabs(d) < 1000.0);
}

TEST(ms_to_timespec)
{
    struct timespec ts = cdt_ms_to_timespec(1500.25);

    CHECK_INT(ts.tv_sec, 1);
    CHECK(labs(ts.tv_nsec - 500250000L) < 1000); /* double rounding only */
    ts = cdt_ms_to_timespec(0);
    CHECK_INT(ts.tv_sec, 0);
    CHECK_INT(ts.tv_nsec, 0);
    ts = cdt_ms_to_timespec(-5);
    CHECK_INT(ts.tv_sec, 0);
    CHECK_INT(ts.tv_nsec, 0);
    ts = cdt_ms_to_timespec(999.9999999999);
    CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
    /* Round trip with the clock: a deadline 50 ms ahead, as a timespec, is that
     * instant of CLOCK_MONOTONIC (no timing involved: a busy machine cannot fail it). */
    {
        double now = cdt_now_ms();
        struct timespec at = cdt_ms_to_timespec(now + 50);

        CHECK(fabs((double)at.tv_sec * 1e3 + (double)at.tv_nsec / 1e6 - (now + 50)) < 1e-3);
    }
}

/* ---- buffer ---- */

TEST(buf_append_and_take)
{
    struct cdt_buf b = {0};
    char *p;

    CHECK(b.data == NULL);
    CHECK_INT(cdt_buf_reserve(&b, 0), 0); /* only makes data non-NULL */
    REQUIRE(b.data != NULL);
    CHECK_STR(b.data, "");
    CHECK_INT(b.len, 0);
    CHECK(b.cap >= 256);
    CHECK_INT(cdt_buf_appends(&b, "hello"), 0);
    CHECK_INT(cdt_buf_append(&b, ", world", 7), 0);
    CHECK_INT(cdt_buf_append(&b, NULL, 0), 0);
    CHECK_STR(b.data, "hello, world");
    CHECK_INT(b.len, 12);
    /* Bytes with a NUL inside are kept; len counts them. */
    CHECK_INT(cdt_buf_append(&b, "a\0b", 3), 0);
    CHECK_INT(b.len, 15);
    CHECK(memcmp(b.data + 12, "a\0b", 4) == 0);
    cdt_buf_truncate(&b, 5);
    CHECK_STR(b.data, "hello");
    cdt_buf_truncate(&b, 99); /* longer than the contents: no-op */
    CHECK_INT(b.len, 5);
    p = cdt_buf_take(&b);
    CHECK_STR(p, "hello");
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
    free(p);
    CHECK(cdt_buf_take(&b) == NULL); /* nothing reserved: NULL */
    cdt_buf_cleanup(&b);
    cdt_buf_cleanup(NULL);
}

TEST(buf_grows_and_stays_terminated)
{
    struct cdt_buf b;
    size_t caps = 0, last_cap = 0;

    cdt_buf_init(&b);
    for (int i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);

        REQUIRE(cdt_buf_append(&b, &c, 1) == 0);
        REQUIRE(b.cap > b.len && b.data[b.len] == '\0');
        if (b.cap != last_cap) {
            caps++;
            last_cap = b.cap;
        }
    }
    CHECK_INT(b.len, 100000);
    CHECK(b.data[99999] == 'a' + 99999 % 26);
    CHECK(caps <= 10); /* doubling: 256 .. 131072 */
    /* reserve gives exactly the room it promises: len + extra + 1 <= cap. */
    CHECK_INT(cdt_buf_reserve(&b, 1000000), 0);
    CHECK(b.cap >= b.len + 1000000 + 1);
    cdt_buf_truncate(&b, 0);
    CHECK_STR(b.data, "");
    CHECK_INT(cdt_buf_reserve(&b, SIZE_MAX), CDT_ENOMEM); /* overflow: refused, unchanged */
    CHECK(b.data != NULL && b.len == 0);
    cdt_buf_cleanup(&b);
    CHECK(b.data == NULL && b.cap == 0);
}

/* ---- environment and parsing ---- */

TEST(env_getters)
{
    unsetenv("CDT_TEST_UTIL_ENV");
    CHECK_STR(cdt_env_str("CDT_TEST_UTIL_ENV", "def"), "def");
    CHECK(cdt_env_str("CDT_TEST_UTIL_ENV", NULL) == NULL);
    CHECK_INT(cdt_env_long("CDT_TEST_UTIL_ENV", 0, 10, 7), 7);
    setenv("CDT_TEST_UTIL_ENV", "", 1); /* empty counts as unset */
    CHECK_STR(cdt_env_str("CDT_TEST_UTIL_ENV", "def"), "def");
    CHECK_INT(cdt_env_long("CDT_TEST_UTIL_ENV", 0, 10, 7), 7);
    setenv("CDT_TEST_UTIL_ENV", "5", 1);
    CHECK_STR(cdt_env_str("CDT_TEST_UTIL_ENV", "def"), "5");
    CHECK_INT(cdt_env_long("CDT_TEST_UTIL_ENV", 0, 10, 7), 5);
    setenv("CDT_TEST_UTIL_ENV", "11", 1); /* out of range */
    CHECK_INT(cdt_env_long("CDT_TEST_UTIL_ENV", 0, 10, 7), 7);
    setenv("CDT_TEST_UTIL_ENV", "5x", 1); /* not a whole number (atoi would say 5) */
    CHECK_INT(cdt_env_long("CDT_TEST_UTIL_ENV", 0, 10, 7), 7);
    setenv("CDT_TEST_UTIL_ENV", "-3", 1);
    CHECK_INT(cdt_env_long("CDT_TEST_UTIL_ENV", -5, 10, 7), -3);
    unsetenv("CDT_TEST_UTIL_ENV");
}

TEST(parse_long_is_checked)
{
    long v = 42;

    CHECK_INT(cdt_parse_long("17", 0, 100, &v), 0);
    CHECK_INT(v, 17);
    CHECK_INT(cdt_parse_long("-100", -100, 100, &v), 0);
    CHECK_INT(v, -100);
    v = 42;
    CHECK_INT(cdt_parse_long(NULL, 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("", 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long(" ", 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("+", 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("12 ", 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("1e3", 0, 10000, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("101", 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("-1", 0, 100, &v), CDT_EINVAL);
    CHECK_INT(cdt_parse_long("99999999999999999999999", LONG_MIN, LONG_MAX, &v), CDT_EINVAL);
    CHECK_INT(v, 42); /* unchanged by every failure */
}

/* ---- files ---- */

static void tmp_root(char *buf, size_t cap)
{
    const char *t = cdt_env_str("TMPDIR", "/tmp");

    snprintf(buf, cap, "%s/cdt-util-XXXXXX", t);
    if (!mkdtemp(buf))
        buf[0] = '\0';
}

TEST(mkdir_p_creates_and_refuses)
{
    char root[256], path[512], file[512];
    struct stat st;
    FILE *f;

    tmp_root(root, sizeof(root));
    REQUIRE(root[0]);
    snprintf(path, sizeof(path), "%s/a/b//c/", root);
    CHECK_INT(cdt_mkdir_p(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/a/b/c", root);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK_INT(st.st_mode & 0777, 0700);
    CHECK_INT(cdt_mkdir_p(path, 0700), 0); /* exists: fine */
    CHECK_INT(cdt_mkdir_p("/", 0755), 0);

    /* A file in the way, as the path or as a parent. */
    snprintf(file, sizeof(file), "%s/file", root);
    f = fopen(file, "w");
    REQUIRE(f);
    fclose(f);
    errno = 0;
    CHECK_INT(cdt_mkdir_p(file, 0700), CDT_EEXISTS);
    CHECK_INT(errno, EEXIST);
    snprintf(path, sizeof(path), "%s/file/sub", root);
    CHECK_INT(cdt_mkdir_p(path, 0700), CDT_EEXISTS);
    CHECK_INT(cdt_mkdir_p("", 0700), CDT_EINVAL);
    CHECK_INT(cdt_mkdir_p(NULL, 0700), CDT_EINVAL);

    /* No permission (root may write anywhere: skip then). */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/ro", root);
        CHECK_INT(cdt_mkdir_p(path, 0500), 0);
        snprintf(path, sizeof(path), "%s/ro/x/y", root);
        CHECK_INT(cdt_mkdir_p(path, 0700), CDT_EPERM);
        CHECK_INT(errno, EACCES);
        snprintf(path, sizeof(path), "%s/ro", root);
        chmod(path, 0700);
    }
    snprintf(path, sizeof(path), "rm -rf '%s'", root);
    CHECK_INT(system(path), 0);
}

/* ---- text ---- */

TEST(trim_both_ends)
{
    char a[] = " \t\r\n\f\vword  two\n\v", b[] = "   ", c[] = "", d[] = "x", e[] = "\xC2\xA0nbsp ";

    CHECK_STR(cdt_trim(a), "word  two");
    CHECK_STR(cdt_trim(b), "");
    CHECK_STR(cdt_trim(c), "");
    CHECK_STR(cdt_trim(d), "x");
    CHECK_STR(cdt_trim(e), "\xC2\xA0nbsp"); /* ASCII whitespace only */
}

/* Tokens and ids: 2 hex digits a byte, NUL-terminated, different each time. */
TEST(random_hex)
{
    char a[33], b[33], big[2 * 100 + 1];

    REQUIRE(cdt_random_hex(a, 16) == 0);
    REQUIRE(cdt_random_hex(b, 16) == 0);
    CHECK_INT((int)strlen(a), 32);
    CHECK_INT((int)strspn(a, "0123456789abcdef"), 32);
    CHECK(strcmp(a, b) != 0);
    REQUIRE(cdt_random_hex(big, 100) == 0); /* more than one read */
    CHECK_INT((int)strlen(big), 200);
    CHECK_INT((int)strspn(big, "0123456789abcdef"), 200);
}

int main(void)
{
    RUN(clock_is_monotonic_and_units_agree);
    RUN(ms_to_timespec);
    RUN(buf_append_and_take);
    RUN(buf_grows_and_stays_terminated);
    RUN(env_getters);
    RUN(parse_long_is_checked);
    RUN(mkdir_p_creates_and_refuses);
    RUN(trim_both_ends);
    RUN(proc_signal_refuses_group_pids);
    RUN(proc_signal_child_and_gone);
    RUN(random_hex);
    return TEST_END();
}
