/* The typed sidecar client (see sidecar_client.h): request structs become JSON
 * bodies, answers become reply structs, over cdt_client_request.
 *
 * Invariants: a reply is zeroed before anything else happens, so on any error it
 * holds nothing to free; every field read from an answer is type-checked (a wrong
 * type reads as absent, except the fields the protocol requires, which make the
 * call fail with CDT_EPROTOCOL); strings copied into fixed fields are cut to fit;
 * a stream's pieces reach req->on_piece as they arrive, but its reply is read from
 * the whole body, so the reply is the same with or without on_piece.
 * Prompt and response text never reach a log. */
#include "codictate/sidecar_client.h"
#include "codictate/client.h"
#include "codictate/util.h"
#include "err_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_RESPONSE "an answer without \"response\""

struct cdt_sidecar_gen_req cdt_sidecar_gen_default_req(void)
{
    struct cdt_sidecar_gen_req r;

    memset(&r, 0, sizeof(r));
    r.temperature = -1;
    r.top_p = -1;
    r.min_p = -1;
    r.repetition_penalty = -1;
    r.seed = -1;
    return r;
}

void cdt_sidecar_gen_reply_cleanup(struct cdt_sidecar_gen_reply *r)
{
    if (!r)
        return;
    free(r->response);
    free(r->streamed);
    memset(r, 0, sizeof(*r));
}

/* ---- reading answers ---- */

static const cJSON *field(const cJSON *o, const char *name)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static int int_of(const cJSON *o, const char *name)
{
    const cJSON *x = field(o, name);

    return cJSON_IsNumber(x) ? x->valueint : 0;
}

static double num_of(const cJSON *o, const char *name)
{
    const cJSON *x = field(o, name);

    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

/* Copies a string field into out ("" when absent or not a string). */
static void str_of(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *x = field(o, name);

    snprintf(out, cap, "%s", cJSON_IsString(x) ? x->valuestring : "");
}

/* An error answer's text: its "detail" string, or the body itself. */
static void detail_of(const cJSON *o, const char *body, char *out, size_t cap)
{
    const cJSON *d = field(o, "detail");

    snprintf(out, cap, "%s", cJSON_IsString(d) ? d->valuestring : body ? body : "");
}

/* A /generate result object (the plain answer, or a stream's final event). */
static int read_result(const cJSON *o, struct cdt_sidecar_gen_reply *out, char *errmsg,
                       size_t errcap)
{
    const cJSON *x = field(o, "response"), *t;

    if (!cJSON_IsString(x))
        return cdt__errmsg_set(errmsg, errcap, CDT_EPROTOCOL, NO_RESPONSE);
    out->response = strdup(x->valuestring);
    if (!out->response)
        return CDT_ENOMEM;
    out->tokens_generated = int_of(o, "tokens_generated");
    str_of(o, "prompt_format_mode", out->prompt_format_mode, sizeof(out->prompt_format_mode));
    out->prompt_format_fallback = cJSON_IsTrue(field(o, "prompt_format_fallback"));
    str_of(o, "truncated", out->truncated, sizeof(out->truncated));
    t = field(o, "timings");
    out->timings.prompt_tokens = int_of(t, "prompt_tokens");
    out->timings.cached_tokens = int_of(t, "cached_tokens");
    out->timings.prompt_tokens_evaluated = int_of(t, "prompt_tokens_evaluated");
    out->timings.prompt_ms = num_of(t, "prompt_ms");
    out->timings.generated_tokens = int_of(t, "generated_tokens");
    out->timings.generation_ms = num_of(t, "generation_ms");
    out->timings.tokens_per_second = num_of(t, "tokens_per_second");
    out->timings.draft_tokens = int_of(t, "draft_tokens");
    out->timings.accepted_tokens = int_of(t, "accepted_tokens");
    str_of(t, "sampler", out->timings.sampler, sizeof(out->timings.sampler));
    return 0;
}

/* A streamed 200 answer: "data: {json}\n\n" events, {"text": piece}… then
 * {"done": true, …result} or {"done": true, "status": N, "detail": "…"}. */
static int read_stream(char *body, struct cdt_sidecar_gen_reply *out, char *errmsg, size_t errcap)
{
    struct cdt_buf text = {0};
    char *line, *save = NULL;
    bool done = false;
    int rc = 0;

    if (cdt_buf_reserve(&text, 0) != 0)
        return CDT_ENOMEM;
    for (line = strtok_r(body, "\n", &save); line && !done && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *o;
        const cJSON *x;

        if (strncmp(line, "data: ", 6) != 0)
            continue; /* blank separators, comments */
        o = cJSON_Parse(line + 6);
        if (!cJSON_IsObject(o)) {
            rc = cdt__errmsg_set(errmsg, errcap, CDT_EPROTOCOL,
                                 "a stream event that is not a JSON object");
        } else if (cJSON_IsTrue(field(o, "done"))) {
            done = true;
            x = field(o, "status");
            if (cJSON_IsNumber(x)) {
                out->status = (long)x->valuedouble;
                detail_of(o, NULL, out->detail, sizeof(out->detail));
            } else {
                rc = read_result(o, out, errmsg, errcap);
            }
        } else if (cJSON_IsString(x = field(o, "text"))) {
            if (cdt_buf_appends(&text, x->valuestring) != 0)
                rc = CDT_ENOMEM;
        }
        cJSON_Delete(o);
    }
    if (rc == 0 && !done)
        rc = cdt__errmsg_set(errmsg, errcap, CDT_EPROTOCOL, "a stream without its final event");
    if (rc == 0 && out->status == 200)
        out->streamed = cdt_buf_take(&text);
    cdt_buf_cleanup(&text);
    return rc;
}

/* ---- requests ---- */

static bool add_num(cJSON *o, const char *name, double v)
{
    return cJSON_AddNumberToObject(o, name, v) != NULL;
}

static char *gen_body(const struct cdt_sidecar_gen_req *req)
{
    cJSON *o = cJSON_CreateObject(), *a;
    char *s = NULL;

    if (!o || !cJSON_AddStringToObject(o, "prompt", req->prompt))
        goto out;
    if ((req->max_tokens != 0 && !add_num(o, "max_tokens", req->max_tokens)) ||
        (req->temperature >= 0 && !add_num(o, "temperature", req->temperature)) ||
        (req->top_p >= 0 && !add_num(o, "top_p", req->top_p)) ||
        (req->min_p >= 0 && !add_num(o, "min_p", req->min_p)) ||
        (req->repetition_penalty >= 0 &&
         !add_num(o, "repetition_penalty", req->repetition_penalty)) ||
        (req->seed >= 0 && !add_num(o, "seed", (double)req->seed)))
        goto out;
    if (req->stop && req->n_stop > 0) {
        if (!(a = cJSON_AddArrayToObject(o, "stop")))
            goto out;
        for (size_t i = 0; i < req->n_stop; i++) {
            cJSON *v = cJSON_CreateString(req->stop[i] ? req->stop[i] : "");

            if (!v || !cJSON_AddItemToArray(a, v)) {
                cJSON_Delete(v);
                goto out;
            }
        }
    }
    if ((req->timeout_ms > 0 && !add_num(o, "timeout_ms", (double)req->timeout_ms)) ||
        (req->system_ram_gb > 0 && !add_num(o, "system_ram_gb", req->system_ram_gb)) ||
        (req->ignore_eos && !cJSON_AddTrueToObject(o, "ignore_eos")) ||
        (req->raw && !cJSON_AddTrueToObject(o, "raw")) ||
        (req->stream && !cJSON_AddTrueToObject(o, "stream")))
        goto out;
    s = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return s;
}

int cdt_sidecar_generate(int port, const char *token, const struct cdt_sidecar_gen_req *req,
                         long timeout_ms, struct cdt_sidecar_gen_reply *out, char *errmsg,
                         size_t errcap)
{
    struct cdt_client_text_scan ps = {.on_text = req->on_piece, .user_data = req->piece_user_data};
    struct cdt_client_response r;
    char *body;
    cJSON *o;
    int rc;

    memset(out, 0, sizeof(*out));
    if (errcap)
        errmsg[0] = '\0';
    if (!req || !req->prompt)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "generate: no prompt");
    body = gen_body(req);
    if (!body)
        return CDT_ENOMEM;
    rc = cdt_client_request_observed(
        port, token, "POST", "/generate", body, timeout_ms,
        req->stream && req->on_piece ? cdt_client_scan_text_events : NULL, &ps, req->should_stop,
        req->stop_user_data, &r, errmsg, errcap);
    cdt_buf_cleanup(&ps.line);
    free(body);
    if (rc != 0)
        return rc;
    out->status = r.status;
    if (r.status == 200 && req->stream) {
        rc = read_stream(r.body, out, errmsg, errcap);
    } else {
        o = cJSON_Parse(r.body);
        if (r.status == 200)
            rc = read_result(o, out, errmsg, errcap);
        else
            detail_of(o, r.body, out->detail, sizeof(out->detail));
        cJSON_Delete(o);
    }
    free(r.body);
    if (rc != 0)
        cdt_sidecar_gen_reply_cleanup(out);
    return rc;
}

/* j's value when it is a finite number above 0, else 0. */
static double positive(const cJSON *j)
{
    return cJSON_IsNumber(j) && isfinite(j->valuedouble) && j->valuedouble > 0.0 ? j->valuedouble
                                                                                 : 0.0;
}

int cdt_sidecar_load(int port, const char *token, const struct cdt_sidecar_load_req *req,
                     long timeout_ms, struct cdt_sidecar_load_reply *out, char *errmsg,
                     size_t errcap)
{
    struct cdt_client_response r;
    const cJSON *st;
    cJSON *o;
    char *body;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (errcap)
        errmsg[0] = '\0';
    if (!req || !req->model_path)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "load: no model path");
    o = cJSON_CreateObject();
    body = o && cJSON_AddStringToObject(o, "model_path", req->model_path) &&
                   (!req->warmup_prompt ||
                    cJSON_AddStringToObject(o, "warmup_prompt", req->warmup_prompt))
               ? cJSON_PrintUnformatted(o)
               : NULL;
    cJSON_Delete(o);
    if (!body)
        return CDT_ENOMEM;
    rc = cdt_client_request(port, token, "POST", "/load", body, timeout_ms, &r, errmsg, errcap);
    free(body);
    if (rc != 0)
        return rc;
    out->status = r.status;
    o = cJSON_Parse(r.body);
    if (r.status != 200) {
        detail_of(o, r.body, out->detail, sizeof(out->detail));
    } else {
        st = field(o, "status");
        if (!cJSON_IsString(st) || strcmp(st->valuestring, "loaded") != 0)
            rc = cdt__errmsg_set(errmsg, errcap, CDT_EPROTOCOL,
                                 "a /load answer without \"status\": \"loaded\"");
        /* Optional: a speed that is not a positive number is no speed. */
        st = field(o, "speed");
        out->prefill_ms = positive(field(st, "prefill_ms_per_token"));
        out->decode_ms = positive(field(st, "decode_ms_per_token"));
    }
    cJSON_Delete(o);
    free(r.body);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int cdt_sidecar_health(int port, const char *token, long timeout_ms, struct cdt_sidecar_health *out,
                       char *errmsg, size_t errcap)
{
    struct cdt_client_response r;
    const cJSON *st;
    cJSON *o;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = cdt_client_request(port, token, "GET", "/health", NULL, timeout_ms, &r, errmsg, errcap);
    if (rc != 0)
        return rc;
    o = cJSON_Parse(r.body);
    st = field(o, "status");
    if (cJSON_IsString(st)) {
        out->status = r.status;
        snprintf(out->state, sizeof(out->state), "%s", st->valuestring);
    } else {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_EPROTOCOL,
                             "a /health answer (HTTP %ld) without \"status\"", r.status);
    }
    cJSON_Delete(o);
    free(r.body);
    return rc;
}

int cdt_sidecar_unload(int port, const char *token, long timeout_ms,
                       struct cdt_sidecar_unload_reply *out, char *errmsg, size_t errcap)
{
    struct cdt_sidecar_unload_reply ignored;
    struct cdt_client_response r;
    const cJSON *st;
    cJSON *o;
    int rc;

    if (!out)
        out = &ignored;
    memset(out, 0, sizeof(*out));
    rc = cdt_client_request(port, token, "POST", "/unload", NULL, timeout_ms, &r, errmsg, errcap);
    if (rc != 0)
        return rc;
    out->status = r.status;
    o = cJSON_Parse(r.body);
    if (r.status != 200) {
        detail_of(o, r.body, out->detail, sizeof(out->detail));
    } else {
        st = field(o, "status");
        out->was_loaded = cJSON_IsString(st) && strcmp(st->valuestring, "unloaded") == 0;
    }
    cJSON_Delete(o);
    free(r.body);
    return 0;
}

int cdt_sidecar_count_tokens(int port, const char *token, const char *text, long timeout_ms, int *n,
                             char *errmsg, size_t errcap)
{
    struct cdt_client_response r;
    const cJSON *v;
    cJSON *req, *o;
    char *body, detail[CDT_SIDECAR_DETAIL_MAX];
    int rc;

    *n = 0;
    req = cJSON_CreateObject();
    if (!req || !cJSON_AddStringToObject(req, "content", text ? text : "") ||
        !(body = cJSON_PrintUnformatted(req))) {
        cJSON_Delete(req);
        return CDT_ENOMEM;
    }
    cJSON_Delete(req);
    rc = cdt_client_request(port, token, "POST", "/tokenize", body, timeout_ms, &r, errmsg, errcap);
    free(body);
    if (rc != 0)
        return rc;
    o = cJSON_Parse(r.body);
    v = field(o, "n_tokens");
    if (r.status == 200 && cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9) {
        *n = (int)v->valuedouble;
    } else {
        detail_of(o, r.body, detail, sizeof(detail));
        rc = r.status == 400                      ? CDT_ESTATE
             : r.status == 501 || r.status == 404 ? CDT_EUNSUPPORTED
                                                  : CDT_EPROTOCOL;
        cdt__errmsg_set(errmsg, errcap, rc, "/tokenize: HTTP %ld: %s", r.status, detail);
    }
    cJSON_Delete(o);
    free(r.body);
    return rc;
}
