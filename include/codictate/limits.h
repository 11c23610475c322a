/* The seed's RAM tiers: how much a machine may generate and record.
 *
 * RAM in GB is total bytes / 2^30 rounded to the nearest integer (an "8 GB"
 * machine reports ~7.7 GiB → 8). Tiers: ≤8 GB, 9–16 GB, >16 GB. Per tier:
 * token ceiling 1536 / 2048 / 3072, recording limit 360 / 480 / 720 s, a warning
 * 30 s before the limit, and a recommended model. Pure functions; thread-safe. */
#ifndef CODICTATE_LIMITS_H
#define CODICTATE_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum cdt_ram_tier {
    CDT_TIER_LE8 = 0,   /* ≤ 8 GB */
    CDT_TIER_9TO16 = 1, /* 9–16 GB */
    CDT_TIER_GT16 = 2,  /* > 16 GB */
};

struct cdt_tier_limits {
    enum cdt_ram_tier tier;
    const char *name;             /* catalog spelling: "le8", "9to16", "gt16" */
    const char *label;            /* for people: "8 GB or less", … */
    int max_tokens;               /* generation ceiling, tokens */
    int recording_limit_s;        /* longest recording, seconds */
    int recording_warning_s;      /* when the warning shows, seconds from the start */
    const char *recommended_id;   /* canonical catalog id of the recommended LLM */
    const char *recommended_name; /* its display name */
};

#define CDT_MIN_GEN_TOKENS      64 /* floor of the dynamic max_tokens */
#define CDT_RECORDING_WARNING_S 30 /* warning this long before the recording limit */

/* Total bytes → whole GB, rounded to nearest (ties up). */
int cdt_limits_ram_gb(uint64_t total_bytes);

/* The tier of `ram_gb` (values < 1 count as ≤8). */
enum cdt_ram_tier cdt_limits_tier(int ram_gb);

/* Everything for a tier; the strings are static. */
struct cdt_tier_limits cdt_limits_for_tier(enum cdt_ram_tier tier);

/* Shorthand: cdt_limits_for_tier(cdt_limits_tier(ram_gb)). */
struct cdt_tier_limits cdt_limits_for_ram_gb(int ram_gb);

/* The seed's dynamic generation limit for max_tokens = -1:
 * max(64, ceil(1.3 × n_prompt_tokens)) capped by the tier ceiling of ram_gb.
 * Negative n counts as 0; never overflows. */
int cdt_limits_max_tokens(int64_t n_prompt_tokens, int ram_gb);

/* Parses a tier name ("le8", "9to16", "gt16"). Returns 0 and sets *tier, or -1. */
int cdt_limits_tier_from_name(const char *name, enum cdt_ram_tier *tier);

/* ---- the recording timer ----
 * Decides, from a clock the caller provides (a real one, or a fake in tests),
 * when a recording must warn (CDT_RECORDING_WARNING_S before its limit) and when
 * it must stop (at the limit). No threads, no sleeping: the caller polls it.
 *
 *   struct cdt_rec_timer t;
 *   cdt_rec_timer_init(&t, limit_s, clock_fn, clock_ud);
 *   every ~100 ms: switch (cdt_rec_timer_poll(&t)) { ... }
 */

/* Seconds on a monotonic clock (any origin). */
typedef double (*cdt_clock_fn)(void *user_data);

enum cdt_rec_event {
    CDT_REC_RUNNING = 0, /* nothing new */
    CDT_REC_WARN = 1,    /* the warning time was reached (reported once) */
    CDT_REC_STOP = 2,    /* the limit was reached (reported on every poll from then on) */
};

struct cdt_rec_timer {
    double limit_s;   /* the longest recording, seconds */
    double warning_s; /* when CDT_REC_WARN fires, seconds from the start (limit − 30,
                       * at least 0) */
    double start;     /* clock value at init */
    double elapsed_s; /* seconds recorded at the last poll */
    bool warned;      /* CDT_REC_WARN was reported */
    cdt_clock_fn clock;
    void *user_data;
};

/* Starts the timer now (clock(user_data)). limit_s ≤ 0 counts as 1 s; a limit
 * shorter than the warning time warns at the start. clock NULL: CLOCK_MONOTONIC. */
void cdt_rec_timer_init(struct cdt_rec_timer *t, double limit_s, cdt_clock_fn clock,
                        void *user_data);

/* Reads the clock; updates t->elapsed_s; returns what happened (WARN once — also
 * when the first poll is already past the limit: then WARN, then STOP — and STOP
 * from the limit on). */
enum cdt_rec_event cdt_rec_timer_poll(struct cdt_rec_timer *t);

/* Seconds left before the limit at the last poll (≥ 0). */
double cdt_rec_timer_remaining(const struct cdt_rec_timer *t);

#ifdef __cplusplus
}
#endif
#endif
