/* agent: agent_visit, the status view of headers and certificates. */
#include "agent_internal.h"

#include <string.h>

#include "port.h"

typedef struct {
    store_t *st;
    const agent_visitor_t *v;
    int slot; /* -1: all */
    uint8_t *buf;
    hrec_t *h;
    agent_status_t ar; /* the first read error that stopped the walk */
} visit_ctx_t;

/* A read that failed for another reason than a damaged record stops the
 * visit: status must not show a partial picture as the whole. */
static bool read_failed(visit_ctx_t *c, store_status_t rc)
{
    if (rc == STORE_OK || rc == STORE_NOT_FOUND || rc == STORE_ERR_CORRUPT)
        return false;
    c->ar = agent_status_from_store(rc);
    return true;
}

static bool visit_header_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    visit_ctx_t *c = arg;
    char target[AGENT_HEADER_KEY_LEN + 1], domain[AGENT_DOMAIN_MAX + 1];
    queue_entry_t q;
    int s = agent_slot_of_key(key, key_len);
    if (s < 0 || key_len != AGENT_HEADER_KEY_LEN || value_len > HREC_MAX ||
        (c->slot >= 0 && s != c->slot))
        return true;
    memcpy(target, key, key_len);
    target[key_len] = 0;
    store_status_t rc = hrec_load(c->st, target, c->h, c->buf);
    store_status_t dr = rc == STORE_OK ? agent_domain_name(c->st, (unsigned)s, domain) : rc;
    store_status_t qr = dr == STORE_OK ? queue_get(c->st, target, &q) : dr;
    if (read_failed(c, rc) || read_failed(c, dr) || read_failed(c, qr))
        return false;
    if (rc != STORE_OK || dr != STORE_OK)
        return true; /* damaged or orphaned: fsck reports it */
    const hrec_t *h = c->h;
    agent_header_view_t v = {domain,
                             h->key,
                             (h->flags & HF_DESIRED) ? h->desired : NULL,
                             (h->flags & HF_DELIVERED) ? h->delivered : NULL,
                             h->config_id,
                             (h->flags & HF_UNSURE) != 0,
                             qr == STORE_OK ? &q : NULL,
                             (h->flags & HF_RULE) != 0,
                             (h->flags & HF_RULE_HAVE) != 0};
    if (c->v->header)
        c->v->header(c->v->arg, &v);
    return true;
}

static bool visit_cert_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    visit_ctx_t *c = arg;
    char domain[AGENT_DOMAIN_MAX + 1], ck[AGENT_SLOT_KEY_LEN + 1], dk[AGENT_SLOT_KEY_LEN + 1];
    crec_t want, have;
    queue_entry_t q;
    size_t len = 0;
    (void)value_len;
    int s = agent_slot_of_key(key, key_len);
    if (s < 0 || key_len != AGENT_SLOT_KEY_LEN || (c->slot >= 0 && s != c->slot))
        return true;
    if (read_failed(c, agent_domain_name(c->st, (unsigned)s, domain)))
        return false;
    agent_slot_key(ck, STORE_KEY_CERT, (unsigned)s);
    agent_slot_key(dk, STORE_KEY_CERT_DELIVERED, (unsigned)s);
    char *rec = NULL;
    size_t off = 0;
    agent_status_t ar = agent_load_cert(c->st, ck, &rec, &off, &want);
    if (agent_status_store(ar) != STORE_OK || ar == AGENT_ERR_NOMEM) {
        port_free(rec);
        c->ar = ar;
        return false;
    }
    store_status_t hr = store_get(c->st, dk, AGENT_SLOT_KEY_LEN, c->buf, CREC_HEAD_MAX, &len);
    bool want_ok = ar == AGENT_OK;
    /* (a record holding only the doubt of a first push says nothing delivered) */
    bool have_ok = hr == STORE_OK && crec_decode(c->buf, len, &have, NULL) &&
                   ((have.flags & CF_PRESENT) || (have.flags & CF_UNSURE));
    char target[AGENT_SLOT_KEY_LEN + 1];
    agent_slot_key(target, STORE_KEY_CERT, (unsigned)s);
    store_status_t qr = queue_get(c->st, target, &q);
    if (read_failed(c, hr) || read_failed(c, qr) || (!want_ok && !have_ok)) {
        port_free(rec);
        return c->ar == AGENT_OK;
    }
    agent_cert_view_t v = {domain,
                           want_ok && (want.flags & CF_ON),
                           want_ok,
                           want_ok ? want.name : "",
                           have_ok && (have.flags & CF_ON),
                           have_ok && (have.flags & CF_PRESENT),
                           have_ok ? have.name : "",
                           have_ok ? have.sha256 : "",
                           qr == STORE_OK ? &q : NULL,
                           "",
                           "",
                           0,
                           0,
                           have_ok && (have.flags & CF_UNSURE)};
    if (want_ok && (want.flags & CF_CAS))
        agent_cas_fields(rec + off, &v.cas_id, &v.cas_region);
    else if (want_ok && (want.flags & CF_ON) &&
             !cdnapi_cert_validity(rec + off, &v.not_before, &v.not_after))
        v.not_before = v.not_after = 0;
    if (c->v->cert)
        c->v->cert(c->v->arg, &v);
    port_free(rec);
    return true;
}

static agent_status_t visit_all(visit_ctx_t *c)
{
    const char hp[1] = {STORE_KEY_HEADER}, dp[1] = {STORE_KEY_DOMAIN};
    /* (a visitor of certificates only costs no walk of the headers) */
    store_status_t rc = c->v->header ? store_iterate(c->st, hp, 1, visit_header_cb, c) : STORE_OK;
    if (rc == STORE_OK && c->ar == AGENT_OK)
        rc = store_iterate(c->st, dp, 1, visit_cert_cb, c);
    return c->ar != AGENT_OK ? c->ar : agent_status_from_store(rc);
}

agent_status_t agent_visit(store_t *st, const char *domain, const agent_visitor_t *v)
{
    visit_ctx_t c = {st, v, -1, NULL, NULL, AGENT_OK};
    if (!st || !v)
        return AGENT_ERR_ARG;
    if (domain) {
        unsigned s;
        agent_status_t ar = agent_domain_slot(st, domain, false, &s);
        if (ar != AGENT_OK)
            return ar;
        c.slot = (int)s;
    }
    /* Working memory on the heap: visits are reentrant and cost a device's
     * stack nothing. */
    c.buf = port_malloc(HREC_MAX);
    c.h = port_malloc(sizeof *c.h);
    agent_status_t ar = c.buf && c.h ? visit_all(&c) : AGENT_ERR_NOMEM;
    port_free(c.buf);
    port_free(c.h);
    return ar;
}
