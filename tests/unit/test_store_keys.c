/* The store's key namespace registry (store_keys.h): prefixes distinct, no
 * new case variants, and every key the owners actually write (the agent's
 * edits and settings, the queue's entries) starts with a prefix that the
 * registry gives to that owner, so two owners never collide. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent.h"
#include "emu_flash.h"
#include "port_posix.h"
#include "queue.h"
#include "store.h"
#include "store_keys.h"
#include "test_pki.h"

typedef struct {
    const char *name;
    int byte;
    const char *owner;
    const char *what;
} row_t;

#define ROW(name, byte, owner, what) {#name, byte, owner, what},
static const row_t registry[] = {STORE_KEY_REGISTRY(ROW)};
#undef ROW
#define ROWS (sizeof registry / sizeof registry[0])

static const row_t *row_of(uint8_t first)
{
    for (size_t i = 0; i < ROWS; i++)
        if (registry[i].byte == first)
            return &registry[i];
    return NULL;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static void test_registry_prefixes_distinct(void **state)
{
    (void)state;
    assert_true(ROWS >= 7);
    for (size_t i = 0; i < ROWS; i++) {
        assert_true(registry[i].byte > ' ' && registry[i].byte < 127);
        assert_true(strcmp(registry[i].owner, "agent") == 0 ||
                    strcmp(registry[i].owner, "queue") == 0);
        assert_true(strlen(registry[i].what) > 8);
        for (size_t j = i + 1; j < ROWS; j++) {
            assert_int_not_equal(registry[i].byte, registry[j].byte);
            assert_string_not_equal(registry[i].name, registry[j].name);
            /* 'C'/'c' are in the field already; no other case variants. */
            if (lower(registry[i].byte) == lower(registry[j].byte))
                assert_true(lower(registry[i].byte) == 'c');
        }
    }
    assert_int_equal(STORE_KEY_QUEUE, 'Q');
    assert_string_equal(row_of('Q')->owner, "queue");
    assert_string_equal(row_of('G')->owner, "agent");
}

/* ------------------------------------------------------------ fixture -- */

#define SECTOR_SIZE 4096u
#define SECTORS 16u

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t work[STORE_WORK_SIZE(SECTORS)];
    char key_path[96];
    /* keys seen so far, each as <len><bytes> */
    unsigned n;
    uint8_t seen[256][STORE_KEY_MAX + 1];
} fx_t;

static bool collect_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    fx_t *f = arg;
    (void)value_len;
    assert_true(f->n < 256 && key_len <= STORE_KEY_MAX);
    f->seen[f->n][0] = (uint8_t)key_len;
    memcpy(f->seen[f->n] + 1, key, key_len);
    f->n++;
    return true;
}

/* Collect the keys now in the store; every key new since `before` must be
 * registered, and registered to `owner`. Returns how many are new. */
static unsigned new_keys_owned_by(fx_t *f, const uint8_t (*before)[STORE_KEY_MAX + 1],
                                  unsigned nbefore, const char *owner)
{
    unsigned fresh = 0;
    f->n = 0;
    assert_int_equal(store_iterate(&f->st, NULL, 0, collect_cb, f), STORE_OK);
    for (unsigned i = 0; i < f->n; i++) {
        bool old = false;
        for (unsigned j = 0; j < nbefore && !old; j++)
            old = memcmp(before[j], f->seen[i], (size_t)f->seen[i][0] + 1u) == 0;
        if (old)
            continue;
        const row_t *r = row_of(f->seen[i][1]);
        if (!r || strcmp(r->owner, owner) != 0)
            fail_msg("key \"%.*s\" written by %s: registry owner %s", (int)f->seen[i][0],
                     (const char *)f->seen[i] + 1, owner, r ? r->owner : "(none)");
        fresh++;
    }
    return fresh;
}

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f || emu_flash_init(&f->emu, SECTOR_SIZE, SECTORS, 8) != 0 ||
        store_mount(&f->st, &f->emu.dev, f->work, sizeof f->work, STORE_MOUNT_FORMAT_IF_EMPTY,
                    NULL) != STORE_OK)
        return -1;
    snprintf(f->key_path, sizeof f->key_path, "/tmp/test_store_keys.%ld.key", (long)getpid());
    (void)remove(f->key_path);
    if (port_posix_write_device_key(f->key_path, 1) != PORT_OK)
        return -1;
    port_posix_set_device_key_path(f->key_path);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    port_posix_set_device_key_path(NULL);
    (void)remove(f->key_path);
    emu_flash_free(&f->emu);
    free(f);
    return 0;
}

static void snapshot(fx_t *f, uint8_t (*out)[STORE_KEY_MAX + 1], unsigned *n)
{
    f->n = 0;
    assert_int_equal(store_iterate(&f->st, NULL, 0, collect_cb, f), STORE_OK);
    memcpy(out, f->seen, sizeof f->seen[0] * f->n);
    *n = f->n;
}

static void test_owners_write_only_their_prefixes(void **state)
{
    fx_t *f = *state;
    static uint8_t before[256][STORE_KEY_MAX + 1];
    unsigned nb = 0;
    agent_settings_t s;
    cdnapi_result_t res;

    /* The agent's settings, STS token and CA included. */
    memset(&s, 0, sizeof s);
    strcpy(s.endpoint, "https://cdn.aliyuncs.com");
    strcpy(s.access_key_id, "LTAI-keys");
    strcpy(s.access_key_secret, "secret");
    strcpy(s.security_token, "sts-token");
    queue_policy_default(&s.policy);
    s.rate_milli = 10000;
    snapshot(f, before, &nb);
    assert_int_equal(agent_settings_save(&f->st, &s, "-----BEGIN CERTIFICATE-----\n"), AGENT_OK);
    assert_int_equal(new_keys_owned_by(f, before, nb, "agent"), 6);

    /* The agent's edits write its records and enqueue through the queue:
     * the queue's entries are the keys under 'Q', the rest are the agent's. */
    snapshot(f, before, &nb);
    assert_int_equal(agent_header_set(&f->st, TEST_PKI_DOMAIN, "X-Device", "a1", &res), AGENT_OK);
    assert_int_equal(agent_cert_set(&f->st, TEST_PKI_DOMAIN, "n", TEST_CERT_PEM, TEST_KEY_PEM,
                                    TEST_PKI_NOW_UTC, &res),
                     AGENT_OK);
    f->n = 0;
    assert_int_equal(store_iterate(&f->st, NULL, 0, collect_cb, f), STORE_OK);
    unsigned agent_keys = 0, queue_keys = 0;
    for (unsigned i = 0; i < f->n; i++) {
        const row_t *r = row_of(f->seen[i][1]);
        assert_non_null(r);
        if (r->byte == STORE_KEY_QUEUE) {
            /* A queue entry names its target: a header or certificate key. */
            const row_t *t = row_of(f->seen[i][2]);
            assert_non_null(t);
            assert_true(t->byte == STORE_KEY_HEADER || t->byte == STORE_KEY_CERT);
            queue_keys++;
        } else {
            assert_string_equal(r->owner, "agent");
            agent_keys++;
        }
    }
    assert_int_equal(queue_keys, 2);
    assert_true(agent_keys >= 6 + 4); /* settings, D, H, C, K */

    /* The queue alone writes only under its own prefix. */
    snapshot(f, before, &nb);
    assert_int_equal(store_txn_begin(&f->st), STORE_OK);
    assert_int_equal(queue_txn_enqueue(&f->st, "H01deadbeef", 99), STORE_OK);
    assert_int_equal(store_txn_commit(&f->st), STORE_OK);
    assert_int_equal(new_keys_owned_by(f, before, nb, "queue"), 1);

    /* Every prefix the agent and queue used above is registered, and the
     * store holds no key outside the registry. */
    bool used[128] = {false};
    f->n = 0;
    assert_int_equal(store_iterate(&f->st, NULL, 0, collect_cb, f), STORE_OK);
    for (unsigned i = 0; i < f->n; i++) {
        assert_non_null(row_of(f->seen[i][1]));
        used[f->seen[i][1] & 127] = true;
    }
    const char expect[] = {STORE_KEY_DOMAIN,   STORE_KEY_HEADER,   STORE_KEY_CERT,
                           STORE_KEY_CERT_KEY, STORE_KEY_SETTINGS, STORE_KEY_QUEUE};
    for (size_t i = 0; i < sizeof expect; i++)
        assert_true(used[(int)expect[i]]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_prefixes_distinct),
        cmocka_unit_test_setup_teardown(test_owners_write_only_their_prefixes, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
