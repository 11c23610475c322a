#include "../test.h"
#include "codictate/limits.h"

#define GIB (UINT64_C(1) << 30)

TEST(ram_gb_rounds_to_nearest)
{
    CHECK_INT(cdt_limits_ram_gb(0), 0);
    /* An "8 GB" machine reports about 7.7 GiB. */
    CHECK_INT(cdt_limits_ram_gb((uint64_t)(7.7 * GIB)), 8);
    CHECK_INT(cdt_limits_ram_gb(8 * GIB), 8);
    CHECK_INT(cdt_limits_ram_gb(8 * GIB + GIB / 2 - 1), 8);
    CHECK_INT(cdt_limits_ram_gb(8 * GIB + GIB / 2), 9);
    CHECK_INT(cdt_limits_ram_gb((uint64_t)(15.6 * GIB)), 16);
    CHECK_INT(cdt_limits_ram_gb((uint64_t)(16.4 * GIB)), 16);
    CHECK_INT(cdt_limits_ram_gb((uint64_t)(16.5 * GIB)), 17);
    CHECK_INT(cdt_limits_ram_gb(UINT64_MAX), 1000000);
}

TEST(tier_boundaries)
{
    CHECK_INT(cdt_limits_tier(0), CDT_TIER_LE8);
    CHECK_INT(cdt_limits_tier(-3), CDT_TIER_LE8);
    CHECK_INT(cdt_limits_tier(7), CDT_TIER_LE8);
    CHECK_INT(cdt_limits_tier(8), CDT_TIER_LE8);
    CHECK_INT(cdt_limits_tier(9), CDT_TIER_9TO16);
    CHECK_INT(cdt_limits_tier(16), CDT_TIER_9TO16);
    CHECK_INT(cdt_limits_tier(17), CDT_TIER_GT16);
    CHECK_INT(cdt_limits_tier(1024), CDT_TIER_GT16);
}

TEST(tier_values)
{
    struct cdt_tier_limits t;

    t = cdt_limits_for_ram_gb(8);
    CHECK_STR(t.name, "le8");
    CHECK_INT(t.max_tokens, 1536);
    CHECK_INT(t.recording_limit_s, 360);
    CHECK_INT(t.recording_warning_s, 330);
    CHECK_STR(t.recommended_id, "qwen3_base_1.7b_v1");

    t = cdt_limits_for_ram_gb(9);
    CHECK_STR(t.name, "9to16");
    CHECK_INT(t.max_tokens, 2048);
    CHECK_INT(t.recording_limit_s, 480);
    CHECK_INT(t.recording_warning_s, 450);
    CHECK_STR(t.recommended_id, "qwen3_base_4b_v1");

    t = cdt_limits_for_ram_gb(16);
    CHECK_STR(t.name, "9to16");

    t = cdt_limits_for_ram_gb(17);
    CHECK_STR(t.name, "gt16");
    CHECK_INT(t.max_tokens, 3072);
    CHECK_INT(t.recording_limit_s, 720);
    CHECK_INT(t.recording_warning_s, 690);
    CHECK_STR(t.recommended_id, "qwen3_base_8b_v1");

    t = cdt_limits_for_ram_gb(7);
    CHECK_STR(t.name, "le8");
}

TEST(tier_names_round_trip)
{
    enum cdt_ram_tier t;

    CHECK_INT(cdt_limits_tier_from_name("le8", &t), 0);
    CHECK_INT(t, CDT_TIER_LE8);
    CHECK_INT(cdt_limits_tier_from_name("9to16", &t), 0);
    CHECK_INT(t, CDT_TIER_9TO16);
    CHECK_INT(cdt_limits_tier_from_name("gt16", &t), 0);
    CHECK_INT(t, CDT_TIER_GT16);
    CHECK_INT(cdt_limits_tier_from_name("16", &t), -1);
    CHECK_INT(cdt_limits_tier_from_name(NULL, &t), -1);
}

TEST(max_tokens_floor_and_ceil)
{
    /* max(64, ceil(1.3 n)) */
    CHECK_INT(cdt_limits_max_tokens(0, 16), 64);
    CHECK_INT(cdt_limits_max_tokens(-5, 16), 64);
    CHECK_INT(cdt_limits_max_tokens(1, 16), 64);
    CHECK_INT(cdt_limits_max_tokens(49, 16), 64); /* 63.7 → 64 */
    CHECK_INT(cdt_limits_max_tokens(50, 16), 65); /* exactly 65 */
    CHECK_INT(cdt_limits_max_tokens(51, 16), 67); /* 66.3 → 67 */
    CHECK_INT(cdt_limits_max_tokens(100, 16), 130);
    CHECK_INT(cdt_limits_max_tokens(101, 16), 132); /* 131.3 → 132 */
}

TEST(max_tokens_capped_by_tier)
{
    /* ceil(1.3 × 1181) = 1536 exactly; 1182 → 1537 is over the ≤8 GB ceiling. */
    CHECK_INT(cdt_limits_max_tokens(1181, 8), 1536);
    CHECK_INT(cdt_limits_max_tokens(1182, 8), 1536);
    CHECK_INT(cdt_limits_max_tokens(1182, 9), 1537);
    CHECK_INT(cdt_limits_max_tokens(1182, 7), 1536);
    CHECK_INT(cdt_limits_max_tokens(1576, 16), 2048); /* 2048.8 → capped */
    CHECK_INT(cdt_limits_max_tokens(1575, 16), 2048); /* 2047.5 → 2048 */
    CHECK_INT(cdt_limits_max_tokens(1574, 16), 2047); /* 2046.2 → 2047 */
    CHECK_INT(cdt_limits_max_tokens(1576, 17), 2049);
    CHECK_INT(cdt_limits_max_tokens(3000, 17), 3072);
    CHECK_INT(cdt_limits_max_tokens(3000, 64), 3072);
}

TEST(max_tokens_huge_inputs)
{
    CHECK_INT(cdt_limits_max_tokens(INT64_MAX, 8), 1536);
    CHECK_INT(cdt_limits_max_tokens(INT64_MAX, 16), 2048);
    CHECK_INT(cdt_limits_max_tokens(INT64_MAX, 17), 3072);
    CHECK_INT(cdt_limits_max_tokens(INT64_MIN, 17), 64);
    CHECK_INT(cdt_limits_max_tokens((int64_t)1 << 40, 0), 1536);
}

/* A fake clock: the test moves time by hand; no test waits. */
static double fake_now(void *user_data)
{
    return *(const double *)user_data;
}

TEST(recording_timer_every_tier)
{
    for (int tier = CDT_TIER_LE8; tier <= CDT_TIER_GT16; tier++) {
        struct cdt_tier_limits lim = cdt_limits_for_tier((enum cdt_ram_tier)tier);
        struct cdt_rec_timer t;
        double now = 1000.0;
        int warns = 0;

        cdt_rec_timer_init(&t, lim.recording_limit_s, fake_now, &now);
        CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_RUNNING);
        /* Tick at 100 ms like the recorder; note where WARN and STOP come. */
        double warn_at = -1, stop_at = -1;
        for (int i = 1; i <= lim.recording_limit_s * 10 + 20 && stop_at < 0; i++) {
            enum cdt_rec_event ev;

            now = 1000.0 + i * 0.1;
            ev = cdt_rec_timer_poll(&t);
            if (ev == CDT_REC_WARN) {
                warns++;
                warn_at = t.elapsed_s;
            } else if (ev == CDT_REC_STOP) {
                stop_at = t.elapsed_s;
            }
        }
        CHECK_INT(warns, 1);
        CHECK(warn_at >= lim.recording_warning_s - 1e-6 &&
              warn_at < lim.recording_warning_s + 0.1 + 1e-6);
        CHECK(stop_at >= lim.recording_limit_s - 1e-6 &&
              stop_at < lim.recording_limit_s + 0.1 + 1e-6);
        CHECK(cdt_rec_timer_remaining(&t) == 0);
        /* STOP stays STOP. */
        now += 5;
        CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_STOP);
    }
}

TEST(recording_timer_edges)
{
    struct cdt_rec_timer t;
    double now = 0;

    /* The 6-minute limit: 329.9 s is quiet, 330 s warns, 359.9 s runs, 360 s stops. */
    cdt_rec_timer_init(&t, 360, fake_now, &now);
    now = 329.9;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_RUNNING);
    CHECK(cdt_rec_timer_remaining(&t) > 30 && cdt_rec_timer_remaining(&t) < 30.2);
    now = 330;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_WARN);
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_RUNNING);
    now = 359.9;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_RUNNING);
    now = 360;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_STOP);

    /* A jump past the limit (a stalled poller): WARN first, then STOP. */
    now = 0;
    cdt_rec_timer_init(&t, 360, fake_now, &now);
    now = 400;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_WARN);
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_STOP);

    /* A clock stepping back never un-records time. */
    now = 100;
    cdt_rec_timer_init(&t, 60, fake_now, &now);
    now = 140;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_WARN);
    now = 120;
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_RUNNING);
    CHECK(t.elapsed_s == 40);

    /* A limit under the warning time warns at once; a zero limit is 1 s. */
    now = 0;
    cdt_rec_timer_init(&t, 10, fake_now, &now);
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_WARN);
    cdt_rec_timer_init(&t, 0, fake_now, &now);
    CHECK(t.limit_s == 1);

    /* The real clock runs forwards. */
    cdt_rec_timer_init(&t, 360, NULL, NULL);
    CHECK_INT(cdt_rec_timer_poll(&t), CDT_REC_RUNNING);
    CHECK(t.elapsed_s >= 0 && t.elapsed_s < 5);
}

int main(void)
{
    RUN(ram_gb_rounds_to_nearest);
    RUN(tier_boundaries);
    RUN(tier_values);
    RUN(tier_names_round_trip);
    RUN(max_tokens_floor_and_ceil);
    RUN(max_tokens_capped_by_tier);
    RUN(max_tokens_huge_inputs);
    RUN(recording_timer_every_tier);
    RUN(recording_timer_edges);
    return TEST_END();
}
