/* The refiner's refinement ahead through the running app (refiner.c): a scripted app
 * (our HTTP server with a handler that records each request) stands in for
 * `codictate serve`, whose side tests/e2e/test_serve_api.sh drives with the real
 * model. Checked here: the ahead is made with the options a run sends, the text so
 * far goes to it as it grows, the run names it (once), cancel calls nothing and free
 * drops it, a failed offer stops the offers and the run goes without it, and an app
 * that cannot make one leaves the refinement for after stop. */
#include "../test.h"
#include "codictate/httpd.h"
#include "codictate/refine.h"
#include "codictate/refiner.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID "0123456789abcdef0123456789abcdef"

struct app {
    pthread_mutex_t mu;
    int news, offers, deletes, runs;
    bool fail_new, fail_offers;
    char new_body[512], last_offer[512], run_body[1024], last_delete[128];
};

static void record(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

static void handle(struct cdt_http_req *req, void *ud)
{
    struct app *a = ud;
    const char *path = cdt_http_req_path(req), *body = cdt_http_req_body(req);
    const char *ok_run = "{\"raw\":\"x\",\"refined\":\"Refined.\",\"reason_code\":\"ok\","
                         "\"model\":\"m\",\"provider\":\"local\",\"timings\":{}}";
    char out[256];

    pthread_mutex_lock(&a->mu);
    if (strcmp(path, "/api/refine/ahead") == 0) {
        a->news++;
        record(a->new_body, sizeof(a->new_body), body);
        pthread_mutex_unlock(&a->mu);
        if (a->fail_new)
            return cdt_http_reply_error(req, 500, "no");
        snprintf(out, sizeof(out), "{\"id\":\"%s\"}", ID);
        return cdt_http_reply(req, 200, out, strlen(out), NULL);
    }
    if (strcmp(path, "/api/refine/ahead/" ID "/offer") == 0) {
        int n = ++a->offers;

        record(a->last_offer, sizeof(a->last_offer), body);
        pthread_mutex_unlock(&a->mu);
        if (a->fail_offers)
            return cdt_http_reply_error(req, 500, "no");
        snprintf(out, sizeof(out), "{\"pieces\":%d}", n);
        return cdt_http_reply(req, 200, out, strlen(out), NULL);
    }
    if (strncmp(path, "/api/refine/ahead/", 18) == 0) {
        a->deletes++;
        record(a->last_delete, sizeof(a->last_delete), path);
        pthread_mutex_unlock(&a->mu);
        return cdt_http_reply(req, 200, "{}", 2, NULL);
    }
    if (strcmp(path, "/api/refine") == 0) {
        a->runs++;
        record(a->run_body, sizeof(a->run_body), body);
        pthread_mutex_unlock(&a->mu);
        return cdt_http_reply(req, 200, ok_run, strlen(ok_run), NULL);
    }
    pthread_mutex_unlock(&a->mu);
    cdt_http_reply_error(req, 404, "no such route");
}

/* A field of a recorded JSON body as text ("" when absent; numbers as integers). */
static const char *field(const char *json, const char *key, char *buf, size_t cap)
{
    cJSON *o = cJSON_Parse(json), *v = cJSON_GetObjectItemCaseSensitive(o, key);

    buf[0] = '\0';
    if (cJSON_IsString(v))
        snprintf(buf, cap, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(buf, cap, "%.0f", v->valuedouble);
    cJSON_Delete(o);
    return buf;
}

struct fixture {
    struct app a;
    struct cdt_httpd *h;
    struct cdt_refiner *r;
};

static void setup(struct fixture *f, const char *prompt, long timeout_ms)
{
    struct cdt_httpd_params hp = cdt_httpd_default_params();
    struct cdt_refiner_opts o = {0};
    char err[256];

    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->a.mu, NULL);
    hp.handler = handle;
    hp.user_data = &f->a;
    REQUIRE(cdt_httpd_new(&hp, &f->h, err, sizeof(err)) == 0);
    o.app_port = cdt_httpd_port(f->h);
    o.instructions = prompt;
    o.vocabulary = "Anya";
    o.timeout_ms = timeout_ms;
    o.no_env = true;
    REQUIRE(cdt_refiner_new(&o, &f->r, err, sizeof(err)) == 0);
}

static void teardown(struct fixture *f)
{
    cdt_refiner_free(f->r);
    cdt_httpd_free(f->h);
    pthread_mutex_destroy(&f->a.mu);
}

TEST(ahead_through_the_app)
{
    struct fixture f;
    struct cdt_refiner_ahead *a = NULL;
    struct cdt_refine_result res;
    char buf[256];

    setup(&f, "Clean this up.", 4321);
    REQUIRE(cdt_refiner_ahead_new(f.r, &a) == 0);
    REQUIRE(a != NULL);
    CHECK_INT(f.a.news, 1);
    /* made with what a run sends */
    CHECK_STR(field(f.a.new_body, "prompt", buf, sizeof(buf)), "Clean this up.");
    CHECK_STR(field(f.a.new_body, "vocabulary", buf, sizeof(buf)), "Anya");
    CHECK_STR(field(f.a.new_body, "timeout_ms", buf, sizeof(buf)), "4321");
    /* the text so far goes to it as it grows */
    cdt_refiner_ahead_offer(a, "one sentence.");
    cdt_refiner_ahead_offer(a, "one sentence. two sentences.");
    CHECK_INT(f.a.offers, 2);
    CHECK_STR(field(f.a.last_offer, "text", buf, sizeof(buf)), "one sentence. two sentences.");
    CHECK_INT((int)cdt_refiner_ahead_count(a), 2); /* the app's answer */
    /* the run names it, once */
    REQUIRE(cdt_refiner_run_ahead(f.r, "one sentence. two sentences. three", NULL, NULL, NULL, a,
                                  &res) == 0);
    CHECK_STR(res.refined, "Refined.");
    cdt_refine_result_cleanup(&res);
    CHECK_STR(field(f.a.run_body, "ahead", buf, sizeof(buf)), ID);
    CHECK_STR(field(f.a.run_body, "timeout_ms", buf, sizeof(buf)), "4321");
    REQUIRE(cdt_refiner_run_ahead(f.r, "again", NULL, NULL, NULL, a, &res) == 0);
    cdt_refine_result_cleanup(&res);
    CHECK_STR(field(f.a.run_body, "ahead", buf, sizeof(buf)), ""); /* taken by the first */
    cdt_refiner_ahead_offer(a, "after the run");
    CHECK_INT(f.a.offers, 2); /* none: it is the app's run's now */
    cdt_refiner_ahead_free(a);
    CHECK_INT(f.a.deletes, 0); /* the app freed it with the run */
    teardown(&f);
}

/* A run that does not name the ahead (all of the text now), then free drops it in
 * the app. */
static void run_alone_then_free(struct fixture *f, struct cdt_refiner_ahead *a, const char *text)
{
    struct cdt_refine_result res;
    char buf[256];

    REQUIRE(cdt_refiner_run_ahead(f->r, text, NULL, NULL, NULL, a, &res) == 0);
    cdt_refine_result_cleanup(&res);
    CHECK_STR(field(f->a.run_body, "ahead", buf, sizeof(buf)), "");
    cdt_refiner_ahead_free(a);
    CHECK_INT(f->a.deletes, 1);
}

TEST(ahead_cancel_then_free_drops_it)
{
    struct fixture f;
    struct cdt_refiner_ahead *a = NULL;
    char buf[256];

    setup(&f, NULL, 0);
    REQUIRE(cdt_refiner_ahead_new(f.r, &a) == 0);
    CHECK_STR(field(f.a.new_body, "prompt", buf, sizeof(buf)), "");     /* the app's own */
    CHECK_STR(field(f.a.new_body, "timeout_ms", buf, sizeof(buf)), ""); /* the default */
    cdt_refiner_ahead_offer(a, "some text.");
    cdt_refiner_ahead_cancel(a);
    CHECK_INT(f.a.deletes, 0); /* cancel calls nothing (its caller may hold locks) */
    cdt_refiner_ahead_offer(a, "some text. more");
    CHECK_INT(f.a.offers, 1);
    run_alone_then_free(&f, a, "some text. more");
    CHECK_STR(f.a.last_delete, "/api/refine/ahead/" ID "/delete");
    teardown(&f);
}

TEST(ahead_failed_offer_stops_the_offers)
{
    struct fixture f;
    struct cdt_refiner_ahead *a = NULL;

    setup(&f, NULL, 0);
    REQUIRE(cdt_refiner_ahead_new(f.r, &a) == 0);
    f.a.fail_offers = true;
    cdt_refiner_ahead_offer(a, "one.");
    cdt_refiner_ahead_offer(a, "one. two.");
    CHECK_INT(f.a.offers, 1);
    run_alone_then_free(&f, a, "one. two."); /* all after stop; still dropped in the app */
    teardown(&f);
}

TEST(ahead_the_app_cannot_make_one)
{
    struct fixture f;
    struct cdt_refiner_ahead *a = (struct cdt_refiner_ahead *)&f;

    setup(&f, NULL, 0);
    f.a.fail_new = true;
    CHECK(cdt_refiner_ahead_new(f.r, &a) != 0);
    CHECK(a == NULL); /* refine after stop */
    cdt_refiner_ahead_offer(NULL, "x");
    cdt_refiner_ahead_cancel(NULL);
    CHECK_INT((int)cdt_refiner_ahead_count(NULL), 0);
    cdt_refiner_ahead_free(NULL);
    teardown(&f);
}

int main(void)
{
    RUN(ahead_through_the_app);
    RUN(ahead_cancel_then_free_drops_it);
    RUN(ahead_failed_offer_stops_the_offers);
    RUN(ahead_the_app_cannot_make_one);
    return TEST_END();
}
