/* The Hugging Face cache layout (see hfcache.h for the picture). This module only
 * knows names and files: it never talks to the network. Invariants: every name
 * another process may look at appears through rename() (blobs, snapshot links,
 * refs, markers), never half-written; a blob is deleted only when no snapshot of
 * its repository links to it; names from outside are validated before they are
 * joined into paths, so no "..", absolute path or control character gets in. */
#include "codictate/hfcache.h"
#include "codictate/util.h"
#include "hfcache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HASH_CHUNK      (1024 * 1024)         /* read size while hashing, bytes */
#define HASH_REPORT     (64ull * 1024 * 1024) /* progress interval while hashing, bytes */
#define REF_MAX         128                   /* bytes read from a refs/ file */
#define MARKER_MAX      128                   /* bytes of a verified marker */
#define WALK_MAX_DEPTH  32                    /* directory depth searched under snapshots/ */
#define VERIFIED_SUBDIR ".codictate/verified"
#define DAMAGED_SUBDIR  ".codictate/damaged"

static void seterr(char *errmsg, size_t errcap, const char *fmt, ...) CDT_PRINTF(3, 4);

static void seterr(char *errmsg, size_t errcap, const char *fmt, ...)
{
    va_list ap;

    if (!errmsg || !errcap)
        return;
    va_start(ap, fmt);
    vsnprintf(errmsg, errcap, fmt, ap);
    va_end(ap);
}

/* Formats a path into a new buffer. Returns 0, CDT_ETOOBIG or CDT_ENOMEM. */
static int path_fmt(char **out, const char *fmt, ...) CDT_PRINTF(2, 3);

static int path_fmt(char **out, const char *fmt, ...)
{
    va_list ap;
    char *buf;
    int n;

    *out = NULL;
    buf = malloc(CDT_HF_MAX_PATH);
    if (!buf)
        return CDT_ENOMEM;
    va_start(ap, fmt);
    n = vsnprintf(buf, CDT_HF_MAX_PATH, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= CDT_HF_MAX_PATH) {
        free(buf);
        return CDT_ETOOBIG;
    }
    *out = buf;
    return 0;
}

/* ---- names ---- */

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static bool valid_repo_part(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_name_char(s[i]))
            return false;
        /* "--" separates the parts of the cache directory name. */
        if (i + 1 < n && ((s[i] == '.' && s[i + 1] == '.') || (s[i] == '-' && s[i + 1] == '-')))
            return false;
    }
    return true;
}

bool cdt_hfcache_valid_repo(const char *repo)
{
    const char *slash;
    size_t len;

    if (!repo)
        return false;
    len = strlen(repo);
    slash = strchr(repo, '/');
    if (len > CDT_HF_MAX_REPO || !slash || strchr(slash + 1, '/'))
        return false;
    return valid_repo_part(repo, (size_t)(slash - repo)) &&
           valid_repo_part(slash + 1, len - (size_t)(slash - repo) - 1);
}

/* '/'-separated relative path: no empty, "." or ".." segment, no backslash or
 * control character. */
static bool valid_rel_path(const char *s, size_t max)
{
    size_t len, seg = 0;

    if (!s)
        return false;
    len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '/' || c == '\0') {
            size_t n = i - seg;

            if (n == 0 || (n == 1 && s[seg] == '.') ||
                (n == 2 && s[seg] == '.' && s[seg + 1] == '.'))
                return false;
            seg = i + 1;
        } else if (c < 0x20 || c == 0x7f || c == '\\') {
            return false;
        }
    }
    return true;
}

bool cdt_hfcache_valid_file(const char *file)
{
    return valid_rel_path(file, CDT_HF_MAX_FILE);
}

bool cdt_hfcache_valid_revision(const char *revision)
{
    if (!valid_rel_path(revision, CDT_HF_MAX_REV))
        return false;
    return strchr(revision, ' ') == NULL && strstr(revision, "..") == NULL;
}

bool cdt_hfcache_valid_key(const char *key)
{
    size_t n;

    if (!key)
        return false;
    n = strlen(key);
    if (n == 0 || n >= CDT_HF_MAX_KEY)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool is_lower_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool cdt_hfcache_is_commit(const char *revision)
{
    return is_lower_hex(revision, 40);
}

bool cdt_hfcache_is_sha256(const char *s)
{
    return is_lower_hex(s, 64);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool cdt_hfcache_is_partial_name(const char *name)
{
    return name && (ends_with(name, ".incomplete") || ends_with(name, ".part") ||
                    ends_with(name, ".downloadInProgress"));
}

/* ---- paths ---- */

/* `value` with a leading "~/" expanded (as huggingface_hub's expanduser does). */
static int expand_home(char **out, const char *value, const char *suffix)
{
    if (value[0] == '~' && (value[1] == '/' || value[1] == '\0')) {
        const char *home = cdt_env_str("HOME", NULL);

        if (!home)
            return CDT_ENOTFOUND;
        return path_fmt(out, "%s%s%s", home, value + 1, suffix);
    }
    return path_fmt(out, "%s%s", value, suffix);
}

int cdt_hfcache_root(char **out)
{
    const char *v;

    *out = NULL;
    if ((v = cdt_env_str("HF_HUB_CACHE", NULL)))
        return expand_home(out, v, "");
    if ((v = cdt_env_str("HF_HOME", NULL)))
        return expand_home(out, v, "/hub");
    if ((v = cdt_env_str("XDG_CACHE_HOME", NULL)))
        return expand_home(out, v, "/huggingface/hub");
    if ((v = cdt_env_str("HOME", NULL)))
        return path_fmt(out, "%s/.cache/huggingface/hub", v);
    return CDT_ENOTFOUND;
}

/* "org/name" → "models--org--name" into buf (cap ≥ CDT_HF_MAX_REPO + 16). */
static void repo_folder(const char *repo, char *buf, size_t cap)
{
    const char *slash = strchr(repo, '/');

    snprintf(buf, cap, "models--%.*s--%s", (int)(slash - repo), repo, slash + 1);
}

int cdt_hfcache_repo_dir(const char *root, const char *repo, char **out)
{
    char folder[CDT_HF_MAX_REPO + 16];

    *out = NULL;
    if (!root || !*root || !cdt_hfcache_valid_repo(repo))
        return CDT_EINVAL;
    repo_folder(repo, folder, sizeof(folder));
    return path_fmt(out, "%s/%s", root, folder);
}

int cdt_hfcache_blob_path(const char *root, const char *repo, const char *key, char **out)
{
    char folder[CDT_HF_MAX_REPO + 16];

    *out = NULL;
    if (!root || !*root || !cdt_hfcache_valid_repo(repo) || !cdt_hfcache_valid_key(key))
        return CDT_EINVAL;
    repo_folder(repo, folder, sizeof(folder));
    return path_fmt(out, "%s/%s/blobs/%s", root, folder, key);
}

int cdt_hfcache_incomplete_path(const char *root, const char *repo, const char *key, char **out)
{
    char folder[CDT_HF_MAX_REPO + 16];

    *out = NULL;
    if (!root || !*root || !cdt_hfcache_valid_repo(repo) || !cdt_hfcache_valid_key(key))
        return CDT_EINVAL;
    repo_folder(repo, folder, sizeof(folder));
    return path_fmt(out, "%s/%s/blobs/%s.incomplete", root, folder, key);
}

int cdt__hfcache_lock_path(const char *root, const char *repo, const char *key, char **out)
{
    char folder[CDT_HF_MAX_REPO + 16];

    *out = NULL;
    if (!root || !*root || !cdt_hfcache_valid_repo(repo) || !cdt_hfcache_valid_key(key))
        return CDT_EINVAL;
    repo_folder(repo, folder, sizeof(folder));
    return path_fmt(out, "%s/.locks/%s/%s.lock", root, folder, key);
}

/* The directory part of `path` into buf ("." when none). */
static void dir_of(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(buf, cap, ".");
    else if (slash == path)
        snprintf(buf, cap, "/");
    else
        snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* ---- lookups ---- */

/* Reads a small file into buf, NUL-terminated, whitespace-trimmed at the end.
 * Returns 0, CDT_ENOTFOUND, CDT_EIO. */
static int read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? CDT_ENOTFOUND : CDT_EIO;
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return CDT_EIO;
    buf[n] = '\0';
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    return 0;
}

int cdt_hfcache_resolve_revision(const char *root, const char *repo, const char *revision,
                                 char commit[41])
{
    char *dir = NULL, *ref = NULL;
    char buf[REF_MAX];
    int rc;

    commit[0] = '\0';
    if (!cdt_hfcache_valid_revision(revision))
        return CDT_EINVAL;
    if (cdt_hfcache_is_commit(revision)) {
        memcpy(commit, revision, 41);
        return 0;
    }
    if ((rc = cdt_hfcache_repo_dir(root, repo, &dir)) != 0)
        return rc;
    rc = path_fmt(&ref, "%s/refs/%s", dir, revision);
    free(dir);
    if (rc != 0)
        return rc;
    rc = read_small(ref, buf, sizeof(buf));
    free(ref);
    if (rc != 0)
        return rc;
    if (!cdt_hfcache_is_commit(buf))
        return CDT_EFORMAT;
    memcpy(commit, buf, 41);
    return 0;
}

int cdt_hfcache_find(const char *root, const char *repo, const char *revision, const char *file,
                     struct cdt_hfcache_entry *out)
{
    char *dir = NULL, *blobs = NULL;
    char blobs_real[CDT_HF_MAX_PATH], parent[CDT_HF_MAX_PATH];
    struct stat lst, st;
    int rc, n;

    memset(out, 0, sizeof(*out));
    if (!cdt_hfcache_valid_file(file))
        return CDT_EINVAL;
    if (cdt_hfcache_is_partial_name(base_of(file)))
        return CDT_ENOTFOUND;
    if ((rc = cdt_hfcache_resolve_revision(root, repo, revision, out->commit)) != 0)
        return rc == CDT_EFORMAT ? CDT_ENOTFOUND : rc;
    if ((rc = cdt_hfcache_repo_dir(root, repo, &dir)) != 0)
        return rc;
    n = snprintf(out->path, sizeof(out->path), "%s/snapshots/%s/%s", dir, out->commit, file);
    if (n < 0 || (size_t)n >= sizeof(out->path)) {
        rc = CDT_ETOOBIG;
        goto done;
    }
    if (lstat(out->path, &lst) != 0 || stat(out->path, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = CDT_ENOTFOUND;
        goto done;
    }
    if (S_ISLNK(lst.st_mode)) {
        if (!realpath(out->path, out->blob)) {
            rc = CDT_ENOTFOUND;
            goto done;
        }
    } else {
        snprintf(out->blob, sizeof(out->blob), "%s", out->path);
    }
    if (cdt_hfcache_is_partial_name(base_of(out->blob))) {
        rc = CDT_ENOTFOUND;
        goto done;
    }
    out->size = (uint64_t)st.st_size;
    /* The key is the blob's name when the bytes lie in this repository's blobs/. */
    if (S_ISLNK(lst.st_mode) && path_fmt(&blobs, "%s/blobs", dir) == 0 &&
        realpath(blobs, blobs_real)) {
        dir_of(out->blob, parent, sizeof(parent));
        if (strcmp(parent, blobs_real) == 0 && cdt_hfcache_valid_key(base_of(out->blob)))
            snprintf(out->key, sizeof(out->key), "%.*s", CDT_HF_MAX_KEY - 1, base_of(out->blob));
    }
    rc = 0;
done:
    free(blobs);
    free(dir);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int cdt_hfcache_find_llama(const char *repo, const char *file, char **out)
{
    char name[CDT_HF_MAX_REPO + CDT_HF_MAX_FILE + 2];
    const char *v;
    struct stat st;
    int rc;

    *out = NULL;
    if (!cdt_hfcache_valid_repo(repo) || !cdt_hfcache_valid_file(file))
        return CDT_EINVAL;
    /* llama.cpp: repo + "_" + file with every '/' replaced by '_'. */
    snprintf(name, sizeof(name), "%s_%s", repo, file);
    for (char *p = name; *p; p++)
        if (*p == '/')
            *p = '_';
    if ((v = cdt_env_str("LLAMA_CACHE", NULL)))
        rc = path_fmt(out, "%s/%s", v, name);
    else if ((v = cdt_env_str("XDG_CACHE_HOME", NULL)))
        rc = path_fmt(out, "%s/llama.cpp/%s", v, name);
    else if ((v = cdt_env_str("HOME", NULL)))
        rc = path_fmt(out, "%s/.cache/llama.cpp/%s", v, name);
    else
        rc = CDT_ENOTFOUND;
    if (rc != 0)
        return rc;
    if (stat(*out, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(*out);
        *out = NULL;
        return CDT_ENOTFOUND;
    }
    return 0;
}

/* ---- writing ---- */

/* A temporary name next to `path`, unique to this process and call. */
static int temp_name(char *buf, size_t cap, const char *path)
{
    struct timespec ts;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    n = snprintf(buf, cap, "%s.tmp-%ld-%lx.incomplete", path, (long)getpid(),
                 (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)buf);
    return n > 0 && (size_t)n < cap ? 0 : CDT_ETOOBIG;
}

/* Writes `data` to `path` through a temporary file and a rename. */
static int write_atomic(const char *path, const char *data)
{
    char tmp[CDT_HF_MAX_PATH];
    size_t len = strlen(data);
    int fd;

    if (temp_name(tmp, sizeof(tmp), path) != 0)
        return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len || close(fd) != 0) {
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;

        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

int cdt_hfcache_commit(const char *root, const char *repo, const char *revision, const char *commit,
                       const char *file, const char *key, const char *src, char **path_out,
                       char *errmsg, size_t errcap)
{
    char *dir = NULL, *blob = NULL, *snap = NULL, *ref = NULL;
    char target[CDT_HF_MAX_PATH], parent[CDT_HF_MAX_PATH], tmp[CDT_HF_MAX_PATH];
    struct stat st;
    size_t depth = 0, off = 0;
    int rc;

    if (path_out)
        *path_out = NULL;
    if (!cdt_hfcache_is_commit(commit) || !cdt_hfcache_valid_file(file) ||
        (revision && !cdt_hfcache_valid_revision(revision))) {
        seterr(errmsg, errcap, "invalid revision, commit or file name");
        return CDT_EINVAL;
    }
    if ((rc = cdt_hfcache_repo_dir(root, repo, &dir)) != 0 ||
        (rc = cdt_hfcache_blob_path(root, repo, key, &blob)) != 0 ||
        (rc = path_fmt(&snap, "%s/snapshots/%s/%s", dir, commit, file)) != 0) {
        seterr(errmsg, errcap, "invalid repository, key or path too long");
        goto done;
    }

    /* 1. The blob. */
    dir_of(blob, parent, sizeof(parent));
    if (cdt_mkdir_p(parent, 0755) != 0) {
        seterr(errmsg, errcap, "cannot create %s: %s", parent, strerror(errno));
        rc = CDT_EIO;
        goto done;
    }
    if (src) {
        if (rename(src, blob) != 0) {
            seterr(errmsg, errcap, "cannot rename %s to %s: %s", src, blob, strerror(errno));
            rc = errno == ENOENT ? CDT_ENOTFOUND : CDT_EIO;
            goto done;
        }
    } else if (stat(blob, &st) != 0 || !S_ISREG(st.st_mode)) {
        seterr(errmsg, errcap, "no blob at %s", blob);
        rc = CDT_ENOTFOUND;
        goto done;
    }

    /* 2. The snapshot link: ../../ (+ one ../ per directory in file) blobs/<key>. */
    for (const char *p = file; *p; p++)
        depth += *p == '/';
    for (size_t i = 0; i < depth + 2 && off + 3 < sizeof(target); i++, off += 3)
        memcpy(target + off, "../", 3);
    snprintf(target + off, sizeof(target) - off, "blobs/%s", key);
    dir_of(snap, parent, sizeof(parent));
    if (cdt_mkdir_p(parent, 0755) != 0) {
        seterr(errmsg, errcap, "cannot create %s: %s", parent, strerror(errno));
        rc = CDT_EIO;
        goto done;
    }
    if (temp_name(tmp, sizeof(tmp), snap) != 0 || symlink(target, tmp) != 0) {
        seterr(errmsg, errcap, "cannot create a link in %s: %s", parent, strerror(errno));
        rc = CDT_EIO;
        goto done;
    }
    if (rename(tmp, snap) != 0) {
        seterr(errmsg, errcap, "cannot create %s: %s", snap, strerror(errno));
        unlink(tmp);
        rc = CDT_EIO;
        goto done;
    }

    /* 3. The ref, for a branch or tag name. */
    if (revision && !cdt_hfcache_is_commit(revision)) {
        if ((rc = path_fmt(&ref, "%s/refs/%s", dir, revision)) != 0)
            goto done;
        dir_of(ref, parent, sizeof(parent));
        if (cdt_mkdir_p(parent, 0755) != 0 || write_atomic(ref, commit) != 0) {
            seterr(errmsg, errcap, "cannot write %s: %s", ref, strerror(errno));
            rc = CDT_EIO;
            goto done;
        }
    }
    if (path_out) {
        *path_out = snap;
        snap = NULL;
    }
    rc = 0;
done:
    free(ref);
    free(snap);
    free(blob);
    free(dir);
    return rc;
}

/* ---- deleting ---- */

/* The blob key a snapshot link points at ("" when it does not point into blobs/). */
static void link_key(const char *link, char *key, size_t cap)
{
    char target[CDT_HF_MAX_PATH], parent[CDT_HF_MAX_PATH];
    ssize_t n = readlink(link, target, sizeof(target) - 1);

    key[0] = '\0';
    if (n <= 0)
        return;
    target[n] = '\0';
    dir_of(target, parent, sizeof(parent));
    if (strcmp(base_of(parent), "blobs") == 0 && cdt_hfcache_valid_key(base_of(target)))
        snprintf(key, cap, "%.*s", CDT_HF_MAX_KEY - 1, base_of(target));
}

/* Whether any symlink under `dir` (recursively) points at blobs/<key>. */
static bool links_to(const char *dir, const char *key, int depth)
{
    char path[CDT_HF_MAX_PATH], k[CDT_HF_MAX_KEY];
    struct dirent *e;
    struct stat st;
    bool found = false;
    DIR *d;

    if (depth > WALK_MAX_DEPTH || !(d = opendir(dir)))
        return false;
    while (!found && (e = readdir(d))) {
        int n;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            found = links_to(path, key, depth + 1);
        } else if (S_ISLNK(st.st_mode)) {
            link_key(path, k, sizeof(k));
            found = strcmp(k, key) == 0;
        }
    }
    closedir(d);
    return found;
}

/* Removes the blob of `key`, its marker and its partial. Counts what it removed. */
static void remove_blob(const char *root, const char *repo, const char *dir, const char *key,
                        bool keep_blob, int *removed)
{
    char *p = NULL;

    if (!keep_blob && cdt_hfcache_blob_path(root, repo, key, &p) == 0) {
        *removed += unlink(p) == 0;
        free(p);
        if (path_fmt(&p, "%s/" VERIFIED_SUBDIR "/%s", dir, key) == 0) {
            unlink(p);
            free(p);
        }
        if (path_fmt(&p, "%s/" DAMAGED_SUBDIR "/%s", dir, key) == 0) {
            unlink(p);
            free(p);
        }
    }
    if (cdt_hfcache_incomplete_path(root, repo, key, &p) == 0) {
        *removed += unlink(p) == 0;
        free(p);
    }
}

int cdt_hfcache_remove(const char *root, const char *repo, const char *revision, const char *file,
                       const char *key, char *errmsg, size_t errcap)
{
    char *dir = NULL, *snap = NULL, *snaps = NULL;
    char commit[41], lkey[CDT_HF_MAX_KEY] = "", parent[CDT_HF_MAX_PATH];
    struct stat st;
    int rc, removed = 0;

    if (!cdt_hfcache_valid_file(file) || (key && !cdt_hfcache_valid_key(key))) {
        seterr(errmsg, errcap, "invalid file name or key");
        return CDT_EINVAL;
    }
    if ((rc = cdt_hfcache_repo_dir(root, repo, &dir)) != 0 ||
        (rc = path_fmt(&snaps, "%s/snapshots", dir)) != 0) {
        seterr(errmsg, errcap, "invalid repository name");
        goto done;
    }
    rc = cdt_hfcache_resolve_revision(root, repo, revision, commit);
    if (rc == CDT_EINVAL) {
        seterr(errmsg, errcap, "invalid revision");
        goto done;
    }
    if (rc == 0 && (rc = path_fmt(&snap, "%s/%s/%s", snaps, commit, file)) != 0)
        goto done;
    if (snap && lstat(snap, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            link_key(snap, lkey, sizeof(lkey));
        if (S_ISDIR(st.st_mode)) {
            seterr(errmsg, errcap, "%s is a directory", snap);
            rc = CDT_EINVAL;
            goto done;
        }
        if (unlink(snap) != 0) {
            seterr(errmsg, errcap, "cannot delete %s: %s", snap, strerror(errno));
            rc = CDT_EIO;
            goto done;
        }
        removed++;
        /* Empty directories up to snapshots/ go too. */
        dir_of(snap, parent, sizeof(parent));
        while (strlen(parent) > strlen(snaps) && rmdir(parent) == 0)
            *strrchr(parent, '/') = '\0';
    }
    if (lkey[0])
        remove_blob(root, repo, dir, lkey, links_to(snaps, lkey, 0), &removed);
    if (key && strcmp(key, lkey) != 0)
        remove_blob(root, repo, dir, key, true, &removed);
    rc = removed ? 0 : CDT_ENOTFOUND;
    if (rc)
        seterr(errmsg, errcap, "%s of %s is not in the cache", file, repo);
done:
    free(snap);
    free(snaps);
    free(dir);
    return rc;
}

/* ---- hashing ---- */

int cdt_hfcache_sha256_file(const char *path, cdt_hash_progress_fn progress, void *user_data,
                            char hex[CDT_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint64_t done = 0, next_report = HASH_REPORT;
    EVP_MD_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    struct stat st;
    int fd, rc = CDT_EIO;

    hex[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? CDT_ENOTFOUND : CDT_EIO;
    if (fstat(fd, &st) != 0)
        goto done;
    buf = malloc(HASH_CHUNK);
    ctx = EVP_MD_CTX_new();
    if (!buf || !ctx) {
        rc = CDT_ENOMEM;
        goto done;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto done;
    for (;;) {
        ssize_t n = read(fd, buf, HASH_CHUNK);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto done;
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            goto done;
        done += (uint64_t)n;
        if (progress && done >= next_report) {
            next_report = done + HASH_REPORT;
            if (progress(done, (uint64_t)st.st_size, user_data)) {
                rc = CDT_ECANCELED;
                goto done;
            }
        }
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        goto done;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    rc = 0;
    if (progress && progress(done, (uint64_t)st.st_size, user_data))
        rc = CDT_ECANCELED;
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return rc;
}

int cdt_hfcache_verify(const char *path, const char *expected, cdt_hash_progress_fn progress,
                       void *user_data, char got[CDT_SHA256_HEX])
{
    char hex[CDT_SHA256_HEX];
    int rc;

    if (got)
        got[0] = '\0';
    if (!expected || strlen(expected) != 64)
        return CDT_EINVAL;
    if ((rc = cdt_hfcache_sha256_file(path, progress, user_data, hex)) != 0)
        return rc;
    if (got)
        memcpy(got, hex, CDT_SHA256_HEX);
    return strcasecmp(hex, expected) == 0 ? 0 : CDT_ECHECKSUM;
}

/* ---- verified markers ---- */

/* "<sha256> <size> <mtime>" of the blob as it is now. */
static int marker_text(const char *blob, const char *sha256, char *buf, size_t cap)
{
    struct stat st;

    if (stat(blob, &st) != 0 || !S_ISREG(st.st_mode))
        return CDT_ENOTFOUND;
    snprintf(buf, cap, "%s %llu %lld.%09ld", sha256, (unsigned long long)st.st_size,
             (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    return 0;
}

static int marker_paths(const char *root, const char *repo, const char *key, const char *subdir,
                        char **blob, char **marker)
{
    char *dir = NULL;
    int rc;

    *blob = *marker = NULL;
    if ((rc = cdt_hfcache_repo_dir(root, repo, &dir)) != 0 ||
        (rc = cdt_hfcache_blob_path(root, repo, key, blob)) != 0 ||
        (rc = path_fmt(marker, "%s/%s/%s", dir, subdir, key)) != 0) {
        free(*blob);
        *blob = NULL;
    }
    free(dir);
    return rc;
}

bool cdt_hfcache_is_verified(const char *root, const char *repo, const char *key,
                             const char *sha256)
{
    char *blob, *marker;
    char want[MARKER_MAX], have[MARKER_MAX];
    bool ok = false;

    if (!cdt_hfcache_is_sha256(sha256) ||
        marker_paths(root, repo, key, VERIFIED_SUBDIR, &blob, &marker) != 0)
        return false;
    if (marker_text(blob, sha256, want, sizeof(want)) == 0 &&
        read_small(marker, have, sizeof(have)) == 0)
        ok = strcmp(want, have) == 0;
    free(marker);
    free(blob);
    return ok;
}

int cdt_hfcache_mark_verified(const char *root, const char *repo, const char *key,
                              const char *sha256)
{
    char *blob, *marker;
    char text[MARKER_MAX], parent[CDT_HF_MAX_PATH];
    int rc;

    if (!cdt_hfcache_is_sha256(sha256))
        return CDT_EINVAL;
    if ((rc = marker_paths(root, repo, key, VERIFIED_SUBDIR, &blob, &marker)) != 0)
        return rc;
    if ((rc = marker_text(blob, sha256, text, sizeof(text))) == 0) {
        dir_of(marker, parent, sizeof(parent));
        rc = cdt_mkdir_p(parent, 0755) == 0 && write_atomic(marker, text) == 0 ? 0 : CDT_EIO;
    }
    free(marker);
    free(blob);
    return rc;
}

bool cdt_hfcache_is_damaged(const char *root, const char *repo, const char *key,
                            char got[CDT_SHA256_HEX])
{
    char *blob, *marker;
    char want[MARKER_MAX], have[MARKER_MAX], sha[CDT_SHA256_HEX];
    bool bad = false;

    if (got)
        got[0] = '\0';
    if (marker_paths(root, repo, key, DAMAGED_SUBDIR, &blob, &marker) != 0)
        return false;
    if (read_small(marker, have, sizeof(have)) == 0 && strlen(have) > 64 && have[64] == ' ') {
        memcpy(sha, have, 64);
        sha[64] = '\0';
        bad = cdt_hfcache_is_sha256(sha) && marker_text(blob, sha, want, sizeof(want)) == 0 &&
              strcmp(want, have) == 0;
        if (bad && got)
            memcpy(got, sha, CDT_SHA256_HEX);
    }
    free(marker);
    free(blob);
    return bad;
}

int cdt_hfcache_mark_damaged(const char *root, const char *repo, const char *key,
                             const char *got_sha256)
{
    char *blob, *marker, *verified = NULL, *dir = NULL;
    char text[MARKER_MAX], parent[CDT_HF_MAX_PATH];
    int rc;

    if (!cdt_hfcache_is_sha256(got_sha256))
        return CDT_EINVAL;
    if ((rc = marker_paths(root, repo, key, DAMAGED_SUBDIR, &blob, &marker)) != 0)
        return rc;
    if ((rc = marker_text(blob, got_sha256, text, sizeof(text))) == 0) {
        dir_of(marker, parent, sizeof(parent));
        rc = cdt_mkdir_p(parent, 0755) == 0 && write_atomic(marker, text) == 0 ? 0 : CDT_EIO;
    }
    /* The verified marker would vouch for these bytes (a bit flip keeps the size and
     * the mtime): gone, so the next download hashes the blob again. */
    if (rc == 0 && cdt_hfcache_repo_dir(root, repo, &dir) == 0 &&
        path_fmt(&verified, "%s/" VERIFIED_SUBDIR "/%s", dir, key) == 0)
        unlink(verified);
    free(verified);
    free(dir);
    free(marker);
    free(blob);
    return rc;
}
