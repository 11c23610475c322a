/* Fuzz target: decoding untrusted audio files (cdt_audio_load: libsndfile, then the
 * mix to mono and the resampler) on any bytes written to a file. A file it accepts
 * gives what audio.h promises: 16 kHz mono samples, each finite and in [-1, 1],
 * within CDT_AUDIO_MAX_SECONDS. libsndfile and soxr are the system's builds,
 * without coverage: the fuzzer steers by audio.c. */
#include "codictate/audio.h"
#include "codictate/err.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char file[128];

static void remove_dir(void)
{
    unlink(file);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cdt_audio a;
    int fd, rc;

    if (!dir[0]) {
        /* tmpfs where there is one. */
        snprintf(dir, sizeof(dir), "/dev/shm/codictate-fuzz-audio-XXXXXX");
        if (!mkdtemp(dir)) {
            snprintf(dir, sizeof(dir), "/tmp/codictate-fuzz-audio-XXXXXX");
            if (!mkdtemp(dir))
                abort();
        }
        snprintf(file, sizeof(file), "%s/input.audio", dir);
        atexit(remove_dir);
    }
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
    cdt_audio_init(&a);
    rc = cdt_audio_load(&a, file);
    if (rc == 0) {
        if (a.n_samples > (size_t)CDT_AUDIO_MAX_SECONDS * CDT_AUDIO_RATE + CDT_AUDIO_RATE) {
            fprintf(stderr, "fuzz_audio: %zu samples, over the limit\n", a.n_samples);
            abort();
        }
        for (size_t i = 0; i < a.n_samples; i++) {
            if (!isfinite(a.samples[i]) || a.samples[i] < -1.0f || a.samples[i] > 1.0f) {
                fprintf(stderr, "fuzz_audio: sample %zu is %g, not in [-1, 1]\n", i,
                        (double)a.samples[i]);
                abort();
            }
        }
    } else if (!memchr(a.errmsg, '\0', sizeof(a.errmsg)) || !a.errmsg[0]) {
        fprintf(stderr, "fuzz_audio: error %d without a message\n", rc);
        abort();
    }
    cdt_audio_cleanup(&a);
    return 0;
}
