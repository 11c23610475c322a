/* `codictate version`: our version, the engines', the CPU, the RAM tier and its
 * limits, and the model recommended for this machine. */
#include "cli.h"
#include "codictate/limits.h"
#include "codictate/sysinfo.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void version_usage(FILE *out)
{
    fprintf(out, "usage: codictate version [--json]\n"
                 "\n"
                 "Shows codictate's version, the llama.cpp commit and ggml version, the\n"
                 "whisper.cpp version, the engines' AMX choice, CPU features, total RAM,\n"
                 "the RAM tier, its limits and the model recommended for this machine.\n"
                 "\n"
                 "  --json   machine-readable output\n");
}

/* The engine build's AMX choice, for people. */
static const char *amx_text(const char *amx)
{
    if (strcmp(amx, "none") == 0)
        return "none (the build machine's CPU has no AMX)";
    if (strcmp(amx, "off") == 0)
        return "off: ggml's AMX kernels left out (CODICTATE_AMX=off); AVX-512 kernels run "
               "instead";
    if (strcmp(amx, "patched") == 0)
        return "patched: ggml's AMX kernels with scripts/patches/ggml-amx-xfd.patch (the "
               "stock ones crash in this llama.cpp, #20824)";
    return amx;
}

static int print_json(const struct cdt_engine_versions *v, int cpus, const char *features,
                      uint64_t ram, int ram_gb, const struct cdt_tier_limits *t)
{
    cJSON *root = cJSON_CreateObject(), *o;
    char *text;

    if (!root)
        return CDT_EXIT_FAIL;
    cJSON_AddStringToObject(root, "version", CDT_VERSION);
    o = cJSON_AddObjectToObject(root, "llama_cpp");
    cJSON_AddStringToObject(o, "commit", v->llama_commit);
    o = cJSON_AddObjectToObject(root, "ggml");
    cJSON_AddStringToObject(o, "version", v->ggml_version);
    cJSON_AddStringToObject(o, "commit", v->ggml_commit);
    cJSON_AddStringToObject(o, "amx", v->amx);
    o = cJSON_AddObjectToObject(root, "whisper_cpp");
    cJSON_AddStringToObject(o, "version", v->whisper_version);
    o = cJSON_AddObjectToObject(root, "cpu");
    cJSON_AddNumberToObject(o, "count", cpus);
    cJSON_AddStringToObject(o, "features", features);
    o = cJSON_AddObjectToObject(root, "ram");
    cJSON_AddNumberToObject(o, "total_bytes", (double)ram);
    cJSON_AddNumberToObject(o, "gb", ram_gb);
    cJSON_AddStringToObject(o, "tier", t->name);
    o = cJSON_AddObjectToObject(root, "limits");
    cJSON_AddNumberToObject(o, "max_tokens", t->max_tokens);
    cJSON_AddNumberToObject(o, "recording_limit_s", t->recording_limit_s);
    cJSON_AddNumberToObject(o, "recording_warning_s", t->recording_warning_s);
    o = cJSON_AddObjectToObject(root, "recommended_model");
    cJSON_AddStringToObject(o, "id", t->recommended_id);
    cJSON_AddStringToObject(o, "name", t->recommended_name);
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return CDT_EXIT_FAIL;
    puts(text);
    free(text);
    return CDT_EXIT_OK;
}

int cdt_cmd_version(struct cdt_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_engine_versions v = cdt_sysinfo_engine_versions();
    struct cdt_tier_limits t;
    char features[512];
    uint64_t ram = 0;
    int c, json = 0, ram_gb, cpus, rc;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            version_usage(stdout);
            return CDT_EXIT_OK;
        default:
            version_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "codictate version: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }

    rc = cdt_sysinfo_total_ram(&ram);
    if (rc != 0)
        CDT_LOG_W(cli->log, "cannot read total RAM (%s); assuming the smallest tier",
                  cdt_strerror(rc));
    ram_gb = cdt_limits_ram_gb(ram);
    t = cdt_limits_for_ram_gb(ram_gb);
    cpus = cdt_sysinfo_cpu_count();
    cdt_sysinfo_cpu_features(features, sizeof(features));

    if (json)
        return print_json(&v, cpus, features, ram, ram_gb, &t);

    printf("codictate    %s\n", CDT_VERSION);
    printf("llama.cpp    %s (ggml %s)\n", v.llama_commit, v.ggml_version);
    printf("whisper.cpp  %s\n", v.whisper_version);
    printf("amx          %s\n", amx_text(v.amx));
    printf("cpu          %d cores: %s\n", cpus, *features ? features : "(no SIMD features)");
    printf("ram          %.1f GiB total -> %d GB, tier %s (%s)\n",
           (double)ram / (1024.0 * 1024.0 * 1024.0), ram_gb, t.name, t.label);
    printf("limits       max %d generated tokens, recording %d s (warning at %d s)\n", t.max_tokens,
           t.recording_limit_s, t.recording_warning_s);
    printf("recommended  %s (%s)\n", t.recommended_name, t.recommended_id);
    return CDT_EXIT_OK;
}
