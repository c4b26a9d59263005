/* Shared between the http sources; not part of the public contract. */
#ifndef CDNAGENT_HTTP_INTERNAL_H
#define CDNAGENT_HTTP_INTERNAL_H

/* Map a port_status_t to the matching http_status_t. */
http_status_t http_map_port_status(port_status_t st);

/* A failed TCP connect in words: what was asked (host:port) and the
 * system's reason, into buf (cap bytes). */
void http_connect_why(char *buf, size_t cap, const char *host, uint16_t port, port_status_t st,
                      int os_error);

#endif
