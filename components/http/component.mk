# http: the HTTP/1.1 client (http-parser) over a TCP or TLS (mbedTLS) transport.
http_REQUIRES := util
http_LIBS     := mbedtls http_parser
