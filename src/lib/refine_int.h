/* Private to refine.c and refine_providers.c: the two built-in providers. */
#ifndef CDT_REFINE_INT_H
#define CDT_REFINE_INT_H

#include "codictate/refine.h"

/* Each fills reply (reply->text malloc'd) and *model (the model used or tried,
 * caller frees; may stay NULL), or returns a negative cdt_err with errmsg: the
 * fallback reason for people ("no model installed", "deadline: …", "sidecar: …",
 * "openai endpoint: …"). The local provider also sets *reason on an error
 * (CDT_REFINE_NO_MODEL, _MODEL_UNAVAILABLE, _TIMEOUT, _SIDECAR); the caller tells
 * the openai provider's apart by the error code. */
int cdt__refine_local(const struct cdt_refine_params *p, const struct cdt_refine_llm_request *req,
                      struct cdt_refine_llm_reply *reply, char **model,
                      enum cdt_refine_reason *reason, char *errmsg, size_t errcap);
int cdt__refine_openai(const struct cdt_refine_params *p, const struct cdt_refine_llm_request *req,
                       struct cdt_refine_llm_reply *reply, char **model, char *errmsg,
                       size_t errcap);

#endif
