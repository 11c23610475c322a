/* The sidecar manager (see manager.h).
 *
 * Locks: `op` serialises whole operations on the sidecar (spawn, load, unload) so
 * that concurrent callers load a model once; `lock` guards the small shared state
 * (pid, port, loaded, busy, last_use) and is held only briefly. Order: op, then
 * lock. The idle thread sleeps on `cv` until the idle deadline.
 *
 * Events are never emitted with `lock` held: the callback may take its own locks
 * and call back into the manager (models.c does). A dead sidecar noticed under the
 * lock is recorded in `exited` and emitted by unlock_emit() after unlocking.
 *
 * Every request to the sidecar goes through sidecar_client.h (typed /health,
 * /load, /generate, /unload); no JSON is built or parsed here. */
#include "codictate/manager.h"
#include "codictate/log.h"
#include "codictate/sidecar_client.h"
#include "codictate/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CDT_MGR_PATH_MAX  4096
#define CDT_MGR_LINE_MAX  128 /* the sidecar's port line */
#define CDT_MGR_KILL_WAIT 500 /* ms between SIGTERM and SIGKILL */

struct cdt_manager {
    pthread_mutex_t op;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    pthread_t idle_thread;
    bool idle_started;
    bool quit;

    char exe[CDT_MGR_PATH_MAX];
    char state_dir[CDT_MGR_PATH_MAX];
    char pidfile[CDT_MGR_PATH_MAX + 64];
    int idle_timeout_s;
    int n_ctx, n_threads;
    int start_timeout_ms;
    long request_timeout_ms;
    struct cdt_log *log;
    void (*on_event)(const struct cdt_manager_event *ev, void *user_data);
    void *user_data;

    pid_t pid;
    int port;
    int life_fd; /* the write end of the sidecar's parent pipe: it exits when this
                  * process dies and the pipe closes (-1: none) */
    char token[33];
    char loaded[CDT_MGR_PATH_MAX]; /* "" when none */
    int busy;                      /* generations in flight */
    double last_use;               /* cdt_now_ms() of the last request */
    char exited[64];               /* how the sidecar ended, noticed under the lock and not yet
                                    * emitted ("" when nothing is pending) */

    /* The speeds measured on this machine (cdt_manager_rates), ms per token, 0 when
     * not yet; for the model `rated` ("" none). */
    char rated[CDT_MGR_PATH_MAX];
    double prefill_ms, decode_ms;
    double bytes_per_token; /* of its generated text (cdt_manager_bytes_per_token) */
};

struct cdt_manager_params cdt_manager_default_params(void)
{
    struct cdt_manager_params p;

    memset(&p, 0, sizeof(p));
    p.idle_timeout_s = CDT_IDLE_DEFAULT_S;
    return p;
}

static void emit(struct cdt_manager *m, enum cdt_manager_event_type type, const char *model,
                 const char *detail)
{
    struct cdt_manager_event ev = {type, model, detail};

    if (m->on_event)
        m->on_event(&ev, m->user_data);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- process handling ---- */

/* Waits up to ms for pid to exit; returns true when it did (reaped). */
static bool wait_exit(pid_t pid, int ms, int *status)
{
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return true;
        if (waited >= ms)
            return false;
        sleep_ms(10);
    }
}

static void stop_pid(pid_t pid, bool child)
{
    int st;

    if (pid <= 0)
        return;
    (void)cdt_proc_signal(pid, SIGTERM);
    if (child) {
        if (!wait_exit(pid, CDT_MGR_KILL_WAIT, &st)) {
            (void)cdt_proc_signal(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        return;
    }
    for (int waited = 0; waited < CDT_MGR_KILL_WAIT; waited += 10) {
        if (cdt_proc_signal(pid, 0) != 0)
            return;
        sleep_ms(10);
    }
    (void)cdt_proc_signal(pid, SIGKILL);
}

/* Kills sidecars whose manager died (PID files "sidecar-<owner>.pid" with "<pid>"). */
static void reap_orphans(struct cdt_manager *m)
{
    DIR *d = opendir(m->state_dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[CDT_MGR_PATH_MAX + 300], line[64];
        long owner, pid;
        char *end;
        FILE *f;

        if (strncmp(e->d_name, "sidecar-", 8) != 0)
            continue;
        owner = strtol(e->d_name + 8, &end, 10);
        if (end == e->d_name + 8 || strcmp(end, ".pid") != 0 || owner <= 0)
            continue;
        if (owner != getpid() && cdt_proc_signal((pid_t)owner, 0) == 0)
            continue; /* its manager is alive */
        snprintf(path, sizeof(path), "%s/%s", m->state_dir, e->d_name);
        f = fopen(path, "r");
        if (f && fgets(line, sizeof(line), f)) {
            pid = strtol(line, &end, 10);
            if (pid > 0 && cdt_proc_is_codictate((pid_t)pid, "sidecar")) {
                CDT_LOG_W(m->log, "stopping sidecar %ld orphaned by manager %ld", pid, owner);
                stop_pid((pid_t)pid, false);
            }
        }
        if (f)
            fclose(f);
        unlink(path);
    }
    closedir(d);
}

static void write_pidfile(struct cdt_manager *m)
{
    char tmp[sizeof(m->pidfile) + 8];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", m->pidfile);
    f = fopen(tmp, "w");
    if (!f) {
        CDT_LOG_W(m->log, "cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)m->pid);
    if (fclose(f) != 0 || rename(tmp, m->pidfile) != 0)
        unlink(tmp);
}

/* Notices a dead sidecar; lock held. The event waits in m->exited for
 * unlock_emit(). */
static void check_alive_locked(struct cdt_manager *m)
{
    int st;

    if (m->pid <= 0 || waitpid(m->pid, &st, WNOHANG) != m->pid)
        return;
    if (WIFSIGNALED(st))
        snprintf(m->exited, sizeof(m->exited), "killed by signal %d", WTERMSIG(st));
    else
        snprintf(m->exited, sizeof(m->exited), "exited with status %d", WEXITSTATUS(st));
    CDT_LOG_W(m->log, "the sidecar (pid %d) %s", (int)m->pid, m->exited);
    m->pid = 0;
    m->port = 0;
    m->loaded[0] = '\0';
    unlink(m->pidfile);
}

/* Releases `lock`, then emits what check_alive_locked() noticed. */
static void unlock_emit(struct cdt_manager *m)
{
    char how[sizeof(m->exited)];

    snprintf(how, sizeof(how), "%s", m->exited);
    m->exited[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    if (how[0])
        emit(m, CDT_MGR_SIDECAR_EXITED, NULL, how);
}

/* check_alive_locked() with the lock taken and released (events emitted after). */
static void check_alive(struct cdt_manager *m)
{
    pthread_mutex_lock(&m->lock);
    check_alive_locked(m);
    unlock_emit(m);
}

/* Starts the sidecar when none runs; op held. */
static int spawn(struct cdt_manager *m, char *errmsg, size_t errcap)
{
    char ctx[16], thr[16] = "", line[CDT_MGR_LINE_MAX];
    const char *argv[12];
    int fds[2], life[2], argc = 0, port = 0, st;
    size_t len = 0;
    double t0;
    pid_t pid;

    pthread_mutex_lock(&m->lock);
    check_alive_locked(m);
    pid = m->pid;
    unlock_emit(m);
    if (pid > 0)
        return 0;

    if (cdt_random_hex(m->token, (sizeof(m->token) - 1) / 2) != 0) {
        snprintf(errmsg, errcap, "no randomness for the sidecar token");
        return CDT_EIO;
    }
    argv[argc++] = m->exe;
    argv[argc++] = "sidecar";
    /* The child shares our stderr: its request lines only when we log that much. */
    if (!cdt_log_enabled(m->log, CDT_LOG_INFO))
        argv[argc++] = "--quiet";
    if (m->n_ctx > 0) {
        snprintf(ctx, sizeof(ctx), "%d", m->n_ctx);
        argv[argc++] = "--ctx";
        argv[argc++] = ctx;
    }
    if (m->n_threads == CDT_MANAGER_THREADS_AUTO)
        snprintf(thr, sizeof(thr), "auto");
    else if (m->n_threads > 0)
        snprintf(thr, sizeof(thr), "%d", m->n_threads);
    if (thr[0]) {
        argv[argc++] = "--threads";
        argv[argc++] = thr;
    }
    argv[argc] = NULL;

    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(errmsg, errcap, "pipe: %s", strerror(errno));
        return CDT_EIO;
    }
    if (pipe2(life, O_CLOEXEC) != 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(errmsg, errcap, "pipe: %s", strerror(errno));
        return CDT_EIO;
    }
    t0 = cdt_now_ms();
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        close(life[0]);
        close(life[1]);
        snprintf(errmsg, errcap, "fork: %s", strerror(errno));
        return CDT_EIO;
    }
    if (pid == 0) {
        sigset_t none;
        int devnull = open("/dev/null", O_RDONLY);

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Never outlive this process: the sidecar watches fd 3 and exits when it
         * reads end-of-file. (PR_SET_PDEATHSIG would fire when the *thread* that
         * spawned it ends — a preload thread, say — not the process.) */
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(life[0], 3);
        setenv("CODICTATE_PARENT_FD", "3", 1);
        setenv("CODICTATE_SIDECAR_TOKEN", m->token, 1);
        execv(m->exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    close(life[0]);
    if (m->life_fd >= 0)
        close(m->life_fd);
    m->life_fd = life[1];

    /* The port line: the sidecar prints it once it listens. */
    while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int left;
        ssize_t n;

        left = m->start_timeout_ms - (int)(cdt_now_ms() - t0);
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        n = read(fds[0], line + len, sizeof(line) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    line[len] = '\0';
    if (sscanf(line, "CODICTATE_SIDECAR_PORT=%d", &port) != 1 || port <= 0 || port > 65535) {
        if (wait_exit(pid, 200, &st))
            snprintf(errmsg, errcap, "the sidecar (%s) exited at start with status %d", m->exe,
                     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        else
            snprintf(errmsg, errcap, "the sidecar (%s) did not report its port within %d ms",
                     m->exe, m->start_timeout_ms);
        stop_pid(pid, true);
        return CDT_EENGINE;
    }
    /* Readiness: /health answers as soon as it listens; poll briefly, no fixed sleep. */
    for (;;) {
        struct cdt_sidecar_health h;
        char err[128];

        if (cdt_sidecar_health(port, m->token, 1000, &h, err, sizeof(err)) == 0 && h.status == 200)
            break;
        if (cdt_now_ms() - t0 > m->start_timeout_ms) {
            snprintf(errmsg, errcap, "the sidecar did not become healthy within %d ms",
                     m->start_timeout_ms);
            stop_pid(pid, true);
            return CDT_EENGINE;
        }
        sleep_ms(5);
    }
    pthread_mutex_lock(&m->lock);
    m->pid = pid;
    m->port = port;
    m->loaded[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    write_pidfile(m);
    CDT_LOG_I(m->log, "sidecar pid %d on port %d, ready in %.0f ms", (int)pid, port,
              cdt_now_ms() - t0);
    emit(m, CDT_MGR_SIDECAR_STARTED, NULL, NULL);
    return 0;
}

/* Loads path; op held. One retry when the sidecar turns out to be dead. */
static int load_op(struct cdt_manager *m, const char *path, const char *warmup, char *errmsg,
                   size_t errcap)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct cdt_sidecar_load_req req = {.model_path = path, .warmup_prompt = warmup};
        struct cdt_sidecar_load_reply r;
        char err[256];
        int rc, port;
        bool same;

        rc = spawn(m, errmsg, errcap);
        if (rc != 0)
            return rc;
        pthread_mutex_lock(&m->lock);
        same = strcmp(m->loaded, path) == 0;
        port = m->port;
        pthread_mutex_unlock(&m->lock);
        if (same)
            return 0;
        emit(m, CDT_MGR_LOADING, path, NULL);
        rc = cdt_sidecar_load(port, m->token, &req, 0, &r, err, sizeof(err));
        if (rc == CDT_ENOMEM)
            return rc;
        if (rc == 0 && r.status == 200) {
            pthread_mutex_lock(&m->lock);
            snprintf(m->loaded, sizeof(m->loaded), "%s", path);
            /* The speeds the sidecar measured now replace older ones: a load sees the
             * machine as it is, and a request refused by stale figures (which measure
             * nothing) no longer keeps the next ones refused. */
            if (r.prefill_ms > 0 && r.decode_ms > 0) {
                snprintf(m->rated, sizeof(m->rated), "%s", path);
                m->prefill_ms = r.prefill_ms;
                m->decode_ms = r.decode_ms;
            }
            pthread_mutex_unlock(&m->lock);
            emit(m, CDT_MGR_LOADED, path, NULL);
            return 0;
        }
        if (rc == 0 || rc == CDT_EPROTOCOL) {
            /* It answered: the load failed (its detail), or the answer made no sense. */
            snprintf(errmsg, errcap, "%s", rc == 0 ? r.detail : err);
            emit(m, CDT_MGR_LOAD_FAILED, path, errmsg);
            return CDT_EENGINE;
        }
        check_alive(m);
        snprintf(errmsg, errcap, "the sidecar stopped answering: %s", err);
        emit(m, CDT_MGR_LOAD_FAILED, path, errmsg);
    }
    return CDT_ENET;
}

static void touch(struct cdt_manager *m)
{
    m->last_use = cdt_now_ms();
    pthread_cond_broadcast(&m->cv);
}

int cdt_manager_load(struct cdt_manager *m, const char *model_path, char *errmsg, size_t errcap)
{
    return cdt_manager_load_warm(m, model_path, NULL, errmsg, errcap);
}

int cdt_manager_load_warm(struct cdt_manager *m, const char *model_path, const char *warmup_prompt,
                          char *errmsg, size_t errcap)
{
    int rc;

    pthread_mutex_lock(&m->op);
    rc = load_op(m, model_path, warmup_prompt, errmsg, errcap);
    pthread_mutex_unlock(&m->op);
    pthread_mutex_lock(&m->lock);
    touch(m);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Unloads; op held. */
static void unload_op(struct cdt_manager *m, const char *why)
{
    char err[128], model[CDT_MGR_PATH_MAX];
    int port;

    pthread_mutex_lock(&m->lock);
    check_alive_locked(m);
    port = m->port;
    snprintf(model, sizeof(model), "%s", m->loaded);
    unlock_emit(m);
    if (!port || !model[0])
        return;
    /* Whatever it answers, the model is gone or the sidecar is (noticed on next use). */
    if (cdt_sidecar_unload(port, m->token, 30000, NULL, err, sizeof(err)) != 0)
        CDT_LOG_D(m->log, "unload: %s", err);
    pthread_mutex_lock(&m->lock);
    m->loaded[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    CDT_LOG_I(m->log, "unloaded %s (%s)", model, why);
    emit(m, CDT_MGR_UNLOADED, model, why);
}

void cdt_manager_unload(struct cdt_manager *m)
{
    pthread_mutex_lock(&m->op);
    unload_op(m, "request");
    pthread_mutex_unlock(&m->op);
}

/* Folds a generation's timings into the measured speeds (an average that follows
 * the machine: each new figure weighs MGR_RATE_W). Figures from a handful of
 * tokens are mostly overhead and are left out. */
#define MGR_RATE_W        0.3
#define MGR_RATE_MIN_TOKS 4

static double follow(double avg, double v)
{
    return avg > 0 ? avg + MGR_RATE_W * (v - avg) : v;
}

static void rate_locked(struct cdt_manager *m, const char *model,
                        const struct cdt_sidecar_gen_reply *reply)
{
    const struct cdt_sidecar_timings *t = &reply->timings;
    const char *text = reply->response ? reply->response : reply->streamed;

    if (strcmp(m->rated, model) != 0) {
        snprintf(m->rated, sizeof(m->rated), "%s", model);
        m->prefill_ms = m->decode_ms = m->bytes_per_token = 0;
    }
    if (t->prompt_tokens_evaluated >= MGR_RATE_MIN_TOKS && t->prompt_ms > 0)
        m->prefill_ms = follow(m->prefill_ms, t->prompt_ms / t->prompt_tokens_evaluated);
    if (t->generated_tokens >= MGR_RATE_MIN_TOKS && t->generation_ms > 0)
        m->decode_ms = follow(m->decode_ms, t->generation_ms / t->generated_tokens);
    if (t->generated_tokens >= MGR_RATE_MIN_TOKS && text && *text)
        m->bytes_per_token = follow(m->bytes_per_token, (double)strlen(text) / t->generated_tokens);
}

bool cdt_manager_rates(struct cdt_manager *m, const char *model_path, double *prefill_ms,
                       double *decode_ms)
{
    bool ok;

    pthread_mutex_lock(&m->lock);
    ok = strcmp(m->rated, model_path) == 0 && m->prefill_ms > 0 && m->decode_ms > 0;
    if (ok) {
        *prefill_ms = m->prefill_ms;
        *decode_ms = m->decode_ms;
    }
    pthread_mutex_unlock(&m->lock);
    return ok;
}

double cdt_manager_bytes_per_token(struct cdt_manager *m, const char *model_path)
{
    double v;

    pthread_mutex_lock(&m->lock);
    v = strcmp(m->rated, model_path) == 0 ? m->bytes_per_token : 0;
    pthread_mutex_unlock(&m->lock);
    return v;
}

/* A count is quick (the sidecar tokenizes on the connection's thread, beside a
 * generation): a sidecar that takes longer than this is not waited for. */
#define MGR_COUNT_TIMEOUT_MS 2000

int cdt_manager_count_tokens(struct cdt_manager *m, const char *model_path, const char *text,
                             int *n, char *errmsg, size_t errcap)
{
    char err[256] = "";
    int port, rc;

    *n = 0;
    pthread_mutex_lock(&m->lock);
    port = strcmp(m->loaded, model_path) == 0 ? m->port : 0;
    pthread_mutex_unlock(&m->lock);
    if (port <= 0)
        rc = CDT_ESTATE;
    else
        rc = cdt_sidecar_count_tokens(port, m->token, text, MGR_COUNT_TIMEOUT_MS, n, err,
                                      sizeof(err));
    if (rc != 0 && errmsg && errcap)
        snprintf(errmsg, errcap, "%s", err[0] ? err : cdt_strerror(rc));
    return rc;
}

int cdt_manager_generate(struct cdt_manager *m, const char *model_path,
                         const struct cdt_sidecar_gen_req *req, struct cdt_sidecar_gen_reply *reply,
                         char *errmsg, size_t errcap)
{
    int rc = 0;

    memset(reply, 0, sizeof(*reply));
    pthread_mutex_lock(&m->lock);
    m->busy++;
    pthread_mutex_unlock(&m->lock);
    for (int attempt = 0; attempt < 2; attempt++) {
        char err[256];
        int port;

        rc = cdt_manager_load(m, model_path, errmsg, errcap);
        if (rc != 0)
            break;
        pthread_mutex_lock(&m->lock);
        port = m->port;
        pthread_mutex_unlock(&m->lock);
        rc = cdt_sidecar_generate(port, m->token, req, m->request_timeout_ms, reply, err,
                                  sizeof(err));
        if (rc == 0 && reply->status == 400 && strstr(reply->detail, "No model loaded") &&
            attempt == 0) {
            /* The sidecar lost the model (restarted, unloaded by someone): reload once. */
            cdt_sidecar_gen_reply_cleanup(reply);
            pthread_mutex_lock(&m->lock);
            m->loaded[0] = '\0';
            pthread_mutex_unlock(&m->lock);
            continue;
        }
        if (rc == 0)
            break;
        if (rc == CDT_EPROTOCOL || rc == CDT_EINVAL || rc == CDT_ENOMEM || rc == CDT_ECANCELED) {
            /* It answered nonsense, the request never left, or we closed it (the
             * sidecar cancels that generation): nothing died. */
            snprintf(errmsg, errcap, "%s", err);
            break;
        }
        /* A killed process closes its sockets a moment before it can be reaped. */
        for (int waited = 0; rc == CDT_ENET && waited < 300; waited += 10) {
            bool alive;

            pthread_mutex_lock(&m->lock);
            check_alive_locked(m);
            alive = m->pid > 0;
            unlock_emit(m);
            if (!alive)
                break;
            sleep_ms(10);
        }
        if (rc == CDT_ETIMEOUT)
            snprintf(errmsg, errcap, "the sidecar did not answer in time: %s", err);
        else
            snprintf(errmsg, errcap, "the sidecar failed during generation: %s", err);
        break;
    }
    pthread_mutex_lock(&m->lock);
    m->busy--;
    touch(m);
    if (rc == 0 && reply->status == 200)
        rate_locked(m, model_path, reply);
    pthread_mutex_unlock(&m->lock);
    if (m->idle_timeout_s == CDT_IDLE_IMMEDIATELY) {
        pthread_mutex_lock(&m->op);
        pthread_mutex_lock(&m->lock);
        bool idle = m->busy == 0;
        pthread_mutex_unlock(&m->lock);
        if (idle)
            unload_op(m, "immediately");
        pthread_mutex_unlock(&m->op);
    }
    return rc;
}

/* ---- idle unload ---- */

static void *idle_main(void *arg)
{
    struct cdt_manager *m = arg;

    pthread_mutex_lock(&m->lock);
    while (!m->quit) {
        double deadline; /* ms, cdt_now_ms() clock */
        bool armed = m->loaded[0] && m->busy == 0 && m->idle_timeout_s > 0;

        if (!armed) {
            pthread_cond_wait(&m->cv, &m->lock);
            continue;
        }
        deadline = m->last_use + m->idle_timeout_s * 1e3;
        if (cdt_now_ms() < deadline) {
            struct timespec at = cdt_ms_to_timespec(deadline);

            pthread_cond_timedwait(&m->cv, &m->lock, &at);
            continue;
        }
        /* Idle long enough: unload under op, re-checking after taking it. */
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_lock(&m->op);
        pthread_mutex_lock(&m->lock);
        deadline = m->last_use + m->idle_timeout_s * 1e3;
        armed = m->loaded[0] && m->busy == 0 && m->idle_timeout_s > 0 && !m->quit &&
                cdt_now_ms() >= deadline;
        pthread_mutex_unlock(&m->lock);
        if (armed)
            unload_op(m, "idle");
        pthread_mutex_unlock(&m->op);
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* ---- lifecycle ---- */

int cdt_manager_new(const struct cdt_manager_params *p, struct cdt_manager **out)
{
    struct cdt_manager_params def = cdt_manager_default_params();
    struct cdt_manager *m;
    pthread_condattr_t ca;

    *out = NULL;
    if (!p)
        p = &def;
    m = calloc(1, sizeof(*m));
    if (!m)
        return CDT_ENOMEM;
    m->life_fd = -1;
    if (p->sidecar_exe) {
        snprintf(m->exe, sizeof(m->exe), "%s", p->sidecar_exe);
    } else {
        ssize_t n = readlink("/proc/self/exe", m->exe, sizeof(m->exe) - 1);
        if (n <= 0) {
            free(m);
            return CDT_EIO;
        }
        m->exe[n] = '\0';
    }
    if (p->state_dir)
        snprintf(m->state_dir, sizeof(m->state_dir), "%s", p->state_dir);
    else
        cdt_state_dir(m->state_dir, sizeof(m->state_dir));
    if (cdt_mkdir_p(m->state_dir, 0700) != 0) {
        CDT_LOG_W(p->log, "cannot create %s: %s", m->state_dir, strerror(errno));
    }
    snprintf(m->pidfile, sizeof(m->pidfile), "%s/sidecar-%d.pid", m->state_dir, (int)getpid());
    m->idle_timeout_s = p->idle_timeout_s;
    m->n_ctx = p->n_ctx;
    m->n_threads = p->n_threads;
    if (m->n_threads == 0) {
        const char *env = cdt_env_str("CODICTATE_LLM_THREADS", NULL);
        char *end;
        long v = env ? strtol(env, &end, 10) : 0;

        if (env && strcmp(env, "auto") == 0)
            m->n_threads = CDT_MANAGER_THREADS_AUTO;
        else if (env && (end == env || *end || v < 1 || v > 1024))
            CDT_LOG_W(p->log,
                      "CODICTATE_LLM_THREADS is not a thread count (1..1024) or auto: ignored");
        else if (env)
            m->n_threads = (int)v;
    }
    m->start_timeout_ms = p->start_timeout_ms > 0 ? p->start_timeout_ms : 10000;
    m->request_timeout_ms = p->request_timeout_ms;
    m->log = p->log;
    m->on_event = p->on_event;
    m->user_data = p->user_data;
    pthread_mutex_init(&m->op, NULL);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->last_use = cdt_now_ms();
    reap_orphans(m);
    if (pthread_create(&m->idle_thread, NULL, idle_main, m) == 0)
        m->idle_started = true;
    *out = m;
    return 0;
}

bool cdt_manager_loaded(struct cdt_manager *m, char *buf, size_t cap)
{
    bool loaded;

    pthread_mutex_lock(&m->lock);
    check_alive_locked(m);
    loaded = m->loaded[0] != '\0';
    if (cap)
        snprintf(buf, cap, "%s", m->loaded);
    unlock_emit(m);
    return loaded;
}

int cdt_manager_sidecar_pid(struct cdt_manager *m)
{
    int pid;

    pthread_mutex_lock(&m->lock);
    check_alive_locked(m);
    pid = (int)m->pid;
    unlock_emit(m);
    return pid;
}

int cdt_manager_sidecar_port(struct cdt_manager *m)
{
    int port;

    pthread_mutex_lock(&m->lock);
    port = m->port;
    pthread_mutex_unlock(&m->lock);
    return port;
}

void cdt_manager_set_idle_timeout(struct cdt_manager *m, int idle_timeout_s)
{
    pthread_mutex_lock(&m->lock);
    m->idle_timeout_s = idle_timeout_s;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->lock);
}

void cdt_manager_free(struct cdt_manager *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->quit = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->lock);
    if (m->idle_started)
        pthread_join(m->idle_thread, NULL);
    if (m->pid > 0) {
        stop_pid(m->pid, true);
        unlink(m->pidfile);
    }
    if (m->life_fd >= 0)
        close(m->life_fd);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->op);
    free(m);
}
