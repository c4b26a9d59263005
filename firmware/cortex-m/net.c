/* The device's network: the board's LAN9118, lwIP with DHCP, and the names
 * of the built-in "hosts" file, then the port's transport plugged in. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "lan9118.h"
#include "netif_lan9118.h"
#include "port.h"
#include "port_lwip.h"

#define LOG(lvl, ...) port_log(lvl, "net", __VA_ARGS__)

/* Longest line of the hosts file and longest name in it (lwIP's DNS). */
#define APP_HOSTS_LINE_MAX 128u
#define APP_HOSTS_NAME_MAX 64u

static lan9118_t eth;

/* One "ADDRESS NAME [NAME...]" line (comments already cut): PORT_OK, or
 * PORT_ERR_ARG with the reason logged. */
static port_status_t hosts_line(char *line, unsigned lineno)
{
    static const char sep[] = " \t\r";
    const char *ip = NULL;
    unsigned names = 0;
    char *w = line + strspn(line, sep);
    while (*w) {
        size_t n = strcspn(w, sep);
        char *next = w[n] ? w + n + 1 : w + n;
        w[n] = '\0';
        if (ip == NULL) {
            ip = w;
        } else {
            port_status_t rc = n > APP_HOSTS_NAME_MAX ? PORT_ERR_ARG : port_lwip_add_host(w, ip);
            if (rc != PORT_OK) {
                LOG(PORT_LOG_ERROR, "hosts line %u: %s %s: %s", lineno, ip, w,
                    rc == PORT_ERR_ARG ? "not an IPv4 address and a name of up to 64 characters"
                                       : "more names than the host list holds");
                return PORT_ERR_ARG;
            }
            names++;
        }
        w = next + strspn(next, sep);
    }
    if (ip != NULL && names == 0) {
        LOG(PORT_LOG_ERROR, "hosts line %u: an address without a name", lineno);
        return PORT_ERR_ARG;
    }
    return PORT_OK;
}

/* The built-in hosts file, /etc/hosts style: names the resolver answers
 * without a DNS server (the test's endpoint; a board on a LAN with DNS
 * needs none). */
static port_status_t load_hosts(void)
{
    const app_blob_t *b = app_blob("hosts");
    char line[APP_HOSTS_LINE_MAX];
    size_t at = 0;
    unsigned lineno = 0;
    if (b == NULL)
        return PORT_OK;
    while (at < b->len) {
        const char *nl = memchr(b->data + at, '\n', b->len - at);
        size_t n = nl ? (size_t)(nl - (b->data + at)) : b->len - at;
        lineno++;
        if (n >= sizeof line) {
            LOG(PORT_LOG_ERROR, "hosts line %u: longer than %u bytes", lineno,
                (unsigned)sizeof line - 1u);
            return PORT_ERR_ARG;
        }
        memcpy(line, b->data + at, n);
        line[n] = '\0';
        at += n + 1;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        if (hosts_line(line, lineno) != PORT_OK)
            return PORT_ERR_ARG;
    }
    return PORT_OK;
}

port_status_t app_net_up(app_t *app, uint32_t timeout_ms)
{
    static const port_lwip_nic_t nic = {netif_lan9118_init, netif_lan9118_poll, &eth};
    char ip[16];
    port_status_t rc = lan9118_init(&eth, LAN9118_MPS2_BASE);
    if (rc != PORT_OK) {
        LOG(PORT_LOG_ERROR, "no Ethernet controller: %s", port_status_str(rc));
        return rc;
    }
    if (!lan9118_link_up(&eth))
        LOG(PORT_LOG_WARN, "Ethernet link down: waiting for DHCP all the same");
    port_status_t started = port_lwip_start(&nic, NULL, timeout_ms);
    if (started == PORT_ERR_TIMEOUT) {
        /* DHCP goes on asking in the background; until it is answered a
         * connect fails and the agent backs off, as in any outage. */
        LOG(PORT_LOG_WARN, "no address from DHCP within %lu ms: deliveries wait until one comes",
            (unsigned long)timeout_ms);
    } else if (started != PORT_OK) {
        LOG(PORT_LOG_ERROR, "lwIP did not start: %s", port_status_str(started));
        return started;
    }
    rc = load_hosts();
    if (rc != PORT_OK)
        return rc;
    port_lwip_address(ip);
    if (started == PORT_OK)
        LOG(PORT_LOG_INFO, "address %s (DHCP)", ip);
    port_cortexm_set_net(port_lwip_net());
    app->net_poll = port_lwip_poll;
    return PORT_OK;
}
