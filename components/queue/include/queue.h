/*
 * queue: the durable retry queue. One entry per thing to deliver (a
 * header of a domain, a domain's certificate), kept in the store next to
 * the desired state it delivers and written in the same store transaction,
 * so a change and its entry land together or not at all.
 *
 * Entries are keyed by their target: a newer change to the same target
 * overwrites the queued entry (coalescing), whatever state it was in.
 * Delivered entries are removed; the desired/delivered state records say
 * what was delivered. Nothing is ever given up: retryable failures back off
 * up to the cap and go on at the cap; failed (permanent input) entries wait
 * for a new change or queue_txn_requeue; blocked entries wait for the
 * configuration to change (a new epoch, see queue_next_due).
 *
 * Every function that reads the store returns its status: an I/O error or
 * a damaged image is never mistaken for "empty" or "nothing due".
 *
 * Times are the port's monotonic milliseconds. After a reboot they are
 * meaningless, so queue_next_due clamps any wait longer than the backoff
 * cap: an entry is never parked for longer than that.
 */
#ifndef CDNAGENT_QUEUE_H
#define CDNAGENT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QUEUE_TARGET_MAX 16u /* bytes of a target name, e.g. "H01a1b2c3d4" */
#define QUEUE_CODE_MAX 64u
#define QUEUE_MESSAGE_MAX 160u

typedef enum {
    QUEUE_PENDING = 0,   /* waiting for its first attempt */
    QUEUE_IN_FLIGHT = 1, /* a request is (or was, before a crash) on the wire */
    QUEUE_BACKOFF = 2,   /* failed, retryable: next attempt at next_try_ms */
    QUEUE_FAILED = 3,    /* permanent input error: waits for a new change or a requeue */
    QUEUE_DEAD = 4,      /* written by older versions only (they gave up); due again */
    QUEUE_BLOCKED = 5,   /* blocked on configuration (credentials, trust, device key):
                            due again under another epoch */
} queue_state_t;

const char *queue_state_str(queue_state_t state);

typedef struct {
    char target[QUEUE_TARGET_MAX + 1];
    uint32_t seq;      /* enqueue order: lower goes first */
    uint8_t state;     /* queue_state_t */
    uint16_t attempts; /* failed attempts so far (saturates at UINT16_MAX) */
    union {
        uint64_t next_try_ms; /* BACKOFF: monotonic time of the next try; 0 = due now */
        uint64_t epoch;       /* BLOCKED: the configuration epoch it was blocked under */
    };
    char code[QUEUE_CODE_MAX + 1];       /* last error Code ("" = none) */
    char message[QUEUE_MESSAGE_MAX + 1]; /* last error Message */
} queue_entry_t;

#define QUEUE_DEFAULT_WARN_EVERY 20u

typedef struct {
    uint32_t base_ms;    /* backoff base (default 1 s) */
    uint32_t cap_ms;     /* backoff cap (default 5 min): retries go on at the cap, forever */
    uint16_t warn_every; /* a retryable failure is worth a warning every this many
                            attempts (QUEUE_DEFAULT_WARN_EVERY); never a give-up */
} queue_policy_t;

void queue_policy_default(queue_policy_t *p);

/* Inside an open store transaction: (re)queue target as PENDING with a
 * fresh seq and no history, superseding whatever entry it had. */
store_status_t queue_txn_enqueue(store_t *st, const char *target, uint32_t seq);
/* Inside an open store transaction: drop target's entry (if any). */
store_status_t queue_txn_remove(store_t *st, const char *target);

/* Read / write one entry (outside a transaction: atomic by itself). */
store_status_t queue_get(store_t *st, const char *target, queue_entry_t *e);
store_status_t queue_put(store_t *st, const queue_entry_t *e);
/* Same as queue_put inside an open store transaction. */
store_status_t queue_txn_put(store_t *st, const queue_entry_t *e);

/* The next seq to hand out, above every stored one. Inside an open store
 * transaction it is that transaction's id (ids only grow, and every stored
 * seq came from an earlier transaction or from the count before them): no
 * read at all. Outside one: one more than the highest stored (a walk). */
store_status_t queue_next_seq(store_t *st, uint32_t *seq);

/* The entry to work on now: the lowest seq among PENDING, IN_FLIGHT, DEAD,
 * due BACKOFF entries and BLOCKED entries parked under an epoch other than
 * `epoch` (the caller's configuration epoch: a new one resumes them).
 * STORE_OK: e filled. STORE_NOT_FOUND: nothing due now; *wait_ms (may be
 * NULL) says when the earliest backoff ends (UINT32_MAX: nothing left that
 * will be due under this epoch: empty, or only FAILED and BLOCKED entries).
 * Any other status: the store could not be read (nothing is known). */
store_status_t queue_next_due(store_t *st, uint64_t now_ms, uint32_t cap_ms, uint32_t epoch,
                              queue_entry_t *e, uint32_t *wait_ms);

/* A small memory of the lowest-seq entries, so that the next due entry is
 * usually found with a lookup or two instead of a walk of the queue. Valid
 * across other processes' edits: an entry enqueued or changed later takes
 * a higher seq (queue_next_seq), and every cached entry is read again before
 * it is used. Zero it before first use (and to drop it). */
#ifndef QUEUE_DUE_CACHE /* a build may choose: 21 bytes an entry, in the agent's heap */
#define QUEUE_DUE_CACHE 32u
#endif
typedef struct {
    unsigned n; /* cached entries, by ascending seq */
    struct {
        char target[QUEUE_TARGET_MAX + 1];
        uint32_t seq;
    } e[QUEUE_DUE_CACHE];
} queue_due_cache_t;

/* queue_next_due, with the same answers, through cache: the cached entries
 * are read in seq order and the first due one is the answer (no entry
 * outside the cache has a lower seq). Only when none of them is due (or the
 * cache is empty) is the queue walked, which also refills the cache. */
store_status_t queue_next_due_cached(store_t *st, queue_due_cache_t *cache, uint64_t now_ms,
                                     uint32_t cap_ms, uint32_t epoch, queue_entry_t *e,
                                     uint32_t *wait_ms);

typedef enum {
    QUEUE_FAIL_RETRY,     /* transport, 5xx, throttling: back off, then again, forever */
    QUEUE_FAIL_PERMANENT, /* the input is refused: FAILED until it changes */
    QUEUE_FAIL_BLOCKED,   /* the configuration is wrong: BLOCKED under epoch */
} queue_failure_t;

/* Record a refusal that is not the change's (the account's rate was
 * exceeded): attempts+1 (warn_every counts it), BACKOFF until next_try_ms,
 * which the caller's rate control chose, not the doubling back-off. */
void queue_record_deferred(queue_entry_t *e, const char *code, const char *message,
                           uint64_t next_try_ms);

/* Record a failed attempt: attempts+1 and, by kind, BACKOFF with a
 * full-jitter delay (retry_backoff_delay_ms, capped by policy->cap_ms),
 * FAILED, or BLOCKED under epoch. random32: any uniform random value. */
void queue_record_failure(queue_entry_t *e, queue_failure_t kind, const char *code,
                          const char *message, uint64_t now_ms, const queue_policy_t *policy,
                          uint32_t random32, uint32_t epoch);

/* Make e due again at once with no history (queue retry): PENDING,
 * attempts 0, no Code. The caller writes it back (queue_put). */
void queue_entry_reset(queue_entry_t *e);

/* Visit every entry (any state). fn returns false to stop. An entry whose
 * value is damaged (CRC, or not a queue entry) is skipped here and reported
 * by fsck; any other read error stops the walk and is returned. */
typedef bool (*queue_visit_fn)(void *arg, const queue_entry_t *e);
store_status_t queue_foreach(store_t *st, queue_visit_fn fn, void *arg);

/* Number of entries (any state) in *n. */
store_status_t queue_count(store_t *st, unsigned *n);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_QUEUE_H */
