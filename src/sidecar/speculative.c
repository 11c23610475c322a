/* Prompt-lookup speculative decoding (speculative_int.h): drafts from the text so
 * far, their verification, and the adaptive draft length. Split out of engine.c; no
 * llama.h here: the verification reads its logits through struct spec_rows, so that
 * a test can script them. */
#include "speculative_int.h"

#include "codictate/err.h"

#include <string.h>

/* test_speculative.c builds this file into itself and wraps the acceptance rule, to
 * show that its tests catch a wrong one. */
#ifndef CDT_TEST_ACCEPT
#define CDT_TEST_ACCEPT sampler_accept
#endif

/* Drafts up to k tokens that continue hist[0..n): what followed the most recent
 * earlier occurrence of its last CDT_NGRAM_MAX (down to 1) tokens. Where that runs
 * into the end of hist, the draft continues from itself, so a loop keeps looping.
 * Returns the tokens drafted. */
int draft_lookup(const int32_t *hist, int n, int k, int32_t *out)
{
    for (int g = n - 1 < CDT_NGRAM_MAX ? n - 1 : CDT_NGRAM_MAX; g >= 1; g--) {
        const int32_t *tail = hist + n - g;

        for (int j = n - g - 1; j >= 0; j--) {
            if (hist[j] != tail[0] || memcmp(hist + j, tail, sizeof(*tail) * (size_t)g) != 0)
                continue;
            for (int i = 0; i < k; i++) {
                int at = j + g + i;

                out[i] = at < n ? hist[at] : out[at - n];
            }
            return k;
        }
    }
    return 0;
}

int spec_verify(struct dist *d, const struct sampler *s, const struct spec_rows *src,
                const int32_t *draft, int nd, int pos, int32_t *next, int *rc)
{
    int m;

    *rc = 0;
    for (m = 0; m < nd; m++) {
        float *z = src->row(src->user_data, m);

        if (!z) {
            *rc = CDT_EENGINE;
            break;
        }
        if (!CDT_TEST_ACCEPT(d, s, z, draft[m], pos + m, next))
            break;
        *rc = src->take(src->user_data, draft[m]);
        if (*rc != 0) {
            m++;
            break;
        }
    }
    return m;
}

/* Prior cost of verifying a batch of b tokens, in single-token decodes, until the
 * engine has timed its own batches (struct spec_timing). Measured on the CPU it
 * runs on here (2 threads, KV capacity 768, depth 500; mean of the 0.6B and 1.7B
 * Q4_K shapes at 1, 2, 3, 4, 6, 8, 12, 16, interpolated): decode there is compute
 * bound, so a batch costs nearly in proportion to its size. The old table (1.3 for
 * two tokens) was measured with a 4096-token KV, whose single-token decode was
 * slower, and made drafts at ~50% acceptance cost 5-8%. */
static const float verify_cost[CDT_MAX_DRAFT + 2] = {
    0.0f,  1.0f,  1.75f, 2.37f, 2.91f, 3.55f, 4.2f,  4.67f, 5.15f,
    5.55f, 5.95f, 6.35f, 6.75f, 6.95f, 7.15f, 7.35f, 7.5f,
};

void spec_time(struct spec_timing *t, int b, double ms)
{
    if (b < 1 || b > CDT_MAX_DRAFT + 1 || !(ms > 0.0))
        return;
    if (!(t->ms[b] > 0.0f) || (float)ms < t->ms[b])
        t->ms[b] = (float)ms;
}

/* The cost of a batch of b tokens in single-token decodes: measured when the engine
 * has timed that size, else the prior scaled by how the largest timed size below it
 * compared with its prior. */
float spec_batch_cost(const struct spec_timing *t, int b)
{
    if (!t || !(t->ms[1] > 0.0f))
        return verify_cost[b];
    for (int j = b; j >= 2; j--)
        if (t->ms[j] > 0.0f)
            return verify_cost[b] * (t->ms[j] / t->ms[1]) / verify_cost[j];
    return verify_cost[b];
}

int spec_plan(struct spec *sp)
{
    float a = (sp->hits + 1.0f) / (sp->tries + 2.0f), best = CDT_SPEC_MARGIN, ak = a;
    int k_best = 0;

    if (!sp->on)
        return 0;
    for (int k = 1; k <= CDT_MAX_DRAFT; k++) {
        float gain;

        ak *= a; /* a^(k+1) */
        gain = (1.0f - ak) / (1.0f - a) / spec_batch_cost(sp->timing, k + 1);
        if (gain > best) {
            best = gain;
            k_best = k;
        }
    }
    if (k_best > 0 || sp->wait > 0)
        return k_best;
    /* A probe, to learn whether the text copies now: the shortest draft that would
     * pay were it all accepted (none, where no batch can pay: a 2-token batch costing
     * two decodes or more makes a 1-token probe a loss even when it succeeds, and
     * probing goes on every step while probes succeed). */
    for (int k = 1; k <= CDT_MAX_DRAFT; k++)
        if ((float)(k + 1) / spec_batch_cost(sp->timing, k + 1) > CDT_SPEC_MARGIN)
            return k;
    return 0;
}

/* A step decoded without a draft. */
void spec_idle(struct spec *sp)
{
    if (sp->wait > 0)
        sp->wait--;
}

/* A draft of n tokens of which the first m were accepted. */
void spec_update(struct spec *sp, int m, int n)
{
    sp->hits = sp->hits * CDT_SPEC_DECAY + (float)m;
    sp->tries = sp->tries * CDT_SPEC_DECAY + (float)(m < n ? m + 1 : m);
    if (m == 0) {
        sp->probe = sp->probe < CDT_PROBE_MIN       ? CDT_PROBE_MIN
                    : sp->probe * 2 < CDT_PROBE_MAX ? sp->probe * 2
                                                    : CDT_PROBE_MAX;
        sp->wait = sp->probe;
    } else {
        sp->probe = 0;
        sp->wait = 0;
    }
}

bool spec_fixed_pays(int steps, int gain)
{
    return steps < CDT_FIXED_TRIAL || 10 * (long)gain >= CDT_FIXED_GAIN * (long)steps;
}
