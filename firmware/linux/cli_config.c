/* The configuration file (/etc/cdnagent/cdnagent.conf); see cli.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "port.h"

/* The file's text, kept for the process's life: the settings point into it. */
static char *config_text;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int log_level(const char *v, cli_globals_t *g)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0) {
            g->log_level = i;
            g->verbose = i == PORT_LOG_DEBUG;
            return 0;
        }
    return -1;
}

/* One "key = value" line; 0, or -1 with why set. */
static int setting(char *key, char *value, cli_globals_t *g, const char **why)
{
    const char **slot = strcmp(key, "flash") == 0           ? &g->flash_path
                        : strcmp(key, "device_key") == 0    ? &g->device_key_path
                        : strcmp(key, "endpoint") == 0      ? &g->endpoint
                        : strcmp(key, "ca_file") == 0       ? &g->ca_file
                        : strcmp(key, "credentials") == 0   ? &g->credentials
                        : strcmp(key, "profile") == 0       ? &g->profile
                        : strcmp(key, "aliyun_config") == 0 ? &g->aliyun_config
                                                            : NULL;
    if (!*value) {
        *why = "has no value";
        return -1;
    }
    if (strcmp(key, "log_level") == 0) {
        *why = "must be error, warning, info or debug";
        return log_level(value, g);
    }
    if (!slot) {
        *why = "is not a setting (flash, device_key, endpoint, ca_file, credentials, profile, "
               "aliyun_config, log_level)";
        return -1;
    }
    *slot = value;
    return 0;
}

static int parse(const char *path, char *text, cli_globals_t *g)
{
    unsigned lineno = 0;
    for (char *line = text; line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        line = nl ? nl + 1 : NULL;
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        const char *why = "is not 'key = value'";
        if (eq) {
            *eq = '\0';
            char *key = trim(s);
            if (setting(key, trim(eq + 1), g, &why) == 0)
                continue;
            cli_usage_error("config %s, line %u: %s %s (see cdnagent(1), FILES)", path, lineno, key,
                            why);
        } else {
            cli_usage_error("config %s, line %u: %s %s", path, lineno, s, why);
        }
        return -1;
    }
    return 0;
}

int cli_config_load(cli_globals_t *g, const char *path, int required)
{
    int why;
    char *text = cli_read_text(path, CLI_CONFIG_MAX, NULL, &why);
    if (!text) {
        if (!required && why == CLI_READ_ERRNO && errno == ENOENT)
            return 0;
        cli_usage_error("config %s: %s", path,
                        why == CLI_READ_TOO_BIG    ? "larger than 64 KB"
                        : why == CLI_READ_NOT_TEXT ? "not a text file"
                                                   : strerror(errno));
        return -1;
    }
    free(config_text);
    config_text = text;
    return parse(path, text, g);
}
