/* Fuzz harness: the NOR key-value store (components/store) on an image
 * the fuzzer writes.
 *
 * Input: geometry (sector size 512..4096, 4..16 sectors, the top bit of
 * that byte: with the RAM index; write size 1, 4 or 8), a two-byte image
 * length, that many bytes of raw flash image (the
 * rest of the device stays erased), then a script. The store is mounted
 * without formatting; fsck, iterate and a get of every key seen run on
 * what the image holds; then the script drives puts, deletes, one or more
 * transactions (committed or aborted), remounts, gets, fsck and iterates.
 *
 * Oracle (store.h, README "What it guarantees"):
 *  - mount, fsck, iterate and get only read: the image is unchanged and no
 *    program or erase happened;
 *  - a put that returned STORE_OK reads back byte for byte at once, after
 *    later operations on other keys and after a remount; a delete that
 *    returned STORE_OK reads back STORE_NOT_FOUND (same times); a delete
 *    of a key that reads back a value is not STORE_NOT_FOUND;
 *  - a committed transaction lands all its operations (the last one per
 *    key wins), a transaction with a failed operation does not commit (an
 *    operation refused on its arguments, too many ops or a value over
 *    STORE_VALUE_MAX, is not one: nothing of it was written), an aborted
 *    one lands nothing, and reads inside an open transaction see the state
 *    before it;
 *  - STORE_FULL changes nothing;
 *  - a key that read back a value keeps it until the script touches it
 *    (also across GC and remounts), and iterate lists a key with a known
 *    value once, with its length, and no key known to be absent;
 *  - the RAM index changes no answer: right after mount, the same image
 *    mounted the other way (with the index when this run has none, and the
 *    reverse) gives the same status and bytes for every get and lists the
 *    same keys with the same lengths.
 * Keys whose state a failed operation left open (an I/O error) are not
 * checked until they are written again. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_flash.h"
#include "fuzz_common.h"
#include "store.h"

#define MAX_KEYS 24
#define MAX_OPS 48
#define SYNTH_KEYS 6

typedef enum { K_UNKNOWN = 0, K_VALUE, K_ABSENT } kstate_t;

typedef struct {
    uint8_t key[STORE_KEY_MAX];
    size_t key_len;
    kstate_t state;
    uint8_t *value; /* K_VALUE: what the store must return */
    size_t len;
    int iter_seen; /* times iterate reported it (check_iterate) */
    size_t iter_len;
} kmodel_t;

static kmodel_t keys[MAX_KEYS];
static int nkeys;
static uint8_t valbuf[STORE_VALUE_MAX + 16];
static uint8_t getbuf[STORE_VALUE_MAX + 16];
static const char *where; /* the script step being checked, for messages */
static int tracing;       /* FUZZ_TRACE set: print every step (diagnosing a find) */

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void
trace(const char *fmt, ...)
{
    va_list ap;
    if (!tracing)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* What iterate listed, as (key, length) pairs in a comparable order. */
typedef struct {
    uint8_t key[STORE_KEY_MAX];
    size_t key_len, len;
} listed_t;

typedef struct {
    listed_t items[64];
    int n;
    bool overflow;
} listing_t;

static bool list_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    listing_t *l = arg;
    if (l->n == (int)(sizeof l->items / sizeof l->items[0])) {
        l->overflow = true;
        return false;
    }
    memcpy(l->items[l->n].key, key, key_len);
    l->items[l->n].key_len = key_len;
    l->items[l->n++].len = value_len;
    return true;
}

static int listed_cmp(const void *a, const void *b)
{
    const listed_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c != 0)
        return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static void trace_report(const char *what, store_status_t rc, const store_mount_report_t *r)
{
    trace("%s: %s (live %u dead %u damaged %u txns discarded %u bad sectors %u missing %u)", what,
          store_status_str(rc), r->records_live, r->records_dead, r->records_damaged,
          r->txns_discarded, r->sectors_bad, r->sectors_missing);
}

static void key_text(const kmodel_t *k, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < k->key_len && o + 5 < cap; i++) {
        uint8_t c = k->key[i];
        o += (size_t)snprintf(out + o, cap - o, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
    out[o] = 0;
}

static void set_value(kmodel_t *k, const uint8_t *v, size_t len)
{
    free(k->value);
    k->value = malloc(len ? len : 1);
    if (!k->value)
        fz_fail("out of memory");
    memcpy(k->value, v, len);
    k->len = len;
    k->state = K_VALUE;
}

static void set_state(kmodel_t *k, kstate_t s)
{
    free(k->value);
    k->value = NULL;
    k->len = 0;
    k->state = s;
}

static int add_key(const uint8_t *key, size_t len)
{
    for (int i = 0; i < nkeys; i++)
        if (keys[i].key_len == len && memcmp(keys[i].key, key, len) == 0)
            return i;
    if (nkeys == MAX_KEYS || len == 0 || len > STORE_KEY_MAX)
        return -1;
    memset(&keys[nkeys], 0, sizeof keys[nkeys]);
    memcpy(keys[nkeys].key, key, len);
    keys[nkeys].key_len = len;
    return nkeys++;
}

/* The store must answer what the model says; unknown keys are skipped. */
static void verify(store_t *st, kmodel_t *k)
{
    char name[STORE_KEY_MAX * 4 + 1];
    size_t len = 0;
    if (k->state == K_UNKNOWN)
        return;
    store_status_t rc = store_get(st, k->key, k->key_len, getbuf, sizeof getbuf, &len);
    key_text(k, name, sizeof name);
    if (k->state == K_VALUE) {
        FZ_CHECK(rc == STORE_OK, "%s: key \"%s\" should hold %zu bytes, store_get says %s", where,
                 name, k->len, store_status_str(rc));
        FZ_CHECK(len == k->len, "%s: key \"%s\" holds %zu bytes, expected %zu", where, name, len,
                 k->len);
        FZ_CHECK(memcmp(getbuf, k->value, len) == 0, "%s: key \"%s\" reads back other bytes", where,
                 name);
    } else {
        FZ_CHECK(rc == STORE_NOT_FOUND, "%s: key \"%s\" should be absent, store_get says %s (%zu B)",
                 where, name, store_status_str(rc), len);
    }
}

static void verify_all(store_t *st)
{
    for (int i = 0; i < nkeys; i++)
        verify(st, &keys[i]);
}

static bool iter_collect(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)arg;
    int i = add_key(key, key_len);
    if (i >= 0) {
        keys[i].iter_seen++;
        keys[i].iter_len = value_len;
    }
    return true;
}

static bool iter_count(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    (void)arg;
    for (int i = 0; i < nkeys; i++)
        if (keys[i].key_len == key_len && memcmp(keys[i].key, key, key_len) == 0) {
            keys[i].iter_seen++;
            keys[i].iter_len = value_len;
        }
    return true;
}

static void check_iterate(store_t *st)
{
    for (int i = 0; i < nkeys; i++)
        keys[i].iter_seen = 0;
    store_status_t rc = store_iterate(st, NULL, 0, iter_count, NULL);
    if (rc != STORE_OK)
        return; /* an unreadable sector: iterate says so, nothing to compare */
    for (int i = 0; i < nkeys; i++) {
        char name[STORE_KEY_MAX * 4 + 1];
        key_text(&keys[i], name, sizeof name);
        if (keys[i].state == K_VALUE)
            FZ_CHECK(keys[i].iter_seen == 1 && keys[i].iter_len == keys[i].len,
                     "%s: iterate listed \"%s\" %d times (%zu B), it holds %zu B", where, name,
                     keys[i].iter_seen, keys[i].iter_len, keys[i].len);
        else if (keys[i].state == K_ABSENT)
            FZ_CHECK(keys[i].iter_seen == 0, "%s: iterate listed absent key \"%s\"", where, name);
    }
}

/* A value of the length the script asks for, contents varied per call. */
static size_t make_value(fuzz_in_t *in, uint32_t salt)
{
    uint8_t b = fz_u8(in);
    size_t len;
    if (b < 160)
        len = b;
    else if (b < 250)
        len = (size_t)(b - 160) * 90 + fz_u8(in);
    else
        len = fz_u16(in) % (STORE_VALUE_MAX + 2); /* one past the limit: TOO_BIG */
    uint8_t seed = fz_u8(in);
    for (size_t i = 0; i < len; i++)
        valbuf[i] = (uint8_t)(seed + i * 131u + salt * 7u);
    return len;
}

static kmodel_t *pick_key(fuzz_in_t *in)
{
    return &keys[fz_u8(in) % nkeys];
}

static store_status_t remount(store_t *st, emu_flash_t *emu, void *work, size_t work_size)
{
    store_mount_report_t r;
    memset(&r, 0, sizeof r);
    store_status_t rc = store_mount(st, &emu->dev, work, work_size, 0, &r);
    trace_report("remount", rc, &r);
    FZ_CHECK(rc == STORE_OK, "%s: remount of a store that was mounted fails: %s", where,
             store_status_str(rc));
    return rc;
}

static void do_put(store_t *st, fuzz_in_t *in, uint32_t salt)
{
    kmodel_t *k = pick_key(in);
    size_t len = make_value(in, salt);
    store_status_t rc = store_put(st, k->key, k->key_len, valbuf, len);
    trace("put %.*s (%zu B): %s", (int)k->key_len, (const char *)k->key, len, store_status_str(rc));
    if (rc == STORE_OK) {
        set_value(k, valbuf, len);
        verify(st, k);
    } else if (rc == STORE_ERR_TOO_BIG) {
        FZ_CHECK(len > STORE_VALUE_MAX, "%s: put of %zu bytes is TOO_BIG", where, len);
    } else if (rc != STORE_FULL) {
        set_state(k, K_UNKNOWN);
    }
}

static void do_delete(store_t *st, fuzz_in_t *in)
{
    kmodel_t *k = pick_key(in);
    store_status_t rc = store_delete(st, k->key, k->key_len);
    trace("delete %.*s: %s", (int)k->key_len, (const char *)k->key, store_status_str(rc));
    if (rc == STORE_OK) {
        set_state(k, K_ABSENT);
        verify(st, k);
    } else if (rc == STORE_NOT_FOUND) {
        char name[STORE_KEY_MAX * 4 + 1];
        key_text(k, name, sizeof name);
        FZ_CHECK(k->state != K_VALUE, "%s: delete of \"%s\", which holds %zu bytes, says not found",
                 where, name, k->len);
    } else if (rc != STORE_FULL) {
        set_state(k, K_UNKNOWN);
    }
}

static void do_txn(store_t *st, fuzz_in_t *in, uint32_t salt)
{
    uint8_t ctl = fz_u8(in);
    int nops = 1 + ctl % (STORE_TXN_OPS_MAX + 1); /* one more than allowed, sometimes */
    bool abort_it = (ctl & 0x80) != 0;
    struct {
        kmodel_t *k;
        bool put;
        uint8_t *v;
        size_t len;
    } ops[STORE_TXN_OPS_MAX + 1];
    int n = 0;
    bool failed = false;
    if (store_txn_begin(st) != STORE_OK)
        return; /* ids used up or not mounted: not this harness's business */
    for (int i = 0; i < nops; i++) {
        kmodel_t *k = pick_key(in);
        bool put = (fz_u8(in) & 3) != 0;
        size_t len = put ? make_value(in, salt + (uint32_t)i) : 0;
        store_status_t rc = put ? store_txn_put(st, k->key, k->key_len, valbuf, len)
                                : store_txn_delete(st, k->key, k->key_len);
        trace("  txn %s %.*s (%zu B): %s", put ? "put" : "delete", (int)k->key_len,
              (const char *)k->key, len, store_status_str(rc));
        if (i >= (int)STORE_TXN_OPS_MAX && len <= STORE_VALUE_MAX)
            FZ_CHECK(rc == STORE_ERR_TXN, "%s: op %d of a transaction (max %u) says %s", where,
                     i + 1, STORE_TXN_OPS_MAX, store_status_str(rc));
        if (rc == STORE_ERR_TXN || rc == STORE_ERR_TOO_BIG)
            continue; /* refused on its arguments, nothing written: not an op of the txn */
        if (rc != STORE_OK) {
            failed = true;
            continue;
        }
        ops[n].k = k;
        ops[n].put = put;
        ops[n].len = len;
        ops[n].v = NULL;
        if (put) {
            ops[n].v = malloc(len ? len : 1);
            if (!ops[n].v)
                fz_fail("out of memory");
            memcpy(ops[n].v, valbuf, len);
        }
        n++;
    }
    const char *saved = where;
    where = "read inside an open transaction";
    verify_all(st); /* the transaction is invisible until it commits */
    where = saved;
    store_status_t rc = abort_it ? store_txn_abort(st) : store_txn_commit(st);
    trace("  txn %s: %s", abort_it ? "abort" : "commit", store_status_str(rc));
    if (abort_it) {
        (void)rc; /* an abort lands nothing, whatever it returns */
    } else if (rc == STORE_OK) {
        FZ_CHECK(!failed, "%s: a transaction with a failed operation committed", where);
        for (int i = 0; i < n; i++) {
            if (ops[i].put)
                set_value(ops[i].k, ops[i].v, ops[i].len);
            else
                set_state(ops[i].k, K_ABSENT);
        }
        verify_all(st);
    } else if (rc != STORE_ERR_TXN && rc != STORE_FULL) {
        for (int i = 0; i < n; i++)
            set_state(ops[i].k, K_UNKNOWN);
    } else {
        FZ_CHECK(rc != STORE_ERR_TXN || failed, "%s: commit says a transaction op failed, none did",
                 where);
    }
    for (int i = 0; i < n; i++)
        free(ops[i].v);
}

/* The image mounted the other way (index on/off) answers exactly as st. */
static void check_index_differential(store_t *st, const uint8_t *image, size_t dev_size,
                                     uint32_t ss, uint32_t nsec, uint32_t ws, bool indexed)
{
    static listing_t mine, theirs;
    static uint8_t other_buf[STORE_VALUE_MAX + 16];
    emu_flash_t emu2;
    store_t st2;
    size_t work2_size = indexed ? STORE_WORK_SIZE(nsec) : STORE_WORK_SIZE_INDEXED(nsec, 64);
    void *work2;
    if (emu_flash_init(&emu2, ss, nsec, ws) != 0)
        return;
    memcpy(emu2.mem, image, dev_size);
    work2 = malloc(work2_size);
    /* ... and quick (STORE_MOUNT_QUICK: data CRCs checked at read, not at
     * mount), which must change no answer either */
    if (work2 &&
        store_mount(&st2, &emu2.dev, work2, work2_size, STORE_MOUNT_QUICK, NULL) == STORE_OK) {
        for (int i = 0; i < nkeys; i++) {
            size_t len1 = 0, len2 = 0;
            store_status_t a = store_get(st, keys[i].key, keys[i].key_len, getbuf, sizeof getbuf,
                                         &len1);
            store_status_t b = store_get(&st2, keys[i].key, keys[i].key_len, other_buf,
                                         sizeof other_buf, &len2);
            FZ_CHECK(a == b &&
                         (a != STORE_OK || (len1 == len2 && memcmp(getbuf, other_buf, len1) == 0)),
                     "with and without the RAM index, get of key %d answers %s (%zu B) and %s "
                     "(%zu B)",
                     i, store_status_str(a), len1, store_status_str(b), len2);
        }
        memset(&mine, 0, sizeof mine);
        memset(&theirs, 0, sizeof theirs);
        store_status_t a = store_iterate(st, NULL, 0, list_cb, &mine);
        store_status_t b = store_iterate(&st2, NULL, 0, list_cb, &theirs);
        FZ_CHECK(a == b, "with and without the RAM index, iterate answers %s and %s",
                 store_status_str(a), store_status_str(b));
        if (a == STORE_OK && !mine.overflow && !theirs.overflow) {
            qsort(mine.items, (size_t)mine.n, sizeof mine.items[0], listed_cmp);
            qsort(theirs.items, (size_t)theirs.n, sizeof theirs.items[0], listed_cmp);
            /* every key either lists reads the same from both */
            for (int side = 0; side < 2; side++) {
                const listing_t *l = side == 0 ? &mine : &theirs;
                for (int i = 0; i < l->n; i++) {
                    size_t len1 = 0, len2 = 0;
                    const listed_t *it = &l->items[i];
                    store_status_t g1 = store_get(st, it->key, it->key_len, getbuf, sizeof getbuf,
                                                  &len1);
                    store_status_t g2 = store_get(&st2, it->key, it->key_len, other_buf,
                                                  sizeof other_buf, &len2);
                    trace("walk %s the index lists %.*s (%zu B): get %s / %s",
                          (side == 0) == indexed ? "with" : "without", (int)it->key_len,
                          (const char *)it->key, it->len, store_status_str(g1),
                          store_status_str(g2));
                    FZ_CHECK(g1 == g2 && (g1 != STORE_OK ||
                                          (len1 == len2 && memcmp(getbuf, other_buf, len1) == 0)),
                             "with and without the RAM index, get of a listed key answers "
                             "%s and %s",
                             store_status_str(g1), store_status_str(g2));
                }
            }
            FZ_CHECK(mine.n == theirs.n,
                     "with and without the RAM index, iterate lists %d "
                     "and %d keys",
                     mine.n, theirs.n);
            for (int i = 0; i < mine.n && i < theirs.n; i++)
                FZ_CHECK(listed_cmp(&mine.items[i], &theirs.items[i]) == 0 &&
                             mine.items[i].len == theirs.items[i].len,
                         "with and without the RAM index, iterate lists other keys or lengths");
        }
    }
    free(work2);
    emu_flash_free(&emu2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t write_sizes[3] = {1, 4, 8};
    static uint8_t snapshot[4096 * 16];
    fuzz_in_t in = {data, size};
    uint32_t ss = 512u << (fz_u8(&in) & 3);
    uint8_t nsec_byte = fz_u8(&in);
    uint32_t nsec = 4u + nsec_byte % 13u;
    bool indexed = (nsec_byte & 0x80u) != 0;
    uint8_t ws_byte = fz_u8(&in);
    uint32_t ws = write_sizes[ws_byte % 3];
    uint32_t mount_flags = (ws_byte & 0x80u) ? STORE_MOUNT_QUICK : 0;
    size_t dev_size = (size_t)ss * nsec;
    emu_flash_t emu;
    store_t st;
    store_mount_report_t rep;

    tracing = getenv("FUZZ_TRACE") != NULL;
    trace("device %u x %u B, write size %u%s", nsec, ss, ws, indexed ? ", RAM index" : "");
    if (emu_flash_init(&emu, ss, nsec, ws) != 0)
        return 0;
    const uint8_t *img;
    size_t img_len = fz_take(&in, fz_u16(&in), &img);
    if (img_len > dev_size)
        img_len = dev_size;
    memcpy(emu.mem, img, img_len);
    /* 64 entries: more than the keys a script reaches (an image may hold
     * more: the index then switches off, which must change no answer). */
    size_t work_size = indexed ? STORE_WORK_SIZE_INDEXED(nsec, 64) : STORE_WORK_SIZE(nsec);
    void *work = malloc(work_size);
    if (!work) {
        emu_flash_free(&emu);
        return 0;
    }
    memcpy(snapshot, emu.mem, dev_size);
    nkeys = 0;

    where = "mount";
    memset(&rep, 0, sizeof rep);
    store_status_t mrc = store_mount(&st, &emu.dev, work, work_size, mount_flags, &rep);
    trace_report("mount", mrc, &rep);
    if (mrc != STORE_OK) {
        FZ_CHECK(memcmp(snapshot, emu.mem, dev_size) == 0 && emu.ops == 0,
                 "a failed mount changed the image");
        goto out;
    }
    where = "fsck";
    trace_report("fsck", store_fsck(&st, &rep), &rep);
    where = "iterate after mount";
    (void)store_iterate(&st, NULL, 0, iter_collect, NULL);
    for (int i = 0; i < SYNTH_KEYS; i++) {
        char k[4] = {'k', (char)('0' + i), 0, 0};
        add_key((const uint8_t *)k, 2);
    }
    {
        uint8_t longkey[STORE_KEY_MAX];
        memset(longkey, 'L', sizeof longkey);
        add_key(longkey, sizeof longkey);
    }
    where = "get after mount";
    for (int i = 0; i < nkeys; i++) {
        size_t len = 0;
        store_status_t rc = store_get(&st, keys[i].key, keys[i].key_len, getbuf, sizeof getbuf,
                                      &len);
        trace("get %.*s: %s (%zu B)", (int)keys[i].key_len, (const char *)keys[i].key,
              store_status_str(rc), rc == STORE_OK ? len : 0);
        if (rc == STORE_OK) {
            char name[STORE_KEY_MAX * 4 + 1];
            key_text(&keys[i], name, sizeof name);
            FZ_CHECK(!keys[i].iter_seen || keys[i].iter_len == len,
                     "iterate said \"%s\" holds %zu bytes, store_get read %zu", name,
                     keys[i].iter_len, len);
            set_value(&keys[i], getbuf, len);
        } else if (rc == STORE_NOT_FOUND) {
            set_state(&keys[i], K_ABSENT);
        } else {
            set_state(&keys[i], K_UNKNOWN);
        }
    }
    FZ_CHECK(memcmp(snapshot, emu.mem, dev_size) == 0 && emu.ops == 0,
             "mount/fsck/iterate/get changed the image (%llu programs/erases)",
             (unsigned long long)emu.ops);
    where = "index differential";
    check_index_differential(&st, snapshot, dev_size, ss, nsec, ws, indexed);

    for (uint32_t step = 0; step < MAX_OPS && in.left; step++) {
        uint8_t op = fz_u8(&in);
        switch (op % 8) {
        case 0:
        case 1:
            where = "put";
            do_put(&st, &in, step);
            break;
        case 2:
            where = "delete";
            do_delete(&st, &in);
            break;
        case 3:
            where = "transaction";
            do_txn(&st, &in, step);
            break;
        case 4:
            where = "after a remount";
            if (remount(&st, &emu, work, work_size) == STORE_OK)
                verify_all(&st);
            break;
        case 5:
            if (op & 0x80u) { /* idle GC ahead of need: no answer may change */
                bool more = false;
                where = "gc ahead";
                store_status_t grc = store_gc_ahead(&st, 1u + ((op >> 3) & 7u), &more);
                trace("gc ahead: %s%s", store_status_str(grc), more ? " (more)" : "");
                FZ_CHECK(grc == STORE_OK || grc == STORE_ERR_IO || grc == STORE_ERR_TXN ||
                             grc == STORE_ERR_IDS_USED || grc == STORE_ERR_CORRUPT,
                         "gc ahead says %s", store_status_str(grc));
                verify_all(&st);
                break;
            }
            where = "get";
            verify(&st, pick_key(&in));
            break;
        case 6:
            where = "fsck";
            trace_report("fsck", store_fsck(&st, &rep), &rep);
            verify_all(&st);
            break;
        default:
            where = "iterate";
            check_iterate(&st);
            break;
        }
    }
    where = "final remount";
    if (remount(&st, &emu, work, work_size) == STORE_OK) {
        verify_all(&st);
        check_iterate(&st);
    }
out:
    for (int i = 0; i < nkeys; i++)
        set_state(&keys[i], K_UNKNOWN);
    free(work);
    emu_flash_free(&emu);
    return 0;
}
