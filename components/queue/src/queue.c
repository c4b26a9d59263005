/* queue: durable retry queue entries in the store; see queue.h. */
#include "queue.h"

#include <string.h>

#include "retry.h"
#include "store_keys.h"
#include "util.h"

/* Store key: STORE_KEY_QUEUE ('Q') + target. Value (little-endian):
 *   u8 version(1) | u8 state | u16 attempts | u32 seq | u64 next_try_ms |
 *   u8 code_len | code | u8 message_len | message                          */
#define QUEUE_VERSION 1u
#define QUEUE_VALUE_MAX (16u + 1u + QUEUE_CODE_MAX + 1u + QUEUE_MESSAGE_MAX)

const char *queue_state_str(queue_state_t state)
{
    switch (state) {
    case QUEUE_PENDING: return "pending";
    case QUEUE_IN_FLIGHT: return "in-flight";
    case QUEUE_BACKOFF: return "backing-off";
    case QUEUE_FAILED: return "failed";
    case QUEUE_DEAD: return "dead";
    case QUEUE_BLOCKED: return "blocked";
    default: return "unknown";
    }
}

void queue_policy_default(queue_policy_t *p)
{
    p->base_ms = RETRY_DEFAULT_BASE_MS;
    p->cap_ms = RETRY_DEFAULT_CAP_MS;
    p->warn_every = QUEUE_DEFAULT_WARN_EVERY;
}

static size_t make_key(const char *target, char key[QUEUE_TARGET_MAX + 2])
{
    size_t n = strlen(target);
    if (n == 0 || n > QUEUE_TARGET_MAX)
        return 0;
    key[0] = STORE_KEY_QUEUE;
    memcpy(key + 1, target, n);
    return n + 1;
}

static size_t encode(const queue_entry_t *e, uint8_t *out)
{
    size_t cl = strlen(e->code), ml = strlen(e->message);
    if (cl > QUEUE_CODE_MAX)
        cl = QUEUE_CODE_MAX;
    if (ml > QUEUE_MESSAGE_MAX)
        ml = QUEUE_MESSAGE_MAX;
    out[0] = QUEUE_VERSION;
    out[1] = e->state;
    util_put_le(out + 2, e->attempts, 2);
    util_put_le(out + 4, e->seq, 4);
    util_put_le(out + 8, e->next_try_ms, 8);
    out[16] = (uint8_t)cl;
    memcpy(out + 17, e->code, cl);
    out[17 + cl] = (uint8_t)ml;
    memcpy(out + 18 + cl, e->message, ml);
    return 18 + cl + ml;
}

static bool decode(const uint8_t *b, size_t len, const uint8_t *key, size_t key_len,
                   queue_entry_t *e)
{
    memset(e, 0, sizeof *e);
    if (len < 18 || b[0] != QUEUE_VERSION || b[1] > QUEUE_BLOCKED || key_len < 2 ||
        key_len - 1 > QUEUE_TARGET_MAX)
        return false;
    size_t cl = b[16];
    if (cl > QUEUE_CODE_MAX || 17 + cl >= len)
        return false;
    size_t ml = b[17 + cl];
    if (ml > QUEUE_MESSAGE_MAX || 18 + cl + ml != len)
        return false;
    memcpy(e->target, key + 1, key_len - 1);
    e->state = b[1];
    e->attempts = (uint16_t)util_get_le(b + 2, 2);
    e->seq = (uint32_t)util_get_le(b + 4, 4);
    e->next_try_ms = util_get_le(b + 8, 8);
    memcpy(e->code, b + 17, cl);
    memcpy(e->message, b + 18 + cl, ml);
    return true;
}

store_status_t queue_txn_enqueue(store_t *st, const char *target, uint32_t seq)
{
    queue_entry_t e;
    memset(&e, 0, sizeof e);
    if (strlen(target) > QUEUE_TARGET_MAX)
        return STORE_ERR_ARG;
    strcpy(e.target, target);
    e.seq = seq;
    e.state = QUEUE_PENDING;
    return queue_txn_put(st, &e);
}

store_status_t queue_txn_remove(store_t *st, const char *target)
{
    char key[QUEUE_TARGET_MAX + 2];
    size_t kl = make_key(target, key);
    if (!kl)
        return STORE_ERR_ARG;
    return store_txn_delete(st, key, kl);
}

store_status_t queue_get(store_t *st, const char *target, queue_entry_t *e)
{
    char key[QUEUE_TARGET_MAX + 2];
    uint8_t buf[QUEUE_VALUE_MAX];
    size_t kl = make_key(target, key), len = 0;
    if (!kl)
        return STORE_ERR_ARG;
    store_status_t rc = store_get(st, key, kl, buf, sizeof buf, &len);
    if (rc != STORE_OK)
        return rc;
    return decode(buf, len, (const uint8_t *)key, kl, e) ? STORE_OK : STORE_ERR_CORRUPT;
}

static store_status_t put_entry(store_t *st, const queue_entry_t *e, bool in_txn)
{
    char key[QUEUE_TARGET_MAX + 2];
    uint8_t buf[QUEUE_VALUE_MAX];
    size_t kl = make_key(e->target, key);
    if (!kl)
        return STORE_ERR_ARG;
    size_t len = encode(e, buf);
    return in_txn ? store_txn_put(st, key, kl, buf, len) : store_put(st, key, kl, buf, len);
}

store_status_t queue_put(store_t *st, const queue_entry_t *e)
{
    return put_entry(st, e, false);
}
store_status_t queue_txn_put(store_t *st, const queue_entry_t *e)
{
    return put_entry(st, e, true);
}

typedef struct {
    store_t *st;
    queue_visit_fn fn;
    void *arg;
    store_status_t rc;
} foreach_ctx_t;

static bool foreach_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    foreach_ctx_t *c = arg;
    uint8_t buf[QUEUE_VALUE_MAX];
    size_t len = 0;
    queue_entry_t e;
    if (value_len > sizeof buf)
        return true; /* not ours: skip */
    store_status_t rc = store_get(c->st, key, key_len, buf, sizeof buf, &len);
    if (rc == STORE_ERR_CORRUPT || (rc == STORE_OK && !decode(buf, len, key, key_len, &e)))
        return true; /* a damaged entry is reported by fsck, not fatal here */
    if (rc != STORE_OK) {
        c->rc = rc;
        return false;
    }
    return c->fn(c->arg, &e);
}

store_status_t queue_foreach(store_t *st, queue_visit_fn fn, void *arg)
{
    foreach_ctx_t c = {st, fn, arg, STORE_OK};
    store_status_t rc = store_iterate(st, "Q", 1, foreach_cb, &c);
    return rc != STORE_OK ? rc : c.rc;
}

static bool count_cb(void *arg, const queue_entry_t *e)
{
    (void)e;
    (*(unsigned *)arg)++;
    return true;
}

store_status_t queue_count(store_t *st, unsigned *n)
{
    *n = 0;
    return queue_foreach(st, count_cb, n);
}

static bool max_seq_cb(void *arg, const queue_entry_t *e)
{
    uint32_t *m = arg;
    if (e->seq > *m)
        *m = e->seq;
    return true;
}

store_status_t queue_next_seq(store_t *st, uint32_t *seq)
{
    uint32_t m = 0;
    if (store_txn_current(st, &m) == STORE_OK) {
        *seq = m;
        return STORE_OK;
    }
    store_status_t rc = queue_foreach(st, max_seq_cb, &m);
    *seq = m + 1u;
    return rc;
}

typedef struct {
    uint64_t now;
    uint32_t cap;
    uint32_t epoch;
    bool found;
    queue_entry_t best;
    uint64_t earliest;
    queue_due_cache_t *cache; /* refilled by the walk (may be NULL) */
} due_ctx_t;

/* When e can be worked on: 0 now, UINT64_MAX never under this epoch. */
static uint64_t due_at(const queue_entry_t *e, uint64_t now, uint32_t cap, uint32_t epoch)
{
    if (e->state == QUEUE_FAILED || (e->state == QUEUE_BLOCKED && e->epoch == epoch))
        return UINT64_MAX;
    uint64_t at = e->state == QUEUE_BACKOFF ? e->next_try_ms : 0;
    return at > now + cap ? now + cap : at; /* a time from before a reboot */
}

/* Keep the QUEUE_DUE_CACHE lowest seqs seen by the walk. */
static void cache_offer(queue_due_cache_t *c, const queue_entry_t *e)
{
    unsigned i = c->n;
    if (c->n == QUEUE_DUE_CACHE && e->seq >= c->e[QUEUE_DUE_CACHE - 1u].seq)
        return;
    if (c->n < QUEUE_DUE_CACHE)
        c->n++;
    else
        i = QUEUE_DUE_CACHE - 1u;
    while (i > 0 && c->e[i - 1u].seq > e->seq) {
        c->e[i] = c->e[i - 1u];
        i--;
    }
    memcpy(c->e[i].target, e->target, sizeof c->e[i].target);
    c->e[i].seq = e->seq;
}

static bool due_cb(void *arg, const queue_entry_t *e)
{
    due_ctx_t *c = arg;
    if (c->cache)
        cache_offer(c->cache, e);
    uint64_t at = due_at(e, c->now, c->cap, c->epoch);
    if (at == UINT64_MAX)
        return true;
    if (at <= c->now) {
        if (!c->found || e->seq < c->best.seq) {
            c->best = *e;
            c->found = true;
        }
    } else if (at < c->earliest) {
        c->earliest = at;
    }
    return true;
}

static store_status_t next_due_walk(store_t *st, queue_due_cache_t *cache, uint64_t now_ms,
                                    uint32_t cap_ms, uint32_t epoch, queue_entry_t *e,
                                    uint32_t *wait_ms)
{
    due_ctx_t c;
    memset(&c, 0, sizeof c);
    c.now = now_ms;
    c.cap = cap_ms;
    c.epoch = epoch;
    c.earliest = UINT64_MAX;
    c.cache = cache;
    if (cache)
        cache->n = 0;
    store_status_t rc = queue_foreach(st, due_cb, &c);
    if (rc != STORE_OK && cache)
        cache->n = 0; /* a walk cut short saw only some of the lowest */
    if (rc != STORE_OK)
        return rc;
    if (c.found) {
        *e = c.best;
        if (wait_ms)
            *wait_ms = 0;
        return STORE_OK;
    }
    if (wait_ms)
        *wait_ms = c.earliest == UINT64_MAX                ? UINT32_MAX
                   : c.earliest - now_ms > UINT32_MAX - 1u ? UINT32_MAX - 1u
                                                           : (uint32_t)(c.earliest - now_ms);
    return STORE_NOT_FOUND;
}

store_status_t queue_next_due(store_t *st, uint64_t now_ms, uint32_t cap_ms, uint32_t epoch,
                              queue_entry_t *e, uint32_t *wait_ms)
{
    return next_due_walk(st, NULL, now_ms, cap_ms, epoch, e, wait_ms);
}

store_status_t queue_next_due_cached(store_t *st, queue_due_cache_t *cache, uint64_t now_ms,
                                     uint32_t cap_ms, uint32_t epoch, queue_entry_t *e,
                                     uint32_t *wait_ms)
{
    unsigned kept = 0;
    if (cache->n > QUEUE_DUE_CACHE)
        cache->n = 0;
    for (unsigned i = 0; i < cache->n; i++) {
        queue_entry_t got;
        store_status_t rc = queue_get(st, cache->e[i].target, &got);
        if (rc != STORE_OK && rc != STORE_NOT_FOUND && rc != STORE_ERR_CORRUPT) {
            cache->n = 0;
            return rc;
        }
        /* gone, damaged (the walk skips those too) or enqueued again with
         * a higher seq: no longer among the lowest */
        if (rc != STORE_OK || got.seq != cache->e[i].seq)
            continue;
        if (due_at(&got, now_ms, cap_ms, epoch) <= now_ms) {
            /* the lowest due: everything before it in the cache is gone or
             * not due, and nothing outside the cache has a lower seq */
            memmove(&cache->e[kept], &cache->e[i], (cache->n - i) * sizeof cache->e[0]);
            cache->n = kept + (cache->n - i);
            *e = got;
            if (wait_ms)
                *wait_ms = 0;
            return STORE_OK;
        }
        cache->e[kept++] = cache->e[i];
    }
    /* nothing due among the lowest: the whole queue decides (and the wait) */
    return next_due_walk(st, cache, now_ms, cap_ms, epoch, e, wait_ms);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = 0;
}

void queue_record_failure(queue_entry_t *e, queue_failure_t kind, const char *code,
                          const char *message, uint64_t now_ms, const queue_policy_t *policy,
                          uint32_t random32, uint32_t epoch)
{
    copy_str(e->code, sizeof e->code, code);
    copy_str(e->message, sizeof e->message, message);
    if (e->attempts < UINT16_MAX)
        e->attempts++;
    if (kind == QUEUE_FAIL_PERMANENT) {
        e->state = QUEUE_FAILED;
        e->next_try_ms = 0;
    } else if (kind == QUEUE_FAIL_BLOCKED) {
        e->state = QUEUE_BLOCKED;
        e->epoch = epoch;
    } else {
        /* The exponent saturates long before attempts does: past the cap
         * every retry waits uniform(0, cap). */
        uint32_t d = retry_backoff_delay_ms(e->attempts - 1u, policy->base_ms, policy->cap_ms,
                                            random32);
        e->state = QUEUE_BACKOFF;
        e->next_try_ms = now_ms + d;
    }
}

void queue_record_deferred(queue_entry_t *e, const char *code, const char *message,
                           uint64_t next_try_ms)
{
    copy_str(e->code, sizeof e->code, code);
    copy_str(e->message, sizeof e->message, message);
    if (e->attempts < UINT16_MAX)
        e->attempts++;
    e->state = QUEUE_BACKOFF;
    e->next_try_ms = next_try_ms;
}

void queue_entry_reset(queue_entry_t *e)
{
    e->state = QUEUE_PENDING;
    e->attempts = 0;
    e->next_try_ms = 0;
    e->code[0] = 0;
    e->message[0] = 0;
}
