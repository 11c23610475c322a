/* Comparing two greedy generations of the real engine (struct cdt_gen_trace), for
 * test_engine.c and test_speculative.c.
 *
 * What the engine guarantees on every CPU is not that two generations with other
 * batch shapes (speculation on or off, a cached prefix or none, a KV cache that grew
 * at another step) choose the same tokens: llama.cpp's batched and single-token
 * kernels round differently on some CPUs (AVX512_BF16/VNNI, AMX, NEON), and the
 * logits of the two differ by a little. It guarantees that both take the argmax of
 * logits computed from the same text. So where the reference run's best logit leads
 * the second by more than the rounding can move them, the other run must choose the
 * same token; at the first position where they are nearly tied (random weights are
 * full of near-ties) the two may part, and after that nothing is comparable.
 *
 * CDT_NEAR_TIE: the margin under which two logits count as tied. The tiny test
 * model's logits are O(1) (the largest |logit| ~5). Kernels that compute the same
 * q8_0 dot products in another order differ by float rounding, ~1e-6 relative: some
 * 1e-5 on these logits after two layers. 1e-2 (~0.2% of the logit scale) leaves a
 * wide factor over that, and the tiny model still gives ~25 tokens between
 * near-ties on average (20-250 in the tests' prompts), so a verifier that
 * accepts a wrong token, or a cache that holds the wrong keys, is caught before the
 * first one (test_speculative.c shows it for an always-accepting verifier).
 * test_speculative.c's kernel_rounding measures the batched vs single-token
 * difference on the CPU it runs on and requires it under CDT_NEAR_TIE / 2: where
 * that fails, this tolerance is what must change, not the product. */
#ifndef CDT_TEST_GEN_TRACE_H
#define CDT_TEST_GEN_TRACE_H

#include "../../src/sidecar/backend.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#define CDT_NEAR_TIE  1e-2f /* logits closer than this may swap order between kernels */
#define CDT_TRACE_CAP 4096  /* tokens one trace holds */

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
        if (!(ref->margin[i] >= CDT_NEAR_TIE))
            return i;
    return ref->n;
}

/* Whether `other` chose what greedy `ref` chose, as far as the engine guarantees it:
 * every token before ref's first near-tie, and all of them (the same count) when
 * there is none. Prints where they part and where the tie is. */
static inline bool trace_agree(const struct cdt_gen_trace *ref, const struct cdt_gen_trace *other,
                               const char *what)
{
    int tie = trace_first_tie(ref), same = 0, n = ref->n < other->n ? ref->n : other->n;
    bool ok;

    while (same < n && ref->tokens[same] == other->tokens[same])
        same++;
    ok = tie < ref->n ? same >= tie : same == ref->n && other->n == ref->n;
    if (tie < ref->n)
        fprintf(stderr, "  %s: agree up to token %d of %d; first near-tie at %d (margin %.2g)%s\n",
                what, same, ref->n, tie, (double)ref->margin[tie], ok ? "" : ": PARTED BEFORE IT");
    else
        fprintf(stderr, "  %s: agree up to token %d of %d; no near-tie%s\n", what, same, ref->n,
                ok ? "" : ": PARTED");
    return ok;
}

#endif
