/* RAM tiers (seed values; see limits.h). One table, indexed by tier. */
#include "codictate/limits.h"
#include "codictate/util.h"

#include <string.h>
#include <time.h>

static const struct cdt_tier_limits tiers[] = {
    {CDT_TIER_LE8, "le8", "8 GB or less", 1536, 360, 360 - CDT_RECORDING_WARNING_S,
     "qwen3_base_1.7b_v1", "Qwen 3 Base 1.7B"},
    {CDT_TIER_9TO16, "9to16", "9-16 GB", 2048, 480, 480 - CDT_RECORDING_WARNING_S,
     "qwen3_base_4b_v1", "Qwen 3 4B Instruct 2507"},
    {CDT_TIER_GT16, "gt16", "more than 16 GB", 3072, 720, 720 - CDT_RECORDING_WARNING_S,
     "qwen3_base_8b_v1", "Qwen 3 Base 8B"},
};

int cdt_limits_ram_gb(uint64_t total_bytes)
{
    const uint64_t gib = UINT64_C(1) << 30;
    uint64_t gb = total_bytes / gib + (total_bytes % gib >= gib / 2 ? 1 : 0);

    return gb > 1000000 ? 1000000 : (int)gb;
}

enum cdt_ram_tier cdt_limits_tier(int ram_gb)
{
    if (ram_gb <= 8)
        return CDT_TIER_LE8;
    if (ram_gb <= 16)
        return CDT_TIER_9TO16;
    return CDT_TIER_GT16;
}

struct cdt_tier_limits cdt_limits_for_tier(enum cdt_ram_tier tier)
{
    if ((unsigned)tier >= sizeof(tiers) / sizeof(tiers[0]))
        tier = CDT_TIER_LE8;
    return tiers[tier];
}

struct cdt_tier_limits cdt_limits_for_ram_gb(int ram_gb)
{
    return cdt_limits_for_tier(cdt_limits_tier(ram_gb));
}

int cdt_limits_max_tokens(int64_t n_prompt_tokens, int ram_gb)
{
    int cap = cdt_limits_for_ram_gb(ram_gb).max_tokens;
    int64_t want;

    if (n_prompt_tokens <= 0)
        return CDT_MIN_GEN_TOKENS;
    if (n_prompt_tokens >= cap) /* 1.3·n ≥ n ≥ cap: skip the arithmetic (and overflow) */
        return cap;
    want = (n_prompt_tokens * 13 + 9) / 10; /* ceil(1.3·n) in integers */
    if (want < CDT_MIN_GEN_TOKENS)
        want = CDT_MIN_GEN_TOKENS;
    return want > cap ? cap : (int)want;
}

int cdt_limits_tier_from_name(const char *name, enum cdt_ram_tier *tier)
{
    for (size_t i = 0; name && i < sizeof(tiers) / sizeof(tiers[0]); i++) {
        if (strcmp(name, tiers[i].name) == 0) {
            *tier = tiers[i].tier;
            return 0;
        }
    }
    return -1;
}

static double monotonic_s(void *user_data)
{
    (void)user_data;
    return cdt_now_ms() / 1e3;
}

void cdt_rec_timer_init(struct cdt_rec_timer *t, double limit_s, cdt_clock_fn clock,
                        void *user_data)
{
    memset(t, 0, sizeof(*t));
    t->limit_s = limit_s > 0 ? limit_s : 1;
    t->warning_s = t->limit_s - CDT_RECORDING_WARNING_S;
    if (t->warning_s < 0)
        t->warning_s = 0;
    t->clock = clock ? clock : monotonic_s;
    t->user_data = user_data;
    t->start = t->clock(t->user_data);
}

enum cdt_rec_event cdt_rec_timer_poll(struct cdt_rec_timer *t)
{
    double e = t->clock(t->user_data) - t->start;

    /* A clock that steps back (a fake one, say) never undoes time recorded. */
    if (e > t->elapsed_s)
        t->elapsed_s = e;
    if (!t->warned && t->elapsed_s >= t->warning_s) {
        t->warned = true;
        return CDT_REC_WARN;
    }
    return t->elapsed_s >= t->limit_s ? CDT_REC_STOP : CDT_REC_RUNNING;
}

double cdt_rec_timer_remaining(const struct cdt_rec_timer *t)
{
    double r = t->limit_s - t->elapsed_s;

    return r > 0 ? r : 0;
}
