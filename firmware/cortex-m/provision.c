/* Factory provisioning on the device, from the manifest built into the
 * image. The schema is the one of tools/provision/README.md; file names
 * ("ca.crt") name files built into the image instead of paths. The host's
 * `cdnagent provision` checks a manifest in full before a line builds images
 * from it; the device still refuses anything the agent's own validation
 * refuses, and says which field. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "app.h"
#include "port.h"

#define LOG_ERR(...) port_log(PORT_LOG_ERROR, "provision", __VA_ARGS__)

const app_blob_t *app_blob(const char *name)
{
    size_t i;
    for (i = 0; i < app_blob_count; i++)
        if (strcmp(app_blobs[i].name, name) == 0)
            return &app_blobs[i];
    return NULL;
}

static const char *str_field(const cJSON *obj, const char *name, const char *path, bool required)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it == NULL) {
        if (required)
            LOG_ERR("manifest: %s.%s: missing", path, name);
        return NULL;
    }
    if (!cJSON_IsString(it)) {
        LOG_ERR("manifest: %s.%s: must be a string", path, name);
        return NULL;
    }
    return it->valuestring;
}

static bool copy_field(char *dst, size_t cap, const cJSON *obj, const char *name, const char *path,
                       bool required)
{
    const char *v = str_field(obj, name, path, required);
    if (v == NULL)
        return !required && cJSON_GetObjectItemCaseSensitive(obj, name) == NULL;
    if (strlen(v) >= cap) {
        LOG_ERR("manifest: %s.%s: longer than %u bytes", path, name, (unsigned)cap - 1u);
        return false;
    }
    strcpy(dst, v);
    return true;
}

static const char *file_field(const cJSON *obj, const char *name, const char *path)
{
    const char *f = str_field(obj, name, path, true);
    const app_blob_t *b;
    if (f == NULL)
        return NULL;
    b = app_blob(f);
    if (b == NULL)
        LOG_ERR("manifest: %s.%s: \"%s\" is not built into the image", path, name, f);
    return b ? b->data : NULL;
}

static bool uint_field(const cJSON *obj, const char *name, uint32_t lo, uint32_t hi, uint32_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it == NULL)
        return true;
    if (!cJSON_IsNumber(it) || it->valuedouble < lo || it->valuedouble > hi ||
        it->valuedouble != (double)(uint32_t)it->valuedouble) {
        LOG_ERR("manifest: retry.%s: must be an integer in %lu..%lu", name, (unsigned long)lo,
                (unsigned long)hi);
        return false;
    }
    *out = (uint32_t)it->valuedouble;
    return true;
}

static agent_status_t settings_from(const cJSON *root, agent_settings_t *s, const char **ca)
{
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(root, "credentials");
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "retry");
    const char *sig = str_field(root, "signature", "$", false);
    uint32_t rate = 0;
    memset(s, 0, sizeof *s);
    queue_policy_default(&s->policy);
    s->rate_milli = RETRY_DEFAULT_RATE_MILLI_PER_S;
    s->signature = SIGN_V3;
    if (!copy_field(s->endpoint, sizeof s->endpoint, root, "endpoint", "$", true))
        return AGENT_ERR_INVALID;
    if (strncmp(s->endpoint, "https://", 8) != 0) {
        LOG_ERR("manifest: $.endpoint: must be https://host[:port] (verified TLS only)");
        return AGENT_ERR_INVALID;
    }
    if (!cJSON_IsObject(cr)) {
        LOG_ERR("manifest: $.credentials: missing or not an object");
        return AGENT_ERR_INVALID;
    }
    if (!copy_field(s->access_key_id, sizeof s->access_key_id, cr, "access_key_id", "credentials",
                    true) ||
        !copy_field(s->access_key_secret, sizeof s->access_key_secret, cr, "access_key_secret",
                    "credentials", true) ||
        !copy_field(s->security_token, sizeof s->security_token, cr, "security_token",
                    "credentials", false))
        return AGENT_ERR_INVALID;
    if (sig != NULL && strcmp(sig, "v1") == 0)
        s->signature = SIGN_V1;
    else if (sig != NULL && strcmp(sig, "v3") != 0) {
        LOG_ERR("manifest: $.signature: must be \"v1\" or \"v3\"");
        return AGENT_ERR_INVALID;
    }
    if (cJSON_IsObject(rt)) {
        uint32_t attempts = s->policy.warn_every;
        if (!uint_field(rt, "base_ms", 10, 600000, &s->policy.base_ms) ||
            !uint_field(rt, "cap_ms", 10, 86400000, &s->policy.cap_ms) ||
            !uint_field(rt, "max_attempts", 1, 65535, &attempts) ||
            !uint_field(rt, "rate_per_s", 1, 100, &rate))
            return AGENT_ERR_INVALID;
        s->policy.warn_every = (uint16_t)attempts;
        if (rate)
            s->rate_milli = rate * 1000u;
    }
    *ca = file_field(root, "ca_bundle", "$");
    return *ca ? AGENT_OK : AGENT_ERR_INVALID;
}

/* An optional string field: false when it is there but not a string (said). */
static bool opt_str(const cJSON *obj, const char *name, const char *path, const char **out)
{
    *out = str_field(obj, name, path, false);
    return *out != NULL || cJSON_GetObjectItemCaseSensitive(obj, name) == NULL;
}

/* One header: set_req_header's {key, value}, or with "rule": "new" an
 * origin_request_header rule (op, duplicate, source), refused as on Linux
 * when a field has the wrong type or a rule's field is on a legacy header. */
static agent_status_t header_from(store_t *st, const char *domain, const cJSON *h, const char *path,
                                  cdnapi_result_t *res)
{
    const char *rule, *op, *source, *v;
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(h, "duplicate");
    memset(res, 0, sizeof *res); /* a field's refusal has no service code */
    const char *k = str_field(h, "key", path, true);
    if (!opt_str(h, "rule", path, &rule) || !opt_str(h, "op", path, &op) ||
        !opt_str(h, "source", path, &source) || !opt_str(h, "value", path, &v) || k == NULL)
        return AGENT_ERR_INVALID;
    bool is_rule = rule != NULL && strcmp(rule, "new") == 0;
    if ((rule != NULL && !is_rule && strcmp(rule, "legacy") != 0) ||
        (!is_rule && (op || source || dup)) || (dup && !cJSON_IsBool(dup))) {
        LOG_ERR("manifest: %s: \"rule\" is \"legacy\" or \"new\"; op, source and duplicate "
                "(true or false) are a \"new\" rule's",
                path);
        return AGENT_ERR_INVALID;
    }
    int k_op = op ? cdnapi_rule_op_parse(op) : CDNAPI_RULE_ADD;
    if (v == NULL && !(is_rule && k_op == CDNAPI_RULE_DELETE)) {
        LOG_ERR("manifest: %s.value: missing", path);
        return AGENT_ERR_INVALID;
    }
    if (!is_rule)
        return agent_header_set(st, domain, k, v, res);
    cdnapi_rule_t r = {(cdnapi_rule_op_t)k_op, cJSON_IsTrue(dup), k, v, source};
    return agent_rule_set(st, domain, &r, res); /* an op that is none: refused there */
}

static agent_status_t domain_from(store_t *st, const cJSON *d, int index, int64_t now_utc)
{
    char path[32];
    const char *name;
    const cJSON *hs, *h, *c;
    agent_status_t rc;
    cdnapi_result_t res;
    int hi = 0;
    snprintf(path, sizeof path, "domains[%d]", index);
    name = str_field(d, "name", path, true);
    if (name == NULL)
        return AGENT_ERR_INVALID;
    hs = cJSON_GetObjectItemCaseSensitive(d, "headers");
    cJSON_ArrayForEach(h, hs)
    {
        rc = header_from(st, name, h, path, &res);
        if (rc != AGENT_OK) {
            LOG_ERR("manifest: %s.headers[%d]: %s (%s)", path, hi, agent_status_str(rc),
                    rc == AGENT_ERR_INVALID ? res.code : "-");
            return rc;
        }
        hi++;
    }
    c = cJSON_GetObjectItemCaseSensitive(d, "certificate");
    if (c != NULL) {
        const char *cert = file_field(c, "cert", path);
        const char *key = file_field(c, "key", path);
        const char *cn = str_field(c, "name", path, false);
        if (cert == NULL || key == NULL)
            return AGENT_ERR_INVALID;
        rc = agent_cert_set(st, name, cn, cert, key, now_utc, &res);
        if (rc != AGENT_OK) {
            LOG_ERR("manifest: %s.certificate: %s (%s)", path, agent_status_str(rc),
                    rc == AGENT_ERR_INVALID ? res.code : "-");
            return rc;
        }
    }
    return AGENT_OK;
}

agent_status_t app_provision(store_t *st, int64_t now_utc)
{
    const app_blob_t *mb = app_blob("manifest.json");
    const cJSON *ds, *d;
    cJSON *root;
    agent_settings_t *s;
    const char *ca = NULL;
    agent_status_t rc;
    int i = 0;
    if (mb == NULL) {
        LOG_ERR("no manifest.json built into the image");
        return AGENT_ERR_NOT_FOUND;
    }
    root = cJSON_ParseWithLength(mb->data, mb->len);
    if (!cJSON_IsObject(root)) {
        LOG_ERR("manifest: not a JSON object");
        cJSON_Delete(root);
        return AGENT_ERR_INVALID;
    }
    /* The domains go first and the settings last: the settings are what
     * makes app_boot treat the device as provisioned, so a provisioning cut
     * short (power, a bad field) is simply done again at the next boot. */
    ds = cJSON_GetObjectItemCaseSensitive(root, "domains");
    rc = AGENT_OK;
    if (!cJSON_IsArray(ds)) {
        LOG_ERR("manifest: $.domains: missing or not an array");
        rc = AGENT_ERR_INVALID;
    }
    if (rc == AGENT_OK)
        cJSON_ArrayForEach(d, ds)
        {
            rc = domain_from(st, d, i++, now_utc);
            if (rc != AGENT_OK)
                break;
        }
    /* Settings hold a 4 KB STS token: heap, not the caller's stack. */
    s = rc == AGENT_OK ? port_malloc(sizeof *s) : NULL;
    if (rc == AGENT_OK)
        rc = s ? settings_from(root, s, &ca) : AGENT_ERR_NOMEM;
    if (rc == AGENT_OK)
        rc = agent_settings_save(st, s, ca);
    if (s) {
        agent_settings_wipe(s);
        port_free(s);
    }
    cJSON_Delete(root);
    return rc;
}
