/* What a text says, token by token, and the numbers in it (spoken.h), for the
 * critical-token guard (refine_critical.c) and the length and overlap guards
 * (refine.c), which count a number phrase as one word.
 *
 * Tokens: words (letters, digits after a letter, inner apostrophes; a hyphen
 * between letters only separates), written numbers, punctuation; a word's key is
 * folded to lower case (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic), with ’
 * as ' and a possessive 's dropped. Invalid UTF-8 is a letter (as refine.c's
 * split_words counts it); nothing reads past the NUL.
 *
 * Numbers. A run of number words ("four hundred and fifty", "nineteen sixty one",
 * "five five five one two three four", "one point five", "twenty third",
 * "nineteen fifties") or a written number ("450", "1,000", "1.5", "3rd", "5%",
 * "555-1234", "10:30", "5 million") is a phrase; "you know" inside one is left out.
 * A stretch of a phrase (a range) reads: its sum (450), a year pair (19|61 → 1961,
 * and 19.61 for prices), its digits said one by one (5551234), a decimal (1.5),
 * "and a half", cents ("fifty cents" 0.5, "five dollars and fifty cents" 5.5), a
 * written number its value ("4k" 4000 too), a grouped one (555-1234) its digits run
 * together and each group. Ranges never cut a number apart where no speaker would
 * ("four hundred | and fifty", "twenty | five", "five | hundred"). Values are
 * m × 10^e with m at most CRIT_MAX_DIGITS digits (longer digit strings compare on
 * those), sums stop at CRIT_NUM_CAP, phrases at CRIT_PHRASE_MAX words: nothing
 * overflows, and the work is linear in the text's length. Weak phrases (a lone
 * "one", "first", "second", "half", "quarter", "noon", "midnight", "the nineties")
 * are numbers that often are not. */
#include "spoken.h"
#include "codictate/err.h"
#include "codictate/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRIT_MAX_DIGITS 18 /* digits a value keeps: longer ones compare on these */
#define CRIT_NUM_CAP    1000000000000000000ULL /* 10^18: spoken sums stop here */
#define CRIT_RANGE_MAX  6  /* words a reading spans (a whole phrase may be longer) */
#define CRIT_PHRASE_MAX 64 /* words of one number phrase; longer runs are cut */
#define CRIT_READINGS   24 /* readings of one range */
#define CRIT_SHOW_MAX   40 /* bytes of a token quoted in a reason */

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- numbers as values: m × 10^e, normalised (m has no trailing zero) ---- */

static struct cdt__nv nv_make(uint64_t m, int e)
{
    struct cdt__nv v = {m, m ? e : 0};

    while (v.m && v.m % 10 == 0) {
        v.m /= 10;
        v.e++;
    }
    return v;
}

static int nv_cmp(const void *a, const void *b)
{
    const struct cdt__nv *x = a, *y = b;

    if (x->m != y->m)
        return x->m < y->m ? -1 : 1;
    return (x->e > y->e) - (x->e < y->e);
}

/* Digits gathered one by one (spoken digit strings, decimals); past
 * CRIT_MAX_DIGITS significant digits they only count. */
struct digits {
    uint64_t m;
    int sig, extra, frac;
};

static void digits_add(struct digits *d, unsigned v)
{
    if (d->m == 0 && d->sig == 0 && v == 0) {
        if (d->frac > 0) /* a leading zero of a fraction still scales it */
            d->frac++;
        return;
    }
    if (d->sig < CRIT_MAX_DIGITS) {
        d->m = d->m * 10 + v;
        d->sig++;
    } else if (d->extra < 1000000) {
        d->extra++;
    }
    if (d->frac > 0)
        d->frac++;
}

/* Adds the decimal digits of v. */
static void digits_add_number(struct digits *d, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);

    for (int i = 0; i < n; i++)
        digits_add(d, (unsigned)(buf[i] - '0'));
}

static struct cdt__nv digits_value(const struct digits *d)
{
    /* frac counts the point itself plus the digits after it */
    int after = d->frac > 0 ? d->frac - 1 : 0;

    if (d->extra > after)
        return nv_make(d->m, d->extra - after);
    return nv_make(d->m, -(after - d->extra));
}

/* v as a whole number; false for a fraction or past CRIT_NUM_CAP. */
static bool nv_int(struct cdt__nv v, uint64_t *out)
{
    uint64_t w = v.m;

    if (v.e < 0)
        return false;
    for (int e = 0; e < v.e; e++) {
        if (w > CRIT_NUM_CAP / 10)
            return false;
        w *= 10;
    }
    *out = w;
    return true;
}

/* v × 10^k, or × 12 for a dozen; false past CRIT_NUM_CAP. */
static bool nv_scale(struct cdt__nv *v, uint64_t scale)
{
    int k = 0;

    if (scale == 12) {
        if (v->m > CRIT_NUM_CAP / 12)
            return false;
        *v = nv_make(v->m * 12, v->e);
        return true;
    }
    for (; scale >= 10; scale /= 10)
        k++;
    if (v->e + k > 18)
        return false;
    *v = nv_make(v->m, v->e + k);
    return true;
}

/* "1961", "1.5", "0.05": for reasons. */
static void nv_show(char *dst, size_t cap, struct cdt__nv v)
{
    char d[24];
    int n = snprintf(d, sizeof(d), "%llu", (unsigned long long)v.m);

    if (v.e >= 0 && v.e <= 24) {
        snprintf(dst, cap, "%s%.*s", d, v.e, "000000000000000000000000");
    } else if (v.e > 0) {
        snprintf(dst, cap, "%se%d", d, v.e);
    } else if (-v.e < n) {
        snprintf(dst, cap, "%.*s.%s", n + v.e, d, d + n + v.e);
    } else if (-v.e - n <= 24) {
        snprintf(dst, cap, "0.%.*s%s", -v.e - n, "000000000000000000000000", d);
    } else {
        snprintf(dst, cap, "%se%d", d, v.e);
    }
}

/* ---- number words ---- */

#define NO_ALT                                                                                     \
    {                                                                                              \
        0, 1                                                                                       \
    }

static const struct cdt__numword numwords[] = {
    {"zero", CDT__NW_UNIT, false, false, 0, NO_ALT},
    {"nought", CDT__NW_UNIT, false, false, 0, NO_ALT},
    {"one", CDT__NW_UNIT, false, true, 1, NO_ALT},
    {"two", CDT__NW_UNIT, false, false, 2, NO_ALT},
    {"three", CDT__NW_UNIT, false, false, 3, NO_ALT},
    {"four", CDT__NW_UNIT, false, false, 4, NO_ALT},
    {"five", CDT__NW_UNIT, false, false, 5, NO_ALT},
    {"six", CDT__NW_UNIT, false, false, 6, NO_ALT},
    {"seven", CDT__NW_UNIT, false, false, 7, NO_ALT},
    {"eight", CDT__NW_UNIT, false, false, 8, NO_ALT},
    {"nine", CDT__NW_UNIT, false, false, 9, NO_ALT},
    {"first", CDT__NW_UNIT, true, true, 1, NO_ALT},
    {"second", CDT__NW_UNIT, true, true, 2, NO_ALT},
    {"third", CDT__NW_UNIT, true, false, 3, NO_ALT},
    {"fourth", CDT__NW_UNIT, true, false, 4, NO_ALT},
    {"fifth", CDT__NW_UNIT, true, false, 5, NO_ALT},
    {"sixth", CDT__NW_UNIT, true, false, 6, NO_ALT},
    {"seventh", CDT__NW_UNIT, true, false, 7, NO_ALT},
    {"eighth", CDT__NW_UNIT, true, false, 8, NO_ALT},
    {"ninth", CDT__NW_UNIT, true, false, 9, NO_ALT},
    {"ten", CDT__NW_TEEN, false, false, 10, NO_ALT},
    {"eleven", CDT__NW_TEEN, false, false, 11, NO_ALT},
    {"twelve", CDT__NW_TEEN, false, false, 12, NO_ALT},
    {"thirteen", CDT__NW_TEEN, false, false, 13, NO_ALT},
    {"fourteen", CDT__NW_TEEN, false, false, 14, NO_ALT},
    {"fifteen", CDT__NW_TEEN, false, false, 15, NO_ALT},
    {"sixteen", CDT__NW_TEEN, false, false, 16, NO_ALT},
    {"seventeen", CDT__NW_TEEN, false, false, 17, NO_ALT},
    {"eighteen", CDT__NW_TEEN, false, false, 18, NO_ALT},
    {"nineteen", CDT__NW_TEEN, false, false, 19, NO_ALT},
    {"tenth", CDT__NW_TEEN, true, false, 10, NO_ALT},
    {"eleventh", CDT__NW_TEEN, true, false, 11, NO_ALT},
    {"twelfth", CDT__NW_TEEN, true, false, 12, NO_ALT},
    {"thirteenth", CDT__NW_TEEN, true, false, 13, NO_ALT},
    {"fourteenth", CDT__NW_TEEN, true, false, 14, NO_ALT},
    {"fifteenth", CDT__NW_TEEN, true, false, 15, NO_ALT},
    {"sixteenth", CDT__NW_TEEN, true, false, 16, NO_ALT},
    {"seventeenth", CDT__NW_TEEN, true, false, 17, NO_ALT},
    {"eighteenth", CDT__NW_TEEN, true, false, 18, NO_ALT},
    {"nineteenth", CDT__NW_TEEN, true, false, 19, NO_ALT},
    {"twenty", CDT__NW_TENS, false, false, 20, NO_ALT},
    {"thirty", CDT__NW_TENS, false, false, 30, NO_ALT},
    {"forty", CDT__NW_TENS, false, false, 40, NO_ALT},
    {"fourty", CDT__NW_TENS, false, false, 40, NO_ALT},
    {"fifty", CDT__NW_TENS, false, false, 50, NO_ALT},
    {"sixty", CDT__NW_TENS, false, false, 60, NO_ALT},
    {"seventy", CDT__NW_TENS, false, false, 70, NO_ALT},
    {"eighty", CDT__NW_TENS, false, false, 80, NO_ALT},
    {"ninety", CDT__NW_TENS, false, false, 90, NO_ALT},
    {"twentieth", CDT__NW_TENS, true, false, 20, NO_ALT},
    {"thirtieth", CDT__NW_TENS, true, false, 30, NO_ALT},
    {"fortieth", CDT__NW_TENS, true, false, 40, NO_ALT},
    {"fiftieth", CDT__NW_TENS, true, false, 50, NO_ALT},
    {"sixtieth", CDT__NW_TENS, true, false, 60, NO_ALT},
    {"seventieth", CDT__NW_TENS, true, false, 70, NO_ALT},
    {"eightieth", CDT__NW_TENS, true, false, 80, NO_ALT},
    {"ninetieth", CDT__NW_TENS, true, false, 90, NO_ALT},
    {"hundred", CDT__NW_HUNDRED, false, false, 100, NO_ALT},
    {"hundredth", CDT__NW_HUNDRED, true, false, 100, NO_ALT},
    {"dozen", CDT__NW_HUNDRED, false, false, 12, NO_ALT},
    {"thousand", CDT__NW_SCALE, false, false, 1000, NO_ALT},
    {"thousandth", CDT__NW_SCALE, true, false, 1000, NO_ALT},
    {"million", CDT__NW_SCALE, false, false, 1000000, NO_ALT},
    {"millionth", CDT__NW_SCALE, true, false, 1000000, NO_ALT},
    {"billion", CDT__NW_SCALE, false, false, 1000000000, NO_ALT},
    {"billionth", CDT__NW_SCALE, true, false, 1000000000, NO_ALT},
    {"trillion", CDT__NW_SCALE, false, false, 1000000000000ULL, NO_ALT},
    /* Weak: numbers, or parts of one, that often are not; they support an output
     * number but need not survive. */
    {"half", CDT__NW_WEAK, false, true, 2, {5, -1}},
    {"halves", CDT__NW_WEAK, false, true, 2, NO_ALT},
    {"quarter", CDT__NW_WEAK, false, true, 4, {25, -2}},
    {"quarters", CDT__NW_WEAK, false, true, 4, NO_ALT},
    {"thirds", CDT__NW_WEAK, false, true, 3, NO_ALT},
    {"fourths", CDT__NW_WEAK, false, true, 4, NO_ALT},
    {"fifths", CDT__NW_WEAK, false, true, 5, NO_ALT},
    {"noon", CDT__NW_WEAK, false, true, 12, NO_ALT},
    {"midday", CDT__NW_WEAK, false, true, 12, NO_ALT},
    {"midnight", CDT__NW_WEAK, false, true, 12, {0, 0}},
    {"twenties", CDT__NW_WEAK, false, true, 20, {192, 1}},
    {"thirties", CDT__NW_WEAK, false, true, 30, {193, 1}},
    {"forties", CDT__NW_WEAK, false, true, 40, {194, 1}},
    {"fifties", CDT__NW_WEAK, false, true, 50, {195, 1}},
    {"sixties", CDT__NW_WEAK, false, true, 60, {196, 1}},
    {"seventies", CDT__NW_WEAK, false, true, 70, {197, 1}},
    {"eighties", CDT__NW_WEAK, false, true, 80, {198, 1}},
    {"nineties", CDT__NW_WEAK, false, true, 90, {199, 1}},
};

static const struct cdt__numword *find_numword(const char *key)
{
    for (size_t i = 0; i < N(numwords); i++)
        if (key[0] == numwords[i].w[0] && strcmp(key, numwords[i].w) == 0)
            return &numwords[i];
    return NULL;
}

static uint32_t decode(const unsigned char *s, size_t *len)
{
    size_t avail = 0;
    int n;

    while (avail < 4 && s[avail])
        avail++;
    n = avail ? cdt_utf8_char((const char *)s, avail) : 0;

    if (n <= 0) {
        *len = 1;
        return 0xFFFD;
    }
    *len = (size_t)n;
    switch (n) {
    case 1:
        return s[0];
    case 2:
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3:
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
               (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    }
}

/* Lower case for the scripts whose names are capitalised most often: ASCII,
 * Latin-1, Latin Extended-A, Greek, Cyrillic. */
static uint32_t fold(uint32_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if (((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) && c % 2 == 0)
        return c + 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && c % 2 == 1)
        return c + 1;
    if (c == 0x178)
        return 0xFF;
    return c;
}

static size_t encode(uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12);
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | c >> 18);
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static bool is_space(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == 0xA0 ||
           (c >= 0x2000 && c <= 0x200B) || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static bool is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

/* Letters: ASCII ones, and everything outside ASCII but punctuation and symbols
 * (invalid bytes included, as split_words counts them). */
static bool is_letter(uint32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (c >= 0x80 && c <= 0xBF)
        return c == 0xAA || c == 0xB5 || c == 0xBA;
    if (c == 0xD7 || c == 0xF7 || (c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
        (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF0F) ||
        (c >= 0xFF1A && c <= 0xFF20) || (c >= 0x1F000 && c <= 0x1FAFF))
        return false;
    return true;
}

/* Ideographs and kana are words of their own (no spaces in those scripts). */
static bool is_alone(uint32_t c)
{
    return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF);
}

static bool sentence_end(uint32_t c)
{
    return c == '.' || c == '?' || c == '!' || c == ':' || c == '\n' || c == 0x2026 ||
           c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF0E;
}

static bool opener(uint32_t c)
{
    return c == '"' || c == '(' || c == '[' || c == '{' || c == 0x201C || c == 0x2018 ||
           c == 0xAB || c == 0xBF || c == 0xA1;
}

static struct cdt__tok *tok_add(struct cdt__spoken *x, unsigned char kind, size_t off, bool initial)
{
    struct cdt__tok *t;

    if (x->n == x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        struct cdt__tok *nt = realloc(x->t, ncap * sizeof(*nt));

        if (!nt)
            return NULL;
        x->t = nt;
        x->cap = ncap;
    }
    t = &x->t[x->n++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->off = off;
    t->phrase = -1;
    t->initial = initial;
    if (kind != CDT__TK_PUNCT)
        t->word = x->nwords++;
    return t;
}

/* A written number: digits with inner ',', '.', '-', ':' or '/' ("1,000", "1.5",
 * "555-1234", "10:30"), maybe a leading '.' (".5"). */
static void parse_number(const char *s, size_t n, struct cdt__tok *t)
{
    size_t glen[CDT__MAX_GROUPS + 1], ng = 0, len = 0, ncomma = 0, ndot = 0, nother = 0;
    char last_sep = 0;
    bool thousands = true;
    struct digits d = {0};

    for (size_t i = 0; i <= n; i++) {
        if (i < n && is_digit((unsigned char)s[i])) {
            len++;
            continue;
        }
        if (ng < N(glen))
            glen[ng] = len;
        ng++;
        len = 0;
        if (i < n) {
            ncomma += s[i] == ',';
            ndot += s[i] == '.';
            nother += s[i] != ',' && s[i] != '.';
            last_sep = s[i];
        }
    }
    /* 1,000 and 1,234.5: groups of three after the first. */
    for (size_t g = 1; g < ng && g < N(glen) && g <= ncomma; g++)
        thousands = thousands && glen[g] == 3;
    if (ng > N(glen) || (ncomma > 0 && (!thousands || glen[0] == 0 || glen[0] > 3)) || nother > 0 ||
        ndot > 1 || (ndot == 1 && ncomma > 0 && last_sep != '.')) {
        /* Grouped: the digits run together, and each group. */
        size_t g = 0;

        t->grouped = true;
        t->ngroups = (unsigned char)(ng > CDT__MAX_GROUPS ? 0 : ng);
        memset(&d, 0, sizeof(d));
        for (size_t i = 0; i < n; i++)
            if (is_digit((unsigned char)s[i]))
                digits_add(&d, (unsigned)(s[i] - '0'));
        t->val = digits_value(&d);
        memset(&d, 0, sizeof(d));
        for (size_t i = 0; i <= n && t->ngroups; i++) {
            if (i < n && is_digit((unsigned char)s[i])) {
                digits_add(&d, (unsigned)(s[i] - '0'));
                continue;
            }
            t->groups[g++] = digits_value(&d);
            memset(&d, 0, sizeof(d));
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.')
            d.frac = 1;
        else if (is_digit((unsigned char)s[i]))
            digits_add(&d, (unsigned)(s[i] - '0'));
    }
    t->val = digits_value(&d);
}

/* The key of s[0..n): folded, ’ as ', a possessive 's dropped, cut at CDT__KEY_MAX. */
static void make_key(const char *s, size_t n, char *key, bool *cap)
{
    size_t o = 0;

    *cap = false;
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t c = decode((const unsigned char *)s + i, &len), f;
        char buf[4];
        size_t bl;

        if (i + len > n)
            len = n - i;
        f = c == 0x2019 ? '\'' : fold(c);
        if (i == 0)
            *cap = f != c && c != 0x2019;
        if (c == 0xFFFD) {
            buf[0] = s[i];
            bl = 1;
        } else {
            bl = encode(f, buf);
        }
        if (o + bl >= CDT__KEY_MAX)
            break;
        memcpy(key + o, buf, bl);
        o += bl;
        i += len;
    }
    if (o >= 2 && key[o - 1] == 's' && key[o - 2] == '\'')
        o -= 2;
    key[o] = '\0';
}

static bool after_is(const char *s, size_t i, bool (*pred)(uint32_t))
{
    size_t len;

    return s[i] && pred(decode((const unsigned char *)s + i, &len));
}

/* Cuts the text into tokens. Returns false when out of memory. */
static bool tokenize(struct cdt__spoken *x)
{
    const char *s = x->s;
    size_t i = 0;
    bool initial = true;

    while (s[i]) {
        size_t len, start = i;
        uint32_t c = decode((const unsigned char *)s + i, &len);
        struct cdt__tok *t;

        if (is_space(c)) {
            i += len;
            continue;
        }
        if (is_digit(c) || (c == '.' && is_digit((unsigned char)s[i + 1]) &&
                            (i == 0 || !is_digit((unsigned char)s[i - 1])))) {
            size_t e = i + 1, suf_at = 0, suf_len = 0;
            char suf[CDT__KEY_MAX];

            while (is_digit((unsigned char)s[e]) ||
                   (s[e] && strchr(",.-:/", s[e]) && is_digit((unsigned char)s[e + 1])))
                e++;
            if (!(t = tok_add(x, CDT__TK_NUM, i, initial)))
                return false;
            parse_number(s + i, e - i, t);
            i = e;
            if (s[i] == '%')
                i++;
            if ((s[i] == '\'' && s[i + 1] == 's') || strncmp(s + i, "\xE2\x80\x99s", 4) == 0)
                i += s[i] == '\'' ? 2 : 4;
            for (e = i; (s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z');)
                e++;
            if (e > i) {
                bool cap;
                struct cdt__nv scaled = t->val;
                uint64_t k;

                make_key(s + i, e - i, suf, &cap);
                k = !strcmp(suf, "k")                         ? 1000
                    : !strcmp(suf, "m") || !strcmp(suf, "mm") ? 1000000
                    : !strcmp(suf, "b") || !strcmp(suf, "bn") ? 1000000000
                                                              : 0;
                if (!strcmp(suf, "st") || !strcmp(suf, "nd") || !strcmp(suf, "rd") ||
                    !strcmp(suf, "th") || !strcmp(suf, "s")) {
                    t->ordinal = suf[0] != 's'; /* "3rd"; "1990s" is a plural */
                    i = e;
                } else {
                    if (k && !t->grouped && nv_scale(&scaled, k)) {
                        t->alt = scaled;
                        t->has_alt = true;
                    }
                    suf_at = i;
                    suf_len = e - i;
                }
            }
            t->len = i - t->off;
            initial = false;
            if (suf_len) {
                /* "5pm": the unit is a word of its own (t may move here) */
                if (!(t = tok_add(x, CDT__TK_WORD, suf_at, false)))
                    return false;
                t->suffix = true;
                t->len = suf_len;
                memcpy(t->key, suf, strlen(suf) + 1);
                i = suf_at + suf_len;
            }
            continue;
        }
        if (is_letter(c) || c == 0xFFFD) {
            size_t e = i;

            if (is_alone(c)) {
                e += len;
            } else {
                for (;;) {
                    size_t l;
                    uint32_t d = decode((const unsigned char *)s + e, &l);

                    if (!s[e])
                        break;
                    if ((is_letter(d) && !is_alone(d)) || d == 0xFFFD || is_digit(d)) {
                        e += l;
                    } else if ((d == '\'' || d == 0x2019) &&
                               after_is(s, e + l, is_letter)) { /* inner apostrophe */
                        e += l;
                    } else {
                        break;
                    }
                }
            }
            if (!(t = tok_add(x, CDT__TK_WORD, i, initial)))
                return false;
            t->len = e - i;
            make_key(s + i, e - i, t->key, &t->cap);
            t->nw = find_numword(t->key);
            initial = false;
            i = e;
            continue;
        }
        /* Punctuation. A hyphen inside a word ("twenty-five", "Jean-Luc") only
         * separates. */
        i += len;
        if (c == '-' && start > 0 && s[i] &&
            (is_letter((unsigned char)s[start - 1]) || (unsigned char)s[start - 1] >= 0x80) &&
            after_is(s, i, is_letter))
            continue;
        if (!(t = tok_add(x, CDT__TK_PUNCT, start, false)))
            return false;
        t->len = len;
        if (c < 0x80)
            t->punct = (char)c;
        else if (sentence_end(c))
            t->punct = '.';
        else if (c >= 0x2010 && c <= 0x2015)
            t->punct = '-';
        else if (opener(c) || c == 0x201D || c == 0xBB)
            t->punct = '"';
        else
            t->punct = '#';
        if (sentence_end(c) || opener(c))
            initial = true;
    }
    return true;
}

/* ---- number phrases ---- */

bool cdt__spoken_is(const struct cdt__spoken *x, size_t i, const char *k)
{
    return i < x->n && x->t[i].kind == CDT__TK_WORD && strcmp(x->t[i].key, k) == 0;
}

/* "oh" (or "o") said for a zero digit: "nineteen oh five". */
static bool is_oh(const struct cdt__spoken *x, size_t i)
{
    return cdt__spoken_is(x, i, "oh") || cdt__spoken_is(x, i, "o");
}

/* A number word of class cls (0: any but weak). */
static bool numword_at(const struct cdt__spoken *x, size_t i, int cls)
{
    const struct cdt__numword *w = i < x->n && x->t[i].kind == CDT__TK_WORD ? x->t[i].nw : NULL;

    return w && w->cls != CDT__NW_WEAK && (cls == 0 || w->cls == cls);
}

/* "twenties" … "nineties" */
static bool decade_at(const struct cdt__spoken *x, size_t i)
{
    const struct cdt__numword *w = i < x->n && x->t[i].kind == CDT__TK_WORD ? x->t[i].nw : NULL;

    return w && w->cls == CDT__NW_WEAK && w->v >= 20 && w->v % 10 == 0;
}

static bool small_at(const struct cdt__spoken *x, size_t i)
{
    return numword_at(x, i, CDT__NW_UNIT) || numword_at(x, i, CDT__NW_TEEN) ||
           numword_at(x, i, CDT__NW_TENS);
}

static bool big_at(const struct cdt__spoken *x, size_t i)
{
    return numword_at(x, i, CDT__NW_HUNDRED) || numword_at(x, i, CDT__NW_SCALE);
}

static bool is_a(const struct cdt__spoken *x, size_t i)
{
    return cdt__spoken_is(x, i, "a") || cdt__spoken_is(x, i, "an");
}

static bool phrase_add(struct cdt__spoken *x, struct cdt__phrase *p)
{
    if (x->np == x->pcap) {
        size_t ncap = x->pcap ? x->pcap * 2 : 16;
        struct cdt__phrase *np = realloc(x->p, ncap * sizeof(*np));

        if (!np)
            return false;
        x->p = np;
        x->pcap = ncap;
    }
    for (size_t k = p->a; k < p->b; k++)
        x->t[k].phrase = (int)x->np;
    x->p[x->np++] = *p;
    return true;
}

/* Where the phrase that starts at token i ends (see the file comment). */
static size_t phrase_end(const struct cdt__spoken *x, size_t i, struct cdt__phrase *p)
{
    size_t j = i + 1;

    if (x->t[i].kind == CDT__TK_NUM) {
        /* "5 million", "1.5 thousand" */
        while (!x->t[i].grouped && !x->t[j - 1].ordinal && big_at(x, j) && j - i < 4)
            j++;
        return j;
    }
    if (cdt__spoken_is(x, i, "point"))
        p->point = i;
    while (j < x->n && j - i < CRIT_PHRASE_MAX) {
        const struct cdt__tok *prev = &x->t[j - 1];

        if (prev->nw && prev->nw->ordinal)
            break;
        if (p->point != SIZE_MAX) {
            /* fraction digits, then maybe a scale: "one point five million" */
            if ((numword_at(x, j, CDT__NW_UNIT) && !x->t[j].nw->ordinal && !big_at(x, j - 1)) ||
                (is_oh(x, j) && !big_at(x, j - 1)) || (big_at(x, j) && j > p->point + 1)) {
                j++;
                continue;
            }
            break;
        }
        if (numword_at(x, j, 0)) {
            j++;
            continue;
        }
        if (decade_at(x, j) && numword_at(x, j - 1, CDT__NW_TEEN))
            return j + 1; /* "nineteen fifties" */
        if (cdt__spoken_is(x, j, "and") && (numword_at(x, j - 1, 0) || prev->kind == CDT__TK_NUM)) {
            if (big_at(x, j - 1) && small_at(x, j + 1)) {
                j++; /* "four hundred and fifty" */
                continue;
            }
            if (cdt__spoken_is(x, j + 1, "a") && cdt__spoken_is(x, j + 2, "half")) {
                p->half = true;
                return j + 3;
            }
            break;
        }
        if (cdt__spoken_is(x, j, "point") && numword_at(x, j - 1, 0) && !prev->nw->ordinal &&
            (numword_at(x, j + 1, CDT__NW_UNIT) || is_oh(x, j + 1))) {
            p->point = j++;
            continue;
        }
        if (is_oh(x, j) && small_at(x, j - 1) && small_at(x, j + 1)) {
            j++;
            continue;
        }
        /* A zero that ends digits said one by one: "four six five oh" (a phone
         * number), not "five oh" alone ("at five, oh, …" has its comma). */
        if (is_oh(x, j) && j >= i + 2 && numword_at(x, j - 1, CDT__NW_UNIT) &&
            numword_at(x, j - 2, CDT__NW_UNIT) && !x->t[j - 1].nw->ordinal) {
            j++;
            continue;
        }
        break;
    }
    return j;
}

static bool find_phrases(struct cdt__spoken *x)
{
    for (size_t i = 0; i < x->n;) {
        struct cdt__phrase p = {i, i + 1, SIZE_MAX, false, false, 0, {{0, 0}, {0, 0}}};
        const struct cdt__tok *t = &x->t[i];

        if (t->kind == CDT__TK_NUM || numword_at(x, i, 0) || (is_a(x, i) && big_at(x, i + 1)) ||
            (cdt__spoken_is(x, i, "point") &&
             (numword_at(x, i + 1, CDT__NW_UNIT) || is_oh(x, i + 1)))) {
            p.b = phrase_end(x, i, &p);
            p.weak = p.b == i + 1 && t->nw && t->nw->weak_alone;
        } else if (t->nw && t->nw->cls == CDT__NW_WEAK) {
            p.weak = true;
        } else {
            i++;
            continue;
        }
        if (!phrase_add(x, &p))
            return false;
        i = p.b;
    }
    return true;
}

/* The value of tokens [i, j) read as one number ("four hundred and fifty" 450,
 * "a hundred" 100, "twenty third" 23, "5 million"); false when they are not one. */
static bool sum_of(const struct cdt__spoken *x, size_t i, size_t j, struct cdt__nv *out)
{
    uint64_t total = 0, cur = 0, last_scale = UINT64_MAX;
    int last = 0;
    bool any = false;

    if (i >= j)
        return false;
    if (x->t[i].kind == CDT__TK_NUM) {
        struct cdt__nv v = x->t[i].val;

        if (x->t[i].grouped)
            return false;
        for (size_t k = i + 1; k < j; k++)
            if (!big_at(x, k) || !nv_scale(&v, x->t[k].nw->v))
                return false;
        *out = v;
        return true;
    }
    for (size_t k = i; k < j; k++) {
        const struct cdt__numword *w = x->t[k].kind == CDT__TK_WORD ? x->t[k].nw : NULL;

        if (cdt__spoken_is(x, k, "and")) {
            if ((last != CDT__NW_HUNDRED && last != CDT__NW_SCALE) || k + 1 >= j)
                return false;
            continue;
        }
        if (is_a(x, k)) {
            if (k != i || !big_at(x, k + 1))
                return false;
            cur = 1;
            last = CDT__NW_UNIT;
            continue;
        }
        if (!w || w->cls == CDT__NW_WEAK || (w->ordinal && k + 1 != j))
            return false;
        switch (w->cls) {
        case CDT__NW_UNIT:
            if (last == CDT__NW_UNIT || last == CDT__NW_TEEN || (w->v == 0 && j - i > 1))
                return false;
            cur += w->v;
            break;
        case CDT__NW_TEEN:
        case CDT__NW_TENS:
            if (last == CDT__NW_UNIT || last == CDT__NW_TEEN || last == CDT__NW_TENS)
                return false;
            cur += w->v;
            break;
        case CDT__NW_HUNDRED:
            if (last == CDT__NW_HUNDRED || last == CDT__NW_SCALE || (last == 0 && k != i) ||
                cur >= 100)
                return false;
            cur = (cur ? cur : 1) * w->v;
            break;
        default: /* CDT__NW_SCALE */
            if (w->v >= last_scale || (last == 0 && k != i) || (last != 0 && cur == 0))
                return false;
            cur = cur ? cur : 1;
            if (cur > CRIT_NUM_CAP / w->v || total + cur * w->v > CRIT_NUM_CAP)
                return false;
            total += cur * w->v;
            cur = 0;
            last_scale = w->v;
            break;
        }
        last = w->cls;
        any = true;
    }
    if (!any)
        return false;
    *out = nv_make(total + cur, 0);
    return true;
}

/* [i, j) as a number below 100 for a year pair: "nineteen", "sixty one", "oh five"
 * (*zero set). */
static bool pair_half(const struct cdt__spoken *x, size_t i, size_t j, uint64_t *v, bool *zero)
{
    struct cdt__nv s;

    *zero = false;
    if (j - i == 2 && (is_oh(x, i) || (numword_at(x, i, CDT__NW_UNIT) && x->t[i].nw->v == 0)) &&
        numword_at(x, i + 1, CDT__NW_UNIT) && !x->t[i + 1].nw->ordinal) {
        *zero = true;
        *v = x->t[i + 1].nw->v;
        return true;
    }
    for (size_t k = i; k < j; k++)
        if (!small_at(x, k))
            return false;
    return sum_of(x, i, j, &s) && nv_int(s, v) && *v < 100;
}

struct readings {
    struct cdt__nv v[CRIT_READINGS];
    int n;
};

static void reading_add(struct readings *r, struct cdt__nv v)
{
    if (r->n < CRIT_READINGS)
        r->v[r->n++] = v;
}

/* The digits of [i, j) said one by one or in small groups ("five five five one
 * two three four", "nineteen sixty one", "oh"): greedy longest groups. */
static bool digits_of(const struct cdt__spoken *x, size_t i, size_t j, struct cdt__nv *out)
{
    struct digits d = {0};
    int groups = 0;
    uint64_t w;

    for (size_t k = i; k < j;) {
        size_t best = 0;
        struct cdt__nv s;

        if (is_oh(x, k)) {
            digits_add(&d, 0);
            k++;
            groups++;
            continue;
        }
        for (size_t e = k + 1; e <= j && e <= k + 3; e++) {
            if (!small_at(x, e - 1))
                break;
            if (sum_of(x, k, e, &s))
                best = e;
        }
        if (!best)
            return false;
        if (sum_of(x, k, best, &s) && nv_int(s, &w) && w > 0)
            digits_add_number(&d, w);
        else
            digits_add(&d, 0);
        k = best;
        groups++;
    }
    if (groups < 2)
        return false;
    *out = digits_value(&d);
    return true;
}

/* "one point five" 1.5, "point five" 0.5, "two point five million". */
static bool decimal_of(const struct cdt__spoken *x, const struct cdt__phrase *p, size_t i, size_t j,
                       struct cdt__nv *out)
{
    struct digits d = {0};
    struct cdt__nv whole = {0, 0};
    size_t k;
    int fr = 0;
    uint64_t w = 0;

    if (p->point == SIZE_MAX || p->point < i || p->point >= j)
        return false;
    if (p->point > i && (!sum_of(x, i, p->point, &whole) || !nv_int(whole, &w)))
        return false;
    if (w)
        digits_add_number(&d, w);
    d.frac = 1;
    for (k = p->point + 1; k < j && (is_oh(x, k) || numword_at(x, k, CDT__NW_UNIT)); k++, fr++)
        digits_add(&d, is_oh(x, k) ? 0 : (unsigned)x->t[k].nw->v);
    if (fr == 0)
        return false;
    *out = digits_value(&d);
    for (; k < j; k++)
        if (!big_at(x, k) || !nv_scale(out, x->t[k].nw->v))
            return false;
    return true;
}

/* All readings of tokens [i, j) of phrase p. */
static void readings_of(const struct cdt__spoken *x, const struct cdt__phrase *p, size_t i,
                        size_t j, struct readings *r)
{
    struct cdt__nv v;
    uint64_t w;

    r->n = 0;
    if (j - i == 1) {
        const struct cdt__tok *t = &x->t[i];

        if (t->kind == CDT__TK_NUM) {
            reading_add(r, t->val);
            if (t->has_alt)
                reading_add(r, t->alt);
            for (int g = 0; g < t->ngroups; g++)
                reading_add(r, t->groups[g]);
        } else if (t->nw) {
            reading_add(r, nv_make(t->nw->v, 0));
            if (t->nw->alt.m || t->nw->alt.e != 1)
                reading_add(r, t->nw->alt);
        }
    }
    if (j - i > 1 && sum_of(x, i, j, &v))
        reading_add(r, v);
    if (j - i == 2 && numword_at(x, i, CDT__NW_TEEN) && decade_at(x, i + 1))
        reading_add(r, nv_make(x->t[i].nw->v * 100 + x->t[i + 1].nw->v, 0));
    if (decimal_of(x, p, i, j, &v))
        reading_add(r, v);
    if (p->half && j == p->b && j - i >= 4 && sum_of(x, i, j - 3, &v) && nv_int(v, &w) &&
        w <= CRIT_NUM_CAP / 10)
        reading_add(r, nv_make(w * 10 + 5, -1));
    if (j - i <= CRIT_RANGE_MAX) {
        for (size_t k = i + 1; k < j; k++) {
            uint64_t left, right;
            bool z1, z2;

            if (pair_half(x, i, k, &left, &z1) && !z1 && left >= 1 &&
                pair_half(x, k, j, &right, &z2) && (right >= 10 || z2)) {
                reading_add(r, nv_make(left * 100 + right, 0));
                if (!z2)
                    reading_add(r, nv_make(left * 100 + right, -2));
            }
        }
    }
    if (j - i > 1 && digits_of(x, i, j, &v))
        reading_add(r, v);
    if (i == p->a && j == p->b)
        for (int k = 0; k < p->nextra; k++)
            reading_add(r, p->extra[k]);
}

/* May a reading end between tokens c-1 and c? Never inside what a speaker says as
 * one number: before "hundred"/a scale, around "and", "a", "point", after "oh",
 * in a fraction, in "twenty five", after "hundred" before its smaller part. */
static bool cut_ok(const struct cdt__spoken *x, const struct cdt__phrase *p, size_t c)
{
    if (c <= p->a || c >= p->b)
        return true;
    if (big_at(x, c) || cdt__spoken_is(x, c, "and") || cdt__spoken_is(x, c - 1, "and") ||
        is_a(x, c) || is_a(x, c - 1) || cdt__spoken_is(x, c, "point") ||
        cdt__spoken_is(x, c - 1, "point") || is_oh(x, c - 1) || cdt__spoken_is(x, c, "half") ||
        decade_at(x, c))
        return false;
    if (p->point != SIZE_MAX && c > p->point)
        return false;
    if (numword_at(x, c - 1, CDT__NW_TENS) && numword_at(x, c, CDT__NW_UNIT))
        return false;
    if (big_at(x, c - 1) && small_at(x, c))
        return false;
    return true;
}

static bool vals_add(struct cdt__spoken *x, struct cdt__nv v)
{
    if (x->nvals == x->vcap) {
        size_t ncap = x->vcap ? x->vcap * 2 : 64;
        struct cdt__nv *nv = realloc(x->vals, ncap * sizeof(*nv));

        if (!nv)
            return false;
        x->vals = nv;
        x->vcap = ncap;
    }
    x->vals[x->nvals++] = v;
    return true;
}

static bool vals_has(const struct cdt__spoken *x, struct cdt__nv v)
{
    return x->nvals && bsearch(&v, x->vals, x->nvals, sizeof(v), nv_cmp);
}

/* The readings of every range of every phrase that starts and ends where a
 * reading may (each_word: and each number word on its own), sorted. */
static bool collect_values(struct cdt__spoken *x, bool each_word)
{
    struct readings r;

    for (size_t q = 0; q < x->np; q++) {
        const struct cdt__phrase *p = &x->p[q];

        for (size_t i = p->a; i < p->b; i++) {
            if (!cut_ok(x, p, i))
                continue;
            for (size_t j = i + 1; j <= p->b; j++) {
                if (j - i > CRIT_RANGE_MAX && !(i == p->a && j == p->b))
                    continue;
                if (!cut_ok(x, p, j))
                    continue;
                readings_of(x, p, i, j, &r);
                for (int k = 0; k < r.n; k++)
                    if (!vals_add(x, r.v[k]))
                        return false;
            }
        }
        for (size_t i = p->a; each_word && i < p->b; i++) {
            readings_of(x, p, i, i + 1, &r);
            for (int k = 0; k < r.n; k++)
                if (!vals_add(x, r.v[k]))
                    return false;
        }
    }
    if (x->nvals > 1)
        qsort(x->vals, x->nvals, sizeof(*x->vals), nv_cmp);
    return true;
}

/* Is range [i, j) of p spelled by one of `other`'s values? A grouped number
 * (555-1234) is when its digits run together are, or each of its groups (all-zero
 * groups aside: "5:00"). */
static bool range_in(const struct cdt__spoken *x, const struct cdt__phrase *p, size_t i, size_t j,
                     const struct cdt__spoken *other)
{
    struct readings r;
    const struct cdt__tok *t = &x->t[i];

    if (j - i == 1 && t->kind == CDT__TK_NUM && t->grouped) {
        bool all = t->ngroups > 0;

        if (vals_has(other, t->val))
            return true;
        for (int g = 0; g < t->ngroups && all; g++)
            all = t->groups[g].m == 0 || vals_has(other, t->groups[g]);
        return all;
    }
    readings_of(x, p, i, j, &r);
    for (int k = 0; k < r.n; k++)
        if (vals_has(other, r.v[k]))
            return true;
    return false;
}

/* May the model leave out token i of the input (a number word before a correction
 * cue or in it, or said twice)? What follows a cue is the correction: it stays. */
bool cdt__spoken_excused(const struct cdt__spoken *x, size_t i)
{
    size_t w = x->t[i].word;

    return x->near_cue && x->t[i].kind != CDT__TK_PUNCT &&
           ((x->near_cue[w] && !(x->after_cue && x->after_cue[w])) || x->repeat[w]);
}

/* Does `other` say phrase p of x word for word (the same number words and written
 * numbers, in any case)? */
static bool said_alike(const struct cdt__spoken *x, const struct cdt__phrase *p,
                       const struct cdt__spoken *other)
{
    for (size_t q = 0; q < other->np; q++) {
        const struct cdt__phrase *o = &other->p[q];
        bool same = o->b - o->a == p->b - p->a;

        for (size_t k = 0; same && k < p->b - p->a; k++) {
            const struct cdt__tok *a = &x->t[p->a + k], *b = &other->t[o->a + k];

            same =
                a->kind == b->kind &&
                (a->kind == CDT__TK_WORD ? strcmp(a->key, b->key) == 0
                 : a->kind == CDT__TK_PUNCT
                     ? a->punct == b->punct
                     : a->len == b->len && memcmp(x->s + a->off, other->s + b->off, a->len) == 0);
        }
        if (same)
            return true;
    }
    return false;
}

/* Can p be cut into ranges each spelled by `other`, or excused (input only)? A
 * phrase the other text says word for word is, whatever it reads: a run with no
 * one reading and no place to cut ("five hundred five hundred") spells nothing,
 * yet is not changed when given back as it is (looked for only when the cuts
 * fail, which is rare: the look-up scans the other text's phrases). Returns 1, 0
 * or CDT_ENOMEM. */
int cdt__spoken_phrase_in(const struct cdt__spoken *x, const struct cdt__phrase *p,
                          const struct cdt__spoken *other)
{
    size_t n = p->b - p->a;
    bool *reach = calloc(n + 1, 1);
    int yes;

    if (!reach)
        return CDT_ENOMEM;
    reach[0] = true;
    for (size_t c = 0; c < n; c++) {
        if (!reach[c])
            continue;
        for (size_t j = c + 1; j <= n; j++) {
            if (j - c > CRIT_RANGE_MAX && !(c == 0 && j == n))
                continue;
            if (!reach[j] && cut_ok(x, p, p->a + j) && range_in(x, p, p->a + c, p->a + j, other))
                reach[j] = true;
        }
        for (size_t j = c; j < n && cdt__spoken_excused(x, p->a + j); j++)
            if (cut_ok(x, p, p->a + j + 1))
                reach[j + 1] = true;
    }
    yes = reach[n] || said_alike(x, p, other);
    free(reach);
    return yes;
}

static const char *const money_units[] = {"dollar", "dollars", "buck",  "bucks",
                                          "euro",   "euros",   "pound", "pounds"};

/* Is token k a money unit ("dollars", "euro")? */
static bool money_unit_at(const struct cdt__spoken *x, size_t k)
{
    for (size_t u = 0; u < N(money_units); u++)
        if (cdt__spoken_is(x, k, money_units[u]))
            return true;
    return false;
}

static bool cents_at(const struct cdt__spoken *x, size_t k)
{
    return cdt__spoken_is(x, k, "cent") || cdt__spoken_is(x, k, "cents");
}

/* "fifty cents" also reads 0.5, and "five dollars and fifty cents" 5.5. */
static void money(struct cdt__spoken *x)
{
    for (size_t q = 0; q < x->np; q++) {
        struct cdt__phrase *p = &x->p[q], *c;
        struct readings r, rc;
        size_t k = p->b;
        uint64_t whole, cents;

        readings_of(x, p, p->a, p->b, &r);
        if (r.n == 0)
            continue;
        if (cents_at(x, k)) {
            struct cdt__nv v = r.v[0];

            v.e -= 2;
            if (p->nextra < 2)
                p->extra[p->nextra++] = v;
            continue;
        }
        if (!money_unit_at(x, k))
            continue;
        k += cdt__spoken_is(x, k + 1, "and") ? 2 : 1;
        if (q + 1 >= x->np || x->p[q + 1].a != k)
            continue;
        c = &x->p[q + 1];
        readings_of(x, c, c->a, c->b, &rc);
        if (rc.n && cents_at(x, c->b) && nv_int(rc.v[0], &cents) && cents < 100 &&
            nv_int(r.v[0], &whole) && whole < CRIT_NUM_CAP / 100) {
            struct cdt__nv v = nv_make(whole * 100 + cents, -2);

            if (p->nextra < 2)
                p->extra[p->nextra++] = v;
            if (c->nextra < 2)
                c->extra[c->nextra++] = v;
        }
    }
}

/* Is token k a currency sign written before a number ("€500")? */
static bool currency_sign(const struct cdt__spoken *x, size_t k)
{
    static const char *const signs[] = {"$", "\xE2\x82\xAC", "\xC2\xA3", "\xC2\xA5",
                                        "\xE2\x82\xB9"}; /* $ € £ ¥ ₹ */
    const struct cdt__tok *t = &x->t[k];

    for (size_t i = 0; t->kind == CDT__TK_PUNCT && i < N(signs); i++)
        if (t->len == strlen(signs[i]) && memcmp(x->s + t->off, signs[i], t->len) == 0)
            return true;
    return false;
}

size_t cdt__spoken_phrase_span(const struct cdt__spoken *x, size_t q, size_t *from, size_t *to)
{
    const struct cdt__phrase *p = &x->p[q];
    size_t k = p->b, last = p->b - 1, next = q + 1;

    *from = x->t[p->a].off;
    if (p->a > 0 && currency_sign(x, p->a - 1) && x->t[p->a - 1].off + x->t[p->a - 1].len == *from)
        *from = x->t[p->a - 1].off;
    if (money_unit_at(x, k)) {
        last = k++;
        /* "five dollars and fifty cents" */
        k += cdt__spoken_is(x, k, "and");
        if (next < x->np && x->p[next].a == k && cents_at(x, x->p[next].b)) {
            last = x->p[next].b;
            next++;
        }
    } else if (cents_at(x, k) || cdt__spoken_is(x, k, "percent")) {
        last = k;
    } else if (cdt__spoken_is(x, k, "per") && cdt__spoken_is(x, k + 1, "cent")) {
        last = k + 1;
    }
    *to = x->t[last].off + x->t[last].len;
    return next;
}

static bool numberish(const struct cdt__tok *t)
{
    return t->kind == CDT__TK_NUM ||
           (t->kind == CDT__TK_WORD &&
            ((t->nw && t->nw->cls != CDT__NW_WEAK) || !strcmp(t->key, "and")));
}

/* "four hundred and fifty, you know, one": a filler inside a number goes, so the
 * number reads as one (the deterministic pass leaves "you know"). */
static void drop_fillers(struct cdt__spoken *x)
{
    size_t o = 0;

    for (size_t i = 0; i < x->n; i++) {
        if (cdt__spoken_is(x, i, "you") && cdt__spoken_is(x, i + 1, "know")) {
            size_t before = o, next = i + 2;

            if (before > 0 && x->t[before - 1].kind == CDT__TK_PUNCT &&
                x->t[before - 1].punct == ',')
                before--;
            if (next < x->n && x->t[next].kind == CDT__TK_PUNCT && x->t[next].punct == ',')
                next++;
            if (before > 0 && numberish(&x->t[before - 1]) && numword_at(x, next, 0)) {
                o = before;
                i = next - 1;
                continue;
            }
        }
        x->t[o++] = x->t[i];
    }
    x->n = o;
    x->nwords = 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->t[i].kind != CDT__TK_PUNCT)
            x->t[i].word = x->nwords++;
}

void cdt__spoken_cleanup(struct cdt__spoken *x)
{
    free(x->t);
    free(x->p);
    free(x->keys);
    free(x->set);
    free(x->vals);
    free(x->near_cue);
    free(x->after_cue);
    free(x->restart);
    free(x->repeat);
    memset(x, 0, sizeof(*x));
}

/* The token's text for a reason: at most CRIT_SHOW_MAX bytes, whole valid UTF-8
 * characters only. */
void cdt__spoken_show_tok(char *dst, size_t cap, const struct cdt__spoken *x,
                          const struct cdt__tok *t)
{
    size_t o = 0;

    for (size_t i = 0; i < t->len && o + 5 < cap && o < CRIT_SHOW_MAX;) {
        int n = cdt_utf8_char(x->s + t->off + i, t->len - i);

        if (n <= 0) {
            i++;
            continue;
        }
        memcpy(dst + o, x->s + t->off + i, (size_t)n);
        o += (size_t)n;
        i += (size_t)n;
    }
    if (cap)
        dst[o < cap ? o : cap - 1] = '\0';
}

/* A phrase for a reason: a written number as written, a spoken one as digits. */
void cdt__spoken_show_phrase(char *dst, size_t cap, const struct cdt__spoken *x,
                             const struct cdt__phrase *p)
{
    struct readings r;

    readings_of(x, p, p->a, p->b, &r);
    if (x->t[p->a].kind == CDT__TK_NUM && p->b == p->a + 1)
        cdt__spoken_show_tok(dst, cap, x, &x->t[p->a]);
    else if (r.n > 0)
        nv_show(dst, cap, r.v[0]);
    else
        cdt__spoken_show_tok(dst, cap, x, &x->t[p->a]);
}

bool cdt__spoken_digit(const struct cdt__spoken *x, size_t i)
{
    return is_oh(x, i) || numword_at(x, i, CDT__NW_UNIT);
}

bool cdt__spoken_init(struct cdt__spoken *x, const char *s, bool each_word)
{
    memset(x, 0, sizeof(*x));
    x->s = s;
    if (!tokenize(x))
        return false;
    drop_fillers(x);
    if (!find_phrases(x))
        return false;
    money(x);
    return collect_values(x, each_word);
}
