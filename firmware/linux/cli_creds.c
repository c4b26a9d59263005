/* Whose credentials a command uses; see cli_creds.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_creds.h"
#include "cli_opts.h"
#include "crypto.h"
#include "port.h"
#include "util.h"

/* A refusal: said (cli_usage_error), or only written to ask->why when the
 * caller wants to show it itself (status). */
static int creds_fail(const cli_creds_ask_t *ask, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int creds_fail(const cli_creds_ask_t *ask, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ask->why) {
        snprintf(ask->why, ask->why_cap, "%s", msg);
        return CLI_EXIT_USAGE;
    }
    return cli_usage_error("%s", msg);
}

bool cli_creds_known(const char *want)
{
    return want == NULL || cli_choice_index(CLI_CREDS_CHOICES, want) >= 0;
}

const char *cli_creds_want(const char *cli_want, const char *cli_profile, const char *cfg_want)
{
    return cli_want ? cli_want : cli_profile ? NULL : cfg_want;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* Which profile: see cli_creds.h. NULL (said) when the file's "current"
 * is there but empty, which the aliyun CLI refuses too. */
static const char *profile_name(const cli_creds_ask_t *ask, const cJSON *root, const char *path,
                                const char *cmd)
{
    static const char *const envs[] = {"ALIBABACLOUD_PROFILE", "ALIBABA_CLOUD_PROFILE",
                                       "ALICLOUD_PROFILE"};
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "current");
    if (ask->profile)
        return ask->profile;
    if (ask->cfg_profile)
        return ask->cfg_profile;
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
        if (env_nonempty(envs[i]))
            return env_nonempty(envs[i]);
    if (!cur)
        return "default";
    if (cJSON_IsString(cur) && cur->valuestring[0])
        return cur->valuestring;
    creds_fail(ask,
               "%s: the aliyun CLI configuration %s names no current profile (give "
               "--profile NAME, or aliyun configure)",
               cmd, path);
    return NULL;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The named profile; names gets the names there are, for the message. */
static const cJSON *find_profile(const cJSON *root, const char *name, char *names, size_t cap)
{
    const cJSON *p;
    size_t used = 0;
    names[0] = '\0';
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(root, "profiles"))
    {
        const char *n = json_str(p, "name");
        if (n[0] && strcmp(n, name) == 0)
            return p;
        int w = n[0] ? snprintf(names + used, cap - used, "%s%s", used ? ", " : "", n) : 0;
        used = w < 0 || (size_t)w >= cap - used ? cap - 1 : used + (size_t)w;
    }
    return NULL;
}

/* The profile's keys copied out (AK: id and secret; StsToken: and the
 * token). 0, or a usage error said. */
static int take_profile(cli_creds_t *c, const cJSON *p, const cli_creds_ask_t *ask, const char *cmd)
{
    const char *mode = json_str(p, "mode");
    bool sts = strcmp(mode, "StsToken") == 0;
    if (!mode[0])
        return creds_fail(ask,
                          "%s: aliyun profile %s (%s) has no mode: it is not configured "
                          "yet (aliyun configure --mode AK --profile %s)",
                          cmd, c->profile, c->path, c->profile);
    if (!sts && strcmp(mode, "AK") != 0)
        return creds_fail(ask,
                          "%s: aliyun profile %s (%s) has mode %s; cdnagent reads AK and "
                          "StsToken profiles (aliyun configure --mode AK --profile %s)",
                          cmd, c->profile, c->path, mode, c->profile);
    const char *keys[3] = {json_str(p, "access_key_id"), json_str(p, "access_key_secret"),
                           sts ? json_str(p, "sts_token") : ""};
    if (!keys[0][0] || !keys[1][0] || (sts && !keys[2][0]))
        return creds_fail(ask, "%s: aliyun profile %s (%s) lacks %s (aliyun configure --profile %s)",
                          cmd, c->profile, c->path,
                          !keys[0][0]   ? "access_key_id"
                          : !keys[1][0] ? "access_key_secret"
                                        : "sts_token",
                          c->profile);
    for (int i = 0; i < 3; i++)
        if (keys[i][0] && (c->owned[i] = strdup(keys[i])) == NULL)
            return creds_fail(ask, "%s: out of memory", cmd);
    c->cred.access_key_id = c->owned[0];
    c->cred.access_key_secret = c->owned[1];
    c->cred.security_token = c->owned[2];
    return 0;
}

static int profile_path(cli_creds_t *c, const cli_creds_ask_t *ask, const char *cmd)
{
    const char *home = getenv("HOME");
    int n;
    if (ask->aliyun_config)
        n = snprintf(c->path, sizeof c->path, "%s", ask->aliyun_config);
    else if (home && home[0])
        n = snprintf(c->path, sizeof c->path, "%s%s", home, CLI_ALIYUN_CONFIG);
    else
        return creds_fail(ask,
                          "%s: HOME is not set, so there is no ~" CLI_ALIYUN_CONFIG
                          " (name the file with aliyun_config in the configuration file)",
                          cmd);
    if (n < 0 || (size_t)n >= sizeof c->path)
        return creds_fail(ask, "%s: the aliyun CLI configuration's path is too long", cmd);
    return 0;
}

/* The file's text, parsed (NULL: said why). fallback: auto came here for
 * want of the others, so a missing file means no credentials at all. */
static cJSON *read_profiles(cli_creds_t *c, const cli_creds_ask_t *ask, bool fallback,
                            const char *cmd)
{
    int why;
    size_t len = 0;
    char *text = cli_read_text(c->path, CLI_ALIYUN_CONFIG_MAX, &len, &why);
    if (!text && fallback && why == CLI_READ_ERRNO && errno == ENOENT) {
        creds_fail(ask,
                   "%s: no credentials: %sALIBABA_CLOUD_ACCESS_KEY_ID and _SECRET are not "
                   "set, and there is no aliyun CLI configuration %s (aliyun configure)",
                   cmd, ask->image ? "the image holds none (cdnagent provision), " : "", c->path);
        return NULL;
    }
    if (!text) {
        creds_fail(ask, "%s: cannot read the aliyun CLI configuration %s: %s%s", cmd, c->path,
                   why == CLI_READ_TOO_BIG    ? "larger than 256 KB"
                   : why == CLI_READ_NOT_TEXT ? "not a text file"
                                              : strerror(errno),
                   why == CLI_READ_ERRNO && errno == ENOENT ? " (aliyun configure writes it)" : "");
        return NULL;
    }
    cJSON *root = cJSON_Parse(text); /* (what cJSON frees it wipes: cli_json_hooks) */
    if (!cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; !root && at && p < at && *p; p++)
            line += *p == '\n';
        if (root)
            creds_fail(ask, "%s: the aliyun CLI configuration %s is not a JSON object", cmd,
                       c->path);
        else
            creds_fail(ask, "%s: the aliyun CLI configuration %s is not valid JSON (near line %d)",
                       cmd, c->path, line);
        cJSON_Delete(root);
        root = NULL;
    }
    crypto_wipe(text, len);
    free(text);
    return root;
}

static int load_profile(cli_creds_t *c, const cli_creds_ask_t *ask, bool fallback, const char *cmd)
{
    char names[256];
    int rc = profile_path(c, ask, cmd);
    cJSON *root = rc ? NULL : read_profiles(c, ask, fallback, cmd);
    if (!root)
        return rc ? rc : CLI_EXIT_USAGE;
    const char *name = profile_name(ask, root, c->path, cmd);
    const cJSON *p = name ? find_profile(root, name, names, sizeof names) : NULL;
    if (!name)
        rc = CLI_EXIT_USAGE;
    else if (!name[0] || strlen(name) > CLI_ALIYUN_PROFILE_MAX)
        rc = creds_fail(ask, "%s: an aliyun profile name has 1 to %u bytes", cmd,
                        CLI_ALIYUN_PROFILE_MAX);
    if (!rc) {
        memcpy(c->profile, name, strlen(name) + 1);
        rc = p ? take_profile(c, p, ask, cmd)
               : creds_fail(ask, "%s: aliyun profile %s is not in %s (it has: %s)", cmd, name,
                            c->path, names[0] ? names : "no named profiles");
    }
    cJSON_Delete(root);
    return rc;
}

/* auto: the image's pair, else the environment's, else a profile (unless
 * ALIBABA_CLOUD_IGNORE_PROFILE=TRUE says there is none to read). */
enum { WANT_AUTO, WANT_PROVISIONED, WANT_ENV, WANT_PROFILE }; /* CLI_CREDS_CHOICES */

static int want_index(const cli_creds_ask_t *ask)
{
    return ask->want ? cli_choice_index(CLI_CREDS_CHOICES, ask->want) : WANT_AUTO;
}

static cli_cred_source_t resolve(const cli_creds_ask_t *ask)
{
    int want = want_index(ask);
    const char *ignore = getenv("ALIBABA_CLOUD_IGNORE_PROFILE");
    if (ask->profile || want == WANT_PROFILE)
        return CLI_CRED_PROFILE;
    if (want == WANT_PROVISIONED)
        return CLI_CRED_PROVISIONED;
    if (want == WANT_ENV)
        return CLI_CRED_ENV;
    if (ask->provisioned)
        return CLI_CRED_PROVISIONED;
    if (env_nonempty("ALIBABA_CLOUD_ACCESS_KEY_ID") ||
        (ignore && util_ascii_eq_nocase(ignore, "TRUE")))
        return CLI_CRED_ENV;
    return CLI_CRED_PROFILE;
}

static int take_env(cli_creds_t *c, const cli_creds_ask_t *ask, const char *cmd)
{
    c->cred.access_key_id = env_nonempty("ALIBABA_CLOUD_ACCESS_KEY_ID");
    c->cred.access_key_secret = env_nonempty("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    c->cred.security_token = env_nonempty("ALIBABA_CLOUD_SECURITY_TOKEN");
    if (c->cred.access_key_id && c->cred.access_key_secret)
        return 0;
    if (c->cred.access_key_id)
        return creds_fail(ask,
                          "%s: the environment sets ALIBABA_CLOUD_ACCESS_KEY_ID but not "
                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                          cmd);
    if (want_index(ask) == WANT_ENV)
        return creds_fail(ask,
                          "%s: credentials env: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                          cmd);
    return creds_fail(ask,
                      "%s: no credentials: %sALIBABA_CLOUD_ACCESS_KEY_ID and _SECRET are not "
                      "set, and ALIBABA_CLOUD_IGNORE_PROFILE rules out an aliyun profile",
                      cmd, ask->image ? "the image holds none (cdnagent provision), " : "");
}

static int take_provisioned(cli_creds_t *c, const cli_creds_ask_t *ask, const char *cmd)
{
    if (!ask->provisioned)
        return creds_fail(ask,
                          "%s: --credentials provisioned: the image holds no provisioned "
                          "credentials (cdnagent provision)",
                          cmd);
    c->cred = *ask->provisioned;
    if (c->cred.security_token && !c->cred.security_token[0])
        c->cred.security_token = NULL;
    if (!c->cred.access_key_id || !c->cred.access_key_id[0] || !c->cred.access_key_secret ||
        !c->cred.access_key_secret[0])
        return creds_fail(ask,
                          "%s: the image's provisioned credentials are empty (cdnagent "
                          "provision)",
                          cmd);
    return 0;
}

int cli_creds_pick(cli_creds_t *c, const cli_creds_ask_t *ask, const char *cmd)
{
    int want = want_index(ask);
    memset(c, 0, sizeof *c);
    if (want < 0)
        return creds_fail(ask, "%s: credentials must be %s", cmd, CLI_CREDS_CHOICES);
    if (ask->profile && !ask->profile[0])
        return creds_fail(ask, "%s: --profile needs a profile's name", cmd);
    if (ask->profile && want != WANT_AUTO && want != WANT_PROFILE)
        return creds_fail(ask, "%s: --profile and --credentials %s contradict each other", cmd,
                          ask->want);
    c->source = resolve(ask);
    bool fallback = !ask->profile && want == WANT_AUTO;
    int rc = c->source == CLI_CRED_PROVISIONED ? take_provisioned(c, ask, cmd)
             : c->source == CLI_CRED_ENV       ? take_env(c, ask, cmd)
                                               : load_profile(c, ask, fallback, cmd);
    if (rc)
        cli_creds_free(c);
    return rc;
}

const char *cli_creds_describe(const cli_creds_t *c, char *buf, size_t cap)
{
    switch (c->source) {
    case CLI_CRED_PROVISIONED: return "provisioned in the image";
    case CLI_CRED_ENV: return "environment (ALIBABA_CLOUD_*)";
    case CLI_CRED_PROFILE:
        snprintf(buf, cap, "aliyun profile %s (%s)", c->profile, c->path);
        return buf;
    case CLI_CRED_NONE: break;
    }
    return "none";
}

void cli_creds_say(const cli_creds_t *c, const char *cmd)
{
    char buf[sizeof c->path + CLI_ALIYUN_PROFILE_MAX + 32];
    bool env_unused = c->source != CLI_CRED_ENV && env_nonempty("ALIBABA_CLOUD_ACCESS_KEY_ID");
    cli_say(stderr, PORT_LOG_INFO, "cdnagent: %s: credentials: %s, AccessKeyId %s%s", cmd,
            cli_creds_describe(c, buf, sizeof buf), c->cred.access_key_id,
            env_unused ? " (the environment's ALIBABA_CLOUD_* are not used: --credentials env "
                         "would)"
                       : "");
}

void cli_creds_free(cli_creds_t *c)
{
    for (int i = 0; i < 3; i++) {
        if (c->owned[i]) {
            crypto_wipe(c->owned[i], strlen(c->owned[i]));
            free(c->owned[i]);
            c->owned[i] = NULL;
        }
    }
    memset(&c->cred, 0, sizeof c->cred);
}
