/* The model catalog: which models codictate knows, where their files come from
 * (a Hugging Face repo at a pinned revision) and what they must look like (size,
 * sha256), so the downloader can fetch and verify them and the manager can list
 * and recommend them.
 *
 * The built-in catalog is catalog/catalog.json compiled into the binary; the
 * environment variable CODICTATE_CATALOG=<file> replaces it with a file of the
 * same schema (see cdt_catalog_load_default).
 *
 * Schema (version 1). Unknown fields are errors (they are usually typos); keys
 * starting with "_" are ignored, for comments. Strings are UTF-8 without control
 * characters.
 *
 *   { "version": 1,                               required, the integer 1
 *     "models": [ {                               required, 1..CDT_CATALOG_MAX_MODELS
 *       "id": "qwen3_base_1.7b_v1",               required; [A-Za-z0-9._-], first char a
 *                                                 letter or digit, ≤ CDT_CATALOG_MAX_ID
 *       "aliases": ["qwen3_base_1.7b"],           optional; same form as ids. No two ids
 *                                                 or aliases in a catalog are equal
 *       "kind": "llm",                            required: "llm", "whisper" or "vad"
 *       "name": "Qwen 3 Base 1.7B",               required, for people
 *       "best_for": "machines with 8 GB or less", optional, for people
 *       "ram_mb": 2500,                           optional, memory in use when loaded,
 *                                                 MiB, an estimate; 0/absent: unknown
 *       "ram_tier": "le8",                        optional, llm only: the recommended
 *                                                 model for that RAM tier ("le8",
 *                                                 "9to16", "gt16"); one model per tier
 *       "thinking": "hybrid",                     optional, llm only: "hybrid" (thinks
 *                                                 unless told not to), "never", "always"
 *       "languages": ["en"],                      optional: language codes, or "multi"
 *                                                 for a model of many languages
 *       "license": "apache-2.0",                  optional, short license name
 *       "license_url": "https://…",               optional, https URL of the terms
 *       "gated_terms": true,                      optional (default false): the user must
 *                                                 accept the terms at license_url before
 *                                                 the app downloads it (Gemma). Needs
 *                                                 license_url
 *       "files": [ {                              required, 1..CDT_CATALOG_MAX_FILES
 *         "name": "Qwen3-1.7B-Q4_K_M.gguf",       required: path in the repo, relative,
 *                                                 '/'-separated, no "." or ".." parts
 *         "size": 1282439264,                     required, bytes (integer ≤ 2^53);
 *                                                 0: unknown
 *         "sha256": "d2387ca2…" } ],              optional: 64 hex digits; ""/absent:
 *                                                 unknown
 *       "sources": [ {                            required, 1..CDT_CATALOG_MAX_SOURCES,
 *                                                 in order of preference
 *         "type": "huggingface",                  required, the only type so far
 *         "repo": "ggml-org/Qwen3-1.7B-GGUF",     required: "owner/name" or "name"
 *         "revision": "daeb8e2d…" } ] } ] }       optional (default "main"): commit,
 *                                                 branch or tag; a commit is best
 *
 * A loaded catalog is immutable: any number of threads may read it at once. */
#ifndef CODICTATE_CATALOG_H
#define CODICTATE_CATALOG_H

#include "codictate/err.h"
#include "codictate/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on what a catalog may hold (it can come from a file the user points at).
 * Over a cap, loading fails with CDT_ETOOBIG and a message naming the cap. */
#define CDT_CATALOG_MAX_BYTES     (4 * 1024 * 1024) /* catalog JSON, bytes */
#define CDT_CATALOG_MAX_MODELS    1024              /* models per catalog */
#define CDT_CATALOG_MAX_ALIASES   16                /* aliases per model */
#define CDT_CATALOG_MAX_FILES     256               /* files per model */
#define CDT_CATALOG_MAX_SOURCES   8                 /* sources per model */
#define CDT_CATALOG_MAX_LANGUAGES 256               /* languages per model */
#define CDT_CATALOG_MAX_ID        64                /* id or alias, bytes */
#define CDT_CATALOG_MAX_STRING    512               /* name, best_for, license, URL, bytes */
#define CDT_CATALOG_MAX_PATH      255               /* file name in the repo, bytes */
#define CDT_CATALOG_MAX_REPO      96                /* Hugging Face repo id, bytes */
#define CDT_CATALOG_MAX_REVISION  255               /* revision, bytes */

enum cdt_model_kind {
    CDT_MODEL_LLM = 0,     /* a GGUF for llama.cpp: refines transcripts */
    CDT_MODEL_WHISPER = 1, /* a ggml model for whisper.cpp: transcribes */
    CDT_MODEL_VAD = 2,     /* a ggml voice activity model for whisper.cpp */
};

enum cdt_thinking {
    CDT_THINKING_UNSPECIFIED = 0, /* the catalog does not say (or not an LLM) */
    CDT_THINKING_HYBRID = 1,      /* thinks unless told not to (Qwen3: empty think block) */
    CDT_THINKING_NEVER = 2,       /* never thinks (Qwen3 4B Instruct 2507) */
    CDT_THINKING_ALWAYS = 3,      /* always thinks */
};

enum cdt_source_type {
    CDT_SOURCE_HUGGINGFACE = 0, /* {endpoint}/{repo}/resolve/{revision}/{file} */
    CDT_SOURCE_BUILTIN = 1,     /* shipped with codictate: <share dir>/models/{file}
                                 * (cdt_share_dir); repo and revision are "" */
};

/* All strings and arrays below are borrowed from the catalog: valid until
 * cdt_catalog_free. Strings are never NULL ("" when absent); an array whose count
 * is 0 is NULL. */

struct cdt_catalog_file {
    const char *name;   /* path inside the repo: relative, '/'-separated, no "." or ".." */
    uint64_t size;      /* bytes; 0: unknown */
    const char *sha256; /* 64 lowercase hex digits; "": unknown */
};

struct cdt_catalog_source {
    enum cdt_source_type type;
    const char *repo;     /* "owner/name" (or "name") */
    const char *revision; /* commit hash, branch or tag; "main" when the catalog gave none */
};

struct cdt_catalog_model {
    const char *id;             /* canonical id, e.g. "qwen3_base_1.7b_v1" */
    const char *const *aliases; /* n_aliases other names, e.g. "qwen3_base_1.7b" */
    size_t n_aliases;
    enum cdt_model_kind kind;
    const char *name;             /* display name */
    const char *best_for;         /* what it is good for, for people; may be "" */
    uint32_t ram_mb;              /* memory when loaded, MiB, estimate; 0: unknown */
    bool has_ram_tier;            /* recommended for ram_tier (LLMs only) */
    enum cdt_ram_tier ram_tier;   /* meaningful only when has_ram_tier */
    enum cdt_thinking thinking;   /* LLMs: whether it produces <think> blocks */
    const char *const *languages; /* n_languages codes ("en") or "multi" */
    size_t n_languages;
    const char *license;     /* short name ("apache-2.0", "gemma", "mit"); may be "" */
    const char *license_url; /* https URL of the license terms; may be "" */
    bool gated_terms;        /* ask the user to accept license_url before downloading */
    bool fixed_prompt;       /* LLMs: trained on codictate's default instructions alone,
                              * so rules added to them (the vocabulary) are not sent */
    const struct cdt_catalog_file *files; /* n_files ≥ 1 */
    size_t n_files;
    const struct cdt_catalog_source *sources; /* n_sources ≥ 1, preferred first */
    size_t n_sources;
};

struct cdt_catalog;

/* The built-in catalog/catalog.json (generated by cmake/embed.cmake): len bytes,
 * followed by a NUL that len does not count. */
extern const unsigned char cdt_catalog_builtin_json[];
extern const size_t cdt_catalog_builtin_json_len;

/* Parses and validates a catalog from json[0..len) (need not be NUL-terminated).
 * Returns 0 and *out (caller frees with cdt_catalog_free), or CDT_EINVAL (NULL
 * json or out), CDT_ETOOBIG (len over CDT_CATALOG_MAX_BYTES, or another cap),
 * CDT_EFORMAT (not JSON: errmsg gives line and column; or not a valid catalog:
 * errmsg names the model and field), CDT_ENOMEM. On failure *out is NULL.
 * errmsg (may be NULL) gets errcap bytes at most of the reason, for people.
 * Thread-safe (cJSON also records a failed parse in a global of its own, which
 * nothing here reads). */
CDT_NODISCARD int cdt_catalog_load(const char *json, size_t len, struct cdt_catalog **out,
                                   char *errmsg, size_t errcap);

/* As cdt_catalog_load, reading the file at path. Besides its codes: CDT_ENOTFOUND
 * (no such file), CDT_EPERM (no permission), CDT_EIO (unreadable, a directory),
 * CDT_ETOOBIG (file over CDT_CATALOG_MAX_BYTES). Every errmsg starts with
 * "<path>: ". cdt_catalog_origin() of the result is the path. */
CDT_NODISCARD int cdt_catalog_load_file(const char *path, struct cdt_catalog **out, char *errmsg,
                                        size_t errcap);

/* The catalog to use: the file named by CODICTATE_CATALOG when that is set and
 * not empty (as cdt_catalog_load_file; errmsg then starts with
 * "CODICTATE_CATALOG=<path>: "), else the built-in one. Not thread-safe against
 * setenv(). */
CDT_NODISCARD int cdt_catalog_load_default(struct cdt_catalog **out, char *errmsg, size_t errcap);

/* Frees the catalog and every string and model borrowed from it. NULL: no-op. */
void cdt_catalog_free(struct cdt_catalog *cat);

/* Where it came from: "built-in" or the file's path. Borrowed like the models. */
const char *cdt_catalog_origin(const struct cdt_catalog *cat);

/* Number of models, in catalog order. */
size_t cdt_catalog_count(const struct cdt_catalog *cat);

/* Model i (0-based, catalog order), or NULL when i ≥ count. Borrowed until
 * cdt_catalog_free. */
const struct cdt_catalog_model *cdt_catalog_model_at(const struct cdt_catalog *cat, size_t i);

/* True when a model argument names a file rather than a catalog id or alias: it
 * contains a '/', ends in ".gguf" or ".bin", or a file of that name exists here.
 * Ids and aliases have none of these. The one rule every front end and provider
 * uses. */
bool cdt_catalog_is_path(const char *arg);

/* The model whose id or one of whose aliases is exactly id_or_alias (case
 * matters), or NULL. Borrowed until cdt_catalog_free. */
const struct cdt_catalog_model *cdt_catalog_find(const struct cdt_catalog *cat,
                                                 const char *id_or_alias);

/* The LLM recommended for a RAM tier (the one whose ram_tier is tier), or NULL
 * when the catalog names none. Borrowed until cdt_catalog_free. */
const struct cdt_catalog_model *cdt_catalog_recommended(const struct cdt_catalog *cat,
                                                        enum cdt_ram_tier tier);

/* Sum of the model's file sizes, bytes (files of unknown size count 0; cannot
 * overflow within the caps). */
uint64_t cdt_catalog_model_size(const struct cdt_catalog_model *m);

/* "llm", "whisper", "vad" ("?" for a value outside the enum). Static. */
const char *cdt_model_kind_name(enum cdt_model_kind kind);

/* "", "hybrid", "never", "always". Static. */
const char *cdt_thinking_name(enum cdt_thinking thinking);

#ifdef __cplusplus
}
#endif
#endif
