/*
 * port_lwip.h — the port's TCP transport on lwIP's raw API, NO_SYS=1: no
 * RTOS. Whoever waits (a connect, a send, a receive with a timeout) drives
 * the NIC and lwIP's timers itself, so the agent's poll(now) loop is the
 * only loop there is; port_lwip_poll lets an idle caller do the same.
 *
 * One connection at a time (the agent's one TLS connection). Statuses are
 * port.h's: PORT_ERR_DNS (no such name), PORT_ERR_CONNECT (refused or
 * unreachable), PORT_ERR_TIMEOUT, PORT_ERR_RESET (the peer reset, or lwIP
 * dropped the connection), PORT_ERR_CLOSED (the peer closed cleanly).
 */
#ifndef CDNAGENT_PORT_LWIP_H
#define CDNAGENT_PORT_LWIP_H

#include <stdint.h>

#include "lwip/netif.h"
#include "port.h"
#include "port_cortexm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The network interface: its lwIP init function (netif_add's) and a poll
 * that hands every received frame to netif->input, returning how many. */
typedef struct {
    err_t (*init)(struct netif *netif);
    int (*poll)(struct netif *netif);
    void *state; /* netif->state */
} port_lwip_nic_t;

/* How the interface gets its address: DHCP when ip is NULL, else static
 * (dotted quads). */
typedef struct {
    const char *ip, *netmask, *gateway;
} port_lwip_addr_t;

/* Start lwIP on nic and wait up to timeout_ms for an address: PORT_OK,
 * PORT_ERR_TIMEOUT (no DHCP answer), PORT_ERR_ARG. */
port_status_t port_lwip_start(const port_lwip_nic_t *nic, const port_lwip_addr_t *addr,
                              uint32_t timeout_ms);

/* The interface's IPv4 address as dotted quads into out (16 bytes). */
void port_lwip_address(char out[16]);

/* A name the resolver answers without asking a server (DNS's local host
 * list): PORT_OK or PORT_ERR_ARG. */
port_status_t port_lwip_add_host(const char *name, const char *ip);

/* Names from an /etc/hosts-style text (len bytes, need not end in NUL):
 * lines of an IPv4 address and one or more names of up to
 * PORT_LWIP_HOST_NAME_MAX characters, '#' comments, blank lines. Lines
 * before a bad one stay added. PORT_OK; PORT_ERR_ARG (a malformed line, a
 * line longer than PORT_LWIP_HOSTS_LINE_MAX) or PORT_ERR_NOMEM (more names
 * than the list holds), with *line set to the line's number from 1. */
#define PORT_LWIP_HOSTS_LINE_MAX 127u
#define PORT_LWIP_HOST_NAME_MAX 64u
port_status_t port_lwip_add_hosts(const char *text, size_t len, unsigned *line);

/* Move received frames into lwIP and run its due timers. */
void port_lwip_poll(void);

/* The transport to plug in with port_cortexm_set_net. */
const port_cortexm_net_t *port_lwip_net(void);

#ifdef __cplusplus
}
#endif

#endif
