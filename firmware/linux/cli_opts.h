/*
 * cli_opts.h — the one option parser of the cdnagent commands: each command
 * declares its options in a table (name, kind, bounds, help with the
 * default), and cli_parse reads argv with getopt_long against it: long
 * options as "--name VALUE" or "--name=VALUE", short ones where declared,
 * "--" ending the options, options before or after the arguments, "-h" and
 * "--help" printing the command's help, numbers checked against their named
 * bounds. Every refusal is one line naming the command, the option and the
 * fix, and the exit code is CLI_EXIT_USAGE.
 */
#ifndef CDNAGENT_CLI_OPTS_H
#define CDNAGENT_CLI_OPTS_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CLI_OPT_FLAG,   /* no value */
    CLI_OPT_STRING, /* any value */
    CLI_OPT_NUMBER, /* a whole number within [min, max] */
    CLI_OPT_CHOICE, /* one of the words of metavar, "v1|v3" */
} cli_opt_kind_t;

typedef struct {
    const char *name; /* long name without "--"; NULL ends a table */
    char short_name;  /* 0: none */
    cli_opt_kind_t kind;
    const char *metavar; /* the value in the help: "URL", "F", "N" */
    uint32_t min, max;   /* CLI_OPT_NUMBER: the accepted range */
    const char *help;    /* one line, with the default */
} cli_opt_t;

typedef struct {
    const char *name;    /* "sync" */
    const char *args;    /* the arguments in the usage line: "DOMAIN KEY VALUE" */
    const char *summary; /* what the command does, for its help */
    const cli_opt_t *opts;
    unsigned min_args, max_args;
} cli_command_t;

/* Options a command may declare, and arguments it may take. */
#define CLI_OPTS_MAX 24u
#define CLI_ARGS_MAX 72u /* request: an action and up to 64 parameters */
/* Options one command line may give (repeats included). */
#define CLI_GIVEN_MAX 64u

typedef struct {
    const cli_command_t *cmd;
    unsigned ngiven;
    struct {
        const cli_opt_t *opt;
        const char *value; /* NULL for a flag */
        uint32_t number;   /* CLI_OPT_NUMBER; CLI_OPT_CHOICE: the word's index */
    } given[CLI_GIVEN_MAX];
    unsigned nargs;
    char *args[CLI_ARGS_MAX];
} cli_parsed_t;

/* The table of a command whose only option is --json (status, queue,
 * inspect, fsck). */
extern const cli_opt_t cli_json_opts[];

/* Choices several commands share, and the index of each word. */
#define CLI_SIGNATURE_CHOICES "v1|v3"
enum { CLI_SIGNATURE_V1 = 0, CLI_SIGNATURE_V3 = 1 };

/* What cli_parse returns besides CLI_EXIT_USAGE. */
enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = -1 };

/* Parse argv (argv[0] is the command's name; argv is permuted). Returns
 * CLI_PARSE_OK, CLI_PARSE_HELP (the help was printed on stdout: exit 0),
 * or CLI_EXIT_USAGE (one line printed on stderr). */
int cli_parse(const cli_command_t *cmd, int argc, char **argv, cli_parsed_t *out);

/* The last value given for option name (NULL when not given); whether a
 * flag or option was given; a number's value or dflt. The name must be in
 * the command's table (a misspelt name in the code aborts, so tests find
 * it). */
const char *cli_opt_str(const cli_parsed_t *p, const char *name);
int cli_opt_given(const cli_parsed_t *p, const char *name);
uint32_t cli_opt_num(const cli_parsed_t *p, const char *name, uint32_t dflt);
/* A choice's index in its metavar's words ("v1|v3": v1 0, v3 1), or dflt;
 * cli_choice_index the same for a word from elsewhere (the configuration
 * file): -1 when it is none of them. */
#define cli_opt_choice cli_opt_num
int cli_choice_index(const char *words, const char *word);

/* The command's help: usage, summary, every option with its default, the
 * global options. */
void cli_help(FILE *out, const cli_command_t *cmd);

#ifdef __cplusplus
}
#endif

#endif
