/* The transcribe module with real parts: the tiny random whisper model on
 * samples/jfk.mp3 (gibberish text, real timestamps), the real Silero VAD weights,
 * and every way a model or an audio file can be wrong.
 *   test_transcribe WHISPER.bin VAD.bin JFK.mp3 SOME.gguf */
#include "../test.h"
#include "codictate/audio.h"
#include "codictate/log.h"
#include "codictate/transcribe.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *model_path, *vad_path, *audio_path, *gguf_path;
static char tmpdir[] = "/tmp/cdt-transcribe-XXXXXX";
static struct cdt_log *test_log;

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

/* Copies the first n bytes of src (all when n is 0) to dst, optionally
 * overwriting 4 bytes at patch_at with patch. */
static void copy_file(const char *src, const char *dst, size_t n, long patch_at, int32_t patch)
{
    FILE *f = fopen(src, "rb");
    char *buf;
    long len;

    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len);
    if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
        if (patch_at >= 0 && patch_at + 4 <= len)
            memcpy(buf + patch_at, &patch, 4);
        write_file(dst, buf, n ? n : (size_t)len);
    }
    free(buf);
    fclose(f);
}

static struct cdt_transcribe_params params(bool vad)
{
    struct cdt_transcribe_params p = cdt_transcribe_default_params();

    p.model_path = model_path;
    p.n_threads = 1; /* busy CI machines: ggml's spinning threads fight over cores */
    p.cpu_only = true;
    p.vad = vad;
    p.vad_model_path = vad ? vad_path : NULL;
    p.log = test_log;
    return p;
}

/* Segments are ordered, non-empty, and inside the audio. */
static void check_segments(const struct cdt_transcript *tr)
{
    CHECK(tr->n_segments >= 1);
    for (size_t i = 0; i < tr->n_segments; i++) {
        const struct cdt_transcript_segment *s = &tr->segments[i];

        CHECK(s->start >= 0.0);
        CHECK(s->end >= s->start);
        CHECK(s->end <= tr->audio_seconds + 1e-9);
        CHECK(s->text != NULL && s->text[0] != '\0');
        if (i > 0)
            CHECK(s->start >= tr->segments[i - 1].start);
    }
    CHECK(tr->text != NULL && strlen(tr->text) > 0);
}

TEST(transcribes_jfk_file)
{
    struct cdt_transcribe_params p = params(false);
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    char err[512];

    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    CHECK(!cdt_transcribe_is_multilingual(t)); /* the tiny model is .en-shaped */
    cdt_transcript_init(&tr);
    REQUIRE(cdt_transcribe_file(t, audio_path, &tr) == 0);
    CHECK_STR(cdt_transcribe_errmsg(t), "");
    CHECK(fabs(tr.audio_seconds - 11.0) < 0.05);
    CHECK_STR(tr.language, "en");
    CHECK(!tr.vad);
    check_segments(&tr);
    CHECK(tr.segments[0].start < 0.5); /* without VAD whisper starts at the start */
    CHECK(tr.timings.load_ms > 0);
    CHECK(tr.timings.audio_ms > 0);
    CHECK(tr.timings.prepare_ms > 0);
    CHECK(tr.timings.encode_ms > 0);
    CHECK(tr.timings.decode_ms >= 0);
    CHECK(tr.timings.total_ms >= tr.timings.audio_ms + tr.timings.encode_ms);
    /* the full text is the segments joined by spaces */
    CHECK(strncmp(tr.text, tr.segments[0].text, strlen(tr.segments[0].text)) == 0);

    /* A second call on the same handle (model loaded once) starts afresh. */
    REQUIRE(cdt_transcribe_file(t, audio_path, &tr) == 0);
    check_segments(&tr);
    cdt_transcript_cleanup(&tr);
    CHECK(tr.text == NULL && tr.n_segments == 0);
    cdt_transcribe_free(t);
}

TEST(vad_skips_the_silence)
{
    struct cdt_transcribe_params p = params(true);
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    char err[512];

    struct cdt_audio a;
    float *x;
    size_t lead = 3 * CDT_AUDIO_RATE, n;

    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    cdt_transcript_init(&tr);
    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, audio_path) == 0);
    /* 3 s of silence, then jfk.mp3, whose speech starts at 0.32 s */
    n = lead + a.n_samples;
    REQUIRE((x = calloc(n, sizeof(float))) != NULL);
    memcpy(x + lead, a.samples, a.n_samples * sizeof(float));
    REQUIRE(cdt_transcribe_samples(t, x, n, &tr) == 0);
    CHECK(tr.vad);
    check_segments(&tr);
    /* With VAD the leading silence is never decoded (but for the 0.4 s of padding
     * before the speech) and times map back onto the recording's timeline. */
    CHECK(tr.segments[0].start >= 3.32 - 0.4 - 0.1);
    CHECK(tr.segments[tr.n_segments - 1].end <= (double)n / CDT_AUDIO_RATE + 0.01);
    cdt_transcript_cleanup(&tr);
    free(x);
    cdt_audio_cleanup(&a);
    cdt_transcribe_free(t);
}

TEST(silence_and_empty_buffers)
{
    struct cdt_transcribe_params p = params(true);
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    size_t n = 3 * CDT_AUDIO_RATE;
    float *zeros = calloc(n, sizeof(float));
    char err[512];

    REQUIRE(zeros != NULL);
    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    cdt_transcript_init(&tr);
    REQUIRE(cdt_transcribe_samples(t, zeros, n, &tr) == 0);
    CHECK_INT(tr.n_segments, 0);
    CHECK_STR(tr.text, "");
    CHECK(fabs(tr.audio_seconds - 3.0) < 1e-9);
    CHECK_INT(tr.timings.audio_ms, 0);

    REQUIRE(cdt_transcribe_samples(t, NULL, 0, &tr) == 0);
    CHECK_INT(tr.n_segments, 0);
    CHECK_STR(tr.text, "");

    /* the cap is checked before a sample is read */
    CHECK_INT(cdt_transcribe_samples(t, zeros, CDT_TRANSCRIBE_MAX_SAMPLES + 1, &tr), CDT_ETOOBIG);
    CHECK(strstr(cdt_transcribe_errmsg(t), "CDT_AUDIO_MAX_SECONDS") != NULL);
    CHECK(tr.text == NULL);
    cdt_transcript_cleanup(&tr);
    cdt_transcribe_free(t);
    free(zeros);
}

/* CDT_TRANSCRIBE_FIT_WINDOW: the encoder's window is the audio's length + the
 * margin (in whisper's 20 ms encoder frames, rounded up), never under the audio, and
 * the full 30 s once that would reach it; without the flag always 30 s. */
TEST(fitted_window_covers_the_audio)
{
    struct cdt_transcribe_params p = params(false);
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    struct cdt_audio a;
    size_t n_long = 28 * CDT_AUDIO_RATE;
    float *longer;
    char err[512];

    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, audio_path) == 0); /* 11 s */
    REQUIRE((longer = calloc(n_long, sizeof(float))) != NULL);
    for (size_t i = 0; i < n_long; i++)
        longer[i] = a.samples[i % a.n_samples];
    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    cdt_transcript_init(&tr);

    REQUIRE(cdt_transcribe_samples_after(t, a.samples, a.n_samples, NULL, CDT_TRANSCRIBE_FIT_WINDOW,
                                         &tr) == 0);
    CHECK(tr.window_seconds >= tr.audio_seconds + CDT_TRANSCRIBE_FIT_MARGIN_S - 1e-9);
    CHECK(tr.window_seconds < tr.audio_seconds + CDT_TRANSCRIBE_FIT_MARGIN_S + 0.02);
    for (size_t i = 0; i < tr.n_segments; i++)
        CHECK(tr.segments[i].end <= tr.audio_seconds + 1e-9);

    REQUIRE(cdt_transcribe_samples_after(t, a.samples, a.n_samples, NULL, 0, &tr) == 0);
    CHECK(fabs(tr.window_seconds - 30.0) < 1e-9);
    check_segments(&tr);

    /* 28 s + the margin is over 30 s: the full window */
    REQUIRE(cdt_transcribe_samples_after(t, longer, n_long, NULL, CDT_TRANSCRIBE_FIT_WINDOW, &tr) ==
            0);
    CHECK(fabs(tr.window_seconds - 30.0) < 1e-9);
    REQUIRE(cdt_transcribe_samples_after(t, NULL, 0, NULL, CDT_TRANSCRIBE_FIT_WINDOW, &tr) == 0);
    CHECK(tr.window_seconds == 0.0);

    cdt_transcript_cleanup(&tr);
    cdt_transcribe_free(t);
    cdt_audio_cleanup(&a);
    free(longer);
}

static void new_fails(struct cdt_transcribe_params p, int rc, const char *want);

/* The text of one call (FIT_WINDOW: quick), "" for none; caller frees. */
static char *text_of(struct cdt_transcribe *t, const struct cdt_audio *a, const char *prompt)
{
    struct cdt_transcript tr;
    char *s;

    cdt_transcript_init(&tr);
    if (cdt_transcribe_samples_after(t, a->samples, a->n_samples, prompt, CDT_TRANSCRIBE_FIT_WINDOW,
                                     &tr) != 0) {
        fprintf(stderr, "  transcription failed: %s\n", cdt_transcribe_errmsg(t));
        CHECK(0);
    }
    s = strdup(tr.text ? tr.text : "");
    cdt_transcript_cleanup(&tr);
    return s;
}

/* A vocabulary is whisper's prompt, before the text of a _after call: a handle with
 * one gives what a handle without gives for that prompt, whatever the model. */
TEST(vocabulary_is_whisper_prompt)
{
    static const char voc[] = "Kubernetes, Anya Petrova, codictate";
    struct cdt_transcribe_params p = params(false);
    struct cdt_transcribe *plain = NULL, *t = NULL;
    struct cdt_audio a;
    char err[512], big[CDT_TRANSCRIBE_MAX_VOCABULARY + 2];
    char *x, *y;

    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, audio_path) == 0);
    REQUIRE(cdt_transcribe_new(&p, &plain, err, sizeof(err)) == 0);
    p.vocabulary = voc;
    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);

    x = text_of(t, &a, NULL);
    y = text_of(plain, &a, voc);
    CHECK_STR(x, y);
    free(x);
    free(y);
    x = text_of(t, &a, "And so my fellow Americans");
    y = text_of(plain, &a, "Kubernetes, Anya Petrova, codictate And so my fellow Americans");
    CHECK_STR(x, y);
    free(x);
    free(y);

    /* A bad one is refused and the old one kept; NULL clears it. */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(cdt_transcribe_set_vocabulary(t, big), CDT_EINVAL);
    CHECK_INT(cdt_transcribe_set_vocabulary(t, "tab\there"), CDT_EINVAL);
    CHECK_INT(cdt_transcribe_set_vocabulary(t, "\xC3\x28"), CDT_EINVAL);
    CHECK_INT(cdt_transcribe_set_vocabulary(NULL, voc), CDT_EINVAL);
    x = text_of(t, &a, NULL);
    y = text_of(plain, &a, voc);
    CHECK_STR(x, y);
    free(x);
    free(y);
    CHECK_INT(cdt_transcribe_set_vocabulary(t, NULL), 0);
    x = text_of(t, &a, NULL);
    y = text_of(plain, &a, NULL);
    CHECK_STR(x, y);
    free(x);
    free(y);
    CHECK_INT(cdt_transcribe_set_vocabulary(t, "Zürich"), 0);
    x = text_of(t, &a, NULL);
    y = text_of(plain, &a, "Zürich");
    CHECK_STR(x, y);
    free(x);
    free(y);

    p.vocabulary = big;
    new_fails(p, CDT_EINVAL, "vocabulary: at most 300 bytes");
    p.vocabulary = "a\nb";
    new_fails(p, CDT_EINVAL, "vocabulary");
    cdt_transcribe_free(t);
    cdt_transcribe_free(plain);
    cdt_audio_cleanup(&a);
}

TEST(english_only_model_forces_en)
{
    struct cdt_transcribe_params p = params(false);
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    char err[512];

    p.language = "de";
    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    cdt_transcript_init(&tr);
    REQUIRE(cdt_transcribe_samples(t, NULL, 0, &tr) == 0);
    CHECK_STR(tr.language, "en");
    cdt_transcript_cleanup(&tr);
    cdt_transcribe_free(t);
}

static void cancel_on_progress(int percent, void *user_data)
{
    (void)percent;
    cdt_transcribe_cancel(user_data);
}

struct holder {
    struct cdt_transcribe *t;
};

static void cancel_holder(int percent, void *user_data)
{
    struct holder *h = user_data;

    cancel_on_progress(percent, h->t);
}

TEST(cancel_stops_and_clears)
{
    struct cdt_transcribe_params p = params(false);
    struct holder h = {NULL};
    struct cdt_transcript tr;
    char err[512];

    p.progress = cancel_holder;
    p.user_data = &h;
    REQUIRE(cdt_transcribe_new(&p, &h.t, err, sizeof(err)) == 0);
    cdt_transcript_init(&tr);
    CHECK_INT(cdt_transcribe_file(h.t, audio_path, &tr), CDT_ECANCELED);
    CHECK(strstr(cdt_transcribe_errmsg(h.t), "canceled") != NULL);
    CHECK(tr.text == NULL && tr.n_segments == 0);
    cdt_transcribe_free(h.t);
}

/* cdt_transcribe_new fails with rc and a message containing want. */
static void new_fails(struct cdt_transcribe_params p, int rc, const char *want)
{
    struct cdt_transcribe *t = (struct cdt_transcribe *)&p; /* must become NULL */
    char err[1024];
    int got = cdt_transcribe_new(&p, &t, err, sizeof(err));

    CHECK_INT(got, rc);
    CHECK(t == NULL);
    if (!strstr(err, want)) {
        fprintf(stderr, "  message '%s' lacks '%s'\n", err, want);
        CHECK(0);
    }
    if (got == 0)
        cdt_transcribe_free(t);
}

TEST(bad_models_are_refused_with_clear_messages)
{
    struct cdt_transcribe_params p;
    char path[600];
    struct stat st;

    REQUIRE(stat(model_path, &st) == 0);

    p = params(false);
    p.model_path = "/no/such/ggml-model.bin";
    new_fails(p, CDT_ENOTFOUND, "whisper model not found: /no/such/ggml-model.bin");

    p = params(false);
    p.model_path = NULL;
    new_fails(p, CDT_EINVAL, "no whisper model");

    p = params(false);
    p.model_path = tmpdir;
    new_fails(p, CDT_EIO, "is a directory");

    tmp_path(path, sizeof(path), "notes.txt");
    write_file(path, "this is not a model\n", 20);
    p = params(false);
    p.model_path = path;
    new_fails(p, CDT_EFORMAT, "not a whisper.cpp model (no ggml magic number)");

    p = params(false);
    p.model_path = gguf_path;
    new_fails(p, CDT_EFORMAT, "GGUF");

    /* Truncated downloads, cut in the vocabulary and in the weights. */
    tmp_path(path, sizeof(path), "cut-vocab.bin");
    copy_file(model_path, path, 100000, -1, 0);
    p = params(false);
    p.model_path = path;
    new_fails(p, CDT_EFORMAT, "truncated or corrupt whisper model (vocabulary)");

    tmp_path(path, sizeof(path), "cut-weights.bin");
    copy_file(model_path, path, (size_t)st.st_size - 1000, -1, 0);
    p = params(false);
    p.model_path = path;
    new_fails(p, CDT_EFORMAT, "runs past the end of the file");

    /* A corrupt header (n_audio_state = -5) never reaches the engine. */
    tmp_path(path, sizeof(path), "bad-header.bin");
    copy_file(model_path, path, 0, 12, -5);
    p = params(false);
    p.model_path = path;
    new_fails(p, CDT_EFORMAT, "implausible header");

    /* Junk after the last tensor: a record cut short. */
    tmp_path(path, sizeof(path), "junk-after.bin");
    copy_file(model_path, path, 0, -1, 0);
    {
        FILE *f = fopen(path, "ab");
        if (f) {
            fwrite("\x02\0\0\0\x10\0", 1, 6, f);
            fclose(f);
        }
    }
    p = params(false);
    p.model_path = path;
    new_fails(p, CDT_EFORMAT, "cut inside tensor record");

    p = params(false);
    p.language = "klingon";
    new_fails(p, CDT_EINVAL, "unknown language 'klingon'");

    p = params(false);
    p.n_threads = -1;
    new_fails(p, CDT_EINVAL, "threads");

    p = params(false);
    p.vad_threshold = 1.5f;
    new_fails(p, CDT_EINVAL, "threshold");
}

TEST(bad_vad_models_are_refused)
{
    struct cdt_transcribe_params p;
    char path[600];

    p = params(true);
    p.vad_model_path = NULL;
    new_fails(p, CDT_EINVAL, "no VAD model");

    p = params(true);
    p.vad_model_path = "/no/such/silero.bin";
    new_fails(p, CDT_ENOTFOUND, "VAD model not found: /no/such/silero.bin");

    p = params(true);
    p.vad_model_path = model_path;
    new_fails(p, CDT_EFORMAT, "not a Silero VAD model");

    tmp_path(path, sizeof(path), "cut-vad.bin");
    copy_file(vad_path, path, 200, -1, 0);
    p = params(true);
    p.vad_model_path = path;
    new_fails(p, CDT_EFORMAT, "VAD model");

    tmp_path(path, sizeof(path), "cut-vad2.bin");
    copy_file(vad_path, path, 880000, -1, 0);
    p = params(true);
    p.vad_model_path = path;
    new_fails(p, CDT_EFORMAT, "runs past the end of the file");
}

TEST(bad_audio_names_the_file)
{
    struct cdt_transcribe_params p = params(false);
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    char path[600], err[512];

    REQUIRE(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    cdt_transcript_init(&tr);

    CHECK_INT(cdt_transcribe_file(t, "/no/such/memo.wav", &tr), CDT_ENOTFOUND);
    CHECK(strstr(cdt_transcribe_errmsg(t), "/no/such/memo.wav") != NULL);

    tmp_path(path, sizeof(path), "memo.txt");
    write_file(path, "hello, not audio\n", 17);
    CHECK_INT(cdt_transcribe_file(t, path, &tr), CDT_EFORMAT);
    CHECK(strstr(cdt_transcribe_errmsg(t), path) != NULL);
    CHECK(strstr(cdt_transcribe_errmsg(t), "not a readable audio file") != NULL);
    CHECK(tr.text == NULL);

    /* the message is cleared by the next success */
    REQUIRE(cdt_transcribe_samples(t, NULL, 0, &tr) == 0);
    CHECK_STR(cdt_transcribe_errmsg(t), "");
    cdt_transcript_cleanup(&tr);
    cdt_transcribe_free(t);
}

struct captured {
    int whisper_lines;
};

static void capture(enum cdt_log_level level, const char *line, void *user_data)
{
    struct captured *c = user_data;

    (void)level;
    if (strstr(line, "whisper_"))
        c->whisper_lines++;
}

TEST(whisper_log_goes_to_our_log)
{
    struct cdt_log_params lp = cdt_log_default_params();
    struct captured cap = {0};
    struct cdt_log *lg = NULL;
    struct cdt_transcribe_params p = params(false);
    struct cdt_transcribe *t = NULL;
    char err[512];

    lp.level = CDT_LOG_TRACE;
    lp.sink = capture;
    lp.user_data = &cap;
    REQUIRE(cdt_log_new(&lp, &lg) == 0);
    cdt_transcribe_log_set(lg);
    p.log = lg;
    CHECK(cdt_transcribe_new(&p, &t, err, sizeof(err)) == 0);
    cdt_transcribe_log_set(test_log);
    CHECK(cap.whisper_lines > 0);
    cdt_transcribe_free(t);
    cdt_log_free(lg);
}

int main(int argc, char **argv)
{
    char cmd[600];
    int rc;

    if (argc != 5) {
        fprintf(stderr, "usage: %s WHISPER.bin VAD.bin AUDIO SOME.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    vad_path = argv[2];
    audio_path = argv[3];
    gguf_path = argv[4];
    if (!mkdtemp(tmpdir) || cdt_log_new(NULL, &test_log) != 0)
        return 1;
    cdt_transcribe_log_set(test_log);
    RUN(transcribes_jfk_file);
    RUN(vad_skips_the_silence);
    RUN(silence_and_empty_buffers);
    RUN(fitted_window_covers_the_audio);
    RUN(vocabulary_is_whisper_prompt);
    RUN(english_only_model_forces_en);
    RUN(cancel_stops_and_clears);
    RUN(bad_models_are_refused_with_clear_messages);
    RUN(bad_vad_models_are_refused);
    RUN(bad_audio_names_the_file);
    RUN(whisper_log_goes_to_our_log);
    rc = TEST_END();
    cdt_transcribe_log_set(NULL);
    cdt_log_free(test_log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
