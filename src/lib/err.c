/* Error codes: names and messages generated from CDT_ERR_MAP in err.h. */
#include "codictate/err.h"

#include <stddef.h>

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
