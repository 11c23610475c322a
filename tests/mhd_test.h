/* What the test servers (tests/fakehub, tests/stubllm) share around libmicrohttpd:
 * the request body collected from the upload calls, and the daemon on a free
 * loopback port with one thread per connection. Header-only: each server is one file. */
#ifndef CDT_TEST_MHD_H
#define CDT_TEST_MHD_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct test_req {
    char *body; /* NUL-terminated when len > 0 */
    size_t len;
    bool too_big; /* more than the handler's limit arrived; body stops growing */
};

/* The start of an access handler. The first call of a request and each upload chunk
 * are consumed here: then it returns true with *ret set (the handler returns it).
 * Otherwise the whole body is in *rq and the handler answers. */
static inline bool test_req_collect(void **con_cls, const char *upload, size_t *upload_size,
                                    size_t max, struct test_req **rq, enum MHD_Result *ret)
{
    struct test_req *r = *con_cls;

    *ret = MHD_YES;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            *ret = MHD_NO;
        *con_cls = r;
        return true;
    }
    *rq = r;
    if (!*upload_size)
        return false;
    if (r->len + *upload_size > max) {
        r->too_big = true;
    } else {
        char *nb = realloc(r->body, r->len + *upload_size + 1);

        if (!nb) {
            *ret = MHD_NO;
            return true;
        }
        r->body = nb;
        memcpy(r->body + r->len, upload, *upload_size);
        r->len += *upload_size;
        r->body[r->len] = '\0';
    }
    *upload_size = 0;
    return true;
}

/* MHD_OPTION_NOTIFY_COMPLETED: frees the request's body. */
static inline void test_req_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                                      enum MHD_RequestTerminationCode toe)
{
    struct test_req *r = *con_cls;

    (void)cls, (void)c, (void)toe;
    if (r) {
        free(r->body);
        free(r);
        *con_cls = NULL;
    }
}

/* Starts `handler` on 127.0.0.1 at a free port (*port), a thread per connection, 30 s
 * connection timeout. NULL when it cannot. */
static inline struct MHD_Daemon *test_daemon_start(MHD_AccessHandlerCallback handler, void *cls,
                                                   int *port)
{
    struct sockaddr_in sin = {0};
    const union MHD_DaemonInfo *info;
    struct MHD_Daemon *d;

    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, handler, cls, MHD_OPTION_SOCK_ADDR, &sin,
                         MHD_OPTION_NOTIFY_COMPLETED, test_req_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                         /* room for a fake server's oversized headers (fault tests) */
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(1024 * 1024), MHD_OPTION_END);
    info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    *port = info ? info->port : 0;
    return d;
}

#endif
