/*
 * sign.c — RPC V1 / V3 signing, and the encoding of what was signed.
 *
 * Everything that is hashed is streamed into mbedTLS md contexts, so a
 * 12 KB certificate never needs a second copy: the only buffer is the
 * caller's output.
 */
#include "sign.h"

#include <string.h>

#include "mbedtls/md.h"
#include "mbedtls/platform_util.h"
#include "port.h"
#include "util.h"

#define SIGN_COMMON_MAX 10 /* V1 common parameters incl. SecurityToken */
#define SIGN_ALL_MAX (SIGN_MAX_PARAMS + SIGN_COMMON_MAX)
#define SIGN_V3_HEADERS_MAX 10
/* x-acs-content-sha256 of the empty body every V3 call sends */
#define SIGN_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const char sign_hex_upper[] = "0123456789ABCDEF";
static const char sign_hex_lower[] = "0123456789abcdef";

const char *sign_status_str(sign_status_t status)
{
    switch (status) {
    case SIGN_OK: return "ok";
    case SIGN_ERR_ARG: return "invalid argument";
    case SIGN_ERR_LIMIT: return "input exceeds a signer limit";
    case SIGN_ERR_TOO_SMALL: return "output buffer too small";
    case SIGN_ERR_CLOCK: return "wall clock not set";
    case SIGN_ERR_RANDOM: return "no random source for the nonce";
    case SIGN_ERR_CRYPTO: return "hash failure";
    default: return "unknown error";
    }
}

static int sign_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

size_t sign_percent_encode(const char *in, size_t in_len, char *out, size_t out_size)
{
    size_t n = 0;
    for (size_t i = 0; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];
        char tmp[3];
        size_t k;
        if (sign_is_unreserved(c)) {
            tmp[0] = (char)c;
            k = 1;
        } else {
            tmp[0] = '%';
            tmp[1] = sign_hex_upper[c >> 4];
            tmp[2] = sign_hex_upper[c & 15];
            k = 3;
        }
        for (size_t j = 0; j < k; j++, n++)
            if (out && n + 1 < out_size)
                out[n] = tmp[j];
    }
    if (out && out_size > 0)
        out[n < out_size ? n : out_size - 1] = '\0';
    return n;
}

/* ---- output: util's bounded writer (counts everything, writes what fits) ---- */
static void out_enc(util_out_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sign_is_unreserved(c)) {
            util_out_put(o, (const char *)&s[i], 1);
        } else {
            char t[3] = {'%', sign_hex_upper[c >> 4], sign_hex_upper[c & 15]};
            util_out_put(o, t, 3);
        }
    }
}

/* ---- hash sink: feeds md, optionally percent-encoding once or twice ---- */
typedef struct {
    mbedtls_md_context_t *md;
    int hmac;
    int failed;
} sign_sink_t;

static void sink_put(sign_sink_t *s, const void *p, size_t n)
{
    int rc = s->hmac ? mbedtls_md_hmac_update(s->md, p, n) : mbedtls_md_update(s->md, p, n);
    if (rc != 0)
        s->failed = 1;
}

static void sink_str(sign_sink_t *s, const char *str)
{
    sink_put(s, str, strlen(str));
}

/* times = 1: enc(x); times = 2: enc(enc(x)) as V1's StringToSign needs. */
static void sink_enc(sign_sink_t *s, const char *in, size_t n, int times)
{
    char chunk[96]; /* flushed before it can overflow: one byte expands to <= 5 */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (sign_is_unreserved(c)) {
            chunk[k++] = (char)c;
        } else {
            chunk[k++] = '%';
            if (times == 2) {
                chunk[k++] = '2';
                chunk[k++] = '5';
            }
            chunk[k++] = sign_hex_upper[c >> 4];
            chunk[k++] = sign_hex_upper[c & 15];
        }
        if (k > sizeof chunk - 5) {
            sink_put(s, chunk, k);
            k = 0;
        }
    }
    if (k)
        sink_put(s, chunk, k);
}

/* Byte-order comparison of parameter names (SDKs sort ASCII names). */
static int param_cmp(const sign_param_t *a, const sign_param_t *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Insertion sort of pointers: counts are small and bounded (SIGN_ALL_MAX). */
static void sort_params(const sign_param_t **v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        const sign_param_t *x = v[i];
        size_t j = i;
        while (j > 0 && param_cmp(v[j - 1], x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

static sign_status_t check_params(const sign_param_t *p, size_t count)
{
    if (count > SIGN_ALL_MAX)
        return SIGN_ERR_LIMIT;
    for (size_t i = 0; i < count; i++) {
        if (!p[i].name || p[i].name_len == 0 || (!p[i].value && p[i].value_len))
            return SIGN_ERR_ARG;
        if (p[i].name_len > SIGN_MAX_NAME_LEN || p[i].value_len > SIGN_MAX_VALUE_LEN)
            return SIGN_ERR_LIMIT;
    }
    return SIGN_OK;
}

static const char *method_str(sign_method_t m)
{
    return m == SIGN_METHOD_GET ? "GET" : "POST";
}

static void base64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

static void hex_lower(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = sign_hex_lower[in[i] >> 4];
        out[2 * i + 1] = sign_hex_lower[in[i] & 15];
    }
    out[2 * n] = '\0';
}

sign_status_t sign_v1_signature(sign_method_t method, const sign_param_t *params, size_t count,
                                const char *access_key_secret, char out[SIGN_V1_SIGNATURE_LEN + 1])
{
    const sign_param_t *sorted[SIGN_ALL_MAX];
    unsigned char mac[20];
    mbedtls_md_context_t md;
    sign_sink_t s = {&md, 1, 0};
    sign_status_t st;

    if (!access_key_secret || !out || (count && !params))
        return SIGN_ERR_ARG;
    st = check_params(params, count);
    if (st != SIGN_OK)
        return st;
    for (size_t i = 0; i < count; i++)
        sorted[i] = &params[i];
    sort_params(sorted, count);

    mbedtls_md_init(&md);
    if (mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA1), 1) != 0) {
        mbedtls_md_free(&md);
        return SIGN_ERR_CRYPTO;
    }
    /* HMAC key = secret + "&": fed as one key, built without a copy on the
     * heap; the small stack copy is wiped below. */
    {
        size_t sl = strlen(access_key_secret);
        unsigned char key[SIGN_MAX_FIELD_LEN + 1];
        if (sl > SIGN_MAX_FIELD_LEN) {
            mbedtls_md_free(&md);
            return SIGN_ERR_LIMIT;
        }
        memcpy(key, access_key_secret, sl);
        key[sl] = '&';
        if (mbedtls_md_hmac_starts(&md, key, sl + 1) != 0)
            s.failed = 1;
        mbedtls_platform_zeroize(key, sizeof key);
    }
    sink_str(&s, method_str(method));
    sink_str(&s, "&%2F&");
    for (size_t i = 0; i < count; i++) {
        if (i)
            sink_str(&s, "%26");
        sink_enc(&s, sorted[i]->name, sorted[i]->name_len, 2);
        sink_str(&s, "%3D");
        sink_enc(&s, sorted[i]->value, sorted[i]->value_len, 2);
    }
    if (!s.failed && mbedtls_md_hmac_finish(&md, mac) != 0)
        s.failed = 1;
    mbedtls_md_free(&md); /* md_free zeroizes the HMAC pads */
    if (s.failed)
        return SIGN_ERR_CRYPTO;
    base64_encode(mac, sizeof mac, out);
    mbedtls_platform_zeroize(mac, sizeof mac);
    return SIGN_OK;
}

static sign_status_t sha256_hex(const char *data, size_t n, char out[65])
{
    unsigned char h[32];
    if (mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)data, n,
                   h) != 0)
        return SIGN_ERR_CRYPTO;
    hex_lower(h, 32, out);
    return SIGN_OK;
}

/* Trim spaces and tabs around a header value, as the SDK does. */
static void trimmed(const char *v, size_t n, const char **start, size_t *len)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *start = v;
    *len = n;
}

sign_status_t sign_v3_signature(sign_method_t method, const sign_param_t *query, size_t query_count,
                                const sign_param_t *headers, size_t header_count, const char *body,
                                size_t body_len, const char *access_key_secret,
                                char out[SIGN_V3_SIGNATURE_LEN + 1], char *signed_headers,
                                size_t signed_headers_size)
{
    const sign_param_t *q[SIGN_ALL_MAX];
    const sign_param_t *h[SIGN_V3_HEADERS_MAX];
    unsigned char digest[32];
    char hex[65];
    mbedtls_md_context_t md;
    sign_sink_t s = {&md, 0, 0};
    sign_status_t st;

    if (!access_key_secret || !out || (query_count && !query) || !headers || (body_len && !body))
        return SIGN_ERR_ARG;
    if (header_count == 0 || header_count > SIGN_V3_HEADERS_MAX)
        return SIGN_ERR_LIMIT;
    st = check_params(query, query_count);
    if (st == SIGN_OK)
        st = check_params(headers, header_count);
    if (st != SIGN_OK)
        return st;
    for (size_t i = 0; i < query_count; i++)
        q[i] = &query[i];
    for (size_t i = 0; i < header_count; i++)
        h[i] = &headers[i];
    sort_params(q, query_count);
    sort_params(h, header_count);

    st = sha256_hex(body ? body : "", body_len, hex);
    if (st != SIGN_OK)
        return st;

    mbedtls_md_init(&md);
    if (mbedtls_md_setup(&md, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 0) != 0 ||
        mbedtls_md_starts(&md) != 0) {
        mbedtls_md_free(&md);
        return SIGN_ERR_CRYPTO;
    }
    sink_str(&s, method_str(method));
    sink_str(&s, "\n/\n");
    for (size_t i = 0; i < query_count; i++) {
        if (i)
            sink_str(&s, "&");
        sink_enc(&s, q[i]->name, q[i]->name_len, 1);
        sink_str(&s, "=");
        sink_enc(&s, q[i]->value, q[i]->value_len, 1);
    }
    sink_str(&s, "\n");
    for (size_t i = 0; i < header_count; i++) {
        const char *v;
        size_t vl;
        trimmed(h[i]->value, h[i]->value_len, &v, &vl);
        sink_put(&s, h[i]->name, h[i]->name_len);
        sink_str(&s, ":");
        sink_put(&s, v, vl);
        sink_str(&s, "\n");
    }
    sink_str(&s, "\n");
    {
        util_out_t sh = {signed_headers, signed_headers_size, 0};
        for (size_t i = 0; i < header_count; i++) {
            if (i) {
                sink_str(&s, ";");
                util_out_str(&sh, ";");
            }
            sink_put(&s, h[i]->name, h[i]->name_len);
            util_out_put(&sh, h[i]->name, h[i]->name_len);
        }
        if (signed_headers && signed_headers_size) {
            if (sh.len >= signed_headers_size) {
                signed_headers[signed_headers_size - 1] = '\0';
                mbedtls_md_free(&md);
                return SIGN_ERR_TOO_SMALL;
            }
            signed_headers[sh.len] = '\0';
        }
    }
    sink_str(&s, "\n");
    sink_put(&s, hex, 64);
    if (!s.failed && mbedtls_md_finish(&md, digest) != 0)
        s.failed = 1;
    mbedtls_md_free(&md);
    if (s.failed)
        return SIGN_ERR_CRYPTO;
    hex_lower(digest, 32, hex);

    {
        char sts[17 + 64 + 1];
        memcpy(sts, "ACS3-HMAC-SHA256\n", 17);
        memcpy(sts + 17, hex, 64);
        if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                            (const unsigned char *)access_key_secret, strlen(access_key_secret),
                            (const unsigned char *)sts, 17 + 64, digest) != 0)
            return SIGN_ERR_CRYPTO;
    }
    hex_lower(digest, 32, out);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return SIGN_OK;
}

sign_status_t sign_format_timestamp(long long t, char out[SIGN_TIMESTAMP_LEN + 1])
{
    /* Civil-from-days (Howard Hinnant): no gmtime on bare metal. */
    long long days, secs, z, era, doe, yoe, y, doy, mp, d, m;
    if (!out || t < 0 || t > 253402300799LL)
        return SIGN_ERR_ARG;
    days = t / 86400;
    secs = t % 86400;
    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    {
        int v[6] = {(int)y,          (int)m, (int)d, (int)(secs / 3600), (int)(secs / 60 % 60),
                    (int)(secs % 60)};
        char *p = out;
        p[0] = (char)('0' + v[0] / 1000);
        p[1] = (char)('0' + v[0] / 100 % 10);
        p[2] = (char)('0' + v[0] / 10 % 10);
        p[3] = (char)('0' + v[0] % 10);
        p[4] = '-';
        p[5] = (char)('0' + v[1] / 10);
        p[6] = (char)('0' + v[1] % 10);
        p[7] = '-';
        p[8] = (char)('0' + v[2] / 10);
        p[9] = (char)('0' + v[2] % 10);
        p[10] = 'T';
        p[11] = (char)('0' + v[3] / 10);
        p[12] = (char)('0' + v[3] % 10);
        p[13] = ':';
        p[14] = (char)('0' + v[4] / 10);
        p[15] = (char)('0' + v[4] % 10);
        p[16] = ':';
        p[17] = (char)('0' + v[5] / 10);
        p[18] = (char)('0' + v[5] % 10);
        p[19] = 'Z';
        p[20] = '\0';
    }
    return SIGN_OK;
}

static int valid_timestamp(const char *t)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(t) != SIGN_TIMESTAMP_LEN)
        return 0;
    for (size_t i = 0; i < SIGN_TIMESTAMP_LEN; i++) {
        if (pat[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pat[i])
            return 0;
    }
    return 1;
}

static int bounded_field(const char *s, size_t max)
{
    size_t n;
    if (!s)
        return 0;
    n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) /* no control byte or space: these go into headers */
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 0;
    return 1;
}

static void out_param_list(util_out_t *o, const sign_param_t *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            util_out_str(o, "&");
        out_enc(o, v[i]->name, v[i]->name_len);
        util_out_str(o, "=");
        out_enc(o, v[i]->value, v[i]->value_len);
    }
}

static sign_param_t cparam(const char *name, const char *value)
{
    sign_param_t p = {name, strlen(name), value, strlen(value)};
    return p;
}

/* The checks every entry point shares; the version string resolved. */
static sign_status_t check_request(const sign_request_t *req, const char **version)
{
    const sign_credentials_t *cr;
    if (!req || !req->credentials)
        return SIGN_ERR_ARG;
    cr = req->credentials;
    *version = req->api_version ? req->api_version : SIGN_DEFAULT_API_VERSION;
    if (!bounded_field(cr->access_key_id, SIGN_MAX_FIELD_LEN) || !cr->access_key_secret ||
        !cr->access_key_secret[0] || !bounded_field(req->host, SIGN_MAX_FIELD_LEN) ||
        !bounded_field(req->action, SIGN_MAX_FIELD_LEN) ||
        !bounded_field(*version, SIGN_MAX_FIELD_LEN) ||
        (req->method != SIGN_METHOD_GET && req->method != SIGN_METHOD_POST) ||
        (req->version != SIGN_V1 && req->version != SIGN_V3) || (req->param_count && !req->params))
        return SIGN_ERR_ARG;
    if (strlen(cr->access_key_secret) > SIGN_MAX_FIELD_LEN)
        return SIGN_ERR_LIMIT;
    if (cr->security_token && cr->security_token[0] &&
        !bounded_field(cr->security_token, SIGN_MAX_TOKEN_LEN))
        return strlen(cr->security_token) > SIGN_MAX_TOKEN_LEN ? SIGN_ERR_LIMIT : SIGN_ERR_ARG;
    if (req->param_count > SIGN_MAX_PARAMS)
        return SIGN_ERR_LIMIT;
    if (req->version == SIGN_V3 && req->credentials_provider &&
        !bounded_field(req->credentials_provider, SIGN_MAX_FIELD_LEN))
        return SIGN_ERR_ARG;
    return check_params(req->params, req->param_count);
}

/* The parameters as signed: the caller's, then (V1) the protocol's own,
 * whose values live in s. Returns the count (<= SIGN_ALL_MAX). */
static size_t v1_params(const sign_request_t *req, const sign_signed_t *s, const char *version,
                        sign_param_t all[SIGN_ALL_MAX])
{
    const sign_credentials_t *cr = req->credentials;
    size_t n = 0;
    for (size_t i = 0; i < req->param_count; i++)
        all[n++] = req->params[i];
    all[n++] = cparam("AccessKeyId", cr->access_key_id);
    all[n++] = cparam("Action", req->action);
    all[n++] = cparam("Format", "JSON");
    all[n++] = cparam("SignatureMethod", "HMAC-SHA1");
    all[n++] = cparam("SignatureNonce", s->nonce);
    all[n++] = cparam("SignatureVersion", "1.0");
    all[n++] = cparam("Timestamp", s->timestamp);
    all[n++] = cparam("Version", version);
    if (cr->security_token && cr->security_token[0])
        all[n++] = cparam("SecurityToken", cr->security_token);
    return n;
}

/* V3's signed headers, host first (it is framed as Host). */
static size_t v3_headers(const sign_request_t *req, const sign_signed_t *s, const char *version,
                         sign_param_t hdr[SIGN_V3_HEADERS_MAX])
{
    const sign_credentials_t *cr = req->credentials;
    size_t hn = 0;
    hdr[hn++] = cparam("host", req->host);
    hdr[hn++] = cparam("x-acs-action", req->action);
    hdr[hn++] = cparam("x-acs-content-sha256", SIGN_EMPTY_SHA256);
    hdr[hn++] = cparam("x-acs-date", s->timestamp);
    hdr[hn++] = cparam("x-acs-signature-nonce", s->nonce);
    hdr[hn++] = cparam("x-acs-version", version);
    if (cr->security_token && cr->security_token[0]) {
        /* with STS the SDK also sends and signs the key id as a header */
        hdr[hn++] = cparam("x-acs-accesskey-id", cr->access_key_id);
        hdr[hn++] = cparam("x-acs-security-token", cr->security_token);
    }
    if (req->credentials_provider)
        hdr[hn++] = cparam("x-acs-credentials-provider", req->credentials_provider);
    return hn;
}

static sign_status_t resolve_time_and_nonce(const sign_request_t *req, sign_signed_t *s)
{
    if (req->timestamp) {
        if (!valid_timestamp(req->timestamp))
            return SIGN_ERR_ARG;
        memcpy(s->timestamp, req->timestamp, SIGN_TIMESTAMP_LEN + 1);
    } else {
        int64_t now;
        if (port_wall_clock(&now) != PORT_OK ||
            sign_format_timestamp((long long)now, s->timestamp) != SIGN_OK)
            return SIGN_ERR_CLOCK;
    }
    if (req->nonce) {
        if (!bounded_field(req->nonce, SIGN_NONCE_MAX_LEN))
            return SIGN_ERR_ARG;
        memcpy(s->nonce, req->nonce, strlen(req->nonce) + 1);
    } else {
        unsigned char r[16];
        if (port_random(r, sizeof r) != PORT_OK)
            return SIGN_ERR_RANDOM;
        hex_lower(r, sizeof r, s->nonce);
    }
    return SIGN_OK;
}

sign_status_t sign_request(const sign_request_t *req, sign_signed_t *s)
{
    const char *version;
    sign_param_t all[SIGN_ALL_MAX];
    sign_status_t st;
    if (!s)
        return SIGN_ERR_ARG;
    memset(s, 0, sizeof *s);
    st = check_request(req, &version);
    if (st == SIGN_OK)
        st = resolve_time_and_nonce(req, s);
    if (st != SIGN_OK)
        return st;
    if (req->version == SIGN_V1) {
        size_t n = v1_params(req, s, version, all);
        st = sign_v1_signature(req->method, all, n, req->credentials->access_key_secret,
                               s->signature);
    } else {
        size_t hn = v3_headers(req, s, version, all);
        st = sign_v3_signature(req->method, req->params, req->param_count, all, hn, "", 0,
                               req->credentials->access_key_secret, s->signature, s->signed_headers,
                               sizeof s->signed_headers);
    }
    if (st != SIGN_OK)
        memset(s, 0, sizeof *s);
    return st;
}

size_t sign_encode_params(const sign_request_t *req, const sign_signed_t *s, char *out,
                          size_t out_size)
{
    sign_param_t all[SIGN_ALL_MAX];
    const sign_param_t *sorted[SIGN_ALL_MAX];
    const char *version;
    util_out_t o = {out, out_size, 0};
    size_t n = 0;
    if (!s || check_request(req, &version) != SIGN_OK || !s->signature[0])
        return 0;
    if (req->version == SIGN_V1) {
        n = v1_params(req, s, version, all);
    } else {
        for (; n < req->param_count; n++)
            all[n] = req->params[n];
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &all[i];
    sort_params(sorted, n);
    out_param_list(&o, sorted, n);
    if (req->version == SIGN_V1) {
        util_out_str(&o, "&Signature=");
        out_enc(&o, s->signature, strlen(s->signature));
    }
    return util_out_end(&o);
}

size_t sign_encode_headers(const sign_request_t *req, const sign_signed_t *s, char *out,
                           size_t out_size)
{
    sign_param_t hdr[SIGN_V3_HEADERS_MAX];
    const char *version;
    util_out_t o = {out, out_size, 0};
    if (!s || check_request(req, &version) != SIGN_OK || !s->signature[0])
        return 0;
    if (req->version == SIGN_V3) {
        size_t hn = v3_headers(req, s, version, hdr);
        for (size_t i = 1; i < hn; i++) { /* host is framed as Host */
            util_out_put(&o, hdr[i].name, hdr[i].name_len);
            util_out_str(&o, ": ");
            util_out_put(&o, hdr[i].value, hdr[i].value_len);
            util_out_str(&o, "\r\n");
        }
        util_out_str(&o, "Authorization: ACS3-HMAC-SHA256 Credential=");
        util_out_str(&o, req->credentials->access_key_id);
        util_out_str(&o, ",SignedHeaders=");
        util_out_str(&o, s->signed_headers);
        util_out_str(&o, ",Signature=");
        util_out_str(&o, s->signature);
        util_out_str(&o, "\r\n");
    }
    return util_out_end(&o);
}
