/* `codictate transcribe FILE`: an audio file to text with whisper.cpp, skipping
 * silence with Silero VAD when its model is at hand. Models are catalog ids or
 * aliases (they must be downloaded: `codictate models pull`) or file paths.
 * Prints the transcript, or with --json the object the dictation pipeline shares
 * (raw, refined, fallback_reason, segments, language, timings). */
#include "args.h"
#include "cli.h"
#include "codictate/catalog.h"
#include "codictate/models.h"
#include "codictate/pick.h"
#include "codictate/refine.h"
#include "codictate/transcribe.h"

#include "codictate/json.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void transcribe_usage(FILE *out)
{
    fprintf(out,
            "usage: codictate transcribe FILE [options]\n"
            "\n"
            "Transcribes an audio file (WAV, FLAC, OGG, Opus, MP3) with whisper.cpp.\n"
            "\n"
            "  --json                   print JSON: raw, refined, fallback_reason, segments\n"
            "                           (start, end in seconds, text), language, timings\n"
            "  --language L             language code (en, de, fr, ...) or auto (default);\n"
            "                           English-only models always use en\n"
            "  --vocabulary WORDS       words and names the speaker uses (\"Kubernetes, Anya\n"
            "                           Petrova\"), given to whisper as its prompt; at most\n"
            "                           300 bytes\n"
            "  --whisper-model ID|PATH  catalog id or alias (downloaded) or a ggml .bin file;\n"
            "                           default: the first downloaded whisper model\n"
            "  --threads N              CPU threads (default: available CPUs, at most 8)\n"
            "  --no-vad                 transcribe everything; do not skip silence\n"
            "  --vad-model ID|PATH      Silero VAD model (default: the catalog's, when\n"
            "                           downloaded; else VAD is off)\n"
            "  --fit-window             encode a file under 27 s on a window fitted to its\n"
            "                           length, not whisper's full 30 s: several times faster\n"
            "                           for short files, maybe less accurate\n"
            "  --refine                 then clean the transcript up as `codictate refine`\n"
            "                           does, with its options: --model ID|PATH,\n"
            "                           --provider local|openai, --base-url URL, --api-key KEY,\n"
            "                           --openai-model NAME, --prompt NAME|@FILE, --timeout-ms N\n"
            "\n"
            "exit status: 0 ok, 1 failure (bad file, missing model), 2 usage error\n");
}

struct tctx {
    bool progress_shown;
};

static void on_progress(int percent, void *user_data)
{
    struct tctx *c = user_data;

    fprintf(stderr, "\rtranscribing... %3d%%", percent);
    c->progress_shown = true;
}

int cdt_cli_print_json(cJSON *root)
{
    char *text = root ? cJSON_Print(root) : NULL;

    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "codictate: out of memory\n");
        return CDT_EXIT_FAIL;
    }
    puts(text);
    free(text);
    return CDT_EXIT_OK;
}

static int print_json(const struct cdt_transcript *tr, const char *model, const char *vad_model,
                      const struct cdt_refine_result *refined, const char *provider)
{
    cJSON *root = cdt_json_transcript(tr, model, vad_model);

    if (root && refined)
        cdt_json_add_refine(root, refined, provider);
    return cdt_cli_print_json(root);
}

int cdt_cmd_transcribe(struct cdt_cli *cli, int argc, char **argv)
{
    enum {
        OPT_LANG = 256,
        OPT_MODEL,
        OPT_THREADS,
        OPT_NO_VAD,
        OPT_VAD_MODEL,
        OPT_REFINE,
        OPT_FIT_WINDOW,
        OPT_VOCABULARY
    };
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"language", required_argument, NULL, OPT_LANG},
        {"vocabulary", required_argument, NULL, OPT_VOCABULARY},
        {"whisper-model", required_argument, NULL, OPT_MODEL},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"no-vad", no_argument, NULL, OPT_NO_VAD},
        {"fit-window", no_argument, NULL, OPT_FIT_WINDOW},
        {"vad-model", required_argument, NULL, OPT_VAD_MODEL},
        {"refine", no_argument, NULL, OPT_REFINE},
        CDT_CLI_REFINE_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_transcribe_params tp = cdt_transcribe_default_params();
    struct cdt_transcribe *t = NULL;
    struct cdt_transcript tr;
    struct tctx c;
    const char *file, *model_arg = NULL, *vad_arg = NULL, *language = NULL, *vocabulary = NULL;
    struct cdt_pick_whisper wp;
    char err[2048];
    bool json = false, no_vad = false, refine = false, fit_window = false;
    struct cdt_cli_refine_opts ro = {0};
    long threads = 0;
    int ch, rc;

    memset(&c, 0, sizeof(c));
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int taken = cdt_cli_refine_opt(&ro, ch, optarg, "codictate transcribe");

        if (taken < 0)
            return CDT_EXIT_USAGE;
        if (taken)
            continue;
        switch (ch) {
        case 'j':
            json = true;
            break;
        case OPT_LANG:
            language = optarg;
            break;
        case OPT_VOCABULARY:
            vocabulary = optarg;
            break;
        case OPT_MODEL:
            model_arg = optarg;
            break;
        case OPT_THREADS:
            if (!cdt_arg_int(optarg, 1, CDT_TRANSCRIBE_MAX_THREADS, &threads)) {
                fprintf(stderr, "codictate transcribe: --threads must be 1..%d, not '%s'\n",
                        CDT_TRANSCRIBE_MAX_THREADS, optarg);
                return CDT_EXIT_USAGE;
            }
            break;
        case OPT_NO_VAD:
            no_vad = true;
            break;
        case OPT_FIT_WINDOW:
            fit_window = true;
            break;
        case OPT_VAD_MODEL:
            vad_arg = optarg;
            break;
        case OPT_REFINE:
            refine = true;
            break;
        case 'h':
            transcribe_usage(stdout);
            return CDT_EXIT_OK;
        default:
            transcribe_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "codictate transcribe: which audio file?\n");
        transcribe_usage(stderr);
        return CDT_EXIT_USAGE;
    }
    file = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "codictate transcribe: unexpected argument '%s'\n", argv[optind]);
        return CDT_EXIT_USAGE;
    }
    if (no_vad && vad_arg) {
        fprintf(stderr, "codictate transcribe: --no-vad and --vad-model contradict each other\n");
        return CDT_EXIT_USAGE;
    }
    if (!refine && (ro.model || ro.provider || ro.base_url || ro.api_key || ro.openai_model ||
                    ro.prompt || ro.timeout_ms)) {
        fprintf(stderr, "codictate transcribe: LLM options need --refine\n");
        return CDT_EXIT_USAGE;
    }

    rc = cdt_cli_whisper_pick(cli, "codictate transcribe", model_arg, vad_arg, no_vad, &wp);
    if (rc != CDT_EXIT_OK)
        goto out;
    tp.vad = wp.vad;
    tp.model_path = wp.model;
    tp.vad_model_path = tp.vad ? wp.vad_model : NULL;
    tp.language = language;
    tp.vocabulary = vocabulary;
    tp.n_threads = (int)threads;
    tp.fit_window = fit_window;
    tp.log = cli->log;
    if (isatty(2)) {
        tp.progress = on_progress;
        tp.user_data = &c;
    }
    rc = cdt_transcribe_new(&tp, &t, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "codictate transcribe: %s\n", err);
        rc = rc == CDT_EINVAL ? CDT_EXIT_USAGE : CDT_EXIT_FAIL;
        goto out;
    }

    cdt_transcript_init(&tr);
    rc = cdt_transcribe_file(t, file, &tr);
    if (c.progress_shown)
        fprintf(stderr, "\r\033[K");
    if (rc != 0) {
        fprintf(stderr, "codictate transcribe: %s\n", cdt_transcribe_errmsg(t));
        rc = CDT_EXIT_FAIL;
    } else {
        struct cdt_refine_result res;
        const char *provider = "local";
        bool have_res = false;

        rc = CDT_EXIT_OK;
        if (refine) {
            rc = cdt_cli_refine_text(cli, &ro, "codictate transcribe", tr.text, &res, &provider);
            have_res = rc == CDT_EXIT_OK;
            if (rc == CDT_EXIT_FAIL) /* out of memory: still deliver the words */
                rc = CDT_EXIT_OK;
        }
        if (rc != CDT_EXIT_OK) {
            /* a usage error in the LLM options, already explained */
        } else if (json) {
            rc = print_json(&tr, wp.model, tp.vad_model_path, have_res ? &res : NULL, provider);
        } else {
            const char *out_text = have_res ? res.refined : tr.text;

            if (out_text[0])
                printf("%s\n", out_text);
            else
                fprintf(stderr, "note: no speech found in %s\n", file);
        }
        if (have_res)
            cdt_refine_result_cleanup(&res);
    }
    cdt_transcript_cleanup(&tr);

out:
    cdt_transcribe_free(t);
    return rc;
}
