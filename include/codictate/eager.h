/* Eager transcription: a recording transcribed while it grows, so that after it
 * stops only its tail is left to transcribe.
 *
 * The recording is pushed in as it arrives. A worker thread runs the streaming VAD
 * (transcribe.h's cdt_vad_stream) over it and cuts it into chunks in silence: a chunk
 * closes at the first pause of min_gap_s after speech (the cut a quarter of a second
 * into it) once it is min_chunk_s long; a stretch without speech is a chunk of its
 * own (never given to whisper); and one that reaches max_chunk_s without a pause is
 * cut at the quietest point of its last 8 s, by the audio's energy around each
 * frame boundary, so a word spoken across the limit is not cut in half where there
 * is a gap between words (whisper's window is 30 s). Where the cuts fall depends on
 * the audio alone, not on the machine's speed, unless the worker falls behind by
 * backlog_s (then closed chunks merge). Each closed chunk is transcribed at once,
 * with the last sentences of the text so far as whisper's prompt
 * (cdt_eager_prompt_start), so the pieces read as one transcript. A chunk without
 * speech is not given to whisper (no text, nothing hallucinated from silence).
 *
 * Invariants: the chunks partition the recording: each starts where the one before
 * ended, the first at 0, the last at the end of the recording (no sample skipped,
 * none transcribed twice); a cut lies in a pause the VAD heard unless a chunk had to
 * be split at max_chunk_s. Segment times are on the recording's timeline.
 *
 *   cdt_eager_new(&p, &e);             cdt_eager_start(e, t);  (once t is loaded)
 *   cdt_eager_push(e, x, n); ...       (as the recording grows, from any thread)
 *   cdt_eager_finish(e, t, all, n_all, &transcript);   (after stop: only the tail)
 *   cdt_eager_free(e);
 *
 * Thread-safety: push, cancel and chunk_count may be called from any thread; start,
 * finish and free from the owner's. The transcriber t is the worker's from start
 * until finish or free returns (nobody else may use it meanwhile). */
#ifndef CODICTATE_EAGER_H
#define CODICTATE_EAGER_H

#include "codictate/err.h"
#include "codictate/transcribe.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of the text so far given as whisper's prompt: its last whole sentences that
 * fit (cdt_eager_prompt_start). Shorter than the ~224 tokens whisper.cpp would keep:
 * a longer prompt, or one starting inside a sentence, made the espeak-ng Whisper drop
 * words (bench/RESULTS.md, "The prompt, shortened to whole sentences"). */
#define CDT_EAGER_PROMPT_MAX 200

struct cdt_eager_params {
    double min_gap_s;    /* a pause after speech this long closes a chunk; 0: 0.5 s */
    double min_chunk_s;  /* no chunk closes at a pause before this much audio; 0: 1 s */
    double max_chunk_s;  /* a chunk with no pause is split by this length (at the
                          * quietest point of its last 8 s, at most half of it); 0:
                          * 28 s, at most 30 s (whisper's window) */
    double long_chunk_s; /* a chunk this long also closes at a pause of half min_gap_s,
                          * so that a speaker who hardly pauses leaves a short tail for
                          * after stop; 0: 8 s; < 0: never */
    double backlog_s;    /* when this much audio waits behind a closed chunk (the
                          * machine is slower than speech), chunks merge up to
                          * max_chunk_s to catch up; 0: 10 s; < 0: never (the chunks
                          * then depend on the audio alone) */
    float threshold;     /* speech probability; 0: 0.5 (whisper.cpp's VAD default) */
    bool full_window;    /* false (default): a chunk transcribed after finish (the wait
                          * the user sees) is encoded on a window fitted to its length
                          * (CDT_TRANSCRIBE_FIT_WINDOW); true: whisper's full 30 s
                          * window for every chunk */
    bool no_context;     /* true: each chunk is transcribed on its own, without the
                          * text before as whisper's prompt (whisper.cpp's
                          * --no-context, OpenAI's condition_on_previous_text=False: for
                          * a model the prompt makes drop or repeat words); false
                          * (default): with it, so the text reads as one transcript */
    struct cdt_log *log; /* borrowed; NULL: none */

    /* Called on the worker thread (no lock held) each time a chunk's text joins the
     * transcript: `text` is the text of the chunks so far (borrowed for the call), a
     * prefix of the final transcript's text but for the white space between chunks
     * (it only grows). NULL: none. */
    void (*on_text)(const char *text, void *user_data);
    void *user_data;
};

/* One chunk of the recording, in seconds of it. */
struct cdt_eager_chunk {
    double start, end;
    bool speech;     /* the VAD heard speech in it: it went to whisper */
    bool forced;     /* it ended at max_chunk_s, not in a pause */
    bool after_stop; /* transcribed after finish was called (the tail, or a backlog) */
    double ms;       /* its transcription, wall clock, ms (0 when no speech) */
    double window_s; /* audio whisper's encoder saw per window: 30 s, less when fitted, 0
                      * when no speech */
};

struct cdt_eager;

struct cdt_eager_params cdt_eager_default_params(void);

/* Returns 0 and *out (free with cdt_eager_free), CDT_EINVAL (max_chunk_s over 30 s
 * or under min_chunk_s, a threshold outside (0, 1)), CDT_ENOMEM. */
CDT_NODISCARD int cdt_eager_new(const struct cdt_eager_params *p, struct cdt_eager **out);

/* Starts the worker on t (borrowed; it needs a VAD model): the audio pushed so far
 * and from now on is transcribed as its chunks close. Returns 0, CDT_EINVAL (t has no
 * VAD model), CDT_ESTATE (already started), CDT_EFORMAT (the VAD model did not
 * load), CDT_ENOMEM. */
CDT_NODISCARD int cdt_eager_start(struct cdt_eager *e, struct cdt_transcribe *t);

/* Appends n samples (16 kHz mono, copied). Returns 0, CDT_ESTATE (after finish),
 * CDT_ENOMEM (the samples are then dropped: finish gets them from `all`). */
CDT_NODISCARD int cdt_eager_push(struct cdt_eager *e, const float *x, size_t n);

/* Ends the recording: all (borrowed for the call) is the whole recording, of which
 * what was pushed is a prefix; the rest is pushed, the worker (started on t now if
 * it was not) transcribes every chunk left, and *out (cdt_transcript_init'ed; what it
 * held is cleaned up) gets the whole transcript. Returns 0, CDT_ECANCELED
 * (cdt_eager_cancel), CDT_EINVAL (all does not begin with what was pushed),
 * CDT_EENGINE / CDT_ENOMEM (errmsg says why). Call once. */
CDT_NODISCARD int cdt_eager_finish(struct cdt_eager *e, struct cdt_transcribe *t, const float *all,
                                   size_t n_all, struct cdt_transcript *out);

/* Stops the worker as soon as it can (a running whisper call is cancelled); finish
 * then returns CDT_ECANCELED. Thread-safe. */
void cdt_eager_cancel(struct cdt_eager *e);

/* The chunks of the recording, borrowed until the next call on e other than
 * push/cancel. Only while no worker runs (before start, and after finish or free has
 * joined it): while it runs *n is 0 (cdt_eager_chunk_count says how far it is). */
const struct cdt_eager_chunk *cdt_eager_chunks(struct cdt_eager *e, size_t *n);

/* Chunks transcribed so far. Thread-safe. */
size_t cdt_eager_chunk_count(struct cdt_eager *e);

/* Why finish failed, or "". Borrowed until the next call on e. */
const char *cdt_eager_errmsg(const struct cdt_eager *e);

/* Where whisper's prompt begins in the text so far (NUL-terminated; a pointer into
 * it): at the first sentence that starts within its last CDT_EAGER_PROMPT_MAX bytes
 * (after ". ", "? ", "! " or a CJK full stop, question or exclamation mark), else
 * (one sentence longer than that) at the first word that does; NULL for an empty or
 * NULL text. */
const char *cdt_eager_prompt_start(const char *text);

/* Cancels, joins the worker, frees. NULL: no-op. */
void cdt_eager_free(struct cdt_eager *e);

#ifdef __cplusplus
}
#endif
#endif
