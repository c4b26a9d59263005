/*
 * vault: secrets at rest. AES-256-GCM (mbedTLS) under the device key the
 * port supplies (port_device_key), so a copied flash image gives away no
 * AccessKeySecret, STS token or private key.
 *
 * Sealed record (what goes into the store), little-endian:
 *   'V' 'S' | u8 version (1) | u8 algorithm (1 = AES-256-GCM) |
 *   u32 key id | 12-byte nonce | ciphertext | 16-byte tag
 * The nonce is fresh for every seal (96 random bits from port_random). The
 * store key the record lives under is the GCM additional data, so a record
 * moved to another key (swapping two secrets) fails to open, like any
 * other tampering: vault_open then returns VAULT_ERR_AUTH and no plaintext.
 *
 * The key id names which device key sealed a record, so keys can be
 * rotated: open with the old key, seal with the new one.
 */
#ifndef CDNAGENT_VAULT_H
#define CDNAGENT_VAULT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VAULT_KEY_LEN 32u
#define VAULT_NONCE_LEN 12u
#define VAULT_TAG_LEN 16u
#define VAULT_HEADER_LEN 20u /* magic, version, algorithm, key id, nonce */
#define VAULT_OVERHEAD (VAULT_HEADER_LEN + VAULT_TAG_LEN)

typedef enum {
    VAULT_OK = 0,
    VAULT_ERR_ARG = -1,    /* bad argument, buffer too small */
    VAULT_ERR_FORMAT = -2, /* not a sealed record (plaintext, truncated) */
    VAULT_ERR_KEY_ID = -3, /* sealed under another device key */
    VAULT_ERR_AUTH = -4,   /* tag mismatch: tampered, or the wrong key */
    VAULT_ERR_CRYPTO = -5, /* mbedTLS failure or no entropy */
} vault_status_t;

const char *vault_status_str(vault_status_t status);

/* Seal plain[0..len) for the store key aad (NUL-terminated) into out
 * (cap >= len + VAULT_OVERHEAD). *out_len = len + VAULT_OVERHEAD. */
vault_status_t vault_seal(const uint8_t key[VAULT_KEY_LEN], uint32_t key_id, const char *aad,
                          const void *plain, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Open a sealed record. plain receives len - VAULT_OVERHEAD bytes (cap
 * must hold them); on any failure nothing of the plaintext is left in plain. */
vault_status_t vault_open(const uint8_t key[VAULT_KEY_LEN], uint32_t key_id, const char *aad,
                          const uint8_t *sealed, size_t len, void *plain, size_t cap,
                          size_t *plain_len);

/* Key id a sealed record names (VAULT_ERR_FORMAT if it is not one). */
vault_status_t vault_key_id(const uint8_t *sealed, size_t len, uint32_t *key_id);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_VAULT_H */
