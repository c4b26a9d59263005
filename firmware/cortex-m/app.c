/* Boot, provision, deliver: the whole device-side life of the agent. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "crypto.h"
#include "port.h"
#include "port_cortexm.h"

#define LOG(lvl, ...) port_log(lvl, "app", __VA_ARGS__)

/* The store's NOR: RAM on the QEMU boards (the image starts from an empty
 * device every boot, as a factory line would). 16 x 4 KB, 8-byte writes:
 * the geometry of a small serial NOR partition. */
#define APP_SECTOR_SIZE 4096u
#define APP_SECTOR_COUNT 16u
#define APP_WRITE_SIZE 8u
static uint8_t flash_mem[APP_SECTOR_SIZE * APP_SECTOR_COUNT];

_Static_assert(sizeof flash_mem <= APP_FLASH_MAX, "flash larger than APP_FLASH_MAX");
_Static_assert(APP_SECTOR_COUNT <= APP_SECTORS_MAX, "more sectors than APP_SECTORS_MAX");

agent_status_t app_boot(app_t *app, bool erase_flash)
{
    store_status_t sr;
    int64_t now;
    memset(app, 0, sizeof *app);
    if (port_cortexm_ram_flash(&app->flash, flash_mem, APP_SECTOR_SIZE, APP_SECTOR_COUNT,
                               APP_WRITE_SIZE, erase_flash) != PORT_OK)
        return agent_status_from_store(STORE_ERR_IO);
    sr = store_mount(&app->store, &app->flash, app->work, sizeof app->work, 0, NULL);
    if (sr == STORE_OK) {
        agent_settings_t *s = port_malloc(sizeof *s);
        agent_status_t ar = s ? agent_settings_load(&app->store, s, NULL) : AGENT_ERR_NOMEM;
        if (s) {
            agent_settings_wipe(s);
            port_free(s);
        }
        if (ar != AGENT_ERR_NOT_FOUND)
            return ar; /* provisioned already (or broken: say so, change nothing) */
    } else if (sr != STORE_ERR_NOT_STORE) {
        LOG(PORT_LOG_ERROR, "store mount failed: %s", store_status_str(sr));
        return agent_status_from_store(sr);
    }
    LOG(PORT_LOG_INFO, "new device: provisioning from the built-in manifest");
    sr = store_format(&app->store, &app->flash, app->work, sizeof app->work);
    if (sr != STORE_OK) {
        LOG(PORT_LOG_ERROR, "store format failed: %s", store_status_str(sr));
        return agent_status_from_store(sr);
    }
    if (port_wall_clock(&now) != PORT_OK) {
        LOG(PORT_LOG_ERROR, "no wall clock: certificates cannot be checked");
        return AGENT_ERR_INVALID;
    }
    return app_provision(&app->store, now);
}

static void on_event(void *ctx, const agent_event_t *ev)
{
    app_t *app = ctx;
    static const char *const kinds[AGENT_EV_KINDS] = {"delivered", "failed", "blocked", "retry",
                                                      "store",     "expiry", "switched"};
    switch (ev->kind) {
    case AGENT_EV_DELIVERED: app->delivered++; break;
    case AGENT_EV_FAILED: app->failed++; break;
    case AGENT_EV_BLOCKED: app->blocked++; break;
    case AGENT_EV_RETRY: app->retries++; break;
    case AGENT_EV_STORE: app->store_errors++; break;
    case AGENT_EV_EXPIRY:
    case AGENT_EV_SWITCHED: break; /* (logged below) */
    }
    LOG(PORT_LOG_INFO, "%s %s %s: %s", kinds[ev->kind], ev->domain, ev->what,
        ev->detail ? ev->detail : "");
}

/* Copy the strings the agent borrows into app->kept; NULL fields of cfg
 * point into it afterwards. */
static agent_status_t keep_borrowed(app_t *app, const agent_settings_t *s, const char *host,
                                    agent_config_t *cfg)
{
    const char *src[4] = {host, s->access_key_id, s->access_key_secret, s->security_token};
    size_t len[4], total = 0;
    for (size_t i = 0; i < 4; i++)
        total += (len[i] = strlen(src[i])) + 1u;
    app->kept = port_malloc(total);
    if (app->kept == NULL)
        return AGENT_ERR_NOMEM;
    app->kept_len = total;
    char *dst[4];
    char *at = app->kept;
    for (size_t i = 0; i < 4; i++) {
        dst[i] = at;
        memcpy(at, src[i], len[i] + 1u);
        at += len[i] + 1u;
    }
    cfg->host = dst[0];
    cfg->credentials.access_key_id = dst[1];
    cfg->credentials.access_key_secret = dst[2];
    cfg->credentials.security_token = len[3] ? dst[3] : NULL;
    return AGENT_OK;
}

/* The agent's configuration from the loaded settings. */
static agent_status_t configure(app_t *app, const agent_settings_t *s, const char *ca_pem,
                                agent_config_t *cfg)
{
    char host[AGENT_ENDPOINT_MAX + 1];
    agent_config_default(cfg);
    if (agent_endpoint_split(s->endpoint, host, sizeof host, &cfg->port, &cfg->tls) != AGENT_OK ||
        !cfg->tls || ca_pem == NULL) {
        LOG(PORT_LOG_ERROR, "settings: endpoint or CA bundle unusable");
        return AGENT_ERR_INVALID;
    }
    cfg->ca_pem = (const uint8_t *)ca_pem;
    cfg->ca_pem_len = strlen(ca_pem) + 1;
    cfg->signature = s->signature == SIGN_V1 ? SIGN_V1 : SIGN_V3;
    cfg->policy = s->policy;
    cfg->rate_milli = s->rate_milli;
    cfg->event = on_event;
    cfg->event_ctx = app;
    cfg->step_work = app->step_work;
    return keep_borrowed(app, s, host, cfg);
}

agent_status_t app_start(app_t *app)
{
    agent_config_t cfg;
    char *ca_pem = NULL;
    agent_settings_t *s = port_malloc(sizeof *s);
    agent_status_t rc = s ? agent_settings_load(&app->store, s, &ca_pem) : AGENT_ERR_NOMEM;
    if (rc != AGENT_OK)
        LOG(PORT_LOG_ERROR, "settings: %s", agent_status_str(rc));
    else
        rc = configure(app, s, ca_pem, &cfg);
    if (rc == AGENT_OK)
        rc = agent_new(&app->agent, &app->store, &cfg);
    if (s != NULL) {
        agent_settings_wipe(s);
        port_free(s);
    }
    /* http copies the CA bundle: the settings' copy is not needed again. */
    port_free(ca_pem);
    if (rc != AGENT_OK)
        app_stop(app);
    return rc;
}

void app_idle_until(app_t *app, uint64_t t)
{
    while (port_monotonic_ms() < t) {
        if (app->net_poll != NULL)
            app->net_poll();
        __asm__ volatile("wfi");
    }
}

unsigned app_deliver(app_t *app, uint32_t max_ms)
{
    uint64_t deadline = port_monotonic_ms() + max_ms;
    for (;;) {
        uint64_t now = port_monotonic_ms();
        uint32_t w = agent_poll(app->agent, now);
        if (w == UINT32_MAX)
            break;
        now = port_monotonic_ms();
        if (now + w > deadline)
            break;
        if (w)
            app_idle_until(app, now + w);
    }
    agent_counters(app->agent, &app->counters);
    return app_pending(app);
}

unsigned app_pending(app_t *app)
{
    unsigned n = 0;
    store_status_t rc = queue_count(&app->store, &n);
    if (rc == STORE_OK)
        return n;
    LOG(PORT_LOG_ERROR, "queue unreadable: %s", store_status_str(rc));
    return APP_PENDING_UNKNOWN;
}

void app_stop(app_t *app)
{
    agent_free(app->agent);
    app->agent = NULL;
    if (app->kept != NULL) {
        crypto_wipe(app->kept, app->kept_len);
        port_free(app->kept);
    }
    app->kept = NULL;
    app->kept_len = 0;
}
