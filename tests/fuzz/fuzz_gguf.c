/* Fuzz target: the sidecar's GGUF file checks (cdt__model_files_resolve: the magic,
 * ggml's GGUF parser, the hyperparameters llama.cpp would assert on, tensor data
 * within the file) on any bytes, written to a .gguf file. Whatever the file, the
 * answer is 0 with the file's size, or an error with a message; never a crash.
 * ggml's parser is built by gcc without coverage: the fuzzer steers by the checks. */
#include "codictate/err.h"
#include "model_files_int.h"

#include <ggml.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char file[128];

/* ggml's parser says why it refuses a file on stderr: a line for each of millions
 * of inputs. */
static void quiet(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)level;
    (void)text;
    (void)user_data;
}

static void remove_dir(void)
{
    unlink(file);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cdt_model_info info;
    char err[512];
    int fd, rc;

    if (!dir[0]) {
        /* tmpfs where there is one. */
        snprintf(dir, sizeof(dir), "/dev/shm/codictate-fuzz-gguf-XXXXXX");
        if (!mkdtemp(dir)) {
            snprintf(dir, sizeof(dir), "/tmp/codictate-fuzz-gguf-XXXXXX");
            if (!mkdtemp(dir))
                abort();
        }
        snprintf(file, sizeof(file), "%s/model.gguf", dir);
        atexit(remove_dir);
        ggml_log_set(quiet, NULL);
    }
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    memset(&info, 0, sizeof(info));
    err[0] = '\0';
    rc = cdt__model_files_resolve(file, &info, err, sizeof(err));
    if (rc == 0 && info.file_size != size) {
        fprintf(stderr, "fuzz_gguf: accepted with file_size %llu for %zu bytes\n",
                (unsigned long long)info.file_size, size);
        abort();
    }
    if (rc != 0 && (rc > 0 || !err[0] || !memchr(err, '\0', sizeof(err)))) {
        fprintf(stderr, "fuzz_gguf: error %d without a message\n", rc);
        abort();
    }
    return 0;
}
