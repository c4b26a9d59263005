/*
 * port_heap.h — the counting heap behind port_malloc/port_free on every
 * port (port/port_common.c): libc malloc with a size prefix, so the bytes
 * requested and still in use, and their peak, can be read. The peak-heap
 * figures of the READMEs come from here. For ports, tests and firmware
 * measurements only; components see port.h alone.
 */
#ifndef CDNAGENT_PORT_HEAP_H
#define CDNAGENT_PORT_HEAP_H

#include <stdbool.h>
#include <stddef.h>

void port_heap_stats(size_t *in_use, size_t *peak);
/* Start a new peak from what is in use now. */
void port_heap_reset_peak(void);

/* While on, allocations are left out of the figures (they belong to a test
 * harness, e.g. the firmware scenario's in-image TLS peer, not the agent). */
void port_heap_exclude(bool on);
/* Where excluded allocations come from (NULL: malloc). A harness with a
 * heap of its own leaves the allocator's high-water mark to the agent. */
void port_heap_set_excluded(void *(*alloc)(size_t), void (*release)(void *));

/* Fault injection for tests (the littlefs and coreHTTP way of reaching
 * every out-of-memory path): allocation number `nth` (0-based, counted from
 * this call, excluded allocations not counted) returns NULL, and with
 * `sticky` every one after it too. nth < 0 disarms. Also restarts the count
 * port_heap_allocs reports, so a test can first count a call's allocations
 * and then fail each of them in turn. */
void port_heap_fail_at(long nth, bool sticky);
unsigned long port_heap_allocs(void);

#endif
