/* The store's RAM index (store.h, README "The RAM index"): it may make
 * answers faster, never different. Each test checks the indexed store
 * against what the store answers without an index, on the same flash:
 *  - a random workload (puts, chunked puts, deletes, transactions, aborts,
 *    remounts) run twice in lock step, once with the index and once
 *    without, on two devices: every get and the whole walk compared after
 *    every step, while GC turns the ring many times;
 *  - a transaction cut by power before its commit: the index built at the
 *    next mount serves the version before it, as the scan does;
 *  - an index too small switches itself off and the answers stay right; a
 *    larger buffer at the next mount turns it on again;
 *  - a damaged newest version answers CORRUPT with and without the index,
 *    also after GC drops it;
 *  - the walk with a prefix, keys written twice in one transaction, and
 *    store_stats' index figures. */
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
#include "test_rng.h"

#define SS 1024u
#define NSEC 8u
#define NKEYS 24
#define IDX_KEYS 64u

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    size_t work_size;
} rig_t;

static void dev_open(rig_t *d, uint32_t index_keys)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(emu_flash_init(&d->emu, SS, NSEC, 4), 0);
    d->work_size = STORE_WORK_SIZE_INDEXED(NSEC, index_keys);
    d->work = malloc(d->work_size);
    assert_non_null(d->work);
    assert_int_equal(store_mount(&d->st, &d->emu.dev, d->work, d->work_size,
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
}

static void dev_remount(rig_t *d, uint32_t index_keys)
{
    free(d->work);
    d->work_size = STORE_WORK_SIZE_INDEXED(NSEC, index_keys);
    d->work = malloc(d->work_size);
    assert_non_null(d->work);
    assert_int_equal(store_mount(&d->st, &d->emu.dev, d->work, d->work_size, 0, NULL), STORE_OK);
}

static void dev_close(rig_t *d)
{
    free(d->work);
    emu_flash_free(&d->emu);
}

static bool index_on(rig_t *d)
{
    store_stats_t s;
    assert_int_equal(store_stats(&d->st, &s, NULL, 0), STORE_OK);
    return s.index_on;
}

static uint32_t rebuilds(rig_t *d)
{
    store_stats_t s;
    assert_int_equal(store_stats(&d->st, &s, NULL, 0), STORE_OK);
    return s.index_rebuilds;
}

static void key_name(char *k, size_t cap, size_t *kl, unsigned i)
{
    *kl = (size_t)snprintf(k, cap, "key/%02u", i);
}

/* What the walk lists: one bit per key of the workload, and its length. */
typedef struct {
    size_t len[NKEYS];
    int seen[NKEYS];
    int others;
} walk_t;

static bool walk_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    walk_t *w = arg;
    unsigned i;
    if (key_len == 6 && memcmp(key, "key/", 4) == 0 &&
        sscanf((const char *)key + 4, "%2u", &i) == 1 && i < NKEYS) {
        w->seen[i]++;
        w->len[i] = value_len;
    } else {
        w->others++;
    }
    return true;
}

/* Every key and the walk answer the same on both devices. */
static void compare(rig_t *a, rig_t *b, const char *when)
{
    static uint8_t va[STORE_VALUE_MAX], vb[STORE_VALUE_MAX];
    char k[16];
    size_t kl;
    for (unsigned i = 0; i < NKEYS; i++) {
        size_t la = 0, lb = 0;
        key_name(k, sizeof k, &kl, i);
        store_status_t ra = store_get(&a->st, k, kl, va, sizeof va, &la);
        store_status_t rb = store_get(&b->st, k, kl, vb, sizeof vb, &lb);
        if (ra != rb || (ra == STORE_OK && (la != lb || memcmp(va, vb, la) != 0)))
            fail_msg("%s: %s answers %s (%zu B) with the index, %s (%zu B) without", when, k,
                     store_status_str(ra), la, store_status_str(rb), lb);
    }
    walk_t wa, wb;
    memset(&wa, 0, sizeof wa);
    memset(&wb, 0, sizeof wb);
    assert_int_equal(store_iterate(&a->st, NULL, 0, walk_cb, &wa), STORE_OK);
    assert_int_equal(store_iterate(&b->st, NULL, 0, walk_cb, &wb), STORE_OK);
    if (memcmp(&wa, &wb, sizeof wa) != 0)
        fail_msg("%s: the walk lists other keys with the index than without", when);
}

typedef enum { OP_PUT, OP_BIG, OP_DEL, OP_TXN, OP_ABORT, OP_REMOUNT } op_kind_t;

/* One random step, the same on both devices; both must answer alike. */
static void step(rig_t *a, rig_t *b, rng_t *rng, unsigned *remounts)
{
    static uint8_t val[3000];
    char k[16];
    size_t kl;
    unsigned r = (unsigned)(rng_next(rng) % 100);
    op_kind_t op = r < 45   ? OP_PUT
                   : r < 52 ? OP_BIG
                   : r < 70 ? OP_DEL
                   : r < 88 ? OP_TXN
                   : r < 94 ? OP_ABORT
                            : OP_REMOUNT;
    rig_t *d[2] = {a, b};
    store_status_t rc[2];
    uint64_t seed = rng_next(rng);
    for (int x = 0; x < 2; x++) {
        rng_t local = {seed};
        unsigned i = (unsigned)(rng_next(&local) % NKEYS);
        size_t len = op == OP_BIG ? 1500 + rng_next(&local) % 1500 : rng_next(&local) % 40;
        rng_fill(&local, val, len);
        key_name(k, sizeof k, &kl, i);
        switch (op) {
        case OP_PUT:
        case OP_BIG: rc[x] = store_put(&d[x]->st, k, kl, val, len); break;
        case OP_DEL: rc[x] = store_delete(&d[x]->st, k, kl); break;
        case OP_TXN:
        case OP_ABORT: {
            /* three ops, the first key written twice: the last op wins */
            unsigned j = (unsigned)(rng_next(&local) % NKEYS);
            char k2[16];
            size_t kl2;
            key_name(k2, sizeof k2, &kl2, j);
            rc[x] = store_txn_begin(&d[x]->st);
            if (rc[x] == STORE_OK)
                rc[x] = store_txn_put(&d[x]->st, k, kl, val, len);
            if (rc[x] == STORE_OK)
                rc[x] = store_txn_delete(&d[x]->st, k2, kl2);
            if (rc[x] == STORE_OK)
                rc[x] = store_txn_put(&d[x]->st, k, kl, val, len / 2);
            if (op == OP_ABORT || rc[x] != STORE_OK)
                (void)store_txn_abort(&d[x]->st);
            else
                rc[x] = store_txn_commit(&d[x]->st);
            break;
        }
        default:
            dev_remount(d[x], x == 0 ? IDX_KEYS : 0);
            rc[x] = STORE_OK;
            break;
        }
    }
    *remounts += op == OP_REMOUNT;
    assert_int_equal(rc[0], rc[1]);
}

static void test_lock_step_workload(void **state)
{
    (void)state;
    rig_t a, b;
    rng_t rng = {0x1D5EEDull};
    unsigned remounts = 0;
    char when[48];
    dev_open(&a, IDX_KEYS);
    dev_open(&b, 0);
    for (unsigned n = 0; n < 1500; n++) {
        step(&a, &b, &rng, &remounts);
        snprintf(when, sizeof when, "after step %u", n);
        compare(&a, &b, when);
        assert_true(index_on(&a));
        /* nothing went wrong: the index followed every write and GC move
         * without falling back to a rebuild */
        assert_int_equal(rebuilds(&a), 0);
    }
    /* the ring turned many times: GC moved what the index names */
    for (uint32_t s = 0; s < NSEC; s++)
        assert_true(a.emu.erase_counts[s] >= 5);
    assert_true(remounts >= 20);
    assert_false(index_on(&b));
    dev_close(&a);
    dev_close(&b);
}

/* A transaction cut by power before its commit: the newest records of the
 * key are not committed, and the index built at mount must find the
 * version before them, as the scan does. */
static void test_uncommitted_newest_at_mount(void **state)
{
    (void)state;
    rig_t d;
    uint8_t out[32];
    size_t len;
    dev_open(&d, IDX_KEYS);
    assert_int_equal(store_put(&d.st, "k", 1, "old", 3), STORE_OK);
    assert_int_equal(store_put(&d.st, "gone", 4, "x", 1), STORE_OK);
    assert_int_equal(store_txn_begin(&d.st), STORE_OK);
    assert_int_equal(store_txn_put(&d.st, "k", 1, "new", 3), STORE_OK);
    assert_int_equal(store_txn_delete(&d.st, "gone", 4), STORE_OK);
    assert_int_equal(store_txn_put(&d.st, "fresh", 5, "f", 1), STORE_OK);
    /* power cut: no commit, the store handle is dropped */
    dev_remount(&d, IDX_KEYS);
    assert_true(index_on(&d));
    assert_int_equal(store_get(&d.st, "k", 1, out, sizeof out, &len), STORE_OK);
    assert_memory_equal(out, "old", 3);
    assert_int_equal(store_get(&d.st, "gone", 4, out, sizeof out, &len), STORE_OK);
    assert_int_equal(store_get(&d.st, "fresh", 5, out, sizeof out, &len), STORE_NOT_FOUND);
    store_stats_t s;
    assert_int_equal(store_stats(&d.st, &s, NULL, 0), STORE_OK);
    assert_int_equal(s.index_keys, 2);
    assert_int_equal(s.index_capacity, IDX_KEYS);
    /* the next write wins over the cut one */
    assert_int_equal(store_put(&d.st, "k", 1, "newer", 5), STORE_OK);
    dev_remount(&d, IDX_KEYS);
    assert_int_equal(store_get(&d.st, "k", 1, out, sizeof out, &len), STORE_OK);
    assert_memory_equal(out, "newer", 5);
    dev_close(&d);
}

/* Too small an index switches itself off (answers stay right); a bigger
 * buffer at the next mount turns it on. */
static void test_overflow_switches_off(void **state)
{
    (void)state;
    rig_t d;
    char k[16];
    size_t kl, len;
    uint8_t out[8];
    dev_open(&d, 4);
    for (unsigned i = 0; i < 4; i++) {
        key_name(k, sizeof k, &kl, i);
        assert_int_equal(store_put(&d.st, k, kl, "v", 1), STORE_OK);
    }
    assert_true(index_on(&d));
    key_name(k, sizeof k, &kl, 4);
    assert_int_equal(store_put(&d.st, k, kl, "v", 1), STORE_OK);
    assert_false(index_on(&d)); /* the fifth key did not fit */
    for (unsigned i = 0; i < 5; i++) {
        key_name(k, sizeof k, &kl, i);
        assert_int_equal(store_get(&d.st, k, kl, out, sizeof out, &len), STORE_OK);
    }
    assert_int_equal(store_delete(&d.st, k, kl), STORE_OK);
    assert_int_equal(store_get(&d.st, k, kl, out, sizeof out, &len), STORE_NOT_FOUND);
    dev_remount(&d, 3); /* four live keys: too many at mount too */
    assert_false(index_on(&d));
    dev_remount(&d, 8);
    assert_true(index_on(&d));
    store_stats_t s;
    assert_int_equal(store_stats(&d.st, &s, NULL, 0), STORE_OK);
    assert_int_equal(s.index_keys, 4);
    dev_close(&d);
}

/* Flip one data byte of the record holding `needle`: its CRC fails. */
static void damage(rig_t *d, const char *needle)
{
    size_t n = strlen(needle), size = (size_t)SS * NSEC;
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(d->emu.mem + i, needle, n) == 0) {
            d->emu.mem[i] &= (uint8_t)(d->emu.mem[i] - 1u); /* a 1 -> 0 flip, as NOR decays */
            return;
        }
    fail_msg("%s not on flash", needle);
}

/* A damaged newest version answers CORRUPT with and without the index,
 * and both agree after GC has turned the ring past it. */
static void test_damaged_newest(void **state)
{
    (void)state;
    rig_t a, b;
    rng_t rng = {0xDA3A6Eull};
    unsigned remounts = 0;
    dev_open(&a, IDX_KEYS);
    dev_open(&b, 0);
    assert_int_equal(store_put(&a.st, "key/00", 6, "first-value", 11), STORE_OK);
    assert_int_equal(store_put(&b.st, "key/00", 6, "first-value", 11), STORE_OK);
    assert_int_equal(store_put(&a.st, "key/00", 6, "second-value", 12), STORE_OK);
    assert_int_equal(store_put(&b.st, "key/00", 6, "second-value", 12), STORE_OK);
    damage(&a, "second-value");
    damage(&b, "second-value");
    compare(&a, &b, "damaged");
    uint8_t out[32];
    size_t len;
    assert_int_equal(store_get(&a.st, "key/00", 6, out, sizeof out, &len), STORE_ERR_CORRUPT);
    dev_remount(&a, IDX_KEYS);
    dev_remount(&b, 0);
    compare(&a, &b, "damaged, remounted");
    for (unsigned n = 0; n < 300; n++) { /* GC drops the damaged record */
        step(&a, &b, &rng, &remounts);
        compare(&a, &b, "damaged, then a workload");
    }
    dev_close(&a);
    dev_close(&b);
}

/* The walk with a prefix lists exactly the live keys under it. */
static void test_walk_prefix(void **state)
{
    (void)state;
    rig_t d;
    walk_t w;
    dev_open(&d, IDX_KEYS);
    assert_int_equal(store_put(&d.st, "key/01", 6, "a", 1), STORE_OK);
    assert_int_equal(store_put(&d.st, "key/02", 6, "bb", 2), STORE_OK);
    assert_int_equal(store_put(&d.st, "other", 5, "c", 1), STORE_OK);
    assert_int_equal(store_delete(&d.st, "key/02", 6), STORE_OK);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_iterate(&d.st, "key/", 4, walk_cb, &w), STORE_OK);
    assert_int_equal(w.seen[1], 1);
    assert_int_equal(w.len[1], 1);
    assert_int_equal(w.seen[2], 0);
    assert_int_equal(w.others, 0);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_iterate(&d.st, NULL, 0, walk_cb, &w), STORE_OK);
    assert_int_equal(w.others, 1);
    /* keys sort by their first byte: the last byte value, and a prefix
     * byte nobody starts with, walk exactly their own keys */
    assert_int_equal(store_put(&d.st, "\xff\x01", 2, "x", 1), STORE_OK);
    assert_int_equal(store_put(&d.st, "\xfe", 1, "y", 1), STORE_OK);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_iterate(&d.st, "\xff", 1, walk_cb, &w), STORE_OK);
    assert_int_equal(w.others, 1);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_iterate(&d.st, "\xfe", 1, walk_cb, &w), STORE_OK);
    assert_int_equal(w.others, 1);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_iterate(&d.st, "a", 1, walk_cb, &w), STORE_OK);
    assert_int_equal(w.others + w.seen[1], 0);
    memset(&w, 0, sizeof w);
    assert_int_equal(store_iterate(&d.st, "k", 1, walk_cb, &w), STORE_OK);
    assert_int_equal(w.seen[1], 1);
    assert_int_equal(w.others, 0);
    dev_close(&d);
}

/* Regression (found by the fuzzer's index differential): an earlier copy of
 * a record whose key bytes rotted hid the intact copy after it from the
 * walk without the index, though get found the key. Both walks list it. */
static void test_walk_after_rotted_copy(void **state)
{
    (void)state;
    for (uint32_t keys = 0; keys <= IDX_KEYS; keys += IDX_KEYS) {
        rig_t d;
        walk_t w;
        uint8_t out[8];
        size_t len;
        dev_open(&d, keys);
        assert_int_equal(store_put(&d.st, "key/03", 6, "val", 3), STORE_OK);
        /* the record sits right after the sector header; a verbatim copy
         * of it after it, as an interrupted GC can leave */
        const uint32_t at = 28, rec = (28u + 6u + 3u + 3u) & ~3u; /* align(28 + 6 + 3, 4) */
        assert_memory_equal(d.emu.mem + at + 28, "key/03", 6);
        memcpy(d.emu.mem + at + rec, d.emu.mem + at, rec);
        d.emu.mem[at + 28 + 5] &= (uint8_t)~0x01; /* '3' -> '2': the first copy's key rots */
        dev_remount(&d, keys);
        assert_int_equal(store_get(&d.st, "key/03", 6, out, sizeof out, &len), STORE_OK);
        assert_memory_equal(out, "val", 3);
        memset(&w, 0, sizeof w);
        assert_int_equal(store_iterate(&d.st, NULL, 0, walk_cb, &w), STORE_OK);
        assert_int_equal(w.seen[3], 1);
        assert_int_equal(w.seen[2], 0); /* the rotted key is nobody's */
        dev_close(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_step_workload),
        cmocka_unit_test(test_uncommitted_newest_at_mount),
        cmocka_unit_test(test_overflow_switches_off),
        cmocka_unit_test(test_damaged_newest),
        cmocka_unit_test(test_walk_prefix),
        cmocka_unit_test(test_walk_after_rotted_copy),
    };
    return cmocka_run_group_tests_name("store_index", tests, NULL, NULL);
}
