/* The sidecar client on libcurl (see client.h). */
#include "codictate/client.h"

#include "codictate/peer.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t cdt_curl_sink_write(char *p, size_t sz, size_t n, void *ud)
{
    struct cdt_curl_sink *s = ud;
    size_t add = sz * n, max = s->max ? s->max : CDT_CLIENT_MAX_RESPONSE;

    if (s->body.len + add > max) {
        s->too_big = true;
        return 0;
    }
    return cdt_buf_append(&s->body, p, add) == 0 ? add : 0; /* 0: curl aborts */
}

/* The sink, and who watches it fill. */
struct observed {
    struct cdt_curl_sink sink;
    cdt_client_data_fn on_data;
    void *user_data;
    long foreign_uid; /* >= 0: the server's socket belongs to this other user */
};

/* CURLOPT_PREREQFUNCTION: connected, nothing sent yet. A server on 127.0.0.1 that
 * another user of the machine runs (one that took the app's port, say) gets no
 * request of ours: a transcript or a token would be theirs to read. */
static int same_user_server(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    struct observed *o = ud;
    uid_t uid;

    (void)ip, (void)local_ip, (void)local_port;
    if (cdt_peer_listener_uid(port, &uid) == 1 && uid != geteuid()) {
        o->foreign_uid = (long)uid;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static size_t observed_write(char *p, size_t sz, size_t n, void *ud)
{
    struct observed *o = ud;
    size_t got = cdt_curl_sink_write(p, sz, n, &o->sink);

    if (got > 0 && o->on_data)
        o->on_data(p, got, o->user_data);
    return got;
}

int cdt_curl_perform(void *easy, cdt_client_stop_fn stop, void *user_data)
{
    CURLM *m;
    CURLcode cc = CURLE_OK;
    bool done = false;

    if (!stop)
        return curl_easy_perform(easy);
    /* The multi interface, so that the wait for the server is ours to cut short:
     * curl_easy_perform asks a progress callback only about once a second when
     * nothing arrives (a model still thinking). */
    if (!(m = curl_multi_init()))
        return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(m, easy) != CURLM_OK) {
        curl_multi_cleanup(m);
        return CURLE_FAILED_INIT;
    }
    while (!done) {
        CURLMsg *msg;
        int running = 0, left;

        if (stop(user_data)) {
            cc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            cc = CURLE_SEND_ERROR;
            break;
        }
        while ((msg = curl_multi_info_read(m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
                cc = msg->data.result;
                done = true;
            }
        if (!done && running == 0) {
            cc = CURLE_RECV_ERROR; /* ended without saying how: not expected */
            break;
        }
        if (!done && curl_multi_poll(m, NULL, 0, CDT_CLIENT_POLL_MS, NULL) != CURLM_OK) {
            cc = CURLE_RECV_ERROR;
            break;
        }
    }
    /* Removed mid-transfer, the connection is closed (an HTTP/1.1 answer cannot be
     * left half read): the server sees its client gone. */
    curl_multi_remove_handle(m, easy);
    curl_multi_cleanup(m);
    return cc;
}

int cdt_client_request(int port, const char *token, const char *method, const char *path,
                       const char *body, long timeout_ms, struct cdt_client_response *out,
                       char *errmsg, size_t errcap)
{
    return cdt_client_request_observed(port, token, method, path, body, timeout_ms, NULL, NULL,
                                       NULL, NULL, out, errmsg, errcap);
}

int cdt_client_request_observed(int port, const char *token, const char *method, const char *path,
                                const char *body, long timeout_ms, cdt_client_data_fn on_data,
                                void *user_data, cdt_client_stop_fn stop, void *stop_data,
                                struct cdt_client_response *out, char *errmsg, size_t errcap)
{
    struct observed ob = {.on_data = on_data, .user_data = user_data, .foreign_uid = -1};
    struct cdt_curl_sink *sp = &ob.sink;
    struct curl_slist *h = NULL;
    char url[256], auth[512];
    CURL *c;
    CURLcode cc;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (errcap)
        errmsg[0] = '\0';
    c = curl_easy_init();
    if (!c)
        return CDT_ENOMEM;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, observed_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ob);
    curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, same_user_server);
    curl_easy_setopt(c, CURLOPT_PREREQDATA, &ob);
    if (timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        h = curl_slist_append(h, "Content-Type: application/json");
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    if (token && *token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    cc = cdt_curl_perform(c, stop, stop_data);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        out->len = sp->body.len;
        out->body = sp->body.data ? cdt_buf_take(&sp->body) : strdup("");
        if (!out->body)
            rc = CDT_ENOMEM;
    } else if (ob.foreign_uid >= 0) {
        snprintf(errmsg, errcap,
                 "127.0.0.1:%d is served by another user (uid %ld), not by you: nothing sent", port,
                 ob.foreign_uid);
        rc = CDT_ENET;
    } else if (cc == CURLE_ABORTED_BY_CALLBACK && stop) {
        snprintf(errmsg, errcap, "cancelled");
        rc = CDT_ECANCELED;
    } else if (sp->too_big) {
        snprintf(errmsg, errcap, "response over %d bytes", CDT_CLIENT_MAX_RESPONSE);
        rc = CDT_ETOOBIG;
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(errmsg, errcap, "no answer within %ld ms", timeout_ms);
        rc = CDT_ETIMEOUT;
    } else {
        snprintf(errmsg, errcap, "%s", curl_easy_strerror(cc));
        rc = CDT_ENET;
    }
    cdt_buf_cleanup(&sp->body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* One complete line of a text event stream. */
static void scan_line(struct cdt_client_text_scan *sc, const char *line, size_t len)
{
    const cJSON *x;
    cJSON *o;

    if (len < 6 || strncmp(line, "data: ", 6) != 0)
        return; /* blank separators, comments */
    o = cJSON_ParseWithLength(line + 6, len - 6);
    x = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (cJSON_IsObject(o) && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "done")) &&
        cJSON_IsString(x) && x->valuestring[0])
        sc->on_text(x->valuestring, strlen(x->valuestring), sc->user_data);
    cJSON_Delete(o);
}

void cdt_client_scan_text_events(const char *data, size_t len, void *scan)
{
    struct cdt_client_text_scan *sc = scan;

    while (len > 0 && !sc->failed) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;

        if (cdt_buf_append(&sc->line, data, n) != 0) {
            sc->failed = true;
            break;
        }
        if (!nl)
            break;
        scan_line(sc, sc->line.data, sc->line.len);
        cdt_buf_truncate(&sc->line, 0);
        data += n + 1;
        len -= n + 1;
    }
}
