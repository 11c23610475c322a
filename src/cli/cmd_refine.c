/* `codictate refine [TEXT|-]`: the refinement pipeline from the command line.
 * The text comes from the arguments (joined by spaces) or stdin; the refined text
 * goes to stdout (or a JSON object with --json). When the model cannot be used the
 * deterministic cleanup is delivered, the reason goes to stderr, and the exit
 * status is still 0: the user's words are never lost. */
#include "args.h"
#include "cli.h"
#include "codictate/catalog.h"
#include "codictate/limits.h"
#include "codictate/manager.h"
#include "codictate/models.h"
#include "codictate/prompts.h"
#include "codictate/refine.h"
#include "codictate/sysinfo.h"
#include "codictate/text.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CDT_REFINE_HTTP_MARGIN_MS 5000 /* sidecar HTTP timeout beyond the deadline, ms */

static void refine_usage(FILE *out)
{
    fprintf(out,
            "usage: codictate refine [options] [TEXT|-]\n"
            "\n"
            "Cleans up a transcript: a deterministic pass (fillers, stutters, spoken\n"
            "punctuation such as \"comma\" or \"new line\"), then an LLM. TEXT is the\n"
            "transcript (several arguments are joined by spaces); '-' or none reads stdin.\n"
            "When the LLM cannot be used (no model, endpoint down, deadline, an output that\n"
            "is not a cleanup) the deterministic text is printed, the reason goes to\n"
            "stderr, and the exit status is still 0.\n"
            "\n"
            "options:\n"
            "  --model ID|PATH      the LLM: a catalog id/alias or a GGUF path (default: the\n"
            "                       model recommended for this machine if downloaded, else\n"
            "                       any downloaded LLM)\n"
            "  --provider local|openai\n"
            "                       local: the built-in sidecar (default); openai: any\n"
            "                       OpenAI-compatible endpoint (vLLM, Ollama, llama-server, …)\n"
            "  --base-url URL       the endpoint (default $OPENAI_BASE_URL, else\n"
            "                       https://api.openai.com/v1); implies --provider openai\n"
            "  --api-key KEY        bearer key (default $OPENAI_API_KEY)\n"
            "  --openai-model NAME  the remote model (default gpt-4o-mini on api.openai.com,\n"
            "                       else the endpoint's first /models entry)\n"
            "  --prompt NAME|@FILE  instructions: a named prompt from the config file\n"
            "                       ($XDG_CONFIG_HOME/codictate/config.json, {\"prompts\":\n"
            "                       {\"NAME\": \"…\"}}), a file, or \"default\"\n"
            "  --timeout-ms N       deadline of the LLM step (default %d)\n"
            "  --json               print {\"raw\",\"refined\",\"fallback_reason\",\n"
            "                       \"reason_code\",\"model\",\"provider\",\"timings\"}\n"
            "  -h, --help           this help\n"
            "\n"
            "exit status: 0 text delivered (also on fallback), 1 failure (unreadable input),\n"
            "2 usage error\n",
            CDT_REFINE_DEFAULT_TIMEOUT_MS);
}

/* Reads stdin up to CDT_REFINE_MAX_TEXT bytes. Returns NULL (with a message) on
 * error. */
static char *read_stdin(void)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);

    if (!buf)
        return NULL;
    for (;;) {
        size_t n;

        if (len + 1 == cap) {
            char *nb;

            cap *= 2;
            nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fprintf(stderr, "codictate refine: out of memory\n");
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - 1 - len, stdin);
        len += n;
        if (len > CDT_REFINE_MAX_TEXT) {
            fprintf(stderr, "codictate refine: input over %d bytes (CDT_REFINE_MAX_TEXT)\n",
                    CDT_REFINE_MAX_TEXT);
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "codictate refine: cannot read stdin\n");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    /* The newline `echo` and editors end a file with is not part of the transcript. */
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    if (memchr(buf, '\0', len) || !cdt_utf8_valid(buf, len)) {
        fprintf(stderr, "codictate refine: stdin is not UTF-8 text\n");
        free(buf);
        return NULL;
    }
    return buf;
}

static char *join_args(int argc, char **argv)
{
    size_t len = 1;
    char *s;

    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

void cdt_cli_refine_to_json(cJSON *o, const struct cdt_refine_result *r, const char *provider)
{
    cJSON *t;

    cJSON_DeleteItemFromObjectCaseSensitive(o, "refined");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "fallback_reason");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "reason_code");
    cJSON_AddStringToObject(o, "refined", r->refined);
    if (r->reason != CDT_REFINE_OK) {
        cJSON_AddStringToObject(o, "fallback_reason", r->fallback_reason);
        cJSON_AddStringToObject(o, "reason_code", cdt_refine_reason_name(r->reason));
    } else {
        cJSON_AddNullToObject(o, "fallback_reason");
        cJSON_AddNullToObject(o, "reason_code");
    }
    if (r->model)
        cJSON_AddStringToObject(o, "model", r->model);
    else
        cJSON_AddNullToObject(o, "model");
    cJSON_AddStringToObject(o, "provider", provider);
    t = cJSON_GetObjectItemCaseSensitive(o, "timings");
    if (!cJSON_IsObject(t))
        t = cJSON_AddObjectToObject(o, "timings");
    cJSON_AddNumberToObject(t, "deterministic_ms", r->timings.deterministic_ms);
    cJSON_AddNumberToObject(t, "llm_ms", r->timings.llm_ms);
    cJSON_AddNumberToObject(t, "refine_total_ms", r->timings.total_ms);
    cJSON_AddNumberToObject(t, "prompt_tokens", r->timings.prompt_tokens);
    cJSON_AddNumberToObject(t, "generated_tokens", r->timings.generated_tokens);
}

static int print_json(const struct cdt_refine_result *r, const char *provider)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    if (!o)
        return CDT_EXIT_FAIL;
    cJSON_AddStringToObject(o, "raw", r->raw);
    cdt_cli_refine_to_json(o, r, provider);
    cJSON_AddNumberToObject(cJSON_GetObjectItem(o, "timings"), "total_ms", r->timings.total_ms);
    text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return CDT_EXIT_FAIL;
    puts(text);
    free(text);
    return CDT_EXIT_OK;
}

/* Checks --model before anything runs: a missing file or an unknown id is a usage
 * error, not a fallback. */
static bool model_arg_ok(const char *model, const struct cdt_catalog *cat)
{
    const struct cdt_catalog_model *cm;

    if (cdt_catalog_is_path(model)) {
        if (access(model, R_OK) == 0)
            return true;
        fprintf(stderr, "codictate refine: --model %s: no such readable file\n", model);
        return false;
    }
    cm = cat ? cdt_catalog_find(cat, model) : NULL;
    if (!cm) {
        fprintf(stderr, "codictate refine: unknown model '%s' (see codictate models list)\n",
                model);
        return false;
    }
    if (cm->kind != CDT_MODEL_LLM) {
        fprintf(stderr, "codictate refine: '%s' is a %s model, not an LLM\n", model,
                cdt_model_kind_name(cm->kind));
        return false;
    }
    return true;
}

static void hint_no_model(const struct cdt_catalog *cat)
{
    uint64_t ram = 0;
    const struct cdt_catalog_model *rec;

    if (!cat)
        return;
    if (cdt_sysinfo_total_ram(&ram) != 0)
        ram = 0;
    rec = cdt_catalog_recommended(cat, cdt_limits_tier(cdt_limits_ram_gb(ram)));
    if (rec)
        fprintf(stderr, "codictate: to refine with an LLM: codictate models pull %s\n", rec->id);
}

int cdt_cmd_refine(struct cdt_cli *cli, int argc, char **argv)
{
    static const struct option lopts[] = {
        CDT_CLI_REFINE_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_cli_refine_opts o = {0};
    struct cdt_refine_result res;
    const char *provider = "local";
    char *text = NULL;
    int ch, rc;

    o.timeout_ms = CDT_REFINE_DEFAULT_TIMEOUT_MS;
    while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        int taken = cdt_cli_refine_opt(&o, ch, optarg, "codictate refine");

        if (taken < 0)
            return CDT_EXIT_USAGE;
        if (taken)
            continue;
        switch (ch) {
        case 'j':
            o.json = true;
            break;
        case 'h':
            refine_usage(stdout);
            return CDT_EXIT_OK;
        default:
            refine_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind < argc && !(optind + 1 == argc && strcmp(argv[optind], "-") == 0))
        text = join_args(argc - optind, argv + optind);
    else
        text = read_stdin();
    if (!text)
        return CDT_EXIT_FAIL;
    if (strlen(text) > CDT_REFINE_MAX_TEXT) {
        fprintf(stderr, "codictate refine: input over %d bytes (CDT_REFINE_MAX_TEXT)\n",
                CDT_REFINE_MAX_TEXT);
        free(text);
        return CDT_EXIT_FAIL;
    }
    rc = cdt_cli_refine_text(cli, &o, "codictate refine", text, &res, &provider);
    if (rc == CDT_EXIT_OK) {
        if (o.json)
            rc = print_json(&res, provider);
        else if (res.refined[0])
            puts(res.refined);
        cdt_refine_result_cleanup(&res);
    } else if (rc == CDT_EXIT_FAIL) {
        /* Only out of memory (the size was checked): still deliver the words. */
        fprintf(stderr, "codictate refine: printing the input unchanged\n");
        puts(text);
    }
    free(text);
    return rc;
}

struct cdt_cli_refiner {
    const char *who;
    struct cdt_catalog *cat;
    struct cdt_models *models;
    struct cdt_manager *own_manager; /* a GGUF path with no catalog */
    char *instructions;
    struct cdt_refine_params rp;
    bool openai;
};

void cdt_cli_refiner_free(struct cdt_cli_refiner *r)
{
    if (!r)
        return;
    cdt_manager_free(r->own_manager);
    cdt_models_free(r->models);
    cdt_catalog_free(r->cat);
    free(r->instructions);
    free(r);
}

int cdt_cli_refiner_new(struct cdt_cli *cli, const struct cdt_cli_refine_opts *opts,
                        const char *who, struct cdt_cli_refiner **out)
{
    struct cdt_cli_refine_opts o = *opts;
    struct cdt_cli_refiner *r;
    char err[1024];
    int rc = CDT_EXIT_OK;

    *out = NULL;
    if (o.timeout_ms <= 0)
        o.timeout_ms = CDT_REFINE_DEFAULT_TIMEOUT_MS;
    if (o.provider && strcmp(o.provider, "local") != 0 && strcmp(o.provider, "openai") != 0) {
        fprintf(stderr, "%s: --provider is local or openai\n", who);
        return CDT_EXIT_USAGE;
    }
    if (!(r = calloc(1, sizeof(*r)))) {
        fprintf(stderr, "%s: out of memory\n", who);
        return CDT_EXIT_FAIL;
    }
    r->who = who;
    r->openai = o.provider ? strcmp(o.provider, "openai") == 0 : o.base_url != NULL;
    if (!o.base_url)
        o.base_url = getenv("OPENAI_BASE_URL");
    if (!o.api_key)
        o.api_key = getenv("OPENAI_API_KEY");
    if (r->openai && (!o.base_url || !*o.base_url) && (!o.api_key || !*o.api_key)) {
        fprintf(stderr,
                "%s: --provider openai needs --base-url (a local "
                "endpoint) or an API key (--api-key or OPENAI_API_KEY)\n",
                who);
        rc = CDT_EXIT_USAGE;
        goto out;
    }
    if (r->openai && o.model) {
        fprintf(stderr,
                "%s: --model is for the local provider; use "
                "--openai-model NAME\n",
                who);
        rc = CDT_EXIT_USAGE;
        goto out;
    }
    if (cdt_prompt_resolve(o.prompt, NULL, &r->instructions, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: --prompt: %s\n", who, err[0] ? err : "out of memory");
        rc = CDT_EXIT_USAGE;
        goto out;
    }

    if (!r->openai) {
        if (cdt_catalog_load_default(&r->cat, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: warning: %s\n", who, err);
            r->cat = NULL;
        }
        if (o.model && !model_arg_ok(o.model, r->cat)) {
            rc = CDT_EXIT_USAGE;
            goto out;
        }
        if (r->cat) {
            struct cdt_models_params mp = cdt_models_default_params();

            mp.catalog = r->cat;
            mp.log = cli->log;
            mp.manager.log = cli->log;
            mp.manager.request_timeout_ms = o.timeout_ms + CDT_REFINE_HTTP_MARGIN_MS;
            if (cdt_models_new(&mp, &r->models) != 0) {
                fprintf(stderr, "%s: out of memory\n", who);
                rc = CDT_EXIT_FAIL;
                goto out;
            }
        }
    }

    r->rp = cdt_refine_default_params();
    r->rp.provider = r->openai ? CDT_REFINE_OPENAI : CDT_REFINE_LOCAL;
    r->rp.instructions = r->instructions;
    r->rp.timeout_ms = o.timeout_ms;
    r->rp.log = cli->log;
    r->rp.models = r->models;
    r->rp.catalog = r->cat;
    r->rp.model = o.model;
    r->rp.base_url = o.base_url;
    r->rp.api_key = o.api_key;
    r->rp.openai_model = o.openai_model;
    if (!r->openai && o.model && !r->models) {
        /* A GGUF path with no catalog: a manager of our own. */
        struct cdt_manager_params mgp = cdt_manager_default_params();

        mgp.log = cli->log;
        mgp.request_timeout_ms = o.timeout_ms + CDT_REFINE_HTTP_MARGIN_MS;
        if (cdt_manager_new(&mgp, &r->own_manager) == 0)
            r->rp.manager = r->own_manager;
    }
out:
    if (rc != CDT_EXIT_OK)
        cdt_cli_refiner_free(r);
    else
        *out = r;
    return rc;
}

int cdt_cli_refiner_preload(struct cdt_cli_refiner *r, char *errmsg, size_t errcap)
{
    return cdt_refine_preload(&r->rp, errmsg, errcap);
}

const char *cdt_cli_refiner_provider(const struct cdt_cli_refiner *r)
{
    return r->openai ? "openai" : "local";
}

int cdt_cli_refiner_run(struct cdt_cli_refiner *r, const char *text, struct cdt_refine_result *res)
{
    memset(res, 0, sizeof(*res));
    if (cdt_refine_run(&r->rp, text, res) != 0) {
        fprintf(stderr, "%s: out of memory while refining\n", r->who);
        return CDT_EXIT_FAIL;
    }
    if (res->reason != CDT_REFINE_OK && res->reason != CDT_REFINE_EMPTY_INPUT) {
        fprintf(stderr, "%s: delivering the deterministic cleanup: %s\n", r->who,
                res->fallback_reason);
        if (res->reason == CDT_REFINE_NO_MODEL)
            hint_no_model(r->cat);
    }
    return CDT_EXIT_OK;
}

int cdt_cli_refine_opt(struct cdt_cli_refine_opts *o, int ch, const char *arg, const char *who)
{
    switch (ch) {
    case CDT_CLI_OPT_MODEL:
        o->model = arg;
        return 1;
    case CDT_CLI_OPT_PROVIDER:
        o->provider = arg;
        return 1;
    case CDT_CLI_OPT_BASE_URL:
        o->base_url = arg;
        return 1;
    case CDT_CLI_OPT_API_KEY:
        o->api_key = arg;
        return 1;
    case CDT_CLI_OPT_OPENAI_MODEL:
        o->openai_model = arg;
        return 1;
    case CDT_CLI_OPT_PROMPT:
        o->prompt = arg;
        return 1;
    case CDT_CLI_OPT_TIMEOUT:
        if (!cdt_arg_int(arg, 1, 24L * 3600 * 1000, &o->timeout_ms)) {
            fprintf(stderr, "%s: --timeout-ms needs milliseconds (1..86400000)\n", who);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

int cdt_cli_refine_text(struct cdt_cli *cli, const struct cdt_cli_refine_opts *opts,
                        const char *who, const char *text, struct cdt_refine_result *res,
                        const char **provider)
{
    struct cdt_cli_refiner *r;
    int rc;

    memset(res, 0, sizeof(*res));
    rc = cdt_cli_refiner_new(cli, opts, who, &r);
    if (rc != CDT_EXIT_OK)
        return rc;
    *provider = cdt_cli_refiner_provider(r);
    rc = cdt_cli_refiner_run(r, text, res);
    cdt_cli_refiner_free(r);
    return rc;
}
