/*
 * The firmware scenario, run under QEMU by make test-target: the product's
 * application (firmware/cortex-m/app.c) provisions a new device from the
 * manifest built into the image, then delivers over TLS to an in-image peer
 * that plays responses recorded from cdnsim (tests/target/peer.c). After the
 * first delivery (the peer closes the connection after the second call, so
 * the certificate push makes its own TLS handshake) two edits are made and delivered, then the
 * device "reboots" (the store is mounted again from the same NOR) and must still hold the delivered
 * state with nothing queued.
 *
 * Prints TAP lines, and "# figure:" lines that tools/size_table.py turns into
 * the RAM part of the footprint table: for every API call, the heap in use
 * at its peak (port_malloc, which mbedTLS and cJSON use too) and the stack
 * watermark, both measured around the agent_poll step that made the call.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app.h"
#include "peer.h"
#include "port_cortexm.h"

/* Agent time a delivery may take before the scenario gives up on it. */
#define DELIVERY_MAX_MS 60000u
/* Room the deepest measured stack must leave below the reserved stack. */
#define STACK_MARGIN 4096u

static app_t app;
static int test_no, failures;

static void check(bool ok, const char *what)
{
    printf("%sok %d - %s\n", ok ? "" : "not ", ++test_no, what);
    if (!ok)
        failures++;
}

typedef struct {
    char action[80];
    size_t heap_peak, stack_peak;
    bool handshake;
} call_figure_t;
static call_figure_t figs[16];
static unsigned nfigs;

/* Step the agent one poll at a time until the queue is empty (or 60 s of
 * agent time), measuring every step that made an API call. */
static unsigned deliver_measured(void)
{
    uint64_t deadline = port_monotonic_ms() + DELIVERY_MAX_MS;
    while (app_pending(&app) > 0 && port_monotonic_ms() < deadline) {
        unsigned before = peer_answered(), hs_before = peer_handshakes();
        size_t heap_peak;
        uint32_t w;
        port_heap_reset_peak();
        port_cortexm_stack_reset();
        w = agent_poll(app.agent, port_monotonic_ms());
        port_heap_stats(NULL, &heap_peak);
        if (peer_answered() != before && nfigs < sizeof figs / sizeof figs[0]) {
            call_figure_t *f = &figs[nfigs++];
            (void)peer_take_actions(f->action, sizeof f->action);
            f->heap_peak = heap_peak;
            f->stack_peak = port_cortexm_stack_peak();
            f->handshake = peer_handshakes() != hs_before;
        }
        (void)peer_take_actions(NULL, 0);
        if (w == UINT32_MAX)
            break;
        if (w)
            app_idle_until(&app, port_monotonic_ms() + w);
    }
    agent_counters(app.agent, &app.counters);
    return app_pending(&app);
}

typedef struct {
    unsigned headers, delivered_ok, cert_on;
    char ids[3][24];
    char keys[3][40];
} view_t;

static void visit_header(void *arg, const agent_header_view_t *h)
{
    view_t *v = arg;
    if (v->headers < 3) {
        snprintf(v->keys[v->headers], sizeof v->keys[0], "%s", h->key);
        snprintf(v->ids[v->headers], sizeof v->ids[0], "%s", h->config_id);
    }
    v->headers++;
    printf("# view: %s desired=%s delivered=%s id=%s unsure=%d queued=%d\n", h->key,
           h->desired ? h->desired : "-", h->delivered ? h->delivered : "-", h->config_id,
           (int)h->unsure, h->queue != NULL);
    if (h->desired && h->delivered && strcmp(h->desired, h->delivered) == 0 && !h->unsure &&
        h->queue == NULL)
        v->delivered_ok++;
}

static void visit_cert(void *arg, const agent_cert_view_t *c)
{
    view_t *v = arg;
    printf("# view: cert desired_on=%d delivered_on=%d name=%s queued=%d\n", (int)c->desired_on,
           (int)c->delivered_on, c->delivered_name ? c->delivered_name : "-", c->queue != NULL);
    if (c->desired_on && c->delivered_on && c->queue == NULL && c->delivered_name &&
        strcmp(c->delivered_name, "demo-cert") == 0)
        v->cert_on++;
}

static bool has_header(const view_t *v, const char *key, const char *id)
{
    for (unsigned i = 0; i < v->headers && i < 3; i++)
        if (strcmp(v->keys[i], key) == 0)
            return strcmp(v->ids[i], id) == 0;
    return false;
}

int main(void)
{
    cJSON_Hooks hooks = {port_malloc, port_free};
    static const uint8_t otp_key[PORT_DEVICE_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    view_t view;
    agent_visitor_t vis = {visit_header, visit_cert, &view};
    size_t in_use;
    unsigned left;
    agent_status_t rc;

    port_cortexm_init();
    cJSON_InitHooks(&hooks);
    port_cortexm_set_device_key(otp_key, 1);
    printf("1..16\n");
    check(peer_start() == 0, "the in-image TLS peer loads the recording");
    /* The server closes the connection after the second call, so the
     * certificate push (call 3) is measured with its own TLS handshake. */
    peer_close_after(1);

    /* factory: provision from the built-in manifest */
    port_heap_reset_peak();
    port_cortexm_stack_reset();
    rc = app_boot(&app, true);
    {
        call_figure_t *f = &figs[nfigs++];
        snprintf(f->action, sizeof f->action, "provisioning");
        port_heap_stats(NULL, &f->heap_peak);
        f->stack_peak = port_cortexm_stack_peak();
    }
    check(rc == AGENT_OK, "a new device provisions itself from the built-in manifest");
    check(app_pending(&app) == 4, "provisioning queued 3 headers and the certificate");
    rc = app_start(&app);
    check(rc == AGENT_OK, "the agent starts from the provisioned settings (secrets unsealed)");
    if (rc != AGENT_OK) {
        printf("# agent did not start: %s\n", agent_status_str(rc));
        return 1;
    }

    /* first delivery: three header adds in one batch (and its read-back of
     * their ConfigIds), the certificate push */
    left = deliver_measured();
    check(left == 0 && app.counters.calls == 3 && app.delivered == 4,
          "first delivery: 3 calls (one batch of 3 adds, its read-back, the certificate), all "
          "delivered, queue empty");
    printf("# calls=%lu delivered=%lu failed=%lu retries=%lu handshakes=%lu left=%u\n",
           (unsigned long)app.counters.calls, (unsigned long)app.delivered,
           (unsigned long)app.failed, (unsigned long)app.retries,
           (unsigned long)app.counters.handshakes, left);

    /* edits on the device, delivered */
    check(agent_header_set(&app.store, "cdn.example.com", "X-Edge-Region", "ap-southeast", NULL) ==
                  AGENT_OK &&
              agent_header_rm(&app.store, "cdn.example.com", "Cache-Control") == AGENT_OK,
          "a change and a removal are queued");
    left = deliver_measured();
    check(left == 0 && app.counters.calls == 5, "second delivery: 2 more calls, queue empty");
    check(peer_answered() == peer_steps() && peer_mismatches() == 0,
          "every request matched the recorded one (action, method, parameters) and carried a valid V3 signature with the device's date");
    check(app.counters.handshakes == 2 && peer_handshakes() == 2,
          "two TLS handshakes: the server closed after call 2, the rest kept alive");

    memset(&view, 0, sizeof view);
    check(agent_visit(&app.store, NULL, &vis) == AGENT_OK && view.headers == 2 &&
              view.delivered_ok == 2 && view.cert_on == 1,
          "state: 2 headers and the certificate delivered as desired");
    check(has_header(&view, "X-Origin-Auth", "1001") && has_header(&view, "X-Edge-Region", "1003"),
          "ConfigIds from the service's read-back kept (1001, 1003)");

    /* warm reboot: the same NOR, booted again through the product's path */
    app_stop(&app);
    port_heap_stats(&in_use, NULL);
    check(in_use == 0, "no heap left in use after the agent is freed");
    check(app_boot(&app, false) == AGENT_OK && app_pending(&app) == 0,
          "after a reboot the device boots as provisioned (no new provisioning), nothing queued");
    memset(&view, 0, sizeof view);
    check(agent_visit(&app.store, NULL, &vis) == AGENT_OK && view.delivered_ok == 2 &&
              view.cert_on == 1,
          "after a reboot the delivered state is still there");
    rc = app_start(&app);
    check(rc == AGENT_OK, "after a reboot the agent starts: the sealed secrets open again");
    if (rc == AGENT_OK)
        app_stop(&app);
    peer_stop();
    {
        size_t worst = 0;
        for (unsigned i = 0; i < nfigs; i++)
            if (figs[i].stack_peak > worst)
                worst = figs[i].stack_peak;
        check(worst > 0 && worst + STACK_MARGIN < port_cortexm_stack_size(),
              "the deepest stack stays 4 KB clear of the reserved stack");
    }

    /* figures for the footprint table */
    for (unsigned i = 0; i < nfigs; i++)
        printf("# figure: call=%s heap_peak=%lu stack_peak=%lu handshake=%d\n", figs[i].action,
               (unsigned long)figs[i].heap_peak, (unsigned long)figs[i].stack_peak,
               (int)figs[i].handshake);
    printf("# figure: heap_arena=%lu stack_size=%lu\n", (unsigned long)port_cortexm_heap_arena(),
           (unsigned long)port_cortexm_stack_size());
    printf("# scenario: %d of %d checks failed\n", failures, test_no);
    fflush(stdout);
    return failures ? 1 : 0;
}
