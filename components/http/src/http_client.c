/* HTTP/1.1 response reading on top of an abstract transport. */
#include "http.h"

#include <limits.h>
#include <string.h>

#include <http_parser.h>

#include "port.h"
#include "util.h"

/* Only these header names matter; longer names are skipped, never stored. */
#define HTTP_FIELD_MAX 16u
#define HTTP_DATE_MAX 40u
#define HTTP_RECV_CHUNK 512u

const char *http_client_status_str(http_status_t status)
{
    switch (status) {
    case HTTP_OK: return "ok";
    case HTTP_ERR_ARG: return "bad-argument";
    case HTTP_ERR_DNS: return "dns";
    case HTTP_ERR_CONNECT: return "connect";
    case HTTP_ERR_TLS_HANDSHAKE: return "tls-handshake";
    case HTTP_ERR_CERT_VERIFY: return "cert-verify";
    case HTTP_ERR_TIMEOUT: return "timeout";
    case HTTP_ERR_RESET: return "reset";
    case HTTP_ERR_PROTOCOL: return "protocol";
    case HTTP_ERR_TOO_LARGE: return "too-large";
    case HTTP_ERR_NOMEM: return "nomem";
    case HTTP_ERR_CLOSED: return "closed";
    case HTTP_ERR_TLS_SETUP: return "tls-setup";
    default: return "unknown";
    }
}

typedef struct {
    const http_limits_t *limits;
    http_response_t *resp;
    size_t body_cap;
    int error; /* first error raised from a callback */
    bool headers_done;
    bool done;
    bool in_value;
    bool field_is_date;
    size_t field_len;
    char field[HTTP_FIELD_MAX];
    size_t date_len;
    char date[HTTP_DATE_MAX];
} http_read_state_t;

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_read_state_t *st = p->data;
    size_t i;
    if (st->in_value) {
        st->in_value = false;
        st->field_len = 0;
    }
    for (i = 0; i < len; i++) {
        if (st->field_len < HTTP_FIELD_MAX) {
            st->field[st->field_len] = util_ascii_lower(at[i]);
        }
        st->field_len++;
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_read_state_t *st = p->data;
    if (!st->in_value) {
        st->in_value = true;
        st->field_is_date = st->field_len == 4 && memcmp(st->field, "date", 4) == 0;
        if (st->field_is_date) {
            st->date_len = 0;
        }
    }
    if (st->field_is_date) {
        size_t room = HTTP_DATE_MAX - 1 - st->date_len;
        size_t n = len < room ? len : room;
        memcpy(st->date + st->date_len, at, n);
        st->date_len += n;
    }
    return 0;
}

static int body_reserve(http_read_state_t *st, size_t need)
{
    http_response_t *r = st->resp;
    size_t cap;
    uint8_t *nb;
    if (need > st->limits->max_body_bytes) {
        st->error = HTTP_ERR_TOO_LARGE;
        return -1;
    }
    if (need + 1 <= st->body_cap) {
        return 0;
    }
    /* Grow geometrically but never past the limit, so memory follows what
     * really arrived, not what the peer claims. */
    cap = st->body_cap ? st->body_cap * 2 : 1024;
    if (cap < need + 1) {
        cap = need + 1;
    }
    if (cap > st->limits->max_body_bytes + 1) {
        cap = st->limits->max_body_bytes + 1;
    }
    nb = port_malloc(cap);
    if (nb == NULL) {
        st->error = HTTP_ERR_NOMEM;
        return -1;
    }
    if (r->body != NULL) {
        memcpy(nb, r->body, r->body_len);
        port_free(r->body);
    }
    r->body = nb;
    st->body_cap = cap;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_read_state_t *st = p->data;
    st->headers_done = true;
    st->resp->status_code = (int)p->status_code;
    if (st->date_len > 0) {
        st->resp->has_date = http_parse_date(st->date, st->date_len, &st->resp->server_date);
    }
    /* Refuse an oversized declared body before allocating any of it. */
    if ((p->flags & F_CHUNKED) == 0 && p->content_length != ULLONG_MAX &&
        p->content_length > st->limits->max_body_bytes) {
        st->error = HTTP_ERR_TOO_LARGE;
        return -1;
    }
    if ((p->flags & F_CHUNKED) == 0 && p->content_length != ULLONG_MAX && p->content_length > 0) {
        if (body_reserve(st, (size_t)p->content_length) != 0) {
            return -1;
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_read_state_t *st = p->data;
    if (body_reserve(st, st->resp->body_len + len) != 0) {
        return -1;
    }
    memcpy(st->resp->body + st->resp->body_len, at, len);
    st->resp->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_read_state_t *st = p->data;
    st->done = true;
    st->resp->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1); /* no pipelining: ignore anything after */
    return 0;
}

void http_client_init(http_client_t *client, const http_transport_t *transport,
                      const http_limits_t *limits)
{
    memset(client, 0, sizeof(*client));
    client->transport = *transport;
    client->limits.max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    client->limits.max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
    client->limits.timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    if (limits != NULL) {
        client->limits = *limits;
    }
}

void http_client_close(http_client_t *client)
{
    if (client->connected) {
        client->transport.close(client->transport.ctx);
        client->connected = false;
    }
}

void http_response_free(http_response_t *resp)
{
    if (resp != NULL) {
        port_free(resp->body);
        memset(resp, 0, sizeof(*resp));
    }
}

static uint32_t remaining_ms(uint64_t deadline)
{
    uint64_t now = port_monotonic_ms();
    return now >= deadline ? 0 : (uint32_t)(deadline - now);
}

/* One attempt on the current (or a new) connection. *stale is set only when
 * sending on a reused connection failed: nothing reached the server, so the
 * caller may try once more on a new connection. */
static int attempt(http_client_t *c, const uint8_t *req, size_t req_len, http_response_t *resp,
                   uint64_t deadline, bool *stale)
{
    http_parser_settings settings;
    http_parser parser;
    http_read_state_t st;
    uint8_t buf[HTTP_RECV_CHUNK];
    size_t sent = 0, header_bytes = 0;
    bool reused = c->connected;
    int rc;

    *stale = false;
    if (reused) {
        /* A kept-alive connection the server closed while idle shows it
         * now (EOF or reset, or stray bytes): reconnect before sending, so
         * a request is never sent twice on a guess. */
        rc = c->transport.recv(c->transport.ctx, buf, sizeof(buf), 0);
        if (rc != HTTP_ERR_TIMEOUT) {
            http_client_close(c);
            reused = false;
        }
    }
    if (!c->connected) {
        uint32_t left = remaining_ms(deadline);
        if (left == 0) {
            return HTTP_ERR_TIMEOUT;
        }
        rc = c->transport.connect(c->transport.ctx, left);
        if (rc != HTTP_OK) {
            if (c->transport.why != NULL) {
                c->transport.why(c->transport.ctx, c->why, sizeof(c->why));
            }
            return rc;
        }
        c->connected = true;
        c->connects++;
    }
    while (sent < req_len) {
        uint32_t left = remaining_ms(deadline);
        if (left == 0) {
            return HTTP_ERR_TIMEOUT;
        }
        rc = c->transport.send(c->transport.ctx, req + sent, req_len - sent, left);
        if (rc <= 0) {
            *stale = reused && (rc == HTTP_ERR_RESET || rc == HTTP_ERR_CLOSED);
            return rc == HTTP_ERR_CLOSED ? HTTP_ERR_RESET : (rc == 0 ? HTTP_ERR_RESET : rc);
        }
        sent += (size_t)rc;
    }
    c->requests++;

    memset(&settings, 0, sizeof(settings));
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    memset(&st, 0, sizeof(st));
    st.limits = &c->limits;
    st.resp = resp;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &st;

    while (!st.done) {
        uint32_t left = remaining_ms(deadline);
        size_t fed;
        if (left == 0) {
            return HTTP_ERR_TIMEOUT;
        }
        rc = c->transport.recv(c->transport.ctx, buf, sizeof(buf), left);
        if (rc == HTTP_ERR_CLOSED || rc == 0) {
            /* EOF ends a body that has no length; anything else is cut short.
             * The whole request was sent: the server may have acted on it,
             * so it is not sent again here (the caller knows whether the
             * call is safe to repeat). */
            http_parser_execute(&parser, &settings, NULL, 0);
            if (st.done) {
                resp->keep_alive = false;
                break;
            }
            return HTTP_ERR_RESET;
        }
        if (rc < 0) {
            return rc;
        }
        fed = http_parser_execute(&parser, &settings, (const char *)buf, (size_t)rc);
        if (st.error != 0) {
            return st.error;
        }
        if (!st.headers_done) {
            header_bytes += fed;
            if (header_bytes > c->limits.max_header_bytes) {
                return HTTP_ERR_TOO_LARGE;
            }
        }
        if (HTTP_PARSER_ERRNO(&parser) != HPE_OK && HTTP_PARSER_ERRNO(&parser) != HPE_PAUSED) {
            return HTTP_ERR_PROTOCOL;
        }
    }
    if (resp->body == NULL) {
        if (body_reserve(&st, 0) != 0) {
            return st.error;
        }
    }
    resp->body[resp->body_len] = 0;
    return HTTP_OK;
}

/* Does the request's header block carry "Connection: close"? A client that
 * sends it must not send again on the connection (RFC 9112 9.6), whether
 * or not the server's answer repeats it: reusing it races the server's
 * close and turns a fine call into a reset. */
static bool request_closes(const uint8_t *req, size_t len)
{
    static const char name[] = "connection:", token[] = "close";
    for (size_t i = 0; i + 1 < len;) {
        size_t end = i;
        while (end + 1 < len && !(req[end] == '\r' && req[end + 1] == '\n'))
            end++;
        if (end == i)
            return false; /* the blank line: end of the headers */
        if (end - i > sizeof name - 1 &&
            util_ascii_eq_nocase_n((const char *)req + i, name, sizeof name - 1)) {
            for (size_t k = i + sizeof name - 1; k + sizeof token - 1 <= end; k++)
                if (util_ascii_eq_nocase_n((const char *)req + k, token, sizeof token - 1))
                    return true;
        }
        i = end + 2;
    }
    return false;
}

http_status_t http_client_request(http_client_t *client, const uint8_t *request, size_t request_len,
                                  http_response_t *resp)
{
    uint64_t deadline;
    bool stale = false;
    int rc, tries;

    if (client == NULL || request == NULL || request_len == 0 || resp == NULL) {
        return HTTP_ERR_ARG;
    }
    memset(resp, 0, sizeof(*resp));
    client->why[0] = '\0';
    if (client->transport.begin_call != NULL) {
        client->transport.begin_call(client->transport.ctx);
    }
    deadline = port_monotonic_ms() + client->limits.timeout_ms;
    for (tries = 0; tries < 2; tries++) {
        rc = attempt(client, request, request_len, resp, deadline, &stale);
        if (rc == HTTP_OK) {
            if (!resp->keep_alive || request_closes(request, request_len)) {
                http_client_close(client);
            }
            return HTTP_OK;
        }
        http_response_free(resp);
        http_client_close(client);
        /* Only a kept-alive connection that failed while the request was
         * being sent is retried: the request cannot have been acted on. */
        if (!stale) {
            break;
        }
        port_log(PORT_LOG_DEBUG, "http", "idle connection was closed by server; reconnecting");
    }
    return rc;
}

/* ------------------------------------------------------------- Date -- */

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool http_parse_date(const char *t, size_t len, int64_t *utc_seconds)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    unsigned day, year, hh, mm, ss, mon;
    /* "Sun, 06 Nov 1994 08:49:37 GMT" is exactly 29 characters. */
    if (len != 29 || t[3] != ',' || t[4] != ' ' || t[7] != ' ' || t[11] != ' ' || t[16] != ' ' ||
        t[19] != ':' || t[22] != ':' || memcmp(t + 25, " GMT", 4) != 0) {
        return false;
    }
    if (!digits(t + 5, 2, &day) || !digits(t + 12, 4, &year) || !digits(t + 17, 2, &hh) ||
        !digits(t + 20, 2, &mm) || !digits(t + 23, 2, &ss)) {
        return false;
    }
    for (mon = 0; mon < 12; mon++) {
        if (memcmp(months + mon * 3, t + 8, 3) == 0) {
            break;
        }
    }
    if (mon == 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) {
        return false;
    }
    *utc_seconds = util_days_from_civil(year, mon + 1u, day) * 86400 + hh * 3600 + mm * 60 + ss;
    return true;
}
