/* The app (application layer): one object that owns what `codictate serve` keeps
 * for its lifetime — the catalog, the models on this machine (downloads and the
 * sidecar manager, so the LLM stays warm between dictations and unloads when idle),
 * the settings, the history, the refiner built from the settings, a warm whisper
 * model, and the one dictation that may run. The HTTP routes (src/app/) parse,
 * call these functions and answer; they hold no application logic.
 *
 * Results are JSON objects in the shapes of codictate/json.h (caller frees with
 * cJSON_Delete). Errors are CDT_E* codes with a message for people; the server maps
 * them to HTTP statuses. Every change is also an event: (name, JSON text) given to
 * params.on_event from whichever thread made the change; names are "model",
 * "dictation", "warn", "refined", "sidecar", "settings", "history".
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef CODICTATE_APP_H
#define CODICTATE_APP_H

#include "codictate/err.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cdt_log;

#define CDT_APP_PORT 11380 /* the app's default port */

struct cdt_app_params {
    const char *config_dir;   /* settings; NULL: $XDG_CONFIG_HOME/codictate */
    const char *data_dir;     /* history; NULL: the history's default */
    double recording_limit_s; /* at most the RAM tier's; <= 0: the tier's */
    const char *device;       /* capture source; NULL: the default */
    const char *sidecar_exe;  /* the binary run as the sidecar (borrowed for the app's
                               * life); NULL: this process's executable */
    int port;                 /* for the status object */
    struct cdt_log *log;      /* borrowed */
    void (*on_event)(const char *name, const char *json, void *user_data);
    void *user_data;
};

struct cdt_app;

struct cdt_app_params cdt_app_default_params(void);

/* Loads the settings (a broken file is a warning in the log, never fatal) and the
 * catalog. Returns 0 and *out, CDT_ENOMEM, or the catalog's error. */
CDT_NODISCARD int cdt_app_new(const struct cdt_app_params *p, struct cdt_app **out, char *errmsg,
                              size_t errcap);

/* Cancels a running dictation and downloads, stops the sidecar, frees. */
void cdt_app_free(struct cdt_app *app);

/* {version, pid, port, ram_gb, tier, recording_limit_s, sidecar{state, pid, port,
 * model, model_state}, dictation, settings}. */
cJSON *cdt_app_status(struct cdt_app *app);

/* {ram_gb, tier, recommended{llm, whisper}, in_use{llm, whisper}, models[...]}. */
cJSON *cdt_app_models(struct cdt_app *app);

/* Starts downloading in the background (progress as "model" events at most 10 per
 * second). token: a Hugging Face token for gated models, or NULL. Returns 0,
 * CDT_ENOTFOUND, CDT_EBUSY (already downloading). */
CDT_NODISCARD int cdt_app_model_download(struct cdt_app *app, const char *id, const char *token,
                                         char *errmsg, size_t errcap);
CDT_NODISCARD int cdt_app_model_cancel(struct cdt_app *app, const char *id, char *errmsg,
                                       size_t errcap);
/* Refused (CDT_ESTATE) while downloading or loaded. */
CDT_NODISCARD int cdt_app_model_delete(struct cdt_app *app, const char *id, char *errmsg,
                                       size_t errcap);
/* Makes the model the one used for its kind (LLM or whisper). */
CDT_NODISCARD int cdt_app_model_use(struct cdt_app *app, const char *id, char *errmsg,
                                    size_t errcap);
/* LLM: loads in the background / unloads now. */
CDT_NODISCARD int cdt_app_model_load(struct cdt_app *app, const char *id, char *errmsg,
                                     size_t errcap);
void cdt_app_model_unload(struct cdt_app *app);

cJSON *cdt_app_settings(struct cdt_app *app);
/* Applies a partial update, saves atomically, rebuilds the refiner. CDT_EINVAL (a
 * bad value: nothing changed), or the save's error. */
CDT_NODISCARD int cdt_app_settings_update(struct cdt_app *app, const cJSON *patch, char *errmsg,
                                          size_t errcap);

/* The dictation: {id, state, elapsed_s, limit_s, remaining_s, warned, level, source,
 * raw, refined, reason_code, fallback_reason, error, timings}. */
cJSON *cdt_app_dictation(struct cdt_app *app);
/* Starts recording (max_seconds > 0: a shorter limit). CDT_EBUSY when one runs,
 * CDT_EIO no microphone, CDT_ESTATE no whisper model. */
CDT_NODISCARD int cdt_app_dictation_start(struct cdt_app *app, double max_seconds, char *errmsg,
                                          size_t errcap);
CDT_NODISCARD int cdt_app_dictation_stop(struct cdt_app *app, char *errmsg, size_t errcap);
/* Cancels the dictation while it records, transcribes or refines (a model call under
 * way is abandoned at once; the recording is kept): cdt_dictation_cancel.
 * CDT_ESTATE when none is running. */
CDT_NODISCARD int cdt_app_dictation_cancel(struct cdt_app *app, char *errmsg, size_t errcap);
/* Starts when none records, else stops. */
CDT_NODISCARD int cdt_app_dictation_toggle(struct cdt_app *app, char *errmsg, size_t errcap);
/* A dictation of an audio file's bytes (any format cdt_audio_load reads). */
CDT_NODISCARD int cdt_app_transcribe_bytes(struct cdt_app *app, const void *data, size_t len,
                                           char *errmsg, size_t errcap);

/* {entries: [...]} newest first, each with has_audio. */
cJSON *cdt_app_history(struct cdt_app *app, char *errmsg, size_t errcap);
/* The saved WAV of an entry. CDT_ENOTFOUND. */
CDT_NODISCARD int cdt_app_history_audio(struct cdt_app *app, const char *id, char *path,
                                        size_t cap);
/* Refines the entry's raw text again (prompt / model: NULL for the settings'), updates
 * the entry, *out = the refine result object. */
CDT_NODISCARD int cdt_app_history_refine(struct cdt_app *app, const char *id, const char *prompt,
                                         const char *model, cJSON **out, char *errmsg,
                                         size_t errcap);
/* Transcribes and refines the saved recording again, as a dictation. */
CDT_NODISCARD int cdt_app_history_retry(struct cdt_app *app, const char *id, char *errmsg,
                                        size_t errcap);
CDT_NODISCARD int cdt_app_history_delete(struct cdt_app *app, const char *id, char *errmsg,
                                         size_t errcap);

/* Refines text with the settings (prompt / model / vocabulary override them when not
 * NULL; an invalid vocabulary is CDT_EINVAL) and the LLM step's deadline timeout_ms
 * (<= 0: CDT_REFINE_DEFAULT_TIMEOUT_MS), as `codictate refine --timeout-ms`. With
 * ahead_id (NULL: none) of a refinement ahead: with its refiner and the pieces it
 * refined (the overrides then are those it was made with), and it is freed; an id
 * that is gone (dropped, expired) refines everything now. on_delta (NULL: none; same
 * user_data) sees the model's text as it comes, as cdt_refiner_run_stream's.
 * should_stop (NULL: never), asked while the model runs (the route's client gone,
 * say), abandons the model call at once: CDT_ECANCELED. */
CDT_NODISCARD int cdt_app_refine(struct cdt_app *app, const char *text, const char *prompt,
                                 const char *model, const char *vocabulary, long timeout_ms,
                                 const char *ahead_id,
                                 void (*on_delta)(const char *text, size_t len, void *user_data),
                                 bool (*should_stop)(void *user_data), void *user_data, cJSON **out,
                                 char *errmsg, size_t errcap);

/* Refinement ahead for a verb that dictates (`codictate dictate` while the app
 * runs): the finished pieces of its transcript refined with the app's warm model
 * while it still grows, as the app's own dictations do. new makes one with the same
 * overrides as cdt_app_refine (id: its name); offer gives it the transcript so far
 * (*pieces: refined so far); cdt_app_refine with the id takes them; delete drops it.
 * At most 8 are kept (a new one drops the oldest), and one without an offer for 10
 * min is dropped. Return 0, CDT_EINVAL (an override), CDT_ENOTFOUND (no such id),
 * CDT_ETOOBIG (text over CDT_REFINE_MAX_TEXT), CDT_ENOMEM, CDT_EIO. */
#define CDT_APP_AHEAD_ID_CAP 33 /* 32 hex digits */
CDT_NODISCARD int cdt_app_refine_ahead_new(struct cdt_app *app, const char *prompt,
                                           const char *model, const char *vocabulary,
                                           long timeout_ms, char id[CDT_APP_AHEAD_ID_CAP],
                                           char *errmsg, size_t errcap);
CDT_NODISCARD int cdt_app_refine_ahead_offer(struct cdt_app *app, const char *id, const char *text,
                                             size_t *pieces, char *errmsg, size_t errcap);
CDT_NODISCARD int cdt_app_refine_ahead_delete(struct cdt_app *app, const char *id, char *errmsg,
                                              size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
