/* step_cost: where one decode step's time goes, for the gap between the sidecar's
 * decode rate and llama-bench's back-to-back loop (issue 4, bench/RESULTS.md "CUDA").
 * Not built by CMake; bench/cuda_bench.sh stepcost builds and runs it on the GPU:
 *
 *   E=<engine prefix>   (shared engines: CODICTATE_CUDA=1 or CODICTATE_ENGINES_DL=1)
 *   cc -O2 -fopenmp -D_GNU_SOURCE -o /tmp/step_cost bench/step_cost.c src/sidecar/sampler.c \
 *      -Iinclude -Isrc/sidecar -I$E/include -L$E/lib -Wl,-rpath,$E/lib -lllama -lggml \
 *      -lggml-base -lm
 *   (run it from $E/bin, where the backend modules are)
 *   /tmp/step_cost MODEL [DEPTH=478] [N=150] [REPS=7]
 *
 * Loads MODEL with every layer on the GPU (flash attention on, n_ubatch 512), and per
 * round and mode evaluates a DEPTH-token prompt, then times N single-token decodes.
 * Modes (interleaved per round; the median ms per token of REPS rounds is printed):
 *   bench   llama_decode(llama_batch_get_one(token)) + llama_synchronize: llama-bench
 *   batch   the same with an explicit batch (positions, sequence, one output): the engine
 *   logits  + llama_get_logits_ith, not read
 *   copy    + a memcpy of the logits (what reading them from pinned memory costs)
 *   argmax8 + a plain C argmax with 8 independent maxima, then the index in one pass
 *   ours    + the sidecar's greedy pass (src/sidecar/sampler.c max_logit), one thread
 *   ours4   + the same over 4 threads, as the engine does with the model on a GPU
 *   prompt  a prompt's llama_decode returns before its work is done: the time from its
 *           return to llama_synchronize's (reported once, ms) */
#include "sampler_int.h"

#include <llama.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { M_BENCH, M_BATCH, M_LOGITS, M_COPY, M_ARGMAX8, M_OURS, M_OURS4, N_MODES };
static const char *const mode_name[N_MODES] = {"bench",   "batch", "logits", "copy",
                                               "argmax8", "ours",  "ours4"};

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void quiet(enum ggml_log_level l, const char *t, void *u)
{
    (void)l;
    (void)t;
    (void)u;
}

static int argmax8(const float *z, int n)
{
    float m[8];
    int i = 0;

    for (int j = 0; j < 8; j++)
        m[j] = -INFINITY;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m[j] = z[i + j] > m[j] ? z[i + j] : m[j];
    for (int j = 1; j < 8; j++)
        m[0] = m[j] > m[0] ? m[j] : m[0];
    for (; i < n; i++)
        m[0] = z[i] > m[0] ? z[i] : m[0];
    for (i = 0; i < n; i++)
        if (z[i] == m[0])
            return i;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int depth = argc > 2 ? atoi(argv[2]) : 478, n = argc > 3 ? atoi(argv[3]) : 150;
    int reps = argc > 4 ? atoi(argv[4]) : 7, n_vocab, sink = 0;
    struct llama_model_params mp = llama_model_default_params();
    struct llama_context_params cp = llama_context_default_params();
    struct llama_model *model;
    struct llama_context *ctx;
    struct llama_batch b;
    llama_token *prompt;
    float *copy;
    double *ms[N_MODES], tail = 1e9;
    struct dist d = {0};

    if (argc < 2 || depth < 1 || n < 1 || reps < 1) {
        fprintf(stderr, "usage: step_cost MODEL [DEPTH] [N] [REPS]\n");
        return 2;
    }
    llama_log_set(quiet, NULL);
    ggml_backend_load_all();
    mp.n_gpu_layers = 999;
    model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "step_cost: cannot load %s\n", argv[1]);
        return 1;
    }
    cp.n_ctx = (uint32_t)(depth + n + 256);
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_seq_max = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    cp.no_perf = true;
    ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "step_cost: cannot create a context\n");
        return 1;
    }
    n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    prompt = malloc(sizeof(*prompt) * (size_t)depth);
    copy = malloc(sizeof(*copy) * (size_t)n_vocab);
    d.n_vocab = n_vocab;
    d.n_chunks = (n_vocab + CDT_CHUNK - 1) / CDT_CHUNK;
    d.chunk_max = malloc(sizeof(*d.chunk_max) * (size_t)d.n_chunks);
    for (int i = 0; i < N_MODES; i++)
        ms[i] = calloc((size_t)reps, sizeof(double));
    if (!prompt || !copy || !d.chunk_max)
        return 1;
    for (int i = 0; i < depth; i++)
        prompt[i] = 1000 + (i * 7919) % (n_vocab - 1000);
    b = llama_batch_init(1, 0, 1);
    srand(1);
    for (int r = -1; r < reps; r++) /* round -1: warm-up, not counted */
        for (int m = 0; m < N_MODES; m++) {
            double t0, t1;
            llama_token tok = prompt[depth - 1];

            llama_memory_clear(llama_get_memory(ctx), true);
            for (int p = 0; p < depth; p += 512) {
                int k = depth - p < 512 ? depth - p : 512;

                llama_decode(ctx, llama_batch_get_one(prompt + p, k));
            }
            t0 = now_ms();
            llama_synchronize(ctx);
            t1 = now_ms();
            if (r >= 0 && t1 - t0 < tail)
                tail = t1 - t0;
            t0 = t1;
            for (int i = 0; i < n; i++) {
                const float *z;

                if (m == M_BENCH) {
                    if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0)
                        return 1;
                } else {
                    b.n_tokens = 1;
                    b.token[0] = tok;
                    b.pos[0] = depth + i;
                    b.n_seq_id[0] = 1;
                    b.seq_id[0][0] = 0;
                    b.logits[0] = 1;
                    if (llama_decode(ctx, b) != 0)
                        return 1;
                }
                llama_synchronize(ctx);
                tok = (llama_token)(rand() % n_vocab);
                if (m < M_LOGITS)
                    continue;
                z = llama_get_logits_ith(ctx, -1);
                if (m == M_COPY) {
                    memcpy(copy, z, sizeof(*z) * (size_t)n_vocab);
                    sink += copy[i % n_vocab] > 0.0f;
                } else if (m == M_ARGMAX8) {
                    sink += argmax8(z, n_vocab);
                } else {
                    int32_t at;

                    d.scan_threads = m == M_OURS4 ? 4 : 1;
                    max_logit(&d, z, &at);
                    sink += at;
                }
            }
            t1 = now_ms();
            if (r >= 0)
                ms[m][r] = (t1 - t0) / n;
        }
    printf("step_cost %s: depth %d, %d tokens, %d rounds, vocabulary %d; ms per token, "
           "median (min):\n",
           argv[1], depth, n, reps, n_vocab);
    for (int m = 0; m < N_MODES; m++) {
        qsort(ms[m], (size_t)reps, sizeof(double), cmp_double);
        printf("  %-8s %.4f (%.4f)  %.1f tok/s\n", mode_name[m], ms[m][reps / 2], ms[m][0],
               1e3 / ms[m][reps / 2]);
    }
    printf("  a %d-token prompt's work after llama_decode returned: %.2f ms (min)\n", depth, tail);
    fprintf(stderr, "(%d)\n", sink);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
