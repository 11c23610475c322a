/* The shared JSON shapes (see json.h). */
#include "codictate/json.h"

#include "codictate/catalog.h"
#include "codictate/err.h"
#include "codictate/history.h"
#include "codictate/models.h"
#include "codictate/refine.h"
#include "codictate/transcribe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The offset of a raw control character in a string, or of a \u0000 escape, or len. */
static size_t bad_string_byte(const char *t, size_t len)
{
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];

        if (!in_str) {
            in_str = c == '"';
            continue;
        }
        if (c == '"') {
            in_str = false;
        } else if (c < 0x20) {
            return i;
        } else if (c == '\\' && i + 1 < len) {
            if (t[i + 1] == 'u' && i + 5 < len && strncmp(t + i + 2, "0000", 4) == 0)
                return i;
            i++; /* the escaped byte */
        }
    }
    return len;
}

cJSON *cdt_json_parse_strict(const char *text, size_t len, size_t *err_off)
{
    const char *end = NULL;
    size_t off, bad;
    cJSON *o;

    if (err_off)
        *err_off = 0;
    if (!text)
        return NULL;
    o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!o) {
        if (err_off)
            *err_off = end && end >= text && (size_t)(end - text) <= len ? (size_t)(end - text) : 0;
        return NULL;
    }
    off = (size_t)(end - text);
    while (off < len &&
           (text[off] == ' ' || text[off] == '\t' || text[off] == '\n' || text[off] == '\r'))
        off++;
    bad = bad_string_byte(text, off);
    if (off < len || bad < off) {
        cJSON_Delete(o);
        if (err_off)
            *err_off = bad < off ? bad : off;
        return NULL;
    }
    return o;
}

bool cdt_json_add_str(cJSON *o, const char *key, const char *s)
{
    return s ? cJSON_AddStringToObject(o, key, s) != NULL : cJSON_AddNullToObject(o, key) != NULL;
}

static double round_to(double v, double unit)
{
    return round(v / unit) * unit;
}

void cdt_json_add_refine(cJSON *o, const struct cdt_refine_result *r, const char *provider)
{
    static const char *const keys[] = {"refined", "fallback_reason", "reason_code", "model",
                                       "provider"};
    cJSON *t;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(o, keys[i]);
    cJSON_AddStringToObject(o, "refined", r->refined ? r->refined : "");
    if (r->reason != CDT_REFINE_OK) {
        cdt_json_add_str(o, "fallback_reason", r->fallback_reason);
        cJSON_AddStringToObject(o, "reason_code", cdt_refine_reason_name(r->reason));
    } else {
        cJSON_AddNullToObject(o, "fallback_reason");
        cJSON_AddNullToObject(o, "reason_code");
    }
    cdt_json_add_str(o, "model", r->model);
    cdt_json_add_str(o, "provider", provider);
    t = cJSON_GetObjectItemCaseSensitive(o, "timings");
    if (!cJSON_IsObject(t))
        t = cJSON_AddObjectToObject(o, "timings");
    if (!t)
        return;
    cJSON_AddNumberToObject(t, "deterministic_ms", r->timings.deterministic_ms);
    cJSON_AddNumberToObject(t, "llm_ms", r->timings.llm_ms);
    cJSON_AddNumberToObject(t, "refine_total_ms", r->timings.total_ms);
    cJSON_AddNumberToObject(t, "prompt_tokens", r->timings.prompt_tokens);
    cJSON_AddNumberToObject(t, "generated_tokens", r->timings.generated_tokens);
    /* A long transcript goes to the model in pieces: each one's time (the first ones). */
    cJSON_AddNumberToObject(t, "pieces", r->timings.pieces);
    {
        int n = r->timings.pieces < CDT_REFINE_PIECES_TIMED ? r->timings.pieces
                                                            : CDT_REFINE_PIECES_TIMED;
        cJSON *a = cJSON_AddArrayToObject(t, "piece_ms");

        for (int i = 0; a && i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(r->timings.piece_ms[i]));
        /* Pieces refined in the background before the recording stopped. */
        cJSON_AddNumberToObject(t, "pieces_ahead", r->timings.pieces_ahead);
        a = cJSON_AddArrayToObject(t, "piece_ahead");
        for (int i = 0; a && i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateBool(r->timings.piece_ahead[i]));
    }
}

cJSON *cdt_json_refine(const struct cdt_refine_result *r, const char *provider)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cdt_json_add_str(o, "raw", r->raw);
    cdt_json_add_refine(o, r, provider);
    cJSON_AddNumberToObject(cJSON_GetObjectItem(o, "timings"), "total_ms", r->timings.total_ms);
    return o;
}

static char *dup_field(const cJSON *o, const char *key, bool *oom)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char *s;

    if (!cJSON_IsString(v))
        return NULL;
    s = strdup(v->valuestring);
    if (!s)
        *oom = true;
    return s;
}

static double num_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* A count of o's (0 when absent, not a whole number, or past a million). */
static int count_field(const cJSON *o, const char *key)
{
    double v = num_field(o, key);

    return v >= 0 && v <= 1e6 && v == floor(v) ? (int)v : 0;
}

int cdt_json_parse_refine(const cJSON *o, struct cdt_refine_result *out)
{
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "reason_code");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "timings");
    bool oom = false;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "refined")))
        return CDT_EFORMAT;
    out->reason = CDT_REFINE_OK;
    if (cJSON_IsString(code) && !cdt_refine_reason_from_name(code->valuestring, &out->reason))
        return CDT_EFORMAT;
    out->raw = dup_field(o, "raw", &oom);
    out->refined = dup_field(o, "refined", &oom);
    out->cleaned = out->reason != CDT_REFINE_OK ? dup_field(o, "refined", &oom) : NULL;
    out->fallback_reason =
        out->reason != CDT_REFINE_OK ? dup_field(o, "fallback_reason", &oom) : NULL;
    if (out->reason != CDT_REFINE_OK && !out->fallback_reason && !oom)
        out->fallback_reason = strdup(cdt_refine_reason_message(out->reason));
    out->model = dup_field(o, "model", &oom);
    out->timings.deterministic_ms = num_field(t, "deterministic_ms");
    out->timings.llm_ms = num_field(t, "llm_ms");
    out->timings.total_ms = num_field(t, "refine_total_ms");
    out->timings.prompt_tokens = (int)num_field(t, "prompt_tokens");
    out->timings.generated_tokens = (int)num_field(t, "generated_tokens");
    /* The pieces (an app's answer to a verb): as cdt_json_refine writes them. */
    out->timings.pieces = count_field(t, "pieces");
    out->timings.pieces_ahead = count_field(t, "pieces_ahead");
    for (int i = 0; i < CDT_REFINE_PIECES_TIMED; i++) {
        const cJSON *ms = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "piece_ms"), i);
        const cJSON *ah = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "piece_ahead"), i);

        out->timings.piece_ms[i] = cJSON_IsNumber(ms) ? ms->valuedouble : 0.0;
        out->timings.piece_ahead[i] = cJSON_IsTrue(ah);
    }
    if (out->timings.pieces_ahead > out->timings.pieces)
        out->timings.pieces = out->timings.pieces_ahead = 0;
    if (oom || (out->reason != CDT_REFINE_OK && !out->fallback_reason)) {
        cdt_refine_result_cleanup(out);
        return CDT_ENOMEM;
    }
    return 0;
}

cJSON *cdt_json_transcript(const struct cdt_transcript *tr, const char *whisper_model,
                           const char *vad_model)
{
    cJSON *root = cJSON_CreateObject(), *segs, *o;

    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "raw", tr->text ? tr->text : "");
    cJSON_AddNullToObject(root, "refined");
    cJSON_AddNullToObject(root, "fallback_reason");
    segs = cJSON_AddArrayToObject(root, "segments");
    for (size_t i = 0; segs && i < tr->n_segments; i++) {
        cJSON *s = cJSON_CreateObject();

        cJSON_AddNumberToObject(s, "start", round_to(tr->segments[i].start, 0.001));
        cJSON_AddNumberToObject(s, "end", round_to(tr->segments[i].end, 0.001));
        cJSON_AddStringToObject(s, "text", tr->segments[i].text);
        cJSON_AddItemToArray(segs, s);
    }
    cdt_json_add_str(root, "language", tr->language[0] ? tr->language : NULL);
    cJSON_AddNumberToObject(root, "audio_seconds", round_to(tr->audio_seconds, 0.001));
    cJSON_AddNumberToObject(root, "window_seconds", round_to(tr->window_seconds, 0.01));
    cdt_json_add_str(root, "whisper_model", whisper_model);
    cdt_json_add_str(root, "vad_model", vad_model);
    o = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(o, "load_ms", round_to(tr->timings.load_ms, 0.01));
    cJSON_AddNumberToObject(o, "audio_ms", round_to(tr->timings.audio_ms, 0.01));
    cJSON_AddNumberToObject(o, "prepare_ms", round_to(tr->timings.prepare_ms, 0.01));
    cJSON_AddNumberToObject(o, "encode_ms", round_to(tr->timings.encode_ms, 0.01));
    cJSON_AddNumberToObject(o, "decode_ms", round_to(tr->timings.decode_ms, 0.01));
    cJSON_AddNumberToObject(o, "total_ms", round_to(tr->timings.total_ms, 0.01));
    return root;
}

static void utc_time(int64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char buf[32];

    if (!gmtime_r(&secs, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        buf[0] = '\0';
    snprintf(out, cap, "%s.%03dZ", buf, (int)(ms % 1000));
}

cJSON *cdt_json_history_entry(const struct cdt_history_entry *e)
{
    cJSON *o = cJSON_CreateObject(), *t = NULL;
    char when[64];

    if (!o)
        return NULL;
    utc_time(e->time_ms, when, sizeof(when));
    if (!cdt_json_add_str(o, "id", e->id) ||
        !cJSON_AddNumberToObject(o, "time_ms", (double)e->time_ms) ||
        !cdt_json_add_str(o, "time", when) || !cdt_json_add_str(o, "status", e->status) ||
        !cdt_json_add_str(o, "source", e->source) ||
        !cdt_json_add_str(o, "audio_path", e->audio_path) ||
        !cJSON_AddNumberToObject(o, "audio_seconds", e->audio_seconds) ||
        !cdt_json_add_str(o, "raw", e->raw) || !cdt_json_add_str(o, "refined", e->refined) ||
        !cdt_json_add_str(o, "fallback_reason", e->fallback_reason) ||
        !cdt_json_add_str(o, "reason_code", e->reason_code) ||
        !cdt_json_add_str(o, "error", e->error) || !cdt_json_add_str(o, "model", e->model) ||
        !cdt_json_add_str(o, "whisper_model", e->whisper_model))
        goto fail;
    if (e->timings_json)
        t = cJSON_Parse(e->timings_json);
    if (t) {
        if (!cJSON_AddItemToObject(o, "timings", t)) {
            cJSON_Delete(t);
            goto fail;
        }
    } else if (!cJSON_AddNullToObject(o, "timings")) {
        goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

cJSON *cdt_json_model(struct cdt_models *models, const struct cdt_catalog_model *cm,
                      bool recommended)
{
    cJSON *o = cJSON_CreateObject(), *a;
    char detail[512], path[4096];
    enum cdt_model_state st = cdt_models_state(models, cm->id, detail, sizeof(detail));

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", cm->id);
    a = cJSON_AddArrayToObject(o, "aliases");
    for (size_t i = 0; a && i < cm->n_aliases; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(cm->aliases[i]));
    cJSON_AddStringToObject(o, "name", cm->name);
    cJSON_AddStringToObject(o, "kind", cdt_model_kind_name(cm->kind));
    cJSON_AddNumberToObject(o, "size_bytes", (double)cdt_catalog_model_size(cm));
    cJSON_AddNumberToObject(o, "ram_mb", cm->ram_mb);
    cJSON_AddStringToObject(o, "best_for", cm->best_for);
    cJSON_AddStringToObject(o, "state", cdt_model_state_name(st));
    if (detail[0])
        cJSON_AddStringToObject(o, "detail", detail);
    cJSON_AddBoolToObject(o, "recommended", recommended);
    cdt_json_add_str(o, "path",
                     cdt_models_path(models, cm->id, path, sizeof(path)) == 0 ? path : NULL);
    cJSON_AddStringToObject(o, "license", cm->license ? cm->license : "");
    cdt_json_add_str(o, "license_url",
                     cm->license_url && cm->license_url[0] ? cm->license_url : NULL);
    cJSON_AddBoolToObject(o, "gated_terms", cm->gated_terms);
    /* Shipped with codictate: never downloaded or removed. */
    cJSON_AddBoolToObject(o, "builtin", cm->sources[0].type == CDT_SOURCE_BUILTIN);
    cJSON_AddNumberToObject(o, "bytes_done", (double)cdt_models_bytes_on_disk(models, cm->id));
    cJSON_AddNumberToObject(o, "bytes_total", (double)cdt_catalog_model_size(cm));
    return o;
}
