/* App settings (src/lib/settings.c): defaults, the save/load round trip, file and
 * directory modes, the API key kept out of settings.json and the API shape,
 * partial updates and their checks, corrupt and out-of-range files, failed saves
 * (the old file stays, no temp file remains) and the config dir from the
 * environment. */
#include "../test.h"
#include "codictate/prompts.h"
#include "codictate/settings.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY "sk-test-0123456789abcdef"

static char root[] = "/tmp/cdt-settings-XXXXXX";
static int dir_seq;

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A fresh (not yet created) config dir under root for one test. */
static void fresh_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s/d%d", root, ++dir_seq);
}

static void write_file(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t len = strlen(data);

    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* The whole file as a malloc'd string, or NULL. */
static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* Entries of dir whose name contains ".tmp.". */
static int temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

static bool same(const struct cdt_settings *a, const struct cdt_settings *b)
{
    return strcmp(a->llm_model, b->llm_model) == 0 &&
           strcmp(a->whisper_model, b->whisper_model) == 0 && a->provider == b->provider &&
           strcmp(a->openai_base_url, b->openai_base_url) == 0 &&
           strcmp(a->openai_model, b->openai_model) == 0 && strcmp(a->api_key, b->api_key) == 0 &&
           strcmp(a->prompt, b->prompt) == 0 && a->idle_timeout_s == b->idle_timeout_s &&
           a->output == b->output && strcmp(a->language, b->language) == 0 &&
           a->whisper_context == b->whisper_context && strcmp(a->vocabulary, b->vocabulary) == 0;
}

/* Settings with every field away from its default. */
static struct cdt_settings custom(void)
{
    struct cdt_settings s = cdt_settings_defaults();

    snprintf(s.llm_model, sizeof(s.llm_model), "qwen3_base_1.7b_v1");
    snprintf(s.whisper_model, sizeof(s.whisper_model), "/models/ggml-base.en.bin");
    s.provider = CDT_PROVIDER_OPENAI;
    snprintf(s.openai_base_url, sizeof(s.openai_base_url), "https://api.example.com/v1");
    snprintf(s.openai_model, sizeof(s.openai_model), "gpt-4o-mini");
    snprintf(s.api_key, sizeof(s.api_key), KEY);
    snprintf(s.prompt, sizeof(s.prompt), "Fix \"quotes\", keep ümlauts\nand new lines\t.");
    s.idle_timeout_s = 900;
    s.output = CDT_OUTPUT_COPY;
    snprintf(s.language, sizeof(s.language), "de");
    s.whisper_context = false;
    snprintf(s.vocabulary, sizeof(s.vocabulary), "Kubernetes, Anya Petrova, Zürich");
    return s;
}

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);

    if (!j)
        fprintf(stderr, "bad JSON in test: %s\n", text);
    return j;
}

TEST(test_defaults_without_files)
{
    char dir[256], err[512] = "junk";
    struct cdt_settings s, d = cdt_settings_defaults();

    CHECK_STR(d.llm_model, "");
    CHECK_STR(d.whisper_model, "");
    CHECK_INT(d.provider, CDT_PROVIDER_LOCAL);
    CHECK_STR(d.openai_base_url, "");
    CHECK_STR(d.openai_model, "");
    CHECK_STR(d.api_key, "");
    CHECK_STR(d.prompt, "");
    CHECK_INT(d.idle_timeout_s, 120);
    CHECK_INT(d.output, CDT_OUTPUT_NONE);
    CHECK_STR(d.language, "auto");
    CHECK(d.whisper_context);
    CHECK_STR(d.vocabulary, "");

    fresh_dir(dir, sizeof(dir));
    memset(&s, 0x55, sizeof(s));
    CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK(same(&s, &d));
    CHECK(!exists(dir)); /* loading creates nothing */

    /* An existing but empty dir is the same. */
    CHECK_INT(mkdir(dir, 0700), 0);
    CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK(same(&s, &d));
    CHECK_INT(cdt_settings_load(dir, &s, NULL, 0), 0);
}

TEST(test_roundtrip)
{
    char dir[256], path[512], err[512];
    struct cdt_settings s = custom(), got;
    cJSON *j;
    char *text;

    fresh_dir(dir, sizeof(dir));
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK_INT(cdt_settings_load(dir, &got, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK(same(&s, &got));

    /* settings.json: pretty JSON with a version and the fields by name. */
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    text = read_all(path);
    REQUIRE(text);
    CHECK(strchr(text, '\n') != NULL);
    j = cJSON_Parse(text);
    REQUIRE(j);
    CHECK(cJSON_GetObjectItem(j, "version") && cJSON_GetObjectItem(j, "version")->valueint == 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "provider")), "openai");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "output")), "copy");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "prompt")), s.prompt);
    CHECK_INT(cJSON_GetObjectItem(j, "idle_timeout_s")->valueint, 900);
    cJSON_Delete(j);
    free(text);

    /* Saving the defaults over it gives the defaults back; every enum value survives. */
    for (int o = CDT_OUTPUT_TYPE; o <= CDT_OUTPUT_NONE; o++) {
        struct cdt_settings d = cdt_settings_defaults();

        d.output = (enum cdt_output_mode)o;
        d.idle_timeout_s = o == CDT_OUTPUT_TYPE ? -1 : o == CDT_OUTPUT_COPY ? 0 : 3600;
        CHECK_INT(cdt_settings_save(dir, &d, err, sizeof(err)), 0);
        CHECK_INT(cdt_settings_load(dir, &got, err, sizeof(err)), 0);
        CHECK_STR(err, "");
        CHECK(same(&d, &got));
    }
    CHECK_INT(temp_files(dir), 0);
}

TEST(test_modes)
{
    char base[256], dir[300], path[512], err[512];
    struct cdt_settings s = custom();
    mode_t old = umask(022);

    /* Missing parents are created too, all 0700. */
    fresh_dir(base, sizeof(base));
    snprintf(dir, sizeof(dir), "%s/a/codictate", base);
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);
    CHECK_INT(mode_of(dir), 0700);
    snprintf(path, sizeof(path), "%s/a", base);
    CHECK_INT(mode_of(path), 0700);
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    CHECK_INT(mode_of(path), 0600);
    snprintf(path, sizeof(path), "%s/api_key", dir);
    CHECK_INT(mode_of(path), 0600);

    /* Even under a permissive umask the files are 0600. */
    umask(0);
    s.idle_timeout_s = 300;
    snprintf(s.api_key, sizeof(s.api_key), "sk-other");
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    CHECK_INT(mode_of(path), 0600);
    snprintf(path, sizeof(path), "%s/api_key", dir);
    CHECK_INT(mode_of(path), 0600);

    /* An unchanged key file that is too open is tightened. */
    CHECK_INT(chmod(path, 0644), 0);
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);
    CHECK_INT(mode_of(path), 0600);
    umask(old);
}

TEST(test_api_key_kept_apart)
{
    char dir[256], path[512], err[512];
    struct cdt_settings s = custom(), got;
    cJSON *j;
    char *text;

    fresh_dir(dir, sizeof(dir));
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);

    snprintf(path, sizeof(path), "%s/settings.json", dir);
    text = read_all(path);
    REQUIRE(text);
    CHECK(strstr(text, KEY) == NULL);
    CHECK(strstr(text, "api_key") == NULL);
    free(text);

    snprintf(path, sizeof(path), "%s/api_key", dir);
    text = read_all(path);
    CHECK_STR(text, KEY "\n");
    free(text);

    /* The API shape says that a key is set, never what it is. */
    j = cdt_settings_to_json(&s);
    REQUIRE(j);
    text = cJSON_PrintUnformatted(j);
    REQUIRE(text);
    CHECK(strstr(text, KEY) == NULL);
    CHECK(cJSON_GetObjectItem(j, "api_key") == NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "api_key_set")));
    free(text);
    cJSON_Delete(j);

    /* A bad key's message does not echo it. */
    {
        struct cdt_settings t = s;

        j = parse("{\"api_key\": \"sk-secret with space\"}");
        CHECK_INT(cdt_settings_apply_json(&t, j, err, sizeof(err)), CDT_EINVAL);
        CHECK(strstr(err, "api_key") != NULL);
        CHECK(strstr(err, "secret") == NULL);
        cJSON_Delete(j);
    }

    /* "" clears the key and removes the file; settings.json stays. */
    j = parse("{\"api_key\": \"\"}");
    CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
    cJSON_Delete(j);
    CHECK_STR(s.api_key, "");
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);
    CHECK(!exists(path));
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    CHECK(exists(path));
    CHECK_INT(cdt_settings_load(dir, &got, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK_STR(got.api_key, "");
    CHECK(same(&s, &got));
    j = cdt_settings_to_json(&got);
    REQUIRE(j);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "api_key_set")));
    cJSON_Delete(j);
    /* Clearing again, with no file, is fine. */
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), 0);

    /* A key file written by hand: surrounding whitespace is dropped. */
    snprintf(path, sizeof(path), "%s/api_key", dir);
    write_file(path, "  sk-hand \r\n\n");
    CHECK_INT(cdt_settings_load(dir, &got, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK_STR(got.api_key, "sk-hand");
}

TEST(test_apply_bad_values)
{
    static const struct {
        const char *patch, *field;
    } bad[] = {
        {"{\"provider\": \"bogus\"}", "provider"},
        {"{\"provider\": null}", "provider"},
        {"{\"provider\": 1}", "provider"},
        {"{\"provider\": \"OpenAI\"}", "provider"},
        {"{\"output\": \"x\"}", "output"},
        {"{\"output\": null}", "output"},
        {"{\"idle_timeout_s\": 77}", "idle_timeout_s"},
        {"{\"idle_timeout_s\": \"120\"}", "idle_timeout_s"},
        {"{\"idle_timeout_s\": 120.5}", "idle_timeout_s"},
        {"{\"idle_timeout_s\": -2}", "idle_timeout_s"},
        {"{\"idle_timeout_s\": 1e300}", "idle_timeout_s"},
        {"{\"idle_timeout_s\": true}", "idle_timeout_s"},
        {"{\"idle_timeout_s\": null}", "idle_timeout_s"},
        {"{\"language\": \"EN\"}", "language"},
        {"{\"language\": \"e\"}", "language"},
        {"{\"language\": \"engl\"}", "language"},
        {"{\"language\": \"auto \"}", "language"},
        {"{\"language\": null}", "language"},
        {"{\"language\": 5}", "language"},
        {"{\"whisper_context\": \"false\"}", "whisper_context"},
        {"{\"whisper_context\": 0}", "whisper_context"},
        {"{\"whisper_context\": null}", "whisper_context"},
        {"{\"vocabulary\": 5}", "vocabulary"},
        {"{\"vocabulary\": \"a\\nb\"}", "vocabulary"},
        {"{\"openai_base_url\": \"ftp://example.com\"}", "openai_base_url"},
        {"{\"openai_base_url\": \"http://\"}", "openai_base_url"},
        {"{\"openai_base_url\": \"example.com/v1\"}", "openai_base_url"},
        {"{\"openai_base_url\": \"https://exa mple.com\"}", "openai_base_url"},
        {"{\"openai_base_url\": 5}", "openai_base_url"},
        {"{\"llm_model\": 5}", "llm_model"},
        {"{\"llm_model\": false}", "llm_model"},
        {"{\"whisper_model\": \"a\\nb\"}", "whisper_model"},
        {"{\"openai_model\": {}}", "openai_model"},
        {"{\"api_key\": null}", "api_key"},
        {"{\"api_key\": 12}", "api_key"},
        {"{\"api_key\": \"sk\\u0001x\"}", "api_key"},
        {"{\"api_key\": \"sk-\\u00fc\"}", "api_key"},
        {"{\"prompt\": 3}", "prompt"},
        {"{\"prompt\": [\"a\"]}", "prompt"},
        /* A good field first, then a bad one: nothing is applied. */
        {"{\"llm_model\": \"other\", \"output\": \"type\", \"language\": \"xx1\"}", "language"},
    };
    struct cdt_settings s = custom(), before = s;
    char err[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *j = parse(bad[i].patch);

        REQUIRE(j);
        err[0] = '\0';
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), CDT_EINVAL);
        if (!strstr(err, bad[i].field))
            fprintf(stderr, "patch %s: message \"%s\" does not name %s\n", bad[i].patch, err,
                    bad[i].field);
        CHECK(strstr(err, bad[i].field) != NULL);
        CHECK(memcmp(&s, &before, sizeof(s)) == 0);
        cJSON_Delete(j);
    }

    /* Over-long strings, a prompt that is not UTF-8, and a patch that is no object. */
    {
        static char big[20000];
        char json[20100];
        cJSON *j;

        memset(big, 'a', sizeof(big) - 1);
        big[128] = '\0';
        snprintf(json, sizeof(json), "{\"llm_model\": \"%s\"}", big);
        j = parse(json);
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), CDT_EINVAL);
        CHECK(strstr(err, "llm_model") && strstr(err, "127"));
        cJSON_Delete(j);

        big[128] = 'a';
        big[512] = '\0';
        snprintf(json, sizeof(json), "{\"api_key\": \"%s\"}", big);
        j = parse(json);
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), CDT_EINVAL);
        CHECK(strstr(err, "api_key") != NULL);
        cJSON_Delete(j);

        big[512] = 'a';
        big[16384] = '\0';
        snprintf(json, sizeof(json), "{\"prompt\": \"%s\"}", big);
        j = parse(json);
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), CDT_EINVAL);
        CHECK(strstr(err, "prompt") && strstr(err, "16383"));
        cJSON_Delete(j);
        CHECK(memcmp(&s, &before, sizeof(s)) == 0);

        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "prompt", "caf\xc3");
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), CDT_EINVAL);
        CHECK(strstr(err, "prompt") && strstr(err, "UTF-8"));
        cJSON_Delete(j);

        j = parse("[]");
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), CDT_EINVAL);
        cJSON_Delete(j);
        CHECK_INT(cdt_settings_apply_json(&s, NULL, err, sizeof(err)), CDT_EINVAL);
        CHECK(memcmp(&s, &before, sizeof(s)) == 0);
    }
}

TEST(test_apply_good_and_null)
{
    struct cdt_settings s = cdt_settings_defaults();
    char err[512] = "junk";
    cJSON *j;

    j = parse("{\"llm_model\": \"qwen3_base_1.7b_v1\", \"whisper_model\": \"base.en\","
              " \"provider\": \"openai\", \"openai_base_url\": \"HTTP://localhost:8080/v1\","
              " \"openai_model\": \"m\", \"api_key\": \"  sk-abc\\n\", \"prompt\": \"Be terse.\","
              " \"idle_timeout_s\": 0, \"output\": \"type\", \"language\": \"yue\","
              " \"unknown_field\": [1, 2], \"version\": 99}");
    REQUIRE(j);
    CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    cJSON_Delete(j);
    CHECK_STR(s.llm_model, "qwen3_base_1.7b_v1");
    CHECK_STR(s.whisper_model, "base.en");
    CHECK_INT(s.provider, CDT_PROVIDER_OPENAI);
    CHECK_STR(s.openai_base_url, "HTTP://localhost:8080/v1");
    CHECK_STR(s.openai_model, "m");
    CHECK_STR(s.api_key, "sk-abc");
    CHECK_STR(s.prompt, "Be terse.");
    CHECK_INT(s.idle_timeout_s, 0);
    CHECK_INT(s.output, CDT_OUTPUT_TYPE);
    CHECK_STR(s.language, "yue");

    /* An empty patch changes nothing; every allowed idle timeout is taken. */
    {
        struct cdt_settings before = s;
        static const int ok[] = {-1, 0, 120, 300, 600, 900, 3600};

        j = parse("{}");
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
        cJSON_Delete(j);
        CHECK(same(&s, &before));
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
            char json[64];

            snprintf(json, sizeof(json), "{\"idle_timeout_s\": %d}", ok[i]);
            j = parse(json);
            CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
            CHECK_INT(s.idle_timeout_s, ok[i]);
            cJSON_Delete(j);
        }
    }

    /* null (and "" for the URL) unset the strings. */
    j = parse("{\"llm_model\": null, \"whisper_model\": null, \"openai_base_url\": \"\","
              " \"openai_model\": null, \"prompt\": null, \"language\": \"auto\"}");
    CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
    cJSON_Delete(j);
    CHECK_STR(s.llm_model, "");
    CHECK_STR(s.whisper_model, "");
    CHECK_STR(s.openai_base_url, "");
    CHECK_STR(s.openai_model, "");
    CHECK_STR(s.prompt, "");
    CHECK_STR(s.language, "auto");
    CHECK_STR(s.api_key, "sk-abc"); /* untouched */
    j = parse("{\"openai_base_url\": null}");
    CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
    cJSON_Delete(j);
    CHECK_STR(s.openai_base_url, "");

    /* The longest prompt that fits, in UTF-8. */
    {
        static char big[16384], json[16500];

        memset(big, 'a', sizeof(big) - 1);
        memcpy(big, "\xc3\xbc", 2);
        big[sizeof(big) - 1] = '\0';
        snprintf(json, sizeof(json), "{\"prompt\": \"%s\"}", big);
        j = parse(json);
        CHECK_INT(cdt_settings_apply_json(&s, j, err, sizeof(err)), 0);
        cJSON_Delete(j);
        CHECK_INT(strlen(s.prompt), 16383);
        CHECK(strcmp(s.prompt, big) == 0);
    }
}

TEST(test_to_json)
{
    struct cdt_settings s = cdt_settings_defaults();
    cJSON *j = cdt_settings_to_json(&s), *x;

    REQUIRE(j);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "llm_model")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "whisper_model")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "provider")), "local");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "openai_base_url")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "openai_model")));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "api_key_set")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "prompt")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "default_prompt")), cdt_prompt_default());
    x = cJSON_GetObjectItem(j, "idle_timeout_s");
    CHECK(cJSON_IsNumber(x) && x->valueint == 120);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "output")), "none");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "language")), "auto");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "whisper_context")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "vocabulary")));
    CHECK(cJSON_GetObjectItem(j, "api_key") == NULL);
    CHECK(cJSON_GetObjectItem(j, "version") == NULL);
    cJSON_Delete(j);

    s = custom();
    j = cdt_settings_to_json(&s);
    REQUIRE(j);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "llm_model")), s.llm_model);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "whisper_model")), s.whisper_model);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "provider")), "openai");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "openai_base_url")), s.openai_base_url);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "openai_model")), s.openai_model);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "prompt")), s.prompt);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "output")), "copy");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "language")), "de");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "whisper_context")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "vocabulary")), s.vocabulary);

    /* The API shape goes back in through apply_json unchanged (the key aside). */
    {
        struct cdt_settings t = cdt_settings_defaults();
        char err[256];

        CHECK_INT(cdt_settings_apply_json(&t, j, err, sizeof(err)), 0);
        snprintf(t.api_key, sizeof(t.api_key), "%s", s.api_key);
        CHECK(same(&s, &t));
    }
    cJSON_Delete(j);
}

TEST(test_names)
{
    enum cdt_provider_kind p = CDT_PROVIDER_OPENAI;
    enum cdt_output_mode o = CDT_OUTPUT_TYPE;

    CHECK_STR(cdt_settings_provider_name(CDT_PROVIDER_LOCAL), "local");
    CHECK_STR(cdt_settings_provider_name(CDT_PROVIDER_OPENAI), "openai");
    CHECK_STR(cdt_settings_provider_name((enum cdt_provider_kind)9), "unknown");
    CHECK_INT(cdt_settings_provider_parse("local", &p), 0);
    CHECK_INT(p, CDT_PROVIDER_LOCAL);
    CHECK_INT(cdt_settings_provider_parse("bogus", &p), CDT_EINVAL);
    CHECK_INT(cdt_settings_provider_parse(NULL, &p), CDT_EINVAL);
    CHECK_INT(p, CDT_PROVIDER_LOCAL);
    CHECK_STR(cdt_settings_output_name(CDT_OUTPUT_TYPE), "type");
    CHECK_STR(cdt_settings_output_name(CDT_OUTPUT_COPY), "copy");
    CHECK_STR(cdt_settings_output_name(CDT_OUTPUT_NONE), "none");
    CHECK_STR(cdt_settings_output_name((enum cdt_output_mode)9), "unknown");
    CHECK_INT(cdt_settings_output_parse("copy", &o), 0);
    CHECK_INT(o, CDT_OUTPUT_COPY);
    CHECK_INT(cdt_settings_output_parse("", &o), CDT_EINVAL);
    CHECK_INT(o, CDT_OUTPUT_COPY);
    CHECK(cdt_settings_idle_timeout_valid(-1) && cdt_settings_idle_timeout_valid(3600));
    CHECK(!cdt_settings_idle_timeout_valid(77) && !cdt_settings_idle_timeout_valid(-2));
    CHECK(cdt_settings_language_valid("auto") && cdt_settings_language_valid("en"));
    CHECK(!cdt_settings_language_valid("En") && !cdt_settings_language_valid("") &&
          !cdt_settings_language_valid(NULL));
}

TEST(test_corrupt_file)
{
    static const char *junk[] = {"not json {", "[1, 2]",    "\"text\"",
                                 "",           "{\"a\": 1", "{\"llm_model\": \"x\"} trailing"};
    char dir[256], path[512], err[512];
    struct cdt_settings s, d = cdt_settings_defaults();

    fresh_dir(dir, sizeof(dir));
    CHECK_INT(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        write_file(path, junk[i]);
        err[0] = '\0';
        CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
        CHECK(same(&s, &d));
        if (!strstr(err, "settings.json"))
            fprintf(stderr, "file '%s': warning \"%s\"\n", junk[i], err);
        CHECK(strstr(err, "settings.json") != NULL);
    }

    /* Wrong types: those fields get their defaults, good fields are kept. */
    write_file(path, "{\"version\": 1, \"llm_model\": 5, \"idle_timeout_s\": \"x\","
                     " \"language\": \"fr\", \"provider\": \"openai\", \"prompt\": {}}");
    CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
    CHECK_STR(s.llm_model, "");
    CHECK_INT(s.idle_timeout_s, 120);
    CHECK_STR(s.prompt, "");
    CHECK_STR(s.language, "fr");
    CHECK_INT(s.provider, CDT_PROVIDER_OPENAI);
    CHECK(strstr(err, "llm_model") && strstr(err, "idle_timeout_s") && strstr(err, "prompt"));
    CHECK(!strstr(err, "language") && !strstr(err, "provider"));

    /* Over CDT_SETTINGS_MAX_BYTES: all defaults, with a warning naming the cap. */
    {
        size_t n = CDT_SETTINGS_MAX_BYTES + 10;
        char *big = malloc(n + 1);

        REQUIRE(big);
        memset(big, ' ', n);
        memcpy(big, "{\"language\": \"fr\"}", 18);
        big[n] = '\0';
        write_file(path, big);
        free(big);
        CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
        CHECK(same(&s, &d));
        CHECK(strstr(err, "CDT_SETTINGS_MAX_BYTES") != NULL);
    }

    /* settings.json that is a directory cannot be read: an error, and the defaults. */
    CHECK_INT(unlink(path), 0);
    CHECK_INT(mkdir(path, 0700), 0);
    memset(&s, 0x55, sizeof(s));
    CHECK(cdt_settings_load(dir, &s, err, sizeof(err)) < 0);
    CHECK(strstr(err, "settings.json") != NULL);
    CHECK(same(&s, &d));
}

TEST(test_out_of_range_in_file)
{
    char dir[256], path[512], err[1024];
    struct cdt_settings s;

    fresh_dir(dir, sizeof(dir));
    CHECK_INT(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    write_file(path, "{\"version\": 1, \"idle_timeout_s\": 77, \"provider\": \"bogus\","
                     " \"output\": \"x\", \"language\": \"ENG\", \"openai_base_url\": \"ftp://x\","
                     " \"openai_model\": \"kept\", \"api_key\": \"sk-in-json\","
                     " \"future_field\": true}");
    CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
    CHECK_INT(s.idle_timeout_s, 120);
    CHECK_INT(s.provider, CDT_PROVIDER_LOCAL);
    CHECK_INT(s.output, CDT_OUTPUT_NONE);
    CHECK_STR(s.language, "auto");
    CHECK_STR(s.openai_base_url, "");
    CHECK_STR(s.openai_model, "kept");
    CHECK_STR(s.api_key, ""); /* "api_key" in settings.json is ignored */
    CHECK(strstr(err, "idle_timeout_s") && strstr(err, "provider") && strstr(err, "output") &&
          strstr(err, "language") && strstr(err, "openai_base_url"));
    CHECK(!strstr(err, "future_field") && !strstr(err, "sk-in-json"));

    /* A key file that is not a key: no key, and a warning that does not quote it. */
    snprintf(path, sizeof(path), "%s/api_key", dir);
    write_file(path, "sk-two words\n");
    CHECK_INT(cdt_settings_load(dir, &s, err, sizeof(err)), 0);
    CHECK_STR(s.api_key, "");
    CHECK(strstr(err, "api_key") && !strstr(err, "words"));
}

TEST(test_save_refuses_bad_struct)
{
    char dir[256], path[512], err[512];
    struct cdt_settings s = cdt_settings_defaults();

    fresh_dir(dir, sizeof(dir));
    s.idle_timeout_s = 77;
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), CDT_EINVAL);
    CHECK(strstr(err, "idle_timeout_s") != NULL);
    s = cdt_settings_defaults();
    s.provider = (enum cdt_provider_kind)7;
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), CDT_EINVAL);
    CHECK(strstr(err, "provider") != NULL);
    s = cdt_settings_defaults();
    memset(s.language, 'a', sizeof(s.language)); /* not NUL-terminated */
    CHECK_INT(cdt_settings_save(dir, &s, err, sizeof(err)), CDT_EINVAL);
    CHECK(strstr(err, "language") != NULL);
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    CHECK(!exists(path));
}

TEST(test_failed_save_dir_is_file)
{
    char base[256], file[300], dir[400], err[512];
    struct cdt_settings s = custom(), got;

    fresh_dir(base, sizeof(base));
    CHECK_INT(mkdir(base, 0700), 0);
    snprintf(file, sizeof(file), "%s/file", base);
    write_file(file, "x");
    snprintf(dir, sizeof(dir), "%s/codictate", file);
    err[0] = '\0';
    CHECK(cdt_settings_save(dir, &s, err, sizeof(err)) < 0);
    CHECK(strstr(err, dir) != NULL);
    /* The dir itself a file. */
    CHECK(cdt_settings_save(file, &s, err, sizeof(err)) < 0);
    CHECK(strstr(err, file) != NULL);
    /* Loading from there: an error, and the defaults to start with. */
    CHECK(cdt_settings_load(dir, &got, err, sizeof(err)) < 0);
    {
        struct cdt_settings d = cdt_settings_defaults();
        CHECK(same(&got, &d));
    }
    CHECK_INT(temp_files(base), 0);
}

TEST(test_failed_save_keeps_old_file)
{
    char dir[256], path[512], err[512];
    struct cdt_settings old = custom(), s, got;
    struct rlimit saved, lim;
    void (*saved_sig)(int);
    int rc;

    fresh_dir(dir, sizeof(dir));
    CHECK_INT(cdt_settings_save(dir, &old, err, sizeof(err)), 0);

    /* The disk "fills" mid-write: RLIMIT_FSIZE holds even for root. */
    s = old;
    memset(s.prompt, 'p', sizeof(s.prompt) - 1);
    s.prompt[sizeof(s.prompt) - 1] = '\0';
    s.idle_timeout_s = 600;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    lim = saved;
    lim.rlim_cur = 4096;
    saved_sig = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    err[0] = '\0';
    rc = cdt_settings_save(dir, &s, err, sizeof(err));
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, saved_sig);
    CHECK_INT(rc, CDT_EIO);
    CHECK(strstr(err, "settings.json") != NULL);
    CHECK_INT(temp_files(dir), 0);
    CHECK_INT(cdt_settings_load(dir, &got, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK(same(&got, &old));

    /* The rename fails (settings.json is a directory): no temp left, nothing replaced. */
    snprintf(path, sizeof(path), "%s/settings.json", dir);
    CHECK_INT(unlink(path), 0);
    CHECK_INT(mkdir(path, 0700), 0);
    CHECK(cdt_settings_save(dir, &old, err, sizeof(err)) < 0);
    CHECK(strstr(err, path) != NULL);
    CHECK_INT(temp_files(dir), 0);
    CHECK(mode_of(path) >= 0 && rmdir(path) == 0);

    /* The same for the key file; and one that cannot be removed is an error. */
    snprintf(path, sizeof(path), "%s/api_key", dir);
    CHECK_INT(unlink(path), 0);
    CHECK_INT(mkdir(path, 0700), 0);
    s = old;
    snprintf(s.api_key, sizeof(s.api_key), "sk-new");
    CHECK(cdt_settings_save(dir, &s, err, sizeof(err)) < 0);
    CHECK(strstr(err, "api_key") != NULL);
    CHECK_INT(temp_files(dir), 0);
    s.api_key[0] = '\0';
    CHECK(cdt_settings_save(dir, &s, err, sizeof(err)) < 0);
    CHECK(strstr(err, "api_key") != NULL);
    CHECK_INT(rmdir(path), 0);

    /* A stale temp file with our pid (a crashed earlier process) does not block. */
    {
        char tmp[600];

        snprintf(tmp, sizeof(tmp), "%s/settings.json.tmp.%ld", dir, (long)getpid());
        write_file(tmp, "stale");
        CHECK_INT(cdt_settings_save(dir, &old, err, sizeof(err)), 0);
        CHECK_INT(temp_files(dir), 0);
        CHECK_INT(cdt_settings_load(dir, &got, err, sizeof(err)), 0);
        CHECK(same(&got, &old));
    }
}

TEST(test_config_dir_from_env)
{
    char base[256], want[512], buf[512], path[600], err[512];
    char *saved_home = xstrdup(getenv("HOME")), *saved_xdg = xstrdup(getenv("XDG_CONFIG_HOME"));
    struct cdt_settings s = custom(), got;
    char *text;

    fresh_dir(base, sizeof(base));
    snprintf(want, sizeof(want), "%s/xdg", base);
    setenv("XDG_CONFIG_HOME", want, 1);
    setenv("HOME", "/nonexistent-home", 1);
    CHECK_INT(cdt_settings_dir(buf, sizeof(buf)), 0);
    strcat(want, "/codictate");
    CHECK_STR(buf, want);

    /* The refine --prompt config next to it is left alone. */
    CHECK_INT(mkdir(base, 0700), 0);
    snprintf(path, sizeof(path), "%s/xdg", base);
    CHECK_INT(mkdir(path, 0700), 0);
    CHECK_INT(mkdir(want, 0700), 0);
    snprintf(path, sizeof(path), "%s/config.json", want);
    write_file(path, "{\"prompts\": {\"terse\": \"Be terse.\"}}");

    CHECK_INT(cdt_settings_save(NULL, &s, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/settings.json", want);
    CHECK(exists(path));
    CHECK_INT(cdt_settings_load(NULL, &got, err, sizeof(err)), 0);
    CHECK(same(&s, &got));
    CHECK_INT(cdt_settings_load("", &got, err, sizeof(err)), 0);
    CHECK(same(&s, &got));
    snprintf(path, sizeof(path), "%s/config.json", want);
    text = read_all(path);
    CHECK_STR(text, "{\"prompts\": {\"terse\": \"Be terse.\"}}");
    free(text);

    /* A given dir beats the environment (trailing slashes are fine). */
    snprintf(path, sizeof(path), "%s/given/", base);
    CHECK_INT(cdt_settings_save(path, &s, err, sizeof(err)), 0);
    strcat(path, "settings.json");
    CHECK(exists(path));

    /* Without XDG_CONFIG_HOME (or with it empty): ~/.config/codictate. */
    setenv("XDG_CONFIG_HOME", "", 1);
    setenv("HOME", base, 1);
    CHECK_INT(cdt_settings_dir(buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "%s/.config/codictate", base);
    CHECK_STR(buf, want);
    CHECK_INT(cdt_settings_dir(buf, 8), CDT_ETOOBIG);
    CHECK_STR(buf, "");
    CHECK_INT(cdt_settings_save(NULL, &s, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/settings.json", want);
    CHECK(exists(path));
    CHECK_INT(mode_of(want), 0700);

    /* Neither: not found, and the defaults to start with. */
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("HOME");
    CHECK_INT(cdt_settings_dir(buf, sizeof(buf)), CDT_ENOTFOUND);
    CHECK_INT(cdt_settings_load(NULL, &got, err, sizeof(err)), CDT_ENOTFOUND);
    CHECK(strstr(err, "HOME") != NULL);
    {
        struct cdt_settings d = cdt_settings_defaults();
        CHECK(same(&got, &d));
    }
    CHECK_INT(cdt_settings_save(NULL, &s, err, sizeof(err)), CDT_ENOTFOUND);

    if (saved_home)
        setenv("HOME", saved_home, 1);
    if (saved_xdg)
        setenv("XDG_CONFIG_HOME", saved_xdg, 1);
    free(saved_home);
    free(saved_xdg);
}

int main(void)
{
    char cmd[128];
    int rc;

    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_defaults_without_files);
    RUN(test_roundtrip);
    RUN(test_modes);
    RUN(test_api_key_kept_apart);
    RUN(test_apply_bad_values);
    RUN(test_apply_good_and_null);
    RUN(test_to_json);
    RUN(test_names);
    RUN(test_corrupt_file);
    RUN(test_out_of_range_in_file);
    RUN(test_save_refuses_bad_struct);
    RUN(test_failed_save_dir_is_file);
    RUN(test_failed_save_keeps_old_file);
    RUN(test_config_dir_from_env);
    rc = TEST_END();
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", root, root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return rc;
}
