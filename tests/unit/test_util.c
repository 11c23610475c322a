/* util.c: the base layer's helpers. */
#include "../test.h"
#include "codictate/err.h"
#include "codictate/util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

/* 0 and negative PIDs name process groups: refused, and nothing is sent (this
 * process would otherwise receive SIGUSR1 through its group). */
TEST(proc_signal_refuses_group_pids)
{
    struct sigaction sa = {0};

    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    got_usr1 = 0;
    CHECK_INT(cdt_proc_signal(0, SIGUSR1), CDT_EINVAL);
    CHECK_INT(cdt_proc_signal(-1, SIGUSR1), CDT_EINVAL);
    CHECK_INT(cdt_proc_signal(-(pid_t)getpgrp(), SIGUSR1), CDT_EINVAL);
    CHECK_INT(got_usr1, 0);
    CHECK_INT(cdt_proc_signal(getpid(), SIGUSR1), 0);
    CHECK_INT(got_usr1, 1);
}

TEST(proc_signal_child_and_gone)
{
    int st;
    pid_t child = fork();

    REQUIRE(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    CHECK_INT(cdt_proc_signal(child, 0), 0);
    CHECK_INT(cdt_proc_signal(child, SIGKILL), 0);
    CHECK(waitpid(child, &st, 0) == child);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK_INT(cdt_proc_signal(child, 0), CDT_ENOTFOUND); /* reaped: gone */
}

int main(void)
{
    RUN(proc_signal_refuses_group_pids);
    RUN(proc_signal_child_and_gone);
    return TEST_END();
}
