/* agent: what the agent's source files share (not public).
 *
 *   agent.c          new/free/poll, configuration, clock, lock, events
 *   agent_record.c   store keys and the records' codecs, domain slots
 *   agent_edit.c     edits (header, certificate) and queue retry
 *   agent_view.c     agent_visit (status)
 *   agent_deliver.c  one delivery step: plan (locked), call, apply (locked)
 *   agent_settings.c provisioned settings and sealed records
 */
#ifndef CDNAGENT_AGENT_INTERNAL_H
#define CDNAGENT_AGENT_INTERNAL_H

#include "agent.h"
#include "store_keys.h"

/* ------------------------------------------------------ store keys -- */
/* The prefixes are declared in store_keys.h, the namespace's one registry
 * (keys are <= 12 bytes; <ss> is a domain slot in two hex digits). */
#define AGENT_SLOT_KEY_LEN 3u    /* D<ss>, C<ss>, K<ss>, c<ss> */
#define AGENT_HEADER_KEY_LEN 11u /* H<ss><hash8> */

/* --------------------------------------------------------- records -- */
#define AGENT_REC_VERSION 1u
#define HF_DESIRED 0x01u   /* a value is wanted on the CDN */
#define HF_DELIVERED 0x02u /* config_id / delivered describe what the CDN holds */
#define HF_UNSURE 0x04u    /* a request went out whose outcome is not known */
/* The two functions (cdnapi_function_t): a record without these flags (and
 * every record of an older version) is set_req_header's. */
#define HF_RULE 0x08u      /* desired (removed: last desired) is an origin_request_header rule */
#define HF_RULE_HAVE 0x10u /* the config delivered or in doubt is an origin_request_header rule */
/* A damaged record was replaced: the function of what the CDN holds is not
 * known. Read back set_req_header (HF_FN_UNKNOWN), then origin_request_header
 * (HF_FN_OTHER), where a config is an extra copy when the first adopted one. */
#define HF_FN_UNKNOWN 0x20u
#define HF_FN_OTHER 0x40u
#define CF_ON 0x01u
#define CF_PRESENT 0x02u
#define CF_CAS 0x04u     /* desired: a certificate service's (payload "CertId\0region") */
#define CF_UNSURE 0x08u  /* delivered record: a push went out whose outcome is not known */
#define CF_EXPIRY 0x10u  /* delivered record: the certificate's notAfter follows the name */
#define CF_TRACKED 0x20u /* delivered record: written by a version that keeps CF_UNSURE */
#define HREC_MAX \
    (5u + CDNAPI_MAX_NAME_LEN + 2u * CDNAPI_MAX_VALUE_LEN + 4u + CDNAPI_MAX_CONFIG_ID_LEN)
#define CREC_HEAD_MAX (3u + AGENT_CERT_NAME_MAX + 8u + 65u)

typedef struct {
    uint8_t flags;
    char key[CDNAPI_MAX_NAME_LEN + 1];
    char desired[CDNAPI_MAX_VALUE_LEN + 1];
    char config_id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
    char delivered[CDNAPI_MAX_VALUE_LEN + 1];
} hrec_t;

typedef struct {
    uint8_t flags;
    char name[AGENT_CERT_NAME_MAX + 1];
    int64_t not_after; /* CF_EXPIRY: UTC seconds */
    char sha256[65];
} crec_t;

bool agent_same_header_name(const char *a, const char *b);
size_t hrec_encode(const hrec_t *h, uint8_t out[HREC_MAX]);
size_t crec_encode(const crec_t *c, uint8_t *out);
bool crec_decode(const uint8_t *b, size_t len, crec_t *c, size_t *pem_off);

/* Keys: tag + slot ("C07"), a header's target ("H07a1b2c3d4"). */
void agent_slot_key(char out[AGENT_SLOT_KEY_LEN + 1], char tag, unsigned slot);
void agent_header_target(char out[AGENT_HEADER_KEY_LEN + 1], unsigned slot, const char *key);
/* The slot a key names, -1 when it names none. */
int agent_slot_of_key(const uint8_t *key, size_t key_len);

/* Slot of domain; with create, a new slot is written inside the open txn.
 * AGENT_ERR_NOT_FOUND, AGENT_ERR_LIMIT, a store failure (AGENT_ERR_STORE_BASE + its status). */
agent_status_t agent_domain_slot(store_t *st, const char *domain, bool create, unsigned *slot);
/* The domain name of slot (STORE_NOT_FOUND when the slot is free). */
store_status_t agent_domain_name(store_t *st, unsigned slot, char out[AGENT_DOMAIN_MAX + 1]);
/* Read and decode a header record; buf holds HREC_MAX bytes.
 * STORE_ERR_CORRUPT when it does not decode. */
store_status_t hrec_load(store_t *st, const char *target, hrec_t *h, uint8_t *buf);
/* A whole value as a NUL-terminated heap string; with c, also decode the
 * certificate record head and report where its PEM starts. */
agent_status_t agent_load_cert(store_t *st, const char *key, char **out, size_t *pem_off, crec_t *c);
/* A desired certificate service record's payload: its CertId and region
 * ("" for the service's default), pointing into the record. */
void agent_cas_fields(const char *payload, const char **cas_id, const char **region);

/* Inside an open store transaction: seal plain under the device key with
 * the store key as additional data, and put it. */
agent_status_t agent_txn_put_sealed(store_t *st, const char *key, const void *plain, size_t len);
/* Read and open a sealed value: heap copy (port_malloc), NUL-terminated;
 * the caller wipes and frees it. */
agent_status_t agent_get_sealed(store_t *st, const char *key, char **plain, size_t *len);
/* Wipe and free a heap secret. */
void agent_free_secret(char *p, size_t len);
/* A whole store value as a heap copy (port_malloc, NUL-terminated after len
 * bytes). AGENT_ERR_NOT_FOUND, a store failure, AGENT_ERR_NOMEM. */
agent_status_t agent_get_value(store_t *st, const char *key, uint8_t **out, size_t *len);

/* ------------------------------------------------------- delivery -- */
typedef enum {
    ACT_NONE,
    ACT_LIST,
    ACT_ADD,
    ACT_MODIFY,
    ACT_DELETE,
    ACT_CERT,
    ACT_CERT_READBACK, /* after an unknown outcome: what does the CDN serve? */
    ACT_BATCH,         /* several headers of one domain (agent_batch_t) */
} agent_act_t;

/* A batch: the changes of one domain that wait (adds and modifies) in one
 * BatchSetCdnDomainConfig, or the adds in doubt of one function in one
 * read-back. Members are kept by their target and seq (the entry and the
 * record are read again when the outcome is applied, as a single step's);
 * their names and values, as sent, are in the pool. AGENT_BATCH_MAX: a
 * store transaction (16 ops) writes their in-flight marks at once.
 * AGENT_BATCH_POOL: a change that does not fit waits for the next call, so a
 * batch's request is about as large as one header of the longest value. */
#define AGENT_BATCH_MAX 8u
#define AGENT_SOLO_MAX (2u * AGENT_BATCH_MAX)
/* Calls in a row without an answer that make an outage (agent.c, link_probe). */
#define AGENT_LINK_PROBE_AFTER 3u
#define AGENT_BATCH_POOL 928u
typedef struct {
    char target[AGENT_HEADER_KEY_LEN + 1];
    uint8_t act;      /* ACT_ADD, ACT_MODIFY, ACT_LIST */
    uint8_t function; /* cdnapi_function_t */
    uint8_t copies;   /* the read-back's copies of its name (2: two or more) */
    bool same_value;  /* the copy found holds the value sent */
    bool from_reply;  /* an add whose ConfigId the batch's reply told for certain */
    uint32_t seq;
    uint16_t key_off, value_off;                  /* in the pool */
    char config_id[CDNAPI_MAX_CONFIG_ID_LEN + 1]; /* modify: sent; else: the copy found */
} agent_batch_member_t;
typedef struct {
    unsigned n, used;
    bool set;    /* BatchSetCdnDomainConfig (else a read-back only) */
    bool listed; /* the read-back answered */
    agent_batch_member_t m[AGENT_BATCH_MAX];
    cdnapi_result_t list_res; /* the read-back after a BatchSetCdnDomainConfig */
    char pool[AGENT_BATCH_POOL];
} agent_batch_t;

/* A header record and its codec buffer: needed under the lock only (plan,
 * apply), so they are on the heap only then, not through the call, when
 * TLS and the request are at their peak. */
typedef struct {
    hrec_t rec;
    uint8_t buf[HREC_MAX];
} agent_rec_work_t;

/* One delivery step's working state: planned under the lock, used by the
 * unlocked call, applied under the lock again. It lives in the agent (heap)
 * so that a device's delivery stack holds none of it. */
typedef struct {
    queue_entry_t e;
    agent_act_t act;
    char domain[AGENT_DOMAIN_MAX + 1];
    char what[CDNAPI_MAX_NAME_LEN + 8];        /* "header X-Key" / "certificate" */
    agent_rec_work_t *w;                       /* plan and apply only (agent_deliver_work) */
    cdnapi_header_t req;                       /* sent; read-back: the key and the desired value */
    cdnapi_result_t res;                       /* the call's outcome */
    char new_id[CDNAPI_MAX_CONFIG_ID_LEN + 1]; /* ConfigId an add returned */
    /* A step reads back a header's configs or a certificate, never both:
     * their states share the memory (RAM is what a Cortex-M part lacks). */
    union {
        struct { /* header read-back: the copy to keep, the copies to delete */
            cdnapi_header_t kept;
            bool found, more_dups;
            bool keep_none; /* every copy is an extra (one of the other function is kept) */
            unsigned ndups;
            char dups[CDNAPI_MAX_DELETE_IDS * (CDNAPI_MAX_CONFIG_ID_LEN + 1)];
            cdnapi_result_t dup_res;
        };
        cdnapi_cert_info_t served; /* certificate read-back: what the CDN serves */
        agent_batch_t batch;
    };
    /* The call's own effects (throttling, clock) are noted once, for all of
     * a batch's members. */
    bool call_noted;
    bool clock_fixed; /* the call's clock refusal corrected the clock: all go again */
    /* An add landed in a batch whose read-back was too large for the reply
     * limit: recorded delivered without its ConfigId, which a read-back
     * learns before the header changes (header_action). */
    bool id_later;
    uint64_t defer_to; /* the call was throttled: when its changes go again */
    /* certificate: the desired record (heap) and its opened key (heap, wiped) */
    crec_t want;
    char *cert;
    size_t pem_off;
    char *key;
    size_t key_len;
    crec_t have;               /* the delivered record as the plan found it */
    agent_cert_api_t cert_api; /* the action this push uses */
} agent_step_t;

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
    bool rate_loaded;      /* the learnt rate was read from flash (first plan) */
    uint32_t rate_saved;   /* the rate on flash (0: none, the configured rate applies) */
    uint64_t rate_save_ms; /* when it was written */
    uint32_t epoch;        /* this configuration's epoch: entries blocked under another resume */
    queue_due_cache_t due; /* the lowest-seq queue entries: a step rarely walks the queue */
    bool have_base;
    int64_t base_utc;
    uint64_t base_mono;
    uint32_t clock_fixes_in_row;
    uint32_t throttled_in_row;
    uint32_t store_failures_in_row;
    uint32_t link_failures_in_row; /* calls in a row that met no answer (agent_deliver.c) */
    uint64_t pause_until;          /* no step before this (throttling, store trouble) */
    uint64_t next_expiry_check;    /* monotonic ms of the next look at certificates' expiry */
    bool expiry_watch;             /* a delivered certificate's expiry is known: look daily */
    bool halted;                   /* the configuration was refused: no call until a new agent */
    /* changes that go alone for now (agent_deliver.c, batch_solo_add) */
    char solo[AGENT_SOLO_MAX][AGENT_HEADER_KEY_LEN + 1];
    unsigned nsolo;
    bool adds_alone; /* a domain's configs outgrew a read-back: one add per function a
                        batch (its ConfigId from the reply) */
    bool started;    /* the first poll came (and the start splay was drawn) */
    char halt_code[CDNAPI_CODE_LEN];
    char halt_message[CDNAPI_MESSAGE_LEN];
    agent_counters_t counters;
    agent_step_t step;
};

typedef enum { PLAN_IDLE, PLAN_CALL, PLAN_NO_CLOCK } agent_plan_t;

/* Called locked: pick the due entry and prepare its call (the in-flight
 * mark written). PLAN_IDLE: *wait_ms until the next step. */
agent_plan_t agent_deliver_plan(agent_t *a, uint64_t now_ms, uint32_t *wait_ms);
/* Called unlocked: the network part of the planned step, nothing else. */
void agent_deliver_call(agent_t *a, uint64_t now_ms);
/* Called locked: record the outcome. Returns the wait until the next step. */
uint32_t agent_deliver_apply(agent_t *a, uint64_t now_ms);
/* Free what a step holds on the heap (the apply phase could not run). */
void agent_deliver_discard(agent_t *a);
/* Take (true) or give back (false) the record work area around a locked
 * phase; false when it cannot be had (out of memory). */
bool agent_deliver_work(agent_t *a, bool take);

/* Write the learnt rate (agent_rate_get reads it), or remove it (back at
 * the configured rate: nothing learnt). */
agent_status_t agent_rate_put(store_t *st, uint32_t rate_milli);
agent_status_t agent_rate_clear(store_t *st);
/* Called locked after a call's outcome moved the rate, and when idle: keep
 * it on flash when it moved far enough from what is kept, not more often
 * than AGENT_RATE_SAVE_MS (flash wear) unless at_rest (nothing queued: the
 * last word before the device may stop). */
void agent_rate_note(agent_t *a, uint64_t now_ms, bool at_rest);

/* The SHA-256 of a PEM as lower hex (a delivered certificate's identity). */
void agent_sha256_hex(const char *pem, char out[65]);

/* Helpers of agent.c the delivery uses. */
bool agent_now_utc(agent_t *a, uint64_t now_ms, int64_t *utc);
void agent_clock_from_server(agent_t *a, int64_t server_utc, uint64_t now_ms);
void agent_sign_time(agent_t *a, uint64_t now_ms);
uint32_t agent_random32(void);
void agent_emit(agent_t *a, agent_ev_kind_t kind, const char *detail, const cdnapi_result_t *res,
                uint64_t now_ms);
/* One more failure in a row (*in_row, saturating) and a pause of every
 * step for it: full jitter, its ceiling doubling with the count (at least
 * 1 ms; a longer pause already set stands). Returns the pause. */
uint32_t agent_pause_backoff(agent_t *a, uint64_t now_ms, uint32_t *in_row);
/* A store operation failed: pause every step for a growing, jittered
 * while, and say so. Returns the pause. */
uint32_t agent_store_trouble(agent_t *a, uint64_t now_ms, agent_status_t why, const char *doing);

#endif
