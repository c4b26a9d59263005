/*
 * util.h — the small helpers every component shares: little-endian load and
 * store (every on-flash record is little-endian), CRC-32, ASCII case folding
 * (HTTP field names, header keys, JSON codes), civil-date arithmetic (HTTP
 * Date, certificate validity).
 *
 * No state, no allocation, no I/O, nothing from the port: util requires
 * nothing, and every other component may require it. The load/store helpers
 * are static inline, so a component that uses two of them pays for two.
 */
#ifndef CDNAGENT_UTIL_H
#define CDNAGENT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The product's one version string (User-Agent, cdnagent --version). */
#define CDNAGENT_VERSION "0.1.0"

/* ------------------------------------------------------ little-endian -- */

static inline void util_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void util_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint16_t util_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t util_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* The low `bytes` bytes of v (1..8), for fields of odd widths. */
static inline void util_put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t util_get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    while (bytes--)
        v = (v << 8) | p[bytes];
    return v;
}

/* ------------------------------------------------------------ CRC-32 -- */

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32): crc is 0 to start, or
 * the result of the previous call to continue. UTIL_CRC32_TABLE picks speed
 * against flash: 16 (the default: a nibble table, 64 B, two lookups a byte)
 * or 256 (a byte table, 1 KB, one lookup a byte: about twice as fast, for
 * hosts and gateways whose store mounts read thousands of records). */
uint32_t util_crc32_update(uint32_t crc, const void *data, size_t len);

/* ----------------------------------------------------- ASCII letters -- */

/* A-Z to a-z; every other byte as it is (no locale, no UTF-8 folding: the
 * names compared are protocol tokens). */
static inline char util_ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* NUL-terminated strings equal but for the case of ASCII letters. */
bool util_ascii_eq_nocase(const char *a, const char *b);

/* The first n bytes of a and b equal but for the case of ASCII letters
 * (NUL bytes compare like any other). */
bool util_ascii_eq_nocase_n(const char *a, const char *b, size_t n);

/* ---------------------------------------------------- bounded writer -- */

/* Text built into a caller's buffer the snprintf way: every byte is
 * counted, what fits is written, so one pass with buf NULL measures and a
 * second into a buffer of that size writes the same bytes. */
typedef struct {
    char *buf;   /* NULL: measure only */
    size_t size; /* bytes of buf */
    size_t len;  /* bytes counted so far (may exceed size) */
} util_out_t;

void util_out_put(util_out_t *o, const void *data, size_t n);
void util_out_str(util_out_t *o, const char *s);
/* Where the next bytes go and how many fit there (NULL, 0 when none), for
 * a writer that writes them itself and then adds what it wrote to len. */
char *util_out_room(const util_out_t *o, size_t *n);
/* A NUL after the bytes when it fits (not counted); returns len. */
size_t util_out_end(util_out_t *o);

/* ----------------------------------------------------------- numbers -- */

/* n bytes as 2n lower-case hex digits and a NUL into out (digests shown
 * and compared as text). */
void util_hex_lower(const uint8_t *in, size_t n, char *out);

/* Decimal digits of v and a NUL into out; returns the digit count. By hand
 * because newlib-nano's printf (the Cortex-M build) knows no %llu or %zu. */
#define UTIL_U64_DEC_MAX 20u
size_t util_u64_to_dec(uint64_t v, char out[UTIL_U64_DEC_MAX + 1]);

/* ------------------------------------------------------ IP literals -- */

/* The address a host string spells, if it is an IP literal: an IPv4
 * dotted quad (four decimal parts 0-255, no leading zeros, which some
 * resolvers read as octal) gives 4 bytes, an IPv6 address (RFC 4291 text:
 * hex groups, one "::", an IPv4 tail) 16 bytes, in network order. Returns
 * the byte count, 0 when the n bytes of s are not an IP literal (a host
 * name), and then out is undefined. A host name is checked against DNS
 * names, an IP literal only against iPAddress names (RFC 6125). */
#define UTIL_IP_MAX 16u
size_t util_ip_parse(const char *s, size_t n, uint8_t out[UTIL_IP_MAX]);

/* Whether a resolver would read the n bytes of s as an IPv4 address: its
 * last label (before a final dot) all digits, or 0x and hex digits
 * ("127.1", "0177.0.0.1", "2130706433", "1.2.3.4."). Such a host that
 * util_ip_parse refuses is neither a name nor an address to check a
 * certificate against: it must be refused, not connected to. */
bool util_host_numeric(const char *s, size_t n);

/* ------------------------------------------------------- civil dates -- */

/* Days from 1970-01-01 to year-month-day of the proleptic Gregorian
 * calendar (month 1..12, day 1..31; negative before 1970). Exact for every
 * year an int64_t day count holds; no table, no time zone. */
int64_t util_days_from_civil(int64_t year, unsigned month, unsigned day);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_UTIL_H */
