/* Drive N HTTPS calls through components/http and print what happened:
 *   http_tls_calls HOST PORT CA_FILE|-insecure N [close]
 * ("close" sends Connection: close, so every call reconnects and resumes).
 * Prints "status=<name> code=<http code> handshakes=H resumed=R
 * peak_heap=<bytes> body_len=B date=<utc>". Used by the integration tests
 * (tests/integration/test_http_tls) and as a benchmark of one call's heap.
 * With no arguments (as run by `make bench`) it prints usage and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "port.h"
#include "port_heap.h"
#include "port_posix.h"

int main(int argc, char **argv)
{
    static uint8_t ca[65536];
    http_tls_options_t o;
    http_transport_t tr;
    http_client_t c;
    http_tls_t *tls = NULL;
    http_tls_stats_t ts;
    http_response_t r;
    char req[512];
    size_t in_use, peak, base, ca_len = 0;
    int i, n, rc = HTTP_OK, code = 0, reqlen;
    int64_t date = 0;
    size_t body_len = 0;

    if (argc < 5) {
        printf("usage: %s HOST PORT CA_FILE|-insecure N [close] (needs a server; see "
               "tests/integration/test_http_tls)\n",
               argv[0]);
        return 0;
    }
    memset(&o, 0, sizeof(o));
    o.host = argv[1];
    o.port = (uint16_t)atoi(argv[2]);
    if (strcmp(argv[3], "-insecure") == 0) {
        o.insecure_no_verify = true;
    } else {
        FILE *f = fopen(argv[3], "rb");
        if (f == NULL) {
            perror(argv[3]);
            return 2;
        }
        ca_len = fread(ca, 1, sizeof(ca) - 1, f);
        fclose(f);
        ca[ca_len++] = 0;
        o.ca_pem = ca;
        o.ca_pem_len = ca_len;
    }
    n = atoi(argv[4]);
    port_heap_stats(&base, NULL);
    port_heap_reset_peak();
    if (http_tls_new(&tls, &o, &tr) != HTTP_OK) {
        fprintf(stderr, "http_tls_new failed\n");
        return 1;
    }
    http_client_init(&c, &tr, NULL);
    reqlen = snprintf(req, sizeof(req),
                      "GET /?Action=DescribeCdnDomainConfigs HTTP/1.1\r\nHost: %s\r\n%s\r\n", o.host,
                      argc > 5 && strcmp(argv[5], "close") == 0 ? "Connection: close\r\n" : "");
    for (i = 0; i < n; i++) {
        rc = http_client_request(&c, (const uint8_t *)req, (size_t)reqlen, &r);
        if (rc != HTTP_OK) {
            break;
        }
        code = r.status_code;
        body_len = r.body_len;
        date = r.has_date ? r.server_date : 0;
        http_response_free(&r);
    }
    if (rc != HTTP_OK && c.why[0])
        fprintf(stderr, "why: %s\n", c.why);
    http_tls_stats(tls, &ts);
    http_client_close(&c);
    http_tls_free(tls);
    port_heap_stats(&in_use, &peak);
    printf("status=%s code=%d calls=%d handshakes=%u resumed=%u peak_heap=%zu body_len=%zu "
           "date=%lld\n",
           http_client_status_str(rc), code, i, (unsigned)ts.handshakes,
           (unsigned)ts.resumed_handshakes, peak - base, body_len, (long long)date);
    return rc == HTTP_OK ? 0 : 1;
}
