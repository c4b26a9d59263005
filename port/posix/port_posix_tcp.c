/* POSIX sockets implementation of the TCP part of port.h. */
#define _GNU_SOURCE
#include "port.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* handle holds fd + 1 so that a zeroed port_tcp_t means "not open". */
static int conn_fd(const port_tcp_t *c)
{
    return (int)c->handle - 1;
}

static port_status_t wait_fd(int fd, short events, uint32_t timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    uint64_t deadline = port_monotonic_ms() + timeout_ms;
    for (;;) {
        uint64_t now = port_monotonic_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int r = poll(&pfd, 1, left);
        if (r > 0)
            return PORT_OK;
        if (r == 0)
            return PORT_ERR_TIMEOUT;
        if (errno != EINTR)
            return PORT_ERR_IO;
    }
}

static port_status_t connect_one(const struct addrinfo *ai, uint32_t timeout_ms, int *out_fd,
                                 int *os_error)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    int err = 0;
    socklen_t len = sizeof(err);
    port_status_t st;
    if (fd < 0) {
        *os_error = errno;
        return PORT_ERR_IO;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        *os_error = errno;
        close(fd);
        return PORT_ERR_CONNECT;
    }
    st = wait_fd(fd, POLLOUT, timeout_ms);
    if (st != PORT_OK) {
        close(fd);
        return st;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        *os_error = err ? err : errno;
        close(fd);
        return PORT_ERR_CONNECT;
    }
    {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    *out_fd = fd;
    return PORT_OK;
}

port_status_t port_tcp_connect(port_tcp_t *conn, const char *host, uint16_t port,
                               uint32_t timeout_ms)
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[8];
    port_status_t st = PORT_ERR_CONNECT;
    int fd = -1;
    if (conn == NULL || host == NULL)
        return PORT_ERR_ARG;
    /* A peer that resets while we write must give EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL)
        return PORT_ERR_DNS;
    conn->os_error = 0;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        st = connect_one(ai, timeout_ms, &fd, &conn->os_error);
        if (st == PORT_OK)
            break;
    }
    freeaddrinfo(res);
    if (st != PORT_OK)
        return st;
    conn->handle = (intptr_t)fd + 1;
    return PORT_OK;
}

const char *port_os_error_str(int os_error)
{
    return os_error ? strerror(os_error) : "no reason given";
}

int port_tcp_send(port_tcp_t *conn, const void *buf, size_t len, uint32_t timeout_ms)
{
    int fd;
    if (conn == NULL || conn->handle <= 0)
        return PORT_ERR_ARG;
    fd = conn_fd(conn);
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0)
            return (int)n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            port_status_t st = wait_fd(fd, POLLOUT, timeout_ms);
            if (st != PORT_OK)
                return st;
            continue;
        }
        return (errno == EPIPE || errno == ECONNRESET) ? PORT_ERR_RESET : PORT_ERR_IO;
    }
}

int port_tcp_recv(port_tcp_t *conn, void *buf, size_t len, uint32_t timeout_ms)
{
    int fd;
    if (conn == NULL || conn->handle <= 0)
        return PORT_ERR_ARG;
    fd = conn_fd(conn);
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n > 0)
            return (int)n;
        if (n == 0)
            return PORT_ERR_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            port_status_t st = wait_fd(fd, POLLIN, timeout_ms);
            if (st != PORT_OK)
                return st;
            continue;
        }
        return errno == ECONNRESET ? PORT_ERR_RESET : PORT_ERR_IO;
    }
}

void port_tcp_close(port_tcp_t *conn)
{
    if (conn == NULL || conn->handle <= 0)
        return;
    close(conn_fd(conn));
    conn->handle = 0;
}
