/* port_lwip: the port's TCP transport on lwIP's raw API; see port_lwip.h. */
#include "port_lwip.h"

#include <stdlib.h>
#include <string.h>

#include "lwip/dhcp.h"
#include "lwip/dns.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

/* The one connection: what lwIP's callbacks report, read by the waits. */
typedef struct {
    struct tcp_pcb *pcb;
    struct pbuf *rx; /* received, not yet read (a chain) */
    size_t rx_off;   /* bytes of rx already read */
    bool connected;
    bool peer_closed; /* FIN seen: what rx holds is the last */
    err_t failed;     /* ERR_OK, or why lwIP dropped the connection */
} conn_t;

static struct netif nif;
static const port_lwip_nic_t *nic;
static conn_t conn;

/* port_lwip_start checks the entropy source first; should it fail later,
 * the stack stops (like lwIP's own assertions) rather than hand out
 * predictable sequence numbers and ids. */
uint32_t port_lwip_rand(void)
{
    uint32_t r = 0;
    if (port_random(&r, sizeof r) != PORT_OK)
        abort();
    return r;
}

u32_t sys_now(void)
{
    return (u32_t)port_monotonic_ms();
}

void port_lwip_poll(void)
{
    if (nic != NULL)
        (void)nic->poll(&nif);
#if LWIP_NETIF_LOOPBACK
    netif_poll(&nif);
#endif
    sys_check_timeouts();
}

/* Poll until done(arg) or timeout_ms: true when done. */
static bool wait_for(bool (*done)(const void *arg), const void *arg, uint32_t timeout_ms)
{
    uint64_t end = port_monotonic_ms() + timeout_ms;
    for (;;) {
        port_lwip_poll();
        if (done(arg))
            return true;
        if (port_monotonic_ms() >= end)
            return false;
    }
}

static bool has_address(const void *arg)
{
    (void)arg;
    return !ip4_addr_isany_val(*netif_ip4_addr(&nif));
}

port_status_t port_lwip_start(const port_lwip_nic_t *n, const port_lwip_addr_t *addr,
                              uint32_t timeout_ms)
{
    ip4_addr_t ip, mask, gw;
    uint32_t probe;
    if (n == NULL || n->init == NULL || n->poll == NULL)
        return PORT_ERR_ARG;
    port_status_t rc = port_random(&probe, sizeof probe);
    if (rc != PORT_OK)
        return rc; /* no entropy: no unpredictable ports, ids or ISNs */
    ip4_addr_set_zero(&ip);
    ip4_addr_set_zero(&mask);
    ip4_addr_set_zero(&gw);
    if (addr != NULL && addr->ip != NULL &&
        (!ip4addr_aton(addr->ip, &ip) || !ip4addr_aton(addr->netmask, &mask) ||
         !ip4addr_aton(addr->gateway, &gw)))
        return PORT_ERR_ARG;
    lwip_init();
    nic = n;
    if (netif_add(&nif, &ip, &mask, &gw, n->state, n->init, ethernet_input) == NULL)
        return PORT_ERR_ARG;
    netif_set_default(&nif);
    netif_set_up(&nif);
    netif_set_link_up(&nif);
    if ((addr == NULL || addr->ip == NULL) && dhcp_start(&nif) != ERR_OK)
        return PORT_ERR_NOMEM;
    return wait_for(has_address, NULL, timeout_ms) ? PORT_OK : PORT_ERR_TIMEOUT;
}

void port_lwip_address(char out[16])
{
    (void)ip4addr_ntoa_r(netif_ip4_addr(&nif), out, 16);
}

port_status_t port_lwip_add_host(const char *name, const char *ip)
{
    ip_addr_t a;
    if (name == NULL || ip == NULL || !ipaddr_aton(ip, &a) || name[0] == '\0' ||
        strlen(name) > PORT_LWIP_HOST_NAME_MAX)
        return PORT_ERR_ARG;
    return dns_local_addhost(name, &a) == ERR_OK ? PORT_OK : PORT_ERR_NOMEM;
}

_Static_assert(PORT_LWIP_HOST_NAME_MAX <= DNS_LOCAL_HOSTLIST_MAX_NAMELEN,
               "a name the host list cannot hold");

/* One line of a hosts file, comment cut, NUL-terminated (modified). */
static port_status_t hosts_line(char *text)
{
    static const char sep[] = " \t\r";
    const char *ip = NULL;
    unsigned names = 0;
    char *w = text + strspn(text, sep);
    while (*w) {
        size_t n = strcspn(w, sep);
        char *next = w[n] ? w + n + 1 : w + n;
        w[n] = '\0';
        if (ip == NULL) {
            ip = w;
        } else {
            port_status_t rc = n > PORT_LWIP_HOST_NAME_MAX ? PORT_ERR_ARG
                                                           : port_lwip_add_host(w, ip);
            if (rc != PORT_OK)
                return rc;
            names++;
        }
        w = next + strspn(next, sep);
    }
    return ip != NULL && names == 0 ? PORT_ERR_ARG : PORT_OK;
}

port_status_t port_lwip_add_hosts(const char *text, size_t len, unsigned *line)
{
    char buf[PORT_LWIP_HOSTS_LINE_MAX + 1];
    size_t at = 0;
    *line = 0;
    while (at < len) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        ++*line;
        if (n >= sizeof buf)
            return PORT_ERR_ARG;
        memcpy(buf, text + at, n);
        buf[n] = '\0';
        at += n + 1;
        char *hash = memchr(buf, '#', n);
        if (hash != NULL)
            *hash = '\0';
        port_status_t rc = hosts_line(buf);
        if (rc != PORT_OK)
            return rc;
    }
    return PORT_OK;
}

/* ------------------------------------------------------- resolution -- */

/* The lookup in progress. lwIP may answer an abandoned lookup after its
 * timeout, so every callback carries the generation it was asked under
 * and a stale one is ignored. */
typedef struct {
    ip_addr_t addr;
    int state; /* 0 pending, 1 found, -1 no such name */
    uintptr_t gen;
} lookup_t;
static lookup_t lookup;

static void dns_found(const char *name, const ip_addr_t *addr, void *arg)
{
    (void)name;
    if ((uintptr_t)arg != lookup.gen || lookup.state != 0)
        return;
    if (addr != NULL)
        lookup.addr = *addr;
    lookup.state = addr != NULL ? 1 : -1;
}

static bool lookup_done(const void *arg)
{
    return ((const lookup_t *)arg)->state != 0;
}

static port_status_t resolve(const char *host, ip_addr_t *out, uint32_t timeout_ms)
{
    lookup.gen++;
    lookup.state = 0;
    ip_addr_set_zero(&lookup.addr);
    err_t e = dns_gethostbyname(host, &lookup.addr, dns_found, (void *)lookup.gen);
    if (e == ERR_OK) {
        *out = lookup.addr;
        return PORT_OK;
    }
    if (e != ERR_INPROGRESS)
        return PORT_ERR_DNS;
    if (!wait_for(lookup_done, &lookup, timeout_ms))
        return PORT_ERR_TIMEOUT;
    if (lookup.state < 0)
        return PORT_ERR_DNS;
    *out = lookup.addr;
    return PORT_OK;
}

/* ------------------------------------------------------- connection -- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    conn_t *c = arg;
    (void)pcb;
    if (p == NULL) {
        c->peer_closed = true;
        return ERR_OK;
    }
    if (err != ERR_OK) { /* (lwIP 2.1 never passes one with data) */
        pbuf_free(p);
        return ERR_OK; /* freed here: lwIP must not keep it */
    }
    if (c->rx == NULL)
        c->rx = p;
    else
        pbuf_cat(c->rx, p);
    return ERR_OK;
}

static void on_err(void *arg, err_t err)
{
    conn_t *c = arg;
    c->pcb = NULL; /* lwIP has freed it */
    c->failed = err != ERR_OK ? err : ERR_ABRT;
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    conn_t *c = arg;
    (void)pcb;
    c->connected = err == ERR_OK;
    return ERR_OK;
}

static void drop(conn_t *c)
{
    if (c->pcb != NULL) {
        tcp_arg(c->pcb, NULL);
        tcp_recv(c->pcb, NULL);
        tcp_err(c->pcb, NULL);
        if (tcp_close(c->pcb) != ERR_OK)
            tcp_abort(c->pcb);
    }
    if (c->rx != NULL)
        pbuf_free(c->rx);
    memset(c, 0, sizeof *c);
}

static bool connect_done(const void *arg)
{
    const conn_t *c = arg;
    return c->connected || c->failed != ERR_OK;
}

static port_status_t lw_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms)
{
    ip_addr_t a;
    uint64_t start = port_monotonic_ms();
    (void)ctx;
    drop(&conn);
    port_status_t rc = resolve(host, &a, timeout_ms);
    if (rc != PORT_OK)
        return rc;
    uint64_t spent = port_monotonic_ms() - start;
    conn.pcb = tcp_new();
    if (conn.pcb == NULL)
        return PORT_ERR_NOMEM;
    tcp_arg(conn.pcb, &conn);
    tcp_recv(conn.pcb, on_recv);
    tcp_err(conn.pcb, on_err);
    if (tcp_connect(conn.pcb, &a, port, on_connected) != ERR_OK) {
        drop(&conn);
        return PORT_ERR_CONNECT;
    }
    if (!wait_for(connect_done, &conn, spent >= timeout_ms ? 0 : timeout_ms - (uint32_t)spent)) {
        drop(&conn);
        return PORT_ERR_TIMEOUT;
    }
    if (!conn.connected) {
        drop(&conn); /* refused (a reset to the SYN) or unreachable */
        return PORT_ERR_CONNECT;
    }
    return PORT_OK;
}

static int failure(const conn_t *c)
{
    return c->failed != ERR_OK || c->pcb == NULL ? PORT_ERR_RESET : PORT_OK;
}

/* Room to queue more: send buffer and segment queue (tcp_write's own
 * checks; its memory for the segment is only known by trying). */
static bool can_queue(const struct tcp_pcb *pcb)
{
    return tcp_sndbuf(pcb) > 0 && tcp_sndqueuelen(pcb) < TCP_SND_QUEUELEN;
}

/* Queue what fits, waiting up to timeout_ms for room: ACKs free the send
 * buffer, the segment queue and lwIP's heap alike, so a short wait is
 * never reported as a failure the TLS layer would take as final. */
static int lw_send(void *ctx, const void *buf, size_t len, uint32_t timeout_ms)
{
    uint64_t end = port_monotonic_ms() + timeout_ms;
    (void)ctx;
    for (;;) {
        if (failure(&conn) != PORT_OK)
            return PORT_ERR_RESET;
        if (can_queue(conn.pcb)) {
            size_t n = tcp_sndbuf(conn.pcb);
            if (n > len)
                n = len;
            err_t e = tcp_write(conn.pcb, buf, (u16_t)n, TCP_WRITE_FLAG_COPY);
            if (e == ERR_OK) {
                (void)tcp_output(conn.pcb);
                return (int)n;
            }
            if (e != ERR_MEM)
                return PORT_ERR_RESET; /* the connection cannot send any more */
        }
        if (port_monotonic_ms() >= end)
            return PORT_ERR_TIMEOUT;
        port_lwip_poll();
    }
}

static bool can_recv(const void *arg)
{
    const conn_t *c = arg;
    return c->rx != NULL || c->peer_closed || c->failed != ERR_OK || c->pcb == NULL;
}

static int lw_recv(void *ctx, void *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    if (!can_recv(&conn))
        (void)wait_for(can_recv, &conn, timeout_ms);
    if (conn.rx != NULL) {
        size_t avail = conn.rx->tot_len - conn.rx_off;
        size_t n = avail < len ? avail : len;
        (void)pbuf_copy_partial(conn.rx, buf, (u16_t)n, (u16_t)conn.rx_off);
        conn.rx_off += n;
        if (conn.rx_off == conn.rx->tot_len) {
            pbuf_free(conn.rx);
            conn.rx = NULL;
            conn.rx_off = 0;
        }
        if (conn.pcb != NULL)
            tcp_recved(conn.pcb, (u16_t)n);
        return (int)n;
    }
    if (conn.failed != ERR_OK || (conn.pcb == NULL && !conn.peer_closed))
        return PORT_ERR_RESET;
    return conn.peer_closed ? PORT_ERR_CLOSED : PORT_ERR_TIMEOUT;
}

static void lw_close(void *ctx)
{
    (void)ctx;
    drop(&conn);
}

const port_cortexm_net_t *port_lwip_net(void)
{
    static const port_cortexm_net_t net = {lw_connect, lw_send, lw_recv, lw_close, NULL};
    return &net;
}
