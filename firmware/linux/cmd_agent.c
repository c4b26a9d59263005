/* cdnagent header|cert|queue|status|sync|run: the agent on the Linux image. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "agent.h"
#include "cli.h"
#include "cli_creds.h"
#include "cli_opts.h"
#include "cli_watch.h"
#include "cli_flash.h"
#include "port.h"


/* ------------------------------------------------------------ helpers -- */

/* A PEM file for cert set; NULL with the reason printed (exit 2 follows). */
static char *read_pem_file(const char *path, size_t max, const char *what)
{
    int why;
    char *b = cli_read_text(path, max, NULL, &why);
    if (b)
        return b;
    if (why == CLI_READ_TOO_BIG)
        cli_usage_error("cert set: %s %s is larger than %u KB", what, path, (unsigned)(max / 1024u));
    else if (why == CLI_READ_NOT_TEXT)
        cli_usage_error("cert set: %s %s is not PEM text (binary: DER? convert it with "
                        "openssl %s -inform DER -in %s -out %s.pem)",
                        what, path, strcmp(what, "certificate") == 0 ? "x509" : "pkey", path, path);
    else
        cli_usage_error("cert set: cannot read %s %s: %s", what, path, strerror(errno));
    return NULL;
}

static void wipe_free(char *p)
{
    if (p) {
        mbedtls_platform_zeroize(p, strlen(p));
        free(p);
    }
}


static int64_t wall_now(void)
{
    int64_t t = 0;
    if (port_wall_clock(&t) != PORT_OK)
        t = 0;
    return t;
}

/* What an edit queued, with --json: {"domain","what","key"|"name","queued"}. */
static void print_queued(const char *domain, const char *what, const char *arg)
{
    fputs("{\"domain\":", stdout);
    cli_json_str(stdout, domain);
    fputs(",\"what\":", stdout);
    cli_json_str(stdout, what);
    if (arg) {
        fputs(strstr(what, "header") ? ",\"key\":" : ",\"name\":", stdout);
        cli_json_str(stdout, arg);
    }
    puts(",\"queued\":true}");
}

/* A full image: how full, and the two ways out. */
static int full_error(cli_flash_t *f, const char *what)
{
    store_stats_t s;
    if (store_stats(&f->store, &s, NULL, 0) != STORE_OK)
        return cli_error("%s: the image is full (nothing was changed; cdnagent fsck shows the "
                         "space)",
                         what);
    return cli_error("%s: the image is full: %lu B free, %lu B held by %lu live records, in %lu "
                     "sectors of %lu B (nothing was changed). Make room (header rm, cert off, "
                     "then sync), or move to a larger image (format --sectors N, or the "
                     "manifest's flash.sector_count)",
                     what, (unsigned long)s.free_bytes, (unsigned long)s.live_bytes,
                     (unsigned long)s.live_records, (unsigned long)f->dev.sector_count,
                     (unsigned long)f->dev.sector_size);
}

static int edit_error(cli_flash_t *f, agent_status_t rc, const cdnapi_result_t *res,
                      const char *what)
{
    if (rc == AGENT_ERR_STORE_FULL)
        return full_error(f, what);
    if (rc == AGENT_ERR_INVALID && res) {
        char msg[CDNAPI_MESSAGE_LEN + 64];
        snprintf(msg, sizeof msg, "%s: %s", what, res->message);
        cli_json_error(res->code, msg, res->request_id); /* the service's code, checked here */
        return cli_usage_error("%s: refused: %s: %s", what, res->code, res->message);
    }
    if (rc == AGENT_ERR_NOT_FOUND) {
        return cli_error("%s: not found", what);
    }
    if (rc == AGENT_ERR_LIMIT) {
        return cli_error("%s: limit reached (at most %u domains; or the header name's hash "
                         "clashes with another header of this domain)",
                         what, AGENT_MAX_DOMAINS);
    }
    return cli_error("%s: %s (nothing was changed)", what, agent_status_str(rc));
}

/* ------------------------------------------------------------- header -- */

static const char HEADER_USAGE[] =
    "usage: cdnagent header set DOMAIN KEY VALUE [--rule legacy|new] [--op OP] [--duplicate "
    "on|off] [--source PATTERN] | header rm DOMAIN KEY | header list [DOMAIN] [--json]";
enum { RULE_LEGACY = 0, RULE_NEW = 1 };
static const cli_opt_t header_opts[] = {
    {"json", 0, CLI_OPT_FLAG, NULL, 0, 0, "JSON instead of lines, errors included"},
    {"rule", 0, CLI_OPT_CHOICE, "legacy|new", 0, 0,
     "set: the function: legacy (set_req_header, the default) or new (origin_request_header, "
     "Custom Request Headers (New)); a header moving between them is deleted from the old one "
     "first"},
    {"op", 0, CLI_OPT_CHOICE, "add|modify|delete|rewrite", 0, 0,
     "set --rule new: what the rule does to the header (default add; VALUE may be left out for "
     "delete)"},
    {"duplicate", 0, CLI_OPT_CHOICE, "on|off", 0, 0,
     "set --rule new --op add: keep the header the request already has beside the added one "
     "(default off)"},
    {"source", 0, CLI_OPT_STRING, "PATTERN", 0, 0,
     "set --rule new --op rewrite: what is replaced (VALUE replaces it)"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t header_cmd =
    {"header",
     "set DOMAIN KEY [VALUE] | rm DOMAIN KEY | list [DOMAIN]",
     "The desired back-to-origin request headers of a domain: set and rm store and queue the "
     "change at once (offline); list shows what is desired, with each header's function. A "
     "VALUE that starts with '-' goes after '--'. One header name has one rule per domain.",
     header_opts,
     1,
     4};

/* A rule's fields in JSON (after its "key"): "rule","op","value"[,"source"][,"duplicate"]. */
static void rule_json(FILE *out, const char *spec)
{
    char copy[CDNAPI_MAX_VALUE_LEN + 1];
    cdnapi_rule_t r;
    snprintf(copy, sizeof copy, "%s", spec);
    fputs(",\"rule\":\"new\"", out);
    if (!cdnapi_rule_unspec(copy, &r))
        return;
    fprintf(out, ",\"op\":\"%s\",\"value\":", cdnapi_rule_op_str(r.op));
    cli_json_str(out, r.value);
    if (r.op == CDNAPI_RULE_REWRITE) {
        fputs(",\"source\":", out);
        cli_json_str(out, r.source);
    }
    if (r.op == CDNAPI_RULE_ADD)
        fprintf(out, ",\"duplicate\":%s", r.duplicate ? "true" : "false");
}

/* header set: a legacy header, or a rule from --op, --duplicate, --source. */
static int header_set(cli_flash_t *f, const cli_parsed_t *p, cdnapi_result_t *res)
{
    char *const *pos = p->args;
    const char *value = p->nargs == 4 ? pos[3] : NULL;
    bool rule = cli_opt_choice(p, "rule", RULE_LEGACY) == RULE_NEW;
    int op = (int)cli_opt_choice(p, "op", CDNAPI_RULE_ADD);
    agent_status_t ar;
    if (!rule &&
        (cli_opt_given(p, "op") || cli_opt_given(p, "duplicate") || cli_opt_given(p, "source")))
        return cli_usage_error("header set: --op, --duplicate and --source go with --rule new");
    if (!value && !(rule && op == CDNAPI_RULE_DELETE))
        return cli_usage_error("header set: a VALUE is needed (only --rule new --op delete goes "
                               "without one)\n%s",
                               HEADER_USAGE);
    if (cli_opt_given(p, "source") && op != CDNAPI_RULE_REWRITE)
        return cli_usage_error("header set: --source goes with --op rewrite");
    if (cli_opt_given(p, "duplicate") && op != CDNAPI_RULE_ADD)
        return cli_usage_error("header set: --duplicate goes with --op add");
    if (rule) {
        cdnapi_rule_t r = {(cdnapi_rule_op_t)op, cli_opt_choice(p, "duplicate", 1) == 0, pos[2],
                           value, cli_opt_str(p, "source")};
        ar = agent_rule_set(&f->store, pos[1], &r, res);
    } else {
        ar = agent_header_set(&f->store, pos[1], pos[2], value, res);
    }
    if (ar != AGENT_OK)
        return edit_error(f, ar, res, "header set");
    if (cli_opt_given(p, "json"))
        print_queued(pos[1], rule ? "header rule" : "header", pos[2]);
    else
        printf("queued: %s header %s%s\n", pos[1], pos[2], rule ? " (rule new)" : "");
    return CLI_EXIT_OK;
}

typedef struct {
    FILE *out;
    int json;
    int n;
} list_ctx_t;

static void list_header_cb(void *arg, const agent_header_view_t *h)
{
    list_ctx_t *c = arg;
    char text[CDNAPI_MAX_VALUE_LEN + 32];
    if (!h->desired)
        return; /* being removed: not part of the desired set */
    if (c->json) {
        fprintf(c->out, "%s{\"domain\":", c->n ? "," : "");
        cli_json_str(c->out, h->domain);
        fputs(",\"key\":", c->out);
        cli_json_str(c->out, h->key);
        if (h->rule) {
            rule_json(c->out, h->desired);
        } else {
            fputs(",\"rule\":\"legacy\",\"value\":", c->out);
            cli_json_str(c->out, h->desired);
        }
        fputc('}', c->out);
    } else if (h->rule) {
        fprintf(c->out, "%s  %s: [new] %s\n", h->domain, h->key,
                cli_header_text(h->desired, true, text, sizeof text));
    } else {
        fprintf(c->out, "%s  %s: %s\n", h->domain, h->key, h->desired);
    }
    c->n++;
}

int cmd_header(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&header_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    int json = cli_opt_given(&p, "json"), npos = (int)p.nargs;
    char **pos = p.args;
    const char *op = pos[0];
    if (!((strcmp(op, "set") == 0 && npos >= 3) || (strcmp(op, "rm") == 0 && npos == 3) ||
          (strcmp(op, "list") == 0 && npos <= 2)))
        return cli_usage_error("header: wrong arguments\n%s", HEADER_USAGE);
    if (strcmp(op, "set") != 0 && (cli_opt_given(&p, "rule") || cli_opt_given(&p, "op") ||
                                   cli_opt_given(&p, "duplicate") || cli_opt_given(&p, "source")))
        return cli_usage_error("header %s: --rule, --op, --duplicate and --source go with set", op);
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path,
                       strcmp(op, "list") == 0 ? CLI_FLASH_READ : CLI_FLASH_CREATE) != 0)
        return CLI_EXIT_USAGE;
    int rc = CLI_EXIT_OK;
    cdnapi_result_t res;
    memset(&res, 0, sizeof res);
    if (strcmp(op, "set") == 0) {
        rc = header_set(&f, &p, &res);
    } else if (strcmp(op, "rm") == 0) {
        agent_status_t ar = agent_header_rm(&f.store, pos[1], pos[2]);
        if (ar != AGENT_OK)
            rc = edit_error(&f, ar, &res, "header rm");
        else
            json ? print_queued(pos[1], "remove header", pos[2])
                 : (void)printf("queued: remove %s header %s\n", pos[1], pos[2]);
    } else {
        list_ctx_t c = {stdout, json, 0};
        agent_visitor_t v = {list_header_cb, NULL, &c};
        if (json)
            putchar('[');
        agent_status_t ar = agent_visit(&f.store, npos == 2 ? pos[1] : NULL, &v);
        if (json)
            puts("]");
        if (ar == AGENT_ERR_NOT_FOUND && !json)
            printf("(no headers for %s)\n", pos[1]);
        else if (ar != AGENT_OK && ar != AGENT_ERR_NOT_FOUND)
            rc = edit_error(&f, ar, &res, "header list");
    }
    cli_flash_close(&f);
    return rc;
}

/* --------------------------------------------------------------- cert -- */

static const cli_opt_t cert_opts[] = {
    {"cert", 0, CLI_OPT_STRING, "F", 0, 0, "set: the certificate chain, PEM (up to 12 KB)"},
    {"key", 0, CLI_OPT_STRING, "F", 0, 0, "set: its private key, PEM (up to 16 KB; sealed)"},
    {"cas-id", 0, CLI_OPT_STRING, "N", 0, 0,
     "set: a certificate of Alibaba's certificate service by its CertId (the device holds no "
     "key; pushed with SetCdnDomainSSLCertificate)"},
    {"cas-region", 0, CLI_OPT_CHOICE, "cn-hangzhou|ap-southeast-1", 0, 0,
     "set --cas-id: the service's region (default cn-hangzhou)"},
    {"name", 0, CLI_OPT_STRING, "N", 0, 0,
     "set: the name the CDN shows (default: the domain; up to 64 bytes, no comma or control "
     "character)"},
    {"watch", 0, CLI_OPT_FLAG, NULL, 0, 0,
     "set --cert --key: the daemon (and each sync) takes the files again whenever their "
     "content changes (renewals: an ACME client's files)"},
    {"json", 0, CLI_OPT_FLAG, NULL, 0, 0, "JSON instead of a line, errors included"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};
static const cli_command_t cert_cmd =
    {"cert",
     "set DOMAIN | off DOMAIN | show DOMAIN | api [legacy|ssl]",
     "The desired HTTPS certificate of a domain: set (--cert and --key, or --cas-id) and off "
     "store and queue the change at once (offline); show shows desired and delivered, with the "
     "validity. api shows or chooses the action that pushes certificates: legacy "
     "(SetDomainServerCertificate, the default) or ssl (SetCdnDomainSSLCertificate); the agent "
     "moves to ssl by itself when the service refuses the older one.",
     cert_opts,
     1,
     2};

void cli_cert_validity(const agent_cert_view_t *c, int64_t now, char *buf, size_t cap)
{
    char date[32] = "";
    long days = c->not_after ? (long)((c->not_after - now) / 86400) : 0;
    cli_iso_date(c->not_after, date, sizeof date);
    if (!c->desired_on || c->not_after == 0)
        snprintf(buf, cap, "%s", "");
    else if (c->not_after < now)
        snprintf(buf, cap, ", EXPIRED %s (%ld days ago)", date, -days);
    else
        snprintf(buf, cap, ", valid until %s (%ld days left%s)", date, days,
                 days <= AGENT_EXPIRY_WARN_DAYS ? ": renew it" : "");
}

void cli_cert_json_fields(FILE *out, const agent_cert_view_t *c, int64_t now)
{
    char date[32];
    fputs(",\"cas_id\":", out);
    if (c->cas_id[0])
        cli_json_str(out, c->cas_id);
    else
        fputs("null", out);
    fputs(",\"not_after\":", out);
    if (c->not_after && cli_iso_date(c->not_after, date, sizeof date))
        cli_json_str(out, date);
    else
        fputs("null", out);
    if (c->not_after)
        fprintf(out, ",\"days_left\":%ld", (long)((c->not_after - now) / 86400));
    else
        fputs(",\"days_left\":null", out);
    fprintf(out, ",\"unsure\":%s", c->unsure ? "true" : "false");
}

typedef struct {
    list_ctx_t l;
    int64_t now;
} cert_show_t;

static void show_cert_cb(void *arg, const agent_cert_view_t *c)
{
    cert_show_t *s = arg;
    list_ctx_t *l = &s->l;
    char validity[96];
    if (l->json) {
        fprintf(l->out, "%s{\"domain\":", l->n ? "," : "");
        cli_json_str(l->out, c->domain);
        fprintf(l->out, ",\"desired\":%s,\"desired_name\":",
                cli_cert_state(c->desired_present, c->desired_on, 1));
        cli_json_str(l->out, c->desired_name);
        fprintf(l->out, ",\"delivered\":%s,\"delivered_name\":",
                cli_cert_state(c->delivered_present, c->delivered_on, 1));
        cli_json_str(l->out, c->delivered_name);
        fputs(",\"delivered_sha256\":", l->out);
        cli_json_str(l->out, c->delivered_sha256);
        cli_cert_json_fields(l->out, c, s->now);
        fprintf(l->out, ",\"queued\":%s}", c->queue ? "true" : "false");
    } else {
        cli_cert_validity(c, s->now, validity, sizeof validity);
        fprintf(l->out, "%s  certificate: desired %s%s%s%s%s%s, delivered %s%s%s%s\n", c->domain,
                cli_cert_state(c->desired_present, c->desired_on, 0), c->desired_name[0] ? " " : "",
                c->desired_name, c->cas_id[0] ? " (certificate service, CertId " : "", c->cas_id,
                c->cas_id[0] ? ")" : "", cli_cert_state(c->delivered_present, c->delivered_on, 0),
                c->delivered_name[0] ? " " : "", c->delivered_name,
                c->queue ? " (queued)" : validity);
    }
    l->n++;
}

/* A watched file by an absolute path (the daemon runs elsewhere), its
 * symbolic links kept: certbot's live/ names point to a new archive file
 * at each renewal, which a resolved path would never see. */
static int watch_path(const char *path, char *out)
{
    char cwd[4096];
    int n = path[0] == '/'            ? snprintf(out, AGENT_WATCH_PATH_MAX + 1, "%s", path)
            : getcwd(cwd, sizeof cwd) ? snprintf(out, AGENT_WATCH_PATH_MAX + 1, "%s/%s", cwd, path)
                                      : -1;
    if (n < 0 || n > (int)AGENT_WATCH_PATH_MAX || access(out, R_OK) != 0)
        return cli_usage_error("cert set --watch: %s: %s", path,
                               n < 0                           ? strerror(errno)
                               : n > (int)AGENT_WATCH_PATH_MAX ? "its absolute path is too long"
                                                               : strerror(errno)),
               -1;
    return 0;
}

static int watch_paths(const char *cert, const char *key, agent_cert_watch_t *w)
{
    memset(w, 0, sizeof *w);
    return watch_path(cert, w->cert_path) == 0 && watch_path(key, w->key_path) == 0 ? 0 : -1;
}

/* The watch with the hash of the pair taken now, so the daemon takes the
 * files again only when they change (all zero when it cannot be had: then
 * the daemon takes them again). */
static const agent_cert_watch_t *watch_hash(agent_cert_watch_t *w, const char *cert, const char *key)
{
    if (!cli_watch_pair_hash(cert, key, w->sha256))
        memset(w->sha256, 0, sizeof w->sha256);
    return w;
}

/* cert set: an uploaded pair (read first: a bad file costs no lock), or a
 * certificate service's by CertId. */
static int cert_set(const cli_parsed_t *p, const char *domain, const cli_globals_t *g, int json)
{
    const char *cert_file = cli_opt_str(p, "cert"), *key_file = cli_opt_str(p, "key");
    const char *cas_id = cli_opt_str(p, "cas-id"), *name = cli_opt_str(p, "name");
    const char *region = cli_opt_str(p, "cas-region");
    char *cert = NULL, *key = NULL;
    if (cas_id ? (cert_file || key_file) : (!cert_file || !key_file))
        return cli_usage_error("cert set needs --cert F and --key F, or --cas-id N (not both)");
    if (region && !cas_id)
        return cli_usage_error("cert set: --cas-region goes with --cas-id");
    agent_cert_watch_t watch;
    if (cli_opt_given(p, "watch") && (cas_id || watch_paths(cert_file, key_file, &watch) != 0))
        return cas_id ? cli_usage_error("cert set: --watch goes with --cert and --key")
                      : CLI_EXIT_USAGE;
    if (!cas_id && !(cert = read_pem_file(cert_file, CDNAPI_MAX_PEM_LEN, "certificate")))
        return CLI_EXIT_USAGE;
    if (!cas_id && !(key = read_pem_file(key_file, STORE_VALUE_MAX, "key"))) {
        free(cert);
        return CLI_EXIT_USAGE;
    }
    cli_flash_t f;
    bool opened = cli_flash_open(&f, g->flash_path, CLI_FLASH_CREATE) == 0;
    int rc = opened ? 0 : CLI_EXIT_USAGE;
    /* after the open: whether a missing key may be made depends on what the
     * image already holds sealed (a certificate service's seals nothing) */
    if (!rc && !cas_id && cli_ensure_device_key(g, &f.store) != 0)
        rc = CLI_EXIT_FAILED;
    if (!rc) {
        cdnapi_result_t res;
        memset(&res, 0, sizeof res);
        agent_status_t ar = cas_id
                                ? agent_cert_set_cas(&f.store, domain, name, cas_id, region, &res)
                            : cli_opt_given(p, "watch")
                                ? agent_cert_set_watched(&f.store, domain, name, cert, key,
                                                         wall_now(), watch_hash(&watch, cert, key),
                                                         &res)
                                : agent_cert_set(&f.store, domain, name, cert, key, wall_now(),
                                                 &res);
        if (ar != AGENT_OK)
            rc = edit_error(&f, ar, &res, "cert set");
        else if (json)
            print_queued(domain, "certificate on", name);
        else
            printf("queued: %s certificate on%s%s%s%s%s\n", domain, name ? " " : "",
                   name ? name : "", cas_id ? " (certificate service, CertId " : "",
                   cas_id ? cas_id : "", cas_id ? ")" : "");
    }
    if (opened)
        cli_flash_close(&f);
    free(cert);
    wipe_free(key);
    return rc;
}

static int cert_show(const char *domain, const cli_globals_t *g, int json)
{
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_READ) != 0)
        return CLI_EXIT_USAGE;
    cert_show_t c = {{stdout, json, 0}, wall_now()};
    agent_visitor_t v = {NULL, show_cert_cb, &c};
    if (json)
        putchar('[');
    agent_status_t ar = agent_visit(&f.store, domain, &v);
    if (json)
        puts("]");
    int rc = CLI_EXIT_OK;
    if (ar == AGENT_ERR_NOT_FOUND && !json)
        printf("(no certificate for %s)\n", domain);
    else if (ar != AGENT_OK && ar != AGENT_ERR_NOT_FOUND)
        rc = edit_error(&f, ar, NULL, "cert show");
    cli_flash_close(&f);
    return rc;
}

const char *cli_cert_api_text(agent_cert_api_t api)
{
    return api == AGENT_CERT_API_LEGACY ? "SetDomainServerCertificate (the default)"
           : api == AGENT_CERT_API_SSL  ? "SetCdnDomainSSLCertificate (chosen)"
                                        : "SetCdnDomainSSLCertificate (switched to by the agent: "
                                          "the service refused SetDomainServerCertificate)";
}

/* cert api [legacy|ssl]: the action that pushes certificates. */
static int cert_api(const char *word, const cli_globals_t *g, int json)
{
    agent_cert_api_t api;
    int choice = word ? cli_choice_index("legacy|ssl", word) : 0;
    if (choice < 0)
        return cli_usage_error("cert api: the action is legacy or ssl, not '%s'", word);
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, word ? CLI_FLASH_CREATE : CLI_FLASH_READ) != 0)
        return CLI_EXIT_USAGE;
    agent_status_t ar = word ? agent_cert_api_set(&f.store, choice ? AGENT_CERT_API_SSL
                                                                   : AGENT_CERT_API_LEGACY)
                             : AGENT_OK;
    if (ar == AGENT_OK)
        ar = agent_cert_api_get(&f.store, &api);
    int rc = ar != AGENT_OK ? edit_error(&f, ar, NULL, "cert api") : CLI_EXIT_OK;
    if (!rc && json)
        printf("{\"action\":\"%s\",\"switched\":%s}\n", agent_cert_api_action(api),
               api == AGENT_CERT_API_SSL_AUTO ? "true" : "false");
    else if (!rc)
        printf("certificates are pushed with %s\n", cli_cert_api_text(api));
    cli_flash_close(&f);
    return rc;
}

int cmd_cert(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&cert_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    int json = cli_opt_given(&p, "json");
    const char *op = p.args[0], *arg = p.nargs > 1 ? p.args[1] : NULL;
    if (strcmp(op, "api") == 0)
        return cert_api(arg, g, json);
    if (!arg || (strcmp(op, "set") != 0 && strcmp(op, "off") != 0 && strcmp(op, "show") != 0))
        return cli_usage_error("cert: want set DOMAIN, off DOMAIN, show DOMAIN or api [legacy|ssl] "
                               "(see cdnagent cert --help)");
    if (strcmp(op, "set") == 0)
        return cert_set(&p, arg, g, json);
    if (strcmp(op, "show") == 0)
        return cert_show(arg, g, json);
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_CREATE) != 0)
        return CLI_EXIT_USAGE;
    agent_status_t ar = agent_cert_off(&f.store, arg);
    int rc = ar != AGENT_OK ? edit_error(&f, ar, NULL, "cert off") : CLI_EXIT_OK;
    if (!rc && json)
        print_queued(arg, "certificate off", NULL);
    else if (!rc)
        printf("queued: %s certificate off\n", arg);
    cli_flash_close(&f);
    return rc;
}

/* ------------------------------------------------------- queue/status -- */

static void print_queue_fields(FILE *out, const queue_entry_t *q, uint64_t now)
{
    fprintf(out, "\"target\":\"%s\",\"seq\":%u,\"state\":\"%s\",\"attempts\":%u,", q->target,
            q->seq, queue_state_str(q->state), q->attempts);
    long long next = q->state == QUEUE_BACKOFF && q->next_try_ms > now
                         ? (long long)(q->next_try_ms - now)
                         : 0;
    fprintf(out, "\"next_try_in_ms\":%lld,\"code\":", next);
    cli_json_str(out, q->code);
    fputs(",\"message\":", out);
    cli_json_str(out, q->message);
}

static void print_queue_json(FILE *out, const queue_entry_t *q, uint64_t now)
{
    fputc('{', out);
    print_queue_fields(out, q, now);
    fputc('}', out);
}

static void print_queue_text(FILE *out, const queue_entry_t *q, uint64_t now)
{
    fprintf(out, "%s, %u attempt%s", queue_state_str(q->state), q->attempts,
            q->attempts == 1 ? "" : "s");
    if (q->state == QUEUE_BACKOFF && q->next_try_ms > now)
        fprintf(out, ", next try in %.1f s", (double)(q->next_try_ms - now) / 1000.0);
    if (q->code[0])
        fprintf(out, ", last error %s: %s", q->code, q->message);
}

typedef struct {
    FILE *out;
    int json;
    int n;
    uint64_t now;
    char domain[AGENT_DOMAIN_MAX + 1];
    int pending, delivered, failed, blocked;
    int64_t now_utc;
    int expired; /* desired certificates past their end */
} status_ctx_t;

static void status_domain_line(status_ctx_t *c, const char *domain)
{
    if (!c->json && strcmp(c->domain, domain) != 0) {
        fprintf(c->out, "%s\n", domain);
        snprintf(c->domain, sizeof c->domain, "%s", domain);
    }
}

/* Tally a change by where it stands: delivered, waiting, or stopped. */
static void status_count(status_ctx_t *c, const queue_entry_t *q)
{
    if (!q)
        c->delivered++;
    else if (q->state == QUEUE_FAILED)
        c->failed++;
    else if (q->state == QUEUE_BLOCKED)
        c->blocked++;
    else
        c->pending++;
}

static void status_header_cb(void *arg, const agent_header_view_t *h)
{
    status_ctx_t *c = arg;
    char text[CDNAPI_MAX_VALUE_LEN + 32];
    status_count(c, h->queue);
    if (c->json) {
        fprintf(c->out, "%s{\"kind\":\"header\",\"domain\":", c->n ? "," : "");
        cli_json_str(c->out, h->domain);
        fputs(",\"key\":", c->out);
        cli_json_str(c->out, h->key);
        fprintf(c->out, ",\"rule\":\"%s\",\"desired\":", h->rule ? "new" : "legacy");
        if (h->desired)
            cli_json_str(c->out, cli_header_text(h->desired, h->rule, text, sizeof text));
        else
            fputs("null", c->out);
        fprintf(c->out,
                ",\"delivered_rule\":\"%s\",\"delivered\":", h->delivered_rule ? "new" : "legacy");
        if (h->delivered)
            cli_json_str(c->out,
                         cli_header_text(h->delivered, h->delivered_rule, text, sizeof text));
        else
            fputs("null", c->out);
        fputs(",\"config_id\":", c->out);
        cli_json_str(c->out, h->config_id);
        fprintf(c->out, ",\"unsure\":%s,\"queue\":", h->unsure ? "true" : "false");
        if (h->queue)
            print_queue_json(c->out, h->queue, c->now);
        else
            fputs("null", c->out);
        fputc('}', c->out);
    } else {
        status_domain_line(c, h->domain);
        fprintf(c->out, "  header %-24s %sdesired %-20s", h->key, h->rule ? "[new] " : "",
                h->desired ? cli_header_text(h->desired, h->rule, text, sizeof text) : "(remove)");
        fprintf(c->out, " delivered %s%-20s", h->delivered && h->delivered_rule ? "[new] " : "",
                h->delivered ? cli_header_text(h->delivered, h->delivered_rule, text, sizeof text)
                             : "-");
        if (h->config_id[0])
            fprintf(c->out, " ConfigId %s", h->config_id);
        if (h->queue) {
            fputs("  [", c->out);
            print_queue_text(c->out, h->queue, c->now);
            fputc(']', c->out);
        } else {
            fputs("  [delivered]", c->out);
        }
        fputc('\n', c->out);
    }
    c->n++;
}

static void status_cert_cb(void *arg, const agent_cert_view_t *v)
{
    status_ctx_t *c = arg;
    char validity[96];
    status_count(c, v->queue);
    c->expired += v->desired_on && v->not_after && v->not_after < c->now_utc;
    if (c->json) {
        fprintf(c->out, "%s{\"kind\":\"certificate\",\"domain\":", c->n ? "," : "");
        cli_json_str(c->out, v->domain);
        fprintf(c->out, ",\"desired\":%s,\"desired_name\":",
                cli_cert_state(v->desired_present, v->desired_on, 1));
        cli_json_str(c->out, v->desired_name);
        fprintf(c->out, ",\"delivered\":%s,\"delivered_sha256\":",
                cli_cert_state(v->delivered_present, v->delivered_on, 1));
        cli_json_str(c->out, v->delivered_sha256);
        cli_cert_json_fields(c->out, v, c->now_utc);
        fputs(",\"queue\":", c->out);
        if (v->queue)
            print_queue_json(c->out, v->queue, c->now);
        else
            fputs("null", c->out);
        fputc('}', c->out);
    } else {
        status_domain_line(c, v->domain);
        cli_cert_validity(v, c->now_utc, validity, sizeof validity);
        fprintf(c->out, "  certificate desired %s%s%s%s%s%s%s, delivered %s",
                cli_cert_state(v->desired_present, v->desired_on, 0), v->desired_name[0] ? " " : "",
                v->desired_name, v->cas_id[0] ? " (certificate service, CertId " : "", v->cas_id,
                v->cas_id[0] ? ")" : "", validity,
                cli_cert_state(v->delivered_present, v->delivered_on, 0));
        if (v->queue) {
            fputs("  [", c->out);
            print_queue_text(c->out, v->queue, c->now);
            fputc(']', c->out);
        } else {
            fputs("  [delivered]", c->out);
        }
        fputc('\n', c->out);
    }
    c->n++;
}

static const cli_opt_t status_opts[] = {
    {"json", 0, CLI_OPT_FLAG, NULL, 0, 0, "JSON instead of lines"},
    {"credentials", 0, CLI_OPT_CHOICE, CLI_CREDS_CHOICES, 0, 0,
     "show whose credentials sync and run would use so (default: the configuration's, else auto)"},
    {"profile", 0, CLI_OPT_STRING, "NAME", 0, 0, "the same with this aliyun CLI profile"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static const cli_command_t status_cmd =
    {"status",
     "[DOMAIN]",
     "Per domain: every header and certificate, desired against delivered, with its queue "
     "state and last error, and each certificate's validity; then which action pushes "
     "certificates and whose credentials sync and run use, with the AccessKeyId. Exit 0 when "
     "nothing failed or is blocked and no desired certificate has expired, 1 otherwise. Only "
     "reads: works on a read-only image.",
     status_opts,
     0,
     1};

typedef struct {
    int json, n;
} watches_out_t;

static void watch_line_cb(void *ctx, const char *domain, const agent_cert_watch_t *w)
{
    watches_out_t *o = ctx;
    if (o->json) {
        fputs(o->n ? ",{\"domain\":" : "{\"domain\":", stdout);
        cli_json_str(stdout, domain);
        fputs(",\"cert\":", stdout);
        cli_json_str(stdout, w->cert_path);
        fputs(",\"key\":", stdout);
        cli_json_str(stdout, w->key_path);
        fputc('}', stdout);
    } else {
        printf("renewed from files: %s: %s, %s\n", domain, w->cert_path, w->key_path);
    }
    o->n++;
}

/* The certificates a daemon renews from files. */
static void status_watches(cli_flash_t *f, int json)
{
    watches_out_t o = {json, 0};
    if (json)
        fputs(",\"watches\":[", stdout);
    agent_status_t ar = agent_cert_watches(&f->store, watch_line_cb, &o);
    if (json)
        fputc(']', stdout);
    if (ar != AGENT_OK && !json)
        printf("renewed from files: the watch records are unreadable (%s)\n", agent_status_str(ar));
}

/* Which action pushes certificates (a failed read is said, status goes on). */
static void status_cert_api(cli_flash_t *f, int json)
{
    agent_cert_api_t api;
    agent_status_t ar = agent_cert_api_get(&f->store, &api);
    if (json && ar == AGENT_OK)
        printf(",\"certificate_api\":{\"action\":\"%s\",\"switched\":%s}",
               agent_cert_api_action(api), api == AGENT_CERT_API_SSL_AUTO ? "true" : "false");
    else if (json)
        printf(",\"certificate_api\":null");
    else if (ar == AGENT_OK)
        printf("certificates: pushed with %s\n", cli_cert_api_text(api));
    else
        printf("certificates: the action record is unreadable (%s): cert api legacy|ssl sets it\n",
               agent_status_str(ar));
}

/* The call rate the agent learnt from the service's throttling (kept on
 * flash by sync and run; README "Fleets"). */
static void status_rate(cli_flash_t *f, int json)
{
    uint32_t r = 0;
    agent_status_t ar = agent_rate_get(&f->store, &r);
    if (json && ar == AGENT_OK)
        printf(",\"learnt_rate_per_s\":%u.%03u", r / 1000u, r % 1000u);
    else if (json)
        printf(",\"learnt_rate_per_s\":null");
    else if (ar == AGENT_OK)
        printf("call rate: %u.%03u calls/s, learnt from the service's throttling (the account's "
               "limit is shared; it climbs back as calls succeed, up to --rate)\n",
               r / 1000u, r % 1000u);
    else if (ar != AGENT_ERR_NOT_FOUND)
        printf("call rate: the learnt rate is unreadable (%s): sync or run starts at --rate\n",
               agent_status_str(ar));
}

/* Whose credentials sync and run would take, as they would pick them
 * (cli_creds.h), said without failing status: a monitoring view shows a
 * missing source, it does not stop at it. Only the AccessKeyId is shown;
 * the secrets are wiped. */
static void status_credentials(const cli_parsed_t *p, cli_flash_t *f, const cli_globals_t *g,
                               int json)
{
    agent_settings_t set;
    char why[1024] = "", desc[4200];
    cli_creds_t c;
    agent_status_t sr = agent_settings_load(&f->store, &set, NULL);
    sign_credentials_t prov = {set.access_key_id, set.access_key_secret, set.security_token};
    const char *cli_profile = cli_opt_str(p, "profile");
    cli_creds_ask_t ask = {.want = cli_creds_want(cli_opt_str(p, "credentials"), cli_profile,
                                                  g->credentials),
                           .profile = cli_profile,
                           .cfg_profile = g->profile,
                           .aliyun_config = g->aliyun_config,
                           .provisioned = sr == AGENT_OK ? &prov : NULL,
                           .image = true,
                           .why = why,
                           .why_cap = sizeof why};
    int rc = sr == AGENT_OK || sr == AGENT_ERR_NOT_FOUND
                 ? cli_creds_pick(&c, &ask, "status")
                 : (snprintf(why, sizeof why, "the provisioned settings do not open: %s",
                             agent_status_str(sr)),
                    CLI_EXIT_FAILED);
    static const char *const sources[] = {NULL, "provisioned", "env", "profile"};
    if (json) {
        fputs(",\"credentials\":{\"source\":", stdout);
        cli_json_str(stdout, rc ? "none" : sources[c.source]);
        fputs(rc ? ",\"error\":" : ",\"access_key_id\":", stdout);
        cli_json_str(stdout, !rc                                ? c.cred.access_key_id
                             : strncmp(why, "status: ", 8) == 0 ? why + 8
                                                                : why);
        if (!rc && c.source == CLI_CRED_PROFILE) {
            fputs(",\"profile\":", stdout);
            cli_json_str(stdout, c.profile);
        }
        fputc('}', stdout);
    } else if (rc) {
        printf("credentials: none usable: %s\n", strncmp(why, "status: ", 8) == 0 ? why + 8 : why);
    } else {
        printf("credentials: %s, AccessKeyId %s\n", cli_creds_describe(&c, desc, sizeof desc),
               c.cred.access_key_id);
    }
    if (!rc)
        cli_creds_free(&c);
    if (sr == AGENT_OK)
        agent_settings_wipe(&set);
}

int cmd_status(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    int prc = cli_parse(&status_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    int json = cli_opt_given(&p, "json");
    const char *domain = p.nargs ? p.args[0] : NULL;
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_READ) != 0)
        return CLI_EXIT_USAGE;
    status_ctx_t c;
    memset(&c, 0, sizeof c);
    c.out = stdout;
    c.json = json;
    c.now = port_monotonic_ms();
    c.now_utc = wall_now();
    agent_visitor_t v = {status_header_cb, status_cert_cb, &c};
    if (json)
        fputs("{\"items\":[", stdout);
    agent_status_t ar = agent_visit(&f.store, domain, &v);
    if (json)
        printf("],\"delivered\":%d,\"pending\":%d,\"failed\":%d,\"blocked\":%d,"
               "\"expired_certificates\":%d",
               c.delivered, c.pending, c.failed, c.blocked, c.expired);
    else if (c.n == 0)
        puts("(nothing configured)");
    else
        printf("%d delivered, %d pending, %d failed, %d blocked%s%s\n", c.delivered, c.pending,
               c.failed, c.blocked,
               c.failed || c.blocked ? " (cdnagent queue retry asks again; blocked changes "
                                       "resume when the configuration changes)"
                                     : "",
               c.expired ? "; an EXPIRED certificate is desired: renew it (cert set)" : "");
    if (ar == AGENT_OK) {
        status_watches(&f, json);
        status_cert_api(&f, json);
        status_rate(&f, json);
        status_credentials(&p, &f, g, json);
    }
    if (json)
        puts("}");
    cli_flash_close(&f);
    if (ar == AGENT_ERR_NOT_FOUND) {
        return cli_error("status: no such domain %s", domain);
    }
    /* Monitoring needs a signal: a change that stopped (failed, or blocked
     * on the configuration), or an expired certificate, is not "all well". */
    return ar == AGENT_OK && c.failed == 0 && c.blocked == 0 && c.expired == 0 ? CLI_EXIT_OK
                                                                               : CLI_EXIT_FAILED;
}


/* What a queue entry is about, by its store target: "cdn.example.com",
 * "header X-Key" (the queue itself knows only the target). */
typedef struct {
    char target[QUEUE_TARGET_MAX + 1];
    char domain[AGENT_DOMAIN_MAX + 1];
    char what[CDNAPI_MAX_NAME_LEN + 8];
} queue_label_t;

typedef struct {
    queue_label_t *v;
    size_t n, cap;
    int oom;
} label_set_t;

static void label_add(label_set_t *l, const queue_entry_t *q, const char *domain, const char *what,
                      const char *key)
{
    if (!q || l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        queue_label_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1; /* the queue is printed with bare targets */
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    queue_label_t *e = &l->v[l->n++];
    snprintf(e->target, sizeof e->target, "%s", q->target);
    snprintf(e->domain, sizeof e->domain, "%s", domain);
    snprintf(e->what, sizeof e->what, "%s%s%s", what, key ? " " : "", key ? key : "");
}

static void label_header_cb(void *arg, const agent_header_view_t *h)
{
    label_add(arg, h->queue, h->domain, "header", h->key);
}

static void label_cert_cb(void *arg, const agent_cert_view_t *v)
{
    label_add(arg, v->queue, v->domain, "certificate", NULL);
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const queue_label_t *)a)->target, ((const queue_label_t *)b)->target);
}

static const queue_label_t *label_of(const label_set_t *l, const char *target)
{
    queue_label_t key;
    snprintf(key.target, sizeof key.target, "%s", target);
    return l->n ? bsearch(&key, l->v, l->n, sizeof *l->v, label_cmp) : NULL;
}

typedef struct {
    int json, n;
    uint64_t now;
    const label_set_t *labels;
} qctx_t;

static bool queue_print_cb(void *arg, const queue_entry_t *e)
{
    qctx_t *c = arg;
    const queue_label_t *lb = label_of(c->labels, e->target);
    if (c->json) {
        if (c->n)
            putchar(',');
        fputs("{\"domain\":", stdout);
        cli_json_str(stdout, lb ? lb->domain : "");
        fputs(",\"what\":", stdout);
        cli_json_str(stdout, lb ? lb->what : "");
        putchar(',');
        print_queue_fields(stdout, e, c->now);
        putchar('}');
    } else {
        printf("#%-5u %s %s  ", e->seq, lb ? lb->domain : e->target, lb ? lb->what : "");
        print_queue_text(stdout, e, c->now);
        putchar('\n');
    }
    c->n++;
    return true;
}

static const char QUEUE_USAGE[] = "usage: cdnagent queue [--json] | queue retry [DOMAIN [KEY]]";
static const cli_command_t queue_cmd =
    {"queue",
     "[retry [DOMAIN [KEY]]]",
     "The retry queue: each change with its domain, header, state and last error (only reads: "
     "works on a read-only image); queue retry asks "
     "again for failed and blocked changes, all or a domain's or one header's.",
     cli_json_opts,
     0,
     3};

/* queue retry: failed and blocked changes become pending again. */
static int queue_retry(int npos, char **pos, const cli_globals_t *g, int json)
{
    cli_flash_t f;
    unsigned n = 0;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_OPEN_EXISTING) != 0)
        return CLI_EXIT_USAGE;
    agent_status_t ar = agent_retry(&f.store, npos > 1 ? pos[1] : NULL, npos > 2 ? pos[2] : NULL,
                                    &n);
    cli_flash_close(&f);
    if (ar == AGENT_ERR_NOT_FOUND && npos > 2) {
        return cli_error("queue retry: no header %s on domain %s (see: cdnagent status %s)", pos[2],
                         pos[1], pos[1]);
    }
    if (ar == AGENT_ERR_NOT_FOUND) {
        return cli_error("queue retry: no such domain %s", pos[1]);
    }
    if (ar != AGENT_OK) {
        /* Entries are reset one by one: those before the failure stay reset,
         * and running the command again finishes the rest. */
        return cli_error("queue retry: %s after %u change%s were made pending again; run it "
                         "again to finish",
                         agent_status_str(ar), n, n == 1 ? "" : "s");
    }
    if (json)
        printf("{\"pending_again\":%u}\n", n);
    else
        printf("queue retry: %u change%s pending again (run sync, or the daemon delivers them)\n",
               n, n == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

int cmd_queue(int argc, char **argv, const cli_globals_t *g)
{
    label_set_t labels = {NULL, 0, 0, 0};
    qctx_t c = {0, 0, port_monotonic_ms(), &labels};
    cli_parsed_t p;
    int prc = cli_parse(&queue_cmd, argc, argv, &p);
    if (prc != CLI_PARSE_OK)
        return prc;
    c.json = cli_opt_given(&p, "json");
    char **pos = p.args;
    int npos = (int)p.nargs;
    if (npos > 0 && strcmp(pos[0], "retry") == 0)
        return queue_retry(npos, pos, g, c.json);
    if (npos > 0)
        return cli_usage_error("queue: unknown operation %s\n%s", pos[0], QUEUE_USAGE);
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_READ) != 0)
        return CLI_EXIT_USAGE;
    agent_visitor_t lv = {label_header_cb, label_cert_cb, &labels};
    if (agent_visit(&f.store, NULL, &lv) != AGENT_OK || labels.oom)
        labels.n = 0; /* the entries are still listed, by their store target */
    if (labels.n > 1)
        qsort(labels.v, labels.n, sizeof *labels.v, label_cmp);
    if (c.json)
        putchar('[');
    store_status_t rc = queue_foreach(&f.store, queue_print_cb, &c);
    if (c.json)
        puts("]");
    else if (c.n == 0)
        puts("(queue empty)");
    free(labels.v);
    cli_flash_close(&f);
    if (rc != STORE_OK)
        (void)cli_error("queue: the store cannot be read: %s", store_status_str(rc));
    return rc == STORE_OK ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
