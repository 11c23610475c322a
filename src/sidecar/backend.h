/* The inference seam: what the sidecar's HTTP layer needs from an engine, as a
 * table of function pointers. engine.c implements it on llama.cpp (the only file
 * that includes llama.h); tests implement a fake to exercise the HTTP layer alone.
 *
 * Threading: a backend is driven by ONE worker thread (load, unload, generate never
 * run concurrently). `info` may be read by other threads only under the sidecar's
 * own lock, which the worker holds while it changes what info returns. */
#ifndef CDT_SIDECAR_BACKEND_H
#define CDT_SIDECAR_BACKEND_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CDT_MAX_PROMPT_BYTES (1024 * 1024) /* the request body cap bounds it too */

struct cdt_model_info {
    char path[4096];    /* the GGUF file actually loaded (first shard) */
    char arch[64];      /* general.architecture, e.g. "qwen3" */
    char name[256];     /* general.name or the file name */
    char desc[128];     /* llama_model_desc, e.g. "qwen3 0.6B Q4_K - Medium" */
    uint64_t n_params;  /* parameters */
    uint64_t file_size; /* bytes on disk (all shards) */
    int n_ctx;          /* context the sidecar runs with, tokens */
    int n_ctx_train;    /* the model's training context, tokens */
    bool has_template;  /* the GGUF carries tokenizer.chat_template */
    /* This machine's speed with the model, measured at load (a client plans its
     * deadlines with them before its first request): ms per token of a prompt (a
     * warm-up's prompt when there was one) and ms per generated token; 0: not
     * measured. */
    double prefill_ms;
    double decode_ms;
};

/* One chat message (OpenAI-style roles: "system", "user", "assistant"). */
struct cdt_chat_msg {
    const char *role;    /* borrowed */
    const char *content; /* borrowed */
};

#define CDT_MAX_CHAT_MSGS 64 /* messages per request */

/* What a generation chose, token by token: for tests that compare two generations
 * whose logits may differ in rounding (llama's batched and single-token kernels, a
 * cached prefix or none, speculation on or off, differ by CPU). Two greedy runs can
 * only be required to agree up to the first position where one run's best two
 * logits are nearly tied. */
struct cdt_gen_trace {
    int32_t *tokens; /* cap entries: the tokens chosen, in order (an end token too) */
    float *margin;   /* cap entries: for each, the highest logit minus the second
                      * highest of the logits it was chosen from, after the penalty;
                      * NAN where the model's graph sampled (no logits) */
    int cap;         /* entries of tokens and margin */
    int n;           /* set by generate: entries written (at most cap) */
};

/* The log-probabilities of one generated token and of the likeliest alternatives
 * at its position (cdt_gen_params.on_logprobs): natural logs of the probabilities
 * at temperature 1 over the logits the sampler read, after the penalties. */
#define CDT_MAX_TOP_LOGPROBS 20 /* alternatives per token, most (OpenAI's limit) */

struct cdt_token_prob {
    const char *piece; /* the token's bytes (a token may hold part of a UTF-8
                        * character); borrowed for the call */
    size_t len;        /* bytes of piece */
    float logprob;
};

struct cdt_token_logprobs {
    struct cdt_token_prob token;                     /* the token chosen */
    struct cdt_token_prob top[CDT_MAX_TOP_LOGPROBS]; /* the likeliest, best first */
    int n_top;                                       /* entries of top */
};

/* Sampling and limits of one generation. Zero-initialised fields are NOT defaults:
 * start from cdt_gen_params_default(). */
#define CDT_TOP_P_MIN 1e-6f /* the smallest nucleus: only the best token(s) */

struct cdt_gen_params {
    const char *prompt;                  /* the user's prompt (one user message); borrowed */
    const struct cdt_chat_msg *messages; /* instead of prompt when n_messages > 0 */
    int n_messages;
    int max_tokens;           /* -1: the seed's dynamic limit; >0: honoured up to ctx */
    int system_ram_gb;        /* RAM tier input for max_tokens = -1 */
    float temperature;        /* 0: greedy, deterministic */
    float top_p;              /* 1: off; 0 (unset) is off too; CDT_TOP_P_MIN: the most
                               * likely token(s) only (the HTTP API's top_p 0) */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off; over the last `repeat_last_n` tokens */
    int repeat_last_n;        /* tokens */
    uint32_t seed;            /* sampler seed */
    bool has_seed;            /* false: a random seed */
    bool ignore_eos;          /* keep generating to max_tokens (benchmarks) */
    bool speculative;         /* prompt-lookup speculative decoding (default on) */
    int64_t deadline_ns;      /* CLOCK_MONOTONIC time to stop at; 0: none. On expiry the
                               * text so far is returned with truncated = "deadline" */

    /* Called with each new piece of valid UTF-8 text as it is produced (may be
     * NULL). Return nonzero to stop generating (the result is kept). `text` is
     * borrowed for the call. */
    int (*on_text)(const char *text, size_t len, void *user_data);
    /* Polled between tokens (may be NULL): nonzero cancels with CDT_ECANCELED. */
    int (*should_cancel)(void *user_data);
    void *user_data;

    /* OpenAI's sampling options (the /v1 API). The penalties count the generated
     * tokens only: a token's logit loses frequency_penalty per occurrence and
     * presence_penalty once it occurred (0: off; both -2..2 on the API). */
    float frequency_penalty;
    float presence_penalty;
    /* A GBNF grammar (start rule "root") the output must follow; NULL: none.
     * Borrowed. A grammar or logprobs turn speculation off. */
    const char *grammar;
    /* The grammar's language is one JSON value: when max_tokens (or the context) is
     * about to run out, the engine writes the shortest text that completes it, so
     * the output always parses. */
    bool grammar_json;
    /* Called for each generated token (not an end token) before its text reaches
     * on_text, with the top_logprobs (0..CDT_MAX_TOP_LOGPROBS) likeliest
     * alternatives; NULL: none. */
    void (*on_logprobs)(const struct cdt_token_logprobs *lp, void *user_data);
    int top_logprobs;

    /* For tests (borrowed; NULL: none, at no cost): filled with the chosen tokens and
     * the logit margins they were chosen with, at a pass over the logits per token. */
    struct cdt_gen_trace *trace;
};

struct cdt_gen_timings {
    int prompt_tokens;           /* tokens of the formatted prompt */
    int cached_tokens;           /* of those, reused from the previous request's KV */
    int prompt_tokens_evaluated; /* prompt_tokens - cached_tokens */
    double prompt_ms;            /* prompt evaluation time */
    int generated_tokens;        /* tokens generated */
    double generation_ms;        /* decode time */
    double tokens_per_second;    /* generated_tokens / generation_ms */
    int draft_tokens;            /* speculative tokens drafted */
    int accepted_tokens;         /* of those, accepted */
    const char *sampler;         /* static: "cpu" (over the logits, sampler.c) or "device"
                                  * (greedy in the model's graph: CODICTATE_DEVICE_SAMPLING) */
    int threads;                 /* CPU threads the request ran on; 0: not known */
};

struct cdt_gen_result {
    char *text; /* raw generated text, valid UTF-8; caller frees with free() */
    int tokens_generated;
    const char *prompt_format_mode; /* static: "chat_template", "chatml", "raw" */
    bool prompt_format_fallback;    /* true when not the model's own template */
    bool stopped_by_callback;       /* on_text asked to stop */
    const char *truncated;          /* static: NULL, "deadline" when the deadline hit, or
                                     * "context" when the context ended the answer
                                     * before max_tokens */
    const char *finish_reason;      /* static: "stop" (end of sequence or on_text), "length"
                                     * (max_tokens or context), "deadline" */
    struct cdt_gen_timings timings;
    char errmsg[512]; /* for people, when generate fails */
};

struct cdt_backend;

struct cdt_backend_ops {
    /* Loads the model at `path` (a .gguf, or a directory holding one GGUF model;
     * a sharded model loads from its first shard) with a context of n_ctx tokens
     * (clamped to the model's training context). Any previous model is freed first.
     * Returns 0 and fills *info, or an error with a reason a user understands in
     * errmsg (CDT_ENOTFOUND, CDT_EPERM, CDT_EFORMAT, CDT_ENOMEM, CDT_EENGINE). */
    int (*load)(struct cdt_backend *be, const char *path, int n_ctx, struct cdt_model_info *info,
                char *errmsg, size_t errcap);
    /* Frees model and context; a no-op when nothing is loaded. */
    void (*unload)(struct cdt_backend *be);
    /* Runs one generation on the loaded model. Returns 0, CDT_ESTATE (no model),
     * CDT_ETOOBIG (prompt longer than the context: errmsg is "Prompt too long: N
     * tokens, context M"), CDT_ECANCELED, or CDT_EENGINE. On error r->text is NULL. */
    int (*generate)(struct cdt_backend *be, const struct cdt_gen_params *p,
                    struct cdt_gen_result *r);
    /* Computes and keeps the KV cache of `prompt` formatted as the start of a user
     * message (the chat template's text up to the end of the prompt), so that a later
     * generate whose prompt starts with it only evaluates the rest. Returns 0,
     * CDT_ESTATE (no model), CDT_ETOOBIG, CDT_EENGINE; may update info->prefill_ms
     * with the speed it evaluated at. May be NULL in fakes. */
    int (*warmup)(struct cdt_backend *be, const char *prompt, struct cdt_model_info *info,
                  char *errmsg, size_t errcap);
    /* Counts the tokens of text[0, len) as a message's content (its special tokens
     * are text). Safe from any thread, also while a generation runs; a load or an
     * unload waits for it. Returns 0, CDT_ESTATE (no model), CDT_ETOOBIG or
     * CDT_EUNSUPPORTED. May be NULL in fakes. */
    int (*count_tokens)(struct cdt_backend *be, const char *text, size_t len, int *n);
    /* Frees the backend (and its model). */
    void (*free)(struct cdt_backend *be);
};

struct cdt_backend {
    const struct cdt_backend_ops *ops;
};

struct cdt_gen_params cdt_gen_params_default(void);

struct cdt_log;

/* n_threads for cdt_engine_new: each request on the CPU takes as many of the physical
 * cores as other processes leave free at its start (engine.c, pick_threads). */
#define CDT_ENGINE_THREADS_AUTO (-1)

/* The threads an auto request runs on, at most n_threads, with `others` tasks of other
 * processes runnable on this machine's `cpus` CPUs: the CPUs they leave free while
 * some are free; n_threads when none is busy or every one is (then fewer threads
 * would only get a smaller share). Unknown counts (<= 0 cpus, < 0 others): n_threads. */
int cdt_engine_auto_threads(int n_threads, int cpus, int others);

/* The llama.cpp backend (engine.c). n_threads: a fixed count; 0 or
 * CDT_ENGINE_THREADS_AUTO: auto, up to the physical cores. */
CDT_NODISCARD int cdt_engine_new(struct cdt_log *log, int n_threads, struct cdt_backend **out);

#endif
