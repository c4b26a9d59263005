/*
 * crypto.h — the crypto seam: the hashing and wiping that components above
 * the protocol layer need, behind one small interface, so that the agent and
 * the queue never include a crypto library and replacing the backend
 * (mbedTLS today; a hardware SHA engine, PSA Crypto) touches this component
 * alone.
 *
 * Only sign (HMAC), http (TLS), vault (AES-GCM), cdnapi's certificate checks
 * (X.509) and this component include mbedTLS.
 */
#ifndef CDNAGENT_CRYPTO_H
#define CDNAGENT_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRYPTO_SHA256_LEN 32u

typedef enum {
    CRYPTO_OK = 0,
    CRYPTO_ERR_ARG = -1,     /* NULL buffer with a non-zero length */
    CRYPTO_ERR_BACKEND = -2, /* the crypto library failed (a hardware engine's fault) */
} crypto_status_t;

/* Short description of a status. Never NULL. */
const char *crypto_status_str(crypto_status_t status);

/* SHA-256 of len bytes at data into out. */
crypto_status_t crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* Overwrite len bytes at p with zeros in a way the compiler may not remove
 * as a dead store: for secrets (keys, AccessKeySecret, STS tokens) about to
 * go out of scope or back to the heap. NULL or 0 is a no-op. */
void crypto_wipe(void *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_CRYPTO_H */
