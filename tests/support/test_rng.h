/* test_rng: the deterministic generator the store tests and benchmark
 * share (splitmix64): seeded workloads reproduce exactly across runs. */
#ifndef CDNAGENT_TEST_RNG_H
#define CDNAGENT_TEST_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s; /* the seed, then the state */
} rng_t;

uint64_t rng_next(rng_t *r);
/* Uniform enough in [0, n) for test workloads (n > 0). */
uint32_t rng_below(rng_t *r, uint32_t n);
void rng_fill(rng_t *r, uint8_t *buf, size_t len);

#endif
