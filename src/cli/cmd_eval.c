/* `codictate eval`: the refine path's quality on a case set (codictate/eval.h). Parses
 * the options, loads the set, runs it through a refiner made as `refine` makes one
 * (but always in this process: latency is measured here), and prints a table (one
 * row per category, deterministic vs model) or --json. */
#include "args.h"
#include "cli.h"
#include "codictate/eval.h"
#include "codictate/text.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WHO "codictate eval"

enum {
    OPT_CASES = 2000,
    OPT_CATEGORY,
    OPT_LIMIT,
    OPT_VERBOSE,
};

struct eval_opts {
    struct cdt_cli_refine_opts refine;
    const char *cases, *category;
    char cases_path[PATH_MAX]; /* the set read: --cases or the shipped one */
    long limit;
    bool verbose;
};

static void eval_usage(FILE *out)
{
    fprintf(out, "usage: codictate eval [options]\n"
                 "\n"
                 "Runs a case set through the whole refine path (deterministic pass, prompt,\n"
                 "model, guards) and reports, per category, for the deterministic pass alone\n"
                 "(\"det\") and for what is delivered (\"model\"): word error rate (case- and\n"
                 "punctuation-sensitive, and not), punctuation F1, content words kept, the share\n"
                 "changed (pass-through categories), fallbacks, guard trips, answers instead of\n"
                 "cleanups and latency. Cases are JSON Lines: {\"id\", \"category\", \"input\",\n"
                 "\"reference\", \"source\"}.\n"
                 "\n"
                 "options:\n"
                 "  --cases PATH         a case file, or a directory of *.jsonl files (default:\n"
                 "                       the shipped set, eval/cases)\n"
                 "  --category NAME      only this category\n"
                 "  --limit N            the first N cases of each category\n"
                 "  --json               the full numbers as JSON\n"
                 "  --verbose            also list the cases whose delivered text is not the\n"
                 "                       reference (with --json: \"failures\")\n"
                 "  --model ID|PATH, --provider local|openai, --base-url URL, --api-key KEY,\n"
                 "  --openai-model NAME, --prompt NAME|@FILE, --timeout-ms N, --vocabulary WORDS\n"
                 "                       the refiner, as for `codictate refine` (never through\n"
                 "                       the running app)\n"
                 "  -h, --help           this help\n"
                 "\n"
                 "exit status: 0 ok, 1 failure (an unreadable or malformed case file), 2 usage\n"
                 "error\n");
}

/* Parses argv into o. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct eval_opts *o)
{
    static const struct option lopts[] = {
        CDT_CLI_REFINE_LONGOPTS,
        {"cases", required_argument, NULL, OPT_CASES},
        {"category", required_argument, NULL, OPT_CATEGORY},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, taken;

    while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        if ((taken = cdt_cli_refine_opt(&o->refine, ch, optarg, WHO)) != 0) {
            if (taken < 0)
                return CDT_EXIT_USAGE;
            continue;
        }
        switch (ch) {
        case OPT_CASES:
            o->cases = optarg;
            break;
        case OPT_CATEGORY:
            o->category = optarg;
            break;
        case OPT_LIMIT:
            if (!cdt_arg_int(optarg, 1, CDT_EVAL_MAX_CASES, &o->limit)) {
                fprintf(stderr, WHO ": --limit needs a number of cases (1..%d)\n",
                        CDT_EVAL_MAX_CASES);
                return CDT_EXIT_USAGE;
            }
            break;
        case OPT_VERBOSE:
            o->verbose = true;
            break;
        case 'j':
            o->refine.json = true;
            break;
        case 'h':
            eval_usage(stdout);
            return CDT_EXIT_OK;
        default:
            eval_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, WHO ": unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }
    return -1;
}

/* Loads the set at path (NULL: the shipped one); *used gets the path read. */
static int load_cases(const char *path, struct cdt_eval_set **set, char used[PATH_MAX])
{
    char err[1024];

    if (!path) {
        if (cdt_eval_default_cases(used, PATH_MAX) != 0) {
            fprintf(stderr, WHO ": no case set at %s (give one with --cases PATH)\n", used);
            return CDT_EXIT_FAIL;
        }
    } else {
        snprintf(used, PATH_MAX, "%s", path);
    }
    if (cdt_eval_set_load(used, set, err, sizeof(err)) != 0) {
        fprintf(stderr, WHO ": %s\n", err);
        return CDT_EXIT_FAIL;
    }
    return CDT_EXIT_OK;
}

/* "[12/80] case-id" on a terminal, cleared at the end. */
static void progress(size_t done, size_t total, const struct cdt_eval_case *c, void *user_data)
{
    (void)user_data;
    if (c)
        fprintf(stderr, "\r\033[K[%zu/%zu] %s", done + 1, total, c->id);
    else
        fprintf(stderr, "\r\033[K");
}

/* A ratio in a 6-wide column; "-" when undefined. */
static const char *fmt(double v, char buf[16])
{
    if (isnan(v))
        snprintf(buf, 16, "%6s", "-");
    else
        snprintf(buf, 16, "%6.3f", v);
    return buf;
}

static void print_row(const struct cdt_eval_category *k)
{
    const struct cdt_eval_metrics *d = &k->det.metrics, *m = &k->model.metrics;
    char b[10][16];

    printf("%-16s %5ld  %s %s  %s %s  %s %s  %s %s  %s %s  %5ld %5ld %5ld  %8.1f %8.1f\n", k->name,
           k->cases, fmt(d->wer, b[0]), fmt(m->wer, b[1]), fmt(d->wer_ci, b[2]),
           fmt(m->wer_ci, b[3]), fmt(d->punct_f1, b[4]), fmt(m->punct_f1, b[5]),
           fmt(d->content_kept, b[6]), fmt(m->content_kept, b[7]),
           fmt(k->pass_through ? d->changed : NAN, b[8]),
           fmt(k->pass_through ? m->changed : NAN, b[9]), k->fallbacks, k->guard_trips, k->answered,
           k->model.latency.p50_ms, k->model.latency.p95_ms);
}

/* Prints s, escaped so that a case file cannot drive the terminal. */
static void print_text(const char *label, const char *s)
{
    char *e = cdt_text_escape_controls(s ? s : "", false);

    printf("    %-14s %s\n", label, e ? e : "(out of memory)");
    free(e);
}

static void print_failures(const struct cdt_eval_report *r)
{
    printf("\ncases whose delivered text is not the reference:\n");
    for (size_t i = 0; i < cdt_eval_report_outcomes(r); i++) {
        const struct cdt_eval_outcome *o = cdt_eval_report_outcome(r, i);
        struct cdt_eval_metrics m = cdt_eval_metrics_of(&o->model, 1);

        if (!cdt_eval_outcome_failed(o))
            continue;
        printf("  %s [%s] %s:%ld  %s  WER %.3f\n", o->c->id, o->c->category, o->c->file, o->c->line,
               o->reason == CDT_REFINE_OK ? "model" : cdt_refine_reason_name(o->reason), m.wer);
        print_text("input:", o->c->input);
        print_text("reference:", o->c->reference);
        print_text("deterministic:", o->det_text);
        print_text("model:", o->model_text);
    }
}

static void print_table(const struct cdt_eval_report *r, const struct eval_opts *o,
                        const char *provider)
{
    const char *model = cdt_eval_report_model(r);

    printf("%zu cases from %s; model: %s (%s)\n\n", cdt_eval_report_outcomes(r), o->cases_path,
           model ? model : "none", provider);
    printf("%-24s%-15s%-15s%-15s%-15s%-15s%-19s%s\n", "", "WER", "WER nocase", "punct F1",
           "content kept", "changed", "model output", "model latency");
    printf("%-16s %5s  %6s %6s  %6s %6s  %6s %6s  %6s %6s  %6s %6s  %5s %5s %5s  %8s %8s\n",
           "category", "cases", "det", "model", "det", "model", "det", "model", "det", "model",
           "det", "model", "fallb", "guard", "answ", "p50 ms", "p95 ms");
    for (size_t i = 0; i < cdt_eval_report_count(r); i++)
        print_row(cdt_eval_report_category(r, i));
    print_row(cdt_eval_report_overall(r));
    if (o->verbose)
        print_failures(r);
}

/* Says on stderr what to pull when cases ran without a model. */
static void note_no_model(const struct cdt_eval_report *r, const struct cdt_cli_refiner *ref)
{
    const char *suggested = cdt_cli_refiner_suggested(ref);
    long n = cdt_eval_report_overall(r)->reasons[CDT_REFINE_NO_MODEL];

    if (n > 0)
        fprintf(stderr, WHO ": %ld cases had no model to refine with%s%s\n", n,
                suggested ? "; to add one: codictate models pull " : "",
                suggested ? suggested : "");
}

static int run_eval(struct cdt_cli *cli, const struct eval_opts *o, const struct cdt_eval_set *set)
{
    struct cdt_eval_params p = cdt_eval_default_params();
    struct cdt_eval_report *rep = NULL;
    struct cdt_cli_refiner *ref;
    char err[1024];
    int rc = cdt_cli_refiner_new(cli, &o->refine, WHO, &ref);

    if (rc != CDT_EXIT_OK)
        return rc;
    p.refiner = cdt_cli_refiner_lib(ref);
    p.category = o->category;
    p.limit = o->limit;
    p.keep_texts = o->verbose;
    p.on_progress = isatty(STDERR_FILENO) ? progress : NULL;
    rc = cdt_eval_run(&p, set, &rep, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, WHO ": %s\n", err);
        rc = rc == CDT_ENOTFOUND ? CDT_EXIT_USAGE : CDT_EXIT_FAIL;
    } else if (o->refine.json) {
        cJSON *j = cdt_eval_report_json(rep, o->verbose);

        if (j && (!cJSON_AddStringToObject(j, "provider", cdt_cli_refiner_provider(ref)) ||
                  !cJSON_AddStringToObject(j, "cases_path", o->cases_path))) {
            cJSON_Delete(j);
            j = NULL;
        }
        rc = cdt_cli_print_json(j);
    } else {
        print_table(rep, o, cdt_cli_refiner_provider(ref));
    }
    if (rep)
        note_no_model(rep, ref);
    cdt_eval_report_free(rep);
    cdt_cli_refiner_free(ref);
    return rc;
}

int cdt_cmd_eval(struct cdt_cli *cli, int argc, char **argv)
{
    struct eval_opts o = {0};
    struct cdt_eval_set *set = NULL;
    int rc;

    o.refine.timeout_ms = CDT_REFINE_DEFAULT_TIMEOUT_MS;
    o.refine.no_app = true;
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if ((rc = load_cases(o.cases, &set, o.cases_path)) != CDT_EXIT_OK)
        return rc;
    rc = run_eval(cli, &o, set);
    cdt_eval_set_free(set);
    return rc;
}
