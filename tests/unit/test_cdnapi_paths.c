/* The paths of components/cdnapi that the happy-path test (test_cdnapi.c)
 * does not take, each checked by its observable outcome:
 *  - argument validation of every operation (NULL and empty inputs, every
 *    length limit at and one past the bound, ConfigId lists), refused
 *    locally with the service's Code, RequestId "local" and nothing sent;
 *  - classification of every error class: HTTP statuses, Alibaba Codes,
 *    non-JSON / non-object / oversized replies, missing and wrongly typed
 *    fields, transport failures (connect, certificate, bad arguments);
 *  - the read-back walk on odd replies (ConfigId missing, negative,
 *    fractional, too large, as a string; arguments of the wrong type;
 *    no visitor; a visitor stopping early) and the batch reply;
 *  - signer failures (missing credentials, bad pinned timestamp, clock
 *    unset, no entropy on the size query and on the real build, a request
 *    over the signer's or cdnapi's own limit) propagating with their class;
 *  - every out-of-memory point (port_heap_fail_at) of each operation,
 *    failing retryably and leaking nothing (two defects it found are
 *    regression checks in test_out_of_memory);
 *  - the certificate checks of cdnapi_cert.c with throwaway RSA-2048 and
 *    P-256 keys: bad PEMs, oversize PEMs, key/certificate mismatch, expiry
 *    at the exact notAfter second (including a year-0000 notAfter, the
 *    negative-era branch of the date arithmetic), SAN and CN host-name
 *    rules, --force, and the SetDomainServerCertificate / cert-info calls.
 * The keys and certificates below were generated with openssl for this
 * test only; they protect nothing. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "cdnapi.h"
#include "test_cdnapi_compat.h"
#include "port_heap.h"

/* ------------------------------------------------ test keys and certs -- */

/* RSA-2048, self-signed, CN=ignored.example.com, SANs (in this order)
 * IP:127.0.0.1, DNS:ab, DNS:*x.example.com, DNS:CDN.Example.COM,
 * DNS:*.wild.example.com; notAfter 2036-11-26T17:53:08Z. */
/* EC_CERT: P-256 (EC_KEY), subject O=Example Org, emailAddress=
 * ops@example.com, CN=*.cn.example.com, no SAN; notAfter
 * 2036-11-26T17:57:16Z. EC_OTHER_KEY: an unrelated P-256 key (SEC1 PEM).
 * EC_YEAR0_CERT: P-256 (EC_KEY), CN=old.example.com, notAfter patched to
 * the GeneralizedTime 00000101000000Z (mbedTLS does not check signatures
 * when parsing). */
/* clang-format off */
static const char RSA_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDZjCCAk6gAwIBAgIUFAGn31oeAf/exR2J3iImiSIi3JYwDQYJKoZIhvcNAQEL\n"
    "BQAwHjEcMBoGA1UEAwwTaWdub3JlZC5leGFtcGxlLmNvbTAeFw0yNjExMjkxNzUz\n"
    "MDhaFw0zNjExMjYxNzUzMDhaMB4xHDAaBgNVBAMME2lnbm9yZWQuZXhhbXBsZS5j\n"
    "b20wggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQC0vvZ4DoOjSFJLxbOO\n"
    "gXPmqyBdQfKa2lsiMCiBmIvRvIE0eiza69de187O3QPirc9N8aIGzen9WqRICwbm\n"
    "Yrp4P875vCbufZa1Sfz4nwmyDaKybCd0UD/CNdszL231DRje+vRQNVZ5P2pm4F78\n"
    "Iz4AgKbia7bxMJ56+P8K2fQ1jkz7RJeCDI5To7GvTSbpMSLGofYPMngBFkDQn0nE\n"
    "Pm2Ym5K2dPZo5X04A+I2iI+ySeZDEyz72TZ9DgsipB3B+cidU4OM+IhNOK+qSVWn\n"
    "ZmIt49BQXLs6rFRumxYanuA1jZv2SL6TFIUsWDoW5KuTYYHSQYj8PEaQoQbxDRrt\n"
    "l8ZlAgMBAAGjgZswgZgwHQYDVR0OBBYEFJW4TAITp37CuUwvkLbD7aIrnCKyMB8G\n"
    "A1UdIwQYMBaAFJW4TAITp37CuUwvkLbD7aIrnCKyMEgGA1UdEQRBMD+HBH8AAAGC\n"
    "AmFigg4qeC5leGFtcGxlLmNvbYIPQ0ROLkV4YW1wbGUuQ09NghIqLndpbGQuZXhh\n"
    "bXBsZS5jb20wDAYDVR0TAQH/BAIwADANBgkqhkiG9w0BAQsFAAOCAQEAiJcLWtdQ\n"
    "DZU+xMXNvrDdttIgwataKFdwmOp8zxPBIKsbXVb3xSEE02tN3wWGctRBsbxTvz4G\n"
    "pc5nOmceyGQqD6WYOUTs9Co5GL0vfvWvyxkmtj8ThZLHJ7/X/2s3ZMmRcufU3aME\n"
    "nbEXAU5kC1W0MnZOlFBHvaWO1oMVFcaUt0KwL/wOxUOZy0hD4LhFaWRu2rKVpVbV\n"
    "juMLU+DL3IJ09A3cRV7Wrcg11VXpwdBI5Y3HXFgT2Mk0K/biW4TtVPPvfO1OW69R\n"
    "rKqru4PirS5s92G1ITv8Dx7g6XIWMUa7tp7mjXlwrBGFicw1nVSWyTCLIxSDCnoA\n"
    "Rvg4iI9ccmDaqg==\n"
    "-----END CERTIFICATE-----\n";
static const char RSA_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC0vvZ4DoOjSFJL\n"
    "xbOOgXPmqyBdQfKa2lsiMCiBmIvRvIE0eiza69de187O3QPirc9N8aIGzen9WqRI\n"
    "CwbmYrp4P875vCbufZa1Sfz4nwmyDaKybCd0UD/CNdszL231DRje+vRQNVZ5P2pm\n"
    "4F78Iz4AgKbia7bxMJ56+P8K2fQ1jkz7RJeCDI5To7GvTSbpMSLGofYPMngBFkDQ\n"
    "n0nEPm2Ym5K2dPZo5X04A+I2iI+ySeZDEyz72TZ9DgsipB3B+cidU4OM+IhNOK+q\n"
    "SVWnZmIt49BQXLs6rFRumxYanuA1jZv2SL6TFIUsWDoW5KuTYYHSQYj8PEaQoQbx\n"
    "DRrtl8ZlAgMBAAECggEAAgSx5DmmmapYlOpdF3B1oV6e1WZuSvFjnCL1M4FHFRf+\n"
    "9LLlO6qaNJUXWkhYie2j8icKcVCtALxu4jO7/NL0accDTNb03laTr2w8lsV737uh\n"
    "lKQliqR3byKX0zSqjIEmxR1V9haqY7SOv8hYodso5EDg3DK/ZREZwUjKMaOpGPdR\n"
    "htJnfR35W/vgD/hVLQb8nWE0M5K7q5K6fUs4m/kPwyo9/TBewjCcq5hg0tw/fB2a\n"
    "mPIaUqZtevM+Ql7lAaF3WM6BetQRSHH5AEySdzDHM2mbgQrG9+b9csmnhrAnIWrh\n"
    "aM/ku6bfxIgry3m3lhQ8surgu+tJQG/aVn6X688xEQKBgQDcqRxUFnAwSt8EmHPM\n"
    "erSKaJZqevMUdZcDZ+YKE5j981YOI6fxDftbP+n69+fiO0pEnkdN+MFUFXXtKGBd\n"
    "rYpx9Se3pS8Yc1araxwjUvoCkLMjQ/iEa1E7mKh3E4kLCmWbriRY1LQQErTSRJM/\n"
    "lJaWzoEvEgb1SwXC9jFJ+eH4jQKBgQDRsWMY2mVW4L/+8JT5LRMFQx15O+LWlRgG\n"
    "bGGZDlWoAHPuEG494twSnyzSOymuVClqw9vtNRYW+gbQ3R5dMT7IEtrzBm/KCdVi\n"
    "TtV6PV4RxhFlwI9abWyyp0VbdBqeV0lLErDUNVTxI7AAOkPCAJp9POr5f2TF6aEO\n"
    "ze68OxbrOQKBgQCKEodXVnL8xNyn030iBeXSdX8pQaW4t5u21dxrkbe5r/m4/zam\n"
    "70jI4EVYdKb0OIVQSnnzoCPYqVURAKLL+zsV84DWuNWvRvyEZpFEyTcHQ+PTvURU\n"
    "F5LM58kCOYcXEXpi36R+sRm6tPnQWHiK4D8aPj03ZuBTvI3uYH6W+3UaQQKBgQCi\n"
    "PvJCBJlsgzGK/HMH6UxSQf/IEgINrgaM0cciOekkuFT62lOyJpnI/sgbUhOKAyyY\n"
    "ozrDatPQq1witzQLP1MoUw5+A3jzhnBIRF8A2gKzFeHYLQm+GfSEts//VvJRmY/o\n"
    "Omn/h9RVUBuZ0Xsj3HusczoMGfnK+F3ZqpURp1awYQKBgDXSOE51WXC3JAXfR+6G\n"
    "qhwMx1utwHtN5SLS6+CI4qJA5QIM5DDzqIXjM5bDyf/NtFX1pNc+hrKtrWWVF8FT\n"
    "EsM6iGe6I8R1PbJSeLh9kkYsqL5f7tbPtbq8C+5Xflr9NEKEjUpvp98EJXEo0NWl\n"
    "POkC1yLKYjZzugfDonSWgSKH\n"
    "-----END PRIVATE KEY-----\n";
static const char EC_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB9jCCAZ2gAwIBAgIUegvIbHFRGf7k3sIR9Za/O9Nmqn0wCgYIKoZIzj0EAwIw\n"
    "UTEUMBIGA1UECgwLRXhhbXBsZSBPcmcxHjAcBgkqhkiG9w0BCQEWD29wc0BleGFt\n"
    "cGxlLmNvbTEZMBcGA1UEAwwQKi5jbi5leGFtcGxlLmNvbTAeFw0yNjExMjkxNzU3\n"
    "MTZaFw0zNjExMjYxNzU3MTZaMFExFDASBgNVBAoMC0V4YW1wbGUgT3JnMR4wHAYJ\n"
    "KoZIhvcNAQkBFg9vcHNAZXhhbXBsZS5jb20xGTAXBgNVBAMMECouY24uZXhhbXBs\n"
    "ZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASrhDE7MiDb0I9EryeoAN+Q\n"
    "Wm4XPy39Me74FtNHi++euqz/oW1ypJNTx+53sFaxgJNX6WqFOywFPMOgBxMXo73t\n"
    "o1MwUTAdBgNVHQ4EFgQUN+Azhp9MfPasKxHmZx3tcCEP0+gwHwYDVR0jBBgwFoAU\n"
    "N+Azhp9MfPasKxHmZx3tcCEP0+gwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD\n"
    "AgNHADBEAiAXZiyCJsiQ19YyYdLXZbcIjDDKMLu55L6to1hvTksa0QIgJWVby8dD\n"
    "2JqEDI/RhRaQGoeixWfQYbzAVM2qXO7HVN4=\n"
    "-----END CERTIFICATE-----\n";
static const char EC_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtP4pBlNI/+RcaL09\n"
    "CQ8P4b+h3sX+6Crdv16rkfsnkwOhRANCAASrhDE7MiDb0I9EryeoAN+QWm4XPy39\n"
    "Me74FtNHi++euqz/oW1ypJNTx+53sFaxgJNX6WqFOywFPMOgBxMXo73t\n"
    "-----END PRIVATE KEY-----\n";
static const char EC_OTHER_KEY[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEILdhdp78UEKSZqijvEebUbDhF2E1DSLQJRh2jUKIhoqLoAoGCCqGSM49\n"
    "AwEHoUQDQgAET4ViTRJkX8gFubA3UewBt791uFh/TtsFSxckANVO5yVH9prtsJrg\n"
    "9K5OFUUD5D1Wj42aRErIzDv/DR3wmKpSGg==\n"
    "-----END EC PRIVATE KEY-----\n";
static const char EC_YEAR0_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBjDCCATGgAwIBAgIUQyDLi5x4yo/ycNVRtatxGvHY6fkwCgYIKoZIzj0EAwIw\n"
    "GjEYMBYGA1UEAwwPb2xkLmV4YW1wbGUuY29tMCAXDTI2MTEyOTE3NTMwOFoYDzAw\n"
    "MDAwMTAxMDAwMDAwWjAaMRgwFgYDVQQDDA9vbGQuZXhhbXBsZS5jb20wWTATBgcq\n"
    "hkjOPQIBBggqhkjOPQMBBwNCAASrhDE7MiDb0I9EryeoAN+QWm4XPy39Me74FtNH\n"
    "i++euqz/oW1ypJNTx+53sFaxgJNX6WqFOywFPMOgBxMXo73to1MwUTAdBgNVHQ4E\n"
    "FgQUN+Azhp9MfPasKxHmZx3tcCEP0+gwHwYDVR0jBBgwFoAUN+Azhp9MfPasKxHm\n"
    "Zx3tcCEP0+gwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA4ZIj\n"
    "kjG56AnO0xHL5RdLhoeOg77Di/SAEcKlHHyqvCUCIQCwCZca7erK29R4bMwsCk0o\n"
    "wHiaU161grolPN6EKgZNyQ==\n"
    "-----END CERTIFICATE-----\n";
/* clang-format on */

#define RSA_NOT_AFTER INT64_C(2111334788)     /* 2036-11-26T17:53:08Z */
#define EC_NOT_AFTER INT64_C(2111335036)      /* 2036-11-26T17:57:16Z */
#define YEAR0_NOT_AFTER INT64_C(-62167219200) /* 0000-01-01T00:00:00Z */
#define NOW INT64_C(1800000000)               /* 2027-01-15: inside the validity */

/* --------------------------------------------- entropy failure double -- */

/* port_random (port/posix) reads getrandom(2). This definition takes its
 * place in the test binary so that the signer's nonce can be made to fail
 * on a chosen call; otherwise it forwards to the system call. */
static int rnd_fail_in = -1; /* getrandom calls before the one that fails; -1 never */

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    if (rnd_fail_in >= 0 && rnd_fail_in-- == 0) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_getrandom, buf, len, flags);
}

/* ------------------------------------------------- scripted transport -- */

static struct {
    int connect_rc;
    char reply[98304];
    size_t reply_len, reply_off;
    char sent[262144];
    size_t sent_len;
    unsigned connects;
} svc;

static int t_connect(void *c, uint32_t t)
{
    (void)c;
    (void)t;
    svc.connects++;
    return svc.connect_rc;
}
static int t_send(void *c, const uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    if (svc.sent_len + n < sizeof(svc.sent)) {
        memcpy(svc.sent + svc.sent_len, b, n);
        svc.sent_len += n;
        svc.sent[svc.sent_len] = 0;
    }
    return (int)n;
}
static int t_recv(void *c, uint8_t *b, size_t n, uint32_t t)
{
    size_t left = svc.reply_len - svc.reply_off;
    (void)c;
    if (t == 0) {
        return HTTP_ERR_TIMEOUT;
    }
    if (left == 0) {
        return HTTP_ERR_CLOSED;
    }
    if (n > left) {
        n = left;
    }
    memcpy(b, svc.reply + svc.reply_off, n);
    svc.reply_off += n;
    return (int)n;
}
static void t_close(void *c)
{
    (void)c;
}

/* The next reply: status, optional extra header lines, body. Clears what
 * was sent and any injected connect failure. */
static void script_h(int status, const char *extra, const char *body)
{
    int n = snprintf(svc.reply, sizeof(svc.reply),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
                     status, strlen(body), extra ? extra : "", body);
    assert_true(n > 0 && (size_t)n < sizeof(svc.reply));
    svc.reply_len = (size_t)n;
    svc.reply_off = 0;
    svc.sent_len = 0;
    svc.sent[0] = 0;
    svc.connect_rc = HTTP_OK;
    svc.connects = 0;
}
static void script(int status, const char *body)
{
    script_h(status, NULL, body);
}

static bool sent_has(const char *s)
{
    return strstr(svc.sent, s) != NULL;
}

static void t_why(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "cannot connect to the test's host: it said no");
}

static const sign_credentials_t CRED = {"testid", "testsecret", NULL};
static http_client_t g_http;
static cdnapi_t g_api;

static void api_setup_limits(const http_limits_t *limits)
{
    static const http_transport_t tr = {t_connect, t_send, t_recv, t_close, NULL, NULL, NULL};
    http_client_init(&g_http, &tr, limits);
    memset(&g_api, 0, sizeof g_api);
    g_api.http = &g_http;
    g_api.credentials = &CRED;
    g_api.host = "cdn.aliyuncs.com";
    g_api.signature = SIGN_V3;
}

static size_t heap_at_start;

static int setup(void **state)
{
    (void)state;
    memset(&svc, 0, sizeof svc);
    rnd_fail_in = -1;
    port_heap_fail_at(-1, false);
    api_setup_limits(NULL);
    port_heap_stats(&heap_at_start, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rnd_fail_in = -1;
    port_heap_fail_at(-1, false);
    unsetenv("CDNAGENT_CLOCK_SKEW_S");
    return 0;
}

static void assert_no_leak(void)
{
    size_t now;
    port_heap_stats(&now, NULL);
    assert_int_equal(now, heap_at_start);
}

static void assert_local(const cdnapi_result_t *r, const char *code)
{
    assert_string_equal(r->code, code);
    assert_int_equal(r->cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r->request_id, "local");
    assert_int_equal(r->status_code, 0);
    assert_true(r->message[0] != 0);
}

static void fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = 0;
}

/* ---------------------------------------------------- classification -- */

static void test_class_names(void **state)
{
    (void)state;
    assert_string_equal(cdnapi_class_str(CDNAPI_SUCCESS), "success");
    assert_string_equal(cdnapi_class_str(CDNAPI_RETRYABLE), "retryable");
    assert_string_equal(cdnapi_class_str(CDNAPI_CLOCK), "clock");
    assert_string_equal(cdnapi_class_str(CDNAPI_PERMANENT_INPUT), "permanent-input");
    assert_string_equal(cdnapi_class_str(CDNAPI_PERMANENT_CREDENTIALS), "permanent-credentials");
    assert_string_equal(cdnapi_class_str(CDNAPI_CONFIGURATION), "configuration");
    assert_string_equal(cdnapi_class_str((cdnapi_class_t)42), "unknown");
}

static void test_classify_codes(void **state)
{
    (void)state;
    /* a NULL code is no code */
    assert_int_equal(cdnapi_classify(HTTP_OK, 200, NULL), CDNAPI_SUCCESS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 204, ""), CDNAPI_SUCCESS);
    /* a 2xx carrying an error Code is not a success */
    assert_int_equal(cdnapi_classify(HTTP_OK, 200, "InvalidParameter"), CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_classify(HTTP_OK, 200, "Throttling"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "SignatureNonceUsed"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "ThrottlingX"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "IncompleteSignature"),
                     CDNAPI_PERMANENT_CREDENTIALS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 403, "InvalidSecurityToken.Expired"),
                     CDNAPI_PERMANENT_CREDENTIALS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 403, "Forbidden"), CDNAPI_PERMANENT_CREDENTIALS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "InvalidAccessKeyId"),
                     CDNAPI_PERMANENT_CREDENTIALS);
    /* an unknown Code: by status */
    assert_int_equal(cdnapi_classify(HTTP_OK, 503, "SomethingNew"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 0, "SomethingNew"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 199, ""), CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_classify(HTTP_OK, 300, ""), CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_classify(HTTP_OK, 499, "SomethingNew"), CDNAPI_PERMANENT_INPUT);
    /* transport failures: only certificate and argument errors are configuration */
    assert_int_equal(cdnapi_classify(HTTP_ERR_CONNECT, 0, "InvalidParameter"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_ERR_TOO_LARGE, 200, ""), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_ERR_TLS_HANDSHAKE, 0, NULL), CDNAPI_RETRYABLE);
}

static void test_parse_reply_odd(void **state)
{
    static char body[2048];
    static char longcode[200], longmsg[400], longrid[150];
    cdnapi_result_t r;
    (void)state;

    /* valid JSON that is not an object */
    memset(&r, 0xa5, sizeof r);
    cdnapi_parse_reply(200, "[1,2]", 5, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "BadResponse");
    assert_string_equal(r.message, "response body is not a JSON object");
    assert_int_equal(r.status_code, 200);
    assert_int_equal(r.http_status, HTTP_OK);
    cdnapi_parse_reply(400, "\"Code\"", 6, &r);
    assert_string_equal(r.code, "BadResponse");
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    /* a 5xx error page */
    cdnapi_parse_reply(502, "<html>bad gateway</html>", 24, &r);
    assert_string_equal(r.code, "HTTP5xx");
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_int_equal(r.status_code, 502);
    /* an empty body */
    cdnapi_parse_reply(200, "", 0, &r);
    assert_string_equal(r.code, "BadResponse");

    /* fields of the wrong type are left empty; no Code on an error status
     * becomes HTTP<status> */
    memset(&r, 0xa5, sizeof r);
    strcpy(body, "{\"Code\":400,\"Message\":[\"m\"],\"RequestId\":7}");
    cdnapi_parse_reply(404, body, strlen(body), &r);
    assert_string_equal(r.code, "HTTP404");
    assert_string_equal(r.message, "");
    assert_string_equal(r.request_id, "");
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    cdnapi_parse_reply(500, "{}", 2, &r);
    assert_string_equal(r.code, "HTTP500");
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    cdnapi_parse_reply(101, "{}", 2, &r);
    assert_string_equal(r.code, "HTTP101");
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    /* an error Code on a 200 */
    strcpy(body, "{\"Code\":\"InvalidDomain.NotFound\",\"RequestId\":\"R\"}");
    cdnapi_parse_reply(200, body, strlen(body), &r);
    assert_string_equal(r.code, "InvalidDomain.NotFound");
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    /* only len bytes are read */
    strcpy(body, "{\"RequestId\":\"R9\"}{\"Code\":\"Throttling\"}");
    cdnapi_parse_reply(200, body, 18, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.request_id, "R9");
    assert_string_equal(r.code, "");

    /* raw fields are truncated to their buffers, NUL-terminated */
    fill(longcode, 'C', sizeof longcode - 1);
    fill(longmsg, 'm', sizeof longmsg - 1);
    fill(longrid, 'r', sizeof longrid - 1);
    snprintf(body, sizeof body, "{\"Code\":\"%s\",\"Message\":\"%s\",\"RequestId\":\"%s\"}",
             longcode, longmsg, longrid);
    cdnapi_parse_reply(400, body, strlen(body), &r);
    assert_int_equal(strlen(r.code), CDNAPI_CODE_LEN - 1);
    assert_int_equal(strlen(r.message), CDNAPI_MESSAGE_LEN - 1);
    assert_int_equal(strlen(r.request_id), CDNAPI_REQUEST_ID_LEN - 1);
    assert_memory_equal(r.code, longcode, CDNAPI_CODE_LEN - 1);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
}

/* ------------------------------------------------------- validation -- */

static void test_validate_header_limits(void **state)
{
    static char dom[CDNAPI_MAX_DOMAIN_LEN + 2], key[CDNAPI_MAX_KEY_LEN + 2],
        val[CDNAPI_MAX_VALUE_LEN + 2];
    /* clang-format off */
    static const char *const reserved[] = {"HOST", "Content-Length", "upgrade", "Keep-Alive",
        "te", "TRAILER", "Expect", "via", "X-Forwarded-For", "x-real-ip", "Authorization",
        "Proxy-Foo", "ali-x", "EagleEye-TraceId", "X-CDN-Thing", "x-oss-meta-a", "X-Acs-Date",
        "ALI-"};
    static const char *const ordinary[] = {"t", "tex", "Hostx", "Via2", "X-Cdn", "Proxy",
        "X-Forwarded", "X-OSSmeta", "Aliyun"};
    /* clang-format on */
    cdnapi_result_t r;
    size_t i;
    (void)state;

    assert_false(t_valid_header(NULL, "X-A", "v", &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_header("d", NULL, "v", &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_header("d", "X-A", NULL, &r));
    assert_local(&r, "MissingParameter");

    fill(dom, 'd', CDNAPI_MAX_DOMAIN_LEN);
    assert_true(t_valid_header(dom, "X-A", "v", &r));
    fill(dom, 'd', CDNAPI_MAX_DOMAIN_LEN + 1);
    assert_false(t_valid_header(dom, "X-A", "v", &r));
    assert_local(&r, "InvalidDomainName.Malformed");

    fill(key, 'k', CDNAPI_MAX_KEY_LEN);
    assert_true(t_valid_header("d", key, "v", &r));
    fill(key, 'k', CDNAPI_MAX_KEY_LEN + 1);
    assert_false(t_valid_header("d", key, "v", &r));
    assert_local(&r, "InvalidKey.Malformed");

    fill(val, 'v', CDNAPI_MAX_VALUE_LEN);
    assert_true(t_valid_header("d", "X-A", val, &r));
    fill(val, 'v', CDNAPI_MAX_VALUE_LEN + 1);
    assert_false(t_valid_header("d", "X-A", val, &r));
    assert_local(&r, "InvalidValue.Malformed");

    /* every RFC 7230 tchar, and characters around the letter ranges */
    assert_true(t_valid_header("d", "!#$%&'*+-.^_`|~azAZ09", "v", &r));
    assert_false(t_valid_header("d", "X\x80", "v", &r));
    assert_local(&r, "InvalidKey.Malformed");
    assert_false(t_valid_header("d", "X{", "v", &r));
    assert_false(t_valid_header("d", "X@", "v", &r));
    assert_false(t_valid_header("d", "X[", "v", &r));
    assert_false(t_valid_header("d", "X\"", "v", &r));
    /* values: high bytes and tabs pass, every control character does not */
    assert_true(t_valid_header("d", "X-A", "caf\xc3\xa9 \t~", &r));
    assert_false(t_valid_header("d", "X-A", "a\x01", &r));
    assert_local(&r, "InvalidValue.Malformed");
    assert_false(t_valid_header("d", "X-A", "\x1f", &r));

    for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        assert_true(cdnapi_header_name_reserved(reserved[i]));
        assert_false(t_valid_header("d", reserved[i], "v", &r));
        assert_local(&r, "InvalidHeaderKey.ValueNotSupported");
    }
    for (i = 0; i < sizeof ordinary / sizeof ordinary[0]; i++) {
        assert_false(cdnapi_header_name_reserved(ordinary[i]));
        assert_true(t_valid_header("d", ordinary[i], "v", &r));
    }
    assert_false(cdnapi_header_name_reserved(NULL));
    assert_false(cdnapi_header_name_reserved(""));
}

/* ------------------------------------------------------ read-back walk -- */

typedef struct {
    int n, stop_after;
    cdnapi_header_t h[8];
} seen_t;

static bool seen_cb(void *arg, const cdnapi_header_t *h)
{
    seen_t *s = arg;
    if (s->n < 8)
        s->h[s->n] = *h;
    s->n++;
    return !(s->stop_after && s->n >= s->stop_after);
}

/* clang-format off */
#define CFG(id, fn, args) "{\"ConfigId\":" id ",\"FunctionName\":" fn ",\"FunctionArgs\":" args "}"
#define KV(k, v) "{\"FunctionArg\":[{\"ArgName\":\"key\",\"ArgValue\":\"" k "\"},"  \
                 "{\"ArgName\":\"value\",\"ArgValue\":\"" v "\"}]}"

static void test_header_configs_odd(void **state)
{
    static const char body[] =
        "{\"DomainConfigs\":{\"DomainConfig\":["
        CFG("-1", "\"set_req_header\"", KV("X-Neg", "1")) ","
        CFG("1.5", "\"set_req_header\"", KV("X-Frac", "2")) ","
        CFG("9e15", "\"set_req_header\"", KV("X-Big", "3")) ","
        CFG("true", "\"set_req_header\"", KV("X-Bool", "4")) ","
        CFG("0", "\"set_req_header\"", "{}") ","
        CFG("8999999999999999", "\"set_req_header\"",
            "{\"FunctionArg\":[{\"ArgName\":7,\"ArgValue\":\"x\"},"
            "{\"ArgName\":\"key\",\"ArgValue\":null},"
            "{\"ArgName\":\"operation\",\"ArgValue\":\"add\"},"
            "{\"ArgName\":\"value\",\"ArgValue\":\"only-value\"}]}") ","
        CFG("\"1234567890123456789012345678\"", "\"set_req_header\"",
            "{\"FunctionArg\":{\"ArgName\":\"key\",\"ArgValue\":\"X-Obj\"}}") ","
        CFG("5", "42", KV("X-NumFn", "n")) ","
        "{\"ConfigId\":6,\"FunctionArgs\":" KV("X-NoFn", "n") "},"
        CFG("7", "\"set_resp_header\"", KV("X-Resp", "n")) ","
        "{\"FunctionName\":\"set_req_header\"}"
        "]}}";
    /* clang-format on */
    seen_t s;
    (void)state;

    memset(&s, 0, sizeof s);
    assert_int_equal(t_parse_configs(body, strlen(body), seen_cb, &s), 8);
    assert_int_equal(s.n, 8);
    /* negative, fractional, out-of-range and non-numeric ids are no id */
    assert_string_equal(s.h[0].config_id, "");
    assert_string_equal(s.h[0].key, "X-Neg");
    assert_string_equal(s.h[0].value, "1");
    assert_string_equal(s.h[1].config_id, "");
    assert_string_equal(s.h[1].key, "X-Frac");
    assert_string_equal(s.h[2].config_id, "");
    assert_string_equal(s.h[2].key, "X-Big");
    assert_string_equal(s.h[3].config_id, "");
    assert_string_equal(s.h[3].key, "X-Bool");
    /* zero is an id; no arguments leave key and value empty */
    assert_string_equal(s.h[4].config_id, "0");
    assert_string_equal(s.h[4].key, "");
    assert_string_equal(s.h[4].value, "");
    /* the largest id below the bound keeps every digit; wrongly typed
     * arguments and unknown names are skipped */
    assert_string_equal(s.h[5].config_id, "8999999999999999");
    assert_string_equal(s.h[5].key, "");
    assert_string_equal(s.h[5].value, "only-value");
    /* a string id is truncated to the field; FunctionArg not an array */
    assert_string_equal(s.h[6].config_id, "123456789012345678901234");
    assert_string_equal(s.h[6].key, "");
    /* no ConfigId at all */
    assert_string_equal(s.h[7].config_id, "");
    assert_string_equal(s.h[7].key, "");

    /* no visitor: counted all the same */
    assert_int_equal(t_parse_configs(body, strlen(body), NULL, NULL), 8);
    /* the visitor stops the walk at the third */
    memset(&s, 0, sizeof s);
    s.stop_after = 3;
    assert_int_equal(t_parse_configs(body, strlen(body), seen_cb, &s), 3);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.h[2].key, "X-Big");

    /* JSON without the list, or not an object: nothing to visit */
    memset(&s, 0, sizeof s);
    assert_int_equal(t_parse_configs("{}", 2, seen_cb, &s), 0);
    assert_int_equal(t_parse_configs("[]", 2, seen_cb, &s), 0);
    assert_int_equal(t_parse_configs("null", 4, seen_cb, &s), 0);
    assert_int_equal(t_parse_configs("{\"DomainConfigs\":{}}", 20, seen_cb, &s), 0);
    assert_int_equal(s.n, 0);
    /* not JSON */
    assert_int_equal(t_parse_configs("<html>", 6, seen_cb, &s), -1);
    assert_int_equal(t_parse_configs("", 0, seen_cb, &s), -1);
    assert_no_leak();
}

static void test_header_configs_truncation(void **state)
{
    static char key[200], val[1200], body[4096];
    seen_t s;
    (void)state;
    fill(key, 'K', sizeof key - 1);
    fill(val, 'v', sizeof val - 1);
    snprintf(body, sizeof body,
             "{\"DomainConfigs\":{\"DomainConfig\":[{\"ConfigId\":1,\"FunctionName\":"
             "\"set_req_header\",\"FunctionArgs\":{\"FunctionArg\":[{\"ArgName\":\"key\","
             "\"ArgValue\":\"%s\"},{\"ArgName\":\"value\",\"ArgValue\":\"%s\"}]}}]}}",
             key, val);
    memset(&s, 0, sizeof s);
    assert_int_equal(t_parse_configs(body, strlen(body), seen_cb, &s), 1);
    assert_int_equal(strlen(s.h[0].key), CDNAPI_MAX_NAME_LEN);
    assert_int_equal(strlen(s.h[0].value), CDNAPI_MAX_VALUE_LEN);
    assert_string_equal(s.h[0].config_id, "1");
}

static void test_header_configs_oom(void **state)
{
    static const char body[] = "{\"DomainConfigs\":{\"DomainConfig\":[" CFG("11",
                                                                            "\"set_req_header\"",
                                                                            KV("X-A", "1")) "]}}";
    unsigned long n, i;
    seen_t s;
    (void)state;
    port_heap_fail_at(-1, false);
    memset(&s, 0, sizeof s);
    assert_int_equal(t_parse_configs(body, strlen(body), seen_cb, &s), 1);
    n = port_heap_allocs();
    assert_true(n > 1);
    for (i = 0; i < n; i++) {
        memset(&s, 0, sizeof s);
        port_heap_fail_at((long)i, false);
        assert_int_equal(t_parse_configs(body, strlen(body), seen_cb, &s), -1);
        port_heap_fail_at(-1, false);
        assert_int_equal(s.n, 0);
        assert_no_leak();
    }
}

/* --------------------------------------------------- set and delete -- */

static void test_set_header_replies(void **state)
{
    cdnapi_result_t r;
    (void)state;

    /* add: config_id NULL or "" sends no ConfigId */
    script(200, "{\"RequestId\":\"A1\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.code, "");
    assert_string_equal(r.request_id, "A1");
    assert_int_equal(r.status_code, 200);
    assert_false(r.has_server_date);
    assert_true(sent_has("x-acs-action: SetReqHeaderConfig\r\n"));
    assert_true(sent_has("DomainName=cdn.example.com"));
    assert_true(sent_has("Key=X-A"));
    assert_false(sent_has("ConfigId"));
    script(200, "{\"RequestId\":\"A2\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", "", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_false(sent_has("ConfigId"));

    /* credentials refused, with the server's Date kept */
    script_h(403, "Date: Tue, 24 Nov 2026 10:30:00 GMT\r\n",
             "{\"RequestId\":\"E1\",\"Code\":\"SignatureDoesNotMatch\",\"Message\":\"bad sig\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", "9", &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_CREDENTIALS);
    assert_string_equal(r.code, "SignatureDoesNotMatch");
    assert_string_equal(r.message, "bad sig");
    assert_string_equal(r.request_id, "E1");
    assert_int_equal(r.status_code, 403);
    assert_int_equal(r.http_status, HTTP_OK);
    assert_true(r.has_server_date);
    assert_int_equal(r.server_date, 1795516200);

    /* throttled */
    script(400, "{\"Code\":\"Throttling.User\",\"RequestId\":\"T\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "Throttling.User");

    /* an input error of the service */
    script(400, "{\"Code\":\"InvalidDomain.NotFound\",\"RequestId\":\"N\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidDomain.NotFound");

    /* a gateway's HTML error page and an unreadable 200 */
    script(503, "<html>Service Unavailable</html>");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "HTTP5xx");
    assert_int_equal(r.status_code, 503);
    script(200, "OK");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "BadResponse");
    /* a JSON error body without Code */
    script(404, "{\"RequestId\":\"NF\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "HTTP404");
    assert_string_equal(r.request_id, "NF");

    /* local refusals send nothing */
    script(200, "{}");
    cdnapi_set_header(&g_api, NULL, "X-A", "v", NULL, &r);
    assert_local(&r, "MissingParameter");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "a\nb", NULL, &r);
    assert_local(&r, "InvalidValue.Malformed");
    assert_int_equal(svc.sent_len, 0);
    assert_int_equal(svc.connects, 0);

    /* V1 signing: a form body */
    g_api.signature = SIGN_V1;
    script(200, "{\"RequestId\":\"V1\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", "77", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("POST / HTTP/1.1\r\n"));
    assert_true(sent_has("Action=SetReqHeaderConfig"));
    assert_true(sent_has("ConfigId=77"));
    assert_no_leak();
}

static void test_transport_failures(void **state)
{
    static const http_limits_t small = {HTTP_DEFAULT_MAX_HEADER_BYTES, 16, 15000};
    cdnapi_result_t r;
    cdnapi_header_t h;
    const char *d = "cdn.example.com";
    (void)state;

    script(200, "{}");
    svc.connect_rc = HTTP_ERR_CONNECT;
    cdnapi_set_header(&g_api, d, "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_int_equal(r.http_status, HTTP_ERR_CONNECT);
    assert_string_equal(r.code, "Transport.connect");
    assert_string_equal(r.message, "no complete response from the API");
    assert_int_equal(r.status_code, 0);

    /* a transport that says why: its words are the message */
    {
        static const http_transport_t why_tr = {t_connect, t_send, t_recv, t_close,
                                                NULL,      NULL,   t_why};
        http_client_init(&g_http, &why_tr, NULL);
        script(200, "{}");
        svc.connect_rc = HTTP_ERR_CONNECT;
        cdnapi_set_header(&g_api, d, "X-A", "v", NULL, &r);
        assert_string_equal(r.code, "Transport.connect");
        assert_string_equal(r.message, "cannot connect to the test's host: it said no");
        api_setup_limits(NULL);
    }

    script(200, "{}");
    svc.connect_rc = HTTP_ERR_CERT_VERIFY;
    cdnapi_delete_header(&g_api, d, "5", &r);
    assert_int_equal(r.cls, CDNAPI_CONFIGURATION);
    assert_string_equal(r.code, "Transport.cert-verify");

    script(200, "{}");
    svc.connect_rc = HTTP_ERR_DNS;
    assert_int_equal(t_list_headers(&g_api, d, NULL, NULL, &r), -1);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "Transport.dns");

    /* a connection cut mid-reply */
    script(200, "{\"RequestId\":\"cut\"}");
    svc.reply_len -= 5;
    memset(&h, 0, sizeof h);
    strcpy(h.key, "X-A");
    strcpy(h.value, "v");
    assert_int_equal(t_batch(&g_api, &d, 1, &h, 1, NULL, 0, &r), -1);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "Transport.reset");

    /* no HTTP client: a transport set up with bad arguments */
    g_api.http = NULL;
    cdnapi_cert_off(&g_api, d, &r);
    assert_int_equal(r.cls, CDNAPI_CONFIGURATION);
    assert_int_equal(r.http_status, HTTP_ERR_ARG);
    assert_string_equal(r.code, "Transport.bad-argument");

    /* a body over the client's limit */
    api_setup_limits(&small);
    script(200, "{\"RequestId\":\"longer than sixteen bytes\"}");
    cdnapi_set_header(&g_api, d, "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "Transport.too-large");
    assert_no_leak();
}

static void test_sign_failures(void **state)
{
    static const sign_credentials_t no_secret = {"testid", "", NULL};
    cdnapi_result_t r;
    (void)state;

    /* missing signing inputs are configuration */
    script(200, "{}");
    g_api.credentials = NULL;
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_CONFIGURATION);
    assert_string_equal(r.code, "Local.Sign");
    assert_string_equal(r.message, sign_status_str(SIGN_ERR_ARG));
    g_api.credentials = &no_secret;
    cdnapi_delete_header(&g_api, "cdn.example.com", "1", &r);
    assert_int_equal(r.cls, CDNAPI_CONFIGURATION);
    g_api.credentials = &CRED;
    g_api.host = NULL;
    assert_int_equal(t_list_headers(&g_api, "cdn.example.com", NULL, NULL, &r), -1);
    assert_int_equal(r.cls, CDNAPI_CONFIGURATION);
    assert_string_equal(r.code, "Local.Sign");
    g_api.host = "cdn.aliyuncs.com";
    g_api.timestamp = "2026-13-01 bad";
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_CONFIGURATION);
    assert_int_equal(svc.sent_len, 0);

    /* a pinned, corrected clock is what gets signed */
    g_api.timestamp = "2026-11-24T10:30:00Z";
    script(200, "{\"RequestId\":\"P\"}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("x-acs-date: 2026-11-24T10:30:00Z\r\n"));

    /* no clock at all: fix the clock first */
    g_api.timestamp = NULL;
    setenv("CDNAGENT_CLOCK_SKEW_S", "unset", 1);
    script(200, "{}");
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    unsetenv("CDNAGENT_CLOCK_SKEW_S");
    assert_int_equal(r.cls, CDNAPI_CLOCK);
    assert_string_equal(r.code, "Local.Sign");
    assert_string_equal(r.message, sign_status_str(SIGN_ERR_CLOCK));
    assert_int_equal(svc.sent_len, 0);

    /* no entropy for the nonce */
    script(200, "{}");
    rnd_fail_in = 0;
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "Local.Sign");
    assert_string_equal(r.message, sign_status_str(SIGN_ERR_RANDOM));
    assert_int_equal(svc.sent_len, 0);
    assert_no_leak();
    /* a request is signed once: one nonce, one draw (a second draw, as the
     * former size-query-then-build made, would fail here) */
    script(200, "{\"RequestId\":\"once\"}");
    rnd_fail_in = 1;
    cdnapi_delete_header(&g_api, "cdn.example.com", "1", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_int_equal(rnd_fail_in, 0);
    rnd_fail_in = -1;

    /* and the next call goes through */
    script(200, "{\"RequestId\":\"again\"}");
    cdnapi_delete_header(&g_api, "cdn.example.com", "1", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
}

static void test_delete_header_args(void **state)
{
    static char ids[256];
    cdnapi_result_t r;
    size_t i;
    (void)state;

    script(200, "{}");
    cdnapi_delete_header(&g_api, NULL, "1", &r);
    assert_local(&r, "MissingParameter");
    cdnapi_delete_header(&g_api, "", "1", &r);
    assert_local(&r, "MissingParameter");
    cdnapi_delete_header(&g_api, "cdn.example.com", NULL, &r);
    assert_local(&r, "MissingParameter");
    cdnapi_delete_header(&g_api, "cdn.example.com", "", &r);
    assert_local(&r, "MissingParameter");
    /* a ConfigId longer than CDNAPI_MAX_CONFIG_ID_LEN digits */
    fill(ids, '7', CDNAPI_MAX_CONFIG_ID_LEN + 1);
    cdnapi_delete_header(&g_api, "cdn.example.com", ids, &r);
    assert_local(&r, "InvalidParameter");
    cdnapi_delete_header(&g_api, "cdn.example.com", "-1", &r);
    assert_local(&r, "InvalidParameter");
    cdnapi_delete_header(&g_api, "cdn.example.com", ",", &r);
    assert_local(&r, "InvalidParameter");
    assert_int_equal(svc.sent_len, 0);

    /* eight ids of the longest length pass */
    ids[0] = 0;
    for (i = 0; i < CDNAPI_MAX_DELETE_IDS; i++) {
        if (i)
            strcat(ids, ",");
        strcat(ids, "123456789012345678901234");
    }
    script(200, "{\"RequestId\":\"D\"}");
    cdnapi_delete_header(&g_api, "cdn.example.com", ids, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("x-acs-action: DeleteSpecificConfig\r\n"));
    assert_true(sent_has("FunctionName=set_req_header"));
    assert_true(sent_has("ConfigId=123456789012345678901234%2C1234"));

    /* the service refusing one unknown id */
    script(400, "{\"Code\":\"InvalidConfigId.NotFound\",\"RequestId\":\"D2\"}");
    cdnapi_delete_header(&g_api, "cdn.example.com", "1,2", &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidConfigId.NotFound");
    assert_no_leak();
}

/* ------------------------------------------------------------- list -- */

/* cdnapi_list_configs answering body: the number visited, or -1. */
static int t_list_configs(cdnapi_t *api, const char *domain, cdnapi_function_t f,
                          cdnapi_header_fn fn, void *arg, cdnapi_result_t *res, const char *body)
{
    size_t n = 0;
    script(200, body);
    return cdnapi_list_configs(api, domain, f, fn, arg, &n, res) == CDNAPI_SUCCESS ? (int)n : -1;
}

static void test_list_headers(void **state)
{
    static const char body[] = "{\"RequestId\":\"L\",\"DomainConfigs\":{\"DomainConfig\":[" CFG(
        "101", "\"set_req_header\"",
        KV("X-A", "1")) "," CFG("\"102\"", "\"set_req_header\"",
                                KV("X-B", "2")) "," CFG("103", "\"set_req_header\"",
                                                        KV("X-C", "3")) "]}}";
    cdnapi_result_t r;
    seen_t s;
    (void)state;

    assert_int_equal(t_list_headers(&g_api, NULL, seen_cb, &s, &r), -1);
    assert_local(&r, "MissingParameter");
    assert_int_equal(t_list_headers(&g_api, "", seen_cb, &s, &r), -1);
    assert_local(&r, "MissingParameter");

    script(200, body);
    memset(&s, 0, sizeof s);
    assert_int_equal(t_list_headers(&g_api, "cdn.example.com", seen_cb, &s, &r), 3);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.request_id, "L");
    assert_true(sent_has("x-acs-action: DescribeCdnDomainConfigs\r\n"));
    assert_true(sent_has("FunctionNames=set_req_header"));
    assert_string_equal(s.h[0].config_id, "101");
    assert_string_equal(s.h[1].config_id, "102");
    assert_string_equal(s.h[2].key, "X-C");

    /* the visitor stops early: the count is what was visited */
    script(200, body);
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    assert_int_equal(t_list_headers(&g_api, "cdn.example.com", seen_cb, &s, &r), 2);
    assert_int_equal(s.n, 2);

    /* an error reply visits nothing */
    script(400, "{\"Code\":\"InvalidDomain.NotFound\",\"RequestId\":\"L2\"}");
    memset(&s, 0, sizeof s);
    assert_int_equal(t_list_headers(&g_api, "cdn.example.com", seen_cb, &s, &r), -1);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidDomain.NotFound");
    assert_int_equal(s.n, 0);
    /* an unreadable 200 */
    script(200, "not json");
    assert_int_equal(t_list_headers(&g_api, "cdn.example.com", seen_cb, &s, &r), -1);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "BadResponse");
    /* a success without the list */
    script(200, "{\"RequestId\":\"empty\"}");
    assert_int_equal(t_list_headers(&g_api, "cdn.example.com", seen_cb, &s, &r), 0);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_int_equal(s.n, 0);
    assert_no_leak();
}

/* ------------------------------------------------------------ batch -- */

static void hdr(cdnapi_header_t *h, const char *key, const char *value, const char *id)
{
    memset(h, 0, sizeof *h);
    strcpy(h->key, key);
    strcpy(h->value, value);
    strcpy(h->config_id, id);
}

static void test_batch_args(void **state)
{
    static char longdom[CDNAPI_MAX_DOMAIN_LEN + 2];
    static cdnapi_header_t hs[CDNAPI_MAX_BATCH + 1];
    static const char *const one[] = {"a.example.com"};
    const char *doms[3];
    cdnapi_result_t r;
    size_t i;
    (void)state;

    for (i = 0; i < CDNAPI_MAX_BATCH + 1; i++)
        hdr(&hs[i], "X-A", "v", "");
    script(200, "{}");
    assert_int_equal(t_batch(&g_api, NULL, 1, hs, 1, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    assert_int_equal(t_batch(&g_api, one, 1, NULL, 1, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    assert_int_equal(t_batch(&g_api, one, 1, hs, 0, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    /* more than 50 headers on one domain */
    assert_int_equal(t_batch(&g_api, one, 1, hs, CDNAPI_MAX_BATCH + 1, NULL, 0, &r), -1);
    assert_local(&r, "InvalidParameter");

    doms[0] = "a.example.com";
    doms[1] = NULL;
    assert_int_equal(t_batch(&g_api, doms, 2, hs, 1, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    doms[1] = "";
    assert_int_equal(t_batch(&g_api, doms, 2, hs, 1, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    {
        static const char *const bad[] = {"a b.com",   "a\tb.com", "a\x7f.com",
                                          "a\x01.com", " ",        "a.com,"};
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            doms[1] = bad[i];
            assert_int_equal(t_batch(&g_api, doms, 2, hs, 1, NULL, 0, &r), -1);
            assert_local(&r, "InvalidDomainName.Malformed");
        }
    }
    fill(longdom, 'd', CDNAPI_MAX_DOMAIN_LEN + 1);
    doms[1] = longdom;
    assert_int_equal(t_batch(&g_api, doms, 2, hs, 1, NULL, 0, &r), -1);
    assert_local(&r, "InvalidDomainName.Malformed");
    /* a header refused on its own merits, whichever position */
    doms[1] = "b.example.com";
    hdr(&hs[1], "X-B", "", "");
    assert_int_equal(t_batch(&g_api, doms, 2, hs, 2, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    hdr(&hs[1], "X-B", "v", "-5");
    assert_int_equal(t_batch(&g_api, doms, 2, hs, 2, NULL, 0, &r), -1);
    assert_local(&r, "InvalidParameter");
    assert_int_equal(svc.sent_len, 0);

    /* at the bounds: a 253-byte domain, a 24-digit ConfigId, 2 x 25 = 50 */
    fill(longdom, 'd', CDNAPI_MAX_DOMAIN_LEN);
    doms[1] = longdom;
    hdr(&hs[1], "X-B", "v", "123456789012345678901234");
    script(200, "{\"RequestId\":\"ok\"}");
    assert_int_equal(t_batch(&g_api, doms, 2, hs, 25, NULL, 0, &r), 0);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("%22configId%22%3A123456789012345678901234%7D"));
    assert_true(sent_has("DomainNames=a.example.com%2Cddd"));
    assert_no_leak();
}

static void test_batch_replies(void **state)
{
    static const char *const doms[] = {"a.example.com", "b.example.com"};
    cdnapi_batch_config_t got[3];
    cdnapi_header_t h;
    cdnapi_result_t r;
    (void)state;
    hdr(&h, "X-A", "v", "");

    /* more models than room: all counted, only max stored; wrong types empty */
    script(200, "{\"RequestId\":\"B\",\"DomainConfigList\":{\"DomainConfigModel\":["
                "{\"DomainName\":\"a.example.com\",\"ConfigId\":11},"
                "{\"DomainName\":5,\"ConfigId\":2.5},"
                "{\"ConfigId\":\"13\"},"
                "{\"DomainName\":\"b.example.com\",\"ConfigId\":14}]}}");
    memset(got, 0x5a, sizeof got);
    assert_int_equal(t_batch(&g_api, doms, 2, &h, 1, got, 2, &r), 4);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(got[0].domain, "a.example.com");
    assert_string_equal(got[0].config_id, "11");
    assert_string_equal(got[1].domain, "");
    assert_string_equal(got[1].config_id, "");
    assert_int_equal((unsigned char)got[2].domain[0], 0x5a); /* untouched */

    /* no model list: zero */
    script(200, "{\"RequestId\":\"B0\"}");
    assert_int_equal(t_batch(&g_api, doms, 2, &h, 1, got, 3, &r), 0);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);

    /* an error reply of the service */
    script(400, "{\"Code\":\"InvalidDomain.NotFound\",\"RequestId\":\"B1\"}");
    assert_int_equal(t_batch(&g_api, doms, 2, &h, 1, got, 3, &r), -1);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidDomain.NotFound");
    assert_string_equal(r.request_id, "B1");
    assert_no_leak();
}

/* A batch travels in the query string: near-1 KB values can pass the
 * signer's per-value limit yet exceed cdnapi's request bound, or exceed
 * the signer's limit itself; both are refused locally, nothing sent. */
static void test_batch_too_large(void **state)
{
    static cdnapi_header_t hs[CDNAPI_MAX_BATCH];
    static const char *const one[] = {"a.example.com"};
    static char val[CDNAPI_MAX_VALUE_LEN + 1];
    cdnapi_result_t r;
    size_t i;
    (void)state;

    fill(val, '%', CDNAPI_MAX_VALUE_LEN); /* 1 byte in JSON, 3 encoded */
    for (i = 0; i < CDNAPI_MAX_BATCH; i++)
        hdr(&hs[i], "X-A", val, "");
    script(200, "{}");
    assert_int_equal(t_batch(&g_api, one, 1, hs, CDNAPI_MAX_BATCH, NULL, 0, &r), -1);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "Local.Sign");
    assert_string_equal(r.message, "request larger than the limit");

    fill(val, '"', CDNAPI_MAX_VALUE_LEN); /* 2 bytes in JSON: over 64 KB */
    for (i = 0; i < CDNAPI_MAX_BATCH; i++)
        hdr(&hs[i], "X-A", val, "");
    assert_int_equal(t_batch(&g_api, one, 1, hs, CDNAPI_MAX_BATCH, NULL, 0, &r), -1);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "Local.Sign");
    assert_string_equal(r.message, sign_status_str(SIGN_ERR_LIMIT));
    assert_int_equal(svc.sent_len, 0);
    assert_no_leak();
}

/* -------------------------------------------------- out of memory -- */

static const char *const OOM_DOMS[] = {"a.example.com", "b.example.com"};
static cdnapi_header_t oom_hs[1];

static bool op_set(cdnapi_result_t *r)
{
    cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", "5", r);
    return r->cls == CDNAPI_SUCCESS;
}
static bool op_delete(cdnapi_result_t *r)
{
    cdnapi_delete_header(&g_api, "cdn.example.com", "5,6", r);
    return r->cls == CDNAPI_SUCCESS;
}
static bool op_list(cdnapi_result_t *r)
{
    seen_t s;
    int n;
    memset(&s, 0, sizeof s);
    n = t_list_headers(&g_api, "cdn.example.com", seen_cb, &s, r);
    if (n < 0)
        assert_int_equal(s.n, 0);
    return n == 2 && s.n == 2 && r->cls == CDNAPI_SUCCESS;
}
static bool op_batch(cdnapi_result_t *r)
{
    cdnapi_batch_config_t got[2];
    int n = t_batch(&g_api, OOM_DOMS, 2, oom_hs, 1, got, 2, r);
    if (n != 2)
        assert_int_equal(n, -1);
    return n == 2 && r->cls == CDNAPI_SUCCESS && strcmp(got[1].config_id, "2") == 0;
}
static bool op_cert_set(cdnapi_result_t *r)
{
    cdnapi_set_cert(&g_api, "cdn.example.com", "c", RSA_CERT, RSA_KEY, false, NOW, r);
    return r->cls == CDNAPI_SUCCESS;
}

/* Count op's allocations, then fail each in turn (except `skip`, see
 * test_out_of_memory): every failure is a retryable outcome (nothing
 * half-done is reported as done) and leaks nothing. Returns how many
 * failures were reported as NoMemory, before anything was sent. */
static unsigned long oom_walk(bool (*op)(cdnapi_result_t *), const char *body, unsigned long skip)
{
    cdnapi_result_t r;
    unsigned long n, i, local = 0;
    script(200, body);
    port_heap_fail_at(-1, false);
    assert_true(op(&r));
    n = port_heap_allocs();
    assert_true(n > 0);
    for (i = 0; i < n; i++) {
        if (i == skip)
            continue;
        script(200, body);
        port_heap_fail_at((long)i, false);
        assert_false(op(&r));
        port_heap_fail_at(-1, false);
        assert_int_equal(r.cls, CDNAPI_RETRYABLE);
        if (strcmp(r.code, "NoMemory") == 0) {
            assert_int_equal(svc.sent_len, 0);
            local++;
        } else if (strcmp(r.code, "Transport.nomem") != 0) {
            /* the reply arrived but could not be read */
            assert_string_equal(r.code, "BadResponse");
            assert_true(svc.sent_len > 0);
        }
        assert_no_leak();
    }
    script(200, body);
    assert_true(op(&r));
    assert_no_leak();
    return local;
}

static bool op_cert_info(cdnapi_result_t *r)
{
    cdnapi_cert_info_t info;
    bool found = t_cert_info(&g_api, "cdn.example.com", &info, r);
    return found && r->cls == CDNAPI_SUCCESS && strcmp(info.cert_name, "c") == 0;
}

static void test_out_of_memory(void **state)
{
    /* clang-format off */
    static const char list_body[] = "{\"RequestId\":\"L\",\"DomainConfigs\":{\"DomainConfig\":["
        CFG("1", "\"set_req_header\"", KV("X-A", "1")) ","
        CFG("2", "\"set_req_header\"", KV("X-B", "2")) "]}}";
    /* clang-format on */
    static const char batch_body[] =
        "{\"RequestId\":\"B\",\"DomainConfigList\":{"
        "\"DomainConfigModel\":[{\"DomainName\":\"a.example.com\",\"ConfigId\":1},"
        "{\"DomainName\":\"b.example.com\",\"ConfigId\":2}]}}";
    (void)state;

    assert_int_equal(oom_walk(op_set, "{\"RequestId\":\"S\"}", ULONG_MAX), 1);
    assert_int_equal(oom_walk(op_delete, "{\"RequestId\":\"D\"}", ULONG_MAX), 1);
    assert_int_equal(oom_walk(op_list, list_body, ULONG_MAX), 1);
    assert_int_equal(oom_walk(op_cert_set, "{\"RequestId\":\"CS\"}", ULONG_MAX), 1);
    /* Regression: a reply the parser could not hold for want of memory
     * read as "success, no certificate". */
    assert_int_equal(oom_walk(op_cert_info,
                              "{\"RequestId\":\"C\",\"CertInfos\":{\"CertInfo\":["
                              "{\"CertName\":\"c\",\"ServerCertificateStatus\":\"on\"}]}}",
                              ULONG_MAX),
                     1);
    /* The batch builds its Functions JSON first: names, the array, then per
     * header the function object, its args array, the key and value
     * objects, and the "functionArgs" key copy. Regression: a failed key
     * copy left the args neither attached nor freed, and the batch was
     * sent without them as a success. One header, modified by ConfigId, so
     * that every building step fails once. */
    hdr(&oom_hs[0], "X-A", "1", "77");
    assert_true(oom_walk(op_batch, batch_body, ULONG_MAX) > 10);
    /* a rule: its spec copied twice (check, then args), five args */
    hdr(&oom_hs[0], "X-A", "a+\n1", "77");
    oom_hs[0].function = CDNAPI_FN_ORIGIN_RULE;
    assert_true(oom_walk(op_batch, batch_body, ULONG_MAX) > 15);
}

/* ----------------------------------------------------- certificates -- */

static void test_cert_args(void **state)
{
    static char big[CDNAPI_MAX_PEM_LEN + 2];
    cdnapi_result_t r;
    (void)state;
    assert_false(t_valid_cert(NULL, EC_CERT, EC_KEY, NOW, &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_cert("", EC_CERT, EC_KEY, NOW, &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_cert("a.cn.example.com", NULL, EC_KEY, NOW, &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, NULL, NOW, &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_cert("a.cn.example.com", "", EC_KEY, NOW, &r));
    assert_local(&r, "MissingParameter");
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, "", NOW, &r));
    assert_local(&r, "MissingParameter");

    /* over CDNAPI_MAX_PEM_LEN, either one */
    fill(big, 'A', CDNAPI_MAX_PEM_LEN + 1);
    assert_false(t_valid_cert("a.cn.example.com", big, EC_KEY, NOW, &r));
    assert_local(&r, "Certificate.FormatError");
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, big, NOW, &r));
    assert_local(&r, "Certificate.FormatError");

    /* not PEM, a PEM with a broken body, a key in place of the certificate */
    assert_false(t_valid_cert("a.cn.example.com", "hello", EC_KEY, NOW, &r));
    assert_local(&r, "Certificate.FormatError");
    assert_false(t_valid_cert("a.cn.example.com",
                              "-----BEGIN CERTIFICATE-----\nAAAA\n"
                              "-----END CERTIFICATE-----\n",
                              EC_KEY, NOW, &r));
    assert_local(&r, "Certificate.FormatError");
    assert_false(t_valid_cert("a.cn.example.com", EC_KEY, EC_KEY, NOW, &r));
    assert_local(&r, "Certificate.FormatError");
    /* the key: not PEM, broken, a certificate in its place */
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, "key", NOW, &r));
    assert_local(&r, "Certificate.FormatError");
    assert_string_equal(r.message, "the private key PEM does not parse");
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT,
                              "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                              "-----END PRIVATE KEY-----\n",
                              NOW, &r));
    assert_local(&r, "Certificate.FormatError");
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, EC_CERT, NOW, &r));
    assert_local(&r, "Certificate.FormatError");

    /* keys that do not belong to the certificate: same type, other type */
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, EC_OTHER_KEY, NOW, &r));
    assert_local(&r, "Certificate.MissMatch");
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, RSA_KEY, NOW, &r));
    assert_local(&r, "Certificate.MissMatch");
    assert_false(t_valid_cert("cdn.example.com", RSA_CERT, EC_KEY, NOW, &r));
    assert_local(&r, "Certificate.MissMatch");
    /* an unmatched key is refused even when the certificate is also expired */
    assert_false(t_valid_cert("old.example.com", EC_YEAR0_CERT, EC_OTHER_KEY, NOW, &r));
    assert_local(&r, "Certificate.MissMatch");
}

static void test_cert_expiry(void **state)
{
    cdnapi_result_t r;
    (void)state;
    /* valid through the notAfter second itself, expired one second later */
    assert_true(t_valid_cert("cdn.example.com", RSA_CERT, RSA_KEY, RSA_NOT_AFTER, &r));
    assert_false(t_valid_cert("cdn.example.com", RSA_CERT, RSA_KEY, RSA_NOT_AFTER + 1, &r));
    assert_local(&r, "Certificate.Expired");
    assert_true(t_valid_cert("a.cn.example.com", EC_CERT, EC_KEY, EC_NOT_AFTER, &r));
    assert_false(t_valid_cert("a.cn.example.com", EC_CERT, EC_KEY, EC_NOT_AFTER + 1, &r));
    assert_local(&r, "Certificate.Expired");
    /* a notAfter in January of year 0000: before the 400-year era of 1970 */
    assert_false(t_valid_cert("old.example.com", EC_YEAR0_CERT, EC_KEY, NOW, &r));
    assert_local(&r, "Certificate.Expired");
    assert_true(t_valid_cert("old.example.com", EC_YEAR0_CERT, EC_KEY, YEAR0_NOT_AFTER, &r));
    assert_false(t_valid_cert("old.example.com", EC_YEAR0_CERT, EC_KEY, YEAR0_NOT_AFTER + 1, &r));
    assert_local(&r, "Certificate.Expired");
    /* expiry is checked before the host name */
    assert_false(t_valid_cert("other.test", RSA_CERT, RSA_KEY, RSA_NOT_AFTER + 1, &r));
    assert_local(&r, "Certificate.Expired");
}

static void test_cert_names(void **state)
{
    /* RSA_CERT: DNS SANs ab, *x.example.com, CDN.Example.COM, *.wild.example.com
     * (after an IP SAN); its CN is not consulted. */
    /* clang-format off */
    static const char *const rsa_ok[] = {"cdn.example.com", "CDN.EXAMPLE.COM", "ab", "AB",
        "a.wild.example.com", "Z.Wild.Example.Com", "x.wild.example.com"};
    static const char *const rsa_bad[] = {"ignored.example.com", "wild.example.com",
        "a.b.wild.example.com", ".wild.example.com", "localhost", "zx.example.com",
        "a.x.example.com", "cdn.example.co", "cdn.example.con", "127.0.0.1", "a", "abc",
        "a.wild.example.comm"};
    /* EC_CERT: no SAN, O=Example Org, emailAddress=ops@example.com,
     * CN=*.cn.example.com: only the CN names a host */
    static const char *const ec_ok[] = {"a.cn.example.com", "WWW.CN.EXAMPLE.COM"};
    static const char *const ec_bad[] = {"cn.example.com", "a.b.cn.example.com",
        "Example Org", "ops@example.com", "a.cn.example.org", "cnexample"};
    /* clang-format on */
    cdnapi_result_t r;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof rsa_ok / sizeof rsa_ok[0]; i++) {
        if (!t_valid_cert(rsa_ok[i], RSA_CERT, RSA_KEY, NOW, &r))
            fail_msg("%s refused: %s", rsa_ok[i], r.code);
    }
    for (i = 0; i < sizeof rsa_bad / sizeof rsa_bad[0]; i++) {
        if (t_valid_cert(rsa_bad[i], RSA_CERT, RSA_KEY, NOW, &r))
            fail_msg("%s accepted", rsa_bad[i]);
        assert_local(&r, "Certificate.DomainMismatch");
    }
    for (i = 0; i < sizeof ec_ok / sizeof ec_ok[0]; i++) {
        if (!t_valid_cert(ec_ok[i], EC_CERT, EC_KEY, NOW, &r))
            fail_msg("%s refused: %s", ec_ok[i], r.code);
    }
    for (i = 0; i < sizeof ec_bad / sizeof ec_bad[0]; i++) {
        if (t_valid_cert(ec_bad[i], EC_CERT, EC_KEY, NOW, &r))
            fail_msg("%s accepted", ec_bad[i]);
        assert_local(&r, "Certificate.DomainMismatch");
    }
    /* a plain CN */
    assert_true(t_valid_cert("OLD.example.com", EC_YEAR0_CERT, EC_KEY, YEAR0_NOT_AFTER, &r));
    assert_false(t_valid_cert("new.example.com", EC_YEAR0_CERT, EC_KEY, YEAR0_NOT_AFTER, &r));
    assert_local(&r, "Certificate.DomainMismatch");
}

static void test_set_cert(void **state)
{
    cdnapi_result_t r;
    (void)state;

    /* the upload: name given, status on, type upload, both PEMs */
    script(200, "{\"RequestId\":\"SC\"}");
    cdnapi_set_cert(&g_api, "cdn.example.com", "my-cert", RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.request_id, "SC");
    assert_true(sent_has("x-acs-action: SetDomainServerCertificate\r\n"));
    assert_true(sent_has("CertName=my-cert"));
    assert_true(sent_has("CertType=upload"));
    assert_true(sent_has("ServerCertificateStatus=on"));
    assert_true(sent_has("ServerCertificate=-----BEGIN%20CERTIFICATE-----%0AMIID"));
    assert_true(sent_has("PrivateKey=-----BEGIN%20PRIVATE%20KEY-----%0A"));
    assert_true(sent_has("DomainName=cdn.example.com"));
    /* no name, or an empty one: the domain names it */
    script(200, "{\"RequestId\":\"SC2\"}");
    cdnapi_set_cert(&g_api, "a.cn.example.com", NULL, EC_CERT, EC_KEY, false, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("CertName=a.cn.example.com"));
    script(200, "{\"RequestId\":\"SC3\"}");
    cdnapi_set_cert(&g_api, "a.cn.example.com", "", EC_CERT, EC_KEY, false, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("CertName=a.cn.example.com"));

    /* refused locally unless forced: expired, wrong host */
    script(200, "{\"RequestId\":\"F\"}");
    cdnapi_set_cert(&g_api, "old.example.com", "old", EC_YEAR0_CERT, EC_KEY, false, NOW, &r);
    assert_local(&r, "Certificate.Expired");
    cdnapi_set_cert(&g_api, "other.test", "c", RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_local(&r, "Certificate.DomainMismatch");
    assert_int_equal(svc.sent_len, 0);
    cdnapi_set_cert(&g_api, "old.example.com", "old", EC_YEAR0_CERT, EC_KEY, true, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("CertName=old"));
    script(200, "{\"RequestId\":\"F2\"}");
    cdnapi_set_cert(&g_api, "other.test", "c", RSA_CERT, RSA_KEY, true, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("DomainName=other.test"));
    /* force does not skip the format and key checks */
    script(200, "{}");
    cdnapi_set_cert(&g_api, "cdn.example.com", "c", RSA_CERT, EC_KEY, true, NOW, &r);
    assert_local(&r, "Certificate.MissMatch");
    cdnapi_set_cert(&g_api, "cdn.example.com", "c", "junk", RSA_KEY, true, NOW, &r);
    assert_local(&r, "Certificate.FormatError");
    cdnapi_set_cert(&g_api, NULL, "c", RSA_CERT, RSA_KEY, true, NOW, &r);
    assert_local(&r, "MissingParameter");
    assert_int_equal(svc.sent_len, 0);

    /* the service's own refusal */
    script(400, "{\"Code\":\"Certificate.MissMatch\",\"RequestId\":\"SE\"}");
    cdnapi_set_cert(&g_api, "cdn.example.com", "c", RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "Certificate.MissMatch");
    assert_string_equal(r.request_id, "SE");
    assert_no_leak();
}

/* The certificate name has the service's limit (128 bytes, no control
 * character, no comma), checked before anything is signed or sent; the
 * signer's own bounds stay behind it. */
static void test_set_cert_name_limits(void **state)
{
    static char name[SIGN_MAX_VALUE_LEN + 2];
    cdnapi_result_t r;
    (void)state;
    script(200, "{}");
    fill(name, 'n', CDNAPI_MAX_CERT_NAME_LEN + 1);
    cdnapi_set_cert(&g_api, "cdn.example.com", name, RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidCertName.TooLong");
    assert_string_equal(r.request_id, "local");
    fill(name, '/', 30000);
    cdnapi_set_cert(&g_api, "cdn.example.com", name, RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_string_equal(r.code, "InvalidCertName.TooLong");
    cdnapi_set_cert(&g_api, "cdn.example.com", "a\r\nb", RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_string_equal(r.code, "InvalidCertName.Malformed");
    cdnapi_set_cert(&g_api, "cdn.example.com", "a,b", RSA_CERT, RSA_KEY, false, NOW, &r);
    assert_string_equal(r.code, "InvalidCertName.Malformed");
    assert_int_equal(cdnapi_validate_cert_name(NULL, &r), CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "CertName.MissingParameter");
    fill(name, 'n', CDNAPI_MAX_CERT_NAME_LEN);
    assert_int_equal(cdnapi_validate_cert_name(name, &r), CDNAPI_SUCCESS);
    assert_int_equal(svc.sent_len, 0);
    assert_int_equal(svc.connects, 0);
    assert_no_leak();
}

static void test_cert_off(void **state)
{
    cdnapi_result_t r;
    (void)state;
    script(200, "{\"RequestId\":\"OFF\"}");
    cdnapi_cert_off(&g_api, NULL, &r);
    assert_local(&r, "MissingParameter");
    cdnapi_cert_off(&g_api, "", &r);
    assert_local(&r, "MissingParameter");
    assert_int_equal(svc.sent_len, 0);
    cdnapi_cert_off(&g_api, "cdn.example.com", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.request_id, "OFF");
    assert_true(sent_has("x-acs-action: SetDomainServerCertificate\r\n"));
    assert_true(sent_has("ServerCertificateStatus=off"));
    assert_false(sent_has("PrivateKey"));
    script(403, "{\"Code\":\"Forbidden.RAM\",\"RequestId\":\"OFF2\"}");
    cdnapi_cert_off(&g_api, "cdn.example.com", &r);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_CREDENTIALS);
    assert_no_leak();
}

static void test_cert_info(void **state)
{
    static char body[2048], longname[300];
    cdnapi_cert_info_t info;
    cdnapi_result_t r;
    (void)state;

    memset(&info, 0x5a, sizeof info);
    assert_false(t_cert_info(&g_api, NULL, &info, &r));
    assert_local(&r, "MissingParameter");
    assert_string_equal(info.cert_name, ""); /* cleared even when refused */
    assert_false(t_cert_info(&g_api, "", &info, &r));
    assert_local(&r, "MissingParameter");

    script(200, "{\"RequestId\":\"CI\",\"CertInfos\":{\"CertInfo\":[{\"CertName\":\"c1\","
                "\"CertType\":\"upload\",\"CertDomainName\":\"cdn.example.com\","
                "\"CertExpireTime\":\"2036-11-26T17:53:08Z\",\"ServerCertificateStatus\":\"on\"},"
                "{\"CertName\":\"second\"}]}}");
    assert_true(t_cert_info(&g_api, "cdn.example.com", &info, &r));
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_true(sent_has("x-acs-action: DescribeDomainCertificateInfo\r\n"));
    assert_true(sent_has("DomainName=cdn.example.com"));
    assert_string_equal(info.cert_name, "c1");
    assert_string_equal(info.cert_type, "upload");
    assert_string_equal(info.cert_domain_name, "cdn.example.com");
    assert_string_equal(info.expire_time, "2036-11-26T17:53:08Z");
    assert_string_equal(info.status, "on");

    /* missing and wrongly typed fields are empty; long ones truncated */
    fill(longname, 'n', sizeof longname - 1);
    snprintf(body, sizeof body,
             "{\"CertInfos\":{\"CertInfo\":[{\"CertName\":\"%s\",\"CertType\":1,"
             "\"ServerCertificateStatus\":null}]}}",
             longname);
    script(200, body);
    assert_true(t_cert_info(&g_api, "cdn.example.com", &info, &r));
    assert_int_equal(strlen(info.cert_name), CDNAPI_CERT_FIELD_LEN - 1);
    assert_string_equal(info.cert_type, "");
    assert_string_equal(info.cert_domain_name, "");
    assert_string_equal(info.expire_time, "");
    assert_string_equal(info.status, "");

    /* no certificate: success, nothing found */
    script(200, "{\"RequestId\":\"none\",\"CertInfos\":{\"CertInfo\":[]}}");
    assert_false(t_cert_info(&g_api, "cdn.example.com", &info, &r));
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(info.cert_name, "");
    script(200, "{\"RequestId\":\"none\"}");
    assert_false(t_cert_info(&g_api, "cdn.example.com", &info, &r));
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    /* a first entry that is not an object */
    script(200, "{\"CertInfos\":{\"CertInfo\":[\"c1\",{\"CertName\":\"c2\"}]}}");
    assert_false(t_cert_info(&g_api, "cdn.example.com", &info, &r));
    assert_string_equal(info.cert_name, "");
    /* an error reply */
    script(400, "{\"Code\":\"InvalidDomain.NotFound\",\"RequestId\":\"CE\"}");
    assert_false(t_cert_info(&g_api, "cdn.example.com", &info, &r));
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidDomain.NotFound");
    assert_no_leak();
}

/* The typed returns themselves: every operation returns its result's
 * class, counts come out through their own argument, and the statuses of
 * the signer and the transport stay in the result. */
static void test_typed_returns(void **state)
{
    cdnapi_result_t r;
    cdnapi_cert_info_t info;
    cdnapi_header_t h;
    cdnapi_batch_config_t got[2];
    const char *doms[] = {"a.example.com"};
    size_t n = 99;
    (void)state;

    assert_int_equal(cdnapi_validate_header("cdn.example.com", "X-A", "v", &r), CDNAPI_SUCCESS);
    assert_int_equal(cdnapi_validate_header("cdn.example.com", "Host", "v", &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_parse_header_configs("{not json", 9, NULL, NULL, &n), CDNAPI_RETRYABLE);
    assert_int_equal(n, 0);
    assert_int_equal(cdnapi_parse_header_configs(
                         "{\"DomainConfigs\":{\"DomainConfig\":[{\"FunctionName\":"
                         "\"set_req_header\",\"ConfigId\":7,\"FunctionArgs\":{\"FunctionArg\":"
                         "[{\"ArgName\":\"key\",\"ArgValue\":\"X-A\"},{\"ArgName\":\"value\","
                         "\"ArgValue\":\"1\"}]}}]}}",
                         strlen("{\"DomainConfigs\":{\"DomainConfig\":[{\"FunctionName\":"
                                "\"set_req_header\",\"ConfigId\":7,\"FunctionArgs\":{"
                                "\"FunctionArg\":[{\"ArgName\":\"key\",\"ArgValue\":\"X-A\"},"
                                "{\"ArgName\":\"value\",\"ArgValue\":\"1\"}]}}]}}"),
                         NULL, NULL, &n),
                     CDNAPI_SUCCESS);
    assert_int_equal(n, 1);

    script(200, "{\"RequestId\":\"T1\"}");
    assert_int_equal(cdnapi_set_header(&g_api, "cdn.example.com", "X-A", "v", NULL, &r),
                     CDNAPI_SUCCESS);
    script(400, "{\"Code\":\"InvalidDomain.NotFound\"}");
    assert_int_equal(cdnapi_delete_header(&g_api, "cdn.example.com", "1", &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    script(503, "{\"Code\":\"ServiceUnavailable\"}");
    n = 99;
    assert_int_equal(cdnapi_list_headers(&g_api, "cdn.example.com", NULL, NULL, &n, &r),
                     CDNAPI_RETRYABLE);
    assert_int_equal(n, 0);
    memset(&h, 0, sizeof h);
    strcpy(h.key, "X-A");
    strcpy(h.value, "1");
    script(200, "{\"DomainConfigList\":{\"DomainConfigModel\":[{\"DomainName\":"
                "\"a.example.com\",\"ConfigId\":42}]}}");
    n = 99;
    assert_int_equal(cdnapi_batch_set_headers(&g_api, doms, 1, &h, 1, got, 2, &n, &r),
                     CDNAPI_SUCCESS);
    assert_int_equal(n, 1);
    assert_string_equal(got[0].config_id, "42");
    script(200, "{\"CertInfos\":{\"CertInfo\":[]}}");
    assert_int_equal(cdnapi_cert_info(&g_api, "cdn.example.com", &info, &r), CDNAPI_SUCCESS);
    assert_false(info.found);
    assert_int_equal(cdnapi_cert_off(&g_api, "", &r), CDNAPI_PERMANENT_INPUT);

    /* the signer's status stays in the result, not only its words */
    g_api.timestamp = "2026-13-01 bad";
    assert_int_equal(cdnapi_cert_off(&g_api, "cdn.example.com", &r), CDNAPI_CONFIGURATION);
    assert_int_equal(r.sign_status, SIGN_ERR_ARG);
    assert_int_equal(r.http_status, HTTP_OK);
    g_api.timestamp = NULL;
    /* and the transport's: no connection */
    script(200, "{}");
    svc.connect_rc = HTTP_ERR_CONNECT;
    assert_int_equal(cdnapi_cert_off(&g_api, "cdn.example.com", &r), CDNAPI_RETRYABLE);
    assert_int_equal(r.sign_status, SIGN_OK);
    assert_int_equal(r.http_status, HTTP_ERR_CONNECT);
    svc.connect_rc = HTTP_OK;
    assert_no_leak();
}


/* SetCdnDomainSSLCertificate: on with an uploaded pair (SSLPub, SSLPri,
 * the name or the domain's), a certificate service's (CertType cas, CertId,
 * CertRegion; no key), off; the local checks before anything is sent. */
static void test_set_ssl_cert(void **state)
{
    cdnapi_result_t r;
    (void)state;
    script(200, "{\"RequestId\":\"SSL\"}");
    cdnapi_ssl_cert_t up = {true, NULL, RSA_CERT, RSA_KEY, NULL, NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &up, false, NOW, &r),
                     CDNAPI_SUCCESS);
    assert_true(sent_has("SetCdnDomainSSLCertificate") && sent_has("SSLProtocol=on") &&
                sent_has("CertType=upload") && sent_has("CertName=cdn.example.com") &&
                sent_has("SSLPub=") && sent_has("SSLPri="));
    script(200, "{\"RequestId\":\"SSL\"}");
    cdnapi_ssl_cert_t cas = {true, "prod", NULL, NULL, "12345", "ap-southeast-1"};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &cas, false, NOW, &r),
                     CDNAPI_SUCCESS);
    assert_true(sent_has("CertType=cas") && sent_has("CertId=12345") &&
                sent_has("CertRegion=ap-southeast-1") && sent_has("CertName=prod") &&
                !sent_has("SSLPri"));
    script(200, "{\"RequestId\":\"SSL\"}");
    cdnapi_ssl_cert_t off = {false, NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &off, false, NOW, &r),
                     CDNAPI_SUCCESS);
    assert_true(sent_has("SSLProtocol=off") && !sent_has("CertType"));
    /* refused here, nothing sent */
    script(200, "{}");
    cdnapi_ssl_cert_t bad_id = {true, NULL, NULL, NULL, "", NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &bad_id, false, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    cdnapi_ssl_cert_t bad_region = {true, NULL, NULL, NULL, "7", "mars-1"};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &bad_region, false, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "Abs.CertRegion.ValueNotSupported");
    cdnapi_ssl_cert_t bad_name = {true, "a,b", NULL, NULL, "7", NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &bad_name, false, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "InvalidCertName.Malformed");
    cdnapi_ssl_cert_t mismatch = {true, NULL, RSA_CERT, EC_KEY, NULL, NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", &mismatch, false, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "Certificate.MissMatch");
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, NULL, &off, false, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "cdn.example.com", NULL, false, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_validate_cas("123456789012345678901", NULL, &r),
                     CDNAPI_PERMANENT_INPUT); /* 21 digits */
    assert_int_equal(cdnapi_validate_cas("1", "cn-hangzhou", &r), CDNAPI_SUCCESS);
    assert_int_equal(svc.sent_len, 0);
    assert_no_leak();
}

/* A chain cut short (a half-written renewal: its last block has no END
 * line, which mbedTLS passes over) or with text after its end is refused. */
static void test_cert_pem_whole(void **state)
{
    cdnapi_result_t r;
    static char pem[8192];
    (void)state;
    snprintf(pem, sizeof pem, "%s-----BEGIN CERTIFICATE-----\nMIIB", EC_CERT);
    assert_int_equal(cdnapi_validate_cert("x.example.com", pem, EC_KEY, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(r.code, "Certificate.FormatError");
    snprintf(pem, sizeof pem, "%sjunk\n", EC_CERT);
    assert_int_equal(cdnapi_validate_cert("x.example.com", pem, EC_KEY, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    snprintf(pem, sizeof pem, "%.*s", (int)(strlen(EC_CERT) - 10), EC_CERT);
    assert_int_equal(cdnapi_validate_cert("x.example.com", pem, EC_KEY, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    snprintf(pem, sizeof pem, "%s \r\n\t\n", EC_CERT); /* blanks after it are fine */
    cdnapi_validate_cert("x.example.com", pem, EC_KEY, NOW, &r);
    assert_string_not_equal(r.code, "Certificate.FormatError");
    assert_int_equal(cdnapi_validate_cert("x.example.com", "no pem", EC_KEY, NOW, &r),
                     CDNAPI_PERMANENT_INPUT);
    assert_no_leak();
}

/* A rule's spec: every operation round-trips; the switch is add's only;
 * what is not a spec is refused. */
static void test_rule_spec(void **state)
{
    static char big[CDNAPI_MAX_VALUE_LEN + 2];
    char spec[CDNAPI_MAX_VALUE_LEN + 1];
    cdnapi_rule_t r, back;
    (void)state;
    for (int op = CDNAPI_RULE_ADD; op <= CDNAPI_RULE_REWRITE; op++) {
        cdnapi_rule_t in = {(cdnapi_rule_op_t)op, true, "X-A", "v1, v2\tx",
                            op == CDNAPI_RULE_REWRITE ? "^old" : NULL};
        assert_true(cdnapi_rule_spec(&in, spec));
        assert_int_equal(spec[0], cdnapi_rule_op_str((cdnapi_rule_op_t)op)[0]);
        memset(&back, 0, sizeof back);
        assert_true(cdnapi_rule_unspec(spec, &back));
        assert_int_equal(back.op, op);
        assert_int_equal(back.duplicate, op == CDNAPI_RULE_ADD);
        assert_string_equal(back.value, "v1, v2\tx");
        assert_string_equal(back.source, op == CDNAPI_RULE_REWRITE ? "^old" : "");
        assert_null(back.name);
    }
    r = (cdnapi_rule_t){CDNAPI_RULE_ADD, false, "X-A", "v", NULL};
    assert_true(cdnapi_rule_spec(&r, spec));
    assert_string_equal(spec, "a-\nv");
    r.op = (cdnapi_rule_op_t)9;
    assert_false(cdnapi_rule_spec(&r, spec));
    assert_string_equal(spec, "");
    /* 2 + source + 1 + value must fit 1,024 */
    fill(big, 's', 1000);
    r = (cdnapi_rule_t){CDNAPI_RULE_REWRITE, false, "X-A", "dddddddddddddddddddddd", big};
    assert_false(cdnapi_rule_spec(&r, spec));
    big[1024 - 3 - 22] = 0;
    assert_true(cdnapi_rule_spec(&r, spec));
    assert_int_equal(strlen(spec), CDNAPI_MAX_VALUE_LEN);
    static const char *const not_specs[] = {"",      "a",     "a+",    "a+x",
                                            "x+\nv", "a*\nv", "?-\nv", "a\n+v"};
    for (size_t i = 0; i < sizeof not_specs / sizeof not_specs[0]; i++) {
        snprintf(spec, sizeof spec, "%s", not_specs[i]);
        assert_false(cdnapi_rule_unspec(spec, &back));
    }
    assert_string_equal(cdnapi_function_str(CDNAPI_FN_REQ_HEADER), "set_req_header");
    assert_string_equal(cdnapi_function_str(CDNAPI_FN_ORIGIN_RULE), "origin_request_header");
}

#define ARG(n, v) "{\"ArgName\":\"" n "\",\"ArgValue\":\"" v "\"}"
/* A read-back of both functions: each config with its function, a rule
 * as the spec the agent would have sent, odd rules as specs no rule of
 * the agent equals. */
static void test_rule_configs(void **state)
{
    static char body[8192], longv[1100];
    cdnapi_result_t r;
    seen_t s;
    (void)state;
    fill(longv, 'v', 1030);
    snprintf(
        body, sizeof body,
        "{\"RequestId\":\"L\",\"DomainConfigs\":{\"DomainConfig\":["
        "{\"ConfigId\":1,\"FunctionName\":\"origin_request_header\",\"FunctionArgs\":"
        "{\"FunctionArg\":[" ARG("header_operation_type", "add") "," ARG("header_name", "X-R") "," ARG("header_value", "a,b") "," ARG("duplicate", "on") "," ARG(
            "match_all",
            "off") "]}},"
                   "{\"ConfigId\":2,\"FunctionName\":\"origin_request_header\",\"FunctionArgs\":"
                   "{\"FunctionArg\":[" ARG("header_operation_type", "rewrite") "," ARG("header_name", "X-W") "," ARG(
                       "header_source",
                       "^a") "," ARG("header_destination",
                                     "b") "," ARG("header_value",
                                                  "ignored") "]}},"
                                                             "{\"ConfigId\":3,\"FunctionName\":\"origin_request_header\",\"FunctionArgs\":"
                                                             "{\"FunctionArg\":[" ARG("header_operation_type", "replace") "," ARG(
                                                                 "header_name",
                                                                 "X-Q") "]}},"
                                                                        "{\"ConfigId\":4,\"FunctionName\":\"origin_request_header\",\"FunctionArgs\":"
                                                                        "{\"FunctionArg\":[" ARG(
                                                                            "header_name",
                                                                            "X-L") ",{\"ArgName\":\"header_value\","
                                                                                   "\"ArgValue\":\"%s\"}]}},"
                                                                                   "{\"ConfigId\":5,\"FunctionName\":\"set_req_header\",\"FunctionArgs\":"
                                                                                   "{\"FunctionArg\":[" ARG(
                                                                                       "key",
                                                                                       "X-K") "," ARG("value",
                                                                                                      "1") "]}},"
                                                                                                           "{\"ConfigId\":6,\"FunctionName\":\"origin_request_header\"},"
                                                                                                           "{\"ConfigId\":7,\"FunctionName\":\"set_req_header\"}]}}",
        longv);
    memset(&s, 0, sizeof s);
    assert_int_equal(t_list_configs(&g_api, "cdn.example.com", CDNAPI_FN_ORIGIN_RULE, seen_cb, &s,
                                    &r, body),
                     7);
    assert_true(sent_has("FunctionNames=origin_request_header"));
    assert_int_equal(s.h[0].function, CDNAPI_FN_ORIGIN_RULE);
    assert_string_equal(s.h[0].key, "X-R");
    assert_string_equal(s.h[0].value, "a+\na,b");
    assert_string_equal(s.h[1].key, "X-W");
    assert_string_equal(s.h[1].value, "r-^a\nb");
    assert_string_equal(s.h[2].value, "?-\n");
    assert_string_equal(s.h[3].value, ""); /* too long to be one of the agent's */
    assert_int_equal(s.h[4].function, CDNAPI_FN_REQ_HEADER);
    assert_string_equal(s.h[4].value, "1");
    assert_string_equal(s.h[5].key, "");
    assert_string_equal(s.h[5].value, "?-\n");
    assert_string_equal(s.h[6].key, "");
    assert_string_equal(s.h[6].value, "");
    assert_no_leak();
}

/* Deleting and adding rules: the function named, the args the service
 * documents, the switch for add only; a rule refused locally sends nothing. */
static void test_rule_requests(void **state)
{
    static const char *const doms[] = {"a.example.com"};
    char spec[CDNAPI_MAX_VALUE_LEN + 1];
    cdnapi_header_t h;
    cdnapi_result_t r;
    (void)state;

    script(200, "{\"RequestId\":\"D\"}");
    assert_int_equal(cdnapi_delete_configs(&g_api, "cdn.example.com", "5", CDNAPI_FN_ORIGIN_RULE,
                                           &r),
                     CDNAPI_SUCCESS);
    assert_true(sent_has("FunctionName=origin_request_header"));

    cdnapi_rule_t add = {CDNAPI_RULE_ADD, true, "X-R", "a,b", NULL};
    assert_true(cdnapi_rule_spec(&add, spec));
    hdr(&h, "X-R", spec, "");
    h.function = CDNAPI_FN_ORIGIN_RULE;
    script(200, "{\"RequestId\":\"B\"}");
    assert_int_equal(t_batch(&g_api, doms, 1, &h, 1, NULL, 0, &r), 0);
    assert_true(sent_has("%22functionName%22%3A%22origin_request_header%22"));
    assert_true(
        sent_has("%22argName%22%3A%22header_operation_type%22%2C%22argValue%22%3A%22add%22"));
    assert_true(sent_has("%22argName%22%3A%22header_name%22%2C%22argValue%22%3A%22X-R%22"));
    assert_true(sent_has("%22argName%22%3A%22header_value%22%2C%22argValue%22%3A%22a%2Cb%22"));
    assert_true(sent_has("%22argName%22%3A%22duplicate%22%2C%22argValue%22%3A%22on%22"));

    cdnapi_rule_t rw = {CDNAPI_RULE_REWRITE, true, "X-W", "new", "^old"};
    assert_true(cdnapi_rule_spec(&rw, spec));
    hdr(&h, "X-W", spec, "42");
    h.function = CDNAPI_FN_ORIGIN_RULE;
    script(200, "{\"RequestId\":\"B\"}");
    assert_int_equal(t_batch(&g_api, doms, 1, &h, 1, NULL, 0, &r), 0);
    assert_true(sent_has("%22argName%22%3A%22header_source%22%2C%22argValue%22%3A%22%5Eold%22"));
    assert_true(sent_has("%22argName%22%3A%22header_destination%22%2C%22argValue%22%3A%22new%22"));
    assert_false(sent_has("duplicate"));
    assert_false(sent_has("header_value"));
    assert_true(sent_has("%22configId%22%3A42"));

    cdnapi_rule_t del = {CDNAPI_RULE_DELETE, false, "X-D", NULL, NULL};
    assert_true(cdnapi_rule_spec(&del, spec));
    hdr(&h, "X-D", spec, "");
    h.function = CDNAPI_FN_ORIGIN_RULE;
    script(200, "{\"RequestId\":\"B\"}");
    assert_int_equal(t_batch(&g_api, doms, 1, &h, 1, NULL, 0, &r), 0);
    assert_false(sent_has("header_value"));
    assert_false(sent_has("duplicate"));

    /* refused before anything is sent: not a spec, a rule the service refuses */
    svc.sent_len = 0;
    hdr(&h, "X-R", "plain value", "");
    h.function = CDNAPI_FN_ORIGIN_RULE;
    assert_int_equal(t_batch(&g_api, doms, 1, &h, 1, NULL, 0, &r), -1);
    assert_local(&r, "InvalidParameter");
    hdr(&h, "1-R", "a-\nv", "");
    h.function = CDNAPI_FN_ORIGIN_RULE;
    assert_int_equal(t_batch(&g_api, doms, 1, &h, 1, NULL, 0, &r), -1);
    assert_local(&r, "InvalidParameter");
    hdr(&h, "X-R", "m-\n", "");
    h.function = CDNAPI_FN_ORIGIN_RULE;
    assert_int_equal(t_batch(&g_api, doms, 1, &h, 1, NULL, 0, &r), -1);
    assert_local(&r, "MissingParameter");
    assert_int_equal(svc.sent_len, 0);
    assert_no_leak();
}

/* origin_request_header's local rules, the same cases cdnsim refuses (the
 * referee runs them through the official SDKs). */
static void test_validate_rule(void **state)
{
    cdnapi_result_t r;
    static char long_name[CDNAPI_MAX_RULE_NAME_LEN + 2], long_value[CDNAPI_MAX_RULE_VALUE_LEN + 2];
    (void)state;
    fill(long_name, 'X', CDNAPI_MAX_RULE_NAME_LEN);
    fill(long_value, 'v', CDNAPI_MAX_RULE_VALUE_LEN);
    const cdnapi_rule_t good[] = {
        {CDNAPI_RULE_ADD, true, "X-Multi", "a,b", NULL},
        {CDNAPI_RULE_ADD, false, long_name, long_value, NULL},
        {CDNAPI_RULE_MODIFY, false, "x-a", "v", NULL},
        {CDNAPI_RULE_DELETE, false, "X-A", NULL, NULL},
        {CDNAPI_RULE_ADD, false, "X-A", "v", ""}, /* an empty source is none */
        {CDNAPI_RULE_REWRITE, false, "X-A", "new", "^old"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(cdnapi_validate_rule(&good[i], &r), CDNAPI_SUCCESS);
    fill(long_name, 'X', CDNAPI_MAX_RULE_NAME_LEN + 1);
    fill(long_value, 'v', CDNAPI_MAX_RULE_VALUE_LEN + 1);
    static const struct {
        cdnapi_rule_t rule;
        const char *code;
    } bad[] = {
        {{CDNAPI_RULE_ADD, false, NULL, "v", NULL}, "MissingParameter"},
        {{CDNAPI_RULE_ADD, false, "1X", "v", NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_ADD, false, "-X", "v", NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_ADD, false, long_name, "v", NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_ADD, false, "X A", "v", NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_ADD, false, "Host", "v", NULL}, "InvalidHeaderKey.ValueNotSupported"},
        {{CDNAPI_RULE_ADD, false, "Ali-Swift", "v", NULL}, "InvalidHeaderKey.ValueNotSupported"},
        {{CDNAPI_RULE_ADD, false, "X-A", "", NULL}, "MissingParameter"},
        {{CDNAPI_RULE_MODIFY, false, "X-A", NULL, NULL}, "MissingParameter"},
        {{CDNAPI_RULE_ADD, false, "X-A", "v", "^src"}, "InvalidParameter"},
        {{CDNAPI_RULE_DELETE, true, "X-A", NULL, NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_MODIFY, true, "X-A", "v", NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_ADD, false, "X-A", long_value, NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_ADD, false, "X-A", "a\nb", NULL}, "InvalidParameter"},
        {{CDNAPI_RULE_REWRITE, false, "X-A", "new", NULL}, "MissingParameter"},
        {{CDNAPI_RULE_REWRITE, false, "X-A", "new", "a\rb"}, "InvalidParameter"},
        {{(cdnapi_rule_op_t)7, false, "X-A", "v", NULL}, "InvalidParameter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cdnapi_validate_rule(&bad[i].rule, &r), CDNAPI_PERMANENT_INPUT);
        assert_string_equal(r.code, bad[i].code);
        assert_string_equal(r.request_id, "local");
    }
    assert_int_equal(cdnapi_validate_rule(NULL, &r), CDNAPI_PERMANENT_INPUT);
    for (int op = 0; op < 4; op++)
        assert_int_equal(cdnapi_rule_op_parse(cdnapi_rule_op_str((cdnapi_rule_op_t)op)), op);
    assert_int_equal(cdnapi_rule_op_parse("replace"), -1);
    assert_int_equal(cdnapi_rule_op_parse(NULL), -1);
    assert_string_equal(cdnapi_rule_op_str((cdnapi_rule_op_t)9), "?");
    assert_no_leak();
}

/* What tells that an action is gone, the served certificate's fingerprint
 * and validity, and the service's time format. */
static void test_cert_helpers(void **state)
{
    cdnapi_result_t r;
    char fp[CDNAPI_FINGERPRINT_LEN + 1];
    int64_t nb = 0, na = 0, t = 0;
    (void)state;
    memset(&r, 0, sizeof r);
    strcpy(r.code, "InvalidAction.NotFound");
    assert_true(cdnapi_action_retired(&r));
    strcpy(r.code, "InvalidApi.NotFound");
    assert_true(cdnapi_action_retired(&r));
    strcpy(r.code, "Forbidden");
    r.status_code = 400;
    strcpy(r.message, "This API is deprecated, use SetCdnDomainSSLCertificate");
    assert_true(cdnapi_action_retired(&r));
    r.status_code = 500;
    assert_false(cdnapi_action_retired(&r));
    strcpy(r.message, "throttled");
    r.status_code = 400;
    assert_false(cdnapi_action_retired(&r));
    cdnapi_cert_fingerprint(RSA_CERT, fp);
    assert_int_equal(strlen(fp), 64);
    cdnapi_cert_fingerprint("junk", fp);
    assert_string_equal(fp, "");
    cdnapi_cert_fingerprint(NULL, fp);
    assert_string_equal(fp, "");
    assert_true(cdnapi_cert_validity(EC_CERT, &nb, &na) && nb < na);
    assert_false(cdnapi_cert_validity("junk", &nb, &na));
    assert_false(cdnapi_cert_validity(NULL, &nb, &na));
    assert_true(cdnapi_iso_time("1970-01-02T00:00:01Z", &t));
    assert_int_equal(t, 86401);
    assert_true(cdnapi_iso_time("2046-11-24T14:54:07Z", &t));
    static const char *const bad[] = {NULL,
                                      "",
                                      "2046-11-24 14:54:07Z",
                                      "2046-13-24T14:54:07Z",
                                      "2046-11-24T24:54:07Z",
                                      "2046-11-24T14:54:07",
                                      "1969-12-31T23:59:59Z",
                                      "2046-11-2xT14:54:07Z",
                                      "2046-11-24T14:54:07Z+"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cdnapi_iso_time(bad[i], &t));
    assert_no_leak();
}

/* DescribeDomainCertificateInfo: the served PEM's fingerprint, the start
 * time, a CertId as a string or a number. */
static void test_cert_info_fields(void **state)
{
    cdnapi_result_t r;
    cdnapi_cert_info_t info;
    static char body[8192];
    char want[CDNAPI_FINGERPRINT_LEN + 1];
    size_t o = 0;
    (void)state;
    o += (size_t)snprintf(body + o, sizeof body - o,
                          "{\"RequestId\":\"I\",\"CertInfos\":{\"CertInfo\":[{\"CertName\":\"c\","
                          "\"CertId\":12345,\"CertStartTime\":\"2026-01-01T00:00:00Z\","
                          "\"ServerCertificateStatus\":\"on\",\"ServerCertificate\":\"");
    for (const char *p = EC_CERT; *p; p++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s", *p == '\n' ? "\\n" : (char[]){*p, 0});
    snprintf(body + o, sizeof body - o, "\"}]}}");
    script(200, body);
    assert_int_equal(cdnapi_cert_info(&g_api, "cdn.example.com", &info, &r), CDNAPI_SUCCESS);
    cdnapi_cert_fingerprint(EC_CERT, want);
    assert_string_equal(info.fingerprint, want);
    assert_string_equal(info.cert_id, "12345");
    assert_string_equal(info.start_time, "2026-01-01T00:00:00Z");
    assert_no_leak();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_class_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_returns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_classify_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_reply_odd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_header_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_configs_odd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_configs_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_configs_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_header_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_header_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_cert_name_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_ssl_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_helpers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_configs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_pem_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_info_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_info, setup, teardown),
    };
    cdnapi_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
