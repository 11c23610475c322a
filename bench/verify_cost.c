/* verify_cost: the wall time of one llama_decode of a batch of b tokens (all with
 * logits, as a speculative verification) at a given depth, relative to one token;
 * the prior table of src/sidecar/speculative.c comes from it. Not built by CMake:
 *
 *   E=$(scripts/engines.sh)
 *   cc -O2 -o /tmp/verify_cost bench/verify_cost.c -I$E/include $E/lib/libllama.a \
 *      $E/lib/libggml.a $E/lib/libggml-cpu.a $E/lib/libggml-base.a -fopenmp -lstdc++ -lm
 *   /tmp/verify_cost MODEL N_CTX DEPTH REPS      (2 threads, flash attention off)
 *
 * Prints the best of REPS per batch size. */
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static void quiet(enum ggml_log_level l, const char *t, void *u)
{
    (void)l;
    (void)t;
    (void)u;
}
int main(int argc, char **argv)
{
    llama_log_set(quiet, NULL);
    llama_backend_init();
    int nctx = atoi(argv[2]), depth = atoi(argv[3]), reps = atoi(argv[4]);
    struct llama_model *m = llama_model_load_from_file(argv[1], llama_model_default_params());
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = nctx;
    cp.n_batch = 512;
    cp.n_ubatch = 256;
    cp.n_outputs_max = 16;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    struct llama_context *c = llama_init_from_model(m, cp);
    llama_token tk[600];
    for (int i = 0; i < 600; i++)
        tk[i] = 1000 + (i * 7919) % 90000;
    for (int p = 0; p < depth;) {
        int k = depth - p < 512 ? depth - p : 512;
        llama_decode(c, llama_batch_get_one(tk + p, k));
        p += k;
    }
    int bs[] = {1, 2, 3, 4, 6, 8, 12, 16};
    double best[8];
    for (int i = 0; i < 8; i++)
        best[i] = 1e9;
    struct llama_batch b = llama_batch_init(16, 0, 1);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < 8; i++) {
            int n = bs[i];
            b.n_tokens = n;
            for (int j = 0; j < n; j++) {
                b.token[j] = tk[depth + j];
                b.pos[j] = depth + j;
                b.n_seq_id[j] = 1;
                b.seq_id[j][0] = 0;
                b.logits[j] = 1;
            }
            double t0 = now_ms();
            llama_decode(c, b);
            for (int j = 0; j < n; j++)
                (void)llama_get_logits_ith(c, j);
            double t = now_ms() - t0;
            llama_memory_seq_rm(llama_get_memory(c), 0, depth, -1);
            if (t < best[i])
                best[i] = t;
        }
    for (int i = 0; i < 8; i++)
        printf("b=%2d %7.2f ms  cost %.2f\n", bs[i], best[i], best[i] / best[0]);
    return 0;
}
