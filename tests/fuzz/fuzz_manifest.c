/* Fuzz harness: the provisioning manifest parser of the Linux CLI
 * (firmware/linux/cmd_provision.c: parse_manifest, static).
 *
 * The parser is reached without touching cmd_provision.c: this file
 * includes it, so its static functions are in this translation unit. The
 * CLI helpers it calls from main.c are defined here instead (main.c holds
 * the CLI's main); cli_read_text is a virtual file system, so a manifest
 * naming files never reads the machine's (no /dev/stdin, no /proc).
 *
 * Input: the manifest text up to the first NUL; after it, NUL-separated
 * blobs that are the contents of the files the parser reads, in the order
 * it reads them (ca_bundle, then each domain's certificate and key). A
 * read past the last blob finds no file.
 *
 * Oracle (tools/provision/README.md, the parser's own rules): a manifest
 * accepted without errors holds what the schema allows (https endpoint
 * without a path, printable key id, retry cap >= base, flash geometry the
 * store supports, 1..64 distinct valid domain names, headers that pass
 * cdnapi_validate_header and are unique per domain regardless of case, a
 * CA bundle with a certificate); and it provisions: written the way
 * write_image does onto an emulated NOR flash of its geometry, the agent
 * accepts every part of it (only a full store may stop it) and loads back
 * the settings it was given. A rejected manifest reports at most
 * MAX_ERRORS lines (the rest are counted) and none is empty. */
#include "../../firmware/linux/cmd_provision.c"

#include <stdbool.h>
#include <stdint.h>

#include "emu_flash.h"
#include "fuzz_common.h"
#include "fuzz_device_key.h"

/* ------------------------------------------- what main.c provides -- */

static const uint8_t *vfs_next; /* the next blob */
static size_t vfs_left;
static bool vfs_used; /* an input without blobs: every read fails */

char *cli_read_text(const char *path, size_t max, size_t *len, int *why)
{
    (void)path;
    *why = CLI_READ_ERRNO;
    if (!vfs_used) {
        errno = ENOENT;
        return NULL;
    }
    const uint8_t *z = memchr(vfs_next, 0, vfs_left);
    size_t n = z ? (size_t)(z - vfs_next) : vfs_left;
    const uint8_t *blob = vfs_next;
    vfs_next += z ? n + 1 : n;
    vfs_left -= z ? n + 1 : n;
    vfs_used = z != NULL; /* the last blob ends the input */
    if (n > max) {
        *why = CLI_READ_TOO_BIG;
        return NULL;
    }
    char *b = malloc(n + 1);
    if (!b)
        return NULL;
    memcpy(b, blob, n);
    b[n] = 0;
    if (len)
        *len = n + 1;
    return b;
}

void cli_json_str(FILE *out, const char *s)
{
    fprintf(out, "\"%s\"", s ? s : "");
}

const char *cli_cert_state(bool present, bool on, int json)
{
    return !present ? (json ? "null" : "-") : on ? "on" : "off";
}

int cli_ensure_device_key(const cli_globals_t *g, store_t *st)
{
    (void)g;
    (void)st;
    return 0;
}

int cli_usage_error(const char *fmt, ...)
{
    (void)fmt;
    return CLI_EXIT_USAGE;
}

/* ---------------------------------------------------------- oracle -- */

static bool pow2(uint32_t v)
{
    return v && (v & (v - 1)) == 0;
}

static void check_accepted(const manifest_t *m)
{
    const char *ep = m->set.endpoint;
    FZ_CHECK(strncmp(ep, "https://", 8) == 0 && ep[8] && !strchr(ep + 8, '/') && !strchr(ep, ' '),
             "accepted endpoint \"%s\"", ep);
    char host[AGENT_ENDPOINT_MAX + 1];
    uint16_t port;
    bool tls;
    FZ_CHECK(agent_endpoint_split(ep, host, sizeof host, &port, &tls) == AGENT_OK && tls,
             "accepted endpoint \"%s\" that the agent cannot use", ep);
    FZ_CHECK(m->set.access_key_id[0] && m->set.access_key_secret[0], "accepted empty credentials");
    for (const char *p = m->set.access_key_id; *p; p++)
        FZ_CHECK(*p > ' ' && *p <= '~', "accepted key id with byte 0x%02x", (unsigned char)*p);
    FZ_CHECK(m->set.policy.cap_ms >= m->set.policy.base_ms, "accepted retry cap below base");
    FZ_CHECK(pow2(m->sector_size) && m->sector_size >= 512 && m->sector_size <= 65536 &&
                 m->sector_count >= 3 && m->sector_count <= 4096 && pow2(m->write_size) &&
                 m->write_size <= 32,
             "accepted flash geometry %u x %u, write %u", m->sector_size, m->sector_count,
             m->write_size);
    FZ_CHECK(m->ca_pem && count_pem_certs(m->ca_pem) > 0, "accepted without a CA certificate");
    FZ_CHECK(m->ndomains >= 1 && m->ndomains <= (int)AGENT_MAX_DOMAINS, "accepted %d domains",
             m->ndomains);
    for (int i = 0; i < m->ndomains; i++) {
        const m_domain_t *d = &m->domains[i];
        FZ_CHECK(agent_domain_name_ok(d->name) && d->name[0] != '.' && d->name[0] != '-',
                 "accepted domain name \"%s\"", d->name);
        for (int j = 0; j < i; j++)
            FZ_CHECK(strcmp(d->name, m->domains[j].name) != 0, "accepted duplicate domain %s",
                     d->name);
        for (int h = 0; h < d->nheaders; h++) {
            cdnapi_result_t r;
            FZ_CHECK(cdnapi_validate_header(d->name, d->headers[h].key, d->headers[h].value, &r) ==
                         CDNAPI_SUCCESS,
                     "accepted header %s of %s that cdnapi refuses: %s", d->headers[h].key, d->name,
                     r.code);
            for (int k = 0; k < h; k++)
                FZ_CHECK(strcasecmp(d->headers[h].key, d->headers[k].key) != 0,
                         "accepted duplicate header %s in %s", d->headers[h].key, d->name);
        }
        FZ_CHECK((d->cert_pem == NULL) == (d->key_pem == NULL),
                 "accepted a certificate without its key (or the reverse) for %s", d->name);
    }
}

/* Provision onto an emulated device like write_image does, then read the
 * settings back. Geometries above 1 MiB are skipped (time per input). */
static void check_provisions(const manifest_t *m)
{
    static bool have_key;
    if ((uint64_t)m->sector_size * m->sector_count > (1u << 20))
        return;
    if (!have_key) {
        fz_device_key_setup(1, NULL, NULL);
        have_key = true;
    }
    emu_flash_t emu;
    if (emu_flash_init(&emu, m->sector_size, m->sector_count, m->write_size) != 0)
        return;
    size_t ws = STORE_WORK_SIZE(m->sector_count);
    uint8_t *work = malloc(ws);
    store_t st;
    if (!work) {
        emu_flash_free(&emu);
        return;
    }
    store_status_t sr = store_format(&st, &emu.dev, work, ws);
    FZ_CHECK(sr == STORE_OK, "store_format on the manifest's geometry %u x %u/%u: %s",
             m->sector_size, m->sector_count, m->write_size, store_status_str(sr));
    const char *stage = "format";
    agent_status_t ar = provision_store(&st, m, &stage);
    FZ_CHECK(ar == AGENT_OK || agent_status_store(ar) != STORE_OK,
             "an accepted manifest does not provision: writing %s: %s", stage, agent_status_str(ar));
    if (ar == AGENT_OK) {
        static agent_settings_t got;
        char *ca = NULL;
        ar = agent_settings_load(&st, &got, &ca);
        FZ_CHECK(ar == AGENT_OK, "provisioned settings do not load: %s", agent_status_str(ar));
        FZ_CHECK(strcmp(got.endpoint, m->set.endpoint) == 0 &&
                     strcmp(got.access_key_id, m->set.access_key_id) == 0 &&
                     strcmp(got.access_key_secret, m->set.access_key_secret) == 0 &&
                     strcmp(got.security_token, m->set.security_token) == 0 &&
                     got.signature == m->set.signature &&
                     got.policy.base_ms == m->set.policy.base_ms &&
                     got.policy.cap_ms == m->set.policy.cap_ms &&
                     got.policy.warn_every == m->set.policy.warn_every &&
                     got.rate_milli == m->set.rate_milli && ca && strcmp(ca, m->ca_pem) == 0,
                 "provisioned settings load back different");
        agent_settings_wipe(&got);
        port_free(ca);
    }
    free(work);
    emu_flash_free(&emu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    static manifest_t m;
    errs_t e;
    if (!inited) {
        cdnapi_init();
        inited = true;
    }
    const uint8_t *z = memchr(data, 0, size);
    size_t tl = z ? (size_t)(z - data) : size;
    char *text = malloc(tl + 1);
    if (!text)
        return 0;
    memcpy(text, data, tl);
    text[tl] = 0;
    vfs_used = z != NULL;
    vfs_next = z ? z + 1 : data + size;
    vfs_left = z ? size - tl - 1 : 0;

    memset(&e, 0, sizeof e);
    parse_manifest(text, "", &m, &e);
    free(text);
    FZ_CHECK(e.n >= 0 && e.n <= MAX_ERRORS && e.dropped >= 0, "%d errors, %d dropped", e.n,
             e.dropped);
    for (int i = 0; i < e.n; i++)
        FZ_CHECK(e.lines[i] && e.lines[i][0], "error line %d is empty", i);
    if (e.n == 0) {
        check_accepted(&m);
        check_provisions(&m);
    }
    errs_free(&e);
    manifest_free(&m);
    return 0;
}
