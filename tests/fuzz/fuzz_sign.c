/* Fuzz harness: the request signer (components/sign).
 *
 * Input: a flags byte, then length-prefixed fields (host, action, key id,
 * secret, STS token, credentials provider, API version), then parameters
 * (name: one length byte; value: two length bytes) until the input ends.
 * Timestamp and nonce are pinned, so a build is a pure function of the
 * input.
 *
 * Oracle (sign.h, cdnapi_frame): a signing refused is refused again and
 * frames nothing; the measured frame is exactly the bytes written into a
 * buffer of that size; one byte less writes the prefix and nothing past it;
 * two signings with pinned inputs frame byte-identical requests; and the
 * request is well-formed HTTP/1.1: the right method, one CRLF-terminated
 * line per header with no other control byte (no header injection),
 * Host as given, and a body matching Content-Length (V3 POST: 0). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "cdnapi.h"
#include "sign.h"

#define MAX_PARAMS (SIGN_MAX_PARAMS + 2) /* a little past the limit */

enum {
    F_V1 = 0x01,
    F_POST = 0x02,
    F_STS = 0x04,
    F_PROVIDER = 0x08,
    F_APIVER = 0x10,
    F_BIG = 0x20,     /* one value blown up past SIGN_MAX_VALUE_LEN's neighbourhood */
    F_BADTIME = 0x40, /* a pinned timestamp from the input (usually refused) */
};

static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

/* Content-Length's value in head[0..n), or -1 when absent. */
static long content_length(const char *head, size_t n)
{
    const char *p = find(head, n, "\r\nContent-Length: ");
    if (!p)
        return -1;
    p += 18;
    long v = 0;
    while (p < head + n && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return v;
}

static void check_request(const char *r, size_t n, const sign_request_t *req)
{
    const char *m = req->method == SIGN_METHOD_GET ? "GET /" : "POST /";
    FZ_CHECK(n > strlen(m) && memcmp(r, m, strlen(m)) == 0, "request does not start with %s", m);
    const char *end = find(r, n, "\r\n\r\n");
    FZ_CHECK(end != NULL, "no end of header section");
    size_t head = (size_t)(end - r) + 2; /* through the last header's CRLF */
    /* Request line: exactly two blanks (method SP target SP version). */
    const char *eol = find(r, head, "\r\n");
    int blanks = 0;
    for (const char *p = r; p < eol; p++)
        blanks += *p == ' ';
    FZ_CHECK(blanks == 2, "request line has %d blanks (an unencoded byte in the target)", blanks);
    FZ_CHECK(eol - r >= 9 && memcmp(eol - 9, " HTTP/1.1", 9) == 0, "request line not HTTP/1.1");
    for (size_t i = 0; i < head; i++) {
        unsigned char c = (unsigned char)r[i];
        if (c == '\r') {
            FZ_CHECK(i + 1 < head && r[i + 1] == '\n', "bare CR at %zu in the header section", i);
            i++;
            continue;
        }
        FZ_CHECK(c != '\n', "bare LF at %zu in the header section", i);
        FZ_CHECK(c >= 0x20 && c != 0x7f, "control byte 0x%02x at %zu in the header section", c, i);
    }
    char host_line[sizeof "\r\nHost: \r\n" + 300];
    snprintf(host_line, sizeof host_line, "\r\nHost: %s\r\n", req->host);
    FZ_CHECK(find(r, head + 2, host_line) != NULL, "no Host line for the given host");
    size_t body = n - (head + 2);
    long cl = content_length(r, head);
    if (req->method == SIGN_METHOD_POST) {
        FZ_CHECK(cl >= 0, "POST without Content-Length");
        FZ_CHECK((size_t)cl == body, "Content-Length %ld but the body has %zu bytes", cl, body);
        if (req->version == SIGN_V3)
            FZ_CHECK(body == 0, "V3 POST with a body of %zu bytes", body);
    } else {
        FZ_CHECK(body == 0, "GET with a body of %zu bytes", body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char host[300], action[300], kid[300], secret[300], provider[300], apiver[300];
    static char token[SIGN_MAX_TOKEN_LEN + 8], ts[32];
    static char names[MAX_PARAMS][SIGN_MAX_NAME_LEN + 8];
    static sign_param_t params[MAX_PARAMS];
    fuzz_in_t in = {data, size};
    uint8_t flags = fz_u8(&in);

    fz_str(&in, host, sizeof host);
    fz_str(&in, action, sizeof action);
    fz_str(&in, kid, sizeof kid);
    fz_str(&in, secret, sizeof secret);
    token[0] = provider[0] = apiver[0] = 0;
    if (flags & F_STS) {
        /* a token may be longer than 255 bytes: a length multiplier */
        uint8_t rep = fz_u8(&in) & 0x1f;
        fz_str(&in, token, 256);
        size_t tl = strlen(token);
        for (uint8_t i = 0; tl && i < rep && tl * 2 < sizeof token; i++, tl *= 2) {
            memcpy(token + tl, token, tl);
            token[2 * tl] = 0;
        }
    }
    if (flags & F_PROVIDER)
        fz_str(&in, provider, sizeof provider);
    if (flags & F_APIVER)
        fz_str(&in, apiver, sizeof apiver);
    if (flags & F_BADTIME)
        fz_str(&in, ts, sizeof ts);
    else
        memcpy(ts, "2026-11-24T10:30:00Z", SIGN_TIMESTAMP_LEN + 1);

    char *big = NULL;
    size_t np = 0;
    while (in.left && np < MAX_PARAMS) {
        const uint8_t *v;
        fz_str(&in, names[np], sizeof names[np]);
        size_t vl = fz_take(&in, fz_u16(&in), &v);
        params[np].name = names[np];
        params[np].name_len = strlen(names[np]);
        params[np].value = (const char *)v;
        params[np].value_len = vl;
        np++;
    }
    if ((flags & F_BIG) && np > 0 && params[0].value_len > 0) {
        /* Values near SIGN_MAX_VALUE_LEN without 64 KB inputs: the first
         * value repeated up to a size around the limit. */
        size_t want = SIGN_MAX_VALUE_LEN - 2 + (params[0].value_len % 5);
        big = malloc(want);
        if (!big)
            return 0;
        for (size_t i = 0; i < want; i++)
            big[i] = params[0].value[i % params[0].value_len];
        params[0].value = big;
        params[0].value_len = want;
    }

    sign_credentials_t cred = {kid, secret, (flags & F_STS) ? token : NULL};
    sign_request_t req;
    memset(&req, 0, sizeof req);
    req.credentials = &cred;
    req.host = host;
    req.action = action;
    req.api_version = (flags & F_APIVER) ? apiver : NULL;
    req.params = params;
    req.param_count = np;
    req.method = (flags & F_POST) ? SIGN_METHOD_POST : SIGN_METHOD_GET;
    req.version = (flags & F_V1) ? SIGN_V1 : SIGN_V3;
    req.timestamp = ts;
    req.nonce = "fuzz-nonce-0123456789abcdef";
    req.credentials_provider = (flags & F_PROVIDER) ? provider : NULL;

    sign_signed_t sig, sig2;
    sign_status_t q = sign_request(&req, &sig);
    if (q != SIGN_OK) {
        FZ_CHECK(sign_request(&req, &sig2) == q, "signing the same input twice: %s, then not",
                 sign_status_str(q));
        FZ_CHECK(cdnapi_frame(&req, &sig, NULL, 0) == 0, "a refused signing still frames");
        free(big);
        return 0;
    }
    size_t need = cdnapi_frame(&req, &sig, NULL, 0), len;
    FZ_CHECK(need > 0, "the frame of a signed request measured 0 bytes");
    char *out = malloc(need);
    char *again = malloc(need);
    if (!out || !again) {
        free(out);
        free(again);
        free(big);
        return 0;
    }
    /* Exactly need bytes suffice (no room for the courtesy NUL) ... */
    len = cdnapi_frame(&req, &sig, out, need);
    FZ_CHECK(len == need, "framed %zu bytes, measured %zu", len, need);
    /* ... a second signing with pinned inputs frames the same bytes ... */
    FZ_CHECK(sign_request(&req, &sig2) == SIGN_OK, "the second signing failed");
    FZ_CHECK(cdnapi_frame(&req, &sig2, again, need) == need && memcmp(out, again, need) == 0,
             "two signings with pinned inputs differ");
    /* ... and one byte less holds the prefix, the length says it was cut. */
    again[need - 1] = 'X';
    FZ_CHECK(cdnapi_frame(&req, &sig, again, need - 1) == need, "a short buffer's length");
    FZ_CHECK(memcmp(out, again, need - 1) == 0 && again[need - 1] == 'X',
             "a short buffer was written past its end or differs");
    check_request(out, len, &req);
    free(out);
    free(again);
    free(big);
    return 0;
}
