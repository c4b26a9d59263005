# sign: Alibaba Cloud V1/V3 request signatures (HMAC from mbedTLS).
sign_REQUIRES := util
sign_LIBS     := mbedtls
