/* The product image: provision on first boot, then deliver for ever.
 * On QEMU's mps2 boards there is no network (port_cortexm_set_net is never
 * called here), so deliveries back off and wait, which is exactly what a
 * device does during an outage; the firmware scenario (tests/target) runs
 * the same application against an in-image peer. */
#include <cjson/cJSON.h>

#include "app.h"
#include "port_cortexm.h"

static app_t app;

int main(void)
{
    cJSON_Hooks hooks = {port_malloc, port_free};
    uint8_t key[PORT_DEVICE_KEY_LEN];
    port_cortexm_init();
    cJSON_InitHooks(&hooks);
    /* Stand-in for the key a factory programs into OTP. A fresh key every
     * boot is only right because this image's store is in RAM and starts
     * empty too; a board with a real flash reads its OTP key here instead,
     * or the sealed settings would not open after a reboot. */
    if (port_random(key, sizeof key) != PORT_OK)
        return 2;
    port_cortexm_set_device_key(key, 1);
    if (app_boot(&app, true) != AGENT_OK || app_start(&app) != AGENT_OK)
        return 1;
    for (;;)
        (void)app_deliver(&app, UINT32_MAX - 1u);
}
