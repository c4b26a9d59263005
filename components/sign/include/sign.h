/*
 * sign.h — Alibaba Cloud OpenAPI request signer and request-bytes builder.
 *
 * Builds the complete HTTP/1.1 request (request line, Host, signature
 * headers, Content-Type/Content-Length when there is a body, body) for an
 * RPC-style call, signed either with RPC V1 (HMAC-SHA1, what
 * @alicloud/pop-core sends) or V3 (ACS3-HMAC-SHA256, what
 * @alicloud/cdn20180510 5.x sends). The bytes are opaque to the transport.
 *
 * No allocation: the hashes are streamed, so the only memory is the caller's
 * output buffer plus a small fixed stack frame (an index array of
 * SIGN_MAX_PARAMS entries).
 */
#ifndef CDNAGENT_SIGN_H
#define CDNAGENT_SIGN_H

#include <stddef.h>

/* Limits (stated, named): */
#define SIGN_MAX_PARAMS 64              /* caller parameters per request */
#define SIGN_MAX_VALUE_LEN (64u * 1024u) /* bytes of one parameter value */
#define SIGN_MAX_NAME_LEN 128u          /* bytes of one parameter name */
#define SIGN_MAX_FIELD_LEN 256u         /* host, action, version, key id */
#define SIGN_MAX_TOKEN_LEN 4096u        /* STS SecurityToken */
/* Upper bound of any request this module builds: every value may triple
 * when percent-encoded, plus headers. Callers that cannot size-query can
 * allocate this much (it is large: prefer the size query). */
#define SIGN_MAX_REQUEST_LEN \
    (SIGN_MAX_PARAMS * 3u * (SIGN_MAX_NAME_LEN + SIGN_MAX_VALUE_LEN + 2u) + 8u * 1024u + 3u * SIGN_MAX_TOKEN_LEN)

#define SIGN_DEFAULT_API_VERSION "2018-05-10"
#define SIGN_USER_AGENT "cdnagent/0.1.0"
#define SIGN_TIMESTAMP_LEN 20 /* "YYYY-MM-DDThh:mm:ssZ" */
#define SIGN_NONCE_MAX_LEN 64 /* pinned nonce; generated ones are 32 hex chars */
#define SIGN_V1_SIGNATURE_LEN 28 /* base64 of 20 bytes */
#define SIGN_V3_SIGNATURE_LEN 64 /* hex of 32 bytes */
#define SIGN_V1_SIZE_SLACK 64    /* see sign_build_request's size query */

typedef enum {
    SIGN_OK = 0,
    SIGN_ERR_ARG = -1,       /* NULL/empty required field, bad method/version, bad pinned value */
    SIGN_ERR_LIMIT = -2,     /* a SIGN_MAX_* limit is exceeded */
    SIGN_ERR_TOO_SMALL = -3, /* output buffer too small; *out_len holds the size needed */
    SIGN_ERR_CLOCK = -4,     /* no timestamp pinned and port_wall_clock says NOT_SET */
    SIGN_ERR_RANDOM = -5,    /* no nonce pinned and port_random failed */
    SIGN_ERR_CRYPTO = -6,    /* mbedTLS md failure */
} sign_status_t;

const char *sign_status_str(int status);

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
    size_t param_count;      /* <= SIGN_MAX_PARAMS */
    sign_method_t method;    /* V1: GET query or POST form body; V3: params in query, empty body */
    sign_version_t version;
    const char *timestamp;   /* NULL -> port_wall_clock; else "YYYY-MM-DDThh:mm:ssZ" */
    const char *nonce;       /* NULL -> 128 random bits from port_random as 32 hex chars */
    /* V3 only, optional (NULL = omit): value of the x-acs-credentials-provider
     * header, which @alicloud/cdn20180510 5.x sends and signs ("static_ak",
     * "static_sts"). The server does not need it; set it to reproduce the
     * SDK's Authorization byte for byte. Added after the first commit, last
     * so that existing initializers stay valid. */
    const char *credentials_provider;
} sign_request_t;

/*
 * Build the signed request bytes into out[0..out_size).
 * On SIGN_OK, *out_len = bytes written (a NUL is appended when room allows,
 * not counted). Size query: pass out = NULL / out_size = 0, or any too-small
 * buffer -> SIGN_ERR_TOO_SMALL with *out_len = a size that suffices for a
 * rebuild with the same inputs: exact for V3; for V1 it includes
 * SIGN_V1_SIZE_SLACK, because the percent-encoded Base64 signature (re-made
 * with a fresh nonce on every call) varies in length. The request is signed
 * afresh on every call.
 */
sign_status_t sign_build_request(const sign_request_t *req, char *out, size_t out_size,
                                 size_t *out_len);

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
                                const char *access_key_secret,
                                char out[SIGN_V1_SIGNATURE_LEN + 1]);

/* V3: signed headers given as name/value pairs (names lower case, any
 * order), query parameters, body -> hex signature and, optionally, the
 * SignedHeaders list ("a;b;c") into signed_headers (size signed_headers_size). */
sign_status_t sign_v3_signature(sign_method_t method, const sign_param_t *query, size_t query_count,
                                const sign_param_t *headers, size_t header_count,
                                const char *body, size_t body_len, const char *access_key_secret,
                                char out[SIGN_V3_SIGNATURE_LEN + 1], char *signed_headers,
                                size_t signed_headers_size);

#endif /* CDNAGENT_SIGN_H */
