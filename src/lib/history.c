/* Dictation history (see history.h): an append-only JSON-lines file and a
 * directory of recent recordings.
 *
 * Invariants: a line is written by one write() on an O_APPEND descriptor, so lines
 * of concurrent writers never interleave; a line that does not end the file
 * properly (a crash mid-write) is followed by a newline before the next line, so
 * only the broken line is lost. Readers never fail on content: what does not parse
 * is skipped and counted. Pruning deletes only recordings/<id>.wav of entries older
 * than the newest CDT_HISTORY_KEEP_RECORDINGS that have one. */
#include "codictate/history.h"
#include "codictate/log.h"
#include "codictate/util.h"
#include "err_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HISTORY_FILE            "history.jsonl"
#define RECORDINGS_DIR          "recordings"
#define READ_CHUNK              (64 * 1024)        /* read() size while listing, bytes */
#define CDT_HISTORY_MAX_TIME_MS 9007199254740992.0 /* 2^53: a time_ms beyond is corrupt */

struct cdt_history {
    char dir[CDT_HISTORY_PATH_MAX];
    char file[CDT_HISTORY_PATH_MAX + sizeof(HISTORY_FILE)];
    char recdir[CDT_HISTORY_PATH_MAX + sizeof(RECORDINGS_DIR)];
    struct cdt_log *log;
    char errmsg[512 + CDT_HISTORY_PATH_MAX];
};

/* The last millisecond an id was made for in this process. Ids must be unique
 * across every handle of the process (the app may open one per request), so this
 * one clock is process-wide: a lock-free counter, not shared state to guard. */
static _Atomic int64_t last_id_ms;

static int seterr(struct cdt_history *h, int rc, const char *fmt, ...) CDT_PRINTF(3, 4);

static int seterr(struct cdt_history *h, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(h->errmsg, sizeof(h->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

struct cdt_history_params cdt_history_default_params(void)
{
    struct cdt_history_params p = {0};
    return p;
}

/* Creates dir (and its parents, all mode 0700) unless it is a directory already. */
static int make_dirs(struct cdt_history *h, const char *dir)
{
    struct stat st;
    int rc;

    if (strlen(dir) >= CDT_HISTORY_PATH_MAX)
        return seterr(h, CDT_ETOOBIG, "%s: over CDT_HISTORY_PATH_MAX (%d bytes)", dir,
                      CDT_HISTORY_PATH_MAX);
    if ((rc = cdt_mkdir_p(dir, 0700)) != 0) {
        int e = errno;

        if (rc != CDT_EEXISTS)
            return seterr(h, rc, "cannot create %s: %s", dir, strerror(e));
        if (stat(dir, &st) == 0)
            return seterr(h, CDT_EIO, "%s exists and is not a directory", dir);
        return seterr(h, CDT_EIO, "cannot create %s: a parent is not a directory", dir);
    }
    if (access(dir, W_OK | X_OK) != 0)
        return seterr(h, CDT_EPERM, "%s: %s", dir, strerror(errno));
    return 0;
}

static int default_dir(struct cdt_history *h, const char *given)
{
    const char *env = cdt_env_str("CODICTATE_DATA_DIR", NULL);
    const char *xdg = cdt_env_str("XDG_DATA_HOME", NULL), *home = cdt_env_str("HOME", NULL);
    int n;

    if (given && *given)
        n = snprintf(h->dir, sizeof(h->dir), "%s", given);
    else if (env)
        n = snprintf(h->dir, sizeof(h->dir), "%s", env);
    else if (xdg)
        n = snprintf(h->dir, sizeof(h->dir), "%s/codictate", xdg);
    else if (home)
        n = snprintf(h->dir, sizeof(h->dir), "%s/.local/share/codictate", home);
    else
        return seterr(h, CDT_ENOTFOUND,
                      "no data directory: set CODICTATE_DATA_DIR, XDG_DATA_HOME or HOME");
    if (n < 0 || (size_t)n >= sizeof(h->dir))
        return seterr(h, CDT_ETOOBIG, "the data directory is over CDT_HISTORY_PATH_MAX (%d bytes)",
                      CDT_HISTORY_PATH_MAX);
    for (size_t len = strlen(h->dir); len > 1 && h->dir[len - 1] == '/'; len--)
        h->dir[len - 1] = '\0';
    snprintf(h->file, sizeof(h->file), "%s/" HISTORY_FILE, h->dir);
    snprintf(h->recdir, sizeof(h->recdir), "%s/" RECORDINGS_DIR, h->dir);
    return 0;
}

int cdt_history_new(const struct cdt_history_params *p, struct cdt_history **out)
{
    struct cdt_history_params def = cdt_history_default_params();
    struct cdt_history *h;
    int rc;

    *out = NULL;
    if (!p)
        p = &def;
    if (p->errmsg && p->errcap)
        p->errmsg[0] = '\0';
    h = calloc(1, sizeof(*h));
    if (!h) {
        if (p->errmsg && p->errcap)
            snprintf(p->errmsg, p->errcap, "out of memory");
        return CDT_ENOMEM;
    }
    h->log = p->log;
    rc = default_dir(h, p->dir);
    if (rc == 0)
        rc = make_dirs(h, h->dir);
    if (rc == 0)
        rc = make_dirs(h, h->recdir);
    if (rc != 0) {
        if (p->errmsg && p->errcap)
            snprintf(p->errmsg, p->errcap, "%s", h->errmsg);
        CDT_LOG_D(h->log, "history: %s", h->errmsg);
        free(h);
        return rc;
    }
    CDT_LOG_D(h->log, "history: %s", h->dir);
    *out = h;
    return 0;
}

void cdt_history_free(struct cdt_history *h)
{
    free(h);
}

const char *cdt_history_errmsg(const struct cdt_history *h)
{
    return h ? h->errmsg : "";
}

const char *cdt_history_dir(const struct cdt_history *h)
{
    return h->dir;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cdt_history_new_id(struct cdt_history *h, struct cdt_history_entry *e, char *path, size_t cap)
{
    int64_t ms = now_ms(), last = atomic_load(&last_id_ms);
    struct tm tm;
    time_t secs;
    char id[96];
    int n;

    h->errmsg[0] = '\0';
    /* A strictly increasing millisecond per process: two ids of one process never
     * share their time part, and the pid separates processes. */
    do {
        if (ms <= last)
            ms = last + 1;
    } while (!atomic_compare_exchange_weak(&last_id_ms, &last, ms));
    secs = (time_t)(ms / 1000);
    gmtime_r(&secs, &tm);
    snprintf(id, sizeof(id), "%04d%02d%02d-%02d%02d%02d-%03d-%ld", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000), (long)getpid());
    snprintf(e->id, sizeof(e->id), "%.*s", (int)sizeof(e->id) - 1, id); /* fits until year 9999 */
    e->time_ms = ms;
    if (!path)
        return 0;
    n = snprintf(path, cap, "%s/%s.wav", h->recdir, e->id);
    if (n < 0 || (size_t)n >= cap)
        return seterr(h, CDT_ETOOBIG, "the recording path needs %d bytes, have %zu", n + 1, cap);
    return 0;
}

static bool id_ok(const char *id, size_t cap)
{
    size_t n = strnlen(id, cap);

    if (n == 0 || n == cap || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool add_str(cJSON *o, const char *key, const char *s)
{
    return s ? cJSON_AddStringToObject(o, key, s) != NULL : cJSON_AddNullToObject(o, key) != NULL;
}

/* The entry as one line of JSON, without the newline. */
static char *entry_line(struct cdt_history *h, const struct cdt_history_entry *e)
{
    cJSON *o = cJSON_CreateObject(), *t = NULL;
    char *s = NULL;

    if (e->timings_json) {
        t = cJSON_Parse(e->timings_json);
        if (!cJSON_IsObject(t)) {
            CDT_LOG_W(h->log, "history: %s: timings are not a JSON object; written as null", e->id);
            cJSON_Delete(t);
            t = NULL;
        }
    }
    if (!o || !add_str(o, "id", e->id) ||
        !cJSON_AddNumberToObject(o, "time_ms", (double)e->time_ms) ||
        !add_str(o, "status", e->status) || !add_str(o, "source", e->source) ||
        !add_str(o, "audio_path", e->audio_path) ||
        !cJSON_AddNumberToObject(o, "audio_seconds", e->audio_seconds) ||
        !add_str(o, "raw", e->raw) || !add_str(o, "refined", e->refined) ||
        !add_str(o, "fallback_reason", e->fallback_reason) ||
        !add_str(o, "reason_code", e->reason_code) || !add_str(o, "error", e->error) ||
        !add_str(o, "model", e->model) || !add_str(o, "whisper_model", e->whisper_model))
        goto out;
    if (t) {
        if (!cJSON_AddItemToObject(o, "timings", t))
            goto out;
        t = NULL;
    } else if (!cJSON_AddNullToObject(o, "timings")) {
        goto out;
    }
    s = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(t);
    cJSON_Delete(o);
    return s;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void prune(struct cdt_history *h, const char *keep_id);

/* Opens the history file (flags as open(2); O_NONBLOCK is added so a FIFO in its
 * place cannot hang us) and refuses anything but a regular file. Returns the fd, or
 * -1 with errno (EINVAL: not a regular file). */
static int open_history_file(const char *path, int flags, mode_t mode)
{
    struct stat st;
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, mode);

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        int err = errno;

        close(fd);
        errno = err;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/* Appends and rewrites (cdt_history_delete) exclude each other through
 * "<dir>/history.lock" (flock), so a rewrite never drops a concurrent append.
 * Returns the lock's fd, or -1 (then we go on unlocked: appends stay atomic). */
static int lock_history(struct cdt_history *h)
{
    char path[sizeof(h->dir) + 16];
    int fd;

    snprintf(path, sizeof(path), "%s/history.lock", h->dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

static void unlock_history(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

static int append_locked(struct cdt_history *h, const struct cdt_history_entry *e);

int cdt_history_append(struct cdt_history *h, const struct cdt_history_entry *e)
{
    int lk = lock_history(h), rc = append_locked(h, e);

    unlock_history(lk);
    if (rc == 0)
        prune(h, e->id);
    return rc;
}

static int append_locked(struct cdt_history *h, const struct cdt_history_entry *e)
{
    struct stat st;
    char *line, last = '\n';
    size_t len;
    ssize_t w;
    int fd, rc = 0;

    h->errmsg[0] = '\0';
    if (!id_ok(e->id, sizeof(e->id)))
        return seterr(h, CDT_EINVAL, "history entry id '%.40s' is empty or not [A-Za-z0-9._-]",
                      e->id);
    line = entry_line(h, e);
    if (!line)
        return seterr(h, CDT_ENOMEM, "out of memory");
    len = strlen(line);
    if (len + 2 > CDT_HISTORY_MAX_LINE) {
        free(line);
        return seterr(h, CDT_ETOOBIG, "history entry %s: %zu bytes, over CDT_HISTORY_MAX_LINE (%d)",
                      e->id, len, CDT_HISTORY_MAX_LINE);
    }
    fd = open_history_file(h->file, O_RDWR | O_APPEND | O_CREAT, 0600);
    if (fd < 0) {
        rc = errno == EINVAL ? CDT_EIO : cdt__err_from_errno(errno);
        seterr(h, rc, "cannot open %s: %s", h->file,
               errno == EINVAL ? "not a regular file" : strerror(errno));
        free(line);
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = seterr(h, cdt__err_from_errno(errno), "%s: %s", h->file, strerror(errno));
        goto out;
    }
    if (st.st_mode & 077)
        (void)fchmod(fd, st.st_mode & 0700);
    /* A file that does not end in a newline was cut by a crash mid-write: start on
     * a new line so that only the broken line is lost. */
    if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
        last = '\n';
    {
        size_t off = last == '\n' ? 0 : 1;
        char *buf = malloc(len + 2);

        if (!buf) {
            rc = seterr(h, CDT_ENOMEM, "out of memory");
            goto out;
        }
        buf[0] = '\n';
        memcpy(buf + off, line, len);
        buf[off + len] = '\n';
        w = write(fd, buf, off + len + 1);
        if (w < 0)
            rc = seterr(h, cdt__err_from_errno(errno), "cannot write %s: %s", h->file,
                        strerror(errno));
        else if ((size_t)w != off + len + 1)
            rc = seterr(h, CDT_ENOSPACE, "cannot write %s: short write (disk full?)", h->file);
        free(buf);
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = seterr(h, cdt__err_from_errno(errno), "cannot sync %s: %s", h->file, strerror(errno));
out:
    close(fd);
    free(line);
    if (rc != 0)
        return rc;
    if (st.st_size == 0)
        fsync_dir(h->dir); /* the file is new: make its name durable too */
    CDT_LOG_D(h->log, "history: appended %s (%s)", e->id, e->status ? e->status : "-");
    return 0;
}

/* ---- reading ---- */

static char *dup_str(const cJSON *o, const char *key, bool *oom)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    char *s;

    if (!cJSON_IsString(x))
        return NULL;
    s = strdup(x->valuestring);
    if (!s)
        *oom = true;
    return s;
}

/* Parses one line into e. Returns 0, 1 (corrupt), CDT_ENOMEM. */
static int parse_line(const char *line, size_t len, struct cdt_history_entry *e)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    const cJSON *id, *t, *x;
    bool oom = false;

    memset(e, 0, sizeof(*e));
    if (!o)
        return 1; /* cJSON reports no memory and bad JSON alike: counted as corrupt */
    id = cJSON_GetObjectItemCaseSensitive(o, "id");
    t = cJSON_GetObjectItemCaseSensitive(o, "time_ms");
    /* One whole object per line (two objects glued by a lost newline are corrupt). */
    if (end != line + len || !cJSON_IsObject(o) || !cJSON_IsString(id) ||
        !id_ok(id->valuestring, sizeof(e->id)) || !cJSON_IsNumber(t) || !(t->valuedouble >= 0) ||
        t->valuedouble > CDT_HISTORY_MAX_TIME_MS) {
        cJSON_Delete(o);
        return 1;
    }
    snprintf(e->id, sizeof(e->id), "%s", id->valuestring);
    e->time_ms = (int64_t)t->valuedouble;
    e->status = dup_str(o, "status", &oom);
    e->source = dup_str(o, "source", &oom);
    e->audio_path = dup_str(o, "audio_path", &oom);
    x = cJSON_GetObjectItemCaseSensitive(o, "audio_seconds");
    e->audio_seconds = cJSON_IsNumber(x) ? x->valuedouble : 0;
    e->raw = dup_str(o, "raw", &oom);
    e->refined = dup_str(o, "refined", &oom);
    e->fallback_reason = dup_str(o, "fallback_reason", &oom);
    e->reason_code = dup_str(o, "reason_code", &oom);
    e->error = dup_str(o, "error", &oom);
    e->model = dup_str(o, "model", &oom);
    e->whisper_model = dup_str(o, "whisper_model", &oom);
    x = cJSON_GetObjectItemCaseSensitive(o, "timings");
    if (cJSON_IsObject(x) && !(e->timings_json = cJSON_PrintUnformatted(x)))
        oom = true;
    cJSON_Delete(o);
    if (oom) {
        cdt_history_entry_cleanup(e);
        return CDT_ENOMEM;
    }
    return 0;
}

struct list {
    struct cdt_history_entry *v;
    size_t n, cap;
    size_t skipped;
};

static int list_line(struct list *l, const char *line, size_t len)
{
    int rc;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
        line++;
        len--;
    }
    if (len == 0)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct cdt_history_entry *v = realloc(l->v, cap * sizeof(*v));

        if (!v)
            return CDT_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    rc = parse_line(line, len, &l->v[l->n]);
    if (rc == 1)
        l->skipped++;
    else if (rc == 0)
        l->n++;
    return rc < 0 ? rc : 0;
}

/* Reads the file line by line, never holding more than CDT_HISTORY_MAX_LINE of
 * one line. */
static int read_lines(struct cdt_history *h, struct list *l)
{
    char *chunk;
    struct cdt_buf line = {0}; /* the current line, at most CDT_HISTORY_MAX_LINE bytes */
    bool over = false;         /* the current line passed the cap: skip to its end */
    int fd, rc = 0;

    fd = open_history_file(h->file, O_RDONLY, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == EINVAL)
            return seterr(h, CDT_EIO, "cannot read %s: not a regular file", h->file);
        rc = cdt__err_from_errno(errno);
        return seterr(h, rc, "cannot open %s: %s", h->file, strerror(errno));
    }
    chunk = malloc(READ_CHUNK);
    if (!chunk) {
        close(fd);
        return seterr(h, CDT_ENOMEM, "out of memory");
    }
    for (;;) {
        ssize_t got = read(fd, chunk, READ_CHUNK);
        size_t i = 0;

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = seterr(h, cdt__err_from_errno(errno), "cannot read %s: %s", h->file,
                        strerror(errno));
            break;
        }
        if (got == 0) {
            /* A last line without its newline: a crash cut it, or it is whole. */
            if (over)
                l->skipped++;
            else if (line.len > 0)
                rc = list_line(l, line.data, line.len);
            break;
        }
        while (i < (size_t)got && rc == 0) {
            char *nl = memchr(chunk + i, '\n', (size_t)got - i);
            size_t take = nl ? (size_t)(nl - (chunk + i)) : (size_t)got - i;

            if (!over && line.len + take > CDT_HISTORY_MAX_LINE) {
                over = true;
                cdt_buf_truncate(&line, 0);
            }
            if (!over && cdt_buf_append(&line, chunk + i, take) != 0) {
                rc = seterr(h, CDT_ENOMEM, "out of memory");
                break;
            }
            i += take;
            if (nl) {
                i++;
                if (over)
                    l->skipped++;
                else
                    rc = list_line(l, line.data, line.len);
                if (rc != 0)
                    seterr(h, rc, "out of memory");
                over = false;
                cdt_buf_truncate(&line, 0);
            }
        }
        if (rc != 0)
            break;
    }
    cdt_buf_cleanup(&line);
    free(chunk);
    close(fd);
    return rc;
}

/* An entry and its line number, to sort by id, then file order. */
struct order {
    struct cdt_history_entry *e;
    size_t line;
};

static int by_id_then_line(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    int c = strcmp(x->e->id, y->e->id);

    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int newest_first(const void *a, const void *b)
{
    const struct cdt_history_entry *x = a, *y = b;

    if (x->time_ms != y->time_ms)
        return x->time_ms > y->time_ms ? -1 : 1;
    return -strcmp(x->id, y->id);
}

/* Keeps the last line of each id. */
static int dedupe(struct list *l)
{
    struct order *o;
    struct cdt_history_entry *v;
    size_t k = 0;

    if (l->n == 0)
        return 0;
    o = malloc(l->n * sizeof(*o));
    v = malloc(l->n * sizeof(*v));
    if (!o || !v) {
        free(o);
        free(v);
        return CDT_ENOMEM;
    }
    for (size_t i = 0; i < l->n; i++) {
        o[i].e = &l->v[i];
        o[i].line = i;
    }
    qsort(o, l->n, sizeof(*o), by_id_then_line);
    for (size_t i = 0; i < l->n; i++) {
        if (i + 1 < l->n && strcmp(o[i].e->id, o[i + 1].e->id) == 0)
            cdt_history_entry_cleanup(o[i].e); /* superseded */
        else
            v[k++] = *o[i].e;
    }
    free(o);
    free(l->v);
    l->v = v;
    l->n = k;
    l->cap = l->n;
    qsort(l->v, l->n, sizeof(*l->v), newest_first);
    return 0;
}

int cdt_history_list(struct cdt_history *h, struct cdt_history_entry **out, size_t *n,
                     size_t *n_skipped)
{
    struct list l = {0};
    int rc;

    h->errmsg[0] = '\0';
    *out = NULL;
    *n = 0;
    if (n_skipped)
        *n_skipped = 0;
    rc = read_lines(h, &l);
    if (rc == 0 && (rc = dedupe(&l)) != 0)
        seterr(h, rc, "out of memory");
    if (rc != 0) {
        cdt_history_entries_free(l.v, l.n);
        return rc;
    }
    if (l.skipped)
        CDT_LOG_I(h->log, "history: skipped %zu corrupt line(s) in %s", l.skipped, h->file);
    if (l.n == 0) {
        free(l.v);
        l.v = NULL;
    }
    *out = l.v;
    *n = l.n;
    if (n_skipped)
        *n_skipped = l.skipped;
    return 0;
}

void cdt_history_entry_cleanup(struct cdt_history_entry *e)
{
    if (!e)
        return;
    free(e->status);
    free(e->source);
    free(e->audio_path);
    free(e->raw);
    free(e->refined);
    free(e->fallback_reason);
    free(e->reason_code);
    free(e->error);
    free(e->model);
    free(e->whisper_model);
    free(e->timings_json);
    memset(e, 0, sizeof(*e));
}

void cdt_history_entries_free(struct cdt_history_entry *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        cdt_history_entry_cleanup(&v[i]);
    free(v);
}

/* ---- recordings ---- */

static void prune(struct cdt_history *h, const char *keep_id)
{
    struct cdt_history_entry *v;
    char path[sizeof(h->recdir) + CDT_HISTORY_ID_MAX + 8];
    size_t n, kept = 0, removed = 0;
    char saved[sizeof(h->errmsg)];

    memcpy(saved, h->errmsg, sizeof(saved));
    if (cdt_history_list(h, &v, &n, NULL) != 0) {
        CDT_LOG_W(h->log, "history: cannot prune recordings: %s", h->errmsg);
        memcpy(h->errmsg, saved, sizeof(saved));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s.wav", h->recdir, v[i].id);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (kept < CDT_HISTORY_KEEP_RECORDINGS || strcmp(v[i].id, keep_id) == 0) {
            kept++;
            continue;
        }
        if (unlink(path) == 0)
            removed++;
        else
            CDT_LOG_W(h->log, "history: cannot delete %s: %s", path, strerror(errno));
    }
    if (removed)
        CDT_LOG_I(h->log, "history: deleted %zu old recording(s), kept %zu", removed, kept);
    cdt_history_entries_free(v, n);
    memcpy(h->errmsg, saved, sizeof(saved));
}

int cdt_history_clear(struct cdt_history *h)
{
    char path[sizeof(h->recdir) + 256 + 2];
    struct dirent *d;
    DIR *dir;
    int rc = 0;

    h->errmsg[0] = '\0';
    if (unlink(h->file) != 0 && errno != ENOENT)
        return seterr(h, cdt__err_from_errno(errno), "cannot delete %s: %s", h->file,
                      strerror(errno));
    dir = opendir(h->recdir);
    if (!dir) {
        if (errno == ENOENT)
            return 0;
        return seterr(h, cdt__err_from_errno(errno), "cannot open %s: %s", h->recdir,
                      strerror(errno));
    }
    while ((d = readdir(dir)) != NULL) {
        struct stat st;

        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", h->recdir, d->d_name);
        if (lstat(path, &st) != 0 || S_ISDIR(st.st_mode))
            continue;
        if (unlink(path) != 0 && errno != ENOENT && rc == 0)
            rc = seterr(h, cdt__err_from_errno(errno), "cannot delete %s: %s", path,
                        strerror(errno));
    }
    closedir(dir);
    fsync_dir(h->dir);
    CDT_LOG_I(h->log, "history: cleared %s", h->dir);
    return rc;
}

/* Whether a line's "id" is id (a corrupt line is not). */
static bool line_has_id(const char *line, size_t len, const char *id)
{
    cJSON *o = cJSON_ParseWithLength(line, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
    bool yes = cJSON_IsString(v) && strcmp(v->valuestring, id) == 0;

    cJSON_Delete(o);
    return yes;
}

int cdt_history_delete(struct cdt_history *h, const char *id)
{
    char tmp[sizeof(h->file) + 32], wav[sizeof(h->recdir) + CDT_HISTORY_ID_MAX + 8];
    struct cdt_history_entry probe;
    FILE *in = NULL, *out = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool found = false;
    int lk, rc = 0;

    h->errmsg[0] = '\0';
    memset(&probe, 0, sizeof(probe));
    if (!id || strlen(id) >= sizeof(probe.id) || !id_ok(id, sizeof(probe.id)))
        return seterr(h, CDT_EINVAL, "history entry id '%.40s' is empty or not [A-Za-z0-9._-]",
                      id ? id : "");
    lk = lock_history(h);
    {
        int fd = open_history_file(h->file, O_RDONLY, 0);

        in = fd >= 0 ? fdopen(fd, "re") : NULL;
        if (fd >= 0 && !in)
            close(fd);
        if (!in && errno == EINVAL) {
            rc = seterr(h, CDT_EIO, "cannot read %s: not a regular file", h->file);
            goto out;
        }
    }
    if (!in) {
        rc = errno == ENOENT ? seterr(h, CDT_ENOTFOUND, "no history entry %s", id)
                             : seterr(h, cdt__err_from_errno(errno), "cannot open %s: %s", h->file,
                                      strerror(errno));
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", h->file, (int)getpid());
    {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || !(out = fdopen(fd, "w"))) {
            rc = seterr(h, cdt__err_from_errno(errno), "cannot write %s: %s", tmp, strerror(errno));
            if (fd >= 0)
                close(fd);
            goto out;
        }
    }
    while ((len = getline(&line, &cap, in)) >= 0) {
        if (len > 0 && line_has_id(line, (size_t)len, id)) {
            found = true;
            continue;
        }
        if (fwrite(line, 1, (size_t)len, out) != (size_t)len) {
            rc = seterr(h, CDT_ENOSPACE, "cannot write %s (disk full?)", tmp);
            break;
        }
    }
    if (rc == 0 && (fflush(out) != 0 || fsync(fileno(out)) != 0))
        rc = seterr(h, cdt__err_from_errno(errno), "cannot write %s: %s", tmp, strerror(errno));
    if (fclose(out) != 0 && rc == 0)
        rc = seterr(h, cdt__err_from_errno(errno), "cannot write %s: %s", tmp, strerror(errno));
    out = NULL;
    if (rc == 0 && !found)
        rc = seterr(h, CDT_ENOTFOUND, "no history entry %s", id);
    if (rc == 0 && rename(tmp, h->file) != 0)
        rc = seterr(h, cdt__err_from_errno(errno), "cannot replace %s: %s", h->file,
                    strerror(errno));
    if (rc != 0)
        unlink(tmp);
    else
        fsync_dir(h->dir);
out:
    if (in)
        fclose(in);
    free(line);
    unlock_history(lk);
    if (rc == 0) {
        snprintf(wav, sizeof(wav), "%s/%s.wav", h->recdir, id);
        if (unlink(wav) != 0 && errno != ENOENT)
            CDT_LOG_W(h->log, "history: cannot delete %s: %s", wav, strerror(errno));
        CDT_LOG_I(h->log, "history: deleted %s", id);
    }
    return rc;
}
