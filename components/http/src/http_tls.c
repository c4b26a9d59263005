/* TLS 1.2 transport on mbedTLS over port_tcp_*. */
#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "http.h"
#include "http_internal.h"
#include "port.h"
#include "util.h"

/* ASN.1 tag of a GeneralName iPAddress ([7] IMPLICIT OCTET STRING). */
#define TLS_SAN_IP_TAG (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)

struct http_tls {
    port_tcp_t conn;
    bool open;
    bool ssl_ready;    /* ssl context set up (first connect done) */
    bool have_session; /* a session saved for resumption */
    bool verify;
    char host[HTTP_MAX_HOST_LEN + 1];
    uint8_t ip[UTIL_IP_MAX]; /* host as an address, when it is an IP literal */
    size_t ip_len;           /* 4 or 16 then, else 0 */
    uint16_t port;
    uint64_t deadline;        /* of the current I/O, for the bio callbacks */
    int last_io;              /* last port error seen by a bio callback */
    port_status_t tcp_failed; /* the last connect's TCP status */
    int handshake_rc;         /* the last handshake's mbedTLS status, 0 when none failed */
    uint32_t verify_flags;    /* and the certificate check's flags */
    bool broken;              /* a record mbedTLS had to send did not leave, or the
                                 peer broke the protocol: the connection is
                                 unusable (a next write could flush a stale record,
                                 or reach a peer that hung up, and report the
                                 request sent) */
    http_tls_stats_t stats;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_ssl_session session;
};

/* port_random is the only entropy source a device has. */
static int tls_entropy(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return port_random(out, len) == PORT_OK ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

static uint32_t tls_left(const http_tls_t *t)
{
    uint64_t now = port_monotonic_ms();
    return now >= t->deadline ? 0 : (uint32_t)(t->deadline - now);
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    http_tls_t *t = ctx;
    int n;
    /* With no time left the socket is still offered the bytes once: a
     * zero-timeout idle check may have to answer the peer (an alert, a
     * refused renegotiation), and a few bytes always fit. */
    n = port_tcp_send(&t->conn, buf, len, tls_left(t));
    if (n > 0) {
        return n;
    }
    t->last_io = n;
    t->broken = true;
    return n == PORT_ERR_TIMEOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_CONN_RESET;
}

static int bio_recv_timeout(void *ctx, unsigned char *buf, size_t len, uint32_t unused)
{
    http_tls_t *t = ctx;
    uint32_t left = tls_left(t);
    int n;
    (void)unused;
    /* With no time left the socket is still asked once (poll with 0): a
     * zero-timeout read is how a caller checks an idle connection. */
    n = port_tcp_recv(&t->conn, buf, len, left);
    if (n > 0) {
        return n;
    }
    t->last_io = n;
    if (n == PORT_ERR_CLOSED) {
        return 0;
    }
    return n == PORT_ERR_TIMEOUT ? MBEDTLS_ERR_SSL_TIMEOUT : MBEDTLS_ERR_NET_CONN_RESET;
}

/* mbedTLS 2.28 matches a host only against dNSName SANs and the CN, as a
 * string: an IP literal must instead equal an iPAddress SAN (RFC 6125 6.2),
 * which the leaf certificate is checked for here. */
static int tls_verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const http_tls_t *t = ctx;
    const mbedtls_x509_sequence *san;
    if (depth != 0)
        return 0;
    for (san = &crt->subject_alt_names; san != NULL; san = san->next)
        if (san->buf.tag == TLS_SAN_IP_TAG && san->buf.len == t->ip_len &&
            memcmp(san->buf.p, t->ip, t->ip_len) == 0)
            return 0;
    *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* The certificate's fault, from mbedTLS's verify flags, most telling first. */
static const char *verify_reason(uint32_t flags, bool ip)
{
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "not signed by a CA of the bundle (unknown CA: the wrong bundle, or a proxy)";
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "expired";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "not valid yet (is the clock right?)";
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
        return ip ? "not issued for this IP address (no iPAddress name matches)"
                  : "not issued for this host name (name mismatch)";
    if (flags & MBEDTLS_X509_BADCERT_REVOKED)
        return "revoked";
    return "refused by the certificate checks";
}

static void tls_why(void *ctx, char *buf, size_t cap)
{
    const http_tls_t *t = ctx;
    if (t->tcp_failed != PORT_OK)
        http_connect_why(buf, cap, t->host, t->port, t->tcp_failed, t->conn.os_error);
    else if (t->verify_flags)
        snprintf(buf, cap, "the server certificate of %s port %u does not verify: %s", t->host,
                 (unsigned)t->port, verify_reason(t->verify_flags, t->ip_len != 0));
    else if (t->handshake_rc)
        snprintf(buf, cap, "TLS handshake with %s port %u failed (mbedTLS -0x%04x)%s", t->host,
                 (unsigned)t->port, (unsigned)-t->handshake_rc,
                 t->last_io == PORT_ERR_RESET || t->last_io == PORT_ERR_CLOSED
                     ? ": the server closed the connection"
                     : "");
    else
        snprintf(buf, cap, "connecting to %s port %u failed", t->host, (unsigned)t->port);
}

static void tls_close(void *ctx)
{
    http_tls_t *t = ctx;
    if (t->open) {
        t->deadline = port_monotonic_ms() + 200; /* best-effort close_notify */
        (void)mbedtls_ssl_close_notify(&t->ssl);
        port_tcp_close(&t->conn);
        t->open = false;
    }
}

static int tls_connect(void *ctx, uint32_t timeout_ms)
{
    http_tls_t *t = ctx;
    port_status_t st;
    int rc;

    t->deadline = port_monotonic_ms() + timeout_ms;
    t->last_io = 0;
    t->broken = false;
    memset(&t->conn, 0, sizeof(t->conn));
    t->handshake_rc = 0;
    t->verify_flags = 0;
    st = port_tcp_connect(&t->conn, t->host, t->port, timeout_ms);
    t->tcp_failed = st;
    if (st != PORT_OK) {
        return http_map_port_status(st);
    }
    t->open = true;
    if (!t->ssl_ready) {
        /* An IP literal is sent no SNI (RFC 6066 3) and is checked by
         * tls_verify_ip instead of by name. */
        if (mbedtls_ssl_setup(&t->ssl, &t->conf) != 0 ||
            (t->ip_len == 0 && mbedtls_ssl_set_hostname(&t->ssl, t->host) != 0)) {
            tls_close(t);
            return HTTP_ERR_NOMEM;
        }
        t->ssl_ready = true;
    } else if (mbedtls_ssl_session_reset(&t->ssl) != 0) {
        tls_close(t);
        return HTTP_ERR_NOMEM;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, NULL, bio_recv_timeout);
    if (t->have_session) {
        (void)mbedtls_ssl_set_session(&t->ssl, &t->session);
    }
    do {
        rc = mbedtls_ssl_handshake(&t->ssl);
    } while (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    t->stats.handshakes++;
    if (rc != 0) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        t->handshake_rc = rc;
        t->verify_flags = rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ? flags : 0;
        port_log(PORT_LOG_WARN, "http", "TLS handshake with %s failed: -0x%04x (verify flags 0x%x)",
                 t->host, (unsigned)-rc, (unsigned)flags);
        tls_close(t);
        if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
            return HTTP_ERR_CERT_VERIFY;
        }
        if (t->last_io == PORT_ERR_TIMEOUT) {
            return HTTP_ERR_TIMEOUT;
        }
        if (t->last_io == PORT_ERR_RESET || t->last_io == PORT_ERR_CLOSED) {
            return HTTP_ERR_RESET;
        }
        return HTTP_ERR_TLS_HANDSHAKE;
    }
    if (t->have_session) {
        /* Only an abbreviated handshake keeps the saved master secret (a
         * ticket resumption does not echo the old session id, so ids can't
         * tell). */
        const mbedtls_ssl_session *cur = mbedtls_ssl_get_session_pointer(&t->ssl);
        if (cur != NULL && memcmp(cur->master, t->session.master, sizeof(cur->master)) == 0) {
            t->stats.resumed_handshakes++;
        }
        mbedtls_ssl_session_free(&t->session);
        mbedtls_ssl_session_init(&t->session);
        t->have_session = false;
    }
    t->have_session = mbedtls_ssl_get_session(&t->ssl, &t->session) == 0;
    return HTTP_OK;
}

static int tls_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    http_tls_t *t = ctx;
    int n;
    if (t->broken) {
        return HTTP_ERR_RESET; /* nothing of this request left */
    }
    t->deadline = port_monotonic_ms() + timeout_ms;
    t->last_io = 0;
    do {
        n = mbedtls_ssl_write(&t->ssl, buf, len);
    } while (n == MBEDTLS_ERR_SSL_WANT_WRITE || n == MBEDTLS_ERR_SSL_WANT_READ);
    if (n > 0) {
        return n;
    }
    return t->last_io == PORT_ERR_TIMEOUT ? HTTP_ERR_TIMEOUT : HTTP_ERR_RESET;
}

static int tls_recv(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    http_tls_t *t = ctx;
    int n;
    t->deadline = port_monotonic_ms() + timeout_ms;
    t->last_io = 0;
    if (t->broken) {
        return HTTP_ERR_RESET;
    }
    do {
        n = mbedtls_ssl_read(&t->ssl, buf, len);
    } while (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (n > 0) {
        return n;
    }
    if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        return HTTP_ERR_CLOSED;
    }
    if (t->broken) {
        return HTTP_ERR_RESET; /* not idle: an answer to the peer is stuck */
    }
    if (n == MBEDTLS_ERR_SSL_TIMEOUT || t->last_io == PORT_ERR_TIMEOUT) {
        return HTTP_ERR_TIMEOUT;
    }
    t->broken = true;
    if (t->last_io == PORT_ERR_RESET || t->last_io == PORT_ERR_CLOSED) {
        return HTTP_ERR_RESET;
    }
    return HTTP_ERR_PROTOCOL;
}

static void tls_begin_call(void *ctx)
{
    http_tls_t *t = ctx;
    if (!t->verify) {
        port_log(PORT_LOG_WARN, "http",
                 "TLS certificate verification is OFF for %s: the peer is NOT authenticated",
                 t->host);
    }
}

http_status_t http_tls_new(http_tls_t **out, const http_tls_options_t *o,
                           http_transport_t *transport)
{
    static const unsigned char pers[] = "cdnagent-http";
    http_tls_t *t;
    size_t n;
    http_status_t rc = HTTP_OK;

    if (out == NULL || o == NULL || transport == NULL || o->host == NULL) {
        return HTTP_ERR_ARG;
    }
    n = strlen(o->host);
    if (n == 0 || n > HTTP_MAX_HOST_LEN) {
        return HTTP_ERR_ARG;
    }
    if (!o->insecure_no_verify && (o->ca_pem == NULL || o->ca_pem_len == 0)) {
        return HTTP_ERR_ARG; /* verification is on unless explicitly disabled */
    }
    {
        uint8_t ip[UTIL_IP_MAX];
        /* "127.1" reaches 127.0.0.1 but would be checked as a DNS name */
        if (util_ip_parse(o->host, n, ip) == 0 && util_host_numeric(o->host, n))
            return HTTP_ERR_ARG;
    }
    t = port_calloc(1, sizeof(*t));
    if (t == NULL) {
        return HTTP_ERR_NOMEM;
    }
    memcpy(t->host, o->host, n + 1);
    t->ip_len = util_ip_parse(t->host, n, t->ip);
    t->port = o->port;
    t->verify = !o->insecure_no_verify;
    mbedtls_ssl_init(&t->ssl);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_ssl_session_init(&t->session);

    if (mbedtls_ctr_drbg_seed(&t->drbg, tls_entropy, NULL, pers, sizeof(pers) - 1) != 0 ||
        mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        rc = HTTP_ERR_TLS_SETUP;
    }
    if (rc == HTTP_OK && t->verify) {
        int xr = mbedtls_x509_crt_parse(&t->ca, o->ca_pem, o->ca_pem_len);
        /* No memory to hold the bundle is not a bad bundle. */
        if (xr == MBEDTLS_ERR_X509_ALLOC_FAILED || xr == MBEDTLS_ERR_PEM_ALLOC_FAILED) {
            rc = HTTP_ERR_NOMEM;
        } else if (xr != 0) {
            rc = HTTP_ERR_TLS_SETUP;
        }
    }
    if (rc != HTTP_OK) {
        http_tls_free(t);
        return rc;
    }
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#if defined(MBEDTLS_SSL_MAX_FRAGMENT_LENGTH) && MBEDTLS_SSL_IN_CONTENT_LEN <= 4096
    /* A build with a 4 KB incoming record buffer asks the server for 4 KB
     * records (RFC 6066); a server that ignores the request fails the
     * handshake instead of overflowing anything. */
    (void)mbedtls_ssl_conf_max_frag_len(&t->conf, MBEDTLS_SSL_MAX_FRAG_LEN_4096);
#endif
    if (t->verify) {
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
        if (t->ip_len)
            mbedtls_ssl_conf_verify(&t->conf, tls_verify_ip, t);
    } else {
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
        port_log(PORT_LOG_WARN, "http", "TLS certificate verification DISABLED for %s", t->host);
    }
    memset(transport, 0, sizeof(*transport));
    transport->connect = tls_connect;
    transport->send = tls_send;
    transport->recv = tls_recv;
    transport->close = tls_close;
    transport->begin_call = tls_begin_call;
    transport->ctx = t;
    transport->why = tls_why;
    *out = t;
    return HTTP_OK;
}

void http_tls_stats(const http_tls_t *tls, http_tls_stats_t *stats)
{
    if (tls != NULL && stats != NULL) {
        *stats = tls->stats;
    }
}

void http_tls_free(http_tls_t *t)
{
    if (t == NULL) {
        return;
    }
    tls_close(t);
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ssl_session_free(&t->session);
    mbedtls_platform_zeroize(t, sizeof(*t));
    port_free(t);
}
