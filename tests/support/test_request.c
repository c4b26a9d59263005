/* test_request: see test_request.h. */
#include "test_request.h"

#include "cdnapi.h"

sign_status_t test_build_request(const sign_request_t *req, char *out, size_t out_size,
                                 size_t *out_len)
{
    sign_signed_t s;
    sign_status_t st;
    if (!out_len)
        return SIGN_ERR_ARG;
    *out_len = 0;
    st = sign_request(req, &s);
    if (st != SIGN_OK)
        return st;
    *out_len = cdnapi_frame(req, &s, NULL, 0);
    if (!out || *out_len > out_size) {
        if (out && out_size)
            out[0] = '\0';
        return SIGN_ERR_TOO_SMALL;
    }
    return cdnapi_frame(req, &s, out, out_size) == *out_len ? SIGN_OK : SIGN_ERR_ARG;
}
