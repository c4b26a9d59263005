/* components/queue and the agent's edit path (no network): coalescing,
 * ordering, backoff/failed/dead transitions, local validation, and that an
 * edit and its queue entry land together. */
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
#include "queue.h"
#include "store.h"

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
} fx_t;

static void fx_init(fx_t *f)
{
    assert_int_equal(emu_flash_init(&f->emu, 4096, 16, 8), 0);
    f->work = malloc(STORE_WORK_SIZE(16));
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, STORE_WORK_SIZE(16),
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
}

static void fx_free(fx_t *f)
{
    emu_flash_free(&f->emu);
    free(f->work);
}

static void enqueue(store_t *st, const char *t, uint32_t seq)
{
    assert_int_equal(store_txn_begin(st), STORE_OK);
    assert_int_equal(queue_txn_enqueue(st, t, seq), STORE_OK);
    assert_int_equal(store_txn_commit(st), STORE_OK);
}

static int count_entries(store_t *st);

static void test_queue_order_and_coalescing(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    queue_entry_t e;
    uint32_t wait = 0, seq = 0;
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX);
    assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
    assert_int_equal(seq, 1);
    enqueue(&f.st, "Hb", 2);
    enqueue(&f.st, "Ha", 1);
    enqueue(&f.st, "Hc", 3);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Ha");
    /* a newer change to Ha supersedes the queued one: one entry, new seq */
    enqueue(&f.st, "Ha", 4);
    assert_int_equal(count_entries(&f.st), 3);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hb");
    assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
    assert_int_equal(seq, 5);
    fx_free(&f);
}

static bool count_cb(void *arg, const queue_entry_t *e)
{
    (void)e;
    (*(int *)arg)++;
    return true;
}

static int count_entries(store_t *st)
{
    int n = 0;
    unsigned c = 0;
    assert_int_equal(queue_foreach(st, count_cb, &n), STORE_OK);
    assert_int_equal(queue_count(st, &c), STORE_OK);
    assert_int_equal(c, (unsigned)n);
    return n;
}

static void test_queue_backoff_failed_blocked(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    queue_policy_t p = {100, 1000, 3};
    enqueue(&f.st, "Hx", 1);
    queue_entry_t e;
    uint32_t wait;
    assert_int_equal(queue_get(&f.st, "Hx", &e), STORE_OK);
    /* retryable: backoff within [now, now + base] for the first retry */
    queue_record_failure(&e, QUEUE_FAIL_RETRY, "ServiceUnavailable", "try later", 5000, &p,
                         UINT32_MAX, 1);
    assert_int_equal(e.state, QUEUE_BACKOFF);
    assert_int_equal(e.attempts, 1);
    assert_true(e.next_try_ms >= 5000 && e.next_try_ms <= 5100);
    assert_string_equal(e.code, "ServiceUnavailable");
    assert_int_equal(queue_put(&f.st, &e), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 5000, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_true(wait > 0 && wait <= 100);
    assert_int_equal(queue_get(&f.st, "Hx", &e), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, e.next_try_ms, 1000, 1, &e, &wait), STORE_OK);
    /* a wait left from before a reboot is clamped to the cap */
    e.next_try_ms = 1000000000u;
    assert_int_equal(queue_put(&f.st, &e), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 10, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, 1000);
    assert_int_equal(queue_get(&f.st, "Hx", &e), STORE_OK);
    /* never gives up: thousands of failures later it still backs off, at
     * most the cap and somewhere inside it (full jitter) */
    uint64_t longest = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        queue_record_failure(&e, QUEUE_FAIL_RETRY, "InternalError", "x", 0, &p, i * 2654435761u, 1);
        assert_int_equal(e.state, QUEUE_BACKOFF);
        assert_true(e.next_try_ms <= 1000);
        if (e.next_try_ms > longest)
            longest = e.next_try_ms;
    }
    assert_true(longest > 500);
    assert_int_equal(e.attempts, 5001);
    /* an entry an older version marked dead is due again */
    e.state = QUEUE_DEAD;
    assert_int_equal(queue_put(&f.st, &e), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hx");
    /* permanent: failed at once, never due */
    enqueue(&f.st, "Hy", 2);
    assert_int_equal(queue_get(&f.st, "Hy", &e), STORE_OK);
    queue_record_failure(&e, QUEUE_FAIL_PERMANENT, "InvalidKey.Malformed", "bad key", 0, &p, 0, 1);
    assert_int_equal(e.state, QUEUE_FAILED);
    assert_int_equal(queue_put(&f.st, &e), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hx"); /* Hy is not due */
    /* blocked: not due under its own epoch, due under any other */
    assert_int_equal(queue_get(&f.st, "Hx", &e), STORE_OK);
    queue_record_failure(&e, QUEUE_FAIL_BLOCKED, "SignatureDoesNotMatch", "wrong secret", 0, &p, 0,
                         7);
    assert_int_equal(e.state, QUEUE_BLOCKED);
    assert_int_equal(queue_put(&f.st, &e), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 7, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 8, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hx");
    /* persisted across a remount with state, epoch, code and message */
    assert_int_equal(store_mount(&f.st, &f.emu.dev, f.work, STORE_WORK_SIZE(16), 0, NULL), STORE_OK);
    assert_int_equal(queue_get(&f.st, "Hy", &e), STORE_OK);
    assert_int_equal(e.state, QUEUE_FAILED);
    assert_string_equal(e.message, "bad key");
    assert_int_equal(queue_get(&f.st, "Hx", &e), STORE_OK);
    assert_int_equal(e.state, QUEUE_BLOCKED);
    assert_int_equal(e.epoch, 7);
    assert_string_equal(e.code, "SignatureDoesNotMatch");
    /* a reset makes it pending with no history */
    queue_entry_reset(&e);
    assert_int_equal(e.state, QUEUE_PENDING);
    assert_int_equal(e.attempts, 0);
    assert_string_equal(e.code, "");
    fx_free(&f);
}

/* A store that fails to read is an error, never "empty" or "nothing due". */
static void test_queue_store_errors(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    enqueue(&f.st, "Ha", 1);
    queue_entry_t e;
    uint32_t wait = 0, seq = 0;
    unsigned n = 0;
    f.emu.powered_off = 1; /* every flash operation fails from now on */
    assert_int_not_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_not_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_int_not_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_int_not_equal(queue_next_seq(&f.st, &seq), STORE_OK);
    emu_flash_power_on(&f.emu);
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 1);
    fx_free(&f);
}

typedef struct {
    int headers, certs;
    char last_key[80], last_desired[80];
    int queued;
} seen_t;

static void seen_header(void *arg, const agent_header_view_t *h)
{
    seen_t *s = arg;
    s->headers++;
    snprintf(s->last_key, sizeof s->last_key, "%s", h->key);
    snprintf(s->last_desired, sizeof s->last_desired, "%s", h->desired ? h->desired : "(null)");
    s->queued += h->queue != NULL;
}

static void seen_cert(void *arg, const agent_cert_view_t *c)
{
    seen_t *s = arg;
    (void)c;
    s->certs++;
}

static seen_t visit(store_t *st)
{
    seen_t s;
    memset(&s, 0, sizeof s);
    agent_visitor_t v = {seen_header, seen_cert, &s};
    assert_int_equal(agent_visit(st, NULL, &v), AGENT_OK);
    return s;
}

static void test_agent_edits(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    cdnapi_result_t res;
    /* local validation refuses before anything is stored or queued */
    assert_int_equal(agent_header_set(&f.st, "cdn.example.com", "Bad Key", "v", &res),
                     AGENT_ERR_INVALID);
    assert_string_equal(res.code, "InvalidKey.Malformed");
    assert_int_equal(agent_header_set(&f.st, "cdn.example.com", "X-A", "bad\nvalue", &res),
                     AGENT_ERR_INVALID);
    assert_string_equal(res.code, "InvalidValue.Malformed");
    assert_int_equal(agent_header_set(&f.st, "", "X-A", "v", &res), AGENT_ERR_INVALID);
    assert_int_equal(count_entries(&f.st), 0);
    assert_int_equal(agent_cert_set(&f.st, "cdn.example.com", "n", "not a pem", "nor this", 0, &res),
                     AGENT_ERR_INVALID);
    assert_string_equal(res.code, "Certificate.FormatError");
    assert_int_equal(count_entries(&f.st), 0);

    /* set: desired state and queue entry together; case-insensitive name */
    assert_int_equal(agent_header_set(&f.st, "cdn.example.com", "X-A", "1", &res), AGENT_OK);
    assert_int_equal(agent_header_set(&f.st, "cdn.example.com", "x-a", "2", &res), AGENT_OK);
    seen_t s = visit(&f.st);
    assert_int_equal(s.headers, 1);
    assert_string_equal(s.last_key, "x-a");
    assert_string_equal(s.last_desired, "2");
    assert_int_equal(s.queued, 1);
    assert_int_equal(count_entries(&f.st), 1);
    /* rm of a never-delivered header cancels both */
    assert_int_equal(agent_header_rm(&f.st, "cdn.example.com", "X-A"), AGENT_OK);
    s = visit(&f.st);
    assert_int_equal(s.headers, 0);
    assert_int_equal(count_entries(&f.st), 0);
    assert_int_equal(agent_header_rm(&f.st, "cdn.example.com", "X-A"), AGENT_ERR_NOT_FOUND);
    assert_int_equal(agent_header_rm(&f.st, "other.example.com", "X-A"), AGENT_ERR_NOT_FOUND);
    /* several domains */
    assert_int_equal(agent_header_set(&f.st, "a.example.com", "X-A", "1", &res), AGENT_OK);
    assert_int_equal(agent_header_set(&f.st, "b.example.com", "X-A", "1", &res), AGENT_OK);
    assert_int_equal(agent_cert_off(&f.st, "b.example.com"), AGENT_OK);
    s = visit(&f.st);
    assert_int_equal(s.headers, 2);
    assert_int_equal(s.certs, 1);
    assert_int_equal(count_entries(&f.st), 3);
    /* a power cut in the middle of an edit lands nothing */
    uint64_t ops0 = f.emu.ops;
    assert_int_equal(agent_header_set(&f.st, "a.example.com", "X-B", "v", &res), AGENT_OK);
    uint64_t ops = f.emu.ops - ops0;
    assert_true(ops >= 2);
    for (uint64_t cut = 0; cut < ops; cut++) {
        fx_t g;
        fx_init(&g);
        assert_int_equal(agent_header_set(&g.st, "a.example.com", "X-A", "1", &res), AGENT_OK);
        emu_flash_cut_after(&g.emu, cut, 3);
        (void)agent_header_set(&g.st, "a.example.com", "X-B", "v", &res);
        emu_flash_power_on(&g.emu);
        assert_int_equal(store_mount(&g.st, &g.emu.dev, g.work, STORE_WORK_SIZE(16), 0, NULL),
                         STORE_OK);
        s = visit(&g.st);
        int entries = count_entries(&g.st);
        /* either the old state (1 header, 1 entry) or the new (2 and 2) */
        assert_true((s.headers == 1 && entries == 1) || (s.headers == 2 && entries == 2));
        assert_int_equal(s.queued, entries);
        fx_free(&g);
    }
    fx_free(&f);
}

/* queue retry: failed and blocked entries (filtered by domain and header)
 * become pending; delivered-or-pending ones are left as they are. */
static void test_agent_retry(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    cdnapi_result_t res;
    queue_policy_t p = {100, 1000, 3};
    const char *keys[] = {"X-A", "X-B", "X-C"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(agent_header_set(&f.st, "a.example.com", keys[i], "v", &res), AGENT_OK);
    assert_int_equal(agent_header_set(&f.st, "b.example.com", "X-A", "v", &res), AGENT_OK);
    /* every entry stopped: two failed, two blocked */
    queue_entry_t e;
    uint32_t wait;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
        queue_record_failure(&e, i % 2 ? QUEUE_FAIL_BLOCKED : QUEUE_FAIL_PERMANENT, "Code", "m", 0,
                             &p, 0, 1);
        assert_int_equal(queue_put(&f.st, &e), STORE_OK);
    }
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    unsigned n = 99;
    assert_int_equal(agent_retry(&f.st, "nosuch.example.com", NULL, &n), AGENT_ERR_NOT_FOUND);
    assert_int_equal(agent_retry(&f.st, "a.example.com", "X-B", &n), AGENT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_int_equal(e.state, QUEUE_PENDING);
    assert_int_equal(e.attempts, 0);
    assert_int_equal(agent_retry(&f.st, "a.example.com", NULL, &n), AGENT_OK);
    assert_int_equal(n, 2); /* X-A and X-C; X-B is pending already */
    assert_int_equal(agent_retry(&f.st, NULL, NULL, &n), AGENT_OK);
    assert_int_equal(n, 1); /* b.example.com */
    assert_int_equal(agent_retry(&f.st, NULL, NULL, &n), AGENT_OK);
    assert_int_equal(n, 0);
    fx_free(&f);
}

static void test_endpoint_split(void **state)
{
    char host[32];
    uint16_t port = 0;
    bool tls = false;
    (void)state;
    assert_int_equal(agent_endpoint_split("https://cdn.aliyuncs.com", host, sizeof host, &port,
                                          &tls),
                     AGENT_OK);
    assert_string_equal(host, "cdn.aliyuncs.com");
    assert_int_equal(port, 443);
    assert_true(tls);
    assert_int_equal(agent_endpoint_split("http://127.0.0.1:8080/", host, sizeof host, &port, &tls),
                     AGENT_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_false(tls);
    static const char *const bad[] =
        {"ftp://x",          "https://",
         "https://:443",     "https://h:",
         "https://h:0",      "https://h:65536",
         "https://h:12x",    "https://h?x",
         "cdn.aliyuncs.com", "https://a-very-long-host-name-that-does-not-fit.example.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(agent_endpoint_split(bad[i], host, sizeof host, &port, &tls),
                         AGENT_ERR_INVALID);
    assert_int_equal(agent_endpoint_split(NULL, host, sizeof host, &port, &tls), AGENT_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_split),
        cmocka_unit_test(test_queue_order_and_coalescing),
        cmocka_unit_test(test_queue_backoff_failed_blocked),
        cmocka_unit_test(test_queue_store_errors),
        cmocka_unit_test(test_agent_retry),
        cmocka_unit_test(test_agent_edits),
    };
    return cmocka_run_group_tests_name("queue_agent", tests, NULL, NULL);
}
