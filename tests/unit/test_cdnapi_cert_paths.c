/* components/cdnapi/src/cdnapi_cert.c paths the other tests leave: the
 * CertId check's every refusal, SetCdnDomainSSLCertificate's local checks
 * and the CertName it sends when none is given, a retired action told by a
 * "Deprecated" message, and every malformed field of an ISO 8601 time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cdnapi.h"
#include "port.h"
#include "port_heap.h"
#include "test_pki.h"

#define DOM TEST_PKI_DOMAIN

/* --------------------------------------------- a service that says ok -- */

static struct {
    char sent[65536];
    size_t sent_len;
    char reply[512];
    size_t reply_len, reply_off;
    unsigned connects;
} svc;

static int t_connect(void *c, uint32_t t)
{
    (void)c;
    (void)t;
    svc.connects++;
    return HTTP_OK;
}

static int t_send(void *c, const uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    assert_true(svc.sent_len + n < sizeof svc.sent);
    memcpy(svc.sent + svc.sent_len, b, n);
    svc.sent_len += n;
    svc.sent[svc.sent_len] = 0;
    return (int)n;
}

static int t_recv(void *c, uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    size_t left = svc.reply_len - svc.reply_off;
    if (left == 0)
        return HTTP_ERR_CLOSED;
    if (n > left)
        n = left;
    memcpy(b, svc.reply + svc.reply_off, n);
    svc.reply_off += n;
    return (int)n;
}

static void t_close(void *c)
{
    (void)c;
}

static const sign_credentials_t CRED = {"testid", "testsecret", NULL};
static http_client_t g_http;
static cdnapi_t g_api;

static void api_setup(void)
{
    static const http_transport_t tr = {t_connect, t_send, t_recv, t_close, NULL, NULL, NULL};
    static const char body[] = "{\"RequestId\":\"R-ok\"}";
    memset(&svc, 0, sizeof svc);
    svc.reply_len = (size_t)snprintf(svc.reply, sizeof svc.reply,
                                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: "
                                     "close\r\n\r\n%s",
                                     strlen(body), body);
    http_client_init(&g_http, &tr, NULL);
    memset(&g_api, 0, sizeof g_api);
    g_api.http = &g_http;
    g_api.credentials = &CRED;
    g_api.host = "cdn.aliyuncs.com";
    g_api.signature = SIGN_V3;
}

static size_t heap0;

static int setup(void **state)
{
    (void)state;
    cdnapi_init();
    api_setup();
    port_heap_stats(&heap0, NULL);
    return 0;
}

static int teardown(void **state)
{
    size_t now = 0;
    (void)state;
    http_client_close(&g_http);
    port_heap_stats(&now, NULL);
    assert_int_equal(now, heap0);
    return 0;
}

static bool sent_has(const char *s)
{
    return strstr(svc.sent, s) != NULL;
}

/* ------------------------------------------------------------ CertId -- */

static void test_validate_cas(void **state)
{
    (void)state;
    cdnapi_result_t res;
    static const char *const bad[] = {NULL, "", "123456789012345678901", "12a4", "12/4", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&res, 0, sizeof res);
        assert_int_equal(cdnapi_validate_cas(bad[i], NULL, &res), CDNAPI_PERMANENT_INPUT);
        assert_string_equal(res.code, "InvalidParameter");
        assert_string_equal(res.message, "CertId must be 1 to 20 digits");
    }
    assert_int_equal(cdnapi_validate_cas("12345678901234567890", NULL, &res), CDNAPI_SUCCESS);
    assert_int_equal(cdnapi_validate_cas("0", "ap-southeast-1", &res), CDNAPI_SUCCESS);
    assert_int_equal(cdnapi_validate_cas("9", "cn-hangzhou", &res), CDNAPI_SUCCESS);
    assert_int_equal(cdnapi_validate_cas("9", "us-east-1", &res), CDNAPI_PERMANENT_INPUT);
    assert_string_equal(res.code, "Abs.CertRegion.ValueNotSupported");
}

/* ---------------------------------------- SetCdnDomainSSLCertificate -- */

static void test_ssl_cert_local_checks(void **state)
{
    (void)state;
    cdnapi_result_t res;
    cdnapi_ssl_cert_t cas = {true, "bad,name", NULL, NULL, "123", NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, DOM, NULL, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(res.code, "MissingParameter");
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, "", &cas, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(res.code, "MissingParameter");
    /* a certificate service's with a name the service refuses */
    memset(&res, 0, sizeof res);
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, DOM, &cas, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_PERMANENT_INPUT);
    assert_true(res.code[0] != 0);
    cas.cas_id = "12x";
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, DOM, &cas, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_PERMANENT_INPUT);
    assert_string_equal(res.code, "InvalidParameter");
    assert_int_equal(svc.connects, 0); /* nothing was sent */
}

/* A certificate service's with an empty name sends no CertName and no
 * CertRegion; with a name and a region, both. */
static void test_ssl_cert_cas_names(void **state)
{
    (void)state;
    cdnapi_result_t res;
    cdnapi_ssl_cert_t cas = {true, "", NULL, NULL, "4242", NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, DOM, &cas, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_SUCCESS);
    assert_string_equal(res.request_id, "R-ok");
    assert_true(sent_has("CertType=cas"));
    assert_true(sent_has("CertId=4242"));
    assert_false(sent_has("CertName="));
    assert_false(sent_has("CertRegion="));
    api_setup();
    cas.name = "my-cert";
    cas.cas_region = "ap-southeast-1";
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, DOM, &cas, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_SUCCESS);
    assert_true(sent_has("CertName=my-cert"));
    assert_true(sent_has("CertRegion=ap-southeast-1"));
}

/* An uploaded pair with an empty name is sent under the domain's name. */
static void test_ssl_cert_upload_unnamed(void **state)
{
    (void)state;
    cdnapi_result_t res;
    cdnapi_ssl_cert_t up = {true, "", TEST_CERT_PEM, TEST_KEY_PEM, NULL, NULL};
    assert_int_equal(cdnapi_set_ssl_cert(&g_api, DOM, &up, false, TEST_PKI_NOW_UTC, &res),
                     CDNAPI_SUCCESS);
    assert_true(sent_has("CertType=upload"));
    assert_true(sent_has("CertName=" DOM));
    assert_true(sent_has("SSLProtocol=on"));
}

/* ------------------------------------------------------------ retired -- */

static void test_action_retired(void **state)
{
    (void)state;
    cdnapi_result_t r;
    memset(&r, 0, sizeof r);
    r.status_code = 400;
    snprintf(r.code, sizeof r.code, "Forbidden.Action");
    snprintf(r.message, sizeof r.message, "This API is Deprecated, use another one");
    assert_true(cdnapi_action_retired(&r));
    snprintf(r.message, sizeof r.message, "this api is deprecated");
    assert_true(cdnapi_action_retired(&r));
    snprintf(r.message, sizeof r.message, "nothing of the kind");
    assert_false(cdnapi_action_retired(&r));
    r.status_code = 500;
    snprintf(r.message, sizeof r.message, "Deprecated");
    assert_false(cdnapi_action_retired(&r));
    r.status_code = 399;
    assert_false(cdnapi_action_retired(&r));
    snprintf(r.code, sizeof r.code, "InvalidApi.NotFound");
    assert_true(cdnapi_action_retired(&r));
}

/* ---------------------------------------------------------- ISO time -- */

static void test_iso_time_fields(void **state)
{
    (void)state;
    int64_t t = -1;
    /* one fault each: every separator, every field's digits and range */
    static const char *const bad[] = {
        "2026-11-24T10:30:00",  "2026-11-24T10:30:00ZZ", "2026x11-24T10:30:00Z",
        "2026-11x24T10:30:00Z", "2026-11-24x10:30:00Z",  "2026-11-24T10x30:00Z",
        "2026-11-24T10:30x00Z", "2026-11-24T10:30:00x",  "20:6-11-24T10:30:00Z",
        "2/26-11-24T10:30:00Z", "1969-11-24T10:30:00Z",  "2026-1:-24T10:30:00Z",
        "2026-13-24T10:30:00Z", "2026-00-24T10:30:00Z",  "2026-11-2:T10:30:00Z",
        "2026-11-32T10:30:00Z", "2026-11-00T10:30:00Z",  "2026-11-24T1::30:00Z",
        "2026-11-24T24:30:00Z", "2026-11-24T10:3::00Z",  "2026-11-24T10:60:00Z",
        "2026-11-24T10:30:0:Z", "2026-11-24T10:30:61Z",  "2026-11-24T10:30:/0Z",
    };
    assert_false(cdnapi_iso_time(NULL, &t));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cdnapi_iso_time(bad[i], &t))
            fail_msg("%s was taken", bad[i]);
    }
    assert_int_equal(t, -1); /* never written on a refusal */
    assert_true(cdnapi_iso_time("1970-01-01T00:00:00Z", &t));
    assert_int_equal(t, 0);
    int64_t next = 0;
    assert_true(cdnapi_iso_time("2026-11-24T10:30:60Z", &t)); /* a leap second */
    assert_true(cdnapi_iso_time("2026-11-24T10:31:00Z", &next));
    assert_int_equal(t, next);
}

int main(void)
{
    port_log_set_level(PORT_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_validate_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ssl_cert_local_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ssl_cert_cas_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ssl_cert_upload_unnamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_retired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iso_time_fields, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
