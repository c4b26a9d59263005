/* Shared between cdnapi sources; not part of the public contract. */
#ifndef CDNAGENT_CDNAPI_INTERNAL_H
#define CDNAGENT_CDNAPI_INTERNAL_H

#include "cdnapi.h"

/* Fill res with a local refusal (PERMANENT_INPUT, Code like the service's);
 * returns res->cls. */
cdnapi_class_t cdnapi_local_error(cdnapi_result_t *res, const char *code, const char *message);
sign_param_t cdnapi_param(const char *name, const char *value);
/* Sign, send, parse; the reply body is discarded. */
cdnapi_class_t cdnapi_call_simple(cdnapi_t *api, const char *action, const sign_param_t *params,
                                  size_t count, cdnapi_result_t *res);

#endif
