/* Bare-metal Cortex-M implementation of port.h (QEMU mps2-an385/an386). */
#include "port_cortexm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "semihost.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static volatile uint64_t ticks_ms;
static int64_t wall_base; /* UTC seconds at wall_base_ms, 0 = unset */
static uint64_t wall_base_ms;
static port_log_level_t log_threshold = PORT_LOG_INFO;

void port_cortexm_systick_handler(void);
void port_cortexm_systick_handler(void)
{
    ticks_ms++;
}

void port_cortexm_init(void)
{
    SYST_RVR = PORT_CORTEXM_CORE_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* core clock, interrupt, enable */
    {
        long now = semihost_time();
        if (now > 0)
            port_cortexm_set_wall_clock((int64_t)now);
    }
}

uint64_t port_monotonic_ms(void)
{
    /* 64-bit reads are not atomic on a 32-bit core: read until stable. */
    uint64_t a, b;
    do {
        a = ticks_ms;
        b = ticks_ms;
    } while (a != b);
    return a;
}

void port_cortexm_set_wall_clock(int64_t utc_seconds)
{
    wall_base = utc_seconds;
    wall_base_ms = port_monotonic_ms();
}

port_status_t port_wall_clock(int64_t *utc_seconds)
{
    if (utc_seconds == NULL)
        return PORT_ERR_ARG;
    if (wall_base == 0)
        return PORT_ERR_NOT_SET;
    *utc_seconds = wall_base + (int64_t)((port_monotonic_ms() - wall_base_ms) / 1000u);
    return PORT_OK;
}

/* The mps2 boards have no TRNG. Under QEMU the host's /dev/urandom is read
 * through semihosting, which is real entropy; a board port must replace
 * this with its TRNG. Without either, say so: never a predictable fallback. */
port_status_t port_random(void *buf, size_t len)
{
    static int handle = -1;
    if (handle < 0)
        handle = semihost_open_read("/dev/urandom");
    if (handle < 0)
        return PORT_ERR_UNSUPPORTED;
    return semihost_read(handle, buf, len) == len ? PORT_OK : PORT_ERR_IO;
}

void port_log_set_level(port_log_level_t threshold)
{
    log_threshold = threshold;
}

void port_log(port_log_level_t level, const char *component, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[160];
    int n;
    va_list ap;
    if (level > log_threshold)
        return;
    n = snprintf(line, sizeof(line), "cdnagent[%s] %s: ", component ? component : "-",
                 names[(unsigned)level < 4 ? (unsigned)level : 3]);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2; /* long lines are cut, not lost silently */
    line[n++] = '\n';
    semihost_write(line, (size_t)n);
}

/* The heap is port/port_common.c's counting heap over newlib-nano's malloc. */

/* ------------------------------------------------ RAM-backed NOR flash -- */

typedef struct {
    uint8_t *mem;
} ram_flash_t;

static ram_flash_t ram_flash_ctx;

static int flash_range_ok(const port_flash_t *dev, uint32_t addr, size_t len)
{
    uint64_t size = (uint64_t)dev->sector_size * dev->sector_count;
    return (uint64_t)addr + len <= size;
}

static port_status_t ram_flash_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    ram_flash_t *f = dev->ctx;
    if (!flash_range_ok(dev, addr, len))
        return PORT_ERR_ARG;
    memcpy(buf, f->mem + addr, len);
    return PORT_OK;
}

static port_status_t ram_flash_program(port_flash_t *dev, uint32_t addr, const void *buf, size_t len)
{
    ram_flash_t *f = dev->ctx;
    const uint8_t *src = buf;
    size_t i;
    if (!flash_range_ok(dev, addr, len) || addr % dev->write_size || len % dev->write_size)
        return PORT_ERR_ARG;
    for (i = 0; i < len; i++)
        f->mem[addr + i] &= src[i]; /* NOR: programming only clears bits */
    return PORT_OK;
}

static port_status_t ram_flash_erase(port_flash_t *dev, uint32_t sector)
{
    ram_flash_t *f = dev->ctx;
    if (sector >= dev->sector_count)
        return PORT_ERR_ARG;
    memset(f->mem + (size_t)sector * dev->sector_size, 0xFF, dev->sector_size);
    return PORT_OK;
}

port_status_t port_cortexm_ram_flash(port_flash_t *dev, uint8_t *storage, uint32_t sector_size,
                                     uint32_t sector_count, uint32_t write_size, bool erase)
{
    if (dev == NULL || storage == NULL || sector_size == 0 ||
        (sector_size & (sector_size - 1u)) != 0 || sector_count < 3 || write_size == 0 ||
        write_size > 32 || sector_size % write_size != 0)
        return PORT_ERR_ARG;
    ram_flash_ctx.mem = storage;
    if (erase)
        memset(storage, 0xFF, (size_t)sector_size * sector_count);
    dev->sector_size = sector_size;
    dev->sector_count = sector_count;
    dev->write_size = write_size;
    dev->read = ram_flash_read;
    dev->program = ram_flash_program;
    dev->erase = ram_flash_erase;
    dev->ctx = &ram_flash_ctx;
    return PORT_OK;
}

/* ---------------------------------------------------------- device key -- */

static uint8_t otp_key[PORT_DEVICE_KEY_LEN];
static uint32_t otp_key_id;
static bool otp_key_set;

void port_cortexm_set_device_key(const uint8_t key[PORT_DEVICE_KEY_LEN], uint32_t key_id)
{
    memcpy(otp_key, key, PORT_DEVICE_KEY_LEN);
    otp_key_id = key_id;
    otp_key_set = true;
}

port_status_t port_device_key(uint8_t key[PORT_DEVICE_KEY_LEN], uint32_t *key_id)
{
    if (key == NULL || key_id == NULL)
        return PORT_ERR_ARG;
    if (!otp_key_set)
        return PORT_ERR_NOT_SET;
    memcpy(key, otp_key, PORT_DEVICE_KEY_LEN);
    *key_id = otp_key_id;
    return PORT_OK;
}

/* ----------------------------------------------------------------- TCP -- */
/* One connection at a time is all the agent uses. */

static const port_cortexm_net_t *net;

void port_cortexm_set_net(const port_cortexm_net_t *n)
{
    net = n;
}

/* A board's stack reports statuses, not system error numbers. */
const char *port_os_error_str(int os_error)
{
    return os_error ? "network stack error" : "no reason given";
}

port_status_t port_tcp_connect(port_tcp_t *conn, const char *host, uint16_t port,
                               uint32_t timeout_ms)
{
    port_status_t rc;
    if (conn == NULL || host == NULL)
        return PORT_ERR_ARG;
    if (net == NULL)
        return PORT_ERR_UNSUPPORTED;
    rc = net->connect(net->ctx, host, port, timeout_ms);
    conn->handle = rc == PORT_OK ? 1 : 0;
    return rc;
}

int port_tcp_send(port_tcp_t *conn, const void *buf, size_t len, uint32_t timeout_ms)
{
    if (conn == NULL || conn->handle == 0 || net == NULL)
        return PORT_ERR_ARG;
    return net->send(net->ctx, buf, len, timeout_ms);
}

int port_tcp_recv(port_tcp_t *conn, void *buf, size_t len, uint32_t timeout_ms)
{
    if (conn == NULL || conn->handle == 0 || net == NULL)
        return PORT_ERR_ARG;
    return net->recv(net->ctx, buf, len, timeout_ms);
}

void port_tcp_close(port_tcp_t *conn)
{
    if (conn != NULL && conn->handle != 0 && net != NULL)
        net->close(net->ctx);
    if (conn != NULL)
        conn->handle = 0;
}
