/* `codictate serve`: the app. The web UI and its JSON API on 127.0.0.1 (default
 * port 11380) until SIGTERM/SIGINT; the model stays loaded between dictations and
 * unloads after the idle timeout of the settings. */
#include "args.h"
#include "cli.h"
#include "codictate/app.h"
#include "codictate/appclient.h"
#include "codictate/log.h"
#include "server.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: codictate serve [options]\n"
            "\n"
            "Runs the app: the web UI and its JSON API on http://127.0.0.1:%d/ (loopback\n"
            "only). It keeps the LLM loaded between dictations and unloads it after the idle\n"
            "timeout (Settings; 2 min by default), records from the default microphone\n"
            "itself (so `codictate dictate --toggle` on a desktop shortcut works with no page\n"
            "open), and serves the model downloads, the history and the settings\n"
            "($XDG_CONFIG_HOME/codictate/settings.json). Stops on SIGTERM or Ctrl-C.\n"
            "As a systemd user service: `make install`, then\n"
            "`systemctl --user enable --now codictate`.\n"
            "\n"
            "  --port N              the port (default %d)\n"
            "  --recording-limit S   stop recordings after S seconds (at most the RAM\n"
            "                        tier's limit: 6 / 8 / 12 min)\n"
            "  --device NAME         the capture source (default: the system's default)\n"
            "  -h, --help            this help\n"
            "\n"
            "exit status: 0 stopped by a signal, 1 could not start (the port in use, ...)\n",
            CDT_APP_PORT, CDT_APP_PORT);
}

int cdt_cmd_serve(struct cdt_cli *cli, int argc, char **argv)
{
    enum { OPT_PORT = 256, OPT_LIMIT, OPT_DEVICE };
    static const struct option opts[] = {
        {"port", required_argument, NULL, OPT_PORT},
        {"recording-limit", required_argument, NULL, OPT_LIMIT},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_app_params ap = cdt_app_default_params();
    struct cdt_app_server *srv = NULL;
    long port = CDT_APP_PORT, limit = 0;
    char err[1024];
    sigset_t set;
    int ch, rc, sig = 0;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_PORT:
            if (!cdt_arg_int(optarg, 1, 65535, &port)) {
                fprintf(stderr, "codictate serve: --port needs 1..65535, not '%s'\n", optarg);
                return CDT_EXIT_USAGE;
            }
            break;
        case OPT_LIMIT:
            if (!cdt_arg_int(optarg, 1, 24L * 3600, &limit)) {
                fprintf(stderr, "codictate serve: --recording-limit needs seconds, not '%s'\n",
                        optarg);
                return CDT_EXIT_USAGE;
            }
            break;
        case OPT_DEVICE:
            ap.device = optarg;
            break;
        case 'h':
            serve_usage(stdout);
            return CDT_EXIT_OK;
        default:
            serve_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "codictate serve: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }

    /* Signals are taken by sigwait below; every thread inherits this mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ap.recording_limit_s = (double)limit;
    ap.log = cli->log;
    rc = cdt_app_server_new(&ap, (int)port, &srv, err, sizeof(err));
    if (rc != 0) {
        if (rc == CDT_EEXISTS)
            fprintf(stderr,
                    "codictate serve: port %ld is in use (is the app already running? "
                    "`codictate status`; or use --port)\n",
                    port);
        else
            fprintf(stderr, "codictate serve: %s\n", err[0] ? err : cdt_strerror(rc));
        return CDT_EXIT_FAIL;
    }
    if (cdt_appclient_publish(cdt_app_server_port(srv)) != 0)
        CDT_LOG_W(cli->log, "serve: cannot record the port for `codictate status`");
    printf("codictate: serving http://127.0.0.1:%d/\n", cdt_app_server_port(srv));
    fflush(stdout);
    sigwait(&set, &sig);
    CDT_LOG_I(cli->log, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    cdt_appclient_unpublish(cdt_app_server_port(srv));
    cdt_app_server_free(srv);
    return CDT_EXIT_OK;
}
