/* CDN OpenAPI header operations: validate, sign, send, parse, classify. */
#include "cdnapi.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cdnapi_internal.h"
#include "crypto.h"
#include "port.h"
#include "util.h"

/* Largest signed request: two percent-encoded PEMs (x3 worst case) plus
 * headers; the buffer is sized exactly per request, up to this bound. */

void cdnapi_init(void)
{
    cJSON_Hooks hooks;
    hooks.malloc_fn = port_malloc;
    hooks.free_fn = port_free;
    cJSON_InitHooks(&hooks);
}

const char *cdnapi_class_str(cdnapi_class_t c)
{
    switch (c) {
    case CDNAPI_SUCCESS: return "success";
    case CDNAPI_RETRYABLE: return "retryable";
    case CDNAPI_CLOCK: return "clock";
    case CDNAPI_PERMANENT_INPUT: return "permanent-input";
    case CDNAPI_PERMANENT_CREDENTIALS: return "permanent-credentials";
    case CDNAPI_CONFIGURATION: return "configuration";
    default: return "unknown";
    }
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

cdnapi_class_t cdnapi_classify(http_status_t http_status, int status_code, const char *code)
{
    if (http_status != HTTP_OK) {
        /* An untrusted server certificate or a transport set up with bad
         * arguments will not heal by itself, nor is the change at fault:
         * the device's configuration (CA bundle, endpoint) is. */
        if (http_status == HTTP_ERR_CERT_VERIFY || http_status == HTTP_ERR_ARG ||
            http_status == HTTP_ERR_TLS_SETUP) {
            return CDNAPI_CONFIGURATION;
        }
        return CDNAPI_RETRYABLE;
    }
    if (code == NULL) {
        code = "";
    }
    if (status_code >= 200 && status_code < 300 && code[0] == 0) {
        return CDNAPI_SUCCESS;
    }
    if (starts(code, "Throttling") || strcmp(code, "ServiceUnavailable") == 0 ||
        strcmp(code, "InternalError") == 0 || strcmp(code, "SignatureNonceUsed") == 0) {
        return CDNAPI_RETRYABLE;
    }
    if (strcmp(code, "InvalidTimeStamp.Expired") == 0) {
        return CDNAPI_CLOCK;
    }
    if (strcmp(code, "SignatureDoesNotMatch") == 0 || strcmp(code, "IncompleteSignature") == 0 ||
        starts(code, "InvalidAccessKeyId") || starts(code, "Forbidden") ||
        starts(code, "InvalidSecurityToken")) {
        return CDNAPI_PERMANENT_CREDENTIALS;
    }
    if (status_code >= 500 || status_code == 0) {
        return CDNAPI_RETRYABLE;
    }
    return CDNAPI_PERMANENT_INPUT;
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
    }
    if (n) {
        memcpy(dst, src, n);
    }
    dst[n] = 0;
}

cdnapi_class_t cdnapi_fail(cdnapi_result_t *res, cdnapi_class_t cls, const char *code,
                           const char *message)
{
    res->cls = cls;
    copy_field(res->code, sizeof(res->code), code);
    copy_field(res->message, sizeof(res->message), message);
    return cls;
}

cdnapi_class_t cdnapi_local_error(cdnapi_result_t *res, const char *code, const char *message)
{
    memset(res, 0, sizeof(*res));
    copy_field(res->request_id, sizeof(res->request_id), "local");
    return cdnapi_fail(res, CDNAPI_PERMANENT_INPUT, code, message);
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A ConfigId as the service writes it: decimal digits, at most
 * CDNAPI_MAX_CONFIG_ID_LEN of them ("" passes: no id). */
static bool config_id_ok(const char *id)
{
    size_t i;
    for (i = 0; id[i]; i++)
        if (!(id[i] >= '0' && id[i] <= '9') || i >= CDNAPI_MAX_CONFIG_ID_LEN)
            return false;
    return true;
}

/* 1..CDNAPI_MAX_DELETE_IDS ConfigIds joined by single commas. */
static bool config_id_list_ok(const char *ids)
{
    size_t n = 0, run = 0;
    for (; *ids; ids++) {
        if (*ids == ',') {
            if (run == 0)
                return false;
            run = 0;
        } else if (*ids >= '0' && *ids <= '9' && run < CDNAPI_MAX_CONFIG_ID_LEN) {
            n += run++ == 0;
        } else {
            return false;
        }
    }
    return run > 0 && n <= CDNAPI_MAX_DELETE_IDS;
}

static bool iprefix(const char *s, const char *p)
{
    for (; *p; s++, p++) {
        char x = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
        if (x != *p) {
            return false;
        }
    }
    return true;
}

/* Hop-by-hop and framing headers the CDN owns, and vendor prefixes. */
/* clang-format off */
static const char *const reserved[] = {"host", "content-length", "connection",
    "transfer-encoding", "upgrade", "keep-alive", "te", "trailer", "expect", "via",
    "x-forwarded-for", "x-real-ip", "authorization"};
static const char *const reserved_prefix[] = {"proxy-", "ali-", "eagleeye-", "x-cdn-",
    "x-oss-", "x-acs-"};
/* clang-format on */

static bool name_reserved(const char *key)
{
    size_t i;
    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (util_ascii_eq_nocase(key, reserved[i])) {
            return true;
        }
    }
    return false;
}

static bool prefix_reserved(const char *key)
{
    size_t i;
    for (i = 0; i < sizeof(reserved_prefix) / sizeof(reserved_prefix[0]); i++) {
        if (iprefix(key, reserved_prefix[i])) {
            return true;
        }
    }
    return false;
}

bool cdnapi_header_name_reserved(const char *key)
{
    return key != NULL && (name_reserved(key) || prefix_reserved(key));
}

static const char *const rule_ops[] = {"add", "modify", "delete", "rewrite"};

const char *cdnapi_rule_op_str(cdnapi_rule_op_t op)
{
    return (unsigned)op < sizeof rule_ops / sizeof rule_ops[0] ? rule_ops[op] : "?";
}

int cdnapi_rule_op_parse(const char *word)
{
    for (size_t i = 0; word != NULL && i < sizeof rule_ops / sizeof rule_ops[0]; i++)
        if (strcmp(word, rule_ops[i]) == 0)
            return (int)i;
    return -1;
}

const char *cdnapi_function_str(cdnapi_function_t f)
{
    return f == CDNAPI_FN_ORIGIN_RULE ? "origin_request_header" : "set_req_header";
}

/* A spec from its parts (op: the operation's word, unknown ones spelt '?'
 * so that they equal no rule the agent sends); false when it does not fit. */
static bool spec_write(const char *op, bool duplicate, const char *source, const char *value,
                       char out[CDNAPI_MAX_VALUE_LEN + 1])
{
    int k = cdnapi_rule_op_parse(op);
    bool dup = k == CDNAPI_RULE_ADD && duplicate;
    int n = snprintf(out, CDNAPI_MAX_VALUE_LEN + 1, "%c%c%s\n%s", k < 0 ? '?' : op[0],
                     dup ? '+' : '-', source ? source : "", value ? value : "");
    return n > 0 && (size_t)n <= CDNAPI_MAX_VALUE_LEN;
}

bool cdnapi_rule_spec(const cdnapi_rule_t *rule, char out[CDNAPI_MAX_VALUE_LEN + 1])
{
    out[0] = 0;
    if ((unsigned)rule->op > CDNAPI_RULE_REWRITE)
        return false;
    return spec_write(rule_ops[rule->op], rule->duplicate, rule->source, rule->value, out);
}

bool cdnapi_rule_unspec(char *spec, cdnapi_rule_t *rule)
{
    char *lf = strchr(spec, '\n');
    int op = -1;
    for (size_t i = 0; i < sizeof rule_ops / sizeof rule_ops[0]; i++)
        if (spec[0] != 0 && spec[0] == rule_ops[i][0])
            op = (int)i;
    if (op < 0 || (spec[1] != '+' && spec[1] != '-') || lf == NULL || lf < spec + 2)
        return false;
    *lf = 0;
    rule->op = (cdnapi_rule_op_t)op;
    rule->duplicate = spec[1] == '+';
    rule->source = spec + 2;
    rule->value = lf + 1;
    return true;
}

/* At most max bytes, no control character but TAB. */
static bool rule_text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return false;
    return n <= max;
}

static cdnapi_class_t rule_name_check(const char *name, cdnapi_result_t *res)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return cdnapi_local_error(res, "MissingParameter", "header_name is empty");
    bool letter = (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z');
    if (n > CDNAPI_MAX_RULE_NAME_LEN || !letter)
        return cdnapi_local_error(res, "InvalidParameter",
                                  "header_name must be 1 to 100 characters, starting with a letter");
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)name[i]))
            return cdnapi_local_error(res, "InvalidParameter",
                                      "header_name is not an RFC 7230 token");
    if (name_reserved(name) || prefix_reserved(name))
        return cdnapi_local_error(res, "InvalidHeaderKey.ValueNotSupported",
                                  "header name is reserved by the CDN");
    return CDNAPI_SUCCESS;
}

cdnapi_class_t cdnapi_validate_rule(const cdnapi_rule_t *rule, cdnapi_result_t *res)
{
    if (rule == NULL || (unsigned)rule->op > CDNAPI_RULE_REWRITE)
        return cdnapi_local_error(res, "InvalidParameter", "header_operation_type");
    if (rule_name_check(rule->name, res) != CDNAPI_SUCCESS)
        return res->cls;
    bool needs_value = rule->op != CDNAPI_RULE_DELETE;
    if (needs_value && (rule->value == NULL || rule->value[0] == 0))
        return cdnapi_local_error(res, "MissingParameter", "header_value is empty");
    if (rule->value != NULL && !rule_text_ok(rule->value, CDNAPI_MAX_RULE_VALUE_LEN))
        return cdnapi_local_error(res, "InvalidParameter",
                                  "header_value is over 1,000 bytes or holds a control character");
    if (rule->op == CDNAPI_RULE_REWRITE && (rule->source == NULL || rule->source[0] == 0))
        return cdnapi_local_error(res, "MissingParameter", "header_source is empty");
    /* beyond the service's checks: what would not be sent is not taken */
    if (rule->source != NULL && rule->source[0] != 0 && rule->op != CDNAPI_RULE_REWRITE)
        return cdnapi_local_error(res, "InvalidParameter", "header_source goes with rewrite only");
    if (rule->duplicate && rule->op != CDNAPI_RULE_ADD)
        return cdnapi_local_error(res, "InvalidParameter", "duplicate goes with add only");
    if (rule->source != NULL && !rule_text_ok(rule->source, CDNAPI_MAX_RULE_VALUE_LEN))
        return cdnapi_local_error(res, "InvalidParameter",
                                  "header_source is over 1,000 bytes or holds a control character");
    return CDNAPI_SUCCESS;
}

cdnapi_class_t cdnapi_validate_header(const char *domain, const char *key, const char *value,
                                      cdnapi_result_t *res)
{
    size_t i;
    if (domain == NULL || domain[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "DomainName is empty");
    }
    if (key == NULL || key[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "Key is empty");
    }
    if (value == NULL || value[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "Value is empty");
    }
    if (strlen(domain) > CDNAPI_MAX_DOMAIN_LEN) {
        return cdnapi_local_error(res, "InvalidDomainName.Malformed", "DomainName is too long");
    }
    if (strlen(key) > CDNAPI_MAX_KEY_LEN) {
        return cdnapi_local_error(res, "InvalidKey.Malformed", "header name is too long");
    }
    for (i = 0; key[i]; i++) {
        if (!is_tchar((unsigned char)key[i])) {
            return cdnapi_local_error(res, "InvalidKey.Malformed",
                                      "header name is not an RFC 7230 token");
        }
    }
    /* (the service's own code for a name it keeps for itself) */
    if (name_reserved(key)) {
        return cdnapi_local_error(res, "InvalidHeaderKey.ValueNotSupported",
                                  "header name is reserved by the CDN");
    }
    if (prefix_reserved(key)) {
        return cdnapi_local_error(res, "InvalidHeaderKey.ValueNotSupported",
                                  "header name uses a CDN-reserved prefix");
    }
    if (strlen(value) > CDNAPI_MAX_VALUE_LEN) {
        return cdnapi_local_error(res, "InvalidValue.Malformed", "header value is too long");
    }
    for (i = 0; value[i]; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return cdnapi_local_error(res, "InvalidValue.Malformed",
                                      "header value contains a control character");
        }
    }
    return CDNAPI_SUCCESS;
}

void cdnapi_parse_reply(int status_code, const char *body, size_t len, cdnapi_result_t *res)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *code, *msg, *rid;
    res->status_code = status_code;
    res->http_status = HTTP_OK;
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        copy_field(res->code, sizeof(res->code), status_code >= 500 ? "HTTP5xx" : "BadResponse");
        copy_field(res->message, sizeof(res->message), "response body is not a JSON object");
        /* An unreadable 2xx may have been applied; the retry re-applies it,
         * which is safe for these set/delete operations. */
        res->cls = CDNAPI_RETRYABLE;
        return;
    }
    code = cJSON_GetObjectItemCaseSensitive(root, "Code");
    msg = cJSON_GetObjectItemCaseSensitive(root, "Message");
    rid = cJSON_GetObjectItemCaseSensitive(root, "RequestId");
    copy_field(res->code, sizeof(res->code), cJSON_IsString(code) ? code->valuestring : "");
    copy_field(res->message, sizeof(res->message), cJSON_IsString(msg) ? msg->valuestring : "");
    copy_field(res->request_id, sizeof(res->request_id),
               cJSON_IsString(rid) ? rid->valuestring : "");
    if (res->code[0] == 0 && (status_code < 200 || status_code >= 300)) {
        snprintf(res->code, sizeof(res->code), "HTTP%d", status_code);
    }
    res->cls = cdnapi_classify(HTTP_OK, status_code, res->code);
    cJSON_Delete(root);
}

static void id_to_text(const cJSON *id, char *out, size_t cap)
{
    /* ConfigId is a number in the docs and a string in the SDK model (CertId
     * the same across the certificate replies). */
    out[0] = 0;
    if (cJSON_IsString(id)) {
        copy_field(out, cap, id->valuestring);
    } else if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 9.0e15) {
        /* Digits by hand (util): newlib-nano's printf (the Cortex-M build)
         * has no %f and no %llu, and an id with a fraction is no id. */
        uint64_t v = (uint64_t)id->valuedouble;
        char digits[UTIL_U64_DEC_MAX + 1];
        if ((double)v != id->valuedouble || util_u64_to_dec(v, digits) >= cap)
            return;
        copy_field(out, cap, digits);
    }
}

/* The args a read-back's config carries, by name (those of either function). */
enum { ARG_KEY, ARG_VALUE, ARG_OP, ARG_NAME, ARG_HVALUE, ARG_DUP, ARG_SOURCE, ARG_DEST, ARG_N };
static const char *const arg_names[ARG_N] =
    {"key",          "value",     "header_operation_type", "header_name",
     "header_value", "duplicate", "header_source",         "header_destination"};

/* One set_req_header or origin_request_header entry of a read-back into h
 * (a rule as its spec); false when cfg is neither. Other args (e.g. a
 * newer "match_all") are ignored. */
static bool header_config(const cJSON *cfg, cdnapi_header_t *h)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cfg, "FunctionName");
    const cJSON *args =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "FunctionArgs"),
                                         "FunctionArg");
    const cJSON *arg;
    const char *v[ARG_N] = {0};
    if (!cJSON_IsString(fn))
        return false;
    memset(h, 0, sizeof(*h));
    if (strcmp(fn->valuestring, "origin_request_header") == 0)
        h->function = CDNAPI_FN_ORIGIN_RULE;
    else if (strcmp(fn->valuestring, "set_req_header") != 0)
        return false;
    id_to_text(cJSON_GetObjectItemCaseSensitive(cfg, "ConfigId"), h->config_id,
               sizeof(h->config_id));
    cJSON_ArrayForEach(arg, args)
    {
        const cJSON *an = cJSON_GetObjectItemCaseSensitive(arg, "ArgName");
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(arg, "ArgValue");
        for (size_t i = 0; cJSON_IsString(an) && cJSON_IsString(av) && i < ARG_N; i++)
            if (strcmp(an->valuestring, arg_names[i]) == 0)
                v[i] = av->valuestring;
    }
    if (h->function == CDNAPI_FN_REQ_HEADER) {
        copy_field(h->key, sizeof(h->key), v[ARG_KEY] ? v[ARG_KEY] : "");
        copy_field(h->value, sizeof(h->value), v[ARG_VALUE] ? v[ARG_VALUE] : "");
        return true;
    }
    copy_field(h->key, sizeof(h->key), v[ARG_NAME] ? v[ARG_NAME] : "");
    bool rewrite = v[ARG_OP] && strcmp(v[ARG_OP], "rewrite") == 0;
    /* a spec too long for the buffer is no rule the agent sent: left "" */
    if (!spec_write(v[ARG_OP] ? v[ARG_OP] : "", v[ARG_DUP] && strcmp(v[ARG_DUP], "on") == 0,
                    rewrite ? v[ARG_SOURCE] : NULL, v[rewrite ? ARG_DEST : ARG_HVALUE], h->value))
        h->value[0] = 0;
    return true;
}

cdnapi_class_t cdnapi_parse_header_configs(const char *body, size_t len, cdnapi_header_fn fn,
                                           void *arg, size_t *visited)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *cfgs, *cfg;
    cdnapi_header_t *h;
    size_t n = 0;
    if (visited != NULL) {
        *visited = 0;
    }
    if (root == NULL) {
        return CDNAPI_RETRYABLE;
    }
    /* One entry at a time, on the heap: 1.1 KB that a device's delivery
     * stack need not hold. */
    h = port_malloc(sizeof(*h));
    if (h == NULL) {
        cJSON_Delete(root);
        return CDNAPI_RETRYABLE;
    }
    cfgs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "DomainConfigs"),
                                            "DomainConfig");
    cJSON_ArrayForEach(cfg, cfgs)
    {
        if (!header_config(cfg, h)) {
            continue;
        }
        n++;
        if (fn != NULL && !fn(arg, h)) {
            break;
        }
    }
    port_free(h);
    cJSON_Delete(root);
    if (visited != NULL) {
        *visited = n;
    }
    return CDNAPI_SUCCESS;
}

/* Sign once, frame into one buffer of the exact size, send, and parse the
 * common reply fields. On success the caller may use resp->body; it must
 * free resp in every case. */
static bool call(cdnapi_t *api, const char *action, const sign_param_t *params, size_t count,
                 cdnapi_result_t *res, http_response_t *resp)
{
    sign_request_t req;
    char *buf;
    size_t len = 0;
    http_status_t rc;

    memset(res, 0, sizeof(*res));
    memset(resp, 0, sizeof(*resp));
    memset(&req, 0, sizeof(req));
    req.credentials = api->credentials;
    req.host = api->host;
    req.action = action;
    req.params = params;
    req.param_count = count;
    req.method = SIGN_METHOD_POST;
    req.version = api->signature;
    req.timestamp = api->timestamp;
    if (cdnapi_build_request(&req, res, &buf, &len) != CDNAPI_SUCCESS)
        return false;
    rc = http_client_request(api->http, (const uint8_t *)buf, len, resp);
    /* the request carries a certificate's private key (PrivateKey, SSLPri) */
    crypto_wipe(buf, len);
    port_free(buf);
    res->http_status = rc;
    if (rc != HTTP_OK) {
        res->cls = cdnapi_classify(rc, 0, NULL);
        snprintf(res->code, sizeof(res->code), "Transport.%s", http_client_status_str(rc));
        copy_field(res->message, sizeof(res->message),
                   api->http != NULL && api->http->why[0] ? api->http->why
                                                          : "no complete response from the API");
        return false;
    }
    res->has_server_date = resp->has_date;
    res->server_date = resp->server_date;
    cdnapi_parse_reply(resp->status_code, (const char *)resp->body, resp->body_len, res);
    return res->cls == CDNAPI_SUCCESS;
}

sign_param_t cdnapi_param(const char *name, const char *value)
{
    sign_param_t p;
    p.name = name;
    p.name_len = strlen(name);
    p.value = value;
    p.value_len = strlen(value);
    return p;
}

cdnapi_class_t cdnapi_set_header(cdnapi_t *api, const char *domain, const char *key,
                                 const char *value, const char *config_id, cdnapi_result_t *res)
{
    sign_param_t p[4];
    size_t n = 0;
    if (cdnapi_validate_header(domain, key, value, res) != CDNAPI_SUCCESS) {
        return res->cls;
    }
    p[n++] = cdnapi_param("DomainName", domain);
    p[n++] = cdnapi_param("Key", key);
    p[n++] = cdnapi_param("Value", value);
    if (config_id != NULL && config_id[0] != 0) {
        p[n++] = cdnapi_param("ConfigId", config_id);
    }
    return cdnapi_call_simple(api, "SetReqHeaderConfig", p, n, res);
}

cdnapi_class_t cdnapi_delete_header(cdnapi_t *api, const char *domain, const char *config_ids,
                                    cdnapi_result_t *res)
{
    return cdnapi_delete_configs(api, domain, config_ids, CDNAPI_FN_REQ_HEADER, res);
}

cdnapi_class_t cdnapi_delete_configs(cdnapi_t *api, const char *domain, const char *config_ids,
                                     cdnapi_function_t f, cdnapi_result_t *res)
{
    sign_param_t p[3];
    if (domain == NULL || domain[0] == 0 || config_ids == NULL || config_ids[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "DomainName and ConfigId are required");
    }
    if (!config_id_list_ok(config_ids)) {
        return cdnapi_local_error(res, "InvalidParameter",
                                  "ConfigId must be decimal numbers joined by commas (at most 8)");
    }
    p[0] = cdnapi_param("DomainName", domain);
    p[1] = cdnapi_param("ConfigId", config_ids);
    p[2] = cdnapi_param("FunctionName", cdnapi_function_str(f));
    return cdnapi_call_simple(api, "DeleteSpecificConfig", p, 3, res);
}

cdnapi_class_t cdnapi_list_headers(cdnapi_t *api, const char *domain, cdnapi_header_fn fn,
                                   void *arg, size_t *visited, cdnapi_result_t *res)
{
    return cdnapi_list_configs(api, domain, CDNAPI_FN_REQ_HEADER, fn, arg, visited, res);
}

cdnapi_class_t cdnapi_list_configs(cdnapi_t *api, const char *domain, cdnapi_function_t f,
                                   cdnapi_header_fn fn, void *arg, size_t *visited,
                                   cdnapi_result_t *res)
{
    sign_param_t p[2];
    http_response_t resp;
    if (visited != NULL) {
        *visited = 0;
    }
    if (domain == NULL || domain[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "DomainName is empty");
    }
    p[0] = cdnapi_param("DomainName", domain);
    p[1] = cdnapi_param("FunctionNames", cdnapi_function_str(f));
    if (call(api, "DescribeCdnDomainConfigs", p, 2, res, &resp) &&
        cdnapi_parse_header_configs((const char *)resp.body, resp.body_len, fn, arg, visited) !=
            CDNAPI_SUCCESS) {
        res->cls = CDNAPI_RETRYABLE;
        copy_field(res->code, sizeof(res->code), "BadResponse");
    }
    http_response_free(&resp);
    return res->cls;
}

/* {"argName": name, "argValue": value}, or NULL when out of memory. */
static cJSON *batch_arg(const char *name, const char *value)
{
    cJSON *a = cJSON_CreateObject();
    if (a != NULL && (cJSON_AddStringToObject(a, "argName", name) == NULL ||
                      cJSON_AddStringToObject(a, "argValue", value) == NULL)) {
        cJSON_Delete(a);
        a = NULL;
    }
    return a;
}

/* h's rule, split from a heap copy of its spec (*copy, which the caller
 * frees) and checked as cdnapi_validate_rule. */
static cdnapi_class_t header_rule(const cdnapi_set_t *h, cdnapi_rule_t *r, char **copy,
                                  cdnapi_result_t *res)
{
    size_t n = strlen(h->value) + 1;
    *copy = port_malloc(n);
    if (*copy == NULL)
        return cdnapi_fail(res, CDNAPI_RETRYABLE, "NoMemory", "out of memory reading a rule");
    memcpy(*copy, h->value, n);
    memset(r, 0, sizeof *r);
    if (!cdnapi_rule_unspec(*copy, r))
        return cdnapi_local_error(res, "InvalidParameter", "not an origin_request_header rule");
    r->name = h->key;
    return cdnapi_validate_rule(r, res);
}

/* Add {"argName": name, "argValue": value} to args (nothing when value is
 * NULL or empty); false when out of memory. */
static bool batch_arg_add(cJSON *args, const char *name, const char *value)
{
    cJSON *a = value != NULL && value[0] != 0 ? batch_arg(name, value) : NULL;
    if (a != NULL)
        (void)cJSON_AddItemToArray(args, a);
    return a != NULL || value == NULL || value[0] == 0;
}

/* The args of h: set_req_header's key and value, or the rule's operation,
 * name, value, switch (add only) and rewrite's source and destination. */
static bool batch_args(cJSON *args, const cdnapi_set_t *h)
{
    cdnapi_rule_t r;
    char *copy = NULL;
    cdnapi_result_t res;
    if (h->function != CDNAPI_FN_ORIGIN_RULE)
        return batch_arg_add(args, "key", h->key) && batch_arg_add(args, "value", h->value);
    /* (checked by batch_check: only memory can fail here) */
    bool ok = header_rule(h, &r, &copy, &res) == CDNAPI_SUCCESS &&
              batch_arg_add(args, "header_operation_type", cdnapi_rule_op_str(r.op)) &&
              batch_arg_add(args, "header_name", h->key);
    if (ok && r.op == CDNAPI_RULE_REWRITE)
        ok = batch_arg_add(args, "header_source", r.source) &&
             batch_arg_add(args, "header_destination", r.value);
    else if (ok)
        ok = batch_arg_add(args, "header_value", r.value) &&
             (r.op != CDNAPI_RULE_ADD ||
              batch_arg_add(args, "duplicate", r.duplicate ? "on" : "off"));
    port_free(copy);
    return ok;
}

/* Appends {"functionArgs":[...], "functionName": its function
 * [, "configId": N]} to funcs; false when out of memory. */
static bool batch_function(cJSON *funcs, const cdnapi_set_t *h)
{
    cJSON *f = cJSON_CreateObject();
    cJSON *args = cJSON_CreateArray();
    if (f == NULL || args == NULL || !batch_args(args, h)) {
        cJSON_Delete(f);
        cJSON_Delete(args);
        return false;
    }
    /* Array adds of non-NULL items cannot fail and take ownership; an
     * object add copies its key and fails without taking ownership when
     * that copy finds no memory. */
    if (!cJSON_AddItemToObject(f, "functionArgs", args)) {
        cJSON_Delete(args);
        cJSON_Delete(f);
        return false;
    }
    (void)cJSON_AddItemToArray(funcs, f);
    if (cJSON_AddStringToObject(f, "functionName", cdnapi_function_str(h->function)) == NULL) {
        return false;
    }
    /* ConfigId is a Long: emitted as digits verbatim (validated), never via double. */
    if (h->config_id != NULL && h->config_id[0] != 0 &&
        cJSON_AddRawToObject(f, "configId", h->config_id) == NULL) {
        return false;
    }
    return true;
}

/* The batch's local checks (cdnapi_batch_set_headers); the DomainNames
 * list's length into *names_len. */
static cdnapi_class_t batch_check(const char *const *domains, size_t ndomains,
                                  const cdnapi_set_t *headers, size_t nheaders, size_t *names_len,
                                  cdnapi_result_t *res)
{
    size_t i, k, len = 0;

    if (domains == NULL || ndomains == 0 || headers == NULL || nheaders == 0) {
        return cdnapi_local_error(res, "MissingParameter", "DomainNames and Functions are required");
    }
    if (ndomains > CDNAPI_MAX_BATCH || nheaders > CDNAPI_MAX_BATCH ||
        ndomains * nheaders > CDNAPI_MAX_BATCH) {
        return cdnapi_local_error(res, "InvalidParameter",
                                  "at most 50 domains per batch, and domains x headers <= 50");
    }
    for (i = 0; i < ndomains; i++) {
        const char *d = domains[i];
        if (d == NULL || d[0] == 0) {
            return cdnapi_local_error(res, "MissingParameter", "a DomainName of the batch is empty");
        }
        for (k = 0; d[k] != 0; k++) {
            if ((unsigned char)d[k] <= ' ' || d[k] == ',' || d[k] == 0x7f) {
                return cdnapi_local_error(res, "InvalidDomainName.Malformed",
                                          "a DomainName holds a comma, blank or control character");
            }
        }
        if (k > CDNAPI_MAX_DOMAIN_LEN) {
            return cdnapi_local_error(res, "InvalidDomainName.Malformed", "DomainName is too long");
        }
        len += k + 1;
    }
    for (i = 0; i < nheaders; i++) {
        if (headers[i].function == CDNAPI_FN_ORIGIN_RULE) {
            cdnapi_rule_t r;
            char *copy;
            cdnapi_class_t cls = header_rule(&headers[i], &r, &copy, res);
            port_free(copy);
            if (cls != CDNAPI_SUCCESS)
                return cls;
        } else if (cdnapi_validate_header(domains[0], headers[i].key, headers[i].value, res) !=
                   CDNAPI_SUCCESS) {
            return res->cls;
        }
        if (headers[i].config_id != NULL && !config_id_ok(headers[i].config_id)) {
            return cdnapi_local_error(res, "InvalidParameter", "ConfigId must be a decimal number");
        }
    }
    *names_len = len;
    return CDNAPI_SUCCESS;
}

static bool is_add(const cdnapi_set_t *set)
{
    return set->config_id == NULL || set->config_id[0] == 0;
}

/* The ConfigId of model m when it is of function f and not one a modify of
 * f named (those come back too); NULL otherwise. */
static const char *added_model_id(const cJSON *m, cdnapi_function_t f, const cdnapi_set_t *sets,
                                  size_t nsets, char id[CDNAPI_MAX_CONFIG_ID_LEN + 1])
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(m, "FunctionName");
    if (!cJSON_IsString(fn) || strcmp(fn->valuestring, cdnapi_function_str(f)) != 0)
        return NULL;
    id_to_text(cJSON_GetObjectItemCaseSensitive(m, "ConfigId"), id, CDNAPI_MAX_CONFIG_ID_LEN + 1);
    for (size_t k = 0; id[0] != 0 && k < nsets; k++)
        if (sets[k].function == f && !is_add(&sets[k]) && strcmp(sets[k].config_id, id) == 0)
            return NULL;
    return id[0] != 0 ? id : NULL;
}

/* A one-domain batch's adds that are the only add of their function: the
 * reply's one new ConfigId of that function is theirs, whatever the order
 * of the reply (not documented). Others get "". */
static void batch_added_ids(const cJSON *models, const cdnapi_set_t *sets, size_t nsets)
{
    char id[CDNAPI_MAX_CONFIG_ID_LEN + 1];
    for (size_t i = 0; i < nsets; i++) {
        const cdnapi_set_t *set = &sets[i];
        size_t adds = 0, found = 0;
        const cJSON *m;
        if (set->added_id == NULL)
            continue;
        set->added_id[0] = 0;
        for (size_t k = 0; k < nsets; k++)
            adds += sets[k].function == set->function && is_add(&sets[k]);
        if (!is_add(set) || adds != 1)
            continue;
        cJSON_ArrayForEach(m, models)
        {
            const char *got = added_model_id(m, set->function, sets, nsets, id);
            if (got != NULL && found++ == 0)
                copy_field(set->added_id, CDNAPI_MAX_CONFIG_ID_LEN + 1, got);
        }
        if (found != 1)
            set->added_id[0] = 0;
    }
}

cdnapi_class_t cdnapi_batch_set(cdnapi_t *api, const char *const *domains, size_t ndomains,
                                const cdnapi_set_t *headers, size_t nheaders,
                                cdnapi_batch_config_t *out, size_t max, size_t *count,
                                cdnapi_result_t *res)
{
    sign_param_t p[2];
    http_response_t resp;
    cJSON *funcs = NULL;
    char *names = NULL, *json = NULL;
    size_t i, k, len = 0, n = 0;

    if (count != NULL) {
        *count = 0;
    }
    if (batch_check(domains, ndomains, headers, nheaders, &len, res) != CDNAPI_SUCCESS) {
        return res->cls;
    }

    names = port_malloc(len);
    funcs = cJSON_CreateArray();
    if (names == NULL || funcs == NULL) {
        goto nomem;
    }
    names[0] = 0;
    for (i = 0, k = 0; i < ndomains; i++) {
        size_t dl = strlen(domains[i]);
        memcpy(names + k, domains[i], dl);
        k += dl;
        names[k++] = i + 1 < ndomains ? ',' : 0;
    }
    for (i = 0; i < nheaders; i++) {
        if (!batch_function(funcs, &headers[i])) {
            goto nomem;
        }
    }
    json = cJSON_PrintUnformatted(funcs);
    /* the tree goes before the call: with several headers it is the
     * larger part, and the call is when TLS holds its buffers */
    cJSON_Delete(funcs);
    funcs = NULL;
    if (json == NULL) {
        goto nomem;
    }
    p[0] = cdnapi_param("DomainNames", names);
    p[1] = cdnapi_param("Functions", json);
    if (call(api, "BatchSetCdnDomainConfig", p, 2, res, &resp)) {
        cJSON *root = cJSON_ParseWithLength((const char *)resp.body, resp.body_len);
        const cJSON *m,
            *models =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root,
                                                                                  "DomainConfigList"),
                                                 "DomainConfigModel");
        if (root == NULL) {
            res->cls = CDNAPI_RETRYABLE;
            copy_field(res->code, sizeof(res->code), "BadResponse");
        } else {
            cJSON_ArrayForEach(m, models)
            {
                if (out != NULL && n < max) {
                    const cJSON *dn = cJSON_GetObjectItemCaseSensitive(m, "DomainName");
                    copy_field(out[n].domain, sizeof(out[n].domain),
                               cJSON_IsString(dn) ? dn->valuestring : "");
                    id_to_text(cJSON_GetObjectItemCaseSensitive(m, "ConfigId"), out[n].config_id,
                               sizeof(out[n].config_id));
                }
                n++;
            }
            if (ndomains == 1)
                batch_added_ids(models, headers, nheaders);
        }
        cJSON_Delete(root);
    }
    http_response_free(&resp);
    port_free(names);
    cJSON_free(json);
    if (count != NULL && res->cls == CDNAPI_SUCCESS) {
        *count = n;
    }
    return res->cls;

nomem:
    port_free(names);
    cJSON_Delete(funcs);
    memset(res, 0, sizeof(*res));
    res->cls = CDNAPI_RETRYABLE;
    copy_field(res->code, sizeof(res->code), "NoMemory");
    copy_field(res->message, sizeof(res->message), "out of memory building the batch");
    return res->cls;
}

cdnapi_class_t cdnapi_batch_set_headers(cdnapi_t *api, const char *const *domains, size_t ndomains,
                                        const cdnapi_header_t *headers, size_t nheaders,
                                        cdnapi_batch_config_t *out, size_t max, size_t *count,
                                        cdnapi_result_t *res)
{
    cdnapi_set_t sets[CDNAPI_MAX_BATCH];
    size_t i, n = headers == NULL ? 0 : nheaders < CDNAPI_MAX_BATCH ? nheaders : CDNAPI_MAX_BATCH;
    /* (more than CDNAPI_MAX_BATCH is refused by the checks, which read none) */
    for (i = 0; i < n; i++) {
        sets[i].function = headers[i].function;
        sets[i].key = headers[i].key;
        sets[i].value = headers[i].value;
        sets[i].config_id = headers[i].config_id;
        sets[i].added_id = NULL;
    }
    return cdnapi_batch_set(api, domains, ndomains, headers == NULL ? NULL : sets, nheaders, out,
                            max, count, res);
}

cdnapi_class_t cdnapi_call_simple(cdnapi_t *api, const char *action, const sign_param_t *params,
                                  size_t count, cdnapi_result_t *res)
{
    http_response_t resp;
    (void)call(api, action, params, count, res, &resp);
    http_response_free(&resp);
    return res->cls;
}

static void json_text(const cJSON *obj, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    copy_field(out, cap, cJSON_IsString(v) ? v->valuestring : "");
}

cdnapi_class_t cdnapi_cert_info(cdnapi_t *api, const char *domain, cdnapi_cert_info_t *info,
                                cdnapi_result_t *res)
{
    sign_param_t p[1];
    http_response_t resp;
    memset(info, 0, sizeof(*info));
    if (domain == NULL || domain[0] == 0) {
        return cdnapi_local_error(res, "MissingParameter", "DomainName is empty");
    }
    p[0] = cdnapi_param("DomainName", domain);
    if (call(api, "DescribeDomainCertificateInfo", p, 1, res, &resp)) {
        cJSON *root = cJSON_ParseWithLength((const char *)resp.body, resp.body_len);
        const cJSON *first;
        if (root == NULL) {
            /* Out of memory or not JSON: unknown, never "no certificate". */
            res->cls = CDNAPI_RETRYABLE;
            copy_field(res->code, sizeof(res->code), "BadResponse");
        }
        first = cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "CertInfos"),
                                             "CertInfo"),
            0);
        if (cJSON_IsObject(first)) {
            json_text(first, "CertName", info->cert_name, sizeof(info->cert_name));
            json_text(first, "CertType", info->cert_type, sizeof(info->cert_type));
            json_text(first, "CertDomainName", info->cert_domain_name,
                      sizeof(info->cert_domain_name));
            json_text(first, "CertExpireTime", info->expire_time, sizeof(info->expire_time));
            json_text(first, "CertStartTime", info->start_time, sizeof(info->start_time));
            id_to_text(cJSON_GetObjectItemCaseSensitive(first, "CertId"), info->cert_id,
                       sizeof(info->cert_id));
            json_text(first, "ServerCertificateStatus", info->status, sizeof(info->status));
            const cJSON *pem = cJSON_GetObjectItemCaseSensitive(first, "ServerCertificate");
            info->has_pem = cJSON_IsString(pem) && pem->valuestring[0];
            if (info->has_pem)
                cdnapi_cert_fingerprint(pem->valuestring, info->fingerprint);
            info->found = true;
        }
        cJSON_Delete(root);
    }
    http_response_free(&resp);
    return res->cls;
}
