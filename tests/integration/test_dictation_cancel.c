/* Cancel reaches a model call under way (issue 16): a dictation (the session the
 * CLI's dictate and the app run) is cancelled while its transcript is being refined
 * by a slow model behind the real sidecar server (tests/integration/scripted_sidecar:
 * the product's HTTP server, worker and cancellation on a backend that answers a
 * scripted text slowly), spawned by the real lifecycle manager. Checks: wait returns
 * within a bound of the cancel (not when the model would have finished), the
 * session ends "cancelled" with the recording saved whole and the history entry
 * "cancelled", and the sidecar's generation was cancelled (the backend saw its
 * client go) long before its end; cancelled while whisper transcribes a long
 * recording, whisper stops. Then the same session uncancelled delivers the model's
 * text (so the slow model really was being waited for).
 *   test_dictation_cancel WHISPER.bin SCRIPTED_SIDECAR */
#include "../test.h"
#include "codictate/audio.h"
#include "codictate/catalog.h"
#include "codictate/dictation.h"
#include "codictate/history.h"
#include "codictate/models.h"
#include "codictate/refine.h"
#include "codictate/refiner.h"
#include "codictate/transcribe.h"
#include "codictate/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DELAY_MS  100  /* each scripted piece (4 bytes) takes this long */
#define CANCEL_MS 1000 /* cancel → wait returned, at most (the bound the issue asks) */

static const char *whisper_path, *scripted_exe;
static char tmpdir[] = "/tmp/cdt-dict-cancel-XXXXXX";
static char script[300], cancel_log[300], fake_model[300], speech[300], hist_dir[300];
static struct cdt_transcribe *tr;
static struct cdt_catalog *cat;
static struct cdt_models *models;
static struct cdt_refiner *refiner;

/* The model's answer: 31 pieces, 3.1 s at DELAY_MS each. */
static const char answer[] = "Please send the quarterly report to the finance team by Friday, "
                             "and copy the whole sales group on it, thanks a lot. Okay?";

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    if (!f)
        return false;
    fputs(text, f);
    return fclose(f) == 0;
}

/* The session's events: transcribing and refining began; the model's first
 * streamed piece. */
struct watch {
    bool stream; /* ask for DELTA events */
    atomic_bool transcribing, refining, generating;
    double t_transcribing, t_refining, t_first;
};

static void on_event(const struct cdt_dictation_event *ev, void *ud)
{
    struct watch *w = ud;

    if (ev->kind == CDT_DICT_EV_STATE && ev->status->state == CDT_DICT_TRANSCRIBING &&
        !atomic_load(&w->transcribing)) {
        w->t_transcribing = cdt_now_ms();
        atomic_store(&w->transcribing, true);
    }
    if (ev->kind == CDT_DICT_EV_STATE && ev->status->state == CDT_DICT_REFINING &&
        !atomic_load(&w->refining)) {
        w->t_refining = cdt_now_ms();
        atomic_store(&w->refining, true);
    }
    if (ev->kind == CDT_DICT_EV_DELTA && !atomic_load(&w->generating)) {
        w->t_first = cdt_now_ms();
        atomic_store(&w->generating, true);
    }
}

struct waiter {
    struct cdt_dictation *d;
    struct cdt_dictation_result res;
    int rc;
    double t_done;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    char err[512];

    w->rc = cdt_dictation_wait(w->d, &w->res, err, sizeof(err));
    w->t_done = cdt_now_ms();
    return NULL;
}

/* A dictation of the espeak-ng file said `times` times over (the same path as
 * captured audio after stop). */
static struct cdt_dictation *start(struct watch *w, int times, size_t *n_samples)
{
    struct cdt_dictation_params p = cdt_dictation_default_params();
    struct cdt_dictation *d = NULL;
    struct cdt_audio a;
    char err[512];

    cdt_audio_init(&a);
    if (cdt_audio_load(&a, speech) != 0) {
        cdt_audio_cleanup(&a);
        return NULL;
    }
    p.source = CDT_DICT_SAMPLES;
    p.n_samples = *n_samples = a.n_samples * (size_t)times;
    p.samples = malloc(p.n_samples * sizeof(float)); /* taken over */
    for (int i = 0; p.samples && i < times; i++)
        memcpy(p.samples + (size_t)i * a.n_samples, a.samples, a.n_samples * sizeof(float));
    cdt_audio_cleanup(&a);
    if (!p.samples)
        return NULL;
    p.transcriber = tr;
    p.refiner = refiner;
    p.history_dir = hist_dir;
    p.on_event = on_event;
    p.user_data = w;
    p.stream_refine = w->stream; /* DELTA events: the generation is under way */
    if (cdt_dictation_start(&p, &d, err, sizeof(err)) != 0) {
        fprintf(stderr, "  dictation: %s\n", err);
        return NULL;
    }
    return d;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;

    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* The history's entry `id`: its status (caller frees), or NULL. */
static char *history_status(const char *id)
{
    struct cdt_history_params hp = cdt_history_default_params();
    struct cdt_history *h = NULL;
    struct cdt_history_entry *v = NULL;
    size_t n = 0;
    char *status = NULL;

    hp.dir = hist_dir;
    if (cdt_history_new(&hp, &h) != 0)
        return NULL;
    if (cdt_history_list(h, &v, &n, NULL) == 0)
        for (size_t i = 0; i < n && !status; i++)
            if (strcmp(v[i].id, id) == 0 && v[i].status)
                status = strdup(v[i].status);
    cdt_history_entries_free(v, n);
    cdt_history_free(h);
    return status;
}

static void cancel_while_refining(bool stream)
{
    struct watch w = {.stream = stream};
    struct waiter wt = {0};
    pthread_t th;
    size_t n = 0;
    double t_cancel;
    char *status;
    struct cdt_audio saved;

    unlink(cancel_log);
    wt.d = start(&w, 1, &n);
    REQUIRE(wt.d);
    REQUIRE(pthread_create(&th, NULL, wait_main, &wt) == 0);
    /* Until the model is into its answer (a few pieces out of 31): streamed, its
     * first piece says so; else the sidecar is up (an earlier case started it) and
     * the request starts as refining does. */
    for (int i = 0; i < 600 && !atomic_load(stream ? &w.generating : &w.refining); i++)
        sleep_ms(50);
    REQUIRE(atomic_load(stream ? &w.generating : &w.refining));
    sleep_ms(stream ? 500 : 800);
    t_cancel = cdt_now_ms();
    cdt_dictation_cancel(wt.d);
    pthread_join(th, NULL);
    printf("  %s: refining for %.0f ms, then cancel: wait returned in %.0f ms\n",
           stream ? "streamed" : "not streamed", t_cancel - w.t_refining, wt.t_done - t_cancel);
    CHECK_INT(wt.rc, 0);
    CHECK(wt.t_done - t_cancel < CANCEL_MS);
    CHECK_INT(wt.res.state, CDT_DICT_CANCELLED);
    CHECK(wt.res.transcribed);
    CHECK(wt.res.text == NULL); /* nothing delivered */
    /* The recording is saved whole. */
    REQUIRE(wt.res.recording);
    cdt_audio_init(&saved);
    CHECK(cdt_audio_load(&saved, wt.res.recording) == 0);
    CHECK(saved.n_samples == n);
    cdt_audio_cleanup(&saved);
    status = history_status(wt.res.id);
    CHECK_STR(status ? status : "(none)", "cancelled");
    free(status);
    /* The sidecar cancelled the generation (its client went), long before its end. */
    for (int i = 0; i < 100 && count_lines(cancel_log) == 0; i++)
        sleep_ms(20);
    CHECK_INT(count_lines(cancel_log), 1);
    {
        FILE *f = fopen(cancel_log, "r");
        int pieces = -1;

        if (f) {
            if (fscanf(f, "cancelled after %d pieces", &pieces) != 1)
                pieces = -1;
            fclose(f);
        }
        printf("  the sidecar's generation was cancelled after %d of %zu pieces\n", pieces,
               (sizeof(answer) - 1 + 3) / 4);
        CHECK(pieces >= 1 && pieces < 20);
    }
    cdt_dictation_result_cleanup(&wt.res);
    cdt_dictation_free(wt.d);
}

/* Cancelled while whisper transcribes a long file (228 s: about 6 s for the tiny
 * model here): whisper stops, wait returns at once, nothing was transcribed, the
 * recording is kept whole; the transcriber works for the next dictation (the
 * cancel does not linger on it: the uncancelled case below runs on it). */
TEST(cancel_while_transcribing)
{
    struct watch w = {0};
    struct waiter wt = {0};
    pthread_t th;
    size_t n = 0;
    double t_cancel;
    char *status;
    struct cdt_audio saved;

    unlink(cancel_log);
    wt.d = start(&w, 40, &n);
    REQUIRE(wt.d);
    REQUIRE(pthread_create(&th, NULL, wait_main, &wt) == 0);
    for (int i = 0; i < 600 && !atomic_load(&w.transcribing); i++)
        sleep_ms(50);
    REQUIRE(atomic_load(&w.transcribing));
    sleep_ms(800);
    t_cancel = cdt_now_ms();
    cdt_dictation_cancel(wt.d);
    pthread_join(th, NULL);
    printf("  transcribing for %.0f ms, then cancel: wait returned in %.0f ms\n",
           t_cancel - w.t_transcribing, wt.t_done - t_cancel);
    CHECK_INT(wt.rc, 0);
    CHECK(wt.t_done - t_cancel < CANCEL_MS);
    CHECK_INT(wt.res.state, CDT_DICT_CANCELLED);
    CHECK(!wt.res.transcribed);
    CHECK(!atomic_load(&w.refining));
    REQUIRE(wt.res.recording);
    cdt_audio_init(&saved);
    CHECK(cdt_audio_load(&saved, wt.res.recording) == 0);
    CHECK(saved.n_samples == n);
    cdt_audio_cleanup(&saved);
    status = history_status(wt.res.id);
    CHECK_STR(status ? status : "(none)", "cancelled");
    free(status);
    CHECK_INT(count_lines(cancel_log), 0); /* the model was never asked */
    cdt_dictation_result_cleanup(&wt.res);
    cdt_dictation_free(wt.d);
}

TEST(cancel_while_refining_streamed)
{
    cancel_while_refining(true);
}

TEST(cancel_while_refining_not_streamed)
{
    cancel_while_refining(false);
}

/* The same dictation, not cancelled: the model's text after the whole slow answer
 * (so the cancel above cut a call that would have run for seconds). */
TEST(uncancelled_waits_for_the_model)
{
    struct watch w = {0};
    struct waiter wt = {0};
    size_t n = 0;

    unlink(cancel_log);
    wt.d = start(&w, 1, &n);
    REQUIRE(wt.d);
    wait_main(&wt);
    CHECK_INT(wt.rc, 0);
    CHECK_INT(wt.res.state, CDT_DICT_DONE);
    CHECK(wt.res.refined);
    printf("  uncancelled: refined in %.0f ms (%s)\n", wt.res.refine_ms,
           wt.res.refined && wt.res.refine.fallback_reason ? wt.res.refine.fallback_reason
                                                           : "the model's text");
    CHECK(wt.res.refine_ms > 2500); /* 31 pieces of 100 ms */
    CHECK_INT(count_lines(cancel_log), 0);
    cdt_dictation_result_cleanup(&wt.res);
    cdt_dictation_free(wt.d);
}

/* main's checks: a setup that fails ends the test (exit 1). */
#define SETUP(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "setup failed: %s (%s)\n", #cond, err);                                \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    struct cdt_transcribe_params tp = cdt_transcribe_default_params();
    struct cdt_models_params mp = cdt_models_default_params();
    struct cdt_refiner_opts ro;
    char err[1024] = "", cmd[700];

    if (argc != 3) {
        fprintf(stderr, "usage: test_dictation_cancel WHISPER.bin SCRIPTED_SIDECAR\n");
        return 2;
    }
    whisper_path = argv[1];
    scripted_exe = argv[2];
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(script, sizeof(script), "%s/script.txt", tmpdir);
    snprintf(cancel_log, sizeof(cancel_log), "%s/cancelled.log", tmpdir);
    snprintf(fake_model, sizeof(fake_model), "%s/scripted.gguf", tmpdir);
    snprintf(speech, sizeof(speech), "%s/speech.wav", tmpdir);
    snprintf(hist_dir, sizeof(hist_dir), "%s/history", tmpdir);
    SETUP(write_file(fake_model, "any readable file loads as a scripted model"));
    SETUP(write_file(script, answer));
    /* The scripted sidecar inherits these. */
    setenv("CDT_SCRIPTED_OUTPUT", script, 1);
    setenv("CDT_SCRIPTED_CANCEL_LOG", cancel_log, 1);
    snprintf(cmd, sizeof(cmd), "%d", DELAY_MS);
    setenv("CDT_SCRIPTED_DELAY_MS", cmd, 1);
    snprintf(cmd, sizeof(cmd),
             "espeak-ng -w '%s' 'Please send the quarterly report to the finance team by "
             "Friday.' 2>/dev/null",
             speech);
    SETUP(system(cmd) == 0);

    tp.model_path = whisper_path;
    tp.n_threads = 1;
    SETUP(cdt_transcribe_new(&tp, &tr, err, sizeof(err)) == 0);
    SETUP(cdt_catalog_load_default(&cat, err, sizeof(err)) == 0);
    mp.catalog = cat;
    mp.manager.sidecar_exe = scripted_exe;
    mp.manager.state_dir = tmpdir;
    mp.manager.idle_timeout_s = CDT_IDLE_NEVER;
    mp.manager.request_timeout_ms = 60000;
    SETUP(cdt_models_new(&mp, &models) == 0);
    memset(&ro, 0, sizeof(ro));
    ro.provider = "local";
    ro.model = fake_model;
    ro.catalog = cat;
    ro.models = models;
    ro.timeout_ms = 30000; /* the deadline is not what ends the call */
    ro.no_env = true;
    /* Custom instructions: the model is asked whatever the transcript (the tiny
     * whisper model's text is noise, which may read as already clean). */
    ro.instructions = "Rewrite the transcript.";
    SETUP(cdt_refiner_new(&ro, &refiner, err, sizeof(err)) == 0);

    RUN(cancel_while_refining_streamed);
    RUN(cancel_while_refining_not_streamed);
    RUN(cancel_while_transcribing);
    RUN(uncancelled_waits_for_the_model);

    cdt_refiner_free(refiner);
    cdt_models_free(models);
    cdt_catalog_free(cat);
    cdt_transcribe_free(tr);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
