/* Shared between cdnapi sources; not part of the public contract. */
#ifndef CDNAGENT_CDNAPI_INTERNAL_H
#define CDNAGENT_CDNAPI_INTERNAL_H

#include "cdnapi.h"

/* Fill res with a local refusal (PERMANENT_INPUT, Code like the service's);
 * returns res->cls. */
cdnapi_class_t cdnapi_local_error(cdnapi_result_t *res, const char *code, const char *message);
/* Set res's class, Code and Message (the rest as it is); returns cls. */
cdnapi_class_t cdnapi_fail(cdnapi_result_t *res, cdnapi_class_t cls, const char *code,
                           const char *message);
sign_param_t cdnapi_param(const char *name, const char *value);

/* The largest request a call builds: six 12 KB PEM fields, encoded, and
 * the rest. */
#define CDNAPI_REQUEST_MAX (6u * CDNAPI_MAX_PEM_LEN + 4096u)
/* Sign req once and frame it into a port_malloc'ed buffer of the exact
 * size (*buf, *len); on failure res says why and *buf is NULL. */
cdnapi_class_t cdnapi_build_request(const sign_request_t *req, cdnapi_result_t *res, char **buf,
                                    size_t *len);
/* Sign, send, parse; the reply body is discarded. */
cdnapi_class_t cdnapi_call_simple(cdnapi_t *api, const char *action, const sign_param_t *params,
                                  size_t count, cdnapi_result_t *res);

#endif
