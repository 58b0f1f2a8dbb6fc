#include "common/http_reader.h"

#include <string.h>

enum { PENDING_NONE, PENDING_HEAD, PENDING_BODY, PENDING_DONE };

static http_reader_t *reader_of(llhttp_t *p)
{
    return p->data;
}

static int fail(http_reader_t *r, int status)
{
    r->error_status = status;
    return -1;
}

/* Appends to the arena, or fails the request with 431 (the head is over its bound). */
static int arena_append(http_reader_t *r, const char *at, size_t len, slice_t *grow)
{
    if (len > r->arena_cap - r->arena_len)
        return fail(r, 431);
    char *dst = r->arena + r->arena_len;
    memcpy(dst, at, len);
    r->arena_len += len;
    if (grow->ptr == NULL)
        grow->ptr = dst;
    grow->len += len; /* a value split over several reads lands contiguously */
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    return arena_append(r, at, len, &r->head->method);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    return arena_append(r, at, len, &r->head->target);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    http_head_t *h = r->head;
    /* Fields after a chunked body are trailers: handlers run once the message is complete,
     * so merging them would let a trailer pose as a header (RFC 9110 §6.5.1). Dropped. */
    if (r->head_done)
        return 0;
    if (!r->header_open) {
        if (h->nheaders == HTTP_MAX_HEADERS)
            return fail(r, 431);
        h->headers[h->nheaders++] = (http_header_t){SLICE_NULL, SLICE_NULL};
        r->header_open = 1;
    }
    return arena_append(r, at, len, &h->headers[h->nheaders - 1].name);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    http_head_t *h = r->head;
    if (r->head_done)
        return 0;
    if (h->nheaders == 0)
        return fail(r, 400);
    http_header_t *hdr = &h->headers[h->nheaders - 1];
    if (hdr->value.ptr == NULL)
        hdr->value.ptr = r->arena + r->arena_len; /* an empty value is still a value */
    return arena_append(r, at, len, &hdr->value);
}

/* Called for every header, even one with an empty value (on_header_value is not). */
static int on_header_value_complete(llhttp_t *p)
{
    http_reader_t *r = reader_of(p);
    http_head_t *h = r->head;
    if (r->head_done)
        return 0;
    r->header_open = 0;
    if (h->nheaders == 0)
        return 0;
    slice_t *v = &h->headers[h->nheaders - 1].value;
    if (v->ptr == NULL)
        *v = (slice_t){r->arena + r->arena_len, 0};
    /* Trailing whitespace is not part of a field value (RFC 9110 §5.5). */
    while (v->len > 0 && (v->ptr[v->len - 1] == ' ' || v->ptr[v->len - 1] == '\t'))
        v->len--;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    http_reader_t *r = reader_of(p);
    http_head_t *h = r->head;
    if (llhttp_get_http_major(p) != 1)
        return fail(r, 505);
    h->method_id = llhttp_get_method(p);
    h->http_minor = llhttp_get_http_minor(p);
    h->upgrade = llhttp_get_upgrade(p) ? 1 : 0;
    h->chunked = (p->flags & F_CHUNKED) ? 1 : 0;
    h->content_length = (p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : -1;
    if (r->is_response) {
        h->status = llhttp_get_status_code(p);
        if (h->status < 100 || h->status > 999) /* llhttp lets a missing status through */
            return fail(r, 400);
        if (r->no_body || h->status / 100 == 1 || h->status == 204 || h->status == 304)
            /* The answer to a HEAD, and 1xx, 204 and 304 (RFC 9110 §6.4.1): a Content-Length
             * describes a body that is not sent, and llhttp would wait for it (it only knows
             * 1xx/204/304 have none when no length is given). Returning 1 would say so to
             * llhttp, but this callback must pause instead. */
            p->flags |= F_SKIPBODY;
    } else if (h->target.ptr == NULL) {
        return fail(r, 400);
    }
    /* After F_SKIPBODY: the answer to a HEAD without a length is not delimited by the close. */
    h->keep_alive = llhttp_should_keep_alive(p) ? 1 : 0;
    for (unsigned i = 0; i < h->nheaders; i++) /* llhttp lets ": value" through */
        if (h->headers[i].name.len == 0)
            return fail(r, 400);
    const char *q = h->target.ptr ? memchr(h->target.ptr, '?', h->target.len) : NULL;
    if (h->target.ptr == NULL) {
        h->path = h->query = (slice_t){"", 0};
    } else if (q != NULL) {
        h->path = (slice_t){h->target.ptr, (size_t)(q - h->target.ptr)};
        h->query = (slice_t){q + 1, h->target.len - h->path.len - 1};
    } else {
        h->path = h->target;
        h->query = (slice_t){h->target.ptr + h->target.len, 0};
    }
    slice_t expect = r->is_response ? SLICE_NULL : http_head_header(h, "expect");
    if (expect.ptr != NULL) {
        if (!slice_case_eq(expect, "100-continue"))
            return fail(r, 417);
        h->expect_continue = 1;
    }
    /* Transfer-Encoding other than a final "chunked" is refused by llhttp as 400; a request
     * carrying both Content-Length and Transfer-Encoding is refused too (smuggling). */
    r->head_done = 1;
    r->pending = PENDING_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_reader_t *r = reader_of(p);
    if (len == 0) /* llhttp flushes an open span at the end of every execute, even when empty */
        return 0;
    /* Hand body bytes out one slice per feed call. llhttp records the state to continue from
     * before it reports a span callback's error, so a pause here resumes cleanly. */
    r->body = (slice_t){at, len};
    r->pending = PENDING_BODY;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    http_reader_t *r = reader_of(p);
    r->pending = PENDING_DONE;
    /* An upgrade (or CONNECT) must end in llhttp's own upgrade pause, which marks the rest of
     * the input as the new protocol's; pausing here first would report it as a plain DONE and
     * leave the parser stuck mid-upgrade for the next request. */
    if (llhttp_get_upgrade(p))
        return 0;
    return HPE_PAUSED;
}

static void reader_init(http_reader_t *r, llhttp_type_t type)
{
    memset(r, 0, sizeof(*r));
    llhttp_settings_init(&r->settings);
    r->settings.on_method = on_method;
    r->settings.on_url = on_url;
    r->settings.on_header_field = on_header_field;
    r->settings.on_header_value = on_header_value;
    r->settings.on_header_value_complete = on_header_value_complete;
    r->settings.on_headers_complete = on_headers_complete;
    r->settings.on_body = on_body;
    r->settings.on_message_complete = on_message_complete;
    llhttp_init(&r->parser, type, &r->settings);
    r->parser.data = r;
    r->is_response = type == HTTP_RESPONSE;
}

void http_reader_init(http_reader_t *r)
{
    reader_init(r, HTTP_REQUEST);
}

void http_reader_init_response(http_reader_t *r)
{
    reader_init(r, HTTP_RESPONSE);
}

void http_reader_expect_no_body(http_reader_t *r)
{
    r->no_body = 1;
}

enum http_reader_event http_reader_finish(http_reader_t *r)
{
    if (r->error_status)
        return HTTP_READER_ERROR;
    if (r->pending == PENDING_DONE)
        return HTTP_READER_DONE;
    llhttp_errno_t err = llhttp_get_errno(&r->parser);
    if (err == HPE_PAUSED)
        llhttp_resume(&r->parser);
    else if (err != HPE_OK)
        return HTTP_READER_ERROR;
    if (!r->head_done && r->head_bytes == 0)
        return HTTP_READER_NEED_MORE;
    r->pending = PENDING_NONE;
    err = llhttp_finish(&r->parser);
    if ((err == HPE_OK || err == HPE_PAUSED) && r->pending == PENDING_DONE)
        return HTTP_READER_DONE;
    r->error_status = 400;
    return HTTP_READER_ERROR;
}

void http_reader_begin(http_reader_t *r, http_head_t *head, char *arena, size_t arena_cap)
{
    memset(head, 0, offsetof(http_head_t, headers));
    head->content_length = -1;
    head->http_minor = 1; /* what an error before the version is known is answered in */
    r->head = head;
    r->arena = arena;
    r->arena_cap = arena_cap;
    r->arena_len = 0;
    r->head_bytes = 0;
    r->head_done = 0;
    r->header_open = 0;
    r->pending = PENDING_NONE;
    r->no_body = 0;
    if (llhttp_get_errno(&r->parser) == HPE_PAUSED)
        llhttp_resume(&r->parser);
}

int http_reader_paused(const http_reader_t *r)
{
    return llhttp_get_errno(&r->parser) == HPE_PAUSED &&
           (r->pending == PENDING_HEAD || r->pending == PENDING_BODY);
}

int http_reader_error_status(const http_reader_t *r)
{
    return r->error_status ? r->error_status : 400;
}

enum http_reader_event http_reader_feed(http_reader_t *r, const char *data, size_t len,
                                        size_t *consumed, slice_t *body)
{
    *consumed = 0;
    if (r->error_status)
        return HTTP_READER_ERROR;
    llhttp_errno_t err = llhttp_get_errno(&r->parser);
    if (err == HPE_PAUSED_UPGRADE)
        return HTTP_READER_UPGRADE;
    int resumed = 0;
    if (err == HPE_PAUSED) {
        /* Paused after the head or a body slice: go on. Paused after DONE: the owner must
         * begin the next request first. */
        if (r->pending == PENDING_DONE)
            return HTTP_READER_DONE;

        resumed = 1;
        llhttp_resume(&r->parser);
    }
    /* After a pause llhttp may have work left that needs no input: deciding that a request
     * has no body, or completing a message whose last body byte was just handed out. */
    if (len == 0 && !resumed)
        return HTTP_READER_NEED_MORE;
    if (len == 0)
        data = "";

    int was_in_head = !r->head_done;
    r->pending = PENDING_NONE;
    err = llhttp_execute(&r->parser, data, len);
    size_t used = len;
    if (err != HPE_OK) {
        const char *pos = llhttp_get_error_pos(&r->parser);
        if (pos != NULL && pos >= data && pos <= data + len)
            used = (size_t)(pos - data);
    }
    *consumed = used;
    if (was_in_head) {
        r->head_bytes += used;
        /* Whitespace llhttp skips is not in the arena; bound the raw head too. */
        if (r->head_bytes > r->arena_cap + 1024) {
            r->error_status = 431;
            return HTTP_READER_ERROR;
        }
    }
    switch (err) {
    case HPE_OK:
        return HTTP_READER_NEED_MORE;
    case HPE_PAUSED:
        if (r->pending == PENDING_BODY) {
            *body = r->body;
            return HTTP_READER_BODY;
        }
        return r->pending == PENDING_HEAD ? HTTP_READER_HEAD : HTTP_READER_DONE;
    case HPE_PAUSED_UPGRADE:
        return HTTP_READER_UPGRADE;
    default:
        if (!r->error_status)
            r->error_status = (err == HPE_INVALID_TRANSFER_ENCODING) ? 501 : 400;
        return HTTP_READER_ERROR;
    }
}

slice_t http_head_header(const http_head_t *h, const char *name)
{
    for (unsigned i = 0; i < h->nheaders; i++) {
        if (slice_case_eq(h->headers[i].name, name))
            return h->headers[i].value;
    }
    return SLICE_NULL;
}
