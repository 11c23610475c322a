/* The Hugging Face cache layout, shared with huggingface_hub, hf-hub and
 * llama.cpp `-hf`, so that what one tool downloaded the others reuse:
 *
 *   <root>/models--{org}--{name}/refs/<revision name>      the commit hash, 40 hex
 *   <root>/models--{org}--{name}/blobs/<etag>              the bytes (sha256 for LFS files)
 *   <root>/models--{org}--{name}/blobs/<etag>.incomplete   a download in progress
 *   <root>/models--{org}--{name}/snapshots/<commit>/<file> relative symlink to the blob
 *   <root>/.locks/models--{org}--{name}/<etag>.lock        huggingface_hub's download lock
 *
 * The root is HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 * else ~/.cache/huggingface/hub. Older llama.cpp builds kept flat files
 * `<owner>_<repo>_<file>` in LLAMA_CACHE, else ~/.cache/llama.cpp; they can be found
 * for reuse too.
 *
 * codictate adds one thing: `models--{org}--{name}/.codictate/verified/<etag>`, a
 * marker that the blob's sha256 was checked (other tools only check sizes), holding
 * the blob's size and mtime so a changed blob is hashed again. huggingface_hub's
 * cache scan ignores it. Beside it, `.codictate/damaged/<etag>`: the blob's sha256 was
 * checked and differs (cut short or changed on disk since its download), with the
 * same size and mtime guard.
 *
 * Writers make every visible name atomically (write a temporary name, then rename),
 * so a crash leaves either nothing or a complete entry, plus at most a partial.
 *
 * Names: `repo` is "org/name" (letters, digits, '-', '_', '.'; no "..");
 * `file` is a relative path inside the repository ('/'-separated, no "." or ".."
 * segments, no leading '/'); a `revision` is a branch or tag name ("main",
 * "refs/pr/1") or a 40-hex commit. `key` is a blob name: the hub's etag, which for
 * LFS files is the sha256 in hex.
 *
 * All functions are thread-safe (they share no state) and never print. Error
 * detail goes into `errmsg` (may be NULL) where a function takes one. */
#ifndef CODICTATE_HFCACHE_H
#define CODICTATE_HFCACHE_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_HF_MAX_PATH 4096 /* longest path built or accepted, bytes incl. NUL */
#define CDT_HF_MAX_REPO 200  /* longest repo id, bytes */
#define CDT_HF_MAX_FILE 1024 /* longest file path inside a repo, bytes */
#define CDT_HF_MAX_REV  256  /* longest revision name, bytes */
#define CDT_HF_MAX_KEY  128  /* longest blob key (etag), bytes */
#define CDT_SHA256_HEX  65   /* buffer for a sha256 in lowercase hex plus NUL */

/* Name checks; pure. A revision may not contain "..", a leading '/', spaces or
 * control characters. A key is [0-9A-Za-z_-] only. */
bool cdt_hfcache_valid_repo(const char *repo);
bool cdt_hfcache_valid_file(const char *file);
bool cdt_hfcache_valid_revision(const char *revision);
bool cdt_hfcache_valid_key(const char *key);
/* True for 40 lowercase hex digits (a git commit). */
bool cdt_hfcache_is_commit(const char *revision);
/* True for 64 lowercase hex digits (a sha256). */
bool cdt_hfcache_is_sha256(const char *s);
/* True for names other tools use for partial downloads (*.incomplete, *.part,
 * *.downloadInProgress). */
bool cdt_hfcache_is_partial_name(const char *name);

/* The cache root from the environment (see above). Does not create it. Returns 0
 * and *out (caller frees with free()), CDT_ENOTFOUND when neither the variables
 * nor HOME are set, CDT_ETOOBIG when it is longer than CDT_HF_MAX_PATH,
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_hfcache_root(char **out);

/* `<root>/models--{org}--{name}`. Returns 0 and *out (caller frees with free()),
 * CDT_EINVAL (bad repo), CDT_ETOOBIG, CDT_ENOMEM. */
CDT_NODISCARD int cdt_hfcache_repo_dir(const char *root, const char *repo, char **out);

/* `<repo dir>/blobs/<key>` and `<repo dir>/blobs/<key>.incomplete`. Same returns
 * as cdt_hfcache_repo_dir; caller frees *out with free(). */
CDT_NODISCARD int cdt_hfcache_blob_path(const char *root, const char *repo, const char *key,
                                        char **out);
CDT_NODISCARD int cdt_hfcache_incomplete_path(const char *root, const char *repo, const char *key,
                                              char **out);

/* The commit a revision names: the revision itself when it is a commit, else the
 * content of refs/<revision>. Returns 0 and commit (40 hex + NUL), CDT_ENOTFOUND
 * when there is no such ref, CDT_EFORMAT when the ref file does not hold a
 * commit, CDT_EINVAL. */
CDT_NODISCARD int cdt_hfcache_resolve_revision(const char *root, const char *repo,
                                               const char *revision, char commit[41]);

/* A file present in the cache. */
struct cdt_hfcache_entry {
    char path[CDT_HF_MAX_PATH]; /* snapshots/<commit>/<file>: what to open */
    char blob[CDT_HF_MAX_PATH]; /* where the bytes are (the link's target, or path) */
    char key[CDT_HF_MAX_KEY];   /* the blob's name when it lies in blobs/, else "" */
    char commit[41];            /* the snapshot's commit */
    uint64_t size;              /* bytes */
};

/* Looks up (repo, revision, file): follows refs/<revision> for a name, accepts a
 * plain file or a symlink whose target exists and is a regular file, and ignores
 * partial downloads. Returns 0 and *out, CDT_ENOTFOUND, CDT_EINVAL (bad names). */
CDT_NODISCARD int cdt_hfcache_find(const char *root, const char *repo, const char *revision,
                                   const char *file, struct cdt_hfcache_entry *out);

/* The old llama.cpp flat cache: `$LLAMA_CACHE/<owner>_<name>_<file>`, else
 * `$XDG_CACHE_HOME/llama.cpp/…`, else `~/.cache/llama.cpp/…` ('/' in file becomes
 * '_'). Returns 0 and *out (a regular file that exists; caller frees with free()),
 * CDT_ENOTFOUND, CDT_EINVAL, CDT_ENOMEM. */
CDT_NODISCARD int cdt_hfcache_find_llama(const char *repo, const char *file, char **out);

/* Commits a blob and makes it visible:
 * 1. when `src` is not NULL, renames it (same filesystem; normally the .incomplete)
 *    to blobs/<key>, replacing any older blob of that name; when NULL the blob
 *    must already be there;
 * 2. creates snapshots/<commit>/<file> as a relative symlink to ../../blobs/<key>
 *    (through a temporary name and a rename, so readers never see a half link);
 * 3. when `revision` is a name (not a commit), writes refs/<revision> = commit,
 *    also atomically. `revision` NULL: no ref.
 * Directories are created as needed. On success *path_out (may be NULL) gets the
 * snapshot path; caller frees with free(). Returns 0, CDT_EINVAL, CDT_ENOTFOUND
 * (src NULL and no blob), CDT_EIO (errmsg says which step failed), CDT_ENOMEM. */
CDT_NODISCARD int cdt_hfcache_commit(const char *root, const char *repo, const char *revision,
                                     const char *commit, const char *file, const char *key,
                                     const char *src, char **path_out, char *errmsg, size_t errcap);

/* Deletes a model file: the snapshot entry of (revision, file), its blob unless
 * another snapshot of the repository links to it, the blob's markers, and
 * the partial blobs/<key>.incomplete. `key` (may be NULL) names a partial to delete
 * when no snapshot entry exists (e.g. a cancelled first download); when the entry
 * is a link, its blob's name is used too. Empty snapshot directories are removed;
 * refs are kept. Returns 0 when something was deleted, CDT_ENOTFOUND when nothing
 * was there, CDT_EIO, CDT_EINVAL. */
CDT_NODISCARD int cdt_hfcache_remove(const char *root, const char *repo, const char *revision,
                                     const char *file, const char *key, char *errmsg,
                                     size_t errcap);

/* Progress of a hash: bytes hashed so far and the file size. Return nonzero to
 * stop (the hash then returns CDT_ECANCELED). Called about every 64 MiB and at the
 * end. */
typedef int (*cdt_hash_progress_fn)(uint64_t done, uint64_t total, void *user_data);

/* sha256 of a file (OpenSSL EVP), lowercase hex into `hex`. `progress` may be
 * NULL. Returns 0, CDT_ENOTFOUND, CDT_EIO, CDT_ECANCELED, CDT_ENOMEM. */
CDT_NODISCARD int cdt_hfcache_sha256_file(const char *path, cdt_hash_progress_fn progress,
                                          void *user_data, char hex[CDT_SHA256_HEX]);

/* Hashes `path` and compares with `expected` (64 hex, case-insensitive). `got`
 * (may be NULL) receives the hash. Returns 0 on a match, CDT_ECHECKSUM on a
 * mismatch, or cdt_hfcache_sha256_file's errors. */
CDT_NODISCARD int cdt_hfcache_verify(const char *path, const char *expected,
                                     cdt_hash_progress_fn progress, void *user_data,
                                     char got[CDT_SHA256_HEX]);

/* "Hash a blob you did not write before trusting it (once)": whether blobs/<key>
 * of `repo` carries a verified marker saying its sha256 is `sha256` and matching
 * its current size and mtime; and writing that marker (after a successful verify
 * or a verified download). Marking returns 0, CDT_ENOTFOUND (no blob), CDT_EIO,
 * CDT_EINVAL. */
bool cdt_hfcache_is_verified(const char *root, const char *repo, const char *key,
                             const char *sha256);
CDT_NODISCARD int cdt_hfcache_mark_verified(const char *root, const char *repo, const char *key,
                                            const char *sha256);

/* The opposite finding, kept for later runs: blobs/<key> of `repo` was hashed and is
 * not what it should be (`got_sha256` is what it holds). is_damaged is true while the
 * blob is still the one marked (same size and mtime; a new blob of that name is not
 * damaged) and copies the sha256 found into `got` (may be NULL). Marking drops the
 * blob's verified marker (the next download hashes it again) and returns 0,
 * CDT_ENOTFOUND (no blob), CDT_EIO, CDT_EINVAL. cdt_hfcache_remove deletes both
 * markers. */
bool cdt_hfcache_is_damaged(const char *root, const char *repo, const char *key,
                            char got[CDT_SHA256_HEX]);
CDT_NODISCARD int cdt_hfcache_mark_damaged(const char *root, const char *repo, const char *key,
                                           const char *got_sha256);

#ifdef __cplusplus
}
#endif
#endif
