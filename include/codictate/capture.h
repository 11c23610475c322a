/* Microphone capture: records from the sound server (PulseAudio, or PipeWire
 * through pipewire-pulse) as 16 kHz mono float PCM in [-1, 1], the format
 * whisper.cpp takes; the server converts and resamples.
 *
 * Usage:
 *   struct cdt_capture_params p = cdt_capture_default_params();
 *   rc = cdt_capture_start(&p, &c, errmsg, sizeof(errmsg));
 *   ... show cdt_capture_level(c) and cdt_capture_seconds(c); poll cdt_capture_status(c) ...
 *   rc = cdt_capture_stop(c, &samples, &n);   (samples handed over even when rc < 0)
 *   cdt_capture_free(c); ... free(samples);
 *
 * A capture thread reads the stream in CDT_CAPTURE_CHUNK_MS chunks from start until
 * stop. Thread-safety: seconds, level and status may be called from any thread
 * while the capture runs; start, stop and free are for the owning thread. */
#ifndef CODICTATE_CAPTURE_H
#define CODICTATE_CAPTURE_H

#include "codictate/err.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_CAPTURE_CHUNK_MS     50  /* read granularity, ms (how stale stop and level can be) */
#define CDT_CAPTURE_LEVEL_MS     100 /* window of cdt_capture_level, ms */
#define CDT_CAPTURE_STOP_WAIT_MS 300 /* longest cdt_capture_stop waits for a stalled stream, ms */
#define CDT_CAPTURE_MAX_NAME     256 /* longest device / app name accepted, bytes */

struct cdt_log;
struct cdt_capture;

struct cdt_capture_params {
    const char *device;   /* source name (as `pactl list short sources` shows it), copied;
                             NULL: the server's default source */
    const char *app_name; /* shown by the sound server, copied; NULL: "codictate" */
    int max_seconds;      /* stop storing after this many seconds of audio (the stream
                             is still drained, the level stays live); 0: CDT_AUDIO_MAX_SECONDS,
                             which is also the most accepted */
    struct cdt_log *log;  /* borrowed until cdt_capture_free; may be NULL */
};

struct cdt_capture_params cdt_capture_default_params(void);

/* Connects to the sound server and starts a capture thread reading 16 kHz mono
 * float. Returns 0 and *out (free with cdt_capture_free), or:
 *   CDT_EUNSUPPORTED  no sound server reachable (none running, PULSE_SERVER wrong),
 *   CDT_ENOTFOUND     no source named p->device,
 *   CDT_EPERM         the server refused access,
 *   CDT_EINVAL        bad params (max_seconds < 0 or over CDT_AUDIO_MAX_SECONDS, name
 *                     over CDT_CAPTURE_MAX_NAME),
 *   CDT_ENOMEM, CDT_EIO  anything else.
 * On failure *out is NULL and errmsg (may be NULL) gets at most errcap bytes of a
 * message for people, e.g. "cannot connect to the sound server (PulseAudio/PipeWire):
 * Connection refused; is one running? PULSE_SERVER=unix:/x". */
CDT_NODISCARD int cdt_capture_start(const struct cdt_capture_params *p, struct cdt_capture **out,
                                    char *errmsg, size_t errcap);

/* Seconds of audio captured so far (stops growing at max_seconds). Thread-safe. */
double cdt_capture_seconds(struct cdt_capture *c);

/* Peak |x| of the last ~CDT_CAPTURE_LEVEL_MS of audio, 0..1; 0 before the first
 * chunk and after the stream ended. Thread-safe. */
float cdt_capture_level(struct cdt_capture *c);

/* Copies up to cap samples captured so far, from sample index `from` on, into dst;
 * returns how many (0 when there are none past `from` yet, and after stop). Lets a
 * reader follow the recording while it grows (eager transcription) without taking
 * it over. Thread-safe. */
size_t cdt_capture_copy(struct cdt_capture *c, size_t from, float *dst, size_t cap);

/* 0 while the stream is fine; once it broke (server died, device gone, out of
 * memory) the error code, and errmsg (may be NULL) gets at most errcap bytes of
 * why. The samples so far are kept. Thread-safe. */
CDT_NODISCARD int cdt_capture_status(struct cdt_capture *c, char *errmsg, size_t errcap);

/* Stops the capture and hands over everything captured: *samples (16 kHz mono;
 * caller frees with free(); NULL when n is 0) and *n. Returns 0, or the stream's
 * error (see cdt_capture_status) — the samples are handed over all the same.
 * Returns within about CDT_CAPTURE_CHUNK_MS, at most CDT_CAPTURE_STOP_WAIT_MS when
 * the stream delivers nothing (the blocked reader then cleans up by itself when
 * the stream moves or the connection closes). Call once; a second call returns
 * CDT_ESTATE with nothing. */
CDT_NODISCARD int cdt_capture_stop(struct cdt_capture *c, float **samples, size_t *n);

/* Stops if still running (dropping the samples) and frees; NULL is a no-op. */
void cdt_capture_free(struct cdt_capture *c);

#ifdef __cplusplus
}
#endif
#endif
