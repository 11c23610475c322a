/* The refinement providers (see refine_int.h):
 *
 * - local: picks a model (a GGUF path; a catalog id; else the recommended
 *   downloaded model; else the first downloaded LLM), and asks the sidecar through
 *   the lifecycle manager (a typed struct cdt_sidecar_gen_req, see
 *   sidecar_client.h): POST /generate with temperature 0, max_tokens from the
 *   transcript's length (cdt_refine_max_tokens), the deadline as timeout_ms, and "raw": true: the
 *   text comes back as generated, and refine.c alone cleans it (it can see which
 *   labels and tags the transcript itself contains; the sidecar cannot). With
 *   params.on_delta it asks for a stream and hands on each piece as it arrives.
 * - openai: POST {base_url}/chat/completions with the instructions as the system
 *   message and the tagged transcript as the user message, over libcurl with the
 *   deadline as the transfer timeout and a cap on the answer's size.
 *
 * Every failure becomes an error code plus a reason for people; nothing here
 * prints, and transcript text is never logged above debug level. */
#include "codictate/catalog.h"
#include "codictate/cleanup.h"
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/manager.h"
#include "codictate/models.h"
#include "codictate/sidecar_client.h"
#include "codictate/sysinfo.h"
#include "codictate/util.h"
#include "err_int.h"
#include "refine_int.h"

#include "codictate/client.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define CDT_REFINE_PATH_MAX     4096 /* a model path, bytes */
#define CDT_REFINE_URL_MAX      2048 /* base_url, bytes */
#define CDT_REFINE_MODELS_MS    2000 /* longest wait for {base_url}/models, ms */
#define CDT_REFINE_DEFAULT_URL  "https://api.openai.com/v1"
#define CDT_REFINE_OPENAI_MODEL "gpt-4o-mini"
/* The local deadline from measured speeds: a transcript of b bytes is about
 * b / (bytes per token) tokens to evaluate (plus the template's around it; the
 * instructions before it are cached) and as many to generate, at the transcript's own
 * bytes per token (the model's tokenizer counts it: cdt_manager_count_tokens), else
 * those the model's answers have had (cdt_manager_bytes_per_token), within
 * REFINE_BPT_MIN..REFINE_BPT_MAX, REFINE_BYTES_PER_TOKEN until known; the request gets
 * REFINE_DEADLINE_FACTOR times that estimate plus REFINE_DEADLINE_SLACK_MS (room for
 * a busy moment), when that is below the caller's deadline. */
#define REFINE_BYTES_PER_TOKEN   4.0
#define REFINE_BPT_MIN           1.5
#define REFINE_BPT_MAX           6.0
#define REFINE_TEMPLATE_TOKENS   16.0
#define REFINE_DEADLINE_FACTOR   3.0
#define REFINE_DEADLINE_SLACK_MS 3000.0
/* A piece is cut to what the estimate says fits in this share of the time left
 * (cdt__refine_fit_bytes): room for the estimate being short. */
#define REFINE_FIT_SHARE 0.8

/* The speeds of the model at path on this machine, and the bytes per token of
 * `text`: counted by the model's own tokenizer (the sidecar's /tokenize, so a fresh
 * process, another language or a transcript of rare words is sized right), else
 * those of its answers so far; false until the speeds are known. */
static bool local_speeds(struct cdt_manager *mgr, const char *path, const char *text,
                         double *prefill, double *decode, double *bpt)
{
    size_t len = text ? strlen(text) : 0;
    double v;
    int n = 0;

    if (!cdt_manager_rates(mgr, path, prefill, decode))
        return false; /* nothing to weigh with: the count is not asked for */
    v = cdt_manager_bytes_per_token(mgr, path);
    if (len > 0 && cdt_manager_count_tokens(mgr, path, text, &n, NULL, 0) == 0 && n > 0)
        v = (double)len / n;
    *bpt = v <= 0               ? REFINE_BYTES_PER_TOKEN
           : v < REFINE_BPT_MIN ? REFINE_BPT_MIN
           : v > REFINE_BPT_MAX ? REFINE_BPT_MAX
                                : v;
    return true;
}

/* The local model's estimated time for a transcript of `bytes`, ms, at the speeds
 * given (ms per prompt token, per generated token) and bpt bytes per token. */
static double local_estimate(double bytes, double prefill, double decode, double bpt)
{
    double n = bytes / bpt;

    return (n + REFINE_TEMPLATE_TOKENS) * prefill + (n + 8) * decode;
}

static int ram_gb_of(const struct cdt_refine_params *p)
{
    uint64_t bytes = 0;

    if (p->ram_gb > 0)
        return p->ram_gb;
    if (cdt_sysinfo_total_ram(&bytes) != 0)
        return 8;
    return cdt_limits_ram_gb(bytes);
}

/* ---- local ---- */

static bool downloaded_llm(const struct cdt_refine_params *p, const struct cdt_catalog_model *cm,
                           char *path, size_t cap)
{
    return cm && cm->kind == CDT_MODEL_LLM && cdt_models_path(p->models, cm->id, path, cap) == 0;
}

/* The model to use: its path, and *model (its id or path). */
static int resolve_model(const struct cdt_refine_params *p, char *path, size_t cap, char **model,
                         char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm = NULL;

    if (p->model && cdt_catalog_is_path(p->model)) {
        if (access(p->model, R_OK) != 0)
            return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND, "model file %s: %s", p->model,
                                   strerror(errno));
        snprintf(path, cap, "%s", p->model);
        *model = strdup(p->model);
        return *model ? 0 : CDT_ENOMEM;
    }
    if (!p->catalog || !p->models) {
        if (p->model)
            return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                                   "model '%s': no catalog to look it up in", p->model);
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND, "no model installed");
    }
    if (p->model) {
        cm = cdt_catalog_find(p->catalog, p->model);
        if (!cm)
            return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND,
                                   "unknown model '%s' (see codictate models list)", p->model);
        if (cm->kind != CDT_MODEL_LLM)
            return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                                   "model '%s' is a %s model, not an LLM", p->model,
                                   cdt_model_kind_name(cm->kind));
        if (cdt_models_path(p->models, cm->id, path, cap) == CDT_ECHECKSUM)
            return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND, CDT_MODELS_DAMAGED_FMT, cm->id,
                                   cm->id);
        if (!downloaded_llm(p, cm, path, cap))
            return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND,
                                   "model %s is not downloaded (codictate models pull %s)", cm->id,
                                   cm->id);
    } else {
        cm = cdt_models_default(p->models, CDT_MODEL_LLM, cdt_limits_tier(ram_gb_of(p)));
        if (cm && !downloaded_llm(p, cm, path, cap))
            cm = NULL;
        if (!cm)
            return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND, "no model installed");
    }
    *model = strdup(cm->id);
    return *model ? 0 : CDT_ENOMEM;
}

/* Whether the local model p would use is one the catalog says knows the default
 * instructions alone (fixed_prompt): a GGUF path never is. */
static bool fixed_prompt(const struct cdt_refine_params *p)
{
    const struct cdt_catalog_model *cm = NULL;

    if (p->provider != CDT_REFINE_LOCAL || !p->catalog)
        return false;
    if (p->model)
        cm = cdt_catalog_is_path(p->model) ? NULL : cdt_catalog_find(p->catalog, p->model);
    else if (p->models)
        cm = cdt_models_default(p->models, CDT_MODEL_LLM, cdt_limits_tier(ram_gb_of(p)));
    return cm && cm->fixed_prompt;
}

char *cdt__refine_instructions_of(const struct cdt_refine_params *p)
{
    const char *v = p->vocabulary && *p->vocabulary && !fixed_prompt(p) ? p->vocabulary : NULL;

    return cdt_refine_instructions_with(p->instructions, v);
}

/* True when the catalog says model `id` knows English and nothing else. */
static bool english_only(const struct cdt_refine_params *p, const char *id)
{
    const struct cdt_catalog_model *cm = p->catalog ? cdt_catalog_find(p->catalog, id) : NULL;

    return cm && cm->n_languages == 1 && strcmp(cm->languages[0], "en") == 0;
}

/* The manager that runs the local model at path, with the model loaded as a preload
 * loads it (the instructions warmed): the sidecar measures the model's speeds as it
 * loads, so even a fresh manager's first request is weighed against its deadline.
 * Returns 0 with *mgr set, or an error ("sidecar: …"). */
static int local_load(const struct cdt_refine_params *p, const char *path, struct cdt_manager **mgr,
                      char *errmsg, size_t errcap)
{
    char err[512] = "", *instr;
    int rc;

    *mgr = p->manager ? p->manager : p->models ? cdt_models_manager(p->models) : NULL;
    if (!*mgr)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "sidecar: no lifecycle manager to run it");
    if (!(instr = cdt__refine_instructions_of(p)))
        return CDT_ENOMEM;
    rc = cdt_manager_load_warm(*mgr, path, instr, err, sizeof(err));
    free(instr);
    if (rc != 0)
        return cdt__errmsg_set(errmsg, errcap, rc, "sidecar: %s", err[0] ? err : cdt_strerror(rc));
    return 0;
}

/* The local model for `text` loaded (local_load), its path in path[CDT_REFINE_PATH_MAX]
 * and its manager in *mgr; false when there is none to load or it would not be asked
 * about text (cdt__refine_local's language rule), or the load failed. */
static bool local_ready(const struct cdt_refine_params *p, const char *text, char *path,
                        struct cdt_manager **mgr)
{
    char err[512], *model = NULL;
    bool asked;

    if (p->provider != CDT_REFINE_LOCAL ||
        resolve_model(p, path, CDT_REFINE_PATH_MAX, &model, err, sizeof(err)) != 0)
        return false;
    asked = !english_only(p, model) || cdt_cleanup_is_english(text);
    free(model);
    return asked && local_load(p, path, mgr, err, sizeof(err)) == 0;
}

bool cdt__refine_load(const struct cdt_refine_params *p, const char *text)
{
    char path[CDT_REFINE_PATH_MAX];
    struct cdt_manager *mgr;

    return local_ready(p, text, path, &mgr);
}

long cdt__refine_fit_bytes(const struct cdt_refine_params *p, const char *text, long left_ms)
{
    char path[CDT_REFINE_PATH_MAX];
    struct cdt_manager *mgr;
    double prefill, decode, bpt, fixed, per_byte;

    if (!local_ready(p, text, path, &mgr) ||
        !local_speeds(mgr, path, text, &prefill, &decode, &bpt))
        return -1;
    /* local_estimate(b) = fixed + b * per_byte <= REFINE_FIT_SHARE * left_ms */
    fixed = local_estimate(0, prefill, decode, bpt);
    per_byte = (local_estimate(bpt, prefill, decode, bpt) - fixed) / bpt;
    if (per_byte <= 0 || REFINE_FIT_SHARE * (double)left_ms <= fixed)
        return 0;
    return (long)((REFINE_FIT_SHARE * (double)left_ms - fixed) / per_byte);
}

int cdt__refine_local(const struct cdt_refine_params *p, const struct cdt_refine_llm_request *req,
                      struct cdt_refine_llm_reply *reply, char **model,
                      enum cdt_refine_reason *reason, char *errmsg, size_t errcap)
{
    char path[CDT_REFINE_PATH_MAX], err[512];
    struct cdt_sidecar_gen_req gen = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply ans;
    struct cdt_manager *mgr;
    int rc;

    /* Past model resolution every error is the sidecar's, or its deadline. */
    *reason = CDT_REFINE_SIDECAR;
    rc = resolve_model(p, path, sizeof(path), model, errmsg, errcap);
    if (rc != 0) {
        /* A model named but unusable, or none to pick from. */
        *reason = p->model ? CDT_REFINE_MODEL_UNAVAILABLE : CDT_REFINE_NO_MODEL;
        return rc;
    }
    if (english_only(p, *model) && !cdt_cleanup_is_english(req->transcript)) {
        /* A model that knows only English mangles other languages (the built-in
         * one does): the deterministic text is better, and no model is loaded. */
        *reason = CDT_REFINE_LANGUAGE;
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "%s knows only English", *model);
    }
    rc = local_load(p, path, &mgr, errmsg, errcap);
    if (rc != 0)
        return rc;
    gen.prompt = req->prompt;
    gen.max_tokens = cdt_refine_max_tokens(req->transcript);
    gen.temperature = 0;
    gen.timeout_ms = req->timeout_ms;
    {
        /* With this model's speeds on this machine: a request that cannot
         * finish in time is not started, and one that can gets a deadline that fits
         * it (the caller's is the ceiling). */
        double prefill, decode, bpt;

        if (local_speeds(mgr, path, req->transcript, &prefill, &decode, &bpt)) {
            double est = local_estimate((double)strlen(req->transcript), prefill, decode, bpt);

            if (est > (double)req->timeout_ms) {
                *reason = CDT_REFINE_TIMEOUT;
                return cdt__errmsg_set(errmsg, errcap, CDT_ETIMEOUT,
                                       "deadline: the model would need about %.1f s for this "
                                       "transcript on this machine (%.1f s allowed); not started",
                                       est / 1000.0, (double)req->timeout_ms / 1000.0);
            }
            if (REFINE_DEADLINE_FACTOR * est + REFINE_DEADLINE_SLACK_MS < (double)req->timeout_ms)
                gen.timeout_ms = (long)(REFINE_DEADLINE_FACTOR * est + REFINE_DEADLINE_SLACK_MS);
        }
    }
    gen.system_ram_gb = ram_gb_of(p);
    gen.raw = true;
    /* Streamed or not, the answer's final event carries the same result (and the
     * same errors, deadline and token counts): streaming only adds the pieces. */
    gen.stream = p->on_delta != NULL;
    gen.on_piece = p->on_delta;
    gen.piece_user_data = p->delta_user_data;
    gen.should_stop = p->should_stop;
    gen.stop_user_data = p->stop_user_data;
    CDT_LOG_I(p->log, "refine: local model %s, deadline %ld ms", path, req->timeout_ms);
    rc = cdt_manager_generate(mgr, path, &gen, &ans, err, sizeof(err));
    if (rc == CDT_ETIMEOUT) {
        *reason = CDT_REFINE_TIMEOUT;
        return cdt__errmsg_set(errmsg, errcap, rc, "deadline: %s", err);
    }
    if (rc != 0)
        return cdt__errmsg_set(errmsg, errcap, rc, "sidecar: %s", err[0] ? err : cdt_strerror(rc));
    if (ans.status != 200) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_EENGINE, "sidecar: HTTP %ld: %.200s", ans.status,
                             ans.detail);
        cdt_sidecar_gen_reply_cleanup(&ans);
        return rc;
    }
    /* The reply's text moves to the provider's reply. */
    reply->text = ans.response;
    ans.response = NULL;
    reply->generated_tokens = ans.tokens_generated;
    reply->prompt_tokens = ans.timings.prompt_tokens;
    rc = strcmp(ans.truncated, "deadline") == 0 ? CDT_ETIMEOUT : 0;
    cdt_sidecar_gen_reply_cleanup(&ans);
    if (rc == CDT_ETIMEOUT) {
        *reason = CDT_REFINE_TIMEOUT;
        return cdt__errmsg_set(errmsg, errcap, rc, "deadline: the model was stopped after %ld ms",
                               req->timeout_ms);
    }
    return 0;
}

int cdt_refine_preload(const struct cdt_refine_params *p, char *errmsg, size_t errcap)
{
    char path[CDT_REFINE_PATH_MAX], *model = NULL, *instr;
    struct cdt_manager *mgr;
    int rc;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (!p)
        return CDT_EINVAL;
    if (p->provider != CDT_REFINE_LOCAL)
        return 0;
    rc = resolve_model(p, path, sizeof(path), &model, errmsg, errcap);
    free(model);
    if (rc != 0)
        return rc;
    mgr = p->manager ? p->manager : p->models ? cdt_models_manager(p->models) : NULL;
    if (!mgr)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "sidecar: no lifecycle manager to run it");
    /* The instructions are the prompt's fixed head: their KV is computed now, so the
     * first refinement evaluates only the transcript. */
    instr = cdt__refine_instructions_of(p);
    if (!instr)
        return CDT_ENOMEM;
    CDT_LOG_I(p->log, "refine: preloading %s", path);
    rc = cdt_manager_load_warm(mgr, path, instr, errmsg, errcap);
    free(instr);
    return rc;
}

/* ---- openai ---- */

struct http {
    long status;
    char *body; /* NUL-terminated, caller frees */
};

/* One request; body NULL: GET. p->should_stop may abandon it. Returns 0 (any status),
 * CDT_ETIMEOUT, CDT_ENET, CDT_ETOOBIG, CDT_ECANCELED, CDT_ENOMEM, with errmsg. */
static int http(const struct cdt_refine_params *p, const char *url, const char *key,
                const char *body, long timeout_ms, struct http *out, char *errmsg, size_t errcap)
{
    struct cdt_curl_sink s = {.max = CDT_REFINE_MAX_RESPONSE};
    struct curl_slist *h = NULL;
    char *auth = NULL;
    CURLcode cc;
    CURL *c;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cdt__errmsg_set(errmsg, errcap, CDT_EIO, "cannot initialise libcurl");
    c = curl_easy_init();
    if (!c) {
        curl_global_cleanup();
        return CDT_ENOMEM;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cdt_curl_sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    h = curl_slist_append(h, "Accept: application/json");
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    if (key && *key) {
        if (asprintf(&auth, "Authorization: Bearer %s", key) < 0)
            auth = NULL;
        if (auth)
            h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    cc = cdt_curl_perform(c, p->should_stop, p->stop_user_data);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = s.body.data ? cdt_buf_take(&s.body) : strdup("");
        if (!out->body)
            rc = CDT_ENOMEM;
    } else if (cc == CURLE_ABORTED_BY_CALLBACK && p->should_stop) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ECANCELED, "cancelled");
    } else if (s.too_big) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG,
                             "an answer over CDT_REFINE_MAX_RESPONSE (%d bytes)",
                             CDT_REFINE_MAX_RESPONSE);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ETIMEOUT, "no answer within %ld ms", timeout_ms);
    } else {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ENET, "%s", curl_easy_strerror(cc));
    }
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    cdt_buf_cleanup(&s.body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return rc;
}

/* The OpenAI error message of a body, or the start of the body. */
static void error_of(const char *body, char *out, size_t cap)
{
    cJSON *o = cJSON_Parse(body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;

    if (cJSON_IsString(m))
        snprintf(out, cap, "%.200s", m->valuestring);
    else
        snprintf(out, cap, "%.120s", body);
    cJSON_Delete(o);
}

/* The model name: given, "gpt-4o-mini" on OpenAI, else the server's first model. */
static char *pick_model(const struct cdt_refine_params *p, const char *base, long budget_ms)
{
    struct http r;
    char url[CDT_REFINE_URL_MAX + 16], err[256];
    char *name = NULL;

    if (p->openai_model && *p->openai_model)
        return strdup(p->openai_model);
    if (strstr(base, "://api.openai.com"))
        return strdup(CDT_REFINE_OPENAI_MODEL);
    snprintf(url, sizeof(url), "%s/models", base);
    if (http(p, url, p->api_key, NULL,
             budget_ms < CDT_REFINE_MODELS_MS ? budget_ms : CDT_REFINE_MODELS_MS, &r, err,
             sizeof(err)) == 0) {
        if (r.status == 200) {
            cJSON *o = cJSON_Parse(r.body);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 0), "id");

            if (cJSON_IsString(id) && id->valuestring[0])
                name = strdup(id->valuestring);
            cJSON_Delete(o);
        }
        free(r.body);
    }
    return name ? name : strdup(CDT_REFINE_OPENAI_MODEL);
}

/* Whether the endpoint is on this machine (localhost, 127.0.0.0/8, ::1): a local
 * server such as llama-server, vLLM or Ollama, never a cloud API. */
static bool is_loopback(const char *base)
{
    CURLU *u = curl_url();
    char *host = NULL;
    bool yes = false;

    if (u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host)
        yes = strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
              strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
    curl_free(host);
    curl_url_cleanup(u);
    return yes;
}

/* max_tokens 0: not sent. no_thinking: ask the chat template not to think. */
static char *chat_body(const char *model, const struct cdt_refine_llm_request *req, int max_tokens,
                       bool no_thinking)
{
    cJSON *o = cJSON_CreateObject(), *msgs, *m, *k;
    char *s = NULL;

    if (!o || !cJSON_AddStringToObject(o, "model", model) ||
        !(msgs = cJSON_AddArrayToObject(o, "messages")))
        goto out;
    if (!(m = cJSON_CreateObject()) || !cJSON_AddItemToArray(msgs, m) ||
        !cJSON_AddStringToObject(m, "role", "system") ||
        !cJSON_AddStringToObject(m, "content", req->instructions))
        goto out;
    if (!(m = cJSON_CreateObject()) || !cJSON_AddItemToArray(msgs, m) ||
        !cJSON_AddStringToObject(m, "role", "user") ||
        !cJSON_AddStringToObject(m, "content", req->transcript))
        goto out;
    if (!cJSON_AddNumberToObject(o, "temperature", 0) || !cJSON_AddFalseToObject(o, "stream"))
        goto out;
    if (max_tokens > 0 && !cJSON_AddNumberToObject(o, "max_tokens", max_tokens))
        goto out;
    if (no_thinking && (!(k = cJSON_AddObjectToObject(o, "chat_template_kwargs")) ||
                        !cJSON_AddFalseToObject(k, "enable_thinking")))
        goto out;
    s = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return s;
}

int cdt__refine_openai(const struct cdt_refine_params *p, const struct cdt_refine_llm_request *req,
                       struct cdt_refine_llm_reply *reply, char **model,
                       enum cdt_refine_reason *reason, char *errmsg, size_t errcap)
{
    char base[CDT_REFINE_URL_MAX], url[CDT_REFINE_URL_MAX + 32], err[512];
    const char *given = p->base_url && *p->base_url ? p->base_url : CDT_REFINE_DEFAULT_URL;
    double t0 = cdt_now_ms();
    bool local;
    long left;
    struct http r;
    char *body;
    cJSON *o, *choice, *x;
    int rc;

    if (strlen(given) >= sizeof(base))
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "openai endpoint: base URL over %d bytes", CDT_REFINE_URL_MAX);
    snprintf(base, sizeof(base), "%s", given);
    for (size_t n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
        base[n - 1] = '\0';
    *model = pick_model(p, base, req->timeout_ms);
    if (!*model)
        return CDT_ENOMEM;
    /* A local server gets what the sidecar does: thinking off (Qwen3 on llama-server
     * or vLLM thinks by default) and the transcript's output limit, so a runaway model
     * stops long before the deadline. Cloud APIs get neither: some reject unknown
     * fields, and reasoning models count their thinking in max_tokens. */
    local = is_loopback(base);
    body = chat_body(*model, req, local ? cdt_refine_max_tokens(req->transcript) : 0, local);
    if (!body)
        return CDT_ENOMEM;
    snprintf(url, sizeof(url), "%s/chat/completions", base);
    left = req->timeout_ms - (long)(cdt_now_ms() - t0);
    CDT_LOG_I(p->log, "refine: %s (model %s), deadline %ld ms", url, *model, req->timeout_ms);
    rc = left <= 0 ? cdt__errmsg_set(err, sizeof(err), CDT_ETIMEOUT, "no answer within %ld ms",
                                     req->timeout_ms)
                   : http(p, url, p->api_key, body, left, &r, err, sizeof(err));
    free(body);
    if (rc == CDT_ETIMEOUT)
        return cdt__errmsg_set(errmsg, errcap, rc, "deadline: %s from %s", err, url);
    if (rc == CDT_ENOMEM || rc == CDT_ECANCELED)
        return cdt__errmsg_set(errmsg, errcap, rc, "%s", rc == CDT_ENOMEM ? "out of memory" : err);
    if (rc != 0)
        return cdt__errmsg_set(errmsg, errcap, rc, "openai endpoint: %s: %s", url, err);
    if (r.status != 200) {
        error_of(r.body, err, sizeof(err));
        free(r.body);
        rc = r.status == 401 || r.status == 403 ? CDT_EAUTH : CDT_EPROTOCOL;
        if (rc == CDT_EAUTH)
            *reason = CDT_REFINE_PROVIDER_AUTH;
        return cdt__errmsg_set(errmsg, errcap, rc, "openai endpoint: HTTP %ld from %s: %s",
                               r.status, url, err);
    }
    o = cJSON_Parse(r.body);
    free(r.body);
    choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
    x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(choice, "message"),
                                         "content");
    if (!cJSON_IsString(x) && !cJSON_IsNull(x)) {
        cJSON_Delete(o);
        return cdt__errmsg_set(errmsg, errcap, CDT_EPROTOCOL,
                               "openai endpoint: the answer has no choices[0].message.content");
    }
    reply->text = strdup(cJSON_IsString(x) ? x->valuestring : "");
    x = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    reply->truncated = cJSON_IsString(x) && strcmp(x->valuestring, "length") == 0;
    x = cJSON_GetObjectItemCaseSensitive(o, "usage");
    reply->prompt_tokens = cJSON_GetObjectItemCaseSensitive(x, "prompt_tokens")
                               ? cJSON_GetObjectItemCaseSensitive(x, "prompt_tokens")->valueint
                               : 0;
    reply->generated_tokens =
        cJSON_GetObjectItemCaseSensitive(x, "completion_tokens")
            ? cJSON_GetObjectItemCaseSensitive(x, "completion_tokens")->valueint
            : 0;
    cJSON_Delete(o);
    return reply->text ? 0 : CDT_ENOMEM;
}
