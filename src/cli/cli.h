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
struct cdt_cli_refine_opts {
    const char *model, *provider, *base_url, *api_key, *openai_model, *prompt;
    long timeout_ms; /* 0: the default */
    bool json;
};

/* Refines `text` with the options (validated here: usage errors print a message
 * prefixed with `who` and return CDT_EXIT_USAGE). On CDT_EXIT_OK *res holds the
 * result (free with cdt_refine_result_cleanup) and *provider "local" or "openai";
 * a fallback reason has been printed on stderr. */
int cdt_cli_refine_text(struct cdt_cli *cli, const struct cdt_cli_refine_opts *o, const char *who,
                        const char *text, struct cdt_refine_result *res, const char **provider);

/* Adds refined, fallback_reason, model, provider and refine timings to o. */
void cdt_cli_refine_to_json(cJSON *o, const struct cdt_refine_result *r, const char *provider);

/* Each verb: argv[0] is the verb name; returns a CDT_EXIT_* code. */
int cdt_cmd_version(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_sidecar(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_models(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_refine(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_transcribe(struct cdt_cli *cli, int argc, char **argv);

#endif
