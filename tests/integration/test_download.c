/* The downloader and the Hugging Face cache layout against tests/fakehub: full
 * download into blobs/refs/snapshots, nothing fetched twice, resume after a drop
 * (counting the bytes the hub served), wrong bytes, gated, not found, disk space
 * refused before any byte, stall, cancel then resume, progress rate, reuse of
 * pre-seeded and llama.cpp files, the relative 307, the token kept off other
 * hosts, 429/5xx retries; plus the pure helpers.
 *
 *   test_download FAKEHUB */
#include "../../src/lib/hfcache_int.h"
#include "../../src/lib/hubproto.h"
#include "../test.h"
#include "codictate/download.h"
#include "codictate/hfcache.h"
#include "codictate/sysinfo.h"
#include "codictate/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MODEL_SIZE (2 * 1024 * 1024 + 123) /* the LFS test file, bytes */
#define GATED_SIZE (64 * 1024)
#define SMALL_SIZE 100 /* under fakehub's --lfs-min: a non-LFS file */
#define TOKEN      "hf_testtoken123"

static char tmp[256];     /* the test's scratch directory */
static char hub_log[300]; /* fakehub's request log */
static char endpoint[64]; /* http://127.0.0.1:PORT */
static int port;
static pid_t hub_pid;
static char model_sha[65], gated_sha[65], small_sha[65];
static char model_commit[41];
static int cache_seq;

/* ---- fixture ---- */

static void write_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; f && i < size; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        fputc((int)(x & 0xff), f);
    }
    if (f)
        fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    size_t n;

    while (a && b && (n = fread(buf, 1, sizeof(buf), a)) > 0)
        fwrite(buf, 1, n, b);
    if (a)
        fclose(a);
    if (b)
        fclose(b);
}

static void sha1_hex(const char *text, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int start_hub(const char *bin)
{
    char root[300], line[64];
    int fds[2];
    FILE *f;

    snprintf(root, sizeof(root), "%s/hub", tmp);
    snprintf(hub_log, sizeof(hub_log), "%s/hub.log", tmp);
    if (pipe(fds) != 0)
        return -1;
    hub_pid = fork();
    if (hub_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(bin, bin, "--root", root, "--gated", "org/gated", "--token", TOKEN, "--log", hub_log,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof(line), f) || sscanf(line, "FAKEHUB_PORT=%d", &port) != 1) {
        fprintf(stderr, "fakehub did not start\n");
        return -1;
    }
    fclose(f);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    return 0;
}

static void stop_hub(void)
{
    if (hub_pid > 0) {
        (void)cdt_proc_signal(hub_pid, SIGTERM);
        waitpid(hub_pid, NULL, 0);
    }
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), add = sz * n;

    if (have + add < 1024) {
        memcpy(buf + have, p, add);
        buf[have + add] = '\0';
    }
    return sz * n;
}

/* POST /_control (body NULL: GET /_stats into out). */
static void hub_call(const char *body, char *out)
{
    CURL *c = curl_easy_init();
    char url[128], resp[1024] = "";
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

    snprintf(url, sizeof(url), "%s/%s", endpoint, body ? "_control" : "_stats");
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out)
        snprintf(out, 1024, "%s", resp);
}

static void control(const char *json)
{
    hub_call(json, NULL);
}

static long long stat_num(const char *name)
{
    char s[1024], key[64];
    const char *p;

    hub_call(NULL, s);
    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(s, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static void stat_str(const char *name, char *out, size_t cap)
{
    char s[1024], key[64];
    const char *p;

    hub_call(NULL, s);
    snprintf(key, sizeof(key), "\"%s\":\"", name);
    out[0] = '\0';
    if ((p = strstr(s, key))) {
        p += strlen(key);
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\""), p);
    }
}

/* Waits until the hub's byte counter stops moving: after a client hangs up, the
 * hub's connection thread may still produce one block before it notices. */
static void settle(void)
{
    long long a = stat_num("body_bytes"), b;

    for (int i = 0; i < 25; i++) {
        usleep(200 * 1000);
        if ((b = stat_num("body_bytes")) == a)
            return;
        a = b;
    }
}

/* A fresh HF_HOME for each test; returns the hub cache root. */
static const char *fresh_home(void)
{
    static char root[400];
    char home[300];

    snprintf(home, sizeof(home), "%s/home%d", tmp, ++cache_seq);
    mkdir(home, 0755);
    setenv("HF_HOME", home, 1);
    snprintf(root, sizeof(root), "%s/hub", home);
    return root;
}

static struct cdt_download_params fast_params(void)
{
    struct cdt_download_params p = cdt_download_default_params();

    p.stall_timeout_s = 1;
    p.connect_timeout_s = 5;
    p.retry_base_ms = 20;
    p.retry_max_ms = 200;
    p.token = ""; /* none unless a test says so */
    return p;
}

static struct cdt_download *new_dl(const struct cdt_download_params *p)
{
    struct cdt_download *d = NULL;
    int rc = cdt_download_new(p, &d);

    if (rc != 0)
        fprintf(stderr, "cdt_download_new: %s\n", cdt_strerror(rc));
    return d;
}

static bool exists(const char *fmt, ...) CDT_PRINTF(1, 2);

static bool exists(const char *fmt, ...)
{
    char path[1024];
    struct stat st;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return lstat(path, &st) == 0;
}

static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool has(const char *hay, const char *needle)
{
    if (hay && strstr(hay, needle))
        return true;
    fprintf(stderr, "  \"%s\" lacks \"%s\"\n", hay ? hay : "(null)", needle);
    return false;
}

/* ---- pure helpers ---- */

TEST(helpers)
{
    char buf[512];

    CHECK_INT(cdt__hub_resolve_url("https://hf.co", "org/m", "refs/pr/1", "dir/a b+.gguf", buf,
                                   sizeof(buf)),
              0);
    CHECK_STR(buf, "https://hf.co/org/m/resolve/refs%2Fpr%2F1/dir/a%20b%2B.gguf");
    CHECK_INT(cdt__hub_resolve_url("https://hf.co", "org/m", "main", "../x", buf, sizeof(buf)),
              CDT_EINVAL);
    CHECK_INT(cdt__hub_resolve_url("https://hf.co", "org/m", "main", "x", buf, 20), CDT_ETOOBIG);
    CHECK_INT(cdt__hub_redirect_allowed("https://a/x", "http://b/y"), CDT_EPROTOCOL);
    CHECK_INT(cdt__hub_redirect_allowed("https://a/x", "file:///etc/passwd"), CDT_EPROTOCOL);
    CHECK_INT(cdt__hub_redirect_allowed("http://a/x", "https://b/y"), 0);
    CHECK_INT(cdt__hub_redirect_allowed("https://a/x", "https://cdn/y?sig=1"), 0);
    CHECK(cdt__hub_same_origin("https://HF.co/a", "https://hf.co:443/b"));
    CHECK(!cdt__hub_same_origin("https://hf.co/a", "https://cdn-lfs.hf.co/b"));
    CHECK(!cdt__hub_same_origin("http://127.0.0.1:80/a", "http://localhost:80/a"));
    CHECK(!cdt__hub_same_origin("http://127.0.0.1:1/a", "http://127.0.0.1:2/a"));

    CHECK(cdt_hfcache_valid_repo("ggml-org/Qwen3-1.7B-GGUF"));
    CHECK(!cdt_hfcache_valid_repo("../etc"));
    CHECK(!cdt_hfcache_valid_repo("a/b/c"));
    CHECK(!cdt_hfcache_valid_repo("a--b/c"));
    CHECK(!cdt_hfcache_valid_repo("org/"));
    CHECK(cdt_hfcache_valid_file("sub/dir/model.gguf"));
    CHECK(!cdt_hfcache_valid_file("/etc/passwd"));
    CHECK(!cdt_hfcache_valid_file("a/../../b"));
    CHECK(!cdt_hfcache_valid_file("a//b"));
    CHECK(cdt_hfcache_valid_revision("refs/pr/1"));
    CHECK(!cdt_hfcache_valid_revision("a/../b"));
    CHECK(cdt_hfcache_is_partial_name("x.gguf.incomplete"));
    CHECK(cdt_hfcache_is_partial_name("x.part"));
    CHECK(cdt_hfcache_is_partial_name("x.downloadInProgress"));
    CHECK(!cdt_hfcache_is_partial_name("x.gguf"));

    CHECK_STR(cdt_human_bytes(17, buf, sizeof(buf)), "17 B");
    CHECK_STR(cdt_human_bytes(900000, buf, sizeof(buf)), "900 kB");
    CHECK_STR(cdt_human_bytes(12300000000ull, buf, sizeof(buf)), "12.3 GB");
    CHECK_STR(cdt_human_bytes(100000000, buf, sizeof(buf)), "100 MB");
}

TEST(cache_root_and_token_from_env)
{
    char *root = NULL, tok[128], path[300];
    const char *src;
    FILE *f;

    setenv("HF_HUB_CACHE", "/x/hubcache", 1);
    CHECK_INT(cdt_hfcache_root(&root), 0);
    CHECK_STR(root, "/x/hubcache");
    free(root);
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", "/y/home", 1);
    CHECK_INT(cdt_hfcache_root(&root), 0);
    CHECK_STR(root, "/y/home/hub");
    free(root);
    unsetenv("HF_HOME");
    setenv("XDG_CACHE_HOME", "/z/cache", 1);
    CHECK_INT(cdt_hfcache_root(&root), 0);
    CHECK_STR(root, "/z/cache/huggingface/hub");
    free(root);
    unsetenv("XDG_CACHE_HOME");
    {
        char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

        setenv("HOME", "/h", 1);
        CHECK_INT(cdt_hfcache_root(&root), 0);
        CHECK_STR(root, "/h/.cache/huggingface/hub");
        free(root);
        if (home)
            setenv("HOME", home, 1);
        free(home);
    }

    /* Token: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the file. */
    snprintf(path, sizeof(path), "%s", fresh_home());
    *strrchr(path, '/') = '\0';
    strcat(path, "/token");
    f = fopen(path, "w");
    fputs("  hf_fromfile \n", f);
    fclose(f);
    setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
    setenv("HF_TOKEN", " hf_env\n", 1);
    CHECK_INT(cdt__hub_env_token(tok, sizeof(tok), &src), 0);
    CHECK_STR(tok, "hf_env");
    CHECK_STR(src, "HF_TOKEN");
    unsetenv("HF_TOKEN");
    CHECK_INT(cdt__hub_env_token(tok, sizeof(tok), &src), 0);
    CHECK_STR(tok, "hf_legacy");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    CHECK_INT(cdt__hub_env_token(tok, sizeof(tok), &src), 0);
    CHECK_STR(tok, "hf_fromfile");
    setenv("HF_TOKEN", "bad\ttoken", 1);
    CHECK_INT(cdt__hub_env_token(tok, sizeof(tok), &src), CDT_EINVAL);
    unsetenv("HF_TOKEN");
    unlink(path);
    CHECK_INT(cdt__hub_env_token(tok, sizeof(tok), &src), 0);
    CHECK_STR(tok, "");
}

/* ---- downloads ---- */

TEST(full_download_lands_in_hf_layout)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    const char *root = fresh_home();
    char link[512], ref[64] = "", path[512];
    long long served, requests;
    ssize_t n;
    FILE *f;

    control("{\"reset\":true}");
    p.cache_dir = NULL; /* from HF_HOME */
    REQUIRE((d = new_dl(&p)));
    CHECK_STR(cdt_download_cache_dir(d), root);
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK_STR(cdt_download_errmsg(d), "");
    CHECK_STR(res.commit, model_commit);
    CHECK_STR(res.sha256, model_sha);
    CHECK_INT(res.size, MODEL_SIZE);
    CHECK_INT(res.bytes_fetched, MODEL_SIZE);
    CHECK(!res.cached);
    CHECK_INT(stat_num("body_bytes"), MODEL_SIZE);
    CHECK(stat_num("identity") >= 1);

    /* blobs/<sha>, snapshots/<commit>/model.bin → ../../blobs/<sha>, refs/main. */
    snprintf(path, sizeof(path), "%s/models--org--model/snapshots/%s/model.bin", root,
             model_commit);
    CHECK_STR(res.path, path);
    n = readlink(path, link, sizeof(link) - 1);
    REQUIRE(n > 0);
    link[n] = '\0';
    snprintf(path, sizeof(path), "../../blobs/%s", model_sha);
    CHECK_STR(link, path);
    snprintf(path, sizeof(path), "%s/models--org--model/blobs/%s", root, model_sha);
    CHECK_INT(file_size(path), MODEL_SIZE);
    snprintf(path, sizeof(path), "%s/models--org--model/refs/main", root);
    f = fopen(path, "r");
    REQUIRE(f);
    CHECK(fgets(ref, sizeof(ref), f) != NULL);
    fclose(f);
    CHECK_STR(ref, model_commit);
    CHECK(!exists("%s/models--org--model/blobs/%s.incomplete", root, model_sha));

    /* A second call downloads nothing and makes no request at all. */
    served = stat_num("body_bytes");
    requests = stat_num("requests");
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK(res.cached);
    CHECK_INT(res.requests, 0);
    CHECK_INT(res.bytes_fetched, 0);
    /* Pinned to the commit, without expectations: the same. */
    CHECK_INT(cdt_download_fetch(d, "org/model", model_commit, "model.bin", 0, NULL, &res), 0);
    CHECK(res.cached);
    CHECK_STR(res.sha256, model_sha);
    CHECK_INT(stat_num("body_bytes"), served);
    CHECK_INT(stat_num("requests"), requests);
    cdt_download_free(d);
}

TEST(resume_after_drop_fetches_only_missing_bytes)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    const char *root = fresh_home();
    char path[512], range[64];

    /* Across runs: the first run has no retries and keeps its partial. */
    control("{\"reset\":true,\"drop_after\":700000}");
    p.max_retries = -1;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              CDT_ENET);
    CHECK(has(cdt_download_errmsg(d), "failed after 1 attempt"));
    cdt_download_free(d);
    snprintf(path, sizeof(path), "%s/models--org--model/blobs/%s.incomplete", root, model_sha);
    CHECK_INT(file_size(path), 700000);
    CHECK_INT(stat_num("body_bytes"), 700000);

    p.max_retries = 0; /* default */
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK_INT(res.bytes_fetched, MODEL_SIZE - 700000);
    CHECK_INT(stat_num("body_bytes"), MODEL_SIZE); /* not one byte twice */
    stat_str("last_range", range, sizeof(range));
    CHECK_STR(range, "bytes=700000-");
    CHECK_STR(res.sha256, model_sha);
    CHECK_INT(file_size(path), -1);
    cdt_download_free(d);

    /* A server that ignores Range (200 to a ranged GET): start over, still correct. */
    fresh_home();
    control("{\"reset\":true,\"drop_after\":500000}");
    p.max_retries = -1;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, NULL, &res), CDT_ENET);
    cdt_download_free(d);
    control("{\"ignore_range\":true}");
    p.max_retries = 0;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, NULL, &res), 0);
    CHECK_INT(stat_num("body_bytes"), 500000 + MODEL_SIZE);
    CHECK_STR(res.sha256, model_sha);
    cdt_download_free(d);

    /* Within a run: the retry resumes. */
    fresh_home();
    control("{\"reset\":true,\"drop_after\":1000000}");
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, NULL, &res), 0);
    CHECK_INT(stat_num("body_bytes"), MODEL_SIZE);
    CHECK_INT(stat_num("range_gets"), 1);
    CHECK_STR(res.sha256, model_sha);
    cdt_download_free(d);
}

TEST(wrong_bytes_fail_and_leave_nothing)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    const char *root = fresh_home();
    char want[256];

    REQUIRE((d = new_dl(&p)));
    for (int with_sha = 1; with_sha >= 0; with_sha--) {
        control("{\"reset\":true,\"wrong_bytes\":true}");
        CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0,
                                     with_sha ? model_sha : NULL, &res),
                  CDT_ECHECKSUM);
        snprintf(want, sizeof(want), "checksum mismatch for model.bin: expected %s, got ",
                 model_sha);
        CHECK(has(cdt_download_errmsg(d), want));
        CHECK(has(cdt_download_errmsg(d), "deleted"));
        CHECK(!exists("%s/models--org--model/blobs/%s.incomplete", root, model_sha));
        CHECK(!exists("%s/models--org--model/blobs/%s", root, model_sha));
        CHECK(!exists("%s/models--org--model/snapshots/%s/model.bin", root, model_commit));
    }
    /* A catalog sha256 that disagrees with the hub's is refused before any byte. */
    control("{\"reset\":true}");
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, gated_sha, &res),
              CDT_ECHECKSUM);
    CHECK(has(cdt_download_errmsg(d), "the hub has"));
    CHECK_INT(stat_num("body_bytes"), 0);
    cdt_download_free(d);
}

TEST(gated_repo_needs_the_token)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    char path[300];
    FILE *f;

    fresh_home();
    control("{\"reset\":true}");
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/gated", "main", "model.bin", 0, NULL, &res), CDT_EAUTH);
    CHECK(has(cdt_download_errmsg(d), "model org/gated is gated: accept its license on Hugging "
                                      "Face and set HF_TOKEN"));
    CHECK(has(cdt_download_errmsg(d), "You must have access to it"));
    cdt_download_free(d);

    setenv("HF_TOKEN", "hf_wrong", 1);
    p.token = NULL;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/gated", "main", "model.bin", 0, NULL, &res), CDT_EAUTH);
    CHECK(has(cdt_download_errmsg(d), "the token from HF_TOKEN was not accepted"));
    cdt_download_free(d);
    unsetenv("HF_TOKEN");
    CHECK_INT(stat_num("body_bytes"), 0);

    /* The right token, from $HF_HOME/token with whitespace around it. */
    snprintf(path, sizeof(path), "%s/token", getenv("HF_HOME"));
    f = fopen(path, "w");
    REQUIRE(f);
    fputs("  " TOKEN "\n", f);
    fclose(f);
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/gated", "main", "model.bin", GATED_SIZE, gated_sha, &res),
              0);
    CHECK_STR(cdt_download_errmsg(d), "");
    cdt_download_free(d);
    unlink(path);
}

TEST(not_found_follows_the_error_code)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download *d;

    fresh_home();
    control("{\"reset\":true}");
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "nope.gguf", 0, NULL, NULL),
              CDT_ENOTFOUND);
    CHECK(has(cdt_download_errmsg(d), "nope.gguf not found in org/model at main: Entry not found"));
    /* RepoNotFound comes as a 401: still "not found", not "gated". */
    CHECK_INT(cdt_download_fetch(d, "org/missing", "main", "model.bin", 0, NULL, NULL),
              CDT_ENOTFOUND);
    CHECK(has(cdt_download_errmsg(d), "repository org/missing not found"));
    CHECK_INT(cdt_download_fetch(d, "org/model", "v9", "model.bin", 0, NULL, NULL), CDT_ENOTFOUND);
    CHECK(has(cdt_download_errmsg(d), "Invalid rev id: v9"));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "../x", 0, NULL, NULL), CDT_EINVAL);
    CHECK_INT(stat_num("body_bytes"), 0);
    cdt_download_free(d);
}

TEST(insufficient_disk_is_refused_before_any_byte)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download *d;
    uint64_t avail = 0;
    const char *root = fresh_home();

    control("{\"reset\":true}");
    REQUIRE(cdt_sysinfo_free_disk(tmp, &avail) == 0);
    p.max_file_size = UINT64_MAX / 2;
    REQUIRE((d = new_dl(&p)));
    /* The expected size is over the free space: no request at all. */
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", avail + 1, NULL, NULL),
              CDT_ENOSPACE);
    CHECK(has(cdt_download_errmsg(d), "Insufficient disk space: need "));
    CHECK(has(cdt_download_errmsg(d), ", have "));
    CHECK(has(cdt_download_errmsg(d), root));
    CHECK_INT(stat_num("requests"), 0);
    cdt_download_free(d);

    /* Size from the hub, a reserve that leaves less than that: refused after the
     * HEAD, still before any byte. */
    p.disk_reserve = avail - MODEL_SIZE / 2;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, NULL, NULL), CDT_ENOSPACE);
    CHECK(has(cdt_download_errmsg(d), "Insufficient disk space"));
    CHECK_INT(stat_num("body_bytes"), 0);
    CHECK_INT(stat_num("cdn_gets"), 0);
    cdt_download_free(d);
}

TEST(stall_is_retried)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    double t0;

    fresh_home();
    control("{\"reset\":true,\"stall_after\":300000,\"stall_ms\":5000}");
    REQUIRE((d = new_dl(&p)));
    t0 = now_s();
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK(now_s() - t0 < 4.5); /* the 1 s stall timeout fired, not the hub's 5 s */
    CHECK_INT(stat_num("body_bytes"), MODEL_SIZE);
    CHECK_INT(stat_num("range_gets"), 1);
    cdt_download_free(d);
}

/* A server dripping bytes (under CDT_DL_MIN_SPEED) is a stall too, like no bytes at
 * all (issue 14): retried, then a clear error, not a download that never ends. */
TEST(trickle_is_a_stall)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;

    fresh_home();
    control("{\"reset\":true,\"rate\":200}");
    REQUIRE((d = new_dl(&p)));
    CHECK(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res) !=
          0);
    CHECK(strstr(cdt_download_errmsg(d), "bytes/s") != NULL);
    cdt_download_free(d);
    control("{\"reset\":true}");
}

/* A response header over libcurl's 100 KB limit is the server's fault, said so —
 * not "Out of memory". */
TEST(huge_header_is_the_servers_fault)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;

    fresh_home();
    control("{\"reset\":true,\"header_bytes\":200000}");
    REQUIRE((d = new_dl(&p)));
    CHECK(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res) !=
          0);
    fprintf(stderr, "  %s\n", cdt_download_errmsg(d));
    CHECK(strstr(cdt_download_errmsg(d), "Out of memory") == NULL);
    CHECK(strstr(cdt_download_errmsg(d), "too large") != NULL);
    cdt_download_free(d);
    control("{\"reset\":true}");
}

struct cancel_ctx {
    struct cdt_download *d;
    uint64_t at;
};

static void cancel_at(const struct cdt_download_progress *pr, void *ud)
{
    struct cancel_ctx *c = ud;

    if (pr->bytes_done >= c->at)
        cdt_download_cancel(c->d);
}

TEST(cancel_keeps_the_partial_then_resume_completes)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cancel_ctx cc = {NULL, 400000};
    const char *root = fresh_home();
    char path[512], range[64], want[64];
    off_t part;

    control("{\"reset\":true,\"rate\":2000000}");
    p.progress = cancel_at;
    p.user_data = &cc;
    REQUIRE((cc.d = new_dl(&p)));
    CHECK_INT(
        cdt_download_fetch(cc.d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
        CDT_ECANCELED);
    CHECK(has(cdt_download_errmsg(cc.d), "cancelled"));
    /* Sticky: the next file of the same pull stops too. */
    CHECK_INT(cdt_download_fetch(cc.d, "org/gated", "main", "model.bin", 0, NULL, &res),
              CDT_ECANCELED);
    cdt_download_free(cc.d);
    snprintf(path, sizeof(path), "%s/models--org--model/blobs/%s.incomplete", root, model_sha);
    part = file_size(path);
    CHECK(part >= 400000 && part < MODEL_SIZE);
    CHECK(!exists("%s/models--org--model/snapshots/%s", root, model_commit));

    settle();
    control("{\"reset\":true}");
    p.progress = NULL;
    REQUIRE((cc.d = new_dl(&p)));
    CHECK_INT(
        cdt_download_fetch(cc.d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res), 0);
    CHECK_INT(stat_num("body_bytes"), MODEL_SIZE - part);
    stat_str("last_range", range, sizeof(range));
    snprintf(want, sizeof(want), "bytes=%lld-", (long long)part);
    CHECK_STR(range, want);
    cdt_download_free(cc.d);

    /* `models rm`: the file, its blob, and a partial all go. */
    CHECK_INT(cdt_hfcache_remove(root, "org/model", "main", "model.bin", NULL, NULL, 0), 0);
    CHECK(!exists("%s/models--org--model/snapshots/%s/model.bin", root, model_commit));
    CHECK(!exists("%s/models--org--model/blobs/%s", root, model_sha));
    CHECK_INT(cdt_hfcache_remove(root, "org/model", "main", "model.bin", NULL, NULL, 0),
              CDT_ENOTFOUND);
    write_file(path, 1000, 1);
    CHECK_INT(cdt_hfcache_remove(root, "org/model", "main", "model.bin", model_sha, NULL, 0), 0);
    CHECK_INT(file_size(path), -1);
}

struct prog {
    int calls, finals, verify_calls;
    double first, last, min_gap;
    uint64_t last_done, last_total;
    bool saw_speed, saw_eta, monotonic;
    char file[64];
};

static void record(const struct cdt_download_progress *pr, void *ud)
{
    struct prog *g = ud;
    double t = now_s();

    if (pr->phase == CDT_DL_PHASE_VERIFY) {
        g->verify_calls++;
        return;
    }
    if (g->calls && t - g->last < g->min_gap && pr->bytes_done != pr->bytes_total)
        g->min_gap = t - g->last;
    if (!g->calls)
        g->first = t;
    if (g->calls && pr->bytes_done < g->last_done)
        g->monotonic = false;
    g->calls++;
    g->last = t;
    g->last_done = pr->bytes_done;
    g->last_total = pr->bytes_total;
    g->saw_speed |= pr->speed > 0;
    g->saw_eta |= pr->eta_s > 0;
    g->finals += pr->bytes_done == pr->bytes_total;
    snprintf(g->file, sizeof(g->file), "%s", pr->file);
}

TEST(progress_at_most_10_per_second)
{
    struct cdt_download_params p = fast_params();
    struct prog g = {.min_gap = 1e9, .monotonic = true};
    struct cdt_download *d;
    double t0, elapsed;

    fresh_home();
    control("{\"reset\":true,\"rate\":1500000}");
    p.progress = record;
    p.user_data = &g;
    REQUIRE((d = new_dl(&p)));
    t0 = now_s();
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, NULL),
              0);
    elapsed = now_s() - t0;
    fprintf(stderr, "  %d progress calls in %.2f s, min gap %.3f s\n", g.calls, elapsed, g.min_gap);
    CHECK(elapsed > 1.0);
    CHECK(g.calls >= 5);
    CHECK(g.calls <= elapsed * 10 + 2); /* + the first and the final call */
    CHECK(g.min_gap >= 0.095);
    CHECK_INT(g.finals, 1);
    CHECK_INT(g.last_done, MODEL_SIZE);
    CHECK_INT(g.last_total, MODEL_SIZE);
    CHECK(g.saw_speed);
    CHECK(g.saw_eta);
    CHECK(g.monotonic);
    CHECK_STR(g.file, "model.bin");
    cdt_download_free(d);
}

TEST(file_already_in_cache_is_reused)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct prog g = {.min_gap = 1e9};
    struct cdt_download *d;
    const char *root = fresh_home();
    char dir[512], path[1024], target[128], model[300];
    struct stat st;

    /* Seed the layout the way huggingface_hub writes it. */
    snprintf(model, sizeof(model), "%s/hub/org/model/model.bin", tmp);
    snprintf(dir, sizeof(dir), "%s/models--org--model/blobs", root);
    CHECK_INT(cdt_mkdir_p(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, model_sha);
    copy_file(model, path);
    snprintf(dir, sizeof(dir), "%s/models--org--model/snapshots/%s", root, model_commit);
    CHECK_INT(cdt_mkdir_p(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    snprintf(target, sizeof(target), "../../blobs/%s", model_sha);
    CHECK_INT(symlink(target, path), 0);
    snprintf(dir, sizeof(dir), "%s/models--org--model/refs", root);
    CHECK_INT(cdt_mkdir_p(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/main", dir);
    write_file(path, 0, 0);
    {
        FILE *f = fopen(path, "w");

        fputs(model_commit, f);
        fclose(f);
    }

    control("{\"reset\":true}");
    p.progress = record;
    p.user_data = &g;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK(res.cached);
    CHECK_INT(res.requests, 0);
    CHECK_INT(stat_num("requests"), 0);
    /* Not written by us: hashed once, then marked. */
    CHECK(g.verify_calls >= 1);
    CHECK(cdt_hfcache_is_verified(root, "org/model", model_sha, model_sha));
    g.verify_calls = 0;
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK_INT(g.verify_calls, 0);

    /* A corrupt seeded blob (same size) is found out, deleted and fetched again. */
    snprintf(path, sizeof(path), "%s/models--org--model/blobs/%s", root, model_sha);
    unlink(path);
    write_file(path, MODEL_SIZE, 99);
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK(!res.cached);
    CHECK_INT(stat_num("body_bytes"), MODEL_SIZE);
    CHECK_STR(res.sha256, model_sha);
    cdt_download_free(d);

    /* llama.cpp's old flat cache: verified, then hard-linked (not copied). */
    root = fresh_home();
    snprintf(path, sizeof(path), "%s/llama/org_model_model.bin", tmp);
    copy_file(model, path);
    control("{\"reset\":true}");
    p.progress = NULL;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, NULL, &res), 0);
    CHECK(res.cached);
    CHECK_INT(stat_num("body_bytes"), 0);
    CHECK(res.requests >= 1); /* the HEAD that resolves the commit and sha256 */
    CHECK(stat(path, &st) == 0 && st.st_nlink == 2);
    snprintf(path, sizeof(path), "%s/models--org--model/snapshots/%s/model.bin", root,
             model_commit);
    CHECK_STR(res.path, path);
    cdt_download_free(d);

    /* The same bytes under a second revision: linked to the blob, no GET. */
    control("{\"reset\":true}");
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", model_commit, "model.bin", 0, NULL, &res), 0);
    CHECK(res.cached);
    CHECK_INT(stat_num("requests"), 0);
    cdt_download_free(d);
}

TEST(relative_307_for_small_files)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    const char *root = fresh_home();
    char link[256], etag[41], text[256], path[512];
    ssize_t n;

    control("{\"reset\":true}");
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "config/small.json", SMALL_SIZE, small_sha,
                                 &res),
              0);
    CHECK_STR(res.sha256, small_sha);
    CHECK_INT(res.requests, 3); /* HEAD 307, HEAD resolve-cache, GET */
    CHECK_INT(stat_num("body_bytes"), SMALL_SIZE);
    /* Non-LFS blobs are named by their git blob sha1, like huggingface_hub does. */
    {
        char blob[SMALL_SIZE + 32];
        FILE *f;
        int len = snprintf(text, sizeof(text), "blob %d", SMALL_SIZE);

        snprintf(path, sizeof(path), "%s/hub/org/model/config/small.json", tmp);
        f = fopen(path, "rb");
        REQUIRE(f);
        memcpy(blob, text, (size_t)len + 1);
        CHECK_INT(fread(blob + len + 1, 1, SMALL_SIZE, f), SMALL_SIZE);
        fclose(f);
        {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int mn = 0;

            EVP_Digest(blob, (size_t)len + 1 + SMALL_SIZE, md, &mn, EVP_sha1(), NULL);
            for (unsigned i = 0; i < mn; i++)
                snprintf(etag + 2 * i, 3, "%02x", md[i]);
        }
    }
    n = readlink(res.path, link, sizeof(link) - 1);
    REQUIRE(n > 0);
    link[n] = '\0';
    snprintf(text, sizeof(text), "../../../blobs/%s", etag);
    CHECK_STR(link, text);
    snprintf(path, sizeof(path), "%s/models--org--model/snapshots/%s/config/small.json", root,
             model_commit);
    CHECK_STR(res.path, path);
    cdt_download_free(d);
    /* Without an expected sha256 only the size can be checked; it still lands. */
    fresh_home();
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "config/small.json", 0, NULL, &res), 0);
    CHECK_STR(res.sha256, small_sha);
    CHECK(!res.cached);
    /* Found again by size alone: no sha256 to report. */
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "config/small.json", 0, NULL, &res), 0);
    CHECK(res.cached);
    CHECK_STR(res.sha256, "");
    cdt_download_free(d);
}

TEST(token_not_sent_to_another_host)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    char line[1024];
    int cdn_lines = 0, cdn_auth = 0;
    FILE *f;

    fresh_home();
    CHECK_INT(truncate(hub_log, 0), 0);
    control("{\"reset\":true,\"cdn_host\":\"localhost\"}");
    p.token = TOKEN;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/gated", "main", "model.bin", GATED_SIZE, gated_sha, &res),
              0);
    cdt_download_free(d);
    CHECK(stat_num("auth_hub") >= 1);
    CHECK_INT(stat_num("auth_cdn"), 0);
    f = fopen(hub_log, "r");
    REQUIRE(f);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "GET /cdn/", 9) != 0)
            continue;
        cdn_lines++;
        cdn_auth += strstr(line, "auth=yes") != NULL;
        CHECK(strstr(line, "host=localhost:") != NULL);
    }
    fclose(f);
    CHECK_INT(cdn_lines, 1);
    CHECK_INT(cdn_auth, 0);

    /* Control: on the hub's own host the header does go (the counter works). */
    fresh_home();
    control("{\"reset\":true}");
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/gated", "main", "model.bin", GATED_SIZE, gated_sha, &res),
              0);
    cdt_download_free(d);
    CHECK(stat_num("auth_cdn") >= 1);
}

TEST(rate_limit_and_server_errors_are_retried)
{
    struct cdt_download_params p = fast_params();
    struct cdt_download_result res;
    struct cdt_download *d;
    double t0;

    fresh_home();
    /* 429 with Retry-After: 30 — waited, capped at retry_max_ms (200 ms here). */
    control("{\"reset\":true,\"status\":429,\"retry_after\":30}");
    REQUIRE((d = new_dl(&p)));
    t0 = now_s();
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", MODEL_SIZE, model_sha, &res),
              0);
    CHECK(now_s() - t0 >= 0.19);
    CHECK(now_s() - t0 < 5);
    cdt_download_free(d);

    /* 503 every time: bounded retries, then a network error saying so. */
    fresh_home();
    control("{\"reset\":true,\"status\":503,\"times\":100}");
    p.max_retries = 2;
    REQUIRE((d = new_dl(&p)));
    CHECK_INT(cdt_download_fetch(d, "org/model", "main", "model.bin", 0, NULL, &res), CDT_ENET);
    CHECK(has(cdt_download_errmsg(d), "failed after 3 attempts: HTTP 503"));
    CHECK_INT(stat_num("requests"), 3);
    cdt_download_free(d);
    control("{\"reset\":true}");
}

TEST(remove_keeps_a_blob_another_snapshot_uses)
{
    const char *root = fresh_home();
    char src[512], other[41];
    struct cdt_hfcache_entry e;

    memset(other, 'b', 40);
    other[40] = '\0';
    snprintf(src, sizeof(src), "%s/blob.incomplete", root);
    CHECK_INT(cdt_mkdir_p(root, 0755), 0);
    write_file(src, 5000, 7);
    CHECK_INT(cdt_hfcache_commit(root, "org/x", "main", model_commit, "a/f.bin", "k1", src, NULL,
                                 NULL, 0),
              0);
    CHECK_INT(cdt_hfcache_commit(root, "org/x", "v2", other, "a/f.bin", "k1", NULL, NULL, NULL, 0),
              0);
    CHECK_INT(cdt_hfcache_find(root, "org/x", "v2", "a/f.bin", &e), 0);
    CHECK_STR(e.commit, other);
    CHECK_STR(e.key, "k1");
    CHECK_INT(e.size, 5000);
    CHECK_INT(cdt_hfcache_remove(root, "org/x", "main", "a/f.bin", NULL, NULL, 0), 0);
    CHECK_INT(cdt_hfcache_find(root, "org/x", "main", "a/f.bin", &e), CDT_ENOTFOUND);
    CHECK(exists("%s/models--org--x/blobs/%s", root, "k1"));              /* v2 still links to it */
    CHECK(!exists("%s/models--org--x/snapshots/%s", root, model_commit)); /* empty dirs go */
    CHECK_INT(cdt_hfcache_remove(root, "org/x", "v2", "a/f.bin", NULL, NULL, 0), 0);
    CHECK(!exists("%s/models--org--x/blobs/%s", root, "k1"));
}

/* The damaged marker (cdt_models_verify's finding, for later runs): it holds while the
 * blob is the one marked, drops the verified marker, and goes with the blob. */
TEST(damaged_marker_follows_the_blob)
{
    const char *root = fresh_home();
    char src[512], blob[512], got[CDT_SHA256_HEX], bad[65];
    struct timespec later = {0, 0};

    memset(bad, 'e', 64);
    bad[64] = '\0';
    snprintf(src, sizeof(src), "%s/blob.incomplete", root);
    CHECK_INT(cdt_mkdir_p(root, 0755), 0);
    write_file(src, 5000, 7);
    CHECK_INT(
        cdt_hfcache_commit(root, "org/x", "main", model_commit, "f.bin", "k1", src, NULL, NULL, 0),
        0);
    CHECK_INT(cdt_hfcache_mark_verified(root, "org/x", "k1", model_sha), 0);
    CHECK(!cdt_hfcache_is_damaged(root, "org/x", "k1", got));
    CHECK_STR(got, "");
    CHECK_INT(cdt_hfcache_mark_damaged(root, "org/x", "k1", bad), 0);
    CHECK(cdt_hfcache_is_damaged(root, "org/x", "k1", got));
    CHECK_STR(got, bad);
    CHECK(!cdt_hfcache_is_verified(root, "org/x", "k1", model_sha));
    CHECK_INT(cdt_hfcache_mark_damaged(root, "org/x", "nope", bad), CDT_ENOTFOUND);
    CHECK_INT(cdt_hfcache_mark_damaged(root, "org/x", "k1", "not a sha"), CDT_EINVAL);
    /* Another blob under that name (a new mtime): not the one marked. */
    snprintf(blob, sizeof(blob), "%s/models--org--x/blobs/k1", root);
    later.tv_sec = time(NULL) + 10;
    {
        struct timespec ts[2] = {later, later};

        CHECK_INT(utimensat(AT_FDCWD, blob, ts, 0), 0);
    }
    CHECK(!cdt_hfcache_is_damaged(root, "org/x", "k1", NULL));
    CHECK_INT(cdt_hfcache_mark_damaged(root, "org/x", "k1", bad), 0);
    CHECK(cdt_hfcache_is_damaged(root, "org/x", "k1", NULL));
    CHECK_INT(cdt_hfcache_remove(root, "org/x", "main", "f.bin", NULL, NULL, 0), 0);
    CHECK(!exists("%s/models--org--x/.codictate/damaged/k1", root));
    CHECK(!cdt_hfcache_is_damaged(root, "org/x", "k1", NULL));
}

int main(int argc, char **argv)
{
    char path[512];
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: test_download FAKEHUB\n");
        return 2;
    }
    snprintf(tmp, sizeof(tmp), "%s/cdt-download-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* The hub's files: an LFS model, a gated one, a small non-LFS config. */
    snprintf(path, sizeof(path), "%s/hub/org/model/config", tmp);
    if (cdt_mkdir_p(path, 0755) != 0)
        return 1;
    snprintf(path, sizeof(path), "%s/hub/org/gated", tmp);
    if (cdt_mkdir_p(path, 0755) != 0)
        return 1;
    snprintf(path, sizeof(path), "%s/llama", tmp);
    if (cdt_mkdir_p(path, 0755) != 0)
        return 1;
    setenv("LLAMA_CACHE", path, 1);
    snprintf(path, sizeof(path), "%s/hub/org/model/model.bin", tmp);
    write_file(path, MODEL_SIZE, 1);
    rc = cdt_hfcache_sha256_file(path, NULL, NULL, model_sha);
    snprintf(path, sizeof(path), "%s/hub/org/gated/model.bin", tmp);
    write_file(path, GATED_SIZE, 2);
    rc |= cdt_hfcache_sha256_file(path, NULL, NULL, gated_sha);
    snprintf(path, sizeof(path), "%s/hub/org/model/config/small.json", tmp);
    write_file(path, SMALL_SIZE, 3);
    rc |= cdt_hfcache_sha256_file(path, NULL, NULL, small_sha);
    sha1_hex("commit org/model", model_commit);
    if (rc != 0 || start_hub(argv[1]) != 0)
        return 1;
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_TOKEN_PATH");
    unsetenv("HF_HUB_CACHE");
    unsetenv("XDG_CACHE_HOME");
    setenv("HF_ENDPOINT", endpoint, 1);

    RUN(helpers);
    RUN(cache_root_and_token_from_env);
    RUN(full_download_lands_in_hf_layout);
    RUN(resume_after_drop_fetches_only_missing_bytes);
    RUN(wrong_bytes_fail_and_leave_nothing);
    RUN(gated_repo_needs_the_token);
    RUN(not_found_follows_the_error_code);
    RUN(insufficient_disk_is_refused_before_any_byte);
    RUN(stall_is_retried);
    RUN(trickle_is_a_stall);
    RUN(huge_header_is_the_servers_fault);
    RUN(cancel_keeps_the_partial_then_resume_completes);
    RUN(progress_at_most_10_per_second);
    RUN(file_already_in_cache_is_reused);
    RUN(relative_307_for_small_files);
    RUN(token_not_sent_to_another_host);
    RUN(rate_limit_and_server_errors_are_retried);
    RUN(remove_keeps_a_blob_another_snapshot_uses);
    RUN(damaged_marker_follows_the_blob);

    stop_hub();
    curl_global_cleanup();
    if (!getenv("CDT_KEEP_TMP")) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tmp);
    }
    return TEST_END();
}
