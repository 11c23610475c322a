/* codictate: one binary, one verb per job. main() parses the global options, sets
 * up logging, routes the engines' logs into it, and dispatches to cmd_<verb>.c.
 * Only this file and the verbs decide exit codes: 0 ok, 1 failure, 2 usage. */
#include "cli.h"
#include "codictate/transcribe.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ggml.h>

struct verb {
    const char *name;
    const char *summary;
    int (*run)(struct cdt_cli *cli, int argc, char **argv); /* NULL: not built yet */
};

static const struct verb verbs[] = {
    {"version", "show versions, CPU features, RAM, RAM tier and its limits", cdt_cmd_version},
    {"sidecar", "run the LLM inference server the app talks to", cdt_cmd_sidecar},
    {"serve", "run the app: web UI and JSON API on 127.0.0.1:11380", cdt_cmd_serve},
    {"models", "list, pull, remove and verify models", cdt_cmd_models},
    {"refine", "clean up a transcript with the local LLM", cdt_cmd_refine},
    {"eval", "measure the refine path's quality on a case set", cdt_cmd_eval},
    {"transcribe", "transcribe an audio file with whisper.cpp", cdt_cmd_transcribe},
    {"dictate", "record, transcribe and refine", cdt_cmd_dictate},
    {"status", "show what the app and sidecar are doing", cdt_cmd_status},
    {"history", "show past dictations", cdt_cmd_history},
};

#define N_VERBS            (sizeof(verbs) / sizeof(verbs[0]))
#define CDT_GOMP_SPINCOUNT "3000" /* libgomp spins before a barrier waiter sleeps */

static void usage(FILE *out)
{
    fprintf(out, "usage: codictate [-v] <verb> [options]\n"
                 "\n"
                 "Private, offline dictation refinement: speech -> whisper -> local LLM -> "
                 "text.\n"
                 "\n"
                 "verbs:\n");
    for (size_t i = 0; i < N_VERBS; i++)
        fprintf(out, "  %-11s %s%s\n", verbs[i].name, verbs[i].summary,
                verbs[i].run ? "" : " (not in this build yet)");
    fprintf(out, "\n"
                 "options:\n"
                 "  -v, --verbose   more log output (repeat for engine logs)\n"
                 "  -h, --help      this help; `codictate <verb> --help` for a verb\n"
                 "      --version   same as `codictate version`\n"
                 "\n"
                 "exit status: 0 ok, 1 failure, 2 usage error\n");
}

/* ggml's CPU backend runs each graph in an OpenMP team whose barriers, with libgomp's
 * default spin count (300,000), spin for milliseconds. When anything else wants the
 * same cores (the browser, a build, or our own whisper and LLM threads during a
 * dictation), a spinning waiter holds the CPU its partner needs: on a Xeon a refine
 * that takes 46 ms on two quiet cores took 19 s beside two busy processes, and 151 ms
 * with OMP_WAIT_POLICY=PASSIVE. But sleeping at once halves decode on quiet cores at
 * the real shapes (Qwen3 0.6B on a 2-core EPYC VM: 14.5 tokens/s passive vs 27.8
 * spinning). A short spin kept both: GOMP_SPINCOUNT=1000 (spins of libgomp's wait
 * loop, not a time) gave 27.8 quiet, 11.8 beside two busy processes (as passive;
 * bench/RESULTS.md, "OpenMP wait policy"). 3000 since 2026-12-06: a refine that follows
 * an idle moment, as every real one does, found the threads asleep at each barrier
 * with 1000 (the built-in model: 97-106 ms; 72-90 with 3000, 71 spinning long), and
 * beside busy processes 3000 kept the median (p90 209-266 ms against 179-191; 10000:
 * 450-500); bench/RESULTS.md, "A longer OpenMP spin". libgomp reads the variable once, when it is
 * loaded, so it is set here and the binary runs itself again; the sidecar and any other child
 * inherit it. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone. */
static void bounded_openmp_spin(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("GOMP_SPINCOUNT", CDT_GOMP_SPINCOUNT, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* No /proc: run on with the default spin; children still get the short one. */
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_log_params lp = cdt_log_default_params();
    struct cdt_cli cli = {0};
    const struct verb *verb = NULL;
    char *version_argv[] = {"version", NULL};
    int c, rc, show_version = 0;

    bounded_openmp_spin(argv);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            cli.verbosity++;
            break;
        case 'h':
            usage(stdout);
            return CDT_EXIT_OK;
        case 'V':
            show_version = 1;
            break;
        default:
            fprintf(stderr, "codictate: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (show_version) {
        verb = &verbs[0];
        argc = 1;
        argv = version_argv;
        optind = 0;
    } else if (optind >= argc) {
        usage(stderr);
        return CDT_EXIT_USAGE;
    } else {
        for (size_t i = 0; i < N_VERBS; i++)
            if (strcmp(argv[optind], verbs[i].name) == 0)
                verb = &verbs[i];
        if (!verb) {
            fprintf(stderr, "codictate: unknown verb '%s' (see codictate --help)\n", argv[optind]);
            return CDT_EXIT_USAGE;
        }
        argc -= optind;
        argv += optind;
        optind = 0; /* the verb parses its own options from argv[0] */
    }
    if (!verb->run) {
        fprintf(stderr, "codictate: '%s' is not in this build yet\n", verb->name);
        return CDT_EXIT_FAIL;
    }

    lp.level = cli.verbosity >= 2 ? CDT_LOG_DEBUG + (cli.verbosity - 2)
               : cli.verbosity    ? CDT_LOG_INFO
                                  : CDT_LOG_WARN;
    if (cdt_log_new(&lp, &cli.log) != 0) {
        fprintf(stderr, "codictate: out of memory\n");
        return CDT_EXIT_FAIL;
    }
    ggml_log_set(cdt_log_ggml, cli.log);
    cdt_transcribe_log_set(cli.log); /* whisper.cpp's log */
    rc = verb->run(&cli, argc, argv);
    cdt_transcribe_log_set(NULL);
    ggml_log_set(NULL, NULL);
    cdt_log_free(cli.log);
    return rc;
}
