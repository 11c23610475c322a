/* The OpenAI-compatible API on the sidecar: GET /v1/models and
 * POST /v1/chat/completions (streaming and not), with OpenAI's response, chunk,
 * usage and error objects, so OpenAI clients and other dictation apps can use the
 * local model. Generation goes through the same worker, prefix cache and
 * speculative decoding as /generate. Text is returned as the model produced it
 * (no seed-style cleaning), as llama-server does. */
#include "sidecar_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct oai {
    char id[48];       /* "chatcmpl-<hex>" */
    char model[256];   /* the model name answered */
    long long created; /* unix seconds */
    bool include_usage;
    bool sent_role;
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
    free(p);
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
        cJSON_AddNullToObject(c, "finish_reason");
        cJSON_AddItemToArray(choices, c);
        free(piece);
        return concat_free(out, cdt__sse_event(o));
    }
    if (j->rc != 0) {
        /* After the headers are sent an error can only travel in the stream. */
        o = cJSON_CreateObject();
        d = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(d, "message", j->errmsg[0] ? j->errmsg : "generation failed");
        cJSON_AddStringToObject(d, "type", "server_error");
        out = concat_free(out, cdt__sse_event(o));
    } else {
        o = chunk(a);
        choices = cJSON_AddArrayToObject(o, "choices");
        c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        cJSON_AddObjectToObject(c, "delta");
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

/* Reads messages into j; answers and returns false when they are wrong. */
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
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");

        if (!cJSON_IsString(role) ||
            (strcmp(role->valuestring, "system") != 0 && strcmp(role->valuestring, "user") != 0 &&
             strcmp(role->valuestring, "assistant") != 0 &&
             strcmp(role->valuestring, "developer") != 0)) {
            oai_err(req, 400, "messages",
                    "messages[%d].role: must be system, developer, user or assistant", n);
            return false;
        }
        if (cJSON_IsArray(content)) {
            /* Content parts: keep the text parts, joined. */
            cJSON *part, *joined;
            char *buf = strdup("");

            cJSON_ArrayForEach(part, content)
            {
                cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
                    !cJSON_IsString(text)) {
                    free(buf);
                    oai_err(req, 400, "messages", "messages[%d].content: only text parts", n);
                    return false;
                }
                buf = concat_free(buf, strdup(text->valuestring));
            }
            joined = cJSON_CreateString(buf ? buf : "");
            free(buf);
            cJSON_ReplaceItemInObjectCaseSensitive(m, "content", joined);
            content = joined;
        }
        if (!cJSON_IsString(content)) {
            oai_err(req, 400, "messages", "messages[%d].content: must be a string", n);
            return false;
        }
        j->msgs[n].role =
            strcmp(role->valuestring, "developer") == 0 ? "system" : role->valuestring;
        j->msgs[n].content = content->valuestring;
        n++;
    }
    j->gp.messages = j->msgs;
    j->gp.n_messages = n;
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
    if (!parse_messages(req, body, j) || !cdt__opt_bool(req, body, "stream", &stream, oai_err) ||
        !cdt__opt_number(req, body, "max_completion_tokens", 1, 1e7, true, &mct, oai_err) ||
        !cdt__parse_gen_options(req, body, j, oai_err)) {
        cdt__job_release(s, j);
        return;
    }
    if (mct > 0)
        j->gp.max_tokens = (int)mct;
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
            oai_err(req, 400, "model", "No model loaded. Call /load first.");
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
            oai_err(req, status, "model", "No model loaded. Call /load first.");
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
    cJSON_AddStringToObject(c, "finish_reason", finish_reason(j));
    cJSON_AddItemToArray(choices, c);
    add_usage(o, j);
    if (j->res.truncated)
        cJSON_AddStringToObject(o, "truncated", j->res.truncated);
    cdt__reply_json(req, 200, o);
    cdt__job_release(s, j);
}
