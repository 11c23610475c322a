/* Dictation history (src/lib/history.c): appends, superseding lines, order,
 * corrupt and truncated lines, unique ids, pruning of recordings, clear,
 * permissions, and a data dir that is not a directory. */
#include "../test.h"
#include "codictate/history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[] = "/tmp/cdt-history-XXXXXX";
static int dir_seq;

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A fresh data dir under root for one test. */
static void fresh_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s/d%d", root, ++dir_seq);
}

static struct cdt_history *open_at(const char *dir)
{
    struct cdt_history_params p = cdt_history_default_params();
    struct cdt_history *h = NULL;
    char err[512];

    p.dir = dir;
    p.errmsg = err;
    p.errcap = sizeof(err);
    if (cdt_history_new(&p, &h) != 0)
        fprintf(stderr, "cdt_history_new(%s): %s\n", dir, err);
    return h;
}

static void write_file(const char *path, const char *data, size_t len, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void history_file(const struct cdt_history *h, char *out, size_t cap)
{
    snprintf(out, cap, "%s/history.jsonl", cdt_history_dir(h));
}

static int append_simple(struct cdt_history *h, const char *id, int64_t t, const char *status,
                         const char *refined)
{
    struct cdt_history_entry e = {0};

    snprintf(e.id, sizeof(e.id), "%.39s", id);
    e.time_ms = t;
    e.status = (char *)status;
    e.refined = (char *)refined;
    return cdt_history_append(h, &e);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(test_empty_and_roundtrip)
{
    char dir[256], wav[512];
    struct cdt_history *h;
    struct cdt_history_entry e = {0}, *v = NULL;
    size_t n = 99, skipped = 99;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    CHECK_STR(cdt_history_dir(h), dir);
    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    CHECK_INT(n, 0);
    CHECK_INT(skipped, 0);
    CHECK(v == NULL);

    CHECK_INT(cdt_history_new_id(h, &e, wav, sizeof(wav)), 0);
    CHECK(strlen(e.id) >= 20);
    CHECK(e.time_ms > 1700000000000LL);
    {
        char want[512];

        snprintf(want, sizeof(want), "%s/recordings/%s.wav", dir, e.id);
        CHECK_STR(wav, want);
    }
    e.status = xstrdup("done");
    e.source = xstrdup("microphone");
    e.audio_path = xstrdup(wav);
    e.audio_seconds = 12.5;
    e.raw = xstrdup("um so I I think comma we should ship it \"quoted\"\nnew line ü");
    e.refined = xstrdup("So I think, we should ship it \"quoted\"\nnew line ü");
    e.fallback_reason = xstrdup("output too long");
    e.reason_code = xstrdup("guard_length");
    e.model = xstrdup("qwen3_base_1.7b_v1");
    e.whisper_model = xstrdup("whisper_base.en_v1");
    e.timings_json = xstrdup("{\"transcribe_ms\":120.5,\"refine_ms\":300}");
    CHECK_INT(cdt_history_append(h, &e), 0);
    CHECK_STR(cdt_history_errmsg(h), "");

    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    REQUIRE(n == 1);
    CHECK_INT(skipped, 0);
    CHECK_STR(v[0].id, e.id);
    CHECK_INT(v[0].time_ms, e.time_ms);
    CHECK_STR(v[0].status, "done");
    CHECK_STR(v[0].source, "microphone");
    CHECK_STR(v[0].audio_path, wav);
    CHECK(v[0].audio_seconds == 12.5);
    CHECK_STR(v[0].raw, e.raw);
    CHECK_STR(v[0].refined, e.refined);
    CHECK_STR(v[0].fallback_reason, "output too long");
    CHECK_STR(v[0].reason_code, "guard_length");
    CHECK(v[0].error == NULL);
    CHECK_STR(v[0].model, "qwen3_base_1.7b_v1");
    CHECK_STR(v[0].whisper_model, "whisper_base.en_v1");
    CHECK_STR(v[0].timings_json, "{\"transcribe_ms\":120.5,\"refine_ms\":300}");
    cdt_history_entries_free(v, n);

    cdt_history_entry_cleanup(&e);
    CHECK(e.status == NULL && e.raw == NULL && e.id[0] == '\0' && e.time_ms == 0);
    cdt_history_entry_cleanup(NULL);
    cdt_history_entries_free(NULL, 0);
    cdt_history_free(h);
    cdt_history_free(NULL);
}

TEST(test_supersede_and_order)
{
    char dir[256];
    struct cdt_history *h;
    struct cdt_history_entry *v = NULL;
    size_t n = 0;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    CHECK_INT(append_simple(h, "20260101-000000-000-1", 1000, "recorded", NULL), 0);
    CHECK_INT(append_simple(h, "20260101-000000-000-2", 3000, "done", "b"), 0);
    CHECK_INT(append_simple(h, "20260101-000000-000-3", 2000, "failed", NULL), 0);
    /* The same time: the id decides, descending. */
    CHECK_INT(append_simple(h, "20260101-000000-000-4", 2000, "done", "d"), 0);
    CHECK_INT(append_simple(h, "20260101-000000-000-1", 1000, "done", "a"), 0);
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0);
    REQUIRE(n == 4);
    CHECK_STR(v[0].id, "20260101-000000-000-2");
    CHECK_STR(v[1].id, "20260101-000000-000-4");
    CHECK_STR(v[2].id, "20260101-000000-000-3");
    CHECK_STR(v[3].id, "20260101-000000-000-1");
    CHECK_STR(v[3].status, "done"); /* the last line of the id won */
    CHECK_STR(v[3].refined, "a");
    CHECK_STR(v[2].status, "failed");
    cdt_history_entries_free(v, n);

    /* Superseded again, with fields dropped: the newest line is the whole truth. */
    CHECK_INT(append_simple(h, "20260101-000000-000-2", 3000, "cancelled", NULL), 0);
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0);
    REQUIRE(n == 4);
    CHECK_STR(v[0].status, "cancelled");
    CHECK(v[0].refined == NULL);
    cdt_history_entries_free(v, n);
    cdt_history_free(h);
}

TEST(test_corrupt_lines)
{
    char dir[256], file[512];
    struct cdt_history *h;
    struct cdt_history_entry *v = NULL;
    size_t n = 0, skipped = 0;
    const char *seed =
        "{\"id\":\"a-1\",\"time_ms\":1000,\"status\":\"done\",\"refined\":\"one\"}\n"
        "this is not json\n"
        "\n"
        "   \n"
        "[1,2,3]\n"
        "{\"time_ms\":5}\n"
        "{\"id\":\"../../etc/passwd\",\"time_ms\":5}\n"
        "{\"id\":\"b-2\",\"time_ms\":\"soon\"}\n"
        "{\"id\":\"b-3\",\"time_ms\":-5}\n"
        "{\"id\":\"c-1\",\"time_ms\":1}{\"id\":\"c-2\",\"time_ms\":2}\n"
        "{\"id\":\"a-2\",\"time_ms\":2000,\"status\":42,\"timings\":\"x\"}\r\n"
        "{\"id\":\"a-3\",\"time_ms\":3000,\"status\":\"done\",\"raw\":\"cut he"; /* crash */

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    history_file(h, file, sizeof(file));
    write_file(file, seed, strlen(seed), O_TRUNC);
    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    CHECK_INT(n, 2);
    CHECK_INT(skipped, 8);
    if (n == 2) {
        CHECK_STR(v[0].id, "a-2");
        CHECK(v[0].status == NULL); /* a wrong type reads as missing */
        CHECK(v[0].timings_json == NULL);
        CHECK_STR(v[1].refined, "one");
    }
    cdt_history_entries_free(v, n);
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0); /* n_skipped may be NULL */
    cdt_history_entries_free(v, n);

    /* An append after the truncated line starts on a line of its own. */
    CHECK_INT(append_simple(h, "a-4", 4000, "done", "after the crash"), 0);
    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    CHECK_INT(n, 3);
    CHECK_INT(skipped, 8);
    if (n == 3)
        CHECK_STR(v[0].refined, "after the crash");
    cdt_history_entries_free(v, n);

    /* A last line that is whole but lacks its newline counts. */
    write_file(file, "{\"id\":\"z\",\"time_ms\":1}", 22, O_TRUNC);
    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    CHECK_INT(n, 1);
    CHECK_INT(skipped, 0);
    cdt_history_entries_free(v, n);
    cdt_history_free(h);
}

TEST(test_overlong_line)
{
    char dir[256], file[512];
    struct cdt_history *h;
    struct cdt_history_entry *v = NULL, e = {0};
    size_t n = 0, skipped = 0, big = CDT_HISTORY_MAX_LINE + 100;
    char *line = malloc(big + 64);

    REQUIRE(line);
    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    if (!h)
        free(line);
    REQUIRE(h);
    history_file(h, file, sizeof(file));
    /* Valid JSON, but over the cap: skipped without holding it whole. */
    {
        size_t k = (size_t)snprintf(line, 64, "{\"id\":\"big\",\"time_ms\":1,\"raw\":\"");

        memset(line + k, 'x', big - k);
        memcpy(line + big, "\"}\n", 3);
        write_file(file, line, big + 3, O_TRUNC);
    }
    CHECK_INT(append_simple(h, "small", 2, "done", "ok"), 0);
    /* Over the cap with no newline at all, at the end. */
    write_file(file, line, big, O_APPEND);
    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    CHECK_INT(n, 1);
    CHECK_INT(skipped, 2);
    if (n == 1)
        CHECK_STR(v[0].id, "small");
    cdt_history_entries_free(v, n);

    /* Appending a line over the cap is refused, naming it. */
    snprintf(e.id, sizeof(e.id), "huge");
    line[big] = '\0';
    e.raw = line;
    CHECK_INT(cdt_history_append(h, &e), CDT_ETOOBIG);
    CHECK(strstr(cdt_history_errmsg(h), "CDT_HISTORY_MAX_LINE") != NULL);
    free(line);
    cdt_history_free(h);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

TEST(test_unique_ids)
{
    enum { N = 5000 };
    char dir[256];
    struct cdt_history *h, *h2;
    char(*ids)[CDT_HISTORY_ID_MAX] = malloc(N * CDT_HISTORY_ID_MAX);
    struct cdt_history_entry e = {0};
    char pid[32];
    int dups = 0, unordered = 0;

    REQUIRE(ids);
    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    h2 = open_at(dir);
    if (!h || !h2)
        free(ids);
    REQUIRE(h && h2);
    snprintf(pid, sizeof(pid), "-%ld", (long)getpid());
    for (int i = 0; i < N; i++) {
        /* Two handles of one process, interleaved. */
        CHECK_INT(cdt_history_new_id(i % 2 ? h2 : h, &e, NULL, 0), 0);
        memcpy(ids[i], e.id, sizeof(e.id));
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            unordered++;
    }
    CHECK_INT(unordered, 0);
    /* Format: YYYYMMDD-HHMMSS-mmm-<pid>. */
    CHECK_INT(strlen(ids[0]), 19 + strlen(pid));
    CHECK(strcmp(ids[0] + 19, pid) == 0);
    CHECK(ids[0][8] == '-' && ids[0][15] == '-');
    qsort(ids, N, CDT_HISTORY_ID_MAX, cmp_str);
    for (int i = 1; i < N; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            dups++;
    CHECK_INT(dups, 0);
    {
        char small[8];

        CHECK_INT(cdt_history_new_id(h, &e, small, sizeof(small)), CDT_ETOOBIG);
    }
    free(ids);
    cdt_history_free(h);
    cdt_history_free(h2);
}

TEST(test_bad_ids_and_timings)
{
    char dir[256];
    struct cdt_history *h;
    struct cdt_history_entry e = {0}, *v = NULL;
    size_t n = 0;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    CHECK_INT(cdt_history_append(h, &e), CDT_EINVAL); /* empty id */
    snprintf(e.id, sizeof(e.id), "../escape");
    CHECK_INT(cdt_history_append(h, &e), CDT_EINVAL);
    snprintf(e.id, sizeof(e.id), "a/b");
    CHECK_INT(cdt_history_append(h, &e), CDT_EINVAL);
    CHECK(strstr(cdt_history_errmsg(h), "a/b") != NULL);
    snprintf(e.id, sizeof(e.id), "ok-1");
    e.timings_json = "not json";
    CHECK_INT(cdt_history_append(h, &e), 0);
    e.timings_json = "[1]";
    snprintf(e.id, sizeof(e.id), "ok-2");
    CHECK_INT(cdt_history_append(h, &e), 0);
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0);
    CHECK_INT(n, 2);
    for (size_t i = 0; i < n; i++)
        CHECK(v[i].timings_json == NULL && v[i].status == NULL);
    cdt_history_entries_free(v, n);
    cdt_history_free(h);
}

static void touch_wav(const struct cdt_history *h, const char *id)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/recordings/%s.wav", cdt_history_dir(h), id);
    write_file(path, "RIFF", 4, O_TRUNC);
}

static bool wav_exists(const struct cdt_history *h, const char *id)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/recordings/%s.wav", cdt_history_dir(h), id);
    return exists(path);
}

TEST(test_prune_recordings)
{
    enum { N = CDT_HISTORY_KEEP_RECORDINGS + 6 };
    char dir[256], id[64], path[512];
    struct cdt_history *h;
    int kept = 0;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    /* Not entries of ours: an orphan WAV (a recording in progress) and another file. */
    touch_wav(h, "orphan-1");
    snprintf(path, sizeof(path), "%s/recordings/notes.txt", dir);
    write_file(path, "x", 1, O_TRUNC);
    /* An entry with no recording at all. */
    CHECK_INT(append_simple(h, "nowav-0", 500, "failed", NULL), 0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "e-%03d", i);
        touch_wav(h, id);
        CHECK_INT(append_simple(h, id, 1000 + i, "recorded", NULL), 0);
        CHECK_INT(append_simple(h, id, 1000 + i, "done", "text"), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "e-%03d", i);
        if (wav_exists(h, id))
            kept++;
        if (i < N - CDT_HISTORY_KEEP_RECORDINGS)
            CHECK(!wav_exists(h, id));
        else
            CHECK(wav_exists(h, id));
    }
    CHECK_INT(kept, CDT_HISTORY_KEEP_RECORDINGS);
    CHECK(wav_exists(h, "orphan-1"));
    CHECK(exists(path));

    /* An old entry appended now keeps its recording; the newest 20 keep theirs. */
    touch_wav(h, "old-1");
    CHECK_INT(append_simple(h, "old-1", 1, "done", "late"), 0);
    CHECK(wav_exists(h, "old-1"));
    CHECK(wav_exists(h, "e-006"));
    CHECK(wav_exists(h, "e-025"));
    /* On the next append it is the oldest with a recording: pruned. */
    CHECK_INT(append_simple(h, "e-100", 9999, "failed", NULL), 0);
    CHECK(!wav_exists(h, "old-1"));
    CHECK(wav_exists(h, "e-006"));
    cdt_history_free(h);
}

TEST(test_clear)
{
    char dir[256], file[512], path[512];
    struct cdt_history *h;
    struct cdt_history_entry *v = NULL;
    size_t n = 1;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    touch_wav(h, "a-1");
    touch_wav(h, "orphan");
    CHECK_INT(append_simple(h, "a-1", 1, "done", "x"), 0);
    history_file(h, file, sizeof(file));
    CHECK(exists(file));
    CHECK_INT(cdt_history_clear(h), 0);
    CHECK(!exists(file));
    CHECK(!wav_exists(h, "a-1"));
    CHECK(!wav_exists(h, "orphan"));
    snprintf(path, sizeof(path), "%s/recordings", dir);
    CHECK(exists(path));
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0);
    CHECK_INT(n, 0);
    CHECK_INT(cdt_history_clear(h), 0); /* twice: nothing to do */
    CHECK_INT(append_simple(h, "b-1", 2, "done", "y"), 0);
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0);
    CHECK_INT(n, 1);
    cdt_history_entries_free(v, n);
    cdt_history_free(h);
}

/* Deleting one entry removes all its lines (superseded ones too: no text of it is
 * left in the file), its recording, and nothing else; corrupt lines are kept. */
TEST(test_delete)
{
    char dir[256], file[512], wav[600], wav2[600], *text;
    struct cdt_history *h;
    struct cdt_history_entry *v = NULL;
    size_t n = 0, skipped = 0;
    FILE *f;
    long len;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    CHECK_INT(append_simple(h, "20260101-000000-000-1", 1000, "recorded", "secret words"), 0);
    CHECK_INT(append_simple(h, "20260101-000000-000-2", 2000, "done", "keep me"), 0);
    CHECK_INT(append_simple(h, "20260101-000000-000-1", 1000, "done", "secret words again"), 0);
    history_file(h, file, sizeof(file));
    write_file(file, "not json\n", 9, O_APPEND);
    snprintf(wav, sizeof(wav), "%s/recordings/20260101-000000-000-1.wav", dir);
    snprintf(wav2, sizeof(wav2), "%s/recordings/20260101-000000-000-2.wav", dir);
    write_file(wav, "RIFF", 4, O_TRUNC);
    write_file(wav2, "RIFF", 4, O_TRUNC);

    CHECK_INT(cdt_history_delete(h, "20260101-000000-000-1"), 0);
    CHECK(!exists(wav));
    CHECK(exists(wav2));
    CHECK_INT(cdt_history_list(h, &v, &n, &skipped), 0);
    REQUIRE(n == 1);
    CHECK_STR(v[0].id, "20260101-000000-000-2");
    CHECK_STR(v[0].refined, "keep me");
    CHECK_INT((int)skipped, 1); /* the corrupt line stays where it was */
    cdt_history_entries_free(v, n);
    f = fopen(file, "r");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)len + 1);
    REQUIRE(text);
    CHECK(fread(text, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    CHECK(strstr(text, "secret") == NULL);
    free(text);
    {
        struct stat st;

        CHECK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0600);
    }

    /* Unknown and malformed ids; appends go on after a delete. */
    CHECK_INT(cdt_history_delete(h, "20260101-000000-000-1"), CDT_ENOTFOUND);
    CHECK_INT(cdt_history_delete(h, "../x"), CDT_EINVAL);
    CHECK_INT(cdt_history_delete(h, ""), CDT_EINVAL);
    CHECK_INT(append_simple(h, "20260101-000000-000-3", 3000, "done", "new"), 0);
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), 0);
    CHECK_INT((int)n, 2);
    cdt_history_entries_free(v, n);
    cdt_history_free(h);

    /* No file at all. */
    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    CHECK_INT(cdt_history_delete(h, "20260101-000000-000-9"), CDT_ENOTFOUND);
    cdt_history_free(h);
}

/* A FIFO (or any non-file) where history.jsonl should be: a clear error, no hang. */
TEST(test_fifo)
{
    char dir[256], file[512];
    struct cdt_history *h;
    struct cdt_history_entry *v = NULL;
    size_t n = 0;

    fresh_dir(dir, sizeof(dir));
    h = open_at(dir);
    REQUIRE(h);
    history_file(h, file, sizeof(file));
    REQUIRE(mkfifo(file, 0600) == 0);
    alarm(10); /* a hang fails the test instead of stalling it */
    CHECK_INT(cdt_history_list(h, &v, &n, NULL), CDT_EIO);
    CHECK(strstr(cdt_history_errmsg(h), "not a regular file") != NULL);
    CHECK_INT(append_simple(h, "20260101-000000-000-1", 1000, "done", "x"), CDT_EIO);
    CHECK_INT(cdt_history_delete(h, "20260101-000000-000-1"), CDT_EIO);
    alarm(0);
    cdt_history_free(h);
}

TEST(test_permissions)
{
    char dir[256], sub[300], file[512];
    struct cdt_history *h;
    struct stat st;
    mode_t old = umask(0);

    fresh_dir(dir, sizeof(dir));
    snprintf(sub, sizeof(sub), "%s/deep/er", dir);
    h = open_at(sub);
    umask(old);
    REQUIRE(h);
    CHECK_INT(append_simple(h, "p-1", 1, "done", "x"), 0);
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700);
    snprintf(file, sizeof(file), "%s/recordings", sub);
    CHECK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0700);
    history_file(h, file, sizeof(file));
    CHECK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* A file someone made readable is tightened on the next append. */
    CHECK(chmod(file, 0644) == 0);
    CHECK_INT(append_simple(h, "p-2", 2, "done", "x"), 0);
    CHECK(stat(file, &st) == 0 && (st.st_mode & 0777) == 0600);
    cdt_history_free(h);
}

TEST(test_dir_is_a_file)
{
    char dir[256], below[512], err[512] = "unset";
    struct cdt_history_params p = cdt_history_default_params();
    struct cdt_history *h = (struct cdt_history *)1;

    fresh_dir(dir, sizeof(dir));
    write_file(dir, "x", 1, O_TRUNC);
    p.dir = dir;
    p.errmsg = err;
    p.errcap = sizeof(err);
    CHECK_INT(cdt_history_new(&p, &h), CDT_EIO);
    CHECK(h == NULL);
    CHECK(strstr(err, dir) != NULL);
    CHECK(strstr(err, "not a directory") != NULL);

    /* A parent that is a file. */
    snprintf(below, sizeof(below), "%s/sub", dir);
    p.dir = below;
    CHECK_INT(cdt_history_new(&p, &h), CDT_EIO);
    CHECK(strstr(err, "not a directory") != NULL);

    /* recordings/ that is a file. */
    fresh_dir(dir, sizeof(dir));
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(below, sizeof(below), "%s/recordings", dir);
    write_file(below, "x", 1, O_TRUNC);
    p.dir = dir;
    CHECK_INT(cdt_history_new(&p, &h), CDT_EIO);
    CHECK(strstr(err, "recordings exists and is not a directory") != NULL);

    /* No errmsg buffer: still a clean failure. */
    p.errmsg = NULL;
    p.errcap = 0;
    CHECK_INT(cdt_history_new(&p, &h), CDT_EIO);
}

TEST(test_unwritable_dir)
{
    char dir[256], err[512] = "";
    struct cdt_history_params p = cdt_history_default_params();
    struct cdt_history *h = NULL;

    if (geteuid() == 0) {
        fprintf(stderr, "  (root: permission checks skipped)\n");
        return;
    }
    fresh_dir(dir, sizeof(dir));
    CHECK(mkdir(dir, 0500) == 0);
    snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/data");
    p.dir = dir;
    p.errmsg = err;
    p.errcap = sizeof(err);
    CHECK_INT(cdt_history_new(&p, &h), CDT_EPERM);
    CHECK(strstr(err, "Permission denied") != NULL);
}

TEST(test_default_dirs)
{
    char dir[256], want[512];
    struct cdt_history *h;
    char *saved_home = xstrdup(getenv("HOME")), *saved_xdg = xstrdup(getenv("XDG_DATA_HOME"));
    char *saved_env = xstrdup(getenv("CODICTATE_DATA_DIR"));

    fresh_dir(dir, sizeof(dir));
    setenv("HOME", dir, 1);
    unsetenv("XDG_DATA_HOME");
    unsetenv("CODICTATE_DATA_DIR");
    h = open_at(NULL);
    snprintf(want, sizeof(want), "%s/.local/share/codictate", dir);
    CHECK(h && strcmp(cdt_history_dir(h), want) == 0);
    cdt_history_free(h);

    snprintf(want, sizeof(want), "%s/xdg", dir);
    setenv("XDG_DATA_HOME", want, 1);
    h = open_at(NULL);
    strcat(want, "/codictate");
    CHECK(h && strcmp(cdt_history_dir(h), want) == 0);
    cdt_history_free(h);

    snprintf(want, sizeof(want), "%s/explicit", dir);
    setenv("CODICTATE_DATA_DIR", want, 1);
    h = open_at(NULL);
    CHECK(h && strcmp(cdt_history_dir(h), want) == 0);
    cdt_history_free(h);

    /* A params dir beats the environment; trailing slashes are dropped. */
    snprintf(want, sizeof(want), "%s/given/", dir);
    h = open_at(want);
    want[strlen(want) - 1] = '\0';
    CHECK(h && strcmp(cdt_history_dir(h), want) == 0);
    cdt_history_free(h);

    unsetenv("CODICTATE_DATA_DIR");
    unsetenv("XDG_DATA_HOME");
    unsetenv("HOME");
    {
        struct cdt_history_params p = cdt_history_default_params();
        char err[256] = "";

        p.errmsg = err;
        p.errcap = sizeof(err);
        h = NULL;
        CHECK_INT(cdt_history_new(&p, &h), CDT_ENOTFOUND);
        CHECK(strstr(err, "CODICTATE_DATA_DIR") != NULL);
        CHECK_INT(cdt_history_new(NULL, &h), CDT_ENOTFOUND);
    }
    if (saved_home)
        setenv("HOME", saved_home, 1);
    if (saved_xdg)
        setenv("XDG_DATA_HOME", saved_xdg, 1);
    if (saved_env)
        setenv("CODICTATE_DATA_DIR", saved_env, 1);
    free(saved_home);
    free(saved_xdg);
    free(saved_env);
}

int main(void)
{
    char cmd[128];
    int rc;

    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_empty_and_roundtrip);
    RUN(test_supersede_and_order);
    RUN(test_corrupt_lines);
    RUN(test_overlong_line);
    RUN(test_unique_ids);
    RUN(test_bad_ids_and_timings);
    RUN(test_prune_recordings);
    RUN(test_clear);
    RUN(test_delete);
    RUN(test_fifo);
    RUN(test_permissions);
    RUN(test_dir_is_a_file);
    RUN(test_unwritable_dir);
    RUN(test_default_dirs);
    rc = TEST_END();
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", root, root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    return rc;
}
