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
 *   numbers"),
 * - every input phrase must be spelled out by readings of the output's ranges,
 *   unless it is weak (a lone "one", "first", "second", "half", "quarter", "noon",
 *   "midnight", "the nineties": often not a number), or left out where it is near
 *   a correction cue or said twice ("in nineteen in nineteen seventy-eight"; never
 *   a digit string like "five five five", nor one number word like "twenty twenty"),
 * - and an output time (10:14) may not have a group the input says only as an ordinal
 *   ("june tenth to june fourteenth" is two dates, not a time).
 * Names: a capitalised input word that opens no sentence (and is not "I" or a
 * single letter), and a month or weekday in any case, must be
 * in the output, unless near a cue; an output word with a capital must be in the
 * input, unless it opens a sentence and is a function word ("Yes", "The") or is a
 * title or time abbreviation (Mr, Dr, PM). "In the other text" ignores case and a
 * possessive 's, and accepts two words written as one or one split in two
 * ("JavaScript" / "Java Script").
 * Negations (not, never, no, n't, nothing, nobody, none, cannot, …): the output
 * may not have more, nor fewer unless the input's extra ones are near a cue or said
 * twice ("not not merely").
 * Content words (not function words, fillers, number or unit words, spoken
 * punctuation, single letters): none of the input's may be missing from the
 * output, not counting those near a cue or in a false start (a stretch the speaker
 * restarted: "we should | we need to go"). A word counts as kept in another form
 * too (plural, -ed, -ing, spelt right, with or without an apostrophe, abbreviated;
 * check_content). A spoken punctuation word after a determiner ("put a comma
 * after", "the period of") is a word, not a mark: it must be kept.
 * Added words: every word of the output must be accounted for by the input: said
 * there (as above: any case, form, join or split), a unit of an output number
 * ("$500" / "500 dollars"), a function word that carries no meaning of its own
 * (not "few", "after", "only", "should", …), a negation or abbreviation (other
 * rules count those), "I", the input's word with an apostrophe added or contracted
 * ("its" → "it's", "let us" → "let's"), or a spelling fix: a Damerau-Levenshtein
 * distance of 1 from an input word of 4 to 7 letters, 2 from a longer one, none
 * for 3 letters or fewer ("recieve" → "receive"; "vendredi" → "vendisseur" trips).
 * Correction cues: "no wait", "wait no", "I mean", "sorry", "actually", "rather",
 * "no," / "no -" / "no comma", "make that", "scratch that", "correction", "oops". A
 * word is near a cue when it is at most CRIT_CUE_BEFORE words before it or
 * CRIT_CUE_AFTER after it; only the words before a cue (and the cue) excuse a
 * number or a negation: what follows it is the correction and must survive ("three,
 * actually four chairs" → "3 chairs" trips). A lone "one" is exempt from the
 * must-survive rule rather than guessed at ("the one I like", "no one"): it still
 * backs an output 1, but not as a pronoun or determiner ("another 1", "of 1 leader").
 * Case: in a transcript written in case (a capitalised word mid-sentence), a word it
 * has only in lower case may not come out capitalised mid-sentence ("may" → "May").
 *
 * Quotation marks (cdt_refine_check_quotes, a reason of its own): the output may
 * not have more than the transcript has plus those it says ("quote", "unquote",
 * "end quote"; the deterministic pass leaves those words to the model). A small
 * model trained on quoted prose puts quotes around a clause nobody quoted ("I told
 * her that that was not the plan." → 'I told her "That was not the plan".'). */
#include "codictate/refine.h"
#include "codictate/text.h"
#include "spoken.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CRIT_CUE_BEFORE   6  /* words before a correction cue that it explains */
#define CRIT_CUE_AFTER    3  /* words after it */
#define CRIT_RESTART_MAX  10 /* longest false start, words */
#define CRIT_RESTART_PRON 4  /* … when only a pronoun repeats ("we should we need") */
#define CRIT_SHOW_MAX     40 /* bytes of a token quoted in a reason */
#define CRIT_FUZZY_MAX    64 /* output words looked up as spelling fixes per check */
#define CRIT_TIMES_MAX    16 /* output times checked against the input's ordinals */

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

/* Function words that carry meaning (quantity, order, place, time, degree,
 * modality, questions): a model may drop them, but not add one the transcript did
 * not say ("Speak slowly" → "Few slowly"). */
static const char *const weighty[] = {
    "above", "after",  "again",  "against", "all",     "almost", "also",   "another", "any",
    "away",  "back",   "before", "below",   "between", "both",   "could",  "down",    "during",
    "each",  "either", "else",   "even",    "ever",    "every",  "few",    "further", "how",
    "might", "more",   "most",   "much",    "must",    "off",    "once",   "only",    "over",
    "own",   "should", "some",   "still",   "such",    "than",   "though", "through", "too",
    "under", "until",  "up",     "upon",    "very",    "what",   "when",   "where",   "which",
    "while", "who",    "whom",   "whose",   "why",     "would",  "yet",
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

/* word_in, or in another form: plural, -ed, -ing (either way; a doubled last
 * consonant too: "ship" / "shipped"). */
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
    for (size_t e = 2; e < N(ends); e++) { /* -ed, -d, -ing after a doubled consonant */
        size_t el = strlen(ends[e]);

        if (e == 3)
            continue;
        if (n >= 2 && n + 1 + el < sizeof(f)) {
            memcpy(f, k, n);
            f[n] = k[n - 1];
            memcpy(f + n + 1, ends[e], el + 1);
            if (in_set(other, f))
                return true;
        }
        if (n > el + 3 && strcmp(k + n - el, ends[e]) == 0 && k[n - el - 1] == k[n - el - 2]) {
            snprintf(f, sizeof(f), "%.*s", (int)(n - el - 1), k);
            if (in_set(other, f))
                return true;
        }
    }
    return false;
}

/* ---- correction cues and false starts (input only) ---- */

/* The token that ends a sentence at token j: a '.', '?', '!' or new line, or the
 * spoken "period", "full stop", "question mark", "exclamation mark|point", "new
 * paragraph|line" ending there. */
static bool sentence_end_at(const struct cdt__spoken *x, size_t j)
{
    const struct cdt__tok *t = &x->t[j];

    if (t->kind == CDT__TK_PUNCT)
        return t->punct == '.' || t->punct == '?' || t->punct == '!' || t->punct == '\n';
    if (cdt__spoken_is(x, j, "period"))
        return true;
    if (j == 0)
        return false;
    return (cdt__spoken_is(x, j, "stop") && cdt__spoken_is(x, j - 1, "full")) ||
           (cdt__spoken_is(x, j, "mark") &&
            (cdt__spoken_is(x, j - 1, "question") || cdt__spoken_is(x, j - 1, "exclamation"))) ||
           (cdt__spoken_is(x, j, "point") && cdt__spoken_is(x, j - 1, "exclamation")) ||
           ((cdt__spoken_is(x, j, "paragraph") || cdt__spoken_is(x, j, "line")) &&
            cdt__spoken_is(x, j - 1, "new"));
}

/* The first word a correction cue at token i can take back: CRIT_CUE_BEFORE words
 * before it, but not past the end of a sentence that a word follows before the cue
 * (in "answer that question period get a written sewer comma scratch that", the
 * speaker takes back "get a written sewer", never "question"; "at three period no
 * wait four" still takes back "three"). */
static size_t cue_reach(const struct cdt__spoken *x, size_t i)
{
    size_t w = x->t[i].word, first = w > CRIT_CUE_BEFORE ? w - CRIT_CUE_BEFORE : 0;
    size_t earliest = w; /* the earliest word seen between j and the cue; w: none yet */

    for (size_t j = i; j-- > 0;) {
        const struct cdt__tok *t = &x->t[j];

        if (t->kind != CDT__TK_PUNCT && t->word < first)
            break;
        if (earliest < w && sentence_end_at(x, j))
            return earliest;
        if (t->kind != CDT__TK_PUNCT)
            earliest = t->word;
    }
    return first;
}

/* Marks the words near a correction cue, and those near one only after it (the
 * correction itself: "at three, no wait, at four"). */
static void find_cues(struct cdt__spoken *x)
{
    bool *core = calloc(x->nwords + 1, 1); /* before a cue or in it */

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
        for (size_t k = cue_reach(x, i); k < w + len + CRIT_CUE_AFTER && k < x->nwords; k++) {
            x->near_cue[k] = true;
            if (core && k < w + len)
                core[k] = true;
        }
    }
    /* Without memory for core, no word is after-only: as lenient as before. */
    for (size_t k = 0; core && k < x->nwords; k++)
        x->after_cue[k] = x->near_cue[k] && !core[k];
    free(core);
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

/* A verb that closes a restarted frame ("the meeting is", "the call is"). */
static bool frame_verb(const struct cdt__spoken *x, size_t i)
{
    static const char *const verbs[] = {"are",  "can", "could",  "did", "does", "had",  "has",
                                        "have", "is",  "should", "was", "were", "will", "would"};

    return x->t[i].kind == CDT__TK_WORD && listed(x->t[i].key, verbs, N(verbs));
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
            /* Or the same frame with its subject swapped: "the meeting is the call is"
             * (a verb closes it: "the man in the park in" is no restart). */
            if (said_again || m >= 2 ||
                (b - a <= CRIT_RESTART_PRON && x->t[tokof[a]].kind == CDT__TK_WORD &&
                 is_pronoun(x->t[tokof[a]].key)) ||
                (b - a == 3 && b + 2 < x->nwords && same_tok(x, tokof[a + 2], tokof[b + 2]) &&
                 !same_tok(x, tokof[a + 1], tokof[b + 1]) && frame_verb(x, tokof[a + 2]))) {
                for (size_t k = a; k < b; k++)
                    x->restart[k] = true;
                break;
            }
        }
    }
    /* A word cut off and said whole: "wh- what". */
    for (size_t i = 0; i + 2 < x->n; i++) {
        const struct cdt__tok *t = &x->t[i], *d = &x->t[i + 1], *w = &x->t[i + 2];
        size_t n = strlen(t->key);

        if (t->kind == CDT__TK_WORD && d->kind == CDT__TK_PUNCT && d->punct == '-' &&
            w->kind == CDT__TK_WORD && strlen(w->key) > n && !strncmp(t->key, w->key, n))
            x->restart[t->word] = true;
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
        x->after_cue = calloc(x->nwords + 1, 1);
        x->restart = calloc(x->nwords + 1, 1);
        x->repeat = calloc(x->nwords + 1, 1);
        if (!x->near_cue || !x->after_cue || !x->restart || !x->repeat)
            return false;
        find_cues(x);
        find_restarts(x);
    }
    return true;
}

long cdt__refine_droppable_words(const char *text)
{
    struct cdt__spoken x;
    long n = -1;

    memset(&x, 0, sizeof(x));
    if (text_init(&x, text ? text : "", true)) {
        n = 0;
        for (size_t k = 0; k < x.nwords; k++)
            n += (x.near_cue[k] && !x.after_cue[k]) || x.restart[k];
    }
    cdt__spoken_cleanup(&x);
    return n;
}

/* Is a word of phrase p before a correction cue or in it (the number corrected
 * away: "at three, no wait, at four")? One only after a cue is the correction. */
static bool phrase_near_cue(const struct cdt__spoken *x, const struct cdt__phrase *p)
{
    for (size_t k = p->a; k < p->b; k++)
        if (x->t[k].kind != CDT__TK_PUNCT && x->near_cue[x->t[k].word] &&
            !x->after_cue[x->t[k].word])
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

/* The value v as an integer, or UINT64_MAX when it is none below 10^18. */
static uint64_t nv_int(struct cdt__nv v)
{
    uint64_t x = v.m;

    if (v.e < 0)
        return UINT64_MAX;
    for (int e = 0; e < v.e; e++) {
        if (x > UINT64_MAX / 10)
            return UINT64_MAX;
        x *= 10;
    }
    return x;
}

/* How the input says value v: 1 only as an ordinal ("tenth", "10th"), 2 otherwise
 * too, 0 not as one word or written number. */
static int said_as(const struct cdt__spoken *in, uint64_t v)
{
    int how = 0;

    for (size_t k = 0; k < in->n; k++) {
        const struct cdt__tok *u = &in->t[k];
        bool ord;

        if (u->kind == CDT__TK_WORD && u->nw && u->nw->v == v && u->nw->cls != CDT__NW_WEAK)
            ord = u->nw->ordinal;
        else if (u->kind == CDT__TK_NUM && !u->grouped && nv_int(u->val) == v)
            ord = u->ordinal;
        else
            continue;
        if (!ord)
            return 2;
        how = 1;
    }
    return how;
}

/* A time the output made of days of the month: "from june tenth to june fourteenth"
 * → "from June 10:14" (each group of 10:14 is a number the input says, so the
 * number rule lets it through). A group the input says only as an ordinal is a
 * date, never an hour or minutes. */
static int check_ordinal_time(const struct cdt__spoken *in, const struct cdt__spoken *out,
                              char *reason, size_t cap)
{
    size_t times = 0;

    /* Each time scans the input: a few of them only, so the check stays linear. */
    for (size_t i = 0; i < out->n && times < CRIT_TIMES_MAX; i++) {
        const struct cdt__tok *t = &out->t[i];
        char b[64];

        if (t->kind != CDT__TK_NUM || !t->grouped || !memchr(out->s + t->off, ':', t->len))
            continue;
        times++;
        for (int g = 0; g < t->ngroups; g++) {
            uint64_t v = nv_int(t->groups[g]);

            if (v == 0 || v == UINT64_MAX || said_as(in, v) != 1)
                continue;
            cdt__spoken_show_tok(b, sizeof(b), out, t);
            snprintf(reason, cap, "the output made a time of a date: %s", b);
            return CDT_REFINE_GUARD_CHANGED;
        }
    }
    return 0;
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

/* Is input token i a content word that is neither excused (near a correction cue,
 * in a false start) nor in the output as it is or in another form (word_in_any_form)?
 * check_content also looks for it spelt right, abbreviated or with an apostrophe. */
static bool content_gone(const struct cdt__spoken *in, size_t i, const struct cdt__spoken *out)
{
    const struct cdt__tok *t = &in->t[i];

    return content_word(t) && !in->near_cue[t->word] && !in->restart[t->word] &&
           !word_in_any_form(in, i, out);
}

/* A month or weekday: a name in any case ("from july … to june" → "from June … to
 * June" swaps one). Not "may" and "march", which are also a modal and a verb. */
static bool is_calendar_name(const char *k)
{
    static const char *const names[] = {
        "april",     "august", "december", "february", "friday",    "january",
        "july",      "june",   "monday",   "november", "october",   "saturday",
        "september", "sunday", "thursday", "tuesday",  "wednesday",
    }; /* sorted */

    return listed(k, names, N(names));
}

static int check_names(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                       size_t cap)
{
    const struct cdt__tok *lost = NULL, *added = NULL;
    char a[64], b[64];

    for (size_t i = 0; i < in->n && !lost; i++) {
        const struct cdt__tok *t = &in->t[i];

        if (t->kind == CDT__TK_WORD &&
            ((t->cap && !t->initial) || (is_calendar_name(t->key) && !in->restart[t->word])) &&
            !t->suffix && !t->nw && t->key[1] && !is_i(t->key) && !in->near_cue[t->word] &&
            !word_in(in, i, out))
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

/* Does the input write names with capitals: a capitalised word that opens no
 * sentence (not "I", not a single letter)? Then it was transcribed in case. */
static bool written_in_case(const struct cdt__spoken *in)
{
    for (size_t i = 0; i < in->n; i++) {
        const struct cdt__tok *t = &in->t[i];

        if (t->kind == CDT__TK_WORD && t->cap && !t->initial && !t->suffix && t->key[1] &&
            !is_i(t->key))
            return true;
    }
    return false;
}

/* Is every occurrence of key k in the input written in lower case (and is there one)? */
static bool only_lower_case(const struct cdt__spoken *in, const char *k)
{
    bool seen = false;

    for (size_t i = 0; i < in->n; i++)
        if (in->t[i].kind == CDT__TK_WORD && strcmp(in->t[i].key, k) == 0) {
            if (in->t[i].cap)
                return false;
            seen = true;
        }
    return seen;
}

/* Words before a lone "one" that make it a pronoun ("another one", "the one"). */
static bool pronoun_one_before(const char *k)
{
    static const char *const w[] = {"another", "any", "each", "every", "no",
                                    "that",    "the", "this", "which"}; /* sorted */

    return listed(k, w, N(w));
}

/* Words after a number that make it a time, a range or an amount, not a determiner. */
static bool number_follower(const char *k)
{
    static const char *const w[] = {"a",  "am", "and", "by",      "o'clock", "oclock",
                                    "or", "p",  "pm",  "through", "to",      "x"}; /* sorted */

    return listed(k, w, N(w)) || listed(k, markwords, N(markwords));
}

/* Is output token i a bare "1" used as a determiner or pronoun ("the views of 1
 * leader", "another 1"), where the input said a lone "one" and wrote no 1? */
static bool one_as_digit(const struct cdt__spoken *in, const struct cdt__spoken *out, size_t i)
{
    const struct cdt__tok *t = &out->t[i], *b = word_before(out, i), *a = word_after(out, i);
    const struct cdt__phrase *p;
    bool lone_one = false;

    if (t->kind != CDT__TK_NUM || t->len != 1 || out->s[t->off] != '1' || t->phrase < 0)
        return false;
    p = &out->p[t->phrase];
    if (p->a != i || p->b != i + 1 || (t->off > 0 && strchr("$#", out->s[t->off - 1])) ||
        (t->off > 0 && (unsigned char)out->s[t->off - 1] >= 0x80))
        return false;
    if (i + 1 < out->n && out->t[i + 1].kind == CDT__TK_WORD && out->t[i + 1].suffix)
        return false;
    for (size_t k = 0; k < in->n; k++) {
        const struct cdt__tok *u = &in->t[k];

        if (u->kind == CDT__TK_NUM && u->val.m == 1 && u->val.e == 0)
            return false; /* the input wrote one */
        if (u->kind == CDT__TK_WORD && !strcmp(u->key, "one") && u->phrase >= 0 &&
            in->p[u->phrase].weak)
            lone_one = true;
    }
    if (!lone_one)
        return false;
    if (b && pronoun_one_before(b->key))
        return true;
    /* A determiner: a noun follows, and no label word comes before ("Chapter 1 says"). */
    return a && !a->suffix && !number_follower(a->key) && (!b || is_stopword(b->key));
}

/* Does word token t of x open with a small letter and have a capital inside it
 * after one ("fAlso", "iPhone"; not "JavaScript", "McDonald")? ASCII letters only. */
static bool inner_capital(const struct cdt__spoken *x, const struct cdt__tok *t)
{
    if (x->s[t->off] < 'a' || x->s[t->off] > 'z')
        return false;
    for (size_t k = t->off + 1; k < t->off + t->len; k++)
        if (x->s[k] >= 'A' && x->s[k] <= 'Z' && x->s[k - 1] >= 'a' && x->s[k - 1] <= 'z')
            return true;
    return false;
}

/* Is output word t written exactly so (bytes and case) somewhere in the input? */
static bool spelt_so_in(const struct cdt__spoken *in, const struct cdt__spoken *out,
                        const struct cdt__tok *t)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->t[i].kind == CDT__TK_WORD && in->t[i].len == t->len &&
            !memcmp(in->s + in->t[i].off, out->s + t->off, t->len))
            return true;
    return false;
}

/* Case and lone "one", where a model changes a word's meaning without changing the
 * word: in a transcript written in case, a word it wrote in lower case may not come
 * out capitalised mid-sentence ("may" → "May", "the administration" → "the
 * Administration"); and a lone "one" that is a pronoun or determiner may not become
 * the digit ("one leader" → "1 leader"). */
static int check_case(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                      size_t cap)
{
    bool cased = written_in_case(in);
    char b[64];

    for (size_t i = 0; i < out->n; i++) {
        const struct cdt__tok *t = &out->t[i];

        if (one_as_digit(in, out, i)) {
            snprintf(reason, cap, "the output wrote a lone \"one\" as a digit: 1");
            return CDT_REFINE_GUARD_CHANGED;
        }
        /* A capital inside a word the transcript writes otherwise: "falso" → "fAlso". */
        if (t->kind == CDT__TK_WORD && inner_capital(out, t) && !spelt_so_in(in, out, t)) {
            cdt__spoken_show_tok(b, sizeof(b), out, t);
            snprintf(reason, cap, "the output changed a word's case: %s", b);
            return CDT_REFINE_GUARD_CHANGED;
        }
        /* A single letter too: Italian "con me e Kathy" → "con me E Kathy". */
        if (!cased || t->kind != CDT__TK_WORD || !t->cap || t->initial || t->suffix || t->nw ||
            is_i(t->key) || listed(t->key, abbreviations, N(abbreviations)) ||
            !only_lower_case(in, t->key))
            continue;
        cdt__spoken_show_tok(b, sizeof(b), out, t);
        snprintf(reason, cap, "the output capitalised a word: %s", b);
        return CDT_REFINE_GUARD_CHANGED;
    }
    return 0;
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

/* Is token i of x the first of a "that that" pair: grammar more often than a
 * stutter ("I told her that that was not the plan")? A run of three ("that that
 * that's") is a stutter. ("had had" is not one: "gossip had had grown up" is a
 * stutter the model rightly removes.) */
static bool that_that(const struct cdt__spoken *x, size_t i)
{
    const struct cdt__tok *b = word_before(x, i), *a = word_after(x, i);
    const struct cdt__tok *a2 = a ? word_after(x, i + 1) : NULL;

    return x->t[i].kind == CDT__TK_WORD && !strcmp(x->t[i].key, "that") && a &&
           !strcmp(a->key, "that") && !(b && !strcmp(b->key, "that")) &&
           !(a2 && !strncmp(a2->key, "that", 4) && (!a2->key[4] || a2->key[4] == '\''));
}

/* Each "that that" the transcript says (not near a correction cue) must survive. */
static int check_doubles(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                         size_t cap)
{
    size_t nin = 0, nout = 0;

    for (size_t i = 0; i < in->n; i++)
        nin += that_that(in, i) && !in->near_cue[in->t[i].word];
    for (size_t i = 0; i < out->n; i++)
        nout += that_that(out, i);
    if (nout >= nin)
        return 0;
    snprintf(reason, cap, "the output dropped a word: \"that that\" \xE2\x86\x92 \"that\"");
    return CDT_REFINE_GUARD_CHANGED;
}

/* Words that make a spoken punctuation word a noun ("put a comma after", "the
 * period of time"): one said after them is a word the speaker meant, not a mark. */
static bool is_determiner(const char *k)
{
    static const char *const dets[] = {"a",    "an",  "another", "any",  "each", "every",
                                       "her",  "his", "its",     "my",   "one",  "our",
                                       "that", "the", "their",   "this", "your"};

    return listed(k, dets, N(dets));
}

/* A spoken punctuation word used as a word must survive as one: the share of
 * content words that may go would let a model write "Put a, after" for "Put a
 * comma after" (one content word in a short sentence is always within it). */
static int check_literal_marks(const struct cdt__spoken *in, const struct cdt__spoken *out,
                               char *reason, size_t cap)
{
    for (size_t i = 1; i < in->n; i++) {
        const struct cdt__tok *t = &in->t[i], *b = word_before(in, i);
        char w[64];

        if (t->kind != CDT__TK_WORD || t->phrase >= 0 || t->nw || !b ||
            !listed(t->key, markwords, N(markwords)) || !is_determiner(b->key) ||
            in->near_cue[t->word] || in->restart[t->word] || word_in_any_form(in, i, out))
            continue;
        cdt__spoken_show_tok(w, sizeof(w), in, t);
        snprintf(reason, cap, "the output dropped a word: %s", w);
        return CDT_REFINE_GUARD_CHANGED;
    }
    return 0;
}

/* ---- added words ---- */

/* A key as code points (a stray byte is one), at most CDT__KEY_MAX. */
static size_t code_points(const char *k, uint32_t *cp)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)k; *p && n < CDT__KEY_MAX; p++) {
        if ((*p & 0xC0) == 0x80 && n > 0) {
            cp[n - 1] = (cp[n - 1] << 6) | (*p & 0x3F);
            continue;
        }
        cp[n++] = *p;
    }
    return n;
}

/* Is the Damerau-Levenshtein distance (adjacent swaps count one; optimal string
 * alignment) between a and b at most `max`? Stops at the first row past it. */
static bool within_edits(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, size_t max)
{
    size_t d[3][CDT__KEY_MAX + 1], *pp = d[0], *p = d[1], *c = d[2];

    if ((na > nb ? na - nb : nb - na) > max)
        return false;
    for (size_t j = 0; j <= nb; j++)
        p[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t best;

        c[0] = best = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t v = p[j - 1] + (a[i - 1] != b[j - 1]);

            if (p[j] + 1 < v)
                v = p[j] + 1;
            if (c[j - 1] + 1 < v)
                v = c[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            c[j] = v;
            best = v < best ? v : best;
        }
        if (best > max)
            return false;
        {
            size_t *r = pp;

            pp = p;
            p = c;
            c = r;
        }
    }
    return p[nb] <= max;
}

/* Edits a spelling fix may make: none to a word of 3 letters or fewer, 1 to one
 * of 4 to 7, 2 to a longer one (the shorter of the two words counts). */
static size_t edits_allowed(size_t n)
{
    return n >= 8 ? 2 : n >= 4 ? 1 : 0;
}

/* Is output key k a spelling fix of an input word ("recieve" → "receive")? */
static bool spelling_fix(const struct cdt__spoken *in, const char *k)
{
    uint32_t a[CDT__KEY_MAX], b[CDT__KEY_MAX];
    size_t na = code_points(k, a);

    if (edits_allowed(na) == 0)
        return false;
    for (size_t s = 0; s < in->nset; s++) {
        size_t nb = code_points(in->set[s], b), m = edits_allowed(na < nb ? na : nb);

        if (m && within_edits(a, na, b, nb, m))
            return true;
    }
    return false;
}

/* Output key k with its apostrophes dropped ("it's" → "its", "dont") or cut at
 * its contraction ("let's" → "let", "I'm" → "i"): in the input? */
static bool apostrophe_of(const struct cdt__spoken *in, const char *k)
{
    static const char *const tails[] = {"d", "ll", "m", "re", "s", "ve"};
    const char *q = strchr(k, '\'');
    char f[CDT__KEY_MAX];
    size_t o = 0;

    if (!q)
        return false;
    for (const char *p = k; *p && o + 1 < sizeof(f); p++)
        if (*p != '\'')
            f[o++] = *p;
    f[o] = '\0';
    if (in_set(in, f))
        return true;
    if (q == k || !listed(q + 1, tails, N(tails)))
        return false;
    snprintf(f, sizeof(f), "%.*s", (int)(q - k), k);
    return in_set(in, f);
}

/* A spoken word a model may write as its abbreviation ("mister" → "Mr."). */
static const char *abbreviation_of(const char *k)
{
    static const char *const pairs[][2] = {
        {"doctor", "dr"}, {"junior", "jr"}, {"misses", "mrs"}, {"missus", "mrs"},
        {"mister", "mr"}, {"mount", "mt"},  {"okay", "ok"},    {"professor", "prof"},
        {"saint", "st"},  {"senior", "sr"}, {"street", "st"},
    };

    for (size_t p = 0; p < N(pairs); p++)
        if (!strcmp(k, pairs[p][0]))
            return pairs[p][1];
    return NULL;
}

/* Input key k in the output with an apostrophe put in ("its" → "it's", "dont" →
 * "don't"), or with its apostrophes taken out. */
static bool apostrophe_in(const struct cdt__spoken *out, const char *k)
{
    size_t n = strlen(k);
    char f[CDT__KEY_MAX];

    if (apostrophe_of(out, k))
        return true;
    for (size_t p = 1; p < n && n + 1 < sizeof(f); p++) {
        memcpy(f, k, p);
        f[p] = '\'';
        memcpy(f + p + 1, k + p, n - p + 1);
        if (in_set(out, f))
            return true;
    }
    return false;
}

/* "end" of "end quote", "open" of "open paren": a word of a mark said aloud, which
 * the model writes as the mark. */
static bool mark_phrase_word(const struct cdt__spoken *in, size_t i)
{
    static const char *const firsts[] = {"begin", "close", "end", "open", "start"};
    static const char *const marks[] = {"bracket",     "paren", "parentheses",
                                        "parenthesis", "quote", "quotes"};
    const struct cdt__tok *a = word_after(in, i);

    return a && listed(in->t[i].key, firsts, N(firsts)) && listed(a->key, marks, N(marks));
}

/* Every content word of the transcript must reach the output in some form: as
 * it is (word_in_any_form), spelt right (the inverse of check_added's spelling
 * fix), with or without an apostrophe, or as its abbreviation. A word near a
 * correction cue or in a false start may go. None other may: a cleanup removes
 * fillers, stutters and what the speaker took back, and nothing the speaker
 * meant ("He pulled it over, climbed up" → "He pulled up" is a slip). */
static int check_content(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                         size_t cap)
{
    size_t total = 0, missing = 0, shown = 0, fuzzy = 0;
    char list[3 * (CRIT_SHOW_MAX + 8)] = "";

    for (size_t i = 0; i < in->n; i++) {
        const struct cdt__tok *t = &in->t[i];
        const char *ab;

        if (!content_word(t))
            continue;
        total++;
        if (!content_gone(in, i, out) || mark_phrase_word(in, i) || apostrophe_in(out, t->key) ||
            ((ab = abbreviation_of(t->key)) && in_set(out, ab)) ||
            (fuzzy++ < CRIT_FUZZY_MAX && spelling_fix(out, t->key)))
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
    if (missing == 0)
        return 0;
    snprintf(reason, cap, "the output dropped %zu of the transcript's %zu content words: %s%s",
             missing, total, list, missing > shown ? ", \xE2\x80\xA6" : "");
    return CDT_REFINE_GUARD_CHANGED;
}

/* Every word of the output must be accounted for by the input: said there (in
 * any form, two words run together or one split), a number's unit (the numbers
 * themselves are check_numbers'), a function word but a weighty one, a negation or
 * abbreviation (the other rules count those), "I", a contraction or apostrophe the input lacked
 * ("its" → "it's"), or a spelling fix (edits_allowed); a single letter is no
 * exception. A cleanup needs no word the
 * transcript did not say: "vendredi" → "vendisseur" is a model's invention. */
static int check_added(const struct cdt__spoken *in, const struct cdt__spoken *out, char *reason,
                       size_t cap)
{
    bool *unit = calloc(out->n + 1, 1);
    const struct cdt__tok *added = NULL, *lost = NULL;
    size_t fuzzy = 0;
    char a[64], b[64];

    if (!unit)
        return CDT_ENOMEM;
    for (size_t q = 0; q < out->np;) {
        size_t from, to, next = cdt__spoken_phrase_span(out, q, &from, &to);

        for (size_t i = out->p[q].a; i < out->n && out->t[i].off < to; i++)
            unit[i] = out->t[i].off >= from;
        for (size_t i = out->p[q].a; i-- > 0 && out->t[i].off >= from;)
            unit[i] = true;
        q = next > q ? next : q + 1;
    }
    for (size_t i = 0; i < out->n && !added; i++) {
        const struct cdt__tok *t = &out->t[i];
        const char *k = t->key;

        /* A single letter too: "check the spelling" → "check the V t" is no cleanup. */
        if (t->kind != CDT__TK_WORD || t->phrase >= 0 || t->nw || t->suffix || unit[i] || !k[0] ||
            (is_stopword(k) && !listed(k, weighty, N(weighty))) || is_negation(k) || is_i(k) ||
            listed(k, abbreviations, N(abbreviations)) || word_in_any_form(out, i, in) ||
            apostrophe_of(in, k))
            continue;
        if (fuzzy++ < CRIT_FUZZY_MAX && spelling_fix(in, k))
            continue;
        added = t;
    }
    free(unit);
    if (!added)
        return 0;
    for (size_t i = 0; i < in->n && !lost; i++)
        if (content_gone(in, i, out))
            lost = &in->t[i];
    cdt__spoken_show_tok(b, sizeof(b), out, added);
    if (lost) {
        cdt__spoken_show_tok(a, sizeof(a), in, lost);
        snprintf(reason, cap, "the output changed a word: %s \xE2\x86\x92 %s", a, b);
    } else {
        snprintf(reason, cap, "the output added a word: %s", b);
    }
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
            rc = check_ordinal_time(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_names(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_case(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_negations(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_literal_marks(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_doubles(&in, &out, reason, reason_cap);
        if (rc == 0) /* first: a word swapped for another is "changed", not "dropped" */
            rc = check_added(&in, &out, reason, reason_cap);
        if (rc == 0)
            rc = check_content(&in, &out, reason, reason_cap);
    }
    cdt__spoken_cleanup(&in);
    cdt__spoken_cleanup(&out);
    return rc;
}

/* ---- added quotation marks (refine.h, cdt_refine_check_quotes) ---- */

/* The code point at s (a stray byte is itself) and its length in *len. */
static uint32_t code_point_at(const char *s, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s;
    int n = cdt_utf8_char(s, strnlen(s, 4));
    uint32_t c;

    if (n <= 1) {
        *len = 1;
        return p[0];
    }
    *len = (size_t)n;
    c = p[0] & (0xFF >> (n + 1));
    for (int i = 1; i < n; i++)
        c = (c << 6) | (p[i] & 0x3F);
    return c;
}

/* Letters and digits, any script (the marks below and other punctuation aside):
 * what an apostrophe sits between. */
static bool word_char(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
    return c >= 0xC0 && c != 0xD7 && c != 0xF7 && !(c >= 0x2000 && c <= 0x2BFF) &&
           !(c >= 0x3000 && c <= 0x303F);
}

/* Words after an opening apostrophe that make it an elision, not a quote
 * ("'em", "'cause", "rock 'n' roll"). */
static bool elision_at(const char *s)
{
    static const char *const el[] = {"bout",  "cause", "cos", "em",  "n",
                                     "round", "til",   "tis", "twas"};

    for (size_t i = 0; i < N(el); i++) {
        size_t n = strlen(el[i]);
        size_t len;

        if (strncasecmp(s, el[i], n) == 0 && !word_char(code_point_at(s + n, &len)))
            return true;
    }
    return false;
}

/* Quotation marks in s, as a count comparable across texts and styles: a double
 * mark ('"', “ ” „ « » ‹ › 「 」 『 』) counts 1; a single one (' ‘ ’ ‚ `) is an
 * apostrophe between letters or at a word's end ("don't", "the players'") and a
 * quote only where it opens one (a letter after it, none before, no elision:
 * "'90s", "'em" are not), where it counts 2, its pair ('x' = "x" = 2). */
static size_t quote_marks(const char *s)
{
    size_t n = 0, len;
    uint32_t prev = ' ';

    for (const char *p = s; *p; p += len) {
        uint32_t c = code_point_at(p, &len), next;
        size_t nl;

        switch (c) {
        case '"':
        case 0x201C: /* “ */
        case 0x201D: /* ” */
        case 0x201E: /* „ */
        case 0x201F: /* ‟ */
        case 0x00AB: /* « */
        case 0x00BB: /* » */
        case 0x2039: /* ‹ */
        case 0x203A: /* › */
        case 0x300C: /* 「 */
        case 0x300D: /* 」 */
        case 0x300E: /* 『 */
        case 0x300F: /* 』 */
            n++;
            break;
        case 0x201A: /* ‚ */
        case '`':
            n += 2;
            break;
        case '\'':
        case 0x2018: /* ‘ */
        case 0x2019: /* ’ */
            next = code_point_at(p + len, &nl);
            if (!word_char(prev) && word_char(next) && !(next >= '0' && next <= '9') &&
                !elision_at(p + len))
                n += 2;
            break;
        default:
            break;
        }
        prev = c;
    }
    return n;
}

/* Quotation marks the input says ("quote … end quote", "open quote", "unquote",
 * "quote unquote", "in quotes"): each such word stands for one mark, "quotes" for
 * a pair. The deterministic pass leaves these words in the text; the model may
 * write them as marks. */
static size_t spoken_quotes(const char *s)
{
    size_t n = 0;

    for (const char *p = s; *p;) {
        size_t w = 0;
        char k[16];

        while (*p && !isalpha((unsigned char)*p))
            p++;
        while (isalpha((unsigned char)p[w]))
            w++;
        if (w > 0 && w < sizeof(k)) {
            for (size_t i = 0; i < w; i++)
                k[i] = (char)tolower((unsigned char)p[i]);
            k[w] = '\0';
            if (!strcmp(k, "quote") || !strcmp(k, "unquote") || !strcmp(k, "quotation"))
                n++;
            else if (!strcmp(k, "quotes"))
                n += 2;
        }
        p += w;
    }
    return n;
}

int cdt_refine_check_quotes(const char *input, const char *output, char *reason, size_t reason_cap)
{
    size_t in = quote_marks(input ? input : ""), said = spoken_quotes(input ? input : "");
    size_t out = quote_marks(output ? output : "");

    if (reason && reason_cap)
        reason[0] = '\0';
    if (out <= in + said)
        return 0;
    if (reason && reason_cap)
        snprintf(reason, reason_cap,
                 "the output added quotation marks: %zu in the output, %zu in the transcript, %zu "
                 "said",
                 out, in, said);
    return CDT_REFINE_GUARD_QUOTES;
}

/* ---- text that is already clean (refine.h, cdt_refine_is_clean) ---- */

static bool punct_at(const struct cdt__spoken *x, size_t i, const char *set)
{
    return i < x->n && x->t[i].kind == CDT__TK_PUNCT && x->t[i].punct && strchr(set, x->t[i].punct);
}

/* The word token after token i, past commas and dashes (x->n: none). */
static size_t next_word(const struct cdt__spoken *x, size_t i)
{
    for (i++; i < x->n && punct_at(x, i, ",-"); i++)
        ;
    return i < x->n && x->t[i].kind == CDT__TK_WORD ? i : x->n;
}

/* A self-correction cue: one that prose does not use ("no wait", "scratch that"),
 * or a word that is one when set off by commas mid-sentence ("left, sorry, right";
 * "Stitch, or rather, Justice"); "actually" or "rather" alone are ordinary English. */
static bool cue_at(const struct cdt__spoken *x, size_t i, bool sentence_start)
{
    static const char *const set_off[] = {"actually", "no",   "rather",
                                          "sorry",    "wait", "well"}; /* sorted */
    size_t j = next_word(x, i);

    if ((cdt__spoken_is(x, i, "no") && cdt__spoken_is(x, j, "wait")) ||
        (cdt__spoken_is(x, i, "wait") && cdt__spoken_is(x, j, "no")) ||
        (cdt__spoken_is(x, i, "i") && cdt__spoken_is(x, j, "mean")) ||
        ((cdt__spoken_is(x, i, "scratch") || cdt__spoken_is(x, i, "make")) &&
         cdt__spoken_is(x, j, "that")) ||
        cdt__spoken_is(x, i, "correction") || cdt__spoken_is(x, i, "oops") ||
        cdt__spoken_is(x, i, "whoops"))
        return true;
    return !sentence_start && listed(x->t[i].key, set_off, N(set_off)) &&
           (punct_at(x, i + 1, ",-") || (i > 0 && punct_at(x, i - 1, ",-")));
}

/* Do the m (1 to 3) words from token i repeat right after them, with nothing or a
 * comma between ("the the", "can you can you", "we need to, we need to")? */
static bool said_again(const struct cdt__spoken *x, size_t i)
{
    for (size_t m = 1; m <= 3; m++) {
        for (size_t gap = 0; gap <= 1; gap++) {
            size_t k = 0, b = i + m + gap;

            if (b + m > x->n || (gap && !punct_at(x, i + m, ",")))
                continue;
            while (k < m && x->t[i + k].kind == CDT__TK_WORD && x->t[b + k].kind == CDT__TK_WORD &&
                   strcmp(x->t[i + k].key, x->t[b + k].key) == 0)
                k++;
            if (k == m)
                return true;
        }
    }
    return false;
}

/* Is the period at token i that of an abbreviation after which a sentence goes on:
 * a name's suffix ("Jr."), "etc.", "vs.", or the last letter of a dotted one
 * ("a.m.", "e.g.", "U.S."; a period inside one touches the next letter)? A title
 * before a name ("Dr.") is followed by a capital anyway. */
static bool abbreviation_before(const struct cdt__spoken *x, size_t i)
{
    static const char *const ab[] = {"etc", "jr", "sr", "vs"}; /* sorted */
    const struct cdt__tok *w = i > 0 ? &x->t[i - 1] : NULL;

    if (!w || w->kind != CDT__TK_WORD || w->off + w->len != x->t[i].off)
        return false;
    if (listed(w->key, ab, N(ab)))
        return true;
    /* Inside "a.m.": a single letter, the period, a single letter, all touching. */
    if (!w->key[1] && i + 1 < x->n && x->t[i + 1].kind == CDT__TK_WORD && !x->t[i + 1].key[1] &&
        x->t[i + 1].off == x->t[i].off + x->t[i].len)
        return true;
    /* "a.m.": a single letter right after another single letter's period. */
    return !w->key[1] && i >= 3 && x->t[i - 2].kind == CDT__TK_PUNCT && x->t[i - 2].punct == '.' &&
           x->t[i - 3].kind == CDT__TK_WORD && !x->t[i - 3].key[1] &&
           x->t[i - 3].off + x->t[i - 3].len == x->t[i - 2].off;
}

/* Is word token i the scale word of a number written in digits ("$28 million",
 * "1.5 billion")? */
static bool written_scale(const struct cdt__spoken *x, size_t i)
{
    const struct cdt__phrase *p = &x->p[x->t[i].phrase];
    bool digits = false;

    if (!x->t[i].nw || x->t[i].nw->cls != CDT__NW_SCALE)
        return false;
    for (size_t k = p->a; k < p->b; k++) {
        if (x->t[k].kind == CDT__TK_NUM)
            digits = true;
        else if (x->t[k].kind == CDT__TK_WORD && (!x->t[k].nw || x->t[k].nw->cls != CDT__NW_SCALE))
            return false; /* "28 hundred thousand": words too */
    }
    return digits;
}

/* Is word token i a number from one to nine said alone, as written text spells it
 * ("on four major fronts"), not an amount with its unit ("five dollars", "six
 * percent")? */
static bool small_number(const struct cdt__spoken *x, size_t i)
{
    const struct cdt__tok *t = &x->t[i], *a = word_after(x, i);
    const struct cdt__phrase *p = &x->p[t->phrase];

    return p->a == i && p->b == i + 1 && t->nw && t->nw->cls == CDT__NW_UNIT && !t->nw->ordinal &&
           t->nw->v >= 1 && t->nw->v <= 9 && !(a && listed(a->key, markwords, N(markwords)));
}

int cdt_refine_is_clean(const char *text)
{
    struct cdt__spoken x;
    const struct cdt__tok *prev = NULL; /* the last word or number */
    bool sentence_start = true, ended = false;
    int rc = CDT_ENOMEM;

    memset(&x, 0, sizeof(x));
    if (!text || !cdt__spoken_init(&x, text, true))
        goto done;
    rc = 0;
    for (size_t i = 0; i < x.n; i++) {
        const struct cdt__tok *t = &x.t[i];

        if (t->kind == CDT__TK_PUNCT) {
            /* "Henry D. Sharpe, Jr. succeeded", "fruit, nuts, etc. and", "a.m. on":
             * the period of an abbreviation ends the text, not the sentence. */
            if (strchr(".?!", t->punct)) {
                ended = true;
                sentence_start = !(t->punct == '.' && abbreviation_before(&x, i));
            } else if (t->punct != '"' && t->punct != '#' && t->punct != ')') {
                ended = false;
            }
            continue;
        }
        ended = false;
        if (t->kind == CDT__TK_WORD) {
            /* A sentence opens with a capital; "i" is written "I". */
            if ((sentence_start && !t->cap) || (!strcmp(t->key, "i") && text[t->off] == 'i'))
                goto done;
            /* A spoken number the model would write in digits ("five hundred"); a
             * written one's scale word is written text ("$28 million"). */
            if (t->phrase >= 0 && !x.p[t->phrase].weak && !written_scale(&x, i) &&
                !small_number(&x, i))
                goto done;
            /* A stutter ("the the", "can you can you"), a cue, a filler set off by
             * commas ("you know"). */
            if (said_again(&x, i))
                goto done;
            if (cue_at(&x, i, sentence_start))
                goto done;
            if (cdt__spoken_is(&x, i, "you") && cdt__spoken_is(&x, i + 1, "know") &&
                (punct_at(&x, i + 2, ",") || (i > 0 && punct_at(&x, i - 1, ","))))
                goto done;
        }
        sentence_start = false;
        prev = t;
    }
    rc = prev && ended; /* some words, and the last sentence is closed */
done:
    cdt__spoken_cleanup(&x);
    return rc;
}
