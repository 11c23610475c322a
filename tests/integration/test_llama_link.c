/* Proof of the link: the tiny random Qwen3 model loads through llama.h, its chat
 * template applies, its tokenizer matches the real Qwen3 one, and it generates. */
#include "../test.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"

#include <llama.h>
#include <stdlib.h>

static const char *model_path;
static struct llama_model *model;
static struct cdt_log *lg;
static int n_warnings; /* llama.cpp log lines at WARN or above */

/* Routes llama.cpp's log into ours and counts its warnings: a generated model must
 * load without any (a warning in a test log should always mean something). */
static void count_log(enum ggml_log_level level, const char *text, void *ud)
{
    if (level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) {
        n_warnings++;
        fprintf(stderr, "llama.cpp warned: %s", text);
    }
    cdt_log_ggml(level, text, ud);
}

TEST(model_loads)
{
    struct llama_model_params mp = llama_model_default_params();
    char arch[64] = "";

    n_warnings = 0;
    model = llama_model_load_from_file(model_path, mp);
    REQUIRE(model != NULL);
    CHECK_INT(n_warnings, 0); /* e.g. "control-looking token ... was not control-type" */
    CHECK(llama_model_meta_val_str(model, "general.architecture", arch, sizeof(arch)) > 0);
    CHECK_STR(arch, "qwen3");
    CHECK_INT(llama_vocab_n_tokens(llama_model_get_vocab(model)), 151936);
    CHECK(llama_model_n_params(model) > 0);
}

TEST(chat_template_applies)
{
    const char *tmpl;
    struct llama_chat_message msg = {"user", "Hello world"};
    char buf[512];
    int n;

    REQUIRE(model);
    tmpl = llama_model_chat_template(model, NULL);
    REQUIRE(tmpl != NULL);
    CHECK(strstr(tmpl, "enable_thinking") != NULL); /* the real Qwen3 template */
    n = llama_chat_apply_template(tmpl, &msg, 1, true, buf, sizeof(buf));
    REQUIRE(n > 0 && n < (int)sizeof(buf));
    buf[n] = '\0';
    CHECK_STR(buf, "<|im_start|>user\nHello world<|im_end|>\n<|im_start|>assistant\n");
}

TEST(tokenizer_matches_qwen3)
{
    const struct llama_vocab *vocab;
    llama_token toks[16];
    const char *text = "<|im_start|>user\nHello world<|im_end|>";
    int n;

    REQUIRE(model);
    vocab = llama_model_get_vocab(model);
    n = llama_tokenize(vocab, text, (int)strlen(text), toks, 16, false, true);
    /* Ids from the real Qwen3 tokenizer (tokenizer.json). */
    REQUIRE(n == 6);
    CHECK_INT(toks[0], 151644); /* <|im_start|> */
    CHECK_INT(toks[1], 872);    /* user */
    CHECK_INT(toks[2], 198);    /* \n */
    CHECK_INT(toks[3], 9707);   /* Hello */
    CHECK_INT(toks[4], 1879);   /* " world" */
    CHECK_INT(toks[5], 151645); /* <|im_end|> */
    CHECK_INT(llama_vocab_eos(vocab), 151645);
    CHECK(llama_vocab_is_eog(vocab, 151645));
    n = llama_tokenize(vocab, "<think>", 7, toks, 16, false, true);
    CHECK_INT(n, 1);
    CHECK_INT(toks[0], 151667);
}

/* Greedy generation of n tokens after the prompt; returns the count generated. */
static int generate(llama_token *out, int n_max)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    struct llama_context_params cp = llama_context_default_params();
    struct llama_context *ctx;
    struct llama_sampler *smpl;
    const char *prompt = "<|im_start|>user\nClean this: um so I I think it works<|im_end|>\n"
                         "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    llama_token toks[128];
    int n_prompt, n = 0;
    struct llama_batch batch;

    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    ctx = llama_init_from_model(model, cp);
    if (!ctx)
        return -1;
    n_prompt = llama_tokenize(vocab, prompt, (int)strlen(prompt), toks, 128, false, true);
    if (n_prompt <= 0) {
        llama_free(ctx);
        return -1;
    }
    smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(smpl, llama_sampler_init_greedy());
    batch = llama_batch_get_one(toks, n_prompt);
    while (n < n_max) {
        llama_token t;

        if (llama_decode(ctx, batch) != 0)
            break;
        t = llama_sampler_sample(smpl, ctx, -1);
        out[n++] = t;
        if (llama_vocab_is_eog(vocab, t))
            break;
        toks[0] = t;
        batch = llama_batch_get_one(toks, 1);
    }
    llama_sampler_free(smpl);
    llama_free(ctx);
    return n;
}

TEST(generates_deterministically)
{
    llama_token a[16], b[16];
    int na, nb;
    char piece[64];

    REQUIRE(model);
    na = generate(a, 16);
    nb = generate(b, 16);
    CHECK(na > 0);
    CHECK_INT(na, nb);
    REQUIRE(na > 0 && na == nb);
    CHECK(memcmp(a, b, sizeof(llama_token) * (size_t)na) == 0);
    CHECK(llama_token_to_piece(llama_model_get_vocab(model), a[0], piece, sizeof(piece), 0, true) >=
          0);
}

int main(int argc, char **argv)
{
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    if (cdt_log_new(NULL, &lg) != 0)
        return 1;
    llama_log_set(count_log, lg);
    cdt_sysinfo_load_backends();
    llama_backend_init();
    RUN(model_loads);
    RUN(chat_template_applies);
    RUN(tokenizer_matches_qwen3);
    RUN(generates_deterministically);
    llama_model_free(model);
    llama_backend_free();
    rc = TEST_END();
    llama_log_set(NULL, NULL);
    cdt_log_free(lg);
    return rc;
}
