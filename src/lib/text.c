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

bool cdt_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

char *cdt_text_escape_controls(const char *s, bool keep_newlines)
{
    size_t n = 0, o = 0;
    char *out;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += *p < 0x20 || *p == 0x7f ? 4 : *p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f ? 6 : 1;
    if (!(out = malloc(n + 1)))
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && !(keep_newlines && *p == '\n')) || *p == 0x7f) {
            o += (size_t)snprintf(out + o, n + 1 - o, "\\x%02x", *p);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            o += (size_t)snprintf(out + o, n + 1 - o, "\\u%04x", p[1]);
            p++;
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    return out;
}
