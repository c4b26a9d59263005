/* vault: AES-256-GCM sealing of secrets at rest; see vault.h. */
#include "vault.h"

#include <string.h>

#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>

#include "port.h"
#include "util.h"

#define VAULT_VERSION 1u
#define VAULT_ALG_AES256GCM 1u

const char *vault_status_str(vault_status_t status)
{
    switch (status) {
    case VAULT_OK: return "ok";
    case VAULT_ERR_ARG: return "bad argument";
    case VAULT_ERR_FORMAT: return "not a sealed record";
    case VAULT_ERR_KEY_ID: return "sealed under another device key";
    case VAULT_ERR_AUTH: return "authentication failed (tampered, or wrong device key)";
    case VAULT_ERR_CRYPTO: return "crypto failure";
    default: return "unknown";
    }
}

vault_status_t vault_key_id(const uint8_t *sealed, size_t len, uint32_t *key_id)
{
    if (!sealed || len < VAULT_OVERHEAD || sealed[0] != 'V' || sealed[1] != 'S' ||
        sealed[2] != VAULT_VERSION || sealed[3] != VAULT_ALG_AES256GCM)
        return VAULT_ERR_FORMAT;
    if (key_id)
        *key_id = util_get_le32(sealed + 4);
    return VAULT_OK;
}

vault_status_t vault_seal(const uint8_t key[VAULT_KEY_LEN], uint32_t key_id, const char *aad,
                          const void *plain, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!key || !aad || (len && !plain) || !out || !out_len || cap < len + VAULT_OVERHEAD)
        return VAULT_ERR_ARG;
    out[0] = 'V';
    out[1] = 'S';
    out[2] = VAULT_VERSION;
    out[3] = VAULT_ALG_AES256GCM;
    util_put_le32(out + 4, key_id);
    uint8_t *nonce = out + 8;
    /* A repeated nonce under one key breaks GCM: never fall back. */
    if (port_random(nonce, VAULT_NONCE_LEN) != PORT_OK)
        return VAULT_ERR_CRYPTO;
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 256);
    if (rc == 0)
        rc = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, VAULT_NONCE_LEN,
                                       (const unsigned char *)aad, strlen(aad), plain,
                                       out + VAULT_HEADER_LEN, VAULT_TAG_LEN,
                                       out + VAULT_HEADER_LEN + len);
    mbedtls_gcm_free(&gcm); /* zeroizes the expanded key */
    if (rc != 0) {
        mbedtls_platform_zeroize(out, cap);
        return VAULT_ERR_CRYPTO;
    }
    *out_len = len + VAULT_OVERHEAD;
    return VAULT_OK;
}

vault_status_t vault_open(const uint8_t key[VAULT_KEY_LEN], uint32_t key_id, const char *aad,
                          const uint8_t *sealed, size_t len, void *plain, size_t cap,
                          size_t *plain_len)
{
    uint32_t id;
    if (!key || !aad || !plain_len)
        return VAULT_ERR_ARG;
    vault_status_t vs = vault_key_id(sealed, len, &id);
    if (vs != VAULT_OK)
        return vs;
    if (id != key_id)
        return VAULT_ERR_KEY_ID;
    size_t n = len - VAULT_OVERHEAD;
    if (cap < n || (n && !plain))
        return VAULT_ERR_ARG;
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 256);
    if (rc == 0)
        rc = mbedtls_gcm_auth_decrypt(&gcm, n, sealed + 8, VAULT_NONCE_LEN,
                                      (const unsigned char *)aad, strlen(aad),
                                      sealed + VAULT_HEADER_LEN + n, VAULT_TAG_LEN,
                                      sealed + VAULT_HEADER_LEN, plain);
    mbedtls_gcm_free(&gcm);
    if (rc != 0) {
        if (n)
            mbedtls_platform_zeroize(plain, n); /* never hand out garbage */
        return rc == MBEDTLS_ERR_GCM_AUTH_FAILED ? VAULT_ERR_AUTH : VAULT_ERR_CRYPTO;
    }
    *plain_len = n;
    return VAULT_OK;
}
