#include "test/edge-agent/exchange.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http_reader.h"

struct exchange {
    http_reader_t req, resp;
    http_head_t req_head, resp_head;
    unsigned req_plain : 1;
    unsigned req_close : 1;
    unsigned req_body : 1;
    unsigned req_is_head : 1;
    unsigned resp_reusable : 1;
    char arena[EXCHANGE_MAX_HEAD]; /* the head being read, request or response (exchange.h) */
};

exchange_t *exchange_new(void)
{
    exchange_t *x = malloc(sizeof(*x));
    if (x == NULL) return NULL;
    http_reader_init(&x->req);
    http_reader_init_response(&x->resp);
    exchange_request_next(x);
    x->resp_reusable = 0;
    return x;
}

void exchange_free(exchange_t *x)
{
    free(x);
}

/* Feeds data[*used, len) to r up to its next event other than body bytes, which are only
 * counted: the caller relays them as they are. */
static enum http_reader_event feed_past_body(http_reader_t *r, const uint8_t *data, size_t len,
                                             size_t *used)
{
    for (;;) {
        size_t n;
        slice_t body;
        enum http_reader_event ev =
            http_reader_feed(r, (const char *)data + *used, len - *used, &n, &body);
        *used += n;
        if (ev != HTTP_READER_BODY) return ev;
    }
}

/* ---- the request ---- */

void exchange_request_next(exchange_t *x)
{
    http_reader_begin(&x->req, &x->req_head, x->arena, sizeof(x->arena));
    x->req_plain = x->req_close = x->req_body = x->req_is_head = 0;
}

enum exchange_event exchange_request_head(exchange_t *x, const uint8_t *data, size_t len,
                                          size_t *used)
{
    slice_t body;
    switch (http_reader_feed(&x->req, (const char *)data, len, used, &body)) {
    case HTTP_READER_NEED_MORE:
        return EXCHANGE_MORE;
    case HTTP_READER_HEAD:
        break;
    default: /* an error: 400, 431 (too large), 417, 501, 505 */
        return EXCHANGE_OPAQUE;
    }
    const http_head_t *h = &x->req_head;
    /* llhttp's upgrade flag: Connection: upgrade with an Upgrade field, or CONNECT. */
    x->req_plain = !h->upgrade && h->method_id != HTTP_CONNECT;
    x->req_close = !h->keep_alive;
    x->req_body = h->chunked || h->content_length > 0;
    x->req_is_head = h->method_id == HTTP_HEAD;
    return EXCHANGE_HEAD;
}

int exchange_request_plain(const exchange_t *x)
{
    return x->req_plain;
}

int exchange_request_close(const exchange_t *x)
{
    return x->req_close;
}

int exchange_request_has_body(const exchange_t *x)
{
    return x->req_body;
}

enum exchange_event exchange_request_body(exchange_t *x, const uint8_t *data, size_t len,
                                          size_t *used)
{
    *used = 0;
    /* Also called with no bytes right after the head: a request without a body ends there. */
    switch (feed_past_body(&x->req, data, len, used)) {
    case HTTP_READER_DONE:
        return EXCHANGE_END;
    case HTTP_READER_NEED_MORE:
        return EXCHANGE_MORE;
    default: /* bad chunk framing */
        return EXCHANGE_OPAQUE;
    }
}

/* ---- rewriting the head ---- */

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* A list element of a field value, without the whitespace around it, is "close". */
static int is_close(const uint8_t *p, size_t len)
{
    while (len > 0 && is_space(p[0])) {
        p++;
        len--;
    }
    while (len > 0 && is_space(p[len - 1]))
        len--;
    return len == 5 && strncasecmp((const char *)p, "close", 5) == 0;
}

static int is_blank(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space(p[i])) return 0;
    return 1;
}

/*
 * One "Connection:" line (with its line end) without its close elements. Kept elements are
 * copied with their own whitespace and joined by the commas that were there, so the result
 * is never longer than the line; 0 when no option is left (the field goes).
 */
static size_t strip_close(const uint8_t *line, size_t len, uint8_t *out)
{
    static const size_t name_len = sizeof("connection:") - 1;
    size_t eol = len;
    if (eol > 0 && line[eol - 1] == '\n') eol--;
    if (eol > 0 && line[eol - 1] == '\r') eol--;
    memcpy(out, line, name_len);
    size_t o = name_len, kept = 0;
    int any = 0, removed = 0;
    size_t i = name_len;
    for (;;) {
        const uint8_t *comma = memchr(line + i, ',', eol - i);
        size_t end = comma ? (size_t)(comma - line) : eol;
        if (is_close(line + i, end - i)) {
            removed = 1;
        } else {
            if (kept++ > 0) out[o++] = ',';
            memcpy(out + o, line + i, end - i);
            o += end - i;
            any |= !is_blank(line + i, end - i);
        }
        if (comma == NULL) break;
        i = end + 1;
    }
    if (!removed) { /* nothing to take out: the line as it was */
        memcpy(out, line, len);
        return len;
    }
    if (!any) return 0;
    memcpy(out + o, line + eol, len - eol);
    return o + (len - eol);
}

size_t exchange_rewrite_head(const uint8_t *raw, size_t len, uint8_t *out)
{
    static const char name[] = "connection:";
    size_t o = 0, i = 0;
    while (i < len) {
        const uint8_t *nl = memchr(raw + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - raw) + 1 : len;
        const uint8_t *line = raw + i;
        size_t line_len = end - i;
        /* Field names are tokens, so a request line cannot look like this. A value folded onto
         * the next line (obs-fold, which llhttp accepts) is left alone: the target then sees
         * close and the connection is simply not reused. */
        int folded = end < len && is_space(raw[end]);
        if (line_len > sizeof(name) - 1 && !folded &&
            strncasecmp((const char *)line, name, sizeof(name) - 1) == 0) {
            o += strip_close(line, line_len, out + o);
        } else {
            memcpy(out + o, line, line_len);
            o += line_len;
        }
        i = end;
    }
    return o;
}

/* ---- the response ---- */

void exchange_response_begin(exchange_t *x)
{
    http_reader_begin(&x->resp, &x->resp_head, x->arena, sizeof(x->arena));
    /* The answer to HEAD has no body whatever its Content-Length says. */
    if (x->req_is_head) http_reader_expect_no_body(&x->resp);
    x->resp_reusable = 0;
}

enum exchange_event exchange_response(exchange_t *x, const uint8_t *data, size_t len,
                                      size_t *used)
{
    *used = 0;
    for (;;) {
        enum http_reader_event ev = feed_past_body(&x->resp, data, len, used);
        int status = x->resp_head.status;
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            return EXCHANGE_MORE;
        case HTTP_READER_HEAD:
            /* Decided at the head: llhttp only treats a 101 as an upgrade when it carries
             * Connection: upgrade, but whatever follows a 101 is not HTTP any more. */
            if (status == 101) return EXCHANGE_SWITCH;
            continue;
        case HTTP_READER_DONE:
            if (status >= 100 && status < 200) {
                /* 100 Continue, 103 Early Hints: the real response follows (RFC 9110 §15.2). */
                exchange_response_begin(x);
                continue;
            }
            x->resp_reusable = x->resp_head.keep_alive;
            return EXCHANGE_END;
        case HTTP_READER_UPGRADE:
            return EXCHANGE_SWITCH;
        default:
            return EXCHANGE_OPAQUE;
        }
    }
}

enum exchange_event exchange_response_eof(exchange_t *x)
{
    x->resp_reusable = 0;
    switch (http_reader_finish(&x->resp)) {
    case HTTP_READER_DONE:
        return EXCHANGE_END;
    case HTTP_READER_NEED_MORE:
        return EXCHANGE_MORE;
    default:
        return EXCHANGE_OPAQUE;
    }
}

int exchange_response_reusable(const exchange_t *x)
{
    return x->resp_reusable;
}
