#include "../test.h"
#include "codictate/catalog.h"
#include "codictate/limits.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Test catalogs are written with ' for " (readable in C); q() swaps them back. */
static char *q(const char *s)
{
    char *out = strdup(s);

    for (char *p = out; p && *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

#define SHA64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A valid model's fields after its id. */
#define M_REST                                                                                     \
    "'kind':'llm','name':'M','files':[{'name':'m.gguf','size':10}],"                               \
    "'sources':[{'type':'huggingface','repo':'o/m','revision':'abc'}]"
#define MODEL(id, extra) "{'id':'" id "'," extra M_REST "}"
#define CATALOG(models)  "{'version':1,'models':[" models "]}"

/* Loads q(tmpl) and checks it fails with want_rc and an errmsg holding needle. */
static bool expect_err(const char *tmpl, int want_rc, const char *needle, char *errmsg,
                       size_t errcap)
{
    char *json = q(tmpl);
    struct cdt_catalog *cat = (struct cdt_catalog *)1;
    int rc;

    if (!json)
        return false;
    rc = cdt_catalog_load(json, strlen(json), &cat, errmsg, errcap);
    free(json);
    if (cat) {
        cdt_catalog_free(cat != (struct cdt_catalog *)1 ? cat : NULL);
        return false;
    }
    return rc == want_rc && strstr(errmsg, needle) != NULL;
}

#define EXPECT_ERR(tmpl, rc, needle)                                                               \
    do {                                                                                           \
        char em_[512] = "";                                                                        \
        if (!expect_err((tmpl), (rc), (needle), em_, sizeof(em_))) {                               \
            fprintf(stderr, "%s:%d: want %s with \"%s\", got \"%s\"\n", __FILE__, __LINE__, #rc,   \
                    (needle), em_);                                                                \
            cdt_test_state_.checks_failed++;                                                       \
        }                                                                                          \
    } while (0)

/* Loads q(tmpl), which must be valid. Caller frees. */
static struct cdt_catalog *load_ok(const char *tmpl)
{
    char *json = q(tmpl), errmsg[512] = "";
    struct cdt_catalog *cat = NULL;

    if (json && cdt_catalog_load(json, strlen(json), &cat, errmsg, sizeof(errmsg)) != 0)
        fprintf(stderr, "unexpected load failure: %s\n", errmsg);
    free(json);
    return cat;
}

static struct cdt_catalog *builtin(void)
{
    struct cdt_catalog *cat = NULL;
    char errmsg[512] = "";

    unsetenv("CODICTATE_CATALOG");
    if (cdt_catalog_load_default(&cat, errmsg, sizeof(errmsg)) != 0)
        fprintf(stderr, "built-in catalog: %s\n", errmsg);
    return cat;
}

static const char *const llm_ids[] = {
    "qwen3_base_0.6b_v1", "qwen3_base_1.7b_v1", "qwen3_base_4b_v1",   "qwen3_base_8b_v1",
    "gemma3_base_1b_v1",  "gemma3_base_4b_v1",  "smollm3_base_3b_v1",
};

TEST(builtin_loads_and_validates)
{
    struct cdt_catalog *cat = builtin();
    size_t llms = 0, whispers = 0, vads = 0, shipped = 0;

    REQUIRE(cat);
    CHECK_STR(cdt_catalog_origin(cat), "built-in");
    CHECK_INT(cdt_catalog_count(cat), 13);
    CHECK(cdt_catalog_builtin_json_len > 1000);
    CHECK_INT(cdt_catalog_builtin_json[cdt_catalog_builtin_json_len], 0);
    for (size_t i = 0; i < cdt_catalog_count(cat); i++) {
        const struct cdt_catalog_model *m = cdt_catalog_model_at(cat, i);

        REQUIRE(m);
        llms += m->kind == CDT_MODEL_LLM;
        whispers += m->kind == CDT_MODEL_WHISPER;
        vads += m->kind == CDT_MODEL_VAD;
        CHECK(m->n_files >= 1 && m->n_sources >= 1);
        CHECK(*m->name && *m->best_for && m->ram_mb > 0);
        for (size_t f = 0; f < m->n_files; f++) {
            CHECK(m->files[f].size > 0);
            CHECK_INT(strlen(m->files[f].sha256), 64); /* every built-in file is pinned */
        }
        if (m->sources[0].type == CDT_SOURCE_BUILTIN) {
            shipped++; /* the model trained by tools/train, shipped in models/ */
            CHECK_STR(m->id, "codictate_refiner_v1");
            continue;
        }
        CHECK_INT(m->sources[0].type, CDT_SOURCE_HUGGINGFACE);
        CHECK_INT(strlen(m->sources[0].revision), 40); /* a commit */
        CHECK(cdt_catalog_find(cat, m->id) == m);
    }
    CHECK_INT(llms, 8);
    CHECK_INT(whispers, 4);
    CHECK_INT(vads, 1);
    CHECK_INT(shipped, 1);
    CHECK(cdt_catalog_model_at(cat, 13) == NULL);
    cdt_catalog_free(cat);
}

TEST(every_llm_id_and_alias_resolves)
{
    struct cdt_catalog *cat = builtin();

    REQUIRE(cat);
    for (size_t i = 0; i < sizeof(llm_ids) / sizeof(llm_ids[0]); i++) {
        const struct cdt_catalog_model *m = cdt_catalog_find(cat, llm_ids[i]);
        char alias[64];

        REQUIRE(m);
        CHECK_STR(m->id, llm_ids[i]);
        CHECK_INT(m->kind, CDT_MODEL_LLM);
        /* the alias is the id without "_v1" */
        snprintf(alias, sizeof(alias), "%.*s", (int)(strlen(llm_ids[i]) - 3), llm_ids[i]);
        CHECK(cdt_catalog_find(cat, alias) == m);
        CHECK_INT(m->n_aliases, 1);
        CHECK_STR(m->aliases[0], alias);
    }
    CHECK_STR(cdt_catalog_find(cat, "whisper_tiny_en")->files[0].name, "ggml-tiny.en.bin");
    CHECK(cdt_catalog_find(cat, "base.en") == cdt_catalog_find(cat, "whisper_base_en"));
    CHECK(cdt_catalog_find(cat, "whisper_small_en") != NULL);
    CHECK(cdt_catalog_find(cat, "whisper_large_v3_turbo_q5") != NULL);
    CHECK(cdt_catalog_find(cat, "silero_vad") == cdt_catalog_find(cat, "silero_vad_v6_2_0"));
    CHECK(cdt_catalog_find(cat, "QWEN3_BASE_1.7B_V1") == NULL); /* exact, case matters */
    CHECK(cdt_catalog_find(cat, "qwen3_base_1.7") == NULL);
    CHECK(cdt_catalog_find(cat, "") == NULL);
    CHECK(cdt_catalog_find(cat, NULL) == NULL);
    cdt_catalog_free(cat);
}

TEST(recommended_matches_limits)
{
    struct cdt_catalog *cat = builtin();
    const enum cdt_ram_tier tiers[] = {CDT_TIER_LE8, CDT_TIER_9TO16, CDT_TIER_GT16};

    REQUIRE(cat);
    for (size_t i = 0; i < 3; i++) {
        const struct cdt_catalog_model *m = cdt_catalog_recommended(cat, tiers[i]);
        struct cdt_tier_limits t = cdt_limits_for_tier(tiers[i]);

        REQUIRE(m);
        CHECK_STR(m->id, t.recommended_id);
        CHECK_STR(m->name, t.recommended_name);
        CHECK(m->has_ram_tier && m->ram_tier == tiers[i]);
    }
    CHECK(!cdt_catalog_find(cat, "gemma3_base_4b_v1")->has_ram_tier);
    cdt_catalog_free(cat);
}

TEST(entries_match_catalog_md)
{
    struct cdt_catalog *cat = builtin();
    const struct cdt_catalog_model *m;

    REQUIRE(cat);
    m = cdt_catalog_find(cat, "qwen3_base_1.7b");
    REQUIRE(m && m->n_files == 1 && m->n_sources == 1);
    CHECK_STR(m->files[0].name, "Qwen3-1.7B-Q4_K_M.gguf");
    CHECK_INT(m->files[0].size, 1282439264);
    CHECK_STR(m->files[0].sha256,
              "d2387ca2dbfee2ffabce7120d3770dadca0b293052bc2f0e138fdc940d9bc7b5");
    CHECK_STR(m->sources[0].repo, "ggml-org/Qwen3-1.7B-GGUF");
    CHECK_STR(m->sources[0].revision, "daeb8e2d528a760970442092f6bf1e55c3b659eb");
    CHECK_INT(m->ram_mb, 2500);
    CHECK_INT(m->thinking, CDT_THINKING_HYBRID);

    m = cdt_catalog_find(cat, "qwen3_base_4b_v1");
    REQUIRE(m);
    CHECK_STR(m->name, "Qwen 3 4B Instruct 2507");
    CHECK_STR(m->files[0].name, "Qwen3-4B-Instruct-2507-Q4_K_M.gguf");
    CHECK_INT(m->files[0].size, 2497281120);
    CHECK_STR(m->sources[0].repo, "unsloth/Qwen3-4B-Instruct-2507-GGUF");
    CHECK_INT(m->thinking, CDT_THINKING_NEVER);
    CHECK_STR(cdt_thinking_name(m->thinking), "never");

    m = cdt_catalog_find(cat, "qwen3_base_8b_v1");
    REQUIRE(m);
    CHECK_INT(cdt_catalog_model_size(m), 5027783488); /* over 4 GiB: 64-bit all the way */
    CHECK_STR(m->files[0].sha256,
              "d98cdcbd03e17ce47681435b5150e34c1417f50b5c0019dd560e4882c5745785");
    CHECK_STR(m->sources[0].repo, "Qwen/Qwen3-8B-GGUF");

    m = cdt_catalog_find(cat, "gemma3_base_1b_v1");
    REQUIRE(m);
    CHECK(m->gated_terms);
    CHECK_STR(m->license_url, "https://ai.google.dev/gemma/terms");
    CHECK_INT(m->files[0].size, 806058240);
    CHECK(cdt_catalog_find(cat, "gemma3_base_4b_v1")->gated_terms);
    CHECK(!cdt_catalog_find(cat, "qwen3_base_8b_v1")->gated_terms);

    m = cdt_catalog_find(cat, "smollm3_base_3b_v1");
    REQUIRE(m);
    CHECK_STR(m->files[0].sha256,
              "8334b850b7bd46238c16b0c550df2138f0889bf433809008cc17a8b05761863e");

    m = cdt_catalog_find(cat, "whisper_base_en");
    REQUIRE(m);
    CHECK_INT(m->kind, CDT_MODEL_WHISPER);
    CHECK_STR(cdt_model_kind_name(m->kind), "whisper");
    CHECK_STR(m->files[0].name, "ggml-base.en.bin");
    CHECK_INT(m->files[0].size, 147964211);
    CHECK_STR(m->files[0].sha256,
              "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002");
    CHECK_STR(m->sources[0].repo, "ggerganov/whisper.cpp");
    CHECK_STR(m->sources[0].revision, "5359861c739e955e79d9a303bcbc70fb988958b1");
    CHECK(m->n_languages == 1 && strcmp(m->languages[0], "en") == 0);

    m = cdt_catalog_find(cat, "whisper_large_v3_turbo_q5");
    REQUIRE(m);
    CHECK_STR(m->files[0].name, "ggml-large-v3-turbo-q5_0.bin");
    CHECK_INT(m->files[0].size, 574041195);

    m = cdt_catalog_find(cat, "silero_vad_v6_2_0");
    REQUIRE(m);
    CHECK_INT(m->kind, CDT_MODEL_VAD);
    CHECK_STR(m->files[0].name, "ggml-silero-v6.2.0.bin");
    CHECK_INT(m->files[0].size, 885098);
    CHECK_STR(m->files[0].sha256,
              "2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987");
    CHECK_STR(m->sources[0].repo, "ggml-org/whisper-vad");
    CHECK_STR(m->sources[0].revision, "9ffd54a1e1ee413ddf265af9913beaf518d1639b");
    cdt_catalog_free(cat);
}

TEST(minimal_catalog_and_defaults)
{
    struct cdt_catalog *cat =
        load_ok("{'_comment':'hi','version':1,'models':[{'_note':1,'id':'a',"
                "'kind':'vad','name':'A','files':[{'name':'sub/dir/a.bin','size':0,'sha256':''},"
                "{'name':'b.bin','size':5,'sha256':"
                "'ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789'}],"
                "'sources':[{'type':'huggingface','repo':'gpt2'}]}]}");
    const struct cdt_catalog_model *m;

    REQUIRE(cat);
    CHECK_STR(cdt_catalog_origin(cat), "");
    m = cdt_catalog_find(cat, "a");
    REQUIRE(m);
    CHECK_INT(m->n_aliases, 0);
    CHECK_STR(m->best_for, "");
    CHECK_INT(m->ram_mb, 0);
    CHECK(!m->has_ram_tier && !m->gated_terms);
    CHECK_INT(m->thinking, CDT_THINKING_UNSPECIFIED);
    CHECK_STR(m->license_url, "");
    CHECK_STR(m->files[0].name, "sub/dir/a.bin");
    CHECK_STR(m->files[0].sha256, "");
    /* digests are normalised to lowercase */
    CHECK_STR(m->files[1].sha256,
              "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    CHECK_INT(cdt_catalog_model_size(m), 5);
    CHECK_STR(m->sources[0].repo, "gpt2");
    CHECK_STR(m->sources[0].revision, "main");
    CHECK(cdt_catalog_recommended(cat, CDT_TIER_LE8) == NULL);
    cdt_catalog_free(cat);
    cdt_catalog_free(NULL);

    /* revision may be a ref path; trailing whitespace after the document is fine */
    cat = load_ok(CATALOG(
        "{'id':'b','kind':'llm','name':'B','files':[{'name':'b','size':1}],"
        "'sources':[{'type':'huggingface','repo':'o/b','revision':'refs/pr/1'}]}") "\n\n  ");
    CHECK(cat != NULL);
    cdt_catalog_free(cat);
}

TEST(bad_json_reports_line_and_column)
{
    /* The stray '}' on line 3 is at column 14. */
    EXPECT_ERR("{\n  'version': 1,\n  'models': [}\n", CDT_EFORMAT, "line 3, column 14");
    EXPECT_ERR("{'version': 1,", CDT_EFORMAT, "not valid JSON");
    EXPECT_ERR("", CDT_EFORMAT, "not valid JSON: empty");
    EXPECT_ERR(CATALOG(MODEL("a", "")) "\n x", CDT_EFORMAT,
               "unexpected text after the document at line 2, column 2");
    EXPECT_ERR("[1,2]", CDT_EFORMAT, "must be a JSON object");
}

TEST(version_and_top_level)
{
    EXPECT_ERR("{'version':2,'models':[" MODEL("a", "") "]}", CDT_EFORMAT,
               "unsupported catalog version 2 (this build reads version 1)");
    EXPECT_ERR("{'version':'1','models':[" MODEL("a", "") "]}", CDT_EFORMAT,
               "field 'version' must be the number 1");
    EXPECT_ERR("{'models':[" MODEL("a", "") "]}", CDT_EFORMAT, "missing field 'version'");
    EXPECT_ERR("{'version':1}", CDT_EFORMAT, "missing field 'models'");
    EXPECT_ERR("{'version':1,'models':{}}", CDT_EFORMAT, "field 'models' must be an array");
    EXPECT_ERR("{'version':1,'models':[]}", CDT_EFORMAT, "field 'models' must not be empty");
    EXPECT_ERR("{'version':1,'modles':[]}", CDT_EFORMAT, "unknown field 'modles' in the catalog");
    EXPECT_ERR("{'version':1,'version':1,'models':[]}", CDT_EFORMAT,
               "field 'version' in the catalog appears twice");
    EXPECT_ERR(CATALOG("3"), CDT_EFORMAT, "models[0]: must be an object");
}

TEST(missing_and_ill_typed_fields)
{
    EXPECT_ERR(CATALOG("{" M_REST "}"), CDT_EFORMAT, "models[0]: missing field 'id'");
    EXPECT_ERR(CATALOG(MODEL("a", "") ",{'id':7," M_REST "}"), CDT_EFORMAT,
               "models[1]: field 'id' must be a string");
    EXPECT_ERR(CATALOG("{'id':'a','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': missing field 'kind'");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': missing field 'name'");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':5,'files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': field 'name' must be a string");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A',"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': missing field 'files'");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}]}"),
               CDT_EFORMAT, "model 'a': missing field 'sources'");
    EXPECT_ERR(CATALOG(MODEL("a", "'aliases':'x',")), CDT_EFORMAT,
               "model 'a': field 'aliases' must be an array");
    EXPECT_ERR(CATALOG(MODEL("a", "'aliases':[1],")), CDT_EFORMAT,
               "model 'a': aliases[0] must be a string");
    EXPECT_ERR(CATALOG(MODEL("a", "'ram_mb':'big',")), CDT_EFORMAT,
               "model 'a': field 'ram_mb' must be a number");
    EXPECT_ERR(CATALOG(MODEL("a", "'ram_mb':-1,")), CDT_EFORMAT,
               "model 'a': field 'ram_mb' must not be negative");
    EXPECT_ERR(CATALOG(MODEL("a", "'gated_terms':1,")), CDT_EFORMAT,
               "model 'a': field 'gated_terms' must be true or false");
    EXPECT_ERR(CATALOG(MODEL("a", "'sha256':'x',")), CDT_EFORMAT,
               "model 'a': unknown field 'sha256'");
    EXPECT_ERR(CATALOG(MODEL("a", "'name':'again',")), CDT_EFORMAT,
               "model 'a': field 'name' appears twice");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a'}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': missing field 'files[0].size'");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':'1'}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': field 'files[0].size' must be a number");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1.5}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': field 'files[0].size' must be a whole number");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1,"
                       "'sha':''}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': unknown field 'sha' in files[0]");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':['a'],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': files[0] must be an object");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': missing field 'sources[0].type'");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'mirror','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': sources[0].type 'mirror' is not supported");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface'}]}"),
               CDT_EFORMAT, "model 'a': missing field 'sources[0].repo'");
}

TEST(builtin_source)
{
    struct cdt_catalog *cat =
        load_ok(CATALOG("{'id':'b','kind':'llm','name':'B','files':[{'name':'b.gguf','size':10,"
                        "'sha256':'" SHA64 "'}],'sources':[{'type':'builtin'}]}"));
    const struct cdt_catalog_model *m = cat ? cdt_catalog_find(cat, "b") : NULL;

    CHECK(m != NULL);
    if (m) {
        CHECK(m->sources[0].type == CDT_SOURCE_BUILTIN);
        CHECK_STR(m->sources[0].repo, "");
        CHECK_STR(m->sources[0].revision, "");
    }
    cdt_catalog_free(cat);
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'builtin','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': sources[0]: a builtin source has no repo or revision");
}

TEST(no_files_no_sources_unknown_kind)
{
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': field 'files' must not be empty");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[]}"),
               CDT_EFORMAT, "model 'a': field 'sources' must not be empty");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'tts','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': unknown kind 'tts' (expected llm, whisper or vad)");
}

TEST(duplicate_ids_and_aliases)
{
    EXPECT_ERR(CATALOG(MODEL("a", "") "," MODEL("b", "") "," MODEL("a", "")), CDT_EFORMAT,
               "duplicate id 'a' (models[0] and models[2])");
    EXPECT_ERR(CATALOG(MODEL("a", "'aliases':['x'],") "," MODEL("b", "'aliases':['y','x'],")),
               CDT_EFORMAT, "duplicate alias 'x' (models 'a' and 'b')");
    EXPECT_ERR(CATALOG(MODEL("a", "'aliases':['a'],")), CDT_EFORMAT,
               "model 'a': alias 'a' equals its own id");
    EXPECT_ERR(CATALOG(MODEL("a", "") "," MODEL("b", "'aliases':['a'],")), CDT_EFORMAT,
               "model 'b': alias 'a' is the id of another model");
    /* the order in the file does not matter */
    EXPECT_ERR(CATALOG(MODEL("b", "'aliases':['a'],") "," MODEL("a", "")), CDT_EFORMAT,
               "model 'b': alias 'a' is the id of another model");
    EXPECT_ERR(CATALOG(MODEL("a", "'aliases':['x','x'],")), CDT_EFORMAT,
               "model 'a': alias 'x' is listed twice");
    EXPECT_ERR(CATALOG(MODEL("a", "'aliases':['has space'],")), CDT_EFORMAT,
               "model 'a': aliases[0] 'has space' may hold only");
    EXPECT_ERR(CATALOG(MODEL("-a", "")), CDT_EFORMAT, "models[0]: id '-a' may hold only");
    EXPECT_ERR(CATALOG(MODEL("a/b", "")), CDT_EFORMAT, "id 'a/b' may hold only");
}

TEST(bad_sha256)
{
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1,"
                       "'sha256':'abc'}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "model 'a': files[0].sha256 must be 64 hex digits");
    /* 64 characters, one not hex */
    EXPECT_ERR(
        CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1,"
                "'sha256':'g000000000000000000000000000000000000000000000000000000000000000'}"
                "],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
        CDT_EFORMAT, "files[0].sha256 must be 64 hex digits");
    /* 65 characters: over the field's 64-byte cap */
    EXPECT_ERR(
        CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1,"
                "'sha256':'00000000000000000000000000000000000000000000000000000000000000000'"
                "}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
        CDT_ETOOBIG, "field 'files[0].sha256' is 65 bytes, over the 64-byte cap");
}

TEST(ram_tiers)
{
    EXPECT_ERR(CATALOG(MODEL("a", "'ram_tier':'16gb',")), CDT_EFORMAT,
               "model 'a': unknown ram_tier '16gb' (expected le8, 9to16 or gt16)");
    EXPECT_ERR(CATALOG(MODEL("a", "'ram_tier':'le8',") "," MODEL("b", "'ram_tier':'le8',")),
               CDT_EFORMAT, "models 'a' and 'b' both claim ram_tier 'le8'");
    EXPECT_ERR(CATALOG("{'id':'w','kind':'whisper','ram_tier':'gt16','name':'W',"
                       "'files':[{'name':'w','size':1}],'sources':[{'type':'huggingface',"
                       "'repo':'o/w'}]}"),
               CDT_EFORMAT, "model 'w': ram_tier is only for llm models");
    EXPECT_ERR(CATALOG(MODEL("a", "'thinking':'sometimes',")), CDT_EFORMAT,
               "model 'a': unknown thinking 'sometimes'");

    struct cdt_catalog *cat = load_ok(CATALOG(MODEL("a", "'ram_tier':'le8',") "," MODEL(
        "b", "'ram_tier':'gt16','thinking':'always',") "," MODEL("c", "'ram_tier':'9to16',")));
    REQUIRE(cat);
    CHECK_STR(cdt_catalog_recommended(cat, CDT_TIER_LE8)->id, "a");
    CHECK_STR(cdt_catalog_recommended(cat, CDT_TIER_9TO16)->id, "c");
    CHECK_STR(cdt_catalog_recommended(cat, CDT_TIER_GT16)->id, "b");
    CHECK_INT(cdt_catalog_find(cat, "b")->thinking, CDT_THINKING_ALWAYS);
    cdt_catalog_free(cat);
}

/* A one-file catalog whose file is called `name` (JSON, ' for "). */
static void expect_bad_file_name(const char *name)
{
    char tmpl[512], em[512] = "";

    snprintf(tmpl, sizeof(tmpl),
             CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'%s','size':1}],"
                     "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
             name);
    if (!expect_err(tmpl, CDT_EFORMAT, "must be a relative path", em, sizeof(em))) {
        fprintf(stderr, "file name '%s' accepted or wrong error: \"%s\"\n", name, em);
        cdt_test_state_.checks_failed++;
    }
}

TEST(path_traversal_in_file_names)
{
    expect_bad_file_name("/etc/passwd");
    expect_bad_file_name("..");
    expect_bad_file_name("../x");
    expect_bad_file_name("a/../../x");
    expect_bad_file_name("a/..");
    expect_bad_file_name("./a");
    expect_bad_file_name("a//b");
    expect_bad_file_name("a/");
    expect_bad_file_name("a\\\\..\\\\b"); /* a\..\b */
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "files[0].name '' must be a relative path");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'x','size':1},"
                       "{'name':'x','size':2}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "files[1].name 'x' is also files[0].name");
    /* names with dots inside parts are fine */
    struct cdt_catalog *cat = load_ok(
        CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a..b/.c/x.gguf','size':1}],"
                "'sources':[{'type':'huggingface','repo':'o/a'}]}"));
    CHECK(cat != NULL);
    cdt_catalog_free(cat);
}

TEST(bad_repos_and_revisions)
{
    const char *const bad_repos[] = {"../x", "a/b/c", "/a",    "a/", "a--b/c",
                                     ".a/b", "a/b.",  "a b/c", ""};

    for (size_t i = 0; i < sizeof(bad_repos) / sizeof(bad_repos[0]); i++) {
        char tmpl[512], em[512] = "";

        snprintf(tmpl, sizeof(tmpl),
                 CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                         "'sources':[{'type':'huggingface','repo':'%s'}]}"),
                 bad_repos[i]);
        if (!expect_err(tmpl, CDT_EFORMAT, "is not a Hugging Face repo id", em, sizeof(em))) {
            fprintf(stderr, "repo '%s': \"%s\"\n", bad_repos[i], em);
            cdt_test_state_.checks_failed++;
        }
    }
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a','revision':'../../x'}]}"),
               CDT_EFORMAT, "sources[0].revision '../../x' must be a commit, branch or tag");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a','revision':'a?b'}]}"),
               CDT_EFORMAT, "sources[0].revision 'a?b' must be");
}

TEST(strings_and_license_fields)
{
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A\\u001b[31m','files':[{'name':'a',"
                       "'size':1}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "field 'name' is not valid UTF-8 or holds control characters");
    EXPECT_ERR(CATALOG("{'id':'a','kind':'llm','name':'A\xff','files':[{'name':'a',"
                       "'size':1}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               CDT_EFORMAT, "field 'name' is not valid UTF-8");
    EXPECT_ERR(CATALOG(MODEL("a", "'gated_terms':true,")), CDT_EFORMAT,
               "model 'a': gated_terms needs license_url");
    EXPECT_ERR(CATALOG(MODEL("a", "'license_url':'http://x.example/terms',")), CDT_EFORMAT,
               "model 'a': license_url must be an https:// URL");
    EXPECT_ERR(CATALOG(MODEL("a", "'thinking':'never','kind2':1,")), CDT_EFORMAT,
               "model 'a': unknown field 'kind2'");
    EXPECT_ERR(CATALOG("{'id':'w','kind':'vad','thinking':'never','name':'W',"
                       "'files':[{'name':'w','size':1}],'sources':[{'type':'huggingface',"
                       "'repo':'o/w'}]}"),
               CDT_EFORMAT, "model 'w': thinking is only for llm models");
    /* A quoted bad id must not carry a terminal escape into the message. */
    {
        char em[512] = "";

        CHECK(expect_err(CATALOG(MODEL("a", "'aliases':['x\\u001by'],")), CDT_EFORMAT,
                         "aliases[0] 'x?y'", em, sizeof(em)));
        CHECK(strchr(em, 0x1b) == NULL);
    }
}

/* Appends printf output to a growing buffer. */
static void bufcat(char **buf, size_t *len, size_t *cap, const char *fmt, ...) CDT_PRINTF(4, 5);

static void bufcat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (*len + (size_t)n + 1 > *cap) {
        *cap = (*len + (size_t)n + 1) * 2;
        *buf = realloc(*buf, *cap);
        if (!*buf)
            abort();
    }
    va_start(ap, fmt);
    vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

/* n models "m0".."m<n-1>", each with n_aliases aliases. */
static char *many_models(size_t n, size_t n_aliases)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;

    bufcat(&buf, &len, &cap, "{'version':1,'models':[");
    for (size_t i = 0; i < n; i++) {
        bufcat(&buf, &len, &cap, "%s{'id':'m%zu','aliases':[", i ? "," : "", i);
        for (size_t j = 0; j < n_aliases; j++)
            bufcat(&buf, &len, &cap, "%s'm%zu_%zu'", j ? "," : "", i, j);
        bufcat(&buf, &len, &cap, "]," M_REST "}");
    }
    bufcat(&buf, &len, &cap, "]}");
    return buf;
}

TEST(caps)
{
    char *tmpl, *big, em[512] = "";
    struct cdt_catalog *cat;
    size_t n = (size_t)CDT_CATALOG_MAX_BYTES + 1;

    /* At the caps: loads. */
    tmpl = many_models(CDT_CATALOG_MAX_MODELS, 2);
    cat = load_ok(tmpl);
    free(tmpl);
    REQUIRE(cat);
    CHECK_INT(cdt_catalog_count(cat), CDT_CATALOG_MAX_MODELS);
    CHECK_STR(cdt_catalog_find(cat, "m1023_1")->id, "m1023");
    CHECK_STR(cdt_catalog_find(cat, "m517")->id, "m517");
    cdt_catalog_free(cat);

    tmpl = many_models(CDT_CATALOG_MAX_MODELS + 1, 0);
    CHECK(expect_err(tmpl, CDT_ETOOBIG, "field 'models' has more than the cap of 1024 models", em,
                     sizeof(em)));
    free(tmpl);

    tmpl = many_models(1, CDT_CATALOG_MAX_ALIASES + 1);
    CHECK(expect_err(tmpl, CDT_ETOOBIG,
                     "model 'm0': field 'aliases' has more than the cap of 16 aliases", em,
                     sizeof(em)));
    free(tmpl);

    EXPECT_ERR(CATALOG(MODEL("a234567890123456789012345678901234567890123456789012345678901234"
                             "5",
                             "")),
               CDT_ETOOBIG, "models[0]: field 'id' is 65 bytes, over the 64-byte cap");
    EXPECT_ERR(CATALOG(MODEL("a", "'ram_mb':2000000,")), CDT_ETOOBIG,
               "field 'ram_mb' is over the cap of 1048576");
    EXPECT_ERR(
        CATALOG("{'id':'a','kind':'llm','name':'A','files':[{'name':'a',"
                "'size':9007199254740993e3}],'sources':[{'type':'huggingface','repo':'o/a'}]}"),
        CDT_ETOOBIG, "field 'files[0].size' is over the cap of 9007199254740992");

    /* Whole catalog over 4 MiB, even of blanks. */
    big = malloc(n);
    REQUIRE(big);
    memset(big, ' ', n);
    cat = (struct cdt_catalog *)1;
    CHECK_INT(cdt_catalog_load(big, n, &cat, em, sizeof(em)), CDT_ETOOBIG);
    CHECK(cat == NULL);
    CHECK(strstr(em, "over the 4194304-byte cap") != NULL);
    free(big);

    /* A name just over its cap. */
    {
        char name[CDT_CATALOG_MAX_STRING + 2];
        size_t cap = 0;

        memset(name, 'x', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        tmpl = NULL;
        n = 0;
        bufcat(&tmpl, &n, &cap,
               CATALOG("{'id':'a','kind':'llm','name':'%s','files':[{'name':'a','size':1}],"
                       "'sources':[{'type':'huggingface','repo':'o/a'}]}"),
               name);
        CHECK(expect_err(tmpl, CDT_ETOOBIG,
                         "model 'a': field 'name' is 513 bytes, over the 512-byte cap", em,
                         sizeof(em)));
        free(tmpl);
    }
}

TEST(bad_arguments)
{
    struct cdt_catalog *cat = NULL;
    char em[128];

    CHECK_INT(cdt_catalog_load(NULL, 0, &cat, em, sizeof(em)), CDT_EINVAL);
    CHECK_INT(cdt_catalog_load("{}", 2, NULL, em, sizeof(em)), CDT_EINVAL);
    /* errmsg may be NULL */
    CHECK_INT(cdt_catalog_load("{", 1, &cat, NULL, 0), CDT_EFORMAT);
    CHECK(cat == NULL);
    /* a tiny errmsg is truncated, still terminated */
    CHECK_INT(cdt_catalog_load("{", 1, &cat, em, 8), CDT_EFORMAT);
    CHECK_INT(strlen(em), 7);
    CHECK_INT(cdt_catalog_count(NULL), 0);
    CHECK(cdt_catalog_model_at(NULL, 0) == NULL);
    CHECK(cdt_catalog_recommended(NULL, CDT_TIER_LE8) == NULL);
    CHECK_INT(cdt_catalog_model_size(NULL), 0);
    CHECK_STR(cdt_model_kind_name(CDT_MODEL_VAD), "vad");
    CHECK_STR(cdt_model_kind_name((enum cdt_model_kind)9), "?");
    CHECK_STR(cdt_thinking_name(CDT_THINKING_HYBRID), "hybrid");
}

static char tmpdir[] = "/tmp/cdt-catalog-XXXXXX";

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

TEST(env_override)
{
    char path[256], em[1024] = "", *json;
    struct cdt_catalog *cat = NULL;

    REQUIRE(mkdtemp(tmpdir));
    snprintf(path, sizeof(path), "%s/catalog.json", tmpdir);
    json = q(CATALOG(MODEL("mine_v1", "'aliases':['mine'],")));
    REQUIRE(json && write_text(path, json) == 0);
    free(json);

    setenv("CODICTATE_CATALOG", path, 1);
    CHECK_INT(cdt_catalog_load_default(&cat, em, sizeof(em)), 0);
    REQUIRE(cat);
    CHECK_STR(cdt_catalog_origin(cat), path);
    CHECK_INT(cdt_catalog_count(cat), 1); /* replaces the built-in one */
    CHECK(cdt_catalog_find(cat, "mine") == cdt_catalog_model_at(cat, 0));
    CHECK(cdt_catalog_find(cat, "qwen3_base_1.7b_v1") == NULL);
    CHECK(cdt_catalog_recommended(cat, CDT_TIER_LE8) == NULL);
    cdt_catalog_free(cat);

    /* An empty value means unset. */
    setenv("CODICTATE_CATALOG", "", 1);
    CHECK_INT(cdt_catalog_load_default(&cat, em, sizeof(em)), 0);
    REQUIRE(cat);
    CHECK_STR(cdt_catalog_origin(cat), "built-in");
    cdt_catalog_free(cat);

    /* A bad override names the variable, the file and the place (a missing comma). */
    REQUIRE(write_text(path, "{\n  \"version\": 1\n  \"models\": []\n}\n") == 0);
    setenv("CODICTATE_CATALOG", path, 1);
    CHECK_INT(cdt_catalog_load_default(&cat, em, sizeof(em)), CDT_EFORMAT);
    CHECK(cat == NULL);
    CHECK(strncmp(em, "CODICTATE_CATALOG=", 18) == 0);
    CHECK(strstr(em, path) != NULL);
    CHECK(strstr(em, "line 3, column 3") != NULL);

    /* load_file: errors start with the path */
    CHECK_INT(cdt_catalog_load_file(path, &cat, em, sizeof(em)), CDT_EFORMAT);
    CHECK(strncmp(em, path, strlen(path)) == 0);
    unlink(path);

    /* A missing file. */
    CHECK_INT(cdt_catalog_load_default(&cat, em, sizeof(em)), CDT_ENOTFOUND);
    CHECK(cat == NULL);
    CHECK(strstr(em, "CODICTATE_CATALOG=") != NULL);
    CHECK(strstr(em, path) != NULL);
    CHECK(strstr(em, "No such file") != NULL);

    /* A directory. */
    setenv("CODICTATE_CATALOG", tmpdir, 1);
    CHECK_INT(cdt_catalog_load_default(&cat, em, sizeof(em)), CDT_EIO);
    CHECK(strstr(em, "is a directory") != NULL);

    /* Over the size cap (a sparse file: no 4 MiB written). */
    {
        FILE *f = fopen(path, "w");

        REQUIRE(f);
        CHECK(fseek(f, CDT_CATALOG_MAX_BYTES, SEEK_SET) == 0);
        fputc(' ', f);
        fclose(f);
    }
    setenv("CODICTATE_CATALOG", path, 1);
    CHECK_INT(cdt_catalog_load_default(&cat, em, sizeof(em)), CDT_ETOOBIG);
    CHECK(strstr(em, "over the 4194304-byte cap") != NULL);
    unlink(path);

    unsetenv("CODICTATE_CATALOG");
    rmdir(tmpdir);
}

int main(void)
{
    RUN(builtin_loads_and_validates);
    RUN(builtin_source);
    RUN(every_llm_id_and_alias_resolves);
    RUN(recommended_matches_limits);
    RUN(entries_match_catalog_md);
    RUN(minimal_catalog_and_defaults);
    RUN(bad_json_reports_line_and_column);
    RUN(version_and_top_level);
    RUN(missing_and_ill_typed_fields);
    RUN(no_files_no_sources_unknown_kind);
    RUN(duplicate_ids_and_aliases);
    RUN(bad_sha256);
    RUN(ram_tiers);
    RUN(path_traversal_in_file_names);
    RUN(bad_repos_and_revisions);
    RUN(strings_and_license_fields);
    RUN(caps);
    RUN(bad_arguments);
    RUN(env_override);
    return TEST_END();
}
