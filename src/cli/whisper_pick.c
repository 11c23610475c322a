/* `transcribe` and `dictate`: which whisper and VAD models to use. The choice is the
 * library's (pick.h); this front end prints its error with the verb's prefix and its
 * note. */
#include "cli.h"
#include "codictate/pick.h"

#include <stdio.h>

int cdt_cli_whisper_pick(struct cdt_cli *cli, const char *who, const char *model_arg,
                         const char *vad_arg, bool no_vad, struct cdt_pick_whisper *w)
{
    struct cdt_pick_params p = cdt_pick_default_params();
    char err[2048];

    p.whisper_arg = model_arg;
    p.vad_arg = vad_arg;
    p.no_vad = no_vad;
    p.log = cli->log;
    if (cdt_pick_whisper(&p, w, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", who, err);
        return CDT_EXIT_FAIL;
    }
    if (w->note[0])
        fprintf(stderr, "note: %s\n", w->note);
    return CDT_EXIT_OK;
}
