/* A small in-tree test harness: CHECK* macros record failures and go on, a
 * test file's main() runs TEST()s with RUN() and ends with TEST_END(), which
 * prints "N passed, N failed" and returns the exit status. */
#ifndef CDT_TEST_H
#define CDT_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

struct cdt_test_state {
    int checks_failed; /* failed checks in the current test */
    int passed;        /* tests passed */
    int failed;        /* tests failed */
};

static struct cdt_test_state cdt_test_state_;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            cdt_test_state_.checks_failed++;                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    a_, b_);                                                                       \
            cdt_test_state_.checks_failed++;                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                   \
            cdt_test_state_.checks_failed++;                                                       \
        }                                                                                          \
    } while (0)

/* Stops the current test (return from the TEST function) when cond is false. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);             \
            cdt_test_state_.checks_failed++;                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define TEST(name) static void name(void)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        cdt_test_state_.checks_failed = 0;                                                         \
        name();                                                                                    \
        if (cdt_test_state_.checks_failed) {                                                       \
            cdt_test_state_.failed++;                                                              \
            fprintf(stderr, "FAIL %s\n", #name);                                                   \
        } else {                                                                                   \
            cdt_test_state_.passed++;                                                              \
            fprintf(stderr, "ok   %s\n", #name);                                                   \
        }                                                                                          \
    } while (0)

#define TEST_END()                                                                                 \
    (printf("%d passed, %d failed\n", cdt_test_state_.passed, cdt_test_state_.failed),             \
     cdt_test_state_.failed ? 1 : 0)

#endif
