/* The HTTP server (see httpd.h) on libmicrohttpd in thread-per-connection mode.
 *
 * A request's state (struct cdt_http_req) lives from MHD's first call for it to the
 * completion notification. Invariants: a request is answered exactly once
 * (`replied`); bodies over the cap are never stored; the security checks run
 * before any handler sees the request. */
#include "codictate/httpd.h"
#include "codictate/log.h"
#include "codictate/text.h"
#include "codictate/util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CDT_HTTP_MAX_PATH      1024 /* longest request path kept, bytes */
#define CDT_HTTP_MAX_PUBLIC    8    /* public (token-free) paths */
#define CDT_HTTP_MAX_EXTRA_HDR 4    /* extra response headers per request */
#define CDT_HTTP_CONN_LIMIT    64   /* concurrent connections (one thread each) */
#define CDT_HTTP_IDLE_TIMEOUT  300  /* idle keep-alive connection timeout, seconds */

struct cdt_httpd {
    struct MHD_Daemon *mhd;
    int fd; /* listening socket; -1 once quiesced and closed */
    int port;
    bool listen_any;
    size_t max_body;
    char *token;
    char *public_paths[CDT_HTTP_MAX_PUBLIC + 1];
    char *cors_prefix; /* NULL: no CORS */
    cdt_http_handler handler;
    cdt_http_error_hook error_hook;
    void *user_data;
    struct cdt_log *log;
};

struct cdt_http_req {
    struct cdt_httpd *h;
    struct MHD_Connection *conn;
    const char *method;
    char path[CDT_HTTP_MAX_PATH];
    struct cdt_buf body; /* up to max_body bytes */
    bool too_big;
    bool replied;
    int status;
    double t0_ms;            /* cdt_now_ms() when the request arrived */
    const char *cors_origin; /* loopback Origin to echo (MHD's, lives with the request) */
    bool preflight;          /* answering a CORS preflight */
    const char *hdr_name[CDT_HTTP_MAX_EXTRA_HDR];
    char *hdr_value[CDT_HTTP_MAX_EXTRA_HDR];
    int n_hdr;
};

struct stream {
    cdt_http_stream_next next;
    cdt_http_stream_done done;
    void *ud;
    bool ended;
};

struct cdt_httpd_params cdt_httpd_default_params(void)
{
    struct cdt_httpd_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

/* ---- host and origin rules ---- */

bool cdt_http_is_loopback_host(const char *host)
{
    char buf[256];
    const char *end;
    size_t n;
    struct in_addr a4;

    if (!host || !*host)
        return false;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end || (end[1] != '\0' && end[1] != ':'))
            return false;
        n = (size_t)(end - host - 1);
        if (n >= sizeof(buf))
            return false;
        memcpy(buf, host + 1, n);
        buf[n] = '\0';
        return strcmp(buf, "::1") == 0;
    }
    if (strcmp(host, "::1") == 0)
        return true;
    end = strchr(host, ':');
    n = end ? (size_t)(end - host) : strlen(host);
    if (n == 0 || n >= sizeof(buf))
        return false;
    if (end) { /* the port must be digits */
        const char *p = end + 1;
        if (!*p)
            return false;
        for (; *p; p++)
            if (*p < '0' || *p > '9')
                return false;
    }
    memcpy(buf, host, n);
    buf[n] = '\0';
    if (strcasecmp(buf, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return false;
}

bool cdt_http_is_loopback_origin(const char *origin)
{
    const char *rest;

    if (!origin)
        return false;
    if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else
        return false; /* includes "null" */
    if (strchr(rest, '/'))
        return false;
    return cdt_http_is_loopback_host(rest);
}

/* Constant-time comparison of a presented token with the expected one. */
static bool token_ok(const char *expected, const char *auth)
{
    size_t el, gl;
    unsigned char diff = 0;

    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    auth += 7;
    el = strlen(expected);
    gl = strlen(auth);
    for (size_t i = 0; i < el; i++)
        diff |= (unsigned char)(expected[i] ^ (i < gl ? auth[i] : 0));
    return diff == 0 && el == gl;
}

/* ---- replies ---- */

static void queue(struct cdt_http_req *req, int status, struct MHD_Response *resp,
                  const char *content_type)
{
    if (!resp) {
        req->replied = true;
        req->status = 500;
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < req->n_hdr; i++)
        MHD_add_response_header(resp, req->hdr_name[i], req->hdr_value[i]);
    if (req->cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", req->cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Retry-After");
    }
    if (req->preflight) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
    MHD_queue_response(req->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    req->replied = true;
    req->status = status;
}

void cdt_http_reply(struct cdt_http_req *req, int status, const char *body, size_t len,
                    const char *content_type)
{
    if (req->replied)
        return;
    queue(req, status,
          MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY),
          content_type);
}

void cdt_http_reply_error(struct cdt_http_req *req, int status, const char *fmt, ...)
{
    char msg[1024];
    cJSON *o;
    char *text;
    va_list ap;

    if (req->replied)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (req->h->error_hook && req->h->error_hook(req, status, msg, req->h->user_data) &&
        req->replied)
        return;
    o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "detail", msg);
    text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        static const char oom[] = "{\"detail\":\"out of memory\"}";
        cdt_http_reply(req, 500, oom, sizeof(oom) - 1, NULL);
        return;
    }
    cdt_http_reply(req, status, text, strlen(text), NULL);
    free(text);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    ssize_t n;

    (void)pos;
    n = s->next(s->ud, buf, max);
    if (n == 0) {
        s->ended = true;
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;

    if (s->done)
        s->done(s->ud, !s->ended);
    free(s);
}

void cdt_http_reply_stream(struct cdt_http_req *req, int status, const char *content_type,
                           cdt_http_stream_next next, cdt_http_stream_done done, void *ud)
{
    struct stream *s;
    struct MHD_Response *resp;

    if (req->replied)
        return;
    s = calloc(1, sizeof(*s));
    if (!s) {
        if (done)
            done(ud, true);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    s->next = next;
    s->done = done;
    s->ud = ud;
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        cdt_http_reply_error(req, 500, "out of memory");
        return;
    }
    queue(req, status, resp, content_type);
}

void cdt_http_add_header(struct cdt_http_req *req, const char *name, const char *value)
{
    if (req->n_hdr >= CDT_HTTP_MAX_EXTRA_HDR)
        return;
    req->hdr_value[req->n_hdr] = strdup(value);
    if (!req->hdr_value[req->n_hdr])
        return;
    req->hdr_name[req->n_hdr++] = name;
}

/* ---- accessors ---- */

const char *cdt_http_req_method(const struct cdt_http_req *req)
{
    return req->method;
}

const char *cdt_http_req_path(const struct cdt_http_req *req)
{
    return req->path;
}

const char *cdt_http_req_body(const struct cdt_http_req *req)
{
    return req->body.data ? req->body.data : "";
}

size_t cdt_http_req_body_len(const struct cdt_http_req *req)
{
    return req->body.len;
}

const char *cdt_http_req_header(const struct cdt_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int cdt_http_req_client_gone(const struct cdt_http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char c;
    ssize_t n;

    if (!ci)
        return 1;
    n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return 1;
    return 0;
}

/* ---- request flow ---- */

static bool is_public(const struct cdt_httpd *h, const char *path)
{
    for (int i = 0; h->public_paths[i]; i++)
        if (strcmp(h->public_paths[i], path) == 0)
            return true;
    return false;
}

/* The security rules; answers and returns false when the request is refused. */
static bool allowed(struct cdt_http_req *req)
{
    struct cdt_httpd *h = req->h;
    const char *host = cdt_http_req_header(req, "Host");
    const char *origin = cdt_http_req_header(req, "Origin");

    if (!h->listen_any && !cdt_http_is_loopback_host(host)) {
        cdt_http_reply_error(req, 403, "Forbidden: Host must be a loopback name");
        return false;
    }
    if (origin && !cdt_http_is_loopback_origin(origin)) {
        cdt_http_reply_error(req, 403, "Forbidden: cross-origin requests are refused");
        return false;
    }
    if (req->cors_origin && strcmp(req->method, "OPTIONS") == 0) {
        /* A preflight: the browser sends no token with it, only with the request. */
        req->preflight = true;
        cdt_http_reply(req, 204, "", 0, "text/plain");
        return false;
    }
    if (h->token && !is_public(h, req->path) &&
        !token_ok(h->token, cdt_http_req_header(req, "Authorization"))) {
        cdt_http_add_header(req, "WWW-Authenticate", "Bearer");
        cdt_http_reply_error(req, 401, "Unauthorized: missing or wrong bearer token");
        return false;
    }
    return true;
}

static bool parse_size(const char *s, unsigned long long *out)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct cdt_httpd *h = cls;
    struct cdt_http_req *req = *con_cls;

    (void)version;
    if (!req) {
        unsigned long long clen;
        const char *cl;

        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->h = h;
        req->conn = conn;
        req->method = method;
        req->t0_ms = cdt_now_ms();
        snprintf(req->path, sizeof(req->path), "%s", url ? url : "/");
        req->path[strcspn(req->path, "?#")] = '\0';
        if (h->cors_prefix && strncmp(req->path, h->cors_prefix, strlen(h->cors_prefix)) == 0) {
            const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");

            if (cdt_http_is_loopback_origin(origin))
                req->cors_origin = origin;
        }
        *con_cls = req;
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && parse_size(cl, &clen) && clen > h->max_body) {
            cdt_http_reply_error(req, 413, "Request body too large: over %zu bytes", h->max_body);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (req->replied || req->too_big)
            return MHD_YES;
        if (req->body.len + n > h->max_body) {
            req->too_big = true;
            cdt_buf_cleanup(&req->body);
            return MHD_YES;
        }
        return cdt_buf_append(&req->body, upload_data, n) == 0 ? MHD_YES : MHD_NO;
    }
    if (req->replied)
        return MHD_YES;
    if (req->too_big)
        cdt_http_reply_error(req, 413, "Request body too large: over %zu bytes", h->max_body);
    else if (allowed(req))
        h->handler(req, h->user_data);
    if (!req->replied)
        cdt_http_reply_error(req, 500, "Internal error: no response");
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct cdt_httpd *h = cls;
    struct cdt_http_req *req = *con_cls;

    (void)conn;
    if (!req)
        return;
    if (cdt_log_enabled(h->log, CDT_LOG_INFO)) {
        /* The path is the client's (URL-decoded): no escape sequences into the log. */
        char *method = cdt_text_escape_controls(req->method, false);
        char *path = cdt_text_escape_controls(req->path, false);

        CDT_LOG_I(h->log, "%s %s %d %.1f ms%s", method ? method : "?", path ? path : "?",
                  req->status, cdt_now_ms() - req->t0_ms,
                  toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)");
        free(method);
        free(path);
    }
    for (int i = 0; i < req->n_hdr; i++)
        free(req->hdr_value[i]);
    cdt_buf_cleanup(&req->body);
    free(req);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct cdt_httpd *h = cls;
    char buf[512];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    CDT_LOG_D(h->log, "http: %s", buf);
}

/* ---- binding ---- */

static int bind_range(struct cdt_httpd *h, const char *host, int pmin, int pmax, char *errmsg,
                      size_t errcap, bool *v6)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int family;
    char lit[128];
    struct in_addr a4;
    struct in6_addr a6;

    snprintf(lit, sizeof(lit), "%s", host);
    if (lit[0] == '[') { /* "[::1]" */
        memmove(lit, lit + 1, strlen(lit));
        lit[strcspn(lit, "]")] = '\0';
    }
    if (strcasecmp(lit, "localhost") == 0)
        snprintf(lit, sizeof(lit), "127.0.0.1");
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, lit, &a4) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        family = AF_INET;
        sin->sin_family = AF_INET;
        sin->sin_addr = a4;
        sl = sizeof(*sin);
        if (!h->listen_any && (ntohl(a4.s_addr) >> 24) != 127)
            goto not_loopback;
    } else if (inet_pton(AF_INET6, lit, &a6) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        family = AF_INET6;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = a6;
        sl = sizeof(*sin6);
        if (!h->listen_any && !IN6_IS_ADDR_LOOPBACK(&a6))
            goto not_loopback;
    } else {
        snprintf(errmsg, errcap, "cannot listen on '%s': not an IP address or localhost", host);
        return CDT_EINVAL;
    }
    *v6 = family == AF_INET6;

    for (int port = pmin; port <= pmax; port++) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;

        if (fd < 0) {
            snprintf(errmsg, errcap, "socket: %s", strerror(errno));
            return CDT_EIO;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        if (bind(fd, (struct sockaddr *)&ss, sl) == 0 && listen(fd, 128) == 0) {
            if (port == 0) {
                struct sockaddr_storage got;
                socklen_t gl = sizeof(got);
                getsockname(fd, (struct sockaddr *)&got, &gl);
                port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
            }
            h->fd = fd;
            h->port = port;
            return 0;
        }
        close(fd);
        if (errno != EADDRINUSE && errno != EACCES) {
            snprintf(errmsg, errcap, "cannot listen on %s:%d: %s", host, port, strerror(errno));
            return CDT_EIO;
        }
    }
    snprintf(errmsg, errcap, "no free port in %d-%d", pmin, pmax);
    return CDT_EEXISTS;

not_loopback:
    snprintf(errmsg, errcap,
             "refusing to listen on non-loopback address %s (use --listen-any to allow)", host);
    return CDT_EINVAL;
}

int cdt_httpd_new(const struct cdt_httpd_params *p, struct cdt_httpd **out, char *errmsg,
                  size_t errcap)
{
    struct cdt_httpd *h;
    bool v6 = false;
    int rc, n = 0;
    unsigned flags;

    *out = NULL;
    if (errcap)
        errmsg[0] = '\0';
    if (!p || !p->handler || p->port_min < 0 || p->port_max > 65535 || p->port_min > p->port_max) {
        snprintf(errmsg, errcap, "invalid server parameters (port range %d-%d)",
                 p ? p->port_min : 0, p ? p->port_max : 0);
        return CDT_EINVAL;
    }
    h = calloc(1, sizeof(*h));
    if (!h)
        return CDT_ENOMEM;
    h->fd = -1;
    h->listen_any = p->listen_any;
    h->max_body = p->max_body ? p->max_body : CDT_HTTP_MAX_BODY;
    h->handler = p->handler;
    h->error_hook = p->error_hook;
    h->user_data = p->user_data;
    h->log = p->log;
    if (p->token && *p->token && !(h->token = strdup(p->token)))
        goto oom;
    if (p->cors_prefix && *p->cors_prefix && !(h->cors_prefix = strdup(p->cors_prefix)))
        goto oom;
    for (; p->public_paths && p->public_paths[n] && n < CDT_HTTP_MAX_PUBLIC; n++)
        if (!(h->public_paths[n] = strdup(p->public_paths[n])))
            goto oom;

    rc = bind_range(h, p->host ? p->host : "127.0.0.1", p->port_min, p->port_max, errmsg, errcap,
                    &v6);
    if (rc != 0) {
        cdt_httpd_free(h);
        return rc;
    }
    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)CDT_HTTP_CONN_LIMIT,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CDT_HTTP_IDLE_TIMEOUT,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    if (!h->mhd) {
        snprintf(errmsg, errcap, "cannot start the HTTP server on port %d", h->port);
        cdt_httpd_free(h);
        return CDT_EIO;
    }
    *out = h;
    return 0;

oom:
    cdt_httpd_free(h);
    return CDT_ENOMEM;
}

int cdt_httpd_port(const struct cdt_httpd *h)
{
    return h->port;
}

void cdt_httpd_quiesce(struct cdt_httpd *h)
{
    if (!h || !h->mhd || h->fd < 0)
        return;
    if (MHD_quiesce_daemon(h->mhd) >= 0) {
        close(h->fd);
        h->fd = -1;
    }
}

void cdt_httpd_free(struct cdt_httpd *h)
{
    if (!h)
        return;
    if (h->mhd)
        MHD_stop_daemon(h->mhd); /* closes the listen socket unless quiesced */
    else if (h->fd >= 0)
        close(h->fd);
    free(h->token);
    free(h->cors_prefix);
    for (int i = 0; h->public_paths[i]; i++)
        free(h->public_paths[i]);
    free(h);
}
