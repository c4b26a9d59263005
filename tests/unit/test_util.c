/* Unit tests of components/util (endian, CRC-32, ASCII case, civil dates)
 * and components/crypto (SHA-256, wipe), each against values computed
 * independently of the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>

#include "crypto.h"
#include "test_crc.h"
#include "util.h"

static void test_le_fixed_widths(void **state)
{
    uint8_t b[8];
    (void)state;
    util_put_le16(b, 0xBEEFu);
    assert_int_equal(b[0], 0xEF);
    assert_int_equal(b[1], 0xBE);
    assert_int_equal(util_get_le16(b), 0xBEEFu);
    util_put_le32(b, 0x12345678u);
    assert_memory_equal(b, "\x78\x56\x34\x12", 4);
    assert_int_equal(util_get_le32(b), 0x12345678u);
    util_put_le32(b, 0xFFFFFFFFu);
    assert_int_equal(util_get_le32(b), 0xFFFFFFFFu);
}

static void test_le_any_width_round_trips(void **state)
{
    uint8_t b[9];
    (void)state;
    for (unsigned w = 1; w <= 8; w++) {
        uint64_t v = 0x8877665544332211ull;
        uint64_t mask = w == 8 ? UINT64_MAX : ((1ull << (8 * w)) - 1u);
        memset(b, 0xAA, sizeof b);
        util_put_le(b, v, w);
        assert_int_equal(b[0], 0x11);
        assert_int_equal(b[w], 0xAA); /* writes exactly w bytes */
        assert_true(util_get_le(b, w) == (v & mask));
    }
    assert_true(util_get_le(b, 0) == 0);
}

static void test_crc32_check_value_and_chaining(void **state)
{
    const char *check = "123456789";
    uint8_t data[300];
    (void)state;
    /* The CRC-32 check value of the catalogue (IEEE 802.3, as zlib). */
    assert_int_equal(util_crc32_update(0, check, 9), 0xCBF43926u);
    assert_int_equal(util_crc32_update(0, check, 0), 0);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7u + 3u);
    uint32_t whole = util_crc32_update(0, data, sizeof data);
    assert_int_equal(whole, test_crc32(0, data, sizeof data));
    for (size_t cut = 0; cut <= sizeof data; cut += 37)
        assert_int_equal(util_crc32_update(util_crc32_update(0, data, cut), data + cut,
                                           sizeof data - cut),
                         whole);
}

static void test_ascii_case(void **state)
{
    (void)state;
    assert_int_equal(util_ascii_lower('A'), 'a');
    assert_int_equal(util_ascii_lower('Z'), 'z');
    assert_int_equal(util_ascii_lower('@'), '@');               /* 'A' - 1 */
    assert_int_equal(util_ascii_lower('['), '[');               /* 'Z' + 1 */
    assert_int_equal(util_ascii_lower((char)0xC4), (char)0xC4); /* no locale folding */
    assert_true(util_ascii_eq_nocase("Content-Length", "content-LENGTH"));
    assert_true(util_ascii_eq_nocase("", ""));
    assert_false(util_ascii_eq_nocase("Host", "Hos"));
    assert_false(util_ascii_eq_nocase("Hos", "Host"));
    assert_false(util_ascii_eq_nocase("X-a", "X-b"));
    assert_true(util_ascii_eq_nocase_n("CLOSE, x", "close, y", 5));
    assert_false(util_ascii_eq_nocase_n("CLOSE", "clone", 5));
    assert_true(util_ascii_eq_nocase_n("a\0b", "A\0B", 3)); /* NUL is a byte like any */
    assert_true(util_ascii_eq_nocase_n("x", "y", 0));
}

static void test_u64_to_dec(void **state)
{
    char b[UTIL_U64_DEC_MAX + 1];
    (void)state;
    assert_int_equal(util_u64_to_dec(0, b), 1);
    assert_string_equal(b, "0");
    assert_int_equal(util_u64_to_dec(10, b), 2);
    assert_string_equal(b, "10");
    assert_int_equal(util_u64_to_dec(UINT64_MAX, b), 20);
    assert_string_equal(b, "18446744073709551615");
    assert_int_equal(util_u64_to_dec(8999999999999999ull, b), 16);
    assert_string_equal(b, "8999999999999999");
}

static void test_bounded_writer(void **state)
{
    char b[8];
    size_t n;
    util_out_t m = {NULL, 0, 0};
    (void)state;
    util_out_str(&m, "Host: ");
    util_out_put(&m, "abc", 3);
    assert_int_equal(util_out_end(&m), 9); /* measured, nothing written */
    assert_null(util_out_room(&m, &n));
    assert_int_equal(n, 0);
    memset(b, 'x', sizeof b);
    util_out_t o = {b, 4, 0};
    util_out_str(&o, "ab");
    assert_true(util_out_room(&o, &n) == b + 2 && n == 2);
    util_out_str(&o, "cdef"); /* counted whole, written as far as it fits */
    assert_int_equal(util_out_end(&o), 6);
    assert_memory_equal(b, "abcd", 4);
    assert_int_equal(b[4], 'x'); /* nothing past the buffer, no NUL without room */
    util_out_t e = {b, sizeof b, 0};
    util_out_str(&e, "abc");
    assert_int_equal(util_out_end(&e), 3);
    assert_string_equal(b, "abc");
}

static void test_days_from_civil(void **state)
{
    (void)state;
    assert_true(util_days_from_civil(1970, 1, 1) == 0);
    assert_true(util_days_from_civil(1969, 12, 31) == -1);
    assert_true(util_days_from_civil(2000, 2, 29) == 11016); /* a leap day of a 400 year */
    assert_true(util_days_from_civil(2000, 3, 1) == 11017);
    assert_true(util_days_from_civil(1900, 3, 1) - util_days_from_civil(1900, 2, 28) == 1);
    assert_true(util_days_from_civil(2038, 1, 19) == 24855); /* the 32-bit time_t edge */
    assert_true(util_days_from_civil(2026, 11, 29) == 20786);
    assert_true(util_days_from_civil(1600, 1, 1) == -135140);
    /* Consecutive days over four centuries, across every month end. */
    int64_t prev = util_days_from_civil(1899, 12, 31);
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int64_t y = 1900; y < 2300; y++) {
        for (unsigned m = 1; m <= 12; m++) {
            unsigned n = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
            for (unsigned d = 1; d <= n; d++) {
                int64_t v = util_days_from_civil(y, m, d);
                assert_true(v == prev + 1);
                prev = v;
            }
        }
    }
}

static void test_crypto_sha256_and_wipe(void **state)
{
    uint8_t d[CRYPTO_SHA256_LEN];
    /* FIPS 180-2 example: SHA-256("abc"). */
    static const uint8_t abc[CRYPTO_SHA256_LEN] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                                   0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                                   0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                                   0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    char secret[16] = "0123456789abcde";
    (void)state;
    assert_int_equal(crypto_sha256("abc", 3, d), CRYPTO_OK);
    assert_memory_equal(d, abc, sizeof abc);
    assert_int_equal(crypto_sha256(NULL, 0, d), CRYPTO_OK); /* the empty message */
    assert_int_equal(d[0], 0xe3);
    assert_int_equal(crypto_sha256(NULL, 1, d), CRYPTO_ERR_ARG);
    assert_int_equal(crypto_sha256("abc", 3, NULL), CRYPTO_ERR_ARG);
    crypto_wipe(secret, sizeof secret);
    for (size_t i = 0; i < sizeof secret; i++)
        assert_int_equal(secret[i], 0);
    crypto_wipe(NULL, 4); /* no-op */
    assert_string_equal(crypto_status_str(CRYPTO_OK), "ok");
    assert_string_equal(crypto_status_str(CRYPTO_ERR_BACKEND), "crypto backend failure");
    assert_string_equal(crypto_status_str(CRYPTO_ERR_ARG), "bad argument");
    assert_string_equal(crypto_status_str((crypto_status_t)42), "unknown");
}

/* The product's parser (no port, no libc resolver) against glibc's
 * inet_pton, which is the reference for what an IP literal is. */
static size_t ip_reference(const char *s, uint8_t out[16])
{
    if (inet_pton(AF_INET, s, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, out) == 1)
        return 16;
    return 0;
}

static void check_ip(const char *s)
{
    uint8_t got[UTIL_IP_MAX], want[16];
    size_t want_len = ip_reference(s, want);
    size_t got_len = util_ip_parse(s, strlen(s), got);
    if (got_len != want_len)
        fail_msg("\"%s\": util_ip_parse %zu bytes, inet_pton %zu", s, got_len, want_len);
    if (got_len)
        assert_memory_equal(got, want, got_len);
}

static void test_hex_lower(void **state)
{
    static const uint8_t in[] = {0x00, 0x0f, 0xa5, 0xff};
    char out[2 * sizeof in + 1];
    (void)state;
    memset(out, 'x', sizeof out);
    util_hex_lower(in, sizeof in, out);
    assert_string_equal(out, "000fa5ff");
    util_hex_lower(in, 0, out);
    assert_string_equal(out, "");
}

static void test_ip_literals(void **state)
{
    static const char *const cases[] = {"127.0.0.1",
                                        "0.0.0.0",
                                        "255.255.255.255",
                                        "10.0.2.100",
                                        "256.1.1.1",
                                        "1.2.3",
                                        "1.2.3.4.",
                                        "1.2.3.4.5",
                                        ".1.2.3",
                                        "1..2.3",
                                        "01.2.3.4",
                                        "1.2.3.04",
                                        "1.2.3.4a",
                                        "1234.1.1.1",
                                        "cdn.aliyuncs.com",
                                        "localhost",
                                        "::",
                                        "::1",
                                        "1::",
                                        "1:2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7::",
                                        "::2:3:4:5:6:7:8",
                                        "1:2:3:4:5:6:7:8:9",
                                        "1::2::3",
                                        ":::",
                                        "1:",
                                        ":1",
                                        "1:2:3:4:5:6:7",
                                        "12345::",
                                        "fe80::1",
                                        "FE80::ABCD:ef01",
                                        "::ffff:1.2.3.4",
                                        "::ffff:1.2.3",
                                        "1:2:3:4:5:6:1.2.3.4",
                                        "1:2:3:4:5:6:7:1.2.3.4",
                                        "1.2.3.4::",
                                        "::1.2.3.4",
                                        "g::1",
                                        "1::2:",
                                        "",
                                        "1",
                                        ":",
                                        ".",
                                        "0",
                                        "2001:db8::8:800:200c:417a"};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_ip(cases[i]);
    /* Strings from the literals' own alphabet, so most are near misses. */
    srand(18);
    for (int round = 0; round < 200000; round++) {
        static const char alphabet[] = "0123456789aF:.:::..";
        char s[40];
        size_t n = (size_t)(rand() % 39);
        for (size_t i = 0; i < n; i++)
            s[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        s[n] = 0;
        check_ip(s);
    }
    {
        uint8_t out[UTIL_IP_MAX];
        assert_int_equal(util_ip_parse("127.0.0.1junk", 9, out), 4); /* n bytes, not to NUL */
        assert_int_equal(util_ip_parse(NULL, 3, out), 0);
        assert_int_equal(util_ip_parse("::1", 3, NULL), 0);
    }
    /* what a resolver would take for an IPv4 address in another spelling */
    static const char *const numeric[] = {"127.1",    "0177.0.0.1", "2130706433",
                                          "1.2.3.4.", "0x7f.1",     "0X7F000001",
                                          "a.0x",     "cdn.123",    "1.2.3.4"};
    static const char *const names[] = {"cdn.aliyuncs.com", "localhost", "1a.example", "0xg",
                                        "example.com.",     "",          ".",          "x.1a"};
    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++)
        if (!util_host_numeric(numeric[i], strlen(numeric[i])))
            fail_msg("\"%s\" should read as a number", numeric[i]);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (util_host_numeric(names[i], strlen(names[i])))
            fail_msg("\"%s\" should read as a name", names[i]);
    assert_false(util_host_numeric(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_le_fixed_widths),
        cmocka_unit_test(test_le_any_width_round_trips),
        cmocka_unit_test(test_crc32_check_value_and_chaining),
        cmocka_unit_test(test_ascii_case),
        cmocka_unit_test(test_u64_to_dec),
        cmocka_unit_test(test_bounded_writer),
        cmocka_unit_test(test_days_from_civil),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_hex_lower),
        cmocka_unit_test(test_crypto_sha256_and_wipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
