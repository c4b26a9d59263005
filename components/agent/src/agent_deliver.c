/* agent: one delivery step in three phases; see agent_internal.h.
 *
 *   plan   (locked)   pick the due entry, read its records, write the
 *                     in-flight mark; nothing is sent when a write fails
 *   call   (unlocked) the network only
 *   apply  (locked)   re-read the records (an edit may have come in) and
 *                     record the outcome
 *
 * Every store write is checked: a failed one pauses delivery
 * (agent_store_trouble) and leaves what is on flash consistent, because the
 * in-flight ("unsure") mark is written before a call and cleared only by a
 * definite answer.
 */
#include "agent_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "port.h"

#define CLOCK_FIXES_IN_ROW_MAX 3u
/* After a throttled call nothing goes for THROTTLE_PAUSE_MS, give or take
 * half of it at random: the service counts calls over a one-second window,
 * and devices refused in the same second should not come back in the same
 * millisecond. */
#define THROTTLE_PAUSE_MS 1000u

/* ------------------------------------------------------------ helpers -- */

/* Write back the entry after an attempt, unless the target was edited
 * meanwhile (then the new entry, with its new seq, stands). */
static store_status_t entry_update(agent_t *a)
{
    queue_entry_t cur;
    store_status_t rc = queue_get(a->st, a->step.e.target, &cur);
    if (rc == STORE_NOT_FOUND)
        return STORE_OK; /* removed by an edit: nothing left to say */
    if (rc != STORE_OK)
        return rc;
    return cur.seq == a->step.e.seq ? queue_put(a->st, &a->step.e) : STORE_OK;
}

static store_status_t rec_save(agent_t *a)
{
    const char *t = a->step.e.target;
    agent_rec_work_t *w = a->step.w;
    size_t n = hrec_encode(&w->rec, w->buf);
    return store_put(a->st, t, strlen(t), w->buf, n);
}

/* Inside one transaction: the record (or its removal when neither desired
 * nor delivered) and, when the entry is still this step's, the entry's end. */
static store_status_t settle_txn(agent_t *a, const char *rec_key, const uint8_t *rec, size_t rec_len)
{
    const char *t = a->step.e.target;
    queue_entry_t cur;
    store_status_t rc = queue_get(a->st, t, &cur);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return rc;
    bool same = rc == STORE_OK && cur.seq == a->step.e.seq;
    rc = store_txn_begin(a->st);
    if (rc != STORE_OK)
        return rc;
    rc = rec ? store_txn_put(a->st, rec_key, strlen(rec_key), rec, rec_len)
             : store_txn_delete(a->st, rec_key, strlen(rec_key));
    if (rc == STORE_OK && same)
        rc = queue_txn_remove(a->st, t);
    if (rc == STORE_OK)
        return store_txn_commit(a->st);
    (void)store_txn_abort(a->st);
    return rc;
}

/* Desired == delivered: end the entry (and a removed header's record). */
static store_status_t header_settle(agent_t *a)
{
    agent_rec_work_t *w = a->step.w;
    if (!(w->rec.flags & (HF_DESIRED | HF_DELIVERED)))
        return settle_txn(a, a->step.e.target, NULL, 0);
    size_t n = hrec_encode(&w->rec, w->buf);
    return settle_txn(a, a->step.e.target, w->buf, n);
}

/* An entry with nothing to deliver (its records are gone): drop it. */
static store_status_t entry_drop(agent_t *a)
{
    store_status_t rc = store_txn_begin(a->st);
    if (rc != STORE_OK)
        return rc;
    rc = queue_txn_remove(a->st, a->step.e.target);
    if (rc == STORE_OK)
        return store_txn_commit(a->st);
    (void)store_txn_abort(a->st);
    return rc;
}

static uint32_t checked(agent_t *a, uint64_t now_ms, store_status_t rc, const char *doing)
{
    return rc == STORE_OK ? 0 : agent_store_trouble(a, now_ms, agent_status_from_store(rc), doing);
}

/* Did the change certainly not apply? A 4xx reply says so, with one
 * exception: SignatureNonceUsed says this very request already reached the
 * server (a transport resent it after the connection dropped), so it may
 * well have applied. A transport that failed before the request left (no
 * connection, no name, no handshake, an untrusted server, a request refused
 * locally) sent nothing. Anything else stays unknown and is read back. */
static bool did_not_apply(const cdnapi_result_t *res)
{
    switch (res->http_status) {
    case HTTP_OK: /* status 0: refused or failed locally, before any byte left */
        return res->status_code == 0 || (res->status_code >= 400 && res->status_code < 500 &&
                                         strcmp(res->code, "SignatureNonceUsed") != 0);
    case HTTP_ERR_CONNECT:
    case HTTP_ERR_DNS:
    case HTTP_ERR_TLS_HANDSHAKE:
    case HTTP_ERR_CERT_VERIFY:
    case HTTP_ERR_ARG: return true;
    default: return false;
    }
}

/* The CDN does not know the domain: it holds no configs for it. */
static bool domain_unknown(const cdnapi_result_t *res)
{
    return strcmp(res->code, "InvalidDomain.NotFound") == 0;
}

static bool config_id_gone(const cdnapi_result_t *res)
{
    return strcmp(res->code, "InvalidConfigId.NotFound") == 0;
}

static queue_failure_t failure_kind(const cdnapi_result_t *res)
{
    switch (res->cls) {
    case CDNAPI_PERMANENT_INPUT: return QUEUE_FAIL_PERMANENT;
    case CDNAPI_PERMANENT_CREDENTIALS:
    case CDNAPI_CONFIGURATION: return QUEUE_FAIL_BLOCKED;
    default: return QUEUE_FAIL_RETRY;
    }
}

/* A refusal that every call of this configuration would meet (the server
 * certificate, the signature, the key, the token): calling on only wastes
 * the account's rate. Permission refusals (Forbidden*) may concern one
 * domain only and block just their entry. */
static bool refuses_every_call(const cdnapi_result_t *res)
{
    if (strncmp(res->code, "Local.", 6) == 0)
        return false; /* a record of this entry (its sealed key), not the setup */
    return res->cls == CDNAPI_CONFIGURATION ||
           (res->cls == CDNAPI_PERMANENT_CREDENTIALS && strncmp(res->code, "Forbidden", 9) != 0);
}

static bool throttled(const cdnapi_result_t *res)
{
    return strncmp(res->code, "Throttling", 10) == 0;
}

static void note_throttling(agent_t *a, const cdnapi_result_t *res, uint64_t now_ms)
{
    if (!throttled(res)) {
        a->throttled_in_row = 0;
        return;
    }
    a->counters.throttled++;
    a->throttled_in_row++;
    if (a->throttled_in_row > a->counters.max_throttled_in_row)
        a->counters.max_throttled_in_row = a->throttled_in_row;
    retry_bucket_throttled(&a->bucket, now_ms, agent_random32());
    uint64_t until = now_ms + THROTTLE_PAUSE_MS / 2u + agent_random32() % THROTTLE_PAUSE_MS;
    a->pause_until = until > a->pause_until ? until : a->pause_until;
    agent_rate_note(a, now_ms, false);
}


static void halt(agent_t *a, const cdnapi_result_t *res)
{
    a->halted = true;
    snprintf(a->halt_code, sizeof a->halt_code, "%s", res->code);
    snprintf(a->halt_message, sizeof a->halt_message, "%s", res->message);
    port_log(PORT_LOG_ERROR, "agent", "delivery stopped until the configuration changes: %s: %s",
             res->code, res->message);
}

/* No answer from the service at all (no name, no connection, no handshake;
 * a timeout, a reset): the link, not the change. */
static bool link_down(const cdnapi_result_t *res)
{
    switch (res->http_status) {
    case HTTP_ERR_DNS:
    case HTTP_ERR_CONNECT:
    case HTTP_ERR_TLS_HANDSHAKE:
    case HTTP_ERR_TIMEOUT:
    case HTTP_ERR_RESET:
    case HTTP_ERR_CLOSED: return true;
    default: return false;
    }
}

/* The link's own back-off: every change waits for the link, and the
 * devices of a fleet that lost the service together come back at random
 * points of one full-jitter window, not each at the earliest of its
 * changes' own back-offs (which bunches them at the window's start). */
static void note_link(agent_t *a, const cdnapi_result_t *res, uint64_t now_ms)
{
    if (!link_down(res)) {
        if (res->status_code != 0) /* (an answer; a local refusal says nothing of the link) */
            a->link_failures_in_row = 0;
        return;
    }
    (void)agent_pause_backoff(a, now_ms, &a->link_failures_in_row);
}

/* A failed call's own effects, once for all the changes it carried: the
 * rate, the clock, and when a throttled change goes again (one interval at
 * the lowered rate, jittered; not a back-off that doubles with each
 * refusal, which would leave a device that met busy seconds far behind the
 * others). */
static void call_failed(agent_t *a, const cdnapi_result_t *res, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    note_throttling(a, res, now_ms);
    note_link(a, res, now_ms);
    s->clock_fixed = res->cls == CDNAPI_CLOCK && res->has_server_date &&
                     a->clock_fixes_in_row < CLOCK_FIXES_IN_ROW_MAX;
    if (s->clock_fixed) {
        a->clock_fixes_in_row++;
        agent_clock_from_server(a, res->server_date, now_ms);
    }
    uint32_t interval = 1000000u / a->bucket.rate_milli;
    s->defer_to = now_ms + interval / 2u + agent_random32() % (interval + 1u);
}

/* A failed call: throttling, clock, backoff, blocked, permanent. */
static uint32_t failure(agent_t *a, const cdnapi_result_t *res, uint64_t now_ms)
{
    queue_entry_t *e = &a->step.e;
    if (!a->step.call_noted)
        call_failed(a, res, now_ms);
    if (a->step.clock_fixed) {
        e->state = QUEUE_PENDING; /* retry at once with the right time */
        return checked(a, now_ms, entry_update(a), "writing a queue entry");
    }
    const char *code = res->code[0] ? res->code : http_client_status_str(res->http_status);
    queue_failure_t kind = failure_kind(res);
    const char *message = res->message;
    if (res->http_status == HTTP_ERR_TOO_LARGE &&
        (a->step.act == ACT_LIST || a->step.act == ACT_BATCH))
        /* (retried, as a reply cut or garbled on its way may be; but when
         * the domain's configs outgrow the limit, status says so) */
        message = "the reply (a read-back of the domain's configs) is larger than the "
                  "reply limit: raise max_reply_bytes, or keep fewer configs on the domain";
    if (throttled(res)) {
        /* the account's rate, not the change: the others of its queue go
         * meanwhile */
        queue_record_deferred(e, code, res->message, a->step.defer_to);
        agent_emit(a, AGENT_EV_RETRY, code, res, now_ms);
        return checked(a, now_ms, entry_update(a), "writing a queue entry");
    }
    queue_record_failure(e, kind, code, message, now_ms, &a->cfg.policy, agent_random32(), a->epoch);
    store_status_t rc = entry_update(a);
    if (kind == QUEUE_FAIL_BLOCKED && refuses_every_call(res) && !a->halted)
        halt(a, res); /* (once: a batch's members share the refusal) */
    agent_emit(a,
               kind == QUEUE_FAIL_PERMANENT ? AGENT_EV_FAILED
               : kind == QUEUE_FAIL_BLOCKED ? AGENT_EV_BLOCKED
                                            : AGENT_EV_RETRY,
               code, res, now_ms);
    return checked(a, now_ms, rc, "writing a queue entry");
}

/* A failure found locally before any call (no server words to quote). */
static uint32_t local_failure(agent_t *a, queue_failure_t kind, const char *code,
                              const char *message, uint64_t now_ms)
{
    cdnapi_result_t r;
    memset(&r, 0, sizeof r);
    r.cls = kind == QUEUE_FAIL_PERMANENT ? CDNAPI_PERMANENT_INPUT
            : kind == QUEUE_FAIL_BLOCKED ? CDNAPI_PERMANENT_CREDENTIALS
                                         : CDNAPI_RETRYABLE;
    snprintf(r.code, sizeof r.code, "%s", code);
    snprintf(r.message, sizeof r.message, "%s", message);
    snprintf(r.request_id, sizeof r.request_id, "local");
    r.http_status = HTTP_OK;
    return failure(a, &r, now_ms);
}

static void succeeded(agent_t *a, uint64_t now_ms)
{
    if (a->step.call_noted)
        return;
    a->throttled_in_row = 0;
    a->clock_fixes_in_row = 0;
    a->link_failures_in_row = 0;
    retry_bucket_succeeded(&a->bucket);
    agent_rate_note(a, now_ms, false);
}

/* --------------------------------------------------------- headers -- */

static agent_act_t header_action(const hrec_t *h)
{
    bool want = h->flags & HF_DESIRED, have = h->flags & HF_DELIVERED;
    bool other_function = !(h->flags & HF_RULE) != !(h->flags & HF_RULE_HAVE);
    if (((h->flags & HF_UNSURE) && !have) || (h->flags & (HF_FN_UNKNOWN | HF_FN_OTHER)))
        return ACT_LIST; /* an add may have landed: look before adding again */
    /* delivered, its ConfigId not learnt (agent_step_t.id_later): learnt
     * first, before any call that needs it (a modify without one would add) */
    if (have && !h->config_id[0] &&
        (!want || other_function || (h->flags & HF_UNSURE) || strcmp(h->desired, h->delivered)))
        return ACT_LIST;
    if (want && have && other_function)
        return ACT_DELETE; /* moving to the other function: the old config goes first */
    if (want && have && (h->flags & HF_UNSURE))
        return ACT_MODIFY; /* a modify in doubt may have landed: desired again, even the value
                              delivered before it (an edit back) */
    if (want)
        return !have ? ACT_ADD : strcmp(h->desired, h->delivered) != 0 ? ACT_MODIFY : ACT_NONE;
    return have ? ACT_DELETE : ACT_NONE;
}

/* The function a step's call concerns: what it adds or modifies, else the
 * config delivered or in doubt (which a delete removes, a read-back looks
 * for). */
static cdnapi_function_t header_function(const hrec_t *h, agent_act_t act)
{
    uint8_t flag = act == ACT_ADD || act == ACT_MODIFY ? HF_RULE : HF_RULE_HAVE;
    if (act == ACT_LIST && (h->flags & (HF_FN_UNKNOWN | HF_FN_OTHER)))
        flag = HF_FN_OTHER; /* set_req_header first, then origin_request_header */
    return (h->flags & flag) ? CDNAPI_FN_ORIGIN_RULE : CDNAPI_FN_REQ_HEADER;
}

/* Record which function the config delivered or in doubt is. */
static void header_have_function(hrec_t *h, cdnapi_function_t f)
{
    h->flags = (uint8_t)(f == CDNAPI_FN_ORIGIN_RULE ? h->flags | HF_RULE_HAVE
                                                    : h->flags & ~HF_RULE_HAVE);
}

/* The entry's records: PLAN_CALL when they are there, else what to do. */
static agent_plan_t header_read(agent_t *a, uint64_t now_ms, uint32_t *wait)
{
    agent_step_t *s = &a->step;
    int slot = agent_slot_of_key((const uint8_t *)s->e.target, strlen(s->e.target));
    store_status_t rc = hrec_load(a->st, s->e.target, &s->w->rec, s->w->buf);
    store_status_t dr = slot < 0         ? STORE_NOT_FOUND
                        : rc == STORE_OK ? agent_domain_name(a->st, (unsigned)slot, s->domain)
                                         : rc;
    if (rc == STORE_NOT_FOUND || dr == STORE_NOT_FOUND) {
        /* an entry without a target (left by a cut edit): nothing to do */
        *wait = checked(a, now_ms, entry_drop(a), "dropping a queue entry");
        return PLAN_IDLE;
    }
    if (rc == STORE_ERR_CORRUPT || dr == STORE_ERR_CORRUPT) {
        *wait = local_failure(a, QUEUE_FAIL_PERMANENT, "Local.StoreCorrupt",
                              "the header record is damaged: set the header again", now_ms);
        return PLAN_IDLE;
    }
    if (rc != STORE_OK || dr != STORE_OK) {
        *wait = agent_store_trouble(a, now_ms, agent_status_from_store(rc != STORE_OK ? rc : dr),
                                    "reading a header record");
        return PLAN_IDLE;
    }
    snprintf(s->what, sizeof s->what, "header %s", s->w->rec.key);
    return PLAN_CALL;
}

static bool batch_plan(agent_t *a, uint64_t now_ms, uint32_t *wait, agent_plan_t *plan);

static agent_plan_t header_plan(agent_t *a, uint64_t now_ms, uint32_t *wait)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    agent_plan_t plan;
    if (header_read(a, now_ms, wait) != PLAN_CALL)
        return PLAN_IDLE;
    s->act = header_action(h);
    if (s->act == ACT_NONE) {
        h->flags &= (uint8_t)~HF_UNSURE;
        *wait = checked(a, now_ms, header_settle(a), "settling a header");
        return PLAN_IDLE;
    }
    if (batch_plan(a, now_ms, wait, &plan))
        return plan;
    memset(&s->req, 0, sizeof s->req);
    s->req.function = header_function(h, s->act);
    /* the second look of a replaced record, after the first adopted a copy */
    s->keep_none = s->act == ACT_LIST &&
                   (h->flags & (HF_FN_OTHER | HF_DELIVERED)) == (HF_FN_OTHER | HF_DELIVERED);
    if (s->act != ACT_LIST) {
        /* Write the doubt down before the request can land: no mark, no
         * call. The mark says which function: a read-back looks there. */
        h->flags |= HF_UNSURE;
        header_have_function(h, s->req.function);
        store_status_t rc = rec_save(a);
        if (rc != STORE_OK) {
            *wait = agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                        "writing the in-flight mark (nothing was sent)");
            return PLAN_IDLE;
        }
    }
    strcpy(s->req.key, h->key);
    strcpy(s->req.value, h->desired);
    if (s->act == ACT_MODIFY || s->act == ACT_DELETE)
        strcpy(s->req.config_id, h->config_id);
    return PLAN_CALL;
}

/* Read-back visitor: the copy of our header to keep, the others to delete.
 * The copy already holding the desired value (req.value) is kept when there
 * is one. */
static bool readback_cb(void *arg, const cdnapi_header_t *h)
{
    agent_step_t *s = arg;
    const char *loser;
    /* (a copy without a ConfigId can be neither changed nor deleted: it is
     * not counted, or the read-back would be repeated for ever) */
    if (h->function != s->req.function || !agent_same_header_name(h->key, s->req.key) ||
        !h->config_id[0])
        return true;
    if (!s->found && !s->keep_none) {
        s->found = true;
        s->kept = *h;
        return true;
    }
    loser = h->config_id;
    char keep_id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
    if (!s->keep_none && strcmp(s->kept.value, s->req.value) != 0 &&
        strcmp(h->value, s->req.value) == 0) {
        strcpy(keep_id, s->kept.config_id);
        s->kept = *h;
        loser = keep_id;
    }
    if (s->ndups == CDNAPI_MAX_DELETE_IDS || !loser[0]) {
        s->more_dups = true; /* the next read-back deletes the rest */
        return true;
    }
    size_t n = strlen(s->dups);
    snprintf(s->dups + n, sizeof s->dups - n, "%s%s", n ? "," : "", loser);
    s->ndups++;
    return true;
}

static void readback_call(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    s->found = s->more_dups = false;
    s->ndups = 0;
    s->dups[0] = 0;
    memset(&s->kept, 0, sizeof s->kept);
    memset(&s->dup_res, 0, sizeof s->dup_res);
    if (cdnapi_list_configs(&a->api, s->domain, s->req.function, readback_cb, s, NULL, &s->res) !=
            CDNAPI_SUCCESS ||
        !s->ndups)
        return;
    /* Extra copies from earlier unknown outcomes go in one call. */
    a->counters.calls++;
    retry_bucket_charge(&a->bucket, now_ms);
    agent_sign_time(a, now_ms);
    cdnapi_delete_configs(&a->api, s->domain, s->dups, s->req.function, &s->dup_res);
}

static void batch_call(agent_t *a, uint64_t now_ms);
static uint32_t batch_apply(agent_t *a, uint64_t now_ms);

static void header_call(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    cdnapi_batch_config_t got;
    const char *dom = s->domain;
    s->new_id[0] = 0;
    if (s->act == ACT_BATCH) {
        batch_call(a, now_ms);
    } else if (s->act == ACT_LIST) {
        readback_call(a, now_ms);
    } else if (s->act == ACT_DELETE) {
        cdnapi_delete_configs(&a->api, s->domain, s->req.config_id, s->req.function, &s->res);
    } else {
        cdnapi_set_t one = {s->req.function, s->req.key, s->req.value, s->req.config_id, NULL};
        memset(&got, 0, sizeof got);
        size_t n = 0;
        if (cdnapi_batch_set(&a->api, &dom, 1, &one, 1, &got, 1, &n, &s->res) == CDNAPI_SUCCESS &&
            n >= 1)
            strcpy(s->new_id, got.config_id);
    }
}

/* A read-back's end: the record as now known saved; then, when the CDN does
 * not know the domain and the header is still desired, that refusal; else
 * the entry pending, and the next step decides with what is known now. */
static uint32_t readback_settled(agent_t *a, uint64_t now_ms, bool unknown_domain, bool adopted)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    char detail[96];
    store_status_t rc = rec_save(a);
    if (rc != STORE_OK)
        return agent_store_trouble(a, now_ms, agent_status_from_store(rc), "recording a read-back");
    if (unknown_domain && (h->flags & HF_DESIRED))
        return failure(a, &s->res, now_ms); /* the domain is not on the CDN: the answer */
    if (adopted && (h->flags & HF_DESIRED) && header_action(h) == ACT_NONE) {
        /* the change is on the CDN: said so, as a delivery */
        snprintf(detail, sizeof detail, "found on the CDN by read-back: ConfigId %.24s",
                 h->config_id);
        agent_emit(a, AGENT_EV_DELIVERED, detail, &s->res, now_ms);
    }
    s->e.state = QUEUE_PENDING;
    return checked(a, now_ms, entry_update(a), "writing a queue entry");
}

/* After a read-back: what the CDN holds is known; adopt it. */
static uint32_t readback_apply(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    bool unknown_domain = s->res.cls != CDNAPI_SUCCESS && domain_unknown(&s->res);
    if (s->res.cls != CDNAPI_SUCCESS && !unknown_domain)
        return failure(a, &s->res, now_ms);
    succeeded(a, now_ms);
    if (s->ndups && s->dup_res.cls != CDNAPI_SUCCESS) {
        /* The record stays unsure: the next attempt reads back again. A
         * copy deleted meanwhile is no reason to stop. */
        if (config_id_gone(&s->dup_res) || s->dup_res.cls == CDNAPI_PERMANENT_INPUT)
            s->dup_res.cls = CDNAPI_RETRYABLE;
        return failure(a, &s->dup_res, now_ms);
    }
    a->counters.duplicates_removed += s->ndups;
    if (s->more_dups) {
        s->e.state = QUEUE_PENDING; /* more copies than one call deletes: again */
        return checked(a, now_ms, entry_update(a), "writing a queue entry");
    }
    if (!s->keep_none) { /* (else the copy the first look adopted stands) */
        h->flags &= (uint8_t) ~(HF_UNSURE | HF_DELIVERED);
        h->config_id[0] = h->delivered[0] = 0;
    }
    if (s->found) {
        h->flags |= HF_DELIVERED;
        header_have_function(h, s->req.function);
        snprintf(h->config_id, sizeof h->config_id, "%s", s->kept.config_id);
        snprintf(h->delivered, sizeof h->delivered, "%s", s->kept.value);
        a->counters.adoptions++;
    }
    /* a replaced record: set_req_header looked at, origin_request_header next */
    h->flags = (uint8_t)((h->flags & HF_FN_UNKNOWN) ? (h->flags & ~HF_FN_UNKNOWN) | HF_FN_OTHER
                                                    : h->flags & ~HF_FN_OTHER);
    return readback_settled(a, now_ms, unknown_domain, s->found && !s->keep_none);
}

/* The change was refused or its outcome is unknown. */
static uint32_t change_failed(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    if (s->act == ACT_MODIFY && config_id_gone(&s->res)) {
        /* deleted behind our back: add it again */
        h->flags &= (uint8_t) ~(HF_DELIVERED | HF_UNSURE);
        h->config_id[0] = h->delivered[0] = 0;
        store_status_t rc = rec_save(a);
        s->e.state = QUEUE_PENDING;
        if (rc == STORE_OK)
            rc = entry_update(a);
        return checked(a, now_ms, rc, "recording a lost ConfigId");
    }
    if (did_not_apply(&s->res)) {
        h->flags &= (uint8_t)~HF_UNSURE; /* a 4xx reply: it did not apply */
        store_status_t rc = rec_save(a);
        if (rc != STORE_OK)
            return agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                       "clearing the in-flight mark");
    }
    return failure(a, &s->res, now_ms);
}

static uint32_t change_apply(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    char detail[96];
    if (s->act == ACT_DELETE && s->res.cls != CDNAPI_SUCCESS &&
        (config_id_gone(&s->res) || domain_unknown(&s->res)))
        s->res.cls = CDNAPI_SUCCESS; /* already gone: that is what we wanted */
    if (s->res.cls != CDNAPI_SUCCESS)
        return change_failed(a, now_ms);
    if (s->act == ACT_ADD && !s->new_id[0] && !s->id_later) {
        s->res.cls = CDNAPI_RETRYABLE; /* applied, but no ConfigId: read it back */
        snprintf(s->res.code, sizeof s->res.code, "Local.NoConfigId");
        return failure(a, &s->res, now_ms);
    }
    succeeded(a, now_ms);
    h->flags &= (uint8_t)~HF_UNSURE;
    header_have_function(h, s->req.function);
    if (s->act == ACT_DELETE) {
        h->flags &= (uint8_t)~HF_DELIVERED;
        h->config_id[0] = h->delivered[0] = 0;
        snprintf(detail, sizeof detail, "deleted ConfigId %.24s", s->req.config_id);
    } else {
        h->flags |= HF_DELIVERED;
        snprintf(h->config_id, sizeof h->config_id, "%.24s",
                 s->act == ACT_MODIFY ? s->req.config_id : s->new_id);
        strcpy(h->delivered, s->req.value);
        snprintf(detail, sizeof detail, "%s ConfigId %.24s",
                 s->act == ACT_ADD ? "added" : "modified",
                 h->config_id[0] ? h->config_id : "(learnt before it changes)");
    }
    if (header_action(h) != ACT_NONE) {
        /* Edited meanwhile (the new entry goes next, this one is no longer
         * the target's), or the old function's config deleted before the
         * new one is added: this entry goes on. */
        s->e.state = QUEUE_PENDING;
        store_status_t rc = rec_save(a);
        if (rc == STORE_OK)
            rc = entry_update(a);
        return checked(a, now_ms, rc, "recording a delivery");
    }
    store_status_t rc = header_settle(a);
    if (rc != STORE_OK)
        return agent_store_trouble(a, now_ms, agent_status_from_store(rc), "recording a delivery");
    agent_emit(a, AGENT_EV_DELIVERED, detail, &s->res, now_ms);
    return 0;
}

static uint32_t header_apply(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    if (s->act == ACT_BATCH)
        return batch_apply(a, now_ms);
    store_status_t rc = hrec_load(a->st, s->e.target, &s->w->rec, s->w->buf);
    if (rc != STORE_OK) /* the unsure mark (if any) stands: the next step looks again */
        return rc == STORE_NOT_FOUND ? 0
                                     : agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                                           "reading a header record");
    return s->act == ACT_LIST ? readback_apply(a, now_ms) : change_apply(a, now_ms);
}

/* ---------------------------------------------------------- batches -- */

/* Changes that go alone for now: a refused batch's members (whose change
 * was refused is not known) and adds whose read-back found a stray copy,
 * until nothing more will be due. When the list is full the oldest goes. */
static bool batch_solo_has(const agent_t *a, const char *target)
{
    for (unsigned i = 0; i < a->nsolo; i++)
        if (strcmp(a->solo[i], target) == 0)
            return true;
    return false;
}

static void batch_solo_add(agent_t *a, const char *target)
{
    if (batch_solo_has(a, target))
        return;
    if (a->nsolo == AGENT_SOLO_MAX) {
        memmove(a->solo[0], a->solo[1], (AGENT_SOLO_MAX - 1u) * sizeof a->solo[0]);
        a->nsolo--;
    }
    strcpy(a->solo[a->nsolo++], target);
}

/* The batch a header's step can join: ACT_ADD for an add or a modify (one
 * BatchSetCdnDomainConfig), ACT_LIST for an add in doubt (one read-back of
 * its function), ACT_NONE for the rest (a delete; a read-back that deletes
 * extra copies or looks in both functions: those go alone). */
static agent_act_t batch_kind(const hrec_t *h, agent_act_t act)
{
    if (act == ACT_ADD || act == ACT_MODIFY)
        return ACT_ADD;
    if (act == ACT_LIST &&
        (h->flags & (HF_UNSURE | HF_DELIVERED | HF_FN_UNKNOWN | HF_FN_OTHER)) == HF_UNSURE)
        return ACT_LIST;
    return ACT_NONE;
}

/* Add h (its name and desired value) to the batch: false when the pool or
 * the member table is full. */
static bool batch_add(agent_batch_t *b, const hrec_t *h, const char *target, uint32_t seq,
                      agent_act_t act)
{
    size_t kl = strlen(h->key) + 1u, vl = strlen(h->desired) + 1u;
    if (b->n == AGENT_BATCH_MAX || b->used + kl + vl > sizeof b->pool)
        return false;
    agent_batch_member_t *m = &b->m[b->n++];
    memset(m, 0, sizeof *m);
    strcpy(m->target, target);
    m->seq = seq;
    m->act = (uint8_t)act;
    m->function = (uint8_t)header_function(h, act);
    m->key_off = (uint16_t)b->used;
    memcpy(b->pool + b->used, h->key, kl);
    m->value_off = (uint16_t)(b->used + kl);
    memcpy(b->pool + m->value_off, h->desired, vl);
    b->used += (unsigned)(kl + vl);
    if (act == ACT_MODIFY)
        strcpy(m->config_id, h->config_id);
    return true;
}

/* The batch's adds of function f. */
static unsigned batch_adds(const agent_batch_t *b, cdnapi_function_t f)
{
    unsigned n = 0;
    for (unsigned i = 0; i < b->n; i++)
        n += b->m[i].act == ACT_ADD && b->m[i].function == (uint8_t)f;
    return n;
}

/* The other changes of the step's domain that can go with it: among the
 * lowest-seq entries (the due cache), those waiting (due or backing off)
 * whose records ask for the same kind of call. One gone or damaged is left
 * for its own step; a store that cannot be read is store trouble. */
static store_status_t batch_gather(agent_t *a, agent_act_t kind, uint8_t function)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    for (unsigned i = 0; i < a->due.n && s->batch.n < AGENT_BATCH_MAX; i++) {
        const char *t = a->due.e[i].target;
        queue_entry_t e;
        if (t[0] != STORE_KEY_HEADER || memcmp(t + 1, s->e.target + 1, 2) != 0 ||
            strcmp(t, s->e.target) == 0 || batch_solo_has(a, t))
            continue;
        store_status_t rc = queue_get(a->st, t, &e);
        if (rc == STORE_OK && e.state != QUEUE_FAILED && e.state != QUEUE_BLOCKED)
            rc = hrec_load(a->st, t, h, s->w->buf);
        else if (rc == STORE_OK)
            continue;
        if (rc == STORE_NOT_FOUND || rc == STORE_ERR_CORRUPT)
            continue;
        if (rc != STORE_OK)
            return rc;
        agent_act_t act = header_action(h);
        if (batch_kind(h, act) == kind &&
            (kind == ACT_ADD || (uint8_t)header_function(h, act) == function) &&
            !(a->adds_alone && act == ACT_ADD && batch_adds(&s->batch, header_function(h, act))))
            (void)batch_add(&s->batch, h, t, e.seq, act);
    }
    return STORE_OK;
}

/* The members' in-flight marks, in one transaction: all or none. */
static store_status_t batch_marks(agent_t *a)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    store_status_t rc = store_txn_begin(a->st);
    for (unsigned i = 0; rc == STORE_OK && i < s->batch.n; i++) {
        const agent_batch_member_t *m = &s->batch.m[i];
        rc = hrec_load(a->st, m->target, h, s->w->buf);
        if (rc == STORE_OK) {
            h->flags |= HF_UNSURE;
            header_have_function(h, (cdnapi_function_t)m->function);
            rc = store_txn_put(a->st, m->target, strlen(m->target), s->w->buf,
                               hrec_encode(h, s->w->buf));
        }
    }
    if (rc == STORE_OK)
        return store_txn_commit(a->st);
    (void)store_txn_abort(a->st);
    return rc;
}

/* The step's change (its record in the work area, its action planned) and
 * the others of its domain in one call, when there are others: true, with
 * *plan. False: it goes alone, its record read again. */
static bool batch_plan(agent_t *a, uint64_t now_ms, uint32_t *wait, agent_plan_t *plan)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    agent_act_t kind = batch_kind(h, s->act);
    if (kind == ACT_NONE || batch_solo_has(a, s->e.target))
        return false;
    memset(&s->batch, 0, offsetof(agent_batch_t, m));
    s->batch.set = kind == ACT_ADD;
    (void)batch_add(&s->batch, h, s->e.target, s->e.seq, s->act);
    if (s->batch.n == 0)
        return false; /* (a value too long for the pool: alone) */
    store_status_t rc = batch_gather(a, kind, s->batch.m[0].function);
    if (rc == STORE_OK && s->batch.n == 1)
        rc = hrec_load(a->st, s->e.target, h, s->w->buf);
    else if (rc == STORE_OK && s->batch.set)
        rc = batch_marks(a); /* no mark, no call */
    *plan = PLAN_IDLE;
    if (rc != STORE_OK)
        *wait = agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                    "gathering a batch (nothing was sent)");
    else if (s->batch.n > 1) {
        s->act = ACT_BATCH;
        snprintf(s->what, sizeof s->what, "%u headers", s->batch.n);
        *plan = PLAN_CALL;
    }
    return rc != STORE_OK || s->batch.n > 1;
}

/* Read-back visitor: the copies of each member's name. */
static bool batch_list_cb(void *arg, const cdnapi_header_t *h)
{
    agent_batch_t *b = arg;
    for (unsigned i = 0; i < b->n; i++) {
        agent_batch_member_t *m = &b->m[i];
        if (m->act == ACT_MODIFY || m->from_reply || m->function != (uint8_t)h->function ||
            !h->config_id[0] || !agent_same_header_name(h->key, b->pool + m->key_off))
            continue;
        if (m->copies++ == 0) {
            snprintf(m->config_id, sizeof m->config_id, "%s", h->config_id);
            m->same_value = strcmp(h->value, b->pool + m->value_off) == 0;
        }
        m->copies = m->copies > 2 ? 2 : m->copies;
        break;
    }
    return true;
}

/* Read back each function the members' adds (or adds in doubt) went to,
 * unless the batch's reply told their ConfigIds: which one is whose (the
 * reply lists them, in no documented order). The first call of a step is
 * counted by agent_deliver_call, the others here. */
static bool batch_list(agent_t *a, uint64_t now_ms, bool counted, cdnapi_result_t *res)
{
    agent_step_t *s = &a->step;
    for (unsigned f = CDNAPI_FN_REQ_HEADER; f <= CDNAPI_FN_ORIGIN_RULE; f++) {
        unsigned i = 0;
        while (i < s->batch.n && (s->batch.m[i].function != f || s->batch.m[i].act == ACT_MODIFY ||
                                  s->batch.m[i].from_reply))
            i++;
        if (i == s->batch.n)
            continue;
        if (counted) { /* (a call its step's token did not pay for) */
            a->counters.calls++;
            retry_bucket_charge(&a->bucket, now_ms);
            agent_sign_time(a, now_ms);
        }
        counted = true;
        if (cdnapi_list_configs(&a->api, s->domain, (cdnapi_function_t)f, batch_list_cb, &s->batch,
                                NULL, res) != CDNAPI_SUCCESS)
            return false;
    }
    return true;
}

static void batch_call(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    agent_batch_t *b = &s->batch;
    const char *dom = s->domain;
    cdnapi_set_t sets[AGENT_BATCH_MAX] = {{0}};
    memset(&b->list_res, 0, sizeof b->list_res);
    if (!b->set) {
        b->listed = batch_list(a, now_ms, false, &s->res);
        return;
    }
    for (unsigned i = 0; i < b->n; i++) {
        agent_batch_member_t *m = &b->m[i];
        sets[i].function = (cdnapi_function_t)m->function;
        sets[i].key = b->pool + m->key_off;
        sets[i].value = b->pool + m->value_off;
        sets[i].config_id = m->act == ACT_MODIFY ? m->config_id : NULL;
        sets[i].added_id = m->act == ACT_ADD ? m->config_id : NULL;
    }
    if (cdnapi_batch_set(&a->api, &dom, 1, sets, b->n, NULL, 0, NULL, &s->res) != CDNAPI_SUCCESS)
        return;
    for (unsigned i = 0; i < b->n; i++)
        b->m[i].from_reply = b->m[i].act == ACT_ADD && b->m[i].config_id[0] != 0;
    b->listed = batch_list(a, now_ms, true, &b->list_res);
    /* a domain whose configs outgrow a read-back's reply: adds go one per
     * function a batch from now on, their ConfigIds from the reply */
    a->adds_alone = a->adds_alone || b->list_res.http_status == HTTP_ERR_TOO_LARGE;
}

/* A member read back: adopted when it holds one copy of the value sent,
 * gone when none; anything else is the single read-back's (which deletes
 * extra copies), one change a call until the queue is idle. */
static uint32_t member_listed(agent_t *a, uint64_t now_ms, const agent_batch_member_t *m)
{
    agent_step_t *s = &a->step;
    hrec_t *h = &s->w->rec;
    /* (a domain the CDN does not know holds none of ours: as if none found) */
    bool unknown_domain = !s->batch.listed && domain_unknown(&s->res);
    if (!s->batch.listed && !unknown_domain)
        return failure(a, &s->res, now_ms);
    if (!unknown_domain && (m->copies > 1 || (m->copies == 1 && !m->same_value) ||
                            batch_kind(h, header_action(h)) != ACT_LIST ||
                            (uint8_t)header_function(h, ACT_LIST) != m->function)) {
        batch_solo_add(a, m->target);
        s->e.state = QUEUE_PENDING;
        return checked(a, now_ms, entry_update(a), "writing a queue entry");
    }
    h->flags &= (uint8_t)~HF_UNSURE;
    if (m->copies == 1 && !unknown_domain) {
        h->flags |= HF_DELIVERED;
        strcpy(h->config_id, m->config_id);
        strcpy(h->delivered, s->batch.pool + m->value_off);
        a->counters.adoptions++;
    }
    return readback_settled(a, now_ms, unknown_domain, m->copies == 1 && !unknown_domain);
}

/* A batch was refused for an input (one member's, or a ConfigId gone): not
 * known whose, nor (the service's batches are not documented as atomic)
 * whether some landed. The marks stay unless nothing left the device; each
 * goes again alone. */
static uint32_t member_refused(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    store_status_t rc = STORE_OK;
    if (s->res.status_code == 0) {
        s->w->rec.flags &= (uint8_t)~HF_UNSURE;
        rc = rec_save(a);
    }
    s->e.state = QUEUE_PENDING;
    if (rc == STORE_OK)
        rc = entry_update(a);
    return checked(a, now_ms, rc, "writing a queue entry");
}

/* One member's outcome, applied as a single step's: its entry (the one
 * planned, or a stand-in that is never written when it was edited since)
 * and its record in the step. */
static uint32_t member_apply(agent_t *a, uint64_t now_ms, bool refused)
{
    agent_step_t *s = &a->step;
    const agent_batch_member_t *m = &s->batch.m[s->batch.n - 1u];
    const char *pool = s->batch.pool;
    store_status_t rc = queue_get(a->st, m->target, &s->e);
    if (rc == STORE_OK || rc == STORE_NOT_FOUND) {
        if (rc == STORE_NOT_FOUND || s->e.seq != m->seq) {
            memset(&s->e, 0, sizeof s->e);
            strcpy(s->e.target, m->target);
            s->e.seq = m->seq;
        }
        rc = hrec_load(a->st, m->target, &s->w->rec, s->w->buf);
    }
    if (rc != STORE_OK) /* (the mark stands: the change is read back later) */
        return rc == STORE_NOT_FOUND ? 0
                                     : agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                                           "reading a header record");
    snprintf(s->what, sizeof s->what, "header %s", s->w->rec.key);
    if (m->act == ACT_LIST)
        return member_listed(a, now_ms, m);
    if (refused)
        return member_refused(a, now_ms);
    s->act = (agent_act_t)m->act;
    s->req.function = (cdnapi_function_t)m->function;
    strcpy(s->req.key, pool + m->key_off);
    strcpy(s->req.value, pool + m->value_off);
    strcpy(s->req.config_id, m->config_id);
    s->new_id[0] = 0;
    if (m->act == ACT_ADD && (m->from_reply || (s->batch.listed && m->copies == 1 && m->same_value)))
        strcpy(s->new_id, m->config_id);
    else if (m->act == ACT_ADD && s->res.cls == CDNAPI_SUCCESS && s->batch.listed)
        batch_solo_add(a, m->target); /* a copy too many, or none: the single read-back's */
    /* landed, but its domain's configs outgrow a read-back's reply: its
     * ConfigId is learnt when it must change, not now (it would never be) */
    s->id_later = m->act == ACT_ADD && !s->new_id[0] && s->res.cls == CDNAPI_SUCCESS &&
                  s->batch.list_res.http_status == HTTP_ERR_TOO_LARGE;
    return change_apply(a, now_ms); /* (an add without its ConfigId is read back) */
}

/* The members in turn, last first (the table shrinks as they are done);
 * the call's own effects once. A store failure stops: the marks of those
 * not yet done stand, and they are read back. */
static uint32_t batch_apply(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    cdnapi_class_t cls = s->res.cls;
    bool refused = s->batch.set && cls == CDNAPI_PERMANENT_INPUT;
    uint32_t wait = 0;
    if (cls == CDNAPI_SUCCESS) {
        succeeded(a, now_ms);
        s->clock_fixed = false;
        if (s->batch.set && !s->batch.listed)
            note_throttling(a, &s->batch.list_res, now_ms); /* (the read-back's refusal) */
    } else {
        call_failed(a, &s->res, now_ms);
    }
    for (unsigned i = 0; refused && i < s->batch.n; i++)
        batch_solo_add(a, s->batch.m[i].target);
    s->call_noted = true;
    while (s->batch.n > 0 && wait == 0) {
        /* (an add without its ConfigId turns a success into a local
         * failure: the next member starts from the call's answer again) */
        s->res.cls = cls;
        if (cls == CDNAPI_SUCCESS)
            s->res.code[0] = 0;
        wait = member_apply(a, now_ms, refused);
        s->batch.n--;
    }
    s->call_noted = false;
    return wait;
}

/* ------------------------------------------------------ certificate -- */

static void cert_release(agent_step_t *s)
{
    agent_free_secret(s->key, s->key_len);
    port_free(s->cert);
    s->key = s->cert = NULL;
    s->key_len = 0;
}

/* A certificate's records could not be used: say why, from the status. */
static uint32_t cert_unusable(agent_t *a, agent_status_t ar, uint64_t now_ms)
{
    cert_release(&a->step);
    switch (ar) {
    case AGENT_ERR_SECRET:
        return local_failure(a, QUEUE_FAIL_BLOCKED, "Local.SecretRefused",
                             "the sealed private key does not open (tampered, or another device "
                             "key)",
                             now_ms);
    case AGENT_ERR_NO_KEY:
        return local_failure(a, QUEUE_FAIL_BLOCKED, "Local.NoDeviceKey",
                             "no device key to open the private key", now_ms);
    case AGENT_ERR_CORRUPT:
    case AGENT_ERR_NOT_FOUND:
        return local_failure(a, QUEUE_FAIL_PERMANENT, "Local.StoreCorrupt",
                             "the certificate record is damaged: set the certificate again", now_ms);
    default: return agent_store_trouble(a, now_ms, ar, "reading a certificate record");
    }
}

/* The delivered record of the step's slot: what the CDN was last known to
 * serve, and whether a push is in doubt (none yet: all zero). */
/* A delivered record that cannot be read as one (damaged, or too long to
 * be ours) says nothing of the CDN: it counts as a push in doubt, so the
 * read-back asks the CDN and writes the record afresh. */
static agent_status_t cert_have_load(agent_t *a, const char *dk)
{
    uint8_t b[CREC_HEAD_MAX];
    size_t len = 0;
    store_status_t rc = store_get(a->st, dk, AGENT_SLOT_KEY_LEN, b, sizeof b, &len);
    memset(&a->step.have, 0, sizeof a->step.have);
    if (rc == STORE_NOT_FOUND)
        return AGENT_OK;
    if ((rc == STORE_OK && !crec_decode(b, len, &a->step.have, NULL)) || rc == STORE_ERR_TOO_BIG ||
        rc == STORE_ERR_CORRUPT) {
        memset(&a->step.have, 0, sizeof a->step.have);
        a->step.have.flags = CF_UNSURE | CF_TRACKED;
        return AGENT_OK;
    }
    return agent_status_from_store(rc);
}

/* In doubt: a push of this version that has no definite answer, or an
 * entry an older version (which kept no such mark) left in flight or was
 * retrying after a failure that may have applied. */
static bool cert_in_doubt(const agent_step_t *s)
{
    if (s->have.flags & CF_TRACKED)
        return (s->have.flags & CF_UNSURE) != 0;
    return s->e.state == QUEUE_IN_FLIGHT || s->e.attempts > 0;
}

static store_status_t cert_have_save(agent_t *a, const char *dk)
{
    uint8_t b[CREC_HEAD_MAX];
    return store_put(a->st, dk, AGENT_SLOT_KEY_LEN, b, crec_encode(&a->step.have, b));
}

/* The step's records: the desired certificate, the delivered record, the
 * device's action, and the action of the step; the private key is opened
 * only for a push that sends it (a read-back does not). */
static agent_status_t cert_load(agent_t *a, unsigned slot, char *dk)
{
    agent_step_t *s = &a->step;
    char ck[AGENT_SLOT_KEY_LEN + 1], kk[AGENT_SLOT_KEY_LEN + 1];
    agent_slot_key(ck, STORE_KEY_CERT, slot);
    agent_slot_key(kk, STORE_KEY_CERT_KEY, slot);
    agent_slot_key(dk, STORE_KEY_CERT_DELIVERED, slot);
    agent_status_t ar = agent_load_cert(a->st, ck, &s->cert, &s->pem_off, &s->want);
    if (ar == AGENT_OK)
        ar = cert_have_load(a, dk);
    if (ar == AGENT_OK)
        ar = agent_cert_api_get(a->st, &s->cert_api);
    s->act = cert_in_doubt(s) ? ACT_CERT_READBACK : ACT_CERT;
    if (ar == AGENT_OK && s->act == ACT_CERT && (s->want.flags & CF_ON) && !(s->want.flags & CF_CAS))
        ar = agent_get_sealed(a->st, kk, &s->key, &s->key_len);
    return ar;
}

static agent_plan_t cert_plan(agent_t *a, uint64_t now_ms, uint32_t *wait)
{
    agent_step_t *s = &a->step;
    char dk[AGENT_SLOT_KEY_LEN + 1];
    int slot = agent_slot_of_key((const uint8_t *)s->e.target, strlen(s->e.target));
    store_status_t dr = slot < 0 ? STORE_NOT_FOUND
                                 : agent_domain_name(a->st, (unsigned)slot, s->domain);
    if (dr != STORE_OK) {
        *wait = dr == STORE_NOT_FOUND /* the domain is gone: nothing to deliver */
                    ? checked(a, now_ms, entry_drop(a), "dropping a queue entry")
                    : agent_store_trouble(a, now_ms, agent_status_from_store(dr),
                                          "reading a domain record");
        return PLAN_IDLE;
    }
    snprintf(s->what, sizeof s->what, "certificate");
    agent_status_t ar = cert_load(a, (unsigned)slot, dk);
    if (ar != AGENT_OK) {
        *wait = cert_unusable(a, ar, now_ms);
        return PLAN_IDLE;
    }
    /* A push whose outcome is unknown is never repeated blindly: the CDN
     * is asked first what it serves (cert_load chose). Before a push, the
     * doubt is written. */
    s->have.flags |= CF_UNSURE | CF_TRACKED;
    store_status_t rc = s->act == ACT_CERT ? cert_have_save(a, dk) : STORE_OK;
    s->e.state = QUEUE_IN_FLIGHT;
    if (rc == STORE_OK)
        rc = entry_update(a);
    if (rc != STORE_OK) {
        cert_release(s);
        *wait = agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                    "writing a queue entry (nothing was sent)");
        return PLAN_IDLE;
    }
    return PLAN_CALL;
}

static void cert_push(agent_t *a, int64_t utc)
{
    agent_step_t *s = &a->step;
    bool on = s->want.flags & CF_ON;
    const char *name = s->want.name[0] ? s->want.name : NULL;
    if ((s->want.flags & CF_CAS) || s->cert_api != AGENT_CERT_API_LEGACY) {
        cdnapi_ssl_cert_t c = {on, name, NULL, NULL, NULL, NULL};
        if (on && (s->want.flags & CF_CAS)) {
            agent_cas_fields(s->cert + s->pem_off, &c.cas_id, &c.cas_region);
            c.cas_region = c.cas_region[0] ? c.cas_region : NULL;
        } else if (on) {
            c.cert_pem = s->cert + s->pem_off;
            c.key_pem = s->key;
        }
        cdnapi_set_ssl_cert(&a->api, s->domain, &c, false, utc, &s->res);
    } else if (on) {
        cdnapi_set_cert(&a->api, s->domain, name, s->cert + s->pem_off, s->key, false, utc, &s->res);
    } else {
        cdnapi_cert_off(&a->api, s->domain, &s->res);
    }
}

static void cert_call(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    int64_t utc = 0;
    (void)agent_now_utc(a, now_ms, &utc);
    if (s->act == ACT_CERT_READBACK)
        cdnapi_cert_info(&a->api, s->domain, &s->served, &s->res);
    else
        cert_push(a, utc);
    agent_free_secret(s->key, s->key_len); /* the private key lives no longer than the call */
    s->key = NULL;
    s->key_len = 0;
}

/* The hex digest of the delivered certificate, "" when the hash failed (the
 * record then says "unknown" rather than a digest of nothing). */
void agent_sha256_hex(const char *pem, char out[65])
{
    uint8_t d[CRYPTO_SHA256_LEN];
    out[0] = 0;
    if (crypto_sha256(pem, strlen(pem), d) == CRYPTO_OK)
        util_hex_lower(d, sizeof d, out);
}

/* One CertId as digits, whatever leading zeros either side carries. */
static bool same_id(const char *a, const char *b)
{
    while (*a == '0' && a[1])
        a++;
    while (*b == '0' && b[1])
        b++;
    return strcmp(a, b) == 0;
}

/* Does the CDN serve the desired certificate, under the desired name? The
 * certificate by the fingerprint of the PEM it serves, or in a reply
 * without that PEM by its expiry; a certificate service's by its CertId;
 * off by the status. (One PEM under a new name is a change too.) */
static bool cert_served(const agent_step_t *s)
{
    const cdnapi_cert_info_t *i = &s->served;
    bool on = i->found && strcmp(i->status, "on") == 0;
    const char *pem = s->cert + s->pem_off;
    if (!(s->want.flags & CF_ON) || !on)
        return !(s->want.flags & CF_ON) && !on;
    if (s->want.flags & CF_CAS) {
        const char *id, *region;
        agent_cas_fields(pem, &id, &region);
        return strcmp(i->cert_type, "cas") == 0 && same_id(i->cert_id, id) &&
               (!s->want.name[0] || strcmp(i->cert_name, s->want.name) == 0);
    }
    char fp[CDNAPI_FINGERPRINT_LEN + 1];
    int64_t nb, na, starts, expires;
    if (strcmp(i->cert_name, s->want.name[0] ? s->want.name : s->domain) != 0)
        return false;
    if (i->has_pem) { /* (one that does not parse has no fingerprint: no match) */
        cdnapi_cert_fingerprint(pem, fp);
        return i->fingerprint[0] && strcmp(fp, i->fingerprint) == 0;
    }
    /* without the served PEM: both ends of the validity, which a reissue
     * under the same name rarely keeps together */
    return cdnapi_cert_validity(pem, &nb, &na) && cdnapi_iso_time(i->expire_time, &expires) &&
           cdnapi_iso_time(i->start_time, &starts) && expires == na && starts == nb;
}

/* Record the desired certificate as delivered and end the entry. */
static uint32_t cert_delivered(agent_t *a, uint64_t now_ms, const char *how)
{
    agent_step_t *s = &a->step;
    bool on = s->want.flags & CF_ON;
    char dk[AGENT_SLOT_KEY_LEN + 1], detail[96];
    uint8_t b[CREC_HEAD_MAX];
    crec_t *have = &s->have;
    memset(have, 0, sizeof *have);
    have->flags = (uint8_t)(CF_PRESENT | CF_TRACKED | (on ? CF_ON : 0) | (s->want.flags & CF_CAS));
    strcpy(have->name, s->want.name);
    int64_t not_before;
    if (on && !(s->want.flags & CF_CAS)) {
        agent_sha256_hex(s->cert + s->pem_off, have->sha256);
        /* kept for the daily look at expiry, which then reads no PEM */
        if (cdnapi_cert_validity(s->cert + s->pem_off, &not_before, &have->not_after)) {
            have->flags |= CF_EXPIRY;
            a->expiry_watch = true;
            a->next_expiry_check = 0; /* looked at when next idle, not a day late */
        }
    }
    cert_release(s);
    int slot = agent_slot_of_key((const uint8_t *)s->e.target, strlen(s->e.target));
    agent_slot_key(dk, STORE_KEY_CERT_DELIVERED, (unsigned)slot);
    store_status_t rc = settle_txn(a, dk, b, crec_encode(have, b));
    if (rc != STORE_OK)
        return agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                   "recording a certificate delivery");
    snprintf(detail, sizeof detail, "%s%s%s%s", on ? "on" : "off", on && have->name[0] ? " " : "",
             on ? have->name : "", how);
    agent_emit(a, AGENT_EV_DELIVERED, detail, &s->res, now_ms);
    return 0;
}

/* The doubt settled the other way (the push did not land, or certainly
 * never left): cleared, and the entry pending again when asked. */
static store_status_t cert_doubt_cleared(agent_t *a, bool pending)
{
    char dk[AGENT_SLOT_KEY_LEN + 1];
    int slot = agent_slot_of_key((const uint8_t *)a->step.e.target, strlen(a->step.e.target));
    agent_slot_key(dk, STORE_KEY_CERT_DELIVERED, (unsigned)slot);
    a->step.have.flags = (uint8_t)((a->step.have.flags & ~CF_UNSURE) | CF_TRACKED);
    store_status_t rc = cert_have_save(a, dk);
    if (rc == STORE_OK && pending) {
        a->step.e.state = QUEUE_PENDING;
        rc = entry_update(a);
    }
    return rc;
}

static uint32_t cert_readback_apply(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    if (s->res.cls != CDNAPI_SUCCESS) {
        cert_release(s);
        return failure(a, &s->res, now_ms); /* still in doubt: asked again later */
    }
    succeeded(a, now_ms);
    if (cert_served(s))
        return cert_delivered(a, now_ms, " (found on the CDN by read-back)");
    cert_release(s);
    /* the delivered record now says what was found: by name, its content
     * unknown (a push in doubt may have changed it) */
    crec_t *have = &s->have;
    bool on = s->served.found && strcmp(s->served.status, "on") == 0;
    memset(have, 0, sizeof *have);
    have->flags = (uint8_t)(CF_PRESENT | (on ? CF_ON : 0));
    if (on)
        snprintf(have->name, sizeof have->name, "%.*s", (int)(sizeof have->name - 1),
                 s->served.cert_name); /* (a longer name than ours: cut, it is only shown) */
    return checked(a, now_ms, cert_doubt_cleared(a, true), "recording a certificate read-back");
}

/* The service answered that SetDomainServerCertificate is gone: this
 * device pushes with SetCdnDomainSSLCertificate from now on, and says so. */
static uint32_t cert_switch_api(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    store_status_t rc = agent_status_store(agent_cert_api_set(a->st, AGENT_CERT_API_SSL_AUTO));
    if (rc == STORE_OK)
        rc = cert_doubt_cleared(a, true);
    if (rc != STORE_OK)
        return agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                   "recording the certificate action");
    if (a->cfg.event)
        agent_emit(a, AGENT_EV_SWITCHED, s->res.code, &s->res, now_ms);
    else
        port_log(PORT_LOG_WARN, "agent",
                 "the service refused SetDomainServerCertificate (%s): certificates go by "
                 "SetCdnDomainSSLCertificate from now on",
                 s->res.code);
    return 0;
}

static uint32_t cert_apply(agent_t *a, uint64_t now_ms)
{
    agent_step_t *s = &a->step;
    if (s->act == ACT_CERT_READBACK)
        return cert_readback_apply(a, now_ms);
    if (s->res.cls == CDNAPI_SUCCESS) {
        succeeded(a, now_ms);
        return cert_delivered(a, now_ms, "");
    }
    cert_release(s);
    if (cdnapi_action_retired(&s->res) && s->cert_api == AGENT_CERT_API_LEGACY &&
        !(s->want.flags & CF_CAS))
        return cert_switch_api(a, now_ms);
    /* a definite refusal never landed: no read-back is owed */
    if (did_not_apply(&s->res)) {
        store_status_t rc = cert_doubt_cleared(a, false);
        if (rc != STORE_OK)
            return agent_store_trouble(a, now_ms, agent_status_from_store(rc),
                                       "recording a certificate push");
    }
    return failure(a, &s->res, now_ms);
}

/* ------------------------------------------------------------ phases -- */

agent_plan_t agent_deliver_plan(agent_t *a, uint64_t now_ms, uint32_t *wait_ms)
{
    agent_step_t *s = &a->step;
    int64_t utc;
    store_status_t rc = queue_next_due_cached(a->st, &a->due, now_ms, a->cfg.policy.cap_ms,
                                              a->epoch, &s->e, wait_ms);
    s->call_noted = false;
    s->id_later = false;
    if (rc == STORE_NOT_FOUND) {
        if (*wait_ms == UINT32_MAX)
            a->nsolo = 0; /* nothing will be due (but failed or blocked): all batch again */
        return PLAN_IDLE;
    }
    if (rc != STORE_OK) {
        *wait_ms = agent_store_trouble(a, now_ms, agent_status_from_store(rc), "reading the queue");
        return PLAN_IDLE;
    }
    if (!agent_now_utc(a, now_ms, &utc))
        return PLAN_NO_CLOCK;
    if (!a->rate_loaded) { /* (read under the lock, once; a damaged one is not used) */
        uint32_t r;
        agent_status_t ar = agent_rate_get(a->st, &r);
        if (ar != AGENT_OK && ar != AGENT_ERR_NOT_FOUND && ar != AGENT_ERR_CORRUPT) {
            *wait_ms = agent_store_trouble(a, now_ms, ar, "reading the learnt call rate");
            return PLAN_IDLE;
        }
        a->rate_loaded = true;
        if (ar == AGENT_OK && r < a->bucket.max_rate_milli)
            retry_bucket_resume(&a->bucket, r, now_ms, agent_random32());
        if (ar == AGENT_OK) /* (one at or above the configured rate is removed when idle) */
            a->rate_saved = r;
    }
    if (!retry_bucket_take(&a->bucket, now_ms, wait_ms)) {
        if (*wait_ms == 0)
            *wait_ms = 1;
        return PLAN_IDLE;
    }
    a->store_failures_in_row = 0;
    if (s->e.target[0] == STORE_KEY_HEADER)
        return header_plan(a, now_ms, wait_ms);
    return cert_plan(a, now_ms, wait_ms);
}

void agent_deliver_call(agent_t *a, uint64_t now_ms)
{
    agent_sign_time(a, now_ms);
    a->counters.calls++;
    if (a->step.act == ACT_CERT || a->step.act == ACT_CERT_READBACK)
        cert_call(a, now_ms);
    else
        header_call(a, now_ms);
}

uint32_t agent_deliver_apply(agent_t *a, uint64_t now_ms)
{
    if (a->step.act == ACT_CERT || a->step.act == ACT_CERT_READBACK)
        return cert_apply(a, now_ms);
    return header_apply(a, now_ms);
}

void agent_deliver_discard(agent_t *a)
{
    cert_release(&a->step);
    (void)agent_deliver_work(a, false);
}

_Static_assert(sizeof(agent_rec_work_t) <= AGENT_STEP_WORK_SIZE &&
                   sizeof(agent_rec_work_t) + 128u > AGENT_STEP_WORK_SIZE,
               "AGENT_STEP_WORK_SIZE must fit the record work area, without waste");

bool agent_deliver_work(agent_t *a, bool take)
{
    if (a->cfg.step_work != NULL) {
        a->step.w = take ? a->cfg.step_work : NULL;
        return true;
    }
    if (!take) {
        port_free(a->step.w);
        a->step.w = NULL;
        return true;
    }
    if (!a->step.w)
        a->step.w = port_malloc(sizeof *a->step.w);
    return a->step.w != NULL;
}
