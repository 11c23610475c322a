/* `codictate sidecar`: runs the LLM inference server until SIGTERM/SIGINT. Prints
 * CODICTATE_SIDECAR_PORT=<n> as its first stdout line once it listens. */
#include "../sidecar/sidecar.h"
#include "args.h"
#include "cli.h"
#include "codictate/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void sidecar_usage(FILE *out)
{
    fprintf(out, "usage: codictate sidecar [options]\n"
                 "\n"
                 "Serves a local LLM over HTTP on 127.0.0.1 (the seed's sidecar protocol):\n"
                 "GET /status, GET /health, POST /load, POST /generate, POST /unload,\n"
                 "POST /tokenize; and OpenAI's GET /v1/models, POST /v1/chat/completions.\n"
                 "The first line on stdout is CODICTATE_SIDECAR_PORT=<port>.\n"
                 "\n"
                 "  --port N           listen on port N only\n"
                 "  --port-range A-B   first free port of A-B (default 11400-11500)\n"
                 "  --host ADDR        address to bind (default 127.0.0.1; loopback only)\n"
                 "  --listen-any       allow a non-loopback --host (no Host check then)\n"
                 "  --ctx N            context size in tokens (default 4096, capped by the "
                 "model)\n"
                 "  --threads N|auto   inference threads (default auto: up to the physical\n"
                 "                     cores, each request on the CPU taking those that\n"
                 "                     other processes leave free when it starts)\n"
                 "  --model PATH       load this GGUF (file or directory) at start\n"
                 "  --queue N          requests that may wait (default 8; more get 503)\n"
                 "  -v, --verbose      also log the engines (-vv: their debug output)\n"
                 "  --quiet            warnings and errors only (no request lines)\n"
                 "\n"
                 "Environment: CODICTATE_SIDECAR_TOKEN, when set, is required as\n"
                 "\"Authorization: Bearer <token>\" on every endpoint but /health.\n");
}

/* The manager that spawned us holds the write end of a pipe at
 * $CODICTATE_PARENT_FD; end-of-file on it means that process is gone: shut down
 * as on SIGTERM, so a crashed app never leaves a model in memory. */
static void *parent_watch_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b;

    for (;;) {
        ssize_t n = read(fd, &b, 1);

        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        break;
    }
    kill(getpid(), SIGTERM);
    return NULL;
}

static void watch_parent(struct cdt_cli *cli)
{
    long fd = cdt_env_long("CODICTATE_PARENT_FD", 3, 1024, -1);
    pthread_t th;

    if (fd < 0 || fcntl((int)fd, F_GETFD) < 0)
        return;
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    if (pthread_create(&th, NULL, parent_watch_main, (void *)(intptr_t)fd) != 0) {
        CDT_LOG_W(cli->log, "cannot watch the parent process");
        return;
    }
    pthread_detach(th);
}

int cdt_cmd_sidecar(struct cdt_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},  {"port-range", required_argument, NULL, 'r'},
        {"host", required_argument, NULL, 'H'},  {"listen-any", no_argument, NULL, 'a'},
        {"ctx", required_argument, NULL, 'c'},   {"threads", required_argument, NULL, 't'},
        {"model", required_argument, NULL, 'm'}, {"queue", required_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},     {"help", no_argument, NULL, 'h'},
        {"quiet", no_argument, NULL, 'Q'},       {NULL, 0, NULL, 0},
    };
    struct cdt_sidecar_params sp = cdt_sidecar_default_params();
    struct cdt_backend *be = NULL;
    struct cdt_sidecar *s = NULL;
    const char *model = NULL, *token;
    long a, b, threads = 0;
    char err[512];
    sigset_t set;
    int c, sig = 0, verbose = cli->verbosity, rc;
    bool quiet = false;

    sp.port_min = CDT_SIDECAR_PORT_MIN;
    sp.port_max = CDT_SIDECAR_PORT_MAX;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!cdt_arg_int(optarg, 1, 65535, &a))
                goto bad_value;
            sp.port_min = sp.port_max = (int)a;
            break;
        case 'r':
            if (!cdt_arg_range(optarg, 1, 65535, &a, &b))
                goto bad_value;
            sp.port_min = (int)a;
            sp.port_max = (int)b;
            break;
        case 'H':
            sp.host = optarg;
            break;
        case 'a':
            sp.listen_any = true;
            break;
        case 'c':
            if (!cdt_arg_int(optarg, 16, 1 << 20, &a))
                goto bad_value;
            sp.n_ctx = (int)a;
            break;
        case 't':
            if (strcmp(optarg, "auto") == 0)
                threads = CDT_ENGINE_THREADS_AUTO;
            else if (!cdt_arg_int(optarg, 1, 1024, &threads))
                goto bad_value;
            break;
        case 'm':
            model = optarg;
            break;
        case 'q':
            if (!cdt_arg_int(optarg, 1, 1024, &a))
                goto bad_value;
            sp.queue_max = (int)a;
            break;
        case 'v':
            verbose++;
            break;
        case 'Q':
            quiet = true;
            break;
        case 'h':
            sidecar_usage(stdout);
            return CDT_EXIT_OK;
        default:
            sidecar_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "codictate sidecar: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }
    /* A daemon: one line per request by default (never any text); -v adds the
     * engines' logs, -vv their debug output. */
    cdt_log_set_level(cli->log, verbose >= 1 ? CDT_LOG_DEBUG + (verbose - 1)
                                : quiet      ? CDT_LOG_WARN
                                             : CDT_LOG_INFO);

    /* Signals are taken by sigwait below; every thread inherits this mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rc = cdt_engine_new(cli->log, (int)threads, &be);
    if (rc != 0) {
        fprintf(stderr, "codictate sidecar: cannot start the engine: %s\n", cdt_strerror(rc));
        return CDT_EXIT_FAIL;
    }
    token = cdt_env_str("CODICTATE_SIDECAR_TOKEN", NULL);
    sp.token = token;
    sp.backend = be;
    sp.log = cli->log;
    rc = cdt_sidecar_new(&sp, &s, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "codictate sidecar: %s\n", err);
        be->ops->free(be);
        return CDT_EXIT_FAIL;
    }
    printf("CODICTATE_SIDECAR_PORT=%d\n", cdt_sidecar_port(s));
    fflush(stdout);
    CDT_LOG_I(cli->log, "listening on %s:%d%s", sp.host ? sp.host : "127.0.0.1",
              cdt_sidecar_port(s), sp.token ? " (token required)" : "");
    if (model && cdt_sidecar_load_async(s, model) != 0)
        CDT_LOG_E(cli->log, "cannot queue the load of %s", model);

    watch_parent(cli);
    sigwait(&set, &sig);
    CDT_LOG_I(cli->log, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    cdt_sidecar_free(s);
    be->ops->free(be);
    return CDT_EXIT_OK;

bad_value:
    fprintf(stderr, "codictate sidecar: bad value '%s' (see codictate sidecar --help)\n", optarg);
    return CDT_EXIT_USAGE;
}
