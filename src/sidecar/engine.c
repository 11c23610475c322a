/* The llama.cpp backend of the sidecar (struct cdt_backend, backend.h): one GGUF
 * model, one context, one generation at a time, driven by one worker thread. This
 * is the only file in the project that includes llama.h.
 *
 * Invariants: `model` and `ctx` are both set or both NULL. `n_ctx` is the context
 * the sidecar enforces; `n_cap` is the capacity of the llama context that exists
 * now, n_cap <= n_ctx (llama pads it to a multiple of 256).
 *
 * KV capacity follows the requests (ctx_fit): a request reserves its prompt plus
 * min(max_tokens, CDT_KV_RESERVE) positions, a generation that runs past the
 * capacity grows it by half, and a capacity two or more steps larger than a request
 * needs shrinks. The context is recreated with the new capacity (a multiple of 256,
 * at most n_ctx; 40-75 ms on 2 cores, most of it llama_init_from_model), the kept
 * prefix carried over (llama_state_seq_get/set_data). Why: with flash attention
 * off, V is stored transposed and every row of V^T that attention reads is strided
 * by the capacity (llama_kv_cache::get_v; the rows read are only n_kv long), so a
 * 4096-token cache decodes ~10% slower at depth 500 than a 768-token one (0.6B
 * shape, 2 threads; 4352 is as slow as 4096, so it is the stride, not a power-of-two
 * alias). llama-bench's context is prompt + depth + generated, which is why it was
 * faster. A smaller cache also keeps RSS down.
 *
 * Files are checked before llama sees them (model_files.c: existence, permission,
 * the GGUF magic, tensor data within the file) so that a bad path gets a reason a
 * user understands rather than llama's exception text.
 *
 * Prefix cache: kv[0..n_kv) are exactly the tokens whose keys and values sequence 0
 * of the KV memory holds, at positions 0..n_kv-1. A request (or a warm-up) keeps the
 * longest common prefix with its prompt and evaluates only the rest; generated tokens
 * stay in the cache for the next request. Anything that leaves the memory in doubt
 * (a failed decode, a load) clears both.
 *
 * Repeatable output (issue 17): the same request on the same loaded model gives the
 * same tokens whatever ran before, because every position is computed by the same
 * batches. llama's kernels round differently per batch shape (on some CPUs a
 * position's logits differ by ~0.01-0.1 between a batch and one token), so:
 * - a prompt is evaluated in chunks that end at multiples of `chunk` tokens
 *   (absolute positions: CDT_PROMPT_CHUNK, on a GPU CDT_GPU_CHUNK), and the
 *   cache is reused only up to such a boundary, and only where it was itself
 *   computed in those chunks (n_canon): a cached and a fresh evaluation then run
 *   identical batches. The price: up to chunk - 1 reusable tokens evaluated again,
 *   and a prompt evaluated in batches of `chunk` (bench/RESULTS.md, "Repeatable
 *   output");
 * - the draft lengths of speculation follow decode times measured once, at load
 *   (spec_calibrate), not as they come (on a GPU they are fixed: fixed_batch): a
 *   request's drafts, and so its verify batches, are a function of the request;
 * - sampling draws from (seed, output position) (sampler.c), so drafts do not shift
 *   the random numbers.
 * Different requests can still round differently where they share text (a cached
 * prefix up to a chunk boundary is shared bit for bit; generated text reused by a
 * later request is evaluated again as prompt).
 *
 * Sampling is ours (sampler.c, sampler_int.h), over the raw logits: the seed's chain,
 * repetition penalty -> top-p -> min-p -> temperature -> draw, greedy (argmax after
 * the penalty) at temperature 0. It gives the probability of any token, which
 * prompt-lookup speculative decoding needs: a drafted token x is accepted when it is
 * the token plain sampling draws at its position (so with probability p(x), and
 * otherwise the token is drawn from p without x: speculative sampling with a
 * deterministic draft), so the output is the plain one's for the same seed and
 * logits; at temperature 0 the output is the greedy one, token for token, as far as
 * llama's batched and single-token kernels compute the same logits (bit for bit on
 * q8_0 on some CPUs, not on all; within ~0.1 on K-quants, where ggml's matrix
 * kernels differ by batch size): the verifier (spec_verify) accepts exactly the
 * argmax of the verification logits, and two runs part only at a near-tie of their
 * logits, which is what the tests hold on any CPU (tests/integration/gen_trace.h).
 *
 * With CODICTATE_DEVICE_SAMPLING=1, greedy requests (refine's) sample in the model's
 * graph instead (dev_sampler_begin): the same end-token mask, repetition penalty and
 * argmax as llama.cpp backend samplers, so one token comes back per step rather than
 * the logits (0.6 MB on a 152k vocabulary) and the CPU pass over them. Off by
 * default: on an H200 it decoded 0-4% slower than our CPU pass (its extra kernels
 * and input uploads cost more than the copy saves; bench/RESULTS.md, "CUDA"). Tests
 * check that both paths choose the same tokens.
 *
 * Generated bytes pass through a UTF-8 assembler (struct utf8_asm): on_text and the
 * result only ever receive valid UTF-8, whatever byte-level tokens the model emits;
 * sequences that can never complete become U+FFFD. */
#include "../lib/err_int.h"
#include "backend.h"
#include "codictate/download.h" /* cdt_human_bytes */
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"
#include "codictate/util.h"
#include "json_grammar_int.h"
#include "model_files_int.h"
#include "sampler_int.h"
#include "speculative_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gguf.h>
#include <llama.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define CDT_DEFAULT_N_CTX   4096              /* tokens, when load is given 0 */
#define CDT_MAX_BATCH       512               /* tokens per llama_decode of the prompt */
#define CDT_UBATCH          256               /* tokens per compute graph (prompt speed) */
#define CDT_UBATCH_GPU      512               /* the same with the model on a GPU */
#define CDT_KV_STEP         256               /* KV capacity granularity (llama's padding) */
#define CDT_KV_INITIAL      512               /* KV capacity at load, tokens */
#define CDT_KV_RESERVE      256               /* generated positions a request reserves */
#define CDT_POLL_MS         20.0              /* should_cancel polls in a prompt batch, ms */
#define CDT_CPUINFO_MAX     (4 * 1024 * 1024) /* bytes of /proc/cpuinfo read */
#define CDT_MAX_CORES       4096              /* (physical id, core id) pairs counted */
#define CDT_MAX_PIECE_BYTES 65536             /* text of one token, from the GGUF vocab */
#define CDT_SCAN_THREADS    1                 /* most threads reading logits behind a GPU */
#define CDT_PROMPT_CHUNK    32                /* prompt batches end at multiples of this, tokens */
#define CDT_GPU_CHUNK       256               /* the same with the model on a GPU */
#define CDT_CALIBRATE_MS    150.0             /* most time spec_calibrate spends timing, ms */
#define CDT_GPU_SPEC_BATCH  "6" /* default CODICTATE_GPU_SPEC_BATCH: tokens of a GPU step */
#define CDT_SPEC_IDLE       "8" /* default CODICTATE_GPU_SPEC_IDLE: draftless steps, then 1 token */
#define CDT_GPU_BACKOFF     0.4f /* GPU backoff: an accepted share below this pauses drafts */
#define CDT_CALIB_ROUNDS    3    /* timings of each batch size, the fastest kept */
#define CDT_LP_PIECE        128  /* bytes of a token reported with logprobs */
#define CDT_GRAMMAR_REDRAWS 8    /* draws the grammar may refuse before a full mask */
#define CDT_TAG_TOKENS      8    /* most tokens of the tag closing the user's text */

static const char no_think_block[] = "<think>\n\n</think>\n\n";

struct engine {
    struct cdt_backend base; /* first: cdt_backend pointers are engine pointers */
    struct cdt_log *log;     /* borrowed */
    int n_threads;           /* threads for decode and prompt (auto_threads: at most) */
    bool auto_threads;       /* each CPU request takes the cores others leave free */
    int n_now;               /* the threads ctx runs with now */
    struct llama_model *model;
    struct llama_context *ctx;
    int n_ctx;                      /* enforced context, tokens */
    int n_cap;                      /* capacity of ctx, tokens (<= n_ctx) */
    int n_batch;                    /* llama_decode batch limit of ctx */
    bool resize;                    /* n_cap follows the requests (ctx_fit) */
    struct llama_context_params cp; /* ctx's parameters, for ctx_fit */
    bool no_think;                  /* the template knows enable_thinking: close the think block */
    bool rollback; /* the KV memory can drop its last positions (speculation, reuse) */
    bool gpu;      /* the model is offloaded to a GPU (other settings: load_model) */

    /* Greedy sampling in the model's graph (dev_sampler_begin): the chain, what it
     * was built for, whether it is attached to sequence 0 of ctx, and whether it is
     * used (with CODICTATE_DEVICE_SAMPLING=1, once a check at load has shown the
     * backend runs it). */
    struct llama_sampler *gs;
    float gs_penalty;
    int gs_last_n;
    bool gs_ignore_eos, gs_attached, gs_ok;

    llama_token *kv; /* n_ctx: the tokens held in the KV memory, in order */
    int n_kv;
    int n_canon; /* kv[0..n_canon) came from whole prompt chunks (eval_prompt) */
    int chunk;   /* prompt chunk, tokens (load_model) */

    struct spec_timing vt;    /* decode times by batch size, for the draft length */
    int fixed_batch;          /* GPU: tokens a speculating step decodes (0: no speculation) */
    bool fixed_backoff;       /* GPU: drafts pause while they fail (CODICTATE_GPU_SPEC_BACKOFF) */
    int spec_idle;            /* GPU: steps without a draft before single tokens (step) */
    struct dist d;            /* sampler scratch, sized by the vocabulary at load */
    struct llama_batch batch; /* CDT_MAX_DRAFT + 1 tokens: a token and its draft */
    bool has_batch;

    /* The model engine_count_tokens may use from other threads: set under the write
     * lock once a load succeeded, cleared under it before the model is freed. */
    pthread_rwlock_t tok_lock;
    struct llama_model *tok_model;
};

static struct engine *engine_of(struct cdt_backend *be)
{
    return (struct engine *)be;
}

/* Copies src into dst[cap], cut at a character boundary when too long. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);

    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- UTF-8 assembly ---------------------------------------------------------- */

/* Joins bytes that arrive split across tokens into whole UTF-8 characters. Each
 * maximal ill-formed subsequence becomes one U+FFFD (the Unicode "substitution of
 * maximal subparts" practice, as WHATWG decoders do). */
struct utf8_asm {
    unsigned char pend[4]; /* the incomplete character so far */
    int n;                 /* bytes in pend */
    int need;              /* its full length */
};

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

static int utf8_push(struct utf8_asm *u, const char *s, size_t n, struct cdt_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (u->n > 0) {
            unsigned char lo = 0x80, hi = 0xBF;

            /* Second-byte limits exclude overlongs, surrogates and > U+10FFFF. */
            if (u->n == 1) {
                if (u->pend[0] == 0xE0)
                    lo = 0xA0;
                else if (u->pend[0] == 0xED)
                    hi = 0x9F;
                else if (u->pend[0] == 0xF0)
                    lo = 0x90;
                else if (u->pend[0] == 0xF4)
                    hi = 0x8F;
            }
            if (c >= lo && c <= hi) {
                u->pend[u->n++] = c;
                if (u->n == u->need) {
                    if (cdt_buf_append(out, u->pend, (size_t)u->n) != 0)
                        return CDT_ENOMEM;
                    u->n = 0;
                }
                continue;
            }
            /* The pending character can never complete; c starts afresh. */
            u->n = 0;
            if (cdt_buf_appends(out, replacement) != 0)
                return CDT_ENOMEM;
        }
        if (c < 0x80) {
            if (cdt_buf_append(out, &c, 1) != 0)
                return CDT_ENOMEM;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            u->need = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            u->need = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            u->need = 4;
        else {
            if (cdt_buf_appends(out, replacement) != 0)
                return CDT_ENOMEM;
            continue;
        }
        u->pend[0] = c;
        u->n = 1;
    }
    return 0;
}

/* End of input: an incomplete character becomes U+FFFD. */
static int utf8_finish(struct utf8_asm *u, struct cdt_buf *out)
{
    if (u->n == 0)
        return 0;
    u->n = 0;
    return cdt_buf_appends(out, replacement);
}

/* ---- threads ----------------------------------------------------------------- */

static int parse_cpuinfo_int(const char *line, const char *key, long *v)
{
    size_t k = strlen(key);
    const char *p;
    char *end;

    if (strncmp(line, key, k) != 0)
        return 0;
    p = line + k;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return 0;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    errno = 0;
    *v = strtol(p, &end, 10);
    return errno == 0 && end != p;
}

/* Unique (physical id, core id) pairs of /proc/cpuinfo; 0 when it has none. */
static int physical_cores(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char *line = NULL;
    size_t linecap = 0, total = 0;
    ssize_t n;
    long phys = -1, core = -1, (*pairs)[2];
    int count = 0;

    if (!f)
        return 0;
    pairs = malloc(sizeof(*pairs) * CDT_MAX_CORES);
    if (!pairs) {
        fclose(f);
        return 0;
    }
    for (;;) {
        n = getline(&line, &linecap, f);
        if (n > 0)
            total += (size_t)n;
        if (n <= 0 || total > CDT_CPUINFO_MAX || line[0] == '\n') {
            /* End of one processor's block. */
            if (phys >= 0 && core >= 0) {
                int i;

                for (i = 0; i < count; i++)
                    if (pairs[i][0] == phys && pairs[i][1] == core)
                        break;
                if (i == count && count < CDT_MAX_CORES) {
                    pairs[count][0] = phys;
                    pairs[count][1] = core;
                    count++;
                }
            }
            phys = core = -1;
            if (n <= 0 || total > CDT_CPUINFO_MAX)
                break;
            continue;
        }
        if (!parse_cpuinfo_int(line, "physical id", &phys))
            parse_cpuinfo_int(line, "core id", &core);
    }
    free(line);
    free(pairs);
    fclose(f);
    return count;
}

/* Runnable tasks on the machine now, this thread included (/proc/loadavg's fourth
 * field): the least of up to three reads 0.5 ms apart, so that a thread that only woke
 * to hand over a request (ours or the client's) is not counted; one read when it finds
 * this thread alone. -1: not known. */
static int runnable_now(void)
{
    int least = -1;

    for (int i = 0; i < 3 && least != 1; i++) {
        FILE *f = fopen("/proc/loadavg", "r");
        double l1, l5, l15;
        int run = -1, all;

        if (f) {
            if (fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &run, &all) != 5)
                run = -1;
            fclose(f);
        }
        if (run > 0 && (least < 0 || run < least))
            least = run;
        if (i < 2 && least != 1) {
            struct timespec ts = {0, 500000};

            nanosleep(&ts, NULL);
        }
    }
    return least;
}

int cdt_engine_auto_threads(int n_threads, int cpus, int others)
{
    /* Only while some CPUs are free: with every one taken, fewer threads would only
     * get a smaller share of them (two busy processes on two cores: two threads
     * 1,091 ms, one 1,375; bench/RESULTS.md). */
    if (cpus <= 0 || others <= 0 || others >= cpus)
        return n_threads;
    return cpus - others < n_threads ? cpus - others : n_threads;
}

/* The threads a CPU request runs on: n_threads, or in auto mode as many as the CPUs
 * other processes leave free now (at least 1, at most n_threads). Only where this
 * process may use every online CPU: the runnable count is the machine's, and a
 * cpuset's share of it is not known. With one of two cores kept busy by another
 * program one thread answers 22% sooner than two; on a quiet machine two are twice
 * as fast (bench/RESULTS.md, "One inference thread or two"). */
static void pick_threads(struct engine *e)
{
    int n = e->n_threads;

    if (e->auto_threads && !e->gpu) {
        int cpus = cdt_sysinfo_cpu_count(), run = runnable_now();
        long online = sysconf(_SC_NPROCESSORS_ONLN);

        if (run > 0 && online == cpus)
            n = cdt_engine_auto_threads(n, cpus, run - 1);
    }
    if (n != e->n_now && e->ctx) {
        llama_set_n_threads(e->ctx, n, n);
        e->cp.n_threads = e->cp.n_threads_batch = n; /* a context ctx_fit makes keeps it */
        CDT_LOG_D(e->log, "threads: %d (of %d)", n, e->n_threads);
        e->n_now = n;
    }
}

/* Physical cores, at most the CPUs this process may run on (a container's cpuset). */
static int default_threads(void)
{
    int n = physical_cores(), allowed = cdt_sysinfo_cpu_count();

    if (n <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);

        n = online > 0 && online < 4096 ? (int)online : 1;
    }
    if (allowed > 0 && n > allowed)
        n = allowed;
    return n > 0 ? n : 1;
}

/* An environment switch: set to "1". */
static bool env_on(const char *name)
{
    return strcmp(cdt_env_str(name, ""), "1") == 0;
}

/* ---- the prefix cache ---------------------------------------------------------- */

static void kv_reset(struct engine *e)
{
    if (e->ctx)
        llama_memory_clear(llama_get_memory(e->ctx), true);
    e->n_kv = 0;
    e->n_canon = 0;
}

/* Keeps the longest common prefix of the cache and toks[0..n) that ends at a chunk
 * boundary within the part evaluated as whole chunks (n_canon), leaving at least
 * `min_eval` tokens to evaluate (the last one must be, for its logits), and drops the
 * rest of the cache. Returns the tokens kept. */
static int kv_keep_prefix(struct engine *e, const llama_token *toks, int n, int min_eval)
{
    llama_memory_t mem = llama_get_memory(e->ctx);
    int lcp = 0, lim = n - min_eval < e->n_canon ? n - min_eval : e->n_canon;

    while (e->rollback && lcp < lim && e->kv[lcp] == toks[lcp])
        lcp++;
    lcp -= lcp % e->chunk;
    /* A memory that cannot drop its tail, or that no longer holds the start of the
     * prefix (a sliding window), starts afresh. */
    if (lcp == 0 || (lcp < e->n_kv && !llama_memory_seq_rm(mem, 0, lcp, -1)) ||
        llama_memory_seq_pos_min(mem, 0) > 0) {
        kv_reset(e);
        return 0;
    }
    e->n_kv = lcp;
    if (e->n_canon > lcp)
        e->n_canon = lcp;
    return lcp;
}

/* Drops cached tokens from position n on. */
static int kv_truncate(struct engine *e, int n)
{
    if (n >= e->n_kv)
        return 0;
    if (!llama_memory_seq_rm(llama_get_memory(e->ctx), 0, n, -1)) {
        kv_reset(e);
        return CDT_EENGINE;
    }
    e->n_kv = n;
    if (e->n_canon > n)
        e->n_canon = n;
    return 0;
}

static void dev_sampler_free(struct engine *e);

/* Fits the KV capacity to `need` positions: grows it to `need` rounded up to
 * CDT_KV_STEP (at most n_ctx) when it is smaller, shrinks it when that is two or
 * more steps smaller, recreating the context and carrying the cached prefix over.
 * Call after the prefix was trimmed to what the request keeps. On failure the old
 * context stays; CDT_ENOMEM only when it is too small for `need`. */
static int ctx_fit(struct engine *e, int need)
{
    struct llama_context_params cp = e->cp;
    struct llama_context *c;
    double t0 = cdt_now_ms();
    uint8_t *state = NULL;
    size_t size = 0;
    int want, ubatch;

    if (!e->resize)
        return 0;
    want = (need + CDT_KV_STEP - 1) / CDT_KV_STEP * CDT_KV_STEP;
    if (want < CDT_KV_STEP)
        want = CDT_KV_STEP;
    if (want > e->n_ctx)
        want = e->n_ctx;
    if (want <= e->n_cap && want > e->n_cap - 2 * CDT_KV_STEP)
        return 0;
    if (e->n_kv > want)
        kv_truncate(e, want);
    if (e->n_kv > 0) {
        size = llama_state_seq_get_size(e->ctx, 0);
        state = size > 0 ? malloc(size) : NULL;
        if (!state || llama_state_seq_get_data(e->ctx, state, size, 0) != size) {
            free(state);
            state = NULL;
            kv_reset(e);
        }
    }
    cp.n_ctx = (uint32_t)want;
    cp.n_batch = (uint32_t)(want < CDT_MAX_BATCH ? want : CDT_MAX_BATCH);
    ubatch = e->gpu ? CDT_UBATCH_GPU : CDT_UBATCH;
    cp.n_ubatch = (uint32_t)(want < ubatch ? want : ubatch);
    c = llama_init_from_model(e->model, cp);
    if (!c) {
        free(state);
        CDT_LOG_W(e->log, "could not resize the context from %d to %d tokens", e->n_cap, want);
        return want > e->n_cap ? CDT_ENOMEM : 0;
    }
    dev_sampler_free(e); /* attached to the old context; the caller attaches anew */
    llama_free(e->ctx);
    e->ctx = c;
    e->cp = cp;
    e->n_batch = (int)cp.n_batch;
    CDT_LOG_D(e->log, "KV capacity %d -> %d tokens (%d kept) in %.1f ms", e->n_cap, want, e->n_kv,
              cdt_now_ms() - t0);
    e->n_cap = want;
    if (state && llama_state_seq_set_data(e->ctx, state, size, 0) != size)
        kv_reset(e);
    else if (!state)
        e->n_kv = e->n_canon = 0;
    free(state);
    return 0;
}

/* ---- draft costs ------------------------------------------------------------- */

/* Times one decode of b tokens at positions 0..b-1 of an empty cache, with logits
 * for every row as a verification asks (one token: its own). Returns ms, or -1. */
static double time_batch(struct engine *e, int b)
{
    struct llama_batch *bt = &e->batch;
    llama_token t = llama_vocab_bos(llama_model_get_vocab(e->model));
    double t0;
    int dr;

    kv_reset(e);
    bt->n_tokens = b;
    for (int i = 0; i < b; i++) {
        bt->token[i] = t == LLAMA_TOKEN_NULL ? 0 : t;
        bt->pos[i] = i;
        bt->n_seq_id[i] = 1;
        bt->seq_id[i][0] = 0;
        bt->logits[i] = true;
    }
    t0 = cdt_now_ms();
    dr = llama_decode(e->ctx, *bt);
    if (dr == 0)
        llama_synchronize(e->ctx);
    return dr == 0 ? cdt_now_ms() - t0 : -1.0;
}

/* Measures the decode times the draft planner weighs draft lengths with (struct
 * spec_timing), once per load: batches of 1, 2, 4, 8 and 16 tokens in rounds (the
 * fastest of CDT_CALIB_ROUNDS each; rounds, so that a busy moment slows one
 * measurement of each size rather than all of one), a size left out once its
 * predicted time would pass CDT_CALIBRATE_MS (a large model measures the small sizes
 * only; the planner scales its prior costs from the largest measured). Measured once
 * and then fixed rather than as requests run: drafts, and so the verification batches
 * and how they round, then depend on the request alone. A first decode brings the
 * weights into memory untimed. */
static void spec_calibrate(struct engine *e)
{
    static const int sizes[] = {1, 2, 4, 8, CDT_MAX_DRAFT + 1};
    double t0 = cdt_now_ms(), used = 0.0;
    int n_sizes = (int)(sizeof(sizes) / sizeof(sizes[0]));

    memset(&e->vt, 0, sizeof(e->vt));
    if (time_batch(e, 1) < 0.0)
        goto done;
    for (int round = 0; round < CDT_CALIB_ROUNDS; round++) {
        for (int i = 0; i < n_sizes; i++) {
            /* A batch costs at most its size in single decodes. */
            double ms, guess = e->vt.ms[1] > 0.0f ? (double)e->vt.ms[1] * sizes[i] : 0.0;

            if ((round > 0 || i > 0) && used + guess > CDT_CALIBRATE_MS) {
                n_sizes = i;
                break;
            }
            ms = time_batch(e, sizes[i]);
            if (ms < 0.0)
                goto done;
            used += ms;
            spec_time(&e->vt, sizes[i], ms);
        }
    }
done:
    kv_reset(e);
    CDT_LOG_D(e->log, "draft costs: 1 token %.2f ms, 2: %.2f, 4: %.2f, 8: %.2f, 16: %.2f (%.0f ms)",
              (double)e->vt.ms[1], (double)e->vt.ms[2], (double)e->vt.ms[4], (double)e->vt.ms[8],
              (double)e->vt.ms[CDT_MAX_DRAFT + 1], cdt_now_ms() - t0);
}

/* The speeds a client plans its deadlines with (cdt_model_info), once per load: a
 * token's decode, and a prompt token's share of the largest batch spec_calibrate
 * timed (at least 4 tokens; else a batch of CDT_MAX_DRAFT + 1 is timed now), both at
 * the start of an empty cache. A warm-up replaces the prompt figure with its own
 * (engine_warmup). Measured at the start of the cache and with logits on every row,
 * they are near a request's speeds, not equal to them: a client folds in what its
 * requests take (cdt_manager_rates). */
static void measure_speed(struct engine *e, struct cdt_model_info *info)
{
    double one = e->vt.ms[1], batch = 0.0;
    int b = 0;

    for (int i = CDT_MAX_DRAFT + 1; i >= 4 && b == 0; i--)
        if (e->vt.ms[i] > 0.0f) {
            batch = e->vt.ms[i];
            b = i;
        }
    if (one <= 0.0) {
        (void)time_batch(e, 1); /* untimed: the first decode reads the weights in */
        one = time_batch(e, 1);
    }
    if (b == 0) {
        b = CDT_MAX_DRAFT + 1;
        batch = time_batch(e, b);
    }
    kv_reset(e);
    info->decode_ms = one > 0.0 ? one : 0.0;
    info->prefill_ms = batch > 0.0 ? batch / b : 0.0;
}

/* ---- load / unload ----------------------------------------------------------- */

static void scratch_free(struct engine *e)
{
    struct dist *d = &e->d;

    free(e->kv);
    free(d->eog);
    free(d->w);
    free(d->chunk_w);
    free(d->chunk_max);
    free(d->seen);
    free(d->cand);
    if (e->has_batch)
        llama_batch_free(e->batch);
    e->kv = NULL;
    memset(d, 0, sizeof(*d));
    e->has_batch = false;
    e->n_kv = e->n_canon = 0;
}

/* Sizes the prefix cache and the sampler's scratch for the loaded model. */
static int scratch_alloc(struct engine *e)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(e->model);
    int n = llama_vocab_n_tokens(vocab), k = 0;
    struct dist *d = &e->d;

    if (n <= 0)
        return CDT_EFORMAT;
    d->n_vocab = n;
    d->n_chunks = (n + CDT_CHUNK - 1) / CDT_CHUNK;
    e->kv = malloc(sizeof(*e->kv) * (size_t)e->n_ctx);
    d->w = malloc(sizeof(*d->w) * (size_t)d->n_chunks * CDT_CHUNK);
    d->chunk_w = malloc(sizeof(*d->chunk_w) * (size_t)d->n_chunks);
    d->chunk_max = malloc(sizeof(*d->chunk_max) * (size_t)d->n_chunks);
    d->seen = calloc((size_t)n, sizeof(*d->seen));
    d->cand = malloc(sizeof(*d->cand) * (size_t)n);
    if (!e->kv || !d->w || !d->chunk_w || !d->chunk_max || !d->seen || !d->cand)
        return CDT_ENOMEM;
    d->seen_mark = 0;
    for (llama_token t = 0; t < n; t++)
        k += llama_vocab_is_eog(vocab, t);
    d->eog = malloc(sizeof(*d->eog) * (size_t)(k > 0 ? k : 1));
    if (!d->eog)
        return CDT_ENOMEM;
    for (llama_token t = 0; t < n; t++)
        if (llama_vocab_is_eog(vocab, t))
            d->eog[d->n_eog++] = t;
    e->batch = llama_batch_init(CDT_MAX_DRAFT + 1, 0, 1);
    e->has_batch = true;
    if (!e->batch.token || !e->batch.pos || !e->batch.logits)
        return CDT_ENOMEM;
    return 0;
}

/* ---- greedy sampling in the graph ---------------------------------------------- */

/* Takes the chain off the context and frees it: llama initialises a chain for the
 * backend once, so a chain is never attached twice. */
static void dev_sampler_free(struct engine *e)
{
    if (e->gs_attached && e->ctx)
        (void)llama_set_sampler(e->ctx, 0, NULL);
    e->gs_attached = false;
    if (e->gs)
        llama_sampler_free(e->gs);
    e->gs = NULL;
}

/* Attaches a greedy chain for s (end tokens masked with ignore_eos, the repetition
 * penalty over the last last_n tokens, argmax); the one attached stays when it was
 * built for the same settings (attaching makes llama reserve its graphs again).
 * Returns false when llama cannot run it in the graph. */
static bool dev_sampler_attach(struct engine *e, const struct sampler *s)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(e->model);
    bool penalty = s->penalty != 1.0f && s->last_n > 0;
    struct llama_sampler *c;

    if (e->gs && e->gs_ignore_eos == s->ignore_eos &&
        e->gs_penalty == (penalty ? s->penalty : 1.0f) && e->gs_last_n == (penalty ? s->last_n : 0))
        return true;
    dev_sampler_free(e);
    c = llama_sampler_chain_init(llama_sampler_chain_default_params());
    if (!c)
        return false;
    if (s->ignore_eos && e->d.n_eog > 0) {
        llama_logit_bias *bias = malloc(sizeof(*bias) * (size_t)e->d.n_eog);

        if (!bias) {
            llama_sampler_free(c);
            return false;
        }
        for (int i = 0; i < e->d.n_eog; i++)
            bias[i] = (llama_logit_bias){e->d.eog[i], -INFINITY};
        llama_sampler_chain_add(
            c, llama_sampler_init_logit_bias(llama_vocab_n_tokens(vocab), e->d.n_eog, bias));
        free(bias); /* copied by llama */
    }
    if (penalty)
        llama_sampler_chain_add(c, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab),
                                                                s->last_n, s->penalty, 0.0f, 0.0f));
    llama_sampler_chain_add(c, llama_sampler_init_greedy());
    if (!llama_set_sampler(e->ctx, 0, c)) {
        llama_sampler_free(c);
        return false;
    }
    e->gs = c;
    e->gs_attached = true;
    e->gs_ignore_eos = s->ignore_eos;
    e->gs_penalty = penalty ? s->penalty : 1.0f;
    e->gs_last_n = penalty ? s->last_n : 0;
    return true;
}

/* Whether the next tokens are sampled in the graph: wanted (greedy, no draft to
 * verify) and used here (gs_ok). Then the chain's penalty window is primed with the
 * last tokens of the text so far, hist[0..n); otherwise no chain stays attached, so
 * that llama hands out the logits. */
static bool dev_sampler_begin(struct engine *e, const struct sampler *s, bool want,
                              const int32_t *hist, int n)
{
    if (!want || !e->gs_ok || s->temp > 0.0f || !dev_sampler_attach(e, s)) {
        dev_sampler_free(e);
        return false;
    }
    llama_sampler_reset(e->gs);
    for (int i = n > e->gs_last_n ? n - e->gs_last_n : 0; i < n; i++)
        llama_sampler_accept(e->gs, hist[i]);
    return true;
}

static void engine_unload(struct cdt_backend *be)
{
    struct engine *e = engine_of(be);

    pthread_rwlock_wrlock(&e->tok_lock);
    e->tok_model = NULL;
    pthread_rwlock_unlock(&e->tok_lock);
    if (!e->model && !e->ctx)
        return;
    dev_sampler_free(e);
    scratch_free(e);
    llama_free(e->ctx);
    llama_model_free(e->model);
    e->ctx = NULL;
    e->model = NULL;
    e->n_ctx = e->n_cap = e->n_batch = 0;
    e->resize = false;
    e->no_think = false;
    e->rollback = false;
    e->gpu = false;
    e->gs_ok = false;
#ifdef __GLIBC__
    malloc_trim(0); /* give the freed heap back to the OS: RSS is what users see */
#endif
    CDT_LOG_I(e->log, "model unloaded");
}

/* Whether the backend runs the greedy chain (e->gs_ok): one token decoded with the
 * full chain attached (end-token mask, penalty, argmax) must come back sampled; it
 * also loads the chain's kernels. Then the chain of a default refine request
 * (temperature 0, no ignore_eos) is attached, so that its graphs are reserved now
 * rather than in the first request. */
static void dev_sampler_check(struct engine *e)
{
    struct cdt_gen_params p = cdt_gen_params_default();
    struct sampler s;
    llama_token t = 0;

    p.temperature = 0.0f;
    p.ignore_eos = true;
    sampler_init(&s, &p, e->n_ctx);
    e->gs_ok = true; /* for dev_sampler_begin; the answer follows */
    e->gs_ok = dev_sampler_begin(e, &s, true, &t, 1) &&
               llama_decode(e->ctx, llama_batch_get_one(&t, 1)) == 0 &&
               llama_get_sampled_token_ith(e->ctx, -1) != LLAMA_TOKEN_NULL;
    kv_reset(e);
    if (!e->gs_ok) {
        dev_sampler_free(e);
        CDT_LOG_W(e->log, "sampling stays on the CPU: llama cannot sample in this backend's graph");
        return;
    }
    s.ignore_eos = false;
    if (dev_sampler_attach(e, &s) && llama_decode(e->ctx, llama_batch_get_one(&t, 1)) == 0)
        llama_synchronize(e->ctx);
    kv_reset(e);
}

/* On a GPU the first graph of each shape loads its kernels (CUDA loads them lazily):
 * the first request after a load took 111-136 ms of prompt time instead of 7-8 ms
 * on an H200 (bench/RESULTS.md, "CUDA"). Evaluating one prompt-sized batch and one
 * token here moves that into the load, as llama-server's warm-up at start does. */
static void gpu_warmup(struct engine *e)
{
    llama_token toks[CDT_MAX_BATCH];
    llama_token t = llama_vocab_bos(llama_model_get_vocab(e->model));
    int n = (int)llama_n_ubatch(e->ctx);

    if (n > e->n_cap - 1)
        n = e->n_cap - 1;
    if (n > CDT_MAX_BATCH)
        n = CDT_MAX_BATCH;
    if (t == LLAMA_TOKEN_NULL)
        t = 0;
    for (int i = 0; i < n; i++)
        toks[i] = t;
    if (n > 0 && llama_decode(e->ctx, llama_batch_get_one(toks, n)) == 0)
        (void)llama_decode(e->ctx, llama_batch_get_one(toks, 1));
    llama_synchronize(e->ctx);
    kv_reset(e);
}

static int load_model(struct engine *e, const char *path, int n_ctx, struct cdt_model_info *info,
                      char *errmsg, size_t errcap)
{
    struct llama_model_params mp = llama_model_default_params();
    struct llama_context_params cp = llama_context_default_params();
    const char *tmpl, *base;
    double t0 = cdt_now_ms();
    uint64_t ram = 0;
    int rc, n_train, want, ubatch;
    bool dev_sampling;

    if (!path || !path[0])
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND, "no model path given");
    rc = cdt__model_files_resolve(path, info, errmsg, errcap);
    if (rc != 0)
        return rc;

    /* Idempotent. At the first load rather than at start: with a GPU backend it
     * initialises the device (~150 ms on CUDA), which /health need not wait for. */
    cdt_sysinfo_load_backends();
    llama_backend_init();
    /* Weights larger than the machine's memory are refused, with the numbers,
     * before llama.cpp maps them: on the CPU every token reads all of them, so such
     * a load would page the machine to a halt (a GPU holds them in its own memory). */
    if (!llama_supports_gpu_offload() && cdt_sysinfo_total_ram(&ram) == 0 && ram > 0 &&
        info->file_size > ram) {
        char need[32], have[32];

        return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG,
                               "%s is larger than this machine's memory: its weights need %s, "
                               "the machine has %s of RAM",
                               info->path, cdt_human_bytes(info->file_size, need, sizeof(need)),
                               cdt_human_bytes(ram, have, sizeof(have)));
    }
    mp.load_mode = LLAMA_LOAD_MODE_MMAP;
    e->model = llama_model_load_from_file(info->path, mp);
    if (!e->model)
        return cdt__errmsg_set(
            errmsg, errcap, CDT_EENGINE,
            "llama.cpp could not load %s (unsupported architecture or invalid data; "
            "the log says which)",
            info->path);

    /* Per backend (bench/RESULTS.md): all layers go to a GPU when there is one
     * (n_gpu_layers -1, the default); there flash attention and n_ubatch 512 win and
     * the KV cache keeps its full size (with flash attention V is not transposed, so
     * its size costs decode nothing), and a warm-up loads the kernels. */
    e->gpu = llama_supports_gpu_offload() && mp.n_gpu_layers != 0;
    /* On a GPU a speculating step decodes exactly fixed_batch tokens (the token, its
     * draft, then padding), all with logits, while drafts come: ggml-cuda replays a
     * step as a CUDA graph, one per shape (with scripts/patches/ggml-cuda-graph-per-
     * shape.patch; a shape's graph is captured after two steps of it, and drafts of
     * varying length ran every step without one: 0.79-0.94x of no speculation at the
     * 0.6B and 1.7B shapes). See step() and bench/RESULTS.md ("Speculation at the real
     * shapes on a GPU", "One CUDA graph per shape"). Out of 2..CDT_MAX_DRAFT + 1 (0
     * included): no speculation there. */
    e->fixed_batch = 0;
    if (e->gpu) {
        e->fixed_batch = atoi(cdt_env_str("CODICTATE_GPU_SPEC_BATCH", CDT_GPU_SPEC_BATCH));
        if (e->fixed_batch < 2 || e->fixed_batch > CDT_MAX_DRAFT + 1)
            e->fixed_batch = 0;
    }
    e->fixed_backoff = env_on("CODICTATE_GPU_SPEC_BACKOFF");
    e->spec_idle = atoi(cdt_env_str("CODICTATE_GPU_SPEC_IDLE", CDT_SPEC_IDLE));
    if (e->spec_idle < 0)
        e->spec_idle = 0;
    /* On a GPU a batch costs little more than a token (not measured with chunks:
     * the CPU's 32 would be 15 decodes for a refine prompt there instead of one). */
    e->chunk = e->gpu ? CDT_GPU_CHUNK : CDT_PROMPT_CHUNK;
    ubatch = e->gpu ? CDT_UBATCH_GPU : CDT_UBATCH;
    n_train = llama_model_n_ctx_train(e->model);
    want = n_ctx > 0 ? n_ctx : CDT_DEFAULT_N_CTX;
    if (n_train > 0 && want > n_train)
        want = n_train;
    /* Recurrent state and sliding windows cannot go back a few positions. */
    e->rollback = !llama_model_is_recurrent(e->model) && !llama_model_is_hybrid(e->model) &&
                  llama_model_n_swa(e->model) == 0;
    e->resize = e->rollback && !e->gpu;
    e->n_cap = e->resize && want > CDT_KV_INITIAL ? CDT_KV_INITIAL : want;
    cp.n_ctx = (uint32_t)e->n_cap;
    cp.n_batch = (uint32_t)(e->n_cap < CDT_MAX_BATCH ? e->n_cap : CDT_MAX_BATCH);
    /* Measured on the 0.6B shape, 2 threads, 478-token prompts: n_ubatch 256
     * evaluates as fast as 512 (within noise, 182 vs 169 tok/s), and its compute
     * buffer is half as big; on the 1.7B shape 512 was 2% slower. */
    cp.n_ubatch = (uint32_t)(e->n_cap < ubatch ? e->n_cap : ubatch);
    /* Logits are wanted for at most a token and its draft: the compute buffer then
     * holds CDT_MAX_DRAFT + 1 rows of logits instead of n_ubatch (~150 MB less on a
     * 150k vocabulary). */
    cp.n_outputs_max = CDT_MAX_DRAFT + 1;
    /* llama's penalty sampler in the graph takes one output per sequence; no draft
     * is verified while it is attached (engine_generate), nor ever on a GPU. */
    dev_sampling = env_on("CODICTATE_DEVICE_SAMPLING");
    if (dev_sampling)
        cp.n_outputs_max_per_seq = 1;
    /* The KV cache stays f16: a q8_0 K cache decodes no faster at these depths, and
     * a quantised V cache needs flash attention, which is off. */
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = e->n_threads;
    e->n_now = e->n_threads;
    /* Decode is ~20% faster without flash attention on CPU (ENGINES.md); with the
     * model on a GPU it is faster for prompt and decode (CUDA, H200: +16-19% decode),
     * so llama.cpp's automatic choice stays. */
    cp.flash_attn_type = e->gpu ? LLAMA_FLASH_ATTN_TYPE_AUTO : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    e->ctx = llama_init_from_model(e->model, cp);
    if (!e->ctx) {
        llama_model_free(e->model);
        e->model = NULL;
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM,
                               "could not create a context of %d tokens (not enough memory?)",
                               e->n_cap);
    }
    e->cp = cp;
    e->n_batch = (int)cp.n_batch;
    e->n_ctx = want;
    memset(&e->vt, 0, sizeof(e->vt));
    rc = scratch_alloc(e);
    if (rc != 0) {
        engine_unload(&e->base);
        return cdt__errmsg_set(errmsg, errcap, rc, "could not set up the sampler: %s",
                               cdt_strerror(rc));
    }
    /* With the model on a GPU the CPU threads are idle: half of them (1 to
     * CDT_SCAN_THREADS) may read each token's logits for the argmax. Threads that
     * spin between steps saved ~0.02 ms a step (bench/RESULTS.md, "CUDA": step_cost);
     * under the short OpenMP spin codictate runs with (GOMP_SPINCOUNT=3000) they sleep
     * and waking them costs more: one thread decodes 3-5% faster at the 1.7B shape
     * ("Where a GPU step's time goes"), so CDT_SCAN_THREADS is 1. */
    e->d.scan_threads = e->gpu ? e->n_threads / 2 : 1;
    if (e->d.scan_threads < 1)
        e->d.scan_threads = 1;
    if (e->d.scan_threads > CDT_SCAN_THREADS)
        e->d.scan_threads = CDT_SCAN_THREADS;

    if (llama_model_meta_val_str(e->model, "general.architecture", info->arch, sizeof(info->arch)) <
        0)
        info->arch[0] = '\0';
    if (llama_model_meta_val_str(e->model, "general.name", info->name, sizeof(info->name)) <= 0) {
        base = strrchr(info->path, '/');
        copy_str(info->name, sizeof(info->name), base ? base + 1 : info->path);
    }
    if (llama_model_desc(e->model, info->desc, sizeof(info->desc)) < 0)
        info->desc[0] = '\0';
    info->n_params = llama_model_n_params(e->model);
    info->n_ctx = e->n_ctx;
    info->n_ctx_train = n_train;
    tmpl = llama_model_chat_template(e->model, NULL);
    info->has_template = tmpl != NULL;
    e->no_think = tmpl && strstr(tmpl, "enable_thinking") != NULL;
    if (tmpl) {
        struct llama_chat_message msg = {"user", "x"};

        if (llama_chat_apply_template(tmpl, &msg, 1, true, NULL, 0) < 0)
            CDT_LOG_W(e->log,
                      "%s: llama.cpp does not know this chat template; prompts will use "
                      "a fallback format",
                      info->path);
    }

    if (e->gpu)
        gpu_warmup(e);
    else if (e->rollback)
        spec_calibrate(e); /* a GPU speculates in fixed-shape steps: nothing to plan */
    measure_speed(e, info);
    if (dev_sampling)
        dev_sampler_check(e);
    CDT_LOG_I(e->log,
              "loaded %s (%s, context %d, %d threads%s) in %.0f ms; %.3f ms per prompt token, "
              "%.2f ms per generated token",
              info->path, info->desc, e->n_ctx, e->n_threads, e->gpu ? ", GPU" : "",
              cdt_now_ms() - t0, info->prefill_ms, info->decode_ms);
    return 0;
}

static int engine_load(struct cdt_backend *be, const char *path, int n_ctx,
                       struct cdt_model_info *info, char *errmsg, size_t errcap)
{
    struct engine *e = engine_of(be);
    char why[512];
    int rc;

    engine_unload(be);
    memset(info, 0, sizeof(*info));
    why[0] = '\0';
    rc = load_model(e, path, n_ctx, info, why, sizeof(why));
    if (errmsg && errcap)
        snprintf(errmsg, errcap, "%s", why);
    if (rc != 0) {
        memset(info, 0, sizeof(*info));
        CDT_LOG_W(e->log, "load failed: %s", why[0] ? why : cdt_strerror(rc));
    } else {
        pthread_rwlock_wrlock(&e->tok_lock);
        e->tok_model = e->model;
        pthread_rwlock_unlock(&e->tok_lock);
    }
    return rc;
}

static int engine_count_tokens(struct cdt_backend *be, const char *text, size_t len, int *n)
{
    struct engine *e = engine_of(be);
    int32_t k;
    int rc = 0;

    *n = 0;
    if (len > INT32_MAX - 2)
        return CDT_ETOOBIG;
    pthread_rwlock_rdlock(&e->tok_lock);
    if (!e->tok_model) {
        rc = CDT_ESTATE;
    } else {
        /* With no room the count comes back negated (INT32_MIN: it overflows). */
        k = llama_tokenize(llama_model_get_vocab(e->tok_model), text, (int32_t)len, NULL, 0, false,
                           false);
        if (k == INT32_MIN)
            rc = CDT_ETOOBIG;
        else
            *n = k < 0 ? -k : k;
    }
    pthread_rwlock_unlock(&e->tok_lock);
    return rc;
}

/* ---- prompt formatting ------------------------------------------------------- */

/* The vocab has <|im_start|> as one control token: ChatML is its format. */
static bool vocab_is_chatml(const struct llama_vocab *vocab)
{
    static const char im_start[] = "<|im_start|>";
    llama_token t[4];
    int n = llama_tokenize(vocab, im_start, (int32_t)strlen(im_start), t, 4, false, true);

    return n == 1 && llama_vocab_is_control(vocab, t[0]);
}

/* The messages in the model's own chat format, ending with the assistant's turn
 * (thinking off), or a fallback: ChatML when the vocabulary has its tokens, else the
 * contents one after the other. `total` is the bytes of all contents. */
static int format_chat(struct engine *e, const struct llama_chat_message *msgs, int n, size_t total,
                       struct cdt_buf *out, const char **mode)
{
    const char *tmpl = llama_model_chat_template(e->model, NULL);

    if (tmpl) {
        size_t cap = total * 2 + 1024 + 64 * (size_t)n;

        for (int attempt = 0; attempt < 2; attempt++) {
            int32_t k;

            cdt_buf_truncate(out, 0);
            if (cap > INT32_MAX - 1 || cdt_buf_reserve(out, cap) != 0)
                return CDT_ENOMEM;
            k = llama_chat_apply_template(tmpl, msgs, (size_t)n, true, out->data, (int32_t)cap);
            if (k < 0)
                break; /* a template llama does not know: fall back */
            if ((size_t)k <= cap) {
                out->len = (size_t)k;
                out->data[k] = '\0';
                if (e->no_think && cdt_buf_appends(out, no_think_block) != 0)
                    return CDT_ENOMEM;
                *mode = "chat_template";
                return 0;
            }
            cap = (size_t)k;
        }
        CDT_LOG_D(e->log, "chat template not applicable: using a fallback format");
    }
    cdt_buf_truncate(out, 0);
    if (cdt_buf_reserve(out, 0) != 0)
        return CDT_ENOMEM;
    if (vocab_is_chatml(llama_model_get_vocab(e->model))) {
        for (int i = 0; i < n; i++)
            if (cdt_buf_appends(out, "<|im_start|>") != 0 ||
                cdt_buf_appends(out, msgs[i].role) != 0 || cdt_buf_appends(out, "\n") != 0 ||
                cdt_buf_appends(out, msgs[i].content) != 0 ||
                cdt_buf_appends(out, "<|im_end|>\n") != 0)
                return CDT_ENOMEM;
        if (cdt_buf_appends(out, "<|im_start|>assistant\n") != 0)
            return CDT_ENOMEM;
        *mode = "chatml";
    } else {
        for (int i = 0; i < n; i++)
            if ((i > 0 && cdt_buf_appends(out, "\n\n") != 0) ||
                cdt_buf_appends(out, msgs[i].content) != 0)
                return CDT_ENOMEM;
        *mode = "raw";
    }
    return 0;
}

/* The request's prompt (one user message) or messages, formatted. Validates them:
 * fills r->errmsg and returns CDT_EINVAL / CDT_ETOOBIG when they are not usable. */
/* A message's content in the formatted prompt is replaced by this marker (its index
 * after it) when the prompt is formatted for tokenizing: the template's own text
 * around the markers may hold control tokens, the contents may not. */
#define CONTENT_MARK                                                                               \
    "\x1f"                                                                                         \
    "cdt-content-"

static int format_request(struct engine *e, const struct cdt_gen_params *p, struct cdt_buf *out,
                          struct cdt_gen_result *r, bool marks)
{
    static char mark_text[CDT_MAX_CHAT_MSGS][32];
    struct llama_chat_message msgs[CDT_MAX_CHAT_MSGS];
    size_t total = 0;
    int n, rc;

    if (p->n_messages > 0) {
        if (!p->messages)
            return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_EINVAL, "no messages");
        if (p->n_messages > CDT_MAX_CHAT_MSGS)
            return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ETOOBIG,
                                   "too many messages: %d (CDT_MAX_CHAT_MSGS is %d)", p->n_messages,
                                   CDT_MAX_CHAT_MSGS);
        n = p->n_messages;
        for (int i = 0; i < n; i++) {
            const struct cdt_chat_msg *m = &p->messages[i];

            if (!m->role || !m->role[0] || !m->content)
                return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_EINVAL,
                                       "message %d has no role or no content", i + 1);
            total += strnlen(m->content, (size_t)CDT_MAX_PROMPT_BYTES + 1) +
                     strnlen(m->role, (size_t)CDT_MAX_PROMPT_BYTES + 1);
            if (total > CDT_MAX_PROMPT_BYTES)
                break;
            msgs[i].role = m->role;
            msgs[i].content = m->content;
        }
    } else {
        if (!p->prompt)
            return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_EINVAL, "no prompt");
        n = 1;
        total = strnlen(p->prompt, (size_t)CDT_MAX_PROMPT_BYTES + 1);
        msgs[0].role = "user";
        msgs[0].content = p->prompt;
    }
    if (total > CDT_MAX_PROMPT_BYTES)
        return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ETOOBIG,
                               "Prompt too long: over %d bytes (CDT_MAX_PROMPT_BYTES)",
                               CDT_MAX_PROMPT_BYTES);
    if (marks) {
        /* Written once per index, the same bytes every time: safe to share. */
        for (int i = 0; i < n; i++) {
            snprintf(mark_text[i], sizeof(mark_text[i]), CONTENT_MARK "%d\x1f", i);
            msgs[i].content = mark_text[i];
        }
    }
    rc = format_chat(e, msgs, n, total, out, &r->prompt_format_mode);
    if (rc != 0)
        return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), rc, "could not format the prompt: %s",
                               cdt_strerror(rc));
    r->prompt_format_fallback = strcmp(r->prompt_format_mode, "chat_template") != 0;
    return 0;
}

/* The content of message i of a request. */
static const char *content_of(const struct cdt_gen_params *p, int i)
{
    return p->n_messages > 0 ? p->messages[i].content : p->prompt;
}

/* Appends the tokens of text[0, len) to *toks (n of cap used): the template's text
 * (special: its control tokens are parsed; add_bos at the very start) or a
 * message's content (never: "<|im_end|>" typed by a person is text, not the end of
 * a turn). Returns the new count or a negative error. */
static int tokens_append(const struct llama_vocab *vocab, const char *text, size_t len,
                         bool special, bool add_bos, llama_token **toks, int n, size_t *cap)
{
    int32_t k;

    if (len > INT32_MAX - 2)
        return CDT_ETOOBIG;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = *cap - (size_t)n;

        k = llama_tokenize(vocab, text, (int32_t)len, *toks + n, (int32_t)room, add_bos, special);
        if (k >= 0)
            return n + k;
        if (k == INT32_MIN)
            return CDT_ETOOBIG;
        {
            size_t want = (size_t)n + (size_t)-k + 2;
            llama_token *t = realloc(*toks, sizeof(**toks) * want);

            if (!t)
                return CDT_ENOMEM;
            *toks = t;
            *cap = want;
        }
    }
    return CDT_EENGINE;
}

/* Tokenizes a prompt formatted with content marks (format_request(…, true)): the
 * template's pieces with their control tokens, each message's content as plain text
 * in its place. Returns the count (tokens in *toks, caller frees) or an error. */
static int tokenize_marked(struct engine *e, const struct cdt_buf *fmt,
                           const struct cdt_gen_params *p, bool with_tail, llama_token **toks)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(e->model);
    int n_msgs = p->n_messages > 0 ? p->n_messages : 1, n = 0;
    size_t cap = fmt->len + 16, at = 0;
    bool add_bos = llama_vocab_get_add_bos(vocab);

    for (int i = 0; i < n_msgs; i++)
        cap += strlen(content_of(p, i)) + 2;
    *toks = malloc(sizeof(**toks) * cap);
    if (!*toks)
        return CDT_ENOMEM;
    for (int i = 0; i <= n_msgs && n >= 0; i++) {
        char mark[32];
        const char *hit = NULL;
        size_t piece;

        if (i < n_msgs) {
            snprintf(mark, sizeof(mark), CONTENT_MARK "%d\x1f", i);
            hit = memmem(fmt->data + at, fmt->len - at, mark, strlen(mark));
            if (!hit) {
                /* A template that dropped or rewrote a message: tokenize its text as is. */
                CDT_LOG_W(e->log, "prompt: message %d not found in the formatted prompt", i + 1);
                continue;
            }
        }
        if (!hit && !with_tail)
            break; /* a warmup: the prompt's beginning, up to the end of its content */
        piece = (hit ? (size_t)(hit - fmt->data) : fmt->len) - at;
        n = tokens_append(vocab, fmt->data + at, piece, true, add_bos && at == 0, toks, n, &cap);
        if (n < 0 || !hit)
            break;
        at += piece + strlen(mark);
        n = tokens_append(vocab, content_of(p, i), strlen(content_of(p, i)), false, false, toks, n,
                          &cap);
    }
    /* A template that writes the BOS text itself, plus add_bos: keep one BOS. */
    if (n >= 2 && add_bos && (*toks)[0] == (*toks)[1] && (*toks)[0] == llama_vocab_bos(vocab)) {
        memmove(*toks, *toks + 1, sizeof(**toks) * (size_t)(n - 1));
        n--;
    }
    return n;
}

/* ---- generate ---------------------------------------------------------------- */

static bool canceled(const struct cdt_gen_params *p)
{
    return p && p->should_cancel && p->should_cancel(p->user_data) != 0;
}

static bool past_deadline(const struct cdt_gen_params *p)
{
    return p && p->deadline_ns > 0 && cdt_now_ns() >= p->deadline_ns;
}

/* Watches a prompt evaluation from inside llama_decode (its abort callback, called
 * between graph nodes on the calling thread): the deadline, and should_cancel at
 * most every CDT_POLL_MS. */
struct watch {
    const struct cdt_gen_params *p; /* NULL: nothing to watch */
    double next_poll;               /* ms, cdt_now_ms() clock */
    int why;                        /* once fired: CDT_ETIMEOUT or CDT_ECANCELED */
};

static bool watch_abort(void *data)
{
    struct watch *w = data;
    double t;

    if (w->why)
        return true;
    if (past_deadline(w->p)) {
        w->why = CDT_ETIMEOUT;
        return true;
    }
    if (w->p && w->p->should_cancel && (t = cdt_now_ms()) >= w->next_poll) {
        w->next_poll = t + CDT_POLL_MS;
        if (canceled(w->p)) {
            w->why = CDT_ECANCELED;
            return true;
        }
    }
    return false;
}

/* Evaluates toks[e->n_kv..n) in chunks that end at multiples of e->chunk
 * (or at n), one llama_decode each, so that the cache holds toks[0..n) and the logits
 * of the last are ready. A position is then always computed in the same batch, with
 * the same neighbours, whatever the cache held (kv_keep_prefix reuses whole chunks
 * only). Returns 0, CDT_ECANCELED, CDT_ETIMEOUT (the deadline of p), or CDT_EENGINE;
 * on an error the cache keeps what it held before the chunk that failed. */
static int eval_prompt(struct engine *e, const llama_token *toks, int n,
                       const struct cdt_gen_params *p)
{
    struct watch w = {p, 0.0, 0};
    int8_t outs[CDT_GPU_CHUNK > CDT_PROMPT_CHUNK ? CDT_GPU_CHUNK : CDT_PROMPT_CHUNK] = {0};
    int rc = 0;

    llama_set_abort_callback(e->ctx, watch_abort, &w);
    while (e->n_kv < n) {
        int end = (e->n_kv / e->chunk + 1) * e->chunk, k, dr;

        k = (end < n ? end : n) - e->n_kv;

        if (canceled(p)) {
            rc = CDT_ECANCELED;
            break;
        }
        if (past_deadline(p)) {
            rc = CDT_ETIMEOUT;
            break;
        }
        w.next_poll = cdt_now_ms() + CDT_POLL_MS;
        {
            /* Logits for the prompt's last token only: a chunk's keys and values are
             * the same with or without (llama selects the output rows after the last
             * layer's attention), and a vocabulary-sized output row per chunk would
             * cost small models more than the chunk (152k x 384 per row on the
             * built-in model). */
            struct llama_batch bt = llama_batch_get_one((llama_token *)toks + e->n_kv, k);

            outs[k - 1] = e->n_kv + k == n;
            bt.logits = outs;
            dr = llama_decode(e->ctx, bt);
            outs[k - 1] = 0;
        }
        if (dr != 0) {
            rc = w.why ? w.why : CDT_EENGINE;
            /* An aborted batch may leave some of its tokens behind. */
            if (!llama_memory_seq_rm(llama_get_memory(e->ctx), 0, e->n_kv, -1))
                kv_reset(e);
            if (!w.why)
                CDT_LOG_W(e->log, "llama_decode failed on the prompt (%d)", dr);
            break;
        }
        memcpy(e->kv + e->n_kv, toks + e->n_kv, sizeof(*toks) * (size_t)k);
        if (e->n_canon == e->n_kv && e->n_kv + k == end)
            e->n_canon = end;
        e->n_kv += k;
    }
    /* On a GPU llama_decode returns before the last batch is computed: wait here, so
     * that the prompt's time is counted as the prompt's (timings.prompt_ms), not as
     * the first token's. */
    if (rc == 0)
        llama_synchronize(e->ctx);
    llama_set_abort_callback(e->ctx, NULL, NULL);
    return rc;
}

/* Appends one token's text; calls on_text with what became whole characters.
 * Returns 0, 1 when on_text asked to stop, or an error. */
static int emit_token(struct engine *e, llama_token tok, const struct cdt_gen_params *p,
                      struct utf8_asm *u, struct cdt_buf *out, struct cdt_buf *piece)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(e->model);
    size_t before = out->len;
    int32_t n;

    /* special=false: control tokens (<|im_end|>) render as nothing; user-defined
     * ones such as <think> render as text, which the sidecar's cleaning strips. */
    n = llama_token_to_piece(vocab, tok, piece->data, (int32_t)piece->cap, 0, false);
    if (n < 0) {
        if ((size_t)-n > CDT_MAX_PIECE_BYTES)
            return CDT_EENGINE;
        if (cdt_buf_reserve(piece, (size_t)-n) != 0)
            return CDT_ENOMEM;
        n = llama_token_to_piece(vocab, tok, piece->data, (int32_t)piece->cap, 0, false);
        if (n < 0)
            return CDT_EENGINE;
    }
    if (utf8_push(u, piece->data, (size_t)n, out) != 0)
        return CDT_ENOMEM;
    if (out->len > before && p->on_text &&
        p->on_text(out->data + before, out->len - before, p->user_data) != 0)
        return 1;
    return 0;
}

/* One generation in progress. */
struct gen {
    struct engine *e;
    const struct cdt_gen_params *p;
    struct cdt_gen_result *r;
    struct sampler s;
    struct spec spec;
    int idle; /* steps in a row without a draft (fixed_batch) */
    /* fixed_batch: the steps of that shape, the drafted tokens they accepted, and
     * whether drafting stopped for this generation (spec_fixed_pays said no) */
    int fx_steps, fx_gain;
    bool fx_off;
    /* Where decode time goes (the debug log's "steps" line): steps, their rows, and
     * ms in llama_decode, in reading the rows (verification, sampling) and in
     * dropping tokens from the KV cache. */
    int n_steps, n_rows;
    double ms_decode, ms_rows, ms_trunc;
    llama_token *hist; /* prompt and output so far (n_ctx + 1 tokens) */
    int n_hist;
    struct spec_text look; /* with spec.on: what drafts are looked up in (look_begin) */
    int n_gen;             /* tokens generated */
    int max_tokens;        /* limit of n_gen */
    bool ctx_cut;          /* max_tokens was lowered to what the context has left */
    const char *finish;
    struct utf8_asm u;
    struct cdt_buf out, piece;
    bool dev_sampling; /* tokens come from the chain in the graph (dev_sampler_begin) */
    float margin;      /* with p->trace: that of the logits the next token comes from */

    /* OpenAI's options (p->frequency_penalty, grammar, on_logprobs; constrain_*) */
    int n_prompt;               /* hist[n_prompt..n_hist) are the generated tokens */
    struct llama_sampler *gram; /* p->grammar's sampler, or NULL */
    llama_token_data *gcand;    /* n_vocab: the grammar's candidates (a full mask) */
    float lp_norm;              /* with on_logprobs: log-normaliser of the position */
    float lp_chosen;            /* the chosen token's log-probability */
    llama_token lp_ids[CDT_MAX_TOP_LOGPROBS];
    float lp_vals[CDT_MAX_TOP_LOGPROBS];
    int lp_n;
    char lp_buf[CDT_MAX_TOP_LOGPROBS + 1][CDT_LP_PIECE];
    struct cdt_json_scan js; /* with p->grammar_json: the JSON generated so far */
};

/* With p->trace: notes the margin of prepared logits z (NULL: sampled in the graph,
 * unknown), for the token chosen from them. */
static void trace_margin(struct gen *g, const float *z)
{
    if (g->p->trace)
        g->margin = z ? sampler_margin(&g->e->d, z) : NAN;
}

/* ---- OpenAI's options: penalties over the generated tokens, a grammar, logprobs ---- */

/* The frequency and presence penalties of the tokens generated so far on z. */
static void constrain_prepare(struct gen *g, float *z)
{
    const struct cdt_gen_params *p = g->p;

    if (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f)
        sampler_penalize_counts(&g->e->d, z, g->hist + g->n_prompt, g->n_hist - g->n_prompt,
                                p->frequency_penalty, p->presence_penalty);
}

static bool grammar_allows(struct gen *g, llama_token t)
{
    llama_token_data td = {t, 0.0f, 0.0f};
    llama_token_data_array a = {&td, 1, -1, false};

    llama_sampler_apply(g->gram, &a);
    return td.logit != -INFINITY;
}

/* Sets the logits of the tokens the grammar does not allow next to -inf (a pass of
 * the grammar over the whole vocabulary). */
static void grammar_mask(struct gen *g, float *z)
{
    int n = g->e->d.n_vocab;
    llama_token_data_array a = {g->gcand, (size_t)n, -1, false};

    for (int i = 0; i < n; i++)
        g->gcand[i] = (llama_token_data){i, z[i], 0.0f};
    llama_sampler_apply(g->gram, &a);
    for (size_t i = 0; i < a.size; i++)
        z[a.data[i].id] = a.data[i].logit;
}

/* Before the sampler draws from prepared logits z: notes the position's
 * log-probabilities (before the grammar's mask, as llama-server reports them). */
static void constrain_logits(struct gen *g, float *z)
{
    struct dist *d = &g->e->d;

    if (g->p->on_logprobs) {
        g->lp_norm = sampler_log_norm(d, z);
        g->lp_n = sampler_top_k(d, z, g->p->top_logprobs, g->lp_ids);
        for (int i = 0; i < g->lp_n; i++)
            g->lp_vals[i] = z[g->lp_ids[i]] - g->lp_norm;
    }
}

/* The sampler keyed for the i-th extra draw at a position (i >= 1): independent of
 * the plain draw and of each other, and as repeatable. */
static struct sampler redraw_key(const struct sampler *s, int i)
{
    struct sampler alt = *s;

    alt.key += 0xD1B54A32D192ED03ull * (uint64_t)i;
    return alt;
}

/* The tokens of the shortest completion of the JSON that scanner js has read, into
 * toks (CDT_JSON_SCAN_DEPTH + 32 of them). Returns how many (0: complete), or -1
 * when it cannot tell. */
static int json_closing_tokens(struct gen *g, const struct cdt_json_scan *js, llama_token *toks)
{
    char text[CDT_JSON_SCAN_DEPTH + 32];
    int n = cdt__json_scan_closing(js, text, sizeof(text));

    if (n <= 0)
        return n;
    return llama_tokenize(llama_model_get_vocab(g->e->model), text, n, toks,
                          CDT_JSON_SCAN_DEPTH + 32, false, false);
}

/* With grammar_json, once the tokens left are few, after the choice *next (which
 * the grammar allows): when the JSON's completion after it would not fit in the
 * tokens left (with one to spare, and a token for each byte still to come of a
 * character it starts: the grammar takes nothing else until they are there), sets
 * *next to the first token of the completion of the JSON so far and returns true.
 * The completion after the choice is tokenised first: when it fits (most tokens),
 * the one so far is not needed. */
static bool json_close(struct gen *g, llama_token *next)
{
    int left = g->max_tokens - g->n_gen, k;
    llama_token toks[CDT_JSON_SCAN_DEPTH + 32];
    struct cdt_json_scan after;
    char piece[CDT_LP_PIECE];
    int32_t n;

    if (left > CDT_JSON_SCAN_DEPTH + 16 || g->js.utf8_left > 0)
        return false; /* time enough, or a character's bytes must come first */
    n = llama_token_to_piece(llama_model_get_vocab(g->e->model), *next, piece,
                             (int32_t)sizeof(piece), 0, false);
    if (n >= 0) {
        after = g->js;
        cdt__json_scan_feed(&after, piece, (size_t)n);
        k = json_closing_tokens(g, &after, toks);
        if (k >= 0 && k + after.utf8_left + 2 <= left)
            return false;
    }
    k = json_closing_tokens(g, &g->js, toks);
    if (k <= 0 || !grammar_allows(g, toks[0]))
        return false;
    *next = toks[0];
    return true;
}

/* After the sampler chose *next: holds it to the grammar, at the cost of a pass of
 * the grammar over the vocabulary only when needed. A choice is checked alone
 * (cheap). Greedy's refused choice: the mask, then the argmax of what it allows (the
 * same token as masking first). Sampling's: rejection sampling, up to
 * CDT_GRAMMAR_REDRAWS more independent draws from the same distribution, the first
 * the grammar allows taken, and after that a draw from the masked distribution:
 * either way a draw from the masked distribution exactly. When the grammar allows
 * nothing (the output is complete), the choice is an end token. Near the end of
 * the token budget, a json_object choice that leaves no room to close is replaced
 * by the closing (json_close). */
static void constrain_choice(struct gen *g, float *z, llama_token *next)
{
    struct dist *d = &g->e->d;

    if (g->gram && !grammar_allows(g, *next)) {
        int i = 1;
        bool ok = false;
        struct sampler alt;

        for (; g->s.temp > 0.0f && i <= CDT_GRAMMAR_REDRAWS && !ok; i++) {
            alt = redraw_key(&g->s, i);
            *next = sampler_sample(d, &alt, z, g->n_gen);
            ok = grammar_allows(g, *next);
        }
        if (ok)
            goto chosen;
        grammar_mask(g, z);
        alt = redraw_key(&g->s, i);
        *next = sampler_sample(d, &alt, z, g->n_gen);
        if (!grammar_allows(g, *next))
            *next = d->n_eog > 0 ? d->eog[0] : llama_vocab_eos(llama_model_get_vocab(g->e->model));
    }
chosen:
    if (g->p->grammar_json)
        json_close(g, next);
    if (g->p->on_logprobs)
        g->lp_chosen = z[*next] - g->lp_norm;
}

static void lp_piece(struct gen *g, llama_token t, int slot, struct cdt_token_prob *out)
{
    int32_t n = llama_token_to_piece(llama_model_get_vocab(g->e->model), t, g->lp_buf[slot],
                                     CDT_LP_PIECE, 0, false);

    out->piece = g->lp_buf[slot];
    out->len = n > 0 ? (size_t)n : 0;
}

/* Takes generated token tok into the grammar and reports its log-probabilities. */
static void constrain_take(struct gen *g, llama_token tok)
{
    if (g->gram)
        llama_sampler_accept(g->gram, tok);
    if (g->p->grammar_json) {
        char piece[CDT_LP_PIECE];
        int32_t n = llama_token_to_piece(llama_model_get_vocab(g->e->model), tok, piece,
                                         (int32_t)sizeof(piece), 0, false);

        if (n < 0)
            g->js.broken = true; /* a piece this long is no JSON token */
        else
            cdt__json_scan_feed(&g->js, piece, (size_t)n);
    }
    if (g->p->on_logprobs) {
        struct cdt_token_logprobs lp;

        memset(&lp, 0, sizeof(lp));
        lp_piece(g, tok, 0, &lp.token);
        lp.token.logprob = g->lp_chosen;
        for (int i = 0; i < g->lp_n; i++) {
            lp_piece(g, g->lp_ids[i], i + 1, &lp.top[i]);
            lp.top[i].logprob = g->lp_vals[i];
        }
        lp.n_top = g->lp_n;
        g->p->on_logprobs(&lp, g->p->user_data);
    }
}

/* The next token after output row idx of the last decode: the chain in the graph, else
 * ours over the logits. */
static int sample_next(struct gen *g, int idx, llama_token *next)
{
    struct engine *e = g->e;
    float *z;

    if (g->dev_sampling) {
        llama_token t = llama_get_sampled_token_ith(e->ctx, idx);

        if (t == LLAMA_TOKEN_NULL)
            return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                                   "the sampler in the graph returned no token");
        llama_sampler_accept(e->gs, t); /* its penalty window: the text so far */
        trace_margin(g, NULL);
        *next = t;
        return 0;
    }
    z = llama_get_logits_ith(e->ctx, idx);
    if (!z)
        return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                               "llama returned no logits");
    sampler_prepare(&e->d, &g->s, z, g->hist, g->n_hist);
    constrain_prepare(g, z);
    trace_margin(g, z);
    constrain_logits(g, z);
    *next = sampler_sample(&e->d, &g->s, z, g->n_gen);
    constrain_choice(g, z, next);
    return 0;
}

/* ---- what drafts are looked up in -------------------------------------------- */

/* The text of token t (control tokens by their names), at most cap - 1 bytes; its
 * length. */
static int piece_of(const struct llama_vocab *v, llama_token t, char *buf, int cap)
{
    int n = llama_token_to_piece(v, t, buf, cap - 1, 0, true);

    n = n < 0 ? 0 : n;
    buf[n] = '\0';
    return n;
}

static void look_push(const struct engine *e, struct spec_text *t, llama_token tok)
{
    char buf[128];
    int n = piece_of(llama_model_get_vocab(e->model), tok, buf, sizeof(buf));

    spec_text_push(t, tok, spec_key(buf, n));
}

static bool all_space(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

/* Whether s is a closing tag, "</name>", between whitespace. */
static bool closing_tag(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (s[0] != '<' || s[1] != '/')
        return false;
    for (s += 2; isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == ':' || *s == '.';
         s++)
        ;
    if (*s++ != '>')
        return false;
    return all_space(s);
}

static bool space_token(const struct llama_vocab *v, llama_token t)
{
    char buf[128];

    piece_of(v, t, buf, sizeof(buf));
    return all_space(buf);
}

/* Where the user's text ends in toks[0..u), u the turn's end token: before the
 * closing tag it is wrapped in (the refine prompt's "</transcript>", within
 * CDT_TAG_TOKENS tokens) and the whitespace before that. */
static int user_text_end(const struct llama_vocab *v, const llama_token *toks, int u)
{
    char tail[CDT_TAG_TOKENS * 32 + 1], buf[128];
    int c = u, len = 0;

    tail[0] = '\0';
    for (int j = u - 1; j >= 0 && j >= u - CDT_TAG_TOKENS; j--) {
        int n = piece_of(v, toks[j], buf, sizeof(buf));

        if (len + n >= (int)sizeof(tail))
            break;
        memmove(tail + n, tail, (size_t)len + 1); /* the piece goes in front */
        memcpy(tail, buf, (size_t)n);
        len += n;
        if (closing_tag(tail)) {
            c = j;
            break;
        }
    }
    while (c > 0 && space_token(v, toks[c - 1]))
        c--;
    return c;
}

/* Fills g->look: a cleanup's answer ends where the user's text ends, so there the
 * text looked up in has the turn's end token (<|im_end|> in Qwen's template, an
 * end-of-generation token) right after the user's last word or mark, and a draft
 * that reaches it proposes the end of the answer. Without that, the draft ran on
 * into the prompt's "\n</transcript>" and every answer spent a step of its own on
 * its end token (bench/RESULTS.md, "Drafts that end the answer"). The prompt's
 * last token of that text loses its trailing whitespace (".\n" becomes "."); the
 * closing tag, and the template's tokens after the turn's end (the assistant's
 * header), are left out. A prompt without an end token (a raw completion) is
 * looked up in whole. */
static int look_begin(struct gen *g, const llama_token *toks, int n)
{
    const struct llama_vocab *v = llama_model_get_vocab(g->e->model);
    struct spec_text *t = &g->look;
    char buf[128];
    int u = n - 1, c;

    if (spec_text_init(t, g->e->n_ctx + 2) != 0)
        return CDT_ENOMEM;
    while (u >= 0 && !llama_vocab_is_eog(v, toks[u]))
        u--;
    if (u < 0) {
        for (int i = 0; i < n; i++)
            look_push(g->e, t, toks[i]);
        return 0;
    }
    c = user_text_end(v, toks, u);
    for (int i = 0; i < c - 1; i++)
        look_push(g->e, t, toks[i]);
    if (c > 0) {
        llama_token last = toks[c - 1], one;
        int len = piece_of(v, last, buf, sizeof(buf));

        while (len > 0 && isspace((unsigned char)buf[len - 1]))
            buf[--len] = '\0';
        if (len > 0 && llama_tokenize(v, buf, len, &one, 1, false, false) == 1)
            last = one;
        look_push(g->e, t, last);
    }
    look_push(g->e, t, toks[u]);
    return 0;
}

/* Takes a token the sampler chose. Returns 0 to go on, 1 when the generation is over
 * (g->finish says why), or an error. */
static int take(struct gen *g, llama_token tok)
{
    struct cdt_gen_trace *tr = g->p->trace;
    int rc;

    if (tr && tr->n < tr->cap) {
        tr->tokens[tr->n] = tok;
        tr->margin[tr->n++] = g->margin;
    }
    if ((!g->p->ignore_eos || g->gram) &&
        llama_vocab_is_eog(llama_model_get_vocab(g->e->model), tok)) {
        g->finish = "stop";
        return 1;
    }
    constrain_take(g, tok);
    g->hist[g->n_hist++] = tok;
    if (g->look.cap)
        look_push(g->e, &g->look, tok);
    g->n_gen++;
    rc = emit_token(g->e, tok, g->p, &g->u, &g->out, &g->piece);
    if (rc == 1) {
        /* The caller has what it wants; an incomplete character is dropped so that
         * the result is exactly what on_text received. */
        g->r->stopped_by_callback = true;
        g->finish = "stop";
        return 1;
    }
    if (rc != 0)
        return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), rc,
                               "could not render a token: %s", cdt_strerror(rc));
    if (g->n_gen >= g->max_tokens) {
        g->finish = "length";
        return 1;
    }
    return 0;
}

/* Fixed shape, with backoff (CODICTATE_GPU_SPEC_BACKOFF): after a draft failed whole,
 * while the accepted share is low, no draft until the probe's wait ran out (the
 * speculative.c planner's probing), and the steps in between decode single tokens. */
static bool backing_off(const struct gen *g)
{
    return g->e->fixed_batch && g->e->fixed_backoff && g->spec.wait > 0 &&
           (g->spec.hits + 1.0f) / (g->spec.tries + 2.0f) < CDT_GPU_BACKOFF;
}

/* Fixed shape: no draft now, by the backoff or because this generation's steps of
 * that shape stopped paying (fx_off). */
static bool drafts_paused(const struct gen *g)
{
    return g->fx_off || backing_off(g);
}

/* The draft for the step after token `tok` (the last of g->hist): up to the planned
 * length, within max_tokens, cut after an end token (before it with ignore_eos,
 * where it can never be accepted). */
static int plan_draft(struct gen *g, llama_token *draft)
{
    int k = g->e->fixed_batch && g->spec.on ? g->e->fixed_batch - 1 : spec_plan(&g->spec);
    int left = g->max_tokens - g->n_gen - 1;

    if (k > 0 && drafts_paused(g))
        return 0;

    if (k > left)
        k = left;
    if (k <= 0)
        return 0;
    k = spec_text_draft(&g->look, k, g->e->fixed_batch ? CDT_WORDS_FIXED : CDT_WORDS_PLANNED,
                        draft);
    for (int i = 0; i < k; i++)
        if (sampler_is_eog(&g->e->d, draft[i]))
            return g->s.ignore_eos ? i : i + 1;
    return k;
}

/* struct spec_rows over the verification batch's output rows (step). */
static float *verify_row(void *user_data, int i)
{
    struct gen *g = user_data;
    float *z = llama_get_logits_ith(g->e->ctx, i);

    if (!z) {
        cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                        "llama returned no logits");
        return NULL;
    }
    sampler_prepare(&g->e->d, &g->s, z, g->hist, g->n_hist);
    constrain_prepare(g, z);
    trace_margin(g, z);
    return z;
}

static int verify_take(void *user_data, int32_t x)
{
    struct gen *g = user_data;

    g->r->timings.accepted_tokens++;
    return take(g, x);
}

/* Decodes `tok` (and its draft, if any) and picks the tokens that follow. Returns
 * 0 with *next set, 1 when the generation is over, or an error. */
static int step(struct gen *g, llama_token tok, llama_token *next)
{
    struct engine *e = g->e;
    struct llama_batch *b = &e->batch;
    llama_token draft[CDT_MAX_DRAFT];
    int nd = plan_draft(g, draft), m = 0, rc = 0, base = e->n_kv, dr;
    double t0, t1;
    const bool fixed = g->spec.on && e->fixed_batch > 0 && base + e->fixed_batch <= e->n_ctx;
    int nb = nd + 1;

    /* One shape while drafts come, single tokens after e->spec_idle steps without
     * one (text that cannot be drafted), back at the next draft; single tokens for
     * the rest of the generation once the steps of that shape stop paying. Each change
     * of shape costs llama a graph rebuild (~0.6 ms at the 0.6B shape on an H100), so
     * single tokens at the first step without a draft lost (spec_idle 0: 2.05x
     * against 2.10x; bench/RESULTS.md, "One CUDA graph per shape"). */
    if (fixed) {
        g->idle = nd > 0 ? 0 : drafts_paused(g) ? e->spec_idle : g->idle + 1;
        nb = nd > 0 || g->idle < e->spec_idle ? e->fixed_batch : 1;
        g->fx_steps += nb > 1;
    }

    /* Past the capacity: grow it by half (max_tokens keeps base + nd < n_ctx). */
    if (base + nb > e->n_cap) {
        int grow = e->n_cap + e->n_cap / 2;

        if (ctx_fit(e, base + nb > grow ? base + nb : grow) != 0 || e->n_kv != base)
            return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_ENOMEM,
                                   "could not grow the context to %d tokens (not enough memory?)",
                                   base + nb);
        if (g->dev_sampling && !dev_sampler_begin(e, &g->s, true, g->hist, g->n_hist))
            return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                                   "could not sample in the new context's graph");
    }
    b->n_tokens = nb;
    for (int i = 0; i < nb; i++) {
        b->token[i] = i == 0 ? tok : i <= nd ? draft[i - 1] : nd > 0 ? draft[nd - 1] : tok;
        b->pos[i] = base + i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = 0;
        b->logits[i] = true; /* each row verifies a draft, or is the only one */
    }
    t0 = cdt_now_ms();
    dr = llama_decode(e->ctx, *b);
    t1 = cdt_now_ms();
    g->ms_decode += t1 - t0;
    g->n_steps++;
    g->n_rows += nb;
    if (dr != 0) {
        kv_reset(e);
        return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                               "llama_decode failed (%d)", dr);
    }
    memcpy(e->kv + base, b->token, sizeof(*b->token) * (size_t)nb);
    e->n_kv = base + nb;
    if (nd == 0) {
        spec_idle(&g->spec);
        if (nb > 1 && kv_truncate(e, base + 1) != 0) /* the padding */
            return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                                   "could not drop padding from the KV cache");
        t0 = cdt_now_ms();
        g->ms_trunc += t0 - t1;
        rc = sample_next(g, 0, next);
        g->ms_rows += cdt_now_ms() - t0;
        return rc;
    }

    /* Row i holds the distribution after draft[i - 1]: accept draft[i] with its
     * probability there, penalties counting the draft accepted so far. */
    g->r->timings.draft_tokens += nd;
    {
        const struct spec_rows rows = {verify_row, verify_take, g};

        m = spec_verify(&e->d, &g->s, &rows, draft, nd, g->n_gen, next, &rc);
    }
    /* The cache keeps the token and the draft that was accepted. */
    t0 = cdt_now_ms();
    g->ms_rows += t0 - t1;
    if (kv_truncate(e, base + 1 + m) != 0)
        return cdt__errmsg_set(g->r->errmsg, sizeof(g->r->errmsg), CDT_EENGINE,
                               "could not drop rejected draft tokens from the KV cache");
    g->ms_trunc += cdt_now_ms() - t0;
    if (rc != 0)
        return rc;
    spec_update(&g->spec, m, nd);
    if (fixed) {
        g->fx_gain += m;
        g->fx_off = g->fx_off || !spec_fixed_pays(g->fx_steps, g->fx_gain);
    }
    if (m == nd) {
        t0 = cdt_now_ms();
        rc = sample_next(g, nd, next);
        g->ms_rows += cdt_now_ms() - t0;
    }
    return rc;
}

static int engine_generate(struct cdt_backend *be, const struct cdt_gen_params *p,
                           struct cdt_gen_result *r)
{
    struct engine *e = engine_of(be);
    struct gen g;
    struct cdt_buf fmt = {0};
    llama_token *toks = NULL, tok = -1;
    double t_prompt, t_gen = 0.0, t_end;
    int rc = 0, n_prompt, n_cached;

    memset(r, 0, sizeof(*r));
    memset(&g, 0, sizeof(g));
    g.e = e;
    g.p = p;
    g.r = r;
    r->prompt_format_mode = "raw";
    r->prompt_format_fallback = true;
    if (!e->model)
        return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ESTATE, "no model loaded");
    if (!p)
        return cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_EINVAL, "no prompt");

    rc = format_request(e, p, &fmt, r, true);
    if (rc != 0)
        goto done;
    n_prompt = tokenize_marked(e, &fmt, p, true, &toks);
    if (n_prompt < 0) {
        rc = n_prompt;
        cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), rc, "could not tokenize the prompt: %s",
                        cdt_strerror(rc));
        goto done;
    }
    r->timings.prompt_tokens = n_prompt;
    if (n_prompt == 0) {
        rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_EINVAL, "empty prompt");
        goto done;
    }
    if (n_prompt >= e->n_ctx) {
        rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ETOOBIG,
                             "Prompt too long: %d tokens, context %d", n_prompt, e->n_ctx);
        goto done;
    }
    g.max_tokens =
        p->max_tokens > 0 ? p->max_tokens : cdt_limits_max_tokens(n_prompt, p->system_ram_gb);
    if (g.max_tokens > e->n_ctx - n_prompt) {
        g.max_tokens = e->n_ctx - n_prompt;
        g.ctx_cut = true;
    }
    pick_threads(e);
    sampler_init(&g.s, p, e->n_ctx);
    g.n_prompt = n_prompt;
    if (p->grammar) {
        g.gram = llama_sampler_init_grammar(llama_model_get_vocab(e->model), p->grammar, "root");
        g.gcand = malloc(sizeof(*g.gcand) * (size_t)e->d.n_vocab);
        if (!g.gram || !g.gcand) {
            rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), g.gram ? CDT_ENOMEM : CDT_EINVAL,
                                 g.gram ? "out of memory" : "the grammar could not be parsed");
            goto done;
        }
    }
    /* On a GPU only in fixed-shape steps (fixed_batch; CODICTATE_GPU_SPEC_BATCH=0 turns
     * it off there): drafts of varying length cost CUDA graphs and ran at 0.79-0.94x
     * ("Speculation on a model that copies (issue 15 §4, GPU)").
     * CODICTATE_GPU_SPECULATION=1 with CODICTATE_GPU_SPEC_BATCH=0 measures that way. A
     * grammar and logprobs follow the tokens one by one. */
    g.spec.on = p->speculative && e->rollback &&
                (!e->gpu || e->fixed_batch > 0 || env_on("CODICTATE_GPU_SPECULATION")) && !g.gram &&
                !p->on_logprobs;
    g.spec.timing = &e->vt;
    g.hist = malloc(sizeof(*g.hist) * ((size_t)e->n_ctx + 1));
    if (!g.hist || cdt_buf_reserve(&g.out, 0) != 0 || cdt_buf_reserve(&g.piece, 256) != 0) {
        rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(g.hist, toks, sizeof(*toks) * (size_t)n_prompt);
    g.n_hist = n_prompt;
    if (g.spec.on && look_begin(&g, toks, n_prompt) != 0) {
        rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ENOMEM, "out of memory");
        goto done;
    }
    if (p->trace)
        p->trace->n = 0;
    CDT_LOG_D(e->log,
              "generate: %d prompt tokens (%s), max_tokens %d, temperature %.2f, top_p %.2f, "
              "min_p %.2f%s",
              n_prompt, r->prompt_format_mode, g.max_tokens, (double)g.s.temp, (double)g.s.top_p,
              (double)g.s.min_p, p->speculative ? ", speculative" : "");

    t_prompt = cdt_now_ms();
    n_cached = kv_keep_prefix(e, toks, n_prompt, 1);
    rc = ctx_fit(e, n_prompt + (g.max_tokens < CDT_KV_RESERVE ? g.max_tokens : CDT_KV_RESERVE));
    if (rc != 0) {
        cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), rc,
                        "could not create a context of %d tokens (not enough memory?)", n_prompt);
        goto done;
    }
    n_cached = e->n_kv;
    r->timings.cached_tokens = n_cached;
    /* After ctx_fit (a new context has no chain), before the prompt, whose last
     * position is then sampled in its graph. */
    g.dev_sampling =
        dev_sampler_begin(e, &g.s,
                          !g.spec.on && !g.gram && !p->on_logprobs &&
                              p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f,
                          toks, n_prompt);
    r->timings.sampler = g.dev_sampling ? "device" : "cpu";
    r->timings.threads = e->n_now;
    rc = eval_prompt(e, toks, n_prompt, p);
    t_gen = cdt_now_ms();
    r->timings.prompt_ms = t_gen - t_prompt;
    r->timings.prompt_tokens_evaluated = e->n_kv > n_cached ? e->n_kv - n_cached : 0;
    if (rc == CDT_ETIMEOUT) {
        rc = 0;
        g.finish = "deadline";
    } else if (rc != 0) {
        cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), rc, "%s",
                        rc == CDT_ECANCELED ? "canceled" : "llama_decode failed on the prompt");
        goto done;
    } else {
        rc = sample_next(&g, -1, &tok);
        if (rc != 0)
            goto done;
    }

    while (!g.finish) {
        rc = take(&g, tok);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc != 0)
            goto done;
        if (past_deadline(p)) {
            g.finish = "deadline";
            break;
        }
        if (canceled(p)) {
            rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ECANCELED, "canceled");
            goto done;
        }
        rc = step(&g, tok, &tok);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc != 0)
            goto done;
    }
    if (!r->stopped_by_callback) {
        size_t before = g.out.len;

        if (utf8_finish(&g.u, &g.out) != 0) {
            rc = cdt__errmsg_set(r->errmsg, sizeof(r->errmsg), CDT_ENOMEM, "out of memory");
            goto done;
        }
        if (g.out.len > before && p->on_text)
            (void)p->on_text(g.out.data + before, g.out.len - before, p->user_data);
    }
    t_end = cdt_now_ms();

    r->text = cdt_buf_take(&g.out);
    r->tokens_generated = g.n_gen;
    r->finish_reason = g.finish;
    r->truncated = strcmp(g.finish, "deadline") == 0              ? "deadline"
                   : strcmp(g.finish, "length") == 0 && g.ctx_cut ? "context"
                                                                  : NULL;
    r->timings.generated_tokens = g.n_gen;
    r->timings.generation_ms = t_end - t_gen;
    r->timings.tokens_per_second =
        g.n_gen > 0 && t_end > t_gen ? g.n_gen * 1000.0 / (t_end - t_gen) : 0.0;
    CDT_LOG_D(e->log,
              "generated %d tokens in %.0f ms (%.1f tok/s, %s; draft %d, accepted %d), prompt %d "
              "tokens (%d cached) in %.0f ms",
              g.n_gen, r->timings.generation_ms, r->timings.tokens_per_second, g.finish,
              r->timings.draft_tokens, r->timings.accepted_tokens, n_prompt, n_cached,
              r->timings.prompt_ms);
    CDT_LOG_D(e->log,
              "steps %d, rows %d: llama_decode %.1f ms, rows read %.1f ms, KV trimmed %.1f ms%s",
              g.n_steps, g.n_rows, g.ms_decode, g.ms_rows, g.ms_trunc,
              g.fx_off ? "; drafting stopped (fixed-shape steps did not pay)" : "");

done:
    if (rc != 0)
        cdt_log_write(e->log, rc == CDT_ECANCELED ? CDT_LOG_INFO : CDT_LOG_WARN, "generate: %s",
                      r->errmsg);
    free(toks);
    free(g.hist);
    spec_text_free(&g.look);
    if (g.gram)
        llama_sampler_free(g.gram);
    free(g.gcand);
    cdt_buf_cleanup(&fmt);
    cdt_buf_cleanup(&g.out);
    cdt_buf_cleanup(&g.piece);
    return rc;
}

/* ---- warm-up ------------------------------------------------------------------- */

/* Where a user message's content ends in the formatted prompt: the formatted text of
 * `prompt` and of `prompt` + one more character agree exactly up to there. */
static int engine_warmup(struct cdt_backend *be, const char *prompt, struct cdt_model_info *info,
                         char *errmsg, size_t errcap)
{
    struct engine *e = engine_of(be);
    struct cdt_buf text = {0};
    llama_token *toks = NULL;
    double t0 = cdt_now_ms(), t_eval;
    int rc, n, kept = 0;
    size_t len;

    if (!e->model)
        return cdt__errmsg_set(errmsg, errcap, CDT_ESTATE, "no model loaded");
    if (!prompt)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "no prompt");
    len = strnlen(prompt, (size_t)CDT_MAX_PROMPT_BYTES + 1);
    if (len > CDT_MAX_PROMPT_BYTES)
        return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG,
                               "Prompt too long: over %d bytes (CDT_MAX_PROMPT_BYTES)",
                               CDT_MAX_PROMPT_BYTES);
    /* The template's text before the user's turn, then the prompt as its content: the
     * tokens a request that starts with this prompt starts with. */
    {
        struct cdt_gen_params wp;
        struct cdt_gen_result wr;

        memset(&wp, 0, sizeof(wp));
        memset(&wr, 0, sizeof(wr));
        wp.prompt = prompt;
        rc = format_request(e, &wp, &text, &wr, true);
        if (rc != 0) {
            cdt__errmsg_set(errmsg, errcap, rc, "could not format the prompt: %s",
                            cdt_strerror(rc));
            goto done;
        }
        n = tokenize_marked(e, &text, &wp, false, &toks);
    }
    if (n < 0) {
        rc = cdt__errmsg_set(errmsg, errcap, n, "could not tokenize the prompt: %s",
                             cdt_strerror(n));
        goto done;
    }
    if (n >= e->n_ctx) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG, "Prompt too long: %d tokens, context %d",
                             n, e->n_ctx);
        goto done;
    }
    /* Whole chunks only: a request reuses no more (kv_keep_prefix), so a part chunk
     * at the end would be evaluated again. */
    n -= n % e->chunk;
    if (n == 0)
        goto ok;
    kept = kv_keep_prefix(e, toks, n, 0);
    /* Room for a transcript and an answer after the prefix; a request that needs
     * another size resizes then. */
    rc = ctx_fit(e, n + CDT_KV_STEP);
    if (rc != 0) {
        cdt__errmsg_set(errmsg, errcap, rc, "could not create a context of %d tokens",
                        n + CDT_KV_STEP);
        goto done;
    }
    kept = e->n_kv;
    t_eval = cdt_now_ms();
    rc = eval_prompt(e, toks, n, NULL);
    if (rc != 0) {
        cdt__errmsg_set(errmsg, errcap, rc, "llama_decode failed on the prompt");
        goto done;
    }
    /* A request's own prompt path and size: a better prefill figure than load's. */
    if (info && n - kept >= CDT_MAX_DRAFT + 1)
        info->prefill_ms = (cdt_now_ms() - t_eval) / (n - kept);
ok:
    if (errmsg && errcap)
        errmsg[0] = '\0';
    CDT_LOG_D(e->log, "warm-up: %d tokens (%d cached) in %.0f ms", n, kept, cdt_now_ms() - t0);
done:
    free(toks);
    cdt_buf_cleanup(&text);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void log_discard(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)level;
    (void)text;
    (void)user_data;
}

static void engine_free(struct cdt_backend *be)
{
    if (!be)
        return;
    engine_unload(be);
    /* The log may be freed after us: llama must not write to it any more. */
    llama_log_set(log_discard, NULL);
    pthread_rwlock_destroy(&engine_of(be)->tok_lock);
    free(be);
}

static const struct cdt_backend_ops engine_ops = {
    .load = engine_load,
    .unload = engine_unload,
    .generate = engine_generate,
    .warmup = engine_warmup,
    .count_tokens = engine_count_tokens,
    .free = engine_free,
};

int cdt_engine_new(struct cdt_log *log, int n_threads, struct cdt_backend **out)
{
    struct engine *e;

    *out = NULL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return CDT_ENOMEM;
    {
        /* Writers first: a stream of /tokenize calls must not hold off an unload. */
        pthread_rwlockattr_t ra;
        int bad = pthread_rwlockattr_init(&ra);

        if (!bad) {
            pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
            bad = pthread_rwlock_init(&e->tok_lock, &ra);
            pthread_rwlockattr_destroy(&ra);
        }
        if (bad) {
            free(e);
            return CDT_ENOMEM;
        }
    }
    e->base.ops = &engine_ops;
    e->log = log;
    e->auto_threads = n_threads <= 0;
    e->n_threads = n_threads > 0 ? n_threads : default_threads();
    /* llama's log is process-wide; route it (and ggml's) into ours. */
    llama_log_set(cdt_log_ggml, log);
    CDT_LOG_D(log, "llama.cpp engine: %s%d threads", e->auto_threads ? "at most " : "",
              e->n_threads);
    *out = &e->base;
    return 0;
}
