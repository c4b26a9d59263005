/*
 * cli.h — the cdnagent command-line tool (Linux image).
 *
 * Each subcommand lives in its own cmd_*.c file and is listed once in the
 * table in main.c. Exit codes are shared by every subcommand.
 */
#ifndef CDNAGENT_CLI_H
#define CDNAGENT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent.h"
#include "store.h"
#include "util.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* the operation ran and failed (or found damage) */
    CLI_EXIT_USAGE = 2,  /* bad arguments, missing credentials, bad input */
};

/* The global options and the configuration file's settings: built-in
 * defaults, then the file, then the command line, each overriding. */
typedef struct {
    const char *flash_path;      /* --flash PATH; config flash */
    int verbose;                 /* -v / --verbose; config log_level = debug */
    const char *device_key_path; /* --device-key PATH; config device_key (default FLASH.key) */
    const char *endpoint;        /* config endpoint: sync/run's --endpoint default */
    const char *ca_file;         /* config ca_file: sync/run's --ca-file default */
    const char *credentials;     /* config credentials: sync/run's --credentials default */
    const char *profile;         /* config profile: the aliyun CLI profile (--profile default) */
    const char *aliyun_config;   /* config aliyun_config: instead of ~/.aliyun/config.json */
    int log_level;               /* port_log_level_t; config log_level (default info) */
    const char *config_path;     /* --config FILE */
} cli_globals_t;

/* The configuration file: "key = value" lines, '#' comments. Keys: flash,
 * device_key, endpoint, ca_file, credentials, profile, aliyun_config,
 * log_level. Loaded from
 * --config FILE, else $CDNAGENT_CONFIG, else CLI_DEFAULT_CONFIG when it
 * exists. 0, or -1 (said: the file, the line and what is wrong). */
#define CLI_DEFAULT_CONFIG "/etc/cdnagent/cdnagent.conf"
#define CLI_CONFIG_MAX (64u * 1024u)
int cli_config_load(cli_globals_t *g, const char *path, int required);

/* Read a whole text file into a malloc'ed, NUL-terminated buffer of at
 * most max bytes. On failure returns NULL and *why says: CLI_READ_ERRNO
 * (see errno), CLI_READ_TOO_BIG, CLI_READ_NOT_TEXT (a NUL inside). *len
 * (may be NULL) receives the length including the terminating NUL. */
enum { CLI_READ_ERRNO = 0, CLI_READ_TOO_BIG = 1, CLI_READ_NOT_TEXT = 2 };
char *cli_read_text(const char *path, size_t max, size_t *len, int *why);

/* Write s as a JSON string literal (quotes, \" \\ and control characters
 * escaped; NULL writes ""). */
void cli_json_str(FILE *out, const char *s);

/* --json: stdout carries exactly one JSON document, the command's or, when
 * it fails with an error said, {"Code":..,"Message":..,"RequestId":..} as
 * the service shapes its errors. cli_json_begin (when argv asks for --json
 * before any "--") holds what the command prints; cli_json_end(rc) writes
 * it, or the first error recorded when rc is not 0. cli_json_error records
 * an error (the service's own, for call; the first one counts); without
 * --json it does nothing. --help wins over --json (help is text). A string
 * is written as valid UTF-8 (a byte that is not is U+FFFD). Codes of the
 * tool's own errors: */
#define CLI_JSON_CODE_INPUT "cdnagent.InvalidInput" /* exit 2 */
#define CLI_JSON_CODE_FAILED "cdnagent.Failed"      /* exit 1 */
void cli_json_begin(int argc, char **argv);
void cli_json_error(const char *code, const char *message, const char *request_id);
/* Returns rc, or CLI_EXIT_FAILED when the output could not be written. */
int cli_json_end(int rc);
/* cJSON frees wiped (its documents hold secrets): set once, in main. */
void cli_json_hooks(void);

/* A certificate state for output: "-" / "on" / "off", or with json
 * null / "on" / "off" (quoted). */
const char *cli_cert_state(bool present, bool on, int json);
/* A header view's desired or delivered value as a person reads it: an
 * origin_request_header rule's spec as "add a,b (duplicate on)", "rewrite ^a
 * -> b", "delete" (in buf); a legacy value as it is. NULL stays NULL. */
const char *cli_header_text(const char *value, bool rule, char *buf, size_t cap);

/* A UTC time as "YYYY-MM-DD"; false (buf "") when it cannot be. */
bool cli_iso_date(int64_t utc, char *buf, size_t cap);
/* A desired certificate's validity for a line (", valid until DATE (N days
 * left)", ", EXPIRED DATE (N days ago)", "" when unknown or off), and its
 * JSON fields (cas_id, not_after, days_left, unsure) after others. */
void cli_cert_validity(const agent_cert_view_t *c, int64_t now, char *buf, size_t cap);
void cli_cert_json_fields(FILE *out, const agent_cert_view_t *c, int64_t now);
/* Which action pushes certificates, in words. */
const char *cli_cert_api_text(agent_cert_api_t api);

/* Make sure the device key exists (created, mode 0600, on first use of an
 * edit that seals a secret). st: the image the edit goes to, or NULL for
 * a new one. A missing key is created only when st holds no sealed record:
 * a new key could not open them, and the image would end up with secrets
 * under two keys. 0 on success; prints one line otherwise. */
int cli_ensure_device_key(const cli_globals_t *g, store_t *st);

/* Default flash image path when --flash is not given. */
#define CLI_DEFAULT_FLASH "cdnagent.flash"
#define CLI_DEFAULT_ENDPOINT "https://cdn.aliyuncs.com"
#define CLI_DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"
#define CLI_MAX_CA_BYTES (512u * 1024u) /* Debian's whole bundle is 219,597 B */
/* Bounds of the numeric options, the same in every command that has them. */
#define CLI_TIMEOUT_MS_MAX 600000u  /* one call: 10 minutes */
#define CLI_MAX_WAIT_S_MAX 86400u   /* sync's wait for a back-off: a day */
#define CLI_RATE_MAX 100000u        /* calls per second */
#define CLI_SPLAY_S_MAX 86400u      /* a day: a longer start delay is a mistake */
#define CLI_BACKOFF_MS_MAX 3600000u /* retry delays: an hour */

/* One line of run's or sync's account on out (stdout: results; stderr:
 * the log), with the priority journald reads when out is the journal and a
 * timestamp when it is a terminal (port_posix_log_prefix). */
/* Lines of cli_say above this level are left out (configuration log_level;
 * -v: debug). */
void cli_set_log_level(int level);
void cli_say(FILE *out, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* systemd's notification protocol (Type=notify): send state ("READY=1",
 * "WATCHDOG=1", "STOPPING=1", "STATUS=...") to $NOTIFY_SOCKET; 0 when sent
 * or when not under systemd, -1 when it could not be. cli_watchdog_ms: the
 * watchdog interval systemd asks for (WATCHDOG_USEC), 0 when none. */
int cli_notify(const char *state);
uint64_t cli_watchdog_ms(void);

/* Print "cdnagent: <message>" to stderr (and record it for --json) and
 * return CLI_EXIT_USAGE; cli_error the same for an operation that failed,
 * returning CLI_EXIT_FAILED. */
int cli_usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
int cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;


/* Subcommands: argv[0] is the subcommand name. */
int cmd_request(int argc, char **argv, const cli_globals_t *g);
int cmd_call(int argc, char **argv, const cli_globals_t *g);
int cmd_fsck(int argc, char **argv, const cli_globals_t *g);
int cmd_format(int argc, char **argv, const cli_globals_t *g);
int cmd_header(int argc, char **argv, const cli_globals_t *g);
int cmd_cert(int argc, char **argv, const cli_globals_t *g);
int cmd_status(int argc, char **argv, const cli_globals_t *g);
int cmd_queue(int argc, char **argv, const cli_globals_t *g);
int cmd_sync(int argc, char **argv, const cli_globals_t *g);
int cmd_run(int argc, char **argv, const cli_globals_t *g);
int cmd_provision(int argc, char **argv, const cli_globals_t *g);
int cmd_inspect(int argc, char **argv, const cli_globals_t *g);
int cmd_rotate_key(int argc, char **argv, const cli_globals_t *g);

#endif /* CDNAGENT_CLI_H */
