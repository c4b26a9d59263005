/* netif_lan9118: lwIP's Ethernet interface over the polled LAN9118 driver. */
#include "netif_lan9118.h"

#include <string.h>

#include "lwip/etharp.h"
#include "lwip/pbuf.h"

/* One frame in flight at a time, in or out (NO_SYS: one thread). A frame
 * received is copied into a pbuf before lwIP sees it, so an answer lwIP
 * sends from inside input (ARP) may reuse the buffer. */
static uint8_t frame[LAN9118_FRAME_MAX];

static err_t link_output(struct netif *netif, struct pbuf *p)
{
    lan9118_t *nic = netif->state;
    if (p->tot_len > sizeof frame)
        return ERR_BUF;
    (void)pbuf_copy_partial(p, frame, p->tot_len, 0);
    return lan9118_send(nic, frame, p->tot_len) == PORT_OK ? ERR_OK : ERR_IF;
}

err_t netif_lan9118_init(struct netif *netif)
{
    lan9118_t *nic = netif->state;
    netif->name[0] = 'e';
    netif->name[1] = '0';
    netif->output = etharp_output;
    netif->linkoutput = link_output;
    netif->mtu = 1500;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(netif->hwaddr, nic->mac, ETH_HWADDR_LEN);
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}

int netif_lan9118_poll(struct netif *netif)
{
    lan9118_t *nic = netif->state;
    int n = 0;
    /* A bounded batch: the FIFO holds about 10 KB, lwIP's pool PBUF_POOL_SIZE
     * buffers; what the pool cannot take waits in the FIFO or is dropped. */
    for (int i = 0; i < 8 && lan9118_rx_waiting(nic) > 0; i++) {
        size_t len = lan9118_recv(nic, frame, sizeof frame);
        if (len == 0)
            continue; /* a bad or oversized frame, dropped */
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
        if (p == NULL) {
            nic->rx_dropped++; /* no pool buffer: TCP will send it again */
            continue;
        }
        (void)pbuf_take(p, frame, (u16_t)len);
        if (netif->input(p, netif) != ERR_OK)
            pbuf_free(p);
        n++;
    }
    return n;
}
