/* The web UI's files (web/), compiled into the binary by cmake/web_assets.cmake.
 * The table holds exactly the files under web/ at build time; nothing else can be
 * found through it, so a server that serves only what cdt_asset_find returns never
 * serves a file from disk.
 *
 * Thread-safety: everything here is read-only static data; call from any thread. */
#ifndef CODICTATE_APP_ASSETS_H
#define CODICTATE_APP_ASSETS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CDT_ASSET_MAX_PATH 256 /* a longer request path is never an asset, bytes */

struct cdt_asset {
    const char *path;          /* the URL path: "/index.html", "/app.js" */
    const unsigned char *data; /* the file's bytes, followed by a NUL not counted in len */
    size_t len;                /* bytes */
    const char *content_type;  /* "text/html; charset=utf-8", ..., else
                                * "application/octet-stream" */
};

/* The asset for a request path (without query string), or NULL. "/" is
 * "/index.html". Matching is exact and byte for byte: no decoding, no
 * normalisation; NULL also for a path that does not start with "/", contains
 * "..", "//" or a backslash, or is over CDT_ASSET_MAX_PATH. Borrowed, static. */
const struct cdt_asset *cdt_asset_find(const char *path);

/* The number of assets, and the i-th one (NULL when i >= cdt_asset_count()), in
 * path order. Borrowed, static. */
size_t cdt_asset_count(void);
const struct cdt_asset *cdt_asset_at(size_t i);

#ifdef __cplusplus
}
#endif

#endif
