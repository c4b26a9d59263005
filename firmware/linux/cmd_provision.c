/* cdnagent provision | inspect | rotate-device-key: the factory line. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "agent.h"
#include "cli.h"
#include "cli_opts.h"
#include "cli_flash.h"
#include "port_posix.h"
#include "vault.h"

#define MANIFEST_MAX (256u * 1024u)
#define MAX_ERRORS 100

/* ------------------------------------------------------------ errors -- */

typedef struct {
    char *lines[MAX_ERRORS];
    int n, dropped;
} errs_t;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
err(errs_t *e, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->n >= MAX_ERRORS) {
        e->dropped++;
        return;
    }
    size_t len = strlen(path) + strlen(msg) + 3;
    e->lines[e->n] = malloc(len);
    if (e->lines[e->n])
        snprintf(e->lines[e->n++], len, "%s: %s", path, msg);
}

static void errs_free(errs_t *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->lines[i]);
    e->n = 0;
}

/* ---------------------------------------------------------- manifest -- */

typedef struct {
    char key[CDNAPI_MAX_NAME_LEN + 1];
    char value[CDNAPI_MAX_VALUE_LEN + 1];
    int json_index; /* position in the manifest's array, for messages */
    /* "rule": "new": an origin_request_header rule (op, duplicate, source) */
    bool rule, duplicate;
    cdnapi_rule_op_t op;
    char source[CDNAPI_MAX_RULE_VALUE_LEN + 1];
} m_header_t;

typedef struct {
    char name[AGENT_DOMAIN_MAX + 1];
    m_header_t *headers;
    int nheaders;
    char *cert_pem, *key_pem;
    char cert_name[AGENT_CERT_NAME_MAX + 1];
    char cas_id[CDNAPI_MAX_CAS_ID_LEN + 1], cas_region[32]; /* a certificate service's */
    agent_cert_watch_t watch; /* the device's files a daemon renews it from (cert_path "": none) */
} m_domain_t;

typedef struct {
    agent_settings_t set;
    char *ca_pem;
    uint32_t sector_size, sector_count, write_size;
    m_domain_t domains[AGENT_MAX_DOMAINS];
    int ndomains;
    agent_cert_api_t cert_api;
} manifest_t;

static void manifest_free(manifest_t *m)
{
    agent_settings_wipe(&m->set);
    free(m->ca_pem);
    for (int i = 0; i < m->ndomains; i++) {
        free(m->domains[i].headers);
        free(m->domains[i].cert_pem);
        if (m->domains[i].key_pem) {
            mbedtls_platform_zeroize(m->domains[i].key_pem, strlen(m->domains[i].key_pem));
            free(m->domains[i].key_pem);
        }
    }
    memset(m, 0, sizeof *m);
}

static void resolve(const char *base, const char *p, char *out, size_t cap)
{
    if (p[0] == '/' || !base[0])
        snprintf(out, cap, "%s", p);
    else
        snprintf(out, cap, "%s/%s", base, p);
}

/* A string member: required or optional, with a length bound. */
static const char *get_str(errs_t *e, const cJSON *obj, const char *path, const char *name,
                           int required, size_t max)
{
    char p[256];
    snprintf(p, sizeof p, "%s%s%s", path, path[0] ? "." : "", name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) {
        if (required)
            err(e, p, "missing");
        return NULL;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        err(e, p, "must be a string");
        return NULL;
    }
    if (required && !v->valuestring[0]) {
        err(e, p, "must not be empty");
        return NULL;
    }
    if (strlen(v->valuestring) > max) {
        err(e, p, "longer than %zu bytes", max);
        return NULL;
    }
    return v->valuestring;
}

static int get_uint(errs_t *e, const cJSON *obj, const char *path, const char *name, double lo,
                    double hi, uint32_t *out)
{
    char p[256];
    snprintf(p, sizeof p, "%s.%s", path, name);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v)) {
        err(e, p, "must be a whole number");
        return -1;
    }
    /* Range first: converting a double outside the target type's range
     * (1e300) to an integer is undefined behaviour. */
    if (!(v->valuedouble >= lo && v->valuedouble <= hi)) {
        err(e, p, "must be between %.0f and %.0f", lo, hi);
        return -1;
    }
    if (v->valuedouble != (double)(uint32_t)v->valuedouble) {
        err(e, p, "must be a whole number");
        return -1;
    }
    *out = (uint32_t)v->valuedouble;
    return 1;
}

static void unknown_fields(errs_t *e, const cJSON *obj, const char *path, const char *const *known)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= c->string && strcmp(c->string, known[i]) == 0;
        if (!ok) {
            char p[256];
            snprintf(p, sizeof p, "%s%s%s", path, path[0] ? "." : "", c->string ? c->string : "?");
            err(e, p, "unknown field");
        }
    }
}

static int count_pem_certs(const char *pem)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int rc = mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, strlen(pem) + 1);
    int n = 0;
    if (rc >= 0)
        for (const mbedtls_x509_crt *c = &crt; c && c->raw.len; c = c->next)
            n++;
    mbedtls_x509_crt_free(&crt);
    return rc == 0 ? n : -1;
}

static int64_t now_utc(void)
{
    int64_t t = 0;
    if (port_wall_clock(&t) != PORT_OK)
        t = (int64_t)time(NULL);
    return t;
}

static void m_defaults(manifest_t *m)
{
    memset(m, 0, sizeof *m);
    m->sector_size = CLI_FLASH_SECTOR_SIZE;
    m->sector_count = CLI_FLASH_SECTOR_COUNT;
    m->write_size = CLI_FLASH_WRITE_SIZE;
    queue_policy_default(&m->set.policy);
    m->set.rate_milli = RETRY_DEFAULT_RATE_MILLI_PER_S;
    m->set.signature = SIGN_V3;
}

/* The agent's own parser decides: a manifest it accepts is an endpoint
 * every later sync can use. */
static void m_endpoint(errs_t *e, const cJSON *root, manifest_t *m)
{
    char host[HTTP_MAX_HOST_LEN + 1];
    uint16_t port;
    bool tls = false;
    const char *ep = get_str(e, root, "", "endpoint", 1, AGENT_ENDPOINT_MAX);
    if (!ep)
        return;
    if (strncmp(ep, "https://", 8) != 0 || strchr(ep + 8, '/') ||
        agent_endpoint_split(ep, host, sizeof host, &port, &tls) != AGENT_OK || !tls)
        err(e, "endpoint", "must be https://host[:port] (verified TLS only)");
    else
        snprintf(m->set.endpoint, sizeof m->set.endpoint, "%s", ep);
}

static void m_credentials(errs_t *e, const cJSON *root, manifest_t *m)
{
    static const char *const known[] = {"access_key_id", "access_key_secret", "security_token",
                                        NULL};
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(root, "credentials");
    if (!cr || !cJSON_IsObject(cr)) {
        err(e, "credentials", cr ? "must be an object" : "missing");
        return;
    }
    unknown_fields(e, cr, "credentials", known);
    const char *id = get_str(e, cr, "credentials", "access_key_id", 1, AGENT_KEY_ID_MAX);
    const char *sec = get_str(e, cr, "credentials", "access_key_secret", 1, AGENT_SECRET_MAX);
    const char *sts = get_str(e, cr, "credentials", "security_token", 0, AGENT_STS_MAX);
    if (id) {
        for (const char *p = id; *p; p++)
            if (*p <= ' ' || *p > '~') {
                err(e, "credentials.access_key_id", "must be printable ASCII without blanks");
                break;
            }
        snprintf(m->set.access_key_id, sizeof m->set.access_key_id, "%s", id);
    }
    if (sec) /* the message never repeats a secret */
        snprintf(m->set.access_key_secret, sizeof m->set.access_key_secret, "%s", sec);
    if (sts)
        snprintf(m->set.security_token, sizeof m->set.security_token, "%s", sts);
}

static void m_signature(errs_t *e, const cJSON *root, manifest_t *m)
{
    const char *sig = get_str(e, root, "", "signature", 0, 8);
    int i = sig ? cli_choice_index(CLI_SIGNATURE_CHOICES, sig) : CLI_SIGNATURE_V3;
    if (i < 0)
        err(e, "signature", "must be \"v1\" or \"v3\"");
    m->set.signature = i == CLI_SIGNATURE_V1 ? SIGN_V1 : SIGN_V3;
}

static void m_ca(errs_t *e, const cJSON *root, const char *base, manifest_t *m)
{
    char path[4096];
    int big;
    const char *ca = get_str(e, root, "", "ca_bundle", 1, 4000);
    if (!ca)
        return;
    resolve(base, ca, path, sizeof path);
    m->ca_pem = cli_read_text(path, AGENT_CA_MAX, NULL, &big);
    if (!m->ca_pem)
        err(e, "ca_bundle",
            big == 1   ? "%s: larger than 16 KB (keep only the roots the device needs)"
            : big == 2 ? "%s: not a text (PEM) file"
                       : "%s: cannot read",
            path);
    else if (count_pem_certs(m->ca_pem) <= 0)
        err(e, "ca_bundle", "%s: no X.509 certificate parses", path);
}

/* An optional member that must be an object when present. */
static const cJSON *m_object(errs_t *e, const cJSON *parent, const char *name,
                             const char *const *known)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (o && !cJSON_IsObject(o)) {
        err(e, name, "must be an object");
        return NULL;
    }
    if (o)
        unknown_fields(e, o, name, known);
    return o;
}

static void m_flash(errs_t *e, const cJSON *root, manifest_t *m)
{
    static const char *const known[] = {"sector_size", "sector_count", "write_size", NULL};
    const cJSON *fl = m_object(e, root, "flash", known);
    if (!fl)
        return;
    if (get_uint(e, fl, "flash", "sector_size", 512, 65536, &m->sector_size) > 0 &&
        (m->sector_size & (m->sector_size - 1)))
        err(e, "flash.sector_size", "must be a power of two");
    get_uint(e, fl, "flash", "sector_count", 3, 4096, &m->sector_count);
    if (get_uint(e, fl, "flash", "write_size", 1, 32, &m->write_size) > 0 &&
        (m->write_size & (m->write_size - 1)))
        err(e, "flash.write_size", "must be 1, 2, 4, 8, 16 or 32");
}

static void m_retry(errs_t *e, const cJSON *root, manifest_t *m)
{
    static const char *const known[] = {"base_ms", "cap_ms", "max_attempts", "rate_per_s", NULL};
    const cJSON *rt = m_object(e, root, "retry", known);
    uint32_t v;
    if (!rt)
        return;
    if (get_uint(e, rt, "retry", "base_ms", 10, 600000, &v) > 0)
        m->set.policy.base_ms = v;
    if (get_uint(e, rt, "retry", "cap_ms", 10, 86400000, &v) > 0)
        m->set.policy.cap_ms = v;
    if (get_uint(e, rt, "retry", "max_attempts", 1, 65535, &v) > 0)
        m->set.policy.warn_every = (uint16_t)v;
    if (get_uint(e, rt, "retry", "rate_per_s", 1, 100, &v) > 0)
        m->set.rate_milli = v * 1000u;
    if (m->set.policy.cap_ms < m->set.policy.base_ms)
        err(e, "retry.cap_ms", "must not be below retry.base_ms");
}

/* The service's refusal of a header, said as the manifest's field. */
static void m_header_refused(errs_t *e, const char *hp, const char *key, const cdnapi_result_t *r)
{
    char kp[128];
    int on_key = strncmp(r->code, "InvalidKey", 10) == 0 ||
                 strncmp(r->code, "InvalidHeaderKey", 16) == 0;
    snprintf(kp, sizeof kp, "%s.%s", hp, on_key ? "key" : "value");
    err(e, kp, "%s (%s)",
        on_key && cdnapi_header_name_reserved(key)     ? "reserved header name"
        : strcmp(r->code, "InvalidKey.Malformed") == 0 ? "not an HTTP token"
        : on_key                                       ? "unsupported header name"
        : strcmp(r->code, "MissingParameter") == 0     ? "must not be empty"
                                                       : "not a valid header value",
        r->code);
}

/* A rule's fields ("rule": "new"): op, duplicate, source, checked as the
 * service checks them (false: said why). */
static bool m_rule(errs_t *e, const cJSON *h, const char *hp, const char *k, const char *v,
                   m_header_t *mh)
{
    char kp[128];
    cdnapi_result_t r;
    const char *op = get_str(e, h, hp, "op", 0, 16);
    const char *src = get_str(e, h, hp, "source", 0, 4096);
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(h, "duplicate");
    int k_op = op ? cdnapi_rule_op_parse(op) : CDNAPI_RULE_ADD;
    snprintf(kp, sizeof kp, "%s.op", hp);
    if (k_op < 0) {
        err(e, kp, "must be add, modify, delete or rewrite");
        return false;
    }
    snprintf(kp, sizeof kp, "%s.duplicate", hp);
    if (dup && !cJSON_IsBool(dup)) {
        err(e, kp, "must be true or false");
        return false;
    }
    cdnapi_rule_t rule = {(cdnapi_rule_op_t)k_op, cJSON_IsTrue(dup), k, v, src};
    char spec[CDNAPI_MAX_VALUE_LEN + 1];
    if (cdnapi_validate_rule(&rule, &r) != CDNAPI_SUCCESS) {
        err(e, hp, "%s (%s)", r.message, r.code);
        return false;
    }
    if (!cdnapi_rule_spec(&rule, spec)) {
        err(e, hp,
            "source and value together are over 1,021 bytes (the agent's limit for one "
            "rule)");
        return false;
    }
    mh->rule = true;
    mh->op = rule.op;
    mh->duplicate = rule.duplicate;
    snprintf(mh->source, sizeof mh->source, "%s", src ? src : "");
    return true;
}

static void m_header(errs_t *e, const cJSON *h, const char *hp, int hi, m_domain_t *md)
{
    static const char *const known[] = {"key", "value", "rule", "op", "duplicate", "source", NULL};
    cdnapi_result_t r;
    char kp[128];
    m_header_t tmp;
    if (!cJSON_IsObject(h)) {
        err(e, hp, "must be an object {\"key\", \"value\"}");
        return;
    }
    unknown_fields(e, h, hp, known);
    const char *k = get_str(e, h, hp, "key", 1, 1024);
    const char *v = get_str(e, h, hp, "value", 0, 4096);
    const char *rule = get_str(e, h, hp, "rule", 0, 16);
    const char *op = get_str(e, h, hp, "op", 0, 16);
    bool is_rule = rule && strcmp(rule, "new") == 0;
    snprintf(kp, sizeof kp, "%s.rule", hp);
    if (rule && !is_rule && strcmp(rule, "legacy") != 0)
        err(e, kp,
            "must be \"legacy\" (set_req_header, the default) or \"new\" "
            "(origin_request_header)");
    if (!is_rule && (cJSON_GetObjectItemCaseSensitive(h, "op") ||
                     cJSON_GetObjectItemCaseSensitive(h, "duplicate") ||
                     cJSON_GetObjectItemCaseSensitive(h, "source")))
        err(e, kp, "op, duplicate and source are a rule's: they need \"rule\": \"new\"");
    if (!cJSON_GetObjectItemCaseSensitive(h, "value") &&
        !(is_rule && op && strcmp(op, "delete") == 0)) {
        snprintf(kp, sizeof kp, "%s.value", hp);
        err(e, kp, "missing");
    }
    if (!k || (!v && !is_rule))
        return;
    memset(&tmp, 0, sizeof tmp);
    if (is_rule ? !m_rule(e, h, hp, k, v, &tmp)
                : cdnapi_validate_header(md->name[0] ? md->name : "example.com", k, v, &r) !=
                      CDNAPI_SUCCESS) {
        if (!is_rule)
            m_header_refused(e, hp, k, &r);
        return;
    }
    for (int j = 0; j < md->nheaders; j++)
        if (util_ascii_eq_nocase(md->headers[j].key, k)) {
            snprintf(kp, sizeof kp, "%s.key", hp);
            err(e, kp, "duplicate of headers[%d] (header names are case-insensitive)",
                md->headers[j].json_index);
        }
    m_header_t *mh = &md->headers[md->nheaders++];
    *mh = tmp;
    snprintf(mh->key, sizeof mh->key, "%s", k);
    snprintf(mh->value, sizeof mh->value, "%s", v ? v : "");
    mh->json_index = hi;
}

static void m_headers(errs_t *e, const cJSON *d, const char *dp, m_domain_t *md)
{
    char hp[96];
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(d, "headers");
    if (!hs)
        return;
    snprintf(hp, sizeof hp, "%s.headers", dp);
    if (!cJSON_IsArray(hs)) {
        err(e, hp, "must be an array");
        return;
    }
    int nh = cJSON_GetArraySize(hs);
    md->headers = calloc((size_t)(nh ? nh : 1), sizeof *md->headers);
    if (!md->headers) {
        err(e, hp, "out of memory for %d headers", nh);
        return;
    }
    int hi = 0;
    for (const cJSON *h = hs->child; h; h = h->next, hi++) {
        snprintf(hp, sizeof hp, "%s.headers[%d]", dp, hi);
        m_header(e, h, hp, hi, md);
    }
}

/* The service's refusal of a certificate pair, said as the manifest's field. */
static void m_cert_refused(errs_t *e, const char *cp, const cdnapi_result_t *r)
{
    char fp[128];
    int mismatch = strcmp(r->code, "Certificate.MissMatch") == 0;
    const char *what = mismatch ? "the private key does not match the certificate"
                       : strcmp(r->code, "Certificate.Expired") == 0 ? "the certificate has expired"
                       : strcmp(r->code, "Certificate.DomainMismatch") == 0
                           ? "the certificate does not cover the domain"
                           : "does not parse";
    snprintf(fp, sizeof fp, "%s.%s", cp, mismatch ? "key" : "cert");
    err(e, fp, "%s (%s)", what, r->code);
}

/* One PEM file of a certificate pair, read whole (NULL: said why). */
static char *m_pem(errs_t *e, const char *base, const char *file, const char *fp, size_t max,
                   const char *too_big)
{
    char path[4096];
    int big;
    resolve(base, file, path, sizeof path);
    char *pem = cli_read_text(path, max, NULL, &big);
    if (!pem)
        err(e, fp, "%s: %s", path, big == 1 ? too_big : "cannot read");
    return pem;
}

/* A certificate service's certificate: its CertId and region, checked as
 * the service would. */
static void m_cert_cas(errs_t *e, const cJSON *c, const char *cp, m_domain_t *md)
{
    char fp[128];
    cdnapi_result_t r;
    const char *id = get_str(e, c, cp, "cas_id", 1, CDNAPI_MAX_CAS_ID_LEN);
    const char *region = get_str(e, c, cp, "cas_region", 0, sizeof md->cas_region - 1);
    if (cJSON_GetObjectItemCaseSensitive(c, "cert") || cJSON_GetObjectItemCaseSensitive(c, "key"))
        err(e, cp, "either cas_id or cert and key, not both");
    if (!id)
        return;
    if (cdnapi_validate_cas(id, region && region[0] ? region : NULL, &r) != CDNAPI_SUCCESS) {
        snprintf(fp, sizeof fp, "%s.%s", cp,
                 strcmp(r.code, "InvalidParameter") == 0 ? "cas_id" : "cas_region");
        err(e, fp, "%s (%s)", r.message, r.code);
        return;
    }
    snprintf(md->cas_id, sizeof md->cas_id, "%s", id);
    snprintf(md->cas_region, sizeof md->cas_region, "%s", region ? region : "");
}

/* certificate.watch {cert, key}: absolute paths on the device (the
 * factory's files are not the device's), renewed there by its daemon. */
static void m_cert_watch(errs_t *e, const cJSON *c, const char *cp, m_domain_t *md)
{
    static const char *const known[] = {"cert", "key", NULL};
    char wp[96];
    snprintf(wp, sizeof wp, "%s.watch", cp);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(c, "watch");
    if (!w)
        return;
    if (!cJSON_IsObject(w)) {
        err(e, wp, "must be an object {\"cert\", \"key\"} of absolute paths on the device");
        return;
    }
    unknown_fields(e, w, wp, known);
    const char *cf = get_str(e, w, wp, "cert", 1, AGENT_WATCH_PATH_MAX);
    const char *kf = get_str(e, w, wp, "key", 1, AGENT_WATCH_PATH_MAX);
    if ((cf && cf[0] != '/') || (kf && kf[0] != '/'))
        err(e, wp, "paths must be absolute (the device's daemon reads them)");
    else if (cf && kf) {
        memcpy(md->watch.cert_path, cf, strlen(cf) + 1);
        memcpy(md->watch.key_path, kf, strlen(kf) + 1);
    }
}

static void m_cert(errs_t *e, const cJSON *d, const char *dp, const char *base, m_domain_t *md)
{
    static const char *const known[] = {"cert",       "key",   "name", "cas_id",
                                        "cas_region", "watch", NULL};
    char cp[80], fp[128];
    cdnapi_result_t r;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "certificate");
    if (!c)
        return;
    snprintf(cp, sizeof cp, "%s.certificate", dp);
    if (!cJSON_IsObject(c)) {
        err(e, cp, "must be an object {\"cert\", \"key\", \"name\"} or {\"cas_id\"}");
        return;
    }
    unknown_fields(e, c, cp, known);
    const char *cn = get_str(e, c, cp, "name", 0, AGENT_CERT_NAME_MAX);
    snprintf(fp, sizeof fp, "%s.name", cp);
    if (cn && cn[0] && cdnapi_validate_cert_name(cn, &r) != CDNAPI_SUCCESS)
        err(e, fp, "%s (%s)", r.message, r.code);
    else if (cn)
        snprintf(md->cert_name, sizeof md->cert_name, "%s", cn);
    if (cJSON_GetObjectItemCaseSensitive(c, "cas_id")) {
        m_cert_cas(e, c, cp, md);
        return;
    }
    m_cert_watch(e, c, cp, md);
    if (md->watch.cert_path[0] && !cJSON_GetObjectItemCaseSensitive(c, "cert") &&
        !cJSON_GetObjectItemCaseSensitive(c, "key"))
        return; /* only the files on the device: the daemon takes them when they are there */
    const char *cf = get_str(e, c, cp, "cert", 1, 4000);
    const char *kf = get_str(e, c, cp, "key", 1, 4000);
    snprintf(fp, sizeof fp, "%s.cert", cp);
    if (cf)
        md->cert_pem = m_pem(e, base, cf, fp, CDNAPI_MAX_PEM_LEN, "larger than 12 KB");
    snprintf(fp, sizeof fp, "%s.key", cp);
    if (kf)
        md->key_pem = m_pem(e, base, kf, fp, STORE_VALUE_MAX - VAULT_OVERHEAD, "too large");
    if (md->cert_pem && md->key_pem && md->name[0] &&
        cdnapi_validate_cert(md->name, md->cert_pem, md->key_pem, now_utc(), &r) != CDNAPI_SUCCESS)
        m_cert_refused(e, cp, &r);
}

/* Which action pushes the device's certificates (the default: the older). */
static void m_cert_api(errs_t *e, const cJSON *root, manifest_t *m)
{
    const char *api = get_str(e, root, "", "certificate_api", 0, 64);
    if (!api || strcmp(api, "SetDomainServerCertificate") == 0)
        m->cert_api = AGENT_CERT_API_LEGACY;
    else if (strcmp(api, "SetCdnDomainSSLCertificate") == 0)
        m->cert_api = AGENT_CERT_API_SSL;
    else
        err(e, "certificate_api",
            "must be \"SetDomainServerCertificate\" or \"SetCdnDomainSSLCertificate\"");
}

static void m_domain(errs_t *e, const cJSON *d, int di, const char *base, manifest_t *m)
{
    static const char *const known[] = {"name", "headers", "certificate", NULL};
    char dp[64], np[80];
    m_domain_t *md = &m->domains[m->ndomains];
    snprintf(dp, sizeof dp, "domains[%d]", di);
    if (!cJSON_IsObject(d)) {
        err(e, dp, "must be an object");
        return;
    }
    unknown_fields(e, d, dp, known);
    const char *name = get_str(e, d, dp, "name", 1, AGENT_DOMAIN_MAX);
    if (name) {
        snprintf(np, sizeof np, "%s.name", dp);
        if (!agent_domain_name_ok(name) || name[0] == '.' || name[0] == '-')
            err(e, np, "not a domain name");
        for (int j = 0; j < m->ndomains; j++)
            if (strcmp(m->domains[j].name, name) == 0)
                err(e, np, "duplicate of domains[%d].name", j);
        snprintf(md->name, sizeof md->name, "%s", name);
    }
    m_headers(e, d, dp, md);
    m_cert(e, d, dp, base, md);
    m->ndomains++;
}

static void m_domains(errs_t *e, const cJSON *root, const char *base, manifest_t *m)
{
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "domains");
    if (!ds) {
        err(e, "domains", "missing");
    } else if (!cJSON_IsArray(ds) || cJSON_GetArraySize(ds) == 0) {
        err(e, "domains", "must be a non-empty array");
    } else if (cJSON_GetArraySize(ds) > (int)AGENT_MAX_DOMAINS) {
        err(e, "domains", "more than %u domains", AGENT_MAX_DOMAINS);
    } else {
        int di = 0;
        for (const cJSON *d = ds->child; d; d = d->next, di++)
            m_domain(e, d, di, base, m);
    }
}

static void parse_manifest(const char *text, const char *base, manifest_t *m, errs_t *e)
{
    static const char *const top_known[] = {"endpoint",  "credentials", "signature",
                                            "ca_bundle", "flash",       "retry",
                                            "domains",   "comment",     "certificate_api",
                                            NULL};
    m_defaults(m);
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at; p++)
            line += *p == '\n';
        err(e, "$", "not valid JSON (near line %d)", line);
        return;
    }
    if (!cJSON_IsObject(root)) {
        err(e, "$", "must be a JSON object");
    } else {
        unknown_fields(e, root, "", top_known);
        m_endpoint(e, root, m);
        m_credentials(e, root, m);
        m_signature(e, root, m);
        m_ca(e, root, base, m);
        m_flash(e, root, m);
        m_retry(e, root, m);
        m_cert_api(e, root, m);
        m_domains(e, root, base, m);
    }
    cJSON_Delete(root); /* (wiping what it frees, the secrets too: main's cli_json_hooks) */
}

/* --------------------------------------------------------- provision -- */

/* Write the manifest's settings, headers and certificates into a formatted
 * store. *stage names what failed (the fuzz harness drives this too). */
static agent_status_t provision_store(store_t *st, const manifest_t *m, const char **stage)
{
    *stage = "settings";
    agent_status_t ar = agent_settings_save(st, &m->set, m->ca_pem);
    if (ar == AGENT_OK && m->cert_api != AGENT_CERT_API_LEGACY)
        ar = agent_cert_api_set(st, m->cert_api);
    for (int i = 0; ar == AGENT_OK && i < m->ndomains; i++) {
        const m_domain_t *d = &m->domains[i];
        *stage = "headers";
        for (int h = 0; ar == AGENT_OK && h < d->nheaders; h++) {
            const m_header_t *mh = &d->headers[h];
            cdnapi_rule_t rule = {mh->op, mh->duplicate, mh->key, mh->value, mh->source};
            ar = mh->rule ? agent_rule_set(st, d->name, &rule, NULL)
                          : agent_header_set(st, d->name, mh->key, mh->value, NULL);
        }
        *stage = "certificate";
        if (ar == AGENT_OK && d->cert_pem && d->watch.cert_path[0])
            ar = agent_cert_set_watched(st, d->name, d->cert_name[0] ? d->cert_name : NULL,
                                        d->cert_pem, d->key_pem, now_utc(), &d->watch, NULL);
        else if (ar == AGENT_OK && d->cert_pem)
            ar = agent_cert_set(st, d->name, d->cert_name[0] ? d->cert_name : NULL, d->cert_pem,
                                d->key_pem, now_utc(), NULL);
        else if (ar == AGENT_OK && d->watch.cert_path[0])
            ar = agent_cert_watch_put(st, d->name, &d->watch);
        else if (ar == AGENT_OK && d->cas_id[0])
            ar = agent_cert_set_cas(st, d->name, d->cert_name[0] ? d->cert_name : NULL, d->cas_id,
                                    d->cas_region, NULL);
    }
    return ar;
}

static int write_image(const manifest_t *m, const char *out_path)
{
    /* A new image is built beside its destination and renamed into place,
     * so a failure (or a power cut on the line) leaves no partial image. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
    unlink(tmp);
    port_flash_t dev;
    if (port_flash_file_open(&dev, tmp, m->sector_size, m->sector_count, m->write_size, 1) !=
        PORT_OK) {
        fprintf(stderr, "cdnagent: provision: cannot create %s: %s\n", tmp, strerror(errno));
        return CLI_EXIT_FAILED;
    }
    size_t ws = STORE_WORK_SIZE(m->sector_count);
    uint8_t *work = malloc(ws);
    store_t st;
    int rc = CLI_EXIT_FAILED;
    const char *stage = "format";
    if (work && store_format(&st, &dev, work, ws) == STORE_OK) {
        agent_status_t ar = provision_store(&st, m, &stage);
        if (ar == AGENT_OK)
            rc = CLI_EXIT_OK;
        else
            fprintf(stderr, "cdnagent: provision: writing %s failed: %s\n", stage,
                    agent_status_str(ar));
    } else {
        fprintf(stderr, "cdnagent: provision: cannot format the image\n");
    }
    port_flash_file_close(&dev);
    free(work);
    /* the build's writer generation (port_posix.h) means nothing once the
     * image is renamed: the image's own PATH.gen counts from here on */
    char gen[4200];
    snprintf(gen, sizeof gen, "%s.gen", tmp);
    unlink(gen);
    if (rc == CLI_EXIT_OK && rename(tmp, out_path) != 0) {
        fprintf(stderr, "cdnagent: provision: cannot move the image into place: %s\n",
                strerror(errno));
        rc = CLI_EXIT_FAILED;
    }
    if (rc != CLI_EXIT_OK)
        unlink(tmp);
    return rc;
}

static const cli_opt_t provision_opts[] = {
    {"base-dir", 0, CLI_OPT_STRING, "D", 0, 0,
     "resolve the manifest's relative paths against D (default: the manifest's directory)"},
    {"force", 0, CLI_OPT_FLAG, NULL, 0, 0, "replace an image that exists (default: refuse)"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t provision_cmd =
    {"provision",
     "MANIFEST|-",
     "Write a new device image (the global --flash is the output) from a JSON manifest ('-': "
     "stdin; schema: tools/provision/README.md); the device key (--device-key, default: the "
     "image's path + .key) is created if missing; secrets are sealed under it.",
     provision_opts,
     1,
     1};

int cmd_provision(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&provision_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    const char *manifest = p.args[0], *base_dir = cli_opt_str(&p, "base-dir");
    int force = cli_opt_given(&p, "force");
    char *text = NULL;
    int big = 0;
    if (strcmp(manifest, "-") == 0) {
        text = malloc(MANIFEST_MAX + 2);
        size_t n = text ? fread(text, 1, MANIFEST_MAX + 1, stdin) : 0;
        if (text && n <= MANIFEST_MAX)
            text[n] = 0;
        else {
            free(text);
            text = NULL;
            big = 1;
        }
    } else {
        text = cli_read_text(manifest, MANIFEST_MAX, NULL, &big);
    }
    if (!text) {
        fprintf(stderr, "cdnagent: provision: %s: %s\n", manifest,
                big == 1   ? "larger than 256 KB"
                : big == 2 ? "not a text file"
                           : strerror(errno));
        return CLI_EXIT_USAGE;
    }
    char base[4096] = "";
    if (base_dir) {
        snprintf(base, sizeof base, "%s", base_dir);
    } else if (strcmp(manifest, "-") != 0) {
        const char *slash = strrchr(manifest, '/');
        if (slash)
            snprintf(base, sizeof base, "%.*s", (int)(slash - manifest), manifest);
    }
    static manifest_t m;
    errs_t e;
    memset(&e, 0, sizeof e);
    cdnapi_init();
    parse_manifest(text, base, &m, &e);
    mbedtls_platform_zeroize(text, strlen(text)); /* it holds the secret */
    free(text);
    if (e.n) {
        for (int i = 0; i < e.n; i++)
            fprintf(stderr, "%s: %s\n", manifest, e.lines[i]);
        if (e.dropped)
            fprintf(stderr, "%s: ... and %d more errors\n", manifest, e.dropped);
        fprintf(stderr, "cdnagent: provision: %d error%s in %s; nothing was written\n",
                e.n + e.dropped, e.n + e.dropped == 1 ? "" : "s", manifest);
        errs_free(&e);
        manifest_free(&m);
        return CLI_EXIT_USAGE;
    }
    struct stat sb;
    if (stat(g->flash_path, &sb) == 0 && !force) {
        manifest_free(&m);
        fprintf(stderr, "cdnagent: provision: %s exists; use --force to replace it\n",
                g->flash_path);
        return CLI_EXIT_USAGE;
    }
    if (cli_ensure_device_key(g, NULL) != 0) { /* a new image: nothing sealed yet */
        manifest_free(&m);
        return CLI_EXIT_FAILED;
    }
    int rc = write_image(&m, g->flash_path);
    if (rc == CLI_EXIT_OK) {
        int nh = 0, nc = 0;
        for (int i = 0; i < m.ndomains; i++) {
            nh += m.domains[i].nheaders;
            nc += m.domains[i].cert_pem != NULL;
        }
        printf("provisioned %s: %d domain%s, %d header%s, %d certificate%s, endpoint %s "
               "(secrets sealed with %s)\n",
               g->flash_path, m.ndomains, m.ndomains == 1 ? "" : "s", nh, nh == 1 ? "" : "s", nc,
               nc == 1 ? "" : "s", m.set.endpoint, g->device_key_path);
    }
    manifest_free(&m);
    return rc;
}

/* ----------------------------------------------------------- inspect -- */


typedef struct {
    int json, n;
    store_t *st;
} insp_t;


static void insp_header(void *arg, const agent_header_view_t *h)
{
    insp_t *c = arg;
    char text[CDNAPI_MAX_VALUE_LEN + 32];
    const char *desired = cli_header_text(h->desired, h->rule, text, sizeof text);
    if (c->json) {
        printf("%s{\"domain\":", c->n++ ? "," : "");
        cli_json_str(stdout, h->domain);
        printf(",\"key\":");
        cli_json_str(stdout, h->key);
        printf(",\"rule\":\"%s\",\"desired\":", h->rule ? "new" : "legacy");
        if (desired)
            cli_json_str(stdout, desired);
        else
            printf("null");
        printf(",\"delivered\":");
        if (h->delivered)
            cli_json_str(stdout,
                         cli_header_text(h->delivered, h->delivered_rule, text, sizeof text));
        else
            printf("null");
        printf(",\"queued\":%s}", h->queue ? "true" : "false");
    } else {
        printf("  %s  header %s = %s%s%s\n", h->domain, h->key, h->rule ? "[new] " : "",
               desired ? desired : "(remove)", h->queue ? "  [queued]" : "  [delivered]");
    }
}

static void insp_cert(void *arg, const agent_cert_view_t *v)
{
    insp_t *c = arg;
    if (c->json) {
        printf("%s{\"domain\":", c->n++ ? "," : "");
        cli_json_str(stdout, v->domain);
        printf(",\"certificate\":%s,\"name\":",
               cli_cert_state(v->desired_present, v->desired_on, 1));
        cli_json_str(stdout, v->desired_name);
        printf(",\"private_key\":%s,\"queued\":%s}", v->desired_on ? "\"sealed\"" : "null",
               v->queue ? "true" : "false");
    } else {
        printf("  %s  certificate %s%s%s, private key %s%s\n", v->domain,
               cli_cert_state(v->desired_present, v->desired_on, 0), v->desired_name[0] ? " " : "",
               v->desired_name, v->desired_on ? "<sealed>" : "-",
               v->queue ? "  [queued]" : "  [delivered]");
    }
}

typedef struct {
    int json, n;
    store_t *st;
    int refused;
} seal_ctx_t;

static void insp_sealed(void *arg, const char *key, uint32_t key_id, size_t len)
{
    seal_ctx_t *c = arg;
    /* Open it for real (and wipe it at once): the line must learn of a
     * damaged or foreign secret now, not at the first sync in the field. */
    int opens = key_id != UINT32_MAX && agent_check_sealed(c->st, key) == AGENT_OK;
    if (!opens)
        c->refused++;
    if (c->json)
        printf("%s{\"record\":\"%s\",\"sealed\":%s,\"opens\":%s,\"key_id\":%u,\"bytes\":%zu}",
               c->n++ ? "," : "", key, key_id == UINT32_MAX ? "false" : "true",
               opens ? "true" : "false", key_id == UINT32_MAX ? 0 : key_id, len);
    else
        printf("  %-6s %s\n", key,
               key_id == UINT32_MAX ? "NOT SEALED or damaged"
               : opens              ? "sealed (AES-256-GCM), opens with this device key"
                                    : "sealed, does NOT open (tampered, or another device key)");
}

static const cli_command_t inspect_cmd =
    {"inspect",
     "",
     "What a device image holds: endpoint, AccessKeyId, retry policy, CA bundle, domains, "
     "whether each sealed secret opens with the device key (secrets never shown). Only reads.",
     cli_json_opts,
     0,
     0};

int cmd_inspect(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&inspect_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    int json = cli_opt_given(&p, "json");
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_READ) != 0)
        return CLI_EXIT_USAGE;
    agent_settings_t s;
    char *ca = NULL;
    agent_status_t sr = agent_settings_load(&f.store, &s, &ca);
    /* Only public fields are printed; the secrets are wiped at once. */
    agent_settings_wipe(&s);
    int ncerts = ca ? count_pem_certs(ca) : 0;
    const char *sig = s.signature == SIGN_V1 ? "v1" : "v3";
    const char *state =
        sr == AGENT_OK              ? "provisioned"
        : sr == AGENT_ERR_NOT_FOUND ? "not provisioned"
        : sr == AGENT_ERR_NO_KEY
            ? "provisioned, but the device key is missing"
            : "provisioned, but secrets do not open (tampered, or another device key)";
    insp_t c = {json, 0, &f.store};
    seal_ctx_t sc = {json, 0, &f.store, 0};
    if (json) {
        printf("{\"flash\":");
        cli_json_str(stdout, g->flash_path);
        printf(",\"geometry\":{\"sector_size\":%u,\"sector_count\":%u,\"write_size\":%u},",
               f.dev.sector_size, f.dev.sector_count, f.dev.write_size);
        printf("\"state\":");
        cli_json_str(stdout, state);
        printf(",\"endpoint\":");
        cli_json_str(stdout, s.endpoint);
        printf(",\"access_key_id\":");
        cli_json_str(stdout, s.access_key_id);
        printf(",\"access_key_secret\":\"<redacted>\",\"signature\":\"%s\",\"ca_certificates\":%d,"
               "\"retry\":{\"base_ms\":%u,\"cap_ms\":%u,\"max_attempts\":%u,\"rate_milli\":%u},"
               "\"items\":[",
               sig, ncerts, s.policy.base_ms, s.policy.cap_ms, s.policy.warn_every, s.rate_milli);
        agent_visitor_t v = {insp_header, insp_cert, &c};
        (void)agent_visit(&f.store, NULL, &v);
        printf("],\"sealed\":[");
        (void)agent_visit_sealed(&f.store, insp_sealed, &sc);
        printf("]}\n");
    } else {
        printf("flash:       %s (%u sectors x %u B, write size %u)\n", g->flash_path,
               f.dev.sector_count, f.dev.sector_size, f.dev.write_size);
        printf("state:       %s\n", state);
        if (sr == AGENT_OK || s.endpoint[0]) {
            printf("endpoint:    %s (signature %s)\n", s.endpoint, sig);
            printf("credentials: AccessKeyId %s, AccessKeySecret <redacted>\n", s.access_key_id);
            printf("trust:       %d CA certificate%s\n", ncerts, ncerts == 1 ? "" : "s");
            printf("retry:       base %u ms, cap %u ms, %u attempts, %.1f calls/s\n",
                   s.policy.base_ms, s.policy.cap_ms, s.policy.warn_every, s.rate_milli / 1000.0);
        }
        printf("desired state:\n");
        agent_visitor_t v = {insp_header, insp_cert, &c};
        (void)agent_visit(&f.store, NULL, &v);
        printf("secrets at rest:\n");
        (void)agent_visit_sealed(&f.store, insp_sealed, &sc);
    }
    port_free(ca);
    cli_flash_close(&f);
    if (sc.refused) {
        /* a finding, not an error: the document above stands (exit 1 says it) */
        fprintf(stderr, "cdnagent: inspect: %d sealed record%s do%s not open\n", sc.refused,
                sc.refused == 1 ? "" : "s", sc.refused == 1 ? "es" : "");
        return CLI_EXIT_FAILED;
    }
    return sr == AGENT_OK || sr == AGENT_ERR_NOT_FOUND ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

/* ------------------------------------------------- rotate-device-key -- */

static const cli_command_t rotate_cmd =
    {"rotate-device-key",
     "",
     "Re-seal every secret of the image under a new device key, which then replaces the old "
     "key file (an interrupted rotation is finished by running it again).",
     NULL,
     0,
     0};

int cmd_rotate_key(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&rotate_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    uint8_t old_key[32], new_key[32];
    uint32_t old_id, new_id;
    char next[4096];
    snprintf(next, sizeof next, "%s.next", g->device_key_path);
    if (port_device_key(old_key, &old_id) != PORT_OK) {
        fprintf(stderr, "cdnagent: rotate-device-key: no usable device key at %s\n",
                g->device_key_path);
        return CLI_EXIT_USAGE;
    }
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_OPEN_EXISTING) != 0) {
        mbedtls_platform_zeroize(old_key, sizeof old_key);
        return CLI_EXIT_USAGE;
    }
    /* The next key is written first and kept until every record is
     * re-sealed: an interrupted rotation resumes with the same next key. */
    port_posix_set_device_key_path(next);
    port_status_t ps = port_device_key(new_key, &new_id);
    if (ps == PORT_ERR_NOT_SET) {
        ps = port_posix_write_device_key(next, old_id + 1u);
        if (ps == PORT_OK)
            ps = port_device_key(new_key, &new_id);
    }
    port_posix_set_device_key_path(g->device_key_path);
    int rc = CLI_EXIT_FAILED;
    if (ps != PORT_OK) {
        fprintf(stderr, "cdnagent: rotate-device-key: cannot create the new key %s\n", next);
    } else {
        unsigned n = 0;
        agent_status_t ar = agent_reseal(&f.store, old_key, old_id, new_key, new_id, &n);
        if (ar == AGENT_OK && rename(next, g->device_key_path) == 0) {
            printf("rotated: %u secret%s re-sealed, device key id %u -> %u (%s)\n", n,
                   n == 1 ? "" : "s", old_id, new_id, g->device_key_path);
            rc = CLI_EXIT_OK;
        } else {
            fprintf(stderr, "cdnagent: rotate-device-key: %s; run it again to finish\n",
                    ar == AGENT_OK ? strerror(errno) : agent_status_str(ar));
        }
    }
    mbedtls_platform_zeroize(old_key, sizeof old_key);
    mbedtls_platform_zeroize(new_key, sizeof new_key);
    cli_flash_close(&f);
    return rc;
}
