/* Reset and exception vectors for QEMU's mps2-an385/an386 (Cortex-M3/M4):
 * copy .data, clear .bss, paint the stack for the watermark, run main. */
#include <stdint.h>
#include <string.h>

#include "port_cortexm.h"
#include "semihost.h"

extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_top__, __stack_limit__;

int main(void);
void port_cortexm_systick_handler(void);

#define STACK_PAINT 0xC0DEFACEu

void reset_handler(void);
void fault_handler(void);

void reset_handler(void)
{
    uint32_t *p;
    memcpy(&__data_start__, &__data_load__,
           (size_t)((char *)&__data_end__ - (char *)&__data_start__));
    memset(&__bss_start__, 0, (size_t)((char *)&__bss_end__ - (char *)&__bss_start__));
    /* Paint the unused stack so the peak use can be read back later. The
     * current frame sits at the top; leave 256 bytes for it. */
    {
        uintptr_t paint_end = (uintptr_t)&__stack_top__ - 256u;
        for (p = &__stack_limit__; (uintptr_t)p < paint_end; p++)
            *p = STACK_PAINT;
    }
    semihost_exit(main());
}

void fault_handler(void)
{
    static const char msg[] = "FATAL: hard fault\n";
    semihost_write(msg, sizeof(msg) - 1);
    semihost_exit(99);
}

size_t port_cortexm_stack_peak(void)
{
    const uint32_t *p = &__stack_limit__;
    while (p < &__stack_top__ && *p == STACK_PAINT)
        p++;
    return (size_t)((const char *)&__stack_top__ - (const char *)p);
}

size_t port_cortexm_stack_size(void)
{
    return (size_t)((const char *)&__stack_top__ - (const char *)&__stack_limit__);
}

/* Repaint from the current stack pointer down, so a later peak is measured
 * from this point of the run. */
void port_cortexm_stack_reset(void)
{
    uint32_t marker;
    uint32_t *p;
    uintptr_t paint_end = (uintptr_t)&marker - 64u;
    for (p = &__stack_limit__; (uintptr_t)p < paint_end; p++)
        *p = STACK_PAINT;
}

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) const vector_t vector_table[16] = {
    (vector_t)(uintptr_t)&__stack_top__,
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0,
    0,
    0,
    0,
    fault_handler, /* SVC */
    fault_handler, /* DebugMon */
    0,
    fault_handler, /* PendSV */
    port_cortexm_systick_handler,
};
