/* The downloader: the Hugging Face resolve protocol on libcurl, into the cache
 * layout of hfcache.c. download.h lists the steps.
 *
 * Invariants:
 * - Bytes only ever land in blobs/<key>.incomplete, and only while this process
 *   holds huggingface_hub's lock for that blob; the finished file becomes visible
 *   through cdt_hfcache_commit's renames, after its size and sha256 were checked.
 * - `job.md` always holds the sha256 state of exactly the first `job.hashed` bytes
 *   of the partial, and during a transfer hashed == have: the file is hashed as it
 *   is written (a resumed partial's prefix once, before its GET), never re-read.
 * - Redirects are followed by hand, so every request's URL is seen before it is
 *   made: the token only goes to the endpoint's origin, https never drops to http,
 *   and signed CDN URLs live only for one attempt (each attempt starts with a HEAD
 *   of the resolve URL).
 * - Nothing here prints; people read cdt_download_errmsg() and the log. URLs in
 *   messages lose their query (signatures). */
#include "codictate/download.h"
#include "codictate/hfcache.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"
#include "codictate/util.h"
#include "hfcache_int.h"
#include "hubproto.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETRY          1             /* internal: the attempt failed and may be retried */
#define RETRY_NOW      2             /* internal: retry at once, not counted as a failure */
#define DONE           3             /* internal: the cache already had it */
#define PROGRESS_RESET (1024 * 1024) /* new bytes that keep an attempt from using a retry */
#define ERROR_BODY_MAX (1024 * 1024) /* body of a non-2xx reply read and dropped, bytes */
#define SPEED_SAMPLES  32            /* progress samples the speed averages over */
#define RECV_BUFFER    (256 * 1024)  /* libcurl receive buffer, bytes */
#define HASH_CHUNK     (1024 * 1024) /* read size when hashing a partial's prefix */
#define ERRMSG_MAX     1024          /* cdt_download_errmsg() length cap */
#define CANCEL_POLL_MS 20            /* how often a backoff sleep looks at cancel */

struct cdt_download {
    struct cdt_download_params p; /* defaults filled in; strings point at the copies below */
    char *endpoint;               /* no trailing '/' */
    char *cache_dir;
    char *token;              /* NULL: none */
    const char *token_source; /* where the token came from, for messages */
    CURL *curl;               /* reused, so HEAD and GET share connections */
    atomic_int canceled;
    char errmsg[ERRMSG_MAX];
};

struct sample {
    double t;       /* monotonic seconds */
    uint64_t bytes; /* bytes_done then */
};

/* One cdt_download_fetch. */
struct job {
    struct cdt_download *d;
    const char *repo, *rev, *file;
    uint64_t want_size;
    char want_sha[CDT_SHA256_HEX]; /* "" when not given */
    char url[CDT_DL_MAX_URL];      /* the resolve URL */

    /* From the first successful HEAD chain. */
    bool prepared;
    char commit[41];
    char key[CDT_HF_MAX_KEY];     /* blob name: the etag */
    char hub_sha[CDT_SHA256_HEX]; /* X-Linked-Etag when it is a sha256 */
    uint64_t size;
    char get_url[CDT_DL_MAX_URL]; /* this attempt's (signed) URL; never stored */

    /* The partial and its hash. */
    char *partial;
    int fd, lock_fd;
    uint64_t have; /* bytes in the partial */
    EVP_MD_CTX *md;
    uint64_t hashed;

    /* The request in flight. */
    struct cdt__hub_resp r;
    bool is_get, body_checked, writing;
    size_t discarded;
    int write_err;        /* set by the body callback when it stops the transfer */
    double last_byte;     /* monotonic seconds of the last byte received (or the request start) */
    bool stalled;         /* the stall timeout stopped the transfer */
    bool too_slow;        /* ... because bytes trickled in under CDT_DL_MIN_SPEED */
    double win_start;     /* monotonic seconds: the start of the speed window */
    uint64_t win_fetched; /* fetched at win_start */
    char curl_err[CURL_ERROR_SIZE];

    /* Progress. */
    double last_emit;
    struct sample samples[SPEED_SAMPLES];
    int nsamples, sample_next;

    /* Outcome. */
    long retry_wait_ms; /* from Retry-After; -1: backoff */
    char last_fail[512];
    uint64_t fetched;
    int requests;
};

static void seterr(struct cdt_download *d, const char *fmt, ...) CDT_PRINTF(2, 3);

static void seterr(struct cdt_download *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->errmsg, sizeof(d->errmsg), fmt, ap);
    va_end(ap);
}

static void setfail(struct job *j, const char *fmt, ...) CDT_PRINTF(2, 3);

static void setfail(struct job *j, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(j->last_fail, sizeof(j->last_fail), fmt, ap);
    va_end(ap);
}

const char *cdt_human_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)bytes;
    int i = 0;

    if (!cap)
        return buf;
    while (v >= 1000 && i < 6) {
        v /= 1000;
        i++;
    }
    if (i == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, v < 99.95 ? "%.1f %s" : "%.0f %s", v, units[i]);
    return buf;
}

/* ---- the handle ---- */

struct cdt_download_params cdt_download_default_params(void)
{
    struct cdt_download_params p = {0};

    p.stall_timeout_s = 30;
    p.connect_timeout_s = 15;
    p.max_retries = 3;
    p.retry_base_ms = 1000;
    p.retry_max_ms = 60000;
    p.progress_interval_ms = 100;
    p.max_file_size = CDT_DL_MAX_FILE;
    p.disk_reserve = CDT_DL_RESERVE;
    return p;
}

int cdt_download_new(const struct cdt_download_params *p, struct cdt_download **out)
{
    struct cdt_download_params def = cdt_download_default_params();
    struct cdt_download *d;
    const char *ep;
    char tok[CDT_DL_MAX_TOKEN + 2];
    int rc;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return CDT_ENOMEM;
    d->p = p ? *p : def;
    if (d->p.stall_timeout_s <= 0)
        d->p.stall_timeout_s = def.stall_timeout_s;
    if (d->p.connect_timeout_s <= 0)
        d->p.connect_timeout_s = def.connect_timeout_s;
    if (d->p.max_retries == 0)
        d->p.max_retries = def.max_retries;
    else if (d->p.max_retries < 0)
        d->p.max_retries = 0;
    if (d->p.retry_base_ms <= 0)
        d->p.retry_base_ms = def.retry_base_ms;
    if (d->p.retry_max_ms <= 0)
        d->p.retry_max_ms = def.retry_max_ms;
    if (d->p.progress_interval_ms <= 0)
        d->p.progress_interval_ms = def.progress_interval_ms;
    if (!d->p.max_file_size)
        d->p.max_file_size = def.max_file_size;
    if (!d->p.disk_reserve)
        d->p.disk_reserve = def.disk_reserve;

    ep = d->p.endpoint ? d->p.endpoint : cdt_env_str("HF_ENDPOINT", NULL);
    if (!ep)
        ep = CDT_DL_DEFAULT_ENDPOINT;
    rc = CDT_EINVAL;
    if (strlen(ep) >= CDT_DL_MAX_URL / 2 ||
        !(cdt__hub_has_scheme(ep, "http") || cdt__hub_has_scheme(ep, "https")))
        goto fail;
    for (const char *c = ep; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f)
            goto fail;
    rc = CDT_ENOMEM;
    if (!(d->endpoint = strdup(ep)))
        goto fail;
    for (size_t n = strlen(d->endpoint); n > 0 && d->endpoint[n - 1] == '/'; n--)
        d->endpoint[n - 1] = '\0';

    if (d->p.cache_dir) {
        if (!(d->cache_dir = strdup(d->p.cache_dir)))
            goto fail;
    } else if ((rc = cdt_hfcache_root(&d->cache_dir)) != 0) {
        goto fail;
    }

    if (d->p.token) {
        if (strlen(d->p.token) > CDT_DL_MAX_TOKEN) {
            rc = CDT_ETOOBIG;
            goto fail;
        }
        snprintf(tok, sizeof(tok), "%s", d->p.token);
        d->token_source = "the caller";
        if (cdt__hub_clean_token(tok) != 0) {
            rc = CDT_EINVAL;
            goto fail;
        }
    } else if ((rc = cdt__hub_env_token(tok, sizeof(tok), &d->token_source)) != 0) {
        goto fail;
    }
    if (tok[0] && !(d->token = strdup(tok))) {
        rc = CDT_ENOMEM;
        goto fail;
    }
    explicit_bzero(tok, sizeof(tok));

    d->p.endpoint = d->endpoint;
    d->p.cache_dir = d->cache_dir;
    d->p.token = NULL;
    rc = CDT_EIO;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    if (!(d->curl = curl_easy_init())) {
        curl_global_cleanup();
        goto fail;
    }
    atomic_init(&d->canceled, 0);
    *out = d;
    return 0;
fail:
    explicit_bzero(tok, sizeof(tok));
    free(d->endpoint);
    free(d->cache_dir);
    free(d);
    return rc;
}

void cdt_download_free(struct cdt_download *d)
{
    if (!d)
        return;
    curl_easy_cleanup(d->curl);
    curl_global_cleanup();
    if (d->token) {
        explicit_bzero(d->token, strlen(d->token));
        free(d->token);
    }
    free(d->endpoint);
    free(d->cache_dir);
    free(d);
}

void cdt_download_cancel(struct cdt_download *d)
{
    if (d)
        atomic_store(&d->canceled, 1);
}

const char *cdt_download_errmsg(const struct cdt_download *d)
{
    return d ? d->errmsg : "";
}

const char *cdt_download_cache_dir(const struct cdt_download *d)
{
    return d->cache_dir;
}

static bool canceled(const struct cdt_download *d)
{
    return atomic_load(&((struct cdt_download *)d)->canceled) != 0;
}

/* ---- disk ---- */

/* Free bytes on the filesystem that holds `path` or, while it does not exist yet,
 * its nearest existing parent. */
static int free_space(const char *path, uint64_t *bytes)
{
    char buf[CDT_HF_MAX_PATH];
    int rc;

    snprintf(buf, sizeof(buf), "%s", path);
    while ((rc = cdt_sysinfo_free_disk(buf, bytes)) == CDT_ENOTFOUND) {
        char *slash = strrchr(buf, '/');

        if (!slash)
            return cdt_sysinfo_free_disk(".", bytes);
        if (slash == buf) {
            buf[1] = '\0';
            return cdt_sysinfo_free_disk(buf, bytes);
        }
        *slash = '\0';
    }
    return rc;
}

int cdt_download_check_disk(struct cdt_download *d, uint64_t bytes)
{
    char need[32], have[32], fetch[32], reserve[32];
    uint64_t avail = 0;

    d->errmsg[0] = '\0';
    if (free_space(d->cache_dir, &avail) != 0) {
        seterr(d, "cannot read the free space at %s", d->cache_dir);
        return CDT_EIO;
    }
    if (avail >= d->p.disk_reserve && avail - d->p.disk_reserve >= bytes)
        return 0;
    cdt_human_bytes(bytes > UINT64_MAX - d->p.disk_reserve ? UINT64_MAX : bytes + d->p.disk_reserve,
                    need, sizeof(need));
    seterr(d, "Insufficient disk space: need %s, have %s at %s (%s to download + %s kept free)",
           need, cdt_human_bytes(avail, have, sizeof(have)), d->cache_dir,
           cdt_human_bytes(bytes, fetch, sizeof(fetch)),
           cdt_human_bytes(d->p.disk_reserve, reserve, sizeof(reserve)));
    return CDT_ENOSPACE;
}

/* ---- progress ---- */

static void emit(struct job *j, enum cdt_download_phase phase, uint64_t done, uint64_t total,
                 bool final)
{
    struct cdt_download *d = j->d;
    struct cdt_download_progress pr = {0};
    double t = (cdt_now_ms() / 1e3);

    if (!d->p.progress)
        return;
    if (!final && j->last_emit > 0 && (t - j->last_emit) * 1000 < d->p.progress_interval_ms)
        return;
    j->last_emit = t;
    pr.phase = phase;
    pr.bytes_done = done;
    pr.bytes_total = total;
    pr.eta_s = -1;
    pr.file = j->file;
    if (phase == CDT_DL_PHASE_DOWNLOAD) {
        struct sample *oldest;

        j->samples[j->sample_next] = (struct sample){t, done};
        j->sample_next = (j->sample_next + 1) % SPEED_SAMPLES;
        if (j->nsamples < SPEED_SAMPLES)
            j->nsamples++;
        oldest = &j->samples[j->nsamples < SPEED_SAMPLES ? 0 : j->sample_next];
        if (t - oldest->t > 0.05 && done >= oldest->bytes)
            pr.speed = (double)(done - oldest->bytes) / (t - oldest->t);
        if (total && done >= total)
            pr.eta_s = 0;
        else if (pr.speed > 0 && total > done)
            pr.eta_s = (double)(total - done) / pr.speed;
    }
    d->p.progress(&pr, d->p.user_data);
}

static int on_hash_progress(uint64_t done, uint64_t total, void *ud)
{
    struct job *j = ud;

    emit(j, CDT_DL_PHASE_VERIFY, done, total, false);
    return canceled(j->d);
}

/* ---- one HTTP request ---- */

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct job *j = ud;
    struct cdt__hub_resp *r = &j->r;
    size_t len = size * nitems;
    char line[CDT_DL_MAX_HEADER + 1];

    j->last_byte = (cdt_now_ms() / 1e3);
    r->header_bytes += len;
    if (len > CDT_DL_MAX_HEADER || r->header_bytes > CDT_DL_MAX_HEADERS) {
        r->overflow = true;
        return 0;
    }
    memcpy(line, buf, len);
    line[len] = '\0';
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        line[--len] = '\0';
    cdt__hub_parse_header(r, line);
    return size * nitems;
}

/* Makes md hold the hash of the partial's first `have` bytes. */
static int hash_prefix(struct job *j)
{
    unsigned char *buf;
    uint64_t done = 0;
    int fd, rc = 0;

    if (j->hashed == j->have)
        return 0;
    if (EVP_DigestInit_ex(j->md, EVP_sha256(), NULL) != 1)
        return CDT_EIO;
    j->hashed = 0;
    if (j->have == 0)
        return 0;
    if (!(buf = malloc(HASH_CHUNK)))
        return CDT_ENOMEM;
    fd = open(j->partial, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        rc = CDT_EIO;
    while (rc == 0 && done < j->have) {
        size_t want = j->have - done < HASH_CHUNK ? (size_t)(j->have - done) : HASH_CHUNK;
        ssize_t n = read(fd, buf, want);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || EVP_DigestUpdate(j->md, buf, (size_t)n) != 1) {
            rc = CDT_EIO;
            break;
        }
        done += (uint64_t)n;
        if (on_hash_progress(done, j->have, j))
            rc = CDT_ECANCELED;
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    if (rc == 0)
        j->hashed = j->have;
    else if (rc == CDT_EIO)
        seterr(j->d, "cannot read %s", j->partial);
    return rc;
}

/* Empties the partial (the server will send the whole file). */
static int restart_partial(struct job *j)
{
    if (ftruncate(j->fd, 0) != 0) {
        seterr(j->d, "cannot truncate %s: %s", j->partial, strerror(errno));
        return CDT_EIO;
    }
    j->have = 0;
    j->hashed = 0;
    return EVP_DigestInit_ex(j->md, EVP_sha256(), NULL) == 1 ? 0 : CDT_EIO;
}

/* First body byte of a GET: write it or drop it? */
static int start_body(struct job *j)
{
    struct cdt__hub_resp *r = &j->r;

    j->writing = r->status == 200 || r->status == 206;
    if (!j->writing)
        return 0;
    if (r->status == 206) {
        unsigned long long start = 0, end = 0;
        char *p = r->content_range;

        /* "bytes START-END/TOTAL" must start where the partial ends. */
        if (strncmp(p, "bytes ", 6) == 0) {
            p += 6;
            start = strtoull(p, &p, 10);
            if (*p == '-')
                end = strtoull(p + 1, &p, 10);
        }
        if (strncmp(r->content_range, "bytes ", 6) != 0 || start != j->have || end < start) {
            setfail(j, "the server answered a range request with Content-Range '%s' for %llu-",
                    r->content_range, (unsigned long long)j->have);
            j->write_err = restart_partial(j) ? CDT_EIO : RETRY;
            return -1;
        }
        return 0;
    }
    if (j->have > 0) {
        CDT_LOG_I(j->d->p.log, "%s: the server ignored the range request; starting over", j->file);
        if (restart_partial(j) != 0) {
            j->write_err = CDT_EIO;
            return -1;
        }
    }
    return 0;
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *ud)
{
    struct job *j = ud;
    size_t len = size * nitems, off = 0;

    j->last_byte = (cdt_now_ms() / 1e3);
    if (!j->is_get)
        return len;
    if (!j->body_checked) {
        j->body_checked = true;
        if (start_body(j) != 0)
            return 0;
    }
    if (!j->writing) {
        j->discarded += len;
        return j->discarded > ERROR_BODY_MAX ? 0 : len;
    }
    if (len > j->size - j->have) {
        seterr(j->d, "the server sent more than the %llu bytes of %s", (unsigned long long)j->size,
               j->file);
        j->write_err = CDT_EPROTOCOL;
        return 0;
    }
    while (off < len) {
        ssize_t n = write(j->fd, buf + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            seterr(j->d, "cannot write %s: %s", j->partial,
                   n < 0 ? strerror(errno) : "short write");
            j->write_err = n < 0 && (errno == ENOSPC || errno == EDQUOT) ? CDT_ENOSPACE : CDT_EIO;
            /* What did reach the file stays hashed-consistent: cut it back. */
            if (off && ftruncate(j->fd, (off_t)j->have) != 0)
                j->hashed = UINT64_MAX;
            return 0;
        }
        off += (size_t)n;
    }
    if (EVP_DigestUpdate(j->md, buf, len) != 1) {
        j->write_err = CDT_EIO;
        return 0;
    }
    j->have += len;
    j->hashed += len;
    j->fetched += len;
    return len;
}

static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    struct job *j = ud;

    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (canceled(j->d))
        return 1;
    /* The stall timeout, measured here rather than with CURLOPT_LOW_SPEED_*: libcurl
     * averages its speed over several seconds, so a burst followed by silence
     * would go unnoticed for that much longer. libcurl calls this at least about
     * once a second even when nothing arrives. */
    if ((cdt_now_ms() / 1e3) - j->last_byte >= j->d->p.stall_timeout_s) {
        j->stalled = true;
        return 1;
    }
    /* A byte now and then is a stall too (as curl's low-speed limit): under
     * CDT_DL_MIN_SPEED over a whole stall period. */
    if ((cdt_now_ms() / 1e3) - j->win_start >= j->d->p.stall_timeout_s) {
        if (j->fetched - j->win_fetched <
            (uint64_t)CDT_DL_MIN_SPEED * (uint64_t)j->d->p.stall_timeout_s) {
            j->stalled = j->too_slow = true;
            return 1;
        }
        j->win_start = cdt_now_ms() / 1e3;
        j->win_fetched = j->fetched;
    }
    if (j->writing && j->have < j->size) /* the complete state has its own final call */
        emit(j, CDT_DL_PHASE_DOWNLOAD, j->have, j->size, false);
    return 0;
}

/* One request, no redirect following. Fills j->r. */
static CURLcode request(struct job *j, const char *url, bool head)
{
    struct cdt_download *d = j->d;
    CURL *c = d->curl;
    struct curl_slist *h = NULL, *nh;
    char auth[CDT_DL_MAX_TOKEN + 32], range[32], shown[CDT_DL_MAX_URL];
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    long status = 0;

    curl_easy_reset(c);
    memset(&j->r, 0, sizeof(j->r));
    j->r.retry_after_s = -1;
    j->is_get = !head;
    j->body_checked = false;
    j->writing = false;
    j->discarded = 0;
    j->write_err = 0;
    j->curl_err[0] = '\0';
    j->last_byte = (cdt_now_ms() / 1e3);
    j->stalled = j->too_slow = false;
    j->win_start = j->last_byte;
    j->win_fetched = j->fetched;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "codictate/" CDT_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)d->p.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, j->curl_err);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, j);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
    if (!head && j->have > 0) {
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)j->have);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }

    if (!(h = curl_slist_append(NULL, "Accept-Encoding: identity")))
        goto out;
    /* The token goes to the hub's origin only, never to a CDN or another host. */
    if (d->token && cdt__hub_same_origin(url, d->endpoint)) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->token);
        nh = curl_slist_append(h, auth);
        explicit_bzero(auth, sizeof(auth));
        if (!nh)
            goto out;
        h = nh;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    j->requests++;
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        j->r.status = status;
    CDT_LOG_D(d->p.log, "%s %s -> %ld%s%s", head ? "HEAD" : "GET",
              cdt__hub_strip_query(url, shown, sizeof(shown)), j->r.status, cc ? " " : "",
              cc ? curl_easy_strerror(cc) : "");
out:
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    for (struct curl_slist *p = h; p; p = p->next)
        explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(h);
    return cc;
}

/* A transfer that did not complete: RETRY, or a final error with d->errmsg set. */
static int curl_failure(struct job *j, CURLcode cc, const char *url)
{
    struct cdt_download *d = j->d;
    char shown[CDT_DL_MAX_URL];
    const char *what = j->curl_err[0] ? j->curl_err : curl_easy_strerror(cc);

    cdt__hub_strip_query(url, shown, sizeof(shown));
    if (canceled(d)) {
        seterr(d, "download of %s cancelled", j->file);
        return CDT_ECANCELED;
    }
    if (j->stalled) {
        if (j->too_slow)
            setfail(j, "under %d bytes/s from %s for %d s", CDT_DL_MIN_SPEED, shown,
                    d->p.stall_timeout_s);
        else
            setfail(j, "no data from %s for %d s", shown, d->p.stall_timeout_s);
        return RETRY;
    }
    if (j->write_err == RETRY)
        return RETRY;
    if (j->write_err)
        return j->write_err;
    if (j->r.overflow) {
        seterr(d, "a response header from %s is over the limit of %d bytes", shown,
               CDT_DL_MAX_HEADER);
        return CDT_ETOOBIG;
    }
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        seterr(d, "cannot fetch %s: %s", shown, what);
        return CDT_EPROTOCOL;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        seterr(d, "network error: %s (%s)", what, shown);
        return CDT_ENET;
    case CURLE_OUT_OF_MEMORY:
        /* What libcurl says about a response header over its 100 KB limit: the
         * server's fault, not this machine's memory. */
        seterr(d,
               "the answer from %s is malformed or too large (a response header over "
               "libcurl's 100 KB limit?)",
               shown);
        return CDT_EPROTOCOL;
    case CURLE_WRITE_ERROR:
        seterr(d, "the error reply from %s is over %d bytes", shown, ERROR_BODY_MAX);
        return CDT_EPROTOCOL;
    default:
        setfail(j, "%s (%s)", what, shown);
        return RETRY;
    }
}

/* A response that is not what we asked for: RETRY, or a final error. */
static int http_failure(struct job *j, const char *url)
{
    struct cdt_download *d = j->d;
    struct cdt__hub_resp *r = &j->r;
    const char *code = r->error_code, *msg = r->error_message;
    char shown[CDT_DL_MAX_URL];

    cdt__hub_strip_query(url, shown, sizeof(shown));
    if (strcmp(code, "GatedRepo") == 0 || (!code[0] && (r->status == 401 || r->status == 403) &&
                                           cdt__hub_same_origin(url, d->endpoint))) {
        size_t n;

        seterr(d, "model %s is gated: accept its license on Hugging Face and set HF_TOKEN",
               j->repo);
        n = strlen(d->errmsg);
        if (d->token)
            snprintf(d->errmsg + n, sizeof(d->errmsg) - n, " (the token from %s was not accepted)",
                     d->token_source);
        n = strlen(d->errmsg);
        if (msg[0])
            snprintf(d->errmsg + n, sizeof(d->errmsg) - n, ". The hub says: %s", msg);
        return CDT_EAUTH;
    }
    if (!code[0] && (r->status == 401 || r->status == 403)) {
        /* A CDN refusing a signed URL (expired): the next attempt signs anew. */
        setfail(j, "HTTP %ld from %s", r->status, shown);
        return RETRY;
    }
    if (strcmp(code, "RepoNotFound") == 0) {
        seterr(d, "repository %s not found on %s (a private one needs HF_TOKEN)%s%s", j->repo,
               d->endpoint, msg[0] ? ": " : "", msg);
        return CDT_ENOTFOUND;
    }
    if (strcmp(code, "RevisionNotFound") == 0) {
        seterr(d, "revision %s of %s not found%s%s", j->rev, j->repo, msg[0] ? ": " : "", msg);
        return CDT_ENOTFOUND;
    }
    if (strcmp(code, "EntryNotFound") == 0 || r->status == 404) {
        seterr(d, "%s not found in %s at %s%s%s", j->file, j->repo, j->rev, msg[0] ? ": " : "",
               msg[0] ? msg : "");
        return CDT_ENOTFOUND;
    }
    if (r->status == 429) {
        setfail(j, "rate limited by %s (HTTP 429)%s%s", shown, msg[0] ? ": " : "", msg);
        if (r->retry_after_s >= 0)
            j->retry_wait_ms = r->retry_after_s * 1000;
        return RETRY;
    }
    if (r->status >= 500 || r->status == 408) {
        setfail(j, "HTTP %ld from %s%s%s", r->status, shown, msg[0] ? ": " : "", msg);
        return RETRY;
    }
    seterr(d, "unexpected HTTP %ld from %s%s%s", r->status, shown, msg[0] ? ": " : "", msg);
    return CDT_EPROTOCOL;
}

/* The redirect target of the response just received, checked. */
static int next_url(struct job *j, const char *from, char *to, size_t cap)
{
    char *next = NULL;
    char shown[CDT_DL_MAX_URL];

    if (curl_easy_getinfo(j->d->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next) {
        seterr(j->d, "HTTP %ld without a usable Location from %s", j->r.status,
               cdt__hub_strip_query(from, shown, sizeof(shown)));
        return CDT_EPROTOCOL;
    }
    if (strlen(next) >= cap) {
        seterr(j->d, "a redirect URL is over the limit of %d bytes", CDT_DL_MAX_URL);
        return CDT_ETOOBIG;
    }
    if (cdt__hub_redirect_allowed(from, next) != 0) {
        seterr(j->d, "refusing a redirect from %s to %s",
               cdt__hub_strip_query(from, shown, sizeof(shown)),
               cdt__hub_has_scheme(next, "http") ? "plain http" : "a non-http URL");
        return CDT_EPROTOCOL;
    }
    memmove(to, next, strlen(next) + 1);
    return 0;
}

/* ---- the protocol ---- */

/* HEAD the resolve URL, following relative redirects; sets get_url, and on the
 * first call the file's metadata. */
static int resolve(struct job *j)
{
    struct cdt_download *d = j->d;
    char url[CDT_DL_MAX_URL];
    char commit[48] = "", linked[CDT_HF_MAX_KEY] = "", etag[CDT_HF_MAX_KEY] = "";
    uint64_t size = 0;
    bool has_size = false;
    int rc;

    snprintf(url, sizeof(url), "%s", j->url);
    for (int hop = 0;; hop++) {
        CURLcode cc;

        if (hop > CDT_DL_MAX_REDIRECTS) {
            seterr(d, "more than %d redirects resolving %s", CDT_DL_MAX_REDIRECTS, j->file);
            return CDT_EPROTOCOL;
        }
        if ((cc = request(j, url, true)) != CURLE_OK)
            return curl_failure(j, cc, url);
        /* The last response that carries a header wins (a renamed repository's 307
         * carries none; the hub's final answer does). */
        if (j->r.commit[0])
            snprintf(commit, sizeof(commit), "%s", j->r.commit);
        if (j->r.linked_etag[0])
            snprintf(linked, sizeof(linked), "%s", j->r.linked_etag);
        if (j->r.etag[0])
            snprintf(etag, sizeof(etag), "%s", j->r.etag);
        if (j->r.has_linked_size) {
            size = j->r.linked_size;
            has_size = true;
        }
        if (j->r.status >= 300 && j->r.status < 400 && j->r.has_location) {
            bool relative = j->r.location_relative;

            if ((rc = next_url(j, url, url, sizeof(url))) != 0)
                return rc;
            if (relative)
                continue;
            snprintf(j->get_url, sizeof(j->get_url), "%s", url);
            break;
        }
        if (j->r.status >= 200 && j->r.status < 300) {
            if (!has_size && j->r.has_length) {
                size = j->r.length;
                has_size = true;
            }
            snprintf(j->get_url, sizeof(j->get_url), "%s", url);
            break;
        }
        return http_failure(j, url);
    }

    if (j->prepared) {
        /* A later attempt: the file must still be the one the partial holds. */
        const char *key = linked[0] ? linked : etag;

        if (strcmp(key, j->key) != 0 || (has_size && size != j->size)) {
            seterr(d, "%s changed on the hub during the download; try again", j->file);
            return CDT_EPROTOCOL;
        }
        return 0;
    }
    snprintf(j->key, sizeof(j->key), "%s", linked[0] ? linked : etag);
    if (!j->key[0]) {
        seterr(d, "the hub gave no usable ETag for %s", j->file);
        return CDT_EPROTOCOL;
    }
    if (cdt_hfcache_is_sha256(linked))
        snprintf(j->hub_sha, sizeof(j->hub_sha), "%.64s", linked);
    if (cdt_hfcache_is_commit(commit))
        snprintf(j->commit, sizeof(j->commit), "%.40s", commit);
    else if (cdt_hfcache_is_commit(j->rev))
        snprintf(j->commit, sizeof(j->commit), "%s", j->rev);
    else {
        seterr(d, "the hub gave no X-Repo-Commit for %s", j->file);
        return CDT_EPROTOCOL;
    }
    if (!has_size) {
        seterr(d, "the hub did not give the size of %s", j->file);
        return CDT_EPROTOCOL;
    }
    j->size = size;
    return 0;
}

/* Uses blobs/<key> or llama.cpp's copy when one is there and checks out. */
static int reuse_local(struct job *j, const char *sha, struct cdt_download_result *res)
{
    struct cdt_download *d = j->d;
    char *blob = NULL, *lp = NULL, *snap = NULL, *tmp = NULL;
    char got[CDT_SHA256_HEX] = "", err[512], parent[CDT_HF_MAX_PATH];
    struct stat st;
    int rc;

    if ((rc = cdt_hfcache_blob_path(d->cache_dir, j->repo, j->key, &blob)) != 0)
        return rc;
    if (stat(blob, &st) == 0 && S_ISREG(st.st_mode)) {
        /* Another revision's copy of the same bytes: link it, store nothing twice. */
        rc = 0;
        if ((uint64_t)st.st_size != j->size)
            rc = CDT_ECHECKSUM;
        else if (sha && !cdt_hfcache_is_verified(d->cache_dir, j->repo, j->key, sha))
            rc = cdt_hfcache_verify(blob, sha, on_hash_progress, j, got);
        if (rc == CDT_ECANCELED)
            goto cancel;
        if (rc == 0) {
            if (sha && got[0] && cdt_hfcache_mark_verified(d->cache_dir, j->repo, j->key, sha))
                CDT_LOG_W(d->p.log, "cannot mark %s verified", blob);
            rc = cdt_hfcache_commit(d->cache_dir, j->repo, j->rev, j->commit, j->file, j->key, NULL,
                                    &snap, err, sizeof(err));
            if (rc != 0) {
                seterr(d, "cannot add %s to the cache: %s", j->file, err);
                goto out;
            }
            rc = DONE;
            goto out;
        }
        if (rc == CDT_ECHECKSUM) {
            CDT_LOG_W(d->p.log, "%s in the cache does not match; downloading it again", blob);
            unlink(blob);
        }
    }
    free(blob);
    blob = NULL;

    /* llama.cpp's old flat cache: trusted only after a hash, then hard-linked. */
    rc = 0;
    if (d->p.no_llama_cache || !sha || cdt_hfcache_find_llama(j->repo, j->file, &lp) != 0 ||
        stat(lp, &st) != 0 || (uint64_t)st.st_size != j->size)
        goto out;
    rc = cdt_hfcache_verify(lp, sha, on_hash_progress, j, got);
    if (rc == CDT_ECANCELED)
        goto cancel;
    if (rc != 0) {
        CDT_LOG_I(d->p.log, "%s does not match %s; not using it", lp, j->file);
        rc = 0;
        goto out;
    }
    if ((rc = cdt_hfcache_blob_path(d->cache_dir, j->repo, j->key, &blob)) != 0 ||
        (rc = cdt_hfcache_incomplete_path(d->cache_dir, j->repo, j->key, &tmp)) != 0)
        goto out;
    /* The partial name is free: we hold the lock and have not opened it yet. */
    snprintf(parent, sizeof(parent), "%s", tmp);
    *strrchr(parent, '/') = '\0';
    if (cdt_mkdir_p(parent, 0755) != 0) {
        seterr(d, "cannot create %s: %s", parent, strerror(errno));
        rc = CDT_EIO;
        goto out;
    }
    unlink(tmp);
    if (link(lp, tmp) == 0 && cdt_hfcache_commit(d->cache_dir, j->repo, j->rev, j->commit, j->file,
                                                 j->key, tmp, &snap, err, sizeof(err)) == 0) {
        if (cdt_hfcache_mark_verified(d->cache_dir, j->repo, j->key, sha) != 0)
            CDT_LOG_W(d->p.log, "cannot mark %s verified", blob);
        CDT_LOG_I(d->p.log, "%s: reusing %s from llama.cpp's cache", j->file, lp);
        rc = DONE;
        goto out;
    }
    /* Another filesystem: use it where it is. */
    unlink(tmp);
    CDT_LOG_I(d->p.log, "%s: using %s from llama.cpp's cache in place", j->file, lp);
    snap = lp;
    lp = NULL;
    rc = DONE;
out:
    if (rc == DONE && res) {
        snprintf(res->path, sizeof(res->path), "%s", snap);
        snprintf(res->sha256, sizeof(res->sha256), "%.64s", sha ? sha : "");
    }
    free(tmp);
    free(snap);
    free(lp);
    free(blob);
    return rc;
cancel:
    seterr(d, "download of %s cancelled", j->file);
    rc = CDT_ECANCELED;
    goto out;
}

/* After the first HEAD: checks, the lock, reuse, the disk, the partial. */
static int prepare(struct job *j, struct cdt_download_result *res)
{
    struct cdt_download *d = j->d;
    const char *sha = j->want_sha[0] ? j->want_sha : j->hub_sha[0] ? j->hub_sha : NULL;
    char a[32], b[32], *lock = NULL, parent[CDT_HF_MAX_PATH];
    struct stat st;
    int rc;

    if (j->want_sha[0] && j->hub_sha[0] && strcmp(j->want_sha, j->hub_sha) != 0) {
        seterr(d, "checksum mismatch for %s: expected %s, the hub has %s at %s", j->file,
               j->want_sha, j->hub_sha, j->rev);
        return CDT_ECHECKSUM;
    }
    if (j->size > d->p.max_file_size) {
        seterr(d, "%s is %s, over the limit of %s", j->file, cdt_human_bytes(j->size, a, sizeof(a)),
               cdt_human_bytes(d->p.max_file_size, b, sizeof(b)));
        return CDT_ETOOBIG;
    }
    if (j->want_size && j->size != j->want_size) {
        seterr(d, "size mismatch for %s: expected %llu bytes, the hub has %llu at %s", j->file,
               (unsigned long long)j->want_size, (unsigned long long)j->size, j->rev);
        return CDT_ECHECKSUM;
    }

    /* huggingface_hub's lock: one writer per blob, across tools. */
    if ((rc = cdt__hfcache_lock_path(d->cache_dir, j->repo, j->key, &lock)) != 0)
        return rc;
    snprintf(parent, sizeof(parent), "%s", lock);
    *strrchr(parent, '/') = '\0';
    if (cdt_mkdir_p(parent, 0755) != 0 ||
        (j->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        seterr(d, "cannot create %s: %s", lock, strerror(errno));
        free(lock);
        return CDT_EIO;
    }
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        seterr(d, "another download of %s is running (lock %s)", j->file, lock);
        free(lock);
        return CDT_EBUSY;
    }
    free(lock);

    if ((rc = reuse_local(j, sha, res)) != 0)
        return rc;

    if ((rc = cdt_hfcache_incomplete_path(d->cache_dir, j->repo, j->key, &j->partial)) != 0)
        return rc;
    snprintf(parent, sizeof(parent), "%s", j->partial);
    *strrchr(parent, '/') = '\0';
    if (cdt_mkdir_p(parent, 0755) != 0 ||
        (j->fd = open(j->partial, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0 ||
        fstat(j->fd, &st) != 0) {
        seterr(d, "cannot open %s: %s", j->partial, strerror(errno));
        return CDT_EIO;
    }
    if (!(j->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(j->md, EVP_sha256(), NULL) != 1)
        return CDT_ENOMEM;
    j->have = (uint64_t)st.st_size;
    if (j->have > j->size && (rc = restart_partial(j)) != 0)
        return rc;
    if (j->have)
        CDT_LOG_I(d->p.log, "%s: resuming at %llu of %llu bytes", j->file,
                  (unsigned long long)j->have, (unsigned long long)j->size);
    if ((rc = cdt_download_check_disk(d, j->size - j->have)) != 0)
        return rc;
    j->prepared = true;
    return 0;
}

/* GET the file into the partial, following redirects. */
static int fetch_body(struct job *j)
{
    char url[CDT_DL_MAX_URL];
    int rc;

    snprintf(url, sizeof(url), "%s", j->get_url);
    for (int hop = 0;; hop++) {
        CURLcode cc;

        if (hop > CDT_DL_MAX_REDIRECTS) {
            seterr(j->d, "more than %d redirects fetching %s", CDT_DL_MAX_REDIRECTS, j->file);
            return CDT_EPROTOCOL;
        }
        if ((rc = hash_prefix(j)) != 0)
            return rc;
        cc = request(j, url, false);
        if (j->write_err && j->write_err != RETRY)
            return j->write_err;
        if (cc != CURLE_OK)
            return curl_failure(j, cc, url);
        if (j->r.status >= 300 && j->r.status < 400 && j->r.has_location) {
            if ((rc = next_url(j, url, url, sizeof(url))) != 0)
                return rc;
            continue;
        }
        if (j->r.status == 200 || j->r.status == 206) {
            if (!j->body_checked) {
                j->body_checked = true;
                if (start_body(j) != 0)
                    return j->write_err;
            }
            if (j->have != j->size) {
                setfail(j, "the connection ended at %llu of %llu bytes",
                        (unsigned long long)j->have, (unsigned long long)j->size);
                return RETRY;
            }
            return 0;
        }
        if (j->r.status == 416 && j->have > 0) {
            CDT_LOG_I(j->d->p.log, "%s: the partial download is stale; starting over", j->file);
            return restart_partial(j) ? CDT_EIO : RETRY_NOW;
        }
        return http_failure(j, url);
    }
}

/* Size, sha256, then into the cache. */
static int finish(struct job *j, struct cdt_download_result *res)
{
    struct cdt_download *d = j->d;
    const char *expected = j->want_sha[0] ? j->want_sha : j->hub_sha[0] ? j->hub_sha : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[CDT_SHA256_HEX], err[512], *snap = NULL;
    int rc;

    if (j->have != j->size) {
        seterr(d, "%s is %llu bytes, expected %llu", j->file, (unsigned long long)j->have,
               (unsigned long long)j->size);
        return CDT_EPROTOCOL;
    }
    if ((rc = hash_prefix(j)) != 0)
        return rc;
    if (EVP_DigestFinal_ex(j->md, md, &mdlen) != 1 || mdlen != 32)
        return CDT_EIO;
    j->hashed = UINT64_MAX; /* md is spent */
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (expected && strcmp(hex, expected) != 0) {
        close(j->fd);
        j->fd = -1;
        unlink(j->partial);
        seterr(d, "checksum mismatch for %s: expected %s, got %s; the download was deleted",
               j->file, expected, hex);
        return CDT_ECHECKSUM;
    }
    if (fsync(j->fd) != 0 || close(j->fd) != 0) {
        j->fd = -1;
        seterr(d, "cannot write %s: %s", j->partial, strerror(errno));
        return CDT_EIO;
    }
    j->fd = -1;
    rc = cdt_hfcache_commit(d->cache_dir, j->repo, j->rev, j->commit, j->file, j->key, j->partial,
                            &snap, err, sizeof(err));
    if (rc != 0) {
        seterr(d, "cannot add %s to the cache: %s", j->file, err);
        return rc;
    }
    if (expected && cdt_hfcache_mark_verified(d->cache_dir, j->repo, j->key, hex) != 0)
        CDT_LOG_W(d->p.log, "cannot mark %s verified", snap);
    if (res) {
        snprintf(res->path, sizeof(res->path), "%s", snap);
        snprintf(res->sha256, sizeof(res->sha256), "%s", hex);
    }
    free(snap);
    return 0;
}

/* The file already in the cache: 0 (res filled), CDT_ENOTFOUND, or an error. */
static int use_cached(struct job *j, struct cdt_download_result *res)
{
    struct cdt_download *d = j->d;
    struct cdt_hfcache_entry *e = malloc(sizeof(*e));
    const char *sha;
    char err[256];
    int rc;

    if (!e)
        return CDT_ENOMEM;
    if ((rc = cdt_hfcache_find(d->cache_dir, j->repo, j->rev, j->file, e)) != 0)
        goto out;
    sha = j->want_sha[0] ? j->want_sha : cdt_hfcache_is_sha256(e->key) ? e->key : NULL;
    if (j->want_size && e->size != j->want_size) {
        rc = CDT_ECHECKSUM;
    } else if (sha && !(e->key[0] && cdt_hfcache_is_verified(d->cache_dir, j->repo, e->key, sha))) {
        rc = cdt_hfcache_verify(e->blob, sha, on_hash_progress, j, NULL);
        if (rc == 0 && e->key[0] && cdt_hfcache_mark_verified(d->cache_dir, j->repo, e->key, sha))
            CDT_LOG_W(d->p.log, "cannot mark %s verified", e->blob);
    }
    if (rc == CDT_ECANCELED) {
        seterr(d, "download of %s cancelled", j->file);
        goto out;
    }
    if (rc == CDT_ECHECKSUM) {
        CDT_LOG_W(d->p.log, "%s in the cache does not match its %s; deleting it", e->path,
                  j->want_size && e->size != j->want_size ? "size" : "sha256");
        if (cdt_hfcache_remove(d->cache_dir, j->repo, j->rev, j->file, NULL, err, sizeof(err)))
            CDT_LOG_W(d->p.log, "%s", err);
        rc = CDT_ENOTFOUND;
        goto out;
    }
    if (rc != 0) {
        seterr(d, "cannot read %s", e->blob);
        goto out;
    }
    if (res) {
        snprintf(res->path, sizeof(res->path), "%s", e->path);
        snprintf(res->commit, sizeof(res->commit), "%s", e->commit);
        snprintf(res->sha256, sizeof(res->sha256), "%.64s", sha ? sha : "");
        res->size = e->size;
    }
    emit(j, CDT_DL_PHASE_DOWNLOAD, e->size, e->size, true);
out:
    free(e);
    return rc;
}

static bool sleep_ms(struct cdt_download *d, long ms)
{
    while (ms > 0 && !canceled(d)) {
        long step = ms < CANCEL_POLL_MS ? ms : CANCEL_POLL_MS;
        struct timespec ts = {0, step * 1000000L};

        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !canceled(d);
}

/* The download loop: attempts with backoff. */
static int run(struct job *j, struct cdt_download_result *res)
{
    struct cdt_download *d = j->d;
    char *partial = NULL;
    int rc, failures = 0;
    struct stat st;

    /* Disk check before any request when the size is known. */
    if (j->want_size) {
        uint64_t have = 0;

        if (j->want_sha[0] &&
            cdt_hfcache_incomplete_path(d->cache_dir, j->repo, j->want_sha, &partial) == 0 &&
            stat(partial, &st) == 0 && (uint64_t)st.st_size <= j->want_size)
            have = (uint64_t)st.st_size;
        free(partial);
        if ((rc = cdt_download_check_disk(d, j->want_size - have)) != 0)
            return rc;
    }
    for (;;) {
        uint64_t before = j->fetched;
        long wait;

        if (canceled(d)) {
            seterr(d, "download of %s cancelled", j->file);
            return CDT_ECANCELED;
        }
        j->retry_wait_ms = -1;
        j->nsamples = j->sample_next = 0;
        rc = resolve(j);
        if (rc == 0 && !j->prepared)
            rc = prepare(j, res);
        if (rc == DONE)
            return DONE;
        if (rc == 0 && j->have < j->size)
            rc = fetch_body(j);
        if (rc == 0)
            break;
        if (rc == RETRY_NOW)
            continue;
        if (rc != RETRY)
            return rc;
        if (j->fetched - before >= PROGRESS_RESET)
            failures = 0;
        if (++failures > d->p.max_retries) {
            seterr(d, "download of %s failed after %d attempt%s: %s", j->file, failures,
                   failures == 1 ? "" : "s", j->last_fail);
            return CDT_ENET;
        }
        wait = (long)d->p.retry_base_ms << (failures - 1 < 16 ? failures - 1 : 16);
        if (j->retry_wait_ms >= 0)
            wait = j->retry_wait_ms;
        if (wait > d->p.retry_max_ms)
            wait = d->p.retry_max_ms;
        CDT_LOG_W(d->p.log, "%s: %s; retry %d of %d in %.1f s", j->file, j->last_fail, failures,
                  d->p.max_retries, (double)wait / 1000);
        if (!sleep_ms(d, wait)) {
            seterr(d, "download of %s cancelled", j->file);
            return CDT_ECANCELED;
        }
    }
    emit(j, CDT_DL_PHASE_DOWNLOAD, j->have, j->size, true);
    return finish(j, res);
}

int cdt_download_fetch(struct cdt_download *d, const char *repo, const char *revision,
                       const char *file, uint64_t size, const char *sha256,
                       struct cdt_download_result *res)
{
    struct job *j;
    char a[32], b[32];
    int rc;

    d->errmsg[0] = '\0';
    if (res)
        memset(res, 0, sizeof(*res));
    if (!revision)
        revision = "main";
    if (!cdt_hfcache_valid_repo(repo) || !cdt_hfcache_valid_revision(revision) ||
        !cdt_hfcache_valid_file(file) || (sha256 && strlen(sha256) != 64)) {
        seterr(d, "invalid repository, revision, file name or sha256");
        return CDT_EINVAL;
    }
    if (canceled(d)) {
        seterr(d, "download of %s cancelled", file);
        return CDT_ECANCELED;
    }
    if (size > d->p.max_file_size) {
        seterr(d, "%s is %s, over the limit of %s", file, cdt_human_bytes(size, a, sizeof(a)),
               cdt_human_bytes(d->p.max_file_size, b, sizeof(b)));
        return CDT_ETOOBIG;
    }
    if (!(j = calloc(1, sizeof(*j))))
        return CDT_ENOMEM;
    j->d = d;
    j->repo = repo;
    j->rev = revision;
    j->file = file;
    j->want_size = size;
    j->fd = j->lock_fd = -1;
    if (sha256) {
        for (int i = 0; i < 64; i++)
            j->want_sha[i] =
                (char)(sha256[i] >= 'A' && sha256[i] <= 'F' ? sha256[i] - 'A' + 'a' : sha256[i]);
        if (!cdt_hfcache_is_sha256(j->want_sha)) {
            seterr(d, "invalid sha256 '%s'", sha256);
            free(j);
            return CDT_EINVAL;
        }
    }
    if ((rc = cdt__hub_resolve_url(d->endpoint, repo, revision, file, j->url, sizeof(j->url))) !=
        0) {
        seterr(d, "the URL of %s is too long", file);
        free(j);
        return rc;
    }

    rc = use_cached(j, res);
    if (rc == 0) {
        if (res)
            res->cached = true;
        goto out;
    }
    if (rc != CDT_ENOTFOUND)
        goto out;
    d->errmsg[0] = '\0';
    rc = run(j, res);
    if (rc == DONE) {
        if (res)
            res->cached = true;
        emit(j, CDT_DL_PHASE_DOWNLOAD, j->size, j->size, true);
        rc = 0;
    }
    if (rc == 0 && res) {
        snprintf(res->commit, sizeof(res->commit), "%s", j->commit);
        res->size = j->size;
    }
out:
    if (res) {
        res->bytes_fetched = j->fetched;
        res->requests = j->requests;
    }
    if (rc == 0)
        d->errmsg[0] = '\0';
    else if (!d->errmsg[0])
        seterr(d, "%s: %s", file, cdt_strerror(rc));
    if (rc != 0)
        CDT_LOG_D(d->p.log, "%s", d->errmsg);
    if (j->fd >= 0)
        close(j->fd);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the flock */
    EVP_MD_CTX_free(j->md);
    free(j->partial);
    free(j);
    return rc;
}
