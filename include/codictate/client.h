/* A small HTTP client for the sidecar's JSON API (libcurl): one request, a body
 * cap, a timeout, and the bearer token. Thread-safe (a curl handle per call). */
#ifndef CODICTATE_CLIENT_H
#define CODICTATE_CLIENT_H

#include "codictate/err.h"
#include "codictate/util.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_CLIENT_MAX_RESPONSE (16 * 1024 * 1024) /* response body cap, bytes */

struct cdt_client_response {
    long status; /* HTTP status; 0 when no response arrived */
    char *body;  /* NUL-terminated; caller frees with free(); never NULL on success */
    size_t len;
};

/* A libcurl write callback target that collects a response body up to a cap.
 * Zero-initialise, set `max` (0: CDT_CLIENT_MAX_RESPONSE), pass
 * cdt_curl_sink_write as CURLOPT_WRITEFUNCTION and the sink as CURLOPT_WRITEDATA.
 * `body` (NUL-terminated when its data is non-NULL) is owned by the caller:
 * cdt_buf_take or cdt_buf_cleanup. */
struct cdt_curl_sink {
    struct cdt_buf body;
    size_t max;   /* body cap, bytes */
    bool too_big; /* the body went over max; the transfer was aborted */
};

size_t cdt_curl_sink_write(char *ptr, size_t size, size_t nmemb, void *sink);

#define CDT_CLIENT_POLL_MS 20 /* how often a running request asks its stop function, ms */

/* Says whether a request under way should stop now (a dictation cancelled, say).
 * Called on the requesting thread every CDT_CLIENT_POLL_MS while the request runs;
 * must be cheap and thread-safe against whoever sets what it reads. */
typedef bool (*cdt_client_stop_fn)(void *user_data);

/* curl_easy_perform(easy) for libcurl users of this library, except that `stop`
 * (NULL: none, then exactly curl_easy_perform) is asked every CDT_CLIENT_POLL_MS
 * while the transfer runs: once it says true the connection is closed at once (the
 * server sees its client go) and CURLE_ABORTED_BY_CALLBACK is returned. `easy` is a
 * CURL * (borrowed; reusable afterwards); returns a CURLcode. */
int cdt_curl_perform(void *easy, cdt_client_stop_fn stop, void *user_data);

/* Sends METHOD http://127.0.0.1:PORT PATH with an optional JSON body. token may be
 * NULL. timeout_ms 0: none. Returns 0 when a response arrived (any status), CDT_ENET
 * when the connection failed or dropped (errmsg says why), CDT_ETIMEOUT, CDT_ETOOBIG,
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_client_request(int port, const char *token, const char *method,
                                     const char *path, const char *body, long timeout_ms,
                                     struct cdt_client_response *out, char *errmsg, size_t errcap);

/* Sees a response body as it arrives: each chunk in order (borrowed for the call),
 * once it has been added to the body. Runs on the calling thread. */
typedef void (*cdt_client_data_fn)(const char *data, size_t len, void *user_data);

/* cdt_client_request, with on_data (NULL: none) called for every chunk of the body
 * while the transfer runs (a stream's events as the server sends them), and stop
 * (NULL: none) asked as cdt_curl_perform says: when it says true the connection is
 * closed and CDT_ECANCELED returned ("cancelled"). The body is collected all the
 * same. */
CDT_NODISCARD int cdt_client_request_observed(int port, const char *token, const char *method,
                                              const char *path, const char *body, long timeout_ms,
                                              cdt_client_data_fn on_data, void *user_data,
                                              cdt_client_stop_fn stop, void *stop_data,
                                              struct cdt_client_response *out, char *errmsg,
                                              size_t errcap);

/* Reads a stream of "data: {json}\n\n" events (the sidecar's /generate and the app's
 * /api/refine with "stream": true) as it arrives: pass cdt_client_scan_text_events as
 * on_data and a struct cdt_client_text_scan as its user data. Each complete event
 * {"text": piece} (not the final {"done": true, ...}) goes to on_text; blank lines
 * and comments are skipped. Zero it but for on_text and user_data; cdt_buf_cleanup
 * its line afterwards. Only an early view: the final event is read from the whole
 * body. */
struct cdt_client_text_scan {
    void (*on_text)(const char *text, size_t len, void *user_data);
    void *user_data;
    struct cdt_buf line; /* the line so far (bounded by the body's cap) */
    bool failed;         /* out of memory: no more pieces (the answer is unaffected) */
};
void cdt_client_scan_text_events(const char *data, size_t len, void *scan);

#ifdef __cplusplus
}
#endif
#endif
