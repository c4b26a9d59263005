/*
 * cli_creds.h — whose credentials sync, run, status and call use, chosen
 * so that they cannot surprise: one source, never a mix, said on stderr
 * with the AccessKeyId (never the secret).
 *
 * Sources: the image's provisioned pair; the environment
 * (ALIBABA_CLOUD_ACCESS_KEY_ID, _SECRET, _SECURITY_TOKEN); an aliyun CLI
 * profile (~/.aliyun/config.json, modes AK and StsToken). "auto" takes the
 * first of provisioned, environment, profile that exists (the profile only
 * when ALIBABA_CLOUD_IGNORE_PROFILE is not TRUE); a --profile NAME on the
 * command line means the profile. Which profile: --profile, else the
 * configuration file's profile, else $ALIBABACLOUD_PROFILE,
 * $ALIBABA_CLOUD_PROFILE, $ALICLOUD_PROFILE (the aliyun CLI's order), else
 * the file's "current".
 */
#ifndef CDNAGENT_CLI_CREDS_H
#define CDNAGENT_CLI_CREDS_H

#include <stdbool.h>
#include <stddef.h>

#include "sign.h"

typedef enum {
    CLI_CRED_NONE = 0,
    CLI_CRED_PROVISIONED,
    CLI_CRED_ENV,
    CLI_CRED_PROFILE,
} cli_cred_source_t;

/* The aliyun CLI's file, under $HOME; profile names it holds are at most
 * this long; the file at most this big. */
#define CLI_ALIYUN_CONFIG "/.aliyun/config.json"
#define CLI_ALIYUN_PROFILE_MAX 64u
#define CLI_ALIYUN_CONFIG_MAX (256u * 1024u)

typedef struct {
    cli_cred_source_t source;
    sign_credentials_t cred; /* points into the image's settings, the environment or owned */
    char profile[CLI_ALIYUN_PROFILE_MAX + 1]; /* the profile's name (source PROFILE) */
    char path[4096];                          /* and its file */
    char *owned[3]; /* a profile's id, secret, token: heap copies, wiped on free */
} cli_creds_t;

/* What was asked: want is "auto" (or NULL), "provisioned", "env" or
 * "profile" (the command line's, else the configuration file's; see
 * cli_creds_want); profile is the command line's --profile (forces the
 * profile), cfg_profile the configuration file's (names the profile when
 * one is read); aliyun_config a file instead of ~/.aliyun/config.json (or
 * NULL); provisioned the image's credentials (NULL when it has none);
 * image false for a command without one (call). */
typedef struct {
    const char *want;
    const char *profile;
    const char *cfg_profile;
    const char *aliyun_config;
    const sign_credentials_t *provisioned;
    bool image;
    char *why; /* NULL: a refusal is said; else written here (why_cap bytes) */
    size_t why_cap;
} cli_creds_ask_t;

/* The words of want, for --credentials and the configuration file. */
#define CLI_CREDS_CHOICES "auto|provisioned|env|profile"

/* True for NULL and the four words want knows. */
bool cli_creds_known(const char *want);

/* The want of a command line (its --credentials, its --profile) over the
 * configuration file's credentials: a command-line --profile alone asks
 * for the profile whatever the file says. */
const char *cli_creds_want(const char *cli_want, const char *cli_profile, const char *cfg_want);

/* Pick per ask. 0 and c filled; or CLI_EXIT_USAGE with one line said
 * (prefixed "cdnagent: CMD: ", or into ask->why) naming what is missing
 * and the fix. */
int cli_creds_pick(cli_creds_t *c, const cli_creds_ask_t *ask, const char *cmd);

/* "provisioned in the image", "environment (ALIBABA_CLOUD_*)", "aliyun
 * profile NAME (FILE)": for messages and status. */
const char *cli_creds_describe(const cli_creds_t *c, char *buf, size_t cap);

/* The line sync, run and call say on stderr: the source and the
 * AccessKeyId, and that set ALIBABA_CLOUD_* went unused when they did. */
void cli_creds_say(const cli_creds_t *c, const char *cmd);

/* Wipe and free what c owns; safe on a zeroed or already freed c. */
void cli_creds_free(cli_creds_t *c);

#endif /* CDNAGENT_CLI_CREDS_H */
