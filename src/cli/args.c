/* Checked argument parsing for the CLI. */
#include "args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool cdt_arg_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
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
