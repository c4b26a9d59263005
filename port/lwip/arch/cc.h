/* arch/cc.h — lwIP's platform glue for the cdnagent ports (newlib). */
#ifndef CDNAGENT_LWIP_ARCH_CC_H
#define CDNAGENT_LWIP_ARCH_CC_H

#include <stdint.h>
#include <stdlib.h>

/* lwIP's own diagnostics go nowhere (LWIP_DEBUG is off); an assertion
 * stops the device: a broken stack must not deliver half a request. */
#define LWIP_PLATFORM_DIAG(x) \
    do {                      \
    } while (0)
#define LWIP_PLATFORM_ASSERT(x) abort()

/* Local ports, DHCP and DNS ids, and TCP's initial sequence numbers (lwIP's
 * own are a tick count) from the port's entropy source. */
uint32_t port_lwip_rand(void);
#define LWIP_RAND() port_lwip_rand()
#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) port_lwip_rand()

#endif
