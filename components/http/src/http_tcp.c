/* Plain TCP transport (tests and the local simulator only). */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "port.h"
#include "http_internal.h"

http_status_t http_map_port_status(port_status_t st)
{
    switch (st) {
    case PORT_ERR_DNS: return HTTP_ERR_DNS;
    case PORT_ERR_CONNECT:
    case PORT_ERR_UNSUPPORTED: /* a platform without a network cannot connect */
        return HTTP_ERR_CONNECT;
    case PORT_ERR_TIMEOUT: return HTTP_ERR_TIMEOUT;
    case PORT_ERR_CLOSED: return HTTP_ERR_CLOSED;
    case PORT_ERR_NOMEM: return HTTP_ERR_NOMEM;
    case PORT_ERR_ARG: return HTTP_ERR_ARG;
    default: return HTTP_ERR_RESET;
    }
}

void http_connect_why(char *buf, size_t cap, const char *host, uint16_t port, port_status_t st,
                      int os_error)
{
    if (st == PORT_ERR_DNS) {
        snprintf(buf, cap, "cannot resolve the host name %s", host);
    } else if (st == PORT_ERR_TIMEOUT) {
        snprintf(buf, cap, "no connection to %s port %u within the time limit", host,
                 (unsigned)port);
    } else {
        snprintf(buf, cap, "cannot connect to %s port %u: %s", host, (unsigned)port,
                 port_os_error_str(os_error));
    }
}

static void tcp_why(void *ctx, char *buf, size_t cap)
{
    const http_tcp_t *t = ctx;
    http_connect_why(buf, cap, t->host, t->port, t->failed, t->conn.os_error);
}

static int tcp_connect(void *ctx, uint32_t timeout_ms)
{
    http_tcp_t *t = ctx;
    port_status_t st;
    memset(&t->conn, 0, sizeof(t->conn));
    st = port_tcp_connect(&t->conn, t->host, t->port, timeout_ms);
    t->failed = st;
    if (st != PORT_OK) {
        return http_map_port_status(st);
    }
    t->open = true;
    return HTTP_OK;
}

static int tcp_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    http_tcp_t *t = ctx;
    int n = port_tcp_send(&t->conn, buf, len, timeout_ms);
    return n > 0 ? n : http_map_port_status(n);
}

static int tcp_recv(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    http_tcp_t *t = ctx;
    int n = port_tcp_recv(&t->conn, buf, len, timeout_ms);
    return n > 0 ? n : http_map_port_status(n);
}

static void tcp_close(void *ctx)
{
    http_tcp_t *t = ctx;
    if (t->open) {
        port_tcp_close(&t->conn);
        t->open = false;
    }
}

http_status_t http_tcp_transport(http_transport_t *transport, http_tcp_t *tcp, const char *host,
                                 uint16_t port)
{
    size_t n;
    if (transport == NULL || tcp == NULL || host == NULL) {
        return HTTP_ERR_ARG;
    }
    n = strlen(host);
    if (n == 0 || n > HTTP_MAX_HOST_LEN) {
        return HTTP_ERR_ARG;
    }
    memset(tcp, 0, sizeof(*tcp));
    memcpy(tcp->host, host, n + 1);
    tcp->port = port;
    memset(transport, 0, sizeof(*transport));
    transport->connect = tcp_connect;
    transport->send = tcp_send;
    transport->recv = tcp_recv;
    transport->close = tcp_close;
    transport->ctx = tcp;
    transport->why = tcp_why;
    return HTTP_OK;
}
