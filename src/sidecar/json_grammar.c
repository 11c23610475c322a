/* GBNF grammars for response_format (json_grammar_int.h).
 *
 * A grammar is written rule by rule into one buffer: the shared rules first
 * (whitespace, strings, numbers, and generic values in levels value-1 ..
 * value-CDT_JSON_MAX_DEPTH, each level's containers holding the next level's values,
 * so that nesting is bounded without counting), then one rule per schema node
 * (s0, s1, ...), then root. Every repetition that a model could extend for ever is
 * bounded or offers a way out at each step; see the header for the bounds. */
#include "json_grammar_int.h"

#include "../lib/err_int.h"
#include "codictate/err.h"
#include "codictate/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_SAFE_DIGITS 15   /* digits before and after the point */
#define JSON_NUM_LIMIT   1e15 /* numbers the grammar writes lie strictly within +-this */

struct gctx {
    struct cdt_buf g;
    int n_rules;
    char *errmsg;
    size_t errcap;
};

static int emitf(struct gctx *c, const char *fmt, ...) CDT_PRINTF(2, 3);

static int emitf(struct gctx *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return CDT_EINVAL; /* only short fixed text goes through here */
    if (c->g.len + (size_t)n > CDT_JSON_MAX_GBNF)
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_ETOOBIG,
                               "response_format: the schema makes a grammar over %d bytes",
                               CDT_JSON_MAX_GBNF);
    return cdt_buf_append(&c->g, tmp, (size_t)n);
}

/* text as a GBNF string literal. */
static int emit_literal(struct gctx *c, const char *text)
{
    int rc = emitf(c, "\"");

    for (const char *p = text; rc == 0 && *p; p++) {
        unsigned char ch = (unsigned char)*p;

        if (ch == '"' || ch == '\\')
            rc = emitf(c, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            rc = emitf(c, "\\x%02X", ch);
        else
            rc = emitf(c, "%c", ch);
    }
    return rc == 0 ? emitf(c, "\"") : rc;
}

/* A JSON value's text as a GBNF literal. */
static int emit_json_literal(struct gctx *c, const cJSON *v)
{
    char *text = cJSON_PrintUnformatted(v);
    int rc;

    if (!text)
        return CDT_ENOMEM;
    rc = emit_literal(c, text);
    free(text);
    return rc;
}

static int base_rules(struct gctx *c)
{
    int rc = emitf(c, "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n"
                      "char ::= [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" "
                      "[0-9a-fA-F]{4})\n");

    if (rc == 0)
        rc = emitf(c, "string ::= \"\\\"\" char* \"\\\"\"\n");
    if (rc == 0)
        rc = emitf(c,
                   "uint ::= \"0\" | [1-9] [0-9]{0,%d}\n"
                   "pint ::= [1-9] [0-9]{0,%d}\n"
                   "int ::= \"-\"? uint\n"
                   "frac ::= \".\" [0-9]{1,%d}\n"
                   "unumber ::= uint frac?\n"
                   "number ::= int frac?\n"
                   "boolean ::= \"true\" | \"false\"\n"
                   "null ::= \"null\"\n",
                   JSON_SAFE_DIGITS - 1, JSON_SAFE_DIGITS - 1, JSON_SAFE_DIGITS);
    for (int d = 1; rc == 0 && d <= CDT_JSON_MAX_DEPTH; d++) {
        if (d == CDT_JSON_MAX_DEPTH) {
            rc = emitf(c, "value-%d ::= string | number | boolean | null\n", d);
            break;
        }
        rc = emitf(c,
                   "value-%d ::= object-%d | array-%d | string | number | boolean | null\n"
                   "object-%d ::= \"{\" ws ( string ws \":\" ws value-%d ws ( \",\" ws string ws "
                   "\":\" ws value-%d ws )* )? \"}\"\n"
                   "array-%d ::= \"[\" ws ( value-%d ws ( \",\" ws value-%d ws )* )? \"]\"\n",
                   d, d, d, d, d + 1, d + 1, d, d + 1, d + 1);
    }
    return rc;
}

int cdt__json_grammar_object(char **out)
{
    struct gctx c = {.errmsg = NULL, .errcap = 0};
    char err[8];
    int rc;

    c.errmsg = err;
    c.errcap = sizeof(err);
    *out = NULL;
    rc = base_rules(&c);
    /* The root object is level 0: its values are level 1. */
    if (rc == 0)
        rc = emitf(&c,
                   "root ::= \"{\" ws ( string ws \":\" ws value-1 ws ( \",\" ws string ws \":\" "
                   "ws value-1 ws )* )? \"}\"\n");
    if (rc != 0) {
        cdt_buf_cleanup(&c.g);
        return rc == CDT_ETOOBIG ? rc : CDT_ENOMEM;
    }
    *out = cdt_buf_take(&c.g);
    return 0;
}

/* ---- schemas ---- */

static bool known_keyword(const char *k)
{
    static const char *const known[] = {
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
        "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "nullable", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum",
        /* annotations, ignored */
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "strict",
        "deprecated", "readOnly", "writeOnly"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(k, known[i]) == 0)
            return true;
    return false;
}

static int new_rule(struct gctx *c, char name[16])
{
    snprintf(name, 16, "s%d", c->n_rules++);
    return emitf(c, "%s ::= ", name);
}

/* A non-negative integer keyword's value, or def when absent. */
static int count_kw(struct gctx *c, const cJSON *s, const char *kw, const char *where, long def,
                    long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, kw);

    *out = def;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: %s at %s must be a non-negative integer", kw,
                               where);
    *out = v->valuedouble > CDT_JSON_MAX_LENGTH ? CDT_JSON_MAX_LENGTH + 1 : (long)v->valuedouble;
    return 0;
}

static int node(struct gctx *c, const cJSON *s, int depth, const char *where, char name[16]);

/* Numbers: the grammar writes them within +-1e15 without an exponent, so a
 * minimum/maximum holds when it is that wide, or a minimum of 0 (no sign), or, for
 * integers, a minimum of 1 or an exclusive minimum of 0 (no zero either). */
static int number_rule(struct gctx *c, const cJSON *s, bool integer, const char *where,
                       const char **rule)
{
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(s, "minimum");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(s, "maximum");
    const cJSON *xmin = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum");
    const cJSON *xmax = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    int sign = -1; /* -1: any, 0: >= 0, 1: > 0 */

    if ((min && !cJSON_IsNumber(min)) || (max && !cJSON_IsNumber(max)) ||
        (xmin && !cJSON_IsNumber(xmin)) || (xmax && !cJSON_IsNumber(xmax)))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: minimum/maximum at %s must be numbers", where);
    if (min && min->valuedouble > -JSON_NUM_LIMIT)
        sign = min->valuedouble == 0 ? 0 : integer && min->valuedouble == 1 ? 1 : 2;
    if (xmin && xmin->valuedouble > -JSON_NUM_LIMIT) {
        int x = integer && xmin->valuedouble == 0 ? 1 : 2;
        sign = x > sign ? x : sign;
    }
    if (sign == 2 || (max && max->valuedouble < JSON_NUM_LIMIT) ||
        (xmax && xmax->valuedouble < JSON_NUM_LIMIT))
        return cdt__errmsg_set(
            c->errmsg, c->errcap, CDT_EINVAL,
            "response_format: the minimum/maximum at %s is not supported (only 0 or 1 as a "
            "minimum, or bounds beyond +-1e15)",
            where);
    if (integer)
        *rule = sign < 0 ? "int" : sign == 0 ? "uint" : "pint";
    else
        *rule = sign < 0 ? "number" : "unumber";
    return 0;
}

static int object_rule(struct gctx *c, const cJSON *s, int depth, const char *where, char name[16])
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    const cJSON *p;
    char sub[16], at[256];
    int rc, i = 0, n;

    if (props && !cJSON_IsObject(props))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: properties at %s must be an object", where);
    if (req) {
        const cJSON *r;

        if (!cJSON_IsArray(req))
            return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                   "response_format: required at %s must be an array", where);
        cJSON_ArrayForEach(r, req)
        {
            if (!cJSON_IsString(r) || !props ||
                !cJSON_GetObjectItemCaseSensitive(props, r->valuestring))
                return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                       "response_format: required at %s names a property that "
                                       "properties does not define",
                                       where);
        }
    }
    if (!props || cJSON_GetArraySize(props) == 0) {
        if (cJSON_IsObject(addl) && cJSON_GetArraySize(addl) > 0) {
            /* A map: any keys, values of one schema. */
            snprintf(at, sizeof(at), "%.200s.additionalProperties", where);
            rc = node(c, addl, depth + 1, at, sub);
            if (rc == 0)
                rc = new_rule(c, name);
            if (rc == 0)
                rc = emitf(c,
                           "\"{\" ws ( string ws \":\" ws %s ws ( \",\" ws string ws \":\" ws %s "
                           "ws )* )? \"}\"\n",
                           sub, sub);
            return rc;
        }
        if (props || cJSON_IsFalse(addl)) { /* no properties at all */
            rc = new_rule(c, name);
            return rc == 0 ? emitf(c, "\"{\" ws \"}\"\n") : rc;
        }
        snprintf(name, 16, "object-1");
        return 0;
    }
    /* Each property's rule first, then this object's. */
    n = cJSON_GetArraySize(props);
    {
        char(*subs)[16] = calloc((size_t)n, sizeof(*subs));

        if (!subs)
            return CDT_ENOMEM;
        rc = 0;
        cJSON_ArrayForEach(p, props)
        {
            snprintf(at, sizeof(at), "%.200s.%.40s", where, p->string);
            rc = node(c, p, depth + 1, at, subs[i++]);
            if (rc != 0)
                break;
        }
        if (rc == 0)
            rc = new_rule(c, name);
        if (rc == 0)
            rc = emitf(c, "\"{\" ws ");
        i = 0;
        cJSON_ArrayForEach(p, props)
        {
            cJSON *key;

            if (rc != 0)
                break;
            if (i > 0)
                rc = emitf(c, "\",\" ws ");
            key = cJSON_CreateString(p->string);
            if (!key)
                rc = CDT_ENOMEM;
            if (rc == 0)
                rc = emit_json_literal(c, key);
            cJSON_Delete(key);
            if (rc == 0)
                rc = emitf(c, " ws \":\" ws %s ws ", subs[i]);
            i++;
        }
        if (rc == 0)
            rc = emitf(c, "\"}\"\n");
        free(subs);
    }
    return rc;
}

static int array_rule(struct gctx *c, const cJSON *s, int depth, const char *where, char name[16])
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    char sub[16], at[256];
    long lo, hi;
    int rc;

    if (items && !cJSON_IsObject(items) && !cJSON_IsBool(items))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: items at %s must be a schema (tuples with an "
                               "array of schemas are not supported)",
                               where);
    rc = count_kw(c, s, "minItems", where, 0, &lo);
    if (rc == 0)
        rc = count_kw(c, s, "maxItems", where, -1, &hi);
    if (rc != 0)
        return rc;
    if (lo > CDT_JSON_MAX_LENGTH || (hi >= 0 && hi < lo))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: minItems/maxItems at %s (at most %d items)", where,
                               CDT_JSON_MAX_LENGTH);
    if (hi > CDT_JSON_MAX_LENGTH)
        hi = CDT_JSON_MAX_LENGTH;
    snprintf(at, sizeof(at), "%.200s[]", where);
    if (items && !cJSON_IsTrue(items))
        rc = node(c, items, depth + 1, at, sub);
    else
        snprintf(sub, sizeof(sub), "value-1");
    if (rc == 0)
        rc = new_rule(c, name);
    if (rc != 0)
        return rc;
    if (hi == 0)
        return emitf(c, "\"[\" ws \"]\"\n");
    if (lo == 0)
        rc = emitf(c, "\"[\" ws ( %s ws ( \",\" ws %s ws )", sub, sub);
    else
        rc = emitf(c, "\"[\" ws %s ws ( \",\" ws %s ws )", sub, sub);
    if (rc == 0) {
        long rlo = lo > 0 ? lo - 1 : 0;

        if (hi < 0)
            rc = rlo == 0 ? emitf(c, "*") : emitf(c, "{%ld,}", rlo);
        else
            rc = emitf(c, "{%ld,%ld}", rlo, hi - 1);
    }
    if (rc == 0)
        rc = emitf(c, lo == 0 ? " )? \"]\"\n" : " \"]\"\n");
    return rc;
}

static int string_rule(struct gctx *c, const cJSON *s, const char *where, char name[16])
{
    long lo, hi;
    int rc = count_kw(c, s, "minLength", where, 0, &lo);

    if (rc == 0)
        rc = count_kw(c, s, "maxLength", where, -1, &hi);
    if (rc != 0)
        return rc;
    if (hi < 0)
        hi = lo > CDT_JSON_MAX_STRING ? lo : CDT_JSON_MAX_STRING;
    if (hi > CDT_JSON_MAX_LENGTH)
        hi = CDT_JSON_MAX_LENGTH;
    if (lo > hi)
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: minLength/maxLength at %s (at most %d)", where,
                               CDT_JSON_MAX_LENGTH);
    rc = new_rule(c, name);
    return rc == 0 ? emitf(c, "\"\\\"\" char{%ld,%ld} \"\\\"\"\n", lo, hi) : rc;
}

static int typed(struct gctx *c, const cJSON *s, const char *type, int depth, const char *where,
                 char name[16])
{
    const char *rule = NULL;
    int rc;

    if (strcmp(type, "object") == 0)
        return object_rule(c, s, depth, where, name);
    if (strcmp(type, "array") == 0)
        return array_rule(c, s, depth, where, name);
    if (strcmp(type, "string") == 0)
        return string_rule(c, s, where, name);
    if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0) {
        rc = number_rule(c, s, type[0] == 'i', where, &rule);
        if (rc == 0)
            snprintf(name, 16, "%s", rule);
        return rc;
    }
    if (strcmp(type, "boolean") == 0 || strcmp(type, "null") == 0) {
        snprintf(name, 16, "%s", type);
        return 0;
    }
    return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                           "response_format: unknown type \"%.40s\" at %s", type, where);
}

/* Alternatives: name ::= a | b | ...; subs hold the alternatives' rules. */
static int alternatives(struct gctx *c, char (*subs)[16], int n, char name[16])
{
    int rc;

    if (n == 1) {
        memcpy(name, subs[0], 16);
        return 0;
    }
    rc = new_rule(c, name);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = emitf(c, "%s%s", i ? " | " : "", subs[i]);
    return rc == 0 ? emitf(c, "\n") : rc;
}

static int node(struct gctx *c, const cJSON *s, int depth, const char *where, char name[16])
{
    const cJSON *k, *type, *alt, *v;
    char at[256];
    int rc = 0, n = 0;

    if (depth > CDT_JSON_MAX_SCHEMA)
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_ETOOBIG,
                               "response_format: the schema nests deeper than %d",
                               CDT_JSON_MAX_SCHEMA);
    if (cJSON_IsTrue(s) || (cJSON_IsObject(s) && cJSON_GetArraySize(s) == 0)) {
        snprintf(name, 16, "value-1");
        return 0;
    }
    if (!cJSON_IsObject(s))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: the schema at %s must be an object", where);
    cJSON_ArrayForEach(k, s)
    {
        if (!known_keyword(k->string))
            return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                   "response_format: the JSON schema keyword \"%.40s\" (at %s) is "
                                   "not supported",
                                   k->string, where);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "nullable"))) {
        /* OpenAPI's nullable: this schema or null. */
        cJSON *copy = cJSON_Duplicate(s, true);
        char subs[2][16];

        if (!copy)
            return CDT_ENOMEM;
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "nullable");
        rc = node(c, copy, depth + 1, where, subs[0]);
        cJSON_Delete(copy);
        snprintf(subs[1], 16, "null");
        return rc == 0 ? alternatives(c, subs, 2, name) : rc;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "const")) != NULL) {
        rc = new_rule(c, name);
        if (rc == 0)
            rc = emit_json_literal(c, v);
        return rc == 0 ? emitf(c, "\n") : rc;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "enum")) != NULL) {
        const cJSON *e;

        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
            return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                   "response_format: enum at %s must be a non-empty array", where);
        rc = new_rule(c, name);
        cJSON_ArrayForEach(e, v)
        {
            if (rc == 0 && e != v->child)
                rc = emitf(c, " | ");
            if (rc == 0)
                rc = emit_json_literal(c, e);
        }
        return rc == 0 ? emitf(c, "\n") : rc;
    }
    alt = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!alt)
        alt = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
    type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (alt || cJSON_IsArray(type)) {
        const cJSON *a = alt ? alt : type, *e;
        int cnt = cJSON_GetArraySize(a);
        char(*subs)[16];

        if (!cJSON_IsArray(a) || cnt == 0)
            return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                   "response_format: %s at %s must be a non-empty array",
                                   alt ? alt->string : "type", where);
        if (alt && type)
            return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                   "response_format: type beside %s at %s is not supported",
                                   alt->string, where);
        subs = calloc((size_t)cnt, sizeof(*subs));
        if (!subs)
            return CDT_ENOMEM;
        cJSON_ArrayForEach(e, a)
        {
            snprintf(at, sizeof(at), "%.200s/%d", where, n);
            if (alt)
                rc = node(c, e, depth + 1, at, subs[n]);
            else if (!cJSON_IsString(e))
                rc = cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                                     "response_format: type at %s must hold strings", where);
            else
                rc = typed(c, s, e->valuestring, depth, where, subs[n]);
            n++;
            if (rc != 0)
                break;
        }
        if (rc == 0)
            rc = alternatives(c, subs, n, name);
        free(subs);
        return rc;
    }
    if (type && !cJSON_IsString(type))
        return cdt__errmsg_set(c->errmsg, c->errcap, CDT_EINVAL,
                               "response_format: type at %s must be a string or an array", where);
    if (type)
        return typed(c, s, type->valuestring, depth, where, name);
    if (cJSON_GetObjectItemCaseSensitive(s, "properties") ||
        cJSON_GetObjectItemCaseSensitive(s, "additionalProperties"))
        return object_rule(c, s, depth, where, name);
    if (cJSON_GetObjectItemCaseSensitive(s, "items"))
        return array_rule(c, s, depth, where, name);
    snprintf(name, 16, "value-1");
    return 0;
}

int cdt__json_grammar_schema(const cJSON *schema, char **out, char *errmsg, size_t errcap)
{
    struct gctx c;
    char top[16];
    int rc;

    memset(&c, 0, sizeof(c));
    c.errmsg = errmsg;
    c.errcap = errcap;
    *out = NULL;
    if (errcap)
        errmsg[0] = '\0';
    rc = base_rules(&c);
    if (rc == 0)
        rc = node(&c, schema, 0, "the schema's root", top);
    if (rc == 0)
        rc = emitf(&c, "root ::= %s\n", top);
    if (rc != 0) {
        cdt_buf_cleanup(&c.g);
        if (rc == CDT_ENOMEM && errcap)
            snprintf(errmsg, errcap, "out of memory");
        else if (errcap && !errmsg[0])
            snprintf(errmsg, errcap, "response_format: the schema could not be converted");
        return rc;
    }
    *out = cdt_buf_take(&c.g);
    return 0;
}

/* ---- closing generated JSON ---- */

enum {
    JS_VALUE,     /* a value is expected (the start, after ':' or an array's ',') */
    JS_OBJ_FIRST, /* after '{': a key or '}' */
    JS_OBJ_KEY,   /* after an object's ',': a key */
    JS_COLON,     /* after a key */
    JS_OBJ_NEXT,  /* after a member's value: ',' or '}' */
    JS_ARR_FIRST, /* after '[': a value or ']' */
    JS_ARR_NEXT,  /* after an element: ',' or ']' */
    JS_STRING,
    JS_ESCAPE, /* after a backslash in a string */
    JS_UHEX,   /* in a \u escape */
    JS_NUMBER,
    JS_LITERAL,
    JS_DONE
};

static void after_value(struct cdt_json_scan *js)
{
    if (js->depth == 0)
        js->state = JS_DONE;
    else
        js->state = js->stack[js->depth - 1] == '{' ? JS_OBJ_NEXT : JS_ARR_NEXT;
}

static void push(struct cdt_json_scan *js, char c)
{
    if (js->depth >= CDT_JSON_SCAN_DEPTH) {
        js->broken = true;
        return;
    }
    js->stack[js->depth++] = c;
    js->state = c == '{' ? JS_OBJ_FIRST : JS_ARR_FIRST;
}

static void pop(struct cdt_json_scan *js, char close)
{
    if (js->depth == 0 || js->stack[js->depth - 1] != (close == '}' ? '{' : '[')) {
        js->broken = true;
        return;
    }
    js->depth--;
    after_value(js);
}

static bool start_value(struct cdt_json_scan *js, char c)
{
    switch (c) {
    case '{':
    case '[':
        push(js, c);
        return true;
    case '"':
        js->state = JS_STRING;
        js->key = false;
        return true;
    case 't':
        js->lit_rest = "rue";
        js->state = JS_LITERAL;
        return true;
    case 'f':
        js->lit_rest = "alse";
        js->state = JS_LITERAL;
        return true;
    case 'n':
        js->lit_rest = "ull";
        js->state = JS_LITERAL;
        return true;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            js->state = JS_NUMBER;
            js->num_last = c;
            return true;
        }
        return false;
    }
}

/* Inside a string: notes a byte of a multi-byte character, counted as llama.cpp's
 * grammar counts them (by the lead byte's high bits). Returns true when b was a
 * continuation byte awaited. */
static bool utf8_continues(struct cdt_json_scan *js, unsigned char b)
{
    static const unsigned char len_by_high[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

    if (js->utf8_left > 0 && (b & 0xC0) == 0x80) {
        js->utf8_left--;
        return true;
    }
    js->utf8_left = len_by_high[b >> 4] - 1;
    return false;
}

static void scan_char(struct cdt_json_scan *js, char c)
{
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';

    switch (js->state) {
    case JS_STRING:
        if (utf8_continues(js, (unsigned char)c))
            return;
        if (c == '"') {
            if (js->key)
                js->state = JS_COLON;
            else
                after_value(js);
        } else if (c == '\\') {
            js->state = JS_ESCAPE;
        }
        return;
    case JS_ESCAPE:
        js->state = c == 'u' ? JS_UHEX : JS_STRING;
        js->hex = 0;
        return;
    case JS_UHEX:
        if (++js->hex == 4)
            js->state = JS_STRING;
        return;
    case JS_NUMBER:
        if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
            js->num_last = c;
            return;
        }
        after_value(js);
        scan_char(js, c); /* the character after the number */
        return;
    case JS_LITERAL:
        if (*js->lit_rest != c) {
            js->broken = true;
            return;
        }
        if (!*++js->lit_rest)
            after_value(js);
        return;
    default:
        break;
    }
    if (space)
        return;
    switch (js->state) {
    case JS_VALUE:
        if (!start_value(js, c))
            js->broken = true;
        break;
    case JS_ARR_FIRST:
        if (c == ']')
            pop(js, c);
        else if (!start_value(js, c))
            js->broken = true;
        break;
    case JS_OBJ_FIRST:
    case JS_OBJ_KEY:
        if (c == '"') {
            js->state = JS_STRING;
            js->key = true;
        } else if (c == '}' && js->state == JS_OBJ_FIRST) {
            pop(js, c);
        } else {
            js->broken = true;
        }
        break;
    case JS_COLON:
        if (c == ':')
            js->state = JS_VALUE;
        else
            js->broken = true;
        break;
    case JS_OBJ_NEXT:
    case JS_ARR_NEXT:
        if (c == ',')
            js->state = js->state == JS_OBJ_NEXT ? JS_OBJ_KEY : JS_VALUE;
        else if (c == '}' || c == ']')
            pop(js, c);
        else
            js->broken = true;
        break;
    default: /* JS_DONE: nothing may follow but whitespace */
        js->broken = true;
        break;
    }
}

void cdt__json_scan_feed(struct cdt_json_scan *js, const char *text, size_t len)
{
    for (size_t i = 0; i < len && !js->broken; i++)
        scan_char(js, text[i]);
}

int cdt__json_scan_closing(const struct cdt_json_scan *js, char *out, size_t cap)
{
    static const char zeros[] = "0000";
    char tail[8] = "";

    if (js->broken || cap < (size_t)js->depth + sizeof(tail) + 8)
        return -1;
    switch (js->state) {
    case JS_ESCAPE:
    case JS_UHEX:
    case JS_STRING:
        snprintf(tail, sizeof(tail), "%s%s\"%s", js->state == JS_ESCAPE ? "n" : "",
                 js->state == JS_UHEX ? zeros + js->hex : "", js->key ? ":0" : "");
        break;
    case JS_NUMBER:
        if (strchr("-+.eE", js->num_last))
            snprintf(tail, sizeof(tail), "0");
        break;
    case JS_LITERAL:
        snprintf(tail, sizeof(tail), "%s", js->lit_rest);
        break;
    case JS_COLON:
        snprintf(tail, sizeof(tail), ":0");
        break;
    case JS_VALUE:
        snprintf(tail, sizeof(tail), "0");
        break;
    case JS_OBJ_KEY:
        snprintf(tail, sizeof(tail), "\"\":0");
        break;
    default:
        break;
    }
    {
        size_t n = strlen(tail);

        memcpy(out, tail, n);
        for (int i = js->depth - 1; i >= 0; i--)
            out[n++] = js->stack[i] == '{' ? '}' : ']';
        out[n] = '\0';
        return (int)n;
    }
}
