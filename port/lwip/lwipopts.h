/*
 * lwipopts.h — lwIP 2.1 sized for the agent: NO_SYS (no RTOS: the agent's
 * poll loop drives the NIC and lwIP's timers), raw API only, IPv4, one TLS
 * connection at a time.
 *
 * RAM (static, counted by make size):
 *   MEM_SIZE          6 KB   lwIP's heap: outgoing segments (TCP_SND_BUF)
 *   PBUF_POOL         6 x 1,536 B  incoming frames (TCP_WND and ARP/DHCP)
 *   MEMP pools        2 TCP PCBs (one connection and one in TIME_WAIT),
 *                     1 listening PCB, 4 UDP PCBs (DHCP, DNS), segments
 */
#ifndef CDNAGENT_LWIPOPTS_H
#define CDNAGENT_LWIPOPTS_H

#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_ARP 1
#define LWIP_ETHERNET 1
#define LWIP_ICMP 1
#define LWIP_RAW 0
#define LWIP_UDP 1
#define LWIP_TCP 1
#define LWIP_DHCP 1
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
#define LWIP_DNS 1
#define LWIP_STATS 0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK 0
#define LWIP_SINGLE_NETIF 1
#define LWIP_HAVE_LOOPIF 0
#define LWIP_ALTCP 0

/* Memory: lwIP's own heap and pools, static, word aligned. */
#define MEM_ALIGNMENT 4
#define MEM_SIZE (6 * 1024)
#define MEMP_NUM_TCP_PCB 2
#define MEMP_NUM_TCP_PCB_LISTEN 1
#define MEMP_NUM_UDP_PCB 4
#define MEMP_NUM_TCP_SEG 16
#define MEMP_NUM_PBUF 8
#define MEMP_NUM_ARP_QUEUE 4
#define PBUF_POOL_SIZE 6
#define PBUF_POOL_BUFSIZE 1536

/* TCP: a full-size segment, a window of two. */
#define TCP_MSS 1460
#define TCP_WND (2 * TCP_MSS)
#define TCP_SND_BUF (2 * TCP_MSS)
#define TCP_SND_QUEUELEN (4 * TCP_SND_BUF / TCP_MSS)
#define LWIP_TCP_KEEPALIVE 0

/* DNS: a local host list answers first (the test names its endpoint). */
#define DNS_TABLE_SIZE 2
#define DNS_LOCAL_HOSTLIST 1
#define DNS_LOCAL_HOSTLIST_IS_DYNAMIC 1
#define DNS_MAX_NAME_LENGTH 64

#define LWIP_CHECKSUM_ON_COPY 0
#define LWIP_DEBUG 0

#endif
