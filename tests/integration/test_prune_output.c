/* The output projection without its zero rows (scripts/patches/llama-prune-output.patch):
 * the built-in refiner, whose tied embedding zeroes 70% of Qwen3's vocabulary, loads
 * pruned, a model without zero rows does not, and the logits a pruned model gives are
 * the full projection's: every zero row's logit exactly 0, every other one the same
 * within rounding, the same greedy token where it is not a near tie. Rows of a
 * verification batch (several logits per decode) and single tokens both. Only Qwen3's
 * graph multiplies by the pruned copy, so the same zero rows in a model of another
 * architecture (the built-in model rewritten as a Qwen2 one) are left alone.
 *
 *   test_prune_output BUILTIN.gguf NO_ZERO_ROWS.gguf */
#include "../test.h"
#include "codictate/log.h"
#include "codictate/sysinfo.h"

#include <gguf.h>
#include <llama.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#define N_ROWS 4 /* logits per decode in the batch step, as a 3-token draft's verification */

static const char *builtin_path, *plain_path;
static int pruned_lines; /* llama.cpp's "output projection: ... rows are zero" lines */
static struct cdt_log *lg;

static void watch_log(enum ggml_log_level level, const char *text, void *ud)
{
    if (strstr(text, "prune_output_rows: output projection:"))
        pruned_lines++;
    cdt_log_ggml(level, text, ud);
}

/* Loads PATH with the pruning on or off (LLAMA_PRUNE_OUTPUT, read at load); sets
 * *pruned to whether the load said it pruned. */
static struct llama_model *load(const char *path, int prune, int *pruned)
{
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m;
    int before = pruned_lines;

    if (prune)
        unsetenv("LLAMA_PRUNE_OUTPUT");
    else
        setenv("LLAMA_PRUNE_OUTPUT", "0", 1);
    m = llama_model_load_from_file(path, mp);
    unsetenv("LLAMA_PRUNE_OUTPUT");
    *pruned = pruned_lines > before;
    return m;
}

/* Decodes a cleanup prompt with logits for its last N_ROWS tokens, then one more token
 * (the first row's greedy pick) with its logits: (N_ROWS + 1) rows of n_vocab floats in
 * OUT. Returns 0 on success. */
static int logits_of(struct llama_model *m, float *out)
{
    const struct llama_vocab *vocab = llama_model_get_vocab(m);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const char *prompt = "<|im_start|>user\nClean this: um so the meeting is on tuesday at three "
                         "no wait at four<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
                         "So the meeting is on";
    struct llama_context_params cp = llama_context_default_params();
    struct llama_context *ctx;
    struct llama_batch batch;
    llama_token toks[128];
    int n, i, rc = -1;

    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    ctx = llama_init_from_model(m, cp);
    if (!ctx)
        return -1;
    n = llama_tokenize(vocab, prompt, (int)strlen(prompt), toks, 128, false, true);
    if (n <= N_ROWS)
        goto out;
    batch = llama_batch_init(n, 0, 1);
    for (i = 0; i < n; i++) {
        batch.token[i] = toks[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = i >= n - N_ROWS;
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch) == 0) {
        const float *row0;
        llama_token next = 0;

        for (i = 0; i < N_ROWS; i++) {
            const float *l = llama_get_logits_ith(ctx, n - N_ROWS + i);

            if (!l)
                goto free_batch;
            memcpy(out + (size_t)i * n_vocab, l, sizeof(float) * n_vocab);
        }
        row0 = out + (size_t)(N_ROWS - 1) * n_vocab;
        for (i = 1; i < n_vocab; i++)
            if (row0[i] > row0[next])
                next = i;
        batch.n_tokens = 1;
        batch.token[0] = next;
        batch.pos[0] = n;
        batch.logits[0] = 1;
        if (llama_decode(ctx, batch) == 0 && llama_get_logits_ith(ctx, -1)) {
            memcpy(out + (size_t)N_ROWS * n_vocab, llama_get_logits_ith(ctx, -1),
                   sizeof(float) * n_vocab);
            rc = 0;
        }
    }
free_batch:
    llama_batch_free(batch);
out:
    llama_free(ctx);
    return rc;
}

static int argmax(const float *x, int n, float *margin)
{
    int i, best = 0, second = -1;

    for (i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            second = best;
            best = i;
        } else if (second < 0 || x[i] > x[second]) {
            second = i;
        }
    }
    *margin = x[best] - x[second];
    return best;
}

/* Compares the logits of the model at PATH with the pruning on and off; zero_rows:
 * whether most of its vocabulary has zero rows. */
static void compare(const char *path, int want_pruned, int zero_rows)
{
    struct llama_model *on, *off;
    int pruned_on = 0, pruned_off = 0, n_vocab, r, i;
    float *a, *b;

    on = load(path, 1, &pruned_on);
    off = load(path, 0, &pruned_off);
    REQUIRE(on && off);
    CHECK_INT(pruned_on, want_pruned);
    CHECK_INT(pruned_off, 0);
    n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(on));
    a = malloc(sizeof(float) * (size_t)n_vocab * (N_ROWS + 1));
    b = malloc(sizeof(float) * (size_t)n_vocab * (N_ROWS + 1));
    REQUIRE(a && b);
    CHECK_INT(logits_of(on, a), 0);
    CHECK_INT(logits_of(off, b), 0);
    for (r = 0; r <= N_ROWS; r++) {
        const float *x = a + (size_t)r * n_vocab, *y = b + (size_t)r * n_vocab;
        float scale = 0, worst = 0, ma, mb;
        int zeros = 0, zeros_kept = 1, ta, tb;

        for (i = 0; i < n_vocab; i++)
            scale = fmaxf(scale, fabsf(y[i]));
        for (i = 0; i < n_vocab; i++) {
            if (y[i] == 0.0f) {
                zeros++;
                zeros_kept &= x[i] == 0.0f;
            }
            worst = fmaxf(worst, fabsf(x[i] - y[i]));
        }
        CHECK(scale > 0);
        CHECK(zeros_kept); /* a zero row's logit is exactly 0 either way */
        /* The built-in model's unused tokens: most of the vocabulary (70%). */
        if (zero_rows)
            CHECK(zeros > n_vocab / 2);
        CHECK(worst <= 1e-3f * scale); /* the same dot products; rounding at most */
        ta = argmax(x, n_vocab, &ma);
        tb = argmax(y, n_vocab, &mb);
        if (mb > 2e-3f * scale)
            CHECK_INT(ta, tb);
    }
    free(a);
    free(b);
    llama_model_free(on);
    llama_model_free(off);
}

/* Writes the Qwen3 GGUF at src to dst as a Qwen2 model of the same weights: the
 * architecture and its "qwen3." keys renamed, the q/k norms (Qwen3's, which Qwen2
 * has not) left out. Qwen2's graph is another one than Qwen3's, with the same tied
 * output. Returns 0 on success. */
static int write_as_qwen2(const char *src, const char *dst)
{
    struct ggml_context *meta = NULL;
    struct gguf_init_params ip = {.no_alloc = false, .ctx = &meta};
    struct gguf_context *in = gguf_init_from_file(src, ip), *out;
    int rc = -1;

    if (!in)
        return -1;
    out = gguf_init_empty();
    gguf_set_kv(out, in);
    gguf_set_val_str(out, "general.architecture", "qwen2");
    for (int64_t i = 0; i < gguf_get_n_kv(in); i++) {
        const char *key = gguf_get_key(in, i);
        char name[256];

        if (strncmp(key, "qwen3.", 6) != 0)
            continue;
        snprintf(name, sizeof(name), "qwen2.%s", key + 6);
        switch (gguf_get_kv_type(in, i)) {
        case GGUF_TYPE_UINT32:
            gguf_set_val_u32(out, name, gguf_get_val_u32(in, i));
            break;
        case GGUF_TYPE_FLOAT32:
            gguf_set_val_f32(out, name, gguf_get_val_f32(in, i));
            break;
        default:
            goto done; /* the writer (mkgguf) has none other */
        }
        gguf_remove_key(out, key);
    }
    for (int64_t i = 0; i < gguf_get_n_tensors(in); i++) {
        const char *name = gguf_get_tensor_name(in, i);

        if (!strstr(name, "attn_q_norm") && !strstr(name, "attn_k_norm"))
            gguf_add_tensor(out, ggml_get_tensor(meta, name));
    }
    rc = gguf_write_to_file(out, dst, false) ? 0 : -1;
done:
    gguf_free(out);
    gguf_free(in);
    ggml_free(meta);
    return rc;
}

TEST(builtin_model_is_pruned_and_gives_the_same_logits)
{
    compare(builtin_path, 1, 1);
}

TEST(model_without_zero_rows_is_left_alone)
{
    compare(plain_path, 0, 0);
}

TEST(other_architecture_is_left_alone)
{
    char dir[512], path[600];

    snprintf(dir, sizeof(dir), "%s/cdt-prune-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/qwen2.gguf", dir);
    REQUIRE(write_as_qwen2(builtin_path, path) == 0);
    compare(path, 0, 1); /* the same zero rows, not pruned */
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s BUILTIN.gguf NO_ZERO_ROWS.gguf\n", argv[0]);
        return 2;
    }
    builtin_path = argv[1];
    plain_path = argv[2];
    if (cdt_log_new(NULL, &lg) != 0)
        return 1;
    llama_log_set(watch_log, lg);
    cdt_sysinfo_load_backends();
    llama_backend_init();
    RUN(builtin_model_is_pruned_and_gives_the_same_logits);
    RUN(model_without_zero_rows_is_left_alone);
    RUN(other_architecture_is_left_alone);
    llama_backend_free();
    rc = TEST_END();
    llama_log_set(NULL, NULL);
    cdt_log_free(lg);
    return rc;
}
