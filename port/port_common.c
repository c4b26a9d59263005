/* The parts of port.h that are the same on every platform. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "port.h"
#include "port_heap.h"

/* Each block carries its size in a prefix so frees can be counted, and
 * whether it was excluded from the figures. The prefix keeps the block as
 * aligned as malloc's (the widest scalar types) without max_align_t's
 * padding: 8 bytes on Cortex-M, 16 on x86-64. */
typedef union {
    struct {
        size_t size;
        bool excluded;
    } h;
    long long ll;
    long double ld;
    void *p;
} heap_prefix_t;

static size_t heap_in_use, heap_peak;
static bool heap_excluding;
static void *(*excluded_alloc)(size_t);
static void (*excluded_free)(void *);
static long fail_countdown = -1; /* allocations left before the injected failure */
static bool fail_sticky;
static unsigned long alloc_calls;

void *port_malloc(size_t size)
{
    heap_prefix_t *p;
    if (size > SIZE_MAX - sizeof(heap_prefix_t))
        return NULL;
    if (!heap_excluding) {
        alloc_calls++;
        if (fail_countdown == 0) {
            fail_countdown = fail_sticky ? 0 : -1;
            return NULL;
        }
        if (fail_countdown > 0)
            fail_countdown--;
    }
    p = heap_excluding && excluded_alloc ? excluded_alloc(sizeof(heap_prefix_t) + size)
                                         : malloc(sizeof(heap_prefix_t) + size);
    if (p == NULL)
        return NULL;
    p->h.size = size;
    p->h.excluded = heap_excluding;
    if (!heap_excluding) {
        heap_in_use += size;
        if (heap_in_use > heap_peak)
            heap_peak = heap_in_use;
    }
    return p + 1;
}

void port_free(void *ptr)
{
    heap_prefix_t *p;
    if (ptr == NULL)
        return;
    p = (heap_prefix_t *)ptr - 1;
    if (!p->h.excluded)
        heap_in_use -= p->h.size;
    if (p->h.excluded && excluded_alloc)
        excluded_free(p);
    else
        free(p);
}

void port_heap_stats(size_t *in_use, size_t *peak)
{
    if (in_use)
        *in_use = heap_in_use;
    if (peak)
        *peak = heap_peak;
}

void port_heap_reset_peak(void)
{
    heap_peak = heap_in_use;
}

void port_heap_exclude(bool on)
{
    heap_excluding = on;
}

void port_heap_fail_at(long nth, bool sticky)
{
    fail_countdown = nth < 0 ? -1 : nth;
    fail_sticky = sticky;
    alloc_calls = 0;
}

unsigned long port_heap_allocs(void)
{
    return alloc_calls;
}

void port_heap_set_excluded(void *(*alloc)(size_t), void (*release)(void *))
{
    excluded_alloc = alloc;
    excluded_free = release;
}

const char *port_status_str(int status)
{
    switch (status) {
    case PORT_OK: return "ok";
    case PORT_ERR_ARG: return "bad argument";
    case PORT_ERR_IO: return "I/O error";
    case PORT_ERR_TIMEOUT: return "timeout";
    case PORT_ERR_DNS: return "host name did not resolve";
    case PORT_ERR_CONNECT: return "connection refused or unreachable";
    case PORT_ERR_CLOSED: return "connection closed by peer";
    case PORT_ERR_RESET: return "connection reset";
    case PORT_ERR_NOMEM: return "out of memory";
    case PORT_ERR_UNSUPPORTED: return "not supported on this platform";
    case PORT_ERR_NOT_SET: return "not set";
    default: return "unknown error";
    }
}

void *port_calloc(size_t count, size_t size)
{
    void *p;
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    p = port_malloc(count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}
