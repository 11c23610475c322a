/* The sidecar's HTTP layer against a fake backend: routes, validation, error
 * codes, security, queueing, cancel on disconnect, shutdown. The real engine is
 * covered by tests/integration (test_engine, test_sidecar.sh). */
#include "../../src/sidecar/sidecar.h"
#include "../test.h"
#include "codictate/httpd.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- fake backend ---- */

struct fake {
    struct cdt_backend base;
    bool loaded;
    int token_ms; /* per fake token */
    int n_tokens; /* tokens per generation */
    int load_ms;  /* how long a load takes */
    bool pieces;  /* report text through on_text, token by token */
    int fail_at;  /* with pieces: fail with CDT_EENGINE before this piece (0: never) */
    atomic_int cancels;
    atomic_int generations;
};

static int fake_load(struct cdt_backend *be, const char *path, int n_ctx,
                     struct cdt_model_info *info, char *errmsg, size_t errcap)
{
    struct fake *f = (struct fake *)be;

    f->loaded = false;
    usleep((useconds_t)f->load_ms * 1000);
    if (strcmp(path, "/models/good.gguf") != 0) {
        snprintf(errmsg, errcap, "no such file: %s", path);
        return CDT_ENOTFOUND;
    }
    f->loaded = true;
    snprintf(info->path, sizeof(info->path), "%s", path);
    snprintf(info->arch, sizeof(info->arch), "qwen3");
    snprintf(info->name, sizeof(info->name), "fake");
    info->n_ctx = n_ctx;
    info->n_ctx_train = 40960;
    info->n_params = 1000;
    info->file_size = 2000;
    return 0;
}

static void fake_unload(struct cdt_backend *be)
{
    ((struct fake *)be)->loaded = false;
}

static _Atomic float last_top_p;      /* the params the last generation got */
static struct cdt_gen_params last_gp; /* its scalars (the pointers are not kept valid) */

static int fake_generate(struct cdt_backend *be, const struct cdt_gen_params *p,
                         struct cdt_gen_result *r)
{
    struct fake *f = (struct fake *)be;
    char buf[256];
    const char *prompt = p->n_messages > 0 ? p->messages[p->n_messages - 1].content : p->prompt;

    memset(r, 0, sizeof(*r));
    last_top_p = p->top_p;
    last_gp = *p;
    if (!f->loaded)
        return CDT_ESTATE;
    if (strlen(prompt) > 1000) {
        snprintf(r->errmsg, sizeof(r->errmsg), "Prompt too long: %zu tokens, context 4096",
                 strlen(prompt));
        return CDT_ETOOBIG;
    }
    atomic_fetch_add(&f->generations, 1);
    for (int i = 0; i < f->n_tokens; i++) {
        if (p->should_cancel && p->should_cancel(p->user_data)) {
            atomic_fetch_add(&f->cancels, 1);
            return CDT_ECANCELED;
        }
        usleep((useconds_t)f->token_ms * 1000);
        if (f->pieces && f->fail_at == i + 1 && i > 0) {
            snprintf(r->errmsg, sizeof(r->errmsg), "fake engine failure");
            return CDT_EENGINE;
        }
        if (f->pieces && p->on_text) {
            char piece[32];
            snprintf(piece, sizeof(piece), "w%d ", i);
            if (p->on_logprobs) {
                struct cdt_token_logprobs lp = {.token = {piece, strlen(piece), -0.5f}};

                for (int k = 0; k < p->top_logprobs; k++)
                    lp.top[k] = (struct cdt_token_prob){"alt", 3, -1.0f - (float)k};
                lp.n_top = p->top_logprobs;
                p->on_logprobs(&lp, p->user_data);
            }
            if (p->on_text(piece, strlen(piece), p->user_data)) {
                r->stopped_by_callback = true;
                r->tokens_generated = i + 1;
                r->finish_reason = "stop";
                return 0;
            }
        }
    }
    if (f->pieces) {
        r->tokens_generated = f->n_tokens;
        r->finish_reason = "length";
        r->prompt_format_mode = "chat_template";
        r->timings.prompt_tokens = p->n_messages > 0 ? 11 : 7;
        return 0;
    }
    snprintf(buf, sizeof(buf), "<think>\nhidden\n</think>\n\n  Echo: %.100s (t=%.1f) \n", prompt,
             (double)p->temperature);
    r->text = strdup(buf);
    r->tokens_generated = f->n_tokens;
    r->prompt_format_mode = "chat_template";
    r->timings.prompt_tokens = 7;
    r->timings.generated_tokens = f->n_tokens;
    return 0;
}

static void fake_free(struct cdt_backend *be)
{
    (void)be;
}

static const struct cdt_backend_ops fake_ops = {
    .load = fake_load, .unload = fake_unload, .generate = fake_generate, .free = fake_free};

/* ---- a tiny HTTP client ---- */

struct resp {
    long status;
    char *body;
    size_t len;
    double ms;
    char *hdrs; /* the response's header lines, "\n"-separated */
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);

    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t old = r->hdrs ? strlen(r->hdrs) : 0, k = sz * n;
    char *nh = realloc(r->hdrs, old + k + 1);

    if (!nh)
        return 0;
    r->hdrs = nh;
    memcpy(r->hdrs + old, p, k);
    r->hdrs[old + k] = '\0';
    return k;
}

/* The value of response header `name` (case-insensitive), copied into buf; NULL
 * when absent. */
static const char *header_of(const struct resp *r, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);

    for (const char *l = r->hdrs; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);

        if (len > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            size_t vl;

            while (*v == ' ')
                v++;
            vl = (size_t)(l + len - v);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            snprintf(buf, cap, "%.*s", (int)vl, v);
            return buf;
        }
        l = e ? e + 1 : l + len;
    }
    return NULL;
}

static int port;

/* method, path, body (NULL: none), extra headers (NULL-terminated), timeout ms */
static struct resp call(const char *method, const char *path, const char *body,
                        const char *const *headers, long timeout_ms)
{
    struct resp r = {0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[256];
    struct timespec t0, t1;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (timeout_ms)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    for (int i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r.ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = strdup("");
    return r;
}

static cJSON *json_of(const struct resp *r)
{
    return cJSON_Parse(r->body ? r->body : "");
}

static const char *str_field(cJSON *o, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool detail_has(const struct resp *r, const char *needle)
{
    cJSON *o = json_of(r);
    const char *d = str_field(o, "detail");
    bool ok = d && strstr(d, needle);

    if (!ok)
        fprintf(stderr, "  body: %s (want detail with \"%s\")\n", r->body, needle);
    cJSON_Delete(o);
    return ok;
}

/* The body is OpenAI's error object with this type and code (NULL: JSON null), and
 * no seed-style "detail". */
static bool oai_error_is(const struct resp *r, const char *type, const char *code)
{
    cJSON *o = json_of(r), *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    bool ok = cJSON_IsObject(e) && str_field(e, "message") && str_field(e, "type") &&
              strcmp(str_field(e, "type"), type) == 0 && cJSON_HasObjectItem(e, "param") &&
              (code ? cJSON_IsString(c) && strcmp(c->valuestring, code) == 0 : cJSON_IsNull(c)) &&
              !cJSON_HasObjectItem(o, "detail");

    if (!ok)
        fprintf(stderr, "  body: %s (want an OpenAI error %s/%s)\n", r->body, type,
                code ? code : "null");
    cJSON_Delete(o);
    return ok;
}

#define FREE_RESP(r) (free((r).body), free((r).hdrs))

/* ---- fixture ---- */

static struct fake fake;
static struct cdt_sidecar *sc;

static int start(const char *token, int queue_max)
{
    struct cdt_sidecar_params p = cdt_sidecar_default_params();
    char err[256];

    memset(&fake, 0, sizeof(fake));
    fake.base.ops = &fake_ops;
    fake.n_tokens = 5;
    fake.token_ms = 1;
    p.backend = &fake.base;
    p.token = token;
    p.queue_max = queue_max;
    /* Away from the sidecar's default range, so a running sidecar does not matter. */
    p.port_min = 20000 + (getpid() % 20000);
    p.port_max = p.port_min + 200;
    if (cdt_sidecar_new(&p, &sc, err, sizeof(err)) != 0) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    port = cdt_sidecar_port(sc);
    return 0;
}

static void stop(void)
{
    cdt_sidecar_free(sc);
    sc = NULL;
}

/* ---- tests ---- */

TEST(status_without_model)
{
    struct resp r = call("GET", "/status", NULL, NULL, 0);
    cJSON *o = json_of(&r);

    CHECK_INT(r.status, 200);
    REQUIRE(o);
    CHECK_STR(str_field(o, "status"), "running");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "model_loaded")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "model_path")));
    CHECK_STR(str_field(o, "state"), "idle");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "memory"), "rss_bytes")));
    cJSON_Delete(o);
    FREE_RESP(r);
    r = call("GET", "/health", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"ok\"") != NULL);
    FREE_RESP(r);
}

TEST(generate_without_model)
{
    struct resp r = call("POST", "/generate", "{\"prompt\":\"hi\"}", NULL, 0);

    CHECK_INT(r.status, 400);
    CHECK(detail_has(&r, "No model loaded. Call /load first."));
    FREE_RESP(r);
}

TEST(load_errors)
{
    struct resp r = call("POST", "/load", "{}", NULL, 0);

    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "model_path"));
    FREE_RESP(r);
    r = call("POST", "/load", "{\"model_path\":42}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "model_path: must be a string"));
    FREE_RESP(r);
    r = call("POST", "/load", "{\"model_path\":\"/models/missing.gguf\"}", NULL, 0);
    CHECK_INT(r.status, 500);
    CHECK(detail_has(&r, "Failed to load model: no such file: /models/missing.gguf"));
    FREE_RESP(r);
    r = call("GET", "/status", NULL, NULL, 0);
    CHECK(strstr(r.body, "\"model_loaded\":false") != NULL);
    FREE_RESP(r);
}

TEST(load_generate_unload)
{
    struct resp r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    cJSON *o, *t;

    CHECK_INT(r.status, 200);
    o = json_of(&r);
    CHECK_STR(str_field(o, "status"), "loaded");
    CHECK_STR(str_field(o, "model_path"), "/models/good.gguf");
    cJSON_Delete(o);
    FREE_RESP(r);

    r = call("GET", "/status", NULL, NULL, 0);
    o = json_of(&r);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "model_loaded")));
    CHECK_STR(str_field(o, "model_path"), "/models/good.gguf");
    CHECK_STR(str_field(o, "state"), "ready");
    CHECK_STR(str_field(cJSON_GetObjectItem(o, "model"), "architecture"), "qwen3");
    cJSON_Delete(o);
    FREE_RESP(r);

    r = call("POST", "/generate", "{\"prompt\":\"hello\",\"max_tokens\":-1,\"temperature\":0}",
             NULL, 0);
    CHECK_INT(r.status, 200);
    o = json_of(&r);
    REQUIRE(o);
    /* Think block stripped, whitespace trimmed, as the seed cleans it. */
    CHECK_STR(str_field(o, "response"), "Echo: hello (t=0.0)");
    CHECK_INT(cJSON_GetObjectItem(o, "tokens_generated")->valueint, 5);
    CHECK_STR(str_field(o, "prompt_format_mode"), "chat_template");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(o, "prompt_format_fallback")));
    t = cJSON_GetObjectItem(o, "timings");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(t, "prompt_tokens")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(t, "tokens_per_second")));
    cJSON_Delete(o);
    FREE_RESP(r);

    /* "raw": true: the text as generated, every other field as before. */
    r = call("POST", "/generate", "{\"prompt\":\"hello\",\"temperature\":0,\"raw\":true}", NULL, 0);
    CHECK_INT(r.status, 200);
    o = json_of(&r);
    REQUIRE(o);
    CHECK_STR(str_field(o, "response"), "<think>\nhidden\n</think>\n\n  Echo: hello (t=0.0) \n");
    CHECK_INT(cJSON_GetObjectItem(o, "tokens_generated")->valueint, 5);
    CHECK_STR(str_field(o, "prompt_format_mode"), "chat_template");
    cJSON_Delete(o);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hello\",\"temperature\":0,\"raw\":false}", NULL,
             0);
    CHECK(strstr(r.body, "\"response\":\"Echo: hello (t=0.0)\"") != NULL);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hello\",\"raw\":\"yes\"}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(strstr(r.body, "raw") != NULL);
    FREE_RESP(r);
    /* Streamed: the pieces are always as generated; the final response follows raw. */
    r = call("POST", "/generate",
             "{\"prompt\":\"hello\",\"temperature\":0,\"stream\":true,\"raw\":true}", NULL, 0);
    CHECK(strstr(r.body, "\"response\":\"<think>\\nhidden\\n</think>\\n\\n  Echo: hello (t=0.0) "
                         "\\n\"") != NULL);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hello\",\"temperature\":0,\"stream\":true}", NULL,
             0);
    CHECK(strstr(r.body, "\"response\":\"Echo: hello (t=0.0)\"") != NULL);
    FREE_RESP(r);
    /* /v1 answers what the model generated, as OpenAI clients expect: no cutting. */
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"temperature\":0}", NULL,
             0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"content\":\"<think>\\nhidden\\n</think>\\n\\n  Echo: hello (t=0.0) "
                         "\\n\"") != NULL);
    FREE_RESP(r);

    /* Default temperature is the seed's 0.7 (and top_p its 0.8). */
    r = call("POST", "/generate", "{\"prompt\":\"x\"}", NULL, 0);
    CHECK(strstr(r.body, "(t=0.7)") != NULL);
    CHECK(last_top_p == 0.8f);
    FREE_RESP(r);
    /* top_p 0 is the smallest nucleus (the best token), not "off" (issue 14). */
    r = call("POST", "/generate", "{\"prompt\":\"x\",\"top_p\":0}", NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(last_top_p > 0.0f && last_top_p <= CDT_TOP_P_MIN);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"x\",\"top_p\":0.5}", NULL, 0);
    CHECK(last_top_p == 0.5f);
    FREE_RESP(r);

    r = call("POST", "/unload", "", NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"status\":\"unloaded\"") != NULL);
    CHECK(strstr(r.body, "\"model_loaded\":false") != NULL);
    CHECK(strstr(r.body, "\"model_path\":null") != NULL);
    FREE_RESP(r);
    r = call("POST", "/unload", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"status\":\"no_model_loaded\"") != NULL);
    FREE_RESP(r);
}

TEST(bad_requests)
{
    struct resp r;
    char *big;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\": \"hi\",\n \"temperature\": }", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(detail_has(&r, "Malformed JSON at line 2"));
    FREE_RESP(r);
    r = call("POST", "/generate", "[1,2]", NULL, 0);
    CHECK_INT(r.status, 422);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"temperature\":0.5}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "prompt: field required"));
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"temperature\":\"hot\"}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "temperature: must be a number"));
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"max_tokens\":0}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "max_tokens"));
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"max_tokens\":2.5}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "max_tokens: must be an integer"));
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"top_p\":1.5}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "top_p: must be between 0 and 1"));
    FREE_RESP(r);

    big = malloc(2000);
    REQUIRE(big);
    memset(big, 'a', 1999);
    big[1999] = '\0';
    {
        char *body = malloc(2100);
        snprintf(body, 2100, "{\"prompt\":\"%s\"}", big);
        r = call("POST", "/generate", body, NULL, 0);
        CHECK_INT(r.status, 400);
        CHECK(detail_has(&r, "Prompt too long: 1999 tokens, context 4096"));
        FREE_RESP(r);
        free(body);
    }
    free(big);

    big = malloc(CDT_HTTP_MAX_BODY + 100);
    REQUIRE(big);
    memset(big, ' ', CDT_HTTP_MAX_BODY + 99);
    big[0] = '{';
    big[CDT_HTTP_MAX_BODY + 98] = '}';
    big[CDT_HTTP_MAX_BODY + 99] = '\0';
    r = call("POST", "/generate", big, NULL, 0);
    CHECK_INT(r.status, 413);
    CHECK(detail_has(&r, "too large"));
    FREE_RESP(r);
    free(big);

    r = call("GET", "/nope", NULL, NULL, 0);
    CHECK_INT(r.status, 404);
    CHECK(detail_has(&r, "Not Found"));
    FREE_RESP(r);
    r = call("GET", "/generate", NULL, NULL, 0);
    CHECK_INT(r.status, 405);
    FREE_RESP(r);
    r = call("DELETE", "/status", NULL, NULL, 0);
    CHECK_INT(r.status, 405);
    FREE_RESP(r);
}

TEST(security_headers)
{
    static const char *const evil_host[] = {"Host: evil.example.com", NULL};
    static const char *const rebind[] = {"Host: 127.0.0.1.nip.io:11400", NULL};
    static const char *const evil_origin[] = {"Origin: http://evil.example.com", NULL};
    static const char *const null_origin[] = {"Origin: null", NULL};
    static const char *const good_origin[] = {"Origin: http://localhost:3000", NULL};
    static const char *const v6_host[] = {"Host: [::1]:11400", NULL};
    struct resp r;

    r = call("GET", "/status", NULL, evil_host, 0);
    CHECK_INT(r.status, 403);
    CHECK(detail_has(&r, "Host"));
    FREE_RESP(r);
    r = call("GET", "/status", NULL, rebind, 0);
    CHECK_INT(r.status, 403);
    FREE_RESP(r);
    r = call("GET", "/status", NULL, evil_origin, 0);
    CHECK_INT(r.status, 403);
    FREE_RESP(r);
    r = call("GET", "/status", NULL, null_origin, 0);
    CHECK_INT(r.status, 403);
    FREE_RESP(r);
    r = call("GET", "/status", NULL, good_origin, 0);
    CHECK_INT(r.status, 200);
    FREE_RESP(r);
    r = call("GET", "/status", NULL, v6_host, 0);
    CHECK_INT(r.status, 200);
    FREE_RESP(r);
}

TEST(loopback_rules)
{
    CHECK(cdt_http_is_loopback_host("127.0.0.1"));
    CHECK(cdt_http_is_loopback_host("127.0.0.1:11400"));
    CHECK(cdt_http_is_loopback_host("127.8.9.10"));
    CHECK(cdt_http_is_loopback_host("localhost"));
    CHECK(cdt_http_is_loopback_host("LOCALHOST:80"));
    CHECK(cdt_http_is_loopback_host("[::1]"));
    CHECK(cdt_http_is_loopback_host("[::1]:8080"));
    CHECK(cdt_http_is_loopback_host("::1"));
    CHECK(!cdt_http_is_loopback_host("localhost.evil.com"));
    CHECK(!cdt_http_is_loopback_host("127.0.0.1.evil.com"));
    CHECK(!cdt_http_is_loopback_host("10.0.0.1"));
    CHECK(!cdt_http_is_loopback_host("localhost:"));
    CHECK(!cdt_http_is_loopback_host("localhost:80x"));
    CHECK(!cdt_http_is_loopback_host(""));
    CHECK(!cdt_http_is_loopback_host(NULL));
    CHECK(cdt_http_is_loopback_origin("http://127.0.0.1:11380"));
    CHECK(cdt_http_is_loopback_origin("https://localhost"));
    CHECK(!cdt_http_is_loopback_origin("null"));
    CHECK(!cdt_http_is_loopback_origin("http://localhost/x"));
    CHECK(!cdt_http_is_loopback_origin("file://"));
}

TEST(token_required)
{
    static const char *const good[] = {"Authorization: Bearer s3cret-token", NULL};
    static const char *const bad[] = {"Authorization: Bearer s3cret-tokem", NULL};
    struct resp r;

    stop();
    REQUIRE(start("s3cret-token", 0) == 0);
    r = call("GET", "/status", NULL, NULL, 0);
    CHECK_INT(r.status, 401);
    CHECK(detail_has(&r, "Unauthorized"));
    FREE_RESP(r);
    r = call("GET", "/status", NULL, bad, 0);
    CHECK_INT(r.status, 401);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"x\"}", NULL, 0);
    CHECK_INT(r.status, 401);
    FREE_RESP(r);
    r = call("GET", "/status", NULL, good, 0);
    CHECK_INT(r.status, 200);
    FREE_RESP(r);
    r = call("GET", "/health", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    FREE_RESP(r);
    stop();
    REQUIRE(start(NULL, 0) == 0);
}

struct bg {
    pthread_t t;
    const char *body;
    long timeout_ms;
    struct resp r;
};

static void *bg_main(void *arg)
{
    struct bg *b = arg;

    b->r = call("POST", "/generate", b->body, NULL, b->timeout_ms);
    return NULL;
}

/* A fresh sidecar with a queue of one, a model loaded, and n background
 * /generate calls of 300 ms each started 50 ms apart: one runs, one waits, any
 * more are refused. False when the sidecar does not start. */
static bool start_busy(struct bg *b, int n)
{
    struct resp r;

    stop();
    if (start(NULL, 1) != 0)
        return false;
    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.n_tokens = 30;
    fake.token_ms = 10; /* 300 ms per generation */
    for (int i = 0; i < n; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        b[i].body = "{\"prompt\":\"q\"}";
        pthread_create(&b[i].t, NULL, bg_main, &b[i]);
        usleep(50 * 1000);
    }
    return true;
}

TEST(status_answers_during_generation_and_queue_bounds)
{
    struct bg b[3];
    struct resp r;
    int n200 = 0, n503 = 0;

    REQUIRE(start_busy(b, 3));
    r = call("GET", "/status", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(r.ms < 100);
    CHECK(strstr(r.body, "\"state\":\"generating\"") != NULL);
    FREE_RESP(r);
    r = call("GET", "/health", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(r.ms < 100);
    FREE_RESP(r);
    for (int i = 0; i < 3; i++) {
        pthread_join(b[i].t, NULL);
        if (b[i].r.status == 200)
            n200++;
        if (b[i].r.status == 503 && strstr(b[i].r.body, "busy"))
            n503++;
        FREE_RESP(b[i].r);
    }
    /* One running + one waiting fit; the third is refused. */
    CHECK_INT(n200, 2);
    CHECK_INT(n503, 1);
    stop();
    REQUIRE(start(NULL, 0) == 0);
}

static void *bg_load(void *arg)
{
    struct bg *b = arg;

    b->r = call("POST", "/load", b->body, NULL, 0);
    return NULL;
}

TEST(health_is_503_while_loading)
{
    struct bg b;
    struct resp r;

    memset(&b, 0, sizeof(b));
    fake.load_ms = 400;
    b.body = "{\"model_path\":\"/models/good.gguf\"}";
    pthread_create(&b.t, NULL, bg_load, &b);
    usleep(150 * 1000);
    r = call("GET", "/health", NULL, NULL, 0);
    CHECK_INT(r.status, 503);
    CHECK_STR(r.body, "{\"status\":\"loading\"}");
    FREE_RESP(r);
    r = call("GET", "/status", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"state\":\"loading\"") != NULL);
    CHECK(r.ms < 100);
    FREE_RESP(r);
    pthread_join(b.t, NULL);
    CHECK_INT(b.r.status, 200);
    FREE_RESP(b.r);
    fake.load_ms = 0;
    r = call("GET", "/health", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    FREE_RESP(r);
}

TEST(disconnect_cancels_generation)
{
    struct resp r;
    int before;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.n_tokens = 200;
    fake.token_ms = 10; /* 2 s if not cancelled */
    before = atomic_load(&fake.cancels);
    r = call("POST", "/generate", "{\"prompt\":\"q\"}", NULL, 150);
    CHECK_INT(r.status, 0); /* our client gave up */
    FREE_RESP(r);
    for (int i = 0; i < 100 && atomic_load(&fake.cancels) == before; i++)
        usleep(10 * 1000);
    CHECK_INT(atomic_load(&fake.cancels), before + 1);
    /* The worker is free again at once. */
    fake.n_tokens = 2;
    r = call("POST", "/generate", "{\"prompt\":\"after\"}", NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(r.ms < 500);
    FREE_RESP(r);
}

/* Reads an SSE body into its "data:" payloads. */
static int sse_events(const char *body, char events[][512], int max)
{
    int n = 0;
    const char *p = body;

    while (n < max && (p = strstr(p, "data: "))) {
        const char *end = strstr(p, "\n\n");
        size_t len;

        if (!end)
            return -1; /* an event must end with a blank line */
        p += 6;
        len = (size_t)(end - p) < 511 ? (size_t)(end - p) : 511;
        memcpy(events[n], p, len);
        events[n][len] = '\0';
        n++;
        p = end + 2;
    }
    return n;
}

TEST(stream_generate_events)
{
    static char ev[64][512];
    struct resp r;
    int n;
    cJSON *last;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.pieces = true;
    fake.n_tokens = 5;
    fake.token_ms = 1;
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"stream\":true}", NULL, 0);
    CHECK_INT(r.status, 200);
    n = sse_events(r.body, ev, 64);
    CHECK_INT(n, 6); /* 5 pieces + the final event */
    REQUIRE(n == 6);
    CHECK_STR(ev[0], "{\"text\":\"w0 \"}");
    CHECK_STR(ev[4], "{\"text\":\"w4 \"}");
    last = cJSON_Parse(ev[5]);
    REQUIRE(last);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(last, "done")));
    CHECK_STR(str_field(last, "response"), "w0 w1 w2 w3 w4");
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(last, "timings")));
    cJSON_Delete(last);
    FREE_RESP(r);

    /* Errors known before the first token are plain HTTP errors. */
    r = call("POST", "/unload", NULL, NULL, 0);
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"stream\":true}", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(detail_has(&r, "No model loaded"));
    FREE_RESP(r);
    fake.pieces = false;
}

TEST(stop_sequences)
{
    static char ev[64][512];
    struct resp r;
    cJSON *o;
    int n;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.pieces = true;
    fake.n_tokens = 10;
    fake.token_ms = 1;
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"stop\":[\"w3\",\"zz\"]}", NULL, 0);
    CHECK_INT(r.status, 200);
    o = json_of(&r);
    CHECK_STR(str_field(o, "response"), "w0 w1 w2");
    cJSON_Delete(o);
    FREE_RESP(r);
    /* Streamed: the stop sequence never reaches the client, even split across pieces. */
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"stream\":true,\"stop\":\"2 w\"}", NULL, 0);
    n = sse_events(r.body, ev, 64);
    REQUIRE(n >= 2);
    {
        char all[512] = "";
        for (int i = 0; i < n - 1; i++) {
            cJSON *e = cJSON_Parse(ev[i]);
            const char *t = str_field(e, "text");
            if (t)
                strncat(all, t, sizeof(all) - strlen(all) - 1);
            cJSON_Delete(e);
        }
        CHECK_STR(all, "w0 w1 w");
    }
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"hi\",\"stop\":7}", NULL, 0);
    CHECK_INT(r.status, 422);
    FREE_RESP(r);
    fake.pieces = false;
}

struct stream_reader {
    int events;
    int stop_after;
};

static size_t on_stream_data(char *p, size_t sz, size_t n, void *ud)
{
    struct stream_reader *sr = ud;

    for (size_t i = 0; i + 1 < sz * n; i++)
        if (p[i] == '\n' && p[i + 1] == '\n')
            sr->events++;
    return sr->events >= sr->stop_after ? 0 : sz * n; /* 0: abort the transfer */
}

TEST(stream_cancelled_on_disconnect)
{
    struct stream_reader sr = {0, 2};
    CURL *c = curl_easy_init();
    char url[128];
    int before;
    struct resp r;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.pieces = true;
    fake.n_tokens = 500;
    fake.token_ms = 10; /* 5 s if not cancelled */
    before = atomic_load(&fake.cancels);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/generate", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"prompt\":\"x\",\"stream\":true}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sr);
    curl_easy_perform(c); /* returns CURLE_WRITE_ERROR after 2 events */
    curl_easy_cleanup(c);
    CHECK(sr.events >= 2);
    for (int i = 0; i < 200 && atomic_load(&fake.cancels) == before; i++)
        usleep(10 * 1000);
    CHECK_INT(atomic_load(&fake.cancels), before + 1);
    fake.pieces = false;
    fake.n_tokens = 5;
    fake.token_ms = 1;
}

TEST(openai_chat)
{
    static char ev[64][512];
    struct resp r;
    cJSON *o, *ch, *u;
    int n;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.pieces = true;
    fake.n_tokens = 3;
    r = call("GET", "/v1/models", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"object\":\"list\"") != NULL);
    CHECK(strstr(r.body, "\"id\":\"good.gguf\"") != NULL);
    FREE_RESP(r);

    r = call("POST", "/v1/chat/completions",
             "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0,\"seed\":3}",
             NULL, 0);
    CHECK_INT(r.status, 200);
    o = json_of(&r);
    REQUIRE(o);
    CHECK_STR(str_field(o, "object"), "chat.completion");
    CHECK(strncmp(str_field(o, "id") ? str_field(o, "id") : "", "chatcmpl-", 9) == 0);
    ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    CHECK_STR(str_field(cJSON_GetObjectItem(ch, "message"), "role"), "assistant");
    CHECK_STR(str_field(cJSON_GetObjectItem(ch, "message"), "content"), "w0 w1 w2 ");
    CHECK_STR(str_field(ch, "finish_reason"), "length");
    u = cJSON_GetObjectItem(o, "usage");
    CHECK_INT(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 11);
    CHECK_INT(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 3);
    CHECK_INT(cJSON_GetObjectItem(u, "total_tokens")->valueint, 14);
    cJSON_Delete(o);
    FREE_RESP(r);

    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true}}",
             NULL, 0);
    CHECK_INT(r.status, 200);
    n = sse_events(r.body, ev, 64);
    /* role chunk + 3 content chunks + finish chunk + usage chunk + [DONE] */
    CHECK_INT(n, 7);
    REQUIRE(n == 7);
    CHECK(strstr(ev[0], "\"delta\":{\"role\":\"assistant\"") != NULL);
    CHECK(strstr(ev[1], "\"delta\":{\"content\":\"w0 \"}") != NULL);
    CHECK(strstr(ev[1], "\"object\":\"chat.completion.chunk\"") != NULL);
    CHECK(strstr(ev[4], "\"finish_reason\":\"length\"") != NULL);
    CHECK(strstr(ev[5], "\"usage\":{\"prompt_tokens\":11") != NULL);
    CHECK_STR(ev[6], "[DONE]");
    FREE_RESP(r);

    r = call("POST", "/v1/chat/completions", "{\"messages\":[]}", NULL, 0);
    CHECK_INT(r.status, 400);
    o = json_of(&r);
    CHECK_STR(str_field(cJSON_GetObjectItem(o, "error"), "type"), "invalid_request_error");
    CHECK_STR(str_field(cJSON_GetObjectItem(o, "error"), "param"), "messages");
    cJSON_Delete(o);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", NULL, 0);
    CHECK_INT(r.status, 400);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"x\"}", NULL,
             0);
    CHECK_INT(r.status, 400); /* OpenAI: a type error is a 400, not the seed's 422 */
    CHECK(oai_error_is(&r, "invalid_request_error", NULL));
    CHECK(strstr(r.body, "\"param\":\"temperature\"") != NULL);
    FREE_RESP(r);
    r = call("POST", "/unload", NULL, NULL, 0);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "No model loaded") != NULL);
    FREE_RESP(r);
    r = call("GET", "/v1/models", NULL, NULL, 0);
    CHECK(strstr(r.body, "\"data\":[]") != NULL);
    FREE_RESP(r);
    fake.pieces = false;
}

/* A /v1 request's answer: status, and for a 400 the error's param. */
static bool oai_param_is(const char *body, long status, const char *param)
{
    struct resp r = call("POST", "/v1/chat/completions", body, NULL, 0);
    cJSON *o = json_of(&r), *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    bool ok = r.status == status &&
              (!param || (str_field(e, "param") && strcmp(str_field(e, "param"), param) == 0 &&
                          oai_error_is(&r, "invalid_request_error", NULL)));

    if (!ok)
        fprintf(stderr, "  %s\n  -> %ld %s (want %ld, param %s)\n", body, r.status, r.body, status,
                param ? param : "-");
    cJSON_Delete(o);
    FREE_RESP(r);
    return ok;
}

#define MSGS "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* OpenAI's defaults on /v1, the seed's on /generate; every option works or is a
 * 400 naming its param (issue 17 §1). */
TEST(openai_defaults_and_options)
{
    struct resp r;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.pieces = true;
    fake.n_tokens = 2;
    CHECK(oai_param_is("{" MSGS "}", 200, NULL));
    CHECK(last_gp.temperature == 1.0f && last_gp.top_p == 1.0f &&
          last_gp.repetition_penalty == 1.0f);
    CHECK(last_gp.max_tokens >= 1000000); /* no limit but the context (not the seed's -1) */
    CHECK(!last_gp.has_seed && !last_gp.grammar && !last_gp.on_logprobs);
    CHECK(last_gp.frequency_penalty == 0.0f && last_gp.presence_penalty == 0.0f);
    r = call("POST", "/generate", "{\"prompt\":\"hi\"}", NULL, 0);
    FREE_RESP(r);
    CHECK(last_gp.temperature == 0.7f && last_gp.repetition_penalty == 1.15f &&
          last_gp.max_tokens == -1);

    CHECK(oai_param_is("{" MSGS ",\"n\":2}", 400, "n"));
    CHECK(oai_param_is("{" MSGS ",\"n\":1}", 200, NULL));
    CHECK(oai_param_is("{" MSGS ",\"temperature\":2.5}", 400, "temperature"));
    CHECK(oai_param_is("{" MSGS ",\"temperature\":2}", 200, NULL));
    CHECK(oai_param_is("{" MSGS ",\"seed\":-1}", 200, NULL));
    CHECK(!last_gp.has_seed);
    CHECK(oai_param_is("{" MSGS ",\"seed\":1099511627781}", 200, NULL)); /* 2^40 + 5 */
    CHECK(last_gp.has_seed && last_gp.seed == 5);
    CHECK(oai_param_is("{" MSGS ",\"seed\":1.5}", 400, "seed"));
    CHECK(oai_param_is("{" MSGS ",\"frequency_penalty\":2.1}", 400, "frequency_penalty"));
    CHECK(oai_param_is("{" MSGS ",\"presence_penalty\":-2.1}", 400, "presence_penalty"));
    CHECK(oai_param_is("{" MSGS ",\"frequency_penalty\":1.5,\"presence_penalty\":-1}", 200, NULL));
    CHECK(last_gp.frequency_penalty == 1.5f && last_gp.presence_penalty == -1.0f);
    CHECK(oai_param_is("{" MSGS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                       "\"f\"}}]}",
                       400, "tools"));
    CHECK(oai_param_is("{" MSGS ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                       "\"f\"}}],\"tool_choice\":\"none\"}",
                       200, NULL));
    CHECK(oai_param_is("{" MSGS ",\"tools\":[]}", 200, NULL));
    CHECK(oai_param_is("{" MSGS ",\"tool_choice\":\"required\"}", 400, "tool_choice"));
    CHECK(oai_param_is("{" MSGS ",\"functions\":[{\"name\":\"f\"}]}", 400, "functions"));
    CHECK(oai_param_is("{" MSGS ",\"logit_bias\":{\"5\":1}}", 400, "logit_bias"));
    CHECK(oai_param_is("{" MSGS ",\"top_logprobs\":2}", 400, "top_logprobs"));
    CHECK(oai_param_is("{" MSGS ",\"logprobs\":true,\"top_logprobs\":21}", 400, "top_logprobs"));
    CHECK(
        oai_param_is("{" MSGS ",\"response_format\":{\"type\":\"yaml\"}}", 400, "response_format"));
    CHECK(oai_param_is("{" MSGS ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
                       "{\"name\":\"x\",\"schema\":{\"type\":\"string\",\"pattern\":\"a\"}}}}",
                       400, "response_format"));
    CHECK(oai_param_is("{" MSGS ",\"response_format\":{\"type\":\"json_object\"}}", 200, NULL));
    CHECK(last_gp.grammar_json); /* the grammar itself is freed with the request */
    CHECK(oai_param_is("{" MSGS ",\"response_format\":{\"type\":\"text\"}}", 200, NULL));
    CHECK(!last_gp.grammar_json);
    fake.pieces = false;
}

/* Tool calls and tool results in a history are text context, as Qwen's template
 * writes them. */
TEST(openai_tool_history)
{
    struct resp r;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    /* The fake echoes the last message's content. */
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},{\"role\":"
             "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
             "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
             "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}]}",
             NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", "
                         "\\\"arguments\\\": {\\\"city\\\"") != NULL);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
             "\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"sunny\"}]}",
             NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "<tool_response>\\nsunny\\n</tool_response>") != NULL);
    CHECK(last_gp.n_messages == 2);
    FREE_RESP(r);
    CHECK(oai_param_is("{\"messages\":[{\"role\":\"assistant\",\"content\":null,"
                       "\"tool_calls\":[{\"id\":\"c1\",\"function\":{}}]}]}",
                       400, "messages"));
    CHECK(oai_param_is("{\"messages\":[{\"role\":\"user\",\"content\":null}]}", 400, "messages"));
}

/* GET /v1/models/{id}; logprobs in the answer and in the stream; an error after the
 * stream began is OpenAI's error object as an event, and the stream ends. */
TEST(openai_model_logprobs_stream_error)
{
    static char ev[64][512];
    struct resp r;
    cJSON *o, *lp;
    int n;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    r = call("GET", "/v1/models/good.gguf", NULL, NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"id\":\"good.gguf\"") && strstr(r.body, "\"object\":\"model\""));
    FREE_RESP(r);
    r = call("GET", "/v1/models/gpt-4o", NULL, NULL, 0);
    CHECK_INT(r.status, 404);
    CHECK(oai_error_is(&r, "invalid_request_error", "model_not_found"));
    FREE_RESP(r);

    fake.pieces = true;
    fake.n_tokens = 3;
    r = call("POST", "/v1/chat/completions", "{" MSGS ",\"logprobs\":true,\"top_logprobs\":2}",
             NULL, 0);
    CHECK_INT(r.status, 200);
    o = json_of(&r);
    lp = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0), "logprobs"),
        "content");
    CHECK_INT(cJSON_GetArraySize(lp), 3);
    CHECK_STR(str_field(cJSON_GetArrayItem(lp, 1), "token"), "w1 ");
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(lp, 1), "bytes")), 3);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(lp, 1), "top_logprobs")),
              2);
    cJSON_Delete(o);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions", "{" MSGS ",\"logprobs\":true,\"stream\":true}", NULL,
             0);
    n = sse_events(r.body, ev, 64);
    REQUIRE(n == 6);
    CHECK(strstr(ev[1], "\"logprobs\":{\"content\":[{\"token\":\"w0 \"") != NULL);
    CHECK(strstr(ev[3], "\"token\":\"w2 \"") != NULL);
    FREE_RESP(r);

    fake.fail_at = 3; /* two pieces, then the engine fails */
    r = call("POST", "/v1/chat/completions", "{" MSGS ",\"stream\":true}", NULL, 0);
    CHECK_INT(r.status, 200);
    n = sse_events(r.body, ev, 64);
    REQUIRE(n == 4); /* role, w0, w1, the error; no [DONE] */
    o = cJSON_Parse(ev[3]);
    CHECK_STR(str_field(cJSON_GetObjectItem(o, "error"), "message"), "fake engine failure");
    CHECK_STR(str_field(cJSON_GetObjectItem(o, "error"), "type"), "server_error");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "param")));
    CHECK(cJSON_HasObjectItem(cJSON_GetObjectItem(o, "error"), "code"));
    cJSON_Delete(o);
    FREE_RESP(r);
    fake.fail_at = 0;
    fake.pieces = false;
}

/* Every error on /v1 is OpenAI's error object, the server's own included; the
 * seed's endpoints keep {"detail"}. */
TEST(openai_error_shapes)
{
    static const char *const evil_origin[] = {"Origin: http://evil.example.com", NULL};
    struct resp r;
    char h[128], *big, *body;
    struct bg b;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    r = call("GET", "/v1/nope", NULL, NULL, 0);
    CHECK_INT(r.status, 404);
    CHECK(oai_error_is(&r, "invalid_request_error", NULL));
    CHECK(strstr(r.body, "GET /v1/nope") != NULL);
    FREE_RESP(r);
    r = call("GET", "/v1/chat/completions", NULL, NULL, 0);
    CHECK_INT(r.status, 405);
    CHECK(oai_error_is(&r, "invalid_request_error", NULL));
    CHECK_STR(header_of(&r, "Allow", h, sizeof(h)), "POST");
    FREE_RESP(r);
    r = call("GET", "/v1/models", NULL, evil_origin, 0);
    CHECK_INT(r.status, 403);
    CHECK(oai_error_is(&r, "permission_error", NULL));
    CHECK(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)) == NULL);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions", "[1]", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(oai_error_is(&r, "invalid_request_error", NULL));
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions", "{\"messages\":", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(oai_error_is(&r, "invalid_request_error", NULL));
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1.5}", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "\"param\":\"max_tokens\"") != NULL);
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":\"yes\"}", NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body, "\"param\":\"stream\"") != NULL);
    FREE_RESP(r);

    big = malloc(CDT_HTTP_MAX_BODY + 100);
    REQUIRE(big);
    memset(big, ' ', CDT_HTTP_MAX_BODY + 99);
    big[0] = '{';
    big[CDT_HTTP_MAX_BODY + 98] = '}';
    big[CDT_HTTP_MAX_BODY + 99] = '\0';
    r = call("POST", "/v1/chat/completions", big, NULL, 0);
    CHECK_INT(r.status, 413);
    CHECK(oai_error_is(&r, "invalid_request_error", NULL));
    FREE_RESP(r);
    free(big);

    /* A prompt that does not fit the context. */
    body = malloc(2200);
    REQUIRE(body);
    snprintf(body, 2200, "{\"messages\":[{\"role\":\"user\",\"content\":\"%01999d\"}]}", 0);
    r = call("POST", "/v1/chat/completions", body, NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(oai_error_is(&r, "invalid_request_error", "context_length_exceeded"));
    CHECK(strstr(r.body, "\"param\":\"messages\"") != NULL);
    FREE_RESP(r);
    free(body);

    /* The seed's endpoints are unchanged. */
    r = call("GET", "/nope", NULL, NULL, 0);
    CHECK_INT(r.status, 404);
    CHECK(detail_has(&r, "Not Found"));
    FREE_RESP(r);
    r = call("GET", "/generate", NULL, NULL, 0);
    CHECK_INT(r.status, 405);
    CHECK(detail_has(&r, "Method Not Allowed"));
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"x\",\"temperature\":\"x\"}", NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(detail_has(&r, "temperature: must be a number"));
    FREE_RESP(r);
    r = call("GET", "/status", NULL, evil_origin, 0);
    CHECK_INT(r.status, 403);
    CHECK(detail_has(&r, "cross-origin"));
    FREE_RESP(r);

    /* 503 while the model loads: Retry-After. */
    stop();
    REQUIRE(start(NULL, 0) == 0);
    memset(&b, 0, sizeof(b));
    fake.load_ms = 400;
    b.body = "{\"model_path\":\"/models/good.gguf\"}";
    pthread_create(&b.t, NULL, bg_load, &b);
    usleep(150 * 1000);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, 0);
    CHECK_INT(r.status, 503);
    CHECK(oai_error_is(&r, "server_error", NULL));
    CHECK_STR(header_of(&r, "Retry-After", h, sizeof(h)), "1");
    FREE_RESP(r);
    pthread_join(b.t, NULL);
    FREE_RESP(b.r);
    fake.load_ms = 0;
}

/* 503 when the queue is full: Retry-After on /v1, none on the seed's /generate. */
TEST(openai_busy_retry_after)
{
    struct bg b[2];
    struct resp r;
    char h[64];

    REQUIRE(start_busy(b, 2));
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, 0);
    CHECK_INT(r.status, 503);
    CHECK(oai_error_is(&r, "server_error", NULL));
    CHECK_STR(header_of(&r, "Retry-After", h, sizeof(h)), "1");
    FREE_RESP(r);
    r = call("POST", "/generate", "{\"prompt\":\"q\"}", NULL, 0);
    CHECK_INT(r.status, 503);
    CHECK(detail_has(&r, "busy"));
    FREE_RESP(r);
    for (int i = 0; i < 2; i++) {
        pthread_join(b[i].t, NULL);
        FREE_RESP(b[i].r);
    }
    stop();
    REQUIRE(start(NULL, 0) == 0);
}

/* CORS on /v1 for loopback origins: preflight without a token, the origin echoed
 * on every /v1 answer, the token still needed; other origins refused; the seed's
 * endpoints do no CORS. */
TEST(openai_cors)
{
    static const char *const origins[] = {"http://localhost:5173", "http://127.0.0.1:8080",
                                          "http://[::1]:3000", "https://localhost:4443"};
    static const char *const evil_pre[] = {"Origin: http://evil.example.com",
                                           "Access-Control-Request-Method: POST", NULL};
    static const char *const lo[] = {"Origin: http://localhost:5173", NULL};
    static const char *const lo_tok[] = {"Origin: http://localhost:5173",
                                         "Authorization: Bearer s3cret-token", NULL};
    static const char *const tok[] = {"Authorization: Bearer s3cret-token", NULL};
    struct resp r;
    char h[128], ohdr[128];

    stop();
    REQUIRE(start("s3cret-token", 0) == 0);
    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", tok, 0);
    CHECK_INT(r.status, 200);
    FREE_RESP(r);
    for (size_t i = 0; i < sizeof(origins) / sizeof(origins[0]); i++) {
        const char *pre[] = {ohdr, "Access-Control-Request-Method: POST",
                             "Access-Control-Request-Headers: authorization, content-type", NULL};

        snprintf(ohdr, sizeof(ohdr), "Origin: %s", origins[i]);
        r = call("OPTIONS", "/v1/chat/completions", NULL, pre, 0);
        CHECK_INT(r.status, 204);
        CHECK_STR(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)), origins[i]);
        CHECK_STR(header_of(&r, "Vary", h, sizeof(h)), "Origin");
        CHECK_STR(header_of(&r, "Access-Control-Allow-Methods", h, sizeof(h)),
                  "GET, POST, OPTIONS");
        CHECK_STR(header_of(&r, "Access-Control-Allow-Headers", h, sizeof(h)),
                  "Authorization, Content-Type");
        CHECK_STR(header_of(&r, "Access-Control-Max-Age", h, sizeof(h)), "600");
        FREE_RESP(r);
    }
    r = call("OPTIONS", "/v1/chat/completions", NULL, evil_pre, 0);
    CHECK_INT(r.status, 403);
    CHECK(oai_error_is(&r, "permission_error", NULL));
    CHECK(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)) == NULL);
    FREE_RESP(r);

    /* The actual request still needs the token; its 401 carries the origin so
     * the page can read the error. */
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", lo, 0);
    CHECK_INT(r.status, 401);
    CHECK(oai_error_is(&r, "authentication_error", "invalid_api_key"));
    CHECK_STR(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)), "http://localhost:5173");
    FREE_RESP(r);
    r = call("POST", "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", lo_tok, 0);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body, "\"chat.completion\"") != NULL);
    CHECK_STR(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)), "http://localhost:5173");
    CHECK_STR(header_of(&r, "Vary", h, sizeof(h)), "Origin");
    FREE_RESP(r);
    r = call("GET", "/v1/models", NULL, lo_tok, 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)), "http://localhost:5173");
    FREE_RESP(r);
    /* No Origin: no CORS headers. */
    r = call("GET", "/v1/models", NULL, tok, 0);
    CHECK_INT(r.status, 200);
    CHECK(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)) == NULL);
    FREE_RESP(r);

    /* The seed's endpoints: no CORS, no token-free preflight. */
    r = call("GET", "/status", NULL, lo_tok, 0);
    CHECK_INT(r.status, 200);
    CHECK(header_of(&r, "Access-Control-Allow-Origin", h, sizeof(h)) == NULL);
    FREE_RESP(r);
    r = call("OPTIONS", "/generate", NULL, lo, 0);
    CHECK_INT(r.status, 401);
    CHECK(detail_has(&r, "Unauthorized"));
    FREE_RESP(r);
    stop();
    REQUIRE(start(NULL, 0) == 0);
}

TEST(port_taken_means_next_or_error)
{
    struct cdt_sidecar_params p = cdt_sidecar_default_params();
    struct cdt_sidecar *other = NULL;
    struct fake f2 = {0};
    char err[256];

    f2.base.ops = &fake_ops;
    p.backend = &f2.base;
    p.port_min = p.port_max = port; /* taken by the fixture */
    CHECK_INT(cdt_sidecar_new(&p, &other, err, sizeof(err)), CDT_EEXISTS);
    {
        char want[64];
        snprintf(want, sizeof(want), "no free port in %d-%d", port, port);
        CHECK_STR(err, want);
    }
    p.port_max = port + 5; /* the next free one */
    CHECK_INT(cdt_sidecar_new(&p, &other, err, sizeof(err)), 0);
    if (other) {
        CHECK(cdt_sidecar_port(other) > port);
        cdt_sidecar_free(other);
    }
    p.host = "10.1.2.3";
    CHECK_INT(cdt_sidecar_new(&p, &other, err, sizeof(err)), CDT_EINVAL);
    CHECK(strstr(err, "--listen-any") != NULL);
}

TEST(stop_cancels_running_generation)
{
    struct bg b;
    struct resp r;
    struct timespec t0, t1;
    double ms;

    r = call("POST", "/load", "{\"model_path\":\"/models/good.gguf\"}", NULL, 0);
    FREE_RESP(r);
    fake.n_tokens = 1000;
    fake.token_ms = 10; /* 10 s if not cancelled */
    memset(&b, 0, sizeof(b));
    b.body = "{\"prompt\":\"long\"}";
    pthread_create(&b.t, NULL, bg_main, &b);
    usleep(200 * 1000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stop();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK(ms < 2000);
    pthread_join(b.t, NULL);
    CHECK(b.r.status == 503 || b.r.status == 0);
    /* Answered (not cut at shutdown): told why, not "Generation cancelled". */
    if (b.r.status == 503)
        CHECK(b.r.body && strstr(b.r.body, "shutting down") != NULL);
    FREE_RESP(b.r);
    REQUIRE(start(NULL, 0) == 0);
}

int main(void)
{
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (start(NULL, 0) != 0)
        return 1;
    RUN(status_without_model);
    RUN(generate_without_model);
    RUN(load_errors);
    RUN(load_generate_unload);
    RUN(bad_requests);
    RUN(security_headers);
    RUN(loopback_rules);
    RUN(token_required);
    RUN(status_answers_during_generation_and_queue_bounds);
    RUN(health_is_503_while_loading);
    RUN(disconnect_cancels_generation);
    RUN(stream_generate_events);
    RUN(stop_sequences);
    RUN(stream_cancelled_on_disconnect);
    RUN(openai_chat);
    RUN(openai_error_shapes);
    RUN(openai_defaults_and_options);
    RUN(openai_tool_history);
    RUN(openai_model_logprobs_stream_error);
    RUN(openai_busy_retry_after);
    RUN(openai_cors);
    RUN(port_taken_means_next_or_error);
    RUN(stop_cancels_running_generation);
    stop();
    curl_global_cleanup();
    rc = TEST_END();
    return rc;
}
