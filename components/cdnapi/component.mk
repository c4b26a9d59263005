# cdnapi: the CDN OpenAPI operations; JSON with cJSON, X.509 checks with mbedTLS.
cdnapi_REQUIRES := crypto http sign util
cdnapi_LIBS     := cjson mbedtls
