/* The deterministic cleanup pass of the refinement pipeline (DESIGN.md "Refinement
 * pipeline", step 5): what can be fixed in a transcript without a model, and the
 * whole refinement when no model is installed.
 *
 * It is table-driven and conservative: a word is changed only when a rule is sure.
 * The rules, in order:
 *
 * - Whitespace: runs of spaces and tabs become one space; line breaks are kept (at
 *   most one blank line); leading and trailing whitespace goes.
 * - Language gate: everything below applies only to text judged English: more
 *   English function words ("the", "and", "you", …) than twice the function words
 *   of other languages (German, French, Spanish, Portuguese, Italian, Dutch), or
 *   neither kind in an ASCII-only text. Other text only gets the whitespace rule.
 * - Stray punctuation: a lone ",", ".", "?", "!", ":" or ";" token is attached to
 *   the word before it ("hello , world" → "hello, world").
 * - Fillers: um, uh, uhm, er, erm, ah, hm/hmm (and stretched spellings: umm, uhh,
 *   hmmm, ahh), whole words, any case, with their own commas. "er" and "ah" need
 *   positive English evidence (German "er", …). A filler's sentence end moves to the
 *   word before it ("go, um." → "go."); when a filler sits between two commas the
 *   first comma goes too, unless the word before it opens its sentence ("I think,
 *   uh, we" → "I think we"; "Yes, um, I agree" → "Yes, I agree"). "uh-huh",
 *   "like", "so", "you know" are never removed.
 * - Spoken punctuation and layout: "comma", "period", "full stop", "question mark",
 *   "exclamation mark"/"exclamation point", "colon", "semicolon" attach their mark to
 *   the word before; "new line" / "new paragraph" break the text. They are taken
 *   only when used as commands: never at the start of the text; never right after a
 *   determiner, possessive, preposition or a word like "add"/"put"/"type" ("the
 *   period", "put a comma", "my colon", "in period 3"); "period" also looks up to
 *   three words back within its phrase for a determiner ("a long period", "the trial
 *   period"), and is a noun before "of" or a number ("period of time"); a few next
 *   words mark a noun ("colon cancer", "comma separated", "new line items"). A
 *   punctuation command after a word that already ends its sentence is left as a
 *   word ("No. Period.").
 * - Stutters: a repeated function word from a table (I, the, a, and, to, we, …:
 *   words whose doubling is not grammatical; never "that that", "had had", "very
 *   very", "no no") keeps one copy ("I I I think" → "I think"); fragments that are
 *   proper prefixes of the next word go when they are marked with a hyphen ("fu-
 *   fuzzy", "wh-what"), or form a chain of two or more ("f fu fuzzy"), or are a
 *   vowel-less fragment of two letters or more ("th the"). Fragments that are
 *   common short words ("an analysis", "in inside") are never removed.
 * - "i" (and "i'm", "i've", "i'll", "i'd") becomes "I".
 * - Sentence capitalisation: the first word of the text, of each sentence (after
 *   ".", "?" or "!", not after an abbreviation such as "e.g." or "Dr.", an initial or
 *   an ellipsis), of each spoken new line/paragraph and after a blank line gets a
 *   capital, when it is an all-lowercase ASCII word (never "iPhone", URLs, numbers).
 *
 * Pure functions; thread-safe. */
#ifndef CODICTATE_CLEANUP_H
#define CODICTATE_CLEANUP_H

#include "codictate/err.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_CLEANUP_MAX_TEXT (4 * 1024 * 1024) /* longest input, bytes */

/* Cleans `text` (UTF-8; bytes ≥ 0x80 count as letters, invalid sequences are
 * copied as they are). Returns 0 and *out (caller frees with free()), CDT_EINVAL
 * (NULL argument), CDT_ETOOBIG (text over CDT_CLEANUP_MAX_TEXT), CDT_ENOMEM. On
 * failure *out is NULL. */
CDT_NODISCARD int cdt_cleanup_text(const char *text, char **out);

/* True when the language gate above judges `text` English (so the word rules
 * apply). */
bool cdt_cleanup_is_english(const char *text);

#ifdef __cplusplus
}
#endif
#endif
