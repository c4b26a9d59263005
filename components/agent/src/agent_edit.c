/* agent: edits of the desired state and queue retry; see agent.h.
 *
 * An edit writes the new desired state and its queue entry in one store
 * transaction: both land, or neither. */
#include "agent_internal.h"

#include <stdio.h>
#include <string.h>

#include "port.h"

static agent_status_t fail_txn(store_t *st, agent_status_t rc)
{
    (void)store_txn_abort(st);
    return rc;
}

static agent_status_t txn_enqueue(store_t *st, const char *target)
{
    uint32_t seq;
    store_status_t rc = queue_next_seq(st, &seq);
    if (rc == STORE_OK)
        rc = queue_txn_enqueue(st, target, seq);
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    return AGENT_OK;
}

/* The header record to edit (new when there is none); buf: HREC_MAX. */
static agent_status_t edit_load(store_t *st, const char *target, const char *key, bool adding,
                                hrec_t *h, uint8_t *buf)
{
    store_status_t rc = hrec_load(st, target, h, buf);
    if (rc == STORE_NOT_FOUND) {
        if (!adding)
            return AGENT_ERR_NOT_FOUND;
        memset(h, 0, sizeof *h);
        strcpy(h->key, key);
        return AGENT_OK;
    }
    if (rc == STORE_ERR_CORRUPT) {
        /* The user's way out of a damaged record (delivery fails it and
         * says "set the header again"): a new record, in doubt, so the next
         * step reads the CDN back before it adds or deletes anything. */
        port_log(PORT_LOG_WARN, "agent", "header record %s was damaged: replaced", target);
        memset(h, 0, sizeof *h);
        strcpy(h->key, key);
        h->flags = HF_UNSURE | HF_FN_UNKNOWN; /* read back in both functions */
        return AGENT_OK;
    }
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    if (!agent_same_header_name(h->key, key))
        return AGENT_ERR_LIMIT; /* 32-bit name hash clash */
    if (!adding && !(h->flags & HF_DESIRED))
        return AGENT_ERR_NOT_FOUND;
    return AGENT_OK;
}

static agent_status_t header_edit_txn(store_t *st, const char *domain, const char *key,
                                      const char *value /* NULL = remove */, bool rule, uint8_t *buf)
{
    hrec_t h;
    char target[AGENT_HEADER_KEY_LEN + 1];
    unsigned slot;
    agent_status_t ar = agent_domain_slot(st, domain, value != NULL, &slot);
    if (ar != AGENT_OK)
        return ar;
    agent_header_target(target, slot, key);
    ar = edit_load(st, target, key, value != NULL, &h, buf);
    if (ar != AGENT_OK)
        return ar;
    if (value) {
        /* (a removal keeps the function: an add in doubt is looked for there) */
        h.flags = (uint8_t)((h.flags & ~HF_RULE) | HF_DESIRED | (rule ? HF_RULE : 0));
        strcpy(h.desired, value);
        strcpy(h.key, key); /* the newest spelling is the one delivered */
    } else {
        h.flags &= (uint8_t)~HF_DESIRED;
        h.desired[0] = 0;
    }
    /* Never delivered and not in doubt (nor a replaced record still to be
     * looked for in a function): removing it is the end of it (an add that
     * was never sent and its delete cancel out). */
    if (!value && !(h.flags & (HF_DELIVERED | HF_UNSURE | HF_FN_UNKNOWN | HF_FN_OTHER))) {
        store_status_t rc = store_txn_delete(st, target, strlen(target));
        if (rc == STORE_OK)
            rc = queue_txn_remove(st, target);
        return agent_status_from_store(rc);
    }
    size_t n = hrec_encode(&h, buf);
    store_status_t rc = store_txn_put(st, target, strlen(target), buf, n);
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    return txn_enqueue(st, target);
}

static agent_status_t header_edit(store_t *st, const char *domain, const char *key,
                                  const char *value, bool rule)
{
    uint8_t *buf = port_malloc(HREC_MAX);
    if (!buf)
        return AGENT_ERR_NOMEM;
    agent_status_t ar = agent_status_from_store(store_txn_begin(st));
    if (ar == AGENT_OK) {
        ar = header_edit_txn(st, domain, key, value, rule, buf);
        if (ar != AGENT_OK)
            (void)store_txn_abort(st);
        else
            ar = agent_status_from_store(store_txn_commit(st));
    }
    port_free(buf);
    return ar;
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
    memset(res, 0, sizeof *res);
    res->cls = CDNAPI_PERMANENT_INPUT;
    snprintf(res->code, sizeof res->code, "%s", code);
    snprintf(res->message, sizeof res->message, "%s", msg);
}

agent_status_t agent_header_set(store_t *st, const char *domain, const char *key, const char *value,
                                cdnapi_result_t *res)
{
    cdnapi_result_t tmp;
    cdnapi_result_t *r = res ? res : &tmp;
    if (!st)
        return AGENT_ERR_ARG;
    if (cdnapi_validate_header(domain, key, value, r) != CDNAPI_SUCCESS)
        return AGENT_ERR_INVALID;
    if (!agent_domain_name_ok(domain)) {
        local_error(r, "InvalidDomainName.Malformed", "domain name is not a host name");
        return AGENT_ERR_INVALID;
    }
    return header_edit(st, domain, key, value, false);
}

agent_status_t agent_rule_set(store_t *st, const char *domain, const cdnapi_rule_t *rule,
                              cdnapi_result_t *res)
{
    cdnapi_result_t tmp;
    cdnapi_result_t *r = res ? res : &tmp;
    if (!st || !rule)
        return AGENT_ERR_ARG;
    if (cdnapi_validate_rule(rule, r) != CDNAPI_SUCCESS)
        return AGENT_ERR_INVALID;
    if (!agent_domain_name_ok(domain)) {
        local_error(r, "InvalidDomainName.Malformed", "domain name is not a host name");
        return AGENT_ERR_INVALID;
    }
    char *spec = port_malloc(CDNAPI_MAX_VALUE_LEN + 1);
    if (!spec)
        return AGENT_ERR_NOMEM;
    agent_status_t ar = AGENT_ERR_INVALID;
    if (cdnapi_rule_spec(rule, spec))
        ar = header_edit(st, domain, rule->name, spec, true);
    else
        local_error(r, "InvalidParameter",
                    "a rewrite's source and destination are together over 1,021 bytes, more than "
                    "the agent keeps for one rule");
    port_free(spec);
    return ar;
}

agent_status_t agent_header_rm(store_t *st, const char *domain, const char *key)
{
    if (!st || !domain || !key || !*key || strlen(key) > CDNAPI_MAX_NAME_LEN)
        return AGENT_ERR_ARG;
    return header_edit(st, domain, key, NULL, false);
}

/* What a desired certificate record holds after its head: an uploaded
 * chain (with a sealed key), a certificate service's "CertId\0region", or
 * nothing (off). */
typedef struct {
    uint8_t flags;
    const char *name;
    const char *payload;
    size_t payload_len;
    const char *key_pem;             /* sealed beside it; NULL: any old key removed */
    const agent_cert_watch_t *watch; /* kept beside it; NULL: any watch ends */
} cert_desired_t;

/* The watch record: version, the two paths with their lengths, the hash. */
#define WREC_MAX (1u + 2u * (2u + AGENT_WATCH_PATH_MAX) + 32u)

static size_t wrec_encode(const agent_cert_watch_t *w, uint8_t out[WREC_MAX])
{
    size_t n = 0;
    const char *paths[2] = {w->cert_path, w->key_path};
    out[n++] = AGENT_REC_VERSION;
    for (int i = 0; i < 2; i++) {
        size_t l = strlen(paths[i]);
        util_put_le16(out + n, (uint16_t)l);
        memcpy(out + n + 2, paths[i], l);
        n += 2 + l;
    }
    memcpy(out + n, w->sha256, 32);
    return n + 32;
}

static bool wrec_decode(const uint8_t *b, size_t len, agent_cert_watch_t *w)
{
    size_t n = 1;
    char *paths[2] = {w->cert_path, w->key_path};
    memset(w, 0, sizeof *w);
    if (len < 1 || b[0] != AGENT_REC_VERSION)
        return false;
    for (int i = 0; i < 2; i++) {
        if (n + 2 > len)
            return false;
        size_t l = util_get_le16(b + n);
        if (l > AGENT_WATCH_PATH_MAX || n + 2 + l > len)
            return false;
        memcpy(paths[i], b + n + 2, l);
        n += 2 + l;
    }
    if (n + 32 != len)
        return false;
    memcpy(w->sha256, b + n, 32);
    return true;
}

static bool watch_ok(const agent_cert_watch_t *w)
{
    return w && w->cert_path[0] && w->key_path[0] && strlen(w->cert_path) <= AGENT_WATCH_PATH_MAX &&
           strlen(w->key_path) <= AGENT_WATCH_PATH_MAX;
}

/* Inside the open txn: the watch of slot written, or removed (NULL). */
static agent_status_t watch_txn(store_t *st, unsigned slot, const agent_cert_watch_t *w)
{
    char wk[AGENT_SLOT_KEY_LEN + 1];
    uint8_t b[WREC_MAX];
    agent_slot_key(wk, STORE_KEY_CERT_WATCH, slot);
    store_status_t rc = w ? store_txn_put(st, wk, AGENT_SLOT_KEY_LEN, b, wrec_encode(w, b))
                          : store_txn_delete(st, wk, AGENT_SLOT_KEY_LEN);
    return agent_status_from_store(rc == STORE_NOT_FOUND ? STORE_OK : rc);
}

/* Inside the open txn: the desired certificate record (and its sealed key,
 * or the key's removal). */
static agent_status_t cert_records_txn(store_t *st, unsigned slot, const cert_desired_t *d)
{
    char ck[AGENT_SLOT_KEY_LEN + 1], kk[AGENT_SLOT_KEY_LEN + 1];
    agent_slot_key(ck, STORE_KEY_CERT, slot);
    agent_slot_key(kk, STORE_KEY_CERT_KEY, slot);
    size_t nl = d->name ? strlen(d->name) : 0;
    uint8_t *val = port_malloc(3 + nl + d->payload_len);
    if (!val)
        return AGENT_ERR_NOMEM;
    crec_t c;
    memset(&c, 0, sizeof c);
    c.flags = d->flags;
    if (nl)
        memcpy(c.name, d->name, nl);
    size_t n = crec_encode(&c, val);
    if (d->payload_len)
        memcpy(val + n, d->payload, d->payload_len);
    store_status_t rc = store_txn_put(st, ck, AGENT_SLOT_KEY_LEN, val, n + d->payload_len);
    port_free(val);
    if (rc != STORE_OK)
        return agent_status_from_store(rc);
    agent_status_t ar = watch_txn(st, slot, d->watch);
    if (ar != AGENT_OK)
        return ar;
    if (d->key_pem)
        return agent_txn_put_sealed(st, kk, d->key_pem, strlen(d->key_pem));
    rc = store_txn_delete(st, kk, AGENT_SLOT_KEY_LEN);
    return agent_status_from_store(rc == STORE_NOT_FOUND ? STORE_OK : rc);
}

static agent_status_t cert_edit(store_t *st, const char *domain, const cert_desired_t *d)
{
    unsigned slot;
    char target[AGENT_SLOT_KEY_LEN + 1];
    agent_status_t ar = agent_status_from_store(store_txn_begin(st));
    if (ar != AGENT_OK)
        return ar;
    ar = agent_domain_slot(st, domain, true, &slot);
    if (ar == AGENT_OK)
        ar = cert_records_txn(st, slot, d);
    agent_slot_key(target, STORE_KEY_CERT, slot);
    if (ar == AGENT_OK)
        ar = txn_enqueue(st, target);
    if (ar != AGENT_OK)
        return fail_txn(st, ar);
    return agent_status_from_store(store_txn_commit(st));
}

/* A name the service takes (no control character, no comma, not over its
 * length) that fits the record (AGENT_CERT_NAME_MAX); NULL or "" is none. */
static bool cert_name_ok(const char *name, cdnapi_result_t *r)
{
    if (!name || !name[0])
        return true;
    if (strlen(name) > AGENT_CERT_NAME_MAX) {
        local_error(r, "InvalidCertName.TooLong", "certificate name longer than 64 bytes");
        return false;
    }
    return cdnapi_validate_cert_name(name, r) == CDNAPI_SUCCESS;
}

/* An uploaded pair the agent takes: the domain, the sizes, the name, and
 * the pair itself (parse, key match, not expired, covers the domain). */
static agent_status_t cert_checked(const char *domain, const char *name, const char *cert_pem,
                                   const char *key_pem, int64_t now_utc, cdnapi_result_t *r)
{
    if (!cert_pem || !key_pem)
        return AGENT_ERR_ARG;
    if (!agent_domain_name_ok(domain)) {
        local_error(r, "InvalidDomainName.Malformed", "domain name is not a host name");
        return AGENT_ERR_INVALID;
    }
    if (strlen(cert_pem) > CDNAPI_MAX_PEM_LEN || strlen(key_pem) > STORE_VALUE_MAX) {
        local_error(r, "Certificate.TooLarge", "certificate chain over 12 KB or key over 16 KB");
        return AGENT_ERR_INVALID;
    }
    if (!cert_name_ok(name, r) ||
        cdnapi_validate_cert(domain, cert_pem, key_pem, now_utc, r) != CDNAPI_SUCCESS)
        return AGENT_ERR_INVALID;
    return AGENT_OK;
}

/* An uploaded pair, checked, stored and queued; with its watch, or ending
 * any watch (w NULL). */
static agent_status_t cert_set_upload(store_t *st, const char *domain, const char *name,
                                      const char *cert_pem, const char *key_pem, int64_t now_utc,
                                      const agent_cert_watch_t *w, cdnapi_result_t *res)
{
    cdnapi_result_t tmp;
    cdnapi_result_t *r = res ? res : &tmp;
    if (!st)
        return AGENT_ERR_ARG;
    agent_status_t ar = cert_checked(domain, name, cert_pem, key_pem, now_utc, r);
    if (ar != AGENT_OK)
        return ar;
    cert_desired_t d = {CF_ON, name, cert_pem, strlen(cert_pem), key_pem, w};
    return cert_edit(st, domain, &d);
}

agent_status_t agent_cert_set(store_t *st, const char *domain, const char *name,
                              const char *cert_pem, const char *key_pem, int64_t now_utc,
                              cdnapi_result_t *res)
{
    return cert_set_upload(st, domain, name, cert_pem, key_pem, now_utc, NULL, res);
}

agent_status_t agent_cert_set_watched(store_t *st, const char *domain, const char *name,
                                      const char *cert_pem, const char *key_pem, int64_t now_utc,
                                      const agent_cert_watch_t *w, cdnapi_result_t *res)
{
    if (!watch_ok(w))
        return AGENT_ERR_ARG;
    return cert_set_upload(st, domain, name, cert_pem, key_pem, now_utc, w, res);
}

agent_status_t agent_cert_watch_put(store_t *st, const char *domain, const agent_cert_watch_t *w)
{
    unsigned slot;
    if (!st || !watch_ok(w) || !agent_domain_name_ok(domain))
        return AGENT_ERR_ARG;
    agent_status_t ar = agent_status_from_store(store_txn_begin(st));
    if (ar != AGENT_OK)
        return ar;
    ar = agent_domain_slot(st, domain, true, &slot);
    if (ar == AGENT_OK)
        ar = watch_txn(st, slot, w);
    if (ar != AGENT_OK)
        return fail_txn(st, ar);
    return agent_status_from_store(store_txn_commit(st));
}

typedef struct {
    store_t *st;
    void (*fn)(void *ctx, const char *domain, const agent_cert_watch_t *w);
    void *ctx;
    store_status_t rc;
} watches_ctx_t;

static bool watches_cb(void *arg, const uint8_t *key, size_t key_len, size_t value_len)
{
    watches_ctx_t *c = arg;
    uint8_t b[WREC_MAX];
    size_t len = 0;
    agent_cert_watch_t w;
    char domain[AGENT_DOMAIN_MAX + 1];
    int slot = agent_slot_of_key(key, key_len);
    (void)value_len;
    store_status_t rc = slot < 0 ? STORE_NOT_FOUND
                                 : store_get(c->st, key, key_len, b, sizeof b, &len);
    if (rc == STORE_OK)
        rc = agent_domain_name(c->st, (unsigned)slot, domain);
    if (rc == STORE_OK && wrec_decode(b, len, &w))
        c->fn(c->ctx, domain, &w);
    /* damage (or a slot gone) is fsck's to report; a failed read stops */
    c->rc = rc == STORE_NOT_FOUND || rc == STORE_ERR_CORRUPT || rc == STORE_ERR_TOO_BIG ? STORE_OK
                                                                                        : rc;
    return c->rc == STORE_OK;
}

agent_status_t agent_cert_watches(
    store_t *st, void (*fn)(void *ctx, const char *domain, const agent_cert_watch_t *w), void *ctx)
{
    static const char prefix[1] = {STORE_KEY_CERT_WATCH};
    watches_ctx_t c = {st, fn, ctx, STORE_OK};
    if (!st || !fn)
        return AGENT_ERR_ARG;
    store_status_t rc = store_iterate(st, prefix, 1, watches_cb, &c);
    return agent_status_from_store(rc != STORE_OK ? rc : c.rc);
}

agent_status_t agent_cert_set_cas(store_t *st, const char *domain, const char *name,
                                  const char *cas_id, const char *region, cdnapi_result_t *res)
{
    cdnapi_result_t tmp;
    cdnapi_result_t *r = res ? res : &tmp;
    char payload[CDNAPI_MAX_CAS_ID_LEN + 1 + 32];
    if (!st || !cas_id)
        return AGENT_ERR_ARG;
    if (!agent_domain_name_ok(domain)) {
        local_error(r, "InvalidDomainName.Malformed", "domain name is not a host name");
        return AGENT_ERR_INVALID;
    }
    region = region && region[0] ? region : NULL;
    if (!cert_name_ok(name, r) || cdnapi_validate_cas(cas_id, region, r) != CDNAPI_SUCCESS)
        return AGENT_ERR_INVALID;
    /* "CertId\0region": the region is one of two short words (checked) */
    size_t il = strlen(cas_id), rl = region ? strlen(region) : 0;
    memcpy(payload, cas_id, il + 1);
    if (rl)
        memcpy(payload + il + 1, region, rl);
    cert_desired_t d = {CF_ON | CF_CAS, name, payload, il + 1 + rl, NULL, NULL};
    return cert_edit(st, domain, &d);
}

agent_status_t agent_cert_off(store_t *st, const char *domain)
{
    if (!st || !agent_domain_name_ok(domain))
        return AGENT_ERR_ARG;
    cert_desired_t d = {0, NULL, NULL, 0, NULL, NULL};
    return cert_edit(st, domain, &d);
}

agent_status_t agent_cert_key(store_t *st, const char *domain, char **key_pem)
{
    unsigned slot;
    char kk[AGENT_SLOT_KEY_LEN + 1];
    *key_pem = NULL;
    agent_status_t ar = agent_domain_slot(st, domain, false, &slot);
    if (ar != AGENT_OK)
        return ar;
    agent_slot_key(kk, STORE_KEY_CERT_KEY, slot);
    return agent_get_sealed(st, kk, key_pem, NULL);
}

agent_status_t agent_cert_pem(store_t *st, const char *domain, char **cert_pem)
{
    unsigned slot;
    char ck[AGENT_SLOT_KEY_LEN + 1];
    char *rec = NULL;
    size_t off = 0;
    crec_t c;
    *cert_pem = NULL;
    agent_status_t ar = agent_domain_slot(st, domain, false, &slot);
    if (ar != AGENT_OK)
        return ar;
    agent_slot_key(ck, STORE_KEY_CERT, slot);
    ar = agent_load_cert(st, ck, &rec, &off, &c);
    if (ar == AGENT_OK && ((c.flags & CF_CAS) || !(c.flags & CF_ON)))
        ar = AGENT_ERR_NOT_FOUND; /* no uploaded certificate is desired */
    if (ar == AGENT_OK)
        memmove(rec, rec + off, strlen(rec + off) + 1);
    if (ar == AGENT_OK)
        *cert_pem = rec;
    else
        port_free(rec);
    return ar;
}

/* ------------------------------------------------------------- retry -- */

/* Entries are collected a batch at a time (the store cannot be written
 * while it is iterated), then reset; a reset entry is pending and is not
 * collected again, so the passes end. */
#define RETRY_BATCH 16u

typedef struct {
    char prefix[AGENT_HEADER_KEY_LEN + 1]; /* "" all, "H07"/"C07" slot, or one target */
    bool whole_slot;                       /* prefix is a slot: match H<ss>... and C<ss> */
    unsigned n;
    char targets[RETRY_BATCH][QUEUE_TARGET_MAX + 1];
} retry_ctx_t;

static bool retry_match(const retry_ctx_t *c, const char *target)
{
    if (!c->prefix[0])
        return true;
    if (c->whole_slot)
        return memcmp(target + 1, c->prefix + 1, 2) == 0 &&
               (target[0] == STORE_KEY_HEADER || target[0] == STORE_KEY_CERT);
    return strcmp(target, c->prefix) == 0;
}

static bool retry_collect_cb(void *arg, const queue_entry_t *e)
{
    retry_ctx_t *c = arg;
    bool stopped = e->state == QUEUE_FAILED || e->state == QUEUE_BLOCKED || e->state == QUEUE_DEAD;
    if (!stopped || !retry_match(c, e->target))
        return true;
    strcpy(c->targets[c->n++], e->target);
    return c->n < RETRY_BATCH;
}

static agent_status_t retry_filter(store_t *st, const char *domain, const char *key, retry_ctx_t *c)
{
    unsigned slot;
    memset(c, 0, sizeof *c);
    if (!domain)
        return AGENT_OK;
    agent_status_t ar = agent_domain_slot(st, domain, false, &slot);
    if (ar != AGENT_OK)
        return ar;
    if (!key) {
        agent_slot_key(c->prefix, STORE_KEY_HEADER, slot);
        c->whole_slot = true;
        return AGENT_OK;
    }
    if (strlen(key) > CDNAPI_MAX_NAME_LEN)
        return AGENT_ERR_ARG;
    agent_header_target(c->prefix, slot, key);
    return AGENT_OK;
}

/* Whether the header key has a record at target: a retry naming a header
 * nobody set is a mistake to report, not "nothing to retry". */
static agent_status_t header_known(store_t *st, const char *target, const char *key)
{
    agent_rec_work_t *w = port_malloc(sizeof *w);
    if (!w)
        return AGENT_ERR_NOMEM;
    store_status_t rc = hrec_load(st, target, &w->rec, w->buf);
    bool same = rc == STORE_OK && agent_same_header_name(w->rec.key, key);
    port_free(w);
    if (rc == STORE_OK || rc == STORE_NOT_FOUND)
        return same ? AGENT_OK : AGENT_ERR_NOT_FOUND;
    return rc == STORE_ERR_CORRUPT ? AGENT_ERR_CORRUPT : agent_status_from_store(rc);
}

/* One pass of up to RETRY_BATCH stopped entries; *more when the batch was full. */
static agent_status_t retry_batch(store_t *st, retry_ctx_t *c, unsigned *total, bool *more)
{
    c->n = 0;
    store_status_t rc = queue_foreach(st, retry_collect_cb, c);
    for (unsigned i = 0; rc == STORE_OK && i < c->n; i++) {
        queue_entry_t e;
        rc = queue_get(st, c->targets[i], &e);
        if (rc == STORE_OK) {
            queue_entry_reset(&e);
            rc = queue_put(st, &e);
        }
        if (rc == STORE_OK)
            (*total)++;
    }
    *more = c->n == RETRY_BATCH;
    return agent_status_from_store(rc);
}

agent_status_t agent_retry(store_t *st, const char *domain, const char *key, unsigned *count)
{
    retry_ctx_t c;
    unsigned total = 0;
    bool more = true;
    if (count)
        *count = 0;
    if (!st)
        return AGENT_ERR_ARG;
    agent_status_t ar = retry_filter(st, domain, key, &c);
    while (ar == AGENT_OK && more)
        ar = retry_batch(st, &c, &total, &more);
    /* Entries are reset one at a time: on a failure, count says how many
     * already were (calling again finishes the rest). */
    if (count)
        *count = total;
    if (ar == AGENT_OK && key && total == 0)
        ar = header_known(st, c.prefix, key);
    return ar;
}
