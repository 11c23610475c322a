/* `codictate models`: list, recommend, pull, rm, info, verify — the catalog and
 * the models on this machine, through the models module. */
#include "args.h"
#include "cli.h"
#include "codictate/catalog.h"
#include "codictate/limits.h"
#include "codictate/models.h"
#include "codictate/sysinfo.h"
#include "codictate/util.h"

#include "codictate/json.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void models_usage(FILE *out)
{
    fprintf(out, "usage: codictate models <command> [options]\n"
                 "\n"
                 "  list [--json]        the catalog with each model's size, RAM and state;\n"
                 "                       '*' marks the one recommended for this machine;\n"
                 "                       'damaged': a downloaded file was cut short or changed\n"
                 "                       (pull repairs it)\n"
                 "  recommend [--json]   the model recommended for this machine's RAM\n"
                 "  pull ID              download a model (resumable; Ctrl-C keeps the partial)\n"
                 "  rm ID                delete a model's files (refused while in use)\n"
                 "  info ID [--json]     everything about one model\n"
                 "  verify ID            check the files' sha256 against the catalog\n"
                 "                       (a mismatch: damaged; pull repairs it)\n"
                 "\n"
                 "ID is a catalog id or alias (e.g. qwen3_base_1.7b). Files go to the Hugging\n"
                 "Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, default\n"
                 "~/.cache/huggingface/hub); HF_ENDPOINT, HF_TOKEN and CODICTATE_CATALOG are\n"
                 "honoured.\n");
}

struct ctx {
    struct cdt_cli *cli;
    struct cdt_catalog *cat;
    struct cdt_models *models;
    bool json;
    bool tty;
    double last_line_s; /* when the last progress line was printed, cdt_now_ms() / 1e3 */
    int last_pct;
};

static const struct cdt_catalog_model *recommended(const struct cdt_catalog *cat,
                                                   struct cdt_tier_limits *t)
{
    uint64_t ram = 0;

    if (cdt_sysinfo_total_ram(&ram) != 0)
        ram = 0;
    *t = cdt_limits_for_ram_gb(cdt_limits_ram_gb(ram));
    return cdt_catalog_recommended(cat, t->tier);
}

static const char *size_str(uint64_t bytes, char *buf, size_t cap)
{
    return cdt_human_bytes(bytes, buf, cap);
}

static cJSON *model_json(struct ctx *c, const struct cdt_catalog_model *cm, bool rec)
{
    return cdt_json_model(c->models, cm, rec);
}

static int print_json(cJSON *o)
{
    char *text = cJSON_Print(o);

    cJSON_Delete(o);
    if (!text)
        return CDT_EXIT_FAIL;
    puts(text);
    free(text);
    return CDT_EXIT_OK;
}

static int cmd_list(struct ctx *c)
{
    struct cdt_tier_limits t;
    const struct cdt_catalog_model *rec = recommended(c->cat, &t);
    size_t n = cdt_catalog_count(c->cat);
    char sz[32];

    if (c->json) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            const struct cdt_catalog_model *cm = cdt_catalog_model_at(c->cat, i);
            cJSON_AddItemToArray(a, model_json(c, cm, cm == rec));
        }
        return print_json(a);
    }
    printf("  %-28s %-30s %9s %8s  %s\n", "ID", "NAME", "SIZE", "RAM", "STATE");
    for (size_t i = 0; i < n; i++) {
        const struct cdt_catalog_model *cm = cdt_catalog_model_at(c->cat, i);
        char ram[32], detail[512];
        enum cdt_model_state st = cdt_models_state(c->models, cm->id, detail, sizeof(detail));

        if (cm->ram_mb >= 1024)
            snprintf(ram, sizeof(ram), "%.1f GB", cm->ram_mb / 1024.0);
        else if (cm->ram_mb)
            snprintf(ram, sizeof(ram), "%u MB", cm->ram_mb);
        else
            snprintf(ram, sizeof(ram), "-");
        printf("%c %-28s %-30.30s %9s %8s  %s%s%s\n", cm == rec ? '*' : ' ', cm->id, cm->name,
               size_str(cdt_catalog_model_size(cm), sz, sizeof(sz)), ram, cdt_model_state_name(st),
               detail[0] ? " - " : "", detail);
    }
    if (rec)
        printf("\n* recommended for this machine (%s RAM tier)\n", t.label);
    return CDT_EXIT_OK;
}

static int cmd_recommend(struct ctx *c)
{
    struct cdt_tier_limits t;
    const struct cdt_catalog_model *rec = recommended(c->cat, &t);

    if (!rec) {
        fprintf(stderr, "codictate models: the catalog recommends no model for tier %s\n", t.name);
        return CDT_EXIT_FAIL;
    }
    if (c->json) {
        cJSON *o = model_json(c, rec, true);
        cJSON_AddStringToObject(o, "ram_tier", t.name);
        return print_json(o);
    }
    printf("%s (%s): recommended for machines with %s of RAM\n", rec->id, rec->name, t.label);
    printf("pull it with: codictate models pull %s\n", rec->id);
    return CDT_EXIT_OK;
}

static int cmd_info(struct ctx *c, const struct cdt_catalog_model *cm)
{
    struct cdt_tier_limits t;
    const struct cdt_catalog_model *rec = recommended(c->cat, &t);
    cJSON *o = model_json(c, cm, cm == rec), *files = cJSON_AddArrayToObject(o, "files");

    for (size_t i = 0; i < cm->n_files; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", cm->files[i].name);
        cJSON_AddNumberToObject(f, "size", (double)cm->files[i].size);
        cJSON_AddStringToObject(f, "sha256", cm->files[i].sha256);
        cJSON_AddItemToArray(files, f);
    }
    cJSON_AddStringToObject(o, "repo", cm->sources[0].repo);
    cJSON_AddStringToObject(o, "revision", cm->sources[0].revision);
    if (c->json)
        return print_json(o);
    {
        char sz[32];
        cJSON *st = cJSON_GetObjectItem(o, "state"), *path = cJSON_GetObjectItem(o, "path");
        cJSON *detail = cJSON_GetObjectItem(o, "detail");

        printf("id         %s%s\n", cm->id, cm == rec ? " (recommended for this machine)" : "");
        for (size_t i = 0; i < cm->n_aliases; i++)
            printf("alias      %s\n", cm->aliases[i]);
        printf("name       %s\n", cm->name);
        printf("kind       %s\n", cdt_model_kind_name(cm->kind));
        printf("best for   %s\n", cm->best_for);
        printf("size       %s\n", size_str(cdt_catalog_model_size(cm), sz, sizeof(sz)));
        if (cm->ram_mb)
            printf("ram        ~%u MB\n", cm->ram_mb);
        if (cm->sources[0].type == CDT_SOURCE_BUILTIN)
            printf("source     built into codictate (never downloaded)\n");
        else
            printf("source     %s @ %s\n", cm->sources[0].repo, cm->sources[0].revision);
        for (size_t i = 0; i < cm->n_files; i++)
            printf("file       %s (%llu bytes, sha256 %s)\n", cm->files[i].name,
                   (unsigned long long)cm->files[i].size,
                   cm->files[i].sha256[0] ? cm->files[i].sha256 : "unknown");
        if (cm->license_url[0])
            printf("license    %s %s%s\n", cm->license, cm->license_url,
                   cm->gated_terms ? " (accept before downloading)" : "");
        printf("state      %s%s%s\n", st->valuestring, detail ? " - " : "",
               detail ? detail->valuestring : "");
        if (cJSON_IsString(path))
            printf("path       %s\n", path->valuestring);
        cJSON_Delete(o);
    }
    return CDT_EXIT_OK;
}

static void on_event(const struct cdt_models_event *ev, void *ud)
{
    struct ctx *c = ud;
    char done[32], total[32], speed[32];
    double pct;

    if (!ev->progress || c->json)
        return;
    pct = ev->model_bytes_total
              ? 100.0 * (double)ev->model_bytes_done / (double)ev->model_bytes_total
              : 0;
    size_str(ev->model_bytes_done, done, sizeof(done));
    size_str(ev->model_bytes_total, total, sizeof(total));
    size_str((uint64_t)ev->progress->speed, speed, sizeof(speed));
    if (c->tty) {
        int filled = (int)(pct / 5);
        char bar[21];
        long eta = ev->progress->eta_s >= 0 ? (long)ev->progress->eta_s : -1;

        for (int i = 0; i < 20; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "\r[%s] %5.1f%%  %s / %s  %s/s  ETA %s%ld:%02ld  %s\033[K", bar, pct, done,
                total, speed, eta < 0 ? "?" : "", eta < 0 ? 0 : eta / 60, eta < 0 ? 0 : eta % 60,
                ev->progress->file);
    } else if ((int)pct / 10 != c->last_pct / 10 || cdt_now_ms() / 1e3 - c->last_line_s > 5) {
        c->last_pct = (int)pct;
        c->last_line_s = cdt_now_ms() / 1e3;
        fprintf(stderr, "%5.1f%%  %s / %s  %s/s  %s\n", pct, done, total, speed,
                ev->progress->file);
    }
}

struct pull_job {
    struct ctx *c;
    const char *id;
    int rc;
    char err[1024];
    atomic_bool done; /* rc and err are set before it */
};

static void *pull_main(void *arg)
{
    struct pull_job *j = arg;

    j->rc = cdt_models_pull(j->c->models, j->id, j->err, sizeof(j->err));
    atomic_store(&j->done, true);
    kill(getpid(), SIGUSR1); /* wake the waiting main thread */
    return NULL;
}

static int cmd_pull(struct ctx *c, const struct cdt_catalog_model *cm)
{
    struct pull_job j = {.c = c, .id = cm->id};
    sigset_t set;
    pthread_t t;
    bool cancelled = false;
    char sz[32];

    if (cm->gated_terms && cm->license_url[0])
        fprintf(stderr, "%s is under %s (%s): by downloading you accept its terms.\n", cm->id,
                cm->license, cm->license_url);
    if (cdt_models_state(c->models, cm->id, NULL, 0) == CDT_MODEL_DAMAGED)
        fprintf(stderr, "%s is damaged on disk: its damaged file is deleted and downloaded again\n",
                cm->id);
    fprintf(stderr, "pulling %s (%s, %s)\n", cm->id, cm->name,
            size_str(cdt_catalog_model_size(cm), sz, sizeof(sz)));
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pthread_create(&t, NULL, pull_main, &j) != 0)
        return CDT_EXIT_FAIL;
    while (!atomic_load(&j.done)) {
        int sig = 0;

        if (sigwait(&set, &sig) == 0 && (sig == SIGINT || sig == SIGTERM) && !cancelled) {
            cancelled = true;
            cdt_models_cancel(c->models, cm->id);
        }
    }
    pthread_join(t, NULL);
    if (c->tty)
        fprintf(stderr, "\n");
    if (j.rc == CDT_ECANCELED) {
        fprintf(stderr,
                "cancelled; the partial download is kept: run the same command to "
                "resume, or `codictate models rm %s` to delete it\n",
                cm->id);
        return CDT_EXIT_FAIL;
    }
    if (j.rc != 0) {
        fprintf(stderr, "codictate models pull: %s\n", j.err[0] ? j.err : cdt_strerror(j.rc));
        return CDT_EXIT_FAIL;
    }
    {
        char path[4096];
        if (cdt_models_path(c->models, cm->id, path, sizeof(path)) == 0)
            printf("%s\n", path);
    }
    fprintf(stderr, "%s is ready\n", cm->id);
    return CDT_EXIT_OK;
}

int cdt_cmd_models(struct cdt_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cdt_models_params mp = cdt_models_default_params();
    struct ctx c;
    const struct cdt_catalog_model *cm = NULL;
    const char *sub, *id = NULL;
    char err[1024];
    int ch, rc;

    memset(&c, 0, sizeof(c));
    c.cli = cli;
    c.tty = isatty(2);
    c.last_pct = -10;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            c.json = true;
            break;
        case 'h':
            models_usage(stdout);
            return CDT_EXIT_OK;
        default:
            models_usage(stderr);
            return CDT_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        models_usage(stderr);
        return CDT_EXIT_USAGE;
    }
    sub = argv[optind++];
    if (strcmp(sub, "pull") == 0 || strcmp(sub, "rm") == 0 || strcmp(sub, "info") == 0 ||
        strcmp(sub, "verify") == 0) {
        if (optind >= argc) {
            fprintf(stderr, "codictate models %s: which model? (codictate models list)\n", sub);
            return CDT_EXIT_USAGE;
        }
        id = argv[optind++];
    } else if (strcmp(sub, "list") != 0 && strcmp(sub, "recommend") != 0) {
        fprintf(stderr, "codictate models: unknown command '%s'\n", sub);
        models_usage(stderr);
        return CDT_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "codictate models %s: unexpected argument '%s'\n", sub, argv[optind]);
        return CDT_EXIT_USAGE;
    }
    rc = cdt_catalog_load_default(&c.cat, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "codictate models: %s\n", err);
        return CDT_EXIT_FAIL;
    }
    if (id && !(cm = cdt_catalog_find(c.cat, id))) {
        fprintf(stderr, "codictate models: unknown model '%s' (see codictate models list)\n", id);
        cdt_catalog_free(c.cat);
        return CDT_EXIT_FAIL;
    }
    mp.catalog = c.cat;
    mp.log = cli->log;
    mp.on_event = on_event;
    mp.user_data = &c;
    rc = cdt_models_new(&mp, &c.models);
    if (rc != 0) {
        fprintf(stderr, "codictate models: %s\n", cdt_strerror(rc));
        cdt_catalog_free(c.cat);
        return CDT_EXIT_FAIL;
    }
    if (strcmp(sub, "list") == 0) {
        rc = cmd_list(&c);
    } else if (strcmp(sub, "recommend") == 0) {
        rc = cmd_recommend(&c);
    } else if (strcmp(sub, "info") == 0) {
        rc = cmd_info(&c, cm);
    } else if (strcmp(sub, "pull") == 0) {
        rc = cmd_pull(&c, cm);
    } else if (strcmp(sub, "rm") == 0) {
        uint64_t had = cdt_models_bytes_held(c.models, cm->id);
        char sz[32];
        if (cdt_models_delete(c.models, cm->id, err, sizeof(err)) != 0) {
            fprintf(stderr, "codictate models rm: %s\n", err);
            rc = CDT_EXIT_FAIL;
        } else {
            fprintf(stderr, "removed %s (%s freed)\n", cm->id, size_str(had, sz, sizeof(sz)));
            rc = CDT_EXIT_OK;
        }
    } else {
        if (cdt_models_verify(c.models, cm->id, err, sizeof(err)) != 0) {
            fprintf(stderr, "codictate models verify: %s\n", err);
            rc = CDT_EXIT_FAIL;
        } else {
            printf("%s: all files match the catalog\n", cm->id);
            rc = CDT_EXIT_OK;
        }
    }
    cdt_models_free(c.models);
    cdt_catalog_free(c.cat);
    return rc;
}
