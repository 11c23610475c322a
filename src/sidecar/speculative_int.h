/* Prompt-lookup speculative decoding (speculative.c), private to src/sidecar: the
 * draft of the next tokens from the text so far, its verification, and the adaptive
 * draft length. */
#ifndef CDT_SPECULATIVE_INT_H
#define CDT_SPECULATIVE_INT_H

#include "sampler_int.h"

#include <stdbool.h>
#include <stdint.h>

#define CDT_MAX_DRAFT   15    /* drafted tokens verified in one batch */
#define CDT_NGRAM_MAX   3     /* longest n-gram looked up for a draft */
#define CDT_PROBE_MIN   8     /* decode steps between probing drafts, */
#define CDT_PROBE_MAX   128   /* doubling from min to max */
#define CDT_SPEC_DECAY  0.8f  /* weight of older drafts in the acceptance estimate */
#define CDT_SPEC_MARGIN 1.05f /* expected speed-up a draft must promise */
#define CDT_FIXED_TRIAL 8     /* fixed-shape steps before their gain is judged */
#define CDT_FIXED_GAIN  3     /* tenths of a drafted token accepted a fixed-shape step, at least */

/* Adaptive drafting. The acceptance rate of a drafted token is estimated from
 * recent drafts (decayed counts, a uniform prior: 0.5 before any); the draft length
 * is the one that maximises expected tokens per verification cost, or none when no
 * length promises CDT_SPEC_MARGIN. Then a one-token draft still probes now and then,
 * the interval doubling from CDT_PROBE_MIN to CDT_PROBE_MAX steps while probes fail:
 * when nothing is ever accepted, 150 tokens cost ~5 one-token drafts, each a batch of
 * two (~1.75 single decodes on these CPUs: ~2.5% of the decode work). */
/* Decode times by batch size, measured by the engine once, at load (engine.c,
 * spec_calibrate): ms[b] is the fastest of the wall times of one llama_decode of b
 * tokens, 0 where not measured. They make the draft length follow the hardware and
 * model (on a GPU a batch of 16 costs little more than one token; on these CPUs it
 * costs 4-7), and stay fixed while the model is loaded: the draft lengths, and with
 * them the batch shapes of a generation, then depend on the request alone, so that
 * identical requests give identical output (llama's kernels round differently per
 * batch shape; issue 17). */
struct spec_timing {
    float ms[CDT_MAX_DRAFT + 2];
};

struct spec {
    bool on;
    const struct spec_timing *timing; /* NULL: the prior costs */
    float hits;                       /* drafted tokens accepted, decayed */
    float tries;                      /* drafted tokens tested, decayed */
    int probe;                        /* steps between probes; 0 before the first failure */
    int wait;                         /* steps until the next probe */
};

/* The text drafts are looked up in (engine.c builds it: the prompt up to the end of
 * the user's text, the turn's end token, then the output as it comes), each token
 * with its key: the token's letters and digits in lower case, hashed (spec_key; 0:
 * none, punctuation or space). kpos[0..nk) are the positions of the tokens with a
 * key. The struct owns its three arrays (spec_text_init, spec_text_free). */
struct spec_text {
    int32_t *tok;
    uint32_t *key;
    int *kpos;
    int n, nk, cap;
};

/* The key of a token whose text is piece[0..n). */
uint32_t spec_key(const char *piece, int n);

/* Room for cap tokens; 0 or CDT_ENOMEM. spec_text_free frees it (also after a
 * failure, and on a zeroed struct). */
int spec_text_init(struct spec_text *t, int cap);
void spec_text_free(struct spec_text *t);

/* Appends token tok with key `key` (nothing when full). */
void spec_text_push(struct spec_text *t, int32_t tok, uint32_t key);

/* Drafts up to k (1..CDT_MAX_DRAFT) tokens that continue t into out[0..k): what
 * followed the most recent earlier occurrence of the last 3 or 2 tokens (past the end
 * of t the draft continues from itself, so a loop keeps looping); else of the last 3
 * down to min_words words, compared by key (up to the end of t, less the punctuation
 * t already has after its last word); else of the last token. Returns the tokens
 * drafted, 0 when nothing matched.
 *
 * min_words: 1 for the GPU's fixed-shape steps, where every step pays for its rows
 * whether drafted or not, so any draft is worth a try; 2 for the CPU's planner, where
 * a draft costs its rows and a failed one shortens the next (a replay of its planner:
 * 1.5-2.6% faster than 1; bench/RESULTS.md, "Drafts that end the answer"). */
#define CDT_WORDS_FIXED   1
#define CDT_WORDS_PLANNED 2
int spec_text_draft(const struct spec_text *t, int k, int min_words, int32_t *out);

/* Where the verification of a draft reads its logits and hands over the tokens it
 * accepts: engine.c over llama's output rows, test_speculative.c over scripted ones
 * (no model). */
struct spec_rows {
    /* The logits of row i of the verification batch (the position after the token
     * and draft[0..i)), prepared for sampling (sampler_prepare) with the text so far,
     * which includes the draft accepted before it. Writable; NULL: no logits (the
     * verification stops with rc CDT_EENGINE). */
    float *(*row)(void *user_data, int i);
    /* Takes accepted drafted token x: 0 to go on, else what ends the step (1: the
     * generation is over, or an error). */
    int (*take)(void *user_data, int32_t x);
    void *user_data;
};

/* Verifies draft[0..nd) in order: draft[i] is accepted as sampler_accept decides
 * on row i, output position pos + i (greedy: exactly when it is the argmax there,
 * the first of equal logits, as plain decoding picks; sampling: when it is the token
 * plain sampling draws there), and handed to take. Stops at the first rejection,
 * with *next the token chosen on that row instead; or when take ends the step, with
 * its result in *rc (the token it took counted as accepted). Rows after the stop are
 * not read. Returns the tokens accepted; with none rejected (return nd, *rc 0, *next
 * unspecified) the token after them comes from row nd, which the caller samples. */
int spec_verify(struct dist *d, const struct sampler *s, const struct spec_rows *src,
                const int32_t *draft, int nd, int pos, int32_t *next, int *rc);

/* Records that one decode of b tokens took ms milliseconds (the fastest is kept). */
void spec_time(struct spec_timing *t, int b, double ms);

/* The cost of a decode of b tokens (1..CDT_MAX_DRAFT + 1) in single-token decodes:
 * t's own timing of that size, else a prior scaled by the largest size t timed below
 * it (t NULL or without a single-token time: the prior). */
float spec_batch_cost(const struct spec_timing *t, int b);

/* The draft length for the next step (0: none). */
int spec_plan(struct spec *sp);

/* A step decoded without a draft. */
void spec_idle(struct spec *sp);

/* A draft of n tokens of which the first m were accepted. */
void spec_update(struct spec *sp, int m, int n);

/* Whether a GPU's fixed-shape speculation (engine.c: while drafts come, every step
 * decodes the token, its draft and padding, one shape for CUDA graphs) still pays
 * for a generation after `steps` such steps accepted `gain` drafted tokens in all.
 * Such a step costs 1.14-1.34 single-token steps there (bench/RESULTS.md, "Where a
 * GPU step's time goes"), so under CDT_FIXED_GAIN / 10 tokens gained a step it loses
 * (text it cannot draft ran at 0.84x); judged from CDT_FIXED_TRIAL steps on, before
 * which it pays. Set for steps of 4; with 6 (the default since 2026-12-07) such text
 * runs at 0.96-0.97x on an H100 (bench/RESULTS.md, "Fixed-shape GPU steps of 6").
 * Judged after 8 steps rather than 12 since drafts are also looked up by words (they
 * come more often on such text): 0.95-0.96x against 0.93x, copy-heavy text as fast
 * (bench/RESULTS.md, "Drafts that end the answer"). */
bool spec_fixed_pays(int steps, int gain);

#endif
