/* agent: store keys, record codecs, domain slots; see agent_internal.h.
 *
 * Records (values little-endian):
 *   D<ss>          domain name of slot ss
 *   H<ss><hash8>   header; hash8 = FNV-1a of the lower-cased name, in hex:
 *                  u8 ver | u8 flags | u8 len key | u16 len desired |
 *                  u8 len config_id | u16 len delivered
 *   C<ss>          desired certificate: u8 ver | u8 flags(on) | u8 len name | PEM
 *   K<ss>          its private key PEM, sealed (components/vault, AAD "K<ss>")
 *   c<ss>          delivered certificate: u8 ver | u8 flags | u8 len name | sha256 hex
 */
#include "agent_internal.h"

#include <string.h>

#include "port.h"
#include "util.h"

static uint32_t fnv1a_lower(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)util_ascii_lower(*s)) * 16777619u;
    return h;
}

bool agent_same_header_name(const char *a, const char *b)
{
    return util_ascii_eq_nocase(a, b);
}

/* Put a length-prefixed string (the inverse of take()). */
static size_t give(uint8_t *out, size_t o, int lenbytes, const char *src)
{
    size_t n = strlen(src);
    if (lenbytes == 2)
        util_put_le16(out + o, (uint16_t)n);
    else
        out[o] = (uint8_t)n;
    memcpy(out + o + (size_t)lenbytes, src, n);
    return o + (size_t)lenbytes + n;
}

size_t hrec_encode(const hrec_t *h, uint8_t out[HREC_MAX])
{
    size_t o = 0;
    out[o++] = AGENT_REC_VERSION;
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
    size_t n = (size_t)util_get_le(b + *o, (unsigned)lenbytes);
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
    if (len < 2 || b[0] != AGENT_REC_VERSION)
        return false;
    h->flags = b[1];
    return take(b, len, &o, 1, h->key, sizeof h->key) &&
           take(b, len, &o, 2, h->desired, sizeof h->desired) &&
           take(b, len, &o, 1, h->config_id, sizeof h->config_id) &&
           take(b, len, &o, 2, h->delivered, sizeof h->delivered) && o == len;
}

size_t crec_encode(const crec_t *c, uint8_t *out)
{
    size_t n = strlen(c->name), m = strlen(c->sha256), x = (c->flags & CF_EXPIRY) ? 8u : 0u;
    out[0] = AGENT_REC_VERSION;
    out[1] = c->flags;
    out[2] = (uint8_t)n;
    memcpy(out + 3, c->name, n);
    if (x)
        util_put_le(out + 3 + n, (uint64_t)c->not_after, 8);
    memcpy(out + 3 + n + x, c->sha256, m);
    return 3 + n + x + m;
}

bool crec_decode(const uint8_t *b, size_t len, crec_t *c, size_t *pem_off)
{
    memset(c, 0, sizeof *c);
    size_t x = len >= 2 && (b[1] & CF_EXPIRY) ? 8u : 0u;
    if (len < 3 || b[0] != AGENT_REC_VERSION || b[2] > AGENT_CERT_NAME_MAX || 3u + b[2] + x > len)
        return false;
    c->flags = b[1];
    memcpy(c->name, b + 3, b[2]);
    if (x)
        c->not_after = (int64_t)util_get_le(b + 3 + b[2], 8);
    size_t at = 3u + b[2] + x, rest = len - at;
    if (pem_off)
        *pem_off = at;
    else if (rest < sizeof c->sha256)
        memcpy(c->sha256, b + at, rest);
    return true;
}

static void hex2(char *out, unsigned v)
{
    static const char hx[] = "0123456789abcdef";
    out[0] = hx[(v >> 4) & 15u];
    out[1] = hx[v & 15u];
}

void agent_slot_key(char out[AGENT_SLOT_KEY_LEN + 1], char tag, unsigned slot)
{
    out[0] = tag;
    hex2(out + 1, slot);
    out[3] = 0;
}

void agent_header_target(char out[AGENT_HEADER_KEY_LEN + 1], unsigned slot, const char *key)
{
    uint32_t h = fnv1a_lower(key);
    agent_slot_key(out, STORE_KEY_HEADER, slot);
    for (int i = 0; i < 4; i++)
        hex2(out + 3 + 2 * i, (unsigned)(h >> (24 - 8 * i)));
    out[AGENT_HEADER_KEY_LEN] = 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int agent_slot_of_key(const uint8_t *k, size_t kl)
{
    if (kl < AGENT_SLOT_KEY_LEN || hexval((char)k[1]) < 0 || hexval((char)k[2]) < 0)
        return -1;
    return hexval((char)k[1]) * 16 + hexval((char)k[2]);
}

typedef struct {
    store_t *st;
    const char *name;
    int found;
    store_status_t rc;
    uint64_t used[4]; /* slots in use, bitmap of 256 */
} slot_ctx_t;

static bool slot_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    slot_ctx_t *c = arg;
    char name[AGENT_DOMAIN_MAX + 1];
    size_t len = 0;
    int s = agent_slot_of_key(key, key_len);
    if (s < 0 || key_len != AGENT_SLOT_KEY_LEN || value_len > AGENT_DOMAIN_MAX)
        return true;
    c->used[s / 64] |= (uint64_t)1 << (s % 64);
    if (!c->name)
        return true;
    store_status_t rc = store_get(c->st, key, key_len, name, AGENT_DOMAIN_MAX, &len);
    if (rc != STORE_OK && rc != STORE_ERR_CORRUPT) {
        c->rc = rc;
        return false;
    }
    name[rc == STORE_OK ? len : 0] = 0;
    /* Host names are case-insensitive: CDN.Example.com is cdn.example.com
     * (an image written before names were stored lower-case matches too). */
    if (rc == STORE_OK && util_ascii_eq_nocase(name, c->name)) {
        c->found = s;
        return false;
    }
    return true;
}

agent_status_t agent_domain_slot(store_t *st, const char *domain, bool create, unsigned *slot)
{
    slot_ctx_t c;
    memset(&c, 0, sizeof c);
    c.st = st;
    c.name = domain;
    c.found = -1;
    const char prefix[1] = {STORE_KEY_DOMAIN};
    store_status_t rc = store_iterate(st, prefix, 1, slot_cb, &c);
    if (rc != STORE_OK || c.rc != STORE_OK)
        return agent_status_from_store(rc != STORE_OK ? rc : c.rc);
    if (c.found >= 0) {
        *slot = (unsigned)c.found;
        return AGENT_OK;
    }
    if (!create)
        return AGENT_ERR_NOT_FOUND;
    for (unsigned s = 0; s < AGENT_MAX_DOMAINS; s++) {
        if (!(c.used[s / 64] & ((uint64_t)1 << (s % 64)))) {
            char k[AGENT_SLOT_KEY_LEN + 1], lower[AGENT_DOMAIN_MAX + 1];
            size_t n = strlen(domain);
            if (n > AGENT_DOMAIN_MAX)
                return AGENT_ERR_ARG;
            for (size_t i = 0; i <= n; i++)
                lower[i] = util_ascii_lower(domain[i]);
            agent_slot_key(k, STORE_KEY_DOMAIN, s);
            rc = store_txn_put(st, k, AGENT_SLOT_KEY_LEN, lower, n);
            if (rc != STORE_OK)
                return agent_status_from_store(rc);
            *slot = s;
            return AGENT_OK;
        }
    }
    return AGENT_ERR_LIMIT;
}

store_status_t agent_domain_name(store_t *st, unsigned slot, char out[AGENT_DOMAIN_MAX + 1])
{
    char k[AGENT_SLOT_KEY_LEN + 1];
    size_t len = 0;
    agent_slot_key(k, STORE_KEY_DOMAIN, slot);
    store_status_t rc = store_get(st, k, AGENT_SLOT_KEY_LEN, out, AGENT_DOMAIN_MAX, &len);
    out[rc == STORE_OK ? len : 0] = 0;
    return rc;
}

store_status_t hrec_load(store_t *st, const char *target, hrec_t *h, uint8_t *buf)
{
    size_t len = 0;
    store_status_t rc = store_get(st, target, strlen(target), buf, HREC_MAX, &len);
    if (rc != STORE_OK)
        return rc;
    return hrec_decode(buf, len, h) ? STORE_OK : STORE_ERR_CORRUPT;
}

agent_status_t agent_load_cert(store_t *st, const char *key, char **out, size_t *pem_off, crec_t *c)
{
    uint8_t *raw = NULL;
    size_t len = 0, off = 0;
    agent_status_t ar = agent_get_value(st, key, &raw, &len);
    *out = NULL;
    if (ar != AGENT_OK)
        return ar;
    /* a certificate service's record must hold its two fields: a region
     * is read up to the NUL the value gets past its end */
    if (!crec_decode(raw, len, c, &off) ||
        ((c->flags & CF_CAS) && memchr(raw + off, 0, len - off) == NULL)) {
        port_free(raw);
        return AGENT_ERR_CORRUPT;
    }
    if (pem_off)
        *pem_off = off;
    *out = (char *)raw;
    return AGENT_OK;
}

/* (agent_load_cert checked that the payload holds its separator) */
void agent_cas_fields(const char *payload, const char **cas_id, const char **region)
{
    *cas_id = payload;
    *region = payload + strlen(payload) + 1;
}
