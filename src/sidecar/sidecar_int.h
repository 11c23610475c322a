/* Internals shared by the sidecar's core (sidecar.c: worker, queue, seed routes,
 * streaming) and its OpenAI-compatible routes (openai.c). Not installed. */
#ifndef CDT_SIDECAR_INT_H
#define CDT_SIDECAR_INT_H

#include "sidecar.h"

#include "codictate/httpd.h"
#include "codictate/util.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

#define CDT_NO_MODEL_MSG "No model loaded. Call /load first." /* the seed's words */
#define CDT_MAX_STOP     4                                    /* stop sequences per request */
#define CDT_MAX_STOP_LEN 256                                  /* bytes per stop sequence */

enum job_kind { JOB_LOAD, JOB_UNLOAD, JOB_GENERATE };

struct job;

/* Formats one streamed event for `len` bytes of new text (valid UTF-8), or the
 * closing event(s) when text is NULL. Returns a malloc'd string, or NULL (nothing to
 * send / out of memory). Runs with the sidecar lock held: no blocking. */
typedef char *(*cdt_job_format)(struct job *j, const char *text, size_t len);

struct job {
    enum job_kind kind;
    struct job *next;
    struct cdt_sidecar *s;
    int refs; /* owners: the worker and the route (or its stream); under the lock */

    /* JOB_LOAD */
    char *model_path;
    char *warmup_prompt; /* may be NULL */
    /* JOB_UNLOAD */
    bool was_loaded;
    double prefill_ms, decode_ms; /* load: the speeds measured (cdt_model_info) */

    /* JOB_GENERATE */
    char *prompt;
    cJSON *messages_json; /* owns the strings `msgs` points into */
    struct cdt_chat_msg msgs[CDT_MAX_CHAT_MSGS];
    struct cdt_gen_params gp;
    struct cdt_http_req *req; /* waiting (non-stream) request: cancel on disconnect */
    char *stop[CDT_MAX_STOP];
    int n_stop;
    size_t stop_maxlen;
    struct cdt_buf text; /* visible text so far (stop sequences applied); worker-only
                            until done; data NULL until the first text */
    bool stop_hit;
    bool raw; /* /generate "raw": the response as generated, not seed-cleaned */

    /* streaming (all under the lock) */
    bool stream;
    bool started;        /* first text produced (or done) */
    size_t emitted;      /* bytes of text already formatted into sbuf */
    struct cdt_buf sbuf; /* formatted events */
    size_t soff;         /* bytes of sbuf already handed to the connection */
    bool final_sent;
    atomic_bool gone; /* the stream's client went away */
    cdt_job_format format;
    void *api; /* per-API data for format (openai.c) */
    void (*api_free)(void *api);

    /* results */
    int rc;
    char errmsg[512];
    struct cdt_gen_result res;
    bool done;
};

struct cdt_sidecar {
    pthread_mutex_t lock;
    pthread_cond_t work_cv; /* the worker waits for jobs */
    pthread_cond_t done_cv; /* waiters wait for their job's progress */
    pthread_t worker;
    bool worker_started;
    atomic_bool stopping;
    bool stopped;

    struct job *head, *tail;
    int n_queued;
    int queue_max;
    struct job *running;

    bool loaded;
    struct cdt_model_info info;
    int n_ctx;

    struct cdt_backend *be;
    struct cdt_httpd *http;
    struct cdt_log *log;
};

/* A new generate job with the seed's defaults and one reference for the caller.
 * NULL when out of memory. */
struct job *cdt__job_new_generate(void);

/* Drops one reference (takes the lock). */
void cdt__job_release(struct cdt_sidecar *s, struct job *j);

/* Queues j (the worker takes its own reference) and either waits for the result
 * (stream = false) or until it produced its first text or ended (stream = true).
 * Returns 0, or answers the request itself (503 busy / shutting down, via `err`)
 * and returns an error. */
typedef void (*cdt_reply_err)(struct cdt_http_req *req, int status, const char *param,
                              const char *fmt, ...) CDT_PRINTF(4, 5);
int cdt__run_generate(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j,
                      cdt_reply_err err);

/* Streams j's events (j->format) as text/event-stream; takes over the caller's
 * reference. */
void cdt__reply_job_stream(struct cdt_sidecar *s, struct cdt_http_req *req, struct job *j);

/* Sends o (freed) as JSON. */
void cdt__reply_json(struct cdt_http_req *req, int status, cJSON *o);

/* Parses the body as a JSON object; on failure answers via err and returns NULL. */
cJSON *cdt__parse_body(struct cdt_http_req *req, cdt_reply_err err);

/* Optional number in [lo, hi] (integer when asked): absent/null keeps *out. */
bool cdt__opt_number(struct cdt_http_req *req, const cJSON *o, const char *name, double lo,
                     double hi, bool integer, double *out, cdt_reply_err err);
bool cdt__opt_bool(struct cdt_http_req *req, const cJSON *o, const char *name, bool *out,
                   cdt_reply_err err);

/* Reads the options shared by /generate and /v1/chat/completions into j->gp:
 * max_tokens, temperature, top_p, min_p, repetition_penalty, seed, ignore_eos,
 * speculative, timeout_ms, system_ram_gb, stop. Answers and returns false on error. */
bool cdt__parse_gen_options(struct cdt_http_req *req, const cJSON *body, struct job *j,
                            cdt_reply_err err);

#define CDT_OAI_RETRY_AFTER "1" /* Retry-After of a 503 on /v1, seconds */

/* Answers OpenAI's error object {"error":{"message","type","param","code"}}: the
 * type follows the status (401 authentication_error with code "invalid_api_key",
 * 403 permission_error, 5xx server_error, else invalid_request_error); a 503 also
 * carries Retry-After. param and code may be NULL (JSON null). */
void cdt__oai_error(struct cdt_http_req *req, int status, const char *param, const char *code,
                    const char *msg);

/* OpenAI-compatible routes (openai.c). */
void cdt__route_v1_models(struct cdt_sidecar *s, struct cdt_http_req *req);
void cdt__route_v1_chat(struct cdt_sidecar *s, struct cdt_http_req *req);
/* GET /v1/models/{id}: id is the rest of the path after "/v1/models/". */
void cdt__route_v1_model(struct cdt_sidecar *s, struct cdt_http_req *req, const char *id);

/* SSE helper: "data: <json>\n\n" for o (freed); NULL when out of memory. */
char *cdt__sse_event(cJSON *o);

#endif
