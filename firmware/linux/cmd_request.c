/* cmd_request.c — `cdnagent request`: build (and, later, send) one signed
 * OpenAPI request. Today only --dry-run is implemented: sending arrives with
 * the `call` commands. */
#include "cdnapi.h"
#include "cli.h"
#include "cli_opts.h"
#include "sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/platform_util.h"


static const cli_opt_t request_opts[] = {
    {"dry-run", 0, CLI_OPT_FLAG, NULL, 0, 0, "print the signed request (required: nothing is sent)"},
    {"signature", 0, CLI_OPT_CHOICE, CLI_SIGNATURE_CHOICES, 0, 0, "signature version (default v3)"},
    {"method", 0, CLI_OPT_STRING, "GET|POST", 0, 0,
     "HTTP method (default POST for v3, as @alicloud/cdn20180510; GET for v1, as pop-core)"},
    {"timestamp", 0, CLI_OPT_STRING, "YYYY-MM-DDThh:mm:ssZ", 0, 0, "fixed time (default now)"},
    {"nonce", 0, CLI_OPT_STRING, "HEX", 0, 0, "fixed SignatureNonce (default random)"},
    {"endpoint", 0, CLI_OPT_STRING, "URL", 0, 0,
     "https://host[:port] (default " CLI_DEFAULT_ENDPOINT ")"},
    {"api-version", 0, CLI_OPT_STRING, "V", 0, 0, "API version (default 2018-05-10)"},
    {"access-key-id", 0, CLI_OPT_STRING, "ID", 0, 0,
     "AccessKeyId (default $ALIBABA_CLOUD_ACCESS_KEY_ID)"},
    {"access-key-secret", 0, CLI_OPT_STRING, "SECRET", 0, 0,
     "AccessKeySecret (default $ALIBABA_CLOUD_ACCESS_KEY_SECRET)"},
    {"credentials-provider", 0, CLI_OPT_STRING, "static_ak", 0, 0,
     "how credentials are found (only static_ak)"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t request_cmd =
    {"request",
     "ACTION Name=Value...",
     "Build a signed OpenAPI request and print it (--dry-run). Name=@file reads the value from a "
     "file. Credentials default to ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET "
     "/ ALIBABA_CLOUD_SECURITY_TOKEN.",
     request_opts,
     1,
     1 + SIGN_MAX_PARAMS};

/* Read a whole file, bounded by the signer's value limit. */
static char *read_value_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    if (!f)
        return NULL;
    buf = malloc(SIGN_MAX_VALUE_LEN + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, SIGN_MAX_VALUE_LEN + 1, f);
    if (ferror(f) || n > SIGN_MAX_VALUE_LEN) {
        fclose(f);
        free(buf);
        *len = n;
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* What one request holds: its parameters (values read from files are
 * owned here and wiped: they may be private keys). */
typedef struct {
    const char *action;
    sign_param_t params[SIGN_MAX_PARAMS];
    char *owned[SIGN_MAX_PARAMS];
    size_t nparams, nowned;
    char host[SIGN_MAX_FIELD_LEN + 1];
} request_t;

/* One Name=Value (or Name=@file) argument. */
static int req_param(request_t *r, const char *a)
{
    const char *eq = strchr(a, '=');
    sign_param_t *pa = &r->params[r->nparams];
    if (!eq || eq == a)
        return cli_usage_error("request: malformed parameter '%s' (want Name=Value)", a);
    if (r->nparams >= SIGN_MAX_PARAMS)
        return cli_usage_error("request: more than %d parameters", SIGN_MAX_PARAMS);
    pa->name = a;
    pa->name_len = (size_t)(eq - a);
    pa->value = eq + 1;
    pa->value_len = strlen(eq + 1);
    if (eq[1] == '@') {
        size_t vl = 0;
        char *v = read_value_file(eq + 2, &vl);
        if (!v && vl > SIGN_MAX_VALUE_LEN)
            return cli_usage_error("request: %s is larger than %u bytes", eq + 2,
                                   (unsigned)SIGN_MAX_VALUE_LEN);
        if (!v)
            return cli_usage_error("request: cannot read '%s'", eq + 2);
        r->owned[r->nowned++] = v;
        pa->value = v;
        pa->value_len = vl;
    }
    r->nparams++;
    return 0;
}

static int req_args(request_t *r, const cli_parsed_t *p)
{
    for (unsigned i = 0; i < p->nargs; i++) {
        const char *a = p->args[i];
        int rc;
        if (r->action) {
            if ((rc = req_param(r, a)) != 0)
                return rc;
        } else if (strchr(a, '=') || a[0] == '\0') {
            return cli_usage_error("request: first argument must be the ACTION, not '%s'", a);
        } else {
            r->action = a;
        }
    }
    return r->action ? 0 : cli_usage_error("request: missing ACTION (see cdnagent request --help)");
}

/* The Host the request is signed for: the endpoint's host[:port] as
 * written (the signature covers it as the SDKs send it). */
static int req_host(request_t *r, const char *endpoint)
{
    const char *h = endpoint;
    size_t hl;
    if (strncmp(h, "https://", 8) == 0)
        h += 8;
    else if (strncmp(h, "http://", 7) == 0)
        h += 7;
    else
        h = NULL;
    hl = h ? strcspn(h, "/") : 0;
    if (hl == 0 || hl > SIGN_MAX_FIELD_LEN || (h[hl] && strcmp(h + hl, "/") != 0))
        return cli_usage_error("request: --endpoint must be https://host[:port], not '%s'",
                               endpoint);
    memcpy(r->host, h, hl);
    r->host[hl] = '\0';
    return 0;
}

static int req_method(const char *opt, sign_version_t version, sign_method_t *method)
{
    if (!opt)
        *method = version == SIGN_V3 ? SIGN_METHOD_POST : SIGN_METHOD_GET;
    else if (strcmp(opt, "GET") == 0 || strcmp(opt, "get") == 0)
        *method = SIGN_METHOD_GET;
    else if (strcmp(opt, "POST") == 0 || strcmp(opt, "post") == 0)
        *method = SIGN_METHOD_POST;
    else
        return cli_usage_error("request: --method must be GET or POST, not '%s'", opt);
    return 0;
}

/* Sign and print the request's bytes, as they would be sent. */
static int req_print(const sign_request_t *req)
{
    sign_signed_t sig;
    sign_status_t st = sign_request(req, &sig);
    if (st == SIGN_ERR_ARG || st == SIGN_ERR_LIMIT)
        return cli_usage_error("request: %s (check --timestamp, --nonce, names, credentials)",
                               sign_status_str(st));
    if (st != SIGN_OK)
        return cli_error("request: %s", sign_status_str(st));
    size_t need = cdnapi_frame(req, &sig, NULL, 0);
    char *out = malloc(need + 1);
    if (!out)
        return cli_error("request: out of memory");
    size_t len = cdnapi_frame(req, &sig, out, need + 1);
    int rc = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0 ? CLI_EXIT_OK
                                                                       : CLI_EXIT_FAILED;
    mbedtls_platform_zeroize(out, need); /* it carries the signature */
    free(out);
    return rc;
}

static void req_free(request_t *r)
{
    for (size_t k = 0; k < r->nowned; k++) {
        size_t vl = 0;
        for (size_t i = 0; i < r->nparams; i++)
            if (r->params[i].value == r->owned[k])
                vl = r->params[i].value_len;
        mbedtls_platform_zeroize(r->owned[k], vl);
        free(r->owned[k]);
    }
}

int cmd_request(int argc, char **argv, const cli_globals_t *g)
{
    static request_t r;
    cli_parsed_t p;
    sign_method_t method = SIGN_METHOD_POST;
    (void)g;
    int rc = cli_parse(&request_cmd, argc, argv, &p);
    if (rc != CLI_PARSE_OK)
        return rc;
    memset(&r, 0, sizeof r);
    sign_version_t version = cli_opt_choice(&p, "signature", CLI_SIGNATURE_V3) == CLI_SIGNATURE_V1
                                 ? SIGN_V1
                                 : SIGN_V3;
    const char *endpoint = cli_opt_str(&p, "endpoint");
    const char *key_id = cli_opt_str(&p, "access-key-id");
    const char *secret = cli_opt_str(&p, "access-key-secret");
    const char *token = getenv("ALIBABA_CLOUD_SECURITY_TOKEN");
    key_id = key_id ? key_id : getenv("ALIBABA_CLOUD_ACCESS_KEY_ID");
    secret = secret ? secret : getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    rc = req_args(&r, &p);
    if (!rc && (!key_id || !key_id[0] || !secret || !secret[0]))
        rc = cli_usage_error(
            "request: missing credentials (set ALIBABA_CLOUD_ACCESS_KEY_ID and "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or --access-key-id/--access-key-secret)");
    if (!rc)
        rc = req_method(cli_opt_str(&p, "method"), version, &method);
    if (!rc)
        rc = req_host(&r, endpoint ? endpoint : CLI_DEFAULT_ENDPOINT);
    if (!rc && !cli_opt_given(&p, "dry-run"))
        rc = cli_usage_error("request: only --dry-run is available; sending arrives with the "
                             "`call` commands");
    if (!rc) {
        sign_credentials_t cr = {key_id, secret, token && token[0] ? token : NULL};
        sign_request_t req = {&cr,
                              r.host,
                              r.action,
                              cli_opt_str(&p, "api-version"),
                              r.params,
                              r.nparams,
                              method,
                              version,
                              cli_opt_str(&p, "timestamp"),
                              cli_opt_str(&p, "nonce"),
                              cli_opt_str(&p, "credentials-provider")};
        rc = req_print(&req);
    }
    req_free(&r);
    return rc;
}
