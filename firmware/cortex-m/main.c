/* The product image: provision on first boot, bring the network up, then
 * deliver for ever. On QEMU's mps2-an386 the network is the board's LAN9118
 * under QEMU's user networking (tests/integration/test_target_e2e runs this
 * image's code against cdnsim on the host's loopback). */
#include <cjson/cJSON.h>

#include "app.h"
#include "port_cortexm.h"

/* How long boot waits for the first DHCP answer before the agent starts
 * anyway (DHCP keeps asking; deliveries back off until it answers). */
#define MAIN_DHCP_WAIT_MS 3000u
/* How often an idle device looks for new work (its application's edits). */
#define MAIN_IDLE_MS 1000u

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
    if (app_boot(&app, true) != AGENT_OK)
        return 1;
    if (app_net_up(&app, MAIN_DHCP_WAIT_MS) != PORT_OK)
        return 3; /* no controller or a bad hosts file: nothing to wait for */
    if (app_start(&app) != AGENT_OK)
        return 1;
    for (;;) {
        /* Nothing queued: sleep a while, the network still served (ARP,
         * FINs, DHCP renewals), then look again. */
        (void)app_deliver(&app, UINT32_MAX - 1u);
        app_idle_until(&app, port_monotonic_ms() + MAIN_IDLE_MS);
    }
}
