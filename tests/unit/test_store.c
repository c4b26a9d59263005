/* components/store: API behaviour on the emulated NOR flash, checked
 * against an in-memory model through heavy GC churn and remounts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "emu_flash.h"
#include "store.h"

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    size_t work_size;
} fx_t;

static void fx_init(fx_t *f, uint32_t ss, uint32_t n, uint32_t ws)
{
    assert_int_equal(emu_flash_init(&f->emu, ss, n, ws), 0);
    f->work_size = STORE_WORK_SIZE(n);
    f->work = malloc(f->work_size);
    assert_non_null(f->work);
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, f->work_size,
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
}

static void fx_remount(fx_t *f, store_mount_report_t *rep)
{
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, f->work_size, 0, rep), STORE_OK);
}

static void fx_free(fx_t *f)
{
    emu_flash_free(&f->emu);
    free(f->work);
}

static uint32_t rng_state;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((seed * 2654435761u) >> 24) ^ (uint8_t)(i * 7u);
}

static void test_put_get_delete(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, 4096, 4, 4);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(store_get(&f.st, "a", 1, buf, sizeof buf, &len), STORE_NOT_FOUND);
    assert_int_equal(store_put(&f.st, "a", 1, "hello", 5), STORE_OK);
    assert_int_equal(store_get(&f.st, "a", 1, buf, sizeof buf, &len), STORE_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(store_put(&f.st, "a", 1, "world!", 6), STORE_OK);
    assert_int_equal(store_get(&f.st, "a", 1, buf, 3, &len), STORE_ERR_TOO_BIG);
    assert_int_equal(len, 6);
    assert_int_equal(store_put(&f.st, "empty", 5, NULL, 0), STORE_OK);
    assert_int_equal(store_get(&f.st, "empty", 5, buf, sizeof buf, &len), STORE_OK);
    assert_int_equal(len, 0);
    assert_int_equal(store_delete(&f.st, "a", 1), STORE_OK);
    assert_int_equal(store_delete(&f.st, "a", 1), STORE_NOT_FOUND);
    assert_int_equal(store_get(&f.st, "a", 1, buf, sizeof buf, &len), STORE_NOT_FOUND);
    fx_remount(&f, NULL);
    assert_int_equal(store_get(&f.st, "a", 1, buf, sizeof buf, &len), STORE_NOT_FOUND);
    assert_int_equal(store_get(&f.st, "empty", 5, buf, sizeof buf, &len), STORE_OK);
    assert_int_equal(f.emu.violations, 0);
    fx_free(&f);
}

static void test_arguments(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, 512, 3, 1);
    uint8_t key[STORE_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    size_t len;
    uint8_t b[4];
    assert_int_equal(store_put(&f.st, key, sizeof key, "v", 1), STORE_ERR_ARG);
    assert_int_equal(store_put(&f.st, key, 0, "v", 1), STORE_ERR_ARG);
    assert_int_equal(store_put(&f.st, key, STORE_KEY_MAX, "v", 1), STORE_OK);
    assert_int_equal(store_get(&f.st, key, STORE_KEY_MAX, b, sizeof b, &len), STORE_OK);
    static uint8_t big[STORE_VALUE_MAX + 1];
    assert_int_equal(store_put(&f.st, "x", 1, big, sizeof big), STORE_ERR_TOO_BIG);
    store_t un;
    memset(&un, 0, sizeof un);
    assert_int_equal(store_put(&un, "x", 1, "v", 1), STORE_ERR_NOT_MOUNTED);
    /* geometry and work buffer checks */
    emu_flash_t e2;
    store_t s2;
    assert_int_equal(emu_flash_init(&e2, 512, 2, 1), 0);
    assert_int_equal(store_mount(&s2, &e2.dev, f.work, f.work_size, STORE_MOUNT_FORMAT_IF_EMPTY,
                                 NULL),
                     STORE_ERR_GEOMETRY);
    emu_flash_free(&e2);
    assert_int_equal(emu_flash_init(&e2, 512, 8, 1), 0);
    assert_int_equal(store_mount(&s2, &e2.dev, f.work, STORE_WORK_SIZE(8) - 1,
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_ERR_NOMEM);
    emu_flash_free(&e2);
    fx_free(&f);
}

static void test_not_a_store(void **state)
{
    (void)state;
    emu_flash_t e;
    store_t st;
    uint8_t work[STORE_WORK_SIZE(4)];
    assert_int_equal(emu_flash_init(&e, 1024, 4, 8), 0);
    assert_int_equal(store_mount(&st, &e.dev, work, sizeof work, 0, NULL), STORE_ERR_NOT_STORE);
    assert_int_equal(e.ops, 0); /* mount never writes */
    assert_int_equal(store_mount(&st, &e.dev, work, sizeof work, STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    assert_int_equal(store_put(&st, "k", 1, "v", 1), STORE_OK);
    emu_flash_free(&e);
}

static void test_large_values_chunked(void **state)
{
    (void)state;
    static const uint32_t ws[] = {1, 4, 8, 16, 32};
    for (size_t g = 0; g < sizeof ws / sizeof ws[0]; g++) {
        fx_t f;
        fx_init(&f, 512, 160, ws[g]);
        static uint8_t val[STORE_VALUE_MAX], out[STORE_VALUE_MAX];
        fill(val, sizeof val, 7);
        assert_int_equal(store_put(&f.st, "cert", 4, val, sizeof val), STORE_OK);
        assert_int_equal(store_put(&f.st, "small", 5, "s", 1), STORE_OK);
        size_t len = 0;
        assert_int_equal(store_get(&f.st, "cert", 4, out, sizeof out, &len), STORE_OK);
        assert_int_equal(len, sizeof val);
        assert_memory_equal(out, val, sizeof val);
        /* Churn so GC moves the chunks around several times. */
        for (int i = 0; i < 200; i++) {
            char k[8];
            snprintf(k, sizeof k, "n%d", i % 5);
            assert_int_equal(store_put(&f.st, k, strlen(k), val, 100 + (size_t)i), STORE_OK);
        }
        fx_remount(&f, NULL);
        assert_int_equal(store_get(&f.st, "cert", 4, out, sizeof out, &len), STORE_OK);
        assert_memory_equal(out, val, sizeof val);
        assert_int_equal(f.emu.violations, 0);
        fx_free(&f);
    }
}

static void test_transactions(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, 1024, 6, 8);
    uint8_t buf[32];
    size_t len;
    assert_int_equal(store_put(&f.st, "h1", 2, "old", 3), STORE_OK);
    assert_int_equal(store_txn_commit(&f.st), STORE_ERR_TXN);
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    assert_int_equal(store_txn_begin(&f.st), STORE_ERR_TXN);
    assert_int_equal(store_put(&f.st, "x", 1, "1", 1), STORE_ERR_TXN);
    assert_int_equal(store_txn_put(&f.st, "h1", 2, "new", 3), STORE_OK);
    assert_int_equal(store_txn_put(&f.st, "q1", 2, "op", 2), STORE_OK);
    assert_int_equal(store_txn_put(&f.st, "tmp", 3, "t", 1), STORE_OK);
    assert_int_equal(store_txn_delete(&f.st, "tmp", 3), STORE_OK);
    /* reads inside the transaction see the state before it */
    assert_int_equal(store_get(&f.st, "h1", 2, buf, sizeof buf, &len), STORE_OK);
    assert_memory_equal(buf, "old", 3);
    assert_int_equal(store_get(&f.st, "q1", 2, buf, sizeof buf, &len), STORE_NOT_FOUND);
    assert_int_equal(store_txn_commit(&f.st), STORE_OK);
    assert_int_equal(store_get(&f.st, "h1", 2, buf, sizeof buf, &len), STORE_OK);
    assert_memory_equal(buf, "new", 3);
    assert_int_equal(store_get(&f.st, "q1", 2, buf, sizeof buf, &len), STORE_OK);
    assert_int_equal(store_get(&f.st, "tmp", 3, buf, sizeof buf, &len), STORE_NOT_FOUND);
    /* abort lands nothing, also after a remount */
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    assert_int_equal(store_txn_put(&f.st, "h1", 2, "bad", 3), STORE_OK);
    assert_int_equal(store_txn_abort(&f.st), STORE_OK);
    store_mount_report_t rep;
    fx_remount(&f, &rep);
    assert_int_equal(rep.txns_discarded, 0); /* a deliberate abort is not a power cut */
    assert_int_equal(store_get(&f.st, "h1", 2, buf, sizeof buf, &len), STORE_OK);
    assert_memory_equal(buf, "new", 3);
    /* too many ops */
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    for (unsigned i = 0; i < STORE_TXN_OPS_MAX; i++)
        assert_int_equal(store_txn_put(&f.st, "k", 1, &i, sizeof i), STORE_OK);
    assert_int_equal(store_txn_put(&f.st, "k", 1, "x", 1), STORE_ERR_TXN);
    assert_int_equal(store_txn_commit(&f.st), STORE_OK);
    unsigned last = 0;
    assert_int_equal(store_get(&f.st, "k", 1, &last, sizeof last, &len), STORE_OK);
    assert_int_equal(last, STORE_TXN_OPS_MAX - 1); /* the last op on a key wins */
    /* an unfinished transaction is rolled back at mount */
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    assert_int_equal(store_txn_put(&f.st, "h1", 2, "cut", 3), STORE_OK);
    fx_remount(&f, &rep);
    assert_int_equal(rep.txns_discarded, 1);
    assert_int_equal(store_get(&f.st, "h1", 2, buf, sizeof buf, &len), STORE_OK);
    assert_memory_equal(buf, "new", 3);
    fx_free(&f);
}

static int count_cb_n;
static bool count_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)value_len;
    const char *prefix = arg;
    assert_true(key_len >= strlen(prefix));
    assert_memory_equal(key, prefix, strlen(prefix));
    count_cb_n++;
    return true;
}

static void test_iterate_prefix(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, 512, 8, 4);
    char k[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "hdr/%d", i);
        assert_int_equal(store_put(&f.st, k, strlen(k), "v", 1), STORE_OK);
        snprintf(k, sizeof k, "q/%d", i);
        assert_int_equal(store_put(&f.st, k, strlen(k), "v", 1), STORE_OK);
    }
    /* rewrite some so there are dead versions, delete one */
    for (int r = 0; r < 30; r++) {
        snprintf(k, sizeof k, "hdr/%d", r % 4);
        assert_int_equal(store_put(&f.st, k, strlen(k), "vv", 2), STORE_OK);
    }
    assert_int_equal(store_delete(&f.st, "hdr/9", 5), STORE_OK);
    count_cb_n = 0;
    assert_int_equal(store_iterate(&f.st, "hdr/", 4, count_cb, "hdr/"), STORE_OK);
    assert_int_equal(count_cb_n, 9);
    count_cb_n = 0;
    assert_int_equal(store_iterate(&f.st, "q/", 2, count_cb, "q/"), STORE_OK);
    assert_int_equal(count_cb_n, 10);
    count_cb_n = 0;
    assert_int_equal(store_iterate(&f.st, NULL, 0, count_cb, ""), STORE_OK);
    assert_int_equal(count_cb_n, 19);
    store_stats_t s;
    assert_int_equal(store_stats(&f.st, &s, NULL, 0), STORE_OK);
    assert_int_equal(s.live_records, 19);
    assert_true(s.dead_bytes >
                0); /* the rewritten versions and the deleted key are still on flash */
    assert_true(s.live_bytes > 0 && s.free_bytes > s.dead_bytes);
    fx_free(&f);
}

/* Random puts/deletes/transactions against a model, with remounts. */
#define MK 24
typedef struct {
    int present;
    size_t len;
    uint8_t v[2048];
} model_t;

static void check_model(fx_t *f, const model_t *m)
{
    static uint8_t out[4096];
    for (int i = 0; i < MK; i++) {
        char k[16];
        snprintf(k, sizeof k, "key-%02d", i);
        size_t len = 0;
        int rc = store_get(&f->st, k, strlen(k), out, sizeof out, &len);
        if (m[i].present) {
            assert_int_equal(rc, STORE_OK);
            assert_int_equal(len, m[i].len);
            assert_memory_equal(out, m[i].v, len);
        } else {
            assert_int_equal(rc, STORE_NOT_FOUND);
        }
    }
}

static void run_model(uint32_t ss, uint32_t n, uint32_t ws, int steps)
{
    fx_t f;
    fx_init(&f, ss, n, ws);
    static model_t m[MK], pend[MK];
    memset(m, 0, sizeof m);
    rng_state = 0x1234567u ^ ws ^ ss;
    for (int step = 0; step < steps; step++) {
        uint32_t what = rng() % 10;
        int i = (int)(rng() % MK);
        char k[16];
        snprintf(k, sizeof k, "key-%02d", i);
        size_t maxlen = ss / 4 + 64;
        if (what < 6) {
            size_t len = rng() % maxlen;
            fill(m[i].v, len, rng());
            m[i].len = len;
            m[i].present = 1;
            assert_int_equal(store_put(&f.st, k, strlen(k), m[i].v, len), STORE_OK);
        } else if (what < 7) {
            int rc = store_delete(&f.st, k, strlen(k));
            assert_int_equal(rc, m[i].present ? STORE_OK : STORE_NOT_FOUND);
            m[i].present = 0;
        } else if (what < 9) {
            memcpy(pend, m, sizeof m);
            assert_int_equal(store_txn_begin(&f.st), STORE_OK);
            int ops = 1 + (int)(rng() % 4);
            for (int o = 0; o < ops; o++) {
                int j = (int)(rng() % MK);
                snprintf(k, sizeof k, "key-%02d", j);
                if (rng() % 4 == 0) {
                    assert_int_equal(store_txn_delete(&f.st, k, strlen(k)), STORE_OK);
                    pend[j].present = 0;
                } else {
                    size_t len = rng() % 200;
                    fill(pend[j].v, len, rng());
                    pend[j].len = len;
                    pend[j].present = 1;
                    assert_int_equal(store_txn_put(&f.st, k, strlen(k), pend[j].v, len), STORE_OK);
                }
            }
            if (rng() % 5 == 0) {
                assert_int_equal(store_txn_abort(&f.st), STORE_OK);
            } else {
                assert_int_equal(store_txn_commit(&f.st), STORE_OK);
                memcpy(m, pend, sizeof m);
            }
        } else {
            store_mount_report_t rep;
            fx_remount(&f, &rep);
            assert_int_equal(rep.records_damaged, 0);
            assert_int_equal(rep.sectors_bad, 0);
        }
        if (step % 25 == 0)
            check_model(&f, m);
    }
    check_model(&f, m);
    store_mount_report_t rep;
    assert_int_equal(store_fsck(&f.st, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    assert_int_equal(f.emu.violations, 0);
    fx_free(&f);
}

/* clang-format off */
static void test_model_ws1(void **state) { (void)state; run_model(512, 24, 1, 1500); }
static void test_model_ws4(void **state) { (void)state; run_model(1024, 10, 4, 1500); }
static void test_model_ws8(void **state) { (void)state; run_model(2048, 8, 8, 1500); }
static void test_model_ws16(void **state) { (void)state; run_model(4096, 6, 16, 1500); }
/* clang-format on */

static void test_wear_spread(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, 512, 8, 4);
    uint8_t v[64];
    for (int i = 0; i < 5000; i++) {
        char k[8];
        snprintf(k, sizeof k, "c%d", i % 6);
        fill(v, sizeof v, (uint32_t)i);
        assert_int_equal(store_put(&f.st, k, strlen(k), v, sizeof v), STORE_OK);
    }
    uint32_t counts[8];
    store_stats_t s;
    assert_int_equal(store_stats(&f.st, &s, counts, 8), STORE_OK);
    uint32_t mn = UINT32_MAX, mx = 0;
    for (int i = 0; i < 8; i++) {
        if (f.emu.erase_counts[i] < mn)
            mn = f.emu.erase_counts[i];
        if (f.emu.erase_counts[i] > mx)
            mx = f.emu.erase_counts[i];
        assert_int_equal(counts[i], f.emu.erase_counts[i]); /* the store's own count is exact */
    }
    assert_true(mn > 10);
    assert_true(mx - mn <= 1); /* a ring: every sector once per turn */
    fx_free(&f);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_delete),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_not_a_store),
        cmocka_unit_test(test_large_values_chunked),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_iterate_prefix),
        cmocka_unit_test(test_model_ws1),
        cmocka_unit_test(test_model_ws4),
        cmocka_unit_test(test_model_ws8),
        cmocka_unit_test(test_model_ws16),
        cmocka_unit_test(test_wear_spread),
    };
    /* clang-format on */
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
