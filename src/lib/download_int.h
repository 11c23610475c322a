/* download.c's pure helpers, exposed for tests; not installed. */
#ifndef CODICTATE_DOWNLOAD_INT_H
#define CODICTATE_DOWNLOAD_INT_H

#include <stdbool.h>
#include <stddef.h>

/* `{endpoint}/{repo}/resolve/{revision}/{file}` with the revision percent-encoded
 * ('/' too: "refs/pr/1" → "refs%2Fpr%2F1") and each segment of file encoded ('/'
 * kept). Returns 0, CDT_EINVAL (bad names), CDT_ETOOBIG (over cap). */
int cdt__download_resolve_url(const char *endpoint, const char *repo, const char *revision,
                              const char *file, char *buf, size_t cap);

/* Whether a redirect from `from` to `to` may be followed: http or https only,
 * never https → http. Returns 0 or CDT_EPROTOCOL. */
int cdt__download_redirect_allowed(const char *from, const char *to);

/* Same scheme, host (case-insensitive) and port (defaults filled in). */
bool cdt__download_same_origin(const char *a, const char *b);

/* Reads the token as huggingface_hub does (see download.h) into buf,
 * whitespace-stripped; "" when there is none. `source` (may be NULL) gets where
 * it came from. Returns 0, CDT_EINVAL (control or non-ASCII characters),
 * CDT_ETOOBIG (longer than CDT_DL_MAX_TOKEN). */
int cdt__download_env_token(char *buf, size_t cap, const char **source);

#endif
