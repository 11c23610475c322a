/*
 * mkwhisper: write a tiny Whisper model for tests in whisper.cpp's legacy ggml format.
 *
 * The model has the shape of an English-only (".en") Whisper with n_state 64, 2 heads,
 * 2 encoder layers and 1 decoder layer (whisper.cpp treats 2 decoder layers as a
 * first-release distilled model and forces no-timestamps). Its weights are random,
 * except for a timing schedule in the decoder (see struct plan), so it transcribes any
 * audio as confident gibberish in segments of 3..8 tokens with increasing timestamps,
 * without whisper.cpp's temperature fallbacks: ~8 MB (f16), a fraction of a second for
 * samples/jfk.mp3. That is what tests of everything around the engine need.
 *
 * Layout (all integers little-endian int32, as whisper_model_load reads it):
 *   magic 0x67676d6c, 11 hparams, mel filters (n_mel, n_fft, n_mel*n_fft f32),
 *   vocab (count, then len + bytes per token), then tensors, each
 *   (n_dims, name_len, ttype, ne[0..n_dims), name, data).
 *
 * Invariants: the same arguments give the same bytes. Random values come from a
 * splitmix64 stream seeded per tensor from (--seed, tensor name), so tensor order does
 * not matter to the values; they are uniform, so integer arithmetic alone makes them.
 * The mel filterbank and the encoder's sinusoidal position embedding use libm. The
 * filterbank is the real one (librosa.filters.mel(sr=16000, n_fft=400, n_mels=80),
 * Slaney scale and normalisation), so whisper.cpp's log-mel front end sees what it
 * would with a real model. The vocabulary is GPT-2's 50256 byte-level BPE tokens,
 * decoded to raw bytes from a vocab-only GGUF; whisper.cpp synthesises <|endoftext|>
 * and the special tokens above it, as it does for the real ggml-*.en.bin files.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

#define CDT_WHISPER_MAGIC   0x67676d6cu
#define CDT_N_VOCAB         51864 /* English-only Whisper */
#define CDT_N_TEXT_TOKENS   50256 /* GPT-2 tokens written to the file; the rest are synthesised */
#define CDT_N_AUDIO_CTX     1500
#define CDT_N_TEXT_CTX      448
#define CDT_N_STATE         64
#define CDT_N_HEAD          2
#define CDT_N_AUDIO_LAYER   2
#define CDT_N_TEXT_LAYER    1
#define CDT_N_MELS          80
#define CDT_SAMPLE_RATE     16000
#define CDT_N_FFT           400
#define CDT_N_FREQ          (CDT_N_FFT / 2 + 1)
#define CDT_MAX_TOKEN_BYTES 1024 /* longest vocab entry we accept from the GGUF */
#define CDT_MAX_NAME        96

enum { EXIT_USAGE = 2 };

enum ftype { FTYPE_F32 = 0, FTYPE_F16 = 1 };

struct writer {
    FILE *f;
    const char *path;
    uint64_t seed;
    bool sentences; /* --sentences: each segment's last text token is "." */
    enum ftype ftype;
    bool failed;
    uint64_t n_bytes;
};

/* ---- deterministic randomness ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return h;
}

/* Uniform in [-1, 1), from the top 53 bits: exact in double, so identical everywhere. */
static double uniform_pm1(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1p-52 - 1.0;
}

/* ---- IEEE half precision, round to nearest even, without relying on the FPU mode ---- */

static uint16_t f32_to_f16(float value)
{
    uint32_t x;
    memcpy(&x, &value, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;

    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) /* rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (absx >= 0x38800000u) { /* normal half */
        uint32_t h = ((absx >> 23) - 112u) << 10 | ((absx >> 13) & 0x3ffu);
        uint32_t rem = absx & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    /* subnormal half (or zero): units of 2^-24 */
    uint32_t e = absx >> 23;
    if (e < 102) /* below 2^-25: rounds to zero */
        return (uint16_t)sign;
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

/* ---- output ---- */

static void put_bytes(struct writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (n > 0 && fwrite(p, 1, n, w->f) != n) {
        fprintf(stderr, "mkwhisper: writing %s: %s\n", w->path, strerror(errno));
        w->failed = true;
        return;
    }
    w->n_bytes += n;
}

static void put_u32(struct writer *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put_bytes(w, b, sizeof b);
}

static void put_i32(struct writer *w, int32_t v)
{
    put_u32(w, (uint32_t)v);
}

static void put_f32(struct writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(w, u);
}

/* ---- mel filterbank (librosa.filters.mel, htk=False, norm="slaney") ---- */

#define SLANEY_F_SP        (200.0 / 3.0)
#define SLANEY_MIN_LOG_HZ  1000.0
#define SLANEY_MIN_LOG_MEL (SLANEY_MIN_LOG_HZ / SLANEY_F_SP)

static double slaney_logstep(void)
{
    return log(6.4) / 27.0;
}

static double hz_to_mel(double hz)
{
    if (hz >= SLANEY_MIN_LOG_HZ)
        return SLANEY_MIN_LOG_MEL + log(hz / SLANEY_MIN_LOG_HZ) / slaney_logstep();
    return hz / SLANEY_F_SP;
}

static double mel_to_hz(double mel)
{
    if (mel >= SLANEY_MIN_LOG_MEL)
        return SLANEY_MIN_LOG_HZ * exp(slaney_logstep() * (mel - SLANEY_MIN_LOG_MEL));
    return SLANEY_F_SP * mel;
}

/*
 * Fill out[n_mels * n_freq], row-major by mel band. Follows librosa step by step,
 * including where it rounds to float32 (the weights array is float32 before the
 * normalisation multiplies it), so the values match Whisper's mel_filters.npz.
 */
static void mel_filterbank(float *out)
{
    const int n_mels = CDT_N_MELS, n_freq = CDT_N_FREQ;
    double fft_hz[CDT_N_FREQ];
    double mel_hz[CDT_N_MELS + 2];

    /* np.fft.rfftfreq(n=n_fft, d=1/sr) */
    const double bin_hz = 1.0 / (CDT_N_FFT * (1.0 / CDT_SAMPLE_RATE));
    for (int k = 0; k < n_freq; k++)
        fft_hz[k] = k * bin_hz;

    /* mel_frequencies(n_mels + 2, fmin=0, fmax=sr/2): np.linspace in mel, back to Hz */
    const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(CDT_SAMPLE_RATE / 2.0);
    const double step = (mel_hi - mel_lo) / (n_mels + 1);
    for (int i = 0; i < n_mels + 2; i++)
        mel_hz[i] = mel_to_hz(i == n_mels + 1 ? mel_hi : i * step + mel_lo);

    for (int i = 0; i < n_mels; i++) {
        const double fdiff_lo = mel_hz[i + 1] - mel_hz[i];
        const double fdiff_hi = mel_hz[i + 2] - mel_hz[i + 1];
        const double enorm = 2.0 / (mel_hz[i + 2] - mel_hz[i]);
        for (int k = 0; k < n_freq; k++) {
            const double lower = -(mel_hz[i] - fft_hz[k]) / fdiff_lo;
            const double upper = (mel_hz[i + 2] - fft_hz[k]) / fdiff_hi;
            double v = lower < upper ? lower : upper;
            if (!(v > 0.0)) /* np.maximum(0, -0.0) is +0.0 */
                v = 0.0;
            out[(size_t)i * n_freq + k] = (float)((double)(float)v * enorm);
        }
    }
}

/* ---- vocabulary ---- */

/*
 * GPT-2's byte-level BPE writes each byte as one code point: printable Latin-1 bytes
 * as themselves, the other 68 bytes as U+0100.. in byte order. Fill the inverse map
 * (code point -> byte) for code points below 0x144; -1 where none.
 */
static void gpt2_unicode_to_byte(int map[0x144])
{
    for (int cp = 0; cp < 0x144; cp++)
        map[cp] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        map[printable ? b : 0x100 + n++] = b;
    }
}

/* Decode one token string to raw bytes; returns the length, or -1 if it is malformed. */
static int decode_token(const int map[0x144], const char *s, unsigned char *out, int cap)
{
    const unsigned char *p = (const unsigned char *)s;
    int n = 0;
    while (*p) {
        uint32_t cp;
        if (p[0] < 0x80) {
            cp = p[0];
            p += 1;
        } else if ((p[0] & 0xe0) == 0xc0 && (p[1] & 0xc0) == 0x80) {
            cp = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
            p += 2;
        } else {
            return -1; /* GPT-2's alphabet stops at U+0143: two UTF-8 bytes at most */
        }
        if (cp >= 0x144 || map[cp] < 0 || n >= cap)
            return -1;
        out[n++] = (unsigned char)map[cp];
    }
    return n;
}

static int write_vocab(struct writer *w, const char *vocab_path)
{
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(vocab_path, params);
    if (!g) {
        fprintf(stderr, "mkwhisper: cannot read GGUF vocab %s (see --vocab)\n", vocab_path);
        return -1;
    }
    int rc = -1;
    int64_t key = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (key < 0 || gguf_get_kv_type(g, key) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(g, key) != GGUF_TYPE_STRING) {
        fprintf(stderr, "mkwhisper: %s has no string array tokenizer.ggml.tokens\n", vocab_path);
        goto out;
    }
    /* Whisper's English vocabulary is GPT-2's: 50256 tokens, then <|endoftext|>. */
    size_t n = gguf_get_arr_n(g, key);
    if (n != CDT_N_TEXT_TOKENS + 1 ||
        strcmp(gguf_get_arr_str(g, key, CDT_N_TEXT_TOKENS), "<|endoftext|>") != 0) {
        fprintf(stderr,
                "mkwhisper: %s is not GPT-2's vocabulary (%zu tokens; want %d ending in "
                "<|endoftext|>)\n",
                vocab_path, n, CDT_N_TEXT_TOKENS + 1);
        goto out;
    }

    int map[0x144];
    gpt2_unicode_to_byte(map);
    unsigned char buf[CDT_MAX_TOKEN_BYTES];
    put_i32(w, CDT_N_TEXT_TOKENS);
    for (int i = 0; i < CDT_N_TEXT_TOKENS; i++) {
        const char *tok = gguf_get_arr_str(g, key, (size_t)i);
        int len = decode_token(map, tok, buf, (int)sizeof buf);
        if (len <= 0) {
            fprintf(stderr, "mkwhisper: %s: token %d is not a GPT-2 byte-level token\n", vocab_path,
                    i);
            goto out;
        }
        put_i32(w, len);
        put_bytes(w, buf, (size_t)len);
    }
    rc = w->failed ? -1 : 0;
out:
    gguf_free(g);
    return rc;
}

/* ---- the decoder's plan ---- */

/*
 * A random decoder is unsure of everything: whisper.cpp then fails its log-probability
 * check and redecodes at five more temperatures, and the timestamps it emits jump at
 * random (backwards, or past the end of the audio). So the decoder is random except for
 * a small "time" subspace of the residual stream, the last CDT_N_TIME of its
 * dimensions, which carries a schedule:
 *
 *   - the decoder position embedding puts SLOT_AMP on time dimension v at the positions
 *     where slot v is due, and nothing on the time dimensions elsewhere;
 *   - the token embedding row of slot v's token is SLOT_ROW on time dimension v, and
 *     every other row is zero there; text rows are random on the content dimensions,
 *     timestamp and end-of-text rows are zero there;
 *   - nothing else writes the time dimensions (those output rows of the attention and
 *     MLP projections are zero), and the final layer norm scales them by GAIN_TIME.
 *
 * So at a slot the slot's token outscores everything, at other positions no timestamp
 * or end-of-text can win, and text comes from the random content dimensions. Slot 0 is
 * <|0.00|> at position 0; then for each segment 3..8 text tokens, its closing timestamp
 * twice (end of this segment, start of the next, as Whisper writes them), the time
 * advancing 0.24..0.44 s per text token; the last closing timestamp within 30 s is
 * followed by <|endoftext|> instead of its repeat, and the pattern repeats (see
 * plan_make). whisper.cpp ends a window at <|endoftext|> or at the first timestamp past
 * the end of the audio, so a window costs a few dozen decoder steps and no fallback.
 */
#define CDT_N_TIME    16 /* time dimensions: slot vectors, one per dimension */
#define CDT_N_CONTENT (CDT_N_STATE - CDT_N_TIME)
#define CDT_TOKEN_EOT 50256
#define CDT_TOKEN_DOT 13    /* "." in GPT-2's vocabulary */
#define CDT_TOKEN_BEG 50363 /* <|0.00|>; timestamp k (units of 20 ms) is CDT_TOKEN_BEG + k */
#define CDT_N_TS      1501  /* timestamps 0.00 .. 30.00 s */

#define SLOT_AMP     8.0  /* slot vector in the position embedding */
#define SLOT_ROW     1.0  /* slot vector in its token's embedding row */
#define GAIN_TIME    15.0 /* final layer norm weight on the time dimensions */
#define GAIN_CONTENT 15.0 /* |final layer norm weight| on the content dimensions */

struct plan {
    int slot_at[CDT_N_TEXT_CTX]; /* slot due at each decoder position, or -1 */
    int slot_token[CDT_N_TIME];  /* token each slot emits, or -1 if unused */
};

static void plan_make(struct plan *pl, uint64_t seed, bool sentences)
{
    uint64_t rng = seed ^ fnv1a64("plan");
    (void)splitmix64(&rng);
    for (int p = 0; p < CDT_N_TEXT_CTX; p++)
        pl->slot_at[p] = -1;
    for (int v = 0; v < CDT_N_TIME; v++)
        pl->slot_token[v] = -1;

    const int eot_slot = CDT_N_TIME - 1;
    const int dot_slot = sentences ? CDT_N_TIME - 2 : -1;   /* the last slot before eot's */
    const int last_close = sentences ? dot_slot : eot_slot; /* closing slots end before it */
    pl->slot_at[0] = 0;
    pl->slot_token[0] = CDT_TOKEN_BEG;
    pl->slot_token[eot_slot] = CDT_TOKEN_EOT;
    if (sentences)
        pl->slot_token[dot_slot] = CDT_TOKEN_DOT;

    /* The segments of one window: text tokens before each closing timestamp. */
    int n_text[CDT_N_TIME] = {0};
    int n_close = 0;
    for (int v = 1, k = 0; v < last_close; v++) {
        n_text[v] = 3 + (int)(splitmix64(&rng) % 6);
        for (int i = 0; i < n_text[v]; i++)
            k += 12 + (int)(splitmix64(&rng) % 11);
        if (k >= CDT_N_TS)
            break;
        pl->slot_token[v] = CDT_TOKEN_BEG + k;
        n_close = v;
    }

    /*
     * Lay the window out again and again to the end of the context: within one
     * whisper_full call each window after the first is prompted with the text so far,
     * so its decoding starts part-way through the positions. Wherever it starts, it
     * meets increasing timestamps and then <|endoftext|>.
     */
    int pos = 1, last_repeat = -1;
    for (int v = 1;; v = v % n_close + 1) {
        const int close = pos + n_text[v];
        if (close + 1 >= CDT_N_TEXT_CTX)
            break;
        if (sentences)
            pl->slot_at[close - 1] = dot_slot; /* n_text >= 3: a word or two, then "." */
        pl->slot_at[close] = v;
        pl->slot_at[close + 1] = v == n_close ? eot_slot : v;
        last_repeat = close + 1;
        pos = close + 2;
    }
    if (last_repeat > 0)
        pl->slot_at[last_repeat] = eot_slot;
}

/* ---- tensors ---- */

/* Weight scales: small enough that activations stay tame, big enough to vary tokens. */
#define STD_WEIGHT      0.02
#define STD_BIAS        0.02
#define STD_EMBED       0.1   /* token embedding, content dimensions of text rows */
#define STD_DEC_MLP_IN  0.125 /* decoder MLP: its output dominates the residual stream, */
#define STD_DEC_MLP_OUT 0.1   /* so the next token is a random function of the context */

/*
 * Values for tensor `name`: `count` uniform values with standard deviation `std` (0 for
 * zeros), from a stream seeded by (seed, name). Caller frees; NULL if out of memory.
 */
static float *tensor_values(struct writer *w, const char *name, size_t count, double std)
{
    float *v = malloc(count * sizeof *v);
    if (!v) {
        fprintf(stderr, "mkwhisper: out of memory for %s\n", name);
        w->failed = true;
        return NULL;
    }
    uint64_t state = w->seed ^ fnv1a64(name);
    (void)splitmix64(&state);           /* decorrelate nearby seeds */
    const double amp = std * sqrt(3.0); /* uniform [-a, a) has std a/sqrt(3) */
    for (size_t i = 0; i < count; i++)
        v[i] = std > 0 ? (float)(uniform_pm1(&state) * amp) : 0.0f;
    return v;
}

/*
 * Write one tensor and free `values`. ne[] is in ggml order (ne[0] is the contiguous
 * dimension, the reverse of PyTorch's shape). `f16` asks for half precision when the
 * model is f16; whisper.cpp wants f32 for biases, norms, conv biases and position
 * embeddings.
 */
static void put_tensor(struct writer *w, const char *name, int n_dims, const int32_t *ne, bool f16,
                       float *values)
{
    if (!values || w->failed) {
        free(values);
        return;
    }
    const bool half = f16 && w->ftype == FTYPE_F16;
    size_t count = 1;
    for (int d = 0; d < n_dims; d++)
        count *= (size_t)ne[d];

    const size_t elt = half ? 2 : 4;
    unsigned char *data = malloc(count * elt);
    if (!data) {
        fprintf(stderr, "mkwhisper: out of memory for %s\n", name);
        w->failed = true;
        free(values);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if (half) {
            uint16_t h = f32_to_f16(values[i]);
            data[2 * i] = (unsigned char)h;
            data[2 * i + 1] = (unsigned char)(h >> 8);
        } else {
            uint32_t u;
            memcpy(&u, &values[i], sizeof u);
            for (int b = 0; b < 4; b++)
                data[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
    }

    const size_t name_len = strlen(name);
    put_i32(w, n_dims);
    put_i32(w, (int32_t)name_len);
    put_i32(w, half ? FTYPE_F16 : FTYPE_F32); /* ggml_type: 0 F32, 1 F16 */
    for (int d = 0; d < n_dims; d++)
        put_i32(w, ne[d]);
    put_bytes(w, name, name_len);
    put_bytes(w, data, count * elt);
    free(data);
    free(values);
}

static void fill(float *v, size_t count, float value)
{
    if (v)
        for (size_t i = 0; i < count; i++)
            v[i] = value;
}

/*
 * A linear layer "<prefix>.<which>.weight" [n_in, n_out] and, if `bias`, its bias. With
 * `keep_time_free`, output rows on the time dimensions are zero (see struct plan).
 */
static void put_linear(struct writer *w, const char *prefix, const char *which, int n_in, int n_out,
                       bool bias, double std, bool keep_time_free)
{
    char name[CDT_MAX_NAME];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, which);
    float *wt = tensor_values(w, name, (size_t)n_in * n_out, std);
    if (wt && keep_time_free)
        fill(wt + (size_t)CDT_N_CONTENT * n_in, (size_t)CDT_N_TIME * n_in, 0.0f);
    put_tensor(w, name, 2, (const int32_t[]){n_in, n_out}, true, wt);
    if (bias) {
        snprintf(name, sizeof name, "%s.%s.bias", prefix, which);
        float *b = tensor_values(w, name, (size_t)n_out, STD_BIAS);
        if (b && keep_time_free)
            fill(b + CDT_N_CONTENT, CDT_N_TIME, 0.0f);
        put_tensor(w, name, 1, (const int32_t[]){n_out}, false, b);
    }
}

static void put_layer_norm(struct writer *w, const char *prefix, const char *which, int n)
{
    char name[CDT_MAX_NAME];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, which);
    float *g = tensor_values(w, name, (size_t)n, 0.0);
    fill(g, (size_t)n, 1.0f);
    put_tensor(w, name, 1, (const int32_t[]){n}, false, g);
    snprintf(name, sizeof name, "%s.%s.bias", prefix, which);
    put_tensor(w, name, 1, (const int32_t[]){n}, false, tensor_values(w, name, (size_t)n, 0.0));
}

/* Self- or cross-attention: query, key (no bias), value, out; as whisper.cpp names them. */
static void put_attention(struct writer *w, const char *prefix, const char *attn, bool decoder)
{
    const int n = CDT_N_STATE;
    char sub[CDT_MAX_NAME];
    snprintf(sub, sizeof sub, "%s.query", attn);
    put_linear(w, prefix, sub, n, n, true, STD_WEIGHT, false);
    snprintf(sub, sizeof sub, "%s.key", attn);
    put_linear(w, prefix, sub, n, n, false, STD_WEIGHT, false);
    snprintf(sub, sizeof sub, "%s.value", attn);
    put_linear(w, prefix, sub, n, n, true, STD_WEIGHT, false);
    snprintf(sub, sizeof sub, "%s.out", attn);
    put_linear(w, prefix, sub, n, n, true, STD_WEIGHT, decoder);
}

static void put_block(struct writer *w, const char *side, int layer, bool decoder)
{
    const int n = CDT_N_STATE;
    char prefix[CDT_MAX_NAME];
    snprintf(prefix, sizeof prefix, "%s.blocks.%d", side, layer);
    put_layer_norm(w, prefix, "attn_ln", n);
    put_attention(w, prefix, "attn", decoder);
    if (decoder) {
        put_layer_norm(w, prefix, "cross_attn_ln", n);
        put_attention(w, prefix, "cross_attn", decoder);
    }
    put_layer_norm(w, prefix, "mlp_ln", n);
    put_linear(w, prefix, "mlp.0", n, 4 * n, true, decoder ? STD_DEC_MLP_IN : STD_WEIGHT, false);
    put_linear(w, prefix, "mlp.2", 4 * n, n, true, decoder ? STD_DEC_MLP_OUT : STD_WEIGHT, decoder);
}

static void put_encoder(struct writer *w)
{
    const int n = CDT_N_STATE;
    const char *name = "encoder.positional_embedding";
    /* whisper.model.sinusoids(n_ctx, n_state): [sin | cos] of t * 10000^(-j/(n/2-1)) */
    float *pe = tensor_values(w, name, (size_t)n * CDT_N_AUDIO_CTX, 0.0);
    for (int t = 0; pe && t < CDT_N_AUDIO_CTX; t++) {
        for (int j = 0; j < n / 2; j++) {
            const double x = t * exp(-log(10000.0) / (n / 2 - 1) * j);
            pe[(size_t)t * n + j] = (float)sin(x);
            pe[(size_t)t * n + n / 2 + j] = (float)cos(x);
        }
    }
    put_tensor(w, name, 2, (const int32_t[]){n, CDT_N_AUDIO_CTX}, false, pe);

    /* conv1d weights: PyTorch (out, in, kernel) -> ggml ne (kernel, in, out) */
    name = "encoder.conv1.weight";
    put_tensor(w, name, 3, (const int32_t[]){3, CDT_N_MELS, n}, true,
               tensor_values(w, name, (size_t)3 * CDT_N_MELS * n, 4 * STD_WEIGHT));
    name = "encoder.conv1.bias";
    put_tensor(w, name, 2, (const int32_t[]){1, n}, false, tensor_values(w, name, n, STD_BIAS));
    name = "encoder.conv2.weight";
    put_tensor(w, name, 3, (const int32_t[]){3, n, n}, true,
               tensor_values(w, name, (size_t)3 * n * n, 4 * STD_WEIGHT));
    name = "encoder.conv2.bias";
    put_tensor(w, name, 2, (const int32_t[]){1, n}, false, tensor_values(w, name, n, STD_BIAS));
    for (int l = 0; l < CDT_N_AUDIO_LAYER; l++)
        put_block(w, "encoder", l, false);
    put_layer_norm(w, "encoder", "ln_post", n);
}

static void put_decoder(struct writer *w)
{
    const int n = CDT_N_STATE;
    struct plan pl;
    plan_make(&pl, w->seed, w->sentences);

    const char *name = "decoder.positional_embedding";
    float *pe = tensor_values(w, name, (size_t)n * CDT_N_TEXT_CTX, STD_WEIGHT);
    for (int p = 0; pe && p < CDT_N_TEXT_CTX; p++) {
        float *row = pe + (size_t)p * n;
        fill(row + CDT_N_CONTENT, CDT_N_TIME, 0.0f);
        if (pl.slot_at[p] >= 0)
            row[CDT_N_CONTENT + pl.slot_at[p]] = (float)SLOT_AMP;
    }
    put_tensor(w, name, 2, (const int32_t[]){n, CDT_N_TEXT_CTX}, false, pe);

    name = "decoder.token_embedding.weight";
    float *te = tensor_values(w, name, (size_t)n * CDT_N_VOCAB, STD_EMBED);
    for (int t = 0; te && t < CDT_N_VOCAB; t++) {
        float *row = te + (size_t)t * n;
        if (t == CDT_TOKEN_EOT || t >= CDT_TOKEN_BEG)
            fill(row, CDT_N_CONTENT, 0.0f);
        fill(row + CDT_N_CONTENT, CDT_N_TIME, 0.0f);
    }
    for (int v = 0; te && v < CDT_N_TIME; v++)
        if (pl.slot_token[v] >= 0)
            te[(size_t)pl.slot_token[v] * n + CDT_N_CONTENT + v] = (float)SLOT_ROW;
    put_tensor(w, name, 2, (const int32_t[]){n, CDT_N_VOCAB}, true, te);

    for (int l = 0; l < CDT_N_TEXT_LAYER; l++)
        put_block(w, "decoder", l, true);

    /*
     * Random signs on the content gains: the embedding is tied, so with all-positive
     * gains every token would favour itself as the next one and text would repeat.
     */
    name = "decoder.ln.weight";
    float *g = tensor_values(w, name, (size_t)n, 1.0);
    for (int i = 0; g && i < n; i++)
        g[i] = i >= CDT_N_CONTENT ? (float)GAIN_TIME
                                  : (float)(g[i] < 0 ? -GAIN_CONTENT : GAIN_CONTENT);
    put_tensor(w, name, 1, (const int32_t[]){n}, false, g);
    name = "decoder.ln.bias";
    put_tensor(w, name, 1, (const int32_t[]){n}, false, tensor_values(w, name, (size_t)n, 0.0));
}

static int write_model(struct writer *w, const char *vocab_path)
{
    put_u32(w, CDT_WHISPER_MAGIC);
    const int32_t hparams[] = {
        CDT_N_VOCAB,       CDT_N_AUDIO_CTX, CDT_N_STATE,       CDT_N_HEAD,
        CDT_N_AUDIO_LAYER, CDT_N_TEXT_CTX,  CDT_N_STATE,       CDT_N_HEAD,
        CDT_N_TEXT_LAYER,  CDT_N_MELS,      (int32_t)w->ftype,
    };
    for (size_t i = 0; i < sizeof hparams / sizeof hparams[0]; i++)
        put_i32(w, hparams[i]);

    static float filters[CDT_N_MELS * CDT_N_FREQ];
    mel_filterbank(filters);
    put_i32(w, CDT_N_MELS);
    put_i32(w, CDT_N_FREQ);
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        put_f32(w, filters[i]);

    if (write_vocab(w, vocab_path) != 0)
        return -1;
    put_encoder(w);
    put_decoder(w);
    return w->failed ? -1 : 0;
}

/* ---- command line ---- */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: mkwhisper --out FILE [--seed N] [--vocab PATH] [--type f16|f32] [--sentences]\n"
            "\n"
            "Write a tiny English-only Whisper model for tests (whisper.cpp legacy ggml format,\n"
            "n_state 64, 2 encoder layers, 1 decoder layer, ~8 MB at f16): random weights plus\n"
            "a timing schedule, so it transcribes any audio as gibberish in segments with\n"
            "increasing timestamps, fast. The same arguments give the same bytes.\n"
            "\n"
            "  -o, --out FILE     where to write the model (required)\n"
            "  -s, --seed N       seed for the weights (default 42)\n"
            "  -v, --vocab PATH   GPT-2 vocab-only GGUF (default %s)\n"
            "  -t, --type TYPE    f16 (default) or f32 weight matrices\n"
            "  -S, --sentences    end every segment with \".\" (gibberish in sentences: for\n"
            "                     benchmarks of what is cut at sentence ends)\n"
            "  -h, --help         show this help\n",
#ifdef CDT_ENGINE_SHARE
            CDT_ENGINE_SHARE "/ggml-vocab-gpt-2.gguf"
#else
            "none: required"
#endif
    );
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *out_path = NULL;
    const char *vocab_path = NULL;
    uint64_t seed = 42;
    enum ftype ftype = FTYPE_F16;
    bool sentences = false;

    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},
        {"vocab", required_argument, NULL, 'v'},
        {"type", required_argument, NULL, 't'},
        {"sentences", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:s:v:t:Sh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_path = optarg;
            break;
        case 's':
            if (parse_u64(optarg, &seed) != 0) {
                fprintf(stderr, "mkwhisper: --seed wants an unsigned integer, got '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'v':
            vocab_path = optarg;
            break;
        case 't':
            if (strcmp(optarg, "f16") == 0) {
                ftype = FTYPE_F16;
            } else if (strcmp(optarg, "f32") == 0) {
                ftype = FTYPE_F32;
            } else {
                fprintf(stderr, "mkwhisper: --type is f16 or f32, got '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'S':
            sentences = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mkwhisper: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!out_path) {
        fprintf(stderr, "mkwhisper: --out is required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!vocab_path) {
#ifdef CDT_ENGINE_SHARE
        vocab_path = CDT_ENGINE_SHARE "/ggml-vocab-gpt-2.gguf";
#else
        fprintf(stderr, "mkwhisper: --vocab is required (built without CDT_ENGINE_SHARE)\n");
        return EXIT_USAGE;
#endif
    }

    /* Write beside the target and rename, so a failed run never leaves a half model. */
    size_t tmp_len = strlen(out_path) + sizeof ".tmp";
    char *tmp_path = malloc(tmp_len);
    if (!tmp_path) {
        fprintf(stderr, "mkwhisper: out of memory\n");
        return EXIT_FAILURE;
    }
    snprintf(tmp_path, tmp_len, "%s.tmp", out_path);

    struct writer w = {.path = tmp_path, .seed = seed, .sentences = sentences, .ftype = ftype};
    w.f = fopen(tmp_path, "wb");
    if (!w.f) {
        fprintf(stderr, "mkwhisper: cannot create %s: %s\n", tmp_path, strerror(errno));
        free(tmp_path);
        return EXIT_FAILURE;
    }
    int rc = write_model(&w, vocab_path);
    if (fclose(w.f) != 0 && rc == 0) {
        fprintf(stderr, "mkwhisper: writing %s: %s\n", tmp_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp_path, out_path) != 0) {
        fprintf(stderr, "mkwhisper: cannot rename %s to %s: %s\n", tmp_path, out_path,
                strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        remove(tmp_path);
        free(tmp_path);
        return EXIT_FAILURE;
    }
    free(tmp_path);
    printf("mkwhisper: wrote %s (%" PRIu64 " bytes, %s, seed %" PRIu64 ")\n", out_path, w.n_bytes,
           ftype == FTYPE_F16 ? "f16" : "f32", seed);
    return EXIT_SUCCESS;
}
