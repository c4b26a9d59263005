/*
 * port.h — the platform contract.
 *
 * This header is the only door from components/ to the platform. Every
 * component reaches time, entropy, logging, memory, flash and the network
 * through these calls and nothing else, so the same component sources build
 * for Linux (port/posix), lwIP (port/lwip) and bare-metal Cortex-M
 * (port/cortex-m).
 *
 * Conventions
 *  - Calls return port_status_t (0 = success, negative = error) unless
 *    stated otherwise. Byte-count calls return the count (>= 0) or a
 *    negative port_status_t.
 *  - No call blocks longer than the timeout it is given.
 *  - Handles (flash devices, TCP connections) are caller-owned structs, so
 *    a port never has to allocate to hand one out.
 */
#ifndef CDNAGENT_PORT_H
#define CDNAGENT_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PORT_OK = 0,
    PORT_ERR_ARG = -1,         /* bad argument from the caller */
    PORT_ERR_IO = -2,          /* device or socket I/O failed */
    PORT_ERR_TIMEOUT = -3,     /* nothing happened within the timeout */
    PORT_ERR_DNS = -4,         /* host name did not resolve */
    PORT_ERR_CONNECT = -5,     /* TCP connect refused or unreachable */
    PORT_ERR_CLOSED = -6,      /* peer closed the connection cleanly */
    PORT_ERR_RESET = -7,       /* connection reset / broken */
    PORT_ERR_NOMEM = -8,       /* allocation failed */
    PORT_ERR_UNSUPPORTED = -9, /* not available on this platform */
    PORT_ERR_NOT_SET = -10,    /* e.g. wall clock never set */
} port_status_t;

/* Human-readable name of a status, e.g. "timeout". Never NULL. */
const char *port_status_str(int status);

/* ---------------------------------------------------------------- time -- */

/* Milliseconds from an arbitrary origin; never goes backwards, never jumps
 * when the wall clock is set. Wraps only after 584 million years. */
uint64_t port_monotonic_ms(void);

/* UTC wall clock in seconds since 1970-01-01T00:00:00Z.
 * Returns PORT_OK, or PORT_ERR_NOT_SET when the device has no trustworthy
 * time yet (no RTC, never synced): callers must report that instead of
 * signing requests with 1970. */
port_status_t port_wall_clock(int64_t *utc_seconds);

/* ------------------------------------------------------------- entropy -- */

/* Fill buf with len bytes from a real entropy source (getrandom(2) on
 * Linux, the TRNG on devices). PORT_ERR_UNSUPPORTED if there is none: a port
 * must never fall back to a predictable generator silently. */
port_status_t port_random(void *buf, size_t len);

/* ---------------------------------------------------------- device key -- */

/* The device key that seals secrets at rest (AES-256-GCM, components/vault):
 * 32 bytes and an id naming it, from somewhere that is NOT the config flash,
 * so a copied flash image alone reveals no secret. Linux: a key file with
 * mode 0600 (port/posix); devices: an OTP area or a secure element.
 * Returns PORT_OK, PORT_ERR_NOT_SET when the device has no key yet, or
 * PORT_ERR_IO. Callers wipe the key from memory after use. */
#define PORT_DEVICE_KEY_LEN 32u
port_status_t port_device_key(uint8_t key[PORT_DEVICE_KEY_LEN], uint32_t *key_id);

/* ------------------------------------------------------------- logging -- */

typedef enum {
    PORT_LOG_ERROR = 0,
    PORT_LOG_WARN = 1,
    PORT_LOG_INFO = 2,
    PORT_LOG_DEBUG = 3,
} port_log_level_t;

/* Emit one log line. component is a short tag ("sign", "store"). The line
 * must never contain secrets: callers format only public data. The port
 * decides where it goes (stderr, semihosting, a ring buffer) and may drop
 * levels above its configured threshold. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void port_log(port_log_level_t level, const char *component, const char *fmt, ...);

/* Threshold for port_log: lines with level > threshold are dropped. */
void port_log_set_level(port_log_level_t threshold);

/* -------------------------------------------------------------- memory -- */

/* Heap used by components, mbedTLS and cJSON. Ports route these to their
 * allocator and may count them (peak heap figures come from here). */
void *port_malloc(size_t size);
void *port_calloc(size_t count, size_t size);
void port_free(void *ptr);

/* --------------------------------------------------------------- flash -- */

/* A NOR-style flash device: erase sets a whole sector to 0xFF, program
 * can only clear bits (1 -> 0) and must be aligned to write_size and a
 * multiple of it. Addresses are byte offsets from the start of the device.
 * The struct is filled by a backend constructor (port/posix/port_posix.h,
 * a test's emulated flash, a board driver) and then used through the three
 * calls below; components never look at ctx. */
typedef struct port_flash port_flash_t;
struct port_flash {
    uint32_t sector_size;  /* bytes per erase sector, power of two */
    uint32_t sector_count; /* number of sectors */
    uint32_t write_size;   /* program granularity in bytes, 1..32 */
    port_status_t (*read)(port_flash_t *dev, uint32_t addr, void *buf, size_t len);
    port_status_t (*program)(port_flash_t *dev, uint32_t addr, const void *buf, size_t len);
    port_status_t (*erase)(port_flash_t *dev, uint32_t sector);
    void *ctx;
};

/* --------------------------------------------------------------- TCP -- */

/* A TCP connection. Caller-owned; zero it before port_tcp_connect. */
typedef struct {
    intptr_t handle; /* port-private: fd on POSIX, pcb/slot index on lwIP */
    int os_error;    /* the system's reason for the last failed connect (errno on
                        POSIX), 0 when none or unknown: see port_os_error_str */
} port_tcp_t;

/* A system error number as words ("Connection refused"); never NULL. */
const char *port_os_error_str(int os_error);

/* Resolve host (name or literal address) and connect within timeout_ms.
 * Returns PORT_OK, PORT_ERR_DNS, PORT_ERR_CONNECT or PORT_ERR_TIMEOUT. */
port_status_t port_tcp_connect(port_tcp_t *conn, const char *host, uint16_t port,
                               uint32_t timeout_ms);

/* Send up to len bytes; returns the number sent (>0), or PORT_ERR_TIMEOUT,
 * PORT_ERR_RESET, PORT_ERR_CLOSED. May send fewer than len. */
int port_tcp_send(port_tcp_t *conn, const void *buf, size_t len, uint32_t timeout_ms);

/* Receive up to len bytes; returns the number received (>0),
 * PORT_ERR_CLOSED when the peer closed cleanly, PORT_ERR_TIMEOUT when nothing
 * arrived within timeout_ms, or PORT_ERR_RESET. timeout_ms 0 must not block:
 * it reports what is already pending (the HTTP client checks an idle
 * kept-alive connection that way before reusing it). */
int port_tcp_recv(port_tcp_t *conn, void *buf, size_t len, uint32_t timeout_ms);

/* Close and release the connection. Safe to call twice. */
void port_tcp_close(port_tcp_t *conn);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_PORT_H */
