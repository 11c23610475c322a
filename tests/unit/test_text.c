#include "../test.h"
#include "codictate/text.h"

#include <stdlib.h>

static void check_clean(const char *in, const char *want, int line)
{
    char *got = cdt_text_clean_response(in);

    if (!got || strcmp(got, want) != 0) {
        fprintf(stderr, "line %d: clean(\"%s\") = \"%s\", want \"%s\"\n", line, in,
                got ? got : "(null)", want);
        cdt_test_state_.checks_failed++;
    }
    free(got);
}

#define CLEAN(in, want) check_clean(in, want, __LINE__)

TEST(clean_response)
{
    CLEAN("", "");
    CLEAN("  Hello, world.  \n", "Hello, world.");
    CLEAN("<think>\n\n</think>\n\nHello.", "Hello.");
    CLEAN("<think>reasoning here</think>Answer", "Answer");
    CLEAN("a<think>x</think>b<think>y</think>c", "abc");
    CLEAN("reasoning without opener</think> Final.", "Final.");
    CLEAN("Start. <think> never closed", "Start.");
    CLEAN("Output: The cleaned text.\n\nOutput: again", "The cleaned text.");
    CLEAN("Here you go.\nOutput:\nLine one.\n\nNoise", "Line one.");
    CLEAN("Text: one. Text: one. Text: one.", "Text: one.");
    CLEAN("Text: only once", "Text: only once");
    CLEAN("Plain text with no markers", "Plain text with no markers");
    CLEAN(NULL, "");
}

TEST(strip_think_blocks_alone)
{
    char *a =
        cdt_text_strip_think_blocks("<think>\nx\n</think>\n\n Output: kept. Text: a Text: b ");
    char *b = cdt_text_strip_think_blocks("gone</think>Start. <think> never closed");
    char *c = cdt_text_strip_think_blocks(NULL);

    REQUIRE(a && b && c);
    CHECK_STR(a, "\n\n Output: kept. Text: a Text: b ");
    CHECK_STR(b, "Start. <think> never closed");
    CHECK_STR(c, "");
    free(a);
    free(b);
    free(c);
}

TEST(utf8_validation)
{
    CHECK(cdt_utf8_valid("", 0));
    CHECK(cdt_utf8_valid("ascii", 5));
    CHECK(cdt_utf8_valid("caf\xc3\xa9", 5));
    CHECK(cdt_utf8_valid("\xe2\x82\xac", 3));      /* € */
    CHECK(cdt_utf8_valid("\xf0\x9f\x98\x80", 4));  /* 😀 */
    CHECK(!cdt_utf8_valid("\xc3", 1));             /* truncated */
    CHECK(!cdt_utf8_valid("\xe2\x82", 2));         /* truncated */
    CHECK(!cdt_utf8_valid("\x80", 1));             /* lone continuation */
    CHECK(!cdt_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!cdt_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    CHECK(!cdt_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!cdt_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!cdt_utf8_valid("\xff", 1));
    CHECK(cdt_utf8_valid("a\xc3\xa9z", 4));
    CHECK(!cdt_utf8_valid("a\xc3z", 3));
}

TEST(escape_controls)
{
    char *s = cdt_text_escape_controls("a\x1b[2Jb\x07"
                                       "c\nd\x7f e\xc2\x9b"
                                       "31m \xc3\xa9",
                                       false);

    REQUIRE(s);
    CHECK_STR(s, "a\\x1b[2Jb\\x07c\\x0ad\\x7f e\\u009b31m \xc3\xa9");
    free(s);
    s = cdt_text_escape_controls("line one\nline\ttwo", true);
    REQUIRE(s);
    CHECK_STR(s, "line one\nline\\x09two");
    free(s);
    s = cdt_text_escape_controls("", true);
    REQUIRE(s);
    CHECK_STR(s, "");
    free(s);
}

/* The buffer form: whole escapes only, always NUL-terminated, the full length back. */
TEST(escape_controls_to_buffer)
{
    char buf[8];

    CHECK_INT(cdt_text_escape_controls_to("ab\x1b", false, buf, sizeof(buf)), 6);
    CHECK_STR(buf, "ab\\x1b");
    CHECK_INT(cdt_text_escape_controls_to("abcd\x1b", false, buf, 6), 8);
    CHECK_STR(buf, "abcd"); /* "\x1b" does not fit: left out, not cut in half */
    CHECK_INT(cdt_text_escape_controls_to("\xc2\x9b", false, NULL, 0), 6);
}

/* A stream's pieces as valid UTF-8: a character cut between two pieces is held
 * back, then given whole with the next; bytes that start no character become
 * U+FFFD at once. */
TEST(utf8_carry_across_pieces)
{
    char carry[4];
    size_t n = 0;
    char *s;

    s = cdt_utf8_carry(carry, &n, "ab\xc3", 3); /* é cut after its first byte */
    CHECK_STR(s, "ab");
    CHECK_INT((int)n, 1);
    free(s);
    s = cdt_utf8_carry(carry, &n, "\xa9\xe2\x82", 3); /* its end, then € cut short */
    CHECK_STR(s, "\xc3\xa9");
    CHECK_INT((int)n, 2);
    free(s);
    s = cdt_utf8_carry(carry, &n, "\xac!\xff", 3);
    CHECK_STR(s, "\xe2\x82\xac!\xef\xbf\xbd"); /* €, then U+FFFD for 0xff */
    CHECK_INT((int)n, 0);
    free(s);
}

int main(void)
{
    RUN(clean_response);
    RUN(strip_think_blocks_alone);
    RUN(utf8_validation);
    RUN(utf8_carry_across_pieces);
    RUN(escape_controls);
    RUN(escape_controls_to_buffer);
    return TEST_END();
}
