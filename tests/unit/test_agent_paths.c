/* The agent's remaining paths, on records written straight into the store:
 * the daily look at delivered certificates' expiry (no clock yet, no event
 * handler, records that are damaged, too big, without a domain or under a
 * key that names no slot, notAfter learnt for certificates an older version
 * delivered and every reason it cannot be, a read failing at each point of
 * the look), the certificate API choice's checks, damaged settings, the
 * watch records, and edits that run out of memory or meet a busy or full
 * store. The transport refuses every connection: none of these steps may
 * send anything. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/sha256.h>

#include "agent.h"
#include "emu_flash.h"
#include "port.h"
#include "port_heap.h"
#include "port_posix.h"
#include "queue.h"
#include "store.h"
#include "test_pki.h"

#define DOM TEST_PKI_DOMAIN
#define NOW_UTC TEST_PKI_NOW_UTC
/* the test certificate's notAfter (test_pki.h) */
#define TEST_CERT_NOT_AFTER "2046-11-24T14:54:07Z"

/* record flags (agent_internal.h) */
#define CF_ON 0x01u
#define CF_PRESENT 0x02u
#define CF_CAS 0x04u
#define CF_EXPIRY 0x10u

/* ------------------------------------------------------------ fixture -- */

typedef struct {
    agent_ev_kind_t kind;
    char domain[80], what[80], detail[128], message[200];
    bool warn;
} ev_t;

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    agent_t *a;
    agent_config_t cfg;
    uint64_t now;
    int64_t utc; /* what the wall clock says */
    int clock_ok;
    unsigned connects;
    ev_t ev[64];
    unsigned nev, evk[AGENT_EV_KINDS];
    size_t heap0;
} fx_t;

static fx_t *cur;

/* Scripted answers (tests that deliver): each request takes the next one;
 * without a script every connection is refused. */
typedef struct {
    int status; /* 0: the receive fails with err */
    const char *body;
    int err;
} answer_t;

static struct {
    answer_t a[8];
    unsigned n, next;
    char actions[512];
    char req[65536];
    size_t req_len;
    int answered;
    char reply[8192];
    size_t reply_len, reply_off;
    int err;
} script;

static void script_reset(void)
{
    memset(&script, 0, sizeof script);
}

static void script_add(int status, const char *body, int err)
{
    assert_true(script.n < sizeof script.a / sizeof script.a[0]);
    script.a[script.n++] = (answer_t){status, body, err};
}

static int t_connect(void *c, uint32_t t)
{
    (void)c;
    (void)t;
    cur->connects++;
    if (script.n == 0)
        return HTTP_ERR_CONNECT;
    script.answered = 1;
    return HTTP_OK;
}

static int t_send(void *c, const uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    if (script.answered) {
        script.answered = 0;
        script.req_len = 0;
    }
    assert_true(script.req_len + n < sizeof script.req);
    memcpy(script.req + script.req_len, b, n);
    script.req_len += n;
    script.req[script.req_len] = 0;
    return (int)n;
}

static int t_recv(void *c, uint8_t *b, size_t n, uint32_t t)
{
    (void)c;
    (void)t;
    if (!script.answered) {
        const char *act = strstr(script.req, "x-acs-action: ");
        script.answered = 1;
        assert_true(script.next < script.n);
        const answer_t *an = &script.a[script.next++];
        size_t o = strlen(script.actions);
        snprintf(script.actions + o, sizeof script.actions - o, "%s%.*s", o ? "," : "",
                 act ? (int)strcspn(act + 14, "\r") : 1, act ? act + 14 : "?");
        script.err = an->status ? 0 : an->err;
        script.reply_off = 0;
        script.reply_len = an->status ? (size_t)snprintf(script.reply, sizeof script.reply,
                                                         "HTTP/1.1 %d X\r\nContent-Length: "
                                                         "%zu\r\nConnection: close\r\n\r\n%s",
                                                         an->status, strlen(an->body), an->body)
                                      : 0;
    }
    if (script.err)
        return script.err;
    size_t left = script.reply_len - script.reply_off;
    if (left == 0)
        return HTTP_ERR_CLOSED;
    if (n > left)
        n = left;
    memcpy(b, script.reply + script.reply_off, n);
    script.reply_off += n;
    return (int)n;
}

static void t_close(void *c)
{
    (void)c;
}

static const http_transport_t refusing = {t_connect, t_send, t_recv, t_close, NULL, NULL, NULL};

static bool fx_clock(void *ctx, int64_t *utc)
{
    fx_t *f = ctx;
    *utc = f->utc;
    return f->clock_ok;
}

static void fx_event(void *ctx, const agent_event_t *e)
{
    fx_t *f = ctx;
    f->evk[e->kind]++;
    if (f->nev >= sizeof f->ev / sizeof f->ev[0])
        return;
    ev_t *v = &f->ev[f->nev++];
    v->kind = e->kind;
    snprintf(v->domain, sizeof v->domain, "%s", e->domain);
    snprintf(v->what, sizeof v->what, "%s", e->what);
    snprintf(v->detail, sizeof v->detail, "%s", e->detail);
    snprintf(v->message, sizeof v->message, "%s", e->message);
    v->warn = e->warn;
}

static const sign_credentials_t creds = {"testid", "testsecret", NULL};

static void fx_device(fx_t *f)
{
    memset(f, 0, sizeof *f);
    cur = f;
    script_reset();
    port_heap_stats(&f->heap0, NULL);
    assert_int_equal(emu_flash_init(&f->emu, 4096, 16, 8), 0);
    f->work = malloc(STORE_WORK_SIZE(16));
    assert_non_null(f->work);
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, STORE_WORK_SIZE(16),
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    f->now = 1000000;
    f->utc = NOW_UTC;
    f->clock_ok = 1;
    agent_config_default(&f->cfg);
    f->cfg.host = "cdn.aliyuncs.com";
    f->cfg.tls = false;
    f->cfg.transport = &refusing;
    f->cfg.credentials = creds;
    f->cfg.policy.base_ms = 100;
    f->cfg.policy.cap_ms = 2000;
    f->cfg.wall_clock = fx_clock;
    f->cfg.clock_ctx = f;
    f->cfg.event = fx_event;
    f->cfg.event_ctx = f;
}

static void fx_agent(fx_t *f)
{
    assert_int_equal(agent_new(&f->a, &f->st, &f->cfg), AGENT_OK);
}

static void fx_end(fx_t *f)
{
    size_t in_use = 0;
    port_heap_fail_at(-1, false);
    agent_free(f->a);
    f->a = NULL;
    emu_flash_free(&f->emu);
    free(f->work);
    port_heap_stats(&in_use, NULL);
    assert_int_equal(in_use, f->heap0);
    if (script.n == 0)
        assert_int_equal(f->connects, 0);
    else
        assert_int_equal(script.next, script.n); /* every answer was asked for */
}

static void put(fx_t *f, const char *key, const void *v, size_t len)
{
    assert_int_equal(store_put(&f->st, key, strlen(key), v, len), STORE_OK);
}

static void slot_key(char out[4], char tag, unsigned slot)
{
    snprintf(out, 4, "%c%02x", tag, slot);
}

static void put_domain(fx_t *f, unsigned slot, const char *name)
{
    char k[4];
    slot_key(k, 'D', slot);
    put(f, k, name, strlen(name));
}

static void sha_hex(const char *s, char out[65])
{
    unsigned char d[32];
    mbedtls_sha256_ret((const unsigned char *)s, strlen(s), d, 0);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A delivered record c<ss>: head, notAfter (CF_EXPIRY), the PEM's digest. */
static size_t put_delivered(fx_t *f, unsigned slot, uint8_t flags, const char *name,
                            int64_t not_after, const char *sha)
{
    uint8_t b[256];
    size_t n = 0, nl = strlen(name);
    char k[4];
    b[n++] = 1;
    b[n++] = flags;
    b[n++] = (uint8_t)nl;
    memcpy(b + n, name, nl);
    n += nl;
    if (flags & CF_EXPIRY) {
        for (int i = 0; i < 8; i++)
            b[n++] = (uint8_t)((uint64_t)not_after >> (8 * i));
    }
    memcpy(b + n, sha, strlen(sha));
    n += strlen(sha);
    slot_key(k, 'c', slot);
    put(f, k, b, n);
    return n;
}

/* A desired record C<ss>: head and payload (a PEM, or "CertId\0region"). */
static void put_desired(fx_t *f, unsigned slot, uint8_t flags, const char *name,
                        const char *payload, size_t plen)
{
    uint8_t *b = malloc(3 + strlen(name) + plen);
    size_t n = 0, nl = strlen(name);
    char k[4];
    assert_non_null(b);
    b[n++] = 1;
    b[n++] = flags;
    b[n++] = (uint8_t)nl;
    memcpy(b + n, name, nl);
    n += nl;
    memcpy(b + n, payload, plen);
    n += plen;
    slot_key(k, 'C', slot);
    put(f, k, b, n);
    free(b);
}

static size_t value_len(fx_t *f, const char *key)
{
    size_t len = 0;
    assert_int_equal(store_get(&f->st, key, strlen(key), NULL, 0, &len), STORE_ERR_TOO_BIG);
    return len;
}

static uint8_t flags_of(fx_t *f, const char *key)
{
    uint8_t b[300];
    size_t len = 0;
    assert_int_equal(store_get(&f->st, key, strlen(key), b, sizeof b, &len), STORE_OK);
    return b[1];
}

/* Damage a stored value in place: the first copy of the bytes `what` in
 * the flash gets one bit flipped, so its CRC fails. */
static void damage(fx_t *f, const char *key, const void *what, size_t len)
{
    size_t size = (size_t)f->emu.dev.sector_size * f->emu.dev.sector_count;
    uint8_t *p = memmem(f->emu.mem, size, what, len);
    uint8_t tmp[512];
    size_t got = 0;
    assert_non_null(p);
    p[len / 2] ^= 0x01;
    assert_int_equal(store_get(&f->st, key, strlen(key), tmp, sizeof tmp, &got), STORE_ERR_CORRUPT);
}

static int64_t cert_not_after(void)
{
    int64_t na;
    assert_true(cdnapi_iso_time(TEST_CERT_NOT_AFTER, &na));
    return na;
}

static unsigned events(fx_t *f, agent_ev_kind_t kind, const char *domain)
{
    unsigned n = 0;
    for (unsigned i = 0; i < f->nev; i++)
        n += f->ev[i].kind == kind && (!domain || strcmp(f->ev[i].domain, domain) == 0);
    return n;
}

static const ev_t *find_ev(fx_t *f, agent_ev_kind_t kind, const char *domain)
{
    for (unsigned i = 0; i < f->nev; i++)
        if (f->ev[i].kind == kind && strcmp(f->ev[i].domain, domain) == 0)
            return &f->ev[i];
    fail_msg("no event of kind %d for %s", (int)kind, domain);
    return NULL;
}

/* ---------------------------------------------------------- statuses -- */

static void test_status_outside_families(void **state)
{
    (void)state;
    agent_status_t s = (agent_status_t)(AGENT_ERR_HTTP_BASE - 150);
    assert_int_equal(agent_status_http(s), HTTP_OK);
    assert_int_equal(agent_status_store(s), STORE_OK);
    assert_string_equal(agent_status_str(s), "unknown");
    assert_int_equal(agent_status_http(AGENT_ERR_TLS_SETUP), HTTP_ERR_TLS_SETUP);
}

/* ------------------------------------------------------------ expiry -- */

/* A certificate with a known notAfter but no wall clock: the look is
 * tried again a minute later, and says nothing until the clock is there. */
static void test_expiry_waits_for_clock(void **state)
{
    (void)state;
    fx_t f;
    fx_device(&f);
    put_domain(&f, 0, DOM);
    put_delivered(&f, 0, CF_ON | CF_PRESENT | CF_EXPIRY, "c1", NOW_UTC + 5 * 86400 + 100, "ab");
    f.clock_ok = 0;
    fx_agent(&f);
    assert_int_equal(agent_poll(f.a, f.now), AGENT_EXPIRY_NO_CLOCK_MS);
    assert_int_equal(f.nev, 0);
    f.now += 1000;
    assert_int_equal(agent_poll(f.a, f.now), AGENT_EXPIRY_NO_CLOCK_MS - 1000);
    f.clock_ok = 1;
    f.now += AGENT_EXPIRY_NO_CLOCK_MS;
    assert_int_equal(agent_poll(f.a, f.now), AGENT_EXPIRY_CHECK_MS);
    assert_int_equal(f.nev, 1);
    assert_int_equal(f.ev[0].kind, AGENT_EV_EXPIRY);
    assert_string_equal(f.ev[0].domain, DOM);
    assert_string_equal(f.ev[0].what, "certificate");
    assert_string_equal(f.ev[0].detail, "expires in 5 days");
    assert_true(f.ev[0].warn);
    fx_end(&f);
}

/* Without an event handler the look says it in the log: a warning before
 * the end, an error after it. */
static void test_expiry_logged_without_handler(void **state)
{
    (void)state;
    fx_t f;
    char path[96], log[4096];
    fx_device(&f);
    put_domain(&f, 0, DOM);
    put_delivered(&f, 0, CF_ON | CF_PRESENT | CF_EXPIRY, "c1", NOW_UTC + 86400 + 5, "ab");
    put_domain(&f, 1, "old.example.com");
    put_delivered(&f, 1, CF_ON | CF_PRESENT | CF_EXPIRY, "c2", NOW_UTC - 3 * 86400 - 5, "cd");
    f.cfg.event = NULL;
    fx_agent(&f);
    snprintf(path, sizeof path, "/tmp/test_agent_paths.%ld.log", (long)getpid());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *lf = fopen(path, "w+");
    assert_non_null(lf);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(lf), STDERR_FILENO) >= 0);
    uint32_t w = agent_poll(f.a, f.now);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(lf);
    size_t n = fread(log, 1, sizeof log - 1, lf);
    log[n] = 0;
    fclose(lf);
    remove(path);
    assert_int_equal(w, AGENT_EXPIRY_CHECK_MS);
    assert_non_null(strstr(log, "the certificate of " DOM " expires in 1 day\n"));
    assert_non_null(strstr(log, "the certificate of old.example.com expired 3 days ago\n"));
    fx_end(&f);
}

/* Delivered records the look cannot use are passed over, and the good one
 * is still said: a key that names no slot, a record that does not decode,
 * one too big to be a record head, one whose domain is gone, one whose
 * domain record is damaged, and one that is off. */
static void test_expiry_skips_odd_records(void **state)
{
    (void)state;
    fx_t f;
    uint8_t big[300];
    static const char bad_domain[] = "damaged-domain.example.com";
    fx_device(&f);
    put_domain(&f, 0, DOM);
    put_delivered(&f, 0, CF_ON | CF_PRESENT | CF_EXPIRY, "c1", NOW_UTC + 2 * 86400 + 5, "ab");
    put(&f, "czz", "\x01\x11\x00", 3);
    put(&f, "c7", "\x01\x11\x00", 3);
    put_domain(&f, 1, "b.example.com");
    put(&f, "c01", "\x09\x11\x00", 3); /* another version */
    put_domain(&f, 2, "c.example.com");
    memset(big, 0x11, sizeof big);
    big[0] = 1;
    put(&f, "c02", big, sizeof big);
    put_delivered(&f, 3, CF_ON | CF_PRESENT | CF_EXPIRY, "c3", NOW_UTC + 86400, "ab"); /* no D03 */
    put_domain(&f, 4, bad_domain);
    put_delivered(&f, 4, CF_ON | CF_PRESENT | CF_EXPIRY, "c4", NOW_UTC + 86400, "ab");
    damage(&f, "D04", bad_domain, strlen(bad_domain));
    put_domain(&f, 5, "e.example.com");
    put_delivered(&f, 5, CF_PRESENT | CF_EXPIRY, "c5", NOW_UTC + 86400, "ab"); /* off */
    fx_agent(&f);
    assert_int_equal(agent_poll(f.a, f.now), AGENT_EXPIRY_CHECK_MS);
    assert_int_equal(f.nev, 1);
    assert_int_equal(events(&f, AGENT_EV_EXPIRY, DOM), 1);
    assert_string_equal(f.ev[0].detail, "expires in 2 days");
    assert_int_equal(f.evk[AGENT_EV_STORE], 0);
    fx_end(&f);
}

/* Certificates an older version delivered (no notAfter in the record):
 * learnt from the desired PEM for every slot where it is the delivered one
 * (two in one look), not when the desired record is gone, is a certificate
 * service's, or does not parse; those are passed over again when the look
 * speaks. */
static void test_expiry_learn_cases(void **state)
{
    (void)state;
    fx_t f;
    char hex[65], ghex[65];
    static const char garbage[] = "-----BEGIN CERTIFICATE-----\nnot base64\n";
    int64_t na = cert_not_after();
    fx_device(&f);
    sha_hex(TEST_CERT_PEM, hex);
    sha_hex(garbage, ghex);
    size_t n0 = put_delivered(&f, 0, CF_ON | CF_PRESENT, "c1", 0, hex);
    put_domain(&f, 0, DOM);
    put_desired(&f, 0, CF_ON, "c1", TEST_CERT_PEM, strlen(TEST_CERT_PEM));
    size_t n1 = put_delivered(&f, 1, CF_ON | CF_PRESENT, "c1", 0, hex);
    put_domain(&f, 1, "b.example.com");
    put_desired(&f, 1, CF_ON, "c1", TEST_CERT_PEM, strlen(TEST_CERT_PEM));
    size_t n2 = put_delivered(&f, 2, CF_ON | CF_PRESENT, "c1", 0, hex); /* no C02 */
    put_domain(&f, 2, "c.example.com");
    size_t n3 = put_delivered(&f, 3, CF_ON | CF_PRESENT, "c1", 0, ghex);
    put_domain(&f, 3, "d.example.com");
    put_desired(&f, 3, CF_ON, "c1", garbage, strlen(garbage));
    size_t n4 = put_delivered(&f, 4, CF_ON | CF_PRESENT, "c1", 0, hex);
    put_domain(&f, 4, "e.example.com");
    put_desired(&f, 4, CF_ON | CF_CAS, "c1", "12345\0", 7);
    f.utc = na - 10 * 86400 - 100;
    fx_agent(&f);
    assert_int_equal(agent_poll(f.a, f.now), AGENT_EXPIRY_CHECK_MS);
    assert_int_equal(value_len(&f, "c00"), n0 + 8);
    assert_int_equal(value_len(&f, "c01"), n1 + 8);
    assert_true(flags_of(&f, "c00") & CF_EXPIRY);
    assert_true(flags_of(&f, "c01") & CF_EXPIRY);
    assert_int_equal(value_len(&f, "c02"), n2);
    assert_int_equal(value_len(&f, "c03"), n3);
    assert_int_equal(value_len(&f, "c04"), n4);
    assert_int_equal(f.nev, 2);
    assert_string_equal(find_ev(&f, AGENT_EV_EXPIRY, DOM)->detail, "expires in 10 days");
    assert_string_equal(find_ev(&f, AGENT_EV_EXPIRY, "b.example.com")->detail, "expires in 10 days");
    /* a day later: said again, nothing more learnt */
    f.now += AGENT_EXPIRY_CHECK_MS;
    f.utc += 86400;
    assert_int_equal(agent_poll(f.a, f.now), AGENT_EXPIRY_CHECK_MS);
    assert_int_equal(f.nev, 4);
    assert_string_equal(f.ev[3].detail, "expires in 9 days");
    assert_int_equal(value_len(&f, "c02"), n2);
    fx_end(&f);
}

/* Nothing to learn and no notAfter anywhere: the look finds nothing to
 * watch and the agent sleeps until told otherwise. */
static void test_expiry_nothing_to_watch(void **state)
{
    (void)state;
    fx_t f;
    char hex[65];
    fx_device(&f);
    sha_hex(TEST_CERT_PEM, hex);
    size_t n = put_delivered(&f, 0, CF_ON | CF_PRESENT, "c1", 0, hex);
    put_domain(&f, 0, DOM); /* no desired record */
    fx_agent(&f);
    assert_int_equal(agent_poll(f.a, f.now), UINT32_MAX);
    assert_int_equal(agent_poll(f.a, f.now + 1), UINT32_MAX);
    assert_int_equal(value_len(&f, "c00"), n);
    assert_int_equal(f.nev, 0);
    fx_end(&f);
}

/* A read that fails (or returns a flipped bit) at each point of the look:
 * a failure pauses delivery with a store event, and the next look after
 * the pause learns the notAfter and says it all the same. */
static void fault_sweep(emu_fault_kind_t kind, uint32_t arg)
{
    char hex[65];
    int64_t na = cert_not_after();
    unsigned trouble = 0, fired = 0;
    sha_hex(TEST_CERT_PEM, hex);
    for (uint64_t k = 0; k < 400; k++) {
        fx_t f;
        fx_device(&f);
        size_t n0 = put_delivered(&f, 0, CF_ON | CF_PRESENT, "c1", 0, hex);
        put_domain(&f, 0, DOM);
        put_desired(&f, 0, CF_ON, "c1", TEST_CERT_PEM, strlen(TEST_CERT_PEM));
        put_domain(&f, 1, "b.example.com");
        put_delivered(&f, 1, CF_ON | CF_PRESENT | CF_EXPIRY, "c2", na, "ab");
        f.utc = na - 10 * 86400 - 100;
        fx_agent(&f);
        emu_flash_fault_arm(&f.emu, kind, k, arg);
        uint32_t w = agent_poll(f.a, f.now);
        if (!f.emu.fault_fired) {
            emu_flash_fault_clear(&f.emu);
            fx_end(&f);
            break;
        }
        fired++;
        emu_flash_fault_clear(&f.emu);
        for (unsigned i = 0; i < f.nev; i++)
            if (f.ev[i].kind == AGENT_EV_STORE &&
                strcmp(f.ev[i].message, "reading certificate records") == 0) {
                trouble++;
                assert_non_null(strstr(f.ev[i].detail, "Local.Store"));
            }
        /* after the pause (or the next day) the look completes */
        for (int i = 0; i < 4 && (events(&f, AGENT_EV_EXPIRY, "b.example.com") == 0 ||
                                  events(&f, AGENT_EV_EXPIRY, DOM) == 0);
             i++) {
            assert_true(w != UINT32_MAX);
            f.now += w;
            w = agent_poll(f.a, f.now);
        }
        if (value_len(&f, "c00") == n0) { /* a look that saw a damaged read learns next day */
            f.now += AGENT_EXPIRY_CHECK_MS;
            (void)agent_poll(f.a, f.now);
        }
        assert_int_equal(value_len(&f, "c00"), n0 + 8);
        assert_true(events(&f, AGENT_EV_EXPIRY, DOM) >= 1);
        assert_true(events(&f, AGENT_EV_EXPIRY, "b.example.com") >= 1);
        fx_end(&f);
    }
    assert_true(fired > 5);
    if (kind == EMU_FAULT_READ_ERROR)
        assert_true(trouble > 0);
}

static void test_expiry_read_errors(void **state)
{
    (void)state;
    fault_sweep(EMU_FAULT_READ_ERROR, 0);
}

static void test_expiry_read_flips(void **state)
{
    (void)state;
    fault_sweep(EMU_FAULT_READ_FLIP, 3);
    fault_sweep(EMU_FAULT_READ_FLIP, 8 * 20 + 5);
}

/* ---------------------------------------------------------- settings -- */

static void test_cert_api_checks(void **state)
{
    (void)state;
    fx_t f;
    agent_cert_api_t api = AGENT_CERT_API_SSL;
    fx_device(&f);
    assert_int_equal(agent_cert_api_get(NULL, &api), AGENT_ERR_ARG);
    assert_int_equal(agent_cert_api_get(&f.st, NULL), AGENT_ERR_ARG);
    assert_int_equal(agent_cert_api_set(NULL, AGENT_CERT_API_SSL), AGENT_ERR_ARG);
    assert_int_equal(agent_cert_api_set(&f.st, (agent_cert_api_t)3), AGENT_ERR_ARG);
    assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_OK);
    assert_int_equal(api, AGENT_CERT_API_LEGACY);
    put(&f, "Gapi", "", 0);
    assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_ERR_CORRUPT);
    put(&f, "Gapi", "\x01\x01", 2); /* longer than any this version writes: damaged */
    assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_ERR_CORRUPT);
    assert_int_equal(api, AGENT_CERT_API_LEGACY);
    put(&f, "Gapi", "\x07", 1);
    assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_ERR_CORRUPT);
    assert_int_equal(api, AGENT_CERT_API_LEGACY);
    assert_int_equal(agent_cert_api_set(&f.st, AGENT_CERT_API_SSL_AUTO), AGENT_OK);
    assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_OK);
    assert_int_equal(api, AGENT_CERT_API_SSL_AUTO);
    assert_string_equal(agent_cert_api_action(api), "SetCdnDomainSSLCertificate");
    f.a = NULL;
    fx_end(&f);
}

static const char *key_path(void)
{
    static char path[96];
    snprintf(path, sizeof path, "/tmp/test_agent_paths.%ld.key", (long)getpid());
    return path;
}

static void key_on(void)
{
    (void)remove(key_path());
    assert_int_equal(port_posix_write_device_key(key_path(), 5), PORT_OK);
    port_posix_set_device_key_path(key_path());
}

static void key_off(void)
{
    port_posix_set_device_key_path(NULL);
    (void)remove(key_path());
}

/* Provisioned settings whose policy record is damaged: damaged settings,
 * never a new device. */
static void test_settings_policy_damaged(void **state)
{
    (void)state;
    fx_t f;
    agent_settings_t s, back;
    (void)remove(key_path());
    assert_int_equal(port_posix_write_device_key(key_path(), 7), PORT_OK);
    port_posix_set_device_key_path(key_path());
    fx_device(&f);
    memset(&s, 0, sizeof s);
    snprintf(s.endpoint, sizeof s.endpoint, "https://cdn.aliyuncs.com");
    snprintf(s.access_key_id, sizeof s.access_key_id, "id");
    snprintf(s.access_key_secret, sizeof s.access_key_secret, "secret");
    s.signature = SIGN_V3;
    s.policy.warn_every = 0x5a5a;
    s.policy.base_ms = 0x12345678u;
    s.policy.cap_ms = 0x23456789u;
    s.rate_milli = 0x3456789au;
    assert_int_equal(agent_settings_save(&f.st, &s, NULL), AGENT_OK);
    assert_int_equal(agent_settings_load(&f.st, &back, NULL), AGENT_OK);
    assert_int_equal(back.policy.base_ms, 0x12345678u);
    agent_settings_wipe(&back);
    static const uint8_t pol[] = {0x5a, 0x5a, 0x78, 0x56, 0x34, 0x12, 0x89, 0x67, 0x45, 0x23};
    damage(&f, "Gset", pol, sizeof pol);
    assert_int_equal(agent_settings_load(&f.st, &back, NULL), AGENT_ERR_CORRUPT);
    port_posix_set_device_key_path(NULL);
    (void)remove(key_path());
    f.a = NULL;
    fx_end(&f);
}

/* ----------------------------------------------------------- watches -- */

typedef struct {
    unsigned n;
    char domain[80];
    agent_cert_watch_t w;
} watch_seen_t;

static void watch_cb(void *ctx, const char *domain, const agent_cert_watch_t *w)
{
    watch_seen_t *s = ctx;
    s->n++;
    snprintf(s->domain, sizeof s->domain, "%s", domain);
    s->w = *w;
}

/* Watch records that do not decode, are too big, or name no slot are
 * passed over; the good one is listed. */
static void test_watch_records_odd(void **state)
{
    (void)state;
    fx_t f;
    agent_cert_watch_t w;
    watch_seen_t seen;
    uint8_t big[1200];
    fx_device(&f);
    memset(&w, 0, sizeof w);
    snprintf(w.cert_path, sizeof w.cert_path, "/etc/c.pem");
    snprintf(w.key_path, sizeof w.key_path, "/etc/k.pem");
    w.sha256[0] = 0xaa;
    assert_int_equal(agent_cert_watch_put(&f.st, DOM, &w), AGENT_OK); /* slot 0 */
    put_domain(&f, 1, "b.example.com");
    put(&f, "W01", "\x02\x00\x00\x00\x00", 5); /* another version */
    put_domain(&f, 2, "c.example.com");
    put(&f, "W02", "\x01\x05\x00/a\x00\x00", 7); /* a path past the record's end */
    put_domain(&f, 3, "d.example.com");
    memset(big, 0, sizeof big);
    big[0] = 1;
    put(&f, "W03", big, sizeof big);
    put(&f, "Wxy", "\x01", 1);
    put_domain(&f, 4, "e.example.com");
    put(&f, "W04", "", 0); /* empty */
    static const char bad_domain[] = "damaged-watch.example.com";
    put_domain(&f, 5, bad_domain);
    assert_int_equal(agent_cert_watch_put(&f.st, bad_domain, &w), AGENT_OK);
    damage(&f, "D05", bad_domain, strlen(bad_domain));
    memset(&seen, 0, sizeof seen);
    assert_int_equal(agent_cert_watches(&f.st, NULL, &seen), AGENT_ERR_ARG);
    assert_int_equal(agent_cert_watches(NULL, watch_cb, &seen), AGENT_ERR_ARG);
    assert_int_equal(agent_cert_watches(&f.st, watch_cb, &seen), AGENT_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.domain, DOM);
    assert_string_equal(seen.w.cert_path, "/etc/c.pem");
    assert_string_equal(seen.w.key_path, "/etc/k.pem");
    assert_int_equal(seen.w.sha256[0], 0xaa);
    f.a = NULL;
    fx_end(&f);
}

/* A watch cannot start while the store is in another transaction, nor
 * for a 65th domain; a flash program that fails leaves no watch. */
static void test_watch_put_failures(void **state)
{
    (void)state;
    fx_t f;
    agent_cert_watch_t w;
    watch_seen_t seen;
    char d[64];
    fx_device(&f);
    memset(&w, 0, sizeof w);
    snprintf(w.cert_path, sizeof w.cert_path, "/c");
    snprintf(w.key_path, sizeof w.key_path, "/k");
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    agent_status_t ar = agent_cert_watch_put(&f.st, DOM, &w);
    assert_int_equal(agent_status_store(ar), STORE_ERR_TXN);
    assert_int_equal(store_txn_abort(&f.st), STORE_OK);
    for (unsigned i = 0; i < AGENT_MAX_DOMAINS; i++) {
        snprintf(d, sizeof d, "d%u.example.com", i);
        put_domain(&f, i, d);
    }
    assert_int_equal(agent_cert_watch_put(&f.st, "new.example.com", &w), AGENT_ERR_LIMIT);
    assert_int_equal(agent_cert_watch_put(&f.st, "d5.example.com", &w), AGENT_OK);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(agent_cert_watches(&f.st, watch_cb, &seen), AGENT_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.domain, "d5.example.com");
    f.a = NULL;
    fx_end(&f);

    unsigned failed = 0;
    for (uint64_t k = 0; k < 50; k++) {
        fx_device(&f);
        put_domain(&f, 0, DOM);
        emu_flash_fault_arm(&f.emu, EMU_FAULT_PROGRAM_ERROR, k, 0);
        ar = agent_cert_watch_put(&f.st, DOM, &w);
        int fired = f.emu.fault_fired;
        emu_flash_fault_clear(&f.emu);
        memset(&seen, 0, sizeof seen);
        assert_int_equal(agent_cert_watches(&f.st, watch_cb, &seen), AGENT_OK);
        if (ar == AGENT_OK) {
            assert_int_equal(seen.n, 1);
        } else {
            failed++;
            assert_int_not_equal(agent_status_store(ar), STORE_OK);
            assert_int_equal(seen.n, 0);
        }
        f.a = NULL;
        fx_end(&f);
        if (!fired)
            break;
    }
    assert_true(failed > 0);
}

/* -------------------------------------------------------------- edits -- */

typedef struct {
    unsigned n;
} count_t;

static void count_header(void *arg, const agent_header_view_t *h)
{
    (void)h;
    ((count_t *)arg)->n++;
}

static void count_cert(void *arg, const agent_cert_view_t *c)
{
    assert_true(c->desired_on);
    assert_string_equal(c->domain, DOM);
    ((count_t *)arg)->n++;
}

static unsigned headers(fx_t *f)
{
    count_t c = {0};
    agent_visitor_t vis = {count_header, NULL, &c};
    assert_int_equal(agent_visit(&f->st, NULL, &vis), AGENT_OK);
    return c.n;
}

static unsigned queued(fx_t *f)
{
    unsigned n = 0;
    assert_int_equal(queue_count(&f->st, &n), STORE_OK);
    return n;
}

/* A rule edit that runs out of memory at any allocation lands nothing. */
static void test_rule_set_no_memory(void **state)
{
    (void)state;
    fx_t f;
    cdnapi_rule_t r = {CDNAPI_RULE_ADD, false, "X-Rule", "v1", NULL};
    unsigned nomem = 0;
    fx_device(&f);
    for (long k = 0; k < 64; k++) {
        cdnapi_result_t res;
        port_heap_fail_at(k, false);
        agent_status_t ar = agent_rule_set(&f.st, DOM, &r, &res);
        port_heap_fail_at(-1, false);
        if (ar == AGENT_OK)
            break;
        assert_int_equal(ar, AGENT_ERR_NOMEM);
        assert_int_equal(headers(&f), 0);
        assert_int_equal(queued(&f), 0);
        nomem++;
    }
    assert_true(nomem > 0);
    assert_int_equal(headers(&f), 1);
    assert_int_equal(queued(&f), 1);
    f.a = NULL;
    fx_end(&f);
}

/* A read failing anywhere in a header edit: the edit reports the store's
 * failure and lands nothing, or lands whole. */
static void test_header_set_read_errors(void **state)
{
    (void)state;
    unsigned failed = 0;
    for (uint64_t k = 0; k < 200; k++) {
        fx_t f;
        fx_device(&f);
        assert_int_equal(agent_header_set(&f.st, DOM, "X-A", "1", NULL), AGENT_OK);
        emu_flash_fault_arm(&f.emu, EMU_FAULT_READ_ERROR, k, 0);
        agent_status_t ar = agent_header_set(&f.st, DOM, "X-B", "2", NULL);
        int fired = f.emu.fault_fired;
        emu_flash_fault_clear(&f.emu);
        if (ar != AGENT_OK) {
            failed++;
            assert_int_not_equal(agent_status_store(ar), STORE_OK);
            assert_int_equal(headers(&f), 1);
            assert_int_equal(queued(&f), 1);
        } else {
            assert_int_equal(headers(&f), 2);
            assert_int_equal(queued(&f), 2);
        }
        f.a = NULL;
        fx_end(&f);
        if (!fired)
            break;
    }
    assert_true(failed > 0);
}

/* An empty certificate name is no name: the certificate is taken. */
static void test_cert_set_empty_name(void **state)
{
    (void)state;
    fx_t f;
    cdnapi_result_t res;
    char *pem = NULL;
    (void)remove(key_path());
    assert_int_equal(port_posix_write_device_key(key_path(), 9), PORT_OK);
    port_posix_set_device_key_path(key_path());
    fx_device(&f);
    assert_int_equal(agent_cert_set(&f.st, DOM, "", TEST_CERT_PEM, TEST_KEY_PEM, NOW_UTC, &res),
                     AGENT_OK);
    assert_int_equal(agent_cert_pem(&f.st, DOM, &pem), AGENT_OK);
    assert_string_equal(pem, TEST_CERT_PEM);
    port_free(pem);
    assert_int_equal(queued(&f), 1);
    /* a visitor of certificates only passes over the headers */
    assert_int_equal(agent_header_set(&f.st, DOM, "X-A", "1", NULL), AGENT_OK);
    count_t certs = {0};
    agent_visitor_t vis = {NULL, count_cert, &certs};
    assert_int_equal(agent_visit(&f.st, NULL, &vis), AGENT_OK);
    assert_int_equal(certs.n, 1);
    assert_int_equal(headers(&f), 1);
    port_posix_set_device_key_path(NULL);
    (void)remove(key_path());
    f.a = NULL;
    fx_end(&f);
}


/* -------------------------------------------- certificate deliveries -- */

#define RETIRED                                                                  \
    "{\"RequestId\":\"R-gone\",\"Code\":\"InvalidAction.NotFound\",\"Message\":" \
    "\"Specified api is not found\"}"
#define OK_BODY "{\"RequestId\":\"R-ok\"}"


static uint32_t settle(fx_t *f, unsigned max)
{
    uint32_t w = 0;
    for (unsigned i = 0; i < max; i++) {
        w = agent_poll(f->a, f->now);
        if (w == UINT32_MAX || w >= AGENT_EXPIRY_CHECK_MS / 2)
            break;
        f->now += w;
    }
    return w;
}

/* The older action retired, with no event handler: the switch is logged,
 * the device's choice written, and the push goes by the newer action. */
static void test_cert_switch_logged(void **state)
{
    (void)state;
    fx_t f;
    cdnapi_result_t res;
    agent_cert_api_t api;
    char path[96], log[4096];
    key_on();
    fx_device(&f);
    f.cfg.event = NULL;
    fx_agent(&f);
    script_add(404, RETIRED, 0);
    script_add(200, OK_BODY, 0);
    assert_int_equal(agent_cert_set(&f.st, DOM, "c1", TEST_CERT_PEM, TEST_KEY_PEM, NOW_UTC, &res),
                     AGENT_OK);
    snprintf(path, sizeof path, "/tmp/test_agent_paths.%ld.log2", (long)getpid());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *lf = fopen(path, "w+");
    assert_non_null(lf);
    assert_true(dup2(fileno(lf), STDERR_FILENO) >= 0);
    (void)settle(&f, 10);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(lf);
    size_t n = fread(log, 1, sizeof log - 1, lf);
    log[n] = 0;
    fclose(lf);
    remove(path);
    assert_string_equal(script.actions, "SetDomainServerCertificate,SetCdnDomainSSLCertificate");
    assert_non_null(strstr(log, "the service refused SetDomainServerCertificate "
                                "(InvalidAction.NotFound): certificates go by "
                                "SetCdnDomainSSLCertificate from now on"));
    assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_OK);
    assert_int_equal(api, AGENT_CERT_API_SSL_AUTO);
    assert_int_equal(queued(&f), 0);
    fx_end(&f);
    key_off();
}

/* "Action gone" for the newer action, or for a certificate service's push
 * (which has no older action): nothing to switch to, a refusal. */
static void test_cert_retired_without_switch(void **state)
{
    (void)state;
    cdnapi_result_t res;
    agent_cert_api_t api;
    for (int cas = 0; cas <= 1; cas++) {
        fx_t f;
        key_on();
        fx_device(&f);
        fx_agent(&f);
        script_add(404, RETIRED, 0);
        if (cas) {
            assert_int_equal(agent_cert_set_cas(&f.st, DOM, "c1", "42", NULL, &res), AGENT_OK);
        } else {
            assert_int_equal(agent_cert_api_set(&f.st, AGENT_CERT_API_SSL), AGENT_OK);
            assert_int_equal(agent_cert_set(&f.st, DOM, "c1", TEST_CERT_PEM, TEST_KEY_PEM, NOW_UTC,
                                            &res),
                             AGENT_OK);
        }
        (void)settle(&f, 10);
        assert_string_equal(script.actions, "SetCdnDomainSSLCertificate");
        assert_int_equal(f.evk[AGENT_EV_SWITCHED], 0);
        assert_int_equal(f.evk[AGENT_EV_FAILED], 1);
        assert_int_equal(agent_cert_api_get(&f.st, &api), AGENT_OK);
        assert_int_equal(api, cas ? AGENT_CERT_API_LEGACY : AGENT_CERT_API_SSL);
        fx_end(&f);
        key_off();
    }
}

/* A certificate service's push in doubt is read back, and found by its
 * CertId whatever leading zeros the service writes; a name that differs,
 * or another id, is no match and the push goes again. */
static void test_cert_cas_readback_ids(void **state)
{
    (void)state;
    static const struct {
        const char *want_id, *want_name, *served_id, *served_name;
        int found;
    } cases[] = {
        {"42", "c1", "0042", "c1", 1},  {"0042", "", "42", "any", 1}, {"0", "c1", "000", "c1", 1},
        {"42", "c1", "42", "other", 0}, {"42", "c1", "43", "c1", 0},
    };
    char body[512];
    cdnapi_result_t res;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_t f;
        key_on();
        fx_device(&f);
        fx_agent(&f);
        snprintf(body, sizeof body,
                 "{\"RequestId\":\"R-info\",\"CertInfos\":{\"CertInfo\":[{\"DomainName\":"
                 "\"" DOM "\",\"CertName\":\"%s\",\"CertType\":\"cas\",\"CertId\":\"%s\","
                 "\"ServerCertificateStatus\":\"on\"}]}}",
                 cases[i].served_name, cases[i].served_id);
        script_add(0, NULL, HTTP_ERR_TIMEOUT);
        script_add(200, body, 0);
        if (!cases[i].found)
            script_add(200, OK_BODY, 0);
        assert_int_equal(agent_cert_set_cas(&f.st, DOM, cases[i].want_name, cases[i].want_id, NULL,
                                            &res),
                         AGENT_OK);
        (void)settle(&f, 10);
        assert_string_equal(script.actions, cases[i].found ? "SetCdnDomainSSLCertificate,"
                                                             "DescribeDomainCertificateInfo"
                                                           : "SetCdnDomainSSLCertificate,"
                                                             "DescribeDomainCertificateInfo,"
                                                             "SetCdnDomainSSLCertificate");
        assert_int_equal(queued(&f), 0);
        assert_int_equal(flags_of(&f, "c00") & (CF_ON | CF_CAS), CF_ON | CF_CAS);
        fx_end(&f);
        key_off();
    }
}


/* An uploaded certificate's push in doubt, read back from a reply without
 * the served PEM: found only when the name and both ends of the validity
 * match. */
static void test_cert_upload_readback_by_validity(void **state)
{
    (void)state;
#define START ",\"CertStartTime\":\"2026-11-29T14:54:07Z\""
#define EXPIRE ",\"CertExpireTime\":\"" TEST_CERT_NOT_AFTER "\""
    static const struct {
        const char *want, *name, *times;
        int found;
    } cases[] = {
        {"c1", "c1", EXPIRE START, 1},
        {"", DOM, EXPIRE START, 1}, /* no name: the domain's */
        {"", "c1", EXPIRE START, 0},
        {"c1", "c1", EXPIRE, 0},
        {"c1", "c1", START, 0},
        {"c1", "c1", EXPIRE ",\"CertStartTime\":\"2026-11-29T14:54:08Z\"", 0},
        {"c1", "c1", ",\"CertExpireTime\":\"2046-11-24T14:54:08Z\"" START, 0},
        {"other", "c1", EXPIRE START, 0},
    };
#undef START
#undef EXPIRE
    char body[512];
    cdnapi_result_t res;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_t f;
        key_on();
        fx_device(&f);
        fx_agent(&f);
        snprintf(body, sizeof body,
                 "{\"RequestId\":\"R-info\",\"CertInfos\":{\"CertInfo\":[{\"DomainName\":"
                 "\"" DOM "\",\"CertName\":\"%s\",\"CertType\":\"upload\","
                 "\"ServerCertificateStatus\":\"on\"%s}]}}",
                 cases[i].name, cases[i].times);
        script_add(0, NULL, HTTP_ERR_TIMEOUT);
        script_add(200, body, 0);
        if (!cases[i].found)
            script_add(200, OK_BODY, 0);
        assert_int_equal(agent_cert_set(&f.st, DOM, cases[i].want, TEST_CERT_PEM, TEST_KEY_PEM,
                                        NOW_UTC, &res),
                         AGENT_OK);
        (void)settle(&f, 10);
        assert_string_equal(script.actions, cases[i].found ? "SetDomainServerCertificate,"
                                                             "DescribeDomainCertificateInfo"
                                                           : "SetDomainServerCertificate,"
                                                             "DescribeDomainCertificateInfo,"
                                                             "SetDomainServerCertificate");
        assert_int_equal(queued(&f), 0);
        assert_true(flags_of(&f, "c00") & CF_EXPIRY);
        fx_end(&f);
        key_off();
    }
}

/* A delivered record damaged on flash says nothing of the CDN: the next
 * push reads the CDN back first. */
static void test_cert_damaged_delivered_record(void **state)
{
    (void)state;
    fx_t f;
    cdnapi_result_t res;
    char hex[65];
    static const char info[] =
        "{\"RequestId\":\"R-info\",\"CertInfos\":{\"CertInfo\":[{\"DomainName\":\"" DOM
        "\",\"ServerCertificateStatus\":\"off\"}]}}";
    key_on();
    fx_device(&f);
    fx_agent(&f);
    sha_hex(TEST_CERT_PEM, hex);
    put_domain(&f, 0, DOM);
    put_delivered(&f, 0, CF_ON | CF_PRESENT | 0x20u, "c1", 0, hex);
    damage(&f, "c00", hex, 64);
    script_add(200, info, 0);
    script_add(200, OK_BODY, 0);
    assert_int_equal(agent_cert_set(&f.st, DOM, "c1", TEST_CERT_PEM, TEST_KEY_PEM, NOW_UTC, &res),
                     AGENT_OK);
    (void)settle(&f, 10);
    assert_string_equal(script.actions, "DescribeDomainCertificateInfo,SetDomainServerCertificate");
    assert_int_equal(queued(&f), 0);
    assert_true(flags_of(&f, "c00") & CF_EXPIRY);
    fx_end(&f);
    key_off();
}

int main(void)
{
    port_log_set_level(PORT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_outside_families),
        cmocka_unit_test(test_expiry_waits_for_clock),
        cmocka_unit_test(test_expiry_logged_without_handler),
        cmocka_unit_test(test_expiry_skips_odd_records),
        cmocka_unit_test(test_expiry_learn_cases),
        cmocka_unit_test(test_expiry_nothing_to_watch),
        cmocka_unit_test(test_expiry_read_errors),
        cmocka_unit_test(test_expiry_read_flips),
        cmocka_unit_test(test_cert_api_checks),
        cmocka_unit_test(test_settings_policy_damaged),
        cmocka_unit_test(test_watch_records_odd),
        cmocka_unit_test(test_watch_put_failures),
        cmocka_unit_test(test_rule_set_no_memory),
        cmocka_unit_test(test_header_set_read_errors),
        cmocka_unit_test(test_cert_set_empty_name),
        cmocka_unit_test(test_cert_switch_logged),
        cmocka_unit_test(test_cert_retired_without_switch),
        cmocka_unit_test(test_cert_cas_readback_ids),
        cmocka_unit_test(test_cert_upload_readback_by_validity),
        cmocka_unit_test(test_cert_damaged_delivered_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
