/* agent: configuration, new/free/poll, clock, lock and events; see agent.h.
 * The step itself is agent_deliver.c; records agent_record.c; edits
 * agent_edit.c; status agent_view.c. */
#include "agent_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "port.h"

/* Each family of causes (AGENT_ERR_STORE_BASE, AGENT_ERR_HTTP_BASE) holds
 * the statuses -1 .. -99 of its component. */
#define AGENT_ERR_FAMILY_SPAN 100

agent_status_t agent_status_from_store(store_status_t s)
{
    return s == STORE_OK ? AGENT_OK : (agent_status_t)(AGENT_ERR_STORE_BASE + s);
}

store_status_t agent_status_store(agent_status_t s)
{
    return s < AGENT_ERR_STORE_BASE && s > AGENT_ERR_HTTP_BASE
               ? (store_status_t)(s - AGENT_ERR_STORE_BASE)
               : STORE_OK;
}

http_status_t agent_status_http(agent_status_t s)
{
    return s < AGENT_ERR_HTTP_BASE && s > AGENT_ERR_HTTP_BASE - AGENT_ERR_FAMILY_SPAN
               ? (http_status_t)(s - AGENT_ERR_HTTP_BASE)
               : HTTP_OK;
}

const char *agent_status_str(agent_status_t status)
{
    if (agent_status_store(status) != STORE_OK)
        return store_status_str(agent_status_store(status));
    if (agent_status_http(status) != HTTP_OK) /* which, agent_status_http says */
        return "the TLS/TCP client could not be set up";
    switch (status) {
    case AGENT_OK: return "ok";
    case AGENT_ERR_INVALID: return "invalid input";
    case AGENT_ERR_NOT_FOUND: return "not found";
    case AGENT_ERR_LIMIT: return "limit reached";
    case AGENT_ERR_ARG: return "bad argument";
    case AGENT_ERR_NO_KEY: return "no device key";
    case AGENT_ERR_SECRET: return "sealed secret does not open";
    case AGENT_ERR_NOMEM: return "out of memory";
    case AGENT_ERR_CORRUPT: return "damaged record";
    default: return "unknown";
    }
}

void agent_config_default(agent_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 443;
    cfg->tls = true;
    cfg->signature = SIGN_V3;
    cfg->http_timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    queue_policy_default(&cfg->policy);
    cfg->rate_milli = RETRY_DEFAULT_RATE_MILLI_PER_S;
}

uint32_t agent_random32(void)
{
    uint32_t r = 0;
    (void)port_random(&r, sizeof r); /* jitter only: a failed draw is still a value */
    return r;
}

/* The transport: the caller's, or a TLS/TCP client of our own. */
static agent_status_t transport_setup(agent_t *a, const agent_config_t *cfg)
{
    http_status_t hs;
    if (cfg->transport) {
        a->tr = *cfg->transport;
        return AGENT_OK;
    }
    if (cfg->tls) {
        http_tls_options_t to = {cfg->host, cfg->port, cfg->ca_pem, cfg->ca_pem_len,
                                 cfg->insecure_no_verify};
        hs = http_tls_new(&a->tls, &to, &a->tr);
    } else {
        hs = http_tcp_transport(&a->tr, &a->tcp, cfg->host, cfg->port);
    }
    return hs == HTTP_OK          ? AGENT_OK
           : hs == HTTP_ERR_NOMEM ? AGENT_ERR_NOMEM
                                  : (agent_status_t)(AGENT_ERR_HTTP_BASE + hs);
}

agent_status_t agent_new(agent_t **out, store_t *st, const agent_config_t *cfg)
{
    if (!out || !st || !cfg || !cfg->host || !cfg->credentials.access_key_id ||
        !cfg->credentials.access_key_secret ||
        (uintptr_t)cfg->step_work % _Alignof(max_align_t) != 0)
        return AGENT_ERR_ARG;
    agent_t *a = port_calloc(1, sizeof *a);
    if (!a)
        return AGENT_ERR_NOMEM;
    a->st = st;
    a->cfg = *cfg;
    agent_status_t ar = agent_endpoint_hostport(cfg->host, cfg->port, cfg->tls, a->hostport,
                                                sizeof a->hostport);
    if (ar == AGENT_OK)
        ar = transport_setup(a, cfg);
    if (ar != AGENT_OK) {
        port_free(a);
        return ar;
    }
    http_limits_t lim = {HTTP_DEFAULT_MAX_HEADER_BYTES,
                         cfg->max_reply_bytes ? cfg->max_reply_bytes : HTTP_DEFAULT_MAX_BODY_BYTES,
                         cfg->http_timeout_ms ? cfg->http_timeout_ms : HTTP_DEFAULT_TIMEOUT_MS};
    http_client_init(&a->http, &a->tr, &lim);
    cdnapi_init();
    a->api.http = &a->http;
    a->api.credentials = &a->cfg.credentials;
    a->api.host = a->hostport;
    a->api.signature = cfg->signature;
    a->api.timestamp = NULL;
    if (a->cfg.policy.warn_every == 0)
        a->cfg.policy.warn_every = QUEUE_DEFAULT_WARN_EVERY;
    /* Never 0, and new for every agent: blocked entries of an earlier one
     * (another run, or before a reload) are due again under this one. */
    a->epoch = agent_random32() | 1u;
    /* Burst of one: calls are spread evenly, so a sliding one-second
     * window on the server never sees more than the rate. */
    retry_bucket_init(&a->bucket, cfg->rate_milli ? cfg->rate_milli : RETRY_DEFAULT_RATE_MILLI_PER_S,
                      1, port_monotonic_ms());
    *out = a;
    return AGENT_OK;
}

void agent_free(agent_t *a)
{
    if (!a)
        return;
    agent_deliver_discard(a);
    http_client_close(&a->http);
    if (a->tls)
        http_tls_free(a->tls);
    crypto_wipe(a, sizeof *a);
    port_free(a);
}

void agent_counters(const agent_t *a, agent_counters_t *c)
{
    *c = a->counters;
    c->rate_milli = a->bucket.rate_milli;
    if (a->tls) {
        http_tls_stats_t ts;
        http_tls_stats(a->tls, &ts);
        c->handshakes = ts.handshakes;
    } else {
        c->handshakes = a->http.connects;
    }
}

bool agent_halted(const agent_t *a, const char **code, const char **message)
{
    if (code)
        *code = a->halt_code;
    if (message)
        *message = a->halt_message;
    return a->halted;
}

static store_status_t lock(agent_t *a)
{
    return a->cfg.lock ? a->cfg.lock(a->cfg.lock_ctx) : STORE_OK;
}

static void unlock(agent_t *a)
{
    if (a->cfg.unlock)
        a->cfg.unlock(a->cfg.lock_ctx);
}

void agent_emit(agent_t *a, agent_ev_kind_t kind, const char *detail, const cdnapi_result_t *res,
                uint64_t now_ms)
{
    const queue_entry_t *e = &a->step.e;
    bool retry = kind == AGENT_EV_RETRY;
    uint64_t left = retry && e->next_try_ms > now_ms ? e->next_try_ms - now_ms : 0;
    if (!a->cfg.event)
        return;
    agent_event_t ev = {kind,
                        a->step.domain,
                        a->step.what,
                        detail,
                        res ? res->message : "",
                        res ? res->request_id : "",
                        e->attempts,
                        retry && e->attempts % a->cfg.policy.warn_every == 0,
                        left > UINT32_MAX ? UINT32_MAX : (uint32_t)left};
    a->cfg.event(a->cfg.event_ctx, &ev);
}

uint32_t agent_pause_backoff(agent_t *a, uint64_t now_ms, uint32_t *in_row)
{
    if (*in_row < UINT16_MAX)
        (*in_row)++;
    uint32_t d = retry_backoff_delay_ms(*in_row - 1u, a->cfg.policy.base_ms, a->cfg.policy.cap_ms,
                                        agent_random32());
    if (d == 0)
        d = 1;
    if (now_ms + d > a->pause_until) /* (a longer pause already set stands) */
        a->pause_until = now_ms + d;
    return d;
}

uint32_t agent_store_trouble(agent_t *a, uint64_t now_ms, agent_status_t why, const char *doing)
{
    a->counters.store_errors++;
    uint32_t d = agent_pause_backoff(a, now_ms, &a->store_failures_in_row);
    if (a->cfg.event) {
        char detail[96];
        snprintf(detail, sizeof detail, "%s: %s",
                 why == AGENT_ERR_NOMEM ? "Local.NoMemory" : "Local.Store", agent_status_str(why));
        agent_event_t ev = {AGENT_EV_STORE, "", "store", detail, doing, "", 0, true, d};
        a->cfg.event(a->cfg.event_ctx, &ev);
    }
    return d;
}

static bool wall_clock(agent_t *a, int64_t *utc)
{
    if (a->cfg.wall_clock)
        return a->cfg.wall_clock(a->cfg.clock_ctx, utc);
    return port_wall_clock(utc) == PORT_OK;
}

/* Time to sign with: the server-corrected clock when we have one, else the
 * wall clock. false: no trustworthy time at all. */
bool agent_now_utc(agent_t *a, uint64_t now_ms, int64_t *utc)
{
    if (a->have_base) {
        *utc = a->base_utc + (int64_t)((now_ms - a->base_mono) / 1000u);
        return true;
    }
    return wall_clock(a, utc);
}

void agent_clock_from_server(agent_t *a, int64_t server_utc, uint64_t now_ms)
{
    a->have_base = true;
    a->base_utc = server_utc;
    a->base_mono = now_ms;
    a->counters.clock_fixes++;
    port_log(PORT_LOG_WARN, "agent", "clock corrected from the server's Date header");
}

/* A corrected or an injected clock is pinned into the request; otherwise
 * sign reads the port's wall clock itself (timestamp NULL). */
void agent_sign_time(agent_t *a, uint64_t now_ms)
{
    int64_t utc;
    bool pinned = a->have_base || a->cfg.wall_clock;
    a->api.timestamp = pinned && agent_now_utc(a, now_ms, &utc) &&
                               sign_format_timestamp(utc, a->ts) == SIGN_OK
                           ? a->ts
                           : NULL;
}

/* No clock at all: an unsigned GET of the API host answers with a Date. */
/* An unsigned GET /, which no account's rate counts: true when the service
 * answered at all (resp is the caller's to free). */
static bool get_root(agent_t *a, http_response_t *resp)
{
    char req[HTTP_MAX_HOST_LEN + 64];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", a->hostport);
    memset(resp, 0, sizeof *resp);
    return http_client_request(&a->http, (const uint8_t *)req, (size_t)n, resp) == HTTP_OK;
}

static uint32_t fetch_server_date(agent_t *a, uint64_t now_ms)
{
    http_response_t resp;
    bool ok = get_root(a, &resp) && resp.has_date;
    if (ok)
        agent_clock_from_server(a, resp.server_date, now_ms);
    http_response_free(&resp);
    return ok ? 0 : a->cfg.policy.base_ms;
}

/* After an outage (AGENT_LINK_PROBE_AFTER calls in a row met no answer)
 * with a start splay: an unsigned request, which no account's rate counts,
 * asks whether the service answers again; when it does, the next call waits
 * a random part of the splay, as at a start, so that a fleet that lost the
 * service together does not come back in the same seconds. No answer: the
 * link's back-off goes on. */
static uint32_t link_probe(agent_t *a, uint64_t now_ms)
{
    http_response_t resp;
    bool answered = get_root(a, &resp);
    http_response_free(&resp);
    if (!answered)
        return agent_pause_backoff(a, now_ms, &a->link_failures_in_row);
    a->link_failures_in_row = 0;
    uint64_t wait = (uint64_t)agent_random32() % ((uint64_t)a->cfg.start_splay_ms + 1u);
    a->pause_until = now_ms + wait;
    return wait ? (uint32_t)wait : 1u;
}

/* Sectors store_gc_ahead keeps ready: the configured count, or for AUTO
 * enough for a STORE_VALUE_MAX value in chunks (about 200 B of each sector
 * go to its header, reserves and chunk headers) and one more. */
static uint32_t gc_ahead_target(const agent_t *a)
{
    uint32_t n = a->cfg.gc_ahead_sectors;
    if (n != AGENT_GC_AHEAD_AUTO)
        return n;
    uint32_t per = a->st->dev->sector_size - 200u; /* sectors are >= 512 B (store.h) */
    return (STORE_VALUE_MAX + per - 1u) / per + 1u;
}

/* Idle (nothing due now): one bounded GC step ahead of need, and another
 * soon while there is more to do. A failure is logged and left to the next
 * write, which meets it and reports it. */
static uint32_t gc_ahead_step(agent_t *a, uint32_t wait)
{
    bool more = false;
    store_status_t rc = store_gc_ahead(a->st, gc_ahead_target(a), &more);
    if (rc != STORE_OK) {
        port_log(PORT_LOG_WARN, "agent", "idle GC: %s", store_status_str(rc));
        return wait;
    }
    return more && wait > AGENT_GC_AHEAD_PACE_MS ? AGENT_GC_AHEAD_PACE_MS : wait;
}

/* Kept when it moved by a quarter or more, or came back to the configured
 * rate (then removed: nothing learnt), at most once every
 * AGENT_RATE_SAVE_MS while calls go on: a fleet's share moves by halves,
 * and a few writes an hour are nothing to the store. An idle agent writes
 * the last move (so a stop or restart finds it). A failed write is counted
 * and said, and tried again at the next look; the rate in RAM is the one
 * that counts while the agent runs. */
void agent_rate_note(agent_t *a, uint64_t now_ms, bool at_rest)
{
    uint32_t r = a->bucket.rate_milli, max = a->bucket.max_rate_milli;
    uint32_t kept = a->rate_saved ? a->rate_saved : max;
    bool moved = (uint64_t)r * 4u <= (uint64_t)kept * 3u ||
                 (uint64_t)r * 3u >= (uint64_t)kept * 4u || (r >= max && kept != max);
    if (!moved || (!at_rest && a->rate_save_ms && now_ms - a->rate_save_ms < AGENT_RATE_SAVE_MS))
        return;
    a->rate_save_ms = now_ms;
    if ((r >= max ? agent_rate_clear(a->st) : agent_rate_put(a->st, r)) == AGENT_OK) {
        a->rate_saved = r >= max ? 0 : r;
    } else { /* counted and said; the next write of a change meets it too */
        a->counters.store_errors++;
        port_log(PORT_LOG_WARN, "agent", "the learnt call rate could not be kept on flash");
    }
}

typedef struct {
    agent_t *a;
    int64_t now_utc;
    bool say;          /* false: only find whether any certificate needs a look */
    store_status_t rc; /* a failed read stops the look and pauses delivery */
    int learn;         /* a slot whose delivered record lacks its notAfter (-1: none) */
    uint64_t tried;    /* the slots this look has tried to learn it for */
} expiry_ctx_t;

_Static_assert(AGENT_MAX_DOMAINS <= 64u, "expiry_ctx_t.tried holds a bit per slot");

/* A certificate an older version delivered has no notAfter in its record:
 * read it once from the desired PEM when that is the one delivered (the
 * same SHA-256), and keep it. The connection is closed first, so that a
 * 12 KB PEM and the TLS buffers are never in RAM together (it happens once
 * per such certificate). A desired PEM that differs is being delivered:
 * that delivery keeps the notAfter. */
static store_status_t expiry_learn(agent_t *a, unsigned slot)
{
    char ck[AGENT_SLOT_KEY_LEN + 1], dk[AGENT_SLOT_KEY_LEN + 1], hex[65];
    uint8_t b[CREC_HEAD_MAX];
    size_t len = 0, off = 0;
    char *cert = NULL;
    crec_t want, have;
    int64_t not_before;
    agent_slot_key(ck, STORE_KEY_CERT, slot);
    agent_slot_key(dk, STORE_KEY_CERT_DELIVERED, slot);
    store_status_t rc = store_get(a->st, dk, AGENT_SLOT_KEY_LEN, b, sizeof b, &len);
    if (rc != STORE_OK || !crec_decode(b, len, &have, NULL))
        return rc == STORE_ERR_CORRUPT || rc == STORE_NOT_FOUND ? STORE_OK : rc;
    http_client_close(&a->http);
    agent_status_t ar = agent_load_cert(a->st, ck, &cert, &off, &want);
    if (ar != AGENT_OK) /* gone, damaged, no memory (the next look): nothing learnt now */
        return agent_status_store(ar);
    agent_sha256_hex(cert + off, hex);
    bool same = !(want.flags & CF_CAS) && strcmp(hex, have.sha256) == 0;
    if (same && cdnapi_cert_validity(cert + off, &not_before, &have.not_after)) {
        have.flags |= CF_EXPIRY;
        rc = store_put(a->st, dk, AGENT_SLOT_KEY_LEN, b, crec_encode(&have, b));
    }
    port_free(cert);
    return rc;
}

/* A delivered certificate near or past its end: said once per look (a
 * day), a warning within AGENT_EXPIRY_WARN_DAYS, an error after. Only the
 * small delivered records are read (their notAfter kept at delivery): no
 * PEM is loaded or parsed while a TLS connection may be open. */
static bool expiry_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    expiry_ctx_t *x = arg;
    uint8_t b[CREC_HEAD_MAX];
    char domain[AGENT_DOMAIN_MAX + 1], detail[96];
    size_t len = 0;
    crec_t c;
    int slot = agent_slot_of_key(key, key_len);
    (void)value_len;
    store_status_t rc = slot < 0 ? STORE_NOT_FOUND
                                 : store_get(x->a->st, key, key_len, b, sizeof b, &len);
    bool ok = rc == STORE_OK && crec_decode(b, len, &c, NULL);
    if (ok && (c.flags & (CF_ON | CF_EXPIRY | CF_CAS)) == CF_ON && c.sha256[0] && !x->say &&
        x->learn < 0 && !(x->tried & (UINT64_C(1) << slot)))
        x->learn = slot; /* delivered by an older version: learnt after the walk */
    if (ok && (c.flags & (CF_ON | CF_EXPIRY)) == (CF_ON | CF_EXPIRY))
        rc = agent_domain_name(x->a->st, (unsigned)slot, domain);
    else if (rc == STORE_OK)
        return true; /* no expiry to watch (damage is fsck's to report) */
    if (rc != STORE_OK) {
        x->rc = rc == STORE_NOT_FOUND || rc == STORE_ERR_CORRUPT || rc == STORE_ERR_TOO_BIG
                    ? STORE_OK
                    : rc;
        return x->rc == STORE_OK;
    }
    int64_t left = c.not_after - x->now_utc;
    x->a->expiry_watch = true;
    if (!x->say || left > (int64_t)AGENT_EXPIRY_WARN_DAYS * 86400)
        return true;
    long days = (long)((left < 0 ? -left : left) / 86400);
    snprintf(detail, sizeof detail, left < 0 ? "expired %ld day%s ago" : "expires in %ld day%s",
             days, days == 1 ? "" : "s");
    agent_event_t ev = {AGENT_EV_EXPIRY, domain, "certificate", detail, "", "", 0, left >= 0, 0};
    if (x->a->cfg.event) /* (said once: by the caller's handler, else by the log) */
        x->a->cfg.event(x->a->cfg.event_ctx, &ev);
    else
        port_log(left < 0 ? PORT_LOG_ERROR : PORT_LOG_WARN, "agent", "the certificate of %s %s",
                 domain, detail);
    return true;
}

/* Called locked: the daily look at the delivered certificates' expiry (a
 * minute later again when the wall clock is not known yet). Returns the
 * wait until the next look, UINT32_MAX when no certificate needs one (a
 * delivery sets expiry_watch again). */
static uint32_t expiry_look(agent_t *a, uint64_t now_ms)
{
    static const char prefix[1] = {STORE_KEY_CERT_DELIVERED};
    expiry_ctx_t x = {a, 0, false, STORE_OK, -1, 0};
    if (now_ms >= a->next_expiry_check) {
        /* the wall clock is asked only when a certificate needs it */
        store_status_t rc;
        do { /* one walk per certificate whose notAfter is learnt */
            a->expiry_watch = false;
            x.learn = -1;
            rc = store_iterate(a->st, prefix, 1, expiry_cb, &x);
            if (rc == STORE_OK && x.rc == STORE_OK && x.learn >= 0) {
                x.tried |= UINT64_C(1) << x.learn;
                rc = expiry_learn(a, (unsigned)x.learn);
            }
        } while (rc == STORE_OK && x.rc == STORE_OK && x.learn >= 0);
        if (rc == STORE_OK && x.rc == STORE_OK && a->expiry_watch &&
            !agent_now_utc(a, now_ms, &x.now_utc)) {
            a->next_expiry_check = now_ms + AGENT_EXPIRY_NO_CLOCK_MS;
            return AGENT_EXPIRY_NO_CLOCK_MS;
        }
        x.say = true;
        if (rc == STORE_OK && x.rc == STORE_OK && a->expiry_watch)
            rc = store_iterate(a->st, prefix, 1, expiry_cb, &x);
        rc = rc != STORE_OK ? rc : x.rc;
        if (rc != STORE_OK) /* looked at again after the pause */
            return agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                       "reading certificate records");
        a->next_expiry_check = now_ms + AGENT_EXPIRY_CHECK_MS;
    }
    return a->expiry_watch ? (uint32_t)(a->next_expiry_check - now_ms) : UINT32_MAX;
}

uint32_t agent_poll(agent_t *a, uint64_t now_ms)
{
    uint32_t wait = UINT32_MAX;
    if (a->halted)
        return UINT32_MAX; /* nothing will be due under this configuration */
    if (!a->started) {
        a->started = true;
        if (a->cfg.start_splay_ms)
            a->pause_until = now_ms + agent_random32() % ((uint64_t)a->cfg.start_splay_ms + 1u);
    }
    if (now_ms < a->pause_until)
        return (uint32_t)(a->pause_until - now_ms);
    if (a->cfg.start_splay_ms && a->link_failures_in_row >= AGENT_LINK_PROBE_AFTER)
        return link_probe(a, now_ms);
    if (!agent_deliver_work(a, true))
        return agent_store_trouble(a, now_ms, AGENT_ERR_NOMEM, "allocating a record buffer");
    store_status_t lr = lock(a);
    if (lr != STORE_OK) {
        unlock(a); /* a hook may have taken its lock before it failed */
        (void)agent_deliver_work(a, false);
        return agent_store_trouble(a, now_ms, agent_status_from_store(lr),
                                   "locking the store (nothing was sent)");
    }
    agent_plan_t plan = agent_deliver_plan(a, now_ms, &wait);
    /* idle, and the plan met no store trouble (that pauses the agent) */
    bool idle = plan == PLAN_IDLE && wait > 0 && now_ms >= a->pause_until;
    if (idle && a->rate_loaded)
        agent_rate_note(a, now_ms, wait == UINT32_MAX); /* (UINT32_MAX: nothing queued) */
    if (idle && a->cfg.gc_ahead_sectors)
        wait = gc_ahead_step(a, wait);
    if (idle) {
        uint32_t look = expiry_look(a, now_ms);
        wait = look < wait ? look : wait;
    }
    unlock(a);
    (void)agent_deliver_work(a, false);
    if (plan == PLAN_NO_CLOCK)
        return fetch_server_date(a, now_ms);
    if (plan != PLAN_CALL)
        return wait;
    agent_deliver_call(a, now_ms);
    /* Without the lock or the work area the outcome cannot be written: the
     * in-flight mark stands, so the next step reads back before anything is
     * sent again. */
    if (!agent_deliver_work(a, true)) {
        agent_deliver_discard(a);
        return agent_store_trouble(a, now_ms, AGENT_ERR_NOMEM, "allocating a record buffer");
    }
    lr = lock(a);
    if (lr != STORE_OK) {
        unlock(a);
        agent_deliver_discard(a);
        return agent_store_trouble(a, now_ms, agent_status_from_store(lr),
                                   "locking the store after a call");
    }
    wait = agent_deliver_apply(a, now_ms);
    unlock(a);
    (void)agent_deliver_work(a, false);
    return wait;
}
