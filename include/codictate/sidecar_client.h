/* The typed client of the sidecar's seed API (src/sidecar/sidecar.c): GET /health,
 * POST /load, POST /generate (plain or streamed) and POST /unload, over
 * cdt_client_request. The JSON of every request is built here and every answer is
 * parsed here, so the protocol lives in one place on the client side.
 *
 * Each call returns 0 when the sidecar answered, whatever the HTTP status: out's
 * `status` says which, and for a status other than 200 `detail` holds the
 * sidecar's {"detail": …} text (or the start of the body when it has none). Errors:
 * CDT_ENET (no connection, or it dropped), CDT_ETIMEOUT, CDT_ETOOBIG (an answer
 * over CDT_CLIENT_MAX_RESPONSE), CDT_ENOMEM, and CDT_EPROTOCOL when a 200 answer is
 * not what the protocol says (not JSON, a required field missing or of the wrong
 * type), CDT_ECANCELED (generate: req->should_stop said stop); errmsg says why. On
 * an error `out` holds nothing to free.
 *
 * Thread-safety: every function may be called from any thread (a curl handle per
 * call). Prompt and response text are never logged. */
#ifndef CODICTATE_SIDECAR_CLIENT_H
#define CODICTATE_SIDECAR_CLIENT_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_SIDECAR_DETAIL_MAX 1024 /* an error answer's detail kept, bytes (longer: cut) */

/* GET /health: 200 {"status": "ok"}, or 503 {"status": "loading"} while a model
 * loads. Needs no token. */
struct cdt_sidecar_health {
    long status;    /* HTTP status: 200 ready, 503 loading */
    char state[16]; /* "ok", "loading"; "" when the answer had none */
};

/* Returns 0, or an error as above; CDT_EPROTOCOL when the answer has no "status"
 * string. timeout_ms 0: none. */
CDT_NODISCARD int cdt_sidecar_health(int port, const char *token, long timeout_ms,
                                     struct cdt_sidecar_health *out, char *errmsg, size_t errcap);

/* POST /load. Strings borrowed for the call. */
struct cdt_sidecar_load_req {
    const char *model_path;    /* required: the GGUF file */
    const char *warmup_prompt; /* the sidecar computes this text's KV cache after loading,
                                * so a request starting with it evaluates only the rest;
                                * NULL: not sent */
};

struct cdt_sidecar_load_reply {
    long status;                         /* HTTP status: 200 loaded, 500 failed, 503 shutting down,
                                          * 422 a bad request */
    char detail[CDT_SIDECAR_DETAIL_MAX]; /* status != 200: why ("Failed to load model: …") */
    /* 200: the model's speeds on this machine as the sidecar measured them at load
     * ("speed"), ms per prompt token and per generated token; 0 when it did not say. */
    double prefill_ms;
    double decode_ms;
};

/* Loads req->model_path, blocking until it is loaded or failed. timeout_ms 0: none.
 * Returns 0, or an error as above; CDT_EPROTOCOL when a 200 answer does not say
 * {"status": "loaded"}; CDT_EINVAL without a model_path. */
CDT_NODISCARD int cdt_sidecar_load(int port, const char *token,
                                   const struct cdt_sidecar_load_req *req, long timeout_ms,
                                   struct cdt_sidecar_load_reply *out, char *errmsg, size_t errcap);

/* POST /generate. Strings borrowed for the call. Start from
 * cdt_sidecar_gen_default_req(): its "not sent" values leave a field to the
 * sidecar's default. */
struct cdt_sidecar_gen_req {
    const char *prompt;        /* required; sent as it is (the sidecar applies no template) */
    int max_tokens;            /* -1: the sidecar's dynamic limit (from the prompt's length and
                                * system_ram_gb); 0: not sent (the same); else at least 1 */
    double temperature;        /* < 0: not sent (the sidecar's 0.7) */
    double top_p;              /* < 0: not sent (0.8) */
    double min_p;              /* < 0: not sent (0) */
    double repetition_penalty; /* < 0: not sent (1.15) */
    long long seed;            /* < 0: not sent (random) */
    const char *const *stop;   /* n_stop stop sequences (the sidecar takes at most 4 of at
                                * most 256 bytes); NULL: none */
    size_t n_stop;
    long timeout_ms;   /* the sidecar stops generating after this long and answers with
                        * what it has, truncated "deadline" ("timeout_ms"), ms; 0: none */
    int system_ram_gb; /* the RAM tier for the dynamic limit, GB; 0: not sent (16) */
    bool ignore_eos;   /* go on past end-of-sequence (tests, benchmarks); sent when true */
    bool raw;          /* the text as generated; false: the seed's cleaning of it (think
                        * blocks, labels, quotes removed) */
    bool stream;       /* ask for server-sent events; the reply gets the pieces too */
    /* stream: called with each piece of text as its event arrives (text borrowed
     * for the call; not NUL-terminated; a piece never ends inside a UTF-8 character
     * the model completed, but the model's bytes need not be valid UTF-8), on the
     * calling thread, while the generation runs; the pieces, joined, are
     * reply->streamed. NULL: none. Not called for an answer other than a stream. */
    void (*on_piece)(const char *text, size_t len, void *user_data);
    void *piece_user_data;
    /* Asked every CDT_CLIENT_POLL_MS while the request runs, on the calling thread
     * (client.h): true closes the connection at once, which makes the sidecar cancel
     * the generation, and the call returns CDT_ECANCELED. NULL: never. */
    bool (*should_stop)(void *user_data);
    void *stop_user_data;
};

struct cdt_sidecar_gen_req cdt_sidecar_gen_default_req(void);

/* The sidecar's timings of one generation ("timings"); zeros when absent. */
struct cdt_sidecar_timings {
    int prompt_tokens;           /* the prompt's tokens */
    int cached_tokens;           /* of those, reused from the KV cache */
    int prompt_tokens_evaluated; /* of those, evaluated now */
    double prompt_ms;            /* evaluating the prompt, ms */
    int generated_tokens;
    double generation_ms;     /* generating, ms */
    double tokens_per_second; /* generation speed */
    int draft_tokens;         /* speculative decoding: drafted */
    int accepted_tokens;      /* speculative decoding: of those, accepted */
    char sampler[16];         /* where sampling ran: "cpu", "device"; "" when absent */
};

/* An answer of /generate. Free with cdt_sidecar_gen_reply_cleanup. */
struct cdt_sidecar_gen_reply {
    long status; /* HTTP status (a stream: its final event's "status", else 200):
                  * 200, 400 (a bad request, or "No model loaded"), 422, 500, 503 */
    char detail[CDT_SIDECAR_DETAIL_MAX]; /* status != 200: why */
    char *response;              /* status 200: the text (raw or cleaned, as asked); owned */
    char *streamed;              /* a stream with status 200: its "text" pieces joined (what
                                  * was generated, uncleaned); owned; NULL otherwise */
    int tokens_generated;        /* 0: unknown */
    char prompt_format_mode[32]; /* how the prompt was formatted: "raw" (/generate),
                                  * "chat_template", "chatml"; "" unknown */
    bool prompt_format_fallback;
    char truncated[32]; /* why the text stopped early ("deadline", "context"); "" when not */
    struct cdt_sidecar_timings timings;
};

/* Generates from req->prompt, blocking until the whole answer has arrived (a
 * stream too: req->on_piece sees its pieces meanwhile). timeout_ms: the transfer's limit, ms; 0:
 * none. Returns 0 and *out (any status), or an error as above: CDT_EPROTOCOL when a 200 answer has
 * no "response" string ("an answer without \"response\"") or a stream has no final event;
 * CDT_EINVAL without a prompt. */
CDT_NODISCARD int cdt_sidecar_generate(int port, const char *token,
                                       const struct cdt_sidecar_gen_req *req, long timeout_ms,
                                       struct cdt_sidecar_gen_reply *out, char *errmsg,
                                       size_t errcap);

/* Frees the reply's strings and zeroes it. NULL is a no-op. */
void cdt_sidecar_gen_reply_cleanup(struct cdt_sidecar_gen_reply *r);

/* POST /unload: 200 {"status": "unloaded" | "no_model_loaded"}. */
struct cdt_sidecar_unload_reply {
    long status;                         /* HTTP status */
    bool was_loaded;                     /* status 200: a model was loaded and is gone */
    char detail[CDT_SIDECAR_DETAIL_MAX]; /* status != 200: why */
};

/* Unloads the model (the sidecar keeps running). out may be NULL. timeout_ms 0:
 * none. Returns 0 or an error as above. */
CDT_NODISCARD int cdt_sidecar_unload(int port, const char *token, long timeout_ms,
                                     struct cdt_sidecar_unload_reply *out, char *errmsg,
                                     size_t errcap);

/* The tokens of `text` as the loaded model counts a message's content (POST
 * /tokenize). timeout_ms 0: none. Returns 0 with *n set; CDT_ESTATE (no model
 * loaded), CDT_EUNSUPPORTED (a sidecar that cannot count), CDT_EPROTOCOL (another
 * answer: errmsg has its detail), or a transport error as above. */
CDT_NODISCARD int cdt_sidecar_count_tokens(int port, const char *token, const char *text,
                                           long timeout_ms, int *n, char *errmsg, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
