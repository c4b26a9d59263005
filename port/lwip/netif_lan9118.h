/* netif_lan9118.h — lwIP's Ethernet interface over the LAN9118 driver:
 * netif->state is the lan9118_t. For port_lwip_nic_t's init and poll. */
#ifndef CDNAGENT_NETIF_LAN9118_H
#define CDNAGENT_NETIF_LAN9118_H

#include "lan9118.h"
#include "lwip/netif.h"

#ifdef __cplusplus
extern "C" {
#endif

err_t netif_lan9118_init(struct netif *netif);
/* Hand every waiting frame (a batch of at most 8) to netif->input. */
int netif_lan9118_poll(struct netif *netif);

#ifdef __cplusplus
}
#endif

#endif
