#include "../test.h"
#include "codictate/err.h"

TEST(every_code_has_a_name_and_message)
{
    int seen = 0;
#define X(name, value, msg)                                                                        \
    CHECK(value < 0);                                                                              \
    CHECK_STR(cdt_strerror(value), msg);                                                           \
    CHECK_STR(cdt_errname(value), #name);                                                          \
    seen++;
    CDT_ERR_MAP(X)
#undef X
    CHECK(seen >= 19);
}

TEST(values_are_stable)
{
    /* Values are part of the ABI: never renumbered. */
    CHECK_INT(CDT_EINVAL, -1);
    CHECK_INT(CDT_ENOMEM, -2);
    CHECK_INT(CDT_ENOTFOUND, -4);
    CHECK_INT(CDT_ECHECKSUM, -14);
    CHECK_INT(CDT_EPROTOCOL, -19);
}

TEST(ok_and_unknown)
{
    CHECK_STR(cdt_strerror(0), "success");
    CHECK_STR(cdt_errname(0), "OK");
    CHECK_STR(cdt_strerror(-9999), "unknown error");
    CHECK_STR(cdt_strerror(5), "unknown error");
    CHECK(cdt_errname(-9999) == NULL);
}

int main(void)
{
    RUN(every_code_has_a_name_and_message);
    RUN(values_are_stable);
    RUN(ok_and_unknown);
    return TEST_END();
}
