/*
 * http.h — small HTTP/1.1 client for the CDN OpenAPI (coreHTTP style).
 *
 * The client sends request bytes it is given verbatim (the sign component
 * builds them) and parses the response with http-parser. It never owns the
 * network: a transport (send/recv/connect/close function pointers plus a
 * context) does, so unit tests script byte streams and devices plug in TLS
 * over lwIP through port/port.h.
 *
 * Limits (all per call, all configurable in http_limits_t):
 *  - header bytes   HTTP_DEFAULT_MAX_HEADER_BYTES (8 KB)
 *  - body bytes     HTTP_DEFAULT_MAX_BODY_BYTES (64 KB); a larger declared
 *                   Content-Length is refused before anything is allocated,
 *                   a chunked body is refused as soon as it grows past it
 *  - total time     HTTP_DEFAULT_TIMEOUT_MS (15 s) from send to last byte
 * Connections are kept alive between calls unless the server sends
 * `Connection: close`; a reused connection that the server had closed while
 * idle is reconnected once, transparently, before any response byte.
 */
#ifndef CDNAGENT_HTTP_H
#define CDNAGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HTTP_DEFAULT_MAX_HEADER_BYTES 8192u
#define HTTP_DEFAULT_MAX_BODY_BYTES (64u * 1024u)
#define HTTP_DEFAULT_TIMEOUT_MS 15000u
#define HTTP_MAX_HOST_LEN 253u

/* Every failure has its own code so callers can classify it. */
typedef enum {
    HTTP_OK = 0,
    HTTP_ERR_ARG = -1,           /* bad argument from the caller */
    HTTP_ERR_DNS = -2,           /* host name did not resolve */
    HTTP_ERR_CONNECT = -3,       /* TCP connect refused / unreachable */
    HTTP_ERR_TLS_HANDSHAKE = -4, /* TLS handshake failed (not a cert problem) */
    HTTP_ERR_CERT_VERIFY = -5,   /* server certificate not trusted / wrong host / expired */
    HTTP_ERR_TIMEOUT = -6,       /* total time for the call exceeded */
    HTTP_ERR_RESET = -7,         /* connection lost before the response was complete */
    HTTP_ERR_PROTOCOL = -8,      /* response is not valid HTTP/1.1 */
    HTTP_ERR_TOO_LARGE = -9,     /* headers or body exceed the configured limit */
    HTTP_ERR_NOMEM = -10,        /* allocation failed */
    HTTP_ERR_CLOSED = -11,       /* transport-level: peer closed cleanly (recv only) */
    HTTP_ERR_TLS_SETUP = -12,    /* the TLS client could not be set up: CA bundle does not
                                    parse, or the TLS library's setup failed */
} http_status_t;

/* Short name of a status ("cert-verify"). Never NULL. (Not http_status_str:
 * http-parser has that name, for HTTP status codes.) */
const char *http_client_status_str(http_status_t status);

/* A byte-stream transport. send/recv return a byte count (> 0) or a negative
 * http_status_t (an int, as one value carries either); connect returns
 * HTTP_OK or a negative http_status_t; recv returns HTTP_ERR_CLOSED on a clean close. recv with
 * timeout_ms 0 must not block: it reports what is already pending
 * (HTTP_ERR_TIMEOUT when nothing is); the client uses it to check an idle
 * kept-alive connection before reusing it, so that a request is never sent
 * twice on a guess. connect is
 * called when the client has no open connection; close must be idempotent.
 * begin_call (optional) is invoked once at the start of every request. */
typedef struct {
    int (*connect)(void *ctx, uint32_t timeout_ms);
    int (*send)(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms);
    int (*recv)(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_ms);
    void (*close)(void *ctx);
    void (*begin_call)(void *ctx);
    void *ctx;
    /* Optional: why the last connect failed, in words for a person (the host
     * and port, the system's reason, a certificate's fault), into buf. */
    void (*why)(void *ctx, char *buf, size_t cap);
} http_transport_t;

/* Bytes of a failure's description (http_client_t.why). */
#define HTTP_WHY_MAX (HTTP_MAX_HOST_LEN + 160u) /* the host's name and the reason */

typedef struct {
    size_t max_header_bytes;
    size_t max_body_bytes;
    uint32_t timeout_ms;
} http_limits_t;

typedef struct {
    int status_code;     /* e.g. 200 */
    bool has_date;       /* server sent a parseable Date header */
    int64_t server_date; /* Date header as UTC seconds since 1970 */
    bool keep_alive;     /* connection stays open after this response */
    uint8_t *body;       /* port_malloc'ed, NUL-terminated; free with http_response_free */
    size_t body_len;
} http_response_t;

typedef struct {
    http_transport_t transport;
    http_limits_t limits;
    bool connected;
    uint32_t connects;      /* transport connects made (handshakes for TLS) */
    uint32_t requests;      /* requests sent */
    char why[HTTP_WHY_MAX]; /* the last request's connect failure in words, "" if none */
} http_client_t;

/* Initialise a client; limits == NULL selects the defaults. */
void http_client_init(http_client_t *client, const http_transport_t *transport,
                      const http_limits_t *limits);

/* Send request (complete HTTP/1.1 request bytes) and read one response.
 * On HTTP_OK resp is filled (any status code is HTTP_OK at this level). On
 * error resp holds nothing to free and the connection is closed. */
http_status_t http_client_request(http_client_t *client, const uint8_t *request, size_t request_len,
                                  http_response_t *resp);

/* Close the connection (it is reopened by the next request). */
void http_client_close(http_client_t *client);

void http_response_free(http_response_t *resp);

/* Parse an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into UTC seconds.
 * Returns true on success. */
bool http_parse_date(const char *text, size_t len, int64_t *utc_seconds);

/* ---------------------------------------------------- plain TCP (tests) -- */

typedef struct {
    port_tcp_t conn;
    bool open;
    char host[HTTP_MAX_HOST_LEN + 1];
    uint16_t port;
    port_status_t failed; /* the last connect's status */
} http_tcp_t;

/* Fill transport with a plain TCP transport to host:port (tests only). */
http_status_t http_tcp_transport(http_transport_t *transport, http_tcp_t *tcp, const char *host,
                                 uint16_t port);

/* --------------------------------------------------------------- TLS -- */

typedef struct http_tls http_tls_t; /* opaque, allocated by http_tls_new */

typedef struct {
    const char *host; /* SNI and the certificate check: a DNS name, or an IP
                         literal checked against iPAddress names (no SNI) */
    uint16_t port;
    const uint8_t *ca_pem;   /* CA bundle, PEM, NUL-terminated; copied */
    size_t ca_pem_len;       /* including the terminating NUL */
    bool insecure_no_verify; /* explicit opt-out; warns on every call */
} http_tls_options_t;

typedef struct {
    uint32_t handshakes;         /* all handshakes */
    uint32_t resumed_handshakes; /* handshakes that resumed a saved session */
} http_tls_stats_t;

/* Create a TLS 1.2 transport: HTTP_OK, HTTP_ERR_ARG (no host, no CA
 * bundle while verification is on, or a host that is an address in a
 * form other than a dotted quad or IPv6 text: "127.1", "0x7f.1"), HTTP_ERR_NOMEM, or
 * HTTP_ERR_TLS_SETUP (the CA bundle does not parse, the TLS library's setup failed). */
http_status_t http_tls_new(http_tls_t **tls, const http_tls_options_t *options,
                           http_transport_t *transport);
void http_tls_stats(const http_tls_t *tls, http_tls_stats_t *stats);
void http_tls_free(http_tls_t *tls);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_HTTP_H */
