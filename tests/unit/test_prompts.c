/* Refinement prompts: the built-in default, @FILE, named prompts from the config
 * file (found through XDG_CONFIG_HOME / HOME), and every way a config can be wrong. */
#include "../test.h"
#include "codictate/prompts.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/cdt-prompts-XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int resolve(const char *spec, const char *config, char **out, char *err)
{
    return cdt_prompt_resolve(spec, config, out, err, 512);
}

TEST(default_prompt)
{
    char *out = NULL, err[512];

    CHECK_INT(resolve(NULL, NULL, &out, err), 0);
    CHECK_STR(out, cdt_prompt_default());
    free(out);
    CHECK_INT(resolve("default", "/nonexistent", &out, err), 0);
    CHECK_STR(out, cdt_prompt_default());
    free(out);
    CHECK_INT(resolve("", NULL, &out, err), 0);
    free(out);
    CHECK_INT(cdt_prompt_resolve("x", NULL, NULL, err, sizeof(err)), CDT_EINVAL);
}

TEST(config_path_follows_xdg_then_home)
{
    char *p = NULL;

    setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
    CHECK_INT(cdt_config_path(&p), 0);
    CHECK_STR(p, "/x/cfg/codictate/config.json");
    free(p);
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "/home/u", 1);
    CHECK_INT(cdt_config_path(&p), 0);
    CHECK_STR(p, "/home/u/.config/codictate/config.json");
    free(p);
    unsetenv("HOME");
    CHECK_INT(cdt_config_path(&p), CDT_ENOTFOUND);
    CHECK(p == NULL);
}

TEST(named_prompts)
{
    char cfg[256], out_err[512], *out = NULL;

    snprintf(cfg, sizeof(cfg), "%s/codictate", dir);
    mkdir(cfg, 0700);
    snprintf(cfg, sizeof(cfg), "%s/codictate/config.json", dir);
    write_file(cfg, "{\"other\": 1, \"prompts\": {\"email\": \"  Format as an email.\\n\", "
                    "\"terse\": \"Be terse.\"}}");
    CHECK_INT(resolve("email", cfg, &out, out_err), 0);
    CHECK_STR(out, "Format as an email.");
    free(out);
    /* Found through XDG_CONFIG_HOME when no path is given. */
    setenv("XDG_CONFIG_HOME", dir, 1);
    CHECK_INT(resolve("terse", NULL, &out, out_err), 0);
    CHECK_STR(out, "Be terse.");
    free(out);
    CHECK_INT(resolve("nope", NULL, &out, out_err), CDT_ENOTFOUND);
    CHECK(out == NULL);
    CHECK(strstr(out_err, "no prompt named 'nope'") && strstr(out_err, "email, terse"));
    unsetenv("XDG_CONFIG_HOME");
}

TEST(bad_configs)
{
    char cfg[256], err[512], *out = NULL;

    snprintf(cfg, sizeof(cfg), "%s/bad.json", dir);
    CHECK_INT(resolve("x", cfg, &out, err), CDT_ENOTFOUND);
    CHECK(strstr(err, "does not exist") != NULL);
    write_file(cfg, "{not json");
    CHECK_INT(resolve("x", cfg, &out, err), CDT_EFORMAT);
    CHECK(strstr(err, cfg) != NULL);
    write_file(cfg, "{\"prompts\": [\"a\"]}");
    CHECK_INT(resolve("x", cfg, &out, err), CDT_EFORMAT);
    write_file(cfg, "{\"prompts\": {\"x\": 3}}");
    CHECK_INT(resolve("x", cfg, &out, err), CDT_EFORMAT);
    CHECK(strstr(err, "prompts.x must be a string") != NULL);
    write_file(cfg, "{\"prompts\": {\"x\": \"  \"}}");
    CHECK_INT(resolve("x", cfg, &out, err), CDT_EFORMAT);
    CHECK(strstr(err, "empty") != NULL);
    write_file(cfg, "{}");
    CHECK_INT(resolve("x", cfg, &out, err), CDT_ENOTFOUND);
    CHECK(strstr(err, "it has none") != NULL);
    CHECK(out == NULL);
}

TEST(prompt_files)
{
    char path[256], spec[260], err[512], *out = NULL, *big;
    FILE *f;

    snprintf(path, sizeof(path), "%s/p.txt", dir);
    snprintf(spec, sizeof(spec), "@%s", path);
    write_file(path, "\nList the items.\n\n");
    CHECK_INT(resolve(spec, NULL, &out, err), 0);
    CHECK_STR(out, "List the items.");
    free(out);
    write_file(path, "\xff\xfe bad");
    CHECK_INT(resolve(spec, NULL, &out, err), CDT_EFORMAT);
    CHECK(strstr(err, "not UTF-8") != NULL);
    f = fopen(path, "w");
    REQUIRE(f);
    big = calloc(1, CDT_PROMPT_MAX_BYTES + 10);
    REQUIRE(big);
    memset(big, 'a', CDT_PROMPT_MAX_BYTES + 5);
    fputs(big, f);
    fclose(f);
    free(big);
    CHECK_INT(resolve(spec, NULL, &out, err), CDT_ETOOBIG);
    CHECK(strstr(err, "CDT_PROMPT_MAX_BYTES") != NULL);
    CHECK_INT(resolve("@/nonexistent/p.txt", NULL, &out, err), CDT_ENOTFOUND);
    CHECK(strstr(err, "/nonexistent/p.txt") != NULL);
    CHECK(out == NULL);
}

int main(void)
{
    char cmd[300];
    int rc;

    if (!mkdtemp(dir))
        return 1;
    RUN(default_prompt);
    RUN(config_path_follows_xdg_then_home);
    RUN(named_prompts);
    RUN(bad_configs);
    RUN(prompt_files);
    rc = TEST_END();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
