/* The Cortex-M image's strtod (firmware/cortex-m/strtod_compact.c), built
 * here under another name and held against the C library's: exact for the
 * integers the API sends, close for the rest, the same end of the number,
 * and the same answer to what is no number. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define strtod compact_strtod
#include "../../firmware/cortex-m/strtod_compact.c"
#undef strtod

/* Both read s: the same end, and values within rel (0: identical). */
static void same(const char *s, double rel)
{
    char *e1 = NULL, *e2 = NULL;
    errno = 0;
    double want = strtod(s, &e1);
    int want_errno = errno;
    errno = 0;
    double got = compact_strtod(s, &e2);
    if (e1 != e2 || (rel == 0 ? got != want : fabs(got - want) > rel * fabs(want)) ||
        (want_errno == ERANGE) != (errno == ERANGE)) {
        print_error("%s: libc %.17g (end +%td, errno %d), compact %.17g (end +%td, errno %d)\n", s,
                    want, e1 - s, want_errno, got, e2 - s, errno);
        fail();
    }
}

static void test_integers_exact(void **state)
{
    (void)state;
    static const char *const cases[] = {"0",
                                        "-0",
                                        "7",
                                        "1001",
                                        "4294967295",
                                        "4294967296",
                                        "-12",
                                        "+12",
                                        "   42",
                                        "9007199254740991",
                                        "9007199254740992",
                                        "9007199254740993",
                                        "123456789012345678",
                                        "18446744073709551615",
                                        "18446744073709551616",
                                        "99999999999999999999999",
                                        "1e3",
                                        "12E+2",
                                        "1200e-2",
                                        "0000001001"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same(cases[i], 0);
    /* every ConfigId shape up to 2^53, sampled */
    char b[32];
    for (uint64_t v = 1; v < (1ull << 53); v = v * 3u + 7u) {
        snprintf(b, sizeof b, "%llu", (unsigned long long)v);
        same(b, 0);
    }
}

static void test_fractions_close(void **state)
{
    (void)state;
    static const char *const cases[] =
        {"0.5",           "-1.25", "3.14159265358979",        "1e-5", "2.5E-3",
         "6.02214076e23", "1e308", "2.2250738585072014e-308", ".5",   "5.",
         "123.456e2"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same(cases[i], 1e-14);
}

static void test_out_of_range(void **state)
{
    (void)state;
    same("1e309", 0);
    same("-1e999999", 0);
    same("1e-400", 0);
    same("0e999999", 0);
    errno = 0;
    assert_true(compact_strtod("1e400", NULL) == HUGE_VAL);
    assert_int_equal(errno, ERANGE);
}

static void test_ends_and_no_number(void **state)
{
    (void)state;
    static const char *const cases[] = {"",    "-",  "+",   ".",    "e5", "-e5", "abc",
                                        "12,", "1e", "1e+", "1e-x", "3]", "7.}", " \t\n8 "};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same(cases[i], 0);
    char *end = NULL;
    const char *s = "  x";
    assert_true(compact_strtod(s, &end) == 0.0 && end == s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_exact),
        cmocka_unit_test(test_fractions_close),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_ends_and_no_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
