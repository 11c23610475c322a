/* pick.c: the one "is this a path?" rule and the whisper/VAD model choice, over a
 * small catalog and an empty (or hand-filled) Hugging Face cache. */
#include "../test.h"
#include "codictate/pick.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[] = "/tmp/cdt-pick-XXXXXX";
static struct cdt_catalog *cat;
static struct cdt_models *models;

TEST(is_path)
{
    CHECK(cdt_catalog_is_path("/models/m.gguf"));
    CHECK(cdt_catalog_is_path("./m"));
    CHECK(cdt_catalog_is_path("m.gguf"));
    CHECK(cdt_catalog_is_path("ggml-base.en.bin"));
    CHECK(cdt_catalog_is_path(tmp)); /* exists */
    CHECK(!cdt_catalog_is_path("qwen3_base_1.7b"));
    CHECK(!cdt_catalog_is_path("whisper_base_en_v1"));
    CHECK(!cdt_catalog_is_path(""));
    CHECK(!cdt_catalog_is_path(NULL));
}

static struct cdt_pick_params params(const char *w, const char *v, bool no_vad)
{
    struct cdt_pick_params p = cdt_pick_default_params();

    p.whisper_arg = w;
    p.vad_arg = v;
    p.no_vad = no_vad;
    p.catalog = cat;
    p.models = models;
    return p;
}

TEST(nothing_downloaded)
{
    struct cdt_pick_params p = params(NULL, NULL, false);
    struct cdt_pick_whisper w;
    char err[1024];

    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(strstr(err, "codictate models pull wsp_v1") != NULL);

    /* The app's users are told about its Models page, not the CLI. */
    p.app = true;
    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(strstr(err, "Models page") != NULL);
    CHECK(strstr(err, "codictate models pull") == NULL);
    CHECK(strstr(err, "--whisper-model") == NULL);
}

TEST(paths_are_taken_as_given)
{
    struct cdt_pick_params p = params("/x/w.bin", NULL, false);
    struct cdt_pick_whisper w;
    char err[1024];

    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), 0);
    CHECK_STR(w.model, "/x/w.bin");
    CHECK(!w.vad);
    CHECK(strstr(w.note, "VAD is off") && strstr(w.note, "pull vad_v1"));
    p = params("/x/w.bin", "/x/v.bin", false);
    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), 0);
    CHECK(w.vad);
    CHECK_STR(w.vad_model, "/x/v.bin");
    CHECK_STR(w.note, "");
    p = params("/x/w.bin", NULL, true);
    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), 0);
    CHECK(!w.vad);
    CHECK_STR(w.note, "");
}

TEST(ids_are_checked)
{
    struct cdt_pick_params p = params("nosuch", NULL, true);
    struct cdt_pick_whisper w;
    char err[1024];

    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(strstr(err, "--whisper-model nosuch: no such file, and no catalog model") != NULL);
    p = params("llm_v1", NULL, true);
    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), CDT_EINVAL);
    CHECK(strstr(err, "that is a llm model, not a whisper model") != NULL);
    p = params("wsp", NULL, true); /* an alias, not downloaded */
    CHECK_INT(cdt_pick_whisper(&p, &w, err, sizeof(err)), CDT_ESTATE);
    CHECK(strstr(err, "not downloaded: run `codictate models pull wsp_v1`") != NULL);
}

/* Puts one file of repo t/NAME into the cache (the Hugging Face layout). */
static void fake_download(const char *repo_name, const char *file)
{
    static const char commit[] = "0123456789abcdef0123456789abcdef01234567";
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path),
             "mkdir -p '%s/hub/models--t--%s/refs' '%s/hub/models--t--%s/snapshots/%s'", tmp,
             repo_name, tmp, repo_name, commit);
    CHECK(system(path) == 0);
    snprintf(path, sizeof(path), "%s/hub/models--t--%s/refs/main", tmp, repo_name);
    f = fopen(path, "w");
    REQUIRE(f);
    fputs(commit, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/hub/models--t--%s/snapshots/%s/%s", tmp, repo_name, commit,
             file);
    f = fopen(path, "w");
    REQUIRE(f);
    fputc('x', f);
    fclose(f);
}

/* The default model of each kind: none, then the first downloaded one. */
TEST(defaults)
{
    const struct cdt_catalog_model *m;

    CHECK(cdt_models_default(models, CDT_MODEL_LLM, CDT_TIER_LE8) == NULL);
    CHECK(cdt_models_default(models, CDT_MODEL_WHISPER, CDT_TIER_LE8) == NULL);
    fake_download("w", "w.bin");
    m = cdt_models_default(models, CDT_MODEL_WHISPER, CDT_TIER_LE8);
    REQUIRE(m);
    CHECK_STR(m->id, "wsp_v1");
    CHECK(cdt_models_default(models, CDT_MODEL_LLM, CDT_TIER_LE8) == NULL);
    fake_download("l", "l.gguf");
    m = cdt_models_default(models, CDT_MODEL_LLM, CDT_TIER_GT16);
    REQUIRE(m);
    CHECK_STR(m->id, "llm_v1"); /* none recommended for the tier: the first downloaded */
}

int main(void)
{
    char path[256], err[1024];
    struct cdt_models_params mp = cdt_models_default_params();
    FILE *f;
    int rc;

    if (!mkdtemp(tmp))
        return 1;
    snprintf(path, sizeof(path), "%s/catalog.json", tmp);
    f = fopen(path, "w");
    if (!f)
        return 1;
    fputs("{\"version\":1,\"models\":["
          "{\"id\":\"llm_v1\",\"kind\":\"llm\",\"name\":\"L\",\"best_for\":\"t\",\"ram_mb\":1,"
          "\"files\":[{\"name\":\"l.gguf\",\"size\":1}],"
          "\"sources\":[{\"type\":\"huggingface\",\"repo\":\"t/l\",\"revision\":\"main\"}]},"
          "{\"id\":\"wsp_v1\",\"aliases\":[\"wsp\"],\"kind\":\"whisper\",\"name\":\"W\","
          "\"best_for\":\"t\",\"ram_mb\":1,\"files\":[{\"name\":\"w.bin\",\"size\":1}],"
          "\"sources\":[{\"type\":\"huggingface\",\"repo\":\"t/w\",\"revision\":\"main\"}]},"
          "{\"id\":\"vad_v1\",\"kind\":\"vad\",\"name\":\"V\",\"best_for\":\"t\",\"ram_mb\":1,"
          "\"files\":[{\"name\":\"v.bin\",\"size\":1}],"
          "\"sources\":[{\"type\":\"huggingface\",\"repo\":\"t/v\",\"revision\":\"main\"}]}]}",
          f);
    fclose(f);
    if (cdt_catalog_load_file(path, &cat, err, sizeof(err)) != 0) {
        fprintf(stderr, "catalog: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/hub", tmp);
    mp.catalog = cat;
    mp.download.cache_dir = path;
    if (cdt_models_new(&mp, &models) != 0)
        return 1;
    RUN(is_path);
    RUN(nothing_downloaded);
    RUN(paths_are_taken_as_given);
    RUN(ids_are_checked);
    RUN(defaults);
    cdt_models_free(models);
    cdt_catalog_free(cat);
    rc = TEST_END();
    snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
    if (system(path) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return rc;
}
