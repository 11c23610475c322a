/* Private to refine.c and refine_providers.c: the providers' common signature and
 * the two built-in providers behind it (refine.c's table adds the callback). */
#ifndef CDT_REFINE_INT_H
#define CDT_REFINE_INT_H

#include "codictate/refine.h"

/* A provider: fills reply (reply->text malloc'd) and *model (the model used or
 * tried, caller frees; may stay NULL), or returns a negative cdt_err with errmsg
 * (the fallback reason for people: "no model installed", "deadline: …",
 * "sidecar: …", "openai endpoint: …") and *reason (the enum behind it:
 * CDT_REFINE_NO_MODEL, _MODEL_UNAVAILABLE, _TIMEOUT, _SIDECAR, _PROVIDER_ERROR,
 * _PROVIDER_AUTH). The caller presets *reason to CDT_REFINE_PROVIDER_ERROR and
 * takes CDT_ETIMEOUT for CDT_REFINE_TIMEOUT whatever the provider set. */
typedef int cdt__refine_provider_fn(const struct cdt_refine_params *p,
                                    const struct cdt_refine_llm_request *req,
                                    struct cdt_refine_llm_reply *reply, char **model,
                                    enum cdt_refine_reason *reason, char *errmsg, size_t errcap);

/* The sidecar through the lifecycle manager; every error sets *reason. */
cdt__refine_provider_fn cdt__refine_local;

/* An OpenAI-compatible endpoint; *reason is CDT_REFINE_PROVIDER_AUTH when the
 * endpoint refused the key (CDT_EAUTH), left as preset otherwise. */
cdt__refine_provider_fn cdt__refine_openai;

/* The instructions sent for p: cdt_refine_instructions_with its instructions and
 * vocabulary, but without the vocabulary for a local model that knows the default
 * instructions alone (the catalog's fixed_prompt: the built-in refiner, whose eval
 * numbers an added rule makes worse). Caller frees; NULL when out of memory. */
char *cdt__refine_instructions_of(const struct cdt_refine_params *p);

/* One piece's answer: the guarded output (*accepted, malloc'd) or why not. */
struct cdt__refine_answer {
    char *accepted;             /* NULL: why says why (never CDT_REFINE_OK then) */
    enum cdt_refine_reason why; /* CDT_REFINE_OK when accepted */
    char detail[CDT_REFINE_REASON_MAX];
    char *model; /* the model used or tried, malloc'd; may be NULL */
    double ms;   /* the model call, wall clock */
    int prompt_tokens, generated_tokens;
};

/* Asks the provider about one piece (the deterministic text) and guards its output:
 * ans filled (its strings the caller's: cdt__refine_answer_cleanup). Returns 0 (also
 * when the piece falls back), CDT_ECANCELED (p->should_stop said stop, before or
 * during the call: ans holds nothing) or CDT_ENOMEM. */
int cdt__refine_ask(const struct cdt_refine_params *p, const char *piece, long timeout_ms,
                    struct cdt__refine_answer *ans);

void cdt__refine_answer_cleanup(struct cdt__refine_answer *ans);

/* How many words of the transcript `text` a cleanup may drop for the speaker's
 * corrections (refine_critical.c): those before a correction cue or in it ("to
 * John, sorry, I mean"), and the words of false starts. -1: out of memory. */
long cdt__refine_droppable_words(const char *text);

/* With the local provider and this model's speeds on this machine known (the model
 * is loaded for it, as cdt__refine_local would): the bytes of transcript a request
 * can hold and still be expected to finish within a share of left_ms (0: none);
 * -1 when that is not known (another provider, no speeds, a model that would not be
 * asked about `text`). */
long cdt__refine_fit_bytes(const struct cdt_refine_params *p, const char *text, long left_ms);

/* With the local provider: loads the model that would refine `text` (as
 * cdt__refine_local would, before its request), so that the load's time is not the
 * deadline's (the deadline bounds generation). True when it is loaded; false for
 * another provider, a model that would not be asked, or a failed load (whose error
 * the request reports). */
bool cdt__refine_load(const struct cdt_refine_params *p, const char *text);

/* Bytes of the next piece of s (paragraphs, then whole sentences up to `words`). */
size_t cdt__refine_piece_end(const char *s, int words);

/* Bytes of the next piece of s as cdt__refine_piece_end cuts it, but no more words
 * than the local model (loaded, its speeds known) is expected to refine in left_ms;
 * as cdt__refine_piece_end without such a model. */
size_t cdt__refine_piece_within(const struct cdt_refine_params *p, const char *s, int words,
                                long left_ms);

/* The answer refine_ahead's worker got for the piece that s starts with (a piece
 * not yet taken, at or after the last taken, whose text is s's up to white space or
 * the end), moved into *ans, and the piece's length in *len; false when it has none.
 * The worker cut its pieces from the text it had then, so the run takes them as they
 * were cut. The first call stops the worker from starting new pieces and waits for
 * the one it runs. */
bool cdt__refine_ahead_take(struct cdt_refine_ahead *a, const char *s, size_t *len,
                            struct cdt__refine_answer *ans);

#endif
