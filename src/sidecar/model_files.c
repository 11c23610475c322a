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
