/* The base layer's small helpers (see util.h). */
#include "codictate/util.h"
#include "codictate/err.h"

#include <errno.h>
#include <signal.h>

int cdt_proc_signal(pid_t pid, int sig)
{
    if (pid <= 0)
        return CDT_EINVAL;
    if (kill(pid, sig) == 0)
        return 0;
    return errno == ESRCH ? CDT_ENOTFOUND : errno == EPERM ? CDT_EPERM : CDT_EINVAL;
}
