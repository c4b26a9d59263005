/* --json output: one document on stdout, the command's or its error; see cli.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* While a --json command runs, stdout is a memory stream and real_stdout
 * the process's: an error met halfway replaces the document instead of
 * following half of it. */
static FILE *real_stdout;
static char *held;
static size_t held_len;
static struct {
    int wanted, set;
    char code[64], message[1024], request_id[96];
} json_err;

void cli_json_begin(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            json_err.wanted = 1;
    if (!json_err.wanted)
        return;
    fflush(stdout);
    FILE *mem = open_memstream(&held, &held_len);
    if (mem) { /* (without memory the document is printed as it goes) */
        real_stdout = stdout;
        stdout = mem;
    }
}

void cli_json_error(const char *code, const char *message, const char *request_id)
{
    if (!json_err.wanted || json_err.set)
        return;
    snprintf(json_err.code, sizeof json_err.code, "%s", code);
    snprintf(json_err.message, sizeof json_err.message, "%s", message);
    snprintf(json_err.request_id, sizeof json_err.request_id, "%s", request_id);
    json_err.set = 1;
}

void cli_json_end(int rc)
{
    if (real_stdout) {
        fclose(stdout);
        stdout = real_stdout;
        real_stdout = NULL;
        if (rc == CLI_EXIT_OK || !json_err.set)
            fwrite(held, 1, held_len, stdout);
        free(held);
        held = NULL;
    }
    if (rc != CLI_EXIT_OK && json_err.set) {
        fputs("{\"Code\":", stdout);
        cli_json_str(stdout, json_err.code);
        fputs(",\"Message\":", stdout);
        cli_json_str(stdout, json_err.message);
        fputs(",\"RequestId\":", stdout);
        cli_json_str(stdout, json_err.request_id);
        fputs("}\n", stdout);
    }
    fflush(stdout);
}
