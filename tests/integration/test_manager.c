/* The sidecar manager with the real `codictate sidecar` and the tiny model: lazy
 * spawn, load once under concurrency, retry after "No model loaded", idle unload
 * (timeout and immediately), restart after a crash, clear errors, SIGTERM on exit,
 * orphan cleanup from the PID file, the sidecar outliving the thread that spawned
 * it and dying with the process that did. */
#include "../test.h"
#include "codictate/client.h"
#include "codictate/manager.h"
#include "codictate/util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *exe, *model;
static char state_dir[] = "/tmp/cdt-mgr-XXXXXX";

static atomic_int n_started, n_exited, n_loading, n_loaded, n_failed, n_unloaded;
static char last_unload_why[64];

static void on_event(const struct cdt_manager_event *ev, void *ud)
{
    (void)ud;
    switch (ev->type) {
    case CDT_MGR_SIDECAR_STARTED:
        atomic_fetch_add(&n_started, 1);
        break;
    case CDT_MGR_SIDECAR_EXITED:
        atomic_fetch_add(&n_exited, 1);
        break;
    case CDT_MGR_LOADING:
        atomic_fetch_add(&n_loading, 1);
        break;
    case CDT_MGR_LOADED:
        atomic_fetch_add(&n_loaded, 1);
        break;
    case CDT_MGR_LOAD_FAILED:
        atomic_fetch_add(&n_failed, 1);
        break;
    case CDT_MGR_UNLOADED:
        /* The reason first: the count (an atomic) publishes it to the test's thread. */
        snprintf(last_unload_why, sizeof(last_unload_why), "%s", ev->detail ? ev->detail : "");
        atomic_fetch_add(&n_unloaded, 1);
        break;
    }
}

static struct cdt_manager *make(int idle_s)
{
    struct cdt_manager_params p = cdt_manager_default_params();
    struct cdt_manager *m = NULL;

    p.sidecar_exe = exe;
    p.state_dir = state_dir;
    p.idle_timeout_s = idle_s;
    p.n_threads = 1;
    p.on_event = on_event;
    if (cdt_manager_new(&p, &m) != 0)
        return NULL;
    return m;
}

static int gen(struct cdt_manager *m, long *status)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply reply;
    char err[256];
    int rc;

    req.prompt = "hello";
    req.max_tokens = 4;
    req.temperature = 0;
    rc = cdt_manager_generate(m, model, &req, &reply, err, sizeof(err));
    *status = reply.status;
    if (rc != 0)
        fprintf(stderr, "  generate: %s\n", err);
    else if (reply.status != 200)
        fprintf(stderr, "  generate: HTTP %ld: %s\n", reply.status, reply.detail);
    else if (!reply.response)
        fprintf(stderr, "  generate: no response\n");
    cdt_sidecar_gen_reply_cleanup(&reply);
    return rc;
}

/* /proc/PID/<what> (NUL-separated strings) into buf[cap], NUL-terminated; its length
 * (0 when it cannot be read). */
static size_t proc_strings(int pid, const char *what, char *buf, size_t cap)
{
    char path[64];
    FILE *f;
    size_t n;

    buf[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
    if (!(f = fopen(path, "r")))
        return 0;
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

/* The sidecar's token, read from its environment (tests run as the same user). */
static void token_of(int pid, char *buf, size_t cap)
{
    char env[8192];
    size_t n = proc_strings(pid, "environ", env, sizeof(env));

    buf[0] = '\0';
    for (char *p = env; p < env + n; p += strlen(p) + 1)
        if (strncmp(p, "CODICTATE_SIDECAR_TOKEN=", 24) == 0)
            snprintf(buf, cap, "%s", p + 24);
}

TEST(lazy_spawn_and_generate)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    long status = 0;
    char path[4096];

    REQUIRE(m);
    atomic_store(&n_started, 0);
    CHECK_INT(cdt_manager_sidecar_pid(m), 0); /* nothing until first use */
    CHECK_INT(gen(m, &status), 0);
    CHECK_INT(status, 200);
    CHECK(cdt_manager_sidecar_pid(m) > 0);
    CHECK_INT(atomic_load(&n_started), 1);
    CHECK(cdt_manager_loaded(m, path, sizeof(path)));
    CHECK_STR(path, model);
    {
        char pidfile[512];
        struct stat st;
        snprintf(pidfile, sizeof(pidfile), "%s/sidecar-%d.pid", state_dir, (int)getpid());
        CHECK(stat(pidfile, &st) == 0);
        cdt_manager_free(m);
        CHECK(stat(pidfile, &st) != 0); /* removed on exit */
    }
}

struct loader {
    pthread_t t;
    struct cdt_manager *m;
    int rc;
};

static void *load_main(void *arg)
{
    struct loader *l = arg;
    char err[256];

    l->rc = cdt_manager_load(l->m, model, err, sizeof(err));
    return NULL;
}

/* The value of the sidecar process's "--threads" argument into buf ("" without one). */
static void threads_arg(int pid, char *buf, size_t cap)
{
    char cmd[4096];
    size_t len = proc_strings(pid, "cmdline", cmd, sizeof(cmd));

    buf[0] = '\0';
    for (char *a = cmd; a < cmd + len; a += strlen(a) + 1)
        if (strcmp(a, "--threads") == 0 && a + strlen(a) + 1 < cmd + len)
            snprintf(buf, cap, "%s", a + strlen(a) + 1);
}

/* With no thread count in the params, CODICTATE_LLM_THREADS gives the sidecar's;
 * a value that is not a count is ignored (no --threads: the sidecar's default). */
TEST(llm_threads_from_the_environment)
{
    static const char *const cases[][2] = {{"1", "1"}, {"3", "3"}, {"auto", "auto"},
                                           {"0", ""},  {"x", ""},  {"2x", ""}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cdt_manager_params p = cdt_manager_default_params();
        struct cdt_manager *m = NULL;
        long status = 0;
        char got[32];

        p.sidecar_exe = exe;
        p.state_dir = state_dir;
        p.idle_timeout_s = CDT_IDLE_NEVER;
        setenv("CODICTATE_LLM_THREADS", cases[i][0], 1);
        REQUIRE(cdt_manager_new(&p, &m) == 0);
        unsetenv("CODICTATE_LLM_THREADS");
        CHECK_INT(gen(m, &status), 0);
        CHECK_INT(status, 200);
        threads_arg(cdt_manager_sidecar_pid(m), got, sizeof(got));
        CHECK_STR(got, cases[i][1]);
        cdt_manager_free(m);
    }
}

TEST(concurrent_loads_load_once)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    struct loader l[4];

    REQUIRE(m);
    atomic_store(&n_loading, 0);
    atomic_store(&n_started, 0);
    for (int i = 0; i < 4; i++) {
        l[i].m = m;
        pthread_create(&l[i].t, NULL, load_main, &l[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(l[i].t, NULL);
        CHECK_INT(l[i].rc, 0);
    }
    CHECK_INT(atomic_load(&n_started), 1);
    CHECK_INT(atomic_load(&n_loading), 1);
    cdt_manager_free(m);
}

TEST(retries_after_no_model_loaded)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    struct cdt_sidecar_unload_reply u;
    struct cdt_client_response r;
    char token[64], err[128];
    long status = 0;

    REQUIRE(m);
    REQUIRE(gen(m, &status) == 0);
    /* Someone else unloads the model behind the manager's back. */
    token_of(cdt_manager_sidecar_pid(m), token, sizeof(token));
    CHECK(token[0] != '\0');
    REQUIRE(cdt_sidecar_unload(cdt_manager_sidecar_port(m), token, 5000, &u, err, sizeof(err)) ==
            0);
    CHECK_INT(u.status, 200);
    CHECK(u.was_loaded);
    atomic_store(&n_loading, 0);
    CHECK_INT(gen(m, &status), 0);
    CHECK_INT(status, 200);
    CHECK_INT(atomic_load(&n_loading), 1); /* reloaded once */
    /* And without the token the sidecar refuses. */
    REQUIRE(cdt_client_request(cdt_manager_sidecar_port(m), NULL, "GET", "/status", NULL, 5000, &r,
                               err, sizeof(err)) == 0);
    CHECK_INT(r.status, 401);
    free(r.body);
    cdt_manager_free(m);
}

TEST(idle_unload_after_timeout)
{
    struct cdt_manager *m = make(1);
    long status = 0;
    char path[4096];

    REQUIRE(m);
    atomic_store(&n_unloaded, 0);
    REQUIRE(gen(m, &status) == 0);
    CHECK(cdt_manager_loaded(m, path, sizeof(path)));
    usleep(400 * 1000);
    REQUIRE(gen(m, &status) == 0); /* a use resets the timer */
    usleep(700 * 1000);
    CHECK(cdt_manager_loaded(m, path, sizeof(path))); /* 0.7 s since the last use */
    for (int i = 0; i < 30 && atomic_load(&n_unloaded) == 0; i++)
        usleep(100 * 1000);
    CHECK_INT(atomic_load(&n_unloaded), 1);
    CHECK_STR(last_unload_why, "idle");
    CHECK(!cdt_manager_loaded(m, path, sizeof(path)));
    CHECK(cdt_manager_sidecar_pid(m) > 0); /* the process stays; memory went back */
    /* The next use loads again. */
    CHECK_INT(gen(m, &status), 0);
    cdt_manager_free(m);
}

TEST(idle_immediately_unloads_after_each_use)
{
    struct cdt_manager *m = make(CDT_IDLE_IMMEDIATELY);
    long status = 0;
    char path[4096];

    REQUIRE(m);
    atomic_store(&n_unloaded, 0);
    CHECK_INT(gen(m, &status), 0);
    CHECK_INT(status, 200);
    CHECK(!cdt_manager_loaded(m, path, sizeof(path)));
    CHECK_INT(atomic_load(&n_unloaded), 1);
    CHECK_STR(last_unload_why, "immediately");
    CHECK_INT(gen(m, &status), 0);
    CHECK_INT(atomic_load(&n_unloaded), 2);
    cdt_manager_free(m);
}

TEST(killed_sidecar_is_restarted)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    long status = 0;
    int pid1, pid2;

    REQUIRE(m);
    REQUIRE(gen(m, &status) == 0);
    pid1 = cdt_manager_sidecar_pid(m);
    atomic_store(&n_exited, 0);
    CHECK_INT(cdt_proc_signal(pid1, SIGKILL), 0);
    usleep(100 * 1000);
    CHECK_INT(gen(m, &status), 0);
    CHECK_INT(status, 200);
    pid2 = cdt_manager_sidecar_pid(m);
    CHECK(pid2 > 0 && pid2 != pid1);
    CHECK_INT(atomic_load(&n_exited), 1);
    cdt_manager_free(m);
}

struct killer {
    pthread_t t;
    struct cdt_manager *m;
};

static void *kill_soon(void *arg)
{
    struct killer *k = arg;

    usleep(300 * 1000);
    /* The sidecar may be gone already: its PID is then 0, which kill(2) would take
     * for this process group (ctest and make included). */
    (void)cdt_proc_signal(cdt_manager_sidecar_pid(k->m), SIGKILL);
    return NULL;
}

TEST(killed_mid_request_gives_an_error_not_a_hang)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply reply;
    struct killer k;
    char err[256];
    struct timespec t0, t1;
    int rc;

    REQUIRE(m);
    REQUIRE(cdt_manager_load(m, model, err, sizeof(err)) == 0);
    k.m = m;
    pthread_create(&k.t, NULL, kill_soon, &k);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    req.prompt = "go";
    req.max_tokens = 100000;
    req.ignore_eos = true;
    rc = cdt_manager_generate(m, model, &req, &reply, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(k.t, NULL);
    CHECK_INT(rc, CDT_ENET);
    CHECK(strstr(err, "sidecar") != NULL);
    CHECK(t1.tv_sec - t0.tv_sec < 10);
    CHECK(reply.response == NULL); /* nothing to free after an error */
    cdt_sidecar_gen_reply_cleanup(&reply);
    CHECK_INT(cdt_manager_sidecar_pid(m), 0);
    cdt_manager_free(m);
}

TEST(load_errors_are_clear)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    struct cdt_manager_params p = cdt_manager_default_params();
    char err[512];

    REQUIRE(m);
    atomic_store(&n_failed, 0);
    CHECK_INT(cdt_manager_load(m, "/no/such/model.gguf", err, sizeof(err)), CDT_EENGINE);
    CHECK(strstr(err, "Failed to load model") != NULL);
    CHECK_INT(atomic_load(&n_failed), 1);
    cdt_manager_free(m);

    p.sidecar_exe = "/no/such/codictate";
    p.state_dir = state_dir;
    p.start_timeout_ms = 2000;
    REQUIRE(cdt_manager_new(&p, &m) == 0);
    CHECK_INT(cdt_manager_load(m, model, err, sizeof(err)), CDT_EENGINE);
    CHECK(strstr(err, "exited at start") != NULL);
    cdt_manager_free(m);
}

TEST(orphan_from_crashed_manager_is_stopped)
{
    char pidfile[512];
    pid_t dead, orphan;
    FILE *f;
    struct cdt_manager *m;
    int st;

    /* A pid that is surely dead: a child that already exited. */
    dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, &st, 0);
    orphan = fork();
    if (orphan == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        execl(exe, exe, "sidecar", "--port-range", "11400-11500", (char *)NULL);
        _exit(127);
    }
    usleep(300 * 1000);
    snprintf(pidfile, sizeof(pidfile), "%s/sidecar-%d.pid", state_dir, (int)dead);
    f = fopen(pidfile, "w");
    REQUIRE(f);
    fprintf(f, "%d\n", (int)orphan);
    fclose(f);
    m = make(CDT_IDLE_NEVER);
    REQUIRE(m);
    /* The new manager stopped it and removed the stale PID file. */
    CHECK(waitpid(orphan, &st, WNOHANG) == orphan || waitpid(orphan, &st, 0) == orphan);
    CHECK(access(pidfile, F_OK) != 0);
    cdt_manager_free(m);
}

static void *spawn_in_thread(void *arg)
{
    struct cdt_manager *m = arg;
    char err[256];

    return (void *)(intptr_t)cdt_manager_load(m, model, err, sizeof(err));
}

static bool alive(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return access(path, F_OK) == 0 && cdt_proc_signal(pid, 0) == 0;
}

/* A preload thread spawns the sidecar and ends: the sidecar must live on (it is
 * the process's, not the thread's), and serve the next request. */
TEST(sidecar_outlives_the_spawning_thread)
{
    struct cdt_manager *m = make(CDT_IDLE_NEVER);
    pthread_t t;
    void *ret = NULL;
    long status = 0;
    int pid;

    REQUIRE(m);
    atomic_store(&n_started, 0);
    REQUIRE(pthread_create(&t, NULL, spawn_in_thread, m) == 0);
    pthread_join(t, &ret);
    CHECK_INT((int)(intptr_t)ret, 0);
    pid = cdt_manager_sidecar_pid(m);
    CHECK(pid > 0);
    usleep(300 * 1000);
    CHECK(alive(pid));
    CHECK_INT(gen(m, &status), 0);
    CHECK_INT(status, 200);
    CHECK_INT(cdt_manager_sidecar_pid(m), pid); /* the same sidecar, no restart */
    CHECK_INT(atomic_load(&n_started), 1);
    cdt_manager_free(m);
}

/* The process that owns the manager is SIGKILLed (no cleanup runs): the sidecar
 * notices and shuts down by itself within a second or two. */
TEST(sidecar_exits_when_its_parent_is_killed)
{
    int pfd[2], st, sidecar = 0;
    pid_t child;

    REQUIRE(pipe(pfd) == 0);
    child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        struct cdt_manager *m = make(CDT_IDLE_NEVER);
        char err[256];
        int pid = 0;

        close(pfd[0]);
        if (m && cdt_manager_load(m, model, err, sizeof(err)) == 0)
            pid = cdt_manager_sidecar_pid(m);
        if (write(pfd[1], &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
            _exit(1);
        pause(); /* killed here */
        _exit(0);
    }
    close(pfd[1]);
    CHECK(read(pfd[0], &sidecar, sizeof(sidecar)) == (ssize_t)sizeof(sidecar));
    close(pfd[0]);
    REQUIRE(sidecar > 0);
    CHECK(alive(sidecar));
    (void)cdt_proc_signal(child, SIGKILL);
    waitpid(child, &st, 0);
    /* The sidecar is now init's (or a subreaper's) child: poll /proc until it is
     * gone or a zombie nobody reaps here. */
    for (int i = 0; i < 100; i++) {
        char path[64], buf[256] = "";
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", sidecar);
        f = fopen(path, "r");
        if (!f)
            break;
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = '\0';
        fclose(f);
        if (strstr(buf, ") Z "))
            break;
        usleep(50 * 1000);
    }
    {
        char path[64], buf[256] = "";
        FILE *f;
        bool gone;

        snprintf(path, sizeof(path), "/proc/%d/stat", sidecar);
        f = fopen(path, "r");
        gone = !f || !fgets(buf, sizeof(buf), f) || strstr(buf, ") Z ");
        if (f)
            fclose(f);
        CHECK(gone);
        if (!gone)
            (void)cdt_proc_signal(sidecar, SIGKILL);
    }
}

int main(int argc, char **argv)
{
    int rc;
    char cmd[128];

    if (argc != 3) {
        fprintf(stderr, "usage: %s CODICTATE MODEL.gguf\n", argv[0]);
        return 2;
    }
    exe = argv[1];
    model = argv[2];
    if (!mkdtemp(state_dir))
        return 1;
    RUN(lazy_spawn_and_generate);
    RUN(llm_threads_from_the_environment);
    RUN(concurrent_loads_load_once);
    RUN(retries_after_no_model_loaded);
    RUN(idle_unload_after_timeout);
    RUN(idle_immediately_unloads_after_each_use);
    RUN(killed_sidecar_is_restarted);
    RUN(killed_mid_request_gives_an_error_not_a_hang);
    RUN(load_errors_are_clear);
    RUN(orphan_from_crashed_manager_is_stopped);
    RUN(sidecar_outlives_the_spawning_thread);
    RUN(sidecar_exits_when_its_parent_is_killed);
    rc = TEST_END();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", state_dir);
    return rc;
}
