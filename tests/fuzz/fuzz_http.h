/* The client side of the HTTP fuzz targets (fuzz_sidecar_http.c, fuzz_app.c): they
 * talk to a server of the same process over loopback, from libFuzzer's thread.
 *
 * That thread also takes libFuzzer's timer signal (SIGALRM every -timeout/2 + 1
 * seconds), so every blocking call here goes on after EINTR. Before it did (commit
 * 0ea22a2), a poll() interrupted while waiting for the answer was reported as "no
 * end of answer within 20 s" within milliseconds: the "hang" the long runs found 4
 * times in ~64,000 inputs (README, Reliability), the harness's, not the server's.
 * CODICTATE_FUZZ_SIGNAL_MS=N (the ctest run sets 1) sends this thread a signal
 * every N ms besides, so that a call that does not go on fails within a few inputs
 * rather than once in tens of thousands. */
#ifndef CODICTATE_FUZZ_HTTP_H
#define CODICTATE_FUZZ_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_ANSWER_MS 20000 /* longest wait for the next byte of an answer, ms */

static void fuzz_on_tick(int sig)
{
    (void)sig;
}

/* Arms CODICTATE_FUZZ_SIGNAL_MS's signal for the calling thread (no SA_RESTART:
 * its blocking calls see EINTR). Call once, from libFuzzer's thread. */
static void fuzz_signal_storm(void)
{
    const char *env = getenv("CODICTATE_FUZZ_SIGNAL_MS");
    long ms = env ? strtol(env, NULL, 10) : 0;
    struct sigaction sa;
    struct sigevent ev;
    struct itimerspec its;
    timer_t t;

    if (ms <= 0)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fuzz_on_tick;
    sigemptyset(&sa.sa_mask);
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGRTMIN + 3;
    ev._sigev_un._tid = gettid(); /* this thread only: the server's are left alone */
    its.it_value.tv_sec = its.it_interval.tv_sec = ms / 1000;
    its.it_value.tv_nsec = its.it_interval.tv_nsec = (ms % 1000) * 1000000L;
    if (sigaction(SIGRTMIN + 3, &sa, NULL) != 0 || timer_create(CLOCK_MONOTONIC, &ev, &t) != 0 ||
        timer_settime(t, 0, &its, NULL) != 0) {
        perror("fuzz: CODICTATE_FUZZ_SIGNAL_MS");
        abort();
    }
}

/* A TCP connection to 127.0.0.1:port; aborts when there is none. */
static int fuzz_connect(const char *who, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        abort();
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        /* Interrupted: the connect goes on in the background; wait for its end. */
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = errno, n = -1;
        socklen_t len = sizeof(err);

        while (err == EINTR && (n = poll(&pfd, 1, 5000)) < 0 && errno == EINTR)
            ;
        if (err != EINTR || n != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
            err != 0) {
            fprintf(stderr, "%s: connect: %s\n", who, strerror(err));
            abort();
        }
    }
    return fd;
}

static void fuzz_send_all(int fd, const void *data, size_t n)
{
    const char *p = data;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server closed early: fine, read what it said */
        p += w;
        n -= (size_t)w;
    }
}

/* Reads up to cap bytes: > 0 bytes read, 0 at the end of the answer (the server
 * closed, or reset), or aborts when nothing came for FUZZ_ANSWER_MS. */
static ssize_t fuzz_recv(const char *who, int fd, char *buf, size_t cap)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        struct timespec t0, t;
        ssize_t r;
        int n, left = FUZZ_ANSWER_MS;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        while ((n = poll(&pfd, 1, left)) < 0 && errno == EINTR) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            left = FUZZ_ANSWER_MS -
                   (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
            if (left < 0)
                left = 0;
        }
        if (n == 0) {
            fprintf(stderr, "%s: no end of answer within %d s\n", who, FUZZ_ANSWER_MS / 1000);
            abort();
        }
        if (n < 0) {
            fprintf(stderr, "%s: poll: %s\n", who, strerror(errno));
            abort();
        }
        r = recv(fd, buf, cap, 0);
        if (r < 0 && errno == EINTR)
            continue;
        return r > 0 ? r : 0;
    }
}

#endif
