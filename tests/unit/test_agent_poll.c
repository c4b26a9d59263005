/* The agent's delivery state machine on its own: agent_poll driven over a
 * scripted transport (the coreHTTP pattern) with a virtual clock and an
 * emulated NOR, so every decision is checked call by call: add, modify by
 * ConfigId, delete, a ConfigId gone behind our back, an unknown outcome
 * adopted by read-back (past the 16th config), duplicates removed,
 * throttling pause, clock correction, a refused configuration parked and
 * resumed by a new agent, a full store or a failed lock at the in-flight
 * mark (nothing sent), certificates on and off, a refused certificate.
 * Runs on the host and on the target (make test-target). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"
#include "emu_flash.h"
#include "port_heap.h"
#include "port.h"
#include "queue.h"
#include "store.h"
#include "test_pki.h"
#ifndef CDNAGENT_TARGET
#include "port_posix.h"
#endif

#define DOM TEST_PKI_DOMAIN
#define NOW_UTC TEST_PKI_NOW_UTC


/* ------------------------------------------------------ the service -- */

enum { FATE_REPLY, FATE_RESET, FATE_NO_CONNECT };

/* One expected request and what the service does with it. */
typedef struct {
    const char *action;   /* x-acs-action, or "GET /" for the unsigned Date probe */
    const char *must;     /* a substring the request must hold (NULL: none) */
    const char *must_not; /* a substring it must not hold (NULL: none) */
    int status;
    const char *body;
    int fate;
    const char *date; /* Date header value, or NULL */
} exchange_t;

static struct {
    const exchange_t *script;
    size_t n, next;
    char req[32768];
    size_t req_len;
    int evaluated;
    char reply[98304];
    size_t reply_len, reply_off;
    int reset_now;
    char failure[512];
    unsigned requests;
} svc;

static void svc_fail(const char *fmt, const char *a, const char *b)
{
    if (!svc.failure[0])
        snprintf(svc.failure, sizeof svc.failure, fmt, a, b);
}

static void svc_script(const exchange_t *script, size_t n)
{
    memset(&svc, 0, sizeof svc);
    svc.script = script;
    svc.n = n;
}

/* Every scripted exchange happened, in order, and nothing else. */
static void svc_done(void)
{
    if (svc.failure[0])
        fail_msg("%s", svc.failure);
    if (svc.next != svc.n)
        fail_msg("only %u of %u scripted requests were made", (unsigned)svc.next, (unsigned)svc.n);
}

static void request_action(char *out, size_t cap)
{
    const char *p = strstr(svc.req, "x-acs-action: ");
    size_t n = 0;
    if (!p) {
        snprintf(out, cap, "%s", strncmp(svc.req, "GET / ", 6) == 0 ? "GET /" : "?");
        return;
    }
    p += 14;
    while (p[n] && p[n] != '\r' && n + 1 < cap)
        n++;
    memcpy(out, p, n);
    out[n] = 0;
}

static void svc_answer(void)
{
    char action[64];
    svc.req[svc.req_len] = 0;
    svc.evaluated = 1;
    svc.requests++;
    request_action(action, sizeof action);
    if (svc.next >= svc.n) {
        svc_fail("unexpected request %s%s", action, "");
        svc.reset_now = 1;
        return;
    }
    const exchange_t *e = &svc.script[svc.next++];
    if (strcmp(action, e->action) != 0)
        svc_fail("expected %s, got %s", e->action, action);
    if (e->must && !strstr(svc.req, e->must))
        svc_fail("%s: request lacks %s", action, e->must);
    if (e->must_not && strstr(svc.req, e->must_not))
        svc_fail("%s: request holds %s", action, e->must_not);
    if (e->fate == FATE_RESET) {
        svc.reset_now = 1; /* it reached the service; the answer is lost */
        return;
    }
    char date[64] = "";
    if (e->date)
        snprintf(date, sizeof date, "Date: %s\r\n", e->date);
    const char *body = e->body ? e->body : "{\"RequestId\":\"R-ok\"}";
    svc.reply_len = (size_t)snprintf(svc.reply, sizeof svc.reply,
                                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                                     "Content-Length: %u\r\n%s\r\n%s",
                                     e->status ? e->status : 200, (unsigned)strlen(body), date,
                                     body);
    svc.reply_off = 0;
}

static int t_connect(void *c, uint32_t t)
{
    (void)c;
    (void)t;
    if (svc.next < svc.n && svc.script[svc.next].fate == FATE_NO_CONNECT) {
        svc.next++;
        return HTTP_ERR_CONNECT;
    }
    return HTTP_OK;
}

static int t_send(void *c, const uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    if (svc.evaluated) {
        svc.evaluated = 0;
        svc.req_len = 0;
        svc.reset_now = 0;
    }
    if (svc.req_len + n >= sizeof svc.req) {
        svc_fail("request larger than %s%s", "32 KB", "");
        return (int)n;
    }
    memcpy(svc.req + svc.req_len, b, n);
    svc.req_len += n;
    return (int)n;
}

static int t_recv(void *c, uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    if (t == 0)
        return HTTP_ERR_TIMEOUT; /* the client's idle check: nothing pending */
    if (!svc.evaluated)
        svc_answer();
    if (svc.reset_now)
        return HTTP_ERR_RESET;
    size_t left = svc.reply_len - svc.reply_off;
    if (left == 0)
        return HTTP_ERR_CLOSED;
    if (n > left)
        n = left;
    memcpy(b, svc.reply + svc.reply_off, n);
    svc.reply_off += n;
    return (int)n;
}

static void t_close(void *c)
{
    (void)c;
}

static const http_transport_t scripted = {t_connect, t_send, t_recv, t_close, NULL, NULL, NULL};

/* ------------------------------------------------------- the device -- */

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    agent_t *a;
    agent_config_t cfg;
    uint64_t now;        /* virtual monotonic time */
    int64_t wall_offset; /* the device's wall clock against NOW_UTC */
    int wall_ok;
    int lock_fails;
    int locked; /* locks taken and not yet released */
    unsigned events[AGENT_EV_KINDS];
    size_t heap_at_lock; /* the most the heap held when the store was locked */
    char last_detail[128];
} fx_t;

static bool fx_clock(void *ctx, int64_t *utc)
{
    fx_t *f = ctx;
    *utc = NOW_UTC + f->wall_offset + (int64_t)(f->now / 1000u);
    return f->wall_ok;
}

/* Like the Linux hook: the lock is taken, then the remount may fail. */
static store_status_t fx_lock(void *ctx)
{
    fx_t *f = ctx;
    size_t in_use = 0;
    port_heap_stats(&in_use, NULL);
    if (in_use > f->heap_at_lock)
        f->heap_at_lock = in_use;
    f->locked++;
    return f->lock_fails ? STORE_ERR_IO : STORE_OK;
}

static void fx_unlock(void *ctx)
{
    fx_t *f = ctx;
    f->locked--;
}

static void fx_event(void *ctx, const agent_event_t *ev)
{
    fx_t *f = ctx;
    f->events[ev->kind]++;
    snprintf(f->last_detail, sizeof f->last_detail, "%s", ev->detail ? ev->detail : "");
}

static const sign_credentials_t creds = {"testid", "testsecret", NULL};

static void fx_agent(fx_t *f)
{
    agent_config_default(&f->cfg);
    f->cfg.host = "cdn.aliyuncs.com";
    f->cfg.tls = false;
    f->cfg.transport = &scripted;
    f->cfg.credentials = creds;
    f->cfg.policy.base_ms = 100;
    f->cfg.policy.cap_ms = 2000;
    f->cfg.lock = fx_lock;
    f->cfg.unlock = fx_unlock;
    f->cfg.lock_ctx = f;
    f->cfg.wall_clock = fx_clock;
    f->cfg.clock_ctx = f;
    f->cfg.event = fx_event;
    f->cfg.event_ctx = f;
    assert_int_equal(agent_new(&f->a, &f->st, &f->cfg), AGENT_OK);
}

static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(emu_flash_init(&f->emu, 4096, 16, 8), 0);
    f->work = malloc(STORE_WORK_SIZE(16));
    assert_non_null(f->work);
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, STORE_WORK_SIZE(16),
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    f->now = port_monotonic_ms(); /* the token bucket starts on the port's clock */
    f->wall_ok = 1;
    f->wall_offset = -(int64_t)(f->now / 1000u);
    fx_agent(f);
}

static void fx_free(fx_t *f)
{
    agent_free(f->a);
    emu_flash_free(&f->emu);
    free(f->work);
}

/* A fresh device and agent, and the service's script for the test. */
static void fx_begin(fx_t *f, const exchange_t *script, size_t n)
{
    fx_init(f);
    svc_script(script, n);
}

/* The script was played out exactly; the device goes. */
static void fx_end(fx_t *f)
{
    svc_done();
    fx_free(f);
}

/* Poll until nothing is due; time jumps over every wait. */
static unsigned fx_settle(fx_t *f, unsigned max_steps)
{
    unsigned steps = 0;
    while (steps < max_steps) {
        uint32_t w = agent_poll(f->a, f->now);
        steps++;
        if (w == UINT32_MAX)
            break;
        f->now += w;
    }
    return steps;
}

static unsigned fx_queued(fx_t *f)
{
    unsigned n = 0;
    assert_int_equal(queue_count(&f->st, &n), STORE_OK);
    return n;
}

typedef struct {
    char key[72], desired[72], delivered[72], config_id[32];
    int unsure, found;
    queue_entry_t q;
    int queued;
} hview_t;

static void view_cb(void *arg, const agent_header_view_t *h)
{
    hview_t *v = arg;
    if (strcmp(h->key, v->key) != 0)
        return;
    v->found = 1;
    snprintf(v->desired, sizeof v->desired, "%s", h->desired ? h->desired : "(none)");
    snprintf(v->delivered, sizeof v->delivered, "%s", h->delivered ? h->delivered : "(none)");
    snprintf(v->config_id, sizeof v->config_id, "%s", h->config_id);
    v->unsure = h->unsure;
    v->queued = h->queue != NULL;
    if (h->queue)
        v->q = *h->queue;
}

static hview_t header_view(fx_t *f, const char *key)
{
    hview_t v;
    memset(&v, 0, sizeof v);
    snprintf(v.key, sizeof v.key, "%s", key);
    agent_visitor_t vis = {view_cb, NULL, &v};
    assert_int_equal(agent_visit(&f->st, NULL, &vis), AGENT_OK);
    return v;
}

static void set_header(fx_t *f, const char *key, const char *value)
{
    assert_int_equal(agent_header_set(&f->st, DOM, key, value, NULL), AGENT_OK);
}

#define BATCH "BatchSetCdnDomainConfig"
#define DESCRIBE "DescribeCdnDomainConfigs"
#define DELETE "DeleteSpecificConfig"
#define ADDED(id)                                                                                  \
    "{\"RequestId\":\"R-add\",\"DomainConfigList\":{\"DomainConfigModel\":[{\"DomainName\":\"" DOM \
    "\",\"ConfigId\":" #id ",\"FunctionName\":\"set_req_header\"}]}}"
#define ERR(code) \
    "{\"RequestId\":\"R-err\",\"Code\":\"" code "\",\"Message\":\"refused: " code "\"}"
#define HAS_CONFIG_ID(id) "%22configId%22%3A" #id

/* --------------------------------------------------------------- tests -- */

static void test_add_modify_delete(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, "X-A", "configId", 200, ADDED(1001), FATE_REPLY, NULL},
        {BATCH, HAS_CONFIG_ID(1001), NULL, 200, ADDED(1001), FATE_REPLY, NULL},
        {DELETE, "ConfigId=1001", NULL, 200, NULL, FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 3);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    hview_t v = header_view(&f, "X-A");
    assert_true(v.found && !v.queued && !v.unsure);
    assert_string_equal(v.delivered, "v1");
    assert_string_equal(v.config_id, "1001");
    assert_string_equal(f.last_detail, "added ConfigId 1001");
    /* modify: by the recorded ConfigId */
    set_header(&f, "X-A", "v2");
    fx_settle(&f, 20);
    v = header_view(&f, "X-A");
    assert_string_equal(v.delivered, "v2");
    assert_string_equal(f.last_detail, "modified ConfigId 1001");
    /* delete: the record goes with the entry */
    assert_int_equal(agent_header_rm(&f.st, DOM, "X-A"), AGENT_OK);
    fx_settle(&f, 20);
    v = header_view(&f, "X-A");
    assert_false(v.found);
    assert_int_equal(fx_queued(&f), 0);
    assert_int_equal(f.events[AGENT_EV_DELIVERED], 3);
    fx_end(&f);
}

static void test_config_id_gone(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, NULL, "configId", 200, ADDED(1001), FATE_REPLY, NULL},
        {BATCH, HAS_CONFIG_ID(1001), NULL, 400, ERR("InvalidConfigId.NotFound"), FATE_REPLY, NULL},
        {BATCH, "v2", "configId", 200, ADDED(1002), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 3);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    set_header(&f, "X-A", "v2");
    fx_settle(&f, 20);
    hview_t v = header_view(&f, "X-A");
    assert_string_equal(v.config_id, "1002");
    assert_string_equal(v.delivered, "v2");
    assert_false(v.queued);
    fx_end(&f);
}

/* A read-back listing n_before other headers, then ours (and copies). */
static char *readback_body(unsigned n_before, const char *ours)
{
    size_t cap = 256 + (n_before + 3) * 220;
    char *b = malloc(cap);
    size_t o = 0;
    assert_non_null(b);
    o += (size_t)snprintf(b + o, cap - o,
                          "{\"RequestId\":\"R-rb\",\"DomainConfigs\":{"
                          "\"DomainConfig\":[");
    for (unsigned i = 0; i < n_before; i++)
        o += (size_t)snprintf(b + o, cap - o,
                              "{\"ConfigId\":\"%u\",\"FunctionName\":\"set_req_header\","
                              "\"Status\":\"success\",\"FunctionArgs\":{\"FunctionArg\":["
                              "{\"ArgName\":\"key\",\"ArgValue\":\"X-Other-%u\"},"
                              "{\"ArgName\":\"value\",\"ArgValue\":\"o\"}]}},",
                              500 + i, i);
    o += (size_t)snprintf(b + o, cap - o, "%s]}}", ours);
    return b;
}

#define CFG(id, key, value)                                                                        \
    "{\"ConfigId\":" #id ",\"FunctionName\":\"set_req_header\",\"FunctionArgs\":{\"FunctionArg\":" \
    "[{\"ArgName\":\"key\",\"ArgValue\":\"" key "\"},{\"ArgName\":\"value\",\"ArgValue\":\"" value \
    "\"},{\"ArgName\":\"aliyun_id\",\"ArgValue\":\"1\"}]}}"

/* The add went up and its answer was lost: the agent reads back (our
 * header is the 25th config, past the old 16-config limit) and adopts the
 * copy the CDN holds instead of adding a second. */
static void test_unknown_outcome_adopted(void **state)
{
    (void)state;
    char *rb = readback_body(24, CFG(1005, "x-a", "v1"));
    exchange_t script[] = {
        {BATCH, NULL, NULL, 0, NULL, FATE_RESET, NULL},
        {DESCRIBE, "set_req_header", NULL, 200, rb, FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 2);
    set_header(&f, "X-A", "v1");
    assert_int_equal(agent_poll(f.a, f.now), 0); /* the add: outcome unknown */
    hview_t v = header_view(&f, "X-A");
    assert_true(v.unsure && v.queued);
    assert_int_equal(v.q.state, QUEUE_BACKOFF);
    fx_settle(&f, 20);
    v = header_view(&f, "X-A");
    assert_true(!v.unsure && !v.queued);
    assert_string_equal(v.config_id, "1005");
    assert_string_equal(v.delivered, "v1");
    agent_counters_t c;
    agent_counters(f.a, &c);
    assert_int_equal(c.adoptions, 1);
    assert_int_equal(c.duplicates_removed, 0);
    free(rb);
    fx_end(&f);
}

/* Three copies on the CDN: the one with the desired value is kept, the
 * others deleted in one call; then nothing more is sent. */
static void test_duplicates_removed(void **state)
{
    /* clang-format off */
    (void)state;
    char *rb = readback_body(30, CFG(1005, "X-A", "old") "," CFG(1006, "X-A", "v1") "," CFG(
                                     /* clang-format on */
                                     1007, "X-A", "v1"));
    exchange_t script[] = {
        {BATCH, NULL, NULL, 0, NULL, FATE_RESET, NULL},
        {DESCRIBE, NULL, NULL, 200, rb, FATE_REPLY, NULL},
        {DELETE, "ConfigId=1005%2C1007", NULL, 200, NULL, FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 3);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    hview_t v = header_view(&f, "X-A");
    assert_true(!v.unsure && !v.queued);
    assert_string_equal(v.config_id, "1006");
    agent_counters_t c;
    agent_counters(f.a, &c);
    assert_int_equal(c.duplicates_removed, 2);
    free(rb);
    fx_end(&f);
}

/* The duplicate delete fails: the header stays unsure and is read back
 * again; the second read-back finds one copy and adopts it. */
static void test_duplicate_delete_fails(void **state)
{
    (void)state;
    char *two = readback_body(0, CFG(1005, "X-A", "v1") "," CFG(1006, "X-A", "v1"));
    char *one = readback_body(0, CFG(1005, "X-A", "v1"));
    exchange_t script[] = {
        {BATCH, NULL, NULL, 0, NULL, FATE_RESET, NULL},
        {DESCRIBE, NULL, NULL, 200, two, FATE_REPLY, NULL},
        {DELETE, "ConfigId=1006", NULL, 503, ERR("ServiceUnavailable"), FATE_REPLY, NULL},
        {DESCRIBE, NULL, NULL, 200, one, FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 4);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    hview_t v = header_view(&f, "X-A");
    assert_true(!v.unsure && !v.queued);
    assert_string_equal(v.config_id, "1005");
    free(two);
    free(one);
    fx_end(&f);
}

/* Throttling: every call pauses for the service's one-second window, give or
 * take half of it (devices refused together do not come back together). */
static void test_throttling_pause(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, NULL, NULL, 400, ERR("Throttling.User"), FATE_REPLY, NULL},
        {BATCH, NULL, NULL, 200, ADDED(1001), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 2);
    set_header(&f, "X-A", "v1");
    assert_int_equal(agent_poll(f.a, f.now), 0);
    uint32_t w = agent_poll(f.a, f.now + 499); /* a pause of 500..1500 ms */
    assert_true(w > 0 && w <= 1001);           /* paused: nothing sent */
    assert_int_equal(svc.requests, 1);
    f.now += 1500;
    fx_settle(&f, 20);
    assert_int_equal(svc.requests, 2);
    agent_counters_t c;
    agent_counters(f.a, &c);
    assert_int_equal(c.throttled, 1);
    assert_int_equal(fx_queued(&f), 0);
    fx_end(&f);
}

/* A device clock two hours behind: InvalidTimeStamp.Expired with the
 * server's Date, and the retry is signed with the server's time. A device
 * with no clock at all asks the server's Date first. */
static void test_clock_correction(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, "x-acs-date: 2026-11-29T13:", NULL, 400, ERR("InvalidTimeStamp.Expired"),
         FATE_REPLY, "Sun, 29 Nov 2026 15:00:00 GMT"},
        {BATCH, "x-acs-date: 2026-11-29T15:00:", NULL, 200, ADDED(1001), FATE_REPLY, NULL},
        {"GET /", NULL, NULL, 404, "{}", FATE_REPLY, "Sun, 29 Nov 2026 16:30:00 GMT"},
        {BATCH, "x-acs-date: 2026-11-29T16:30:", NULL, 200, ADDED(1002), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 4);
    f.wall_offset -= 7200;
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    assert_int_equal(fx_queued(&f), 0);
    agent_counters_t c;
    agent_counters(f.a, &c);
    assert_int_equal(c.clock_fixes, 1);
    /* no clock at all: a new agent (the corrected base is per agent) */
    agent_free(f.a);
    f.wall_ok = 0;
    fx_agent(&f);
    set_header(&f, "X-B", "v1");
    fx_settle(&f, 20);
    assert_int_equal(fx_queued(&f), 0);
    fx_end(&f);
}

/* A wrong secret: the entry is parked as blocked, the agent stops calling
 * (a later change waits, nothing is sent), and a new configuration (a new
 * agent) delivers both, in one batch, without the edits being typed again. */
static void test_credentials_parked_and_resumed(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, "X-A", NULL, 403, ERR("SignatureDoesNotMatch"), FATE_REPLY, NULL},
        {BATCH, "X-B", NULL, 200,
         "{\"RequestId\":\"R-add\",\"DomainConfigList\":{\"DomainConfigModel\":[{\"DomainName\""
         ":\"" DOM "\",\"ConfigId\":1001},{\"DomainName\":\"" DOM "\",\"ConfigId\":1002}]}}",
         FATE_REPLY, NULL},
        {DESCRIBE, "set_req_header", NULL, 200,
         "{\"RequestId\":\"R-l\",\"DomainConfigs\":{\"DomainConfig\":[" CFG(1001, "X-A",
                                                                            "v1") "," CFG(1002,
                                                                                          "X-B",
                                                                                          "v1") "]}}",
         FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 3);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    set_header(&f, "X-B", "v1");
    fx_settle(&f, 20);
    assert_int_equal(svc.requests, 1);
    assert_int_equal(agent_poll(f.a, f.now + 3600000u), UINT32_MAX);
    assert_int_equal(svc.requests, 1);
    const char *code = NULL;
    assert_true(agent_halted(f.a, &code, NULL));
    assert_string_equal(code, "SignatureDoesNotMatch");
    hview_t v = header_view(&f, "X-A");
    assert_int_equal(v.q.state, QUEUE_BLOCKED);
    assert_string_equal(v.q.code, "SignatureDoesNotMatch");
    assert_int_equal(f.events[AGENT_EV_BLOCKED], 1);
    v = header_view(&f, "X-B");
    assert_int_equal(v.q.state, QUEUE_PENDING);
    agent_free(f.a);
    fx_agent(&f); /* fixed credentials: a new configuration */
    fx_settle(&f, 20);
    assert_int_equal(fx_queued(&f), 0);
    assert_string_equal(header_view(&f, "X-A").config_id, "1001");
    assert_string_equal(header_view(&f, "X-B").config_id, "1002");
    fx_end(&f);
}

/* A refused input stays failed (no retry) until the change is made again
 * or queue retry asks. */
static void test_permanent_failure(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, NULL, NULL, 404, ERR("InvalidDomain.NotFound"), FATE_REPLY, NULL},
        {BATCH, NULL, NULL, 200, ADDED(1001), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 2);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 20);
    assert_int_equal(agent_poll(f.a, f.now + 3600000u), UINT32_MAX);
    hview_t v = header_view(&f, "X-A");
    assert_int_equal(v.q.state, QUEUE_FAILED);
    assert_false(v.unsure); /* a 4xx: it did not apply */
    assert_int_equal(svc.requests, 1);
    unsigned n = 0;
    assert_int_equal(agent_retry(&f.st, DOM, "X-A", &n), AGENT_OK);
    assert_int_equal(n, 1);
    fx_settle(&f, 20);
    assert_int_equal(fx_queued(&f), 0);
    fx_end(&f);
}

/* Transport failures never give up: hundreds of refused connections, then
 * the service is back and the change goes through. */
static void test_outage_never_gives_up(void **state)
{
    (void)state;
    enum { OUTAGE = 300 };
    static exchange_t script[OUTAGE + 1];
    for (unsigned i = 0; i < OUTAGE; i++)
        script[i] = (exchange_t){BATCH, NULL, NULL, 0, NULL, FATE_NO_CONNECT, NULL};
    script[OUTAGE] = (exchange_t){BATCH, NULL, NULL, 200, ADDED(1001), FATE_REPLY, NULL};
    fx_t f;
    fx_begin(&f, script, OUTAGE + 1);
    set_header(&f, "X-A", "v1");
    fx_settle(&f, 4 * OUTAGE + 20); /* a call, a backoff, a token wait each */
    assert_int_equal(fx_queued(&f), 0);
    /* a refused connection sent nothing: no read-back, just the add again */
    assert_int_equal(f.events[AGENT_EV_RETRY], OUTAGE);
    fx_end(&f);
}

static void fill_store(fx_t *f, unsigned *n)
{
    static uint8_t junk[2048];
    char key[16];
    memset(junk, 0x5a, sizeof junk);
    *n = 0;
    for (size_t len = sizeof junk; len >= 1; len /= 2) {
        for (;;) {
            snprintf(key, sizeof key, "J%05u", *n);
            if (store_put(&f->st, key, strlen(key), junk, len) != STORE_OK)
                break;
            (*n)++;
        }
    }
}

/* The store is full when the in-flight mark must be written: nothing is
 * sent, delivery pauses with a store error, and goes on once there is room. */
static void test_store_full_at_unsure_mark(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, NULL, NULL, 200, ADDED(1001), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 1);
    set_header(&f, "X-A", "a value long enough that its record needs room of its own");
    unsigned junk = 0;
    fill_store(&f, &junk);
    assert_true(junk > 10);
    uint32_t w = agent_poll(f.a, f.now);
    assert_true(w > 0 && w != UINT32_MAX);
    assert_int_equal(svc.requests, 0);
    assert_int_equal(f.events[AGENT_EV_STORE], 1);
    hview_t v = header_view(&f, "X-A");
    assert_true(v.queued && !v.unsure);
    char key[16];
    for (unsigned i = 0; i < junk; i++) {
        snprintf(key, sizeof key, "J%05u", i);
        assert_int_equal(store_delete(&f.st, key, strlen(key)), STORE_OK);
    }
    fx_settle(&f, 30);
    assert_int_equal(svc.requests, 1);
    assert_int_equal(fx_queued(&f), 0);
    fx_end(&f);
}

/* The lock (a remount on Linux) fails: the step stops before anything is
 * read or sent, and delivery pauses. */
static void test_lock_failure(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {BATCH, NULL, NULL, 200, ADDED(1001), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 1);
    set_header(&f, "X-A", "v1");
    f.lock_fails = 1;
    uint32_t w = agent_poll(f.a, f.now);
    assert_true(w > 0 && w != UINT32_MAX);
    assert_int_equal(svc.requests, 0);
    assert_int_equal(f.events[AGENT_EV_STORE], 1);
    /* Regression (review): a lock that failed after it was taken stayed
     * held through the pause, so the CLI could not edit meanwhile. */
    assert_int_equal(f.locked, 0);
    f.lock_fails = 0;
    fx_settle(&f, 20);
    assert_int_equal(fx_queued(&f), 0);
    assert_int_equal(f.locked, 0);
    fx_end(&f);
}

typedef struct {
    int found, delivered_on, queued;
    queue_entry_t q;
} cview_t;

static void cert_cb(void *arg, const agent_cert_view_t *c)
{
    cview_t *v = arg;
    v->found = 1;
    v->delivered_on = c->delivered_present && c->delivered_on;
    v->queued = c->queue != NULL;
    if (c->queue)
        v->q = *c->queue;
}

static cview_t cert_view(fx_t *f)
{
    cview_t v;
    memset(&v, 0, sizeof v);
    agent_visitor_t vis = {NULL, cert_cb, &v};
    assert_int_equal(agent_visit(&f->st, DOM, &vis), AGENT_OK);
    return v;
}

static void device_key(void)
{
#ifndef CDNAGENT_TARGET
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_agent_poll.%ld.key", (long)rand());
    port_posix_set_device_key_path(path);
    (void)remove(path);
    assert_int_equal(port_posix_write_device_key(path, 1), PORT_OK);
#endif
}

/* Certificate on, off; a refused certificate fails with the server's words. */
static void test_certificate(void **state)
{
    (void)state;
    static const exchange_t script[] = {
        {"SetDomainServerCertificate", "ServerCertificateStatus=on", NULL, 200, NULL, FATE_REPLY,
         NULL},
        {"SetDomainServerCertificate", "ServerCertificateStatus=off", NULL, 200, NULL, FATE_REPLY,
         NULL},
        {"SetDomainServerCertificate", "CertName=v3", NULL, 400, ERR("Certificate.MissMatch"),
         FATE_REPLY, NULL},
    };
    fx_t f;
    cdnapi_result_t res;
    device_key();
    fx_begin(&f, script, 3);
    assert_int_equal(agent_cert_set(&f.st, DOM, "v1", TEST_CERT_PEM, TEST_KEY_PEM, NOW_UTC, &res),
                     AGENT_OK);
    fx_settle(&f, 20);
    cview_t v = cert_view(&f);
    assert_true(v.found && v.delivered_on && !v.queued);
    assert_int_equal(agent_cert_off(&f.st, DOM), AGENT_OK);
    fx_settle(&f, 20);
    v = cert_view(&f);
    assert_true(!v.delivered_on && !v.queued);
    assert_int_equal(agent_cert_set(&f.st, DOM, "v3", TEST_CERT_PEM, TEST_KEY_PEM, NOW_UTC, &res),
                     AGENT_OK);
    fx_settle(&f, 20);
    v = cert_view(&f);
    assert_true(v.queued);
    assert_int_equal(v.q.state, QUEUE_FAILED);
    assert_string_equal(v.q.code, "Certificate.MissMatch");
    assert_int_equal(f.events[AGENT_EV_FAILED], 1);
    fx_end(&f);
}

/* The public edges: every status has a name, agent_new refuses what it
 * cannot work with (and says which), a fresh agent is not halted. */
static uint64_t fx_erases(const fx_t *f)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < f->emu.dev.sector_count; i++)
        n += f->emu.erase_counts[i];
    return n;
}

/* Idle time readies erased sectors (store_gc_ahead) when configured: one
 * bounded step a poll, polled again soon while there is more; off, an idle
 * poll touches nothing; a step that fails is left to the next write. */
static void test_idle_gc_ahead(void **state)
{
    (void)state;
    fx_t f;
    fx_begin(&f, NULL, 0);
    /* turn the ring a few times with records that die */
    uint8_t v[600];
    memset(v, 0x42, sizeof v);
    for (int i = 0; i < 400; i++) {
        char k[8];
        snprintf(k, sizeof k, "Z%d", i % 7);
        assert_int_equal(store_put(&f.st, k, strlen(k), v, sizeof v), STORE_OK);
    }
    uint64_t e0 = fx_erases(&f);
    assert_int_equal(agent_poll(f.a, f.now), UINT32_MAX); /* off: nothing to do */
    assert_int_equal(fx_erases(&f), e0);

    /* a count of its own: two sectors, a step or two */
    agent_free(f.a);
    f.cfg.gc_ahead_sectors = 2;
    assert_int_equal(agent_new(&f.a, &f.st, &f.cfg), AGENT_OK);
    unsigned two = 0;
    for (uint32_t w = 0; w != UINT32_MAX; two++) {
        assert_true(two < 8);
        w = agent_poll(f.a, f.now);
        f.now += w == UINT32_MAX ? 0 : w;
    }
    uint64_t e_two = fx_erases(&f);
    assert_true(e_two > e0);

    agent_free(f.a);
    f.cfg.gc_ahead_sectors = AGENT_GC_AHEAD_AUTO;
    assert_int_equal(agent_new(&f.a, &f.st, &f.cfg), AGENT_OK);
    unsigned steps = 0;
    for (uint32_t w = 0; w != UINT32_MAX; steps++) {
        uint64_t before = fx_erases(&f);
        assert_true(steps < 64);
        w = agent_poll(f.a, f.now);
        assert_true(fx_erases(&f) - before <= 1);
        assert_true(w == UINT32_MAX || w == AGENT_GC_AHEAD_PACE_MS);
        f.now += w == UINT32_MAX ? 0 : w;
    }
    assert_true(steps > 2);
    assert_true(fx_erases(&f) > e_two); /* AUTO asks for more than two */
    /* ready: the next idle poll erases nothing */
    e0 = fx_erases(&f);
    assert_int_equal(agent_poll(f.a, f.now), UINT32_MAX);
    assert_int_equal(fx_erases(&f), e0);

    /* garbage again; a plan that cannot read the store pauses the agent
     * and does no GC in that step */
    for (int i = 0; i < 40; i++)
        assert_int_equal(store_put(&f.st, "Z0", 2, v, sizeof v), STORE_OK);
    e0 = fx_erases(&f);
    emu_flash_fault_arm(&f.emu, EMU_FAULT_READ_ERROR, 0, 0);
    uint32_t paused = agent_poll(f.a, f.now);
    assert_true(f.emu.fault_fired);
    emu_flash_fault_clear(&f.emu);
    assert_true(paused != UINT32_MAX && paused > 0);
    assert_int_equal(fx_erases(&f), e0);
    assert_true(f.events[AGENT_EV_STORE] > 0);
    f.now += paused;

    /* a step that fails (the flash stops writing mid-step): logged, the
     * poll's answer unchanged */
    emu_flash_cut_after(&f.emu, 0, 0);
    uint32_t w = agent_poll(f.a, f.now);
    assert_true(f.emu.powered_off); /* the step tried to write */
    assert_int_equal(w, UINT32_MAX);
    emu_flash_power_on(&f.emu);
    /* and the next write meets it, repairs and works */
    set_header(&f, "X-After", "1");
    assert_int_equal(fx_queued(&f), 1);
    fx_end(&f);
}

/* The same add with the work area handed in and without: what the heap
 * holds while the store is locked (the work area's time) differs by the
 * area, and a misaligned one is refused. */
static size_t add_heap_at_lock(void *step_work)
{
    static const exchange_t script[] = {
        {BATCH, "X-A", "configId", 200, ADDED(1001), FATE_REPLY, NULL},
    };
    fx_t f;
    fx_begin(&f, script, 1);
    agent_free(f.a);
    f.cfg.step_work = step_work;
    assert_int_equal(agent_new(&f.a, &f.st, &f.cfg), AGENT_OK);
    set_header(&f, "X-A", "v1");
    f.heap_at_lock = 0;
    fx_settle(&f, 20);
    assert_int_equal(f.events[AGENT_EV_DELIVERED], 1);
    size_t at_lock = f.heap_at_lock;
    fx_end(&f);
    return at_lock;
}

static void test_step_work_handed_in(void **state)
{
    (void)state;
    static _Alignas(max_align_t) unsigned char work[AGENT_STEP_WORK_SIZE + 1];
    memset(work, 0xA5, sizeof work);
    size_t own = add_heap_at_lock(NULL), handed = add_heap_at_lock(work);
    assert_true(own >= handed + AGENT_STEP_WORK_SIZE - 128u);
    assert_true(work[0] != 0xA5 || work[1] != 0xA5); /* the agent used it */
    fx_t f;
    fx_init(&f);
    agent_t *a = NULL;
    agent_config_t cfg = f.cfg;
    cfg.step_work = work + 1;
    assert_int_equal(agent_new(&a, &f.st, &cfg), AGENT_ERR_ARG);
    assert_null(a);
    fx_free(&f);
}

static void test_api_edges(void **state)
{
    (void)state;
    static const agent_status_t codes[] =
        {AGENT_OK,        AGENT_ERR_INVALID, AGENT_ERR_STORE_IO,  AGENT_ERR_NOT_FOUND,
         AGENT_ERR_LIMIT, AGENT_ERR_ARG,     AGENT_ERR_NO_KEY,    AGENT_ERR_SECRET,
         AGENT_ERR_NOMEM, AGENT_ERR_CORRUPT, AGENT_ERR_TLS_SETUP, AGENT_ERR_STORE_FULL};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_not_equal(agent_status_str(codes[i]), "unknown");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(agent_status_str(codes[i]), agent_status_str(codes[j]));
    }
    assert_string_equal(agent_status_str((agent_status_t)12345), "unknown");
    /* a failure from below keeps its own status, and only that one */
    for (int s = STORE_NOT_FOUND; s >= STORE_ERR_IDS_USED; s--) {
        agent_status_t ar = agent_status_from_store((store_status_t)s);
        assert_int_equal(agent_status_store(ar), s);
        assert_int_equal(agent_status_http(ar), HTTP_OK);
        assert_string_equal(agent_status_str(ar), store_status_str((store_status_t)s));
    }
    assert_int_equal(agent_status_from_store(STORE_OK), AGENT_OK);
    assert_int_equal(agent_status_store(AGENT_ERR_NOMEM), STORE_OK);
    assert_int_equal(agent_status_store(AGENT_ERR_TLS_SETUP), STORE_OK);
    assert_int_equal(agent_status_http(AGENT_ERR_TLS_SETUP), HTTP_ERR_TLS_SETUP);
    assert_int_equal(agent_status_http(AGENT_ERR_STORE_FULL), HTTP_OK);
    assert_int_equal(agent_status_http(AGENT_ERR_CORRUPT), HTTP_OK);
    assert_string_equal(agent_status_str(AGENT_ERR_STORE_FULL), "store full");
    /* every HTTP client failure reads the same; which one, agent_status_http says */
    assert_string_equal(agent_status_str(AGENT_ERR_HTTP_BASE + HTTP_ERR_CONNECT),
                        agent_status_str(AGENT_ERR_TLS_SETUP));
    assert_int_equal(agent_status_http(AGENT_ERR_HTTP_BASE + HTTP_ERR_CONNECT), HTTP_ERR_CONNECT);

    fx_t f;
    fx_init(&f);
    agent_t *a = NULL;
    agent_config_t cfg = f.cfg;
    assert_int_equal(agent_new(NULL, &f.st, &cfg), AGENT_ERR_ARG);
    assert_int_equal(agent_new(&a, NULL, &cfg), AGENT_ERR_ARG);
    cfg.host = NULL;
    assert_int_equal(agent_new(&a, &f.st, &cfg), AGENT_ERR_ARG);
    cfg = f.cfg;
    cfg.credentials.access_key_secret = NULL;
    assert_int_equal(agent_new(&a, &f.st, &cfg), AGENT_ERR_ARG);
    /* a host that cannot be named in a request */
    static char long_host[HTTP_MAX_HOST_LEN + 16];
    memset(long_host, 'h', sizeof long_host - 1);
    cfg = f.cfg;
    cfg.host = long_host;
    cfg.port = 8443;
    assert_int_equal(agent_new(&a, &f.st, &cfg), AGENT_ERR_ARG);
    /* its own TLS client, with a CA bundle that is no certificate */
    static const char not_pem[] = "-----BEGIN CERTIFICATE-----\nnot base64\n"
                                  "-----END CERTIFICATE-----\n";
    cfg = f.cfg;
    cfg.transport = NULL;
    cfg.tls = true;
    cfg.ca_pem = (const uint8_t *)not_pem;
    cfg.ca_pem_len = sizeof not_pem;
    assert_int_equal(agent_new(&a, &f.st, &cfg), AGENT_ERR_TLS_SETUP);
    assert_null(a);
    const char *code = "x", *msg = "x";
    assert_false(agent_halted(f.a, &code, &msg));
    assert_string_equal(code, "");
    assert_string_equal(msg, "");
    agent_counters_t c;
    agent_counters(f.a, &c);
    assert_int_equal(c.calls, 0);
    assert_int_equal(c.handshakes, 0);
    agent_free(NULL); /* a no-op, like free */
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_modify_delete),
        cmocka_unit_test(test_config_id_gone),
        cmocka_unit_test(test_unknown_outcome_adopted),
        cmocka_unit_test(test_duplicates_removed),
        cmocka_unit_test(test_duplicate_delete_fails),
        cmocka_unit_test(test_throttling_pause),
        cmocka_unit_test(test_clock_correction),
        cmocka_unit_test(test_credentials_parked_and_resumed),
        cmocka_unit_test(test_permanent_failure),
        cmocka_unit_test(test_outage_never_gives_up),
        cmocka_unit_test(test_store_full_at_unsure_mark),
        cmocka_unit_test(test_lock_failure),
        cmocka_unit_test(test_certificate),
        cmocka_unit_test(test_idle_gc_ahead),
        cmocka_unit_test(test_step_work_handed_in),
        cmocka_unit_test(test_api_edges),
    };
    return cmocka_run_group_tests_name("agent_poll", tests, NULL, NULL);
}
