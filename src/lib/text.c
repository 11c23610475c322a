/* Response cleaning and UTF-8 validation. Cleaning works on a private copy and
 * only ever removes text; it never rewrites words. */
#include "codictate/text.h"
#include "codictate/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void remove_range(char *s, size_t from, size_t to)
{
    memmove(s + from, s + to, strlen(s + to) + 1);
}

static void strip_think_blocks(char *s)
{
    char *open, *close;

    while ((open = strstr(s, "<think>")) && (close = strstr(open, "</think>")))
        remove_range(s, (size_t)(open - s), (size_t)(close - s) + strlen("</think>"));
    close = strstr(s, "</think>");
    while (close) { /* reasoning whose opening tag was in the prompt */
        remove_range(s, 0, (size_t)(close - s) + strlen("</think>"));
        close = strstr(s, "</think>");
    }
}

static void strip_think(char *s)
{
    char *open;

    /* Closed blocks first, then the unbalanced leftovers. */
    strip_think_blocks(s);
    open = strstr(s, "<think>");
    if (open)
        *open = '\0';
}

static void keep_after_output(char *s)
{
    char *o = strstr(s, "Output:"), *end;

    if (!o)
        return;
    o += strlen("Output:");
    while (*o == ' ' || *o == '\t' || *o == '\n' || *o == '\r')
        o++;
    end = strstr(o, "\n\n");
    if (end)
        *end = '\0';
    memmove(s, o, strlen(o) + 1);
}

static void cut_repeated_text_label(char *s)
{
    char *first = strstr(s, "Text:"), *second;

    if (!first)
        return;
    second = strstr(first + strlen("Text:"), "Text:");
    if (second)
        *second = '\0';
}

char *cdt_text_strip_think_blocks(const char *text)
{
    char *s = strdup(text ? text : "");

    if (s)
        strip_think_blocks(s);
    return s;
}

char *cdt_text_clean_response(const char *text)
{
    char *s = strdup(text ? text : "");

    if (!s)
        return NULL;
    strip_think(s);
    keep_after_output(s);
    cut_repeated_text_label(s);
    cdt_trim(s);
    return s;
}

int cdt_utf8_char(const char *str, size_t avail)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int n;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* at most U+10FFFF */
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= avail)
            return -1;
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return n;
}

bool cdt_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        int n = cdt_utf8_char(s + i, len - i);

        if (n <= 0)
            return false;
        i += (size_t)n;
    }
    return true;
}

char *cdt_utf8_repair(const char *s, size_t len, size_t *tail)
{
    char *out = malloc(len * 3 + 1); /* each bad byte grows to 3 */
    size_t o = 0, i = 0;

    if (!out)
        return NULL;
    if (tail)
        *tail = 0;
    while (i < len) {
        int n = cdt_utf8_char(s + i, len - i);

        if (n < 0 && tail) {
            *tail = len - i;
            break;
        }
        if (n <= 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        }
    }
    out[o] = '\0';
    return out;
}

char *cdt_utf8_carry(char carry[4], size_t *carry_len, const char *piece, size_t len)
{
    size_t n = *carry_len + len, tail = 0;
    char *in = malloc(n + 1), *out;

    *carry_len = 0;
    if (!in)
        return NULL;
    memcpy(in, carry, n - len);
    memcpy(in + (n - len), piece, len);
    out = cdt_utf8_repair(in, n, &tail);
    if (out) { /* a cut-short character is under 4 bytes: it fits the carry */
        memcpy(carry, in + n - tail, tail);
        *carry_len = tail;
    }
    free(in);
    return out;
}

size_t cdt_text_escape_controls_to(const char *s, bool keep_newlines, char *out, size_t cap)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t k;

        if ((*p < 0x20 && !(keep_newlines && *p == '\n')) || *p == 0x7f) {
            k = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", *p);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            k = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", p[1]);
            p++;
        } else {
            esc[0] = (char)*p;
            k = 1;
        }
        if (out && n + k < cap)
            memcpy(out + n, esc, k);
        else
            out = NULL; /* full: whole escapes only, nothing after */
        n += k;
        if (out)
            out[n] = '\0';
    }
    return n;
}

char *cdt_text_escape_controls(const char *s, bool keep_newlines)
{
    size_t n = cdt_text_escape_controls_to(s, keep_newlines, NULL, 0);
    char *out = malloc(n + 1);

    if (!out)
        return NULL;
    out[0] = '\0';
    cdt_text_escape_controls_to(s, keep_newlines, out, n + 1);
    return out;
}
