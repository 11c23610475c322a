/* The CLI's shared context and verb entry points (one cmd_<verb>.c each). */
#ifndef CDT_CLI_H
#define CDT_CLI_H

#include "codictate/log.h"

#define CDT_EXIT_OK    0
#define CDT_EXIT_FAIL  1
#define CDT_EXIT_USAGE 2

struct cdt_cli {
    struct cdt_log *log; /* owned by main() */
    int verbosity;       /* number of -v given */
};

#include <cjson/cJSON.h>
#include <stdbool.h>

struct cdt_refine_result;

/* The refinement options `refine` and `transcribe --refine` share. */
#define CDT_CLI_API_KEY_MAX 1024 /* longest --api-key, bytes */

struct cdt_cli_refine_opts {
    const char *model, *provider, *base_url, *api_key, *openai_model, *prompt;
    const char *vocabulary; /* checked (cdt_transcribe_vocabulary_valid); NULL: none */
    /* --api-key's value is copied here and blanked in argv (other users of the
     * machine read /proc/PID/cmdline); api_key_arg is where it was in argv. */
    char api_key_buf[CDT_CLI_API_KEY_MAX];
    const char *api_key_arg;
    long timeout_ms; /* 0: the default */
    bool json;
    bool no_app; /* refine in this process even when the app runs (eval measures it) */
    struct cdt_cli_live *live; /* shows the model's text as it comes (live.c); NULL: not */
};

/* Text shown while it is generated, on a terminal (live.c): cdt_cli_live_piece is an
 * on_delta callback (user_data: the struct); cdt_cli_live_finish erases what was
 * shown and prints `final` and a newline in its place (nothing shown, or not on: just
 * prints it). */
struct cdt_cli_live {
    bool on;    /* stdout is a terminal and the text is for people */
    bool shown; /* something is on screen */
    int rows;   /* rows below the first one that the shown text took */
    int col;    /* characters on the last row */
    int cols;   /* the terminal's width */
};
void cdt_cli_live_init(struct cdt_cli_live *l, bool on);
void cdt_cli_live_piece(const char *text, size_t len, void *user_data);
void cdt_cli_live_finish(struct cdt_cli_live *l, const char *final);

/* Their getopt_long entries (values above any verb's own) and parser, so every
 * verb spells and checks them alike: put CDT_CLI_REFINE_LONGOPTS in the option
 * table and give each getopt result to cdt_cli_refine_opt first. */
enum {
    CDT_CLI_OPT_MODEL = 1000,
    CDT_CLI_OPT_PROVIDER,
    CDT_CLI_OPT_BASE_URL,
    CDT_CLI_OPT_API_KEY,
    CDT_CLI_OPT_OPENAI_MODEL,
    CDT_CLI_OPT_PROMPT,
    CDT_CLI_OPT_TIMEOUT,
    CDT_CLI_OPT_VOCABULARY,
};
/* clang-format off */
#define CDT_CLI_REFINE_LONGOPTS                                          \
    {"model", required_argument, NULL, CDT_CLI_OPT_MODEL},               \
    {"provider", required_argument, NULL, CDT_CLI_OPT_PROVIDER},         \
    {"base-url", required_argument, NULL, CDT_CLI_OPT_BASE_URL},         \
    {"api-key", required_argument, NULL, CDT_CLI_OPT_API_KEY},           \
    {"openai-model", required_argument, NULL, CDT_CLI_OPT_OPENAI_MODEL}, \
    {"prompt", required_argument, NULL, CDT_CLI_OPT_PROMPT},             \
    {"timeout-ms", required_argument, NULL, CDT_CLI_OPT_TIMEOUT},        \
    {"vocabulary", required_argument, NULL, CDT_CLI_OPT_VOCABULARY}
/* clang-format on */
/* Stores getopt's result `ch` (argument `arg`, borrowed from argv) in o when it is
 * one of those options. Returns 1 (taken), 0 (not one of them), or -1 (a bad
 * value: said why, prefixed with `who`; a usage error). */
int cdt_cli_refine_opt(struct cdt_cli_refine_opts *o, int ch, const char *arg, const char *who);

/* Refines `text` with the options (validated here: usage errors print a message
 * prefixed with `who` and return CDT_EXIT_USAGE). On CDT_EXIT_OK *res holds the
 * result (free with cdt_refine_result_cleanup) and *provider "local" or "openai";
 * a fallback reason has been printed on stderr. */
int cdt_cli_refine_text(struct cdt_cli *cli, const struct cdt_cli_refine_opts *o, const char *who,
                        const char *text, struct cdt_refine_result *res, const char **provider);

/* The same as an object that lives across calls, for `dictate`: made once (usage
 * errors print and return CDT_EXIT_USAGE; CDT_EXIT_FAIL out of memory), preloaded
 * in the background while recording, run on the transcript, freed (which stops a
 * sidecar it started). */
struct cdt_cli_refiner;
int cdt_cli_refiner_new(struct cdt_cli *cli, const struct cdt_cli_refine_opts *o, const char *who,
                        struct cdt_cli_refiner **out);
/* cdt_refine_preload on the refiner's params; thread-safe against run. */
int cdt_cli_refiner_preload(struct cdt_cli_refiner *r, char *errmsg, size_t errcap);
/* "local" or "openai". */
const char *cdt_cli_refiner_provider(const struct cdt_cli_refiner *r);
/* CDT_EXIT_OK with *res (a fallback reason printed on stderr), or CDT_EXIT_FAIL
 * (out of memory). */
int cdt_cli_refiner_run(struct cdt_cli_refiner *r, const char *text, struct cdt_refine_result *res);
void cdt_cli_refiner_free(struct cdt_cli_refiner *r);
/* The library's refiner inside (borrowed), and the model to suggest after "no model". */
struct cdt_refiner *cdt_cli_refiner_lib(struct cdt_cli_refiner *r);
const char *cdt_cli_refiner_suggested(const struct cdt_cli_refiner *r);

/* Prints a fallback reason (and, for "no model", what to pull: suggested, may be
 * NULL) on stderr, prefixed with who. Nothing for a model's output or empty input. */
void cdt_cli_refine_report(const char *who, const struct cdt_refine_result *res,
                           const char *suggested);

/* The whisper and VAD models of `transcribe` and `dictate` (cdt_pick_whisper, see
 * codictate/pick.h), from --whisper-model / --vad-model / --no-vad (NULL / false
 * when not given). Problems are printed with the `who` prefix, the note (VAD off)
 * as "note: …". Returns CDT_EXIT_OK or CDT_EXIT_FAIL. */
struct cdt_pick_whisper;
int cdt_cli_whisper_pick(struct cdt_cli *cli, const char *who, const char *model_arg,
                         const char *vad_arg, bool no_vad, struct cdt_pick_whisper *w);

/* Prints root (takes ownership; NULL: out of memory) to stdout. CDT_EXIT_*. */
int cdt_cli_print_json(cJSON *root);

/* Each verb: argv[0] is the verb name; returns a CDT_EXIT_* code. */
int cdt_cmd_version(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_sidecar(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_models(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_refine(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_transcribe(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_dictate(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_history(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_serve(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_status(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_eval(struct cdt_cli *cli, int argc, char **argv);

#endif
