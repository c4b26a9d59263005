/*
 * sign.h — Alibaba Cloud OpenAPI request signer.
 *
 * Signs an RPC-style call once (sign_request: one timestamp, one nonce),
 * either with RPC V1 (HMAC-SHA1, what @alicloud/pop-core sends) or V3
 * (ACS3-HMAC-SHA256, what @alicloud/cdn20180510 5.x sends), and encodes
 * the parts of the request it owns: the sorted, percent-encoded parameters
 * (sign_encode_params) and V3's signature headers (sign_encode_headers).
 * HTTP framing (request line, Host, User-Agent, Connection, Content-Type,
 * Content-Length) is the caller's: cdnapi_frame.
 *
 * No allocation: the hashes are streamed, so the only memory is the caller's
 * buffers plus a small fixed stack frame (an array of SIGN_MAX_PARAMS +
 * the protocol's own parameters).
 */
#ifndef CDNAGENT_SIGN_H
#define CDNAGENT_SIGN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits (stated, named): */
#define SIGN_MAX_PARAMS 64               /* caller parameters per request */
#define SIGN_MAX_VALUE_LEN (64u * 1024u) /* bytes of one parameter value */
#define SIGN_MAX_NAME_LEN 128u           /* bytes of one parameter name */
#define SIGN_MAX_FIELD_LEN 256u          /* host, action, version, key id */
#define SIGN_MAX_TOKEN_LEN 4096u         /* STS SecurityToken */

#define SIGN_DEFAULT_API_VERSION "2018-05-10"
#define SIGN_TIMESTAMP_LEN 20    /* "YYYY-MM-DDThh:mm:ssZ" */
#define SIGN_NONCE_MAX_LEN 64    /* pinned nonce; generated ones are 32 hex chars */
#define SIGN_V1_SIGNATURE_LEN 28 /* base64 of 20 bytes */
#define SIGN_V3_SIGNATURE_LEN 64 /* hex of 32 bytes */

typedef enum {
    SIGN_OK = 0,
    SIGN_ERR_ARG = -1,       /* NULL/empty required field, bad method/version, bad pinned value */
    SIGN_ERR_LIMIT = -2,     /* a SIGN_MAX_* limit is exceeded */
    SIGN_ERR_TOO_SMALL = -3, /* output buffer too small (the SignedHeaders list) */
    SIGN_ERR_CLOCK = -4,     /* no timestamp pinned and port_wall_clock says NOT_SET */
    SIGN_ERR_RANDOM = -5,    /* no nonce pinned and port_random failed */
    SIGN_ERR_CRYPTO = -6,    /* mbedTLS md failure */
} sign_status_t;

const char *sign_status_str(sign_status_t status);

typedef enum { SIGN_METHOD_GET = 0, SIGN_METHOD_POST = 1 } sign_method_t;
typedef enum { SIGN_V3 = 0, SIGN_V1 = 1 } sign_version_t; /* V3 is the default */

/* One API parameter. Explicit lengths: values may hold NUL-free binary-ish
 * UTF-8 (PEMs with newlines); they are not required to be NUL-terminated. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sign_param_t;

/* Credentials are borrowed, never copied to the output except the key id and
 * the STS token (which the protocol sends). The secret only enters HMAC. */
typedef struct {
    const char *access_key_id;     /* required, NUL-terminated */
    const char *access_key_secret; /* required, NUL-terminated */
    const char *security_token;    /* STS token or NULL */
} sign_credentials_t;

typedef struct {
    const sign_credentials_t *credentials;
    const char *host;        /* "host" or "host:port"; sent as Host and signed as such */
    const char *action;      /* e.g. "SetReqHeaderConfig" */
    const char *api_version; /* NULL -> SIGN_DEFAULT_API_VERSION */
    const sign_param_t *params;
    size_t param_count;   /* <= SIGN_MAX_PARAMS */
    sign_method_t method; /* V1: GET query or POST form body; V3: params in query, empty body */
    sign_version_t version;
    const char *timestamp; /* NULL -> port_wall_clock; else "YYYY-MM-DDThh:mm:ssZ" */
    const char *nonce;     /* NULL -> 128 random bits from port_random as 32 hex chars */
    /* V3 only, optional (NULL = omit): value of the x-acs-credentials-provider
     * header, which @alicloud/cdn20180510 5.x sends and signs ("static_ak",
     * "static_sts"). The server does not need it; set it to reproduce the
     * SDK's Authorization byte for byte. Added after the first commit, last
     * so that existing initializers stay valid. */
    const char *credentials_provider;
} sign_request_t;

/* What sign_request resolved and computed: one timestamp, one nonce, one
 * signature per request. The encoders below turn it, with the same request,
 * into the parts of the HTTP request that sign owns; the request line,
 * Host, User-Agent, Connection, Content-Type/Length and the body's place
 * are the framer's (cdnapi_frame). */
#define SIGN_SIGNED_HEADERS_LEN 256u /* "host;x-acs-action;...": 9 names at most */
typedef struct {
    char timestamp[SIGN_TIMESTAMP_LEN + 1];
    char nonce[SIGN_NONCE_MAX_LEN + 1];
    char signature[SIGN_V3_SIGNATURE_LEN + 1];    /* V1: base64, V3: hex */
    char signed_headers[SIGN_SIGNED_HEADERS_LEN]; /* V3: the SignedHeaders list */
} sign_signed_t;

/* Sign req once: resolve its timestamp (req->timestamp or the port's wall
 * clock) and nonce (req->nonce or 128 random bits), compute the signature.
 * On an error s is zeroed. */
sign_status_t sign_request(const sign_request_t *req, sign_signed_t *s);

/* The parameters as signed, sorted and percent-encoded "a=1&b=2": the
 * query (GET, and V3) or the form body (V1 POST). V1: the protocol's own
 * parameters included and "&Signature=..." last. Returns the length (0 for
 * a request sign_request refused or an unsigned s); writes min(length,
 * out_size) bytes, plus a NUL when it fits. out may be NULL to measure. req
 * must be the request s was signed from, unchanged. */
size_t sign_encode_params(const sign_request_t *req, const sign_signed_t *s, char *out,
                          size_t out_size);

/* The header lines sign owns, each "Name: value\r\n": V3's x-acs-* headers
 * and Authorization (none for V1, whose signature is a parameter). Same
 * return and buffer rules as sign_encode_params. */
size_t sign_encode_headers(const sign_request_t *req, const sign_signed_t *s, char *out,
                           size_t out_size);

/* Percent-encode per RFC 3986 (only A-Z a-z 0-9 - _ . ~ kept, %XX upper
 * case). Returns the encoded length; writes min(len, out_size-1) bytes plus
 * a NUL when out_size > 0. out may be NULL to only measure. */
size_t sign_percent_encode(const char *in, size_t in_len, char *out, size_t out_size);

/* Format a UTC time (seconds since 1970) as "YYYY-MM-DDThh:mm:ssZ";
 * out must hold SIGN_TIMESTAMP_LEN + 1 bytes. */
sign_status_t sign_format_timestamp(long long utc_seconds, char out[SIGN_TIMESTAMP_LEN + 1]);

/* Lower level, for tests and diagnostics. V1: the full parameter set
 * (common ones included, Signature excluded) -> base64 signature. */
sign_status_t sign_v1_signature(sign_method_t method, const sign_param_t *params, size_t count,
                                const char *access_key_secret, char out[SIGN_V1_SIGNATURE_LEN + 1]);

/* V3: signed headers given as name/value pairs (names lower case, any
 * order), query parameters, body -> hex signature and, optionally, the
 * SignedHeaders list ("a;b;c") into signed_headers (size signed_headers_size). */
sign_status_t sign_v3_signature(sign_method_t method, const sign_param_t *query, size_t query_count,
                                const sign_param_t *headers, size_t header_count, const char *body,
                                size_t body_len, const char *access_key_secret,
                                char out[SIGN_V3_SIGNATURE_LEN + 1], char *signed_headers,
                                size_t signed_headers_size);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_SIGN_H */
