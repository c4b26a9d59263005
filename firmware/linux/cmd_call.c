/* `cdnagent call ...`: one CDN OpenAPI operation over verified HTTPS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "cdnapi.h"
#include "cli.h"
#include "cli_creds.h"
#include "cli_opts.h"
#include "crypto.h"
#include "http.h"
#include "port.h"

static const cli_opt_t call_opts[] = {
    {"endpoint", 0, CLI_OPT_STRING, "URL", 0, 0,
     "the API endpoint, https://host[:port] (default: the configuration's, else " CLI_DEFAULT_ENDPOINT
     ")"},
    {"ca-file", 0, CLI_OPT_STRING, "F", 0, 0,
     "CA bundle to verify it (default: the configuration's, else " CLI_DEFAULT_CA ")"},
    {"insecure", 0, CLI_OPT_FLAG, NULL, 0, 0, "no TLS verification (warns)"},
    {"signature", 0, CLI_OPT_CHOICE, CLI_SIGNATURE_CHOICES, 0, 0, "signature version (default v3)"},
    {"timeout-ms", 0, CLI_OPT_NUMBER, "N", 1, CLI_TIMEOUT_MS_MAX,
     "the call's time limit (default 30000)"},
    {"credentials", 0, CLI_OPT_CHOICE, "auto|env|profile", 0, 0,
     "whose credentials (default auto: the environment's, else the aliyun CLI profile's)"},
    {"profile", 0, CLI_OPT_STRING, "NAME", 0, 0,
     "the aliyun CLI profile (~/.aliyun/config.json, AK or StsToken) to use"},
    {"config-id", 0, CLI_OPT_STRING, "N", 0, 0, "set-header: modify this config, not add one"},
    {"cert", 0, CLI_OPT_STRING, "F", 0, 0, "set-cert: the certificate chain, PEM"},
    {"key", 0, CLI_OPT_STRING, "F", 0, 0, "set-cert: its private key, PEM"},
    {"name", 0, CLI_OPT_STRING, "N", 0, 0, "set-cert: the certificate's name"},
    {"cas-id", 0, CLI_OPT_STRING, "N", 0, 0,
     "set-cert: a certificate of the certificate service by CertId (with --api ssl)"},
    {"cas-region", 0, CLI_OPT_CHOICE, "cn-hangzhou|ap-southeast-1", 0, 0,
     "set-cert --cas-id: its region (default the service's, cn-hangzhou)"},
    {"api", 0, CLI_OPT_CHOICE, "legacy|ssl", 0, 0,
     "set-cert, cert-off: SetDomainServerCertificate (legacy, the default) or "
     "SetCdnDomainSSLCertificate (ssl)"},
    {"force", 0, CLI_OPT_FLAG, NULL, 0, 0,
     "set-cert: upload even when expired or not covering the domain"},
    {"json", 0, CLI_OPT_FLAG, NULL, 0, 0, "JSON instead of lines, errors included"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t call_cmd =
    {"call",
     "OPERATION ARGS...",
     "One CDN OpenAPI operation over verified HTTPS, nothing stored, with the credentials of "
     "the environment (ALIBABA_CLOUD_*) or an aliyun CLI profile. Operations: set-header DOMAIN "
     "KEY VALUE (prints the ConfigId), batch-set-header DOMAIN[,DOMAIN...] KEY VALUE, "
     "delete-header DOMAIN CONFIG_ID, list-headers DOMAIN, set-cert DOMAIN --cert F --key F, "
     "cert-off DOMAIN, cert-info DOMAIN.",
     call_opts,
     1,
     4};

/* Each operation: its name, its argument count, and whether it changes
 * something (a change prints its RequestId). */
typedef enum { OP_SET, OP_BATCH, OP_DELETE, OP_LIST, OP_SET_CERT, OP_CERT_OFF, OP_CERT_INFO } op_t;
static const struct {
    const char *name;
    unsigned nargs;
} ops[] = {
    [OP_SET] = {"set-header", 4},       [OP_BATCH] = {"batch-set-header", 4},
    [OP_DELETE] = {"delete-header", 3}, [OP_LIST] = {"list-headers", 2},
    [OP_SET_CERT] = {"set-cert", 2},    [OP_CERT_OFF] = {"cert-off", 2},
    [OP_CERT_INFO] = {"cert-info", 2},
};

typedef struct {
    cli_parsed_t parsed; /* the command line; args points into it */
    op_t op;
    char **args; /* args[0] is the operation */
    const char *endpoint, *ca_file, *cert_file, *key_file, *cert_name, *config_id;
    const char *cas_id, *cas_region;
    bool insecure, json, force, ssl;
    sign_version_t sig;
    uint32_t timeout_ms;
    cli_creds_ask_t ask;
} call_t;

/* Everything one call holds; call_close releases it. */
typedef struct {
    char host[HTTP_MAX_HOST_LEN + 1], hostport[HTTP_MAX_HOST_LEN + 8];
    http_tcp_t tcp;
    http_tls_t *tls;
    http_transport_t tr;
    http_client_t http;
    cdnapi_t api;
    cli_creds_t creds;
} call_conn_t;

static int call_parse(int argc, char **argv, const cli_globals_t *g, call_t *c)
{
    memset(c, 0, sizeof *c);
    int rc = cli_parse(&call_cmd, argc, argv, &c->parsed);
    if (rc != CLI_PARSE_OK)
        return rc;
    const cli_parsed_t *p = &c->parsed;
    c->args = c->parsed.args;
    size_t i = 0;
    while (i < sizeof ops / sizeof ops[0] && strcmp(p->args[0], ops[i].name) != 0)
        i++;
    if (i == sizeof ops / sizeof ops[0] || p->nargs != ops[i].nargs)
        return cli_usage_error("call: %s operation '%s' (see cdnagent call --help)",
                               i == sizeof ops / sizeof ops[0] ? "unknown" : "incomplete",
                               p->args[0]);
    c->op = (op_t)i;
    c->endpoint = cli_opt_str(p, "endpoint") ? cli_opt_str(p, "endpoint")
                  : g->endpoint              ? g->endpoint
                                             : CLI_DEFAULT_ENDPOINT;
    c->ca_file = cli_opt_str(p, "ca-file") ? cli_opt_str(p, "ca-file")
                 : g->ca_file              ? g->ca_file
                                           : CLI_DEFAULT_CA;
    c->cert_file = cli_opt_str(p, "cert");
    c->key_file = cli_opt_str(p, "key");
    c->cert_name = cli_opt_str(p, "name");
    c->cas_id = cli_opt_str(p, "cas-id");
    c->cas_region = cli_opt_str(p, "cas-region");
    c->ssl = cli_opt_choice(p, "api", 0) == 1;
    c->config_id = cli_opt_str(p, "config-id");
    c->force = cli_opt_given(p, "force");
    c->insecure = cli_opt_given(p, "insecure");
    c->json = cli_opt_given(p, "json");
    c->timeout_ms = cli_opt_num(p, "timeout-ms", HTTP_DEFAULT_TIMEOUT_MS);
    c->sig = cli_opt_choice(p, "signature", CLI_SIGNATURE_V3) == CLI_SIGNATURE_V1 ? SIGN_V1
                                                                                  : SIGN_V3;
    /* (no image: never provisioned; the configuration's credentials word is
     * the image's commands', not call's) */
    c->ask.want = cli_opt_str(p, "credentials");
    c->ask.profile = cli_opt_str(p, "profile");
    c->ask.cfg_profile = g->profile;
    c->ask.aliyun_config = g->aliyun_config;
    if (c->op == OP_SET_CERT &&
        (c->cas_id ? c->cert_file || c->key_file || !c->ssl : !c->cert_file || !c->key_file))
        return cli_usage_error("call: set-cert needs --cert F and --key F, or --cas-id N with "
                               "--api ssl");
    return 0;
}

/* The TLS (or, for tests, plain TCP) transport to the endpoint. */
static int call_transport(call_conn_t *k, const call_t *c, uint16_t port, bool tls)
{
    if (!tls)
        return http_tcp_transport(&k->tr, &k->tcp, k->host, port) == HTTP_OK
                   ? 0
                   : cli_usage_error("call: bad --endpoint host %s", k->host);
    int why = 0;
    size_t ca_len = 0;
    char *ca = NULL;
    if (c->insecure)
        fprintf(stderr, "cdnagent: WARNING: --insecure: the server certificate is NOT verified; "
                        "anyone on the path can read and change this call\n");
    else if ((ca = cli_read_text(c->ca_file, CLI_MAX_CA_BYTES, &ca_len, &why)) == NULL)
        return cli_usage_error("call: cannot read CA bundle %s: %s", c->ca_file,
                               why == CLI_READ_ERRNO     ? strerror(errno)
                               : why == CLI_READ_TOO_BIG ? "larger than 512 KB"
                                                         : "not a text file");
    http_tls_options_t to = {k->host, port, (const uint8_t *)ca, ca_len, c->insecure};
    http_status_t hs = http_tls_new(&k->tls, &to, &k->tr);
    free(ca);
    if (hs != HTTP_OK)
        return cli_usage_error("call: cannot set up TLS: %s (CA bundle %s)",
                               http_client_status_str(hs), c->ca_file);
    return 0;
}

static int call_connect(call_conn_t *k, const call_t *c)
{
    uint16_t port;
    bool tls;
    memset(k, 0, sizeof *k);
    if (agent_endpoint_split(c->endpoint, k->host, sizeof k->host, &port, &tls) != AGENT_OK ||
        agent_endpoint_hostport(k->host, port, tls, k->hostport, sizeof k->hostport) != AGENT_OK)
        return cli_usage_error("call: --endpoint must be https://host[:port] (or http:// for "
                               "tests), not %s",
                               c->endpoint);
    int rc = cli_creds_pick(&k->creds, &c->ask, "call");
    if (rc)
        return rc;
    cli_creds_say(&k->creds, "call");
    if ((rc = call_transport(k, c, port, tls)) != 0)
        return rc;
    http_limits_t limits = {HTTP_DEFAULT_MAX_HEADER_BYTES, HTTP_DEFAULT_MAX_BODY_BYTES,
                            c->timeout_ms};
    cdnapi_init();
    http_client_init(&k->http, &k->tr, &limits);
    k->api.http = &k->http;
    k->api.credentials = &k->creds.cred;
    k->api.host = k->hostport;
    k->api.signature = c->sig;
    k->api.timestamp = NULL;
    return 0;
}

static void call_close(call_conn_t *k)
{
    http_client_close(&k->http);
    http_tls_free(k->tls);
    cli_creds_free(&k->creds);
}

/* ------------------------------------------------------------ headers -- */

typedef struct {
    int json, n;
} list_print_t;

/* One line (or JSON object) per config of a read-back, however many. */
static bool print_config_cb(void *arg, const cdnapi_header_t *h)
{
    list_print_t *lp = arg;
    if (lp->json) {
        fputs(lp->n ? ",{\"ConfigId\":" : "{\"ConfigId\":", stdout);
        cli_json_str(stdout, h->config_id);
        fputs(",\"Key\":", stdout);
        cli_json_str(stdout, h->key);
        fputs(",\"Value\":", stdout);
        cli_json_str(stdout, h->value);
        fputs("}", stdout);
    } else {
        printf("%s\t%s\t%s\n", h->config_id, h->key, h->value);
    }
    lp->n++;
    return true;
}

static void op_list(call_conn_t *k, const call_t *c, cdnapi_result_t *res)
{
    list_print_t lp = {c->json, 0};
    if (c->json)
        fputs("[", stdout);
    (void)cdnapi_list_headers(&k->api, c->args[1], print_config_cb, &lp, NULL, res);
    if (c->json)
        fputs("]\n", stdout);
}

/* The config a set-header made: the service's reply does not carry its
 * ConfigId, so the domain is read back for the header with this key and
 * value (the newest, the highest id, when several have them). */
typedef struct {
    const char *key, *value;
    char id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
} find_config_t;

static bool find_config_cb(void *arg, const cdnapi_header_t *h)
{
    find_config_t *f = arg;
    size_t n = strlen(h->config_id), m = strlen(f->id);
    if (util_ascii_eq_nocase(h->key, f->key) && strcmp(h->value, f->value) == 0 &&
        (n > m || (n == m && strcmp(h->config_id, f->id) > 0)))
        memcpy(f->id, h->config_id, n + 1);
    return true;
}

static void op_set_header(call_conn_t *k, const call_t *c, cdnapi_result_t *res)
{
    find_config_t f = {c->args[2], c->args[3], ""};
    cdnapi_result_t back;
    if (cdnapi_set_header(&k->api, c->args[1], c->args[2], c->args[3], c->config_id, res) !=
        CDNAPI_SUCCESS)
        return;
    if (c->config_id)
        snprintf(f.id, sizeof f.id, "%s", c->config_id);
    else if (cdnapi_list_headers(&k->api, c->args[1], find_config_cb, &f, NULL, &back) !=
             CDNAPI_SUCCESS)
        fprintf(stderr,
                "cdnagent: call: set, but reading the domain back for its ConfigId "
                "failed: %s: %s (call list-headers %s shows it)\n",
                back.code, back.message, c->args[1]);
    if (c->json) {
        fputs("{\"RequestId\":", stdout);
        cli_json_str(stdout, res->request_id);
        fputs(f.id[0] ? ",\"ConfigId\":" : ",\"ConfigId\":null", stdout);
        if (f.id[0])
            cli_json_str(stdout, f.id);
        puts("}");
    } else {
        printf("ok (RequestId %s) ConfigId %s\n", res->request_id, f.id[0] ? f.id : "unknown");
    }
}

/* One header on several domains: DOMAIN,DOMAIN... split here; an empty
 * item is passed on so that cdnapi refuses it locally. */
static void op_batch(call_conn_t *k, const call_t *c, cdnapi_result_t *res)
{
    static char list[CDNAPI_MAX_BATCH * (CDNAPI_MAX_DOMAIN_LEN + 1) + 1];
    static cdnapi_header_t hdr;
    cdnapi_batch_config_t got[CDNAPI_MAX_BATCH];
    const char *doms[CDNAPI_MAX_BATCH + 1];
    size_t nd = 0, nb = 0;
    memset(&hdr, 0, sizeof hdr);
    if (snprintf(list, sizeof list, "%s", c->args[1]) >= (int)sizeof list ||
        snprintf(hdr.key, sizeof hdr.key, "%s", c->args[2]) >= (int)sizeof hdr.key ||
        snprintf(hdr.value, sizeof hdr.value, "%s", c->args[3]) >= (int)sizeof hdr.value ||
        snprintf(hdr.config_id, sizeof hdr.config_id, "%s", c->config_id ? c->config_id : "") >=
            (int)sizeof hdr.config_id) {
        memset(res, 0, sizeof *res);
        res->cls = CDNAPI_PERMANENT_INPUT;
        snprintf(res->code, sizeof res->code, "InvalidParameter");
        snprintf(res->message, sizeof res->message,
                 "the DOMAIN list, KEY, VALUE or --config-id is too long");
        snprintf(res->request_id, sizeof res->request_id, "local");
        return;
    }
    for (char *q = list; nd < CDNAPI_MAX_BATCH + 1;) { /* one past the bound: refused */
        char *comma = strchr(q, ',');
        doms[nd++] = q;
        if (comma == NULL)
            break;
        *comma = 0;
        q = comma + 1;
    }
    if (cdnapi_batch_set_headers(&k->api, doms, nd, &hdr, 1, got, CDNAPI_MAX_BATCH, &nb, res) !=
        CDNAPI_SUCCESS)
        return;
    fputs(c->json ? "{\"RequestId\":" : "", stdout);
    if (c->json) {
        cli_json_str(stdout, res->request_id);
        fputs(",\"DomainConfigList\":[", stdout);
    }
    for (size_t i = 0; i < nb && i < CDNAPI_MAX_BATCH; i++) {
        if (!c->json) {
            printf("%s\t%s\n", got[i].domain, got[i].config_id);
            continue;
        }
        fputs(i ? ",{\"DomainName\":" : "{\"DomainName\":", stdout);
        cli_json_str(stdout, got[i].domain);
        fputs(",\"ConfigId\":", stdout);
        cli_json_str(stdout, got[i].config_id);
        fputs("}", stdout);
    }
    if (c->json)
        puts("]}");
    else
        printf("ok (RequestId %s)\n", res->request_id);
}

/* -------------------------------------------------------- certificate -- */

static void op_set_cert(call_conn_t *k, const call_t *c, cdnapi_result_t *res)
{
    size_t cl = 0, kl = 0;
    int why = 0;
    char *cert = c->cas_id ? NULL : cli_read_text(c->cert_file, CDNAPI_MAX_PEM_LEN + 1, &cl, &why);
    char *key = cert ? cli_read_text(c->key_file, CDNAPI_MAX_PEM_LEN + 1, &kl, &why) : NULL;
    memset(res, 0, sizeof *res);
    if (c->cas_id) {
        cdnapi_ssl_cert_t sc = {true, c->cert_name, NULL, NULL, c->cas_id, c->cas_region};
        (void)cdnapi_set_ssl_cert(&k->api, c->args[1], &sc, c->force, (int64_t)time(NULL), res);
    } else if (cert && key && c->ssl) {
        cdnapi_ssl_cert_t sc = {true, c->cert_name, cert, key, NULL, NULL};
        (void)cdnapi_set_ssl_cert(&k->api, c->args[1], &sc, c->force, (int64_t)time(NULL), res);
    } else if (cert && key) {
        (void)cdnapi_set_cert(&k->api, c->args[1], c->cert_name, cert, key, c->force,
                              (int64_t)time(NULL), res);
    } else {
        res->cls = CDNAPI_PERMANENT_INPUT;
        snprintf(res->code, sizeof res->code, "%s", "InvalidParameter");
        snprintf(res->message, sizeof res->message, "cannot read %s %s: %s",
                 cert ? "--key" : "--cert", cert ? c->key_file : c->cert_file,
                 why == CLI_READ_ERRNO     ? strerror(errno)
                 : why == CLI_READ_TOO_BIG ? "larger than 12 KB of PEM"
                                           : "not a text file");
        snprintf(res->request_id, sizeof res->request_id, "local");
    }
    if (key) { /* the private key must not linger */
        crypto_wipe(key, kl);
        free(key);
    }
    free(cert);
    if (res->cls == CDNAPI_SUCCESS && c->json) {
        fputs("{\"RequestId\":", stdout);
        cli_json_str(stdout, res->request_id);
        puts("}");
    } else if (res->cls == CDNAPI_SUCCESS) {
        printf("ok (RequestId %s)\n", res->request_id);
    }
}

static void op_cert_info(call_conn_t *k, const call_t *c, cdnapi_result_t *res)
{
    cdnapi_cert_info_t ci;
    if (cdnapi_cert_info(&k->api, c->args[1], &ci, res) != CDNAPI_SUCCESS)
        return;
    if (!ci.found) {
        puts(c->json ? "null" : "no certificate");
    } else if (c->json) {
        static const char *const names[] =
            {"CertName",       "CertType", "CertDomainName",          "CertStartTime",
             "CertExpireTime", "CertId",   "ServerCertificateStatus", "Fingerprint"};
        const char *values[] = {ci.cert_name,   ci.cert_type, ci.cert_domain_name, ci.start_time,
                                ci.expire_time, ci.cert_id,   ci.status,           ci.fingerprint};
        for (int i = 0; i < 8; i++) {
            printf(i ? ",\"%s\":" : "{\"%s\":", names[i]);
            cli_json_str(stdout, values[i]);
        }
        puts("}");
    } else {
        printf("name=%s type=%s cn=%s expires=%s status=%s%s%s%s%s\n", ci.cert_name, ci.cert_type,
               ci.cert_domain_name, ci.expire_time, ci.status, ci.cert_id[0] ? " id=" : "",
               ci.cert_id, ci.fingerprint[0] ? " sha256=" : "", ci.fingerprint);
    }
}

/* An operation whose answer is only its RequestId. */
static void print_done(const call_t *c, const cdnapi_result_t *res)
{
    if (res->cls != CDNAPI_SUCCESS)
        return;
    if (c->json) {
        fputs("{\"RequestId\":", stdout);
        cli_json_str(stdout, res->request_id);
        puts("}");
    } else {
        printf("ok (RequestId %s)\n", res->request_id);
    }
}

/* The service's error (or cdnapi's local refusal, RequestId "local": exit
 * 2, nothing was sent), on stderr and as --json's document. */
static int call_failed(const call_t *c, const cdnapi_result_t *res)
{
    cli_json_error(res->code, res->message, res->request_id);
    fprintf(stderr, "error: %s: %s (RequestId %s) [%s]\n", res->code, res->message,
            res->request_id[0] ? res->request_id : "-", cdnapi_class_str(res->cls));
    /* (the checks cdnapi makes before an upload; only this command can skip them) */
    if (c->op == OP_SET_CERT && (strcmp(res->code, "Certificate.Expired") == 0 ||
                                 strcmp(res->code, "Certificate.DomainMismatch") == 0))
        fputs("hint: call set-cert --force uploads it all the same\n", stderr);
    return strcmp(res->request_id, "local") == 0 ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

int cmd_call(int argc, char **argv, const cli_globals_t *g)
{
    call_t c;
    call_conn_t k;
    cdnapi_result_t res;
    int rc = call_parse(argc, argv, g, &c);
    if (rc)
        return rc;
    if ((rc = call_connect(&k, &c)) != 0) {
        call_close(&k);
        return rc;
    }
    memset(&res, 0, sizeof res);
    switch (c.op) {
    case OP_SET: op_set_header(&k, &c, &res); break;
    case OP_BATCH: op_batch(&k, &c, &res); break;
    case OP_DELETE:
        (void)cdnapi_delete_header(&k.api, c.args[1], c.args[2], &res);
        print_done(&c, &res);
        break;
    case OP_LIST: op_list(&k, &c, &res); break;
    case OP_SET_CERT: op_set_cert(&k, &c, &res); break;
    case OP_CERT_OFF:
        if (c.ssl) {
            cdnapi_ssl_cert_t off = {false, NULL, NULL, NULL, NULL, NULL};
            (void)cdnapi_set_ssl_cert(&k.api, c.args[1], &off, false, 0, &res);
        } else {
            (void)cdnapi_cert_off(&k.api, c.args[1], &res);
        }
        print_done(&c, &res);
        break;
    case OP_CERT_INFO: op_cert_info(&k, &c, &res); break;
    }
    call_close(&k);
    return res.cls == CDNAPI_SUCCESS ? CLI_EXIT_OK : call_failed(&c, &res);
}
