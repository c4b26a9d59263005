/*
 * cdnapi.h — CDN OpenAPI (2018-05-10) back-to-origin header operations:
 * local validation mirroring the service's documented errors, request
 * building through sign, transport through http, JSON results parsed with
 * cJSON into typed results, and error classification for the retry queue.
 *
 * Limits: CDNAPI_MAX_KEY_LEN / CDNAPI_MAX_VALUE_LEN per header, raw
 * Code/Message/RequestId truncated to their buffers, certificates' PEMs up to
 * CDNAPI_MAX_PEM_LEN each. A read-back visits every config of the reply: the
 * only bound is the HTTP client's body limit (http_limits_t).
 */
#ifndef CDNAGENT_CDNAPI_H
#define CDNAGENT_CDNAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "sign.h"
#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CDNAPI_MAX_KEY_LEN 64u
#define CDNAPI_MAX_VALUE_LEN 1024u
#define CDNAPI_MAX_DOMAIN_LEN 253u
#define CDNAPI_MAX_CONFIG_ID_LEN 24u
#define CDNAPI_MAX_PEM_LEN (12u * 1024u)
#define CDNAPI_CODE_LEN 96u
#define CDNAPI_MESSAGE_LEN 256u
#define CDNAPI_REQUEST_ID_LEN 64u

typedef enum {
    CDNAPI_SUCCESS = 0,
    CDNAPI_RETRYABLE,             /* throttling, 5xx, network failures */
    CDNAPI_CLOCK,                 /* InvalidTimeStamp.Expired: fix the clock first */
    CDNAPI_PERMANENT_INPUT,       /* request rejected (or refused locally) as invalid */
    CDNAPI_PERMANENT_CREDENTIALS, /* signature, key id, RAM permission */
    CDNAPI_CONFIGURATION,         /* the caller's setup: server certificate not trusted by the
                                     CA bundle, signing inputs missing; fixed by reconfiguring */
} cdnapi_class_t;

const char *cdnapi_class_str(cdnapi_class_t c);

/* The outcome of an operation. Every operation returns res->cls, and the
 * statuses of the components below are kept, never folded into the class:
 * the signer's (a request that could not be signed) and the transport's. */
typedef struct {
    cdnapi_class_t cls;
    http_status_t http_status;  /* the transport's (HTTP_OK when a reply came) */
    sign_status_t sign_status;  /* the signer's (SIGN_OK once signed) */
    int status_code;            /* HTTP status code, 0 if none */
    char code[CDNAPI_CODE_LEN]; /* service or local error Code, "" on success */
    char message[CDNAPI_MESSAGE_LEN];
    char request_id[CDNAPI_REQUEST_ID_LEN];
    bool has_server_date;
    int64_t server_date;
} cdnapi_result_t;

/* The two functions that add a back-to-origin request header: the legacy
 * set_req_header (args key, value) and origin_request_header, "Custom
 * Request Headers (New)" (see cdnapi_rule_t). */
typedef enum {
    CDNAPI_FN_REQ_HEADER = 0, /* set_req_header */
    CDNAPI_FN_ORIGIN_RULE,    /* origin_request_header */
} cdnapi_function_t;
/* The service's FunctionName of f. */
const char *cdnapi_function_str(cdnapi_function_t f);

/* The longest header name either function takes (origin_request_header's
 * 100; set_req_header's own limit is CDNAPI_MAX_KEY_LEN). */
#define CDNAPI_MAX_NAME_LEN 100u

/* A config of either function. For origin_request_header, key is its
 * header_name and value its rule spec (cdnapi_rule_spec): the operation,
 * the duplicates switch, the source and the value in one string. */
typedef struct {
    char config_id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
    char key[CDNAPI_MAX_NAME_LEN + 1];
    char value[CDNAPI_MAX_VALUE_LEN + 1];
    cdnapi_function_t function; /* zero: set_req_header */
} cdnapi_header_t;

typedef struct {
    http_client_t *http;
    const sign_credentials_t *credentials;
    const char *host; /* API host (Host header) */
    sign_version_t signature;
    /* NULL: sign with the port's wall clock. Else "YYYY-MM-DDThh:mm:ssZ":
     * the caller's corrected clock (after InvalidTimeStamp.Expired, or on a
     * device whose clock was never set). Zero-initialise cdnapi_t. */
    const char *timestamp;
} cdnapi_t;

/* Every request's User-Agent. */
#define CDNAPI_USER_AGENT "cdnagent/" CDNAGENT_VERSION

/* Frame the HTTP/1.1 request of req, signed once by sign_request into s:
 * request line (the query for GET and V3), Host, User-Agent, Connection:
 * keep-alive, Accept (V3), sign's headers, and for V1 POST the form body
 * with its Content-Type and Content-Length. Returns the length (0 when s is
 * not a signature of req); writes min(length, out_size) bytes, plus a NUL
 * when it fits; out NULL measures. The same req and s frame the same bytes
 * every time, so a measure then a write of that size always fits. */
size_t cdnapi_frame(const sign_request_t *req, const sign_signed_t *s, char *out, size_t out_size);

/* Route cJSON allocations through port_malloc/port_free. Call once at start. */
void cdnapi_init(void);

/* Classify a reply (or a transport failure when http_status != HTTP_OK). */
cdnapi_class_t cdnapi_classify(http_status_t http_status, int status_code, const char *code);

/* Local validation: CDNAPI_SUCCESS, or CDNAPI_PERMANENT_INPUT with res
 * filled (Code like the service's). */
cdnapi_class_t cdnapi_validate_header(const char *domain, const char *key, const char *value,
                                      cdnapi_result_t *res);

/* Is key a header name the CDN reserves (hop-by-hop, framing, vendor
 * prefixes)? cdnapi_validate_header refuses those with InvalidKey.Malformed;
 * this lets a caller word the refusal. */
bool cdnapi_header_name_reserved(const char *key);

/* origin_request_header ("Custom Request Headers (New)"), the function the
 * console recommends over set_req_header: an operation on a header name,
 * with values (several, comma-separated) and a duplicates switch; rewrite
 * replaces what a pattern matches. */
#define CDNAPI_MAX_RULE_NAME_LEN 100u
#define CDNAPI_MAX_RULE_VALUE_LEN 1000u
typedef enum {
    CDNAPI_RULE_ADD,
    CDNAPI_RULE_MODIFY,
    CDNAPI_RULE_DELETE,
    CDNAPI_RULE_REWRITE,
} cdnapi_rule_op_t;
typedef struct {
    cdnapi_rule_op_t op;
    bool duplicate;     /* add: keep a header the request already has */
    const char *name;   /* header_name */
    const char *value;  /* header_value (add, modify; rewrite: the destination) */
    const char *source; /* rewrite: header_source, the pattern replaced */
} cdnapi_rule_t;
/* The service's words for an operation ("add", "modify", "delete",
 * "rewrite"), and back (-1: none). */
const char *cdnapi_rule_op_str(cdnapi_rule_op_t op);
int cdnapi_rule_op_parse(const char *word);
/* The new function's rules, checked before anything is sent: a name of 1
 * to 100 characters starting with a letter, an RFC 7230 token, not
 * reserved (InvalidHeaderKey.ValueNotSupported); values of at most 1,000
 * bytes without control characters (required for add and modify); rewrite
 * needs its source and destination (MissingParameter, InvalidParameter
 * otherwise, as the service answers). Beyond the service's checks, a source
 * is refused but for rewrite and the duplicates switch but for add
 * (InvalidParameter): neither would be sent. */
cdnapi_class_t cdnapi_validate_rule(const cdnapi_rule_t *rule, cdnapi_result_t *res);
/* A rule's spec: its operation (the word's first letter: a, m, d, r), the
 * duplicates switch ('+' on, '-' off; off for every operation but add),
 * the source, a line feed and the value (rewrite: the destination). One
 * string, so a rule is stored and compared like a header's value, and
 * what a read-back finds compares equal to what was sent. Neither text
 * can hold a line feed (cdnapi_validate_rule). False when it is longer
 * than CDNAPI_MAX_VALUE_LEN (a rewrite whose source and destination
 * together pass 1,021 bytes) or the operation is not one. */
bool cdnapi_rule_spec(const cdnapi_rule_t *rule, char out[CDNAPI_MAX_VALUE_LEN + 1]);
/* Split a spec, in place, into rule's op, duplicate, source and value
 * (pointing into spec; name untouched). False when spec is not one. */
bool cdnapi_rule_unspec(char *spec, cdnapi_rule_t *rule);

/* Local certificate checks before SetDomainServerCertificate: PEM parses
 * (Certificate.FormatError), key parses and matches (Certificate.MissMatch),
 * and, beyond what the service checks, not expired at now_utc
 * (Certificate.Expired) and covering domain by SAN or CN, wildcards
 * matching one label (Certificate.DomainMismatch). PEMs NUL-terminated. */
cdnapi_class_t cdnapi_validate_cert(const char *domain, const char *cert_pem, const char *key_pem,
                                    int64_t now_utc, cdnapi_result_t *res);

/* Parse a JSON reply: error fields into res, classification. */
void cdnapi_parse_reply(int status_code, const char *body, size_t len, cdnapi_result_t *res);

/* Called for every set_req_header and origin_request_header config of a
 * read-back (h->function says which), in reply order. h is valid during
 * the call only. Return false to stop the walk. */
typedef bool (*cdnapi_header_fn)(void *arg, const cdnapi_header_t *h);

/* Walk DescribeCdnDomainConfigs JSON: fn for each set_req_header and
 * origin_request_header entry; *visited (may be NULL) the number visited. CDNAPI_RETRYABLE when the
 * JSON does not parse (or no memory for it): a garbled reply is not an answer. */
cdnapi_class_t cdnapi_parse_header_configs(const char *body, size_t len, cdnapi_header_fn fn,
                                           void *arg, size_t *visited);

/* Operations. They validate first, then call; res always describes the
 * outcome, and each returns res->cls. */
cdnapi_class_t cdnapi_set_header(cdnapi_t *api, const char *domain, const char *key,
                                 const char *value, const char *config_id /* NULL = add */,
                                 cdnapi_result_t *res);
/* DeleteSpecificConfig of set_req_header configs: config_ids is one ConfigId
 * or up to CDNAPI_MAX_DELETE_IDS of them joined by commas (the service
 * deletes all or, when one is unknown, none). */
#define CDNAPI_MAX_DELETE_IDS 8u
cdnapi_class_t cdnapi_delete_header(cdnapi_t *api, const char *domain, const char *config_ids,
                                    cdnapi_result_t *res);
/* The same for configs of function f. */
cdnapi_class_t cdnapi_delete_configs(cdnapi_t *api, const char *domain, const char *config_ids,
                                     cdnapi_function_t f, cdnapi_result_t *res);
/* Read back every set_req_header config of domain (fn for each); *visited
 * (may be NULL) how many were visited. */
cdnapi_class_t cdnapi_list_headers(cdnapi_t *api, const char *domain, cdnapi_header_fn fn,
                                   void *arg, size_t *visited, cdnapi_result_t *res);
/* The same for the configs of function f. */
cdnapi_class_t cdnapi_list_configs(cdnapi_t *api, const char *domain, cdnapi_function_t f,
                                   cdnapi_header_fn fn, void *arg, size_t *visited,
                                   cdnapi_result_t *res);

/* BatchSetCdnDomainConfig: every header of headers[] (config_id "" = add,
 * digits = modify that ConfigId) on every domain of domains[], each as its
 * function (an origin_request_header rule from its spec); the service
 * applies all or nothing. Local checks first, like cdnapi_set_header (each
 * domain non-empty, no ',' or blanks; each header as cdnapi_validate_header
 * or its rule as cdnapi_validate_rule; ConfigId digits only), plus the
 * documented bounds: 1..CDNAPI_MAX_BATCH domains and domains x headers <=
 * CDNAPI_MAX_BATCH (InvalidParameter). On success *count (may be NULL) is
 * the number of DomainConfigModel entries of the reply (ConfigIds, <= max
 * stored in out, out may be NULL when max is 0). */
#define CDNAPI_MAX_BATCH 50u
typedef struct {
    char domain[CDNAPI_MAX_DOMAIN_LEN + 1];
    char config_id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
} cdnapi_batch_config_t;
cdnapi_class_t cdnapi_batch_set_headers(cdnapi_t *api, const char *const *domains, size_t ndomains,
                                        const cdnapi_header_t *headers, size_t nheaders,
                                        cdnapi_batch_config_t *out, size_t max, size_t *count,
                                        cdnapi_result_t *res);
/* The same from views of the configs (key and value never NULL; config_id
 * NULL or "" adds): a caller holding many short headers need not hold a
 * cdnapi_header_t (over 1 KB) for each. added_id (NULL: not asked;
 * CDNAPI_MAX_CONFIG_ID_LEN + 1 bytes) receives an add's ConfigId when the
 * reply tells it for certain: a one-domain batch, the only add of its
 * function, and one reply model of that function whose ConfigId no modify
 * named (the reply's order is not documented); else "". */
typedef struct {
    cdnapi_function_t function;
    const char *key;
    const char *value;
    const char *config_id;
    char *added_id;
} cdnapi_set_t;
cdnapi_class_t cdnapi_batch_set(cdnapi_t *api, const char *const *domains, size_t ndomains,
                                const cdnapi_set_t *sets, size_t nsets, cdnapi_batch_config_t *out,
                                size_t max, size_t *count, cdnapi_result_t *res);

/* A certificate name the service takes: 1..CDNAPI_MAX_CERT_NAME_LEN bytes
 * (InvalidCertName.TooLong), no control character and no comma (the
 * service's lists of names are comma-separated; InvalidCertName.Malformed,
 * refused here). */
#define CDNAPI_MAX_CERT_NAME_LEN 128u
cdnapi_class_t cdnapi_validate_cert_name(const char *name, cdnapi_result_t *res);

/* SetDomainServerCertificate (deprecated by the service, the product's
 * default) on (upload PEMs, validated first unless force skips the
 * expiry/domain checks; the name, when given, as cdnapi_validate_cert_name)
 * or off. */
cdnapi_class_t cdnapi_set_cert(cdnapi_t *api, const char *domain, const char *cert_name,
                               const char *cert_pem, const char *key_pem, bool force,
                               int64_t now_utc, cdnapi_result_t *res);
cdnapi_class_t cdnapi_cert_off(cdnapi_t *api, const char *domain, cdnapi_result_t *res);

/* SetCdnDomainSSLCertificate, the newer action: SSLProtocol on with an
 * uploaded pair (CertType upload, SSLPub, SSLPri: checked as for
 * cdnapi_set_cert) or a certificate of Alibaba's certificate service
 * (CertType cas, CertId digits, CertRegion cn-hangzhou or ap-southeast-1:
 * the device never holds its key), or SSLProtocol off. */
#define CDNAPI_MAX_CAS_ID_LEN 20u
typedef struct {
    bool on;
    const char *name;       /* CertName; NULL: the domain (upload), none (cas) */
    const char *cert_pem;   /* upload: the chain */
    const char *key_pem;    /* upload: its key */
    const char *cas_id;     /* non-NULL: CertType cas, this CertId */
    const char *cas_region; /* cas: NULL for the service's default (cn-hangzhou) */
} cdnapi_ssl_cert_t;
cdnapi_class_t cdnapi_set_ssl_cert(cdnapi_t *api, const char *domain, const cdnapi_ssl_cert_t *c,
                                   bool force, int64_t now_utc, cdnapi_result_t *res);
/* Whether a cas certificate's id and region are ones the service takes
 * (Abs.CertRegion.ValueNotSupported, InvalidParameter otherwise). */
cdnapi_class_t cdnapi_validate_cas(const char *cas_id, const char *cas_region, cdnapi_result_t *res);

/* Did the service answer that the action does not exist (any more)?
 * InvalidAction.NotFound, InvalidApi.NotFound (HTTP 404), or a message
 * calling it deprecated: the cue to move to SetCdnDomainSSLCertificate. */
bool cdnapi_action_retired(const cdnapi_result_t *res);

/* The SHA-256 of the DER of the first certificate of a PEM chain, as lower
 * hex ("" when it does not parse): what the CDN serves is compared by it. */
#define CDNAPI_FINGERPRINT_LEN 64u
void cdnapi_cert_fingerprint(const char *pem, char out[CDNAPI_FINGERPRINT_LEN + 1]);

/* The validity of the first certificate of a PEM chain (UTC seconds);
 * false when it does not parse. */
bool cdnapi_cert_validity(const char *pem, int64_t *not_before, int64_t *not_after);

/* A time as the service writes it, "2018-06-03T22:03:39Z" (UTC seconds);
 * false when it is not one. */
bool cdnapi_iso_time(const char *s, int64_t *utc);

#define CDNAPI_CERT_FIELD_LEN 128u
typedef struct {
    bool found; /* the domain has a CertInfo; the fields below are its */
    char cert_name[CDNAPI_CERT_FIELD_LEN];
    char cert_type[CDNAPI_CERT_FIELD_LEN];
    char cert_domain_name[CDNAPI_CERT_FIELD_LEN];
    char expire_time[CDNAPI_CERT_FIELD_LEN];
    char start_time[CDNAPI_CERT_FIELD_LEN]; /* CertStartTime */
    char cert_id[CDNAPI_CERT_FIELD_LEN];    /* CertId (cas) */
    char status[CDNAPI_CERT_FIELD_LEN];     /* ServerCertificateStatus: on/off */
    /* cdnapi_cert_fingerprint of ServerCertificate, the PEM the CDN serves
     * ("" when the reply has none, or one that does not parse: has_pem) */
    char fingerprint[CDNAPI_FINGERPRINT_LEN + 1];
    bool has_pem;
} cdnapi_cert_info_t;

/* DescribeDomainCertificateInfo: the first CertInfo of the domain into
 * info (info->found false when the domain has none). */
cdnapi_class_t cdnapi_cert_info(cdnapi_t *api, const char *domain, cdnapi_cert_info_t *info,
                                cdnapi_result_t *res);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_CDNAPI_H */
