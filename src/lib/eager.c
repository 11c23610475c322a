/* Eager transcription (see eager.h).
 *
 * Invariants: `buf` holds the recording from sample `base` (a multiple of
 * CDT_VAD_FRAME until the last chunk) to `base + len` = everything pushed; the
 * worker alone removes chunks from its front, in order, so the chunks partition the
 * recording. `probs[i]` is the speech probability of frame i counted from `base`
 * (n_probs of them analysed), `head[i]` and `tail[i]` the energy of its first and
 * last EDGE samples (a forced split cuts where they are lowest). Everything under
 * `mu` is shared with push, cancel and finish; the VAD stream, the probabilities,
 * the energies, the chunks and the text so far are the worker's until it is
 * joined. Transcript text is logged only at debug. */
#include "codictate/eager.h"

#include "codictate/audio.h"
#include "codictate/log.h"
#include "codictate/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME         CDT_VAD_FRAME
#define FRAME_S       ((double)FRAME / CDT_AUDIO_RATE)
#define MAX_FEED      (CDT_AUDIO_RATE * 10 / FRAME) /* frames given to the VAD at once: 10 s */
#define SEARCH_S      8.0   /* a forced split looks for the quietest stretch this far back, s */
#define SILENCE_CUT_S 3.0   /* a stretch without speech this long becomes its own chunk, s */
#define HYSTERESIS    0.15f /* below threshold - this is silence (Silero's own rule) */
#define EDGE          160   /* samples at each end of a frame whose energy is kept: 10 ms */
#define QUIET_X       2.0f  /* a cut this many times the quietest one's energy is as quiet */
#define QUIET_FLOOR   1e-9f /* energies this close are the same (digital silence), mean square */
#define WHISPER_MAX_S 30.0

struct cdt_eager {
    struct cdt_eager_params p;
    size_t gap_f, min_f, max_f, search_f, silence_f; /* the params in frames */
    size_t long_f, short_f; /* long_chunk_s (0: never) and the pause that then cuts */
    size_t backlog_f;       /* 0: never merge */
    float neg;              /* silence below this */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* new audio, the end, cancel */
    float *buf;        /* the recording from base on */
    size_t len, cap;   /* samples */
    size_t base;       /* the recording's index of buf[0] */
    size_t pushed;     /* = base + len */
    bool ended;        /* finish was called: nothing more comes */
    bool cancel;
    bool in_whisper;  /* the worker is in a whisper call */
    bool cancel_sent; /* cdt_transcribe_cancel was called on t */
    size_t n_done;    /* chunks finished */

    pthread_t thread;
    bool started;
    struct cdt_transcribe *t;
    struct cdt_vad_stream *vad;
    float *probs;
    float *head, *tail; /* per frame: mean square of its first / last EDGE samples */
    size_t n_probs, probs_cap;
    float *scratch;
    size_t scratch_cap;
    struct cdt_eager_chunk *chunks;
    struct cdt_transcript *trs; /* one per chunk */
    size_t n_chunks, chunks_cap;
    char *text; /* the text so far, for the prompt */
    size_t text_len;
    int rc;
    char errmsg[1024];
};

struct cdt_eager_params cdt_eager_default_params(void)
{
    struct cdt_eager_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

static size_t frames_of(double s)
{
    return (size_t)(s / FRAME_S + 0.5);
}

int cdt_eager_new(const struct cdt_eager_params *p, struct cdt_eager **out)
{
    struct cdt_eager_params d = cdt_eager_default_params();
    struct cdt_eager *e;

    *out = NULL;
    if (!p)
        p = &d;
    d = *p;
    if (d.min_gap_s <= 0)
        d.min_gap_s = 0.5;
    if (d.min_chunk_s <= 0)
        d.min_chunk_s = 1.0;
    if (d.max_chunk_s <= 0)
        d.max_chunk_s = 28.0;
    if (d.threshold == 0.0f)
        d.threshold = 0.5f;
    if (d.max_chunk_s > WHISPER_MAX_S || d.max_chunk_s < d.min_chunk_s ||
        d.max_chunk_s < 2 * d.min_gap_s || !(d.threshold > 0.0f && d.threshold < 1.0f))
        return CDT_EINVAL;
    if (!(e = calloc(1, sizeof(*e))))
        return CDT_ENOMEM;
    e->p = d;
    e->gap_f = frames_of(d.min_gap_s);
    e->min_f = frames_of(d.min_chunk_s);
    e->max_f = frames_of(d.max_chunk_s);
    e->search_f = frames_of(SEARCH_S < d.max_chunk_s / 2 ? SEARCH_S : d.max_chunk_s / 2);
    if (e->gap_f < 2)
        e->gap_f = 2;
    e->long_f = d.long_chunk_s < 0 ? 0 : frames_of(d.long_chunk_s > 0 ? d.long_chunk_s : 8.0);
    e->short_f = e->gap_f / 2 < 2 ? 2 : e->gap_f / 2;
    e->silence_f = frames_of(SILENCE_CUT_S) + e->gap_f;
    e->backlog_f = d.backlog_s < 0 ? 0 : frames_of(d.backlog_s > 0 ? d.backlog_s : 10.0);
    e->neg = d.threshold > HYSTERESIS + 0.01f ? d.threshold - HYSTERESIS : d.threshold / 2;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    *out = e;
    return 0;
}

/* ---- the recording ---- */

/* Appends under mu. */
static int append_locked(struct cdt_eager *e, const float *x, size_t n)
{
    if (n == 0)
        return 0;
    if (e->len + n > e->cap) {
        size_t ncap = e->cap ? e->cap : (size_t)CDT_AUDIO_RATE * 8;
        float *nb;

        while (ncap < e->len + n)
            ncap *= 2;
        if (!(nb = realloc(e->buf, ncap * sizeof(float))))
            return CDT_ENOMEM;
        e->buf = nb;
        e->cap = ncap;
    }
    memcpy(e->buf + e->len, x, n * sizeof(float));
    e->len += n;
    e->pushed += n;
    return 0;
}

int cdt_eager_push(struct cdt_eager *e, const float *x, size_t n)
{
    int rc = 0;

    if (n == 0)
        return 0;
    pthread_mutex_lock(&e->mu);
    if (e->ended)
        rc = CDT_ESTATE;
    else if ((rc = append_locked(e, x, n)) == 0)
        pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ---- where to cut ---- */

/* The energy around the cut before frame i (i >= 1): the last EDGE samples of frame
 * i - 1 and the first EDGE of frame i. */
static float energy_at(const struct cdt_eager *e, size_t i)
{
    return e->tail[i - 1] + e->head[i];
}

/* The quietest cut in [lo, hi) (1 <= lo < hi): the middle of the longest run of cuts
 * whose energy is within QUIET_X of the lowest one, so a gap between words (a short
 * pause, a stop's closure) is cut in its middle, not at its edge. */
static size_t quietest(const struct cdt_eager *e, size_t lo, size_t hi)
{
    float low = energy_at(e, lo), limit;
    size_t run = 0, best_run = 0, best = lo;

    for (size_t i = lo + 1; i < hi; i++)
        if (energy_at(e, i) < low)
            low = energy_at(e, i);
    limit = low * QUIET_X + QUIET_FLOOR;
    for (size_t i = lo; i < hi; i++) {
        if (energy_at(e, i) > limit) {
            run = 0;
            continue;
        }
        if (++run > best_run) {
            best_run = run;
            best = i + 1 - run + (run - 1) / 2;
        }
    }
    return best;
}

/* The frame to cut the region probs[0..m) at, or 0 (not yet). *speech: the chunk
 * before it holds speech; *forced: no pause was found.
 *
 * A cut depends only on the frames up to a little past it, never on how many were
 * analysed at once, so the chunks are the same on a fast or a slow machine: the
 * first pause of gap_f after speech (cut gap_f / 2 into it) past min_f, or of short_f
 * (cut short_f / 2 into it) past long_f; a stretch of
 * silence_f without speech (cut gap_f before its end); or, with neither by max_f,
 * the quietest place of the last search_f by the audio's energy (quietest), so a
 * word spoken across the limit is not cut in half wherever there is a gap between
 * words. Except when the worker fell behind by more than backlog_s: then the last
 * pause up to max_f, to catch up. */
static size_t find_cut(const struct cdt_eager *e, bool *speech, bool *forced)
{
    const float *p = e->probs;
    size_t m = e->n_probs, first = 0, last = 0, first_speech = m, run = 0;

    *speech = false;
    *forced = false;
    /* Silence only: the first silence_f frames hold no speech and nothing doubtful. */
    if (m >= e->silence_f) {
        size_t i = 0;

        while (i < e->silence_f && p[i] < e->neg)
            i++;
        if (i == e->silence_f)
            return e->silence_f - e->gap_f;
    }
    /* Pauses after speech: of gap_f, or of short_f once the chunk is long_f long. */
    for (size_t i = 0; i < m; i++) {
        if (p[i] < e->neg) {
            size_t at = i + 1 - ++run, c = 0; /* at: the pause's first frame */

            if (first_speech < at && run == e->gap_f)
                c = at + e->gap_f / 2;
            else if (first_speech < at && e->long_f && run == e->short_f &&
                     at + e->short_f / 2 >= e->long_f)
                c = at + e->short_f / 2;
            if (c > e->max_f)
                break;
            if (c && c >= e->min_f) {
                if (!first)
                    first = c;
                last = c;
            }
            continue;
        }
        if (p[i] >= e->p.threshold && first_speech == m)
            first_speech = i;
        run = 0;
    }
    if (first) {
        *speech = true;
        return e->backlog_f && m - first > e->backlog_f ? last : first;
    }
    /* No pause within max_f (any such pause is known by max_f + gap_f): the
     * quietest cut of the last search_f, by the audio's energy. Not by the VAD's
     * probabilities: they come per 32 ms frame, lag the audio and stay high across
     * a gap between words in running speech, where the energy drops at once. */
    if (m >= e->max_f + e->gap_f) {
        size_t lo = e->max_f - e->search_f;

        *speech = true;
        *forced = true;
        return quietest(e, lo > 0 ? lo : 1, e->max_f + 1);
    }
    return 0;
}

/* ---- transcribing a chunk ---- */

static int grow_chunks(struct cdt_eager *e)
{
    if (e->n_chunks == e->chunks_cap) {
        size_t ncap = e->chunks_cap ? e->chunks_cap * 2 : 16;
        struct cdt_eager_chunk *c = realloc(e->chunks, ncap * sizeof(*c));
        struct cdt_transcript *t;

        if (!c)
            return CDT_ENOMEM;
        e->chunks = c;
        if (!(t = realloc(e->trs, ncap * sizeof(*t))))
            return CDT_ENOMEM;
        e->trs = t;
        e->chunks_cap = ncap;
    }
    return 0;
}

/* Whether a sentence begins at s: text's start, after an end mark and a space, or
 * after a CJK end mark (with or without a space). */
static bool sentence_starts(const char *text, const char *s)
{
    static const char *const cjk[] = {"\xe3\x80\x82", "\xef\xbc\x9f", "\xef\xbc\x81"}; /* 。？！ */

    const char *e; /* where an end mark before s would end */

    if (s == text)
        return true;
    if (*s == ' ' || ((unsigned char)*s & 0xc0) == 0x80)
        return false; /* not the start of a word, or inside a character */
    e = s[-1] == ' ' ? s - 1 : s;
    if (e != s && e > text && strchr(".?!", e[-1]))
        return true;
    for (size_t i = 0; i < 3; i++)
        if (e - text >= 3 && memcmp(e - 3, cjk[i], 3) == 0)
            return true;
    return false;
}

const char *cdt_eager_prompt_start(const char *text)
{
    size_t len = text ? strlen(text) : 0;
    const char *s, *q;

    if (len == 0)
        return NULL;
    s = len <= CDT_EAGER_PROMPT_MAX ? text : text + len - CDT_EAGER_PROMPT_MAX;
    for (q = s; *q; q++)
        if (sentence_starts(text, q))
            return q;
    while (*s && *s != ' ') /* one long sentence: from a word's start */
        s++;
    while (*s == ' ')
        s++;
    return *s ? s : NULL;
}

/* whisper's prompt for the next chunk (NULL with no_context). */
static const char *prompt_of(const struct cdt_eager *e)
{
    return e->p.no_context ? NULL : cdt_eager_prompt_start(e->text);
}

static int add_text(struct cdt_eager *e, const char *t)
{
    size_t l = strlen(t);
    char *n;

    if (l == 0)
        return 0;
    if (!(n = realloc(e->text, e->text_len + l + 2)))
        return CDT_ENOMEM;
    e->text = n;
    if (e->text_len)
        e->text[e->text_len++] = ' ';
    memcpy(e->text + e->text_len, t, l + 1);
    e->text_len += l;
    return 0;
}

/* Takes the first n samples as the next chunk and transcribes it when it holds
 * speech. Returns 0, CDT_ECANCELED, or an error (e->errmsg). */
static int take_chunk(struct cdt_eager *e, size_t n, bool speech, bool forced)
{
    struct cdt_eager_chunk *c;
    struct cdt_transcript *tr;
    const char *prompt;
    float *x = NULL;
    size_t start, prompt_len = 0; /* prompt points into e->text, which add_text moves */
    double t0;
    int rc = 0;

    if (grow_chunks(e) != 0)
        return CDT_ENOMEM;
    if (speech && !(x = malloc(n * sizeof(float))))
        return CDT_ENOMEM;
    pthread_mutex_lock(&e->mu);
    if (x)
        memcpy(x, e->buf, n * sizeof(float));
    memmove(e->buf, e->buf + n, (e->len - n) * sizeof(float));
    start = e->base;
    e->base += n;
    e->len -= n;
    c = &e->chunks[e->n_chunks];
    memset(c, 0, sizeof(*c));
    c->after_stop = e->ended;
    if (e->cancel)
        rc = CDT_ECANCELED;
    e->in_whisper = speech && rc == 0;
    pthread_mutex_unlock(&e->mu);
    /* The probabilities and energies move with the audio. */
    if (n / FRAME < e->n_probs) {
        memmove(e->probs, e->probs + n / FRAME, (e->n_probs - n / FRAME) * sizeof(float));
        memmove(e->head, e->head + n / FRAME, (e->n_probs - n / FRAME) * sizeof(float));
        memmove(e->tail, e->tail + n / FRAME, (e->n_probs - n / FRAME) * sizeof(float));
        e->n_probs -= n / FRAME;
    } else {
        e->n_probs = 0;
    }
    c->start = (double)start / CDT_AUDIO_RATE;
    c->end = (double)(start + n) / CDT_AUDIO_RATE;
    c->speech = speech;
    c->forced = forced;
    tr = &e->trs[e->n_chunks];
    cdt_transcript_init(tr);
    if (rc == 0 && speech) {
        prompt = prompt_of(e);
        prompt_len = prompt ? strlen(prompt) : 0;
        t0 = cdt_now_ms();
        rc = cdt_transcribe_samples_after(
            e->t, x, n, prompt, c->after_stop && !e->p.full_window ? CDT_TRANSCRIBE_FIT_WINDOW : 0u,
            tr);
        c->ms = cdt_now_ms() - t0;
        c->window_s = tr->window_seconds;
        pthread_mutex_lock(&e->mu);
        e->in_whisper = false;
        pthread_mutex_unlock(&e->mu);
        if (rc != 0)
            snprintf(e->errmsg, sizeof(e->errmsg), "%s", cdt_transcribe_errmsg(e->t));
        else
            rc = add_text(e, tr->text);
    }
    free(x);
    if (rc != 0) {
        cdt_transcript_cleanup(tr);
        return rc;
    }
    for (size_t i = 0; i < tr->n_segments; i++) {
        tr->segments[i].start += c->start;
        tr->segments[i].end += c->start;
    }
    e->n_chunks++;
    pthread_mutex_lock(&e->mu);
    e->n_done = e->n_chunks;
    pthread_mutex_unlock(&e->mu);
    CDT_LOG_D(e->p.log, "eager: chunk %zu %.2f-%.2f s%s%s%s, %.0f ms, prompt %zu bytes",
              e->n_chunks, c->start, c->end, speech ? "" : " (no speech)",
              forced ? " (split: no pause)" : "", c->after_stop ? " (after stop)" : "", c->ms,
              prompt_len);
    if (speech && e->text && e->p.on_text)
        e->p.on_text(e->text, e->p.user_data); /* no lock held */
    return 0;
}

/* ---- the worker ---- */

/* Mean square of n samples. */
static float energy(const float *x, size_t n)
{
    double sum = 0;

    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    return (float)(sum / (double)n);
}

static int feed_vad(struct cdt_eager *e, size_t nf)
{
    if (e->n_probs + nf > e->probs_cap) {
        size_t ncap = e->probs_cap ? e->probs_cap : 1024;
        float *p, *h, *t;

        while (ncap < e->n_probs + nf)
            ncap *= 2;
        if (!(p = realloc(e->probs, ncap * sizeof(float))))
            return CDT_ENOMEM;
        e->probs = p;
        if (!(h = realloc(e->head, ncap * sizeof(float))))
            return CDT_ENOMEM;
        e->head = h;
        if (!(t = realloc(e->tail, ncap * sizeof(float))))
            return CDT_ENOMEM;
        e->tail = t;
        e->probs_cap = ncap;
    }
    for (size_t i = 0; i < nf; i++) {
        e->head[e->n_probs + i] = energy(e->scratch + i * FRAME, EDGE);
        e->tail[e->n_probs + i] = energy(e->scratch + (i + 1) * FRAME - EDGE, EDGE);
    }
    /* A failed VAD call reads as speech (1.0): a cut only comes later. */
    if (cdt_vad_stream_feed(e->vad, e->scratch, nf * FRAME, e->probs + e->n_probs) != 0)
        CDT_LOG_D(e->p.log, "eager: the VAD failed on %zu frames (read as speech)", nf);
    e->n_probs += nf;
    return 0;
}

static int run(struct cdt_eager *e)
{
    for (;;) {
        size_t nf, avail;
        bool ended, speech, forced;
        int rc;

        pthread_mutex_lock(&e->mu);
        while (!e->cancel && !e->ended && e->len / FRAME <= e->n_probs)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->cancel) {
            pthread_mutex_unlock(&e->mu);
            return CDT_ECANCELED;
        }
        ended = e->ended;
        avail = e->len / FRAME;
        nf = avail - e->n_probs;
        if (nf > MAX_FEED)
            nf = MAX_FEED;
        if (nf * FRAME > e->scratch_cap) {
            float *s = realloc(e->scratch, nf * FRAME * sizeof(float));

            if (!s) {
                pthread_mutex_unlock(&e->mu);
                return CDT_ENOMEM;
            }
            e->scratch = s;
            e->scratch_cap = nf * FRAME;
        }
        if (nf)
            memcpy(e->scratch, e->buf + e->n_probs * FRAME, nf * FRAME * sizeof(float));
        pthread_mutex_unlock(&e->mu);

        if (nf && (rc = feed_vad(e, nf)) != 0)
            return rc;
        while (1) {
            size_t c = find_cut(e, &speech, &forced);

            if (!c)
                break;
            if ((rc = take_chunk(e, c * FRAME, speech, forced)) != 0)
                return rc;
        }
        if (!ended)
            continue;
        pthread_mutex_lock(&e->mu);
        avail = e->len / FRAME;
        pthread_mutex_unlock(&e->mu);
        if (e->n_probs < avail)
            continue; /* more to analyse first */
        /* The end: what is left is the last chunk (split where it is too long). */
        for (;;) {
            size_t left;

            pthread_mutex_lock(&e->mu);
            left = e->len;
            pthread_mutex_unlock(&e->mu);
            if (left == 0)
                return 0;
            speech = false;
            for (size_t i = 0; i < e->n_probs; i++)
                if (e->probs[i] >= e->neg)
                    speech = true;
            if (left > e->max_f * FRAME) {
                size_t c = find_cut(e, &speech, &forced);

                if (c && (rc = take_chunk(e, c * FRAME, speech, forced)) != 0)
                    return rc;
                if (c)
                    continue;
            }
            return take_chunk(e, left, speech, false);
        }
    }
}

static void *worker_main(void *arg)
{
    struct cdt_eager *e = arg;
    int rc = run(e);
    bool clear;

    pthread_mutex_lock(&e->mu);
    if (rc == 0 && e->cancel)
        rc = CDT_ECANCELED;
    e->rc = rc;
    clear = e->cancel_sent;
    pthread_mutex_unlock(&e->mu);
    if (clear) {
        /* A cancel that reached t after its call ended would stop the next user's
         * first call: an empty call clears it. */
        struct cdt_transcript tr;

        cdt_transcript_init(&tr);
        if (cdt_transcribe_samples(e->t, NULL, 0, &tr) != 0)
            CDT_LOG_D(e->p.log, "eager: the cancel was cleared");
        cdt_transcript_cleanup(&tr);
    }
    return NULL;
}

int cdt_eager_start(struct cdt_eager *e, struct cdt_transcribe *t)
{
    int rc;

    if (e->started || e->vad)
        return CDT_ESTATE;
    if (!cdt_transcribe_has_vad(t))
        return CDT_EINVAL;
    if ((rc = cdt_vad_stream_new(t, &e->vad)) != 0)
        return rc;
    e->t = t;
    if (pthread_create(&e->thread, NULL, worker_main, e) != 0) {
        cdt_vad_stream_free(e->vad);
        e->vad = NULL;
        return CDT_ENOMEM;
    }
    e->started = true;
    return 0;
}

void cdt_eager_cancel(struct cdt_eager *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->cancel = true;
    if (e->in_whisper) {
        cdt_transcribe_cancel(e->t); /* an atomic store */
        e->cancel_sent = true;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void join(struct cdt_eager *e)
{
    if (e->started) {
        pthread_join(e->thread, NULL);
        e->started = false;
    }
}

/* Joins the chunks' transcripts into out. */
static int merge(struct cdt_eager *e, size_t n_all, struct cdt_transcript *out)
{
    size_t n_seg = 0, text_len = 0, o = 0, k = 0;

    out->audio_seconds = (double)n_all / CDT_AUDIO_RATE;
    out->vad = true;
    for (size_t i = 0; i < e->n_chunks; i++) {
        const struct cdt_transcript *tr = &e->trs[i];

        n_seg += tr->n_segments;
        for (size_t j = 0; j < tr->n_segments; j++)
            text_len += strlen(tr->segments[j].text) + 1;
        if (!out->language[0] && tr->language[0] && tr->n_segments)
            memcpy(out->language, tr->language, sizeof(out->language));
        out->timings.load_ms = tr->timings.load_ms;
        out->timings.prepare_ms += tr->timings.prepare_ms;
        out->timings.encode_ms += tr->timings.encode_ms;
        out->timings.decode_ms += tr->timings.decode_ms;
        out->timings.total_ms += tr->timings.total_ms;
    }
    if (!out->language[0])
        for (size_t i = 0; i < e->n_chunks && !out->language[0]; i++)
            memcpy(out->language, e->trs[i].language, sizeof(out->language));
    if (n_seg && !(out->segments = calloc(n_seg, sizeof(*out->segments))))
        return CDT_ENOMEM;
    if (!(out->text = malloc(text_len + 1)))
        return CDT_ENOMEM;
    for (size_t i = 0; i < e->n_chunks; i++) {
        struct cdt_transcript *tr = &e->trs[i];

        for (size_t j = 0; j < tr->n_segments; j++) {
            size_t l = strlen(tr->segments[j].text);

            out->segments[k] = tr->segments[j]; /* the text moves */
            tr->segments[j].text = NULL;
            if (o)
                out->text[o++] = ' ';
            memcpy(out->text + o, out->segments[k].text, l);
            o += l;
            k++;
        }
        tr->n_segments = 0;
    }
    out->n_segments = k;
    out->text[o] = '\0';
    return 0;
}

int cdt_eager_finish(struct cdt_eager *e, struct cdt_transcribe *t, const float *all, size_t n_all,
                     struct cdt_transcript *out)
{
    int rc = 0;

    cdt_transcript_cleanup(out);
    e->errmsg[0] = '\0';
    pthread_mutex_lock(&e->mu);
    if (e->ended) {
        rc = CDT_ESTATE;
    } else if (e->pushed > n_all) {
        snprintf(e->errmsg, sizeof(e->errmsg), "%zu samples were pushed, the recording has %zu",
                 e->pushed, n_all);
        rc = CDT_EINVAL;
    } else if ((rc = append_locked(e, all + e->pushed, n_all - e->pushed)) != 0) {
        snprintf(e->errmsg, sizeof(e->errmsg), "out of memory");
    }
    if (rc == 0) {
        e->ended = true;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc != 0)
        return rc;
    if (!e->started && (rc = cdt_eager_start(e, t)) != 0) {
        snprintf(e->errmsg, sizeof(e->errmsg), "eager transcription could not start: %s",
                 cdt_strerror(rc));
        return rc;
    }
    join(e);
    if ((rc = e->rc) != 0) {
        if (!e->errmsg[0])
            snprintf(e->errmsg, sizeof(e->errmsg), "%s", cdt_strerror(rc));
        return rc;
    }
    if ((rc = merge(e, n_all, out)) != 0) {
        cdt_transcript_cleanup(out);
        snprintf(e->errmsg, sizeof(e->errmsg), "out of memory");
        return rc;
    }
    CDT_LOG_D(e->p.log, "eager transcript (%zu chunks, %zu segments): %s", e->n_chunks,
              out->n_segments, out->text);
    return 0;
}

const struct cdt_eager_chunk *cdt_eager_chunks(struct cdt_eager *e, size_t *n)
{
    *n = e->started ? 0 : e->n_chunks;
    return e->chunks;
}

size_t cdt_eager_chunk_count(struct cdt_eager *e)
{
    size_t n;

    pthread_mutex_lock(&e->mu);
    n = e->n_done;
    pthread_mutex_unlock(&e->mu);
    return n;
}

const char *cdt_eager_errmsg(const struct cdt_eager *e)
{
    return e->errmsg;
}

void cdt_eager_free(struct cdt_eager *e)
{
    if (!e)
        return;
    cdt_eager_cancel(e);
    join(e);
    cdt_vad_stream_free(e->vad);
    for (size_t i = 0; i < e->n_chunks; i++)
        cdt_transcript_cleanup(&e->trs[i]);
    free(e->trs);
    free(e->chunks);
    free(e->probs);
    free(e->head);
    free(e->tail);
    free(e->scratch);
    free(e->text);
    free(e->buf);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
