/* Fuzz harness: provisioned settings and sealed records
 * (components/agent/src/agent_settings.c, components/vault).
 *
 * Input: a flags byte, a presence byte (one bit per record), then for each
 * record Gend, Gkid, Gset, Gca, Gaks, Gsts a two-byte length and its bytes.
 * The records are written into a freshly formatted store on an emulated
 * NOR flash, then agent_settings_load, agent_visit_sealed,
 * agent_check_sealed and agent_settings_stamp read them. Gaks and Gsts are
 * either the raw bytes (what a tampered image holds) or, by flag, the
 * bytes sealed by the harness with the device key: under the right store
 * key, under the other secret's store key (a swapped record), or with a
 * wrong key id.
 *
 * Oracle (agent.h, vault.h): the load succeeds exactly when the records
 * make a valid set (text records that fit, a 16-byte Gset of version 1, a
 * Gaks sealed for "Gaks" with this device key and no longer than its
 * buffer, a Gsts absent or sealed the same way) and then returns exactly
 * what was written; a raw or mis-sealed secret never opens; the sealed
 * records are visited with the key id they were sealed under; the stamp
 * is stable; and saving what was loaded, then loading again, gives the
 * same settings back. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "emu_flash.h"
#include "fuzz_common.h"
#include "fuzz_device_key.h"
#include "vault.h"

#define SECTOR_SIZE 4096u
#define SECTORS 16u
#define VALUE_CAP (STORE_VALUE_MAX + 64u) /* a little past what a store value holds */

enum { R_END, R_KID, R_SET, R_CA, R_AKS, R_STS, R_COUNT };
static const char *const names[R_COUNT] = {"Gend", "Gkid", "Gset", "Gca", "Gaks", "Gsts"};

enum {
    F_SEAL_AKS = 0x01, /* Gaks: the input bytes sealed by the harness */
    F_SEAL_STS = 0x02,
    F_SWAP_AKS = 0x04, /* ... sealed for the other store key */
    F_SWAP_STS = 0x08,
    F_BADID_AKS = 0x10, /* ... under another key id */
    F_BADID_STS = 0x20,
};

static uint8_t dev_key[VAULT_KEY_LEN];
static uint32_t dev_key_id;

typedef struct {
    bool present, stored, sealed_ok, sealed_by_us;
    uint32_t sealed_id;
    const uint8_t *plain; /* the input bytes (plaintext when sealed by us) */
    size_t plain_len;
    uint8_t *value; /* what the store holds */
    size_t len;
} rec_t;

static size_t cstr_len(const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n);
    return z ? (size_t)(z - p) : n;
}

static void same_text(const char *got, const rec_t *r, const char *what)
{
    size_t n = cstr_len(r->plain, r->plain_len);
    FZ_CHECK(strlen(got) == n && memcmp(got, r->plain, n) == 0, "%s does not read back as written",
             what);
}

static void seen_sealed(void *arg, const char *store_key, uint32_t key_id, size_t len)
{
    rec_t *recs = arg;
    int i = strcmp(store_key, "Gaks") == 0 ? R_AKS : strcmp(store_key, "Gsts") == 0 ? R_STS : -1;
    FZ_CHECK(i >= 0, "visit_sealed reported \"%s\", which was never written", store_key);
    FZ_CHECK(recs[i].stored, "visit_sealed reported %s, which is not in the store", store_key);
    FZ_CHECK(len == recs[i].len, "visit_sealed: %s has %zu bytes, the store %zu", store_key, len,
             recs[i].len);
    if (recs[i].sealed_by_us)
        FZ_CHECK(key_id == recs[i].sealed_id, "visit_sealed: %s key id %u, sealed under %u",
                 store_key, key_id, recs[i].sealed_id);
    recs[i].present = false; /* visited: a second visit fails the check above */
    recs[i].stored = false;
}

static void compare_settings(const agent_settings_t *a, const agent_settings_t *b)
{
    FZ_CHECK(strcmp(a->endpoint, b->endpoint) == 0 &&
                 strcmp(a->access_key_id, b->access_key_id) == 0 &&
                 strcmp(a->access_key_secret, b->access_key_secret) == 0 &&
                 strcmp(a->security_token, b->security_token) == 0 && a->signature == b->signature &&
                 a->policy.base_ms == b->policy.base_ms && a->policy.cap_ms == b->policy.cap_ms &&
                 a->policy.warn_every == b->policy.warn_every && a->rate_milli == b->rate_milli,
             "settings saved and loaded again differ from the ones loaded");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static emu_flash_t emu;
    static uint8_t *work;
    static bool inited;
    static rec_t recs[R_COUNT];
    static agent_settings_t s1, s2;
    store_t st;
    fuzz_in_t in = {data, size};
    if (!inited) {
        /* Refused secrets log an error line each: expected here, so the
         * fuzz run discards stderr (-close_fd_mask=2, see fuzz_common.h). */
        port_log_set_level(PORT_LOG_ERROR);
        fz_device_key_setup(7, dev_key, &dev_key_id);
        if (emu_flash_init(&emu, SECTOR_SIZE, SECTORS, 8) != 0 ||
            !(work = malloc(STORE_WORK_SIZE(SECTORS))))
            fz_fail("out of memory");
        inited = true;
    }
    if (store_format(&st, &emu.dev, work, STORE_WORK_SIZE(SECTORS)) != STORE_OK)
        fz_fail("store_format failed on a healthy device");

    uint8_t flags = fz_u8(&in), present = fz_u8(&in);
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < R_COUNT; i++) {
        rec_t *r = &recs[i];
        r->present = (present >> i) & 1;
        r->plain_len = fz_take(&in, fz_u16(&in) % VALUE_CAP, &r->plain);
        if (!r->present)
            continue;
        bool seal = (i == R_AKS && (flags & F_SEAL_AKS)) || (i == R_STS && (flags & F_SEAL_STS));
        if (seal) {
            bool swap = i == R_AKS ? (flags & F_SWAP_AKS) : (flags & F_SWAP_STS);
            bool badid = i == R_AKS ? (flags & F_BADID_AKS) : (flags & F_BADID_STS);
            const char *aad = swap ? names[i == R_AKS ? R_STS : R_AKS] : names[i];
            size_t n = 0;
            r->sealed_id = badid ? dev_key_id + 1 : dev_key_id;
            r->value = malloc(r->plain_len + VAULT_OVERHEAD);
            if (!r->value || vault_seal(dev_key, r->sealed_id, aad, r->plain, r->plain_len,
                                        r->value, r->plain_len + VAULT_OVERHEAD, &n) != VAULT_OK)
                fz_fail("vault_seal failed");
            r->len = n;
            r->sealed_by_us = true;
            r->sealed_ok = !swap && !badid;
        } else {
            r->value = malloc(r->plain_len ? r->plain_len : 1);
            if (!r->value)
                fz_fail("out of memory");
            memcpy(r->value, r->plain, r->plain_len);
            r->len = r->plain_len;
        }
        store_status_t rc = store_put(&st, names[i], strlen(names[i]), r->value, r->len);
        FZ_CHECK(rc == STORE_OK || (rc == STORE_ERR_TOO_BIG && r->len > STORE_VALUE_MAX),
                 "store_put of %s (%zu bytes) into a fresh store: %s", names[i], r->len,
                 store_status_str(rc));
        r->stored = rc == STORE_OK;
    }

    /* What the load must answer, from the records alone. */
    const rec_t *end = &recs[R_END], *kid = &recs[R_KID], *set = &recs[R_SET];
    const rec_t *aks = &recs[R_AKS], *sts = &recs[R_STS], *ca = &recs[R_CA];
    bool expect_ok = end->stored && end->len <= AGENT_ENDPOINT_MAX && kid->stored &&
                     kid->len <= AGENT_KEY_ID_MAX && set->stored && set->len == 16 &&
                     set->value[0] == 1 && aks->stored && aks->sealed_ok &&
                     aks->plain_len <= AGENT_SECRET_MAX &&
                     (!sts->stored || (sts->sealed_ok && sts->plain_len <= AGENT_STS_MAX));

    char *ca_pem = NULL;
    agent_status_t ar = agent_settings_load(&st, &s1, &ca_pem);
    FZ_CHECK((ar == AGENT_OK) == expect_ok, "agent_settings_load: %s, but the records %s",
             agent_status_str(ar), expect_ok ? "are a valid set" : "are not a valid set");
    if (ar == AGENT_OK) {
        same_text(s1.endpoint, end, "Gend");
        same_text(s1.access_key_id, kid, "Gkid");
        same_text(s1.access_key_secret, aks, "Gaks");
        if (sts->stored)
            same_text(s1.security_token, sts, "Gsts");
        else
            FZ_CHECK(s1.security_token[0] == 0, "an STS token from nowhere");
        FZ_CHECK(s1.signature == set->value[1] &&
                     s1.rate_milli ==
                         ((uint32_t)set->value[12] | (uint32_t)set->value[13] << 8 |
                          (uint32_t)set->value[14] << 16 | (uint32_t)set->value[15] << 24),
                 "Gset fields do not read back");
        if (ca->stored) {
            FZ_CHECK(ca_pem && memcmp(ca_pem, ca->value, ca->len) == 0 && ca_pem[ca->len] == 0,
                     "Gca does not read back");
        } else {
            FZ_CHECK(ca_pem == NULL, "a CA bundle from nowhere");
        }
    } else {
        FZ_CHECK(ca_pem == NULL, "a failed load handed out a CA bundle");
    }

    for (int i = R_AKS; i <= R_STS; i++) {
        if (!recs[i].stored)
            continue;
        agent_status_t cr = agent_check_sealed(&st, names[i]);
        FZ_CHECK((cr == AGENT_OK) == recs[i].sealed_ok, "agent_check_sealed(%s): %s, but it was %s",
                 names[i], agent_status_str(cr),
                 recs[i].sealed_ok ? "sealed for it" : "not sealed for it");
    }

    uint32_t stamp1 = 0, stamp2 = 1;
    FZ_CHECK(agent_settings_stamp(&st, &stamp1) == AGENT_OK &&
                 agent_settings_stamp(&st, &stamp2) == AGENT_OK && stamp1 == stamp2,
             "agent_settings_stamp is not stable");

    rec_t visit[R_COUNT];
    memcpy(visit, recs, sizeof visit);
    FZ_CHECK(agent_visit_sealed(&st, seen_sealed, visit) == AGENT_OK, "agent_visit_sealed failed");
    FZ_CHECK(!visit[R_AKS].stored && !visit[R_STS].stored, "a sealed record was not visited");

    if (ar == AGENT_OK && s1.endpoint[0] && s1.access_key_id[0] && s1.access_key_secret[0]) {
        /* Round trip: what was loaded saves, and loads back unchanged. */
        agent_status_t sr = agent_settings_save(&st, &s1, ca_pem);
        FZ_CHECK(sr == AGENT_OK || agent_status_store(sr) != STORE_OK, "saving loaded settings: %s",
                 agent_status_str(sr));
        if (sr == AGENT_OK) {
            char *ca2 = NULL;
            ar = agent_settings_load(&st, &s2, &ca2);
            FZ_CHECK(ar == AGENT_OK, "settings just saved do not load: %s", agent_status_str(ar));
            compare_settings(&s1, &s2);
            FZ_CHECK((ca_pem == NULL) == (ca2 == NULL) && (!ca_pem || strcmp(ca_pem, ca2) == 0),
                     "the CA bundle changed in a save/load round trip");
            agent_settings_wipe(&s2);
            port_free(ca2);
        }
    }
    agent_settings_wipe(&s1);
    port_free(ca_pem);
    for (int i = 0; i < R_COUNT; i++)
        free(recs[i].value);
    return 0;
}
