/*
 * test_request: sign once and frame (what cdnapi's call does), for tests
 * that check a whole request's bytes.
 */
#ifndef CDNAGENT_TEST_REQUEST_H
#define CDNAGENT_TEST_REQUEST_H

#include <stddef.h>

#include "sign.h"

/* sign_request, then cdnapi_frame into out. SIGN_OK: *out_len bytes (NUL
 * appended when it fits). A frame larger than out_size: SIGN_ERR_TOO_SMALL,
 * *out_len the exact size of this signing's frame, out[0] = NUL. Each call
 * signs afresh (a new nonce unless req pins one). */
sign_status_t test_build_request(const sign_request_t *req, char *out, size_t out_size,
                                 size_t *out_len);

#endif
