/*
 * queue: the durable retry queue. One entry per thing to deliver (a
 * header of a domain, a domain's certificate), kept in the store next to
 * the desired state it delivers and written in the same store transaction,
 * so a change and its entry land together or not at all.
 *
 * Entries are keyed by their target: a newer change to the same target
 * overwrites the queued entry (coalescing), whatever state it was in.
 * Delivered entries are removed; the desired/delivered state records say
 * what was delivered. Failed (permanent) and dead (gave up) entries stay,
 * with the server's Code and Message, until the target changes again.
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

#define QUEUE_TARGET_MAX 16u  /* bytes of a target name, e.g. "H01a1b2c3d4" */
#define QUEUE_CODE_MAX 64u
#define QUEUE_MESSAGE_MAX 160u

typedef enum {
    QUEUE_PENDING = 0,   /* waiting for its first attempt */
    QUEUE_IN_FLIGHT = 1, /* a request is (or was, before a crash) on the wire */
    QUEUE_BACKOFF = 2,   /* failed, retryable: next attempt at next_try_ms */
    QUEUE_FAILED = 3,    /* permanent error from the server or local checks */
    QUEUE_DEAD = 4,      /* gave up after max_attempts retryable failures */
} queue_state_t;

const char *queue_state_str(int state);

typedef struct {
    char target[QUEUE_TARGET_MAX + 1];
    uint32_t seq;            /* enqueue order: lower goes first */
    uint8_t state;           /* queue_state_t */
    uint16_t attempts;       /* failed attempts so far */
    uint64_t next_try_ms;    /* monotonic; 0 = due now */
    char code[QUEUE_CODE_MAX + 1];       /* last error Code ("" = none) */
    char message[QUEUE_MESSAGE_MAX + 1]; /* last error Message */
} queue_entry_t;

#define QUEUE_DEFAULT_MAX_ATTEMPTS 20u

typedef struct {
    uint32_t base_ms;      /* backoff base (default 1 s) */
    uint32_t cap_ms;       /* backoff cap (default 5 min) */
    uint16_t max_attempts; /* retryable failures before DEAD (QUEUE_DEFAULT_MAX_ATTEMPTS) */
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

/* The next seq to hand out: one more than the highest stored. */
uint32_t queue_next_seq(store_t *st);

/* The entry to work on now: the lowest seq among PENDING, IN_FLIGHT and
 * due BACKOFF entries. Returns true and fills e; otherwise false and
 * *wait_ms says when the earliest backoff ends (UINT32_MAX: nothing left
 * that will ever be due: empty, or only FAILED/DEAD). */
bool queue_next_due(store_t *st, uint64_t now_ms, uint32_t cap_ms, queue_entry_t *e,
                    uint32_t *wait_ms);

/* Record a failed attempt. retryable: attempts+1, BACKOFF with a full-jitter
 * delay (retry_backoff_delay_ms), or DEAD when the policy's attempts are
 * used up; otherwise FAILED. random32: any uniform random value. */
void queue_record_failure(queue_entry_t *e, bool retryable, const char *code, const char *message,
                          uint64_t now_ms, const queue_policy_t *policy, uint32_t random32);

/* Visit every entry (any state). fn returns false to stop. */
typedef bool (*queue_visit_fn)(void *arg, const queue_entry_t *e);
store_status_t queue_foreach(store_t *st, queue_visit_fn fn, void *arg);

/* Number of entries (any state); 0 also when the store cannot be read. */
unsigned queue_count(store_t *st);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_QUEUE_H */
