/* Transcription: speech to text with whisper.cpp, optionally skipping silence with
 * whisper.cpp's built-in Silero voice activity detection (VAD).
 *
 * A handle loads the whisper model once (and checks the VAD model); each call then
 * transcribes a file (decoded to 16 kHz mono by cdt_audio) or a buffer of samples
 * into a struct cdt_transcript: the full text, segments with start and end times
 * in seconds of the input, the language, and timings.
 *
 *   struct cdt_transcribe_params p = cdt_transcribe_default_params();
 *   p.model_path = "ggml-base.en.bin";
 *   rc = cdt_transcribe_new(&p, &t, err, sizeof(err));
 *   struct cdt_transcript tr; cdt_transcript_init(&tr);
 *   rc = cdt_transcribe_file(t, "memo.wav", &tr);   ... tr.text ...
 *   cdt_transcript_cleanup(&tr); cdt_transcribe_free(t);
 *
 * Thread-safety: one call at a time per handle (calls on one handle must not
 * overlap; different handles are independent), except cdt_transcribe_cancel,
 * which any thread may call at any time. Transcript text is logged only at
 * CDT_LOG_DEBUG. */
#ifndef CODICTATE_TRANSCRIBE_H
#define CODICTATE_TRANSCRIBE_H

#include "codictate/audio.h"
#include "codictate/err.h"
#include "codictate/log.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_TRANSCRIBE_MAX_THREADS  256 /* n_threads above this: CDT_EINVAL */
#define CDT_TRANSCRIBE_MAX_LANGUAGE 15  /* a language code, bytes ("en", "haw", "auto") */
/* Longest vocabulary, bytes: with CDT_EAGER_PROMPT_MAX of English text after it,
 * whisper's prompt stays about within the ~224 tokens whisper.cpp keeps (it drops the
 * start of a longer prompt: a vocabulary of many rare names may lose its first ones). */
#define CDT_TRANSCRIBE_MAX_VOCABULARY 300
/* Longest buffer cdt_transcribe_samples takes: CDT_AUDIO_MAX_SECONDS of 16 kHz. */
#define CDT_TRANSCRIBE_MAX_SAMPLES ((size_t)CDT_AUDIO_MAX_SECONDS * CDT_AUDIO_RATE)

/* Called as transcription advances (percent 0..100 of the audio, after VAD).
 * From the calling thread. */
typedef void (*cdt_transcribe_progress_cb)(int percent, void *user_data);

struct cdt_transcribe_params {
    const char *model_path;     /* whisper.cpp model (ggml .bin); required; copied */
    int n_threads;              /* CPU threads; 0: the CPUs this process may use, at most 8 */
    const char *language;       /* NULL, "" or "auto": detect; else a whisper code ("en", "de")
                                 * or English name ("german"). English-only models (*.en)
                                 * always use "en". Copied */
    bool vad;                   /* skip silence with Silero VAD; needs vad_model_path */
    const char *vad_model_path; /* ggml Silero VAD model (ggml-silero-*.bin); copied */
    float vad_threshold;        /* speech probability, (0, 1); 0: 0.5 (whisper.cpp's) */
    bool fit_window;            /* every call as with CDT_TRANSCRIBE_FIT_WINDOW (below) */
    bool cpu_only;              /* true: never use a GPU; false: use one when the engine
                                 * build has one */
    const char *vocabulary;     /* NULL or "": none; else words and names the speaker uses
                                 * ("Kubernetes, Anya Petrova, codictate"), at most
                                 * CDT_TRANSCRIBE_MAX_VOCABULARY bytes of UTF-8 without
                                 * control characters: given to whisper at the start of
                                 * every call's prompt (before the text of a _after call),
                                 * whisper's way to a custom vocabulary; it steers
                                 * recognition and replaces nothing. Copied */
    struct cdt_log *log;        /* borrowed until cdt_transcribe_free; NULL: no logs */
    cdt_transcribe_progress_cb progress; /* NULL: none */
    void *user_data;                     /* passed to progress */
};

struct cdt_transcribe_timings {
    double load_ms;    /* loading the model(s) when the handle was made */
    double audio_ms;   /* decoding and resampling the file (0 for a buffer) */
    double prepare_ms; /* VAD (when on), the log-mel spectrogram, language detection */
    double encode_ms;  /* the audio encoder, with the decoder's prompt pass */
    double decode_ms;  /* token decoding (incl. temperature fallbacks) */
    double total_ms;   /* the whole call, wall clock (audio + transcription) */
};

struct cdt_transcript_segment {
    double start; /* seconds from the start of the input */
    double end;   /* seconds; ≥ start */
    char *text;   /* UTF-8 (invalid bytes become U+FFFD), trimmed; owned by the
                   * transcript */
};

struct cdt_transcript {
    char *text; /* segments' texts joined by single spaces; "" when no speech. Owned */
    struct cdt_transcript_segment *segments; /* n_segments, in time order; owned */
    size_t n_segments;
    char language[CDT_TRANSCRIBE_MAX_LANGUAGE + 1]; /* detected or used code ("en") */
    double audio_seconds;                           /* length of the input, seconds */
    bool vad;                                       /* VAD was applied */
    double window_seconds; /* audio the encoder saw per window: 30, or less when
                            * CDT_TRANSCRIBE_FIT_WINDOW fitted it; 0 for no audio */
    struct cdt_transcribe_timings timings;
};

struct cdt_transcribe;

struct cdt_transcribe_params cdt_transcribe_default_params(void);

/* Loads the whisper model (and checks the VAD model). Returns 0 and *out (free
 * with cdt_transcribe_free), or: CDT_EINVAL (no model_path, vad without
 * vad_model_path, n_threads or vad_threshold out of range, an unknown language
 * code), CDT_ENOTFOUND (a model file does not exist), CDT_EPERM / CDT_EIO (cannot
 * read it), CDT_EFORMAT (not a whisper.cpp model / not a Silero VAD model, or one
 * the engine rejects as corrupt), CDT_ENOMEM. On failure *out is NULL and errmsg
 * (may be NULL) gets errcap bytes at most of a message that names the file. */
CDT_NODISCARD int cdt_transcribe_new(const struct cdt_transcribe_params *p,
                                     struct cdt_transcribe **out, char *errmsg, size_t errcap);

/* Frees the handle and the model. NULL: no-op. */
void cdt_transcribe_free(struct cdt_transcribe *t);

/* Transcribes the audio file at path (WAV, FLAC, OGG, MP3, …; see cdt_audio_load)
 * into *out, which must have been cdt_transcript_init'ed (what it held is
 * cleaned up first). Returns 0, or the audio errors of cdt_audio_load
 * (CDT_ENOTFOUND, CDT_EFORMAT, CDT_ETOOBIG, CDT_EIO), CDT_ECANCELED
 * (cdt_transcribe_cancel), CDT_EENGINE (whisper.cpp failed), CDT_ENOMEM. On
 * failure *out is empty and cdt_transcribe_errmsg says what happened, naming the
 * file. */
CDT_NODISCARD int cdt_transcribe_file(struct cdt_transcribe *t, const char *path,
                                      struct cdt_transcript *out);

/* As cdt_transcribe_file for n 16 kHz mono samples in [-1, 1] (borrowed for the
 * call). n = 0 gives an empty transcript. Over CDT_TRANSCRIBE_MAX_SAMPLES:
 * CDT_ETOOBIG. */
CDT_NODISCARD int cdt_transcribe_samples(struct cdt_transcribe *t, const float *samples, size_t n,
                                         struct cdt_transcript *out);

/* Flags of cdt_transcribe_samples_after. */
/* Encode on a window fitted to the audio (whisper's audio_ctx: the audio's length +
 * CDT_TRANSCRIBE_FIT_MARGIN_S) instead of whisper's full 30 s window, which it
 * encodes whatever the audio's length: a 5 s sentence then costs about a fifth of the
 * encoder's time. Whisper was trained on 30 s windows, so this trades some accuracy
 * for the wait (the margin is the community's usual one: whisper.cpp issue #1855).
 * Audio of 30 s - margin or more gets the full window. */
#define CDT_TRANSCRIBE_FIT_WINDOW   1u
#define CDT_TRANSCRIBE_FIT_MARGIN_S 2.56

/* As cdt_transcribe_samples, with prompt (borrowed; NULL or "": none) given to whisper
 * as the text spoken before these samples (its initial prompt), so that a piece of a
 * longer recording reads on from the pieces before it (whisper keeps the last ~224
 * tokens; the handle's vocabulary, if any, goes before it), and flags (0 or
 * CDT_TRANSCRIBE_FIT_WINDOW). */
CDT_NODISCARD int cdt_transcribe_samples_after(struct cdt_transcribe *t, const float *samples,
                                               size_t n, const char *prompt, unsigned flags,
                                               struct cdt_transcript *out);

/* True when v may be a vocabulary: NULL, "", or at most CDT_TRANSCRIBE_MAX_VOCABULARY
 * bytes of UTF-8 without control characters (the rule of cdt_transcribe_new and
 * cdt_transcribe_set_vocabulary, for front ends to check a flag before recording). */
bool cdt_transcribe_vocabulary_valid(const char *v);

/* Replaces t's vocabulary (as cdt_transcribe_params.vocabulary; NULL or "": none)
 * for the calls that follow; not during a call. Returns 0, CDT_EINVAL (t NULL, over
 * CDT_TRANSCRIBE_MAX_VOCABULARY bytes, not UTF-8, or a control character: the old
 * one is kept) or CDT_ENOMEM. */
CDT_NODISCARD int cdt_transcribe_set_vocabulary(struct cdt_transcribe *t, const char *vocabulary);

/* True when t skips silence with a VAD model (cdt_vad_stream_new works on it). */
bool cdt_transcribe_has_vad(const struct cdt_transcribe *t);

/* ---- streaming voice activity detection ----
 * The Silero model of a handle, fed a recording as it grows: one speech probability
 * per CDT_VAD_FRAME samples, the model's state carried from call to call (so the
 * probabilities equal those of one pass over the whole). A stream has its own copy
 * of the model: it may run on another thread than the handle's calls, but one call
 * at a time per stream. */
#define CDT_VAD_FRAME 512 /* samples per probability (32 ms at 16 kHz) */

struct cdt_vad_stream;

/* Loads t's VAD model into a new stream. Returns 0 and *out (free with
 * cdt_vad_stream_free), CDT_EINVAL (t has no VAD model), CDT_EFORMAT (the engine
 * refused the model), CDT_ENOMEM. */
CDT_NODISCARD int cdt_vad_stream_new(struct cdt_transcribe *t, struct cdt_vad_stream **out);

/* Writes the speech probabilities (0..1) of the n / CDT_VAD_FRAME whole frames of x
 * into probs (as many entries); n must be a multiple of CDT_VAD_FRAME. Returns 0,
 * CDT_EINVAL, or CDT_EENGINE (the frames then read as speech: 1.0, which only
 * delays a cut). */
CDT_NODISCARD int cdt_vad_stream_feed(struct cdt_vad_stream *v, const float *x, size_t n,
                                      float *probs);

/* The stretches of x (n samples from its start) that a transcription with VAD on
 * gives whisper: whisper.cpp's segmentation with codictate's parameters (the
 * threshold, and the padding that keeps soft first words). Writes up to cap (start,
 * end) pairs in seconds into spans (2 * cap doubles) and their number into *n_spans.
 * Starts from a fresh model state (the stream's is reset). Returns 0, CDT_EINVAL, or
 * CDT_EENGINE (whisper.cpp gave no segmentation). */
CDT_NODISCARD int cdt_vad_stream_spans(struct cdt_vad_stream *v, const float *x, size_t n,
                                       double *spans, size_t cap, size_t *n_spans);

/* NULL: no-op. */
void cdt_vad_stream_free(struct cdt_vad_stream *v);

/* Asks the running (or the next) transcription on t to stop: it returns
 * CDT_ECANCELED. Thread-safe and async-signal-safe. The request is cleared when
 * that call returns. */
void cdt_transcribe_cancel(struct cdt_transcribe *t);

/* Why the last call on t failed ("" after a success). Borrowed until the next call
 * on t. */
const char *cdt_transcribe_errmsg(const struct cdt_transcribe *t);

/* True when the model knows many languages (false for English-only *.en models). */
bool cdt_transcribe_is_multilingual(const struct cdt_transcribe *t);

void cdt_transcript_init(struct cdt_transcript *tr);

/* Frees what the transcript owns and empties it; it can be filled again. */
void cdt_transcript_cleanup(struct cdt_transcript *tr);

/* Routes whisper.cpp's (and ggml's) log output into lg through cdt_log_ggml.
 * Process-wide: call once at start-up, and with NULL before freeing lg (whisper.cpp
 * then writes to stderr again). Not thread-safe against running transcriptions. */
void cdt_transcribe_log_set(struct cdt_log *lg);

#ifdef __cplusplus
}
#endif
#endif
