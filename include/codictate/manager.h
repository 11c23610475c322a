/* The sidecar manager: owns one `codictate sidecar` child process and the model
 * loaded in it, for the app and the CLI.
 *
 * - The sidecar is spawned lazily, with a fresh random bearer token, on the first
 *   use; its port comes from its first stdout line, readiness from /health.
 * - A model is loaded once even when several threads ask at the same time.
 * - generate retries once (after reloading) when the sidecar says "No model loaded".
 * - Idle unload: after `idle_timeout_s` without use (reset by every use), or
 *   right after each use with CDT_IDLE_IMMEDIATELY, or never.
 * - A sidecar that died is noticed and restarted on the next use; callers get a
 *   clear error, never a hang.
 * - cdt_manager_free: SIGTERM, 500 ms, then SIGKILL. A PID file lets the next
 *   manager kill a sidecar orphaned by a crash.
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef CODICTATE_MANAGER_H
#define CODICTATE_MANAGER_H

#include "codictate/err.h"
#include "codictate/sidecar_client.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_IDLE_NEVER       (-1)
#define CDT_IDLE_IMMEDIATELY 0
#define CDT_IDLE_DEFAULT_S   120 /* the seed's default: 2 min */

struct cdt_log;
struct cdt_manager;

enum cdt_manager_event_type {
    CDT_MGR_SIDECAR_STARTED,
    CDT_MGR_SIDECAR_EXITED, /* noticed dead (detail: how) */
    CDT_MGR_LOADING,        /* model: path */
    CDT_MGR_LOADED,
    CDT_MGR_LOAD_FAILED, /* detail: why */
    CDT_MGR_UNLOADED,    /* detail: "idle" / "immediately" / "request" */
};

struct cdt_manager_event {
    enum cdt_manager_event_type type;
    const char *model;  /* model path or NULL; borrowed for the call */
    const char *detail; /* or NULL; borrowed for the call */
};

#define CDT_MANAGER_THREADS_AUTO (-1) /* cdt_manager_params.n_threads: sidecar --threads auto */

struct cdt_manager_params {
    const char *sidecar_exe; /* the codictate binary; NULL: this process's executable */
    const char *state_dir;   /* PID file dir; NULL: $XDG_RUNTIME_DIR/codictate, else
                              * ~/.cache/codictate */
    int idle_timeout_s;      /* CDT_IDLE_NEVER, CDT_IDLE_IMMEDIATELY or seconds;
                              * params default: CDT_IDLE_DEFAULT_S */
    int n_ctx;               /* sidecar --ctx; 0: its default */
    int n_threads;           /* sidecar --threads; CDT_MANAGER_THREADS_AUTO: --threads
                              * auto; 0: $CODICTATE_LLM_THREADS (1..1024 or "auto"),
                              * else the sidecar's default (auto) */
    int start_timeout_ms;    /* spawn → /health ok; 0: 10000 */
    long request_timeout_ms; /* per generate; 0: none */
    struct cdt_log *log;     /* borrowed; may be NULL */
    /* Called for every event, on the thread that caused it (or the idle thread),
     * never with the manager's state lock held: it may call back into the manager.
     * Any call that looks at the sidecar (cdt_manager_loaded, _sidecar_pid, load,
     * generate, unload) may emit CDT_MGR_SIDECAR_EXITED when it finds the sidecar
     * dead, so do not make those calls while holding a lock the callback takes. */
    void (*on_event)(const struct cdt_manager_event *ev, void *user_data);
    void *user_data;
};

struct cdt_manager_params cdt_manager_default_params(void);

/* Creates a manager (no process yet) and kills a sidecar orphaned by a crashed
 * previous manager (from the PID file). Returns 0, CDT_ENOMEM, CDT_EIO. */
CDT_NODISCARD int cdt_manager_new(const struct cdt_manager_params *p, struct cdt_manager **out);

/* Makes `model_path` the loaded model (spawning the sidecar when needed). Returns 0
 * or an error with errmsg: CDT_EENGINE (the sidecar could not start or load: why),
 * CDT_ENET (it died). */
CDT_NODISCARD int cdt_manager_load(struct cdt_manager *m, const char *model_path, char *errmsg,
                                   size_t errcap);

/* As cdt_manager_load, and then the sidecar computes the KV cache of
 * `warmup_prompt` (borrowed for the call; NULL: none) so that a request starting
 * with the same text only evaluates what follows (POST /load's "warmup_prompt").
 * When the model is already loaded nothing is sent. Errors as cdt_manager_load. */
CDT_NODISCARD int cdt_manager_load_warm(struct cdt_manager *m, const char *model_path,
                                        const char *warmup_prompt, char *errmsg, size_t errcap);

/* POST /generate of `req` (borrowed for the call; see sidecar_client.h) on
 * `model_path` (loaded first if needed), with params.request_timeout_ms as the
 * transfer's limit. On 0, *reply holds the sidecar's answer, whatever its status
 * (reply->status, reply->detail); the caller frees it with
 * cdt_sidecar_gen_reply_cleanup. On an error *reply holds nothing to free. Errors
 * as cdt_manager_load (CDT_ENET: "the sidecar failed during generation: …"), plus
 * CDT_ETIMEOUT ("the sidecar did not answer in time: …"), CDT_EPROTOCOL (an answer
 * that is not the protocol's: "an answer without \"response\""), CDT_ETOOBIG,
 * CDT_EINVAL (no prompt), CDT_ECANCELED (req->should_stop said stop: the connection
 * was closed, so the sidecar cancels the generation; "cancelled"), CDT_ENOMEM. */
CDT_NODISCARD int cdt_manager_generate(struct cdt_manager *m, const char *model_path,
                                       const struct cdt_sidecar_gen_req *req,
                                       struct cdt_sidecar_gen_reply *reply, char *errmsg,
                                       size_t errcap);

/* The speeds of model_path on this machine: ms per prompt token evaluated and per
 * token generated, as the sidecar measured them when it loaded the model, then
 * followed by this manager's generations (a running average, so a machine that gets
 * busier is followed; a new load measures again). False until both are known for
 * this model: before its first load, or with a sidecar that measures nothing and
 * generations of a few tokens each. */
bool cdt_manager_rates(struct cdt_manager *m, const char *model_path, double *prefill_ms,
                       double *decode_ms);

/* Bytes of text per token in what model_path generated on this manager's requests (a
 * running average over generations of a few tokens or more), for telling how many
 * tokens a text is (cdt_manager_rates' speeds are per token): about 4 for English
 * with a Qwen3, fewer for other languages and for text of rare words. 0 until known
 * for this model. */
double cdt_manager_bytes_per_token(struct cdt_manager *m, const char *model_path);

/* The tokens of `text` by model_path's own tokenizer (the sidecar's /tokenize), when
 * that model is loaded: no load is started. Returns 0 with *n set; CDT_ESTATE (another
 * model or none loaded), CDT_EUNSUPPORTED (a sidecar that cannot count), or the
 * sidecar client's errors. errmsg may be NULL. */
int cdt_manager_count_tokens(struct cdt_manager *m, const char *model_path, const char *text,
                             int *n, char *errmsg, size_t errcap);

/* Unloads the model now (the sidecar keeps running). */
void cdt_manager_unload(struct cdt_manager *m);

/* The loaded model's path (copied into buf, "" when none); returns true when one
 * is loaded. */
bool cdt_manager_loaded(struct cdt_manager *m, char *buf, size_t cap);

/* The sidecar's pid, or 0 when none runs. */
int cdt_manager_sidecar_pid(struct cdt_manager *m);

/* The sidecar's port, or 0. */
int cdt_manager_sidecar_port(struct cdt_manager *m);

/* Changes the idle timeout (takes effect from the next use). */
void cdt_manager_set_idle_timeout(struct cdt_manager *m, int idle_timeout_s);

/* Stops the sidecar (SIGTERM, 500 ms, SIGKILL), removes the PID file, frees.
 * NULL is a no-op. */
void cdt_manager_free(struct cdt_manager *m);

#ifdef __cplusplus
}
#endif
#endif
