/* Persisted app settings: the models, the refine provider, the user's prompt, the
 * idle timeout, where text goes, the language. Kept in the config directory:
 *
 *   dir = $XDG_CONFIG_HOME/codictate, else ~/.config/codictate (mode 0700)
 *     settings.json   every setting but the API key, plus "version": 1 (mode 0600)
 *     api_key         the OpenAI-compatible API key and a newline (mode 0600)
 *
 * config.json in the same directory (the refine --prompt names, prompts.h) is
 * never read or written here.
 *
 * Both files are replaced atomically (a temp file "<file>.tmp.<pid>", fsync,
 * rename, fsync of the directory): a crash or a failed save leaves the old file.
 * Loading never fails on content: a corrupt file or a bad field gives the default
 * for what is bad and a warning, so the app always starts.
 *
 * Privacy: the API key and the prompt are never logged and never appear in a
 * message; cdt_settings_to_json says whether a key is set, never what it is.
 * Thread-safety: the functions share no state. Saves to one directory must not run
 * in two threads of one process at once (they share the temp file name); the
 * caller serialises them. */
#ifndef CODICTATE_SETTINGS_H
#define CODICTATE_SETTINGS_H

#include "codictate/err.h"
#include "codictate/transcribe.h"

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_SETTINGS_VERSION      1            /* "version" written to settings.json */
#define CDT_SETTINGS_PATH_MAX     4096         /* the config dir, bytes */
#define CDT_SETTINGS_MAX_BYTES    (256 * 1024) /* settings.json read cap (over: corrupt), bytes */
#define CDT_SETTINGS_IDLE_DEFAULT 120          /* idle_timeout_s default, s */

/* The allowed idle_timeout_s values, s (-1 never, 0 immediately), as an array
 * initialiser: `static const int v[] = CDT_SETTINGS_IDLE_CHOICES;`. */
/* clang-format off */
#define CDT_SETTINGS_IDLE_CHOICES {-1, 0, 120, 300, 600, 900, 3600}
/* clang-format on */

/* Where refinement runs. */
enum cdt_provider_kind {
    CDT_PROVIDER_LOCAL,  /* "local": the local LLM (the default) */
    CDT_PROVIDER_OPENAI, /* "openai": an OpenAI-compatible HTTP endpoint */
};

/* What happens to the delivered text. */
enum cdt_output_mode {
    CDT_OUTPUT_TYPE, /* "type": typed into the focused window */
    CDT_OUTPUT_COPY, /* "copy": put on the clipboard */
    CDT_OUTPUT_NONE, /* "none": only shown (the default) */
};

/* The settings, a plain value (copy it by assignment). Strings are NUL-terminated;
 * "" means unset. Fill with cdt_settings_defaults(), not by zeroing. */
struct cdt_settings {
    char llm_model[128];             /* catalog id or GGUF path; "" = automatic */
    char whisper_model[128];         /* catalog id or path; "" = automatic */
    enum cdt_provider_kind provider; /* default CDT_PROVIDER_LOCAL */
    char openai_base_url[512];       /* http:// or https:// URL; "" = unset */
    char openai_model[128];          /* model name at the endpoint; "" = unset */
    char api_key[512];               /* printable ASCII, no spaces; "" = none. Lives in
                                      * the api_key file, never in settings.json */
    char prompt[16384];              /* custom refine instructions, UTF-8; "" = the
                                      * built-in cdt_prompt_default() */
    int idle_timeout_s;              /* unload models after this long idle, s: one of
                                      * CDT_SETTINGS_IDLE_CHOICES; default 120 */
    enum cdt_output_mode output;     /* default CDT_OUTPUT_NONE */
    char language[16];               /* "auto" (the default) or 2–3 lowercase letters
                                      * (an ISO 639 code: "en", "de", "yue") */
    /* Words and names the user says, for whisper ("" = none): as
     * cdt_transcribe_params.vocabulary. */
    char vocabulary[CDT_TRANSCRIBE_MAX_VOCABULARY + 1];
    /* true (default): each part of a dictation transcribed while recording gets the
     * text before as whisper's prompt; false: each part alone
     * (cdt_eager_params.no_context). */
    bool whisper_context;
};

/* The defaults: every string "", except language "auto"; provider local; idle
 * timeout 120 s; output none; whisper_context true. */
struct cdt_settings cdt_settings_defaults(void);

/* The default config dir into buf (cap bytes): $XDG_CONFIG_HOME/codictate, else
 * $HOME/.config/codictate (an empty variable counts as unset). Returns 0,
 * CDT_ENOTFOUND (neither is set), CDT_ETOOBIG (buf too small; buf is ""). */
CDT_NODISCARD int cdt_settings_dir(char *buf, size_t cap);

/* Loads the settings from dir (NULL or "": cdt_settings_dir()). *out is always
 * filled, with the defaults at least, so a caller may start on any return.
 * Missing files give the defaults. Returns 0 when the files could be read (or do
 * not exist); content problems still return 0 but leave a warning in errmsg
 * (non-empty; may be NULL): settings.json that is not a JSON object or is over
 * CDT_SETTINGS_MAX_BYTES (all defaults), a field of the wrong type or out of range
 * (that field's default), an api_key file that is not a valid key (no key).
 * Unknown fields, and "api_key" in settings.json, are ignored. Errors, with the
 * reason in errmsg naming the file: CDT_ENOTFOUND (no dir given and neither
 * XDG_CONFIG_HOME nor HOME set), CDT_ETOOBIG (dir over CDT_SETTINGS_PATH_MAX),
 * CDT_EPERM, CDT_EIO (a file exists but cannot be read, or is not a regular file),
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_settings_load(const char *dir, struct cdt_settings *out, char *errmsg,
                                    size_t errcap);

/* Saves s (borrowed) to dir (NULL or "": cdt_settings_dir()), creating it (mode
 * 0700, parents too) when missing: settings.json is replaced atomically; the
 * api_key file is replaced when s->api_key differs from it, removed when
 * s->api_key is "". Both files get mode 0600. Returns 0, or with the reason in
 * errmsg (may be NULL) naming the file: CDT_EINVAL (s holds a value that
 * cdt_settings_apply_json would refuse; nothing written), CDT_ENOTFOUND (no dir),
 * CDT_ETOOBIG, CDT_ENOSPACE (disk or quota full), CDT_EPERM, CDT_EIO (also: dir or
 * a parent, or a file's name, is taken by something else), CDT_ENOMEM. On failure the file being
 * written keeps its old contents and no temp file remains; settings.json is
 * written first, so a failure on the key file can follow a saved settings.json. */
CDT_NODISCARD int cdt_settings_save(const char *dir, const struct cdt_settings *s, char *errmsg,
                                    size_t errcap);

/* Applies a partial update (a JSON object, borrowed) to *s, as PUT/PATCH of the
 * HTTP API does. Fields, each optional (unknown fields are ignored):
 *   llm_model, whisper_model, openai_model  string (< 128 bytes, UTF-8, no control
 *                                           characters) or null (= "")
 *   provider         "local" | "openai"
 *   openai_base_url  null, "" or an http:// / https:// URL (< 512 bytes)
 *   api_key          string (< 512 bytes after trimming surrounding whitespace,
 *                    printable ASCII without spaces); "" clears the key
 *   prompt           string (< 16384 bytes, UTF-8) or null (= "", the default)
 *   idle_timeout_s   one of CDT_SETTINGS_IDLE_CHOICES
 *   output           "type" | "copy" | "none"
 *   language         "auto" or 2–3 lowercase ASCII letters
 * Everything is checked before anything is applied. Returns 0, CDT_EINVAL (patch
 * is not an object, or a field's value is bad: errmsg names the field and what it
 * must be; *s is unchanged), CDT_ENOMEM (*s unchanged). */
CDT_NODISCARD int cdt_settings_apply_json(struct cdt_settings *s, const cJSON *patch, char *errmsg,
                                          size_t errcap);

/* The settings in the HTTP API's shape: llm_model, whisper_model, provider,
 * openai_base_url, openai_model, api_key_set (bool; the key itself never),
 * prompt, default_prompt (cdt_prompt_default()), idle_timeout_s, output, language.
 * Unset strings are null. Returns a new object (caller frees with cJSON_Delete),
 * or NULL when out of memory. */
cJSON *cdt_settings_to_json(const struct cdt_settings *s);

/* "local", "openai"; "unknown" for a value not in the enum. Static string. */
const char *cdt_settings_provider_name(enum cdt_provider_kind p);

/* Parses "local" / "openai" (exactly) into *out. Returns 0 or CDT_EINVAL (NULL or
 * anything else; *out unchanged). */
CDT_NODISCARD int cdt_settings_provider_parse(const char *name, enum cdt_provider_kind *out);

/* "type", "copy", "none"; "unknown" for a value not in the enum. Static string. */
const char *cdt_settings_output_name(enum cdt_output_mode o);

/* Parses "type" / "copy" / "none" (exactly) into *out. Returns 0 or CDT_EINVAL
 * (*out unchanged). */
CDT_NODISCARD int cdt_settings_output_parse(const char *name, enum cdt_output_mode *out);

/* True when s is one of CDT_SETTINGS_IDLE_CHOICES. */
bool cdt_settings_idle_timeout_valid(int s);

/* True when lang is "auto" or 2–3 lowercase ASCII letters. */
bool cdt_settings_language_valid(const char *lang);

#ifdef __cplusplus
}
#endif
#endif
