/* Fuzz harness: reply parsing in components/cdnapi (cJSON underneath).
 *
 * Input: two bytes choosing the HTTP status code (200..599), then the
 * reply body.
 * The body goes to cdnapi_parse_reply and cdnapi_parse_header_configs
 * directly, and, wrapped in an HTTP response with that status over a
 * scripted transport, through the public calls whose replies carry data:
 * cdnapi_list_headers, cdnapi_batch_set_headers and cdnapi_cert_info.
 *
 * Oracle (cdnapi.h): every text field the caller gets is NUL-terminated
 * inside its buffer; the classification of a
 * reply is the one cdnapi_classify gives its Code; a read-back through
 * cdnapi_list_headers visits exactly the configs the direct parse visits,
 * with the same contents; a failed reply yields no configs, batch entries
 * or certificate; nothing is left on the port heap. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cdnapi.h"
#include "fuzz_common.h"
#include "port_heap.h"

#define MAX_BODY 65536u
#define KEEP 8 /* configs remembered for the differential check */

static struct {
    const uint8_t *data;
    size_t len, off;
} reply;

static int t_connect(void *c, uint32_t t)
{
    (void)c;
    (void)t;
    reply.off = 0; /* every call reads the same reply from its start */
    return HTTP_OK;
}
static int t_send(void *c, const uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)b;
    (void)t;
    return (int)n;
}
static int t_recv(void *c, uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    if (t == 0)
        return HTTP_ERR_TIMEOUT;
    if (reply.off >= reply.len)
        return HTTP_ERR_CLOSED;
    if (n > reply.len - reply.off)
        n = reply.len - reply.off;
    memcpy(b, reply.data + reply.off, n);
    reply.off += n;
    return (int)n;
}
static void t_close(void *c)
{
    (void)c;
}

static void check_text(const char *s, size_t cap, const char *what)
{
    FZ_CHECK(memchr(s, 0, cap) != NULL, "%s not NUL-terminated in its %zu bytes", what, cap);
}

static void check_config_id(const char *id, const char *what)
{
    check_text(id, CDNAPI_MAX_CONFIG_ID_LEN + 1, what);
}

static void check_result(const cdnapi_result_t *r)
{
    check_text(r->code, sizeof r->code, "Code");
    check_text(r->message, sizeof r->message, "Message");
    check_text(r->request_id, sizeof r->request_id, "RequestId");
}

typedef struct {
    int n;
    cdnapi_header_t h[KEEP];
} seen_t;

static bool collect(void *arg, const cdnapi_header_t *h)
{
    seen_t *s = arg;
    check_config_id(h->config_id, "header ConfigId");
    check_text(h->key, sizeof h->key, "header key");
    check_text(h->value, sizeof h->value, "header value");
    if (s->n < KEEP)
        s->h[s->n] = *h;
    s->n++;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char http_msg[MAX_BODY + 256];
    static cdnapi_result_t res;
    static seen_t direct, via_call;
    static cdnapi_batch_config_t out[CDNAPI_MAX_BATCH + 2];
    static cdnapi_cert_info_t info;
    static bool inited;
    fuzz_in_t in = {data, size};
    size_t heap_before, heap_after, peak;
    if (!inited) {
        cdnapi_init();
        port_log_set_level(PORT_LOG_ERROR);
        inited = true;
    }
    /* 2xx..5xx; 204 and 304 carry no body by definition (HTTP), which
     * would make the direct parse and the call see different bodies. */
    int status = 200 + fz_u16(&in) % 400;
    if (status == 204 || status == 304)
        status++;
    const char *body = (const char *)in.p;
    size_t len = in.left < MAX_BODY ? in.left : MAX_BODY;
    port_heap_stats(&heap_before, &peak);

    memset(&res, 0, sizeof res);
    cdnapi_parse_reply(status, body, len, &res);
    check_result(&res);
    FZ_CHECK(res.status_code == status && res.http_status == HTTP_OK, "parse_reply status fields");
    if (res.cls != CDNAPI_RETRYABLE || strcmp(res.code, "BadResponse") != 0)
        FZ_CHECK(res.cls == cdnapi_classify(HTTP_OK, status, res.code),
                 "class %s for Code \"%s\" at %d, cdnapi_classify says %s",
                 cdnapi_class_str(res.cls), res.code, status,
                 cdnapi_class_str(cdnapi_classify(HTTP_OK, status, res.code)));
    bool success = res.cls == CDNAPI_SUCCESS;

    memset(&direct, 0, sizeof direct);
    size_t nd = 0;
    cdnapi_class_t pc = cdnapi_parse_header_configs(body, len, collect, &direct, &nd);
    FZ_CHECK((pc == CDNAPI_SUCCESS && nd == (size_t)direct.n) || (pc == CDNAPI_RETRYABLE && nd == 0),
             "parse_header_configs: %s, %zu after %d visits", cdnapi_class_str(pc), nd, direct.n);

    /* The same body as the reply to real calls. */
    int hl = snprintf(http_msg, sizeof http_msg, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n",
                      status, len);
    memcpy(http_msg + hl, body, len);
    reply.data = (const uint8_t *)http_msg;
    reply.len = (size_t)hl + len;
    reply.off = 0;

    static const http_transport_t tr = {t_connect, t_send, t_recv, t_close, NULL, NULL, NULL};
    static const sign_credentials_t cred = {"fuzzid", "fuzzsecret", NULL};
    http_client_t http;
    cdnapi_t api;
    http_client_init(&http, &tr, NULL);
    memset(&api, 0, sizeof api);
    api.http = &http;
    api.credentials = &cred;
    api.host = "cdn.aliyuncs.com";
    api.signature = SIGN_V3;
    api.timestamp = "2026-11-24T10:30:00Z";

    memset(&via_call, 0, sizeof via_call);
    size_t nl = 0;
    cdnapi_class_t lc = cdnapi_list_headers(&api, "cdn.example.com", collect, &via_call, &nl, &res);
    FZ_CHECK(lc == res.cls, "list_headers returned %s, its result says %s", cdnapi_class_str(lc),
             cdnapi_class_str(res.cls));
    http_client_close(&http);
    check_result(&res);
    FZ_CHECK(res.http_status == HTTP_OK, "list_headers: transport %s on a complete reply",
             http_client_status_str(res.http_status));
    if (success && pc == CDNAPI_SUCCESS) {
        FZ_CHECK(lc == CDNAPI_SUCCESS && nl == nd,
                 "list_headers visited %zu configs, the direct parse %zu", nl, nd);
        for (int i = 0; (size_t)i < nl && i < KEEP; i++)
            FZ_CHECK(memcmp(&via_call.h[i], &direct.h[i], sizeof direct.h[i]) == 0,
                     "config %d differs between list_headers and the direct parse", i);
    } else {
        FZ_CHECK(lc != CDNAPI_SUCCESS && nl == 0 && via_call.n == 0,
                 "list_headers on a failed reply: %s, %zu", cdnapi_class_str(lc), nl);
    }

    cdnapi_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.key, "X-Fuzz", 7);
    memcpy(h.value, "1", 2);
    static const char *const doms[] = {"a.example.com", "b.example.com"};
    memset(out, 0xA5, sizeof out); /* unwritten entries are not NUL-terminated */
    size_t nb = 0;
    cdnapi_class_t bc = cdnapi_batch_set_headers(&api, doms, 2, &h, 1, out, CDNAPI_MAX_BATCH + 2,
                                                 &nb, &res);
    http_client_close(&http);
    check_result(&res);
    FZ_CHECK(bc == res.cls && (bc == CDNAPI_SUCCESS || nb == 0), "batch: %s with %zu",
             cdnapi_class_str(bc), nb);
    if (!success)
        FZ_CHECK(bc != CDNAPI_SUCCESS, "batch on a failed reply: %s", cdnapi_class_str(bc));
    for (size_t i = 0; i < nb && i < CDNAPI_MAX_BATCH + 2; i++) {
        check_text(out[i].domain, sizeof out[i].domain, "batch DomainName");
        check_config_id(out[i].config_id, "batch ConfigId");
    }

    cdnapi_class_t ic = cdnapi_cert_info(&api, "cdn.example.com", &info, &res);
    http_client_close(&http);
    check_result(&res);
    FZ_CHECK(ic == res.cls, "cert_info returned %s, its result says %s", cdnapi_class_str(ic),
             cdnapi_class_str(res.cls));
    FZ_CHECK(!info.found || success, "cert_info found a certificate in a failed reply");
    check_text(info.cert_name, sizeof info.cert_name, "CertName");
    check_text(info.cert_type, sizeof info.cert_type, "CertType");
    check_text(info.cert_domain_name, sizeof info.cert_domain_name, "CertDomainName");
    check_text(info.expire_time, sizeof info.expire_time, "CertExpireTime");
    check_text(info.status, sizeof info.status, "ServerCertificateStatus");

    port_heap_stats(&heap_after, &peak);
    FZ_CHECK(heap_after == heap_before, "port heap: %zu bytes in use before, %zu after",
             heap_before, heap_after);
    return 0;
}
