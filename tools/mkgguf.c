/* mkgguf: writes a random-weight (or, with --embed, a padded trained) GGUF model of the Qwen3
 * architecture that llama.cpp loads, tokenizes with the real Qwen3 tokenizer, chats with through
 * the real Qwen3 chat template, and generates with. No real weights can be downloaded where we
 * test, so tests use a tiny one and benchmarks use the real shapes (whose speed
 * equals the real models').
 *
 * Invariants:
 * - Same arguments → same bytes. All randomness comes from splitmix64 seeded by
 *   (--seed, tensor name, row), so the output does not depend on the number of
 *   threads or on batch sizes; nothing time- or host-dependent is written.
 * - The tokenizer is copied from a vocab-only GGUF (llama.cpp's
 *   models/ggml-vocab-qwen2.gguf) with ids 151643–151668 set to Qwen3's added
 *   tokens, so token ids equal the real Qwen3 tokenizer's.
 * - Tensors are generated, quantized and written one batch of rows at a time: memory
 *   stays at a few tens of MB whatever the preset (8b at q4_k is ~5 GB on disk).
 * - Matrix rows whose ne0 is not a multiple of the chosen type's block (q4_k needs
 *   256; the tiny preset's 64 and 128) fall back to q8_0, as llama-quantize does.
 * - f16 and q8_0 values are all independent. k-quants (q4_k) are ~40x slower to
 *   quantize (13 M values/s/core: a minute for 0.6b, ten for 8b), so for them
 *   ggml_quantize_chunk quantizes a pool of MKGGUF_POOL_BLOCKS random blocks per
 *   input width and each row is a random draw of whole blocks from that pool. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <ggml.h>
#include <gguf.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef CDT_ENGINE_SHARE
#define CDT_ENGINE_SHARE ""
#endif

#define PROG "mkgguf"

#define MKGGUF_N_VOCAB      151936                   /* rows of token_embd / output (Qwen3) */
#define MKGGUF_N_VOCAB_MIN  151643                   /* BPE tokens a vocab file must have */
#define MKGGUF_FIRST_ADDED  151643                   /* <|endoftext|> */
#define MKGGUF_EOS_ID       151645                   /* <|im_end|> */
#define MKGGUF_BOS_ID       151643                   /* <|endoftext|>, also padding */
#define MKGGUF_MAX_TEMPLATE (1u << 20)               /* bytes of chat template accepted */
#define MKGGUF_MAX_CONTEXT  (1u << 24)               /* largest --context, tokens */
#define MKGGUF_MAX_THREADS  64                       /* largest --threads */
#define MKGGUF_BATCH_FLOATS (8u << 20)               /* f32 values generated per batch (32 MB) */
#define MKGGUF_POOL_BITS    14                       /* log2 of MKGGUF_POOL_BLOCKS */
#define MKGGUF_POOL_BLOCKS  (1u << MKGGUF_POOL_BITS) /* quantized blocks per pool */
#define MKGGUF_PER_LAYER    11                       /* tensors in each block */
#define MKGGUF_MAX_POOLS    4                        /* distinct input widths: n_embd, q, ff */
#define MKGGUF_ROPE_BASE    1000000.0f               /* rope.freq_base */
#define MKGGUF_RMS_EPS      1e-6f                    /* attention.layer_norm_rms_epsilon */
#define MKGGUF_NORM_NOISE   0.02f                    /* std of the noise around 1.0 in norms */
#define MKGGUF_QNT_VERSION  2                        /* GGML_QNT_VERSION */

/* llama.h's enum llama_ftype, for general.file_type (kept here so that this tool
 * needs only ggml). */
#define FTYPE_MOSTLY_F16    1
#define FTYPE_MOSTLY_Q8_0   7
#define FTYPE_MOSTLY_Q4_K_S 14

/* gguf-py's TokenType, for tokenizer.ggml.token_type. */
#define TOKTYPE_NORMAL       1
#define TOKTYPE_CONTROL      3
#define TOKTYPE_USER_DEFINED 4
#define TOKTYPE_UNUSED       5

struct preset {
    const char *name;
    int n_layer;
    int n_embd;
    int n_head;
    int n_head_kv;
    int head_dim;
    int n_ff;
    bool tied;      /* no output.weight: the output reuses token_embd */
    uint32_t n_ctx; /* qwen3.context_length, tokens */
};

static const struct preset presets[] = {
    {"tiny", 2, 64, 4, 2, 16, 128, true, 4096},
    /* tiny's shape doubled (and a layer more): for testing --embed */
    {"tiny-wide", 3, 128, 8, 4, 32, 256, true, 4096},
    {"0.6b", 28, 1024, 16, 8, 128, 3072, true, 40960},
    {"1.7b", 28, 2048, 16, 8, 128, 6144, true, 40960},
    {"4b", 36, 2560, 32, 8, 128, 9728, true, 40960},
    {"8b", 36, 4096, 32, 8, 128, 12288, false, 40960},
};

struct wtype {
    const char *name;
    enum ggml_type type;
    uint32_t ftype;
};

static const struct wtype wtypes[] = {
    {"f16", GGML_TYPE_F16, FTYPE_MOSTLY_F16},
    {"q8_0", GGML_TYPE_Q8_0, FTYPE_MOSTLY_Q8_0},
    /* Q4_K everywhere is what llama.cpp calls "mostly Q4_K"; Q4_K_S is the nearest
     * of its file types (Q4_K_M mixes in Q6_K). */
    {"q4_k", GGML_TYPE_Q4_K, FTYPE_MOSTLY_Q4_K_S},
};

/* Qwen3's added tokens (tokenizer_config.json), ids 151643–151668 in order. */
static const char *const added_tokens[] = {
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
};
#define N_ADDED_TOKENS (sizeof added_tokens / sizeof added_tokens[0])

struct opts {
    const struct preset *preset;
    const struct wtype *wtype;
    const char *out;
    const char *vocab;
    const char *template_path;
    uint64_t seed;
    uint32_t n_ctx; /* 0: the preset's */
    int n_threads;  /* 0: online CPUs */
    bool no_partial_utf8;
    const char *embed; /* --embed: a smaller model's weights, or NULL */
};

enum tkind {
    T_MATRIX, /* Gaussian-ish, std 1/sqrt(ne0) */
    T_NORM,   /* 1.0 plus small noise, F32 */
};

struct tspec {
    char name[GGML_MAX_NAME];
    int64_t ne0; /* input dim */
    int64_t ne1; /* output dim (1 for norms) */
    enum ggml_type type;
    enum tkind kind;
    float std;          /* of the random part of the values */
    bool zero_bad_rows; /* the output matrix under --no-partial-utf8 */
};

/* Quantized random blocks that rows of slow-to-quantize types are drawn from. */
struct pool {
    int64_t ne0; /* input width of the tensors it serves (sets the std) */
    enum ggml_type type;
    size_t block_size; /* bytes of one block */
    char *blocks;      /* MKGGUF_POOL_BLOCKS blocks */
    char *zero;        /* one block of zeros */
};

/* ---- deterministic randomness ---- */

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Fills n floats with mean 0 and standard deviation `std`: the sum of four 16-bit
 * uniforms (Irwin–Hall), one splitmix64 draw per value. Bell-shaped and bounded
 * (±3.46 std), which is all random weights need. */
static void fill_gauss(float *dst, int64_t n, uint64_t state, float std)
{
    const float scale = std * 1.7320508f / 65536.0f; /* sqrt(12 / 4) */

    for (int64_t i = 0; i < n; i++) {
        uint64_t z = mix64(state += GOLDEN);
        uint32_t s = (uint32_t)(z & 0xffff) + (uint32_t)((z >> 16) & 0xffff) +
                     (uint32_t)((z >> 32) & 0xffff) + (uint32_t)(z >> 48);

        dst[i] = ((float)s + 2.0f - 131072.0f) * scale;
    }
}

/* ---- UTF-8 and GPT-2 byte-level decoding ---- */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, ≤ U+10FFFF), or 0. `n` bytes are available. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    uint32_t cp;

    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i, &cp);

        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* GPT-2's bytes_to_unicode, inverted: code point (< 512) → byte, or -1. */
static void byte_decoder_init(int16_t dec[512])
{
    int n = 0;

    for (int i = 0; i < 512; i++)
        dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);

        dec[self ? b : 256 + n++] = (int16_t)b;
    }
}

/* Whether a NORMAL BPE token's bytes (its text, byte-level decoded as llama.cpp's
 * token_to_piece does) are complete UTF-8 on their own. Code points outside the
 * byte alphabet are kept as they are, as llama.cpp does. */
static bool token_bytes_complete(const char *text, const int16_t dec[512])
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), m = 0;
    unsigned char buf[1024];
    uint32_t cp;

    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(s + i, n - i, &cp);

        if (k == 0)
            return false;
        if (m + 4 > sizeof buf)
            return true; /* no Qwen token is this long; don't judge */
        if (cp < 512 && dec[cp] >= 0) {
            buf[m++] = (unsigned char)dec[cp];
        } else {
            memcpy(buf + m, s + i, k);
            m += k;
        }
        i += k;
    }
    return utf8_valid(buf, m);
}

/* ---- small helpers ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parses a decimal unsigned integer in [lo, hi]; no sign, no trailing junk. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads a whole text file of at most `cap` bytes; caller frees *out. `what` names
 * the file in messages. */
static int read_text(const char *what, const char *path, size_t cap, char **out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (!f) {
        fprintf(stderr, PROG ": cannot open %s '%s': %s\n", what, path, strerror(errno));
        return -1;
    }
    buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    n = fread(buf, 1, cap + 1, f);
    if (ferror(f)) {
        fprintf(stderr, PROG ": cannot read '%s': %s\n", path, strerror(errno));
        goto fail;
    }
    if (n > cap) {
        fprintf(stderr, PROG ": '%s' is over MKGGUF_MAX_TEMPLATE (%zu bytes)\n", path, cap);
        goto fail;
    }
    if (memchr(buf, 0, n) || !utf8_valid((const unsigned char *)buf, n)) {
        fprintf(stderr, PROG ": '%s' is not UTF-8 text\n", path);
        goto fail;
    }
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    return 0;
fail:
    free(buf);
    fclose(f);
    return -1;
}

/* ---- tokenizer ---- */

struct vocab {
    struct gguf_context *src; /* the vocab GGUF, metadata only */
    const char **tokens;      /* MKGGUF_N_VOCAB; borrowed from src or pad_text */
    int32_t *types;           /* MKGGUF_N_VOCAB */
    char *pad_text;           /* storage for "[PAD<id>]" strings */
    uint8_t *partial;         /* MKGGUF_N_VOCAB; 1 = bytes not complete UTF-8 */
    int n_partial;
};

static void vocab_cleanup(struct vocab *v)
{
    free(v->tokens);
    free(v->types);
    free(v->pad_text);
    free(v->partial);
    if (v->src)
        gguf_free(v->src);
    memset(v, 0, sizeof *v);
}

static int64_t find_arr(const struct gguf_context *g, const char *key, enum gguf_type type)
{
    int64_t id = gguf_find_key(g, key);

    if (id < 0 || gguf_get_kv_type(g, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g, id) != type)
        return -1;
    return id;
}

static int vocab_load(struct vocab *v, const char *path)
{
    struct gguf_init_params ip = {.no_alloc = true, .ctx = NULL};
    int16_t dec[512];
    int64_t kt, ktt, km;
    size_t n;
    const int32_t *src_types;
    char *p;
    FILE *f;

    memset(v, 0, sizeof *v);
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, PROG ": cannot open vocab '%s': %s (see --vocab)\n", path, strerror(errno));
        return -1;
    }
    v->src = gguf_init_from_file_ptr(f, ip);
    fclose(f);
    if (!v->src) {
        fprintf(stderr, PROG ": '%s' is not a GGUF file\n", path);
        return -1;
    }
    km = gguf_find_key(v->src, "tokenizer.ggml.model");
    kt = find_arr(v->src, "tokenizer.ggml.tokens", GGUF_TYPE_STRING);
    ktt = find_arr(v->src, "tokenizer.ggml.token_type", GGUF_TYPE_INT32);
    if (km < 0 || gguf_get_kv_type(v->src, km) != GGUF_TYPE_STRING ||
        strcmp(gguf_get_val_str(v->src, km), "gpt2") != 0 || kt < 0 || ktt < 0) {
        fprintf(stderr,
                PROG ": '%s' has no GPT-2 BPE tokenizer (want llama.cpp's "
                     "models/ggml-vocab-qwen2.gguf)\n",
                path);
        return -1;
    }
    n = gguf_get_arr_n(v->src, kt);
    if (n < MKGGUF_N_VOCAB_MIN || n > MKGGUF_N_VOCAB || gguf_get_arr_n(v->src, ktt) != n) {
        fprintf(stderr, PROG ": '%s' has %zu tokens; a Qwen vocab has %d to %d\n", path, n,
                MKGGUF_N_VOCAB_MIN, MKGGUF_N_VOCAB);
        return -1;
    }

    v->tokens = calloc(MKGGUF_N_VOCAB, sizeof *v->tokens);
    v->types = calloc(MKGGUF_N_VOCAB, sizeof *v->types);
    v->partial = calloc(MKGGUF_N_VOCAB, 1);
    /* "[PAD151935]" is 11 bytes + NUL. */
    v->pad_text = malloc((size_t)MKGGUF_N_VOCAB * 12);
    if (!v->tokens || !v->types || !v->partial || !v->pad_text) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    src_types = gguf_get_arr_data(v->src, ktt);
    p = v->pad_text;
    for (size_t i = 0; i < MKGGUF_N_VOCAB; i++) {
        if (i >= MKGGUF_FIRST_ADDED && i < MKGGUF_FIRST_ADDED + N_ADDED_TOKENS) {
            const char *t = added_tokens[i - MKGGUF_FIRST_ADDED];
            size_t len = strlen(t);

            /* As convert_hf_to_gguf does: added tokens that are special or look
             * special (<|...|>) are CONTROL, the tag-like ones USER_DEFINED. */
            v->tokens[i] = t;
            v->types[i] = (len > 4 && strncmp(t, "<|", 2) == 0 && strcmp(t + len - 2, "|>") == 0)
                              ? TOKTYPE_CONTROL
                              : TOKTYPE_USER_DEFINED;
        } else if (i >= MKGGUF_FIRST_ADDED) {
            /* Ids past the tokenizer, up to the matrices' 151936 rows. The
             * converter of this llama.cpp marks them UNUSED (older files, the
             * bundled vocab among them, say USER_DEFINED, which makes the
             * tokenizer match "[PAD…]" in prompt text as a special token). */
            int k = snprintf(p, 12, "[PAD%zu]", i);

            v->tokens[i] = p;
            v->types[i] = TOKTYPE_UNUSED;
            p += k + 1;
        } else {
            v->tokens[i] = gguf_get_arr_str(v->src, kt, i);
            v->types[i] = src_types[i];
            /* llama.cpp treats "</s>" as an end-of-generation token in any vocabulary
             * and overrides its type to CONTROL, with a warning at every load
             * ("control-looking token ... was not control-type"). Writing the type it
             * expects keeps test logs free of warnings that mean nothing. */
            if (strcmp(v->tokens[i], "</s>") == 0)
                v->types[i] = TOKTYPE_CONTROL;
        }
    }

    byte_decoder_init(dec);
    for (size_t i = 0; i < MKGGUF_N_VOCAB; i++) {
        bool complete = v->types[i] == TOKTYPE_NORMAL
                            ? token_bytes_complete(v->tokens[i], dec)
                            : utf8_valid((const unsigned char *)v->tokens[i], strlen(v->tokens[i]));

        if (!complete) {
            v->partial[i] = 1;
            v->n_partial++;
        }
    }
    return 0;
}

/* Copies one KV pair of any non-nested type from src to dst. */
static int copy_kv(struct gguf_context *dst, const struct gguf_context *src, int64_t id)
{
    const char *key = gguf_get_key(src, id);
    enum gguf_type t = gguf_get_kv_type(src, id);

    switch (t) {
    case GGUF_TYPE_UINT8:
        gguf_set_val_u8(dst, key, gguf_get_val_u8(src, id));
        break;
    case GGUF_TYPE_INT8:
        gguf_set_val_i8(dst, key, gguf_get_val_i8(src, id));
        break;
    case GGUF_TYPE_UINT16:
        gguf_set_val_u16(dst, key, gguf_get_val_u16(src, id));
        break;
    case GGUF_TYPE_INT16:
        gguf_set_val_i16(dst, key, gguf_get_val_i16(src, id));
        break;
    case GGUF_TYPE_UINT32:
        gguf_set_val_u32(dst, key, gguf_get_val_u32(src, id));
        break;
    case GGUF_TYPE_INT32:
        gguf_set_val_i32(dst, key, gguf_get_val_i32(src, id));
        break;
    case GGUF_TYPE_FLOAT32:
        gguf_set_val_f32(dst, key, gguf_get_val_f32(src, id));
        break;
    case GGUF_TYPE_BOOL:
        gguf_set_val_bool(dst, key, gguf_get_val_bool(src, id));
        break;
    case GGUF_TYPE_STRING:
        gguf_set_val_str(dst, key, gguf_get_val_str(src, id));
        break;
    case GGUF_TYPE_UINT64:
        gguf_set_val_u64(dst, key, gguf_get_val_u64(src, id));
        break;
    case GGUF_TYPE_INT64:
        gguf_set_val_i64(dst, key, gguf_get_val_i64(src, id));
        break;
    case GGUF_TYPE_FLOAT64:
        gguf_set_val_f64(dst, key, gguf_get_val_f64(src, id));
        break;
    case GGUF_TYPE_ARRAY: {
        enum gguf_type at = gguf_get_arr_type(src, id);
        size_t n = gguf_get_arr_n(src, id);

        if (at == GGUF_TYPE_STRING) {
            const char **strs = malloc((n ? n : 1) * sizeof *strs);

            if (!strs) {
                fprintf(stderr, PROG ": out of memory\n");
                return -1;
            }
            for (size_t i = 0; i < n; i++)
                strs[i] = gguf_get_arr_str(src, id, i);
            gguf_set_arr_str(dst, key, strs, n);
            free(strs);
        } else if (at != GGUF_TYPE_ARRAY) {
            gguf_set_arr_data(dst, key, at, gguf_get_arr_data(src, id), n);
        } else {
            fprintf(stderr, PROG ": vocab key '%s' is a nested array\n", key);
            return -1;
        }
        break;
    }
    default:
        fprintf(stderr, PROG ": vocab key '%s' has unknown type %d\n", key, (int)t);
        return -1;
    }
    return 0;
}

/* ---- --embed: a smaller Qwen3 model's weights in a larger shape ----
 *
 * The source's weights sit inside the preset's shape and everything else is zero,
 * so the file computes the source's function (up to float rounding) at the cost
 * of the real shape: benchmarks get a model that really copies (the built-in
 * refiner) with the speed of Qwen3 0.6B/1.7B. Per tensor:
 * - hidden width E_s of E: rows padded with zeros; the residual stream's extra
 *   dimensions stay zero because every matrix writing it has zero rows there.
 *   RMSNorm divides by the root mean square over all E dimensions, sqrt(E_s/E)
 *   times the source's, so hidden norm weights are scaled by sqrt(E_s/E).
 * - head size D_s of D (D a multiple r of D_s): rope is NEOX (pairs d, d + D/2),
 *   and pair i of the source turns at base^(-2i/D_s) = base^(-2(ri)/D), so source
 *   pair i goes to target pair r*i and the other pairs stay zero. Q's norm weight
 *   is kept as is (its sqrt(D_s/D) and the attention scale's sqrt(D/D_s) cancel);
 *   K's is scaled by sqrt(D_s/D). V and the attention output are not rotated:
 *   dimension d stays d.
 * - heads: source query head h (of g_s per KV head) goes to target head
 *   (h / g_s) * c * g + h % g_s, where g is the target's queries per KV head and
 *   c = ceil(g_s / g) target KV heads hold copies of each source KV head.
 * - FFN width F_s of F: gate/up rows and down columns beyond F_s are zero.
 * - layers beyond the source's: all matrices zero (the layer adds nothing).
 * q8_0 blocks (32) hold only source values or only zeros, so a q8_0 source
 * re-quantizes to the same bytes. */

enum erole {
    E_ZERO,   /* all zero */
    E_ONES,   /* a norm of a layer the source does not have */
    E_ROWS,   /* row i = source row i, padded; rows past the source's are zero */
    E_HNORM,  /* hidden-width norm: scaled by sqrt(E_s / E) */
    E_Q,      /* attn_q */
    E_K,      /* attn_k */
    E_V,      /* attn_v */
    E_O,      /* attn_output */
    E_QKNORM, /* attn_q_norm / attn_k_norm (scale in emap.scale) */
};

struct source {
    struct gguf_context *g;
    struct ggml_context *ctx; /* the tensors, with their data */
    struct preset shape;      /* the source's own, from its metadata */
    float rope_base, eps;
    int kv_copies; /* c: target KV heads per source KV head */
};

/* How one target tensor is made from the source (the embed job's input). */
struct emap {
    enum erole role;
    const float *src; /* the source tensor as f32, row-major, or NULL */
    int64_t src_ne0, src_ne1;
    float scale;
};

static int src_u32(const struct source *s, const char *key, int *out)
{
    int64_t id = gguf_find_key(s->g, key);

    if (id < 0 || gguf_get_kv_type(s->g, id) != GGUF_TYPE_UINT32) {
        fprintf(stderr, PROG ": --embed: the model has no %s\n", key);
        return -1;
    }
    *out = (int)gguf_get_val_u32(s->g, id);
    return 0;
}

static float src_f32(const struct source *s, const char *key, float dflt)
{
    int64_t id = gguf_find_key(s->g, key);

    if (id < 0 || gguf_get_kv_type(s->g, id) != GGUF_TYPE_FLOAT32)
        return dflt;
    return gguf_get_val_f32(s->g, id);
}

static void source_free(struct source *s)
{
    if (s->ctx)
        ggml_free(s->ctx);
    if (s->g)
        gguf_free(s->g);
    memset(s, 0, sizeof *s);
}

static int plan_tensors(const struct opts *o, struct tspec *t);

/* Every tensor the source's shape needs is there, 2-D at most, with that shape: the
 * rows embed_row copies then always fit (a file that lies is refused, not read past). */
static int source_check_tensors(const struct source *s, const struct opts *o, const char *path)
{
    struct opts so = *o;
    struct tspec *t = calloc((size_t)(3 + MKGGUF_PER_LAYER * s->shape.n_layer), sizeof *t);
    int n, rc = 0;

    if (!t) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    so.preset = &s->shape;
    n = plan_tensors(&so, t);
    for (int i = 0; i < n && rc == 0; i++) {
        struct ggml_tensor *x = ggml_get_tensor(s->ctx, t[i].name);

        if (!x || x->ne[0] != t[i].ne0 || x->ne[1] != t[i].ne1 || x->ne[2] != 1 || x->ne[3] != 1) {
            fprintf(stderr,
                    PROG ": --embed: '%s' has no tensor %s of %" PRId64 " x %" PRId64
                         " (what its metadata says)\n",
                    path, t[i].name, t[i].ne0, t[i].ne1);
            rc = -1;
        }
    }
    free(t);
    return rc;
}

/* Loads the source model and checks that it fits inside o's preset. */
static int source_load(struct source *s, const char *path, const struct opts *o)
{
    const struct preset *p = o->preset;
    struct gguf_init_params ip = {.no_alloc = false, .ctx = &s->ctx};
    int64_t id;
    int g_s, g;

    memset(s, 0, sizeof *s);
    s->g = gguf_init_from_file(path, ip);
    if (!s->g) {
        fprintf(stderr, PROG ": --embed: cannot read '%s' as a GGUF model\n", path);
        return -1;
    }
    id = gguf_find_key(s->g, "general.architecture");
    if (id < 0 || gguf_get_kv_type(s->g, id) != GGUF_TYPE_STRING ||
        strcmp(gguf_get_val_str(s->g, id), "qwen3") != 0) {
        fprintf(stderr, PROG ": --embed: '%s' is not a qwen3 model\n", path);
        return -1;
    }
    if (src_u32(s, "qwen3.block_count", &s->shape.n_layer) != 0 ||
        src_u32(s, "qwen3.embedding_length", &s->shape.n_embd) != 0 ||
        src_u32(s, "qwen3.feed_forward_length", &s->shape.n_ff) != 0 ||
        src_u32(s, "qwen3.attention.head_count", &s->shape.n_head) != 0 ||
        src_u32(s, "qwen3.attention.head_count_kv", &s->shape.n_head_kv) != 0)
        return -1;
    s->shape.head_dim = s->shape.n_head > 0 ? s->shape.n_embd / s->shape.n_head : 0;
    if (gguf_find_key(s->g, "qwen3.attention.key_length") >= 0 &&
        src_u32(s, "qwen3.attention.key_length", &s->shape.head_dim) != 0)
        return -1;
    s->rope_base = src_f32(s, "qwen3.rope.freq_base", MKGGUF_ROPE_BASE);
    s->eps = src_f32(s, "qwen3.attention.layer_norm_rms_epsilon", MKGGUF_RMS_EPS);
    if (s->shape.n_layer < 1 || s->shape.n_embd < 1 || s->shape.n_ff < 1 || s->shape.n_head < 1 ||
        s->shape.n_head_kv < 1 || s->shape.head_dim < 2 || s->shape.head_dim % 2 ||
        s->shape.n_head % s->shape.n_head_kv) {
        fprintf(stderr, PROG ": --embed: '%s' has an impossible shape\n", path);
        return -1;
    }
    g_s = s->shape.n_head / s->shape.n_head_kv;
    g = p->n_head / p->n_head_kv;
    s->kv_copies = (g_s + g - 1) / g;
    if (s->shape.n_layer > p->n_layer || s->shape.n_embd > p->n_embd || s->shape.n_ff > p->n_ff ||
        p->head_dim % s->shape.head_dim || s->shape.n_head_kv * s->kv_copies > p->n_head_kv) {
        fprintf(stderr,
                PROG ": --embed: the source (%d layers, width %d, FFN %d, %d heads of %d, "
                     "%d KV heads) does not fit in preset %s\n",
                s->shape.n_layer, s->shape.n_embd, s->shape.n_ff, s->shape.n_head,
                s->shape.head_dim, s->shape.n_head_kv, p->name);
        return -1;
    }
    s->shape.name = "source";
    s->shape.tied = gguf_find_tensor(s->g, "output.weight") < 0;
    if (!s->shape.tied && p->tied) {
        fprintf(stderr,
                PROG ": --embed: the source has its own output matrix; preset %s ties "
                     "it to the embeddings\n",
                p->name);
        return -1;
    }
    return source_check_tensors(s, o, path);
}

/* The source tensor `name` (there: source_check_tensors) as f32 (malloc'ed), or NULL
 * with a message. */
static float *source_f32(const struct source *s, const char *name, int64_t *ne0, int64_t *ne1)
{
    struct ggml_tensor *t = ggml_get_tensor(s->ctx, name);
    const struct ggml_type_traits *tr;
    float *out;
    size_t n;

    tr = ggml_get_type_traits(t->type);
    if (t->type != GGML_TYPE_F32 && !tr->to_float) {
        fprintf(stderr, PROG ": --embed: %s is of type %s, which cannot be read\n", name,
                ggml_type_name(t->type));
        return NULL;
    }
    n = (size_t)ggml_nelements(t);
    out = malloc(n * sizeof *out);
    if (!out) {
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    if (t->type == GGML_TYPE_F32)
        memcpy(out, t->data, n * sizeof *out);
    else
        tr->to_float(t->data, out, (int64_t)n);
    *ne0 = t->ne[0];
    *ne1 = t->ne[1];
    return out;
}

/* Target dimension of source dimension d_s within a rotated head, or target d's
 * source dimension (-1: none) with inverse set. */
static int64_t rope_dim(int64_t d, int64_t d_src, int64_t d_dst, bool inverse)
{
    const int64_t r = d_dst / d_src, half_s = d_src / 2, half = d_dst / 2;

    if (!inverse)
        return (d / half_s) * half + (d % half_s) * r;
    if ((d % half) % r)
        return -1;
    return (d / half) * half_s + (d % half) / r;
}

/* Source query head of target query head h, or -1. */
static int64_t q_head_src(const struct source *s, const struct preset *p, int64_t h)
{
    const int64_t g_s = s->shape.n_head / s->shape.n_head_kv, g = p->n_head / p->n_head_kv;
    const int64_t block = (int64_t)s->kv_copies * g, k = h / block, off = h % block;

    return k < s->shape.n_head_kv && off < g_s ? k * g_s + off : -1;
}

static int64_t q_head_dst(const struct source *s, const struct preset *p, int64_t h_s)
{
    const int64_t g_s = s->shape.n_head / s->shape.n_head_kv, g = p->n_head / p->n_head_kv;

    return (h_s / g_s) * s->kv_copies * g + h_s % g_s;
}

/* Fills target row `row` (ne0 values, zeroed first) of a tensor mapped by m. */
static void embed_row(const struct source *s, const struct preset *p, const struct emap *m,
                      int64_t row, int64_t ne0, float *x)
{
    const int64_t D = p->head_dim, D_s = s->shape.head_dim;
    const float *src = m->src;
    int64_t r_s = -1;

    memset(x, 0, (size_t)ne0 * sizeof *x);
    switch (m->role) {
    case E_ZERO:
        return;
    case E_ONES:
        for (int64_t i = 0; i < ne0; i++)
            x[i] = 1.0f;
        return;
    case E_HNORM:
        for (int64_t i = 0; i < m->src_ne0; i++)
            x[i] = src[i] * m->scale;
        return;
    case E_QKNORM:
        for (int64_t d = 0; d < D_s; d++)
            x[rope_dim(d, D_s, D, false)] = src[d] * m->scale;
        return;
    case E_ROWS:
        r_s = row < m->src_ne1 ? row : -1;
        break;
    case E_Q: {
        int64_t h_s = q_head_src(s, p, row / D), d_s = rope_dim(row % D, D_s, D, true);

        r_s = h_s >= 0 && d_s >= 0 ? h_s * D_s + d_s : -1;
        break;
    }
    case E_K:
    case E_V: {
        int64_t j = row / D, d = row % D;
        int64_t kv_s = j < (int64_t)s->shape.n_head_kv * s->kv_copies ? j / s->kv_copies : -1;
        int64_t d_s = m->role == E_K ? rope_dim(d, D_s, D, true) : (d < D_s ? d : -1);

        r_s = kv_s >= 0 && d_s >= 0 ? kv_s * D_s + d_s : -1;
        break;
    }
    case E_O:
        if (row >= m->src_ne1)
            return;
        for (int64_t h_s = 0; h_s < s->shape.n_head; h_s++) {
            const float *in = src + row * m->src_ne0 + h_s * D_s;

            memcpy(x + q_head_dst(s, p, h_s) * D, in, (size_t)D_s * sizeof *x);
        }
        return;
    }
    if (r_s >= 0)
        memcpy(x, src + r_s * m->src_ne0, (size_t)m->src_ne0 * sizeof *x);
}

/* Sets m for target tensor `name` (src malloc'ed or NULL); returns 0 or -1. */
static int embed_plan(const struct source *s, const struct preset *p, const char *name,
                      struct emap *m)
{
    static const struct {
        const char *suffix;
        enum erole role;
    } roles[] = {
        {"attn_norm.weight", E_HNORM},    {"ffn_norm.weight", E_HNORM},
        {"attn_q.weight", E_Q},           {"attn_k.weight", E_K},
        {"attn_v.weight", E_V},           {"attn_output.weight", E_O},
        {"attn_q_norm.weight", E_QKNORM}, {"attn_k_norm.weight", E_QKNORM},
        {"ffn_gate.weight", E_ROWS},      {"ffn_up.weight", E_ROWS},
        {"ffn_down.weight", E_ROWS},
    };
    const char *src_name = name, *dot;
    int layer = -1;

    memset(m, 0, sizeof *m);
    m->scale = 1.0f;
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0) {
        m->role = E_ROWS;
        if (gguf_find_tensor(s->g, name) < 0)
            src_name = "token_embd.weight"; /* an untied target of a tied source */
    } else if (strcmp(name, "output_norm.weight") == 0) {
        m->role = E_HNORM;
    } else if (sscanf(name, "blk.%d.", &layer) == 1 && (dot = strchr(name + 4, '.')) != NULL) {
        bool norm = strstr(name, "norm") != NULL;

        if (layer >= s->shape.n_layer) {
            m->role = norm ? E_ONES : E_ZERO;
            return 0;
        }
        for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
            if (strcmp(dot + 1, roles[i].suffix) == 0)
                m->role = roles[i].role;
        }
    } else {
        fprintf(stderr, PROG ": --embed: no rule for tensor %s\n", name);
        return -1;
    }
    if (m->role == E_HNORM)
        m->scale = sqrtf((float)s->shape.n_embd / (float)p->n_embd);
    if (m->role == E_QKNORM && strstr(name, "attn_k_norm"))
        m->scale = sqrtf((float)s->shape.head_dim / (float)p->head_dim);
    m->src = source_f32(s, src_name, &m->src_ne0, &m->src_ne1);
    return m->src ? 0 : -1;
}

/* ---- metadata ---- */

static int set_metadata(struct gguf_context *g, const struct opts *o, const struct vocab *v,
                        const char *tmpl, const struct source *src)
{
    const struct preset *p = o->preset;
    char name[64];
    int64_t n_kv = gguf_get_n_kv(v->src);

    snprintf(name, sizeof name, "codictate-%s-qwen3-%s", src ? "embedded" : "random", p->name);
    gguf_set_val_str(g, "general.architecture", "qwen3");
    gguf_set_val_str(g, "general.type", "model");
    gguf_set_val_str(g, "general.name", name);
    gguf_set_val_u32(g, "qwen3.block_count", (uint32_t)p->n_layer);
    gguf_set_val_u32(g, "qwen3.context_length", o->n_ctx ? o->n_ctx : p->n_ctx);
    gguf_set_val_u32(g, "qwen3.embedding_length", (uint32_t)p->n_embd);
    gguf_set_val_u32(g, "qwen3.feed_forward_length", (uint32_t)p->n_ff);
    gguf_set_val_u32(g, "qwen3.attention.head_count", (uint32_t)p->n_head);
    gguf_set_val_u32(g, "qwen3.attention.head_count_kv", (uint32_t)p->n_head_kv);
    gguf_set_val_f32(g, "qwen3.rope.freq_base", src ? src->rope_base : MKGGUF_ROPE_BASE);
    gguf_set_val_f32(g, "qwen3.attention.layer_norm_rms_epsilon", src ? src->eps : MKGGUF_RMS_EPS);
    /* Needed: without them llama.cpp takes n_embd / n_head (64 for 0.6b, not 128). */
    gguf_set_val_u32(g, "qwen3.attention.key_length", (uint32_t)p->head_dim);
    gguf_set_val_u32(g, "qwen3.attention.value_length", (uint32_t)p->head_dim);
    gguf_set_val_u32(g, "general.file_type", o->wtype->ftype);
    gguf_set_val_u32(g, "general.quantization_version", MKGGUF_QNT_VERSION);

    if (src) {
        /* The source's own tokenizer and template, as it was trained with them. */
        for (int64_t id = 0; id < gguf_get_n_kv(src->g); id++) {
            if (strncmp(gguf_get_key(src->g, id), "tokenizer.", 10) == 0 &&
                copy_kv(g, src->g, id) != 0)
                return -1;
        }
        if (gguf_find_key(src->g, "tokenizer.chat_template") < 0)
            gguf_set_val_str(g, "tokenizer.chat_template", tmpl);
        return 0;
    }
    for (int64_t id = 0; id < n_kv; id++) {
        const char *key = gguf_get_key(v->src, id);

        if (strncmp(key, "tokenizer.", 10) != 0)
            continue;
        if (strcmp(key, "tokenizer.ggml.tokens") == 0) {
            gguf_set_arr_str(g, key, v->tokens, MKGGUF_N_VOCAB);
        } else if (strcmp(key, "tokenizer.ggml.token_type") == 0) {
            gguf_set_arr_data(g, key, GGUF_TYPE_INT32, v->types, MKGGUF_N_VOCAB);
        } else if (strcmp(key, "tokenizer.ggml.eos_token_id") == 0 ||
                   strcmp(key, "tokenizer.ggml.bos_token_id") == 0 ||
                   strcmp(key, "tokenizer.ggml.padding_token_id") == 0 ||
                   strcmp(key, "tokenizer.ggml.add_bos_token") == 0 ||
                   strcmp(key, "tokenizer.ggml.add_eos_token") == 0 ||
                   strcmp(key, "tokenizer.chat_template") == 0) {
            continue; /* set below, as Qwen3 has them */
        } else if (copy_kv(g, v->src, id) != 0) {
            return -1;
        }
    }
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", MKGGUF_EOS_ID);
    gguf_set_val_u32(g, "tokenizer.ggml.padding_token_id", MKGGUF_BOS_ID);
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", MKGGUF_BOS_ID);
    gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", false);
    gguf_set_val_str(g, "tokenizer.chat_template", tmpl);
    return 0;
}

/* ---- tensors ---- */

static enum ggml_type matrix_type(enum ggml_type want, int64_t ne0)
{
    if (ne0 % ggml_blck_size(want) == 0)
        return want;
    if (ne0 % ggml_blck_size(GGML_TYPE_Q8_0) == 0)
        return GGML_TYPE_Q8_0;
    return GGML_TYPE_F16;
}

static void add_spec(struct tspec *t, int *n, const char *name, int64_t ne0, int64_t ne1,
                     enum tkind kind, enum ggml_type want, bool zero_bad_rows)
{
    struct tspec *s = &t[(*n)++];

    snprintf(s->name, sizeof s->name, "%s", name);
    s->ne0 = ne0;
    s->ne1 = ne1;
    s->kind = kind;
    s->type = kind == T_NORM ? GGML_TYPE_F32 : matrix_type(want, ne0);
    s->std = kind == T_NORM ? MKGGUF_NORM_NOISE : 1.0f / sqrtf((float)ne0);
    s->zero_bad_rows = zero_bad_rows;
}

/* Lists the model's tensors in file order; returns how many. */
static int plan_tensors(const struct opts *o, struct tspec *t)
{
    const struct preset *p = o->preset;
    const enum ggml_type w = o->wtype->type;
    const int64_t e = p->n_embd, q = (int64_t)p->n_head * p->head_dim;
    const int64_t kv = (int64_t)p->n_head_kv * p->head_dim, ff = p->n_ff;
    const bool zero = o->no_partial_utf8;
    char nm[GGML_MAX_NAME];
    int n = 0;

    const struct {
        const char *name;
        int64_t ne0, ne1;
        enum tkind kind;
    } layer[] = {
        {"attn_norm", e, 1, T_NORM},
        {"attn_q", e, q, T_MATRIX},
        {"attn_k", e, kv, T_MATRIX},
        {"attn_v", e, kv, T_MATRIX},
        {"attn_output", q, e, T_MATRIX},
        {"attn_q_norm", p->head_dim, 1, T_NORM},
        {"attn_k_norm", p->head_dim, 1, T_NORM},
        {"ffn_norm", e, 1, T_NORM},
        {"ffn_gate", e, ff, T_MATRIX},
        {"ffn_up", e, ff, T_MATRIX},
        {"ffn_down", ff, e, T_MATRIX},
    };

    _Static_assert(sizeof layer / sizeof layer[0] == MKGGUF_PER_LAYER, "layer table");

    add_spec(t, &n, "token_embd.weight", e, MKGGUF_N_VOCAB, T_MATRIX, w, zero && p->tied);
    for (int l = 0; l < p->n_layer; l++) {
        for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, layer[i].name);
            add_spec(t, &n, nm, layer[i].ne0, layer[i].ne1, layer[i].kind, w, false);
        }
    }
    add_spec(t, &n, "output_norm.weight", e, 1, T_NORM, w, false);
    if (!p->tied)
        add_spec(t, &n, "output.weight", e, MKGGUF_N_VOCAB, T_MATRIX, w, zero);
    return n;
}

/* One thread's share of a batch: rows [row0, row0 + nrows) of a tensor, in the
 * tensor's type, into dst. Generated as f32 and converted with
 * ggml_quantize_chunk, or, with a pool, drawn block by block from it. */
struct job {
    const struct tspec *t;
    const struct pool *pool; /* or NULL */
    uint64_t tseed;
    const uint8_t *partial; /* rows to zero, or NULL */
    int64_t row0;
    int64_t nrows;
    float *f32;               /* nrows * ne0 */
    char *dst;                /* nrows * row size */
    const struct source *src; /* --embed: rows come from em instead of noise */
    const struct preset *preset;
    const struct emap *em;
};

static void job_from_pool(const struct job *j)
{
    const struct pool *p = j->pool;
    const int64_t nb = j->t->ne0 / ggml_blck_size(j->t->type);
    const size_t bs = p->block_size;

    for (int64_t r = 0; r < j->nrows; r++) {
        int64_t row = j->row0 + r;
        char *out = j->dst + (size_t)r * (size_t)nb * bs;
        uint64_t state = mix64(j->tseed + (uint64_t)row * GOLDEN);
        bool zero = j->partial && j->partial[row];

        for (int64_t b = 0; b < nb; b++) {
            uint64_t idx = mix64(state += GOLDEN) >> (64 - MKGGUF_POOL_BITS);

            memcpy(out + (size_t)b * bs, zero ? p->zero : p->blocks + idx * bs, bs);
        }
    }
}

static void *job_run(void *arg)
{
    struct job *j = arg;
    const struct tspec *t = j->t;

    if (j->pool) {
        job_from_pool(j);
        return NULL;
    }
    for (int64_t r = 0; r < j->nrows; r++) {
        int64_t row = j->row0 + r;
        float *x = j->f32 + r * t->ne0;
        uint64_t state = mix64(j->tseed + (uint64_t)row * GOLDEN);

        if (j->em) {
            embed_row(j->src, j->preset, j->em, row, t->ne0, x);
            continue;
        }
        if (j->partial && j->partial[row]) {
            memset(x, 0, (size_t)t->ne0 * sizeof *x);
            continue;
        }
        fill_gauss(x, t->ne0, state, t->std);
        if (t->kind == T_NORM) {
            for (int64_t i = 0; i < t->ne0; i++)
                x[i] += 1.0f;
        }
    }
    ggml_quantize_chunk(t->type, j->f32, j->dst, 0, j->nrows, t->ne0, NULL);
    return NULL;
}

struct writer {
    FILE *f;
    const char *path;
    int n_threads;
    float *f32;   /* MKGGUF_BATCH_FLOATS or one row, whichever is larger */
    char *dst;    /* as many bytes as f32 has */
    size_t n_f32; /* floats in f32 */
    uint64_t seed;
    const uint8_t *partial;
    struct pool pools[MKGGUF_MAX_POOLS];
    int n_pools;
    const struct source *src; /* --embed, or NULL */
    const struct preset *preset;
    struct emap em; /* the tensor being written, with src */
};

static int write_bytes(struct writer *w, const void *buf, size_t n)
{
    if (n && fwrite(buf, 1, n, w->f) != n) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", w->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Produces all rows of t, a batch at a time, each batch split over the threads;
 * batches go to the file, or to mem when it is not NULL. Returns bytes made, or
 * 0 on a write error. */
static size_t make_tensor(struct writer *w, const struct tspec *t, const struct pool *pool,
                          char *mem)
{
    const size_t row_size = ggml_row_size(t->type, t->ne0);
    const int64_t batch_rows = (int64_t)(w->n_f32 / (size_t)t->ne0);
    const uint64_t tseed = mix64(w->seed ^ fnv1a(t->name));
    struct job jobs[MKGGUF_MAX_THREADS];
    pthread_t tids[MKGGUF_MAX_THREADS];
    size_t total = 0;

    for (int64_t row0 = 0; row0 < t->ne1; row0 += batch_rows) {
        int64_t nrows = t->ne1 - row0 < batch_rows ? t->ne1 - row0 : batch_rows;
        int64_t per = (nrows + w->n_threads - 1) / w->n_threads;
        int n_jobs = 0;

        for (int64_t r = 0; r < nrows; r += per) {
            struct job *j = &jobs[n_jobs++];

            j->t = t;
            j->pool = pool;
            j->tseed = tseed;
            j->partial = t->zero_bad_rows ? w->partial : NULL;
            j->row0 = row0 + r;
            j->nrows = nrows - r < per ? nrows - r : per;
            j->f32 = w->f32 + r * t->ne0;
            j->dst = w->dst + (size_t)r * row_size;
            j->src = w->src;
            j->preset = w->preset;
            j->em = w->src ? &w->em : NULL;
        }
        /* Rows never depend on who computes them, so a thread that cannot be
         * started is simply run here. */
        for (int i = 1; i < n_jobs; i++) {
            if (pthread_create(&tids[i], NULL, job_run, &jobs[i]) != 0) {
                job_run(&jobs[i]);
                jobs[i].t = NULL;
            }
        }
        job_run(&jobs[0]);
        for (int i = 1; i < n_jobs; i++) {
            if (jobs[i].t)
                pthread_join(tids[i], NULL);
        }
        if (mem)
            memcpy(mem + total, w->dst, (size_t)nrows * row_size);
        else if (write_bytes(w, w->dst, (size_t)nrows * row_size) != 0)
            return 0;
        total += (size_t)nrows * row_size;
    }
    return total;
}

/* Sets *out to the pool for t's input width, made on first use, or to NULL when t
 * is quantized directly (quick types, norms). Returns 0, or -1 out of memory. */
static int get_pool(struct writer *w, const struct tspec *t, const struct pool **out)
{
    const int64_t blck = ggml_blck_size(t->type);
    struct pool *p;
    struct tspec ps;
    float zeros[256] = {0};

    *out = NULL;
    if (t->kind != T_MATRIX || blck < 256)
        return 0;
    for (int i = 0; i < w->n_pools; i++) {
        if (w->pools[i].ne0 == t->ne0 && w->pools[i].type == t->type) {
            *out = &w->pools[i];
            return 0;
        }
    }
    if (w->n_pools == MKGGUF_MAX_POOLS || blck > 256)
        return 0; /* not reached with these presets: quantize directly */
    p = &w->pools[w->n_pools];
    p->ne0 = t->ne0;
    p->type = t->type;
    p->block_size = ggml_row_size(t->type, blck);
    p->blocks = malloc(MKGGUF_POOL_BLOCKS * p->block_size);
    p->zero = malloc(p->block_size);
    if (!p->blocks || !p->zero) {
        free(p->blocks);
        free(p->zero);
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    /* One block a row: the pool is a MKGGUF_POOL_BLOCKS x blck tensor of its own,
     * named after the width so that its values depend only on --seed and it. */
    memset(&ps, 0, sizeof ps);
    snprintf(ps.name, sizeof ps.name, "pool.%" PRId64, t->ne0);
    ps.ne0 = blck;
    ps.ne1 = MKGGUF_POOL_BLOCKS;
    ps.type = t->type;
    ps.kind = T_MATRIX;
    ps.std = t->std;
    make_tensor(w, &ps, NULL, p->blocks);
    ggml_quantize_chunk(t->type, zeros, p->zero, 0, 1, blck, NULL);
    w->n_pools++;
    *out = p;
    return 0;
}

static int write_tensor(struct writer *w, const struct tspec *t, size_t align)
{
    static const char zeros[64];
    const struct pool *pool;
    size_t total;

    if (w->src) {
        pool = NULL; /* every row is the source's: nothing to draw from a pool */
        if (embed_plan(w->src, w->preset, t->name, &w->em) != 0)
            return -1;
    } else if (get_pool(w, t, &pool) != 0) {
        return -1;
    }
    total = make_tensor(w, t, pool, NULL);
    free((void *)w->em.src);
    w->em.src = NULL;
    if (total == 0)
        return -1;
    /* gguf pads every tensor's data, the last one included, to the alignment. */
    for (size_t pad = GGML_PAD(total, align) - total; pad > 0;) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;

        if (write_bytes(w, zeros, k) != 0)
            return -1;
        pad -= k;
    }
    return 0;
}

/* ---- the whole file ---- */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > MKGGUF_MAX_THREADS ? MKGGUF_MAX_THREADS : (int)n;
}

static int make_model(const struct opts *o)
{
    const struct preset *p = o->preset;
    const int max_tensors = 3 + MKGGUF_PER_LAYER * p->n_layer;
    struct vocab v;
    struct tspec *specs = NULL;
    struct gguf_context *g = NULL;
    struct ggml_context *gctx = NULL;
    struct writer w = {0};
    struct source src = {0};
    char *tmpl = NULL, *tmp_path = NULL, seed_text[24];
    bool made_tmp = false;
    int n_tensors, rc = -1;
    double t0 = now_s(), n_params = 0;
    long size = 0, data_offset = -1;
    size_t align, max_ne0 = 0;

    if (vocab_load(&v, o->vocab) != 0)
        goto out;
    if (read_text("template", o->template_path, MKGGUF_MAX_TEMPLATE, &tmpl) != 0)
        goto out;
    if (o->embed && source_load(&src, o->embed, o) != 0)
        goto out;

    specs = calloc((size_t)max_tensors, sizeof *specs);
    if (!specs) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    n_tensors = plan_tensors(o, specs);

    g = gguf_init_empty();
    if (!g || set_metadata(g, o, &v, tmpl, o->embed ? &src : NULL) != 0)
        goto out;
    {
        struct ggml_init_params ip = {
            .mem_size = ggml_tensor_overhead() * (size_t)(n_tensors + 1),
            .mem_buffer = NULL,
            .no_alloc = true,
        };

        gctx = ggml_init(ip);
        if (!gctx) {
            fprintf(stderr, PROG ": out of memory\n");
            goto out;
        }
    }
    for (int i = 0; i < n_tensors; i++) {
        const struct tspec *s = &specs[i];
        struct ggml_tensor *t = s->ne1 == 1 ? ggml_new_tensor_1d(gctx, s->type, s->ne0)
                                            : ggml_new_tensor_2d(gctx, s->type, s->ne0, s->ne1);

        ggml_set_name(t, s->name);
        gguf_add_tensor(g, t);
        n_params += (double)s->ne0 * (double)s->ne1;
        if ((size_t)s->ne0 > max_ne0)
            max_ne0 = (size_t)s->ne0;
    }
    align = gguf_get_alignment(g);

    /* Write next to the destination and rename at the end, so that a failed or
     * interrupted run never leaves a truncated model under the final name. */
    tmp_path = malloc(strlen(o->out) + 6);
    if (!tmp_path) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    sprintf(tmp_path, "%s.part", o->out);
    w.path = tmp_path;
    w.seed = o->seed;
    w.partial = v.partial;
    w.src = o->embed ? &src : NULL;
    w.preset = p;
    w.n_threads = o->n_threads ? o->n_threads : online_cpus();
    w.n_f32 = max_ne0 > MKGGUF_BATCH_FLOATS ? max_ne0 : MKGGUF_BATCH_FLOATS;
    w.f32 = malloc(w.n_f32 * sizeof *w.f32);
    w.dst = malloc(w.n_f32 * sizeof *w.f32);
    if (!w.f32 || !w.dst) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    w.f = fopen(tmp_path, "wb");
    made_tmp = w.f != NULL;
    if (!w.f) {
        fprintf(stderr, PROG ": cannot create '%s': %s (is --out's directory writable?)\n",
                tmp_path, strerror(errno));
        goto out;
    }
    for (int i = 0; i < n_tensors; i++) {
        if (specs[i].type != GGML_TYPE_F32 && specs[i].type != GGML_TYPE_F16)
            ggml_quantize_init(specs[i].type); /* not from the worker threads */
    }
    if (!gguf_write_to_file_ptr(g, w.f, /*only_meta=*/true)) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp_path, strerror(errno));
        goto out;
    }
    data_offset = ftell(w.f);
    for (int i = 0; i < n_tensors; i++) {
        if (write_tensor(&w, &specs[i], align) != 0)
            goto out;
    }
    {
        /* The data section must end exactly where gguf's offsets say. */
        int64_t last = n_tensors - 1;
        size_t expect = (size_t)data_offset + gguf_get_tensor_offset(g, last) +
                        GGML_PAD(gguf_get_tensor_size(g, last), align);

        size = ftell(w.f);
        if (data_offset < 0 || size < 0 || (size_t)size != expect) {
            fprintf(stderr, PROG ": internal error: wrote %ld bytes, expected %zu\n", size, expect);
            goto out;
        }
    }
    if (fflush(w.f) != 0) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp_path, strerror(errno));
        goto out;
    }
    if (fclose(w.f) != 0) {
        w.f = NULL;
        fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp_path, strerror(errno));
        goto out;
    }
    w.f = NULL;
    if (rename(tmp_path, o->out) != 0) {
        fprintf(stderr, PROG ": cannot rename '%s' to '%s': %s\n", tmp_path, o->out,
                strerror(errno));
        goto out;
    }
    snprintf(seed_text, sizeof seed_text, "%" PRIu64, o->seed);
    fprintf(stderr,
            PROG ": wrote %s: qwen3 %s %s, %.1fM params, %d tensors, %.1f MB, "
                 "%d partial-UTF-8 tokens %s, %s%s, %.2f s\n",
            o->out, p->name, o->wtype->name, n_params / 1e6, n_tensors, (double)size / 1e6,
            v.n_partial, o->no_partial_utf8 ? "zeroed" : "kept",
            o->embed ? "weights of " : "random, seed ", o->embed ? o->embed : seed_text,
            now_s() - t0);
    rc = 0;
out:
    if (w.f)
        fclose(w.f);
    if (rc != 0 && made_tmp)
        remove(tmp_path);
    for (int i = 0; i < w.n_pools; i++) {
        free(w.pools[i].blocks);
        free(w.pools[i].zero);
    }
    free(w.f32);
    free(w.dst);
    free(tmp_path);
    if (gctx)
        ggml_free(gctx);
    if (g)
        gguf_free(g);
    free(specs);
    free(tmpl);
    vocab_cleanup(&v);
    source_free(&src);
    return rc;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG
            " --preset tiny|tiny-wide|0.6b|1.7b|4b|8b --type f16|q8_0|q4_k --out FILE\n"
            "              [--seed N] [--vocab PATH] [--template PATH] [--context N]\n"
            "              [--threads N] [--no-partial-utf8] [--embed GGUF]\n"
            "\n"
            "Writes a random-weight Qwen3 GGUF with the real Qwen3 tokenizer and chat\n"
            "template. Same arguments, same bytes (independent of --threads).\n"
            "\n"
            "  --preset NAME       shape: tiny (2 layers, n_embd 64), tiny-wide (3, 128),\n"
            "                      or the real\n"
            "                      Qwen3 0.6b, 1.7b, 4b, 8b shapes\n"
            "  --type TYPE         matrix type; norms are f32. q4_k needs rows of 256:\n"
            "                      narrower matrices (all of tiny's) use q8_0\n"
            "  --out FILE          output path (written as FILE.part, then renamed)\n"
            "  --seed N            random seed (default 42)\n"
            "  --vocab PATH        vocab-only GGUF with the Qwen2 tokenizer\n"
            "                      (default %s)\n"
            "  --template PATH     chat template to embed\n"
            "                      (default %s)\n"
            "  --context N         qwen3.context_length (default 40960; tiny 4096)\n"
            "  --threads N         worker threads (default: online CPUs)\n"
            "  --no-partial-utf8   zero the output rows of tokens whose bytes are not\n"
            "                      complete UTF-8, so they are (almost) never generated\n"
            "  --embed GGUF        instead of random weights, a smaller Qwen3 model's\n"
            "                      (e.g. the built-in refiner) inside the preset's shape,\n"
            "                      the rest zero: the same function at the preset's cost.\n"
            "                      Its tokenizer and template are used\n"
            "  -h, --help          this help\n",
            CDT_ENGINE_SHARE[0] ? CDT_ENGINE_SHARE "/ggml-vocab-qwen2.gguf" : "none: required",
            CDT_ENGINE_SHARE[0] ? CDT_ENGINE_SHARE "/templates/Qwen-Qwen3-0.6B.jinja"
                                : "none: required");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    return 2;
}

int main(int argc, char **argv)
{
    enum {
        OPT_SEED = 256,
        OPT_VOCAB,
        OPT_TEMPLATE,
        OPT_CONTEXT,
        OPT_THREADS,
        OPT_NO_PARTIAL,
        OPT_EMBED
    };
    static const struct option long_opts[] = {
        {"preset", required_argument, NULL, 'p'},
        {"type", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, OPT_SEED},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        {"template", required_argument, NULL, OPT_TEMPLATE},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"no-partial-utf8", no_argument, NULL, OPT_NO_PARTIAL},
        {"embed", required_argument, NULL, OPT_EMBED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static char default_vocab[] = CDT_ENGINE_SHARE "/ggml-vocab-qwen2.gguf";
    static char default_template[] = CDT_ENGINE_SHARE "/templates/Qwen-Qwen3-0.6B.jinja";
    struct opts o = {.seed = 42};
    uint64_t v;
    int c;

    if (CDT_ENGINE_SHARE[0]) {
        o.vocab = default_vocab;
        o.template_path = default_template;
    }
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":p:t:o:h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            o.preset = NULL;
            for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
                if (strcmp(optarg, presets[i].name) == 0)
                    o.preset = &presets[i];
            }
            if (!o.preset)
                return usage_error("unknown --preset '%s' (tiny, tiny-wide, 0.6b, 1.7b, 4b, 8b)",
                                   optarg);
            break;
        case 't':
            o.wtype = NULL;
            for (size_t i = 0; i < sizeof wtypes / sizeof wtypes[0]; i++) {
                if (strcmp(optarg, wtypes[i].name) == 0)
                    o.wtype = &wtypes[i];
            }
            if (!o.wtype)
                return usage_error("unknown --type '%s' (f16, q8_0, q4_k)", optarg);
            break;
        case 'o':
            o.out = optarg;
            break;
        case OPT_SEED:
            if (parse_u64(optarg, 0, UINT64_MAX, &o.seed) != 0)
                return usage_error("--seed wants an unsigned integer, not '%s'", optarg);
            break;
        case OPT_VOCAB:
            o.vocab = optarg;
            break;
        case OPT_TEMPLATE:
            o.template_path = optarg;
            break;
        case OPT_CONTEXT:
            if (parse_u64(optarg, 1, MKGGUF_MAX_CONTEXT, &v) != 0)
                return usage_error("--context wants 1 to 16777216 tokens, not '%s'", optarg);
            o.n_ctx = (uint32_t)v;
            break;
        case OPT_THREADS:
            if (parse_u64(optarg, 1, MKGGUF_MAX_THREADS, &v) != 0)
                return usage_error("--threads wants 1 to 64, not '%s'", optarg);
            o.n_threads = (int)v;
            break;
        case OPT_NO_PARTIAL:
            o.no_partial_utf8 = true;
            break;
        case OPT_EMBED:
            o.embed = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o.preset)
        return usage_error("%s", "--preset is required");
    if (!o.wtype)
        return usage_error("%s", "--type is required");
    if (!o.out || !*o.out)
        return usage_error("%s", "--out is required");
    if (!o.vocab || !*o.vocab)
        return usage_error("%s", "--vocab is required (built without CDT_ENGINE_SHARE)");
    if (!o.template_path || !*o.template_path)
        return usage_error("%s", "--template is required (built without CDT_ENGINE_SHARE)");

    return make_model(&o) == 0 ? 0 : 1;
}
