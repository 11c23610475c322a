/* Refinement ahead (refine.h): the finished pieces of a transcript refined in the
 * background while it still grows.
 *
 * Invariants: the worker asks about a piece only when the text offered goes on past
 * it (the last piece of the text so far may still grow), in the order of the text,
 * each exactly as cdt_refine_run would (cdt__refine_ask: same prompt, same guards).
 * Its pieces are cut as a run cuts them, but no longer than the local model's
 * measured speeds say half the deadline holds (cdt__refine_piece_within), so on a
 * slow machine they are refined rather than refused, and after stop the piece under
 * way and the tail fit in the deadline together. Its answers are kept with the
 * piece's exact deterministic text; a later text goes on after the pieces it starts
 * with, and a run takes an answer only for a piece its own text starts with there,
 * as the worker cut it. Both go through the pieces in the order of the text (a
 * sentence said twice is two pieces, each asked). Once a run takes from it (or
 * cancel) the worker starts no new piece; cancel also abandons the model call under
 * way (p.should_stop asks it). `mu` guards everything below it; the model is called
 * without it. */
#include "codictate/cleanup.h"
#include "codictate/log.h"
#include "codictate/refine.h"
#include "refine_int.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ahead_piece {
    char *text; /* the piece's deterministic text */
    struct cdt__refine_answer ans;
};

struct cdt_refine_ahead {
    struct cdt_refine_params p; /* a copy: no on_delta, no ahead; should_stop is ours */
    bool (*user_stop)(void *);  /* the caller's should_stop, also asked; NULL: none */
    void *user_stop_data;
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* new text, cancel, closing, a piece done */
    char *offered;     /* the latest text so far; NULL once the worker took it */
    bool cancel;       /* cdt_refine_ahead_cancel or free */
    bool closing;      /* a run takes from it: no new piece */
    bool busy;         /* the worker is on a text (a model call may be under way) */
    struct ahead_piece *v;
    size_t n, cap;
    size_t taken; /* pieces before this index are passed by the run */
};

/* The index of the first piece from `from` on that s starts with (its text, then
 * white space or the end), or a->n if none. Under mu. */
static size_t piece_at(const struct cdt_refine_ahead *a, const char *s, size_t from)
{
    for (size_t i = from; i < a->n; i++) {
        size_t n = strlen(a->v[i].text);

        if (n > 0 && strncmp(a->v[i].text, s, n) == 0 && (!s[n] || isspace((unsigned char)s[n])))
            return i;
    }
    return a->n;
}

/* p.should_stop: cancelled, or the caller's should_stop says stop. */
static bool stopped(void *ud)
{
    struct cdt_refine_ahead *a = ud;
    bool stop;

    pthread_mutex_lock(&a->mu);
    stop = a->cancel;
    pthread_mutex_unlock(&a->mu);
    return stop || (a->user_stop && a->user_stop(a->user_stop_data));
}

/* Asks about every finished piece of `text` not answered yet. Returns 0 or CDT_ENOMEM. */
static int refine_text(struct cdt_refine_ahead *a, const char *text)
{
    int words = a->p.chunk_words > 0 ? a->p.chunk_words : CDT_REFINE_CHUNK_WORDS, rc;
    long timeout = a->p.timeout_ms > 0 ? a->p.timeout_ms : CDT_REFINE_DEFAULT_TIMEOUT_MS;
    char *cleaned = NULL;
    const char *s;
    bool local;
    /* The text's pieces are v[next..], in order: a sentence said twice is two pieces
     * (a run takes them in order), not one answered once and then skipped. */
    size_t next = 0;

    if ((rc = cdt_cleanup_text(text, &cleaned)) != 0)
        return rc;
    if (strlen(cleaned) > CDT_REFINE_MAX_MODEL_TEXT) {
        free(cleaned); /* the whole run will not ask the model either */
        return 0;
    }
    local = cdt__refine_load(&a->p, cleaned); /* its speeds, measured as it loads */
    for (s = cleaned; rc == 0;) {
        size_t len, rest, i;
        struct ahead_piece piece;
        bool stop;

        s += strspn(s, " \t\n\r\f\v");
        pthread_mutex_lock(&a->mu);
        stop = a->cancel || a->closing;
        i = piece_at(a, s, next); /* answered from an earlier text: go on after it */
        len = i < a->n ? strlen(a->v[i].text) : 0;
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
        if (len > 0) {
            s += len;
            next = i + 1;
            continue;
        }
        /* Pieces half the deadline holds on this machine: a piece too long for it
         * would be refused, and after stop the piece under way and the tail (one
         * piece at most) must both fit in the deadline. */
        len = local ? cdt__refine_piece_within(&a->p, s, words, timeout / 2)
                    : cdt__refine_piece_end(s, words);
        rest = len + strspn(s + len, " \t\n\r\f\v");
        if (!s[rest])
            break; /* the last piece: the text to come may extend it */
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        memset(&piece, 0, sizeof(piece));
        if (!(piece.text = strndup(s, len))) {
            rc = CDT_ENOMEM;
            break;
        }
        s += len;
        rc = cdt__refine_ask(&a->p, piece.text, timeout, &piece.ans);
        if (rc == CDT_ECANCELED) {
            free(piece.text); /* no answer: a run asks it again, unless cancelled too */
            rc = 0;
            break;
        }
        if (rc == 0 && piece.ans.why != CDT_REFINE_OK)
            CDT_LOG_I(a->p.log, "refine ahead: a piece keeps the deterministic text (%s)",
                      cdt_refine_reason_name(piece.ans.why));
        pthread_mutex_lock(&a->mu);
        if (rc == 0 && a->n == a->cap) {
            size_t ncap = a->cap ? 2 * a->cap : 8;
            struct ahead_piece *nv = realloc(a->v, ncap * sizeof(*nv));

            if (nv) {
                a->v = nv;
                a->cap = ncap;
            } else {
                rc = CDT_ENOMEM;
            }
        }
        if (rc == 0) {
            a->v[a->n++] = piece;
            next = a->n;
            pthread_cond_broadcast(&a->cv);
        }
        pthread_mutex_unlock(&a->mu);
        if (rc != 0) {
            free(piece.text);
            cdt__refine_answer_cleanup(&piece.ans);
        }
    }
    free(cleaned);
    return rc;
}

static void *worker_main(void *arg)
{
    struct cdt_refine_ahead *a = arg;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        char *text;

        while (!a->cancel && !a->closing && !a->offered)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->cancel || a->closing)
            break;
        text = a->offered;
        a->offered = NULL;
        a->busy = true;
        pthread_mutex_unlock(&a->mu);
        if (refine_text(a, text) != 0)
            CDT_LOG_W(a->p.log, "refine ahead: out of memory; the rest is refined after stop");
        free(text);
        pthread_mutex_lock(&a->mu);
        a->busy = false;
        pthread_cond_broadcast(&a->cv);
    }
    a->busy = false;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int cdt_refine_ahead_new(const struct cdt_refine_params *p, struct cdt_refine_ahead **out)
{
    struct cdt_refine_ahead *a;

    if (!out)
        return CDT_EINVAL;
    *out = NULL;
    if (!p || (unsigned)p->provider > CDT_REFINE_CALLBACK ||
        (p->provider == CDT_REFINE_CALLBACK && !p->llm))
        return CDT_EINVAL;
    if (!(a = calloc(1, sizeof(*a))))
        return CDT_ENOMEM;
    a->p = *p;
    a->p.on_delta = NULL;
    a->p.delta_user_data = NULL;
    a->p.ahead = NULL;
    a->user_stop = p->should_stop;
    a->user_stop_data = p->stop_user_data;
    a->p.should_stop = stopped;
    a->p.stop_user_data = a;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, worker_main, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return CDT_ENOMEM;
    }
    *out = a;
    return 0;
}

void cdt_refine_ahead_offer(struct cdt_refine_ahead *a, const char *text)
{
    char *copy;

    if (!a || !text || !(copy = strdup(text)))
        return; /* out of memory: the pieces are refined after stop */
    pthread_mutex_lock(&a->mu);
    if (a->cancel || a->closing) {
        free(copy);
    } else {
        free(a->offered); /* the worker only needs the newest text */
        a->offered = copy;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
}

size_t cdt_refine_ahead_count(struct cdt_refine_ahead *a)
{
    size_t n;

    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    n = a->n;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void cdt_refine_ahead_cancel(struct cdt_refine_ahead *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->cancel = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

bool cdt__refine_ahead_take(struct cdt_refine_ahead *a, const char *s, size_t *len,
                            struct cdt__refine_answer *ans)
{
    bool found = false;
    size_t i;

    pthread_mutex_lock(&a->mu);
    if (!a->closing) {
        /* The run needs the model now: the worker starts nothing more, and the piece
         * it is on (likely the one asked for) is waited for rather than asked twice. */
        a->closing = true;
        pthread_cond_broadcast(&a->cv);
        while (a->busy)
            pthread_cond_wait(&a->cv, &a->mu);
    }
    i = piece_at(a, s, a->taken);
    if (i < a->n) {
        *len = strlen(a->v[i].text);
        *ans = a->v[i].ans;
        memset(&a->v[i].ans, 0, sizeof(a->v[i].ans));
        a->taken = i + 1;
        found = true;
    }
    pthread_mutex_unlock(&a->mu);
    return found;
}

void cdt_refine_ahead_free(struct cdt_refine_ahead *a)
{
    if (!a)
        return;
    cdt_refine_ahead_cancel(a);
    pthread_join(a->thread, NULL);
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].text);
        cdt__refine_answer_cleanup(&a->v[i].ans);
    }
    free(a->v);
    free(a->offered);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
