/* The sidecar's sampler (sampler_int.h): the seed's chain over raw logits,
 * repetition penalty -> top-p -> min-p -> temperature -> seeded draw, greedy at
 * temperature 0, and the speculative acceptance rule. Split out of engine.c; no
 * llama.h here.
 *
 * The draw for output position i uses one uniform number that is a function of
 * (seed, i) alone (splitmix64's stream read at index i, a counter-based generator),
 * and a drafted token is accepted exactly when that draw picks it. So the tokens a
 * seed gives do not depend on what was drafted, accepted or rejected before: with the
 * same logits, speculation on and off sample the same text (issue 17). */
#include "sampler_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE__
#include <xmmintrin.h>
#endif

static uint32_t random_seed(void)
{
    uint32_t s;
    struct timespec ts;

    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) == (ssize_t)sizeof(s))
        return s;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ ((uint32_t)getpid() << 16);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define GOLDEN64 0x9E3779B97F4A7C15ull /* splitmix64's increment */

/* Uniform in [0, 1), 53 bits, for output position pos: element pos of the splitmix64
 * stream that starts at s->key. */
static double rng_uniform(const struct sampler *s, int pos)
{
    uint64_t z = mix64(s->key + ((uint64_t)(uint32_t)pos + 1) * GOLDEN64);

    return (double)(z >> 11) * 0x1.0p-53;
}

void sampler_init(struct sampler *s, const struct cdt_gen_params *p, int n_ctx)
{
    uint64_t x = p->has_seed ? p->seed : random_seed();

    memset(s, 0, sizeof(*s));
    s->temp = p->temperature;
    s->top_p = p->top_p > 0.0f ? p->top_p : 1.0f;
    s->min_p = p->min_p;
    s->penalty = p->repetition_penalty > 0.0f ? p->repetition_penalty : 1.0f;
    s->last_n = p->repeat_last_n < 0 ? 0 : p->repeat_last_n > n_ctx ? n_ctx : p->repeat_last_n;
    s->ignore_eos = p->ignore_eos;
    s->key = mix64(x + GOLDEN64); /* seeds 1 and 2 start far apart in the stream */
}

/* Four floats, with GCC's and Clang's vector extensions (SSE2 on x86-64, NEON on
 * arm64): explicit so that the sampler's loops are vectorised whatever the compiler
 * may prove about floating-point traps. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void v4_store(float *p, v4f v)
{
    memcpy(p, &v, sizeof(v));
}

static inline v4f v4_splat(float x)
{
    return (v4f){x, x, x, x};
}

/* mask ? a : b, lane by lane (mask lanes all ones or all zeros) */
static inline v4f v4_select(v4i mask, v4f a, v4f b)
{
    return (v4f)((mask & (v4i)a) | (~mask & (v4i)b));
}

/* b > a ? b : a, lane by lane: one instruction on x86 (maxps has exactly this rule,
 * NaN included), else a compare and a select. */
static inline v4f v4_max(v4f a, v4f b)
{
#ifdef __SSE__
    return (v4f)_mm_max_ps((__m128)b, (__m128)a);
#else
    return v4_select(b > a, b, a);
#endif
}

/* exp(x) for x <= 0, 0 under -87: 2^n * P(r) with r = x - n ln 2 and the Cephes
 * polynomial (relative error under 1e-7). */
static inline v4f v4_exp(v4f x)
{
    v4i under = x < v4_splat(-87.0f);
    v4f c = v4_select(under, v4_splat(-87.0f), x), n, r, p;
    v4i e;

    c = v4_select(c > v4_splat(0.0f), v4_splat(0.0f), c);
    n = (c * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest */
    r = c - n * 0.693359375f + n * 2.12194440e-4f;
    p = v4_splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    e = (__builtin_convertvector(n, v4i) + 127) << 23;
    return v4_select(under, v4_splat(0.0f), p * (v4f)e);
}

/* w[i] = exp((z[i] - m) * inv_t) where z[i] >= tau, else 0, for n a multiple of 16;
 * returns their sum. */
static float fill_block(float *w, const float *z, int n, float m, float tau, float inv_t)
{
    v4f acc[4] = {{0}}, vm = v4_splat(m), vt = v4_splat(tau), vi = v4_splat(inv_t);
    v4f ninf = v4_splat(-INFINITY), sum;

    for (int i = 0; i < n; i += 16)
        for (int j = 0; j < 4; j++) {
            v4f zz = v4_load(z + i + 4 * j), v;

            v = v4_exp(v4_select(zz >= vt, (zz - vm) * vi, ninf));
            v4_store(w + i + 4 * j, v);
            acc[j] += v;
        }
    sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

/* Fills e->w and e->chunk_w for logits z, whose blocks' maxima max_logit() left in
 * e->chunk_max; returns the total weight. */
static double fill_weights(struct dist *e, const float *z, float m, float tau, float inv_t)
{
    double total = 0.0;

    for (int c = 0; c < e->n_chunks; c++) {
        int off = c * CDT_CHUNK, len = e->n_vocab - off < CDT_CHUNK ? e->n_vocab - off : CDT_CHUNK;

        if (e->chunk_max[c] < tau) {
            /* Nothing here is kept (the usual case for a peaked distribution). */
            memset(e->w + off, 0, sizeof(*e->w) * (size_t)len);
            e->chunk_w[c] = 0.0f;
        } else if (len == CDT_CHUNK) {
            e->chunk_w[c] = fill_block(e->w + off, z + off, CDT_CHUNK, m, tau, inv_t);
        } else {
            /* The last block, through a padded copy. */
            float zpad[CDT_CHUNK];
            int n16 = (len + 15) / 16 * 16;

            memcpy(zpad, z + off, sizeof(*z) * (size_t)len);
            for (int i = len; i < n16; i++)
                zpad[i] = -INFINITY;
            e->chunk_w[c] = fill_block(zpad, zpad, n16, m, tau, inv_t);
            memcpy(e->w + off, zpad, sizeof(*z) * (size_t)len);
        }
        total += e->chunk_w[c];
    }
    return total;
}

/* The highest logit of z[0..n), n a multiple of 4. Four running maxima, so that the
 * comparisons do not wait on each other: one running compare-and-select made a chain
 * of n / 4 dependent steps, 41 us over 151936 logits against 11 us now (at ~1.3 ms
 * per token on a GPU that was 2-3% of the decode time). */
static float max_block(const float *z, int n)
{
    v4f a = v4_splat(-INFINITY), b = a, c = a, d = a;
    float m;
    int i = 0;

    for (; i + 16 <= n; i += 16) {
        a = v4_max(a, v4_load(z + i));
        b = v4_max(b, v4_load(z + i + 4));
        c = v4_max(c, v4_load(z + i + 8));
        d = v4_max(d, v4_load(z + i + 12));
    }
    for (; i < n; i += 4)
        a = v4_max(a, v4_load(z + i));
    a = v4_max(v4_max(a, b), v4_max(c, d));
    m = a[0];
    for (int j = 1; j < 4; j++)
        m = a[j] > m ? a[j] : m;
    return m;
}

/* e->chunk_max[c] = the highest logit of block c. */
static void block_max(struct dist *e, const float *z, int c)
{
    int off = c * CDT_CHUNK, len = e->n_vocab - off < CDT_CHUNK ? e->n_vocab - off : CDT_CHUNK;
    float cm = max_block(z + off, len / 4 * 4);

    for (int i = off + len / 4 * 4; i < off + len; i++)
        cm = z[i] > cm ? z[i] : cm;
    e->chunk_max[c] = cm;
}

/* The highest logit, and the first token that has it; leaves each block's maximum in
 * e->chunk_max. */
float max_logit(struct dist *e, const float *z, int32_t *at)
{
    float m = -INFINITY;
    int best = 0, n = e->n_vocab;

    /* Behind a GPU the logits were just copied into host memory, and one core reads
     * them at its bandwidth (~15 GB/s: 40-50 us for 151936, 3-4% of a token there);
     * several read them faster. On the CPU backend no OpenMP team of ours comes
     * between ggml's. */
    if (e->scan_threads > 1) {
#pragma omp parallel for num_threads(e->scan_threads) schedule(static)
        for (int c = 0; c < e->n_chunks; c++)
            block_max(e, z, c);
    } else {
        for (int c = 0; c < e->n_chunks; c++)
            block_max(e, z, c);
    }
    for (int c = 0; c < e->n_chunks; c++)
        if (e->chunk_max[c] > m) {
            m = e->chunk_max[c];
            best = c;
        }
    if (at) {
        *at = best * CDT_CHUNK;
        for (int i = best * CDT_CHUNK; i < n; i++)
            if (z[i] == m) {
                *at = i;
                break;
            }
    }
    return m;
}

static int32_t argmax(struct dist *e, const float *z)
{
    int32_t t;

    max_logit(e, z, &t);
    return t;
}

float sampler_margin(struct dist *e, const float *z)
{
    int32_t at;
    float m = max_logit(e, z, &at), second = -INFINITY;

    for (int i = 0; i < e->n_vocab; i++)
        if (i != at && z[i] > second)
            second = z[i];
    return m - second;
}

bool sampler_is_eog(const struct dist *e, int32_t t)
{
    for (int i = 0; i < e->n_eog; i++)
        if (e->eog[i] == t)
            return true;
    return false;
}

/* Masks end tokens (ignore_eos) and applies the repetition penalty of the text so
 * far, hist[0..n), to the logits z in place. */
void sampler_prepare(struct dist *e, const struct sampler *s, float *z, const int32_t *hist, int n)
{
    if (s->ignore_eos)
        for (int i = 0; i < e->n_eog; i++)
            z[e->eog[i]] = -INFINITY;
    if (s->penalty == 1.0f || s->last_n <= 0)
        return;
    if (++e->seen_mark == 0) { /* wrapped: old marks could collide */
        memset(e->seen, 0, sizeof(*e->seen) * (size_t)e->n_vocab);
        e->seen_mark = 1;
    }
    for (int i = n > s->last_n ? n - s->last_n : 0; i < n; i++) {
        int32_t t = hist[i];

        if (t < 0 || t >= e->n_vocab || e->seen[t] == e->seen_mark)
            continue;
        e->seen[t] = e->seen_mark; /* once per token, however often it occurs */
        z[t] = z[t] <= 0.0f ? z[t] * s->penalty : z[t] / s->penalty;
    }
}

static int topp_bin(float z, float lo)
{
    float f = (z - lo) * (CDT_TOPP_BINS / CDT_TOPP_RANGE);

    return f >= CDT_TOPP_BINS - 1 ? CDT_TOPP_BINS - 1 : f > 0.0f ? (int)f : 0;
}

static int cand_cmp(const void *a, const void *b)
{
    float x = ((const struct cand *)a)->z, y = ((const struct cand *)b)->z;

    return x < y ? 1 : x > y ? -1 : 0;
}

/* The smallest logit of the nucleus: the fewest best tokens whose probability (at
 * temperature 1) reaches top_p. Tokens more than CDT_TOPP_RANGE under the best
 * weigh under e^-32 each, less than float resolution all together, and are left
 * out of the search. Ties at the cut all stay in. */
float topp_threshold(struct dist *e, const float *z, float m, float top_p)
{
    double mass[CDT_TOPP_BINS], cum = 0.0, total = 0.0, target;
    float lo = m - CDT_TOPP_RANGE;
    int b, nc = 0;

    memset(mass, 0, sizeof(mass));
    fill_weights(e, z, m, lo, 1.0f);
    for (int i = 0; i < e->n_vocab; i++)
        if (e->w[i] > 0.0f)
            mass[topp_bin(z[i], lo)] += e->w[i];
    for (b = 0; b < CDT_TOPP_BINS; b++)
        total += mass[b];
    target = (double)top_p * total;
    for (b = CDT_TOPP_BINS - 1; b >= 0; b--) {
        if (cum + mass[b] >= target)
            break;
        cum += mass[b];
    }
    if (b < 0)
        return -INFINITY; /* rounding: everything */
    for (int i = 0; i < e->n_vocab; i++)
        if (e->w[i] > 0.0f && topp_bin(z[i], lo) == b)
            e->cand[nc++] = (struct cand){z[i], e->w[i]};
    if (nc == 0)
        return lo;
    qsort(e->cand, (size_t)nc, sizeof(*e->cand), cand_cmp);
    for (int i = 0; i < nc; i++) {
        cum += e->cand[i].w;
        if (cum >= target)
            return e->cand[i].z;
    }
    return e->cand[nc - 1].z;
}

/* The distribution of prepared logits z (temperature > 0) into e->w; returns its
 * total weight. */
double dist_build(struct dist *e, const struct sampler *s, const float *z)
{
    float m = max_logit(e, z, NULL), tau = -INFINITY;

    if (s->top_p < 1.0f)
        tau = topp_threshold(e, z, m, s->top_p);
    if (s->min_p > 0.0f) {
        float t = m + logf(s->min_p); /* p >= min_p * p_max */

        if (t > tau)
            tau = t;
    }
    return fill_weights(e, z, m, tau, 1.0f / s->temp);
}

/* Draws from the distribution in e->w (total weight `total`) with uniform u, leaving
 * out token `skip` (or none: -1) and renormalising. Returns -1 when nothing is left. */
static int32_t dist_draw(struct dist *e, double total, double u, int32_t skip)
{
    double ws = skip >= 0 ? e->w[skip] : 0.0, target = u * (total - ws), acc = 0.0;
    int32_t last = -1;

    for (int c = 0; c < e->n_chunks; c++) {
        int off = c * CDT_CHUNK, len = e->n_vocab - off < CDT_CHUNK ? e->n_vocab - off : CDT_CHUNK;
        double cw = e->chunk_w[c] - (skip >= off && skip < off + len ? ws : 0.0);

        if (acc + cw <= target && c + 1 < e->n_chunks) {
            acc += cw;
            continue;
        }
        for (int i = off; i < off + len; i++) {
            if (i == skip || e->w[i] <= 0.0f)
                continue;
            last = i;
            acc += e->w[i];
            if (acc > target)
                return i;
        }
    }
    return last; /* rounding at the very end */
}

/* The next token from the logits z of output position pos (prepared in place). */
int32_t sampler_sample(struct dist *e, const struct sampler *s, float *z, int pos)
{
    double total;
    int32_t t;

    if (s->temp <= 0.0f)
        return argmax(e, z);
    total = dist_build(e, s, z);
    t = total > 0.0 ? dist_draw(e, total, rng_uniform(s, pos), -1) : -1;
    return t >= 0 ? t : argmax(e, z);
}

/* Speculative acceptance of drafted token x at output position pos: the token is the
 * one plain sampling draws there, and x is accepted when it is that token. That is
 * speculative sampling with a deterministic draft (x accepted with probability p(x),
 * otherwise a token from p without x), its two random choices made with one uniform
 * number, the position's own: so the text is the one plain decoding gives. */
bool sampler_accept(struct dist *e, const struct sampler *s, float *z, int32_t x, int pos,
                    int32_t *next)
{
    *next = sampler_sample(e, s, z, pos);
    return *next == x;
}

/* ---- OpenAI's penalties and log-probabilities (the /v1 API) ---- */

void sampler_penalize_counts(struct dist *e, float *z, const int32_t *gen, int n, float freq,
                             float pres)
{
    if ((freq == 0.0f && pres == 0.0f) || n <= 0)
        return;
    if (++e->seen_mark == 0) { /* wrapped: old marks could collide */
        memset(e->seen, 0, sizeof(*e->seen) * (size_t)e->n_vocab);
        e->seen_mark = 1;
    }
    for (int i = 0; i < n; i++) {
        int32_t t = gen[i];

        if (t < 0 || t >= e->n_vocab)
            continue;
        z[t] -= freq;
        if (e->seen[t] != e->seen_mark) {
            e->seen[t] = e->seen_mark;
            z[t] -= pres;
        }
    }
}

float sampler_log_norm(struct dist *e, const float *z)
{
    float m = max_logit(e, z, NULL);
    double sum = 0.0;

    if (!isfinite(m))
        return m;
    for (int i = 0; i < e->n_vocab; i++)
        sum += exp((double)(z[i] - m));
    return m + (float)log(sum);
}

int sampler_top_k(const struct dist *e, const float *z, int k, int32_t *ids)
{
    float best[CDT_MAX_TOP_LOGPROBS];
    int n = 0;

    if (k > CDT_MAX_TOP_LOGPROBS)
        k = CDT_MAX_TOP_LOGPROBS;
    if (k <= 0)
        return 0;
    /* An insertion into a short sorted list: a pass over the vocabulary, k small. */
    for (int i = 0; i < e->n_vocab; i++) {
        float v = z[i];
        int j;

        if (!(v > -INFINITY) || (n == k && v <= best[n - 1]))
            continue;
        j = n < k ? n++ : k - 1;
        while (j > 0 && best[j - 1] < v) {
            best[j] = best[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        best[j] = v;
        ids[j] = i;
    }
    return n;
}
