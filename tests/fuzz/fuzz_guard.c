/* Fuzz target: the output guard (cdt_refine_guard, which ends in
 * cdt_refine_check_critical) on an (input, output) pair: the bytes before the first
 * NUL are the transcript the model was given, the bytes after it the model's raw
 * answer (no NUL: the answer is the transcript itself).
 * Checked besides ASan/UBSan: the return codes and *accepted keep their contract,
 * the reason fits its buffer (a small one too, cut cleanly), and an answer that is
 * the transcript unchanged keeps every critical token. */
#include "codictate/err.h"
#include "codictate/refine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_reason(const char *reason, size_t cap, const char *what)
{
    if (!memchr(reason, '\0', cap)) {
        fprintf(stderr, "%s: the reason is not terminated within its %zu bytes\n", what, cap);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t in_len = nul ? (size_t)(nul - data) : size;
    char *input = malloc(in_len + 1), *output, *accepted = NULL;
    char reason[CDT_REFINE_REASON_MAX], small[8];
    int rc;

    if (!input)
        return 0;
    memcpy(input, data, in_len);
    input[in_len] = '\0';
    if (nul) {
        size_t out_len = size - in_len - 1;

        output = malloc(out_len + 1);
        if (!output) {
            free(input);
            return 0;
        }
        memcpy(output, nul + 1, out_len);
        output[out_len] = '\0';
    } else {
        output = strdup(input);
    }

    memset(reason, 'x', sizeof(reason));
    rc = cdt_refine_guard(input, output, &accepted, reason, sizeof(reason));
    if (rc == 0) {
        if (!accepted) {
            fprintf(stderr, "cdt_refine_guard: 0 without an accepted text\n");
            abort();
        }
    } else if (rc > 0) {
        if (accepted) {
            fprintf(stderr, "cdt_refine_guard: rejected (%d) with an accepted text\n", rc);
            abort();
        }
        check_reason(reason, sizeof(reason), "cdt_refine_guard");
    } else if (rc != CDT_ENOMEM) {
        fprintf(stderr, "cdt_refine_guard: unexpected %d\n", rc);
        abort();
    }
    free(accepted);

    memset(small, 'x', sizeof(small));
    rc = cdt_refine_check_critical(input, output, small, sizeof(small));
    if (rc > 0)
        check_reason(small, sizeof(small), "cdt_refine_check_critical");
    else if (rc != 0 && rc != CDT_ENOMEM) {
        fprintf(stderr, "cdt_refine_check_critical: unexpected %d\n", rc);
        abort();
    }

    /* The transcript given back as it is changes nothing the check guards. */
    rc = cdt_refine_check_critical(input, input, reason, sizeof(reason));
    if (rc != 0 && rc != CDT_ENOMEM) {
        fprintf(stderr, "cdt_refine_check_critical rejects the unchanged transcript: %s\n", reason);
        fprintf(stderr, "transcript: \"%s\"\n", input);
        abort();
    }
    free(output);
    free(input);
    return 0;
}
