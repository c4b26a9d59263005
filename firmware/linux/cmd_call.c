/* `cdnagent call ...`: one CDN OpenAPI operation over verified HTTPS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "cdnapi.h"
#include "cli.h"
#include "cli_opts.h"
#include "http.h"
#include "port.h"

static const cli_opt_t call_opts[] = {
    {"endpoint", 0, CLI_OPT_STRING, "URL", 0, 0,
     "the API endpoint (default " CLI_DEFAULT_ENDPOINT ")"},
    {"ca-file", 0, CLI_OPT_STRING, "F", 0, 0, "CA bundle to verify it (default " CLI_DEFAULT_CA ")"},
    {"insecure", 0, CLI_OPT_FLAG, NULL, 0, 0, "no TLS verification (warns)"},
    {"signature", 0, CLI_OPT_STRING, "v1|v3", 0, 0, "signature version (default v3)"},
    {"timeout-ms", 0, CLI_OPT_NUMBER, "N", 1, CLI_TIMEOUT_MS_MAX,
     "the call's time limit (default 30000)"},
    {"config-id", 0, CLI_OPT_STRING, "N", 0, 0, "set-header: modify this config, not add one"},
    {"cert", 0, CLI_OPT_STRING, "F", 0, 0, "set-cert: the certificate chain, PEM"},
    {"key", 0, CLI_OPT_STRING, "F", 0, 0, "set-cert: its private key, PEM"},
    {"name", 0, CLI_OPT_STRING, "N", 0, 0, "set-cert: the certificate's name"},
    {"force", 0, CLI_OPT_FLAG, NULL, 0, 0,
     "set-cert: upload even when expired or not covering the domain"},
    {"json", 0, CLI_OPT_FLAG, NULL, 0, 0, "list-headers, cert-info: JSON instead of lines"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t call_cmd =
    {"call",
     "OPERATION ARGS...",
     "One CDN OpenAPI operation over verified HTTPS, with the credentials of the environment "
     "(ALIBABA_CLOUD_*), nothing stored. Operations: set-header DOMAIN KEY VALUE, "
     "batch-set-header DOMAIN[,DOMAIN...] KEY VALUE, delete-header DOMAIN CONFIG_ID, "
     "list-headers DOMAIN, set-cert DOMAIN, cert-off DOMAIN, cert-info DOMAIN.",
     call_opts,
     1,
     4};

static const char CALL_USAGE[] =
    "usage: cdnagent call set-header DOMAIN KEY VALUE [--config-id N] | delete-header DOMAIN "
    "CONFIG_ID | list-headers DOMAIN [--json] | batch-set-header DOMAIN[,DOMAIN...] KEY VALUE "
    "[--config-id N] | set-cert DOMAIN --cert F --key F [--name N] "
    "[--force] | cert-off DOMAIN | cert-info DOMAIN  [--endpoint URL] [--ca-file F] [--insecure] "
    "[--signature v1|v3] [--timeout-ms N]";

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    size_t n;
    if (f == NULL) {
        return NULL;
    }
    buf = malloc(CLI_MAX_CA_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, CLI_MAX_CA_BYTES, f);
    fclose(f);
    buf[n] = 0;
    *len = n + 1;
    return buf;
}


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

int cmd_call(int argc, char **argv, const cli_globals_t *g)
{
    const char *pos[CLI_ARGS_MAX];
    const char *endpoint = CLI_DEFAULT_ENDPOINT, *ca_file = CLI_DEFAULT_CA, *config_id = NULL;
    const char *cert_file = NULL, *key_file = NULL, *cert_name = NULL;
    bool insecure = false, json = false, force = false;
    sign_version_t sigver = SIGN_V3;
    int npos = 0, i, rc = CLI_EXIT_FAILED;
    char host[HTTP_MAX_HOST_LEN + 1], hostport[HTTP_MAX_HOST_LEN + 8];
    unsigned port = 443;
    const char *p, *op;
    sign_credentials_t cred;
    http_tls_options_t to;
    http_tcp_t tcp;
    http_tls_t *tls = NULL;
    http_transport_t tr;
    http_client_t http;
    cdnapi_t api;
    cdnapi_result_t res;
    uint8_t *ca = NULL;
    size_t ca_len = 0;
    bool tls_on;
    http_limits_t limits = {HTTP_DEFAULT_MAX_HEADER_BYTES, HTTP_DEFAULT_MAX_BODY_BYTES,
                            HTTP_DEFAULT_TIMEOUT_MS};

    (void)g;
    cli_parsed_t cp;
    int prc = cli_parse(&call_cmd, argc, argv, &cp);
    if (prc != CLI_PARSE_OK)
        return prc;
    endpoint = cli_opt_str(&cp, "endpoint") ? cli_opt_str(&cp, "endpoint") : endpoint;
    ca_file = cli_opt_str(&cp, "ca-file") ? cli_opt_str(&cp, "ca-file") : ca_file;
    cert_file = cli_opt_str(&cp, "cert");
    key_file = cli_opt_str(&cp, "key");
    cert_name = cli_opt_str(&cp, "name");
    config_id = cli_opt_str(&cp, "config-id");
    force = cli_opt_given(&cp, "force");
    insecure = cli_opt_given(&cp, "insecure");
    json = cli_opt_given(&cp, "json");
    limits.timeout_ms = cli_opt_num(&cp, "timeout-ms", limits.timeout_ms);
    const char *sig = cli_opt_str(&cp, "signature");
    if (sig && strcmp(sig, "v1") != 0 && strcmp(sig, "v3") != 0)
        return cli_usage_error("call: --signature must be v1 or v3");
    sigver = sig && strcmp(sig, "v1") == 0 ? SIGN_V1 : SIGN_V3;
    npos = (int)cp.nargs;
    for (i = 0; i < npos; i++)
        pos[i] = cp.args[i];
    if (npos < 1) {
        return cli_usage_error("%s", CALL_USAGE);
    }
    op = pos[0];
    if (!((strcmp(op, "set-header") == 0 && npos == 4) ||
          (strcmp(op, "batch-set-header") == 0 && npos == 4) ||
          (strcmp(op, "delete-header") == 0 && npos == 3) ||
          (strcmp(op, "list-headers") == 0 && npos == 2) ||
          (strcmp(op, "set-cert") == 0 && npos == 2 && cert_file && key_file) ||
          (strcmp(op, "cert-off") == 0 && npos == 2) ||
          (strcmp(op, "cert-info") == 0 && npos == 2))) {
        return cli_usage_error("bad or incomplete operation '%s'\n%s", op, CALL_USAGE);
    }
    if (strncmp(endpoint, "https://", 8) == 0) {
        tls_on = true;
        p = endpoint + 8;
    } else if (strncmp(endpoint, "http://", 7) == 0) {
        tls_on = false;
        p = endpoint + 7;
        port = 80;
    } else {
        return cli_usage_error("--endpoint must start with https:// or http://");
    }
    {
        size_t hl = strcspn(p, ":/");
        if (hl == 0 || hl > HTTP_MAX_HOST_LEN) {
            return cli_usage_error("bad --endpoint host");
        }
        memcpy(host, p, hl);
        host[hl] = 0;
        if (p[hl] == ':') {
            char *end;
            unsigned long v = strtoul(p + hl + 1, &end, 10);
            if (v == 0 || v > 65535 || (*end != 0 && *end != '/')) {
                return cli_usage_error("bad --endpoint port");
            }
            port = (unsigned)v;
            snprintf(hostport, sizeof(hostport), "%s:%u", host, port);
        } else {
            snprintf(hostport, sizeof(hostport), "%s", host);
        }
    }
    cred.access_key_id = getenv("ALIBABA_CLOUD_ACCESS_KEY_ID");
    cred.access_key_secret = getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    cred.security_token = getenv("ALIBABA_CLOUD_SECURITY_TOKEN");
    if (cred.access_key_id == NULL || cred.access_key_secret == NULL ||
        cred.access_key_id[0] == 0 || cred.access_key_secret[0] == 0) {
        return cli_usage_error(
            "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    }

    if (tls_on) {
        if (insecure) {
            fprintf(stderr, "cdnagent: WARNING: --insecure: the server certificate is NOT "
                            "verified; anyone on the path can read and change this call\n");
        } else {
            ca = read_file(ca_file, &ca_len);
            if (ca == NULL) {
                return cli_usage_error("cannot read CA file %s", ca_file);
            }
        }
        memset(&to, 0, sizeof(to));
        to.host = host;
        to.port = (uint16_t)port;
        to.ca_pem = ca;
        to.ca_pem_len = ca_len;
        to.insecure_no_verify = insecure;
        if (http_tls_new(&tls, &to, &tr) != HTTP_OK) {
            free(ca);
            return cli_usage_error("CA file %s holds no usable PEM certificate", ca_file);
        }
        free(ca);
    } else if (http_tcp_transport(&tr, &tcp, host, (uint16_t)port) != HTTP_OK) {
        return cli_usage_error("bad --endpoint host");
    }
    cdnapi_init();
    http_client_init(&http, &tr, &limits);
    api.http = &http;
    api.credentials = &cred;
    api.host = hostport;
    api.signature = sigver;
    api.timestamp = NULL;

    if (strcmp(op, "set-header") == 0) {
        cdnapi_set_header(&api, pos[1], pos[2], pos[3], config_id, &res);
    } else if (strcmp(op, "delete-header") == 0) {
        cdnapi_delete_header(&api, pos[1], pos[2], &res);
    } else if (strcmp(op, "batch-set-header") == 0) {
        /* One header on several domains: DOMAIN,DOMAIN... split here; an
         * empty item is passed on so that cdnapi refuses it locally. */
        static char list[CDNAPI_MAX_BATCH * (CDNAPI_MAX_DOMAIN_LEN + 1) + 1];
        static cdnapi_header_t hdr;
        cdnapi_batch_config_t got[CDNAPI_MAX_BATCH];
        const char *doms[CDNAPI_MAX_BATCH + 1];
        size_t nd = 0, nb = 0, ll = strlen(pos[1]);
        char *q = list;
        if (ll >= sizeof(list) || strlen(pos[2]) >= sizeof(hdr.key) ||
            strlen(pos[3]) >= sizeof(hdr.value) ||
            (config_id != NULL && strlen(config_id) >= sizeof(hdr.config_id))) {
            http_tls_free(tls);
            return cli_usage_error(
                "batch-set-header: DOMAIN list, KEY, VALUE or --config-id too long");
        }
        memcpy(list, pos[1], ll + 1);
        for (;;) {
            char *comma = strchr(q, ',');
            if (nd == CDNAPI_MAX_BATCH + 1) {
                break; /* one past the bound: cdnapi refuses the batch */
            }
            doms[nd++] = q;
            if (comma == NULL) {
                break;
            }
            *comma = 0;
            q = comma + 1;
        }
        memset(&hdr, 0, sizeof(hdr));
        memcpy(hdr.key, pos[2], strlen(pos[2]) + 1);
        memcpy(hdr.value, pos[3], strlen(pos[3]) + 1);
        if (config_id != NULL) {
            memcpy(hdr.config_id, config_id, strlen(config_id) + 1);
        }
        (void)cdnapi_batch_set_headers(&api, doms, nd, &hdr, 1, got, CDNAPI_MAX_BATCH, &nb, &res);
        for (size_t i = 0; i < nb && i < CDNAPI_MAX_BATCH; i++) {
            printf("%s\t%s\n", got[i].domain, got[i].config_id);
        }
    } else if (strcmp(op, "set-cert") == 0) {
        size_t cl = 0, kl = 0;
        uint8_t *cert = read_file(cert_file, &cl), *key = read_file(key_file, &kl);
        /* read_file's lengths count the terminating NUL */
        if (cert == NULL || key == NULL || cl - 1 > CDNAPI_MAX_PEM_LEN ||
            kl - 1 > CDNAPI_MAX_PEM_LEN) {
            if (key != NULL) {
                mbedtls_platform_zeroize(key, kl);
            }
            free(cert);
            free(key);
            http_tls_free(tls);
            return cli_usage_error("cannot read --cert/--key (or larger than %u bytes)",
                                   (unsigned)CDNAPI_MAX_PEM_LEN);
        }
        cdnapi_set_cert(&api, pos[1], cert_name, (const char *)cert, (const char *)key, force,
                        (int64_t)time(NULL), &res);
        mbedtls_platform_zeroize(key, kl); /* the private key must not linger */
        free(cert);
        free(key);
    } else if (strcmp(op, "cert-off") == 0) {
        cdnapi_cert_off(&api, pos[1], &res);
    } else if (strcmp(op, "cert-info") == 0) {
        cdnapi_cert_info_t ci;
        if (cdnapi_cert_info(&api, pos[1], &ci, &res) == CDNAPI_SUCCESS && ci.found && json) {
            static const char *const names[] = {"CertName", "CertType", "CertDomainName",
                                                "CertExpireTime", "ServerCertificateStatus"};
            const char *values[] = {ci.cert_name, ci.cert_type, ci.cert_domain_name, ci.expire_time,
                                    ci.status};
            for (int k = 0; k < 5; k++) {
                printf(k ? ",\"%s\":" : "{\"%s\":", names[k]);
                cli_json_str(stdout, values[k]);
            }
            puts("}");
        } else if (res.cls == CDNAPI_SUCCESS && ci.found) {
            printf("name=%s type=%s cn=%s expires=%s status=%s\n", ci.cert_name, ci.cert_type,
                   ci.cert_domain_name, ci.expire_time, ci.status);
        } else if (res.cls == CDNAPI_SUCCESS) {
            puts(json ? "null" : "no certificate");
        }
    } else {
        list_print_t lp = {json, 0};
        if (json) {
            fputs("[", stdout);
        }
        (void)cdnapi_list_headers(&api, pos[1], print_config_cb, &lp, NULL, &res);
        if (json) {
            fputs("]\n", stdout);
        }
    }
    http_client_close(&http);
    http_tls_free(tls);
    if (res.cls == CDNAPI_SUCCESS) {
        if (strcmp(op, "list-headers") != 0 && strcmp(op, "cert-info") != 0) {
            printf("ok (RequestId %s)\n", res.request_id);
        }
        rc = CLI_EXIT_OK;
    } else {
        if (json) { /* the service's own error shape */
            fputs("{\"Code\":", stdout);
            cli_json_str(stdout, res.code);
            fputs(",\"Message\":", stdout);
            cli_json_str(stdout, res.message);
            fputs(",\"RequestId\":", stdout);
            cli_json_str(stdout, res.request_id);
            puts("}");
        } else {
            fprintf(stderr, "error: %s: %s (RequestId %s) [%s]\n", res.code, res.message,
                    res.request_id[0] ? res.request_id : "-", cdnapi_class_str(res.cls));
        }
        /* (the checks cdnapi makes before an upload; only this command can skip them) */
        if (strcmp(op, "set-cert") == 0 && (strcmp(res.code, "Certificate.Expired") == 0 ||
                                            strcmp(res.code, "Certificate.DomainMismatch") == 0))
            fputs("hint: call set-cert --force uploads it all the same\n", stderr);
        rc = strcmp(res.request_id, "local") == 0 ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    return rc;
}
