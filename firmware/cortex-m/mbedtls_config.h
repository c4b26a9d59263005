/*
 * mbedTLS 2.28 configuration of the Cortex-M image: only what the agent uses.
 *
 *  - TLS 1.2 client, ECDHE-ECDSA and ECDHE-RSA key exchange, AES-GCM only
 *    (the suites the CDN API endpoints and cdnsim offer), SNI, extended
 *    master secret, session-id resumption (no tickets: less code).
 *  - x509 certificate parsing and chain verification (the API's CA bundle;
 *    a pushed certificate is parsed to check its key, domain and expiry).
 *  - SHA-1 (V1 signatures: HMAC-SHA1), SHA-256 (V3, fingerprints), HMAC,
 *    AES-GCM (components/vault), CTR-DRBG seeded from port_random.
 *  - P-256 and P-384 (certificates in the wild), RSA up to 4096 bits.
 *
 * RAM choices, each with its reason:
 *  - incoming record buffer stays 16 KB: a server that ignores the
 *    max_fragment_length extension may send full 16 KB records, and a
 *    smaller buffer would break the handshake with it. Outgoing records are
 *    ours, so 4 KB is enough (a certificate push is written as several
 *    records).
 *  - AES tables in flash and the "fewer tables" variant: 8 KB less RAM.
 *  - ECP window 2, no fixed-point cache: ~2 KB less heap per handshake.
 *  - the peer certificate is not kept after the handshake.
 *
 * Flash choice: SHA-1's block function is our loop (sha1_compact.c, about
 * 300 B) instead of mbedTLS's unrolled one (3,728 B). V1 signatures hash a
 * few hundred bytes per call, so its speed does not matter; the on-target
 * test_sign checks it against the SDK's signatures.
 *
 * Memory comes from port_calloc/port_free, so the port counts mbedTLS's heap.
 * The firmware scenario's test peer (a TLS server in the same image) adds
 * MBEDTLS_SSL_SRV_C through mbedtls_config_peer.h; the product image does not.
 */
#ifndef CDNAGENT_MBEDTLS_CONFIG_H
#define CDNAGENT_MBEDTLS_CONFIG_H

#include <stddef.h>

/* System */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
void *port_calloc(size_t count, size_t size);
void port_free(void *ptr);
#define MBEDTLS_PLATFORM_CALLOC_MACRO port_calloc
#define MBEDTLS_PLATFORM_FREE_MACRO port_free
#define MBEDTLS_DEPRECATED_REMOVED

/* Crypto primitives */
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES
#define MBEDTLS_GCM_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA1_PROCESS_ALT /* sha1_compact.c */
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_MPI_MAX_SIZE 512 /* RSA-4096 */
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_WINDOW_SIZE 2
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 0
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_BASE64_C

/* X.509 */
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_CHECK_KEY_USAGE
#define MBEDTLS_X509_CHECK_EXTENDED_KEY_USAGE

/* TLS */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_CLI_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#if defined(CDNAGENT_TLS_IN_4K)
/* Build option for endpoints known to honour max_fragment_length: the
 * client asks for 4 KB records and keeps a 4 KB incoming buffer (12 KB less
 * heap). make size measures it beside the default. */
#define MBEDTLS_SSL_MAX_FRAGMENT_LENGTH
#define MBEDTLS_SSL_IN_CONTENT_LEN 4096
#else
#define MBEDTLS_SSL_IN_CONTENT_LEN 16384
#endif
#define MBEDTLS_SSL_OUT_CONTENT_LEN 4096
/* AES-256-GCM suites would need SHA-384 (SHA512_C, +5 KB) for nothing the
 * endpoints do not also offer with AES-128-GCM. */
#define MBEDTLS_SSL_CIPHERSUITES \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256

#if defined(CDNAGENT_MBEDTLS_PEER)
#include "mbedtls_config_peer.h"
#endif

#include "mbedtls/check_config.h"

#endif
