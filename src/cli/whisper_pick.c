/* Which whisper and VAD models `transcribe` and `dictate` use: a catalog id or
 * alias (downloaded) or a file path given on the command line, else the first
 * downloaded model of the catalog; the Silero VAD model when it is downloaded,
 * else VAD is off (with a note saying how to turn it on). */
#include "cli.h"
#include "codictate/catalog.h"
#include "codictate/models.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct pick {
    struct cdt_cli *cli;
    const char *who;
    struct cdt_catalog *cat; /* loaded on first need */
    struct cdt_models *models;
    char caterr[1024]; /* why the catalog could not be loaded */
    bool tried;
};

/* Loads the catalog and the models view on first use. */
static bool need_models(struct pick *c)
{
    struct cdt_models_params mp = cdt_models_default_params();

    if (c->tried)
        return c->models != NULL;
    c->tried = true;
    if (cdt_catalog_load_default(&c->cat, c->caterr, sizeof(c->caterr)) != 0)
        return false;
    mp.catalog = c->cat;
    mp.log = c->cli->log;
    if (cdt_models_new(&mp, &c->models) != 0) {
        snprintf(c->caterr, sizeof(c->caterr), "cannot read the model cache");
        return false;
    }
    return true;
}

static bool looks_like_path(const char *arg)
{
    return strchr(arg, '/') != NULL || access(arg, F_OK) == 0;
}

/* Resolves "--flag ID|PATH" to a file path. Returns 0 or an exit code after
 * printing why. */
static int resolve(struct pick *c, const char *flag, const char *arg, enum cdt_model_kind kind,
                   char *path, size_t cap)
{
    const struct cdt_catalog_model *cm;

    if (looks_like_path(arg)) {
        snprintf(path, cap, "%s", arg);
        return 0;
    }
    if (!need_models(c)) {
        fprintf(stderr, "%s: %s %s: no such file, and the catalog is unusable: %s\n", c->who, flag,
                arg, c->caterr);
        return CDT_EXIT_FAIL;
    }
    cm = cdt_catalog_find(c->cat, arg);
    if (!cm) {
        fprintf(stderr,
                "%s: %s %s: no such file, and no catalog model of that name "
                "(see codictate models list)\n",
                c->who, flag, arg);
        return CDT_EXIT_FAIL;
    }
    if (cm->kind != kind) {
        fprintf(stderr, "%s: %s %s: that is a %s model, not a %s model\n", c->who, flag, arg,
                cdt_model_kind_name(cm->kind), cdt_model_kind_name(kind));
        return CDT_EXIT_FAIL;
    }
    if (cdt_models_path(c->models, cm->id, path, cap) != 0) {
        fprintf(stderr,
                "%s: %s: the %s model %s is not downloaded: run `codictate models pull %s`\n",
                c->who, flag, cdt_model_kind_name(kind), cm->id, cm->id);
        return CDT_EXIT_FAIL;
    }
    return 0;
}

/* The first downloaded model of a kind in catalog order, or NULL; *first_id gets
 * the catalog's first model of that kind (for advice), or NULL. */
static const struct cdt_catalog_model *first_downloaded(struct pick *c, enum cdt_model_kind kind,
                                                        char *path, size_t cap,
                                                        const char **first_id)
{
    *first_id = NULL;
    if (!need_models(c))
        return NULL;
    for (size_t i = 0; i < cdt_catalog_count(c->cat); i++) {
        const struct cdt_catalog_model *cm = cdt_catalog_model_at(c->cat, i);

        if (cm->kind != kind)
            continue;
        if (!*first_id)
            *first_id = cm->id;
        if (cdt_models_path(c->models, cm->id, path, cap) == 0)
            return cm;
    }
    return NULL;
}

static int pick(struct pick *c, const char *model_arg, const char *vad_arg, bool no_vad,
                struct cdt_cli_whisper *w)
{
    const char *first_id;
    int rc;

    if (model_arg) {
        if ((rc = resolve(c, "--whisper-model", model_arg, CDT_MODEL_WHISPER, w->model,
                          sizeof(w->model))) != 0)
            return rc;
    } else if (!first_downloaded(c, CDT_MODEL_WHISPER, w->model, sizeof(w->model), &first_id)) {
        if (c->caterr[0])
            fprintf(stderr, "%s: no --whisper-model given and the catalog is unusable: %s\n",
                    c->who, c->caterr);
        else
            fprintf(stderr,
                    "%s: no whisper model is downloaded: run `codictate models pull %s`, or "
                    "pass --whisper-model PATH\n",
                    c->who, first_id ? first_id : "ID");
        return CDT_EXIT_FAIL;
    }

    /* The VAD model: asked for, the catalog's when downloaded, else off. */
    if (vad_arg) {
        if ((rc = resolve(c, "--vad-model", vad_arg, CDT_MODEL_VAD, w->vad_model,
                          sizeof(w->vad_model))) != 0)
            return rc;
        w->vad = true;
    } else if (!no_vad) {
        if (first_downloaded(c, CDT_MODEL_VAD, w->vad_model, sizeof(w->vad_model), &first_id))
            w->vad = true;
        else if (first_id)
            fprintf(stderr,
                    "note: VAD is off: the Silero VAD model is not downloaded (`codictate models "
                    "pull %s` to skip silence)\n",
                    first_id);
        else
            fprintf(stderr, "note: VAD is off: %s\n",
                    c->caterr[0] ? c->caterr : "the catalog has no VAD model");
    }
    return CDT_EXIT_OK;
}

int cdt_cli_whisper_pick(struct cdt_cli *cli, const char *who, const char *model_arg,
                         const char *vad_arg, bool no_vad, struct cdt_cli_whisper *w)
{
    struct pick c;
    int rc;

    memset(&c, 0, sizeof(c));
    memset(w, 0, sizeof(*w));
    c.cli = cli;
    c.who = who;
    rc = pick(&c, model_arg, vad_arg, no_vad, w);
    cdt_models_free(c.models);
    cdt_catalog_free(c.cat);
    return rc;
}
