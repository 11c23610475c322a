/* The refiner (application layer): one object that turns a transcript into the
 * text to deliver, whoever asks (the CLI's refine / transcribe --refine / dictate,
 * the app's dictations, re-refines and POST /api/refine). It resolves the options
 * (provider, model, prompt) once, checks them (usage errors come back before the
 * person starts talking), owns or borrows the catalog / models / manager, can
 * preload the model in the background, and runs cdt_refine_run.
 * Nothing is printed: errors come back as codes and messages for people.
 * Thread-safety: preload and run may be called from different threads at once (the
 * manager serialises the sidecar). */
#ifndef CODICTATE_REFINER_H
#define CODICTATE_REFINER_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cdt_catalog;
struct cdt_models;
struct cdt_log;
struct cdt_refine_result;
struct cdt_refine_ahead;

#define CDT_REFINER_HTTP_MARGIN_MS 5000 /* sidecar HTTP timeout beyond the deadline, ms */

struct cdt_refiner_opts {
    const char *model;        /* LLM: catalog id/alias or GGUF path; NULL: the default */
    const char *provider;     /* "local" | "openai"; NULL: openai when base_url is given */
    const char *base_url;     /* NULL: $OPENAI_BASE_URL (then the provider's default) */
    const char *api_key;      /* NULL: $OPENAI_API_KEY */
    const char *openai_model; /* NULL: the provider's default */
    const char *prompt;       /* --prompt: NAME | @FILE | "default"; NULL: default */
    const char *instructions; /* the instructions themselves (overrides prompt); NULL: none */
    const char *vocabulary;   /* cdt_refine_params.vocabulary (checked here); NULL: none */
    long timeout_ms;          /* the LLM step's deadline; <= 0: CDT_REFINE_DEFAULT_TIMEOUT_MS */
    bool no_env;              /* do not read OPENAI_* from the environment (the app) */
    struct cdt_log *log;      /* borrowed; may be NULL */
    int app_port;             /* > 0: refine through the running app at this port (its
                               * warm model; --model and --prompt go with each request);
                               * if it does not answer, refine here */
    /* Shared state (the app's), borrowed; NULL: the refiner loads its own. */
    struct cdt_catalog *catalog;
    struct cdt_models *models;
};

struct cdt_refiner;

/* Checks the options and makes the refiner. Returns 0 and *out, CDT_EINVAL (a usage
 * error: errmsg says which option and why), CDT_ENOMEM. A catalog that cannot be
 * loaded is only a warning (in the log): a GGUF path still works. */
CDT_NODISCARD int cdt_refiner_new(const struct cdt_refiner_opts *o, struct cdt_refiner **out,
                                  char *errmsg, size_t errcap);

/* Loads the model (and the KV cache of the instructions) ahead of the first run.
 * Returns 0 or an error with errmsg; a failure here only means run will fall back. */
CDT_NODISCARD int cdt_refiner_preload(struct cdt_refiner *r, char *errmsg, size_t errcap);

/* Refines text into *res (free with cdt_refine_result_cleanup). Returns 0 (also when
 * the model could not be used: res->reason says why and res->refined holds the
 * deterministic text), CDT_ENOMEM. */
CDT_NODISCARD int cdt_refiner_run(struct cdt_refiner *r, const char *text,
                                  struct cdt_refine_result *res);

/* cdt_refiner_run, with on_delta (NULL: none) seeing the local model's raw text
 * while it is generated (see cdt_refine_params.on_delta: called on this thread, a
 * preview before the guards; the openai provider never calls it). The result is
 * the same as cdt_refiner_run's. Safe alongside other runs: the callback belongs
 * to this call only. */
CDT_NODISCARD int cdt_refiner_run_stream(struct cdt_refiner *r, const char *text,
                                         void (*on_delta)(const char *text, size_t len,
                                                          void *user_data),
                                         void *user_data, struct cdt_refine_result *res);

/* Refinement ahead (refine.h) with this refiner's settings: *out (free with
 * cdt_refiner_ahead_free, before the refiner) refines the finished pieces of a
 * transcript in the background while it grows (cdt_refiner_ahead_offer); pass it to
 * cdt_refiner_run_ahead. Through the running app it is the app's (POST
 * /api/refine/ahead: its warm model refines them, and the run takes them there); if
 * the app stops answering, the rest is refined after stop. Returns 0, CDT_ENOMEM, or
 * an error of the app's (*out NULL: refine after stop). */
struct cdt_refiner_ahead;
CDT_NODISCARD int cdt_refiner_ahead_new(struct cdt_refiner *r, struct cdt_refiner_ahead **out);

/* The transcript so far (it only grows; copied): as cdt_refine_ahead_offer. Any
 * thread; NULL a is a no-op. Through the app it is a request of up to 3 s, and one
 * that fails ends the offers (the rest is refined after stop). */
void cdt_refiner_ahead_offer(struct cdt_refiner_ahead *a, const char *text);

/* Pieces refined so far (through the app: as of the last offer). NULL: 0. */
size_t cdt_refiner_ahead_count(struct cdt_refiner_ahead *a);

/* As cdt_refine_ahead_cancel; never blocks (through the app: no more offers, and
 * free drops the app's refinement ahead). */
void cdt_refiner_ahead_cancel(struct cdt_refiner_ahead *a);

/* Frees a (through the app: drops the app's refinement ahead unless a run took it).
 * NULL: no-op. */
void cdt_refiner_ahead_free(struct cdt_refiner_ahead *a);

/* cdt_refiner_run_stream taking the pieces `ahead` (borrowed; NULL: none) refined
 * in the background; only the rest is asked now. Same result as without it when
 * the model answers the same. should_stop (NULL: never; same user_data) cancels:
 * asked as cdt_refine_params.should_stop is, it abandons the model call under way
 * at once (through the running app: its connection closes, and the app stops its
 * refinement) and the call returns CDT_ECANCELED with *res empty. Returns 0,
 * CDT_ECANCELED, CDT_ENOMEM. */
CDT_NODISCARD int
cdt_refiner_run_ahead(struct cdt_refiner *r, const char *text,
                      void (*on_delta)(const char *text, size_t len, void *user_data),
                      bool (*should_stop)(void *user_data), void *user_data,
                      struct cdt_refiner_ahead *ahead, struct cdt_refine_result *res);

/* "local" or "openai". */
const char *cdt_refiner_provider(const struct cdt_refiner *r);

/* After CDT_REFINE_NO_MODEL: the catalog id to pull for this machine's RAM tier, or
 * NULL when there is no catalog. Borrowed for the refiner's lifetime. */
const char *cdt_refiner_suggested_model(const struct cdt_refiner *r);

/* Stops a sidecar the refiner started itself (not a borrowed one) and frees it. NULL
 * is a no-op. */
void cdt_refiner_free(struct cdt_refiner *r);

#ifdef __cplusplus
}
#endif
#endif
