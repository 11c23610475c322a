/* Microphone capture against a real sound server: a private PulseAudio daemon in a
 * temp dir whose default source is a pipe (module-pipe-source), fed a known signal
 * by a writer thread the way a microphone would deliver it, in real time.
 *
 * Covers: the signal arrives (level, RMS, frequency), an explicit device, an
 * unknown device, no server at all, max_seconds, a stalled source (stop still
 * returns promptly), free while running, and the server killed mid-capture
 * (status error, the samples so far handed over).
 *
 * Exit 77 (skipped) when the machine cannot run the daemon: no `pulseaudio`
 * binary, or it will not start here. */
#include "../test.h"
#include "codictate/audio.h"
#include "codictate/capture.h"
#include "codictate/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP            77
#define SINE_HZ         440.0
#define SINE_AMP        0.5
#define WRITE_CHUNK_MS  20
#define STOP_LIMIT_S    0.25 /* stop must return within this (generous under ASan) */
#define STALL_LIMIT_S   (CDT_CAPTURE_STOP_WAIT_MS / 1000.0 + 0.25)
#define START_TIMEOUT_S 10.0

static char dir[] = "/tmp/cdt-capture-XXXXXX";
static char sock[300], fifo[300], server[310];
static pid_t daemon_pid = -1;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the virtual microphone ---- */

struct writer {
    pthread_t thread;
    double seconds; /* how much signal to write, in real time */
    double amp;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int16_t buf[16000 * WRITE_CHUNK_MS / 1000];
    size_t per = sizeof(buf) / sizeof(buf[0]);
    size_t total = (size_t)(w->seconds * 16000);
    double t0 = now_s();
    int fd = open(fifo, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    for (size_t off = 0; off < total; off += per) {
        for (size_t i = 0; i < per; i++)
            buf[i] = (int16_t)lrint(32767.0 * w->amp *
                                    sin(2 * M_PI * SINE_HZ * (double)(off + i) / 16000.0));
        if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            break; /* the daemon is gone */
        /* Pace like a microphone: chunk k is due at k * WRITE_CHUNK_MS. */
        double due = t0 + (double)(off + per) / 16000.0, left = due - now_s();
        if (left > 0)
            sleep_s(left);
    }
    close(fd);
    return NULL;
}

static int writer_start(struct writer *w, double seconds, double amp)
{
    w->seconds = seconds;
    w->amp = amp;
    return pthread_create(&w->thread, NULL, writer_main, w);
}

static void writer_join(struct writer *w)
{
    pthread_join(w->thread, NULL);
}

/* ---- the private daemon ---- */

static bool find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");

        snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, name);
        if (access(buf, X_OK) == 0)
            return true;
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

static void print_daemon_log(void)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "tail -n 20 '%s/pulse.log' >&2", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no daemon log)\n");
}

/* Starts the daemon; 0 when it serves the socket, else SKIP with the reason printed. */
static int daemon_start(void)
{
    char script[300], logpath[300], cfg[300], arg_script[320];
    FILE *f;
    double t0;

    snprintf(sock, sizeof(sock), "%s/pulse.sock", dir);
    snprintf(fifo, sizeof(fifo), "%s/mic.fifo", dir);
    snprintf(server, sizeof(server), "unix:%s", sock);
    snprintf(script, sizeof(script), "%s/default.pa", dir);
    snprintf(logpath, sizeof(logpath), "%s/pulse.log", dir);
    snprintf(cfg, sizeof(cfg), "%s/config", dir);
    f = fopen(script, "w");
    if (!f)
        return SKIP;
    /* The pipe source creates the fifo itself and is the only source, so the default. */
    fprintf(f,
            "load-module module-native-protocol-unix auth-anonymous=1 socket=%s\n"
            "load-module module-pipe-source source_name=virtmic file=%s format=s16le rate=16000 "
            "channels=1\n"
            "set-default-source virtmic\n",
            sock, fifo);
    fclose(f);
    snprintf(arg_script, sizeof(arg_script), "--file=%s", script);

    daemon_pid = fork();
    if (daemon_pid < 0)
        return SKIP;
    if (daemon_pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* Everything the daemon keeps goes into the temp dir, nothing into the user's
         * session (runtime dir, config, cookie, D-Bus). */
        setenv("HOME", dir, 1);
        setenv("XDG_RUNTIME_DIR", dir, 1);
        setenv("XDG_CONFIG_HOME", cfg, 1);
        unsetenv("DBUS_SESSION_BUS_ADDRESS");
        unsetenv("PULSE_SERVER");
        execlp("pulseaudio", "pulseaudio", "--daemonize=no", "-n", arg_script,
               "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no", "--disable-shm=yes",
               "--realtime=no", "--high-priority=no", "--log-target=stderr", "--log-level=notice",
               (char *)NULL);
        _exit(127);
    }

    t0 = now_s();
    while (now_s() - t0 < START_TIMEOUT_S) {
        struct stat st;
        int status;

        if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
            daemon_pid = -1;
            printf("SKIP: the pulseaudio daemon exited at start (status %d); its log:\n", status);
            fflush(stdout);
            print_daemon_log();
            return SKIP;
        }
        if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && stat(fifo, &st) == 0)
            return 0;
        sleep_s(0.05);
    }
    printf("SKIP: the pulseaudio daemon did not open %s within %.0f s; its log:\n", sock,
           START_TIMEOUT_S);
    fflush(stdout);
    print_daemon_log();
    return SKIP;
}

static void daemon_kill(void)
{
    if (daemon_pid > 0) {
        (void)cdt_proc_signal(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = -1;
    }
}

/* ---- signal checks ---- */

/* Power at hz relative to the signal's energy (Goertzel), ~0.5 for a pure tone at hz. */
static double tone_share(const float *x, size_t n, double hz)
{
    double w = 2 * M_PI * hz / 16000.0, c = 2 * cos(w), s1 = 0, s2 = 0, energy = 0;

    for (size_t i = 0; i < n; i++) {
        double s0 = x[i] + c * s1 - s2;

        s2 = s1;
        s1 = s0;
        energy += (double)x[i] * x[i];
    }
    if (energy <= 0)
        return 0;
    return (s1 * s1 + s2 * s2 - c * s1 * s2) / (energy * (double)n / 2);
}

static double rms(const float *x, size_t n)
{
    double sum = 0;

    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return n ? sqrt(sum / (double)n) : 0;
}

/* The part of the capture after the first sample of signal (the stream may open on
 * silence before the writer's first chunk lands). */
static const float *signal_start(const float *x, size_t n, size_t *left)
{
    size_t i = 0;

    while (i < n && fabsf(x[i]) < 0.01f)
        i++;
    *left = n - i;
    return x + i;
}

/* ---- tests ---- */

TEST(captures_sine_from_default_source)
{
    struct cdt_capture_params p = cdt_capture_default_params();
    struct cdt_capture *c = NULL;
    struct writer w;
    char err[512];
    float *x = NULL, peak = 0;
    size_t n = 0, m;
    const float *sig;
    double t0, stop_s;

    CHECK_INT(cdt_capture_status(NULL, err, sizeof(err)), CDT_EINVAL);
    p.app_name = "codictate-test";
    CHECK_INT(cdt_capture_start(&p, &c, err, sizeof(err)), 0);
    REQUIRE(c);
    CHECK_INT(cdt_capture_status(c, err, sizeof(err)), 0);
    REQUIRE(writer_start(&w, 1.5, SINE_AMP) == 0);
    t0 = now_s();
    while (now_s() - t0 < 1.0) {
        float l = cdt_capture_level(c);

        if (l > peak)
            peak = l;
        sleep_s(0.02);
    }
    CHECK(cdt_capture_seconds(c) > 0.7);
    t0 = now_s();
    CHECK_INT(cdt_capture_stop(c, &x, &n), 0);
    stop_s = now_s() - t0;
    fprintf(stderr, "  captured %.3f s, stop took %.1f ms, peak level %.3f\n", (double)n / 16000,
            stop_s * 1e3, peak);
    CHECK(stop_s < STOP_LIMIT_S);
    CHECK(peak > 0.45f && peak < 0.55f);
    CHECK(n > 16000 * 7 / 10 && n < 16000 * 3 / 2);
    REQUIRE(x);
    sig = signal_start(x, n, &m);
    REQUIRE(m > 8000);
    fprintf(stderr, "  rms %.3f, 440 Hz share %.2f, 1000 Hz share %.3f\n", rms(sig, m),
            tone_share(sig, m, SINE_HZ), tone_share(sig, m, 1000.0));
    CHECK(fabs(rms(sig, m) - SINE_AMP / sqrt(2)) < 0.03);
    CHECK(tone_share(sig, m, SINE_HZ) > 0.9);
    CHECK(tone_share(sig, m, 1000.0) < 0.01);
    /* A second stop hands over nothing. */
    {
        float *y = (float *)1;
        size_t k = 99;

        CHECK_INT(cdt_capture_stop(c, &y, &k), CDT_ESTATE);
        CHECK(y == NULL && k == 0);
    }
    CHECK(cdt_capture_level(c) == 0.0f);
    cdt_capture_free(c);
    free(x);
    writer_join(&w);
}

TEST(named_device_and_max_seconds)
{
    struct cdt_capture_params p = cdt_capture_default_params();
    struct cdt_capture *c = NULL;
    struct writer w;
    char err[512];
    float *x = NULL;
    size_t n = 0;

    p.device = "virtmic";
    p.max_seconds = 1;
    CHECK_INT(cdt_capture_start(&p, &c, err, sizeof(err)), 0);
    REQUIRE(c);
    REQUIRE(writer_start(&w, 1.6, SINE_AMP) == 0);
    writer_join(&w);
    sleep_s(0.2);
    /* Over the cap: nothing more is stored, the stream is still fine. */
    CHECK(cdt_capture_seconds(c) == 1.0);
    CHECK_INT(cdt_capture_status(c, err, sizeof(err)), 0);
    CHECK_INT(cdt_capture_stop(c, &x, &n), 0);
    CHECK_INT(n, 16000);
    CHECK(x && rms(x + 8000, 8000) > 0.3);
    cdt_capture_free(c);
    free(x);
}

TEST(bad_params_and_unknown_device)
{
    struct cdt_capture_params p = cdt_capture_default_params();
    struct cdt_capture *c = (struct cdt_capture *)1;
    char err[512], longname[CDT_CAPTURE_MAX_NAME + 2];

    p.device = "no-such-mic";
    CHECK_INT(cdt_capture_start(&p, &c, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(c == NULL);
    CHECK(strstr(err, "no-such-mic") != NULL);
    fprintf(stderr, "  %s\n", err);
    p.device = NULL;
    p.max_seconds = CDT_AUDIO_MAX_SECONDS + 1;
    CHECK_INT(cdt_capture_start(&p, &c, err, sizeof(err)), CDT_EINVAL);
    CHECK(strstr(err, "CDT_AUDIO_MAX_SECONDS") != NULL);
    p.max_seconds = -1;
    CHECK_INT(cdt_capture_start(&p, &c, NULL, 0), CDT_EINVAL);
    p.max_seconds = 0;
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    p.device = longname;
    CHECK_INT(cdt_capture_start(&p, &c, err, sizeof(err)), CDT_EINVAL);
    CHECK_INT(cdt_capture_start(&p, NULL, err, sizeof(err)), CDT_EINVAL);
    cdt_capture_free(NULL);
}

TEST(no_sound_server)
{
    char none[320], err[512],
        *saved = getenv("PULSE_SERVER") ? strdup(getenv("PULSE_SERVER")) : NULL;
    struct cdt_capture *c = (struct cdt_capture *)1;
    double t0 = now_s();

    snprintf(none, sizeof(none), "unix:%s/nobody-here.sock", dir);
    setenv("PULSE_SERVER", none, 1);
    /* NULL params: all defaults. */
    CHECK_INT(cdt_capture_start(NULL, &c, err, sizeof(err)), CDT_EUNSUPPORTED);
    fprintf(stderr, "  %s (%.0f ms)\n", err, (now_s() - t0) * 1e3);
    CHECK(c == NULL);
    CHECK(strstr(err, "cannot connect to the sound server") != NULL);
    CHECK(strstr(err, none) != NULL);
    if (saved) {
        setenv("PULSE_SERVER", saved, 1);
        free(saved);
    }
}

/* No writer: the pipe source delivers nothing and the capture thread's read blocks.
 * Stop must still return, with nothing, and free must not wait either. */
TEST(stalled_source_stops_promptly)
{
    struct cdt_capture *c = NULL, *c2 = NULL;
    char err[512];
    float *x = (float *)1;
    size_t n = 99;
    double t0;

    CHECK_INT(cdt_capture_start(NULL, &c, err, sizeof(err)), 0);
    REQUIRE(c);
    sleep_s(0.2);
    t0 = now_s();
    CHECK_INT(cdt_capture_stop(c, &x, &n), 0);
    fprintf(stderr, "  stop on a stalled stream took %.0f ms\n", (now_s() - t0) * 1e3);
    CHECK(now_s() - t0 < STALL_LIMIT_S);
    CHECK(x == NULL && n == 0);
    cdt_capture_free(c);

    /* Free while running, without stop. */
    CHECK_INT(cdt_capture_start(NULL, &c2, err, sizeof(err)), 0);
    REQUIRE(c2);
    t0 = now_s();
    cdt_capture_free(c2);
    CHECK(now_s() - t0 < STALL_LIMIT_S);
}

/* Runs last: kills the daemon. */
TEST(server_killed_mid_capture)
{
    struct cdt_capture *c = NULL;
    struct writer w;
    char err[512] = "";
    float *x = NULL;
    size_t n = 0;
    double t0, before;
    int st = 0;

    CHECK_INT(cdt_capture_start(NULL, &c, err, sizeof(err)), 0);
    REQUIRE(c);
    REQUIRE(writer_start(&w, 3.0, SINE_AMP) == 0);
    sleep_s(0.6);
    before = cdt_capture_seconds(c);
    CHECK(before > 0.3);
    daemon_kill();
    t0 = now_s();
    while (now_s() - t0 < 3.0 && (st = cdt_capture_status(c, err, sizeof(err))) == 0)
        sleep_s(0.01);
    fprintf(stderr, "  status %s after %.0f ms: %s\n", cdt_errname(st), (now_s() - t0) * 1e3, err);
    CHECK_INT(st, CDT_EIO);
    CHECK(strstr(err, "kept") != NULL);
    CHECK_INT(cdt_capture_stop(c, &x, &n), CDT_EIO);
    CHECK(n >= (size_t)(before * 16000));
    CHECK(x && rms(x + n / 2, n / 2) > 0.3);
    cdt_capture_free(c);
    free(x);
    writer_join(&w);
}

int main(void)
{
    int rc;

    /* The writer thread writes into the fifo after the daemon is killed. */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!find_in_path("pulseaudio")) {
        printf("SKIP: no `pulseaudio` binary (scripts/deps.sh installs it) to run a virtual "
               "microphone\n0 passed, 0 failed\n");
        return SKIP;
    }
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (daemon_start() != 0) {
        daemon_kill();
        printf("0 passed, 0 failed\n");
        return SKIP;
    }
    setenv("PULSE_SERVER", server, 1);

    RUN(captures_sine_from_default_source);
    RUN(named_device_and_max_seconds);
    RUN(bad_params_and_unknown_device);
    RUN(no_sound_server);
    RUN(stalled_source_stops_promptly);
    RUN(server_killed_mid_capture);
    daemon_kill();
    rc = TEST_END();
    {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc;
}
