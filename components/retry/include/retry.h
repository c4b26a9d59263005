/*
 * retry.h — when to try again: exponential backoff with full jitter, and a
 * token bucket that keeps the agent under the API's documented call rate.
 *
 * Pure arithmetic on times the caller supplies (monotonic milliseconds):
 * no clock, no allocation, no I/O, so every decision is reproducible in a
 * test and the same on every port.
 */
#ifndef CDNAGENT_RETRY_H
#define CDNAGENT_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults from the product: base 1 s, cap 5 min; 10 calls/s is the
 * documented per-user limit of SetDomainServerCertificate, the strictest
 * call the agent makes. */
#define RETRY_DEFAULT_BASE_MS 1000u
#define RETRY_DEFAULT_CAP_MS (5u * 60u * 1000u)
#define RETRY_DEFAULT_RATE_MILLI_PER_S 10000u /* 10.000 calls/s */

/* Full-jitter backoff (AWS architecture blog, "Exponential Backoff And
 * Jitter"): delay = uniform(0, min(cap, base * 2^attempt)). Full jitter
 * spreads a fleet of devices that failed together, which is what prevents
 * throttling storms after an outage. attempt counts from 0 (first retry).
 * random32 is any uniformly distributed 32-bit value from the caller.
 * Returns a delay in [0, min(cap, base << attempt)], never overflowing. */
uint32_t retry_backoff_delay_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms,
                                uint32_t random32);

/* Token bucket. Rates are in milli-calls per second so fractional rates
 * (0.5 calls/s after throttling) need no floating point. */
typedef struct {
    uint32_t rate_milli;     /* current refill rate, milli-calls per second */
    uint32_t max_rate_milli; /* configured rate; throttling lowers, success restores */
    uint32_t min_rate_milli; /* never throttle ourselves below this */
    uint32_t burst;          /* bucket capacity in calls */
    uint64_t tokens_milli;   /* current tokens, milli-calls */
    uint64_t last_ms;        /* time of the last refill */
    uint32_t successes;      /* consecutive successes since the last decrease */
    uint32_t debt_milli;     /* owed by retry_bucket_charge: the refill pays it first */
} retry_bucket_t;
#define RETRY_DEBT_MAX_MILLI 8000u

/* rate_milli: calls per second x 1000 (>0); burst: calls (>= 1). */
void retry_bucket_init(retry_bucket_t *b, uint32_t rate_milli, uint32_t burst, uint64_t now_ms);

/* Take one token if there is one: returns true and the call may go now.
 * Returns false otherwise; then *wait_ms (if not NULL) says how long until
 * a token will be there at the current rate. */
bool retry_bucket_take(retry_bucket_t *b, uint64_t now_ms, uint32_t *wait_ms);

/* A call made beyond the one a token paid for (a read-back that completes
 * a batch): it goes now; without a token, the missing part is owed, and the
 * next token comes that much later, so the rate holds on average. */
void retry_bucket_charge(retry_bucket_t *b, uint64_t now_ms);

/* The server answered Throttling*: halve the rate (not below the minimum,
 * 1/64 of the configured rate) and leave a random part of one token
 * (random32: uniform), so the next call comes within one interval at the
 * lower rate, at a point of it that differs from device to device. */
void retry_bucket_throttled(retry_bucket_t *b, uint64_t now_ms, uint32_t random32);

/* A call succeeded: after enough consecutive successes the rate creeps
 * back up (additive increase) towards the configured rate. */
void retry_bucket_succeeded(retry_bucket_t *b);

/* Start again from a rate learnt before (a restart), clamped to [min,
 * max], with a random part of one token: devices restarted together do not
 * all call at once. */
void retry_bucket_resume(retry_bucket_t *b, uint32_t rate_milli, uint64_t now_ms, uint32_t random32);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_RETRY_H */
