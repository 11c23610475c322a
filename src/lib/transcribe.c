/* Transcription with whisper.cpp: the only library file that includes whisper.h.
 *
 * A handle owns one whisper_context (the model, loaded once, and its default
 * state, reused by every call). VAD is whisper.cpp's own (whisper_full_params.vad):
 * whisper_full loads the Silero model into the state on the first call, keeps it,
 * runs it over the input, transcribes only the speech, and maps segment times
 * back onto the input's timeline.
 *
 * Model files are checked here before whisper.cpp sees them: the engine's loaders
 * trust their input (a truncated file can load as a model with no weights, a
 * corrupt header can ask for gigabytes), so we walk the whole file's structure
 * (header, tensor records and their sizes) and give a message that names the file.
 *
 * Timings come from whisper_full's callbacks, not whisper_get_timings (which
 * returns memory allocated with C++ new that C cannot free): prepare = until the
 * first progress report (VAD, mel spectrogram, language detection); encode = from
 * each encoder start to the first logits of that window; decode = the rest. */
#include "codictate/transcribe.h"
#include "codictate/text.h"
#include "err_int.h"

#include "codictate/sysinfo.h"
#include "codictate/util.h"

#include <whisper.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define GGML_FILE_MAGIC_    0x67676d6cu /* "ggml", little-endian */
#define GGUF_FILE_MAGIC_    0x46554747u /* "GGUF" */
#define DEFAULT_MAX_THREADS 8           /* whisper gains little beyond this on CPUs */
#define MAX_TENSORS         4096        /* tensor records in a model file we accept */
#define MAX_TENSOR_NAME     512         /* bytes */
/* Audio kept on each side of what whisper.cpp's VAD calls speech, ms: faster-whisper's
 * 400; whisper.cpp's default (Silero's 30) cuts soft first words off. */
#define VAD_SPEECH_PAD_MS 400

struct cdt_transcribe {
    struct whisper_context *ctx;
    char *model_path;
    char *vad_model_path;                           /* NULL: VAD off */
    char *vocabulary;                               /* NULL: none */
    char language[CDT_TRANSCRIBE_MAX_LANGUAGE + 1]; /* what whisper_full gets */
    bool multilingual;
    float vad_threshold;
    int n_threads;
    bool fit_window;
    struct cdt_log *log;
    cdt_transcribe_progress_cb progress;
    void *user_data;
    double load_ms;
    atomic_int cancel;
    char errmsg[1024];
};

/* One call's bookkeeping, reached from whisper's callbacks. */
struct run {
    struct cdt_transcribe *t;
    double t0;         /* whisper_full start, ms */
    double prepare_ms; /* < 0 until the first progress report */
    double enc_start;  /* ms; meaningful while in_encode */
    double encode_ms;
    bool in_encode;
    int last_percent;
};

/* ---- model file checks ---- */

struct reader {
    FILE *f;
    uint64_t size; /* file size, bytes */
};

static bool rd_i32(struct reader *r, int32_t *v)
{
    unsigned char b[4];

    if (fread(b, 1, 4, r->f) != 4)
        return false;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    return true;
}

static bool rd_skip(struct reader *r, uint64_t n)
{
    long pos = ftell(r->f);

    if (pos < 0 || n > r->size || (uint64_t)pos > r->size - n)
        return false;
    return fseek(r->f, (long)n, SEEK_CUR) == 0;
}

static bool in_range(int32_t v, int32_t lo, int32_t hi)
{
    return v >= lo && v <= hi;
}

/* Opens a model file. Returns 0 or an error naming the file (what = "whisper
 * model", "VAD model"). */
static int open_model(const char *path, const char *what, struct reader *r, char *err, size_t cap)
{
    struct stat st;

    r->f = NULL;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return cdt__errmsg_set(err, cap, CDT_ENOTFOUND, "%s not found: %s", what, path);
        return cdt__errmsg_set(err, cap, errno == EACCES ? CDT_EPERM : CDT_EIO, "%s %s: %s", what,
                               path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return cdt__errmsg_set(err, cap, CDT_EIO, "%s %s: is a directory, not a model file", what,
                               path);
    r->f = fopen(path, "rb");
    if (!r->f)
        return cdt__errmsg_set(err, cap, errno == EACCES ? CDT_EPERM : CDT_EIO, "%s %s: %s", what,
                               path, strerror(errno));
    r->size = (uint64_t)st.st_size;
    return 0;
}

/* Checks the magic: "ggml" or a message saying what the file is instead. */
static int check_magic(struct reader *r, const char *path, const char *what, char *err, size_t cap)
{
    int32_t magic;

    if (!rd_i32(r, &magic))
        return cdt__errmsg_set(err, cap, CDT_EFORMAT, "%s: not a %s (the file is too short)", path,
                               what);
    if ((uint32_t)magic == GGUF_FILE_MAGIC_)
        return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                               "%s: not a %s: it is a GGUF file (an LLM?); whisper.cpp takes its "
                               "legacy ggml .bin format",
                               path, what);
    if ((uint32_t)magic != GGML_FILE_MAGIC_)
        return cdt__errmsg_set(err, cap, CDT_EFORMAT, "%s: not a %s (no ggml magic number)", path,
                               what);
    return 0;
}

/* Walks the tensor records that end both formats (n_dims, name length, type,
 * dims, name, data) up to the end of the file: every record must be whole, so a
 * truncated download cannot load as a model with missing weights. */
static int check_tensors(struct reader *r, const char *path, const char *what, char *err,
                         size_t cap)
{
    int n = 0;

    for (;;) {
        int32_t n_dims, name_len, type, ne;
        int64_t nelements = 1;
        char name[MAX_TENSOR_NAME + 1];
        long pos = ftell(r->f);
        size_t type_size;
        int64_t blck;

        if (pos >= 0 && (uint64_t)pos == r->size)
            break;
        if (!rd_i32(r, &n_dims) || !rd_i32(r, &name_len) || !rd_i32(r, &type))
            return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                   "%s: truncated or corrupt %s (cut inside tensor record %d)",
                                   path, what, n + 1);
        if (!in_range(n_dims, 0, 4) || !in_range(name_len, 1, MAX_TENSOR_NAME) ||
            !in_range(type, 0, GGML_TYPE_COUNT - 1) || ++n > MAX_TENSORS)
            return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                   "%s: corrupt %s (tensor record %d is not valid)", path, what, n);
        for (int i = 0; i < n_dims; i++) {
            if (!rd_i32(r, &ne) || !in_range(ne, 1, 1 << 24))
                return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                       "%s: truncated or corrupt %s (tensor record %d)", path, what,
                                       n);
            nelements *= ne;
            if (nelements > (int64_t)1 << 34)
                return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                       "%s: corrupt %s (tensor %d is too large)", path, what, n);
        }
        if (fread(name, 1, (size_t)name_len, r->f) != (size_t)name_len)
            return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                   "%s: truncated or corrupt %s (cut inside tensor record %d)",
                                   path, what, n);
        name[name_len] = '\0';
        type_size = ggml_type_size((enum ggml_type)type);
        blck = ggml_blck_size((enum ggml_type)type);
        if (type_size == 0 || blck <= 0 || nelements % blck != 0)
            return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                   "%s: corrupt %s (tensor '%s' has an unusable type %d)", path,
                                   what, name, (int)type);
        if (!rd_skip(r, (uint64_t)(nelements / blck) * type_size))
            return cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                   "%s: truncated %s (tensor '%s' runs past the end of the file; "
                                   "download it again)",
                                   path, what, name);
    }
    if (n == 0)
        return cdt__errmsg_set(err, cap, CDT_EFORMAT, "%s: truncated %s (no weights in the file)",
                               path, what);
    return 0;
}

/* whisper.cpp's legacy format: magic, 11 hparams, mel filters, vocabulary,
 * tensors. */
static int check_whisper_file(const char *path, char *err, size_t cap)
{
    static const char what[] = "whisper model";
    struct reader r;
    int32_t hp[11], n_mel, n_fft, n_vocab;
    int rc = open_model(path, what, &r, err, cap);

    if (rc != 0)
        return rc;
    if ((rc = check_magic(&r, path, "whisper.cpp model", err, cap)) != 0)
        goto done;
    for (int i = 0; i < 11; i++) {
        if (!rd_i32(&r, &hp[i])) {
            rc = cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                 "%s: truncated whisper model (in the header)", path);
            goto done;
        }
    }
    /* n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, n_mels, ftype */
    if (!in_range(hp[0], 1, 1 << 20) || !in_range(hp[1], 1, 1 << 16) ||
        !in_range(hp[2], 1, 1 << 16) || !in_range(hp[3], 1, 1024) || !in_range(hp[4], 1, 1024) ||
        !in_range(hp[5], 1, 1 << 16) || hp[6] != hp[2] || !in_range(hp[7], 1, 1024) ||
        !in_range(hp[8], 1, 1024) || !in_range(hp[9], 1, 1024) ||
        !in_range(hp[10] % GGML_QNT_VERSION_FACTOR, 0, 64) || hp[10] < 0) {
        rc = cdt__errmsg_set(err, cap, CDT_EFORMAT,
                             "%s: not a whisper.cpp model, or a corrupt one (implausible header)",
                             path);
        goto done;
    }
    if (!rd_i32(&r, &n_mel) || !rd_i32(&r, &n_fft) || n_mel != hp[9] || !in_range(n_fft, 1, 4096) ||
        !rd_skip(&r, (uint64_t)n_mel * (uint64_t)n_fft * 4) || !rd_i32(&r, &n_vocab) ||
        !in_range(n_vocab, 0, 1 << 20)) {
        rc = cdt__errmsg_set(err, cap, CDT_EFORMAT,
                             "%s: truncated or corrupt whisper model (mel filters)", path);
        goto done;
    }
    for (int32_t i = 0; i < n_vocab; i++) {
        int32_t len;

        if (!rd_i32(&r, &len) || !in_range(len, 0, 1 << 16) || !rd_skip(&r, (uint64_t)len)) {
            rc = cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                 "%s: truncated or corrupt whisper model (vocabulary)", path);
            goto done;
        }
    }
    rc = check_tensors(&r, path, what, err, cap);
done:
    fclose(r.f);
    return rc;
}

/* whisper.cpp's ggml-silero format: magic, model type, version, window, context,
 * encoder layer shapes, LSTM and final conv sizes, tensors. */
static int check_vad_file(const char *path, char *err, size_t cap)
{
    static const char what[] = "VAD model";
    struct reader r;
    char type[65];
    int32_t len, v, n_layers;
    int rc = open_model(path, what, &r, err, cap);

    if (rc != 0)
        return rc;
    if ((rc = check_magic(&r, path, "Silero VAD model", err, cap)) != 0)
        goto done;
    if (!rd_i32(&r, &len) || !in_range(len, 1, 64) ||
        fread(type, 1, (size_t)len, r.f) != (size_t)len) {
        rc = cdt__errmsg_set(
            err, cap, CDT_EFORMAT,
            "%s: not a Silero VAD model (a whisper model? VAD takes ggml-silero-*.bin)", path);
        goto done;
    }
    type[len] = '\0';
    if (strncmp(type, "silero", 6) != 0) {
        rc = cdt__errmsg_set(err, cap, CDT_EFORMAT, "%s: not a Silero VAD model (model type '%s')",
                             path, type);
        goto done;
    }
    /* version (3), window, context */
    for (int i = 0; i < 5; i++) {
        if (!rd_i32(&r, &v) || (i >= 3 && !in_range(v, 1, 1 << 16))) {
            rc = cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                 "%s: truncated or corrupt VAD model (header)", path);
            goto done;
        }
    }
    if (!rd_i32(&r, &n_layers) || !in_range(n_layers, 1, 16)) {
        rc = cdt__errmsg_set(err, cap, CDT_EFORMAT, "%s: corrupt VAD model (header)", path);
        goto done;
    }
    for (int i = 0; i < n_layers * 3 + 4; i++) {
        if (!rd_i32(&r, &v) || !in_range(v, 1, 1 << 16)) {
            rc = cdt__errmsg_set(err, cap, CDT_EFORMAT,
                                 "%s: truncated or corrupt VAD model (header)", path);
            goto done;
        }
    }
    rc = check_tensors(&r, path, what, err, cap);
done:
    fclose(r.f);
    return rc;
}

/* ---- handle ---- */

struct cdt_transcribe_params cdt_transcribe_default_params(void)
{
    struct cdt_transcribe_params p;

    memset(&p, 0, sizeof(p));
    return p;
}

static int default_threads(void)
{
    int n = cdt_sysinfo_cpu_count();

    return n < 1 ? 1 : n > DEFAULT_MAX_THREADS ? DEFAULT_MAX_THREADS : n;
}

/* The whisper code for a code or an English name ("de", "german"), or NULL.
 * (whisper_lang_id would log an error for unknown names.) */
static const char *lang_code(const char *lang)
{
    for (int i = 0; i <= whisper_lang_max_id(); i++) {
        const char *code = whisper_lang_str(i), *full = whisper_lang_str_full(i);

        if ((code && strcasecmp(code, lang) == 0) || (full && strcasecmp(full, lang) == 0))
            return code;
    }
    return NULL;
}

void cdt_transcribe_log_set(struct cdt_log *lg)
{
    if (lg)
        whisper_log_set(cdt_log_ggml, lg);
    else
        whisper_log_set(NULL, NULL);
}

bool cdt_transcribe_vocabulary_valid(const char *v)
{
    size_t n = v ? strlen(v) : 0;

    if (n > CDT_TRANSCRIBE_MAX_VOCABULARY || (n && !cdt_utf8_valid(v, n)))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

int cdt_transcribe_new(const struct cdt_transcribe_params *p, struct cdt_transcribe **out,
                       char *errmsg, size_t errcap)
{
    struct whisper_context_params cp = whisper_context_default_params();
    struct cdt_transcribe *t;
    const char *lang;
    double t0 = cdt_now_ms();
    int rc;

    if (errmsg && errcap)
        errmsg[0] = '\0';
    if (!out)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "no output handle");
    *out = NULL;
    if (!p || !p->model_path || !*p->model_path)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "no whisper model given");
    if (p->n_threads < 0 || p->n_threads > CDT_TRANSCRIBE_MAX_THREADS)
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "threads must be 1..%d, not %d",
                               CDT_TRANSCRIBE_MAX_THREADS, p->n_threads);
    if (p->vad && (!p->vad_model_path || !*p->vad_model_path))
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "VAD is on but no VAD model was given");
    if (!(p->vad_threshold >= 0.0f && p->vad_threshold < 1.0f))
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL, "VAD threshold must be in (0, 1)");
    lang = p->language && *p->language ? p->language : "auto";
    if (strcmp(lang, "auto") != 0 && !(lang = lang_code(p->language)))
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "unknown language '%s' (use a code such as en, de, fr, or auto)",
                               p->language);

    if (!cdt_transcribe_vocabulary_valid(p->vocabulary))
        return cdt__errmsg_set(errmsg, errcap, CDT_EINVAL,
                               "vocabulary: at most %d bytes of UTF-8 without control characters",
                               CDT_TRANSCRIBE_MAX_VOCABULARY);
    if ((rc = check_whisper_file(p->model_path, errmsg, errcap)) != 0)
        return rc;
    if (p->vad && (rc = check_vad_file(p->vad_model_path, errmsg, errcap)) != 0)
        return rc;

    t = calloc(1, sizeof(*t));
    if (!t)
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
    t->log = p->log;
    t->progress = p->progress;
    t->user_data = p->user_data;
    t->n_threads = p->n_threads ? p->n_threads : default_threads();
    t->fit_window = p->fit_window;
    t->vad_threshold = p->vad_threshold > 0.0f ? p->vad_threshold : 0.0f;
    atomic_init(&t->cancel, 0);
    t->model_path = strdup(p->model_path);
    if (p->vad)
        t->vad_model_path = strdup(p->vad_model_path);
    if (p->vocabulary && *p->vocabulary)
        t->vocabulary = strdup(p->vocabulary);
    if (!t->model_path || (p->vad && !t->vad_model_path) ||
        (p->vocabulary && *p->vocabulary && !t->vocabulary)) {
        cdt_transcribe_free(t);
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOMEM, "out of memory");
    }

    cdt_sysinfo_load_backends();
    if (t->vad_model_path) {
        /* Load it once here so a bad file fails now, not in the first call;
         * whisper_full loads its own copy on first use. */
        struct whisper_vad_context_params vp = whisper_vad_default_context_params();
        struct whisper_vad_context *vctx;

        vp.n_threads = t->n_threads;
        vp.use_gpu = false;
        vctx = whisper_vad_init_from_file_with_params(t->vad_model_path, vp);
        if (!vctx) {
            cdt_transcribe_free(t);
            return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                                   "%s: whisper.cpp could not load this VAD model (corrupt or an "
                                   "unsupported version; -vv shows the engine's log)",
                                   p->vad_model_path);
        }
        whisper_vad_free(vctx);
    }

    cp.use_gpu = !p->cpu_only;
    CDT_LOG_I(t->log, "loading whisper model %s", t->model_path);
    t->ctx = whisper_init_from_file_with_params(t->model_path, cp);
    if (!t->ctx) {
        cdt_transcribe_free(t);
        return cdt__errmsg_set(
            errmsg, errcap, CDT_EFORMAT,
            "%s: whisper.cpp could not load this model (corrupt or an unsupported "
            "variant; -vv shows the engine's log)",
            p->model_path);
    }
    t->multilingual = whisper_is_multilingual(t->ctx) != 0;
    if (!t->multilingual && strcmp(lang, "en") != 0) {
        if (strcmp(lang, "auto") != 0)
            CDT_LOG_W(t->log, "%s is an English-only model: language '%s' ignored, using en",
                      t->model_path, lang);
        lang = "en";
    }
    snprintf(t->language, sizeof(t->language), "%s", lang);
    t->load_ms = cdt_now_ms() - t0;
    CDT_LOG_I(t->log, "whisper model loaded in %.0f ms (%s, language %s, VAD %s, %d threads)",
              t->load_ms, t->multilingual ? "multilingual" : "English-only", t->language,
              t->vad_model_path ? "on" : "off", t->n_threads);
    *out = t;
    return 0;
}

void cdt_transcribe_free(struct cdt_transcribe *t)
{
    if (!t)
        return;
    if (t->ctx)
        whisper_free(t->ctx);
    free(t->model_path);
    free(t->vad_model_path);
    free(t->vocabulary);
    free(t);
}

int cdt_transcribe_set_vocabulary(struct cdt_transcribe *t, const char *vocabulary)
{
    char *v = NULL;

    if (!t || !cdt_transcribe_vocabulary_valid(vocabulary))
        return CDT_EINVAL;
    if (vocabulary && *vocabulary && !(v = strdup(vocabulary)))
        return CDT_ENOMEM;
    free(t->vocabulary);
    t->vocabulary = v;
    return 0;
}

void cdt_transcribe_cancel(struct cdt_transcribe *t)
{
    if (t)
        atomic_store(&t->cancel, 1);
}

const char *cdt_transcribe_errmsg(const struct cdt_transcribe *t)
{
    return t ? t->errmsg : "no transcriber";
}

bool cdt_transcribe_is_multilingual(const struct cdt_transcribe *t)
{
    return t && t->multilingual;
}

bool cdt_transcribe_has_vad(const struct cdt_transcribe *t)
{
    return t && t->vad_model_path;
}

/* whisper.cpp's VAD parameters for a handle's threshold (0: whisper.cpp's). */
static struct whisper_vad_params vad_params(float threshold)
{
    struct whisper_vad_params vp = whisper_vad_default_params();

    /* 30 ms turned "The budget" into "budget" and "I think" into "Think" */
    vp.speech_pad_ms = VAD_SPEECH_PAD_MS;
    if (threshold > 0.0f)
        vp.threshold = threshold;
    return vp;
}

/* ---- streaming VAD ---- */

struct cdt_vad_stream {
    struct whisper_vad_context *vctx;
    float threshold; /* the handle's vad_threshold */
};

int cdt_vad_stream_new(struct cdt_transcribe *t, struct cdt_vad_stream **out)
{
    struct whisper_vad_context_params vp = whisper_vad_default_context_params();
    struct cdt_vad_stream *v;

    *out = NULL;
    if (!t || !t->vad_model_path)
        return CDT_EINVAL;
    if (!(v = calloc(1, sizeof(*v))))
        return CDT_ENOMEM;
    /* One thread: the model is tiny, and whisper needs the CPUs more. */
    vp.n_threads = 1;
    vp.use_gpu = false;
    v->vctx = whisper_vad_init_from_file_with_params(t->vad_model_path, vp);
    if (!v->vctx) {
        free(v);
        return CDT_EFORMAT;
    }
    whisper_vad_reset_state(v->vctx);
    v->threshold = t->vad_threshold;
    *out = v;
    return 0;
}

int cdt_vad_stream_spans(struct cdt_vad_stream *v, const float *x, size_t n, double *spans,
                         size_t cap, size_t *n_spans)
{
    struct whisper_vad_segments *segs;
    int ns;

    if (!n_spans)
        return CDT_EINVAL;
    *n_spans = 0;
    if (!v || (!x && n) || (!spans && cap) || n > (size_t)INT32_MAX)
        return CDT_EINVAL;
    if (n == 0)
        return 0;
    segs = whisper_vad_segments_from_samples(v->vctx, vad_params(v->threshold), x, (int)n);
    if (!segs)
        return CDT_EENGINE;
    ns = whisper_vad_segments_n_segments(segs);
    for (int i = 0; i < ns && (size_t)i < cap; i++) {
        /* whisper.cpp keeps them in centiseconds */
        spans[2 * i] = whisper_vad_segments_get_segment_t0(segs, i) / 100.0;
        spans[2 * i + 1] = whisper_vad_segments_get_segment_t1(segs, i) / 100.0;
    }
    *n_spans = ns > 0 ? (size_t)ns : 0;
    whisper_vad_free_segments(segs);
    return 0;
}

int cdt_vad_stream_feed(struct cdt_vad_stream *v, const float *x, size_t n, float *probs)
{
    size_t frames = n / CDT_VAD_FRAME, got = 0;
    const float *p = NULL;

    if (!v || n % CDT_VAD_FRAME != 0 || n > (size_t)INT32_MAX)
        return CDT_EINVAL;
    if (frames == 0)
        return 0;
    if (whisper_vad_detect_speech_no_reset(v->vctx, x, (int)n)) {
        int np = whisper_vad_n_probs(v->vctx);

        p = whisper_vad_probs(v->vctx);
        got = np > 0 ? (size_t)np : 0;
    }
    for (size_t i = 0; i < frames; i++)
        probs[i] = p && i < got ? p[i] : 1.0f; /* unknown reads as speech: never cut there */
    return p && got >= frames ? 0 : CDT_EENGINE;
}

void cdt_vad_stream_free(struct cdt_vad_stream *v)
{
    if (!v)
        return;
    whisper_vad_free(v->vctx);
    free(v);
}

/* ---- transcripts ---- */

void cdt_transcript_init(struct cdt_transcript *tr)
{
    memset(tr, 0, sizeof(*tr));
}

void cdt_transcript_cleanup(struct cdt_transcript *tr)
{
    if (!tr)
        return;
    for (size_t i = 0; i < tr->n_segments; i++)
        free(tr->segments[i].text);
    free(tr->segments);
    free(tr->text);
    cdt_transcript_init(tr);
}

/* A trimmed copy of s with invalid UTF-8 bytes replaced by U+FFFD (whisper's
 * byte-level tokens need not end on a character boundary). NULL: out of memory. */
static char *clean_text(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p);

    while (len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++, len--;
    while (len &&
           (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    return cdt_utf8_repair((const char *)p, len, NULL);
}

/* ---- whisper callbacks ---- */

static void on_progress(struct whisper_context *ctx, struct whisper_state *state, int progress,
                        void *user_data)
{
    struct run *r = user_data;

    (void)ctx;
    (void)state;
    if (r->prepare_ms < 0)
        r->prepare_ms = cdt_now_ms() - r->t0;
    if (progress < 0)
        progress = 0;
    if (progress > 100)
        progress = 100;
    if (r->t->progress && progress != r->last_percent) {
        r->last_percent = progress;
        r->t->progress(progress, r->t->user_data);
    }
}

static bool on_encoder_begin(struct whisper_context *ctx, struct whisper_state *state,
                             void *user_data)
{
    struct run *r = user_data;

    (void)ctx;
    (void)state;
    r->enc_start = cdt_now_ms();
    r->in_encode = true;
    return atomic_load(&r->t->cancel) == 0;
}

static void on_logits(struct whisper_context *ctx, struct whisper_state *state,
                      const whisper_token_data *tokens, int n_tokens, float *logits,
                      void *user_data)
{
    struct run *r = user_data;

    (void)ctx;
    (void)state;
    (void)tokens;
    (void)n_tokens;
    (void)logits;
    if (r->in_encode) {
        r->encode_ms += cdt_now_ms() - r->enc_start;
        r->in_encode = false;
    }
}

static bool on_abort(void *user_data)
{
    struct cdt_transcribe *t = user_data;

    return atomic_load(&t->cancel) != 0;
}

/* ---- transcription ---- */

static int fail(struct cdt_transcribe *t, int rc, const char *fmt, ...) CDT_PRINTF(3, 4);

static int fail(struct cdt_transcribe *t, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

/* Sets fp's audio_ctx for n samples when flags ask for a fitted window, and what
 * window the encoder sees in out. */
static void fit_window(struct cdt_transcribe *t, size_t n, unsigned flags,
                       struct whisper_full_params *fp, struct cdt_transcript *out)
{
    int full = whisper_model_n_audio_ctx(t->ctx); /* 1500 frames = 30 s */
    double per_s = full / 30.0;
    double need = ((double)n / CDT_AUDIO_RATE + CDT_TRANSCRIBE_FIT_MARGIN_S) * per_s;

    out->window_seconds = n ? 30.0 : 0.0;
    if (!((flags & CDT_TRANSCRIBE_FIT_WINDOW) || t->fit_window) || full <= 0 || need >= full || !n)
        return;
    fp->audio_ctx = (int)ceil(need);
    out->window_seconds = fp->audio_ctx / per_s;
}

/* Runs whisper on samples and fills out (already empty). what names the input in
 * messages. */
static int run_whisper(struct cdt_transcribe *t, const float *samples, size_t n, const char *what,
                       const char *prompt, unsigned flags, struct cdt_transcript *out)
{
    struct whisper_full_params fp = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    struct run r = {.t = t, .prepare_ms = -1.0, .last_percent = -1};
    char *joined = NULL; /* vocabulary + " " + prompt */
    double total;
    size_t text_len = 0, o = 0;
    int n_seg, rc;
    int lang_id;

    out->audio_seconds = (double)n / CDT_AUDIO_RATE;
    out->vad = t->vad_model_path != NULL;
    fp.n_threads = t->n_threads;
    fp.language = t->language;
    fp.translate = false;
    fp.no_context = true; /* calls are independent, but for the prompt they are given */
    if (prompt && !*prompt)
        prompt = NULL;
    fp.initial_prompt = t->vocabulary ? t->vocabulary : prompt;
    if (t->vocabulary && prompt) {
        size_t vl = strlen(t->vocabulary), pl = strlen(prompt);

        if (!(joined = malloc(vl + pl + 2)))
            return fail(t, CDT_ENOMEM, "out of memory");
        memcpy(joined, t->vocabulary, vl);
        joined[vl] = ' ';
        memcpy(joined + vl + 1, prompt, pl + 1);
        fp.initial_prompt = joined;
    }
    fp.print_special = false;
    fp.print_progress = false;
    fp.print_realtime = false;
    fp.print_timestamps = false;
    fp.progress_callback = on_progress;
    fp.progress_callback_user_data = &r;
    fp.encoder_begin_callback = on_encoder_begin;
    fp.encoder_begin_callback_user_data = &r;
    fp.logits_filter_callback = on_logits;
    fp.logits_filter_callback_user_data = &r;
    fp.abort_callback = on_abort;
    fp.abort_callback_user_data = t;
    fit_window(t, n, flags, &fp, out);
    if (t->vad_model_path) {
        fp.vad = true;
        fp.vad_model_path = t->vad_model_path;
        fp.vad_params = vad_params(t->vad_threshold);
    }

    r.t0 = cdt_now_ms();
    rc = n ? whisper_full(t->ctx, fp, samples, (int)n) : 0;
    total = cdt_now_ms() - r.t0;
    free(joined);
    if (atomic_load(&t->cancel))
        return fail(t, CDT_ECANCELED, "transcription of %s canceled", what);
    if (rc != 0)
        return fail(t, CDT_EENGINE, "whisper.cpp failed on %s (code %d; -vv shows why)", what, rc);

    if (r.prepare_ms < 0)
        r.prepare_ms = total; /* no window was decoded: too short, or no speech */
    out->timings.prepare_ms = r.prepare_ms;
    out->timings.encode_ms = r.encode_ms;
    out->timings.decode_ms = total - r.prepare_ms - r.encode_ms;
    if (out->timings.decode_ms < 0)
        out->timings.decode_ms = 0;

    lang_id = n ? whisper_full_lang_id(t->ctx) : -1;
    snprintf(out->language, sizeof(out->language), "%s",
             lang_id >= 0 && whisper_lang_str(lang_id) ? whisper_lang_str(lang_id)
             : strcmp(t->language, "auto") != 0        ? t->language
                                                       : "");

    n_seg = n ? whisper_full_n_segments(t->ctx) : 0;
    if (n_seg > 0) {
        out->segments = calloc((size_t)n_seg, sizeof(*out->segments));
        if (!out->segments)
            return fail(t, CDT_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n_seg; i++) {
        struct cdt_transcript_segment *s = &out->segments[out->n_segments];
        int64_t t0 = whisper_full_get_segment_t0(t->ctx, i);
        int64_t t1 = whisper_full_get_segment_t1(t->ctx, i);
        char *text = clean_text(whisper_full_get_segment_text(t->ctx, i));

        if (!text)
            return fail(t, CDT_ENOMEM, "out of memory");
        if (!*text) {
            free(text);
            continue;
        }
        /* centiseconds; keep them ordered and inside the input */
        s->start = (double)(t0 < 0 ? 0 : t0) / 100.0;
        s->end = (double)(t1 < t0 ? t0 : t1) / 100.0;
        if (s->end > out->audio_seconds)
            s->end = out->audio_seconds;
        if (s->start > s->end)
            s->start = s->end;
        s->text = text;
        text_len += strlen(text) + 1;
        out->n_segments++;
    }
    out->text = malloc(text_len + 1);
    if (!out->text)
        return fail(t, CDT_ENOMEM, "out of memory");
    for (size_t i = 0; i < out->n_segments; i++) {
        size_t l = strlen(out->segments[i].text);

        if (o)
            out->text[o++] = ' ';
        memcpy(out->text + o, out->segments[i].text, l);
        o += l;
    }
    out->text[o] = '\0';
    CDT_LOG_D(t->log, "transcript (%zu segments, %s): %s", out->n_segments, out->language,
              out->text);
    return 0;
}

static int transcribe(struct cdt_transcribe *t, const float *samples, size_t n, const char *what,
                      const char *prompt, unsigned flags, struct cdt_transcript *out,
                      double audio_ms, double t_start)
{
    int rc;

    rc = run_whisper(t, samples, n, what, prompt, flags, out);
    if (rc != 0) {
        cdt_transcript_cleanup(out);
    } else {
        out->timings.load_ms = t->load_ms;
        out->timings.audio_ms = audio_ms;
        out->timings.total_ms = cdt_now_ms() - t_start;
        t->errmsg[0] = '\0';
    }
    atomic_store(&t->cancel, 0);
    return rc;
}

int cdt_transcribe_samples(struct cdt_transcribe *t, const float *samples, size_t n,
                           struct cdt_transcript *out)
{
    return cdt_transcribe_samples_after(t, samples, n, NULL, 0, out);
}

int cdt_transcribe_samples_after(struct cdt_transcribe *t, const float *samples, size_t n,
                                 const char *prompt, unsigned flags, struct cdt_transcript *out)
{
    double t0 = cdt_now_ms();
    int rc;

    if (!t || !out)
        return CDT_EINVAL;
    cdt_transcript_cleanup(out);
    t->errmsg[0] = '\0';
    if (n && !samples)
        rc = fail(t, CDT_EINVAL, "no samples");
    else if (n > CDT_TRANSCRIBE_MAX_SAMPLES)
        rc = fail(t, CDT_ETOOBIG, "%.0f s of audio is over the %d s limit (CDT_AUDIO_MAX_SECONDS)",
                  (double)n / CDT_AUDIO_RATE, CDT_AUDIO_MAX_SECONDS);
    else
        return transcribe(t, samples, n, "the audio", prompt, flags, out, 0.0, t0);
    atomic_store(&t->cancel, 0);
    return rc;
}

int cdt_transcribe_file(struct cdt_transcribe *t, const char *path, struct cdt_transcript *out)
{
    struct cdt_audio a;
    double t0 = cdt_now_ms(), audio_ms;
    int rc;

    if (!t || !out)
        return CDT_EINVAL;
    cdt_transcript_cleanup(out);
    t->errmsg[0] = '\0';
    cdt_audio_init(&a);
    rc = cdt_audio_load(&a, path);
    if (rc != 0) {
        /* cdt_audio's messages start with the path */
        fail(t, rc, "%s", a.errmsg[0] ? a.errmsg : cdt_strerror(rc));
        cdt_audio_cleanup(&a);
        atomic_store(&t->cancel, 0);
        return rc;
    }
    audio_ms = cdt_now_ms() - t0;
    CDT_LOG_I(t->log, "%s: %.1f s of audio (%d Hz, %d channels) decoded in %.0f ms", path,
              cdt_audio_duration(&a), a.source_rate, a.source_channels, audio_ms);
    rc = transcribe(t, a.samples, a.n_samples, path, NULL, 0, out, audio_ms, t0);
    cdt_audio_cleanup(&a);
    return rc;
}
