/*
 * components/store: corruption, limits, fill-to-full and endurance
 * (against store.h only, on the emulated NOR flash).
 *
 *  - argument and limit checks (key/value sizes, short get buffer, txn
 *    misuse, mount without/with STORE_MOUNT_FORMAT_IF_EMPTY, geometry);
 *  - single bit flips in a written image, one at a time from a snapshot;
 *  - a whole sector of random garbage, each sector in turn;
 *  - a truncated image (tail erased, a device with fewer sectors);
 *  - fill to STORE_FULL: nothing acknowledged is lost, deletes make room;
 *  - endurance: 100,000 updates, erase counts spread (max/min <= 2.0).
 *
 * "Wrong value" means bytes the key never held (torn, mixed, garbage or
 * another key's). When corruption destroys the newest record of a key, a
 * log store cannot tell whose record it was, so the previous committed value
 * of that key (or not-found) is an accepted answer; it is counted as "stale".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "emu_flash.h"
#include "store.h"
#include "test_crc.h"
#include "test_owned.h"
#include "test_rng.h"

/* ------------------------------------------------------------ helpers -- */

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
    size_t work_size;
    size_t dev_bytes;
} rig_t;

static void rig_init(rig_t *g, uint32_t sector_size, uint32_t sector_count, uint32_t w)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(emu_flash_init(&g->emu, sector_size, sector_count, w), 0);
    own(g->emu.mem);
    own(g->emu.erase_counts);
    g->dev_bytes = (size_t)sector_size * sector_count;
    g->work_size = STORE_WORK_SIZE(sector_count);
    g->work = own(malloc(g->work_size));
}

static void rig_free(rig_t *g)
{
    owned_free(g->work);
    owned_free(g->emu.mem);
    owned_free(g->emu.erase_counts);
    g->work = NULL;
    g->emu.mem = NULL;
    g->emu.erase_counts = NULL;
}

/* Reboot: fresh RAM, then mount. */
static int rig_mount(rig_t *g, uint32_t flags, store_mount_report_t *rep)
{
    memset(&g->st, 0, sizeof g->st);
    memset(g->work, 0xA5, g->work_size);
    if (rep)
        memset(rep, 0, sizeof *rep);
    return store_mount(&g->st, &g->emu.dev, g->work, g->work_size, flags, rep);
}

static bool count_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value_len;
    (*(size_t *)arg)++;
    return true;
}

static size_t count_keys(store_t *st, const char *prefix)
{
    size_t n = 0;
    assert_int_equal(store_iterate(st, prefix, prefix ? strlen(prefix) : 0, count_cb, &n), STORE_OK);
    return n;
}

static void check_value(store_t *st, const void *key, size_t key_len, const void *val, size_t len)
{
    static uint8_t buf[STORE_VALUE_MAX + 16];
    size_t got = (size_t)-1;
    int rc = store_get(st, key, key_len, buf, sizeof buf, &got);
    if (rc != STORE_OK)
        fail_msg("get(%.*s) = %d (%s), want OK", (int)key_len, (const char *)key, rc,
                 store_status_str(rc));
    assert_int_equal(got, len);
    assert_memory_equal(buf, val, len);
}

static void check_absent(store_t *st, const void *key, size_t key_len)
{
    uint8_t buf[8];
    size_t got = 0;
    assert_int_equal(store_get(st, key, key_len, buf, sizeof buf, &got), STORE_NOT_FOUND);
}

/* ------------------------------------------------- model with history -- */

#define HKEYS 48
#define HVERS 4
#define HVAL 48 /* small values: every one unique and findable in the image */

typedef struct {
    char key[24];
    size_t key_len;
    bool present;
    int nvers; /* versions ever written (last = current if present) */
    uint8_t vers[HVERS][HVAL];
} hkey_t;

typedef struct {
    int n;
    hkey_t k[HKEYS];
} hmodel_t;

static void hm_put(store_t *st, hkey_t *k, rng_t *r)
{
    assert_true(k->nvers < HVERS);
    rng_fill(r, k->vers[k->nvers], HVAL);
    assert_int_equal(store_put(st, k->key, k->key_len, k->vers[k->nvers], HVAL), STORE_OK);
    k->nvers++;
    k->present = true;
}

/* Build an image: n keys, some updated (older versions become dead records),
 * some deleted. Only single puts/deletes (self-committing records). */
static void hm_build(rig_t *g, hmodel_t *m, int n, uint64_t seed)
{
    rng_t r = {seed};
    memset(m, 0, sizeof *m);
    m->n = n;
    store_mount_report_t rep;
    assert_int_equal(rig_mount(g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    for (int i = 0; i < n; i++) {
        m->k[i].key_len = (size_t)snprintf(m->k[i].key, sizeof m->k[i].key, "cfg/%02d/%.*s", i,
                                           i % 12, "abcdefghijkl");
        hm_put(&g->st, &m->k[i], &r);
    }
    for (int i = 0; i < n; i += 2) /* updates */
        hm_put(&g->st, &m->k[i], &r);
    for (int i = 0; i < n; i += 5)
        hm_put(&g->st, &m->k[i], &r);
    for (int i = 3; i < n; i += 7) { /* deletes */
        assert_int_equal(store_delete(&g->st, m->k[i].key, m->k[i].key_len), STORE_OK);
        m->k[i].present = false;
    }
}

enum { V_GOOD, V_STALE, V_MISSING };

/* Classify store_get of key k: the current value (or not-found for a deleted
 * key) is good, an older value of the same key is stale, not-found or an
 * error is missing; anything else is a wrong value and fails the test. */
static int hm_check(store_t *st, const hkey_t *k, const char *ctx)
{
    uint8_t buf[HVAL + 64];
    size_t len = 0;
    int rc = store_get(st, k->key, k->key_len, buf, sizeof buf, &len);
    if (rc == STORE_OK) {
        if (len == HVAL) {
            if (k->present && memcmp(buf, k->vers[k->nvers - 1], HVAL) == 0)
                return V_GOOD;
            for (int v = 0; v < k->nvers; v++)
                if (memcmp(buf, k->vers[v], HVAL) == 0)
                    return V_STALE;
        }
        fail_msg("%s: key %s returned a value it never held (len %zu)", ctx, k->key, len);
    }
    if (rc == STORE_NOT_FOUND && !k->present)
        return V_GOOD;
    if (rc == STORE_OK || rc == STORE_ERR_ARG || rc == STORE_ERR_NOT_MOUNTED)
        fail_msg("%s: key %s: get returned %d", ctx, k->key, rc);
    return V_MISSING;
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t hay_len, const uint8_t *needle,
                                 size_t len)
{
    for (size_t i = 0; i + len <= hay_len; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, len) == 0)
            return hay + i;
    return NULL;
}

/* Where the current value of k sits verbatim in the image; -1 if not
 * exactly once. */
static long hm_locate(const rig_t *g, const hkey_t *k)
{
    if (!k->present)
        return -1;
    const uint8_t *v = k->vers[k->nvers - 1];
    const uint8_t *p = find_bytes(g->emu.mem, g->dev_bytes, v, HVAL);
    if (!p)
        return -1;
    const uint8_t *q = find_bytes(p + 1, g->dev_bytes - (size_t)(p + 1 - g->emu.mem), v, HVAL);
    return q ? -1 : (long)(p - g->emu.mem);
}

typedef struct {
    const hmodel_t *m;
    bool bad;
} iter_known_t;

static bool iter_known_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    iter_known_t *ik = arg;
    for (int i = 0; i < ik->m->n; i++)
        if (ik->m->k[i].key_len == key_len && memcmp(ik->m->k[i].key, key, key_len) == 0 &&
            value_len == HVAL)
            return true;
    ik->bad = true; /* a key name (or length) that was never written */
    return true;
}

static void hm_iterate_known(store_t *st, const hmodel_t *m, const char *ctx)
{
    iter_known_t ik = {m, false};
    int rc = store_iterate(st, NULL, 0, iter_known_cb, &ik);
    if (rc != STORE_OK && rc != STORE_ERR_CORRUPT)
        fail_msg("%s: iterate returned %d", ctx, rc);
    if (ik.bad)
        fail_msg("%s: iterate reported a key/length that was never written", ctx);
}

/* ----------------------------------------------------- argument checks -- */

static void test_mount_format_flags(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    rig_init(&g, 1024, 4, 4);
    /* an all-0xFF device holds no store */
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_ERR_NOT_STORE);
    for (size_t i = 0; i < g.dev_bytes; i++)
        assert_int_equal(g.emu.mem[i], 0xFF); /* mount without the flag wrote nothing */
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    assert_int_equal(count_keys(&g.st, NULL), 0);
    assert_int_equal(store_put(&g.st, "a", 1, "1", 1), STORE_OK);
    /* an existing store is not reformatted by the flag */
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    check_value(&g.st, "a", 1, "1", 1);
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    check_value(&g.st, "a", 1, "1", 1);
    /* a foreign device (random bytes everywhere) */
    rng_t r = {77};
    rng_fill(&r, g.emu.mem, g.dev_bytes);
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_ERR_NOT_STORE);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    assert_int_equal(count_keys(&g.st, NULL), 0);
    check_absent(&g.st, "a", 1);
    assert_int_equal(store_put(&g.st, "b", 1, "2", 1), STORE_OK);
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    check_value(&g.st, "b", 1, "2", 1);
    /* store_format empties a store */
    memset(&g.st, 0, sizeof g.st);
    assert_int_equal(store_format(&g.st, &g.emu.dev, g.work, g.work_size), STORE_OK);
    assert_int_equal(count_keys(&g.st, NULL), 0);
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    check_absent(&g.st, "b", 1);
    /* work buffer one byte short */
    memset(&g.st, 0, sizeof g.st);
    assert_int_equal(store_mount(&g.st, &g.emu.dev, g.work, g.work_size - 1, 0, &rep),
                     STORE_ERR_NOMEM);
    assert_int_equal(g.emu.violations, 0);
    rig_free(&g);

    /* a handle that was never mounted */
    store_t none;
    uint8_t buf[4];
    size_t len = 0;
    memset(&none, 0, sizeof none);
    int rc = store_get(&none, "a", 1, buf, sizeof buf, &len);
    assert_true(rc == STORE_ERR_NOT_MOUNTED || rc == STORE_ERR_ARG);
    rc = store_put(&none, "a", 1, "x", 1);
    assert_true(rc == STORE_ERR_NOT_MOUNTED || rc == STORE_ERR_ARG);
}

static void test_geometry_checks(void **state)
{
    (void)state;
    static const struct {
        uint32_t ss, sc, w;
    } bad[] = {
        {256, 8, 4},  /* sector smaller than 512 */
        {768, 8, 4},  /* not a power of two */
        {1024, 2, 4}, /* fewer than 3 sectors */
        {512, STORE_SECTORS_MAX + 1, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rig_t g;
        store_mount_report_t rep;
        rig_init(&g, bad[i].ss, bad[i].sc, bad[i].w);
        int rc = rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep);
        if (rc != STORE_ERR_GEOMETRY)
            fail_msg("geometry %ux%u w=%u: mount returned %d, want STORE_ERR_GEOMETRY", bad[i].ss,
                     bad[i].sc, bad[i].w, rc);
        memset(&g.st, 0, sizeof g.st);
        rc = store_format(&g.st, &g.emu.dev, g.work, g.work_size);
        assert_int_equal(rc, STORE_ERR_GEOMETRY);
        rig_free(&g);
    }
    /* the smallest supported geometries work */
    static const struct {
        uint32_t ss, sc, w;
    } good[] = {{512, 3, 1}, {512, 3, 32}, {4096, 3, 16}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        rig_t g;
        store_mount_report_t rep;
        rig_init(&g, good[i].ss, good[i].sc, good[i].w);
        assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
        rng_t r = {i};
        uint8_t v[60];
        for (int n = 0; n < 200; n++) { /* forces GC on the 3-sector devices */
            char key[16];
            int kl = snprintf(key, sizeof key, "k%d", n % 3);
            rng_fill(&r, v, sizeof v);
            assert_int_equal(store_put(&g.st, key, (size_t)kl, v, sizeof v), STORE_OK);
            check_value(&g.st, key, (size_t)kl, v, sizeof v);
        }
        assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
        assert_int_equal(count_keys(&g.st, NULL), 3);
        assert_int_equal(g.emu.violations, 0);
        rig_free(&g);
    }
}

static void test_key_value_limits(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    static uint8_t big[STORE_VALUE_MAX + 1], buf[STORE_VALUE_MAX + 1];
    uint8_t key[STORE_KEY_MAX + 1];
    size_t len;
    rng_t r = {5};

    rig_init(&g, 4096, 16, 4);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    memset(key, 'k', sizeof key);
    /* key of 65 bytes: rejected everywhere */
    assert_int_equal(store_put(&g.st, key, STORE_KEY_MAX + 1, "v", 1), STORE_ERR_ARG);
    assert_int_equal(store_get(&g.st, key, STORE_KEY_MAX + 1, buf, 8, &len), STORE_ERR_ARG);
    assert_int_equal(store_delete(&g.st, key, STORE_KEY_MAX + 1), STORE_ERR_ARG);
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    assert_int_equal(store_txn_put(&g.st, key, STORE_KEY_MAX + 1, "v", 1), STORE_ERR_ARG);
    assert_int_equal(store_txn_delete(&g.st, key, STORE_KEY_MAX + 1), STORE_ERR_ARG);
    assert_int_equal(store_txn_abort(&g.st), STORE_OK);
    /* key of exactly 64 bytes: fine, and distinct from its 63-byte prefix */
    assert_int_equal(store_put(&g.st, key, STORE_KEY_MAX, "64", 2), STORE_OK);
    assert_int_equal(store_put(&g.st, key, STORE_KEY_MAX - 1, "63", 2), STORE_OK);
    check_value(&g.st, key, STORE_KEY_MAX, "64", 2);
    check_value(&g.st, key, STORE_KEY_MAX - 1, "63", 2);
    /* NULL key with a length */
    assert_int_equal(store_put(&g.st, NULL, 3, "v", 1), STORE_ERR_ARG);
    /* binary keys: 0x00 and 0xFF bytes are ordinary key bytes */
    const uint8_t k0[] = {0x00, 0xFF, 0x00}, k1[] = {0x00, 0xFF, 0x01}, kff[] = {0xFF, 0xFF};
    assert_int_equal(store_put(&g.st, k0, sizeof k0, "zero", 4), STORE_OK);
    assert_int_equal(store_put(&g.st, k1, sizeof k1, "one", 3), STORE_OK);
    assert_int_equal(store_put(&g.st, kff, sizeof kff, "ff", 2), STORE_OK);
    check_value(&g.st, k0, sizeof k0, "zero", 4);
    check_value(&g.st, k1, sizeof k1, "one", 3);
    check_value(&g.st, kff, sizeof kff, "ff", 2);
    /* an empty value is a value, not a delete */
    assert_int_equal(store_put(&g.st, "empty", 5, "", 0), STORE_OK);
    len = 99;
    assert_int_equal(store_get(&g.st, "empty", 5, buf, sizeof buf, &len), STORE_OK);
    assert_int_equal(len, 0);
    /* values: STORE_VALUE_MAX fits, one more byte does not */
    rng_fill(&r, big, sizeof big);
    assert_int_equal(store_put(&g.st, "cert", 4, big, STORE_VALUE_MAX + 1), STORE_ERR_TOO_BIG);
    check_absent(&g.st, "cert", 4);
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    assert_int_equal(store_txn_put(&g.st, "cert", 4, big, STORE_VALUE_MAX + 1), STORE_ERR_TOO_BIG);
    assert_int_equal(store_txn_abort(&g.st), STORE_OK);
    assert_int_equal(store_put(&g.st, "cert", 4, big, STORE_VALUE_MAX), STORE_OK);
    check_value(&g.st, "cert", 4, big, STORE_VALUE_MAX);
    /* a get buffer one byte short: TOO_BIG, and *len tells the size */
    len = 0;
    assert_int_equal(store_get(&g.st, "cert", 4, buf, STORE_VALUE_MAX - 1, &len), STORE_ERR_TOO_BIG);
    assert_int_equal(len, STORE_VALUE_MAX);
    len = 0;
    assert_int_equal(store_get(&g.st, "cert", 4, buf, 0, &len), STORE_ERR_TOO_BIG);
    assert_int_equal(len, STORE_VALUE_MAX);
    len = 0;
    assert_int_equal(store_get(&g.st, "64", 2, buf, 1, &len), STORE_NOT_FOUND);
    assert_int_equal(store_get(&g.st, key, STORE_KEY_MAX, buf, 1, &len), STORE_ERR_TOO_BIG);
    assert_int_equal(len, 2);
    /* delete */
    assert_int_equal(store_delete(&g.st, "nope", 4), STORE_NOT_FOUND);
    assert_int_equal(store_delete(&g.st, k1, sizeof k1), STORE_OK);
    check_absent(&g.st, k1, sizeof k1);
    assert_int_equal(store_delete(&g.st, k1, sizeof k1), STORE_NOT_FOUND);
    check_value(&g.st, k0, sizeof k0, "zero", 4);
    /* stats */
    store_stats_t s;
    uint32_t ec[16];
    memset(&s, 0, sizeof s);
    assert_int_equal(store_stats(&g.st, &s, ec, 16), STORE_OK);
    assert_int_equal(s.live_records >= 6, 1);
    assert_true(s.live_bytes >= STORE_VALUE_MAX);
    assert_true(s.dead_bytes > 0); /* the deleted key */
    assert_true(s.free_bytes > 0 && s.free_bytes < g.dev_bytes);
    assert_true(s.erase_min <= s.erase_max);
    /* everything survives a remount */
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    check_value(&g.st, "cert", 4, big, STORE_VALUE_MAX);
    check_value(&g.st, key, STORE_KEY_MAX, "64", 2);
    check_value(&g.st, k0, sizeof k0, "zero", 4);
    check_absent(&g.st, k1, sizeof k1);
    assert_int_equal(count_keys(&g.st, NULL), 6); /* 64, 63, k0, kff, empty, cert */
    assert_int_equal(store_fsck(&g.st, &rep), STORE_OK);
    assert_int_equal(g.emu.violations, 0);
    rig_free(&g);
}

typedef struct {
    size_t seen, stop_after;
    bool prefix_ok;
    const char *prefix;
} pfx_iter_t;

static bool pfx_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    pfx_iter_t *p = arg;
    size_t pl = strlen(p->prefix);
    (void)value_len;
    if (key_len < pl || memcmp(key, p->prefix, pl) != 0)
        p->prefix_ok = false;
    p->seen++;
    return p->seen < p->stop_after;
}

static void test_txn_and_iterate(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    char key[32];
    rig_init(&g, 1024, 8, 8);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    /* misuse */
    assert_int_equal(store_txn_put(&g.st, "a", 1, "1", 1), STORE_ERR_TXN);
    assert_int_equal(store_txn_delete(&g.st, "a", 1), STORE_ERR_TXN);
    assert_int_equal(store_txn_commit(&g.st), STORE_ERR_TXN);
    assert_int_equal(store_txn_abort(&g.st), STORE_ERR_TXN);
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    assert_int_equal(store_txn_begin(&g.st), STORE_ERR_TXN);
    assert_int_equal(store_txn_abort(&g.st), STORE_OK);
    /* a full transaction of STORE_TXN_OPS_MAX ops lands, reads see the old state until commit */
    assert_int_equal(store_put(&g.st, "t/00", 4, "old", 3), STORE_OK);
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    for (unsigned i = 0; i < STORE_TXN_OPS_MAX; i++) {
        int kl = snprintf(key, sizeof key, "t/%02u", i);
        assert_int_equal(store_txn_put(&g.st, key, (size_t)kl, key, (size_t)kl), STORE_OK);
    }
    check_value(&g.st, "t/00", 4, "old", 3);
    check_absent(&g.st, "t/01", 4);
    assert_int_equal(store_txn_commit(&g.st), STORE_OK);
    for (unsigned i = 0; i < STORE_TXN_OPS_MAX; i++) {
        int kl = snprintf(key, sizeof key, "t/%02u", i);
        check_value(&g.st, key, (size_t)kl, key, (size_t)kl);
    }
    /* one op too many: STORE_ERR_TXN; after abort nothing landed */
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    for (unsigned i = 0; i < STORE_TXN_OPS_MAX; i++) {
        int kl = snprintf(key, sizeof key, "u/%02u", i);
        assert_int_equal(store_txn_put(&g.st, key, (size_t)kl, "x", 1), STORE_OK);
    }
    assert_int_equal(store_txn_put(&g.st, "u/16", 4, "x", 1), STORE_ERR_TXN);
    assert_int_equal(store_txn_delete(&g.st, "t/00", 4), STORE_ERR_TXN);
    assert_int_equal(store_txn_abort(&g.st), STORE_OK);
    assert_int_equal(count_keys(&g.st, "u/"), 0);
    check_value(&g.st, "t/00", 4, "t/00", 4);
    /* abort: none lands; put + delete of one key in a txn: the delete wins */
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    assert_int_equal(store_txn_put(&g.st, "t/01", 4, "new", 3), STORE_OK);
    assert_int_equal(store_txn_delete(&g.st, "t/02", 4), STORE_OK);
    assert_int_equal(store_txn_abort(&g.st), STORE_OK);
    check_value(&g.st, "t/01", 4, "t/01", 4);
    check_value(&g.st, "t/02", 4, "t/02", 4);
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    assert_int_equal(store_txn_put(&g.st, "t/03", 4, "new", 3), STORE_OK);
    assert_int_equal(store_txn_delete(&g.st, "t/03", 4), STORE_OK);
    assert_int_equal(store_txn_delete(&g.st, "t/04", 4), STORE_OK);
    assert_int_equal(store_txn_put(&g.st, "t/04", 4, "back", 4), STORE_OK);
    assert_int_equal(store_txn_commit(&g.st), STORE_OK);
    check_absent(&g.st, "t/03", 4);
    check_value(&g.st, "t/04", 4, "back", 4);
    /* iterate by prefix, and stopping early */
    assert_int_equal(store_put(&g.st, "tx", 2, "1", 1), STORE_OK);
    assert_int_equal(count_keys(&g.st, "t/"), STORE_TXN_OPS_MAX - 1);
    assert_int_equal(count_keys(&g.st, "t"), STORE_TXN_OPS_MAX);
    assert_int_equal(count_keys(&g.st, "t/1"), 6);
    assert_int_equal(count_keys(&g.st, "zz"), 0);
    pfx_iter_t p = {0, 3, true, "t/"};
    assert_int_equal(store_iterate(&g.st, "t/", 2, pfx_cb, &p), STORE_OK);
    assert_int_equal(p.seen, 3);
    assert_true(p.prefix_ok);
    /* survives a remount */
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    assert_int_equal(count_keys(&g.st, NULL), STORE_TXN_OPS_MAX);
    check_value(&g.st, "t/04", 4, "back", 4);
    check_absent(&g.st, "t/03", 4);
    assert_int_equal(g.emu.violations, 0);
    rig_free(&g);

    /* every status has a name */
    for (int s = STORE_ERR_NOT_MOUNTED; s <= STORE_OK; s++) {
        const char *n = store_status_str(s);
        assert_non_null(n);
        assert_true(n[0] != 0);
        for (int t = STORE_ERR_NOT_MOUNTED; t < s; t++)
            assert_true(strcmp(n, store_status_str(t)) != 0);
    }
    assert_non_null(store_status_str(1234));
}

/* ------------------------------------------------------------ bit flips -- */

static hmodel_t g_hm;

static void test_bit_flips(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    char ctx[96];
    rig_init(&g, 1024, 8, 4);
    hm_build(&g, &g_hm, 24, 0xB17);
    uint8_t *img = own(malloc(g.dev_bytes)); /* own() fails the test on NULL */
    memcpy(img, g.emu.mem, g.dev_bytes);

    /* baseline: the clean image mounts without damage, fsck agrees */
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    assert_int_equal(store_fsck(&g.st, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    for (int i = 0; i < g_hm.n; i++)
        assert_int_equal(hm_check(&g.st, &g_hm.k[i], "clean"), V_GOOD);

    long loc[HKEYS];
    int located = 0;
    for (int i = 0; i < g_hm.n; i++) {
        loc[i] = hm_locate(&g, &g_hm.k[i]);
        located += loc[i] >= 0;
    }
    assert_true(located >= g_hm.n / 2); /* values are stored verbatim */

    rng_t r = {0xF11B};
    unsigned flips = 600, in_live = 0, stale = 0, missing = 0, put_fail = 0, quick_lazy = 0;
    for (unsigned f = 0; f < flips; f++) {
        size_t byte;
        int hit = -1;
        if (f % 3 == 0) { /* aim inside the current value of a live key */
            int i;
            do
                i = (int)rng_below(&r, (uint32_t)g_hm.n);
            while (loc[i] < 0);
            byte = (size_t)loc[i] + rng_below(&r, HVAL);
        } else {
            byte = rng_below(&r, (uint32_t)g.dev_bytes);
        }
        for (int i = 0; i < g_hm.n; i++)
            if (loc[i] >= 0 && byte >= (size_t)loc[i] && byte < (size_t)loc[i] + HVAL)
                hit = i;
        memcpy(g.emu.mem, img, g.dev_bytes);
        g.emu.mem[byte] ^= (uint8_t)(1u << rng_below(&r, 8));
        /* every other flip under a quick mount (STORE_MOUNT_QUICK, as the
         * Linux CLI mounts): the same answers, only the report differs */
        bool quick = f % 2 == 1;
        snprintf(ctx, sizeof ctx, "flip %u at byte %zu%s", f, byte, quick ? " (quick mount)" : "");
        int rc = rig_mount(&g, quick ? STORE_MOUNT_QUICK : 0, &rep);
        if (rc != STORE_OK)
            fail_msg("%s: mount returned %d (%s)", ctx, rc, store_status_str(rc));
        store_mount_report_t mrep = rep;
        for (int i = 0; i < g_hm.n; i++) {
            int v = hm_check(&g.st, &g_hm.k[i], ctx);
            stale += v == V_STALE;
            missing += v == V_MISSING;
            if (i == hit && v == V_GOOD)
                fail_msg("%s: key %s returned its value although the flip is inside it", ctx,
                         g_hm.k[i].key);
        }
        if (hit >= 0) {
            /* the flip is in the data of the newest record, its header is
             * intact: "the record exists but failed its CRC" */
            uint8_t b[HVAL + 64];
            size_t bl = 0;
            rc = store_get(&g.st, g_hm.k[hit].key, g_hm.k[hit].key_len, b, sizeof b, &bl);
            if (rc != STORE_ERR_CORRUPT)
                fail_msg("%s (inside the value of live key %s): get returned %d (%s), want "
                         "STORE_ERR_CORRUPT",
                         ctx, g_hm.k[hit].key, rc, store_status_str(rc));
        }
        hm_iterate_known(&g.st, &g_hm, ctx);
        rc = store_fsck(&g.st, &rep);
        if (hit >= 0) {
            in_live++;
            /* a quick mount checks data CRCs only in the head sector */
            quick_lazy += quick && mrep.records_damaged == 0;
            if (rc != STORE_ERR_CORRUPT || rep.records_damaged == 0 ||
                (!quick && mrep.records_damaged == 0))
                fail_msg("%s (inside live key %s): fsck=%d damaged=%u, mount damaged=%u", ctx,
                         g_hm.k[hit].key, rc, rep.records_damaged, mrep.records_damaged);
        } else if (rc != STORE_OK && rc != STORE_ERR_CORRUPT) {
            fail_msg("%s: fsck returned %d", ctx, rc);
        }
        /* a value written now reads back, also after a remount */
        rc = store_put(&g.st, "after-flip", 10, &f, sizeof f);
        if (rc == STORE_OK) {
            check_value(&g.st, "after-flip", 10, &f, sizeof f);
            assert_int_equal(rig_mount(&g, 0, NULL), STORE_OK);
            check_value(&g.st, "after-flip", 10, &f, sizeof f);
        } else {
            put_fail++;
        }
    }
    printf("# bitflip: flips=%u in-live-values=%u stale-answers=%u missing-answers=%u "
           "put-failures=%u\n",
           flips, in_live, stale, missing, put_fail);
    fflush(stdout);
    assert_true(in_live >= flips / 3);
    assert_true(quick_lazy > 0); /* quick mounts left damage outside the head to the reads */
    assert_int_equal(put_fail, 0);
    owned_free(img);
    rig_free(&g);
}

/* ------------------------------------------------------ garbage sector -- */

static void test_garbage_sector(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    char ctx[96];
    const uint32_t ss = 1024, sc = 8;
    rig_init(&g, ss, sc, 8);
    hm_build(&g, &g_hm, 40, 0x6A6);          /* ~ 90 records: the log wraps, GC has run */
    uint8_t *img = own(malloc(g.dev_bytes)); /* own() fails the test on NULL */
    memcpy(img, g.emu.mem, g.dev_bytes);
    long loc[HKEYS];
    for (int i = 0; i < g_hm.n; i++)
        loc[i] = hm_locate(&g, &g_hm.k[i]);

    rng_t r = {0x6A7};
    unsigned served = 0, stale = 0, missing = 0, quiet_sectors = 0;
    for (uint32_t s = 0; s < sc; s++) {
        memcpy(g.emu.mem, img, g.dev_bytes);
        rng_fill(&r, g.emu.mem + (size_t)s * ss, ss);
        snprintf(ctx, sizeof ctx, "garbage in sector %u", s);
        int rc = rig_mount(&g, 0, &rep);
        if (rc != STORE_OK)
            fail_msg("%s: mount returned %d (%s)", ctx, rc, store_status_str(rc));
        /* Damage must be reported, except in the one sector the ring keeps
         * free: garbage there is indistinguishable from an interrupted erase
         * and holds no data, so then every key must be answered exactly. */
        bool quiet = rep.records_damaged + rep.sectors_bad == 0;
        quiet_sectors += quiet;
        for (int i = 0; i < g_hm.n; i++) {
            int v = hm_check(&g.st, &g_hm.k[i], ctx);
            if (quiet && v != V_GOOD)
                fail_msg("%s: mount reported no damage (live=%u) but key %s now answers %s: "
                         "records were lost silently",
                         ctx, rep.records_live, g_hm.k[i].key,
                         v == V_STALE ? "an older value" : "not-found/error");
            stale += v == V_STALE;
            missing += v == V_MISSING;
            /* intact records in other sectors are still served */
            if (loc[i] >= 0) {
                uint32_t vs = (uint32_t)((size_t)loc[i] / ss);
                size_t off = (size_t)loc[i] % ss;
                bool inside = off + HVAL <= ss && off >= g_hm.k[i].key_len;
                if (vs != s && inside) {
                    if (v != V_GOOD)
                        fail_msg("%s: key %s (record intact in sector %u) not served", ctx,
                                 g_hm.k[i].key, vs);
                    served++;
                }
            }
        }
        if (quiet_sectors > 1)
            fail_msg("%s: a second sector whose garbage mount did not report", ctx);
        hm_iterate_known(&g.st, &g_hm, ctx);
        rc = store_fsck(&g.st, &rep);
        if (rc != STORE_ERR_CORRUPT && !(quiet && rc == STORE_OK))
            fail_msg("%s: fsck returned %d, want STORE_ERR_CORRUPT", ctx, rc);
        /* the store stays usable: a new key lands and survives a remount */
        rc = store_put(&g.st, "after-garbage", 13, &s, sizeof s);
        if (rc != STORE_OK)
            fail_msg("%s: put returned %d (%s)", ctx, rc, store_status_str(rc));
        assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
        check_value(&g.st, "after-garbage", 13, &s, sizeof s);
        for (int i = 0; i < g_hm.n; i++)
            (void)hm_check(&g.st, &g_hm.k[i], ctx);
        assert_int_equal(g.emu.violations, 0);
    }
    printf("# garbage: sectors=%u intact-served=%u stale-answers=%u missing-answers=%u "
           "no-damage-reported=%u (the free sector)\n",
           sc, served, stale, missing, quiet_sectors);
    fflush(stdout);
    assert_true(served >= (unsigned)g_hm.n); /* the check above had something to check */
    owned_free(img);
    rig_free(&g);
}

/* ------------------------------------------------------------ truncated -- */

static void test_truncated_image(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    char ctx[96];
    const uint32_t ss = 1024, sc = 8;
    rig_init(&g, ss, sc, 4);
    hm_build(&g, &g_hm, 40, 0x7A7);
    uint8_t *img = own(malloc(g.dev_bytes)); /* own() fails the test on NULL */
    memcpy(img, g.emu.mem, g.dev_bytes);
    long loc[HKEYS];
    for (int i = 0; i < g_hm.n; i++)
        loc[i] = hm_locate(&g, &g_hm.k[i]);

    /* (a) the image's tail reads as erased flash (0xFF from byte `cut` on):
     * the same geometry, so the header promises a mount; records before the
     * cut that are not superseded are served */
    static const size_t cuts[] = {7 * 1024, 6 * 1024, 5 * 1024 + 512, 4 * 1024 + 100, 3000};
    unsigned served = 0;
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        memcpy(g.emu.mem, img, g.dev_bytes);
        memset(g.emu.mem + cuts[c], 0xFF, g.dev_bytes - cuts[c]);
        snprintf(ctx, sizeof ctx, "tail erased from byte %zu", cuts[c]);
        int rc = rig_mount(&g, 0, &rep);
        if (rc != STORE_OK)
            fail_msg("%s: mount returned %d (%s)", ctx, rc, store_status_str(rc));
        for (int i = 0; i < g_hm.n; i++) {
            int v = hm_check(&g.st, &g_hm.k[i], ctx);
            if (loc[i] >= 0 && (size_t)loc[i] + HVAL <= (cuts[c] / ss) * ss &&
                (size_t)loc[i] % ss >= g_hm.k[i].key_len) {
                /* in a sector left whole: as in the garbage case, must be served */
                if (v != V_GOOD)
                    fail_msg("%s: key %s (intact at %ld) not served", ctx, g_hm.k[i].key, loc[i]);
                served++;
            }
        }
        hm_iterate_known(&g.st, &g_hm, ctx);
        rc = store_fsck(&g.st, &rep);
        assert_true(rc == STORE_OK || rc == STORE_ERR_CORRUPT);
        rc = store_put(&g.st, "after-trunc", 11, &c, sizeof c);
        if (rc != STORE_OK)
            fail_msg("%s: put returned %d", ctx, rc);
        assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
        check_value(&g.st, "after-trunc", 11, &c, sizeof c);
        assert_int_equal(g.emu.violations, 0);
    }
    assert_true(served > 0);

    /* (b) the image copied onto a device with fewer sectors: either a clear
     * error, or a mount that never returns a wrong value */
    for (uint32_t n = sc - 1; n >= 3; n--) {
        rig_t t;
        rig_init(&t, ss, n, 4);
        memcpy(t.emu.mem, img, t.dev_bytes);
        snprintf(ctx, sizeof ctx, "image cut to %u sectors", n);
        int rc = rig_mount(&t, 0, &rep);
        printf("# truncated: %u of %u sectors -> mount %s", n, sc, store_status_str(rc));
        if (rc == STORE_OK) {
            unsigned good = 0;
            for (int i = 0; i < g_hm.n; i++)
                good += hm_check(&t.st, &g_hm.k[i], ctx) == V_GOOD;
            hm_iterate_known(&t.st, &g_hm, ctx);
            int frc = store_fsck(&t.st, &rep);
            assert_true(frc == STORE_OK || frc == STORE_ERR_CORRUPT);
            rc = store_put(&t.st, "after-trunc", 11, &n, sizeof n);
            assert_true(rc == STORE_OK || rc == STORE_FULL);
            if (rc == STORE_OK) {
                assert_int_equal(rig_mount(&t, 0, &rep), STORE_OK);
                check_value(&t.st, "after-trunc", 11, &n, sizeof n);
            }
            printf(", %u/%d keys answered correctly, fsck %s", good, g_hm.n, store_status_str(frc));
        } else if (rc != STORE_ERR_NOT_STORE && rc != STORE_ERR_CORRUPT &&
                   rc != STORE_ERR_GEOMETRY) {
            fail_msg("%s: mount returned %d (%s)", ctx, rc, store_status_str(rc));
        }
        printf("\n");
        assert_int_equal(t.emu.violations, 0);
        rig_free(&t);
    }
    /* (c) 2 sectors is below the supported minimum: STORE_ERR_GEOMETRY */
    {
        rig_t t;
        rig_init(&t, ss, 2, 4);
        memcpy(t.emu.mem, img, t.dev_bytes);
        assert_int_equal(rig_mount(&t, 0, &rep), STORE_ERR_GEOMETRY);
        assert_int_equal(rig_mount(&t, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_ERR_GEOMETRY);
        assert_memory_equal(t.emu.mem, img, t.dev_bytes); /* and left untouched */
        rig_free(&t);
    }
    fflush(stdout);
    owned_free(img);
    rig_free(&g);
}

/* ---------------------------------------------------------- fill to full -- */

static void fill_to_full(uint32_t ss, uint32_t sc, uint32_t w, size_t vlen)
{
    rig_t g;
    store_mount_report_t rep;
    store_stats_t st_full, st_after;
    char key[32];
    const unsigned max_keys = 4096;
    static uint8_t v[STORE_VALUE_MAX];
    unsigned n = 0;
    int rc = STORE_OK;
    rig_init(&g, ss, sc, w);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);

#define FILL_VALUE(i)                \
    do {                             \
        rng_t vr_ = {0xF000u + (i)}; \
        rng_fill(&vr_, v, vlen);     \
    } while (0)
#define FILL_KEY(i) (size_t) snprintf(key, sizeof key, "fill/%05u", (unsigned)(i))

    while (n < max_keys) {
        size_t kl = FILL_KEY(n);
        FILL_VALUE(n);
        rc = store_put(&g.st, key, kl, v, vlen);
        if (rc != STORE_OK)
            break;
        n++;
    }
    printf("# full: %ux%u w=%u value %zu B: %u keys acknowledged before STORE_FULL\n", ss, sc, w,
           vlen, n);
    assert_int_equal(rc, STORE_FULL);
    assert_true(n < max_keys);
    assert_true((size_t)n * vlen >= (size_t)ss * (sc - 2) / 2); /* at least half the space used */
    /* every acknowledged key is intact; the refused one left no trace */
    for (unsigned i = 0; i < n; i++) {
        size_t kl = FILL_KEY(i);
        FILL_VALUE(i);
        check_value(&g.st, key, kl, v, vlen);
    }
    check_absent(&g.st, key, FILL_KEY(n));
    /* STORE_FULL again, for a put, a replacement, and a transaction */
    FILL_VALUE(n);
    assert_int_equal(store_put(&g.st, key, FILL_KEY(n + 1), v, vlen), STORE_FULL);
    assert_int_equal(store_put(&g.st, key, FILL_KEY(n + 2), v, vlen), STORE_FULL);
    assert_int_equal(store_txn_begin(&g.st), STORE_OK);
    rc = store_txn_put(&g.st, key, FILL_KEY(n + 3), v, vlen);
    if (rc == STORE_OK)
        rc = store_txn_commit(&g.st);
    assert_int_equal(rc, STORE_FULL);
    rc = store_txn_abort(&g.st);
    assert_true(rc == STORE_OK || rc == STORE_ERR_TXN);
    check_absent(&g.st, key, FILL_KEY(n + 3));
    assert_int_equal(store_stats(&g.st, &st_full, NULL, 0), STORE_OK);
    assert_int_equal(st_full.live_records >= n, 1);
    /* a remount changes nothing */
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    assert_int_equal(count_keys(&g.st, "fill/"), n);
    assert_int_equal(store_put(&g.st, key, FILL_KEY(n + 4), v, vlen), STORE_FULL);
    assert_int_equal(store_fsck(&g.st, &rep), STORE_OK);
    /* deleting makes room again */
    unsigned deleted = 0;
    for (unsigned i = 0; i < n; i += 3) {
        rc = store_delete(&g.st, key, FILL_KEY(i));
        if (rc != STORE_OK)
            fail_msg("delete of fill/%05u on a full store returned %d (%s)", i, rc,
                     store_status_str(rc));
        deleted++;
    }
    assert_int_equal(store_stats(&g.st, &st_after, NULL, 0), STORE_OK);
    assert_true(st_after.free_bytes > st_full.free_bytes);
    unsigned added = 0;
    for (unsigned i = n; i < n + deleted / 2 + 1; i++) {
        size_t kl = FILL_KEY(i);
        FILL_VALUE(i);
        rc = store_put(&g.st, key, kl, v, vlen);
        if (rc != STORE_OK)
            fail_msg("put #%u after deleting %u keys returned %d (%s)", i - n, deleted, rc,
                     store_status_str(rc));
        added++;
    }
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    for (unsigned i = 0; i < n + added; i++) {
        size_t kl = FILL_KEY(i);
        FILL_VALUE(i);
        if (i < n && i % 3 == 0)
            check_absent(&g.st, key, kl);
        else
            check_value(&g.st, key, kl, v, vlen);
    }
    assert_int_equal(count_keys(&g.st, "fill/"), n - deleted + added);
    assert_int_equal(g.emu.violations, 0);
#undef FILL_VALUE
#undef FILL_KEY
    rig_free(&g);
}

static void test_fill_to_full_small(void **state)
{
    (void)state;
    fill_to_full(1024, 8, 8, 100);
}

static void test_fill_to_full_chunked(void **state)
{
    (void)state;
    fill_to_full(1024, 8, 4, 1500);  /* every value larger than a sector */
    fill_to_full(4096, 8, 16, 8192); /* certificate-sized */
}

/* ------------------------------------------------------------ endurance -- */

static void test_endurance(void **state)
{
    (void)state;
    rig_t g;
    store_mount_report_t rep;
    store_stats_t s;
    const uint32_t ss = 1024, sc = 12;
    enum { NK = 8, UPDATES = 100000 };
    uint8_t cur[NK][64];
    size_t cur_len[NK];
    char key[16];
    rng_t r = {0xE4D};
    struct timespec t0, t1;

    rig_init(&g, ss, sc, 4);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, &rep), STORE_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int u = 0; u < UPDATES; u++) {
        int k = u < NK ? u : (int)rng_below(&r, NK); /* every key exists from the start */
        size_t kl = (size_t)snprintf(key, sizeof key, "ctr/%d", k);
        cur_len[k] = 16 + rng_below(&r, 48);
        rng_fill(&r, cur[k], cur_len[k]);
        int rc = store_put(&g.st, key, kl, cur[k], cur_len[k]);
        if (rc != STORE_OK)
            fail_msg("update %d returned %d (%s)", u, rc, store_status_str(rc));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int k = 0; k < NK; k++) {
        size_t kl = (size_t)snprintf(key, sizeof key, "ctr/%d", k);
        check_value(&g.st, key, kl, cur[k], cur_len[k]);
    }
    uint32_t ec[16];
    assert_int_equal(store_stats(&g.st, &s, ec, 16), STORE_OK);
    uint32_t emin = UINT32_MAX, emax = 0;
    for (uint32_t i = 0; i < sc; i++) {
        emin = g.emu.erase_counts[i] < emin ? g.emu.erase_counts[i] : emin;
        emax = g.emu.erase_counts[i] > emax ? g.emu.erase_counts[i] : emax;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("# endurance: %d updates on %ux%u in %.1fs: emu erase min=%u max=%u ratio=%.3f; "
           "store_stats erase_min=%u erase_max=%u ratio=%.3f\n",
           UPDATES, sc, ss, secs, emin, emax, emin ? (double)emax / emin : 0.0, s.erase_min,
           s.erase_max, s.erase_min ? (double)s.erase_max / s.erase_min : 0.0);
    fflush(stdout);
    assert_true(emin > 0);
    assert_true((double)emax / emin <= 2.0);
    assert_true(s.erase_min > 0);
    assert_true((double)s.erase_max / s.erase_min <= 2.0);
    /* the store's own per-sector counts track the real ones */
    for (uint32_t i = 0; i < sc; i++) {
        uint32_t a = ec[i], b = g.emu.erase_counts[i];
        uint32_t diff = a > b ? a - b : b - a;
        if (diff > 2 + b / 100)
            fail_msg("sector %u: store reports %u erases, the device saw %u", i, a, b);
        assert_true(ec[i] >= s.erase_min && ec[i] <= s.erase_max);
    }
    /* a lot of data went through: the wear is real, not a handful of erases */
    assert_true(emin >= 100);
    assert_int_equal(g.emu.violations, 0);
    assert_int_equal(rig_mount(&g, 0, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    for (int k = 0; k < NK; k++) {
        size_t kl = (size_t)snprintf(key, sizeof key, "ctr/%d", k);
        check_value(&g.st, key, kl, cur[k], cur_len[k]);
    }
    assert_int_equal(count_keys(&g.st, NULL), NK);
    assert_int_equal(store_fsck(&g.st, &rep), STORE_OK);
    rig_free(&g);
}

/* ------------------------------------------------- transaction ids -- */

/* CRC-32 (IEEE, reflected), as FORMAT.md specifies it, to re-seal a
 * crafted record header. */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The one record holding value (once in the image): its header address. */
static size_t record_of_value(const rig_t *g, const char *key, const char *value)
{
    const uint8_t *v = find_bytes(g->emu.mem, g->dev_bytes, (const uint8_t *)value, strlen(value));
    assert_non_null(v);
    assert_null(find_bytes(v + 1, g->dev_bytes - (size_t)(v + 1 - g->emu.mem),
                           (const uint8_t *)value, strlen(value)));
    return (size_t)(v - g->emu.mem) - strlen(key) - 28u; /* header, key, data */
}

/* Give the record of value (key of klen bytes) another transaction id and
 * re-seal both CRCs, as a foreign or fuzzed image may hold it. */
static void set_record_txn(rig_t *g, const char *key, const char *value, uint32_t txn)
{
    uint8_t *h = g->emu.mem + record_of_value(g, key, value);
    put_le32(h + 12, txn);
    uint32_t crc = test_crc32(0, h, 20);
    crc = test_crc32(crc, h + 28, strlen(key) + strlen(value));
    put_le32(h + 20, crc);
    put_le32(h + 24, test_crc32(0, h, 24));
}

/* Fuzzer finding (issue 14): the record with the highest id rots (valid
 * header, bad data CRC) while it is not the torn end of the head (here a
 * later record carries an older id, as GC copies do). Mount took the next
 * id only from intact records, so the next put after a reboot reused the
 * damaged record's id and lost to it (CORRUPT, NOT_FOUND or an older
 * value). The new put must win, also after fsck and another reboot. */
static void test_put_after_damaged_newest(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, 1024, 8, 8);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, NULL), STORE_OK);
    assert_int_equal(store_put(&g.st, "k", 1, "first-value-AAAA", 16), STORE_OK);
    assert_int_equal(store_put(&g.st, "k", 1, "second-value-BBBB", 17), STORE_OK);
    assert_int_equal(store_put(&g.st, "z", 1, "zz-older-id", 11), STORE_OK);
    set_record_txn(&g, "z", "zz-older-id", 1);
    size_t at = record_of_value(&g, "k", "second-value-BBBB");
    g.emu.mem[at + 28 + 1 + 3] &= 0xF0; /* rot in the data: the header stays valid */
    assert_int_equal(rig_mount(&g, 0, NULL), STORE_OK);
    uint8_t buf[32];
    size_t len = 0;
    assert_int_equal(store_get(&g.st, "k", 1, buf, sizeof buf, &len), STORE_ERR_CORRUPT);
    check_value(&g.st, "z", 1, "zz-older-id", 11);
    assert_int_equal(store_put(&g.st, "k", 1, "third-value-CCCC", 16), STORE_OK);
    check_value(&g.st, "k", 1, "third-value-CCCC", 16);
    store_mount_report_t rep;
    assert_int_equal(store_fsck(&g.st, &rep), STORE_ERR_CORRUPT); /* the rot is reported */
    check_value(&g.st, "k", 1, "third-value-CCCC", 16);
    assert_int_equal(store_put(&g.st, "k", 1, "fourth-value-DDDD", 17), STORE_OK);
    assert_int_equal(rig_mount(&g, 0, NULL), STORE_OK);
    check_value(&g.st, "k", 1, "fourth-value-DDDD", 17);
    rig_free(&g);
}

/* Fuzzer finding (issue 14): a valid record with id 0xFFFFFFFF made the
 * next id 0, so new puts lost to every old record and a transaction could
 * get id 0 ("none"). Now the ids are used up: reads go on, writes are
 * refused with their own status, and nothing on flash changes. */
static void test_txn_id_top(void **state)
{
    (void)state;
    rig_t g;
    rig_init(&g, 1024, 8, 8);
    assert_int_equal(rig_mount(&g, STORE_MOUNT_FORMAT_IF_EMPTY, NULL), STORE_OK);
    assert_int_equal(store_put(&g.st, "a", 1, "value-of-a-XYZW", 15), STORE_OK);
    assert_int_equal(store_put(&g.st, "top", 3, "value-at-the-top", 16), STORE_OK);
    set_record_txn(&g, "top", "value-at-the-top", 0xFFFFFFFFu);
    assert_int_equal(rig_mount(&g, 0, NULL), STORE_OK);
    check_value(&g.st, "top", 3, "value-at-the-top", 16);
    check_value(&g.st, "a", 1, "value-of-a-XYZW", 15);
    uint8_t *before = own(malloc(g.dev_bytes));
    memcpy(before, g.emu.mem, g.dev_bytes);
    assert_int_equal(store_put(&g.st, "a", 1, "newer", 5), STORE_ERR_IDS_USED);
    assert_int_equal(store_delete(&g.st, "a", 1), STORE_ERR_IDS_USED);
    assert_int_equal(store_txn_begin(&g.st), STORE_ERR_IDS_USED);
    assert_memory_equal(before, g.emu.mem, g.dev_bytes);
    check_value(&g.st, "a", 1, "value-of-a-XYZW", 15);
    assert_string_equal(store_status_str(STORE_ERR_IDS_USED),
                        "transaction ids used up (reformat the image)");
    owned_free(before);
    rig_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_mount_format_flags, teardown_owned),
        cmocka_unit_test_teardown(test_geometry_checks, teardown_owned),
        cmocka_unit_test_teardown(test_key_value_limits, teardown_owned),
        cmocka_unit_test_teardown(test_txn_and_iterate, teardown_owned),
        cmocka_unit_test_teardown(test_bit_flips, teardown_owned),
        cmocka_unit_test_teardown(test_garbage_sector, teardown_owned),
        cmocka_unit_test_teardown(test_truncated_image, teardown_owned),
        cmocka_unit_test_teardown(test_fill_to_full_small, teardown_owned),
        cmocka_unit_test_teardown(test_fill_to_full_chunked, teardown_owned),
        cmocka_unit_test_teardown(test_endurance, teardown_owned),
        cmocka_unit_test_teardown(test_put_after_damaged_newest, teardown_owned),
        cmocka_unit_test_teardown(test_txn_id_top, teardown_owned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
