/* Logging: one log object per process part (CLI, sidecar, app), levels,
 * printf-checked messages, and a callback the engines' log hooks
 * (llama_log_set, whisper_log_set, ggml_log_set) are pointed at so their output
 * lands in the same place at the right level.
 *
 * Quiet by default: only warnings and errors. Transcript and prompt text must never
 * be logged above CDT_LOG_DEBUG.
 *
 * Thread-safety: all functions may be called from any thread once the log exists;
 * cdt_log_free must not race with writers. */
#ifndef CODICTATE_LOG_H
#define CODICTATE_LOG_H

#include "codictate/err.h"

#include <ggml.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cdt_log_level {
    CDT_LOG_DEFAULT = 0, /* in params: CDT_LOG_WARN */
    CDT_LOG_ERROR = 1,
    CDT_LOG_WARN = 2,
    CDT_LOG_INFO = 3,
    CDT_LOG_DEBUG = 4, /* also the engines' informational output */
    CDT_LOG_TRACE = 5, /* the engines' debug output */
};

/* Receives one complete line (no trailing newline). `line` is borrowed for the
 * call. Called with the log's lock held: do not log from inside a sink. */
typedef void (*cdt_log_sink)(enum cdt_log_level level, const char *line, void *user_data);

struct cdt_log_params {
    enum cdt_log_level level; /* most verbose level written; 0: CDT_LOG_WARN */
    const char *prefix;       /* stderr prefix, copied; NULL: "codictate" */
    cdt_log_sink sink;        /* NULL: write "<prefix>: <level>: <line>" to stderr */
    void *user_data;          /* passed to sink */
};

struct cdt_log;

struct cdt_log_params cdt_log_default_params(void);

/* Creates a log. On success *out is set; the caller frees it with cdt_log_free.
 * Returns 0 or CDT_ENOMEM. */
CDT_NODISCARD int cdt_log_new(const struct cdt_log_params *p, struct cdt_log **out);

/* Frees the log; NULL is a no-op. Engines must have been pointed elsewhere first. */
void cdt_log_free(struct cdt_log *lg);

void cdt_log_set_level(struct cdt_log *lg, enum cdt_log_level level);
enum cdt_log_level cdt_log_get_level(const struct cdt_log *lg);

/* Nonzero when a message at `level` would be written. lg NULL → 0. */
int cdt_log_enabled(const struct cdt_log *lg, enum cdt_log_level level);

/* Writes one message (a trailing newline is optional; embedded newlines split it
 * into several lines). lg NULL is a no-op, so library code can log unconditionally. */
void cdt_log_write(struct cdt_log *lg, enum cdt_log_level level, const char *fmt, ...)
    CDT_PRINTF(3, 4);

#define CDT_LOG_E(lg, ...) cdt_log_write((lg), CDT_LOG_ERROR, __VA_ARGS__)
#define CDT_LOG_W(lg, ...) cdt_log_write((lg), CDT_LOG_WARN, __VA_ARGS__)
#define CDT_LOG_I(lg, ...) cdt_log_write((lg), CDT_LOG_INFO, __VA_ARGS__)
#define CDT_LOG_D(lg, ...) cdt_log_write((lg), CDT_LOG_DEBUG, __VA_ARGS__)

/* The engines' log callback (ggml_log_callback's signature): pass it with the log
 * as user_data to llama_log_set / whisper_log_set / ggml_log_set. Engine text comes
 * in fragments; they are joined into lines. Engine INFO maps to CDT_LOG_DEBUG,
 * engine DEBUG to CDT_LOG_TRACE. user_data NULL drops the text. */
void cdt_log_ggml(enum ggml_log_level level, const char *text, void *user_data);

/* Name of a level ("error", "warning", "info", "debug", "trace"). Static string. */
const char *cdt_log_level_name(enum cdt_log_level level);

#ifdef __cplusplus
}
#endif
#endif
