/* queue_next_due_cached answers exactly as queue_next_due. A random
 * workload of enqueues (each in its own store transaction, as the agent
 * does), re-enqueues of a queued target, removals, failures of every kind,
 * resets, time passing and configuration epochs changing is run on one
 * store; after every step the cached lookup (one cache kept across all
 * steps) and the plain walk must give the same status, entry and wait.
 * The cache must also save work where it is meant to: a backlog of pending
 * changes delivered in order (counted in store reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "emu_flash.h"
#include "queue.h"
#include "store.h"
#include "test_rng.h"

#define SECTORS 32u
#define TARGETS 120
#define STEPS 3000

static void target_name(char out[QUEUE_TARGET_MAX + 1], unsigned i)
{
    snprintf(out, QUEUE_TARGET_MAX + 1, "H00%08x", i * 2654435761u);
}

static void enqueue(store_t *st, const char *t)
{
    uint32_t seq;
    assert_int_equal(store_txn_begin(st), STORE_OK);
    assert_int_equal(queue_next_seq(st, &seq), STORE_OK);
    assert_int_equal(queue_txn_enqueue(st, t, seq), STORE_OK);
    assert_int_equal(store_txn_commit(st), STORE_OK);
}

static void remove_entry(store_t *st, const char *t)
{
    assert_int_equal(store_txn_begin(st), STORE_OK);
    assert_int_equal(queue_txn_remove(st, t), STORE_OK);
    assert_int_equal(store_txn_commit(st), STORE_OK);
}

static void test_cached_answers_as_walk(void **state)
{
    (void)state;
    emu_flash_t emu;
    store_t st;
    size_t ws = STORE_WORK_SIZE_INDEXED(SECTORS, 2 * TARGETS);
    uint8_t *work = malloc(ws);
    rng_t rng = {0xD0E5EEDull};
    queue_due_cache_t cache;
    queue_policy_t pol;
    uint64_t now = 1000;
    uint32_t epoch = 1;
    unsigned cached_reads = 0, walk_reads = 0, found = 0;
    char t[QUEUE_TARGET_MAX + 1];
    assert_non_null(work);
    assert_int_equal(emu_flash_init(&emu, 4096, SECTORS, 8), 0);
    assert_int_equal(store_mount(&st, &emu.dev, work, ws, STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    memset(&cache, 0, sizeof cache);
    queue_policy_default(&pol);
    for (unsigned i = 0; i < 60; i++) { /* a backlog first */
        target_name(t, (unsigned)(rng_next(&rng) % TARGETS));
        enqueue(&st, t);
    }
    for (unsigned step = 0; step < STEPS; step++) {
        queue_entry_t a, b;
        uint32_t wa = 7, wb = 9;
        uint64_t r0 = emu.reads;
        store_status_t ra = queue_next_due_cached(&st, &cache, now, pol.cap_ms, epoch, &a, &wa);
        uint64_t r1 = emu.reads;
        store_status_t rb = queue_next_due(&st, now, pol.cap_ms, epoch, &b, &wb);
        cached_reads += (unsigned)(r1 - r0);
        walk_reads += (unsigned)(emu.reads - r1);
        assert_int_equal(ra, rb);
        assert_int_equal(wa, wb);
        if (ra == STORE_OK) {
            found++;
            assert_string_equal(a.target, b.target);
            assert_int_equal(a.seq, b.seq);
        }
        unsigned op = (unsigned)(rng_next(&rng) % 100);
        if (ra == STORE_OK && op < 55) {
            /* work on the due entry as the agent would */
            queue_entry_t e = a;
            unsigned fate = (unsigned)(rng_next(&rng) % 10);
            if (fate < 6) {
                remove_entry(&st, e.target); /* delivered */
            } else {
                queue_failure_t kind = fate < 8   ? QUEUE_FAIL_RETRY
                                       : fate < 9 ? QUEUE_FAIL_PERMANENT
                                                  : QUEUE_FAIL_BLOCKED;
                queue_record_failure(&e, kind, "Code", "message", now, &pol,
                                     (uint32_t)rng_next(&rng), epoch);
                assert_int_equal(queue_put(&st, &e), STORE_OK);
            }
        } else if (op < 80) {
            target_name(t, (unsigned)(rng_next(&rng) % TARGETS)); /* an edit beside */
            enqueue(&st, t);
        } else if (op < 85) {
            queue_entry_t e;
            target_name(t, (unsigned)(rng_next(&rng) % TARGETS));
            if (queue_get(&st, t, &e) == STORE_OK) { /* queue retry */
                queue_entry_reset(&e);
                assert_int_equal(queue_put(&st, &e), STORE_OK);
            }
        } else if (op < 88) {
            epoch++; /* a new configuration: blocked entries resume */
        } else {
            now += rng_next(&rng) % (op < 95 ? 2000u : 400000u);
        }
    }
    /* the cache answered most lookups with a read or two */
    print_message("mixed workload: cached lookups read %u times, walks %u times over %u steps "
                  "(%u found)\n",
                  cached_reads, walk_reads, STEPS, found);
    assert_true(found > STEPS / 3);
    assert_true(cached_reads <= walk_reads);
    emu_flash_free(&emu);
    free(work);
}

/* A backlog of pending changes delivered in order (what a sync does): the
 * cache finds each next one with a read or two, walking the queue only
 * when it has run dry (every QUEUE_DUE_CACHE deliveries). */
static void test_backlog_reads(void **state)
{
    (void)state;
    emu_flash_t emu;
    store_t st;
    size_t ws = STORE_WORK_SIZE_INDEXED(SECTORS, 2 * TARGETS);
    uint8_t *work = malloc(ws);
    queue_due_cache_t cache;
    queue_entry_t e, w;
    uint32_t wait, prev = 0;
    uint64_t cached_reads = 0, walk_reads = 0, r0;
    char t[QUEUE_TARGET_MAX + 1];
    assert_non_null(work);
    assert_int_equal(emu_flash_init(&emu, 4096, SECTORS, 8), 0);
    assert_int_equal(store_mount(&st, &emu.dev, work, ws, STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    memset(&cache, 0, sizeof cache);
    for (unsigned i = 0; i < TARGETS; i++) {
        target_name(t, i);
        enqueue(&st, t);
    }
    for (unsigned i = 0; i < TARGETS; i++) {
        r0 = emu.reads;
        assert_int_equal(queue_next_due_cached(&st, &cache, 0, 1000, 1, &e, &wait), STORE_OK);
        cached_reads += emu.reads - r0;
        r0 = emu.reads;
        assert_int_equal(queue_next_due(&st, 0, 1000, 1, &w, &wait), STORE_OK);
        walk_reads += emu.reads - r0;
        assert_string_equal(e.target, w.target);
        assert_true(e.seq > prev); /* enqueue order */
        prev = e.seq;
        remove_entry(&st, e.target);
    }
    assert_int_equal(queue_next_due_cached(&st, &cache, 0, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    print_message("backlog of %u: cached lookups read %lu times, walks %lu times\n", TARGETS,
                  (unsigned long)cached_reads, (unsigned long)walk_reads);
    assert_true(cached_reads * 4 < walk_reads);
    emu_flash_free(&emu);
    free(work);
}

/* A cache that holds nonsense (a count past its size, targets nobody
 * queued) is dropped or corrected, never trusted. */
static void test_cache_garbage(void **state)
{
    (void)state;
    emu_flash_t emu;
    store_t st;
    size_t ws = STORE_WORK_SIZE(SECTORS);
    uint8_t *work = malloc(ws);
    queue_due_cache_t cache;
    queue_entry_t e;
    uint32_t wait;
    assert_non_null(work);
    assert_int_equal(emu_flash_init(&emu, 4096, SECTORS, 8), 0);
    assert_int_equal(store_mount(&st, &emu.dev, work, ws, STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
    enqueue(&st, "Hreal");
    memset(&cache, 0x5A, sizeof cache);
    assert_int_equal(queue_next_due_cached(&st, &cache, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hreal");
    memset(&cache, 0, sizeof cache);
    cache.n = 1;
    strcpy(cache.e[0].target, "Hnobody");
    cache.e[0].seq = 1;
    assert_int_equal(queue_next_due_cached(&st, &cache, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hreal");
    remove_entry(&st, "Hreal");
    assert_int_equal(queue_next_due_cached(&st, &cache, 0, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX);
    emu_flash_free(&emu);
    free(work);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cached_answers_as_walk),
        cmocka_unit_test(test_backlog_reads),
        cmocka_unit_test(test_cache_garbage),
    };
    return cmocka_run_group_tests_name("queue_due", tests, NULL, NULL);
}
