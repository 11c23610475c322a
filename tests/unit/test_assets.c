/* The embedded web UI (src/app/assets.c and the table cmake/web_assets.cmake
 * generates): the pages are there with their types, and nothing else is found. */
#include "../../src/app/assets.h"
#include "../test.h"

TEST(index_is_served_for_root)
{
    const struct cdt_asset *root = cdt_asset_find("/");
    const struct cdt_asset *index = cdt_asset_find("/index.html");
    REQUIRE(root != NULL);
    REQUIRE(index != NULL);
    CHECK(root == index);
    CHECK_STR(index->path, "/index.html");
    CHECK_STR(index->content_type, "text/html; charset=utf-8");
    CHECK(index->len > 0);
    CHECK(strstr((const char *)index->data, "<html") != NULL);
}

TEST(script_and_style_are_served)
{
    const struct cdt_asset *js = cdt_asset_find("/app.js");
    const struct cdt_asset *css = cdt_asset_find("/app.css");
    REQUIRE(js != NULL);
    REQUIRE(css != NULL);
    CHECK_STR(js->content_type, "text/javascript; charset=utf-8");
    CHECK_STR(css->content_type, "text/css; charset=utf-8");
    CHECK(strstr((const char *)js->data, "'use strict'") != NULL);
}

TEST(nothing_outside_the_table)
{
    CHECK(cdt_asset_find("/../CMakeLists.txt") == NULL);
    CHECK(cdt_asset_find("/%2e%2e/x") == NULL);
    CHECK(cdt_asset_find("/app.js/..") == NULL);
    CHECK(cdt_asset_find("/app.js/../app.js") == NULL);
    CHECK(cdt_asset_find("//app.js") == NULL);
    CHECK(cdt_asset_find("/.\\app.js") == NULL);
    CHECK(cdt_asset_find("\\app.js") == NULL);
    CHECK(cdt_asset_find("app.js") == NULL);
    CHECK(cdt_asset_find("/app.js?x=1") == NULL);
    CHECK(cdt_asset_find("/APP.JS") == NULL);
    CHECK(cdt_asset_find("/nope") == NULL);
    CHECK(cdt_asset_find("") == NULL);
    CHECK(cdt_asset_find(NULL) == NULL);
}

TEST(over_long_path_is_refused)
{
    char path[CDT_ASSET_MAX_PATH + 16];
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    CHECK(cdt_asset_find(path) == NULL);
}

TEST(every_asset_is_whole)
{
    size_t n = cdt_asset_count();
    CHECK(n >= 3);
    for (size_t i = 0; i < n; i++) {
        const struct cdt_asset *a = cdt_asset_at(i);
        REQUIRE(a != NULL);
        CHECK(a->path[0] == '/');
        CHECK(a->len > 0);
        CHECK(a->data[a->len] == '\0');
        CHECK(a->content_type && a->content_type[0]);
        CHECK(cdt_asset_find(a->path) == a);
        if (i > 0)
            CHECK(strcmp(cdt_asset_at(i - 1)->path, a->path) < 0);
    }
    CHECK(cdt_asset_at(n) == NULL);
}

int main(void)
{
    RUN(index_is_served_for_root);
    RUN(script_and_style_are_served);
    RUN(nothing_outside_the_table);
    RUN(over_long_path_is_refused);
    RUN(every_asset_is_whole);
    return TEST_END();
}
