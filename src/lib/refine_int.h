/* Private to refine.c and refine_providers.c: the providers' common signature and
 * the two built-in providers behind it (refine.c's table adds the callback). */
#ifndef CDT_REFINE_INT_H
#define CDT_REFINE_INT_H

#include "codictate/refine.h"

/* A provider: fills reply (reply->text malloc'd) and *model (the model used or
 * tried, caller frees; may stay NULL), or returns a negative cdt_err with errmsg
 * (the fallback reason for people: "no model installed", "deadline: …",
 * "sidecar: …", "openai endpoint: …") and *reason (the enum behind it:
 * CDT_REFINE_NO_MODEL, _MODEL_UNAVAILABLE, _TIMEOUT, _SIDECAR, _PROVIDER_ERROR,
 * _PROVIDER_AUTH). The caller presets *reason to CDT_REFINE_PROVIDER_ERROR and
 * takes CDT_ETIMEOUT for CDT_REFINE_TIMEOUT whatever the provider set. */
typedef int cdt__refine_provider_fn(const struct cdt_refine_params *p,
                                    const struct cdt_refine_llm_request *req,
                                    struct cdt_refine_llm_reply *reply, char **model,
                                    enum cdt_refine_reason *reason, char *errmsg, size_t errcap);

/* The sidecar through the lifecycle manager; every error sets *reason. */
cdt__refine_provider_fn cdt__refine_local;

/* An OpenAI-compatible endpoint; *reason is CDT_REFINE_PROVIDER_AUTH when the
 * endpoint refused the key (CDT_EAUTH), left as preset otherwise. */
cdt__refine_provider_fn cdt__refine_openai;

#endif
