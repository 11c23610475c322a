/* Audio decoding with libsndfile (which reads WAV, FLAC, Ogg Vorbis/Opus and, since
 * 1.1, MP3 through libmpg123), down-mixing to mono, and resampling to 16 kHz with
 * libsoxr at high quality. The file is read in blocks and resampled as it streams,
 * so memory stays at the output size plus one block.
 *
 * Saving goes the other way for recordings: 16-bit WAV through libsndfile's
 * virtual I/O (so a failed write keeps its errno: a full disk is told apart from
 * other failures), into a temp file that is fsync'd and renamed over the name. */
#include "codictate/audio.h"
#include "err_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CDT_AUDIO_BLOCK 8192   /* frames decoded per read, and samples encoded per write */
#define WAV_MIN_RATE    1000   /* Hz */
#define WAV_MAX_RATE    768000 /* Hz */

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

/* A sample in [-1, 1]: NaN and infinity are silence, beyond full scale is full scale. */
static float unit(float v)
{
    return !isfinite(v) ? 0.0f : v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
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
    if (!sf) {
        const char *why = sf_strerror(NULL);

        /* libsndfile says "does not exist … (possibly a pipe?)" for a file it cannot
         * identify; the file exists: say what it is not. */
        if (strstr(why, "does not exist") || strstr(why, "possibly a pipe"))
            why = "not WAV, FLAC, Ogg (Vorbis, Opus) or MP3";
        return fail(a, CDT_EFORMAT, "%s: not a readable audio file (%s)", path, why);
    }
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
            /* A float file may hold NaN, infinity or values far outside [-1, 1]:
             * silence and full scale, not poison for the resampler and whisper. */
            mono[i] = unit(sum / (float)info.channels);
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
        /* Also after the last block: a cancel may have cut the last read short (a
         * signal), and partial audio is never delivered. */
        if (a->should_stop && a->should_stop(a->stop_ud)) {
            rc = fail(a, CDT_ECANCELED, "%s: loading stopped (cancelled)", path);
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
    /* The resampler's filter rings past full scale on a loud edge: the samples are
     * in [-1, 1] as audio.h promises. */
    for (size_t i = 0; rs && i < len; i++)
        out[i] = unit(out[i]);
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

static int errno_rc(int e)
{
    return e == ENOENT || e == ENOTDIR ? CDT_ENOTFOUND : cdt__err_from_errno(e);
}

/* libsndfile virtual I/O on a file descriptor that remembers the first errno. */
struct wav_io {
    int fd;
    int err;
};

static sf_count_t vio_filelen(void *user)
{
    struct wav_io *io = user;
    struct stat st;

    if (fstat(io->fd, &st) != 0) {
        io->err = io->err ? io->err : errno;
        return -1;
    }
    return (sf_count_t)st.st_size;
}

static sf_count_t vio_seek(sf_count_t off, int whence, void *user)
{
    struct wav_io *io = user;
    off_t r = lseek(io->fd, (off_t)off, whence);

    if (r < 0)
        io->err = io->err ? io->err : errno;
    return (sf_count_t)r;
}

static sf_count_t vio_read(void *ptr, sf_count_t count, void *user)
{
    struct wav_io *io = user;
    sf_count_t got = 0;

    while (got < count) {
        ssize_t r = read(io->fd, (char *)ptr + got, (size_t)(count - got));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            io->err = io->err ? io->err : errno;
        if (r <= 0)
            break;
        got += r;
    }
    return got;
}

static sf_count_t vio_write(const void *ptr, sf_count_t count, void *user)
{
    struct wav_io *io = user;
    sf_count_t put = 0;

    while (put < count) {
        ssize_t r = write(io->fd, (const char *)ptr + put, (size_t)(count - put));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            io->err = io->err ? io->err : (r < 0 ? errno : EIO);
            break;
        }
        put += r;
    }
    return put;
}

static sf_count_t vio_tell(void *user)
{
    return vio_seek(0, SEEK_CUR, user);
}

static short to_pcm16(float x)
{
    /* 32768 is libsndfile's read scale for 16-bit, so a round trip is within half a step. */
    float v = x * 32768.0f;

    if (isnan(v))
        return 0;
    if (v >= 32767.0f)
        return 32767;
    if (v <= -32768.0f)
        return -32768;
    return (short)lrintf(v);
}

/* Fills *rc and errmsg from errno e for a failure writing path. */
static int write_err(char *errmsg, size_t errcap, const char *path, const char *what, int e)
{
    int rc = errno_rc(e);

    if (rc == CDT_ENOSPACE)
        return cdt__errmsg_set(errmsg, errcap, rc, "cannot save %s: %s (%s; free some space)", path,
                               what, strerror(e));
    if (rc == CDT_ENOTFOUND)
        return cdt__errmsg_set(errmsg, errcap, rc,
                               "cannot save %s: its directory does not exist (%s)", path,
                               strerror(e));
    return cdt__errmsg_set(errmsg, errcap, rc, "cannot save %s: %s (%s)", path, what, strerror(e));
}

int cdt_audio_save_wav(const char *path, const float *samples, size_t n, int rate, char *errmsg,
                       size_t errcap)
{
    SF_VIRTUAL_IO vio = {vio_filelen, vio_seek, vio_read, vio_write, vio_tell};
    struct wav_io io = {-1, 0};
    SF_INFO info;
    SNDFILE *sf = NULL;
    short *pcm = NULL;
    char *tmp = NULL;
    const char *base, *slash;
    size_t dirlen;
    int rc = 0, dfd;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (!path || !*path)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "no file name to save the audio to");
    if (!samples && n)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "cannot save %s: no samples", path);
    if (rate < WAV_MIN_RATE || rate > WAV_MAX_RATE)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "cannot save %s: sample rate %d Hz is outside %d..%d", path, rate,
                               WAV_MIN_RATE, WAV_MAX_RATE);
    if (n / (size_t)rate > CDT_AUDIO_MAX_SECONDS)
        return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG,
                               "cannot save %s: %zu s of audio is over the %d s limit", path,
                               n / (size_t)rate, CDT_AUDIO_MAX_SECONDS);
    slash = strrchr(path, '/');
    base = slash ? slash + 1 : path;
    if (!*base)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "cannot save %s: that is a directory name", path);

    /* "<dir>/.<base>.XXXXXX": same directory (so rename is atomic), hidden. */
    dirlen = (size_t)(base - path);
    tmp = malloc(strlen(path) + 16);
    pcm = malloc(CDT_AUDIO_BLOCK * sizeof(short));
    if (!tmp || !pcm) {
        rc = cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "cannot save %s: out of memory", path);
        goto done;
    }
    memcpy(tmp, path, dirlen);
    sprintf(tmp + dirlen, ".%s.XXXXXX", base);
    io.fd = mkostemp(tmp, O_CLOEXEC);
    if (io.fd < 0) {
        rc = write_err(errmsg, errcap, path, "cannot create a file there", errno);
        free(tmp);
        tmp = NULL; /* nothing to unlink */
        goto done;
    }
    if (fchmod(io.fd, 0600) != 0) {
        rc = write_err(errmsg, errcap, path, "cannot set its mode", errno);
        goto done;
    }

    memset(&info, 0, sizeof(info));
    info.samplerate = rate;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    sf = sf_open_virtual(&vio, SFM_WRITE, &info, &io);
    if (!sf) {
        rc = io.err ? write_err(errmsg, errcap, path, "cannot write the header", io.err)
                    : cdt__errmsg_set(errmsg, errcap, CDT_EIO, "cannot save %s: %s", path,
                                      sf_strerror(NULL));
        goto done;
    }
    for (size_t off = 0; off < n; off += CDT_AUDIO_BLOCK) {
        size_t m = n - off < CDT_AUDIO_BLOCK ? n - off : CDT_AUDIO_BLOCK;

        for (size_t i = 0; i < m; i++)
            pcm[i] = to_pcm16(samples[off + i]);
        if (sf_writef_short(sf, pcm, (sf_count_t)m) != (sf_count_t)m) {
            rc = io.err ? write_err(errmsg, errcap, path, "write failed", io.err)
                        : cdt__errmsg_set(errmsg, errcap, CDT_EIO, "cannot save %s: %s", path,
                                          sf_strerror(sf));
            goto done;
        }
    }
    /* Closing rewrites the header with the final sizes. */
    rc = sf_close(sf);
    sf = NULL;
    if (rc != 0 || io.err) {
        rc = io.err ? write_err(errmsg, errcap, path, "write failed", io.err)
                    : cdt__errmsg_set(errmsg, errcap, CDT_EIO, "cannot save %s: %s", path,
                                      sf_error_number(rc));
        goto done;
    }
    if (fsync(io.fd) != 0) {
        rc = write_err(errmsg, errcap, path, "fsync failed", errno);
        goto done;
    }
    rc = close(io.fd);
    io.fd = -1;
    if (rc != 0) {
        rc = write_err(errmsg, errcap, path, "close failed", errno);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = write_err(errmsg, errcap, path, "cannot rename the temp file over it", errno);
        goto done;
    }
    free(tmp);
    tmp = NULL;
    /* Make the rename itself durable; a failure here loses nothing already written. */
    if (dirlen) {
        char *dir = strndup(path, dirlen);

        dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        free(dir);
    } else {
        dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }

done:
    if (sf)
        sf_close(sf);
    if (io.fd >= 0)
        close(io.fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(pcm);
    return rc;
}
