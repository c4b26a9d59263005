/* Fuzz harness: the HTTP response path (components/http, http-parser).
 *
 * Input: a chunking seed byte, a flags byte, then the byte stream the
 * "server" sends. A scripted transport hands the stream to
 * http_client_request in chunks whose sizes follow the seed (1 byte up to
 * the client's whole 512-byte buffer); flags pick the limits, what the end
 * of the stream looks like (clean close or silence) and whether a second
 * request follows on the kept-alive connection (the idle check then sees
 * whatever bytes are left).
 *
 * Oracle (http.h): on HTTP_OK the body is NUL-terminated, within the body
 * limit, and the status three digits; on an error nothing is left to
 * free and the connection is closed; a response that is not kept alive
 * closes it. Chunking invariance: the first response read in the chunks
 * the input chose and read in whole 512-byte chunks gives the same status,
 * body, Date and keep-alive (the header limit is checked per received
 * chunk, so a too-large answer is excluded from this comparison). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "http.h"
#include "port_heap.h"

enum {
    F_TWICE = 0x01,
    F_SMALL_BODY = 0x02,
    F_SMALL_HEAD = 0x04,
    F_EOF_SILENT = 0x08, /* end of stream: timeout instead of a clean close */
    F_IDLE_DATA = 0x10,  /* the zero-timeout idle check sees pending bytes */
};

typedef struct {
    const uint8_t *data;
    size_t len, off;
    uint32_t rng; /* chunk sizes; 0: always the largest chunk asked for */
    uint32_t max_chunk;
    uint8_t flags;
    int connects;
} stream_t;

static uint32_t next_chunk(stream_t *s)
{
    if (s->rng == 0)
        return UINT32_MAX;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 17;
    s->rng ^= s->rng << 5;
    return 1 + s->rng % s->max_chunk;
}

static int t_connect(void *ctx, uint32_t timeout_ms)
{
    stream_t *s = ctx;
    (void)timeout_ms;
    s->connects++;
    return HTTP_OK;
}

static int t_send(void *ctx, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    (void)buf;
    (void)timeout_ms;
    return len > INT32_MAX ? INT32_MAX : (int)len;
}

static int t_recv(void *ctx, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    stream_t *s = ctx;
    if (s->off >= s->len) {
        if (timeout_ms == 0 || (s->flags & F_EOF_SILENT))
            return HTTP_ERR_TIMEOUT;
        return HTTP_ERR_CLOSED;
    }
    if (timeout_ms == 0 && !(s->flags & F_IDLE_DATA))
        return HTTP_ERR_TIMEOUT;
    size_t n = next_chunk(s);
    if (n > len)
        n = len;
    if (n > s->len - s->off)
        n = s->len - s->off;
    memcpy(buf, s->data + s->off, n);
    s->off += n;
    return (int)n;
}

static void t_close(void *ctx)
{
    (void)ctx;
}

static const uint8_t REQ[] = "POST /?Action=X HTTP/1.1\r\nHost: cdn.aliyuncs.com\r\n"
                             "Content-Length: 0\r\n\r\n";

typedef struct {
    int rc;
    http_response_t r;
} outcome_t;

static void check_one(const http_client_t *c, const outcome_t *o)
{
    if (o->rc == HTTP_OK) {
        FZ_CHECK(o->r.body != NULL, "HTTP_OK without a body buffer");
        FZ_CHECK(o->r.body[o->r.body_len] == 0, "body not NUL-terminated");
        FZ_CHECK(o->r.body_len <= c->limits.max_body_bytes, "body of %zu bytes over the %zu limit",
                 o->r.body_len, c->limits.max_body_bytes);
        /* http-parser takes any three digits, "000" too */
        FZ_CHECK(o->r.status_code >= 0 && o->r.status_code <= 999, "status code %d",
                 o->r.status_code);
        FZ_CHECK(o->r.keep_alive || !c->connected, "not kept alive but the connection is open");
    } else {
        FZ_CHECK(o->r.body == NULL && o->r.body_len == 0, "error %s left a body behind",
                 http_client_status_str(o->rc));
        FZ_CHECK(!c->connected, "error %s left the connection open", http_client_status_str(o->rc));
    }
}

static void run(stream_t *s, const http_limits_t *lim, outcome_t *first, bool twice)
{
    http_transport_t tr = {t_connect, t_send, t_recv, t_close, NULL, s, NULL};
    http_client_t c;
    http_client_init(&c, &tr, lim);
    first->rc = http_client_request(&c, REQ, sizeof REQ - 1, &first->r);
    check_one(&c, first);
    if (twice) {
        outcome_t second;
        second.rc = http_client_request(&c, REQ, sizeof REQ - 1, &second.r);
        check_one(&c, &second);
        http_response_free(&second.r);
    }
    http_client_close(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t in = {data, size};
    uint8_t seed = fz_u8(&in), flags = fz_u8(&in);
    static const uint32_t max_chunks[8] = {1, 2, 3, 7, 16, 100, 512, 512};
    http_limits_t lim = {HTTP_DEFAULT_MAX_HEADER_BYTES, HTTP_DEFAULT_MAX_BODY_BYTES,
                         HTTP_DEFAULT_TIMEOUT_MS};
    size_t heap_before, peak;
    if (flags & F_SMALL_BODY)
        lim.max_body_bytes = 256;
    if (flags & F_SMALL_HEAD)
        lim.max_header_bytes = 256;
    port_heap_stats(&heap_before, &peak);

    stream_t a = {in.p, in.left, 0, 0x9e3779b9u ^ seed, max_chunks[seed >> 5], flags, 0};
    outcome_t x;
    run(&a, &lim, &x, (flags & F_TWICE) != 0);

    stream_t b = {in.p, in.left, 0, 0, 512, (uint8_t)(flags & ~F_TWICE), 0};
    outcome_t y;
    run(&b, &lim, &y, false);

    if (x.rc != HTTP_ERR_TOO_LARGE && y.rc != HTTP_ERR_TOO_LARGE) {
        FZ_CHECK(x.rc == y.rc, "chunking changed the outcome: %s vs %s",
                 http_client_status_str(x.rc), http_client_status_str(y.rc));
        if (x.rc == HTTP_OK) {
            FZ_CHECK(x.r.status_code == y.r.status_code, "chunking changed the status: %d vs %d",
                     x.r.status_code, y.r.status_code);
            FZ_CHECK(x.r.body_len == y.r.body_len && memcmp(x.r.body, y.r.body, x.r.body_len) == 0,
                     "chunking changed the body (%zu vs %zu bytes)", x.r.body_len, y.r.body_len);
            FZ_CHECK(x.r.has_date == y.r.has_date &&
                         (!x.r.has_date || x.r.server_date == y.r.server_date),
                     "chunking changed the Date");
            FZ_CHECK(x.r.keep_alive == y.r.keep_alive, "chunking changed keep-alive");
        }
    }
    http_response_free(&x.r);
    http_response_free(&y.r);

    size_t heap_after;
    port_heap_stats(&heap_after, &peak);
    FZ_CHECK(heap_after == heap_before, "port heap: %zu bytes in use before, %zu after",
             heap_before, heap_after);
    return 0;
}
