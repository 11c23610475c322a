/* Fuzz target: the catalog parser (cdt_catalog_load) on any bytes, not
 * NUL-terminated. A catalog it accepts must keep the promises of catalog.h: strings
 * never NULL, at least one file and one source per model, file names relative with
 * no "." or "..", sha256 empty or 64 lowercase hex digits, each id found by
 * cdt_catalog_find. */
#include "codictate/catalog.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, const char *id)
{
    fprintf(stderr, "accepted catalog breaks its promise: %s (model \"%s\")\n", what,
            id ? id : "(null)");
    abort();
}

static void check_file_name(const char *name, const char *id)
{
    const char *seg = name;

    if (!name || !name[0] || name[0] == '/')
        fail("a file name empty or absolute", id);
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);

        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            fail("a file name with an empty, \".\" or \"..\" part", id);
        if (!slash)
            break;
        seg = slash + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size ? size : 1), err[256];
    struct cdt_catalog *cat = NULL;
    uint64_t total = 0;

    if (!json)
        return 0;
    memcpy(json, data, size);
    if (cdt_catalog_load(json, size, &cat, err, sizeof(err)) != 0) {
        if (!memchr(err, '\0', sizeof(err)))
            fail("an unterminated error message", NULL);
        free(json);
        return 0;
    }
    free(json); /* the catalog owns copies */
    for (size_t i = 0; i < cdt_catalog_count(cat); i++) {
        const struct cdt_catalog_model *m = cdt_catalog_model_at(cat, i);

        if (!m || !m->id || !m->name || !m->best_for || !m->license || !m->license_url)
            fail("a NULL model or string", m ? m->id : NULL);
        if (cdt_catalog_find(cat, m->id) == NULL)
            fail("cdt_catalog_find does not find the id", m->id);
        for (size_t k = 0; k < m->n_aliases; k++)
            if (!m->aliases[k] || !cdt_catalog_find(cat, m->aliases[k]))
                fail("an alias NULL or not found", m->id);
        for (size_t k = 0; k < m->n_languages; k++)
            if (!m->languages[k])
                fail("a NULL language", m->id);
        if (m->n_files < 1 || !m->files || m->n_sources < 1 || !m->sources)
            fail("no file or no source", m->id);
        for (size_t k = 0; k < m->n_files; k++) {
            const char *h = m->files[k].sha256;

            check_file_name(m->files[k].name, m->id);
            if (!h || (h[0] && strlen(h) != 64) || strspn(h, "0123456789abcdef") != strlen(h))
                fail("a sha256 that is not 64 lowercase hex digits", m->id);
        }
        for (size_t k = 0; k < m->n_sources; k++)
            if (!m->sources[k].repo || !m->sources[k].revision)
                fail("a source without repo or revision", m->id);
        total += cdt_catalog_model_size(m);
        (void)cdt_catalog_is_path(m->id);
    }
    for (int tier = CDT_TIER_LE8; tier <= CDT_TIER_GT16; tier++)
        (void)cdt_catalog_recommended(cat, (enum cdt_ram_tier)tier);
    (void)total;
    cdt_catalog_free(cat);
    return 0;
}
