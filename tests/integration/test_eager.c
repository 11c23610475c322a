/* Eager transcription (issue 16) with real parts: the real Silero VAD weights, the
 * tiny random whisper model (its text is noise, so the checks are about what holds
 * whatever the words: where the recording is cut, that every stretch of speech is in
 * exactly one transcribed chunk, that nothing is skipped), and espeak-ng speech laid
 * out with pauses of known length.
 *   test_eager WHISPER.bin VAD.bin */
#include "../test.h"
#include "codictate/audio.h"
#include "codictate/eager.h"
#include "codictate/log.h"
#include "codictate/refine.h"
#include "codictate/transcribe.h"
#include "codictate/util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RATE CDT_AUDIO_RATE

static const char *model_path, *vad_path;
static char tmpdir[] = "/tmp/cdt-eager-XXXXXX";
static struct cdt_transcribe *tr;

/* A recording under construction, with where its speech is. */
struct rec {
    float *x;
    size_t n, cap;
    double speech[64][2]; /* [start, end] s of each utterance's audible part */
    int n_speech;
};

static void rec_add(struct rec *r, const float *x, size_t n)
{
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        r->x = realloc(r->x, r->cap * sizeof(float));
    }
    if (x)
        memcpy(r->x + r->n, x, n * sizeof(float));
    else
        memset(r->x + r->n, 0, n * sizeof(float));
    r->n += n;
}

static void rec_silence(struct rec *r, double s)
{
    rec_add(r, NULL, (size_t)(s * RATE));
}

/* espeak-ng says text; its audible part is recorded as a speech region. */
static bool rec_say(struct rec *r, const char *text)
{
    char wav[256], cmd[2048];
    struct cdt_audio a;
    size_t first = 0, last = 0;
    bool any = false;

    snprintf(wav, sizeof(wav), "%s/say.wav", tmpdir);
    snprintf(cmd, sizeof(cmd), "espeak-ng -w '%s' '%s' 2>/dev/null", wav, text);
    if (system(cmd) != 0)
        return false;
    cdt_audio_init(&a);
    if (cdt_audio_load(&a, wav) != 0) {
        cdt_audio_cleanup(&a);
        return false;
    }
    for (size_t i = 0; i < a.n_samples; i++) {
        if (fabsf(a.samples[i]) > 0.01f) {
            if (!any)
                first = i;
            last = i;
            any = true;
        }
    }
    if (any && r->n_speech < 64) {
        r->speech[r->n_speech][0] = (double)(r->n + first) / RATE;
        r->speech[r->n_speech][1] = (double)(r->n + last) / RATE;
        r->n_speech++;
    }
    rec_add(r, a.samples, a.n_samples);
    cdt_audio_cleanup(&a);
    return any;
}

static void rec_free(struct rec *r)
{
    free(r->x);
    memset(r, 0, sizeof(*r));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Pushes the recording in 100 ms pieces (as the recording thread does), then
 * finishes. wait_first: wait until the first chunk is transcribed before pushing
 * the second half (so it was transcribed "while recording"). */
static int run_eager(const struct cdt_eager_params *p, const struct rec *r, bool wait_first,
                     struct cdt_eager **out_e, struct cdt_transcript *out)
{
    struct cdt_eager *e = NULL;
    size_t step = RATE / 10;
    int rc;

    if (cdt_eager_new(p, &e) != 0)
        return -1;
    if (cdt_eager_start(e, tr) != 0) {
        cdt_eager_free(e);
        return -1;
    }
    for (size_t o = 0; o < r->n; o += step) {
        size_t k = r->n - o < step ? r->n - o : step;

        if (cdt_eager_push(e, r->x + o, k) != 0)
            break;
        if (wait_first && o < r->n / 2 && o + k >= r->n / 2)
            for (int i = 0; i < 600 && cdt_eager_chunk_count(e) == 0; i++)
                sleep_ms(100);
    }
    rc = cdt_eager_finish(e, tr, r->x, r->n, out);
    *out_e = e;
    return rc;
}

/* The chunks partition [0, n]: contiguous, from 0 to the end. */
static void check_partition(const struct cdt_eager_chunk *c, size_t nc, size_t n)
{
    REQUIRE(nc >= 1);
    CHECK(c[0].start == 0.0);
    for (size_t i = 1; i < nc; i++) {
        CHECK(c[i].start == c[i - 1].end);
        CHECK(c[i].end > c[i].start);
    }
    CHECK(fabs(c[nc - 1].end - (double)n / RATE) < 1e-9);
}

/* Each speech region lies inside exactly one chunk, and that chunk went to whisper. */
static void check_speech_covered(const struct cdt_eager_chunk *c, size_t nc, const struct rec *r)
{
    for (int s = 0; s < r->n_speech; s++) {
        int inside = 0, touching = 0;

        for (size_t i = 0; i < nc; i++) {
            bool overlaps = c[i].start < r->speech[s][1] && c[i].end > r->speech[s][0];

            if (overlaps)
                touching++;
            if (c[i].start <= r->speech[s][0] && c[i].end >= r->speech[s][1]) {
                inside++;
                CHECK(c[i].speech);
            }
        }
        if (inside != 1 || touching != 1)
            fprintf(stderr, "  speech %.2f-%.2f s: in %d chunks, touches %d\n", r->speech[s][0],
                    r->speech[s][1], inside, touching);
        CHECK_INT(inside, 1);
        CHECK_INT(touching, 1);
    }
}

/* Segments are on the recording's timeline, in order. */
static void check_segments(const struct cdt_transcript *t, size_t n)
{
    for (size_t i = 0; i < t->n_segments; i++) {
        CHECK(t->segments[i].start <= t->segments[i].end);
        CHECK(t->segments[i].end <= (double)n / RATE + 1e-6);
        if (i)
            CHECK(t->segments[i].start >= t->segments[i - 1].start - 1e-6);
    }
}

/* Sentences with pauses between them: a cut in every pause of a second, none in a
 * pause shorter than min_gap_s (0.5 s), none in a word. The first chunk is
 * transcribed while the rest is still coming. */
TEST(test_cuts_in_pauses)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    size_t nc, speech_chunks = 0;
    int rc;

    cdt_transcript_init(&t);
    rec_silence(&r, 0.7);
    REQUIRE(rec_say(&r, "Please call me back tomorrow morning"));
    rec_silence(&r, 1.2);
    REQUIRE(rec_say(&r, "The meeting moved to the large room"));
    /* A short breath: the next words follow too closely for a cut. */
    rec_silence(&r, 0.2);
    REQUIRE(rec_say(&r, "and bring the new slides"));
    rec_silence(&r, 1.0);
    /* A pause just over min_gap_s: the cut must fall inside it, not in a word. */
    REQUIRE(rec_say(&r, "Thanks a lot for your help"));
    rec_silence(&r, 0.65);
    REQUIRE(rec_say(&r, "See you on Friday"));
    rec_silence(&r, 0.4);

    p.backlog_s = -1; /* the cuts by the audio alone, however fast it is pushed */
    rc = run_eager(&p, &r, true, &e, &t);
    CHECK_INT(rc, 0);
    c = cdt_eager_chunks(e, &nc);
    check_partition(c, nc, r.n);
    check_speech_covered(c, nc, &r);
    check_segments(&t, r.n);
    for (size_t i = 0; i < nc; i++) {
        fprintf(stderr, "  chunk %.2f-%.2f%s%s%s\n", c[i].start, c[i].end,
                c[i].speech ? " speech" : "", c[i].forced ? " forced" : "",
                c[i].after_stop ? " after-stop" : "");
        speech_chunks += c[i].speech;
        CHECK(!c[i].forced);
        /* Chunks after stop (what the user waits for) are encoded on a window fitted
         * to them (the audio + the margin), the others on whisper's full 30 s. */
        if (!c[i].speech)
            CHECK(c[i].window_s == 0.0);
        else if (c[i].after_stop)
            CHECK(c[i].window_s >= c[i].end - c[i].start + CDT_TRANSCRIBE_FIT_MARGIN_S - 1e-6 &&
                  c[i].window_s < c[i].end - c[i].start + CDT_TRANSCRIBE_FIT_MARGIN_S + 0.03);
        else
            CHECK(c[i].window_s == 30.0);
    }
    /* Cut in the pauses of 1.2 s, 1.0 s and 0.65 s: at least 3 chunks with speech
     * (the 0.2 s breath is no cut: check_speech_covered proves it). */
    CHECK(speech_chunks >= 3);
    CHECK(nc >= 1 && !c[0].after_stop); /* transcribed while "recording" */
    CHECK(t.vad);
    CHECK(fabs(t.audio_seconds - (double)r.n / RATE) < 1e-6);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    rec_free(&r);
}

/* Where the cuts fall depends on the audio alone: pushed all at once (the worker
 * sees seconds at a time) or in 100 ms pieces, the same chunks. */
TEST(test_cuts_independent_of_pace)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e1 = NULL, *e2 = NULL;
    struct cdt_transcript t1, t2;
    const struct cdt_eager_chunk *c1, *c2;
    struct rec r = {0};
    size_t n1, n2;

    cdt_transcript_init(&t1);
    cdt_transcript_init(&t2);
    for (int i = 0; i < 4; i++) {
        REQUIRE(rec_say(&r, i % 2 ? "We will meet again next week" : "Thank you all for coming"));
        rec_silence(&r, 0.55 + 0.3 * i);
    }
    rec_silence(&r, 4.0); /* and a stretch of silence */
    REQUIRE(rec_say(&r, "Goodbye"));
    p.backlog_s = -1;
    CHECK_INT(run_eager(&p, &r, false, &e1, &t1), 0);
    REQUIRE(cdt_eager_new(&p, &e2) == 0);
    REQUIRE(cdt_eager_start(e2, tr) == 0);
    CHECK_INT(cdt_eager_push(e2, r.x, r.n), 0);
    CHECK_INT(cdt_eager_finish(e2, tr, r.x, r.n, &t2), 0);
    c1 = cdt_eager_chunks(e1, &n1);
    c2 = cdt_eager_chunks(e2, &n2);
    CHECK_INT(n1, n2);
    for (size_t i = 0; i < n1 && i < n2; i++) {
        CHECK(c1[i].start == c2[i].start && c1[i].end == c2[i].end);
        CHECK(c1[i].speech == c2[i].speech);
    }
    check_speech_covered(c1, n1, &r);
    CHECK(n1 >= 5);
    cdt_transcript_cleanup(&t1);
    cdt_transcript_cleanup(&t2);
    cdt_eager_free(e1);
    cdt_eager_free(e2);
    rec_free(&r);
}

/* 45 s of speech without a pause: split into chunks of at most max_chunk_s (28 s),
 * every sample still in exactly one chunk, all of it transcribed. */
TEST(test_long_unbroken)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    size_t nc, forced = 0;
    int rc;

    cdt_transcript_init(&t);
    /* No punctuation: espeak-ng reads it in one breath. */
    while ((double)r.n / RATE < 45.0) {
        REQUIRE(rec_say(&r, "the quick brown fox jumps over the lazy dog while seven "
                            "wizards quietly box the jumping frogs near the river bank"));
        r.n_speech--; /* one region: the whole run (below) */
    }
    r.n_speech = 1;
    r.speech[0][0] = 0.3;
    r.speech[0][1] = (double)r.n / RATE - 0.3;
    rec_silence(&r, 0.3);

    p.long_chunk_s = -1; /* espeak-ng's breaths between sayings are no cut here */
    rc = run_eager(&p, &r, false, &e, &t);
    CHECK_INT(rc, 0);
    c = cdt_eager_chunks(e, &nc);
    check_partition(c, nc, r.n);
    check_segments(&t, r.n);
    CHECK(nc >= 2);
    for (size_t i = 0; i < nc; i++) {
        fprintf(stderr, "  chunk %.2f-%.2f%s%s\n", c[i].start, c[i].end,
                c[i].speech ? " speech" : "", c[i].forced ? " forced" : "");
        CHECK(c[i].end - c[i].start <= 28.0 + 0.05);
        if (c[i].start < r.speech[0][1])
            CHECK(c[i].speech);
        forced += c[i].forced;
    }
    CHECK(forced >= 1);
    /* Whisper heard every chunk: some text from each piece of the recording. */
    CHECK(t.n_segments >= nc);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    rec_free(&r);
}

/* Appends the audible part of espeak-ng's text (no silence before or after it). */
static bool rec_say_tight(struct rec *r, const char *text)
{
    struct rec one = {0};
    size_t a, b;
    bool ok = rec_say(&one, text);

    if (ok) {
        a = (size_t)(one.speech[0][0] * RATE);
        b = (size_t)(one.speech[0][1] * RATE) + 1;
        rec_add(r, one.x + a, b - a);
    }
    rec_free(&one);
    return ok;
}

/* A forced split (no pause of min_gap_s within max_chunk_s) cuts at the quietest
 * point of its last seconds, not at max_chunk_s: 45 s and more of speech run together (each
 * utterance's audible part only), with one short dip (DIP_S: far too short for a
 * pause, and one the VAD's probabilities hardly see) at about 25 s, under a faint
 * noise floor. The cut lands inside the dip, so no word is cut in half. (Cut by the
 * VAD's probabilities alone it landed 1.4 s past the dip, at 26.59 s.) */
#define DIP_S 0.08
TEST(test_forced_cut_at_the_dip)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    double dip0 = 0, dip1 = 0;
    uint32_t seed = 12345;
    size_t nc;
    int rc;

    cdt_transcript_init(&t);
    rec_silence(&r, 0.3);
    while ((double)r.n / RATE < 45.0) {
        if (dip0 == 0 && (double)r.n / RATE >= 23.0) {
            dip0 = (double)r.n / RATE;
            rec_silence(&r, DIP_S);
            dip1 = (double)r.n / RATE;
        }
        REQUIRE(rec_say_tight(&r, "the quick brown fox jumps over the lazy dog while seven "
                                  "wizards quietly box the jumping frogs near the river bank"));
    }
    rec_silence(&r, 0.3);
    for (size_t i = 0; i < r.n; i++) { /* a noise floor: the dip is quiet, not digital zero */
        seed = seed * 1664525u + 1013904223u;
        r.x[i] += ((float)(seed >> 8) / (float)(1u << 24) - 0.5f) * 0.002f;
    }
    REQUIRE(dip0 > 20.0 && dip1 < 28.0); /* in the forced split's search window */

    p.long_chunk_s = -1;
    rc = run_eager(&p, &r, false, &e, &t);
    CHECK_INT(rc, 0);
    c = cdt_eager_chunks(e, &nc);
    check_partition(c, nc, r.n);
    REQUIRE(nc >= 2);
    for (size_t i = 0; i < nc; i++)
        fprintf(stderr, "  chunk %.3f-%.3f%s%s\n", c[i].start, c[i].end,
                c[i].speech ? " speech" : "", c[i].forced ? " forced" : "");
    fprintf(stderr, "  the dip: %.3f-%.3f s\n", dip0, dip1);
    CHECK(c[0].forced);
    CHECK(c[0].end > dip0 && c[0].end < dip1);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    rec_free(&r);
}

/* A speaker who hardly pauses: sentences 0.3 s apart (under min_gap_s) for 40 s. A
 * chunk closes at such a pause once it is long_chunk_s (8 s) long, never before, so
 * the tail left for after stop stays short; with long_chunk_s < 0 only the 28 s split
 * cuts. */
TEST(test_short_pauses_close_long_chunks)
{
    static const char *say[] = {"please send the report to the whole team",
                                "the meeting moved to the large room on thursday",
                                "we still need the numbers for the second quarter",
                                "let me know if anything is missing from the plan"};
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    size_t nc, k = 0;
    double longest = 0;
    int rc;

    cdt_transcript_init(&t);
    rec_silence(&r, 0.3);
    while ((double)r.n / RATE < 40.0) {
        REQUIRE(rec_say_tight(&r, say[k++ % 4]));
        rec_silence(&r, 0.3);
    }
    p.backlog_s = -1;
    rc = run_eager(&p, &r, false, &e, &t);
    CHECK_INT(rc, 0);
    c = cdt_eager_chunks(e, &nc);
    check_partition(c, nc, r.n);
    check_segments(&t, r.n);
    REQUIRE(nc >= 3);
    for (size_t i = 0; i < nc; i++) {
        fprintf(stderr, "  chunk %.2f-%.2f%s%s\n", c[i].start, c[i].end,
                c[i].speech ? " speech" : "", c[i].forced ? " forced" : "");
        CHECK(!c[i].forced);
        if (i + 1 < nc)
            CHECK(c[i].end - c[i].start >= 8.0 - 0.05); /* not before long_chunk_s */
        if (c[i].end - c[i].start > longest)
            longest = c[i].end - c[i].start;
    }
    CHECK(longest < 8.0 + 5.0); /* closed at the first pause past 8 s */
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);

    /* Without the rule: the first chunk runs to the 28 s split. */
    cdt_transcript_init(&t);
    p.long_chunk_s = -1;
    rc = run_eager(&p, &r, false, &e, &t);
    CHECK_INT(rc, 0);
    c = cdt_eager_chunks(e, &nc);
    check_partition(c, nc, r.n);
    REQUIRE(nc >= 2);
    CHECK(c[0].end - c[0].start > 20.0);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    rec_free(&r);
}

/* Silence only (zeros, then faint noise): no chunk goes to whisper, no text. */
TEST(test_silence)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    size_t nc;
    int rc;

    cdt_transcript_init(&t);
    rec_silence(&r, 6.0);
    srand(16);
    for (int i = 0; i < 6 * RATE; i++) {
        float v = ((float)rand() / (float)RAND_MAX - 0.5f) * 0.002f;

        rec_add(&r, &v, 1);
    }
    rc = run_eager(&p, &r, false, &e, &t);
    CHECK_INT(rc, 0);
    c = cdt_eager_chunks(e, &nc);
    check_partition(c, nc, r.n);
    for (size_t i = 0; i < nc; i++) {
        CHECK(!c[i].speech);
        CHECK(c[i].ms == 0.0);
    }
    CHECK(nc >= 2); /* the silence went as it came, not all at the end */
    CHECK_STR(t.text, "");
    CHECK_INT(t.n_segments, 0);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    rec_free(&r);
}

/* Nothing at all, and a recording shorter than a VAD frame. */
TEST(test_tiny)
{
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    float x[100] = {0};
    size_t nc;

    cdt_transcript_init(&t);
    REQUIRE(cdt_eager_new(NULL, &e) == 0);
    CHECK_INT(cdt_eager_finish(e, tr, x, 0, &t), 0);
    c = cdt_eager_chunks(e, &nc);
    (void)c;
    CHECK_INT(nc, 0);
    CHECK_STR(t.text, "");
    cdt_eager_free(e);
    REQUIRE(cdt_eager_new(NULL, &e) == 0);
    CHECK_INT(cdt_eager_finish(e, tr, x, 100, &t), 0);
    c = cdt_eager_chunks(e, &nc);
    CHECK_INT(nc, 1);
    if (nc == 1)
        CHECK(fabs(c[0].end - 100.0 / RATE) < 1e-9);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
}

/* Misuse: finish with a recording that does not start with what was pushed. */
TEST(test_bad_finish)
{
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    float x[2048] = {0};
    struct cdt_eager_params p = cdt_eager_default_params();

    cdt_transcript_init(&t);
    p.max_chunk_s = 31;
    CHECK_INT(cdt_eager_new(&p, &e), CDT_EINVAL);
    REQUIRE(cdt_eager_new(NULL, &e) == 0);
    CHECK_INT(cdt_eager_push(e, x, 2048), 0);
    CHECK_INT(cdt_eager_finish(e, tr, x, 1000, &t), CDT_EINVAL);
    CHECK(cdt_eager_errmsg(e)[0] != '\0');
    cdt_eager_free(e);
}

/* Cancel while a chunk is being transcribed: finish says so at once, and the
 * transcriber is usable afterwards (the cancel does not leak into its next call). */
TEST(test_cancel_in_flight)
{
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    struct rec r = {0};
    double t0;
    int rc;

    cdt_transcript_init(&t);
    for (int i = 0; i < 6; i++) {
        REQUIRE(rec_say(&r, "This sentence is one of several spoken in a row"));
        rec_silence(&r, 1.0);
    }
    REQUIRE(cdt_eager_new(NULL, &e) == 0);
    REQUIRE(cdt_eager_start(e, tr) == 0);
    CHECK_INT(cdt_eager_push(e, r.x, r.n), 0);
    for (int i = 0; i < 600 && cdt_eager_chunk_count(e) == 0; i++)
        sleep_ms(10);
    cdt_eager_cancel(e);
    t0 = cdt_now_ms();
    rc = cdt_eager_finish(e, tr, r.x, r.n, &t);
    CHECK_INT(rc, CDT_ECANCELED);
    fprintf(stderr, "  cancelled after %zu chunks; finish took %.0f ms\n", cdt_eager_chunk_count(e),
            cdt_now_ms() - t0);
    cdt_eager_free(e);
    /* The next user of the transcriber is not cancelled. */
    CHECK_INT(cdt_transcribe_samples(tr, r.x, r.n, &t), 0);
    cdt_transcript_cleanup(&t);
    /* free while the worker runs (the session torn down mid-recording) */
    REQUIRE(cdt_eager_new(NULL, &e) == 0);
    REQUIRE(cdt_eager_start(e, tr) == 0);
    CHECK_INT(cdt_eager_push(e, r.x, r.n), 0);
    sleep_ms(50);
    cdt_eager_free(e);
    CHECK_INT(cdt_transcribe_samples(tr, r.x, RATE, &t), 0);
    cdt_transcript_cleanup(&t);
    rec_free(&r);
}

/* One utterance is one chunk with speech, given to whisper without a prompt on a
 * window fitted to it: the text of that audio transcribed alone (same model, greedy,
 * same window), and whisper's VAD hears in the chunk what it hears in the whole
 * recording, up to the cut (in the pause after the speech). (The whole recording on
 * whisper's full 30 s window is other input to a random model: the window's length
 * changes its encoder's output.) */
TEST(test_same_as_sequential)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_vad_stream *v = NULL;
    struct cdt_transcript t, s;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    size_t nc, speech = 0, end = 0, n_whole = 0, n_chunk = 0;
    double whole[2 * 4], chunk[2 * 4];

    cdt_transcript_init(&t);
    cdt_transcript_init(&s);
    rec_silence(&r, 0.5);
    REQUIRE(rec_say(&r, "Please send the report to the whole team"));
    rec_silence(&r, 1.5);
    CHECK_INT(run_eager(&p, &r, false, &e, &t), 0);
    c = cdt_eager_chunks(e, &nc);
    for (size_t i = 0; i < nc; i++) {
        speech += c[i].speech;
        if (c[i].speech)
            end = (size_t)(c[i].end * RATE + 0.5);
    }
    CHECK_INT(speech, 1); /* (and maybe the silence after it, which whisper skips too) */
    REQUIRE(c[0].speech && end > 0 && end <= r.n);
    CHECK_INT(cdt_transcribe_samples_after(tr, r.x, end, NULL, CDT_TRANSCRIBE_FIT_WINDOW, &s), 0);
    CHECK_STR(t.text, s.text);
    CHECK_INT(t.n_segments, s.n_segments);
    REQUIRE(cdt_vad_stream_new(tr, &v) == 0);
    CHECK_INT(cdt_vad_stream_spans(v, r.x, r.n, whole, 4, &n_whole), 0);
    CHECK_INT(cdt_vad_stream_spans(v, r.x, end, chunk, 4, &n_chunk), 0);
    CHECK_INT((int)n_chunk, (int)n_whole);
    for (size_t i = 0; i < n_whole && i < 4 && n_chunk == n_whole; i++) {
        double cut = (double)end / RATE;

        CHECK(fabs(whole[2 * i] - chunk[2 * i]) < 0.05);
        CHECK(chunk[2 * i + 1] >= fmin(whole[2 * i + 1], cut) - 0.05);
    }
    cdt_vad_stream_free(v);
    cdt_transcript_cleanup(&t);
    cdt_transcript_cleanup(&s);
    cdt_eager_free(e);
    rec_free(&r);
}

/* Each chunk with speech is transcribed as its samples alone (same window) with the
 * prompt cdt_eager_prompt_start gives for the text before it, or none with
 * no_context: the transcript is those texts one after another. (The tiny model's
 * second text differs with and without the prompt.) */
static void check_chunks_as_alone(bool no_context)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    const struct cdt_eager_chunk *c;
    struct rec r = {0};
    size_t nc, speech = 0, len = 0;
    char want[4096] = "";

    cdt_transcript_init(&t);
    rec_silence(&r, 0.5);
    REQUIRE(rec_say(&r, "The budget for the second quarter is still open"));
    rec_silence(&r, 1.5);
    REQUIRE(rec_say(&r, "Let me know if you have questions about the plan"));
    rec_silence(&r, 1.5);
    p.no_context = no_context;
    CHECK_INT(run_eager(&p, &r, false, &e, &t), 0);
    c = cdt_eager_chunks(e, &nc);
    for (size_t i = 0; i < nc; i++) {
        struct cdt_transcript alone;
        size_t a = (size_t)(c[i].start * RATE + 0.5), b = (size_t)(c[i].end * RATE + 0.5);

        if (!c[i].speech)
            continue;
        speech++;
        cdt_transcript_init(&alone);
        REQUIRE(b <= r.n && a < b);
        CHECK_INT(cdt_transcribe_samples_after(
                      tr, r.x + a, b - a, no_context ? NULL : cdt_eager_prompt_start(want),
                      c[i].window_s < 29.9 ? CDT_TRANSCRIBE_FIT_WINDOW : 0u, &alone),
                  0);
        if (alone.text && *alone.text && len < sizeof(want))
            len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s", len ? " " : "",
                                    alone.text);
        cdt_transcript_cleanup(&alone);
    }
    CHECK(speech >= 2);
    CHECK_STR(t.text ? t.text : "", want);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    rec_free(&r);
}

TEST(test_no_context)
{
    check_chunks_as_alone(true);
}

TEST(test_with_context)
{
    check_chunks_as_alone(false);
}

/* The prompt is the text's last whole sentences within CDT_EAGER_PROMPT_MAX bytes. */
TEST(test_prompt_start)
{
    char long_text[3 * CDT_EAGER_PROMPT_MAX], one[2 * CDT_EAGER_PROMPT_MAX];
    const char *s;
    size_t n = 0;

    CHECK(cdt_eager_prompt_start(NULL) == NULL);
    CHECK(cdt_eager_prompt_start("") == NULL);
    CHECK_STR(cdt_eager_prompt_start("one sentence"), "one sentence");
    CHECK_STR(cdt_eager_prompt_start("First. Second? Third!"), "First. Second? Third!");
    /* many sentences: the last ones that fit whole, from a sentence's start */
    while (n + 40 < sizeof(long_text))
        n += (size_t)snprintf(long_text + n, sizeof(long_text) - n, "Sentence %03zu is here. ",
                              n / 23);
    long_text[n - 1] = '\0';
    s = cdt_eager_prompt_start(long_text);
    REQUIRE(s != NULL);
    CHECK(strlen(s) <= CDT_EAGER_PROMPT_MAX);
    CHECK(strlen(s) > CDT_EAGER_PROMPT_MAX - 24); /* no whole sentence left out */
    CHECK(strncmp(s, "Sentence ", 9) == 0 && s[-2] == '.');
    /* one sentence longer than the limit: from a word's start */
    memset(one, 0, sizeof(one));
    for (n = 0; n + 6 < sizeof(one) - 1; n += 6)
        memcpy(one + n, "words ", 6);
    memcpy(one + n, "end", 3);
    s = cdt_eager_prompt_start(one);
    REQUIRE(s != NULL);
    CHECK(strlen(s) <= CDT_EAGER_PROMPT_MAX && s[-1] == ' ' && *s != ' ');
    /* CJK sentence ends; never inside a character */
    CHECK_STR(
        cdt_eager_prompt_start("\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82\xe5\x86\x8d\xe8\xa7\x81"),
        "\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82\xe5\x86\x8d\xe8\xa7\x81");
    CHECK_STR(cdt_eager_prompt_start("\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82 \xe5\x86\x8d"),
              "\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82 \xe5\x86\x8d");
    n = 0;
    while (n + 12 < sizeof(long_text)) {
        memcpy(long_text + n, "\xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82", 9);
        n += 9;
    }
    long_text[n] = '\0';
    s = cdt_eager_prompt_start(long_text);
    REQUIRE(s != NULL);
    CHECK(strlen(s) <= CDT_EAGER_PROMPT_MAX && strncmp(s, "\xe4\xbd\xa0", 3) == 0);
    CHECK(memcmp(s - 3, "\xe3\x80\x82", 3) == 0);
    n = 0; /* a space after each mark, and one inside each sentence */
    while (n + 18 < sizeof(long_text)) {
        memcpy(long_text + n, "\xe4\xbd\xa0\xe5\xa5\xbd \xe5\x86\x8d\xe8\xa7\x81\xe3\x80\x82 ", 17);
        n += 17;
    }
    long_text[n - 1] = '\0';
    s = cdt_eager_prompt_start(long_text);
    REQUIRE(s != NULL);
    CHECK(strlen(s) > CDT_EAGER_PROMPT_MAX - 17 && strncmp(s, "\xe4\xbd\xa0", 3) == 0);
}

/* ---- refinement ahead on the eager transcript (issue 16) ---- */

/* A model that answers each piece with itself (accepted by the guards). */
static int same_llm(const struct cdt_refine_llm_request *req, struct cdt_refine_llm_reply *reply,
                    char *errmsg, size_t errcap, void *ud)
{
    const char *a = strstr(req->transcript, "<transcript>\n"),
               *b = strstr(req->transcript, "\n</transcript>");

    (void)errmsg;
    (void)errcap;
    (void)ud;
    reply->text = strndup(a + 13, (size_t)(b - a - 13));
    return reply->text ? 0 : CDT_ENOMEM;
}

struct offered {
    pthread_mutex_t mu;
    struct cdt_refine_ahead *ahead;
    int words; /* in the text so far */
};

static void on_text(const char *text, void *ud)
{
    struct offered *o = ud;
    int n = 0;

    for (const char *p = text; *p; p++)
        n += (p == text || *(p - 1) == ' ') && *p != ' ';
    pthread_mutex_lock(&o->mu);
    o->words = n;
    pthread_mutex_unlock(&o->mu);
    cdt_refine_ahead_offer(o->ahead, text);
}

static char *word_lines(const char *s)
{
    char *out = malloc(strlen(s) + 2), *o = out;

    while (out && *s) {
        size_t n;

        s += strspn(s, " \t\n");
        if (!(n = strcspn(s, " \t\n")))
            break;
        memcpy(o, s, n);
        o += n;
        *o++ = '\n';
        s += n;
    }
    if (out)
        *o = '\0';
    return out;
}

/* The eager worker offers each chunk's text to the refinement ahead; the pieces it
 * refined while "recording" are taken after finish, and the text is the one the whole
 * transcript refined after stop gives, every word once. (Pieces of at most two words,
 * so that even the random model's text has finished pieces.) */
TEST(test_refine_ahead_on_eager_text)
{
    struct cdt_eager_params p = cdt_eager_default_params();
    struct cdt_refine_params rp = cdt_refine_default_params();
    struct offered o = {.words = 0};
    struct cdt_eager *e = NULL;
    struct cdt_transcript t;
    struct cdt_refine_result r, whole;
    struct rec rec = {0};
    size_t step = RATE / 10;
    int words;

    pthread_mutex_init(&o.mu, NULL);
    cdt_transcript_init(&t);
    rp.provider = CDT_REFINE_CALLBACK;
    rp.llm = same_llm;
    rp.chunk_words = 1;
    REQUIRE(cdt_refine_ahead_new(&rp, &o.ahead) == 0);
    p.on_text = on_text;
    p.user_data = &o;
    rec_silence(&rec, 0.3);
    REQUIRE(rec_say(&rec, "Please send the report to the whole team today"));
    rec_silence(&rec, 1.2);
    REQUIRE(rec_say(&rec, "Then we can talk about it on Monday morning"));
    rec_silence(&rec, 0.3);
    REQUIRE(cdt_eager_new(&p, &e) == 0);
    REQUIRE(cdt_eager_start(e, tr) == 0);
    for (size_t at = 0; at < rec.n; at += step) {
        size_t k = rec.n - at < step ? rec.n - at : step;

        if (cdt_eager_push(e, rec.x + at, k) != 0)
            break;
        if (at < rec.n / 2 && at + k >= rec.n / 2)
            for (int i = 0; i < 600 && cdt_eager_chunk_count(e) == 0; i++)
                sleep_ms(100);
    }
    pthread_mutex_lock(&o.mu);
    words = o.words;
    pthread_mutex_unlock(&o.mu);
    if (words >= 3) /* a finished piece: wait for it, however slow the machine */
        for (int i = 0; i < 6000 && cdt_refine_ahead_count(o.ahead) == 0; i++)
            sleep_ms(100);
    CHECK_INT(cdt_eager_finish(e, tr, rec.x, rec.n, &t), 0);
    rp.ahead = o.ahead;
    REQUIRE(cdt_refine_run(&rp, t.text, &r) == 0);
    rp.ahead = NULL;
    REQUIRE(cdt_refine_run(&rp, t.text, &whole) == 0);
    printf("  %d words before stop; %d of %d pieces refined ahead\n", words, r.timings.pieces_ahead,
           r.timings.pieces);
    CHECK_STR(r.refined, whole.refined);
    CHECK_INT(r.reason, whole.reason);
    CHECK_INT(r.timings.pieces, whole.timings.pieces);
    if (words >= 3)
        CHECK(r.timings.pieces_ahead >= 1 && r.timings.piece_ahead[0]);
    {
        char *a = word_lines(r.refined), *b = word_lines(r.cleaned);

        REQUIRE(a && b);
        CHECK_STR(a, b); /* this model keeps every piece: every word once, in order */
        free(a);
        free(b);
    }
    cdt_refine_result_cleanup(&r);
    cdt_refine_result_cleanup(&whole);
    cdt_transcript_cleanup(&t);
    cdt_eager_free(e);
    cdt_refine_ahead_free(o.ahead);
    pthread_mutex_destroy(&o.mu);
    rec_free(&rec);
}

/* The streaming VAD: frames only, silence reads as silence. */
TEST(test_vad_stream)
{
    struct cdt_vad_stream *v = NULL;
    float x[CDT_VAD_FRAME * 4] = {0}, probs[4];

    REQUIRE(cdt_vad_stream_new(tr, &v) == 0);
    CHECK_INT(cdt_vad_stream_feed(v, x, CDT_VAD_FRAME * 4, probs), 0);
    for (int i = 0; i < 4; i++)
        CHECK(probs[i] < 0.35f);
    CHECK_INT(cdt_vad_stream_feed(v, x, 100, probs), CDT_EINVAL);
    cdt_vad_stream_free(v);
}

/* What whisper hears with VAD on starts before a sentence's first sound and ends
 * after its last: whisper.cpp's default padding (30 ms) cut soft first words off
 * ("The budget" -> "budget", "I think" -> "Think") in the real-speech bench. */
TEST(test_vad_keeps_first_words)
{
    static const char *says[] = {
        "The budget for the second quarter is still open.",
        "I think we should move the meeting to Thursday afternoon.",
        "The numbers look better than we expected in March.",
        "Have a good weekend.",
    };
    struct cdt_vad_stream *v = NULL;

    REQUIRE(cdt_vad_stream_new(tr, &v) == 0);
    for (size_t i = 0; i < sizeof(says) / sizeof(says[0]); i++) {
        struct rec r = {0};
        double spans[2 * 8];
        size_t ns = 0;

        rec_silence(&r, 0.7);
        REQUIRE(rec_say(&r, says[i]));
        rec_silence(&r, 0.5);
        CHECK_INT(cdt_vad_stream_spans(v, r.x, r.n, spans, 8, &ns), 0);
        CHECK(ns >= 1 && ns <= 8);
        if (ns >= 1 && ns <= 8) {
            if (spans[0] > r.speech[0][0] || spans[2 * ns - 1] < r.speech[0][1])
                fprintf(stderr, "  \"%s\": heard %.2f-%.2f s of %zu spans, sound %.2f-%.2f s\n",
                        says[i], spans[0], spans[2 * ns - 1], ns, r.speech[0][0], r.speech[0][1]);
            CHECK(spans[0] <= r.speech[0][0]);
            CHECK(spans[2 * ns - 1] >= r.speech[0][1]);
        }
        rec_free(&r);
    }
    {
        size_t ns = 1;
        double spans[2];

        CHECK_INT(cdt_vad_stream_spans(v, NULL, 0, spans, 1, &ns), 0);
        CHECK_INT((int)ns, 0);
        CHECK_INT(cdt_vad_stream_spans(NULL, NULL, 0, spans, 1, &ns), CDT_EINVAL);
        CHECK_INT(cdt_vad_stream_spans(v, NULL, 0, spans, 1, NULL), CDT_EINVAL);
    }
    cdt_vad_stream_free(v);
}

int main(int argc, char **argv)
{
    struct cdt_transcribe_params p = cdt_transcribe_default_params();
    char err[1024];

    if (argc != 3) {
        fprintf(stderr, "usage: test_eager WHISPER.bin VAD.bin\n");
        return 2;
    }
    model_path = argv[1];
    vad_path = argv[2];
    if (system("command -v espeak-ng >/dev/null") != 0) {
        fprintf(stderr, "espeak-ng is needed (scripts/deps.sh installs it)\n");
        return 1;
    }
    if (!mkdtemp(tmpdir))
        return 1;
    p.model_path = model_path;
    p.vad = true;
    p.vad_model_path = vad_path;
    p.n_threads = 2;
    if (cdt_transcribe_new(&p, &tr, err, sizeof(err)) != 0) {
        fprintf(stderr, "cannot load the models: %s\n", err);
        return 1;
    }
    RUN(test_vad_stream);
    RUN(test_vad_keeps_first_words);
    RUN(test_cuts_in_pauses);
    RUN(test_cuts_independent_of_pace);
    RUN(test_long_unbroken);
    RUN(test_forced_cut_at_the_dip);
    RUN(test_short_pauses_close_long_chunks);
    RUN(test_silence);
    RUN(test_tiny);
    RUN(test_bad_finish);
    RUN(test_cancel_in_flight);
    RUN(test_same_as_sequential);
    RUN(test_no_context);
    RUN(test_with_context);
    RUN(test_prompt_start);
    RUN(test_refine_ahead_on_eager_text);
    cdt_transcribe_free(tr);
    {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return TEST_END();
}
