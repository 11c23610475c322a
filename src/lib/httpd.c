/* The HTTP server (see httpd.h) on libmicrohttpd in thread-per-connection mode.
 *
 * A request's state (struct cdt_http_req) lives from MHD's first call for it to the
 * completion notification. Invariants: a request is answered exactly once
 * (`replied`); bodies over the cap are never stored; the security checks run
 * before any handler sees the request.
 *
 * A connection's state (struct conn) lives from MHD's STARTED to its CLOSED
 * notification, in a list under `lock`, oldest first. A connection is `busy` from
 * its request's last byte to the end of the answer; otherwise it waits for a
 * request, and the watchdog thread shuts its socket down at `deadline`. The socket
 * is only shut down (never closed) under `lock`, and MHD closes it only after the
 * CLOSED notification has taken it out of the list: a descriptor the watchdog
 * touches is never another connection's.
 *
 * Before MHD, the acceptor thread owns the listening socket. A new connection waits
 * in its pending list (no thread of its own) until its first bytes hold a whole
 * request line; then it goes to MHD (MHD_add_connection), its deadline still counted
 * from its accept (`transit`). MHD closes a connection whose first line is not HTTP
 * (a TLS hello) without a word and answers a malformed line with an HTML page, so
 * those get their {"detail"} answer here; a connection that sends nothing is closed
 * at its deadline. */
#include "codictate/httpd.h"
#include "codictate/log.h"
#include "codictate/peer.h"
#include "codictate/text.h"
#include "codictate/util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CDT_HTTP_MAX_PATH      1024 /* longest request path kept, bytes */
#define CDT_HTTP_MAX_PUBLIC    8    /* public (token-free) paths */
#define CDT_HTTP_MAX_EXTRA_HDR 4    /* extra response headers per request */
#define CDT_HTTP_CONN_LIMIT    64   /* connections kept open at once (one thread each) */
/* Kept free for new clients: above LIMIT - SPARE open connections, the oldest one
 * waiting for a request is closed. */
#define CDT_HTTP_CONN_SPARE 8
/* Only a connection that has waited this long for its request is closed to make
 * room, ms: one that has sent nothing (a client between its connect and its first
 * send is not an idle one) ... */
#define CDT_HTTP_ROOM_GRACE_IDLE_MS 100
/* ... and one that has sent part of a request (MHD's thread may still be reading a
 * whole one: a byte-a-second client has been at it for seconds). */
#define CDT_HTTP_ROOM_GRACE_MS 1000
/* MHD's own cap, counting connections being closed (their threads end, and MHD
 * reaps them, a little after we shut them down): in a flood of connects it must
 * not refuse the new client that the closing makes room for. */
#define CDT_HTTP_CONN_HARD_LIMIT 512
/* An answer the client reads nothing of for this long is dropped (MHD's
 * inactivity timeout; requests have their own deadline), seconds. */
#define CDT_HTTP_SEND_TIMEOUT 300
#define CDT_HTTP_WATCH_MS     1000 /* the watchdog's longest sleep, ms */
/* A large body gets a second more per this many bytes (a 100 MB audio upload),
 * bytes per second. */
#define CDT_HTTP_MIN_BODY_RATE (1024 * 1024)
/* Connections the kernel queues for accept: a flood of connects waits there, not
 * in SYN retries (1, 3, 7 s later), while the oldest silent ones make room. */
#define CDT_HTTP_BACKLOG 1024
/* The time slice the HTTP threads ask for, microseconds (short_slice; the kernel
 * clamps it to 100 us .. 100 ms): about what answering /status takes. */
#define CDT_HTTP_SLICE_US 100
/* Connections waiting for their first bytes, at most (the oldest is closed for a
 * new one): with MHD's hard cap, under the usual limit of 1024 descriptors. */
#define CDT_HTTP_PENDING_MAX 384
/* The longest method taken, bytes: a longer first word is not HTTP. */
#define CDT_HTTP_METHOD_MAX 32
/* The longest request line taken, bytes (414 past it; libmicrohttpd's own limit is its
 * memory pool, 32 KiB, shared with the headers). */
#define CDT_HTTP_LINE_MAX 16384
/* Connections handed to MHD whose accept time its STARTED has yet to take, and how
 * long an entry is kept (one MHD never took must not lend its time to a later
 * connection with the same descriptor number), ms. */
#define CDT_HTTP_TRANSIT    64
#define CDT_HTTP_TRANSIT_MS 1000
/* A connection that has sent part of a request line is peeked again after this long,
 * doubling up to the most (poll cannot wait for more bytes behind unread ones), ms. */
#define CDT_HTTP_PEEK_MIN_MS   2
#define CDT_HTTP_PEEK_MAX_MS   250
#define CDT_HTTP_ACCEPT_BATCH  64 /* connections accepted per wake, at most */
#define CDT_HTTP_NOFD_PAUSE_MS 10 /* out of descriptors with none to close: accept later */
/* Reads of a refused connection's unread bytes before its close (16 KiB each). */
#define CDT_HTTP_DRAIN_READS 16

/* One TCP connection (see the invariants above). */
struct conn {
    struct conn *prev, *next;
    int fd;
    bool busy;          /* a complete request is being answered: no deadline */
    bool begun;         /* a request line was parsed since it last waited */
    bool answered;      /* its request was answered (or refused) before it was complete */
    bool timed_out;     /* answered 408 by the watchdog */
    bool cut;           /* shut down by us */
    double deadline_ms; /* cdt_now_ms() by which a waiting connection's request is in */
    double wait_ms;     /* cdt_now_ms() when it began waiting for a request */
    uint64_t rx_mark;   /* bytes it had received then (conn_rx_bytes) */
};

struct cdt_httpd {
    struct MHD_Daemon *mhd;
    int fd; /* listening socket; -1 once quiesced and closed */
    int port;
    bool listen_any;
    size_t max_body;
    int request_timeout_ms;
    char *token;
    char *public_paths[CDT_HTTP_MAX_PUBLIC + 1];
    char *cors_prefix; /* NULL: no CORS */
    cdt_http_handler handler;
    cdt_http_error_hook error_hook;
    void *user_data;
    struct cdt_log *log;

    pthread_mutex_t lock; /* guards the connection list and stop */
    pthread_cond_t wake;  /* the watchdog's: a deadline moved, or stop */
    pthread_t watchdog;
    bool watchdog_started;
    bool stop;
    struct conn *head, *tail; /* oldest first */
    int n_open;               /* connections in the list not cut */

    pthread_t acceptor;
    bool acceptor_started;
    struct pending *pend; /* the acceptor's: CDT_HTTP_PENDING_MAX */
    struct pollfd *pfd;   /* the acceptor's: CDT_HTTP_PENDING_MAX + 2 */
    char *peek;           /* the acceptor's: CDT_HTTP_LINE_MAX, a connection's first bytes */
    int wake_pipe[2];     /* the acceptor's: written to stop it */
    struct {
        int fd;
        double t0_ms;            /* its accept */
        double handed_ms;        /* its MHD_add_connection */
    } transit[CDT_HTTP_TRANSIT]; /* under lock; fd -1: free */
};

struct cdt_http_req {
    struct cdt_httpd *h;
    struct MHD_Connection *conn;
    struct conn *c; /* NULL when untracked (out of memory at accept) */
    const char *method;
    char path[CDT_HTTP_MAX_PATH];
    struct cdt_buf body; /* up to max_body bytes */
    bool too_big;
    bool chunked; /* Transfer-Encoding: chunked (MHD decodes it) */
    bool replied;
    bool rejected; /* refused before MHD could answer (raw_reject) */
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

static void conn_set_answered(struct cdt_http_req *req);

static void queue(struct cdt_http_req *req, int status, struct MHD_Response *resp,
                  const char *content_type)
{
    conn_set_answered(req);
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
    struct pollfd pf;
    uid_t uid;
    char c;
    ssize_t n;

    if (!ci)
        return 1;
    n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return 0; /* the next request of a pipelining client */
    if (n < 0)
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR; /* e.g. a reset */
    /* End of input: a half-closed client waiting for its answer, or a closed one. */
    pf.fd = ci->connect_fd;
    pf.events = POLLIN;
    pf.revents = 0;
    if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)))
        return 1;
    /* A process still holds the peer's socket: it only shut down its sending side.
     * Closed (an orphan the kernel keeps a while), gone, or not to be told: gone. */
    return cdt_peer_uid(ci->connect_fd, &uid) != 1;
}

/* ---- connections: deadlines and room for new clients ---- */

static void conn_cut(struct cdt_httpd *h, struct conn *c)
{
    if (!c->cut) {
        shutdown(c->fd, SHUT_RDWR); /* MHD's thread sees the end and closes */
        c->cut = true;
        h->n_open--;
    }
}

static void conn_unlink(struct cdt_httpd *h, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        h->tail = c->prev;
    c->prev = c->next = NULL;
}

static void conn_append(struct cdt_httpd *h, struct conn *c)
{
    c->prev = h->tail;
    c->next = NULL;
    if (h->tail)
        h->tail->next = c;
    else
        h->head = c;
    h->tail = c;
}

/* Bytes a TCP connection has received in all; UINT64_MAX when the kernel does not
 * say (before Linux 4.1). */
static uint64_t conn_rx_bytes(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
        return UINT64_MAX;
    return ti.tcpi_bytes_received;
}

/* Whether a waiting connection has sent nothing since it began waiting (lock held).
 * The kernel's byte count, not a peek: MHD's thread may have read a request it has
 * yet to parse. */
static bool conn_sent_nothing(const struct conn *c)
{
    uint64_t rx;
    char b;

    if (c->begun)
        return false;
    rx = conn_rx_bytes(c->fd);
    if (rx != UINT64_MAX && c->rx_mark != UINT64_MAX)
        return rx == c->rx_mark;
    return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

/* The connection begins to wait for a request (its deadline is the caller's). */
static void conn_wait_begins(struct conn *c, double now)
{
    c->wait_ms = now;
    c->rx_mark = conn_rx_bytes(c->fd);
}

/* Near the limit, closes connections waiting for a request, oldest first: first
 * those that have sent nothing, then any; each only after its grace (lock held).
 * A burst of new clients may so pass the limit, up to MHD's hard cap, until the
 * grace is over and the watchdog trims them: a client is never cut between its
 * connect and its request. Returns when the next one's grace ends (0: none). */
static double make_room(struct cdt_httpd *h)
{
    double now = cdt_now_ms(), next = 0;

    while (h->n_open > CDT_HTTP_CONN_LIMIT - CDT_HTTP_CONN_SPARE) {
        struct conn *victim = NULL;

        for (int pass = 0; pass < 2 && !victim; pass++)
            for (struct conn *o = h->head; o; o = o->next) {
                bool idle;
                double due;

                if (o->busy || o->cut)
                    continue;
                idle = conn_sent_nothing(o);
                if (pass == 0 && !idle)
                    continue;
                due = o->wait_ms + (idle ? CDT_HTTP_ROOM_GRACE_IDLE_MS : CDT_HTTP_ROOM_GRACE_MS);
                if (due > now) {
                    if (next == 0 || due < next)
                        next = due;
                    continue;
                }
                victim = o;
                break;
            }
        if (!victim)
            break;
        conn_cut(h, victim);
    }
    return next;
}

/* Asks the kernel, once per thread, for a short time slice (CDT_HTTP_SLICE_US; the
 * environment's CODICTATE_HTTP_SLICE_US, 0 for the kernel's default, for measuring).
 * Under EEVDF (Linux 6.12 and later) a thread with a shorter slice gets an earlier
 * deadline and preempts a busy one when it wakes, so an answer to /status or /health
 * does not wait behind the inference threads or other processes for the rest of
 * their slice (0.75 ms times 1 + log2 of the CPUs, up to 3 ms). The nice value and a
 * policy other than SCHED_OTHER (a user's `chrt -b`) are kept, threads started from
 * this one get the default slice, and older kernels ignore the slice. Best effort: a
 * refusal changes nothing. Runs on every request line, so the flag comes first. */
static void short_slice(void)
{
    /* The kernel's struct sched_attr, first version (its header clashes with
     * <sched.h>, and glibc 2.36 has no wrapper). */
    struct {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } a;
    static _Thread_local bool done;
    long us;
    int nice;

    if (done)
        return;
    done = true;
    us = cdt_env_long("CODICTATE_HTTP_SLICE_US", 0, 100000, CDT_HTTP_SLICE_US);
    if (us <= 0 || sched_getscheduler(0) != SCHED_OTHER)
        return;
    errno = 0;
    nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno != 0)
        return;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.sched_policy = SCHED_OTHER;
    a.sched_nice = nice;
    a.sched_flags = 0x01; /* SCHED_FLAG_RESET_ON_FORK: threads this one starts (a
                           * dictation's workers, their engines') get the default */
    a.sched_runtime = (uint64_t)us * 1000u;
    (void)syscall(SYS_sched_setattr, 0, &a, 0u);
}

/* MHD_OPTION_NOTIFY_CONNECTION: tracks each connection; near the limit, makes room
 * by closing the oldest one still waiting for its request. Runs on MHD's own thread
 * (which takes the acceptor's connections), which it gives a short slice
 * (short_slice) so that it starts them at once. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct cdt_httpd *h = cls;
    struct conn *c = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

        short_slice();
        *socket_context = NULL;
        if (!ci || !(c = calloc(1, sizeof(*c))))
            return; /* untracked: MHD's inactivity timeout still ends it */
        c->fd = ci->connect_fd;
        conn_wait_begins(c, cdt_now_ms());
        if (c->rx_mark != UINT64_MAX)
            c->rx_mark = 0; /* new: all it has received (the acceptor saw) is its request */
        c->deadline_ms = c->wait_ms + h->request_timeout_ms;
        pthread_mutex_lock(&h->lock);
        for (int i = 0; i < CDT_HTTP_TRANSIT; i++)
            if (h->transit[i].fd == c->fd) { /* its deadline counts from its accept */
                c->deadline_ms = h->transit[i].t0_ms + h->request_timeout_ms;
                h->transit[i].fd = -1;
                break;
            }
        conn_append(h, c);
        if (++h->n_open > CDT_HTTP_CONN_LIMIT - CDT_HTTP_CONN_SPARE && make_room(h) > 0)
            pthread_cond_signal(&h->wake); /* the watchdog trims when the grace ends */
        pthread_mutex_unlock(&h->lock);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        pthread_mutex_lock(&h->lock);
        conn_unlink(h, c);
        if (!c->cut)
            h->n_open--;
        pthread_mutex_unlock(&h->lock);
        free(c);
        *socket_context = NULL;
    }
}

/* busy: the request is complete and being answered (no deadline); else the
 * connection waits for its next request, due within request_timeout_ms. */
static void conn_set_busy(struct cdt_httpd *h, struct conn *c, bool busy)
{
    if (!c)
        return;
    pthread_mutex_lock(&h->lock);
    c->busy = busy;
    c->begun = false;
    c->answered = false;
    if (!busy) {
        conn_wait_begins(c, cdt_now_ms());
        c->deadline_ms = c->wait_ms + h->request_timeout_ms;
        conn_unlink(h, c); /* the most recently active: the last to make room */
        conn_append(h, c);
    }
    pthread_mutex_unlock(&h->lock);
}

/* A body of `bytes` (announced by a Content-Length, or received so far in chunks)
 * gets a second more per CDT_HTTP_MIN_BODY_RATE bytes: the deadline becomes
 * from_ms + request_timeout_ms + that (never sooner than it was). */
static void conn_allow_body(struct cdt_httpd *h, struct conn *c, double from_ms,
                            unsigned long long bytes)
{
    double until;

    if (!c || bytes < CDT_HTTP_MIN_BODY_RATE)
        return;
    until = from_ms + h->request_timeout_ms + (double)bytes * 1000.0 / CDT_HTTP_MIN_BODY_RATE;
    pthread_mutex_lock(&h->lock);
    if (until > c->deadline_ms)
        c->deadline_ms = until;
    pthread_mutex_unlock(&h->lock);
}

static int raw_reject(int fd, int status, const char *why);

/* The request is answered or refused before it is complete: no 408 at its deadline. */
static void conn_set_answered(struct cdt_http_req *req)
{
    if (!req->c)
        return;
    pthread_mutex_lock(&req->h->lock);
    req->c->answered = true;
    pthread_mutex_unlock(&req->h->lock);
}

/* Shuts down the connections whose request is late (one whose request line came
 * gets a 408 first: MHD is writing nothing there); sleeps until the next deadline. */
static void *watchdog_main(void *arg)
{
    struct cdt_httpd *h = arg;

    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        double now = cdt_now_ms(), next = now + CDT_HTTP_WATCH_MS;
        struct timespec ts;

        for (struct conn *c = h->head; c; c = c->next) {
            if (c->busy || c->cut)
                continue;
            if (c->deadline_ms <= now) {
                if (c->begun && !c->answered) {
                    raw_reject(c->fd, 408, "the request's headers and body did not arrive in time");
                    c->timed_out = true;
                }
                conn_cut(h, c);
            } else if (c->deadline_ms < next)
                next = c->deadline_ms;
        }
        if (h->n_open > CDT_HTTP_CONN_LIMIT - CDT_HTTP_CONN_SPARE) {
            double due = make_room(h);

            if (due > 0 && due < next)
                next = due;
        }
        ts = cdt_ms_to_timespec(next);
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
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
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    uid_t uid;

    /* Another user of this machine reaches 127.0.0.1 too: the kernel says whose
     * socket the client's is. Where it cannot tell (a remote client under
     * listen_any, no sock_diag), the Host, Origin and token rules still hold. */
    if (ci && cdt_peer_uid(ci->connect_fd, &uid) == 1 && uid != geteuid()) {
        cdt_http_reply_error(req, 403, "Forbidden: this server belongs to another user");
        return false;
    }
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

struct hdr_count {
    int host, origin, auth, clen, tenc;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct hdr_count *n = cls;

    (void)kind, (void)value;
    if (!key)
        return MHD_YES;
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        n->host++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_ORIGIN) == 0)
        n->origin++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
        n->auth++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        n->clen++;
    else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        n->tenc++;
    return MHD_YES;
}

/* Why a request's headers are refused (and *status, 400 or 501), or NULL. MHD takes
 * the first of repeated headers; a proxy or the handler might take another, so a
 * repeat of one that decides where a request goes, whose it is or where its body
 * ends is refused. A body is framed by one Content-Length or by
 * "Transfer-Encoding: chunked" exactly (what MHD decodes; it reads a body of any
 * other coding until the close): another coding before chunked is 501, a
 * Transfer-Encoding that does not end in chunked, one with a Content-Length or in
 * an HTTP/1.0 request is 400 (RFC 9112 6.1, 6.3). */
static const char *bad_headers(struct MHD_Connection *conn, const char *version, int *status)
{
    struct hdr_count n = {0};
    const char *cl, *te;

    *status = 400;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &n);
    if (n.tenc > 1)
        return "more than one Transfer-Encoding header";
    if (n.tenc && n.clen)
        return "both Content-Length and Transfer-Encoding";
    if (n.clen > 1)
        return "more than one Content-Length header";
    if (n.host > 1)
        return "more than one Host header";
    if (n.origin > 1)
        return "more than one Origin header";
    if (n.auth > 1)
        return "more than one Authorization header";
    cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && (!*cl || strspn(cl, "0123456789") != strlen(cl)))
        return "Content-Length is not a number of bytes";
    te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te && strcasecmp(te, "chunked") != 0) {
        const char *last = strrchr(te, ',');
        size_t len;

        last = last ? last + 1 : te;
        last += strspn(last, " \t");
        len = strcspn(last, " \t");
        if (len == 7 && strncasecmp(last, "chunked", 7) == 0 &&
            last[len + strspn(last + len, " \t")] == '\0') {
            *status = 501;
            return "Transfer-Encoding: only chunked is supported, without other codings";
        }
        return "Transfer-Encoding does not end in chunked: the end of the body cannot be told";
    }
    if (te && version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        return "Transfer-Encoding in an HTTP/1.0 request";
    return NULL;
}

/* The reason phrase of a status raw_reject writes. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Bad Request";
    }
}

/* Writes `status` (400, 408, 413, 414, 431, 501 or 505) with {"detail": why} ("Bad request: why"
 * for a 400) and "Connection: close" on a connection's socket itself, before MHD has
 * written anything of an answer there (it is small enough for an empty socket
 * buffer; a client that reads nothing gets the close alone). Returns status. */
static int raw_reject(int fd, int status, const char *why)
{
    char head[256], msg[256];
    cJSON *o = cJSON_CreateObject();
    char *body;
    size_t hl, off = 0;

    snprintf(msg, sizeof(msg), "%s%s", status == 400 ? "Bad request: " : "", why);
    body = o && cJSON_AddStringToObject(o, "detail", msg) ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!body)
        return status; /* closed without an answer */
    hl = (size_t)snprintf(head, sizeof(head),
                          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                          "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                          "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                          status, reason_phrase(status), strlen(body));
    for (int part = 0; part < 2; part++) {
        const char *p = part ? body : head;
        size_t len = part ? strlen(body) : hl;

        for (off = 0; off < len;) {
            ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n <= 0)
                break;
            off += (size_t)n;
        }
        if (off < len)
            break;
    }
    free(body);
    return status;
}

/* A request refused before MHD answers anything (its first call, or during a chunked
 * body): answered on the socket, and the caller returns MHD_NO, so MHD closes the
 * connection without an answer of its own. */
static void reject_request(struct cdt_http_req *req, int status, const char *why)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

    conn_set_answered(req);
    req->replied = true;
    req->rejected = true;
    req->status = ci ? raw_reject(ci->connect_fd, status, why) : status;
}

/* The connection whose request line this thread parsed last: with a thread per
 * connection, the thread's own (set by on_uri, read by mhd_log). */
static _Thread_local struct MHD_Connection *tls_conn;

/* MHD_OPTION_URI_LOG_CALLBACK: runs on the connection's thread once its request
 * line is parsed, before its headers are; gives that thread a short slice
 * (short_slice). Returns the request's initial con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct cdt_httpd *h = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = ci ? ci->socket_context : NULL;

    (void)uri;
    tls_conn = conn;
    short_slice();
    if (c) {
        pthread_mutex_lock(&h->lock);
        c->begun = true;
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct cdt_httpd *h = cls;
    struct cdt_http_req *req = *con_cls;

    if (!req) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        unsigned long long clen;
        const char *cl, *why;
        int status;

        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->h = h;
        req->conn = conn;
        req->c = ci ? ci->socket_context : NULL;
        req->method = method;
        req->t0_ms = cdt_now_ms();
        snprintf(req->path, sizeof(req->path), "%s", url ? url : "/");
        req->path[strcspn(req->path, "?#")] = '\0';
        *con_cls = req;
        if ((why = bad_headers(conn, version, &status))) {
            reject_request(req, status, why);
            return MHD_NO;
        }
        req->chunked =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (h->cors_prefix && strncmp(req->path, h->cors_prefix, strlen(h->cors_prefix)) == 0) {
            const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");

            if (cdt_http_is_loopback_origin(origin))
                req->cors_origin = origin;
        }
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && parse_size(cl, &clen) && clen > h->max_body)
            cdt_http_reply_error(req, 413, "Request body too large: over %zu bytes", h->max_body);
        else if (cl && parse_size(cl, &clen))
            conn_allow_body(h, req->c, cdt_now_ms(), clen);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (req->replied || req->too_big)
            return MHD_YES;
        if (req->body.len + n > h->max_body && req->chunked) {
            char why[128];

            /* No size was announced: refused as soon as it passes the cap. */
            snprintf(why, sizeof(why), "Request body too large: over %zu bytes", h->max_body);
            reject_request(req, 413, why);
            return MHD_NO;
        }
        if (req->body.len + n > h->max_body) {
            req->too_big = true;
            cdt_buf_cleanup(&req->body);
            return MHD_YES;
        }
        if (cdt_buf_append(&req->body, upload_data, n) != 0)
            return MHD_NO;
        if (req->chunked) /* a large chunked body gets its second per MB as it comes */
            conn_allow_body(h, req->c, req->t0_ms, req->body.len);
        return MHD_YES;
    }
    if (req->replied)
        return MHD_YES;
    conn_set_busy(h, req->c, true); /* complete: answering it has no deadline */
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
    bool cut = false;

    (void)conn;
    if (!req)
        return;
    if (req->c) {
        pthread_mutex_lock(&h->lock);
        cut = req->c->cut;
        if (req->c->timed_out && !req->replied)
            req->status = 408;
        pthread_mutex_unlock(&h->lock);
    }
    conn_set_busy(h, req->c, false); /* waits for the next request, if any */
    if (cdt_log_enabled(h->log, CDT_LOG_INFO)) {
        /* The path is the client's (URL-decoded): no escape sequences into the log. */
        char *method = cdt_text_escape_controls(req->method, false);
        char *path = cdt_text_escape_controls(req->path, false);
        const char *why = req->rejected ? " (refused, closed)"
                          : cut         ? " (request too slow or room needed: closed)"
                          : toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                                                                       : " (client gone)";

        CDT_LOG_I(h->log, "%s %s %d %.1f ms%s", method ? method : "?", path ? path : "?",
                  req->status, cdt_now_ms() - req->t0_ms, why);
        free(method);
        free(path);
    }
    for (int i = 0; i < req->n_hdr; i++)
        free(req->hdr_value[i]);
    cdt_buf_cleanup(&req->body);
    free(req);
    *con_cls = NULL;
}

/* MHD's own answer to a request it cannot read, from its log line ("Error processing
 * request (HTTP response code is N ('<html>…')"): sets *status and returns what to
 * say in our {"detail"} instead of its HTML page; NULL for any other line. */
static const char *mhd_error_why(const char *line, int *status)
{
    const char *p = strstr(line, "(HTTP response code is ");
    int n;

    if (!p || sscanf(p + 23, "%d", &n) != 1 || n < 400 || n > 599 || !strstr(p, "<html>"))
        return NULL;
    *status = n;
    switch (n) {
    case 414:
        return "Request line too long";
    case 431:
        return "Request headers too large";
    case 505:
        return "HTTP version not supported: only HTTP/1.0 and HTTP/1.1 are served";
    case 400:
        return "a malformed request line, header line or HTTP version";
    default:
        return "The request could not be read";
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct cdt_httpd *h = cls;
    char buf[1024];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    CDT_LOG_D(h->log, "http: %s", buf);
    /* A Content-Length MHD cannot parse (-1, +30, 1e3, 0x10, over 2^64): MHD 0.9.75
     * answers it itself, before any request callback, with its status line and
     * headers twice (its state machine builds them again). A chunked body MHD cannot
     * decode (a chunk size that is not hex, or over 2^64-1): MHD answers 400 or 413
     * with an HTML page. Its log line carries its error page (not translated, unlike
     * the log text): answer 400 {"detail"} first and shut the sending side, so MHD's
     * own answer fails to go out and it closes. */
    if (tls_conn) {
        int status = 400;
        const char *why =
            strstr(buf, "<b>Content-Length</b>") ? "Content-Length is not a number of bytes"
            : strstr(buf, "chunk size used in your HTTP chunked") ? "a chunk size over 2^64-1"
            : strstr(buf, "chunked encoding was syntactically incorrect")
                ? "a malformed chunked body (a chunk size must be hex digits, "
                  "a chunk must end in CRLF)"
                : mhd_error_why(buf, &status);
        const union MHD_ConnectionInfo *ci =
            why ? MHD_get_connection_info(tls_conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
        const union MHD_ConnectionInfo *sc =
            ci ? MHD_get_connection_info(tls_conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
        struct conn *c = sc ? sc->socket_context : NULL;
        bool busy = false;

        if (c) { /* an answer on its way (MHD only closes then): nothing written into it */
            pthread_mutex_lock(&h->lock);
            busy = c->busy;
            pthread_mutex_unlock(&h->lock);
        }
        if (ci && !busy) {
            raw_reject(ci->connect_fd, status, why);
            shutdown(ci->connect_fd, SHUT_WR);
        }
        if (why)
            CDT_LOG_I(h->log, "a request with %s: %d (refused, closed)", why, status);
    }
}

/* ---- the acceptor: first bytes before MHD ---- */

/* A connection accepted and not yet handed to MHD. */
struct pending {
    int fd;
    socklen_t addrlen;
    struct sockaddr_storage addr;
    double t0_ms;      /* cdt_now_ms() at its accept */
    size_t seen;       /* bytes peeked so far: part of a request line */
    double recheck_ms; /* when to peek again (seen > 0) */
    double backoff_ms; /* the wait before the peek after that */
};

enum first_line {
    FIRST_MORE,
    FIRST_HTTP,
    FIRST_NOT_HTTP,
    FIRST_BAD_LINE,
    FIRST_BAD_VERSION,
    FIRST_TOO_LONG,
    FIRST_CUT_SHORT,
    FIRST_GONE
};

/* A token character (RFC 9110 5.6.2): what a method is made of. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* What a connection's first bytes say, peeked into b (MHD reads them again): a whole
 * request line (empty lines before it are allowed, RFC 9112 2.2; LF alone ends it as
 * well as CRLF), not HTTP at all (its first word is no method), a malformed line, a
 * version other than HTTP/1.x, a line too long, not enough yet (*seen: the bytes
 * there), or the client is gone. libmicrohttpd answers a malformed line with an HTML
 * page, and no hook of ours runs before it does. */
static enum first_line first_line(int fd, char *b, size_t cap, size_t *seen)
{
    ssize_t n = recv(fd, b, cap, MSG_PEEK | MSG_DONTWAIT);
    size_t i = 0, start, end;
    const char *lf, *sp, *ver;

    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? FIRST_MORE : FIRST_GONE;
    if (n == 0)
        return FIRST_GONE;
    *seen = (size_t)n;
    while (i < (size_t)n && (b[i] == '\r' || b[i] == '\n'))
        i++;
    for (start = i; i < (size_t)n && b[i] != ' '; i++)
        if (!is_tchar((unsigned char)b[i]) || i - start >= CDT_HTTP_METHOD_MAX)
            return FIRST_NOT_HTTP;
    if (i == (size_t)n)
        return FIRST_MORE;
    if (i == start)
        return FIRST_NOT_HTTP;
    lf = memchr(b + i, '\n', (size_t)n - i);
    if (!lf)
        return (size_t)n == cap ? FIRST_TOO_LONG : FIRST_MORE;
    end = (size_t)(lf - b);
    if (end > i && b[end - 1] == '\r')
        end--;
    /* method SP request-target SP HTTP/d.d: the target has no space or control */
    for (sp = b + i + 1; sp < b + end && (unsigned char)*sp > ' ' && *sp != 0x7f; sp++)
        ;
    if (sp == b + i + 1 || sp >= b + end || *sp != ' ')
        return FIRST_BAD_LINE;
    ver = sp + 1;
    if (b + end - ver != 8 || memcmp(ver, "HTTP/", 5) != 0 || !isdigit((unsigned char)ver[5]) ||
        ver[6] != '.' || !isdigit((unsigned char)ver[7]))
        return FIRST_BAD_LINE;
    return ver[5] == '1' ? FIRST_HTTP : FIRST_BAD_VERSION;
}

/* The size of the first chunk, when the first bytes of a connection (b, n) hold a
 * whole head with "Transfer-Encoding: chunked" and the first chunk's size line; 0
 * when they do not (then MHD reads it as it comes). Over 16 hex digits is left to
 * MHD (its 400). */
static unsigned long long first_chunk_size(const char *b, size_t n)
{
    const char *end = memmem(b, n, "\r\n\r\n", 4), *line, *p, *stop = b + n;
    bool chunked = false;
    unsigned long long size = 0;
    int digits = 0;

    if (!end)
        return 0;
    for (line = memchr(b, '\n', (size_t)(end - b)); line && line < end;
         line = memchr(line + 1, '\n', (size_t)(end - line))) {
        const char *v = line + 1, *eol = memchr(v, '\r', (size_t)(end + 2 - v));

        if (!eol || (size_t)(eol - v) < 18 || strncasecmp(v, "Transfer-Encoding:", 18) != 0)
            continue;
        for (v += 18; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
            eol--;
        chunked = eol - v == 7 && strncasecmp(v, "chunked", 7) == 0;
    }
    if (!chunked)
        return 0;
    for (p = end + 4; p < stop && isxdigit((unsigned char)*p) && digits <= 16; p++, digits++)
        size = size * 16 + (unsigned long long)(isdigit((unsigned char)*p)
                                                    ? *p - '0'
                                                    : (tolower((unsigned char)*p) - 'a' + 10));
    return digits && digits <= 16 && p < stop && (*p == '\r' || *p == ';') ? size : 0;
}

/* Gives a connection to MHD, its accept time noted for its deadline (on_connection).
 * MHD closes it if it cannot take it. */
static void hand_to_mhd(struct cdt_httpd *h, const struct pending *p)
{
    double now = cdt_now_ms();
    int slot = -1;

    pthread_mutex_lock(&h->lock);
    /* One for this fd, or handed long ago (MHD never took it), is free. */
    for (int i = 0; i < CDT_HTTP_TRANSIT; i++) {
        if (h->transit[i].fd == p->fd || now - h->transit[i].handed_ms > CDT_HTTP_TRANSIT_MS)
            h->transit[i].fd = -1;
        if (h->transit[i].fd < 0 && slot < 0)
            slot = i;
    }
    if (slot >= 0) {
        h->transit[slot].fd = p->fd;
        h->transit[slot].t0_ms = p->t0_ms;
        h->transit[slot].handed_ms = now;
    }
    pthread_mutex_unlock(&h->lock);
    if (MHD_add_connection(h->mhd, p->fd, (const struct sockaddr *)&p->addr, p->addrlen) ==
            MHD_YES ||
        slot < 0)
        return;
    pthread_mutex_lock(&h->lock); /* not taken, and closed: the slot is free again */
    if (h->transit[slot].fd == p->fd)
        h->transit[slot].fd = -1;
    pthread_mutex_unlock(&h->lock);
}

/* Acts on what a pending connection's first bytes (h->peek, p->seen of them when
 * `what` is FIRST_HTTP) said at `now`; returns whether it still waits. */
static bool pending_settle(struct cdt_httpd *h, struct pending *p, enum first_line what, double now)
{
    if (what == FIRST_MORE && now < p->t0_ms + h->request_timeout_ms) {
        if (p->seen && p->recheck_ms <= now) {
            p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : CDT_HTTP_PEEK_MIN_MS;
            if (p->backoff_ms > CDT_HTTP_PEEK_MAX_MS)
                p->backoff_ms = CDT_HTTP_PEEK_MAX_MS;
            p->recheck_ms = now + p->backoff_ms;
        }
        return true;
    }
    if (what == FIRST_HTTP) {
        /* A chunk announced past the cap with the head (one write, as a small request
         * comes): 413 at once, not when the body reaches the cap or the deadline. */
        unsigned long long chunk = first_chunk_size(h->peek, p->seen);
        char why[128];

        if (chunk <= h->max_body) {
            hand_to_mhd(h, p);
            return false;
        }
        snprintf(why, sizeof(why), "Request body too large: a chunk of %llu bytes, over %zu", chunk,
                 h->max_body);
        raw_reject(p->fd, 413, why);
        CDT_LOG_I(h->log, "a request announcing a chunk over the cap: 413 (refused, closed)");
    } else if (what != FIRST_MORE && what != FIRST_GONE) {
        static const struct {
            int status;
            const char *why;
        } answer[] = {
            [FIRST_NOT_HTTP] = {400, "the first line is not an HTTP request line (is this TLS?)"},
            [FIRST_BAD_LINE] = {400, "a malformed request line (want: METHOD target HTTP/1.1)"},
            [FIRST_BAD_VERSION] = {505, "HTTP version not supported: only HTTP/1.0 and HTTP/1.1"},
            [FIRST_TOO_LONG] = {414, "Request line too long"},
            [FIRST_CUT_SHORT] = {400, "the input ended inside the request line"},
        };

        raw_reject(p->fd, answer[what].status, answer[what].why);
        CDT_LOG_I(h->log, "a connection whose first line is not one we take: %d (refused, closed)",
                  answer[what].status);
    } else if (what == FIRST_MORE && p->seen) /* late, with part of a request line */
        raw_reject(p->fd, 408, "the request's headers and body did not arrive in time");
    /* What it sent is read, so that the close sends no reset, which would take the
     * answer with it; the answer goes out before the close. */
    for (int i = 0;
         i < CDT_HTTP_DRAIN_READS && recv(p->fd, h->peek, CDT_HTTP_LINE_MAX, MSG_DONTWAIT) > 0; i++)
        ;
    shutdown(p->fd, SHUT_WR);
    close(p->fd);
    return false;
}

/* Accepts connections and holds each until its first bytes (see the top of the
 * file); ends when its pipe is written. */
static void *acceptor_main(void *arg)
{
    struct cdt_httpd *h = arg;
    struct pending *pend = h->pend;
    struct pollfd *pfd = h->pfd;
    double paused_until = 0; /* out of descriptors: accept again after this */
    int n = 0;

    pthread_setname_np(pthread_self(), "cdt-accept");
    short_slice();
    for (;;) {
        double now = cdt_now_ms(), next = now + CDT_HTTP_WATCH_MS;
        int k = 0;

        pfd[0] = (struct pollfd){.fd = h->wake_pipe[0], .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = paused_until > now ? -1 : h->fd, .events = POLLIN};
        if (paused_until > now && paused_until < next)
            next = paused_until;
        for (int i = 0; i < n; i++) {
            double due = pend[i].t0_ms + h->request_timeout_ms;

            /* POLLRDHUP: a client that ends its input inside its request line. */
            pfd[2 + i] = (struct pollfd){.fd = pend[i].fd,
                                         .events = POLLRDHUP | (pend[i].seen ? 0 : POLLIN)};
            if (pend[i].seen && pend[i].recheck_ms < due)
                due = pend[i].recheck_ms;
            if (due < next)
                next = due;
        }
        if (poll(pfd, (nfds_t)n + 2, next > now ? (int)(next - now) + 1 : 0) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break;
        now = cdt_now_ms();
        for (int i = 0; i < n; i++) {
            struct pending *p = &pend[i];
            bool look = pfd[2 + i].revents || (p->seen && p->recheck_ms <= now);
            enum first_line what =
                look ? first_line(p->fd, h->peek, CDT_HTTP_LINE_MAX, &p->seen) : FIRST_MORE;

            if (what == FIRST_MORE && p->seen && (pfd[2 + i].revents & (POLLRDHUP | POLLHUP)))
                what = FIRST_CUT_SHORT; /* no more is coming */
            if (pending_settle(h, p, what, now))
                pend[k++] = *p;
        }
        n = k;
        for (int i = 0; i < CDT_HTTP_ACCEPT_BATCH && (pfd[1].revents & POLLIN); i++) {
            struct pending p = {.addrlen = sizeof(p.addr), .t0_ms = now};

            p.fd = accept4(h->fd, (struct sockaddr *)&p.addr, &p.addrlen,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (p.fd < 0 && (errno == EMFILE || errno == ENFILE) && n == 0) {
                paused_until = now + CDT_HTTP_NOFD_PAUSE_MS;
                break;
            }
            if (p.fd < 0 &&
                (errno == EMFILE || errno == ENFILE || errno == ECONNABORTED || errno == EINTR)) {
                if (errno == EMFILE || errno == ENFILE) { /* room: the oldest waiting goes */
                    close(pend[0].fd);
                    memmove(pend, pend + 1, (size_t)--n * sizeof(*pend));
                }
                continue;
            }
            if (p.fd < 0)
                break; /* none left (EAGAIN), or an error the next poll sees again */
            if (!pending_settle(h, &p, first_line(p.fd, h->peek, CDT_HTTP_LINE_MAX, &p.seen), now))
                continue;
            if (n == CDT_HTTP_PENDING_MAX) { /* full: the oldest goes */
                close(pend[0].fd);
                memmove(pend, pend + 1, (size_t)--n * sizeof(*pend));
            }
            pend[n++] = p;
        }
    }
    for (int i = 0; i < n; i++)
        close(pend[i].fd);
    return NULL;
}

/* Stops the acceptor (it closes the connections it holds); the listening socket stays
 * open. */
static void acceptor_stop(struct cdt_httpd *h)
{
    if (!h->acceptor_started)
        return;
    while (write(h->wake_pipe[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(h->acceptor, NULL);
    h->acceptor_started = false;
}

/* ---- binding ---- */

static int bind_range(struct cdt_httpd *h, const char *host, int pmin, int pmax, char *errmsg,
                      size_t errcap)
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
        if (bind(fd, (struct sockaddr *)&ss, sl) == 0 && listen(fd, CDT_HTTP_BACKLOG) == 0) {
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
    pthread_condattr_t ca;
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
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return CDT_ENOMEM;
    }
    if (pthread_cond_init(&h->wake, &ca) != 0) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return CDT_ENOMEM;
    }
    pthread_condattr_destroy(&ca);
    h->fd = -1;
    h->wake_pipe[0] = h->wake_pipe[1] = -1;
    for (int i = 0; i < CDT_HTTP_TRANSIT; i++)
        h->transit[i].fd = -1;
    h->listen_any = p->listen_any;
    h->max_body = p->max_body ? p->max_body : CDT_HTTP_MAX_BODY;
    h->request_timeout_ms =
        p->request_timeout_ms > 0 ? p->request_timeout_ms : CDT_HTTP_REQUEST_TIMEOUT_MS;
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

    rc = bind_range(h, p->host ? p->host : "127.0.0.1", p->port_min, p->port_max, errmsg, errcap);
    if (rc != 0) {
        cdt_httpd_free(h);
        return rc;
    }
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
        snprintf(errmsg, errcap, "cannot start the HTTP server's watchdog thread");
        cdt_httpd_free(h);
        return CDT_EIO;
    }
    h->watchdog_started = true;
    /* poll, not select: a descriptor above FD_SETSIZE must not break a connection. MHD
     * listens on nothing: the acceptor hands it connections (MHD_USE_ITC wakes it). */
    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CDT_HTTP_CONN_HARD_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CDT_HTTP_SEND_TIMEOUT, MHD_OPTION_END); /* the logger first: MHD's rule */
    if (!h->mhd) {
        snprintf(errmsg, errcap, "cannot start the HTTP server on port %d", h->port);
        cdt_httpd_free(h);
        return CDT_EIO;
    }
    h->pend = calloc(CDT_HTTP_PENDING_MAX, sizeof(*h->pend));
    h->pfd = calloc(CDT_HTTP_PENDING_MAX + 2, sizeof(*h->pfd));
    h->peek = malloc(CDT_HTTP_LINE_MAX);
    if (!h->pend || !h->pfd || !h->peek || pipe2(h->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK) != 0 ||
        pthread_create(&h->acceptor, NULL, acceptor_main, h) != 0) {
        snprintf(errmsg, errcap, "cannot start the HTTP server's acceptor thread");
        cdt_httpd_free(h);
        return CDT_EIO;
    }
    h->acceptor_started = true;
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
    if (!h || h->fd < 0)
        return;
    acceptor_stop(h); /* connections not yet handed to MHD are closed */
    close(h->fd);
    h->fd = -1;
}

void cdt_httpd_free(struct cdt_httpd *h)
{
    if (!h)
        return;
    acceptor_stop(h); /* first: nothing more is handed to MHD */
    if (h->mhd)
        MHD_stop_daemon(h->mhd);
    if (h->fd >= 0)
        close(h->fd);
    for (int i = 0; i < 2; i++)
        if (h->wake_pipe[i] >= 0)
            close(h->wake_pipe[i]);
    free(h->pend);
    free(h->pfd);
    free(h->peek);
    if (h->watchdog_started) { /* after MHD: its last CLOSED notifications are in */
        pthread_mutex_lock(&h->lock);
        h->stop = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->watchdog, NULL);
    }
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h->token);
    free(h->cors_prefix);
    for (int i = 0; h->public_paths[i]; i++)
        free(h->public_paths[i]);
    free(h);
}
