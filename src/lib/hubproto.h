/* The Hugging Face Hub's HTTP conventions, without any I/O: resolve URLs,
 * redirect and token rules, and the response headers the downloader reads.
 * Private to libcodictate (download.c and its tests); pure and thread-safe. */
#ifndef CODICTATE_HUBPROTO_H
#define CODICTATE_HUBPROTO_H

#include "codictate/hfcache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CDT__HUB_MSG_MAX 300 /* X-Error-Message kept, bytes */

/* What one response said: the headers the downloader uses. */
struct cdt__hub_resp {
    long status;
    bool has_location, location_relative;
    char commit[48];                  /* X-Repo-Commit */
    char linked_etag[CDT_HF_MAX_KEY]; /* X-Linked-Etag unquoted; "" unless a valid blob key */
    char etag[CDT_HF_MAX_KEY];        /* ETag unquoted, W/ dropped; "" unless a valid blob key */
    bool has_linked_size, has_length;
    uint64_t linked_size, length; /* X-Linked-Size, Content-Length, bytes */
    char content_range[96];
    char error_code[48];                  /* X-Error-Code */
    char error_message[CDT__HUB_MSG_MAX]; /* X-Error-Message, control characters dropped */
    long retry_after_s;                   /* Retry-After in seconds (≤ 1 day); -1: none */
    size_t header_bytes;                  /* header bytes of this response so far */
    bool overflow;                        /* a header cap was hit */
};

/* Takes one header line (CR/LF already stripped). A status line ("HTTP/…") starts
 * a new response: everything but header_bytes is reset. Unknown headers are
 * ignored; values are length-capped and numbers parsed with overflow checks. */
void cdt__hub_parse_header(struct cdt__hub_resp *r, char *line);

/* `{endpoint}/{repo}/resolve/{revision}/{file}` with the revision percent-encoded
 * ('/' too: "refs/pr/1" → "refs%2Fpr%2F1") and each segment of file encoded ('/'
 * kept). Returns 0, CDT_EINVAL (bad names), CDT_ETOOBIG (over cap). */
int cdt__hub_resolve_url(const char *endpoint, const char *repo, const char *revision,
                         const char *file, char *buf, size_t cap);

/* Whether url starts with "<scheme>://" (scheme case-insensitive). */
bool cdt__hub_has_scheme(const char *url, const char *scheme);

/* Whether a redirect from `from` to `to` may be followed: http or https only,
 * never https → http. Returns 0 or CDT_EPROTOCOL. */
int cdt__hub_redirect_allowed(const char *from, const char *to);

/* Same scheme, host (case-insensitive) and port (defaults filled in). */
bool cdt__hub_same_origin(const char *a, const char *b);

/* url without its query and fragment (where signatures live), into buf; returns buf. */
const char *cdt__hub_strip_query(const char *url, char *buf, size_t cap);

/* Strips whitespace around a token in place. Returns 0, or CDT_EINVAL when what
 * is left has spaces, control or non-ASCII characters (it would break the header). */
int cdt__hub_clean_token(char *token);

/* Reads the token as huggingface_hub does: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then
 * the file $HF_TOKEN_PATH, else $HF_HOME/token (HF_HOME defaulting to
 * $XDG_CACHE_HOME/huggingface, then ~/.cache/huggingface); cleaned as above; ""
 * when there is none. `source` (may be NULL) gets where it came from (a static
 * string). Returns 0, CDT_EINVAL, CDT_ETOOBIG (longer than CDT_DL_MAX_TOKEN). */
int cdt__hub_env_token(char *buf, size_t cap, const char **source);

#endif
