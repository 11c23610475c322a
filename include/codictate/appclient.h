/* Finding and calling a running app (`codictate serve`) from the CLI: `status`,
 * `dictate --toggle` and the verbs that prefer the app's warm model. The app writes
 * its port to "<state dir>/app.port" (the manager's state dir: $XDG_RUNTIME_DIR/
 * codictate, else ~/.cache/codictate) while it runs; $CODICTATE_APP_PORT overrides;
 * else the default port 11380 is tried. A port counts only when GET /api/status
 * answers like the app. CODICTATE_NO_APP=1 (the test suite sets it) finds none
 * unless CODICTATE_APP_PORT names one. */
#ifndef CODICTATE_APPCLIENT_H
#define CODICTATE_APPCLIENT_H

#include "codictate/client.h"
#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Records / forgets this process's port as the running app's. Returns 0 or an
 * error (the app runs anyway; only discovery suffers). */
int cdt_appclient_publish(int port);
void cdt_appclient_unpublish(int port);

/* The port of a running app, or 0 when none answers. */
int cdt_appclient_find(void);

/* One request to the app at port (timeout_ms 0: none). As cdt_client_request. */
CDT_NODISCARD int cdt_appclient_call(int port, const char *method, const char *path,
                                     const char *body, long timeout_ms,
                                     struct cdt_client_response *out, char *errmsg, size_t errcap);

/* cdt_appclient_call with on_data (NULL: none) seeing the body as it arrives (a
 * stream's events) and stop (NULL: never) asked every CDT_CLIENT_POLL_MS while it
 * runs: when it says true the connection closes at once (the app stops the work
 * the request started) and CDT_ECANCELED is returned. */
CDT_NODISCARD int cdt_appclient_call_stoppable(int port, const char *method, const char *path,
                                               const char *body, long timeout_ms,
                                               cdt_client_data_fn on_data, void *data_ud,
                                               cdt_client_stop_fn stop, void *stop_data,
                                               struct cdt_client_response *out, char *errmsg,
                                               size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
