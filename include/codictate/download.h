/* Verified, resumable downloads from the Hugging Face Hub (or a mirror) into the
 * Hugging Face cache (hfcache.h), on libcurl.
 *
 * One file per call. The steps, in order:
 * 1. Already in the cache for (repo, revision, file)? Then no request at all when
 *    the revision resolves locally (a commit, or a branch name with a refs/ file);
 *    a blob that codictate did not write is hashed once (against the expected
 *    sha256, else its own sha256 name) before it is trusted.
 * 2. Disk check before any byte: when the caller knows the size, free space on the
 *    cache's filesystem must be ≥ the bytes still to fetch + the reserve (100 MB),
 *    else CDT_ENOSPACE, "Insufficient disk space: need X, have Y at PATH".
 * 3. HEAD `{endpoint}/{repo}/resolve/{revision}/{file}` without following
 *    redirects: X-Repo-Commit, X-Linked-Etag (the sha256 of LFS files), X-Linked-Size
 *    and the Location of the CDN; relative redirects (renamed repos, small non-LFS
 *    files) are followed with further HEADs. A blob of that etag already in the
 *    cache (another revision's), or a verified copy in llama.cpp's old flat cache
 *    (hard-linked, not copied), is reused without a GET. The disk check runs again
 *    with the hub's size.
 * 4. GET the CDN URL into blobs/<etag>.incomplete, with `Range: bytes=N-` when a
 *    partial exists (206 appends; 200 starts over; 416 drops the stale partial) and
 *    `Accept-Encoding: identity`. Every attempt starts from the resolve URL (signed
 *    URLs expire and are never stored). huggingface_hub's lock file is held, so
 *    two downloaders never write one partial.
 * 5. Size and sha256 checked (the expected sha256, else X-Linked-Etag; a non-LFS
 *    file without an expected sha256 gets only the size check), then an atomic
 *    commit into the cache (blob, snapshot symlink, refs/<revision>). A mismatch
 *    deletes the partial: CDT_ECHECKSUM "checksum mismatch for FILE: expected …,
 *    got …".
 *
 * Auth: the token (params, else HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the file
 * $HF_TOKEN_PATH, else $HF_HOME/token with HF_HOME defaulting to
 * ~/.cache/huggingface) goes as "Authorization: Bearer" to the endpoint's host
 * only, never to a host a redirect leads to. Redirects from https to http are
 * refused; only http and https are spoken.
 *
 * Faults: no byte for stall_timeout_s, or under CDT_DL_MIN_SPEED for that long → retry; network
 * errors, 5xx and 429 (after Retry-After) → retry with exponential backoff, at most max_retries
 * times in a row (an attempt that brought new bytes does not use up a retry). Errors follow
 * X-Error-Code, not the status: GatedRepo (or a bare 401/403) → CDT_EAUTH "model X
 * is gated: …"; RepoNotFound, RevisionNotFound, EntryNotFound, 404 → CDT_ENOTFOUND
 * with the hub's X-Error-Message; other network failures → CDT_ENET with curl's
 * message. Cancel keeps the partial for a later resume (delete it with
 * cdt_hfcache_remove).
 *
 * Threading: one cdt_download_fetch at a time per handle; cdt_download_cancel may
 * be called from any thread (or a signal handler). Callbacks run on the fetching
 * thread. Never prints; logs through params.log. */
#ifndef CODICTATE_DOWNLOAD_H
#define CODICTATE_DOWNLOAD_H

#include "codictate/err.h"
#include "codictate/hfcache.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_DL_MAX_FILE         (64ull << 30)          /* default largest file accepted, bytes */
#define CDT_DL_RESERVE          (100ull * 1000 * 1000) /* default free space kept, bytes */
#define CDT_DL_MAX_URL          8192                   /* longest URL built or followed, bytes */
#define CDT_DL_MAX_HEADER       8192                   /* longest response header line, bytes */
#define CDT_DL_MAX_HEADERS      (64 * 1024)            /* all headers of one response, bytes */
#define CDT_DL_MAX_REDIRECTS    10                     /* redirects followed per request */
#define CDT_DL_MAX_TOKEN        4096                   /* longest token, bytes */
#define CDT_DL_MIN_SPEED        1024 /* slower than this for stall_timeout_s is a stall, B/s */
#define CDT_DL_DEFAULT_ENDPOINT "https://huggingface.co"

enum cdt_download_phase {
    CDT_DL_PHASE_DOWNLOAD = 0, /* bytes are arriving */
    CDT_DL_PHASE_VERIFY = 1,   /* hashing a cached file before trusting it */
};

struct cdt_download_progress {
    enum cdt_download_phase phase;
    uint64_t bytes_done;  /* bytes of the file on disk so far, a resumed partial included */
    uint64_t bytes_total; /* file size in bytes; 0 when not yet known */
    double speed;         /* bytes/s over the last few seconds; 0 at first */
    double eta_s;         /* seconds left at that speed; -1 when unknown */
    const char *file;     /* the file's path in the repository; borrowed for the call */
};

/* At most one call per progress_interval_ms, plus one final call when the file is
 * complete (bytes_done == bytes_total). */
typedef void (*cdt_download_progress_fn)(const struct cdt_download_progress *p, void *user_data);

struct cdt_download_params {
    const char *endpoint;  /* hub URL, copied; NULL: $HF_ENDPOINT, else CDT_DL_DEFAULT_ENDPOINT */
    const char *cache_dir; /* hub cache root, copied; NULL: cdt_hfcache_root() */
    const char *token;     /* bearer token, copied; NULL: from the environment (see
                              above); "": send none */
    int stall_timeout_s;   /* no byte for this long → retry, seconds; 0: 30 */
    int connect_timeout_s; /* TCP+TLS connect limit, seconds; 0: 15 */
    int max_retries;       /* retries after a failed attempt; 0: 3; negative: none */
    int retry_base_ms;     /* first backoff, doubled each retry, ms; 0: 1000 */
    int retry_max_ms;      /* longest wait (backoff or Retry-After), ms; 0: 60000 */
    int progress_interval_ms;          /* least time between progress calls, ms; 0: 100 */
    uint64_t max_file_size;            /* largest file accepted, bytes; 0: CDT_DL_MAX_FILE */
    uint64_t disk_reserve;             /* free space that must remain, bytes; 0: CDT_DL_RESERVE */
    bool no_llama_cache;               /* do not look in llama.cpp's old flat cache */
    cdt_download_progress_fn progress; /* may be NULL */
    void *user_data;                   /* passed to progress */
    struct cdt_log *log;               /* borrowed; may be NULL */
};

/* What a successful fetch produced. */
struct cdt_download_result {
    char path[CDT_HF_MAX_PATH];  /* the file to open (snapshots/<commit>/<file>) */
    char commit[41];             /* the commit the revision resolved to */
    char sha256[CDT_SHA256_HEX]; /* verified sha256; "" when only the size was checked */
    uint64_t size;               /* bytes */
    uint64_t bytes_fetched;      /* body bytes received by this call (0: reused) */
    int requests;                /* HTTP requests made by this call (0: none) */
    bool cached;                 /* nothing was downloaded: the cache had it */
};

struct cdt_download;

struct cdt_download_params cdt_download_default_params(void);

/* Creates a downloader. Reads the environment (endpoint, cache root, token) now.
 * Returns 0 and *out (free with cdt_download_free), CDT_EINVAL (bad endpoint or
 * token: control characters, too long), CDT_ENOTFOUND (no cache root), CDT_ENOMEM,
 * CDT_EIO (libcurl failed to initialise). */
CDT_NODISCARD int cdt_download_new(const struct cdt_download_params *p, struct cdt_download **out);

/* NULL is a no-op. Must not race with a fetch. */
void cdt_download_free(struct cdt_download *d);

/* Downloads `file` of `repo` at `revision` (NULL: "main") into the cache, or finds
 * it there (steps above). `size` is the expected size in bytes or 0 when unknown;
 * `sha256` the expected sha256 (64 hex) or NULL. Blocks until done. On success
 * fills *res (may be NULL). Returns 0, CDT_EINVAL (bad names), CDT_ENOSPACE,
 * CDT_EAUTH, CDT_ENOTFOUND, CDT_ECHECKSUM (hash or size mismatch), CDT_ETOOBIG (over
 * max_file_size or a cap), CDT_ENET (retries exhausted), CDT_EPROTOCOL (a refused
 * redirect, a reply that breaks the protocol), CDT_EBUSY (another process holds
 * the download lock), CDT_ECANCELED, CDT_EIO (disk), CDT_ENOMEM. The message for
 * people: cdt_download_errmsg(). */
CDT_NODISCARD int cdt_download_fetch(struct cdt_download *d, const char *repo, const char *revision,
                                     const char *file, uint64_t size, const char *sha256,
                                     struct cdt_download_result *res);

/* Asks the running fetch to stop (it returns CDT_ECANCELED soon, keeping the
 * partial). Sticky: every later fetch on this handle returns CDT_ECANCELED at
 * once, so a cancel between the files of a model stops them all. Async-signal-safe. */
void cdt_download_cancel(struct cdt_download *d);

/* Checks that `bytes` more can be written to the cache with the reserve left
 * (e.g. the sum of a model's files before fetching the first). Returns 0,
 * CDT_ENOSPACE (errmsg says need/have/where), CDT_EIO. */
CDT_NODISCARD int cdt_download_check_disk(struct cdt_download *d, uint64_t bytes);

/* The last error in words; "" after a success. Borrowed until the next call on d. */
const char *cdt_download_errmsg(const struct cdt_download *d);

/* The cache root in use. Borrowed for the handle's lifetime. */
const char *cdt_download_cache_dir(const struct cdt_download *d);

/* Bytes for people, SI units as disk tools print them: "17 B", "900 kB", "512 MB",
 * "12.3 GB". Writes into buf (NUL-terminated when cap > 0) and returns buf. */
const char *cdt_human_bytes(uint64_t bytes, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
