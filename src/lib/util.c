/* The base layer's small helpers (see util.h). Each exists once here so that no
 * module keeps its own copy. Nothing here logs or keeps state; failures are
 * negative enum cdt_err codes, with errno left for a caller's message where the
 * header says so. */
#include "codictate/util.h"
#include "codictate/err.h"
#include "err_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- clock ---- */

struct timespec cdt_ms_to_timespec(double ms)
{
    struct timespec ts = {0, 0};
    double s;

    if (!(ms > 0))
        return ts;
    s = ms / 1e3;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    } else if (ts.tv_nsec < 0) {
        ts.tv_nsec = 0;
    }
    return ts;
}

/* ---- buffer ---- */

void cdt_buf_init(struct cdt_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void cdt_buf_cleanup(struct cdt_buf *b)
{
    if (!b)
        return;
    free(b->data);
    cdt_buf_init(b);
}

char *cdt_buf_take(struct cdt_buf *b)
{
    char *p = b->data;

    cdt_buf_init(b);
    return p;
}

int cdt__buf_grow(struct cdt_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > SIZE_MAX - b->len - 1)
        return CDT_ENOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return CDT_ENOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return 0;
}

/* ---- environment and parsing ---- */

const char *cdt_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v && *v ? v : def;
}

long cdt_env_long(const char *name, long lo, long hi, long def)
{
    long v;

    return cdt_parse_long(getenv(name), lo, hi, &v) == 0 ? v : def;
}

int cdt_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return CDT_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return CDT_EINVAL;
    *out = v;
    return 0;
}

/* ---- files ---- */

static int mkdir_err(int e)
{
    return e == EEXIST || e == ENOTDIR ? CDT_EEXISTS : cdt__err_from_errno(e);
}

/* One mkdir; an existing directory counts as made. */
static int make_one(const char *dir, mode_t mode)
{
    struct stat st;

    if (mkdir(dir, mode) == 0)
        return 0;
    if (errno != EEXIST)
        return mkdir_err(errno);
    if (stat(dir, &st) != 0)
        return mkdir_err(errno);
    if (!S_ISDIR(st.st_mode)) {
        errno = EEXIST;
        return CDT_EEXISTS;
    }
    return 0;
}

int cdt_random_hex(char *out, size_t bytes)
{
    unsigned char rnd[64];
    size_t o = 0;

    out[0] = '\0';
    while (o < bytes) {
        size_t n = bytes - o < sizeof(rnd) ? bytes - o : sizeof(rnd);

        if (getrandom(rnd, n, 0) != (ssize_t)n) {
            out[0] = '\0';
            return CDT_EIO;
        }
        for (size_t i = 0; i < n; i++)
            snprintf(out + 2 * (o + i), 3, "%02x", rnd[i]);
        o += n;
    }
    return 0;
}

int cdt_mkdir_p(const char *path, mode_t mode)
{
    size_t n = path ? strlen(path) : 0;
    char *buf;
    int rc = 0;

    if (n == 0) {
        errno = EINVAL;
        return CDT_EINVAL;
    }
    buf = malloc(n + 1);
    if (!buf)
        return CDT_ENOMEM;
    memcpy(buf, path, n + 1);
    /* Each prefix that ends before a '/' (the root excepted), then the whole path. */
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/') /* "a//b", "a/": nothing new to make */
            continue;
        buf[i] = '\0';
        rc = make_one(buf, mode);
        if (i < n)
            buf[i] = '/';
    }
    free(buf);
    return rc;
}

/* ---- text ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

char *cdt_trim(char *s)
{
    size_t a = 0, b = strlen(s);

    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    memmove(s, s + a, b - a);
    s[b - a] = '\0';
    return s;
}

/* ---- processes ---- */

int cdt_proc_signal(pid_t pid, int sig)
{
    if (pid <= 0)
        return CDT_EINVAL;
    if (kill(pid, sig) == 0)
        return 0;
    return errno == ESRCH ? CDT_ENOTFOUND : errno == EPERM ? CDT_EPERM : CDT_EINVAL;
}

bool cdt_proc_is_codictate(pid_t pid, const char *verb)
{
    char path[64], buf[4096];
    bool exe, found = false;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (pid <= 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    exe = strstr(buf, "codictate") != NULL; /* argv[0] */
    for (char *a = buf + strlen(buf) + 1; a < buf + n; a += strlen(a) + 1)
        if (strcmp(a, verb) == 0)
            found = true;
    return exe && found;
}

#ifndef CDT_SHARE_REL
#define CDT_SHARE_REL "../share/codictate"
#endif

int cdt_share_dir(char *buf, size_t cap)
{
    const char *env = cdt_env_str("CODICTATE_SHARE_DIR", NULL);
    char exe[4096];
    struct stat st;
    ssize_t n;

    if (env) {
        snprintf(buf, cap, "%s", env);
    } else if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
        char *slash;

        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(buf, cap, "%s/%s", slash ? exe : ".", CDT_SHARE_REL);
    } else {
        snprintf(buf, cap, "%s", CDT_SHARE_REL);
    }
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return CDT_ENOTFOUND;
    if (realpath(buf, exe) && strlen(exe) < cap)
        snprintf(buf, cap, "%s", exe); /* no "bin/../" in the paths people see */
    return 0;
}

/* /tmp/codictate-<uid>, made 0700 when missing. /tmp is every user's: a directory
 * there that someone else made, or left open to others, could hold their links and
 * PID files (a PID file names the process we signal), so it is not used: the path
 * becomes one that no user can create or write into. */
static void tmp_state_dir(char *buf, size_t cap)
{
    struct stat st;

    snprintf(buf, cap, "/tmp/codictate-%d", (int)getuid());
    (void)mkdir(buf, 0700);
    if (lstat(buf, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0)
        snprintf(buf, cap, "%s", CDT_STATE_DIR_UNSAFE);
}

void cdt_state_dir(char *buf, size_t cap)
{
    const char *run = cdt_env_str("XDG_RUNTIME_DIR", NULL), *home = cdt_env_str("HOME", NULL);

    if (run)
        snprintf(buf, cap, "%s/codictate", run);
    else if (home)
        snprintf(buf, cap, "%s/.cache/codictate", home);
    else
        tmp_state_dir(buf, cap);
}
