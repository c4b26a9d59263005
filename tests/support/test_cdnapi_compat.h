/*
 * test_cdnapi_compat: the tests written before cdnapi's typed returns check
 * counts and yes/no answers; these wrappers give them that view of the
 * typed API (each checks the class it is given too: a count is only a
 * count when the operation succeeded). tests/unit/test_cdnapi.c checks the
 * typed returns themselves.
 */
#ifndef CDNAGENT_TEST_CDNAPI_COMPAT_H
#define CDNAGENT_TEST_CDNAPI_COMPAT_H

#include <stdbool.h>

#include "cdnapi.h"

static inline bool t_valid_header(const char *domain, const char *key, const char *value,
                                  cdnapi_result_t *res)
{
    return cdnapi_validate_header(domain, key, value, res) == CDNAPI_SUCCESS;
}

static inline bool t_valid_cert(const char *domain, const char *cert_pem, const char *key_pem,
                                int64_t now_utc, cdnapi_result_t *res)
{
    return cdnapi_validate_cert(domain, cert_pem, key_pem, now_utc, res) == CDNAPI_SUCCESS;
}

/* The number visited, or -1 when the reply does not parse. */
static inline int t_parse_configs(const char *body, size_t len, cdnapi_header_fn fn, void *arg)
{
    size_t n = 0;
    return cdnapi_parse_header_configs(body, len, fn, arg, &n) == CDNAPI_SUCCESS ? (int)n : -1;
}

/* The number visited, or -1 on failure (res says why). */
static inline int t_list_headers(cdnapi_t *api, const char *domain, cdnapi_header_fn fn, void *arg,
                                 cdnapi_result_t *res)
{
    size_t n = 0;
    return cdnapi_list_headers(api, domain, fn, arg, &n, res) == CDNAPI_SUCCESS ? (int)n : -1;
}

/* The number of DomainConfigModel entries, or -1 on failure. */
static inline int t_batch(cdnapi_t *api, const char *const *domains, size_t ndomains,
                          const cdnapi_header_t *headers, size_t nheaders,
                          cdnapi_batch_config_t *out, size_t max, cdnapi_result_t *res)
{
    size_t n = 0;
    return cdnapi_batch_set_headers(api, domains, ndomains, headers, nheaders, out, max, &n, res) ==
                   CDNAPI_SUCCESS
               ? (int)n
               : -1;
}

/* true when the domain has a CertInfo (and the call succeeded). */
static inline bool t_cert_info(cdnapi_t *api, const char *domain, cdnapi_cert_info_t *info,
                               cdnapi_result_t *res)
{
    return cdnapi_cert_info(api, domain, info, res) == CDNAPI_SUCCESS && info->found;
}

#endif
