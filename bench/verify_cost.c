/* verify_cost: what one decode of b tokens costs against one of a single token, the
 * price of verifying a draft of b - 1 tokens (issue 15 §4), through the llama API as
 * the engine calls it; the prior table of src/sidecar/speculative.c came from its
 * first column. Not built by CMake:
 *
 *   E=$(scripts/engines.sh)      (static CPU engines)
 *   cc -O2 -fopenmp -D_GNU_SOURCE -o /tmp/verify_cost bench/verify_cost.c \
 *      src/sidecar/sampler.c -Iinclude -Isrc/sidecar -I$E/include -L$E/lib \
 *      -Wl,--start-group -lllama -lggml -lggml-cpu -lggml-base -Wl,--end-group -lstdc++ -lm
 *   (shared CUDA engines, bench/cuda_bench.sh vrows: -lllama -lggml -lggml-base with an
 *   rpath, run from the prefix's bin/, where the backend modules are)
 *   /tmp/verify_cost MODEL N_CTX DEPTH REPS [NGL=0] [THREADS=2]
 *
 * A DEPTH-token prompt is evaluated once; then, per batch size b (1, 2, 3, 4, 6, 8, 12,
 * 16), REPS steps as a generation takes them: b tokens decoded at the current depth,
 * the KV cache trimmed back to one new token (as after a rejected draft), the depth
 * one more. Per mode, the fastest and the median ms of its steps, and that ÷ b = 1's:
 *   all    logits for every row, as a verification asks (fastest and median)
 *   last   logits for the last row only (llama-bench's batches): the rows' own share
 *          of the cost is the difference
 *   alt    steps alternating a single token with b tokens (every step a new shape, as
 *          drafts of varying length make them): the b-token steps' median
 *   scan   logits for every row, each row then scanned for its argmax on the host by
 *          the engine's own pass (src/sidecar/sampler.c max_logit, one thread): what
 *          the engine's verification reads when every draft token is accepted
 *   topk   the same rows verified on the device: a backend sampler chain of
 *          top_k(TOPK) runs on every row in the model's graph (a context with
 *          n_outputs_max_per_seq 16), and only TOPK logits and token ids a row come
 *          back; the host picks the largest. Its ratio is to scan's single token. A
 *          verification that applies the repetition penalty to those candidates is
 *          exact whenever the best penalised one beats the TOPK-th raw logit (the
 *          penalty only lowers logits); not in the engine (bench/RESULTS.md, "The
 *          committed drafts on an H100").
 * Flash attention as the engine sets it: off on the CPU, auto with NGL > 0. */
#include "sampler_int.h"

#include <llama.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_N 1000
#define TOPK  16

enum mode { LAST, ALL, SCAN, TOPK_ROWS };

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

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return v[n / 2];
}

static struct dist scan; /* the engine's greedy pass over a row (max_logit) */
static int sink;         /* keeps the scans' results live */

/* One step: nb tokens at depth d, logits as `mode` asks, synchronised and read; then
 * the cache trimmed to d + 1. Returns ms. */
static double step(struct llama_context *c, struct llama_batch *b, int nb, int d, int r,
                   enum mode mode)
{
    double t0;

    b->n_tokens = nb;
    for (int i = 0; i < nb; i++) {
        b->token[i] = 2000 + i * 7 + r % 5;
        b->pos[i] = d + i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = 0;
        b->logits[i] = mode != LAST || i == nb - 1;
    }
    t0 = now_ms();
    if (llama_decode(c, *b) != 0) {
        fprintf(stderr, "verify_cost: llama_decode failed\n");
        exit(1);
    }
    llama_synchronize(c);
    if (mode == SCAN) {
        for (int i = 0; i < nb; i++) {
            int32_t at;

            max_logit(&scan, llama_get_logits_ith(c, i), &at);
            sink += at;
        }
    } else if (mode == TOPK_ROWS) {
        for (int i = 0; i < nb; i++) {
            const float *z = llama_get_sampled_logits_ith(c, i);
            const llama_token *id = llama_get_sampled_candidates_ith(c, i);
            int n = (int)llama_get_sampled_logits_count_ith(c, i), best = 0;

            if (!z || !id || n < 1) {
                fprintf(stderr, "verify_cost: no candidates from the device for row %d\n", i);
                exit(1);
            }
            for (int k = 1; k < n; k++)
                best = z[k] > z[best] ? k : best;
            sink += id[best];
        }
    } else {
        (void)llama_get_logits_ith(c, nb - 1);
    }
    t0 = now_ms() - t0;
    llama_memory_seq_rm(llama_get_memory(c), 0, d + 1, -1);
    return t0;
}

/* The prompt: depth tokens, into c's cache. Returns 0 on success. */
static int prompt(struct llama_context *c, struct llama_batch *b, int depth)
{
    b->n_tokens = depth;
    for (int i = 0; i < depth; i++) {
        b->token[i] = 1000 + i % 500;
        b->pos[i] = i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = 0;
        b->logits[i] = i == depth - 1;
    }
    return llama_decode(c, *b);
}

/* The median ms of n steps of nb tokens in `mode` from depth on; the fastest in *best. */
static double steps(struct llama_context *c, struct llama_batch *b, int nb, int depth, int n,
                    enum mode mode, double *best)
{
    static double t[MAX_N];
    double med;

    for (int r = 0; r < n; r++)
        t[r] = step(c, b, nb, depth + r, r, mode);
    llama_memory_seq_rm(llama_get_memory(c), 0, depth, -1);
    med = median(t, n);
    if (best)
        *best = t[0]; /* sorted by median() */
    return med;
}

int main(int argc, char **argv)
{
    static const int sizes[] = {1, 2, 3, 4, 6, 8, 12, 16};
    const int n_sizes = (int)(sizeof(sizes) / sizeof(sizes[0]));
    static double t[MAX_N], t1[MAX_N];
    struct llama_sampler *chain;
    struct llama_context *ck;
    struct llama_model_params mp = llama_model_default_params();
    struct llama_context_params cp = llama_context_default_params();
    struct llama_model *m;
    struct llama_context *c;
    struct llama_batch b;
    int n_ctx, depth, n, ngl, threads;
    double base[4] = {0, 0, 0, 0};

    if (argc < 2) {
        fprintf(stderr, "usage: verify_cost MODEL N_CTX DEPTH REPS [NGL=0] [THREADS=2]\n");
        return 2;
    }
    n_ctx = argc > 2 ? atoi(argv[2]) : 2048;
    depth = argc > 3 ? atoi(argv[3]) : 250;
    n = argc > 4 ? atoi(argv[4]) : 40;
    ngl = argc > 5 ? atoi(argv[5]) : 0;
    threads = argc > 6 ? atoi(argv[6]) : 2;
    if (depth < 1 || depth > 512 || n < 3 || n > MAX_N / 2 || threads < 1 ||
        n_ctx < depth + 2 * n + 16) {
        fprintf(stderr,
                "verify_cost: DEPTH 1-512, REPS 3-%d, THREADS >= 1, N_CTX >= DEPTH + "
                "2 x REPS + 16\n",
                MAX_N / 2);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    mp.n_gpu_layers = ngl;
    m = llama_model_load_from_file(argv[1], mp);
    if (!m) {
        fprintf(stderr, "verify_cost: cannot load %s\n", argv[1]);
        return 1;
    }
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.flash_attn_type = ngl > 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    c = llama_init_from_model(m, cp);
    if (!c) {
        fprintf(stderr, "verify_cost: cannot create a context\n");
        return 1;
    }
    scan.n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    scan.n_chunks = (scan.n_vocab + CDT_CHUNK - 1) / CDT_CHUNK;
    scan.chunk_max = malloc(sizeof(*scan.chunk_max) * (size_t)scan.n_chunks);
    scan.scan_threads = 1; /* the engine's setting (CDT_SCAN_THREADS) */
    b = llama_batch_init(512, 0, 1);
    if (!scan.chunk_max || prompt(c, &b, depth) != 0) {
        fprintf(stderr, "verify_cost: the prompt failed\n");
        return 1;
    }
    /* The device's verification: every row through a top_k chain in the graph. */
    cp.n_outputs_max_per_seq = (uint32_t)sizes[n_sizes - 1];
    ck = llama_init_from_model(m, cp);
    chain = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(chain, llama_sampler_init_top_k(TOPK));
    if (ck && (!llama_set_sampler(ck, 0, chain) || prompt(ck, &b, depth) != 0)) {
        llama_free(ck); /* its columns print nan */
        ck = NULL;
    }
    if (!ck)
        fprintf(stderr, "verify_cost: no top_k chain in this backend's graph\n");
    printf("| tokens | all rows: fastest ms | ÷ 1 | all rows: median ms | ÷ 1 | last row only: "
           "median ms | ÷ 1 | alternating with 1: median ms | ÷ 1 | all rows + host argmax: "
           "median ms | ÷ 1 | top-%d on the device: median ms | ÷ host argmax's 1 |\n",
           TOPK);
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int s = 0; s < n_sizes; s++) {
        double med[5], best = 0.0;

        med[0] = steps(c, &b, sizes[s], depth, n, ALL, &best);
        med[1] = steps(c, &b, sizes[s], depth, n, LAST, NULL);
        for (int r = 0; r < 2 * n; r++) {
            double ms = step(c, &b, r % 2 ? sizes[s] : 1, depth + r, r, ALL);

            (r % 2 ? t : t1)[r / 2] = ms;
        }
        llama_memory_seq_rm(llama_get_memory(c), 0, depth, -1);
        med[2] = median(t, n);
        med[3] = steps(c, &b, sizes[s], depth, n, SCAN, NULL);
        med[4] = ck ? steps(ck, &b, sizes[s], depth, n, TOPK_ROWS, NULL) : NAN;
        if (s == 0) {
            base[0] = med[0];
            base[1] = med[1];
            base[2] = best;
            base[3] = med[3];
            med[2] = median(t1, n);
        }
        printf(
            "| %d | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f | %.3f | "
            "%.2f |\n",
            sizes[s], best, best / base[2], med[0], med[0] / base[0], med[1], med[1] / base[1],
            med[2], med[2] / base[0], med[3], med[3] / base[3], med[4], med[4] / base[3]);
    }
    (void)sink;
    if (ck)
        (void)llama_set_sampler(ck, 0, NULL); /* the chain is ours: off the context, then freed */
    llama_sampler_free(chain);
    llama_free(ck);
    free(scan.chunk_max);
    llama_batch_free(b);
    llama_free(c);
    llama_model_free(m);
    return 0;
}
