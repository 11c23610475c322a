/* What a model's rewrite must keep (refine.h, cdt_refine_check_critical): the
 * numbers, names, negations and content words of the transcript.
 *
 * Both texts are cut into tokens and number phrases once (spoken.c); every rule
 * then works on the tokens, with sorted key arrays for the look-ups, so a check is
 * O(n log n) in the texts' length.
 *
 * Numbers, spoken or written, compared by value over what each phrase could mean
 * (spoken.c):
 * - every output phrase must be spelled out, range by range, by readings of the
 *   input (the input's ranges plus each number word on its own: "no invented
 *   numbers"), and
 * - every input phrase must be spelled out by readings of the output's ranges,
 *   unless it is weak (a lone "one", "first", "second", "half", "quarter", "noon",
 *   "midnight", "the nineties": often not a number), or left out where it is near
 *   a correction cue or said twice ("in nineteen in nineteen seventy-eight"; never
 *   a digit string like "five five five", nor one number word like "twenty twenty").
 * Names: a capitalised input word that opens no sentence (and is not "I" or a
 * single letter) must be
 * in the output, unless near a cue; an output word with a capital must be in the
 * input, unless it opens a sentence and is a function word ("Yes", "The") or is a
 * title or time abbreviation (Mr, Dr, PM). "In the other text" ignores case and a
 * possessive 's, and accepts two words written as one or one split in two
 * ("JavaScript" / "Java Script").
 * Negations (not, never, no, n't, nothing, nobody, none, cannot, …): the output
 * may not have more, nor fewer unless the input's extra ones are near a cue or said
 * twice ("not not merely").
 * Content words (not function words, fillers, number or unit words, spoken
 * punctuation, single letters): at most max(1, 10%) of the input's may be missing
 * from the output, not counting those near a cue or in a false start (a stretch
 * the speaker restarted: "we should | we need to go"). A word counts as kept in
 * another form too (plural, -ed, -ing).
 * Correction cues: "no wait", "wait no", "I mean", "sorry", "actually", "rather",
 * "no," / "no -" / "no comma", "make that", "scratch that", "correction", "oops". A
 * word is near a cue when it is at most CRIT_CUE_BEFORE words before it or
 * CRIT_CUE_AFTER after it. A lone "one" is exempt from the must-survive rule
 * rather than guessed at ("the one I like", "no one"): it still backs an output 1. */
#include "codictate/refine.h"
#include "spoken.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRIT_CUE_BEFORE   6  /* words before a correction cue that it explains */
#define CRIT_CUE_AFTER    3  /* words after it */
#define CRIT_RESTART_MAX  10 /* longest false start, words */
#define CRIT_RESTART_PRON 4  /* … when only a pronoun repeats ("we should we need") */
#define CRIT_SHOW_MAX     40 /* bytes of a token quoted in a reason */

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- word lists (sorted: bsearch) ---- */

/* Function words, fillers and discourse markers: a model may drop or change them. */
static const char *const stopwords[] = {
    "a",          "about",   "above",     "after",    "again",     "against", "ah",
    "all",        "almost",  "also",      "am",       "an",        "and",     "another",
    "any",        "anybody", "anyhow",    "anyone",   "anything",  "anyway",  "anyways",
    "are",        "around",  "as",        "at",       "away",      "back",    "basically",
    "be",         "because", "been",      "before",   "being",     "below",   "between",
    "both",       "but",     "by",        "can",      "could",     "did",     "do",
    "does",       "doing",   "done",      "down",     "during",    "each",    "eh",
    "either",     "else",    "er",        "erm",      "etc",       "even",    "ever",
    "every",      "few",     "for",       "from",     "further",   "get",     "gets",
    "getting",    "go",      "goes",      "going",    "gonna",     "got",     "gotta",
    "guess",      "had",     "has",       "have",     "having",    "he",      "he'd",
    "he'll",      "hello",   "her",       "here",     "hers",      "herself", "hey",
    "hi",         "him",     "himself",   "his",      "hm",        "hmm",     "honestly",
    "how",        "however", "huh",       "i",        "i'd",       "i'll",    "i'm",
    "i've",       "if",      "in",        "into",     "is",        "it",      "it'd",
    "it'll",      "its",     "itself",    "just",     "kind",      "kinda",   "know",
    "let",        "like",    "literally", "maybe",    "me",        "mean",    "might",
    "mine",       "more",    "most",      "much",     "must",      "my",      "myself",
    "now",        "of",      "off",       "oh",       "ok",        "okay",    "on",
    "once",       "only",    "or",        "other",    "our",       "ours",    "ourselves",
    "out",        "over",    "own",       "please",   "pretty",    "quite",   "rather",
    "really",     "right",   "say",       "says",     "seriously", "she",     "she'd",
    "she'll",     "should",  "so",        "some",     "somebody",  "someone", "something",
    "sort",       "sorta",   "still",     "such",     "sure",      "than",    "thank",
    "thanks",     "that",    "the",       "their",    "theirs",    "them",    "themselves",
    "then",       "there",   "these",     "they",     "they'd",    "they'll", "they're",
    "they've",    "thing",   "things",    "this",     "those",     "though",  "through",
    "to",         "too",     "totally",   "uh",       "uhm",       "um",      "umm",
    "under",      "until",   "up",        "upon",     "us",        "very",    "wait",
    "wanna",      "was",     "we",        "we'd",     "we'll",     "we're",   "we've",
    "well",       "were",    "what",      "whatever", "when",      "where",   "which",
    "while",      "who",     "whom",      "whose",    "why",       "will",    "with",
    "would",      "ya",      "yeah",      "yep",      "yes",       "yet",     "you",
    "you'd",      "you'll",  "you're",    "you've",   "your",      "yours",   "yourself",
    "yourselves",
};

/* Spoken punctuation, currency and units: the model turns them into marks. */
static const char *const markwords[] = {
    "apostrophe",  "buck",      "bucks",     "cent",  "cents",       "colon",       "comma",
    "dash",        "dollar",    "dollars",   "dot",   "ellipsis",    "euro",        "euros",
    "exclamation", "full",      "hyphen",    "line",  "mark",        "minus",       "negative",
    "new",         "o'clock",   "paragraph", "paren", "parentheses", "parenthesis", "per",
    "percent",     "period",    "plus",      "point", "pound",       "pounds",      "question",
    "quote",       "semicolon", "slash",     "stop",  "underscore",  "unquote",
};

/* Negations without "n't" (which any word ending in it is). */
static const char *const negations[] = {
    "aint",    "arent",   "cannot",   "cant",  "couldnt", "didnt",   "doesnt", "dont",
    "hadnt",   "hasnt",   "havent",   "isnt",  "mustnt",  "nah",     "neednt", "neither",
    "never",   "no",      "nobody",   "none",  "noone",   "nope",    "nor",    "not",
    "nothing", "nowhere", "shouldnt", "wasnt", "werent",  "wouldnt",
};

/* Capitalised abbreviations a model writes for words the transcript spells out. */
static const char *const abbreviations[] = {"am", "dr", "jr", "mr",   "mrs", "ms",
                                            "mt", "ok", "pm", "prof", "sr",  "st"};

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool listed(const char *key, const char *const *list, size_t n)
{
    return bsearch(&key, list, n, sizeof(*list), cmp_strp) != NULL;
}

static bool is_stopword(const char *k)
{
    return listed(k, stopwords, N(stopwords));
}

static bool is_negation(const char *k)
{
    size_t n = strlen(k);

    return (n >= 3 && strcmp(k + n - 3, "n't") == 0) || listed(k, negations, N(negations));
}

/* ---- word sets ---- */

/* a then b, cut to a key's size (a cut is intended: keys are cut the same way). */
static void join_key(char *dst, const char *a, const char *b)
{
    size_t la = strnlen(a, CDT__KEY_MAX - 1), lb = strnlen(b, CDT__KEY_MAX - 1 - la);

    memcpy(dst, a, la);
    memcpy(dst + la, b, lb);
    dst[la + lb] = '\0';
}

/* The word before / after token i when it touches it (no punctuation between). */
static const struct cdt__tok *word_before(const struct cdt__spoken *x, size_t i)
{
    return i > 0 && x->t[i - 1].kind == CDT__TK_WORD ? &x->t[i - 1] : NULL;
}

static const struct cdt__tok *word_after(const struct cdt__spoken *x, size_t i)
{
    return i + 1 < x->n && x->t[i + 1].kind == CDT__TK_WORD ? &x->t[i + 1] : NULL;
}

static bool build_set(struct cdt__spoken *x)
{
    size_t n = 0;

    x->keys = malloc((x->n + 1) * sizeof(*x->keys));
    x->set = malloc((2 * x->n + 1) * sizeof(*x->set));
    if (!x->keys || !x->set)
        return false;
    for (size_t i = 0; i < x->n; i++) {
        const struct cdt__tok *t = &x->t[i], *next = word_after(x, i);

        if (t->kind != CDT__TK_WORD)
            continue;
        x->set[n++] = t->key;
        if (next) {
            join_key(x->keys[i], t->key, next->key);
            x->set[n++] = x->keys[i];
        }
    }
    x->nset = n;
    if (n > 1)
        qsort(x->set, n, sizeof(*x->set), cmp_strp);
    return true;
}

static bool in_set(const struct cdt__spoken *x, const char *key)
{
    return x->nset && bsearch(&key, x->set, x->nset, sizeof(*x->set), cmp_strp);
}

/* Is the word at token i (of x) in `other`: as it is, or run together with its
 * neighbour ("Java Script" / "JavaScript")? */
static bool word_in(const struct cdt__spoken *x, size_t i, const struct cdt__spoken *other)
{
    char k[CDT__KEY_MAX];
    const struct cdt__tok *b = word_before(x, i), *a = word_after(x, i);

    if (in_set(other, x->t[i].key))
        return true;
    if (b) {
        join_key(k, b->key, x->t[i].key);
        if (in_set(other, k))
            return true;
    }
    if (a) {
        join_key(k, x->t[i].key, a->key);
        if (in_set(other, k))
            return true;
    }
    return false;
}

/* word_in, or in another form: plural, -ed, -ing (either way). */
static bool word_in_any_form(const struct cdt__spoken *x, size_t i, const struct cdt__spoken *other)
{
    static const char *const ends[] = {"s", "es", "ed", "d", "ing"};
    const char *k = x->t[i].key;
    size_t n = strlen(k);
    char f[CDT__KEY_MAX];

    if (word_in(x, i, other))
        return true;
    for (size_t e = 0; e < N(ends); e++) {
        size_t el = strlen(ends[e]);

        snprintf(f, sizeof(f), "%s%s", k, ends[e]);
        if (in_set(other, f))
            return true;
        if (n > el + 2 && strcmp(k + n - el, ends[e]) == 0) {
            snprintf(f, sizeof(f), "%.*s", (int)(n - el), k);
            if (in_set(other, f))
                return true;
        }
    }
    return false;
}

/* ---- correction cues and false starts (input only) ---- */

/* Marks the words near a correction cue. */
static void find_cues(struct cdt__spoken *x)
{
    for (size_t i = 0; i < x->n; i++) {
        size_t len = 0, w;

        if (x->t[i].kind != CDT__TK_WORD)
            continue;
        if (cdt__spoken_is(x, i, "no") && i + 1 < x->n && x->t[i + 1].kind == CDT__TK_PUNCT &&
            (x->t[i + 1].punct == ',' || x->t[i + 1].punct == '-'))
            len = 1;
        else if ((cdt__spoken_is(x, i, "no") &&
                  (cdt__spoken_is(x, i + 1, "wait") || cdt__spoken_is(x, i + 1, "comma"))) ||
                 (cdt__spoken_is(x, i, "wait") && cdt__spoken_is(x, i + 1, "no")) ||
                 (cdt__spoken_is(x, i, "i") && cdt__spoken_is(x, i + 1, "mean")) ||
                 ((cdt__spoken_is(x, i, "make") || cdt__spoken_is(x, i, "scratch")) &&
                  cdt__spoken_is(x, i + 1, "that")))
            len = 2;
        else if (cdt__spoken_is(x, i, "sorry") || cdt__spoken_is(x, i, "actually") ||
                 cdt__spoken_is(x, i, "rather") || cdt__spoken_is(x, i, "correction") ||
                 cdt__spoken_is(x, i, "oops") || cdt__spoken_is(x, i, "whoops"))
            len = 1;
        if (!len)
            continue;
        w = x->t[i].word;
        for (size_t k = w > CRIT_CUE_BEFORE ? w - CRIT_CUE_BEFORE : 0;
             k < w + len + CRIT_CUE_AFTER && k < x->nwords; k++)
            x->near_cue[k] = true;
    }
}

static bool is_pronoun(const char *k)
{
    static const char *const pronouns[] = {"he", "i", "it", "she", "they", "we", "you"};

    return listed(k, pronouns, N(pronouns));
}

/* Marks the words of false starts: a stretch the speaker abandoned and began again
 * ("we should we need to go": "we should"), seen as words said again with no
 * sentence end between: two or more within CRIT_RESTART_MAX words ("I think we
 * should call … I think we should cancel"), or a subject pronoun within
 * CRIT_RESTART_PRON ("we should we need"). */
static bool same_tok(const struct cdt__spoken *x, size_t i, size_t j)
{
    const struct cdt__tok *a = &x->t[i], *b = &x->t[j];

    if (a->kind != b->kind || a->kind == CDT__TK_PUNCT)
        return false;
    if (a->kind == CDT__TK_WORD)
        return strcmp(a->key, b->key) == 0;
    return a->len == b->len && memcmp(x->s + a->off, x->s + b->off, a->len) == 0;
}

static void find_restarts(struct cdt__spoken *x)
{
    size_t *tokof = malloc((x->nwords + 1) * sizeof(*tokof));

    if (!tokof)
        return; /* no exemptions: stricter, never wrong */
    for (size_t i = 0; i < x->n; i++)
        if (x->t[i].kind != CDT__TK_PUNCT)
            tokof[x->t[i].word] = i;
    for (size_t b = 1; b < x->nwords; b++) {
        size_t lo = b > CRIT_RESTART_MAX ? b - CRIT_RESTART_MAX : 0;

        for (size_t a = b; a-- > lo;) { /* the nearest first */
            size_t m = 0;
            bool ends = false, digits = true, said_again;

            if (!same_tok(x, tokof[a], tokof[b]))
                continue;
            for (size_t k = tokof[a]; k < tokof[b] && !ends; k++)
                ends = x->t[k].kind == CDT__TK_PUNCT && !strchr(",;-", x->t[k].punct);
            if (ends)
                break;
            for (; b + m < x->nwords && a + m < b && same_tok(x, tokof[a + m], tokof[b + m]); m++)
                digits = digits && cdt__spoken_digit(x, tokof[a + m]);
            /* Said again: "in nineteen in nineteen", "not not". Never a digit string
             * ("five five five"), nor one number word ("twenty twenty"). */
            said_again = !digits && (m >= 2 || (a + 1 == b && !x->t[tokof[a]].nw));
            for (size_t k = 0; said_again && k < m; k++)
                x->repeat[a + k] = x->repeat[b + k] = true;
            if (said_again || m >= 2 ||
                (b - a <= CRIT_RESTART_PRON && x->t[tokof[a]].kind == CDT__TK_WORD &&
                 is_pronoun(x->t[tokof[a]].key))) {
                for (size_t k = a; k < b; k++)
                    x->restart[k] = true;
                break;
            }
        }
    }
    free(tokof);
}

/* ---- the texts ---- */

static bool text_init(struct cdt__spoken *x, const char *s, bool input)
{
    if (!cdt__spoken_init(x, s, input) || !build_set(x))
        return false;
    if (input) {
        x->near_cue = calloc(x->nwords + 1, 1);
        x->restart = calloc(x->nwords + 1, 1);
        x->repeat = calloc(x->nwords + 1, 1);
        if (!x->near_cue || !x->restart || !x->repeat)
            return false;
        find_cues(x);
        find_restarts(x);
    }
    return true;
}

static bool phrase_near_cue(const struct cdt__spoken *x, const struct cdt__phrase *p)
{
    for (size_t k = p->a; k < p->b; k++)
        if (x->t[k].kind != CDT__TK_PUNCT && x->near_cue[x->t[k].word])
            return true;
    return false;
}

/* ---- the rules ---- */

static int check_numbers(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                         size_t cap)
{
    const struct cdt__phrase *lost = NULL, *added = NULL;
    char a[64], b[64];

    for (size_t q = 0; q < out->np && !added; q++) {
        int yes = cdt__spoken_phrase_in(out, &out->p[q], in);

        if (yes < 0)
            return yes;
        if (!yes)
            added = &out->p[q];
    }
    for (size_t q = 0; q < in->np && !lost; q++) {
        const struct cdt__phrase *p = &in->p[q];
        int yes;

        if (p->weak || phrase_near_cue(in, p))
            continue;
        if ((yes = cdt__spoken_phrase_in(in, p, out)) < 0)
            return yes;
        if (!yes)
            lost = p;
    }
    if (!lost && !added)
        return 0;
    if (lost)
        cdt__spoken_show_phrase(a, sizeof(a), in, lost);
    if (added)
        cdt__spoken_show_phrase(b, sizeof(b), out, added);
    if (lost && added)
        snprintf(reason, cap, "the output changed a number: %s \xE2\x86\x92 %s", a, b);
    else if (lost)
        snprintf(reason, cap, "the output dropped a number: %s", a);
    else
        snprintf(reason, cap, "the output added a number: %s", b);
    return CDT_REFINE_GUARD_CHANGED;
}

static bool is_i(const char *k)
{
    return !strcmp(k, "i") || !strcmp(k, "i'm") || !strcmp(k, "i'll") || !strcmp(k, "i've") ||
           !strcmp(k, "i'd");
}

/* A content word: what the speaker said that no cleanup removes. */
static bool content_word(const struct cdt__tok *t)
{
    const char *k = t->key;

    if (t->kind != CDT__TK_WORD || t->phrase >= 0 || t->nw)
        return false;
    if (k[0] && !k[1] && (unsigned char)k[0] < 0x80)
        return false;
    return !is_stopword(k) && !listed(k, markwords, N(markwords)) && !is_negation(k);
}

static int check_names(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                       size_t cap)
{
    const struct cdt__tok *lost = NULL, *added = NULL;
    char a[64], b[64];

    for (size_t i = 0; i < in->n && !lost; i++) {
        const struct cdt__tok *t = &in->t[i];

        if (t->kind == CDT__TK_WORD && t->cap && !t->initial && !t->suffix && !t->nw && t->key[1] &&
            !is_i(t->key) && !in->near_cue[t->word] && !word_in(in, i, out))
            lost = t;
    }
    for (size_t i = 0; i < out->n && !added; i++) {
        const struct cdt__tok *t = &out->t[i];

        if (t->kind != CDT__TK_WORD || !t->cap || t->suffix || t->nw || !t->key[1] ||
            is_i(t->key) || listed(t->key, abbreviations, N(abbreviations)))
            continue;
        if (t->initial &&
            (is_stopword(t->key) || is_negation(t->key) || listed(t->key, markwords, N(markwords))))
            continue;
        if (!word_in(out, i, in))
            added = t;
    }
    if (!lost && !added)
        return 0;
    if (added && !lost) /* a lower-case name replaced: "maria" → "Marie" */
        for (size_t i = 0; i < in->n && !lost; i++)
            if (content_word(&in->t[i]) && !in->near_cue[in->t[i].word] &&
                !word_in_any_form(in, i, out))
                lost = &in->t[i];
    if (lost)
        cdt__spoken_show_tok(a, sizeof(a), in, lost);
    if (added)
        cdt__spoken_show_tok(b, sizeof(b), out, added);
    if (lost && added)
        snprintf(reason, cap, "the output changed a name: %s \xE2\x86\x92 %s", a, b);
    else if (lost)
        snprintf(reason, cap, "the output dropped a name: %s", a);
    else
        snprintf(reason, cap, "the output added a name: %s", b);
    return CDT_REFINE_GUARD_CHANGED;
}

static int check_negations(const struct cdt__spoken *in, const struct cdt__spoken *out,
                           char *reason, size_t cap)
{
    size_t nin = 0, nout = 0, forgiven = 0;

    for (size_t i = 0; i < in->n; i++)
        if (in->t[i].kind == CDT__TK_WORD && is_negation(in->t[i].key)) {
            nin++;
            forgiven += cdt__spoken_excused(in, i);
        }
    for (size_t i = 0; i < out->n; i++)
        nout += out->t[i].kind == CDT__TK_WORD && is_negation(out->t[i].key);
    if (nout > nin) {
        snprintf(reason, cap,
                 "the output added a negation: %zu in the transcript, %zu in the output", nin,
                 nout);
        return CDT_REFINE_GUARD_CHANGED;
    }
    if (nout + forgiven < nin) {
        snprintf(reason, cap,
                 "the output dropped a negation: %zu in the transcript, %zu in the output", nin,
                 nout);
        return CDT_REFINE_GUARD_CHANGED;
    }
    return 0;
}

static int check_content(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                         size_t cap)
{
    size_t total = 0, missing = 0, allowed, shown = 0;
    char list[3 * (CRIT_SHOW_MAX + 8)] = "";

    for (size_t i = 0; i < in->n; i++) {
        const struct cdt__tok *t = &in->t[i];

        if (!content_word(t))
            continue;
        total++;
        if (in->near_cue[t->word] || in->restart[t->word] || word_in_any_form(in, i, out))
            continue;
        missing++;
        if (shown < 3) {
            char w[64];
            size_t l = strlen(list);

            cdt__spoken_show_tok(w, sizeof(w), in, t);
            snprintf(list + l, sizeof(list) - l, "%s%s", shown ? ", " : "", w);
            shown++;
        }
    }
    allowed = total / 10 > 1 ? total / 10 : 1;
    if (missing <= allowed)
        return 0;
    snprintf(reason, cap, "the output dropped %zu of the transcript's %zu content words: %s%s",
             missing, total, list, missing > shown ? ", \xE2\x80\xA6" : "");
    return CDT_REFINE_GUARD_CHANGED;
}

int cdt_refine_check_critical(const char *input, const char *output, char *reason,
                              size_t reason_cap)
{
    struct cdt__spoken in, out;
    char scratch[8];
    int rc = CDT_ENOMEM;

    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    if (!reason || !reason_cap) {
        reason = scratch;
        reason_cap = sizeof(scratch);
    }
    reason[0] = '\0';
    if (text_init(&in, input ? input : "", true) && text_init(&out, output ? output : "", false)) {
        rc = check_numbers(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_names(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_negations(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_content(&in, &out, reason, reason_cap);
    }
    cdt__spoken_cleanup(&in);
    cdt__spoken_cleanup(&out);
    return rc;
}
