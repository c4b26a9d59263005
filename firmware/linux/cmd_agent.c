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
#include "cli_flash.h"
#include "port.h"


/* ------------------------------------------------------------ helpers -- */

static char *read_text_file(const char *path, size_t max, size_t *len_out)
{
    int why;
    char *b = cli_read_text(path, max, len_out, &why);
    if (!b && why != CLI_READ_ERRNO)
        errno = EFBIG; /* callers word it as "larger than ..." */
    return b;
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

static int edit_error(agent_status_t rc, const cdnapi_result_t *res, const char *what)
{
    if (rc == AGENT_ERR_INVALID) {
        fprintf(stderr, "cdnagent: %s: refused: %s: %s\n", what, res->code, res->message);
        return CLI_EXIT_USAGE;
    }
    if (rc == AGENT_ERR_NOT_FOUND) {
        fprintf(stderr, "cdnagent: %s: not found\n", what);
        return CLI_EXIT_FAILED;
    }
    if (rc == AGENT_ERR_LIMIT) {
        fprintf(stderr,
                "cdnagent: %s: limit reached (at most %u domains; or the header name's hash "
                "clashes with another header of this domain)\n",
                what, AGENT_MAX_DOMAINS);
        return CLI_EXIT_FAILED;
    }
    fprintf(stderr, "cdnagent: %s: %s (nothing was changed)\n", what, agent_status_str(rc));
    return CLI_EXIT_FAILED;
}

/* ------------------------------------------------------------- header -- */

static const char HEADER_USAGE[] =
    "usage: cdnagent [--flash PATH] header set DOMAIN KEY VALUE | header rm DOMAIN KEY | "
    "header list [DOMAIN] [--json]";

typedef struct {
    FILE *out;
    int json;
    int n;
} list_ctx_t;

static void list_header_cb(void *arg, const agent_header_view_t *h)
{
    list_ctx_t *c = arg;
    if (!h->desired)
        return; /* being removed: not part of the desired set */
    if (c->json) {
        fprintf(c->out, "%s{\"domain\":", c->n ? "," : "");
        cli_json_str(c->out, h->domain);
        fputs(",\"key\":", c->out);
        cli_json_str(c->out, h->key);
        fputs(",\"value\":", c->out);
        cli_json_str(c->out, h->desired);
        fputc('}', c->out);
    } else {
        fprintf(c->out, "%s  %s: %s\n", h->domain, h->key, h->desired);
    }
    c->n++;
}

int cmd_header(int argc, char **argv, const cli_globals_t *g)
{
    int json = 0, npos = 0;
    const char *pos[5];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts(HEADER_USAGE);
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1] == '-')
            return cli_usage_error("header: unknown option %s\n%s", argv[i], HEADER_USAGE);
        else if (npos < 5)
            pos[npos++] = argv[i];
        else
            return cli_usage_error("header: too many arguments\n%s", HEADER_USAGE);
    }
    if (npos < 1)
        return cli_usage_error("%s", HEADER_USAGE);
    const char *op = pos[0];
    if (!((strcmp(op, "set") == 0 && npos == 4) || (strcmp(op, "rm") == 0 && npos == 3) ||
          (strcmp(op, "list") == 0 && npos <= 2)))
        return cli_usage_error("header: wrong arguments\n%s", HEADER_USAGE);
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, strcmp(op, "list") == 0 ? CLI_FLASH_OPEN_EXISTING
                                                                  : CLI_FLASH_CREATE) != 0)
        return CLI_EXIT_USAGE;
    int rc = CLI_EXIT_OK;
    cdnapi_result_t res;
    memset(&res, 0, sizeof res);
    if (strcmp(op, "set") == 0) {
        agent_status_t ar = agent_header_set(&f.store, pos[1], pos[2], pos[3], &res);
        if (ar != AGENT_OK)
            rc = edit_error(ar, &res, "header set");
        else
            printf("queued: %s header %s\n", pos[1], pos[2]);
    } else if (strcmp(op, "rm") == 0) {
        agent_status_t ar = agent_header_rm(&f.store, pos[1], pos[2]);
        if (ar != AGENT_OK)
            rc = edit_error(ar, &res, "header rm");
        else
            printf("queued: remove %s header %s\n", pos[1], pos[2]);
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
            rc = edit_error(ar, &res, "header list");
    }
    cli_flash_close(&f);
    return rc;
}

/* --------------------------------------------------------------- cert -- */

static const char CERT_USAGE[] =
    "usage: cdnagent [--flash PATH] cert set DOMAIN --cert F --key F [--name N] | cert off DOMAIN "
    "| cert show DOMAIN [--json]";

static void show_cert_cb(void *arg, const agent_cert_view_t *c)
{
    list_ctx_t *l = arg;
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
        fprintf(l->out, ",\"queued\":%s}", c->queue ? "true" : "false");
    } else {
        fprintf(l->out, "%s  certificate: desired %s%s%s, delivered %s%s%s%s\n", c->domain,
                cli_cert_state(c->desired_present, c->desired_on, 0),
                c->desired_name[0] ? " " : "", c->desired_name,
                cli_cert_state(c->delivered_present, c->delivered_on, 0),
                c->delivered_name[0] ? " " : "", c->delivered_name,
                c->queue ? " (queued)" : "");
    }
    l->n++;
}

int cmd_cert(int argc, char **argv, const cli_globals_t *g)
{
    const char *cert_file = NULL, *key_file = NULL, *name = NULL, *pos[3];
    int npos = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (strcmp(argv[i], "--cert") == 0 && has)
            cert_file = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && has)
            key_file = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && has)
            name = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0) {
            puts(CERT_USAGE);
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1] == '-')
            return cli_usage_error("cert: unknown or incomplete option %s\n%s", argv[i], CERT_USAGE);
        else if (npos < 3)
            pos[npos++] = argv[i];
        else
            return cli_usage_error("cert: too many arguments\n%s", CERT_USAGE);
    }
    if (npos != 2)
        return cli_usage_error("%s", CERT_USAGE);
    const char *op = pos[0], *domain = pos[1];
    if (strcmp(op, "set") == 0 && (!cert_file || !key_file))
        return cli_usage_error("cert set needs --cert F and --key F");
    if (strcmp(op, "set") != 0 && strcmp(op, "off") != 0 && strcmp(op, "show") != 0)
        return cli_usage_error("%s", CERT_USAGE);
    char *cert = NULL, *key = NULL;
    if (strcmp(op, "set") == 0) {
        cert = read_text_file(cert_file, CDNAPI_MAX_PEM_LEN, NULL);
        if (!cert)
            return cli_usage_error("cert set: cannot read %s: %s", cert_file,
                                   errno == EFBIG ? "larger than 12 KB" : strerror(errno));
        key = read_text_file(key_file, STORE_VALUE_MAX, NULL);
        if (!key) {
            free(cert);
            return cli_usage_error("cert set: cannot read %s: %s", key_file,
                                   errno == EFBIG ? "larger than 16 KB" : strerror(errno));
        }
    }
    if (strcmp(op, "set") == 0 && cli_ensure_device_key(g) != 0) {
        free(cert);
        wipe_free(key);
        return CLI_EXIT_USAGE;
    }
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path,
                       strcmp(op, "show") == 0 ? CLI_FLASH_OPEN_EXISTING : CLI_FLASH_CREATE) != 0) {
        free(cert);
        wipe_free(key);
        return CLI_EXIT_USAGE;
    }
    int rc = CLI_EXIT_OK;
    cdnapi_result_t res;
    memset(&res, 0, sizeof res);
    if (strcmp(op, "set") == 0) {
        agent_status_t ar = agent_cert_set(&f.store, domain, name, cert, key, wall_now(), &res);
        if (ar != AGENT_OK)
            rc = edit_error(ar, &res, "cert set");
        else
            printf("queued: %s certificate on%s%s\n", domain, name ? " " : "", name ? name : "");
    } else if (strcmp(op, "off") == 0) {
        agent_status_t ar = agent_cert_off(&f.store, domain);
        if (ar != AGENT_OK)
            rc = edit_error(ar, &res, "cert off");
        else
            printf("queued: %s certificate off\n", domain);
    } else {
        list_ctx_t c = {stdout, json, 0};
        agent_visitor_t v = {NULL, show_cert_cb, &c};
        if (json)
            putchar('[');
        agent_status_t ar = agent_visit(&f.store, domain, &v);
        if (json)
            puts("]");
        if (ar != AGENT_OK || c.n == 0) {
            if (!json)
                printf("%s  certificate: none set\n", domain);
        }
    }
    free(cert);
    wipe_free(key);
    cli_flash_close(&f);
    return rc;
}

/* ------------------------------------------------------- queue/status -- */

static void print_queue_json(FILE *out, const queue_entry_t *q, uint64_t now)
{
    fprintf(out, "{\"target\":\"%s\",\"seq\":%u,\"state\":\"%s\",\"attempts\":%u,", q->target,
            q->seq, queue_state_str(q->state), q->attempts);
    long long next = q->state == QUEUE_BACKOFF && q->next_try_ms > now
                         ? (long long)(q->next_try_ms - now)
                         : 0;
    fprintf(out, "\"next_try_in_ms\":%lld,\"code\":", next);
    cli_json_str(out, q->code);
    fputs(",\"message\":", out);
    cli_json_str(out, q->message);
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
    int pending, delivered;
} status_ctx_t;

static void status_domain_line(status_ctx_t *c, const char *domain)
{
    if (!c->json && strcmp(c->domain, domain) != 0) {
        fprintf(c->out, "%s\n", domain);
        snprintf(c->domain, sizeof c->domain, "%s", domain);
    }
}

static void status_header_cb(void *arg, const agent_header_view_t *h)
{
    status_ctx_t *c = arg;
    bool done = !h->queue;
    c->pending += !done;
    c->delivered += done;
    if (c->json) {
        fprintf(c->out, "%s{\"kind\":\"header\",\"domain\":", c->n ? "," : "");
        cli_json_str(c->out, h->domain);
        fputs(",\"key\":", c->out);
        cli_json_str(c->out, h->key);
        fputs(",\"desired\":", c->out);
        if (h->desired)
            cli_json_str(c->out, h->desired);
        else
            fputs("null", c->out);
        fputs(",\"delivered\":", c->out);
        if (h->delivered)
            cli_json_str(c->out, h->delivered);
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
        fprintf(c->out, "  header %-24s desired %-20s delivered %-20s", h->key,
                h->desired ? h->desired : "(remove)", h->delivered ? h->delivered : "-");
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
    bool done = !v->queue;
    c->pending += !done;
    c->delivered += done;
    if (c->json) {
        fprintf(c->out, "%s{\"kind\":\"certificate\",\"domain\":", c->n ? "," : "");
        cli_json_str(c->out, v->domain);
        fprintf(c->out, ",\"desired\":%s,\"desired_name\":",
                cli_cert_state(v->desired_present, v->desired_on, 1));
        cli_json_str(c->out, v->desired_name);
        fprintf(c->out, ",\"delivered\":%s,\"delivered_sha256\":",
                cli_cert_state(v->delivered_present, v->delivered_on, 1));
        cli_json_str(c->out, v->delivered_sha256);
        fputs(",\"queue\":", c->out);
        if (v->queue)
            print_queue_json(c->out, v->queue, c->now);
        else
            fputs("null", c->out);
        fputc('}', c->out);
    } else {
        status_domain_line(c, v->domain);
        fprintf(c->out, "  certificate desired %s%s%s, delivered %s", cli_cert_state(v->desired_present, v->desired_on, 0),
                v->desired_name[0] ? " " : "", v->desired_name,
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

int cmd_status(int argc, char **argv, const cli_globals_t *g)
{
    int json = 0;
    const char *domain = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-')
            return cli_usage_error("status: unknown option %s (usage: cdnagent status [DOMAIN] "
                                   "[--json])",
                                   argv[i]);
        else if (!domain)
            domain = argv[i];
        else
            return cli_usage_error("status: too many arguments");
    }
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_OPEN_EXISTING) != 0)
        return CLI_EXIT_USAGE;
    status_ctx_t c;
    memset(&c, 0, sizeof c);
    c.out = stdout;
    c.json = json;
    c.now = port_monotonic_ms();
    agent_visitor_t v = {status_header_cb, status_cert_cb, &c};
    if (json)
        fputs("{\"items\":[", stdout);
    agent_status_t ar = agent_visit(&f.store, domain, &v);
    if (json)
        printf("],\"delivered\":%d,\"pending\":%d}\n", c.delivered, c.pending);
    else if (c.n == 0)
        puts("(nothing configured)");
    else
        printf("%d delivered, %d pending\n", c.delivered, c.pending);
    cli_flash_close(&f);
    if (ar == AGENT_ERR_NOT_FOUND) {
        fprintf(stderr, "cdnagent: status: no such domain %s\n", domain);
        return CLI_EXIT_FAILED;
    }
    return ar == AGENT_OK ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

typedef struct {
    int json, n;
    uint64_t now;
} qctx_t;

static bool queue_print_cb(void *arg, const queue_entry_t *e)
{
    qctx_t *c = arg;
    if (c->json) {
        if (c->n)
            putchar(',');
        print_queue_json(stdout, e, c->now);
    } else {
        printf("%-12s #%-5u ", e->target, e->seq);
        print_queue_text(stdout, e, c->now);
        putchar('\n');
    }
    c->n++;
    return true;
}

int cmd_queue(int argc, char **argv, const cli_globals_t *g)
{
    qctx_t c = {0, 0, port_monotonic_ms()};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            c.json = 1;
        else
            return cli_usage_error("queue: unknown argument %s (usage: cdnagent queue [--json])",
                                   argv[i]);
    }
    cli_flash_t f;
    if (cli_flash_open(&f, g->flash_path, CLI_FLASH_OPEN_EXISTING) != 0)
        return CLI_EXIT_USAGE;
    if (c.json)
        putchar('[');
    store_status_t rc = queue_foreach(&f.store, queue_print_cb, &c);
    if (c.json)
        puts("]");
    else if (c.n == 0)
        puts("(queue empty)");
    cli_flash_close(&f);
    return rc == STORE_OK ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

/* ---------------------------------------------------------- sync / run -- */

typedef struct {
    const char *endpoint, *ca_file; /* NULL: from the provisioned settings, else defaults */
    int insecure, verbose, sig_given, policy_given, rate_given;
    sign_version_t sig;
    uint32_t timeout_ms, max_wait_s, rate_milli, base_ms, cap_ms, max_attempts;
} deliver_opts_t;

static volatile sig_atomic_t got_term, got_hup;
static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}
static void on_hup(int sig)
{
    (void)sig;
    got_hup = 1;
}

static void event_cb(void *ctx, const agent_event_t *ev)
{
    const deliver_opts_t *o = ctx;
    if (ev->kind == AGENT_EV_DELIVERED) {
        printf("delivered %s %s: %s\n", ev->domain, ev->what, ev->detail);
    } else if (ev->kind == AGENT_EV_RETRY) {
        if (o->verbose)
            fprintf(stderr, "retry     %s %s: %s %s (attempt %u)\n", ev->domain, ev->what,
                    ev->detail, ev->message, ev->attempts);
        return;
    } else {
        printf("%s    %s %s: error: %s: %s (RequestId %s)\n",
               ev->kind == AGENT_EV_DEAD ? "gave up" : "failed", ev->domain, ev->what, ev->detail,
               ev->message, ev->request_id[0] ? ev->request_id : "-");
    }
    fflush(stdout);
}

static void lock_cb(void *ctx) { (void)cli_flash_lock(ctx); }
static void unlock_cb(void *ctx) { cli_flash_unlock(ctx); }

static int parse_endpoint(const char *url, char *host, size_t cap, uint16_t *port, bool *tls)
{
    return agent_endpoint_split(url, host, cap, port, tls) == AGENT_OK ? 0 : -1;
}

static int parse_deliver_opts(int argc, char **argv, deliver_opts_t *o, const char *cmd)
{
    queue_policy_t policy;
    memset(o, 0, sizeof *o);
    queue_policy_default(&policy); /* the agent's defaults, not a copy of them */
    o->sig = SIGN_V3;
    o->timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    o->max_wait_s = 60;
    o->rate_milli = RETRY_DEFAULT_RATE_MILLI_PER_S;
    o->base_ms = policy.base_ms;
    o->cap_ms = policy.cap_ms;
    o->max_attempts = policy.max_attempts;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        unsigned long v = 0;
        char *end = NULL;
        if (strcmp(a, "--endpoint") == 0 && has) {
            o->endpoint = argv[++i];
        } else if (strcmp(a, "--ca-file") == 0 && has) {
            o->ca_file = argv[++i];
        } else if (strcmp(a, "--insecure") == 0) {
            o->insecure = 1;
        } else if (strcmp(a, "-v") == 0) {
            o->verbose = 1;
        } else if (strcmp(a, "--signature") == 0 && has) {
            const char *s = argv[++i];
            o->sig_given = 1;
            if (strcmp(s, "v1") == 0)
                o->sig = SIGN_V1;
            else if (strcmp(s, "v3") == 0)
                o->sig = SIGN_V3;
            else
                return cli_usage_error("%s: --signature must be v1 or v3", cmd);
        } else if ((strcmp(a, "--timeout-ms") == 0 || strcmp(a, "--max-wait") == 0 ||
                    strcmp(a, "--rate") == 0 || strcmp(a, "--backoff-base-ms") == 0 ||
                    strcmp(a, "--backoff-cap-ms") == 0 || strcmp(a, "--max-attempts") == 0) &&
                   has) {
            v = strtoul(argv[++i], &end, 10);
            if (!*argv[i] || *end || v == 0 || v > 3600000)
                return cli_usage_error("%s: %s needs a positive number", cmd, a);
            if (strcmp(a, "--timeout-ms") == 0)
                o->timeout_ms = (uint32_t)v;
            else if (strcmp(a, "--max-wait") == 0)
                o->max_wait_s = (uint32_t)v;
            else if (strcmp(a, "--rate") == 0)
                o->rate_milli = (uint32_t)v * 1000u, o->rate_given = 1;
            else if (strcmp(a, "--backoff-base-ms") == 0)
                o->base_ms = (uint32_t)v, o->policy_given |= 1;
            else if (strcmp(a, "--backoff-cap-ms") == 0)
                o->cap_ms = (uint32_t)v, o->policy_given |= 2;
            else
                o->max_attempts = (uint32_t)(v > 65535 ? 65535 : v), o->policy_given |= 4;
        } else {
            return cli_usage_error("%s: unknown or incomplete option %s", cmd, a);
        }
    }
    return 0;
}

typedef struct {
    agent_t *agent;
    char host[HTTP_MAX_HOST_LEN + 1];
    char *ca;
    size_t ca_len;
    agent_settings_t set; /* provisioned settings; secrets wiped on close */
    int have_set;
} deliverer_t;

/* Build an agent from options and the environment (credentials). */
static int deliverer_open(deliverer_t *d, cli_flash_t *f, deliver_opts_t *o, const char *cmd)
{
    memset(d, 0, sizeof *d);
    agent_config_t cfg;
    agent_config_default(&cfg);
    /* What the factory provisioned is the default; options and the
     * standard environment variables override it. */
    char *flash_ca = NULL;
    agent_status_t sr = agent_settings_load(&f->store, &d->set, &flash_ca);
    if (sr == AGENT_OK) {
        d->have_set = 1;
    } else if (sr != AGENT_ERR_NOT_FOUND) {
        fprintf(stderr, "cdnagent: %s: provisioned settings unreadable: %s\n", cmd,
                agent_status_str(sr));
        return CLI_EXIT_FAILED;
    }
    const char *endpoint = o->endpoint ? o->endpoint : d->have_set ? d->set.endpoint : CLI_DEFAULT_ENDPOINT;
    if (d->have_set) {
        if (!o->sig_given)
            o->sig = d->set.signature == SIGN_V1 ? SIGN_V1 : SIGN_V3;
        if (!(o->policy_given & 1) && d->set.policy.base_ms)
            o->base_ms = d->set.policy.base_ms;
        if (!(o->policy_given & 2) && d->set.policy.cap_ms)
            o->cap_ms = d->set.policy.cap_ms;
        if (!(o->policy_given & 4) && d->set.policy.max_attempts)
            o->max_attempts = d->set.policy.max_attempts;
        if (!o->rate_given && d->set.rate_milli)
            o->rate_milli = d->set.rate_milli;
    }
    if (parse_endpoint(endpoint, d->host, sizeof d->host, &cfg.port, &cfg.tls) != 0) {
        port_free(flash_ca);
        agent_settings_wipe(&d->set);
        return cli_usage_error("%s: --endpoint must be https://host[:port] (or http:// for "
                               "tests)",
                               cmd);
    }
    cfg.host = d->host;
    cfg.credentials.access_key_id = getenv("ALIBABA_CLOUD_ACCESS_KEY_ID");
    cfg.credentials.access_key_secret = getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    cfg.credentials.security_token = getenv("ALIBABA_CLOUD_SECURITY_TOKEN");
    if (!cfg.credentials.access_key_id || !cfg.credentials.access_key_id[0]) {
        if (d->have_set) { /* the provisioned pair, unless the environment names one */
            cfg.credentials.access_key_id = d->set.access_key_id;
            cfg.credentials.access_key_secret = d->set.access_key_secret;
            cfg.credentials.security_token = d->set.security_token;
        }
    }
    if (cfg.credentials.security_token && !cfg.credentials.security_token[0])
        cfg.credentials.security_token = NULL;
    if (!cfg.credentials.access_key_id || !cfg.credentials.access_key_id[0] ||
        !cfg.credentials.access_key_secret || !cfg.credentials.access_key_secret[0]) {
        port_free(flash_ca);
        agent_settings_wipe(&d->set);
        return cli_usage_error("%s: no credentials: provision the device or set "
                               "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                               cmd);
    }
    if (cfg.tls && !o->insecure) {
        if (o->ca_file || !flash_ca) {
            const char *caf = o->ca_file ? o->ca_file : CLI_DEFAULT_CA;
            d->ca = read_text_file(caf, CLI_MAX_CA_BYTES, &d->ca_len);
            if (!d->ca) {
                port_free(flash_ca);
                agent_settings_wipe(&d->set);
                return cli_usage_error("%s: cannot read CA bundle %s: %s", cmd, caf,
                                       strerror(errno));
            }
        } else { /* the bundle the factory wrote into the device */
            d->ca_len = strlen(flash_ca) + 1;
            d->ca = malloc(d->ca_len);
            if (d->ca)
                memcpy(d->ca, flash_ca, d->ca_len);
        }
        cfg.ca_pem = (const uint8_t *)d->ca;
        cfg.ca_pem_len = d->ca_len;
    }
    port_free(flash_ca);
    if (o->insecure)
        fprintf(stderr, "cdnagent: WARNING: --insecure: TLS certificates are NOT verified\n");
    cfg.insecure_no_verify = o->insecure;
    cfg.signature = o->sig;
    cfg.http_timeout_ms = o->timeout_ms;
    cfg.rate_milli = o->rate_milli;
    cfg.policy.base_ms = o->base_ms;
    cfg.policy.cap_ms = o->cap_ms;
    cfg.policy.max_attempts = (uint16_t)o->max_attempts;
    cfg.lock = lock_cb;
    cfg.unlock = unlock_cb;
    cfg.lock_ctx = f;
    cfg.event = event_cb;
    cfg.event_ctx = o;
    if (agent_new(&d->agent, &f->store, &cfg) != AGENT_OK) {
        free(d->ca);
        d->ca = NULL;
        agent_settings_wipe(&d->set);
        fprintf(stderr, "cdnagent: %s: cannot set up the HTTPS client for %s\n", cmd, endpoint);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static void deliverer_close(deliverer_t *d)
{
    agent_free(d->agent);
    free(d->ca);
    agent_settings_wipe(&d->set);
    d->agent = NULL;
    d->ca = NULL;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop re-checks */
}

/* What sync and run share: options, the image, the deliverer lock, the
 * agent; on return the store lock is released for other processes. */
static int deliver_begin(int argc, char **argv, const cli_globals_t *g, const char *cmd, int mode,
                         deliver_opts_t *o, cli_flash_t *f, deliverer_t *d)
{
    int rc = parse_deliver_opts(argc, argv, o, cmd);
    if (rc)
        return rc;
    o->verbose |= g->verbose;
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

int cmd_sync(int argc, char **argv, const cli_globals_t *g)
{
    deliver_opts_t o;
    cli_flash_t f;
    deliverer_t d;
    int rc = deliver_begin(argc, argv, g, "sync", CLI_FLASH_OPEN_EXISTING, &o, &f, &d);
    if (rc)
        return rc;
    uint64_t deadline = port_monotonic_ms() + (uint64_t)o.max_wait_s * 1000u;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    for (;;) {
        uint32_t w = agent_poll(d.agent, port_monotonic_ms());
        if (got_term || w == UINT32_MAX)
            break;
        uint64_t now = port_monotonic_ms();
        if (now + w > deadline)
            break; /* only backing-off work left beyond --max-wait */
        if (w)
            sleep_ms(w);
    }
    int left = 0;
    (void)cli_flash_lock(&f);
    left = (int)queue_count(&f.store);
    deliverer_close(&d);
    cli_flash_close(&f);
    if (left) {
        printf("sync: %d change%s not delivered (see cdnagent status)\n", left, left == 1 ? "" : "s");
        return CLI_EXIT_FAILED;
    }
    printf("sync: everything delivered\n");
    return CLI_EXIT_OK;
}

int cmd_run(int argc, char **argv, const cli_globals_t *g)
{
    deliver_opts_t o;
    cli_flash_t f;
    deliverer_t d;
    int rc = deliver_begin(argc, argv, g, "run", CLI_FLASH_CREATE, &o, &f, &d);
    if (rc)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    fprintf(stderr, "cdnagent: run: delivering from %s to %s (pid %ld)\n", g->flash_path,
            o.endpoint ? o.endpoint : d.have_set ? d.set.endpoint : CLI_DEFAULT_ENDPOINT,
            (long)getpid());
    while (!got_term) {
        if (got_hup) {
            /* Reload: a new CA bundle, endpoint options and credentials. */
            got_hup = 0;
            deliverer_close(&d);
            if (deliverer_open(&d, &f, &o, "run") != 0)
                break;
            cli_flash_unlock(&f);
            fprintf(stderr, "cdnagent: run: reloaded\n");
        }
        uint32_t w = agent_poll(d.agent, port_monotonic_ms());
        /* Idle: look for new edits once a second (the CLI writes them). */
        if (w > 1000u)
            w = 1000u;
        if (w && !got_term)
            sleep_ms(w);
    }
    deliverer_close(&d);
    cli_flash_close(&f);
    fprintf(stderr, "cdnagent: run: stopped\n");
    return got_term ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}
