/* Checked parsing of command-line values (never atoi on user input). */
#ifndef CDT_CLI_ARGS_H
#define CDT_CLI_ARGS_H

#include <stdbool.h>

/* Parses a whole decimal integer in [lo, hi]. Returns true and sets *out. */
bool cdt_arg_int(const char *s, long lo, long hi, long *out);

/* Parses "A-B" with lo ≤ A ≤ B ≤ hi. */
bool cdt_arg_range(const char *s, long lo, long hi, long *a, long *b);

#endif
