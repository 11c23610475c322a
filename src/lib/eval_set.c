/* The case set of the evaluation (see eval.h): JSON Lines read line by line, never
 * more than CDT_EVAL_MAX_LINE bytes of a line held, every field checked before a
 * case is kept, ids unique across the set.
 *
 * Invariants: a case's strings live in one allocation (stored_case.mem) and its
 * `file` in the set's file list, so the pointers handed out stay valid until the
 * set is freed; the category table points at the first case's category string. */
#include "codictate/eval.h"

#include "codictate/json.h"
#include "codictate/text.h"
#include "codictate/util.h"
#include "eval_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CDT_EVAL_SOURCE_CASES
#define CDT_EVAL_SOURCE_CASES "eval/cases"
#endif

/* A category of a set: its name and how many cases it has. */
struct set_cat {
    const char *name;
    long n;
};

/* A case and the one allocation holding its strings. */
struct stored_case {
    struct cdt_eval_case c;
    char *mem;
};

struct cdt_eval_set {
    struct cdt_buf cases; /* struct stored_case[] */
    struct cdt_buf cats;  /* struct set_cat[] */
    struct cdt_buf files; /* char *[]: the file names the cases point at */
    size_t n_cases, n_cats, n_files;
};

static struct stored_case *set_cases(const struct cdt_eval_set *s)
{
    return (struct stored_case *)(void *)s->cases.data;
}

static struct set_cat *set_cats(const struct cdt_eval_set *s)
{
    return (struct set_cat *)(void *)s->cats.data;
}

size_t cdt_eval_set_count(const struct cdt_eval_set *s)
{
    return s ? s->n_cases : 0;
}

const struct cdt_eval_case *cdt_eval_set_case(const struct cdt_eval_set *s, size_t i)
{
    return s && i < s->n_cases ? &set_cases(s)[i].c : NULL;
}

size_t cdt_eval_set_categories(const struct cdt_eval_set *s)
{
    return s ? s->n_cats : 0;
}

const char *cdt_eval_set_category(const struct cdt_eval_set *s, size_t i)
{
    return s && i < s->n_cats ? set_cats(s)[i].name : NULL;
}

void cdt_eval_set_free(struct cdt_eval_set *s)
{
    char **files;

    if (!s)
        return;
    for (size_t i = 0; i < s->n_cases; i++)
        free(set_cases(s)[i].mem);
    files = (char **)(void *)s->files.data;
    for (size_t i = 0; i < s->n_files; i++)
        free(files[i]);
    cdt_buf_cleanup(&s->cases);
    cdt_buf_cleanup(&s->cats);
    cdt_buf_cleanup(&s->files);
    free(s);
}

/* Where a case file is being read, for the messages. */
struct reader {
    struct cdt_eval_set *set;
    const char *file; /* owned by the set */
    long line;
    char *errmsg;
    size_t errcap;
};

static int CDT_PRINTF(3, 4) fail(struct reader *rd, int rc, const char *fmt, ...)
{
    int n = snprintf(rd->errmsg, rd->errcap, "%s:%ld: ", rd->file, rd->line);
    va_list ap;

    if (n >= 0 && (size_t)n < rd->errcap) {
        va_start(ap, fmt);
        vsnprintf(rd->errmsg + n, rd->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Ids and categories: letters, digits and _ - . : / (they are printed as they are). */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CDT_EVAL_MAX_FIELD)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("_-.:/", *s)))
            return false;
    return true;
}

/* The string field `key` of o into *out: NULL when absent or null and optional. */
static int str_field(struct reader *rd, const cJSON *o, const char *key, bool required,
                     const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    *out = NULL;
    if (!v || (cJSON_IsNull(v) && !required))
        return required ? fail(rd, CDT_EFORMAT, "no \"%s\" (a string)", key) : 0;
    if (!cJSON_IsString(v))
        return fail(rd, CDT_EFORMAT, "\"%s\" is not a string", key);
    if (!cdt_utf8_valid(v->valuestring, strlen(v->valuestring)))
        return fail(rd, CDT_EFORMAT, "\"%s\" is not UTF-8 text", key);
    *out = v->valuestring;
    return 0;
}

/* The fields of a case, checked. */
static int case_fields(struct reader *rd, const cJSON *o, const char *f[5])
{
    static const char *const keys[5] = {"id", "category", "input", "reference", "source"};
    size_t toks;
    int rc;

    if (!cJSON_IsObject(o))
        return fail(rd, CDT_EFORMAT, "not a JSON object");
    for (int i = 0; i < 5; i++)
        if ((rc = str_field(rd, o, keys[i], i < 4, &f[i])) != 0)
            return rc;
    for (int i = 0; i < 2; i++)
        if (!name_ok(f[i]))
            return fail(rd, CDT_EFORMAT,
                        "\"%s\" must be 1..%d letters, digits or _ - . : / characters", keys[i],
                        CDT_EVAL_MAX_FIELD);
    toks = cdt__eval_count_tokens(f[3]);
    if (toks > CDT_EVAL_MAX_TOKENS)
        return fail(rd, CDT_ETOOBIG, "the reference has %zu tokens, over CDT_EVAL_MAX_TOKENS (%d)",
                    toks, CDT_EVAL_MAX_TOKENS);
    return 0;
}

/* The case's category rank (its number of earlier cases), adding the category
 * when new. Returns 0 or an error. */
static int category_rank(struct reader *rd, const char *name, long *rank)
{
    struct cdt_eval_set *s = rd->set;
    size_t i =
        s->n_cats ? cdt__eval_name_index(set_cats(s), s->n_cats, sizeof(struct set_cat), name) : 0;

    if (i == s->n_cats) {
        struct set_cat c = {name, 0};

        if (s->n_cats >= CDT_EVAL_MAX_CATEGORIES)
            return fail(rd, CDT_ETOOBIG, "over CDT_EVAL_MAX_CATEGORIES (%d) categories",
                        CDT_EVAL_MAX_CATEGORIES);
        if (cdt_buf_append(&s->cats, &c, sizeof(c)) != 0)
            return CDT_ENOMEM;
        s->n_cats++;
    }
    *rank = set_cats(s)[i].n++;
    return 0;
}

/* Copies the fields into one allocation and appends the case. */
static int add_case(struct reader *rd, const char *f[5])
{
    struct stored_case sc = {0};
    size_t len[5], total = 0;
    const char **dst[5] = {&sc.c.id, &sc.c.category, &sc.c.input, &sc.c.reference, &sc.c.source};
    char *p;
    int rc;

    if (rd->set->n_cases >= CDT_EVAL_MAX_CASES)
        return fail(rd, CDT_ETOOBIG, "over CDT_EVAL_MAX_CASES (%d) cases", CDT_EVAL_MAX_CASES);
    for (int i = 0; i < 5; i++)
        total += (len[i] = f[i] ? strlen(f[i]) + 1 : 0);
    if (!(p = sc.mem = malloc(total)))
        return CDT_ENOMEM;
    for (int i = 0; i < 5; i++) {
        if (!f[i])
            continue;
        memcpy(p, f[i], len[i]);
        *dst[i] = p;
        p += len[i];
    }
    sc.c.file = rd->file;
    sc.c.line = rd->line;
    rc = category_rank(rd, sc.c.category, &sc.c.rank);
    if (rc == 0 && cdt_buf_append(&rd->set->cases, &sc, sizeof(sc)) != 0)
        rc = CDT_ENOMEM;
    if (rc != 0) {
        free(sc.mem); /* the set is thrown away: its category table may point here */
        return rc;
    }
    rd->set->n_cases++;
    return 0;
}

static bool blank(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    return *s == '\0';
}

static int parse_line(struct reader *rd, const char *text, size_t len)
{
    const char *f[5];
    size_t off = 0;
    cJSON *o;
    int rc;

    if (blank(text))
        return 0;
    if (!(o = cdt_json_parse_strict(text, len, &off)))
        return fail(rd, CDT_EFORMAT, "not a JSON object on one line (error at byte %zu)", off + 1);
    rc = case_fields(rd, o, f);
    if (rc == 0)
        rc = add_case(rd, f);
    cJSON_Delete(o);
    return rc;
}

/* Reads one line (without its end) into b. Returns 1 (a line), 0 (end of file),
 * CDT_ETOOBIG (over CDT_EVAL_MAX_LINE), CDT_EIO, CDT_ENOMEM. */
static int read_line(FILE *f, struct cdt_buf *b)
{
    int c;

    cdt_buf_truncate(b, 0);
    if (cdt_buf_reserve(b, 0) != 0)
        return CDT_ENOMEM;
    while ((c = getc(f)) != EOF && c != '\n') {
        char ch = (char)c;

        if (b->len >= CDT_EVAL_MAX_LINE)
            return CDT_ETOOBIG;
        if (cdt_buf_append(b, &ch, 1) != 0)
            return CDT_ENOMEM;
    }
    if (ferror(f))
        return CDT_EIO;
    if (b->len > 0 && b->data[b->len - 1] == '\r')
        cdt_buf_truncate(b, b->len - 1);
    return c == EOF && b->len == 0 ? 0 : 1;
}

static int read_file(struct reader *rd)
{
    struct cdt_buf line = {0};
    struct stat st;
    /* Non-blocking: opening a FIFO must not wait for a writer. */
    int fd = open(rd->file, O_RDONLY | O_NONBLOCK | O_CLOEXEC), err = errno, rc = 0;
    FILE *f;

    if (fd < 0) {
        snprintf(rd->errmsg, rd->errcap, "%s: %s", rd->file, strerror(err));
        return err == ENOENT ? CDT_ENOTFOUND : CDT_EIO;
    }
    /* A FIFO or a device would block or never end. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(f = fdopen(fd, "r"))) {
        snprintf(rd->errmsg, rd->errcap, "%s: not a regular file", rd->file);
        close(fd);
        return CDT_EIO;
    }
    for (rd->line = 1; rc == 0; rd->line++) {
        rc = read_line(f, &line);
        if (rc == CDT_ETOOBIG)
            fail(rd, rc, "line over CDT_EVAL_MAX_LINE (%d bytes)", CDT_EVAL_MAX_LINE);
        else if (rc == CDT_EIO)
            fail(rd, rc, "read error");
        if (rc != 1)
            break;
        rc = parse_line(rd, line.data, line.len);
    }
    cdt_buf_cleanup(&line);
    fclose(f);
    return rc;
}

/* Keeps path as a file name of the set (owned there) and reads it. */
static int load_file(struct reader *rd, const char *path)
{
    char *copy = strdup(path);

    if (!copy || cdt_buf_append(&rd->set->files, &copy, sizeof(copy)) != 0) {
        free(copy);
        return CDT_ENOMEM;
    }
    rd->set->n_files++;
    rd->file = copy;
    return read_file(rd);
}

static int name_qcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.jsonl files of dir (not hidden), sorted by name, into *names. */
static int list_dir(const char *dir, struct cdt_buf *names, size_t *n, char *errmsg, size_t errcap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        snprintf(errmsg, errcap, "%s: %s", dir, strerror(errno));
        return CDT_EIO;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char *name;

        if (e->d_name[0] == '.' || len < 7 || strcmp(e->d_name + len - 6, ".jsonl") != 0)
            continue;
        if (*n >= CDT_EVAL_MAX_FILES) {
            snprintf(errmsg, errcap, "%s: over CDT_EVAL_MAX_FILES (%d) case files", dir,
                     CDT_EVAL_MAX_FILES);
            rc = CDT_ETOOBIG;
        } else if (!(name = strdup(e->d_name)) || cdt_buf_append(names, &name, sizeof(name))) {
            free(name);
            rc = CDT_ENOMEM;
        } else {
            (*n)++;
        }
    }
    closedir(d);
    if (*n)
        qsort(names->data, *n, sizeof(char *), name_qcmp);
    return rc;
}

static int load_dir(struct reader *rd, const char *dir)
{
    struct cdt_buf names = {0};
    char **v, *path;
    size_t n = 0;
    int rc = list_dir(dir, &names, &n, rd->errmsg, rd->errcap);

    v = (char **)(void *)names.data;
    if (rc == 0 && n == 0) {
        snprintf(rd->errmsg, rd->errcap, "%s: no *.jsonl case files", dir);
        rc = CDT_ENOTFOUND;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (asprintf(&path, "%s/%s", dir, v[i]) < 0) {
            rc = CDT_ENOMEM;
            break;
        }
        rc = load_file(rd, path);
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    cdt_buf_cleanup(&names);
    return rc;
}

static int case_id_qcmp(const void *a, const void *b)
{
    const struct cdt_eval_case *x = *(const struct cdt_eval_case *const *)a;
    const struct cdt_eval_case *y = *(const struct cdt_eval_case *const *)b;
    int c = strcmp(x->id, y->id);

    /* Equal ids: in load order, so the message names the first one. */
    return c ? c : (x > y) - (x < y);
}

/* Ids are unique: sorted, neighbours differ. */
static int check_ids(struct reader *rd)
{
    const struct cdt_eval_case **v = malloc((rd->set->n_cases + 1) * sizeof(*v));
    int rc = 0;

    if (!v)
        return CDT_ENOMEM;
    for (size_t i = 0; i < rd->set->n_cases; i++)
        v[i] = &set_cases(rd->set)[i].c;
    qsort(v, rd->set->n_cases, sizeof(*v), case_id_qcmp);
    for (size_t i = 1; i < rd->set->n_cases && rc == 0; i++) {
        if (strcmp(v[i - 1]->id, v[i]->id) == 0) {
            rd->file = v[i]->file;
            rd->line = v[i]->line;
            rc = fail(rd, CDT_EFORMAT, "duplicate id '%s' (first at %s:%ld)", v[i]->id,
                      v[i - 1]->file, v[i - 1]->line);
        }
    }
    free(v);
    return rc;
}

int cdt_eval_set_load(const char *path, struct cdt_eval_set **out, char *errmsg, size_t errcap)
{
    struct reader rd = {0};
    struct stat st;
    int rc, err;

    if (errcap)
        errmsg[0] = '\0';
    *out = NULL;
    if (!path)
        return CDT_EINVAL;
    if (stat(path, &st) != 0) {
        err = errno;
        snprintf(errmsg, errcap, "%s: %s", path, strerror(err));
        return err == ENOENT ? CDT_ENOTFOUND : CDT_EIO;
    }
    if (!(rd.set = calloc(1, sizeof(*rd.set))))
        return CDT_ENOMEM;
    rd.errmsg = errmsg;
    rd.errcap = errcap;
    rc = S_ISDIR(st.st_mode) ? load_dir(&rd, path) : load_file(&rd, path);
    if (rc == 0 && rd.set->n_cases == 0) {
        snprintf(errmsg, errcap, "%s: no cases", path);
        rc = CDT_ENOTFOUND;
    }
    if (rc == 0)
        rc = check_ids(&rd);
    if (rc == CDT_ENOMEM)
        snprintf(errmsg, errcap, "out of memory");
    if (rc != 0)
        cdt_eval_set_free(rd.set);
    else
        *out = rd.set;
    return rc;
}

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cdt_eval_default_cases(char *buf, size_t cap)
{
    char share[PATH_MAX], dir[PATH_MAX + 16];

    if (cdt_share_dir(share, sizeof(share)) == 0) {
        snprintf(dir, sizeof(dir), "%s/eval/cases", share);
        if (is_dir(dir)) {
            snprintf(buf, cap, "%s", dir);
            return 0;
        }
    }
    snprintf(buf, cap, "%s", CDT_EVAL_SOURCE_CASES);
    return is_dir(buf) ? 0 : CDT_ENOTFOUND;
}
