/*
 * lwipopts.h — lwIP 2.1 sized for the agent: NO_SYS (no RTOS: the agent's
 * poll loop drives the NIC and lwIP's timers), raw API only, IPv4, one TLS
 * connection at a time.
 *
 * The budget: the networked image must fit a 64 KB-RAM part beside mbedTLS's
 * 16 KB incoming record (make size). What lwIP holds, all static:
 *   MEM_SIZE      3 KB     lwIP's heap: outgoing segments (TCP_SND_BUF of
 *                          2,144 B), DHCP and DNS datagrams
 *   PBUF_POOL     5 x 608 B incoming frames: a window of three 536-byte
 *                          segments, and room for ARP, DHCP and an ACK
 *   MEMP pools    2 TCP PCBs (one connection and one in TIME_WAIT), 4 UDP
 *                          PCBs (DHCP, DNS), 8 segments, 4 ARP entries
 * Choices that cost throughput, not function:
 *   TCP_MSS 536   the smallest every IPv4 host must accept: incoming frames
 *                 fit a 608-byte pool buffer (a larger frame, not TCP's,
 *                 takes a chain of them); the agent's requests and answers
 *                 are a few KB, so the segment count barely matters
 *   no IP fragments or reassembly: TCP never needs them, and a fragmented
 *                 datagram (a DNS answer over 1,500 B) is dropped
 *   no out-of-order queue: a segment that overtakes another is dropped and
 *                 sent again, instead of holding pool buffers
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
/* The on-target tests (CDNAGENT_TARGET) talk to themselves, to see a
 * reset: packets to the interface's own address loop back. The product
 * has no use for it. */
#ifdef CDNAGENT_TARGET
#define LWIP_NETIF_LOOPBACK 1
#endif
#define LWIP_ALTCP 0

/* Memory: lwIP's own heap and pools, static, word aligned. */
#define MEM_ALIGNMENT 4
#define MEM_SIZE (3 * 1024)
#define MEMP_NUM_TCP_PCB 2
#define MEMP_NUM_TCP_PCB_LISTEN 1
#define MEMP_NUM_UDP_PCB 4
#define MEMP_NUM_TCP_SEG 8
#define MEMP_NUM_PBUF 4
#define MEMP_NUM_ARP_QUEUE 4
#define ARP_TABLE_SIZE 4
#define PBUF_POOL_SIZE 5
/* one 536-byte segment with its TCP, IP and Ethernet headers */
#define PBUF_POOL_BUFSIZE LWIP_MEM_ALIGN_SIZE(TCP_MSS + 40 + PBUF_LINK_HLEN)
#define IP_REASSEMBLY 0
#define IP_FRAG 0

/* TCP: small segments, a window of three. */
#define TCP_MSS 536
#define TCP_WND (3 * TCP_MSS)
#define TCP_SND_BUF (4 * TCP_MSS)
#define TCP_SND_QUEUELEN (2 * TCP_SND_BUF / TCP_MSS)
#define TCP_QUEUE_OOSEQ 0
#define LWIP_TCP_KEEPALIVE 0

/* DNS: a local host list answers first (the test names its endpoint). */
#define DNS_TABLE_SIZE 2
#define DNS_LOCAL_HOSTLIST 1
#define DNS_LOCAL_HOSTLIST_IS_DYNAMIC 1
#define DNS_MAX_NAME_LENGTH 64

#define LWIP_CHECKSUM_ON_COPY 0
#define LWIP_DEBUG 0

#endif
