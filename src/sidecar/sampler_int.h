/* The sidecar's own sampler (sampler.c), private to src/sidecar. It works on raw
 * logits and token ids (int32_t, llama_token's type) and does not include llama.h:
 * engine.c owns the model and sizes struct dist by its vocabulary. */
#ifndef CDT_SAMPLER_INT_H
#define CDT_SAMPLER_INT_H

#include "backend.h"

#include <stdbool.h>
#include <stdint.h>

#define CDT_CHUNK      1024  /* logits per block of the sampler's loops */
#define CDT_TOPP_BINS  1024  /* histogram bins of the top-p search */
#define CDT_TOPP_RANGE 32.0f /* logits under max - this weigh < e^-32 */

/* A candidate of the top-p boundary: logit and weight at temperature 1. */
struct cand {
    float z;
    float w;
};

/* The sampler's scratch, sized by the vocabulary at load (engine.c). */
struct dist {
    int n_vocab;
    int32_t *eog;       /* end-of-generation tokens */
    int n_eog;          /* entries in eog */
    float *w;           /* n_chunks * CDT_CHUNK: unnormalised probabilities */
    float *chunk_w;     /* n_chunks: sums of w per block of CDT_CHUNK */
    float *chunk_max;   /* n_chunks: the highest logit per block (max_logit) */
    int n_chunks;       /* blocks covering n_vocab */
    int scan_threads;   /* threads of max_logit's pass (OpenMP); <= 1: the caller's only */
    uint32_t *seen;     /* n_vocab: penalty marks (== seen_mark: penalised already) */
    uint32_t seen_mark; /* the current mark */
    struct cand *cand;  /* n_vocab: the top-p boundary bin */
};

/* The seed's sampling chain over raw logits. The logits of one position are
 * prepared in place (end tokens masked for ignore_eos, the repetition penalty over
 * the last `last_n` tokens of the text so far); then greedy takes the argmax, and
 * sampling builds the distribution in e->w: top-p on the penalised logits at
 * temperature 1 and min-p relative to the best token (both as llama's chain does
 * them), then weights exp((z - max) / temperature) over what is left. The loops run
 * over blocks of CDT_CHUNK logits with lane-wise accumulators so that the compiler
 * vectorises them; top-p finds its cut with a histogram of the weights and sorts
 * only the boundary bin, never the whole vocabulary. */
struct sampler {
    float temp;      /* <= 0: greedy */
    float top_p;     /* >= 1: off */
    float min_p;     /* <= 0: off */
    float penalty;   /* 1: off */
    int last_n;      /* tokens the penalty looks back over */
    bool ignore_eos; /* end tokens never drawn */
    uint64_t key;    /* from the seed: the draws are a function of (key, output position) */
};

/* The request's sampling parameters; the seed (or a random one) keys the draws. */
void sampler_init(struct sampler *s, const struct cdt_gen_params *p, int n_ctx);

/* Masks end tokens (ignore_eos) and applies the repetition penalty of the text so
 * far, hist[0..n), to the logits z in place. */
void sampler_prepare(struct dist *e, const struct sampler *s, float *z, const int32_t *hist, int n);

/* The next token from the logits z (prepared in place) of output position pos (0: the
 * first token generated). Its randomness is a function of the seed and pos only, so a
 * seed gives the same tokens however the positions were decoded. */
int32_t sampler_sample(struct dist *e, const struct sampler *s, float *z, int pos);

/* Speculative acceptance of drafted token x at output position pos, logits z
 * (prepared): *next is the token sampler_sample picks there, and x is accepted when
 * it is *next, which happens with probability p(x) (greedy: x is the argmax). */
bool sampler_accept(struct dist *e, const struct sampler *s, float *z, int32_t x, int pos,
                    int32_t *next);

/* The highest logit of z minus the second highest (0 when two tokens share the
 * highest; +inf when only one token is finite): how far greedy's choice is from a
 * tie. A full pass over the vocabulary, for traced generations (cdt_gen_trace). */
float sampler_margin(struct dist *e, const float *z);

/* Whether t is one of the vocabulary's end-of-generation tokens (e->eog). */
bool sampler_is_eog(const struct dist *e, int32_t t);

/* OpenAI's frequency and presence penalties (the /v1 API) of the generated tokens
 * gen[0..n) on the logits z, in place: z[t] -= count(t) * freq + (count(t) > 0) * pres. */
void sampler_penalize_counts(struct dist *e, float *z, const int32_t *gen, int n, float freq,
                             float pres);

/* log(sum(exp(z))) over the vocabulary: z[t] minus it is token t's log-probability at
 * temperature 1. */
float sampler_log_norm(struct dist *e, const float *z);

/* The k (<= CDT_MAX_TOP_LOGPROBS) highest logits' tokens into ids, best first (ties:
 * the lower id first); returns how many (fewer when fewer are finite). */
int sampler_top_k(const struct dist *e, const float *z, int k, int32_t *ids);

/* Internals, for test_speculative.c: the highest logit (and its first token), the
 * top-p cut, and the distribution of prepared logits into e->w (its total weight). */
float max_logit(struct dist *e, const float *z, int32_t *at);
float topp_threshold(struct dist *e, const float *z, float m, float top_p);
double dist_build(struct dist *e, const struct sampler *s, const float *z);

#endif
