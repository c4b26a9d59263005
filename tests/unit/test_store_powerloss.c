/*
 * components/store power-loss campaign (against store.h only).
 *
 * A scripted, deterministic workload (seeded splitmix64, no rand()) of small
 * and chunked (larger than a sector) puts, deletes, multi-key transactions
 * (commit and abort, including a put and a delete of the same key in one
 * transaction) runs on a small emulated NOR device so that garbage collection
 * runs many times. A reference model holds the committed state.
 *
 * For every operation i: the flash, the store handle and its work buffer are
 * snapshotted, the operation is run once to count its program/erase steps
 * (traced through a wrapper device), then for every step k (and for programs
 * several byte positions inside it) the snapshot is restored, power is cut
 * at that point, the operation must fail, power comes back, the store is
 * remounted from scratch and its whole content (store_get of every key of the
 * key universe + store_iterate) must equal exactly the model before or the
 * model after operation i. The recovered store must accept a new put, every
 * key the interrupted operation was writing must take a new value and read it
 * back (at once, after fsck, after another reboot), and the emulator must
 * never have seen a 0->1 program. For cuts inside a garbage collection the
 * cut is replayed with the newest record (the previous op's put) rotted as
 * well, then the same put-again check runs: the damaged record a lookup sees
 * must never win over a newer write.
 *
 * Run at write_size 1, 4, 8 and 16 (on the Cortex-M target: 1 and 8); each
 * prints "# powerloss: ..." with the
 * number of cut points exercised (asserted >= 1000 per geometry).
 */
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
#include "test_owned.h"
#include "test_rng.h"

#define SECTOR_SIZE 1024u
#define SECTOR_COUNT 8u
#define WORKLOAD_OPS 100
#define NSMALL 18           /* small-value keys */
#define NSLOTS (NSMALL + 1) /* + one key holding chunked values */
#define BIG_SLOT NSMALL
#define SMALL_MAX 90u              /* small values: 0..89 bytes */
#define BIG_MIN (SECTOR_SIZE + 1u) /* chunked values: always larger than a sector */
#define BIG_MAX (SECTOR_SIZE + 900u)
#define VAL_CAP (BIG_MAX + 64u) /* get buffer: room to notice an oversized answer */
#define MAX_TRACE 8192
#define MAX_ITER 64
#define MIN_CUT_POINTS 1000u

/* ------------------------------------------------------------ helpers -- */

static void fill_value(rng_t *r, uint8_t *buf, size_t len)
{
    uint32_t kind = rng_below(r, 16);
    if (kind == 0) {
        memset(buf, 0xFF, len); /* looks like erased flash */
    } else if (kind == 1) {
        memset(buf, 0x00, len);
    } else {
        rng_fill(r, buf, len);
    }
}

/* The key universe: keys of varied length 1..64. The first six are
 * prefixes of one another (a key comparison that looks only at the shorter
 * length would confuse them); the rest start with a distinct byte. */
static uint8_t g_keys[NSLOTS][STORE_KEY_MAX];
static size_t g_key_len[NSLOTS];

static void keys_init(void)
{
    static const char common[] = "cdn/domain/www.example.com/origin-headers/X-Forwarded-Proto/val";
    static const size_t prefix_lens[6] = {1, 4, 9, 17, 33, 64};
    static const size_t other_lens[NSLOTS - 6] = {2, 3, 5, 8, 12, 16, 20, 24, 31, 32, 47, 63, 64};
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789_-./";
    for (int j = 0; j < NSLOTS; j++) {
        if (j < 6) {
            g_key_len[j] = prefix_lens[j];
            memcpy(g_keys[j], common, g_key_len[j]);
        } else {
            g_key_len[j] = other_lens[j - 6];
            g_keys[j][0] = (uint8_t)('A' + j);
            for (size_t i = 1; i < g_key_len[j]; i++)
                g_keys[j][i] = (uint8_t)alpha[(j * 7 + i * 3) % (sizeof alpha - 1)];
        }
    }
}

static const uint8_t g_probe_key[] = "~probe/after-recovery";
#define PROBE_KEY_LEN (sizeof g_probe_key - 1)

/* --------------------------------------------------------------- model -- */

typedef struct {
    bool present[NSLOTS];
    size_t len[NSLOTS];
    uint8_t val[NSLOTS][BIG_MAX];
} model_t;

static size_t model_count(const model_t *m)
{
    size_t n = 0;
    for (int j = 0; j < NSLOTS; j++)
        n += m->present[j];
    return n;
}

/* ----------------------------------------------------------- workload -- */

enum { OP_PUT, OP_DEL, OP_TXN, OP_GC };
enum { SUB_PUT, SUB_DEL };

typedef struct {
    int kind;
    int slot;
    size_t len;
    uint8_t *val;
} sub_t;

typedef struct {
    int type;
    bool abort;
    int nsub;
    sub_t sub[STORE_TXN_OPS_MAX];
    uint8_t arena[STORE_TXN_OPS_MAX][BIG_MAX];
} op_t;

static int pick_present(rng_t *r, const model_t *m, const bool *exclude)
{
    int cand[NSLOTS], n = 0;
    for (int j = 0; j < NSLOTS; j++)
        if (m->present[j] && !(exclude && exclude[j]))
            cand[n++] = j;
    return n ? cand[rng_below(r, (uint32_t)n)] : -1;
}

static void gen_put(rng_t *r, op_t *op, int idx, int slot, size_t big_max)
{
    sub_t *s = &op->sub[idx];
    s->kind = SUB_PUT;
    s->slot = slot;
    s->len = slot == BIG_SLOT ? BIG_MIN + rng_below(r, (uint32_t)(big_max - BIG_MIN + 1))
                              : rng_below(r, SMALL_MAX);
    s->val = op->arena[idx];
    fill_value(r, s->val, s->len);
}

static void gen_op(rng_t *r, const model_t *cur, op_t *op)
{
    uint32_t c = rng_below(r, 100);
    op->abort = false;
    op->nsub = 1;
    if (c < 34) { /* small put */
        op->type = OP_PUT;
        gen_put(r, op, 0, (int)rng_below(r, NSMALL), BIG_MAX);
    } else if (c < 48) { /* chunked put (14%) */
        op->type = OP_PUT;
        gen_put(r, op, 0, BIG_SLOT, BIG_MAX);
    } else if (c < 60) { /* delete, sometimes of an absent key */
        op->type = OP_DEL;
        int slot = rng_below(r, 6) ? pick_present(r, cur, NULL) : -1;
        if (slot < 0)
            slot = (int)rng_below(r, NSLOTS);
        op->sub[0].kind = SUB_DEL;
        op->sub[0].slot = slot;
    } else if (c < 85) { /* transaction */
        bool touched[NSLOTS] = {false};
        bool deleted[NSLOTS] = {false};
        int n = 0;
        int want = rng_below(r, 10) == 0 ? (int)STORE_TXN_OPS_MAX : 2 + (int)rng_below(r, 5);
        op->type = OP_TXN;
        op->abort = c >= 80;
        if (rng_below(r, 2) == 0) {
            /* the same key put and deleted in one transaction (either order);
             * the key exists before, so the delete is valid either way */
            int k = pick_present(r, cur, NULL);
            if (k >= 0) {
                touched[k] = true;
                if (rng_below(r, 2) == 0) {
                    gen_put(r, op, n++, k, BIG_MIN + 300);
                    op->sub[n].kind = SUB_DEL;
                    op->sub[n++].slot = k;
                    deleted[k] = true;
                } else {
                    op->sub[n].kind = SUB_DEL;
                    op->sub[n++].slot = k;
                    deleted[k] = true;
                    gen_put(r, op, n++, k, BIG_MIN + 300);
                }
            }
        }
        while (n < want) {
            uint32_t t = rng_below(r, 10);
            if (t < 3) {
                int k = pick_present(r, cur, deleted);
                if (k >= 0) {
                    op->sub[n].kind = SUB_DEL;
                    op->sub[n++].slot = k;
                    deleted[k] = touched[k] = true;
                    continue;
                }
            }
            int k = t == 3 ? BIG_SLOT : (int)rng_below(r, NSMALL);
            /* a put to the same key twice in one transaction: last wins */
            gen_put(r, op, n++, k, BIG_MIN + 500);
            touched[k] = true;
            deleted[k] = false;
        }
        op->nsub = n;
    } else if (c < 92) { /* idle GC ahead of need: changes nothing a reader sees */
        op->type = OP_GC;
        op->nsub = 0;
    } else { /* hot keys: frequent small updates drive GC */
        op->type = OP_PUT;
        gen_put(r, op, 0, (int)rng_below(r, 3), BIG_MAX);
    }
}

static void apply_op(model_t *m, const op_t *op)
{
    if (op->abort)
        return;
    for (int i = 0; i < op->nsub; i++) {
        const sub_t *s = &op->sub[i];
        if (s->kind == SUB_PUT) {
            m->present[s->slot] = true;
            m->len[s->slot] = s->len;
            memcpy(m->val[s->slot], s->val, s->len);
        } else {
            m->present[s->slot] = false;
            m->len[s->slot] = 0;
        }
    }
}

static void describe_op(const op_t *op, char *out, size_t cap)
{
    size_t o = 0;
    static const char *names[] = {"put", "delete", "txn", "gc-ahead"};
    o += (size_t)snprintf(out + o, cap - o, "%s%s", names[op->type], op->abort ? "(abort)" : "");
    for (int i = 0; i < op->nsub && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, " %s[slot %d klen %lu vlen %lu]",
                              op->sub[i].kind == SUB_PUT ? "put" : "del", op->sub[i].slot,
                              (unsigned long)g_key_len[op->sub[i].slot],
                              (unsigned long)(op->sub[i].kind == SUB_PUT ? op->sub[i].len : 0));
}

/* ------------------------------------------------ traced flash device -- */

typedef struct {
    uint8_t is_erase;
    uint32_t len;
    uint32_t addr;
} trace_ent_t;

typedef struct {
    port_flash_t dev;
    emu_flash_t *emu;
    bool tracing;
    bool overflow;
    size_t n;
    trace_ent_t ent[MAX_TRACE];
} tdev_t;

static void trace_add(tdev_t *t, uint64_t ops_before, int is_erase, uint32_t addr, size_t len)
{
    if (!t->tracing || t->emu->ops == ops_before)
        return; /* only steps the emulator counted (cut indices follow emu.ops) */
    if (t->n >= MAX_TRACE) {
        t->overflow = true;
        return;
    }
    t->ent[t->n].is_erase = (uint8_t)is_erase;
    t->ent[t->n].len = (uint32_t)len;
    t->ent[t->n].addr = addr;
    t->n++;
}

static port_status_t t_read(port_flash_t *dev, uint32_t addr, void *buf, size_t len)
{
    tdev_t *t = dev->ctx;
    return t->emu->dev.read(&t->emu->dev, addr, buf, len);
}

static port_status_t t_program(port_flash_t *dev, uint32_t addr, const void *buf, size_t len)
{
    tdev_t *t = dev->ctx;
    uint64_t before = t->emu->ops;
    port_status_t rc = t->emu->dev.program(&t->emu->dev, addr, buf, len);
    trace_add(t, before, 0, addr, len);
    return rc;
}

static port_status_t t_erase(port_flash_t *dev, uint32_t sector)
{
    tdev_t *t = dev->ctx;
    uint64_t before = t->emu->ops;
    port_status_t rc = t->emu->dev.erase(&t->emu->dev, sector);
    trace_add(t, before, 1, sector * dev->sector_size, dev->sector_size);
    return rc;
}

/* ------------------------------------------------------------ snapshot -- */

typedef struct {
    uint8_t *mem;
    uint32_t erase_counts[SECTOR_COUNT];
    uint64_t ops, bytes_programmed, violations;
    store_t st;
    uint8_t *work;
} snap_t;

typedef struct {
    emu_flash_t emu;
    tdev_t *t;
    store_t st;
    uint8_t *work;
    size_t work_size;
    size_t dev_bytes;
} rig_t;

static void snap_take(snap_t *s, const rig_t *g)
{
    memcpy(s->mem, g->emu.mem, g->dev_bytes);
    memcpy(s->erase_counts, g->emu.erase_counts, sizeof s->erase_counts);
    s->ops = g->emu.ops;
    s->bytes_programmed = g->emu.bytes_programmed;
    s->violations = g->emu.violations;
    s->st = g->st;
    memcpy(s->work, g->work, g->work_size);
}

static void snap_restore(const snap_t *s, rig_t *g)
{
    memcpy(g->emu.mem, s->mem, g->dev_bytes);
    memcpy(g->emu.erase_counts, s->erase_counts, sizeof s->erase_counts);
    g->emu.ops = s->ops;
    g->emu.bytes_programmed = s->bytes_programmed;
    g->emu.violations = s->violations;
    g->st = s->st;
    memcpy(g->work, s->work, g->work_size);
}

/* ----------------------------------------------------- observed state -- */

typedef struct {
    int rc[NSLOTS];
    size_t len[NSLOTS];
    uint8_t val[NSLOTS][VAL_CAP];
    int probe_rc;
    size_t probe_len;
    uint8_t probe_val[64];
    int iter_rc;
    int n_iter;
    bool iter_overflow;
    struct {
        uint8_t key[STORE_KEY_MAX];
        size_t key_len;
        size_t value_len;
    } it[MAX_ITER];
} obs_t;

static bool iter_collect(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    obs_t *o = arg;
    if (o->n_iter >= MAX_ITER || key_len > STORE_KEY_MAX) {
        o->iter_overflow = true;
        return false;
    }
    memcpy(o->it[o->n_iter].key, key, key_len);
    o->it[o->n_iter].key_len = key_len;
    o->it[o->n_iter].value_len = value_len;
    o->n_iter++;
    return true;
}

static void observe(store_t *st, obs_t *o)
{
    for (int j = 0; j < NSLOTS; j++) {
        o->len[j] = 0;
        o->rc[j] = store_get(st, g_keys[j], g_key_len[j], o->val[j], VAL_CAP, &o->len[j]);
    }
    o->probe_len = 0;
    o->probe_rc = store_get(st, g_probe_key, PROBE_KEY_LEN, o->probe_val, sizeof o->probe_val,
                            &o->probe_len);
    o->n_iter = 0;
    o->iter_overflow = false;
    o->iter_rc = store_iterate(st, NULL, 0, iter_collect, o);
}

static int slot_of(const uint8_t *key, size_t key_len)
{
    for (int j = 0; j < NSLOTS; j++)
        if (g_key_len[j] == key_len && memcmp(g_keys[j], key, key_len) == 0)
            return j;
    if (key_len == PROBE_KEY_LEN && memcmp(key, g_probe_key, key_len) == 0)
        return NSLOTS;
    return -1;
}

/* Does the observation equal model m exactly (plus the probe key with value
 * probe/probe_len when probe != NULL)? On mismatch, why[] says where. */
static bool obs_matches(const obs_t *o, const model_t *m, const uint8_t *probe, size_t probe_len,
                        char *why, size_t cap)
{
    for (int j = 0; j < NSLOTS; j++) {
        if (m->present[j]) {
            if (o->rc[j] != STORE_OK) {
                snprintf(why, cap, "slot %d: get=%d, want value of len %lu", j, o->rc[j],
                         (unsigned long)m->len[j]);
                return false;
            }
            if (o->len[j] != m->len[j] || memcmp(o->val[j], m->val[j], m->len[j]) != 0) {
                snprintf(why, cap, "slot %d: value differs (got len %lu, want len %lu)", j,
                         (unsigned long)o->len[j], (unsigned long)m->len[j]);
                return false;
            }
        } else if (o->rc[j] != STORE_NOT_FOUND) {
            snprintf(why, cap, "slot %d: get=%d len %lu, want not-found", j, o->rc[j],
                     (unsigned long)o->len[j]);
            return false;
        }
    }
    if (probe) {
        if (o->probe_rc != STORE_OK || o->probe_len != probe_len ||
            memcmp(o->probe_val, probe, probe_len) != 0) {
            snprintf(why, cap, "probe key: get=%d len %lu", o->probe_rc,
                     (unsigned long)o->probe_len);
            return false;
        }
    } else if (o->probe_rc != STORE_NOT_FOUND) {
        snprintf(why, cap, "probe key present before it was written: get=%d", o->probe_rc);
        return false;
    }
    if (o->iter_rc != STORE_OK || o->iter_overflow) {
        snprintf(why, cap, "iterate=%d overflow=%d", o->iter_rc, o->iter_overflow);
        return false;
    }
    bool seen[NSLOTS + 1] = {false};
    for (int i = 0; i < o->n_iter; i++) {
        int j = slot_of(o->it[i].key, o->it[i].key_len);
        if (j < 0) {
            snprintf(why, cap, "iterate: unknown key of len %lu", (unsigned long)o->it[i].key_len);
            return false;
        }
        if (seen[j]) {
            snprintf(why, cap, "iterate: slot %d reported twice", j);
            return false;
        }
        seen[j] = true;
        if (j == NSLOTS) {
            if (!probe || o->it[i].value_len != probe_len) {
                snprintf(why, cap, "iterate: unexpected probe key");
                return false;
            }
        } else if (!m->present[j] || o->it[i].value_len != m->len[j]) {
            snprintf(why, cap, "iterate: slot %d (present=%d) value_len %lu want %lu", j,
                     m->present[j], (unsigned long)o->it[i].value_len, (unsigned long)m->len[j]);
            return false;
        }
    }
    size_t want = model_count(m) + (probe ? 1 : 0);
    if ((size_t)o->n_iter != want) {
        snprintf(why, cap, "iterate: %d keys, want %lu", o->n_iter, (unsigned long)want);
        return false;
    }
    return true;
}

/* ------------------------------------------------------- running ops -- */

/* Run op against the store; returns the first non-OK status, or STORE_OK.
 * A transaction that hits STORE_FULL is aborted. With before != NULL (the
 * reference run) a read inside the open transaction must see the old state. */
static int run_op(store_t *st, const op_t *op, const model_t *before, unsigned w, int i)
{
    int rc;
    if (op->type == OP_GC)
        return store_gc_ahead(st, 3, NULL);
    if (op->type == OP_PUT)
        return store_put(st, g_keys[op->sub[0].slot], g_key_len[op->sub[0].slot], op->sub[0].val,
                         op->sub[0].len);
    if (op->type == OP_DEL)
        return store_delete(st, g_keys[op->sub[0].slot], g_key_len[op->sub[0].slot]);
    rc = store_txn_begin(st);
    if (rc != STORE_OK)
        return rc;
    for (int k = 0; rc == STORE_OK && k < op->nsub; k++) {
        const sub_t *s = &op->sub[k];
        if (s->kind == SUB_PUT)
            rc = store_txn_put(st, g_keys[s->slot], g_key_len[s->slot], s->val, s->len);
        else
            rc = store_txn_delete(st, g_keys[s->slot], g_key_len[s->slot]);
    }
    if (rc == STORE_OK && before) {
        static uint8_t buf[VAL_CAP];
        int s0 = op->sub[0].slot;
        size_t len = 0;
        int grc = store_get(st, g_keys[s0], g_key_len[s0], buf, VAL_CAP, &len);
        if (before->present[s0]) {
            if (grc != STORE_OK || len != before->len[s0] || memcmp(buf, before->val[s0], len) != 0)
                fail_msg("w=%u op %d: a read inside an open txn does not see the old value "
                         "(get=%d len %lu want %lu)",
                         (unsigned)w, i, grc, (unsigned long)len, (unsigned long)before->len[s0]);
        } else if (grc != STORE_NOT_FOUND) {
            fail_msg("w=%u op %d: a read inside an open txn sees an uncommitted put (get=%d)",
                     (unsigned)w, i, grc);
        }
    }
    if (rc == STORE_OK)
        rc = op->abort ? store_txn_abort(st) : store_txn_commit(st);
    if (rc == STORE_FULL) {
        int arc = store_txn_abort(st); /* closes it if commit did not */
        if (before && arc != STORE_OK && arc != STORE_ERR_TXN)
            fail_msg("w=%u op %d: txn_abort after STORE_FULL returned %d", (unsigned)w, i, arc);
    }
    return rc;
}

static size_t cut_positions(uint32_t len, uint32_t w, size_t *pos)
{
    size_t cand[7] = {0, 1, w, len / 4, len / 2, len >= w ? len - w : 0, len - 1};
    size_t n = 0;
    if (len == 0) {
        pos[0] = 0;
        return 1;
    }
    for (size_t i = 0; i < 7; i++) {
        if (cand[i] >= len)
            continue;
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup |= pos[j] == cand[i];
        if (!dup)
            pos[n++] = cand[i];
    }
    return n;
}

/* -------------------------------------------------------------- campaign -- */

static model_t g_before, g_after;
static op_t g_op;
static obs_t g_obs;
static trace_ent_t g_trace[MAX_TRACE];

static void reboot_and_mount(rig_t *g, store_mount_report_t *rep)
{
    memset(&g->st, 0, sizeof g->st);
    memset(g->work, 0xA5, g->work_size); /* RAM does not survive a power cut */
    memset(rep, 0, sizeof *rep);
    int rc = store_mount(&g->st, &g->t->dev, g->work, g->work_size, 0, rep);
    if (rc != STORE_OK)
        fail_msg("remount after power cut failed: %d (%s)", rc, store_status_str(rc));
}

/* Random bytes, not a fill pattern (the workload also writes all-0x00 and
 * all-0xFF values, which also match padding and erased flash). */
static bool distinctive(const uint8_t *v, size_t len)
{
    size_t same = 0;
    for (size_t i = 1; i < len; i++)
        same += v[i] == v[i - 1];
    return same < len / 4;
}

/* Bit rot in every stored copy of value (random bytes, so found only where
 * it was written, and in GC copies of it). NOR loses charge: a programmed
 * bit (0) drifts back to erased (1), so one 0 bit of a value byte becomes 1.
 * Returns the copies rotted. */
static int rot_value(rig_t *g, const uint8_t *value, size_t len)
{
    int n = 0;
    for (size_t i = 0; i + len <= g->dev_bytes; i++) {
        if (g->emu.mem[i] != value[0] || memcmp(g->emu.mem + i, value, len) != 0)
            continue;
        for (size_t b = len / 2; b < len; b++) {
            uint8_t zeros = (uint8_t)~g->emu.mem[i + b];
            if (zeros) {
                g->emu.mem[i + b] |= (uint8_t)(zeros & (uint8_t)-zeros);
                n++;
                break;
            }
        }
    }
    return n;
}

/* After a cut and its recovery: every key the interrupted op was writing
 * takes a new value at once, and reads it back, then again after fsck and
 * after another reboot. This is where a store that restored its id counter
 * too low would show it: the new write would reuse an id still on flash and
 * lose to the record it was meant to replace. Returns a failure text, or
 * NULL. */
static const char *reput_check(rig_t *g, const op_t *op, rng_t *r, char *why, size_t cap)
{
    static uint8_t vals[STORE_TXN_OPS_MAX][SMALL_MAX], got[VAL_CAP];
    store_mount_report_t rep;
    size_t lens[STORE_TXN_OPS_MAX];
    for (int k = 0; k < op->nsub; k++) {
        int slot = op->sub[k].slot;
        lens[k] = 1 + rng_below(r, SMALL_MAX - 1);
        rng_fill(r, vals[k], lens[k]);
        int rc = store_put(&g->st, g_keys[slot], g_key_len[slot], vals[k], lens[k]);
        if (rc != STORE_OK) {
            snprintf(why, cap, "put again to slot %d returned %d (%s)", slot, rc,
                     store_status_str(rc));
            return why;
        }
    }
    for (int pass = 0; pass < 3; pass++) {
        for (int k = 0; k < op->nsub; k++) {
            int slot = op->sub[k].slot;
            size_t len = 0;
            int rc = store_get(&g->st, g_keys[slot], g_key_len[slot], got, sizeof got, &len);
            /* a key written twice by one op keeps its last new value */
            int last = k;
            for (int j = k + 1; j < op->nsub; j++)
                if (op->sub[j].slot == slot)
                    last = j;
            if (rc != STORE_OK || len != lens[last] || memcmp(got, vals[last], len) != 0) {
                snprintf(why, cap, "%s: slot %d put again reads back %d (%s), %lu bytes",
                         pass == 0   ? "at once"
                         : pass == 1 ? "after fsck"
                                     : "after a reboot",
                         slot, rc, store_status_str(rc), (unsigned long)len);
                return why;
            }
        }
        if (pass == 0)
            (void)store_fsck(&g->st, &rep); /* it may report the cut's torn bytes */
        else if (pass == 1)
            reboot_and_mount(g, &rep);
    }
    return NULL;
}

/* index_keys: 0 mounts without the RAM index; otherwise the work buffer
 * holds that many entries and the index must stay on to the end. */
static void run_campaign(unsigned w, uint64_t seed, uint32_t index_keys)
{
    rig_t g;
    snap_t pre, post;
    char why[256], why2[256], desc[1024];
    uint64_t cut_points = 0, erases_total = 0, fulls = 0, txns = 0, chunked = 0, gc_steps = 0;
    uint64_t spurious_full = 0, full_then_fits = 0, rot_checks = 0;
    /* the value of the last single small put: the newest record on flash */
    static uint8_t newest[SMALL_MAX];
    size_t newest_len = 0;
    char first_spurious[1400] = "";
    uint64_t t0 = port_monotonic_ms();

    keys_init();
    memset(&g, 0, sizeof g);
    assert_int_equal(emu_flash_init(&g.emu, SECTOR_SIZE, SECTOR_COUNT, w), 0);
    own(g.emu.mem);
    own(g.emu.erase_counts);
    g.dev_bytes = (size_t)SECTOR_SIZE * SECTOR_COUNT;
    g.t = own(calloc(1, sizeof *g.t)); /* own() fails the test on NULL */
    g.t->dev = g.emu.dev;
    g.t->dev.read = t_read;
    g.t->dev.program = t_program;
    g.t->dev.erase = t_erase;
    g.t->dev.ctx = g.t;
    g.t->emu = &g.emu;
    g.work_size = STORE_WORK_SIZE_INDEXED(SECTOR_COUNT, index_keys);
    g.work = own(malloc(g.work_size));
    pre.mem = own(malloc(g.dev_bytes));
    post.mem = own(malloc(g.dev_bytes));
    pre.work = own(malloc(g.work_size));
    post.work = own(malloc(g.work_size));

    store_mount_report_t rep;
    assert_int_equal(store_mount(&g.st, &g.t->dev, g.work, g.work_size, STORE_MOUNT_FORMAT_IF_EMPTY,
                                 &rep),
                     STORE_OK);
    memset(&g_before, 0, sizeof g_before);
    rng_t rng = {seed};
    rng_t probe_rng = {seed ^ 0x5EED};

    for (int i = 0; i < WORKLOAD_OPS; i++) {
        gen_op(&rng, &g_before, &g_op);
        describe_op(&g_op, desc, sizeof desc);
        snap_take(&pre, &g);
        store_stats_t pre_stats;
        assert_int_equal(store_stats(&g.st, &pre_stats, NULL, 0), STORE_OK);

        /* reference run: count and record the flash steps */
        uint64_t ops0 = g.emu.ops;
        uint32_t er0 = 0, er1 = 0;
        for (uint32_t s = 0; s < SECTOR_COUNT; s++)
            er0 += g.emu.erase_counts[s];
        g.t->n = 0;
        g.t->overflow = false;
        g.t->tracing = true;
        int rc = run_op(&g.st, &g_op, &g_before, w, i);
        txns += g_op.type == OP_TXN;
        g.t->tracing = false;
        assert_false(g.t->overflow);
        size_t nsteps = g.t->n;
        assert_int_equal(nsteps, g.emu.ops - ops0);
        memcpy(g_trace, g.t->ent, nsteps * sizeof g_trace[0]);
        size_t first_erase = nsteps;
        for (size_t k = 0; k < nsteps && first_erase == nsteps; k++)
            if (g_trace[k].is_erase)
                first_erase = k;
        for (uint32_t s = 0; s < SECTOR_COUNT; s++)
            er1 += g.emu.erase_counts[s];
        erases_total += er1 - er0;
        gc_steps += g_op.type == OP_GC && er1 > er0; /* an idle GC that collected */

        g_after = g_before;
        if (rc == STORE_OK) {
            apply_op(&g_after, &g_op);
            for (int k = 0; k < g_op.nsub && !g_op.abort; k++)
                chunked += g_op.sub[k].kind == SUB_PUT && g_op.sub[k].slot == BIG_SLOT;
        } else if (rc == STORE_FULL) {
            fulls++; /* nothing was changed: both legal states are the same */
            /* "no room even after GC": the same op retried at once must not
             * succeed (checked on a copy, then put back) */
            snap_take(&post, &g);
            g.t->tracing = false;
            int rrc = run_op(&g.st, &g_op, NULL, w, i);
            /* A multi-record operation (transaction or chunked value) near
             * capacity may fail while its own uncommitted records hold room
             * and fit on a retry after the abort freed them (documented in
             * the store README); a single-record put/delete never may. */
            bool multi = g_op.type == OP_TXN;
            for (int k = 0; k < g_op.nsub; k++)
                multi |= g_op.sub[k].kind == SUB_PUT && g_op.sub[k].slot == BIG_SLOT;
            if (rrc != STORE_FULL && multi) {
                full_then_fits++;
            } else if (rrc != STORE_FULL) {
                if (spurious_full++ == 0)
                    snprintf(first_spurious, sizeof first_spurious,
                             "op %d (%s) returned STORE_FULL; store_stats before it: free=%lu "
                             "live=%lu dead=%lu live_records=%lu; retried at once it returned %d",
                             i, desc, (unsigned long)pre_stats.free_bytes,
                             (unsigned long)pre_stats.live_bytes,
                             (unsigned long)pre_stats.dead_bytes,
                             (unsigned long)pre_stats.live_records, rrc);
            }
            snap_restore(&post, &g);
        } else if (!(g_op.type == OP_DEL && rc == STORE_NOT_FOUND &&
                     !g_before.present[g_op.sub[0].slot])) {
            fail_msg("w=%u op %d (%s): unexpected status %d (%s)", w, i, desc, rc,
                     store_status_str(rc));
        }
        if (g_op.type == OP_DEL && g_before.present[g_op.sub[0].slot])
            assert_int_equal(rc, STORE_OK);
        if (g_op.type == OP_DEL && !g_before.present[g_op.sub[0].slot])
            assert_int_equal(rc, STORE_NOT_FOUND);
        assert_int_equal(g.emu.violations, 0);

        /* the live store and a fresh mount both show the new state */
        observe(&g.st, &g_obs);
        if (!obs_matches(&g_obs, &g_after, NULL, 0, why, sizeof why))
            fail_msg("w=%u op %d (%s): live store after the op: %s", w, i, desc, why);
        snap_take(&post, &g);
        reboot_and_mount(&g, &rep);
        observe(&g.st, &g_obs);
        if (!obs_matches(&g_obs, &g_after, NULL, 0, why, sizeof why))
            fail_msg("w=%u op %d (%s): remount after a clean op: %s", w, i, desc, why);

        /* every cut point of this op */
        for (size_t k = 0; k < nsteps; k++) {
            size_t pos[7];
            size_t npos = g_trace[k].is_erase ? 1 : cut_positions(g_trace[k].len, w, pos);
            if (g_trace[k].is_erase)
                pos[0] = 0;
            for (size_t p = 0; p < npos; p++) {
                snap_restore(&pre, &g);
                emu_flash_cut_after(&g.emu, k, pos[p]);
                int crc = run_op(&g.st, &g_op, NULL, w, i);
                if (crc == STORE_OK || !g.emu.powered_off)
                    fail_msg("w=%u op %d (%s) cut at step %lu/%lu byte %lu: op returned %d, "
                             "powered_off=%d (the op must fail at the cut)",
                             (unsigned)w, i, desc, (unsigned long)k, (unsigned long)nsteps,
                             (unsigned long)pos[p], crc, g.emu.powered_off);
                emu_flash_power_on(&g.emu);
                reboot_and_mount(&g, &rep);
                observe(&g.st, &g_obs);
                bool was_before = obs_matches(&g_obs, &g_before, NULL, 0, why, sizeof why);
                bool was_after = obs_matches(&g_obs, &g_after, NULL, 0, why2, sizeof why2);
                if (!was_before && !was_after)
                    fail_msg("w=%u op %d (%s) cut at step %lu/%lu (%s addr 0x%lx len %lu) byte "
                             "%lu: recovered state is neither before (%s) nor after (%s)",
                             (unsigned)w, i, desc, (unsigned long)k, (unsigned long)nsteps,
                             g_trace[k].is_erase ? "erase" : "program",
                             (unsigned long)g_trace[k].addr, (unsigned long)g_trace[k].len,
                             (unsigned long)pos[p], why, why2);
                /* still writable after recovery, and nothing else moved */
                uint8_t probe[24];
                rng_fill(&probe_rng, probe, sizeof probe);
                int prc = store_put(&g.st, g_probe_key, PROBE_KEY_LEN, probe, sizeof probe);
                if (prc != STORE_OK)
                    fail_msg("w=%u op %d (%s) cut at step %lu byte %lu: put after recovery "
                             "returned %d (%s)",
                             (unsigned)w, i, desc, (unsigned long)k, (unsigned long)pos[p], prc,
                             store_status_str(prc));
                observe(&g.st, &g_obs);
                if (!obs_matches(&g_obs, was_after ? &g_after : &g_before, probe, sizeof probe, why,
                                 sizeof why))
                    fail_msg("w=%u op %d (%s) cut at step %lu byte %lu: after a put on the "
                             "recovered store: %s",
                             (unsigned)w, i, desc, (unsigned long)k, (unsigned long)pos[p], why);
                if (reput_check(&g, &g_op, &probe_rng, why, sizeof why))
                    fail_msg("w=%u op %d (%s) cut at step %lu byte %lu: %s", (unsigned)w, i, desc,
                             (unsigned long)k, (unsigned long)pos[p], why);
                /* Cut during GC, and the newest record rots: GC copies (older
                 * ids) now follow it, so it is no torn end of the head but a
                 * damaged record a lookup sees. A put after the reboot must
                 * get a newer id than it and win. */
                if (newest_len && k > first_erase) {
                    snap_restore(&pre, &g);
                    emu_flash_cut_after(&g.emu, k, pos[p]);
                    (void)run_op(&g.st, &g_op, NULL, w, i);
                    emu_flash_power_on(&g.emu);
                    if (rot_value(&g, newest, newest_len) > 0) {
                        reboot_and_mount(&g, &rep);
                        if (reput_check(&g, &g_op, &probe_rng, why, sizeof why))
                            fail_msg("w=%u op %d (%s) cut at step %lu byte %lu, the newest record "
                                     "rotted: %s",
                                     (unsigned)w, i, desc, (unsigned long)k, (unsigned long)pos[p],
                                     why);
                        rot_checks++;
                    }
                }
                if (g.emu.violations != 0)
                    fail_msg("w=%u op %d (%s) cut at step %lu byte %lu: %lu NOR violations "
                             "(0->1 program or misaligned)",
                             (unsigned)w, i, desc, (unsigned long)k, (unsigned long)pos[p],
                             (unsigned long)g.emu.violations);
                cut_points++;
            }
        }
        snap_restore(&post, &g);
        g_before = g_after;
        newest_len = 0;
        if (rc == STORE_OK && g_op.type == OP_PUT && g_op.sub[0].slot != BIG_SLOT &&
            g_op.sub[0].len >= 8 && distinctive(g_op.sub[0].val, g_op.sub[0].len)) {
            newest_len = g_op.sub[0].len;
            memcpy(newest, g_op.sub[0].val, newest_len);
        }
    }

    /* the final clean image has no damage */
    reboot_and_mount(&g, &rep);
    assert_int_equal(rep.records_damaged, 0);
    assert_int_equal(rep.sectors_bad, 0);
    memset(&rep, 0xFF, sizeof rep);
    assert_int_equal(store_fsck(&g.st, &rep), STORE_OK);
    assert_int_equal(rep.records_damaged, 0);
    assert_true(rep.records_live >= model_count(&g_before));
    observe(&g.st, &g_obs);
    if (!obs_matches(&g_obs, &g_before, NULL, 0, why, sizeof why))
        fail_msg("w=%u final state: %s", w, why);

    /* Formats that newlib-nano (the Cortex-M build) prints too: no %llu, %zu or %f. */
    store_stats_t end_stats;
    assert_int_equal(store_stats(&g.st, &end_stats, NULL, 0), STORE_OK);
    assert_int_equal(end_stats.index_on, index_keys > 0);
    printf("# powerloss: write_size=%u%s cut points=%lu, rot-after-GC-cut checks=%lu "
           "(sectors=%ux%u ops=%d txns=%lu chunked_puts=%lu full=%lu erases=%lu "
           "idle-GC steps that collected=%lu, %lu ms)\n",
           w, index_keys ? " (RAM index)" : "", (unsigned long)cut_points,
           (unsigned long)rot_checks, SECTOR_COUNT, SECTOR_SIZE, WORKLOAD_OPS, (unsigned long)txns,
           (unsigned long)chunked, (unsigned long)fulls, (unsigned long)erases_total,
           (unsigned long)gc_steps, (unsigned long)(port_monotonic_ms() - t0));
    assert_true(gc_steps > 0); /* power was cut inside idle GC steps too */
    if (full_then_fits)
        printf("# powerloss: write_size=%u: %lu multi-record operations got STORE_FULL near "
               "capacity and fit when retried\n",
               w, (unsigned long)full_then_fits);
    if (spurious_full)
        printf("# powerloss: write_size=%u: %lu STORE_FULL answers were spurious; first: %s\n", w,
               (unsigned long)spurious_full, first_spurious);
    fflush(stdout);

    teardown_owned(NULL); /* pre/post snapshots, work buffer, trace device, flash */

    /* GC ran many times: every sector was reclaimed several times over */
    assert_true(erases_total >= 3u * SECTOR_COUNT);
    assert_true(chunked >= 5);
    assert_true(fulls <= WORKLOAD_OPS / 4);
    assert_int_equal(spurious_full, 0);
    assert_true(cut_points >= MIN_CUT_POINTS);
    assert_true(rot_checks >= 20);
}

static void test_powerloss_w1(void **state)
{
    (void)state;
    run_campaign(1, 0x1001, 0);
}

#if !defined(CDNAGENT_TARGET)
static void test_powerloss_w4(void **state)
{
    (void)state;
    run_campaign(4, 0x4004, 2u * NSLOTS);
}
#endif

static void test_powerloss_w8(void **state)
{
    (void)state;
    run_campaign(8, 0x8008, 0);
}

#if !defined(CDNAGENT_TARGET)
static void test_powerloss_w16(void **state)
{
    (void)state;
    run_campaign(16, 0x1616, 2u * NSLOTS);
}
#endif

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_powerloss_w1, teardown_owned),
#if !defined(CDNAGENT_TARGET)
        /* On the emulated Cortex-M (make test-target) the campaign is the
         * smaller one: byte-writable and 8-byte-ECC NOR, ~90 s under QEMU. */
        cmocka_unit_test_teardown(test_powerloss_w4, teardown_owned),
#endif
        cmocka_unit_test_teardown(test_powerloss_w8, teardown_owned),
#if !defined(CDNAGENT_TARGET)
        cmocka_unit_test_teardown(test_powerloss_w16, teardown_owned),
#endif
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
