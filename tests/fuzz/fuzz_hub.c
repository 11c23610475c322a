/* Fuzz target: the hub's response headers and redirects (hubproto.c). The input is a
 * response's header block, one line per header ("\r\n" or "\n"): each line goes
 * through cdt__hub_parse_header as curl hands it over, and each Location value
 * through the redirect rules (cdt__hub_redirect_allowed, cdt__hub_same_origin,
 * cdt__hub_strip_query) from an https and an http URL. Checked: the parsed fields
 * stay terminated and within their caps, the error message holds no control
 * character, Retry-After stays within a day, the status is a three-digit code, an
 * allowed redirect is http(s) and never https → http, and a stripped URL has no
 * query or fragment. */
#include "codictate/err.h"
#include "hubproto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fail(const char *what, const char *line)
{
    fprintf(stderr, "fuzz_hub: %s (line \"%s\")\n", what, line);
    abort();
}

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

static void check_resp(const struct cdt__hub_resp *r, const char *line)
{
    if (!TERMINATED(r->commit) || !TERMINATED(r->linked_etag) || !TERMINATED(r->etag) ||
        !TERMINATED(r->content_range) || !TERMINATED(r->error_code) ||
        !TERMINATED(r->error_message))
        fail("a field without its terminating NUL", line);
    for (const char *p = r->error_message; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            fail("a control character in the error message", line);
    if (r->retry_after_s < -1 || r->retry_after_s > 86400)
        fail("Retry-After out of range", line);
    if (r->status != 0 && (r->status < 100 || r->status > 599))
        fail("a status that is not a three-digit code", line);
}

static void check_redirect(const char *from, const char *to)
{
    char buf[512];
    const char *s;

    if (cdt__hub_redirect_allowed(from, to) == 0) {
        if (!cdt__hub_has_scheme(to, "http") && !cdt__hub_has_scheme(to, "https"))
            fail("a redirect allowed to a scheme other than http(s)", to);
        if (cdt__hub_has_scheme(from, "https") && !cdt__hub_has_scheme(to, "https"))
            fail("a redirect allowed from https to http", to);
    }
    (void)cdt__hub_same_origin(from, to);
    (void)cdt__hub_same_origin(to, to);
    s = cdt__hub_strip_query(to, buf, sizeof(buf));
    if (s && (strchr(s, '?') || strchr(s, '#')))
        fail("a stripped URL keeps its query or fragment", to);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *line, *next;
    struct cdt__hub_resp r;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&r, 0, sizeof(r));
    r.retry_after_s = -1;
    for (line = text; line; line = next) {
        size_t n;

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (strncasecmp(line, "location:", 9) == 0) {
            const char *v = line + 9;

            v += strspn(v, " \t");
            check_redirect("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/resolve/main/m.gguf", v);
            check_redirect("http://127.0.0.1:8080/r/resolve/main/m.gguf", v);
        }
        cdt__hub_parse_header(&r, line);
        check_resp(&r, line);
    }
    free(text);
    return 0;
}
