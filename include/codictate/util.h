/* Small helpers of the base layer that every other module may use.
 *
 * Processes: a PID held in a variable is checked before it is signalled, because
 * kill(0, sig) signals the caller's whole process group (a test runner included)
 * and kill(-1, sig) every process the caller may signal. All functions here are
 * thread-safe. */
#ifndef CODICTATE_UTIL_H
#define CODICTATE_UTIL_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sends `sig` (0: only checks that the process exists) to the single process `pid`.
 * Returns 0 when sent, CDT_EINVAL when pid <= 0 (nothing is sent: 0 and negative
 * values name process groups), CDT_ENOTFOUND when no such process exists,
 * CDT_EPERM when it may not be signalled. The only place in codictate that calls
 * kill(2) on a PID from a variable (scripts/lint.sh checks it). */
int cdt_proc_signal(pid_t pid, int sig);

#ifdef __cplusplus
}
#endif
#endif
