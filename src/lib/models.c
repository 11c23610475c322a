/* The model lifecycle (see models.h). Per catalog entry, `mem` holds the states
 * only this process can know (downloading, download_failed, loading, ready,
 * load_failed, unloaded); everything else is derived from the cache on each query,
 * so files other tools add or remove are seen. `damaged` comes from the disk too: a
 * file of another size than the catalog's, or one cdt_models_verify hashed to
 * another sha256 (hfcache's damaged marker, for later runs; `bad_hash` too, for
 * files outside blobs/, until a pull, delete or passing verify). Events are emitted
 * without the lock held. */
#include "codictate/models.h"
#include "codictate/hfcache.h"
#include "codictate/log.h"
#include "codictate/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CDT_MODELS_DETAIL 512 /* detail text kept per model, bytes */

struct entry {
    const struct cdt_catalog_model *cm;
    bool has_mem;
    enum cdt_model_state mem;
    char detail[CDT_MODELS_DETAIL];
    char bad_hash[CDT_MODELS_DETAIL]; /* verify's mismatch ("" = none seen) */
    struct cdt_download *dl;          /* while downloading */
};

struct cdt_models {
    pthread_mutex_t lock;
    const struct cdt_catalog *cat;
    struct entry *e;
    size_t n;
    char *cache_dir;
    char builtin_dir[CDT_HF_MAX_PATH]; /* <share dir>/models; "" when hidden or absent */
    struct cdt_download_params dl_template;
    struct cdt_manager_params mgr_params;
    struct cdt_manager *mgr;
    struct cdt_log *log;
    void (*on_event)(const struct cdt_models_event *ev, void *user_data);
    void *user_data;
};

const char *cdt_model_state_name(enum cdt_model_state s)
{
    static const char *const names[] = {"not_downloaded", "downloading", "download_failed",
                                        "downloaded",     "loading",     "ready",
                                        "load_failed",    "unloaded",    "damaged"};

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

struct cdt_models_params cdt_models_default_params(void)
{
    struct cdt_models_params p;

    memset(&p, 0, sizeof(p));
    p.download = cdt_download_default_params();
    p.manager = cdt_manager_default_params();
    return p;
}

static struct entry *find(struct cdt_models *m, const char *id)
{
    const struct cdt_catalog_model *cm = id ? cdt_catalog_find(m->cat, id) : NULL;

    for (size_t i = 0; cm && i < m->n; i++)
        if (m->e[i].cm == cm)
            return &m->e[i];
    return NULL;
}

static void emit(struct cdt_models *m, const char *id, enum cdt_model_state st, const char *detail)
{
    struct cdt_models_event ev;

    if (!m->on_event)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.id = id;
    ev.state = st;
    ev.detail = detail;
    m->on_event(&ev, m->user_data);
}

/* Sets the in-memory state (lock held by caller) and returns what to emit. */
static void set_state_locked(struct entry *e, enum cdt_model_state st, const char *detail)
{
    e->has_mem = true;
    e->mem = st;
    snprintf(e->detail, sizeof(e->detail), "%s", detail ? detail : "");
}

static const struct cdt_catalog_source *source_of(const struct cdt_catalog_model *cm)
{
    return &cm->sources[0];
}

/* Finds file i of the model in the cache; returns 0 with the entry. */
static bool builtin(const struct cdt_catalog_model *cm)
{
    return source_of(cm)->type == CDT_SOURCE_BUILTIN;
}

/* What repairs a damaged model, into buf; returns buf. */
static const char *repair_hint(const struct cdt_catalog_model *cm, char *buf, size_t cap)
{
    if (builtin(cm))
        snprintf(buf, cap, "reinstall codictate to repair it");
    else
        snprintf(buf, cap, "codictate models pull %s fetches it again", cm->id);
    return buf;
}

/* Where files shipped with codictate lie, found once (cdt_models_new):
 * <share dir>/models, or "" when CODICTATE_NO_BUILTIN_MODEL=1 hides them (the test
 * suite's models are its own) or there is no share dir. */
static void find_builtin_dir(char *buf, size_t cap)
{
    char dir[CDT_HF_MAX_PATH];

    buf[0] = '\0';
    if (cdt_env_long("CODICTATE_NO_BUILTIN_MODEL", 0, 1, 0) != 1 &&
        cdt_share_dir(dir, sizeof(dir)) == 0 && (size_t)snprintf(buf, cap, "%s/models", dir) >= cap)
        buf[0] = '\0';
}

/* A file shipped with codictate: <builtin dir>/<name>, a regular file. */
static int builtin_file(const struct cdt_models *m, const char *name, struct cdt_hfcache_entry *out)
{
    struct stat st;

    memset(out, 0, sizeof(*out));
    if (!m->builtin_dir[0] || (size_t)snprintf(out->path, sizeof(out->path), "%s/%s",
                                               m->builtin_dir, name) >= sizeof(out->path))
        return CDT_ENOTFOUND;
    if (stat(out->path, &st) != 0 || !S_ISREG(st.st_mode))
        return CDT_ENOTFOUND;
    snprintf(out->blob, sizeof(out->blob), "%s", out->path);
    out->size = (uint64_t)st.st_size;
    return 0;
}

static int find_file(struct cdt_models *m, const struct cdt_catalog_model *cm, size_t i,
                     struct cdt_hfcache_entry *out)
{
    const struct cdt_catalog_source *src = source_of(cm);
    int rc = builtin(cm)
                 ? builtin_file(m, cm->files[i].name, out)
                 : cdt_hfcache_find(m->cache_dir, src->repo, src->revision, cm->files[i].name, out);

    if (rc == 0 && cm->files[i].size && out->size != cm->files[i].size)
        return CDT_EFORMAT; /* a different or damaged file */
    if (rc == 0 && !builtin(cm) && out->key[0] &&
        cdt_hfcache_is_damaged(m->cache_dir, src->repo, out->key, NULL))
        return CDT_EFORMAT; /* a verify found other bytes (an earlier run, maybe) */
    return rc;
}

/* Complete files and partial bytes on disk. `damaged` (may be NULL; "" when none)
 * gets "FILE has N bytes, expected M" for the first file there but not of the
 * catalog's size: a complete download damaged since, not a partial. */
/* complete: every file is in the cache and sound; bytes: what the sound files and the
 * partial downloads hold; bad_bytes (NULL: not asked): what damaged files hold. */
static void disk_state(struct cdt_models *m, const struct cdt_catalog_model *cm, bool *complete,
                       uint64_t *bytes, uint64_t *bad_bytes, char *damaged, size_t cap)
{
    *complete = true;
    *bytes = 0;
    if (bad_bytes)
        *bad_bytes = 0;
    if (damaged && cap)
        damaged[0] = '\0';
    for (size_t i = 0; i < cm->n_files; i++) {
        struct cdt_hfcache_entry fe;
        int rc = find_file(m, cm, i, &fe);

        if (rc == 0) {
            *bytes += fe.size;
            continue;
        }
        *complete = false;
        if (rc == CDT_EFORMAT && bad_bytes)
            *bad_bytes += fe.size;
        if (rc == CDT_EFORMAT && damaged && cap && !damaged[0] && fe.size != cm->files[i].size)
            snprintf(damaged, cap, "%s has %llu bytes, expected %llu", cm->files[i].name,
                     (unsigned long long)fe.size, (unsigned long long)cm->files[i].size);
        else if (rc == CDT_EFORMAT && damaged && cap && !damaged[0])
            snprintf(damaged, cap,
                     "%s: checksum mismatch (codictate models verify found other bytes)",
                     cm->files[i].name);
        if (cm->files[i].sha256[0] && !builtin(cm)) {
            char *part = NULL;
            struct stat st;

            if (cdt_hfcache_incomplete_path(m->cache_dir, source_of(cm)->repo, cm->files[i].sha256,
                                            &part) == 0 &&
                stat(part, &st) == 0)
                *bytes += (uint64_t)st.st_size;
            free(part);
        }
    }
}

/* The model the manager has loaded, if any; called WITHOUT m->lock: the manager may
 * emit an event (a sidecar found dead), and on_manager_event takes m->lock. */
static bool manager_loaded(struct cdt_models *m, char *buf, size_t cap)
{
    struct cdt_manager *mgr;

    pthread_mutex_lock(&m->lock);
    mgr = m->mgr;
    pthread_mutex_unlock(&m->lock);
    return mgr && cdt_manager_loaded(mgr, buf, cap);
}

enum cdt_model_state cdt_models_state(struct cdt_models *m, const char *id, char *detail,
                                      size_t cap)
{
    struct entry *e;
    enum cdt_model_state st;
    bool complete;
    uint64_t bytes;
    char damaged[CDT_MODELS_DETAIL], fix[CDT_MODELS_DETAIL];

    if (cap)
        detail[0] = '\0';
    /* A sidecar that died since the last look turns "ready" into "unloaded" (through
     * the manager's SIDECAR_EXITED event, which takes m->lock: asked before it). */
    (void)manager_loaded(m, NULL, 0);
    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    if (!e) {
        pthread_mutex_unlock(&m->lock);
        if (cap)
            snprintf(detail, cap, "unknown model '%s'", id ? id : "");
        return CDT_MODEL_NOT_DOWNLOADED;
    }
    if (e->has_mem && (e->mem == CDT_MODEL_DOWNLOADING || e->mem == CDT_MODEL_LOADING)) {
        st = e->mem;
        if (cap)
            snprintf(detail, cap, "%s", e->detail);
        pthread_mutex_unlock(&m->lock);
        return st;
    }
    disk_state(m, e->cm, &complete, &bytes, NULL, damaged, sizeof(damaged));
    if (damaged[0] || (complete && e->bad_hash[0])) {
        /* The disk wins over a remembered ready/failed state. */
        st = CDT_MODEL_DAMAGED;
        if (cap)
            snprintf(detail, cap, "%s; %s", damaged[0] ? damaged : e->bad_hash,
                     repair_hint(e->cm, fix, sizeof(fix)));
    } else if (!complete) {
        /* Files gone under a loaded/failed state: the disk wins. */
        st = e->has_mem && e->mem == CDT_MODEL_DOWNLOAD_FAILED ? CDT_MODEL_DOWNLOAD_FAILED
                                                               : CDT_MODEL_NOT_DOWNLOADED;
        if (cap && st == CDT_MODEL_DOWNLOAD_FAILED)
            snprintf(detail, cap, "%s", e->detail);
        else if (cap && bytes)
            snprintf(detail, cap, "partial: %llu of %llu bytes (resumable)",
                     (unsigned long long)bytes, (unsigned long long)cdt_catalog_model_size(e->cm));
    } else if (e->has_mem && (e->mem == CDT_MODEL_READY || e->mem == CDT_MODEL_LOAD_FAILED ||
                              e->mem == CDT_MODEL_UNLOADED)) {
        st = e->mem;
        if (cap)
            snprintf(detail, cap, "%s", e->detail);
    } else {
        st = CDT_MODEL_DOWNLOADED;
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

static uint64_t bytes_of(struct cdt_models *m, const char *id, bool with_damaged)
{
    struct entry *e;
    bool complete;
    uint64_t bytes = 0, bad = 0;

    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    if (e)
        disk_state(m, e->cm, &complete, &bytes, &bad, NULL, 0);
    pthread_mutex_unlock(&m->lock);
    return with_damaged ? bytes + bad : bytes;
}

uint64_t cdt_models_bytes_on_disk(struct cdt_models *m, const char *id)
{
    return bytes_of(m, id, false);
}

uint64_t cdt_models_bytes_held(struct cdt_models *m, const char *id)
{
    return bytes_of(m, id, true);
}

int cdt_models_path(struct cdt_models *m, const char *id, char *buf, size_t cap)
{
    struct cdt_hfcache_entry fe;
    struct entry *e;
    int rc;

    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    rc = !e ? CDT_ENOTFOUND : find_file(m, e->cm, 0, &fe);
    for (size_t i = 1; rc == 0 && i < e->cm->n_files; i++) {
        struct cdt_hfcache_entry other;

        rc = find_file(m, e->cm, i, &other);
    }
    if (rc != 0 && rc != CDT_ENOTFOUND)
        rc = rc == CDT_EFORMAT ? CDT_ECHECKSUM : CDT_ESTATE; /* damaged / missing */
    else if (rc == CDT_ENOTFOUND && e)
        rc = CDT_ESTATE; /* a file not in the cache */
    else if (rc == 0 && e->bad_hash[0])
        rc = CDT_ECHECKSUM; /* verify saw other bytes */
    pthread_mutex_unlock(&m->lock);
    if (rc == 0)
        snprintf(buf, cap, "%s", fe.path);
    return rc;
}

/* ---- downloads ---- */

struct pull_ctx {
    struct cdt_models *m;
    const char *id;
    uint64_t done_before; /* bytes of the files finished before this one */
    uint64_t total;
};

static void on_progress(const struct cdt_download_progress *p, void *ud)
{
    struct pull_ctx *c = ud;
    struct cdt_models_event ev;

    if (!c->m->on_event)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.id = c->id;
    ev.state = CDT_MODEL_DOWNLOADING;
    ev.progress = p;
    ev.model_bytes_done = c->done_before + p->bytes_done;
    ev.model_bytes_total = c->total;
    c->m->on_event(&ev, c->m->user_data);
}

/* Deletes the model's damaged files (lock held), before the disk check so that their
 * room counts as free: those of another size than the catalog's, and all of them
 * when verify saw other bytes (the cache's verified marker may still vouch for
 * those: a bit flip keeps the size and the mtime). The download then fetches them
 * whole: a complete file cut short is not resumed as a partial, since nothing says
 * its bytes are the start of the right ones. */
static void remove_damaged_locked(struct cdt_models *m, struct entry *e)
{
    const struct cdt_catalog_source *src = source_of(e->cm);
    char err[256];

    for (size_t i = 0; i < e->cm->n_files; i++) {
        const struct cdt_catalog_file *f = &e->cm->files[i];
        struct cdt_hfcache_entry fe;
        int rc = find_file(m, e->cm, i, &fe);

        if (rc != CDT_EFORMAT && !(rc == 0 && e->bad_hash[0]))
            continue;
        rc = cdt_hfcache_remove(m->cache_dir, src->repo, src->revision, f->name,
                                f->sha256[0] ? f->sha256 : NULL, err, sizeof(err));
        if (rc != 0 && rc != CDT_ENOTFOUND)
            CDT_LOG_W(m->log, "%s: %s", e->cm->id, err);
        else
            CDT_LOG_I(m->log, "%s: %s was damaged; deleted, downloading it again", e->cm->id,
                      f->name);
    }
    e->bad_hash[0] = '\0';
}

int cdt_models_pull(struct cdt_models *m, const char *id, char *errmsg, size_t errcap)
{
    return cdt_models_pull_token(m, id, NULL, errmsg, errcap);
}

int cdt_models_pull_token(struct cdt_models *m, const char *id, const char *token, char *errmsg,
                          size_t errcap)
{
    struct cdt_download_params dp = m->dl_template;
    const struct cdt_catalog_source *src;
    struct pull_ctx ctx;
    struct cdt_download *dl = NULL;
    struct entry *e;
    uint64_t on_disk;
    bool complete;
    int rc;

    if (errcap)
        errmsg[0] = '\0';
    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    if (!e) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "unknown model '%s' (see codictate models list)", id);
        return CDT_ENOTFOUND;
    }
    if (e->dl) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "%s is already downloading", e->cm->id);
        return CDT_EBUSY;
    }
    if (builtin(e->cm)) {
        struct cdt_hfcache_entry fe;
        bool there = true;

        for (size_t i = 0; i < e->cm->n_files; i++)
            there = there && find_file(m, e->cm, i, &fe) == 0;

        pthread_mutex_unlock(&m->lock);
        if (there)
            return 0; /* nothing to download */
        snprintf(errmsg, errcap,
                 "%s is built into codictate, but its file is missing or damaged (reinstall "
                 "codictate)",
                 e->cm->id);
        return CDT_ENOTFOUND;
    }
    remove_damaged_locked(m, e);
    ctx.m = m;
    ctx.id = e->cm->id;
    ctx.done_before = 0;
    ctx.total = cdt_catalog_model_size(e->cm);
    dp.progress = on_progress;
    dp.user_data = &ctx;
    if (token && *token)
        dp.token = token;
    dp.cache_dir = m->cache_dir;
    dp.log = m->log;
    rc = cdt_download_new(&dp, &dl);
    if (rc != 0) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "cannot start the download: %s", cdt_strerror(rc));
        return rc;
    }
    e->dl = dl;
    set_state_locked(e, CDT_MODEL_DOWNLOADING, NULL);
    disk_state(m, e->cm, &complete, &on_disk, NULL, NULL, 0);
    pthread_mutex_unlock(&m->lock);
    emit(m, e->cm->id, CDT_MODEL_DOWNLOADING, NULL);

    src = source_of(e->cm);
    /* Room for everything still missing, before the first byte. */
    rc = ctx.total > on_disk ? cdt_download_check_disk(dl, ctx.total - on_disk) : 0;
    for (size_t i = 0; rc == 0 && i < e->cm->n_files; i++) {
        struct cdt_download_result res;
        const struct cdt_catalog_file *f = &e->cm->files[i];

        rc = cdt_download_fetch(dl, src->repo, src->revision, f->name, f->size,
                                f->sha256[0] ? f->sha256 : NULL, &res);
        if (rc == 0) {
            ctx.done_before += res.size;
            CDT_LOG_I(m->log, "%s: %s %s", e->cm->id, f->name,
                      res.cached ? "already in the cache" : "downloaded");
        }
    }
    if (rc != 0)
        snprintf(errmsg, errcap, "%s", cdt_download_errmsg(dl));

    pthread_mutex_lock(&m->lock);
    e->dl = NULL;
    if (rc == 0)
        e->has_mem = false; /* derived from disk again: downloaded */
    else if (rc == CDT_ECANCELED)
        set_state_locked(e, CDT_MODEL_NOT_DOWNLOADED, "cancelled; the partial is kept");
    else
        set_state_locked(e, CDT_MODEL_DOWNLOAD_FAILED, errmsg);
    pthread_mutex_unlock(&m->lock);
    cdt_download_free(dl);
    emit(m, e->cm->id,
         rc == 0               ? CDT_MODEL_DOWNLOADED
         : rc == CDT_ECANCELED ? CDT_MODEL_NOT_DOWNLOADED
                               : CDT_MODEL_DOWNLOAD_FAILED,
         rc == 0 ? NULL : errmsg);
    return rc;
}

void cdt_models_cancel(struct cdt_models *m, const char *id)
{
    struct entry *e;

    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    if (e && e->dl)
        cdt_download_cancel(e->dl);
    pthread_mutex_unlock(&m->lock);
}

/* True when `loaded` is the main file of this entry; lock held. */
static bool is_file_of(struct cdt_models *m, struct entry *e, const char *loaded)
{
    struct cdt_hfcache_entry fe;

    return find_file(m, e->cm, 0, &fe) == 0 && strcmp(loaded, fe.path) == 0;
}

int cdt_models_delete(struct cdt_models *m, const char *id, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_source *src;
    char loaded[CDT_HF_MAX_PATH];
    bool any_loaded = manager_loaded(m, loaded, sizeof(loaded));
    struct entry *e;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    if (!e) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "unknown model '%s'", id);
        return CDT_ENOTFOUND;
    }
    if (e->dl) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "%s is downloading; cancel the download first", e->cm->id);
        return CDT_ESTATE;
    }
    if (builtin(e->cm)) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "%s is built into codictate and cannot be removed", e->cm->id);
        return CDT_EPERM;
    }
    if (any_loaded && is_file_of(m, e, loaded)) {
        pthread_mutex_unlock(&m->lock);
        snprintf(errmsg, errcap, "%s is loaded; unload it first", e->cm->id);
        return CDT_ESTATE;
    }
    src = source_of(e->cm);
    for (size_t i = 0; i < e->cm->n_files; i++) {
        const struct cdt_catalog_file *f = &e->cm->files[i];
        int r = cdt_hfcache_remove(m->cache_dir, src->repo, src->revision, f->name,
                                   f->sha256[0] ? f->sha256 : NULL, errmsg, errcap);
        if (r != 0 && r != CDT_ENOTFOUND)
            rc = r;
    }
    e->has_mem = false;
    e->bad_hash[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    if (rc == 0)
        emit(m, e->cm->id, CDT_MODEL_NOT_DOWNLOADED, "deleted");
    return rc;
}

int cdt_models_verify(struct cdt_models *m, const char *id, char *errmsg, size_t errcap)
{
    struct entry *e;

    pthread_mutex_lock(&m->lock);
    e = find(m, id);
    pthread_mutex_unlock(&m->lock);
    if (!e) {
        snprintf(errmsg, errcap, "unknown model '%s'", id);
        return CDT_ENOTFOUND;
    }
    for (size_t i = 0; i < e->cm->n_files; i++) {
        const struct cdt_catalog_file *f = &e->cm->files[i];
        struct cdt_hfcache_entry fe;
        char got[CDT_SHA256_HEX] = "", fix[CDT_MODELS_DETAIL];
        int rc;

        pthread_mutex_lock(&m->lock);
        rc = find_file(m, e->cm, i, &fe);
        pthread_mutex_unlock(&m->lock);
        if (rc != 0 && rc != CDT_EFORMAT) {
            snprintf(errmsg, errcap, "%s: %s is not downloaded", e->cm->id, f->name);
            return CDT_ESTATE;
        }
        if (f->size && fe.size != f->size) {
            snprintf(errmsg, errcap, "%s is damaged: %s has %llu bytes, expected %llu; %s",
                     e->cm->id, f->name, (unsigned long long)fe.size, (unsigned long long)f->size,
                     repair_hint(e->cm, fix, sizeof(fix)));
            return CDT_ECHECKSUM;
        }
        if (!f->sha256[0])
            continue;
        rc = cdt_hfcache_verify(fe.path, f->sha256, NULL, NULL, got);
        if (rc != 0) {
            char why[CDT_MODELS_DETAIL];

            snprintf(why, sizeof(why), "%s: checksum mismatch: expected %s, got %s", f->name,
                     f->sha256, got[0] ? got : "(unreadable)");
            snprintf(errmsg, errcap, "%s is damaged: %s; %s", e->cm->id, why,
                     repair_hint(e->cm, fix, sizeof(fix)));
            if (rc != CDT_ECHECKSUM)
                return CDT_ECHECKSUM; /* unreadable: damaged too, but not a known hash */
            /* Kept in the cache for later runs (`models list` after `models verify`). */
            if (!builtin(e->cm) && fe.key[0] &&
                cdt_hfcache_mark_damaged(m->cache_dir, source_of(e->cm)->repo, fe.key, got) != 0)
                CDT_LOG_W(m->log, "%s: cannot mark %s damaged in the cache", e->cm->id, fe.blob);
            pthread_mutex_lock(&m->lock);
            snprintf(e->bad_hash, sizeof(e->bad_hash), "%s", why);
            pthread_mutex_unlock(&m->lock);
            emit(m, e->cm->id, CDT_MODEL_DAMAGED, errmsg);
            return CDT_ECHECKSUM;
        }
    }
    pthread_mutex_lock(&m->lock);
    e->bad_hash[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* ---- loading ---- */

/* Maps a manager event to the model whose main file it names. */
static void on_manager_event(const struct cdt_manager_event *ev, void *ud)
{
    struct cdt_models *m = ud;
    enum cdt_model_state st;
    const char *id = NULL;

    switch (ev->type) {
    case CDT_MGR_LOADING:
        st = CDT_MODEL_LOADING;
        break;
    case CDT_MGR_LOADED:
        st = CDT_MODEL_READY;
        break;
    case CDT_MGR_LOAD_FAILED:
        st = CDT_MODEL_LOAD_FAILED;
        break;
    case CDT_MGR_UNLOADED:
        st = CDT_MODEL_UNLOADED;
        break;
    case CDT_MGR_SIDECAR_EXITED:
        /* Whatever was ready is not any more. */
        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n; i++)
            if (m->e[i].has_mem && m->e[i].mem == CDT_MODEL_READY)
                set_state_locked(&m->e[i], CDT_MODEL_UNLOADED, ev->detail);
        pthread_mutex_unlock(&m->lock);
        return;
    default:
        return;
    }
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; ev->model && i < m->n; i++) {
        struct cdt_hfcache_entry fe;

        if (find_file(m, m->e[i].cm, 0, &fe) == 0 && strcmp(fe.path, ev->model) == 0) {
            set_state_locked(&m->e[i], st, ev->detail);
            id = m->e[i].cm->id;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (id)
        emit(m, id, st, ev->detail);
}

struct cdt_manager *cdt_models_manager(struct cdt_models *m)
{
    struct cdt_manager *mgr;

    pthread_mutex_lock(&m->lock);
    if (!m->mgr) {
        struct cdt_manager_params mp = m->mgr_params;

        mp.on_event = on_manager_event;
        mp.user_data = m;
        mp.log = m->log;
        if (cdt_manager_new(&mp, &m->mgr) != 0)
            m->mgr = NULL;
    }
    mgr = m->mgr;
    pthread_mutex_unlock(&m->lock);
    return mgr;
}

int cdt_models_load(struct cdt_models *m, const char *id, char *errmsg, size_t errcap)
{
    char path[CDT_HF_MAX_PATH];
    struct cdt_manager *mgr;
    int rc = cdt_models_path(m, id, path, sizeof(path));

    if (rc == CDT_ENOTFOUND) {
        snprintf(errmsg, errcap, "unknown model '%s'", id);
        return rc;
    }
    if (rc == CDT_ECHECKSUM) {
        snprintf(errmsg, errcap, CDT_MODELS_DAMAGED_FMT, id, id);
        return rc;
    }
    if (rc != 0) {
        snprintf(errmsg, errcap, "%s is not downloaded (codictate models pull %s)", id, id);
        return rc;
    }
    mgr = cdt_models_manager(m);
    if (!mgr) {
        snprintf(errmsg, errcap, "cannot start the sidecar manager");
        return CDT_EIO;
    }
    return cdt_manager_load(mgr, path, errmsg, errcap);
}

/* ---- lifecycle ---- */

int cdt_models_new(const struct cdt_models_params *p, struct cdt_models **out)
{
    struct cdt_models *m;
    size_t n;

    *out = NULL;
    if (!p || !p->catalog)
        return CDT_EINVAL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return CDT_ENOMEM;
    n = cdt_catalog_count(p->catalog);
    m->e = calloc(n ? n : 1, sizeof(*m->e));
    if (!m->e) {
        free(m);
        return CDT_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        m->e[i].cm = cdt_catalog_model_at(p->catalog, i);
    m->n = n;
    m->cat = p->catalog;
    m->dl_template = p->download;
    m->mgr_params = p->manager;
    m->log = p->log;
    m->on_event = p->on_event;
    m->user_data = p->user_data;
    if (p->download.cache_dir) {
        m->cache_dir = strdup(p->download.cache_dir);
    } else if (cdt_hfcache_root(&m->cache_dir) != 0) {
        m->cache_dir = NULL;
    }
    if (!m->cache_dir) {
        free(m->e);
        free(m);
        return CDT_ENOMEM;
    }
    m->dl_template.cache_dir = NULL; /* set per pull from m->cache_dir */
    find_builtin_dir(m->builtin_dir, sizeof(m->builtin_dir));
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

void cdt_models_free(struct cdt_models *m)
{
    if (!m)
        return;
    cdt_manager_free(m->mgr);
    pthread_mutex_destroy(&m->lock);
    free(m->cache_dir);
    free(m->e);
    free(m);
}

static bool on_disk(struct cdt_models *m, const struct cdt_catalog_model *cm)
{
    char path[4096];

    return cm && cdt_models_path(m, cm->id, path, sizeof(path)) == 0;
}

const struct cdt_catalog_model *cdt_models_default(struct cdt_models *m, enum cdt_model_kind kind,
                                                   enum cdt_ram_tier tier)
{
    const struct cdt_catalog_model *rec =
        kind == CDT_MODEL_LLM ? cdt_catalog_recommended(m->cat, tier) : NULL;

    if (on_disk(m, rec))
        return rec;
    for (size_t i = 0; i < cdt_catalog_count(m->cat); i++) {
        const struct cdt_catalog_model *cm = cdt_catalog_model_at(m->cat, i);

        if (cm->kind == kind && on_disk(m, cm))
            return cm;
    }
    return NULL;
}
