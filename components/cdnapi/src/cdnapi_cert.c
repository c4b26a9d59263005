/* Local certificate checks and SetDomainServerCertificate. */
#include <string.h>

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "cdnapi.h"
#include "cdnapi_internal.h"
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

cdnapi_class_t cdnapi_set_cert(cdnapi_t *api, const char *domain, const char *cert_name,
                               const char *cert_pem, const char *key_pem, bool force,
                               int64_t now_utc, cdnapi_result_t *res)
{
    sign_param_t p[6];
    size_t n = 0;
    if (check(domain, cert_pem, key_pem, now_utc, !force, res) != CDNAPI_SUCCESS) {
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
