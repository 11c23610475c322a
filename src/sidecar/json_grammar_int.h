/* GBNF grammars for the /v1 API's response_format (json_grammar.c): any JSON object
 * (json_object), or JSON that a schema accepts (json_schema, a subset). The grammars
 * feed llama.cpp's grammar sampler (engine.c); this module needs no llama.h.
 *
 * A model that never chooses to stop (a random-weight one) must still end with
 * JSON that parses: numbers hold at most 15 integer and 15 fraction digits,
 * containers nest at most CDT_JSON_MAX_DEPTH deep (json_object), whitespace between
 * tokens is one space or a newline and up to 20 indentation characters; strings are
 * unbounded in json_object, whose document the engine closes when its token budget
 * runs out (struct cdt_json_scan), and hold at most CDT_JSON_MAX_STRING characters
 * in a schema without a maxLength (a schema's required properties cannot be closed
 * early). Not installed. */
#ifndef CDT_JSON_GRAMMAR_INT_H
#define CDT_JSON_GRAMMAR_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define CDT_JSON_MAX_STRING 1024  /* characters of a schema's string without a maxLength */
#define CDT_JSON_MAX_LENGTH 1024  /* the largest maxLength / maxItems honoured */
#define CDT_JSON_MAX_DEPTH  6     /* nesting of objects and arrays (json_object) */
#define CDT_JSON_MAX_SCHEMA 32    /* nesting of the schema itself */
#define CDT_JSON_MAX_GBNF   65536 /* bytes of a grammar made from a schema */

/* A grammar whose root is any JSON object. Returns 0 and *out (caller frees with
 * free()), or CDT_ENOMEM. */
int cdt__json_grammar_object(char **out);

/* A grammar whose root is JSON the schema accepts. Object properties are written
 * in the schema's order, all of them (a document with every property satisfies
 * "required"); no other properties. Supported: type (one or a list), properties,
 * required, additionalProperties (a schema for a map), items, minItems, maxItems,
 * minLength, maxLength, enum, const, anyOf / oneOf, nullable; minimum and maximum
 * only as far as the grammar keeps numbers within them anyway (non-negative, or
 * the safe-integer range); annotations (title, description, default, examples,
 * $schema, $id, $comment, strict, deprecated, readOnly, writeOnly) are ignored.
 * Anything else ($ref, pattern, format, allOf, not, ...) is refused.
 * Returns 0 and *out (caller frees with free()); CDT_EINVAL with a reason in errmsg
 * (naming the keyword and where it is); CDT_ETOOBIG; CDT_ENOMEM. */
int cdt__json_grammar_schema(const cJSON *schema, char **out, char *errmsg, size_t errcap);

/* A scanner of JSON text as it is generated, for closing it in time: the engine
 * feeds it each token's bytes, and near the end of the token budget asks for the
 * shortest text that completes the document (cdt__json_scan_closing) and forces
 * its tokens. Byte-level (multi-byte UTF-8 only occurs inside strings, where only
 * '"' and '\\' matter, but the grammar takes no '"' until a character's bytes are
 * all there: utf8_left counts those still to come, each maybe a token of its own).
 * Embedded, zero-initialised: expects one JSON value. */
#define CDT_JSON_SCAN_DEPTH 64 /* nesting tracked; deeper text is not closed */

struct cdt_json_scan {
    unsigned char state;             /* enum in json_grammar.c */
    bool key;                        /* the string being read is an object key */
    bool broken;                     /* not JSON, or nested too deep: no closing */
    int hex;                         /* hex digits read of a \u escape */
    int utf8_left;                   /* bytes still to come of a string's character */
    char num_last;                   /* the last character of a number */
    const char *lit_rest;            /* what is left of true / false / null */
    int depth;                       /* open containers */
    char stack[CDT_JSON_SCAN_DEPTH]; /* '{' or '[' per open container */
};

/* Advances the scanner over text[0..len). */
void cdt__json_scan_feed(struct cdt_json_scan *js, const char *text, size_t len);

/* The shortest text that completes the document (""; when it is complete), into
 * out[cap]. Returns its length, or -1 when the scanner cannot tell (broken) or cap
 * is too small. */
int cdt__json_scan_closing(const struct cdt_json_scan *js, char *out, size_t cap);

#endif
