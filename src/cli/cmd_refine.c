/* `codictate refine [TEXT|-]`: the refinement pipeline from the command line.
 * The text comes from the arguments (joined by spaces) or stdin; the refined text
 * goes to stdout (or a JSON object with --json). When the model cannot be used the
 * deterministic cleanup is delivered, the reason goes to stderr, and the exit
 * status is still 0: the user's words are never lost. */
#include "args.h"
#include "cli.h"
#include "codictate/appclient.h"
#include "codictate/json.h"
#include "codictate/log.h"
#include "codictate/refine.h"
#include "codictate/refiner.h"
#include "codictate/text.h"
#include "codictate/transcribe.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
            "  --vocabulary WORDS   words and names the speaker uses (\"Kubernetes, Anya\n"
            "                       Petrova\"): the LLM is told to spell them so (nothing\n"
            "                       is replaced without it); at most 300 bytes\n"
            "  --json               print {\"raw\",\"refined\",\"fallback_reason\",\n"
            "                       \"reason_code\",\"model\",\"provider\",\"timings\"}\n"
            "  -h, --help           this help\n"
            "\n"
            "exit status: 0 text delivered (also on fallback), 1 failure (unreadable input),\n"
            "2 usage error\n",
            CDT_REFINE_DEFAULT_TIMEOUT_MS);
}

/* Whether the transcript is text: no NUL byte (binary data), valid UTF-8. Says why
 * not (`what`: "stdin" or "the argument"). The same rule for both ways in. */
static bool text_ok(const char *s, size_t len, const char *what)
{
    if (memchr(s, '\0', len)) {
        fprintf(stderr, "codictate refine: %s holds a NUL byte (binary data, not text)\n", what);
        return false;
    }
    if (!cdt_utf8_valid(s, len)) {
        fprintf(stderr, "codictate refine: %s is not UTF-8 text\n", what);
        return false;
    }
    return true;
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
            fprintf(stderr, "codictate refine: the text is over %d bytes, the most refine takes\n",
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
    if (!text_ok(buf, len, "stdin")) {
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

static int print_json(const struct cdt_refine_result *r, const char *provider)
{
    return cdt_cli_print_json(cdt_json_refine(r, provider));
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
    struct cdt_cli_live live;
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
        fprintf(stderr, "codictate refine: the text is over %d bytes, the most refine takes\n",
                CDT_REFINE_MAX_TEXT);
        free(text);
        return CDT_EXIT_FAIL;
    }
    if (!text_ok(text, strlen(text), "the argument")) {
        free(text);
        return CDT_EXIT_FAIL;
    }
    /* On a terminal the model's text shows as it comes. */
    cdt_cli_live_init(&live, !o.json && isatty(STDOUT_FILENO));
    o.live = &live;
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
    struct cdt_refiner *r;
    struct cdt_cli_live *live; /* borrowed; NULL: no live text */
};

void cdt_cli_refiner_free(struct cdt_cli_refiner *r)
{
    if (!r)
        return;
    cdt_refiner_free(r->r);
    free(r);
}

int cdt_cli_refiner_new(struct cdt_cli *cli, const struct cdt_cli_refine_opts *opts,
                        const char *who, struct cdt_cli_refiner **out)
{
    struct cdt_refiner_opts o = {0};
    struct cdt_cli_refiner *r;
    char err[1024];
    int rc;

    *out = NULL;
    if (!(r = calloc(1, sizeof(*r)))) {
        fprintf(stderr, "%s: out of memory\n", who);
        return CDT_EXIT_FAIL;
    }
    r->who = who;
    r->live = opts->live;
    o.model = opts->model;
    o.provider = opts->provider;
    o.base_url = opts->base_url;
    o.api_key = opts->api_key;
    o.openai_model = opts->openai_model;
    o.prompt = opts->prompt;
    o.vocabulary = opts->vocabulary;
    o.timeout_ms = opts->timeout_ms;
    o.log = cli->log;
    /* The running app has the model warm: use it unless another provider is asked for. */
    if (!opts->no_app && !o.provider && !o.base_url && !o.api_key && !o.openai_model)
        o.app_port = cdt_appclient_find();
    rc = cdt_refiner_new(&o, &r->r, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", who, rc == CDT_EINVAL ? err : "out of memory");
        free(r);
        return rc == CDT_EINVAL ? CDT_EXIT_USAGE : CDT_EXIT_FAIL;
    }
    *out = r;
    return CDT_EXIT_OK;
}

int cdt_cli_refiner_preload(struct cdt_cli_refiner *r, char *errmsg, size_t errcap)
{
    return cdt_refiner_preload(r->r, errmsg, errcap);
}

struct cdt_refiner *cdt_cli_refiner_lib(struct cdt_cli_refiner *r)
{
    return r->r;
}

const char *cdt_cli_refiner_suggested(const struct cdt_cli_refiner *r)
{
    return cdt_refiner_suggested_model(r->r);
}

const char *cdt_cli_refiner_provider(const struct cdt_cli_refiner *r)
{
    return cdt_refiner_provider(r->r);
}

int cdt_cli_refiner_run(struct cdt_cli_refiner *r, const char *text, struct cdt_refine_result *res)
{
    int rc = r->live && r->live->on
                 ? cdt_refiner_run_stream(r->r, text, cdt_cli_live_piece, r->live, res)
                 : cdt_refiner_run(r->r, text, res);

    /* The live text goes before the report on stderr: the caller prints the result. */
    if (r->live)
        cdt_cli_live_finish(r->live, NULL);
    if (rc != 0) {
        fprintf(stderr, "%s: out of memory while refining\n", r->who);
        return CDT_EXIT_FAIL;
    }
    cdt_cli_refine_report(r->who, res, cdt_refiner_suggested_model(r->r));
    return CDT_EXIT_OK;
}

void cdt_cli_refine_report(const char *who, const struct cdt_refine_result *res,
                           const char *suggested)
{
    if (res->reason != CDT_REFINE_OK && res->reason != CDT_REFINE_EMPTY_INPUT) {
        fprintf(stderr, "%s: delivering the deterministic cleanup: %s\n", who,
                res->fallback_reason);
        if (res->reason == CDT_REFINE_NO_MODEL && suggested)
            fprintf(stderr, "codictate: to refine with an LLM: codictate models pull %s\n",
                    suggested);
    }
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
    case CDT_CLI_OPT_API_KEY: {
        size_t n = strlen(arg);

        if (n >= sizeof(o->api_key_buf)) {
            fprintf(stderr, "%s: --api-key is longer than %d bytes\n", who,
                    CDT_CLI_API_KEY_MAX - 1);
            return -1;
        }
        memcpy(o->api_key_buf, arg, n + 1);
        o->api_key = o->api_key_buf;
        o->api_key_arg = arg;
        /* argv is ours to write (C11 5.1.2.2.1): `ps` shows it to every user. */
        memset((char *)arg, 'x', n);
        return 1;
    }
    case CDT_CLI_OPT_OPENAI_MODEL:
        o->openai_model = arg;
        return 1;
    case CDT_CLI_OPT_PROMPT:
        o->prompt = arg;
        return 1;
    case CDT_CLI_OPT_TIMEOUT:
        if (!cdt_arg_int(arg, 1, CDT_REFINE_MAX_TIMEOUT_MS, &o->timeout_ms)) {
            fprintf(stderr, "%s: --timeout-ms needs milliseconds (1..%ld)\n", who,
                    CDT_REFINE_MAX_TIMEOUT_MS);
            return -1;
        }
        return 1;
    case CDT_CLI_OPT_VOCABULARY:
        if (!cdt_transcribe_vocabulary_valid(arg)) {
            fprintf(stderr,
                    "%s: --vocabulary: at most %d bytes of UTF-8 without control characters\n", who,
                    CDT_TRANSCRIBE_MAX_VOCABULARY);
            return -1;
        }
        o->vocabulary = arg;
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
