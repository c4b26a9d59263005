/* crypto: the seam over mbedTLS (see crypto.h). */
#include "crypto.h"

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

const char *crypto_status_str(crypto_status_t status)
{
    switch (status) {
    case CRYPTO_OK: return "ok";
    case CRYPTO_ERR_ARG: return "bad argument";
    case CRYPTO_ERR_BACKEND: return "crypto backend failure";
    default: return "unknown";
    }
}

crypto_status_t crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    if (!out || (!data && len))
        return CRYPTO_ERR_ARG;
    return mbedtls_sha256_ret(data, len, out, 0) == 0 ? CRYPTO_OK : CRYPTO_ERR_BACKEND;
}

void crypto_wipe(void *p, size_t len)
{
    if (p && len)
        mbedtls_platform_zeroize(p, len);
}
