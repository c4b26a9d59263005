/* Unit tests of components/cdnapi: validation, classification, parsing, and
 * one signed call over a scripted transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cdnapi.h"
#include "test_cdnapi_compat.h"

static void test_validate_header(void **state)
{
    cdnapi_result_t r;
    (void)state;
    assert_true(t_valid_header("cdn.example.com", "X-Origin-Tag", "edge 1", &r));
    /* reserved names and prefixes, case-insensitively; ordinary names not */
    assert_true(cdnapi_header_name_reserved("Host"));
    assert_true(cdnapi_header_name_reserved("x-ACS-signature"));
    assert_false(cdnapi_header_name_reserved("X-Origin-Tag"));
    assert_false(cdnapi_header_name_reserved("Hostname"));
    assert_false(t_valid_header("cdn.example.com", "Host", "o", &r));
    assert_false(t_valid_header("", "X-A", "v", &r));
    assert_string_equal(r.code, "MissingParameter");
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    assert_false(t_valid_header("d", "", "v", &r));
    assert_string_equal(r.code, "MissingParameter");
    assert_false(t_valid_header("d", "X-A", "", &r));
    assert_string_equal(r.code, "MissingParameter");
    assert_false(t_valid_header("d", "X A", "v", &r));
    assert_string_equal(r.code, "InvalidKey.Malformed");
    assert_false(t_valid_header("d", "X:A", "v", &r));
    assert_string_equal(r.code, "InvalidKey.Malformed");
    assert_false(t_valid_header("d", "Connection", "v", &r));
    assert_string_equal(r.code, "InvalidHeaderKey.ValueNotSupported");
    assert_false(t_valid_header("d", "TRANSFER-ENCODING", "v", &r));
    assert_false(t_valid_header("d", "Ali-Swift", "v", &r));
    assert_false(t_valid_header("d", "proxy-authorization", "v", &r));
    assert_false(t_valid_header("d", "X-A", "a\r\nInjected: 1", &r));
    assert_string_equal(r.code, "InvalidValue.Malformed");
    assert_false(t_valid_header("d", "X-A", "a\x7f", &r));
    assert_true(t_valid_header("d", "X-A", "tab\tok", &r));
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(cdnapi_classify(HTTP_OK, 200, ""), CDNAPI_SUCCESS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "Throttling.User"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 503, "ServiceUnavailable"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 500, "InternalError"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 502, "HTTP502"), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "InvalidTimeStamp.Expired"), CDNAPI_CLOCK);
    assert_int_equal(cdnapi_classify(HTTP_OK, 403, "SignatureDoesNotMatch"),
                     CDNAPI_PERMANENT_CREDENTIALS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 404, "InvalidAccessKeyId.NotFound"),
                     CDNAPI_PERMANENT_CREDENTIALS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 403, "Forbidden.RAM"), CDNAPI_PERMANENT_CREDENTIALS);
    assert_int_equal(cdnapi_classify(HTTP_OK, 400, "InvalidKey.Malformed"), CDNAPI_PERMANENT_INPUT);
    assert_int_equal(cdnapi_classify(HTTP_ERR_TIMEOUT, 0, NULL), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_ERR_RESET, 0, NULL), CDNAPI_RETRYABLE);
    assert_int_equal(cdnapi_classify(HTTP_ERR_CERT_VERIFY, 0, NULL), CDNAPI_CONFIGURATION);
    assert_int_equal(cdnapi_classify(HTTP_ERR_ARG, 0, NULL), CDNAPI_CONFIGURATION);
}

static void test_parse_reply(void **state)
{
    static const char err[] =
        "{\"RequestId\":\"R-1\",\"Code\":\"Throttling\",\"Message\":\"slow down\"}";
    cdnapi_result_t r;
    (void)state;
    memset(&r, 0, sizeof(r));
    cdnapi_parse_reply(400, err, strlen(err), &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
    assert_string_equal(r.code, "Throttling");
    assert_string_equal(r.message, "slow down");
    assert_string_equal(r.request_id, "R-1");
    memset(&r, 0, sizeof(r));
    cdnapi_parse_reply(200, "{\"RequestId\":\"R-2\"}", 19, &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    memset(&r, 0, sizeof(r));
    cdnapi_parse_reply(200, "<html>", 6, &r);
    assert_int_equal(r.cls, CDNAPI_RETRYABLE);
}

typedef struct {
    int n, stop_after;
    cdnapi_header_t h[2];
    cdnapi_header_t last;
} collect_t;

static bool collect_cb(void *arg, const cdnapi_header_t *h)
{
    collect_t *c = arg;
    if (c->n < 2)
        c->h[c->n] = *h;
    c->last = *h;
    c->n++;
    return !(c->stop_after && c->n >= c->stop_after);
}

static void test_parse_header_configs(void **state)
{
    static const char body[] =
        "{\"RequestId\":\"x\",\"DomainConfigs\":{\"DomainConfig\":["
        "{\"ConfigId\":5001,\"FunctionName\":\"set_req_header\",\"Status\":\"success\","
        "\"FunctionArgs\":{\"FunctionArg\":[{\"ArgName\":\"key\",\"ArgValue\":\"X-A\"},"
        "{\"ArgName\":\"value\",\"ArgValue\":\"1\"},{\"ArgName\":\"extra\",\"ArgValue\":\"z\"}]}},"
        "{\"ConfigId\":\"7002\",\"FunctionName\":\"set_req_header\","
        "\"FunctionArgs\":{\"FunctionArg\":[{\"ArgName\":\"value\",\"ArgValue\":\"two\"},"
        "{\"ArgName\":\"key\",\"ArgValue\":\"X-B\"}]}},"
        "{\"ConfigId\":9,\"FunctionName\":\"https_force\",\"FunctionArgs\":{}}]}}";
    collect_t c;
    (void)state;
    memset(&c, 0, sizeof c);
    assert_int_equal(t_parse_configs(body, strlen(body), collect_cb, &c), 2);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.h[0].config_id, "5001");
    assert_string_equal(c.h[0].key, "X-A");
    assert_string_equal(c.h[0].value, "1");
    assert_string_equal(c.h[1].config_id, "7002");
    assert_string_equal(c.h[1].key, "X-B");
    assert_string_equal(c.h[1].value, "two");
    /* the visitor stops the walk */
    memset(&c, 0, sizeof c);
    c.stop_after = 1;
    assert_int_equal(t_parse_configs(body, strlen(body), collect_cb, &c), 1);
    assert_int_equal(c.n, 1);
    assert_int_equal(t_parse_configs("{", 1, collect_cb, &c), -1);
}

/* A read-back is not cut at any count: 300 configs, every one visited. */
static void test_parse_many_header_configs(void **state)
{
    enum { N = 300 };
    static char body[N * 160 + 128];
    size_t o = 0;
    collect_t c;
    (void)state;
    o += (size_t)snprintf(body + o, sizeof body - o, "{\"DomainConfigs\":{\"DomainConfig\":[");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(body + o, sizeof body - o,
                              "%s{\"ConfigId\":%d,\"FunctionName\":\"set_req_header\","
                              "\"FunctionArgs\":{\"FunctionArg\":[{\"ArgName\":\"key\","
                              "\"ArgValue\":\"X-K%d\"},{\"ArgName\":\"value\",\"ArgValue\":\"v\"}]}}",
                              i ? "," : "", 1000 + i, i);
    o += (size_t)snprintf(body + o, sizeof body - o, "]}}");
    memset(&c, 0, sizeof c);
    assert_int_equal(t_parse_configs(body, o, collect_cb, &c), N);
    assert_int_equal(c.n, N);
    assert_string_equal(c.last.key, "X-K299");
    assert_string_equal(c.last.config_id, "1299");
}

/* Scripted transport: captures the request, returns one canned reply. */
static char sent[4096];
static size_t sent_len;
static const char *reply;
static size_t reply_off;

static int t_connect(void *c, uint32_t t)
{
    (void)c;
    (void)t;
    return HTTP_OK;
}
static int t_send(void *c, const uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    if (sent_len + n < sizeof(sent)) {
        memcpy(sent + sent_len, b, n);
        sent_len += n;
    }
    return (int)n;
}
static int t_recv(void *c, uint8_t *b, size_t n, uint32_t t)
{
    size_t left = strlen(reply) - reply_off;
    (void)c;
    if (t == 0) {
        return HTTP_ERR_TIMEOUT; /* the client's idle check: nothing pending */
    }
    if (left == 0) {
        return HTTP_ERR_CLOSED;
    }
    if (n > left) {
        n = left;
    }
    memcpy(b, reply + reply_off, n);
    reply_off += n;
    return (int)n;
}
static void t_close(void *c)
{
    (void)c;
}

/* A V3-signing client over the scripted transport above. */
static void api_setup(cdnapi_t *api, http_client_t *http)
{
    static const http_transport_t tr = {t_connect, t_send, t_recv, t_close, NULL, NULL, NULL};
    static const sign_credentials_t cred = {"testid", "testsecret", NULL};
    http_client_init(http, &tr, NULL);
    memset(api, 0, sizeof *api);
    api->http = http;
    api->credentials = &cred;
    api->host = "cdn.aliyuncs.com";
    api->signature = SIGN_V3;
}

static void test_set_header_call(void **state)
{
    http_client_t http;
    cdnapi_t api;
    cdnapi_result_t r;
    (void)state;
    api_setup(&api, &http);

    sent_len = 0;
    reply_off = 0;
    reply = "HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 10:30:00 GMT\r\nContent-Length: 18\r\n\r\n"
            "{\"RequestId\":\"OK\"}";
    cdnapi_set_header(&api, "cdn.example.com", "X-A", "v 1", "42", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.request_id, "OK");
    assert_true(r.has_server_date);
    assert_int_equal(r.server_date, 1795516200);
    sent[sent_len] = 0;
    assert_non_null(strstr(sent, "SetReqHeaderConfig"));
    assert_non_null(strstr(sent, "ConfigId=42"));
    assert_null(strstr(sent, "testsecret"));

    /* Local validation refuses before anything is sent. */
    sent_len = 0;
    cdnapi_set_header(&api, "cdn.example.com", "Host", "x", NULL, &r);
    assert_string_equal(r.code, "InvalidHeaderKey.ValueNotSupported");
    assert_int_equal(sent_len, 0);

    sent_len = 0;
    reply_off = 0;
    reply =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 76\r\n\r\n"
        "{\"RequestId\":\"E\",\"Code\":\"InvalidTimeStamp.Expired\",\"Message\":\"clock skew\"}  ";
    cdnapi_delete_header(&api, "cdn.example.com", "42", &r);
    assert_int_equal(r.cls, CDNAPI_CLOCK);
    assert_string_equal(r.code, "InvalidTimeStamp.Expired");
    cdnapi_delete_header(&api, "cdn.example.com", "4x", &r);
    assert_string_equal(r.code, "InvalidParameter");
    /* several ConfigIds in one delete: up to CDNAPI_MAX_DELETE_IDS, no empty ones */
    static const char *const bad_lists[] = {"1,", ",1", "1,,2", "1,2,3,4,5,6,7,8,9", "1, 2"};
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        sent_len = 0;
        cdnapi_delete_header(&api, "cdn.example.com", bad_lists[i], &r);
        assert_string_equal(r.code, "InvalidParameter");
        assert_int_equal(sent_len, 0);
    }
    sent_len = 0;
    reply_off = 0;
    reply = "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"RequestId\":\"OK\"}";
    cdnapi_delete_header(&api, "cdn.example.com", "1,2,3,4,5,6,7,8", &r);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    sent[sent_len] = 0;
    assert_non_null(strstr(sent, "ConfigId=1%2C2%2C3%2C4%2C5%2C6%2C7%2C8"));
}

static void test_batch_set_headers(void **state)
{
    static cdnapi_header_t h[2];
    static const char *const doms[] = {"a.example.com", "b.example.com"};
    static const char *const bad_dom[] = {"a.example.com,b.example.com"};
    static const char *many[CDNAPI_MAX_BATCH + 1];
    cdnapi_batch_config_t got[4];
    http_client_t http;
    cdnapi_t api;
    cdnapi_result_t r;
    size_t i;
    (void)state;
    api_setup(&api, &http);
    memset(h, 0, sizeof(h));
    strcpy(h[0].key, "X-A");
    strcpy(h[0].value, "v \"1\"");
    strcpy(h[1].key, "X-B");
    strcpy(h[1].value, "two");
    strcpy(h[1].config_id, "123456789012345678");

    sent_len = 0;
    reply_off = 0;
    reply =
        "HTTP/1.1 200 OK\r\nContent-Length: 224\r\n\r\n"
        "{\"RequestId\":\"B\",\"DomainConfigList\":{\"DomainConfigModel\":["
        "{\"DomainName\":\"a.example.com\",\"ConfigId\":1001,\"FunctionName\":\"set_req_header\"},"
        "{\"DomainName\":\"b.example.com\",\"ConfigId\":\"1002\",\"FunctionName\":\"set_req_header\"}"
        "]}}    ";
    assert_int_equal(strlen(reply) - strlen("HTTP/1.1 200 OK\r\nContent-Length: 224\r\n\r\n"), 224);
    assert_int_equal(t_batch(&api, doms, 2, h, 1, got, 4, &r), 2);
    assert_int_equal(r.cls, CDNAPI_SUCCESS);
    assert_string_equal(r.request_id, "B");
    assert_string_equal(got[0].domain, "a.example.com");
    assert_string_equal(got[0].config_id, "1001");
    assert_string_equal(got[1].domain, "b.example.com");
    assert_string_equal(got[1].config_id, "1002");
    sent[sent_len] = 0;
    assert_non_null(strstr(sent, "x-acs-action: BatchSetCdnDomainConfig\r\n"));
    assert_non_null(strstr(sent, "DomainNames=a.example.com%2Cb.example.com"));
    /* [{"functionArgs":[{"argName":"key","argValue":"X-A"},{"argName":"value",
     * "argValue":"v \"1\""}],"functionName":"set_req_header"}], percent-encoded */
    assert_non_null(
        strstr(sent,
               "Functions=%5B%7B%22functionArgs%22%3A%5B%7B%22argName%22%3A%22key%22%2C%22argValue"
               "%22%3A%22X-A%22%7D%2C%7B%22argName%22%3A%22value%22%2C%22argValue%22%3A%22v%20%5C"
               "%221%5C%22%22%7D%5D%2C%22functionName%22%3A%22set_req_header%22%7D%5D"));

    /* A ConfigId goes out as a JSON number with every digit (no double rounding). */
    sent_len = 0;
    reply_off = 0;
    assert_int_equal(t_batch(&api, doms, 1, &h[1], 1, NULL, 0, &r), 2);
    sent[sent_len] = 0;
    assert_non_null(strstr(sent, "%22configId%22%3A123456789012345678%7D"));

    /* Local refusals: nothing is sent. */
    sent_len = 0;
    assert_int_equal(t_batch(&api, doms, 0, h, 1, NULL, 0, &r), -1);
    assert_string_equal(r.code, "MissingParameter");
    assert_int_equal(t_batch(&api, bad_dom, 1, h, 1, NULL, 0, &r), -1);
    assert_string_equal(r.code, "InvalidDomainName.Malformed");
    for (i = 0; i <= CDNAPI_MAX_BATCH; i++) {
        many[i] = "a.example.com";
    }
    assert_int_equal(t_batch(&api, many, CDNAPI_MAX_BATCH + 1, h, 1, NULL, 0, &r), -1);
    assert_string_equal(r.code, "InvalidParameter");
    assert_int_equal(t_batch(&api, many, 26, h, 2, NULL, 0, &r), -1);
    assert_string_equal(r.code, "InvalidParameter");
    strcpy(h[0].key, "Connection");
    assert_int_equal(t_batch(&api, doms, 2, h, 2, NULL, 0, &r), -1);
    assert_string_equal(r.code, "InvalidHeaderKey.ValueNotSupported");
    assert_int_equal(r.cls, CDNAPI_PERMANENT_INPUT);
    strcpy(h[0].key, "X-A");
    strcpy(h[0].value, "a\nb");
    assert_int_equal(t_batch(&api, doms, 2, h, 2, NULL, 0, &r), -1);
    assert_string_equal(r.code, "InvalidValue.Malformed");
    strcpy(h[0].value, "ok");
    strcpy(h[0].config_id, "12a");
    assert_int_equal(t_batch(&api, doms, 2, h, 2, NULL, 0, &r), -1);
    assert_string_equal(r.code, "InvalidParameter");
    assert_int_equal(sent_len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_header),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_parse_reply),
        cmocka_unit_test(test_parse_header_configs),
        cmocka_unit_test(test_parse_many_header_configs),
        cmocka_unit_test(test_set_header_call),
        cmocka_unit_test(test_batch_set_headers),
    };
    cdnapi_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
