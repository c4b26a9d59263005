/* components/store: store_gc_ahead, garbage collection ahead of need (issue
 * 15's worst single put). Checked on the emulated NOR flash against an
 * in-memory model: each step costs at most one erase and one sector's copy,
 * the sectors it readies let a large put erase nothing, a store too full to
 * ready more stops (and stops wearing the flash), and nothing a reader sees
 * changes, also across a remount. Power cuts inside the steps are in
 * test_store_powerloss (its "gc-ahead" ops). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "emu_flash.h"
#include "store.h"
#include "test_rng.h"

#define SECTORS 16u
#define SECTOR_SIZE 4096u
#define SMALL_KEYS 60u
#define BIG_KEYS 3u
#define BIG_LEN 8192u

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    size_t work_size;
    /* the model: what every key must read back as */
    uint8_t small[SMALL_KEYS][32];
    bool small_set[SMALL_KEYS];
    uint8_t big[BIG_KEYS][BIG_LEN];
    bool big_set[BIG_KEYS];
} fx_t;

static rng_t rng_state = {12345u};
static uint32_t rng(void)
{
    return (uint32_t)rng_next(&rng_state);
}

static fx_t *fx_new(bool indexed)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(emu_flash_init(&f->emu, SECTOR_SIZE, SECTORS, 4), 0);
    f->work_size = indexed ? STORE_WORK_SIZE_INDEXED(SECTORS, 256) : STORE_WORK_SIZE(SECTORS);
    f->work = malloc(f->work_size);
    assert_non_null(f->work);
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, f->work_size,
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    return f;
}

static void fx_free(fx_t *f)
{
    emu_flash_free(&f->emu);
    free(f->work);
    free(f);
}

static uint64_t erases(const fx_t *f)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < SECTORS; i++)
        n += f->emu.erase_counts[i];
    return n;
}

static void put_small(fx_t *f, unsigned k)
{
    char key[16];
    snprintf(key, sizeof key, "s/%u", k);
    for (size_t i = 0; i < sizeof f->small[k]; i++)
        f->small[k][i] = (uint8_t)rng();
    assert_int_equal(store_put(&f->st, key, strlen(key), f->small[k], sizeof f->small[k]), STORE_OK);
    f->small_set[k] = true;
}

static store_status_t put_big(fx_t *f, unsigned k)
{
    char key[16];
    static uint8_t v[BIG_LEN];
    snprintf(key, sizeof key, "b/%u", k);
    for (size_t i = 0; i < sizeof v; i++)
        v[i] = (uint8_t)rng();
    store_status_t rc = store_put(&f->st, key, strlen(key), v, sizeof v);
    if (rc == STORE_OK) {
        memcpy(f->big[k], v, sizeof v);
        f->big_set[k] = true;
    }
    return rc;
}

/* Every key of the model reads back as the model says. */
static void check_model(fx_t *f)
{
    static uint8_t buf[BIG_LEN];
    char key[16];
    size_t len;
    for (unsigned k = 0; k < SMALL_KEYS; k++) {
        snprintf(key, sizeof key, "s/%u", k);
        store_status_t rc = store_get(&f->st, key, strlen(key), buf, sizeof buf, &len);
        if (!f->small_set[k]) {
            assert_int_equal(rc, STORE_NOT_FOUND);
            continue;
        }
        assert_int_equal(rc, STORE_OK);
        assert_int_equal(len, sizeof f->small[k]);
        assert_memory_equal(buf, f->small[k], len);
    }
    for (unsigned k = 0; k < BIG_KEYS; k++) {
        snprintf(key, sizeof key, "b/%u", k);
        store_status_t rc = store_get(&f->st, key, strlen(key), buf, sizeof buf, &len);
        assert_int_equal(rc, f->big_set[k] ? STORE_OK : STORE_NOT_FOUND);
        if (f->big_set[k]) {
            assert_int_equal(len, BIG_LEN);
            assert_memory_equal(buf, f->big[k], len);
        }
    }
}

/* Call store_gc_ahead until it has nothing more to do; every step costs at
 * most one erase and one sector's worth of programming. Returns the steps. */
static unsigned gc_until_done(fx_t *f, uint32_t sectors)
{
    unsigned steps = 0;
    for (bool more = true; more; steps++) {
        assert_true(steps < 4u * SECTORS); /* it must end by itself */
        uint64_t e0 = erases(f), b0 = f->emu.bytes_programmed;
        assert_int_equal(store_gc_ahead(&f->st, sectors, &more), STORE_OK);
        assert_true(erases(f) - e0 <= 1u);
        assert_true(f->emu.bytes_programmed - b0 <= SECTOR_SIZE);
    }
    return steps;
}

static void churn(fx_t *f, unsigned puts)
{
    for (unsigned i = 0; i < puts; i++) {
        if (rng() % 10u == 0)
            assert_int_equal(put_big(f, rng() % BIG_KEYS), STORE_OK);
        else
            put_small(f, rng() % SMALL_KEYS);
    }
}

static void readies_sectors(bool indexed)
{
    fx_t *f = fx_new(indexed);
    churn(f, 1500);
    for (int round = 0; round < 20; round++) {
        gc_until_done(f, 4);
        /* an 8 KB value now lands in erased sectors: no erase, no GC copy */
        uint64_t e0 = erases(f), b0 = f->emu.bytes_programmed;
        assert_int_equal(put_big(f, (unsigned)round % BIG_KEYS), STORE_OK);
        assert_int_equal(erases(f) - e0, 0);
        assert_true(f->emu.bytes_programmed - b0 < BIG_LEN + 512u);
        churn(f, 40);
    }
    check_model(f);
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, f->work_size, 0, NULL), STORE_OK);
    check_model(f);
    assert_int_equal(f->emu.violations, 0);
    fx_free(f);
}

static void test_readies_sectors(void **state)
{
    (void)state;
    readies_sectors(false);
}

static void test_readies_sectors_indexed(void **state)
{
    (void)state;
    readies_sectors(true);
}

/* A fresh store has every sector erased: nothing to do, nothing erased. */
static void test_nothing_to_do(void **state)
{
    (void)state;
    fx_t *f = fx_new(true);
    bool more = true;
    uint64_t e0 = erases(f);
    assert_int_equal(store_gc_ahead(&f->st, 3, &more), STORE_OK);
    assert_false(more);
    assert_int_equal(erases(f), e0);
    assert_int_equal(store_gc_ahead(&f->st, 0, NULL), STORE_OK);
    fx_free(f);
}

/* Live data leaves no room for the sectors asked: the steps end by
 * themselves, and calls after that erase nothing until the next write. */
static void test_full_store_stops(void **state)
{
    (void)state;
    fx_t *f = fx_new(true);
    unsigned n = 0;
    char key[24];
    uint8_t v[200];
    memset(v, 0x5A, sizeof v);
    for (;; n++) {
        snprintf(key, sizeof key, "fill/%u", n);
        store_status_t rc = store_put(&f->st, key, strlen(key), v, sizeof v);
        if (rc == STORE_FULL)
            break;
        assert_int_equal(rc, STORE_OK);
    }
    assert_true(n > 100);
    gc_until_done(f, SECTORS - 1u);
    uint64_t e0 = erases(f);
    for (int i = 0; i < 3 * (int)SECTORS; i++)
        assert_int_equal(store_gc_ahead(&f->st, SECTORS - 1u, NULL), STORE_OK);
    assert_int_equal(erases(f), e0); /* no wear from an idle loop that cannot help */
    for (unsigned i = 0; i < n; i++) {
        uint8_t got[sizeof v];
        size_t len;
        snprintf(key, sizeof key, "fill/%u", i);
        assert_int_equal(store_get(&f->st, key, strlen(key), got, sizeof got, &len), STORE_OK);
        assert_memory_equal(got, v, sizeof v);
    }
    /* a delete frees room: idle GC may work again */
    snprintf(key, sizeof key, "fill/%u", 0u);
    assert_int_equal(store_delete(&f->st, key, strlen(key)), STORE_OK);
    assert_int_equal(store_gc_ahead(&f->st, SECTORS - 1u, NULL), STORE_OK);
    assert_int_equal(f->emu.violations, 0);
    fx_free(f);
}

/* Found in review: with several sectors ready and the head too full for
 * the oldest's records, a turn (one ready sector used) and the collect
 * that wins it back alternated for ever, an erase every two idle calls.
 * Steps that do not add to the most sectors ever ready are now limited. */
static void test_idle_loop_wear_bounded(void **state)
{
    (void)state;
    fx_t *f = fx_new(true);
    for (unsigned k = 0; k < BIG_KEYS; k++)
        assert_int_equal(put_big(f, k), STORE_OK);
    static uint8_t v[BIG_LEN];
    memset(v, 7, sizeof v);
    assert_int_equal(store_put(&f->st, "b/x", 3, v, sizeof v), STORE_OK);
    assert_int_equal(store_put(&f->st, "b/y", 3, v, sizeof v), STORE_OK);
    for (unsigned i = 0; i < 300; i++)
        put_small(f, 0);
    uint64_t e0 = erases(f);
    unsigned more_answers = 0;
    for (unsigned i = 0; i < 2000; i++) {
        bool more = false;
        assert_int_equal(store_gc_ahead(&f->st, SECTORS - 1u, &more), STORE_OK);
        more_answers += more;
    }
    assert_true(erases(f) - e0 <= 3u * SECTORS); /* was 1,002 */
    assert_true(more_answers < 3u * SECTORS);
    check_model(f);
    fx_free(f);
}

/* Found in review: an idle GC cut short left copies at the head's end;
 * once the head moved on, the victim was collected again and its records
 * copied twice (capacity lost for good). Finished at the next write now. */
static unsigned copies_after_cut(bool cut)
{
    emu_flash_t emu;
    store_t st;
    size_t ws = STORE_WORK_SIZE_INDEXED(8, 64);
    uint8_t *work = malloc(ws);
    uint8_t v[32], keep[28];
    assert_non_null(work);
    assert_int_equal(emu_flash_init(&emu, SECTOR_SIZE, 8, 4), 0);
    assert_int_equal(store_mount(&st, &emu.dev, work, ws, STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    memset(v, 0xA5, sizeof v);
    assert_int_equal(store_put(&st, "keep", 4, v, sizeof v), STORE_OK);
    memcpy(keep, emu.mem + st.last_append, sizeof keep); /* its header: unique bytes */
    unsigned i = 0;
    while (st.head_sector != 6u) { /* head 6, spare 7, oldest 0 */
        memset(v, (int)i++, sizeof v);
        assert_int_equal(store_put(&st, "x", 1, v, sizeof v), STORE_OK);
    }
    if (cut)
        emu_flash_cut_after(&emu, 1, 0); /* op 0 copies "keep", op 1 is the GC_DONE */
    bool more;
    store_status_t rc = store_gc_ahead(&st, 2, &more);
    if (cut) {
        assert_int_not_equal(rc, STORE_OK);
        emu_flash_power_on(&emu);
        assert_int_equal(store_mount(&st, &emu.dev, work, ws, 0, NULL), STORE_OK);
    } else {
        assert_int_equal(rc, STORE_OK);
    }
    uint32_t seq0 = st.sector_seq;
    while (st.sector_seq < seq0 + 3u * 8u) { /* three turns of the ring */
        memset(v, (int)i++, sizeof v);
        assert_int_equal(store_put(&st, "x", 1, v, sizeof v), STORE_OK);
    }
    unsigned copies = 0;
    for (size_t a = 0; a + sizeof keep <= (size_t)8 * SECTOR_SIZE; a += 4)
        copies += memcmp(emu.mem + a, keep, sizeof keep) == 0;
    uint8_t got[32];
    size_t len;
    memset(v, 0xA5, sizeof v);
    assert_int_equal(store_get(&st, "keep", 4, got, sizeof got, &len), STORE_OK);
    assert_memory_equal(got, v, sizeof v);
    assert_int_equal(emu.violations, 0);
    emu_flash_free(&emu);
    free(work);
    return copies;
}

static void test_cut_gc_ahead_resumed(void **state)
{
    (void)state;
    assert_int_equal(copies_after_cut(false), 1);
    assert_int_equal(copies_after_cut(true), 1); /* was 2 */
}

static void test_bad_calls(void **state)
{
    (void)state;
    bool more = true;
    assert_int_equal(store_gc_ahead(NULL, 3, &more), STORE_ERR_ARG);
    assert_false(more);
    store_t unmounted;
    memset(&unmounted, 0, sizeof unmounted);
    more = true;
    assert_int_equal(store_gc_ahead(&unmounted, 3, &more), STORE_ERR_NOT_MOUNTED);
    assert_false(more);
    fx_t *f = fx_new(false);
    churn(f, 300);
    assert_int_equal(store_txn_begin(&f->st), STORE_OK);
    assert_int_equal(store_gc_ahead(&f->st, 3, &more), STORE_ERR_TXN);
    assert_int_equal(store_txn_abort(&f->st), STORE_OK);
    check_model(f);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readies_sectors),
        cmocka_unit_test(test_readies_sectors_indexed),
        cmocka_unit_test(test_nothing_to_do),
        cmocka_unit_test(test_full_store_stops),
        cmocka_unit_test(test_idle_loop_wear_bounded),
        cmocka_unit_test(test_cut_gc_ahead_resumed),
        cmocka_unit_test(test_bad_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
