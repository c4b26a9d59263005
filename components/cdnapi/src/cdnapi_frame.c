/* cdnapi: framing the HTTP request around what sign signed, and building
 * a call's request. In a file of its own so that the signature's stack
 * (cdnapi_build_request's frame) is gone before the call's TLS handshake
 * runs: the compiler cannot fold this frame into the caller's. */
#include <string.h>

#include "cdnapi.h"
#include "cdnapi_internal.h"
#include "port.h"
#include "util.h"

/* Why a request could not be signed: no clock, no entropy or crypto (may
 * pass), a request over the limits (the change itself), or missing inputs
 * such as credentials (the configuration). */
static cdnapi_class_t sign_failure_class(sign_status_t ss)
{
    switch (ss) {
    case SIGN_ERR_CLOCK: return CDNAPI_CLOCK;
    case SIGN_ERR_RANDOM:
    case SIGN_ERR_CRYPTO: return CDNAPI_RETRYABLE;
    case SIGN_ERR_ARG: return CDNAPI_CONFIGURATION;
    default: return CDNAPI_PERMANENT_INPUT;
    }
}

static void put_dec(util_out_t *f, size_t v)
{
    char t[UTIL_U64_DEC_MAX + 1];
    util_out_put(f, t, util_u64_to_dec(v, t));
}

static void put_params(util_out_t *f, const sign_request_t *req, const sign_signed_t *s)
{
    size_t n;
    char *at = util_out_room(f, &n);
    f->len += sign_encode_params(req, s, at, n);
}

size_t cdnapi_frame(const sign_request_t *req, const sign_signed_t *s, char *out, size_t out_size)
{
    util_out_t f = {out, out_size, 0};
    size_t n, params = sign_encode_params(req, s, NULL, 0);
    bool form = req && req->version == SIGN_V1 && req->method == SIGN_METHOD_POST;
    char *at;
    /* A signed request always has V1's protocol parameters or V3's headers. */
    if (req == NULL ||
        (req->version == SIGN_V1 ? params : sign_encode_headers(req, s, NULL, 0)) == 0)
        return 0;
    util_out_str(&f, req->method == SIGN_METHOD_GET ? "GET /" : "POST /");
    if (!form && params) {
        util_out_str(&f, "?");
        put_params(&f, req, s);
    }
    util_out_str(&f, " HTTP/1.1\r\nHost: ");
    util_out_str(&f, req->host);
    util_out_str(&f, "\r\nUser-Agent: " CDNAPI_USER_AGENT "\r\nConnection: keep-alive\r\n");
    if (req->version == SIGN_V3)
        util_out_str(&f, "Accept: application/json\r\n");
    at = util_out_room(&f, &n);
    f.len += sign_encode_headers(req, s, at, n);
    if (form) {
        util_out_str(&f, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ");
        put_dec(&f, params);
        util_out_str(&f, "\r\n\r\n");
        put_params(&f, req, s);
    } else {
        if (req->version == SIGN_V3 && req->method == SIGN_METHOD_POST)
            util_out_str(&f, "Content-Length: 0\r\n"); /* POST without a length confuses proxies */
        util_out_str(&f, "\r\n");
    }
    return util_out_end(&f);
}

/* The signature lives in this frame only: cdnapi.c's call sends the
 * request after this returns. */
cdnapi_class_t cdnapi_build_request(const sign_request_t *req, cdnapi_result_t *res, char **buf,
                                    size_t *len)
{
    sign_signed_t sig;
    sign_status_t ss = sign_request(req, &sig);
    *buf = NULL;
    res->sign_status = ss;
    if (ss != SIGN_OK)
        return cdnapi_fail(res, sign_failure_class(ss), "Local.Sign", sign_status_str(ss));
    *len = cdnapi_frame(req, &sig, NULL, 0);
    if (*len + 1 > CDNAPI_REQUEST_MAX)
        return cdnapi_fail(res, CDNAPI_PERMANENT_INPUT, "Local.Sign",
                           "request larger than the limit");
    *buf = port_malloc(*len + 1);
    if (*buf == NULL)
        return cdnapi_fail(res, CDNAPI_RETRYABLE, "NoMemory", "");
    (void)cdnapi_frame(req, &sig, *buf, *len + 1); /* the same inputs: the same len */
    return CDNAPI_SUCCESS;
}
