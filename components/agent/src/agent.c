/* agent: desired state, edits, delivery through the queue; see agent.h.
 *
 * Store records (keys <= 12 bytes, values little-endian):
 *   D<ss>          domain name of slot ss (2 hex digits)
 *   H<ss><hhhhhhhh> header: hash = FNV-1a of the lower-cased header name
 *                  u8 ver | u8 flags | u8 klen key | u16 len desired |
 *                  u8 len config_id | u16 len delivered
 *   C<ss>          desired certificate: u8 ver | u8 flags(on) | u8 len name | PEM
 *   K<ss>          its private key PEM, sealed (components/vault, AAD "K<ss>")
 *   c<ss>          delivered certificate: u8 ver | u8 flags | u8 len name | sha256 hex
 *   Q<target>      queue entry (components/queue); target = "H<ss><hash>" or "C<ss>"
 */
#include "agent_internal.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "port.h"

#define REC_VERSION 1u
#define HF_DESIRED 0x01u
#define HF_DELIVERED 0x02u
#define HF_UNSURE 0x04u
#define CF_ON 0x01u
#define CF_PRESENT 0x02u
#define HREC_MAX (5u + CDNAPI_MAX_KEY_LEN + 2u * CDNAPI_MAX_VALUE_LEN + 4u + CDNAPI_MAX_CONFIG_ID_LEN)
#define CERT_PEM_MAX CDNAPI_MAX_PEM_LEN
#define CLOCK_FIXES_IN_ROW_MAX 3u
#define THROTTLE_PAUSE_MS 1000u

typedef struct {
    uint8_t flags;
    char key[CDNAPI_MAX_KEY_LEN + 1];
    char desired[CDNAPI_MAX_VALUE_LEN + 1];
    char config_id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
    char delivered[CDNAPI_MAX_VALUE_LEN + 1];
} hrec_t;

typedef struct {
    uint8_t flags;
    char name[AGENT_CERT_NAME_MAX + 1];
    char sha256[65];
} crec_t;

struct agent {
    store_t *st;
    agent_config_t cfg;
    http_tcp_t tcp;
    http_tls_t *tls;
    http_transport_t tr;
    http_client_t http;
    cdnapi_t api;
    char hostport[HTTP_MAX_HOST_LEN + 8];
    char ts[SIGN_TIMESTAMP_LEN + 1];
    retry_bucket_t bucket;
    bool have_base;
    int64_t base_utc;
    uint64_t base_mono;
    uint32_t clock_fixes_in_row;
    uint32_t throttled_in_row;
    uint64_t pause_until; /* no call before this (after a Throttling answer) */
    agent_counters_t counters;
    uint8_t buf[HREC_MAX];
};

const char *agent_status_str(int status)
{
    switch (status) {
    case AGENT_OK: return "ok";
    case AGENT_ERR_INVALID: return "invalid input";
    case AGENT_ERR_STORE: return "store error";
    case AGENT_ERR_NOT_FOUND: return "not found";
    case AGENT_ERR_LIMIT: return "limit reached";
    case AGENT_ERR_ARG: return "bad argument";
    case AGENT_ERR_NO_KEY: return "no device key";
    case AGENT_ERR_SECRET: return "sealed secret does not open";
    default: return "unknown";
    }
}

/* ----------------------------------------------------------- records -- */

static uint32_t fnv1a_lower(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 16777619u;
    }
    return h;
}

static bool same_header_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return *a == *b;
}

static void put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Put a length-prefixed string (the inverse of take()). */
static size_t give(uint8_t *out, size_t o, int lenbytes, const char *src)
{
    size_t n = strlen(src);
    if (lenbytes == 2)
        put16(out + o, n);
    else
        out[o] = (uint8_t)n;
    memcpy(out + o + (size_t)lenbytes, src, n);
    return o + (size_t)lenbytes + n;
}

static size_t hrec_encode(const hrec_t *h, uint8_t *out)
{
    size_t o = 0;
    out[o++] = REC_VERSION;
    out[o++] = h->flags;
    o = give(out, o, 1, h->key);
    o = give(out, o, 2, h->desired);
    o = give(out, o, 1, h->config_id);
    return give(out, o, 2, h->delivered);
}

/* Take a length-prefixed string; false when it would overrun. */
static bool take(const uint8_t *b, size_t len, size_t *o, int lenbytes, char *dst, size_t cap)
{
    if (*o + (size_t)lenbytes > len)
        return false;
    size_t n = b[*o];
    if (lenbytes == 2)
        n |= (size_t)b[*o + 1] << 8;
    *o += (size_t)lenbytes;
    if (n >= cap || *o + n > len)
        return false;
    memcpy(dst, b + *o, n);
    dst[n] = 0;
    *o += n;
    return true;
}

static bool hrec_decode(const uint8_t *b, size_t len, hrec_t *h)
{
    size_t o = 2;
    memset(h, 0, sizeof *h);
    if (len < 2 || b[0] != REC_VERSION)
        return false;
    h->flags = b[1];
    return take(b, len, &o, 1, h->key, sizeof h->key) &&
           take(b, len, &o, 2, h->desired, sizeof h->desired) &&
           take(b, len, &o, 1, h->config_id, sizeof h->config_id) &&
           take(b, len, &o, 2, h->delivered, sizeof h->delivered) && o == len;
}

static size_t crec_encode(const crec_t *c, uint8_t *out)
{
    size_t n = strlen(c->name), m = strlen(c->sha256);
    out[0] = REC_VERSION;
    out[1] = c->flags;
    out[2] = (uint8_t)n;
    memcpy(out + 3, c->name, n);
    memcpy(out + 3 + n, c->sha256, m);
    return 3 + n + m;
}

static bool crec_decode(const uint8_t *b, size_t len, crec_t *c, size_t *pem_off)
{
    memset(c, 0, sizeof *c);
    if (len < 3 || b[0] != REC_VERSION || b[2] > AGENT_CERT_NAME_MAX || 3u + b[2] > len)
        return false;
    c->flags = b[1];
    memcpy(c->name, b + 3, b[2]);
    size_t rest = len - 3 - b[2];
    if (pem_off)
        *pem_off = 3u + b[2];
    else if (rest < sizeof c->sha256)
        memcpy(c->sha256, b + 3 + b[2], rest);
    return true;
}

static void hex2(char *out, unsigned v)
{
    static const char hx[] = "0123456789abcdef";
    out[0] = hx[(v >> 4) & 15u];
    out[1] = hx[v & 15u];
}

static void slot_key(char *out, char tag, unsigned slot)
{
    out[0] = tag;
    hex2(out + 1, slot);
    out[3] = 0;
}

static void header_target(char out[12], unsigned slot, const char *key)
{
    uint32_t h = fnv1a_lower(key);
    slot_key(out, 'H', slot);
    for (int i = 0; i < 4; i++)
        hex2(out + 3 + 2 * i, (unsigned)(h >> (24 - 8 * i)));
    out[11] = 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int slot_of_key(const uint8_t *k, size_t kl)
{
    if (kl < 3 || hexval((char)k[1]) < 0 || hexval((char)k[2]) < 0)
        return -1;
    return hexval((char)k[1]) * 16 + hexval((char)k[2]);
}

typedef struct {
    store_t *st;
    const char *name;
    int found;
    uint64_t used[4]; /* slots in use, bitmap of 256 */
} slot_ctx_t;

static bool slot_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    slot_ctx_t *c = arg;
    char name[AGENT_DOMAIN_MAX + 1];
    size_t len = 0;
    int s = slot_of_key(key, key_len);
    if (s < 0 || key_len != 3 || value_len > AGENT_DOMAIN_MAX)
        return true;
    c->used[s / 64] |= (uint64_t)1 << (s % 64);
    if (c->name && store_get(c->st, key, key_len, name, AGENT_DOMAIN_MAX, &len) == STORE_OK) {
        name[len] = 0;
        if (strcmp(name, c->name) == 0) {
            c->found = s;
            return false;
        }
    }
    return true;
}

/* Slot of domain; with create, a new slot is written inside the open txn. */
static agent_status_t domain_slot(store_t *st, const char *domain, bool create, unsigned *slot)
{
    slot_ctx_t c;
    memset(&c, 0, sizeof c);
    c.st = st;
    c.name = domain;
    c.found = -1;
    if (store_iterate(st, "D", 1, slot_cb, &c) != STORE_OK)
        return AGENT_ERR_STORE;
    if (c.found >= 0) {
        *slot = (unsigned)c.found;
        return AGENT_OK;
    }
    if (!create)
        return AGENT_ERR_NOT_FOUND;
    for (unsigned s = 0; s < AGENT_MAX_DOMAINS; s++) {
        if (!(c.used[s / 64] & ((uint64_t)1 << (s % 64)))) {
            char k[4];
            slot_key(k, 'D', s);
            if (store_txn_put(st, k, 3, domain, strlen(domain)) != STORE_OK)
                return AGENT_ERR_STORE;
            *slot = s;
            return AGENT_OK;
        }
    }
    return AGENT_ERR_LIMIT;
}

static bool domain_name(store_t *st, unsigned slot, char out[AGENT_DOMAIN_MAX + 1])
{
    char k[4];
    size_t len = 0;
    slot_key(k, 'D', slot);
    if (store_get(st, k, 3, out, AGENT_DOMAIN_MAX, &len) != STORE_OK)
        return false;
    out[len] = 0;
    return true;
}

static store_status_t hrec_load(store_t *st, const char *target, hrec_t *h, uint8_t *buf)
{
    size_t len = 0;
    store_status_t rc = store_get(st, target, strlen(target), buf, HREC_MAX, &len);
    if (rc != STORE_OK)
        return rc;
    return hrec_decode(buf, len, h) ? STORE_OK : STORE_ERR_CORRUPT;
}

/* ------------------------------------------------------------- edits -- */

static agent_status_t fail_txn(store_t *st, agent_status_t rc)
{
    (void)store_txn_abort(st);
    return rc;
}

static agent_status_t header_edit(store_t *st, const char *domain, const char *key,
                                  const char *value /* NULL = remove */)
{
    static uint8_t buf[HREC_MAX];
    hrec_t h;
    char target[12];
    unsigned slot;
    if (store_txn_begin(st) != STORE_OK)
        return AGENT_ERR_STORE;
    agent_status_t ar = domain_slot(st, domain, value != NULL, &slot);
    if (ar != AGENT_OK)
        return fail_txn(st, ar);
    header_target(target, slot, key);
    store_status_t rc = hrec_load(st, target, &h, buf);
    if (rc == STORE_NOT_FOUND) {
        if (!value)
            return fail_txn(st, AGENT_ERR_NOT_FOUND);
        memset(&h, 0, sizeof h);
        strcpy(h.key, key);
    } else if (rc != STORE_OK) {
        return fail_txn(st, AGENT_ERR_STORE);
    } else if (!same_header_name(h.key, key)) {
        return fail_txn(st, AGENT_ERR_LIMIT); /* 32-bit name hash clash */
    }
    if (!value && !(h.flags & HF_DESIRED))
        return fail_txn(st, AGENT_ERR_NOT_FOUND);
    if (value) {
        h.flags |= HF_DESIRED;
        strcpy(h.desired, value);
        strcpy(h.key, key); /* the newest spelling is the one delivered */
    } else {
        h.flags &= (uint8_t)~HF_DESIRED;
        h.desired[0] = 0;
    }
    /* Never delivered and not in doubt: removing it is the end of it
     * (an add that was never sent and its delete cancel out). */
    if (!value && !(h.flags & (HF_DELIVERED | HF_UNSURE))) {
        if (store_txn_delete(st, target, strlen(target)) != STORE_OK ||
            queue_txn_remove(st, target) != STORE_OK)
            return fail_txn(st, AGENT_ERR_STORE);
    } else {
        size_t n = hrec_encode(&h, buf);
        if (store_txn_put(st, target, strlen(target), buf, n) != STORE_OK ||
            queue_txn_enqueue(st, target, queue_next_seq(st)) != STORE_OK)
            return fail_txn(st, AGENT_ERR_STORE);
    }
    return store_txn_commit(st) == STORE_OK ? AGENT_OK : AGENT_ERR_STORE;
}

bool agent_domain_name_ok(const char *domain)
{
    size_t n = domain ? strlen(domain) : 0;
    if (n == 0 || n > AGENT_DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)domain[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '*'))
            return false;
    }
    return true;
}

static void local_error(cdnapi_result_t *res, const char *code, const char *msg)
{
    if (!res)
        return;
    memset(res, 0, sizeof *res);
    res->cls = CDNAPI_PERMANENT_INPUT;
    snprintf(res->code, sizeof res->code, "%s", code);
    snprintf(res->message, sizeof res->message, "%s", msg);
}

agent_status_t agent_header_set(store_t *st, const char *domain, const char *key,
                                const char *value, cdnapi_result_t *res)
{
    cdnapi_result_t tmp;
    cdnapi_result_t *r = res ? res : &tmp;
    if (!st)
        return AGENT_ERR_ARG;
    if (!cdnapi_validate_header(domain, key, value, r))
        return AGENT_ERR_INVALID;
    if (!agent_domain_name_ok(domain)) {
        local_error(r, "InvalidDomainName.Malformed", "domain name is not a host name");
        return AGENT_ERR_INVALID;
    }
    return header_edit(st, domain, key, value);
}

agent_status_t agent_header_rm(store_t *st, const char *domain, const char *key)
{
    if (!st || !domain || !key || !*key || strlen(key) > CDNAPI_MAX_KEY_LEN)
        return AGENT_ERR_ARG;
    return header_edit(st, domain, key, NULL);
}

static agent_status_t cert_edit(store_t *st, const char *domain, const char *name,
                                const char *cert_pem, const char *key_pem)
{
    unsigned slot;
    char ck[4], kk[4], target[4];
    if (store_txn_begin(st) != STORE_OK)
        return AGENT_ERR_STORE;
    agent_status_t ar = domain_slot(st, domain, true, &slot);
    if (ar != AGENT_OK)
        return fail_txn(st, ar);
    slot_key(ck, 'C', slot);
    slot_key(kk, 'K', slot);
    slot_key(target, 'C', slot);
    size_t nl = name ? strlen(name) : 0, pl = cert_pem ? strlen(cert_pem) : 0;
    uint8_t *val = port_malloc(3 + nl + pl);
    if (!val)
        return fail_txn(st, AGENT_ERR_STORE);
    crec_t c;
    memset(&c, 0, sizeof c);
    c.flags = cert_pem ? CF_ON : 0;
    if (nl)
        memcpy(c.name, name, nl);
    size_t n = crec_encode(&c, val);
    if (pl)
        memcpy(val + n, cert_pem, pl);
    store_status_t rc = store_txn_put(st, ck, 3, val, n + pl);
    port_free(val);
    if (rc == STORE_OK && cert_pem) {
        agent_status_t sr = agent_txn_put_sealed(st, kk, key_pem, strlen(key_pem));
        if (sr != AGENT_OK)
            return fail_txn(st, sr);
    }
    if (rc == STORE_OK && !cert_pem) {
        rc = store_txn_delete(st, kk, 3);
        if (rc == STORE_NOT_FOUND)
            rc = STORE_OK;
    }
    if (rc == STORE_OK)
        rc = queue_txn_enqueue(st, target, queue_next_seq(st));
    if (rc != STORE_OK)
        return fail_txn(st, AGENT_ERR_STORE);
    return store_txn_commit(st) == STORE_OK ? AGENT_OK : AGENT_ERR_STORE;
}

agent_status_t agent_cert_set(store_t *st, const char *domain, const char *name,
                              const char *cert_pem, const char *key_pem, int64_t now_utc,
                              cdnapi_result_t *res)
{
    cdnapi_result_t tmp;
    cdnapi_result_t *r = res ? res : &tmp;
    if (!st || !cert_pem || !key_pem)
        return AGENT_ERR_ARG;
    if (!agent_domain_name_ok(domain)) {
        local_error(r, "InvalidDomainName.Malformed", "domain name is not a host name");
        return AGENT_ERR_INVALID;
    }
    if (strlen(cert_pem) > CERT_PEM_MAX || strlen(key_pem) > STORE_VALUE_MAX) {
        local_error(r, "Certificate.TooLarge", "certificate chain over 12 KB or key over 16 KB");
        return AGENT_ERR_INVALID;
    }
    if (name && strlen(name) > AGENT_CERT_NAME_MAX) {
        local_error(r, "InvalidCertName.Malformed", "certificate name longer than 64 bytes");
        return AGENT_ERR_INVALID;
    }
    if (!cdnapi_validate_cert(domain, cert_pem, key_pem, now_utc, r))
        return AGENT_ERR_INVALID;
    return cert_edit(st, domain, name, cert_pem, key_pem);
}

agent_status_t agent_cert_off(store_t *st, const char *domain)
{
    if (!st || !agent_domain_name_ok(domain))
        return AGENT_ERR_ARG;
    return cert_edit(st, domain, NULL, NULL, NULL);
}

/* A whole value as a NUL-terminated heap string; with c, also decode the
 * certificate record head and report where its PEM starts. */
static char *load_value(store_t *st, const char *key, size_t *pem_off, crec_t *c)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    if (agent_get_value(st, key, &raw, &len) != AGENT_OK)
        return NULL;
    char *b = (char *)raw;
    if (c) {
        size_t off;
        if (!crec_decode((const uint8_t *)b, len, c, &off)) {
            port_free(b);
            return NULL;
        }
        *pem_off = off;
    }
    return b;
}

/* ------------------------------------------------------------ status -- */

typedef struct {
    store_t *st;
    const agent_visitor_t *v;
    int slot; /* -1: all */
    uint8_t *buf;
} visit_ctx_t;

static bool visit_header_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    visit_ctx_t *c = arg;
    char target[16], domain[AGENT_DOMAIN_MAX + 1];
    hrec_t h;
    queue_entry_t q;
    int s = slot_of_key(key, key_len);
    if (s < 0 || key_len != 11 || value_len > HREC_MAX || (c->slot >= 0 && s != c->slot))
        return true;
    memcpy(target, key, key_len);
    target[key_len] = 0;
    if (hrec_load(c->st, target, &h, c->buf) != STORE_OK || !domain_name(c->st, (unsigned)s, domain))
        return true;
    bool queued = queue_get(c->st, target, &q) == STORE_OK;
    agent_header_view_t v = {domain,
                             h.key,
                             (h.flags & HF_DESIRED) ? h.desired : NULL,
                             (h.flags & HF_DELIVERED) ? h.delivered : NULL,
                             h.config_id,
                             (h.flags & HF_UNSURE) != 0,
                             queued ? &q : NULL};
    if (c->v->header)
        c->v->header(c->v->arg, &v);
    return true;
}

static bool visit_cert_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    visit_ctx_t *c = arg;
    char domain[AGENT_DOMAIN_MAX + 1], ck[4];
    crec_t want, have;
    queue_entry_t q;
    size_t len = 0;
    (void)value_len;
    int s = slot_of_key(key, key_len);
    if (s < 0 || key_len != 3 || (c->slot >= 0 && s != c->slot) || !domain_name(c->st, (unsigned)s, domain))
        return true;
    bool have_ok = false;
    size_t off;
    slot_key(ck, 'C', (unsigned)s);
    char *rec = load_value(c->st, ck, &off, &want);
    bool want_ok = rec != NULL;
    port_free(rec); /* only the head (name, on/off) is shown */
    char dk[4];
    slot_key(dk, 'c', (unsigned)s);
    if (store_get(c->st, dk, 3, c->buf, HREC_MAX, &len) == STORE_OK)
        have_ok = crec_decode(c->buf, len, &have, NULL);
    if (!want_ok && !have_ok)
        return true;
    char target[4];
    slot_key(target, 'C', (unsigned)s);
    bool queued = queue_get(c->st, target, &q) == STORE_OK;
    agent_cert_view_t v = {domain,
                           want_ok && (want.flags & CF_ON),
                           want_ok,
                           want_ok ? want.name : "",
                           have_ok && (have.flags & CF_ON),
                           have_ok,
                           have_ok ? have.name : "",
                           have_ok ? have.sha256 : "",
                           queued ? &q : NULL};
    if (c->v->cert)
        c->v->cert(c->v->arg, &v);
    return true;
}

agent_status_t agent_visit(store_t *st, const char *domain, const agent_visitor_t *v)
{
    static uint8_t buf[HREC_MAX];
    visit_ctx_t c = {st, v, -1, buf};
    if (!st || !v)
        return AGENT_ERR_ARG;
    if (domain) {
        unsigned s;
        agent_status_t ar = domain_slot(st, domain, false, &s);
        if (ar != AGENT_OK)
            return ar;
        c.slot = (int)s;
    }
    if (store_iterate(st, "H", 1, visit_header_cb, &c) != STORE_OK ||
        store_iterate(st, "D", 1, visit_cert_cb, &c) != STORE_OK)
        return AGENT_ERR_STORE;
    return AGENT_OK;
}

/* ---------------------------------------------------------- delivery -- */

void agent_config_default(agent_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 443;
    cfg->tls = true;
    cfg->signature = SIGN_V3;
    cfg->http_timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    queue_policy_default(&cfg->policy);
    cfg->rate_milli = RETRY_DEFAULT_RATE_MILLI_PER_S;
}

agent_status_t agent_new(agent_t **out, store_t *st, const agent_config_t *cfg)
{
    if (!out || !st || !cfg || !cfg->host || !cfg->credentials.access_key_id ||
        !cfg->credentials.access_key_secret)
        return AGENT_ERR_ARG;
    agent_t *a = port_calloc(1, sizeof *a);
    if (!a)
        return AGENT_ERR_STORE;
    a->st = st;
    a->cfg = *cfg;
    int n = cfg->port == 443 ? snprintf(a->hostport, sizeof a->hostport, "%s", cfg->host)
                             : snprintf(a->hostport, sizeof a->hostport, "%s:%u", cfg->host,
                                        (unsigned)cfg->port);
    if (n < 0 || (size_t)n >= sizeof a->hostport) {
        port_free(a);
        return AGENT_ERR_ARG;
    }
    int hs;
    if (cfg->tls) {
        http_tls_options_t to = {cfg->host, cfg->port, cfg->ca_pem, cfg->ca_pem_len,
                                 cfg->insecure_no_verify};
        hs = http_tls_new(&a->tls, &to, &a->tr);
    } else {
        hs = http_tcp_transport(&a->tr, &a->tcp, cfg->host, cfg->port);
    }
    if (hs != HTTP_OK) {
        port_free(a);
        return AGENT_ERR_ARG;
    }
    http_limits_t lim = {HTTP_DEFAULT_MAX_HEADER_BYTES, HTTP_DEFAULT_MAX_BODY_BYTES,
                         cfg->http_timeout_ms ? cfg->http_timeout_ms : HTTP_DEFAULT_TIMEOUT_MS};
    http_client_init(&a->http, &a->tr, &lim);
    cdnapi_init();
    a->api.http = &a->http;
    a->api.credentials = &a->cfg.credentials;
    a->api.host = a->hostport;
    a->api.signature = cfg->signature;
    a->api.timestamp = NULL;
    /* Burst of one: calls are spread evenly, so a sliding one-second
     * window on the server never sees more than the rate. */
    retry_bucket_init(&a->bucket, cfg->rate_milli ? cfg->rate_milli : RETRY_DEFAULT_RATE_MILLI_PER_S,
                      1, port_monotonic_ms());
    *out = a;
    return AGENT_OK;
}

void agent_free(agent_t *a)
{
    if (!a)
        return;
    http_client_close(&a->http);
    if (a->tls)
        http_tls_free(a->tls);
    mbedtls_platform_zeroize(a, sizeof *a);
    port_free(a);
}

void agent_counters(const agent_t *a, agent_counters_t *c)
{
    *c = a->counters;
    if (a->tls) {
        http_tls_stats_t ts;
        http_tls_stats(a->tls, &ts);
        c->handshakes = ts.handshakes;
    } else {
        c->handshakes = a->http.connects;
    }
}

static void lock(agent_t *a)
{
    if (a->cfg.lock)
        a->cfg.lock(a->cfg.lock_ctx);
}
static void unlock(agent_t *a)
{
    if (a->cfg.unlock)
        a->cfg.unlock(a->cfg.lock_ctx);
}

static void emit(agent_t *a, agent_ev_kind_t kind, const char *domain, const char *what,
                 const char *detail, const cdnapi_result_t *res, uint16_t attempts)
{
    if (!a->cfg.event)
        return;
    agent_event_t ev = {kind, domain, what, detail, res ? res->message : "",
                        res ? res->request_id : "", attempts};
    a->cfg.event(a->cfg.event_ctx, &ev);
}

/* Time to sign with: the server-corrected clock when we have one, else the
 * port's wall clock. false: no trustworthy time at all. */
static bool agent_now_utc(agent_t *a, uint64_t now_ms, int64_t *utc)
{
    if (a->have_base) {
        *utc = a->base_utc + (int64_t)((now_ms - a->base_mono) / 1000u);
        return true;
    }
    return port_wall_clock(utc) == PORT_OK;
}

static void clock_from_server(agent_t *a, int64_t server_utc, uint64_t now_ms)
{
    a->have_base = true;
    a->base_utc = server_utc;
    a->base_mono = now_ms;
    a->counters.clock_fixes++;
    port_log(PORT_LOG_WARN, "agent", "clock corrected from the server's Date header");
}

/* No clock at all: an unsigned GET of the API host answers with a Date. */
static uint32_t fetch_server_date(agent_t *a, uint64_t now_ms)
{
    char req[HTTP_MAX_HOST_LEN + 64];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", a->hostport);
    http_response_t resp;
    memset(&resp, 0, sizeof resp);
    int rc = http_client_request(&a->http, (const uint8_t *)req, (size_t)n, &resp);
    bool ok = rc == HTTP_OK && resp.has_date;
    if (ok)
        clock_from_server(a, resp.server_date, now_ms);
    http_response_free(&resp);
    return ok ? 0 : a->cfg.policy.base_ms;
}

static void sign_time(agent_t *a, uint64_t now_ms)
{
    int64_t utc;
    if (a->have_base && agent_now_utc(a, now_ms, &utc) &&
        sign_format_timestamp(utc, a->ts) == SIGN_OK)
        a->api.timestamp = a->ts;
    else
        a->api.timestamp = NULL;
}

/* Write back Q after an attempt, unless the target was edited meanwhile
 * (then the new entry, with its new seq, stands). */
static void queue_update_if_same(agent_t *a, const queue_entry_t *e)
{
    queue_entry_t cur;
    if (queue_get(a->st, e->target, &cur) == STORE_OK && cur.seq == e->seq)
        (void)queue_put(a->st, e);
}

static uint32_t random32(void)
{
    uint32_t r = 0;
    (void)port_random(&r, sizeof r);
    return r;
}

/* A 4xx reply means the change did not apply, with one exception:
 * SignatureNonceUsed says this very request already reached the server (a
 * transport resent it after the connection dropped), so it may well have
 * applied: the outcome stays unknown and is read back. */
static bool reply_was_definitive(const cdnapi_result_t *res)
{
    return res->http_status == HTTP_OK && res->status_code >= 400 && res->status_code < 500 &&
           strcmp(res->code, "SignatureNonceUsed") != 0;
}

/* The CDN does not know the domain: it holds no configs for it. */
static bool domain_unknown(const cdnapi_result_t *res)
{
    return strcmp(res->code, "InvalidDomain.NotFound") == 0;
}

/* A failed call: throttling, clock, backoff, permanent. Called locked. */
static uint32_t handle_failure(agent_t *a, queue_entry_t *e, const char *domain, const char *what,
                               const cdnapi_result_t *res, uint64_t now_ms)
{
    if (strncmp(res->code, "Throttling", 10) == 0) {
        a->counters.throttled++;
        a->throttled_in_row++;
        if (a->throttled_in_row > a->counters.max_throttled_in_row)
            a->counters.max_throttled_in_row = a->throttled_in_row;
        retry_bucket_throttled(&a->bucket, now_ms);
        /* The service counts calls over a one-second window: let it drain
         * completely, so the next call is not refused again. */
        a->pause_until = now_ms + THROTTLE_PAUSE_MS;
    } else {
        a->throttled_in_row = 0;
    }
    if (res->cls == CDNAPI_CLOCK && res->has_server_date &&
        a->clock_fixes_in_row < CLOCK_FIXES_IN_ROW_MAX) {
        a->clock_fixes_in_row++;
        clock_from_server(a, res->server_date, now_ms);
        e->state = QUEUE_PENDING; /* retry at once with the right time */
        queue_update_if_same(a, e);
        return 0;
    }
    bool retryable = res->cls == CDNAPI_RETRYABLE || res->cls == CDNAPI_CLOCK;
    const char *code = res->code[0] ? res->code : http_err_str(res->http_status);
    queue_record_failure(e, retryable, code, res->message, now_ms, &a->cfg.policy, random32());
    queue_update_if_same(a, e);
    emit(a, e->state == QUEUE_FAILED ? AGENT_EV_FAILED
            : e->state == QUEUE_DEAD ? AGENT_EV_DEAD
                                     : AGENT_EV_RETRY,
         domain, what, code, res, e->attempts);
    return 0;
}

static void on_success(agent_t *a)
{
    a->throttled_in_row = 0;
    a->clock_fixes_in_row = 0;
    retry_bucket_succeeded(&a->bucket);
}

typedef enum { ACT_NONE, ACT_LIST, ACT_ADD, ACT_MODIFY, ACT_DELETE } act_t;

static act_t header_action(const hrec_t *h)
{
    bool want = h->flags & HF_DESIRED, have = h->flags & HF_DELIVERED;
    if ((h->flags & HF_UNSURE) && !have)
        return ACT_LIST; /* an add may have landed: look before adding again */
    if (want)
        return !have ? ACT_ADD : strcmp(h->desired, h->delivered) != 0 ? ACT_MODIFY : ACT_NONE;
    return have ? ACT_DELETE : ACT_NONE;
}

/* Drop a queue entry that has nothing left to deliver. Called locked. */
static void queue_drop(agent_t *a, const char *target)
{
    if (store_txn_begin(a->st) != STORE_OK)
        return;
    if (queue_txn_remove(a->st, target) == STORE_OK)
        (void)store_txn_commit(a->st);
    else
        (void)store_txn_abort(a->st);
}

/* Desired == delivered: drop the queue entry (and the record of a removed
 * header) in one transaction. Called locked. */
static void header_settled(agent_t *a, const char *target, const hrec_t *h, uint32_t seq)
{
    queue_entry_t cur;
    bool same = queue_get(a->st, target, &cur) == STORE_OK && cur.seq == seq;
    if (store_txn_begin(a->st) != STORE_OK)
        return;
    store_status_t rc;
    if (!(h->flags & HF_DESIRED) && !(h->flags & HF_DELIVERED)) {
        rc = store_txn_delete(a->st, target, strlen(target));
    } else {
        size_t n = hrec_encode(h, a->buf);
        rc = store_txn_put(a->st, target, strlen(target), a->buf, n);
    }
    if (rc == STORE_OK && same)
        rc = queue_txn_remove(a->st, target);
    if (rc == STORE_OK)
        (void)store_txn_commit(a->st);
    else
        (void)store_txn_abort(a->st);
}

static void hrec_save(agent_t *a, const char *target, const hrec_t *h)
{
    size_t n = hrec_encode(h, a->buf);
    (void)store_put(a->st, target, strlen(target), a->buf, n);
}

static uint32_t header_step(agent_t *a, queue_entry_t *e, uint64_t now_ms)
{
    hrec_t h;
    char domain[AGENT_DOMAIN_MAX + 1], what[CDNAPI_MAX_KEY_LEN + 8];
    int slot = slot_of_key((const uint8_t *)e->target, strlen(e->target));
    store_status_t rc = hrec_load(a->st, e->target, &h, a->buf);
    if (rc == STORE_NOT_FOUND || slot < 0 || !domain_name(a->st, (unsigned)slot, domain)) {
        /* an entry without a target (left by a cut edit): nothing to do */
        queue_drop(a, e->target);
        unlock(a);
        return 0;
    }
    if (rc != STORE_OK) {
        queue_record_failure(e, false, "Local.StoreCorrupt", "the header record is damaged", now_ms,
                             &a->cfg.policy, 0);
        queue_update_if_same(a, e);
        unlock(a);
        return 0;
    }
    snprintf(what, sizeof what, "header %s", h.key);
    act_t act = header_action(&h);
    if (act == ACT_NONE) {
        h.flags &= (uint8_t)~HF_UNSURE;
        header_settled(a, e->target, &h, e->seq);
        unlock(a);
        return 0;
    }
    if (act != ACT_LIST) {
        /* Write the doubt down before the request can land. */
        h.flags |= HF_UNSURE;
        hrec_save(a, e->target, &h);
    }
    e->state = QUEUE_IN_FLIGHT;
    queue_update_if_same(a, e);
    /* What is sent, kept in the request's own struct: the record h is
     * re-read into after the call (one record on the stack, not three). */
    cdnapi_header_t sent;
    memset(&sent, 0, sizeof sent);
    strcpy(sent.key, h.key);
    strcpy(sent.value, h.desired);
    strcpy(sent.config_id, h.config_id);
    unlock(a);

    cdnapi_result_t res, unknown;
    cdnapi_header_t *list = NULL;
    unknown.code[0] = 0;
    int nlist = 0;
    cdnapi_batch_config_t got;
    char detail[96];
    sign_time(a, now_ms);
    a->counters.calls++;
    memset(&got, 0, sizeof got);
    if (act == ACT_LIST) {
        list = port_malloc(sizeof *list * CDNAPI_MAX_HEADERS);
        if (!list)
            return a->cfg.policy.base_ms; /* try again later; nothing was sent */
        nlist = cdnapi_list_headers(&a->api, domain, list, CDNAPI_MAX_HEADERS, &res);
        if (res.cls != CDNAPI_SUCCESS && domain_unknown(&res)) {
            unknown = res; /* holds nothing to adopt; and an add would fail alike */
            res.cls = CDNAPI_SUCCESS;
            nlist = 0;
        }
    } else if (act == ACT_DELETE) {
        cdnapi_delete_header(&a->api, domain, sent.config_id, &res);
        if (res.cls != CDNAPI_SUCCESS &&
            (strcmp(res.code, "InvalidConfigId.NotFound") == 0 || domain_unknown(&res)))
            res.cls = CDNAPI_SUCCESS; /* already gone: that is what we wanted */
    } else {
        const char *dom = domain;
        if (act != ACT_MODIFY)
            sent.config_id[0] = 0; /* an add carries no ConfigId (nor needs it after) */
        int n = cdnapi_batch_set_headers(&a->api, &dom, 1, &sent, 1, &got, 1, &res);
        if (n < 1 && res.cls == CDNAPI_SUCCESS) {
            res.cls = CDNAPI_RETRYABLE; /* no ConfigId came back: look it up */
            snprintf(res.code, sizeof res.code, "Local.NoConfigId");
        }
    }

    lock(a);
    hrec_t *now = &h;
    if (hrec_load(a->st, e->target, now, a->buf) != STORE_OK) {
        port_free(list);
        unlock(a);
        return 0;
    }
    if (res.cls != CDNAPI_SUCCESS) {
        if (act == ACT_MODIFY && strcmp(res.code, "InvalidConfigId.NotFound") == 0) {
            /* deleted behind our back: add it again */
            now->flags &= (uint8_t)~(HF_DELIVERED | HF_UNSURE);
            now->config_id[0] = now->delivered[0] = 0;
            hrec_save(a, e->target, now);
            e->state = QUEUE_PENDING;
            queue_update_if_same(a, e);
            port_free(list);
            unlock(a);
            return 0;
        }
        if (act != ACT_LIST && reply_was_definitive(&res)) {
            now->flags &= (uint8_t)~HF_UNSURE; /* a 4xx reply: it did not apply */
            hrec_save(a, e->target, now);
        }
        uint32_t w = handle_failure(a, e, domain, what, &res, now_ms);
        port_free(list);
        unlock(a);
        return w;
    }
    on_success(a);
    if (act == ACT_LIST) {
        int first = -1;
        for (int i = 0; i < nlist; i++) {
            if (!same_header_name(list[i].key, now->key))
                continue;
            if (first < 0) {
                first = i;
            } else {
                /* a duplicate from an earlier unknown outcome: remove it */
                cdnapi_result_t r2;
                unlock(a);
                a->counters.calls++;
                cdnapi_delete_header(&a->api, domain, list[i].config_id, &r2);
                lock(a);
            }
        }
        now->flags &= (uint8_t)~HF_UNSURE;
        if (first >= 0) {
            now->flags |= HF_DELIVERED;
            snprintf(now->config_id, sizeof now->config_id, "%s", list[first].config_id);
            snprintf(now->delivered, sizeof now->delivered, "%s", list[first].value);
            a->counters.adoptions++;
        } else {
            now->flags &= (uint8_t)~HF_DELIVERED;
            now->config_id[0] = now->delivered[0] = 0;
        }
        port_free(list);
        hrec_save(a, e->target, now);
        if (unknown.code[0] && (now->flags & HF_DESIRED)) {
            /* The domain is not on the CDN: that is this change's answer. */
            queue_record_failure(e, false, unknown.code, unknown.message, now_ms, &a->cfg.policy, 0);
            queue_update_if_same(a, e);
            emit(a, AGENT_EV_FAILED, domain, what, unknown.code, &unknown, e->attempts);
            unlock(a);
            return 0;
        }
        e->state = QUEUE_PENDING;
        queue_update_if_same(a, e);
        unlock(a);
        return 0;
    }
    now->flags &= (uint8_t)~HF_UNSURE;
    if (act == ACT_DELETE) {
        now->flags &= (uint8_t)~HF_DELIVERED;
        now->config_id[0] = now->delivered[0] = 0;
        snprintf(detail, sizeof detail, "deleted ConfigId %.24s", sent.config_id);
    } else {
        now->flags |= HF_DELIVERED;
        snprintf(now->config_id, sizeof now->config_id, "%.24s",
                 act == ACT_MODIFY ? sent.config_id : got.config_id);
        strcpy(now->delivered, sent.value);
        snprintf(detail, sizeof detail, "%s ConfigId %.24s", act == ACT_ADD ? "added" : "modified",
                 now->config_id);
    }
    if (header_action(now) == ACT_NONE) {
        header_settled(a, e->target, now, e->seq);
        emit(a, AGENT_EV_DELIVERED, domain, what, detail, &res, e->attempts);
    } else {
        hrec_save(a, e->target, now); /* edited meanwhile: the new entry goes next */
    }
    unlock(a);
    return 0;
}

static void sha256_hex(const char *pem, char out[65])
{
    uint8_t d[32];
    if (mbedtls_sha256_ret((const unsigned char *)pem, strlen(pem), d, 0) != 0)
        memset(d, 0, sizeof d);
    for (int i = 0; i < 32; i++)
        hex2(out + 2 * i, d[i]);
    out[64] = 0;
}

static uint32_t cert_step(agent_t *a, queue_entry_t *e, uint64_t now_ms)
{
    int slot = slot_of_key((const uint8_t *)e->target, strlen(e->target));
    char domain[AGENT_DOMAIN_MAX + 1], ck[4], kk[4], dk[4];
    crec_t want;
    size_t off = 0;
    if (slot < 0 || !domain_name(a->st, (unsigned)slot, domain)) {
        queue_drop(a, e->target); /* the domain is gone: nothing to deliver */
        unlock(a);
        return 0;
    }
    slot_key(ck, 'C', (unsigned)slot);
    slot_key(kk, 'K', (unsigned)slot);
    slot_key(dk, 'c', (unsigned)slot);
    char *rec = load_value(a->st, ck, &off, &want);
    char *key = NULL;
    size_t key_len = 0;
    agent_status_t kr = AGENT_OK;
    if (rec && (want.flags & CF_ON))
        kr = agent_get_sealed(a->st, kk, &key, &key_len);
    if (!rec || kr != AGENT_OK) {
        port_free(rec);
        queue_record_failure(e, false,
                             kr == AGENT_ERR_SECRET ? "Local.SecretRefused"
                             : kr == AGENT_ERR_NO_KEY ? "Local.NoDeviceKey"
                                                      : "Local.StoreCorrupt",
                             kr == AGENT_ERR_SECRET
                                 ? "the sealed private key failed to open (tampered, or another device key)"
                             : kr == AGENT_ERR_NO_KEY ? "no device key to open the private key"
                                                      : "the certificate record is unreadable",
                             now_ms, &a->cfg.policy, 0);
        queue_update_if_same(a, e);
        unlock(a);
        return 0;
    }
    e->state = QUEUE_IN_FLIGHT;
    queue_update_if_same(a, e);
    unlock(a);

    cdnapi_result_t res;
    const char *pem = rec + off;
    bool on = want.flags & CF_ON;
    int64_t utc = 0;
    sign_time(a, now_ms);
    a->counters.calls++;
    if (on) {
        (void)agent_now_utc(a, now_ms, &utc);
        cdnapi_set_cert(&a->api, domain, want.name[0] ? want.name : NULL, pem, key, false, utc, &res);
    } else {
        cdnapi_cert_off(&a->api, domain, &res);
    }
    agent_free_secret(key, key_len);

    lock(a);
    uint32_t w = 0;
    if (res.cls != CDNAPI_SUCCESS) {
        w = handle_failure(a, e, domain, "certificate", &res, now_ms);
    } else {
        on_success(a);
        crec_t have;
        memset(&have, 0, sizeof have);
        have.flags = (uint8_t)(CF_PRESENT | (on ? CF_ON : 0));
        strcpy(have.name, want.name);
        if (on)
            sha256_hex(pem, have.sha256);
        uint8_t b[3 + AGENT_CERT_NAME_MAX + 65];
        size_t n = crec_encode(&have, b);
        queue_entry_t cur;
        bool same = queue_get(a->st, e->target, &cur) == STORE_OK && cur.seq == e->seq;
        if (store_txn_begin(a->st) == STORE_OK) {
            store_status_t rc = store_txn_put(a->st, dk, 3, b, n);
            if (rc == STORE_OK && same)
                rc = queue_txn_remove(a->st, e->target);
            if (rc == STORE_OK)
                (void)store_txn_commit(a->st);
            else
                (void)store_txn_abort(a->st);
        }
        char detail[96];
        snprintf(detail, sizeof detail, "%s%s%s", on ? "on" : "off", on && want.name[0] ? " " : "",
                 on ? want.name : "");
        emit(a, AGENT_EV_DELIVERED, domain, "certificate", detail, &res, e->attempts);
    }
    port_free(rec);
    unlock(a);
    return w;
}

agent_status_t agent_cert_key(store_t *st, const char *domain, char **key_pem)
{
    unsigned slot;
    char kk[4];
    *key_pem = NULL;
    agent_status_t ar = domain_slot(st, domain, false, &slot);
    if (ar != AGENT_OK)
        return ar;
    slot_key(kk, 'K', slot);
    return agent_get_sealed(st, kk, key_pem, NULL);
}

uint32_t agent_poll(agent_t *a, uint64_t now_ms)
{
    queue_entry_t e;
    uint32_t wait = UINT32_MAX;
    lock(a);
    if (!queue_next_due(a->st, now_ms, a->cfg.policy.cap_ms, &e, &wait)) {
        unlock(a);
        return wait;
    }
    int64_t utc;
    if (!agent_now_utc(a, now_ms, &utc)) {
        unlock(a);
        return fetch_server_date(a, now_ms);
    }
    uint32_t w = 0;
    if (now_ms < a->pause_until) {
        unlock(a);
        return (uint32_t)(a->pause_until - now_ms);
    }
    if (!retry_bucket_take(&a->bucket, now_ms, &w)) {
        unlock(a);
        return w ? w : 1;
    }
    if (e.target[0] == 'H')
        return header_step(a, &e, now_ms);
    return cert_step(a, &e, now_ms);
}
