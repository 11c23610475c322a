/* Models on this machine: the catalog joined with the Hugging Face cache, the
 * downloads, and the sidecar manager, as one per-model state machine
 * (DESIGN.md "Model lifecycle"):
 *
 *   not_downloaded → downloading → downloaded | download_failed
 *   downloaded → loading → ready | load_failed;  ready → unloaded (idle) → loading
 *   delete → not_downloaded (refused while downloading or loaded)
 *   a downloaded file found damaged → damaged → (pull) downloading → downloaded
 *
 * States are derived at start from what is on disk; every transition is an event.
 * `damaged` is a complete download that is no longer what the catalog gives: a file
 * of another size than the catalog's (cut short by a power loss or a disk error, or
 * grown), seen on every query, or of another sha256, seen by cdt_models_verify and
 * kept in the cache for later runs (hfcache's damaged marker) until the file is
 * replaced, deleted or pulled. A
 * partial download (blobs/<sha256>.incomplete) is never damaged: it stays
 * not_downloaded with its bytes in the detail, and a pull resumes it. A pull of a
 * damaged model deletes the damaged file and fetches it whole (its bytes cannot be
 * trusted as a prefix of the right ones), verified by sha256 as any download.
 * Thread-safety: all functions may be called from any thread; one download per
 * model at a time. */
#ifndef CODICTATE_MODELS_H
#define CODICTATE_MODELS_H

#include "codictate/catalog.h"
#include "codictate/download.h"
#include "codictate/err.h"
#include "codictate/manager.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cdt_model_state {
    CDT_MODEL_NOT_DOWNLOADED,
    CDT_MODEL_DOWNLOADING,
    CDT_MODEL_DOWNLOAD_FAILED,
    CDT_MODEL_DOWNLOADED,
    CDT_MODEL_LOADING,
    CDT_MODEL_READY,
    CDT_MODEL_LOAD_FAILED,
    CDT_MODEL_UNLOADED,
    CDT_MODEL_DAMAGED, /* downloaded, then damaged on disk: `models pull` repairs it */
};

/* "not_downloaded", "downloading", "download_failed", "downloaded", "loading",
 * "ready", "load_failed", "unloaded", "damaged" (static). */
const char *cdt_model_state_name(enum cdt_model_state s);

struct cdt_models_event {
    const char *id;             /* canonical model id; borrowed */
    enum cdt_model_state state; /* the new state */
    const char *detail;         /* why (errors), or NULL; borrowed */
    /* During downloads: progress of the current file (else NULL). */
    const struct cdt_download_progress *progress;
    uint64_t model_bytes_done;  /* all files, bytes */
    uint64_t model_bytes_total; /* all files, bytes (0: unknown) */
};

struct cdt_models_params {
    const struct cdt_catalog *catalog;   /* borrowed; required */
    struct cdt_download_params download; /* template for downloads (progress/user_data
                                          * are replaced); start from
                                          * cdt_download_default_params() */
    struct cdt_manager_params manager;   /* for the sidecar (on_event is replaced) */
    struct cdt_log *log;                 /* borrowed */
    void (*on_event)(const struct cdt_models_event *ev, void *user_data);
    void *user_data;
};

struct cdt_models_params cdt_models_default_params(void);

struct cdt_models;

/* Returns 0 and *out (free with cdt_models_free), CDT_EINVAL, CDT_ENOMEM. The
 * sidecar manager is created on the first load. */
CDT_NODISCARD int cdt_models_new(const struct cdt_models_params *p, struct cdt_models **out);
void cdt_models_free(struct cdt_models *m);

/* The model's state (looked up by id or alias); detail (may be NULL) gets the last
 * error, "partial: N of M bytes" or, when damaged, which file and why ("FILE has N
 * bytes, expected M; …" or verify's checksum mismatch) and the fix. Unknown ids:
 * CDT_MODEL_NOT_DOWNLOADED and returns CDT_ENOTFOUND in *rc when rc is not NULL. */
enum cdt_model_state cdt_models_state(struct cdt_models *m, const char *id, char *detail,
                                      size_t cap);

/* Bytes of the model already on disk (complete files and partials; not a damaged
 * file, which a pull deletes). */
uint64_t cdt_models_bytes_on_disk(struct cdt_models *m, const char *id);

/* Bytes the model takes on disk, damaged files included (what a delete frees). */
uint64_t cdt_models_bytes_held(struct cdt_models *m, const char *id);

/* Path of the model's main file (its first file; a sharded GGUF's first shard)
 * when it is downloaded. Returns 0, CDT_ENOTFOUND (unknown id), CDT_ESTATE (not
 * downloaded), CDT_ECHECKSUM (damaged: a file is there but not the catalog's size,
 * or cdt_models_verify found another sha256; `models pull` fetches it again). */
CDT_NODISCARD int cdt_models_path(struct cdt_models *m, const char *id, char *buf, size_t cap);

/* The message for a model cdt_models_path calls damaged (printf: the id twice). */
#define CDT_MODELS_DAMAGED_FMT                                                                     \
    "model %s is damaged on disk (a file is not the size or the sha256 the catalog gives: cut "    \
    "short or changed after its download); codictate models pull %s fetches it again"

/* Downloads every file of the model (blocking; resumable; verified). Checks the
 * disk for all remaining bytes + the reserve before the first byte. Returns 0,
 * CDT_ENOTFOUND, CDT_EBUSY (already downloading), CDT_ECANCELED (cdt_models_cancel:
 * the partial is kept), or the downloader's error (errmsg says what). A damaged
 * file is deleted and fetched whole (repair). A built-in
 * model (catalog source "builtin", shipped in <share dir>/models and found once, at
 * cdt_models_new) is never downloaded: 0 when its file is there, else CDT_ENOTFOUND
 * (errmsg: reinstall). */
CDT_NODISCARD int cdt_models_pull(struct cdt_models *m, const char *id, char *errmsg,
                                  size_t errcap);

/* The same with a Hugging Face token for gated repositories (NULL or "": the
 * environment's, as cdt_models_pull). The token is never logged. */
CDT_NODISCARD int cdt_models_pull_token(struct cdt_models *m, const char *id, const char *token,
                                        char *errmsg, size_t errcap);

/* Cancels the model's running download (no-op otherwise). Async-signal-unsafe. */
void cdt_models_cancel(struct cdt_models *m, const char *id);

/* Deletes the model's files and partials. Refused (CDT_ESTATE) while it is
 * downloading or loaded, and always for a built-in model (CDT_EPERM). */
CDT_NODISCARD int cdt_models_delete(struct cdt_models *m, const char *id, char *errmsg,
                                    size_t errcap);

/* Hashes every file and compares with the catalog (or the size when no sha256 is
 * known). Returns 0, CDT_ESTATE (not downloaded), CDT_ECHECKSUM (damaged: errmsg
 * "ID is damaged: FILE has N bytes, expected M" or "ID is damaged: FILE: checksum
 * mismatch: …", then the fix). A checksum mismatch makes the model `damaged` (an
 * event), for later runs too (the cache's damaged marker). */
CDT_NODISCARD int cdt_models_verify(struct cdt_models *m, const char *id, char *errmsg,
                                    size_t errcap);

/* Loads the model in the sidecar (LLMs). Returns 0 or an error with errmsg. */
CDT_NODISCARD int cdt_models_load(struct cdt_models *m, const char *id, char *errmsg,
                                  size_t errcap);

/* The model of a kind to use when a person names none: for LLMs the one the catalog
 * recommends for the RAM tier when it is downloaded, else the first downloaded LLM
 * in catalog order (the built-in one comes last there, so it is the last resort);
 * for the other kinds the first downloaded one (catalog order). The local refine
 * provider and the app's "in use" follow this one rule. NULL when none is
 * downloaded. Borrowed from the catalog. */
const struct cdt_catalog_model *cdt_models_default(struct cdt_models *m, enum cdt_model_kind kind,
                                                   enum cdt_ram_tier tier);

/* The manager (created on first use; NULL when it cannot be). Borrowed. */
struct cdt_manager *cdt_models_manager(struct cdt_models *m);

#ifdef __cplusplus
}
#endif
#endif
