/* Private to libcodictate: filling an errmsg buffer, mapping errno. */
#ifndef CDT_ERR_INT_H
#define CDT_ERR_INT_H

#include "codictate/err.h"

#include <stddef.h>

/* Formats into buf (cap bytes; buf NULL or cap 0: nothing) and returns rc, so a
 * failure path is one line: `return cdt__errmsg_set(errmsg, errcap, CDT_EIO, "…", …);`. */
int cdt__errmsg_set(char *buf, size_t cap, int rc, const char *fmt, ...) CDT_PRINTF(4, 5);

/* The cdt_err of a file-system errno: ENOMEM → CDT_ENOMEM; EACCES, EPERM, EROFS →
 * CDT_EPERM; ENOSPC, EDQUOT → CDT_ENOSPACE; anything else → CDT_EIO. Callers that
 * tell "not found" apart check ENOENT themselves. */
int cdt__err_from_errno(int e);

#endif
