/* The shared HTTP layer (src/lib/httpd.c) against hostile clients on raw sockets
 * (issue 14 §0): requests HTTP would let two parties read differently get one 400
 * and a closed connection; a request must arrive within its deadline, an answer
 * being made has none; clients that connect and send nothing cannot lock others
 * out; a half-closed client is not a gone one; chunked bodies are read as bodies
 * with a Content-Length, within the same cap and deadline. Every wait is bounded. */
#include "../test.h"
#include "codictate/httpd.h"
#include "codictate/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DEADLINE_MS 600 /* the test server's request deadline */

static atomic_int gone_seen = -1; /* /wait: 1 client gone, 0 still there */

struct slow_stream {
    int left;
};

static ssize_t slow_next(void *ud, char *buf, size_t cap)
{
    struct slow_stream *st = ud;

    if (st->left == 0 || cap < 2)
        return 0;
    usleep(300 * 1000);
    st->left--;
    memcpy(buf, "x\n", 2);
    return 2;
}

static void slow_done(void *ud, bool gone)
{
    (void)gone;
    free(ud);
}

/* The time slice of thread tid, ns, from /proc (the kernel's "se.slice"); -1 where
 * the kernel does not show it. */
static long long slice_of(long tid)
{
    char path[64], line[256];
    long long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/self/task/%ld/sched", tid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "se.slice ", 9) == 0 && strchr(line, ':'))
            v = strtoll(strchr(line, ':') + 1, NULL, 10);
    fclose(f);
    return v;
}

static void *own_slice(void *arg)
{
    *(long long *)arg = slice_of((long)syscall(SYS_gettid));
    return NULL;
}

static void handler(struct cdt_http_req *req, void *ud)
{
    const char *path = cdt_http_req_path(req);

    (void)ud;
    if (strcmp(path, "/slice") == 0) { /* this connection thread's slice, a child's */
        char b[64];
        long long child = -1;
        pthread_t t;
        int n;

        if (pthread_create(&t, NULL, own_slice, &child) == 0)
            pthread_join(t, NULL);
        n = snprintf(b, sizeof(b), "%lld %lld", slice_of((long)syscall(SYS_gettid)), child);

        cdt_http_reply(req, 200, b, (size_t)n, "text/plain");
    } else if (strcmp(path, "/wait") == 0) { /* up to 1.5 s watching the client */
        int gone = 0;

        for (int i = 0; i < 75 && !gone; i++) {
            gone = cdt_http_req_client_gone(req);
            if (!gone)
                usleep(20 * 1000);
        }
        atomic_store(&gone_seen, gone);
        cdt_http_reply(req, 200, gone ? "{\"gone\":1}" : "{\"gone\":0}", 10, NULL);
    } else if (strcmp(path, "/slow") == 0) { /* longer than the request deadline */
        usleep(3 * DEADLINE_MS * 1000);
        cdt_http_reply(req, 200, "{\"slow\":1}", 10, NULL);
    } else if (strcmp(path, "/stream") == 0) { /* 5 pieces, 1.5 s */
        struct slow_stream *st = calloc(1, sizeof(*st));

        if (!st) {
            cdt_http_reply_error(req, 500, "out of memory");
            return;
        }
        st->left = 5;
        cdt_http_reply_stream(req, 200, "text/plain", slow_next, slow_done, st);
    } else if (strcmp(path, "/echo") == 0) {
        cdt_http_reply(req, 200, cdt_http_req_body(req), cdt_http_req_body_len(req), "text/plain");
    } else {
        cdt_http_reply(req, 200, "{\"ok\":1}", 8, NULL);
    }
}

static struct cdt_httpd *start_capped(int timeout_ms, size_t max_body, int *port)
{
    struct cdt_httpd_params p = cdt_httpd_default_params();
    struct cdt_httpd *h = NULL;
    char err[256];

    p.handler = handler;
    p.request_timeout_ms = timeout_ms;
    p.max_body = max_body;
    if (cdt_httpd_new(&p, &h, err, sizeof(err)) != 0) {
        fprintf(stderr, "cdt_httpd_new: %s\n", err);
        return NULL;
    }
    *port = cdt_httpd_port(h);
    return h;
}

static struct cdt_httpd *start(int timeout_ms, int *port)
{
    return start_capped(timeout_ms, 8 << 20, port);
}

static int dial(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads into buf (NUL-terminated) until the peer closes or limit_ms passes; true
 * when it closed. */
static bool read_until_close(int fd, char *buf, size_t cap, int limit_ms)
{
    size_t len = 0;
    double end = cdt_now_ms() + limit_ms;

    buf[0] = '\0';
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = (int)(end - cdt_now_ms());
        ssize_t n;

        if (left <= 0 || poll(&pf, 1, left) != 1)
            return false;
        n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == ECONNRESET)
            return true;
        if (n <= 0)
            return n == 0;
        len += (size_t)n;
        buf[len] = '\0';
        if (len + 1 >= cap)
            return false;
    }
}

static int count_status_lines(const char *s)
{
    int n = 0;

    for (const char *p = s; (p = strstr(p, "HTTP/1.")); p++)
        if (p == s || p[-1] == '\n')
            n++;
    return n;
}

/* A GET on a new connection: its status, or -1. */
static int get(int port, const char *path, int limit_ms)
{
    char req[256], buf[4096];
    int fd = dial(port), status = -1;

    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             path);
    if (send_all(fd, req, strlen(req)))
        read_until_close(fd, buf, sizeof(buf), limit_ms);
    else
        buf[0] = '\0';
    close(fd);
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi(buf + 9);
    return status;
}

TEST(ambiguous_requests_get_one_400_and_a_close)
{
    static const struct {
        const char *name, *raw;
    } cases[] = {
        {"two Content-Length", "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                               "Content-Length: 1\r\n\r\n{}"},
        {"Content-Length and Transfer-Encoding",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
         "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
        {"Content-Length -1",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n{}"},
        {"Content-Length +30",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +30\r\n\r\n"},
        {"Content-Length 1e3",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1e3\r\n\r\n"},
        {"Content-Length 0x10",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0x10\r\n\r\n"},
        {"Transfer-Encoding gzip",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n{}"},
        {"Transfer-Encoding chunked, gzip",
         "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n{}"},
        {"chunked in HTTP/1.0", "POST /x HTTP/1.0\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                                "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
        {"chunk size over 2^64-1", "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                                   "chunked\r\n\r\n10000000000000000\r\n{}"},
        {"chunk size not hex", "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                               "chunked\r\n\r\nzz\r\n{}"},
        {"two Host", "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"},
        {"two Origin", "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"
                       "Origin: http://evil.example\r\n\r\n"},
        {"two Authorization", "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer a\r\n"
                              "Authorization: Bearer b\r\n\r\n"},
        /* First lines that are not HTTP (libmicrohttpd closes them without a word). */
        {"a TLS hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
        {"a word and an end of line", "GARBAGE\r\n\r\n"},
        {"a control character in the method", "GE\x01T /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
        {"a method of 40 letters",
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
        {"a space first", " GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
        /* Malformed request lines and headers (libmicrohttpd's answer is an HTML page). */
        {"no version (HTTP/0.9)", "GET /x\r\n\r\n"},
        {"a word after the version", "GET /x HTTP/1.1 extra\r\nHost: 127.0.0.1\r\n\r\n"},
        {"a lowercase version", "GET /x http/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
        {"a bare CR in the line", "GET /x HTTP/1.1\rHost: 127.0.0.1\r\n\r\n"},
        {"two spaces", "GET  /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
        {"a control character in the target", "GET /x\x01y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
        {"a header line without a colon",
         "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n"},
        {"the input ends inside the line", "GET /x HTTP/1.1"},
    };
    int port;
    struct cdt_httpd *h = start(0, &port);

    REQUIRE(h);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[8192];
        int fd = dial(port);
        bool closed;

        REQUIRE(fd >= 0);
        CHECK(send_all(fd, cases[i].raw, strlen(cases[i].raw)));
        if (strcmp(cases[i].name, "the input ends inside the line") == 0)
            CHECK(shutdown(fd, SHUT_WR) == 0);
        closed = read_until_close(fd, buf, sizeof(buf), 5000);
        close(fd);
        if (!closed || count_status_lines(buf) != 1 || strncmp(buf, "HTTP/1.1 400 ", 13) != 0 ||
            !strstr(buf, "\"detail\":\"Bad request: ")) {
            fprintf(stderr, "  %s: closed %d, got:\n%s\n", cases[i].name, closed, buf);
            CHECK(false);
        }
    }
    /* The same server still answers a well-formed request. */
    CHECK_INT(get(port, "/ok", 5000), 200);
    cdt_httpd_free(h);
}

/* Sends raw on a new connection and reads the answer until the close (limit_ms). */
static bool exchange(int port, const char *raw, size_t len, char *buf, size_t cap, int limit_ms)
{
    int fd = dial(port);
    bool closed;

    if (fd < 0)
        return false;
    send_all(fd, raw, len); /* a server that closes early has said why */
    closed = read_until_close(fd, buf, cap, limit_ms);
    close(fd);
    return closed;
}

TEST(chunked_bodies_are_bodies)
{
    static const char two_chunks[] =
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n6;ext=1\r\n{\"a\":1\r\nB\r\n,\"b\":\"xyz\"}\r\n0\r\n"
        "X-Trailer: t\r\n\r\n";
    static const char gzip[] = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                               "gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    static const char endless[] = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                                  "chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n{}";
    char buf[8192], *big;
    size_t n = 0;
    int port;
    struct cdt_httpd *h = start_capped(DEADLINE_MS, 64 * 1024, &port);
    double t0;

    REQUIRE(h);
    /* Two chunks, an extension and a trailer: the handler gets the body. */
    CHECK(exchange(port, two_chunks, sizeof(two_chunks) - 1, buf, sizeof(buf), 5000));
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(buf, "\r\n\r\n{\"a\":1,\"b\":\"xyz\"}") != NULL);
    /* A coding besides chunked: 501, closed. */
    CHECK(exchange(port, gzip, sizeof(gzip) - 1, buf, sizeof(buf), 5000));
    CHECK(strncmp(buf, "HTTP/1.1 501 ", 13) == 0 && count_status_lines(buf) == 1);
    /* Over the cap: 413 as soon as it passes, not at the end of the body. */
    big = malloc(256 * 1024);
    REQUIRE(big);
    n = (size_t)snprintf(big, 256,
                         "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20; i++) { /* 20 chunks of 4 KiB, no last chunk */
        n += (size_t)sprintf(big + n, "1000\r\n");
        memset(big + n, 'x', 4096);
        n += 4096;
        n += (size_t)sprintf(big + n, "\r\n");
    }
    CHECK(exchange(port, big, n, buf, sizeof(buf), 5000));
    free(big);
    CHECK(strncmp(buf, "HTTP/1.1 413 ", 13) == 0 && count_status_lines(buf) == 1);
    /* A chunk announced as 2^64-1 bytes with the head: 413 at once. */
    t0 = cdt_now_ms();
    CHECK(exchange(port, endless, sizeof(endless) - 1, buf, sizeof(buf), 10000));
    CHECK(strncmp(buf, "HTTP/1.1 413 ", 13) == 0 && count_status_lines(buf) == 1);
    CHECK(strstr(buf, "a chunk of 18446744073709551615 bytes") != NULL);
    CHECK(cdt_now_ms() - t0 < DEADLINE_MS - 50);
    /* The same announced after the head, and never ending: 408 at the deadline (MHD
     * shows no chunk sizes). */
    {
        const char *size_line = strstr(endless, "\r\n\r\n") + 4;
        int fd = dial(port);

        REQUIRE(fd >= 0);
        t0 = cdt_now_ms();
        CHECK(send_all(fd, endless, (size_t)(size_line - endless)));
        usleep(100 * 1000);
        CHECK(send_all(fd, size_line, strlen(size_line)));
        CHECK(read_until_close(fd, buf, sizeof(buf), 10000));
        close(fd);
        CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0 && count_status_lines(buf) == 1);
        CHECK(cdt_now_ms() - t0 >= DEADLINE_MS - 50);
    }
    CHECK_INT(get(port, "/ok", 5000), 200);
    cdt_httpd_free(h);
}

TEST(late_requests_and_idle_connections_are_closed)
{
    int port, silent, dribbler, idle;
    struct cdt_httpd *h = start(DEADLINE_MS, &port);
    const char *req = "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[4096];
    bool closed = false;

    REQUIRE(h);
    silent = dial(port);
    dribbler = dial(port);
    idle = dial(port);
    REQUIRE(silent >= 0 && dribbler >= 0 && idle >= 0);
    /* A keep-alive connection after its answer is idle: closed after the deadline. */
    CHECK(send_all(idle, req, strlen(req)));
    read_until_close(idle, buf, sizeof(buf), 200); /* the answer; the connection stays */
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    /* A byte every 100 ms never finishes its headers: cut (bounded wait, 10 s). */
    for (int i = 0; i < 100 && !closed; i++) {
        if (!send_all(dribbler, "X", 1))
            closed = true;
        else
            closed = recv(dribbler, buf, sizeof(buf), MSG_DONTWAIT) == 0;
        usleep(100 * 1000);
    }
    CHECK(closed);
    CHECK(read_until_close(silent, buf, sizeof(buf), 10000));
    CHECK(read_until_close(idle, buf, sizeof(buf), 10000));
    close(silent);
    close(dribbler);
    close(idle);
    cdt_httpd_free(h);
}

/* Writes head, n_pad bytes 'a' and tail into dst (room for all); returns the length. */
static size_t padded(char *dst, const char *head, size_t n_pad, const char *tail)
{
    size_t n = strlen(head);

    memcpy(dst, head, n);
    memset(dst + n, 'a', n_pad);
    memcpy(dst + n + n_pad, tail, strlen(tail));
    return n + n_pad + strlen(tail);
}

/* A connection's first bytes decide before MHD sees them: sent a byte at a time, a
 * request still gets its answer, a TLS hello its 400, and part of a method that stops
 * its 408 at the deadline, counted from the connect. Empty lines before a request
 * line are allowed (RFC 9112 2.2). */
TEST(first_lines_are_judged_as_they_come)
{
    static const char *const dribbled[] = {"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                           "\x16\x03\x01\x02\x00"};
    static const char lead[] =
        "\r\nGET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    int port;
    struct cdt_httpd *h = start(DEADLINE_MS, &port);
    char buf[4096];
    double t0;

    REQUIRE(h);
    for (int k = 0; k < 2; k++) {
        int fd = dial(port);
        bool closed = false;
        size_t len = strlen(dribbled[k]);

        REQUIRE(fd >= 0);
        /* The first five bytes 20 ms apart; the hello is refused at its first byte. */
        for (size_t i = 0; i < (k == 0 ? 5u : 1u) && i < len; i++) {
            CHECK(send_all(fd, dribbled[k] + i, 1));
            usleep(20 * 1000);
        }
        if (k == 0)
            CHECK(send_all(fd, dribbled[k] + 5, len - 5));
        closed = read_until_close(fd, buf, sizeof(buf), k == 0 ? 300 : 5000);
        close(fd);
        if (k == 0) /* answered; the keep-alive connection stays open */
            CHECK(!closed && strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
        else
            CHECK(closed && strncmp(buf, "HTTP/1.1 400 ", 13) == 0 && count_status_lines(buf) == 1);
    }
    CHECK(exchange(port, lead, sizeof(lead) - 1, buf, sizeof(buf), 5000));
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    /* HTTP/2's preface, a request line of 20 KB, headers of 70 KB: 505, 414, 431, each
     * with a {"detail"} (libmicrohttpd's own answers are HTML pages). */
    {
        static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        char *big = malloc(80 * 1024);
        size_t n;

        REQUIRE(big);
        CHECK(exchange(port, h2, sizeof(h2) - 1, buf, sizeof(buf), 5000));
        CHECK(strncmp(buf, "HTTP/1.1 505 ", 13) == 0 && strstr(buf, "{\"detail\":\"HTTP version"));
        n = padded(big, "GET /", 20 * 1024, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        CHECK(exchange(port, big, n, buf, sizeof(buf), 5000));
        CHECK(strncmp(buf, "HTTP/1.1 414 ", 13) == 0 && strstr(buf, "{\"detail\":"));
        n = padded(big, "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ", 70 * 1024, "\r\n\r\n");
        CHECK(exchange(port, big, n, buf, sizeof(buf), 5000));
        CHECK(strncmp(buf, "HTTP/1.1 431 ", 13) == 0 && strstr(buf, "{\"detail\":"));
        free(big);
    }
    /* "GE", then the end of its input: 400 at once, not at the deadline. */
    {
        int fd = dial(port);

        REQUIRE(fd >= 0);
        t0 = cdt_now_ms();
        CHECK(send_all(fd, "GE", 2));
        CHECK(shutdown(fd, SHUT_WR) == 0);
        CHECK(read_until_close(fd, buf, sizeof(buf), 5000));
        close(fd);
        CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
        CHECK(cdt_now_ms() - t0 < DEADLINE_MS - 50); /* before the deadline */
    }
    /* "GE", then nothing: 408 at the deadline. */
    t0 = cdt_now_ms();
    CHECK(exchange(port, "GE", 2, buf, sizeof(buf), 5000));
    CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0);
    CHECK(cdt_now_ms() - t0 >= DEADLINE_MS - 50);
    CHECK_INT(get(port, "/ok", 5000), 200);
    cdt_httpd_free(h);
}

/* A request line that comes late, then headers a byte every 100 ms: the deadline
 * counts from the connect, not from when the acceptor handed the connection to MHD.
 * With a 2 s deadline and the line at 1.5 s, the close comes near 2 s (from the
 * connect), not near 3.5 s (from the handoff): the bound lies between, 0.75 s from each. */
TEST(deadlines_count_from_the_connect)
{
    enum { DEADLINE = 2000, LINE_AT = 1500 };
    int port, fd;
    struct cdt_httpd *h = start(DEADLINE, &port);
    const char *line = "GET /ok HTTP/1.1\r\n";
    char buf[4096];
    bool closed = false;
    double t0;

    REQUIRE(h);
    fd = dial(port);
    REQUIRE(fd >= 0);
    t0 = cdt_now_ms();
    usleep(LINE_AT * 1000);
    CHECK(send_all(fd, line, strlen(line)));
    while (!closed && cdt_now_ms() - t0 < 3 * DEADLINE) {
        usleep(100 * 1000);
        closed = !send_all(fd, "X", 1) || recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0;
    }
    close(fd);
    CHECK(closed);
    CHECK(cdt_now_ms() - t0 < DEADLINE + LINE_AT / 2); /* 2.75 s */
    cdt_httpd_free(h);
}

TEST(answers_in_progress_have_no_deadline)
{
    int port;
    struct cdt_httpd *h = start(DEADLINE_MS, &port);
    const char *stream_req = "GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char buf[4096];
    int fd, pieces = 0;

    REQUIRE(h);
    CHECK_INT(get(port, "/slow", 10000), 200);
    fd = dial(port);
    REQUIRE(fd >= 0);
    CHECK(send_all(fd, stream_req, strlen(stream_req)));
    CHECK(read_until_close(fd, buf, sizeof(buf), 10000));
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    for (const char *p = buf; (p = strstr(p, "x\n")); p++)
        pieces++;
    CHECK_INT(pieces, 5); /* all of it, though it took longer than the deadline */
    close(fd);
    cdt_httpd_free(h);
}

/* A large body gets more time than the request deadline: a second per MiB. */
TEST(large_bodies_get_more_time)
{
    enum { LEN = 4 << 20, PIECES = 8 };
    int port, fd;
    struct cdt_httpd *h = start(DEADLINE_MS, &port);
    char head[128], buf[4096];
    char *body = malloc(LEN);

    REQUIRE(h && body);
    memset(body, ' ', LEN);
    fd = dial(port);
    REQUIRE(fd >= 0);
    snprintf(head, sizeof(head),
             "POST /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n", LEN);
    CHECK(send_all(fd, head, strlen(head)));
    for (int i = 0; i < PIECES; i++) { /* 1.6 s in all, past the 0.6 s deadline */
        usleep(200 * 1000);
        CHECK(send_all(fd, body + (size_t)i * (LEN / PIECES), LEN / PIECES));
    }
    read_until_close(fd, buf, sizeof(buf), 2000);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    close(fd);
    free(body);
    cdt_httpd_free(h);
}

TEST(silent_clients_leave_room_for_others)
{
    enum { N = 300 };
    static int fds[N];
    int port, n = 0;
    struct cdt_httpd *h = start(0, &port); /* the default deadline: eviction, not it */

    REQUIRE(h);
    for (int i = 0; i < N; i++) {
        struct sockaddr_in a = {0};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        if (fd >= 0)
            fds[n++] = fd;
    }
    CHECK(n > 200);
    for (int i = 0; i < 3; i++)
        CHECK_INT(get(port, "/ok", 10000), 200);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    cdt_httpd_free(h);
}

TEST(half_closed_client_is_not_gone)
{
    int port, fd;
    struct cdt_httpd *h = start(0, &port);
    const char *req = "POST /wait HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}";
    char buf[4096];

    REQUIRE(h);
    fd = dial(port);
    REQUIRE(fd >= 0);
    CHECK(send_all(fd, req, strlen(req)));
    CHECK(shutdown(fd, SHUT_WR) == 0); /* what `nc -N` does: end of input */
    CHECK(read_until_close(fd, buf, sizeof(buf), 10000));
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(buf, "{\"gone\":0}") != NULL);
    close(fd);

    /* A client that closes its socket is gone. */
    atomic_store(&gone_seen, -1);
    fd = dial(port);
    REQUIRE(fd >= 0);
    CHECK(send_all(fd, req, strlen(req)));
    usleep(100 * 1000);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&gone_seen) < 0; i++)
        usleep(10 * 1000);
    CHECK_INT(atomic_load(&gone_seen), 1);
    cdt_httpd_free(h);
}

/* Whether this kernel gives a thread the slice it asks for (EEVDF's custom slices,
 * Linux 6.12 on), and the server would ask (it leaves a thread that is not
 * SCHED_OTHER alone): asked on a thread of its own, with its nice value kept, and
 * read back from /proc. */
static void *probe_slice(void *arg)
{
    struct {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t prio;
        uint64_t runtime, deadline, period;
    } a = {.size = sizeof(a), .runtime = 200000};

    errno = 0;
    a.nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    *(bool *)arg = errno == 0 && sched_getscheduler(0) == SCHED_OTHER &&
                   syscall(SYS_sched_setattr, 0, &a, 0u) == 0 &&
                   slice_of((long)syscall(SYS_gettid)) == 200000;
    return NULL;
}

/* The HTTP threads (the acceptor, MHD's and each connection's) ask for a 100 us slice,
 * so that an answer does not wait behind busy threads for the rest of theirs; a
 * thread a handler starts gets the kernel's default again. */
TEST(http_threads_ask_for_a_short_slice)
{
    bool custom = false;
    pthread_t t;
    int port, fd, n = 0;
    struct cdt_httpd *h;
    const char *req = "GET /slice HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char buf[4096], *body;
    DIR *d;
    struct dirent *e;

    REQUIRE(pthread_create(&t, NULL, probe_slice, &custom) == 0);
    pthread_join(t, NULL);
    if (!custom) {
        fprintf(stderr, "  skipped: this kernel has no per-thread slices (before 6.12)\n");
        return;
    }
    h = start(0, &port);
    REQUIRE(h);
    fd = dial(port);
    REQUIRE(fd >= 0);
    CHECK(send_all(fd, req, strlen(req)));
    CHECK(read_until_close(fd, buf, sizeof(buf), 10000));
    close(fd);
    body = strstr(buf, "\r\n\r\n");
    REQUIRE(body);
    body += 4;
    CHECK(strtoll(body, &body, 10) == 100000);
    CHECK(strtoll(body, NULL, 10) > 100000); /* a thread it starts: the default */
    REQUIRE((d = opendir("/proc/self/task")));
    while ((e = readdir(d))) {
        char path[300], comm[32] = "";
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        if (e->d_name[0] == '.' || !(f = fopen(path, "r")))
            continue;
        if (fgets(comm, sizeof(comm), f) &&
            (strncmp(comm, "MHD-listen", 10) == 0 || strncmp(comm, "cdt-accept", 10) == 0)) {
            CHECK_INT(slice_of(strtol(e->d_name, NULL, 10)), 100000);
            n++;
        }
        fclose(f);
    }
    closedir(d);
    CHECK_INT(n, 2); /* the acceptor, and MHD's thread that starts connections */
    cdt_httpd_free(h);
}

int main(void)
{
    RUN(ambiguous_requests_get_one_400_and_a_close);
    RUN(chunked_bodies_are_bodies);
    RUN(late_requests_and_idle_connections_are_closed);
    RUN(first_lines_are_judged_as_they_come);
    RUN(deadlines_count_from_the_connect);
    RUN(answers_in_progress_have_no_deadline);
    RUN(large_bodies_get_more_time);
    RUN(silent_clients_leave_room_for_others);
    RUN(half_closed_client_is_not_gone);
    RUN(http_threads_ask_for_a_short_slice);
    return TEST_END();
}
