/* End to end on the product's code and lwIP: tests/integration/test_target_e2e
 * runs this image under QEMU user networking (restrict=on, one guest forward
 * to cdnsim on the host's loopback). It boots as the product does (provision
 * from the built-in manifest, DHCP, the built-in hosts file, the agent), and
 * plays the device application's part: it delivers, then makes an edit when
 * the host says so (a file the host creates, read over semihosting), three
 * times: once while the host has stopped the simulator, once while the
 * simulator cuts its next answer, and a certificate push whose answer is
 * cut. TAP lines over semihosting; the host checks what cdnsim holds. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app.h"
#include "port_cortexm.h"
#include "port_lwip.h"
#include "semihost.h"

#define E2E_DOMAIN "cdn.example.com"
/* Agent time a delivery may take: the outage step waits for the host to
 * bring the simulator back, behind back-offs of up to 16 s. */
#define E2E_DELIVERY_MS 180000u
#define E2E_GO_WAIT_MS 120000u

static app_t app;
static int n, failed;

static void ok(int cond, const char *what)
{
    n++;
    failed += !cond;
    printf("%s %d - %s\n", cond ? "ok" : "not ok", n, what);
    fflush(stdout);
}

/* Wait until the host creates the file named step in QEMU's directory. */
static bool wait_go(const char *step)
{
    uint64_t end = port_monotonic_ms() + E2E_GO_WAIT_MS;
    printf("# step: waiting for %s\n", step);
    fflush(stdout);
    while (port_monotonic_ms() < end) {
        int h = semihost_open_read(step);
        if (h >= 0) {
            semihost_close(h);
            return true;
        }
        app_idle_until(&app, port_monotonic_ms() + 50u);
    }
    return false;
}

static unsigned deliver(const char *step)
{
    unsigned left = app_deliver(&app, E2E_DELIVERY_MS);
    printf("# step: %s calls=%lu delivered=%lu failed=%lu retries=%lu handshakes=%lu left=%u\n",
           step, (unsigned long)app.counters.calls, (unsigned long)app.delivered,
           (unsigned long)app.failed, (unsigned long)app.retries,
           (unsigned long)app.counters.handshakes, left);
    fflush(stdout);
    return left;
}

typedef struct {
    unsigned headers, settled, cert_on;
} view_t;

static void visit_header(void *arg, const agent_header_view_t *h)
{
    view_t *v = arg;
    v->headers++;
    if (h->desired && h->delivered && strcmp(h->desired, h->delivered) == 0 && !h->unsure &&
        h->queue == NULL)
        v->settled++;
}

static void visit_cert(void *arg, const agent_cert_view_t *c)
{
    view_t *v = arg;
    v->cert_on += c->desired_on && c->delivered_on && c->queue == NULL;
}

static bool settled(unsigned headers)
{
    view_t v = {0, 0, 0};
    agent_visitor_t vis = {visit_header, visit_cert, &v};
    return agent_visit(&app.store, NULL, &vis) == AGENT_OK && v.headers == headers &&
           v.settled == headers && v.cert_on == 1;
}

static bool boot(void)
{
    cJSON_Hooks hooks = {port_malloc, port_free};
    uint8_t key[PORT_DEVICE_KEY_LEN];
    char ip[16];
    port_cortexm_init();
    cJSON_InitHooks(&hooks);
    if (port_random(key, sizeof key) != PORT_OK)
        return false;
    port_cortexm_set_device_key(key, 1);
    port_cortexm_stack_reset();
    ok(app_boot(&app, true) == AGENT_OK && app_pending(&app) == 5,
       "the device provisions itself from the built-in manifest (3 headers, 1 "
       "origin_request_header rule, 1 certificate)");
    ok(app_net_up(&app, 10000) == PORT_OK, "the LAN9118 and lwIP come up");
    port_lwip_address(ip);
    printf("# address: %s\n", ip);
    ok(strcmp(ip, "0.0.0.0") != 0, "DHCP gave the device an address");
    ok(app_start(&app) == AGENT_OK, "the agent starts from the provisioned settings");
    return failed == 0;
}

int main(void)
{
    if (!boot()) {
        printf("# boot failed\n1..%d\n", n);
        return 1;
    }
    ok(deliver("first") == 0 && settled(4),
       "headers and certificate delivered over TLS through lwIP");

    ok(wait_go("go-outage"), "the host stopped the simulator");
    ok(agent_header_set(&app.store, E2E_DOMAIN, "X-Edge-Region", "ap-southeast", NULL) == AGENT_OK,
       "an edit while the simulator is down");
    uint32_t retries = app.retries;
    ok(deliver("outage") == 0 && settled(4), "the edit is delivered once the simulator is back");
    ok(app.retries >= retries + 2, "it was retried while the simulator was down");

    ok(wait_go("go-cut"), "the host set the simulator to cut its next answer");
    ok(agent_header_set(&app.store, E2E_DOMAIN, "X-Added", "after-a-cut", NULL) == AGENT_OK,
       "a new header while the answer is cut");
    ok(deliver("cut") == 0 && settled(5), "the new header is delivered, its outcome settled");

    /* A certificate push whose answer is cut: its read-back (the served
     * PEM in DescribeDomainCertificateInfo's reply, the desired PEM loaded)
     * is the certificate's peak of RAM, measured here. */
    const app_blob_t *crt = app_blob("cdn.example.com.crt"), *key = app_blob("cdn.example.com.key");
    int64_t now = 0;
    ok(wait_go("go-cert-cut") && crt && key && port_wall_clock(&now) == PORT_OK &&
           agent_cert_set(&app.store, E2E_DOMAIN, "demo-cert-2", crt->data, key->data, now, NULL) ==
               AGENT_OK,
       "the certificate renamed while the simulator cuts its next answer");
    size_t heap_peak = 0;
    port_heap_reset_peak();
    ok(deliver("cert-cut") == 0 && settled(5), "the certificate push is settled by a read-back");
    port_heap_stats(NULL, &heap_peak);
    printf("# figure: cert_readback_heap_peak=%lu\n", (unsigned long)heap_peak);

    app_stop(&app);
    printf("# figure: heap_arena=%lu stack_peak=%lu stack_size=%lu\n",
           (unsigned long)port_cortexm_heap_arena(), (unsigned long)port_cortexm_stack_peak(),
           (unsigned long)port_cortexm_stack_size());
    printf("1..%d\n", n);
    fflush(stdout);
    return failed ? 1 : 0;
}
