/* The model catalog: parsing and validating catalog JSON (see catalog.h for the
 * schema), and lookups.
 *
 * The parsed cJSON tree is kept for the catalog's lifetime and the models' strings
 * point into it (sha256 digests are lowercased in place), so loading copies
 * nothing but the per-model arrays. Every id and alias goes into one array sorted
 * by name: duplicates are neighbours there, and find is a binary search.
 * Invariants after a successful load: every string is valid UTF-8 without control
 * characters and within its cap; ids and aliases are unique across the catalog;
 * file names are safe relative paths; at most one LLM per RAM tier. */
#include "codictate/catalog.h"
#include "codictate/text.h"
#include "codictate/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CATALOG_VERSION 1
#define MAX_RAM_MB      (1024u * 1024u)     /* ram_mb cap: 1 TiB */
#define MAX_FILE_SIZE   (UINT64_C(1) << 53) /* exact in a JSON number (a double) */
#define BUILTIN_ORIGIN  "built-in"

/* One id or alias, for the sorted name index. */
struct name_ref {
    const char *name;
    size_t model; /* index into models */
    bool is_alias;
};

struct cdt_catalog {
    cJSON *root; /* the parsed document; model strings point into it */
    char *origin;
    struct cdt_catalog_model *models;
    size_t n_models;
    struct name_ref *index; /* every id and alias, sorted by (name, is_alias, model) */
    size_t n_index;
};

/* Error reporting while loading: "<prefix><where>: <message>". */
struct ctx {
    char *errmsg;
    size_t errcap;
    const char *prefix;                  /* e.g. "/path/catalog.json: "; "" for none */
    char where[CDT_CATALOG_MAX_ID + 32]; /* "model 'x'" or "models[3]"; "" at top level */
    char field[96];                      /* scratch for a field's full name */
};

static int fail(struct ctx *c, int rc, const char *fmt, ...) CDT_PRINTF(3, 4);

static int fail(struct ctx *c, int rc, const char *fmt, ...)
{
    char msg[384];
    va_list ap;

    if (!c->errmsg || !c->errcap)
        return rc;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->errmsg, c->errcap, "%s%s%s%s", c->prefix, c->where, c->where[0] ? ": " : "", msg);
    /* Messages quote what the file holds; keep terminal escapes out of them. */
    for (char *p = c->errmsg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return rc;
}

/* The full name of a field of an array element: "files[2].sha256". */
static const char *field_name(struct ctx *c, const char *array, size_t i, const char *key)
{
    snprintf(c->field, sizeof(c->field), "%s[%zu].%s", array, i, key);
    return c->field;
}

/* ---- checks on strings ---- */

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Valid UTF-8 with no C0 control character or DEL: safe to print on a terminal. */
static bool printable_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return cdt_utf8_valid(s, len);
}

/* [A-Za-z0-9._-], first a letter or digit. */
static bool valid_id(const char *s)
{
    if (!is_alnum(s[0]))
        return false;
    for (; *s; s++)
        if (!is_alnum(*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

/* A Hugging Face repo id: "name" or "owner/name", each part of [A-Za-z0-9._-],
 * not starting or ending with '.' or '-', without "--" or ".." (the hub's rules;
 * "--" would also be ambiguous in the cache's models--owner--name folders). */
static bool valid_repo(const char *s)
{
    int parts = 0;

    if (strstr(s, "--") || strstr(s, ".."))
        return false;
    while (*s) {
        size_t n = strcspn(s, "/");

        if (n == 0 || ++parts > 2)
            return false;
        if (s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
            return false;
        for (size_t i = 0; i < n; i++)
            if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                return false;
        s += n;
        if (*s == '/' && !*++s)
            return false; /* trailing '/' */
    }
    return parts > 0;
}

/* A relative '/'-separated path whose parts are neither empty, "." nor "..", and
 * that holds no backslash: it cannot leave the folder it is joined to. With
 * strict, the parts may hold only [A-Za-z0-9._-] (revisions). */
static bool valid_rel_path(const char *s, bool strict)
{
    if (!*s)
        return false;
    while (*s) {
        size_t n = strcspn(s, "/");

        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\\')
                return false;
            if (strict && !is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                return false;
        }
        s += n;
        if (*s == '/' && !*++s)
            return false; /* trailing '/' */
    }
    return true;
}

/* ---- typed field access ---- */

/* Checks an object's keys: each known at most once, none unknown ("_..." keys
 * are comments). known has at most 32 entries. */
static int check_keys(struct ctx *c, const cJSON *obj, const char *what, const char *const *known,
                      size_t n_known)
{
    uint32_t seen = 0;

    for (const cJSON *it = obj->child; it; it = it->next) {
        size_t k;

        if (!it->string || it->string[0] == '_')
            continue;
        for (k = 0; k < n_known && strcmp(it->string, known[k]) != 0; k++)
            ;
        if (k == n_known)
            return fail(c, CDT_EFORMAT, "unknown field '%.64s'%s%s", it->string,
                        what[0] ? " in " : "", what);
        if (seen & (UINT32_C(1) << k))
            return fail(c, CDT_EFORMAT, "field '%s'%s%s appears twice", known[k],
                        what[0] ? " in " : "", what);
        seen |= UINT32_C(1) << k;
    }
    return 0;
}

/* obj[key] as a string of at most cap bytes, printable UTF-8. Absent: an error
 * when required, else *out = "". label names the field in errors. */
static int get_string(struct ctx *c, const cJSON *obj, const char *key, const char *label,
                      bool required, size_t cap, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t len;

    *out = "";
    if (!v) {
        if (required)
            return fail(c, CDT_EFORMAT, "missing field '%s'", label);
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(c, CDT_EFORMAT, "field '%s' must be a string", label);
    len = strlen(v->valuestring);
    if (len > cap)
        return fail(c, CDT_ETOOBIG, "field '%s' is %zu bytes, over the %zu-byte cap", label, len,
                    cap);
    if (!printable_utf8(v->valuestring, len))
        return fail(c, CDT_EFORMAT, "field '%s' is not valid UTF-8 or holds control characters",
                    label);
    *out = v->valuestring;
    return 0;
}

/* obj[key] as an integer in [0, max]. Absent: error when required, else *out = 0. */
static int get_uint(struct ctx *c, const cJSON *obj, const char *key, const char *label,
                    bool required, uint64_t max, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    double d;

    *out = 0;
    if (!v) {
        if (required)
            return fail(c, CDT_EFORMAT, "missing field '%s'", label);
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return fail(c, CDT_EFORMAT, "field '%s' must be a number", label);
    d = v->valuedouble;
    if (!(d >= 0))
        return fail(c, CDT_EFORMAT, "field '%s' must not be negative", label);
    if (d > (double)max)
        return fail(c, CDT_ETOOBIG, "field '%s' is over the cap of %llu", label,
                    (unsigned long long)max);
    if ((double)(uint64_t)d != d)
        return fail(c, CDT_EFORMAT, "field '%s' must be a whole number", label);
    *out = (uint64_t)d;
    return 0;
}

/* obj[key] as an array of at most cap items, at least one when required (then
 * absence is an error too). *out is NULL for an absent array. */
static int get_array(struct ctx *c, const cJSON *obj, const char *key, bool required, size_t cap,
                     const char *cap_what, const cJSON **out, size_t *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t count = 0;

    *out = NULL;
    *n = 0;
    if (!v) {
        if (required)
            return fail(c, CDT_EFORMAT, "missing field '%s'", key);
        return 0;
    }
    if (!cJSON_IsArray(v))
        return fail(c, CDT_EFORMAT, "field '%s' must be an array", key);
    for (const cJSON *it = v->child; it; it = it->next)
        if (++count > cap)
            return fail(c, CDT_ETOOBIG, "field '%s' has more than the cap of %zu %s", key, cap,
                        cap_what);
    if (required && count == 0)
        return fail(c, CDT_EFORMAT, "field '%s' must not be empty", key);
    *out = v;
    *n = count;
    return 0;
}

/* ---- one model ---- */

static const char *const kind_names[] = {"llm", "whisper", "vad"};
static const char *const thinking_names[] = {"", "hybrid", "never", "always"};

static const char *const model_keys[] = {
    "id",          "aliases",     "kind",     "name",      "best_for",
    "ram_mb",      "ram_tier",    "thinking", "languages", "license",
    "license_url", "gated_terms", "files",    "sources",   "fixed_prompt",
};
static const char *const file_keys[] = {"name", "size", "sha256"};
static const char *const source_keys[] = {"type", "repo", "revision"};

static int parse_id_list(struct ctx *c, const cJSON *obj, const char *key, size_t cap,
                         const char *cap_what, const char *const **out, size_t *n_out)
{
    const cJSON *arr;
    const char **list;
    size_t n, i = 0;
    int rc;

    *out = NULL;
    *n_out = 0;
    if ((rc = get_array(c, obj, key, false, cap, cap_what, &arr, &n)) != 0 || n == 0)
        return rc;
    list = calloc(n, sizeof(*list));
    if (!list)
        return fail(c, CDT_ENOMEM, "out of memory");
    *out = list;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        const char *s = it->valuestring;

        if (!cJSON_IsString(it) || !s)
            return fail(c, CDT_EFORMAT, "%s[%zu] must be a string", key, i);
        if (strlen(s) > CDT_CATALOG_MAX_ID)
            return fail(c, CDT_ETOOBIG, "%s[%zu] is %zu bytes, over the %d-byte cap", key, i,
                        strlen(s), CDT_CATALOG_MAX_ID);
        if (!valid_id(s))
            return fail(c, CDT_EFORMAT,
                        "%s[%zu] '%s' may hold only letters, digits, '.', '_' and '-', and must "
                        "start with a letter or digit",
                        key, i, s);
        list[i] = s;
    }
    *n_out = n;
    return 0;
}

static int parse_files(struct ctx *c, const cJSON *obj, struct cdt_catalog_model *m)
{
    const cJSON *arr;
    struct cdt_catalog_file *files;
    size_t n, i = 0;
    int rc;

    if ((rc = get_array(c, obj, "files", true, CDT_CATALOG_MAX_FILES, "files", &arr, &n)) != 0)
        return rc;
    files = calloc(n, sizeof(*files));
    if (!files)
        return fail(c, CDT_ENOMEM, "out of memory");
    m->files = files;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        struct cdt_catalog_file *f = &files[i];
        const char *sha;

        snprintf(c->field, sizeof(c->field), "files[%zu]", i);
        if (!cJSON_IsObject(it))
            return fail(c, CDT_EFORMAT, "files[%zu] must be an object", i);
        if ((rc = check_keys(c, it, c->field, file_keys, 3)) != 0)
            return rc;
        if ((rc = get_string(c, it, "name", field_name(c, "files", i, "name"), true,
                             CDT_CATALOG_MAX_PATH, &f->name)) != 0)
            return rc;
        if (!valid_rel_path(f->name, false))
            return fail(c, CDT_EFORMAT,
                        "files[%zu].name '%s' must be a relative path without '.' or '..' parts, "
                        "empty parts or backslashes",
                        i, f->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(files[j].name, f->name) == 0)
                return fail(c, CDT_EFORMAT, "files[%zu].name '%s' is also files[%zu].name", i,
                            f->name, j);
        if ((rc = get_uint(c, it, "size", field_name(c, "files", i, "size"), true, MAX_FILE_SIZE,
                           &f->size)) != 0)
            return rc;
        if ((rc = get_string(c, it, "sha256", field_name(c, "files", i, "sha256"), false, 64,
                             &sha)) != 0)
            return rc;
        if (*sha) {
            size_t k;

            for (k = 0; k < 64 && is_hex(sha[k]); k++)
                ;
            if (k != 64 || sha[64] != '\0')
                return fail(c, CDT_EFORMAT, "files[%zu].sha256 must be 64 hex digits", i);
            /* Ours to change: the string lives in our cJSON tree. */
            for (char *p = cJSON_GetObjectItemCaseSensitive(it, "sha256")->valuestring; *p; p++)
                if (*p >= 'A' && *p <= 'F')
                    *p = (char)(*p - 'A' + 'a');
        }
        f->sha256 = sha;
    }
    m->n_files = n;
    return 0;
}

static int parse_sources(struct ctx *c, const cJSON *obj, struct cdt_catalog_model *m)
{
    const cJSON *arr;
    struct cdt_catalog_source *srcs;
    size_t n, i = 0;
    int rc;

    if ((rc = get_array(c, obj, "sources", true, CDT_CATALOG_MAX_SOURCES, "sources", &arr, &n)) !=
        0)
        return rc;
    srcs = calloc(n, sizeof(*srcs));
    if (!srcs)
        return fail(c, CDT_ENOMEM, "out of memory");
    m->sources = srcs;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        struct cdt_catalog_source *s = &srcs[i];
        const char *type;

        snprintf(c->field, sizeof(c->field), "sources[%zu]", i);
        if (!cJSON_IsObject(it))
            return fail(c, CDT_EFORMAT, "sources[%zu] must be an object", i);
        if ((rc = check_keys(c, it, c->field, source_keys, 3)) != 0)
            return rc;
        if ((rc = get_string(c, it, "type", field_name(c, "sources", i, "type"), true,
                             CDT_CATALOG_MAX_ID, &type)) != 0)
            return rc;
        if (strcmp(type, "builtin") == 0) {
            /* Shipped with codictate (<share>/models): no repo, nothing to download. */
            s->type = CDT_SOURCE_BUILTIN;
            s->repo = s->revision = "";
            if (cJSON_GetObjectItemCaseSensitive(it, "repo") ||
                cJSON_GetObjectItemCaseSensitive(it, "revision"))
                return fail(c, CDT_EFORMAT,
                            "sources[%zu]: a builtin source has no repo or revision", i);
            continue;
        }
        if (strcmp(type, "huggingface") != 0)
            return fail(c, CDT_EFORMAT,
                        "sources[%zu].type '%s' is not supported (huggingface or builtin)", i,
                        type);
        s->type = CDT_SOURCE_HUGGINGFACE;
        if ((rc = get_string(c, it, "repo", field_name(c, "sources", i, "repo"), true,
                             CDT_CATALOG_MAX_REPO, &s->repo)) != 0)
            return rc;
        if (!valid_repo(s->repo))
            return fail(c, CDT_EFORMAT,
                        "sources[%zu].repo '%s' is not a Hugging Face repo id (owner/name)", i,
                        s->repo);
        if ((rc = get_string(c, it, "revision", field_name(c, "sources", i, "revision"), false,
                             CDT_CATALOG_MAX_REVISION, &s->revision)) != 0)
            return rc;
        if (!*s->revision)
            s->revision = "main";
        else if (!valid_rel_path(s->revision, true))
            return fail(c, CDT_EFORMAT,
                        "sources[%zu].revision '%s' must be a commit, branch or tag name", i,
                        s->revision);
    }
    m->n_sources = n;
    return 0;
}

static int parse_model(struct ctx *c, const cJSON *obj, size_t idx, struct cdt_catalog_model *m)
{
    const char *s;
    uint64_t u;
    const cJSON *v;
    int rc;

    snprintf(c->where, sizeof(c->where), "models[%zu]", idx);
    if (!cJSON_IsObject(obj))
        return fail(c, CDT_EFORMAT, "must be an object");
    if ((rc = get_string(c, obj, "id", "id", true, CDT_CATALOG_MAX_ID, &m->id)) != 0)
        return rc;
    if (!valid_id(m->id))
        return fail(c, CDT_EFORMAT,
                    "id '%s' may hold only letters, digits, '.', '_' and '-', and must start "
                    "with a letter or digit",
                    m->id);
    snprintf(c->where, sizeof(c->where), "model '%s'", m->id);
    if ((rc = check_keys(c, obj, "", model_keys, sizeof(model_keys) / sizeof(model_keys[0]))) != 0)
        return rc;
    if ((rc = parse_id_list(c, obj, "aliases", CDT_CATALOG_MAX_ALIASES, "aliases", &m->aliases,
                            &m->n_aliases)) != 0)
        return rc;

    if ((rc = get_string(c, obj, "kind", "kind", true, CDT_CATALOG_MAX_ID, &s)) != 0)
        return rc;
    for (u = 0; u < 3 && strcmp(s, kind_names[u]) != 0; u++)
        ;
    if (u == 3)
        return fail(c, CDT_EFORMAT, "unknown kind '%s' (expected llm, whisper or vad)", s);
    m->kind = (enum cdt_model_kind)u;

    if ((rc = get_string(c, obj, "name", "name", true, CDT_CATALOG_MAX_STRING, &m->name)) != 0)
        return rc;
    if (!*m->name)
        return fail(c, CDT_EFORMAT, "field 'name' must not be empty");
    if ((rc = get_string(c, obj, "best_for", "best_for", false, CDT_CATALOG_MAX_STRING,
                         &m->best_for)) != 0)
        return rc;
    if ((rc = get_uint(c, obj, "ram_mb", "ram_mb", false, MAX_RAM_MB, &u)) != 0)
        return rc;
    m->ram_mb = (uint32_t)u;

    if ((rc = get_string(c, obj, "ram_tier", "ram_tier", false, CDT_CATALOG_MAX_ID, &s)) != 0)
        return rc;
    if (*s) {
        if (m->kind != CDT_MODEL_LLM)
            return fail(c, CDT_EFORMAT, "ram_tier is only for llm models");
        if (cdt_limits_tier_from_name(s, &m->ram_tier) != 0)
            return fail(c, CDT_EFORMAT, "unknown ram_tier '%s' (expected le8, 9to16 or gt16)", s);
        m->has_ram_tier = true;
    }

    if ((rc = get_string(c, obj, "thinking", "thinking", false, CDT_CATALOG_MAX_ID, &s)) != 0)
        return rc;
    if (*s) {
        if (m->kind != CDT_MODEL_LLM)
            return fail(c, CDT_EFORMAT, "thinking is only for llm models");
        for (u = 1; u < 4 && strcmp(s, thinking_names[u]) != 0; u++)
            ;
        if (u == 4)
            return fail(c, CDT_EFORMAT, "unknown thinking '%s' (expected hybrid, never or always)",
                        s);
        m->thinking = (enum cdt_thinking)u;
    }

    if ((rc = parse_id_list(c, obj, "languages", CDT_CATALOG_MAX_LANGUAGES, "languages",
                            &m->languages, &m->n_languages)) != 0)
        return rc;
    if ((rc = get_string(c, obj, "license", "license", false, CDT_CATALOG_MAX_STRING,
                         &m->license)) != 0)
        return rc;
    if ((rc = get_string(c, obj, "license_url", "license_url", false, CDT_CATALOG_MAX_STRING,
                         &m->license_url)) != 0)
        return rc;
    if (*m->license_url && (strncmp(m->license_url, "https://", 8) != 0 || !m->license_url[8]))
        return fail(c, CDT_EFORMAT, "license_url must be an https:// URL");
    v = cJSON_GetObjectItemCaseSensitive(obj, "gated_terms");
    if (v) {
        if (!cJSON_IsBool(v))
            return fail(c, CDT_EFORMAT, "field 'gated_terms' must be true or false");
        m->gated_terms = cJSON_IsTrue(v);
        if (m->gated_terms && !*m->license_url)
            return fail(c, CDT_EFORMAT, "gated_terms needs license_url (the terms to accept)");
    }
    v = cJSON_GetObjectItemCaseSensitive(obj, "fixed_prompt");
    if (v) {
        if (!cJSON_IsBool(v))
            return fail(c, CDT_EFORMAT, "field 'fixed_prompt' must be true or false");
        m->fixed_prompt = cJSON_IsTrue(v);
    }

    if ((rc = parse_files(c, obj, m)) != 0)
        return rc;
    return parse_sources(c, obj, m);
}

/* ---- the whole catalog ---- */

static int name_cmp(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    int r = strcmp(x->name, y->name);

    if (r)
        return r;
    if (x->is_alias != y->is_alias)
        return x->is_alias ? 1 : -1; /* the id first */
    return x->model < y->model ? -1 : x->model > y->model;
}

/* Builds the sorted name index and rejects any name used twice. */
static int build_index(struct ctx *c, struct cdt_catalog *cat)
{
    size_t n = 0, k = 0;

    for (size_t i = 0; i < cat->n_models; i++)
        n += 1 + cat->models[i].n_aliases;
    cat->index = calloc(n, sizeof(*cat->index));
    if (!cat->index)
        return fail(c, CDT_ENOMEM, "out of memory");
    for (size_t i = 0; i < cat->n_models; i++) {
        const struct cdt_catalog_model *m = &cat->models[i];

        cat->index[k++] = (struct name_ref){m->id, i, false};
        for (size_t j = 0; j < m->n_aliases; j++)
            cat->index[k++] = (struct name_ref){m->aliases[j], i, true};
    }
    cat->n_index = n;
    qsort(cat->index, n, sizeof(*cat->index), name_cmp);

    c->where[0] = '\0';
    for (size_t i = 1; i < n; i++) {
        const struct name_ref *a = &cat->index[i - 1], *b = &cat->index[i];
        const char *a_id = cat->models[a->model].id, *b_id = cat->models[b->model].id;

        if (strcmp(a->name, b->name) != 0)
            continue;
        /* Sorted: a is the id when either is; a->model ≤ b->model among equals. */
        if (!a->is_alias && !b->is_alias)
            return fail(c, CDT_EFORMAT, "duplicate id '%s' (models[%zu] and models[%zu])", a->name,
                        a->model, b->model);
        if (!a->is_alias && a->model == b->model)
            return fail(c, CDT_EFORMAT, "model '%s': alias '%s' equals its own id", b_id, b->name);
        if (!a->is_alias)
            return fail(c, CDT_EFORMAT, "model '%s': alias '%s' is the id of another model", b_id,
                        b->name);
        if (a->model == b->model)
            return fail(c, CDT_EFORMAT, "model '%s': alias '%s' is listed twice", a_id, a->name);
        return fail(c, CDT_EFORMAT, "duplicate alias '%s' (models '%s' and '%s')", a->name, a_id,
                    b_id);
    }
    return 0;
}

static int check_tiers(struct ctx *c, const struct cdt_catalog *cat)
{
    const struct cdt_catalog_model *by_tier[3] = {NULL, NULL, NULL};

    c->where[0] = '\0';
    for (size_t i = 0; i < cat->n_models; i++) {
        const struct cdt_catalog_model *m = &cat->models[i];

        if (!m->has_ram_tier)
            continue;
        if (by_tier[m->ram_tier])
            return fail(c, CDT_EFORMAT, "models '%s' and '%s' both claim ram_tier '%s'",
                        by_tier[m->ram_tier]->id, m->id, cdt_limits_for_tier(m->ram_tier).name);
        by_tier[m->ram_tier] = m;
    }
    return 0;
}

/* Where byte `off` of text is, 1-based; columns count bytes. */
static void line_col(const char *text, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, start = 0;

    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            start = i + 1;
        }
    }
    *line = l;
    *col = off - start + 1;
}

/* The number of JSON blanks at the start of s[0..n). */
static size_t leading_space(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static int parse_root(struct ctx *c, struct cdt_catalog *cat, const char *json, size_t len)
{
    static const char *const root_keys[] = {"version", "models"};
    const char *end = NULL;
    const cJSON *models, *it;
    size_t line, col, off, i = 0;
    uint64_t version;
    int rc;

    cat->root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    off = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
    if (cat->root) /* cJSON stops right after the value: only blanks may follow */
        off += leading_space(json + off, len - off);
    if (!cat->root || off < len) {
        line_col(json, off, &line, &col);
        if (!cat->root && len == 0)
            return fail(c, CDT_EFORMAT, "not valid JSON: empty");
        return fail(c, CDT_EFORMAT, "not valid JSON: %s at line %zu, column %zu",
                    cat->root ? "unexpected text after the document" : "syntax error", line, col);
    }
    if (!cJSON_IsObject(cat->root))
        return fail(c, CDT_EFORMAT, "the catalog must be a JSON object");
    if ((rc = check_keys(c, cat->root, "the catalog", root_keys, 2)) != 0)
        return rc;
    if (!cJSON_GetObjectItemCaseSensitive(cat->root, "version"))
        return fail(c, CDT_EFORMAT, "missing field 'version'");
    if (get_uint(c, cat->root, "version", "version", true, UINT32_MAX, &version) != 0 ||
        version != CATALOG_VERSION) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cat->root, "version");

        if (cJSON_IsNumber(v))
            return fail(c, CDT_EFORMAT,
                        "unsupported catalog version %g (this build reads version %d)",
                        v->valuedouble, CATALOG_VERSION);
        return fail(c, CDT_EFORMAT, "field 'version' must be the number %d", CATALOG_VERSION);
    }
    if ((rc = get_array(c, cat->root, "models", true, CDT_CATALOG_MAX_MODELS, "models", &models,
                        &cat->n_models)) != 0)
        return rc;
    cat->models = calloc(cat->n_models, sizeof(*cat->models));
    if (!cat->models)
        return fail(c, CDT_ENOMEM, "out of memory");
    for (it = models->child; it; it = it->next, i++)
        if ((rc = parse_model(c, it, i, &cat->models[i])) != 0)
            return rc;
    if ((rc = build_index(c, cat)) != 0)
        return rc;
    return check_tiers(c, cat);
}

static int load(const char *json, size_t len, const char *origin, const char *prefix,
                struct cdt_catalog **out, char *errmsg, size_t errcap)
{
    struct ctx c = {.errmsg = errmsg, .errcap = errcap, .prefix = prefix};
    struct cdt_catalog *cat;
    int rc;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (!out)
        return fail(&c, CDT_EINVAL, "no place for the catalog");
    *out = NULL;
    if (!json)
        return fail(&c, CDT_EINVAL, "no catalog JSON given");
    if (len > CDT_CATALOG_MAX_BYTES)
        return fail(&c, CDT_ETOOBIG, "catalog is %zu bytes, over the %d-byte cap", len,
                    CDT_CATALOG_MAX_BYTES);
    cat = calloc(1, sizeof(*cat));
    if (!cat || !(cat->origin = strdup(origin))) {
        free(cat);
        return fail(&c, CDT_ENOMEM, "out of memory");
    }
    rc = parse_root(&c, cat, json, len);
    if (rc != 0) {
        cdt_catalog_free(cat);
        return rc;
    }
    *out = cat;
    return 0;
}

int cdt_catalog_load(const char *json, size_t len, struct cdt_catalog **out, char *errmsg,
                     size_t errcap)
{
    return load(json, len, "", "", out, errmsg, errcap);
}

/* Reads a whole file of at most CDT_CATALOG_MAX_BYTES into a new buffer. */
static int read_file(struct ctx *c, const char *path, char **buf, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    struct stat st;
    char *b;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;

        return fail(c,
                    err == ENOENT   ? CDT_ENOTFOUND
                    : err == EACCES ? CDT_EPERM
                                    : CDT_EIO,
                    "cannot open: %s", strerror(err));
    }
    if (fstat(fd, &st) != 0) {
        int err = errno;

        close(fd);
        return fail(c, CDT_EIO, "cannot read: %s", strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return fail(c, CDT_EIO, "cannot read: is a directory, not a catalog file");
    }
    if (S_ISREG(st.st_mode) && st.st_size > CDT_CATALOG_MAX_BYTES) {
        close(fd);
        return fail(c, CDT_ETOOBIG, "file is %lld bytes, over the %d-byte cap on catalogs",
                    (long long)st.st_size, CDT_CATALOG_MAX_BYTES);
    }
    b = malloc(cap);
    for (;;) {
        ssize_t r;

        if (!b) {
            close(fd);
            return fail(c, CDT_ENOMEM, "out of memory");
        }
        if (n == cap) {
            char *nb;

            if (cap > CDT_CATALOG_MAX_BYTES) {
                free(b);
                close(fd);
                return fail(c, CDT_ETOOBIG, "file is over the %d-byte cap on catalogs",
                            CDT_CATALOG_MAX_BYTES);
            }
            cap *= 2;
            nb = realloc(b, cap);
            if (!nb)
                free(b);
            b = nb;
            continue;
        }
        r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;

            free(b);
            close(fd);
            return fail(c, CDT_EIO, "cannot read: %s", strerror(err));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > CDT_CATALOG_MAX_BYTES) {
        free(b);
        return fail(c, CDT_ETOOBIG, "file is over the %d-byte cap on catalogs",
                    CDT_CATALOG_MAX_BYTES);
    }
    *buf = b;
    *len = n;
    return 0;
}

static int load_file(const char *path, const char *prefix, struct cdt_catalog **out, char *errmsg,
                     size_t errcap)
{
    struct ctx c = {.errmsg = errmsg, .errcap = errcap, .prefix = prefix};
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || !path || !*path)
        return fail(&c, CDT_EINVAL, "no catalog file given");
    if ((rc = read_file(&c, path, &buf, &len)) != 0)
        return rc;
    rc = load(buf, len, path, prefix, out, errmsg, errcap);
    free(buf);
    return rc;
}

int cdt_catalog_load_file(const char *path, struct cdt_catalog **out, char *errmsg, size_t errcap)
{
    char prefix[4096 + 8];

    snprintf(prefix, sizeof(prefix), "%s: ", path ? path : "(null)");
    return load_file(path, prefix, out, errmsg, errcap);
}

int cdt_catalog_load_default(struct cdt_catalog **out, char *errmsg, size_t errcap)
{
    const char *path = cdt_env_str("CODICTATE_CATALOG", NULL);
    char prefix[4096 + 32];

    if (path) {
        snprintf(prefix, sizeof(prefix), "CODICTATE_CATALOG=%s: ", path);
        return load_file(path, prefix, out, errmsg, errcap);
    }
    return load((const char *)cdt_catalog_builtin_json, cdt_catalog_builtin_json_len,
                BUILTIN_ORIGIN, "built-in catalog: ", out, errmsg, errcap);
}

void cdt_catalog_free(struct cdt_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; cat->models && i < cat->n_models; i++) {
        struct cdt_catalog_model *m = &cat->models[i];

        free((void *)m->aliases);
        free((void *)m->languages);
        free((void *)m->files);
        free((void *)m->sources);
    }
    free(cat->models);
    free(cat->index);
    free(cat->origin);
    cJSON_Delete(cat->root);
    free(cat);
}

const char *cdt_catalog_origin(const struct cdt_catalog *cat)
{
    return cat ? cat->origin : "";
}

size_t cdt_catalog_count(const struct cdt_catalog *cat)
{
    return cat ? cat->n_models : 0;
}

const struct cdt_catalog_model *cdt_catalog_model_at(const struct cdt_catalog *cat, size_t i)
{
    return cat && i < cat->n_models ? &cat->models[i] : NULL;
}

bool cdt_catalog_is_path(const char *arg)
{
    size_t n = arg ? strlen(arg) : 0;

    if (!n)
        return false;
    return strchr(arg, '/') != NULL || (n > 5 && strcmp(arg + n - 5, ".gguf") == 0) ||
           (n > 4 && strcmp(arg + n - 4, ".bin") == 0) || access(arg, F_OK) == 0;
}

const struct cdt_catalog_model *cdt_catalog_find(const struct cdt_catalog *cat,
                                                 const char *id_or_alias)
{
    size_t lo = 0, hi;

    if (!cat || !id_or_alias)
        return NULL;
    hi = cat->n_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(id_or_alias, cat->index[mid].name);

        if (r == 0)
            return &cat->models[cat->index[mid].model];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct cdt_catalog_model *cdt_catalog_recommended(const struct cdt_catalog *cat,
                                                        enum cdt_ram_tier tier)
{
    for (size_t i = 0; cat && i < cat->n_models; i++)
        if (cat->models[i].has_ram_tier && cat->models[i].ram_tier == tier)
            return &cat->models[i];
    return NULL;
}

uint64_t cdt_catalog_model_size(const struct cdt_catalog_model *m)
{
    uint64_t total = 0;

    for (size_t i = 0; m && i < m->n_files; i++)
        total += m->files[i].size;
    return total;
}

const char *cdt_model_kind_name(enum cdt_model_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

const char *cdt_thinking_name(enum cdt_thinking thinking)
{
    return (unsigned)thinking < 4 ? thinking_names[thinking] : "";
}
