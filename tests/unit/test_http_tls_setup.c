/* http_tls_new when mbedTLS runs out of memory parsing the CA bundle: out
 * of memory, not a bad bundle (a reviewer's find: both read as TLS setup,
 * and the CLI then blamed a good bundle). mbedtls_x509_crt_parse is
 * interposed to fail the way mbedTLS does when its calloc returns NULL. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/pem.h>
#include <mbedtls/x509_crt.h>

#include "http.h"
#include "test_interpose.h"

static int g_fail; /* the error the next parse returns; 0: the real parse */

int mbedtls_x509_crt_parse(mbedtls_x509_crt *chain, const unsigned char *buf, size_t buflen)
{
    static int (*real)(mbedtls_x509_crt *, const unsigned char *, size_t);
    if (g_fail)
        return g_fail;
    REAL(real, "mbedtls_x509_crt_parse");
    return real(chain, buf, buflen);
}

static http_status_t tls_new_failing(int err)
{
    static const char ca[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    http_tls_options_t o;
    http_transport_t tr;
    http_tls_t *tls = NULL;
    memset(&o, 0, sizeof o);
    o.host = "cdn.aliyuncs.com";
    o.port = 443;
    o.ca_pem = (const uint8_t *)ca;
    o.ca_pem_len = sizeof ca;
    g_fail = err;
    http_status_t rc = http_tls_new(&tls, &o, &tr);
    g_fail = 0;
    if (rc == HTTP_OK)
        http_tls_free(tls);
    assert_true(rc != HTTP_OK);
    assert_null(tls);
    return rc;
}

static void test_ca_parse_out_of_memory_is_nomem(void **state)
{
    (void)state;
    assert_int_equal(tls_new_failing(MBEDTLS_ERR_X509_ALLOC_FAILED), HTTP_ERR_NOMEM);
    assert_int_equal(tls_new_failing(MBEDTLS_ERR_PEM_ALLOC_FAILED), HTTP_ERR_NOMEM);
    /* a bundle that does not parse is still TLS setup */
    assert_int_equal(tls_new_failing(MBEDTLS_ERR_X509_INVALID_FORMAT), HTTP_ERR_TLS_SETUP);
    assert_int_equal(tls_new_failing(0), HTTP_ERR_TLS_SETUP); /* the real parse of "AAAA" */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ca_parse_out_of_memory_is_nomem)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
