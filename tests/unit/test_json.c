/* json.c: the shapes --json and the app API share; a refine result survives the trip
 * through JSON (what `codictate refine` reads back from the running app). */
#include "../test.h"
#include "codictate/json.h"
#include "codictate/refine.h"

#include <stdlib.h>

static struct cdt_refine_result sample(enum cdt_refine_reason reason)
{
    struct cdt_refine_result r;

    memset(&r, 0, sizeof(r));
    r.raw = strdup("um so the meeting is at three");
    r.cleaned = strdup("So the meeting is at three.");
    r.refined = strdup(reason == CDT_REFINE_OK ? "So, the meeting is at 3." : r.cleaned);
    r.reason = reason;
    r.fallback_reason = reason == CDT_REFINE_OK ? NULL : strdup("output too long: 30 words for 7");
    r.model = strdup("qwen3_base_1.7b_v1");
    r.timings.deterministic_ms = 0.25;
    r.timings.llm_ms = 120;
    r.timings.total_ms = 121;
    r.timings.prompt_tokens = 80;
    r.timings.generated_tokens = 9;
    return r;
}

TEST(refine_round_trip)
{
    enum cdt_refine_reason reasons[] = {CDT_REFINE_OK, CDT_REFINE_GUARD_LENGTH,
                                        CDT_REFINE_NO_MODEL};

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        struct cdt_refine_result a = sample(reasons[i]), b;
        cJSON *o = cdt_json_refine(&a, "local");

        REQUIRE(o);
        CHECK_STR(cJSON_GetObjectItem(o, "provider")->valuestring, "local");
        CHECK_INT(cdt_json_parse_refine(o, &b), 0);
        CHECK_STR(b.raw, a.raw);
        CHECK_STR(b.refined, a.refined);
        CHECK_INT((int)b.reason, (int)a.reason);
        if (a.reason == CDT_REFINE_OK)
            CHECK(b.fallback_reason == NULL);
        else
            CHECK_STR(b.fallback_reason, a.fallback_reason);
        CHECK_STR(b.model, a.model);
        CHECK(b.timings.llm_ms == a.timings.llm_ms);
        CHECK(b.timings.total_ms == a.timings.total_ms);
        CHECK_INT(b.timings.generated_tokens, a.timings.generated_tokens);
        cJSON_Delete(o);
        cdt_refine_result_cleanup(&a);
        cdt_refine_result_cleanup(&b);
    }
}

TEST(refine_parse_refuses)
{
    static const char *const bad[] = {
        "{}",
        "{\"refined\": 3}",
        "{\"refined\": \"x\", \"reason_code\": \"no_such_reason\"}",
        "[]",
    };
    struct cdt_refine_result r;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *o = cJSON_Parse(bad[i]);

        CHECK_INT(cdt_json_parse_refine(o, &r), CDT_EFORMAT);
        cJSON_Delete(o);
    }
    /* A fallback without its text gets the reason's message. */
    {
        cJSON *o = cJSON_Parse("{\"refined\": \"x\", \"reason_code\": \"guard_length\"}");

        CHECK_INT(cdt_json_parse_refine(o, &r), 0);
        CHECK_STR(r.fallback_reason, cdt_refine_reason_message(CDT_REFINE_GUARD_LENGTH));
        cdt_refine_result_cleanup(&r);
        cJSON_Delete(o);
    }
}

TEST(strict_parse)
{
    static const struct {
        const char *text;
        long bad_at; /* -1: accepted; -2: refused where cJSON stops */
    } cases[] = {
        {"{\"a\": 1}", -1},
        {"  {\"a\": \"x\\ny\"}\n", -1},
        {"{\"a\": \"\\u00e9\\\"\"}", -1},
        {"{\"a\": 1} x", 9},           /* trailing garbage */
        {"{\"a\": 1}{\"b\": 2}", 8},   /* two objects */
        {"{\"a\": \"x\ty\"}", 8},      /* a raw tab in a string */
        {"{\"a\": \"x\\u0000y\"}", 8}, /* \u0000 cuts C strings */
        {"{\"a\": ", -2},              /* cut short */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t off = 12345;
        cJSON *o = cdt_json_parse_strict(cases[i].text, strlen(cases[i].text), &off);

        if (cases[i].bad_at == -1) {
            CHECK(o != NULL);
        } else {
            CHECK(o == NULL);
            if (cases[i].bad_at >= 0)
                CHECK_INT((int)off, (int)cases[i].bad_at);
        }
        cJSON_Delete(o);
    }
    CHECK(cdt_json_parse_strict(NULL, 0, NULL) == NULL);
}

int main(void)
{
    RUN(refine_round_trip);
    RUN(refine_parse_refuses);
    RUN(strict_parse);
    return TEST_END();
}
