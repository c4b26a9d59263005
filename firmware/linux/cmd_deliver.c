/* cdnagent sync|run: the agent's delivery loop on the Linux image.
 *
 * sync delivers until the queue is empty (exit 0, and only when the store
 * says so), or until only work that waits longer than --max-wait is left,
 * or until the configuration is refused (exit 1 with the reason).
 *
 * run is the daemon. It reloads its configuration on SIGHUP and by itself
 * when the provisioned settings, the CA bundle file or the device key file
 * change; a configuration that does not load is reported and the one in use
 * is kept. A new configuration is a new agent, so changes it had parked as
 * blocked are tried again. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "cli_creds.h"
#include "cli_opts.h"
#include "cli_watch.h"
#include "cli_flash.h"
#include "port.h"

/* Largest reply accepted: it bounds a domain's read-back, about 5,000
 * header configs with short values. */
#define CLI_MAX_REPLY_BYTES (1024u * 1024u)
/* How often run looks for new edits and a changed configuration. */
#define RUN_IDLE_CHECK_MS 1000u

typedef struct {
    const char *endpoint, *ca_file; /* NULL: from the provisioned settings, else defaults */
    int insecure, sig_given, policy_given, rate_given;
    const char *credentials;                 /* --credentials (cli_creds.h), NULL: auto */
    const char *profile;                     /* --profile */
    const char *cfg_profile, *aliyun_config; /* the configuration file's */
    const char *cfg_endpoint, *cfg_ca_file;  /* the configuration file's, below the image's */
    sign_version_t sig;
    uint32_t timeout_ms, max_wait_s, rate_milli, base_ms, cap_ms, warn_every, splay_s;
} deliver_opts_t;

static volatile sig_atomic_t got_term, got_hup;
/* The first SIGINT or SIGTERM lets the call in flight finish (its outcome is
 * then recorded); a second one abandons it at once, which is as safe as a
 * power cut: the store is power-loss safe and the change's in-flight mark
 * makes the next sync or run read the domain back before sending again.
 * Only async-signal-safe calls here (write, _exit). */
static void on_term(int sig)
{
    static const char first[] = "cdnagent: stopping: finishing the call in flight "
                                "(Ctrl-C again abandons it; its outcome is then settled by "
                                "read-back)\n";
    static const char second[] = "cdnagent: abandoned the call in flight; the next sync or run "
                                 "reads its outcome back\n";
    (void)sig;
    if (got_term) {
        (void)!write(STDERR_FILENO, second, sizeof second - 1);
        _exit(130);
    }
    got_term = 1;
    (void)!write(STDERR_FILENO, first, sizeof first - 1);
}
static void on_hup(int sig)
{
    (void)sig;
    got_hup = 1;
}

/* Every retry is a warning with its reason and back-off: a daemon that
 * retries in silence looks healthy when it is not. */
static void print_retry(const agent_event_t *ev)
{
    cli_say(stderr, PORT_LOG_WARN, "retry     %s %s: %s %s (attempt %u, next in %.1f s)",
            ev->domain, ev->what, ev->detail, ev->message, ev->attempts, ev->retry_in_ms / 1000.0);
    if (ev->warn)
        cli_say(stderr, PORT_LOG_WARN,
                "cdnagent: warning: %s %s: still not delivered after %u attempts: %s: %s "
                "(retrying; next in %.1f s)",
                ev->domain, ev->what, ev->attempts, ev->detail, ev->message,
                ev->retry_in_ms / 1000.0);
}


static store_status_t lock_cb(void *ctx)
{
    return cli_flash_lock(ctx);
}
static void unlock_cb(void *ctx)
{
    cli_flash_unlock(ctx);
}

/* sync and run take the same options. */
static const cli_opt_t deliver_opts[] = {
    {"endpoint", 0, CLI_OPT_STRING, "URL", 0, 0,
     "the API endpoint (default: the image's, else " CLI_DEFAULT_ENDPOINT ")"},
    {"ca-file", 0, CLI_OPT_STRING, "F", 0, 0,
     "CA bundle to verify it (default: the image's, else " CLI_DEFAULT_CA ")"},
    {"insecure", 0, CLI_OPT_FLAG, NULL, 0, 0, "no TLS verification (warns on every call)"},
    {"credentials", 0, CLI_OPT_CHOICE, CLI_CREDS_CHOICES, 0, 0,
     "whose credentials (default auto: the image's, else the environment's, else the aliyun "
     "CLI profile's)"},
    {"profile", 0, CLI_OPT_STRING, "NAME", 0, 0,
     "the aliyun CLI profile (~/.aliyun/config.json, AK or StsToken) to use"},
    {"signature", 0, CLI_OPT_CHOICE, CLI_SIGNATURE_CHOICES, 0, 0,
     "signature version (default: the image's, "
     "else v3)"},
    {"timeout-ms", 0, CLI_OPT_NUMBER, "N", 1, CLI_TIMEOUT_MS_MAX,
     "one call's time limit (default 30000)"},
    {"max-wait", 0, CLI_OPT_NUMBER, "S", 1, CLI_MAX_WAIT_S_MAX,
     "sync: give up waiting for a back-off after S seconds (default 60)"},
    {"rate", 0, CLI_OPT_NUMBER, "N", 1, CLI_RATE_MAX,
     "calls per second at most (default: the image's, else 10)"},
    {"splay", 0, CLI_OPT_NUMBER, "S", 0, CLI_SPLAY_S_MAX,
     "the first call waits a random part of S seconds, so that a fleet started together "
     "spreads its calls (default 0)"},
    {"backoff-base-ms", 0, CLI_OPT_NUMBER, "N", 1, CLI_BACKOFF_MS_MAX,
     "first retry delay (default: the image's, else 1000)"},
    {"backoff-cap-ms", 0, CLI_OPT_NUMBER, "N", 1, CLI_BACKOFF_MS_MAX,
     "longest retry delay (default: the image's, else 300000)"},
    {"warn-every", 0, CLI_OPT_NUMBER, "N", 1, 65535,
     "a warning every N failed attempts of a change (default: the image's, else 20)"},
    {"max-attempts", 0, CLI_OPT_NUMBER, "N", 1, 65535, "the old name of --warn-every"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t sync_cmd =
    {"sync",
     "",
     "Deliver the queued changes until none is left (exit 0 only when all are "
     "delivered).",
     deliver_opts,
     0,
     0};
static const cli_command_t run_cmd =
    {"run",
     "",
     "The daemon: deliver changes as they come (SIGTERM stops; SIGHUP reloads the "
     "settings, the CA bundle and the device key).",
     deliver_opts,
     0,
     0};

static int parse_deliver_opts(int argc, char **argv, deliver_opts_t *o, const char *cmd)
{
    queue_policy_t policy;
    cli_parsed_t p;
    memset(o, 0, sizeof *o);
    int rc = cli_parse(strcmp(cmd, "run") == 0 ? &run_cmd : &sync_cmd, argc, argv, &p);
    if (rc != CLI_PARSE_OK)
        return rc;
    queue_policy_default(&policy); /* the agent's defaults, not a copy of them */
    o->endpoint = cli_opt_str(&p, "endpoint");
    o->ca_file = cli_opt_str(&p, "ca-file");
    o->insecure = cli_opt_given(&p, "insecure");
    o->credentials = cli_opt_str(&p, "credentials"); /* (a word of CLI_CREDS_CHOICES) */
    o->profile = cli_opt_str(&p, "profile");
    o->sig_given = cli_opt_given(&p, "signature");
    o->sig = cli_opt_choice(&p, "signature", CLI_SIGNATURE_V3) == CLI_SIGNATURE_V1 ? SIGN_V1
                                                                                   : SIGN_V3;
    o->timeout_ms = cli_opt_num(&p, "timeout-ms", HTTP_DEFAULT_TIMEOUT_MS);
    o->max_wait_s = cli_opt_num(&p, "max-wait", 60);
    o->rate_given = cli_opt_given(&p, "rate");
    o->rate_milli = o->rate_given ? cli_opt_num(&p, "rate", 0) * 1000u
                                  : RETRY_DEFAULT_RATE_MILLI_PER_S;
    o->splay_s = cli_opt_num(&p, "splay", 0);
    if (strcmp(cmd, "sync") == 0 && o->splay_s > o->max_wait_s)
        return cli_usage_error("sync: --splay %u is longer than --max-wait %u: sync would give "
                               "up before its first call (raise --max-wait)",
                               (unsigned)o->splay_s, (unsigned)o->max_wait_s);
    o->base_ms = cli_opt_num(&p, "backoff-base-ms", policy.base_ms);
    o->cap_ms = cli_opt_num(&p, "backoff-cap-ms", policy.cap_ms);
    o->warn_every = cli_opt_num(&p, "warn-every",
                                cli_opt_num(&p, "max-attempts", policy.warn_every));
    o->policy_given = (cli_opt_given(&p, "backoff-base-ms") ? 1 : 0) |
                      (cli_opt_given(&p, "backoff-cap-ms") ? 2 : 0) |
                      (cli_opt_given(&p, "warn-every") || cli_opt_given(&p, "max-attempts") ? 4 : 0);
    return 0;
}

/* Heap-allocated: the agent borrows its credentials and CA from it, so it
 * must never move while the agent lives. */
typedef struct {
    agent_t *agent;
    char host[HTTP_MAX_HOST_LEN + 1];
    char *ca;
    size_t ca_len;
    const char *ca_path;  /* the bundle's file, NULL when it came from the image */
    const char *endpoint; /* the endpoint in use, for messages */
    agent_settings_t set; /* provisioned settings; secrets wiped on close */
    int have_set;
    cli_creds_t creds; /* the credentials in use (a profile's are owned here) */
} deliverer_t;

static void deliverer_close(deliverer_t *d)
{
    if (!d)
        return;
    agent_free(d->agent);
    cli_creds_free(&d->creds);
    free(d->ca);
    agent_settings_wipe(&d->set);
    free(d);
}

static void event_cb(void *ctx, const agent_event_t *ev)
{
    const deliverer_t *d = ctx;
    const char *rid = ev->request_id[0] ? ev->request_id : "-";
    switch (ev->kind) {
    case AGENT_EV_DELIVERED:
        cli_say(stdout, PORT_LOG_INFO, "delivered %s %s: %s", ev->domain, ev->what, ev->detail);
        break;
    case AGENT_EV_RETRY: print_retry(ev); break;
    case AGENT_EV_FAILED:
        cli_say(stdout, PORT_LOG_ERROR, "failed    %s %s: error: %s: %s (RequestId %s)", ev->domain,
                ev->what, ev->detail, ev->message, rid);
        break;
    case AGENT_EV_BLOCKED:
        /* a certificate that does not verify: say which bundle judged it */
        if (strcmp(ev->detail, "Transport.cert-verify") == 0)
            cli_say(stdout, PORT_LOG_ERROR,
                    "blocked   %s %s: error: %s: %s; CA bundle: %s (--ca-file names another); "
                    "tried again when the configuration changes, on SIGHUP, or by the next sync",
                    ev->domain, ev->what, ev->detail, ev->message,
                    d->ca_path ? d->ca_path : "the image's provisioned bundle");
        else
            cli_say(stdout, PORT_LOG_ERROR,
                    "blocked   %s %s: error: %s: %s (RequestId %s); fix the configuration "
                    "(credentials, CA bundle, endpoint, device key): it is tried again when "
                    "the configuration changes, on SIGHUP, or by the next sync",
                    ev->domain, ev->what, ev->detail, ev->message, rid);
        break;
    case AGENT_EV_EXPIRY:
        cli_say(stderr, ev->warn ? PORT_LOG_WARN : PORT_LOG_ERROR, "%s  %s certificate: %s%s",
                ev->warn ? "warning" : "error  ", ev->domain, ev->detail,
                ev->warn ? " (renew it: cert set, or a watched file)" : " (renew it now)");
        break;
    case AGENT_EV_SWITCHED:
        cli_say(stderr, PORT_LOG_WARN,
                "cdnagent: the service refused SetDomainServerCertificate (%s): this device "
                "pushes certificates with SetCdnDomainSSLCertificate from now on (cdnagent "
                "status shows it)",
                ev->detail);
        break;
    case AGENT_EV_STORE:
        cli_say(stderr, PORT_LOG_ERROR, "cdnagent: store error %s: %s; delivery paused for %.1f s%s",
                ev->message, ev->detail, ev->retry_in_ms / 1000.0,
                strstr(ev->detail, "full") ? " (the image is full: cdnagent fsck shows its space; "
                                             "remove headers, or move to a larger image)"
                                           : "");
        break;
    }
}

/* Policy, signature and rate: options first, then the provisioned values. */
static void settle_options(deliver_opts_t *o, const deliverer_t *d, agent_config_t *cfg)
{
    uint32_t base = o->base_ms, cap = o->cap_ms, warn = o->warn_every, rate = o->rate_milli;
    sign_version_t sig = o->sig;
    if (d->have_set) {
        if (!o->sig_given)
            sig = d->set.signature == SIGN_V1 ? SIGN_V1 : SIGN_V3;
        if (!(o->policy_given & 1) && d->set.policy.base_ms)
            base = d->set.policy.base_ms;
        if (!(o->policy_given & 2) && d->set.policy.cap_ms)
            cap = d->set.policy.cap_ms;
        if (!(o->policy_given & 4) && d->set.policy.warn_every)
            warn = d->set.policy.warn_every;
        if (!o->rate_given && d->set.rate_milli)
            rate = d->set.rate_milli;
    }
    cfg->signature = sig;
    cfg->http_timeout_ms = o->timeout_ms;
    cfg->rate_milli = rate;
    cfg->start_splay_ms = o->splay_s * 1000u;
    cfg->policy.base_ms = base;
    cfg->policy.cap_ms = cap;
    cfg->policy.warn_every = (uint16_t)(warn > 65535 ? 65535 : warn);
}

/* Credentials: see cli_creds.h. The agent borrows them from d->creds. */
static int pick_credentials(deliverer_t *d, const deliver_opts_t *o, agent_config_t *cfg,
                            const char *cmd)
{
    sign_credentials_t prov = {d->set.access_key_id, d->set.access_key_secret,
                               d->set.security_token};
    cli_creds_ask_t ask = {.want = o->credentials,
                           .profile = o->profile,
                           .cfg_profile = o->cfg_profile,
                           .aliyun_config = o->aliyun_config,
                           .provisioned = d->have_set ? &prov : NULL,
                           .image = true};
    int rc = cli_creds_pick(&d->creds, &ask, cmd);
    if (rc)
        return rc;
    cfg->credentials = d->creds.cred;
    cli_creds_say(&d->creds, cmd);
    return 0;
}

/* The CA bundle: --ca-file, else the image's, else the system's. */
static int pick_ca(deliverer_t *d, const deliver_opts_t *o, char *flash_ca, const char *cmd)
{
    if (!o->ca_file && flash_ca) {
        d->ca_len = strlen(flash_ca) + 1;
        d->ca = malloc(d->ca_len);
        if (!d->ca)
            return cli_usage_error("%s: out of memory for the CA bundle", cmd);
        memcpy(d->ca, flash_ca, d->ca_len);
        return 0;
    }
    d->ca_path = o->ca_file ? o->ca_file : o->cfg_ca_file ? o->cfg_ca_file : CLI_DEFAULT_CA;
    int why;
    d->ca = cli_read_text(d->ca_path, CLI_MAX_CA_BYTES, &d->ca_len, &why);
    if (!d->ca)
        return cli_usage_error("%s: cannot read CA bundle %s: %s", cmd, d->ca_path,
                               why == CLI_READ_ERRNO     ? strerror(errno)
                               : why == CLI_READ_TOO_BIG ? "larger than 512 KB"
                                                         : "not a text file");
    return 0;
}

/* Everything the agent needs from the image, the options and the
 * environment; the store must be locked. */
static int deliverer_setup(deliverer_t *d, cli_flash_t *f, deliver_opts_t *o, agent_config_t *cfg,
                           const char *cmd)
{
    char *flash_ca = NULL;
    agent_status_t sr = agent_settings_load(&f->store, &d->set, &flash_ca);
    if (sr == AGENT_OK) {
        d->have_set = 1;
    } else if (sr != AGENT_ERR_NOT_FOUND) {
        (void)cli_usage_error("%s: provisioned settings unreadable: %s", cmd, agent_status_str(sr));
        return CLI_EXIT_FAILED;
    }
    d->endpoint = o->endpoint       ? o->endpoint
                  : d->have_set     ? d->set.endpoint
                  : o->cfg_endpoint ? o->cfg_endpoint
                                    : CLI_DEFAULT_ENDPOINT;
    settle_options(o, d, cfg);
    int rc = 0;
    if (agent_endpoint_split(d->endpoint, d->host, sizeof d->host, &cfg->port, &cfg->tls) !=
        AGENT_OK)
        rc = cli_usage_error("%s: --endpoint must be https://host[:port] (or http:// for tests)",
                             cmd);
    if (!rc)
        rc = pick_credentials(d, o, cfg, cmd);
    if (!rc && cfg->tls && !o->insecure)
        rc = pick_ca(d, o, flash_ca, cmd);
    port_free(flash_ca);
    cfg->host = d->host;
    cfg->ca_pem = (const uint8_t *)d->ca;
    cfg->ca_pem_len = d->ca_len;
    return rc;
}

/* Build an agent from the image, options and environment. *out is NULL on
 * failure (the message is printed). */
static int deliverer_open(deliverer_t **out, cli_flash_t *f, deliver_opts_t *o, const char *cmd)
{
    deliverer_t *d = calloc(1, sizeof *d);
    agent_config_t cfg;
    *out = NULL;
    if (!d)
        return cli_usage_error("%s: out of memory", cmd);
    agent_config_default(&cfg);
    int rc = deliverer_setup(d, f, o, &cfg, cmd);
    if (rc) {
        deliverer_close(d);
        return rc;
    }
    if (o->insecure)
        (void)cli_usage_error("WARNING: --insecure: TLS certificates are NOT verified");
    cfg.insecure_no_verify = o->insecure;
    cfg.max_reply_bytes = CLI_MAX_REPLY_BYTES;
    cfg.lock = lock_cb;
    cfg.unlock = unlock_cb;
    cfg.lock_ctx = f;
    cfg.event = event_cb;
    cfg.event_ctx = d; /* (the agent is d's: the context lives as long) */
    /* The daemon idles between changes: it keeps room for the largest value
     * erased then, so no edit or outcome waits for GC (sync just exits). */
    cfg.gc_ahead_sectors = strcmp(cmd, "run") == 0 ? AGENT_GC_AHEAD_AUTO : 0;
    agent_status_t ar = agent_new(&d->agent, &f->store, &cfg);
    if (ar != AGENT_OK) {
        (void)cli_usage_error("%s: cannot set up the HTTPS client for %s: %s%s%s", cmd, d->endpoint,
                              agent_status_str(ar), d->ca_path ? " (CA bundle " : "",
                              d->ca_path ? d->ca_path : "");
        if (d->ca_path)
            fputs(")\n", stderr);
        deliverer_close(d);
        return CLI_EXIT_USAGE;
    }
    *out = d;
    return 0;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop re-checks */
}

/* What sync and run share: options, the image, the deliverer lock, the
 * agent; on return the store lock is released for other processes. */
static int deliver_begin(int argc, char **argv, const cli_globals_t *g, const char *cmd, int mode,
                         deliver_opts_t *o, cli_flash_t *f, deliverer_t **d)
{
    int rc = parse_deliver_opts(argc, argv, o, cmd);
    if (rc)
        return rc;
    /* the configuration file's values come after the command line's and the
     * image's provisioned ones (deliverer_setup, pick_ca) */
    o->cfg_endpoint = g->endpoint;
    o->cfg_ca_file = g->ca_file;
    o->credentials = cli_creds_want(o->credentials, o->profile, g->credentials);
    o->cfg_profile = g->profile;
    o->aliyun_config = g->aliyun_config;
    if (!cli_creds_known(o->credentials)) /* the configuration file's */
        return cli_usage_error("%s: credentials in the configuration file must be %s", cmd,
                               CLI_CREDS_CHOICES);
    if (cli_flash_open(f, g->flash_path, mode) != 0)
        return CLI_EXIT_USAGE;
    if (cli_flash_claim_delivery(f, g->flash_path) != 0) {
        cli_flash_close(f);
        return CLI_EXIT_USAGE;
    }
    rc = deliverer_open(d, f, o, cmd);
    if (rc) {
        cli_flash_close(f);
        return rc;
    }
    cli_flash_unlock(f);
    return 0;
}

/* What is left once sync stops, as the store says it. */
static int sync_report(cli_flash_t *f, const deliverer_t *d)
{
    unsigned left = 0;
    const char *code, *message;
    if (cli_flash_lock(f) != STORE_OK) {
        (void)cli_usage_error("sync: the store cannot be read to check what is left");
        return CLI_EXIT_FAILED;
    }
    store_status_t rc = queue_count(&f->store, &left);
    if (rc != STORE_OK) {
        (void)cli_usage_error("sync: the queue cannot be read: %s (see cdnagent fsck)",
                              store_status_str(rc));
        return CLI_EXIT_FAILED;
    }
    if (agent_halted(d->agent, &code, &message))
        printf("sync: delivery blocked: %s: %s; fix the configuration and run sync again\n", code,
               message);
    if (left) {
        printf("sync: %u change%s not delivered (see cdnagent status)\n", left,
               left == 1 ? "" : "s");
        return CLI_EXIT_FAILED;
    }
    printf("sync: everything delivered\n");
    return CLI_EXIT_OK;
}

int cmd_sync(int argc, char **argv, const cli_globals_t *g)
{
    deliver_opts_t o;
    cli_flash_t f;
    deliverer_t *d;
    int rc = deliver_begin(argc, argv, g, "sync", CLI_FLASH_OPEN_EXISTING, &o, &f, &d);
    if (rc)
        return rc;
    uint64_t deadline = port_monotonic_ms() + (uint64_t)o.max_wait_s * 1000u;
    static cli_watch_memo_t memo;
    /* renewed certificate files first, a second look a moment later for a
     * content seen for the first time */
    if (cli_watch_step(&f, &memo, "sync") == 1) {
        sleep_ms(RUN_IDLE_CHECK_MS);
        (void)cli_watch_step(&f, &memo, "sync");
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (;;) {
        uint32_t w = agent_poll(d->agent, port_monotonic_ms());
        if (got_term || w == UINT32_MAX)
            break;
        uint64_t now = port_monotonic_ms();
        if (now + w > deadline)
            break; /* only backing-off work left beyond --max-wait */
        if (w)
            sleep_ms(w);
    }
    rc = sync_report(&f, d);
    deliverer_close(d);
    cli_flash_close(&f);
    return rc;
}

/* ------------------------------------------------------------- run -- */

/* What run watches: a change of any of these is a new configuration. */
typedef struct {
    uint32_t settings;
    struct stat ca, key, profile;
    int ca_ok, key_ok, profile_ok;
} config_stamp_t;

static int same_file_state(const struct stat *a, int a_ok, const struct stat *b, int b_ok)
{
    if (a_ok != b_ok)
        return 0;
    return !a_ok ||
           (a->st_ino == b->st_ino && a->st_size == b->st_size &&
            a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec);
}

/* Stamp the configuration; -1 when the store cannot be read now. */
static int config_stamp(cli_flash_t *f, const deliverer_t *d, const cli_globals_t *g,
                        config_stamp_t *s)
{
    memset(s, 0, sizeof *s);
    s->ca_ok = d->ca_path && stat(d->ca_path, &s->ca) == 0;
    s->key_ok = stat(g->device_key_path, &s->key) == 0;
    /* an aliyun profile's keys rotated by `aliyun configure` */
    s->profile_ok = d->creds.source == CLI_CRED_PROFILE && stat(d->creds.path, &s->profile) == 0;
    if (cli_flash_lock(f) != STORE_OK)
        return -1;
    agent_status_t ar = agent_settings_stamp(&f->store, &s->settings);
    cli_flash_unlock(f);
    return ar == AGENT_OK ? 0 : -1;
}

static int config_changed(const config_stamp_t *a, const config_stamp_t *b)
{
    return a->settings != b->settings || !same_file_state(&a->ca, a->ca_ok, &b->ca, b->ca_ok) ||
           !same_file_state(&a->key, a->key_ok, &b->key, b->key_ok) ||
           !same_file_state(&a->profile, a->profile_ok, &b->profile, b->profile_ok);
}

/* Replace the agent by one with the configuration as it is now; keep the
 * old one when the new one does not load. */
static void run_reload(deliverer_t **d, cli_flash_t *f, deliver_opts_t *o, const char *why)
{
    deliverer_t *fresh = NULL;
    if (cli_flash_lock(f) != STORE_OK) {
        (void)cli_usage_error("run: %s: the store cannot be read; keeping the configuration "
                              "in use",
                              why);
        return;
    }
    o->splay_s = 0; /* (the start's: a reload is no fleet-wide start) */
    int rc = deliverer_open(&fresh, f, o, "run");
    cli_flash_unlock(f);
    if (rc || !fresh) {
        cli_say(stderr, PORT_LOG_ERROR,
                "cdnagent: run: %s: the new configuration does not load (see above); "
                "keeping the one in use",
                why);
        return;
    }
    deliverer_close(*d);
    *d = fresh;
    cli_say(stderr, PORT_LOG_INFO, "cdnagent: run: reloaded (%s)", why);
}

static void run_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
}

int cmd_run(int argc, char **argv, const cli_globals_t *g)
{
    deliver_opts_t o;
    cli_flash_t f;
    deliverer_t *d;
    config_stamp_t was, now;
    static cli_watch_memo_t memo;
    /* an image that does not exist is a typo, not a device to start empty */
    int rc = deliver_begin(argc, argv, g, "run", CLI_FLASH_OPEN_EXISTING, &o, &f, &d);
    if (rc)
        return rc;
    run_signals();
    cli_say(stderr, PORT_LOG_INFO, "cdnagent: run: delivering from %s to %s (pid %ld)",
            g->flash_path, d->endpoint, (long)getpid());
    if (d->creds.source == CLI_CRED_PROFILE && d->creds.cred.security_token)
        cli_say(stderr, PORT_LOG_WARN,
                "cdnagent: run: aliyun profile %s holds an STS token, which expires: then every "
                "call is refused until the profile is refreshed (run re-reads %s when it "
                "changes); a daemon is better served by provisioned or AK credentials",
                d->creds.profile, d->creds.path);
    if (cli_notify("READY=1\nSTATUS=delivering") != 0)
        cli_say(stderr, PORT_LOG_WARN,
                "cdnagent: run: cannot tell systemd it is ready "
                "(NOTIFY_SOCKET)");
    /* pinged at half the interval: a poll that hangs past it gets the
     * daemon restarted, which is what the watchdog is for */
    uint64_t watchdog = cli_watchdog_ms() / 2, next_ping = port_monotonic_ms();
    int have_stamp = config_stamp(&f, d, g, &was) == 0;
    uint64_t next_check = port_monotonic_ms() + RUN_IDLE_CHECK_MS;
    while (!got_term) {
        if (watchdog && port_monotonic_ms() >= next_ping) {
            (void)cli_notify("WATCHDOG=1"); /* a lost ping is retried at the next */
            next_ping = port_monotonic_ms() + watchdog;
        }
        if (got_hup) {
            got_hup = 0;
            run_reload(&d, &f, &o, "SIGHUP");
            have_stamp = config_stamp(&f, d, g, &was) == 0;
        } else if (port_monotonic_ms() >= next_check) {
            next_check = port_monotonic_ms() + RUN_IDLE_CHECK_MS;
            (void)cli_watch_step(&f, &memo, "run"); /* (a failed read: the poll says it) */
            if (config_stamp(&f, d, g, &now) == 0) {
                if (have_stamp && config_changed(&was, &now)) {
                    run_reload(&d, &f, &o, "the configuration changed");
                    have_stamp = config_stamp(&f, d, g, &now) == 0;
                }
                was = now;
            }
        }
        uint32_t w = agent_poll(d->agent, port_monotonic_ms());
        /* Idle: look for new edits once a second (the CLI writes them), and
         * never sleep past the next watchdog ping. */
        if (w > RUN_IDLE_CHECK_MS)
            w = RUN_IDLE_CHECK_MS;
        uint64_t now_ms = port_monotonic_ms();
        if (watchdog && w > 0 && now_ms + w > next_ping)
            w = next_ping > now_ms ? (uint32_t)(next_ping - now_ms) : 0;
        if (w && !got_term && !got_hup)
            sleep_ms(w);
    }
    (void)cli_notify("STOPPING=1");
    deliverer_close(d);
    cli_flash_close(&f);
    cli_say(stderr, PORT_LOG_INFO, "cdnagent: run: stopped");
    return CLI_EXIT_OK;
}
