/* Fuzz target: the sidecar's HTTP request handling (src/sidecar: routes, JSON
 * bodies of /generate, /load and /v1/chat/completions, SSE streams) through the real
 * server (httpd.c) on loopback, with a fake backend as in tests/unit/test_sidecar_http.c.
 *
 * The first byte picks what the rest is:
 *   0: a raw request, sent as it is, then the write side shut (end of input);
 *   1: the body of POST /generate, 2: of POST /load, 3: of POST
 *      /v1/chat/completions, each sent with a correct Content-Length.
 * Whatever the server answers is read to its end; a crash, a leak or an answer that
 * never ends (the fuzzer's -timeout) fails. The server lives for the whole run.
 * The client side is fuzz_http.h's (EINTR, CODICTATE_FUZZ_SIGNAL_MS). */
#include "backend.h"
#include "codictate/err.h"
#include "fuzz_http.h"
#include "sidecar.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* /tokenize: a token per 4 bytes, as the engine counts from any thread. */
static int fake_count_tokens(struct cdt_backend *be, const char *text, size_t len, int *n)
{
    (void)be;
    (void)text;
    *n = (int)(len / 4);
    return 0;
}

static void fake_free(struct cdt_backend *be)
{
    (void)be;
}

static const struct cdt_backend_ops fake_ops = {.load = fake_load,
                                                .unload = fake_unload,
                                                .generate = fake_generate,
                                                .count_tokens = fake_count_tokens,
                                                .free = fake_free};

static struct cdt_backend fake = {.ops = &fake_ops};
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
    fuzz_signal_storm();
    if (cdt_sidecar_load_async(sidecar, "/models/fake.gguf") != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {"/generate", "/load", "/v1/chat/completions"};
    static char buf[65536];
    char head[256];
    int fd, mode;

    if (!sidecar)
        start();
    if (size < 1)
        return 0;
    mode = data[0] % 4;
    data++;
    size--;

    fd = fuzz_connect("fuzz_sidecar_http", port);
    if (mode == 0) {
        fuzz_send_all(fd, data, size);
        shutdown(fd, SHUT_WR);
    } else {
        int n = snprintf(head, sizeof(head),
                         "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         paths[mode - 1], port, size);

        fuzz_send_all(fd, head, (size_t)n);
        fuzz_send_all(fd, data, size);
    }
    /* The answer, to its end (the server closes). */
    while (fuzz_recv("fuzz_sidecar_http", fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
    return 0;
}
