/* Audio files: decode a file (WAV, FLAC, OGG/Vorbis, Opus, MP3 — whatever
 * libsndfile reads) to 16 kHz mono float PCM, the format whisper.cpp takes,
 * resampling with libsoxr; and save a recording as a 16-bit WAV.
 *
 * Usage: struct cdt_audio a; cdt_audio_init(&a); rc = cdt_audio_load(&a, path);
 * ... a.samples ...; cdt_audio_cleanup(&a). Not thread-safe per object. */
#ifndef CODICTATE_AUDIO_H
#define CODICTATE_AUDIO_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_AUDIO_RATE        16000 /* output sample rate, Hz */
#define CDT_AUDIO_MAX_SECONDS 14400 /* longest input accepted, seconds (4 h) */

struct cdt_audio {
    float *samples;   /* 16 kHz mono PCM in [-1, 1]; owned, freed by cleanup */
    size_t n_samples; /* number of samples */
    int source_rate;  /* the file's sample rate, Hz */
    int source_channels;
    char errmsg[256]; /* why the last call failed, for people */
    /* Optional: asked between blocks of a load (every 8192 frames); true stops it
     * with CDT_ECANCELED and no samples. Set after cdt_audio_init. */
    bool (*should_stop)(void *ud);
    void *stop_ud;
};

void cdt_audio_init(struct cdt_audio *a);

/* Frees the samples; the struct can be loaded again. */
void cdt_audio_cleanup(struct cdt_audio *a);

/* Decodes `path` into a->samples (replacing what was there). Returns 0,
 * CDT_ENOTFOUND (no such file), CDT_EFORMAT (not audio libsndfile can read, or
 * corrupt), CDT_ETOOBIG (longer than CDT_AUDIO_MAX_SECONDS), CDT_ECANCELED
 * (a->should_stop said so), CDT_ENOMEM, or CDT_EIO; a->errmsg says what happened. */
CDT_NODISCARD int cdt_audio_load(struct cdt_audio *a, const char *path);

/* Writes n mono samples at `rate` Hz to `path` as a 16-bit PCM WAV (libsndfile),
 * clamping them to [-1, 1]. The file is written to a hidden temp file in the same
 * directory, fsync'd, then renamed over `path`, so a crash never leaves a partial
 * file under the name; the result has mode 0600. Returns 0, CDT_ENOSPACE (disk or
 * quota full), CDT_EPERM (not allowed, read-only file system), CDT_ENOTFOUND (the
 * directory does not exist), CDT_EINVAL (bad arguments: rate outside 1000..768000),
 * CDT_ETOOBIG (over CDT_AUDIO_MAX_SECONDS), CDT_ENOMEM or CDT_EIO; errmsg (may be
 * NULL) gets at most errcap bytes of a message naming the path. Thread-safe. */
CDT_NODISCARD int cdt_audio_save_wav(const char *path, const float *samples, size_t n, int rate,
                                     char *errmsg, size_t errcap);

/* Duration in seconds of the loaded samples. */
double cdt_audio_duration(const struct cdt_audio *a);

#ifdef __cplusplus
}
#endif
#endif
