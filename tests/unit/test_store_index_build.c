/* components/store: how mount builds the RAM index (issue 15) on the images
 * that take its rarer paths. The build appends every version of every key
 * and compacts the array (sort, one entry per key) when it fills; it lists
 * the transactions at the array's free end to settle uncommitted newest
 * versions without a scan, and gives the list up (settling by a scan of the
 * COMMIT records) when it would take room a key needs. Checked here:
 *  - keys whose sort keys collide (same first byte, CRC-32 forged equal), in
 *    several versions each, are told apart;
 *  - an index barely larger than the live keys (compactions during the
 *    build, the list given up) answers as the scan does;
 *  - a transaction cut by power before its COMMIT hides nothing and serves
 *    nothing, through either way of settling;
 * each time against the same image mounted without the index, and with no
 * rebuild of the index afterwards; and on those images every read of the
 * indexed mount is failed, and flipped, once in turn: the mount says
 * STORE_ERR_IO or answers every key right (an index left unsure is rebuilt
 * at the next call). */
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
#include "test_crc.h"
#include "test_rng.h"

#define SECTORS 8u
#define SECTOR_SIZE 1024u
#define MAXKEYS 16

typedef struct {
    uint8_t key[8];
    char val[24];
    bool present;
} kv_t;

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    size_t work_size;
    kv_t kv[MAXKEYS];
    int n;
} fx_t;

static fx_t *fx_new(void)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(emu_flash_init(&f->emu, SECTOR_SIZE, SECTORS, 4), 0);
    f->work_size = STORE_WORK_SIZE_INDEXED(SECTORS, 256);
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

static void name_key(kv_t *k, const char *prefix, int i)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%s%05d", prefix, i % 100000);
    memcpy(k->key, tmp, 8);
}

static void set_val(kv_t *k, int version)
{
    char key[9];
    memcpy(key, k->key, 8);
    key[8] = 0;
    snprintf(k->val, sizeof k->val, "v%d-%s", version, key);
    k->present = true;
}

/* Mount the image with an index of `keys` entries (0: none) into a fresh
 * store and check every key of the model and the walk. */
static void check_mounted(fx_t *f, size_t keys, bool want_index_on)
{
    store_t st;
    size_t ws = keys ? STORE_WORK_SIZE_INDEXED(SECTORS, keys) : STORE_WORK_SIZE(SECTORS);
    uint8_t *work = malloc(ws);
    assert_non_null(work);
    assert_int_equal(store_mount(&st, &f->emu.dev, work, ws, 0, NULL), STORE_OK);
    for (int i = 0; i < f->n; i++) {
        char buf[32];
        size_t len = 0;
        store_status_t rc = store_get(&st, f->kv[i].key, 8, buf, sizeof buf, &len);
        if (!f->kv[i].present) {
            assert_int_equal(rc, STORE_NOT_FOUND);
            continue;
        }
        assert_int_equal(rc, STORE_OK);
        assert_int_equal(len, strlen(f->kv[i].val));
        assert_memory_equal(buf, f->kv[i].val, len);
    }
    store_stats_t s;
    assert_int_equal(store_stats(&st, &s, NULL, 0), STORE_OK);
    assert_int_equal(s.index_on, want_index_on);
    assert_int_equal(s.index_rebuilds, 0);
    int live = 0;
    for (int i = 0; i < f->n; i++)
        live += f->kv[i].present;
    assert_int_equal(s.live_records, live);
    if (want_index_on)
        assert_int_equal(s.index_keys, live);
    free(work);
}

/* Mount with an index of `keys` entries while the nth read fails (or
 * returns a flipped bit): STORE_ERR_IO, or every key right. false once n is
 * past the mount's reads. */
static bool mount_with_fault(fx_t *f, size_t keys, emu_fault_kind_t kind, uint64_t nth)
{
    store_t st;
    size_t ws = STORE_WORK_SIZE_INDEXED(SECTORS, keys);
    uint8_t *work = malloc(ws);
    assert_non_null(work);
    emu_flash_fault_arm(&f->emu, kind, nth, (uint32_t)nth * 7u);
    store_status_t rc = store_mount(&st, &f->emu.dev, work, ws, 0, NULL);
    bool fired = f->emu.fault_fired != 0;
    uint32_t fault_addr = f->emu.fault_addr, fault_len = f->emu.fault_len;
    emu_flash_fault_clear(&f->emu);
    if (rc == STORE_OK) {
        for (int i = 0; i < f->n; i++) {
            char buf[32];
            size_t len = 0;
            rc = store_get(&st, f->kv[i].key, 8, buf, sizeof buf, &len);
            if (!f->kv[i].present) {
                assert_int_equal(rc, STORE_NOT_FOUND);
                continue;
            }
            if (rc != STORE_OK)
                fail_msg("keys %zu, %s at read %llu (fired %d, %u bytes at %u): get of key %d "
                         "says %s",
                         keys, kind == EMU_FAULT_READ_ERROR ? "read error" : "read flip",
                         (unsigned long long)nth, fired, fault_len, fault_addr, i,
                         store_status_str(rc));
            assert_int_equal(len, strlen(f->kv[i].val));
            assert_memory_equal(buf, f->kv[i].val, len);
        }
    } else {
        assert_int_equal(rc, STORE_ERR_IO);
        assert_int_equal(kind, EMU_FAULT_READ_ERROR); /* a flip is read again, never IO */
    }
    free(work);
    return fired;
}

static bool count_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value_len;
    (*(int *)arg)++;
    return true;
}

/* The walk of the live keys while its nth read fails or flips: IO, or
 * every live key listed once. false once n is past its reads. */
static bool iterate_with_fault(fx_t *f, size_t keys, emu_fault_kind_t kind, uint64_t nth)
{
    store_t st;
    size_t ws = keys ? STORE_WORK_SIZE_INDEXED(SECTORS, keys) : STORE_WORK_SIZE(SECTORS);
    uint8_t *work = malloc(ws);
    int listed = 0, live = 0;
    assert_non_null(work);
    assert_int_equal(store_mount(&st, &f->emu.dev, work, ws, 0, NULL), STORE_OK);
    emu_flash_fault_arm(&f->emu, kind, nth, (uint32_t)nth * 5u);
    store_status_t rc = store_iterate(&st, NULL, 0, count_cb, &listed);
    bool fired = f->emu.fault_fired != 0;
    emu_flash_fault_clear(&f->emu);
    for (int i = 0; i < f->n; i++)
        live += f->kv[i].present;
    if (rc == STORE_OK && listed != live)
        fail_msg("index %zu, %s at read %llu of the walk: %d keys listed, %d live", keys,
                 kind == EMU_FAULT_READ_ERROR ? "read error" : "read flip", (unsigned long long)nth,
                 listed, live);
    if (rc != STORE_OK)
        assert_int_equal(rc, STORE_ERR_IO);
    free(work);
    return fired;
}

/* Reads of one clean run of the walk, to spread the faults over them. */
static uint64_t iterate_reads(fx_t *f, size_t keys)
{
    uint64_t n = 0;
    while (iterate_with_fault(f, keys, EMU_FAULT_READ_FLIP, n))
        n = n * 2 + 1; /* doubling: only a bound is needed */
    return n;
}

static void fault_walk(fx_t *f, size_t keys)
{
    static const emu_fault_kind_t kinds[] = {EMU_FAULT_READ_ERROR, EMU_FAULT_READ_FLIP};
    /* the scan's walk reads quadratically many times: at most about 300
     * of its reads are hit, spread evenly (the mount and the indexed walk
     * are hit at every read) */
    uint64_t step = iterate_reads(f, 0) / 300u + 1u;
    for (int k = 0; k < 2; k++) {
        uint64_t n = 0;
        while (mount_with_fault(f, keys, kinds[k], n))
            n++;
        assert_true(n > 20); /* the mount read something */
        for (n = 0; iterate_with_fault(f, keys, kinds[k], n); n++)
            ;
        for (n = k; iterate_with_fault(f, 0, kinds[k], n); n += step)
            ;
    }
}

static void check_all_ways(fx_t *f, size_t small_keys)
{
    check_mounted(f, 0, false);
    check_mounted(f, 256, true);
    check_mounted(f, small_keys, true);
    fault_walk(f, 256);
    fault_walk(f, small_keys);
}

/* Three 8-byte keys with the first byte 'Q' and one CRC-32: one sort key. */
static void colliding_keys(fx_t *f)
{
    static const char *const seeds[] = {"Qkey-abc", "QKEY0000", "Qz#!0000"};
    memcpy(f->kv[0].key, seeds[0], 8);
    uint32_t crc = test_crc32(0, f->kv[0].key, 8);
    for (int i = 1; i < 3; i++) {
        memcpy(f->kv[i].key, seeds[i], 8);
        assert_true(test_crc_forge(f->kv[i].key, 8, 4, crc));
        assert_memory_not_equal(f->kv[i].key, f->kv[0].key, 8);
    }
    f->n = 3;
}

static void put_kv(fx_t *f, int i, int version)
{
    set_val(&f->kv[i], version);
    assert_int_equal(store_put(&f->st, f->kv[i].key, 8, f->kv[i].val, strlen(f->kv[i].val)),
                     STORE_OK);
}

static void txn_put2(fx_t *f, int i, int j, int version)
{
    set_val(&f->kv[i], version);
    set_val(&f->kv[j], version);
    assert_int_equal(store_txn_begin(&f->st), STORE_OK);
    assert_int_equal(store_txn_put(&f->st, f->kv[i].key, 8, f->kv[i].val, strlen(f->kv[i].val)),
                     STORE_OK);
    assert_int_equal(store_txn_put(&f->st, f->kv[j].key, 8, f->kv[j].val, strlen(f->kv[j].val)),
                     STORE_OK);
    assert_int_equal(store_txn_commit(&f->st), STORE_OK);
}

static void test_colliding_sort_keys(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    colliding_keys(f);
    /* two versions of one key, then of another: in the sort key's run a
     * later key meets the first one's superseded (dropped) entry */
    put_kv(f, 1, 100);
    put_kv(f, 1, 101);
    put_kv(f, 0, 100);
    put_kv(f, 0, 101);
    /* versions interleaved, some in transactions, one key deleted and back */
    for (int v = 0; v < 4; v++) {
        put_kv(f, (v + 1) % 3, v);
        txn_put2(f, v % 3, (v + 2) % 3, v);
    }
    assert_int_equal(store_delete(&f->st, f->kv[1].key, 8), STORE_OK);
    f->kv[1].present = false;
    check_all_ways(f, 4);
    put_kv(f, 1, 9);
    check_all_ways(f, 4);
    assert_int_equal(f->emu.violations, 0);
    fx_free(f);
}

/* More versions and transactions than the index holds entries, only a few
 * more entries than live keys: the build compacts as it goes and gives the
 * transaction list up. */
static void test_small_index_compacts_and_settles_by_scan(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    f->n = 5;
    for (int i = 0; i < f->n; i++)
        name_key(&f->kv[i], "key", i);
    for (int v = 0; v < 6; v++)
        for (int i = 0; i < f->n; i++)
            txn_put2(f, i, (i + 1) % f->n, v * 10 + i);
    check_all_ways(f, 7);
    fx_free(f);
}

/* A transaction cut by power before its COMMIT: its members are on flash,
 * newer than the keys' current versions, and must be ignored. */
static void test_uncommitted_newest_versions(void **state)
{
    (void)state;
    fx_t *f = fx_new();
    f->n = 4;
    for (int i = 0; i < f->n; i++) {
        name_key(&f->kv[i], "cut", i);
        put_kv(f, i, 1);
    }
    txn_put2(f, 0, 1, 2);
    /* the next transaction's members land, its COMMIT does not */
    uint64_t ops_before = f->emu.ops;
    char v0[24], v1[24];
    snprintf(v0, sizeof v0, "lost-%d", 0);
    snprintf(v1, sizeof v1, "lost-%d", 1);
    assert_int_equal(store_txn_begin(&f->st), STORE_OK);
    assert_int_equal(store_txn_put(&f->st, f->kv[2].key, 8, v0, strlen(v0)), STORE_OK);
    assert_int_equal(store_txn_put(&f->st, f->kv[3].key, 8, v1, strlen(v1)), STORE_OK);
    assert_true(f->emu.ops > ops_before);
    emu_flash_cut_after(&f->emu, 0, 0); /* the next program: the COMMIT */
    assert_int_not_equal(store_txn_commit(&f->st), STORE_OK);
    emu_flash_power_on(&f->emu);
    /* the list fits (256 entries), and it does not (6 entries) */
    check_all_ways(f, 6);
    store_mount_report_t rep;
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, f->work_size, 0, &rep), STORE_OK);
    assert_int_equal(rep.txns_discarded, 1);
    /* a write after the reboot wins over the cut one, both ways */
    put_kv(f, 2, 3);
    check_all_ways(f, 6);
    assert_int_equal(f->emu.violations, 0);
    fx_free(f);
}

/* Differential over random images (puts, deletes, values over several
 * chunks, committed, aborted and never-committed transactions, GC): every
 * index capacity from 1 entry to more than the keys, mounted plain and
 * quick, answers every get exactly as the scan does (contributed by a
 * review of issue 15's index build). */
#define DIFF_SECTORS 12u
#define DIFF_KEYS 40

static rng_t diff_rng = {99u};
static uint32_t diff_rnd(void)
{
    return (uint32_t)rng_next(&diff_rng);
}

static void diff_key(int k, char *b)
{
    snprintf(b, 16, "%c%d", 'a' + k % 3, k);
}

/* A random history on st; the last transaction sometimes left open. */
static void diff_history(store_t *st, emu_flash_t *emu, uint8_t *work, bool leave_open)
{
    static uint8_t v[3000];
    char key[16];
    int ops = 50 + (int)(diff_rnd() % 400);
    for (int i = 0; i < ops; i++) {
        diff_key((int)(diff_rnd() % DIFF_KEYS), key);
        size_t len = diff_rnd() % 8 == 0 ? 800 + diff_rnd() % 1500 : diff_rnd() % 40;
        for (size_t j = 0; j < len; j++)
            v[j] = (uint8_t)diff_rnd();
        uint32_t c = diff_rnd() % 10;
        if (c < 6) {
            (void)store_put(st, key, strlen(key), v, len);
        } else if (c < 8) {
            (void)store_delete(st, key, strlen(key));
        } else {
            assert_int_equal(store_txn_begin(st), STORE_OK);
            int m = 1 + (int)(diff_rnd() % 4);
            for (int q = 0; q < m; q++) {
                diff_key((int)(diff_rnd() % DIFF_KEYS), key);
                if (diff_rnd() % 3)
                    (void)store_txn_put(st, key, strlen(key), v, diff_rnd() % 40);
                else
                    (void)store_txn_delete(st, key, strlen(key));
            }
            store_status_t rc = STORE_OK;
            if (c == 8)
                rc = store_txn_commit(st);
            else if (diff_rnd() % 2)
                rc = store_txn_abort(st);
            else /* left open: the remount drops it */
                assert_int_equal(store_mount(st, &emu->dev, work, STORE_WORK_SIZE(DIFF_SECTORS), 0,
                                             NULL),
                                 STORE_OK);
            if (rc != STORE_OK)
                (void)store_txn_abort(st);
        }
    }
    if (leave_open && store_txn_begin(st) == STORE_OK) {
        diff_key(1, key);
        (void)store_txn_put(st, key, strlen(key), "zz", 2);
        diff_key(2, key);
        (void)store_txn_delete(st, key, strlen(key));
    }
}

static void test_random_images_every_capacity(void **state)
{
    (void)state;
    static uint8_t got[3000], ref[DIFF_KEYS][3000];
    size_t reflen[DIFF_KEYS];
    store_status_t refrc[DIFF_KEYS];
    char key[16];
    for (int round = 0; round < 16; round++) {
        emu_flash_t emu;
        store_t st;
        uint8_t *work = malloc(STORE_WORK_SIZE_INDEXED(DIFF_SECTORS, 300));
        assert_non_null(work);
        assert_int_equal(emu_flash_init(&emu, 1024, DIFF_SECTORS, 4), 0);
        assert_int_equal(store_mount(&st, &emu.dev, work, STORE_WORK_SIZE(DIFF_SECTORS),
                                     STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                         STORE_OK);
        diff_history(&st, &emu, work, round % 2 == 1);
        assert_int_equal(store_mount(&st, &emu.dev, work, STORE_WORK_SIZE(DIFF_SECTORS), 0, NULL),
                         STORE_OK);
        for (int k = 0; k < DIFF_KEYS; k++) {
            diff_key(k, key);
            refrc[k] = store_get(&st, key, strlen(key), ref[k], sizeof ref[k], &reflen[k]);
        }
        /* every capacity around the live key count, a few far above it */
        for (uint32_t cap = 1; cap <= 300; cap += (cap < 48 ? 1 : 37)) {
            size_t ws = STORE_WORK_SIZE_INDEXED(DIFF_SECTORS, cap);
            for (int quick = 0; quick < 2; quick++) {
                assert_int_equal(store_mount(&st, &emu.dev, work, ws, quick ? STORE_MOUNT_QUICK : 0,
                                             NULL),
                                 STORE_OK);
                for (int k = 0; k < DIFF_KEYS; k++) {
                    size_t len = 0;
                    diff_key(k, key);
                    store_status_t rc = store_get(&st, key, strlen(key), got, sizeof got, &len);
                    if (rc != refrc[k] ||
                        (rc == STORE_OK && (len != reflen[k] || memcmp(got, ref[k], len) != 0)))
                        fail_msg("round %d, index of %u, %s mount: key %s says %s, the scan %s",
                                 round, cap, quick ? "quick" : "plain", key, store_status_str(rc),
                                 store_status_str(refrc[k]));
                }
                store_stats_t s;
                assert_int_equal(store_stats(&st, &s, NULL, 0), STORE_OK);
                assert_int_equal(s.index_rebuilds, 0);
            }
        }
        emu_flash_free(&emu);
        free(work);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colliding_sort_keys),
        cmocka_unit_test(test_small_index_compacts_and_settles_by_scan),
        cmocka_unit_test(test_uncommitted_newest_versions),
        cmocka_unit_test(test_random_images_every_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
