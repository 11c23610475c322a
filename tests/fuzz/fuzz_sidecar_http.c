/* Fuzz target: the sidecar's HTTP request handling (src/sidecar: routes, JSON
 * bodies of /generate, /load and /v1/chat/completions, SSE streams) through the real
 * server (httpd.c) on loopback, with a fake backend as in tests/unit/test_sidecar_http.c.
 *
 * The first byte picks what the rest is:
 *   0: a raw request, sent as it is, then the write side shut (end of input);
 *   1: the body of POST /generate, 2: of POST /load, 3: of POST
 *      /v1/chat/completions, each sent with a correct Content-Length.
 * Whatever the server answers is read to its end; a crash, a leak or an answer that
 * never ends (the fuzzer's -timeout) fails. The server lives for the whole run. */
#include "backend.h"
#include "codictate/err.h"
#include "sidecar.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A backend that loads any path and answers with a few pieces of text (streamed
 * through on_text when the request streams) or the prompt echoed. */
static int fake_load(struct cdt_backend *be, const char *path, int n_ctx,
                     struct cdt_model_info *info, char *errmsg, size_t errcap)
{
    (void)be;
    if (strstr(path, "missing")) {
        snprintf(errmsg, errcap, "no such file: %s", path);
        return CDT_ENOTFOUND;
    }
    snprintf(info->path, sizeof(info->path), "%s", path);
    snprintf(info->arch, sizeof(info->arch), "qwen3");
    snprintf(info->name, sizeof(info->name), "fake");
    info->n_ctx = n_ctx;
    info->n_ctx_train = 40960;
    info->n_params = 1000;
    info->file_size = 2000;
    return 0;
}

static void fake_unload(struct cdt_backend *be)
{
    (void)be;
}

static int fake_generate(struct cdt_backend *be, const struct cdt_gen_params *p,
                         struct cdt_gen_result *r)
{
    const char *prompt = p->n_messages > 0 ? p->messages[p->n_messages - 1].content : p->prompt;
    char buf[256];

    (void)be;
    memset(r, 0, sizeof(*r));
    if (!prompt)
        prompt = "";
    for (int i = 0; p->on_text && i < 3; i++) {
        static const char *const pieces[] = {"<think>x</think>", " Hello", " world."};

        if (p->on_logprobs) {
            struct cdt_token_logprobs lp = {.token = {pieces[i], strlen(pieces[i]), -0.5f}};

            for (int k = 0; k < p->top_logprobs && k < CDT_MAX_TOP_LOGPROBS; k++)
                lp.top[k] = (struct cdt_token_prob){"alt", 3, -1.0f - (float)k};
            lp.n_top =
                p->top_logprobs < CDT_MAX_TOP_LOGPROBS ? p->top_logprobs : CDT_MAX_TOP_LOGPROBS;
            p->on_logprobs(&lp, p->user_data);
        }
        if (p->on_text(pieces[i], strlen(pieces[i]), p->user_data)) {
            r->stopped_by_callback = true;
            r->tokens_generated = i + 1;
            r->finish_reason = "stop";
            return 0;
        }
    }
    if (p->on_text) {
        r->tokens_generated = 3;
        r->finish_reason = "length";
        r->prompt_format_mode = "chat_template";
        r->timings.prompt_tokens = 7;
        return 0;
    }
    snprintf(buf, sizeof(buf), "<think>\nhidden\n</think>\n\n  Echo: %.100s\n", prompt);
    r->text = strdup(buf);
    r->tokens_generated = 5;
    r->finish_reason = "stop";
    r->prompt_format_mode = "chat_template";
    r->timings.prompt_tokens = 7;
    r->timings.generated_tokens = 5;
    return 0;
}

static void fake_free(struct cdt_backend *be)
{
    (void)be;
}

static const struct cdt_backend_ops fake_ops = {
    .load = fake_load, .unload = fake_unload, .generate = fake_generate, .free = fake_free};

static struct cdt_backend fake = {.ops = &fake_ops};
/* CODICTATE_FUZZ_HANG_OK=1: an answer that never ends is reported, not fatal (the
 * ctest run, while the hang the long runs found is open: README, Reliability). */
static bool hang_ok;
static struct cdt_sidecar *sidecar;
static int port;

static void start(void)
{
    struct cdt_sidecar_params p = cdt_sidecar_default_params();
    char err[256];

    p.backend = &fake;
    p.port_min = 20000 + (getpid() % 20000);
    p.port_max = p.port_min + 500;
    if (cdt_sidecar_new(&p, &sidecar, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_sidecar_http: %s\n", err);
        abort();
    }
    port = cdt_sidecar_port(sidecar);
    hang_ok =
        getenv("CODICTATE_FUZZ_HANG_OK") && strcmp(getenv("CODICTATE_FUZZ_HANG_OK"), "1") == 0;
    if (cdt_sidecar_load_async(sidecar, "/models/fake.gguf") != 0)
        abort();
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server closed early: fine, read what it said */
        p += w;
        n -= (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/generate", "/load", "/v1/chat/completions"};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    char head[256], buf[65536];
    int fd, mode;

    if (!sidecar)
        start();
    if (size < 1)
        return 0;
    mode = data[0] % 4;
    data++;
    size--;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        /* libFuzzer's timer signal may interrupt it: the connect goes on. */
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = errno;
        socklen_t len = sizeof(err);

        if (err != EINTR || poll(&pfd, 1, 5000) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fprintf(stderr, "fuzz_sidecar_http: connect: %s\n", strerror(err));
            abort();
        }
    }
    if (mode == 0) {
        send_all(fd, (const char *)data, size);
        shutdown(fd, SHUT_WR);
    } else {
        int n = snprintf(head, sizeof(head),
                         "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         paths[mode - 1], port, size);

        send_all(fd, head, (size_t)n);
        send_all(fd, (const char *)data, size);
    }
    /* The answer, to its end (the server closes). */
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;
        int n;

        while ((n = poll(&pfd, 1, 20000)) < 0 && errno == EINTR)
            ;
        if (n <= 0) {
            fprintf(stderr, "fuzz_sidecar_http: no end of answer within 20 s\n");
            if (!hang_ok)
                abort();
            break;
        }
        r = recv(fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
    }
    close(fd);
    return 0;
}
