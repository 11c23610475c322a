/* Fuzz target: the deterministic cleanup pass (cdt_cleanup_text), with its promise
 * as the oracle: no word of the input disappears unless it is a filler, a stutter or
 * a spoken punctuation word (cleanup.h lists what it may remove).
 *
 * A word here is a run of ASCII letters and digits and other UTF-8 bytes, split at
 * ASCII punctuation and at the punctuation the pass moves between tokens (curly
 * quotes, dashes, the ellipsis, ¿ ¡), compared in ASCII lower case. A word of the
 * input may be missing from the output (or there fewer times) only when it is
 * - a filler (um, uh, uhm, er, erm, ah, hm and their stretched spellings);
 * - a word of a spoken punctuation or layout command ("comma", "full stop", "new
 *   line", …);
 * - a repeated word (said at least twice in the input) that the output still has;
 * - a fragment: a proper prefix of another word of the input ("fu- fuzzy",
 *   "wh-what").
 * The output also adds no word the input lacks. Anything else aborts. */
#include "codictate/cleanup.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 2048

struct words {
    char *w[MAX_WORDS];
    size_t n;
    char *buf;
};

/* Bytes of a separator at s (0: none): ASCII other than letters and digits, or one
 * of the punctuation sequences the pass treats as pre/post (U+2010–U+203F, ¿, ¡). */
static size_t sep_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
                (s[0] >= '0' && s[0] <= '9'))
                   ? 0
                   : 1;
    if (s[0] == 0xE2 && s[1] == 0x80 && s[2] >= 0x80 && s[2] <= 0xBF)
        return 3;
    if (s[0] == 0xC2 && (s[1] == 0xBF || s[1] == 0xA1))
        return 2;
    return 0;
}

static void split(const char *text, struct words *ws)
{
    size_t len = strlen(text);
    unsigned char *b = malloc(len + 1);
    size_t i = 0;

    if (!b)
        abort();
    memcpy(b, text, len + 1);
    ws->buf = (char *)b;
    ws->n = 0;
    while (i < len) {
        size_t k = sep_len(b + i), start;

        if (k) {
            for (size_t j = 0; j < k; j++)
                b[i + j] = '\0';
            i += k;
            continue;
        }
        start = i;
        while (i < len && !sep_len(b + i)) {
            if (b[i] >= 'A' && b[i] <= 'Z')
                b[i] = (unsigned char)(b[i] - 'A' + 'a');
            i++;
        }
        if (ws->n < MAX_WORDS)
            ws->w[ws->n++] = (char *)b + start;
        if (i < len) {
            k = sep_len(b + i);
            for (size_t j = 0; j < k; j++)
                b[i + j] = '\0';
            i += k;
        }
    }
}

static size_t count(const struct words *ws, const char *w)
{
    size_t c = 0;

    for (size_t i = 0; i < ws->n; i++)
        c += strcmp(ws->w[i], w) == 0;
    return c;
}

/* A base spelling, its letter repeated any number of times after it. */
static int stretched(const char *w, const char *base, char stretch)
{
    size_t bl = strlen(base);

    if (strncmp(w, base, bl) != 0)
        return 0;
    for (w += bl; *w; w++)
        if (!stretch || *w != stretch)
            return 0;
    return 1;
}

static int removable(const char *w)
{
    static const char *const command_words[] = {
        "question", "mark",      "exclamation", "point",  "full",  "stop",      "new",
        "line",     "paragraph", "comma",       "period", "colon", "semicolon",
    };

    if (stretched(w, "um", 'm') || stretched(w, "uh", 'h') || stretched(w, "uhm", 'm') ||
        stretched(w, "erm", 'm') || stretched(w, "hm", 'm') || stretched(w, "er", 0) ||
        stretched(w, "ah", 'h'))
        return 1;
    for (size_t i = 0; i < sizeof(command_words) / sizeof(command_words[0]); i++)
        if (strcmp(w, command_words[i]) == 0)
            return 1;
    return 0;
}

static int is_fragment(const struct words *in, const char *w)
{
    size_t wl = strlen(w);

    for (size_t i = 0; i < in->n; i++)
        if (strlen(in->w[i]) > wl && strncmp(in->w[i], w, wl) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *out = NULL;
    struct words in, got;
    int rc;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    rc = cdt_cleanup_text(text, &out);
    if (rc != 0) {
        free(text);
        return 0;
    }
    split(text, &in);
    split(out, &got);
    if (in.n < MAX_WORDS && got.n < MAX_WORDS) {
        for (size_t i = 0; i < in.n; i++) {
            const char *w = in.w[i];
            size_t ci = count(&in, w), co = count(&got, w);

            if (co >= ci || removable(w) || is_fragment(&in, w) || (ci >= 2 && co >= 1))
                continue;
            fprintf(stderr, "cleanup lost the word \"%s\" (%zu in the input, %zu in the output)\n",
                    w, ci, co);
            fprintf(stderr, "input:  \"%s\"\noutput: \"%s\"\n", text, out);
            abort();
        }
        for (size_t i = 0; i < got.n; i++) {
            if (count(&in, got.w[i]) == 0) {
                fprintf(stderr, "cleanup added the word \"%s\"\ninput:  \"%s\"\noutput: \"%s\"\n",
                        got.w[i], text, out);
                abort();
            }
        }
    }
    free(in.buf);
    free(got.buf);
    free(out);
    free(text);
    return 0;
}
