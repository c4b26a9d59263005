# crypto: the seam over the crypto library (SHA-256, wiping secrets).
crypto_REQUIRES :=
crypto_LIBS     := mbedtls
