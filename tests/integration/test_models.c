/* The model lifecycle module end to end: the fake hub, the HF cache and the real
 * sidecar. States and events: not_downloaded → downloading → downloaded →
 * loading → ready → unloaded (idle), download_failed, damaged (a downloaded file
 * cut short or changed: refused to load, repaired by a pull), and delete refused
 * while downloading or loaded.
 *   test_models FAKEHUB CODICTATE MODEL.gguf */
#include "../test.h"
#include "codictate/models.h"
#include "codictate/util.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *fakehub, *exe, *model;
static char tmp[] = "/tmp/cdt-models-XXXXXX";
static char endpoint[128];
static pid_t hub;
static struct cdt_catalog *cat;
static struct cdt_models *models;

#define N_STATES (CDT_MODEL_DAMAGED + 1)
static atomic_int seen[N_STATES];
static atomic_int progress_calls;

static void on_event(const struct cdt_models_event *ev, void *ud)
{
    (void)ud;
    if (ev->progress)
        atomic_fetch_add(&progress_calls, 1);
    else if ((unsigned)ev->state < N_STATES)
        atomic_fetch_add(&seen[ev->state], 1);
}

static void control(const char *json)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -X POST --data '%s' %s/_control", json,
             endpoint);
    if (system(cmd) != 0)
        fprintf(stderr, "control failed\n");
}

static int setup(void)
{
    char cmd[1024], path[600], line[64] = "", sha[65] = "";
    int fds[2];
    FILE *f;
    struct stat st;
    struct cdt_models_params p = cdt_models_default_params();
    char err[512];

    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/hub/t/tiny %s/hub/t/bad && cp %s %s/hub/t/tiny/m.gguf && "
             "head -c 100000 /dev/urandom > %s/hub/t/bad/w.bin",
             tmp, tmp, model, tmp, tmp);
    if (system(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "sha256sum %s | cut -c1-64", model);
    f = popen(cmd, "r");
    if (!f || !fgets(sha, sizeof(sha), f))
        return -1;
    pclose(f);
    stat(model, &st);
    snprintf(path, sizeof(path), "%s/catalog.json", tmp);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"version\":1,\"models\":["
            "{\"id\":\"tiny_v1\",\"kind\":\"llm\",\"name\":\"Tiny\",\"best_for\":\"tests\","
            "\"ram_mb\":50,\"files\":[{\"name\":\"m.gguf\",\"size\":%lld,\"sha256\":\"%s\"}],"
            "\"sources\":[{\"type\":\"huggingface\",\"repo\":\"t/tiny\",\"revision\":\"main\"}]},"
            "{\"id\":\"bad_v1\",\"kind\":\"llm\",\"name\":\"Bad\",\"best_for\":\"tests\","
            "\"ram_mb\":1,\"files\":[{\"name\":\"w.bin\",\"size\":100000,\"sha256\":\"%064d\"}],"
            "\"sources\":[{\"type\":\"huggingface\",\"repo\":\"t/bad\",\"revision\":\"main\"}]}"
            "]}",
            (long long)st.st_size, sha, 0);
    fclose(f);
    if (cdt_catalog_load_file(path, &cat, err, sizeof(err)) != 0) {
        fprintf(stderr, "catalog: %s\n", err);
        return -1;
    }
    if (pipe(fds) != 0)
        return -1;
    hub = fork();
    if (hub == 0) {
        snprintf(path, sizeof(path), "%s/hub", tmp);
        dup2(fds[1], 1);
        execl(fakehub, fakehub, "--root", path, "--log", "/dev/null", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof(line), f))
        return -1;
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", atoi(line + 13));
    snprintf(path, sizeof(path), "%s/hf/hub", tmp);
    p.catalog = cat;
    p.download.endpoint = endpoint;
    p.download.cache_dir = path;
    p.download.token = "";
    p.download.retry_base_ms = 10;
    p.download.max_retries = -1;
    p.manager.sidecar_exe = exe;
    p.manager.state_dir = tmp;
    p.manager.idle_timeout_s = 1;
    p.manager.n_threads = 1;
    p.on_event = on_event;
    return cdt_models_new(&p, &models);
}

TEST(pull_then_downloaded)
{
    char err[512], detail[512], path[4096];

    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)),
              CDT_MODEL_NOT_DOWNLOADED);
    CHECK_INT(cdt_models_path(models, "tiny_v1", path, sizeof(path)), CDT_ESTATE);
    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(atomic_load(&seen[CDT_MODEL_DOWNLOADING]), 1);
    CHECK_INT(atomic_load(&seen[CDT_MODEL_DOWNLOADED]), 1);
    CHECK(atomic_load(&progress_calls) >= 1);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DOWNLOADED);
    CHECK_INT(cdt_models_path(models, "tiny_v1", path, sizeof(path)), 0);
    CHECK(strstr(path, "/snapshots/") != NULL);
    CHECK_INT(cdt_models_verify(models, "tiny_v1", err, sizeof(err)), 0);
}

/* The blob behind the model's snapshot entry. */
static void blob_of(const char *id, char *blob)
{
    char path[4096];

    REQUIRE(cdt_models_path(models, id, path, sizeof(path)) == 0);
    REQUIRE(realpath(path, blob) != NULL);
}

TEST(damaged_is_its_own_state_and_pull_repairs_it)
{
    char err[512], detail[512], path[4096], blob[4096], want[128];
    struct stat st;
    FILE *f;

    blob_of("tiny_v1", blob);
    REQUIRE(stat(blob, &st) == 0);
    /* Cut short after its download (a power loss): damaged, not not_downloaded. */
    REQUIRE(truncate(blob, st.st_size / 2) == 0);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DAMAGED);
    CHECK_STR(cdt_model_state_name(CDT_MODEL_DAMAGED), "damaged");
    snprintf(want, sizeof(want), "m.gguf has %lld bytes, expected %lld", (long long)st.st_size / 2,
             (long long)st.st_size);
    CHECK(strstr(detail, want) != NULL);
    CHECK(strstr(detail, "codictate models pull tiny_v1 fetches it again") != NULL);
    CHECK_INT(cdt_models_bytes_on_disk(models, "tiny_v1"), 0); /* not a resumable partial */
    CHECK_INT(cdt_models_path(models, "tiny_v1", path, sizeof(path)), CDT_ECHECKSUM);
    CHECK_INT(cdt_models_load(models, "tiny_v1", err, sizeof(err)), CDT_ECHECKSUM);
    CHECK(strstr(err, "damaged on disk") != NULL);
    CHECK_INT(cdt_models_verify(models, "tiny_v1", err, sizeof(err)), CDT_ECHECKSUM);
    CHECK(strstr(err, "tiny_v1 is damaged: ") != NULL && strstr(err, want) != NULL);
    CHECK(cdt_models_default(models, CDT_MODEL_LLM, CDT_TIER_LE8) == NULL);
    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DOWNLOADED);
    CHECK_INT(cdt_models_verify(models, "tiny_v1", err, sizeof(err)), 0);

    /* Grown: damaged too. */
    blob_of("tiny_v1", blob);
    f = fopen(blob, "ab");
    REQUIRE(f != NULL);
    fputs("trailing bytes", f);
    fclose(f);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DAMAGED);
    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DOWNLOADED);

    /* Other bytes of the right size: only verify can tell; then damaged (an event)
     * until the pull, which fetches the file again although the cache had marked it
     * verified. */
    blob_of("tiny_v1", blob);
    REQUIRE(stat(blob, &st) == 0);
    f = fopen(blob, "r+b");
    REQUIRE(f != NULL);
    fseek(f, 100, SEEK_SET);
    fputs("XXXXXXXX", f);
    fclose(f);
    {
        /* The mtime the cache's verified marker holds: a bit flip keeps it. */
        struct timespec ts[2] = {st.st_atim, st.st_mtim};

        REQUIRE(utimensat(AT_FDCWD, blob, ts, 0) == 0);
    }
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DOWNLOADED);
    atomic_store(&seen[CDT_MODEL_DAMAGED], 0);
    CHECK_INT(cdt_models_verify(models, "tiny_v1", err, sizeof(err)), CDT_ECHECKSUM);
    CHECK(strstr(err, "tiny_v1 is damaged: m.gguf: checksum mismatch") != NULL);
    CHECK_INT(atomic_load(&seen[CDT_MODEL_DAMAGED]), 1);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DAMAGED);
    CHECK(strstr(detail, "checksum mismatch") != NULL);
    CHECK_INT(cdt_models_path(models, "tiny_v1", path, sizeof(path)), CDT_ECHECKSUM);
    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DOWNLOADED);
    CHECK_INT(cdt_models_verify(models, "tiny_v1", err, sizeof(err)), 0);
}

TEST(wrong_bytes_is_download_failed)
{
    char err[512], detail[512];

    CHECK_INT(cdt_models_pull(models, "bad_v1", err, sizeof(err)), CDT_ECHECKSUM);
    CHECK(strstr(err, "checksum mismatch") != NULL);
    CHECK_INT(cdt_models_state(models, "bad_v1", detail, sizeof(detail)),
              CDT_MODEL_DOWNLOAD_FAILED);
    CHECK(strstr(detail, "checksum") != NULL);
    CHECK_INT(atomic_load(&seen[CDT_MODEL_DOWNLOAD_FAILED]), 1);
}

struct puller {
    pthread_t t;
    int rc;
};

static void *pull_main(void *arg)
{
    struct puller *p = arg;
    char err[512];

    p->rc = cdt_models_pull(models, "tiny_v1", err, sizeof(err));
    return NULL;
}

TEST(delete_refused_while_downloading_then_cancel)
{
    struct puller p;
    char err[512], detail[512];

    CHECK_INT(cdt_models_delete(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)),
              CDT_MODEL_NOT_DOWNLOADED);
    control("{\"reset\":true,\"rate\":2000000}");
    pthread_create(&p.t, NULL, pull_main, &p);
    usleep(800 * 1000);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_DOWNLOADING);
    CHECK_INT(cdt_models_delete(models, "tiny_v1", err, sizeof(err)), CDT_ESTATE);
    CHECK(strstr(err, "downloading") != NULL);
    cdt_models_cancel(models, "tiny_v1");
    pthread_join(p.t, NULL);
    CHECK_INT(p.rc, CDT_ECANCELED);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)),
              CDT_MODEL_NOT_DOWNLOADED);
    CHECK(strstr(detail, "resumable") != NULL);
    control("{\"reset\":true}");
    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
}

TEST(load_ready_idle_unload)
{
    char err[512], detail[512];

    CHECK_INT(cdt_models_load(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(atomic_load(&seen[CDT_MODEL_LOADING]), 1);
    CHECK_INT(atomic_load(&seen[CDT_MODEL_READY]), 1);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_READY);
    CHECK_INT(cdt_models_delete(models, "tiny_v1", err, sizeof(err)), CDT_ESTATE);
    CHECK(strstr(err, "loaded") != NULL);
    for (int i = 0; i < 40 && atomic_load(&seen[CDT_MODEL_UNLOADED]) == 0; i++)
        usleep(100 * 1000);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_UNLOADED);
    CHECK_INT(cdt_models_delete(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(cdt_models_load(models, "tiny_v1", err, sizeof(err)), CDT_ESTATE);
}

/* Runs fn(arg) on a thread and waits at most `secs` for it: a deadlock is reported as
 * a failure (and the process exits, since a deadlocked thread cannot be joined)
 * rather than hanging ctest until its timeout. */
static int run_bounded(void *(*fn)(void *), void *arg, int secs)
{
    pthread_t t;
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += secs;
    if (pthread_create(&t, NULL, fn, arg) != 0)
        return -1;
    if (pthread_timedjoin_np(t, NULL, &deadline) != 0) {
        fprintf(stderr, "FAIL: still blocked after %d s (deadlock?)\n", secs);
        printf("%d passed, %d failed\n", cdt_test_state_.passed, cdt_test_state_.failed + 1);
        fflush(NULL);
        _exit(1);
    }
    return 0;
}

struct op {
    int rc;
    enum cdt_model_state st;
    char err[512];
};

static void *delete_main(void *arg)
{
    struct op *o = arg;

    o->rc = cdt_models_delete(models, "tiny_v1", o->err, sizeof(o->err));
    return NULL;
}

static void *state_main(void *arg)
{
    struct op *o = arg;

    o->st = cdt_models_state(models, "tiny_v1", o->err, sizeof(o->err));
    return NULL;
}

static void *load_main(void *arg)
{
    struct op *o = arg;

    o->rc = cdt_models_load(models, "tiny_v1", o->err, sizeof(o->err));
    return NULL;
}

/* True once the child has exited, all its threads included, and is not yet reaped
 * (the manager reaps it when it next looks). /proc's "Z" shows earlier, while the
 * other threads of a killed sidecar still exit. */
static bool exited_unreaped(pid_t pid)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* A sidecar that died and was not yet reaped is noticed inside the manager's
 * queries; the event it emits (SIDECAR_EXITED) reaches on_manager_event, which takes
 * the models lock. Delete, state and load from another thread must not deadlock. */
TEST(dead_sidecar_then_delete_state_load_do_not_hang)
{
    char err[512], detail[512];
    struct op o;
    pid_t pid;

    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
    CHECK_INT(cdt_models_load(models, "tiny_v1", err, sizeof(err)), 0);
    pid = cdt_manager_sidecar_pid(cdt_models_manager(models));
    REQUIRE(pid > 0);
    REQUIRE(cdt_proc_signal(pid, SIGKILL) == 0);
    for (int i = 0; i < 200 && !exited_unreaped(pid); i++)
        usleep(10 * 1000);
    CHECK(exited_unreaped(pid));

    memset(&o, 0, sizeof(o));
    REQUIRE(run_bounded(delete_main, &o, 10) == 0);
    CHECK_INT(o.rc, 0); /* the dead sidecar had it loaded: no longer */
    if (o.rc != 0)
        fprintf(stderr, "delete: %s\n", o.err);
    REQUIRE(run_bounded(state_main, &o, 10) == 0);
    CHECK_INT(o.st, CDT_MODEL_NOT_DOWNLOADED);
    CHECK_INT(cdt_models_pull(models, "tiny_v1", err, sizeof(err)), 0);
    REQUIRE(run_bounded(load_main, &o, 60) == 0);
    CHECK_INT(o.rc, 0);
    CHECK_INT(cdt_models_state(models, "tiny_v1", detail, sizeof(detail)), CDT_MODEL_READY);

    /* The same with the state query first, then delete (refused: it is loaded again). */
    pid = cdt_manager_sidecar_pid(cdt_models_manager(models));
    REQUIRE(pid > 0);
    REQUIRE(cdt_proc_signal(pid, SIGKILL) == 0);
    for (int i = 0; i < 200 && !exited_unreaped(pid); i++)
        usleep(10 * 1000);
    REQUIRE(run_bounded(state_main, &o, 10) == 0);
    CHECK(o.st != CDT_MODEL_READY);
    REQUIRE(run_bounded(delete_main, &o, 10) == 0);
    CHECK_INT(o.rc, 0);
}

int main(int argc, char **argv)
{
    int rc, st;
    char cmd[128];

    if (argc != 4) {
        fprintf(stderr, "usage: %s FAKEHUB CODICTATE MODEL.gguf\n", argv[0]);
        return 2;
    }
    fakehub = argv[1];
    exe = argv[2];
    model = argv[3];
    if (!mkdtemp(tmp) || setup() != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    RUN(pull_then_downloaded);
    RUN(damaged_is_its_own_state_and_pull_repairs_it);
    RUN(wrong_bytes_is_download_failed);
    RUN(delete_refused_while_downloading_then_cancel);
    RUN(load_ready_idle_unload);
    RUN(dead_sidecar_then_delete_state_load_do_not_hang);
    cdt_models_free(models);
    cdt_catalog_free(cat);
    (void)cdt_proc_signal(hub, SIGTERM);
    waitpid(hub, &st, 0);
    rc = TEST_END();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
