/* In-image TLS peer for the firmware scenario: see peer.h. */
#define _DEFAULT_SOURCE /* strtok_r, strncasecmp, gmtime_r */
#include "peer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "app.h"
#include "port_cortexm.h"
#include "sign.h"

#define PIPE_MAX (24u * 1024u) /* one direction of the memory "socket" */
#define REQ_MAX (24u * 1024u)  /* one HTTP request (a certificate push is ~4 KB) */
#define RESP_MAX (8u * 1024u)
#define PARAMS_MAX 24
#define PEER_CLOCK_SLACK_S 300 /* how far a request's date may be from the clock */

static struct {
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ctr_drbg_context drbg;
    uint8_t c2s[PIPE_MAX];
    size_t c2s_len;
    uint8_t s2c[PIPE_MAX];
    size_t s2c_off, s2c_len;
    bool open, handshake_done, broken;
    char req[REQ_MAX + 1];
    size_t req_len;
    char resp[RESP_MAX];
    cJSON *rec;
    const cJSON *steps;
    unsigned nsteps, answered, mismatches, handshakes;
    int close_after; /* answer of this step says Connection: close (-1: never) */
    char last_action[64];
    char actions[128]; /* answered since peer_take_actions, '+'-joined */
} P;

/* The peer's own heap, so the main heap's high-water mark is the agent's:
 * power-of-two size classes with a free list each, carved from a static
 * area (mbedTLS's bignum code allocates and frees small blocks all the time,
 * so blocks must be reused). */
#define PEER_HEAP_BYTES (256u * 1024u)
#define PEER_CLASSES 20
static uint64_t peer_heap[PEER_HEAP_BYTES / 8u];
static size_t peer_heap_used; /* in 8-byte words */
static uint64_t *peer_free[PEER_CLASSES];

static void *peer_alloc(size_t n)
{
    unsigned c = 4;
    uint64_t *blk;
    while (c < PEER_CLASSES && ((size_t)1 << c) < n + 8u)
        c++;
    if (c == PEER_CLASSES)
        return NULL;
    if (peer_free[c] != NULL) {
        blk = peer_free[c];
        peer_free[c] = (uint64_t *)(uintptr_t)blk[1];
    } else {
        size_t words = ((size_t)1 << c) / 8u;
        if (words > PEER_HEAP_BYTES / 8u - peer_heap_used)
            return NULL;
        blk = &peer_heap[peer_heap_used];
        peer_heap_used += words;
    }
    blk[0] = c; /* the class, kept in front of the block */
    return blk + 1;
}

static void peer_release(void *p)
{
    uint64_t *blk = (uint64_t *)p - 1;
    unsigned c = (unsigned)blk[0];
    blk[1] = (uint64_t)(uintptr_t)peer_free[c];
    peer_free[c] = blk;
}

/* The peer's own stack, so the port's stack watermark sees the agent only. */
static uint64_t peer_stack[2048];

static void on_peer_stack(void (*fn)(void))
{
    void *top = peer_stack + sizeof peer_stack / sizeof peer_stack[0];
    port_heap_exclude(true);
    __asm__ volatile("mov r4, sp\n\t"
                     "mov sp, %1\n\t"
                     "blx %0\n\t"
                     "mov sp, r4\n\t"
                     :
                     : "r"(fn), "r"(top)
                     : "r0", "r1", "r2", "r3", "r4", "r12", "lr", "cc", "memory");
    port_heap_exclude(false);
}

/* ------------------------------------------------- server-side BIO -- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    (void)ctx;
    if (P.s2c_off > 0 && P.s2c_off == P.s2c_len)
        P.s2c_off = P.s2c_len = 0;
    if (len > PIPE_MAX - P.s2c_len)
        len = PIPE_MAX - P.s2c_len;
    if (len == 0)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    memcpy(P.s2c + P.s2c_len, buf, len);
    P.s2c_len += len;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    if (P.c2s_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > P.c2s_len)
        len = P.c2s_len;
    memcpy(buf, P.c2s, len);
    memmove(P.c2s, P.c2s + len, P.c2s_len - len);
    P.c2s_len -= len;
    return (int)len;
}

/* ------------------------------------------------ request checking -- */

typedef struct {
    char name[40];
    char *value; /* points into P.req, decoded in place */
} param_t;

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static void url_decode(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            *o++ = *s == '+' ? ' ' : *s;
        }
    }
    *o = 0;
}

/* Split "a=1&b=2" (in place) into params; the signature-only fields that
 * change every call are left out, as in the recording. */
static int parse_params(char *q, param_t *out, int n)
{
    char *save = NULL, *kv;
    for (kv = strtok_r(q, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL)
            continue;
        *eq = 0;
        url_decode(kv);
        url_decode(eq + 1);
        if (strcmp(kv, "Signature") == 0 || strcmp(kv, "SignatureNonce") == 0 ||
            strcmp(kv, "Timestamp") == 0)
            continue;
        if (n == PARAMS_MAX || strlen(kv) >= sizeof out[0].name)
            return -1;
        strcpy(out[n].name, kv);
        out[n].value = eq + 1;
        n++;
    }
    return n;
}

static const char *find_header(char *head, const char *name)
{
    size_t nl = strlen(name);
    char *line = strstr(head, "\r\n");
    while (line != NULL && line[2] != '\r') {
        char *h = line + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            char *v = h + nl + 1;
            while (*v == ' ')
                v++;
            return v;
        }
        line = strstr(h, "\r\n");
    }
    return NULL;
}

/* A recorded value, with the PKI placeholders ("<cert:NAME>") resolved to
 * the files built into the image. */
static const char *expected_value(const char *v)
{
    size_t n = strlen(v);
    if (n > 7 && v[0] == '<' && v[n - 1] == '>' &&
        (strncmp(v, "<cert:", 6) == 0 || strncmp(v, "<key:", 5) == 0)) {
        static char name[64];
        const char *colon = strchr(v, ':');
        const app_blob_t *b;
        snprintf(name, sizeof name, "%.*s", (int)(n - 2 - (size_t)(colon - v)), colon + 1);
        b = app_blob(name);
        return b ? b->data : "<missing blob>";
    }
    return v;
}

static bool check_request(const cJSON *step, const char *method, const char *action,
                          const param_t *ps, int np)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(step, "params");
    const cJSON *it;
    int nwant = 0, i;
    const char *wa = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(step, "action"));
    const char *wm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(step, "method"));
    bool ok = true;
    if (wa == NULL || action == NULL || strcmp(wa, action) != 0) {
        printf("# peer: step %u: action %s, recorded %s\n", P.answered, action ? action : "-",
               wa ? wa : "-");
        ok = false;
    }
    if (wm == NULL || strcmp(wm, method) != 0) {
        printf("# peer: step %u: method %s, recorded %s\n", P.answered, method, wm ? wm : "-");
        ok = false;
    }
    cJSON_ArrayForEach(it, want)
    {
        const char *wv = cJSON_GetStringValue(it);
        bool found = false;
        nwant++;
        for (i = 0; i < np; i++)
            if (strcmp(ps[i].name, it->string) == 0) {
                found = true;
                if (wv == NULL || strcmp(ps[i].value, expected_value(wv)) != 0) {
                    printf("# peer: step %u: %s differs from the recording\n", P.answered,
                           it->string);
                    ok = false;
                }
            }
        if (!found) {
            printf("# peer: step %u: %s missing\n", P.answered, it->string);
            ok = false;
        }
    }
    if (np != nwant) {
        printf("# peer: step %u: %d parameters, recorded %d\n", P.answered, np, nwant);
        ok = false;
    }
    return ok;
}

/* A header's value, copied out NUL-terminated ("" when absent). */
static void header_value(char *head, const char *name, char *out, size_t cap)
{
    const char *v = find_header(head, name);
    size_t n = v ? strcspn(v, "\r") : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v ? v : "", n);
    out[n] = 0;
}

/* The request's V3 signature, recomputed here from what arrived (host,
 * action, parameters, x-acs-date, nonce) with the device's secret from the
 * built-in manifest, must equal the Authorization it carries; and its date
 * must be the device's clock. This catches on the target what a replay of
 * parameters alone cannot: a timestamp, nonce or canonical request that the
 * device's libc formats differently. */
static bool check_signature(char *head, const char *method, const char *action, const param_t *ps,
                            int np)
{
    static char rebuilt[REQ_MAX];
    char host[128], date[32], nonce[80], version[32], auth[400];
    sign_param_t sp[PARAMS_MAX];
    sign_credentials_t cr = {NULL, NULL, NULL};
    sign_request_t rq;
    const app_blob_t *mb = app_blob("manifest.json");
    cJSON *man = mb ? cJSON_ParseWithLength(mb->data, mb->len) : NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(man, "credentials");
    const char *want;
    size_t len = 0;
    sign_signed_t sg;
    int64_t now = 0;
    char lo[SIGN_TIMESTAMP_LEN + 1], hi[SIGN_TIMESTAMP_LEN + 1];
    bool ok = true;
    int i;
    header_value(head, "Host", host, sizeof host);
    header_value(head, "x-acs-date", date, sizeof date);
    header_value(head, "x-acs-signature-nonce", nonce, sizeof nonce);
    header_value(head, "x-acs-version", version, sizeof version);
    header_value(head, "Authorization", auth, sizeof auth);
    cr.access_key_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "access_key_id"));
    cr.access_key_secret = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(c, "access_key_secret"));
    for (i = 0; i < np; i++) {
        sp[i].name = ps[i].name;
        sp[i].name_len = strlen(ps[i].name);
        sp[i].value = ps[i].value;
        sp[i].value_len = strlen(ps[i].value);
    }
    memset(&rq, 0, sizeof rq);
    rq.credentials = &cr;
    rq.host = host;
    rq.action = action;
    rq.api_version = version;
    rq.params = sp;
    rq.param_count = (size_t)np;
    rq.method = strcmp(method, "GET") == 0 ? SIGN_METHOD_GET : SIGN_METHOD_POST;
    rq.version = SIGN_V3;
    rq.timestamp = date;
    rq.nonce = nonce;
    rebuilt[0] = '\r'; /* sign's header lines after a line end, as in the request */
    rebuilt[1] = '\n';
    if (cr.access_key_id == NULL || cr.access_key_secret == NULL ||
        sign_request(&rq, &sg) != SIGN_OK ||
        (len = sign_encode_headers(&rq, &sg, rebuilt + 2, sizeof rebuilt - 2)) == 0 ||
        len + 2 >= sizeof rebuilt) {
        printf("# peer: step %u: cannot re-sign the request (date \"%s\", nonce \"%s\")\n",
               P.answered, date, nonce);
        ok = false;
    } else if ((want = strstr(rebuilt, "\r\nAuthorization: ")) == NULL ||
               strncmp(want + 17, auth, strlen(auth)) != 0 || want[17 + strlen(auth)] != '\r') {
        printf("# peer: step %u: the Authorization does not match the request's content\n",
               P.answered);
        ok = false;
    }
    (void)port_wall_clock(&now);
    /* Timestamps of one fixed format order as strings: within 5 minutes of
     * the device clock is between the two bounds. */
    if (sign_format_timestamp((long long)now - PEER_CLOCK_SLACK_S, lo) != SIGN_OK ||
        sign_format_timestamp((long long)now + PEER_CLOCK_SLACK_S, hi) != SIGN_OK ||
        strlen(date) != SIGN_TIMESTAMP_LEN || strcmp(date, lo) < 0 || strcmp(date, hi) > 0) {
        printf("# peer: step %u: x-acs-date \"%s\" is not the device's clock\n", P.answered, date);
        ok = false;
    }
    if (cr.access_key_secret)
        memset((char *)cr.access_key_secret, 0, strlen(cr.access_key_secret));
    cJSON_Delete(man);
    return ok;
}

/* Append to the response; false once it no longer fits (never past RESP_MAX). */
static bool resp_add(size_t *n, const char *fmt, ...)
{
    va_list ap;
    int w;
    if (*n >= RESP_MAX)
        return false;
    va_start(ap, fmt);
    w = vsnprintf(P.resp + *n, RESP_MAX - *n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= RESP_MAX - *n) {
        *n = RESP_MAX;
        return false;
    }
    *n += (size_t)w;
    return true;
}

/* The recorded answer (Date refreshed), or a 400 when the request did not
 * match. Returns its length, or 0 when the step is unusable (no status, or
 * larger than RESP_MAX): the scenario then fails instead of sending junk. */
static size_t build_response(const cJSON *step, bool ok)
{
    const cJSON *hs = ok ? cJSON_GetObjectItemCaseSensitive(step, "headers") : NULL;
    const cJSON *st = ok ? cJSON_GetObjectItemCaseSensitive(step, "status") : NULL;
    const cJSON *h;
    const char *body = ok ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(step, "body"))
                          : "{\"Code\":\"Peer.Mismatch\",\"Message\":\"request differs from the "
                            "recording\",\"RequestId\":\"peer\"}";
    int status = 400;
    int64_t now = 0;
    char date[40];
    time_t t;
    struct tm tm;
    size_t n = 0;
    bool fits;
    if (ok) {
        if (!cJSON_IsNumber(st) || st->valueint < 100 || st->valueint > 599) {
            printf("# peer: step %u has no usable status\n", P.answered);
            return 0;
        }
        status = st->valueint;
    }
    (void)port_wall_clock(&now);
    t = (time_t)now;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    fits = resp_add(&n, "HTTP/1.1 %d %s\r\n", status, status == 200 ? "OK" : "Error");
    cJSON_ArrayForEach(h, hs)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(h, 0));
        const char *value = cJSON_GetStringValue(cJSON_GetArrayItem(h, 1));
        if (name == NULL || value == NULL)
            continue;
        /* The recorded Date is the recording's; the agent corrects its clock
         * from Date, so the replay says the time it is now. */
        if (strcasecmp(name, "Date") == 0)
            value = date;
        fits = fits && resp_add(&n, "%s: %s\r\n", name, value);
    }
    if ((int)P.answered == P.close_after)
        fits = fits && resp_add(&n, "Connection: close\r\n");
    if (!ok)
        fits = fits && resp_add(&n,
                                "Date: %s\r\nContent-Type: application/json\r\n"
                                "Content-Length: %lu\r\n",
                                date, (unsigned long)strlen(body));
    fits = fits && resp_add(&n, "\r\n%s", body ? body : "");
    if (!fits) {
        printf("# peer: step %u: the answer is larger than %u bytes\n", P.answered,
               (unsigned)RESP_MAX);
        return 0;
    }
    return n;
}

static void answer(size_t head_len, size_t total)
{
    char *head = P.req, *sp, *path, *q;
    param_t ps[PARAMS_MAX];
    int np = 0;
    const char *action;
    const cJSON *step;
    bool ok;
    size_t n, off = 0;
    char *hdrs;
    head[head_len - 2] = 0; /* keep one CRLF so the last header is found */
    /* The headers start at the request line's CRLF; the request line is
     * then cut in place (method, path, query). */
    hdrs = strstr(head, "\r\n");
    if (hdrs == NULL)
        hdrs = head + strlen(head);
    sp = strchr(head, ' ');
    path = sp ? sp + 1 : NULL;
    if (sp)
        *sp = 0;
    action = find_header(hdrs, "x-acs-action");
    if (path && (q = strchr(path, '?')) != NULL) {
        char *end = strchr(q, ' ');
        if (end)
            *end = 0;
        np = parse_params(q + 1, ps, 0);
    }
    if (total > head_len && np >= 0) {
        P.req[total] = 0;
        np = parse_params(P.req + head_len, ps, np);
    }
    if (action != NULL) {
        size_t al = strcspn(action, "\r");
        snprintf(P.last_action, sizeof P.last_action, "%.*s", (int)al, action);
        action = P.last_action;
    } else {
        for (int i = 0; i < np; i++)
            if (strcmp(ps[i].name, "Action") == 0)
                snprintf(P.last_action, sizeof P.last_action, "%s", ps[i].value);
        action = P.last_action;
    }
    {
        size_t n = strlen(P.actions);
        snprintf(P.actions + n, sizeof P.actions - n, "%s%s", n ? "+" : "", action);
    }
    step = P.answered < P.nsteps ? cJSON_GetArrayItem(P.steps, (int)P.answered) : NULL;
    ok = step != NULL && np >= 0 && check_request(step, head, action, ps, np);
    ok = ok && check_signature(hdrs, head, action, ps, np);
    if (step == NULL)
        printf("# peer: request %u (%s) beyond the %u recorded steps\n", P.answered, action,
               P.nsteps);
    if (!ok)
        P.mismatches++;
    n = build_response(step, ok);
    P.answered++;
    if (n == 0) {
        P.mismatches++;
        P.broken = true;
        return;
    }
    while (off < n) {
        int w = mbedtls_ssl_write(&P.ssl, (const unsigned char *)P.resp + off, n - off);
        if (w <= 0) {
            P.broken = true;
            return;
        }
        off += (size_t)w;
    }
}

/* Feed whatever the client sent through the server. */
static void pump(void)
{
    int rc;
    if (!P.open || P.broken)
        return;
    if (!P.handshake_done) {
        rc = mbedtls_ssl_handshake(&P.ssl);
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (rc != 0) {
            printf("# peer: handshake failed: -0x%04x\n", (unsigned)-rc);
            P.broken = true;
            return;
        }
        P.handshake_done = true;
        P.handshakes++;
    }
    for (;;) {
        char *end;
        const char *cl;
        size_t head_len, body_len;
        if (P.req_len == REQ_MAX) {
            P.broken = true;
            return;
        }
        rc = mbedtls_ssl_read(&P.ssl, (unsigned char *)P.req + P.req_len, REQ_MAX - P.req_len);
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            return;
        if (rc <= 0) { /* close_notify or an error: the connection is over */
            P.open = false;
            return;
        }
        P.req_len += (size_t)rc;
        P.req[P.req_len] = 0;
        end = strstr(P.req, "\r\n\r\n");
        if (end == NULL)
            continue;
        head_len = (size_t)(end - P.req) + 4;
        end[2] = 0; /* look for Content-Length in the head only */
        cl = find_header(P.req, "Content-Length");
        body_len = cl ? (size_t)strtoul(cl, NULL, 10) : 0;
        end[2] = '\r';
        if (body_len > REQ_MAX - head_len) {
            printf("# peer: request %u: body of %lu bytes is over the peer's limit\n", P.answered,
                   (unsigned long)body_len);
            P.mismatches++;
            P.broken = true;
            return;
        }
        if (P.req_len < head_len + body_len)
            continue;
        answer(head_len, head_len + body_len);
        P.req_len = 0;
    }
}

/* ------------------------------------------------ the port's network -- */

static port_status_t net_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms)
{
    (void)ctx;
    (void)host;
    (void)port;
    (void)timeout_ms;
    port_heap_exclude(true);
    mbedtls_ssl_session_reset(&P.ssl);
    port_heap_exclude(false);
    P.c2s_len = P.s2c_off = P.s2c_len = P.req_len = 0;
    P.open = true;
    P.handshake_done = P.broken = false;
    return PORT_OK;
}

static int net_send(void *ctx, const void *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    (void)timeout_ms;
    if (!P.open || P.broken)
        return PORT_ERR_RESET;
    if (len > PIPE_MAX - P.c2s_len)
        len = PIPE_MAX - P.c2s_len;
    memcpy(P.c2s + P.c2s_len, buf, len);
    P.c2s_len += len;
    on_peer_stack(pump);
    return len ? (int)len : PORT_ERR_TIMEOUT;
}

static int net_recv(void *ctx, void *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    (void)timeout_ms;
    if (P.s2c_off == P.s2c_len)
        on_peer_stack(pump);
    if (P.s2c_off == P.s2c_len)
        return P.broken ? PORT_ERR_RESET : P.open ? PORT_ERR_TIMEOUT : PORT_ERR_CLOSED;
    if (len > P.s2c_len - P.s2c_off)
        len = P.s2c_len - P.s2c_off;
    memcpy(buf, P.s2c + P.s2c_off, len);
    P.s2c_off += len;
    return (int)len;
}

static void net_close(void *ctx)
{
    (void)ctx;
    P.open = false;
}

static const port_cortexm_net_t peer_net = {net_connect, net_send, net_recv, net_close, NULL};

static int drbg_entropy(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return port_random(out, len) == PORT_OK ? 0 : -1;
}

int peer_start(void)
{
    const app_blob_t *rec = app_blob("recorded.json"), *crt = app_blob("server.crt"),
                     *key = app_blob("server.key");
    int rc;
    if (rec == NULL || crt == NULL || key == NULL) {
        printf("# peer: recorded.json, server.crt or server.key not built in\n");
        return -1;
    }
    port_heap_set_excluded(peer_alloc, peer_release);
    port_heap_exclude(true);
    memset(&P, 0, sizeof P);
    P.close_after = -1;
    P.rec = cJSON_ParseWithLength(rec->data, rec->len);
    P.steps = cJSON_GetObjectItemCaseSensitive(P.rec, "steps");
    P.nsteps = (unsigned)cJSON_GetArraySize(P.steps);
    mbedtls_ssl_init(&P.ssl);
    mbedtls_ssl_config_init(&P.conf);
    mbedtls_x509_crt_init(&P.cert);
    mbedtls_pk_init(&P.key);
    mbedtls_ctr_drbg_init(&P.drbg);
    rc = P.nsteps == 0 ? -1 : 0;
    if (rc == 0)
        rc = mbedtls_ctr_drbg_seed(&P.drbg, drbg_entropy, NULL, (const unsigned char *)"peer", 4);
    if (rc == 0)
        rc = mbedtls_x509_crt_parse(&P.cert, (const unsigned char *)crt->data, crt->len + 1);
    if (rc == 0)
        rc = mbedtls_pk_parse_key(&P.key, (const unsigned char *)key->data, key->len + 1, NULL, 0);
    if (rc == 0)
        rc = mbedtls_ssl_config_defaults(&P.conf, MBEDTLS_SSL_IS_SERVER,
                                         MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc == 0) {
        mbedtls_ssl_conf_rng(&P.conf, mbedtls_ctr_drbg_random, &P.drbg);
        rc = mbedtls_ssl_conf_own_cert(&P.conf, &P.cert, &P.key);
    }
    if (rc == 0)
        rc = mbedtls_ssl_setup(&P.ssl, &P.conf);
    port_heap_exclude(false);
    if (rc != 0) {
        printf("# peer: setup failed (%d, -0x%04x)\n", rc, (unsigned)-rc);
        return -1;
    }
    mbedtls_ssl_set_bio(&P.ssl, NULL, bio_send, bio_recv, NULL);
    port_cortexm_set_net(&peer_net);
    return 0;
}

void peer_stop(void)
{
    port_cortexm_set_net(NULL);
    port_heap_exclude(true);
    mbedtls_ssl_free(&P.ssl);
    mbedtls_ssl_config_free(&P.conf);
    mbedtls_x509_crt_free(&P.cert);
    mbedtls_pk_free(&P.key);
    mbedtls_ctr_drbg_free(&P.drbg);
    cJSON_Delete(P.rec);
    P.rec = NULL;
    port_heap_exclude(false);
}

unsigned peer_answered(void)
{
    return P.answered;
}
unsigned peer_steps(void)
{
    return P.nsteps;
}
unsigned peer_mismatches(void)
{
    return P.mismatches;
}
unsigned peer_handshakes(void)
{
    return P.handshakes;
}
const char *peer_last_action(void)
{
    return P.last_action;
}

const char *peer_take_actions(char *out, size_t cap)
{
    snprintf(out, cap, "%s", P.actions);
    P.actions[0] = 0;
    return out;
}

void peer_close_after(unsigned step)
{
    P.close_after = (int)step;
}
