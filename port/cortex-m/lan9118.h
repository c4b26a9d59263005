/*
 * lan9118.h — a polled driver for the SMSC LAN9118 Ethernet controller of
 * the MPS2 boards (QEMU mps2-an385/an386: base 0x40200000, IRQ 13, which
 * this driver leaves off). See lan9118.md for what it supports.
 */
#ifndef CDNAGENT_LAN9118_H
#define CDNAGENT_LAN9118_H

#include <stddef.h>
#include <stdint.h>

#include "port.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LAN9118_MPS2_BASE 0x40200000u
#define LAN9118_FRAME_MAX 1518u /* Ethernet frame without its CRC */

typedef struct {
    uintptr_t base;
    uint8_t mac[6];
    uint32_t rx_frames, rx_dropped, tx_frames;
} lan9118_t;

/* Check the chip (BYTE_TEST, ID_REV), soft-reset it, read its MAC address,
 * and turn the transmitter and receiver on (full duplex, own address and
 * broadcast). PORT_OK, or PORT_ERR_UNSUPPORTED when no LAN9118 answers,
 * PORT_ERR_TIMEOUT when the reset does not finish. */
port_status_t lan9118_init(lan9118_t *nic, uintptr_t base);

/* Is the PHY's link up (BMSR)? */
int lan9118_link_up(lan9118_t *nic);

/* Send one frame (14..LAN9118_FRAME_MAX bytes, without CRC): PORT_OK, or
 * PORT_ERR_ARG, PORT_ERR_TIMEOUT (no room in the TX FIFO). */
port_status_t lan9118_send(lan9118_t *nic, const void *frame, size_t len);

/* Frames waiting in the RX FIFO. */
unsigned lan9118_rx_waiting(lan9118_t *nic);

/* Take one received frame into buf (cap bytes): its length without the CRC,
 * 0 when none is waiting. A frame longer than cap is read out and dropped
 * (counted), and 0 returned for it. */
size_t lan9118_recv(lan9118_t *nic, void *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
