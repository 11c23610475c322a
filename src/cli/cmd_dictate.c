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
 * SIGUSR1) stops, Esc / Ctrl-C (or SIGTERM) cancels — also after stop, while
 * transcribing or refining (the model call is abandoned at once) — and a cancelled
 * recording is still kept for --retry-last. Transcript text is never logged above debug. */
#include "args.h"
#include "cli.h"
#include "codictate/appclient.h"
#include "codictate/deliver.h"
#include "codictate/dictation.h"
#include "codictate/json.h"
#include "codictate/limits.h"
#include "codictate/log.h"
#include "codictate/pick.h"
#include "codictate/refine.h"
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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS       100 /* the recording loop's period: keys, limits, the bar */
#define BAR_CELLS     20  /* the time bar's width, cells */
#define LEVEL_CELLS   6   /* the input level meter's width, cells */
#define EXIT_CANCELED 130 /* the shell's code for "stopped by Ctrl-C" */

extern char **environ;

/* Set by the signal handlers, read by the recording loop and, after it, by
 * watch_cancel (nothing else happens in a handler). Atomic, not volatile
 * sig_atomic_t: the handler may run on another thread than the one reading (C11
 * allows lock-free atomics in a handler). */
static atomic_int sig_cancel, sig_stop;

static void on_cancel_signal(int sig)
{
    (void)sig;
    atomic_store(&sig_cancel, 1);
}

static void on_stop_signal(int sig)
{
    (void)sig;
    atomic_store(&sig_stop, 1);
}

static void dictate_usage(FILE *out)
{
    fprintf(out, "usage: codictate dictate [options]\n"
                 "\n"
                 "Records from the default microphone (PipeWire/PulseAudio), transcribes with\n"
                 "whisper.cpp and cleans the text up with the LLM, then prints it. While you\n"
                 "speak, the models load in the background. Enter stops (SIGUSR1 too); Esc or\n"
                 "Ctrl-C cancels (SIGTERM too; the recording is kept), also while the text is\n"
                 "transcribed or refined (the model stops at once). Recording stops by itself\n"
                 "at the RAM tier's limit (6 / 8 / 12 min; a warning 30 s before). Every\n"
                 "recording is saved before transcription: a failure can be retried.\n"
                 "\n"
                 "  --toggle                 start a dictation, or stop the running one: in the\n"
                 "                           app (`codictate serve`) when it runs, else in a\n"
                 "                           background `codictate dictate` (bind this to a\n"
                 "                           desktop shortcut; the text goes to the history and,\n"
                 "                           with --copy / --type, the desktop)\n"
                 "  --input FILE             take the audio from a file (WAV, FLAC, OGG, MP3)\n"
                 "                           instead of the microphone, through the same path\n"
                 "  --retry-last             transcribe and refine the last recording again\n"
                 "  --device NAME            the capture source (default: the system's default)\n"
                 "  --max-seconds N          stop recording after N seconds (at most the limit)\n"
                 "  --no-eager               transcribe only after stop (by default speech is\n"
                 "                           transcribed while you speak, when there is a VAD\n"
                 "                           model, so only the last words are left after stop)\n"
                 "  --full-window            encode the words left after stop on whisper's full\n"
                 "                           30 s window (by default on one fitted to their\n"
                 "                           length: several times faster, maybe less accurate)\n"
                 "  --no-context             transcribe each piece on its own, without the text\n"
                 "                           before as whisper's prompt (for a model the prompt\n"
                 "                           makes drop or repeat words)\n"
                 "  --copy                   also copy the text to the clipboard (wl-copy, xclip)\n"
                 "  --type                   also type the text into the focused window (wtype,\n"
                 "                           ydotool, xdotool)\n"
                 "  --json                   print JSON: id, raw, refined, fallback_reason,\n"
                 "                           reason_code, segments, recording, timings, ...\n"
                 "  --whisper-model ID|PATH  the whisper model (default: the first downloaded)\n"
                 "  --language L             language code or auto (default)\n"
                 "  --vocabulary WORDS       words and names you use: whisper's prompt and the\n"
                 "                           LLM's spelling (as in `codictate transcribe` and\n"
                 "                           `codictate refine`)\n"
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
    bool retry_last, copy, type, json, no_vad, no_eager, full_window, no_context;
    const char *whisper_arg, *vad_arg;

    struct cdt_cli_refiner *refiner;
    struct cdt_dictation *sess;

    /* the terminal */
    bool tty_in, tty_err, raw_mode;
    struct termios saved_tio;
    struct cdt_cli_live live; /* the refined text as it comes, on a terminal */
};

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
static void draw_bar(const struct cdt_dictation_status *st)
{
    char el[16], left[16], bar[BAR_CELLS * 3 + 1], lv[LEVEL_CELLS * 3 + 1];
    double frac = st->elapsed_s / st->limit_s;
    float level = st->level;
    int full = (int)(frac * BAR_CELLS + 0.5), lit;
    size_t o = 0;

    fmt_mmss(el, sizeof(el), st->elapsed_s);
    fmt_mmss(left, sizeof(left), st->limit_s - st->elapsed_s);
    for (int i = 0; i < BAR_CELLS; i++)
        o += (size_t)snprintf(bar + o, sizeof(bar) - o, "%s", i < full ? "█" : "░");
    /* The level on a dB-like scale: speech at -30 dBFS already lights half. */
    lit = level > 0 ? (int)((20 * log10f(level) + 60) / 60 * LEVEL_CELLS + 0.5f) : 0;
    o = 0;
    for (int i = 0; i < LEVEL_CELLS; i++)
        o += (size_t)snprintf(lv + o, sizeof(lv) - o, "%s", i < lit ? "▮" : "▯");
    fprintf(stderr, "\r\033[K%s REC %s ▕%s▏ %s left  mic %s  Enter stop · Esc cancel",
            st->warned ? "\033[33m⚠\033[0m" : "\033[31m●\033[0m", el, bar, left, lv);
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

/* ---- recording: the terminal's side ---- */

/* Called from the session's threads: only what stderr needs. */
static void on_event(const struct cdt_dictation_event *ev, void *ud)
{
    struct dictation *d = ud;

    if (ev->kind == CDT_DICT_EV_WARN) {
        if (d->tty_err)
            fprintf(stderr, "\a");
        else
            fprintf(stderr, "codictate dictate: %d s of recording left\n",
                    (int)ceil(ev->status->limit_s - ev->status->elapsed_s));
    } else if (ev->kind == CDT_DICT_EV_NOTICE) {
        fprintf(stderr, "codictate dictate: warning: %s\n", ev->message);
    } else if (ev->kind == CDT_DICT_EV_DELTA) {
        if (!d->live.shown && d->tty_err)
            fprintf(stderr, "\r\033[K"); /* "transcribing..." gives way to the text */
        cdt_cli_live_piece(ev->delta, ev->delta_len, &d->live);
    }
}

/* Watches keys and signals until the recording ends (stop, cancel, the limit, a
 * broken stream: the session decides the last two). */
static void watch_recording(struct dictation *d)
{
    struct sigaction sa_stop, old_usr1;
    struct cdt_dictation_status st;
    char lim[16];
    bool watch_stdin = true;

    cdt_dictation_status(d->sess, &st);
    memset(&sa_stop, 0, sizeof(sa_stop));
    sa_stop.sa_handler = on_stop_signal;
    sigemptyset(&sa_stop.sa_mask);
    sigaction(SIGUSR1, &sa_stop, &old_usr1);
    raw_on(d);

    fmt_mmss(lim, sizeof(lim), st.limit_s);
    if (!d->tty_err)
        fprintf(stderr,
                "codictate dictate: recording (limit %s); Enter or SIGUSR1 stops, Ctrl-C or "
                "SIGTERM cancels\n",
                lim);
    for (;;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
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
        if (k == KEY_CANCEL || atomic_load(&sig_cancel))
            cdt_dictation_cancel(d->sess);
        else if (k == KEY_STOP || atomic_load(&sig_stop))
            cdt_dictation_stop(d->sess);
        cdt_dictation_status(d->sess, &st);
        if (st.state != CDT_DICT_RECORDING || k == KEY_CANCEL || k == KEY_STOP ||
            atomic_load(&sig_cancel) || atomic_load(&sig_stop))
            break;
        if (d->tty_err)
            draw_bar(&st);
    }
    raw_off(d);
    sigaction(SIGUSR1, &old_usr1, NULL);
    if (d->tty_err)
        fprintf(stderr, "\r\033[K");
}

/* After the recording: Ctrl-C or SIGTERM still cancels, while transcribing and
 * refining (a model call under way is abandoned at once), until wait returns. */
struct cancel_watch {
    struct dictation *d;
    atomic_bool over; /* wait returned */
};

static void *watch_cancel(void *arg)
{
    struct cancel_watch *w = arg;

    while (!atomic_load(&w->over)) {
        struct timespec ts = {0, 20 * 1000000L};

        if (atomic_load(&sig_cancel)) {
            cdt_dictation_cancel(w->d->sess);
            break;
        }
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- the pipeline ---- */

static void retry_hint(const struct cdt_dictation_result *r)
{
    if (r->recording)
        fprintf(stderr,
                "codictate dictate: the recording is kept (%s): retry with `codictate dictate "
                "--retry-last`\n",
                r->recording);
}

static int print_result_json(struct dictation *d, const struct cdt_dictation_result *r)
{
    cJSON *root =
        cdt_json_transcript(&r->transcript, d->wp.model, d->wp.vad ? d->wp.vad_model : NULL);

    if (root) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "timings");

        if (r->refined) {
            cdt_json_add_refine(root, &r->refine, r->provider);
        } else {
            cJSON_ReplaceItemInObjectCaseSensitive(root, "refined",
                                                   cJSON_CreateString(r->transcript.text));
            cJSON_AddNullToObject(root, "reason_code");
        }
        cJSON_AddStringToObject(root, "id", r->id);
        cdt_json_add_str(root, "recording", r->recording);
        cJSON_AddStringToObject(root, "source",
                                r->source == CDT_DICT_MICROPHONE ? "microphone"
                                : r->source == CDT_DICT_RETRY    ? "retry"
                                                                 : "file");
        /* The per-stage timings, as the app and the history have them. */
        char *tj = cdt_dictation_timings_json(r);
        cJSON *dt = tj ? cJSON_Parse(tj) : NULL, *it;

        free(tj);
        while (t && dt && (it = dt->child) != NULL) {
            cJSON_DetachItemViaPointer(dt, it);
            cJSON_DeleteItemFromObjectCaseSensitive(t, it->string);
            cJSON_AddItemToObject(t, it->string, it);
        }
        cJSON_Delete(dt);
    }
    return cdt_cli_print_json(root);
}

static int run(struct dictation *d)
{
    struct cdt_dictation_params p = cdt_dictation_default_params();
    struct cdt_dictation_result r;
    struct sigaction sa_cancel, old_int, old_term;
    struct cancel_watch cw = {.d = d};
    pthread_t watcher;
    bool watching;
    char err[1024], lim[16];
    int rc;

    p.source = d->retry_last ? CDT_DICT_RETRY : d->input ? CDT_DICT_FILE : CDT_DICT_MICROPHONE;
    p.input_path = d->input;
    p.device = d->device;
    p.limit_s = (double)d->max_seconds;
    p.no_eager = d->no_eager;
    p.eager.full_window = d->full_window;
    p.eager.no_context = d->no_context;
    p.whisper = cdt_transcribe_default_params();
    p.whisper.model_path = d->wp.model;
    p.whisper.vad = d->wp.vad;
    p.whisper.vad_model_path = d->wp.vad ? d->wp.vad_model : NULL;
    p.whisper.language = d->language;
    p.whisper.vocabulary = d->ro.vocabulary;
    p.whisper.n_threads = (int)d->threads;
    p.whisper.log = d->cli->log;
    p.refiner = cdt_cli_refiner_lib(d->refiner);
    p.log = d->cli->log;
    p.on_event = on_event;
    p.user_data = d;
    cdt_cli_live_init(&d->live, !d->json && isatty(STDOUT_FILENO));
    p.stream_refine = d->live.on;
    atomic_store(&sig_cancel, 0);
    atomic_store(&sig_stop, 0);
    memset(&sa_cancel, 0, sizeof(sa_cancel));
    sa_cancel.sa_handler = on_cancel_signal;
    sigemptyset(&sa_cancel.sa_mask);
    sigaction(SIGINT, &sa_cancel, &old_int);
    sigaction(SIGTERM, &sa_cancel, &old_term);
    rc = cdt_dictation_start(&p, &d->sess, err, sizeof(err));
    if (rc != 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        fprintf(stderr, "codictate dictate: %s%s\n",
                p.source == CDT_DICT_MICROPHONE ? "cannot record: " : "",
                rc == CDT_ENOMEM ? "out of memory" : err);
        return CDT_EXIT_FAIL;
    }
    if (p.source == CDT_DICT_MICROPHONE)
        watch_recording(d);
    if (d->tty_err && p.source == CDT_DICT_MICROPHONE)
        fprintf(stderr, "transcribing...");
    atomic_init(&cw.over, false);
    watching = pthread_create(&watcher, NULL, watch_cancel, &cw) == 0;
    rc = cdt_dictation_wait(d->sess, &r, err, sizeof(err));
    atomic_store(&cw.over, true);
    if (watching)
        pthread_join(watcher, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    cdt_cli_live_finish(&d->live, NULL); /* the result is printed below */
    if (d->tty_err && p.source == CDT_DICT_MICROPHONE)
        fprintf(stderr, "\r\033[K");
    if (rc != 0) {
        fprintf(stderr, "codictate dictate: %s%s\n", d->retry_last ? "--retry-last: " : "",
                rc == CDT_ENOMEM ? "out of memory" : err);
        return CDT_EXIT_FAIL;
    }
    {
        struct cdt_dictation_status st;

        cdt_dictation_status(d->sess, &st);
        fmt_mmss(lim, sizeof(lim), st.limit_s);
    }
    if (r.end == CDT_DICT_END_LIMIT)
        fprintf(stderr, "codictate dictate: the recording limit (%s) was reached; transcribing\n",
                lim);
    else if (r.end == CDT_DICT_END_BROKEN)
        fprintf(stderr, "codictate dictate: recording stopped: %s; keeping what was recorded\n",
                r.capture_error);

    if (r.state == CDT_DICT_CANCELLED) {
        fprintf(stderr, "codictate dictate: cancelled\n");
        retry_hint(&r);
        rc = EXIT_CANCELED;
    } else if (r.state == CDT_DICT_FAILED) {
        fprintf(stderr, "codictate dictate: %s\n", r.error);
        retry_hint(&r);
        rc = CDT_EXIT_FAIL;
    } else {
        if (r.refined)
            cdt_cli_refine_report("codictate dictate", &r.refine,
                                  cdt_cli_refiner_suggested(d->refiner));
        rc = CDT_EXIT_OK;
        if (d->json)
            rc = print_result_json(d, &r);
        else if (r.text[0])
            puts(r.text);
        else
            fprintf(stderr, "codictate dictate: no speech found\n");
        fflush(stdout);
        if (r.text[0] && d->copy && cdt_deliver_copy(r.text, err, sizeof(err)) != 0)
            fprintf(stderr, "codictate dictate: --copy: %s\n", err);
        if (r.text[0] && d->type && cdt_deliver_type(r.text, err, sizeof(err)) != 0)
            fprintf(stderr, "codictate dictate: --type: %s\n", err);
    }
    cdt_dictation_result_cleanup(&r);
    return rc;
}

/* ---- --toggle ---- */

/* The background dictation's PID file (it removes the file when it ends). */
static void toggle_pidfile(char *buf, size_t cap)
{
    char dir[4000];

    cdt_state_dir(dir, sizeof(dir));
    snprintf(buf, cap, "%s/dictate-toggle.pid", dir);
}

/* Called by the background dictation when it is done. */
static void toggle_child_done(void)
{
    const char *pf = getenv("CODICTATE_TOGGLE_PIDFILE");
    char text[32] = "";
    FILE *f;

    if (!pf || !(f = fopen(pf, "re")))
        return;
    if (fgets(text, sizeof(text), f) && atoi(text) == (int)getpid())
        unlink(pf);
    fclose(f);
}

static int toggle_in_app(int port)
{
    struct cdt_client_response r = {0};
    char err[512];
    cJSON *o;
    const cJSON *st, *detail;
    int rc = CDT_EXIT_FAIL;

    if (cdt_appclient_call(port, "POST", "/api/dictation/toggle", "{}", 10000, &r, err,
                           sizeof(err)) != 0) {
        fprintf(stderr, "codictate dictate: --toggle: the app did not answer: %s\n", err);
        return CDT_EXIT_FAIL;
    }
    o = cJSON_Parse(r.body);
    st = cJSON_GetObjectItemCaseSensitive(o, "state");
    detail = cJSON_GetObjectItemCaseSensitive(o, "detail");
    if (r.status == 200 && cJSON_IsString(st)) {
        if (strcmp(st->valuestring, "recording") == 0)
            printf("codictate: recording in the app (run the same command to stop)\n");
        else
            printf("codictate: stopped; the app is %s\n", st->valuestring);
        rc = CDT_EXIT_OK;
    } else {
        fprintf(stderr, "codictate dictate: --toggle: %s\n",
                cJSON_IsString(detail) ? detail->valuestring : "the app refused");
    }
    cJSON_Delete(o);
    free(r.body);
    return rc;
}

/* Starts `codictate dictate` (the same options but --toggle) in the background, or
 * stops the one running (SIGUSR1: stop and transcribe). */
static int toggle_background(int argc, char **argv, const struct cdt_cli_refine_opts *ro)
{
    char pf[4096], dir[4096], logpath[4200], env[4200], text[32] = "", *slash;
    char keyenv[CDT_CLI_API_KEY_MAX + 32] = "";
    char **cargv = calloc((size_t)argc + 2, sizeof(*cargv));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    FILE *f;
    pid_t pid;
    int n = 0, rc;

    if (!cargv)
        return CDT_EXIT_FAIL;
    toggle_pidfile(pf, sizeof(pf));
    if ((f = fopen(pf, "re")) != NULL) {
        pid = fgets(text, sizeof(text), f) ? (pid_t)atoi(text) : 0;
        fclose(f);
        if (pid > 0 && cdt_proc_is_codictate(pid, "dictate") &&
            cdt_proc_signal(pid, SIGUSR1) == 0) {
            printf("codictate: stopped the background dictation (pid %d); its text goes to "
                   "`codictate history`\n",
                   (int)pid);
            free(cargv);
            return CDT_EXIT_OK;
        }
        unlink(pf); /* stale */
    }
    snprintf(dir, sizeof(dir), "%s", pf);
    if ((slash = strrchr(dir, '/')) != NULL)
        *slash = '\0';
    if (cdt_mkdir_p(dir, 0700) != 0) {
        fprintf(stderr, "codictate dictate: --toggle: cannot create %s\n", dir);
        free(cargv);
        return CDT_EXIT_FAIL;
    }
    snprintf(logpath, sizeof(logpath), "%s/dictate-toggle.log", dir);
    snprintf(env, sizeof(env), "CODICTATE_TOGGLE_PIDFILE=%s", pf);
    cargv[n++] = "codictate";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *k = ro->api_key_arg;

        if (k && i + 1 < argc && argv[i + 1] == k) {
            i++; /* "--api-key KEY": blanked here, the child gets it in its environment */
            continue;
        }
        if (k && k > a && k <= a + strlen(a))
            continue; /* "--api-key=KEY" */
        if (strcmp(a, "--toggle") != 0)
            cargv[n++] = argv[i];
    }
    cargv[n] = NULL;
    if (ro->api_key && ro->api_key_arg &&
        snprintf(keyenv, sizeof(keyenv), "OPENAI_API_KEY=%s", ro->api_key) >= (int)sizeof(keyenv)) {
        free(cargv);
        return CDT_EXIT_FAIL;
    }
    /* argv[0] of the verb is "dictate": the binary is /proc/self/exe. */
    {
        char **cenv;
        size_t ne = 0;

        while (environ[ne])
            ne++;
        cenv = calloc(ne + 3, sizeof(*cenv));
        if (!cenv) {
            free(cargv);
            return CDT_EXIT_FAIL;
        }
        memcpy(cenv, environ, ne * sizeof(*cenv));
        cenv[ne] = env;
        if (keyenv[0]) {
            /* Ours comes first: getenv finds the first of two. */
            memmove(cenv + 1, cenv, (ne + 1) * sizeof(*cenv));
            cenv[0] = keyenv;
        }
        {
            char **full = calloc((size_t)n + 2, sizeof(*full));

            if (!full) {
                free(cenv);
                free(cargv);
                return CDT_EXIT_FAIL;
            }
            full[0] = "codictate";
            full[1] = "dictate";
            memcpy(full + 2, cargv + 1, (size_t)(n - 1) * sizeof(*full));
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            posix_spawn_file_actions_adddup2(&fa, 1, 2);
            posix_spawnattr_init(&attr);
            posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
            rc = posix_spawn(&pid, "/proc/self/exe", &fa, &attr, full, cenv);
            posix_spawnattr_destroy(&attr);
            posix_spawn_file_actions_destroy(&fa);
            free(full);
        }
        free(cenv);
    }
    free(cargv);
    if (rc != 0) {
        fprintf(stderr, "codictate dictate: --toggle: cannot start: %s\n", strerror(rc));
        return CDT_EXIT_FAIL;
    }
    if ((f = fopen(pf, "we")) != NULL) {
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
    printf("codictate: recording in the background (pid %d; run the same command to stop; "
           "log: %s)\n",
           (int)pid, logpath);
    return CDT_EXIT_OK;
}

static int dictate_toggle(int argc, char **argv, const struct cdt_cli_refine_opts *ro)
{
    int port = cdt_appclient_find();

    return port ? toggle_in_app(port) : toggle_background(argc, argv, ro);
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
        OPT_VAD_MODEL,
        OPT_TOGGLE,
        OPT_NO_EAGER,
        OPT_FULL_WINDOW,
        OPT_NO_CONTEXT
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
        {"toggle", no_argument, NULL, OPT_TOGGLE},
        {"no-eager", no_argument, NULL, OPT_NO_EAGER},
        {"full-window", no_argument, NULL, OPT_FULL_WINDOW},
        {"no-context", no_argument, NULL, OPT_NO_CONTEXT},
        CDT_CLI_REFINE_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dictation d;
    bool toggle = false;
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
        case OPT_TOGGLE:
            toggle = true;
            break;
        case OPT_NO_EAGER:
            d.no_eager = true;
            break;
        case OPT_FULL_WINDOW:
            d.full_window = true;
            break;
        case OPT_NO_CONTEXT:
            d.no_context = true;
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
    if (toggle) {
        if (d.input || d.retry_last || d.json) {
            fprintf(stderr, "codictate dictate: --toggle records; it takes no --input, "
                            "--retry-last or --json\n");
            return CDT_EXIT_USAGE;
        }
        return dictate_toggle(argc, argv, &d.ro);
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
    d.tty_in = isatty(0);
    d.tty_err = isatty(2);

    rc = run(&d);
    toggle_child_done();
out:
    cdt_dictation_free(d.sess);
    cdt_cli_refiner_free(d.refiner);
    return rc;
}
