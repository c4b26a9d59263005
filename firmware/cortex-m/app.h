/*
 * The Cortex-M application: boot, factory provisioning from the manifest
 * built into the image, and the agent's delivery loop. main.c (the product
 * image) and tests/target/scenario.c (the firmware scenario under QEMU) both
 * run it.
 */
#ifndef CDNAGENT_FW_APP_H
#define CDNAGENT_FW_APP_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "store.h"

/* A file built into the image (tools/embed.py): the manifest and the PEM
 * files it names. data is NUL-terminated; len excludes the NUL. */
typedef struct {
    const char *name;
    const char *data;
    size_t len;
} app_blob_t;
extern const app_blob_t app_blobs[];
extern const size_t app_blob_count;

/* Look up a built-in file by name; NULL if the image has none. */
const app_blob_t *app_blob(const char *name);

/* Sizes of the RAM-backed NOR the image keeps its store in (app.c fixes the
 * geometry: 16 x 4 KB, 8-byte writes). A board keeps the store in its own
 * flash with that part's geometry; the manifest's "flash" section describes
 * the Linux image the host tools write and is not used on the device. */
#define APP_FLASH_MAX (64u * 1024u)
#define APP_SECTORS_MAX 32u
/* Keys the store's RAM index holds (8 bytes each): lookups without a scan
 * for up to this many keys; past it the store scans, as without an index.
 * 64 covers the built-in manifest's records several times over and keeps the
 * certificate push within its 48 KB of RAM; a gateway with hundreds of
 * rules gives it more (256 keys: 2 KB). */
#define APP_INDEX_KEYS 64u

typedef struct {
    port_flash_t flash;
    store_t store;
    uint8_t work[STORE_WORK_SIZE_INDEXED(APP_SECTORS_MAX, APP_INDEX_KEYS)];
    /* What the agent borrows for its lifetime, one exact-size heap block:
     * the API host, then the credentials (wiped before it is freed). The
     * settings themselves (4.8 KB with room for an STS token) are on the
     * heap only while the agent is set up. */
    char *kept;
    size_t kept_len;
    agent_t *agent;
    /* The agent's record work area, static so that the heap's high-water
     * mark is what the calls need, not how TLS's blocks fell around it. */
    _Alignas(max_align_t) uint8_t step_work[AGENT_STEP_WORK_SIZE];
    agent_counters_t counters;
    uint32_t delivered, failed, blocked, retries, store_errors;
    /* Set by app_net_up: what an idle wait runs so the network stack keeps
     * its timers and receives while the agent sleeps. */
    void (*net_poll)(void);
} app_t;

/* Apply the built-in manifest ("manifest.json") to a freshly formatted
 * store: every domain's headers and certificate queued, then the settings
 * (secrets sealed) last, as the mark of a finished provisioning. Errors are
 * logged with the manifest path of the bad field. Returns AGENT_OK or the
 * first error. */
agent_status_t app_provision(store_t *st, int64_t now_utc);

/* Mount the store, or format and provision it when the device is new (or
 * its provisioning never finished). erase_flash: the NOR starts erased (the
 * RAM NOR at power-on); false keeps what it holds (a warm reboot). */
agent_status_t app_boot(app_t *app, bool erase_flash);

/* Load the settings and create the agent (HTTPS client included). */
agent_status_t app_start(app_t *app);

/* Poll the agent until nothing is due within max_ms or the queue is empty;
 * returns the number of queue entries left (app_pending). */
unsigned app_deliver(app_t *app, uint32_t max_ms);

/* Queue entries left; APP_PENDING_UNKNOWN (logged) when the store cannot
 * be read, so an unreadable queue never passes for an empty one. */
#define APP_PENDING_UNKNOWN 0xFFFFFFFFu
unsigned app_pending(app_t *app);

void app_stop(app_t *app);

/* Bring the network up (net.c; images without it never call it): the
 * board's LAN9118, lwIP asking DHCP for an address (waiting up to
 * timeout_ms for it; without an answer DHCP goes on in the background and
 * deliveries back off meanwhile), the names of the built-in "hosts" file
 * (/etc/hosts lines: an IPv4 address and names), and the port's transport
 * on lwIP. Call after app_boot. PORT_OK, or the failure, logged:
 * PORT_ERR_UNSUPPORTED (no controller), PORT_ERR_ARG (a bad hosts line). */
port_status_t app_net_up(app_t *app, uint32_t timeout_ms);

/* Sleep (WFI, woken by SysTick) until port_monotonic_ms() reaches t: the
 * agent asked for a pause. The network, when up, is polled on every tick. */
void app_idle_until(app_t *app, uint64_t t);

#endif
