#include "../test.h"
#include "codictate/log.h"

#include <stdlib.h>

struct capture {
    int n;
    enum cdt_log_level levels[16];
    char lines[16][256];
};

static void sink(enum cdt_log_level level, const char *line, void *ud)
{
    struct capture *c = ud;

    if (c->n < 16) {
        c->levels[c->n] = level;
        snprintf(c->lines[c->n], sizeof(c->lines[0]), "%s", line);
    }
    c->n++;
}

static struct cdt_log *make(struct capture *c, enum cdt_log_level level)
{
    struct cdt_log_params p = cdt_log_default_params();
    struct cdt_log *lg = NULL;

    memset(c, 0, sizeof(*c));
    p.level = level;
    p.sink = sink;
    p.user_data = c;
    if (cdt_log_new(&p, &lg) != 0)
        return NULL;
    return lg;
}

TEST(quiet_by_default)
{
    struct capture c;
    struct cdt_log *lg = make(&c, CDT_LOG_DEFAULT);

    REQUIRE(lg);
    CHECK_INT(cdt_log_get_level(lg), CDT_LOG_WARN);
    CDT_LOG_I(lg, "info %d", 1);
    CDT_LOG_D(lg, "debug");
    CDT_LOG_W(lg, "warn %s", "x");
    CDT_LOG_E(lg, "error");
    CHECK_INT(c.n, 2);
    CHECK_STR(c.lines[0], "warn x");
    CHECK_INT(c.levels[0], CDT_LOG_WARN);
    CHECK_STR(c.lines[1], "error");
    cdt_log_free(lg);
}

TEST(verbose_levels)
{
    struct capture c;
    struct cdt_log *lg = make(&c, CDT_LOG_INFO);

    REQUIRE(lg);
    CHECK(cdt_log_enabled(lg, CDT_LOG_INFO));
    CHECK(!cdt_log_enabled(lg, CDT_LOG_DEBUG));
    CDT_LOG_I(lg, "a\nb\n");
    CHECK_INT(c.n, 2);
    CHECK_STR(c.lines[0], "a");
    CHECK_STR(c.lines[1], "b");
    cdt_log_set_level(lg, CDT_LOG_TRACE);
    CHECK(cdt_log_enabled(lg, CDT_LOG_TRACE));
    cdt_log_free(lg);
}

TEST(engine_fragments_are_joined)
{
    struct capture c;
    struct cdt_log *lg = make(&c, CDT_LOG_DEBUG);

    REQUIRE(lg);
    cdt_log_ggml(GGML_LOG_LEVEL_INFO, "llama_model_load: ", lg);
    cdt_log_ggml(GGML_LOG_LEVEL_CONT, "loaded", lg);
    cdt_log_ggml(GGML_LOG_LEVEL_CONT, " 2 layers\n", lg);
    cdt_log_ggml(GGML_LOG_LEVEL_DEBUG, "trace only\n", lg);
    cdt_log_ggml(GGML_LOG_LEVEL_WARN, "careful\nsecond line\n", lg);
    cdt_log_ggml(GGML_LOG_LEVEL_ERROR, "no newline", lg);
    CHECK_INT(c.n, 3);
    CHECK_STR(c.lines[0], "llama_model_load: loaded 2 layers");
    CHECK_INT(c.levels[0], CDT_LOG_DEBUG);
    CHECK_STR(c.lines[1], "careful");
    CHECK_INT(c.levels[1], CDT_LOG_WARN);
    CHECK_STR(c.lines[2], "second line");
    cdt_log_free(lg); /* flushes the pending fragment */
    CHECK_INT(c.n, 4);
    CHECK_STR(c.lines[3], "no newline");
    CHECK_INT(c.levels[3], CDT_LOG_ERROR);
}

TEST(null_log_is_a_no_op)
{
    CDT_LOG_E(NULL, "nothing %d", 1);
    cdt_log_ggml(GGML_LOG_LEVEL_ERROR, "x\n", NULL);
    CHECK(!cdt_log_enabled(NULL, CDT_LOG_ERROR));
    cdt_log_free(NULL);
}

TEST(long_lines_are_split_not_overflowed)
{
    struct capture c;
    struct cdt_log *lg = make(&c, CDT_LOG_DEBUG);
    char *big = malloc(5000);

    REQUIRE(lg && big);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    cdt_log_ggml(GGML_LOG_LEVEL_INFO, big, lg);
    cdt_log_ggml(GGML_LOG_LEVEL_CONT, "\n", lg);
    CHECK(c.n >= 3);
    CDT_LOG_W(lg, "%s", big); /* truncated to one buffer, still no overflow */
    free(big);
    cdt_log_free(lg);
}

/* A client's path or a model path in a message cannot drive the terminal. */
TEST(control_characters_are_escaped)
{
    struct capture c;
    struct cdt_log *lg = make(&c, CDT_LOG_INFO);

    REQUIRE(lg);
    CDT_LOG_I(lg, "GET /%s 404",
              "\x1b]0;owned\x07\x1b[2J\xc2\x9b"
              "1m\x7f");
    cdt_log_ggml(GGML_LOG_LEVEL_ERROR, "model \x1b[31mred\n", lg);
    CHECK_INT(c.n, 2);
    CHECK_STR(c.lines[0], "GET /\\x1b]0;owned\\x07\\x1b[2J\\u009b1m\\x7f 404");
    CHECK_STR(c.lines[1], "model \\x1b[31mred");
    cdt_log_free(lg);
}

int main(void)
{
    RUN(quiet_by_default);
    RUN(verbose_levels);
    RUN(engine_fragments_are_joined);
    RUN(null_log_is_a_no_op);
    RUN(long_lines_are_split_not_overflowed);
    RUN(control_characters_are_escaped);
    return TEST_END();
}
