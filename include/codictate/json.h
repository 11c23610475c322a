/* The JSON shapes of the application layer, shared by the CLI's --json output and
 * the app's HTTP API so the two never drift apart. Every function returns a new
 * object (caller frees with cJSON_Delete) or NULL when out of memory, or adds to
 * the object it is given. Transcript text appears in these objects, never in logs. */
#ifndef CODICTATE_JSON_H
#define CODICTATE_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cdt_refine_result;
struct cdt_transcript;
struct cdt_history_entry;
struct cdt_catalog_model;
struct cdt_models;

/* Parses a request body strictly: one JSON value and nothing after it but
 * whitespace; no raw control characters inside strings; no \u0000 (it would cut a
 * C string short). Returns the value (cJSON_Delete), or NULL with *err_off (may be
 * NULL) the byte offset of the problem. cJSON alone accepts all three. */
cJSON *cdt_json_parse_strict(const char *text, size_t len, size_t *err_off);

/* Adds "key": s, or "key": null when s is NULL. False when out of memory. */
bool cdt_json_add_str(cJSON *o, const char *key, const char *s);

/* Sets refined, fallback_reason, reason_code, model, provider and the refine timings
 * (deterministic_ms, llm_ms, refine_total_ms, prompt_tokens, generated_tokens, in
 * o's "timings", created when missing) from r; replaces those keys when present. */
void cdt_json_add_refine(cJSON *o, const struct cdt_refine_result *r, const char *provider);

/* {raw, refined, fallback_reason, reason_code, model, provider, timings{...}} of a
 * refine result: what `refine --json` prints and POST /api/refine answers. */
cJSON *cdt_json_refine(const struct cdt_refine_result *r, const char *provider);

/* The reverse of cdt_json_refine (what the app's POST /api/refine answers): fills
 * *out (free with cdt_refine_result_cleanup; `cleaned` is set to `refined` when the
 * model's text was not used). Returns 0, CDT_EFORMAT (no string "refined" or an
 * unknown reason_code), CDT_ENOMEM. */
int cdt_json_parse_refine(const cJSON *o, struct cdt_refine_result *out);

/* {raw, refined: null, fallback_reason: null, segments, language, audio_seconds,
 * whisper_model, vad_model, timings} of a transcript. */
cJSON *cdt_json_transcript(const struct cdt_transcript *tr, const char *whisper_model,
                           const char *vad_model);

/* A history entry: id, time_ms, time (UTC ISO 8601), status, source, audio_path,
 * audio_seconds, raw, refined, fallback_reason, reason_code, error, model,
 * whisper_model, timings (object or null). */
cJSON *cdt_json_history_entry(const struct cdt_history_entry *e);

/* A catalog model joined with its state on this machine: id, aliases, name, kind,
 * size_bytes, ram_mb, best_for, state, detail (when any), recommended, path (or
 * null), license, license_url (or null), gated_terms, bytes_done, bytes_total. */
cJSON *cdt_json_model(struct cdt_models *models, const struct cdt_catalog_model *cm,
                      bool recommended);

#ifdef __cplusplus
}
#endif
#endif
