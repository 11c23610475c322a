/* The quality evaluation of the refine path (`codictate eval`, application layer).
 *
 * A case set is JSON Lines: one case per line,
 *   {"id": "…", "category": "…", "input": "raw transcript",
 *    "reference": "expected cleaned text", "source": "optional"}
 * read from one file or from every *.jsonl file of a directory (in name order).
 * Each case runs once through the whole refine path (cdt_refiner_run: the
 * deterministic pass, the prompt, the model, the guards), and that one result
 * gives two columns: "deterministic" (result.cleaned, the baseline) and "model"
 * (result.refined, what is delivered).
 *
 * Metrics, per category and overall (counts are summed over the cases first, so
 * every ratio is a corpus-level one):
 * - WER: token edit distance (Levenshtein) / reference tokens. Case- and
 *   punctuation-sensitive: words keep their case, and punctuation attached to a
 *   word's ends is split off, one token per mark ("Hello, world." → Hello , world .).
 *   Insensitive: words only, lowercased (ASCII and Latin-1 letters), ’ read as '.
 *   An empty reference counts 1 in the denominator (every output word is an error).
 * - Punctuation F1: each mark is a pair (number of words before it, mark). The
 *   output's positions are mapped onto the reference's through the insensitive word
 *   alignment (a mark after an inserted word maps to the boundary after the last
 *   aligned reference word); matched pairs are the multiset intersection.
 * - Content words kept: the share of the reference's words outside a small English
 *   stopword list (negations are content) found in the output (multisets,
 *   insensitive).
 * - Changed: the share of outputs that differ byte for byte from the reference (the
 *   figure for the pass-through categories, "clean" and "non_english").
 * - Model column only: cases per refine reason (cdt_refine_reason_name), guard trips
 *   (reasons named guard_*), "answered" (guard_answer or guard_refusal, or a model
 *   output delivered that shares under CDT_EVAL_ANSWER_SHARE of its words with the
 *   reference: 2 × shared / (reference words + output words), insensitive), latency
 *   (mean, p50, p95 of the refine total, nearest rank). The deterministic column's
 *   latency is the deterministic pass's.
 *
 * Nothing is printed; transcript text never reaches the log. Thread-safety: a set
 * and a report are used by one thread at a time; cdt_eval_compare is pure. */
#ifndef CODICTATE_EVAL_H
#define CODICTATE_EVAL_H

#include "codictate/err.h"
#include "codictate/refine.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_EVAL_MAX_LINE  (256 * 1024) /* one case line of a case file, bytes */
#define CDT_EVAL_MAX_CASES 100000       /* cases in a set */
#define CDT_EVAL_MAX_FILES 1000         /* *.jsonl files in a case directory */
#define CDT_EVAL_MAX_FIELD 128          /* an id or a category, bytes */
#define CDT_EVAL_MAX_TOKENS                                                                        \
    4096                          /* tokens of a reference; an output's tokens past it             \
                                   * count as insertions, unaligned */
#define CDT_EVAL_ANSWER_SHARE 0.5 /* shared words (Dice) under this share: "answered" */

#define CDT_EVAL_MAX_CATEGORIES 1000 /* categories in a set */

/* True for the pass-through categories, "clean" and "non_english": inputs already
 * clean (reference = input), where a refiner must change nothing. */
bool cdt_eval_pass_through(const char *category);

/* One case of a set. Strings owned by the set. */
struct cdt_eval_case {
    const char *id;
    const char *category;
    const char *input;     /* the raw transcript */
    const char *reference; /* the expected cleaned text */
    const char *source;    /* where it comes from; NULL when not given */
    const char *file;      /* the case file it was read from */
    long line;             /* its line there, from 1 */
    long rank;             /* its place among the cases of its category, from 0 */
};

struct cdt_eval_set;

/* Reads a case file, or every *.jsonl file of a directory. Blank lines are
 * skipped; anything else must be one JSON object with string fields id, category
 * (each 1..CDT_EVAL_MAX_FIELD letters, digits or _ - . : /), input and reference (UTF-8, input at
 * most CDT_REFINE_MAX_TEXT bytes, reference at most CDT_EVAL_MAX_TOKENS tokens) and optionally
 * source (other keys are ignored); ids are unique across the set. Returns 0 and *out (free with
 * cdt_eval_set_free), CDT_ENOTFOUND / CDT_EIO (the path or a file cannot be read, a directory
 * without *.jsonl), CDT_EFORMAT (a bad line: errmsg starts "FILE:LINE: "), CDT_ETOOBIG (a cap:
 * errmsg names the file, line when there is one, and the cap), CDT_ENOMEM. */
CDT_NODISCARD int cdt_eval_set_load(const char *path, struct cdt_eval_set **out, char *errmsg,
                                    size_t errcap);

/* The number of cases, and case i (< count; borrowed until the set is freed). */
size_t cdt_eval_set_count(const struct cdt_eval_set *s);
const struct cdt_eval_case *cdt_eval_set_case(const struct cdt_eval_set *s, size_t i);

/* The number of categories, and category i (< count) in the order their first case
 * came; borrowed until the set is freed. */
size_t cdt_eval_set_categories(const struct cdt_eval_set *s);
const char *cdt_eval_set_category(const struct cdt_eval_set *s, size_t i);

/* NULL is a no-op. */
void cdt_eval_set_free(struct cdt_eval_set *s);

/* The shipped case directory: <cdt_share_dir()>/eval/cases (an install, or a build
 * tree, which mirrors it), else the source tree's eval/cases, whichever exists
 * first. Returns 0 with the path in buf, or CDT_ENOTFOUND (buf holds the source
 * tree's path, for the message). */
CDT_NODISCARD int cdt_eval_default_cases(char *buf, size_t cap);

/* ---- metrics of one output against its reference ---- */

/* The counts of one comparison (summed over the cases in a report), as one list,
 * X(field, JSON key), so that summing and printing them never miss one:
 *   errors        edit distance, sensitive tokens
 *   ref_tokens    reference tokens, sensitive
 *   errors_ci     edit distance, insensitive words
 *   ref_words     reference words
 *   out_words     output words
 *   shared_words  words in both (multiset intersection, insensitive)
 *   punct_match   punctuation pairs in both
 *   punct_out     punctuation marks of the output
 *   punct_ref     punctuation marks of the reference
 *   content_kept  reference content words found in the output
 *   content_ref   reference content words
 *   changed       outputs that differ from the reference (0 or 1 per case) */
#define CDT_EVAL_COUNTS_MAP(X)                                                                     \
    X(errors, "errors")                                                                            \
    X(ref_tokens, "ref_tokens")                                                                    \
    X(errors_ci, "errors_insensitive")                                                             \
    X(ref_words, "ref_words")                                                                      \
    X(out_words, "out_words")                                                                      \
    X(shared_words, "shared_words")                                                                \
    X(punct_match, "punct_match")                                                                  \
    X(punct_out, "punct_out")                                                                      \
    X(punct_ref, "punct_ref")                                                                      \
    X(content_kept, "content_kept")                                                                \
    X(content_ref, "content_ref")                                                                  \
    X(changed, "changed")

struct cdt_eval_counts {
#define CDT_EVAL_COUNT_FIELD_(field, key) long field;
    CDT_EVAL_COUNTS_MAP(CDT_EVAL_COUNT_FIELD_)
#undef CDT_EVAL_COUNT_FIELD_
};

/* Compares output with reference (UTF-8; invalid bytes count as letters). Returns 0
 * and *out, CDT_EINVAL (NULL argument), CDT_ENOMEM. */
CDT_NODISCARD int cdt_eval_compare(const char *reference, const char *output,
                                   struct cdt_eval_counts *out);

/* The ratios of counts; NAN where undefined (no punctuation on either side, no
 * content word in the references). */
struct cdt_eval_metrics {
    double wer;          /* errors / max(ref_tokens, 1) */
    double wer_ci;       /* errors_ci / max(ref_words, 1) */
    double punct_p;      /* punct_match / punct_out */
    double punct_r;      /* punct_match / punct_ref */
    double punct_f1;     /* 2PR / (P + R); 0 when nothing matched */
    double content_kept; /* content_kept / content_ref */
    double changed;      /* changed / cases */
};
struct cdt_eval_metrics cdt_eval_metrics_of(const struct cdt_eval_counts *c, long cases);

/* ---- a report ---- */

/* Latency of a column, ms; all 0 without cases. */
struct cdt_eval_latency {
    double mean_ms, p50_ms, p95_ms;
};

struct cdt_eval_column {
    struct cdt_eval_counts counts;   /* summed over the cases */
    struct cdt_eval_metrics metrics; /* from counts (set by cdt_eval_report_finish) */
    struct cdt_eval_latency latency; /* set by cdt_eval_report_finish */
};

/* The number of refine reasons (enum cdt_refine_reason values 0..N-1). */
#define CDT_EVAL_REASON_COUNT_(name, value, code, msg) +1
enum { CDT_EVAL_N_REASONS = 0 CDT_REFINE_REASON_MAP(CDT_EVAL_REASON_COUNT_) };

/* One category, or the overall figures ("all"). */
struct cdt_eval_category {
    const char *name;                 /* borrowed from the set, or "all" */
    bool pass_through;                /* cdt_eval_pass_through(name) */
    long cases;                       /* cases run */
    struct cdt_eval_column det;       /* result.cleaned */
    struct cdt_eval_column model;     /* result.refined */
    long reasons[CDT_EVAL_N_REASONS]; /* cases per refine reason ([CDT_REFINE_OK]: the model's
                                       * output delivered) */
    long fallbacks;                   /* cases with a reason other than ok */
    long guard_trips;                 /* reasons named guard_* */
    long answered;                    /* see above */
};

/* What one case gave. Texts (copies) only when the report keeps them. */
struct cdt_eval_outcome {
    const struct cdt_eval_case *c; /* borrowed from the set */
    enum cdt_refine_reason reason;
    struct cdt_eval_counts det, model;
    double det_ms, total_ms;
    char *det_text, *model_text; /* NULL unless kept */
};

struct cdt_eval_report;

/* An empty report; keep_texts keeps each case's outputs (for the failures list).
 * Returns 0 and *out (free with cdt_eval_report_free), CDT_ENOMEM. */
CDT_NODISCARD int cdt_eval_report_new(bool keep_texts, struct cdt_eval_report **out);

/* Adds a case's refine result (c borrowed until the report is freed). Returns 0,
 * CDT_EINVAL (NULL argument, a result without text, a report already finished),
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_eval_report_add(struct cdt_eval_report *r, const struct cdt_eval_case *c,
                                      const struct cdt_refine_result *res);

/* Computes the metrics and latencies; no more adds after it. Returns 0, CDT_ENOMEM. */
CDT_NODISCARD int cdt_eval_report_finish(struct cdt_eval_report *r);

/* The categories in the order their first case came, and the overall figures.
 * Borrowed until the report is freed. */
size_t cdt_eval_report_count(const struct cdt_eval_report *r);
const struct cdt_eval_category *cdt_eval_report_category(const struct cdt_eval_report *r, size_t i);
const struct cdt_eval_category *cdt_eval_report_overall(const struct cdt_eval_report *r);

/* The outcomes in the order added. Borrowed until the report is freed. */
size_t cdt_eval_report_outcomes(const struct cdt_eval_report *r);
const struct cdt_eval_outcome *cdt_eval_report_outcome(const struct cdt_eval_report *r, size_t i);

/* The model named by the first result that named one; NULL when none did. */
const char *cdt_eval_report_model(const struct cdt_eval_report *r);

/* True when the outcome is a failure for the list: the model's output is not the
 * reference. */
bool cdt_eval_outcome_failed(const struct cdt_eval_outcome *o);

/* {cases, model, categories: [{category, cases, pass_through, deterministic{…},
 * model{…}}], overall{…}} and, with failures, "failures": [{id, category, file,
 * line, reason_code, wer, wer_insensitive, input, reference, deterministic, model}]
 * (texts only when kept). A finished report; NULL when out of memory. Caller frees
 * with cJSON_Delete. */
cJSON *cdt_eval_report_json(const struct cdt_eval_report *r, bool failures);

/* NULL is a no-op. */
void cdt_eval_report_free(struct cdt_eval_report *r);

/* ---- running a set ---- */

struct cdt_refiner;

struct cdt_eval_params {
    struct cdt_refiner *refiner; /* borrowed; required */
    const char *category;        /* only this category; NULL: all */
    long limit;                  /* the first N cases of each category; 0: all */
    bool keep_texts;             /* keep the outputs in the report */
    /* Called on the calling thread before each case (done cases so far, of total);
     * NULL: none. */
    void (*on_progress)(size_t done, size_t total, const struct cdt_eval_case *c, void *user_data);
    void *user_data;
};

struct cdt_eval_params cdt_eval_default_params(void);

/* Selects the cases (category, limit), preloads the model (a failure there only
 * means the cases fall back, which the report shows), runs each through the
 * refiner and returns the finished report. Returns 0 and *out (free with
 * cdt_eval_report_free), CDT_EINVAL (no refiner), CDT_ENOTFOUND (no case in that
 * category: errmsg lists the categories), CDT_ENOMEM. */
CDT_NODISCARD int cdt_eval_run(const struct cdt_eval_params *p, const struct cdt_eval_set *set,
                               struct cdt_eval_report **out, char *errmsg, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
