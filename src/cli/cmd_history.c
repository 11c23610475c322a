/* `codictate history [--json] [-n N] [--clear]`: past dictations, newest first,
 * from the data dir's history.jsonl (see include/codictate/history.h). Plain
 * output is one block per dictation: a header line (local time, status, audio
 * length, model, id) and the delivered text indented below it; --json prints an
 * array of objects with every field. Corrupt lines are skipped with a warning. */
#include "args.h"
#include "cli.h"
#include "codictate/history.h"
#include "codictate/refine.h"

#include "codictate/json.h"
#include "codictate/text.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CDT_HISTORY_CLI_MAX_LIMIT 1000000000L /* largest -n */

static void history_usage(FILE *out)
{
    fprintf(out, "usage: codictate history [--json] [-n N] [--clear]\n"
                 "\n"
                 "Lists past dictations, newest first: time, status, audio length, model,\n"
                 "then the delivered text (or the transcript, or why it failed).\n"
                 "The history lives in $CODICTATE_DATA_DIR, else $XDG_DATA_HOME/codictate,\n"
                 "else ~/.local/share/codictate (history.jsonl and recordings/).\n"
                 "\n"
                 "options:\n"
                 "  -n, --limit N   only the newest N dictations\n"
                 "  --json          print a JSON array of objects with every field\n"
                 "  --clear         delete the history and all saved recordings\n"
                 "  -h, --help      this help\n"
                 "\n"
                 "exit status: 0 ok (also when the history is empty), 1 failure, 2 usage error\n");
}

/* "2026-11-25 23:45:01" in local time. */
static void local_time(int64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    if (!localtime_r(&secs, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)ms);
}

/* "2026-11-25T23:45:01.123Z". */
static void duration(double s, char *out, size_t cap)
{
    if (!(s > 0))
        snprintf(out, cap, "-");
    else if (s < 60)
        snprintf(out, cap, "%.1f s", s);
    else
        snprintf(out, cap, "%d:%02d", (int)(s / 60), (int)s % 60);
}

/* Prints text with every line indented. */
static void indented(const char *prefix, const char *text)
{
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);

        printf("    %s%.*s\n", prefix, (int)n, p);
        prefix = "";
        p += n + (nl ? 1 : 0);
    }
}

static const char *status_colour(const char *status)
{
    if (!status)
        return "";
    if (strcmp(status, "done") == 0)
        return "\033[32m";
    if (strcmp(status, "failed") == 0)
        return "\033[31m";
    return "\033[33m";
}

/* A blank transcript: "refined" without a model call, nothing to report. Entries
 * written before "reason_code" existed only have the text, which was always the
 * reason's message then. */
static bool empty_input(const struct cdt_history_entry *e)
{
    enum cdt_refine_reason why;

    if (cdt_refine_reason_from_name(e->reason_code, &why))
        return why == CDT_REFINE_EMPTY_INPUT;
    return !e->reason_code && e->fallback_reason &&
           strcmp(e->fallback_reason, cdt_refine_reason_message(CDT_REFINE_EMPTY_INPUT)) == 0;
}

/* A history entry with every string made safe for the terminal (stored text is
 * data: an escape sequence in it must not reach the terminal). */
static bool escape_entry(const struct cdt_history_entry *in, struct cdt_history_entry *out)
{
    char *const *src[] = {&in->status, &in->model,           &in->refined,
                          &in->raw,    &in->fallback_reason, &in->error};
    char **dst[] = {&out->status, &out->model,           &out->refined,
                    &out->raw,    &out->fallback_reason, &out->error};
    char *id = cdt_text_escape_controls(in->id, false);

    memset(out, 0, sizeof(*out));
    if (!id)
        return false;
    snprintf(out->id, sizeof(out->id), "%s", id);
    free(id);
    out->time_ms = in->time_ms;
    out->audio_seconds = in->audio_seconds;
    for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
        if (*src[i] && !(*dst[i] = cdt_text_escape_controls(*src[i], true)))
            return false;
    /* reason_code stays as stored: empty_input compares it with the static names. */
    out->reason_code = in->reason_code ? strdup(in->reason_code) : NULL;
    return !in->reason_code || out->reason_code;
}

static void print_plain(const struct cdt_history_entry *v, size_t n)
{
    bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");

    for (size_t i = 0; i < n; i++) {
        struct cdt_history_entry safe, *e = &safe;
        const char *status;
        char when[64], len[32];

        if (!escape_entry(&v[i], &safe)) {
            cdt_history_entry_cleanup(&safe);
            fprintf(stderr, "codictate history: out of memory\n");
            return;
        }
        status = e->status ? e->status : "?";
        local_time(e->time_ms, when, sizeof(when));
        duration(e->audio_seconds, len, sizeof(len));
        if (i)
            putchar('\n');
        printf("%s%s%s  %s%s%s  %s  %s  %s%s%s\n", colour ? "\033[1m" : "", when,
               colour ? "\033[22m" : "", colour ? status_colour(e->status) : "", status,
               colour ? "\033[0m" : "", len, e->model ? e->model : "no LLM",
               colour ? "\033[2m" : "", e->id, colour ? "\033[0m" : "");
        if (e->refined && e->refined[0])
            indented("", e->refined);
        else if (e->raw && e->raw[0])
            indented("", e->raw);
        else if (!e->error)
            indented("", e->refined || e->raw ? "(no speech)" : "(no transcript)");
        if (e->error)
            indented("error: ", e->error);
        else if (e->fallback_reason && !empty_input(e))
            printf("    (LLM output not used: %s)\n", e->fallback_reason);
        cdt_history_entry_cleanup(&safe);
    }
}

static int print_json(const struct cdt_history_entry *v, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    char *text;

    if (!arr)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cdt_json_history_entry(&v[i]);

        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            goto oom;
        }
    }
    text = n ? cJSON_Print(arr) : strdup("[]");
    cJSON_Delete(arr);
    if (!text)
        goto oom;
    puts(text);
    free(text);
    return CDT_EXIT_OK;
oom:
    fprintf(stderr, "codictate history: out of memory\n");
    return CDT_EXIT_FAIL;
}

int cdt_cmd_history(struct cdt_cli *cli, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"limit", required_argument, NULL, 'n'},
        {"clear", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_history_params hp = cdt_history_default_params();
    struct cdt_history *h = NULL;
    struct cdt_history_entry *v = NULL;
    size_t n = 0, skipped = 0;
    long limit = -1;
    bool json = false, clear = false;
    char err[1024];
    int ch, rc;

    while ((ch = getopt_long(argc, argv, "hn:", lopts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            json = true;
            break;
        case 'n':
            if (!cdt_arg_int(optarg, 1, CDT_HISTORY_CLI_MAX_LIMIT, &limit)) {
                fprintf(stderr, "codictate history: -n needs a count of dictations (1..%ld)\n",
                        CDT_HISTORY_CLI_MAX_LIMIT);
                return CDT_EXIT_USAGE;
            }
            break;
        case 'c':
            clear = true;
            break;
        case 'h':
            history_usage(stdout);
            return CDT_EXIT_OK;
        default:
            history_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "codictate history: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }
    if (clear && (json || limit >= 0)) {
        fprintf(stderr, "codictate history: --clear takes no other option\n");
        return CDT_EXIT_USAGE;
    }

    hp.log = cli->log;
    hp.errmsg = err;
    hp.errcap = sizeof(err);
    if (cdt_history_new(&hp, &h) != 0) {
        fprintf(stderr, "codictate history: %s\n", err);
        return CDT_EXIT_FAIL;
    }
    if (cdt_history_list(h, &v, &n, &skipped) != 0) {
        fprintf(stderr, "codictate history: %s\n", cdt_history_errmsg(h));
        cdt_history_free(h);
        return CDT_EXIT_FAIL;
    }
    if (skipped)
        fprintf(stderr,
                "codictate history: warning: skipped %zu corrupt line%s in %s/history.jsonl\n",
                skipped, skipped == 1 ? "" : "s", cdt_history_dir(h));
    if (clear) {
        if (cdt_history_clear(h) != 0) {
            fprintf(stderr, "codictate history: %s\n", cdt_history_errmsg(h));
            rc = CDT_EXIT_FAIL;
        } else {
            fprintf(stderr, "codictate history: cleared %zu dictation%s and the recordings in %s\n",
                    n, n == 1 ? "" : "s", cdt_history_dir(h));
            rc = CDT_EXIT_OK;
        }
    } else {
        size_t shown = limit >= 0 && (size_t)limit < n ? (size_t)limit : n;

        if (n == 0 && !json)
            fprintf(stderr, "no dictations yet\n");
        if (json)
            rc = print_json(v, shown);
        else {
            print_plain(v, shown);
            rc = CDT_EXIT_OK;
        }
    }
    cdt_history_entries_free(v, n);
    cdt_history_free(h);
    return rc;
}
