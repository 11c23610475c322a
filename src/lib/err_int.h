/* Private to libcodictate: filling an errmsg buffer. */
#ifndef CDT_ERR_INT_H
#define CDT_ERR_INT_H

#include "codictate/err.h"

#include <stddef.h>

/* Formats into buf (cap bytes; buf NULL or cap 0: nothing) and returns rc, so a
 * failure path is one line: `return cdt__errmsg_set(errmsg, errcap, CDT_EIO, "…", …);`. */
int cdt__errmsg_set(char *buf, size_t cap, int rc, const char *fmt, ...) CDT_PRINTF(4, 5);

#endif
