/* Model choice (see pick.h). The catalog and the models view are loaded only when a
 * catalog id must be resolved or a default found, so a path needs neither. */
#include "codictate/pick.h"

#include <stdio.h>
#include <string.h>

struct ctx {
    const struct cdt_pick_params *p;
    struct cdt_catalog *cat;     /* p->catalog or ours */
    struct cdt_models *models;   /* p->models or ours */
    struct cdt_catalog *own_cat; /* freed at the end */
    struct cdt_models *own_models;
    char caterr[1024]; /* why the catalog could not be loaded */
    bool tried;
};

struct cdt_pick_params cdt_pick_default_params(void)
{
    struct cdt_pick_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

/* Loads the catalog and the models view on first use. */
static bool need_models(struct ctx *c)
{
    struct cdt_models_params mp = cdt_models_default_params();

    if (c->tried)
        return c->models != NULL;
    c->tried = true;
    c->cat = c->p->catalog;
    if (!c->cat) {
        if (cdt_catalog_load_default(&c->own_cat, c->caterr, sizeof(c->caterr)) != 0)
            return false;
        c->cat = c->own_cat;
    }
    c->models = c->p->models;
    if (!c->models) {
        mp.catalog = c->cat;
        mp.log = c->p->log;
        if (cdt_models_new(&mp, &c->own_models) != 0) {
            snprintf(c->caterr, sizeof(c->caterr), "cannot read the model cache");
            return false;
        }
        c->models = c->own_models;
    }
    return true;
}

/* Resolves "FLAG ID|PATH" to a file path. */
static int resolve(struct ctx *c, const char *flag, const char *arg, enum cdt_model_kind kind,
                   char *path, size_t cap, char *errmsg, size_t errcap)
{
    const struct cdt_catalog_model *cm;

    if (cdt_catalog_is_path(arg)) {
        snprintf(path, cap, "%s", arg);
        return 0;
    }
    if (!need_models(c)) {
        snprintf(errmsg, errcap, "%s %s: no such file, and the catalog is unusable: %s", flag, arg,
                 c->caterr);
        return CDT_EFORMAT;
    }
    cm = cdt_catalog_find(c->cat, arg);
    if (!cm) {
        snprintf(errmsg, errcap,
                 "%s %s: no such file, and no catalog model of that name "
                 "(see codictate models list)",
                 flag, arg);
        return CDT_ENOTFOUND;
    }
    if (cm->kind != kind) {
        snprintf(errmsg, errcap, "%s %s: that is a %s model, not a %s model", flag, arg,
                 cdt_model_kind_name(cm->kind), cdt_model_kind_name(kind));
        return CDT_EINVAL;
    }
    if (cdt_models_path(c->models, cm->id, path, cap) != 0) {
        snprintf(errmsg, errcap,
                 "%s: the %s model %s is not downloaded: run `codictate models pull %s`", flag,
                 cdt_model_kind_name(kind), cm->id, cm->id);
        return CDT_ESTATE;
    }
    return 0;
}

/* The first downloaded model of a kind in catalog order, or NULL; *first_id gets
 * the catalog's first model of that kind (for advice), or NULL. */
static const struct cdt_catalog_model *first_downloaded(struct ctx *c, enum cdt_model_kind kind,
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

static int pick(struct ctx *c, struct cdt_pick_whisper *w, char *errmsg, size_t errcap)
{
    const struct cdt_pick_params *p = c->p;
    const char *first_id;
    int rc;

    if (p->whisper_arg) {
        if ((rc = resolve(c, "--whisper-model", p->whisper_arg, CDT_MODEL_WHISPER, w->model,
                          sizeof(w->model), errmsg, errcap)) != 0)
            return rc;
    } else if (!first_downloaded(c, CDT_MODEL_WHISPER, w->model, sizeof(w->model), &first_id)) {
        if (c->caterr[0]) {
            snprintf(errmsg, errcap, "no --whisper-model given and the catalog is unusable: %s",
                     c->caterr);
            return CDT_EFORMAT;
        }
        if (p->app)
            snprintf(errmsg, errcap,
                     "no speech recognition (whisper) model is downloaded yet: download one "
                     "on the Models page");
        else
            snprintf(errmsg, errcap,
                     "no whisper model is downloaded: run `codictate models pull %s`, or "
                     "pass --whisper-model PATH",
                     first_id ? first_id : "ID");
        return CDT_ENOTFOUND;
    }

    /* The VAD model: asked for, the catalog's when downloaded, else off. */
    if (p->vad_arg) {
        if ((rc = resolve(c, "--vad-model", p->vad_arg, CDT_MODEL_VAD, w->vad_model,
                          sizeof(w->vad_model), errmsg, errcap)) != 0)
            return rc;
        w->vad = true;
    } else if (!p->no_vad) {
        if (first_downloaded(c, CDT_MODEL_VAD, w->vad_model, sizeof(w->vad_model), &first_id))
            w->vad = true;
        else if (first_id)
            snprintf(w->note, sizeof(w->note),
                     "VAD is off: the Silero VAD model is not downloaded (`codictate models "
                     "pull %s` to skip silence)",
                     first_id);
        else
            snprintf(w->note, sizeof(w->note), "VAD is off: %.400s",
                     c->caterr[0] ? c->caterr : "the catalog has no VAD model");
    }
    return 0;
}

int cdt_pick_whisper(const struct cdt_pick_params *p, struct cdt_pick_whisper *out, char *errmsg,
                     size_t errcap)
{
    struct ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    memset(out, 0, sizeof(*out));
    if (errcap)
        errmsg[0] = '\0';
    c.p = p;
    rc = pick(&c, out, errmsg, errcap);
    cdt_models_free(c.own_models);
    cdt_catalog_free(c.own_cat);
    return rc;
}
