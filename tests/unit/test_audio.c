#include "../test.h"
#include "codictate/audio.h"

#include <errno.h>
#include <sched.h>
#include <sndfile.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CDT_ENGINE_SHARE
#error "CDT_ENGINE_SHARE must name the engine share dir (jfk.mp3)"
#endif

static char tmpdir[] = "/tmp/cdt-audio-XXXXXX";

/* Writes a stereo sine of `hz` at `rate` for `secs` seconds. */
static int write_sine(const char *path, int rate, int channels, double hz, double secs, int fmt)
{
    SF_INFO info = {0};
    SNDFILE *sf;
    int frames = (int)(rate * secs);
    float *buf = malloc(sizeof(float) * (size_t)frames * (size_t)channels);

    if (!buf)
        return -1;
    info.samplerate = rate;
    info.channels = channels;
    info.format = fmt;
    for (int i = 0; i < frames; i++)
        for (int c = 0; c < channels; c++)
            buf[i * channels + c] = 0.5f * (float)sin(2 * M_PI * hz * i / rate);
    sf = sf_open(path, SFM_WRITE, &info);
    if (!sf) {
        free(buf);
        return -1;
    }
    sf_writef_float(sf, buf, frames);
    sf_close(sf);
    free(buf);
    return 0;
}

static int zero_crossings(const float *s, size_t n)
{
    int z = 0;

    for (size_t i = 1; i < n; i++)
        if ((s[i - 1] < 0) != (s[i] < 0))
            z++;
    return z;
}

TEST(jfk_mp3_decodes_to_16k_mono)
{
    struct cdt_audio a;
    double rms = 0;

    cdt_audio_init(&a);
    CHECK_INT(cdt_audio_load(&a, CDT_ENGINE_SHARE "/jfk.mp3"), 0);
    REQUIRE(a.samples);
    /* The clip is 11.0 s at 44.1 kHz; mp3 framing adds a little. */
    CHECK(cdt_audio_duration(&a) > 10.5 && cdt_audio_duration(&a) < 11.5);
    CHECK(a.source_rate == 44100 || a.source_rate == 48000 || a.source_rate == 16000);
    for (size_t i = 0; i < a.n_samples; i++)
        rms += (double)a.samples[i] * a.samples[i];
    rms = sqrt(rms / (double)a.n_samples);
    CHECK(rms > 0.01 && rms < 0.9);
    cdt_audio_cleanup(&a);
    CHECK(a.samples == NULL);
}

TEST(wav_44k_stereo_resampled)
{
    char path[256];
    struct cdt_audio a;
    int z;

    snprintf(path, sizeof(path), "%s/sine.wav", tmpdir);
    REQUIRE(write_sine(path, 44100, 2, 440.0, 2.0, SF_FORMAT_WAV | SF_FORMAT_PCM_16) == 0);
    cdt_audio_init(&a);
    CHECK_INT(cdt_audio_load(&a, path), 0);
    CHECK_INT(a.source_rate, 44100);
    CHECK_INT(a.source_channels, 2);
    /* 2 s at 16 kHz, within the resampler's edge effects. */
    CHECK(a.n_samples > 31900 && a.n_samples < 32100);
    /* 440 Hz survives: ~880 zero crossings per second. */
    z = zero_crossings(a.samples, a.n_samples);
    CHECK(z > 1740 && z < 1780);
    cdt_audio_cleanup(&a);
}

/* should_stop is asked between blocks: true stops the load with no samples; false
 * every time loads it all. */
static int stop_calls, stop_after;

static bool stop_at(void *ud)
{
    (void)ud;
    return ++stop_calls > stop_after;
}

TEST(load_stops_when_asked)
{
    char path[256];
    struct cdt_audio a;

    snprintf(path, sizeof(path), "%s/long.wav", tmpdir);
    REQUIRE(write_sine(path, 44100, 1, 440.0, 5.0, SF_FORMAT_WAV | SF_FORMAT_PCM_16) == 0);
    cdt_audio_init(&a);
    a.should_stop = stop_at;
    stop_calls = 0;
    stop_after = 3;
    CHECK_INT(cdt_audio_load(&a, path), CDT_ECANCELED);
    CHECK(a.samples == NULL && a.n_samples == 0);
    CHECK(strstr(a.errmsg, "cancelled") != NULL);
    CHECK_INT(stop_calls, 4); /* asked once per block, stopped at once */
    stop_calls = 0;
    stop_after = 1000;
    CHECK_INT(cdt_audio_load(&a, path), 0);
    CHECK(a.n_samples > 79900 && a.n_samples < 80100);
    CHECK(stop_calls > 20); /* 5 s at 44.1 kHz is 27 blocks */
    cdt_audio_cleanup(&a);
}

TEST(flac_16k_mono_passthrough)
{
    char path[256];
    struct cdt_audio a;

    snprintf(path, sizeof(path), "%s/tone.flac", tmpdir);
    REQUIRE(write_sine(path, 16000, 1, 300.0, 1.0, SF_FORMAT_FLAC | SF_FORMAT_PCM_16) == 0);
    cdt_audio_init(&a);
    CHECK_INT(cdt_audio_load(&a, path), 0);
    CHECK_INT(a.n_samples, 16000);
    cdt_audio_cleanup(&a);
}

TEST(bad_inputs_give_clear_errors)
{
    char path[256];
    struct cdt_audio a;
    FILE *f;

    cdt_audio_init(&a);
    CHECK_INT(cdt_audio_load(&a, "/no/such/file.wav"), CDT_ENOTFOUND);
    CHECK(strstr(a.errmsg, "/no/such/file.wav") != NULL);
    CHECK_INT(cdt_audio_load(&a, NULL), CDT_EINVAL);
    CHECK_INT(cdt_audio_load(&a, tmpdir), CDT_EFORMAT);
    CHECK(strstr(a.errmsg, "directory") != NULL);

    snprintf(path, sizeof(path), "%s/notes.txt", tmpdir);
    f = fopen(path, "w");
    REQUIRE(f);
    fputs("this is not audio at all, just some text\n", f);
    fclose(f);
    CHECK_INT(cdt_audio_load(&a, path), CDT_EFORMAT);
    CHECK(strstr(a.errmsg, "not a readable audio file") != NULL);
    CHECK(a.samples == NULL);
    /* A text file named .mp3 exists: never "does not exist (possibly a pipe?)". */
    snprintf(path, sizeof(path), "%s/notes.mp3", tmpdir);
    f = fopen(path, "w");
    REQUIRE(f);
    fputs("this is not audio at all, just some text\n", f);
    fclose(f);
    CHECK_INT(cdt_audio_load(&a, path), CDT_EFORMAT);
    CHECK(strstr(a.errmsg, "not a readable audio file") != NULL);
    CHECK(strstr(a.errmsg, "does not exist") == NULL);
    CHECK(strstr(a.errmsg, "pipe") == NULL);
    cdt_audio_cleanup(&a);
}

/* A float WAV holding NaN and infinities decodes to finite samples (silence there). */
TEST(non_finite_samples_become_silence)
{
    char path[256];
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    float buf[1600];
    struct cdt_audio a;
    SNDFILE *sf;
    int bad = 0;

    for (int i = 0; i < 1600; i++)
        buf[i] = i % 7 == 0 ? NAN : i % 11 == 0 ? INFINITY : i % 13 == 0 ? -INFINITY : 0.25f;
    snprintf(path, sizeof(path), "%s/nan.wav", tmpdir);
    sf = sf_open(path, SFM_WRITE, &info);
    REQUIRE(sf);
    sf_writef_float(sf, buf, 1600);
    sf_close(sf);
    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, path) == 0);
    CHECK_INT((int)a.n_samples, 1600);
    for (size_t i = 0; i < a.n_samples; i++)
        bad += !isfinite(a.samples[i]);
    CHECK_INT(bad, 0);
    CHECK(a.samples[1] == 0.25f && a.samples[7] == 0.0f && a.samples[11] == 0.0f);
    cdt_audio_cleanup(&a);
}

/* Found by tests/fuzz/fuzz_audio.c: a float WAV holding values far outside [-1, 1]
 * (1e30) came out of the resampler as 2.8e28; every sample is in [-1, 1] now, and a
 * full-scale square wave resampled does not ring past it either. */
TEST(loud_float_samples_stay_in_range)
{
    char path[256];
    SF_INFO info = {.samplerate = 22050, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    float buf[2205];
    struct cdt_audio a;
    SNDFILE *sf;
    int bad = 0;

    for (int i = 0; i < 2205; i++)
        buf[i] = i < 1000 ? ((i / 20) % 2 ? 1.0f : -1.0f) : i % 3 ? 1e30f : -1e30f;
    snprintf(path, sizeof(path), "%s/loud.wav", tmpdir);
    sf = sf_open(path, SFM_WRITE, &info);
    REQUIRE(sf);
    sf_writef_float(sf, buf, 2205);
    sf_close(sf);
    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, path) == 0);
    CHECK(a.n_samples > 1500 && a.n_samples < 1700);
    for (size_t i = 0; i < a.n_samples; i++)
        bad += !(a.samples[i] >= -1.0f && a.samples[i] <= 1.0f);
    CHECK_INT(bad, 0);
    cdt_audio_cleanup(&a);
}

TEST(truncated_wav_does_not_crash)
{
    char path[256], cut[300];
    struct cdt_audio a;
    FILE *in, *out;
    char buf[4096];
    size_t n;

    snprintf(path, sizeof(path), "%s/long.wav", tmpdir);
    snprintf(cut, sizeof(cut), "%s/cut.wav", tmpdir);
    REQUIRE(write_sine(path, 22050, 1, 200.0, 1.0, SF_FORMAT_WAV | SF_FORMAT_PCM_16) == 0);
    in = fopen(path, "rb");
    out = fopen(cut, "wb");
    REQUIRE(in && out);
    n = fread(buf, 1, sizeof(buf), in); /* header + a little data */
    fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    cdt_audio_init(&a);
    /* libsndfile reads what is there; either way no crash and a sane result. */
    int rc = cdt_audio_load(&a, cut);
    CHECK(rc == 0 || rc == CDT_EFORMAT);
    if (rc == 0)
        CHECK(a.n_samples < 16000);
    cdt_audio_cleanup(&a);
}

TEST(save_wav_round_trip)
{
    char path[256], err[512];
    struct cdt_audio a;
    struct stat st;
    size_t n = 16000 + 123;
    float *x = malloc(n * sizeof(float));
    double worst = 0;

    REQUIRE(x);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.9f * (float)sin(2 * M_PI * 440.0 * (double)i / 16000) +
               0.05f * ((float)(i % 7) - 3.0f) / 3;
    /* Out-of-range samples are clamped, NaN becomes silence. */
    x[10] = 1.7f;
    x[11] = -3.0f;
    x[12] = NAN;
    snprintf(path, sizeof(path), "%s/rec.wav", tmpdir);
    /* Over an existing file: replaced whole. */
    REQUIRE(write_sine(path, 44100, 2, 100.0, 0.5, SF_FORMAT_WAV | SF_FORMAT_PCM_16) == 0);
    CHECK_INT(cdt_audio_save_wav(path, x, n, 16000, err, sizeof(err)), 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    cdt_audio_init(&a);
    CHECK_INT(cdt_audio_load(&a, path), 0);
    CHECK_INT(a.source_rate, 16000);
    CHECK_INT(a.source_channels, 1);
    REQUIRE(a.n_samples == n);
    x[10] = 1.0f;
    x[11] = -1.0f;
    x[12] = 0.0f;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a.samples[i] - x[i]);

        if (d > worst)
            worst = d;
    }
    if (worst > 1.0 / 32768 + 1e-9)
        fprintf(stderr, "  worst difference %g (x32768: %g)\n", worst, worst * 32768);
    CHECK(worst <= 1.0 / 32768 + 1e-9);
    cdt_audio_cleanup(&a);

    /* No temp file is left beside it. */
    {
        char cmd[400];

        snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep '^\\.rec\\.wav\\.')\"", tmpdir);
        CHECK_INT(system(cmd), 0);
    }

    /* Empty recording: a valid WAV with no samples. */
    CHECK_INT(cdt_audio_save_wav(path, NULL, 0, 16000, err, sizeof(err)), 0);
    cdt_audio_init(&a);
    CHECK_INT(cdt_audio_load(&a, path), 0);
    CHECK_INT(a.n_samples, 0);
    cdt_audio_cleanup(&a);
    free(x);
}

TEST(save_wav_errors)
{
    char path[256], err[512];
    float x[4] = {0};

    CHECK_INT(cdt_audio_save_wav("/no/such/dir/rec.wav", x, 4, 16000, err, sizeof(err)),
              CDT_ENOTFOUND);
    CHECK(strstr(err, "/no/such/dir/rec.wav") != NULL);
    CHECK(strstr(err, "directory does not exist") != NULL);
    CHECK_INT(cdt_audio_save_wav(NULL, x, 4, 16000, err, sizeof(err)), CDT_EINVAL);
    CHECK_INT(cdt_audio_save_wav("x.wav", x, 4, 12, err, sizeof(err)), CDT_EINVAL);
    CHECK_INT(cdt_audio_save_wav("x.wav", NULL, 4, 16000, err, sizeof(err)), CDT_EINVAL);
    snprintf(path, sizeof(path), "%s/", tmpdir);
    CHECK_INT(cdt_audio_save_wav(path, x, 4, 16000, err, sizeof(err)), CDT_EINVAL);
    /* A directory in the way of the name. */
    snprintf(path, sizeof(path), "%s/adir", tmpdir);
    REQUIRE(mkdir(path, 0700) == 0);
    CHECK(cdt_audio_save_wav(path, x, 4, 16000, err, sizeof(err)) < 0);
    CHECK(strstr(err, path) != NULL);
    /* errmsg may be NULL. */
    CHECK_INT(cdt_audio_save_wav("/no/such/dir/rec.wav", x, 4, 16000, NULL, 0), CDT_ENOTFOUND);
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/ro", tmpdir);
        REQUIRE(mkdir(path, 0500) == 0);
        snprintf(path, sizeof(path), "%s/ro/rec.wav", tmpdir);
        CHECK_INT(cdt_audio_save_wav(path, x, 4, 16000, err, sizeof(err)), CDT_EPERM);
    }
}

/* A full disk and a read-only file system, on a tiny tmpfs in a private mount
 * namespace of a child (needs root; else skipped). Exit 0: as expected, 77: cannot
 * mount here, 1: wrong. */
static int save_on_mount(bool read_only, int want, const char *want_msg)
{
    char dir[256], path[300], err[512], cmd[400];
    size_t n = 16000 * 4; /* 128 KB of PCM, over the mount's 64 KB */
    float *x;
    int rc;

    snprintf(dir, sizeof(dir), "%s/mnt", tmpdir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return 1;
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("cdt-test", dir, "tmpfs", 0, "size=64k") != 0)
        return 77;
    if (read_only && mount("cdt-test", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=64k") != 0)
        return 77;
    x = calloc(n, sizeof(float));
    if (!x)
        return 1;
    snprintf(path, sizeof(path), "%s/rec.wav", dir);
    rc = cdt_audio_save_wav(path, x, n, 16000, err, sizeof(err));
    free(x);
    fprintf(stderr, "  %s: %s (%s)\n", read_only ? "read-only" : "full", err, cdt_errname(rc));
    if (rc != want || !strstr(err, path) || !strstr(err, want_msg))
        return 1;
    /* Nothing is left behind: no partial file, no temp file. */
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", dir);
    return system(cmd) == 0 ? 0 : 1;
}

TEST(save_wav_no_space_and_read_only)
{
    for (int ro = 0; ro < 2; ro++) {
        int status = 0;
        pid_t pid = fork();

        REQUIRE(pid >= 0);
        if (pid == 0)
            _exit(ro ? save_on_mount(true, CDT_EPERM, "Read-only")
                     : save_on_mount(false, CDT_ENOSPACE, "No space left"));
        REQUIRE(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
        if (WEXITSTATUS(status) == 77) {
            fprintf(stderr, "  skipped the %s check: cannot mount a tmpfs here (not root?)\n",
                    ro ? "read-only" : "full-disk");
            continue;
        }
        CHECK_INT(WEXITSTATUS(status), 0);
    }
}

int main(void)
{
    int rc;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(jfk_mp3_decodes_to_16k_mono);
    RUN(wav_44k_stereo_resampled);
    RUN(load_stops_when_asked);
    RUN(flac_16k_mono_passthrough);
    RUN(bad_inputs_give_clear_errors);
    RUN(non_finite_samples_become_silence);
    RUN(loud_float_samples_stay_in_range);
    RUN(truncated_wav_does_not_crash);
    RUN(save_wav_round_trip);
    RUN(save_wav_errors);
    RUN(save_wav_no_space_and_read_only);
    rc = TEST_END();
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return rc;
}
