/* Local certificate checks, SetDomainServerCertificate and
 * SetCdnDomainSSLCertificate. */
#include <string.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "cdnapi.h"
#include "cdnapi_internal.h"
#include "crypto.h"
#include "port.h"
#include "util.h"

static int64_t x509_time_utc(const mbedtls_x509_time *t)
{
    return util_days_from_civil(t->year, (unsigned)t->mon, (unsigned)t->day) * 86400 +
           t->hour * 3600 + t->min * 60 + t->sec;
}

static bool name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && util_ascii_eq_nocase_n(a, b, alen);
}

/* "*.example.com" covers exactly one extra label: a.example.com, not
 * example.com nor a.b.example.com. */
static bool name_covers(const char *pat, size_t plen, const char *domain)
{
    size_t dlen = strlen(domain);
    if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
        const char *dot = strchr(domain, '.');
        if (dot == NULL || dot == domain) {
            return false;
        }
        return name_eq(pat + 1, plen - 1, dot, dlen - (size_t)(dot - domain));
    }
    return name_eq(pat, plen, domain, dlen);
}

static bool cert_covers(const mbedtls_x509_crt *crt, const char *domain)
{
    const mbedtls_x509_sequence *san;
    const mbedtls_x509_name *n;
    bool has_dns_san = false;
    for (san = &crt->subject_alt_names; san != NULL && san->buf.p != NULL; san = san->next) {
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) {
            has_dns_san = true;
            if (name_covers((const char *)san->buf.p, san->buf.len, domain)) {
                return true;
            }
        }
    }
    if (has_dns_san) {
        return false; /* RFC 6125: CN is only consulted without DNS SANs */
    }
    for (n = &crt->subject; n != NULL; n = n->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 &&
            name_covers((const char *)n->val.p, n->val.len, domain)) {
            return true;
        }
    }
    return false;
}

/* Every PEM block ended, and nothing but blanks after the last: mbedTLS
 * stops without a word at a last block with no END line, so a chain cut
 * in its intermediate (a half-written renewal) would pass as its leaf. */
static bool pem_whole(const char *pem)
{
    static const char begin[] = "-----BEGIN ", end[] = "-----END ";
    size_t nb = 0, ne = 0;
    const char *last_end = NULL;
    for (const char *p = strstr(pem, begin); p; p = strstr(p + 1, begin))
        nb++;
    for (const char *p = strstr(pem, end); p; p = strstr(p + 1, end)) {
        ne++;
        last_end = p;
    }
    if (nb == 0 || nb != ne)
        return false;
    const char *tail = strstr(last_end + sizeof end - 1, "-----");
    if (tail == NULL)
        return false;
    for (tail += 5; *tail; tail++)
        if (*tail != ' ' && *tail != '\t' && *tail != '\r' && *tail != '\n')
            return false;
    return true;
}

static cdnapi_class_t check(const char *domain, const char *cert_pem, const char *key_pem,
                            int64_t now, bool full, cdnapi_result_t *res)
{
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    cdnapi_class_t cls = CDNAPI_SUCCESS;
    if (domain == NULL || domain[0] == 0 || cert_pem == NULL || key_pem == NULL ||
        cert_pem[0] == 0 || key_pem[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter",
                                  "DomainName, ServerCertificate and PrivateKey are required");
    }
    if (strlen(cert_pem) > CDNAPI_MAX_PEM_LEN || strlen(key_pem) > CDNAPI_MAX_PEM_LEN) {
        return cdnapi_local_error(res, "Certificate.FormatError", "PEM larger than the limit");
    }
    if (!pem_whole(cert_pem)) {
        return cdnapi_local_error(res, "Certificate.FormatError",
                                  "the certificate PEM is cut short, or text follows its last "
                                  "END line");
    }
    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert_pem, strlen(cert_pem) + 1) != 0) {
        cls = cdnapi_local_error(res, "Certificate.FormatError",
                                 "the certificate PEM does not parse");
    } else if (mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, strlen(key_pem) + 1, NULL,
                                    0) != 0) {
        cls = cdnapi_local_error(res, "Certificate.FormatError",
                                 "the private key PEM does not parse");
    } else if (mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
        cls = cdnapi_local_error(res, "Certificate.MissMatch",
                                 "the private key does not match the certificate");
    } else if (full && x509_time_utc(&crt.valid_to) < now) {
        cls = cdnapi_local_error(res, "Certificate.Expired", "the certificate has expired");
    } else if (full && !cert_covers(&crt, domain)) {
        cls = cdnapi_local_error(res, "Certificate.DomainMismatch",
                                 "the certificate does not cover the domain by SAN or CN");
    }
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&crt);
    return cls;
}

cdnapi_class_t cdnapi_validate_cert(const char *domain, const char *cert_pem, const char *key_pem,
                                    int64_t now_utc, cdnapi_result_t *res)
{
    return check(domain, cert_pem, key_pem, now_utc, true, res);
}

cdnapi_class_t cdnapi_validate_cert_name(const char *name, cdnapi_result_t *res)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return cdnapi_local_error(res, "CertName.MissingParameter", "the certificate name is empty");
    if (n > CDNAPI_MAX_CERT_NAME_LEN)
        return cdnapi_local_error(res, "InvalidCertName.TooLong",
                                  "the certificate name is longer than 128 bytes");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f || name[i] == ',')
            return cdnapi_local_error(res, "InvalidCertName.Malformed",
                                      "the certificate name holds a control character or a "
                                      "comma");
    return CDNAPI_SUCCESS;
}

/* The pair, and the name when one is given. */
static cdnapi_class_t check_upload(const char *domain, const char *name, const char *cert_pem,
                                   const char *key_pem, bool force, int64_t now,
                                   cdnapi_result_t *res)
{
    if (name != NULL && name[0] && cdnapi_validate_cert_name(name, res) != CDNAPI_SUCCESS)
        return res->cls;
    return check(domain, cert_pem, key_pem, now, !force, res);
}

cdnapi_class_t cdnapi_set_cert(cdnapi_t *api, const char *domain, const char *cert_name,
                               const char *cert_pem, const char *key_pem, bool force,
                               int64_t now_utc, cdnapi_result_t *res)
{
    sign_param_t p[6];
    size_t n = 0;
    if (check_upload(domain, cert_name, cert_pem, key_pem, force, now_utc, res) != CDNAPI_SUCCESS) {
        return res->cls;
    }
    p[n++] = cdnapi_param("DomainName", domain);
    p[n++] = cdnapi_param("ServerCertificateStatus", "on");
    p[n++] = cdnapi_param("CertType", "upload");
    p[n++] = cdnapi_param("CertName", cert_name != NULL && cert_name[0] ? cert_name : domain);
    p[n++] = cdnapi_param("ServerCertificate", cert_pem);
    p[n++] = cdnapi_param("PrivateKey", key_pem);
    return cdnapi_call_simple(api, "SetDomainServerCertificate", p, n, res);
}

cdnapi_class_t cdnapi_cert_off(cdnapi_t *api, const char *domain, cdnapi_result_t *res)
{
    sign_param_t p[2];
    if (domain == NULL || domain[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "DomainName is empty");
    }
    p[0] = cdnapi_param("DomainName", domain);
    p[1] = cdnapi_param("ServerCertificateStatus", "off");
    return cdnapi_call_simple(api, "SetDomainServerCertificate", p, 2, res);
}

cdnapi_class_t cdnapi_validate_cas(const char *cas_id, const char *cas_region, cdnapi_result_t *res)
{
    size_t n = cas_id ? strlen(cas_id) : 0;
    if (n == 0 || n > CDNAPI_MAX_CAS_ID_LEN)
        return cdnapi_local_error(res, "InvalidParameter", "CertId must be 1 to 20 digits");
    for (size_t i = 0; i < n; i++)
        if (cas_id[i] < '0' || cas_id[i] > '9')
            return cdnapi_local_error(res, "InvalidParameter", "CertId must be 1 to 20 digits");
    if (cas_region != NULL && strcmp(cas_region, "cn-hangzhou") != 0 &&
        strcmp(cas_region, "ap-southeast-1") != 0)
        return cdnapi_local_error(res, "Abs.CertRegion.ValueNotSupported",
                                  "CertRegion must be cn-hangzhou or ap-southeast-1");
    return CDNAPI_SUCCESS;
}

cdnapi_class_t cdnapi_set_ssl_cert(cdnapi_t *api, const char *domain, const cdnapi_ssl_cert_t *c,
                                   bool force, int64_t now_utc, cdnapi_result_t *res)
{
    sign_param_t p[7];
    size_t n = 0;
    if (domain == NULL || domain[0] == 0 || c == NULL)
        return cdnapi_local_error(res, "MissingParameter", "DomainName is empty");
    p[n++] = cdnapi_param("DomainName", domain);
    p[n++] = cdnapi_param("SSLProtocol", c->on ? "on" : "off");
    if (c->on && c->cas_id != NULL) {
        if (cdnapi_validate_cas(c->cas_id, c->cas_region, res) != CDNAPI_SUCCESS ||
            (c->name != NULL && c->name[0] &&
             cdnapi_validate_cert_name(c->name, res) != CDNAPI_SUCCESS))
            return res->cls;
        p[n++] = cdnapi_param("CertType", "cas");
        p[n++] = cdnapi_param("CertId", c->cas_id);
        if (c->cas_region != NULL)
            p[n++] = cdnapi_param("CertRegion", c->cas_region);
        if (c->name != NULL && c->name[0])
            p[n++] = cdnapi_param("CertName", c->name);
    } else if (c->on) {
        if (check_upload(domain, c->name, c->cert_pem, c->key_pem, force, now_utc, res) !=
            CDNAPI_SUCCESS)
            return res->cls;
        p[n++] = cdnapi_param("CertType", "upload");
        p[n++] = cdnapi_param("CertName", c->name != NULL && c->name[0] ? c->name : domain);
        p[n++] = cdnapi_param("SSLPub", c->cert_pem);
        p[n++] = cdnapi_param("SSLPri", c->key_pem);
    }
    return cdnapi_call_simple(api, "SetCdnDomainSSLCertificate", p, n, res);
}

bool cdnapi_action_retired(const cdnapi_result_t *res)
{
    return strcmp(res->code, "InvalidAction.NotFound") == 0 ||
           strcmp(res->code, "InvalidApi.NotFound") == 0 ||
           (res->status_code >= 400 && res->status_code < 500 &&
            (strstr(res->message, "deprecated") != NULL ||
             strstr(res->message, "Deprecated") != NULL));
}

void cdnapi_cert_fingerprint(const char *pem, char out[CDNAPI_FINGERPRINT_LEN + 1])
{
    mbedtls_x509_crt crt;
    uint8_t d[CRYPTO_SHA256_LEN];
    out[0] = 0;
    if (pem == NULL)
        return;
    mbedtls_x509_crt_init(&crt);
    /* (the first certificate only: a chain's later ones are the CA's) */
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1) >= 0 &&
        crt.raw.len > 0 && crypto_sha256(crt.raw.p, crt.raw.len, d) == CRYPTO_OK)
        util_hex_lower(d, sizeof d, out);
    mbedtls_x509_crt_free(&crt);
}

bool cdnapi_cert_validity(const char *pem, int64_t *not_before, int64_t *not_after)
{
    mbedtls_x509_crt crt;
    bool ok = false;
    if (pem == NULL)
        return false;
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1) >= 0 &&
        crt.raw.len > 0) {
        *not_before = x509_time_utc(&crt.valid_from);
        *not_after = x509_time_utc(&crt.valid_to);
        ok = true;
    }
    mbedtls_x509_crt_free(&crt);
    return ok;
}

/* n decimal digits at s, within [lo, hi]. */
static bool digits(const char *s, unsigned n, unsigned lo, unsigned hi, unsigned *out)
{
    unsigned v = 0;
    for (unsigned i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10u + (unsigned)(s[i] - '0');
    }
    *out = v;
    return v >= lo && v <= hi;
}

bool cdnapi_iso_time(const char *s, int64_t *utc)
{
    unsigned y, mo, d, h, mi, se;
    if (s == NULL || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != 'Z' || !digits(s, 4, 1970, 9999, &y) ||
        !digits(s + 5, 2, 1, 12, &mo) || !digits(s + 8, 2, 1, 31, &d) ||
        !digits(s + 11, 2, 0, 23, &h) || !digits(s + 14, 2, 0, 59, &mi) ||
        !digits(s + 17, 2, 0, 60, &se))
        return false;
    *utc = util_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return true;
}
