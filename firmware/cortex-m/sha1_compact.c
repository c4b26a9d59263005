/* SHA-1's block function as a loop, for mbedTLS built with
 * MBEDTLS_SHA1_PROCESS_ALT (see mbedtls_config.h: the unrolled one costs
 * 3.4 KB more flash, and the image's budget is tight). FIPS 180-4, 6.1.2,
 * with the message schedule kept in a 16-word ring. */
#include <stdint.h>

#include "mbedtls/platform_util.h"
#include "mbedtls/sha1.h"

#define SHA1_ROL(x, n) (((x) << (n)) | ((x) >> (32u - (n))))

static uint32_t sha1_f(unsigned t, uint32_t b, uint32_t c, uint32_t d)
{
    if (t < 20u)
        return (b & c) | (~b & d);
    if (t >= 40u && t < 60u)
        return (b & c) | (b & d) | (c & d);
    return b ^ c ^ d;
}

int mbedtls_internal_sha1_process(mbedtls_sha1_context *ctx, const unsigned char data[64])
{
    static const uint32_t k[4] = {0x5A827999u, 0x6ED9EBA1u, 0x8F1BBCDCu, 0xCA62C1D6u};
    uint32_t w[16], v[5];
    for (unsigned i = 0; i < 16u; i++)
        w[i] = (uint32_t)data[4 * i] << 24 | (uint32_t)data[4 * i + 1] << 16 |
               (uint32_t)data[4 * i + 2] << 8 | (uint32_t)data[4 * i + 3];
    for (unsigned i = 0; i < 5u; i++)
        v[i] = ctx->state[i];
    for (unsigned t = 0; t < 80u; t++) {
        if (t >= 16u) {
            uint32_t x = w[(t + 13u) & 15u] ^ w[(t + 8u) & 15u] ^ w[(t + 2u) & 15u] ^ w[t & 15u];
            w[t & 15u] = SHA1_ROL(x, 1u);
        }
        uint32_t tmp = SHA1_ROL(v[0], 5u) + sha1_f(t, v[1], v[2], v[3]) + v[4] + k[t / 20u] +
                       w[t & 15u];
        v[4] = v[3];
        v[3] = v[2];
        v[2] = SHA1_ROL(v[1], 30u);
        v[1] = v[0];
        v[0] = tmp;
    }
    for (unsigned i = 0; i < 5u; i++)
        ctx->state[i] += v[i];
    /* HMAC runs the secret through here: leave none of it on the stack. */
    mbedtls_platform_zeroize(w, sizeof w);
    mbedtls_platform_zeroize(v, sizeof v);
    return 0;
}
