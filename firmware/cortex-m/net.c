/* The device's network: the board's LAN9118, lwIP with DHCP, and the names
 * of the built-in "hosts" file, then the port's transport plugged in. */
#include "app.h"
#include "lan9118.h"
#include "netif_lan9118.h"
#include "port.h"
#include "port_lwip.h"

#define LOG(lvl, ...) port_log(lvl, "net", __VA_ARGS__)

static lan9118_t eth;

/* The built-in hosts file, /etc/hosts style: names the resolver answers
 * without a DNS server (the test's endpoint; a board on a LAN with DNS
 * needs none). */
static port_status_t load_hosts(void)
{
    const app_blob_t *b = app_blob("hosts");
    unsigned line = 0;
    port_status_t rc = b ? port_lwip_add_hosts(b->data, b->len, &line) : PORT_OK;
    if (rc != PORT_OK)
        LOG(PORT_LOG_ERROR, "built-in hosts file, line %u: %s", line,
            rc == PORT_ERR_NOMEM ? "more names than the host list holds (MEMP_NUM_LOCALHOSTLIST)"
                                 : "not an IPv4 address followed by names of up to 64 characters");
    return rc;
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
