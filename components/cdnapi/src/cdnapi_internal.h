/* Shared between cdnapi sources; not part of the public contract. */
#ifndef CDNAGENT_CDNAPI_INTERNAL_H
#define CDNAGENT_CDNAPI_INTERNAL_H

#include "cdnapi.h"

bool cdnapi_local_error(cdnapi_result_t *res, const char *code, const char *message);
sign_param_t cdnapi_param(const char *name, const char *value);
/* Sign, send, parse; the reply body is discarded. */
void cdnapi_call_simple(cdnapi_t *api, const char *action, const sign_param_t *params,
                        size_t count, cdnapi_result_t *res);

#endif
