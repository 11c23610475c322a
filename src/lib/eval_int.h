/* Internal to the eval module (eval.c, eval_set.c); never installed. */
#ifndef CDT_EVAL_INT_H
#define CDT_EVAL_INT_H

#include <stddef.h>

/* The number of tokens cdt_eval_compare sees in text (words and marks). */
size_t cdt__eval_count_tokens(const char *text);

/* The index of the element whose first member, a `const char *`, equals name, in
 * an array of n elements `stride` bytes apart; n when none. */
size_t cdt__eval_name_index(const void *arr, size_t n, size_t stride, const char *name);

#endif
