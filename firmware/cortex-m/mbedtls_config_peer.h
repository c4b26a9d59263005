/* Added to mbedtls_config.h for the test images only: the firmware
 * scenario's in-image TLS server (tests/target/peer.c) needs the server
 * side. The product image (make firmware) is built without it. */
#define MBEDTLS_SSL_SRV_C
