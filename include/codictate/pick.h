/* Model choice (application layer): which model file a front end uses when a person
 * names one (a catalog id or alias, or a file path) or names none (the first
 * downloaded model of the catalog); whether an argument is a path is
 * cdt_catalog_is_path's rule.
 * Library code: nothing is printed; problems come back as an error code and a
 * message for people, notes (e.g. why VAD is off) in the result. Thread-safe as
 * long as the catalog and models objects passed in are. */
#ifndef CODICTATE_PICK_H
#define CODICTATE_PICK_H

#include "codictate/catalog.h"
#include "codictate/err.h"
#include "codictate/log.h"
#include "codictate/models.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_PICK_PATH_CAP 4096 /* bytes of a picked model path */
#define CDT_PICK_NOTE_CAP 512  /* bytes of a note */

struct cdt_pick_params {
    const char *whisper_arg;     /* --whisper-model: id, alias or path; NULL: first downloaded */
    const char *vad_arg;         /* --vad-model: id, alias or path; NULL: the catalog's when
                                  * downloaded, else VAD off */
    bool no_vad;                 /* VAD off whatever is downloaded */
    struct cdt_catalog *catalog; /* borrowed; NULL: the default catalog, loaded on need */
    struct cdt_models *models;   /* borrowed; NULL: a view of the default cache, on need */
    struct cdt_log *log;         /* borrowed; may be NULL */
    bool app;                    /* the caller is the app: a missing model's message points
                                  * to its Models page, not to `codictate models pull` */
};

struct cdt_pick_params cdt_pick_default_params(void);

/* The whisper and VAD models of a transcription. */
struct cdt_pick_whisper {
    char model[CDT_PICK_PATH_CAP];     /* the whisper model file */
    char vad_model[CDT_PICK_PATH_CAP]; /* the Silero VAD model file, when vad */
    bool vad;
    char note[CDT_PICK_NOTE_CAP]; /* for people, "" when none: why VAD is off */
};

/* Picks the whisper model (the argument, else the first downloaded whisper model in
 * catalog order) and the VAD model (the argument; else, unless no_vad, the first
 * downloaded VAD model, with a note when none is). Paths are taken as given (the
 * caller opens them). Returns 0, or CDT_ENOTFOUND (unknown id, nothing downloaded),
 * CDT_EINVAL (an id of another kind), CDT_ESTATE (not downloaded), CDT_EFORMAT (the
 * catalog is unusable), with a message in errmsg naming the flag and what to do (with
 * p->app, for nothing downloaded: the app's Models page instead of the CLI). */
CDT_NODISCARD int cdt_pick_whisper(const struct cdt_pick_params *p, struct cdt_pick_whisper *out,
                                   char *errmsg, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
