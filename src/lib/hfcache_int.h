/* hfcache internals shared with download.c; not installed. */
#ifndef CODICTATE_HFCACHE_INT_H
#define CODICTATE_HFCACHE_INT_H

#include <sys/types.h>

/* `<root>/.locks/models--{org}--{name}/<key>.lock` (huggingface_hub's lock file for a
 * blob being downloaded). Returns 0 and *out (caller frees with free()) or a
 * negative cdt_err. */
int cdt__hfcache_lock_path(const char *root, const char *repo, const char *key, char **out);

#endif
