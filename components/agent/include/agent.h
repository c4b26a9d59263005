/*
 * agent: desired CDN state in flash, delivered through the durable queue.
 *
 * Edits (agent_header_set, agent_cert_set, ...) need only a mounted store:
 * they validate locally (so bad input never costs a call or sits in the
 * queue), then write the new desired state and its queue entry in one
 * store transaction. They work offline, on an unprovisioned device.
 *
 * Delivery is agent_poll(agent, now_ms): one bounded step that returns how
 * long the caller may sleep before the next step, so it fits a superloop,
 * an RTOS task or the Linux daemon. A step has three phases: plan (under
 * the lock: read the records, write the in-flight mark), call (lock
 * released: the network only, one API call, or a read-back and the delete
 * of the duplicates it found), apply (under the lock: record the outcome).
 * agent_poll is the only owner of the lock, so another process (the CLI)
 * can edit while the daemon waits on the network.
 *
 * Exactly-once in effect: before a header add or delete whose outcome is
 * unknown (timeout, reset, crash while in flight: the "unsure" mark is
 * written before every such call, and nothing is sent when it cannot be)
 * the agent reads every config of the domain back and adopts the one with
 * the same key instead of adding a second, deleting any extra copies.
 *
 * Nothing is given up: network faults, 5xx and throttling back off to the
 * cap and go on at the cap; a refused configuration (credentials, trust,
 * device key) parks the entry as blocked until the configuration changes
 * (a new agent: see agent_new); a refused input stays failed until the
 * desired state changes or agent_retry asks again.
 */
#ifndef CDNAGENT_AGENT_H
#define CDNAGENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cdnapi.h"
#include "http.h"
#include "queue.h"
#include "retry.h"
#include "sign.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AGENT_MAX_DOMAINS 64u
#define AGENT_DOMAIN_MAX CDNAPI_MAX_DOMAIN_LEN
#define AGENT_CERT_NAME_MAX 64u

/* One status for every agent function. A failure of a component below
 * keeps that component's own status inside the agent's: the store's as
 * AGENT_ERR_STORE_BASE + store_status_t (full, flash I/O, ...: nothing
 * changed), the HTTP client's as AGENT_ERR_HTTP_BASE + http_status_t (the
 * TLS/TCP client could not be set up). agent_status_store and
 * agent_status_http take them out again; agent_status_str names them.
 * Out of memory is AGENT_ERR_NOMEM whichever layer ran out. */
typedef enum {
    AGENT_OK = 0,
    AGENT_ERR_INVALID = -1,   /* rejected by local validation: see the result */
    AGENT_ERR_NOT_FOUND = -3, /* no such header / domain */
    AGENT_ERR_LIMIT = -4,     /* too many domains, or a header-name hash clash */
    AGENT_ERR_ARG = -5,
    AGENT_ERR_NO_KEY = -6,       /* no device key to seal/open secrets (port_device_key) */
    AGENT_ERR_SECRET = -7,       /* a sealed secret failed to open: tampered or other key */
    AGENT_ERR_NOMEM = -8,        /* out of memory (port_malloc) */
    AGENT_ERR_CORRUPT = -9,      /* a stored record failed its CRC or does not decode */
    AGENT_ERR_STORE_BASE = -100, /* + store_status_t (-1 .. -99) */
    AGENT_ERR_STORE_FULL = AGENT_ERR_STORE_BASE + STORE_FULL,
    AGENT_ERR_STORE_IO = AGENT_ERR_STORE_BASE + STORE_ERR_IO,
    AGENT_ERR_HTTP_BASE = -200, /* + http_status_t (-1 .. -99) */
    AGENT_ERR_TLS_SETUP = AGENT_ERR_HTTP_BASE + HTTP_ERR_TLS_SETUP,
} agent_status_t;

/* What a status says, the cause of a store or HTTP failure included
 * ("store full", "the TLS client could not be set up"). Never NULL. */
const char *agent_status_str(agent_status_t status);
/* A store failure as the agent's status (STORE_OK: AGENT_OK). */
agent_status_t agent_status_from_store(store_status_t s);
/* The store's status inside s; STORE_OK when s is not a store failure. */
store_status_t agent_status_store(agent_status_t s);
/* The HTTP client's status inside s; HTTP_OK when s is not one of its. */
http_status_t agent_status_http(agent_status_t s);

/* ------------------------------------------------------------- edits -- */

/* A domain name the agent accepts: 1..253 bytes of letters, digits, '-',
 * '.' and '*' (wildcards). */
bool agent_domain_name_ok(const char *domain);

/* Desired header value for domain (add or change). res (may be NULL)
 * receives the local validation error with the service's Code. A damaged
 * header record (delivery fails it, asking for this) is replaced by one in
 * doubt, so the next delivery step reads the CDN back first; so does
 * agent_header_rm. */
agent_status_t agent_header_set(store_t *st, const char *domain, const char *key, const char *value,
                                cdnapi_result_t *res);
/* Desired origin_request_header rule ("Custom Request Headers (New)") for
 * domain, on the header named rule->name: checked as cdnapi_validate_rule
 * (res as for agent_header_set), kept as its spec (cdnapi_rule_spec). A
 * name has one rule per domain, of either function: setting a header of
 * the other function replaces it (the old config is deleted on the CDN
 * before the new one is added), and agent_header_rm removes either. */
agent_status_t agent_rule_set(store_t *st, const char *domain, const cdnapi_rule_t *rule,
                              cdnapi_result_t *res);
/* Remove a header. A header that was never delivered simply disappears
 * with its queue entry. */
agent_status_t agent_header_rm(store_t *st, const char *domain, const char *key);
/* Desired certificate on (PEMs validated: parse, key match, not expired at
 * now_utc, covers domain; the name as cdnapi_validate_cert_name, at most
 * AGENT_CERT_NAME_MAX bytes) or off. */
agent_status_t agent_cert_set(store_t *st, const char *domain, const char *name,
                              const char *cert_pem, const char *key_pem, int64_t now_utc,
                              cdnapi_result_t *res);
agent_status_t agent_cert_off(store_t *st, const char *domain);
/* Desired certificate: one of Alibaba's certificate service (CertType cas,
 * CertId digits, region NULL or "" for the service's default): the domain
 * points at it and the device never holds its key. Always pushed with
 * SetCdnDomainSSLCertificate (the older action takes no CertId). */
agent_status_t agent_cert_set_cas(store_t *st, const char *domain, const char *name,
                                  const char *cas_id, const char *region, cdnapi_result_t *res);

/* A certificate renewed from files by a daemon (an ACME client writes new
 * PEM files every 60-90 days): the paths, opaque to the agent, and the
 * SHA-256 of the pair last taken (all zero: none yet), kept beside the
 * desired certificate (record W<ss>). */
#define AGENT_WATCH_PATH_MAX 512u
typedef struct {
    char cert_path[AGENT_WATCH_PATH_MAX + 1];
    char key_path[AGENT_WATCH_PATH_MAX + 1];
    uint8_t sha256[32];
} agent_cert_watch_t;
/* agent_cert_set, and the watch written in the same transaction. Every
 * other certificate edit of the domain (set, set_cas, off) ends its watch. */
agent_status_t agent_cert_set_watched(store_t *st, const char *domain, const char *name,
                                      const char *cert_pem, const char *key_pem, int64_t now_utc,
                                      const agent_cert_watch_t *w, cdnapi_result_t *res);
/* Start (or change) a watch without taking a certificate yet. */
agent_status_t agent_cert_watch_put(store_t *st, const char *domain, const agent_cert_watch_t *w);
/* Every watched domain, with its watch. */
agent_status_t agent_cert_watches(
    store_t *st, void (*fn)(void *ctx, const char *domain, const agent_cert_watch_t *w), void *ctx);

/* Which action pushes uploaded certificates and turns HTTPS off. */
typedef enum {
    AGENT_CERT_API_LEGACY = 0,   /* SetDomainServerCertificate: the product's default */
    AGENT_CERT_API_SSL = 1,      /* SetCdnDomainSSLCertificate, chosen */
    AGENT_CERT_API_SSL_AUTO = 2, /* SetCdnDomainSSLCertificate, switched to by the agent
                                    when the service answered that the older action is
                                    gone (cdnapi_action_retired) */
} agent_cert_api_t;
/* Read (AGENT_CERT_API_LEGACY when never set) and write the device's
 * choice (record Gapi, one byte). */
agent_status_t agent_cert_api_get(store_t *st, agent_cert_api_t *api);
agent_status_t agent_cert_api_set(store_t *st, agent_cert_api_t api);
const char *agent_cert_api_action(agent_cert_api_t api);

/* Ask again for changes the agent stopped on: failed and blocked entries
 * (domain NULL: all; key NULL: the domain's headers and certificate) become
 * pending with no history. *count (may be NULL) receives how many.
 * AGENT_ERR_NOT_FOUND when the domain (or header) is unknown. Entries are
 * reset one at a time: after a failure, *count says how many were, and a
 * second call finishes the rest. */
agent_status_t agent_retry(store_t *st, const char *domain, const char *key, unsigned *count);

/* ------------------------------------------------------------ status -- */

typedef struct {
    const char *domain;
    const char *key;
    const char *desired;        /* NULL: to be removed */
    const char *delivered;      /* NULL: not on the CDN (as far as known) */
    const char *config_id;      /* "" when not delivered */
    bool unsure;                /* a request went out, outcome not yet known */
    const queue_entry_t *queue; /* NULL when nothing is queued */
    /* origin_request_header rules: desired and delivered are their specs
     * (cdnapi_rule_unspec); a removed rule's last function */
    bool rule;
    bool delivered_rule; /* the delivered (or in doubt) config is a rule */
} agent_header_view_t;

typedef struct {
    const char *domain;
    bool desired_on, desired_present;
    const char *desired_name;
    bool delivered_on, delivered_present;
    const char *delivered_name;
    const char *delivered_sha256; /* hex of the delivered certificate */
    const queue_entry_t *queue;
    const char *cas_id, *cas_region; /* a certificate service's ("" otherwise) */
    int64_t not_before, not_after;   /* the desired uploaded certificate's (UTC), 0: unknown */
    bool unsure;                     /* a push went out, its outcome not yet known */
} agent_cert_view_t;

typedef struct {
    void (*header)(void *arg, const agent_header_view_t *h);
    void (*cert)(void *arg, const agent_cert_view_t *c);
    void *arg;
} agent_visitor_t;

/* Visit every domain's headers and certificate (domain filter may be NULL). */
agent_status_t agent_visit(store_t *st, const char *domain, const agent_visitor_t *v);

/* ---------------------------------------------------------- delivery -- */

typedef enum {
    AGENT_EV_DELIVERED, /* the CDN holds the desired state of domain/what */
    AGENT_EV_FAILED,    /* refused input: waits for a new change or agent_retry */
    AGENT_EV_BLOCKED,   /* refused configuration: waits for a new configuration */
    AGENT_EV_RETRY,     /* a retryable failure: backing off (warn: worth a warning) */
    AGENT_EV_STORE,     /* the store failed (domain ""): every step pauses */
    AGENT_EV_EXPIRY,    /* a delivered certificate expires within AGENT_EXPIRY_WARN_DAYS
                           (warn) or has expired (not warn); retry_in_ms unused */
    AGENT_EV_SWITCHED,  /* certificates now go by SetCdnDomainSSLCertificate: the service
                           refused the older action (detail: its Code) */
} agent_ev_kind_t;
#define AGENT_EV_KINDS (AGENT_EV_SWITCHED + 1) /* for tables indexed by kind */

/* A desired certificate is worth a warning this many days before it
 * expires; the agent looks once a day (and when it starts). */
#define AGENT_EXPIRY_WARN_DAYS 30
#define AGENT_EXPIRY_CHECK_MS (24u * 3600u * 1000u)
/* Without a wall clock yet, the look is tried again this much later. */
#define AGENT_EXPIRY_NO_CLOCK_MS 60000u

typedef struct {
    agent_ev_kind_t kind;
    const char *domain;
    const char *what;    /* "header X-Key" / "certificate" / "store" */
    const char *detail;  /* e.g. "added ConfigId 1234", or the error Code */
    const char *message; /* server (or local) Message for failures */
    const char *request_id;
    uint16_t attempts;
    bool warn;            /* RETRY after every policy.warn_every attempts */
    uint32_t retry_in_ms; /* RETRY, STORE: the wait before the next try */
} agent_event_t;

/* Bytes of the record work area a delivery step uses under the store's
 * lock (a header record and its codec buffer): see agent_config_t.step_work. */
#define AGENT_STEP_WORK_SIZE 4416u

typedef struct {
    /* endpoint */
    const char *host; /* API host name */
    uint16_t port;    /* 443 */
    bool tls;         /* false only for tests */
    /* NULL: the agent sets up its own TLS (or, tls false, TCP) client for
     * host:port through the port. Else this transport (borrowed; the
     * coreHTTP pattern), e.g. a device's own stack or a test script. */
    const http_transport_t *transport;
    const uint8_t *ca_pem; /* CA bundle (NUL-terminated), copied by http */
    size_t ca_pem_len;
    bool insecure_no_verify;        /* explicit opt-out, warns on every call */
    sign_credentials_t credentials; /* borrowed for the agent's lifetime */
    sign_version_t signature;
    uint32_t http_timeout_ms;
    /* Largest reply body accepted (0: HTTP_DEFAULT_MAX_BODY_BYTES). It bounds
     * the read-back of a domain: about 200 bytes a config with short values. */
    size_t max_reply_bytes;
    queue_policy_t policy;
    uint32_t rate_milli; /* calls/s x 1000; default 10/s */
    /* The first call waits a random part of this (0, the default: none), as
     * systemd's RandomizedDelaySec: a fleet started together (a rollout,
     * power back after an outage) spreads its first calls over it instead
     * of meeting its account's limit in the same second. Only the start,
     * and the end of an outage (three calls in a row without an answer:
     * an unsigned probe, which no account's rate counts, finds the service
     * back, then the next call waits a random part of it): other edits go
     * at once. */
    uint32_t start_splay_ms;
    /* Erased sectors the agent keeps ready while idle (store_gc_ahead: one
     * bounded GC step a poll when nothing is due), so a later edit or
     * outcome never waits for GC. 0 (the default): off, a write collects
     * what it needs itself. AGENT_GC_AHEAD_AUTO: room for the largest value
     * (STORE_VALUE_MAX) on this flash. Costs some wear (about a fifth more
     * erases in store_bench worst-put). */
    uint32_t gc_ahead_sectors;
    /* The record work area (AGENT_STEP_WORK_SIZE bytes, aligned for any
     * type; borrowed for the agent's lifetime). NULL: the agent takes it from
     * the heap around each locked phase and frees it for the call, which
     * lowers a call's heap peak but lets TLS's small blocks settle in the
     * hole, so the heap's high-water mark then varies by up to the area's
     * size from run to run. A device that budgets its RAM hands in a static
     * one: the high-water mark is then what the calls need. */
    void *step_work;
    /* Around every store access (NULL on a device with one owner). On
     * Linux: flock the flash file and remount, so CLI edits are seen. lock
     * returns STORE_OK when the store is locked and current; any other
     * status stops the step (nothing is sent) and pauses delivery like a
     * store error, that status named in the event. unlock follows every
     * lock, a failed one too (a hook may fail after taking its lock), so it
     * must be safe to call when nothing is held. */
    store_status_t (*lock)(void *ctx);
    void (*unlock)(void *ctx);
    void *lock_ctx;
    /* Wall clock (UTC seconds), true when trustworthy; NULL: port_wall_clock. */
    bool (*wall_clock)(void *ctx, int64_t *utc);
    void *clock_ctx;
    void (*event)(void *ctx, const agent_event_t *ev);
    void *event_ctx;
} agent_config_t;

void agent_config_default(agent_config_t *cfg);

#define AGENT_GC_AHEAD_AUTO UINT32_MAX
/* Pause between idle GC steps while there is more to do. */
#define AGENT_GC_AHEAD_PACE_MS 20u

typedef struct agent agent_t; /* opaque; see agent_new */

/* Allocate the agent and its HTTP/TLS client. store is borrowed. Every
 * agent has a configuration epoch of its own: entries blocked by an earlier
 * agent (an earlier run, or before a reload) are tried again by this one.
 * AGENT_ERR_TLS_SETUP (AGENT_ERR_HTTP_BASE + the client's status): the TLS
 * client refused its options (CA bundle does not parse). */
agent_status_t agent_new(agent_t **out, store_t *st, const agent_config_t *cfg);
void agent_free(agent_t *a);

/* One bounded step. Returns milliseconds until the agent wants the next
 * step (0: at once). UINT32_MAX: nothing left that will be due under this
 * configuration (the queue is empty, or holds only failed or blocked work,
 * or the agent is halted: see agent_halted). */
uint32_t agent_poll(agent_t *a, uint64_t now_ms);

/* The call rate the agent learnt from the service's throttling (milli-
 * calls per second), kept on flash so that a restart does not begin at the
 * full configured rate again: a fleet that restarts together would meet
 * the account's limit at once. AGENT_ERR_NOT_FOUND: never throttled (the
 * configured rate applies). The running agent's own is in
 * agent_counters_t.rate_milli. */
#define AGENT_RATE_SAVE_MS 30000u
agent_status_t agent_rate_get(store_t *st, uint32_t *rate_milli);

/* The service refused this agent's configuration as a whole (signature,
 * AccessKeyId, STS token, server certificate): the agent makes no call until
 * it is replaced by one with a new configuration. True then, with the
 * refusal's Code and Message (valid until agent_free). */
bool agent_halted(const agent_t *a, const char **code, const char **message);

typedef struct {
    uint32_t calls;     /* API calls made */
    uint32_t throttled; /* Throttling* answers */
    uint32_t max_throttled_in_row;
    uint32_t clock_fixes;        /* clock corrections from the server Date */
    uint32_t adoptions;          /* configs adopted by read-back after an unknown outcome */
    uint32_t handshakes;         /* TLS handshakes */
    uint32_t duplicates_removed; /* extra copies of a header deleted after a read-back */
    uint32_t store_errors;       /* steps stopped by a store or lock failure */
    uint32_t rate_milli;         /* the call rate now (milli-calls/s), learnt from throttling */
} agent_counters_t;

void agent_counters(const agent_t *a, agent_counters_t *c);

/* ---------------------------------------------------------- settings -- */

/* What a provisioned device keeps besides its desired state: where and how
 * to call the API. Secrets (AccessKeySecret, STS token) are sealed with the
 * device key (components/vault) before they reach the store, as are
 * certificate private keys; a flash image alone holds no secret. */
#define AGENT_ENDPOINT_MAX 300u
#define AGENT_KEY_ID_MAX 128u
#define AGENT_SECRET_MAX 256u
#define AGENT_STS_MAX 4096u
#define AGENT_CA_MAX STORE_VALUE_MAX
/* Sealed records a device can hold: Gaks, Gsts and one key per domain. */
#define AGENT_SEALED_MAX (2u + AGENT_MAX_DOMAINS)

typedef struct {
    char endpoint[AGENT_ENDPOINT_MAX + 1]; /* "https://host[:port]" */
    char access_key_id[AGENT_KEY_ID_MAX + 1];
    char access_key_secret[AGENT_SECRET_MAX + 1]; /* RAM only; wipe after use */
    char security_token[AGENT_STS_MAX + 1];       /* "" = none */
    uint8_t signature;                            /* sign_version_t */
    queue_policy_t policy; /* on flash: base, cap, warn_every (manifest retry.max_attempts) */
    uint32_t rate_milli;
} agent_settings_t;

/* Write settings (and the CA bundle, PEM, <= 16 KB; NULL keeps none) in one
 * store transaction, secrets sealed under the device key. */
/* Split an endpoint "https://host[:port]" ("http://" too, for tests: *tls
 * false) into host (NUL-terminated, < cap bytes) and port (443 / 80 when
 * absent). host is a DNS name, an IPv4 literal or an IPv6 literal in
 * brackets ("https://[2001:db8::1]:8443"; host gets it without them).
 * AGENT_ERR_INVALID when it is not one. */
agent_status_t agent_endpoint_split(const char *endpoint, char *host, size_t cap, uint16_t *port,
                                    bool *tls);
/* The Host header's value (what the signature covers) for host and port:
 * the port only when not the scheme's default, an IPv6 literal bracketed.
 * AGENT_ERR_ARG when it does not fit cap. */
agent_status_t agent_endpoint_hostport(const char *host, uint16_t port, bool tls, char *out,
                                       size_t cap);

agent_status_t agent_settings_save(store_t *st, const agent_settings_t *s, const char *ca_pem);
/* Read them back; secrets opened with the device key. AGENT_ERR_NOT_FOUND
 * on an unprovisioned device. ca_pem (may be NULL) receives a heap copy
 * (port_malloc, NUL-terminated, free with port_free) or NULL if none. */
agent_status_t agent_settings_load(store_t *st, agent_settings_t *s, char **ca_pem);
/* Wipe the secrets of s. */
void agent_settings_wipe(agent_settings_t *s);

/* A digest of the stored settings as they are on flash (sealed secrets
 * included as ciphertext, nothing opened): it changes whenever the settings
 * are rewritten, so a daemon can notice re-provisioning and reload. */
agent_status_t agent_settings_stamp(store_t *st, uint32_t *stamp);

/* Re-seal every sealed record under a new device key (rotation). Records
 * already under new_id are left alone, so an interrupted rotation resumes.
 * Returns the number of records re-sealed in *count. */
agent_status_t agent_reseal(store_t *st, const uint8_t old_key[32], uint32_t old_id,
                            const uint8_t new_key[32], uint32_t new_id, unsigned *count);

/* Visit every sealed record: store key, key id it is sealed under. */
typedef void (*agent_sealed_fn)(void *arg, const char *store_key, uint32_t key_id, size_t len);
agent_status_t agent_visit_sealed(store_t *st, agent_sealed_fn fn, void *arg);

/* Does the sealed record under store key open with this device's key?
 * (The plaintext is wiped at once.) AGENT_OK, AGENT_ERR_SECRET (tampered,
 * or sealed under another key), AGENT_ERR_NO_KEY, AGENT_ERR_NOT_FOUND. */
agent_status_t agent_check_sealed(store_t *st, const char *key);

/* Open a certificate's private key for domain (heap copy, NUL-terminated;
 * wipe and port_free it). */
agent_status_t agent_cert_key(store_t *st, const char *domain, char **key_pem);
/* The desired uploaded certificate chain of domain (heap copy, port_free
 * it); AGENT_ERR_NOT_FOUND when none is (off, or a certificate service's). */
agent_status_t agent_cert_pem(store_t *st, const char *domain, char **cert_pem);

#ifdef __cplusplus
}
#endif

#endif /* CDNAGENT_AGENT_H */
