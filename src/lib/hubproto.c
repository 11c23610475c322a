/* The Hugging Face Hub's HTTP conventions (hubproto.h): URL building, redirect and
 * token rules, header parsing. No I/O but reading the token file; no state. Header
 * values from the network are length-capped and stripped of control characters;
 * numbers are parsed digit by digit with overflow checks. */
#include "hubproto.h"
#include "codictate/download.h"
#include "codictate/util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- URLs ---- */

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded (keeping '/' when keep_slash) at buf+*len. */
static int append_encoded(char *buf, size_t cap, size_t *len, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (unreserved(c) || (keep_slash && c == '/')) {
            if (*len + 1 >= cap)
                return CDT_ETOOBIG;
            buf[(*len)++] = (char)c;
        } else {
            if (*len + 3 >= cap)
                return CDT_ETOOBIG;
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[c >> 4];
            buf[(*len)++] = hex[c & 15];
        }
    }
    buf[*len] = '\0';
    return 0;
}

int cdt__hub_resolve_url(const char *endpoint, const char *repo, const char *revision,
                         const char *file, char *buf, size_t cap)
{
    size_t len;
    int n, rc;

    if (!endpoint || !cdt_hfcache_valid_repo(repo) || !cdt_hfcache_valid_revision(revision) ||
        !cdt_hfcache_valid_file(file))
        return CDT_EINVAL;
    n = snprintf(buf, cap, "%s/%s/resolve/", endpoint, repo);
    if (n < 0 || (size_t)n >= cap)
        return CDT_ETOOBIG;
    len = (size_t)n;
    if ((rc = append_encoded(buf, cap, &len, revision, false)) != 0)
        return rc;
    if (len + 1 >= cap)
        return CDT_ETOOBIG;
    buf[len++] = '/';
    buf[len] = '\0';
    return append_encoded(buf, cap, &len, file, true);
}

bool cdt__hub_has_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);

    return strncasecmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

int cdt__hub_redirect_allowed(const char *from, const char *to)
{
    if (!to || !(cdt__hub_has_scheme(to, "http") || cdt__hub_has_scheme(to, "https")))
        return CDT_EPROTOCOL;
    if (cdt__hub_has_scheme(from, "https") && cdt__hub_has_scheme(to, "http"))
        return CDT_EPROTOCOL;
    return 0;
}

/* "scheme://host:port", lowercase, into buf; false when url does not parse. */
static bool origin_of(const char *url, char *buf, size_t cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    bool ok = false;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        int n = snprintf(buf, cap, "%s://%s:%s", scheme, host, port);

        ok = n > 0 && (size_t)n < cap;
        for (char *p = buf; ok && *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

bool cdt__hub_same_origin(const char *a, const char *b)
{
    char oa[512], ob[512];

    return origin_of(a, oa, sizeof(oa)) && origin_of(b, ob, sizeof(ob)) && strcmp(oa, ob) == 0;
}

/* url without its query and fragment, for messages and logs (signatures stay out). */
const char *cdt__hub_strip_query(const char *url, char *buf, size_t cap)
{
    size_t n = strcspn(url, "?#");

    snprintf(buf, cap, "%.*s", (int)n, url);
    return buf;
}

/* ---- token and endpoint ---- */

int cdt__hub_clean_token(char *t)
{
    size_t n = strlen(t), i = 0;

    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\n' || t[n - 1] == '\r'))
        t[--n] = '\0';
    while (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')
        i++;
    memmove(t, t + i, n - i + 1);
    for (const char *p = t; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return CDT_EINVAL;
    return 0;
}

int cdt__hub_env_token(char *buf, size_t cap, const char **source)
{
    static const char *const vars[] = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"};
    char path[CDT_HF_MAX_PATH];
    const char *v;
    ssize_t n;
    int fd;

    buf[0] = '\0';
    if (source)
        *source = NULL;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (!(v = cdt_env_str(vars[i], NULL)))
            continue;
        if (strlen(v) > CDT_DL_MAX_TOKEN || strlen(v) >= cap)
            return CDT_ETOOBIG;
        snprintf(buf, cap, "%s", v);
        if (source)
            *source = vars[i];
        if (cdt__hub_clean_token(buf) != 0)
            return CDT_EINVAL;
        if (buf[0])
            return 0;
    }
    /* huggingface_hub: HF_TOKEN_PATH, else $HF_HOME/token, HF_HOME defaulting to
     * $XDG_CACHE_HOME/huggingface, then ~/.cache/huggingface. */
    if ((v = cdt_env_str("HF_TOKEN_PATH", NULL)))
        snprintf(path, sizeof(path), "%s", v);
    else if ((v = cdt_env_str("HF_HOME", NULL)))
        snprintf(path, sizeof(path), "%s/token", v);
    else if ((v = cdt_env_str("XDG_CACHE_HOME", NULL)))
        snprintf(path, sizeof(path), "%s/huggingface/token", v);
    else if ((v = cdt_env_str("HOME", NULL)))
        snprintf(path, sizeof(path), "%s/.cache/huggingface/token", v);
    else
        return 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    buf[n] = '\0';
    if ((size_t)n > CDT_DL_MAX_TOKEN || (size_t)n >= cap - 1) {
        buf[0] = '\0';
        return CDT_ETOOBIG;
    }
    if (source)
        *source = "the token file";
    return cdt__hub_clean_token(buf);
}

/* ---- response headers ---- */

static bool header_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* Copies a header value, dropping control characters, truncating at cap. */
static void copy_value(char *dst, size_t cap, const char *v)
{
    size_t n = 0;

    for (; *v && n + 1 < cap; v++)
        if ((unsigned char)*v >= 0x20 && *v != 0x7f)
            dst[n++] = *v;
    dst[n] = '\0';
}

/* An etag without W/ and quotes; "" unless what is left is a valid blob key. */
static void copy_etag(char *dst, size_t cap, const char *v)
{
    size_t n;

    if (strncmp(v, "W/", 2) == 0)
        v += 2;
    n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n >= cap) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
    if (!cdt_hfcache_valid_key(dst))
        dst[0] = '\0';
}

/* Digits only, no overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return *s == '\0';
}

static bool is_relative_url(const char *u)
{
    const char *p = u;

    if (u[0] == '/' && u[1] == '/')
        return false;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '+' || *p == '-' || *p == '.')
            p++;
        if (*p == ':')
            return false;
    }
    return true;
}

void cdt__hub_parse_header(struct cdt__hub_resp *r, char *line)
{
    size_t name_len;
    char *colon, *v, *e;

    if (strncmp(line, "HTTP/", 5) == 0) {
        size_t kept = r->header_bytes;
        char *sp = strchr(line, ' ');

        memset(r, 0, sizeof(*r));
        r->retry_after_s = -1;
        r->header_bytes = kept;
        /* "HTTP/1.1 200 OK", "HTTP/2 206": exactly three digits. */
        if (sp && sp[1] >= '1' && sp[1] <= '5' && sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' &&
            sp[3] <= '9' && (sp[4] == ' ' || sp[4] == '\0'))
            r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
        return;
    }
    if (!(colon = strchr(line, ':')))
        return;
    name_len = (size_t)(colon - line);
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    e = v + strlen(v);
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';

    if (header_is(line, name_len, "location")) {
        r->has_location = true;
        r->location_relative = is_relative_url(v);
    } else if (header_is(line, name_len, "x-repo-commit")) {
        copy_value(r->commit, sizeof(r->commit), v);
    } else if (header_is(line, name_len, "x-linked-etag")) {
        copy_etag(r->linked_etag, sizeof(r->linked_etag), v);
    } else if (header_is(line, name_len, "etag")) {
        copy_etag(r->etag, sizeof(r->etag), v);
    } else if (header_is(line, name_len, "x-linked-size")) {
        r->has_linked_size = parse_u64(v, &r->linked_size);
    } else if (header_is(line, name_len, "content-length")) {
        r->has_length = parse_u64(v, &r->length);
    } else if (header_is(line, name_len, "content-range")) {
        copy_value(r->content_range, sizeof(r->content_range), v);
    } else if (header_is(line, name_len, "x-error-code")) {
        copy_value(r->error_code, sizeof(r->error_code), v);
    } else if (header_is(line, name_len, "x-error-message")) {
        copy_value(r->error_message, sizeof(r->error_message), v);
    } else if (header_is(line, name_len, "retry-after")) {
        uint64_t s;

        if (parse_u64(v, &s))
            r->retry_after_s = s > 86400 ? 86400 : (long)s;
    }
}
