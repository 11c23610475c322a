/* Text helpers shared by the sidecar and the refinement pipeline: cleaning what a
 * model generated, and UTF-8 checks. Pure functions; thread-safe. */
#ifndef CODICTATE_TEXT_H
#define CODICTATE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Cleans generated text as the seed does: removes <think>…</think> blocks (an
 * unclosed "<think>" drops the rest; a lone "</think>" drops what precedes it);
 * when "Output:" appears keeps the first paragraph after it; when "Text:" appears
 * more than once cuts at the second; trims whitespace. Returns a new string the
 * caller frees with free(), or NULL when out of memory. */
char *cdt_text_clean_response(const char *text);

/* Part of cdt_text_clean_response's first step: removes closed <think>…</think>
 * blocks, and what precedes a lone "</think>" (reasoning whose opening tag was in
 * the prompt); nothing else (an unclosed "<think>" stays, and so does what
 * follows it). Returns a new string the caller frees with free(), or NULL when
 * out of memory. */
char *cdt_text_strip_think_blocks(const char *text);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF). */
bool cdt_utf8_valid(const char *s, size_t len);

/* The UTF-8 character at s[0..avail): its length (1..4); 0 when s[0] starts no
 * valid character (overlongs, surrogates and code points above U+10FFFF are not);
 * -1 when it is a valid start that avail cuts short. */
int cdt_utf8_char(const char *s, size_t avail);

/* A copy of s[0..len) that is valid UTF-8: bytes that start no character become
 * U+FFFD. With tail NULL a character cut short at the end is replaced too; else it
 * is left out and *tail gets its length (the caller keeps those bytes for the next
 * piece of a stream). Caller frees; NULL when out of memory. */
char *cdt_utf8_repair(const char *s, size_t len, size_t *tail);

/* One piece of a stream as valid UTF-8: carry[0..*carry_len) (the end of the piece
 * before, a character it cut short) then piece[0..len) through cdt_utf8_repair; a
 * character cut short at the end goes to the carry for the next piece. Caller
 * frees; NULL when out of memory (the carry then is emptied). */
char *cdt_utf8_carry(char carry[4], size_t *carry_len, const char *piece, size_t len);

/* A copy of s safe to print on a terminal: C0 control characters (but newline when
 * keep_newlines), DEL and the C1 controls (U+0080..U+009F, e.g. the one-byte CSI)
 * become "\xNN" / "\u00NN", so stored text or a request path cannot move the
 * cursor, retitle the window or hide what follows. Caller frees; NULL when out of
 * memory. */
char *cdt_text_escape_controls(const char *s, bool keep_newlines);

/* The same into out[0..cap): as many whole escapes as fit, NUL-terminated when cap
 * > 0 (out may be NULL with cap 0). Returns the length of the whole escaped text
 * (without the NUL): the result was cut when it is >= cap. */
size_t cdt_text_escape_controls_to(const char *s, bool keep_newlines, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
