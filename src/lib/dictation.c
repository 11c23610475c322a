/* One dictation session (see dictation.h). */
#include "codictate/dictation.h"

#include "codictate/audio.h"
#include "codictate/capture.h"
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/refiner.h"
#include "codictate/sysinfo.h"
#include "codictate/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS    100  /* the recording thread's period */
#define FEED_CHUNK 4096 /* samples copied from the capture at a time (eager) */

struct cdt_dictation {
    struct cdt_dictation_params p;
    struct cdt_history *hist; /* NULL: no history */

    pthread_mutex_t mu; /* guards st, stop_req, cancel_req, whisper_busy, whisper_cancelled */
    struct cdt_dictation_status st;
    bool stop_req, cancel_req;
    struct cdt_transcribe *whisper_busy; /* transcribing the whole recording with it now */
    bool whisper_cancelled;              /* cdt_transcribe_cancel was called on it */

    /* the recording */
    struct cdt_capture *cap;
    pthread_t rec_thread;
    bool rec_started;
    enum cdt_dictation_end end;
    char cap_err[512];
    float *samples; /* after the recording / the given audio */
    size_t n;
    double t_start, rec_ms;

    /* the whisper preload */
    pthread_t whisper_thread;
    bool whisper_started;
    struct cdt_transcribe *own_t;
    int whisper_rc;
    char whisper_err[1024];

    /* the LLM preload */
    pthread_t llm_thread;
    bool llm_started;

    /* eager transcription: the recording thread pushes what the capture has */
    struct cdt_eager *eager; /* NULL: everything after stop */
    size_t fed;              /* samples pushed */

    /* refinement ahead: the eager worker offers it the text so far (set before the
     * eager worker starts, freed after it is joined) */
    struct cdt_refiner_ahead *ahead; /* NULL: all refinement after stop */
};

static const char *const state_names[] = {"idle", "recording", "transcribing", "refining",
                                          "done", "failed",    "cancelled"};

const char *cdt_dictation_state_name(enum cdt_dictation_state s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

struct cdt_dictation_params cdt_dictation_default_params(void)
{
    struct cdt_dictation_params p;

    memset(&p, 0, sizeof(p));
    p.whisper = cdt_transcribe_default_params();
    p.preload_llm = true;
    return p;
}

static void emit(struct cdt_dictation *d, enum cdt_dictation_event_kind kind, const char *msg)
{
    struct cdt_dictation_status st;
    struct cdt_dictation_event ev;

    if (!d->p.on_event)
        return;
    pthread_mutex_lock(&d->mu);
    st = d->st;
    pthread_mutex_unlock(&d->mu);
    memset(&ev, 0, sizeof(ev));
    ev.kind = kind;
    ev.status = &st;
    ev.message = msg;
    d->p.on_event(&ev, d->p.user_data);
}

/* The refiner's on_delta: a piece of the model's text becomes a DELTA event. */
static void emit_delta(const char *text, size_t len, void *ud)
{
    struct cdt_dictation *d = ud;
    struct cdt_dictation_status st;
    struct cdt_dictation_event ev;

    if (!d->p.on_event || len == 0)
        return;
    pthread_mutex_lock(&d->mu);
    st = d->st;
    pthread_mutex_unlock(&d->mu);
    memset(&ev, 0, sizeof(ev));
    ev.kind = CDT_DICT_EV_DELTA;
    ev.status = &st;
    ev.delta = text;
    ev.delta_len = len;
    d->p.on_event(&ev, d->p.user_data);
}

static void set_state(struct cdt_dictation *d, enum cdt_dictation_state s)
{
    bool same;

    pthread_mutex_lock(&d->mu);
    same = d->st.state == s;
    d->st.state = s;
    pthread_mutex_unlock(&d->mu);
    if (!same)
        emit(d, CDT_DICT_EV_STATE, NULL);
}

static void notice(struct cdt_dictation *d, const char *what, const char *why)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "%s: %s", what, why);
    /* The event is how people are told (the CLI prints it, the app shows it): a
     * warning in the log as well would print it twice on the same terminal. */
    if (d->p.on_event)
        CDT_LOG_D(d->p.log, "dictation: %s", msg);
    else
        CDT_LOG_W(d->p.log, "dictation: %s", msg);
    emit(d, CDT_DICT_EV_NOTICE, msg);
}

/* The eager worker's on_text: the transcript so far goes to the refinement ahead. */
static void offer_ahead(const char *text, void *ud)
{
    struct cdt_dictation *d = ud;

    cdt_refiner_ahead_offer(d->ahead, text);
}

/* ---- background preload ---- */

static void *whisper_main(void *arg)
{
    struct cdt_dictation *d = arg;

    d->whisper_rc =
        cdt_transcribe_new(&d->p.whisper, &d->own_t, d->whisper_err, sizeof(d->whisper_err));
    /* Loaded while the user speaks: start transcribing what was said so far. A failure
     * leaves it to wait (which falls back to the whole recording). */
    if (d->whisper_rc == 0 && d->eager && cdt_eager_start(d->eager, d->own_t) != 0)
        CDT_LOG_D(d->p.log, "dictation: eager transcription did not start");
    return NULL;
}

static void *llm_main(void *arg)
{
    struct cdt_dictation *d = arg;
    char err[512];

    if (cdt_refiner_preload(d->p.refiner, err, sizeof(err)) != 0)
        CDT_LOG_D(d->p.log, "dictation: LLM preload: %s", err);
    return NULL;
}

static void start_preload(struct cdt_dictation *d)
{
    if (!d->p.transcriber && !d->whisper_started) {
        if (pthread_create(&d->whisper_thread, NULL, whisper_main, d) == 0)
            d->whisper_started = true;
        else
            whisper_main(d);
    }
    if (d->p.refiner && d->p.preload_llm && !d->llm_started &&
        pthread_create(&d->llm_thread, NULL, llm_main, d) == 0)
        d->llm_started = true;
}

static void join_whisper(struct cdt_dictation *d)
{
    if (d->whisper_started) {
        pthread_join(d->whisper_thread, NULL);
        d->whisper_started = false;
    }
}

static void join_llm(struct cdt_dictation *d)
{
    if (d->llm_started) {
        pthread_join(d->llm_thread, NULL);
        d->llm_started = false;
    }
}

/* ---- the recording ---- */

/* Hands what the capture recorded since the last call to the eager transcription. */
static void feed_eager(struct cdt_dictation *d, float *buf)
{
    size_t k;

    while (d->eager && (k = cdt_capture_copy(d->cap, d->fed, buf, FEED_CHUNK)) > 0) {
        if (cdt_eager_push(d->eager, buf, k) != 0)
            break; /* finish takes it from the whole recording */
        d->fed += k;
    }
}

static void *rec_main(void *arg)
{
    struct cdt_dictation *d = arg;
    struct cdt_rec_timer timer;
    float *samples = NULL, *feed = d->eager ? malloc(FEED_CHUNK * sizeof(float)) : NULL;
    size_t n = 0;
    int rc;

    cdt_rec_timer_init(&timer, d->st.limit_s, NULL, NULL);
    d->end = CDT_DICT_END_STOPPED;
    for (;;) {
        struct timespec ts = {0, TICK_MS * 1000000L};
        enum cdt_rec_event ev;
        bool stop, cancel;

        nanosleep(&ts, NULL);
        pthread_mutex_lock(&d->mu);
        stop = d->stop_req;
        cancel = d->cancel_req;
        pthread_mutex_unlock(&d->mu);
        if (cancel) {
            d->end = CDT_DICT_END_CANCELLED;
            break;
        }
        if (stop)
            break;
        ev = cdt_rec_timer_poll(&timer);
        pthread_mutex_lock(&d->mu);
        d->st.elapsed_s = timer.elapsed_s;
        d->st.warned = timer.warned;
        d->st.level = cdt_capture_level(d->cap);
        pthread_mutex_unlock(&d->mu);
        if (ev == CDT_REC_WARN) {
            emit(d, CDT_DICT_EV_WARN, NULL);
        } else if (ev == CDT_REC_STOP) {
            d->end = CDT_DICT_END_LIMIT;
            break;
        }
        if (cdt_capture_status(d->cap, d->cap_err, sizeof(d->cap_err)) != 0) {
            d->end = CDT_DICT_END_BROKEN;
            break;
        }
        if (feed)
            feed_eager(d, feed);
        emit(d, CDT_DICT_EV_TICK, NULL);
    }
    free(feed);
    rc = cdt_capture_stop(d->cap, &samples, &n);
    d->rec_ms = cdt_now_ms() - d->t_start;
    if (rc != 0 && d->end != CDT_DICT_END_BROKEN) {
        d->end = CDT_DICT_END_BROKEN;
        snprintf(d->cap_err, sizeof(d->cap_err), "%s", cdt_strerror(rc));
    }
    d->samples = samples;
    d->n = n;
    /* The recording is over: say so now (wait goes on from here). */
    set_state(d, d->end == CDT_DICT_END_CANCELLED ? CDT_DICT_CANCELLED : CDT_DICT_TRANSCRIBING);
    return NULL;
}

static double tier_limit(void)
{
    uint64_t ram = 0;

    if (cdt_sysinfo_total_ram(&ram) != 0)
        ram = 0;
    return cdt_limits_for_ram_gb(cdt_limits_ram_gb(ram)).recording_limit_s;
}

int cdt_dictation_start(const struct cdt_dictation_params *p, struct cdt_dictation **out,
                        char *errmsg, size_t errcap)
{
    struct cdt_dictation *d;

    *out = NULL;
    if (errcap)
        errmsg[0] = '\0';
    if (!(d = calloc(1, sizeof(*d)))) {
        free(p->source == CDT_DICT_SAMPLES ? p->samples : NULL);
        return CDT_ENOMEM;
    }
    d->p = *p;
    pthread_mutex_init(&d->mu, NULL);
    d->st.state = CDT_DICT_IDLE;
    d->st.source = p->source;
    if (p->source == CDT_DICT_SAMPLES) {
        d->samples = p->samples;
        d->n = p->n_samples;
        d->p.samples = NULL;
    }
    if ((p->source == CDT_DICT_FILE && !p->input_path) ||
        (!p->transcriber && !p->whisper.model_path)) {
        snprintf(errmsg, errcap, "no %s given",
                 p->source == CDT_DICT_FILE && !p->input_path ? "audio file" : "whisper model");
        cdt_dictation_free(d);
        return CDT_EINVAL;
    }
    if (!p->no_history) {
        struct cdt_history_params hp = cdt_history_default_params();
        char herr[900];

        hp.dir = p->history_dir;
        hp.log = p->log;
        hp.errmsg = herr;
        hp.errcap = sizeof(herr);
        if (cdt_history_new(&hp, &d->hist) != 0) {
            d->hist = NULL;
            notice(d, "no history, recordings are not kept", herr);
        }
    }
    d->st.limit_s = tier_limit();
    if (p->limit_s > 0 && p->limit_s < d->st.limit_s)
        d->st.limit_s = p->limit_s;
    if (p->source == CDT_DICT_MICROPHONE) {
        struct cdt_capture_params cp = cdt_capture_default_params();
        int rc;

        cp.device = p->device;
        cp.max_seconds = (int)d->st.limit_s + 2;
        cp.log = p->log;
        rc = cdt_capture_start(&cp, &d->cap, errmsg, errcap);
        if (rc != 0) {
            cdt_dictation_free(d);
            return rc;
        }
        if (!p->no_eager && (p->transcriber ? cdt_transcribe_has_vad(p->transcriber)
                                            : p->whisper.vad && p->whisper.vad_model_path)) {
            /* The finished pieces are refined while the user speaks (with the LLM
             * being preloaded): only the tail is left after stop. */
            if (p->refiner && p->preload_llm && cdt_refiner_ahead_new(p->refiner, &d->ahead) == 0) {
                d->p.eager.on_text = offer_ahead;
                d->p.eager.user_data = d;
            }
            if (!d->p.eager.log)
                d->p.eager.log = p->log; /* its chunks in the dictation's log */
            if (cdt_eager_new(&d->p.eager, &d->eager) != 0) {
                d->eager = NULL; /* bad params or no memory: after stop, as before */
                CDT_LOG_W(p->log, "dictation: eager transcription is off (its parameters)");
            } else if (p->transcriber && cdt_eager_start(d->eager, p->transcriber) != 0) {
                CDT_LOG_D(p->log, "dictation: eager transcription did not start");
            }
        }
        d->t_start = cdt_now_ms();
        d->st.state = CDT_DICT_RECORDING;
        if (pthread_create(&d->rec_thread, NULL, rec_main, d) != 0) {
            cdt_dictation_free(d);
            return CDT_ENOMEM;
        }
        d->rec_started = true;
        start_preload(d);
        emit(d, CDT_DICT_EV_STATE, NULL);
    }
    *out = d;
    return 0;
}

void cdt_dictation_stop(struct cdt_dictation *d)
{
    pthread_mutex_lock(&d->mu);
    d->stop_req = true;
    pthread_mutex_unlock(&d->mu);
}

void cdt_dictation_cancel(struct cdt_dictation *d)
{
    pthread_mutex_lock(&d->mu);
    d->cancel_req = true;
    /* Nothing more is transcribed nor refined, and a model call under way is
     * abandoned at once: the eager worker's whisper call is stopped, the refinement
     * ahead and the refinement after stop ask cancelled() while they wait for the
     * model (their connection closes: the sidecar cancels the generation). The
     * recording itself is complete and saved (wait saves it first). Lock order:
     * d->mu, then the eager's, then the ahead's. */
    if (d->st.state == CDT_DICT_RECORDING || d->st.state == CDT_DICT_TRANSCRIBING ||
        d->st.state == CDT_DICT_REFINING) {
        cdt_eager_cancel(d->eager);
        cdt_refiner_ahead_cancel(d->ahead);
    }
    if (d->whisper_busy) {
        cdt_transcribe_cancel(d->whisper_busy); /* an atomic store */
        d->whisper_cancelled = true;
    }
    pthread_mutex_unlock(&d->mu);
}

/* The refinement's should_stop: was the session cancelled? */
static bool cancelled(void *ud)
{
    struct cdt_dictation *d = ud;
    bool c;

    pthread_mutex_lock(&d->mu);
    c = d->cancel_req;
    pthread_mutex_unlock(&d->mu);
    return c;
}

/* Ends the eager transcription (its worker joined: t is free again). */
static void drop_eager(struct cdt_dictation *d)
{
    struct cdt_eager *e;

    pthread_mutex_lock(&d->mu);
    e = d->eager;
    d->eager = NULL;
    pthread_mutex_unlock(&d->mu);
    cdt_eager_free(e);
}

void cdt_dictation_status(struct cdt_dictation *d, struct cdt_dictation_status *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    pthread_mutex_unlock(&d->mu);
}

/* ---- the pipeline ---- */

/* The history entry of this session; its strings are borrowed. */
static void history_put(struct cdt_dictation *d, struct cdt_history_entry *e, const char *status)
{
    e->status = (char *)status;
    if (d->hist && e->id[0] && cdt_history_append(d->hist, e) != 0)
        notice(d, "could not write the history", cdt_history_errmsg(d->hist));
}

/* Finds the recording to retry. Fills e (id, time) and res->recording; *source gets
 * the entry's source (owned). */
static int find_retry(struct cdt_dictation *d, struct cdt_history_entry *e,
                      struct cdt_dictation_result *res, char **source, char *errmsg, size_t errcap)
{
    struct cdt_history_entry *v = NULL;
    size_t n = 0;

    if (!d->hist) {
        snprintf(errmsg, errcap, "no history to retry from");
        return CDT_ENOTFOUND;
    }
    if (cdt_history_list(d->hist, &v, &n, NULL) != 0) {
        snprintf(errmsg, errcap, "%s", cdt_history_errmsg(d->hist));
        return CDT_EIO;
    }
    for (size_t i = 0; i < n; i++) {
        if (d->p.retry_id && strcmp(v[i].id, d->p.retry_id) != 0)
            continue;
        if (!v[i].audio_path || access(v[i].audio_path, R_OK) != 0) {
            if (d->p.retry_id)
                break;
            continue;
        }
        memcpy(e->id, v[i].id, sizeof(e->id));
        e->time_ms = v[i].time_ms;
        res->recording = strdup(v[i].audio_path);
        *source = v[i].source ? strdup(v[i].source) : NULL;
        cdt_history_entries_free(v, n);
        return res->recording ? 0 : CDT_ENOMEM;
    }
    cdt_history_entries_free(v, n);
    if (d->p.retry_id)
        snprintf(errmsg, errcap, "no saved recording for %s in the history", d->p.retry_id);
    else
        snprintf(errmsg, errcap, "no saved recording in the history (%s)",
                 cdt_history_dir(d->hist));
    return CDT_ENOTFOUND;
}

/* Loads the input file; a cancel meanwhile stops the load (CDT_ECANCELED: nothing
 * was recorded, and the file is the user's own, untouched). */
static int load_file(struct cdt_dictation *d, const char *path, char *errmsg, size_t errcap)
{
    struct cdt_audio a;
    int rc;

    cdt_audio_init(&a);
    a.should_stop = cancelled;
    a.stop_ud = d;
    if ((rc = cdt_audio_load(&a, path)) != 0) {
        snprintf(errmsg, errcap, "%s", a.errmsg);
        cdt_audio_cleanup(&a);
        return rc == CDT_ECANCELED || cancelled(d) ? CDT_ECANCELED : CDT_EIO;
    }
    d->samples = a.samples; /* taken over */
    d->n = a.n_samples;
    a.samples = NULL;
    cdt_audio_cleanup(&a);
    return 0;
}

char *cdt_dictation_timings_json(const struct cdt_dictation_result *res)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "record_ms", round(res->record_ms));
    cJSON_AddNumberToObject(o, "whisper_wait_ms", round(res->whisper_wait_ms));
    cJSON_AddNumberToObject(o, "transcribe_ms", round(res->transcribe_ms));
    cJSON_AddNumberToObject(o, "raw_after_stop_ms", round(res->raw_after_stop_ms));
    cJSON_AddNumberToObject(o, "refine_ms", round(res->refine_ms));
    if (res->refined) {
        int n = res->refine.timings.pieces < CDT_REFINE_PIECES_TIMED ? res->refine.timings.pieces
                                                                     : CDT_REFINE_PIECES_TIMED;
        cJSON *a;

        cJSON_AddNumberToObject(o, "pieces", res->refine.timings.pieces);
        a = cJSON_AddArrayToObject(o, "piece_ms");
        for (int i = 0; a && i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(round(res->refine.timings.piece_ms[i])));
        cJSON_AddNumberToObject(o, "pieces_ahead", res->refine.timings.pieces_ahead);
        a = cJSON_AddArrayToObject(o, "piece_ahead");
        for (int i = 0; a && i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateBool(res->refine.timings.piece_ahead[i]));
    }
    cJSON_AddNumberToObject(o, "after_stop_ms", round(res->after_stop_ms));
    cJSON_AddBoolToObject(o, "eager", res->eager);
    if (res->eager) {
        cJSON *a = cJSON_AddArrayToObject(o, "chunks");

        for (size_t i = 0; a && i < res->n_chunks; i++) {
            const struct cdt_eager_chunk *c = &res->chunks[i];
            cJSON *co = cJSON_CreateObject();

            if (!co || !cJSON_AddItemToArray(a, co)) {
                cJSON_Delete(co);
                break;
            }
            cJSON_AddNumberToObject(co, "start", round(c->start * 1000) / 1000);
            cJSON_AddNumberToObject(co, "end", round(c->end * 1000) / 1000);
            cJSON_AddBoolToObject(co, "speech", c->speech);
            cJSON_AddBoolToObject(co, "forced", c->forced);
            cJSON_AddBoolToObject(co, "after_stop", c->after_stop);
            cJSON_AddNumberToObject(co, "ms", round(c->ms));
            cJSON_AddNumberToObject(co, "window_s", round(c->window_s * 100) / 100);
        }
    }
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void fail(struct cdt_dictation *d, struct cdt_dictation_result *res,
                 struct cdt_history_entry *e, const char *msg)
{
    res->state = CDT_DICT_FAILED;
    free(res->error);
    res->error = strdup(msg);
    e->error = res->error;
    history_put(d, e, "failed");
    set_state(d, CDT_DICT_FAILED);
}

int cdt_dictation_wait(struct cdt_dictation *d, struct cdt_dictation_result *res, char *errmsg,
                       size_t errcap)
{
    static const char *const source_names[] = {"microphone", "file", "file", "retry"};
    struct cdt_history_entry e;
    struct cdt_transcribe *t;
    char *retry_source = NULL, *tj = NULL;
    double t_stop, t1;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    memset(&e, 0, sizeof(e));
    cdt_transcript_init(&res->transcript);
    if (errcap)
        errmsg[0] = '\0';
    res->source = d->p.source;
    res->end = CDT_DICT_END_STOPPED;

    /* 1. The audio. */
    if (d->p.source == CDT_DICT_MICROPHONE) {
        if (d->rec_started) {
            pthread_join(d->rec_thread, NULL);
            d->rec_started = false;
        }
        cdt_capture_free(d->cap);
        d->cap = NULL;
        res->end = d->end;
        res->record_ms = d->rec_ms;
        if (d->end == CDT_DICT_END_BROKEN && !(res->capture_error = strdup(d->cap_err)))
            return CDT_ENOMEM;
    } else {
        const char *path = d->p.input_path;

        if (d->p.source == CDT_DICT_RETRY) {
            rc = find_retry(d, &e, res, &retry_source, errmsg, errcap);
            if (rc != 0)
                return rc;
            path = res->recording;
        }
        start_preload(d);
        if (d->p.source != CDT_DICT_SAMPLES) {
            char err[512];

            rc = load_file(d, path, err, sizeof(err));
            if (rc == CDT_ECANCELED) {
                res->end = CDT_DICT_END_CANCELLED; /* no audio: nothing to save */
                rc = 0;
            } else if (rc != 0) {
                snprintf(errmsg, errcap, "%s", err);
                free(retry_source);
                return rc;
            }
        }
    }
    t_stop = cdt_now_ms();

    /* 2. Keep it: the WAV and a "recorded" entry, before anything can fail. */
    e.source = d->p.source == CDT_DICT_RETRY
                   ? retry_source
                   : (char *)source_names[d->p.source < 4 ? d->p.source : 0];
    e.audio_seconds = res->audio_seconds = (double)d->n / CDT_AUDIO_RATE;
    e.whisper_model = (char *)(d->p.whisper_name ? d->p.whisper_name : d->p.whisper.model_path);
    if (d->p.source != CDT_DICT_RETRY && d->hist && d->n > 0) {
        char wav[CDT_HISTORY_PATH_MAX], err[512];

        if (cdt_history_new_id(d->hist, &e, wav, sizeof(wav)) != 0) {
            notice(d, "the recording cannot be saved", cdt_history_errmsg(d->hist));
        } else if (cdt_audio_save_wav(wav, d->samples, d->n, CDT_AUDIO_RATE, err, sizeof(err)) !=
                   0) {
            notice(d, "the recording cannot be saved", err);
        } else if (!(res->recording = strdup(wav))) {
            rc = CDT_ENOMEM;
            goto out;
        }
        e.audio_path = res->recording;
        history_put(d, &e, res->end == CDT_DICT_END_CANCELLED ? "cancelled" : "recorded");
    } else if (d->p.source == CDT_DICT_RETRY) {
        e.audio_path = res->recording;
    }
    memcpy(res->id, e.id, sizeof(res->id));
    pthread_mutex_lock(&d->mu);
    memcpy(d->st.id, e.id, sizeof(d->st.id));
    pthread_mutex_unlock(&d->mu);
    if (res->end == CDT_DICT_END_CANCELLED) {
        res->state = CDT_DICT_CANCELLED;
        set_state(d, CDT_DICT_CANCELLED);
        goto out;
    }
    if (d->n == 0) {
        fail(d, res, &e, "no audio was recorded");
        goto out;
    }

    /* 3. Transcribe (the model has been loading since the recording started). */
    set_state(d, CDT_DICT_TRANSCRIBING);
    t1 = cdt_now_ms();
    join_whisper(d);
    res->whisper_wait_ms = cdt_now_ms() - t1;
    t = d->p.transcriber ? d->p.transcriber : d->own_t;
    if (!t) {
        fail(d, res, &e, d->whisper_err[0] ? d->whisper_err : "the whisper model did not load");
        goto out;
    }
    if (d->eager) {
        /* Only the chunks not yet transcribed are left (the tail, mostly). */
        int erc = cdt_eager_finish(d->eager, t, d->samples, d->n, &res->transcript);

        if (erc == 0) {
            const struct cdt_eager_chunk *c;
            size_t nc;

            c = cdt_eager_chunks(d->eager, &nc);
            res->eager = true;
            if (nc && (res->chunks = malloc(nc * sizeof(*c))) != NULL) {
                memcpy(res->chunks, c, nc * sizeof(*c));
                res->n_chunks = nc;
            }
        } else if (!cancelled(d)) {
            CDT_LOG_W(d->p.log,
                      "dictation: eager transcription failed (%s); transcribing the whole "
                      "recording",
                      cdt_eager_errmsg(d->eager));
        }
        drop_eager(d);
    }
    if (!res->eager) {
        /* The whole recording: a cancel meanwhile stops whisper (cancel sees t). */
        bool clear;
        int trc = CDT_ECANCELED;

        pthread_mutex_lock(&d->mu);
        d->whisper_busy = d->cancel_req ? NULL : t;
        pthread_mutex_unlock(&d->mu);
        if (!cancelled(d))
            trc = cdt_transcribe_samples(t, d->samples, d->n, &res->transcript);
        pthread_mutex_lock(&d->mu);
        d->whisper_busy = NULL;
        clear = d->whisper_cancelled;
        d->whisper_cancelled = false;
        pthread_mutex_unlock(&d->mu);
        if (clear) {
            /* A cancel that reached t after its call ended would stop the next
             * user's first call (t may be the app's): an empty call clears it. */
            struct cdt_transcript none;

            cdt_transcript_init(&none);
            if (cdt_transcribe_samples(t, NULL, 0, &none) != 0)
                CDT_LOG_D(d->p.log, "dictation: the whisper cancel was cleared");
            cdt_transcript_cleanup(&none);
        }
        if (trc != 0 && !(trc == CDT_ECANCELED && cancelled(d))) {
            char msg[1024];

            snprintf(msg, sizeof(msg), "transcription failed: %s", cdt_transcribe_errmsg(t));
            fail(d, res, &e, msg);
            goto out;
        }
    }
    if (cancelled(d)) {
        /* Cancelled after stop: the recording is kept (saved above), nothing delivered. */
        res->state = CDT_DICT_CANCELLED;
        history_put(d, &e, "cancelled");
        set_state(d, CDT_DICT_CANCELLED);
        goto out;
    }
    res->transcribed = true;
    res->transcribe_ms = res->transcript.timings.total_ms;
    res->raw_after_stop_ms = cdt_now_ms() - t_stop;
    e.raw = res->transcript.text;

    /* 4. Refine. The preload may still be running: the manager serialises, and a
     * model that cannot be used falls back to the deterministic text. */
    if (d->p.refiner && res->transcript.text[0]) {
        int frc;

        set_state(d, CDT_DICT_REFINING);
        frc = cdt_refiner_run_ahead(d->p.refiner, res->transcript.text,
                                    d->p.on_event && d->p.stream_refine ? emit_delta : NULL,
                                    cancelled, d, d->ahead, &res->refine);
        if (frc == CDT_ECANCELED || (frc == 0 && cancelled(d))) {
            /* Cancelled while refining: the model call was abandoned at once; the
             * raw text stays in the history with the recording, nothing is delivered. */
            if (frc == 0)
                cdt_refine_result_cleanup(&res->refine);
            res->state = CDT_DICT_CANCELLED;
            history_put(d, &e, "cancelled");
            set_state(d, CDT_DICT_CANCELLED);
            goto out;
        }
        if (frc != 0) {
            rc = CDT_ENOMEM;
            goto out;
        }
        res->refined = true;
        res->provider = cdt_refiner_provider(d->p.refiner);
        res->refine_ms = res->refine.timings.total_ms;
    }
    res->text = res->refined ? res->refine.refined : res->transcript.text;
    e.refined = (char *)res->text;
    e.fallback_reason = res->refined ? res->refine.fallback_reason : NULL;
    e.reason_code = res->refined && res->refine.reason != CDT_REFINE_OK
                        ? (char *)cdt_refine_reason_name(res->refine.reason)
                        : NULL;
    e.model = res->refined ? res->refine.model : NULL;
    res->after_stop_ms = cdt_now_ms() - t_stop;
    tj = cdt_dictation_timings_json(res);
    e.timings_json = tj;
    res->state = CDT_DICT_DONE;
    history_put(d, &e, "done");
    set_state(d, CDT_DICT_DONE);

out:
    /* Whatever the refinement took, nothing more is refined ahead (a transcript
     * delivered whole, already clean, or a failure never asked it to stop). */
    cdt_refiner_ahead_cancel(d->ahead);
    join_whisper(d);
    drop_eager(d); /* cancelled or failed: t is free when wait returns */
    join_llm(d);
    free(tj);
    free(retry_source);
    return rc;
}

void cdt_dictation_result_cleanup(struct cdt_dictation_result *res)
{
    if (res->refined)
        cdt_refine_result_cleanup(&res->refine);
    cdt_transcript_cleanup(&res->transcript);
    free(res->recording);
    free(res->capture_error);
    free(res->error);
    free(res->chunks);
    memset(res, 0, sizeof(*res));
}

struct cdt_transcribe *cdt_dictation_take_transcriber(struct cdt_dictation *d)
{
    struct cdt_transcribe *t;

    join_whisper(d);
    t = d->own_t;
    d->own_t = NULL;
    return t;
}

void cdt_dictation_free(struct cdt_dictation *d)
{
    if (!d)
        return;
    if (d->rec_started) {
        cdt_dictation_cancel(d);
        pthread_join(d->rec_thread, NULL);
    }
    cdt_capture_free(d->cap);
    join_whisper(d);
    drop_eager(d); /* before the transcriber it uses, and the ahead it offers to */
    cdt_refiner_ahead_free(d->ahead);
    join_llm(d);
    cdt_transcribe_free(d->own_t);
    cdt_history_free(d->hist);
    free(d->samples);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
