/* Microphone capture through the PulseAudio simple API (libpulse-simple), which
 * PipeWire serves too through pipewire-pulse. The server converts the source to
 * 16 kHz mono float; we ask for CDT_CAPTURE_CHUNK_MS fragments so a blocking
 * pa_simple_read returns every chunk and the thread sees a stop request promptly.
 *
 * Invariants: one capture thread per handle owns the pa_simple from start to its
 * exit (pa_simple is not safe for concurrent use) and frees it itself. Everything
 * else the thread shares with the caller (buffer, level, status, flags) is under
 * `mu`. The handle is reference-counted between the caller and the thread, so a
 * stop that gives up waiting on a stalled stream can detach the thread, which
 * frees the handle when its read finally returns. The samples are moved out at
 * stop, never copied, and never dropped on a stream error. */
#include "codictate/capture.h"
#include "err_int.h"

#include "codictate/audio.h"
#include "codictate/log.h"
#include "codictate/util.h"

#include <pulse/error.h>
#include <pulse/simple.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_SAMPLES (CDT_AUDIO_RATE * CDT_CAPTURE_CHUNK_MS / 1000)
#define LEVEL_CHUNKS  (CDT_CAPTURE_LEVEL_MS / CDT_CAPTURE_CHUNK_MS)
#define INITIAL_CAP   (CDT_AUDIO_RATE * 10) /* samples allocated at start: 10 s */
#define DEFAULT_APP   "codictate"
#define STREAM_NAME   "Dictation"
#define MAX_ERRMSG    512

struct cdt_capture {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when the thread is done; CLOCK_MONOTONIC */
    pthread_t thread;
    pa_simple *pa;       /* the thread's from start until it exits */
    struct cdt_log *log; /* borrowed */
    char device[CDT_CAPTURE_MAX_NAME + 1];
    int refs;          /* 2 while the thread runs (caller + thread), then 1 */
    bool stop;         /* the caller asked the thread to stop */
    bool done;         /* the thread left its loop and freed pa */
    bool handed;       /* the samples were moved out by stop; later chunks are dropped */
    bool thread_owned; /* joined or detached: the caller no longer owns the thread */
    bool capped;       /* max_samples reached (logged once) */
    float *buf;        /* captured samples, 16 kHz mono */
    size_t len, cap;   /* samples */
    size_t max_samples;
    float peaks[LEVEL_CHUNKS]; /* peak |x| of the latest chunks, a ring */
    unsigned peak_i;
    int status;              /* 0, or why the stream ended */
    char errmsg[MAX_ERRMSG]; /* for status */
};

struct cdt_capture_params cdt_capture_default_params(void)
{
    struct cdt_capture_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

static void capture_destroy(struct cdt_capture *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->buf);
    free(c);
}

/* Drops one reference; the last one frees. Called with mu held; unlocks it. */
static void unref_unlock(struct cdt_capture *c)
{
    bool last = --c->refs == 0;

    pthread_mutex_unlock(&c->mu);
    if (last)
        capture_destroy(c);
}

/* Appends a chunk under mu, growing geometrically up to max_samples. */
static int store(struct cdt_capture *c, const float *x, size_t n)
{
    if (c->len + n > c->max_samples) {
        if (!c->capped) {
            c->capped = true;
            CDT_LOG_W(c->log, "recording reached its %zu s limit; later audio is not kept",
                      c->max_samples / CDT_AUDIO_RATE);
        }
        n = c->max_samples - c->len;
    }
    if (c->len + n > c->cap) {
        size_t ncap = c->cap ? c->cap : INITIAL_CAP;
        float *p;

        while (ncap < c->len + n)
            ncap *= 2;
        if (ncap > c->max_samples)
            ncap = c->max_samples;
        p = realloc(c->buf, ncap * sizeof(float));
        if (!p)
            return CDT_ENOMEM;
        c->buf = p;
        c->cap = ncap;
    }
    memcpy(c->buf + c->len, x, n * sizeof(float));
    c->len += n;
    return 0;
}

static int map_pa_error(int err)
{
    switch (err) {
    case PA_ERR_CONNECTIONREFUSED:
    case PA_ERR_INVALIDSERVER:
    case PA_ERR_CONNECTIONTERMINATED:
    case PA_ERR_TIMEOUT:
    case PA_ERR_PROTOCOL:
    case PA_ERR_VERSION:
    case PA_ERR_NOTSUPPORTED:
        return CDT_EUNSUPPORTED;
    case PA_ERR_NOENTITY:
        return CDT_ENOTFOUND;
    case PA_ERR_ACCESS:
    case PA_ERR_AUTHKEY:
        return CDT_EPERM;
    case PA_ERR_INVALID:
        return CDT_EINVAL;
    default:
        return CDT_EIO;
    }
}

static void *capture_main(void *arg)
{
    struct cdt_capture *c = arg;
    float chunk[CHUNK_SAMPLES];

    for (;;) {
        int perr = 0, rc;
        float peak = 0.0f;

        pthread_mutex_lock(&c->mu);
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        pthread_mutex_unlock(&c->mu);

        rc = pa_simple_read(c->pa, chunk, sizeof(chunk), &perr);

        pthread_mutex_lock(&c->mu);
        if (rc < 0) {
            /* After a stop request a failing read is the caller's doing, not news. */
            if (!c->stop) {
                c->status = CDT_EIO;
                cdt__errmsg_set(c->errmsg, sizeof(c->errmsg), 0,
                                "recording stopped: the sound server stream broke (%s); the %.1f s "
                                "recorded so far are kept",
                                pa_strerror(perr), (double)c->len / CDT_AUDIO_RATE);
                CDT_LOG_W(c->log, "%s", c->errmsg);
            }
            pthread_mutex_unlock(&c->mu);
            break;
        }
        for (size_t i = 0; i < CHUNK_SAMPLES; i++) {
            float a = chunk[i] < 0 ? -chunk[i] : chunk[i];

            if (a > peak)
                peak = a;
        }
        c->peaks[c->peak_i++ % LEVEL_CHUNKS] = peak > 1.0f ? 1.0f : peak;
        /* The chunk in flight when stop was asked is the user's last words: keep it,
         * unless the samples were already handed over. */
        if (!c->handed && store(c, chunk, CHUNK_SAMPLES) != 0) {
            c->status = CDT_ENOMEM;
            cdt__errmsg_set(c->errmsg, sizeof(c->errmsg), 0,
                            "recording stopped: out of memory after %.1f s; that much is kept",
                            (double)c->len / CDT_AUDIO_RATE);
            CDT_LOG_E(c->log, "%s", c->errmsg);
            pthread_mutex_unlock(&c->mu);
            break;
        }
        pthread_mutex_unlock(&c->mu);
    }

    pa_simple_free(c->pa);
    pthread_mutex_lock(&c->mu);
    c->pa = NULL;
    c->done = true;
    memset(c->peaks, 0, sizeof(c->peaks));
    pthread_cond_broadcast(&c->cv);
    unref_unlock(c);
    return NULL;
}

int cdt_capture_start(const struct cdt_capture_params *p, struct cdt_capture **out, char *errmsg,
                      size_t errcap)
{
    struct cdt_capture_params d = cdt_capture_default_params();
    struct cdt_capture *c;
    pthread_condattr_t ca;
    pa_sample_spec ss;
    pa_buffer_attr attr;
    const char *app;
    int perr = 0, rc;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (!out)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "capture: no output handle");
    *out = NULL;
    if (!p)
        p = &d;
    app = p->app_name && *p->app_name ? p->app_name : DEFAULT_APP;
    if (p->max_seconds < 0 || p->max_seconds > CDT_AUDIO_MAX_SECONDS)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "capture: max_seconds %d is outside 0..%d (CDT_AUDIO_MAX_SECONDS)",
                               p->max_seconds, CDT_AUDIO_MAX_SECONDS);
    if ((p->device && strlen(p->device) > CDT_CAPTURE_MAX_NAME) ||
        strlen(app) > CDT_CAPTURE_MAX_NAME)
        return cdt__errmsg_set(
            errmsg, errcap, CDT_EINVAL,
            "capture: device or app name is over %d bytes (CDT_CAPTURE_MAX_NAME)",
            CDT_CAPTURE_MAX_NAME);

    c = calloc(1, sizeof(*c));
    if (!c)
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "capture: out of memory");
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "capture: cannot create a mutex");
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM,
                               "capture: cannot create a condition variable");
    }
    c->log = p->log;
    c->refs = 1;
    c->max_samples =
        (size_t)(p->max_seconds ? p->max_seconds : CDT_AUDIO_MAX_SECONDS) * CDT_AUDIO_RATE;
    if (p->device && *p->device)
        snprintf(c->device, sizeof(c->device), "%s", p->device);

    ss.format = PA_SAMPLE_FLOAT32NE;
    ss.rate = CDT_AUDIO_RATE;
    ss.channels = 1;
    /* The server's default record fragment is 2 s; ask for one chunk so reads return
     * (and stop is noticed) every CDT_CAPTURE_CHUNK_MS. */
    attr.maxlength = (uint32_t)-1;
    attr.tlength = (uint32_t)-1;
    attr.prebuf = (uint32_t)-1;
    attr.minreq = (uint32_t)-1;
    attr.fragsize = (uint32_t)(CHUNK_SAMPLES * sizeof(float));
    c->pa = pa_simple_new(NULL, app, PA_STREAM_RECORD, c->device[0] ? c->device : NULL, STREAM_NAME,
                          &ss, NULL, &attr, &perr);
    if (!c->pa) {
        const char *server = getenv("PULSE_SERVER");

        rc = map_pa_error(perr);
        if (rc == CDT_EUNSUPPORTED)
            cdt__errmsg_set(errmsg, errcap, rc,
                            "cannot connect to the sound server (PulseAudio/PipeWire): %s; is one "
                            "running? %s%s",
                            pa_strerror(perr),
                            server ? "PULSE_SERVER=" : "(PULSE_SERVER is not set)",
                            server ? server : "");
        else if (rc == CDT_ENOTFOUND && c->device[0])
            cdt__errmsg_set(
                errmsg, errcap, rc,
                "no audio source named '%s' (list them with `pactl list short sources`)",
                c->device);
        else if (rc == CDT_ENOTFOUND)
            cdt__errmsg_set(errmsg, errcap, rc,
                            "the sound server has no audio source (no microphone?)");
        else
            cdt__errmsg_set(errmsg, errcap, rc, "cannot record from %s: %s",
                            c->device[0] ? c->device : "the default source", pa_strerror(perr));
        CDT_LOG_D(c->log, "capture: pa_simple_new failed: %s", pa_strerror(perr));
        capture_destroy(c);
        return rc;
    }

    c->refs = 2;
    rc = pthread_create(&c->thread, NULL, capture_main, c);
    if (rc != 0) {
        pa_simple_free(c->pa);
        capture_destroy(c);
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "capture: cannot start a thread: %s",
                               strerror(rc));
    }
    CDT_LOG_I(c->log, "recording from %s (16 kHz mono)",
              c->device[0] ? c->device : "the default source");
    *out = c;
    return 0;
}

double cdt_capture_seconds(struct cdt_capture *c)
{
    double s;

    if (!c)
        return 0.0;
    pthread_mutex_lock(&c->mu);
    s = (double)c->len / CDT_AUDIO_RATE;
    pthread_mutex_unlock(&c->mu);
    return s;
}

float cdt_capture_level(struct cdt_capture *c)
{
    float peak = 0.0f;

    if (!c)
        return 0.0f;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < LEVEL_CHUNKS; i++)
        if (c->peaks[i] > peak)
            peak = c->peaks[i];
    pthread_mutex_unlock(&c->mu);
    return peak;
}

size_t cdt_capture_copy(struct cdt_capture *c, size_t from, float *dst, size_t cap)
{
    size_t n = 0;

    if (!c || !dst)
        return 0;
    pthread_mutex_lock(&c->mu);
    if (!c->handed && from < c->len) {
        n = c->len - from < cap ? c->len - from : cap;
        memcpy(dst, c->buf + from, n * sizeof(float));
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

int cdt_capture_status(struct cdt_capture *c, char *errmsg, size_t errcap)
{
    int rc;

    if (!c)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "capture: no handle");
    pthread_mutex_lock(&c->mu);
    rc = c->status;
    if (errmsg && errcap)
        snprintf(errmsg, errcap, "%s", rc ? c->errmsg : "");
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Asks the thread to stop and waits up to CDT_CAPTURE_STOP_WAIT_MS; then joins it,
 * or detaches it when its read is stuck (it frees itself). Called with mu held. */
static void halt_locked(struct cdt_capture *c)
{
    struct timespec until;

    if (c->thread_owned)
        return;
    c->stop = true;
    until = cdt_ms_to_timespec(cdt_now_ms() + CDT_CAPTURE_STOP_WAIT_MS);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
            break;
    c->thread_owned = true;
    if (c->done) {
        /* The thread is past its last use of c but for unlocking mu. */
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
        pthread_mutex_lock(&c->mu);
    } else {
        CDT_LOG_W(c->log, "capture: the stream delivered nothing for %d ms; stopped without it",
                  CDT_CAPTURE_STOP_WAIT_MS);
        pthread_detach(c->thread);
    }
}

int cdt_capture_stop(struct cdt_capture *c, float **samples, size_t *n)
{
    int rc;

    if (samples)
        *samples = NULL;
    if (n)
        *n = 0;
    if (!c || !samples || !n)
        return CDT_EINVAL;
    pthread_mutex_lock(&c->mu);
    if (c->handed) {
        pthread_mutex_unlock(&c->mu);
        return CDT_ESTATE;
    }
    halt_locked(c);
    c->handed = true;
    if (c->len) {
        /* Give back the slack of the geometric growth; keep the big block if that fails. */
        float *p = realloc(c->buf, c->len * sizeof(float));

        *samples = p ? p : c->buf;
        *n = c->len;
    } else {
        free(c->buf);
    }
    c->buf = NULL;
    c->len = c->cap = 0;
    rc = c->status;
    pthread_mutex_unlock(&c->mu);
    CDT_LOG_D(c->log, "capture: stopped with %.2f s", (double)*n / CDT_AUDIO_RATE);
    return rc;
}

void cdt_capture_free(struct cdt_capture *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    halt_locked(c);
    c->handed = true; /* a detached thread must not store any more */
    unref_unlock(c);
}
