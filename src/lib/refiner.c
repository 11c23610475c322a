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

#include <cjson/cJSON.h>
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

/* POST /api/refine to the running app (should_stop closes the connection: the app
 * stops refining). Returns 0 with *res, CDT_ECANCELED, or -1: it did not answer
 * (refine here then). */
static int run_in_app(struct cdt_refiner *r, const char *text, bool (*should_stop)(void *),
                      void *stop_data, struct cdt_refine_result *res)
{
    struct cdt_client_response ans = {0};
    cJSON *req = cJSON_CreateObject(), *o;
    char *body, err[512];
    int rc = -1;

    if (!req)
        return -1;
    cJSON_AddStringToObject(req, "text", text);
    if (r->custom_prompt && r->instructions)
        cJSON_AddStringToObject(req, "prompt", r->instructions);
    if (r->model)
        cJSON_AddStringToObject(req, "model", r->model);
    if (r->vocabulary)
        cJSON_AddStringToObject(req, "vocabulary", r->vocabulary);
    cJSON_AddNumberToObject(req, "timeout_ms", (double)r->rp.timeout_ms); /* --timeout-ms */
    body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return -1;
    CDT_LOG_I(r->log, "refine: through the running app (port %d)", r->app_port);
    rc = cdt_appclient_call_stoppable(r->app_port, "POST", "/api/refine", body,
                                      r->rp.timeout_ms + CDT_REFINER_APP_MARGIN_MS, should_stop,
                                      stop_data, &ans, err, sizeof(err));
    if (rc == CDT_ECANCELED) {
        CDT_LOG_D(r->log, "refine: cancelled (the app's refinement with it)");
    } else if (rc == 0 && ans.status == 200) {
        o = cJSON_Parse(ans.body);
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

int cdt_refiner_ahead_new(struct cdt_refiner *r, struct cdt_refine_ahead **out)
{
    *out = NULL;
    if (r->app_port > 0)
        return CDT_EUNSUPPORTED; /* the app's model: one request after stop */
    return cdt_refine_ahead_new(&r->rp, out) == 0 ? 0 : CDT_ENOMEM;
}

int cdt_refiner_run_ahead(struct cdt_refiner *r, const char *text,
                          void (*on_delta)(const char *text, size_t len, void *user_data),
                          bool (*should_stop)(void *user_data), void *user_data,
                          struct cdt_refine_ahead *ahead, struct cdt_refine_result *res)
{
    int rc;

    /* r->rp is shared by every thread that runs: the callback goes in a copy. */
    struct cdt_refine_params p = r->rp;

    p.on_delta = on_delta;
    p.delta_user_data = user_data;
    p.ahead = ahead;
    p.should_stop = should_stop;
    p.stop_user_data = user_data;
    memset(res, 0, sizeof(*res));
    if (r->app_port > 0 && (rc = run_in_app(r, text, should_stop, user_data, res)) >= 0)
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
