/* Error codes: names and messages generated from CDT_ERR_MAP in err.h. */
#include "codictate/err.h"
#include "err_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

const char *cdt_strerror(int err)
{
    switch (err) {
    case CDT_OK:
        return "success";
#define CDT_ERR_MSG_(name, value, msg)                                                             \
    case value:                                                                                    \
        return msg;
        CDT_ERR_MAP(CDT_ERR_MSG_)
#undef CDT_ERR_MSG_
    }
    return "unknown error";
}

const char *cdt_errname(int err)
{
    switch (err) {
    case CDT_OK:
        return "OK";
#define CDT_ERR_NAME_(name, value, msg)                                                            \
    case value:                                                                                    \
        return #name;
        CDT_ERR_MAP(CDT_ERR_NAME_)
#undef CDT_ERR_NAME_
    }
    return NULL;
}

int cdt__errmsg_set(char *buf, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;

    if (buf && cap) {
        va_start(ap, fmt);
        vsnprintf(buf, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int cdt__err_from_errno(int e)
{
    switch (e) {
    case ENOMEM:
        return CDT_ENOMEM;
    case EACCES:
    case EPERM:
    case EROFS:
        return CDT_EPERM;
    case ENOSPC:
    case EDQUOT:
        return CDT_ENOSPACE;
    default:
        return CDT_EIO;
    }
}
