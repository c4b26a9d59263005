#include "retry.h"

#include <stddef.h>

/* Successes needed before the rate steps up again, and the step (1/8 of
 * the configured rate): a slow climb back avoids oscillating against a
 * server limit we just hit. The floor, 1/64 of the configured rate (0.16
 * calls/s at 10/s), was chosen by measuring fleets (README "Fleets"):
 * 1/16 kept 200 devices offering 12 times the account's limit; 1/256 and
 * below left the unlucky devices far behind the others. */
#define RETRY_RAISE_AFTER 8u
#define RETRY_RAISE_DIVISOR 8u
#define RETRY_MIN_DIVISOR 64u

uint32_t retry_backoff_delay_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms,
                                uint32_t random32)
{
    uint64_t ceiling = base_ms;
    if (base_ms == 0 || cap_ms == 0)
        return 0;
    /* Stop doubling as soon as the cap is reached: no shift overflow for
     * any attempt count. */
    while (attempt > 0 && ceiling < cap_ms) {
        ceiling <<= 1;
        attempt--;
    }
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    /* Map random32 onto [0, ceiling] without modulo bias worth caring about
     * at these sizes: a 32x32->64 bit multiply keeps it exact and cheap. */
    return (uint32_t)(((uint64_t)random32 * (ceiling + 1u)) >> 32);
}

static void bucket_refill(retry_bucket_t *b, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)b->burst * 1000u;
    if (now_ms > b->last_ms) {
        uint64_t elapsed = now_ms - b->last_ms;
        /* elapsed ms * milli-calls/s / 1000 = milli-calls. Clamp elapsed
         * first so a device that slept for days cannot overflow. */
        if (elapsed > 3600u * 1000u)
            elapsed = 3600u * 1000u;
        uint64_t add = elapsed * b->rate_milli / 1000u;
        uint64_t paid = add < b->debt_milli ? add : b->debt_milli; /* the debt first */
        b->debt_milli -= (uint32_t)paid;
        b->tokens_milli += add - paid;
        if (b->tokens_milli > cap)
            b->tokens_milli = cap;
    }
    b->last_ms = now_ms;
}

void retry_bucket_init(retry_bucket_t *b, uint32_t rate_milli, uint32_t burst, uint64_t now_ms)
{
    if (rate_milli == 0)
        rate_milli = 1;
    if (burst == 0)
        burst = 1;
    b->rate_milli = rate_milli;
    b->max_rate_milli = rate_milli;
    b->min_rate_milli = rate_milli / RETRY_MIN_DIVISOR ? rate_milli / RETRY_MIN_DIVISOR : 1u;
    b->burst = burst;
    b->tokens_milli = (uint64_t)burst * 1000u;
    b->debt_milli = 0;
    b->last_ms = now_ms;
    b->successes = 0;
}

bool retry_bucket_take(retry_bucket_t *b, uint64_t now_ms, uint32_t *wait_ms)
{
    bucket_refill(b, now_ms);
    if (b->tokens_milli >= 1000u) {
        b->tokens_milli -= 1000u;
        if (wait_ms != NULL)
            *wait_ms = 0;
        return true;
    }
    if (wait_ms != NULL) {
        uint64_t missing = 1000u - b->tokens_milli + b->debt_milli;
        /* Round up: waking a millisecond early would just fail again. */
        uint64_t w = (missing * 1000u + b->rate_milli - 1u) / b->rate_milli;
        *wait_ms = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    }
    return false;
}

void retry_bucket_charge(retry_bucket_t *b, uint64_t now_ms)
{
    bucket_refill(b, now_ms);
    if (b->tokens_milli >= 1000u) {
        b->tokens_milli -= 1000u;
        return;
    }
    /* the missing part of the token is owed: the refill pays it first (at
     * most RETRY_DEBT_MAX_MILLI: a step makes a few such calls, not more) */
    b->debt_milli += (uint32_t)(1000u - b->tokens_milli);
    if (b->debt_milli > RETRY_DEBT_MAX_MILLI)
        b->debt_milli = RETRY_DEBT_MAX_MILLI;
    b->tokens_milli = 0;
}

void retry_bucket_throttled(retry_bucket_t *b, uint64_t now_ms, uint32_t random32)
{
    bucket_refill(b, now_ms);
    b->rate_milli /= 2u;
    if (b->rate_milli < b->min_rate_milli)
        b->rate_milli = b->min_rate_milli;
    /* Between none and almost one token: the next call comes anywhere
     * within one interval at the lower rate, so the devices a throttled
     * second refused do not all come back together. */
    b->tokens_milli = ((uint64_t)random32 * 1000u) >> 32;
    b->successes = 0;
}

void retry_bucket_succeeded(retry_bucket_t *b)
{
    if (b->rate_milli >= b->max_rate_milli)
        return;
    if (++b->successes < RETRY_RAISE_AFTER)
        return;
    b->successes = 0;
    b->rate_milli += b->max_rate_milli / RETRY_RAISE_DIVISOR
                         ? b->max_rate_milli / RETRY_RAISE_DIVISOR
                         : 1u;
    if (b->rate_milli > b->max_rate_milli)
        b->rate_milli = b->max_rate_milli;
}

void retry_bucket_resume(retry_bucket_t *b, uint32_t rate_milli, uint64_t now_ms, uint32_t random32)
{
    b->rate_milli = rate_milli < b->min_rate_milli   ? b->min_rate_milli
                    : rate_milli > b->max_rate_milli ? b->max_rate_milli
                                                     : rate_milli;
    b->tokens_milli = ((uint64_t)random32 * 1000u) >> 32;
    b->debt_milli = 0;
    b->last_ms = now_ms;
}
