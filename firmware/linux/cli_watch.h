/*
 * cli_watch.h — certificates renewed from files without a person: a domain
 * whose certificate was set with `cert set --watch` (or a manifest's
 * certificate.watch) names its PEM files; sync once and run every second
 * read them, and a pair whose content (SHA-256 of both files, not the
 * mtime) differs from the last one taken is checked as the service would
 * (parse, key match, not expired, covers the domain) and must not be
 * older than the certificate in place; then it is stored and queued like
 * `cert set`. A broken or half-written file is refused with its reason,
 * said once per content, and the certificate in place stays.
 */
#ifndef CDNAGENT_CLI_WATCH_H
#define CDNAGENT_CLI_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_flash.h"

/* Refusals already said (domain, content, reason), the last this many;
 * and per domain the content the last look saw. */
#define CLI_WATCH_MEMO 64u
typedef struct {
    uint8_t said[CLI_WATCH_MEMO][32];
    size_t n, next;
    struct {
        uint8_t domain[32], content[32];
    } seen[CLI_WATCH_MEMO];
    size_t nseen;
    unsigned pending; /* new contents the last look saw for the first time */
} cli_watch_memo_t;

/* One look at every watched domain of the image (locks it around the
 * look). A new content is taken when the next look sees it unchanged (a
 * writer busy with the file is not caught halfway). 0; 1 when a new
 * content waits for that second look; -1 when the store could not be read
 * (said by the caller's next step, which meets the same). */
int cli_watch_step(cli_flash_t *f, cli_watch_memo_t *memo, const char *cmd);

/* A pair's hash, what a watch compares: the certificate, a NUL, the key.
 * false when it cannot be had (then out is undefined). */
bool cli_watch_pair_hash(const char *cert, const char *key, uint8_t out[32]);

/* Whether this refusal was said already (and remember it when not). */
bool cli_watch_memo_seen(cli_watch_memo_t *memo, const char *domain, const uint8_t hash[32],
                         const char *reason);

#endif /* CDNAGENT_CLI_WATCH_H */
