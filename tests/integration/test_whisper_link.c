/* Proof of the link: whisper.cpp runs through whisper.h (on llama.cpp's ggml, in
 * the same binary as llama.cpp) on samples/jfk.mp3 with the tiny random model. */
#include "../test.h"
#include "codictate/audio.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"

#include <llama.h>
#include <whisper.h>

static const char *model_path, *audio_path;

TEST(transcribes_jfk)
{
    struct whisper_context_params cp = whisper_context_default_params();
    struct whisper_full_params fp = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    struct whisper_context *ctx;
    struct cdt_audio a;
    int n_seg;

    cdt_audio_init(&a);
    REQUIRE(cdt_audio_load(&a, audio_path) == 0);
    cp.use_gpu = false;
    ctx = whisper_init_from_file_with_params(model_path, cp);
    REQUIRE(ctx != NULL);
    CHECK_INT(whisper_is_multilingual(ctx), 0);
    fp.n_threads = 2;
    fp.language = "en";
    fp.print_progress = false;
    fp.print_realtime = false;
    fp.print_timestamps = false;
    fp.print_special = false;
    fp.max_len = 0;
    fp.no_context = true;
    CHECK_INT(whisper_full(ctx, fp, a.samples, (int)a.n_samples), 0);
    n_seg = whisper_full_n_segments(ctx);
    CHECK(n_seg >= 1);
    for (int i = 0; i < n_seg; i++) {
        int64_t t0 = whisper_full_get_segment_t0(ctx, i);
        int64_t t1 = whisper_full_get_segment_t1(ctx, i);

        CHECK(t0 >= 0);
        CHECK(t1 >= t0);
        CHECK(t1 <= 3000); /* centiseconds: within the 30 s window whisper decodes */
        CHECK(whisper_full_get_segment_text(ctx, i) != NULL);
    }
    whisper_free(ctx);
    cdt_audio_cleanup(&a);
}

TEST(missing_model_fails_cleanly)
{
    struct whisper_context_params cp = whisper_context_default_params();

    cp.use_gpu = false;
    CHECK(whisper_init_from_file_with_params("/no/such/model.bin", cp) == NULL);
}

TEST(llama_links_in_the_same_binary)
{
    /* One ggml serves both engines: llama's system info comes from the same
     * backend registry whisper used. */
    const char *info = llama_print_system_info();

    CHECK(info != NULL && strstr(info, "CPU") != NULL);
}

int main(int argc, char **argv)
{
    struct cdt_log *lg = NULL;
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.bin AUDIO\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    audio_path = argv[2];
    if (cdt_log_new(NULL, &lg) != 0)
        return 1;
    whisper_log_set(cdt_log_ggml, lg);
    cdt_sysinfo_load_backends();
    RUN(transcribes_jfk);
    RUN(missing_model_fails_cleanly);
    RUN(llama_links_in_the_same_binary);
    rc = TEST_END();
    whisper_log_set(NULL, NULL);
    cdt_log_free(lg);
    return rc;
}
