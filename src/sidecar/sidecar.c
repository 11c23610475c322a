/* The sidecar (see sidecar.h).
 *
 * Invariants, all under `lock`: `head..tail` is the FIFO of jobs not yet started
 * (at most queue_max); `running` is the job the worker is executing (or NULL);
 * `loaded`/`info` describe the backend's model and change only on the worker, under
 * the lock. A job is finished exactly once (done = true, done_cv broadcast); its
 * waiter frees it, or the worker frees it when nobody waits (detached). */
#include "sidecar.h"

#include "codictate/httpd.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"
#include "codictate/text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CDT_MAX_SESSION_ID 64 /* X-Session-Id bytes kept for logs */

enum job_kind { JOB_LOAD, JOB_UNLOAD, JOB_GENERATE };

struct job {
    enum job_kind kind;
    struct job *next;
    char *model_path;         /* JOB_LOAD; owned */
    char *prompt;             /* JOB_GENERATE; owned */
    struct cdt_gen_params gp; /* JOB_GENERATE; gp.prompt points at prompt */
    struct cdt_http_req *req; /* the waiting request (cancel on disconnect) or NULL */
    struct cdt_sidecar *s;
    int rc;
    bool was_loaded; /* JOB_UNLOAD: a model was loaded */
    char errmsg[512];
    struct cdt_gen_result res;
    bool done;
    bool detached; /* no waiter: the worker frees it */
};

struct cdt_sidecar {
    pthread_mutex_t lock;
    pthread_cond_t work_cv; /* the worker waits for jobs */
    pthread_cond_t done_cv; /* waiters wait for their job */
    pthread_t worker;
    bool worker_started;
    atomic_bool stopping;
    bool stopped;

    struct job *head, *tail;
    int n_queued;
    int queue_max;
    struct job *running;

    bool loaded;
    struct cdt_model_info info;
    int n_ctx;

    struct cdt_backend *be;
    struct cdt_httpd *http;
    struct cdt_log *log;
};

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
    free(j->prompt);
    free(j->res.text);
    free(j);
}

/* Called with the lock held. */
static void finish(struct cdt_sidecar *s, struct job *j)
{
    j->done = true;
    if (j->detached)
        job_free(j);
    else
        pthread_cond_broadcast(&s->done_cv);
}

static int should_cancel(void *ud)
{
    struct job *j = ud;

    return atomic_load(&j->s->stopping) || (j->req && cdt_http_req_client_gone(j->req));
}

static void run_job(struct cdt_sidecar *s, struct job *j)
{
    struct cdt_model_info info;

    switch (j->kind) {
    case JOB_LOAD:
        memset(&info, 0, sizeof(info));
        j->rc =
            s->be->ops->load(s->be, j->model_path, s->n_ctx, &info, j->errmsg, sizeof(j->errmsg));
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
        j->gp.user_data = j;
        j->rc = s->be->ops->generate(s->be, &j->gp, &j->res);
        if (j->rc != 0 && !j->errmsg[0])
            snprintf(j->errmsg, sizeof(j->errmsg), "%s", j->res.errmsg);
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

static void wait_done(struct cdt_sidecar *s, struct job *j)
{
    pthread_mutex_lock(&s->lock);
    while (!j->done)
        pthread_cond_wait(&s->done_cv, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

/* Submits j for req and waits; on a refused submit answers and returns false. */
static bool submit_and_wait(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j)
{
    int rc;

    j->req = req;
    rc = submit(s, j);
    if (rc == CDT_EBUSY) {
        cdt_http_reply_error(req, 503, "Server busy: %d requests already waiting; retry later",
                             s->queue_max);
        return false;
    }
    if (rc != 0) {
        cdt_http_reply_error(req, 503, "The sidecar is shutting down");
        return false;
    }
    wait_done(s, j);
    return true;
}

/* ---- JSON helpers ---- */

static void reply_json(struct cdt_http_req *req, int status, cJSON *o)
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

/* Parses the body as a JSON object; on failure answers 400/422 and returns NULL. */
static cJSON *parse_body(struct cdt_http_req *req)
{
    const char *body = cdt_http_req_body(req);
    size_t len = cdt_http_req_body_len(req);
    const char *end = NULL;
    cJSON *o;

    if (len == 0) {
        cdt_http_reply_error(req, 422, "body: a JSON object is required");
        return NULL;
    }
    o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!o) {
        size_t off = end && end >= body ? (size_t)(end - body) : 0;
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
        cdt_http_reply_error(req, 400, "Malformed JSON at line %d, column %d", line, col);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        cdt_http_reply_error(req, 422, "body: must be a JSON object");
        return NULL;
    }
    return o;
}

/* Reads an optional number field in [lo, hi] (integer when `integer`). Absent or
 * null leaves *out. Returns false after answering 422. */
static bool opt_number(struct cdt_http_req *req, const cJSON *o, const char *name, double lo,
                       double hi, bool integer, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        cdt_http_reply_error(req, 422, "%s: must be a number", name);
        return false;
    }
    if (integer && v->valuedouble != floor(v->valuedouble)) {
        cdt_http_reply_error(req, 422, "%s: must be an integer", name);
        return false;
    }
    if (v->valuedouble < lo || v->valuedouble > hi) {
        cdt_http_reply_error(req, 422, "%s: must be between %g and %g", name, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool opt_bool(struct cdt_http_req *req, const cJSON *o, const char *name, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!v || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsBool(v)) {
        cdt_http_reply_error(req, 422, "%s: must be true or false", name);
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

/* ---- routes ---- */

static const char *state_name(const struct cdt_sidecar *s)
{
    if (s->running && s->running->kind == JOB_LOAD)
        return "loading";
    if (s->running && s->running->kind == JOB_GENERATE)
        return "generating";
    return s->loaded ? "ready" : "idle";
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
    reply_json(req, 200, o);
}

static void route_health(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    bool loading;
    cJSON *o = cJSON_CreateObject();

    pthread_mutex_lock(&s->lock);
    loading = s->running && s->running->kind == JOB_LOAD;
    pthread_mutex_unlock(&s->lock);
    cJSON_AddStringToObject(o, "status", loading ? "loading" : "ok");
    reply_json(req, loading ? 503 : 200, o);
}

static void route_load(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *body = parse_body(req), *o;
    const char *path;
    struct job *j;

    if (!body)
        return;
    path = req_string(req, body, "model_path", false);
    if (!path) {
        cJSON_Delete(body);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j || !(j->model_path = strdup(path))) {
        free(j);
        cJSON_Delete(body);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    cJSON_Delete(body);
    j->kind = JOB_LOAD;
    if (submit_and_wait(s, req, j)) {
        if (j->rc == 0) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "status", "loaded");
            cJSON_AddStringToObject(o, "model_path", j->model_path);
            reply_json(req, 200, o);
        } else if (j->rc == CDT_ECANCELED) {
            cdt_http_reply_error(req, 503, "The sidecar is shutting down");
        } else {
            cdt_http_reply_error(req, 500, "Failed to load model: %s", j->errmsg);
        }
    }
    job_free(j);
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
    if (submit_and_wait(s, req, j)) {
        pthread_mutex_lock(&s->lock);
        was_loaded = j->was_loaded;
        pthread_mutex_unlock(&s->lock);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", was_loaded ? "unloaded" : "no_model_loaded");
        cJSON_AddBoolToObject(o, "model_loaded", false);
        cJSON_AddNullToObject(o, "model_path");
        reply_json(req, 200, o);
    }
    job_free(j);
}

static bool parse_generate(struct cdt_http_req *req, const cJSON *body, struct job *j)
{
    struct cdt_gen_params *gp = &j->gp;
    const char *prompt = req_string(req, body, "prompt", true);
    double max_tokens = -1, ram = 16, temp = gp->temperature, top_p = gp->top_p, min_p = gp->min_p,
           rep = gp->repetition_penalty, seed = -1;
    bool ignore_eos = false;

    if (!prompt)
        return false;
    if (!opt_number(req, body, "max_tokens", -1, 1e7, true, &max_tokens) ||
        !opt_number(req, body, "system_ram_gb", 0, 1e6, false, &ram) ||
        !opt_number(req, body, "temperature", 0, 100, false, &temp) ||
        !opt_number(req, body, "top_p", 0, 1, false, &top_p) ||
        !opt_number(req, body, "min_p", 0, 1, false, &min_p) ||
        !opt_number(req, body, "repetition_penalty", 0.01, 100, false, &rep) ||
        !opt_number(req, body, "seed", 0, 4294967295.0, true, &seed) ||
        !opt_bool(req, body, "ignore_eos", &ignore_eos))
        return false;
    if (max_tokens == 0) {
        cdt_http_reply_error(req, 422, "max_tokens: must be -1 (automatic) or at least 1");
        return false;
    }
    j->prompt = strdup(prompt);
    if (!j->prompt) {
        cdt_http_reply_error(req, 500, "out of memory");
        return false;
    }
    gp->prompt = j->prompt;
    gp->max_tokens = (int)max_tokens;
    gp->system_ram_gb = ram < 1 ? 1 : (int)lround(ram);
    gp->temperature = (float)temp;
    gp->top_p = (float)top_p;
    gp->min_p = (float)min_p;
    gp->repetition_penalty = (float)rep;
    gp->has_seed = seed >= 0;
    gp->seed = gp->has_seed ? (uint32_t)seed : 0;
    gp->ignore_eos = ignore_eos;
    return true;
}

static void route_generate(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *body = parse_body(req), *o, *t;
    struct job *j;
    char *clean;

    if (!body)
        return;
    j = calloc(1, sizeof(*j));
    if (!j) {
        cJSON_Delete(body);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    j->kind = JOB_GENERATE;
    j->gp = cdt_gen_params_default();
    if (!parse_generate(req, body, j)) {
        cJSON_Delete(body);
        job_free(j);
        return;
    }
    cJSON_Delete(body);
    if (!submit_and_wait(s, req, j)) {
        job_free(j);
        return;
    }
    switch (j->rc) {
    case 0:
        break;
    case CDT_ESTATE:
        cdt_http_reply_error(req, 400, "No model loaded. Call /load first.");
        goto out;
    case CDT_ETOOBIG:
        cdt_http_reply_error(req, 400, "%s", j->errmsg);
        goto out;
    case CDT_ECANCELED:
        /* The client went away (nobody reads this) or the sidecar is stopping. */
        cdt_http_reply_error(req, 503, "Generation cancelled");
        goto out;
    default:
        cdt_http_reply_error(req, 500, "Generation failed: %s", j->errmsg);
        goto out;
    }
    clean = cdt_text_clean_response(j->res.text);
    o = cJSON_CreateObject();
    if (!clean || !o) {
        free(clean);
        cJSON_Delete(o);
        cdt_http_reply_error(req, 500, "out of memory");
        goto out;
    }
    cJSON_AddStringToObject(o, "response", clean);
    free(clean);
    cJSON_AddNumberToObject(o, "tokens_generated", j->res.tokens_generated);
    cJSON_AddStringToObject(o, "prompt_format_mode",
                            j->res.prompt_format_mode ? j->res.prompt_format_mode : "raw");
    cJSON_AddBoolToObject(o, "prompt_format_fallback", j->res.prompt_format_fallback);
    t = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(t, "prompt_tokens", j->res.timings.prompt_tokens);
    cJSON_AddNumberToObject(t, "cached_tokens", j->res.timings.cached_tokens);
    cJSON_AddNumberToObject(t, "prompt_ms", j->res.timings.prompt_ms);
    cJSON_AddNumberToObject(t, "generated_tokens", j->res.timings.generated_tokens);
    cJSON_AddNumberToObject(t, "generation_ms", j->res.timings.generation_ms);
    cJSON_AddNumberToObject(t, "tokens_per_second", j->res.timings.tokens_per_second);
    {
        const char *sid = cdt_http_req_header(req, "X-Session-Id");
        char session[CDT_MAX_SESSION_ID + 1] = "-";

        if (sid) {
            size_t n = 0;
            for (; sid[n] && n < CDT_MAX_SESSION_ID; n++)
                session[n] = (sid[n] > 32 && sid[n] < 127) ? sid[n] : '?';
            session[n] = '\0';
        }
        CDT_LOG_I(s->log, "generate session=%s prompt_tokens=%d generated=%d %.0f+%.0f ms", session,
                  j->res.timings.prompt_tokens, j->res.tokens_generated, j->res.timings.prompt_ms,
                  j->res.timings.generation_ms);
    }
    reply_json(req, 200, o);
out:
    job_free(j);
}

static void handle(struct cdt_http_req *req, void *ud)
{
    static const struct {
        const char *path;
        const char *method;
        void (*fn)(struct cdt_sidecar *s, struct cdt_http_req *req);
    } routes[] = {
        {"/status", "GET", route_status},  {"/health", "GET", route_health},
        {"/load", "POST", route_load},     {"/generate", "POST", route_generate},
        {"/unload", "POST", route_unload},
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
    hp.handler = handle;
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
    j->kind = JOB_LOAD;
    j->detached = true;
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
