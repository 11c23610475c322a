/* The app server (see server.h). */
#include "server.h"

#include "assets.h"
#include "codictate/app.h"
#include "codictate/httpd.h"
#include "codictate/json.h"
#include "codictate/log.h"
#include "codictate/refine.h"
#include "codictate/text.h"
#include "codictate/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_UPLOAD    (100 * 1024 * 1024) /* a dropped audio file, bytes */
#define SSE_QUEUE_MAX (4 * 1024 * 1024)   /* a subscriber further behind is dropped, bytes */
#define SSE_PING_MS   15000               /* keep-alive comment period, ms */
/* A quiet stream looks for its client this often, so that one gone between events
 * holds no thread until the next ping fails to go out, ms. */
#define SSE_GONE_CHECK_MS 1000
#define ID_MAX            128

/* ---- server-sent events ---- */

struct sub {
    struct cdt_app_server *srv;
    struct cdt_buf q; /* pending event text */
    size_t off;       /* bytes of q already sent */
    bool dropped;     /* fell too far behind */
    bool hello_sent;
    struct cdt_http_req *req; /* its request, alive while it streams */
    struct sub *next;
};

struct cdt_app_server {
    struct cdt_app *app;
    struct cdt_httpd *httpd;
    struct cdt_log *log;
    int port;
    pthread_mutex_t mu; /* subs, closing */
    pthread_cond_t cv;
    struct sub *subs;
    bool closing;
    int refining; /* streamed refinements whose worker still runs (refine_stream) */
};

/* Queues one event for u (lock held); out of memory drops the subscriber. */
static void queue_event(struct sub *u, const char *prefix, const char *name, const char *json)
{
    if (cdt_buf_append(&u->q, prefix, strlen(prefix)) != 0 ||
        cdt_buf_append(&u->q, "event: ", 7) != 0 ||
        cdt_buf_append(&u->q, name, strlen(name)) != 0 ||
        cdt_buf_append(&u->q, "\ndata: ", 7) != 0 ||
        cdt_buf_append(&u->q, json, strlen(json)) != 0 || cdt_buf_append(&u->q, "\n\n", 2) != 0)
        u->dropped = true;
}

static void publish(const char *name, const char *json, void *ud)
{
    struct cdt_app_server *s = ud;

    pthread_mutex_lock(&s->mu);
    for (struct sub *u = s->subs; u; u = u->next) {
        if (u->dropped)
            continue;
        if (u->q.len - u->off > SSE_QUEUE_MAX) {
            u->dropped = true;
            continue;
        }
        queue_event(u, "", name, json);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Copies up to cap queued bytes of q from *off into buf (lock held); the queue is
 * emptied once all of it was sent. Returns the bytes copied. */
static size_t drain(struct cdt_buf *q, size_t *off, char *buf, size_t cap)
{
    size_t k = q->len - *off < cap ? q->len - *off : cap;

    memcpy(buf, q->data + *off, k);
    *off += k;
    if (*off == q->len) {
        cdt_buf_truncate(q, 0);
        *off = 0;
    }
    return k;
}

static ssize_t sse_next(void *ud, char *buf, size_t cap)
{
    struct sub *u = ud;
    struct cdt_app_server *s = u->srv;
    double ping_ms;
    ssize_t n = 0;

    if (!u->hello_sent) {
        cJSON *st = cdt_app_status(s->app), *o = cJSON_CreateObject();
        char *text;

        u->hello_sent = true;
        if (o && st)
            cJSON_AddItemToObject(o, "status", st);
        else
            cJSON_Delete(st);
        text = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        pthread_mutex_lock(&s->mu);
        queue_event(u, "retry: 1000\n", "hello", text ? text : "{}");
        pthread_mutex_unlock(&s->mu);
        free(text);
    }
    ping_ms = cdt_now_ms() + SSE_PING_MS;
    pthread_mutex_lock(&s->mu);
    while (!s->closing && !u->dropped && u->q.len == u->off) {
        double now = cdt_now_ms();
        struct timespec until = cdt_ms_to_timespec(
            now + SSE_GONE_CHECK_MS < ping_ms ? now + SSE_GONE_CHECK_MS : ping_ms);

        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
            continue;
        if (cdt_now_ms() >= ping_ms)
            break;
        if (cdt_http_req_client_gone(u->req) == 1) {
            u->dropped = true; /* gone: the stream ends */
            break;
        }
    }
    if (s->closing || u->dropped) {
        n = 0;
    } else if (u->q.len == u->off) {
        n = snprintf(buf, cap, ": ping\n\n");
    } else {
        n = (ssize_t)drain(&u->q, &u->off, buf, cap);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void sse_done(void *ud, bool gone)
{
    struct sub *u = ud;
    struct cdt_app_server *s = u->srv;

    (void)gone;
    pthread_mutex_lock(&s->mu);
    for (struct sub **pp = &s->subs; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    cdt_buf_cleanup(&u->q);
    free(u);
}

static void events(struct cdt_app_server *s, struct cdt_http_req *req)
{
    struct sub *u = calloc(1, sizeof(*u));

    if (!u) {
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    u->srv = s;
    u->req = req;
    cdt_buf_init(&u->q);
    pthread_mutex_lock(&s->mu);
    u->next = s->subs;
    s->subs = u;
    pthread_mutex_unlock(&s->mu);
    cdt_http_add_header(req, "Cache-Control", "no-store");
    cdt_http_reply_stream(req, 200, "text/event-stream", sse_next, sse_done, u);
}

/* ---- replies ---- */

static void reply_json(struct cdt_http_req *req, int status, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;

    cJSON_Delete(o);
    if (!text) {
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    cdt_http_add_header(req, "Cache-Control", "no-store");
    cdt_http_reply(req, status, text, strlen(text), NULL);
    free(text);
}

/* The HTTP status an error code maps to, and its "code" name. */
static int err_status(int rc, const char **code_out)
{
    int status;
    const char *code;

    switch (rc) {
    case CDT_EINVAL:
    case CDT_EFORMAT:
        status = 400, code = "invalid";
        break;
    case CDT_ENOTFOUND:
        status = 404, code = "not_found";
        break;
    case CDT_EBUSY:
        status = 409, code = "busy";
        break;
    case CDT_ESTATE:
        status = 409, code = "state";
        break;
    case CDT_ETOOBIG:
        status = 413, code = "too_big";
        break;
    case CDT_ENOSPACE:
        status = 507, code = "disk_space";
        break;
    case CDT_EIO:
        status = 503, code = "unavailable";
        break;
    default:
        status = 500, code = "internal";
        break;
    }
    *code_out = code;
    return status;
}

/* {"detail", "code"} with the status an error code maps to. */
static void reply_err(struct cdt_http_req *req, int rc, const char *msg)
{
    const char *code;
    int status = err_status(rc, &code);
    cJSON *o = cJSON_CreateObject();

    if (o) {
        cJSON_AddStringToObject(o, "detail", msg && *msg ? msg : cdt_strerror(rc));
        cJSON_AddStringToObject(o, "code", code);
    }
    reply_json(req, status, o);
}

static void reply_file(struct cdt_http_req *req, const char *path, const char *type)
{
    struct stat st;
    char *data;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t off = 0;

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_UPLOAD) {
        if (fd >= 0)
            close(fd);
        cdt_http_reply_error(req, 404, "no such recording");
        return;
    }
    data = malloc((size_t)st.st_size + 1);
    while (data && off < (size_t)st.st_size) {
        ssize_t r = read(fd, data + off, (size_t)st.st_size - off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    if (!data || off != (size_t)st.st_size) {
        free(data);
        cdt_http_reply_error(req, 500, "cannot read the recording");
        return;
    }
    cdt_http_reply(req, 200, data, off, type);
    free(data);
}

/* ---- request checks ---- */

/* Origin, when present, must be this app's own page. */
static bool origin_ok(struct cdt_app_server *s, const char *origin)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
    char want[64];

    if (!origin)
        return true;
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        snprintf(want, sizeof(want), "http://%s:%d", hosts[i], s->port);
        if (strcmp(origin, want) == 0)
            return true;
    }
    return false;
}

static bool has_type(struct cdt_http_req *req, const char *prefix)
{
    const char *ct = cdt_http_req_header(req, "Content-Type");

    return ct && strncasecmp(ct, prefix, strlen(prefix)) == 0;
}

/* The JSON object body of a state-changing request, or NULL (answered). */
static cJSON *json_body(struct cdt_http_req *req)
{
    cJSON *o;

    if (!has_type(req, "application/json")) {
        cdt_http_reply_error(req, 415,
                             "state-changing requests need Content-Type: "
                             "application/json and a JSON object body");
        return NULL;
    }
    o = cdt_json_parse_strict(cdt_http_req_body(req), cdt_http_req_body_len(req), NULL);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        cdt_http_reply_error(req, 400, "the body is not a JSON object");
        return NULL;
    }
    return o;
}

static const char *opt_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* The optional "timeout_ms" of body (0 when absent): whole milliseconds, 1 to
 * CDT_REFINE_MAX_TIMEOUT_MS. Returns 0, or CDT_EINVAL with err. */
static int opt_timeout(const cJSON *body, long *ms, char *err, size_t errcap)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout_ms");

    *ms = 0;
    if (!t)
        return 0;
    if (!(cJSON_IsNumber(t) && t->valuedouble >= 1 &&
          t->valuedouble <= (double)CDT_REFINE_MAX_TIMEOUT_MS &&
          t->valuedouble == floor(t->valuedouble))) {
        snprintf(err, errcap, "\"timeout_ms\" must be whole milliseconds, 1 to %ld",
                 CDT_REFINE_MAX_TIMEOUT_MS);
        return CDT_EINVAL;
    }
    *ms = (long)t->valuedouble;
    return 0;
}

/* Splits "/api/<coll>/<id>/<verb>" (id without '/'). */
static bool split_item(const char *path, const char *coll, char *id, const char **verb)
{
    size_t n = strlen(coll);
    const char *p, *slash;

    if (strncmp(path, coll, n) != 0)
        return false;
    p = path + n;
    slash = strchr(p, '/');
    if (!slash || slash == p || (size_t)(slash - p) >= ID_MAX)
        return false;
    memcpy(id, p, (size_t)(slash - p));
    id[slash - p] = '\0';
    *verb = slash + 1;
    return strchr(*verb, '/') == NULL;
}

/* ---- routes ---- */

static void get_route(struct cdt_app_server *s, struct cdt_http_req *req, const char *path)
{
    char err[1024] = "", id[ID_MAX];
    const char *verb;

    if (strcmp(path, "/api/status") == 0)
        return reply_json(req, 200, cdt_app_status(s->app));
    if (strcmp(path, "/api/models") == 0)
        return reply_json(req, 200, cdt_app_models(s->app));
    if (strcmp(path, "/api/settings") == 0)
        return reply_json(req, 200, cdt_app_settings(s->app));
    if (strcmp(path, "/api/dictation") == 0)
        return reply_json(req, 200, cdt_app_dictation(s->app));
    if (strcmp(path, "/api/events") == 0)
        return events(s, req);
    if (strcmp(path, "/api/history") == 0) {
        cJSON *o = cdt_app_history(s->app, err, sizeof(err));

        return o ? reply_json(req, 200, o) : reply_err(req, CDT_EIO, err);
    }
    if (split_item(path, "/api/history/", id, &verb) && strcmp(verb, "audio") == 0) {
        char wav[4096];
        int rc = cdt_app_history_audio(s->app, id, wav, sizeof(wav));

        return rc == 0 ? reply_file(req, wav, "audio/wav")
                       : reply_err(req, rc, "no saved recording for this entry");
    }
    if (strncmp(path, "/api/", 5) == 0)
        return cdt_http_reply_error(req, 404, "no such API route: %.200s", path);
    {
        const struct cdt_asset *a = cdt_asset_find(path);

        if (!a)
            return cdt_http_reply_error(req, 404, "not found");
        cdt_http_reply(req, 200, (const char *)a->data, a->len, a->content_type);
    }
}

static void model_route(struct cdt_app_server *s, struct cdt_http_req *req, const char *id,
                        const char *verb, const cJSON *body)
{
    char err[1024] = "";
    int rc;

    if (strcmp(verb, "download") == 0)
        rc = cdt_app_model_download(s->app, id, opt_str(body, "token"), err, sizeof(err));
    else if (strcmp(verb, "cancel") == 0)
        rc = cdt_app_model_cancel(s->app, id, err, sizeof(err));
    else if (strcmp(verb, "delete") == 0)
        rc = cdt_app_model_delete(s->app, id, err, sizeof(err));
    else if (strcmp(verb, "use") == 0)
        rc = cdt_app_model_use(s->app, id, err, sizeof(err));
    else if (strcmp(verb, "load") == 0)
        rc = cdt_app_model_load(s->app, id, err, sizeof(err));
    else if (strcmp(verb, "unload") == 0)
        rc = (cdt_app_model_unload(s->app), 0);
    else
        return cdt_http_reply_error(req, 404, "no such model action: %.64s", verb);
    if (rc != 0)
        return reply_err(req, rc, err);
    if (strcmp(verb, "use") == 0)
        return reply_json(req, 200, cdt_app_settings(s->app));
    {
        cJSON *o = cJSON_CreateObject();

        if (o) {
            cJSON_AddStringToObject(o, "id", id);
            if (strcmp(verb, "download") == 0)
                cJSON_AddStringToObject(o, "state", "downloading");
        }
        reply_json(req, strcmp(verb, "download") == 0 || strcmp(verb, "load") == 0 ? 202 : 200, o);
    }
}

/* ---- a refinement streamed (POST /api/refine with "stream": true) ----
 *
 * The sidecar's stream protocol: "data: {json}\n\n" events, {"text": piece} as the
 * model generates (a preview, before the guards), then {"done": true, ...the refine
 * result} or {"done": true, "status": N, "detail": "..."}. A worker thread refines;
 * the connection's thread sends what it queued. Both hold a reference; the worker
 * stops at once when the client goes or the server closes. */
struct refine_stream {
    struct cdt_app_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cdt_buf q; /* events not yet sent */
    size_t off;
    char carry[4]; /* a piece's incomplete last UTF-8 character */
    size_t carry_len;
    bool finished, gone;
    int refs;
    cJSON *body; /* the request's (checked by post_route), for the worker */
    long timeout_ms;
};

static void rs_unref(struct refine_stream *rs)
{
    bool last;

    pthread_mutex_lock(&rs->mu);
    last = --rs->refs == 0;
    pthread_mutex_unlock(&rs->mu);
    if (!last)
        return;
    cdt_buf_cleanup(&rs->q);
    cJSON_Delete(rs->body);
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
    free(rs);
}

/* Queues o as one event (o consumed); last: the final one. */
static void rs_event(struct refine_stream *rs, cJSON *o, bool last)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;

    cJSON_Delete(o);
    pthread_mutex_lock(&rs->mu);
    if (s && (cdt_buf_append(&rs->q, "data: ", 6) != 0 || cdt_buf_appends(&rs->q, s) != 0 ||
              cdt_buf_append(&rs->q, "\n\n", 2) != 0))
        rs->gone = true; /* out of memory: the stream ends */
    if (last)
        rs->finished = true;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    free(s);
}

static void rs_delta(const char *piece, size_t len, void *ud)
{
    struct refine_stream *rs = ud; /* the worker's alone */
    char *out = cdt_utf8_carry(rs->carry, &rs->carry_len, piece, len);
    cJSON *o;

    if (out && out[0] && (o = cJSON_CreateObject()) != NULL) {
        cJSON_AddStringToObject(o, "text", out);
        rs_event(rs, o, false);
    }
    free(out);
}

static bool rs_stop(void *ud)
{
    struct refine_stream *rs = ud;
    bool stop;

    pthread_mutex_lock(&rs->mu);
    stop = rs->gone;
    pthread_mutex_unlock(&rs->mu);
    if (!stop) {
        pthread_mutex_lock(&rs->srv->mu);
        stop = rs->srv->closing;
        pthread_mutex_unlock(&rs->srv->mu);
    }
    return stop;
}

static void *rs_main(void *arg)
{
    struct refine_stream *rs = arg;
    struct cdt_app_server *s = rs->srv;
    char err[1024] = "";
    const char *code;
    cJSON *out = NULL;
    const char *text = opt_str(rs->body, "text");
    int rc =
        cdt_app_refine(s->app, text ? text : "", opt_str(rs->body, "prompt"),
                       opt_str(rs->body, "model"), opt_str(rs->body, "vocabulary"), rs->timeout_ms,
                       opt_str(rs->body, "ahead"), rs_delta, rs_stop, rs, &out, err, sizeof(err));

    if (rc == 0 && out) {
        cJSON_AddTrueToObject(out, "done");
    } else {
        cJSON_Delete(out);
        if ((out = cJSON_CreateObject()) != NULL) {
            cJSON_AddTrueToObject(out, "done");
            cJSON_AddNumberToObject(out, "status", err_status(rc ? rc : CDT_ENOMEM, &code));
            cJSON_AddStringToObject(out, "detail", err[0] ? err : cdt_strerror(rc));
            cJSON_AddStringToObject(out, "code", code);
        }
    }
    rs_event(rs, out, true);
    rs_unref(rs);
    pthread_mutex_lock(&s->mu);
    s->refining--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static ssize_t rs_next(void *ud, char *buf, size_t cap)
{
    struct refine_stream *rs = ud;
    struct timespec deadline = cdt_ms_to_timespec(cdt_now_ms() + SSE_PING_MS);
    ssize_t n;

    pthread_mutex_lock(&rs->mu);
    while (!rs->finished && !rs->gone && rs->q.len == rs->off)
        if (pthread_cond_timedwait(&rs->cv, &rs->mu, &deadline) == ETIMEDOUT)
            break;
    if (rs->q.len > rs->off)
        n = (ssize_t)drain(&rs->q, &rs->off, buf, cap);
    else if (rs->finished || rs->gone)
        n = 0;
    else
        n = snprintf(buf, cap, ": ping\n\n"); /* the model is still loading or thinking */
    pthread_mutex_unlock(&rs->mu);
    return n;
}

static void rs_done(void *ud, bool gone)
{
    struct refine_stream *rs = ud;

    pthread_mutex_lock(&rs->mu);
    rs->gone = rs->gone || gone || !rs->finished; /* the worker stops */
    pthread_mutex_unlock(&rs->mu);
    rs_unref(rs);
}

/* Starts a streamed refinement of body (checked; taken over when it starts): answered
 * as it goes. Returns 0, or an error before anything was sent (then the caller
 * answers it and still owns body). */
static int refine_stream(struct cdt_app_server *s, struct cdt_http_req *req, cJSON *body,
                         long timeout_ms)
{
    struct refine_stream *rs = calloc(1, sizeof(*rs));
    pthread_attr_t attr;
    pthread_t th;
    int rc;

    if (!rs)
        return CDT_ENOMEM;
    rs->srv = s;
    rs->refs = 2;
    rs->timeout_ms = timeout_ms;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    cdt_buf_init(&rs->q);
    pthread_mutex_lock(&s->mu);
    s->refining++;
    pthread_mutex_unlock(&s->mu);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rs->body = body;
    rc = pthread_create(&th, &attr, rs_main, rs);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&s->mu);
        s->refining--;
        pthread_mutex_unlock(&s->mu);
        rs->body = NULL; /* the caller's again */
        rs->refs = 1;
        rs_unref(rs);
        return CDT_ENOMEM;
    }
    cdt_http_add_header(req, "Cache-Control", "no-store");
    cdt_http_reply_stream(req, 200, "text/event-stream", rs_next, rs_done, rs);
    return 0;
}

/* A refine's should_stop: its client went away (`codictate dictate` cancelled while
 * it refined through the app): the model call is abandoned. */
static bool client_gone(void *req)
{
    return cdt_http_req_client_gone(req) != 0;
}

static void post_route(struct cdt_app_server *s, struct cdt_http_req *req, const char *path)
{
    char err[1024] = "", id[ID_MAX];
    const char *verb;
    cJSON *body, *out = NULL;
    int rc = 0;

    if (strcmp(path, "/api/transcribe") == 0) {
        if (!has_type(req, "audio/") && !has_type(req, "application/octet-stream"))
            return cdt_http_reply_error(req, 415,
                                        "send the audio file's bytes with Content-Type audio/* "
                                        "or application/octet-stream");
        rc = cdt_app_transcribe_bytes(s->app, cdt_http_req_body(req), cdt_http_req_body_len(req),
                                      err, sizeof(err));
        return rc == 0 ? reply_json(req, 202, cdt_app_dictation(s->app)) : reply_err(req, rc, err);
    }
    if (!(body = json_body(req)))
        return;
    if (strcmp(path, "/api/settings") == 0) {
        rc = cdt_app_settings_update(s->app, body, err, sizeof(err));
        if (rc == 0)
            out = cdt_app_settings(s->app);
    } else if (strncmp(path, "/api/dictation/", 15) == 0) {
        const char *what = path + 15;

        if (strcmp(what, "start") == 0) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "max_seconds");

            rc = cdt_app_dictation_start(s->app, cJSON_IsNumber(m) ? m->valuedouble : 0, err,
                                         sizeof(err));
        } else if (strcmp(what, "stop") == 0) {
            rc = cdt_app_dictation_stop(s->app, err, sizeof(err));
        } else if (strcmp(what, "cancel") == 0) {
            rc = cdt_app_dictation_cancel(s->app, err, sizeof(err));
        } else if (strcmp(what, "toggle") == 0) {
            rc = cdt_app_dictation_toggle(s->app, err, sizeof(err));
        } else {
            rc = CDT_ENOTFOUND;
            snprintf(err, sizeof(err), "no such dictation action");
        }
        if (rc == 0)
            out = cdt_app_dictation(s->app);
    } else if (strcmp(path, "/api/refine") == 0) {
        const char *text = opt_str(body, "text"), *ahead = opt_str(body, "ahead");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, "ahead");
        long ms = 0;

        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "text"))) {
            rc = CDT_EINVAL;
            snprintf(err, sizeof(err), "\"text\" must be a string");
        } else if ((rc = opt_timeout(body, &ms, err, sizeof(err))) == 0 && a &&
                   (!ahead || strlen(ahead) >= CDT_APP_AHEAD_ID_CAP)) {
            rc = CDT_EINVAL;
            snprintf(err, sizeof(err), "\"ahead\" must be the id of a refinement ahead");
        } else if (rc == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"))) {
            if ((rc = refine_stream(s, req, body, ms)) == 0)
                return; /* answered as it goes; the stream has the body */
        } else if (rc == 0) {
            rc = cdt_app_refine(s->app, text ? text : "", opt_str(body, "prompt"),
                                opt_str(body, "model"), opt_str(body, "vocabulary"), ms, ahead,
                                NULL, client_gone, req, &out, err, sizeof(err));
        }
    } else if (strcmp(path, "/api/refine/ahead") == 0) {
        char aid[CDT_APP_AHEAD_ID_CAP];
        long ms = 0;

        if ((rc = opt_timeout(body, &ms, err, sizeof(err))) == 0)
            rc = cdt_app_refine_ahead_new(s->app, opt_str(body, "prompt"), opt_str(body, "model"),
                                          opt_str(body, "vocabulary"), ms, aid, err, sizeof(err));
        if (rc == 0 && (out = cJSON_CreateObject()) != NULL)
            cJSON_AddStringToObject(out, "id", aid);
    } else if (split_item(path, "/api/refine/ahead/", id, &verb)) {
        size_t pieces = 0;

        if (strcmp(verb, "offer") == 0) {
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "text"))) {
                rc = CDT_EINVAL;
                snprintf(err, sizeof(err), "\"text\" must be a string");
            } else {
                rc = cdt_app_refine_ahead_offer(
                    s->app, id, cJSON_GetObjectItemCaseSensitive(body, "text")->valuestring,
                    &pieces, err, sizeof(err));
            }
            if (rc == 0 && (out = cJSON_CreateObject()) != NULL)
                cJSON_AddNumberToObject(out, "pieces", (double)pieces);
        } else if (strcmp(verb, "delete") == 0) {
            rc = cdt_app_refine_ahead_delete(s->app, id, err, sizeof(err));
        } else {
            rc = CDT_ENOTFOUND;
            snprintf(err, sizeof(err), "no such refinement ahead action");
        }
    } else if (split_item(path, "/api/models/", id, &verb)) {
        model_route(s, req, id, verb, body);
        cJSON_Delete(body);
        return;
    } else if (split_item(path, "/api/history/", id, &verb)) {
        if (strcmp(verb, "refine") == 0) {
            rc = cdt_app_history_refine(s->app, id, opt_str(body, "prompt"), opt_str(body, "model"),
                                        &out, err, sizeof(err));
        } else if (strcmp(verb, "retry") == 0) {
            rc = cdt_app_history_retry(s->app, id, err, sizeof(err));
            if (rc == 0)
                out = cdt_app_dictation(s->app);
        } else if (strcmp(verb, "delete") == 0) {
            rc = cdt_app_history_delete(s->app, id, err, sizeof(err));
            if (rc == 0)
                out = cJSON_CreateObject();
        } else {
            rc = CDT_ENOTFOUND;
            snprintf(err, sizeof(err), "no such history action");
        }
    } else {
        rc = CDT_ENOTFOUND;
        snprintf(err, sizeof(err), "no such API route: %.200s", path);
    }
    cJSON_Delete(body);
    if (rc != 0)
        return reply_err(req, rc, err);
    reply_json(req, 200, out ? out : cJSON_CreateObject());
}

static void handle(struct cdt_http_req *req, void *ud)
{
    struct cdt_app_server *s = ud;
    const char *method = cdt_http_req_method(req), *path = cdt_http_req_path(req);

    if (!origin_ok(s, cdt_http_req_header(req, "Origin")))
        return cdt_http_reply_error(req, 403, "cross-origin requests are refused");
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return get_route(s, req, path);
    if (strcmp(method, "POST") == 0)
        return post_route(s, req, path);
    cdt_http_add_header(req, "Allow", "GET, POST");
    cdt_http_reply_error(req, 405, "method not allowed");
}

int cdt_app_server_new(const struct cdt_app_params *params, int port, struct cdt_app_server **out,
                       char *errmsg, size_t errcap)
{
    struct cdt_httpd_params hp = cdt_httpd_default_params();
    struct cdt_app_params ap = *params;
    struct cdt_app_server *s;
    int rc;

    *out = NULL;
    if (!(s = calloc(1, sizeof(*s))))
        return CDT_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    s->log = params->log;
    s->port = port;
    ap.port = port;
    ap.on_event = publish;
    ap.user_data = s;
    rc = cdt_app_new(&ap, &s->app, errmsg, errcap);
    if (rc != 0)
        goto fail;
    hp.port_min = hp.port_max = port;
    hp.max_body = MAX_UPLOAD;
    hp.handler = handle;
    hp.user_data = s;
    hp.log = params->log;
    rc = cdt_httpd_new(&hp, &s->httpd, errmsg, errcap);
    if (rc != 0)
        goto fail;
    s->port = cdt_httpd_port(s->httpd);
    *out = s;
    return 0;
fail:
    cdt_app_server_free(s);
    return rc;
}

int cdt_app_server_port(const struct cdt_app_server *s)
{
    return s->port;
}

void cdt_app_server_free(struct cdt_app_server *s)
{
    if (!s)
        return;
    if (s->httpd)
        cdt_httpd_quiesce(s->httpd);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    cdt_httpd_free(s->httpd);
    pthread_mutex_lock(&s->mu); /* their model calls see closing and return */
    while (s->refining > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    cdt_app_free(s->app);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
