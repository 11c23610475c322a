/* The JSON grammars of response_format (src/sidecar/json_grammar.c): what a schema
 * becomes or why it is refused, and the closing of JSON cut short. That llama.cpp
 * parses the grammars and the output follows them is tests/e2e/openai's part. */
#include "../../src/sidecar/json_grammar_int.h"
#include "../test.h"
#include "codictate/err.h"

#include <stdlib.h>
#include <string.h>

/* The grammar of schema text (NULL when refused; err gets why). */
static char *grammar_of(const char *schema, int *rc, char *err, size_t cap)
{
    cJSON *s = cJSON_Parse(schema);
    char *g = NULL;

    *rc = s ? cdt__json_grammar_schema(s, &g, err, cap) : CDT_EINVAL;
    cJSON_Delete(s);
    return g;
}

TEST(object_grammar)
{
    char *g = NULL;

    CHECK_INT(cdt__json_grammar_object(&g), 0);
    REQUIRE(g);
    CHECK(strncmp(strstr(g, "root ::= "), "root ::= \"{\"", 12) == 0);
    CHECK(strstr(g, "value-6 ::= string | number | boolean | null") != NULL); /* depth bound */
    free(g);
}

TEST(schema_subset)
{
    char err[400], *g;
    int rc;

    g = grammar_of(
        "{\"type\":\"object\",\"properties\":{\"a b\":{\"type\":\"string\",\"maxLength\":5},"
        "\"n\":{\"type\":\"integer\",\"minimum\":0},\"k\":{\"enum\":[\"x\",1,null]},"
        "\"t\":{\"type\":[\"boolean\",\"null\"]},\"l\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"number\"},\"minItems\":1,\"maxItems\":3}},\"required\":[\"a b\"],"
        "\"additionalProperties\":false,\"description\":\"d\"}",
        &rc, err, sizeof(err));
    CHECK_INT(rc, 0);
    REQUIRE(g);
    CHECK(strstr(g, "\"\\\"a b\\\"\" ws \":\" ws") != NULL); /* the key as a literal */
    CHECK(strstr(g, "char{0,5}") != NULL);
    CHECK(strstr(g, "ws uint ws") != NULL); /* minimum 0: no sign */
    CHECK(strstr(g, "\"\\\"x\\\"\" | \"1\" | \"null\"") != NULL);
    CHECK(strstr(g, "boolean | null") != NULL);
    CHECK(strstr(g, "{0,2}") != NULL); /* 1..3 items: one, then up to two more */
    free(g);

    /* A string without maxLength in a schema is bounded; zod's safe-integer bounds
     * are within what the grammar writes. */
    g = grammar_of("{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\"},\"i\":{"
                   "\"type\":\"integer\",\"minimum\":-9007199254740991,\"maximum\":"
                   "9007199254740991}}}",
                   &rc, err, sizeof(err));
    CHECK_INT(rc, 0);
    CHECK(g && strstr(g, "char{0,1024}") != NULL);
    free(g);
}

TEST(schema_refused)
{
    static const char *const bad[][2] = {
        {"{\"type\":\"string\",\"pattern\":\"a\"}", "\"pattern\""},
        {"{\"type\":\"string\",\"format\":\"email\"}", "\"format\""},
        {"{\"$ref\":\"#/$defs/x\"}", "\"$ref\""},
        {"{\"type\":\"integer\",\"minimum\":5}", "minimum/maximum"},
        {"{\"type\":\"number\",\"maximum\":10}", "minimum/maximum"},
        {"{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"]}", "required"},
        {"{\"type\":\"date\"}", "unknown type"},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", "tuples"},
    };
    char err[400], *g;
    int rc;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        g = grammar_of(bad[i][0], &rc, err, sizeof(err));
        CHECK(g == NULL);
        CHECK_INT(rc, CDT_EINVAL);
        CHECK(strstr(err, bad[i][1]) != NULL);
        CHECK(strncmp(err, "response_format: ", 17) == 0);
        free(g);
    }
}

/* The completion of text cut short. */
static const char *closing(const char *text)
{
    static char out[128];
    struct cdt_json_scan js;

    memset(&js, 0, sizeof(js));
    cdt__json_scan_feed(&js, text, strlen(text));
    if (cdt__json_scan_closing(&js, out, sizeof(out)) < 0)
        return "(none)";
    return out;
}

TEST(closes_cut_json)
{
    CHECK_STR(closing("{"), "}");
    CHECK_STR(closing("{\"a"), "\":0}");
    CHECK_STR(closing("{\"a\""), ":0}");
    CHECK_STR(closing("{\"a\" :"), "0}");
    CHECK_STR(closing("{\"a\":\"x\\"), "n\"}");
    CHECK_STR(closing("{\"a\":\"\\u12"), "00\"}");
    CHECK_STR(closing("{\"a\":[1,"), "0]}");
    CHECK_STR(closing("{\"a\":[1.5e"), "0]}");
    CHECK_STR(closing("{\"a\":[-"), "0]}");
    CHECK_STR(closing("{\"a\":12"), "}");
    CHECK_STR(closing("{\"a\":tr"), "ue}");
    CHECK_STR(closing("{\"a\":{\"b\":[[\"c\"]],"), "\"\":0}}");
    CHECK_STR(closing("{\"a\":\"}]\" , \"b\":nul"), "l}");
    CHECK_STR(closing("{ }"), "");
    CHECK_STR(closing("{\"a\"}"), "(none)"); /* not JSON */
    CHECK_STR(closing("{} x"), "(none)");
}

static int utf8_left(const char *text)
{
    struct cdt_json_scan js;

    memset(&js, 0, sizeof(js));
    cdt__json_scan_feed(&js, text, strlen(text));
    return js.utf8_left;
}

/* A character's bytes may come a token each, and the grammar takes no '"' until
 * they are all there: near the end of max_tokens the engine takes no token that
 * leaves more bytes to come than tokens to close with (a character started two
 * tokens before the end left JSON with no end, 2 of 1,500 LangChain jsonMode runs). */
TEST(counts_a_characters_missing_bytes)
{
    CHECK(utf8_left("{\"a\":\"\xE7") == 2);
    CHECK(utf8_left("{\"a\":\"\xE7\xAF") == 1);
    CHECK(utf8_left("{\"a\":\"\xE7\xAF\xAF") == 0);
    CHECK(utf8_left("{\"a\":\"\xF8\xA2") == 2); /* counted as llama.cpp does */
    CHECK(utf8_left("{\"\xC3") == 1);           /* in a key too */
    CHECK(utf8_left("{\"a\":\"\xE7x") == 0);    /* broken off: none awaited */
    CHECK_STR(closing("{\"a\":\"\xE7\xAF\xAF"), "\"}");
}

int main(void)
{
    RUN(object_grammar);
    RUN(schema_subset);
    RUN(schema_refused);
    RUN(closes_cut_json);
    RUN(counts_a_characters_missing_bytes);
    return TEST_END();
}
