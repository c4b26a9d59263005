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

int cmd_request(int argc, char **argv, const cli_globals_t *g)
{
    sign_param_t params[SIGN_MAX_PARAMS];
    char *owned[SIGN_MAX_PARAMS];
    size_t nparams = 0, nowned = 0;
    const char *action = NULL, *endpoint = CLI_DEFAULT_ENDPOINT, *api_version = NULL;
    const char *method_opt = NULL, *timestamp = NULL, *nonce = NULL, *provider = NULL;
    const char *key_id = getenv("ALIBABA_CLOUD_ACCESS_KEY_ID");
    const char *secret = getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    const char *token = getenv("ALIBABA_CLOUD_SECURITY_TOKEN");
    sign_version_t version = SIGN_V3;
    sign_method_t method;
    int dry_run = 0, rc = CLI_EXIT_USAGE;
    char host[SIGN_MAX_FIELD_LEN + 1];
    char *out = NULL;
    size_t need = 0, len = 0;
    sign_status_t st;
    (void)g;

    cli_parsed_t p;
    rc = cli_parse(&request_cmd, argc, argv, &p);
    if (rc != CLI_PARSE_OK)
        goto done;
    rc = CLI_EXIT_USAGE;
    dry_run = cli_opt_given(&p, "dry-run");
    if (cli_opt_choice(&p, "signature", CLI_SIGNATURE_V3) == CLI_SIGNATURE_V1)
        version = SIGN_V1;
    method_opt = cli_opt_str(&p, "method");
    timestamp = cli_opt_str(&p, "timestamp");
    nonce = cli_opt_str(&p, "nonce");
    endpoint = cli_opt_str(&p, "endpoint") ? cli_opt_str(&p, "endpoint") : endpoint;
    key_id = cli_opt_str(&p, "access-key-id") ? cli_opt_str(&p, "access-key-id") : key_id;
    secret = cli_opt_str(&p, "access-key-secret") ? cli_opt_str(&p, "access-key-secret") : secret;
    api_version = cli_opt_str(&p, "api-version");
    provider = cli_opt_str(&p, "credentials-provider");
    for (unsigned i = 0; i < p.nargs; i++) {
        const char *a = p.args[i];
        if (!action) {
            if (strchr(a, '=') || a[0] == '\0') {
                cli_usage_error("request: first argument must be the ACTION, not '%s'", a);
                goto done;
            }
            action = a;
            continue;
        }
        {
            const char *eq = strchr(a, '=');
            if (!eq || eq == a) {
                cli_usage_error("request: malformed parameter '%s' (want Name=Value)", a);
                goto done;
            }
            if (nparams >= SIGN_MAX_PARAMS) {
                cli_usage_error("request: more than %d parameters", SIGN_MAX_PARAMS);
                goto done;
            }
            params[nparams].name = a;
            params[nparams].name_len = (size_t)(eq - a);
            if (eq[1] == '@') {
                size_t vl = 0;
                char *v = read_value_file(eq + 2, &vl);
                if (!v) {
                    if (vl > SIGN_MAX_VALUE_LEN)
                        cli_usage_error("request: %s is larger than %u bytes", eq + 2,
                                        (unsigned)SIGN_MAX_VALUE_LEN);
                    else
                        cli_usage_error("request: cannot read '%s'", eq + 2);
                    goto done;
                }
                owned[nowned++] = v;
                params[nparams].value = v;
                params[nparams].value_len = vl;
            } else {
                params[nparams].value = eq + 1;
                params[nparams].value_len = strlen(eq + 1);
            }
            nparams++;
        }
    }
    if (!action) {
        cli_usage_error("request: missing ACTION (see cdnagent request --help)");
        goto done;
    }
    if (!key_id || !key_id[0] || !secret || !secret[0]) {
        cli_usage_error("request: missing credentials (set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or --access-key-id/--access-key-secret)");
        goto done;
    }
    if (!method_opt)
        method = version == SIGN_V3 ? SIGN_METHOD_POST : SIGN_METHOD_GET;
    else if (strcmp(method_opt, "GET") == 0 || strcmp(method_opt, "get") == 0)
        method = SIGN_METHOD_GET;
    else if (strcmp(method_opt, "POST") == 0 || strcmp(method_opt, "post") == 0)
        method = SIGN_METHOD_POST;
    else {
        cli_usage_error("request: --method must be GET or POST, not '%s'", method_opt);
        goto done;
    }
    {
        const char *h = endpoint;
        size_t hl;
        if (strncmp(h, "https://", 8) == 0)
            h += 8;
        else if (strncmp(h, "http://", 7) == 0)
            h += 7;
        else {
            cli_usage_error("request: --endpoint must be https://host[:port], not '%s'", endpoint);
            goto done;
        }
        hl = strcspn(h, "/");
        if (hl == 0 || hl > SIGN_MAX_FIELD_LEN || (h[hl] && strcmp(h + hl, "/") != 0)) {
            cli_usage_error("request: --endpoint must be https://host[:port], not '%s'", endpoint);
            goto done;
        }
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    if (!dry_run) {
        cli_usage_error("request: only --dry-run is available; sending arrives with the `call` "
                        "commands");
        goto done;
    }
    {
        sign_credentials_t cr = {key_id, secret, token && token[0] ? token : NULL};
        sign_request_t req = {&cr,    host,    action,    api_version, params,  nparams,
                              method, version, timestamp, nonce,       provider};
        sign_signed_t sig;
        st = sign_request(&req, &sig);
        if (st == SIGN_OK) {
            need = cdnapi_frame(&req, &sig, NULL, 0);
            out = malloc(need + 1);
            if (!out) {
                fprintf(stderr, "cdnagent: request: out of memory\n");
                rc = CLI_EXIT_FAILED;
                goto done;
            }
            len = cdnapi_frame(&req, &sig, out, need + 1);
        }
        if (st != SIGN_OK) {
            if (st == SIGN_ERR_ARG || st == SIGN_ERR_LIMIT)
                cli_usage_error("request: %s (check --timestamp, --nonce, names, credentials)",
                                sign_status_str(st));
            else {
                fprintf(stderr, "cdnagent: request: %s\n", sign_status_str(st));
                rc = CLI_EXIT_FAILED;
            }
            goto done;
        }
    }
    rc = fwrite(out, 1, len, stdout) == len && fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;

done:
    /* values may be private keys: wipe them */
    for (size_t k = 0; k < nowned; k++) {
        size_t vl = 0;
        for (size_t p = 0; p < nparams; p++)
            if (params[p].value == owned[k])
                vl = params[p].value_len;
        mbedtls_platform_zeroize(owned[k], vl);
        free(owned[k]);
    }
    if (out) {
        mbedtls_platform_zeroize(out, need);
        free(out);
    }
    return rc;
}
