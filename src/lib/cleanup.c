/* The deterministic cleanup pass (see cleanup.h for the rules).
 *
 * The text is split into tokens at whitespace; each token is pre (opening quotes
 * and brackets) + core (the word) + post (closing punctuation), and remembers the
 * line breaks before it. The passes only mark tokens dead, move punctuation and
 * breaks between neighbours, and change letter case; the text is joined again at
 * the end. Every word list is a table below, so a rule is changed in one place.
 * Invariant: a live token's core is never rewritten except for its first letter's
 * case and the in-token stutter rule ("wh-what" → "what"). */
#include "codictate/cleanup.h"

#include <stdlib.h>
#include <string.h>

#define KEY_MAX 48 /* longest word the tables are compared with, bytes */

/* ---- tables ---- */

/* Fillers: base spelling, the letter that may be stretched ("umm"), and whether
 * positive English evidence is needed (the word means something elsewhere). */
struct filler {
    const char *base;
    char stretch;
    bool needs_evidence;
};

static const struct filler fillers[] = {
    {"um", 'm', false}, {"uh", 'h', false}, {"uhm", 'm', false}, {"erm", 'm', false},
    {"hm", 'm', false}, {"er", 0, true},    {"ah", 'h', true},
};

/* Words that make a following "period", "comma", "new line"… a noun: determiners
 * and possessives (looked for up to a command's lookback), and prepositions and
 * verbs that talk about punctuation (only right before it: "in period 3", "add
 * comma"). */
static const char *const determiners[] = {
    "a",     "an",   "the",     "this",  "that",    "these",  "those", "my",    "your",
    "his",   "her",  "its",     "our",   "their",   "some",   "any",   "each",  "every",
    "no",    "one",  "another", "same",  "which",   "what",   "whose", "whole", "entire",
    "first", "last", "next",    "extra", "missing", "oxford",
};

static const char *const noun_before[] = {
    "of",      "in",    "on",   "at",     "during", "for",     "per",    "over",
    "within",  "by",    "from", "to",     "with",   "without", "before", "after",
    "between", "add",   "put",  "insert", "remove", "delete",  "type",   "say",
    "said",    "write", "use",  "using",  "called", "named",   "word",
};

static const char *const next_comma[] = {"separated", "delimited", "splice", "splices", NULL};
static const char *const next_period[] = {"of", NULL};
static const char *const next_colon[] = {"cancer", "cleanse", "cleansing", "polyp",  "polyps",
                                         "health", "surgery", "wall",      "lining", NULL};
static const char *const next_qmark[] = {"over", "hangs", "hanging", "hung", NULL};
static const char *const next_newline[] = {"of",    "item",   "items", "character", "characters",
                                           "break", "breaks", "feed",  "feeds",     NULL};
static const char *const next_none[] = {NULL};

/* Spoken punctuation and layout. */
struct command {
    const char *w1, *w2;           /* the words (w2 NULL: one word) */
    const char *mark;              /* punctuation to attach, or NULL for a break */
    int breaks;                    /* 1: new line, 2: new paragraph */
    int lookback;                  /* words before it checked for noun markers */
    bool not_before_number;        /* "period 3" is a noun */
    const char *const *next_block; /* next words that make it a noun */
};

static const struct command commands[] = {
    {"question", "mark", "?", 0, 1, false, next_qmark},
    {"exclamation", "mark", "!", 0, 1, false, next_none},
    {"exclamation", "point", "!", 0, 1, false, next_none},
    {"full", "stop", ".", 0, 1, false, next_none},
    {"new", "line", NULL, 1, 1, false, next_newline},
    {"new", "paragraph", NULL, 2, 1, false, next_period},
    {"comma", NULL, ",", 0, 1, false, next_comma},
    {"period", NULL, ".", 0, 3, true, next_period},
    {"colon", NULL, ":", 0, 1, false, next_colon},
    {"semicolon", NULL, ";", 0, 1, false, next_none},
};

/* Function words whose doubling is a stutter, never grammar. */
static const char *const stutter_words[] = {
    "i",    "i'm",   "i've", "i'll", "i'd", "the",  "a",    "an",   "and",  "to",
    "we",   "we're", "it",   "it's", "he",  "she",  "they", "you",  "my",   "of",
    "in",   "on",    "for",  "with", "but", "if",   "or",   "at",   "this", "what",
    "when", "where", "why",  "how",  "can", "just", "our",  "your", "was",  "are",
};

/* Short words that are also prefixes of longer ones: never a stutter fragment
 * unless marked with a hyphen ("an analysis", "in inside", "the theory"). */
static const char *const short_words[] = {
    "a",   "i",   "o",   "am",  "an",  "as",  "at",  "be",  "by",  "do",  "go",  "he",  "hi",
    "if",  "in",  "is",  "it",  "me",  "my",  "no",  "of",  "oh",  "ok",  "on",  "or",  "so",
    "to",  "up",  "us",  "we",  "ad",  "ax",  "ex",  "re",  "co",  "pa",  "ma",  "all", "and",
    "any", "are", "but", "can", "car", "con", "day", "did", "end", "for", "get", "got", "had",
    "has", "her", "him", "his", "how", "its", "let", "man", "may", "new", "not", "now", "off",
    "old", "one", "our", "out", "own", "par", "per", "pro", "put", "ran", "run", "saw", "say",
    "see", "set", "she", "sit", "the", "too", "top", "two", "use", "war", "was", "way", "who",
    "why", "yes", "yet", "you", "pre", "com", "art", "arm", "bat", "cat", "fan", "far", "fat",
    "hat", "pan", "pen", "pet", "pin", "pot", "ten", "tin", "win", "con", "dis", "mis", "sub",
};

/* Prefixes of hyphenated words ("re-read", "no-nonsense"): not stutters. */
static const char *const hyphen_prefixes[] = {
    "a",   "an",  "in",  "on",  "no",  "so",  "to",  "be",  "by",  "up",  "re",  "co",   "de",
    "ex",  "un",  "bi",  "im",  "il",  "ir",  "em",  "en",  "e",   "x",   "t",   "pre",  "pro",
    "non", "sub", "mis", "dis", "out", "off", "mid", "tri", "all", "one", "two", "anti",
};

/* Words that keep their comma when a filler after them goes ("Yes, um, I agree"). */
static const char *const discourse_words[] = {
    "yes",    "yeah", "no",       "so",       "well",      "okay",    "ok",      "oh",     "right",
    "sure",   "now",  "actually", "anyway",   "hey",       "hi",      "hello",   "thanks", "first",
    "second", "also", "however",  "honestly", "basically", "alright", "besides", "still",  "then",
};

/* Abbreviations whose "." does not end a sentence. */
static const char *const abbreviations[] = {
    "mr",  "mrs", "ms", "dr", "prof",   "st",  "vs",  "etc",  "jr",  "sr",
    "inc", "ltd", "co", "no", "approx", "fig", "vol", "dept", "est", "mt",
};

/* Language gate: function words of English, and of the other languages whisper
 * is most often used for (words that are also English are left out). */
static const char *const english_words[] = {
    "the",    "and",    "are",   "was", "were",  "you",    "we",      "to",       "of",
    "it",     "that",   "this",  "for", "with",  "have",   "has",     "had",      "not",
    "what",   "my",     "so",    "but", "think", "should", "can",     "will",     "would",
    "just",   "they",   "he",    "she", "me",    "about",  "there",   "like",     "going",
    "know",   "your",   "if",    "all", "get",   "how",    "our",     "from",     "i",
    "i'm",    "it's",   "don't", "be",  "been",  "does",   "did",     "want",     "need",
    "please", "thanks", "thank", "yes", "okay",  "hello",  "today",   "tomorrow", "let's",
    "then",   "when",   "where", "why", "who",   "which",  "because", "really",   "very",
    "some",   "at",     "or",    "an",  "is",    "do",     "we're",   "you're",   "meeting",
};

static const char *const foreign_words[] = {
    /* German */
    "der",
    "die",
    "das",
    "und",
    "ist",
    "nicht",
    "ich",
    "sie",
    "wir",
    "ein",
    "eine",
    "mit",
    "auf",
    "für",
    "sich",
    "dass",
    "auch",
    "zu",
    "dem",
    "von",
    "wie",
    "aber",
    "oder",
    "noch",
    "nur",
    "sehr",
    "ja",
    "nein",
    "sind",
    "heute",
    "habe",
    "haben",
    "sagt",
    /* French */
    "le",
    "la",
    "les",
    "et",
    "je",
    "nous",
    "vous",
    "une",
    "des",
    "du",
    "que",
    "qui",
    "pour",
    "dans",
    "avec",
    "sur",
    "ce",
    "cette",
    "mais",
    "très",
    "suis",
    "c'est",
    /* Spanish */
    "el",
    "los",
    "las",
    "y",
    "es",
    "una",
    "por",
    "para",
    "pero",
    "muy",
    "esto",
    "esta",
    "está",
    "estoy",
    "hoy",
    "yo",
    "del",
    "gracias",
    "hola",
    /* Portuguese */
    "uma",
    "não",
    "é",
    "da",
    "mas",
    "muito",
    "eu",
    "você",
    "isso",
    "obrigado",
    /* Italian */
    "il",
    "gli",
    "che",
    "di",
    "è",
    "sono",
    "non",
    "della",
    "questo",
    "oggi",
    "ciao",
    /* Dutch */
    "het",
    "een",
    "ik",
    "niet",
    "wij",
    "zijn",
    "voor",
    "maar",
    "ook",
    "dat",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

static bool in_null_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

/* ---- tokens ---- */

struct tok {
    char *pre, *core, *post; /* owned, never NULL while live */
    int nl;                  /* line breaks before it: 0, 1 or 2 */
    bool layout;             /* the break came from a spoken command: capitalise */
    bool dead;
    size_t prev, next; /* the neighbouring live tokens (NONE at the ends): a dead run
                        * is skipped in O(1), so no input makes a pass quadratic */
};

#define NONE ((size_t)-1)

struct ctx {
    struct tok *t;
    size_t n;
    bool oom;
    bool english;  /* the gate passed */
    bool evidence; /* positive English evidence */
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_lower(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

static bool is_upper(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_alpha(unsigned char c)
{
    return is_lower(c) || is_upper(c);
}

static char lower(char c)
{
    return is_upper((unsigned char)c) ? (char)(c - 'A' + 'a') : c;
}

static char upper(char c)
{
    return is_lower((unsigned char)c) ? (char)(c - 'a' + 'A') : c;
}

static const char RSQUO[] = "\xE2\x80\x99"; /* ’ */
static const char RDQUO[] = "\xE2\x80\x9D"; /* ” */
static const char LDQUO[] = "\xE2\x80\x9C"; /* “ */
static const char ELLIPSIS[] = "\xE2\x80\xA6";

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t k = strlen(suffix);

    return len >= k && memcmp(s + len - k, suffix, k) == 0;
}

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t k = strlen(prefix);

    return len >= k && memcmp(s, prefix, k) == 0;
}

/* The table key of a core: ASCII lowercased, ’ as ', "" when too long. */
static void make_key(const char *core, char key[KEY_MAX])
{
    size_t o = 0;

    for (const char *s = core; *s; s++) {
        if (o + 1 >= KEY_MAX) {
            key[0] = '\0';
            return;
        }
        if (strncmp(s, RSQUO, 3) == 0) {
            key[o++] = '\'';
            s += 2;
            continue;
        }
        key[o++] = lower(*s);
    }
    key[o] = '\0';
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* *dst = a + b (either may alias *dst or be NULL). */
static void set2(struct ctx *c, char **dst, const char *a, const char *b)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    char *d = malloc(la + lb + 1);

    if (!d) {
        c->oom = true;
        return;
    }
    if (la)
        memcpy(d, a, la);
    if (lb)
        memcpy(d + la, b, lb);
    d[la + lb] = '\0';
    free(*dst);
    *dst = d;
}

static const char post_ascii[] = ".,?!:;\"')]}";
static const char pre_ascii[] = "\"'([{";

/* Splits one whitespace-free word into pre/core/post. */
static bool split_word(const char *w, size_t len, struct tok *t)
{
    size_t end = len, start = 0;

    for (;;) {
        if (end > 0 && strchr(post_ascii, w[end - 1]) && w[end - 1] != '\0')
            end--;
        else if (ends_with(w, end, ELLIPSIS) || ends_with(w, end, RDQUO))
            end -= 3;
        else
            break;
    }
    for (;;) {
        if (start < end && strchr(pre_ascii, w[start]) && w[start] != '\0')
            start++;
        else if (starts_with(w + start, end - start, LDQUO) ||
                 starts_with(w + start, end - start, "\xC2\xBF") || /* ¿ */
                 starts_with(w + start, end - start, "\xC2\xA1"))   /* ¡ */
            start += strncmp(w + start, LDQUO, 3) == 0 ? 3 : 2;
        else
            break;
    }
    t->pre = dupn(w, start);
    t->core = dupn(w + start, end - start);
    t->post = dupn(w + end, len - end);
    return t->pre && t->core && t->post;
}

static void free_toks(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->t[i].pre);
        free(c->t[i].core);
        free(c->t[i].post);
    }
    free(c->t);
    c->t = NULL;
    c->n = 0;
}

static int tokenize(const char *s, struct ctx *c)
{
    size_t cap = 0, i = 0, len = strlen(s);
    int nl = 0;

    while (i < len) {
        size_t j;

        if (is_space((unsigned char)s[i])) {
            if (s[i] == '\n')
                nl++;
            i++;
            continue;
        }
        for (j = i; j < len && !is_space((unsigned char)s[j]); j++)
            ;
        if (c->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct tok *nt = realloc(c->t, ncap * sizeof(*nt));

            if (!nt)
                return CDT_ENOMEM;
            c->t = nt;
            cap = ncap;
        }
        memset(&c->t[c->n], 0, sizeof(c->t[c->n]));
        c->t[c->n].nl = c->n == 0 ? 0 : nl > 2 ? 2 : nl;
        c->n++;
        if (!split_word(s + i, j - i, &c->t[c->n - 1]))
            return CDT_ENOMEM;
        nl = 0;
        i = j;
    }
    return 0;
}

static void link_all(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        c->t[i].prev = i > 0 ? i - 1 : NONE;
        c->t[i].next = i + 1 < c->n ? i + 1 : NONE;
    }
}

/* Marks token i dead and unlinks it. */
static void drop(struct ctx *c, size_t i)
{
    struct tok *t = &c->t[i];

    if (t->dead)
        return;
    if (t->prev != NONE)
        c->t[t->prev].next = t->next;
    if (t->next != NONE)
        c->t[t->next].prev = t->prev;
    t->dead = true;
}

/* The live neighbours of live token i (NULL at the ends); *at gets the index. */
static struct tok *prev_live(struct ctx *c, size_t i, size_t *at)
{
    size_t j = c->t[i].prev;

    if (j == NONE)
        return NULL;
    if (at)
        *at = j;
    return &c->t[j];
}

static struct tok *next_live(struct ctx *c, size_t i, size_t *at)
{
    size_t j = c->t[i].next;

    if (j == NONE)
        return NULL;
    if (at)
        *at = j;
    return &c->t[j];
}

/* ---- small predicates ---- */

/* Post without trailing closing quotes/brackets: its length. */
static size_t post_mark_len(const char *post)
{
    size_t len = strlen(post);

    for (;;) {
        if (len > 0 && strchr("\"')]}", post[len - 1]))
            len--;
        else if (ends_with(post, len, RDQUO) || ends_with(post, len, RSQUO))
            len -= 3;
        else
            return len;
    }
}

static bool is_abbreviation(const struct tok *t)
{
    char key[KEY_MAX];
    size_t len = strlen(t->core);

    make_key(t->core, key);
    if (in_list(key, abbreviations, N(abbreviations)) || strchr(t->core, '.'))
        return true;
    /* An initial ("J. Smith"), but not the pronoun or "plan A." */
    return len == 1 && is_upper((unsigned char)t->core[0]) && t->core[0] != 'I' &&
           t->core[0] != 'A';
}

/* True when the token ends a sentence: ".", "?" or "!" (before closing quotes),
 * not an ellipsis, not an abbreviation's dot. */
static bool ends_sentence(const struct tok *t)
{
    size_t len = post_mark_len(t->post);
    char last;

    if (len == 0 || ends_with(t->post, len, "...") || ends_with(t->post, len, ELLIPSIS))
        return false;
    last = t->post[len - 1];
    if (last == '?' || last == '!')
        return true;
    if (last != '.')
        return false;
    /* "e.g.," has its dot inside the post; the dot right after the core is what counts. */
    return !(len == 1 && is_abbreviation(t));
}

/* True when the post is only a pause: "", ",", "...", "…", "-", "—". */
static bool is_pause_post(const char *post)
{
    return !*post || strcmp(post, ",") == 0 || strcmp(post, "...") == 0 ||
           strcmp(post, ELLIPSIS) == 0 || strcmp(post, "-") == 0 ||
           strcmp(post, "\xE2\x80\x94") == 0;
}

static bool only_chars(const char *s, const char *set)
{
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* Removes trailing characters of `set` from *s (in place). */
static void strip_trailing(char *s, const char *set)
{
    size_t len = strlen(s);

    while (len > 0 && strchr(set, s[len - 1]))
        s[--len] = '\0';
}

static bool all_ascii_letters(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alpha((unsigned char)s[i]))
            return false;
    return true;
}

static bool has_vowel(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (strchr("aeiouyAEIOUY", s[i]))
            return true;
    return false;
}

static bool iprefix(const char *p, size_t plen, const char *s)
{
    for (size_t i = 0; i < plen; i++)
        if (!s[i] || lower(p[i]) != lower(s[i]))
            return false;
    return true;
}

/* ---- language gate ---- */

static void gate(struct ctx *c)
{
    size_t en = 0, foreign = 0, non_ascii = 0;

    for (size_t i = 0; i < c->n; i++) {
        char key[KEY_MAX];

        make_key(c->t[i].core, key);
        if (in_list(key, english_words, N(english_words)))
            en++;
        else if (in_list(key, foreign_words, N(foreign_words)))
            foreign++;
        for (const char *s = c->t[i].core; *s; s++)
            if ((unsigned char)*s >= 0x80 && strncmp(s, RSQUO, 3) != 0) {
                non_ascii++;
                break;
            }
    }
    c->evidence = en >= 1 && en > 2 * foreign;
    c->english = c->evidence || (en == 0 && foreign == 0 && non_ascii == 0);
}

/* ---- passes ---- */

static void move_nl(struct tok *from, struct tok *to)
{
    if (!to)
        return;
    if (from->nl > to->nl) {
        to->nl = from->nl;
        to->layout = to->layout || from->layout;
    }
}

/* "hello , world" → "hello, world". */
static void pass_stray_punct(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct tok *t = &c->t[i], *p;

        if (t->dead || t->core[0] || t->pre[0] || !t->post[0] || t->nl ||
            !only_chars(t->post, ",.;:?!"))
            continue;
        p = prev_live(c, i, NULL);
        if (!p)
            continue;
        strip_trailing(p->post, ",;:");
        set2(c, &p->post, p->post, t->post);
        drop(c, i);
    }
}

static bool is_filler(const char *key, bool evidence)
{
    for (size_t i = 0; i < N(fillers); i++) {
        const struct filler *f = &fillers[i];
        size_t bl = strlen(f->base), kl = strlen(key);

        if (f->needs_evidence && !evidence)
            continue;
        if (strncmp(key, f->base, bl) != 0)
            continue;
        if (kl == bl)
            return true;
        if (!f->stretch)
            continue;
        for (size_t k = bl; k <= kl; k++) {
            if (k == kl)
                return true;
            if (key[k] != f->stretch)
                break;
        }
    }
    return false;
}

/* True when p is the first word of its sentence. */
static bool opens_sentence(struct ctx *c, size_t at)
{
    struct tok *pp = prev_live(c, at, NULL);

    return !pp || ends_sentence(pp) || c->t[at].nl > 0;
}

/* A sentence-opening discourse word keeps its comma ("Yes, um, I agree"). */
static bool keeps_comma(struct ctx *c, size_t at)
{
    char key[KEY_MAX];

    make_key(c->t[at].core, key);
    return opens_sentence(c, at) && in_list(key, discourse_words, N(discourse_words));
}

static void pass_fillers(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct tok *t = &c->t[i], *p, *nx;
        size_t pat = 0;
        char key[KEY_MAX], rest[64];
        bool had_comma;
        size_t o = 0;

        if (t->dead)
            continue;
        make_key(t->core, key);
        if (!key[0] || !is_filler(key, c->evidence))
            continue;
        p = prev_live(c, i, &pat);
        nx = next_live(c, i, NULL);
        had_comma = strchr(t->post, ',') != NULL;
        for (const char *s = t->post; *s && o + 1 < sizeof(rest); s++)
            if (!strchr(",;:", *s))
                rest[o++] = *s;
        rest[o] = '\0';
        if ((strchr(t->pre, '(') && strchr(rest, ')')) ||
            (strchr(t->pre, '[') && strchr(rest, ']'))) {
            char *close = strpbrk(rest, ")]");

            memmove(close, close + 1, strlen(close)); /* "(um)." goes, its "." stays */
            t->pre[0] = '\0';
        }
        if (nx && t->pre[0])
            set2(c, &nx->pre, t->pre, nx->pre);
        if (rest[0] && p) {
            const char *mark = rest;

            if (strchr(".?!", rest[0])) {
                size_t ml;

                strip_trailing(p->post, ",;:");
                ml = post_mark_len(p->post);
                if (ml > 0 && strchr(".?!", p->post[ml - 1]))
                    mark = rest + strspn(rest, ".?!"); /* it already ends its sentence */
            }
            set2(c, &p->post, p->post, mark);
        } else if (had_comma && p && !rest[0] && strlen(p->post) > 0 &&
                   p->post[strlen(p->post) - 1] == ',' && !keeps_comma(c, pat)) {
            p->post[strlen(p->post) - 1] = '\0';
        }
        move_nl(t, nx);
        drop(c, i);
    }
}

static bool noun_marker_before(struct ctx *c, size_t at, int lookback)
{
    size_t q = at;
    struct tok *t;

    for (int k = 0; k < lookback && (t = prev_live(c, q, &q)); k++) {
        char key[KEY_MAX];

        /* Stay inside the phrase: a comma or a sentence end after a word cuts it off. */
        if (k > 0 && (strchr(t->post, ',') || ends_sentence(t)))
            break;
        make_key(t->core, key);
        if (in_list(key, determiners, N(determiners)) ||
            (k == 0 && in_list(key, noun_before, N(noun_before))))
            return true;
        if (opens_sentence(c, q))
            break;
    }
    return false;
}

static bool match_command(struct ctx *c, size_t i, const struct command *cmd, size_t *last)
{
    struct tok *t = &c->t[i], *t2;
    char key[KEY_MAX];

    make_key(t->core, key);
    if (strcmp(key, cmd->w1) != 0 || t->pre[0])
        return false;
    *last = i;
    if (!cmd->w2)
        return only_chars(t->post, ",.;:?!");
    if (t->post[0])
        return false;
    t2 = next_live(c, i, last);
    if (!t2 || t2->pre[0] || t2->nl)
        return false;
    make_key(t2->core, key);
    return strcmp(key, cmd->w2) == 0 && only_chars(t2->post, ",.;:?!");
}

static void pass_commands(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < N(commands) && !c->t[i].dead; k++) {
            const struct command *cmd = &commands[k];
            struct tok *p, *nx;
            size_t last;
            char key[KEY_MAX];

            if (!match_command(c, i, cmd, &last))
                continue;
            p = prev_live(c, i, NULL);
            nx = next_live(c, last, NULL);
            if (!p || (cmd->mark && ends_sentence(p)))
                continue;
            if (noun_marker_before(c, i, cmd->lookback))
                continue;
            if (nx) {
                make_key(nx->core, key);
                if (in_null_list(key, cmd->next_block))
                    continue;
                if (cmd->not_before_number && nx->core[0] >= '0' && nx->core[0] <= '9')
                    continue;
            }
            if (cmd->mark) {
                strip_trailing(p->post, ",;:");
                set2(c, &p->post, p->post, cmd->mark);
                move_nl(&c->t[i], nx);
            } else if (nx) {
                move_nl(&c->t[i], nx);
                if (nx->nl < cmd->breaks)
                    nx->nl = cmd->breaks;
                nx->layout = true;
            }
            for (size_t j = i; j <= last; j++)
                drop(c, j);
        }
    }
}

/* The key of a possible stutter fragment: its core without a trailing hyphen or
 * dash; *marked says whether it had one. */
static size_t frag_len(const struct tok *t, bool *marked)
{
    size_t len = strlen(t->core);

    *marked = false;
    if (len > 1 && t->core[len - 1] == '-') {
        *marked = true;
        return len - 1;
    }
    if (ends_with(t->core, len, "\xE2\x80\x94") || ends_with(t->core, len, "\xE2\x80\x93")) {
        *marked = true;
        return len - 3;
    }
    if (!strcmp(t->post, "-") || !strcmp(t->post, "\xE2\x80\x94"))
        *marked = true;
    return len;
}

static void kill_into(struct ctx *c, size_t i, struct tok *keep)
{
    struct tok *t = &c->t[i];

    if (t->pre[0] && strcmp(t->pre, keep->pre) != 0)
        set2(c, &keep->pre, t->pre, keep->pre);
    move_nl(t, keep);
    drop(c, i);
}

/* "I I I think" → "I think". */
static void pass_repeats(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct tok *t = &c->t[i], *nx;
        char k1[KEY_MAX], k2[KEY_MAX];
        bool marked;
        size_t fl;

        if (t->dead || !(nx = next_live(c, i, NULL)) || nx->nl || !is_pause_post(t->post))
            continue;
        fl = frag_len(t, &marked);
        if (fl >= KEY_MAX)
            continue;
        memcpy(k1, t->core, fl);
        k1[fl] = '\0';
        make_key(k1, k1);
        make_key(nx->core, k2);
        if (k1[0] && strcmp(k1, k2) == 0 && in_list(k1, stutter_words, N(stutter_words)))
            kill_into(c, i, nx);
    }
}

/* "f fu fuzzy" → "fuzzy"; "th the" → "the"; "fu- fuzzy" → "fuzzy". */
static void pass_fragments(struct ctx *c)
{
    for (size_t j = 0; j < c->n; j++) {
        struct tok *w = &c->t[j], *q;
        size_t wl = strlen(w->core), at = j, chain[8], nchain = 0, first_len = 0;
        bool any_marked = false;

        if (w->dead || wl < 2 || !is_alpha((unsigned char)w->core[0]))
            continue;
        while (nchain < N(chain) && !c->t[at].nl && (q = prev_live(c, at, &at))) {
            bool marked;
            size_t fl = frag_len(q, &marked);
            char key[KEY_MAX];

            /* A fragment longer than any table key is a word, not a stutter (and
             * would not fit the key). */
            if (q->pre[0] || !is_pause_post(q->post) || !all_ascii_letters(q->core, fl) ||
                fl >= wl || fl >= KEY_MAX || !iprefix(q->core, fl, w->core))
                break;
            memcpy(key, q->core, fl);
            key[fl] = '\0';
            make_key(key, key);
            if (!marked && in_list(key, short_words, N(short_words)))
                break;
            any_marked = any_marked || marked;
            chain[nchain++] = at;
            first_len = fl;
        }
        if (nchain == 0)
            continue;
        if (!(any_marked || nchain >= 2 ||
              (first_len >= 2 && !has_vowel(c->t[chain[0]].core, first_len))))
            continue;
        for (size_t k = nchain; k-- > 0;)
            kill_into(c, chain[k], w);
    }
}

/* "wh-what" → "what", "f-fu-fuzzy" → "fuzzy" inside one token. */
static void pass_hyphen_stutter(struct ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct tok *t = &c->t[i];
        const char *last = strrchr(t->core, '-'), *s = t->core;
        size_t wl;
        bool ok = true;

        if (t->dead || !last || last == t->core || !last[1])
            continue;
        wl = strlen(last + 1);
        if (!all_ascii_letters(last + 1, wl))
            continue;
        while (s < last && ok) {
            const char *dash = strchr(s, '-');
            size_t pl = (size_t)(dash - s);
            char key[KEY_MAX];

            if (pl == 0 || pl > 3 || pl >= wl || !all_ascii_letters(s, pl) ||
                !iprefix(s, pl, last + 1)) {
                ok = false;
                break;
            }
            memcpy(key, s, pl);
            key[pl] = '\0';
            make_key(key, key);
            if (in_list(key, hyphen_prefixes, N(hyphen_prefixes)))
                ok = false;
            s = dash + 1;
        }
        if (!ok)
            continue;
        {
            char first = t->core[0];
            char *w = dupn(last + 1, wl);

            if (!w) {
                c->oom = true;
                return;
            }
            if (is_upper((unsigned char)first))
                w[0] = upper(w[0]);
            free(t->core);
            t->core = w;
        }
    }
}

static void pass_pronoun_i(struct ctx *c)
{
    static const char *const forms[] = {"i", "i'm", "i've", "i'll", "i'd"};

    for (size_t i = 0; i < c->n; i++) {
        char key[KEY_MAX];

        if (c->t[i].dead || c->t[i].core[0] != 'i')
            continue;
        make_key(c->t[i].core, key);
        if (in_list(key, forms, N(forms)))
            c->t[i].core[0] = 'I';
    }
}

/* An all-lowercase ASCII word (apostrophes and inner hyphens allowed). */
static bool plain_lower_word(const char *s)
{
    if (!is_lower((unsigned char)s[0]))
        return false;
    for (; *s; s++) {
        if (strncmp(s, RSQUO, 3) == 0) {
            s += 2;
            continue;
        }
        if (!is_lower((unsigned char)*s) && *s != '\'' && *s != '-')
            return false;
    }
    return true;
}

static void pass_capitalise(struct ctx *c)
{
    bool start = true;

    for (size_t i = 0; i < c->n; i++) {
        struct tok *t = &c->t[i];

        if (t->dead)
            continue;
        if (t->nl == 2 || (t->nl && t->layout))
            start = true;
        if (!t->core[0]) {
            if (t->post[0])
                start = start || ends_sentence(t);
            continue;
        }
        if (start && plain_lower_word(t->core))
            t->core[0] = upper(t->core[0]);
        start = ends_sentence(t);
    }
}

static char *join(struct ctx *c)
{
    size_t len = 0, o = 0;
    bool first = true;
    char *out;

    for (size_t i = 0; i < c->n; i++)
        if (!c->t[i].dead)
            len += 2 + strlen(c->t[i].pre) + strlen(c->t[i].core) + strlen(c->t[i].post);
    out = malloc(len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < c->n; i++) {
        struct tok *t = &c->t[i];

        if (t->dead)
            continue;
        if (!first) {
            if (t->nl == 2) {
                out[o++] = '\n';
                out[o++] = '\n';
            } else {
                out[o++] = t->nl ? '\n' : ' ';
            }
        }
        first = false;
        memcpy(out + o, t->pre, strlen(t->pre));
        o += strlen(t->pre);
        memcpy(out + o, t->core, strlen(t->core));
        o += strlen(t->core);
        memcpy(out + o, t->post, strlen(t->post));
        o += strlen(t->post);
    }
    out[o] = '\0';
    return out;
}

bool cdt_cleanup_is_english(const char *text)
{
    struct ctx c;
    bool en;

    memset(&c, 0, sizeof(c));
    if (!text || strlen(text) > CDT_CLEANUP_MAX_TEXT || tokenize(text, &c) != 0) {
        free_toks(&c);
        return false;
    }
    gate(&c);
    en = c.english;
    free_toks(&c);
    return en;
}

int cdt_cleanup_text(const char *text, char **out)
{
    struct ctx c;
    int rc;

    if (!out)
        return CDT_EINVAL;
    *out = NULL;
    if (!text)
        return CDT_EINVAL;
    if (strlen(text) > CDT_CLEANUP_MAX_TEXT)
        return CDT_ETOOBIG;
    memset(&c, 0, sizeof(c));
    rc = tokenize(text, &c);
    if (rc == 0) {
        link_all(&c);
        gate(&c);
        if (c.english) {
            pass_stray_punct(&c);
            pass_fillers(&c);
            pass_commands(&c);
            pass_repeats(&c);
            pass_hyphen_stutter(&c);
            pass_fragments(&c);
            pass_pronoun_i(&c);
            pass_capitalise(&c);
        }
        if (c.oom)
            rc = CDT_ENOMEM;
        else if (!(*out = join(&c)))
            rc = CDT_ENOMEM;
    }
    free_toks(&c);
    return rc;
}
