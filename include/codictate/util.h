/* Small helpers of the base layer that every other module may use: the monotonic
 * clock, a growable byte buffer, environment variables with defaults, checked
 * number parsing, `mkdir -p`, whitespace trimming, and signalling a process.
 * Write them here once; never copy one into a module.
 *
 * Processes: a PID held in a variable is checked before it is signalled, because
 * kill(0, sig) signals the caller's whole process group (a test runner included)
 * and kill(-1, sig) every process the caller may signal.
 *
 * Thread-safety: every function is thread-safe; a struct cdt_buf is not shared
 * between threads without a lock. The cdt_env_* getters are as safe as getenv(3):
 * no thread may setenv/unsetenv at the same time. */
#ifndef CODICTATE_UTIL_H
#define CODICTATE_UTIL_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the monotonic clock ----
 * CLOCK_MONOTONIC: never steps with the wall clock, so differences are durations.
 * Inline because engine loops read it per token. */

/* Now, in nanoseconds since an arbitrary start. */
static inline int64_t cdt_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Now, in milliseconds (fractional) since an arbitrary start. */
static inline double cdt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The instant `ms` of the cdt_now_ms() clock as a timespec: the absolute time for
 * pthread_cond_timedwait on a condition variable whose clock attribute is
 * CLOCK_MONOTONIC (pthread_condattr_setclock). Negative values give 0. */
struct timespec cdt_ms_to_timespec(double ms);

/* ---- a growable byte buffer ----
 * Embedded and zero-initialised (`struct cdt_buf b = {0};` or cdt_buf_init), then
 * appended to; `data` stays NUL-terminated once anything was reserved, so text in
 * it is a C string. The buffer owns `data`: cdt_buf_cleanup frees it, cdt_buf_take
 * hands it over. Caps on outside input are the caller's: check len + n against the
 * named cap before appending. */
struct cdt_buf {
    char *data; /* NULL until the first reserve; then NUL-terminated at data[len] */
    size_t len; /* bytes in use, not counting the NUL */
    size_t cap; /* bytes allocated (the first allocation is at least 256) */
};

/* Sets an empty buffer (same as zeroing it). */
void cdt_buf_init(struct cdt_buf *b);

/* Frees data and leaves an empty buffer. NULL: no-op. */
void cdt_buf_cleanup(struct cdt_buf *b);

/* Hands over data (NULL when nothing was ever reserved) and leaves an empty
 * buffer. The caller frees the result with free(). */
char *cdt_buf_take(struct cdt_buf *b);

/* The slow path of cdt_buf_reserve (grows by doubling). Internal. */
CDT_NODISCARD int cdt__buf_grow(struct cdt_buf *b, size_t extra);

/* Makes room for `extra` more bytes plus the NUL (cap >= len + extra + 1), so
 * data[len .. len + extra] may be written. reserve(b, 0) only makes data non-NULL.
 * Returns 0 or CDT_ENOMEM (the buffer is unchanged). */
CDT_NODISCARD static inline int cdt_buf_reserve(struct cdt_buf *b, size_t extra)
{
    if (extra < b->cap - b->len) /* cap > len whenever cap > 0 */
        return 0;
    return cdt__buf_grow(b, extra);
}

/* Appends n bytes (any bytes, NULs included) and keeps the NUL after them.
 * Returns 0 or CDT_ENOMEM (the buffer is unchanged). */
CDT_NODISCARD static inline int cdt_buf_append(struct cdt_buf *b, const void *bytes, size_t n)
{
    if (cdt_buf_reserve(b, n) != 0)
        return CDT_ENOMEM;
    if (n)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Appends the C string s. Returns 0 or CDT_ENOMEM. */
CDT_NODISCARD static inline int cdt_buf_appends(struct cdt_buf *b, const char *s)
{
    return cdt_buf_append(b, s, strlen(s));
}

/* Cuts the contents to their first `len` bytes (no-op when len >= b->len); the
 * allocation is kept. */
static inline void cdt_buf_truncate(struct cdt_buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

/* ---- environment ---- */

/* The value of environment variable `name` when it is set and not empty, else
 * `def` (which may be NULL). The result is borrowed: from the environment until it
 * next changes, or `def`. */
const char *cdt_env_str(const char *name, const char *def);

/* The value of `name` as a decimal integer in [lo, hi], else `def`: unset, empty,
 * not a whole number (checked parsing, no atoi) or out of range all give `def`. */
long cdt_env_long(const char *name, long lo, long hi, long def);

/* ---- parsing ---- */

/* Parses all of s as a decimal long (leading whitespace and a sign allowed, as
 * strtol) into *out. Returns 0, or CDT_EINVAL when s is NULL, empty, has anything
 * after the number, overflows a long or lies outside [lo, hi] (*out unchanged). */
CDT_NODISCARD int cdt_parse_long(const char *s, long lo, long hi, long *out);

/* ---- files ---- */

/* Creates directory `path` and its missing parents, each with `mode` (before the
 * umask), like `mkdir -p`. An existing directory (or a link to one) is fine.
 * Returns 0, CDT_EINVAL (NULL or empty path), CDT_ENOMEM, CDT_EEXISTS (the path or
 * one of its parents exists and is not a directory), CDT_EPERM (not allowed,
 * read-only file system), CDT_ENOSPACE, or CDT_EIO (anything else). On failure
 * errno is left as the failing system call set it, for a message. */
CDT_NODISCARD int cdt_mkdir_p(const char *path, mode_t mode);

/* Fills out with 2 * bytes random hex digits and a NUL (out: 2 * bytes + 1 bytes),
 * from the kernel's generator: tokens and ids others must not guess. Returns 0 or
 * CDT_EIO (no randomness; out is then ""). */
CDT_NODISCARD int cdt_random_hex(char *out, size_t bytes);

/* ---- text ---- */

/* Removes ASCII whitespace (space, \t, \n, \v, \f, \r) from both ends of the C
 * string s, in place. Returns s. */
char *cdt_trim(char *s);

/* The per-user runtime state directory (PID and port files): $XDG_RUNTIME_DIR/
 * codictate, else ~/.cache/codictate, else /tmp/codictate-<uid>. Not created, but
 * for the last: made 0700 there when missing, and when it is not this user's own
 * directory closed to others, CDT_STATE_DIR_UNSAFE instead (nothing can be created
 * or written under it: the verbs go on without state files). */
#define CDT_STATE_DIR_UNSAFE "/dev/null/codictate-state-dir-not-safe"
void cdt_state_dir(char *buf, size_t cap);

/* codictate's read-only data (the built-in model, the eval cases): $CODICTATE_SHARE_DIR,
 * else <directory of this executable>/CDT_SHARE_REL (../share/codictate for an install
 * and for the build tree, which mirrors it). Returns 0 and the path when that directory
 * exists, CDT_ENOTFOUND otherwise (buf still holds the path looked at). */
CDT_NODISCARD int cdt_share_dir(char *buf, size_t cap);

/* ---- processes ---- */

/* Sends `sig` (0: only checks that the process exists) to the single process `pid`.
 * Returns 0 when sent, CDT_EINVAL when pid <= 0 (nothing is sent: 0 and negative
 * values name process groups), CDT_ENOTFOUND when no such process exists,
 * CDT_EPERM when it may not be signalled. The only place in codictate that calls
 * kill(2) on a PID from a variable (scripts/lint.sh checks it). */
int cdt_proc_signal(pid_t pid, int sig);

/* Whether process `pid` runs `codictate <verb>`: its /proc/<pid>/cmdline has
 * "codictate" in argv[0] and `verb` as a later argument. False when it does not,
 * is gone, or cannot be read. A PID file outlives the process it names, and the
 * number may since be another program's: check before signalling it. */
bool cdt_proc_is_codictate(pid_t pid, const char *verb);

#ifdef __cplusplus
}
#endif
#endif
