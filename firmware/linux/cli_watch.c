/* Certificates renewed from files (cert set --watch); see cli.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_flash.h"
#include "cli_watch.h"
#include "crypto.h"
#include "port.h"

/* The watches of an image, copied out of the store's iteration. */
typedef struct {
    char domain[AGENT_DOMAIN_MAX + 1];
    agent_cert_watch_t w;
} watch_item_t;

typedef struct {
    watch_item_t *v;
    size_t n;
} watch_list_t;

static void collect_cb(void *ctx, const char *domain, const agent_cert_watch_t *w)
{
    watch_list_t *l = ctx;
    if (l->n < AGENT_MAX_DOMAINS) {
        snprintf(l->v[l->n].domain, sizeof l->v[0].domain, "%s", domain);
        l->v[l->n++].w = *w;
    }
}

/* The desired certificate in place: its name and notBefore. */
typedef struct {
    char name[AGENT_CERT_NAME_MAX + 1];
    int64_t not_before;
    bool found;
} current_t;

static void current_cb(void *arg, const agent_cert_view_t *c)
{
    current_t *cur = arg;
    cur->found = c->desired_on && !c->cas_id[0];
    snprintf(cur->name, sizeof cur->name, "%s", c->desired_name);
    cur->not_before = c->not_before;
}

bool cli_watch_pair_hash(const char *cert, const char *key, uint8_t out[32])
{
    size_t cl = strlen(cert), kl = strlen(key);
    char *b = malloc(cl + 1 + kl);
    if (!b)
        return false;
    memcpy(b, cert, cl + 1);
    memcpy(b + cl + 1, key, kl);
    bool ok = crypto_sha256(b, cl + 1 + kl, out) == CRYPTO_OK;
    crypto_wipe(b, cl + 1 + kl);
    free(b);
    return ok;
}

/* Why a new pair is not taken ("" when it is), into why. */
static void judge(store_t *st, const watch_item_t *it, const char *cert, const char *key,
                  int64_t now, current_t *cur, char *why, size_t cap)
{
    cdnapi_result_t r;
    int64_t nb = 0, na = 0;
    agent_visitor_t v = {NULL, current_cb, cur};
    why[0] = 0;
    if (cdnapi_validate_cert(it->domain, cert, key, now, &r) != CDNAPI_SUCCESS) {
        snprintf(why, cap, "%s: %s", r.code, r.message);
        return;
    }
    memset(cur, 0, sizeof *cur);
    agent_status_t ar = agent_visit(st, it->domain, &v);
    if (ar != AGENT_OK && ar != AGENT_ERR_NOT_FOUND)
        snprintf(why, cap, "the certificate in place cannot be read: %s", agent_status_str(ar));
    else if (cur->found && cdnapi_cert_validity(cert, &nb, &na) && nb < cur->not_before)
        snprintf(why, cap, "it is older than the certificate in place (issued before it)");
}

/* The files hold the certificate already desired: nothing to push. */
static bool same_as_desired(store_t *st, const char *domain, const char *cert)
{
    char *pem = NULL;
    bool same = agent_cert_pem(st, domain, &pem) == AGENT_OK && strcmp(pem, cert) == 0;
    port_free(pem);
    return same;
}

/* Whether the content seen now is the content the previous look saw (a
 * file is taken only once it stays as it is for a look). */
static bool settled(cli_watch_memo_t *memo, const char *domain, const uint8_t h[32])
{
    uint8_t key[32];
    if (crypto_sha256(domain, strlen(domain), key) != CRYPTO_OK)
        return true;
    for (size_t i = 0; i < memo->nseen; i++)
        if (memcmp(memo->seen[i].domain, key, 32) == 0) {
            bool same = memcmp(memo->seen[i].content, h, 32) == 0;
            memcpy(memo->seen[i].content, h, 32);
            return same;
        }
    if (memo->nseen < CLI_WATCH_MEMO) {
        memcpy(memo->seen[memo->nseen].domain, key, 32);
        memcpy(memo->seen[memo->nseen++].content, h, 32);
    }
    return false;
}

/* One watched pair: read, hashed, and when new, settled and good, taken. */
static void watch_one(store_t *st, watch_item_t *it, cli_watch_memo_t *memo, const char *cmd)
{
    int why_c = 0, why_k = 0;
    int64_t now = 0;
    size_t kl = 0;
    uint8_t h[32];
    char reason[AGENT_WATCH_PATH_MAX + 256];
    current_t cur;
    char *cert = cli_read_text(it->w.cert_path, CDNAPI_MAX_PEM_LEN, NULL, &why_c);
    char *key = cert ? cli_read_text(it->w.key_path, STORE_VALUE_MAX, &kl, &why_k) : NULL;
    if (!cert || !key) {
        snprintf(reason, sizeof reason, "cannot read %s: %s",
                 cert ? it->w.key_path : it->w.cert_path,
                 (cert ? why_k : why_c) == CLI_READ_ERRNO ? strerror(errno)
                                                          : "too large or not PEM text");
        memset(h, 0xff, sizeof h); /* (a reason without content: said once until it changes) */
    } else if (!cli_watch_pair_hash(cert, key, h) || memcmp(h, it->w.sha256, sizeof h) == 0) {
        reason[0] = 0; /* unchanged: nothing to say */
        memcpy(h, it->w.sha256, sizeof h);
    } else if (!settled(memo, it->domain, h)) {
        reason[0] = 0; /* new: taken when two looks in a row see it (a writer may be busy) */
        memo->pending++;
    } else if (same_as_desired(st, it->domain, cert)) {
        memcpy(it->w.sha256, h, sizeof h); /* the pair in place (provisioned from these files) */
        agent_status_t ar = agent_cert_watch_put(st, it->domain, &it->w);
        snprintf(reason, sizeof reason, "%s", ar == AGENT_OK ? "" : agent_status_str(ar));
    } else {
        if (port_wall_clock(&now) != PORT_OK)
            now = 0; /* (then an expired pair is the service's to refuse) */
        judge(st, it, cert, key, now, &cur, reason, sizeof reason);
        if (!reason[0]) {
            cdnapi_result_t r;
            memcpy(it->w.sha256, h, sizeof h);
            agent_status_t ar = agent_cert_set_watched(st, it->domain, cur.name[0] ? cur.name : NULL,
                                                       cert, key, now, &it->w, &r);
            if (ar == AGENT_OK)
                cli_say(stderr, PORT_LOG_INFO,
                        "cdnagent: %s: %s: took the renewed certificate from %s (queued)", cmd,
                        it->domain, it->w.cert_path);
            else
                snprintf(reason, sizeof reason, "it cannot be stored: %s", agent_status_str(ar));
        }
    }
    if (reason[0] && !cli_watch_memo_seen(memo, it->domain, h, reason))
        cli_say(stderr, PORT_LOG_WARN,
                "cdnagent: %s: %s: the certificate files are refused (%s); the certificate in "
                "place stays",
                cmd, it->domain, reason);
    free(cert);
    if (key) {
        crypto_wipe(key, kl);
        free(key);
    }
}

bool cli_watch_memo_seen(cli_watch_memo_t *memo, const char *domain, const uint8_t hash[32],
                         const char *reason)
{
    uint8_t h[32];
    /* a refusal is remembered by the domain, the content and the reason */
    size_t dl = strlen(domain), rl = strlen(reason);
    char *b = malloc(dl + 1 + 32 + rl);
    if (!b)
        return false;
    memcpy(b, domain, dl + 1);
    memcpy(b + dl + 1, hash, 32);
    memcpy(b + dl + 33, reason, rl);
    bool hashed = crypto_sha256(b, dl + 33 + rl, h) == CRYPTO_OK;
    free(b);
    for (size_t i = 0; hashed && i < memo->n; i++)
        if (memcmp(memo->said[i], h, sizeof h) == 0)
            return true;
    if (hashed) {
        memcpy(memo->said[memo->next], h, sizeof h);
        memo->next = (memo->next + 1) % CLI_WATCH_MEMO;
        memo->n += memo->n < CLI_WATCH_MEMO;
    }
    return false;
}

int cli_watch_step(cli_flash_t *f, cli_watch_memo_t *memo, const char *cmd)
{
    memo->pending = 0;
    watch_list_t l = {calloc(AGENT_MAX_DOMAINS, sizeof(watch_item_t)), 0};
    if (!l.v)
        return -1;
    if (cli_flash_lock(f) != STORE_OK) {
        cli_flash_unlock(f);
        free(l.v);
        return -1;
    }
    agent_status_t ar = agent_cert_watches(&f->store, collect_cb, &l);
    for (size_t i = 0; ar == AGENT_OK && i < l.n; i++)
        watch_one(&f->store, &l.v[i], memo, cmd);
    cli_flash_unlock(f);
    free(l.v);
    return ar != AGENT_OK ? -1 : memo->pending ? 1 : 0;
}
