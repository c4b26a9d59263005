/* Runs one unit test file (its main renamed unit_test_main by the build) on
 * the target: TAP output over semihosting, exit status to the host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "port_cortexm.h"

int unit_test_main(void);

int main(void)
{
    static const uint8_t test_key[PORT_DEVICE_KEY_LEN] = {0x42};
    int rc;
    port_cortexm_init();
    port_cortexm_set_device_key(test_key, 7);
    cmocka_set_message_output(CM_OUTPUT_TAP);
    rc = unit_test_main();
    printf("# target: peak stack %u B\n", (unsigned)port_cortexm_stack_peak());
    fflush(stdout);
    return rc;
}
