/* The log module. A log owns its level, its sink and a line buffer for engine
 * output, which arrives in fragments (ggml's GGML_LOG_LEVEL_CONT continues the
 * previous fragment). Invariant: `pending` holds at most one incomplete engine
 * line, flushed when a newline arrives, when it fills, or when the log is freed. */
#include "codictate/log.h"
#include "codictate/text.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CDT_LOG_LINE_MAX 2048 /* longest line before it is split, bytes */

struct cdt_log {
    pthread_mutex_t lock;
    enum cdt_log_level level;
    char prefix[64];
    cdt_log_sink sink;
    void *user_data;
    char pending[CDT_LOG_LINE_MAX]; /* incomplete engine line */
    size_t pending_len;
    enum cdt_log_level pending_level;
};

struct cdt_log_params cdt_log_default_params(void)
{
    struct cdt_log_params p = {0};
    p.level = CDT_LOG_WARN;
    return p;
}

const char *cdt_log_level_name(enum cdt_log_level level)
{
    switch (level) {
    case CDT_LOG_ERROR:
        return "error";
    case CDT_LOG_WARN:
        return "warning";
    case CDT_LOG_INFO:
        return "info";
    case CDT_LOG_DEBUG:
        return "debug";
    case CDT_LOG_TRACE:
        return "trace";
    case CDT_LOG_DEFAULT:
        break;
    }
    return "log";
}

static enum cdt_log_level clamp_level(enum cdt_log_level level)
{
    if (level == CDT_LOG_DEFAULT)
        return CDT_LOG_WARN;
    if (level > CDT_LOG_TRACE)
        return CDT_LOG_TRACE;
    return level;
}

int cdt_log_new(const struct cdt_log_params *p, struct cdt_log **out)
{
    struct cdt_log_params def = cdt_log_default_params();
    struct cdt_log *lg;

    *out = NULL;
    if (!p)
        p = &def;
    lg = calloc(1, sizeof(*lg));
    if (!lg)
        return CDT_ENOMEM;
    pthread_mutex_init(&lg->lock, NULL);
    lg->level = clamp_level(p->level);
    snprintf(lg->prefix, sizeof(lg->prefix), "%s", p->prefix ? p->prefix : "codictate");
    lg->sink = p->sink;
    lg->user_data = p->user_data;
    *out = lg;
    return 0;
}

/* Called with the lock held. */
static void emit(struct cdt_log *lg, enum cdt_log_level level, const char *line)
{
    char safe[CDT_LOG_LINE_MAX * 6]; /* each byte escaped at most 6 to 1 */

    /* Control characters escaped: a client's path, a model path or an engine's
     * message cannot move the cursor, retitle the terminal or hide what follows. */
    safe[0] = '\0';
    cdt_text_escape_controls_to(line, false, safe, sizeof(safe));
    if (lg->sink) {
        lg->sink(level, safe, lg->user_data);
        return;
    }
    fprintf(stderr, "%s: %s: %s\n", lg->prefix, cdt_log_level_name(level), safe);
}

/* Emits `text` split at newlines; a final fragment without newline is emitted too. */
static void emit_lines(struct cdt_log *lg, enum cdt_log_level level, const char *text)
{
    char line[CDT_LOG_LINE_MAX];

    while (*text) {
        size_t n = strcspn(text, "\n");
        size_t take = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

        memcpy(line, text, take);
        line[take] = '\0';
        emit(lg, level, line);
        text += take;
        if (take == n && *text == '\n')
            text++;
    }
}

static void flush_pending(struct cdt_log *lg)
{
    if (lg->pending_len == 0)
        return;
    lg->pending[lg->pending_len] = '\0';
    if (lg->pending_level <= lg->level)
        emit(lg, lg->pending_level, lg->pending);
    lg->pending_len = 0;
}

void cdt_log_free(struct cdt_log *lg)
{
    if (!lg)
        return;
    pthread_mutex_lock(&lg->lock);
    flush_pending(lg);
    pthread_mutex_unlock(&lg->lock);
    pthread_mutex_destroy(&lg->lock);
    free(lg);
}

void cdt_log_set_level(struct cdt_log *lg, enum cdt_log_level level)
{
    if (!lg)
        return;
    pthread_mutex_lock(&lg->lock);
    lg->level = clamp_level(level);
    pthread_mutex_unlock(&lg->lock);
}

enum cdt_log_level cdt_log_get_level(const struct cdt_log *lg)
{
    return lg ? lg->level : CDT_LOG_WARN;
}

int cdt_log_enabled(const struct cdt_log *lg, enum cdt_log_level level)
{
    /* An unlocked read of an int-sized field: at worst one message more or less
     * while the level changes. */
    return lg && level != CDT_LOG_DEFAULT && level <= lg->level;
}

void cdt_log_write(struct cdt_log *lg, enum cdt_log_level level, const char *fmt, ...)
{
    char buf[CDT_LOG_LINE_MAX];
    va_list ap;
    int n;

    if (!cdt_log_enabled(lg, level))
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    pthread_mutex_lock(&lg->lock);
    emit_lines(lg, level, buf);
    pthread_mutex_unlock(&lg->lock);
}

static enum cdt_log_level from_ggml(enum ggml_log_level level, enum cdt_log_level prev)
{
    switch (level) {
    case GGML_LOG_LEVEL_ERROR:
        return CDT_LOG_ERROR;
    case GGML_LOG_LEVEL_WARN:
        return CDT_LOG_WARN;
    case GGML_LOG_LEVEL_INFO:
        return CDT_LOG_DEBUG;
    case GGML_LOG_LEVEL_CONT:
        return prev;
    case GGML_LOG_LEVEL_NONE:
    case GGML_LOG_LEVEL_DEBUG:
        break;
    }
    return CDT_LOG_TRACE;
}

/* Engine warnings every Qwen3 GGUF triggers (llama.cpp retypes the vocabulary's
 * plain "</s>" token): nothing a user can act on, so they are debug output. */
static const char *const routine_warnings[] = {
    "load: control-looking token",
};

static bool routine_warning(const char *text)
{
    for (size_t i = 0; i < sizeof(routine_warnings) / sizeof(routine_warnings[0]); i++)
        if (strncmp(text, routine_warnings[i], strlen(routine_warnings[i])) == 0)
            return true;
    return false;
}

void cdt_log_ggml(enum ggml_log_level level, const char *text, void *user_data)
{
    struct cdt_log *lg = user_data;

    if (!lg || !text)
        return;
    pthread_mutex_lock(&lg->lock);
    if (level != GGML_LOG_LEVEL_CONT) {
        flush_pending(lg);
        lg->pending_level = level == GGML_LOG_LEVEL_WARN && routine_warning(text)
                                ? CDT_LOG_DEBUG
                                : from_ggml(level, CDT_LOG_TRACE);
    }
    for (; *text; text++) {
        if (*text == '\n') {
            flush_pending(lg);
            continue;
        }
        if (lg->pending_len == sizeof(lg->pending) - 1)
            flush_pending(lg);
        lg->pending[lg->pending_len++] = *text;
    }
    pthread_mutex_unlock(&lg->lock);
}
