/* The parts of port.h that are the same on every platform. */
#include <stdint.h>
#include <string.h>

#include "port.h"

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
