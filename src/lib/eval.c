/* The quality evaluation of the refine path (see eval.h; the case set is read by
 * eval_set.c).
 *
 * Three parts: the metrics (a tokenizer that gives each text a case- and
 * punctuation-sensitive token list, its folded words and its punctuation marks; one
 * Levenshtein alignment over tokens; multiset intersections), the report (counts
 * summed per category and overall as cases are added; ratios and latencies computed
 * once at finish), and the run (the selected cases through a refiner).
 *
 * Invariants: a text's folded words are its sensitive word tokens in the same
 * order, so a mark's "words before it" counts index both lists alike; folding never
 * makes a word longer, so the folded copy fits in a buffer the size of the text.
 * Transcript text is never logged. */
#include "codictate/eval.h"

#include "codictate/json.h"
#include "codictate/refiner.h"
#include "codictate/text.h"
#include "codictate/util.h"
#include "eval_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tokens ---- */

struct span {
    const char *p;
    size_t n;
};

/* A punctuation mark and the number of words before it. */
struct mark {
    size_t pos;
    struct span s;
};

/* One text, tokenized. */
struct text_view {
    char *fold;         /* the folded words, back to back (words point into it) */
    struct span *toks;  /* sensitive tokens: words as written and marks */
    struct span *words; /* folded words */
    struct mark *marks;
    size_t n_toks, n_words, n_marks;
};

/* Marks split off a word's ends (inside a word they stay: "don't", "3.5", "e-mail"). */
/* clang-format off */
static const char *const punct_marks[] = {
    ".", ",", "?", "!", ";", ":", "\"", "'", "(", ")", "[", "]", "{", "}", "-",
    "\u2026", "\u2013", "\u2014",                     /* … – — */
    "\u2018", "\u2019", "\u201c", "\u201d", "\u201e", /* ‘ ’ “ ” „ */
    "\u00ab", "\u00bb", "\u00bf", "\u00a1",           /* « » ¿ ¡ */
};
/* clang-format on */

/* Bytes of the character at s (1..4; an invalid byte is one character). */
static size_t char_len(const char *s, size_t avail)
{
    int n = cdt_utf8_char(s, avail);

    return n > 0 ? (size_t)n : 1;
}

/* Bytes of the punctuation mark at s, or 0. */
static size_t punct_len(const char *s, size_t avail)
{
    for (size_t i = 0; i < N(punct_marks); i++) {
        size_t n = strlen(punct_marks[i]);

        if (n <= avail && memcmp(s, punct_marks[i], n) == 0)
            return n;
    }
    return 0;
}

/* Bytes of the whitespace character at s (ASCII, no-break spaces), or 0. */
static size_t space_len(const char *s, size_t avail)
{
    if (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        return 1;
    if (avail >= 2 && memcmp(s, "\u00a0", 2) == 0)
        return 2;
    if (avail >= 3 && memcmp(s, "\u202f", 3) == 0)
        return 3;
    return 0;
}

typedef void (*tok_fn)(const char *p, size_t n, bool punct, void *ctx);

/* One whitespace-free chunk: its leading marks, the word, its trailing marks. */
static void split_chunk(const char *a, const char *b, tok_fn fn, void *ctx)
{
    const char *word_end, *q;
    size_t n;

    while (a < b && (n = punct_len(a, (size_t)(b - a))) > 0) {
        fn(a, n, true, ctx);
        a += n;
    }
    /* The word runs to the end of its last character that is not a mark. */
    for (word_end = q = a; q < b; q += n) {
        n = punct_len(q, (size_t)(b - q));
        if (!n) {
            n = char_len(q, (size_t)(b - q));
            word_end = q + n;
        }
    }
    if (word_end > a)
        fn(a, (size_t)(word_end - a), false, ctx);
    /* Only marks are left, each found whole by the loop above (n > 0). */
    for (q = word_end; q < b; q += n) {
        n = punct_len(q, (size_t)(b - q));
        fn(q, n, true, ctx);
    }
}

/* Calls fn for each token of text, in order. */
static void tokenize(const char *text, tok_fn fn, void *ctx)
{
    const char *p = text, *end = text + strlen(text);

    while (p < end) {
        const char *start;
        size_t n;

        while (p < end && (n = space_len(p, (size_t)(end - p))) > 0)
            p += n;
        start = p;
        while (p < end && !space_len(p, (size_t)(end - p)))
            p += char_len(p, (size_t)(end - p));
        if (p > start)
            split_chunk(start, p, fn, ctx);
    }
}

static void count_tok(const char *p, size_t n, bool punct, void *ctx)
{
    struct text_view *v = ctx;

    (void)p;
    (void)n;
    v->n_toks++;
    if (punct)
        v->n_marks++;
    else
        v->n_words++;
}

/* Copies a word into dst folded: ASCII and Latin-1 capitals lowercased, ’ as '.
 * Returns the bytes written (at most n). */
static size_t fold_word(const char *s, size_t n, char *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 'A' && c <= 'Z') {
            dst[o++] = (char)(c + 32);
        } else if (c == 0xC3 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                   (unsigned char)s[i + 1] <= 0x9E && (unsigned char)s[i + 1] != 0x97) {
            dst[o++] = (char)c; /* À..Þ but × → à..þ */
            dst[o++] = (char)((unsigned char)s[++i] + 0x20);
        } else if (i + 2 < n && memcmp(s + i, "\u2019", 3) == 0) {
            dst[o++] = '\'';
            i += 2;
        } else {
            dst[o++] = (char)c;
        }
    }
    return o;
}

struct fill_ctx {
    struct text_view *v;
    size_t fold_len;
};

static void fill_tok(const char *p, size_t n, bool punct, void *ctx)
{
    struct fill_ctx *f = ctx;
    struct text_view *v = f->v;

    v->toks[v->n_toks++] = (struct span){p, n};
    if (punct) {
        v->marks[v->n_marks++] = (struct mark){v->n_words, {p, n}};
        return;
    }
    v->words[v->n_words].p = v->fold + f->fold_len;
    v->words[v->n_words].n = fold_word(p, n, v->fold + f->fold_len);
    f->fold_len += v->words[v->n_words++].n;
}

static void view_cleanup(struct text_view *v)
{
    free(v->fold);
    free(v->toks);
    free(v->words);
    free(v->marks);
    memset(v, 0, sizeof(*v));
}

/* Tokenizes text into v (cleanup with view_cleanup). Returns 0 or CDT_ENOMEM. */
static int view_init(struct text_view *v, const char *text)
{
    struct fill_ctx f = {v, 0};

    memset(v, 0, sizeof(*v));
    tokenize(text, count_tok, v);
    v->fold = malloc(strlen(text) + 1);
    v->toks = calloc(v->n_toks + 1, sizeof(*v->toks));
    v->words = calloc(v->n_words + 1, sizeof(*v->words));
    v->marks = calloc(v->n_marks + 1, sizeof(*v->marks));
    if (!v->fold || !v->toks || !v->words || !v->marks) {
        view_cleanup(v);
        return CDT_ENOMEM;
    }
    v->n_toks = v->n_words = v->n_marks = 0;
    tokenize(text, fill_tok, &f);
    return 0;
}

/* ---- shared with eval_set.c (eval_int.h) ---- */

size_t cdt__eval_count_tokens(const char *text)
{
    struct text_view v = {0};

    tokenize(text, count_tok, &v);
    return v.n_toks;
}

/* The index of the element whose first member, a `const char *`, equals name, in
 * an array of n elements `stride` bytes apart; n when none. */
size_t cdt__eval_name_index(const void *arr, size_t n, size_t stride, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        const char *const *s = (const void *)((const char *)arr + i * stride);

        if (strcmp(*s, name) == 0)
            return i;
    }
    return n;
}

/* ---- alignment ---- */

static int span_cmp(const struct span *a, const struct span *b)
{
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);

    return c ? c : (a->n > b->n) - (a->n < b->n);
}

static bool span_eq(const struct span *a, const struct span *b)
{
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

enum { OP_DIAG, OP_DEL, OP_INS };

/* Walks the operations back from the end: map[j] = the a-token that b-token j is
 * aligned with (a match or a substitution), or -1 (an insertion). */
static void backtrace(const unsigned char *op, size_t na, size_t nb, long *map)
{
    size_t i = na, j = nb;

    while (i > 0 || j > 0) {
        unsigned char o = op[i * (nb + 1) + j];

        if (o == OP_DIAG)
            map[--j] = (long)--i;
        else if (o == OP_DEL)
            i--;
        else
            map[--j] = -1;
    }
}

/* The Levenshtein distance between a[0..n) and b[0..m) in *dist; with map (m
 * entries), each b-token's partner as backtrace gives it. Tokens past
 * CDT_EVAL_MAX_TOKENS on either side are unaligned deletions / insertions (map -1).
 * Returns 0 or CDT_ENOMEM. */
static int align(const struct span *a, size_t n, const struct span *b, size_t m, long *dist,
                 long *map)
{
    size_t na = n < CDT_EVAL_MAX_TOKENS ? n : CDT_EVAL_MAX_TOKENS;
    size_t nb = m < CDT_EVAL_MAX_TOKENS ? m : CDT_EVAL_MAX_TOKENS;
    long *prev = malloc((nb + 1) * sizeof(long)), *cur = malloc((nb + 1) * sizeof(long));
    unsigned char *op = map ? malloc((na + 1) * (nb + 1)) : NULL;

    if (!prev || !cur || (map && !op)) {
        free(prev);
        free(cur);
        free(op);
        return CDT_ENOMEM;
    }
    for (size_t j = 0; j <= nb; j++) {
        prev[j] = (long)j;
        if (op)
            op[j] = OP_INS;
    }
    for (size_t i = 1; i <= na; i++) {
        long *t;

        cur[0] = (long)i;
        if (op)
            op[i * (nb + 1)] = OP_DEL;
        for (size_t j = 1; j <= nb; j++) {
            long best = prev[j - 1] + !span_eq(&a[i - 1], &b[j - 1]);
            unsigned char o = OP_DIAG;

            if (prev[j] + 1 < best) {
                best = prev[j] + 1;
                o = OP_DEL;
            }
            if (cur[j - 1] + 1 < best) {
                best = cur[j - 1] + 1;
                o = OP_INS;
            }
            cur[j] = best;
            if (op)
                op[i * (nb + 1) + j] = o;
        }
        t = prev;
        prev = cur;
        cur = t;
    }
    *dist = prev[nb] + (long)(n - na) + (long)(m - nb);
    if (map) {
        for (size_t j = 0; j < m; j++)
            map[j] = -1;
        backtrace(op, na, nb, map);
    }
    free(prev);
    free(cur);
    free(op);
    return 0;
}

/* ---- multisets ---- */

static int span_qcmp(const void *a, const void *b)
{
    return span_cmp(a, b);
}

static int mark_qcmp(const void *a, const void *b)
{
    const struct mark *x = a, *y = b;

    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return span_cmp(&x->s, &y->s);
}

/* The size of the multiset intersection of two arrays of elements of `size` bytes
 * under cmp. Sorts both in place. */
static long intersect(void *a, size_t n, void *b, size_t m, size_t size,
                      int (*cmp)(const void *, const void *))
{
    size_t i = 0, j = 0;
    long both = 0;

    qsort(a, n, size, cmp);
    qsort(b, m, size, cmp);
    while (i < n && j < m) {
        int c = cmp((char *)a + i * size, (char *)b + j * size);

        both += c == 0;
        i += c <= 0;
        j += c >= 0;
    }
    return both;
}

/* Words that carry little meaning on their own. Negations are not among them. */
static const char *const stopwords[] = {
    "a",    "about",  "after", "all",  "also",  "am",    "an",    "and",   "any",   "are",
    "as",   "at",     "be",    "been", "being", "but",   "by",    "can",   "could", "did",
    "do",   "does",   "for",   "from", "had",   "has",   "have",  "he",    "her",   "here",
    "him",  "his",    "how",   "i",    "if",    "in",    "into",  "is",    "it",    "its",
    "just", "me",     "more",  "my",   "of",    "on",    "or",    "our",   "out",   "over",
    "she",  "should", "so",    "some", "such",  "than",  "that",  "the",   "their", "them",
    "then", "there",  "these", "they", "this",  "those", "to",    "up",    "us",    "very",
    "was",  "we",     "were",  "what", "when",  "where", "which", "while", "who",   "will",
    "with", "would",  "you",   "your",
};

static bool is_stopword(const struct span *w)
{
    for (size_t i = 0; i < N(stopwords); i++)
        if (strlen(stopwords[i]) == w->n && memcmp(stopwords[i], w->p, w->n) == 0)
            return true;
    return false;
}

/* A folded number word as its digits ("three" → "3"), other words as they are:
 * content kept asks whether the meaning survived, and "3 bullet points" for "three
 * bullet points" loses none (the WER columns still count the style). */
static struct span number_form(const struct span *w)
{
    static const char *const words[][2] = {
        {"zero", "0"},     {"one", "1"},        {"two", "2"},       {"three", "3"},
        {"four", "4"},     {"five", "5"},       {"six", "6"},       {"seven", "7"},
        {"eight", "8"},    {"nine", "9"},       {"ten", "10"},      {"eleven", "11"},
        {"twelve", "12"},  {"thirteen", "13"},  {"fourteen", "14"}, {"fifteen", "15"},
        {"sixteen", "16"}, {"seventeen", "17"}, {"eighteen", "18"}, {"nineteen", "19"},
        {"twenty", "20"},  {"thirty", "30"},    {"forty", "40"},    {"fifty", "50"},
        {"sixty", "60"},   {"seventy", "70"},   {"eighty", "80"},   {"ninety", "90"},
    };

    for (size_t i = 0; i < N(words); i++)
        if (strlen(words[i][0]) == w->n && memcmp(words[i][0], w->p, w->n) == 0)
            return (struct span){words[i][1], strlen(words[i][1])};
    return *w;
}

static int content_qcmp(const void *a, const void *b)
{
    struct span x = number_form(a), y = number_form(b);

    return span_cmp(&x, &y);
}

/* The reference's content words kept by the output, a number in words or digits
 * alike (the arrays are reordered). */
static void count_content(struct text_view *ref, struct text_view *out, struct cdt_eval_counts *c)
{
    size_t k = 0;

    /* Content words first, in place: the words are not needed in order after this. */
    for (size_t i = 0; i < ref->n_words; i++) {
        if (!is_stopword(&ref->words[i])) {
            struct span t = ref->words[k];

            ref->words[k++] = ref->words[i];
            ref->words[i] = t;
        }
    }
    c->content_ref = (long)k;
    c->content_kept =
        intersect(ref->words, k, out->words, out->n_words, sizeof(struct span), content_qcmp);
}

/* Matches the output's marks, moved to reference positions through map (the
 * output words' partners), with the reference's. */
static void count_punct(struct text_view *ref, struct text_view *out, const long *map,
                        struct cdt_eval_counts *c)
{
    for (size_t i = 0; i < out->n_marks; i++) {
        size_t k = out->marks[i].pos, pos = 0;

        /* The boundary after the last output word before it that has a partner. */
        while (k > 0 && map[k - 1] < 0)
            k--;
        if (k > 0)
            pos = (size_t)map[k - 1] + 1;
        out->marks[i].pos = pos;
    }
    c->punct_ref = (long)ref->n_marks;
    c->punct_out = (long)out->n_marks;
    c->punct_match = intersect(ref->marks, ref->n_marks, out->marks, out->n_marks,
                               sizeof(struct mark), mark_qcmp);
}

static int compare_views(struct text_view *ref, struct text_view *out, struct cdt_eval_counts *c)
{
    long *map = calloc(out->n_words + 1, sizeof(long));

    if (!map)
        return CDT_ENOMEM;
    if (align(ref->toks, ref->n_toks, out->toks, out->n_toks, &c->errors, NULL) != 0 ||
        align(ref->words, ref->n_words, out->words, out->n_words, &c->errors_ci, map) != 0) {
        free(map);
        return CDT_ENOMEM;
    }
    c->ref_tokens = (long)ref->n_toks;
    c->ref_words = (long)ref->n_words;
    c->out_words = (long)out->n_words;
    count_punct(ref, out, map, c);
    free(map);
    /* Last: these reorder the word arrays. */
    count_content(ref, out, c);
    c->shared_words = intersect(ref->words, ref->n_words, out->words, out->n_words,
                                sizeof(struct span), span_qcmp);
    return 0;
}

int cdt_eval_compare(const char *reference, const char *output, struct cdt_eval_counts *out)
{
    struct text_view ref, hyp;
    int rc;

    if (!reference || !output || !out)
        return CDT_EINVAL;
    memset(out, 0, sizeof(*out));
    if (view_init(&ref, reference) != 0)
        return CDT_ENOMEM;
    if (view_init(&hyp, output) != 0) {
        view_cleanup(&ref);
        return CDT_ENOMEM;
    }
    rc = compare_views(&ref, &hyp, out);
    out->changed = strcmp(reference, output) != 0;
    view_cleanup(&ref);
    view_cleanup(&hyp);
    return rc;
}

static double ratio(long num, long den)
{
    return den > 0 ? (double)num / (double)den : NAN;
}

struct cdt_eval_metrics cdt_eval_metrics_of(const struct cdt_eval_counts *c, long cases)
{
    struct cdt_eval_metrics m;

    m.wer = (double)c->errors / (double)(c->ref_tokens > 0 ? c->ref_tokens : 1);
    m.wer_ci = (double)c->errors_ci / (double)(c->ref_words > 0 ? c->ref_words : 1);
    m.punct_p = ratio(c->punct_match, c->punct_out);
    m.punct_r = ratio(c->punct_match, c->punct_ref);
    if (c->punct_out == 0 && c->punct_ref == 0)
        m.punct_f1 = NAN;
    else if (c->punct_match == 0)
        m.punct_f1 = 0;
    else
        m.punct_f1 = 2 * m.punct_p * m.punct_r / (m.punct_p + m.punct_r);
    m.content_kept = ratio(c->content_kept, c->content_ref);
    m.changed = ratio(c->changed, cases);
    return m;
}

bool cdt_eval_pass_through(const char *category)
{
    return category && (strcmp(category, "clean") == 0 || strcmp(category, "non_english") == 0);
}

/* ---- the report ---- */

struct cdt_eval_report {
    struct cdt_buf cats;     /* struct cdt_eval_category[] */
    struct cdt_buf outcomes; /* struct cdt_eval_outcome[] */
    size_t n_cats, n_outcomes;
    struct cdt_eval_category all;
    char *model;
    bool keep_texts, finished;
};

static struct cdt_eval_category *report_cats(const struct cdt_eval_report *r)
{
    return (struct cdt_eval_category *)(void *)r->cats.data;
}

static struct cdt_eval_outcome *report_outcomes(const struct cdt_eval_report *r)
{
    return (struct cdt_eval_outcome *)(void *)r->outcomes.data;
}

int cdt_eval_report_new(bool keep_texts, struct cdt_eval_report **out)
{
    struct cdt_eval_report *r = calloc(1, sizeof(*r));

    *out = r;
    if (!r)
        return CDT_ENOMEM;
    r->keep_texts = keep_texts;
    r->all.name = "all";
    return 0;
}

void cdt_eval_report_free(struct cdt_eval_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_outcomes; i++) {
        free(report_outcomes(r)[i].det_text);
        free(report_outcomes(r)[i].model_text);
    }
    cdt_buf_cleanup(&r->cats);
    cdt_buf_cleanup(&r->outcomes);
    free(r->model);
    free(r);
}

/* The category named name, added when new; NULL when out of memory. */
static struct cdt_eval_category *report_category(struct cdt_eval_report *r, const char *name)
{
    size_t i = r->n_cats ? cdt__eval_name_index(r->cats.data, r->n_cats, sizeof(r->all), name) : 0;
    struct cdt_eval_category k = {0};

    if (i < r->n_cats)
        return &report_cats(r)[i];
    k.name = name;
    k.pass_through = cdt_eval_pass_through(name);
    if (cdt_buf_append(&r->cats, &k, sizeof(k)) != 0)
        return NULL;
    return &report_cats(r)[r->n_cats++];
}

static void add_counts(struct cdt_eval_counts *dst, const struct cdt_eval_counts *c)
{
#define ADD_(field, key) dst->field += c->field;
    CDT_EVAL_COUNTS_MAP(ADD_)
#undef ADD_
}

/* The model answered or refused instead of cleaning: a guard said so, or its
 * delivered output shares too few words with the reference (Dice: 2 × shared /
 * (reference words + output words), symmetric, so that neither digits for spoken
 * numbers nor a dropped false start count as an answer on their own). */
static bool answered(const struct cdt_eval_outcome *o)
{
    long both = o->model.ref_words + o->model.out_words;

    if (o->reason == CDT_REFINE_GUARD_ANSWER || o->reason == CDT_REFINE_GUARD_REFUSAL)
        return true;
    return o->reason == CDT_REFINE_OK && both > 0 &&
           2.0 * (double)o->model.shared_words < CDT_EVAL_ANSWER_SHARE * (double)both;
}

/* Guards are told apart by their stable machine names ("guard_*", see refine.h), so
 * a guard added to the list is counted without a change here. */
static bool guard_trip(enum cdt_refine_reason reason)
{
    return strncmp(cdt_refine_reason_name(reason), "guard_", 6) == 0;
}

static void tally(struct cdt_eval_category *k, const struct cdt_eval_outcome *o)
{
    k->cases++;
    add_counts(&k->det.counts, &o->det);
    add_counts(&k->model.counts, &o->model);
    if ((int)o->reason >= 0 && (int)o->reason < CDT_EVAL_N_REASONS)
        k->reasons[o->reason]++;
    k->fallbacks += o->reason != CDT_REFINE_OK;
    k->guard_trips += guard_trip(o->reason);
    k->answered += answered(o);
}

/* Fills the outcome of res; texts copied when the report keeps them. */
static int outcome_of(const struct cdt_eval_report *r, const struct cdt_eval_case *c,
                      const struct cdt_refine_result *res, struct cdt_eval_outcome *o)
{
    /* The app's answer leaves `cleaned` out when the model's text was used. */
    const char *det = res->cleaned ? res->cleaned : res->refined;

    memset(o, 0, sizeof(*o));
    o->c = c;
    o->reason = res->reason;
    o->det_ms = res->timings.deterministic_ms;
    o->total_ms = res->timings.total_ms;
    if (cdt_eval_compare(c->reference, det, &o->det) != 0 ||
        cdt_eval_compare(c->reference, res->refined, &o->model) != 0)
        return CDT_ENOMEM;
    if (!r->keep_texts)
        return 0;
    o->det_text = strdup(det);
    o->model_text = strdup(res->refined);
    if (!o->det_text || !o->model_text) {
        free(o->det_text);
        free(o->model_text);
        return CDT_ENOMEM;
    }
    return 0;
}

int cdt_eval_report_add(struct cdt_eval_report *r, const struct cdt_eval_case *c,
                        const struct cdt_refine_result *res)
{
    struct cdt_eval_outcome o;
    struct cdt_eval_category *k;

    if (!r || !c || !res || !res->refined || r->finished)
        return CDT_EINVAL;
    if (!r->model && res->model && !(r->model = strdup(res->model)))
        return CDT_ENOMEM;
    if (outcome_of(r, c, res, &o) != 0)
        return CDT_ENOMEM;
    if (!(k = report_category(r, c->category)) ||
        cdt_buf_append(&r->outcomes, &o, sizeof(o)) != 0) {
        free(o.det_text);
        free(o.model_text);
        return CDT_ENOMEM;
    }
    r->n_outcomes++;
    tally(k, &o);
    tally(&r->all, &o);
    return 0;
}

static int dbl_qcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Mean and nearest-rank percentiles of v[0..n) (sorted here). */
static struct cdt_eval_latency latency_of(double *v, size_t n)
{
    struct cdt_eval_latency l = {0};
    double sum = 0;

    if (!n)
        return l;
    qsort(v, n, sizeof(*v), dbl_qcmp);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    l.mean_ms = sum / (double)n;
    l.p50_ms = v[(size_t)ceil(0.50 * (double)n) - 1];
    l.p95_ms = v[(size_t)ceil(0.95 * (double)n) - 1];
    return l;
}

/* The metrics and latencies of k (name NULL: every outcome), with scratch room for
 * all the outcomes in det and tot. */
static void finish_category(const struct cdt_eval_report *r, struct cdt_eval_category *k,
                            const char *name, double *det, double *tot)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n_outcomes; i++) {
        const struct cdt_eval_outcome *o = &report_outcomes(r)[i];

        if (name && strcmp(o->c->category, name) != 0)
            continue;
        det[n] = o->det_ms;
        tot[n++] = o->total_ms;
    }
    k->det.latency = latency_of(det, n);
    k->model.latency = latency_of(tot, n);
    k->det.metrics = cdt_eval_metrics_of(&k->det.counts, k->cases);
    k->model.metrics = cdt_eval_metrics_of(&k->model.counts, k->cases);
}

int cdt_eval_report_finish(struct cdt_eval_report *r)
{
    double *det = malloc((r->n_outcomes + 1) * sizeof(double));
    double *tot = malloc((r->n_outcomes + 1) * sizeof(double));

    if (!det || !tot) {
        free(det);
        free(tot);
        return CDT_ENOMEM;
    }
    for (size_t i = 0; i < r->n_cats; i++)
        finish_category(r, &report_cats(r)[i], report_cats(r)[i].name, det, tot);
    finish_category(r, &r->all, NULL, det, tot);
    r->finished = true;
    free(det);
    free(tot);
    return 0;
}

size_t cdt_eval_report_count(const struct cdt_eval_report *r)
{
    return r->n_cats;
}

const struct cdt_eval_category *cdt_eval_report_category(const struct cdt_eval_report *r, size_t i)
{
    return i < r->n_cats ? &report_cats(r)[i] : NULL;
}

const struct cdt_eval_category *cdt_eval_report_overall(const struct cdt_eval_report *r)
{
    return &r->all;
}

size_t cdt_eval_report_outcomes(const struct cdt_eval_report *r)
{
    return r->n_outcomes;
}

const struct cdt_eval_outcome *cdt_eval_report_outcome(const struct cdt_eval_report *r, size_t i)
{
    return i < r->n_outcomes ? &report_outcomes(r)[i] : NULL;
}

const char *cdt_eval_report_model(const struct cdt_eval_report *r)
{
    return r->model;
}

bool cdt_eval_outcome_failed(const struct cdt_eval_outcome *o)
{
    return o->model.changed != 0;
}

/* ---- JSON ----
 * Every builder takes `ok` and clears it when something could not be added (out of
 * memory), so the root is given back whole or not at all. */

/* Adds a number rounded to 4 decimals, or null for NAN. */
static void put_num(cJSON *o, const char *key, double v, bool *ok)
{
    if (!(isnan(v) ? cJSON_AddNullToObject(o, key)
                   : cJSON_AddNumberToObject(o, key, round(v * 1e4) / 1e4)))
        *ok = false;
}

/* Adds item (NULL: out of memory), which o then owns. */
static void put_item(cJSON *o, const char *key, cJSON *item, bool *ok)
{
    if (!item || !(key ? cJSON_AddItemToObject(o, key, item) : cJSON_AddItemToArray(o, item))) {
        cJSON_Delete(item);
        *ok = false;
    }
}

static void put_str(cJSON *o, const char *key, const char *s, bool *ok)
{
    if (!cdt_json_add_str(o, key, s))
        *ok = false;
}

static cJSON *counts_json(const struct cdt_eval_counts *c, bool *ok)
{
    cJSON *o = cJSON_CreateObject();

    if (o) {
#define PUT_(field, key) put_num(o, key, (double)c->field, ok);
        CDT_EVAL_COUNTS_MAP(PUT_)
#undef PUT_
    }
    return o;
}

static cJSON *latency_json(const struct cdt_eval_latency *l, bool *ok)
{
    cJSON *o = cJSON_CreateObject();

    if (o) {
        put_num(o, "mean", l->mean_ms, ok);
        put_num(o, "p50", l->p50_ms, ok);
        put_num(o, "p95", l->p95_ms, ok);
    }
    return o;
}

static cJSON *column_json(const struct cdt_eval_column *col, bool *ok)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    put_num(o, "wer", col->metrics.wer, ok);
    put_num(o, "wer_insensitive", col->metrics.wer_ci, ok);
    put_num(o, "punct_f1", col->metrics.punct_f1, ok);
    put_num(o, "punct_precision", col->metrics.punct_p, ok);
    put_num(o, "punct_recall", col->metrics.punct_r, ok);
    put_num(o, "content_kept", col->metrics.content_kept, ok);
    put_num(o, "changed", col->metrics.changed, ok);
    put_item(o, "latency_ms", latency_json(&col->latency, ok), ok);
    put_item(o, "counts", counts_json(&col->counts, ok), ok);
    return o;
}

/* {reason_code: cases} for the reasons that occurred. */
static cJSON *reasons_json(const struct cdt_eval_category *k, bool *ok)
{
    cJSON *o = cJSON_CreateObject();

    for (int i = 0; o && i < CDT_EVAL_N_REASONS; i++)
        if (k->reasons[i])
            put_num(o, cdt_refine_reason_name((enum cdt_refine_reason)i), (double)k->reasons[i],
                    ok);
    return o;
}

/* The model column: the metrics, and what happened to the model's output. */
static cJSON *model_json(const struct cdt_eval_category *k, bool *ok)
{
    cJSON *o = column_json(&k->model, ok);

    if (!o)
        return NULL;
    put_num(o, "fallbacks", (double)k->fallbacks, ok);
    put_num(o, "guard_trips", (double)k->guard_trips, ok);
    put_num(o, "answered", (double)k->answered, ok);
    put_item(o, "reasons", reasons_json(k, ok), ok);
    return o;
}

static cJSON *category_json(const struct cdt_eval_category *k, bool *ok)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    put_str(o, "category", k->name, ok);
    put_num(o, "cases", (double)k->cases, ok);
    put_item(o, "pass_through", cJSON_CreateBool(k->pass_through), ok);
    put_item(o, "deterministic", column_json(&k->det, ok), ok);
    put_item(o, "model", model_json(k, ok), ok);
    return o;
}

static cJSON *failure_json(const struct cdt_eval_outcome *o, bool *ok)
{
    struct cdt_eval_metrics m = cdt_eval_metrics_of(&o->model, 1);
    cJSON *f = cJSON_CreateObject();

    if (!f)
        return NULL;
    put_str(f, "id", o->c->id, ok);
    put_str(f, "category", o->c->category, ok);
    put_str(f, "file", o->c->file, ok);
    put_num(f, "line", (double)o->c->line, ok);
    put_str(f, "reason_code", o->reason == CDT_REFINE_OK ? NULL : cdt_refine_reason_name(o->reason),
            ok);
    put_num(f, "wer", m.wer, ok);
    put_num(f, "wer_insensitive", m.wer_ci, ok);
    put_str(f, "input", o->c->input, ok);
    put_str(f, "reference", o->c->reference, ok);
    put_str(f, "deterministic", o->det_text, ok);
    put_str(f, "model", o->model_text, ok);
    return f;
}

static cJSON *failures_json(const struct cdt_eval_report *r, bool *ok)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; arr && i < r->n_outcomes; i++)
        if (cdt_eval_outcome_failed(&report_outcomes(r)[i]))
            put_item(arr, NULL, failure_json(&report_outcomes(r)[i], ok), ok);
    return arr;
}

cJSON *cdt_eval_report_json(const struct cdt_eval_report *r, bool failures)
{
    cJSON *root = cJSON_CreateObject(), *cats = cJSON_CreateArray();
    bool ok = true;

    if (!root || !cats) {
        cJSON_Delete(root);
        cJSON_Delete(cats);
        return NULL;
    }
    put_num(root, "cases", (double)r->n_outcomes, &ok);
    put_str(root, "model", r->model, &ok);
    for (size_t i = 0; i < r->n_cats; i++)
        put_item(cats, NULL, category_json(&report_cats(r)[i], &ok), &ok);
    put_item(root, "categories", cats, &ok);
    put_item(root, "overall", category_json(&r->all, &ok), &ok);
    if (failures)
        put_item(root, "failures", failures_json(r, &ok), &ok);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* ---- running a set ---- */

struct cdt_eval_params cdt_eval_default_params(void)
{
    struct cdt_eval_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

static bool selected(const struct cdt_eval_params *p, const struct cdt_eval_case *c)
{
    return (!p->category || strcmp(c->category, p->category) == 0) &&
           (p->limit <= 0 || c->rank < p->limit);
}

/* "no case in category X (categories: a, b, c)". */
static void no_such_category(const struct cdt_eval_set *s, const char *name, char *errmsg,
                             size_t errcap)
{
    size_t len;

    snprintf(errmsg, errcap, "no case in category '%s' (categories:", name);
    for (size_t i = 0; i < cdt_eval_set_categories(s); i++) {
        len = strlen(errmsg);
        snprintf(errmsg + len, errcap - len, "%s %s", i ? "," : "", cdt_eval_set_category(s, i));
    }
    len = strlen(errmsg);
    snprintf(errmsg + len, errcap - len, ")");
}

/* Runs the selected cases into r. */
static int run_cases(const struct cdt_eval_params *p, const struct cdt_eval_set *set, size_t total,
                     struct cdt_eval_report *r)
{
    size_t done = 0;

    for (size_t i = 0; i < cdt_eval_set_count(set); i++) {
        const struct cdt_eval_case *c = cdt_eval_set_case(set, i);
        struct cdt_refine_result res;
        int rc;

        if (!selected(p, c))
            continue;
        if (p->on_progress)
            p->on_progress(done, total, c, p->user_data);
        if (cdt_refiner_run(p->refiner, c->input, &res) != 0)
            return CDT_ENOMEM;
        rc = cdt_eval_report_add(r, c, &res);
        cdt_refine_result_cleanup(&res);
        if (rc != 0)
            return rc;
        done++;
    }
    if (p->on_progress)
        p->on_progress(done, total, NULL, p->user_data);
    return 0;
}

int cdt_eval_run(const struct cdt_eval_params *p, const struct cdt_eval_set *set,
                 struct cdt_eval_report **out, char *errmsg, size_t errcap)
{
    struct cdt_eval_report *r;
    size_t total = 0;
    char err[512];
    int rc;

    *out = NULL;
    if (errcap)
        errmsg[0] = '\0';
    if (!p || !p->refiner || !set)
        return CDT_EINVAL;
    for (size_t i = 0; i < cdt_eval_set_count(set); i++)
        total += selected(p, cdt_eval_set_case(set, i));
    if (total == 0) {
        no_such_category(set, p->category ? p->category : "", errmsg, errcap);
        return CDT_ENOTFOUND;
    }
    /* Latency is the refinement's, not the first load's; a failure shows per case. */
    (void)!cdt_refiner_preload(p->refiner, err, sizeof(err));
    if (cdt_eval_report_new(p->keep_texts, &r) != 0)
        return CDT_ENOMEM;
    rc = run_cases(p, set, total, r);
    if (rc == 0)
        rc = cdt_eval_report_finish(r);
    if (rc != 0) {
        snprintf(errmsg, errcap, "out of memory");
        cdt_eval_report_free(r);
        return rc;
    }
    *out = r;
    return 0;
}
