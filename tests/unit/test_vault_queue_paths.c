/* test_vault_queue_paths.c — the paths of components/vault, components/queue
 * and components/retry that test_vault.c, test_queue_agent.c and
 * test_retry.c leave alone.
 *
 * vault: every argument check, every way a record can fail to be one
 * (magic, version, algorithm, every truncation, an extra byte), the empty
 * secret, and the crypto failures: no entropy for the nonce, and mbedTLS's
 * GCM failing before or after it wrote — a failed seal leaves no ciphertext
 * in the output, a failed open no plaintext.
 *
 * queue: every state name, target-name limits on every entry point,
 * entries that are not queue entries (each decode rule) skipped by the walk
 * and refused by queue_get, the walk stopped by its visitor, next_due's
 * ordering and wait arithmetic (NULL wait, several backoffs, the
 * UINT32_MAX-1 clamp), failure bookkeeping (NULL and over-long Code/Message,
 * the attempts counter saturating), and the store failing underneath
 * (emu_flash read errors at every read of a walk, a record damaged on flash,
 * a program error during a put): errors surface, never an empty queue.
 *
 * retry: backoff with a zero cap and a base above the cap, the jitter
 * bounds, the one-hour clamp of the bucket refill, and the rate step for a
 * configured rate below 8 milli-calls/s.
 *
 * Fault injection: this file defines getrandom() (port_random's source in
 * port/posix) and the three mbedtls_gcm_* calls vault.c makes; both pass
 * through to the real ones unless a test arms a failure. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/gcm.h>

#include "emu_flash.h"
#include "queue.h"
#include "retry.h"
#include "store.h"
#include "vault.h"
#include "test_interpose.h"

/* ------------------------------------------------------------------ faults */

static int random_errno; /* non-zero: getrandom fails with it */

ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    if (random_errno) {
        errno = random_errno;
        return -1;
    }
    return (ssize_t)syscall(SYS_getrandom, buf, len, flags);
}

typedef enum { GCM_NONE, GCM_SETKEY, GCM_CRYPT, GCM_DECRYPT } gcm_fn_t;
static gcm_fn_t gcm_fail_fn; /* which call fails */
static bool gcm_fail_after;  /* run the real call first, then report failure */
static int gcm_fail_rc;      /* the error it reports */

static void gcm_arm(gcm_fn_t fn, bool after, int rc)
{
    gcm_fail_fn = fn;
    gcm_fail_after = after;
    gcm_fail_rc = rc;
}

int mbedtls_gcm_setkey(mbedtls_gcm_context *ctx, mbedtls_cipher_id_t cipher,
                       const unsigned char *key, unsigned int keybits)
{
    static int (*real)(mbedtls_gcm_context *, mbedtls_cipher_id_t, const unsigned char *,
                       unsigned int);
    REAL(real, "mbedtls_gcm_setkey");
    if (gcm_fail_fn == GCM_SETKEY && !gcm_fail_after)
        return gcm_fail_rc;
    int rc = real(ctx, cipher, key, keybits);
    return gcm_fail_fn == GCM_SETKEY ? gcm_fail_rc : rc;
}

int mbedtls_gcm_crypt_and_tag(mbedtls_gcm_context *ctx, int mode, size_t length,
                              const unsigned char *iv, size_t iv_len, const unsigned char *add,
                              size_t add_len, const unsigned char *input, unsigned char *output,
                              size_t tag_len, unsigned char *tag)
{
    static int (*real)(mbedtls_gcm_context *, int, size_t, const unsigned char *, size_t,
                       const unsigned char *, size_t, const unsigned char *, unsigned char *,
                       size_t, unsigned char *);
    REAL(real, "mbedtls_gcm_crypt_and_tag");
    if (gcm_fail_fn == GCM_CRYPT && !gcm_fail_after)
        return gcm_fail_rc;
    int rc = real(ctx, mode, length, iv, iv_len, add, add_len, input, output, tag_len, tag);
    return gcm_fail_fn == GCM_CRYPT ? gcm_fail_rc : rc;
}

int mbedtls_gcm_auth_decrypt(mbedtls_gcm_context *ctx, size_t length, const unsigned char *iv,
                             size_t iv_len, const unsigned char *add, size_t add_len,
                             const unsigned char *tag, size_t tag_len, const unsigned char *input,
                             unsigned char *output)
{
    static int (*real)(mbedtls_gcm_context *, size_t, const unsigned char *, size_t,
                       const unsigned char *, size_t, const unsigned char *, size_t,
                       const unsigned char *, unsigned char *);
    REAL(real, "mbedtls_gcm_auth_decrypt");
    if (gcm_fail_fn == GCM_DECRYPT && !gcm_fail_after)
        return gcm_fail_rc;
    int rc = real(ctx, length, iv, iv_len, add, add_len, tag, tag_len, input, output);
    return gcm_fail_fn == GCM_DECRYPT ? gcm_fail_rc : rc;
}

static int teardown(void **state)
{
    (void)state;
    random_errno = 0;
    gcm_arm(GCM_NONE, false, 0);
    return 0;
}

/* ------------------------------------------------------------------ vault */

static const uint8_t KEY[VAULT_KEY_LEN] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
                                           0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
                                           0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
                                           0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f};
static const char SECRET[] = "LTAI-paths-secret-0123456789abcdef";
#define SECRET_LEN (sizeof SECRET - 1)

static bool all_bytes(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return false;
    return true;
}

static void test_vault_status_strings(void **state)
{
    (void)state;
    assert_string_equal(vault_status_str(VAULT_OK), "ok");
    assert_string_equal(vault_status_str(VAULT_ERR_ARG), "bad argument");
    assert_string_equal(vault_status_str(VAULT_ERR_FORMAT), "not a sealed record");
    assert_string_equal(vault_status_str(VAULT_ERR_KEY_ID), "sealed under another device key");
    assert_string_equal(vault_status_str(VAULT_ERR_AUTH),
                        "authentication failed (tampered, or wrong device key)");
    assert_string_equal(vault_status_str(VAULT_ERR_CRYPTO), "crypto failure");
    assert_string_equal(vault_status_str(-42), "unknown");
    assert_string_equal(vault_status_str(1), "unknown");
}

static void test_vault_seal_arguments(void **state)
{
    uint8_t out[128];
    size_t ol = 777;
    (void)state;
    memset(out, 0xa5, sizeof out);
    assert_int_equal(vault_seal(NULL, 1, "K", SECRET, SECRET_LEN, out, sizeof out, &ol),
                     VAULT_ERR_ARG);
    assert_int_equal(vault_seal(KEY, 1, NULL, SECRET, SECRET_LEN, out, sizeof out, &ol),
                     VAULT_ERR_ARG);
    assert_int_equal(vault_seal(KEY, 1, "K", NULL, SECRET_LEN, out, sizeof out, &ol), VAULT_ERR_ARG);
    assert_int_equal(vault_seal(KEY, 1, "K", SECRET, SECRET_LEN, NULL, sizeof out, &ol),
                     VAULT_ERR_ARG);
    assert_int_equal(vault_seal(KEY, 1, "K", SECRET, SECRET_LEN, out, sizeof out, NULL),
                     VAULT_ERR_ARG);
    assert_int_equal(vault_seal(KEY, 1, "K", SECRET, SECRET_LEN, out,
                                SECRET_LEN + VAULT_OVERHEAD - 1, &ol),
                     VAULT_ERR_ARG);
    /* refused before anything was written */
    assert_true(all_bytes(out, sizeof out, 0xa5));
    assert_int_equal(ol, 777);
    /* exactly len + overhead is enough */
    assert_int_equal(vault_seal(KEY, 1, "K", SECRET, SECRET_LEN, out, SECRET_LEN + VAULT_OVERHEAD,
                                &ol),
                     VAULT_OK);
    assert_int_equal(ol, SECRET_LEN + VAULT_OVERHEAD);
    assert_true(all_bytes(out + ol, sizeof out - ol, 0xa5));
}

static void test_vault_open_arguments(void **state)
{
    uint8_t s[128];
    char plain[64];
    size_t ls = 0, lp = 777;
    (void)state;
    assert_int_equal(vault_seal(KEY, 3, "Gaks", SECRET, SECRET_LEN, s, sizeof s, &ls), VAULT_OK);
    memset(plain, 'Z', sizeof plain);
    assert_int_equal(vault_open(NULL, 3, "Gaks", s, ls, plain, sizeof plain, &lp), VAULT_ERR_ARG);
    assert_int_equal(vault_open(KEY, 3, NULL, s, ls, plain, sizeof plain, &lp), VAULT_ERR_ARG);
    assert_int_equal(vault_open(KEY, 3, "Gaks", s, ls, plain, sizeof plain, NULL), VAULT_ERR_ARG);
    assert_int_equal(vault_open(KEY, 3, "Gaks", NULL, ls, plain, sizeof plain, &lp),
                     VAULT_ERR_FORMAT);
    /* the plaintext would not fit, or there is nowhere to put it */
    assert_int_equal(vault_open(KEY, 3, "Gaks", s, ls, plain, SECRET_LEN - 1, &lp), VAULT_ERR_ARG);
    assert_int_equal(vault_open(KEY, 3, "Gaks", s, ls, NULL, sizeof plain, &lp), VAULT_ERR_ARG);
    assert_true(all_bytes(plain, sizeof plain, 'Z'));
    assert_int_equal(lp, 777);
    /* an exact fit opens */
    assert_int_equal(vault_open(KEY, 3, "Gaks", s, ls, plain, SECRET_LEN, &lp), VAULT_OK);
    assert_int_equal(lp, SECRET_LEN);
    assert_memory_equal(plain, SECRET, SECRET_LEN);
}

/* Header checks byte by byte, every truncation and an extra byte. */
static void test_vault_not_a_record(void **state)
{
    uint8_t s[128], t[129];
    char plain[64];
    size_t ls = 0, lp = 777;
    uint32_t id = 99;
    (void)state;
    assert_int_equal(vault_seal(KEY, 0xA1B2C3D4u, "K07", SECRET, SECRET_LEN, s, sizeof s, &ls),
                     VAULT_OK);
    assert_int_equal(vault_key_id(s, ls, NULL), VAULT_OK); /* key_id optional */
    assert_int_equal(vault_key_id(s, ls, &id), VAULT_OK);
    assert_int_equal(id, 0xA1B2C3D4u);
    /* little-endian on the wire */
    assert_int_equal(s[4], 0xD4);
    assert_int_equal(s[7], 0xA1);
    assert_int_equal(vault_key_id(NULL, ls, &id), VAULT_ERR_FORMAT);
    for (int i = 0; i < 4; i++) { /* 'V' 'S' version algorithm */
        s[i] ^= 0x40;
        id = 99;
        assert_int_equal(vault_key_id(s, ls, &id), VAULT_ERR_FORMAT);
        assert_int_equal(id, 99);
        memset(plain, 'Z', sizeof plain);
        assert_int_equal(vault_open(KEY, 0xA1B2C3D4u, "K07", s, ls, plain, sizeof plain, &lp),
                         VAULT_ERR_FORMAT);
        assert_true(all_bytes(plain, sizeof plain, 'Z'));
        s[i] ^= 0x40;
    }
    /* every truncation: too short for a record, or failing authentication */
    for (size_t n = 0; n < ls; n++) {
        memset(plain, 'Z', sizeof plain);
        int rc = vault_open(KEY, 0xA1B2C3D4u, "K07", s, n, plain, sizeof plain, &lp);
        assert_int_equal(rc, n < VAULT_OVERHEAD ? VAULT_ERR_FORMAT : VAULT_ERR_AUTH);
        assert_null(memmem(plain, sizeof plain, "LTAI", 4));
        assert_int_equal(vault_key_id(s, n, NULL), n < VAULT_OVERHEAD ? VAULT_ERR_FORMAT : VAULT_OK);
    }
    assert_int_equal(lp, 777);
    /* a byte appended */
    memcpy(t, s, ls);
    t[ls] = 0;
    memset(plain, 'Z', sizeof plain);
    assert_int_equal(vault_open(KEY, 0xA1B2C3D4u, "K07", t, ls + 1, plain, sizeof plain, &lp),
                     VAULT_ERR_AUTH);
    assert_null(memmem(plain, sizeof plain, "LTAI", 4));
}

/* An empty secret seals to a bare header and tag, which still authenticates
 * the key, the key id and the store key. */
static void test_vault_empty_secret(void **state)
{
    uint8_t s[VAULT_OVERHEAD];
    size_t ls = 0, lp = 777;
    (void)state;
    assert_int_equal(vault_seal(KEY, 5, "Gsts", NULL, 0, s, sizeof s, &ls), VAULT_OK);
    assert_int_equal(ls, VAULT_OVERHEAD);
    assert_int_equal(vault_open(KEY, 5, "Gsts", s, ls, NULL, 0, &lp), VAULT_OK);
    assert_int_equal(lp, 0);
    lp = 777;
    assert_int_equal(vault_open(KEY, 5, "Gaks", s, ls, NULL, 0, &lp), VAULT_ERR_AUTH);
    assert_int_equal(vault_open(KEY, 6, "Gsts", s, ls, NULL, 0, &lp), VAULT_ERR_KEY_ID);
    s[ls - 1] ^= 1;
    assert_int_equal(vault_open(KEY, 5, "Gsts", s, ls, NULL, 0, &lp), VAULT_ERR_AUTH);
    assert_int_equal(lp, 777);
}

/* No entropy: no record, never a fallback nonce. */
static void test_vault_no_entropy(void **state)
{
    uint8_t s[128];
    size_t ls = 777;
    const int errs[] = {EIO, ENOSYS};
    (void)state;
    for (int k = 0; k < 2; k++) {
        random_errno = errs[k];
        assert_int_equal(vault_seal(KEY, 1, "Gaks", SECRET, SECRET_LEN, s, sizeof s, &ls),
                         VAULT_ERR_CRYPTO);
        assert_int_equal(ls, 777);
        assert_null(memmem(s, sizeof s, "LTAI", 4));
    }
    random_errno = 0;
    assert_int_equal(vault_seal(KEY, 1, "Gaks", SECRET, SECRET_LEN, s, sizeof s, &ls), VAULT_OK);
}

/* mbedTLS failing: a failed seal wipes the whole output buffer (even
 * ciphertext it already wrote), a failed open wipes the plaintext buffer
 * (even plaintext it already wrote) and reports VAULT_ERR_CRYPTO, which is
 * not the tampering answer VAULT_ERR_AUTH. */
static void test_vault_gcm_failures(void **state)
{
    uint8_t good[128], s[128];
    char plain[64];
    size_t lg = 0, ls = 777, lp = 777;
    (void)state;
    assert_int_equal(vault_seal(KEY, 2, "K01", SECRET, SECRET_LEN, good, sizeof good, &lg),
                     VAULT_OK);

    const gcm_fn_t seal_fns[] = {GCM_SETKEY, GCM_CRYPT};
    for (int f = 0; f < 2; f++) {
        for (int after = 0; after < 2; after++) {
            gcm_arm(seal_fns[f], after, MBEDTLS_ERR_GCM_BAD_INPUT);
            memset(s, 0xa5, sizeof s);
            ls = 777;
            assert_int_equal(vault_seal(KEY, 2, "K01", SECRET, SECRET_LEN, s, sizeof s, &ls),
                             VAULT_ERR_CRYPTO);
            assert_int_equal(ls, 777);
            assert_true(all_bytes(s, sizeof s, 0)); /* header, nonce, ciphertext: all wiped */
        }
    }
    gcm_arm(GCM_NONE, false, 0);

    const gcm_fn_t open_fns[] = {GCM_SETKEY, GCM_DECRYPT};
    for (int f = 0; f < 2; f++) {
        for (int after = 0; after < 2; after++) {
            gcm_arm(open_fns[f], after, MBEDTLS_ERR_GCM_BAD_INPUT);
            memset(plain, 'Z', sizeof plain);
            lp = 777;
            assert_int_equal(vault_open(KEY, 2, "K01", good, lg, plain, sizeof plain, &lp),
                             VAULT_ERR_CRYPTO);
            assert_int_equal(lp, 777);
            assert_true(all_bytes(plain, SECRET_LEN, 0)); /* what it could write: wiped */
            assert_true(all_bytes(plain + SECRET_LEN, sizeof plain - SECRET_LEN, 'Z'));
        }
    }
    /* the auth-failure code keeps its meaning even when it comes late */
    gcm_arm(GCM_DECRYPT, true, MBEDTLS_ERR_GCM_AUTH_FAILED);
    memset(plain, 'Z', sizeof plain);
    assert_int_equal(vault_open(KEY, 2, "K01", good, lg, plain, sizeof plain, &lp), VAULT_ERR_AUTH);
    assert_true(all_bytes(plain, SECRET_LEN, 0));
    gcm_arm(GCM_NONE, false, 0);
    assert_int_equal(vault_open(KEY, 2, "K01", good, lg, plain, sizeof plain, &lp), VAULT_OK);
    assert_memory_equal(plain, SECRET, SECRET_LEN);
}

/* ------------------------------------------------------------------ queue */

#define SECTORS 16u

typedef struct {
    emu_flash_t emu;
    store_t st;
    uint8_t *work;
} fx_t;

static void fx_init(fx_t *f)
{
    assert_int_equal(emu_flash_init(&f->emu, 4096, SECTORS, 8), 0);
    f->work = malloc(STORE_WORK_SIZE(SECTORS));
    assert_non_null(f->work);
    assert_int_equal(store_mount(&f->st, &f->emu.dev, f->work, STORE_WORK_SIZE(SECTORS),
                                 STORE_MOUNT_FORMAT_IF_EMPTY, NULL),
                     STORE_OK);
}

static void fx_free(fx_t *f)
{
    emu_flash_free(&f->emu);
    free(f->work);
}

static void enqueue(store_t *st, const char *t, uint32_t seq)
{
    assert_int_equal(store_txn_begin(st), STORE_OK);
    assert_int_equal(queue_txn_enqueue(st, t, seq), STORE_OK);
    assert_int_equal(store_txn_commit(st), STORE_OK);
}

static queue_entry_t entry(const char *target, uint32_t seq, uint8_t state, uint64_t next)
{
    queue_entry_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.target, sizeof e.target, "%s", target);
    e.seq = seq;
    e.state = state;
    e.next_try_ms = next;
    return e;
}

static void test_queue_names(void **state)
{
    queue_policy_t p;
    (void)state;
    assert_string_equal(queue_state_str(QUEUE_PENDING), "pending");
    assert_string_equal(queue_state_str(QUEUE_IN_FLIGHT), "in-flight");
    assert_string_equal(queue_state_str(QUEUE_BACKOFF), "backing-off");
    assert_string_equal(queue_state_str(QUEUE_FAILED), "failed");
    assert_string_equal(queue_state_str(QUEUE_DEAD), "dead");
    assert_string_equal(queue_state_str(QUEUE_BLOCKED), "blocked");
    assert_string_equal(queue_state_str(6), "unknown");
    assert_string_equal(queue_state_str(-1), "unknown");
    memset(&p, 0xff, sizeof p);
    queue_policy_default(&p);
    assert_int_equal(p.base_ms, 1000);
    assert_int_equal(p.cap_ms, 300000);
    assert_int_equal(p.warn_every, QUEUE_DEFAULT_WARN_EVERY);
}

/* Target names: 1..16 bytes on every entry point; nothing is stored for a
 * refused one. */
static void test_queue_target_limits(void **state)
{
    fx_t f;
    queue_entry_t e, g;
    unsigned n = 99;
    static const char t16[] = "H0123456789abcde";  /* 16 bytes */
    static const char t17[] = "H0123456789abcdef"; /* 17 bytes */
    (void)state;
    fx_init(&f);
    assert_int_equal(queue_get(&f.st, "", &e), STORE_ERR_ARG);
    assert_int_equal(queue_get(&f.st, t17, &e), STORE_ERR_ARG);
    g = entry("", 1, QUEUE_PENDING, 0);
    assert_int_equal(queue_put(&f.st, &g), STORE_ERR_ARG);
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    assert_int_equal(queue_txn_enqueue(&f.st, t17, 1), STORE_ERR_ARG);
    assert_int_equal(queue_txn_enqueue(&f.st, "", 1), STORE_ERR_ARG);
    assert_int_equal(queue_txn_remove(&f.st, t17), STORE_ERR_ARG);
    assert_int_equal(queue_txn_remove(&f.st, ""), STORE_ERR_ARG);
    assert_int_equal(queue_txn_put(&f.st, &g), STORE_ERR_ARG);
    assert_int_equal(store_txn_abort(&f.st), STORE_OK);
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 0);

    /* 16 bytes work everywhere */
    enqueue(&f.st, t16, 9);
    assert_int_equal(queue_get(&f.st, t16, &e), STORE_OK);
    assert_string_equal(e.target, t16);
    assert_int_equal(e.seq, 9);
    assert_int_equal(e.state, QUEUE_PENDING);
    e.state = QUEUE_IN_FLIGHT;
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    assert_int_equal(queue_txn_put(&f.st, &e), STORE_OK);
    assert_int_equal(store_txn_commit(&f.st), STORE_OK);
    assert_int_equal(queue_get(&f.st, t16, &e), STORE_OK);
    assert_int_equal(e.state, QUEUE_IN_FLIGHT);
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    assert_int_equal(queue_txn_remove(&f.st, t16), STORE_OK);
    assert_int_equal(store_txn_commit(&f.st), STORE_OK);
    assert_int_equal(queue_get(&f.st, t16, &e), STORE_NOT_FOUND);
    fx_free(&f);
}

/* Values under 'Q' keys that are not queue entries: queue_get says
 * CORRUPT (or TOO_BIG), the walk skips them, and they never become due. */
static void test_queue_damaged_values(void **state)
{
    fx_t f;
    queue_entry_t e;
    uint32_t wait = 0, seq = 0;
    unsigned n = 0;
    uint8_t v[300];
    (void)state;
    fx_init(&f);

    /* a valid base value: version 1, pending, seq 50, no Code, no Message */
    uint8_t ok[18] = {1, QUEUE_PENDING, 0, 0, 50, 0, 0, 0};
    struct {
        const char *target;
        size_t len;
        uint8_t patch_at, patch;
    } bad[] = {
        {"Dshort", 17, 0, 1},                 /* shorter than the fixed part */
        {"Dversion", 18, 0, 2},               /* unknown version */
        {"Dstate", 18, 1, QUEUE_BLOCKED + 1}, /* unknown state */
        {"Dcodelen", 18, 16, QUEUE_CODE_MAX + 1},
        {"Dcodeover", 18, 16, 1}, /* Code runs into the Message length */
        {"Dmsglen", 18, 17, QUEUE_MESSAGE_MAX + 1},
        {"Dtrail", 19, 0, 1},     /* a byte after the Message */
        {"Dmsgshort", 18, 17, 1}, /* Message longer than what is there */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char key[32];
        size_t kl = (size_t)snprintf(key, sizeof key, "Q%s", bad[i].target);
        memset(v, 0, sizeof v);
        memcpy(v, ok, sizeof ok);
        v[bad[i].patch_at] = bad[i].patch;
        assert_int_equal(store_put(&f.st, key, kl, v, bad[i].len), STORE_OK);
        assert_int_equal(queue_get(&f.st, bad[i].target, &e), STORE_ERR_CORRUPT);
    }
    /* keys queue_get cannot even name: "Q" alone, and a 17-byte target */
    memcpy(v, ok, sizeof ok);
    assert_int_equal(store_put(&f.st, "Q", 1, v, sizeof ok), STORE_OK);
    assert_int_equal(store_put(&f.st, "QH0123456789abcdef", 18, v, sizeof ok), STORE_OK);
    /* larger than any entry can be */
    memset(v, 0, sizeof v);
    memcpy(v, ok, sizeof ok);
    assert_int_equal(store_put(&f.st, "Qhuge", 5, v, 243), STORE_OK);
    assert_int_equal(queue_get(&f.st, "huge", &e), STORE_ERR_TOO_BIG);

    /* none of it is an entry */
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX);
    assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
    assert_int_equal(seq, 1);

    /* the same bytes with the right lengths are one */
    assert_int_equal(store_put(&f.st, "QHok", 4, ok, sizeof ok), STORE_OK);
    assert_int_equal(queue_get(&f.st, "Hok", &e), STORE_OK);
    assert_int_equal(e.seq, 50);
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hok");
    assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
    assert_int_equal(seq, 51);
    /* inside a transaction: its id, above every stored seq, and no read */
    {
        uint32_t id = 0;
        uint64_t reads;
        assert_int_equal(store_txn_current(&f.st, &id), STORE_ERR_TXN);
        assert_int_equal(store_txn_current(NULL, &id), STORE_ERR_ARG);
        assert_int_equal(store_txn_current(&f.st, NULL), STORE_ERR_ARG);
        assert_int_equal(store_txn_begin(&f.st), STORE_OK);
        assert_int_equal(store_txn_current(&f.st, &id), STORE_OK);
        reads = f.emu.reads;
        assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
        assert_int_equal(f.emu.reads, reads);
        assert_int_equal(seq, id);
        /* (the 50 above was written by hand; seqs the queue hands out
         * come from earlier transactions, so they stay below it) */
        assert_int_equal(store_txn_abort(&f.st), STORE_OK);
    }
    /* a full-size entry (64-byte Code, 160-byte Message) round-trips */
    {
        queue_entry_t big = entry("Hbig", 7, QUEUE_FAILED, 0), back;
        memset(big.code, 'C', QUEUE_CODE_MAX);
        memset(big.message, 'M', QUEUE_MESSAGE_MAX);
        assert_int_equal(queue_put(&f.st, &big), STORE_OK);
        assert_int_equal(queue_get(&f.st, "Hbig", &back), STORE_OK);
        assert_string_equal(back.target, "Hbig");
        assert_int_equal(back.seq, 7);
        assert_int_equal(back.state, QUEUE_FAILED);
        assert_string_equal(back.code, big.code);
        assert_string_equal(back.message, big.message);
        assert_int_equal(strlen(back.message), QUEUE_MESSAGE_MAX);
    }
    fx_free(&f);
}

typedef struct {
    int seen;
    int stop_after;
} walk_t;

static bool walk_cb(void *arg, const queue_entry_t *e)
{
    walk_t *w = arg;
    (void)e;
    return ++w->seen < w->stop_after;
}

/* next_due: lowest seq among the due, several backoffs (the earliest one
 * wins the wait), NULL wait, and the clamp that keeps a real wait distinct
 * from "never" (UINT32_MAX). The walk stops when the visitor says so. */
static void test_queue_due_order_and_waits(void **state)
{
    fx_t f;
    queue_entry_t e;
    uint32_t wait = 0;
    walk_t w = {0, 2};
    (void)state;
    fx_init(&f);
    /* backoffs due at 900, 500, 700; seqs descending as they are written */
    queue_entry_t b1 = entry("Hb1", 30, QUEUE_BACKOFF, 900);
    queue_entry_t b2 = entry("Hb2", 20, QUEUE_BACKOFF, 500);
    queue_entry_t b3 = entry("Hb3", 10, QUEUE_BACKOFF, 700);
    assert_int_equal(queue_put(&f.st, &b1), STORE_OK);
    assert_int_equal(queue_put(&f.st, &b2), STORE_OK);
    assert_int_equal(queue_put(&f.st, &b3), STORE_OK);
    {
        /* the highest seq wherever it sits in the walk */
        uint32_t seq = 0;
        assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
        assert_int_equal(seq, 31);
    }
    assert_int_equal(queue_next_due(&f.st, 100, 1000, 1, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, 400);
    assert_int_equal(queue_next_due(&f.st, 100, 1000, 1, &e, NULL), STORE_NOT_FOUND);
    /* at 800 two are due: the lower seq (b3, seq 10) first */
    assert_int_equal(queue_next_due(&f.st, 800, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hb3");
    assert_int_equal(wait, 0);
    memset(&e, 0, sizeof e);
    assert_int_equal(queue_next_due(&f.st, 800, 1000, 1, &e, NULL), STORE_OK);
    assert_string_equal(e.target, "Hb3");
    /* a pending entry with a higher seq does not jump the queue; an
     * in-flight one (crash mid-request) with a lower seq does */
    queue_entry_t pend = entry("Hp", 40, QUEUE_PENDING, 0);
    queue_entry_t fly = entry("Hf", 5, QUEUE_IN_FLIGHT, 0);
    assert_int_equal(queue_put(&f.st, &pend), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 800, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hb3");
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hp");
    assert_int_equal(queue_put(&f.st, &fly), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 800, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hf");
    assert_int_equal(e.state, QUEUE_IN_FLIGHT);

    /* the walk stops when asked */
    assert_int_equal(queue_foreach(&f.st, walk_cb, &w), STORE_OK);
    assert_int_equal(w.seen, 2);

    /* only failed and blocked-under-this-epoch left: "never" */
    fx_free(&f);
    fx_init(&f);
    queue_entry_t failed = entry("Hx", 1, QUEUE_FAILED, 0);
    queue_entry_t blocked = entry("Hy", 2, QUEUE_BLOCKED, 4);
    assert_int_equal(queue_put(&f.st, &failed), STORE_OK);
    assert_int_equal(queue_put(&f.st, &blocked), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 4, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 5, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hy");

    /* a wait of UINT32_MAX ms or more is reported as UINT32_MAX - 1: due
     * some day, unlike "never" */
    queue_entry_t far = entry("Hz", 3, QUEUE_BACKOFF, UINT64_MAX / 2);
    assert_int_equal(queue_put(&f.st, &far), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 1000, UINT32_MAX, 4, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX - 1u);
    far.next_try_ms = 1000 + (uint64_t)UINT32_MAX - 1u;
    assert_int_equal(queue_put(&f.st, &far), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 1000, UINT32_MAX, 4, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX - 1u);
    far.next_try_ms = 1000 + (uint64_t)UINT32_MAX - 2u;
    assert_int_equal(queue_put(&f.st, &far), STORE_OK);
    assert_int_equal(queue_next_due(&f.st, 1000, UINT32_MAX, 4, &e, &wait), STORE_NOT_FOUND);
    assert_int_equal(wait, UINT32_MAX - 2u);
    fx_free(&f);
}

/* Failure bookkeeping: NULL and over-long Code/Message, the attempts
 * counter saturating, and the backoff staying inside [now, now + cap]. */
static void test_queue_record_failure_edges(void **state)
{
    queue_policy_t p = {1000, 300000, 20};
    queue_entry_t e = entry("Hq", 1, QUEUE_IN_FLIGHT, 0);
    char longcode[100], longmsg[300];
    (void)state;
    memset(longcode, 'c', sizeof longcode - 1);
    longcode[sizeof longcode - 1] = '\0';
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';

    queue_record_failure(&e, QUEUE_FAIL_RETRY, longcode, longmsg, 10000, &p, UINT32_MAX, 1);
    assert_int_equal(strlen(e.code), QUEUE_CODE_MAX);
    assert_int_equal(strlen(e.message), QUEUE_MESSAGE_MAX);
    assert_memory_equal(e.code, longcode, QUEUE_CODE_MAX);
    assert_int_equal(e.attempts, 1);
    assert_int_equal(e.next_try_ms, 11000); /* full ceiling at the first retry */
    queue_record_failure(&e, QUEUE_FAIL_RETRY, NULL, NULL, 10000, &p, 0, 1);
    assert_string_equal(e.code, "");
    assert_string_equal(e.message, "");
    assert_int_equal(e.next_try_ms, 10000); /* jitter may pick zero */
    assert_int_equal(e.state, QUEUE_BACKOFF);

    /* near and at the saturation of attempts: the delay stays at the cap */
    e.attempts = UINT16_MAX - 1u;
    queue_record_failure(&e, QUEUE_FAIL_RETRY, "Throttling", "slow down", 5, &p, UINT32_MAX, 1);
    assert_int_equal(e.attempts, UINT16_MAX);
    assert_int_equal(e.next_try_ms, 5 + 300000);
    queue_record_failure(&e, QUEUE_FAIL_RETRY, "Throttling", "slow down", 5, &p, UINT32_MAX, 1);
    assert_int_equal(e.attempts, UINT16_MAX);
    assert_int_equal(e.next_try_ms, 5 + 300000);
    queue_record_failure(&e, QUEUE_FAIL_RETRY, "Throttling", "", 5, &p, UINT32_MAX / 2u, 1);
    assert_true(e.next_try_ms >= 5 + 149000 && e.next_try_ms <= 5 + 151000);
    /* a permanent failure clears the time; a blocked one keeps the epoch */
    queue_record_failure(&e, QUEUE_FAIL_PERMANENT, "InvalidDomain", "no", 5, &p, 0, 1);
    assert_int_equal(e.state, QUEUE_FAILED);
    assert_int_equal(e.next_try_ms, 0);
    assert_int_equal(e.attempts, UINT16_MAX);
    queue_record_failure(&e, QUEUE_FAIL_BLOCKED, "Forbidden", "ram", 5, &p, 0, 0xfeedu);
    assert_int_equal(e.state, QUEUE_BLOCKED);
    assert_int_equal(e.epoch, 0xfeedu);
    queue_entry_reset(&e);
    assert_int_equal(e.state, QUEUE_PENDING);
    assert_int_equal(e.attempts, 0);
    assert_int_equal(e.next_try_ms, 0);
    assert_string_equal(e.message, "");
    assert_string_equal(e.target, "Hq");
    assert_int_equal(e.seq, 1);
}

/* A read error anywhere in a walk is an error (STORE_ERR_IO), never a
 * shorter queue or "nothing due", whether it hits the scan or the read of
 * one entry. */
static void test_queue_read_errors(void **state)
{
    fx_t f;
    queue_entry_t e;
    uint32_t wait = 0, seq = 0;
    unsigned n = 0;
    (void)state;
    fx_init(&f);
    enqueue(&f.st, "Ha", 1);
    enqueue(&f.st, "Hb", 2);
    queue_entry_t b = entry("Hc", 3, QUEUE_BACKOFF, 5000);
    assert_int_equal(queue_put(&f.st, &b), STORE_OK);

    uint64_t r0 = f.emu.reads;
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 3);
    uint64_t reads = f.emu.reads - r0;
    assert_true(reads > 3);
    for (uint64_t k = 0; k < reads; k++) {
        emu_flash_fault_arm(&f.emu, EMU_FAULT_READ_ERROR, k, 0);
        assert_int_equal(queue_count(&f.st, &n), STORE_ERR_IO);
        assert_true(f.emu.fault_fired);
        emu_flash_fault_arm(&f.emu, EMU_FAULT_READ_ERROR, k, 0);
        assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_ERR_IO);
        emu_flash_fault_arm(&f.emu, EMU_FAULT_READ_ERROR, k, 0);
        assert_int_equal(queue_next_seq(&f.st, &seq), STORE_ERR_IO);
    }
    emu_flash_fault_clear(&f.emu);
    /* one entry's read */
    r0 = f.emu.reads;
    assert_int_equal(queue_get(&f.st, "Hb", &e), STORE_OK);
    reads = f.emu.reads - r0;
    for (uint64_t k = 0; k < reads; k++) {
        emu_flash_fault_arm(&f.emu, EMU_FAULT_READ_ERROR, k, 0);
        assert_int_equal(queue_get(&f.st, "Hb", &e), STORE_ERR_IO);
    }
    emu_flash_fault_clear(&f.emu);
    /* the device is fine again */
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(queue_next_seq(&f.st, &seq), STORE_OK);
    assert_int_equal(seq, 4);
    fx_free(&f);
}

/* A record damaged on flash (CRC) is skipped by the walk and reported by
 * queue_get; the others are still served. */
static void test_queue_damaged_record(void **state)
{
    fx_t f;
    queue_entry_t e;
    uint32_t wait = 0;
    unsigned n = 0;
    static const char marker[] = "damage-me-here";
    (void)state;
    fx_init(&f);
    queue_entry_t d = entry("Hd", 1, QUEUE_PENDING, 0);
    snprintf(d.message, sizeof d.message, "%s", marker);
    assert_int_equal(queue_put(&f.st, &d), STORE_OK);
    enqueue(&f.st, "Hok", 2);
    uint8_t *hit = memmem(f.emu.mem, (size_t)4096 * SECTORS, marker, sizeof marker - 1);
    assert_non_null(hit);
    assert_null(
        memmem(hit + 1, (size_t)(f.emu.mem + 4096 * SECTORS - hit - 1), marker, sizeof marker - 1));
    hit[3] ^= 0x01;
    assert_int_equal(queue_get(&f.st, "Hd", &e), STORE_ERR_CORRUPT);
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(queue_next_due(&f.st, 0, 1000, 1, &e, &wait), STORE_OK);
    assert_string_equal(e.target, "Hok"); /* Hd had the lower seq, but is unreadable */
    fx_free(&f);
}

/* Writes that fail leave the previous entry in place. */
static void test_queue_write_errors(void **state)
{
    fx_t f;
    queue_entry_t e;
    unsigned n = 0;
    (void)state;
    fx_init(&f);
    enqueue(&f.st, "Hw", 1);
    queue_entry_t upd = entry("Hw", 1, QUEUE_BACKOFF, 777);
    emu_flash_fault_arm(&f.emu, EMU_FAULT_PROGRAM_ERROR, 0, 0);
    assert_int_equal(queue_put(&f.st, &upd), STORE_ERR_IO);
    assert_true(f.emu.fault_fired);
    emu_flash_fault_clear(&f.emu);
    assert_int_equal(queue_get(&f.st, "Hw", &e), STORE_OK);
    assert_int_equal(e.state, QUEUE_PENDING);
    /* in a transaction: the commit fails and nothing lands */
    assert_int_equal(store_txn_begin(&f.st), STORE_OK);
    emu_flash_fault_arm(&f.emu, EMU_FAULT_PROGRAM_ERROR, 0, 0);
    assert_int_equal(queue_txn_enqueue(&f.st, "Hn", 2), STORE_ERR_IO);
    emu_flash_fault_clear(&f.emu);
    (void)queue_txn_put(&f.st, &upd); /* the transaction has failed already */
    assert_int_equal(store_txn_commit(&f.st), STORE_ERR_TXN);
    assert_int_equal(queue_get(&f.st, "Hn", &e), STORE_NOT_FOUND);
    assert_int_equal(queue_get(&f.st, "Hw", &e), STORE_OK);
    assert_int_equal(e.state, QUEUE_PENDING);
    assert_int_equal(queue_count(&f.st, &n), STORE_OK);
    assert_int_equal(n, 1);
    /* and a retry works */
    assert_int_equal(queue_put(&f.st, &upd), STORE_OK);
    assert_int_equal(queue_get(&f.st, "Hw", &e), STORE_OK);
    assert_int_equal(e.state, QUEUE_BACKOFF);
    assert_int_equal(e.next_try_ms, 777);
    fx_free(&f);
}

/* ------------------------------------------------------------------ retry */

static void test_retry_backoff_edges(void **state)
{
    (void)state;
    /* no cap, no delay */
    assert_int_equal(retry_backoff_delay_ms(0, 1000, 0, UINT32_MAX), 0);
    assert_int_equal(retry_backoff_delay_ms(7, 1000, 0, 12345), 0);
    /* a base above the cap is capped at once */
    assert_int_equal(retry_backoff_delay_ms(0, 5000, 3000, UINT32_MAX), 3000);
    assert_int_equal(retry_backoff_delay_ms(0, 5000, 3000, 0), 0);
    /* a cap that is not base * 2^n: the doubling overshoots and is cut back */
    assert_int_equal(retry_backoff_delay_ms(1, 1000, 1500, UINT32_MAX), 1500);
    assert_int_equal(retry_backoff_delay_ms(2, 1000, 1500, UINT32_MAX), 1500);
    /* jitter bounds: [0, ceiling], the middle maps to the middle */
    for (uint32_t a = 0; a < 12; a++) {
        uint32_t ceil = a < 9 ? 1000u << a : 300000u;
        assert_int_equal(retry_backoff_delay_ms(a, 1000, 300000, 0), 0);
        assert_int_equal(retry_backoff_delay_ms(a, 1000, 300000, UINT32_MAX), ceil);
        uint32_t mid = retry_backoff_delay_ms(a, 1000, 300000, 0x80000000u);
        assert_true(mid == (ceil + 1u) / 2u || mid == ceil / 2u);
    }
    /* the largest ceiling stays exact */
    assert_int_equal(retry_backoff_delay_ms(0, UINT32_MAX, UINT32_MAX, UINT32_MAX), UINT32_MAX);
    assert_int_equal(retry_backoff_delay_ms(0, UINT32_MAX, UINT32_MAX, 0x80000000u), 0x80000000u);
}

/* A bucket idle for ten hours refills one hour's worth, not ten. */
static void test_retry_refill_clamped_at_an_hour(void **state)
{
    retry_bucket_t b;
    uint32_t wait = 0;
    const uint64_t t0 = 1000;
    (void)state;
    retry_bucket_init(&b, 1, 100, t0); /* 0.001 calls/s, burst 100 */
    for (int i = 0; i < 100; i++)
        assert_true(retry_bucket_take(&b, t0, NULL));
    assert_false(retry_bucket_take(&b, t0, &wait));
    assert_int_equal(wait, 1000000); /* 1000 s for one call at 1 milli-call/s */
    const uint64_t t1 = t0 + 10ull * 3600u * 1000u;
    for (int i = 0; i < 3; i++) /* 3600 s * 0.001 = 3.6 calls */
        assert_true(retry_bucket_take(&b, t1, NULL));
    assert_false(retry_bucket_take(&b, t1, &wait));
    assert_int_equal(wait, 400000); /* 0.4 call missing */
    /* exactly one hour is not clamped further */
    retry_bucket_init(&b, 1000, 10000, t0);
    for (int i = 0; i < 10000; i++)
        assert_true(retry_bucket_take(&b, t0, NULL));
    const uint64_t t2 = t0 + 3600u * 1000u;
    for (int i = 0; i < 3600; i++)
        assert_true(retry_bucket_take(&b, t2, NULL));
    assert_false(retry_bucket_take(&b, t2, NULL));
}

/* Configured rates below 8 milli-calls/s still climb back, one milli-call
 * per 8 successes, and never above the configured rate. */
static void test_retry_small_rate_recovery(void **state)
{
    retry_bucket_t b;
    (void)state;
    retry_bucket_init(&b, 4, 1, 0);
    assert_int_equal(b.min_rate_milli, 1);
    retry_bucket_throttled(&b, 0, 0);
    assert_int_equal(b.rate_milli, 2);
    retry_bucket_throttled(&b, 0, UINT32_MAX);
    assert_int_equal(b.rate_milli, 1);
    retry_bucket_throttled(&b, 0, 0);
    assert_int_equal(b.rate_milli, 1); /* the floor */
    for (int step = 2; step <= 4; step++) {
        for (int i = 0; i < 7; i++)
            retry_bucket_succeeded(&b);
        assert_int_equal(b.rate_milli, step - 1);
        retry_bucket_succeeded(&b);
        assert_int_equal(b.rate_milli, step);
    }
    for (int i = 0; i < 16; i++)
        retry_bucket_succeeded(&b);
    assert_int_equal(b.rate_milli, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_vault_status_strings, teardown),
        cmocka_unit_test_teardown(test_vault_seal_arguments, teardown),
        cmocka_unit_test_teardown(test_vault_open_arguments, teardown),
        cmocka_unit_test_teardown(test_vault_not_a_record, teardown),
        cmocka_unit_test_teardown(test_vault_empty_secret, teardown),
        cmocka_unit_test_teardown(test_vault_no_entropy, teardown),
        cmocka_unit_test_teardown(test_vault_gcm_failures, teardown),
        cmocka_unit_test(test_queue_names),
        cmocka_unit_test(test_queue_target_limits),
        cmocka_unit_test(test_queue_damaged_values),
        cmocka_unit_test(test_queue_due_order_and_waits),
        cmocka_unit_test(test_queue_record_failure_edges),
        cmocka_unit_test(test_queue_read_errors),
        cmocka_unit_test(test_queue_damaged_record),
        cmocka_unit_test(test_queue_write_errors),
        cmocka_unit_test(test_retry_backoff_edges),
        cmocka_unit_test(test_retry_refill_clamped_at_an_hour),
        cmocka_unit_test(test_retry_small_rate_recovery),
    };
    return cmocka_run_group_tests_name("vault_queue_paths", tests, NULL, NULL);
}
