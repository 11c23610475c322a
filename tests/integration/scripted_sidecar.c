/* A sidecar whose model says what the test wrote: the real sidecar server
 * (src/sidecar/sidecar.c and openai.c: HTTP, routes, worker, streaming, the
 * /generate cleaning and "raw") on a scripted backend at the engine seam
 * (backend.h), started the way the manager starts `codictate sidecar`.
 *
 * Why: a generated test model has random weights and produces noise, so no real
 * model can be made to answer "The Output: section of the report is wrong." on
 * cue. Behind the seam everything the refine path touches is the product's code;
 * only the token generator is replaced.
 *
 *   scripted_sidecar sidecar [--quiet] [--ctx N] [--threads N]
 *
 * Each generation answers the current contents of $CDT_SCRIPTED_OUTPUT (a file
 * the test rewrites between requests), in pieces of at most 4 bytes cut at UTF-8
 * boundaries, as an engine streams tokens. Any readable file loads as a model.
 * $CDT_SCRIPTED_DELAY_MS (optional) makes each piece take that long, as a slow
 * model would; a generation the server cancels (its client gone) then appends a
 * line "cancelled after N pieces" to $CDT_SCRIPTED_CANCEL_LOG (optional).
 * $CDT_SCRIPTED_SPEED "P,D" (optional): the load reports P ms per prompt token and
 * D ms per generated token as the speeds it measured. $CDT_SCRIPTED_PIECE_BYTES
 * (optional, 1 to 16, default 4): the bytes of a piece, so of a "token".
 * $CDT_SCRIPTED_TOKEN_BYTES (optional, 1 to 16): /tokenize counts a token per that
 * many bytes; unset, /tokenize answers 501.
 * Prints CODICTATE_SIDECAR_PORT=<n>, honours CODICTATE_SIDECAR_TOKEN and
 * CODICTATE_PARENT_FD, stops on SIGTERM/SIGINT. */
#include "../../src/sidecar/sidecar.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SCRIPT_MAX (64 * 1024) /* longest scripted answer, bytes */

struct scripted {
    struct cdt_backend base;
    bool loaded;
};

static int scripted_load(struct cdt_backend *be, const char *path, int n_ctx,
                         struct cdt_model_info *info, char *errmsg, size_t errcap)
{
    struct scripted *b = (struct scripted *)be;

    b->loaded = false;
    if (access(path, R_OK) != 0) {
        snprintf(errmsg, errcap, "%s: %s", path, strerror(errno));
        return CDT_ENOTFOUND;
    }
    snprintf(info->path, sizeof(info->path), "%s", path);
    snprintf(info->arch, sizeof(info->arch), "scripted");
    snprintf(info->name, sizeof(info->name), "scripted");
    snprintf(info->desc, sizeof(info->desc), "scripted test backend");
    info->n_ctx = n_ctx;
    info->n_ctx_train = n_ctx;
    {
        /* The speeds it says it measured at load, as the engine does. */
        const char *speed = getenv("CDT_SCRIPTED_SPEED");

        if (!speed || sscanf(speed, "%lf,%lf", &info->prefill_ms, &info->decode_ms) != 2)
            info->prefill_ms = info->decode_ms = 0;
    }
    b->loaded = true;
    return 0;
}

static void scripted_unload(struct cdt_backend *be)
{
    ((struct scripted *)be)->loaded = false;
}

/* The scripted answer (caller frees); NULL when the file cannot be read. */
static char *read_script(char *errmsg, size_t errcap)
{
    const char *path = getenv("CDT_SCRIPTED_OUTPUT");
    FILE *f = path ? fopen(path, "rb") : NULL;
    char *text = malloc(SCRIPT_MAX + 1);
    size_t n = 0;

    if (!f || !text) {
        snprintf(errmsg, errcap, "no script: $CDT_SCRIPTED_OUTPUT=%s", path ? path : "(unset)");
        if (f)
            fclose(f);
        free(text);
        return NULL;
    }
    n = fread(text, 1, SCRIPT_MAX, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The generation was cancelled after n pieces: say so where the test looks. */
static void log_cancel(int n)
{
    const char *path = getenv("CDT_SCRIPTED_CANCEL_LOG");
    FILE *f = path && *path ? fopen(path, "a") : NULL;

    if (f) {
        fprintf(f, "cancelled after %d pieces\n", n);
        fclose(f);
    }
}

static int scripted_generate(struct cdt_backend *be, const struct cdt_gen_params *p,
                             struct cdt_gen_result *r)
{
    struct scripted *b = (struct scripted *)be;
    const char *delay_env = getenv("CDT_SCRIPTED_DELAY_MS");
    const char *piece_env = getenv("CDT_SCRIPTED_PIECE_BYTES");
    long delay_ms = delay_env ? atol(delay_env) : 0;
    size_t piece =
        piece_env && atoi(piece_env) >= 1 && atoi(piece_env) <= 16 ? (size_t)atoi(piece_env) : 4;
    char *text;
    size_t len, at = 0;

    memset(r, 0, sizeof(*r));
    if (!b->loaded)
        return CDT_ESTATE;
    text = read_script(r->errmsg, sizeof(r->errmsg));
    if (!text)
        return CDT_EENGINE;
    len = strlen(text);
    r->prompt_format_mode = "chat_template";
    r->finish_reason = "stop";
    r->timings.sampler = "cpu";
    r->timings.prompt_tokens = (int)(strlen(p->prompt ? p->prompt : "") / 4) + 1;
    while (at < len) {
        size_t n = len - at < piece ? len - at : piece;

        while (at + n < len && ((unsigned char)text[at + n] & 0xC0) == 0x80)
            n++; /* never split a character */
        for (long waited = 0; waited < delay_ms; waited += 5) {
            struct timespec ts = {0, 5 * 1000000L};

            if (p->should_cancel && p->should_cancel(p->user_data))
                break;
            nanosleep(&ts, NULL);
        }
        if (p->should_cancel && p->should_cancel(p->user_data)) {
            free(text);
            if (delay_ms > 0)
                log_cancel(r->tokens_generated);
            return CDT_ECANCELED;
        }
        r->tokens_generated++;
        if (p->on_text && p->on_text(text + at, n, p->user_data)) {
            r->stopped_by_callback = true;
            break;
        }
        at += n;
    }
    r->timings.generated_tokens = r->tokens_generated;
    free(text);
    return 0;
}

/* $CDT_SCRIPTED_TOKEN_BYTES (1 to 16): /tokenize counts a token per that many bytes
 * (rounded up); unset, the backend cannot count (501), as an older sidecar. */
static int scripted_count_tokens(struct cdt_backend *be, const char *text, size_t len, int *n)
{
    const char *env = getenv("CDT_SCRIPTED_TOKEN_BYTES");
    int k = env ? atoi(env) : 0;

    (void)text;
    *n = 0;
    if (k < 1 || k > 16)
        return CDT_EUNSUPPORTED;
    if (!((struct scripted *)be)->loaded)
        return CDT_ESTATE;
    *n = (int)((len + (size_t)k - 1) / (size_t)k);
    return 0;
}

static void scripted_free(struct cdt_backend *be)
{
    (void)be;
}

static const struct cdt_backend_ops scripted_ops = {
    .load = scripted_load,
    .unload = scripted_unload,
    .generate = scripted_generate,
    .count_tokens = scripted_count_tokens,
    .free = scripted_free,
};

/* End-of-file on the manager's pipe: it is gone, so are we. */
static void *parent_watch(void *arg)
{
    char c;

    while (read((int)(intptr_t)arg, &c, 1) > 0 || errno == EINTR)
        ;
    kill(getpid(), SIGTERM);
    return NULL;
}

/* s as a whole number in [0, max], or 0. */
static long number(const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 0 || v > max ? 0 : v;
}

int main(int argc, char **argv)
{
    struct scripted be = {.base = {.ops = &scripted_ops}};
    struct cdt_sidecar_params sp = cdt_sidecar_default_params();
    struct cdt_sidecar *s = NULL;
    const char *token = getenv("CODICTATE_SIDECAR_TOKEN"), *parent = getenv("CODICTATE_PARENT_FD");
    char err[512];
    sigset_t set;
    pthread_t th;
    long fd;
    int sig = 0;

    if (argc < 2 || strcmp(argv[1], "sidecar") != 0) {
        fprintf(stderr, "usage: scripted_sidecar sidecar [options of codictate sidecar]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], "--ctx") == 0)
            sp.n_ctx = (int)number(argv[i + 1], 1 << 20);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sp.port_min = CDT_SIDECAR_PORT_MIN;
    sp.port_max = CDT_SIDECAR_PORT_MAX;
    sp.token = token && *token ? token : NULL;
    sp.backend = &be.base;
    if (cdt_sidecar_new(&sp, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "scripted_sidecar: %s\n", err);
        return 1;
    }
    printf("CODICTATE_SIDECAR_PORT=%d\n", cdt_sidecar_port(s));
    fflush(stdout);
    fd = parent ? number(parent, 1024) : 0;
    if (fd > 2 && pthread_create(&th, NULL, parent_watch, (void *)(intptr_t)fd) == 0)
        pthread_detach(th);
    sigwait(&set, &sig);
    cdt_sidecar_free(s);
    return 0;
}
