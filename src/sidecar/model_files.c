/* Finding and checking a model's GGUF file(s) (model_files_int.h): a path, a
 * directory with one model, or the shards of a split model, checked with ggml's
 * GGUF reader (header only, no tensor data is read). */
#include "../lib/err_int.h"
#include "model_files_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gguf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static bool has_suffix_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "<prefix>-NNNNN-of-MMMMM.gguf" (llama_split_path's form): sets the prefix length,
 * the shard number and the shard count. */
static bool shard_parse(const char *name, size_t *prefix_len, int *no, int *count)
{
    static const size_t tail = sizeof("-00001-of-00002.gguf") - 1;
    size_t n = strlen(name);
    const char *t;

    if (n <= tail)
        return false;
    t = name + n - tail;
    if (t[0] != '-' || !digits(t + 1, 5) || strncmp(t + 6, "-of-", 4) != 0 || !digits(t + 10, 5) ||
        strcasecmp(t + 15, ".gguf") != 0)
        return false;
    *no = (int)strtol(t + 1, NULL, 10);
    *count = (int)strtol(t + 10, NULL, 10);
    *prefix_len = n - tail;
    return *no >= 1 && *count >= 1 && *no <= *count && *count <= CDT_MAX_SHARDS;
}

static int errno_to_err(int e)
{
    if (e == ENOENT || e == ENOTDIR)
        return CDT_ENOTFOUND;
    if (e == EACCES || e == EPERM)
        return CDT_EPERM;
    if (e == ENOMEM)
        return CDT_ENOMEM;
    return CDT_EIO;
}

static int stat_error(const char *path, int e, char *errmsg, size_t errcap)
{
    int rc = errno_to_err(e);

    if (rc == CDT_ENOTFOUND)
        return cdt__errmsg_set(errmsg, errcap, rc, "no such file: %s", path);
    if (rc == CDT_EPERM)
        return cdt__errmsg_set(errmsg, errcap, rc, "permission denied: %s", path);
    return cdt__errmsg_set(errmsg, errcap, rc, "cannot read %s: %s", path, strerror(e));
}

/* One GGUF file: exists, readable, starts with the magic, and holds all of its
 * tensor data (llama would otherwise fail with a less helpful message). */
/* llama.cpp's own limits (llama-hparams.h at the pinned commit): values past them
 * end in a GGML_ASSERT (an abort) inside llama_model_load, not an error. */
#define CDT_GGUF_MAX_TAIL        (64ULL * 1024 * 1024) /* bytes after the last tensor we accept */
#define LLAMA_MAX_LAYERS_PINNED  512
#define LLAMA_MAX_EXPERTS_PINNED 1024

/* Architectures whose graph asserts that the rotary dimension is the head size. */
static const char *const rot_is_head[] = {
    "apertus",  "arcee",    "arctic",      "baichuan",  "chameleon", "codeshell", "cogvlm",
    "deci",     "deepseek", "dots1",       "dream",     "exaone",    "exaone4",   "falcon",
    "granite",  "grok",     "hunyuan-moe", "internlm2", "llada",     "llama",     "llama4",
    "mistral3", "nemotron", "olmo",        "olmo2",     "olmoe",     "orion",     "plamo",
    "qwen2",    "qwen2moe", "qwen2vl",     "qwen3",     "qwen3moe",  "qwen3vl",   "qwen3vlmoe",
    "seed_oss", "smollm3",  "starcoder2",  "xverse",
};

/* An unsigned integer value of key (any integer type), if present. */
static bool kv_uint(const struct gguf_context *g, const char *arch, const char *name, uint64_t *out)
{
    char key[128];
    int64_t k;

    snprintf(key, sizeof(key), "%s%s%s", arch ? arch : "", arch ? "." : "", name);
    k = gguf_find_key(g, key);
    if (k < 0)
        return false;
    switch (gguf_get_kv_type(g, k)) {
    case GGUF_TYPE_UINT8:
        *out = gguf_get_val_u8(g, k);
        return true;
    case GGUF_TYPE_UINT16:
        *out = gguf_get_val_u16(g, k);
        return true;
    case GGUF_TYPE_UINT32:
        *out = gguf_get_val_u32(g, k);
        return true;
    case GGUF_TYPE_UINT64:
        *out = gguf_get_val_u64(g, k);
        return true;
    case GGUF_TYPE_INT8:
        *out = gguf_get_val_i8(g, k) < 0 ? UINT64_MAX : (uint64_t)gguf_get_val_i8(g, k);
        return true;
    case GGUF_TYPE_INT16:
        *out = gguf_get_val_i16(g, k) < 0 ? UINT64_MAX : (uint64_t)gguf_get_val_i16(g, k);
        return true;
    case GGUF_TYPE_INT32:
        *out = gguf_get_val_i32(g, k) < 0 ? UINT64_MAX : (uint64_t)gguf_get_val_i32(g, k);
        return true;
    case GGUF_TYPE_INT64:
        *out = gguf_get_val_i64(g, k) < 0 ? UINT64_MAX : (uint64_t)gguf_get_val_i64(g, k);
        return true;
    default:
        return false; /* per-layer arrays and others: llama.cpp checks those */
    }
}

/* The hyperparameters llama.cpp asserts on instead of reporting (issue 14): checked
 * here so that a damaged or hostile file is a load error, not a dead sidecar. */
static int check_hparams(const struct gguf_context *g, const char *path, char *errmsg,
                         size_t errcap)
{
    int64_t ka = gguf_find_key(g, "general.architecture"), kt;
    const char *arch =
        ka >= 0 && gguf_get_kv_type(g, ka) == GGUF_TYPE_STRING ? gguf_get_val_str(g, ka) : NULL;
    uint64_t blocks, experts = 0, used, rot, heads, embd, head_dim = 0;
    bool has_experts;

    if (!arch)
        return 0; /* llama.cpp says what is missing */
    if (kv_uint(g, arch, "block_count", &blocks) &&
        (blocks == 0 || blocks > LLAMA_MAX_LAYERS_PINNED))
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT, "%s: %s.block_count is %llu (1..%d)",
                               path, arch, (unsigned long long)blocks, LLAMA_MAX_LAYERS_PINNED);
    has_experts = kv_uint(g, arch, "expert_count", &experts);
    if (has_experts && experts > LLAMA_MAX_EXPERTS_PINNED)
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                               "%s: %s.expert_count is %llu (at most %d)", path, arch,
                               (unsigned long long)experts, LLAMA_MAX_EXPERTS_PINNED);
    if (kv_uint(g, arch, "expert_used_count", &used) && used > experts)
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                               "%s: %s.expert_used_count %llu is over expert_count %llu", path,
                               arch, (unsigned long long)used, (unsigned long long)experts);
    if (!kv_uint(g, arch, "attention.key_length", &head_dim))
        head_dim = 0;
    if (head_dim == 0 && kv_uint(g, arch, "embedding_length", &embd) &&
        kv_uint(g, arch, "attention.head_count", &heads) && heads > 0 && embd % heads == 0)
        head_dim = embd / heads;
    if (kv_uint(g, arch, "rope.dimension_count", &rot) && head_dim > 0) {
        bool must_equal = false;

        for (size_t i = 0; i < sizeof(rot_is_head) / sizeof(rot_is_head[0]); i++)
            must_equal = must_equal || strcmp(arch, rot_is_head[i]) == 0;
        if (rot == 0 || rot > head_dim || (must_equal && rot != head_dim))
            return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                                   "%s: %s.rope.dimension_count is %llu, the head size %llu", path,
                                   arch, (unsigned long long)rot, (unsigned long long)head_dim);
    }
    /* SentencePiece ("llama") needs its byte tokens; a BPE vocabulary under that name
     * loads and then dies on the first text that needs a byte fallback. */
    kt = gguf_find_key(g, "tokenizer.ggml.model");
    if (kt >= 0 && gguf_get_kv_type(g, kt) == GGUF_TYPE_STRING &&
        strcmp(gguf_get_val_str(g, kt), "llama") == 0) {
        int64_t kv = gguf_find_key(g, "tokenizer.ggml.tokens");
        bool byte_tokens = false;

        if (kv >= 0 && gguf_get_kv_type(g, kv) == GGUF_TYPE_ARRAY &&
            gguf_get_arr_type(g, kv) == GGUF_TYPE_STRING) {
            size_t n = gguf_get_arr_n(g, kv);

            for (size_t i = 0; i < n && !byte_tokens; i++)
                byte_tokens = strcmp(gguf_get_arr_str(g, kv, i), "<0x0A>") == 0;
        }
        if (!byte_tokens)
            return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                                   "%s: tokenizer.ggml.model is \"llama\" (SentencePiece) but "
                                   "the vocabulary has no byte tokens: not a SentencePiece "
                                   "vocabulary",
                                   path);
    }
    return 0;
}

static int check_gguf(const char *path, uint64_t *size, char *errmsg, size_t errcap)
{
    struct gguf_init_params gp = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g;
    struct stat st;
    char magic[4];
    uint64_t end;
    ssize_t n;
    int fd;

    if (stat(path, &st) != 0)
        return stat_error(path, errno, errmsg, errcap);
    if (!S_ISREG(st.st_mode))
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT, "not a regular file: %s", path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return stat_error(path, errno, errmsg, errcap);
    do
        n = read(fd, magic, sizeof(magic));
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n != (ssize_t)sizeof(magic) || memcmp(magic, GGUF_MAGIC, sizeof(magic)) != 0)
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT, "not a GGUF file: %s", path);

    g = gguf_init_from_file(path, gp);
    if (!g)
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT, "corrupt or truncated GGUF: %s", path);
    if (gguf_find_key(g, "general.architecture") >= 0) {
        int rc = check_hparams(g, path, errmsg, errcap);

        if (rc != 0) {
            gguf_free(g);
            return rc;
        }
    }
    end = gguf_get_data_offset(g);
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        uint64_t e = (uint64_t)gguf_get_data_offset(g) + gguf_get_tensor_offset(g, i) +
                     gguf_get_tensor_size(g, i);

        if (e > end)
            end = e;
    }
    gguf_free(g);
    if (end > (uint64_t)st.st_size)
        return cdt__errmsg_set(
            errmsg, errcap, CDT_EFORMAT,
            "corrupt or truncated GGUF: %s (%llu bytes, its tensor data needs %llu)", path,
            (unsigned long long)st.st_size, (unsigned long long)end);
    /* Far more than its tensors (a file extended behind a valid header): llama.cpp
     * would read on for a long time before it failed, holding memory and ignoring
     * SIGTERM. Alignment padding is a few bytes; CDT_GGUF_MAX_TAIL is generous. */
    if ((uint64_t)st.st_size > end + CDT_GGUF_MAX_TAIL)
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                               "not a model file: %s is %llu bytes but its tensors end at %llu",
                               path, (unsigned long long)st.st_size, (unsigned long long)end);
    *size = (uint64_t)st.st_size;
    return 0;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s%s%s", dir, has_suffix_ci(dir, "/") ? "" : "/", name);

    return n >= 0 && (size_t)n < cap ? 0 : CDT_ETOOBIG;
}

/* The one GGUF model in directory `dir` (its first shard when sharded). Projector
 * files (mmproj*.gguf) that ship beside multimodal models are not models. */
static int find_in_dir(const char *dir, char *out, size_t cap, char *errmsg, size_t errcap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char first[256] = "", key[256] = "", other[256] = "", path[CDT_PATH_MAX];
    int entries = 0, rc = 0;

    if (!d)
        return stat_error(dir, errno, errmsg, errcap);
    while ((de = readdir(d)) != NULL) {
        char k[256];
        size_t plen;
        int no, count;
        struct stat st;

        if (++entries > CDT_MAX_DIR_ENTRIES) {
            rc = cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG, "more than %d entries in %s",
                                 CDT_MAX_DIR_ENTRIES, dir);
            break;
        }
        if (de->d_name[0] == '.' || !has_suffix_ci(de->d_name, ".gguf") ||
            strncasecmp(de->d_name, "mmproj", 6) == 0 || strlen(de->d_name) >= sizeof(k))
            continue;
        if (join_path(path, sizeof(path), dir, de->d_name) != 0 || stat(path, &st) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (shard_parse(de->d_name, &plen, &no, &count))
            snprintf(k, sizeof(k), "%.*s-of-%d", (int)plen, de->d_name, count);
        else {
            snprintf(k, sizeof(k), "%s", de->d_name);
            count = 0;
            plen = 0;
        }
        if (!key[0]) {
            snprintf(key, sizeof(key), "%s", k);
            snprintf(first, sizeof(first), "%s", de->d_name);
            if (count > 0) /* name the first shard, whichever shard came first */
                snprintf(first, sizeof(first), "%.*s-00001-of-%05d.gguf", (int)plen, de->d_name,
                         count);
        } else if (strcmp(key, k) != 0 && !other[0]) {
            snprintf(other, sizeof(other), "%s", de->d_name);
        }
    }
    closedir(d);
    if (rc != 0)
        return rc;
    if (!key[0])
        return cdt__errmsg_set(errmsg, errcap, CDT_ENOTFOUND, "no GGUF model in directory %s", dir);
    if (other[0])
        return cdt__errmsg_set(errmsg, errcap, CDT_EFORMAT,
                               "several GGUF models in directory %s (%s, %s): give the file's path",
                               dir, first, other);
    if (join_path(out, cap, dir, first) != 0)
        return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG, "path too long: %s", dir);
    return 0;
}

/* Resolves `path` (file or directory) to the file llama loads, checking every
 * shard. Fills info->path and info->file_size. */
int cdt__model_files_resolve(const char *path, struct cdt_model_info *info, char *errmsg,
                             size_t errcap)
{
    char file[CDT_PATH_MAX];
    const char *base;
    struct stat st;
    size_t plen;
    int no, count, rc;

    if (strlen(path) >= sizeof(file))
        return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG, "path too long (over %d bytes)",
                               CDT_PATH_MAX);
    if (stat(path, &st) != 0)
        return stat_error(path, errno, errmsg, errcap);
    if (S_ISDIR(st.st_mode)) {
        rc = find_in_dir(path, file, sizeof(file), errmsg, errcap);
        if (rc != 0)
            return rc;
    } else {
        snprintf(file, sizeof(file), "%s", path);
    }

    base = strrchr(file, '/');
    base = base ? base + 1 : file;
    info->file_size = 0;
    if (shard_parse(base, &plen, &no, &count) && count > 1) {
        /* llama loads a sharded model from its first shard. */
        size_t dirlen = (size_t)(base - file) + plen;
        char prefix[CDT_PATH_MAX], shard[CDT_PATH_MAX];

        snprintf(prefix, sizeof(prefix), "%.*s", (int)dirlen, file);
        for (int i = 1; i <= count; i++) {
            uint64_t size = 0;
            int n = snprintf(shard, sizeof(shard), "%s-%05d-of-%05d.gguf", prefix, i, count);

            if (n < 0 || (size_t)n >= sizeof(shard))
                return cdt__errmsg_set(errmsg, errcap, CDT_ETOOBIG, "path too long: %s", prefix);
            rc = check_gguf(shard, &size, errmsg, errcap);
            if (rc == CDT_ENOTFOUND)
                return cdt__errmsg_set(errmsg, errcap, rc, "missing shard %d of %d: %s", i, count,
                                       shard);
            if (rc != 0)
                return rc;
            info->file_size += size;
            if (i == 1)
                snprintf(file, sizeof(file), "%s", shard);
        }
    } else {
        rc = check_gguf(file, &info->file_size, errmsg, errcap);
        if (rc != 0)
            return rc;
    }
    snprintf(info->path, sizeof(info->path), "%s", file);
    return 0;
}
