/* codictate error codes.
 *
 * Fallible functions return 0 on success or a negative enum cdt_err. The list
 * below is the only place codes are defined; values are never renumbered, new
 * codes are appended. Human detail lives in the handle that failed
 * (cdt_<x>_errmsg()), not in the code. */
#ifndef CODICTATE_ERR_H
#define CODICTATE_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CDT_NODISCARD    __attribute__((warn_unused_result))
#define CDT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CDT_NODISCARD
#define CDT_PRINTF(f, a)
#endif

/* X(NAME, value, message) */
#define CDT_ERR_MAP(X)                                                                             \
    X(INVAL, -1, "invalid argument")                                                               \
    X(NOMEM, -2, "out of memory")                                                                  \
    X(IO, -3, "input/output error")                                                                \
    X(NOTFOUND, -4, "not found")                                                                   \
    X(FORMAT, -5, "malformed or unsupported data")                                                 \
    X(TOOBIG, -6, "over a size limit")                                                             \
    X(ENGINE, -7, "inference engine failure")                                                      \
    X(BUSY, -8, "busy")                                                                            \
    X(TIMEOUT, -9, "timed out")                                                                    \
    X(CANCELED, -10, "canceled")                                                                   \
    X(NET, -11, "network error")                                                                   \
    X(NOSPACE, -12, "not enough disk space")                                                       \
    X(AUTH, -13, "not authorized")                                                                 \
    X(CHECKSUM, -14, "checksum mismatch")                                                          \
    X(STATE, -15, "not allowed in the current state")                                              \
    X(UNSUPPORTED, -16, "not supported")                                                           \
    X(EXISTS, -17, "already exists")                                                               \
    X(PERM, -18, "permission denied")                                                              \
    X(PROTOCOL, -19, "protocol error")

enum cdt_err {
    CDT_OK = 0,
#define CDT_ERR_ENUM_(name, value, msg) CDT_E##name = value,
    CDT_ERR_MAP(CDT_ERR_ENUM_)
#undef CDT_ERR_ENUM_
};

/* The message for an error code ("success" for 0, "unknown error" for a value not
 * in the list). Returns a static string; thread-safe. */
const char *cdt_strerror(int err);

/* The code's name without prefix ("INVAL"), "OK" for 0, NULL when unknown.
 * Static string; thread-safe. */
const char *cdt_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
