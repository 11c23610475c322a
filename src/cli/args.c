/* Checked argument parsing for the CLI. */
#include "args.h"
#include "codictate/util.h"

#include <string.h>

bool cdt_arg_int(const char *s, long lo, long hi, long *out)
{
    return cdt_parse_long(s, lo, hi, out) == 0;
}

bool cdt_arg_range(const char *s, long lo, long hi, long *a, long *b)
{
    char buf[64];
    const char *dash;

    if (!s || strlen(s) >= sizeof(buf))
        return false;
    dash = strchr(s, '-');
    if (!dash)
        return false;
    memcpy(buf, s, (size_t)(dash - s));
    buf[dash - s] = '\0';
    return cdt_arg_int(buf, lo, hi, a) && cdt_arg_int(dash + 1, lo, hi, b) && *a <= *b;
}
