/* The http component's error and edge paths, end to end where a real peer
 * is needed: the plain TCP transport (http_tcp.c) and the mbedTLS TLS 1.2
 * transport (http_tls.c) talk to in-process servers on 127.0.0.1 (one
 * pthread with a listening socket on an ephemeral port; the TLS peer is an
 * mbedTLS server with a throwaway test CA), so refused connects, peer
 * closes with and without close_notify, resets, stalls, garbage, certificate
 * failures, session resumption and the insecure-mode warnings are the real
 * thing, not a mock. The response reader (http_client.c) is driven by a
 * scripted transport for the limit, out-of-memory, keep-alive, retry and
 * Date-parsing branches that test_http.c leaves out. Client-side timeouts
 * are short (<= 150 ms; the servers' 3-5 s waits are only safety bounds),
 * so the binary runs in about a second.
 *
 * Test PKI (P-256, generated with openssl for this file, valid 2000-2099):
 * "cdnagent test CA" signs the server certificate (CN and SAN DNS:localhost);
 * "cdnagent other CA" signs nothing and stands for a wrong trust anchor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/x509_crt.h>

#include "http.h"
#include "port.h"
#include "port_heap.h"
#include "port_posix.h"

/* ------------------------------------------------------------ test PKI -- */

/* clang-format off */
static const char CA_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBajCCARCgAwIBAgICEAAwCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQY2RuYWdl\n"
    "bnQgdGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMDk5MTIzMTIzNTk1OVowGzEZ\n"
    "MBcGA1UEAwwQY2RuYWdlbnQgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
    "A0IABE7vFl0go9Md12er07ypoP0R9clscaxzcfPa+m4rNkovd4S1Z9kfFZ1HDOSP\n"
    "N3bLuX3aecy0v09NxPPbK+gqdeWjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0P\n"
    "AQH/BAQDAgEGMB0GA1UdDgQWBBSZA97vdqhvKJWA15UP9s11CEz5EzAKBggqhkjO\n"
    "PQQDAgNIADBFAiEA0x+xHl1OaQlZ91W3LnhNdovFaa+zPQ+KkdoOyoQx5LgCIEPR\n"
    "Vf7w1M9+fpMIsS+yk6/Gxt0PhhlzUeEAA5mByP2q\n"
    "-----END CERTIFICATE-----\n";
/* clang-format on */

static const char OTHER_CA_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBbDCCARKgAwIBAgICEAEwCgYIKoZIzj0EAwIwHDEaMBgGA1UEAwwRY2RuYWdl\n"
    "bnQgb3RoZXIgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjA5OTEyMzEyMzU5NTlaMBwx\n"
    "GjAYBgNVBAMMEWNkbmFnZW50IG90aGVyIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
    "AQcDQgAEq9WOyrz8DFBq7xQgGigdURBxe13Gp/Zrs9ao1ghX4R71MvJgz4RbKy2J\n"
    "kyROBtES3Rxqj0+3ji0QbI8D/BPgsqNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNV\n"
    "HQ8BAf8EBAMCAQYwHQYDVR0OBBYEFB4yLdp382c9Jke1H+1Kqm+Zw3l6MAoGCCqG\n"
    "SM49BAMCA0gAMEUCIQCJYmk9FV7ipHEeSVMA9DZuY8ir0inOPgJF3pUWUYNzpgIg\n"
    "F94z/qjaZMJzJEenD/+IjJpAZdw8zU51vx0fmovslYc=\n"
    "-----END CERTIFICATE-----\n";

static const char SRV_CERT_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBqzCCAVGgAwIBAgICEAIwCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQY2RuYWdl\n"
    "bnQgdGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMDk5MTIzMTIzNTk1OVowFDES\n"
    "MBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEx3B/\n"
    "3dtHSO4CaTyCdyPfbRBrb+PQTSXbab2mYQ/vB7GAjCssSbCSTUysMA3XzoLgoiUl\n"
    "iPWufSz8fxRE9RxrIaOBiTCBhjAJBgNVHRMEAjAAMA4GA1UdDwEB/wQEAwIHgDAT\n"
    "BgNVHSUEDDAKBggrBgEFBQcDATAUBgNVHREEDTALgglsb2NhbGhvc3QwHwYDVR0j\n"
    "BBgwFoAUmQPe73aobyiVgNeVD/bNdQhM+RMwHQYDVR0OBBYEFCY0CIdprS2gOfVi\n"
    "m/SsZ8IcjMbsMAoGCCqGSM49BAMCA0gAMEUCIFg6O5VQihvS5DaLYddwIqy0xxhD\n"
    "GnkJCFReAUD5J9iiAiEAy1Alo3WCAHKNg1jGxHEDwuRAOej+fP0lCq5U62GyXXE=\n"
    "-----END CERTIFICATE-----\n";

static const char SRV_KEY_PEM[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIHwOuv9SocmkwVhjzBkpCoYuRic0ZTcqPY0vYobD8i3CoAoGCCqGSM49\n"
    "AwEHoUQDQgAEx3B/3dtHSO4CaTyCdyPfbRBrb+PQTSXbab2mYQ/vB7GAjCssSbCS\n"
    "TUysMA3XzoLgoiUliPWufSz8fxRE9RxrIQ==\n"
    "-----END EC PRIVATE KEY-----\n";

static const char OK_REPLY[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const uint8_t REQ[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
#define REQ_LEN (sizeof(REQ) - 1)

/* ------------------------------------------------- loopback test server -- */

/* What the server does with one accepted connection. */
typedef enum {
    M_HTTP,                /* plain: answer every request with the reply until EOF */
    M_FIN_AFTER_REQ,       /* plain: read the request, then close (FIN) */
    M_SILENT,              /* read and never answer, until released */
    M_TLS_SERVE,           /* TLS: answer every request until the client leaves */
    M_READ_FIN,            /* read the first bytes (a ClientHello), then FIN */
    M_READ_RST,            /* read the first bytes (a ClientHello), then RST */
    M_TLS_HS_GARBAGE,      /* answer the ClientHello with plain-text HTTP */
    M_TLS_THEN_FIN,        /* handshake, one answer, FIN without close_notify */
    M_TLS_THEN_NOTIFY,     /* handshake, one answer, close_notify */
    M_TLS_THEN_RST,        /* handshake, read the request, RST */
    M_TLS_THEN_GARBAGE,    /* handshake, read the request, raw non-TLS bytes */
    M_TLS_THEN_ALERT,      /* handshake, read the request, warning alert, answer */
    M_TLS_THEN_STALL,      /* handshake, then neither read nor write until released */
    M_TLS_THEN_HELLO_REQ,  /* one answer, then a HelloRequest, then keep serving */
    M_TLS_THEN_BAD_RECORD, /* one answer, then a record with a bad MAC, keep serving */
} srv_mode_t;

#define SRV_MAX_CONN 4
typedef struct {
    bool active;
    int lfd;
    uint16_t port;
    pthread_t th;
    int release[2]; /* test -> server: stop waiting (stays readable) */
    int done[2];    /* server -> test: one byte per finished connection */
    int sent[2];    /* server -> test: one byte when a close_notify went out */
    int nconn;
    srv_mode_t modes[SRV_MAX_CONN];
    int result[SRV_MAX_CONN]; /* TLS: how the connection ended (mbedTLS code) */
    int requests;             /* requests answered, all connections */
    bool tls;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_config conf;
    mbedtls_ssl_cache_context cache;
} srv_t;

static srv_t g_srv[2];

static bool wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, ms) > 0;
}

static bool released(srv_t *s, int ms)
{
    return wait_readable(s->release[0], ms);
}

static void rst_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* FIN now; keep the socket until the client has gone, so no RST follows. */
static void fin_close(srv_t *s, int fd)
{
    char b[256];
    shutdown(fd, SHUT_WR);
    while (!released(s, 0) && wait_readable(fd, 2000) && recv(fd, b, sizeof(b), 0) > 0) {
    }
    close(fd);
}

/* Discard whatever arrives until the client has gone (or release). */
static void close_when_client_gone(srv_t *s, int fd)
{
    char b[256];
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN, .revents = 0},
                              {.fd = s->release[0], .events = POLLIN, .revents = 0}};
        if (poll(p, 2, 3000) <= 0 || (p[1].revents & POLLIN) != 0 ||
            recv(fd, b, sizeof(b), 0) <= 0) {
            break;
        }
    }
    close(fd);
}

/* Read one request head (up to the blank line). 1: got it, 0: EOF/error. */
static int plain_read_req(int fd)
{
    char b[1024];
    size_t have = 0;
    while (have < sizeof(b) - 1) {
        ssize_t n;
        if (!wait_readable(fd, 3000)) {
            return 0;
        }
        n = recv(fd, b + have, sizeof(b) - 1 - have, 0);
        if (n <= 0) {
            return 0;
        }
        have += (size_t)n;
        b[have] = 0;
        if (strstr(b, "\r\n\r\n") != NULL) {
            return 1;
        }
    }
    return 0;
}

/* Read some bytes (the ClientHello); true when anything arrived. */
static bool read_some(int fd)
{
    char b[2048];
    return wait_readable(fd, 3000) && recv(fd, b, sizeof(b), 0) > 0;
}

static int tls_read_req(mbedtls_ssl_context *ssl)
{
    char b[1024];
    size_t have = 0;
    while (have < sizeof(b) - 1) {
        int n = mbedtls_ssl_read(ssl, (unsigned char *)b + have, sizeof(b) - 1 - have);
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) {
            continue;
        }
        if (n <= 0) {
            return n;
        }
        have += (size_t)n;
        b[have] = 0;
        if (strstr(b, "\r\n\r\n") != NULL) {
            return 1;
        }
    }
    return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
}

static void tls_write_all(mbedtls_ssl_context *ssl, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        int n = mbedtls_ssl_write(ssl, (const unsigned char *)text + off, len - off);
        if (n <= 0) {
            return;
        }
        off += (size_t)n;
    }
}

static void serve_tls(srv_t *s, int fd, int idx)
{
    mbedtls_ssl_context ssl;
    mbedtls_net_context net;
    srv_mode_t m = s->modes[idx];
    int rc;

    mbedtls_ssl_init(&ssl);
    net.fd = fd;
    if (mbedtls_ssl_setup(&ssl, &s->conf) != 0) {
        close(fd);
        return;
    }
    mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
    do {
        rc = mbedtls_ssl_handshake(&ssl);
    } while (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    s->result[idx] = rc;
    if (rc != 0) {
        close(fd);
        mbedtls_ssl_free(&ssl);
        return;
    }
    switch (m) {
    case M_TLS_SERVE:
        for (;;) {
            rc = tls_read_req(&ssl);
            if (rc <= 0) {
                s->result[idx] = rc; /* how the client left */
                break;
            }
            s->requests++;
            tls_write_all(&ssl, OK_REPLY);
        }
        close(fd);
        break;
    case M_TLS_THEN_FIN:
    case M_TLS_THEN_NOTIFY:
        if (tls_read_req(&ssl) == 1) {
            s->requests++;
            tls_write_all(&ssl, OK_REPLY);
        }
        if (m == M_TLS_THEN_NOTIFY) {
            (void)mbedtls_ssl_close_notify(&ssl);
            (void)write(s->sent[1], "x", 1);
        }
        fin_close(s, fd);
        break;
    case M_TLS_THEN_RST:
        (void)tls_read_req(&ssl);
        rst_close(fd);
        break;
    case M_TLS_THEN_GARBAGE: {
        static const char junk[] = "this is plain text, not a TLS record\r\n";
        (void)tls_read_req(&ssl);
        (void)send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL);
        close_when_client_gone(s, fd);
        break;
    }
    case M_TLS_THEN_ALERT:
        if (tls_read_req(&ssl) == 1) {
            s->requests++;
            (void)mbedtls_ssl_send_alert_message(&ssl, MBEDTLS_SSL_ALERT_LEVEL_WARNING,
                                                 MBEDTLS_SSL_ALERT_MSG_NO_RENEGOTIATION);
            tls_write_all(&ssl, OK_REPLY);
        }
        close_when_client_gone(s, fd);
        break;
    case M_TLS_THEN_HELLO_REQ:
    case M_TLS_THEN_BAD_RECORD:
        if (tls_read_req(&ssl) == 1) {
            s->requests++;
            tls_write_all(&ssl, OK_REPLY);
        }
        if (m == M_TLS_THEN_HELLO_REQ) {
            (void)mbedtls_ssl_renegotiate(&ssl);
        } else {
            static const unsigned char forged[5 + 40] = {0x17, 0x03, 0x03, 0x00, 0x28};
            (void)send(fd, forged, sizeof(forged), MSG_NOSIGNAL);
        }
        (void)write(s->sent[1], "x", 1);
        for (;;) {
            rc = tls_read_req(&ssl);
            if (rc <= 0) {
                s->result[idx] = rc;
                break;
            }
            s->requests++;
            tls_write_all(&ssl, OK_REPLY);
        }
        close(fd);
        break;
    default: /* M_TLS_THEN_STALL */
        (void)released(s, 5000);
        close(fd);
        break;
    }
    mbedtls_ssl_free(&ssl);
}

static void serve_one(srv_t *s, int fd, int idx)
{
    static const char plain_http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    switch (s->modes[idx]) {
    case M_HTTP:
        while (plain_read_req(fd) == 1) {
            s->requests++;
            (void)send(fd, OK_REPLY, strlen(OK_REPLY), MSG_NOSIGNAL);
        }
        close(fd);
        break;
    case M_FIN_AFTER_REQ:
        (void)plain_read_req(fd);
        fin_close(s, fd);
        break;
    case M_SILENT: close_when_client_gone(s, fd); break;
    case M_READ_FIN:
        (void)read_some(fd);
        fin_close(s, fd);
        break;
    case M_READ_RST:
        (void)read_some(fd);
        rst_close(fd);
        break;
    case M_TLS_HS_GARBAGE:
        (void)read_some(fd);
        (void)send(fd, plain_http, sizeof(plain_http) - 1, MSG_NOSIGNAL);
        fin_close(s, fd);
        break;
    default: serve_tls(s, fd, idx); break;
    }
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    int i;
    for (i = 0; i < s->nconn; i++) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN, .revents = 0},
                              {.fd = s->release[0], .events = POLLIN, .revents = 0}};
        int fd;
        if (poll(p, 2, 5000) <= 0 || (p[0].revents & POLLIN) == 0) {
            break; /* released or nobody came */
        }
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            break;
        }
        /* Small writes go out at once (no Nagle wait for a delayed ACK). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        serve_one(s, fd, i);
        (void)write(s->done[1], "x", 1);
    }
    return NULL;
}

/* Listening socket on 127.0.0.1, ephemeral port; rcvbuf > 0 sets SO_RCVBUF
 * (inherited by accepted sockets); backlog as given. Returns the fd. */
static int listen_loopback(uint16_t *port, int rcvbuf, int backlog)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port on 127.0.0.1 where nothing listens. */
static uint16_t closed_port(void)
{
    uint16_t port;
    int fd = listen_loopback(&port, 0, 1);
    close(fd);
    return port;
}

/* Start a server for nconn connections with the given modes. tls: an
 * mbedTLS server with the test certificate; cache: it resumes sessions. */
static srv_t *srv_start(int nconn, const srv_mode_t *modes, bool tls, bool cache, int rcvbuf)
{
    srv_t *s = !g_srv[0].active ? &g_srv[0] : &g_srv[1];
    static const unsigned char pers[] = "test-http-paths-server";
    assert_false(s->active);
    memset(s, 0, sizeof(*s));
    assert_true(nconn <= SRV_MAX_CONN);
    s->nconn = nconn;
    memcpy(s->modes, modes, sizeof(modes[0]) * (size_t)nconn);
    s->tls = tls;
    assert_int_equal(pipe(s->release), 0);
    assert_int_equal(pipe(s->done), 0);
    assert_int_equal(pipe(s->sent), 0);
    s->lfd = listen_loopback(&s->port, rcvbuf, 8);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_pk_init(&s->key);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_ssl_cache_init(&s->cache);
    if (tls) {
        assert_int_equal(mbedtls_x509_crt_parse(&s->cert, (const unsigned char *)SRV_CERT_PEM,
                                                sizeof(SRV_CERT_PEM)),
                         0);
        assert_int_equal(mbedtls_pk_parse_key(&s->key, (const unsigned char *)SRV_KEY_PEM,
                                              sizeof(SRV_KEY_PEM), NULL, 0),
                         0);
        assert_int_equal(mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, pers,
                                               sizeof(pers) - 1),
                         0);
        assert_int_equal(mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
                                                     MBEDTLS_SSL_TRANSPORT_STREAM,
                                                     MBEDTLS_SSL_PRESET_DEFAULT),
                         0);
        mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
        mbedtls_ssl_conf_read_timeout(&s->conf, 3000);
        /* The server may ask for renegotiation (HelloRequest), which the
         * client refuses with an alert it must be able to send. */
        mbedtls_ssl_conf_renegotiation(&s->conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
        assert_int_equal(mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key), 0);
        if (cache) {
            mbedtls_ssl_conf_session_cache(&s->conf, &s->cache, mbedtls_ssl_cache_get,
                                           mbedtls_ssl_cache_set);
        }
    }
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    s->active = true;
    return s;
}

static void wait_event(int fd)
{
    char c;
    assert_true(wait_readable(fd, 3000));
    assert_int_equal(read(fd, &c, 1), 1);
}

/* Wait until the server finished one more connection. */
static void srv_wait_done(srv_t *s)
{
    wait_event(s->done[0]);
}

static void srv_stop(srv_t *s)
{
    if (!s->active) {
        return;
    }
    (void)write(s->release[1], "x", 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->release[0]);
    close(s->release[1]);
    close(s->done[0]);
    close(s->done[1]);
    close(s->sent[0]);
    close(s->sent[1]);
    mbedtls_ssl_cache_free(&s->cache);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->cert);
    s->active = false;
}

/* A failed assertion longjmps out of a test: stop what it left running. */
static int teardown_servers(void **state)
{
    (void)state;
    srv_stop(&g_srv[0]);
    srv_stop(&g_srv[1]);
    port_heap_fail_at(-1, false);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------- stderr capture -- */

static FILE *g_cap;
static int g_saved_stderr = -1;

static void capture_begin(void)
{
    fflush(stderr);
    g_cap = tmpfile();
    assert_non_null(g_cap);
    g_saved_stderr = dup(2);
    assert_true(g_saved_stderr >= 0);
    assert_true(dup2(fileno(g_cap), 2) >= 0);
}

/* Stop capturing; returns how often needle was logged. */
static int capture_end(const char *needle)
{
    static char text[8192];
    size_t n;
    int count = 0;
    const char *p;
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    g_saved_stderr = -1;
    rewind(g_cap);
    n = fread(text, 1, sizeof(text) - 1, g_cap);
    text[n] = 0;
    fclose(g_cap);
    g_cap = NULL;
    for (p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) {
        count++;
    }
    return count;
}

/* ------------------------------------------------------ TCP transport -- */

static void test_tcp_transport_arguments(void **state)
{
    http_transport_t tr;
    http_tcp_t tcp;
    char longhost[HTTP_MAX_HOST_LEN + 2];
    (void)state;
    memset(longhost, 'a', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = 0; /* 254 characters */
    assert_int_equal(http_tcp_transport(NULL, &tcp, "localhost", 1), HTTP_ERR_ARG);
    assert_int_equal(http_tcp_transport(&tr, NULL, "localhost", 1), HTTP_ERR_ARG);
    assert_int_equal(http_tcp_transport(&tr, &tcp, NULL, 1), HTTP_ERR_ARG);
    assert_int_equal(http_tcp_transport(&tr, &tcp, "", 1), HTTP_ERR_ARG);
    assert_int_equal(http_tcp_transport(&tr, &tcp, longhost, 1), HTTP_ERR_ARG);
    longhost[HTTP_MAX_HOST_LEN] = 0; /* 253: the longest name allowed */
    assert_int_equal(http_tcp_transport(&tr, &tcp, longhost, 8080), HTTP_OK);
    assert_string_equal(tcp.host, longhost);
    assert_int_equal(tcp.port, 8080);
    assert_false(tcp.open);
    assert_ptr_equal(tr.ctx, &tcp);
    assert_null(tr.begin_call);
    /* Not connected yet: I/O is refused as a bad argument, close is a no-op. */
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 100), HTTP_ERR_ARG);
    {
        uint8_t b[16];
        assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 0), HTTP_ERR_ARG);
    }
    tr.close(tr.ctx);
    tr.close(tr.ctx);
    assert_false(tcp.open);
}

static void test_tcp_connect_failures(void **state)
{
    http_transport_t tr;
    http_tcp_t tcp;
    http_client_t c;
    http_response_t r;
    uint16_t port;
    int lfd, filler;
    struct sockaddr_in a;
    (void)state;

    /* Nothing listens: refused. The client reports it and stays closed. */
    assert_int_equal(http_tcp_transport(&tr, &tcp, "127.0.0.1", closed_port()), HTTP_OK);
    http_client_init(&c, &tr, NULL);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_CONNECT);
    assert_false(c.connected);
    assert_false(tcp.open);
    assert_int_equal(c.connects, 0);
    assert_int_equal(c.requests, 0);
    assert_null(r.body);

    /* A name that does not resolve. */
    assert_int_equal(http_tcp_transport(&tr, &tcp, "no-such-host.invalid", 80), HTTP_OK);
    assert_int_equal(tr.connect(tr.ctx, 500), HTTP_ERR_DNS);
    assert_false(tcp.open);

    /* A listener whose accept queue is full drops the SYN: connect times out. */
    lfd = listen_loopback(&port, 0, 0);
    filler = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(http_tcp_transport(&tr, &tcp, "127.0.0.1", port), HTTP_OK);
    {
        uint64_t t0 = port_monotonic_ms();
        assert_int_equal(tr.connect(tr.ctx, 100), HTTP_ERR_TIMEOUT);
        assert_true(port_monotonic_ms() - t0 >= 90);
    }
    assert_false(tcp.open);
    close(filler);
    close(lfd);
}

static void test_tcp_keep_alive_over_loopback(void **state)
{
    const srv_mode_t modes[] = {M_HTTP};
    http_transport_t tr;
    http_tcp_t tcp;
    http_client_t c;
    http_response_t r;
    srv_t *s;
    int i;
    (void)state;
    s = srv_start(1, modes, false, false, 0);
    assert_int_equal(http_tcp_transport(&tr, &tcp, "127.0.0.1", s->port), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){1024, 1024, 2000});
    for (i = 0; i < 3; i++) {
        assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
        assert_int_equal(r.status_code, 200);
        assert_string_equal((char *)r.body, "ok");
        assert_true(r.keep_alive);
        http_response_free(&r);
    }
    /* The idle connection polled with a zero timeout was reused each time. */
    assert_int_equal(c.connects, 1);
    assert_int_equal(c.requests, 3);
    assert_true(tcp.open);
    http_client_close(&c);
    assert_false(tcp.open);
    srv_wait_done(s);
    assert_int_equal(s->requests, 3);
    srv_stop(s);
}

static void test_tcp_peer_close_timeout_and_reset(void **state)
{
    const srv_mode_t modes[] = {M_FIN_AFTER_REQ, M_SILENT, M_READ_RST};
    http_transport_t tr;
    http_tcp_t tcp;
    http_client_t c;
    http_response_t r;
    uint8_t b[64];
    srv_t *s;
    (void)state;
    s = srv_start(3, modes, false, false, 0);
    assert_int_equal(http_tcp_transport(&tr, &tcp, "127.0.0.1", s->port), HTTP_OK);

    /* 1: the server reads the request and closes: cut short, not retried. */
    http_client_init(&c, &tr, &(http_limits_t){1024, 1024, 2000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_RESET);
    assert_int_equal(c.requests, 1);
    assert_int_equal(c.connects, 1);
    assert_false(tcp.open);
    srv_wait_done(s);

    /* 2: nothing comes back: the transport's recv times out. */
    assert_int_equal(tr.connect(tr.ctx, 1000), HTTP_OK);
    assert_true(tcp.open);
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 1000), (int)REQ_LEN);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 0), HTTP_ERR_TIMEOUT);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 50), HTTP_ERR_TIMEOUT);
    tr.close(tr.ctx);
    assert_false(tcp.open);
    srv_wait_done(s);

    /* 3: the server resets the connection: recv and send report RESET. */
    assert_int_equal(tr.connect(tr.ctx, 1000), HTTP_OK);
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 1000), (int)REQ_LEN);
    srv_wait_done(s);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 1000), HTTP_ERR_RESET);
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 1000), HTTP_ERR_RESET);
    tr.close(tr.ctx);
    srv_stop(s);
}

/* A clean close seen by the TCP transport's recv is HTTP_ERR_CLOSED. */
static void test_tcp_recv_clean_close(void **state)
{
    const srv_mode_t modes[] = {M_FIN_AFTER_REQ};
    http_transport_t tr;
    http_tcp_t tcp;
    uint8_t b[64];
    srv_t *s;
    (void)state;
    s = srv_start(1, modes, false, false, 0);
    assert_int_equal(http_tcp_transport(&tr, &tcp, "localhost", s->port), HTTP_OK);
    assert_int_equal(tr.connect(tr.ctx, 1000), HTTP_OK);
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 1000), (int)REQ_LEN);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 2000), HTTP_ERR_CLOSED);
    tr.close(tr.ctx);
    srv_stop(s);
}

/* ------------------------------------------------------ TLS transport -- */

static int tls_new(http_tls_t **tls, const char *host, uint16_t port, const char *ca, bool insecure,
                   http_transport_t *tr)
{
    http_tls_options_t o;
    memset(&o, 0, sizeof(o));
    o.host = host;
    o.port = port;
    o.ca_pem = (const uint8_t *)ca;
    o.ca_pem_len = ca != NULL ? strlen(ca) + 1 : 0;
    o.insecure_no_verify = insecure;
    return http_tls_new(tls, &o, tr);
}

static void test_tls_new_arguments(void **state)
{
    static const char bad_pem[] =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    http_tls_options_t o;
    http_transport_t tr;
    http_tls_t *tls = NULL;
    char longhost[HTTP_MAX_HOST_LEN + 2];
    size_t in_use0, in_use1;
    (void)state;
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = 0;
    memset(&o, 0, sizeof(o));
    o.host = "localhost";
    o.ca_pem = (const uint8_t *)CA_PEM;
    o.ca_pem_len = sizeof(CA_PEM);
    port_heap_stats(&in_use0, NULL);
    assert_int_equal(http_tls_new(NULL, &o, &tr), HTTP_ERR_ARG);
    assert_int_equal(http_tls_new(&tls, NULL, &tr), HTTP_ERR_ARG);
    assert_int_equal(http_tls_new(&tls, &o, NULL), HTTP_ERR_ARG);
    assert_int_equal(tls_new(&tls, NULL, 443, CA_PEM, false, &tr), HTTP_ERR_ARG);
    assert_int_equal(tls_new(&tls, "", 443, CA_PEM, false, &tr), HTTP_ERR_ARG);
    assert_int_equal(tls_new(&tls, longhost, 443, CA_PEM, false, &tr), HTTP_ERR_ARG);
    /* Verification is on unless explicitly disabled: a CA is required. */
    assert_int_equal(tls_new(&tls, "localhost", 443, NULL, false, &tr), HTTP_ERR_ARG);
    o.ca_pem_len = 0;
    assert_int_equal(http_tls_new(&tls, &o, &tr), HTTP_ERR_ARG);
    /* A CA bundle that does not parse: TLS setup, not an argument; the
     * context is freed again. */
    assert_int_equal(tls_new(&tls, "localhost", 443, bad_pem, false, &tr), HTTP_ERR_TLS_SETUP);
    assert_null(tls);
    port_heap_stats(&in_use1, NULL);
    assert_int_equal(in_use1, in_use0);

    /* The stats accessor ignores NULLs. */
    {
        http_tls_stats_t st = {7, 7};
        http_tls_stats(NULL, &st);
        assert_int_equal(st.handshakes, 7);
        assert_int_equal(st.resumed_handshakes, 7);
    }
    http_tls_free(NULL);

    /* Host name of exactly the maximum length is accepted. */
    longhost[HTTP_MAX_HOST_LEN] = 0;
    assert_int_equal(tls_new(&tls, longhost, 443, CA_PEM, false, &tr), HTTP_OK);
    assert_non_null(tls);
    assert_ptr_equal(tr.ctx, tls);
    assert_non_null(tr.begin_call);
    http_tls_stats(tls, NULL);
    http_tls_free(tls);
    port_heap_stats(&in_use1, NULL);
    assert_int_equal(in_use1, in_use0);
}

static void test_tls_new_out_of_memory(void **state)
{
    http_transport_t tr;
    http_tls_t *tls = NULL;
    unsigned long n, i;
    size_t in_use0, in_use1;
    (void)state;
    port_heap_stats(&in_use0, NULL);
    port_heap_fail_at(1000000, false); /* count only */
    assert_int_equal(tls_new(&tls, "localhost", 443, CA_PEM, false, &tr), HTTP_OK);
    n = port_heap_allocs();
    port_heap_fail_at(-1, false);
    http_tls_free(tls);
    assert_true(n >= 1);
    for (i = 0; i < n; i++) {
        tls = NULL;
        port_heap_fail_at((long)i, false);
        assert_int_equal(tls_new(&tls, "localhost", 443, CA_PEM, false, &tr), HTTP_ERR_NOMEM);
        port_heap_fail_at(-1, false);
        assert_null(tls);
        port_heap_stats(&in_use1, NULL);
        assert_int_equal(in_use1, in_use0);
    }
}

/* Verified handshake, keep-alive, close_notify on close, and a reconnect
 * that resumes the saved session (counted in http_tls_stats). */
static void test_tls_verified_keep_alive_and_resumption(void **state)
{
    const srv_mode_t modes[] = {M_TLS_SERVE, M_TLS_SERVE};
    http_transport_t tr;
    http_tls_t *tls;
    http_tls_stats_t st;
    http_client_t c;
    http_response_t r;
    size_t in_use0, in_use1;
    srv_t *s;
    (void)state;
    port_heap_stats(&in_use0, NULL);
    s = srv_start(2, modes, true, true, 0);
    capture_begin();
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 3000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_int_equal(r.status_code, 200);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    http_tls_stats(tls, &st);
    assert_int_equal(st.handshakes, 1);
    assert_int_equal(st.resumed_handshakes, 0);
    assert_int_equal(c.connects, 1);

    /* Closing sends close_notify: the server sees a clean TLS close. */
    http_client_close(&c);
    srv_wait_done(s);
    assert_int_equal(s->result[0], MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
    assert_int_equal(s->requests, 2);

    /* Reconnect: an abbreviated handshake with the saved session. */
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    http_tls_stats(tls, &st);
    assert_int_equal(st.handshakes, 2);
    assert_int_equal(st.resumed_handshakes, 1);
    assert_int_equal(c.connects, 2);
    http_tls_free(tls); /* closes the open connection with close_notify too */
    srv_wait_done(s);
    assert_int_equal(s->result[1], MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
    /* Verification on: no warning at all. */
    assert_int_equal(capture_end("verification"), 0);
    srv_stop(s);
    port_heap_stats(&in_use1, NULL);
    assert_int_equal(in_use1, in_use0);
}

/* A server without a session cache: the offered session is not resumed
 * and the full handshake is not counted as resumed. An idle connection the
 * server closed with close_notify is noticed before the next request. */
static void test_tls_no_resumption_and_idle_close_notify(void **state)
{
    const srv_mode_t modes[] = {M_TLS_THEN_NOTIFY, M_TLS_SERVE};
    http_transport_t tr;
    http_tls_t *tls;
    http_tls_stats_t st;
    http_client_t c;
    http_response_t r;
    srv_t *s;
    (void)state;
    s = srv_start(2, modes, true, false, 0);
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 3000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    assert_true(r.keep_alive);
    http_response_free(&r);
    assert_true(c.connected);
    /* The server has sent close_notify (give loopback a moment to deliver). */
    wait_event(s->sent[0]);
    sleep_ms(20);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    assert_int_equal(c.connects, 2);
    assert_int_equal(c.requests, 2);
    http_tls_stats(tls, &st);
    assert_int_equal(st.handshakes, 2);
    assert_int_equal(st.resumed_handshakes, 0);
    http_tls_free(tls);
    srv_wait_done(s);
    srv_wait_done(s);
    assert_int_equal(s->requests, 2);
    srv_stop(s);
}

static void test_tls_certificate_refused(void **state)
{
    const srv_mode_t modes[] = {M_TLS_SERVE, M_TLS_SERVE};
    http_transport_t tr;
    http_tls_t *tls;
    http_tls_stats_t st;
    http_client_t c;
    http_response_t r;
    srv_t *s;
    (void)state;
    s = srv_start(2, modes, true, false, 0);
    /* Signed by a CA we do not trust. */
    assert_int_equal(tls_new(&tls, "localhost", s->port, OTHER_CA_PEM, false, &tr), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 3000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_CERT_VERIFY);
    assert_false(c.connected);
    assert_int_equal(c.requests, 0);
    http_tls_stats(tls, &st);
    assert_int_equal(st.handshakes, 1);
    http_tls_free(tls);
    srv_wait_done(s);
    assert_int_equal(s->requests, 0);
    assert_int_not_equal(s->result[0], 0);

    /* Trusted CA, but the name we dialled is not in the certificate. */
    assert_int_equal(tls_new(&tls, "127.0.0.1", s->port, CA_PEM, false, &tr), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 3000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_CERT_VERIFY);
    assert_false(c.connected);
    http_tls_free(tls);
    srv_wait_done(s);
    assert_int_equal(s->requests, 0);
    srv_stop(s);
}

/* insecure_no_verify: any certificate is accepted, and it is said loudly
 * at creation and on every call. */
static void test_tls_insecure_mode_warns(void **state)
{
    const srv_mode_t modes[] = {M_TLS_SERVE};
    http_transport_t tr;
    http_tls_t *tls;
    http_client_t c;
    http_response_t r;
    srv_t *s;
    int created, per_call;
    (void)state;
    s = srv_start(1, modes, true, false, 0);
    capture_begin();
    /* The wrong name and no CA at all: still connects, without verification. */
    assert_int_equal(tls_new(&tls, "127.0.0.1", s->port, NULL, true, &tr), HTTP_OK);
    created = capture_end("TLS certificate verification DISABLED for 127.0.0.1");
    assert_int_equal(created, 1);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 3000});
    capture_begin();
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    http_response_free(&r);
    per_call = capture_end("verification is OFF for 127.0.0.1");
    assert_int_equal(per_call, 2);
    http_tls_free(tls);
    srv_wait_done(s);
    assert_int_equal(s->requests, 2);
    srv_stop(s);
}

/* Handshake failures that are not about the certificate. */
static void test_tls_handshake_failures(void **state)
{
    const srv_mode_t modes[] = {M_READ_FIN, M_READ_RST, M_TLS_HS_GARBAGE, M_SILENT};
    http_transport_t tr;
    http_tls_t *tls;
    http_tls_stats_t st;
    srv_t *s;
    uint64_t t0;
    (void)state;

    /* Nothing listens: no handshake is attempted. */
    assert_int_equal(tls_new(&tls, "localhost", closed_port(), CA_PEM, false, &tr), HTTP_OK);
    assert_int_equal(tr.connect(tr.ctx, 500), HTTP_ERR_CONNECT);
    http_tls_stats(tls, &st);
    assert_int_equal(st.handshakes, 0);
    http_tls_free(tls);

    s = srv_start(4, modes, false, false, 0);
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);
    /* Closed (FIN) in the middle of the handshake: cut short. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_ERR_RESET);
    srv_wait_done(s);
    /* Reset in the middle of the handshake. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_ERR_RESET);
    srv_wait_done(s);
    /* Not a TLS server at all. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_ERR_TLS_HANDSHAKE);
    srv_wait_done(s);
    /* A server that never answers: the handshake runs out of time. */
    t0 = port_monotonic_ms();
    assert_int_equal(tr.connect(tr.ctx, 150), HTTP_ERR_TIMEOUT);
    assert_true(port_monotonic_ms() - t0 >= 140);
    http_tls_stats(tls, &st);
    assert_int_equal(st.handshakes, 4);
    assert_int_equal(st.resumed_handshakes, 0);
    http_tls_free(tls);
    srv_stop(s);
}

/* Send a request over an established TLS transport. */
static void tls_send_req(http_transport_t *tr)
{
    assert_int_equal(tr->send(tr->ctx, REQ, REQ_LEN, 2000), (int)REQ_LEN);
}

static void tls_expect_reply(http_transport_t *tr)
{
    uint8_t b[256];
    int n = tr->recv(tr->ctx, b, sizeof(b) - 1, 2000);
    assert_int_equal(n, (int)strlen(OK_REPLY));
    b[n] = 0;
    assert_string_equal((char *)b, OK_REPLY);
}

/* After the handshake: every way the peer can end or spoil the stream maps
 * to its own status at the transport. */
static void test_tls_established_stream_endings(void **state)
{
    const srv_mode_t modes[] = {M_TLS_THEN_FIN, M_TLS_THEN_RST, M_TLS_THEN_GARBAGE,
                                M_TLS_THEN_ALERT};
    http_transport_t tr;
    http_tls_t *tls;
    uint8_t b[64];
    srv_t *s;
    (void)state;
    s = srv_start(4, modes, true, false, 0);
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);

    /* TCP FIN without close_notify after the reply: a clean close. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_OK);
    tls_send_req(&tr);
    tls_expect_reply(&tr);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 2000), HTTP_ERR_CLOSED);
    tr.close(tr.ctx);
    srv_wait_done(s);

    /* Reset by the peer: recv and then send report RESET. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_OK);
    tls_send_req(&tr);
    srv_wait_done(s);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 2000), HTTP_ERR_RESET);
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 2000), HTTP_ERR_RESET);
    tr.close(tr.ctx);

    /* Bytes that are not a TLS record: a protocol error. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_OK);
    tls_send_req(&tr);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 2000), HTTP_ERR_PROTOCOL);
    tr.close(tr.ctx);

    /* A warning alert before the reply is skipped; the reply still arrives. */
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_OK);
    tls_send_req(&tr);
    tls_expect_reply(&tr);
    tr.close(tr.ctx);
    tr.close(tr.ctx); /* idempotent */

    http_tls_free(tls);
    srv_stop(s);
    assert_int_equal(s->requests, 2);
}

/* A peer that neither reads nor writes: recv and send time out. */
static void test_tls_stalled_peer_times_out(void **state)
{
    static uint8_t big[16384];
    const srv_mode_t modes[] = {M_TLS_THEN_STALL};
    http_transport_t tr;
    http_tls_t *tls;
    uint8_t b[64];
    srv_t *s;
    int rc = 1, i;
    (void)state;
    memset(big, 'x', sizeof(big));
    s = srv_start(1, modes, true, false, 4096);
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);
    assert_int_equal(tr.connect(tr.ctx, 2000), HTTP_OK);
    /* Nothing pending: the zero-timeout poll and a short wait both time out. */
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 0), HTTP_ERR_TIMEOUT);
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 30), HTTP_ERR_TIMEOUT);
    /* No time left at all: the socket is still offered the bytes once
     * (as an idle check must be able to answer the peer), and they fit. */
    assert_int_equal(tr.send(tr.ctx, REQ, REQ_LEN, 0), (int)REQ_LEN);
    /* Keep writing until the socket buffers are full and a send times out. */
    for (i = 0; i < 4096 && rc > 0; i++) {
        rc = tr.send(tr.ctx, big, sizeof(big), 100);
    }
    assert_int_equal(rc, HTTP_ERR_TIMEOUT);
    assert_true(i > 1);
    http_tls_free(tls);
    srv_stop(s);
}

/* -------------------------------------------- scripted HTTP transport -- */

#define SC_MAX 16
typedef struct {
    const char *frags[SC_MAX]; /* recv script; "@ZERO": 0, "@RESET": HTTP_ERR_RESET */
    size_t lens[SC_MAX];
    int nfrags, pos;
    size_t off;
    int connect_rc;       /* what connect returns */
    int connect_sleep_ms; /* connect takes this long */
    int send_sleep_ms;    /* each send takes this long */
    int send_rc[4];       /* scripted send results (then: accept) */
    int nsend_rc, send_pos;
    size_t send_max; /* bytes accepted per send (0: all) */
    int idle_rc[4];  /* zero-timeout recv results (then: TIMEOUT) */
    int nidle, idle_pos;
    int connects, closes, sends, begins;
} sc_t;

static int sc_connect(void *ctx, uint32_t t)
{
    sc_t *s = ctx;
    (void)t;
    if (s->connect_sleep_ms) {
        sleep_ms(s->connect_sleep_ms);
    }
    if (s->connect_rc != HTTP_OK) {
        return s->connect_rc;
    }
    s->connects++;
    return HTTP_OK;
}

static int sc_send(void *ctx, const uint8_t *b, size_t n, uint32_t t)
{
    sc_t *s = ctx;
    (void)b;
    (void)t;
    if (s->send_sleep_ms) {
        sleep_ms(s->send_sleep_ms);
    }
    if (s->send_pos < s->nsend_rc) {
        return s->send_rc[s->send_pos++];
    }
    s->sends++;
    if (s->send_max && n > s->send_max) {
        n = s->send_max;
    }
    return (int)n;
}

static int sc_recv(void *ctx, uint8_t *b, size_t n, uint32_t t)
{
    sc_t *s = ctx;
    size_t left, k;
    if (t == 0) {
        return s->idle_pos < s->nidle ? s->idle_rc[s->idle_pos++] : HTTP_ERR_TIMEOUT;
    }
    if (s->pos >= s->nfrags) {
        return HTTP_ERR_CLOSED;
    }
    if (strcmp(s->frags[s->pos], "@ZERO") == 0) {
        s->pos++;
        return 0;
    }
    if (strcmp(s->frags[s->pos], "@RESET") == 0) {
        s->pos++;
        return HTTP_ERR_RESET;
    }
    left = s->lens[s->pos] - s->off;
    k = left < n ? left : n;
    memcpy(b, s->frags[s->pos] + s->off, k);
    s->off += k;
    if (s->off == s->lens[s->pos]) {
        s->pos++;
        s->off = 0;
    }
    return (int)k;
}

static void sc_close(void *ctx)
{
    ((sc_t *)ctx)->closes++;
}

static void sc_begin(void *ctx)
{
    ((sc_t *)ctx)->begins++;
}

static void sc_setup(sc_t *s, http_client_t *c, const http_limits_t *lim)
{
    http_transport_t tr = {sc_connect, sc_send, sc_recv, sc_close, sc_begin, s, NULL};
    memset(s, 0, sizeof(*s));
    http_client_init(c, &tr, lim);
}

static void sc_add(sc_t *s, const char *f)
{
    assert_true(s->nfrags < SC_MAX);
    s->frags[s->nfrags] = f;
    s->lens[s->nfrags] = strlen(f);
    s->nfrags++;
}

static void test_client_status_names(void **state)
{
    static const struct {
        int st;
        const char *name;
    } names[] = {
        {HTTP_OK, "ok"},
        {HTTP_ERR_ARG, "bad-argument"},
        {HTTP_ERR_DNS, "dns"},
        {HTTP_ERR_CONNECT, "connect"},
        {HTTP_ERR_TLS_HANDSHAKE, "tls-handshake"},
        {HTTP_ERR_CERT_VERIFY, "cert-verify"},
        {HTTP_ERR_TIMEOUT, "timeout"},
        {HTTP_ERR_RESET, "reset"},
        {HTTP_ERR_PROTOCOL, "protocol"},
        {HTTP_ERR_TOO_LARGE, "too-large"},
        {HTTP_ERR_NOMEM, "nomem"},
        {HTTP_ERR_CLOSED, "closed"},
        {HTTP_ERR_TLS_SETUP, "tls-setup"},
        {-13, "unknown"},
        {1, "unknown"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_string_equal(http_client_status_str(names[i].st), names[i].name);
    }
}

static void test_client_arguments_and_idempotent_close(void **state)
{
    sc_t s;
    http_client_t c;
    http_response_t r;
    (void)state;
    sc_setup(&s, &c, NULL);
    assert_int_equal(c.limits.max_header_bytes, HTTP_DEFAULT_MAX_HEADER_BYTES);
    assert_int_equal(c.limits.max_body_bytes, HTTP_DEFAULT_MAX_BODY_BYTES);
    assert_int_equal(c.limits.timeout_ms, HTTP_DEFAULT_TIMEOUT_MS);
    assert_int_equal(http_client_request(NULL, REQ, REQ_LEN, &r), HTTP_ERR_ARG);
    assert_int_equal(http_client_request(&c, NULL, REQ_LEN, &r), HTTP_ERR_ARG);
    assert_int_equal(http_client_request(&c, REQ, 0, &r), HTTP_ERR_ARG);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, NULL), HTTP_ERR_ARG);
    assert_int_equal(s.begins, 0);
    assert_int_equal(s.connects, 0);
    /* Closing a client that is not connected does not touch the transport. */
    http_client_close(&c);
    assert_int_equal(s.closes, 0);
    http_response_free(NULL);
}

static void test_client_connect_and_send_failures(void **state)
{
    sc_t s;
    http_client_t c;
    http_response_t r;
    (void)state;

    /* No time at all: not even a connect is tried. */
    sc_setup(&s, &c, &(http_limits_t){1024, 1024, 0});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_TIMEOUT);
    assert_int_equal(s.begins, 1);
    assert_int_equal(s.connects, 0);

    /* The transport's connect error is passed on as is. */
    sc_setup(&s, &c, NULL);
    s.connect_rc = HTTP_ERR_DNS;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_DNS);
    assert_false(c.connected);
    assert_int_equal(c.connects, 0);
    assert_int_equal(s.closes, 0);

    /* Connect used up the time: nothing is sent. */
    sc_setup(&s, &c, &(http_limits_t){1024, 1024, 5});
    s.connect_sleep_ms = 20;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_TIMEOUT);
    assert_int_equal(s.connects, 1);
    assert_int_equal(s.sends, 0);
    assert_int_equal(c.requests, 0);
    assert_int_equal(s.closes, 1);

    /* Sending used up the time: the response is not waited for. */
    sc_setup(&s, &c, &(http_limits_t){1024, 1024, 5});
    s.send_sleep_ms = 20;
    sc_add(&s, OK_REPLY);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_TIMEOUT);
    assert_int_equal(c.requests, 1);
    assert_int_equal(s.pos, 0);

    /* A send that writes nothing on a new connection: RESET, no retry. */
    sc_setup(&s, &c, NULL);
    s.send_rc[s.nsend_rc++] = 0;
    sc_add(&s, OK_REPLY);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_RESET);
    assert_int_equal(s.connects, 1);
    assert_int_equal(c.requests, 0);

    /* Peer closed while sending on a new connection: RESET, no retry. */
    sc_setup(&s, &c, NULL);
    s.send_rc[s.nsend_rc++] = HTTP_ERR_CLOSED;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_RESET);
    assert_int_equal(s.connects, 1);

    /* Partial sends are continued until the whole request is out. */
    sc_setup(&s, &c, NULL);
    s.send_max = 7;
    sc_add(&s, OK_REPLY);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_int_equal(s.sends, (int)((REQ_LEN + 6) / 7));
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
}

static void test_client_reused_connection_send_failures(void **state)
{
    sc_t s;
    http_client_t c;
    http_response_t r;
    (void)state;
    sc_setup(&s, &c, NULL);
    sc_add(&s, OK_REPLY);
    sc_add(&s, OK_REPLY);
    sc_add(&s, OK_REPLY);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    http_response_free(&r);
    assert_true(c.connected);

    /* The kept-alive connection was closed by the peer (seen at send): the
     * request never went out, so it is sent once more on a new connection. */
    s.send_rc[s.nsend_rc++] = HTTP_ERR_CLOSED;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    assert_int_equal(s.connects, 2);
    assert_int_equal(c.requests, 2);

    /* A send timeout on a reused connection is not a stale connection: no
     * second try. */
    s.send_rc[s.nsend_rc++] = HTTP_ERR_TIMEOUT;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_TIMEOUT);
    assert_int_equal(s.connects, 2);
    assert_false(c.connected);
    assert_int_equal(s.begins, 3);
}

static void test_client_idle_check_outcomes(void **state)
{
    sc_t s;
    http_client_t c;
    http_response_t r;
    (void)state;
    sc_setup(&s, &c, NULL);
    sc_add(&s, OK_REPLY);
    sc_add(&s, OK_REPLY);
    sc_add(&s, OK_REPLY);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    http_response_free(&r);
    /* Stray bytes on the idle connection: it is not trusted, reconnect. */
    s.idle_rc[s.nidle++] = 5;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    http_response_free(&r);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.closes, 1);
    /* Reset while idle: reconnect as well. */
    s.idle_rc[s.nidle++] = HTTP_ERR_RESET;
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);
    assert_int_equal(s.connects, 3);
    assert_int_equal(c.requests, 3);
}

static void test_client_receive_endings(void **state)
{
    sc_t s;
    http_client_t c;
    http_response_t r;
    (void)state;

    /* recv returning 0 is an end of stream too: it ends a body without a
     * length, and the connection is not kept. */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nuntil eof");
    sc_add(&s, "@ZERO");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_string_equal((char *)r.body, "until eof");
    assert_false(r.keep_alive);
    assert_false(c.connected);
    http_response_free(&r);

    /* ... and cuts a declared body short. */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc");
    sc_add(&s, "@ZERO");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_RESET);
    assert_null(r.body);

    /* A transport error while receiving is passed on. */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\n");
    sc_add(&s, "@RESET");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_RESET);
    assert_false(c.connected);
    assert_int_equal(s.connects, 1);

    /* Content-Length: 0 gives an empty, NUL-terminated body; bytes after
     * the response are ignored (no pipelining). */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 extra\r\n\r\n");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_int_equal(r.status_code, 200);
    assert_int_equal(r.body_len, 0);
    assert_non_null(r.body);
    assert_int_equal(r.body[0], 0);
    assert_true(r.keep_alive);
    http_response_free(&r);
    assert_null(r.body);
}

static void test_client_headers_date_variants(void **state)
{
    sc_t s;
    http_client_t c;
    http_response_t r;
    (void)state;
    /* A four-letter header that is not Date, a long header name, and a
     * Date value too long to be an IMF-fixdate (kept bounded, not parsed). */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\nVary: Accept\r\nX-A-Very-Long-Header-Name: 1\r\n"
               "Date: Sun, 06 Nov 1994 08:49:37 GMT and a lot of trailing junk here\r\n"
               "Content-Length: 2\r\n\r\nok");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_false(r.has_date);
    assert_string_equal((char *)r.body, "ok");
    http_response_free(&r);

    /* A lower-case date header after other headers is found. */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\nServer: x\r\ndate: Thu, 01 Jan 1970 00:01:40 GMT\r\n"
               "Content-Length: 0\r\n\r\n");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_true(r.has_date);
    assert_int_equal(r.server_date, 100);
    http_response_free(&r);

    /* An unparseable Date is not reported. */
    sc_setup(&s, &c, NULL);
    sc_add(&s, "HTTP/1.1 200 OK\r\nDate: yesterday\r\nContent-Length: 0\r\n\r\n");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_false(r.has_date);
    http_response_free(&r);
}

/* Builds "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" plus the
 * given chunk sizes of 'a'..: each byte is 'a' + chunk index. */
static char *chunked_reply(const size_t *sizes, int n)
{
    static char buf[32768];
    size_t off;
    int i;
    off = (size_t)snprintf(buf, sizeof(buf),
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (i = 0; i < n; i++) {
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%zx\r\n", sizes[i]);
        assert_true(off + sizes[i] + 16 < sizeof(buf));
        memset(buf + off, 'a' + i, sizes[i]);
        off += sizes[i];
        memcpy(buf + off, "\r\n", 2);
        off += 2;
    }
    off += (size_t)snprintf(buf + off, sizeof(buf) - off, "0\r\n\r\n");
    return buf;
}

static void test_client_body_growth_and_limits(void **state)
{
    static const size_t sizes[] = {1000, 2000, 2000};
    static const size_t over[] = {1000, 2000, 2001};
    sc_t s;
    http_client_t c;
    http_response_t r;
    size_t i;
    (void)state;

    /* Chunked body of exactly the limit (5000): grows 1024 -> 2048 -> 4096
     * -> capped at limit + 1. */
    sc_setup(&s, &c, &(http_limits_t){1024, 5000, 2000});
    sc_add(&s, chunked_reply(sizes, 3));
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_int_equal(r.body_len, 5000);
    for (i = 0; i < 5000; i++) {
        char want = (char)(i < 1000 ? 'a' : i < 3000 ? 'b' : 'c');
        if ((char)r.body[i] != want) {
            fail_msg("body byte %zu is %c, want %c", i, r.body[i], want);
        }
    }
    assert_int_equal(r.body[5000], 0);
    http_response_free(&r);

    /* One byte more is refused. */
    sc_setup(&s, &c, &(http_limits_t){1024, 5000, 2000});
    sc_add(&s, chunked_reply(over, 3));
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_TOO_LARGE);
    assert_null(r.body);

    /* A declared length above 1 KB is reserved in one go. */
    {
        static char reply[4200];
        int k = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n");
        memset(reply + k, 'z', 3000);
        reply[k + 3000] = 0;
        sc_setup(&s, &c, NULL);
        sc_add(&s, reply);
        assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
        assert_int_equal(r.body_len, 3000);
        assert_int_equal(r.body[2999], 'z');
        http_response_free(&r);
    }

    /* A declared length just over the limit is refused before any body. */
    sc_setup(&s, &c, &(http_limits_t){1024, 10, 2000});
    sc_add(&s, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789A");
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_TOO_LARGE);
    assert_null(r.body);
}

/* Every body allocation of the client, failed in turn: NOMEM, nothing
 * leaked, nothing handed to the caller. */
static void test_client_out_of_memory(void **state)
{
    static const size_t sizes[] = {1000, 2000, 2000};
    const char *replies[3];
    sc_t s;
    http_client_t c;
    http_response_t r;
    size_t in_use0, in_use1;
    unsigned long n, i;
    int k;
    (void)state;
    replies[0] = chunked_reply(sizes, 3);                           /* grown three times */
    replies[1] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"; /* reserved at headers */
    replies[2] = "HTTP/1.1 204 No Content\r\n\r\n";                 /* only the empty body */
    for (k = 0; k < 3; k++) {
        port_heap_stats(&in_use0, NULL);
        sc_setup(&s, &c, NULL);
        sc_add(&s, replies[k]);
        port_heap_fail_at(1000000, false);
        assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
        n = port_heap_allocs();
        port_heap_fail_at(-1, false);
        http_response_free(&r);
        /* chunked: 1024, 2048, 4096, then the limit + 1 */
        assert_int_equal(n, k == 0 ? 4 : 1);
        for (i = 0; i < n; i++) {
            sc_setup(&s, &c, NULL);
            sc_add(&s, replies[k]);
            port_heap_fail_at((long)i, false);
            assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_ERR_NOMEM);
            port_heap_fail_at(-1, false);
            assert_null(r.body);
            assert_false(c.connected);
            port_heap_stats(&in_use1, NULL);
            assert_int_equal(in_use1, in_use0);
        }
    }
}

static void test_parse_date_edges(void **state)
{
    static const char *const bad[] = {
        "Sun; 06 Nov 1994 08:49:37 GMT", /* , */
        "Sun,_06 Nov 1994 08:49:37 GMT", /* space after comma */
        "Sun, 06-Nov 1994 08:49:37 GMT", /* space before month */
        "Sun, 06 Nov-1994 08:49:37 GMT", /* space before year */
        "Sun, 06 Nov 1994-08:49:37 GMT", /* space before time */
        "Sun, 06 Nov 1994 08-49:37 GMT", /* : */
        "Sun, 06 Nov 1994 08:49-37 GMT", /* : */
        "Sun, 06 Nov 1994 08:49:37 gmt", /* GMT */
        "Sun, 0x Nov 1994 08:49:37 GMT", /* day digits */
        "Sun, 06 Nov 19x4 08:49:37 GMT", /* year digits */
        "Sun, 06 Nov 1994 0/:49:37 GMT", /* hour digits ('/' < '0') */
        "Sun, 06 Nov 1994 08:4::37 GMT", /* minute digits (':' > '9') */
        "Sun, 06 Nov 1994 08:49:3x GMT", /* second digits */
        "Sun, 06 nov 1994 08:49:37 GMT", /* month names are case-sensitive */
        "Sun, 00 Nov 1994 08:49:37 GMT", /* day 0 */
        "Sun, 32 Nov 1994 08:49:37 GMT", /* day 32 */
        "Sun, 06 Nov 1994 24:49:37 GMT", /* hour 24 */
        "Sun, 06 Nov 1994 08:60:37 GMT", /* minute 60 */
        "Sun, 06 Nov 1994 08:49:61 GMT", /* second 61 */
    };
    int64_t t = 12345;
    size_t i;
    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (http_parse_date(bad[i], 29, &t)) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
    assert_int_equal(t, 12345); /* untouched on failure */
    assert_false(http_parse_date("Sun, 06 Nov 1994 08:49:37 GMT ", 30, &t));
    /* Every month name, a leap second, the last day of a leap year. */
    assert_true(http_parse_date("Wed, 31 Dec 2025 23:59:60 GMT", 29, &t));
    assert_int_equal(t, 1767225600);
    assert_true(http_parse_date("Thu, 29 Feb 2024 12:00:00 GMT", 29, &t));
    assert_int_equal(t, 1709208000);
    {
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        static const int64_t first_of_month_2001[] = {978307200,  980985600,  983404800,
                                                      986083200,  988675200,  991353600,
                                                      993945600,  996624000,  999302400,
                                                      1001894400, 1004572800, 1007164800};
        char d[30];
        int m;
        for (m = 0; m < 12; m++) {
            snprintf(d, sizeof(d), "Mon, 01 %.3s 2001 00:00:00 GMT", months + 3 * m);
            assert_true(http_parse_date(d, 29, &t));
            assert_int_equal(t, first_of_month_2001[m]);
        }
    }
    /* Years before 1 (proleptic Gregorian): negative era arithmetic. */
    assert_true(http_parse_date("Sat, 01 Jan 0000 00:00:00 GMT", 29, &t));
    assert_int_equal(t, -62167219200LL);
    assert_true(http_parse_date("Fri, 31 Dec 1969 23:59:59 GMT", 29, &t));
    assert_int_equal(t, -1);
}

/* Regression: a HelloRequest on an idle kept-alive connection. The client
 * must answer it (a no_renegotiation alert) during its zero-timeout idle
 * check; that send used to be refused for want of time, the alert stayed
 * in mbedTLS's buffer, the check read "idle", and the next request's write
 * flushed only the alert and reported the request sent: the call then
 * timed out with the server never having seen it. */
static void test_tls_hello_request_on_idle_connection(void **state)
{
    const srv_mode_t modes[] = {M_TLS_THEN_HELLO_REQ, M_TLS_SERVE};
    http_transport_t tr;
    http_tls_t *tls;
    http_client_t c;
    http_response_t r;
    srv_t *s;
    (void)state;
    s = srv_start(2, modes, true, false, 0);
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 2000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    http_response_free(&r);
    wait_event(s->sent[0]);
    sleep_ms(20);
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_int_equal(r.status_code, 200);
    http_response_free(&r);
    assert_int_equal(s->requests, 2); /* the second request reached the server */
    assert_int_equal(c.requests, 2);
    http_tls_free(tls);
    srv_stop(s);
}

/* Regression: a record with a bad MAC pending on an idle connection. The
 * idle check must not read "idle" (it used to: the fatal alert could not
 * be sent in zero time), and the client must not send the next request on
 * that connection: it reconnects and the request is answered. */
static void test_tls_bad_record_on_idle_connection(void **state)
{
    const srv_mode_t modes[] = {M_TLS_THEN_BAD_RECORD, M_TLS_SERVE};
    http_transport_t tr;
    http_tls_t *tls;
    http_client_t c;
    http_response_t r;
    uint8_t b[256];
    srv_t *s;
    int rc;
    (void)state;
    s = srv_start(2, modes, true, false, 0);
    assert_int_equal(tls_new(&tls, "localhost", s->port, CA_PEM, false, &tr), HTTP_OK);
    http_client_init(&c, &tr, &(http_limits_t){4096, 4096, 2000});
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    http_response_free(&r);
    wait_event(s->sent[0]);
    sleep_ms(20);
    rc = tr.recv(tr.ctx, b, sizeof(b), 0); /* what the client's idle check sees */
    assert_int_not_equal(rc, HTTP_ERR_TIMEOUT);
    assert_true(rc < 0);
    /* The transport keeps saying so: a second look is not "idle". */
    assert_int_equal(tr.recv(tr.ctx, b, sizeof(b), 0), HTTP_ERR_RESET);
    /* The client, finding the connection broken, reconnects. */
    assert_int_equal(http_client_request(&c, REQ, REQ_LEN, &r), HTTP_OK);
    assert_int_equal(r.status_code, 200);
    http_response_free(&r);
    assert_int_equal(c.connects, 2);
    assert_int_equal(s->requests, 2);
    http_tls_free(tls);
    srv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tcp_transport_arguments, teardown_servers),
        cmocka_unit_test_teardown(test_tcp_connect_failures, teardown_servers),
        cmocka_unit_test_teardown(test_tcp_keep_alive_over_loopback, teardown_servers),
        cmocka_unit_test_teardown(test_tcp_peer_close_timeout_and_reset, teardown_servers),
        cmocka_unit_test_teardown(test_tcp_recv_clean_close, teardown_servers),
        cmocka_unit_test_teardown(test_tls_new_arguments, teardown_servers),
        cmocka_unit_test_teardown(test_tls_new_out_of_memory, teardown_servers),
        cmocka_unit_test_teardown(test_tls_verified_keep_alive_and_resumption, teardown_servers),
        cmocka_unit_test_teardown(test_tls_no_resumption_and_idle_close_notify, teardown_servers),
        cmocka_unit_test_teardown(test_tls_certificate_refused, teardown_servers),
        cmocka_unit_test_teardown(test_tls_insecure_mode_warns, teardown_servers),
        cmocka_unit_test_teardown(test_tls_handshake_failures, teardown_servers),
        cmocka_unit_test_teardown(test_tls_established_stream_endings, teardown_servers),
        cmocka_unit_test_teardown(test_tls_stalled_peer_times_out, teardown_servers),
        cmocka_unit_test_teardown(test_client_status_names, teardown_servers),
        cmocka_unit_test_teardown(test_client_arguments_and_idempotent_close, teardown_servers),
        cmocka_unit_test_teardown(test_client_connect_and_send_failures, teardown_servers),
        cmocka_unit_test_teardown(test_client_reused_connection_send_failures, teardown_servers),
        cmocka_unit_test_teardown(test_client_idle_check_outcomes, teardown_servers),
        cmocka_unit_test_teardown(test_client_receive_endings, teardown_servers),
        cmocka_unit_test_teardown(test_client_headers_date_variants, teardown_servers),
        cmocka_unit_test_teardown(test_client_body_growth_and_limits, teardown_servers),
        cmocka_unit_test_teardown(test_client_out_of_memory, teardown_servers),
        cmocka_unit_test_teardown(test_parse_date_edges, teardown_servers),
        cmocka_unit_test_teardown(test_tls_hello_request_on_idle_connection, teardown_servers),
        cmocka_unit_test_teardown(test_tls_bad_record_on_idle_connection, teardown_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
