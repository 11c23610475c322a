/* `codictate dictate`: record from the microphone (or take a file), transcribe
 * with whisper.cpp, refine with the LLM, deliver the text.
 *
 * The order is what keeps the user's words safe and the wait short:
 * 1. capture starts first; the whisper model and the LLM (with the KV cache of the
 *    refine instructions) load in two background threads while the user speaks;
 * 2. the recording is saved as a WAV and written to the history ("recorded")
 *    before anything can fail, so `--retry-last` can always redo it;
 * 3. transcription, refinement (any LLM problem falls back to the deterministic
 *    text), output (stdout, --copy, --type), and the history entry is completed.
 * The recording stops at the RAM tier's limit (a warning 30 s before); Enter (or
 * SIGUSR1) stops, Esc / Ctrl-C (or SIGTERM) cancels — a cancelled recording is
 * still kept for --retry-last. Transcript text is never logged above debug. */
#include "args.h"
#include "cli.h"
#include "codictate/audio.h"
#include "codictate/capture.h"
#include "codictate/history.h"
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/pick.h"
#include "codictate/refine.h"
#include "codictate/sysinfo.h"
#include "codictate/transcribe.h"
#include "codictate/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS       100 /* the recording loop's period: keys, limits, the bar */
#define BAR_CELLS     20  /* the time bar's width, cells */
#define LEVEL_CELLS   6   /* the input level meter's width, cells */
#define EXIT_CANCELED 130 /* the shell's code for "stopped by Ctrl-C" */

extern char **environ;

/* Set by the signal handlers, read by the recording loop (nothing else happens in
 * a handler). */
static volatile sig_atomic_t sig_cancel, sig_stop;

static void on_cancel_signal(int sig)
{
    (void)sig;
    sig_cancel = 1;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    sig_stop = 1;
}

static void dictate_usage(FILE *out)
{
    fprintf(out, "usage: codictate dictate [options]\n"
                 "\n"
                 "Records from the default microphone (PipeWire/PulseAudio), transcribes with\n"
                 "whisper.cpp and cleans the text up with the LLM, then prints it. While you\n"
                 "speak, the models load in the background. Enter stops (SIGUSR1 too); Esc or\n"
                 "Ctrl-C cancels (SIGTERM too; the recording is kept). Recording stops by itself\n"
                 "at the RAM tier's limit (6 / 8 / 12 min; a warning 30 s before). Every\n"
                 "recording is saved before transcription: a failure can be retried.\n"
                 "\n"
                 "  --input FILE             take the audio from a file (WAV, FLAC, OGG, MP3)\n"
                 "                           instead of the microphone, through the same path\n"
                 "  --retry-last             transcribe and refine the last recording again\n"
                 "  --device NAME            the capture source (default: the system's default)\n"
                 "  --max-seconds N          stop recording after N seconds (at most the limit)\n"
                 "  --copy                   also copy the text to the clipboard (wl-copy, xclip)\n"
                 "  --type                   also type the text into the focused window (wtype,\n"
                 "                           ydotool, xdotool)\n"
                 "  --json                   print JSON: id, raw, refined, fallback_reason,\n"
                 "                           reason_code, segments, recording, timings, ...\n"
                 "  --whisper-model ID|PATH  the whisper model (default: the first downloaded)\n"
                 "  --language L             language code or auto (default)\n"
                 "  --no-vad, --vad-model ID|PATH, --threads N   as in `codictate transcribe`\n"
                 "  --model ID|PATH, --provider local|openai, --base-url URL, --api-key KEY,\n"
                 "  --openai-model NAME, --prompt NAME|@FILE, --timeout-ms N\n"
                 "                           the LLM step, as in `codictate refine`\n"
                 "\n"
                 "Past dictations: `codictate history`.\n"
                 "exit status: 0 text delivered (also when the LLM fell back), 1 failure (no\n"
                 "microphone, bad file, transcription failed: the recording is kept), 2 usage\n"
                 "error, 130 cancelled\n");
}

struct dictation {
    struct cdt_cli *cli;
    struct cdt_cli_refine_opts ro;
    struct cdt_pick_whisper wp;
    const char *input, *device, *language;
    long threads, max_seconds;
    bool retry_last, copy, type, json, no_vad;
    const char *whisper_arg, *vad_arg;

    struct cdt_history *hist; /* NULL: no history (said why) */
    struct cdt_cli_refiner *refiner;

    /* the whisper preload */
    pthread_t whisper_thread;
    bool whisper_started;
    struct cdt_transcribe_params tp;
    struct cdt_transcribe *t;
    int whisper_rc;
    char whisper_err[1024];

    /* the LLM preload */
    pthread_t llm_thread;
    bool llm_started;
    int llm_rc;
    char llm_err[512];

    /* the terminal */
    bool tty_in, tty_err, raw_mode;
    struct termios saved_tio;
};

/* ---- background preload ---- */

static void *whisper_main(void *arg)
{
    struct dictation *d = arg;

    d->whisper_rc = cdt_transcribe_new(&d->tp, &d->t, d->whisper_err, sizeof(d->whisper_err));
    return NULL;
}

static void *llm_main(void *arg)
{
    struct dictation *d = arg;

    d->llm_rc = cdt_cli_refiner_preload(d->refiner, d->llm_err, sizeof(d->llm_err));
    if (d->llm_rc != 0)
        CDT_LOG_D(d->cli->log, "dictate: LLM preload: %s", d->llm_err);
    return NULL;
}

/* Starts loading both models; capture has already started. */
static void start_preload(struct dictation *d)
{
    if (pthread_create(&d->whisper_thread, NULL, whisper_main, d) == 0)
        d->whisper_started = true;
    else
        whisper_main(d);
    if (pthread_create(&d->llm_thread, NULL, llm_main, d) == 0)
        d->llm_started = true;
}

static void join_whisper(struct dictation *d)
{
    if (d->whisper_started) {
        pthread_join(d->whisper_thread, NULL);
        d->whisper_started = false;
    }
}

static void join_llm(struct dictation *d)
{
    if (d->llm_started) {
        pthread_join(d->llm_thread, NULL);
        d->llm_started = false;
    }
}

/* ---- the terminal ---- */

static void raw_on(struct dictation *d)
{
    struct termios t;

    if (!d->tty_in || tcgetattr(0, &d->saved_tio) != 0)
        return;
    t = d->saved_tio;
    /* Keys arrive one at a time and are not echoed; Ctrl-C still sends SIGINT. */
    t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(0, TCSANOW, &t) == 0)
        d->raw_mode = true;
}

static void raw_off(struct dictation *d)
{
    if (d->raw_mode) {
        tcsetattr(0, TCSANOW, &d->saved_tio);
        d->raw_mode = false;
    }
}

static void fmt_mmss(char *buf, size_t cap, double s)
{
    int t = s > 0 && s < 359999 ? (int)s : s > 0 ? 359999 : 0; /* at most 99 h */

    snprintf(buf, cap, "%d:%02d", t / 60 % 10000, t % 60);
}

/* One line: "● REC 0:12 ▕████░░░░▏ 5:48 left  mic ▮▮▯▯▯▯  Enter stop · Esc cancel". */
static void draw_bar(const struct cdt_rec_timer *timer, float level)
{
    char el[16], left[16], bar[BAR_CELLS * 3 + 1], lv[LEVEL_CELLS * 3 + 1];
    double frac = timer->elapsed_s / timer->limit_s;
    int full = (int)(frac * BAR_CELLS + 0.5), lit;
    size_t o = 0;

    fmt_mmss(el, sizeof(el), timer->elapsed_s);
    fmt_mmss(left, sizeof(left), cdt_rec_timer_remaining(timer));
    for (int i = 0; i < BAR_CELLS; i++)
        o += (size_t)snprintf(bar + o, sizeof(bar) - o, "%s", i < full ? "█" : "░");
    /* The level on a dB-like scale: speech at -30 dBFS already lights half. */
    lit = level > 0 ? (int)((20 * log10f(level) + 60) / 60 * LEVEL_CELLS + 0.5f) : 0;
    o = 0;
    for (int i = 0; i < LEVEL_CELLS; i++)
        o += (size_t)snprintf(lv + o, sizeof(lv) - o, "%s", i < lit ? "▮" : "▯");
    fprintf(stderr, "\r\033[K%s REC %s ▕%s▏ %s left  mic %s  Enter stop · Esc cancel",
            timer->warned ? "\033[33m⚠\033[0m" : "\033[31m●\033[0m", el, bar, left, lv);
    fflush(stderr);
}

enum key { KEY_NONE, KEY_STOP, KEY_CANCEL, KEY_EOF };

/* Reads what stdin has (the loop polled it). A terminal: Enter stops, a lone Esc
 * cancels (an escape sequence — an arrow key — is ignored). A pipe: a line stops;
 * end of input stops watching. */
static enum key read_keys(struct dictation *d)
{
    unsigned char buf[64];
    ssize_t n = read(0, buf, sizeof(buf));

    if (n == 0)
        return KEY_EOF;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? KEY_NONE : KEY_EOF;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || buf[i] == '\r')
            return KEY_STOP;
        if (d->tty_in && buf[i] == 0x1b) {
            if (i + 1 == n) {
                struct pollfd p = {.fd = 0, .events = POLLIN};

                /* A lone Esc, or the start of a sequence still arriving? */
                if (poll(&p, 1, 30) <= 0)
                    return KEY_CANCEL;
                n = read(0, buf, sizeof(buf));
                i = -1;
                if (n <= 0)
                    return KEY_CANCEL;
                if (buf[0] != '[' && buf[0] != 'O')
                    return KEY_CANCEL;
                continue;
            }
            if (buf[i + 1] != '[' && buf[i + 1] != 'O')
                return KEY_CANCEL;
            i = n; /* skip the sequence */
        }
    }
    return KEY_NONE;
}

/* ---- recording ---- */

enum rec_end { REC_STOPPED, REC_LIMIT, REC_CANCELLED, REC_BROKEN };

/* Records until Enter / the limit / cancel / a broken stream. Returns 0 with the
 * samples (caller frees) and how it ended, or CDT_EXIT_FAIL when capture could not
 * start (said why). */
static int record(struct dictation *d, float **samples, size_t *n, enum rec_end *end,
                  double *rec_ms)
{
    struct cdt_capture_params cp = cdt_capture_default_params();
    struct cdt_capture *cap = NULL;
    struct cdt_rec_timer timer;
    struct sigaction sa_cancel, sa_stop, old_int, old_term, old_usr1;
    uint64_t ram = 0;
    double limit, t0;
    char err[512], lim[16];
    bool watch_stdin = true;
    int rc;

    if (cdt_sysinfo_total_ram(&ram) != 0)
        ram = 0;
    limit = cdt_limits_for_ram_gb(cdt_limits_ram_gb(ram)).recording_limit_s;
    if (d->max_seconds > 0 && d->max_seconds < limit)
        limit = (double)d->max_seconds;
    cp.device = d->device;
    cp.max_seconds = (int)limit + 2;
    cp.log = d->cli->log;
    rc = cdt_capture_start(&cp, &cap, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "codictate dictate: cannot record: %s\n", err);
        return CDT_EXIT_FAIL;
    }
    t0 = cdt_now_ms();
    start_preload(d);

    memset(&sa_cancel, 0, sizeof(sa_cancel));
    sa_cancel.sa_handler = on_cancel_signal;
    sigemptyset(&sa_cancel.sa_mask);
    sa_stop = sa_cancel;
    sa_stop.sa_handler = on_stop_signal;
    sig_cancel = sig_stop = 0;
    sigaction(SIGINT, &sa_cancel, &old_int);
    sigaction(SIGTERM, &sa_cancel, &old_term);
    sigaction(SIGUSR1, &sa_stop, &old_usr1);
    raw_on(d);

    fmt_mmss(lim, sizeof(lim), limit);
    if (!d->tty_err)
        fprintf(stderr,
                "codictate dictate: recording (limit %s); Enter or SIGUSR1 stops, Ctrl-C or "
                "SIGTERM cancels\n",
                lim);
    cdt_rec_timer_init(&timer, limit, NULL, NULL);
    *end = REC_STOPPED;
    for (;;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        enum cdt_rec_event ev;
        enum key k = KEY_NONE;

        if (watch_stdin) {
            if (poll(&p, 1, TICK_MS) > 0)
                k = read_keys(d);
        } else {
            struct timespec ts = {0, TICK_MS * 1000000L};

            nanosleep(&ts, NULL);
        }
        if (k == KEY_EOF)
            watch_stdin = false;
        if (k == KEY_CANCEL || sig_cancel) {
            *end = REC_CANCELLED;
            break;
        }
        if (k == KEY_STOP || sig_stop)
            break;
        ev = cdt_rec_timer_poll(&timer);
        if (ev == CDT_REC_WARN) {
            if (d->tty_err)
                fprintf(stderr, "\a");
            else
                fprintf(stderr, "codictate dictate: %d s of recording left\n",
                        (int)ceil(cdt_rec_timer_remaining(&timer)));
        } else if (ev == CDT_REC_STOP) {
            *end = REC_LIMIT;
            break;
        }
        if (cdt_capture_status(cap, err, sizeof(err)) != 0) {
            *end = REC_BROKEN;
            break;
        }
        if (d->tty_err)
            draw_bar(&timer, cdt_capture_level(cap));
    }
    raw_off(d);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    if (d->tty_err)
        fprintf(stderr, "\r\033[K");

    rc = cdt_capture_stop(cap, samples, n);
    *rec_ms = cdt_now_ms() - t0;
    if (rc != 0 && *end != REC_BROKEN) {
        *end = REC_BROKEN;
        snprintf(err, sizeof(err), "%s", cdt_strerror(rc));
    }
    cdt_capture_free(cap);
    switch (*end) {
    case REC_LIMIT:
        fprintf(stderr, "codictate dictate: the recording limit (%s) was reached; transcribing\n",
                lim);
        break;
    case REC_BROKEN:
        fprintf(stderr, "codictate dictate: recording stopped: %s; keeping what was recorded\n",
                err);
        break;
    case REC_CANCELLED:
    case REC_STOPPED:
        break;
    }
    return CDT_EXIT_OK;
}

/* ---- the clipboard and typing ---- */

static bool on_path(const char *exe)
{
    const char *path = getenv("PATH");
    char buf[4096];

    while (path && *path) {
        size_t len = strcspn(path, ":");

        if (len > 0 && len + strlen(exe) + 2 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, path, exe);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Runs argv (looked up in PATH) with `input` on its stdin (NULL: none) and its
 * stdout/stderr on /dev/null — clipboard tools stay behind to serve the
 * selection and must not hold our stdout open. Returns the exit status, or -1. */
static int run_tool(char *const argv[], const char *input)
{
    posix_spawn_file_actions_t fa;
    int pfd[2] = {-1, -1}, status = 0, rc;
    pid_t pid;

    if (input && pipe(pfd) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    if (input) {
        posix_spawn_file_actions_adddup2(&fa, pfd[0], 0);
        posix_spawn_file_actions_addclose(&fa, pfd[0]);
        posix_spawn_file_actions_addclose(&fa, pfd[1]);
    } else {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (input)
        close(pfd[0]);
    if (rc != 0) {
        if (input)
            close(pfd[1]);
        return -1;
    }
    if (input) {
        size_t len = strlen(input), off = 0;
        struct sigaction ign = {.sa_handler = SIG_IGN}, old;

        sigaction(SIGPIPE, &ign, &old);
        while (off < len) {
            ssize_t w = write(pfd[1], input + off, len - off);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(pfd[1]);
        sigaction(SIGPIPE, &old, NULL);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void copy_text(const char *text)
{
    bool wayland = getenv("WAYLAND_DISPLAY") && *getenv("WAYLAND_DISPLAY");
    bool x11 = getenv("DISPLAY") && *getenv("DISPLAY");
    char *wl[] = {"wl-copy", NULL};
    char *xclip[] = {"xclip", "-selection", "clipboard", NULL};
    char *xsel[] = {"xsel", "--clipboard", "--input", NULL};
    char **tool = NULL;

    if (wayland && on_path("wl-copy"))
        tool = wl;
    else if (x11 && on_path("xclip"))
        tool = xclip;
    else if (x11 && on_path("xsel"))
        tool = xsel;
    if (!tool) {
        fprintf(stderr, "codictate dictate: --copy: %s\n",
                wayland ? "wl-copy not found (install wl-clipboard)"
                : x11   ? "xclip not found (install xclip)"
                        : "no graphical session (WAYLAND_DISPLAY / DISPLAY unset)");
        return;
    }
    if (run_tool(tool, text) != 0)
        fprintf(stderr, "codictate dictate: --copy: %s failed\n", tool[0]);
}

static void type_text(const char *text)
{
    bool wayland = getenv("WAYLAND_DISPLAY") && *getenv("WAYLAND_DISPLAY");
    bool x11 = getenv("DISPLAY") && *getenv("DISPLAY");
    char *t = (char *)text;
    char *wtype[] = {"wtype", "--", t, NULL};
    char *xdo[] = {"xdotool", "type", "--clearmodifiers", "--", t, NULL};
    char *ydo[] = {"ydotool", "type", "--", t, NULL};
    char **order[3];
    int n = 0;

    /* The tool of the session first; ydotool (uinput) works anywhere it may. */
    if (wayland)
        order[n++] = wtype;
    if (x11)
        order[n++] = xdo;
    order[n++] = ydo;
    for (int i = 0; i < n; i++) {
        if (!on_path(order[i][0]))
            continue;
        if (run_tool(order[i], NULL) == 0)
            return;
        fprintf(stderr, "codictate dictate: --type: %s failed\n", order[i][0]);
        return;
    }
    fprintf(stderr, "codictate dictate: --type: no typing tool found (install %s)\n",
            wayland ? "wtype or ydotool"
            : x11   ? "xdotool"
                    : "ydotool");
}

/* ---- the pipeline ---- */

/* The history entry of this dictation; its strings are borrowed. */
struct record {
    struct cdt_history_entry e;
    char wav[CDT_HISTORY_PATH_MAX];
    bool saved; /* the WAV is on disk */
};

static void history_put(struct dictation *d, struct record *r, const char *status)
{
    r->e.status = (char *)status;
    if (d->hist && r->e.id[0] && cdt_history_append(d->hist, &r->e) != 0)
        fprintf(stderr, "codictate dictate: warning: could not write the history: %s\n",
                cdt_history_errmsg(d->hist));
}

static void retry_hint(const struct record *r)
{
    if (r->saved)
        fprintf(stderr,
                "codictate dictate: the recording is kept (%s): retry with `codictate dictate "
                "--retry-last`\n",
                r->wav);
}

/* The newest recording in the history that is still on disk. */
static int find_last(struct dictation *d, struct record *r, char **owned_strings)
{
    struct cdt_history_entry *v = NULL;
    size_t n = 0;
    int rc;

    if (!d->hist) {
        fprintf(stderr, "codictate dictate: --retry-last: no history to retry from\n");
        return CDT_EXIT_FAIL;
    }
    rc = cdt_history_list(d->hist, &v, &n, NULL);
    if (rc != 0) {
        fprintf(stderr, "codictate dictate: --retry-last: %s\n", cdt_history_errmsg(d->hist));
        return CDT_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i].audio_path || access(v[i].audio_path, R_OK) != 0)
            continue;
        memcpy(r->e.id, v[i].id, sizeof(r->e.id));
        r->e.time_ms = v[i].time_ms;
        snprintf(r->wav, sizeof(r->wav), "%s", v[i].audio_path);
        r->saved = true;
        *owned_strings = v[i].source ? strdup(v[i].source) : NULL;
        cdt_history_entries_free(v, n);
        return CDT_EXIT_OK;
    }
    cdt_history_entries_free(v, n);
    fprintf(stderr, "codictate dictate: --retry-last: no saved recording in the history (%s)\n",
            cdt_history_dir(d->hist));
    return CDT_EXIT_FAIL;
}

static char *timings_json(double rec_ms, double wait_ms, const struct cdt_transcript *tr,
                          const struct cdt_refine_result *res, double after_ms)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "record_ms", round(rec_ms));
    cJSON_AddNumberToObject(o, "whisper_wait_ms", round(wait_ms));
    cJSON_AddNumberToObject(o, "transcribe_ms", round(tr->timings.total_ms));
    cJSON_AddNumberToObject(o, "refine_ms", res ? round(res->timings.total_ms) : 0);
    cJSON_AddNumberToObject(o, "after_stop_ms", round(after_ms));
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int run(struct dictation *d)
{
    struct record r;
    float *samples = NULL;
    size_t n = 0;
    enum rec_end end = REC_STOPPED;
    struct cdt_transcript tr;
    struct cdt_refine_result res;
    bool have_res = false;
    double rec_ms = 0, t_stop, wait_ms, t1, after_ms;
    char *retry_source = NULL, *tj = NULL;
    int rc;

    memset(&r, 0, sizeof(r));
    memset(&res, 0, sizeof(res));
    cdt_transcript_init(&tr);

    /* 1. The audio. */
    if (d->retry_last || d->input) {
        struct cdt_audio a;
        const char *path = d->input;

        if (d->retry_last) {
            rc = find_last(d, &r, &retry_source);
            if (rc != CDT_EXIT_OK)
                return rc;
            path = r.wav;
        }
        start_preload(d);
        cdt_audio_init(&a);
        if (cdt_audio_load(&a, path) != 0) {
            fprintf(stderr, "codictate dictate: %s\n", a.errmsg);
            cdt_audio_cleanup(&a);
            free(retry_source);
            return CDT_EXIT_FAIL;
        }
        samples = a.samples; /* taken over */
        n = a.n_samples;
        a.samples = NULL;
        cdt_audio_cleanup(&a);
        rec_ms = 0;
    } else {
        rc = record(d, &samples, &n, &end, &rec_ms);
        if (rc != CDT_EXIT_OK)
            return rc;
    }
    t_stop = cdt_now_ms();

    /* 2. Keep it: the WAV and a "recorded" entry, before anything can fail. */
    r.e.source = d->retry_last ? retry_source : d->input ? "file" : "microphone";
    r.e.audio_seconds = (double)n / CDT_AUDIO_RATE;
    r.e.whisper_model = d->wp.model;
    if (!d->retry_last && d->hist && n > 0) {
        char err[512];

        if (cdt_history_new_id(d->hist, &r.e, r.wav, sizeof(r.wav)) != 0) {
            fprintf(stderr, "codictate dictate: warning: the recording cannot be saved: %s\n",
                    cdt_history_errmsg(d->hist));
        } else if (cdt_audio_save_wav(r.wav, samples, n, CDT_AUDIO_RATE, err, sizeof(err)) != 0) {
            fprintf(stderr, "codictate dictate: warning: the recording cannot be saved: %s\n", err);
        } else {
            r.saved = true;
        }
        if (r.saved)
            r.e.audio_path = r.wav;
        history_put(d, &r, end == REC_CANCELLED ? "cancelled" : "recorded");
    } else if (d->retry_last) {
        r.e.audio_path = r.wav;
    }
    if (end == REC_CANCELLED) {
        fprintf(stderr, "codictate dictate: cancelled\n");
        retry_hint(&r);
        rc = EXIT_CANCELED;
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "codictate dictate: no audio was recorded\n");
        rc = CDT_EXIT_FAIL;
        goto out;
    }

    /* 3. Transcribe (the model has been loading since the recording started). */
    if (d->tty_err)
        fprintf(stderr, "transcribing...");
    t1 = cdt_now_ms();
    join_whisper(d);
    wait_ms = cdt_now_ms() - t1;
    if (d->whisper_rc != 0) {
        if (d->tty_err)
            fprintf(stderr, "\r\033[K");
        fprintf(stderr, "codictate dictate: %s\n", d->whisper_err);
        r.e.error = d->whisper_err;
        history_put(d, &r, "failed");
        retry_hint(&r);
        rc = CDT_EXIT_FAIL;
        goto out;
    }
    rc = cdt_transcribe_samples(d->t, samples, n, &tr);
    if (d->tty_err)
        fprintf(stderr, "\r\033[K");
    if (rc != 0) {
        fprintf(stderr, "codictate dictate: transcription failed: %s\n",
                cdt_transcribe_errmsg(d->t));
        r.e.error = (char *)cdt_transcribe_errmsg(d->t);
        history_put(d, &r, "failed");
        retry_hint(&r);
        rc = CDT_EXIT_FAIL;
        goto out;
    }
    r.e.raw = tr.text;

    /* 4. Refine. The preload may still be running: the manager serialises, and a
     * model that cannot be used falls back to the deterministic text. */
    if (tr.text[0]) {
        if (d->tty_err)
            fprintf(stderr, "refining...");
        rc = cdt_cli_refiner_run(d->refiner, tr.text, &res);
        if (d->tty_err)
            fprintf(stderr, "\r\033[K");
        have_res = rc == CDT_EXIT_OK;
    }
    rc = CDT_EXIT_OK;
    r.e.refined = have_res ? res.refined : tr.text;
    r.e.fallback_reason = have_res ? res.fallback_reason : NULL;
    r.e.reason_code = have_res && res.reason != CDT_REFINE_OK
                          ? (char *)cdt_refine_reason_name(res.reason) /* borrowed, static */
                          : NULL;
    r.e.model = have_res ? res.model : NULL;
    after_ms = cdt_now_ms() - t_stop; /* Enter → text: what the user waits for */
    tj = timings_json(rec_ms, wait_ms, &tr, have_res ? &res : NULL, after_ms);
    r.e.timings_json = tj;

    /* 5. Deliver, then complete the history. */
    if (d->json) {
        cJSON *root = cdt_cli_transcript_json(&tr, d->wp.model, d->wp.vad ? d->wp.vad_model : NULL);

        if (root) {
            cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "timings");

            if (have_res)
                cdt_cli_refine_to_json(root, &res, cdt_cli_refiner_provider(d->refiner));
            else {
                cJSON_ReplaceItemInObjectCaseSensitive(root, "refined",
                                                       cJSON_CreateString(tr.text));
                cJSON_AddNullToObject(root, "reason_code");
            }
            cJSON_AddStringToObject(root, "id", r.e.id);
            if (r.saved)
                cJSON_AddStringToObject(root, "recording", r.wav);
            else
                cJSON_AddNullToObject(root, "recording");
            cJSON_AddStringToObject(root, "source", r.e.source ? r.e.source : "microphone");
            cJSON_AddNumberToObject(t, "record_ms", round(rec_ms));
            cJSON_AddNumberToObject(t, "whisper_wait_ms", round(wait_ms));
            cJSON_AddNumberToObject(t, "after_stop_ms", round(after_ms));
        }
        rc = cdt_cli_print_json(root);
    } else if (r.e.refined[0]) {
        puts(r.e.refined);
    } else {
        fprintf(stderr, "codictate dictate: no speech found\n");
    }
    fflush(stdout);
    if (r.e.refined[0] && d->copy)
        copy_text(r.e.refined);
    if (r.e.refined[0] && d->type)
        type_text(r.e.refined);
    history_put(d, &r, "done");

out:
    join_whisper(d);
    join_llm(d);
    if (have_res)
        cdt_refine_result_cleanup(&res);
    cdt_transcript_cleanup(&tr);
    free(tj);
    free(samples);
    free(retry_source);
    return rc;
}

int cdt_cmd_dictate(struct cdt_cli *cli, int argc, char **argv)
{
    enum {
        OPT_INPUT = 256,
        OPT_RETRY,
        OPT_DEVICE,
        OPT_MAX_S,
        OPT_COPY,
        OPT_TYPE,
        OPT_LANG,
        OPT_WMODEL,
        OPT_THREADS,
        OPT_NO_VAD,
        OPT_VAD_MODEL
    };
    static const struct option opts[] = {
        {"input", required_argument, NULL, OPT_INPUT},
        {"retry-last", no_argument, NULL, OPT_RETRY},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"max-seconds", required_argument, NULL, OPT_MAX_S},
        {"copy", no_argument, NULL, OPT_COPY},
        {"type", no_argument, NULL, OPT_TYPE},
        {"json", no_argument, NULL, 'j'},
        {"language", required_argument, NULL, OPT_LANG},
        {"whisper-model", required_argument, NULL, OPT_WMODEL},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"no-vad", no_argument, NULL, OPT_NO_VAD},
        {"vad-model", required_argument, NULL, OPT_VAD_MODEL},
        CDT_CLI_REFINE_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_history_params hp = cdt_history_default_params();
    struct dictation d;
    char herr[1024];
    int ch, rc;

    memset(&d, 0, sizeof(d));
    d.cli = cli;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int taken = cdt_cli_refine_opt(&d.ro, ch, optarg, "codictate dictate");

        if (taken < 0)
            return CDT_EXIT_USAGE;
        if (taken)
            continue;
        switch (ch) {
        case OPT_INPUT:
            d.input = optarg;
            break;
        case OPT_RETRY:
            d.retry_last = true;
            break;
        case OPT_DEVICE:
            d.device = optarg;
            break;
        case OPT_MAX_S:
            if (!cdt_arg_int(optarg, 1, 24L * 3600, &d.max_seconds)) {
                fprintf(stderr, "codictate dictate: --max-seconds needs seconds, not '%s'\n",
                        optarg);
                return CDT_EXIT_USAGE;
            }
            break;
        case OPT_COPY:
            d.copy = true;
            break;
        case OPT_TYPE:
            d.type = true;
            break;
        case 'j':
            d.json = d.ro.json = true;
            break;
        case OPT_LANG:
            d.language = optarg;
            break;
        case OPT_WMODEL:
            d.whisper_arg = optarg;
            break;
        case OPT_THREADS:
            if (!cdt_arg_int(optarg, 1, CDT_TRANSCRIBE_MAX_THREADS, &d.threads)) {
                fprintf(stderr, "codictate dictate: --threads must be 1..%d, not '%s'\n",
                        CDT_TRANSCRIBE_MAX_THREADS, optarg);
                return CDT_EXIT_USAGE;
            }
            break;
        case OPT_NO_VAD:
            d.no_vad = true;
            break;
        case OPT_VAD_MODEL:
            d.vad_arg = optarg;
            break;
        case 'h':
            dictate_usage(stdout);
            return CDT_EXIT_OK;
        default:
            dictate_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "codictate dictate: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }
    if (d.input && d.retry_last) {
        fprintf(stderr, "codictate dictate: --input and --retry-last contradict each other\n");
        return CDT_EXIT_USAGE;
    }
    if ((d.input || d.retry_last) && (d.device || d.max_seconds)) {
        fprintf(stderr, "codictate dictate: --device and --max-seconds are for recording\n");
        return CDT_EXIT_USAGE;
    }
    if (d.no_vad && d.vad_arg) {
        fprintf(stderr, "codictate dictate: --no-vad and --vad-model contradict each other\n");
        return CDT_EXIT_USAGE;
    }
    if (d.input && access(d.input, R_OK) != 0) {
        fprintf(stderr, "codictate dictate: %s: %s\n", d.input, strerror(errno));
        return CDT_EXIT_FAIL;
    }

    /* Everything that can be checked is checked before the user starts talking. */
    rc = cdt_cli_refiner_new(cli, &d.ro, "codictate dictate", &d.refiner);
    if (rc != CDT_EXIT_OK)
        return rc;
    rc = cdt_cli_whisper_pick(cli, "codictate dictate", d.whisper_arg, d.vad_arg, d.no_vad, &d.wp);
    if (rc != CDT_EXIT_OK)
        goto out;
    if (access(d.wp.model, R_OK) != 0) {
        fprintf(stderr, "codictate dictate: whisper model %s: %s\n", d.wp.model, strerror(errno));
        rc = CDT_EXIT_FAIL;
        goto out;
    }
    d.tp = cdt_transcribe_default_params();
    d.tp.model_path = d.wp.model;
    d.tp.vad = d.wp.vad;
    d.tp.vad_model_path = d.wp.vad ? d.wp.vad_model : NULL;
    d.tp.language = d.language;
    d.tp.n_threads = (int)d.threads;
    d.tp.log = cli->log;
    hp.log = cli->log;
    hp.errmsg = herr;
    hp.errcap = sizeof(herr);
    if (cdt_history_new(&hp, &d.hist) != 0) {
        fprintf(stderr, "codictate dictate: warning: no history, recordings are not kept: %s\n",
                herr);
        d.hist = NULL;
    }
    d.tty_in = isatty(0);
    d.tty_err = isatty(2);

    rc = run(&d);
out:
    join_whisper(&d);
    join_llm(&d);
    cdt_transcribe_free(d.t);
    cdt_cli_refiner_free(d.refiner);
    cdt_history_free(d.hist);
    return rc;
}
