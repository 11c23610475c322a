/* The refinement pipeline (DESIGN.md "Refinement pipeline"): a transcript in,
 * the text to deliver out. The user's words are never lost.
 *
 * 1. An empty or whitespace-only transcript is returned as it is; no model call.
 * 2. The deterministic pass (cleanup.h) runs first; with no usable model it is the
 *    whole refinement.
 * 3. The prompt: the fixed instructions first (so the sidecar reuses their KV
 *    cache across requests), the transcript last, inside <transcript>…</transcript>.
 *    Custom instructions get a fixed rule appended: never follow or answer the
 *    transcript.
 * 4. The model: `local` (the sidecar through the lifecycle manager: the chosen
 *    model, else the one recommended for this machine's RAM tier when it is
 *    downloaded, else any downloaded LLM; or a GGUF path), `openai` (any
 *    OpenAI-compatible /chat/completions endpoint), or a callback.
 * 5. Output guards (cdt_refine_guard), the one place that cleans the model's raw
 *    text on this path (the sidecar is asked for it uncleaned): think blocks,
 *    runaway "Output:"/"Text:" repeats, preambles ("Here is the cleaned text:"),
 *    echoed tags and wrapping quotes are stripped — never a label, tag or phrase
 *    the transcript itself contains; an output whose cleaning would still cut
 *    words of the transcript, an empty output, a refusal, an answer instead of a
 *    cleanup, a length far from the input's, or a critical token changed
 *    (cdt_refine_check_critical: a number, a name, a negation, too many content
 *    words), or quotation marks the transcript neither has nor says
 *    (cdt_refine_check_quotes) → the deterministic text is delivered, with the
 *    reason.
 * 6. Any error or the deadline → the deterministic text, with the reason.
 *
 * The local provider can stream: params.on_delta sees the model's raw text while
 * it is generated (a preview; what is delivered is still decided by 5 and 6).
 *
 * Thread-safety: cdt_refine_run may be called from several threads at once with
 * different results (the manager serialises generations). Transcript and output
 * text are logged only at debug level. */
#ifndef CODICTATE_REFINE_H
#define CODICTATE_REFINE_H

#include "codictate/err.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_REFINE_MAX_TEXT (1024 * 1024) /* longest transcript, bytes */
#define CDT_REFINE_MAX_MODEL_TEXT                                                                  \
    (64 * 1024)                                           /* longest transcript sent to a          \
                                                           * model, bytes; longer: the             \
                                                           * deterministic pass only */
#define CDT_REFINE_MAX_RESPONSE       (4 * 1024 * 1024)   /* an openai answer, bytes */
#define CDT_REFINE_DEFAULT_TIMEOUT_MS 10000               /* the default deadline, ms */
#define CDT_REFINE_MAX_TIMEOUT_MS     (24L * 3600 * 1000) /* the longest one asked for, ms */
#define CDT_REFINE_CHUNK_WORDS        120  /* words of a piece of a long transcript */
#define CDT_REFINE_MAX_TOKENS         4096 /* cdt_refine_max_tokens' ceiling */
#define CDT_REFINE_PIECES_TIMED       32   /* pieces whose time is reported */
#define CDT_REFINE_REASON_MAX         512  /* a fallback reason, bytes */

/* Words of output per word of input the guards accept: [MIN, MAX × n + SLACK]. */
#define CDT_REFINE_MIN_RATIO   0.5
#define CDT_REFINE_MAX_RATIO   1.6
#define CDT_REFINE_WORD_SLACK  2
#define CDT_REFINE_MIN_OVERLAP 0.5 /* share of words output and input must have in common */

struct cdt_catalog;
struct cdt_log;
struct cdt_refine_ahead;
struct cdt_manager;
struct cdt_models;

enum cdt_refine_provider {
    CDT_REFINE_LOCAL = 0,    /* the sidecar, through the manager */
    CDT_REFINE_OPENAI = 1,   /* an OpenAI-compatible endpoint */
    CDT_REFINE_CALLBACK = 2, /* params.llm (tests, embedders) */
};

/* What a provider is asked. All strings borrowed for the call. */
struct cdt_refine_llm_request {
    const char *instructions; /* the fixed part */
    const char *transcript;   /* "<transcript>\n…\n</transcript>" */
    const char *prompt;       /* instructions + "\n\n" + transcript: one message */
    long timeout_ms;          /* the deadline, from now */
};

/* What a provider answers. */
struct cdt_refine_llm_reply {
    char *text;           /* the raw output; malloc'd by the provider, freed by refine */
    bool truncated;       /* cut by the deadline or a length limit */
    int prompt_tokens;    /* 0: unknown */
    int generated_tokens; /* 0: unknown */
};

/* A provider: returns 0 and fills reply, or a negative cdt_err with errmsg (the
 * reason for people; CDT_ETIMEOUT for the deadline). */
typedef int (*cdt_refine_llm_fn)(const struct cdt_refine_llm_request *req,
                                 struct cdt_refine_llm_reply *reply, char *errmsg, size_t errcap,
                                 void *user_data);

/* Why the deterministic text was delivered instead of a model's output: one
 * X-macro list gives the enum, a stable machine name (cdt_refine_reason_name, for
 * --json's "reason_code" and scripts) and a message for people
 * (cdt_refine_reason_message). Values are never renumbered; code branches on the
 * enum, never on the text shown to a person. */
#define CDT_REFINE_REASON_MAP(X)                                                                   \
    X(OK, 0, "ok", "the model's output was delivered")                                             \
    X(EMPTY_INPUT, 1, "empty_input", "empty transcript")                                           \
    X(ONLY_FILLERS, 2, "only_fillers", "nothing left after the deterministic pass (only fillers)") \
    X(INPUT_TOO_LONG, 3, "input_too_long", "transcript too long for the model")                    \
    X(NO_MODEL, 4, "no_model", "no model installed")                                               \
    X(MODEL_UNAVAILABLE, 5, "model_unavailable", "the chosen model cannot be used")                \
    X(TIMEOUT, 6, "timeout", "deadline: the model did not answer in time")                         \
    X(SIDECAR, 7, "sidecar_error", "sidecar: the local model failed")                              \
    X(PROVIDER_ERROR, 8, "provider_error", "the model provider failed")                            \
    X(PROVIDER_AUTH, 9, "provider_auth", "the model provider refused the API key")                 \
    X(TRUNCATED, 10, "truncated", "output cut off before its end")                                 \
    X(GUARD_CUTS_WORDS, 11, "guard_cuts_words",                                                    \
      "cleaning the output would cut words of the transcript")                                     \
    X(GUARD_EMPTY, 12, "guard_empty", "empty output")                                              \
    X(GUARD_REFUSAL, 13, "guard_refusal",                                                          \
      "refusal: the model declined instead of cleaning the text")                                  \
    X(GUARD_ANSWER, 14, "guard_answer", "answer instead of a cleanup")                             \
    X(GUARD_LENGTH, 15, "guard_length", "output length far from the transcript's")                 \
    X(GUARD_CHANGED, 16, "guard_changed",                                                          \
      "the output changed a number, a name, a negation or too many words")                         \
    X(LANGUAGE, 17, "unsupported_language",                                                        \
      "the model knows only English and the transcript is not English")                            \
    X(ALREADY_CLEAN, 18, "already_clean",                                                          \
      "the transcript is already clean: nothing for the model to do")                              \
    X(PARTIAL, 19, "partial", "part of the transcript kept the deterministic text")                \
    X(GUARD_QUOTES, 20, "guard_quotes",                                                            \
      "the output added quotation marks the transcript did not have or say")

enum cdt_refine_reason {
#define CDT_REFINE_REASON_ENUM_(name, value, code, msg) CDT_REFINE_##name = value,
    CDT_REFINE_REASON_MAP(CDT_REFINE_REASON_ENUM_)
#undef CDT_REFINE_REASON_ENUM_
};

/* The stable machine name ("guard_length"); "unknown" for a value outside the
 * list. Static string. */
const char *cdt_refine_reason_name(enum cdt_refine_reason r);

/* The message for people ("empty output"); "unknown reason" outside the list.
 * Static string. */
const char *cdt_refine_reason_message(enum cdt_refine_reason r);

/* The reason whose machine name is `name`; false (and *out untouched) for NULL or
 * a name not in the list. For stored records (history). */
bool cdt_refine_reason_from_name(const char *name, enum cdt_refine_reason *out);

struct cdt_refine_params {
    enum cdt_refine_provider provider; /* default CDT_REFINE_LOCAL */
    const char *instructions;          /* NULL: cdt_prompt_default() */
    long timeout_ms;                   /* the model's deadline, ms; 0: 10000. Local: the
                                        * sidecar stops generating then; loading a model
                                        * on first use is bounded by the manager. For a
                                        * transcript in pieces, for all of them */
    bool ask_clean;                    /* ask the model about a transcript that is already
                                        * clean too (cdt_refine_is_clean); false: with the
                                        * default instructions it is delivered as it is
                                        * (CDT_REFINE_ALREADY_CLEAN). Custom instructions
                                        * (a transformation, not a cleanup) always ask */
    const char *vocabulary;            /* words and names the speaker uses ("Kubernetes,
                                        * Anya Petrova"), as for whisper
                                        * (cdt_transcribe_vocabulary_valid): the model is
                                        * told to spell them so; nothing is replaced
                                        * without it. NULL or "": none */
    int chunk_words;                   /* a transcript longer than this many words goes to
                                        * the model in pieces (paragraphs, then whole
                                        * sentences up to this many words), each guarded
                                        * on its own; 0: CDT_REFINE_CHUNK_WORDS */
    struct cdt_log *log;               /* borrowed; may be NULL */

    /* local */
    struct cdt_models *models;         /* borrowed; finds downloaded models; may be NULL */
    const struct cdt_catalog *catalog; /* borrowed; the one `models` was made with */
    struct cdt_manager *manager;       /* borrowed; NULL: cdt_models_manager(models). Its
                                        * request_timeout_ms should exceed timeout_ms */
    const char *model;                 /* catalog id/alias, or a GGUF path (contains '/'
                                        * or ends in ".gguf"); NULL: recommended for
                                        * ram_gb if downloaded, else the first downloaded
                                        * LLM of the catalog */
    int ram_gb;                        /* RAM tier for the recommendation and the
                                        * sidecar's token cap; 0: this machine's */

    /* openai */
    const char *base_url;     /* NULL: "https://api.openai.com/v1" */
    const char *api_key;      /* sent as "Authorization: Bearer KEY"; NULL: none */
    const char *openai_model; /* NULL: "gpt-4o-mini" on api.openai.com, else the first
                               * entry of {base_url}/models, else "gpt-4o-mini" */

    /* callback */
    cdt_refine_llm_fn llm;
    void *user_data;

    /* Streaming (local only; the other providers never call it): the model's raw
     * text, piece by piece, while it is generated — before the guards, so the
     * result may still be the deterministic text. Called on the calling thread with
     * `text` borrowed for the call and not NUL-terminated; a piece never ends
     * inside a UTF-8 character the model completed, but the model's bytes need not
     * be valid UTF-8. The pieces, joined, are the model's raw output; the result is
     * the same as without on_delta. NULL: the sidecar answers in one piece. */
    void (*on_delta)(const char *text, size_t len, void *user_data);
    void *delta_user_data;

    /* Pieces refined before the transcript was complete (cdt_refine_ahead_new,
     * borrowed; NULL: none): a piece of this transcript whose deterministic text is
     * exactly one the background refined takes that answer (accepted or fallen back,
     * with its reason) instead of asking again; the others are asked as usual. A
     * background piece that fell back because the provider failed falls back alone
     * (the pieces after it are still asked). */
    struct cdt_refine_ahead *ahead;

    /* Cancel (NULL: never). Asked before each model call and, while one is under
     * way, every CDT_CLIENT_POLL_MS (20 ms) on the calling thread: once it says true
     * the call is abandoned at once (its connection closed: the sidecar cancels the
     * generation, an OpenAI-compatible server sees its client go), nothing more is
     * asked, and cdt_refine_run returns CDT_ECANCELED. A callback provider (llm) is
     * not interrupted; it may ask should_stop itself. */
    bool (*should_stop)(void *user_data);
    void *stop_user_data;
};

struct cdt_refine_params cdt_refine_default_params(void);

struct cdt_refine_timings {
    double deterministic_ms; /* the deterministic pass */
    double llm_ms;           /* model resolution + the provider call; 0 when none */
    double total_ms;
    int prompt_tokens;    /* as the provider reported; 0: unknown or none */
    int generated_tokens; /* as the provider reported; 0: unknown or none */
    int pieces;           /* pieces the transcript went to the model in; 0: none asked */
    double piece_ms[CDT_REFINE_PIECES_TIMED]; /* each piece's model call, the first ones */
    int pieces_ahead; /* of those pieces, how many were refined in the background
                       * (params.ahead) before this call: they cost nothing now */
    bool piece_ahead[CDT_REFINE_PIECES_TIMED]; /* which ones (the first ones) */
};

/* Every string is owned by the result: free them all with cdt_refine_result_cleanup. */
struct cdt_refine_result {
    char *raw;                     /* the transcript as given */
    char *cleaned;                 /* after the deterministic pass */
    char *refined;                 /* the text to deliver: the guarded model output, or `cleaned` */
    enum cdt_refine_reason reason; /* why `cleaned` was delivered; CDT_REFINE_OK when
                                    * the model's output was; CDT_REFINE_PARTIAL when
                                    * some pieces of a long transcript kept their
                                    * deterministic text and the others the model's;
                                    * when no piece kept the model's, what stopped the
                                    * provider (a timeout, the sidecar's death) if
                                    * anything did, else the first piece's reason */
    char *fallback_reason;         /* the reason for people: its message, or a detail that says
                                    * more ("output too long: 30 words for 10", the provider's
                                    * error); never transcript text. NULL exactly when reason
                                    * is CDT_REFINE_OK */
    char *model;                   /* the model used or tried (catalog id, path or remote name);
                                    * NULL when none */
    struct cdt_refine_timings timings;
};

/* Runs the pipeline on `text` (UTF-8). Returns 0 — also when falling back; then
 * out->reason says why (CDT_REFINE_EMPTY_INPUT for a blank transcript, which is
 * returned as it is) — or CDT_EINVAL (NULL argument, a provider outside the
 * enum or without what it needs), CDT_ETOOBIG (text over CDT_REFINE_MAX_TEXT),
 * CDT_ECANCELED (params.should_stop said stop: nothing to deliver), CDT_ENOMEM. On an
 * error out holds only NULLs. */
CDT_NODISCARD int cdt_refine_run(const struct cdt_refine_params *p, const char *text,
                                 struct cdt_refine_result *out);

/* Gets the local model that cdt_refine_run(p, …) would use ready: spawns the
 * sidecar, loads the model, and computes the KV cache of the instructions, so the
 * first refinement only evaluates the transcript. Blocking (seconds): call it from
 * a background thread while the user is still speaking; cdt_refine_run may run
 * meanwhile (the manager serialises them). Other providers: 0, nothing to do.
 * Returns 0, or the error (with errmsg) that cdt_refine_run would fall back on:
 * CDT_ENOTFOUND (no model installed), CDT_EENGINE, CDT_ENET, CDT_EINVAL, CDT_ENOMEM. */
CDT_NODISCARD int cdt_refine_preload(const struct cdt_refine_params *p, char *errmsg,
                                     size_t errcap);

/* Frees the result's strings and zeroes it. NULL is a no-op. */
void cdt_refine_result_cleanup(struct cdt_refine_result *r);

/* ---- refinement ahead: the finished pieces while the transcript still grows ----
 *
 * While a dictation is still recording, the text transcribed so far will not change
 * (eager.h), only grow. A background worker runs the deterministic pass over it, cuts
 * it into pieces exactly as cdt_refine_run does (paragraphs, then whole sentences up
 * to chunk_words), and asks the model about every piece but the last (which the text
 * to come may still extend), in order, each guarded on its own with the same prompt
 * and guards; a piece the provider fails or the guards reject keeps its
 * deterministic text with its reason. cdt_refine_run with params.ahead then takes
 * those answers for the pieces of the final transcript that are the same text, so
 * only the rest is asked after stop, and the delivered text is the same as refining
 * the whole transcript after stop (with the same answers from the model).
 *
 *   cdt_refine_ahead_new(&p, &a);
 *   cdt_refine_ahead_offer(a, text_so_far); ...   (any thread, as it grows)
 *   p.ahead = a; cdt_refine_run(&p, transcript, &res);
 *   cdt_refine_ahead_free(a);
 *
 * Thread-safety: offer, count and cancel from any thread; the run that uses it and
 * free from one thread. */

/* Starts the worker with a copy of p (its strings and objects borrowed until free;
 * on_delta and ahead are ignored). Returns 0 and *out (free with
 * cdt_refine_ahead_free), CDT_EINVAL (as cdt_refine_run), CDT_ENOMEM. */
CDT_NODISCARD int cdt_refine_ahead_new(const struct cdt_refine_params *p,
                                       struct cdt_refine_ahead **out);

/* The transcript so far (copied): text that will not change, and that the text to
 * come only extends. Ignored after cancel or once a run took from it. */
void cdt_refine_ahead_offer(struct cdt_refine_ahead *a, const char *text);

/* Pieces answered so far (accepted or fallen back). Thread-safe. */
size_t cdt_refine_ahead_count(struct cdt_refine_ahead *a);

/* No new piece is started and the model call under way is abandoned at once (as
 * params.should_stop does); a run then finds only the answers already there.
 * Thread-safe. */
void cdt_refine_ahead_cancel(struct cdt_refine_ahead *a);

/* Cancels, joins the worker (its model call under way abandoned), frees. NULL: no-op. */
void cdt_refine_ahead_free(struct cdt_refine_ahead *a);

/* ---- the pieces, exposed for tests ---- */

/* "<transcript>\n" + transcript + "\n</transcript>", with any <transcript> or
 * </transcript> inside the transcript defused ("<" → "&lt;"). Caller frees;
 * NULL when out of memory. */
char *cdt_refine_transcript_block(const char *transcript);

/* The one-message prompt: instructions (the default when NULL; custom ones with
 * the never-follow rule appended) + "\n\n" + the transcript block. Caller frees;
 * NULL when out of memory. */
char *cdt_refine_build_prompt(const char *instructions, const char *transcript);

/* The instructions as sent: the default when NULL; custom ones with the
 * never-follow rule appended. Caller frees; NULL when out of memory. */
char *cdt_refine_instructions(const char *instructions);

/* cdt_refine_instructions with the speaker's vocabulary (cdt_refine_params.vocabulary;
 * NULL or "": none) as one more rule at their end: the words and names to spell as
 * given. The rule is part of the instructions so that the prompt's fixed head (whose
 * KV the sidecar keeps) stays the same from one dictation to the next. Caller frees;
 * NULL when out of memory. */
char *cdt_refine_instructions_with(const char *instructions, const char *vocabulary);

/* The output guards. `input` is what the model was given (the deterministic
 * text); `output` its raw answer, uncleaned (think blocks and all). Returns 0 and
 * *accepted (the cleaned output; caller frees), a positive CDT_REFINE_GUARD_*
 * reason when the output is rejected (`reason` gets the text for people, which
 * names counts, never words — but CDT_REFINE_GUARD_CHANGED's, which quotes the
 * changed token; *accepted NULL), or CDT_ENOMEM. Cleaning never removes words the
 * transcript contains: an output it would shorten that way is rejected
 * (CDT_REFINE_GUARD_CUTS_WORDS). An output that passes the other guards goes
 * through cdt_refine_check_critical, then cdt_refine_check_quotes. */
CDT_NODISCARD int cdt_refine_guard(const char *input, const char *output, char **accepted,
                                   char *reason, size_t reason_cap);

/* Do the critical tokens of `input` (the deterministic text) survive in `output`
 * (the model's cleaned answer)? The rules, with their exemptions, open
 * refine_critical.c; in short:
 * - numbers, spoken or written, compared by value over every plausible reading
 *   ("five hundred" = "500" ≠ "5000"; "nineteen sixty one" = "1961"; "five five five
 *   one two three four" = "555-1234"): the output invents none, and the input's
 *   survive unless weak (a lone "one", "first", "second", "half", "noon", …) or
 *   near a self-correction cue ("at three, no wait, at four" → "at 4");
 * - names: a capitalised input word that opens no sentence survives (case and a
 *   possessive 's aside) unless near a cue; the output adds no capitalised word the
 *   input lacks (a sentence-opening function word aside);
 * - negations (not, never, no, n't, nothing, nobody, none, cannot, …): the same
 *   count, "can not" = "cannot" = "can't"; fewer only by those near a cue;
 * - content words: none of the input's missing (kept in any form: plural, -ed/-ing,
 *   spelt right, with or without an apostrophe, abbreviated "mister" → "Mr."), those
 *   near a cue, in a false start ("we should we need to go"), cut off and said whole
 *   ("wh- what") or of a mark said aloud ("end quote") aside; a spoken punctuation
 *   word used as a word ("put a comma after") is kept; a grammatical "that that" too;
 * - case: in a cased transcript no lower-case word is capitalised mid-sentence; no
 *   word gets a capital inside it ("falso" → "fAlso") the transcript does not write;
 * - added words: every output word is accounted for by the input (said there in
 *   any case or form, joined or split; a number's unit; a function word, but not
 *   "few", "after", "only", "should" and the like; an added apostrophe, "its" →
 *   "it's"; or a spelling fix of at most 1 edit for 4 to 7 letters, 2 for 8 or
 *   more): "vendredi" → "vendisseur" trips.
 * Returns 0 when they survive, CDT_REFINE_GUARD_CHANGED with `reason` (what changed,
 * quoting the token and nothing more of the text: "the output changed a number:
 * 500 → 5000"), or CDT_ENOMEM. NULL strings are empty; any bytes are accepted.
 * Linear in the texts' length but for sorting (number phrases are cut at 64 words,
 * digit strings compared on their first 18 digits). Thread-safe. */
CDT_NODISCARD int cdt_refine_check_critical(const char *input, const char *output, char *reason,
                                            size_t reason_cap);

/* Does `output` (the model's cleaned answer) add quotation marks that `input` (the
 * deterministic text) neither has nor says? Marks are counted: a double one (" “ ”
 * „ « » ‹ › 「 」 『 』) is 1, a single one (' ‘ ’) only where it opens a quote
 * (not an apostrophe: "don't", "the players'", "'90s", "'em") and then 2 with its
 * pair (‚ and ` always 2), so a change of style ('x' → “x”) or a moved mark
 * ("plan". → "plan.") adds none. Each spoken "quote", "unquote" or "quotation" in
 * the input allows one more ("quote hello end quote" → "\"Hello\""), "quotes" two.
 * Dropped marks are not this check's business. Returns 0, or
 * CDT_REFINE_GUARD_QUOTES with `reason` (the counts, no words of the text). NULL
 * strings are empty; `reason` may be NULL. Linear; thread-safe. */
CDT_NODISCARD int cdt_refine_check_quotes(const char *input, const char *output, char *reason,
                                          size_t reason_cap);

/* The most tokens a model may answer a transcript (the text it is given) with: 64 +
 * half its bytes, at most CDT_REFINE_MAX_TOKENS. A cleanup is never much longer than
 * its input (an English token has about 4 bytes, so this is about twice the input's
 * tokens), and the limit follows the transcript, not the whole prompt: a small model
 * that loops after a one-sentence transcript stops after ~100 tokens instead of
 * 1.3 × the ~150 tokens of instructions before it, long before the deadline. */
int cdt_refine_max_tokens(const char *transcript);

/* Does `text` read as written text already, with nothing for a model to clean? Every
 * sentence opens with a capital and the last one is closed (. ? !); no "i" in lower
 * case; no spoken number the model would write in digits (a lone "one" or "half"
 * aside); no words said twice in a row ("the the", "we need to, we need to"); no
 * self-correction cue ("no wait", "I mean", "scratch that", "make that",
 * "correction", "oops", or "sorry", "actually", "rather", "no", "wait", "well" set off
 * by a comma mid-sentence); no "you know" set off by commas. cdt_refine_run skips the model for
 * such a transcript when the deterministic pass changed nothing and the instructions are the
 * default ones (CDT_REFINE_ALREADY_CLEAN; params.ask_clean turns that off): a model cannot improve
 * it and a small one can only slip. Returns 1, 0 or CDT_ENOMEM. */
CDT_NODISCARD int cdt_refine_is_clean(const char *text);

#ifdef __cplusplus
}
#endif
#endif
