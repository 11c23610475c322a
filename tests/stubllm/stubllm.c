/* A stub OpenAI-compatible endpoint for the refine tests, on libmicrohttpd,
 * loopback only.
 *
 *   stubllm [--log FILE]
 *
 *   GET  /v1/models            {"object":"list","data":[{"id":"echo"},…]}
 *   POST /v1/chat/completions  answers according to the requested "model":
 *     echo      the user message without its <transcript> tags (a perfect cleanup)
 *     think     "<think>…</think>" + echo
 *     preamble  "Here is the cleaned text:\n\n" + echo
 *     quoted    echo in double quotes
 *     empty     ""
 *     refusal   "I'm sorry, but I can't help with that request."
 *     answer    "The capital of France is Paris."
 *     long      echo three times
 *     slow      echo after 3 s
 *     length    echo with finish_reason "length"
 *     error500  HTTP 500 with an OpenAI error object
 *     badjson   HTTP 200 with a body that is not JSON
 *     drop      closes the connection without an answer
 *     auth      echo when "Authorization: Bearer sk-test" was sent, else 401
 *   Anything else: 404 model_not_found.
 *
 * The first stdout line is "STUBLLM_PORT=<port>". --log FILE gets, for each chat
 * request, the request body on one line, then "auth=<Authorization header or ->".
 * SIGTERM/SIGINT stop it. */
#include "../mhd_test.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (1024 * 1024) /* request body cap, bytes */

struct stub {
    FILE *log;
    pthread_mutex_t lock;
};

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg,
                                  const char *type)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    char *s;
    enum MHD_Result ret;

    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ret = send_json(c, status, s ? s : "{}");
    free(s);
    return ret;
}

/* The user message's text without <transcript> tags, trimmed. Caller frees. */
static char *echo_of(const cJSON *body)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages"), *m;
    const char *user = "";
    char *s, *p;
    size_t a, b;

    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");

        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0 &&
            cJSON_IsString(content))
            user = content->valuestring;
    }
    s = strdup(user);
    if (!s)
        return NULL;
    while ((p = strstr(s, "<transcript>")))
        memmove(p, p + 12, strlen(p + 12) + 1);
    while ((p = strstr(s, "</transcript>")))
        memmove(p, p + 13, strlen(p + 13) + 1);
    for (a = 0; s[a] && strchr(" \t\r\n", s[a]); a++)
        ;
    for (b = strlen(s); b > a && strchr(" \t\r\n", s[b - 1]); b--)
        ;
    memmove(s, s + a, b - a);
    s[b - a] = '\0';
    return s;
}

static enum MHD_Result completion(struct MHD_Connection *c, const char *model, const char *text,
                                  const char *finish)
{
    cJSON *o = cJSON_CreateObject(), *choices, *ch, *msg, *u;
    char *s;
    enum MHD_Result ret;

    cJSON_AddStringToObject(o, "id", "chatcmpl-stub");
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "model", model);
    choices = cJSON_AddArrayToObject(o, "choices");
    ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", text);
    cJSON_AddStringToObject(ch, "finish_reason", finish);
    u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", 42);
    cJSON_AddNumberToObject(u, "completion_tokens", 7);
    cJSON_AddNumberToObject(u, "total_tokens", 49);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    ret = send_json(c, 200, s ? s : "{}");
    free(s);
    return ret;
}

static enum MHD_Result chat(struct stub *st, struct MHD_Connection *c, const struct test_req *rq)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    cJSON *body = cJSON_ParseWithLength(rq->body ? rq->body : "", rq->len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");
    const char *model = cJSON_IsString(m) ? m->valuestring : "";
    char *echo = echo_of(body), *text = NULL;
    enum MHD_Result ret;

    if (st->log) {
        pthread_mutex_lock(&st->lock);
        fprintf(st->log, "%.*s\nauth=%s\n", (int)rq->len, rq->body ? rq->body : "",
                auth ? auth : "-");
        fflush(st->log);
        pthread_mutex_unlock(&st->lock);
    }
    if (!body || !echo) {
        ret = send_error(c, 400, "malformed JSON", "invalid_request_error");
    } else if (strcmp(model, "echo") == 0) {
        ret = completion(c, model, echo, "stop");
    } else if (strcmp(model, "think") == 0) {
        if (asprintf(&text, "<think>\nThe user wants a cleanup.\n</think>\n\n%s", echo) < 0)
            text = NULL;
        ret = completion(c, model, text ? text : "", "stop");
    } else if (strcmp(model, "preamble") == 0) {
        if (asprintf(&text, "Here is the cleaned text:\n\n%s", echo) < 0)
            text = NULL;
        ret = completion(c, model, text ? text : "", "stop");
    } else if (strcmp(model, "quoted") == 0) {
        if (asprintf(&text, "\"%s\"", echo) < 0)
            text = NULL;
        ret = completion(c, model, text ? text : "", "stop");
    } else if (strcmp(model, "empty") == 0) {
        ret = completion(c, model, "", "stop");
    } else if (strcmp(model, "refusal") == 0) {
        ret = completion(c, model, "I'm sorry, but I can't help with that request.", "stop");
    } else if (strcmp(model, "answer") == 0) {
        ret = completion(c, model, "The capital of France is Paris.", "stop");
    } else if (strcmp(model, "long") == 0) {
        if (asprintf(&text, "%s %s %s", echo, echo, echo) < 0)
            text = NULL;
        ret = completion(c, model, text ? text : "", "stop");
    } else if (strcmp(model, "slow") == 0) {
        sleep(3);
        ret = completion(c, model, echo, "stop");
    } else if (strcmp(model, "length") == 0) {
        ret = completion(c, model, echo, "length");
    } else if (strcmp(model, "error500") == 0) {
        ret = send_error(c, 500, "stub failure", "server_error");
    } else if (strcmp(model, "badjson") == 0) {
        ret = send_json(c, 200, "this is not json");
    } else if (strcmp(model, "drop") == 0) {
        ret = MHD_NO; /* libmicrohttpd closes the connection */
    } else if (strcmp(model, "auth") == 0) {
        if (auth && strcmp(auth, "Bearer sk-test") == 0)
            ret = completion(c, model, echo, "stop");
        else
            ret = send_error(c, 401, "Incorrect API key provided", "invalid_request_error");
    } else {
        ret = send_error(c, 404, "The model does not exist", "model_not_found");
    }
    free(text);
    free(echo);
    cJSON_Delete(body);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct stub *st = cls;
    struct test_req *rq = NULL;
    enum MHD_Result ret;

    (void)version;
    if (test_req_collect(con_cls, upload, upload_size, MAX_BODY, &rq, &ret))
        return ret;
    if (rq->too_big)
        return send_error(c, 413, "body too large", "invalid_request_error");
    if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/models") == 0)
        return send_json(c, 200,
                         "{\"object\":\"list\",\"data\":[{\"id\":\"echo\",\"object\":\"model\"},"
                         "{\"id\":\"empty\",\"object\":\"model\"}]}");
    if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/chat/completions") == 0)
        return chat(st, c, rq);
    return send_error(c, 404, "no such route", "invalid_request_error");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"log", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    struct stub st = {0};
    struct MHD_Daemon *daemon;
    sigset_t set;
    int opt, sig, port;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'l' && (st.log = fopen(optarg, "a")))
            continue;
        fprintf(stderr, "usage: stubllm [--log FILE]\n");
        return 2;
    }
    pthread_mutex_init(&st.lock, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    daemon = test_daemon_start(handle, &st, &port);
    if (!daemon) {
        fprintf(stderr, "stubllm: cannot start the server\n");
        return 1;
    }
    printf("STUBLLM_PORT=%d\n", port);
    fflush(stdout);
    sigwait(&set, &sig);
    MHD_stop_daemon(daemon);
    if (st.log)
        fclose(st.log);
    pthread_mutex_destroy(&st.lock);
    return 0;
}
