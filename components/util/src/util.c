/* util.c — the shared helpers that are not inline (see util.h). */
#include "util.h"

#include <string.h>

#ifndef UTIL_CRC32_TABLE
#define UTIL_CRC32_TABLE 16
#endif
#if UTIL_CRC32_TABLE == 256
uint32_t util_crc32_update(uint32_t crc, const void *data, size_t len)
{
    /* clang-format off */
    static const uint32_t tab[256] = {
        0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
        0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
        0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
        0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
        0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
        0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
        0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
        0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
        0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
        0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
        0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
        0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
        0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
        0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
        0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
        0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
        0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
        0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
        0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
        0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
        0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
        0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
        0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
        0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
        0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
        0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
        0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
        0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
        0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
        0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
        0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
        0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
        0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
        0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
        0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
        0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
        0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
        0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
        0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
        0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
        0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
        0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
        0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du};
    /* clang-format on */
    const uint8_t *p = data;
    crc = ~crc;
    while (len--)
        crc = (crc >> 8) ^ tab[(crc ^ *p++) & 0xFFu];
    return ~crc;
}
#elif UTIL_CRC32_TABLE == 16
uint32_t util_crc32_update(uint32_t crc, const void *data, size_t len)
{
    /* clang-format off */
    static const uint32_t tab[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};
    /* clang-format on */
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ tab[crc & 15u];
        crc = (crc >> 4) ^ tab[crc & 15u];
    }
    return ~crc;
}
#else
#error "UTIL_CRC32_TABLE must be 16 or 256"
#endif

bool util_ascii_eq_nocase(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (util_ascii_lower(*a) != util_ascii_lower(*b))
            return false;
    return *a == *b;
}

bool util_ascii_eq_nocase_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (util_ascii_lower(a[i]) != util_ascii_lower(b[i]))
            return false;
    return true;
}

void util_out_put(util_out_t *o, const void *data, size_t n)
{
    size_t room;
    char *at = util_out_room(o, &room);
    if (at)
        memcpy(at, data, n < room ? n : room);
    o->len += n;
}

void util_out_str(util_out_t *o, const char *s)
{
    util_out_put(o, s, strlen(s));
}

char *util_out_room(const util_out_t *o, size_t *n)
{
    *n = o->buf && o->len < o->size ? o->size - o->len : 0;
    return *n ? o->buf + o->len : NULL;
}

size_t util_out_end(util_out_t *o)
{
    if (o->buf && o->len < o->size)
        o->buf[o->len] = '\0';
    return o->len;
}

size_t util_u64_to_dec(uint64_t v, char out[UTIL_U64_DEC_MAX + 1])
{
    char rev[UTIL_U64_DEC_MAX];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* Howard Hinnant's days_from_civil: years counted from March, so the leap
 * day ends a year, in 400-year eras of 146,097 days. */
int64_t util_days_from_civil(int64_t year, unsigned month, unsigned day)
{
    int64_t y = year - (month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153u * (month > 2 ? month - 3 : month + 9) + 2u) / 5u + day - 1u;
    unsigned doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* ------------------------------------------------------ IP literals -- */

static bool util_ipv4_parse(const char *s, size_t n, uint8_t out[4])
{
    size_t i = 0;
    for (unsigned part = 0; part < 4; part++) {
        unsigned v = 0, digits = 0;
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
        while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[i - digits] == '0'))
            return false;
        out[part] = (uint8_t)v;
    }
    return i == n;
}

static int util_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = util_ascii_lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One group of 1-4 hex digits at s[*i]; false when none (or too many). */
static bool util_ipv6_group(const char *s, size_t n, size_t *i, uint16_t *v)
{
    unsigned digits = 0;
    *v = 0;
    while (*i < n && util_hex_digit(s[*i]) >= 0) {
        if (++digits > 4)
            return false;
        *v = (uint16_t)(*v << 4 | (uint16_t)util_hex_digit(s[*i]));
        (*i)++;
    }
    return digits > 0;
}

/* Groups before and after the "::" are collected apart, then the gap
 * between them is zero-filled. */
static bool util_ipv6_parse(const char *s, size_t n, uint8_t out[16])
{
    uint8_t b[16];
    size_t i = 0, len = 0, gap = SIZE_MAX;
    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    }
    while (i < n && len < 16) {
        uint16_t v;
        if (len <= 12 && memchr(s + i, '.', n - i) != NULL &&
            memchr(s + i, ':', n - i) == NULL) { /* the IPv4 tail */
            if (!util_ipv4_parse(s + i, n - i, b + len))
                return false;
            len += 4;
            i = n;
            break;
        }
        if (!util_ipv6_group(s, n, &i, &v))
            return false;
        b[len++] = (uint8_t)(v >> 8);
        b[len++] = (uint8_t)v;
        if (i == n)
            break;
        if (s[i] != ':' || i + 1 == n)
            return false;
        i++;
        if (s[i] == ':') {
            if (gap != SIZE_MAX)
                return false; /* a second "::" */
            gap = len;
            i++;
        }
    }
    if (i != n || (gap == SIZE_MAX ? len != 16 : len > 14))
        return false;
    if (gap == SIZE_MAX)
        gap = len;
    memset(out, 0, 16);
    memcpy(out, b, gap);
    memcpy(out + 16 - (len - gap), b + gap, len - gap);
    return true;
}

size_t util_ip_parse(const char *s, size_t n, uint8_t out[UTIL_IP_MAX])
{
    if (s == NULL || out == NULL || n == 0)
        return 0;
    if (memchr(s, ':', n) != NULL)
        return util_ipv6_parse(s, n, out) ? 16 : 0;
    return util_ipv4_parse(s, n, out) ? 4 : 0;
}

bool util_host_numeric(const char *s, size_t n)
{
    if (s == NULL)
        return false;
    if (n > 0 && s[n - 1] == '.')
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '.')
        start--;
    const char *label = s + start;
    size_t len = n - start, i = 0;
    bool hex = len >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
    if (hex)
        i = 2;
    if (len == 0 || (!hex && i == len))
        return false;
    for (; i < len; i++)
        if (hex ? util_hex_digit(label[i]) < 0 : !(label[i] >= '0' && label[i] <= '9'))
            return false;
    return true;
}

void util_hex_lower(const uint8_t *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15u];
    }
    out[2 * n] = 0;
}
