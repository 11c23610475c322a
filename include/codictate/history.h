/* Dictation history (issue #6): every dictation as one line of JSON, and the
 * recent recordings, in the data directory:
 *
 *   $CODICTATE_DATA_DIR, else $XDG_DATA_HOME/codictate, else ~/.local/share/codictate
 *     history.jsonl          one JSON object per line, append-only, mode 0600
 *     recordings/<id>.wav    the saved audio of the newest dictations
 *
 * Directories are created with mode 0700. A line is written with a single write()
 * on an O_APPEND descriptor and fsync'd, so concurrent processes never interleave
 * lines and a crash leaves at most one truncated last line, which readers skip.
 * Appending again with an id already present supersedes the earlier line: dictate
 * appends "recorded" before transcription, then "done" or "failed". After each
 * append the WAVs of all but the newest CDT_HISTORY_KEEP_RECORDINGS entries that
 * have one are deleted (only recordings/<id>.wav of older entries; WAVs without an
 * entry, e.g. one being recorded now, are left alone).
 *
 * A line holds: "id", "time_ms", "status", "source", "audio_path",
 * "audio_seconds", "raw", "refined", "fallback_reason", "reason_code", "error",
 * "model", "whisper_model" (strings or null; "reason_code" is missing from lines
 * written before it existed) and "timings" (an object or null).
 *
 * Privacy: transcript text is never logged.
 * Thread-safety: one handle must not be used by two threads at once; separate
 * handles (also in separate processes) may use the same directory at once. */
#ifndef CODICTATE_HISTORY_H
#define CODICTATE_HISTORY_H

#include "codictate/err.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_HISTORY_KEEP_RECORDINGS 20 /* newest recordings kept; older WAVs pruned */
#define CDT_HISTORY_MAX_LINE        (4 * 1024 * 1024) /* a longer line is skipped as corrupt, bytes */
#define CDT_HISTORY_ID_MAX          40                /* an id with its NUL, bytes */
#define CDT_HISTORY_PATH_MAX        4096              /* the data dir and paths under it, bytes */

struct cdt_log;

/* One dictation. In an entry from cdt_history_list every string is owned by the
 * entry (free with cdt_history_entries_free); in one you fill for
 * cdt_history_append the strings are yours (cdt_history_entry_cleanup frees
 * malloc'd ones). NULL strings are written as null. */
struct cdt_history_entry {
    char id[CDT_HISTORY_ID_MAX]; /* sortable, unique: "20261125-234501-123-<pid>" (UTC,
                                  * ms, pid), also the recording's base name */
    int64_t time_ms;             /* unix time when the dictation started, ms */
    char *status;                /* "recorded" (saved, not transcribed yet / failed
                                  * mid-way), "done", "failed", "cancelled" */
    char *source;                /* "microphone", "file", "retry" */
    char *audio_path;            /* the saved WAV, or NULL; may name a pruned file */
    double audio_seconds;        /* length of the audio, s */
    char *raw;                   /* whisper transcript, or NULL */
    char *refined;               /* delivered text, or NULL */
    char *fallback_reason;       /* why the LLM's output was not used, or NULL */
    char *reason_code;           /* the same as cdt_refine_reason_name() ("guard_length"),
                                  * or NULL (also in entries older than the field) */
    char *error;                 /* why it failed, or NULL */
    char *model;                 /* LLM used, or NULL */
    char *whisper_model;         /* or NULL */
    char *timings_json;          /* a JSON object as text ({"transcribe_ms":…,
                                  * "refine_ms":…}), or NULL */
};

struct cdt_history_params {
    const char *dir;     /* the data dir; NULL: $CODICTATE_DATA_DIR, else
                          * $XDG_DATA_HOME/codictate, else ~/.local/share/codictate */
    struct cdt_log *log; /* borrowed; may be NULL */
    char *errmsg;        /* when cdt_history_new fails: the reason for people (naming
                          * the path); may be NULL */
    size_t errcap;       /* bytes at errmsg */
};

struct cdt_history;

struct cdt_history_params cdt_history_default_params(void);

/* Opens the history in the data dir, creating it and recordings/ (mode 0700) when
 * missing. Returns 0 and *out (free with cdt_history_free), or, with *out NULL and
 * the reason in p->errmsg: CDT_ENOTFOUND (no dir given and HOME unset), CDT_EPERM
 * (a directory cannot be created or entered), CDT_EIO (a path is not a
 * directory, another I/O error), CDT_ETOOBIG (the dir over CDT_HISTORY_PATH_MAX),
 * CDT_ENOMEM. */
CDT_NODISCARD int cdt_history_new(const struct cdt_history_params *p, struct cdt_history **out);

/* NULL is a no-op. */
void cdt_history_free(struct cdt_history *h);

/* The last error in words; "" after a success. Borrowed until the next call on h. */
const char *cdt_history_errmsg(const struct cdt_history *h);

/* The data dir in use (absolute or as given). Borrowed for the handle's lifetime. */
const char *cdt_history_dir(const struct cdt_history *h);

/* Fills e->id with a new id (now, in UTC; unique within this process even for
 * calls in the same millisecond, and across processes by the pid), sets
 * e->time_ms to the id's time, and writes the recording's path for it,
 * "<dir>/recordings/<id>.wav", into path (cap bytes; path may be NULL). Within a
 * process ids sort in the order they were made. Returns 0, CDT_ETOOBIG (path too
 * small). */
CDT_NODISCARD int cdt_history_new_id(struct cdt_history *h, struct cdt_history_entry *e, char *path,
                                     size_t cap);

/* Appends e (borrowed) as one JSON line (O_APPEND, one write(), fsync); an entry
 * with an id already in the file supersedes the earlier line. Then prunes the
 * recordings (see above; never e's). e->timings_json that is not a JSON object is
 * written as null (with a warning in the log). Returns 0, CDT_EINVAL (an id that is
 * empty or not made of [A-Za-z0-9._-]), CDT_ETOOBIG (the line over
 * CDT_HISTORY_MAX_LINE), CDT_ENOSPACE (disk or quota full), CDT_EPERM, CDT_EIO,
 * CDT_ENOMEM. A failed prune is only logged. */
CDT_NODISCARD int cdt_history_append(struct cdt_history *h, const struct cdt_history_entry *e);

/* All entries, one per id (the last line for each id wins), newest first (time_ms,
 * then id, descending). Corrupt lines (not a JSON object with a string "id" and a
 * number "time_ms"), over-long lines and a truncated last line are skipped and
 * counted in *n_skipped (may be NULL); empty lines are ignored. A missing file is 0
 * entries. Returns 0 with *out (caller frees with cdt_history_entries_free; NULL
 * when *n is 0) and *n, CDT_EPERM, CDT_EIO, CDT_ENOMEM. */
CDT_NODISCARD int cdt_history_list(struct cdt_history *h, struct cdt_history_entry **out, size_t *n,
                                   size_t *n_skipped);

/* Frees n entries from cdt_history_list and the array. NULL is a no-op. */
void cdt_history_entries_free(struct cdt_history_entry *v, size_t n);

/* Frees the strings of an entry you filled (each with free()) and zeroes it. */
void cdt_history_entry_cleanup(struct cdt_history_entry *e);

/* Deletes one entry: every line of id is removed from history.jsonl (rewritten
 * atomically, under the lock appends take too) and recordings/<id>.wav is deleted.
 * Returns 0, CDT_EINVAL (a malformed id), CDT_ENOTFOUND, CDT_ENOSPACE, CDT_EPERM,
 * CDT_EIO. */
CDT_NODISCARD int cdt_history_delete(struct cdt_history *h, const char *id);

/* Deletes history.jsonl and every file in recordings/ (the directories stay).
 * Returns 0, CDT_EPERM, CDT_EIO (errmsg names the file). */
CDT_NODISCARD int cdt_history_clear(struct cdt_history *h);

#ifdef __cplusplus
}
#endif
#endif
