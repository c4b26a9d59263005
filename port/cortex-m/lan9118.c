/* lan9118: a polled LAN9118 driver; see lan9118.h and lan9118.md. */
#include "lan9118.h"

#include <stdbool.h>
#include <string.h>

/* Registers (32-bit accesses only). */
#define RX_DATA 0x00u
#define TX_DATA 0x20u
#define RX_STATUS 0x40u
#define TX_STATUS 0x48u
#define ID_REV 0x50u
#define IRQ_CFG 0x54u
#define INT_STS 0x58u
#define INT_EN 0x5Cu
#define BYTE_TEST 0x64u
#define TX_CFG 0x70u
#define HW_CFG 0x74u
#define RX_FIFO_INF 0x7Cu
#define TX_FIFO_INF 0x80u
#define PMT_CTRL 0x84u
#define MAC_CSR_CMD 0xA4u
#define MAC_CSR_DATA 0xA8u

#define BYTE_TEST_VALUE 0x87654321u
#define HW_CFG_SRST 0x1u
#define PMT_READY 0x1u
#define TX_CFG_ON_SAO 0x6u /* TX_ON, and let TX status overrun: nobody reads it */
#define CSR_BUSY 0x80000000u
#define CSR_READ 0x40000000u
#define MAC_CR 1u
#define MAC_ADDRH 2u
#define MAC_ADDRL 3u
#define MII_ACC 6u
#define MII_DATA 7u
#define MAC_CR_ON 0x0010000Cu /* full duplex, TX and RX enabled, not promiscuous */
#define PHY_BMSR 1u
#define BMSR_LINK 0x4u
#define TXA_FIRST_LAST 0x3000u
#define RX_LEN(st) (((st) >> 16) & 0x3FFFu)
#define RX_ERROR 0x8000u
#define CRC_LEN 4u
#define SPIN_MAX 100000u /* polls of a busy bit before giving up */

static volatile uint32_t *reg(const lan9118_t *nic, uint32_t off)
{
    return (volatile uint32_t *)(nic->base + off);
}

static int spin_until_clear(const lan9118_t *nic, uint32_t off, uint32_t bit)
{
    for (uint32_t i = 0; i < SPIN_MAX; i++)
        if ((*reg(nic, off) & bit) == 0)
            return 1;
    return 0;
}

/* The MAC's registers sit behind a command register: every access waits
 * for it, and a wait that never ends is the caller's error to report. */
static bool mac_read(const lan9118_t *nic, uint32_t index, uint32_t *v)
{
    *reg(nic, MAC_CSR_CMD) = CSR_BUSY | CSR_READ | index;
    if (!spin_until_clear(nic, MAC_CSR_CMD, CSR_BUSY))
        return false;
    *v = *reg(nic, MAC_CSR_DATA);
    return true;
}

static bool mac_write(const lan9118_t *nic, uint32_t index, uint32_t v)
{
    *reg(nic, MAC_CSR_DATA) = v;
    *reg(nic, MAC_CSR_CMD) = CSR_BUSY | index;
    return spin_until_clear(nic, MAC_CSR_CMD, CSR_BUSY);
}

port_status_t lan9118_init(lan9118_t *nic, uintptr_t base)
{
    memset(nic, 0, sizeof *nic);
    nic->base = base;
    uint32_t id = *reg(nic, ID_REV) >> 16;
    /* 0x0118: QEMU's model; 0x9220: the LAN9220 of a real MPS2, the same
     * registers for what this driver uses */
    if (*reg(nic, BYTE_TEST) != BYTE_TEST_VALUE || (id != 0x0118u && id != 0x9220u))
        return PORT_ERR_UNSUPPORTED;
    *reg(nic, HW_CFG) = HW_CFG_SRST;
    if (!spin_until_clear(nic, HW_CFG, HW_CFG_SRST))
        return PORT_ERR_TIMEOUT;
    for (uint32_t i = 0; (*reg(nic, PMT_CTRL) & PMT_READY) == 0; i++)
        if (i == SPIN_MAX)
            return PORT_ERR_TIMEOUT;
    *reg(nic, INT_EN) = 0; /* polled: no interrupt */
    *reg(nic, IRQ_CFG) = 0;
    *reg(nic, INT_STS) = 0xFFFFFFFFu;
    uint32_t lo, hi;
    if (!mac_read(nic, MAC_ADDRL, &lo) || !mac_read(nic, MAC_ADDRH, &hi))
        return PORT_ERR_TIMEOUT;
    for (int i = 0; i < 4; i++)
        nic->mac[i] = (uint8_t)(lo >> (8 * i));
    nic->mac[4] = (uint8_t)hi;
    nic->mac[5] = (uint8_t)(hi >> 8);
    *reg(nic, TX_CFG) = TX_CFG_ON_SAO;
    return mac_write(nic, MAC_CR, MAC_CR_ON) ? PORT_OK : PORT_ERR_TIMEOUT;
}

int lan9118_link_up(lan9118_t *nic)
{
    uint32_t v = 1u;
    if (!mac_write(nic, MII_ACC, (1u << 11) | (PHY_BMSR << 6) | 1u))
        return 0;
    for (uint32_t i = 0; (v & 1u) != 0; i++)
        if (i == SPIN_MAX || !mac_read(nic, MII_ACC, &v))
            return 0; /* the PHY does not answer: no link to report */
    return mac_read(nic, MII_DATA, &v) && (v & BMSR_LINK) != 0;
}

port_status_t lan9118_send(lan9118_t *nic, const void *frame, size_t len)
{
    const uint8_t *p = frame;
    if (frame == NULL || len < 14u || len > LAN9118_FRAME_MAX)
        return PORT_ERR_ARG;
    /* Room for the two command words and the data (TDFREE counts bytes). */
    for (uint32_t i = 0; (*reg(nic, TX_FIFO_INF) & 0xFFFFu) < len + 8u; i++)
        if (i == SPIN_MAX)
            return PORT_ERR_TIMEOUT;
    *reg(nic, TX_DATA) = TXA_FIRST_LAST | (uint32_t)len;
    *reg(nic, TX_DATA) = ((uint32_t)(nic->tx_frames & 0xFFFFu) << 16) | (uint32_t)len;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t w = 0;
        for (size_t k = 0; k < 4 && i + k < len; k++)
            w |= (uint32_t)p[i + k] << (8 * k);
        *reg(nic, TX_DATA) = w;
    }
    /* TX status is never needed (TXSAO lets it overrun); drain what is
     * there so a real chip's FIFO does not fill. */
    while ((*reg(nic, TX_FIFO_INF) >> 16) & 0xFFu)
        (void)*reg(nic, TX_STATUS);
    nic->tx_frames++;
    return PORT_OK;
}

unsigned lan9118_rx_waiting(lan9118_t *nic)
{
    return (*reg(nic, RX_FIFO_INF) >> 16) & 0xFFu;
}

size_t lan9118_recv(lan9118_t *nic, void *buf, size_t cap)
{
    uint8_t *out = buf;
    if (((*reg(nic, RX_FIFO_INF) >> 16) & 0xFFu) == 0)
        return 0;
    uint32_t st = *reg(nic, RX_STATUS);
    size_t len = RX_LEN(st), words = (len + 3u) / 4u;
    /* Every word of the frame is read, always: the FIFO counts words per
     * frame, and QEMU's fast-forward does not keep that count. */
    int keep = (st & RX_ERROR) == 0 && len > CRC_LEN && len - CRC_LEN <= cap;
    for (size_t i = 0; i < words; i++) {
        uint32_t w = *reg(nic, RX_DATA);
        for (size_t k = 0; keep && k < 4 && 4 * i + k < len - CRC_LEN; k++)
            out[4 * i + k] = (uint8_t)(w >> (8 * k));
    }
    if (!keep) {
        nic->rx_dropped++;
        return 0;
    }
    nic->rx_frames++;
    return len - CRC_LEN;
}
