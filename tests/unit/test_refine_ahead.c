/* Refinement ahead (refine_ahead.c) through a callback provider: the finished pieces
 * of a growing transcript are refined in the background, the run after stop takes
 * them and asks only the rest, and the text delivered is the one a whole run gives:
 * every word once, in order. One piece's guard tripping or its provider failing
 * falls back alone; cancel starts no new piece; the local provider with no model
 * (the deterministic path) falls back as a whole run does. No timing is asserted:
 * the waits poll until the worker is done, however slow the machine. */
#include "../test.h"
#include "codictate/refine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Echoes the transcript with "!" for its last "."; answers "Something else
 * entirely." to one that says "bad"; fails once for one that says "broken" (the
 * first time it is asked). With `gate` set, a call waits until it is cleared. */
struct echo {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, in_call;
    bool gate, broken_done;
};

static int echo_llm(const struct cdt_refine_llm_request *req, struct cdt_refine_llm_reply *reply,
                    char *errmsg, size_t errcap, void *ud)
{
    struct echo *e = ud;
    const char *a = strstr(req->transcript, "<transcript>\n"),
               *b = strstr(req->transcript, "\n</transcript>");
    char *t, *dot;
    bool fail = false;

    pthread_mutex_lock(&e->mu);
    e->calls++;
    e->in_call++;
    pthread_cond_broadcast(&e->cv);
    while (e->gate)
        pthread_cond_wait(&e->cv, &e->mu);
    if (strstr(a, "broken") && !e->broken_done)
        fail = e->broken_done = true;
    e->in_call--;
    pthread_mutex_unlock(&e->mu);
    if (fail) {
        snprintf(errmsg, errcap, "down");
        return CDT_ENET;
    }
    if (!(t = strndup(a + 13, (size_t)(b - a - 13))))
        return CDT_ENOMEM;
    if (strstr(t, "bad")) {
        free(t);
        t = strdup("Something else entirely.");
    } else if ((dot = strrchr(t, '.')) != NULL) {
        *dot = '!';
    }
    reply->text = t;
    return t ? 0 : CDT_ENOMEM;
}

static void echo_init(struct echo *e)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
}

static void echo_cleanup(struct echo *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

static int echo_calls(struct echo *e)
{
    int n;

    pthread_mutex_lock(&e->mu);
    n = e->calls;
    pthread_mutex_unlock(&e->mu);
    return n;
}

static struct cdt_refine_params echo_params(struct echo *e)
{
    struct cdt_refine_params p = cdt_refine_default_params();

    p.provider = CDT_REFINE_CALLBACK;
    p.llm = echo_llm;
    p.user_data = e;
    p.chunk_words = 10;
    return p;
}

/* Two providers: e for the refinement ahead and the run that takes from it, w for
 * the whole run whose text that run must give. */
static void echoes_init(struct echo *e, struct echo *w, struct cdt_refine_params *p,
                        struct cdt_refine_params *pw)
{
    echo_init(e);
    echo_init(w);
    *p = echo_params(e);
    *pw = echo_params(w);
}

/* Frees what a test of echoes_init made. */
static void echoes_cleanup(struct echo *e, struct echo *w, struct cdt_refine_ahead *a,
                           struct cdt_refine_result *r, struct cdt_refine_result *whole)
{
    cdt_refine_result_cleanup(r);
    cdt_refine_result_cleanup(whole);
    cdt_refine_ahead_free(a);
    echo_cleanup(e);
    echo_cleanup(w);
}

/* Waits (without a time limit that a slow machine could miss: 10 minutes) until the
 * worker has answered n pieces. */
static bool wait_count(struct cdt_refine_ahead *a, size_t n)
{
    for (int i = 0; i < 60000; i++) {
        if (cdt_refine_ahead_count(a) >= n)
            return true;
        usleep(10000);
    }
    return false;
}

/* The words of s, one per line, for comparing word sequences. */
static char *words_of(const char *s)
{
    char *out = malloc(strlen(s) + 2), *o = out;

    if (!out)
        return NULL;
    while (*s) {
        size_t n;

        s += strspn(s, " \t\n");
        n = strcspn(s, " \t\n");
        if (!n)
            break;
        memcpy(o, s, n);
        o += n;
        *o++ = '\n';
        s += n;
    }
    *o = '\0';
    return out;
}

static const char *const full =
    "so the first paragraph has words one two three. and it has a second sentence too.\n\n"
    "the second paragraph is bad and will be rejected.\n\n"
    "the third paragraph is um short. and the last sentence is still being said";

/* What the transcript said at times while it grew (each a prefix of full). */
static const char *const growing[] = {
    "so the first paragraph has words one two three.",
    "so the first paragraph has words one two three. and it has a second sentence too.",
    "so the first paragraph has words one two three. and it has a second sentence too.\n\n"
    "the second paragraph is bad and will be rejected.\n\n"
    "the third paragraph is um short. and the last sentence is still",
};

/* Pieces of full: "So the first …!", "And it has …!", the bad one (kept), "The third …!"
 * (finished while recording), and the last sentence (after stop). */
TEST(ahead_gives_the_whole_runs_text)
{
    struct echo e, w;
    struct cdt_refine_params p, pw;
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r, whole;
    char *wr, *ww;

    echoes_init(&e, &w, &p, &pw);
    REQUIRE(cdt_refine_run(&pw, full, &whole) == 0);
    CHECK_INT(whole.timings.pieces, 5);
    CHECK_INT(whole.timings.pieces_ahead, 0);
    CHECK_INT(whole.reason, CDT_REFINE_PARTIAL);

    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    for (size_t i = 0; i < sizeof(growing) / sizeof(growing[0]); i++) {
        cdt_refine_ahead_offer(a, growing[i]);
        if (i == 1)
            CHECK(wait_count(a, 1)); /* the first sentence, not the second (last) yet */
    }
    CHECK(wait_count(a, 4)); /* the third paragraph's first sentence is finished */
    CHECK_INT(cdt_refine_ahead_count(a), 4);
    CHECK_INT(echo_calls(&e), 4);

    p.ahead = a;
    REQUIRE(cdt_refine_run(&p, full, &r) == 0);
    CHECK_INT(echo_calls(&e), 5); /* only the tail was asked after stop */
    CHECK_STR(r.refined, whole.refined);
    CHECK_INT(r.reason, whole.reason);
    CHECK_STR(r.fallback_reason, whole.fallback_reason);
    CHECK_INT(r.timings.pieces, 5);
    CHECK_INT(r.timings.pieces_ahead, 4);
    CHECK(r.timings.piece_ahead[0] && r.timings.piece_ahead[1] && r.timings.piece_ahead[2] &&
          r.timings.piece_ahead[3] && !r.timings.piece_ahead[4]);
    /* Every word once, in order (and the same as the whole run's). */
    wr = words_of(r.refined);
    ww = words_of(whole.refined);
    REQUIRE(wr && ww);
    CHECK_STR(wr, ww);
    CHECK(strstr(r.refined, "The second paragraph is bad and will be rejected.\n\n") != NULL);
    CHECK(strstr(r.refined, "So the first paragraph has words one two three! And it has") != NULL);
    free(wr);
    free(ww);
    echoes_cleanup(&e, &w, a, &r, &whole);
}

/* A text the final transcript does not continue as offered (its deterministic pass
 * or its cut differs): those pieces are asked again, nothing is taken twice. */
TEST(ahead_differing_text_is_asked_again)
{
    struct echo e, w;
    struct cdt_refine_params p, pw;
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r, whole;

    echoes_init(&e, &w, &p, &pw);
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(
        a, "the first sentence is here. the second one is here too. and more words are coming");
    CHECK(wait_count(a, 2));
    p.ahead = a;
    /* The final transcript says something else after the first sentence. */
    REQUIRE(cdt_refine_run(&p, "the first sentence is here. the second one changed a lot.", &r) ==
            0);
    REQUIRE(cdt_refine_run(&pw, "the first sentence is here. the second one changed a lot.",
                           &whole) == 0);
    CHECK_STR(r.refined, whole.refined);
    CHECK_INT(r.timings.pieces, 2);
    CHECK_INT(r.timings.pieces_ahead, 1); /* the first sentence; the second is asked again */
    CHECK(r.timings.piece_ahead[0] && !r.timings.piece_ahead[1]);
    CHECK_INT(echo_calls(&e), 3);
    echoes_cleanup(&e, &w, a, &r, &whole);
}

/* A sentence said twice (dictations repeat "thank you.", a bench repeats its
 * sentences): each time is a piece of its own, refined ahead, not skipped as answered
 * by the first and left for after stop. */
TEST(ahead_repeated_sentence_is_refined_ahead)
{
    static const char *const said =
        "the first sentence is here. the second one is here too. the first sentence is here. "
        "the second one is here too. and the last one is still being said";
    struct echo e, w;
    struct cdt_refine_params p, pw;
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r, whole;

    echoes_init(&e, &w, &p, &pw);
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, "the first sentence is here. the second one is here too. the first "
                              "sentence is here");
    CHECK(wait_count(a, 2));
    cdt_refine_ahead_offer(a, said);
    CHECK(wait_count(a, 4)); /* all four finished sentences: two of them twice */
    CHECK_INT(echo_calls(&e), 4);
    p.ahead = a;
    REQUIRE(cdt_refine_run(&p, said, &r) == 0);
    REQUIRE(cdt_refine_run(&pw, said, &whole) == 0);
    CHECK_STR(r.refined, whole.refined);
    CHECK_INT(r.timings.pieces, 5);
    CHECK_INT(r.timings.pieces_ahead, 4); /* only the last sentence after stop */
    CHECK(!r.timings.piece_ahead[4]);
    CHECK_INT(echo_calls(&e), 5);
    echoes_cleanup(&e, &w, a, &r, &whole);
}

/* The provider fails for one piece while recording: that piece keeps its
 * deterministic text, the pieces after it are still refined (ahead and after stop). */
TEST(ahead_provider_failure_falls_back_alone)
{
    static const char *const text = "the first piece is fine here. the broken piece comes next. "
                                    "the third piece is fine too. and the tail";
    struct echo e;
    struct cdt_refine_params p;
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r;

    echo_init(&e);
    p = echo_params(&e);
    p.chunk_words = 6;
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, text);
    CHECK(wait_count(a, 3));
    p.ahead = a;
    REQUIRE(cdt_refine_run(&p, text, &r) == 0);
    CHECK_INT(r.reason, CDT_REFINE_PARTIAL);
    CHECK_STR(r.refined, "The first piece is fine here! The broken piece comes next. The third "
                         "piece is fine too! And the tail");
    CHECK_INT(r.timings.pieces, 4);
    CHECK_INT(r.timings.pieces_ahead, 3);
    CHECK_INT(echo_calls(&e), 4); /* the broken piece was not asked again after stop */
    cdt_refine_result_cleanup(&r);
    cdt_refine_ahead_free(a);
    echo_cleanup(&e);
}

/* Cancel while a piece is being refined: no piece is started after it; a run then
 * asks the rest itself. */
TEST(ahead_cancel_starts_no_new_piece)
{
    struct echo e;
    struct cdt_refine_params p;
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r;

    echo_init(&e);
    p = echo_params(&e);
    p.chunk_words = 6;
    e.gate = true;
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, "one sentence is said here. a second sentence is said. "
                              "a third sentence is said. the tail");
    pthread_mutex_lock(&e.mu);
    while (e.in_call == 0)
        pthread_cond_wait(&e.cv, &e.mu);
    pthread_mutex_unlock(&e.mu);
    cdt_refine_ahead_cancel(a);
    cdt_refine_ahead_offer(a, "ignored after cancel. really. yes it is");
    pthread_mutex_lock(&e.mu);
    e.gate = false;
    pthread_cond_broadcast(&e.cv);
    pthread_mutex_unlock(&e.mu);
    CHECK(wait_count(a, 1));
    usleep(50000); /* a worker that went on would have asked again by now */
    CHECK_INT(echo_calls(&e), 1);
    CHECK_INT(cdt_refine_ahead_count(a), 1);
    p.ahead = a;
    REQUIRE(cdt_refine_run(&p,
                           "one sentence is said here. a second sentence is said. "
                           "a third sentence is said. the tail",
                           &r) == 0);
    CHECK_INT(r.reason, CDT_REFINE_OK);
    CHECK_INT(r.timings.pieces, 4);
    CHECK_INT(r.timings.pieces_ahead, 1);
    CHECK_INT(echo_calls(&e), 4);
    CHECK_STR(r.refined, "One sentence is said here! A second sentence is said! A third sentence "
                         "is said! The tail");
    cdt_refine_result_cleanup(&r);
    cdt_refine_ahead_free(a);

    /* Freed while a piece is being refined (a cancelled dictation): free waits for
     * that call only. */
    e.gate = true;
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, "one sentence is said here. a second sentence is said. more");
    pthread_mutex_lock(&e.mu);
    while (e.in_call == 0)
        pthread_cond_wait(&e.cv, &e.mu);
    e.gate = false;
    pthread_cond_broadcast(&e.cv);
    pthread_mutex_unlock(&e.mu);
    cdt_refine_ahead_free(a);
    echo_cleanup(&e);
}

/* No model (the local provider with nothing installed): the deterministic text, as a
 * whole run gives it, with the same reason. */
TEST(ahead_without_a_model_is_deterministic)
{
    static const char *const text =
        "um so the first sentence is here. uh the second one is here too. and the tail";
    struct cdt_refine_params p = cdt_refine_default_params(), pw = cdt_refine_default_params();
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r, whole;

    p.chunk_words = 6;
    pw.chunk_words = 6;
    REQUIRE(cdt_refine_run(&pw, text, &whole) == 0);
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, text);
    CHECK(wait_count(a, 2));
    p.ahead = a;
    REQUIRE(cdt_refine_run(&p, text, &r) == 0);
    CHECK_STR(r.refined, whole.refined);
    CHECK_STR(r.refined, r.cleaned);
    CHECK_INT(r.reason, whole.reason);
    CHECK(r.reason == CDT_REFINE_NO_MODEL || r.reason == CDT_REFINE_MODEL_UNAVAILABLE);
    cdt_refine_result_cleanup(&r);
    cdt_refine_result_cleanup(&whole);
    cdt_refine_ahead_free(a);

    /* Bad arguments; NULL is a no-op everywhere. */
    p.provider = CDT_REFINE_CALLBACK;
    p.llm = NULL;
    CHECK_INT(cdt_refine_ahead_new(&p, &a), CDT_EINVAL);
    CHECK(a == NULL);
    cdt_refine_ahead_offer(NULL, "x");
    cdt_refine_ahead_cancel(NULL);
    CHECK_INT(cdt_refine_ahead_count(NULL), 0);
    cdt_refine_ahead_free(NULL);
}

int main(void)
{
    RUN(ahead_gives_the_whole_runs_text);
    RUN(ahead_differing_text_is_asked_again);
    RUN(ahead_repeated_sentence_is_refined_ahead);
    RUN(ahead_provider_failure_falls_back_alone);
    RUN(ahead_cancel_starts_no_new_piece);
    RUN(ahead_without_a_model_is_deterministic);
    return TEST_END();
}
