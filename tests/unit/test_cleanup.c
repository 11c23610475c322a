/* The deterministic cleanup pass against the cases of tests/data/cleanup_cases.tsv
 * (input<TAB>expected; "#" lines are comments; \n, \t and \\ are escapes), plus
 * its API edges and idempotence: cleaning a cleaned text changes nothing.
 *   test_cleanup CASES_TSV */
#include "../test.h"
#include "codictate/cleanup.h"

#include <stdlib.h>

#define MAX_LINE 4096

static const char *cases_path;

static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (*s == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : '\\';
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

TEST(cases_from_data_file)
{
    FILE *f = fopen(cases_path, "r");
    char line[MAX_LINE];
    int lineno = 0, n = 0;

    REQUIRE(f);
    while (fgets(line, sizeof(line), f)) {
        char *tab, *in, *want, *got = NULL, *again = NULL;
        size_t len = strlen(line);

        lineno++;
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        tab = strchr(line, '\t');
        if (!tab) {
            fprintf(stderr, "%s:%d: no tab\n", cases_path, lineno);
            cdt_test_state_.checks_failed++;
            continue;
        }
        *tab = '\0';
        in = line;
        want = tab + 1;
        unescape(in);
        unescape(want);
        n++;
        if (cdt_cleanup_text(in, &got) != 0 || strcmp(got, want) != 0) {
            fprintf(stderr, "%s:%d: cleanup(\"%s\")\n   got \"%s\"\n  want \"%s\"\n", cases_path,
                    lineno, in, got ? got : "(error)", want);
            cdt_test_state_.checks_failed++;
        } else if (cdt_cleanup_text(got, &again) != 0 || strcmp(again, got) != 0) {
            fprintf(stderr, "%s:%d: not idempotent: \"%s\" -> \"%s\"\n", cases_path, lineno, got,
                    again ? again : "(error)");
            cdt_test_state_.checks_failed++;
        }
        free(got);
        free(again);
    }
    fclose(f);
    fprintf(stderr, "%d cases\n", n);
    CHECK(n >= 60);
}

TEST(api_edges)
{
    char *out = (char *)"x";
    char *big;

    CHECK_INT(cdt_cleanup_text(NULL, &out), CDT_EINVAL);
    CHECK(out == NULL);
    CHECK_INT(cdt_cleanup_text("x", NULL), CDT_EINVAL);
    CHECK_INT(cdt_cleanup_text("", &out), 0);
    CHECK_STR(out, "");
    free(out);
    CHECK_INT(cdt_cleanup_text(" \n\t ", &out), 0);
    CHECK_STR(out, "");
    free(out);
    big = malloc(CDT_CLEANUP_MAX_TEXT + 2);
    REQUIRE(big);
    memset(big, 'a', CDT_CLEANUP_MAX_TEXT + 1);
    big[CDT_CLEANUP_MAX_TEXT + 1] = '\0';
    CHECK_INT(cdt_cleanup_text(big, &out), CDT_ETOOBIG);
    CHECK(out == NULL);
    free(big);
}

TEST(language_gate)
{
    CHECK(cdt_cleanup_is_english("I think we should ship it"));
    CHECK(cdt_cleanup_is_english("hello world"));
    CHECK(!cdt_cleanup_is_english("Ich glaube, das ist gut"));
    CHECK(!cdt_cleanup_is_english("je pense que c'est la bonne solution"));
    CHECK(!cdt_cleanup_is_english("Привет мир"));
    CHECK(!cdt_cleanup_is_english(NULL));
}

TEST(long_text_is_linear_enough)
{
    /* A dictation-sized text (about 12 minutes of speech) cleans in one piece. */
    const char *unit = "um so I I think comma we should uh ship it period ";
    size_t ul = strlen(unit), n = 400;
    char *in = malloc(ul * n + 1), *out = NULL;

    REQUIRE(in);
    for (size_t i = 0; i < n; i++)
        memcpy(in + i * ul, unit, ul);
    in[ul * n] = '\0';
    CHECK_INT(cdt_cleanup_text(in, &out), 0);
    CHECK(out && strncmp(out, "So I think, we should ship it. So I think", 41) == 0);
    free(in);
    free(out);
}

TEST(many_fillers_in_a_row_stay_linear)
{
    /* A million dead tokens in a row must not make any pass quadratic. */
    size_t n = CDT_CLEANUP_MAX_TEXT / 4;
    char *in = malloc(4 * n + 16), *out = NULL;

    REQUIRE(in);
    memcpy(in, "Yes, ", 5);
    for (size_t i = 0; i < n; i++)
        memcpy(in + 5 + 3 * i, "um ", 3);
    strcpy(in + 5 + 3 * n, "um, I agree.");
    CHECK_INT(cdt_cleanup_text(in, &out), 0);
    CHECK_STR(out, "Yes, I agree.");
    free(in);
    free(out);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_cleanup CASES_TSV\n");
        return 2;
    }
    cases_path = argv[1];
    RUN(cases_from_data_file);
    RUN(api_edges);
    RUN(language_gate);
    RUN(long_text_is_linear_enough);
    RUN(many_fillers_in_a_row_stay_linear);
    return TEST_END();
}
