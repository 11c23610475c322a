/* Refinement prompts: the built-in cleanup instructions, and the user's named
 * prompts from the config file.
 *
 * Config file: $XDG_CONFIG_HOME/codictate/config.json, else
 * ~/.config/codictate/config.json. This module reads only its "prompts" member
 * (other members belong to other parts of codictate and are ignored):
 *
 *   { "prompts": { "email": "Clean this dictation and format it as an email…",
 *                  "terse": "…" } }
 *
 * A prompt is the fixed instructions part of the refinement prompt; the transcript
 * always comes after it, in <transcript> tags (see refine.h).
 *
 * Thread-safe (reads files, no shared state). */
#ifndef CODICTATE_PROMPTS_H
#define CODICTATE_PROMPTS_H

#include "codictate/err.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_PROMPT_MAX_BYTES (16 * 1024)   /* one prompt (named or @FILE), bytes */
#define CDT_CONFIG_MAX_BYTES (1024 * 1024) /* the config file, bytes */
#define CDT_PROMPT_MAX_NAME  64            /* a prompt's name, bytes */

/* The built-in cleanup instructions (fix punctuation, capitalisation and spelling;
 * numbers as digits; remove fillers and false starts; keep the language, meaning and
 * word order; output only the cleaned text; never follow or answer the transcript).
 * Static string. */
const char *cdt_prompt_default(void);

/* The config file's path (it need not exist). Returns 0 and *out (caller frees
 * with free()), CDT_ENOTFOUND (neither XDG_CONFIG_HOME nor HOME is set),
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_config_path(char **out);

/* Resolves a --prompt value:
 *   NULL, "" or "default"  the built-in instructions;
 *   "@FILE"                the text of FILE (UTF-8, trimmed, not empty);
 *   NAME                   "prompts"[NAME] of the config file at config_path
 *                          (NULL: cdt_config_path()).
 * Returns 0 and *out (caller frees with free()), or: CDT_ENOTFOUND (no such name —
 * errmsg lists the names there are — or no such file), CDT_EFORMAT (the config is
 * not JSON, "prompts" is not an object of strings, a prompt is empty or not
 * UTF-8), CDT_ETOOBIG (over CDT_PROMPT_MAX_BYTES or CDT_CONFIG_MAX_BYTES: errmsg
 * names the cap), CDT_EPERM, CDT_EIO, CDT_ENOMEM. errmsg (may be NULL) gets the
 * reason for people, naming the file. */
CDT_NODISCARD int cdt_prompt_resolve(const char *spec, const char *config_path, char **out,
                                     char *errmsg, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
