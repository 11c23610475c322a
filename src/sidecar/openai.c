/* The OpenAI-compatible API on the sidecar: GET /v1/models, GET /v1/models/{id} and
 * POST /v1/chat/completions (streaming and not), with OpenAI's response, chunk,
 * usage, logprobs and error objects, so OpenAI clients and other dictation apps can
 * use the local model. Generation goes through the same worker, prefix cache and
 * speculative decoding as /generate. Text is returned as the model produced it
 * (no seed-style cleaning), as llama-server does.
 *
 * Defaults are OpenAI's, not the seed's: temperature 1, top_p 1, no repetition
 * penalty, no max_tokens but the context. Every option either works or is a 400
 * that names its `param` (n > 1, tools, logit_bias): nothing is accepted and then
 * ignored. Tool calls and tool results in a history are rendered as text, the way
 * Qwen's chat template writes them. */
#include "json_grammar_int.h"
#include "sidecar_int.h"

#include "codictate/text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define CDT_OAI_NO_CAP   10000000    /* max_tokens when none is given: the context decides */
#define CDT_OAI_MAX_TOOL (64 * 1024) /* bytes of one rendered tool call */

struct oai {
    char id[48];       /* "chatcmpl-<hex>" */
    char model[256];   /* the model name answered */
    long long created; /* unix seconds */
    bool include_usage;
    bool sent_role;
    char *grammar;  /* response_format's GBNF (gp.grammar points here), or NULL */
    cJSON *lp;      /* with logprobs: the content entries so far (under the sidecar lock) */
    int lp_sent;    /* entries of lp already streamed */
    int lp_dropped; /* entries that did not fit in memory */
    bool has_seed;  /* the request's seed (parse_oai_options) */
    uint32_t seed;
};

void cdt__oai_error(struct cdt_http_req *req, int status, const char *param, const char *code,
                    const char *msg)
{
    cJSON *o = cJSON_CreateObject(), *e;
    const char *type = status == 401   ? "authentication_error"
                       : status == 403 ? "permission_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";

    if (status == 401 && !code)
        code = "invalid_api_key";
    if (status == 503) /* busy, loading or shutting down: clients retry after it */
        cdt_http_add_header(req, "Retry-After", CDT_OAI_RETRY_AFTER);
    e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    cdt__reply_json(req, status, o);
}

/* The cdt_reply_err of /v1: OpenAI's error object. A body's wrong type or range
 * (the seed's 422) is a 400 here, as OpenAI answers it. */
static void oai_err(struct cdt_http_req *req, int status, const char *param, const char *fmt, ...)
    CDT_PRINTF(4, 5);

static void oai_err(struct cdt_http_req *req, int status, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cdt__oai_error(req, status == 422 ? 400 : status, param, NULL, msg);
}

/* The loaded model's name for "model" fields; false when none is loaded. */
static bool model_name(struct cdt_sidecar *s, char *buf, size_t cap)
{
    bool loaded;

    pthread_mutex_lock(&s->lock);
    loaded = s->loaded;
    if (loaded && cap > 0) {
        const char *slash = strrchr(s->info.path, '/');
        const char *base = slash ? slash + 1 : s->info.path;
        size_t n = strnlen(base, cap - 1);

        memcpy(buf, base, n);
        buf[n] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
    return loaded;
}

void cdt__route_v1_models(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data"), *m;
    char name[256];

    cJSON_AddStringToObject(o, "object", "list");
    if (model_name(s, name, sizeof(name))) {
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)time(NULL));
        cJSON_AddStringToObject(m, "owned_by", "codictate");
        cJSON_AddItemToArray(data, m);
    }
    cdt__reply_json(req, 200, o);
}

static void oai_free(void *p)
{
    struct oai *a = p;

    if (!a)
        return;
    free(a->grammar);
    cJSON_Delete(a->lp);
    free(a);
}

/* GET /v1/models/{id}: the loaded model's object; any other id is a 404. */
void cdt__route_v1_model(struct cdt_sidecar *s, struct cdt_http_req *req, const char *id)
{
    char name[256];
    cJSON *m;

    if (!model_name(s, name, sizeof(name)) || strcmp(id, name) != 0) {
        char msg[400];

        snprintf(msg, sizeof(msg), "The model '%.300s' does not exist", id);
        cdt__oai_error(req, 404, "model", "model_not_found", msg);
        return;
    }
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "codictate");
    cdt__reply_json(req, 200, m);
}

/* ---- logprobs ---- */

/* {token, logprob, bytes} of one token: the token as valid UTF-8 (bytes that are
 * part of a character split across tokens become U+FFFD), its exact bytes. */
static cJSON *lp_entry(const struct cdt_token_prob *t)
{
    cJSON *o = cJSON_CreateObject(), *bytes;
    char *text = cdt_utf8_repair(t->piece, t->len, NULL);

    if (!o || !text) {
        cJSON_Delete(o);
        free(text);
        return NULL;
    }
    cJSON_AddStringToObject(o, "token", text);
    free(text);
    cJSON_AddNumberToObject(o, "logprob", isfinite(t->logprob) ? t->logprob : -9999.0);
    bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < t->len; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)t->piece[i]));
    return o;
}

/* The engine's on_logprobs (worker thread): one content entry per token. */
static void on_logprobs(const struct cdt_token_logprobs *lp, void *ud)
{
    struct job *j = ud;
    struct oai *a = j->api;
    cJSON *o = lp_entry(&lp->token), *top;

    if (o) {
        top = cJSON_AddArrayToObject(o, "top_logprobs");
        for (int i = 0; i < lp->n_top; i++) {
            cJSON *t = lp_entry(&lp->top[i]);
            if (t)
                cJSON_AddItemToArray(top, t);
        }
    }
    pthread_mutex_lock(&j->s->lock);
    if (o)
        cJSON_AddItemToArray(a->lp, o);
    else
        a->lp_dropped++;
    pthread_mutex_unlock(&j->s->lock);
}

/* {"content": [entries from..]} (copies); NULL when logprobs were not asked for. */
static cJSON *lp_object(const struct oai *a, int from)
{
    cJSON *o, *content, *e;
    int i = 0;

    if (!a->lp)
        return NULL;
    o = cJSON_CreateObject();
    content = cJSON_AddArrayToObject(o, "content");
    cJSON_ArrayForEach(e, a->lp)
    {
        if (i++ >= from)
            cJSON_AddItemToArray(content, cJSON_Duplicate(e, true));
    }
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

/* Adds choice c's streamed logprobs: the entries not yet sent (lock held). */
static void lp_stream(struct oai *a, cJSON *c)
{
    int n;

    if (!a->lp)
        return;
    n = cJSON_GetArraySize(a->lp);
    cJSON_AddItemToObject(c, "logprobs", lp_object(a, a->lp_sent));
    a->lp_sent = n;
}

static const char *finish_reason(const struct job *j)
{
    if (j->stop_hit)
        return "stop";
    if (j->res.finish_reason && strcmp(j->res.finish_reason, "length") == 0)
        return "length";
    if (j->res.truncated)
        return "length"; /* the deadline: the answer was cut */
    return "stop";
}

static void add_usage(cJSON *o, const struct job *j)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");

    cJSON_AddNumberToObject(u, "prompt_tokens", j->res.timings.prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", j->res.tokens_generated);
    cJSON_AddNumberToObject(u, "total_tokens",
                            j->res.timings.prompt_tokens + j->res.tokens_generated);
}

static cJSON *chunk(const struct oai *a)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)a->created);
    cJSON_AddStringToObject(o, "model", a->model);
    return o;
}

static char *concat_free(char *a, char *b)
{
    size_t la, lb;
    char *r;

    if (!a)
        return b;
    if (!b)
        return a;
    la = strlen(a);
    lb = strlen(b);
    r = realloc(a, la + lb + 1);
    if (!r) {
        free(b);
        return a;
    }
    memcpy(r + la, b, lb + 1);
    free(b);
    return r;
}

/* The error object of a generation that failed after its stream began. */
static cJSON *stream_error(const struct job *j)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    bool busy = j->rc == CDT_ECANCELED; /* shutting down */
    bool bad = j->rc == CDT_EINVAL || j->rc == CDT_ETOOBIG;

    cJSON_AddStringToObject(e, "message", j->errmsg[0] ? j->errmsg : "generation failed");
    cJSON_AddStringToObject(e, "type", bad ? "invalid_request_error" : "server_error");
    cJSON_AddNullToObject(e, "param");
    if (j->rc == CDT_ETOOBIG)
        cJSON_AddStringToObject(e, "code", "context_length_exceeded");
    else if (busy)
        cJSON_AddStringToObject(e, "code", "service_unavailable");
    else
        cJSON_AddNullToObject(e, "code");
    return o;
}

/* Stream events: a role delta first, content deltas, a closing chunk with the
 * finish reason (and usage when asked), then "data: [DONE]". */
static char *format_chat(struct job *j, const char *text, size_t len)
{
    struct oai *a = j->api;
    char *out = NULL;
    cJSON *o, *choices, *c, *d;

    if (!a->sent_role) {
        a->sent_role = true;
        o = chunk(a);
        choices = cJSON_AddArrayToObject(o, "choices");
        c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        d = cJSON_AddObjectToObject(c, "delta");
        cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddStringToObject(d, "content", "");
        cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(choices, c);
        out = cdt__sse_event(o);
    }
    if (text) {
        char *piece = strndup(text, len);

        o = chunk(a);
        choices = cJSON_AddArrayToObject(o, "choices");
        c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        d = cJSON_AddObjectToObject(c, "delta");
        cJSON_AddStringToObject(d, "content", piece ? piece : "");
        lp_stream(a, c);
        cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(choices, c);
        free(piece);
        return concat_free(out, cdt__sse_event(o));
    }
    if (j->rc != 0) {
        /* After the headers are sent an error can only travel in the stream: OpenAI's
         * error object as an event, and the stream ends there (no [DONE]). */
        return concat_free(out, cdt__sse_event(stream_error(j)));
    } else {
        o = chunk(a);
        choices = cJSON_AddArrayToObject(o, "choices");
        c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddObjectToObject(c, "delta");
        if (a->lp && a->lp_sent < cJSON_GetArraySize(a->lp))
            lp_stream(a, c);
        else
            cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", finish_reason(j));
        cJSON_AddItemToArray(choices, c);
        out = concat_free(out, cdt__sse_event(o));
        if (a->include_usage) {
            o = chunk(a);
            cJSON_AddArrayToObject(o, "choices");
            add_usage(o, j);
            out = concat_free(out, cdt__sse_event(o));
        }
    }
    return concat_free(out, strdup("data: [DONE]\n\n"));
}

/* Replaces m's content with `text` (owned by the body from then on). */
static const char *set_content(cJSON *m, const char *text)
{
    cJSON *v = cJSON_CreateString(text);

    bool ok;

    if (!v)
        return NULL;
    if (cJSON_GetObjectItemCaseSensitive(m, "content"))
        ok = cJSON_ReplaceItemInObjectCaseSensitive(m, "content", v);
    else
        ok = cJSON_AddItemToObject(m, "content", v);
    if (!ok) {
        cJSON_Delete(v);
        return NULL;
    }
    return v->valuestring;
}

/* A message's content as a string: text parts joined; null (an assistant's turn
 * that only calls tools) as "". Replaces the item in m so that the string lives in
 * the body. Answers and returns NULL when it is neither. */
static const char *content_text(struct cdt_http_req *req, cJSON *m, int n, bool null_ok)
{
    cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *part, *joined;
    char *buf;

    if (null_ok && (!content || cJSON_IsNull(content))) {
        const char *empty = set_content(m, "");

        if (!empty)
            oai_err(req, 500, NULL, "out of memory");
        return empty;
    }
    if (cJSON_IsString(content))
        return content->valuestring;
    if (!cJSON_IsArray(content)) {
        oai_err(req, 400, "messages", "messages[%d].content: must be a string", n);
        return NULL;
    }
    /* Content parts: keep the text parts, joined. */
    buf = strdup("");
    cJSON_ArrayForEach(part, content)
    {
        cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
            !cJSON_IsString(text)) {
            free(buf);
            oai_err(req, 400, "messages", "messages[%d].content: only text parts", n);
            return NULL;
        }
        buf = concat_free(buf, strdup(text->valuestring));
    }
    joined = cJSON_CreateString(buf ? buf : "");
    free(buf);
    if (!joined) {
        oai_err(req, 500, NULL, "out of memory");
        return NULL;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(m, "content", joined);
    return joined->valuestring;
}

/* An assistant turn's tool calls appended to its text, as Qwen's chat template
 * writes them: <tool_call>{"name": ..., "arguments": ...}</tool_call> per call. */
static const char *render_tool_calls(struct cdt_http_req *req, cJSON *m, const char *text,
                                     const cJSON *calls, int n)
{
    struct cdt_buf b = {0};
    const cJSON *call;
    const char *out;
    int rc = cdt_buf_appends(&b, text);

    if (!cJSON_IsArray(calls)) {
        cdt_buf_cleanup(&b);
        oai_err(req, 400, "messages", "messages[%d].tool_calls: must be an array", n);
        return NULL;
    }
    cJSON_ArrayForEach(call, calls)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        char *name_json;

        if (!cJSON_IsObject(fn) || !cJSON_IsString(name) ||
            (args && !cJSON_IsString(args) && !cJSON_IsObject(args))) {
            cdt_buf_cleanup(&b);
            oai_err(req, 400, "messages",
                    "messages[%d].tool_calls: each needs function.name (a string) and "
                    "function.arguments (a JSON string)",
                    n);
            return NULL;
        }
        name_json = cJSON_PrintUnformatted(name);
        if (rc == 0)
            rc = cdt_buf_appends(&b,
                                 b.len ? "\n<tool_call>\n{\"name\": " : "<tool_call>\n{\"name\": ");
        if (rc == 0)
            rc = name_json ? cdt_buf_appends(&b, name_json) : CDT_ENOMEM;
        free(name_json);
        if (rc == 0)
            rc = cdt_buf_appends(&b, ", \"arguments\": ");
        if (rc == 0 && cJSON_IsString(args)) {
            rc = cdt_buf_appends(&b, *args->valuestring ? args->valuestring : "{}");
        } else if (rc == 0) {
            char *a = args ? cJSON_PrintUnformatted(args) : strdup("{}");
            rc = a ? cdt_buf_appends(&b, a) : CDT_ENOMEM;
            free(a);
        }
        if (rc == 0)
            rc = cdt_buf_appends(&b, "}\n</tool_call>");
        if (rc == 0 && b.len > CDT_OAI_MAX_TOOL + strlen(text)) {
            cdt_buf_cleanup(&b);
            oai_err(req, 400, "messages", "messages[%d].tool_calls: over %d bytes", n,
                    CDT_OAI_MAX_TOOL);
            return NULL;
        }
    }
    out = rc == 0 ? set_content(m, b.data ? b.data : "") : NULL;
    cdt_buf_cleanup(&b);
    if (!out)
        oai_err(req, 500, NULL, "out of memory");
    return out;
}

/* Reads messages into j; answers and returns false when they are wrong. Roles:
 * system and developer (as system), user, assistant (content null with tool_calls
 * allowed), tool (its result, as the user turn Qwen's template makes of it). */
static bool parse_messages(struct cdt_http_req *req, cJSON *body, struct job *j)
{
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages"), *m;
    int n = 0;

    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        oai_err(req, 400, "messages", "messages: a non-empty array is required");
        return false;
    }
    if (cJSON_GetArraySize(msgs) > CDT_MAX_CHAT_MSGS) {
        oai_err(req, 400, "messages", "messages: at most %d messages", CDT_MAX_CHAT_MSGS);
        return false;
    }
    cJSON_ArrayForEach(m, msgs)
    {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        const char *r = cJSON_IsString(role) ? role->valuestring : "", *text;
        bool assistant = strcmp(r, "assistant") == 0, tool = strcmp(r, "tool") == 0;

        if (!cJSON_IsObject(m) || (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 &&
                                   !assistant && !tool && strcmp(r, "developer") != 0)) {
            oai_err(req, 400, "messages",
                    "messages[%d].role: must be system, developer, user, assistant or tool", n);
            return false;
        }
        text = content_text(req, m, n, assistant);
        if (!text)
            return false;
        if (assistant && calls && !cJSON_IsNull(calls) &&
            !(cJSON_IsArray(calls) && cJSON_GetArraySize(calls) == 0)) {
            text = render_tool_calls(req, m, text, calls, n);
            if (!text)
                return false;
        }
        if (tool) {
            struct cdt_buf b = {0};

            if (cdt_buf_appends(&b, "<tool_response>\n") != 0 || cdt_buf_appends(&b, text) != 0 ||
                cdt_buf_appends(&b, "\n</tool_response>") != 0 ||
                !(text = set_content(m, b.data))) {
                cdt_buf_cleanup(&b);
                oai_err(req, 500, NULL, "out of memory");
                return false;
            }
            cdt_buf_cleanup(&b);
        }
        j->msgs[n].role = strcmp(r, "developer") == 0 ? "system" : tool ? "user" : r;
        j->msgs[n].content = text;
        n++;
    }
    j->gp.messages = j->msgs;
    j->gp.n_messages = n;
    return true;
}

/* A field that must be absent, null or (when empty_ok) an empty array/object. */
static bool present(const cJSON *v)
{
    return v && !cJSON_IsNull(v) &&
           !((cJSON_IsArray(v) || cJSON_IsObject(v)) && cJSON_GetArraySize(v) == 0);
}

/* response_format: text (nothing), json_object (any JSON object) or json_schema (a
 * grammar from the schema). */
static bool parse_response_format(struct cdt_http_req *req, const cJSON *body, struct oai *a)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format"), *type, *js, *sch;
    char why[400];
    int rc;

    if (!rf || cJSON_IsNull(rf))
        return true;
    type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type)) {
        oai_err(req, 400, "response_format", "response_format: an object with a type is required");
        return false;
    }
    if (strcmp(type->valuestring, "text") == 0)
        return true;
    if (strcmp(type->valuestring, "json_object") == 0) {
        rc = cdt__json_grammar_object(&a->grammar);
        if (rc != 0)
            oai_err(req, 500, NULL, "out of memory");
        return rc == 0;
    }
    if (strcmp(type->valuestring, "json_schema") != 0) {
        oai_err(req, 400, "response_format",
                "response_format.type: must be text, json_object or json_schema");
        return false;
    }
    js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
    sch = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!cJSON_IsObject(js) || (!cJSON_IsObject(sch) && !cJSON_IsBool(sch))) {
        oai_err(req, 400, "response_format",
                "response_format.json_schema.schema: a JSON schema object is required");
        return false;
    }
    rc = cdt__json_grammar_schema(sch, &a->grammar, why, sizeof(why));
    if (rc == CDT_ENOMEM)
        oai_err(req, 500, NULL, "out of memory");
    else if (rc != 0)
        oai_err(req, 400, "response_format", "%s", why);
    return rc == 0;
}

/* OpenAI's options beyond the shared ones (cdt__parse_gen_options), each working or
 * refused with its param: n, tools / tool_choice / functions, response_format,
 * logprobs / top_logprobs, frequency_penalty / presence_penalty, logit_bias, and
 * OpenAI's ranges for temperature and seed (-1: random). Consumes "seed" from body. */
static bool parse_oai_options(struct cdt_http_req *req, cJSON *body, struct job *j, struct oai *a)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    const cJSON *fns = cJSON_GetObjectItemCaseSensitive(body, "functions");
    const cJSON *fcall = cJSON_GetObjectItemCaseSensitive(body, "function_call");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(body, "seed");
    double n = 1, temp = -1, fp = 0, pp = 0, top = -1;
    bool logprobs = false, choice_none, choice_auto;

    if (!cdt__opt_number(req, body, "n", 1, 128, true, &n, oai_err) ||
        !cdt__opt_number(req, body, "temperature", 0, 2, false, &temp, oai_err) ||
        !cdt__opt_number(req, body, "frequency_penalty", -2, 2, false, &fp, oai_err) ||
        !cdt__opt_number(req, body, "presence_penalty", -2, 2, false, &pp, oai_err) ||
        !cdt__opt_bool(req, body, "logprobs", &logprobs, oai_err) ||
        !cdt__opt_number(req, body, "top_logprobs", 0, CDT_MAX_TOP_LOGPROBS, true, &top, oai_err))
        return false;
    if (n > 1) {
        oai_err(req, 400, "n", "n: only one choice per request is supported (n = 1)");
        return false;
    }
    choice_none = cJSON_IsString(choice) && strcmp(choice->valuestring, "none") == 0;
    choice_auto = !choice || cJSON_IsNull(choice) ||
                  (cJSON_IsString(choice) && strcmp(choice->valuestring, "auto") == 0);
    if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools)) {
        oai_err(req, 400, "tools", "tools: must be an array");
        return false;
    }
    if (present(tools) && !choice_none) {
        oai_err(req, 400, "tools",
                "tools: function calling is not supported (send tool_choice \"none\" to chat "
                "without it; tool calls and results in the history are fine)");
        return false;
    }
    if (!present(tools) && !choice_none && !choice_auto) {
        oai_err(req, 400, "tool_choice", "tool_choice: there are no tools to choose");
        return false;
    }
    if (present(fns) && !(cJSON_IsString(fcall) && strcmp(fcall->valuestring, "none") == 0)) {
        oai_err(req, 400, "functions", "functions: function calling is not supported");
        return false;
    }
    if (present(cJSON_GetObjectItemCaseSensitive(body, "logit_bias"))) {
        oai_err(req, 400, "logit_bias", "logit_bias: not supported");
        return false;
    }
    if (top >= 0 && !logprobs) {
        oai_err(req, 400, "top_logprobs", "top_logprobs: needs logprobs set to true");
        return false;
    }
    if (seed && !cJSON_IsNull(seed)) {
        /* Any 64-bit integer, as OpenAI takes; -1 (llama-server's) a random seed. */
        if (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) ||
            fabs(seed->valuedouble) > 9.2e18) {
            oai_err(req, 400, "seed", "seed: must be an integer");
            return false;
        }
        if (seed->valuedouble != -1) {
            a->has_seed = true;
            a->seed = (uint32_t)(uint64_t)(int64_t)seed->valuedouble;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(body, "seed");
    }
    if (!parse_response_format(req, body, a))
        return false;
    j->gp.grammar = a->grammar;
    j->gp.grammar_json = a->grammar != NULL;
    j->gp.frequency_penalty = (float)fp;
    j->gp.presence_penalty = (float)pp;
    if (logprobs) {
        a->lp = cJSON_CreateArray();
        if (!a->lp) {
            oai_err(req, 500, NULL, "out of memory");
            return false;
        }
        j->gp.on_logprobs = on_logprobs;
        j->gp.top_logprobs = top > 0 ? (int)top : 0;
    }
    return true;
}

void cdt__route_v1_chat(struct cdt_sidecar *s, struct cdt_http_req *req)
{
    cJSON *body = cdt__parse_body(req, oai_err), *o, *choices, *c, *msg, *so;
    struct job *j;
    struct oai *a;
    bool stream = false;
    double mct = -1;
    unsigned char rnd[12];
    int status = 0;

    if (!body)
        return;
    j = cdt__job_new_generate();
    a = calloc(1, sizeof(*a));
    if (!j || !a) {
        free(a);
        if (j)
            cdt__job_release(s, j);
        cJSON_Delete(body);
        oai_err(req, 500, NULL, "out of memory");
        return;
    }
    j->api = a;
    j->api_free = oai_free;
    j->messages_json = body; /* the messages' strings live in it */
    /* OpenAI's defaults; the shared parser keeps what the request does not set. */
    j->gp.temperature = 1.0f;
    j->gp.top_p = 1.0f;
    j->gp.repetition_penalty = 1.0f;
    if (!parse_messages(req, body, j) || !cdt__opt_bool(req, body, "stream", &stream, oai_err) ||
        !cdt__opt_number(req, body, "max_completion_tokens", 1, 1e7, true, &mct, oai_err) ||
        !parse_oai_options(req, body, j, a) || !cdt__parse_gen_options(req, body, j, oai_err)) {
        cdt__job_release(s, j);
        return;
    }
    j->gp.has_seed = a->has_seed; /* parse_oai_options took "seed" */
    j->gp.seed = a->seed;
    if (mct > 0)
        j->gp.max_tokens = (int)mct;
    else if (j->gp.max_tokens <= 0) /* no limit given: the context is the limit */
        j->gp.max_tokens = CDT_OAI_NO_CAP;
    so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    a->include_usage =
        cJSON_IsObject(so) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memset(rnd, 0, sizeof(rnd));
    snprintf(a->id, sizeof(a->id), "chatcmpl-");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(a->id + 9 + 2 * i, 3, "%02x", rnd[i]);
    a->created = (long long)time(NULL);
    if (!model_name(s, a->model, sizeof(a->model))) {
        bool loading;

        pthread_mutex_lock(&s->lock);
        loading = s->running && s->running->kind == JOB_LOAD;
        pthread_mutex_unlock(&s->lock);
        cdt__job_release(s, j);
        if (loading)
            oai_err(req, 503, NULL, "The model is loading; retry shortly");
        else
            oai_err(req, 400, "model", CDT_NO_MODEL_MSG);
        return;
    }
    j->stream = stream;
    j->format = format_chat;
    if (cdt__run_generate(s, req, j, oai_err) != 0) {
        cdt__job_release(s, j);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (j->done && j->rc != 0)
        status = j->rc == CDT_ESTATE                           ? 400
                 : j->rc == CDT_ETOOBIG || j->rc == CDT_EINVAL ? 400
                 : j->rc == CDT_ECANCELED                      ? 503
                                                               : 500;
    pthread_mutex_unlock(&s->lock);
    if (status) {
        if (j->rc == CDT_ESTATE)
            oai_err(req, status, "model", CDT_NO_MODEL_MSG);
        else if (j->rc == CDT_ETOOBIG) /* the prompt does not fit the context */
            cdt__oai_error(req, status, "messages", "context_length_exceeded", j->errmsg);
        else
            oai_err(req, status, NULL, "%s", j->errmsg[0] ? j->errmsg : "generation failed");
        cdt__job_release(s, j);
        return;
    }
    if (stream) {
        cdt__reply_job_stream(s, req, j);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)a->created);
    cJSON_AddStringToObject(o, "model", a->model);
    choices = cJSON_AddArrayToObject(o, "choices");
    c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    msg = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", j->text.data ? j->text.data : "");
    pthread_mutex_lock(&s->lock);
    if (a->lp)
        cJSON_AddItemToObject(c, "logprobs", lp_object(a, 0));
    else
        cJSON_AddNullToObject(c, "logprobs");
    pthread_mutex_unlock(&s->lock);
    cJSON_AddStringToObject(c, "finish_reason", finish_reason(j));
    cJSON_AddItemToArray(choices, c);
    add_usage(o, j);
    if (j->res.truncated)
        cJSON_AddStringToObject(o, "truncated", j->res.truncated);
    cdt__reply_json(req, 200, o);
    cdt__job_release(s, j);
}
