/* See test_crc.h. */
#include "test_crc.h"

#include <string.h>

uint32_t test_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

bool test_crc_forge(uint8_t *buf, size_t len, size_t pos, uint32_t target)
{
    memset(buf + pos, 0, 4);
    uint32_t base = test_crc32(0, buf, len);
    uint32_t vec[32] = {0}, combo[32] = {0};
    bool have[32] = {false};
    for (int i = 0; i < 32; i++) {
        buf[pos + i / 8] ^= (uint8_t)(1u << (i % 8));
        uint32_t v = test_crc32(0, buf, len) ^ base, c = 1u << i;
        buf[pos + i / 8] ^= (uint8_t)(1u << (i % 8));
        for (int b = 31; b >= 0 && v; b--) {
            if (!((v >> b) & 1u))
                continue;
            if (!have[b]) {
                have[b] = true;
                vec[b] = v;
                combo[b] = c;
                break;
            }
            v ^= vec[b];
            c ^= combo[b];
        }
    }
    uint32_t d = target ^ base, x = 0;
    for (int b = 31; b >= 0; b--) {
        if (!((d >> b) & 1u))
            continue;
        if (!have[b])
            return false;
        d ^= vec[b];
        x ^= combo[b];
    }
    for (int i = 0; i < 4; i++)
        buf[pos + i] = (uint8_t)(x >> (8 * i));
    return test_crc32(0, buf, len) == target;
}
