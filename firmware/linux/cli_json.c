/* --json output: one document on stdout, the command's or its error; see cli.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "crypto.h"

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    for (size_t i = 1; i < n; i++)
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
            return 0;
    return n;
}

/* JSON text must be UTF-8: a byte that is not part of a well-formed
 * sequence (a file name in Latin-1, a message cut mid-character) is
 * written as U+FFFD. */
void cli_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
        size_t n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", out);
            p++;
        } else if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p++);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p++);
        } else {
            fwrite(p, 1, n, out);
            p += n;
        }
    }
    fputc('"', out);
}

/* cJSON's allocations in this process carry their size, so that what it
 * frees is wiped first: the documents it parses (a manifest, an aliyun
 * CLI configuration) hold access key secrets and STS tokens, also when a
 * parse fails halfway. (With its own allocator cJSON does not realloc.) */
static void *wiping_malloc(size_t n)
{
    max_align_t *b = malloc(sizeof(max_align_t) + n);
    if (!b)
        return NULL;
    *(size_t *)(void *)b = n;
    return b + 1;
}

static void wiping_free(void *p)
{
    if (!p)
        return;
    max_align_t *b = (max_align_t *)p - 1;
    crypto_wipe(p, *(size_t *)(void *)b);
    free(b);
}

void cli_json_hooks(void)
{
    cJSON_Hooks h = {wiping_malloc, wiping_free};
    cJSON_InitHooks(&h);
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
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return; /* help is text, whatever else is asked */
        if (strcmp(argv[i], "--json") == 0)
            json_err.wanted = 1;
    }
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

int cli_json_end(int rc)
{
    int wrote = 1;
    if (real_stdout) {
        wrote = fclose(stdout) == 0;
        stdout = real_stdout;
        real_stdout = NULL;
        if (wrote && (rc == CLI_EXIT_OK || !json_err.set))
            wrote = fwrite(held, 1, held_len, stdout) == held_len;
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
    /* output that did not reach its file is a failure, not a success */
    if ((fflush(stdout) != 0 || ferror(stdout) || !wrote) && rc == CLI_EXIT_OK) {
        fputs("cdnagent: cannot write the output\n", stderr);
        return CLI_EXIT_FAILED;
    }
    return rc;
}
