/* The commands' option parser; see cli_opts.h. */
#include "cli_opts.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define OPT_HELP 'h'
#define OPT_BASE 256 /* getopt_long's val for table entry i: OPT_BASE + i */

const cli_opt_t cli_json_opts[] = {
    {"json", 0, CLI_OPT_FLAG, NULL, 0, 0, "JSON instead of lines"},
    {NULL, 0, 0, NULL, 0, 0, NULL},
};

static unsigned table_len(const cli_opt_t *opts)
{
    unsigned n = 0;
    while (opts && opts[n].name)
        n++;
    return n;
}

/* getopt_long's tables from the command's; false when it has too many. */
static int build(const cli_command_t *cmd, struct option *lo, char *shorts, size_t cap)
{
    unsigned n = table_len(cmd->opts);
    size_t at = 0;
    if (n > CLI_OPTS_MAX)
        return 0;
    shorts[at++] = '-'; /* arguments come back in order (even under POSIXLY_CORRECT) */
    shorts[at++] = ':'; /* a missing value is ':', not '?' */
    shorts[at++] = OPT_HELP;
    for (unsigned i = 0; i < n; i++) {
        const cli_opt_t *o = &cmd->opts[i];
        lo[i] = (struct option){o->name, o->kind == CLI_OPT_FLAG ? no_argument : required_argument,
                                NULL, OPT_BASE + (int)i};
        if (o->short_name && at + 3 < cap) {
            shorts[at++] = o->short_name;
            if (o->kind != CLI_OPT_FLAG)
                shorts[at++] = ':';
        }
    }
    lo[n] = (struct option){"help", no_argument, NULL, OPT_HELP};
    lo[n + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[at] = '\0';
    return 1;
}

static const cli_opt_t *by_short(const cli_command_t *cmd, int c)
{
    for (unsigned i = 0; cmd->opts && cmd->opts[i].name; i++)
        if (cmd->opts[i].short_name == c)
            return &cmd->opts[i];
    return NULL;
}

static int number(const cli_command_t *cmd, const cli_opt_t *o, const char *text, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (!*text || *end || text[0] == '-' || errno || v < o->min || v > o->max)
        return cli_usage_error("%s: --%s must be a whole number from %lu to %lu (got '%s')",
                               cmd->name, o->name, (unsigned long)o->min, (unsigned long)o->max,
                               text);
    *out = (uint32_t)v;
    return CLI_PARSE_OK;
}

int cli_choice_index(const char *words, const char *word)
{
    size_t n = strlen(word);
    int i = 0;
    for (const char *w = words; *w; i++) {
        size_t len = strcspn(w, "|");
        if (n && len == n && util_ascii_eq_nocase_n(w, word, n)) /* V1 as v1 */
            return i;
        w += len + (w[len] == '|');
    }
    return -1;
}

static int choice(const cli_command_t *cmd, const cli_opt_t *o, const char *text, uint32_t *out)
{
    int i = cli_choice_index(o->metavar, text);
    if (i < 0)
        return cli_usage_error("%s: --%s must be %s (got '%s')", cmd->name, o->name, o->metavar,
                               text);
    *out = (uint32_t)i;
    return CLI_PARSE_OK;
}

static int take(const cli_command_t *cmd, const cli_opt_t *o, const char *value, cli_parsed_t *p)
{
    if (p->ngiven == CLI_GIVEN_MAX)
        return cli_usage_error("%s: more than %u options", cmd->name, CLI_GIVEN_MAX);
    uint32_t n = 0;
    if (o->kind == CLI_OPT_NUMBER && number(cmd, o, value, &n) != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    if (o->kind == CLI_OPT_CHOICE && choice(cmd, o, value, &n) != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    p->given[p->ngiven].opt = o;
    p->given[p->ngiven].value = o->kind == CLI_OPT_FLAG ? NULL : value;
    p->given[p->ngiven].number = n;
    p->ngiven++;
    return CLI_PARSE_OK;
}

/* getopt_long's complaint, in our words. */
static int refused(const cli_command_t *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return cli_usage_error("%s: %s needs a value (see cdnagent %s --help)", cmd->name, arg,
                               cmd->name);
    if (optopt >= OPT_BASE || (optopt == OPT_HELP && strncmp(arg, "--", 2) == 0))
        return cli_usage_error("%s: %.*s takes no value (see cdnagent %s --help)", cmd->name,
                               (int)strcspn(arg, "="), arg, cmd->name);
    if (optopt)
        return cli_usage_error("%s: unknown option -%c (see cdnagent %s --help)", cmd->name, optopt,
                               cmd->name);
    return cli_usage_error("%s: unknown option %s (see cdnagent %s --help)", cmd->name, arg,
                           cmd->name);
}

/* An argument, in order; false past CLI_ARGS_MAX. */
static bool add_arg(cli_parsed_t *p, char *arg, unsigned *seen)
{
    if (p->nargs < CLI_ARGS_MAX)
        p->args[p->nargs++] = arg;
    return ++*seen <= CLI_ARGS_MAX;
}

/* The count is checked once all are seen (those after "--" too). */
static int arguments(const cli_command_t *cmd, int argc, char **argv, cli_parsed_t *p, unsigned seen)
{
    for (int i = optind; i < argc; i++)
        (void)add_arg(p, argv[i], &seen);
    if (seen < cmd->min_args || seen > cmd->max_args || seen > CLI_ARGS_MAX)
        return cli_usage_error("%s: %s arguments (usage: cdnagent %s%s%s; see --help)", cmd->name,
                               seen < cmd->min_args ? "missing" : "too many", cmd->name,
                               cmd->args[0] ? " " : "", cmd->args);
    return CLI_PARSE_OK;
}

int cli_parse(const cli_command_t *cmd, int argc, char **argv, cli_parsed_t *out)
{
    struct option lo[CLI_OPTS_MAX + 2];
    char shorts[2 * CLI_OPTS_MAX + 4];
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    if (!build(cmd, lo, shorts, sizeof shorts))
        return cli_usage_error("%s: too many options declared", cmd->name);
    optind = 0; /* glibc: start afresh */
    opterr = 0;
    unsigned seen = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shorts, lo, NULL);
        if (c == -1)
            break;
        if (c == 1) { /* an argument, where it stands */
            (void)add_arg(out, optarg, &seen);
            continue;
        }
        if (c == OPT_HELP) {
            cli_help(stdout, cmd);
            return CLI_PARSE_HELP;
        }
        const cli_opt_t *o = c >= OPT_BASE ? &cmd->opts[c - OPT_BASE] : by_short(cmd, c);
        if (c == '?' || c == ':' || o == NULL)
            return refused(cmd, c, argv);
        if (take(cmd, o, optarg, out) != CLI_PARSE_OK)
            return CLI_EXIT_USAGE;
    }
    return arguments(cmd, argc, argv, out, seen);
}

static const cli_opt_t *declared(const cli_parsed_t *p, const char *name)
{
    for (unsigned i = 0; p->cmd->opts && p->cmd->opts[i].name; i++)
        if (strcmp(p->cmd->opts[i].name, name) == 0)
            return &p->cmd->opts[i];
    fprintf(stderr, "cdnagent: internal error: %s has no option --%s\n", p->cmd->name, name);
    abort();
}

static int last(const cli_parsed_t *p, const char *name)
{
    const cli_opt_t *o = declared(p, name);
    for (unsigned i = p->ngiven; i-- > 0;)
        if (p->given[i].opt == o)
            return (int)i;
    return -1;
}

const char *cli_opt_str(const cli_parsed_t *p, const char *name)
{
    int i = last(p, name);
    return i < 0 ? NULL : p->given[i].value;
}

int cli_opt_given(const cli_parsed_t *p, const char *name)
{
    return last(p, name) >= 0;
}

uint32_t cli_opt_num(const cli_parsed_t *p, const char *name, uint32_t dflt)
{
    int i = last(p, name);
    return i < 0 ? dflt : p->given[i].number;
}

void cli_help(FILE *out, const cli_command_t *cmd)
{
    fprintf(out, "usage: cdnagent [GLOBAL OPTIONS] %s%s%s%s\n\n%s\n", cmd->name,
            table_len(cmd->opts) ? " [OPTIONS]" : "", cmd->args[0] ? " " : "", cmd->args,
            cmd->summary);
    fputs("\noptions:\n", out);
    for (unsigned i = 0; cmd->opts && cmd->opts[i].name; i++) {
        const cli_opt_t *o = &cmd->opts[i];
        char left[64];
        snprintf(left, sizeof left, "%s%c%s--%s%s%s", o->short_name ? "-" : "",
                 o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
                 o->kind == CLI_OPT_FLAG ? "" : " ", o->kind == CLI_OPT_FLAG ? "" : o->metavar);
        if (strlen(left) > 28)
            fprintf(out, "  %s\n  %-28s %s\n", left, "", o->help); /* too wide: help below */
        else
            fprintf(out, "  %-28s %s\n", left, o->help);
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "this help");
    fputs("\nglobal options (before or after the command):\n"
          "  --flash PATH                 the device image (default " CLI_DEFAULT_FLASH ")\n"
          "  --device-key PATH            the device key (default: the image's path + .key)\n"
          "  -v, --verbose                more detail on stderr\n"
          "  --config FILE                settings file (flash, device_key, endpoint, ca_file,\n"
          "                               credentials, profile, aliyun_config, log_level;\n"
          "                               default " CLI_DEFAULT_CONFIG ")\n",
          out);
}
