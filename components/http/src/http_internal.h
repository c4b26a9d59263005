/* Shared between the http sources; not part of the public contract. */
#ifndef CDNAGENT_HTTP_INTERNAL_H
#define CDNAGENT_HTTP_INTERNAL_H

/* Map a port_status_t to the matching http_status_t. */
http_status_t http_map_port_status(port_status_t st);

#endif
