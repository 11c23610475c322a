/* One dictation (application layer): record → preload → stop/cancel → save →
 * transcribe → refine → history, with events. The CLI's `dictate` and the app run
 * the same session; terminals, signals, the clipboard and typing stay in the front
 * ends (deliver.h has the desktop part).
 *
 * The order is what keeps the user's words safe and the wait short:
 * 1. capture starts first; the whisper model (unless a warm one is lent) and the
 *    LLM (with the KV cache of the instructions) load in background threads while
 *    the user speaks;
 * 2. the recording is saved as a WAV and written to the history ("recorded", or
 *    "cancelled") before anything can fail, so a retry can always redo it;
 * 3. transcription, then refinement (any LLM problem falls back to the
 *    deterministic text), and the history entry is completed ("done" / "failed").
 *    From a microphone with a VAD model, transcription is eager (eager.h): speech is
 *    transcribed in chunks while the user speaks, so after stop only the tail is
 *    left; should that fail, the whole recording is transcribed after stop.
 * The recording stops by itself at the limit (a warning event 30 s before) or when
 * the sound server breaks (what was recorded is kept). Transcript text is never
 * logged above debug.
 *
 * Thread-safety: stop, cancel and status may be called from any thread while
 * another runs cdt_dictation_wait. Events come from the session's threads. */
#ifndef CODICTATE_DICTATION_H
#define CODICTATE_DICTATION_H

#include "codictate/eager.h"
#include "codictate/err.h"
#include "codictate/history.h"
#include "codictate/refine.h"
#include "codictate/transcribe.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cdt_log;
struct cdt_refiner;

enum cdt_dictation_state {
    CDT_DICT_IDLE,
    CDT_DICT_RECORDING,
    CDT_DICT_TRANSCRIBING,
    CDT_DICT_REFINING,
    CDT_DICT_DONE,
    CDT_DICT_FAILED,
    CDT_DICT_CANCELLED,
};

/* "idle", "recording", "transcribing", "refining", "done", "failed", "cancelled". */
const char *cdt_dictation_state_name(enum cdt_dictation_state s);

enum cdt_dictation_source {
    CDT_DICT_MICROPHONE, /* the default source (or params.device) */
    CDT_DICT_FILE,       /* params.input_path: WAV, FLAC, OGG, MP3 */
    CDT_DICT_SAMPLES,    /* params.samples (16 kHz mono), taken over */
    CDT_DICT_RETRY,      /* a saved recording: params.retry_id, or the newest */
};

/* How the recording ended. */
enum cdt_dictation_end {
    CDT_DICT_END_STOPPED,   /* stop (or not a recording) */
    CDT_DICT_END_LIMIT,     /* the recording limit */
    CDT_DICT_END_CANCELLED, /* cancel: the audio is kept, nothing is transcribed */
    CDT_DICT_END_BROKEN,    /* the sound server failed: what was recorded goes on */
};

/* A snapshot of the session. */
struct cdt_dictation_status {
    enum cdt_dictation_state state;
    enum cdt_dictation_source source;
    char id[CDT_HISTORY_ID_MAX]; /* "" until the history id is made */
    double elapsed_s;            /* recording time so far */
    double limit_s;              /* the recording limit */
    bool warned;                 /* the 30 s warning was given */
    float level;                 /* input RMS level, linear 0..1 */
};

enum cdt_dictation_event_kind {
    CDT_DICT_EV_STATE,  /* the state changed */
    CDT_DICT_EV_TICK,   /* while recording, every ~100 ms: elapsed and level */
    CDT_DICT_EV_WARN,   /* 30 s of recording left */
    CDT_DICT_EV_NOTICE, /* a warning for people in message (history not writable, …) */
    CDT_DICT_EV_DELTA,  /* while refining with the local model: a piece of its raw text
                         * in delta (a preview: the result's text, guarded, may differ) */
};

struct cdt_dictation_event {
    enum cdt_dictation_event_kind kind;
    const struct cdt_dictation_status *status; /* borrowed for the call */
    const char *message;                       /* NOTICE only */
    const char *delta; /* DELTA only: delta_len bytes, not NUL-terminated, borrowed for
                        * the call; may end inside a UTF-8 character (or hold bytes that
                        * are not UTF-8) */
    size_t delta_len;
};

struct cdt_dictation_params {
    enum cdt_dictation_source source;
    const char *input_path; /* FILE; borrowed until wait returns */
    float *samples;         /* SAMPLES: 16 kHz mono; taken over even on error */
    size_t n_samples;
    const char *retry_id; /* RETRY: a history id; NULL: the newest entry with a recording */
    const char *device;   /* MICROPHONE: source name; NULL: the default */
    double limit_s;       /* MICROPHONE: the recording limit, at most the RAM tier's
                           * (6 / 8 / 12 min); <= 0: the tier's */

    const char *history_dir; /* NULL: the default data dir */
    bool no_history;         /* keep nothing (tests, or the history cannot be opened) */

    bool no_eager;                 /* MICROPHONE: false (default): transcribe speech while recording
                                    * when there is a VAD model (whisper.vad, or the transcriber's);
                                    * true: everything after stop (for comparison) */
    struct cdt_eager_params eager; /* zeros: eager.h's defaults; its log, when NULL,
                                    * is this log */

    struct cdt_transcribe_params whisper; /* model_path required (unless transcriber) */
    struct cdt_transcribe *transcriber;   /* a loaded model to use (borrowed; not used by
                                           * anyone else during wait); NULL: load one */
    const char *whisper_name;             /* for the history; NULL: whisper.model_path */
    struct cdt_refiner *refiner;          /* borrowed; NULL: no LLM step (raw text) */
    bool preload_llm;                     /* load the LLM while recording */

    struct cdt_log *log; /* borrowed */
    void (*on_event)(const struct cdt_dictation_event *ev, void *user_data);
    void *user_data;
    bool stream_refine; /* DELTA events while refining (the local model is asked for a
                         * stream); false: none */
};

struct cdt_dictation_params cdt_dictation_default_params(void);

struct cdt_dictation_result {
    enum cdt_dictation_state state; /* DONE, FAILED or CANCELLED */
    enum cdt_dictation_end end;
    enum cdt_dictation_source source;
    char id[CDT_HISTORY_ID_MAX]; /* "" when nothing was kept */
    char *recording;             /* the saved WAV, or NULL */
    char *capture_error;         /* END_BROKEN: why; else NULL */
    char *error;                 /* FAILED: why, for people ("no audio was recorded",
                                  * "transcription failed: …"); else NULL */
    bool transcribed;            /* transcript is filled */
    struct cdt_transcript transcript;
    bool refined; /* refine is filled */
    struct cdt_refine_result refine;
    const char *provider; /* "local" / "openai" (static), or NULL */
    const char *text;     /* DONE: what to deliver (refined, else raw; may be
                           * ""); borrowed from the result */
    double audio_seconds;
    double record_ms, whisper_wait_ms, transcribe_ms, refine_ms;
    double raw_after_stop_ms;       /* stop → raw text (the transcription the user waits for) */
    double after_stop_ms;           /* stop → text: what the user waits for */
    bool eager;                     /* transcribed eagerly: chunks are filled */
    struct cdt_eager_chunk *chunks; /* the recording's chunks, n_chunks; owned */
    size_t n_chunks;
};

struct cdt_dictation;

/* Starts the session: for the microphone, capture starts now (and the preload);
 * the other sources start in wait. Returns 0 and *out (free with
 * cdt_dictation_free), CDT_EIO (no microphone: errmsg says why), CDT_EINVAL,
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_dictation_start(const struct cdt_dictation_params *p,
                                      struct cdt_dictation **out, char *errmsg, size_t errcap);

/* Ends the recording (transcription follows). No-op after it ended. */
void cdt_dictation_stop(struct cdt_dictation *d);

/* Cancels the session at any stage, the audio kept (saved by wait before anything
 * else). While recording: it ends without transcribing. After stop: the whisper
 * call under way is stopped (eager or the whole recording), and a refinement under
 * way is abandoned at once (its connection to the sidecar or the OpenAI-compatible
 * server closes within CDT_CLIENT_POLL_MS; the sidecar cancels the generation;
 * through the running app (app_port), the app abandons its model call); wait then
 * returns state CDT_DICT_CANCELLED, nothing delivered, the history entry
 * "cancelled" (with the raw text when it was transcribed). A model still loading
 * runs to its end first. Thread-safe. */
void cdt_dictation_cancel(struct cdt_dictation *d);

void cdt_dictation_status(struct cdt_dictation *d, struct cdt_dictation_status *out);

/* Runs the rest on the caller's thread and fills *res (cleanup with
 * cdt_dictation_result_cleanup). Returns 0 (see res->state), CDT_ENOTFOUND (a retry
 * with nothing to retry: errmsg), CDT_ENOMEM. Call once. */
CDT_NODISCARD int cdt_dictation_wait(struct cdt_dictation *d, struct cdt_dictation_result *res,
                                     char *errmsg, size_t errcap);

void cdt_dictation_result_cleanup(struct cdt_dictation_result *res);

/* After wait: the whisper model the session loaded itself (caller frees with
 * cdt_transcribe_free; it stays warm for the next session), or NULL. */
struct cdt_transcribe *cdt_dictation_take_transcriber(struct cdt_dictation *d);

/* Cancels what still runs, joins the threads, frees. NULL is a no-op. */
void cdt_dictation_free(struct cdt_dictation *d);

/* The timings of a result as the history's JSON object text (caller frees): per
 * stage, ms: record_ms, whisper_wait_ms (the model still loading at stop),
 * transcribe_ms (whisper's own time, all chunks), raw_after_stop_ms (stop → raw text),
 * refine_ms, pieces and piece_ms (the refine pieces), after_stop_ms (stop → text);
 * eager (bool) and, when eager, chunks: [{start, end (s), speech, forced, after_stop,
 * ms, window_s (the audio whisper's encoder saw per window: 30, less when fitted)}]. */
char *cdt_dictation_timings_json(const struct cdt_dictation_result *res);

#ifdef __cplusplus
}
#endif
#endif
