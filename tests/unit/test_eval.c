/* The eval module: the metrics on hand-computed examples, the case-set reader's
 * errors (with file and line), and a report built from crafted refine results. */
#include "codictate/eval.h"

#include "../test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/cdt-test-eval-XXXXXX";

static struct cdt_eval_counts cmp(const char *ref, const char *out)
{
    struct cdt_eval_counts c;

    if (cdt_eval_compare(ref, out, &c) != 0)
        memset(&c, 0xff, sizeof(c)); /* every count -1: fails any check */
    return c;
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

TEST(wer_sensitive_and_not)
{
    struct cdt_eval_counts c = cmp("Hello, world.", "hello world");

    /* Hello , world . vs hello world: a substitution and two deletions. */
    CHECK_INT(c.ref_tokens, 4);
    CHECK_INT(c.errors, 3);
    CHECK_INT(c.ref_words, 2);
    CHECK_INT(c.errors_ci, 0);
    CHECK(near(cdt_eval_metrics_of(&c, 1).wer, 0.75));
    CHECK(near(cdt_eval_metrics_of(&c, 1).wer_ci, 0.0));

    c = cmp("the cat sat on the mat", "the cat sat on mat");
    CHECK_INT(c.errors, 1);
    CHECK_INT(c.errors_ci, 1);
    CHECK(near(cdt_eval_metrics_of(&c, 1).wer_ci, 1.0 / 6));

    c = cmp("a b c", "a x c d"); /* a substitution and an insertion */
    CHECK_INT(c.errors, 2);
    CHECK_INT(c.errors_ci, 2);

    c = cmp("one two three", "");
    CHECK_INT(c.errors, 3);
    CHECK(near(cdt_eval_metrics_of(&c, 1).wer, 1.0));

    /* Marks inside a word stay; at its ends they split off, one token each. */
    c = cmp("It's 3.5% of e-mail (really)...", "It's 3.5% of e-mail (really)...");
    CHECK_INT(c.ref_tokens, 10);
    CHECK_INT(c.ref_words, 5);
    CHECK_INT(c.punct_ref, 5);
    CHECK_INT(c.errors, 0);
    CHECK_INT(c.changed, 0);
}

TEST(empty_reference)
{
    struct cdt_eval_counts c = cmp("", "");
    struct cdt_eval_metrics m = cdt_eval_metrics_of(&c, 1);

    CHECK_INT(c.errors, 0);
    CHECK(near(m.wer, 0));
    CHECK(isnan(m.punct_f1));
    CHECK(isnan(m.content_kept));
    CHECK_INT(c.changed, 0);

    /* Every output token is an error; the denominator is 1. */
    c = cmp("", "Hello there.");
    m = cdt_eval_metrics_of(&c, 1);
    CHECK_INT(c.errors, 3);
    CHECK_INT(c.ref_tokens, 0);
    CHECK(near(m.wer, 3));
    CHECK(near(m.punct_f1, 0));
    CHECK_INT(c.changed, 1);

    c = cmp("   \n\t ", "");
    CHECK_INT(c.ref_tokens, 0);
    CHECK_INT(c.errors, 0);
    CHECK_INT(c.changed, 1); /* not byte for byte */
}

TEST(punctuation_f1)
{
    struct cdt_eval_counts c = cmp("Yes, I agree. Let's go.", "Yes I agree, let's go.");
    struct cdt_eval_metrics m = cdt_eval_metrics_of(&c, 1);

    /* Reference (1 ,) (3 .) (5 .); output (3 ,) (5 .): one match. */
    CHECK_INT(c.punct_ref, 3);
    CHECK_INT(c.punct_out, 2);
    CHECK_INT(c.punct_match, 1);
    CHECK(near(m.punct_p, 0.5));
    CHECK(near(m.punct_r, 1.0 / 3));
    CHECK(near(m.punct_f1, 0.4));

    /* An inserted word moves the output's marks onto the reference's positions. */
    c = cmp("Hello world.", "Hello big world.");
    CHECK_INT(c.punct_match, 1);
    CHECK(near(cdt_eval_metrics_of(&c, 1).punct_f1, 1));
    /* A mark after an inserted word: the boundary after the last aligned word. */
    c = cmp("Go now.", "Go now please.");
    CHECK_INT(c.punct_match, 1);
    /* A deleted word: the mark after "go" maps to after "go". */
    c = cmp("Well, go.", "Go.");
    CHECK_INT(c.punct_match, 1);
    CHECK_INT(c.punct_out, 1);
    CHECK_INT(c.punct_ref, 2);
    /* The mark is part of the pair. */
    c = cmp("Is it done?", "Is it done.");
    CHECK_INT(c.punct_match, 0);
    CHECK(near(cdt_eval_metrics_of(&c, 1).punct_f1, 0));
    /* No punctuation anywhere: undefined. */
    c = cmp("no marks here", "no marks");
    CHECK(isnan(cdt_eval_metrics_of(&c, 1).punct_f1));
}

TEST(content_words)
{
    struct cdt_eval_counts c =
        cmp("We need four chairs for the meeting room.", "We need 4 chairs for the room.");

    /* Content: need four chairs meeting room; kept: need 4 chairs room (a number in
     * digits is the same content word). */
    CHECK_INT(c.content_ref, 5);
    CHECK_INT(c.content_kept, 4);
    CHECK(near(cdt_eval_metrics_of(&c, 1).content_kept, 0.8));
    c = cmp("We need four chairs.", "We need 40 chairs."); /* another number is not */
    CHECK_INT(c.content_kept, 2);

    c = cmp("I did not go.", "I did go."); /* negations are content */
    CHECK_INT(c.content_ref, 2);
    CHECK_INT(c.content_kept, 1);

    c = cmp("no no no", "No."); /* multisets, insensitive */
    CHECK_INT(c.content_ref, 3);
    CHECK_INT(c.content_kept, 1);
    CHECK_INT(c.shared_words, 1);

    c = cmp("The cat and the dog", "the dog the cat and");
    CHECK_INT(c.shared_words, 5);
    CHECK_INT(c.out_words, 5);
}

TEST(unicode)
{
    struct cdt_eval_counts c = cmp("¿Dónde está?", "¿dónde está?");

    CHECK_INT(c.ref_tokens, 4); /* ¿ Dónde está ? */
    CHECK_INT(c.errors, 1);
    CHECK_INT(c.errors_ci, 0);
    CHECK_INT(c.punct_match, 2);

    c = cmp("ÉTÉ À PARIS", "été à paris"); /* Latin-1 capitals fold */
    CHECK_INT(c.errors, 3);
    CHECK_INT(c.errors_ci, 0);

    c = cmp("I don't know.", "I don’t know."); /* ’ reads as ' when insensitive */
    CHECK_INT(c.errors, 1);
    CHECK_INT(c.errors_ci, 0);

    c = cmp("«Bonjour», dit-il — Comment ça va ?", "«Bonjour», dit-il — Comment ça va ?");
    CHECK_INT(c.ref_words, 5);
    CHECK_INT(c.punct_ref, 5); /* « » , — ? */
    CHECK_INT(c.errors, 0);

    c = cmp("Bonjour\u00a0!", "Bonjour !"); /* a no-break space is a space */
    CHECK_INT(c.errors, 0);
    CHECK_INT(c.changed, 1);

    c = cmp("caf\xe9 ol\xe9", "caf\xe9 ole"); /* invalid bytes are letters, no crash */
    CHECK_INT(c.ref_words, 2);
    CHECK_INT(c.errors, 1);

    CHECK_INT(cdt_eval_compare(NULL, "x", &c), CDT_EINVAL);
}

TEST(long_texts)
{
    /* Past CDT_EVAL_MAX_TOKENS the output's tokens are unaligned insertions. */
    size_t n = CDT_EVAL_MAX_TOKENS + 100;
    char *big = malloc(2 * n + 1);
    struct cdt_eval_counts c;

    REQUIRE(big);
    for (size_t i = 0; i < n; i++)
        memcpy(big + 2 * i, "a ", 2);
    big[2 * n] = '\0';
    c = cmp("a a a", big);
    CHECK_INT(c.errors, (long)n - 3);
    CHECK_INT(c.out_words, (long)n);
    free(big);
}

static char *write_file(const char *name, const char *text)
{
    char *path;
    FILE *f;

    if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
        return NULL;
    f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

/* Loads text as a case file; returns the code, the message in err. */
static int load_text(const char *text, char *err, size_t cap, struct cdt_eval_set **set)
{
    char *path = write_file("t.jsonl", text);
    int rc = cdt_eval_set_load(path, set, err, cap);

    free(path);
    return rc;
}

#define CASE(id, cat)                                                                              \
    "{\"id\":\"" id "\",\"category\":\"" cat "\",\"input\":\"i\",\"reference\":\"r\"}\n"

/* err must read "<tmpdir>/t.jsonl:<line>: " + what. */
static bool err_is(const char *err, int line, const char *what)
{
    char want[512];

    snprintf(want, sizeof(want), "%s/t.jsonl:%d: %s", tmpdir, line, what);
    if (strncmp(err, want, strlen(want)) == 0)
        return true;
    fprintf(stderr, "  got '%s', want '%s…'\n", err, want);
    return false;
}

TEST(jsonl_errors)
{
    struct cdt_eval_set *set = NULL;
    char err[1024];

    CHECK_INT(load_text(CASE("a", "x") "not json\n", err, sizeof(err), &set), CDT_EFORMAT);
    CHECK(err_is(err, 2, "not a JSON object on one line"));
    CHECK(set == NULL);
    CHECK_INT(load_text(CASE("a", "x") "\n" CASE("b", "x") "[1]\n", err, sizeof(err), &set),
              CDT_EFORMAT);
    CHECK(err_is(err, 4, "not a JSON object"));
    CHECK_INT(
        load_text("{\"id\":\"a\",\"category\":\"x\",\"input\":\"i\"}\n", err, sizeof(err), &set),
        CDT_EFORMAT);
    CHECK(err_is(err, 1, "no \"reference\""));
    CHECK_INT(load_text("{\"id\":\"a\",\"category\":\"x\",\"input\":3,\"reference\":\"r\"}", err,
                        sizeof(err), &set),
              CDT_EFORMAT);
    CHECK(err_is(err, 1, "\"input\" is not a string"));
    CHECK_INT(load_text(CASE("a b", "x"), err, sizeof(err), &set), CDT_EFORMAT);
    CHECK(err_is(err, 1, "\"id\" must be"));
    CHECK_INT(load_text(CASE("a", ""), err, sizeof(err), &set), CDT_EFORMAT);
    CHECK(err_is(err, 1, "\"category\" must be"));
    CHECK_INT(load_text(CASE("a", "x") CASE("b", "x") CASE("a", "y"), err, sizeof(err), &set),
              CDT_EFORMAT);
    CHECK(err_is(err, 3, "duplicate id 'a' (first at"));
    CHECK(strstr(err, "t.jsonl:1)") != NULL);
    CHECK_INT(load_text("{\"id\":\"a\",\"category\":\"x\",\"input\":\"\xff\",\"reference\":\"r\"}",
                        err, sizeof(err), &set),
              CDT_EFORMAT);
    CHECK(err_is(err, 1, "\"input\" is not UTF-8 text"));
    CHECK_INT(load_text("{\"id\":\"a\",\"category\":\"x\",\"input\":\"a\\u0000b\",\"reference\":"
                        "\"r\"}",
                        err, sizeof(err), &set),
              CDT_EFORMAT);
    CHECK(err_is(err, 1, "not a JSON object on one line"));
    CHECK_INT(load_text("{\"id\":\"a\"} trailing\n", err, sizeof(err), &set), CDT_EFORMAT);
    CHECK_INT(load_text("\n  \n", err, sizeof(err), &set), CDT_ENOTFOUND);
    CHECK(strstr(err, "no cases") != NULL);
}

TEST(jsonl_caps)
{
    size_t n = CDT_EVAL_MAX_LINE + 10;
    char *line = malloc(n + 2), err[1024];
    struct cdt_eval_set *set = NULL;

    REQUIRE(line);
    memset(line, 'x', n);
    strcpy(line + n, "\n");
    CHECK_INT(load_text(line, err, sizeof(err), &set), CDT_ETOOBIG);
    CHECK(err_is(err, 1, "line over CDT_EVAL_MAX_LINE"));
    free(line);
}

TEST(jsonl_reads)
{
    struct cdt_eval_set *set = NULL;
    const struct cdt_eval_case *c;
    char err[1024], *dir = NULL, *p;

    /* CRLF, blank lines, unknown keys, null source, unicode. */
    REQUIRE(
        load_text(
            CASE("a", "x") "\r\n"
                           "{\"id\":\"b\",\"category\":\"y\",\"input\":\"\\u00e9t\\u00e9\","
                           "\"reference\":\"Été\",\"source\":null,\"extra\":1}\r\n" CASE("c", "x"),
            err, sizeof(err), &set) == 0);
    CHECK_INT(cdt_eval_set_count(set), 3);
    c = cdt_eval_set_case(set, 1);
    REQUIRE(c);
    CHECK_STR(c->id, "b");
    CHECK_STR(c->input, "été");
    CHECK_STR(c->reference, "Été");
    CHECK(c->source == NULL);
    CHECK_INT(c->line, 3);
    CHECK_INT(c->rank, 0);
    CHECK_INT(cdt_eval_set_case(set, 2)->rank, 1);
    CHECK_INT(cdt_eval_set_case(set, 2)->line, 4);
    CHECK(cdt_eval_set_case(set, 3) == NULL);
    cdt_eval_set_free(set);

    /* A directory: its *.jsonl files in name order, nothing else. */
    REQUIRE(asprintf(&dir, "%s/cases", tmpdir) > 0);
    REQUIRE(mkdir(dir, 0700) == 0);
    free(write_file("cases/b.jsonl", CASE("b1", "x")));
    free(write_file("cases/a.jsonl", CASE("a1", "x") CASE("a2", "z")));
    free(write_file("cases/notes.txt", "not a case file"));
    free(write_file("cases/.hidden.jsonl", "garbage"));
    REQUIRE(cdt_eval_set_load(dir, &set, err, sizeof(err)) == 0);
    CHECK_INT(cdt_eval_set_count(set), 3);
    CHECK_STR(cdt_eval_set_case(set, 0)->id, "a1");
    CHECK_STR(cdt_eval_set_case(set, 2)->id, "b1");
    CHECK(strstr(cdt_eval_set_case(set, 2)->file, "cases/b.jsonl") != NULL);
    cdt_eval_set_free(set);
    free(write_file("cases/c.jsonl", CASE("c1", "x") "{oops\n"));
    CHECK_INT(cdt_eval_set_load(dir, &set, err, sizeof(err)), CDT_EFORMAT);
    CHECK(strstr(err, "cases/c.jsonl:2: ") != NULL);

    /* Nothing there. */
    REQUIRE(asprintf(&p, "%s/none", tmpdir) > 0);
    CHECK_INT(cdt_eval_set_load(p, &set, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(strstr(err, "No such file") != NULL);
    REQUIRE(mkdir(p, 0700) == 0);
    CHECK_INT(cdt_eval_set_load(p, &set, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(strstr(err, "no *.jsonl") != NULL);
    free(p);
    free(dir);
}

static struct cdt_refine_result result(const char *cleaned, const char *refined,
                                       enum cdt_refine_reason reason, double total_ms)
{
    struct cdt_refine_result r = {0};

    r.cleaned = (char *)cleaned;
    r.refined = (char *)refined;
    r.reason = reason;
    r.timings.total_ms = total_ms;
    r.timings.deterministic_ms = 1;
    return r;
}

TEST(report)
{
    const struct cdt_eval_case cases[] = {
        {"q1", "question", "what time is it question mark", "What time is it?", NULL, "f", 1, 0},
        {"q2", "question", "what is two plus two", "What is two plus two?", NULL, "f", 2, 1},
        {"c1", "clean", "All good.", "All good.", NULL, "f", 3, 0},
        {"c2", "clean", "Fine.", "Fine.", NULL, "f", 4, 1},
    };
    struct cdt_eval_report *r;
    struct cdt_refine_result res[4];
    const struct cdt_eval_category *q, *c, *all;
    cJSON *j, *k;

    res[0] = result("What time is it?", "What time is it?", CDT_REFINE_OK, 30);
    res[1] = result("What is two plus two", "What is two plus two", CDT_REFINE_GUARD_ANSWER, 10);
    res[2] = result("All good.", "The weather is nice today.", CDT_REFINE_OK, 20); /* answered */
    res[3] = result("Fine.", "Fine.", CDT_REFINE_NO_MODEL, 40);
    REQUIRE(cdt_eval_report_new(true, &r) == 0);
    for (int i = 0; i < 4; i++)
        CHECK_INT(cdt_eval_report_add(r, &cases[i], &res[i]), 0);
    CHECK_INT(cdt_eval_report_finish(r), 0);
    CHECK_INT(cdt_eval_report_add(r, &cases[0], &res[0]), CDT_EINVAL);
    REQUIRE(cdt_eval_report_count(r) == 2);
    q = cdt_eval_report_category(r, 0);
    c = cdt_eval_report_category(r, 1);
    all = cdt_eval_report_overall(r);
    CHECK_STR(q->name, "question");
    CHECK(!q->pass_through);
    CHECK(c->pass_through);
    CHECK_INT(q->cases, 2);
    CHECK_INT(q->fallbacks, 1);
    CHECK_INT(q->guard_trips, 1);
    CHECK_INT(q->answered, 1);
    CHECK_INT(c->answered, 1);
    CHECK_INT(c->reasons[CDT_REFINE_NO_MODEL], 1);
    CHECK_INT(all->cases, 4);
    CHECK_INT(all->fallbacks, 2);
    CHECK_INT(all->answered, 2);
    CHECK(near(c->det.metrics.changed, 0));
    CHECK(near(c->model.metrics.changed, 0.5));
    CHECK(near(q->model.latency.mean_ms, 20));
    CHECK(near(all->model.latency.p50_ms, 20));
    CHECK(near(all->model.latency.p95_ms, 40));
    CHECK(near(all->det.latency.mean_ms, 1));
    /* question: 4 + 6 reference tokens, "?" missing once. */
    CHECK_INT(q->model.counts.ref_tokens, 11);
    CHECK_INT(q->model.counts.errors, 1);
    CHECK(cdt_eval_outcome_failed(cdt_eval_report_outcome(r, 1)));
    CHECK(!cdt_eval_outcome_failed(cdt_eval_report_outcome(r, 0)));

    j = cdt_eval_report_json(r, true);
    REQUIRE(j);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "categories")), 2);
    k = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "overall"), "model");
    CHECK_INT(cJSON_GetObjectItem(k, "fallbacks")->valueint, 2);
    CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(k, "reasons"), "guard_answer")->valueint, 1);
    CHECK_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(k, "latency_ms"), "p95")->valueint, 40);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "failures")), 2);
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "failures"), 0),
                                  "reason_code")
                  ->valuestring,
              "guard_answer");
    CHECK_STR(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "failures"), 1), "model")
            ->valuestring,
        "The weather is nice today.");
    cJSON_Delete(j);
    cdt_eval_report_free(r);

    /* An empty report: zeros, no crash. */
    REQUIRE(cdt_eval_report_new(false, &r) == 0);
    CHECK_INT(cdt_eval_report_finish(r), 0);
    CHECK(near(cdt_eval_report_overall(r)->model.latency.p95_ms, 0));
    j = cdt_eval_report_json(r, false);
    CHECK(j && !cJSON_GetObjectItem(j, "failures"));
    cJSON_Delete(j);
    cdt_eval_report_free(r);
}

TEST(pass_through)
{
    CHECK(cdt_eval_pass_through("clean"));
    CHECK(cdt_eval_pass_through("non_english"));
    CHECK(!cdt_eval_pass_through("numbers"));
    CHECK(!cdt_eval_pass_through(NULL));
}

int main(void)
{
    char cmd[128];
    int rc;

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(wer_sensitive_and_not);
    RUN(empty_reference);
    RUN(punctuation_f1);
    RUN(content_words);
    RUN(unicode);
    RUN(long_texts);
    RUN(jsonl_errors);
    RUN(jsonl_caps);
    RUN(jsonl_reads);
    RUN(report);
    RUN(pass_through);
    rc = TEST_END();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
