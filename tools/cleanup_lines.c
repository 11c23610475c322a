/* cleanup_lines: the deterministic cleanup pass (cleanup.h) over JSON Lines.
 *
 * Reads one JSON string (a transcript) per line on stdin and writes, in order, one
 * JSON object per line on stdout: {"cleaned": the pass's output, "prompt": the
 * refine prompt built around it with the default instructions, "is_clean": whether
 * cdt_refine_is_clean finds it clean (the refine path then skips the model when the
 * pass changed nothing but spaces)}. The training data
 * script (tools/train/make_data.py) uses it so the model is trained on exactly the
 * text and prompt the refine path gives it. Exit status 1 on a line that is not a
 * JSON string. */
#include "codictate/cleanup.h"
#include "codictate/refine.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    long no = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        cJSON *in = cJSON_ParseWithLength(line, (size_t)n);
        char *out = NULL, *prompt = NULL, *json;

        no++;
        if (!cJSON_IsString(in)) {
            fprintf(stderr, "cleanup_lines: line %ld: not a JSON string\n", no);
            return 1;
        }
        if (cdt_cleanup_text(in->valuestring, &out) != 0) {
            fprintf(stderr, "cleanup_lines: line %ld: the cleanup pass failed\n", no);
            return 1;
        }
        cJSON_Delete(in);
        prompt = cdt_refine_build_prompt(NULL, out);
        in = cJSON_CreateObject();
        json = in && prompt && cJSON_AddStringToObject(in, "cleaned", out) &&
                       cJSON_AddStringToObject(in, "prompt", prompt) &&
                       cJSON_AddBoolToObject(in, "is_clean", cdt_refine_is_clean(out) > 0)
                   ? cJSON_PrintUnformatted(in)
                   : NULL;
        if (!json) {
            fprintf(stderr, "cleanup_lines: out of memory\n");
            return 1;
        }
        puts(json);
        free(json);
        free(prompt);
        free(out);
        cJSON_Delete(in);
    }
    free(line);
    return 0;
}
