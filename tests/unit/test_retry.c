/* Unit tests of components/retry: backoff with full jitter, token bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "retry.h"

static void test_backoff_ceiling_doubles_then_caps(void **state)
{
    (void)state;
    /* random32 = max gives the ceiling itself. */
    assert_int_equal(retry_backoff_delay_ms(0, 1000, 300000, UINT32_MAX), 1000);
    assert_int_equal(retry_backoff_delay_ms(1, 1000, 300000, UINT32_MAX), 2000);
    assert_int_equal(retry_backoff_delay_ms(5, 1000, 300000, UINT32_MAX), 32000);
    assert_int_equal(retry_backoff_delay_ms(8, 1000, 300000, UINT32_MAX), 256000);
    assert_int_equal(retry_backoff_delay_ms(9, 1000, 300000, UINT32_MAX), 300000);
    /* Huge attempt counts neither overflow nor exceed the cap. */
    assert_int_equal(retry_backoff_delay_ms(UINT32_MAX, 1000, 300000, UINT32_MAX), 300000);
    assert_int_equal(retry_backoff_delay_ms(4000, UINT32_MAX, UINT32_MAX, UINT32_MAX), UINT32_MAX);
    assert_int_equal(retry_backoff_delay_ms(3, 1000, 300000, 0), 0);
    assert_int_equal(retry_backoff_delay_ms(3, 0, 300000, 12345), 0);
}

static void test_backoff_full_jitter_spreads_uniformly(void **state)
{
    /* A fleet that failed together must not retry together: over many
     * draws the delays cover the whole [0, ceiling] range evenly. */
    uint32_t x = 2463534242u, buckets[10] = {0};
    int i;
    (void)state;
    for (i = 0; i < 100000; i++) {
        uint32_t d;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        d = retry_backoff_delay_ms(4, 1000, 300000, x);
        assert_true(d <= 16000);
        buckets[d * 10u / 16001u]++;
    }
    for (i = 0; i < 10; i++) {
        assert_true(buckets[i] > 9000);
        assert_true(buckets[i] < 11000);
    }
}

static void test_bucket_allows_burst_then_paces(void **state)
{
    retry_bucket_t b;
    uint32_t wait = 0;
    int i;
    (void)state;
    retry_bucket_init(&b, 10000, 10, 1000);
    for (i = 0; i < 10; i++)
        assert_true(retry_bucket_take(&b, 1000, &wait));
    /* The 11th call in the same second is held back, for 100 ms. */
    assert_false(retry_bucket_take(&b, 1000, &wait));
    assert_int_equal(wait, 100);
    assert_false(retry_bucket_take(&b, 1099, &wait));
    assert_int_equal(wait, 1);
    assert_true(retry_bucket_take(&b, 1100, &wait));
    /* Over a long idle period the bucket fills only to its burst size. */
    for (i = 0; i < 10; i++)
        assert_true(retry_bucket_take(&b, 100000, NULL));
    assert_false(retry_bucket_take(&b, 100000, NULL));
}

static void test_bucket_never_exceeds_rate_over_a_minute(void **state)
{
    retry_bucket_t b;
    uint64_t t;
    unsigned calls = 0;
    (void)state;
    retry_bucket_init(&b, 10000, 10, 0);
    for (t = 0; t < 60000; t++)
        while (retry_bucket_take(&b, t, NULL))
            calls++;
    /* burst of 10 + 10/s for 60 s (the last refill lands at t=59999) */
    assert_true(calls <= 10 + 600);
    assert_true(calls >= 10 + 599);
}

static void test_bucket_throttling_halves_and_recovers(void **state)
{
    retry_bucket_t b;
    uint32_t wait = 0;
    int i;
    (void)state;
    retry_bucket_init(&b, 10000, 10, 0);
    retry_bucket_throttled(&b, 0, 0);
    assert_int_equal(b.rate_milli, 5000);
    assert_false(retry_bucket_take(&b, 0, &wait));
    assert_int_equal(wait, 200); /* no token left: one interval at 5/s */
    retry_bucket_init(&b, 10000, 1, 0);
    retry_bucket_throttled(&b, 0, UINT32_MAX / 2u + 1u);
    assert_false(retry_bucket_take(&b, 0, &wait));
    assert_int_equal(wait, 100); /* half a token left: half an interval */
    for (i = 0; i < 10; i++)
        retry_bucket_throttled(&b, 0, 0);
    assert_int_equal(b.rate_milli, 156); /* floor: 1/64 of configured */
    for (i = 0; i < 7; i++)
        retry_bucket_succeeded(&b);
    assert_int_equal(b.rate_milli, 156);
    retry_bucket_succeeded(&b);
    assert_int_equal(b.rate_milli, 156 + 1250);
    /* a restart resumes a learnt rate with no full token: not at once */
    retry_bucket_resume(&b, 1600, 5000, 0);
    assert_false(retry_bucket_take(&b, 5000, &wait));
    assert_int_equal(wait, 625);
    for (i = 0; i < 200; i++)
        retry_bucket_succeeded(&b);
    assert_int_equal(b.rate_milli, 10000); /* back to, never above, configured */
    retry_bucket_resume(&b, 99999, 0, 0);
    assert_int_equal(b.rate_milli, 10000);
    retry_bucket_resume(&b, 0, 0, 0);
    assert_int_equal(b.rate_milli, 156);
}

/* A call beyond the paid one: with a token it takes it; without one it is
 * owed, and the next token comes that much later (10/s: 100 ms a token). */
static void test_bucket_charge_owes(void **state)
{
    (void)state;
    retry_bucket_t b;
    uint32_t wait = 0;
    retry_bucket_init(&b, 10000, 1, 0);
    retry_bucket_charge(&b, 0); /* the token there */
    assert_false(retry_bucket_take(&b, 0, &wait));
    assert_int_equal(wait, 100);
    retry_bucket_charge(&b, 0); /* none: one owed */
    assert_false(retry_bucket_take(&b, 0, &wait));
    assert_int_equal(wait, 200);
    assert_false(retry_bucket_take(&b, 150, &wait));
    assert_int_equal(wait, 50);
    assert_true(retry_bucket_take(&b, 200, &wait));
    /* half a token there: the other half is owed */
    assert_false(retry_bucket_take(&b, 250, &wait));
    retry_bucket_charge(&b, 250);
    assert_false(retry_bucket_take(&b, 250, &wait));
    assert_int_equal(wait, 150);
    /* over a minute, taking and charging alike, the rate holds */
    unsigned calls = 0;
    for (uint64_t t = 1000; t < 61000; t++) {
        if (retry_bucket_take(&b, t, NULL)) {
            calls++;
            retry_bucket_charge(&b, t);
            calls++;
        }
    }
    assert_true(calls >= 598 && calls <= 602);
}

static void test_bucket_degenerate_config(void **state)
{
    retry_bucket_t b;
    (void)state;
    retry_bucket_init(&b, 0, 0, 0);
    assert_int_equal(b.rate_milli, 1);
    assert_int_equal(b.burst, 1);
    assert_true(retry_bucket_take(&b, 0, NULL));
    assert_false(retry_bucket_take(&b, 0, NULL));
    /* Time going backwards (a caller bug) must not mint tokens. */
    assert_false(retry_bucket_take(&b, 0, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_ceiling_doubles_then_caps),
        cmocka_unit_test(test_backoff_full_jitter_spreads_uniformly),
        cmocka_unit_test(test_bucket_allows_burst_then_paces),
        cmocka_unit_test(test_bucket_charge_owes),
        cmocka_unit_test(test_bucket_never_exceeds_rate_over_a_minute),
        cmocka_unit_test(test_bucket_throttling_halves_and_recovers),
        cmocka_unit_test(test_bucket_degenerate_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
