/* The refiner (see refiner.h): the options of a refinement resolved once. */
#include "codictate/refiner.h"

#include "codictate/appclient.h"
#include "codictate/catalog.h"
#include "codictate/json.h"
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/manager.h"
#include "codictate/models.h"
#include "codictate/prompts.h"
#include "codictate/refine.h"
#include "codictate/sysinfo.h"
#include "codictate/transcribe.h"

#define CDT_REFINER_APP_MARGIN_MS 60000 /* the app may have to load the model first, ms */
#define CDT_REFINER_AHEAD_CALL_MS 3000  /* an offer to the app's refinement ahead, ms */

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cdt_refiner {
    struct cdt_catalog *cat;         /* borrowed or own_cat */
    struct cdt_models *models;       /* borrowed or own_models */
    struct cdt_catalog *own_cat;     /* freed with the refiner */
    struct cdt_models *own_models;   /* freed with the refiner */
    struct cdt_manager *own_manager; /* a GGUF path with no catalog */
    char *instructions;
    char *vocabulary;                                /* a copy; NULL: none */
    char *model, *base_url, *api_key, *openai_model; /* copies */
    struct cdt_refine_params rp;
    bool openai;
    int app_port;       /* > 0: through the running app */
    bool custom_prompt; /* the instructions were given: send them to the app */
    struct cdt_log *log;
};

void cdt_refiner_free(struct cdt_refiner *r)
{
    if (!r)
        return;
    cdt_manager_free(r->own_manager);
    cdt_models_free(r->own_models);
    cdt_catalog_free(r->own_cat);
    free(r->instructions);
    free(r->vocabulary);
    free(r->model);
    free(r->base_url);
    free(r->api_key);
    free(r->openai_model);
    free(r);
}

/* --model is checked before anything runs: a missing file or an unknown id is a
 * usage error, not a fallback. */
static bool model_ok(const char *model, const struct cdt_catalog *cat, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm;

    if (cdt_catalog_is_path(model)) {
        if (access(model, R_OK) == 0)
            return true;
        snprintf(errmsg, errcap, "--model %s: no such readable file", model);
        return false;
    }
    cm = cat ? cdt_catalog_find(cat, model) : NULL;
    if (!cm) {
        snprintf(errmsg, errcap, "unknown model '%s' (see codictate models list)", model);
        return false;
    }
    if (cm->kind != CDT_MODEL_LLM) {
        snprintf(errmsg, errcap, "'%s' is a %s model, not an LLM", model,
                 cdt_model_kind_name(cm->kind));
        return false;
    }
    return true;
}

static bool dup_opt(char **dst, const char *src)
{
    if (!src)
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

int cdt_refiner_new(const struct cdt_refiner_opts *opts, struct cdt_refiner **out, char *errmsg,
                    size_t errcap)
{
    struct cdt_refiner_opts o = *opts;
    struct cdt_refiner *r;
    char err[1024];
    int rc = 0;

    *out = NULL;
    if (errcap)
        errmsg[0] = '\0';
    if (o.timeout_ms <= 0)
        o.timeout_ms = CDT_REFINE_DEFAULT_TIMEOUT_MS;
    if (o.provider && strcmp(o.provider, "local") != 0 && strcmp(o.provider, "openai") != 0) {
        snprintf(errmsg, errcap, "--provider is local or openai");
        return CDT_EINVAL;
    }
    if (!(r = calloc(1, sizeof(*r))))
        return CDT_ENOMEM;
    r->openai = o.provider ? strcmp(o.provider, "openai") == 0 : o.base_url != NULL;
    r->app_port = r->openai ? 0 : o.app_port;
    r->custom_prompt = o.instructions || o.prompt;
    r->log = o.log;
    if (!o.base_url && !o.no_env)
        o.base_url = getenv("OPENAI_BASE_URL");
    if (!o.api_key && !o.no_env)
        o.api_key = getenv("OPENAI_API_KEY");
    if (r->openai && (!o.base_url || !*o.base_url) && (!o.api_key || !*o.api_key)) {
        snprintf(errmsg, errcap,
                 "--provider openai needs --base-url (a local endpoint) or an API key "
                 "(--api-key or OPENAI_API_KEY)");
        rc = CDT_EINVAL;
        goto out;
    }
    if (r->openai && o.model) {
        snprintf(errmsg, errcap, "--model is for the local provider; use --openai-model NAME");
        rc = CDT_EINVAL;
        goto out;
    }
    if (o.instructions) {
        if (!(r->instructions = strdup(o.instructions))) {
            rc = CDT_ENOMEM;
            goto out;
        }
    } else if (cdt_prompt_resolve(o.prompt, NULL, &r->instructions, err, sizeof(err)) != 0) {
        snprintf(errmsg, errcap, "--prompt: %s", err[0] ? err : "out of memory");
        rc = CDT_EINVAL;
        goto out;
    }
    if (o.vocabulary && !cdt_transcribe_vocabulary_valid(o.vocabulary)) {
        snprintf(errmsg, errcap, "vocabulary: at most %d bytes of UTF-8 without control characters",
                 CDT_TRANSCRIBE_MAX_VOCABULARY);
        rc = CDT_EINVAL;
        goto out;
    }
    if (!dup_opt(&r->vocabulary, o.vocabulary && *o.vocabulary ? o.vocabulary : NULL) ||
        !dup_opt(&r->model, o.model) || !dup_opt(&r->base_url, o.base_url) ||
        !dup_opt(&r->api_key, o.api_key) || !dup_opt(&r->openai_model, o.openai_model)) {
        rc = CDT_ENOMEM;
        goto out;
    }

    if (!r->openai) {
        r->cat = o.catalog;
        if (!r->cat) {
            if (cdt_catalog_load_default(&r->own_cat, err, sizeof(err)) != 0) {
                CDT_LOG_W(o.log, "refine: %s", err);
                r->own_cat = NULL;
            }
            r->cat = r->own_cat;
        }
        if (o.model && !model_ok(o.model, r->cat, errmsg, errcap)) {
            rc = CDT_EINVAL;
            goto out;
        }
        r->models = o.models;
        if (!r->models && r->cat) {
            struct cdt_models_params mp = cdt_models_default_params();

            mp.catalog = r->cat;
            mp.log = o.log;
            mp.manager.log = o.log;
            mp.manager.request_timeout_ms = o.timeout_ms + CDT_REFINER_HTTP_MARGIN_MS;
            if (cdt_models_new(&mp, &r->own_models) != 0) {
                rc = CDT_ENOMEM;
                goto out;
            }
            r->models = r->own_models;
        }
    }

    r->rp = cdt_refine_default_params();
    r->rp.provider = r->openai ? CDT_REFINE_OPENAI : CDT_REFINE_LOCAL;
    r->rp.instructions = r->instructions;
    r->rp.vocabulary = r->vocabulary;
    r->rp.timeout_ms = o.timeout_ms;
    r->rp.log = o.log;
    r->rp.models = r->models;
    r->rp.catalog = r->cat;
    r->rp.model = r->model;
    r->rp.base_url = r->base_url;
    r->rp.api_key = r->api_key;
    r->rp.openai_model = r->openai_model;
    if (!r->openai && r->model && !r->models) {
        /* A GGUF path with no catalog: a manager of our own. */
        struct cdt_manager_params mgp = cdt_manager_default_params();

        mgp.log = o.log;
        mgp.request_timeout_ms = o.timeout_ms + CDT_REFINER_HTTP_MARGIN_MS;
        if (cdt_manager_new(&mgp, &r->own_manager) == 0)
            r->rp.manager = r->own_manager;
    }
out:
    if (rc != 0)
        cdt_refiner_free(r);
    else
        *out = r;
    return rc;
}

int cdt_refiner_preload(struct cdt_refiner *r, char *errmsg, size_t errcap)
{
    if (r->app_port > 0)
        return 0; /* the app keeps its model warm and loads it on use */
    return cdt_refine_preload(&r->rp, errmsg, errcap);
}

int cdt_refiner_run(struct cdt_refiner *r, const char *text, struct cdt_refine_result *res)
{
    return cdt_refiner_run_stream(r, text, NULL, NULL, res);
}

/* Refinement ahead: here (local), or the app's session `id` (through the app). */
struct cdt_refiner_ahead {
    struct cdt_refine_ahead *local; /* NULL through the app */
    struct cdt_refiner *r;          /* through the app: its port and log */
    pthread_mutex_t mu;             /* id, pieces, dead */
    char id[64];                    /* the app's; "" once a run took it or it was dropped */
    size_t pieces;                  /* as of the last offer */
    bool dead;                      /* the app did not answer an offer: no more */
};

/* The refiner's options that go with a request to the app: the instructions when
 * they were given, --model, --vocabulary, --timeout-ms when it is not the default
 * (without any, the app refines with its own warm refiner). */
static void add_app_options(const struct cdt_refiner *r, cJSON *req)
{
    if (r->custom_prompt && r->instructions)
        cJSON_AddStringToObject(req, "prompt", r->instructions);
    if (r->model)
        cJSON_AddStringToObject(req, "model", r->model);
    if (r->vocabulary)
        cJSON_AddStringToObject(req, "vocabulary", r->vocabulary);
    if (r->rp.timeout_ms != CDT_REFINE_DEFAULT_TIMEOUT_MS)
        cJSON_AddNumberToObject(req, "timeout_ms", (double)r->rp.timeout_ms);
}

/* The app's id of a into id[64]: true when it has one (and, with live, when no offer
 * failed and it was not cancelled); with take, it is then a's no more (a run or a
 * delete frees it in the app). */
static bool ahead_id(struct cdt_refiner_ahead *a, char *id, bool live, bool take)
{
    bool ok;

    if (!a || a->local)
        return false;
    pthread_mutex_lock(&a->mu);
    ok = a->id[0] && (!live || !a->dead);
    memcpy(id, a->id, sizeof(a->id));
    if (ok && take)
        a->id[0] = '\0';
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* The final {"done": true, ...} event of a streamed answer: the result, or NULL (an
 * error event, or none). */
static cJSON *stream_result(char *body)
{
    char *line, *save = NULL;
    cJSON *last = NULL;

    for (line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = strncmp(line, "data: ", 6) == 0 ? cJSON_Parse(line + 6) : NULL;

        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "done"))) {
            cJSON_Delete(last);
            last = o;
        } else {
            cJSON_Delete(o);
        }
    }
    if (last && cJSON_GetObjectItemCaseSensitive(last, "status")) {
        cJSON_Delete(last);
        last = NULL;
    }
    return last;
}

/* POST /api/refine to the running app (should_stop closes the connection: the app
 * stops refining). Returns 0 with *res, CDT_ECANCELED, or -1: it did not answer
 * (refine here then). With the refinement ahead of the app, it takes its pieces;
 * with on_delta, the app streams the model's text (its "stream": true). */
static int run_in_app(struct cdt_refiner *r, const char *text,
                      void (*on_delta)(const char *text, size_t len, void *user_data),
                      bool (*should_stop)(void *), void *user_data, struct cdt_refiner_ahead *ahead,
                      struct cdt_refine_result *res)
{
    struct cdt_client_text_scan st = {.on_text = on_delta, .user_data = user_data};
    char ahead_at[64];
    struct cdt_client_response ans = {0};
    cJSON *req = cJSON_CreateObject(), *o;
    char *body, err[512];
    int rc = -1;

    if (!req)
        return -1;
    cJSON_AddStringToObject(req, "text", text);
    add_app_options(r, req);
    if (ahead_id(ahead, ahead_at, true, true)) /* the app frees it with this run */
        cJSON_AddStringToObject(req, "ahead", ahead_at);
    if (on_delta)
        cJSON_AddTrueToObject(req, "stream");
    body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return -1;
    CDT_LOG_I(r->log, "refine: through the running app (port %d)", r->app_port);
    rc = cdt_appclient_call_stoppable(r->app_port, "POST", "/api/refine", body,
                                      r->rp.timeout_ms + CDT_REFINER_APP_MARGIN_MS,
                                      on_delta ? cdt_client_scan_text_events : NULL, &st,
                                      should_stop, user_data, &ans, err, sizeof(err));
    cdt_buf_cleanup(&st.line);
    if (rc == CDT_ECANCELED) {
        CDT_LOG_D(r->log, "refine: cancelled (the app's refinement with it)");
    } else if (rc == 0 && ans.status == 200) {
        o = on_delta ? stream_result(ans.body) : cJSON_Parse(ans.body);
        rc = o && cdt_json_parse_refine(o, res) == 0 ? 0 : -1;
        cJSON_Delete(o);
    } else {
        rc = -1;
        CDT_LOG_W(r->log, "refine: the app did not answer (%s); refining here",
                  ans.status ? "an error status" : err);
    }
    free(ans.body);
    free(body);
    return rc;
}

int cdt_refiner_run_stream(struct cdt_refiner *r, const char *text,
                           void (*on_delta)(const char *text, size_t len, void *user_data),
                           void *user_data, struct cdt_refine_result *res)
{
    return cdt_refiner_run_ahead(r, text, on_delta, NULL, user_data, NULL, res);
}

/* POST body (a JSON object) to the app's refinement ahead at path; *o the answer
 * (free with cJSON_Delete) when it is 200 with JSON. */
static int ahead_call(struct cdt_refiner *r, const char *path, const char *body, cJSON **o)
{
    struct cdt_client_response ans = {0};
    char err[256];
    int rc;

    *o = NULL;
    rc = cdt_appclient_call(r->app_port, "POST", path, body, CDT_REFINER_AHEAD_CALL_MS, &ans, err,
                            sizeof(err));
    if (rc == 0 && ans.status == 200 && !(*o = cJSON_Parse(ans.body)))
        rc = CDT_EFORMAT;
    else if (rc == 0 && ans.status != 200)
        rc = CDT_EENGINE;
    if (rc != 0)
        CDT_LOG_D(r->log, "refine ahead: %s: %s", path,
                  ans.status ? "an error status"
                  : err[0]   ? err
                             : cdt_strerror(rc));
    free(ans.body);
    return rc;
}

int cdt_refiner_ahead_new(struct cdt_refiner *r, struct cdt_refiner_ahead **out)
{
    struct cdt_refiner_ahead *a = calloc(1, sizeof(*a));
    cJSON *req, *o = NULL;
    const cJSON *id;
    char *body = NULL;
    int rc;

    *out = NULL;
    if (!a)
        return CDT_ENOMEM;
    a->r = r;
    pthread_mutex_init(&a->mu, NULL);
    if (r->app_port <= 0) {
        if (cdt_refine_ahead_new(&r->rp, &a->local) != 0) {
            cdt_refiner_ahead_free(a);
            return CDT_ENOMEM;
        }
        *out = a;
        return 0;
    }
    /* The app's, with the options a run sends (run_in_app). */
    if ((req = cJSON_CreateObject()) != NULL) {
        add_app_options(r, req);
        body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
    }
    if (!body) {
        cdt_refiner_ahead_free(a);
        return CDT_ENOMEM;
    }
    rc = ahead_call(r, "/api/refine/ahead", body, &o);
    free(body);
    id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (rc == 0 &&
        (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) >= sizeof(a->id) ||
         strspn(id->valuestring, "0123456789abcdef") != strlen(id->valuestring)))
        rc = CDT_EFORMAT;
    if (rc != 0) {
        cJSON_Delete(o);
        cdt_refiner_ahead_free(a);
        return rc;
    }
    snprintf(a->id, sizeof(a->id), "%s", id->valuestring);
    cJSON_Delete(o);
    CDT_LOG_D(r->log, "refine ahead: in the running app (%s)", a->id);
    *out = a;
    return 0;
}

void cdt_refiner_ahead_offer(struct cdt_refiner_ahead *a, const char *text)
{
    char id[64], path[128], *body;
    cJSON *req, *o = NULL;
    const cJSON *n;

    if (!a)
        return;
    if (a->local) {
        cdt_refine_ahead_offer(a->local, text);
        return;
    }
    if (!ahead_id(a, id, true, false) || !(req = cJSON_CreateObject()))
        return;
    cJSON_AddStringToObject(req, "text", text);
    body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return;
    snprintf(path, sizeof(path), "/api/refine/ahead/%s/offer", id);
    if (ahead_call(a->r, path, body, &o) != 0) {
        CDT_LOG_W(a->r->log, "refine ahead: the app did not take the text so far; the rest is "
                             "refined after stop");
        pthread_mutex_lock(&a->mu);
        a->dead = true;
        pthread_mutex_unlock(&a->mu);
    } else if (cJSON_IsNumber(n = cJSON_GetObjectItemCaseSensitive(o, "pieces")) &&
               n->valuedouble >= 0) {
        pthread_mutex_lock(&a->mu);
        a->pieces = (size_t)n->valuedouble;
        pthread_mutex_unlock(&a->mu);
    }
    cJSON_Delete(o);
    free(body);
}

size_t cdt_refiner_ahead_count(struct cdt_refiner_ahead *a)
{
    size_t n;

    if (!a)
        return 0;
    if (a->local)
        return cdt_refine_ahead_count(a->local);
    pthread_mutex_lock(&a->mu);
    n = a->pieces;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* Drops the app's session (it refines nothing more), once. */
static void ahead_drop(struct cdt_refiner_ahead *a)
{
    char id[64], path[128];
    cJSON *o = NULL;

    if (!ahead_id(a, id, false, true))
        return;
    snprintf(path, sizeof(path), "/api/refine/ahead/%s/delete", id);
    if (ahead_call(a->r, path, "{}", &o) == 0)
        cJSON_Delete(o);
}

void cdt_refiner_ahead_cancel(struct cdt_refiner_ahead *a)
{
    if (!a)
        return;
    if (a->local) {
        cdt_refine_ahead_cancel(a->local);
        return;
    }
    /* No call to the app here (a caller may hold its own locks): no more offers nor
     * a run that takes it; free drops it in the app. */
    pthread_mutex_lock(&a->mu);
    a->dead = true;
    pthread_mutex_unlock(&a->mu);
}

void cdt_refiner_ahead_free(struct cdt_refiner_ahead *a)
{
    if (!a)
        return;
    if (a->local)
        cdt_refine_ahead_free(a->local);
    else
        ahead_drop(a);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

int cdt_refiner_run_ahead(struct cdt_refiner *r, const char *text,
                          void (*on_delta)(const char *text, size_t len, void *user_data),
                          bool (*should_stop)(void *user_data), void *user_data,
                          struct cdt_refiner_ahead *ahead, struct cdt_refine_result *res)
{
    int rc;

    /* r->rp is shared by every thread that runs: the callback goes in a copy. */
    struct cdt_refine_params p = r->rp;

    p.on_delta = on_delta;
    p.delta_user_data = user_data;
    p.ahead = ahead ? ahead->local : NULL;
    p.should_stop = should_stop;
    p.stop_user_data = user_data;
    memset(res, 0, sizeof(*res));
    if (r->app_port > 0 &&
        (rc = run_in_app(r, text, on_delta, should_stop, user_data, ahead, res)) >= 0)
        return 0;
    if (r->app_port > 0 && rc == CDT_ECANCELED)
        return rc;
    rc = cdt_refine_run(&p, text, res);
    return rc == 0 || rc == CDT_ECANCELED ? rc : CDT_ENOMEM;
}

const char *cdt_refiner_provider(const struct cdt_refiner *r)
{
    return r->openai ? "openai" : "local";
}

const char *cdt_refiner_suggested_model(const struct cdt_refiner *r)
{
    uint64_t ram = 0;
    const struct cdt_catalog_model *rec;

    if (!r->cat)
        return NULL;
    if (cdt_sysinfo_total_ram(&ram) != 0)
        ram = 0;
    rec = cdt_catalog_recommended(r->cat, cdt_limits_tier(cdt_limits_ram_gb(ram)));
    return rec ? rec->id : NULL;
}
