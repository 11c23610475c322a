/* The sidecar (see sidecar.h).
 *
 * Invariants, all under `lock`: `head..tail` is the FIFO of jobs not yet started
 * (at most queue_max); `running` is the job the worker is executing (or NULL);
 * `loaded`/`info` describe the backend's model and change only on the worker, under
 * the lock. A job is freed when its last reference goes (the worker's and the
 * route's, which a stream takes over). Streamed text flows worker → `sbuf` → the
 * connection thread, which blocks in the stream reader until there is more. */
#include "sidecar_int.h"

#include "codictate/json.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"
#include "codictate/text.h"
#include "codictate/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CDT_MAX_SESSION_ID 64                 /* X-Session-Id bytes kept for logs */
#define CDT_MAX_TIMEOUT_MS (24 * 3600 * 1000) /* longest timeout_ms accepted */

struct cdt_sidecar_params cdt_sidecar_default_params(void)
{
    struct cdt_sidecar_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

/* The seed's sampling defaults (DESIGN.md): temperature 0.7, top_p 0.8, repetition
 * penalty 1.15 over the last 64 tokens, min_p off, max_tokens automatic. */
struct cdt_gen_params cdt_gen_params_default(void)
{
    struct cdt_gen_params p;

    memset(&p, 0, sizeof(p));
    p.max_tokens = -1;
    p.system_ram_gb = 16;
    p.temperature = 0.7f;
    p.top_p = 0.8f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.15f;
    p.repeat_last_n = 64;
    p.speculative = true;
    return p;
}

/* ---- jobs and the worker ---- */

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->model_path);
    free(j->warmup_prompt);
    free(j->prompt);
    cJSON_Delete(j->messages_json);
    for (int i = 0; i < j->n_stop; i++)
        free(j->stop[i]);
    cdt_buf_cleanup(&j->text);
    cdt_buf_cleanup(&j->sbuf);
    free(j->res.text);
    if (j->api_free)
        j->api_free(j->api);
    free(j);
}

/* Called with the lock held. */
static void release_locked(struct job *j)
{
    if (--j->refs == 0)
        job_free(j);
}

void cdt__job_release(struct cdt_sidecar *s, struct job *j)
{
    pthread_mutex_lock(&s->lock);
    release_locked(j);
    pthread_mutex_unlock(&s->lock);
}

struct job *cdt__job_new_generate(void)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->kind = JOB_GENERATE;
    j->refs = 1;
    j->gp = cdt_gen_params_default();
    atomic_init(&j->gone, false);
    return j;
}

/* Called with the lock held: the job ended (done) and the worker lets go of it. */
static void finish(struct cdt_sidecar *s, struct job *j)
{
    j->done = true;
    j->started = true;
    pthread_cond_broadcast(&s->done_cv);
    release_locked(j);
}

static int should_cancel(void *ud)
{
    struct job *j = ud;

    return atomic_load(&j->s->stopping) || atomic_load(&j->gone) ||
           (j->req && cdt_http_req_client_gone(j->req));
}

/* Appends an event to the job's stream buffer and frees it (out of memory: the
 * event is dropped); lock held. */
static void sbuf_append(struct job *j, char *ev)
{
    int rc;

    if (!ev)
        return;
    rc = cdt_buf_appends(&j->sbuf, ev);
    (void)rc; /* out of memory: this event is dropped, the stream goes on */
    free(ev);
}

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * character. */
static size_t utf8_floor(const char *s, size_t n)
{
    size_t i = n;

    while (i > 0 && i > n - 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0 && ((unsigned char)s[i - 1] & 0x80)) {
        unsigned char c = (unsigned char)s[i - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (n - (i - 1) < need)
            return i - 1;
    }
    return n;
}

/* Formats text[emitted..upto) into the stream; lock held. */
static void emit_upto(struct job *j, size_t upto)
{
    if (upto > j->emitted && j->format) {
        sbuf_append(j, j->format(j, j->text.data + j->emitted, upto - j->emitted));
        j->emitted = upto;
    }
}

/* The engine's text callback (worker thread): applies stop sequences, keeps the
 * text, and feeds the stream, holding back what could still become a stop. */
static int on_text(const char *piece, size_t len, void *ud)
{
    struct job *j = ud;
    struct cdt_sidecar *s = j->s;
    size_t from;

    if (cdt_buf_append(&j->text, piece, len) != 0)
        return 1;

    /* A stop sequence can only end inside the new piece. */
    from = j->text.len > len + j->stop_maxlen ? j->text.len - len - j->stop_maxlen : 0;
    for (int i = 0; i < j->n_stop; i++) {
        char *hit = strstr(j->text.data + from, j->stop[i]);
        if (hit && (size_t)(hit - j->text.data) < j->text.len) {
            cdt_buf_truncate(&j->text, (size_t)(hit - j->text.data));
            j->stop_hit = true;
        }
    }
    if (j->stream) {
        size_t safe = j->text.len;

        if (!j->stop_hit && j->stop_maxlen > 1)
            safe = j->text.len > j->stop_maxlen - 1 ? j->text.len - (j->stop_maxlen - 1) : 0;
        safe = utf8_floor(j->text.data, safe);
        pthread_mutex_lock(&s->lock);
        if (safe > j->emitted)
            emit_upto(j, safe);
        j->started = true;
        pthread_cond_broadcast(&s->done_cv);
        pthread_mutex_unlock(&s->lock);
    }
    return j->stop_hit;
}

static void run_job(struct cdt_sidecar *s, struct job *j)
{
    struct cdt_model_info info;

    switch (j->kind) {
    case JOB_LOAD:
        memset(&info, 0, sizeof(info));
        j->rc =
            s->be->ops->load(s->be, j->model_path, s->n_ctx, &info, j->errmsg, sizeof(j->errmsg));
        if (j->rc == 0 && j->warmup_prompt && s->be->ops->warmup) {
            char werr[256] = "";
            int wrc = s->be->ops->warmup(s->be, j->warmup_prompt, &info, werr, sizeof(werr));
            if (wrc != 0)
                CDT_LOG_W(s->log, "warm-up failed (the model stays loaded): %s", werr);
        }
        j->prefill_ms = info.prefill_ms;
        j->decode_ms = info.decode_ms;
        pthread_mutex_lock(&s->lock);
        s->loaded = j->rc == 0;
        if (j->rc == 0)
            s->info = info;
        else
            memset(&s->info, 0, sizeof(s->info));
        pthread_mutex_unlock(&s->lock);
        if (j->rc == 0)
            CDT_LOG_I(s->log, "loaded %s (%s, context %d)", info.path, info.desc, info.n_ctx);
        else
            CDT_LOG_W(s->log, "load failed: %s", j->errmsg);
        break;
    case JOB_UNLOAD:
        pthread_mutex_lock(&s->lock);
        j->was_loaded = s->loaded;
        pthread_mutex_unlock(&s->lock);
        s->be->ops->unload(s->be);
        pthread_mutex_lock(&s->lock);
        s->loaded = false;
        memset(&s->info, 0, sizeof(s->info));
        pthread_mutex_unlock(&s->lock);
        j->rc = 0;
        break;
    case JOB_GENERATE:
        if (should_cancel(j)) {
            j->rc = CDT_ECANCELED;
            break;
        }
        j->gp.should_cancel = should_cancel;
        j->gp.on_text = on_text;
        j->gp.user_data = j;
        j->rc = s->be->ops->generate(s->be, &j->gp, &j->res);
        if (j->rc != 0 && !j->errmsg[0])
            snprintf(j->errmsg, sizeof(j->errmsg), "%s", j->res.errmsg);
        /* A backend that returns its text without on_text: pass it through once. */
        if (j->rc == 0 && !j->text.data && j->res.text && *j->res.text)
            on_text(j->res.text, strlen(j->res.text), j);
        if (j->rc == 0 && !j->text.data && cdt_buf_reserve(&j->text, 0) != 0)
            j->rc = CDT_ENOMEM; /* nothing generated, and no memory for "" */
        break;
    }
}

static void *worker_main(void *arg)
{
    struct cdt_sidecar *s = arg;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct job *j;

        while (!s->head && !atomic_load(&s->stopping))
            pthread_cond_wait(&s->work_cv, &s->lock);
        j = s->head;
        if (!j)
            break; /* stopping and drained */
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        s->n_queued--;
        if (atomic_load(&s->stopping)) {
            j->rc = CDT_ECANCELED;
            snprintf(j->errmsg, sizeof(j->errmsg), "the sidecar is shutting down");
            finish(s, j);
            continue;
        }
        s->running = j;
        if (j->kind == JOB_LOAD) /* the old model goes first, as in the seed */
            s->loaded = false;
        pthread_mutex_unlock(&s->lock);
        run_job(s, j);
        pthread_mutex_lock(&s->lock);
        s->running = NULL;
        finish(s, j);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Queues j. Returns 0, CDT_EBUSY (queue full) or CDT_ECANCELED (stopping). */
static int submit(struct cdt_sidecar *s, struct job *j)
{
    int rc = 0;

    j->s = s;
    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->stopping))
        rc = CDT_ECANCELED;
    else if (s->n_queued >= s->queue_max)
        rc = CDT_EBUSY;
    if (rc == 0) {
        j->refs++; /* the worker's */
        if (s->tail)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        s->n_queued++;
        pthread_cond_signal(&s->work_cv);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* The seed API's error body: {"detail": "..."}. */
static void seed_err(struct cdt_http_req *req, int status, const char *param, const char *fmt, ...)
    CDT_PRINTF(4, 5);

static void seed_err(struct cdt_http_req *req, int status, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    (void)param;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cdt_http_reply_error(req, status, "%s", msg);
}

/* Queues j; answers 503 itself when refused. */
static int submit_or_reply(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j,
                           cdt_reply_err err)
{
    int rc = submit(s, j);

    if (rc == CDT_EBUSY)
        err(req, 503, NULL, "Server busy: %d requests already waiting; retry later", s->queue_max);
    else if (rc != 0)
        err(req, 503, NULL, "The sidecar is shutting down");
    return rc;
}

static bool submit_and_wait(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j)
{
    j->req = req;
    if (submit_or_reply(s, req, j, seed_err) != 0)
        return false;
    pthread_mutex_lock(&s->lock);
    while (!j->done)
        pthread_cond_wait(&s->done_cv, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return true;
}

int cdt__run_generate(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j,
                      cdt_reply_err err)
{
    int rc;

    /* A waiting request is polled for disconnects; a stream notices them itself. */
    j->req = j->stream ? NULL : req;
    rc = submit_or_reply(s, req, j, err);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&s->lock);
    while (!(j->stream ? j->started : j->done))
        pthread_cond_wait(&s->done_cv, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* ---- streaming ---- */

struct job_stream {
    struct cdt_sidecar *s;
    struct job *j;
};

static ssize_t stream_next(void *ud, char *buf, size_t cap)
{
    struct job_stream *st = ud;
    struct cdt_sidecar *s = st->s;
    struct job *j = st->j;
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (j->soff < j->sbuf.len) {
            n = j->sbuf.len - j->soff < cap ? j->sbuf.len - j->soff : cap;
            memcpy(buf, j->sbuf.data + j->soff, n);
            j->soff += n;
            break;
        }
        if (j->done) {
            if (j->final_sent)
                break; /* n = 0: end of stream */
            j->final_sent = true;
            if (j->rc == 0)
                emit_upto(j, j->text.len); /* what was held back for stop sequences */
            if (j->format)
                sbuf_append(j, j->format(j, NULL, 0));
            continue;
        }
        pthread_cond_wait(&s->done_cv, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return (ssize_t)n;
}

static void stream_done(void *ud, bool gone)
{
    struct job_stream *st = ud;

    if (gone)
        atomic_store(&st->j->gone, true); /* cancels the generation */
    cdt__job_release(st->s, st->j);
    free(st);
}

void cdt__reply_job_stream(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j)
{
    struct job_stream *st = malloc(sizeof(*st));

    if (!st) {
        atomic_store(&j->gone, true);
        cdt__job_release(s, j);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    st->s = s;
    st->j = j;
    cdt_http_reply_stream(req, 200, "text/event-stream", stream_next, stream_done, st);
}

char *cdt__sse_event(cJSON *o)
{
    char *json = o ? cJSON_PrintUnformatted(o) : NULL;
    char *ev = NULL;
    size_t n;

    cJSON_Delete(o);
    if (!json)
        return NULL;
    n = strlen(json) + 9;
    ev = malloc(n);
    if (ev)
        snprintf(ev, n, "data: %s\n\n", json);
    free(json);
    return ev;
}

/* ---- JSON helpers ---- */

void cdt__reply_json(struct cdt_http_req *req, int status, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;

    cJSON_Delete(o);
    if (!text) {
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    cdt_http_reply(req, status, text, strlen(text), NULL);
    free(text);
}

cJSON *cdt__parse_body(struct cdt_http_req *req, cdt_reply_err err)
{
    const char *body = cdt_http_req_body(req);
    size_t len = cdt_http_req_body_len(req);
    size_t off = 0;
    cJSON *o;

    if (len == 0) {
        err(req, 422, NULL, "body: a JSON object is required");
        return NULL;
    }
    o = cdt_json_parse_strict(body, len, &off);
    if (!o) {
        int line = 1, col = 1;

        if (off > len)
            off = len;
        for (size_t i = 0; i < off; i++) {
            if (body[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        err(req, 400, NULL, "Malformed JSON at line %d, column %d", line, col);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        err(req, 422, NULL, "body: must be a JSON object");
        return NULL;
    }
    return o;
}

bool cdt__opt_number(struct cdt_http_req *req, const cJSON *o, const char *name, double lo,
                     double hi, bool integer, double *out, cdt_reply_err err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        err(req, 422, name, "%s: must be a number", name);
        return false;
    }
    if (integer && v->valuedouble != floor(v->valuedouble)) {
        err(req, 422, name, "%s: must be an integer", name);
        return false;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        err(req, 422, name, "%s: must be between %g and %g", name, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

bool cdt__opt_bool(struct cdt_http_req *req, const cJSON *o, const char *name, bool *out,
                   cdt_reply_err err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v)) {
        err(req, 422, name, "%s: must be true or false", name);
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

/* A required string field; answers 422 and returns NULL when missing or wrong. */
static const char *req_string(struct cdt_http_req *req, const cJSON *o, const char *name,
                              bool allow_empty)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!v || cJSON_IsNull(v)) {
        cdt_http_reply_error(req, 422, "%s: field required", name);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        cdt_http_reply_error(req, 422, "%s: must be a string", name);
        return NULL;
    }
    if (!allow_empty && !*v->valuestring) {
        cdt_http_reply_error(req, 422, "%s: must not be empty", name);
        return NULL;
    }
    return v->valuestring;
}

static bool add_stop(struct job *j, const char *stop, struct cdt_http_req *req, cdt_reply_err err)
{
    size_t n = strlen(stop);

    if (n == 0)
        return true;
    if (n > CDT_MAX_STOP_LEN || j->n_stop >= CDT_MAX_STOP) {
        err(req, 422, "stop", "stop: at most %d sequences of at most %d bytes", CDT_MAX_STOP,
            CDT_MAX_STOP_LEN);
        return false;
    }
    j->stop[j->n_stop] = strdup(stop);
    if (!j->stop[j->n_stop]) {
        err(req, 500, NULL, "out of memory");
        return false;
    }
    j->n_stop++;
    if (n > j->stop_maxlen)
        j->stop_maxlen = n;
    return true;
}

bool cdt__parse_gen_options(struct cdt_http_req *req, const cJSON *body, struct job *j,
                            cdt_reply_err err)
{
    struct cdt_gen_params *gp = &j->gp;
    double max_tokens = -1, ram = gp->system_ram_gb, temp = gp->temperature, top_p = gp->top_p,
           min_p = gp->min_p, rep = gp->repetition_penalty, seed = -1, timeout_ms = 0;
    bool ignore_eos = gp->ignore_eos, speculative = gp->speculative;
    const cJSON *stop;

    if (!cdt__opt_number(req, body, "max_tokens", -1, 1e7, true, &max_tokens, err) ||
        !cdt__opt_number(req, body, "system_ram_gb", 0, 1e6, false, &ram, err) ||
        !cdt__opt_number(req, body, "temperature", 0, 100, false, &temp, err) ||
        !cdt__opt_number(req, body, "top_p", 0, 1, false, &top_p, err) ||
        !cdt__opt_number(req, body, "min_p", 0, 1, false, &min_p, err) ||
        !cdt__opt_number(req, body, "repetition_penalty", 0.01, 100, false, &rep, err) ||
        !cdt__opt_number(req, body, "seed", 0, 4294967295.0, true, &seed, err) ||
        !cdt__opt_number(req, body, "timeout_ms", 1, CDT_MAX_TIMEOUT_MS, true, &timeout_ms, err) ||
        !cdt__opt_bool(req, body, "ignore_eos", &ignore_eos, err) ||
        !cdt__opt_bool(req, body, "speculative", &speculative, err))
        return false;
    if (max_tokens == 0) {
        err(req, 422, "max_tokens", "max_tokens: must be -1 (automatic) or at least 1");
        return false;
    }
    stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (cJSON_IsString(stop)) {
        if (!add_stop(j, stop->valuestring, req, err))
            return false;
    } else if (cJSON_IsArray(stop)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, stop)
        {
            if (!cJSON_IsString(it)) {
                err(req, 422, "stop", "stop: must be a string or an array of strings");
                return false;
            }
            if (!add_stop(j, it->valuestring, req, err))
                return false;
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        err(req, 422, "stop", "stop: must be a string or an array of strings");
        return false;
    }
    gp->max_tokens = (int)max_tokens;
    gp->system_ram_gb = ram < 1 ? 1 : (int)lround(ram);
    gp->temperature = (float)temp;
    /* top_p 0 asks for the most likely token only (as llama-server): the smallest
     * nucleus, not "off" (which 0 means inside the engine's params). */
    gp->top_p = top_p > 0 ? (float)top_p : CDT_TOP_P_MIN;
    gp->min_p = (float)min_p;
    gp->repetition_penalty = (float)rep;
    gp->has_seed = seed >= 0;
    gp->seed = gp->has_seed ? (uint32_t)seed : 0;
    gp->ignore_eos = ignore_eos;
    gp->speculative = speculative;
    if (timeout_ms > 0)
        gp->deadline_ns = cdt_now_ns() + (int64_t)timeout_ms * 1000000;
    return true;
}

/* ---- seed routes ---- */

static const char *state_name(const struct cdt_sidecar *s)
{
    if (s->running && s->running->kind == JOB_LOAD)
        return "loading";
    if (s->running && s->running->kind == JOB_GENERATE)
        return "generating";
    return s->loaded ? "ready" : "idle";
}

/* "speed": the speeds measured at load, when they were (cdt_model_info). */
static void add_speed(cJSON *o, double prefill_ms, double decode_ms)
{
    cJSON *sp;

    if (prefill_ms <= 0.0 || decode_ms <= 0.0 || !(sp = cJSON_AddObjectToObject(o, "speed")))
        return;
    cJSON_AddNumberToObject(sp, "prefill_ms_per_token", prefill_ms);
    cJSON_AddNumberToObject(sp, "decode_ms_per_token", decode_ms);
}

static void route_status(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *o = cJSON_CreateObject(), *m;

    if (!o) {
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    pthread_mutex_lock(&s->lock);
    cJSON_AddStringToObject(o, "status", "running");
    cJSON_AddBoolToObject(o, "model_loaded", s->loaded);
    if (s->loaded)
        cJSON_AddStringToObject(o, "model_path", s->info.path);
    else
        cJSON_AddNullToObject(o, "model_path");
    cJSON_AddStringToObject(o, "state", state_name(s));
    if (s->loaded) {
        m = cJSON_AddObjectToObject(o, "model");
        cJSON_AddStringToObject(m, "path", s->info.path);
        cJSON_AddStringToObject(m, "name", s->info.name);
        cJSON_AddStringToObject(m, "architecture", s->info.arch);
        cJSON_AddStringToObject(m, "description", s->info.desc);
        cJSON_AddNumberToObject(m, "parameters", (double)s->info.n_params);
        cJSON_AddNumberToObject(m, "file_size", (double)s->info.file_size);
        cJSON_AddNumberToObject(m, "context", s->info.n_ctx);
        cJSON_AddNumberToObject(m, "context_train", s->info.n_ctx_train);
        cJSON_AddBoolToObject(m, "chat_template", s->info.has_template);
        add_speed(m, s->info.prefill_ms, s->info.decode_ms);
    } else {
        cJSON_AddNullToObject(o, "model");
    }
    m = cJSON_AddObjectToObject(o, "queue");
    cJSON_AddNumberToObject(m, "waiting", s->n_queued);
    cJSON_AddNumberToObject(m, "capacity", s->queue_max);
    pthread_mutex_unlock(&s->lock);
    m = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(m, "rss_bytes", (double)cdt_sysinfo_process_rss());
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cdt__reply_json(req, 200, o);
}

static void route_health(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    bool loading;
    cJSON *o = cJSON_CreateObject();

    pthread_mutex_lock(&s->lock);
    loading = s->running && s->running->kind == JOB_LOAD;
    pthread_mutex_unlock(&s->lock);
    cJSON_AddStringToObject(o, "status", loading ? "loading" : "ok");
    cdt__reply_json(req, loading ? 503 : 200, o);
}

static void route_load(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *body = cdt__parse_body(req, seed_err), *o, *w;
    const char *path;
    struct job *j;

    if (!body)
        return;
    path = req_string(req, body, "model_path", false);
    w = cJSON_GetObjectItemCaseSensitive(body, "warmup_prompt");
    if (!path || (w && !cJSON_IsNull(w) && !cJSON_IsString(w))) {
        if (path)
            cdt_http_reply_error(req, 422, "warmup_prompt: must be a string");
        cJSON_Delete(body);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j || !(j->model_path = strdup(path)) ||
        (cJSON_IsString(w) && !(j->warmup_prompt = strdup(w->valuestring)))) {
        if (j)
            free(j->model_path);
        free(j);
        cJSON_Delete(body);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    cJSON_Delete(body);
    j->kind = JOB_LOAD;
    j->refs = 1;
    if (submit_and_wait(s, req, j)) {
        if (j->rc == 0) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "status", "loaded");
            cJSON_AddStringToObject(o, "model_path", j->model_path);
            add_speed(o, j->prefill_ms, j->decode_ms);
            cdt__reply_json(req, 200, o);
        } else if (j->rc == CDT_ECANCELED) {
            cdt_http_reply_error(req, 503, "The sidecar is shutting down");
        } else {
            cdt_http_reply_error(req, 500, "Failed to load model: %s", j->errmsg);
        }
    }
    cdt__job_release(s, j);
}

static void route_unload(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    struct job *j = calloc(1, sizeof(*j));
    bool was_loaded;
    cJSON *o;

    if (!j) {
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    j->kind = JOB_UNLOAD;
    j->refs = 1;
    if (submit_and_wait(s, req, j)) {
        pthread_mutex_lock(&s->lock);
        was_loaded = j->was_loaded;
        pthread_mutex_unlock(&s->lock);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", was_loaded ? "unloaded" : "no_model_loaded");
        cJSON_AddBoolToObject(o, "model_loaded", false);
        cJSON_AddNullToObject(o, "model_path");
        cdt__reply_json(req, 200, o);
    }
    cdt__job_release(s, j);
}

/* POST /tokenize {"content": text} -> {"n_tokens": N}: the tokens of text as a
 * message's content, counted by the loaded model's tokenizer on the connection's
 * thread (a generation under way goes on; the refine path sizes its requests with
 * it). */
static void route_tokenize(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *body = cdt__parse_body(req, seed_err), *o;
    const char *text;
    int n = 0, rc;

    if (!body)
        return;
    text = req_string(req, body, "content", true);
    if (!text) {
        cJSON_Delete(body);
        return;
    }
    rc = s->be->ops->count_tokens ? s->be->ops->count_tokens(s->be, text, strlen(text), &n)
                                  : CDT_EUNSUPPORTED;
    cJSON_Delete(body);
    if (rc == CDT_ESTATE) {
        cdt_http_reply_error(req, 400, CDT_NO_MODEL_MSG);
    } else if (rc == CDT_EUNSUPPORTED) {
        cdt_http_reply_error(req, 501, "This backend does not count tokens");
    } else if (rc != 0) {
        cdt_http_reply_error(req, 413, "content: too long to count");
    } else if (!(o = cJSON_CreateObject()) || !cJSON_AddNumberToObject(o, "n_tokens", n)) {
        cJSON_Delete(o);
        cdt_http_reply_error(req, 500, "out of memory");
    } else {
        cdt__reply_json(req, 200, o);
    }
}

static void add_timings(cJSON *o, const struct cdt_gen_timings *t)
{
    cJSON *x = cJSON_AddObjectToObject(o, "timings");

    cJSON_AddNumberToObject(x, "prompt_tokens", t->prompt_tokens);
    cJSON_AddNumberToObject(x, "cached_tokens", t->cached_tokens);
    cJSON_AddNumberToObject(x, "prompt_tokens_evaluated", t->prompt_tokens_evaluated);
    cJSON_AddNumberToObject(x, "prompt_ms", t->prompt_ms);
    cJSON_AddNumberToObject(x, "generated_tokens", t->generated_tokens);
    cJSON_AddNumberToObject(x, "generation_ms", t->generation_ms);
    cJSON_AddNumberToObject(x, "tokens_per_second", t->tokens_per_second);
    cJSON_AddNumberToObject(x, "draft_tokens", t->draft_tokens);
    cJSON_AddNumberToObject(x, "accepted_tokens", t->accepted_tokens);
    cJSON_AddStringToObject(x, "sampler", t->sampler ? t->sampler : "cpu");
    if (t->threads > 0)
        cJSON_AddNumberToObject(x, "threads", t->threads);
}

/* The /generate result object (the response cleaned as the seed does, or as
 * generated with "raw": true; counts, timings); NULL on OOM. */
static cJSON *generate_result(struct job *j)
{
    cJSON *o = cJSON_CreateObject();
    char *clean =
        j->raw ? strdup(j->text.data ? j->text.data : "") : cdt_text_clean_response(j->text.data);

    if (!o || !clean) {
        cJSON_Delete(o);
        free(clean);
        return NULL;
    }
    cJSON_AddStringToObject(o, "response", clean);
    free(clean);
    cJSON_AddNumberToObject(o, "tokens_generated", j->res.tokens_generated);
    cJSON_AddStringToObject(o, "prompt_format_mode",
                            j->res.prompt_format_mode ? j->res.prompt_format_mode : "raw");
    cJSON_AddBoolToObject(o, "prompt_format_fallback", j->res.prompt_format_fallback);
    if (j->res.truncated)
        cJSON_AddStringToObject(o, "truncated", j->res.truncated);
    add_timings(o, &j->res.timings);
    return o;
}

/* The error a finished generate job maps to (seed API), or 0 for success. */
static int generate_error(struct job *j, char *msg, size_t cap)
{
    switch (j->rc) {
    case 0:
        return 0;
    case CDT_ESTATE:
        snprintf(msg, cap, CDT_NO_MODEL_MSG);
        return 400;
    case CDT_ETOOBIG:
    case CDT_EINVAL:
        snprintf(msg, cap, "%s", j->errmsg);
        return 400;
    case CDT_ECANCELED:
        /* Stopped by a shutdown (queued or running), or by its client/caller. */
        snprintf(msg, cap, "%s",
                 atomic_load(&j->s->stopping) ? "The sidecar is shutting down"
                                              : "Generation cancelled");
        return 503;
    default:
        snprintf(msg, cap, "Generation failed: %s", j->errmsg);
        return 500;
    }
}

/* Stream events of /generate: {"text": piece}, then {"done": true, …result}. */
static char *format_generate(struct job *j, const char *text, size_t len)
{
    cJSON *o;
    char msg[600];
    int status;

    if (text) {
        o = cJSON_CreateObject();
        if (o) {
            char *piece = strndup(text, len);
            cJSON_AddStringToObject(o, "text", piece ? piece : "");
            free(piece);
        }
        return cdt__sse_event(o);
    }
    status = generate_error(j, msg, sizeof(msg));
    if (status) {
        o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "done", true);
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "detail", msg);
    } else {
        o = generate_result(j);
        if (o)
            cJSON_AddBoolToObject(o, "done", true);
    }
    return cdt__sse_event(o);
}

static void log_generate(struct cdt_sidecar *s, struct cdt_http_req *req, const struct job *j)
{
    const char *sid = cdt_http_req_header(req, "X-Session-Id");
    char session[CDT_MAX_SESSION_ID + 1] = "-";

    if (sid) {
        size_t n = 0;
        for (; sid[n] && n < CDT_MAX_SESSION_ID; n++)
            session[n] = (sid[n] > 32 && sid[n] < 127) ? sid[n] : '?';
        session[n] = '\0';
    }
    CDT_LOG_I(s->log,
              "generate session=%s prompt_tokens=%d cached=%d generated=%d drafted=%d "
              "accepted=%d %.0f+%.0f ms",
              session, j->res.timings.prompt_tokens, j->res.timings.cached_tokens,
              j->res.tokens_generated, j->res.timings.draft_tokens, j->res.timings.accepted_tokens,
              j->res.timings.prompt_ms, j->res.timings.generation_ms);
}

static void route_generate(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *body = cdt__parse_body(req, seed_err), *o;
    const char *prompt;
    struct job *j;
    bool stream = false, raw = false;
    char msg[600];
    int status;

    if (!body)
        return;
    j = cdt__job_new_generate();
    if (!j) {
        cJSON_Delete(body);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    prompt = req_string(req, body, "prompt", true);
    if (!prompt || !cdt__opt_bool(req, body, "stream", &stream, seed_err) ||
        !cdt__opt_bool(req, body, "raw", &raw, seed_err) ||
        !cdt__parse_gen_options(req, body, j, seed_err)) {
        cJSON_Delete(body);
        cdt__job_release(s, j);
        return;
    }
    j->prompt = strdup(prompt);
    cJSON_Delete(body);
    if (!j->prompt) {
        cdt__job_release(s, j);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    j->gp.prompt = j->prompt;
    j->stream = stream;
    j->raw = raw;
    j->format = format_generate;
    if (cdt__run_generate(s, req, j, seed_err) != 0) {
        cdt__job_release(s, j);
        return;
    }
    pthread_mutex_lock(&s->lock);
    status = j->done ? generate_error(j, msg, sizeof(msg)) : 0;
    pthread_mutex_unlock(&s->lock);
    if (status) {
        cdt_http_reply_error(req, status, "%s", msg);
        cdt__job_release(s, j);
        return;
    }
    if (stream) {
        cdt__reply_job_stream(s, req, j); /* takes our reference */
        return;
    }
    log_generate(s, req, j);
    o = generate_result(j);
    if (o)
        cdt__reply_json(req, 200, o);
    else
        cdt_http_reply_error(req, 500, "out of memory");
    cdt__job_release(s, j);
}

static bool is_v1(const char *path)
{
    return strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0;
}

/* Only printable ASCII of the client's is echoed back (the body stays UTF-8). */
static bool printable(const char *str)
{
    for (; *str; str++)
        if (*str < 0x20 || *str > 0x7e)
            return false;
    return true;
}

/* Errors on /v1 (the server's own 401/403/413 and the router's 404/405 included)
 * answer OpenAI's error object; the seed's endpoints keep {"detail"}. */
static bool error_hook(struct cdt_http_req *req, int status, const char *msg, void *ud)
{
    (void)ud;
    if (!is_v1(cdt_http_req_path(req)))
        return false;
    cdt__oai_error(req, status, NULL, NULL, msg);
    return true;
}

static void handle(struct cdt_http_req *req, void *ud)
{
    static const struct {
        const char *path;
        const char *method;
        void (*fn)(struct cdt_sidecar *s, struct cdt_http_req *req);
    } routes[] = {
        {"/status", "GET", route_status},
        {"/health", "GET", route_health},
        {"/load", "POST", route_load},
        {"/generate", "POST", route_generate},
        {"/unload", "POST", route_unload},
        {"/tokenize", "POST", route_tokenize},
        {"/v1/models", "GET", cdt__route_v1_models},
        {"/v1/chat/completions", "POST", cdt__route_v1_chat},
    };
    struct cdt_sidecar *s = ud;
    const char *path = cdt_http_req_path(req), *method = cdt_http_req_method(req);

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            routes[i].fn(s, req);
        } else {
            cdt_http_add_header(req, "Allow", routes[i].method);
            cdt_http_reply_error(req, 405, "Method Not Allowed");
        }
        return;
    }
    if (strncmp(path, "/v1/models/", 11) == 0 && path[11] && printable(path)) {
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            cdt__route_v1_model(s, req, path + 11);
        } else {
            cdt_http_add_header(req, "Allow", "GET");
            cdt_http_reply_error(req, 405, "Method Not Allowed");
        }
        return;
    }
    if (is_v1(path) && printable(method) && printable(path))
        cdt_http_reply_error(req, 404, "Invalid URL (%s %s)", method, path);
    else
        cdt_http_reply_error(req, 404, "Not Found");
}

/* ---- lifecycle ---- */

int cdt_sidecar_new(const struct cdt_sidecar_params *p, struct cdt_sidecar **out, char *errmsg,
                    size_t errcap)
{
    static const char *const public_paths[] = {"/health", NULL};
    struct cdt_httpd_params hp = cdt_httpd_default_params();
    struct cdt_sidecar *s;
    int rc;

    *out = NULL;
    if (!p || !p->backend) {
        snprintf(errmsg, errcap, "no backend");
        return CDT_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return CDT_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    atomic_init(&s->stopping, false);
    s->be = p->backend;
    s->log = p->log;
    s->queue_max = p->queue_max > 0 ? p->queue_max : CDT_SIDECAR_QUEUE_MAX;
    s->n_ctx = p->n_ctx > 0 ? p->n_ctx : CDT_SIDECAR_CTX;

    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
        snprintf(errmsg, errcap, "cannot start the worker thread");
        cdt_sidecar_free(s);
        return CDT_EIO;
    }
    s->worker_started = true;

    hp.host = p->host;
    hp.port_min = p->port_min || p->port_max ? p->port_min : CDT_SIDECAR_PORT_MIN;
    hp.port_max = p->port_min || p->port_max ? p->port_max : CDT_SIDECAR_PORT_MAX;
    hp.listen_any = p->listen_any;
    hp.token = p->token;
    hp.public_paths = public_paths;
    hp.cors_prefix = "/v1/";
    hp.handler = handle;
    hp.error_hook = error_hook;
    hp.user_data = s;
    hp.log = p->log;
    rc = cdt_httpd_new(&hp, &s->http, errmsg, errcap);
    if (rc != 0) {
        cdt_sidecar_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int cdt_sidecar_port(const struct cdt_sidecar *s)
{
    return cdt_httpd_port(s->http);
}

int cdt_sidecar_load_async(struct cdt_sidecar *s, const char *path)
{
    struct job *j = calloc(1, sizeof(*j));
    int rc;

    if (!j || !(j->model_path = strdup(path))) {
        free(j);
        return CDT_ENOMEM;
    }
    j->kind = JOB_LOAD; /* no waiter: the worker's reference is the only one */
    rc = submit(s, j);
    if (rc != 0)
        job_free(j);
    return rc;
}

void cdt_sidecar_stop(struct cdt_sidecar *s)
{
    if (!s || s->stopped)
        return;
    s->stopped = true;
    cdt_httpd_quiesce(s->http);
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->lock);
    if (s->worker_started)
        pthread_join(s->worker, NULL);
    s->worker_started = false;
}

void cdt_sidecar_free(struct cdt_sidecar *s)
{
    if (!s)
        return;
    cdt_sidecar_stop(s);
    cdt_httpd_free(s->http); /* waits for the connection threads */
    if (s->be)
        s->be->ops->unload(s->be);
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->work_cv);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
