/* `codictate status`: what the app (`codictate serve`) and its sidecar are doing. */
#include "args.h"
#include "cli.h"
#include "codictate/appclient.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void status_usage(FILE *out)
{
    fprintf(out, "usage: codictate status [--json]\n"
                 "\n"
                 "Shows whether the app (`codictate serve`) runs, its URL, the sidecar and the\n"
                 "loaded model, and the dictation in progress.\n"
                 "\n"
                 "  --json      print the app's status object (GET /api/status)\n"
                 "  -h, --help  this help\n"
                 "\n"
                 "exit status: 0 the app runs, 1 it does not, 2 usage error\n");
}

static const char *str(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);

    if (path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, path1);

    if (path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int cdt_cmd_status(struct cdt_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_client_response r = {0};
    bool json = false;
    char err[512];
    cJSON *o;
    int ch, port;

    (void)cli;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'j') {
            json = true;
        } else if (ch == 'h') {
            status_usage(stdout);
            return CDT_EXIT_OK;
        } else {
            status_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "codictate status: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }
    port = cdt_appclient_find();
    if (port == 0) {
        if (json)
            puts("{\"running\": false}");
        else
            printf("app: not running (start it with `codictate serve`)\n");
        return CDT_EXIT_FAIL;
    }
    if (cdt_appclient_call(port, "GET", "/api/status", NULL, 5000, &r, err, sizeof(err)) != 0 ||
        r.status != 200 || !(o = cJSON_Parse(r.body))) {
        fprintf(stderr, "codictate status: the app at port %d did not answer: %s\n", port,
                r.status ? "bad reply" : err);
        free(r.body);
        return CDT_EXIT_FAIL;
    }
    free(r.body);
    if (json) {
        cJSON_AddTrueToObject(o, "running");
        return cdt_cli_print_json(o);
    }
    printf("app:       running, http://127.0.0.1:%d/ (pid %.0f, version %s)\n", port,
           num(o, "pid", NULL), str(o, "version", NULL) ? str(o, "version", NULL) : "?");
    if (num(o, "sidecar", "pid") > 0)
        printf("sidecar:   running (pid %.0f, port %.0f)\n", num(o, "sidecar", "pid"),
               num(o, "sidecar", "port"));
    else
        printf("sidecar:   stopped\n");
    if (str(o, "sidecar", "model"))
        printf("model:     %s (%s)\n", str(o, "sidecar", "model"),
               str(o, "sidecar", "model_state") ? str(o, "sidecar", "model_state") : "?");
    else
        printf("model:     none loaded\n");
    printf("dictation: %s", str(o, "dictation", "state") ? str(o, "dictation", "state") : "?");
    if (str(o, "dictation", "state") && strcmp(str(o, "dictation", "state"), "recording") == 0)
        printf(" (%.0f s of %.0f s)", num(o, "dictation", "elapsed_s"),
               num(o, "dictation", "limit_s"));
    printf("\n");
    cJSON_Delete(o);
    return CDT_EXIT_OK;
}
