/*
 * port_cortexm.h — extras of the bare-metal Cortex-M port (QEMU mps2 boards):
 * start-up, the RAM-backed NOR flash, wall-clock setting and measurements.
 * Only firmware/cortex-m uses this; components see port.h alone.
 */
#ifndef CDNAGENT_PORT_CORTEXM_H
#define CDNAGENT_PORT_CORTEXM_H

#include "port.h"
#include "port_heap.h"

/* Core clock of the mps2 FPGA images (25 MHz); SysTick ticks at 1 kHz. */
#define PORT_CORTEXM_CORE_HZ 25000000u

/* Start SysTick and take the wall clock from the host (semihosting SYS_TIME,
 * the stand-in for a board's RTC). */
void port_cortexm_init(void);

/* Set the UTC wall clock (from a provisioning manifest or an HTTP Date
 * header); until then port_wall_clock reports PORT_ERR_NOT_SET. */
void port_cortexm_set_wall_clock(int64_t utc_seconds);

/* A NOR flash emulated in RAM with the rules of the real part (erase to
 * 0xFF, program only clears bits, aligned to write_size). storage must hold
 * sector_size * sector_count bytes; erase: start fully erased (false keeps
 * its content, as a reboot does). Returns PORT_ERR_ARG on bad geometry. */
port_status_t port_cortexm_ram_flash(port_flash_t *dev, uint8_t *storage, uint32_t sector_size,
                                     uint32_t sector_count, uint32_t write_size, bool erase);

/* The device key, as a factory would program it into OTP. The mps2 boards
 * have no OTP, so the image sets it at boot; until then port_device_key
 * reports PORT_ERR_NOT_SET. */
void port_cortexm_set_device_key(const uint8_t key[PORT_DEVICE_KEY_LEN], uint32_t key_id);

/* The network. The QEMU boards have no network stack here, so the TCP
 * calls of port.h go to whatever is plugged in (the firmware scenario plugs
 * in an in-image TLS peer; a board plugs in lwIP). Without one every
 * connect fails with PORT_ERR_UNSUPPORTED. Return conventions are those of
 * port_tcp_*. */
typedef struct {
    port_status_t (*connect)(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms);
    int (*send)(void *ctx, const void *buf, size_t len, uint32_t timeout_ms);
    int (*recv)(void *ctx, void *buf, size_t len, uint32_t timeout_ms);
    void (*close)(void *ctx);
    void *ctx;
} port_cortexm_net_t;
void port_cortexm_set_net(const port_cortexm_net_t *net);

/* Measurements for the footprint table. */
size_t port_cortexm_stack_peak(void);
/* Bytes reserved for the stack by the linker script. */
size_t port_cortexm_stack_size(void);
/* Repaint the unused stack so the next peak is measured from here. */
void port_cortexm_stack_reset(void);
/* Heap in use and its peak: port_heap.h. Bytes the allocator has taken from
 * the RAM so far (its high-water mark: what the heap really costs, allocator
 * overhead and fragmentation included): */
size_t port_cortexm_heap_arena(void);

#endif
