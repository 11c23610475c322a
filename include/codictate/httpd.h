/* A small HTTP/1.1 JSON server on libmicrohttpd, shared by the sidecar and the app.
 *
 * It binds the first free port of a range itself (bind, not probe: no race), reads
 * request bodies up to a cap, and enforces the security rules before any handler
 * runs: the Host header must be a loopback name (unless listening on all
 * interfaces), an Origin header must be a loopback origin, and, when a token is
 * set, every path but the public ones needs "Authorization: Bearer <token>".
 * Before these, a loopback client must be a process of the server's own user
 * (cdt_peer_uid, peer.h): other users of the machine get 403.
 * Under an optional CORS prefix (the sidecar's /v1/), a loopback Origin is echoed
 * in Access-Control-Allow-Origin on every response, and its preflight (OPTIONS)
 * is answered 204 before the token check (a preflight carries no token).
 * Error bodies are {"detail": "..."} unless an error hook answers them in another
 * shape. One line per request is logged at INFO
 * (method, path, status, ms); bodies are never logged.
 *
 * Hostile clients: a request's headers and body must arrive within
 * request_timeout_ms of the connection opening (or of the previous response on a
 * keep-alive connection, so an idle connection is closed then too); a complete
 * request being answered (a long generation, a stream, SSE) has no deadline. Near
 * the connection limit the oldest connection still waiting for a request is closed
 * to make room, so clients that connect and send nothing (or a byte a second)
 * cannot lock others out. A request whose line came but not the rest by its
 * deadline gets 408 and a close. Requests HTTP would let two parties read
 * differently are refused with 400 and a closed connection: two Content-Length,
 * Transfer-Encoding, Host, Origin or Authorization headers, a Content-Length that
 * is not all digits, both Content-Length and Transfer-Encoding, a Transfer-Encoding
 * not ending in chunked or in an HTTP/1.0 request, a malformed chunk or a chunk
 * size over 2^64-1. Bodies come with a Content-Length or chunked
 * ("Transfer-Encoding: chunked", what Node's http sends); another coding before
 * chunked (gzip, chunked) is 501. A chunked body has the same cap (413 and a close
 * as soon as it passes it, since no size was announced) and deadline (a second
 * more per MiB received); a chunk size under 2^64 but past
 * the cap is taken by libmicrohttpd as announced, so the cap or the deadline ends
 * it (libmicrohttpd 0.9.75 shows applications no chunk sizes). A first line that is
 * not HTTP at all (no space in it, e.g. a TLS hello, or no method) is closed without
 * an answer: libmicrohttpd shuts the socket down then and calls nothing of ours
 * before (no URI callback yet, no log line), so there is no point at which a 400
 * could be written; a request line with a bad or unsupported version gets its 400
 * or 505.
 *
 * Threading: one thread per connection; the handler runs on it and may block
 * (e.g. waiting for a generation). Handlers must be thread-safe. */
#ifndef CODICTATE_HTTPD_H
#define CODICTATE_HTTPD_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_HTTP_MAX_BODY           (1024 * 1024) /* default request body cap, bytes */
#define CDT_HTTP_REQUEST_TIMEOUT_MS 10000         /* default request deadline, ms */

struct cdt_log;
struct cdt_httpd;
struct cdt_http_req;

/* Called once per complete request on the connection's thread. It must answer
 * exactly once with cdt_http_reply / _json / _error / _stream. */
typedef void (*cdt_http_handler)(struct cdt_http_req *req, void *user_data);

/* Optional: answers an error itself (e.g. in another JSON shape for some paths)
 * with cdt_http_reply and returns true, or returns false to let the server answer
 * {"detail": msg}. Called for every error: the server's own (403 Host/Origin, 401,
 * 413, 500) and cdt_http_reply_error's. Runs on the connection's thread. */
typedef bool (*cdt_http_error_hook)(struct cdt_http_req *req, int status, const char *msg,
                                    void *user_data);

struct cdt_httpd_params {
    const char *host;                /* address to bind; NULL: "127.0.0.1" */
    int port_min, port_max;          /* first free port of [min, max]; 0,0: an OS-chosen port */
    bool listen_any;                 /* host may be non-loopback; Host header not checked */
    size_t max_body;                 /* request body cap, bytes; 0: CDT_HTTP_MAX_BODY */
    const char *token;               /* required bearer token; NULL/"": none. Copied */
    const char *const *public_paths; /* NULL-terminated paths needing no token; may be NULL */
    const char *cors_prefix;         /* path prefix answering CORS for loopback origins
                                        (e.g. "/v1/"); NULL: none. Copied */
    int request_timeout_ms;          /* a request (headers and body) or an idle keep-alive
                                        connection's next one must arrive within this;
                                        0: CDT_HTTP_REQUEST_TIMEOUT_MS */
    cdt_http_handler handler;
    cdt_http_error_hook error_hook; /* NULL: every error is {"detail"} */
    void *user_data;                /* for handler and error_hook */
    struct cdt_log *log;            /* borrowed; may be NULL */
};

struct cdt_httpd_params cdt_httpd_default_params(void);

/* Binds and starts serving. Returns 0 and *out, CDT_EINVAL (bad params, e.g. a
 * non-loopback host without listen_any), CDT_EEXISTS (no free port in the range:
 * errmsg says "no free port in A-B"), CDT_EIO. errmsg gets the reason. Free with
 * cdt_httpd_free. */
CDT_NODISCARD int cdt_httpd_new(const struct cdt_httpd_params *p, struct cdt_httpd **out,
                                char *errmsg, size_t errcap);

/* The bound port. */
int cdt_httpd_port(const struct cdt_httpd *h);

/* Stops accepting new connections (those that have not yet sent a whole request
 * line are closed); running requests go on. Idempotent. */
void cdt_httpd_quiesce(struct cdt_httpd *h);

/* Stops the server (waits for running handlers) and frees it. NULL is a no-op. */
void cdt_httpd_free(struct cdt_httpd *h);

/* Request accessors; all strings are borrowed for the handler call. */
const char *cdt_http_req_method(const struct cdt_http_req *req);
const char *cdt_http_req_path(const struct cdt_http_req *req); /* without the query */
const char *cdt_http_req_body(const struct cdt_http_req *req); /* NUL-terminated */
size_t cdt_http_req_body_len(const struct cdt_http_req *req);
const char *cdt_http_req_header(const struct cdt_http_req *req, const char *name);

/* Nonzero when the client has gone: its connection was reset, or it closed its
 * socket. End of input is not a disconnect: a client that sent its request and
 * then shut down its sending side (shutdown(SHUT_WR), `nc -N`) still waits for the
 * answer. TCP shows both as the same FIN; for a loopback client the kernel tells
 * them apart (a closed socket has no owner left); for another client a FIN counts
 * as gone. Cheap enough to poll between tokens. */
int cdt_http_req_client_gone(const struct cdt_http_req *req);

/* Answers with `body` (copied) and a content type (NULL: application/json). */
void cdt_http_reply(struct cdt_http_req *req, int status, const char *body, size_t len,
                    const char *content_type);

/* Answers {"detail": <printf-formatted message>}, or what the error hook answers. */
void cdt_http_reply_error(struct cdt_http_req *req, int status, const char *fmt, ...)
    CDT_PRINTF(3, 4);

/* Adds a header to the reply this handler will send (at most 4; name must be a
 * static string, value is copied). */
void cdt_http_add_header(struct cdt_http_req *req, const char *name, const char *value);

/* Answers with a streamed body: `next` is called on the connection thread until
 * it returns 0 (end) or < 0 (abort); it writes up to `cap` bytes into buf and
 * returns how many (it may block waiting for data). `done` (may be NULL) is called
 * once when the response is finished or the client went away (gone = true). */
typedef ssize_t (*cdt_http_stream_next)(void *ud, char *buf, size_t cap);
typedef void (*cdt_http_stream_done)(void *ud, bool gone);
void cdt_http_reply_stream(struct cdt_http_req *req, int status, const char *content_type,
                           cdt_http_stream_next next, cdt_http_stream_done done, void *ud);

/* True for 127.0.0.1 (any 127/8), localhost, ::1 and [::1], with or without a
 * ":port". Exposed for tests. */
bool cdt_http_is_loopback_host(const char *host);

/* True for http(s)://<loopback host>[:port] origins. Exposed for tests. */
bool cdt_http_is_loopback_origin(const char *origin);

#ifdef __cplusplus
}
#endif
#endif
