/* Output cleaning through the real sidecar (issue 12 §5): the refine path asks
 * /generate for the raw text and cleans it itself, next to the transcript.
 *
 * 1. The real `codictate sidecar` with the tiny model, spawned by the manager:
 *    "raw": true returns the generated text exactly (the streamed pieces, joined),
 *    and without it the seed's cleaning of that same text.
 * 2. The refine pipeline (local provider → manager → sidecar process → HTTP →
 *    worker → backend and back) on transcripts that contain "Output:", "Text:",
 *    "<think>", "Here is" and quotes. A random-weight model cannot be made to say
 *    a given sentence, so this part spawns tests/integration/scripted_sidecar: the
 *    real sidecar server code on a backend that answers what the test wrote.
 *    Every case must deliver all of the transcript's words: the model's text with
 *    them, or the deterministic text with a reason.
 * 3. Streaming (params.on_delta, on_piece): the pieces are the model's raw text
 *    as it is generated, and the result is the same as without them.
 *
 *   test_refine_sidecar CODICTATE TINY_MODEL SCRIPTED_SIDECAR */
#include "../test.h"
#include "codictate/manager.h"
#include "codictate/refine.h"
#include "codictate/text.h"
#include "codictate/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <unistd.h>

static const char *codictate_exe, *tiny_model, *scripted_exe;
static char tmpdir[] = "/tmp/cdt-refine-sidecar-XXXXXX";
static char script[256], fake_model[256];

static struct cdt_manager *manager(const char *exe)
{
    struct cdt_manager_params mp = cdt_manager_default_params();
    struct cdt_manager *m = NULL;

    mp.sidecar_exe = exe;
    mp.state_dir = tmpdir;
    mp.idle_timeout_s = CDT_IDLE_NEVER;
    mp.start_timeout_ms = 20000;
    if (cdt_manager_new(&mp, &m) != 0)
        return NULL;
    return m;
}

/* A /generate request: the prompt, raw and stream as given, the rest the
 * sidecar's defaults. */
static struct cdt_sidecar_gen_req gen_req(const char *prompt, bool raw, bool stream)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();

    req.prompt = prompt;
    req.raw = raw;
    req.stream = stream;
    return req;
}

/* Collects a stream's pieces as they arrive (on_piece, on_delta). */
struct pieces {
    struct cdt_buf text;
    int n;
    bool bad; /* a piece was empty or past the end */
};

static void on_piece(const char *text, size_t len, void *ud)
{
    struct pieces *ps = ud;

    ps->n++;
    if (len == 0 || memchr(text, '\0', len) || cdt_buf_append(&ps->text, text, len) != 0)
        ps->bad = true;
}

/* The pieces joined ("" when none). */
static const char *joined(const struct pieces *ps)
{
    return ps->text.data ? ps->text.data : "";
}

/* POSTs /generate; returns true with a 200 answer in *reply (the caller cleans it
 * up), false (nothing to clean) otherwise. A stream's pieces, joined, are in
 * reply->streamed. */
static bool generate(struct cdt_manager *m, const char *model,
                     const struct cdt_sidecar_gen_req *req, struct cdt_sidecar_gen_reply *reply)
{
    char err[512];

    if (cdt_manager_generate(m, model, req, reply, err, sizeof(err)) != 0) {
        fprintf(stderr, "generate: %s\n", err);
        return false;
    }
    if (reply->status != 200) {
        fprintf(stderr, "generate: HTTP %ld: %s\n", reply->status, reply->detail);
        cdt_sidecar_gen_reply_cleanup(reply);
        return false;
    }
    return true;
}

/* 1: the real engine. Whatever noise the tiny model makes, the streamed pieces are
 * the generated text, so the final response can be checked against them within
 * one generation (no cross-request equality: batch shapes may differ). */
TEST(raw_through_the_real_sidecar)
{
    struct cdt_manager *m = manager(codictate_exe);
    struct cdt_sidecar_gen_req req;
    struct cdt_sidecar_gen_reply o;

    REQUIRE(m);
    for (int raw = 1; raw >= 0; raw--) {
        char *clean;

        struct pieces ps = {0};

        req = gen_req("Clean up: the Output: section is wrong", raw, true);
        req.max_tokens = 40;
        req.temperature = 0;
        req.ignore_eos = true;
        req.on_piece = on_piece;
        req.piece_user_data = &ps;
        if (!generate(m, tiny_model, &req, &o)) {
            CHECK(!"a streamed answer");
            cdt_buf_cleanup(&ps.text);
            continue;
        }
        CHECK(o.streamed != NULL && o.response != NULL);
        /* on_piece saw the pieces one by one, and they are the stream's text. */
        CHECK(!ps.bad);
        CHECK(ps.n > 1);
        CHECK_STR(joined(&ps), o.streamed ? o.streamed : "(none)");
        cdt_buf_cleanup(&ps.text);
        clean = cdt_text_clean_response(o.streamed ? o.streamed : "");
        if (o.streamed && o.response && clean) {
            CHECK(strlen(o.streamed) > 0);
            CHECK(cdt_utf8_valid(o.response, strlen(o.response)));
            CHECK_INT(o.tokens_generated, 40);
            if (raw)
                CHECK_STR(o.response, o.streamed);
            else
                CHECK_STR(o.response, clean);
            printf("  tiny model, raw=%d: %zu bytes generated, response %zu bytes\n", raw,
                   strlen(o.streamed), strlen(o.response));
        }
        free(clean);
        cdt_sidecar_gen_reply_cleanup(&o);
    }
    /* Not streamed: every field of the seed's answer is there with raw too. */
    req = gen_req("hello", true, false);
    req.max_tokens = 8;
    req.temperature = 0;
    req.ignore_eos = true;
    if (generate(m, tiny_model, &req, &o)) {
        CHECK(o.response && strlen(o.response) > 0);
        CHECK(o.streamed == NULL);
        CHECK_INT(o.tokens_generated, 8);
        CHECK(o.prompt_format_mode[0] != '\0');
        CHECK(o.timings.prompt_tokens > 0);
        CHECK(o.timings.sampler[0] != '\0');
        cdt_sidecar_gen_reply_cleanup(&o);
    } else {
        CHECK(!"a plain answer");
    }
    cdt_manager_free(m);
}

/* p set for the local provider on manager m and model (a 16 GB machine). */
static void local_params(struct cdt_refine_params *p, struct cdt_manager *m, const char *model)
{
    p->provider = CDT_REFINE_LOCAL;
    p->manager = m;
    p->model = model;
    p->ram_gb = 16;
}

/* A refinement refused up front for its deadline: reason timeout, "not started",
 * no token generated, the deterministic text. */
static void check_not_started(const struct cdt_refine_params *p, const char *text)
{
    struct cdt_refine_result r;

    if (cdt_refine_run(p, text, &r) != 0) {
        CHECK(!"cdt_refine_run, deadline too short");
        return;
    }
    CHECK_STR(cdt_refine_reason_name(r.reason), "timeout");
    CHECK(r.fallback_reason && strstr(r.fallback_reason, "not started"));
    CHECK_INT(r.timings.generated_tokens, 0);
    CHECK_STR(r.refined, r.cleaned);
    cdt_refine_result_cleanup(&r);
}

/* The refine path streaming from the real engine: the pieces reach on_delta while
 * the model generates, and they are the raw output the guards judged (the guards
 * on the joined pieces give the result's text and reason). No equality with a
 * second, unstreamed generation: the KV cache makes its batch shapes differ. The
 * deadline streams as it answers: the deterministic text, reason timeout. */
TEST(refine_streams_from_the_real_sidecar)
{
    static const char said[] = "um so I think we should uh ship it on Friday you know";
    struct cdt_manager *m = manager(codictate_exe);
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_result r;
    struct pieces ps = {0};
    char *accepted = NULL, why[CDT_REFINE_REASON_MAX], longer[2048] = "";
    int g;

    REQUIRE(m);
    local_params(&p, m, tiny_model);
    p.timeout_ms = 60000;
    p.ask_clean = true; /* "longer" below is clean: this is about the model's deadline */
    p.on_delta = on_piece;
    p.delta_user_data = &ps;
    if (cdt_refine_run(&p, said, &r) == 0) {
        CHECK(!ps.bad);
        CHECK(ps.n > 1);
        CHECK(r.timings.generated_tokens > 0);
        CHECK(r.reason != CDT_REFINE_TIMEOUT && r.reason != CDT_REFINE_SIDECAR);
        g = cdt_refine_guard(r.cleaned, joined(&ps), &accepted, why, sizeof(why));
        if (g == 0) {
            CHECK_INT(r.reason, CDT_REFINE_OK);
            CHECK_STR(r.refined, accepted);
        } else if (r.reason != CDT_REFINE_TRUNCATED) {
            CHECK_INT(r.reason, g);
            CHECK_STR(r.refined, r.cleaned);
        }
        printf("  tiny model streamed %d pieces (%zu bytes): %s\n", ps.n, ps.text.len,
               cdt_refine_reason_name(r.reason));
        free(accepted);
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run, streamed");
    }
    cdt_buf_cleanup(&ps.text);

    /* The deadline (as test_refine.sh's: this model does not stop early). On a busy
     * machine the speeds measured above may say only part of the text fits: that part
     * is a piece of its own, which the model can finish (at its length cap, an output
     * the guards refuse) before the rest is refused for time, unasked. The reason is
     * the first piece's and timings.pieces counts the pieces asked, so one asked piece
     * does not tell a whole text (timeout) from a cut one (a guard's reason; seen in a
     * fresh-clone run of test_refine.sh). Either way the text is the deterministic one. */
    for (int i = 0; i < 20; i++)
        strncat(longer, "So I think, we should ship it. ", sizeof(longer) - strlen(longer) - 1);
    p.timeout_ms = 150;
    memset(&ps, 0, sizeof(ps));
    if (cdt_refine_run(&p, longer, &r) == 0) {
        CHECK(!ps.bad);
        CHECK(r.reason == CDT_REFINE_TIMEOUT || r.reason == CDT_REFINE_GUARD_LENGTH ||
              r.reason == CDT_REFINE_GUARD_CHANGED);
        printf("  a 150 ms deadline: %d piece(s), %s\n", r.timings.pieces,
               cdt_refine_reason_name(r.reason));
        CHECK_STR(r.refined, r.cleaned);
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run, deadline");
    }
    cdt_buf_cleanup(&ps.text);

    /* A deadline too short for this machine: with the speeds the requests above
     * measured, the request is not started at all (no token generated), and the
     * reason says so. 5 ms is below any machine's time for ~160 tokens. */
    p.timeout_ms = 5;
    p.on_delta = NULL;
    check_not_started(&p, longer);
    cdt_manager_free(m);
}

/* A fresh manager (each `codictate dictate`, the app's first dictation) has run no
 * request yet: the speeds the sidecar measured as it loaded the model weigh its first
 * one, so a deadline too short for this machine is not started either (it used to
 * be started and cut at the deadline). */
TEST(first_refine_of_a_fresh_manager_is_weighed)
{
    struct cdt_manager *m = manager(codictate_exe);
    struct cdt_refine_params p = cdt_refine_default_params();
    char longer[2048] = "";
    double prefill = 0, decode = 0;

    REQUIRE(m);
    for (int i = 0; i < 20; i++)
        strncat(longer, "So I think, we should ship it. ", sizeof(longer) - strlen(longer) - 1);
    local_params(&p, m, tiny_model);
    p.ask_clean = true;
    p.timeout_ms = 5; /* below any machine's time for ~160 tokens */
    CHECK(!cdt_manager_rates(m, tiny_model, &prefill, &decode));
    check_not_started(&p, longer);
    /* The load's figures (the request above measured nothing). */
    CHECK(cdt_manager_rates(m, tiny_model, &prefill, &decode));
    CHECK(prefill > 0 && decode > 0);
    cdt_manager_free(m);
}

static void say(const char *text)
{
    FILE *f = fopen(script, "wb");

    if (!f || fputs(text, f) < 0) {
        fprintf(stderr, "cannot write %s\n", script);
        cdt_test_state_.checks_failed++;
    }
    if (f)
        fclose(f);
}

/* The scripted sidecar's /generate with and without raw: the seed's cleaning is
 * the default, "raw" turns it off, streamed or not. */
TEST(raw_on_the_scripted_sidecar)
{
    static const char said[] = "<think>\nhm\n</think>\n\n The Output: section is wrong. ";
    struct cdt_manager *m = manager(scripted_exe);
    struct cdt_sidecar_gen_req req;
    struct cdt_sidecar_gen_reply o;

    REQUIRE(m);
    say(said);
    req = gen_req("x", true, false);
    if (generate(m, fake_model, &req, &o)) {
        CHECK_STR(o.response, said);
        cdt_sidecar_gen_reply_cleanup(&o);
    } else {
        CHECK(!"raw");
    }
    req = gen_req("x", false, false);
    if (generate(m, fake_model, &req, &o)) {
        CHECK_STR(o.response, "section is wrong."); /* the seed's behaviour, kept */
        cdt_sidecar_gen_reply_cleanup(&o);
    } else {
        CHECK(!"cleaned");
    }
    req = gen_req("x", true, true);
    if (generate(m, fake_model, &req, &o)) {
        CHECK_STR(o.streamed, said);
        CHECK_STR(o.response, said);
        cdt_sidecar_gen_reply_cleanup(&o);
    } else {
        CHECK(!"raw, streamed");
    }
    /* on_piece: the scripted pieces (at most 4 bytes), in order; never for an
     * answer that is not a stream. */
    for (int stream = 1; stream >= 0; stream--) {
        struct pieces ps = {0};

        req = gen_req("x", true, stream);
        req.on_piece = on_piece;
        req.piece_user_data = &ps;
        if (generate(m, fake_model, &req, &o)) {
            CHECK_STR(o.response, said);
            CHECK(!ps.bad);
            CHECK_STR(joined(&ps), stream ? said : "");
            if (stream)
                CHECK(ps.n >= (int)(strlen(said) / 4));
            cdt_sidecar_gen_reply_cleanup(&o);
        } else {
            CHECK(!"on_piece");
        }
        cdt_buf_cleanup(&ps.text);
    }
    cdt_manager_free(m);
}

/* Every word of `text` (letters, digits, apostrophes; case-folded) is in `in`. */
static bool words_kept(const char *text, const char *in)
{
    char *hay = strdup(in), word[128];

    if (!hay)
        return false;
    for (char *p = hay; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (const char *p = text; *p;) {
        size_t n = 0;
        bool found;

        while (*p && !isalnum((unsigned char)*p))
            p++;
        while (*p && (isalnum((unsigned char)*p) || *p == '\'') && n + 1 < sizeof(word))
            word[n++] = (char)tolower((unsigned char)*p++);
        word[n] = '\0';
        found = n == 0 || strstr(hay, word);
        if (!found) {
            fprintf(stderr, "  lost word \"%s\"\n", word);
            free(hay);
            return false;
        }
    }
    free(hay);
    return true;
}

static struct cdt_manager *scripted;

/* Refines `transcript` while the model says `model_says`. want: the text to
 * deliver, NULL for the deterministic fallback with the reason `why`. */
static void refine_case(const char *transcript, const char *model_says, const char *want,
                        enum cdt_refine_reason why, int line)
{
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_result r;
    int failed = cdt_test_state_.checks_failed;

    struct cdt_refine_result s;
    struct pieces ps = {0};

    local_params(&p, scripted, fake_model);
    p.ask_clean = true; /* the model's answer is what these cases are about */
    say(model_says);
    if (cdt_refine_run(&p, transcript, &r) != 0) {
        fprintf(stderr, "line %d: cdt_refine_run failed\n", line);
        cdt_test_state_.checks_failed++;
        return;
    }
    /* Streamed: the pieces are the model's raw text (before any cleaning), and the
     * result is the one above, field by field. */
    p.on_delta = on_piece;
    p.delta_user_data = &ps;
    if (cdt_refine_run(&p, transcript, &s) == 0) {
        CHECK(!ps.bad);
        CHECK_STR(joined(&ps), model_says);
        CHECK_STR(s.refined, r.refined);
        CHECK_STR(s.cleaned, r.cleaned);
        CHECK_INT(s.reason, r.reason);
        CHECK((s.fallback_reason == NULL) == (r.fallback_reason == NULL));
        if (s.fallback_reason && r.fallback_reason)
            CHECK_STR(s.fallback_reason, r.fallback_reason);
        CHECK_STR(s.model, r.model);
        CHECK_INT(s.timings.prompt_tokens, r.timings.prompt_tokens);
        CHECK_INT(s.timings.generated_tokens, r.timings.generated_tokens);
        cdt_refine_result_cleanup(&s);
    } else {
        CHECK(!"cdt_refine_run, streamed");
    }
    cdt_buf_cleanup(&ps.text);
    if (want) {
        CHECK_STR(r.refined, want);
        CHECK_INT(r.reason, CDT_REFINE_OK);
        CHECK(r.fallback_reason == NULL);
    } else {
        CHECK_STR(r.refined, r.cleaned);
        CHECK_STR(cdt_refine_reason_name(r.reason), cdt_refine_reason_name(why));
        CHECK(r.fallback_reason != NULL);
    }
    /* The property the issue asks for, whatever the branch. */
    CHECK(r.refined && words_kept(r.cleaned, r.refined));
    if (cdt_test_state_.checks_failed != failed)
        fprintf(stderr,
                "line %d: transcript \"%s\" (cleaned \"%s\"), model \"%s\": got \"%s\" (%s)\n",
                line, transcript, r.cleaned, model_says, r.refined,
                r.fallback_reason ? r.fallback_reason : "no fallback");
    else
        printf("  ok: \"%s\" -> \"%s\"%s%s\n", transcript, r.refined,
               r.fallback_reason ? ", fallback: " : "", r.fallback_reason ? r.fallback_reason : "");
    cdt_refine_result_cleanup(&r);
}

#define DELIVERS(transcript, says, want)                                                           \
    refine_case(transcript, says, want, CDT_REFINE_OK, __LINE__)
#define FALLS_BACK(transcript, says, why) refine_case(transcript, says, NULL, why, __LINE__)

TEST(refine_keeps_the_transcripts_words)
{
    scripted = manager(scripted_exe);
    REQUIRE(scripted);
    /* The case: the seed's cut delivered "section of the report is wrong." */
    DELIVERS("The Output: section of the report is wrong.",
             "The Output: section of the report is wrong.",
             "The Output: section of the report is wrong.");
    DELIVERS("Text: see the memo. The Text: field is empty.",
             "Text: see the memo. The Text: field is empty.",
             "Text: see the memo. The Text: field is empty.");
    /* The model's own runaway labels are still cut... */
    DELIVERS("So we ship it on Friday.",
             "Output: So we ship it on Friday.\n\nOutput: So we ship it on Friday.",
             "So we ship it on Friday.");
    /* ... unless the cut would take the transcript's words: then the fallback. */
    FALLS_BACK("The output section of the report is wrong.",
               "The Output: section of the report is wrong.", CDT_REFINE_GUARD_CUTS_WORDS);
    /* <think>: the model's block goes, the transcript's literal tag stays. */
    DELIVERS("Type <think> before the reasoning.",
             "<think>\n\n</think>\n\nType <think> before the reasoning.",
             "Type <think> before the reasoning.");
    DELIVERS("We ship on Friday.", "<think>\nFriday, ship.\n</think>\n\nWe ship on Friday.",
             "We ship on Friday.");
    /* Here is: the transcript's phrase stays, the model's preamble goes. */
    DELIVERS("Here is the plan: we ship on Friday.", "Here is the plan: we ship on Friday.",
             "Here is the plan: we ship on Friday.");
    DELIVERS("Here is the plan: we ship on Friday.",
             "Here is the cleaned text:\nHere is the plan: we ship on Friday.",
             "Here is the plan: we ship on Friday.");
    /* Quotes: the transcript's stay, the model's wrapping ones go. */
    DELIVERS("She said \"ship it\" and left.", "She said \"ship it\" and left.",
             "She said \"ship it\" and left.");
    DELIVERS("\"Ship it,\" she said.", "\"Ship it,\" she said.", "\"Ship it,\" she said.");
    DELIVERS("We ship on Friday.", "\"We ship on Friday.\"", "We ship on Friday.");
    /* All of it at once, with the model thinking first. */
    DELIVERS("Here is the Output: field, \"Text:\" and <think> as typed.",
             "<think>\nok\n</think>\n\nHere is the Output: field, \"Text:\" and <think> as typed.",
             "Here is the Output: field, \"Text:\" and <think> as typed.");
    cdt_manager_free(scripted);
    scripted = NULL;
}

/* The words of s, one per line (for comparing word sequences). Caller frees. */
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

/* Refinement ahead (issue 16) with the tiny model through the real sidecar: the
 * finished pieces are refined in the background, the run takes them and asks only
 * the tail, and the delivered text is the one a whole run gives. A random model's
 * answers are not the same across batch shapes (DESIGN.md), so the word sequences are
 * compared where both runs delivered the deterministic text (the usual case for
 * random weights); either way no call fails and the pieces are marked. */
TEST(refine_ahead_through_the_real_sidecar)
{
    static const char said[] = "um so I think we should ship it on Friday. and then we can uh "
                               "test it again on Monday. the last one is still being said";
    struct cdt_manager *m = manager(codictate_exe);
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r, whole;
    int i;

    REQUIRE(m);
    local_params(&p, m, tiny_model);
    p.timeout_ms = 120000;
    p.chunk_words = 6;
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, said);
    for (i = 0; i < 60000 && cdt_refine_ahead_count(a) < 2; i++)
        usleep(10000);
    CHECK_INT(cdt_refine_ahead_count(a), 2); /* all but the last sentence */
    p.ahead = a;
    REQUIRE(cdt_refine_run(&p, said, &r) == 0);
    p.ahead = NULL;
    REQUIRE(cdt_refine_run(&p, said, &whole) == 0);
    CHECK_INT(r.timings.pieces, 3);
    CHECK_INT(r.timings.pieces_ahead, 2);
    CHECK(r.timings.piece_ahead[0] && r.timings.piece_ahead[1] && !r.timings.piece_ahead[2]);
    CHECK_INT(whole.timings.pieces, 3);
    CHECK_INT(whole.timings.pieces_ahead, 0);
    CHECK(r.reason != CDT_REFINE_SIDECAR && r.reason != CDT_REFINE_TIMEOUT);
    CHECK(r.reason != CDT_REFINE_OK || strlen(r.refined) > 0);
    printf("  ahead: %s, whole: %s\n", cdt_refine_reason_name(r.reason),
           cdt_refine_reason_name(whole.reason));
    if (r.reason != CDT_REFINE_OK && r.reason != CDT_REFINE_PARTIAL &&
        whole.reason != CDT_REFINE_OK && whole.reason != CDT_REFINE_PARTIAL) {
        char *wa = word_lines(r.refined), *ww = word_lines(whole.refined),
             *wc = word_lines(r.cleaned);

        REQUIRE(wa && ww && wc);
        CHECK_STR(wa, ww);
        CHECK_STR(wa, wc); /* every word once, in order */
        free(wa);
        free(ww);
        free(wc);
    }
    cdt_refine_result_cleanup(&r);
    cdt_refine_result_cleanup(&whole);
    cdt_refine_ahead_free(a);
    cdt_manager_free(m);
}

/* The scripted sidecar on a slow machine: its load reports `speed` ("P,D": ms per
 * prompt and per generated token; its answers report no timings, so the manager's
 * speeds stay these), its answer is `answer`, and p refines with it within
 * timeout_ms. NULL when no manager starts. */
static struct cdt_manager *slow_machine(const char *speed, const char *answer,
                                        struct cdt_refine_params *p, long timeout_ms)
{
    struct cdt_manager *m;

    setenv("CDT_SCRIPTED_SPEED", speed, 1); /* the sidecar, started at the first load */
    if (!(m = manager(scripted_exe)))
        return NULL;
    say(answer);
    local_params(p, m, fake_model);
    p->timeout_ms = timeout_ms;
    return m;
}

/* A machine too slow for the whole transcript within the deadline: the pieces are
 * cut to what its speeds say fits in the time left, so the first part is refined
 * and the rest keeps its deterministic text (before, the whole transcript was
 * refused up front). The scripted sidecar reports 1 ms per prompt token and 20 per
 * generated token: the whole transcript (262 bytes) would take ~1.55 s, a 1.2 s
 * deadline holds ~150 bytes, its first sentence 134. */
TEST(pieces_fit_a_slow_machine)
{
    static const char first[] =
        "so I looked at the quarterly report this morning and the numbers for "
        "the northern region look better than we expected them to look.";
    static const char second[] = "we should still check the figures for the southern region with "
                                 "the finance team before the meeting on the fifth of march.";
    static const char refined_first[] =
        "So I looked at the quarterly report this morning, and the numbers for the "
        "northern region look better than we expected them to look.";
    struct cdt_manager *m;
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_result r;
    char said[1024];

    m = slow_machine("1,20", refined_first, &p, 1200);
    REQUIRE(m);
    snprintf(said, sizeof(said), "%s %s", first, second);
    if (cdt_refine_run(&p, said, &r) == 0) {
        CHECK_STR(cdt_refine_reason_name(r.reason), "partial");
        REQUIRE(r.refined);
        CHECK(strncmp(r.refined, refined_first, strlen(refined_first)) == 0);
        /* The second sentence is its own piece: asked (the scripted answer is not a
         * cleanup of it) or refused for time, its deterministic text either way. */
        CHECK(strstr(r.refined, "We should still check") ||
              strstr(r.refined, "we should still check"));
        CHECK(r.timings.pieces >= 1);
        printf("  %d pieces: %s\n", r.timings.pieces, r.fallback_reason ? r.fallback_reason : "");
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run");
    }
    cdt_manager_free(m);
    unsetenv("CDT_SCRIPTED_SPEED");
}

/* Refinement ahead on a machine too slow for a whole piece within the deadline
 * (issue 16): the worker cuts its pieces to what the model's speeds say the deadline
 * holds (the scripted sidecar's 1 and 20 ms per token, half a 2.4 s deadline: ~150
 * bytes, the first sentence here), so they are refined while the text still grows, and the
 * run takes them as they were cut and asks only the tail. Before, the worker cut pieces
 * of up to CDT_REFINE_CHUNK_WORDS words: all three sentences and the tail made one
 * piece, the last, which is never asked ahead, and the run then had it all to do. */
TEST(ahead_pieces_fit_a_slow_machine)
{
    static const char first[] =
        "so I looked at the quarterly report this morning and the numbers for "
        "the northern region look better than we expected them to look.";
    static const char refined_first[] =
        "So I looked at the quarterly report this morning, and the numbers for the "
        "northern region look better than we expected them to look.";
    static const char rest[] = "we should still check the figures for the southern region with "
                               "the finance team before the meeting next week. then we can "
                               "send the whole report to the board and wait for their answer. "
                               "the last one is still being said";
    struct cdt_manager *m;
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_ahead *a = NULL;
    struct cdt_refine_result r;
    char said[1024];
    int i, n;

    m = slow_machine("1,20", refined_first, &p, 2400);
    REQUIRE(m);
    snprintf(said, sizeof(said), "%s %s", first, rest);
    REQUIRE(cdt_refine_ahead_new(&p, &a) == 0);
    cdt_refine_ahead_offer(a, said);
    /* The first sentence alone, then the second; the third fits with the tail, and
     * that is the last piece (the words to come may extend it): not asked ahead. */
    for (i = 0; i < 2000 && cdt_refine_ahead_count(a) < 2; i++)
        usleep(10000);
    n = cdt_refine_ahead_count(a);
    CHECK_INT(n, 2);
    p.ahead = a;
    if (cdt_refine_run(&p, said, &r) == 0) {
        CHECK_INT(r.timings.pieces, n + 1);
        CHECK_INT(r.timings.pieces_ahead, n);
        CHECK(r.timings.piece_ahead[0] && !r.timings.piece_ahead[n]);
        CHECK_STR(cdt_refine_reason_name(r.reason), "partial");
        REQUIRE(r.refined);
        CHECK(strncmp(r.refined, refined_first, strlen(refined_first)) == 0);
        CHECK(strstr(r.refined, "ast one is still being said") != NULL);
        printf("  %d pieces, %d ahead: %s\n", r.timings.pieces, r.timings.pieces_ahead,
               r.fallback_reason ? r.fallback_reason : "");
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run");
    }
    cdt_refine_ahead_free(a);
    cdt_manager_free(m);
    unsetenv("CDT_SCRIPTED_SPEED");
}

/* The transcript of the two tests below, in two sentences, and the first refined. */
static const char bpt_first[] = "so we looked at the report for the northern region this "
                                "morning and the numbers look better than expected.";
static const char bpt_second[] = "we should still check them with the finance team before "
                                 "the meeting next week.";
static const char bpt_refined_first[] = "So we looked at the report for the northern region "
                                        "this morning, and the numbers look better than "
                                        "expected.";

/* How many tokens a transcript is follows the bytes per token of the model's answers
 * (cdt_manager_bytes_per_token): text of rare words or another language is more
 * tokens than English, and pieces cut at the 4 bytes a token assumed for English ran
 * into the deadline (gibberish transcripts at the 1.7B shape: 10.0-10.7 s pieces cut
 * to fit 8 s). The scripted model answers in tokens of 2 bytes, at once (its load
 * says 1 and 5 ms per token, and they stay so). At 4 bytes a token the 199-byte transcript fits a
 * 600 ms deadline whole (~280 bytes fit); once 2 are learned, ~140 bytes fit: its first sentence is
 * a piece of its own (and the rest is cut to the time left after it). */
TEST(bytes_per_token_are_learned)
{
    struct cdt_manager *m;
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_result r;
    char said[512];
    double bpt;

    setenv("CDT_SCRIPTED_PIECE_BYTES", "2", 1);
    m = slow_machine("1,5", bpt_refined_first, &p, 600);
    REQUIRE(m);
    snprintf(said, sizeof(said), "%s %s", bpt_first, bpt_second);
    CHECK(cdt_manager_bytes_per_token(m, fake_model) == 0);
    if (cdt_refine_run(&p, said, &r) == 0) {
        CHECK_INT(r.timings.pieces, 1); /* whole, at the 4 bytes a token assumed */
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run");
    }
    bpt = cdt_manager_bytes_per_token(m, fake_model);
    CHECK(bpt > 1.9 && bpt < 2.1);
    CHECK(cdt_manager_bytes_per_token(m, tiny_model) == 0); /* another model: unknown */
    if (cdt_refine_run(&p, said, &r) == 0) {
        CHECK(r.timings.pieces >= 2); /* the rest is cut to the time then left */
        REQUIRE(r.refined);
        CHECK(strncmp(r.refined, bpt_refined_first, strlen(bpt_refined_first)) == 0);
        printf("  %.2f bytes a token: %d pieces, %s\n", bpt, r.timings.pieces,
               cdt_refine_reason_name(r.reason));
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run");
    }
    cdt_manager_free(m);
    unsetenv("CDT_SCRIPTED_SPEED");
    unsetenv("CDT_SCRIPTED_PIECE_BYTES");
}

/* A fresh manager sizes the first request by the model's own count of the
 * transcript's tokens (the sidecar's /tokenize), not 4 bytes a token: the same
 * transcript and machine as bytes_per_token_are_learned, whose first run was sent
 * whole, is cut at its first sentence from the first run on. */
TEST(token_counts_come_from_the_sidecar)
{
    struct cdt_manager *m;
    struct cdt_refine_params p = cdt_refine_default_params();
    struct cdt_refine_result r;
    char said[512];
    int n = -1;

    setenv("CDT_SCRIPTED_PIECE_BYTES", "2", 1);
    setenv("CDT_SCRIPTED_TOKEN_BYTES", "2", 1);
    m = slow_machine("1,5", bpt_refined_first, &p, 600);
    REQUIRE(m);
    snprintf(said, sizeof(said), "%s %s", bpt_first, bpt_second);
    /* Not loaded yet: no count, and no load started by asking. */
    CHECK_INT(cdt_manager_count_tokens(m, fake_model, said, &n, NULL, 0), CDT_ESTATE);
    if (cdt_refine_run(&p, said, &r) == 0) {
        CHECK(r.timings.pieces >= 2); /* cut from the first run on */
        REQUIRE(r.refined);
        CHECK(strncmp(r.refined, bpt_refined_first, strlen(bpt_refined_first)) == 0);
        printf("  first run: %d pieces, %s\n", r.timings.pieces, cdt_refine_reason_name(r.reason));
        cdt_refine_result_cleanup(&r);
    } else {
        CHECK(!"cdt_refine_run");
    }
    CHECK_INT(cdt_manager_count_tokens(m, fake_model, said, &n, NULL, 0), 0);
    CHECK_INT(n, (int)(strlen(said) + 1) / 2);
    CHECK_INT(cdt_manager_count_tokens(m, tiny_model, said, &n, NULL, 0), CDT_ESTATE);
    cdt_manager_free(m);
    unsetenv("CDT_SCRIPTED_SPEED");
    unsetenv("CDT_SCRIPTED_PIECE_BYTES");
    unsetenv("CDT_SCRIPTED_TOKEN_BYTES");
}

int main(int argc, char **argv)
{
    FILE *f;

    if (argc != 4) {
        fprintf(stderr, "usage: test_refine_sidecar CODICTATE TINY_MODEL SCRIPTED_SIDECAR\n");
        return 2;
    }
    codictate_exe = argv[1];
    tiny_model = argv[2];
    scripted_exe = argv[3];
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(script, sizeof(script), "%s/script.txt", tmpdir);
    snprintf(fake_model, sizeof(fake_model), "%s/scripted.gguf", tmpdir);
    f = fopen(fake_model, "wb");
    if (!f)
        return 1;
    fclose(f);
    setenv("CDT_SCRIPTED_OUTPUT", script, 1); /* the scripted sidecar inherits it */
    RUN(raw_through_the_real_sidecar);
    RUN(refine_streams_from_the_real_sidecar);
    RUN(first_refine_of_a_fresh_manager_is_weighed);
    RUN(refine_ahead_through_the_real_sidecar);
    RUN(raw_on_the_scripted_sidecar);
    RUN(pieces_fit_a_slow_machine);
    RUN(ahead_pieces_fit_a_slow_machine);
    RUN(bytes_per_token_are_learned);
    RUN(token_counts_come_from_the_sidecar);
    RUN(refine_keeps_the_transcripts_words);
    unlink(script);
    unlink(fake_model);
    rmdir(tmpdir);
    return TEST_END();
}
