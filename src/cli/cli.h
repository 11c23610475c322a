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

/* Each verb: argv[0] is the verb name; returns a CDT_EXIT_* code. */
int cdt_cmd_version(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_sidecar(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_models(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_refine(struct cdt_cli *cli, int argc, char **argv);
int cdt_cmd_transcribe(struct cdt_cli *cli, int argc, char **argv);

#endif
