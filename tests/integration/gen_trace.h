/* Comparing two greedy generations of the real engine (struct cdt_gen_trace), for
 * test_engine.c and test_speculative.c.
 *
 * What the engine guarantees on every CPU is not that two generations with other
 * batch shapes (speculation on or off, a cached prefix or none, a KV cache that grew
 * at another step) choose the same tokens: llama.cpp's batched and single-token
 * kernels round differently on some CPUs (AVX512_BF16/VNNI, AMX, NEON), and the
 * logits of the two differ by a little. It guarantees that both take the argmax of
 * logits computed from the same text. So two runs may part only at a position where
 * the reference run's best two logits are nearly tied (random weights are full of
 * near-ties); until they part they must choose the same tokens, and after that
 * nothing is comparable. The first near-tie is reported too: agreement up to it is
 * the weakest form of the guarantee.
 *
 * CDT_NEAR_TIE: the margin under which two logits count as tied. The tiny test
 * model's logits are O(1) (the largest |logit| ~5). Measured on an AMD EPYC
 * (AVX512_BF16/VNNI) over 900-token greedy runs, plain vs speculative: the logits
 * agree bit for bit for the first 180-600 tokens, then the margins differ by up to
 * 0.036 (0.016 with an f32 KV cache), at the same positions and by the same amounts
 * with a verifier that accepts nothing (every step a batch, its draft dropped): the
 * batch shape, not the verifier. A 16-token batch at the start of the context
 * agrees bit for bit (kernel_rounding). 0.05 (1% of the logit scale) covers that;
 * 10-20% of the positions fall under it, so a verifier that accepts a wrong token,
 * or a cache that holds the wrong keys, almost always parts at a clear lead and is
 * caught (test_speculative.c shows it for an always-accepting verifier).
 *
 * Other CPUs round differently: on an Intel Xeon (Sapphire Rapids class, AVX512_BF16,
 * AMX left out) a 16-token batch and the same tokens one at a time already differ by
 * up to 0.083 at the start of the context. So the threshold in use, trace_near_tie,
 * is CDT_NEAR_TIE or, where this CPU's kernels are measured to differ more
 * (trace_calibrate, from test_speculative's kernel_rounding), three times that
 * difference; test_engine, which cannot measure it, uses CDT_NEAR_TIE_WIDE.
 * CDT_TEST_NEAR_TIE in the environment overrides both. */
#ifndef CDT_TEST_GEN_TRACE_H
#define CDT_TEST_GEN_TRACE_H

#include "../../src/sidecar/backend.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CDT_NEAR_TIE      5e-2f /* logits closer than this may swap order between kernels */
#define CDT_NEAR_TIE_WIDE 0.25f /* the same where the kernels' difference is not measured */
#define CDT_TRACE_CAP     4096  /* tokens one trace holds */

/* The near-tie threshold in use (see above). */
static float trace_near_tie = CDT_NEAR_TIE;

/* Sets trace_near_tie: CDT_TEST_NEAR_TIE when set, else the larger of `floor` and
 * three times `kernel_diff` (the largest difference measured between batched and
 * one-token logits on this CPU; 0 when not measured). */
static inline void trace_calibrate(float floor, float kernel_diff)
{
    const char *s = getenv("CDT_TEST_NEAR_TIE");
    float t = 3.0f * kernel_diff > floor ? 3.0f * kernel_diff : floor;

    if (s && *s && strtof(s, NULL) > 0.0f)
        t = strtof(s, NULL);
    trace_near_tie = t;
    fprintf(stderr, "  near-tie threshold: %.3g\n", (double)t);
}

struct trace_buf {
    struct cdt_gen_trace t;
    int32_t tokens[CDT_TRACE_CAP];
    float margin[CDT_TRACE_CAP];
};

/* Points b's trace at its arrays; returns it, for cdt_gen_params.trace. */
static inline struct cdt_gen_trace *trace_on(struct trace_buf *b)
{
    b->t.tokens = b->tokens;
    b->t.margin = b->margin;
    b->t.cap = CDT_TRACE_CAP;
    b->t.n = 0;
    return &b->t;
}

/* The first position of ref whose logits were nearly tied (or unknown: sampled in
 * the graph); ref->n when none. */
static inline int trace_first_tie(const struct cdt_gen_trace *ref)
{
    for (int i = 0; i < ref->n; i++)
        if (!(ref->margin[i] >= trace_near_tie))
            return i;
    return ref->n;
}

/* Whether a and b chose the same tokens, all of them. */
static inline bool trace_same(const struct cdt_gen_trace *a, const struct cdt_gen_trace *b)
{
    return a->n == b->n && memcmp(a->tokens, b->tokens, sizeof(*a->tokens) * (size_t)a->n) == 0;
}

/* Whether `other` chose what greedy `ref` chose, as far as the engine guarantees it:
 * the same tokens (and as many) up to where they part, which must be a near-tie of
 * ref. Prints how far they agree, ref's first near-tie, and where they part. */
static inline bool trace_agree(const struct cdt_gen_trace *ref, const struct cdt_gen_trace *other,
                               const char *what)
{
    int tie = trace_first_tie(ref), same = 0, n = ref->n < other->n ? ref->n : other->n;
    bool parted, ok;

    while (same < n && ref->tokens[same] == other->tokens[same])
        same++;
    parted = same < ref->n || other->n != ref->n;
    ok = !parted || (same < ref->n && !(ref->margin[same] >= trace_near_tie));
    fprintf(stderr, "  %s: agree up to token %d of %d; first near-tie at %d", what, same, ref->n,
            tie);
    if (!parted)
        fprintf(stderr, "\n");
    else if (same < ref->n)
        fprintf(stderr, "; parted at a margin of %.2g%s\n", (double)ref->margin[same],
                ok ? " (a near-tie)" : ": NOT A NEAR-TIE");
    else
        fprintf(stderr, "; the other run went on: NOT A NEAR-TIE\n");
    return ok;
}

#endif
