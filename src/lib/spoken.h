/* Private to the refine guards (refine.c, refine_critical.c): a text cut into
 * tokens (words, written numbers, punctuation), and the numbers it says, spoken or
 * written, with every value each could mean (spoken.c says how). A text is used by
 * one thread at a time. */
#ifndef CDT_SPOKEN_H
#define CDT_SPOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CDT__KEY_MAX    48 /* a word's key, bytes (longer words are cut) */
#define CDT__MAX_GROUPS 4  /* groups kept of a written number (555-1234, 2024-05-01) */

/* A value: m × 10^e, normalised (m has no trailing zero; 0 is {0, 0}). */
struct cdt__nv {
    uint64_t m;
    int e;
};

enum { CDT__NW_UNIT = 1, CDT__NW_TEEN, CDT__NW_TENS, CDT__NW_HUNDRED, CDT__NW_SCALE, CDT__NW_WEAK };

struct cdt__numword {
    const char *w;
    unsigned char cls;
    bool ordinal, weak_alone; /* weak_alone: on its own, often not a number */
    uint64_t v;
    struct cdt__nv alt; /* a weak word's second reading (half: 0.5); m 0 and e 1: none */
};

enum { CDT__TK_WORD, CDT__TK_NUM, CDT__TK_PUNCT };

struct cdt__tok {
    unsigned char kind;
    char punct;            /* CDT__TK_PUNCT: ',', '.', ';', '-', '"', '\n', … ('#' for others) */
    bool cap;              /* CDT__TK_WORD: opens with an upper-case letter */
    bool initial;          /* opens a sentence (or a quote, or follows a colon) */
    bool suffix;           /* CDT__TK_WORD: a written number's unit ("pm" of "5pm") */
    bool ordinal;          /* CDT__TK_NUM: "3rd" */
    bool has_alt;          /* CDT__TK_NUM: a second value ("4k": 4000) */
    bool grouped;          /* CDT__TK_NUM: "555-1234", "10:30", "2024-05-01" */
    unsigned char ngroups; /* CDT__TK_NUM, grouped: the groups kept (0: too many) */
    int phrase;            /* the number phrase it belongs to, or -1 */
    size_t off, len;       /* bytes of the text */
    size_t word;           /* index among the words and numbers */
    const struct cdt__numword *nw; /* CDT__TK_WORD: a number word */
    struct cdt__nv val, alt;       /* CDT__TK_NUM: value (grouped: the digits run together) */
    struct cdt__nv groups[CDT__MAX_GROUPS];
    char key[CDT__KEY_MAX]; /* CDT__TK_WORD: lower case, ’ as ', no possessive 's */
};

struct cdt__phrase {
    size_t a, b;  /* tokens [a, b) */
    size_t point; /* the token "point", or SIZE_MAX */
    bool weak;    /* need not survive */
    bool half;    /* ends with "and a half" */
    int nextra;   /* readings of the whole phrase from its neighbours (cents) */
    struct cdt__nv extra[2];
};

struct cdt__spoken {
    const char *s;
    struct cdt__tok *t;
    size_t n, cap, nwords;
    struct cdt__phrase *p;
    size_t np, pcap;
    /* The caller's (refine_critical.c), freed by cdt__spoken_cleanup: */
    char (*keys)[CDT__KEY_MAX]; /* adjacent words run together */
    const char **set;           /* keys of the words and of those pairs, sorted */
    size_t nset;
    struct cdt__nv *vals; /* readings of the number phrases, sorted */
    size_t nvals, vcap;
    bool *near_cue;  /* per word: near a correction cue (the input only; the caller's) */
    bool *after_cue; /* per word: near one only after it, the corrected words (the caller's) */
    bool *restart;   /* per word: in a false start (the input only; the caller's) */
    bool *repeat;    /* per word: said twice (the input only; the caller's) */
};

/* Cuts s (borrowed while x lives; any bytes) into tokens, finds its number
 * phrases and gathers the values their ranges read (each_word: and each number
 * word on its own, as the input's do). near_cue and repeat stay NULL for the
 * caller to fill; set and keys too. False when out of memory (then
 * cdt__spoken_cleanup still frees what was made). */
bool cdt__spoken_init(struct cdt__spoken *x, const char *s, bool each_word);

/* Frees everything x holds, the caller's arrays included, and zeroes it. */
void cdt__spoken_cleanup(struct cdt__spoken *x);

/* Is token i the word `key` (a key: lower case)? False past the end. */
bool cdt__spoken_is(const struct cdt__spoken *x, size_t i, const char *key);

/* Is token i a digit said as a word ("five", "oh")? */
bool cdt__spoken_digit(const struct cdt__spoken *x, size_t i);

/* May token i be left out: near a correction cue but not only after one (the
 * corrected words must survive), or said twice (the marks the caller set; false
 * without them)? */
bool cdt__spoken_excused(const struct cdt__spoken *x, size_t i);

/* Can phrase p of x be cut into ranges that each read a value of `other`, or that
 * x may leave out (its near_cue or repeat marks, when set)? Returns 1, 0 or
 * CDT_ENOMEM. */
int cdt__spoken_phrase_in(const struct cdt__spoken *x, const struct cdt__phrase *p,
                          const struct cdt__spoken *other);

/* Phrase q as one token of the text, for counting words: the bytes
 * [*from, *to) it covers, with a currency sign written just before it ("€500"),
 * the unit said after it ("dollars", "cents", "percent", "per cent") and the
 * cents that follow a money unit ("five dollars and fifty cents": phrase q+1 is
 * covered too). Returns the next phrase not covered. q < x->np. */
size_t cdt__spoken_phrase_span(const struct cdt__spoken *x, size_t q, size_t *from, size_t *to);

/* The token's text, at most 40 bytes of whole valid UTF-8 characters, into dst. */
void cdt__spoken_show_tok(char *dst, size_t cap, const struct cdt__spoken *x,
                          const struct cdt__tok *t);

/* A phrase for people: a written number as written, a spoken one as digits. */
void cdt__spoken_show_phrase(char *dst, size_t cap, const struct cdt__spoken *x,
                             const struct cdt__phrase *p);

#endif
