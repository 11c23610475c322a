/* Fuzz target: the history file reader. The input is written as history.jsonl in a
 * data dir of its own, then read (cdt_history_list); when it holds entries, the
 * newest is deleted (cdt_history_delete, which rewrites the file) and the file read
 * again: exactly that entry must be gone, the others kept. */
#include "codictate/err.h"
#include "codictate/history.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char file[128];
static struct cdt_history *hist;

/* At exit: the data dir goes (a crash leaves it for the report). */
static void remove_dir(void)
{
    char rec[sizeof(dir) + 16], lock[sizeof(dir) + 16];

    if (cdt_history_clear(hist) != 0)
        return;
    cdt_history_free(hist);
    hist = NULL;
    snprintf(rec, sizeof(rec), "%s/recordings", dir);
    snprintf(lock, sizeof(lock), "%s/history.lock", dir);
    rmdir(rec);
    unlink(lock);
    rmdir(dir);
}

static void open_history(void)
{
    struct cdt_history_params p = cdt_history_default_params();
    char err[256];

    /* tmpfs where there is one: the delete's fsync costs nothing there. */
    snprintf(dir, sizeof(dir), "/dev/shm/codictate-fuzz-history-XXXXXX");
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof(dir), "/tmp/codictate-fuzz-history-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    snprintf(file, sizeof(file), "%s/history.jsonl", dir);
    p.dir = dir;
    p.errmsg = err;
    p.errcap = sizeof(err);
    if (cdt_history_new(&p, &hist) != 0) {
        fprintf(stderr, "fuzz_history: %s\n", err);
        abort();
    }
    atexit(remove_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cdt_history_entry *v = NULL, *w = NULL;
    size_t n = 0, m = 0, skipped = 0;
    char *gone;
    int fd;

    if (!hist)
        open_history();
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    if (cdt_history_list(hist, &v, &n, &skipped) != 0 || n == 0) {
        cdt_history_entries_free(v, n);
        return 0;
    }
    gone = strdup(v[0].id);
    if (!gone)
        abort();
    if (cdt_history_delete(hist, gone) == 0 && cdt_history_list(hist, &w, &m, NULL) == 0) {
        if (m != n - 1) {
            fprintf(stderr, "fuzz_history: deleting \"%s\" left %zu of %zu entries\n", gone, m, n);
            abort();
        }
        for (size_t i = 0; i < m; i++)
            if (strcmp(w[i].id, gone) == 0) {
                fprintf(stderr, "fuzz_history: \"%s\" is still listed after its delete\n", gone);
                abort();
            }
        cdt_history_entries_free(w, m);
    }
    free(gone);
    cdt_history_entries_free(v, n);
    return 0;
}
