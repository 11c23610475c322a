/* The app (see app.h).
 *
 * Locking: app->mu guards the settings, the refiner reference, the dictation
 * fields, the download jobs and the per-model bookkeeping. It is never held while
 * calling into models / manager / refiner / dictation (they call back with events,
 * which take app->mu). app->hist_mu serialises the history handle. */
#include "codictate/app.h"

#include "codictate/catalog.h"
#include "codictate/deliver.h"
#include "codictate/dictation.h"
#include "codictate/history.h"
#include "codictate/json.h"
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/manager.h"
#include "codictate/models.h"
#include "codictate/pick.h"
#include "codictate/prompts.h"
#include "codictate/refine.h"
#include "codictate/refiner.h"
#include "codictate/settings.h"
#include "codictate/sysinfo.h"
#include "codictate/text.h"
#include "codictate/transcribe.h"
#include "codictate/util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRESS_MIN_MS 100 /* at most 10 progress events per second per model */
#define MAX_TRACKED     64  /* models whose progress / error code is tracked */
#define ID_CAP          128
#define AHEAD_MAX       8                  /* refinements ahead kept: a new one drops the oldest */
#define AHEAD_IDLE_MS   (10 * 60 * 1000.0) /* one without an offer this long is dropped */

/* A refiner shared by the runs that use it; freed when the last one lets go. */
struct refiner_ref {
    struct cdt_refiner *r;
    int refs;
};

struct dl_job {
    struct cdt_app *app;
    char id[ID_CAP];
    char *token;
    pthread_t thread;
    bool done;
    struct dl_job *next;
};

struct tracked {
    char id[ID_CAP];
    double last_progress_ms;
    const char *code; /* the last download failure's code, static; NULL: none */
    bool starting;    /* a download was accepted; its thread has not said so yet */
};

/* The <Dictation> object's stored part: what the last session produced. */
struct dict_view {
    enum cdt_dictation_state state;
    enum cdt_dictation_source source;
    char id[CDT_HISTORY_ID_MAX];
    double elapsed_s, limit_s;
    bool warned;
    float level;
    char *raw, *refined, *reason_code, *fallback_reason, *error, *timings;
};

struct cdt_app {
    struct cdt_app_params p;
    struct cdt_catalog *cat;
    struct cdt_models *models;
    struct cdt_history *hist; /* NULL: no history (logged why) */
    pthread_mutex_t hist_mu;
    char config_dir[CDT_SETTINGS_PATH_MAX]; /* "" : the default */
    int ram_gb;
    struct cdt_tier_limits tier;
    double limit_s;

    pthread_mutex_t mu;
    struct cdt_settings settings;
    struct refiner_ref *ref;
    /* the dictation */
    struct cdt_dictation *sess;
    pthread_t dict_thread;
    bool dict_thread_live;
    struct dict_view view;
    char delta_carry[4];            /* a `refined` delta's incomplete last UTF-8 character, held
                                     * for the next piece */
    size_t delta_carry_len;         /* bytes in delta_carry, < 4 */
    struct cdt_transcribe *whisper; /* warm, or NULL */
    char whisper_path[CDT_PICK_PATH_CAP];
    bool whisper_lent;
    bool starting; /* a session is being started (with sess: one at a time) */
    /* downloads and loads */
    struct dl_job *jobs;
    struct tracked tracked[MAX_TRACKED];
    size_t n_tracked;
    pthread_mutex_t load_mu; /* load_thread, load_thread_live */
    pthread_t load_thread;
    bool load_thread_live;
    char load_id[ID_CAP];
    /* refinements ahead for the verbs (POST /api/refine/ahead); ahead_mu guards the
     * list and is held only around its changes and an offer */
    pthread_mutex_t ahead_mu;
    struct ahead_sess *aheads;
};

/* A verb's refinement ahead: the refiner it was made with and its worker. */
struct ahead_sess {
    struct ahead_sess *next;
    char id[CDT_APP_AHEAD_ID_CAP];
    struct refiner_ref *ref; /* the settings' refiner, or NULL: */
    struct cdt_refiner *own; /* its own (the request's overrides) */
    struct cdt_refiner_ahead *a;
    double used_ms; /* made, or its last offer */
};

static void ahead_free(struct cdt_app *app, struct ahead_sess *s);

/* ---- small helpers ---- */

static void set_err(char *errmsg, size_t errcap, const char *fmt, const char *arg) CDT_PRINTF(3, 0);

static void set_err(char *errmsg, size_t errcap, const char *fmt, const char *arg)
{
    if (!errcap)
        return;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(errmsg, errcap, fmt, arg); /* fmt is always a literal with one %s */
#pragma GCC diagnostic pop
}

static void emit_json(struct cdt_app *app, const char *name, cJSON *o)
{
    char *s;

    if (!o)
        return;
    if (app->p.on_event && (s = cJSON_PrintUnformatted(o)) != NULL) {
        app->p.on_event(name, s, app->p.user_data);
        free(s);
    }
    cJSON_Delete(o);
}

static struct tracked *track_locked(struct cdt_app *app, const char *id)
{
    for (size_t i = 0; i < app->n_tracked; i++)
        if (strcmp(app->tracked[i].id, id) == 0)
            return &app->tracked[i];
    if (app->n_tracked == MAX_TRACKED)
        return NULL;
    snprintf(app->tracked[app->n_tracked].id, ID_CAP, "%s", id);
    app->tracked[app->n_tracked].last_progress_ms = 0;
    app->tracked[app->n_tracked].code = NULL;
    return &app->tracked[app->n_tracked++];
}

/* The machine-readable kind of a download failure. */
static const char *download_code(int rc)
{
    switch (rc) {
    case CDT_ENOSPACE:
        return "disk_space";
    case CDT_ECHECKSUM:
        return "checksum";
    case CDT_ENET:
    case CDT_ETIMEOUT:
    case CDT_EPROTOCOL:
        return "network";
    case CDT_EAUTH:
    case CDT_EPERM:
        return "gated";
    case CDT_ECANCELED:
        return "cancelled";
    default:
        return "other";
    }
}

/* ---- the refiner ---- */

static void ref_put(struct cdt_app *app, struct refiner_ref *ref)
{
    bool last;

    if (!ref)
        return;
    pthread_mutex_lock(&app->mu);
    last = --ref->refs == 0;
    pthread_mutex_unlock(&app->mu);
    if (last) {
        cdt_refiner_free(ref->r);
        free(ref);
    }
}

static struct refiner_ref *ref_get(struct cdt_app *app)
{
    struct refiner_ref *ref;

    pthread_mutex_lock(&app->mu);
    ref = app->ref;
    if (ref)
        ref->refs++;
    pthread_mutex_unlock(&app->mu);
    return ref;
}

/* A refiner for settings s (prompt / model / vocabulary override them when not NULL;
 * cdt_refiner_new checks them: CDT_EINVAL with errmsg). */
static int make_refiner(struct cdt_app *app, const struct cdt_settings *s, const char *prompt,
                        const char *model, const char *vocabulary, long timeout_ms,
                        struct cdt_refiner **out, char *errmsg, size_t errcap)
{
    struct cdt_refiner_opts o = {0};
    bool openai = s->provider == CDT_PROVIDER_OPENAI;

    o.provider = openai ? "openai" : "local";
    o.model = !openai ? (model ? model : s->llm_model[0] ? s->llm_model : NULL) : NULL;
    o.base_url = openai && s->openai_base_url[0] ? s->openai_base_url : NULL;
    o.api_key = openai && s->api_key[0] ? s->api_key : NULL;
    o.openai_model = openai && s->openai_model[0] ? s->openai_model : NULL;
    o.instructions = prompt ? prompt : s->prompt[0] ? s->prompt : NULL;
    o.vocabulary = vocabulary ? vocabulary : s->vocabulary[0] ? s->vocabulary : NULL;
    o.timeout_ms = timeout_ms;
    o.no_env = true;
    o.log = app->p.log;
    o.catalog = app->cat;
    o.models = app->models;
    return cdt_refiner_new(&o, out, errmsg, errcap);
}

/* Makes the settings' refiner the current one. */
static int install_refiner(struct cdt_app *app, const struct cdt_settings *s, char *errmsg,
                           size_t errcap)
{
    struct refiner_ref *ref = calloc(1, sizeof(*ref)), *old;
    int rc;

    if (!ref)
        return CDT_ENOMEM;
    rc = make_refiner(app, s, NULL, NULL, NULL, 0, &ref->r, errmsg, errcap);
    if (rc != 0) {
        free(ref);
        return rc;
    }
    ref->refs = 1;
    pthread_mutex_lock(&app->mu);
    old = app->ref;
    app->ref = ref;
    pthread_mutex_unlock(&app->mu);
    ref_put(app, old);
    return 0;
}

/* ---- events from the models and the manager ---- */

static void on_models_event(const struct cdt_models_event *ev, void *ud)
{
    struct cdt_app *app = ud;
    const struct cdt_catalog_model *cm = cdt_catalog_find(app->cat, ev->id);
    struct tracked *t;
    cJSON *o;
    double now = cdt_now_ms();
    const char *code = NULL;

    /* Re-hashing a kept partial is not download progress: the bar stays put. */
    if (ev->progress && ev->progress->phase == CDT_DL_PHASE_VERIFY)
        return;
    pthread_mutex_lock(&app->mu);
    t = track_locked(app, ev->id);
    if (ev->progress) {
        /* At most PROGRESS_MIN_MS apart, except the file's last call. */
        if (t && now - t->last_progress_ms < PROGRESS_MIN_MS &&
            ev->progress->bytes_done != ev->progress->bytes_total) {
            pthread_mutex_unlock(&app->mu);
            return;
        }
        if (t)
            t->last_progress_ms = now;
    } else if (t && ev->state == CDT_MODEL_DOWNLOADING) {
        t->code = NULL;
        t->starting = false;
    }
    if (t)
        code = t->code;
    pthread_mutex_unlock(&app->mu);

    o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "id", ev->id);
    cJSON_AddStringToObject(o, "kind", cm ? cdt_model_kind_name(cm->kind) : "llm");
    cJSON_AddStringToObject(o, "state", cdt_model_state_name(ev->state));
    cdt_json_add_str(o, "detail", ev->detail);
    cdt_json_add_str(o, "code", ev->state == CDT_MODEL_DOWNLOAD_FAILED ? code : NULL);
    if (ev->progress) {
        cJSON_AddNumberToObject(o, "bytes_done", (double)ev->model_bytes_done);
        cJSON_AddNumberToObject(o, "bytes_total", (double)ev->model_bytes_total);
        cJSON_AddNumberToObject(o, "speed_bps", round(ev->progress->speed));
        cJSON_AddNumberToObject(o, "eta_s",
                                ev->progress->eta_s >= 0 ? round(ev->progress->eta_s) : -1);
    } else {
        cJSON_AddNumberToObject(o, "bytes_done",
                                cm ? (double)cdt_models_bytes_on_disk(app->models, cm->id) : 0);
        cJSON_AddNumberToObject(o, "bytes_total", cm ? (double)cdt_catalog_model_size(cm) : 0);
        cJSON_AddNumberToObject(o, "speed_bps", 0);
        cJSON_AddNumberToObject(o, "eta_s", -1);
    }
    emit_json(app, "model", o);

    /* The whisper model idles with the LLM: unloaded together (not mid-dictation). */
    if (cm && cm->kind == CDT_MODEL_LLM && ev->state == CDT_MODEL_UNLOADED) {
        struct cdt_transcribe *idle = NULL;

        pthread_mutex_lock(&app->mu);
        if (app->whisper && !app->sess) {
            idle = app->whisper;
            app->whisper = NULL;
        }
        pthread_mutex_unlock(&app->mu);
        if (idle)
            CDT_LOG_I(app->p.log, "idle: the whisper model is unloaded too");
        cdt_transcribe_free(idle);
    }
    if (cm && cm->kind == CDT_MODEL_LLM &&
        (ev->state == CDT_MODEL_LOADING || ev->state == CDT_MODEL_READY ||
         ev->state == CDT_MODEL_UNLOADED || ev->state == CDT_MODEL_LOAD_FAILED)) {
        cJSON *s = cJSON_CreateObject();

        if (!s)
            return;
        cJSON_AddStringToObject(s, "state",
                                ev->state == CDT_MODEL_LOADING ? "starting"
                                : ev->state == CDT_MODEL_READY ? "running"
                                                               : "idle");
        cJSON_AddStringToObject(s, "model_state", cdt_model_state_name(ev->state));
        cdt_json_add_str(s, "model", ev->state == CDT_MODEL_UNLOADED ? NULL : ev->id);
        emit_json(app, "sidecar", s);
    }
}

/* ---- creation ---- */

struct cdt_app_params cdt_app_default_params(void)
{
    struct cdt_app_params p;

    memset(&p, 0, sizeof(p));
    p.port = CDT_APP_PORT;
    return p;
}

int cdt_app_new(const struct cdt_app_params *p, struct cdt_app **out, char *errmsg, size_t errcap)
{
    struct cdt_models_params mp = cdt_models_default_params();
    struct cdt_history_params hp = cdt_history_default_params();
    struct cdt_app *app;
    char err[1024];
    uint64_t ram = 0;
    int rc;

    *out = NULL;
    if (!(app = calloc(1, sizeof(*app))))
        return CDT_ENOMEM;
    app->p = *p;
    pthread_mutex_init(&app->mu, NULL);
    pthread_mutex_init(&app->hist_mu, NULL);
    pthread_mutex_init(&app->load_mu, NULL);
    pthread_mutex_init(&app->ahead_mu, NULL);
    if (p->config_dir)
        snprintf(app->config_dir, sizeof(app->config_dir), "%s", p->config_dir);
    if (cdt_sysinfo_total_ram(&ram) != 0)
        ram = 0;
    app->ram_gb = cdt_limits_ram_gb(ram);
    app->tier = cdt_limits_for_ram_gb(app->ram_gb);
    app->limit_s = app->tier.recording_limit_s;
    if (p->recording_limit_s > 0 && p->recording_limit_s < app->limit_s)
        app->limit_s = p->recording_limit_s;

    err[0] = '\0';
    rc = cdt_settings_load(app->config_dir[0] ? app->config_dir : NULL, &app->settings, err,
                           sizeof(err));
    if (rc != 0 || err[0])
        CDT_LOG_W(p->log, "settings: %s", err[0] ? err : cdt_strerror(rc));

    rc = cdt_catalog_load_default(&app->cat, errmsg, errcap);
    if (rc != 0)
        goto fail;
    mp.catalog = app->cat;
    mp.log = p->log;
    mp.manager.log = p->log;
    mp.manager.sidecar_exe = p->sidecar_exe;
    mp.manager.idle_timeout_s = app->settings.idle_timeout_s;
    mp.manager.request_timeout_ms = CDT_REFINE_DEFAULT_TIMEOUT_MS + CDT_REFINER_HTTP_MARGIN_MS;
    mp.on_event = on_models_event;
    mp.user_data = app;
    rc = cdt_models_new(&mp, &app->models);
    if (rc != 0) {
        set_err(errmsg, errcap, "%s", cdt_strerror(rc));
        goto fail;
    }
    hp.dir = p->data_dir;
    hp.log = p->log;
    hp.errmsg = err;
    hp.errcap = sizeof(err);
    if (cdt_history_new(&hp, &app->hist) != 0) {
        CDT_LOG_W(p->log, "no history, recordings are not kept: %s", err);
        app->hist = NULL;
    }
    if (install_refiner(app, &app->settings, err, sizeof(err)) != 0) {
        /* A setting that no longer works (a deleted GGUF): the automatic choice. */
        struct cdt_settings s = app->settings;

        CDT_LOG_W(p->log, "settings: the refiner: %s; using the automatic model", err);
        s.llm_model[0] = '\0';
        s.provider = CDT_PROVIDER_LOCAL;
        rc = install_refiner(app, &s, errmsg, errcap);
        if (rc != 0)
            goto fail;
    }
    app->view.state = CDT_DICT_IDLE;
    app->view.limit_s = app->limit_s;
    *out = app;
    return 0;
fail:
    cdt_app_free(app);
    return rc;
}

static void view_clear_text(struct dict_view *v)
{
    free(v->raw);
    free(v->refined);
    free(v->reason_code);
    free(v->fallback_reason);
    free(v->error);
    free(v->timings);
    v->raw = v->refined = v->reason_code = v->fallback_reason = v->error = v->timings = NULL;
}

void cdt_app_free(struct cdt_app *app)
{
    struct dl_job *j;

    if (!app)
        return;
    pthread_mutex_lock(&app->mu);
    if (app->sess)
        cdt_dictation_cancel(app->sess);
    for (j = app->jobs; j; j = j->next)
        if (!j->done && app->models)
            cdt_models_cancel(app->models, j->id);
    pthread_mutex_unlock(&app->mu);
    if (app->dict_thread_live)
        pthread_join(app->dict_thread, NULL);
    if (app->load_thread_live)
        pthread_join(app->load_thread, NULL);
    while ((j = app->jobs) != NULL) {
        app->jobs = j->next;
        pthread_join(j->thread, NULL);
        free(j->token);
        free(j);
    }
    while (app->aheads) {
        struct ahead_sess *s = app->aheads;

        app->aheads = s->next;
        ahead_free(app, s);
    }
    cdt_transcribe_free(app->whisper);
    if (app->ref) {
        cdt_refiner_free(app->ref->r);
        free(app->ref);
    }
    cdt_models_free(app->models);
    cdt_catalog_free(app->cat);
    cdt_history_free(app->hist);
    view_clear_text(&app->view);
    pthread_mutex_destroy(&app->load_mu);
    pthread_mutex_destroy(&app->ahead_mu);
    pthread_mutex_destroy(&app->mu);
    pthread_mutex_destroy(&app->hist_mu);
    free(app);
}

/* ---- settings ---- */

cJSON *cdt_app_settings(struct cdt_app *app)
{
    cJSON *o;

    pthread_mutex_lock(&app->mu);
    o = cdt_settings_to_json(&app->settings);
    pthread_mutex_unlock(&app->mu);
    return o;
}

/* Applies settings s (already valid) everywhere and saves them. */
static int commit_settings(struct cdt_app *app, const struct cdt_settings *s, char *errmsg,
                           size_t errcap)
{
    int rc = install_refiner(app, s, errmsg, errcap);
    struct cdt_manager *mgr;

    if (rc != 0)
        return rc;
    rc = cdt_settings_save(app->config_dir[0] ? app->config_dir : NULL, s, errmsg, errcap);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&app->mu);
    app->settings = *s;
    pthread_mutex_unlock(&app->mu);
    mgr = cdt_models_manager(app->models);
    if (mgr)
        cdt_manager_set_idle_timeout(mgr, s->idle_timeout_s);
    emit_json(app, "settings", cdt_settings_to_json(s));
    return 0;
}

/* The app's API names models by catalog id, never by path (the CLI's --model PATH
 * is the user's own command line): a path in a request would have the sidecar open
 * any file the user can read. */
static int catalog_id_ok(struct cdt_app *app, const char *id, enum cdt_model_kind kind,
                         const char *field, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm = cdt_catalog_find(app->cat, id);

    if (!cm || cm->kind != kind) {
        snprintf(errmsg, errcap, "%s: '%.100s' is not a %s model of the catalog", field, id,
                 cdt_model_kind_name(kind));
        return CDT_EINVAL;
    }
    return 0;
}

int cdt_app_settings_update(struct cdt_app *app, const cJSON *patch, char *errmsg, size_t errcap)
{
    struct cdt_settings *s = malloc(sizeof(*s));
    int rc;

    if (!s)
        return CDT_ENOMEM;
    pthread_mutex_lock(&app->mu);
    *s = app->settings;
    pthread_mutex_unlock(&app->mu);
    rc = cdt_settings_apply_json(s, patch, errmsg, errcap);
    if (rc == 0 && s->llm_model[0])
        rc = catalog_id_ok(app, s->llm_model, CDT_MODEL_LLM, "llm_model", errmsg, errcap);
    if (rc == 0 && s->whisper_model[0])
        rc = catalog_id_ok(app, s->whisper_model, CDT_MODEL_WHISPER, "whisper_model", errmsg,
                           errcap);
    if (rc == 0)
        rc = commit_settings(app, s, errmsg, errcap);
    free(s);
    return rc;
}

/* ---- models ---- */

/* The catalog's first model of a kind (downloaded or not), or NULL. */
static const struct cdt_catalog_model *first_of_kind(struct cdt_app *app, enum cdt_model_kind k)
{
    for (size_t i = 0; i < cdt_catalog_count(app->cat); i++) {
        const struct cdt_catalog_model *cm = cdt_catalog_model_at(app->cat, i);

        if (cm->kind == k)
            return cm;
    }
    return NULL;
}

/* The LLM and whisper model the app uses now (ids; "" when none). */
static void in_use(struct cdt_app *app, char *llm, char *whisper)
{
    const struct cdt_catalog_model *cm;
    char l[128], w[128];
    bool openai;

    pthread_mutex_lock(&app->mu);
    snprintf(l, sizeof(l), "%s", app->settings.llm_model);
    snprintf(w, sizeof(w), "%s", app->settings.whisper_model);
    openai = app->settings.provider == CDT_PROVIDER_OPENAI;
    pthread_mutex_unlock(&app->mu);
    llm[0] = whisper[0] = '\0';
    if (!openai) {
        cm = l[0] ? cdt_catalog_find(app->cat, l)
                  : cdt_models_default(app->models, CDT_MODEL_LLM, app->tier.tier);
        snprintf(llm, 128, "%s", cm ? cm->id : l);
    }
    cm = w[0] ? cdt_catalog_find(app->cat, w)
              : cdt_models_default(app->models, CDT_MODEL_WHISPER, app->tier.tier);
    snprintf(whisper, 128, "%s", cm ? cm->id : w);
}

cJSON *cdt_app_models(struct cdt_app *app)
{
    const struct cdt_catalog_model *rec = cdt_catalog_recommended(app->cat, app->tier.tier);
    const struct cdt_catalog_model *wrec = first_of_kind(app, CDT_MODEL_WHISPER);
    static const enum cdt_model_kind order[] = {CDT_MODEL_LLM, CDT_MODEL_WHISPER, CDT_MODEL_VAD};
    cJSON *o = cJSON_CreateObject(), *r, *u, *arr;
    char llm[128], whisper[128];

    if (!o)
        return NULL;
    in_use(app, llm, whisper);
    cJSON_AddNumberToObject(o, "ram_gb", app->ram_gb);
    cJSON_AddStringToObject(o, "tier", app->tier.name);
    r = cJSON_AddObjectToObject(o, "recommended");
    cdt_json_add_str(r, "llm", rec ? rec->id : NULL);
    cdt_json_add_str(r, "whisper", wrec ? wrec->id : NULL);
    u = cJSON_AddObjectToObject(o, "in_use");
    cdt_json_add_str(u, "llm", llm[0] ? llm : NULL);
    cdt_json_add_str(u, "whisper", whisper[0] ? whisper : NULL);
    arr = cJSON_AddArrayToObject(o, "models");
    for (size_t k = 0; arr && k < sizeof(order) / sizeof(order[0]); k++) {
        for (size_t i = 0; i < cdt_catalog_count(app->cat); i++) {
            const struct cdt_catalog_model *cm = cdt_catalog_model_at(app->cat, i);
            cJSON *m;
            struct tracked *t;
            const char *code = NULL;
            bool starting;

            if (cm->kind != order[k])
                continue;
            m = cdt_json_model(app->models, cm, cm == rec || cm == wrec);
            if (!m)
                continue;
            if (!cJSON_HasObjectItem(m, "detail"))
                cJSON_AddNullToObject(m, "detail");
            cJSON_AddBoolToObject(m, "gated", cm->gated_terms);
            cJSON_AddBoolToObject(m, "in_use",
                                  strcmp(cm->id, llm) == 0 || strcmp(cm->id, whisper) == 0);
            cJSON_AddNumberToObject(m, "ram_gb", round(cm->ram_mb / 102.4) / 10);
            pthread_mutex_lock(&app->mu);
            t = track_locked(app, cm->id);
            code = t ? t->code : NULL;
            starting = t && t->starting;
            pthread_mutex_unlock(&app->mu);
            if (starting)
                cJSON_ReplaceItemInObjectCaseSensitive(m, "state",
                                                       cJSON_CreateString("downloading"));
            cdt_json_add_str(m, "code", code);
            cJSON_AddItemToArray(arr, m);
        }
    }
    return o;
}

static void *download_main(void *arg)
{
    struct dl_job *j = arg;
    struct cdt_app *app = j->app;
    char err[1024];
    int rc = cdt_models_pull_token(app->models, j->id, j->token, err, sizeof(err));

    if (rc != 0) {
        /* The models' own failure event went out; say what kind it was. */
        const struct cdt_catalog_model *cm = cdt_catalog_find(app->cat, j->id);
        struct tracked *t;
        cJSON *o = cJSON_CreateObject();

        pthread_mutex_lock(&app->mu);
        t = track_locked(app, j->id);
        if (t)
            t->code = download_code(rc);
        pthread_mutex_unlock(&app->mu);
        if (o) {
            cJSON_AddStringToObject(o, "id", j->id);
            cJSON_AddStringToObject(o, "kind", cm ? cdt_model_kind_name(cm->kind) : "llm");
            cJSON_AddStringToObject(
                o, "state", cdt_model_state_name(cdt_models_state(app->models, j->id, NULL, 0)));
            cJSON_AddStringToObject(o, "detail", err);
            cJSON_AddStringToObject(o, "code", download_code(rc));
            emit_json(app, "model", o);
        }
    }
    pthread_mutex_lock(&app->mu);
    j->done = true;
    {
        struct tracked *t = track_locked(app, j->id);

        if (t)
            t->starting = false;
    }
    pthread_mutex_unlock(&app->mu);
    return NULL;
}

/* Joins and frees finished download jobs. */
static void reap_jobs(struct cdt_app *app)
{
    struct dl_job **pp, *j, *done = NULL;

    pthread_mutex_lock(&app->mu);
    for (pp = &app->jobs; (j = *pp) != NULL;) {
        if (j->done) {
            *pp = j->next;
            j->next = done;
            done = j;
        } else {
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&app->mu);
    while ((j = done) != NULL) {
        done = j->next;
        pthread_join(j->thread, NULL);
        free(j->token);
        free(j);
    }
}

int cdt_app_model_download(struct cdt_app *app, const char *id, const char *token, char *errmsg,
                           size_t errcap)
{
    const struct cdt_catalog_model *cm = cdt_catalog_find(app->cat, id);
    struct dl_job *j;

    reap_jobs(app);
    if (!cm) {
        set_err(errmsg, errcap, "unknown model '%s'", id);
        return CDT_ENOTFOUND;
    }
    if (cdt_models_state(app->models, cm->id, NULL, 0) == CDT_MODEL_DOWNLOADING) {
        set_err(errmsg, errcap, "%s is already downloading", cm->id);
        return CDT_EBUSY;
    }
    if (!(j = calloc(1, sizeof(*j))))
        return CDT_ENOMEM;
    j->app = app;
    snprintf(j->id, sizeof(j->id), "%s", cm->id);
    if (token && *token && !(j->token = strdup(token))) {
        free(j);
        return CDT_ENOMEM;
    }
    pthread_mutex_lock(&app->mu);
    {
        /* Until the thread starts, the model reads as downloading (the 202 says so). */
        struct tracked *t = track_locked(app, cm->id);

        if (t) {
            t->starting = true;
            t->code = NULL;
        }
    }
    if (pthread_create(&j->thread, NULL, download_main, j) != 0) {
        pthread_mutex_unlock(&app->mu);
        free(j->token);
        free(j);
        return CDT_ENOMEM;
    }
    j->next = app->jobs;
    app->jobs = j;
    pthread_mutex_unlock(&app->mu);
    return 0;
}

static const struct cdt_catalog_model *find_model(struct cdt_app *app, const char *id, char *errmsg,
                                                  size_t errcap)
{
    const struct cdt_catalog_model *cm = cdt_catalog_find(app->cat, id);

    if (!cm)
        set_err(errmsg, errcap, "unknown model '%s'", id);
    return cm;
}

int cdt_app_model_cancel(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm = find_model(app, id, errmsg, errcap);

    if (!cm)
        return CDT_ENOTFOUND;
    cdt_models_cancel(app->models, cm->id);
    return 0;
}

int cdt_app_model_delete(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm = find_model(app, id, errmsg, errcap);
    struct tracked *t;

    if (!cm)
        return CDT_ENOTFOUND;
    pthread_mutex_lock(&app->mu);
    /* A warm whisper model of this file is dropped first (not while a dictation
     * holds it). */
    if (cm->kind == CDT_MODEL_WHISPER && app->whisper && !app->whisper_lent) {
        char path[CDT_PICK_PATH_CAP];

        if (cdt_models_path(app->models, cm->id, path, sizeof(path)) == 0 &&
            strcmp(path, app->whisper_path) == 0) {
            cdt_transcribe_free(app->whisper);
            app->whisper = NULL;
            app->whisper_path[0] = '\0';
        }
    }
    t = track_locked(app, cm->id);
    if (t)
        t->code = NULL;
    pthread_mutex_unlock(&app->mu);
    return cdt_models_delete(app->models, cm->id, errmsg, errcap);
}

int cdt_app_model_use(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm = find_model(app, id, errmsg, errcap);
    struct cdt_settings *s;
    int rc;

    if (!cm)
        return CDT_ENOTFOUND;
    if (cm->kind != CDT_MODEL_LLM && cm->kind != CDT_MODEL_WHISPER) {
        set_err(errmsg, errcap, "%s is not an LLM or a whisper model", cm->id);
        return CDT_EINVAL;
    }
    if (!(s = malloc(sizeof(*s))))
        return CDT_ENOMEM;
    pthread_mutex_lock(&app->mu);
    *s = app->settings;
    pthread_mutex_unlock(&app->mu);
    if (cm->kind == CDT_MODEL_LLM) {
        snprintf(s->llm_model, sizeof(s->llm_model), "%s", cm->id);
        s->provider = CDT_PROVIDER_LOCAL;
    } else {
        snprintf(s->whisper_model, sizeof(s->whisper_model), "%s", cm->id);
    }
    rc = commit_settings(app, s, errmsg, errcap);
    free(s);
    return rc;
}

static void *load_main(void *arg)
{
    struct cdt_app *app = arg;
    char err[1024], id[ID_CAP];

    pthread_mutex_lock(&app->mu);
    snprintf(id, sizeof(id), "%s", app->load_id);
    pthread_mutex_unlock(&app->mu);
    if (cdt_models_load(app->models, id, err, sizeof(err)) != 0)
        CDT_LOG_W(app->p.log, "load %s: %s", id, err);
    return NULL;
}

int cdt_app_model_load(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm = find_model(app, id, errmsg, errcap);

    if (!cm)
        return CDT_ENOTFOUND;
    if (cm->kind != CDT_MODEL_LLM) {
        set_err(errmsg, errcap, "%s is not an LLM", cm->id);
        return CDT_EINVAL;
    }
    pthread_mutex_lock(&app->load_mu);
    if (app->load_thread_live) {
        pthread_join(app->load_thread, NULL); /* the manager serialises loads anyway */
        app->load_thread_live = false;
    }
    pthread_mutex_lock(&app->mu);
    snprintf(app->load_id, sizeof(app->load_id), "%s", cm->id);
    pthread_mutex_unlock(&app->mu);
    if (pthread_create(&app->load_thread, NULL, load_main, app) == 0)
        app->load_thread_live = true;
    pthread_mutex_unlock(&app->load_mu);
    return app->load_thread_live ? 0 : CDT_ENOMEM;
}

void cdt_app_model_unload(struct cdt_app *app)
{
    struct cdt_manager *mgr = cdt_models_manager(app->models);

    if (mgr)
        cdt_manager_unload(mgr);
}

/* ---- the dictation ---- */

static cJSON *view_json(const struct dict_view *v)
{
    cJSON *o = cJSON_CreateObject(), *t;

    if (!o)
        return NULL;
    cdt_json_add_str(o, "id", v->id[0] ? v->id : NULL);
    cJSON_AddStringToObject(o, "state", cdt_dictation_state_name(v->state));
    cJSON_AddNumberToObject(o, "elapsed_s", round(v->elapsed_s * 10) / 10);
    cJSON_AddNumberToObject(o, "limit_s", v->limit_s);
    cJSON_AddNumberToObject(o, "remaining_s", round(fmax(0, v->limit_s - v->elapsed_s) * 10) / 10);
    cJSON_AddBoolToObject(o, "warned", v->warned);
    cJSON_AddNumberToObject(o, "level", round(v->level * 1000) / 1000);
    cJSON_AddStringToObject(o, "source",
                            v->source == CDT_DICT_MICROPHONE ? "microphone"
                            : v->source == CDT_DICT_RETRY    ? "retry"
                                                             : "file");
    cdt_json_add_str(o, "raw", v->raw);
    cdt_json_add_str(o, "refined", v->refined);
    cdt_json_add_str(o, "reason_code", v->reason_code);
    cdt_json_add_str(o, "fallback_reason", v->fallback_reason);
    cdt_json_add_str(o, "error", v->error);
    t = v->timings ? cJSON_Parse(v->timings) : NULL;
    if (t)
        cJSON_AddItemToObject(o, "timings", t);
    else
        cJSON_AddNullToObject(o, "timings");
    return o;
}

cJSON *cdt_app_dictation(struct cdt_app *app)
{
    cJSON *o;

    pthread_mutex_lock(&app->mu);
    o = view_json(&app->view);
    pthread_mutex_unlock(&app->mu);
    return o;
}

static void on_dict_event(const struct cdt_dictation_event *ev, void *ud)
{
    struct cdt_app *app = ud;
    cJSON *o;

    if (ev->kind == CDT_DICT_EV_DELTA) {
        /* The refined text as it streams: {"id", "delta"}; dict_main sends the
         * final text ({"id", "final": true, "text"}) when the dictation is done. */
        char *text;

        pthread_mutex_lock(&app->mu);
        /* valid UTF-8 for cJSON and the browser: a character cut between pieces waits */
        text = cdt_utf8_carry(app->delta_carry, &app->delta_carry_len, ev->delta, ev->delta_len);
        pthread_mutex_unlock(&app->mu);
        o = text && text[0] ? cJSON_CreateObject() : NULL;
        if (o) {
            cJSON_AddStringToObject(o, "id", ev->status->id);
            cJSON_AddStringToObject(o, "delta", text);
        }
        free(text);
        emit_json(app, "refined", o);
        return;
    }
    if (ev->kind == CDT_DICT_EV_NOTICE) {
        o = cJSON_CreateObject();
        if (o)
            cJSON_AddStringToObject(o, "message", ev->message);
        emit_json(app, "notice", o);
        return;
    }
    pthread_mutex_lock(&app->mu);
    app->view.state = ev->status->state;
    memcpy(app->view.id, ev->status->id, sizeof(app->view.id));
    app->view.elapsed_s = ev->status->elapsed_s;
    app->view.limit_s = ev->status->limit_s;
    app->view.warned = ev->status->warned;
    app->view.level = ev->status->level;
    /* The final state is published with its text by the worker. */
    o = ev->status->state == CDT_DICT_DONE || ev->status->state == CDT_DICT_FAILED
            ? NULL
            : view_json(&app->view);
    pthread_mutex_unlock(&app->mu);
    emit_json(app, "dictation", o);
    if (ev->kind == CDT_DICT_EV_WARN) {
        o = cJSON_CreateObject();
        if (o)
            cJSON_AddNumberToObject(o, "remaining_s",
                                    ceil(ev->status->limit_s - ev->status->elapsed_s));
        emit_json(app, "warn", o);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void deliver(struct cdt_app *app, const char *text)
{
    enum cdt_output_mode out;
    char err[256];

    pthread_mutex_lock(&app->mu);
    out = app->settings.output;
    pthread_mutex_unlock(&app->mu);
    if (!text || !text[0] || out == CDT_OUTPUT_NONE)
        return;
    if ((out == CDT_OUTPUT_COPY ? cdt_deliver_copy(text, err, sizeof(err))
                                : cdt_deliver_type(text, err, sizeof(err))) != 0)
        CDT_LOG_W(app->p.log, "output (%s): %s", cdt_settings_output_name(out), err);
}

struct dict_job {
    struct cdt_app *app;
    struct cdt_dictation *sess;
    struct refiner_ref *ref;
    struct cdt_pick_whisper *wp;       /* the session's model paths point into it */
    char retry_id[CDT_HISTORY_ID_MAX]; /* the session's retry_id points here */
    char language[16];                 /* and its whisper language */
    char input[4096];                  /* and its input file */
    bool input_is_upload;              /* delete the input file when done */
    /* the session's vocabulary points here */
    char vocabulary[CDT_TRANSCRIBE_MAX_VOCABULARY + 1];
};

static void *dict_main(void *arg)
{
    struct dict_job *job = arg;
    struct cdt_app *app = job->app;
    struct cdt_dictation_result r;
    struct cdt_transcribe *t;
    char err[1024];
    int rc = cdt_dictation_wait(job->sess, &r, err, sizeof(err));
    cJSON *o;

    pthread_mutex_lock(&app->mu);
    app->delta_carry_len = 0; /* the stream is over: the final text replaces it */
    view_clear_text(&app->view);
    if (rc != 0) {
        app->view.state = CDT_DICT_FAILED;
        app->view.error = strdup(rc == CDT_ENOMEM ? "out of memory" : err);
    } else {
        app->view.state = r.state;
        memcpy(app->view.id, r.id, sizeof(app->view.id));
        app->view.raw = r.transcribed ? dup_or_null(r.transcript.text) : NULL;
        app->view.refined = r.state == CDT_DICT_DONE ? dup_or_null(r.text) : NULL;
        if (r.refined && r.refine.reason != CDT_REFINE_OK) {
            app->view.reason_code = dup_or_null(cdt_refine_reason_name(r.refine.reason));
            app->view.fallback_reason = dup_or_null(r.refine.fallback_reason);
        }
        app->view.error = dup_or_null(r.error);
        if (r.state == CDT_DICT_DONE)
            app->view.timings = cdt_dictation_timings_json(&r);
    }
    o = view_json(&app->view);
    pthread_mutex_unlock(&app->mu);
    if (rc == 0 && r.state == CDT_DICT_DONE) {
        cJSON *d = cJSON_CreateObject();

        /* The delivered text (guarded) replaces whatever was streamed. */
        if (d) {
            cJSON_AddStringToObject(d, "id", r.id);
            cJSON_AddTrueToObject(d, "final");
            cJSON_AddStringToObject(d, "text", r.text ? r.text : "");
        }
        emit_json(app, "refined", d);
    }
    emit_json(app, "dictation", o);
    o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "id", rc == 0 ? r.id : "");
    emit_json(app, "history", o);
    if (rc == 0 && r.state == CDT_DICT_DONE)
        deliver(app, r.text);

    /* Keep the whisper model warm for the next dictation. */
    t = cdt_dictation_take_transcriber(job->sess);
    pthread_mutex_lock(&app->mu);
    app->whisper_lent = false;
    if (t) {
        struct cdt_transcribe *old = app->whisper; /* the newest model stays */

        app->whisper = t;
        t = old;
    }
    if (app->settings.idle_timeout_s == 0) {
        /* "Unload immediately": nothing stays warm. */
        cdt_transcribe_free(t);
        t = app->whisper;
        app->whisper = NULL;
    }
    app->sess = NULL;
    pthread_mutex_unlock(&app->mu);
    cdt_transcribe_free(t);
    if (rc == 0)
        cdt_dictation_result_cleanup(&r);
    cdt_dictation_free(job->sess);
    ref_put(app, job->ref);
    if (job->input_is_upload)
        unlink(job->input);
    free(job->wp);
    free(job);
    return NULL;
}

/* Starts a session of the given source on a worker thread. */
static int start_session(struct cdt_app *app, enum cdt_dictation_source src, double max_seconds,
                         const char *input_path, bool upload, const char *retry_id, char *errmsg,
                         size_t errcap)
{
    struct cdt_dictation_params dp = cdt_dictation_default_params();
    struct cdt_pick_params pp = cdt_pick_default_params();
    struct cdt_pick_whisper *wp = calloc(1, sizeof(*wp));
    struct dict_job *job = calloc(1, sizeof(*job));
    char whisper_arg[128], language[16];
    bool whisper_context;
    int rc;

    if (!wp || !job) {
        free(wp);
        free(job);
        return CDT_ENOMEM;
    }
    pthread_mutex_lock(&app->mu);
    if (app->sess || app->starting) {
        pthread_mutex_unlock(&app->mu);
        set_err(errmsg, errcap, "%s", "a dictation is already running");
        rc = CDT_EBUSY;
        goto fail;
    }
    app->starting = true; /* from here on, every way out clears it */
    snprintf(whisper_arg, sizeof(whisper_arg), "%s", app->settings.whisper_model);
    snprintf(language, sizeof(language), "%s", app->settings.language);
    whisper_context = app->settings.whisper_context;
    snprintf(job->vocabulary, sizeof(job->vocabulary), "%s", app->settings.vocabulary);
    pthread_mutex_unlock(&app->mu);
    if (app->dict_thread_live) {
        pthread_join(app->dict_thread, NULL);
        app->dict_thread_live = false;
    }

    pp.whisper_arg = whisper_arg[0] ? whisper_arg : NULL;
    pp.catalog = app->cat;
    pp.models = app->models;
    pp.log = app->p.log;
    pp.app = true;
    rc = cdt_pick_whisper(&pp, wp, errmsg, errcap);
    if (rc != 0) {
        rc = CDT_ESTATE;
        goto fail_started;
    }
    job->app = app;
    job->wp = wp;
    job->ref = ref_get(app);
    dp.source = src;
    if (input_path) {
        snprintf(job->input, sizeof(job->input), "%s", input_path);
        job->input_is_upload = upload;
        dp.input_path = job->input;
    }
    if (retry_id) {
        snprintf(job->retry_id, sizeof(job->retry_id), "%s", retry_id);
        dp.retry_id = job->retry_id;
    }
    dp.device = app->p.device;
    dp.limit_s = max_seconds > 0 && max_seconds < app->limit_s ? max_seconds : app->limit_s;
    dp.history_dir = app->p.data_dir;
    dp.whisper.model_path = wp->model;
    dp.whisper.vad = wp->vad;
    dp.whisper.vad_model_path = wp->vad ? wp->vad_model : NULL;
    snprintf(job->language, sizeof(job->language), "%s", language);
    dp.whisper.language = strcmp(job->language, "auto") == 0 ? NULL : job->language;
    dp.whisper.log = app->p.log;
    dp.eager.no_context = !whisper_context;
    dp.whisper.vocabulary = job->vocabulary;
    dp.refiner = job->ref ? job->ref->r : NULL;
    dp.log = app->p.log;
    dp.on_event = on_dict_event;
    dp.stream_refine = true; /* the page shows the refined text as it streams */
    dp.user_data = app;

    pthread_mutex_lock(&app->mu);
    if (app->whisper && strcmp(app->whisper_path, wp->model) == 0) {
        dp.transcriber = app->whisper; /* warm: lent for the session */
        if (cdt_transcribe_set_vocabulary(app->whisper, job->vocabulary) != 0)
            CDT_LOG_W(app->p.log, "the vocabulary was not applied (%zu bytes)",
                      strlen(job->vocabulary));
        app->whisper_lent = true;
    } else if (app->whisper) {
        /* Another model now: the session loads it; the old one goes. */
        cdt_transcribe_free(app->whisper);
        app->whisper = NULL;
    }
    snprintf(app->whisper_path, sizeof(app->whisper_path), "%s", wp->model);
    view_clear_text(&app->view);
    app->view.state = src == CDT_DICT_MICROPHONE ? CDT_DICT_RECORDING : CDT_DICT_TRANSCRIBING;
    app->view.source = src;
    app->view.id[0] = '\0';
    app->view.elapsed_s = 0;
    app->view.warned = false;
    app->view.level = 0;
    app->view.limit_s = dp.limit_s;
    pthread_mutex_unlock(&app->mu);

    rc = cdt_dictation_start(&dp, &job->sess, errmsg, errcap);
    pthread_mutex_lock(&app->mu);
    if (rc != 0) {
        app->whisper_lent = false;
        app->view.state = CDT_DICT_FAILED;
        app->view.error = strdup(errmsg);
        app->starting = false;
        pthread_mutex_unlock(&app->mu);
        ref_put(app, job->ref);
        goto fail;
    }
    app->sess = job->sess;
    app->starting = false;
    if (pthread_create(&app->dict_thread, NULL, dict_main, job) != 0) {
        app->sess = NULL;
        app->whisper_lent = false;
        pthread_mutex_unlock(&app->mu);
        cdt_dictation_free(job->sess);
        ref_put(app, job->ref);
        rc = CDT_ENOMEM;
        goto fail;
    }
    app->dict_thread_live = true;
    pthread_mutex_unlock(&app->mu);
    emit_json(app, "dictation", cdt_app_dictation(app));
    return 0; /* wp now belongs to the job */
fail_started:
    pthread_mutex_lock(&app->mu);
    app->starting = false;
    pthread_mutex_unlock(&app->mu);
fail:
    free(wp);
    free(job);
    return rc;
}

int cdt_app_dictation_start(struct cdt_app *app, double max_seconds, char *errmsg, size_t errcap)
{
    return start_session(app, CDT_DICT_MICROPHONE, max_seconds, NULL, false, NULL, errmsg, errcap);
}

static int control(struct cdt_app *app, bool cancel, char *errmsg, size_t errcap)
{
    int rc = 0;

    pthread_mutex_lock(&app->mu);
    if (cancel && app->sess &&
        (app->view.state == CDT_DICT_RECORDING || app->view.state == CDT_DICT_TRANSCRIBING ||
         app->view.state == CDT_DICT_REFINING)) {
        /* Also after stop: a model call under way is abandoned at once. */
        cdt_dictation_cancel(app->sess);
        app->view.state = CDT_DICT_CANCELLED; /* what the answer says: it is ending */
    } else if (!app->sess || app->view.state != CDT_DICT_RECORDING) {
        set_err(errmsg, errcap, "%s",
                cancel ? "no dictation is running" : "no recording is running");
        rc = CDT_ESTATE;
    } else {
        cdt_dictation_stop(app->sess);
        app->view.state = CDT_DICT_TRANSCRIBING;
    }
    pthread_mutex_unlock(&app->mu);
    return rc;
}

int cdt_app_dictation_stop(struct cdt_app *app, char *errmsg, size_t errcap)
{
    return control(app, false, errmsg, errcap);
}

int cdt_app_dictation_cancel(struct cdt_app *app, char *errmsg, size_t errcap)
{
    return control(app, true, errmsg, errcap);
}

int cdt_app_dictation_toggle(struct cdt_app *app, char *errmsg, size_t errcap)
{
    bool recording, busy;

    pthread_mutex_lock(&app->mu);
    busy = app->sess != NULL;
    recording = busy && app->view.state == CDT_DICT_RECORDING;
    pthread_mutex_unlock(&app->mu);
    if (recording)
        return control(app, false, errmsg, errcap);
    if (busy) {
        set_err(errmsg, errcap, "%s", "the last dictation is still being transcribed");
        return CDT_EBUSY;
    }
    return cdt_app_dictation_start(app, 0, errmsg, errcap);
}

int cdt_app_transcribe_bytes(struct cdt_app *app, const void *data, size_t len, char *errmsg,
                             size_t errcap)
{
    char path[] = "/tmp/codictate-upload-XXXXXX";
    int fd, rc;
    size_t off = 0;

    if (len == 0) {
        set_err(errmsg, errcap, "%s", "the audio file is empty");
        return CDT_EINVAL;
    }
    fd = mkstemp(path);
    if (fd < 0) {
        set_err(errmsg, errcap, "cannot store the upload: %s", strerror(errno));
        return CDT_EIO;
    }
    while (off < len) {
        ssize_t w = write(fd, (const char *)data + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            set_err(errmsg, errcap, "cannot store the upload: %s",
                    w < 0 ? strerror(errno) : "disk full");
            close(fd);
            unlink(path);
            return CDT_ENOSPACE;
        }
        off += (size_t)w;
    }
    close(fd);
    rc = start_session(app, CDT_DICT_FILE, 0, path, true, NULL, errmsg, errcap);
    if (rc != 0)
        unlink(path);
    return rc;
}

/* ---- history ---- */

/* All entries (cdt_history_list under the handle's lock). */
static int list_history(struct cdt_app *app, struct cdt_history_entry **v, size_t *n, char *errmsg,
                        size_t errcap)
{
    int rc;

    pthread_mutex_lock(&app->hist_mu);
    rc = cdt_history_list(app->hist, v, n, NULL);
    if (rc != 0)
        set_err(errmsg, errcap, "%s", cdt_history_errmsg(app->hist));
    pthread_mutex_unlock(&app->hist_mu);
    return rc;
}

cJSON *cdt_app_history(struct cdt_app *app, char *errmsg, size_t errcap)
{
    struct cdt_history_entry *v = NULL;
    size_t n = 0;
    cJSON *o, *arr;
    int rc;

    if (!app->hist) {
        o = cJSON_CreateObject();
        if (o)
            cJSON_AddArrayToObject(o, "entries");
        return o;
    }
    rc = list_history(app, &v, &n, errmsg, errcap);
    if (rc != 0)
        return NULL;
    o = cJSON_CreateObject();
    arr = o ? cJSON_AddArrayToObject(o, "entries") : NULL;
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *e = cdt_json_history_entry(&v[i]);

        if (!e)
            continue;
        cJSON_AddBoolToObject(e, "has_audio",
                              v[i].audio_path && access(v[i].audio_path, R_OK) == 0);
        cJSON_AddItemToArray(arr, e);
    }
    cdt_history_entries_free(v, n);
    return o;
}

/* Copies the entry of id into *out (caller cleans with cdt_history_entries_free(out, 1)
 * semantics: *out is an array of one). */
static int find_entry(struct cdt_app *app, const char *id, struct cdt_history_entry **out,
                      char *errmsg, size_t errcap)
{
    struct cdt_history_entry *v = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if (!app->hist) {
        set_err(errmsg, errcap, "%s", "there is no history");
        return CDT_ENOTFOUND;
    }
    rc = list_history(app, &v, &n, errmsg, errcap);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].id, id) == 0) {
            struct cdt_history_entry *one = malloc(sizeof(*one));

            if (!one) {
                cdt_history_entries_free(v, n);
                return CDT_ENOMEM;
            }
            *one = v[i];
            memset(&v[i], 0, sizeof(v[i])); /* moved */
            cdt_history_entries_free(v, n);
            *out = one;
            return 0;
        }
    }
    cdt_history_entries_free(v, n);
    set_err(errmsg, errcap, "no history entry '%s'", id);
    return CDT_ENOTFOUND;
}

/* Whether path is a file in the history's recordings/ (links and ".." resolved).
 * The app serves and re-transcribes only those: an entry's audio_path comes from a
 * file, and no edit of it makes the API hand out /etc/passwd or ~/.ssh. */
static bool in_recordings(struct cdt_app *app, const char *path)
{
    char dir[4096], *real_dir, *real;
    size_t n;
    bool ok;

    snprintf(dir, sizeof(dir), "%s/recordings", cdt_history_dir(app->hist));
    real_dir = realpath(dir, NULL);
    real = realpath(path, NULL);
    n = real_dir ? strlen(real_dir) : 0;
    ok = real_dir && real && strncmp(real, real_dir, n) == 0 && real[n] == '/' &&
         !strchr(real + n + 1, '/');
    free(real_dir);
    free(real);
    return ok;
}

int cdt_app_history_audio(struct cdt_app *app, const char *id, char *path, size_t cap)
{
    struct cdt_history_entry *e;
    char err[256];
    int rc = find_entry(app, id, &e, err, sizeof(err));

    if (rc != 0)
        return rc;
    if (!e->audio_path || !in_recordings(app, e->audio_path) || access(e->audio_path, R_OK) != 0)
        rc = CDT_ENOTFOUND;
    else
        snprintf(path, cap, "%s", e->audio_path);
    cdt_history_entries_free(e, 1);
    return rc;
}

/* The current refiner (*ref, put it back with ref_put), or one made with the
 * overrides (*own, free it). Returns it, or NULL with *rc and errmsg. */
static struct cdt_refiner *pick_refiner(struct cdt_app *app, const char *prompt, const char *model,
                                        const char *vocabulary, long timeout_ms,
                                        struct refiner_ref **ref, struct cdt_refiner **own, int *rc,
                                        char *errmsg, size_t errcap)
{
    *ref = NULL;
    *own = NULL;
    if (model && (*rc = catalog_id_ok(app, model, CDT_MODEL_LLM, "model", errmsg, errcap)) != 0)
        return NULL;
    if (prompt || model || vocabulary || timeout_ms > 0) {
        struct cdt_settings *s = malloc(sizeof(*s));

        if (!s) {
            *rc = CDT_ENOMEM;
            return NULL;
        }
        pthread_mutex_lock(&app->mu);
        *s = app->settings;
        pthread_mutex_unlock(&app->mu);
        if (model)
            s->provider = CDT_PROVIDER_LOCAL;
        *rc = make_refiner(app, s, prompt, model, vocabulary, timeout_ms, own, errmsg, errcap);
        free(s);
        return *rc == 0 ? *own : NULL;
    }
    if (!(*ref = ref_get(app))) {
        set_err(errmsg, errcap, "%s", "no refiner");
        *rc = CDT_ESTATE;
        return NULL;
    }
    *rc = 0;
    return (*ref)->r;
}

static void ahead_free(struct cdt_app *app, struct ahead_sess *s)
{
    if (!s)
        return;
    cdt_refiner_ahead_free(s->a); /* the model call under way abandoned, its worker joined */
    cdt_refiner_free(s->own);
    ref_put(app, s->ref);
    free(s);
}

/* The refinement ahead `id`, taken out of the list (the caller frees it), or NULL. */
static struct ahead_sess *ahead_take(struct cdt_app *app, const char *id)
{
    struct ahead_sess **pp, *s = NULL;

    pthread_mutex_lock(&app->ahead_mu);
    for (pp = &app->aheads; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            s = *pp;
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&app->ahead_mu);
    return s;
}

/* Refines text with the refinement ahead `ahead_id` (its refiner and the pieces it
 * refined), else with the current refiner or one made with the overrides. */
static int refine_with(struct cdt_app *app, const char *text, const char *prompt, const char *model,
                       const char *vocabulary, long timeout_ms, const char *ahead_id,
                       void (*on_delta)(const char *, size_t, void *), bool (*should_stop)(void *),
                       void *stop_data, struct cdt_refine_result *res, const char **provider,
                       char *errmsg, size_t errcap)
{
    struct refiner_ref *ref = NULL;
    struct cdt_refiner *own = NULL, *r;
    struct ahead_sess *s = ahead_id ? ahead_take(app, ahead_id) : NULL;
    int rc;

    if (ahead_id && !s)
        CDT_LOG_D(app->p.log, "refine: no refinement ahead %s (dropped or expired): all now",
                  ahead_id);
    if (s)
        r = s->own ? s->own : s->ref->r;
    else if (!(r = pick_refiner(app, prompt, model, vocabulary, timeout_ms, &ref, &own, &rc, errmsg,
                                errcap)))
        return rc;
    rc = cdt_refiner_run_ahead(r, text, on_delta, should_stop, stop_data, s ? s->a : NULL, res);
    if (rc == CDT_ECANCELED) {
        CDT_LOG_I(app->p.log, "refine: cancelled, the model call abandoned (the client went away)");
        set_err(errmsg, errcap, "%s", "cancelled: the client went away");
    }
    *provider = cdt_refiner_provider(r);
    ahead_free(app, s);
    cdt_refiner_free(own);
    ref_put(app, ref);
    return rc;
}

int cdt_app_refine_ahead_new(struct cdt_app *app, const char *prompt, const char *model,
                             const char *vocabulary, long timeout_ms, char id[CDT_APP_AHEAD_ID_CAP],
                             char *errmsg, size_t errcap)
{
    struct ahead_sess *s = calloc(1, sizeof(*s)), **pp, *drop = NULL, *oldest;
    size_t n = 0;
    double now = cdt_now_ms();
    int rc;

    id[0] = '\0';
    if (!s)
        return CDT_ENOMEM;
    if (!pick_refiner(app, prompt, model, vocabulary, timeout_ms, &s->ref, &s->own, &rc, errmsg,
                      errcap)) {
        free(s);
        return rc;
    }
    if (cdt_random_hex(s->id, (CDT_APP_AHEAD_ID_CAP - 1) / 2) != 0) {
        set_err(errmsg, errcap, "%s", "no randomness for an id");
        ahead_free(app, s);
        return CDT_EIO;
    }
    if ((rc = cdt_refiner_ahead_new(s->own ? s->own : s->ref->r, &s->a)) != 0) {
        set_err(errmsg, errcap, "%s", "out of memory");
        ahead_free(app, s);
        return rc;
    }
    s->used_ms = now;
    pthread_mutex_lock(&app->ahead_mu);
    /* Those left unused (a verb that died) go; so does the oldest past AHEAD_MAX. */
    for (pp = &app->aheads; *pp;) {
        struct ahead_sess *x = *pp;

        if (now - x->used_ms > AHEAD_IDLE_MS) {
            *pp = x->next;
            x->next = drop;
            drop = x;
        } else {
            pp = &x->next;
            n++;
        }
    }
    if (n >= AHEAD_MAX) {
        oldest = app->aheads;
        for (struct ahead_sess *x = app->aheads; x; x = x->next)
            if (x->used_ms < oldest->used_ms)
                oldest = x;
        for (pp = &app->aheads; *pp != oldest; pp = &(*pp)->next)
            ;
        *pp = oldest->next;
        oldest->next = drop;
        drop = oldest;
    }
    s->next = app->aheads;
    app->aheads = s;
    memcpy(id, s->id, CDT_APP_AHEAD_ID_CAP);
    pthread_mutex_unlock(&app->ahead_mu);
    while (drop) {
        struct ahead_sess *x = drop;

        drop = x->next;
        CDT_LOG_D(app->p.log, "refine ahead %s dropped (unused, or too many)", x->id);
        ahead_free(app, x);
    }
    return 0;
}

int cdt_app_refine_ahead_offer(struct cdt_app *app, const char *id, const char *text,
                               size_t *pieces, char *errmsg, size_t errcap)
{
    struct ahead_sess *s;

    *pieces = 0;
    if (strlen(text) > CDT_REFINE_MAX_TEXT) {
        snprintf(errmsg, errcap, "the text is over %d bytes, the most refine takes",
                 CDT_REFINE_MAX_TEXT);
        return CDT_ETOOBIG;
    }
    pthread_mutex_lock(&app->ahead_mu);
    for (s = app->aheads; s && strcmp(s->id, id) != 0; s = s->next)
        ;
    if (s) {
        cdt_refiner_ahead_offer(s->a, text); /* copies it and wakes the worker */
        *pieces = cdt_refiner_ahead_count(s->a);
        s->used_ms = cdt_now_ms();
    }
    pthread_mutex_unlock(&app->ahead_mu);
    if (!s) {
        set_err(errmsg, errcap, "%s", "no such refinement ahead (dropped or expired)");
        return CDT_ENOTFOUND;
    }
    return 0;
}

int cdt_app_refine_ahead_delete(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    struct ahead_sess *s = ahead_take(app, id);

    if (!s) {
        set_err(errmsg, errcap, "%s", "no such refinement ahead (dropped or expired)");
        return CDT_ENOTFOUND;
    }
    ahead_free(app, s);
    return 0;
}

int cdt_app_history_refine(struct cdt_app *app, const char *id, const char *prompt,
                           const char *model, cJSON **out, char *errmsg, size_t errcap)
{
    struct cdt_history_entry *e;
    struct cdt_refine_result res;
    const char *provider = NULL;
    char *old_refined, *old_reason, *old_code, *old_model;
    int rc;

    *out = NULL;
    rc = find_entry(app, id, &e, errmsg, errcap);
    if (rc != 0)
        return rc;
    if (!e->raw || !e->raw[0]) {
        set_err(errmsg, errcap, "%s", "this entry has no transcript to refine");
        cdt_history_entries_free(e, 1);
        return CDT_ESTATE;
    }
    rc = refine_with(app, e->raw, prompt, model, NULL, 0, NULL, NULL, NULL, NULL, &res, &provider,
                     errmsg, errcap);
    if (rc != 0) {
        cdt_history_entries_free(e, 1);
        return rc;
    }
    /* The entry keeps its id: the new line supersedes the old one. */
    old_refined = e->refined;
    old_reason = e->fallback_reason;
    old_code = e->reason_code;
    old_model = e->model;
    e->refined = res.refined;
    e->fallback_reason = res.fallback_reason;
    e->reason_code =
        res.reason != CDT_REFINE_OK ? (char *)cdt_refine_reason_name(res.reason) : NULL;
    e->model = res.model;
    pthread_mutex_lock(&app->hist_mu);
    if (cdt_history_append(app->hist, e) != 0)
        CDT_LOG_W(app->p.log, "history: %s", cdt_history_errmsg(app->hist));
    pthread_mutex_unlock(&app->hist_mu);
    e->refined = old_refined;
    e->fallback_reason = old_reason;
    e->reason_code = old_code;
    e->model = old_model;
    cdt_history_entries_free(e, 1);
    *out = cdt_json_refine(&res, provider);
    cdt_refine_result_cleanup(&res);
    {
        cJSON *h = cJSON_CreateObject();

        if (h)
            cJSON_AddStringToObject(h, "id", id);
        emit_json(app, "history", h);
    }
    return *out ? 0 : CDT_ENOMEM;
}

int cdt_app_history_retry(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    char path[CDT_HISTORY_PATH_MAX];
    int rc = cdt_app_history_audio(app, id, path, sizeof(path));

    if (rc != 0) {
        set_err(errmsg, errcap, "no saved recording for '%s'", id);
        return rc;
    }
    return start_session(app, CDT_DICT_RETRY, 0, NULL, false, id, errmsg, errcap);
}

int cdt_app_history_delete(struct cdt_app *app, const char *id, char *errmsg, size_t errcap)
{
    int rc;
    cJSON *h;

    if (!app->hist) {
        set_err(errmsg, errcap, "%s", "there is no history");
        return CDT_ENOTFOUND;
    }
    pthread_mutex_lock(&app->hist_mu);
    rc = cdt_history_delete(app->hist, id);
    if (rc != 0)
        set_err(errmsg, errcap, "%s", cdt_history_errmsg(app->hist));
    pthread_mutex_unlock(&app->hist_mu);
    if (rc == 0 && (h = cJSON_CreateObject()) != NULL) {
        cJSON_AddStringToObject(h, "id", id);
        cJSON_AddTrueToObject(h, "deleted");
        emit_json(app, "history", h);
    }
    return rc;
}

int cdt_app_refine(struct cdt_app *app, const char *text, const char *prompt, const char *model,
                   const char *vocabulary, long timeout_ms, const char *ahead_id,
                   void (*on_delta)(const char *text, size_t len, void *user_data),
                   bool (*should_stop)(void *user_data), void *user_data, cJSON **out, char *errmsg,
                   size_t errcap)
{
    struct cdt_refine_result res;
    const char *provider = NULL;
    int rc;

    *out = NULL;
    if (strlen(text) > CDT_REFINE_MAX_TEXT) {
        snprintf(errmsg, errcap, "the text is over %d bytes, the most refine takes",
                 CDT_REFINE_MAX_TEXT);
        return CDT_ETOOBIG;
    }
    rc = refine_with(app, text, prompt, model, vocabulary, timeout_ms, ahead_id, on_delta,
                     should_stop, user_data, &res, &provider, errmsg, errcap);
    if (rc != 0)
        return rc;
    *out = cdt_json_refine(&res, provider);
    cdt_refine_result_cleanup(&res);
    return *out ? 0 : CDT_ENOMEM;
}

/* ---- status ---- */

cJSON *cdt_app_status(struct cdt_app *app)
{
    struct cdt_manager *mgr = cdt_models_manager(app->models);
    cJSON *o = cJSON_CreateObject(), *s;
    char loaded[CDT_PICK_PATH_CAP];
    const char *loaded_id = NULL;
    int pid = mgr ? cdt_manager_sidecar_pid(mgr) : 0;
    bool has = mgr && cdt_manager_loaded(mgr, loaded, sizeof(loaded));

    if (!o)
        return NULL;
    if (has) {
        for (size_t i = 0; i < cdt_catalog_count(app->cat); i++) {
            const struct cdt_catalog_model *cm = cdt_catalog_model_at(app->cat, i);
            char path[CDT_PICK_PATH_CAP];

            if (cdt_models_path(app->models, cm->id, path, sizeof(path)) == 0 &&
                strcmp(path, loaded) == 0) {
                loaded_id = cm->id;
                break;
            }
        }
    }
    cJSON_AddStringToObject(o, "version", CDT_VERSION);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddNumberToObject(o, "port", app->p.port);
    cJSON_AddNumberToObject(o, "ram_gb", app->ram_gb);
    cJSON_AddStringToObject(o, "tier", app->tier.name);
    cJSON_AddNumberToObject(o, "recording_limit_s", app->limit_s);
    s = cJSON_AddObjectToObject(o, "sidecar");
    if (s) {
        cJSON_AddStringToObject(s, "state", pid > 0 ? "running" : "stopped");
        cJSON_AddNumberToObject(s, "pid", pid);
        cJSON_AddNumberToObject(s, "port", mgr ? cdt_manager_sidecar_port(mgr) : 0);
        cdt_json_add_str(s, "model", has ? (loaded_id ? loaded_id : loaded) : NULL);
        cdt_json_add_str(
            s, "model_state",
            loaded_id ? cdt_model_state_name(cdt_models_state(app->models, loaded_id, NULL, 0))
            : has     ? "ready"
                      : NULL);
    }
    cJSON_AddItemToObject(o, "dictation", cdt_app_dictation(app));
    cJSON_AddItemToObject(o, "settings", cdt_app_settings(app));
    return o;
}
