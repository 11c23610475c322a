/* Persisted app settings (see settings.h): settings.json and the api_key file in
 * the config directory.
 *
 * Invariants: one table (fields[]) names every setting and one function
 * (set_field) checks and stores a JSON value into a field, so the HTTP API's
 * updates, loading the file and the check before a save accept exactly the same
 * values. A field's value is stored only after it passed its check, so a bad
 * field on load keeps its default. Files are only ever replaced by rename(2) of a
 * complete, fsync'd temp file, which is unlinked on every failure path. The API
 * key and the prompt are never copied into a message. */
#include "codictate/settings.h"
#include "codictate/prompts.h"
#include "codictate/text.h"
#include "codictate/util.h"
#include "err_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SETTINGS_FILE "settings.json"
#define KEY_FILE      "api_key"
#define KEY_FILE_MAX  4096                         /* api_key file read cap, bytes */
#define FILE_PATH_MAX (CDT_SETTINGS_PATH_MAX + 64) /* dir + "/settings.json.tmp.<pid>" */
#define IDLE_WORDS    "-1 (never), 0 (immediately), 120, 300, 600, 900 or 3600 (seconds)"

static const int idle_choices[] = CDT_SETTINGS_IDLE_CHOICES;

/* How a field's JSON value is checked. */
enum kind {
    K_NAME,     /* string or null: < cap bytes, UTF-8, no control characters */
    K_PROVIDER, /* "local" | "openai" */
    K_URL,      /* null, "" or an http(s) URL */
    K_KEY,      /* string: printable ASCII without spaces once trimmed; "" clears */
    K_PROMPT,   /* string or null: < cap bytes, UTF-8 */
    K_IDLE,     /* one of idle_choices */
    K_OUTPUT,   /* "type" | "copy" | "none" */
    K_LANG,     /* "auto" or 2-3 lowercase letters */
    K_BOOL,     /* true | false */
};

struct field {
    const char *name; /* the JSON key */
    enum kind kind;
    size_t off; /* offset of the member in struct cdt_settings */
    size_t cap; /* bytes of a char array member; 0 for the others */
};

#define MEMBER_SIZE(m)  sizeof(((struct cdt_settings *)0)->m)
#define STR_FIELD(m, k) #m, k, offsetof(struct cdt_settings, m), MEMBER_SIZE(m)
#define VAL_FIELD(m, k) #m, k, offsetof(struct cdt_settings, m), 0

/* In the order settings.json lists them. */
static const struct field fields[] = {
    {STR_FIELD(llm_model, K_NAME)},    {STR_FIELD(whisper_model, K_NAME)},
    {VAL_FIELD(provider, K_PROVIDER)}, {STR_FIELD(openai_base_url, K_URL)},
    {STR_FIELD(openai_model, K_NAME)}, {STR_FIELD(api_key, K_KEY)},
    {STR_FIELD(prompt, K_PROMPT)},     {VAL_FIELD(idle_timeout_s, K_IDLE)},
    {VAL_FIELD(output, K_OUTPUT)},     {STR_FIELD(language, K_LANG)},
    {STR_FIELD(vocabulary, K_NAME)},   {VAL_FIELD(whisper_context, K_BOOL)},
};

#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

struct cdt_settings cdt_settings_defaults(void)
{
    struct cdt_settings s;

    memset(&s, 0, sizeof(s));
    s.provider = CDT_PROVIDER_LOCAL;
    s.idle_timeout_s = CDT_SETTINGS_IDLE_DEFAULT;
    s.output = CDT_OUTPUT_NONE;
    snprintf(s.language, sizeof(s.language), "auto");
    s.whisper_context = true;
    return s;
}

/* ---- names and checks ---- */

const char *cdt_settings_provider_name(enum cdt_provider_kind p)
{
    switch (p) {
    case CDT_PROVIDER_LOCAL:
        return "local";
    case CDT_PROVIDER_OPENAI:
        return "openai";
    }
    return "unknown";
}

int cdt_settings_provider_parse(const char *name, enum cdt_provider_kind *out)
{
    if (!name)
        return CDT_EINVAL;
    if (strcmp(name, "local") == 0)
        *out = CDT_PROVIDER_LOCAL;
    else if (strcmp(name, "openai") == 0)
        *out = CDT_PROVIDER_OPENAI;
    else
        return CDT_EINVAL;
    return 0;
}

const char *cdt_settings_output_name(enum cdt_output_mode o)
{
    switch (o) {
    case CDT_OUTPUT_TYPE:
        return "type";
    case CDT_OUTPUT_COPY:
        return "copy";
    case CDT_OUTPUT_NONE:
        return "none";
    }
    return "unknown";
}

int cdt_settings_output_parse(const char *name, enum cdt_output_mode *out)
{
    if (!name)
        return CDT_EINVAL;
    if (strcmp(name, "type") == 0)
        *out = CDT_OUTPUT_TYPE;
    else if (strcmp(name, "copy") == 0)
        *out = CDT_OUTPUT_COPY;
    else if (strcmp(name, "none") == 0)
        *out = CDT_OUTPUT_NONE;
    else
        return CDT_EINVAL;
    return 0;
}

bool cdt_settings_idle_timeout_valid(int s)
{
    for (size_t i = 0; i < sizeof(idle_choices) / sizeof(idle_choices[0]); i++)
        if (idle_choices[i] == s)
            return true;
    return false;
}

bool cdt_settings_language_valid(const char *lang)
{
    size_t n;

    if (!lang)
        return false;
    if (strcmp(lang, "auto") == 0)
        return true;
    n = strlen(lang);
    if (n < 2 || n > 3)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lang[i] < 'a' || lang[i] > 'z')
            return false;
    return true;
}

static bool has_controls(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* An http:// or https:// URL with a host part and no spaces or control characters. */
static bool url_ok(const char *s)
{
    const char *rest;

    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return false;
    if (*rest == '\0' || *rest == '/' || has_controls(s) || strchr(s, ' '))
        return false;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Stores the key s[0..len) with surrounding whitespace removed into dst (cap
 * bytes). The message never contains the key. */
static int set_key(char *dst, size_t cap, const char *s, size_t len, char *msg, size_t mcap)
{
    while (len && is_space(*s)) {
        s++;
        len--;
    }
    while (len && is_space(s[len - 1]))
        len--;
    if (len >= cap)
        return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "api_key: %zu bytes, at most %zu", len,
                               cap - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL,
                                   "api_key: must be printable ASCII without spaces");
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* Checks v for field f and, only when it is good, stores it into s. Returns 0 or
 * CDT_EINVAL with "<field>: <what it must be>" in msg. */
static int set_field(struct cdt_settings *s, const struct field *f, const cJSON *v, char *msg,
                     size_t mcap)
{
    char *dst = (char *)s + f->off;
    const char *str = cJSON_IsString(v) ? v->valuestring : NULL;
    size_t len = str ? strlen(str) : 0;

    switch (f->kind) {
    case K_NAME:
    case K_PROMPT:
    case K_URL:
        if (cJSON_IsNull(v) || (f->kind == K_URL && str && len == 0)) {
            dst[0] = '\0';
            return 0;
        }
        if (!str)
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: must be a string or null", f->name);
        if (len >= f->cap)
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: %zu bytes, at most %zu", f->name,
                                   len, f->cap - 1);
        if (!cdt_utf8_valid(str, len))
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: not valid UTF-8", f->name);
        if (f->kind == K_NAME && has_controls(str))
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: has control characters", f->name);
        if (f->kind == K_URL && !url_ok(str))
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL,
                                   "%s: must be an http:// or https:// URL (or null)", f->name);
        memcpy(dst, str, len + 1);
        return 0;
    case K_KEY:
        if (!str)
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: must be a string (\"\" clears it)",
                                   f->name);
        return set_key(dst, f->cap, str, len, msg, mcap);
    case K_PROVIDER: {
        enum cdt_provider_kind p;

        if (cdt_settings_provider_parse(str, &p) != 0)
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: must be \"local\" or \"openai\"",
                                   f->name);
        s->provider = p;
        return 0;
    }
    case K_IDLE: {
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0.5;

        /* Range first: casting a huge or NaN double to int is undefined. */
        if (!(d >= -1 && d <= 3600) || (double)(int)d != d ||
            !cdt_settings_idle_timeout_valid((int)d))
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: must be " IDLE_WORDS, f->name);
        s->idle_timeout_s = (int)d;
        return 0;
    }
    case K_OUTPUT: {
        enum cdt_output_mode o;

        if (cdt_settings_output_parse(str, &o) != 0)
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL,
                                   "%s: must be \"type\", \"copy\" or \"none\"", f->name);
        s->output = o;
        return 0;
    }
    case K_LANG:
        if (!str || !cdt_settings_language_valid(str))
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL,
                                   "%s: must be \"auto\" or a 2-3 letter lowercase language code",
                                   f->name);
        memcpy(dst, str, len + 1);
        return 0;
    case K_BOOL:
        if (!cJSON_IsBool(v))
            return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: must be true or false", f->name);
        *(bool *)(void *)dst = cJSON_IsTrue(v);
        return 0;
    }
    return cdt__errmsg_set(msg, mcap, CDT_EINVAL, "%s: unknown field kind", f->name);
}

int cdt_settings_apply_json(struct cdt_settings *s, const cJSON *patch, char *errmsg, size_t errcap)
{
    struct cdt_settings *tmp;
    int rc = 0;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (!cJSON_IsObject(patch))
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "settings: must be a JSON object");
    /* Checked into a copy (on the heap: ~18 KiB), applied only when all are good. */
    tmp = malloc(sizeof(*tmp));
    if (!tmp)
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
    *tmp = *s;
    for (size_t i = 0; i < N_FIELDS && rc == 0; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(patch, fields[i].name);

        if (v)
            rc = set_field(tmp, &fields[i], v, errmsg, errcap);
    }
    if (rc == 0)
        *s = *tmp;
    free(tmp);
    return rc;
}

/* ---- JSON shapes ---- */

static bool add_str(cJSON *o, const char *key, const char *s, bool empty_is_null)
{
    if (empty_is_null && !*s)
        return cJSON_AddNullToObject(o, key) != NULL;
    return cJSON_AddStringToObject(o, key, s) != NULL;
}

/* The API shape (api: true; see settings.h) or settings.json's (version first,
 * unset strings as "", no key). */
static cJSON *settings_object(const struct cdt_settings *s, bool api)
{
    cJSON *o = cJSON_CreateObject();

    if (!o || (!api && !cJSON_AddNumberToObject(o, "version", CDT_SETTINGS_VERSION)) ||
        !add_str(o, "llm_model", s->llm_model, api) ||
        !add_str(o, "whisper_model", s->whisper_model, api) ||
        !cJSON_AddStringToObject(o, "provider", cdt_settings_provider_name(s->provider)) ||
        !add_str(o, "openai_base_url", s->openai_base_url, api) ||
        !add_str(o, "openai_model", s->openai_model, api) ||
        (api && !cJSON_AddBoolToObject(o, "api_key_set", s->api_key[0] != '\0')) ||
        !add_str(o, "prompt", s->prompt, api) ||
        (api && !cJSON_AddStringToObject(o, "default_prompt", cdt_prompt_default())) ||
        !cJSON_AddNumberToObject(o, "idle_timeout_s", s->idle_timeout_s) ||
        !cJSON_AddStringToObject(o, "output", cdt_settings_output_name(s->output)) ||
        !cJSON_AddStringToObject(o, "language", s->language) ||
        !add_str(o, "vocabulary", s->vocabulary, api) ||
        !cJSON_AddBoolToObject(o, "whisper_context", s->whisper_context)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *cdt_settings_to_json(const struct cdt_settings *s)
{
    return settings_object(s, true);
}

/* ---- files ---- */

/* Appends "; <text>" (or "<text>" to an empty errmsg); what does not fit is cut. */
static void warn(char *errmsg, size_t errcap, const char *fmt, ...) CDT_PRINTF(3, 4);

static void warn(char *errmsg, size_t errcap, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (!errmsg || !errcap)
        return;
    used = strnlen(errmsg, errcap - 1);
    if (used && used + 2 < errcap) {
        memcpy(errmsg + used, "; ", 3);
        used += 2;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg + used, errcap - used, fmt, ap);
    va_end(ap);
}

int cdt_settings_dir(char *buf, size_t cap)
{
    const char *xdg = cdt_env_str("XDG_CONFIG_HOME", NULL), *home = cdt_env_str("HOME", NULL);
    int n;

    if (cap)
        buf[0] = '\0';
    if (xdg)
        n = snprintf(buf, cap, "%s/codictate", xdg);
    else if (home)
        n = snprintf(buf, cap, "%s/.config/codictate", home);
    else
        return CDT_ENOTFOUND;
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return CDT_ETOOBIG;
    }
    return 0;
}

/* The dir to use into d (CDT_SETTINGS_PATH_MAX bytes), without trailing slashes. */
static int resolve_dir(const char *dir, char *d, char *errmsg, size_t errcap)
{
    int rc;

    if (dir && *dir) {
        if (strlen(dir) >= CDT_SETTINGS_PATH_MAX)
            return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG,
                                   "%.200s...: over CDT_SETTINGS_PATH_MAX (%d bytes)", dir,
                                   CDT_SETTINGS_PATH_MAX);
        memcpy(d, dir, strlen(dir) + 1);
    } else if ((rc = cdt_settings_dir(d, CDT_SETTINGS_PATH_MAX)) != 0) {
        if (rc == CDT_ENOTFOUND)
            return cdt__errmsg_set(errmsg, errcap, rc,
                                   "no config directory: set XDG_CONFIG_HOME or HOME");
        return cdt__errmsg_set(errmsg, errcap, rc,
                               "the config directory is over CDT_SETTINGS_PATH_MAX (%d bytes)",
                               CDT_SETTINGS_PATH_MAX);
    }
    for (size_t len = strlen(d); len > 1 && d[len - 1] == '/'; len--)
        d[len - 1] = '\0';
    return 0;
}

/* Reads a whole regular file. Returns 0 with *out (malloc'd, NUL-terminated; NULL
 * when the file does not exist) and *len; *over is set when the file is over cap
 * bytes (then *out is NULL). Errors: CDT_EPERM, CDT_EIO, CDT_ENOMEM. */
static int read_file(const char *path, size_t cap, char **out, size_t *len, bool *over,
                     char *errmsg, size_t errcap)
{
    struct stat st;
    char *buf;
    size_t n = 0;
    int fd, e;

    *out = NULL;
    *len = 0;
    *over = false;
    /* O_NONBLOCK: a FIFO in the file's place must not hang the app's start. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        e = errno;
        if (e == ENOENT)
            return 0;
        return cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot open %s: %s", path,
                               strerror(e));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cdt__errmsg_set(errmsg, errcap, CDT_EIO, "%s is not a regular file", path);
    }
    buf = malloc(cap + 2);
    if (!buf) {
        close(fd);
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
    }
    while (n <= cap) {
        ssize_t r = read(fd, buf + n, cap + 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            e = errno;
            free(buf);
            close(fd);
            return cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot read %s: %s",
                                   path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > cap) {
        free(buf);
        *over = true;
        return 0;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Reads settings.json's fields into s (which holds the defaults). */
static int load_settings_file(const char *path, struct cdt_settings *s, char *errmsg, size_t errcap)
{
    char *text, msg[256];
    const char *end = NULL;
    size_t len;
    bool over;
    cJSON *root;
    int rc;

    if ((rc = read_file(path, CDT_SETTINGS_MAX_BYTES, &text, &len, &over, errmsg, errcap)) != 0)
        return rc;
    if (over) {
        warn(errmsg, errcap, "%s: over CDT_SETTINGS_MAX_BYTES (%d bytes); using the defaults", path,
             CDT_SETTINGS_MAX_BYTES);
        return 0;
    }
    if (!text)
        return 0;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    /* One object and nothing after it but whitespace (cJSON stops after a value). */
    while (root && end < text + len && is_space(*end))
        end++;
    if (root && end != text + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        warn(errmsg, errcap, "%s: not a JSON object; using the defaults", path);
        cJSON_Delete(root);
        return 0;
    }
    for (size_t i = 0; i < N_FIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, fields[i].name);

        if (fields[i].kind == K_KEY || !v) /* the key lives in its own file */
            continue;
        if (set_field(s, &fields[i], v, msg, sizeof(msg)) != 0)
            warn(errmsg, errcap, "%s: %s; using the default", path, msg);
    }
    cJSON_Delete(root);
    return 0;
}

static int load_key_file(const char *path, struct cdt_settings *s, char *errmsg, size_t errcap)
{
    char *text, msg[128];
    size_t len;
    bool over;
    int rc;

    if ((rc = read_file(path, KEY_FILE_MAX, &text, &len, &over, errmsg, errcap)) != 0)
        return rc;
    if (over || (text && (memchr(text, '\0', len) ||
                          set_key(s->api_key, sizeof(s->api_key), text, len, msg, sizeof(msg))))) {
        s->api_key[0] = '\0';
        warn(errmsg, errcap,
             "%s: not a valid API key (one line of printable ASCII, at most %zu "
             "bytes); ignored",
             path, sizeof(s->api_key) - 1);
    }
    free(text);
    return 0;
}

int cdt_settings_load(const char *dir, struct cdt_settings *out, char *errmsg, size_t errcap)
{
    char d[CDT_SETTINGS_PATH_MAX], path[FILE_PATH_MAX];
    int rc;

    *out = cdt_settings_defaults();
    if (errmsg && errcap)
        errmsg[0] = '\0';
    if ((rc = resolve_dir(dir, d, errmsg, errcap)) != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/" SETTINGS_FILE, d);
    rc = load_settings_file(path, out, errmsg, errcap);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/" KEY_FILE, d);
        rc = load_key_file(path, out, errmsg, errcap);
    }
    if (rc != 0)
        *out = cdt_settings_defaults();
    return rc;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Replaces dir/name with data: a new temp file, written, fsync'd and renamed over
 * the old file, then the directory fsync'd. On failure the temp is unlinked and
 * the old file is untouched. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        char *errmsg, size_t errcap)
{
    char path[FILE_PATH_MAX], tmp[FILE_PATH_MAX + 32];
    size_t off = 0;
    int fd, rc = 0, e;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a crashed process that had our pid (saves in this process are
         * serialised by the caller). */
        (void)unlink(tmp);
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        e = errno;
        return cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot write %s: %s", path,
                               strerror(e));
    }
    if (fchmod(fd, 0600) != 0) { /* exactly 0600, whatever the umask */
        e = errno;
        rc = cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot write %s: %s", path,
                             strerror(e));
        goto fail;
    }
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : ENOSPC;
            rc = cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot write %s: %s",
                                 path, strerror(e));
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        e = errno;
        rc = cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot write %s: %s", path,
                             strerror(e));
        goto fail;
    }
    e = close(fd) != 0 ? errno : 0;
    fd = -1;
    if (e) {
        rc = cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot write %s: %s", path,
                             strerror(e));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        rc = cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot replace %s: %s", path,
                             strerror(e));
        goto fail;
    }
    fsync_dir(dir); /* best effort: the new file is in place either way */
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    (void)unlink(tmp);
    return rc;
}

/* Creates dir (and its parents, mode 0700) unless it is a directory already. */
static int make_dir(const char *dir, char *errmsg, size_t errcap)
{
    int rc = cdt_mkdir_p(dir, 0700), e = errno;

    if (rc == 0)
        return 0;
    if (rc == CDT_EEXISTS)
        return cdt__errmsg_set(errmsg, errcap, CDT_EIO,
                               "cannot create %s: it or a parent is not a directory", dir);
    return cdt__errmsg_set(errmsg, errcap, rc, "cannot create %s: %s", dir, strerror(e));
}

/* Replaces or removes the api_key file so that it holds s->api_key. */
static int save_key(const char *dir, const char *key, char *errmsg, size_t errcap)
{
    char path[FILE_PATH_MAX], line[sizeof(((struct cdt_settings *)0)->api_key) + 1], *old;
    size_t n = strlen(key), len;
    bool over;
    int rc, e;

    snprintf(path, sizeof(path), "%s/" KEY_FILE, dir);
    if (n == 0) {
        if (unlink(path) != 0 && errno != ENOENT) {
            e = errno;
            return cdt__errmsg_set(errmsg, errcap, cdt__err_from_errno(e), "cannot remove %s: %s",
                                   path, strerror(e));
        }
        fsync_dir(dir);
        return 0;
    }
    memcpy(line, key, n);
    line[n] = '\n';
    /* Unchanged: leave the file (and its time stamp) alone; only tighten its mode. */
    if (read_file(path, KEY_FILE_MAX, &old, &len, &over, NULL, 0) == 0 && old && len == n + 1 &&
        memcmp(old, line, n + 1) == 0) {
        struct stat st;

        free(old);
        if (stat(path, &st) == 0 && (st.st_mode & 077))
            (void)chmod(path, 0600);
        return 0;
    }
    free(old);
    rc = write_atomic(dir, KEY_FILE, line, n + 1, errmsg, errcap);
    return rc;
}

/* Refuses values the API would refuse, so that a save never writes a file that
 * loads with warnings: s goes through set_field as JSON (a provider or output
 * outside its enum prints as "unknown", which is refused). */
static int check(const struct cdt_settings *s, char *errmsg, size_t errcap)
{
    struct cdt_settings *tmp;
    cJSON *o;
    int rc = 0;

    for (size_t i = 0; i < N_FIELDS; i++)
        if (fields[i].cap && !memchr((const char *)s + fields[i].off, '\0', fields[i].cap))
            return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                                   "settings not saved: %s is not NUL-terminated", fields[i].name);
    o = settings_object(s, false);
    tmp = malloc(sizeof(*tmp));
    if (!o || !tmp || !cJSON_AddStringToObject(o, "api_key", s->api_key)) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
    } else {
        *tmp = cdt_settings_defaults();
        rc = cdt_settings_apply_json(tmp, o, errmsg, errcap);
        if (rc == CDT_EINVAL) {
            char msg[256];

            snprintf(msg, sizeof(msg), "%s", errmsg ? errmsg : "");
            cdt__errmsg_set(errmsg, errcap, rc, "settings not saved: %s", msg);
        }
    }
    cJSON_Delete(o);
    free(tmp);
    return rc;
}

int cdt_settings_save(const char *dir, const struct cdt_settings *s, char *errmsg, size_t errcap)
{
    char d[CDT_SETTINGS_PATH_MAX], *text;
    cJSON *o;
    int rc;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if ((rc = check(s, errmsg, errcap)) != 0 || (rc = resolve_dir(dir, d, errmsg, errcap)) != 0 ||
        (rc = make_dir(d, errmsg, errcap)) != 0)
        return rc;
    o = settings_object(s, false);
    text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
    {
        struct cdt_buf b = {0};

        if (cdt_buf_appends(&b, text) != 0 || cdt_buf_appends(&b, "\n") != 0) {
            cdt_buf_cleanup(&b);
            free(text);
            return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
        }
        rc = write_atomic(d, SETTINGS_FILE, b.data, b.len, errmsg, errcap);
        cdt_buf_cleanup(&b);
    }
    free(text);
    if (rc == 0)
        rc = save_key(d, s->api_key, errmsg, errcap);
    return rc;
}
