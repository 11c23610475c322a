/* The typed sidecar client against a canned server on loopback (the library's own
 * httpd): the JSON each request sends (the local refine provider's body byte for
 * byte), the answers it reads (plain, streamed, errors with and without a
 * "detail"), and malformed answers, which must come back as CDT_EPROTOCOL with a
 * message and nothing to free, never a crash; a request its caller stops closes its
 * connection at once. The real sidecar behind it is
 * covered by tests/integration (test_manager, test_refine_sidecar). */
#include "../test.h"
#include "codictate/httpd.h"
#include "codictate/sidecar_client.h"
#include "codictate/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define TOKEN "t0ken"

/* What the server answers next, and what it was last asked. */
static struct {
    pthread_mutex_t lock;
    int status;
    const char *body;
    const char *type;
    int delay_ms;
    bool saw_gone; /* the client went while the answer was delayed */
    char method[16], path[64], auth[128];
    char *req_body;
} canned = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void handler(struct cdt_http_req *req, void *ud)
{
    const char *auth = cdt_http_req_header(req, "Authorization");
    int status, delay;
    const char *body, *type;

    (void)ud;
    pthread_mutex_lock(&canned.lock);
    snprintf(canned.method, sizeof(canned.method), "%s", cdt_http_req_method(req));
    snprintf(canned.path, sizeof(canned.path), "%s", cdt_http_req_path(req));
    snprintf(canned.auth, sizeof(canned.auth), "%s", auth ? auth : "");
    free(canned.req_body);
    canned.req_body = strdup(cdt_http_req_body(req) ? cdt_http_req_body(req) : "");
    status = canned.status;
    body = canned.body;
    type = canned.type ? canned.type : "application/json";
    delay = canned.delay_ms;
    pthread_mutex_unlock(&canned.lock);
    for (int waited = 0; waited < delay; waited += 10) { /* a model thinking */
        if (cdt_http_req_client_gone(req)) {
            pthread_mutex_lock(&canned.lock);
            canned.saw_gone = true;
            pthread_mutex_unlock(&canned.lock);
            break;
        }
        usleep(10 * 1000);
    }
    cdt_http_reply(req, status, body, strlen(body), type);
}

static void answer(int status, const char *body)
{
    pthread_mutex_lock(&canned.lock);
    canned.status = status;
    canned.body = body;
    canned.type = NULL;
    canned.delay_ms = 0;
    pthread_mutex_unlock(&canned.lock);
}

static struct cdt_httpd *server;
static int port;

static const char good[] =
    "{\"response\":\"We ship on Friday.\",\"tokens_generated\":6,\"prompt_format_mode\":\"raw\","
    "\"prompt_format_fallback\":false,\"truncated\":\"deadline\",\"timings\":{\"prompt_tokens\":"
    "42,\"cached_tokens\":40,\"prompt_tokens_evaluated\":2,\"prompt_ms\":1.5,\"generated_tokens\":"
    "6,\"generation_ms\":12.25,\"tokens_per_second\":490,\"draft_tokens\":3,\"accepted_tokens\":2,"
    "\"sampler\":\"cpu\"}}";

/* The body the local refine provider sent before this client existed (cJSON, in
 * this order): the client must send the same bytes. */
TEST(generate_sends_what_the_local_provider_sent)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256];

    answer(200, good);
    req.prompt = "Clean this.\n\n<transcript>\nso um we ship\n</transcript>";
    req.max_tokens = -1;
    req.temperature = 0;
    req.timeout_ms = 10000;
    req.system_ram_gb = 16;
    req.raw = true;
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), 0);
    CHECK_STR(canned.method, "POST");
    CHECK_STR(canned.path, "/generate");
    CHECK_STR(canned.auth, "Bearer " TOKEN);
    CHECK_STR(canned.req_body,
              "{\"prompt\":\"Clean this.\\n\\n<transcript>\\nso um we ship\\n</transcript>\","
              "\"max_tokens\":-1,\"temperature\":0,\"timeout_ms\":10000,\"system_ram_gb\":16,"
              "\"raw\":true}");
    cdt_sidecar_gen_reply_cleanup(&r);
}

TEST(generate_sends_only_what_is_set)
{
    static const char *const stop[] = {"\n\n", "</s>"};
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256];

    answer(200, good);
    req.prompt = "x";
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), 0);
    CHECK_STR(canned.req_body, "{\"prompt\":\"x\"}");
    cdt_sidecar_gen_reply_cleanup(&r);

    req.max_tokens = 4;
    req.temperature = 0.5;
    req.top_p = 0.9;
    req.min_p = 0;
    req.repetition_penalty = 1.1;
    req.seed = 7;
    req.stop = stop;
    req.n_stop = 2;
    req.ignore_eos = true;
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), 0);
    CHECK_STR(canned.req_body,
              "{\"prompt\":\"x\",\"max_tokens\":4,\"temperature\":0.5,\"top_p\":0.9,\"min_p\":0,"
              "\"repetition_penalty\":1.1,\"seed\":7,\"stop\":[\"\\n\\n\",\"</s>\"],"
              "\"ignore_eos\":true}");
    cdt_sidecar_gen_reply_cleanup(&r);

    req = cdt_sidecar_gen_default_req();
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EINVAL);
}

TEST(generate_reads_every_field)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256];

    answer(200, good);
    req.prompt = "x";
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.response, "We ship on Friday.");
    CHECK(r.streamed == NULL);
    CHECK_STR(r.detail, "");
    CHECK_INT(r.tokens_generated, 6);
    CHECK_STR(r.prompt_format_mode, "raw");
    CHECK(!r.prompt_format_fallback);
    CHECK_STR(r.truncated, "deadline");
    CHECK_INT(r.timings.prompt_tokens, 42);
    CHECK_INT(r.timings.cached_tokens, 40);
    CHECK_INT(r.timings.prompt_tokens_evaluated, 2);
    CHECK(r.timings.prompt_ms == 1.5);
    CHECK_INT(r.timings.generated_tokens, 6);
    CHECK(r.timings.generation_ms == 12.25);
    CHECK(r.timings.tokens_per_second == 490);
    CHECK_INT(r.timings.draft_tokens, 3);
    CHECK_INT(r.timings.accepted_tokens, 2);
    CHECK_STR(r.timings.sampler, "cpu");
    cdt_sidecar_gen_reply_cleanup(&r);
    CHECK(r.response == NULL);
    cdt_sidecar_gen_reply_cleanup(&r); /* twice: nothing left to free */
    cdt_sidecar_gen_reply_cleanup(NULL);

    /* Optional fields of the wrong type read as absent. */
    answer(200, "{\"response\":\"ok\",\"tokens_generated\":\"six\",\"truncated\":false,"
                "\"timings\":[1,2]}");
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_STR(r.response, "ok");
    CHECK_INT(r.tokens_generated, 0);
    CHECK_STR(r.truncated, "");
    CHECK_INT(r.timings.prompt_tokens, 0);
    cdt_sidecar_gen_reply_cleanup(&r);
}

TEST(generate_error_answers_carry_their_detail)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256], big[3000];

    req.prompt = "x";
    answer(400, "{\"detail\":\"No model loaded. Call /load first.\"}");
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_INT(r.status, 400);
    CHECK_STR(r.detail, "No model loaded. Call /load first.");
    CHECK(r.response == NULL);
    cdt_sidecar_gen_reply_cleanup(&r);

    answer(502, "Bad gateway, not JSON");
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_INT(r.status, 502);
    CHECK_STR(r.detail, "Bad gateway, not JSON");
    cdt_sidecar_gen_reply_cleanup(&r);

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    answer(500, big);
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_INT(strlen(r.detail), CDT_SIDECAR_DETAIL_MAX - 1); /* cut, not overflowed */
    cdt_sidecar_gen_reply_cleanup(&r);
}

TEST(malformed_answers_are_protocol_errors)
{
    static const char *const bad[] = {
        "",
        "not JSON at all",
        "{\"response\":",
        "[\"response\"]",
        "\"response\"",
        "{\"response\":null}",
        "{\"response\":42}",
        "{\"detail\":\"200 but an error\"}",
    };
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256];

    req.prompt = "x";
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        answer(200, bad[i]);
        err[0] = '\0';
        CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)),
                  CDT_EPROTOCOL);
        CHECK_STR(err, "an answer without \"response\"");
        CHECK(r.response == NULL && r.streamed == NULL);
        cdt_sidecar_gen_reply_cleanup(&r);
    }
}

TEST(streamed_answers)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256];

    req.prompt = "x";
    req.raw = true;
    req.stream = true;
    answer(200, "data: {\"text\":\"<think>\"}\n\ndata: {\"text\":\"\\n</think> We\"}\n\n"
                ": a comment\n\ndata: {\"text\":\" ship.\"}\n\n"
                "data: {\"response\":\"<think>\\n</think> We ship.\",\"tokens_generated\":3,"
                "\"done\":true}\n\n");
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_STR(canned.req_body, "{\"prompt\":\"x\",\"raw\":true,\"stream\":true}");
    CHECK_INT(r.status, 200);
    CHECK_STR(r.streamed, "<think>\n</think> We ship.");
    CHECK_STR(r.response, "<think>\n</think> We ship.");
    CHECK_INT(r.tokens_generated, 3);
    cdt_sidecar_gen_reply_cleanup(&r);

    /* A failure after the stream started: the final event's status and detail. */
    answer(200, "data: {\"text\":\"We\"}\n\n"
                "data: {\"done\":true,\"status\":500,\"detail\":\"Generation failed: boom\"}\n\n");
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_INT(r.status, 500);
    CHECK_STR(r.detail, "Generation failed: boom");
    CHECK(r.response == NULL && r.streamed == NULL);
    cdt_sidecar_gen_reply_cleanup(&r);

    /* Refused before streaming: a plain error body. */
    answer(503, "{\"detail\":\"Server busy\"}");
    REQUIRE(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)) == 0);
    CHECK_INT(r.status, 503);
    CHECK_STR(r.detail, "Server busy");
    cdt_sidecar_gen_reply_cleanup(&r);

    /* Cut short, or garbage: protocol errors, nothing to free. */
    answer(200, "data: {\"text\":\"We\"}\n\n");
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EPROTOCOL);
    CHECK_STR(err, "a stream without its final event");
    CHECK(r.response == NULL && r.streamed == NULL);
    answer(200, "data: {\"text\":\"We\"}\n\ndata: {\"te\n\n");
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EPROTOCOL);
    CHECK(strstr(err, "not a JSON object") != NULL);
    answer(200, "data: {\"done\":true,\"tokens_generated\":3}\n\n");
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EPROTOCOL);
    CHECK_STR(err, "an answer without \"response\"");
    CHECK(r.response == NULL && r.streamed == NULL);
}

TEST(load)
{
    struct cdt_sidecar_load_req req = {.model_path = "/m/q.gguf"};
    struct cdt_sidecar_load_reply r;
    char err[256];

    answer(200, "{\"status\":\"loaded\",\"model_path\":\"/m/q.gguf\"}");
    CHECK_INT(cdt_sidecar_load(port, TOKEN, &req, 5000, &r, err, sizeof(err)), 0);
    CHECK_STR(canned.path, "/load");
    CHECK_STR(canned.req_body, "{\"model_path\":\"/m/q.gguf\"}");
    CHECK_INT(r.status, 200);
    req.warmup_prompt = "Clean this.";
    CHECK_INT(cdt_sidecar_load(port, TOKEN, &req, 5000, &r, err, sizeof(err)), 0);
    CHECK_STR(canned.req_body, "{\"model_path\":\"/m/q.gguf\",\"warmup_prompt\":\"Clean this.\"}");

    answer(500, "{\"detail\":\"Failed to load model: /m/q.gguf: not found\"}");
    CHECK_INT(cdt_sidecar_load(port, TOKEN, &req, 5000, &r, err, sizeof(err)), 0);
    CHECK_INT(r.status, 500);
    CHECK_STR(r.detail, "Failed to load model: /m/q.gguf: not found");

    answer(200, "{\"status\":\"loading\"}");
    CHECK_INT(cdt_sidecar_load(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EPROTOCOL);
    CHECK(strstr(err, "loaded") != NULL);
    answer(200, "garbage");
    CHECK_INT(cdt_sidecar_load(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EPROTOCOL);
    req.model_path = NULL;
    CHECK_INT(cdt_sidecar_load(port, TOKEN, &req, 5000, &r, err, sizeof(err)), CDT_EINVAL);
}

TEST(health_and_unload)
{
    struct cdt_sidecar_health h;
    struct cdt_sidecar_unload_reply u;
    char err[256];

    answer(200, "{\"status\":\"ok\"}");
    CHECK_INT(cdt_sidecar_health(port, NULL, 5000, &h, err, sizeof(err)), 0); /* no token */
    CHECK_STR(canned.method, "GET");
    CHECK_STR(canned.path, "/health");
    CHECK_INT(h.status, 200);
    CHECK_STR(h.state, "ok");
    answer(503, "{\"status\":\"loading\"}");
    CHECK_INT(cdt_sidecar_health(port, TOKEN, 5000, &h, err, sizeof(err)), 0);
    CHECK_INT(h.status, 503);
    CHECK_STR(h.state, "loading");
    answer(200, "<html>something else on this port</html>");
    CHECK_INT(cdt_sidecar_health(port, TOKEN, 5000, &h, err, sizeof(err)), CDT_EPROTOCOL);
    CHECK_INT(h.status, 0);

    answer(200, "{\"status\":\"unloaded\",\"model_loaded\":false,\"model_path\":null}");
    CHECK_INT(cdt_sidecar_unload(port, TOKEN, 5000, &u, err, sizeof(err)), 0);
    CHECK_STR(canned.method, "POST");
    CHECK_STR(canned.path, "/unload");
    CHECK_INT(u.status, 200);
    CHECK(u.was_loaded);
    answer(200, "{\"status\":\"no_model_loaded\",\"model_loaded\":false,\"model_path\":null}");
    CHECK_INT(cdt_sidecar_unload(port, TOKEN, 5000, &u, err, sizeof(err)), 0);
    CHECK(!u.was_loaded);
    answer(401, "{\"detail\":\"Unauthorized\"}");
    CHECK_INT(cdt_sidecar_unload(port, TOKEN, 5000, NULL, err, sizeof(err)), 0);
    CHECK_INT(cdt_sidecar_unload(port, TOKEN, 5000, &u, err, sizeof(err)), 0);
    CHECK_INT(u.status, 401);
    CHECK_STR(u.detail, "Unauthorized");
}

/* should_stop: true from the given time on. */
static bool stop_after(void *ud)
{
    return cdt_now_ms() >= *(const double *)ud;
}

/* A request the caller stops (a cancelled dictation): the connection closes at once,
 * the server sees its client go, the call says CDT_ECANCELED with nothing to free. */
TEST(generate_stops_when_asked)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    char err[256];
    double t0, at;
    bool gone = false;

    req.prompt = "x";
    req.should_stop = stop_after;
    req.stop_user_data = &at;
    answer(200, good);
    pthread_mutex_lock(&canned.lock);
    canned.delay_ms = 3000;
    canned.saw_gone = false;
    pthread_mutex_unlock(&canned.lock);
    t0 = cdt_now_ms();
    at = t0 + 200;
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 10000, &r, err, sizeof(err)), CDT_ECANCELED);
    printf("  stopped %.0f ms after the stop was due\n", cdt_now_ms() - at);
    CHECK(cdt_now_ms() - at < 100); /* CDT_CLIENT_POLL_MS, and then some */
    CHECK_STR(err, "cancelled");
    CHECK(r.response == NULL);
    for (int i = 0; i < 100 && !gone; i++) {
        usleep(10 * 1000);
        pthread_mutex_lock(&canned.lock);
        gone = canned.saw_gone;
        pthread_mutex_unlock(&canned.lock);
    }
    CHECK(gone); /* the sidecar would cancel the generation */
    /* Not stopped: the same request gets its answer. */
    answer(200, good);
    at = t0 + 1e12;
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 10000, &r, err, sizeof(err)), 0);
    CHECK_STR(r.response, "We ship on Friday.");
    cdt_sidecar_gen_reply_cleanup(&r);
}

TEST(transport_errors)
{
    struct cdt_sidecar_gen_req req = cdt_sidecar_gen_default_req();
    struct cdt_sidecar_gen_reply r;
    struct cdt_sidecar_health h;
    char err[256];

    req.prompt = "x";
    answer(200, good);
    pthread_mutex_lock(&canned.lock);
    canned.delay_ms = 600;
    pthread_mutex_unlock(&canned.lock);
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 100, &r, err, sizeof(err)), CDT_ETIMEOUT);
    CHECK(strstr(err, "100 ms") != NULL);
    CHECK(r.response == NULL);
    /* No server on the port any more. */
    cdt_httpd_free(server);
    server = NULL;
    CHECK_INT(cdt_sidecar_generate(port, TOKEN, &req, 2000, &r, err, sizeof(err)), CDT_ENET);
    CHECK(err[0] != '\0');
    CHECK_INT(cdt_sidecar_health(port, TOKEN, 2000, &h, err, sizeof(err)), CDT_ENET);
}

int main(void)
{
    static const char *const public_paths[] = {"/health", NULL};
    struct cdt_httpd_params hp = cdt_httpd_default_params();
    char err[256];
    int rc;

    hp.token = TOKEN;
    hp.public_paths = public_paths;
    hp.handler = handler;
    if (cdt_httpd_new(&hp, &server, err, sizeof(err)) != 0) {
        fprintf(stderr, "httpd: %s\n", err);
        return 1;
    }
    port = cdt_httpd_port(server);
    RUN(generate_sends_what_the_local_provider_sent);
    RUN(generate_sends_only_what_is_set);
    RUN(generate_reads_every_field);
    RUN(generate_error_answers_carry_their_detail);
    RUN(malformed_answers_are_protocol_errors);
    RUN(streamed_answers);
    RUN(load);
    RUN(health_and_unload);
    RUN(generate_stops_when_asked);
    RUN(transport_errors);
    rc = TEST_END();
    cdt_httpd_free(server);
    free(canned.req_body);
    return rc;
}
