#include "../test.h"
#include "codictate/audio.h"

#include <sndfile.h>
#include <stdlib.h>
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

int main(void)
{
    int rc;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(jfk_mp3_decodes_to_16k_mono);
    RUN(wav_44k_stereo_resampled);
    RUN(flac_16k_mono_passthrough);
    RUN(bad_inputs_give_clear_errors);
    RUN(truncated_wav_does_not_crash);
    rc = TEST_END();
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return rc;
}
