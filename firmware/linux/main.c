/* cdnagent — command-line entry point: global options, then a subcommand. */
#include "cli.h"
#include "cli_opts.h"
#include "agent.h"
#include "crypto.h"
#include "port.h"
#include "port_posix.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*cli_cmd_fn)(int argc, char **argv, const cli_globals_t *g);

static int cmd_version(int argc, char **argv, const cli_globals_t *g);

/* clang-format off */
static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"version", cmd_version, "print the version"},
    {"help", NULL, "help [COMMAND]: this list, or a command's options with their defaults"},
    {"request", cmd_request, "build a signed OpenAPI request (--dry-run prints it)"},
    {"header", cmd_header, "desired back-to-origin headers: set DOMAIN KEY VALUE | rm DOMAIN KEY | list [DOMAIN]"},
    {"cert", cmd_cert, "desired HTTPS certificate: set DOMAIN --cert F --key F [--name N] | off DOMAIN | show DOMAIN"},
    {"status", cmd_status, "per domain: desired vs delivered, queue entries, last errors [--json]"},
    {"queue", cmd_queue, "the retry queue [--json]; queue retry [DOMAIN [KEY]] asks again for failed or blocked changes"},
    {"sync", cmd_sync, "deliver queued changes until done (exit 0 only when all delivered)"},
    {"run", cmd_run, "daemon: deliver changes as they come (SIGTERM stops; SIGHUP, new settings, CA or device key reload)"},
    {"provision", cmd_provision, "write a device image from a JSON manifest: provision MANIFEST (then --flash is the output)"},
    {"inspect", cmd_inspect, "what a device holds (secrets redacted) [--json]"},
    {"rotate-device-key", cmd_rotate_key, "re-seal every secret under a new device key"},
    {"format", cmd_format, "create an empty image of a chosen size: format [--sectors N] [--sector-size B] [--write-size W]"},
    {"fsck", cmd_fsck, "check the config store on --flash (records, free space, wear, damage)"},
    {"call", cmd_call, "run one CDN OpenAPI operation over verified HTTPS (set-header, delete-header, list-headers, set-cert, cert-off, cert-info)"},
};
/* clang-format on */

static int say_threshold = PORT_LOG_INFO;

void cli_set_log_level(int level)
{
    say_threshold = level;
}

void cli_say(FILE *out, int level, const char *fmt, ...)
{
    char prefix[32];
    va_list ap;
    if (level > say_threshold)
        return;
    fputs(port_posix_log_prefix(fileno(out), (port_log_level_t)level, prefix, sizeof prefix), out);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

/* The one place a command's error line is said: stderr, at the journal's
 * error priority, and the --json document's error object. */
static int cli_verror(int code, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* no timestamp on a terminal for a usage message */
    if (port_posix_log_is_journal(STDERR_FILENO))
        fputs("<3>", stderr);
    fprintf(stderr, "cdnagent: %s\n", msg);
    cli_json_error(code == CLI_EXIT_USAGE ? CLI_JSON_CODE_INPUT : CLI_JSON_CODE_FAILED, msg, "");
    return code;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_verror(CLI_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cli_verror(CLI_EXIT_FAILED, fmt, ap);
    va_end(ap);
    return rc;
}

static const cli_command_t version_cmd = {"version", "", "Print the version.", NULL, 0, 0};

static int cmd_version(int argc, char **argv, const cli_globals_t *g)
{
    cli_parsed_t p;
    (void)g;
    int rc = cli_parse(&version_cmd, argc, argv, &p);
    if (rc != CLI_PARSE_OK)
        return rc;
    puts("cdnagent " CDNAGENT_VERSION);
    return CLI_EXIT_OK;
}

static void print_help(FILE *out)
{
    size_t i;
    fputs("usage: cdnagent [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS...]\n\ncommands:\n", out);
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
    fputs("\nglobal options (before or after the command):\n"
          "  --flash PATH        the device image (default " CLI_DEFAULT_FLASH ")\n"
          "  --device-key PATH   the device key (default: the image's path + .key)\n"
          "  -v, --verbose       more detail on stderr\n"
          "  --config FILE       settings file (default $CDNAGENT_CONFIG, else " CLI_DEFAULT_CONFIG
          " when it exists)\n"
          "  -h, --help          this help;  --version: the version\n"
          "\n'cdnagent help COMMAND' or 'cdnagent COMMAND --help': a command's options, with "
          "their defaults\n",
          out);
}

/* A global option at argv[i] (--flash P, --flash=P, --device-key P,
 * --device-key=P, -v, --verbose): how many words it takes (1 or 2), 0 when
 * argv[i] is none, -1 when its value is missing. */
static int global_option(int argc, char **argv, int i, cli_globals_t *g)
{
    static const char *const valued[] = {"--flash", "--device-key", "--config"};
    const char *a = argv[i];
    if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
        g->verbose = 1;
        return 1;
    }
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(valued[k]);
        const char **dst = k == 0 ? &g->flash_path : k == 1 ? &g->device_key_path : &g->config_path;
        if (strncmp(a, valued[k], n) == 0 && a[n] == '=') {
            *dst = a + n + 1;
            return 1;
        }
        if (strcmp(a, valued[k]) == 0) {
            if (i + 1 >= argc)
                return -1;
            *dst = argv[i + 1];
            return 2;
        }
    }
    return 0;
}

/* Take the global options out of argv, wherever they are before "--";
 * argc is updated. Returns 0, or CLI_EXIT_USAGE (said). */
static int take_globals(int *argc, char **argv, cli_globals_t *g)
{
    int out = 1;
    for (int i = 1; i < *argc;) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        int n = global_option(*argc, argv, i, g);
        if (n < 0)
            return cli_usage_error("%s needs a path", argv[i]);
        if (n == 0)
            argv[out++] = argv[i++];
        else
            i += n;
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

/* The configuration file under the command line's options: --config FILE
 * (must exist), else $CDNAGENT_CONFIG (must exist), else the default (when
 * it exists). Read only for a command: --help and --version work whatever
 * the file holds. */
static int load_config(cli_globals_t *g)
{
    cli_globals_t c;
    memset(&c, 0, sizeof c);
    c.log_level = PORT_LOG_INFO;
    const char *path = g->config_path ? g->config_path : getenv("CDNAGENT_CONFIG");
    int required = path != NULL && path[0];
    if (cli_config_load(&c, required ? path : CLI_DEFAULT_CONFIG, required) != 0)
        return -1;
    g->flash_path = g->flash_path ? g->flash_path : c.flash_path ? c.flash_path : CLI_DEFAULT_FLASH;
    g->device_key_path = g->device_key_path ? g->device_key_path : c.device_key_path;
    g->verbose |= c.verbose;
    g->endpoint = c.endpoint;
    g->ca_file = c.ca_file;
    g->credentials = c.credentials;
    g->profile = c.profile;
    g->aliyun_config = c.aliyun_config;
    g->log_level = c.log_level;
    return 0;
}

/* Does the command line ask for a command's help (before any "--")? */
static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

static int run_command(int argc, char **argv, cli_globals_t *g)
{
    static char key_path[4096];
    if (wants_help(argc, argv)) /* help works whatever the configuration file holds */
        g->flash_path = g->flash_path ? g->flash_path : CLI_DEFAULT_FLASH;
    else if (load_config(g) != 0)
        return CLI_EXIT_USAGE;
    cli_set_log_level(g->verbose ? PORT_LOG_DEBUG : g->log_level);
    port_log_set_level(g->verbose ? PORT_LOG_DEBUG : (port_log_level_t)g->log_level);
    /* The device key lives beside the image, never inside it. */
    if (!g->device_key_path) {
        if (snprintf(key_path, sizeof key_path, "%s.key", g->flash_path) >= (int)sizeof key_path)
            return cli_usage_error("--flash path too long");
        g->device_key_path = key_path;
    }
    port_posix_set_device_key_path(g->device_key_path);
    for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
        if (strcmp(argv[0], commands[c].name) == 0) {
            if (commands[c].fn == NULL) { /* help help */
                print_help(stdout);
                return CLI_EXIT_OK;
            }
            int rc = commands[c].fn(argc, argv, g);
            return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : rc;
        }
    }
    return cli_usage_error("unknown command '%s' (see cdnagent --help)", argv[0]);
}

static int cli_main(int argc, char **argv)
{
    cli_globals_t g;
    memset(&g, 0, sizeof g);
    g.log_level = PORT_LOG_INFO;
    if (take_globals(&argc, argv, &g) != 0)
        return CLI_EXIT_USAGE;
    if (argc < 2) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp(first, "-h") == 0 || strcmp(first, "--help") == 0) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "--version") == 0) {
        puts("cdnagent " CDNAGENT_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(first, "help") == 0) {
        if (argc == 2) {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        char *help_argv[] = {argv[2], "--help", NULL};
        return run_command(2, help_argv, &g);
    }
    if (first[0] == '-')
        return cli_usage_error("unknown option '%s' (see cdnagent --help)", first);
    return run_command(argc - 1, argv + 1, &g);
}

/* --json holds stdout from the first step, so that even an error in the
 * global options or the configuration file is its one JSON document. */
int main(int argc, char **argv)
{
    cli_json_hooks();
    cli_json_begin(argc, argv);
    return cli_json_end(cli_main(argc, argv));
}

typedef struct {
    unsigned n;
    uint32_t key_id;
} sealed_count_t;

static void count_sealed(void *arg, const char *store_key, uint32_t key_id, size_t len)
{
    sealed_count_t *c = arg;
    (void)store_key;
    (void)len;
    if (c->n++ == 0)
        c->key_id = key_id;
}

int cli_ensure_device_key(const cli_globals_t *g, store_t *st)
{
    uint8_t k[PORT_DEVICE_KEY_LEN];
    uint32_t id;
    port_status_t ps = port_device_key(k, &id);
    memset(k, 0, sizeof k);
    if (ps == PORT_OK)
        return 0;
    if (ps == PORT_ERR_NOT_SET) {
        sealed_count_t c = {0, 0};
        agent_status_t ar = st ? agent_visit_sealed(st, count_sealed, &c) : AGENT_OK;
        if (ar != AGENT_OK) {
            (void)cli_error("device key %s is missing and %s cannot be read (%s)",
                            g->device_key_path, g->flash_path, agent_status_str(ar));
            return -1;
        }
        if (c.n > 0) {
            (void)cli_error("device key %s is missing, but %s holds %u secret%s sealed under "
                            "key %lu: restore that key file (or name it with --device-key); a new key "
                            "could not open them",
                            g->device_key_path, g->flash_path, c.n, c.n == 1 ? "" : "s",
                            (unsigned long)c.key_id);
            return -1;
        }
        if (port_posix_write_device_key(g->device_key_path, 1) == PORT_OK) {
            fprintf(stderr, "cdnagent: created device key %s (mode 0600; keep it off the flash)\n",
                    g->device_key_path);
            return 0;
        }
        (void)cli_error("cannot create device key %s", g->device_key_path);
        return -1;
    }
    (void)cli_error("device key %s is unusable (must be mode 0600 and well-formed)",
                    g->device_key_path);
    return -1;
}

char *cli_read_text(const char *path, size_t max, size_t *len, int *why)
{
    FILE *f = fopen(path, "rb");
    *why = CLI_READ_ERRNO;
    if (!f)
        return NULL;
    char *b = malloc(max + 2);
    size_t n = b ? fread(b, 1, max + 1, f) : 0;
    int failed = ferror(f); /* a directory reads as an error, not as empty */
    int e = errno;
    fclose(f);
    if (!b)
        return NULL;
    /* (what was read is wiped when refused: it may be a key or a secret) */
    if (failed) {
        crypto_wipe(b, n);
        free(b);
        errno = e ? e : EIO;
        return NULL;
    }
    if (n > max || strlen((b[n] = 0, b)) != n) {
        *why = n > max ? CLI_READ_TOO_BIG : CLI_READ_NOT_TEXT;
        crypto_wipe(b, n);
        free(b);
        return NULL;
    }
    if (len)
        *len = n + 1;
    return b;
}

bool cli_iso_date(int64_t utc, char *buf, size_t cap)
{
    struct tm tm;
    time_t t = (time_t)utc;
    buf[0] = 0;
    return gmtime_r(&t, &tm) != NULL && strftime(buf, cap, "%Y-%m-%d", &tm) > 0;
}

const char *cli_cert_state(bool present, bool on, int json)
{
    if (!present)
        return json ? "null" : "-";
    if (json)
        return on ? "\"on\"" : "\"off\"";
    return on ? "on" : "off";
}
