/* The sidecar: the seed-compatible LLM inference server (DESIGN.md, "Sidecar
 * protocol"). HTTP threads parse and validate requests; ONE worker thread owns the
 * backend and runs load / unload / generate jobs in FIFO order from a bounded
 * queue, so a /load or /unload waits for the running generation. /status and
 * /health answer at once from state kept under the sidecar's lock. */
#ifndef CDT_SIDECAR_H
#define CDT_SIDECAR_H

#include "backend.h"

#include <stdbool.h>

#define CDT_SIDECAR_PORT_MIN  11400
#define CDT_SIDECAR_PORT_MAX  11500
#define CDT_SIDECAR_QUEUE_MAX 8    /* waiting jobs before 503 */
#define CDT_SIDECAR_CTX       4096 /* default context, tokens */

struct cdt_log;
struct cdt_sidecar;

struct cdt_sidecar_params {
    const char *host;            /* NULL: 127.0.0.1 */
    int port_min, port_max;      /* 0,0: 11400-11500 */
    bool listen_any;             /* allow a non-loopback host */
    int n_ctx;                   /* 0: CDT_SIDECAR_CTX; clamped to the model's */
    const char *token;           /* bearer token required (not for /health); NULL: none */
    int queue_max;               /* 0: CDT_SIDECAR_QUEUE_MAX */
    struct cdt_backend *backend; /* borrowed; must outlive the sidecar */
    struct cdt_log *log;         /* borrowed */
};

struct cdt_sidecar_params cdt_sidecar_default_params(void);

/* Starts the worker and the HTTP server. Returns 0, or an error with errmsg set
 * (e.g. CDT_EEXISTS "no free port in 11400-11500"). Free with cdt_sidecar_free. */
CDT_NODISCARD int cdt_sidecar_new(const struct cdt_sidecar_params *p, struct cdt_sidecar **out,
                                  char *errmsg, size_t errcap);

int cdt_sidecar_port(const struct cdt_sidecar *s);

/* Queues a load of `path` as if POST /load had asked (used by --model). */
CDT_NODISCARD int cdt_sidecar_load_async(struct cdt_sidecar *s, const char *path);

/* Stops accepting, cancels the running generation, fails queued jobs, waits for the
 * worker. Idempotent; cdt_sidecar_free calls it. */
void cdt_sidecar_stop(struct cdt_sidecar *s);

/* Stops (if needed) and frees; the model is freed through the backend. NULL: no-op. */
void cdt_sidecar_free(struct cdt_sidecar *s);

#endif
