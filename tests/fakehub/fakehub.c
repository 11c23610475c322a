/* A fake Hugging Face Hub for tests, on libmicrohttpd, loopback only.
 *
 *   fakehub --root DIR [--gated ORG/NAME]... [--token TOKEN] [--lfs-min BYTES] [--log FILE]
 *
 * Serves DIR/<org>/<name>/<file> the way the hub's resolve endpoint does:
 *   HEAD|GET /<org>/<name>/resolve/<rev>/<file>   rev: "main" or the repo's commit
 *     LFS files (≥ --lfs-min bytes, default 4096): 302 to
 *       http://<cdn host>:<port>/cdn/<sha256>?sig=…  with X-Repo-Commit,
 *       X-Linked-Etag: "<sha256>", X-Linked-Size, ETag: "<sha256>"
 *     small files: a relative 307 to /api/resolve-cache/models/<org>/<name>/<commit>/<file>,
 *       which answers 200 with ETag: "<git blob sha1>" and X-Repo-Commit
 *     401 X-Error-Code: RepoNotFound (no such repo), GatedRepo (gated, token wrong);
 *     404 X-Error-Code: RevisionNotFound, EntryNotFound; X-Error-Message always.
 *   HEAD|GET /cdn/<sha256>   the bytes; Range: bytes=N- / N-M → 206 + Content-Range;
 *     past the end → 416. Its ETag is deliberately not the sha256.
 *   POST /_control {json}    faults for the next requests (all optional):
 *     "drop_after": N    close the connection after N body bytes   ┐ the next
 *     "stall_after": N   stop sending after N bytes for stall_ms   │ "times" CDN
 *     "stall_ms": N      (default 3000)                            │ GETs
 *     "wrong_bytes": true  flip the first byte of the body         ┘ (default 1)
 *     "status": S, "retry_after": N   answer the next "times" resolve requests with S
 *     "rate": BYTES_PER_S  throttle every body (0: off)
 *     "cdn_host": "localhost"  host name used in the CDN redirect (default 127.0.0.1)
 *     "ignore_range": true  answer Range requests with 200 and the whole file
 *     "header_bytes": N  an N-byte X-Padding header on resolve answers
 *     "reset": true      clear faults and counters first
 *   GET /_stats → {"requests","body_bytes","cdn_gets","range_gets","auth_hub","auth_cdn",
 *                  "identity","last_range"}
 *
 * The commit of a repo is sha1("commit " + org/name). The first stdout line is
 * "FAKEHUB_PORT=<port>"; one log line per request goes to --log (else stderr):
 * "METHOD URL host=HOST auth=yes|no range=R -> STATUS". SIGTERM/SIGINT stop it. */
#include "../mhd_test.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_GATED   8
#define MAX_BLOBS   64
#define MAX_CONTROL 4096 /* control body cap, bytes */
#define BLOCK       (64 * 1024)

struct faults {
    long drop_after, stall_after; /* -1: off */
    int stall_ms;
    bool wrong_bytes;
    int body_times; /* CDN GETs the body faults still apply to */
    int status, retry_after, status_times;
    long rate;         /* bytes/s, 0: unlimited */
    bool ignore_range; /* answer ranged GETs with 200 and the whole file */
    long header_bytes; /* a header this long on resolve answers, 0: none */
    char cdn_host[64];
};

struct hub {
    const char *root, *token, *gated[MAX_GATED];
    int ngated;
    long lfs_min;
    int port;
    FILE *log;
    pthread_mutex_t lock; /* faults, blobs, last_range, log */
    struct faults f;
    struct {
        char sha[65];
        char path[4096];
    } blobs[MAX_BLOBS];
    int nblobs;
    atomic_int stopping;
    atomic_llong body_bytes;
    atomic_int requests, cdn_gets, range_gets, auth_hub, auth_cdn, identity;
    char last_range[64];
};

struct body {
    struct hub *h;
    int fd;
    uint64_t start, len; /* file offset and bytes of this response */
    long drop_after, stall_after;
    int stall_ms;
    bool wrong;
    long rate;
    uint64_t sent;
    struct timespec t0;
};

static void faults_clear(struct faults *f)
{
    memset(f, 0, sizeof(*f));
    f->drop_after = f->stall_after = -1;
    f->stall_ms = 3000;
    snprintf(f->cdn_host, sizeof(f->cdn_host), "127.0.0.1");
}

static void hex(const unsigned char *md, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* sha256 (git = false) or git's blob sha1 (git = true) of a file. */
static int hash_file(const char *path, bool git, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    FILE *f = fopen(path, "rb");
    struct stat st;
    size_t r;

    if (!c || !f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        EVP_MD_CTX_free(c);
        return -1;
    }
    EVP_DigestInit_ex(c, git ? EVP_sha1() : EVP_sha256(), NULL);
    if (git) {
        char hdr[64];
        int len = snprintf(hdr, sizeof(hdr), "blob %lld", (long long)st.st_size);

        EVP_DigestUpdate(c, hdr, (size_t)len + 1); /* with the NUL */
    }
    while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(c, buf, r);
    EVP_DigestFinal_ex(c, md, &n);
    hex(md, n, out);
    fclose(f);
    EVP_MD_CTX_free(c);
    return 0;
}

static void repo_commit(const char *org, const char *name, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    char text[512];
    int len = snprintf(text, sizeof(text), "commit %s/%s", org, name);

    EVP_Digest(text, (size_t)len, md, &n, EVP_sha1(), NULL);
    hex(md, n, out);
}

static void log_line(struct hub *h, struct MHD_Connection *c, const char *method, const char *url,
                     unsigned status)
{
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");

    pthread_mutex_lock(&h->lock);
    fprintf(h->log, "%s %s host=%s auth=%s range=%s -> %u\n", method, url, host ? host : "-",
            auth ? "yes" : "no", range ? range : "-", status);
    fflush(h->log);
    pthread_mutex_unlock(&h->lock);
}

static enum MHD_Result reply(struct hub *h, struct MHD_Connection *c, const char *method,
                             const char *url, unsigned status, struct MHD_Response *r)
{
    enum MHD_Result ret = MHD_queue_response(c, status, r);

    log_line(h, c, method, url, status);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct hub *h, struct MHD_Connection *c, const char *method,
                                 const char *url, unsigned status, const char *text,
                                 const char *code, const char *message)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);

    if (code)
        MHD_add_response_header(r, "X-Error-Code", code);
    if (message)
        MHD_add_response_header(r, "X-Error-Message", message);
    return reply(h, c, method, url, status, r);
}

static void sleep_ms(struct hub *h, long ms)
{
    while (ms > 0 && !atomic_load(&h->stopping)) {
        long step = ms < 20 ? ms : 20;
        struct timespec ts = {0, step * 1000000L};

        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct body *b = cls;
    size_t n = max;
    ssize_t got;

    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (b->drop_after >= 0 && pos >= (uint64_t)b->drop_after)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (b->stall_after >= 0 && pos >= (uint64_t)b->stall_after) {
        sleep_ms(b->h, b->stall_ms);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (n > b->len - pos)
        n = (size_t)(b->len - pos);
    if (b->drop_after >= 0 && n > (uint64_t)b->drop_after - pos)
        n = (size_t)((uint64_t)b->drop_after - pos);
    if (b->stall_after >= 0 && n > (uint64_t)b->stall_after - pos)
        n = (size_t)((uint64_t)b->stall_after - pos);
    if (b->rate > 0) {
        struct timespec now;
        double elapsed, due;

        if (n > (size_t)b->rate / 20 + 1)
            n = (size_t)b->rate / 20 + 1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (double)(now.tv_sec - b->t0.tv_sec) + (double)(now.tv_nsec - b->t0.tv_nsec) / 1e9;
        due = (double)pos / (double)b->rate;
        if (due > elapsed)
            sleep_ms(b->h, (long)((due - elapsed) * 1000));
    }
    got = pread(b->fd, buf, n, (off_t)(b->start + pos));
    if (got <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (b->wrong && pos == 0)
        buf[0] ^= (char)0xff;
    atomic_fetch_add(&b->h->body_bytes, (long long)got);
    return got;
}

static void free_body(void *cls)
{
    struct body *b = cls;

    close(b->fd);
    free(b);
}

/* Serves a file (HEAD or GET, with Range). */
static enum MHD_Result serve_file(struct hub *h, struct MHD_Connection *c, const char *method,
                                  const char *url, const char *path, const char *etag,
                                  const char *commit, bool cdn)
{
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding");
    bool head = strcmp(method, "HEAD") == 0;
    struct MHD_Response *r;
    struct body *b;
    struct stat st;
    uint64_t start = 0, end;
    unsigned status = 200;
    char v[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return send_text(h, c, method, url, 404, "gone", NULL, NULL);
    }
    end = st.st_size ? (uint64_t)st.st_size - 1 : 0;
    if (!head && cdn)
        atomic_fetch_add(&h->cdn_gets, 1);
    if (ae && strcmp(ae, "identity") == 0)
        atomic_fetch_add(&h->identity, 1);
    pthread_mutex_lock(&h->lock);
    if (h->f.ignore_range)
        range = NULL;
    pthread_mutex_unlock(&h->lock);
    if (!head && range) {
        unsigned long long a = 0, z = end;
        char *p;

        atomic_fetch_add(&h->range_gets, 1);
        pthread_mutex_lock(&h->lock);
        snprintf(h->last_range, sizeof(h->last_range), "%s", range);
        pthread_mutex_unlock(&h->lock);
        if (strncmp(range, "bytes=", 6) == 0) {
            a = strtoull(range + 6, &p, 10);
            if (*p == '-' && p[1])
                z = strtoull(p + 1, NULL, 10);
        }
        if (a >= (uint64_t)st.st_size) {
            close(fd);
            r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            snprintf(v, sizeof(v), "bytes */%lld", (long long)st.st_size);
            MHD_add_response_header(r, "Content-Range", v);
            return reply(h, c, method, url, 416, r);
        }
        start = a;
        end = z < end ? z : end;
        status = 206;
    }
    if (!(b = calloc(1, sizeof(*b)))) {
        close(fd);
        return MHD_NO;
    }
    b->h = h;
    b->fd = fd;
    b->start = start;
    b->len = st.st_size ? end - start + 1 : 0;
    b->drop_after = b->stall_after = -1;
    clock_gettime(CLOCK_MONOTONIC, &b->t0);
    pthread_mutex_lock(&h->lock);
    b->rate = h->f.rate;
    if (!head && cdn && h->f.body_times > 0) {
        h->f.body_times--;
        b->drop_after = h->f.drop_after;
        b->stall_after = h->f.stall_after;
        b->stall_ms = h->f.stall_ms;
        b->wrong = h->f.wrong_bytes;
    }
    pthread_mutex_unlock(&h->lock);
    r = MHD_create_response_from_callback(b->len, BLOCK, read_body, b, free_body);
    if (!r) {
        free_body(b);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    snprintf(v, sizeof(v), "\"%s\"", etag);
    MHD_add_response_header(r, "ETag", v);
    if (commit)
        MHD_add_response_header(r, "X-Repo-Commit", commit);
    if (status == 206) {
        snprintf(v, sizeof(v), "bytes %llu-%llu/%lld", (unsigned long long)start,
                 (unsigned long long)end, (long long)st.st_size);
        MHD_add_response_header(r, "Content-Range", v);
    }
    return reply(h, c, method, url, status, r);
}

static bool safe_path(const char *p)
{
    return p && *p && *p != '/' && !strstr(p, "..") && !strchr(p, '\\');
}

static bool authorized(struct hub *h, struct MHD_Connection *c, const char *org, const char *name)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char repo[512], want[512];

    snprintf(repo, sizeof(repo), "%s/%s", org, name);
    for (int i = 0; i < h->ngated; i++) {
        if (strcmp(h->gated[i], repo) != 0)
            continue;
        snprintf(want, sizeof(want), "Bearer %s", h->token ? h->token : "");
        return h->token && auth && strcmp(auth, want) == 0;
    }
    return true;
}

/* /<org>/<name>/resolve/<rev>/<file> */
static enum MHD_Result resolve(struct hub *h, struct MHD_Connection *c, const char *method,
                               const char *url)
{
    char org[128], name[128], rev[128], file[1024], path[4096], commit[41], sha[65], msg[512];
    char loc[2048], v[128];
    struct MHD_Response *r;
    struct stat st;
    int n = 0, status = 0, retry_after = 0;

    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))
        atomic_fetch_add(&h->auth_hub, 1);
    if (sscanf(url, "/%127[^/]/%127[^/]/resolve/%127[^/]/%n", org, name, rev, &n) != 3 || !n ||
        !safe_path(url + n) || strlen(url + n) >= sizeof(file))
        return send_text(h, c, method, url, 400, "bad resolve path", NULL, NULL);
    snprintf(file, sizeof(file), "%s", url + n);

    pthread_mutex_lock(&h->lock);
    if (h->f.status_times > 0) {
        h->f.status_times--;
        status = h->f.status;
        retry_after = h->f.retry_after;
    }
    pthread_mutex_unlock(&h->lock);
    if (status) {
        r = MHD_create_response_from_buffer(4, (void *)"busy", MHD_RESPMEM_PERSISTENT);
        snprintf(v, sizeof(v), "%d", retry_after);
        if (status == 429)
            MHD_add_response_header(r, "Retry-After", v);
        MHD_add_response_header(r, "X-Error-Message", "fault injected");
        return reply(h, c, method, url, (unsigned)status, r);
    }

    snprintf(path, sizeof(path), "%s/%s/%s", h->root, org, name);
    if (!safe_path(org) || !safe_path(name) || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, sizeof(msg), "Repository Not Found for url: %s.", url);
        return send_text(h, c, method, url, 401, "not found", "RepoNotFound", msg);
    }
    if (!authorized(h, c, org, name)) {
        snprintf(msg, sizeof(msg),
                 "Access to model %s/%s is restricted. You must have access to it and be "
                 "authenticated to access it. Please log in.",
                 org, name);
        return send_text(h, c, method, url, 401, "gated", "GatedRepo", msg);
    }
    repo_commit(org, name, commit);
    if (strcmp(rev, "main") != 0 && strcmp(rev, commit) != 0) {
        snprintf(msg, sizeof(msg), "Invalid rev id: %s", rev);
        return send_text(h, c, method, url, 404, "no rev", "RevisionNotFound", msg);
    }
    snprintf(path, sizeof(path), "%s/%s/%s/%s", h->root, org, name, file);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return send_text(h, c, method, url, 404, "no entry", "EntryNotFound", "Entry not found");

    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "X-Repo-Commit", commit);
    pthread_mutex_lock(&h->lock);
    if (h->f.header_bytes > 0) {
        char *pad = malloc((size_t)h->f.header_bytes + 1);

        if (pad) {
            memset(pad, 'x', (size_t)h->f.header_bytes);
            pad[h->f.header_bytes] = '\0';
            MHD_add_response_header(r, "X-Padding", pad);
            free(pad);
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (st.st_size < h->lfs_min) {
        /* Small non-LFS file: a relative redirect to the resolve cache. */
        snprintf(loc, sizeof(loc), "/api/resolve-cache/models/%s/%s/%s/%s", org, name, commit,
                 file);
        MHD_add_response_header(r, "Location", loc);
        return reply(h, c, method, url, 307, r);
    }
    if (hash_file(path, false, sha) != 0) {
        MHD_destroy_response(r);
        return send_text(h, c, method, url, 500, "hash failed", NULL, NULL);
    }
    pthread_mutex_lock(&h->lock);
    {
        int i;

        for (i = 0; i < h->nblobs && strcmp(h->blobs[i].sha, sha) != 0; i++)
            ;
        if (i == h->nblobs && i < MAX_BLOBS)
            h->nblobs++;
        if (i < MAX_BLOBS) {
            snprintf(h->blobs[i].sha, sizeof(h->blobs[i].sha), "%s", sha);
            snprintf(h->blobs[i].path, sizeof(h->blobs[i].path), "%s", path);
        }
    }
    snprintf(loc, sizeof(loc), "http://%s:%d/cdn/%s?sig=%lx&expires=%ld", h->f.cdn_host, h->port,
             sha, (unsigned long)random(), (long)time(NULL) + 3600);
    pthread_mutex_unlock(&h->lock);
    MHD_add_response_header(r, "Location", loc);
    snprintf(v, sizeof(v), "\"%s\"", sha);
    MHD_add_response_header(r, "X-Linked-Etag", v);
    MHD_add_response_header(r, "ETag", v);
    snprintf(v, sizeof(v), "%lld", (long long)st.st_size);
    MHD_add_response_header(r, "X-Linked-Size", v);
    return reply(h, c, method, url, 302, r);
}

static enum MHD_Result cdn(struct hub *h, struct MHD_Connection *c, const char *method,
                           const char *url)
{
    const char *sha = url + strlen("/cdn/");
    char path[4096] = "";

    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))
        atomic_fetch_add(&h->auth_cdn, 1);
    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < h->nblobs; i++)
        if (strcmp(h->blobs[i].sha, sha) == 0)
            snprintf(path, sizeof(path), "%s", h->blobs[i].path);
    pthread_mutex_unlock(&h->lock);
    if (!path[0])
        return send_text(h, c, method, url, 403, "unknown signature", NULL, NULL);
    return serve_file(h, c, method, url, path, "cdn-etag-not-a-sha", NULL, true);
}

/* /api/resolve-cache/models/<org>/<name>/<commit>/<file> */
static enum MHD_Result resolve_cache(struct hub *h, struct MHD_Connection *c, const char *method,
                                     const char *url)
{
    char org[128], name[128], commit[64], want[41], path[4096], etag[41];
    int n = 0;

    if (sscanf(url, "/api/resolve-cache/models/%127[^/]/%127[^/]/%63[^/]/%n", org, name, commit,
               &n) != 3 ||
        !n || !safe_path(url + n) || !safe_path(org) || !safe_path(name))
        return send_text(h, c, method, url, 400, "bad path", NULL, NULL);
    repo_commit(org, name, want);
    snprintf(path, sizeof(path), "%s/%s/%s/%s", h->root, org, name, url + n);
    if (strcmp(commit, want) != 0 || hash_file(path, true, etag) != 0)
        return send_text(h, c, method, url, 404, "no entry", "EntryNotFound", "Entry not found");
    return serve_file(h, c, method, url, path, etag, want, false);
}

static enum MHD_Result control(struct hub *h, struct MHD_Connection *c, const char *url,
                               struct test_req *rq)
{
    cJSON *o = rq->body ? cJSON_Parse(rq->body) : NULL, *v;

    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return send_text(h, c, "POST", url, 400, "{\"detail\":\"bad json\"}", NULL, NULL);
    }
    pthread_mutex_lock(&h->lock);
    if (cJSON_IsTrue(cJSON_GetObjectItem(o, "reset"))) {
        faults_clear(&h->f);
        atomic_store(&h->body_bytes, 0);
        atomic_store(&h->requests, 0);
        atomic_store(&h->cdn_gets, 0);
        atomic_store(&h->range_gets, 0);
        atomic_store(&h->auth_hub, 0);
        atomic_store(&h->auth_cdn, 0);
        atomic_store(&h->identity, 0);
        h->last_range[0] = '\0';
    }
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "drop_after")))
        h->f.drop_after = (long)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "stall_after")))
        h->f.stall_after = (long)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "stall_ms")))
        h->f.stall_ms = v->valueint;
    if (cJSON_IsBool(v = cJSON_GetObjectItem(o, "wrong_bytes")))
        h->f.wrong_bytes = cJSON_IsTrue(v);
    if (cJSON_GetObjectItem(o, "drop_after") || cJSON_GetObjectItem(o, "stall_after") ||
        cJSON_GetObjectItem(o, "wrong_bytes"))
        h->f.body_times = 1; /* armed by this call only */
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "status"))) {
        h->f.status = v->valueint;
        h->f.status_times = 1;
    }
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "retry_after")))
        h->f.retry_after = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "times"))) {
        if (h->f.body_times)
            h->f.body_times = v->valueint;
        if (h->f.status_times)
            h->f.status_times = v->valueint;
    }
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "rate")))
        h->f.rate = (long)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItem(o, "header_bytes")))
        h->f.header_bytes = (long)v->valuedouble;
    if (cJSON_IsBool(v = cJSON_GetObjectItem(o, "ignore_range")))
        h->f.ignore_range = cJSON_IsTrue(v);
    if (cJSON_IsString(v = cJSON_GetObjectItem(o, "cdn_host")))
        snprintf(h->f.cdn_host, sizeof(h->f.cdn_host), "%s", v->valuestring);
    pthread_mutex_unlock(&h->lock);
    cJSON_Delete(o);
    return send_text(h, c, "POST", url, 200, "{\"ok\":true}", NULL, NULL);
}

static enum MHD_Result stats(struct hub *h, struct MHD_Connection *c, const char *url)
{
    char buf[1024];

    pthread_mutex_lock(&h->lock);
    snprintf(buf, sizeof(buf),
             "{\"requests\":%d,\"body_bytes\":%lld,\"cdn_gets\":%d,\"range_gets\":%d,"
             "\"auth_hub\":%d,\"auth_cdn\":%d,\"identity\":%d,\"last_range\":\"%s\"}",
             atomic_load(&h->requests), atomic_load(&h->body_bytes), atomic_load(&h->cdn_gets),
             atomic_load(&h->range_gets), atomic_load(&h->auth_hub), atomic_load(&h->auth_cdn),
             atomic_load(&h->identity), h->last_range);
    pthread_mutex_unlock(&h->lock);
    return send_text(h, c, "GET", url, 200, buf, NULL, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct hub *h = cls;
    struct test_req *rq = NULL;
    enum MHD_Result ret;

    (void)version;
    if (test_req_collect(con_cls, upload, upload_size, MAX_CONTROL, &rq, &ret))
        return ret;
    if (strcmp(url, "/_control") == 0 && strcmp(method, "POST") == 0)
        return rq->too_big ? send_text(h, c, method, url, 413, "too big", NULL, NULL)
                           : control(h, c, url, rq);
    if (strcmp(url, "/_stats") == 0)
        return stats(h, c, url);
    atomic_fetch_add(&h->requests, 1);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(h, c, method, url, 405, "method", NULL, NULL);
    if (strncmp(url, "/cdn/", 5) == 0)
        return cdn(h, c, method, url);
    if (strncmp(url, "/api/resolve-cache/models/", 26) == 0)
        return resolve_cache(h, c, method, url);
    if (strstr(url, "/resolve/"))
        return resolve(h, c, method, url);
    return send_text(h, c, method, url, 404, "not found", NULL, NULL);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: fakehub --root DIR [--gated ORG/NAME]... [--token TOKEN] "
                 "[--lfs-min BYTES] [--log FILE]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"gated", required_argument, NULL, 'g'},
        {"token", required_argument, NULL, 't'},
        {"lfs-min", required_argument, NULL, 'm'},
        {"log", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct hub *h = calloc(1, sizeof(*h));
    struct MHD_Daemon *daemon;
    int port = 0;
    sigset_t set;
    int opt, sig;

    if (!h)
        return 1;
    h->lfs_min = 4096;
    h->log = stderr;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            h->root = optarg;
            break;
        case 'g':
            if (h->ngated < MAX_GATED)
                h->gated[h->ngated++] = optarg;
            break;
        case 't':
            h->token = optarg;
            break;
        case 'm':
            h->lfs_min = strtol(optarg, NULL, 10);
            break;
        case 'l':
            if (!(h->log = fopen(optarg, "a"))) {
                fprintf(stderr, "fakehub: cannot open %s: %s\n", optarg, strerror(errno));
                return 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!h->root) {
        usage(stderr);
        return 2;
    }
    pthread_mutex_init(&h->lock, NULL);
    faults_clear(&h->f);
    srandom((unsigned)getpid());
    signal(SIGPIPE, SIG_IGN);
    /* Threads inherit the mask: only sigwait below sees SIGTERM/SIGINT. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    daemon = test_daemon_start(handle, h, &port);
    if (!daemon) {
        fprintf(stderr, "fakehub: cannot start the server\n");
        return 1;
    }
    /* Under the lock the handlers read it with (a client knows the port only once it
     * is printed below, which ThreadSanitizer cannot see). */
    pthread_mutex_lock(&h->lock);
    h->port = port;
    pthread_mutex_unlock(&h->lock);
    printf("FAKEHUB_PORT=%d\n", port);
    fflush(stdout);
    sigwait(&set, &sig);
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(daemon);
    if (h->log != stderr)
        fclose(h->log);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return 0;
}
