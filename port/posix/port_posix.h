/*
 * port_posix.h — Linux-only extras of the POSIX port: backend constructors
 * and measurement hooks that firmware/linux and host tests use. Components
 * never include this file.
 */
#ifndef CDNAGENT_PORT_POSIX_H
#define CDNAGENT_PORT_POSIX_H

#include "port.h"

/* Heap figures of port_malloc/port_calloc/port_free since start (or since
 * the last reset): bytes in use now and the high-water mark. */
void port_posix_heap_stats(size_t *in_use, size_t *peak);
void port_posix_heap_reset_peak(void);

#endif /* CDNAGENT_PORT_POSIX_H */
