/* Prompt-lookup speculative decoding (speculative_int.h): drafts from the text so
 * far, their verification, and the adaptive draft length. Split out of engine.c; no
 * llama.h here: the verification reads its logits through struct spec_rows, so that
 * a test can script them. */
#include "speculative_int.h"

#include "codictate/err.h"

#include <stdlib.h>
#include <string.h>

/* test_speculative.c builds this file into itself and wraps the acceptance rule, to
 * show that its tests catch a wrong one. */
#ifndef CDT_TEST_ACCEPT
#define CDT_TEST_ACCEPT sampler_accept
#endif

/* The exact lookup: drafts k tokens that continue hist[0..n), what followed the most
 * recent earlier occurrence of its last CDT_NGRAM_MAX (down to 1) tokens; where that
 * runs into the end of hist, the draft continues from itself, so a loop keeps
 * looping. Returns k, or 0 when not even the last token occurred before; *gram is
 * the length of the n-gram matched (0: none). */
static int lookup_exact(const int32_t *hist, int n, int k, int32_t *out, int *gram)
{
    *gram = 0;
    for (int g = n - 1 < CDT_NGRAM_MAX ? n - 1 : CDT_NGRAM_MAX; g >= 1; g--) {
        const int32_t *tail = hist + n - g;

        for (int j = n - g - 1; j >= 0; j--) {
            if (hist[j] != tail[0] || memcmp(hist + j, tail, sizeof(*tail) * (size_t)g) != 0)
                continue;
            for (int i = 0; i < k; i++) {
                int at = j + g + i;

                out[i] = at < n ? hist[at] : out[at - n];
            }
            *gram = g;
            return k;
        }
    }
    return 0;
}

/* FNV-1a over the letters and digits (ASCII ones in lower case; every byte of a
 * multi-byte character counts as a letter); 0 when there is none. */
uint32_t spec_key(const char *piece, int n)
{
    uint32_t h = 2166136261u;
    bool any = false;

    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)piece[i];

        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        else if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c < 0x80)
            continue;
        h = (h ^ c) * 16777619u;
        any = true;
    }
    return !any ? 0 : h ? h : 1;
}

int spec_text_init(struct spec_text *t, int cap)
{
    memset(t, 0, sizeof(*t));
    t->tok = malloc(sizeof(*t->tok) * (size_t)cap);
    t->key = malloc(sizeof(*t->key) * (size_t)cap);
    t->kpos = malloc(sizeof(*t->kpos) * (size_t)cap);
    if (!t->tok || !t->key || !t->kpos)
        return CDT_ENOMEM;
    t->cap = cap;
    return 0;
}

void spec_text_free(struct spec_text *t)
{
    free(t->tok);
    free(t->key);
    free(t->kpos);
    memset(t, 0, sizeof(*t));
}

void spec_text_push(struct spec_text *t, int32_t tok, uint32_t key)
{
    if (t->n >= t->cap)
        return;
    if (key)
        t->kpos[t->nk++] = t->n;
    t->tok[t->n] = tok;
    t->key[t->n++] = key;
}

/* Whether the words ending at key positions a and b (indices into kpos) are the
 * same for g words. */
static bool same_words(const struct spec_text *t, int a, int b, int g)
{
    for (int i = 0; i < g; i++)
        if (t->key[t->kpos[a - i]] != t->key[t->kpos[b - i]])
            return false;
    return true;
}

/* The lookup by words: the most recent earlier occurrence of the last CDT_NGRAM_MAX
 * (down to 1) words, compared by key, so "Tuesday," in the output finds "tuesday"
 * in the transcript. The draft is what followed there, up to the end of the text
 * (no loop), less the punctuation after that word which the output has already
 * given. Returns the tokens drafted. */
static int lookup_words(const struct spec_text *t, int k, int32_t *out, int min_words)
{
    int nk = t->nk, last = nk - 1;

    for (int g = nk - 1 < CDT_NGRAM_MAX ? nk - 1 : CDT_NGRAM_MAX; g >= min_words; g--) {
        for (int j = last - 1; j >= g - 1; j--) {
            int at, trail, m = 0;

            if (!same_words(t, j, last, g))
                continue;
            /* trail: the output's punctuation after its last word */
            at = t->kpos[j] + 1;
            trail = t->kpos[last] + 1;
            while (trail < t->n && at < t->n && !t->key[at] && t->tok[at] == t->tok[trail]) {
                at++;
                trail++;
            }
            while (m < k && at < t->n)
                out[m++] = t->tok[at++];
            return m;
        }
    }
    return 0;
}

int spec_text_draft(const struct spec_text *t, int k, int min_words, int32_t *out)
{
    int32_t alt[CDT_MAX_DRAFT];
    int gram, m = lookup_exact(t->tok, t->n, k, out, &gram), mw;

    if (m > 0 && gram >= 2)
        return m;
    mw = lookup_words(t, k < CDT_MAX_DRAFT ? k : CDT_MAX_DRAFT, alt, min_words);
    if (mw == 0)
        return m;
    memcpy(out, alt, sizeof(*out) * (size_t)mw);
    return mw;
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
