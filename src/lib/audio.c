/* Audio decoding with libsndfile (which reads WAV, FLAC, Ogg Vorbis/Opus and, since
 * 1.1, MP3 through libmpg123), down-mixing to mono, and resampling to 16 kHz with
 * libsoxr at high quality. The file is read in blocks and resampled as it streams,
 * so memory stays at the output size plus one block. */
#include "codictate/audio.h"

#include <errno.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CDT_AUDIO_BLOCK 8192 /* frames decoded per read */

void cdt_audio_init(struct cdt_audio *a)
{
    memset(a, 0, sizeof(*a));
}

void cdt_audio_cleanup(struct cdt_audio *a)
{
    free(a->samples);
    a->samples = NULL;
    a->n_samples = 0;
}

double cdt_audio_duration(const struct cdt_audio *a)
{
    return (double)a->n_samples / CDT_AUDIO_RATE;
}

static int fail(struct cdt_audio *a, int rc, const char *fmt, ...) CDT_PRINTF(3, 4);

static int fail(struct cdt_audio *a, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(a->errmsg, sizeof(a->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

/* Appends n samples to out, growing it geometrically. */
static int append(float **out, size_t *len, size_t *cap, const float *src, size_t n)
{
    if (*len + n > *cap) {
        size_t ncap = *cap ? *cap : 16000;
        float *p;

        while (ncap < *len + n)
            ncap *= 2;
        p = realloc(*out, ncap * sizeof(float));
        if (!p)
            return CDT_ENOMEM;
        *out = p;
        *cap = ncap;
    }
    memcpy(*out + *len, src, n * sizeof(float));
    *len += n;
    return 0;
}

int cdt_audio_load(struct cdt_audio *a, const char *path)
{
    SF_INFO info;
    SNDFILE *sf;
    soxr_t rs = NULL;
    float *block = NULL, *mono = NULL, *rsout = NULL, *out = NULL;
    size_t len = 0, cap = 0, rsout_cap = 0;
    struct stat st;
    int rc = 0;

    cdt_audio_cleanup(a);
    a->errmsg[0] = '\0';
    if (!path || !*path)
        return fail(a, CDT_EINVAL, "no audio file given");
    if (stat(path, &st) != 0)
        return fail(a, errno == ENOENT ? CDT_ENOTFOUND : CDT_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return fail(a, CDT_EFORMAT, "%s: is a directory, not an audio file", path);

    memset(&info, 0, sizeof(info));
    sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        return fail(a, CDT_EFORMAT, "%s: not a readable audio file (%s)", path, sf_strerror(NULL));
    if (info.channels < 1 || info.channels > 64 || info.samplerate < 1000 ||
        info.samplerate > 768000) {
        sf_close(sf);
        return fail(a, CDT_EFORMAT, "%s: unsupported audio (%d channels at %d Hz)", path,
                    info.channels, info.samplerate);
    }
    if (info.frames > 0 && info.frames / info.samplerate > CDT_AUDIO_MAX_SECONDS) {
        sf_close(sf);
        return fail(a, CDT_ETOOBIG, "%s: %lld s of audio is over the %d s limit", path,
                    (long long)(info.frames / info.samplerate), CDT_AUDIO_MAX_SECONDS);
    }
    a->source_rate = info.samplerate;
    a->source_channels = info.channels;

    block = malloc((size_t)CDT_AUDIO_BLOCK * (size_t)info.channels * sizeof(float));
    mono = malloc(CDT_AUDIO_BLOCK * sizeof(float));
    if (!block || !mono) {
        rc = fail(a, CDT_ENOMEM, "out of memory decoding %s", path);
        goto done;
    }
    if (info.samplerate != CDT_AUDIO_RATE) {
        soxr_error_t err = NULL;
        soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);

        rs = soxr_create(info.samplerate, CDT_AUDIO_RATE, 1, &err, NULL, &q, NULL);
        if (!rs || err) {
            rc = fail(a, CDT_EIO, "resampler: %s", err ? err : "cannot create");
            goto done;
        }
        rsout_cap = (size_t)((double)CDT_AUDIO_BLOCK * CDT_AUDIO_RATE / info.samplerate) + 64;
        rsout = malloc(rsout_cap * sizeof(float));
        if (!rsout) {
            rc = fail(a, CDT_ENOMEM, "out of memory decoding %s", path);
            goto done;
        }
    }

    for (;;) {
        sf_count_t got = sf_readf_float(sf, block, CDT_AUDIO_BLOCK);
        int last = got <= 0;

        for (sf_count_t i = 0; i < got; i++) {
            float sum = 0.0f;

            for (int c = 0; c < info.channels; c++)
                sum += block[i * info.channels + c];
            mono[i] = sum / (float)info.channels;
        }
        if (rs) {
            /* Feed the block until soxr took all of it; at the end, NULL input
             * flushes the filter's tail. */
            const float *in = mono;
            size_t left = last ? 0 : (size_t)got;

            do {
                size_t done_in = 0, produced = 0;
                soxr_error_t err = soxr_process(rs, last ? NULL : in, left, last ? NULL : &done_in,
                                                rsout, rsout_cap, &produced);
                if (err) {
                    rc = fail(a, CDT_EIO, "resampler: %s", err);
                    goto done;
                }
                if (produced && (rc = append(&out, &len, &cap, rsout, produced)) != 0) {
                    fail(a, rc, "out of memory decoding %s", path);
                    goto done;
                }
                if (!last && done_in == 0 && produced == 0) {
                    rc = fail(a, CDT_EIO, "resampler made no progress on %s", path);
                    goto done;
                }
                in += done_in;
                left -= done_in;
                if (last ? produced == 0 : left == 0)
                    break;
            } while (1);
        } else if (got > 0 && (rc = append(&out, &len, &cap, mono, (size_t)got)) != 0) {
            fail(a, rc, "out of memory decoding %s", path);
            goto done;
        }
        if (last)
            break;
        if (len / CDT_AUDIO_RATE > CDT_AUDIO_MAX_SECONDS) {
            rc = fail(a, CDT_ETOOBIG, "%s: over the %d s audio limit", path, CDT_AUDIO_MAX_SECONDS);
            goto done;
        }
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        rc = fail(a, CDT_EFORMAT, "%s: decoding failed: %s", path, sf_strerror(sf));
        goto done;
    }
    a->samples = out;
    a->n_samples = len;
    out = NULL;

done:
    free(out);
    free(rsout);
    free(mono);
    free(block);
    soxr_delete(rs);
    sf_close(sf);
    return rc;
}
