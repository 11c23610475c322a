/* kv_bench: llama.cpp context settings side by side, interleaved, on one model: the
 * prefill of a transcript after a cached prefix, and single-token decode after it.
 * Used to choose the sidecar's engine settings (engine.c: KV capacity, flash
 * attention, n_ubatch). Not built by CMake; build and run:
 *
 *   E=$(scripts/engines.sh)
 *   cc -O2 -o /tmp/kv_bench bench/kv_bench.c -I$E/include $E/lib/libllama.a \
 *      $E/lib/libggml.a $E/lib/libggml-cpu.a $E/lib/libggml-base.a -fopenmp -lstdc++ -lm
 *   /tmp/kv_bench MODEL THREADS REPS PREFIX TRANSCRIPT NGEN CFG...
 *
 * CFG is n_ctx:flash_attn(0/1):n_ubatch[:n_threads_batch[:n_batch]], e.g.
 * `/tmp/kv_bench m.gguf 2 5 478 1 150 768:0:256 4096:0:256` (decode at depth 478) or
 * `... 2 5 304 170 40 1024:0:256 1024:1:256` (a 170-token transcript after 304
 * cached tokens). Per CFG: median and best prefill ms and decode tok/s, and the
 * medians over the repetitions during which other processes used < 5% of the CPUs
 * ("clean"; /proc/stat minus this process). Tokens are fixed pseudo-random ids. */
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
struct cfg {
    int nctx, fa, ub, tb, nb;
    struct llama_context *ctx;
    double pre[64], dec[64], oth[64];
};
static int cmpd(const void *a, const void *b)
{
    double x = *(double *)a, y = *(double *)b;
    return x < y ? -1 : x > y;
}
static double med(double *v, int n)
{
    double t[64];
    memcpy(t, v, n * sizeof *v);
    qsort(t, n, sizeof *t, cmpd);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}
static void cpu(long long *busy, long long *tot, long long *self)
{
    FILE *f = fopen("/proc/stat", "r");
    long long v[10] = {0};
    fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", v, v + 1, v + 2, v + 3, v + 4, v + 5,
           v + 6, v + 7);
    fclose(f);
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *tot = *busy + v[3] + v[4];
    f = fopen("/proc/self/stat", "r");
    char b[4096];
    size_t n = fread(b, 1, sizeof b - 1, f);
    b[n] = 0;
    fclose(f);
    char *p = strrchr(b, ')');
    long long ut, st;
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st);
    *self = ut + st;
}
static void quiet(enum ggml_log_level l, const char *t, void *u)
{
    (void)l;
    (void)t;
    (void)u;
}
int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr,
                "kvb MODEL THREADS REPS PREFIX TRANSCRIPT NGEN cfg...  (cfg nctx:fa:ub:tb[:nb])\n");
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    int nt = atoi(argv[2]), reps = atoi(argv[3]), npre = atoi(argv[4]), ntr = atoi(argv[5]),
        ngen = atoi(argv[6]);
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    if (!m)
        return 1;
    int nc = argc - 7;
    struct cfg *c = calloc(nc, sizeof *c);
    for (int i = 0; i < nc; i++) {
        c[i].nb = 512;
        c[i].tb = nt;
        sscanf(argv[7 + i], "%d:%d:%d:%d:%d", &c[i].nctx, &c[i].fa, &c[i].ub, &c[i].tb, &c[i].nb);
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = c[i].nctx;
        cp.n_batch = c[i].nb;
        cp.n_ubatch = c[i].ub;
        cp.n_outputs_max = 16;
        cp.n_seq_max = 1;
        cp.n_threads = nt;
        cp.n_threads_batch = c[i].tb;
        cp.flash_attn_type =
            c[i].fa ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.no_perf = true;
        c[i].ctx = llama_init_from_model(m, cp);
        if (!c[i].ctx) {
            fprintf(stderr, "ctx fail %s\n", argv[7 + i]);
            return 1;
        }
    }
    int ntok = npre + ntr + ngen;
    llama_token *tk = malloc(ntok * sizeof *tk);
    unsigned s = 12345;
    for (int i = 0; i < ntok; i++) {
        s = s * 1103515245u + 12345u;
        tk[i] = 1000 + (s >> 8) % 100000;
    }
    for (int r = 0; r < reps; r++)
        for (int jj = 0; jj < nc; jj++) {
            int j = (jj + r) % nc;
            struct llama_context *x = c[j].ctx;
            llama_memory_clear(llama_get_memory(x), true);
            for (int p = 0; p < npre;) {
                int k = npre - p < c[j].nb ? npre - p : c[j].nb;
                llama_decode(x, llama_batch_get_one(tk + p, k));
                p += k;
            }
            long long b0, T0, S0, b1, T1, S1;
            cpu(&b0, &T0, &S0);
            double t0 = now_ms();
            for (int p = npre; p < npre + ntr;) {
                int k = npre + ntr - p < c[j].nb ? npre + ntr - p : c[j].nb;
                if (llama_decode(x, llama_batch_get_one(tk + p, k))) {
                    fprintf(stderr, "dec fail\n");
                    return 1;
                }
                p += k;
            }
            (void)llama_get_logits_ith(x, -1);
            double t1 = now_ms();
            for (int g = 0; g < ngen; g++) {
                if (llama_decode(x, llama_batch_get_one(tk + npre + ntr + g, 1))) {
                    fprintf(stderr, "dec fail\n");
                    return 1;
                }
                (void)llama_get_logits_ith(x, -1);
            }
            double t2 = now_ms();
            cpu(&b1, &T1, &S1);
            c[j].oth[r] = T1 > T0 ? (double)((b1 - b0) - (S1 - S0)) / (T1 - T0) : 0;
            c[j].pre[r] = t1 - t0;
            c[j].dec[r] = ngen * 1000.0 / (t2 - t1);
        }
    for (int i = 0; i < nc; i++) {
        double mx = 0, mnp = 1e9, cp[64], cd[64];
        int k = 0;
        for (int r = 0; r < reps; r++) {
            if (c[i].dec[r] > mx)
                mx = c[i].dec[r];
            if (c[i].pre[r] < mnp)
                mnp = c[i].pre[r];
            if (c[i].oth[r] < 0.05) {
                cp[k] = c[i].pre[r];
                cd[k] = c[i].dec[r];
                k++;
            }
        }
        printf("%-22s prefill(%d@%d) med %7.1f best %7.1f ms | decode med %6.2f best %6.2f tok/s | "
               "clean %d/%d: prefill %7.1f decode %6.2f\n",
               argv[7 + i], ntr, npre, med(c[i].pre, reps), mnp, med(c[i].dec, reps), mx, k, reps,
               k ? med(cp, k) : 0, k ? med(cd, k) : 0);
    }
    return 0;
}
