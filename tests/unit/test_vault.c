/* components/vault and the POSIX device key file: secrets at rest. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "port_posix.h"
#include "vault.h"

static const uint8_t KEY[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const char SECRET[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

static void test_round_trip_and_fresh_nonces(void **state)
{
    (void)state;
    uint8_t a[128], b[128];
    char plain[64];
    size_t la, lb, lp;
    assert_int_equal(vault_seal(KEY, 7, "G/ak_secret", SECRET, strlen(SECRET), a, sizeof a, &la),
                     VAULT_OK);
    assert_int_equal(la, strlen(SECRET) + VAULT_OVERHEAD);
    assert_null(memmem(a, la, SECRET, strlen(SECRET))); /* no plaintext in the record */
    assert_null(memmem(a, la, "wJalrX", 6));
    assert_int_equal(vault_seal(KEY, 7, "G/ak_secret", SECRET, strlen(SECRET), b, sizeof b, &lb),
                     VAULT_OK);
    assert_memory_not_equal(a + 8, b + 8, VAULT_NONCE_LEN); /* a nonce per record */
    assert_int_equal(vault_open(KEY, 7, "G/ak_secret", a, la, plain, sizeof plain, &lp), VAULT_OK);
    assert_int_equal(lp, strlen(SECRET));
    assert_memory_equal(plain, SECRET, lp);
    uint32_t id = 0;
    assert_int_equal(vault_key_id(a, la, &id), VAULT_OK);
    assert_int_equal(id, 7);
    assert_int_equal(vault_seal(KEY, 7, "x", SECRET, 10, a, 10 + VAULT_OVERHEAD - 1, &la),
                     VAULT_ERR_ARG);
}

static void test_tamper_every_byte_refused(void **state)
{
    (void)state;
    uint8_t s[128];
    char plain[64];
    size_t ls, lp;
    assert_int_equal(vault_seal(KEY, 1, "K00", SECRET, strlen(SECRET), s, sizeof s, &ls), VAULT_OK);
    for (size_t i = 0; i < ls; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            s[i] ^= (uint8_t)(1u << bit);
            memset(plain, 'Z', sizeof plain);
            int rc = vault_open(KEY, 1, "K00", s, ls, plain, sizeof plain, &lp);
            assert_int_not_equal(rc, VAULT_OK);
            /* nothing decrypted is left behind */
            assert_null(memmem(plain, sizeof plain, "wJalrX", 6));
            s[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* truncated, wrong place (AAD), wrong key, wrong key id */
    assert_int_equal(vault_open(KEY, 1, "K00", s, ls - 1, plain, sizeof plain, &lp), VAULT_ERR_AUTH);
    assert_int_equal(vault_open(KEY, 1, "K00", s, 10, plain, sizeof plain, &lp), VAULT_ERR_FORMAT);
    assert_int_equal(vault_open(KEY, 1, "K01", s, ls, plain, sizeof plain, &lp), VAULT_ERR_AUTH);
    uint8_t other[32];
    memcpy(other, KEY, 32);
    other[31] ^= 1;
    assert_int_equal(vault_open(other, 1, "K00", s, ls, plain, sizeof plain, &lp), VAULT_ERR_AUTH);
    assert_int_equal(vault_open(KEY, 2, "K00", s, ls, plain, sizeof plain, &lp), VAULT_ERR_KEY_ID);
    assert_int_equal(vault_open(KEY, 1, "K00", (const uint8_t *)SECRET, strlen(SECRET), plain,
                                sizeof plain, &lp),
                     VAULT_ERR_FORMAT); /* plaintext is not a sealed record */
}

static void test_device_key_file(void **state)
{
    (void)state;
    char path[] = "/tmp/cdnagent-test-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    uint8_t k1[32], k2[32];
    uint32_t id = 0;
    port_posix_set_device_key_path(NULL);
    assert_int_equal(port_device_key(k1, &id), PORT_ERR_NOT_SET);
    port_posix_set_device_key_path(path);
    assert_int_equal(port_device_key(k1, &id), PORT_ERR_NOT_SET);
    assert_int_equal(port_posix_write_device_key(path, 1), PORT_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(port_device_key(k1, &id), PORT_OK);
    assert_int_equal(id, 1);
    /* rotation: a new random key under a new id */
    assert_int_equal(port_posix_write_device_key(path, 2), PORT_OK);
    assert_int_equal(port_device_key(k2, &id), PORT_OK);
    assert_int_equal(id, 2);
    assert_memory_not_equal(k1, k2, 32);
    /* a key readable by others is refused */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(port_device_key(k2, &id), PORT_ERR_IO);
    assert_int_equal(chmod(path, 0600), 0);
    /* garbage in the file is refused */
    FILE *f = fopen(path, "w");
    fputs("cdnagent-device-key v1 3 nothex\n", f);
    fclose(f);
    assert_int_equal(port_device_key(k2, &id), PORT_ERR_IO);
    unlink(path);
    port_posix_set_device_key_path(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_fresh_nonces),
        cmocka_unit_test(test_tamper_every_byte_refused),
        cmocka_unit_test(test_device_key_file),
    };
    return cmocka_run_group_tests_name("vault", tests, NULL, NULL);
}
