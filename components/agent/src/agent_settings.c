/* agent: provisioned settings and secrets at rest; see agent.h.
 *
 * Records: Gend (endpoint), Gkid (AccessKeyId), Gaks (AccessKeySecret,
 * sealed), Gsts (STS token, sealed, absent when none), Gset (signature and
 * retry policy, binary), Gca (CA bundle PEM). Sealed records are
 * components/vault records whose additional data is their store key. */
#include "agent_internal.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "port.h"
#include "util.h"
#include "vault.h"

/* The settings records, all under STORE_KEY_SETTINGS ('G', store_keys.h;
 * test_store_keys checks every key written against the registry). */
#define KEY_ENDPOINT "Gend"
#define KEY_ACCESS_KEY_ID "Gkid"
#define KEY_ACCESS_KEY_SECRET "Gaks"
#define KEY_STS_TOKEN "Gsts"
#define KEY_POLICY "Gset"
#define KEY_CA "Gca"
#define KEY_CERT_API "Gapi"
#define KEY_RATE "Grate"
#define KEY_LEN(k) (sizeof k - 1u)

#define SET_VERSION 1u

void agent_free_secret(char *p, size_t len)
{
    if (p) {
        crypto_wipe(p, len);
        port_free(p);
    }
}

static agent_status_t device_key(uint8_t key[VAULT_KEY_LEN], uint32_t *id)
{
    port_status_t ps = port_device_key(key, id);
    if (ps == PORT_OK)
        return AGENT_OK;
    crypto_wipe(key, VAULT_KEY_LEN);
    return ps == PORT_ERR_NOT_SET ? AGENT_ERR_NO_KEY : AGENT_ERR_SECRET;
}

agent_status_t agent_txn_put_sealed(store_t *st, const char *key, const void *plain, size_t len)
{
    uint8_t k[VAULT_KEY_LEN];
    uint32_t id;
    agent_status_t ar = device_key(k, &id);
    if (ar != AGENT_OK)
        return ar;
    if (len + VAULT_OVERHEAD > STORE_VALUE_MAX) {
        crypto_wipe(k, sizeof k);
        return AGENT_ERR_ARG;
    }
    uint8_t *out = port_malloc(len + VAULT_OVERHEAD);
    size_t n = 0;
    if (out == NULL) {
        crypto_wipe(k, sizeof k);
        return AGENT_ERR_NOMEM;
    }
    vault_status_t vs = vault_seal(k, id, key, plain, len, out, len + VAULT_OVERHEAD, &n);
    crypto_wipe(k, sizeof k);
    if (vs != VAULT_OK) {
        port_free(out);
        return AGENT_ERR_SECRET;
    }
    store_status_t rc = store_txn_put(st, key, strlen(key), out, n);
    port_free(out); /* ciphertext: nothing to wipe */
    return agent_status_from_store(rc);
}

agent_status_t agent_get_value(store_t *st, const char *key, uint8_t **out, size_t *len)
{
    size_t need = 0;
    store_status_t rc = store_get(st, key, strlen(key), NULL, 0, &need);
    if (rc == STORE_NOT_FOUND)
        return AGENT_ERR_NOT_FOUND;
    if (rc == STORE_ERR_CORRUPT)
        return AGENT_ERR_CORRUPT;
    if (rc != STORE_OK && rc != STORE_ERR_TOO_BIG)
        return agent_status_from_store(rc);
    *out = port_malloc(need + 1);
    if (!*out)
        return AGENT_ERR_NOMEM;
    rc = store_get(st, key, strlen(key), *out, need, len);
    if (rc != STORE_OK) {
        port_free(*out);
        *out = NULL;
        return rc == STORE_ERR_CORRUPT ? AGENT_ERR_CORRUPT : agent_status_from_store(rc);
    }
    (*out)[*len] = 0;
    return AGENT_OK;
}

agent_status_t agent_get_sealed(store_t *st, const char *key, char **plain, size_t *len)
{
    uint8_t *raw = NULL, k[VAULT_KEY_LEN];
    size_t rl = 0;
    uint32_t id;
    *plain = NULL;
    agent_status_t ar = agent_get_value(st, key, &raw, &rl);
    if (ar != AGENT_OK)
        return ar;
    ar = device_key(k, &id);
    if (ar == AGENT_OK) {
        char *p = port_malloc(rl + 1);
        size_t pl = 0;
        vault_status_t vs = p ? vault_open(k, id, key, raw, rl, p, rl, &pl) : VAULT_ERR_ARG;
        if (p == NULL) {
            ar = AGENT_ERR_NOMEM; /* not a refusal: the secret was never tried */
        } else if (vs == VAULT_OK) {
            p[pl] = 0;
            *plain = p;
            if (len)
                *len = pl;
        } else {
            port_free(p);
            ar = AGENT_ERR_SECRET;
            port_log(PORT_LOG_ERROR, "agent", "sealed record %s refused: %s", key,
                     vault_status_str(vs));
        }
    }
    crypto_wipe(k, sizeof k);
    port_free(raw);
    return ar;
}

void agent_settings_wipe(agent_settings_t *s)
{
    crypto_wipe(s->access_key_secret, sizeof s->access_key_secret);
    crypto_wipe(s->security_token, sizeof s->security_token);
}

agent_status_t agent_settings_save(store_t *st, const agent_settings_t *s, const char *ca_pem)
{
    uint8_t set[16];
    if (!st || !s || !s->endpoint[0] || !s->access_key_id[0] || !s->access_key_secret[0])
        return AGENT_ERR_ARG;
    if (ca_pem && strlen(ca_pem) > AGENT_CA_MAX)
        return AGENT_ERR_ARG;
    set[0] = SET_VERSION;
    set[1] = s->signature;
    util_put_le16(set + 2, s->policy.warn_every);
    util_put_le32(set + 4, s->policy.base_ms);
    util_put_le32(set + 8, s->policy.cap_ms);
    util_put_le32(set + 12, s->rate_milli);
    store_status_t rc = store_txn_begin(st);
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    agent_status_t ar = AGENT_OK;
    rc = store_txn_put(st, KEY_ENDPOINT, KEY_LEN(KEY_ENDPOINT), s->endpoint, strlen(s->endpoint));
    if (rc == STORE_OK)
        rc = store_txn_put(st, KEY_ACCESS_KEY_ID, KEY_LEN(KEY_ACCESS_KEY_ID), s->access_key_id,
                           strlen(s->access_key_id));
    if (rc == STORE_OK)
        rc = store_txn_put(st, KEY_POLICY, KEY_LEN(KEY_POLICY), set, sizeof set);
    if (rc == STORE_OK && ca_pem)
        rc = store_txn_put(st, KEY_CA, KEY_LEN(KEY_CA), ca_pem, strlen(ca_pem));
    if (rc == STORE_OK && !ca_pem) {
        rc = store_txn_delete(st, KEY_CA, KEY_LEN(KEY_CA));
        if (rc == STORE_NOT_FOUND)
            rc = STORE_OK;
    }
    if (rc == STORE_OK)
        ar = agent_txn_put_sealed(st, KEY_ACCESS_KEY_SECRET, s->access_key_secret,
                                  strlen(s->access_key_secret));
    if (rc == STORE_OK && ar == AGENT_OK) {
        if (s->security_token[0]) {
            ar = agent_txn_put_sealed(st, KEY_STS_TOKEN, s->security_token,
                                      strlen(s->security_token));
        } else {
            rc = store_txn_delete(st, KEY_STS_TOKEN, KEY_LEN(KEY_STS_TOKEN));
            if (rc == STORE_NOT_FOUND)
                rc = STORE_OK;
        }
    }
    if (rc != STORE_OK || ar != AGENT_OK) {
        (void)store_txn_abort(st);
        return ar != AGENT_OK ? ar : agent_status_from_store(rc);
    }
    return agent_status_from_store(store_txn_commit(st));
}

/* A text record into out (NUL-terminated); the store's answer. */
static store_status_t get_text(store_t *st, const char *key, char *out, size_t cap)
{
    size_t len = 0;
    store_status_t rc = store_get(st, key, strlen(key), out, cap - 1, &len);
    if (rc == STORE_OK)
        out[len] = 0;
    return rc;
}

agent_status_t agent_settings_load(store_t *st, agent_settings_t *s, char **ca_pem)
{
    uint8_t set[16];
    size_t len = 0;
    if (!st || !s)
        return AGENT_ERR_ARG;
    memset(s, 0, sizeof *s);
    if (ca_pem)
        *ca_pem = NULL;
    /* Only a store that answers "no such record" is unprovisioned: a
     * failed read must never look like a new device (which gets formatted). */
    store_status_t rc = get_text(st, KEY_ENDPOINT, s->endpoint, sizeof s->endpoint);
    if (rc == STORE_NOT_FOUND)
        return AGENT_ERR_NOT_FOUND;
    if (rc == STORE_ERR_CORRUPT)
        return AGENT_ERR_CORRUPT;
    if (rc == STORE_OK)
        rc = get_text(st, KEY_ACCESS_KEY_ID, s->access_key_id, sizeof s->access_key_id);
    if (rc == STORE_OK)
        rc = store_get(st, KEY_POLICY, KEY_LEN(KEY_POLICY), set, sizeof set, &len);
    /* A provisioned device (it has an endpoint) missing a record, or with
     * one too long to be its own, holds damaged settings. */
    if (rc == STORE_NOT_FOUND || rc == STORE_ERR_TOO_BIG || rc == STORE_ERR_CORRUPT)
        return AGENT_ERR_CORRUPT;
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    if (len != sizeof set || set[0] != SET_VERSION)
        return AGENT_ERR_CORRUPT;
    s->signature = set[1];
    s->policy.warn_every = util_get_le16(set + 2);
    s->policy.base_ms = util_get_le32(set + 4);
    s->policy.cap_ms = util_get_le32(set + 8);
    s->rate_milli = util_get_le32(set + 12);
    char *p = NULL;
    size_t pl = 0;
    agent_status_t ar = agent_get_sealed(st, KEY_ACCESS_KEY_SECRET, &p, &pl);
    if (ar == AGENT_ERR_NOT_FOUND)
        return AGENT_ERR_CORRUPT; /* provisioned, its secret gone: never a new device */
    if (ar != AGENT_OK)
        return ar;
    if (pl >= sizeof s->access_key_secret) {
        agent_free_secret(p, pl);
        return AGENT_ERR_SECRET;
    }
    memcpy(s->access_key_secret, p, pl + 1);
    agent_free_secret(p, pl);
    ar = agent_get_sealed(st, KEY_STS_TOKEN, &p, &pl);
    if (ar == AGENT_OK) {
        if (pl >= sizeof s->security_token) {
            agent_free_secret(p, pl);
            agent_settings_wipe(s);
            return AGENT_ERR_SECRET;
        }
        memcpy(s->security_token, p, pl + 1);
        agent_free_secret(p, pl);
    } else if (ar != AGENT_ERR_NOT_FOUND) {
        agent_settings_wipe(s);
        return ar;
    }
    if (ca_pem) {
        uint8_t *ca = NULL;
        ar = agent_get_value(st, KEY_CA, &ca, &len);
        if (ar == AGENT_OK)
            *ca_pem = (char *)ca;
        else if (ar != AGENT_ERR_NOT_FOUND) {
            agent_settings_wipe(s);
            return ar;
        }
    }
    return AGENT_OK;
}

typedef struct {
    store_t *st;
    agent_sealed_fn fn;
    void *arg;
} sealed_ctx_t;

typedef struct {
    store_t *st;
    uint32_t h;
    store_status_t rc;
    uint8_t *buf;
} stamp_ctx_t;

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static bool stamp_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    stamp_ctx_t *c = arg;
    size_t len = 0;
    (void)value_len;
    c->rc = store_get(c->st, key, key_len, c->buf, STORE_VALUE_MAX, &len);
    if (c->rc != STORE_OK)
        return false;
    c->h = fnv1a(fnv1a(c->h, key, key_len), c->buf, len);
    return true;
}

agent_status_t agent_settings_stamp(store_t *st, uint32_t *stamp)
{
    stamp_ctx_t c = {st, 2166136261u, STORE_OK, port_malloc(STORE_VALUE_MAX)};
    const char prefix[1] = {STORE_KEY_SETTINGS};
    if (!c.buf)
        return AGENT_ERR_NOMEM;
    store_status_t rc = store_iterate(st, prefix, 1, stamp_cb, &c);
    port_free(c.buf);
    if (rc != STORE_OK || c.rc != STORE_OK)
        return agent_status_from_store(rc != STORE_OK ? rc : c.rc);
    *stamp = c.h;
    return AGENT_OK;
}

static bool is_sealed_key(const uint8_t *key, size_t kl)
{
    return (kl == 4 &&
            (memcmp(key, KEY_ACCESS_KEY_SECRET, 4) == 0 || memcmp(key, KEY_STS_TOKEN, 4) == 0)) ||
           (kl == 3 && key[0] == STORE_KEY_CERT_KEY);
}

static bool sealed_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    sealed_ctx_t *c = arg;
    char name[8];
    size_t len = 0;
    uint32_t id = 0;
    if (!is_sealed_key(key, key_len))
        return true;
    memcpy(name, key, key_len);
    name[key_len] = 0;
    uint8_t *b = port_malloc(value_len ? value_len : 1);
    if (b && store_get(c->st, name, key_len, b, value_len, &len) == STORE_OK &&
        vault_key_id(b, len, &id) == VAULT_OK)
        c->fn(c->arg, name, id, value_len);
    else
        c->fn(c->arg, name, UINT32_MAX, value_len); /* not a sealed record */
    port_free(b); /* ciphertext (or a damaged record): nothing to wipe */
    return true;
}

agent_status_t agent_visit_sealed(store_t *st, agent_sealed_fn fn, void *arg)
{
    sealed_ctx_t c = {st, fn, arg};
    const char settings[1] = {STORE_KEY_SETTINGS}, cert_keys[1] = {STORE_KEY_CERT_KEY};
    store_status_t rc = store_iterate(st, settings, 1, sealed_cb, &c);
    if (rc == STORE_OK)
        rc = store_iterate(st, cert_keys, 1, sealed_cb, &c);
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    return AGENT_OK;
}

typedef struct {
    char names[AGENT_SEALED_MAX][8];
    unsigned n;
} name_list_t;

static void collect_cb(void *arg, const char *store_key, uint32_t key_id, size_t len)
{
    name_list_t *l = arg;
    (void)key_id;
    (void)len;
    if (l->n < AGENT_SEALED_MAX)
        memcpy(l->names[l->n++], store_key, strlen(store_key) + 1);
}

/* Re-seal one record under the new key; *done when it was (a record
 * already under new_id is left: an interrupted rotation resumes). */
static agent_status_t reseal_one(store_t *st, const char *name, const uint8_t old_key[32],
                                 uint32_t old_id, const uint8_t new_key[32], uint32_t new_id,
                                 bool *done)
{
    uint8_t *raw = NULL;
    size_t rl = 0, pl = 0, on = 0;
    uint32_t id;
    *done = false;
    agent_status_t ar = agent_get_value(st, name, &raw, &rl);
    if (ar != AGENT_OK)
        return ar;
    if (vault_key_id(raw, rl, &id) != VAULT_OK || id == new_id) {
        port_free(raw);
        return AGENT_OK;
    }
    char *p = port_malloc(rl + 1);
    uint8_t *out = port_malloc(rl);
    if (p == NULL || out == NULL) {
        port_free(p);
        port_free(out);
        port_free(raw);
        return AGENT_ERR_NOMEM;
    }
    vault_status_t vs = vault_open(old_key, old_id, name, raw, rl, p, rl, &pl);
    if (vs == VAULT_OK)
        vs = vault_seal(new_key, new_id, name, p, pl, out, rl, &on);
    crypto_wipe(p, rl);
    port_free(p);
    port_free(raw);
    store_status_t rc = vs == VAULT_OK ? store_put(st, name, strlen(name), out, on) : STORE_OK;
    port_free(out);
    if (vs != VAULT_OK)
        return AGENT_ERR_SECRET;
    *done = rc == STORE_OK;
    return agent_status_from_store(rc);
}

agent_status_t agent_reseal(store_t *st, const uint8_t old_key[32], uint32_t old_id,
                            const uint8_t new_key[32], uint32_t new_id, unsigned *count)
{
    /* The names on the heap, not in a static: a rotation is reentrant. */
    name_list_t *l = port_calloc(1, sizeof *l);
    unsigned done = 0;
    if (l == NULL)
        return AGENT_ERR_NOMEM;
    agent_status_t ar = agent_visit_sealed(st, collect_cb, l);
    for (unsigned i = 0; ar == AGENT_OK && i < l->n; i++) {
        bool one = false;
        ar = reseal_one(st, l->names[i], old_key, old_id, new_key, new_id, &one);
        done += one;
    }
    port_free(l);
    if (ar == AGENT_OK && count)
        *count = done;
    return ar;
}

agent_status_t agent_check_sealed(store_t *st, const char *key)
{
    char *p = NULL;
    size_t len = 0;
    agent_status_t ar = agent_get_sealed(st, key, &p, &len);
    agent_free_secret(p, len);
    return ar;
}

/* "[v6]" of an endpoint: its length through ']' (0 when not one), and the
 * address copied to host. */
static size_t endpoint_v6(const char *p, char *host, size_t cap)
{
    const char *close = p[0] == '[' ? strchr(p, ']') : NULL;
    uint8_t ip[UTIL_IP_MAX];
    size_t n = close ? (size_t)(close - p - 1) : 0;
    if (n == 0 || n >= cap || util_ip_parse(p + 1, n, ip) != 16)
        return 0;
    memcpy(host, p + 1, n);
    host[n] = 0;
    return n + 2;
}

agent_status_t agent_endpoint_split(const char *endpoint, char *host, size_t cap, uint16_t *port,
                                    bool *tls)
{
    const char *p = endpoint;
    size_t n;
    if (endpoint == NULL || host == NULL || cap == 0 || port == NULL || tls == NULL)
        return AGENT_ERR_ARG;
    if (strncmp(p, "https://", 8) == 0) {
        *tls = true;
        *port = 443;
        p += 8;
    } else if (strncmp(p, "http://", 7) == 0) {
        *tls = false;
        *port = 80;
        p += 7;
    } else {
        return AGENT_ERR_INVALID;
    }
    if (p[0] == '[') {
        if ((n = endpoint_v6(p, host, cap)) == 0)
            return AGENT_ERR_INVALID;
    } else {
        n = strcspn(p, ":/");
        if (n == 0 || n >= cap)
            return AGENT_ERR_INVALID;
        uint8_t ip[UTIL_IP_MAX];
        for (size_t i = 0; i < n; i++) /* a DNS name or an IPv4 literal */
            if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                  (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '.'))
                return AGENT_ERR_INVALID;
        /* Only the dotted quad of an address: "127.1" or "0177.0.0.1" would
         * reach one while the certificate check read it as a name; and no
         * final dot, which no certificate name carries. */
        if (p[n - 1] == '.' || (util_host_numeric(p, n) && util_ip_parse(p, n, ip) != 4))
            return AGENT_ERR_INVALID;
        memcpy(host, p, n);
        host[n] = 0;
    }
    if (p[n] == ':') {
        char *end;
        /* digits only: strtoul would also take blanks and a sign before them */
        bool digit = p[n + 1] >= '0' && p[n + 1] <= '9';
        unsigned long v = digit ? strtoul(p + n + 1, &end, 10) : 0;
        if (!digit || v == 0 || v > 65535 || (*end && *end != '/'))
            return AGENT_ERR_INVALID;
        *port = (uint16_t)v;
    } else if (p[n] && p[n] != '/') {
        return AGENT_ERR_INVALID;
    }
    return AGENT_OK;
}

agent_status_t agent_endpoint_hostport(const char *host, uint16_t port, bool tls, char *out,
                                       size_t cap)
{
    bool v6 = host && strchr(host, ':') != NULL;
    int n;
    if (host == NULL || out == NULL)
        return AGENT_ERR_ARG;
    if (port == (tls ? 443 : 80))
        n = snprintf(out, cap, v6 ? "[%s]" : "%s", host);
    else
        n = snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    return n < 0 || (size_t)n >= cap ? AGENT_ERR_ARG : AGENT_OK;
}

agent_status_t agent_cert_api_get(store_t *st, agent_cert_api_t *api)
{
    uint8_t v = 0;
    size_t len = 0;
    if (!st || !api)
        return AGENT_ERR_ARG;
    *api = AGENT_CERT_API_LEGACY;
    store_status_t rc = store_get(st, KEY_CERT_API, KEY_LEN(KEY_CERT_API), &v, 1, &len);
    if (rc == STORE_NOT_FOUND)
        return AGENT_OK;
    /* (a failed CRC, or longer than any this version writes: damaged) */
    if ((rc == STORE_OK && (len != 1 || v > AGENT_CERT_API_SSL_AUTO)) || rc == STORE_ERR_TOO_BIG ||
        rc == STORE_ERR_CORRUPT)
        return AGENT_ERR_CORRUPT;
    if (rc == STORE_OK)
        *api = (agent_cert_api_t)v;
    return agent_status_from_store(rc);
}

agent_status_t agent_cert_api_set(store_t *st, agent_cert_api_t api)
{
    uint8_t v = (uint8_t)api;
    if (!st || api > AGENT_CERT_API_SSL_AUTO)
        return AGENT_ERR_ARG;
    return agent_status_from_store(store_put(st, KEY_CERT_API, KEY_LEN(KEY_CERT_API), &v, 1));
}

const char *agent_cert_api_action(agent_cert_api_t api)
{
    return api == AGENT_CERT_API_LEGACY ? "SetDomainServerCertificate"
                                        : "SetCdnDomainSSLCertificate";
}

/* The learnt rate: 4 bytes, milli-calls per second, little-endian. */
agent_status_t agent_rate_get(store_t *st, uint32_t *rate_milli)
{
    uint8_t v[4];
    size_t len = 0;
    if (!st || !rate_milli)
        return AGENT_ERR_ARG;
    *rate_milli = 0;
    store_status_t rc = store_get(st, KEY_RATE, KEY_LEN(KEY_RATE), v, sizeof v, &len);
    if (rc == STORE_NOT_FOUND)
        return AGENT_ERR_NOT_FOUND;
    if ((rc == STORE_OK && (len != sizeof v || util_get_le(v, 4) == 0)) ||
        rc == STORE_ERR_TOO_BIG || rc == STORE_ERR_CORRUPT)
        return AGENT_ERR_CORRUPT;
    if (rc == STORE_OK)
        *rate_milli = (uint32_t)util_get_le(v, 4);
    return agent_status_from_store(rc);
}

agent_status_t agent_rate_clear(store_t *st)
{
    store_status_t rc = store_delete(st, KEY_RATE, KEY_LEN(KEY_RATE));
    return agent_status_from_store(rc == STORE_NOT_FOUND ? STORE_OK : rc);
}

agent_status_t agent_rate_put(store_t *st, uint32_t rate_milli)
{
    uint8_t v[4];
    util_put_le(v, rate_milli, 4);
    return agent_status_from_store(store_put(st, KEY_RATE, KEY_LEN(KEY_RATE), v, sizeof v));
}
