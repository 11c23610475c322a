/* Private to the sidecar's engine: finding and checking the GGUF file(s) of a
 * model before llama.cpp sees them, so that a bad path gets a reason a user
 * understands (no such file, permission, not GGUF, truncated, a missing shard)
 * rather than llama's exception text. No llama.h here. */
#ifndef CDT_MODEL_FILES_INT_H
#define CDT_MODEL_FILES_INT_H

#include "backend.h"

#include <stddef.h>

#define CDT_PATH_MAX        4096   /* bytes of a model path */
#define CDT_MAX_DIR_ENTRIES 100000 /* entries scanned in a model directory */
#define CDT_MAX_SHARDS      9999   /* shards of one sharded model */

/* Resolves `path` (a .gguf file, the first shard of a sharded model, or a directory
 * holding one model) to the file llama loads, checking every shard: the GGUF magic
 * and that tensor data lies within each file. Fills info->path and
 * info->file_size (all shards). Returns 0, or CDT_ENOTFOUND, CDT_EPERM, CDT_EIO,
 * CDT_EFORMAT, CDT_ETOOBIG with errmsg naming the file. */
int cdt__model_files_resolve(const char *path, struct cdt_model_info *info, char *errmsg,
                             size_t errcap);

#endif
