#include "common/http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/link.h"
#include "common/recycle.h"
#include "common/resolve.h"

#define DEFAULT_MAX_HEAD (16 * 1024)
#define DEFAULT_MAX_QUEUE (1024 * 1024)

/* ---- URLs ---- */

static int valid_url_byte(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '#';
}

int http_url_parse(const char *url, size_t len, http_url_t *out, const char **why)
{
    static const struct {
        const char *prefix;
        int tls;
        unsigned port;
    } schemes[] = {
        {"http://", 0, 80}, {"https://", 1, 443}, {"ws://", 0, 80}, {"wss://", 1, 443}};
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    for (; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (len >= n && strncasecmp(url, schemes[i].prefix, n) == 0)
            break;
    }
    if (i == sizeof(schemes) / sizeof(schemes[0])) {
        *why = "the URL must start with http://, https://, ws:// or wss://";
        return -1;
    }
    for (size_t k = 0; k < len; k++) {
        if (!valid_url_byte((unsigned char)url[k])) {
            *why = "the URL holds a space, a control byte or a fragment";
            return -1;
        }
    }
    out->tls = schemes[i].tls;
    out->port = schemes[i].port;
    const char *p = url + strlen(schemes[i].prefix), *end = url + len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash ? slash : end;
    const char *q = memchr(p, '?', (size_t)(auth_end - p));
    if (q != NULL)
        auth_end = q;
    out->authority = (slice_t){p, (size_t)(auth_end - p)};
    out->path = auth_end < end ? (slice_t){auth_end, (size_t)(end - auth_end)} : (slice_t){"/", 1};
    if (out->path.ptr[0] == '?') {
        /* "http://h?x" means "/?x"; Host and target are separate, so the owner adds the '/'. */
        *why = "the URL needs a '/' before its query";
        return -1;
    }
    if (memchr(p, '@', (size_t)(auth_end - p)) != NULL) {
        *why = "user names in URLs are not supported";
        return -1;
    }
    const char *host = p, *host_end = auth_end, *port = NULL;
    if (host < auth_end && *host == '[') {
        const char *close = memchr(host, ']', (size_t)(auth_end - host));
        if (close == NULL) {
            *why = "an IPv6 address without its ']'";
            return -1;
        }
        host_end = close;
        host++;
        if (close + 1 < auth_end) {
            if (close[1] != ':') {
                *why = "bytes after an IPv6 address";
                return -1;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(auth_end - host));
        if (colon != NULL) {
            host_end = colon;
            port = colon + 1;
        }
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len > HTTP_URL_MAX_HOST) {
        *why = "the URL's host is empty or too long";
        return -1;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (port != NULL) {
        unsigned v = 0;
        if (port == auth_end || auth_end - port > 5) {
            *why = "the URL's port is not a number from 1 to 65535";
            return -1;
        }
        for (const char *d = port; d < auth_end; d++) {
            if (*d < '0' || *d > '9') {
                *why = "the URL's port is not a number from 1 to 65535";
                return -1;
            }
            v = v * 10 + (unsigned)(*d - '0');
        }
        if (v == 0 || v > 65535) {
            *why = "the URL's port is not a number from 1 to 65535";
            return -1;
        }
        out->port = v;
    }
    return 0;
}

/* ---- resolvers shared by every client (one loop per process) ---- */

#define RESOLVER_CACHE 8

static struct {
    resolver_t *r;
    char host[HTTP_URL_MAX_HOST + 1];
    unsigned port;
} resolvers[RESOLVER_CACHE];

/* The cached resolver for host:port. A daemon talks to a handful of hosts (its proxies, its
 * identity provider); past RESOLVER_CACHE of them a caller gets a private resolver (*owned = 1)
 * that it frees itself, since freeing a shared one would cancel other connections' lookups. */
static resolver_t *resolver_for(uv_loop_t *loop, const char *host, unsigned port, int *owned)
{
    *owned = 0;
    for (unsigned i = 0; i < RESOLVER_CACHE; i++)
        if (resolvers[i].r && resolvers[i].port == port && strcmp(resolvers[i].host, host) == 0)
            return resolvers[i].r;
    unsigned slot = RESOLVER_CACHE;
    for (unsigned i = 0; i < RESOLVER_CACHE && slot == RESOLVER_CACHE; i++)
        if (resolvers[i].r == NULL)
            slot = i;
    if (slot == RESOLVER_CACHE) {
        *owned = 1;
        return resolver_new(loop, host, port);
    }
    resolver_t *r = resolver_new(loop, host, port);
    if (r == NULL)
        return NULL;
    resolvers[slot].r = r;
    resolvers[slot].port = port;
    snprintf(resolvers[slot].host, sizeof(resolvers[slot].host), "%s", host);
    return r;
}

/* ---- the connection ---- */

enum client_state {
    ST_IDLE,    /* no response expected */
    ST_READING, /* a response is expected or arriving */
    ST_PIPE,    /* after a 101: bytes go to on_data */
};

struct http_client {
    uv_loop_t *loop;
    const http_client_config_t *cfg;
    const http_client_ops_t *ops;
    void *arg;
    http_url_t url;
    resolver_t *resolver;
    int resolver_owned;
    resolve_req_t resolve;
    link_t *link;
    const http_client_pipe_ops_t *pipe_ops; /* a pipe its owner provides instead of a link */
    void *pipe;
    uv_timer_t timer;
    unsigned timeout_ms;
    buf_t early; /* bytes written before the connection is up */
    enum client_state state;
    http_reader_t reader;
    http_head_t head;
    char *arena;
    size_t max_head;
    int head_seen; /* this response's head was reported */
    int in_upgrade_cb; /* on_head is reporting a 101 */
    int next_head_request; /* a request head sent from that on_head was HEAD */
    int err;
    char why[200];
    unsigned open : 1;
    unsigned closing : 1; /* no callbacks but on_close from here on */
    unsigned link_gone : 1;
    unsigned paused : 1;
};

static void finish(http_client_t *c);

static void set_reason(http_client_t *c, int err, const char *why)
{
    if (c->why[0] != '\0')
        return; /* the first reason is the real one */
    c->err = err;
    snprintf(c->why, sizeof(c->why), "%s", why ? why : "closed");
}

void http_client_close(http_client_t *c, int err, const char *why, int reset)
{
    if (c->closing)
        return;
    set_reason(c, err, why);
    c->closing = 1;
    uv_timer_stop(&c->timer);
    if (c->link != NULL) {
        if (reset)
            link_abort(c->link, err, c->why);
        else
            link_close(c->link, err, c->why);
        return; /* link's on_close finishes */
    }
    if (c->pipe != NULL) {
        c->pipe_ops->close(c->pipe, reset);
        return; /* http_client_pipe_closed finishes */
    }
    if (c->link_gone)
        return; /* called from inside link_on_close, which finishes */
    resolve_cancel(&c->resolve);
    finish(c);
}

static void fail(http_client_t *c, int err, const char *why)
{
    http_client_close(c, err, why, 1);
}

/* Head arenas of the default size are recycled: one per request on the front door. */
static recycle_t arena_bin = RECYCLE_INIT(DEFAULT_MAX_HEAD);

static void arena_free(http_client_t *c)
{
    if (c->max_head == DEFAULT_MAX_HEAD)
        recycle_free(&arena_bin, c->arena);
    else
        free(c->arena);
}

static void on_timer_closed(uv_handle_t *h)
{
    http_client_t *c = h->data;
    if (c->resolver_owned)
        resolver_free(c->resolver);
    buf_free(&c->early);
    arena_free(c);
    c->ops->on_close(c->arg, c->err, c->why[0] ? c->why : "closed");
    free(c);
}

/* Once nothing else can call back: the timer is the last handle. */
static void finish(http_client_t *c)
{
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
    http_client_t *c = t->data;
    char why[80];
    snprintf(why, sizeof(why), "no answer within %u ms", c->timeout_ms);
    fail(c, UV_ETIMEDOUT, why);
}

static void arm_timer(http_client_t *c)
{
    if (c->closing)
        return;
    if (c->timeout_ms == 0 || c->state == ST_PIPE || (c->open && c->state == ST_IDLE))
        uv_timer_stop(&c->timer);
    else if (!c->cfg->timeout_is_deadline || !uv_is_active((uv_handle_t *)&c->timer))
        uv_timer_start(&c->timer, on_timeout, c->timeout_ms, 0);
}

void http_client_set_timeout(http_client_t *c, unsigned timeout_ms)
{
    c->timeout_ms = timeout_ms;
    arm_timer(c);
}

/* ---- reading responses ---- */

static void begin_response(http_client_t *c, int head_request)
{
    /* A fresh parser per response: after a 101 llhttp stays in its upgraded state. */
    http_reader_init_response(&c->reader);
    http_reader_begin(&c->reader, &c->head, c->arena, c->max_head);
    if (head_request)
        http_reader_expect_no_body(&c->reader);
    c->head_seen = 0;
}

static void response_done(http_client_t *c)
{
    c->state = ST_IDLE;
    arm_timer(c);
    c->ops->on_end(c->arg);
}

/* Feeds response bytes; returns how many were used (the rest is pipe data after a 101). */
static size_t read_response(http_client_t *c, const char *data, size_t len)
{
    size_t off = 0;
    for (;;) {
        if (c->closing || c->state != ST_READING)
            return off;
        size_t used = 0;
        slice_t body;
        enum http_reader_event ev = http_reader_feed(&c->reader, data + off, len - off, &used,
                                                     &body);
        off += used;
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            return off;
        case HTTP_READER_HEAD:
            /* 1xx interim answers (100 Continue, 103 Early Hints) precede the real one; a 101
             * is reported once llhttp has confirmed the upgrade. */
            if (c->head.status >= 200) {
                c->head_seen = 1;
                c->ops->on_head(c->arg, &c->head);
            }
            break;
        case HTTP_READER_BODY:
            c->ops->on_body(c->arg, body.ptr, body.len);
            break;
        case HTTP_READER_DONE:
            if (c->head.status < 200) {
                if (c->head.status == 101) {
                    fail(c, UV_EPROTO, "a 101 answer without Upgrade and Connection: upgrade");
                    return off;
                }
                /* The same parser reads on: the real answer follows the interim one. */
                int no_body = c->reader.no_body;
                http_reader_begin(&c->reader, &c->head, c->arena, c->max_head);
                if (no_body)
                    http_reader_expect_no_body(&c->reader);
                break;
            }
            response_done(c);
            return off;
        case HTTP_READER_UPGRADE:
            if (c->head.status != 101) {
                fail(c, UV_EPROTO, "an upgrade answer that is not 101");
                return off;
            }
            c->state = ST_PIPE;
            arm_timer(c);
            c->in_upgrade_cb = 1;
            c->ops->on_head(c->arg, &c->head);
            c->in_upgrade_cb = 0;
            /* The owner may have sent a new request head from on_head: then the rest is
             * that request's response (the loop goes on), else pipe bytes. The 101's head
             * had to stay intact until on_head returned. */
            if (c->state == ST_READING)
                begin_response(c, c->next_head_request);
            break;
        case HTTP_READER_ERROR:
            fail(c, UV_EPROTO,
                 http_reader_error_status(&c->reader) == 431 ? "the response head is too large"
                                                             : "a malformed HTTP response");
            return off;
        }
    }
}

static void link_on_data(void *arg, const uint8_t *bytes, size_t len)
{
    http_client_t *c = arg;
    const char *data = (const char *)bytes;
    if (c->closing)
        return;
    arm_timer(c);
    while (len > 0 && !c->closing) {
        if (c->state == ST_READING) {
            size_t used = read_response(c, data, len);
            data += used;
            len -= used;
        } else if (c->state == ST_PIPE) {
            c->ops->on_data(c->arg, data, len);
            return;
        } else {
            fail(c, UV_EPROTO, "bytes from the server when no response was expected");
            return;
        }
    }
}

static void link_on_open(void *arg)
{
    http_client_t *c = arg;
    c->open = 1;
    arm_timer(c);
    if (c->early.len > 0) {
        uv_buf_t b = uv_buf_init(c->early.data, (unsigned)c->early.len);
        long rc = link_write(c->link, &b, 1);
        buf_free(&c->early);
        if (rc < 0)
            return; /* the link is ending; its on_close reports it */
    }
}

static void link_on_drain(void *arg)
{
    http_client_t *c = arg;
    if (!c->closing && c->ops->on_drain)
        c->ops->on_drain(c->arg);
}

static void link_on_close(void *arg, int err, const char *why)
{
    http_client_t *c = arg;
    c->link = NULL;
    c->pipe = NULL;
    c->link_gone = 1;
    if (!c->closing && c->state == ST_READING && err == UV_EOF) {
        /* The server's close may be what ends the response. */
        enum http_reader_event ev = http_reader_finish(&c->reader);
        if (ev == HTTP_READER_DONE && c->head_seen) {
            c->state = ST_IDLE;
            c->ops->on_end(c->arg);
        } else {
            set_reason(c, UV_EPROTO, "the server closed the connection before the response "
                                     "was complete");
        }
    }
    set_reason(c, err, why);
    c->closing = 1;
    uv_timer_stop(&c->timer);
    finish(c);
}

static const link_ops_t client_link_ops = {
    .on_open = link_on_open,
    .on_data = link_on_data,
    .on_drain = link_on_drain,
    .on_close = link_on_close,
};

static void on_resolved(resolve_req_t *rq, int status, const struct sockaddr *const *addrs,
                        unsigned n)
{
    http_client_t *c = rq->data;
    if (status < 0) {
        char why[HTTP_URL_MAX_HOST + 80];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", c->url.host, uv_strerror(status));
        fail(c, status, why);
        return;
    }
    c->link = link_new(c->loop, c->url.tls ? c->cfg->tls : NULL, c->url.host,
                       c->cfg->max_queue ? c->cfg->max_queue : DEFAULT_MAX_QUEUE,
                       &client_link_ops, c);
    if (c->link == NULL) {
        fail(c, UV_ENOMEM, "out of memory");
        return;
    }
    if (c->paused)
        link_pause(c->link, 1);
    link_connect(c->link, addrs, n); /* a failure ends in link_on_close */
}

/* A client without its transport yet; NULL when memory runs out. */
static http_client_t *client_new(uv_loop_t *loop, const http_client_config_t *cfg,
                                 const http_client_ops_t *ops, void *arg)
{
    http_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->max_head = cfg->max_head ? cfg->max_head : DEFAULT_MAX_HEAD;
    c->arena = c->max_head == DEFAULT_MAX_HEAD ? recycle_alloc(&arena_bin) : malloc(c->max_head);
    if (c->arena == NULL) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->cfg = cfg;
    c->ops = ops;
    c->arg = arg;
    c->timeout_ms = cfg->timeout_ms;
    http_reader_init_response(&c->reader);
    return c;
}

/* From here on the client ends only through on_close. */
static void client_start(http_client_t *c)
{
    uv_timer_init(c->loop, &c->timer);
    c->timer.data = c;
    arm_timer(c);
}

http_client_t *http_client_open(uv_loop_t *loop, const char *url, const http_client_config_t *cfg,
                                const http_client_ops_t *ops, void *arg, const char **why)
{
    http_url_t u;
    if (http_url_parse(url, strlen(url), &u, why) < 0)
        return NULL;
    if (u.tls && cfg->tls == NULL) {
        *why = "an https:// URL needs a TLS client context";
        return NULL;
    }
    http_client_t *c = client_new(loop, cfg, ops, arg);
    if (c != NULL)
        c->resolver = resolver_for(loop, u.host, u.port, &c->resolver_owned);
    if (c == NULL || c->resolver == NULL) {
        if (c != NULL) {
            arena_free(c);
            free(c);
        }
        *why = "out of memory";
        return NULL;
    }
    c->url = u;
    /* The slices point into the caller's string; only the host (copied) is used later. */
    c->url.authority = c->url.path = SLICE_NULL;
    c->early = BUF_INIT(cfg->max_queue ? cfg->max_queue : DEFAULT_MAX_QUEUE);
    client_start(c);
    c->resolve.data = c;
    resolver_get(c->resolver, &c->resolve, on_resolved);
    return c;
}

/* ---- over a pipe its owner provides ---- */

http_client_t *http_client_open_pipe(uv_loop_t *loop, const http_client_config_t *cfg,
                                     const http_client_ops_t *ops, void *arg,
                                     const http_client_pipe_ops_t *pipe_ops, void *pipe)
{
    http_client_t *c = client_new(loop, cfg, ops, arg);
    if (c == NULL)
        return NULL;
    c->url.port = 80; /* the owner names the Host of every request */
    c->pipe_ops = pipe_ops;
    c->pipe = pipe;
    c->open = 1; /* the pipe is there: nothing is staged in early */
    c->early = BUF_INIT(0);
    client_start(c);
    return c;
}

void http_client_pipe_data(http_client_t *c, const void *data, size_t len)
{
    link_on_data(c, data, len);
}

void http_client_pipe_drain(http_client_t *c)
{
    link_on_drain(c);
}

void http_client_pipe_closed(http_client_t *c, int err, const char *why)
{
    link_on_close(c, err, why);
}

/* ---- writing ---- */

long http_client_write(http_client_t *c, const void *data, size_t len)
{
    if (c->closing)
        return UV_EPIPE;
    if (!c->open) {
        if (buf_append(&c->early, data, len) < 0) {
            fail(c, UV_ENOBUFS, "write queue bound passed");
            return UV_ENOBUFS;
        }
        return (long)c->early.len;
    }
    if (c->pipe != NULL) {
        long queued = c->pipe_ops->write(c->pipe, data, len);
        if (queued < 0)
            fail(c, (int)queued, "the pipe refused the bytes");
        return queued;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return link_write(c->link, &b, 1);
}

/* A head must not let a value end the line early (header injection). */
static int head_safe(slice_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == '\0')
            return 0;
    return 1;
}

int http_client_request(http_client_t *c, const char *method, slice_t target, slice_t host,
                        const http_header_t *headers, size_t nheaders, int64_t content_length)
{
    if (c->closing)
        return UV_EPIPE;
    if (c->state == ST_READING)
        return UV_EBUSY;
    slice_t m = slice_from(method);
    if (!head_safe(m) || memchr(m.ptr, ' ', m.len) || !head_safe(target) || target.len == 0 ||
        memchr(target.ptr, ' ', target.len) || !head_safe(host))
        return UV_EINVAL;
    int has_connection = 0;
    for (size_t i = 0; i < nheaders; i++) {
        if (!head_safe(headers[i].name) || !head_safe(headers[i].value) ||
            headers[i].name.len == 0 || memchr(headers[i].name.ptr, ':', headers[i].name.len))
            return UV_EINVAL;
        if (slice_case_eq(headers[i].name, "connection"))
            has_connection = 1;
    }
    char port[16] = "";
    if (c->url.port != (c->url.tls ? 443u : 80u))
        snprintf(port, sizeof(port), ":%u", c->url.port);
    int v6 = strchr(c->url.host, ':') != NULL;
    buf_t b = BUF_INIT(0);
    int rc = buf_printf(&b, "%.*s %.*s HTTP/1.1\r\n", (int)m.len, m.ptr, (int)target.len,
                        target.ptr);
    if (host.ptr != NULL)
        rc |= buf_printf(&b, "Host: %.*s\r\n", (int)host.len, host.ptr);
    else
        rc |= buf_printf(&b, "Host: %s%s%s%s\r\n", v6 ? "[" : "", c->url.host, v6 ? "]" : "",
                         port);
    for (size_t i = 0; i < nheaders; i++)
        rc |= buf_printf(&b, "%.*s: %.*s\r\n", (int)headers[i].name.len, headers[i].name.ptr,
                         (int)headers[i].value.len, headers[i].value.ptr);
    if (content_length >= 0)
        rc |= buf_printf(&b, "Content-Length: %lld\r\n", (long long)content_length);
    if (!has_connection)
        rc |= buf_append_str(&b, "Connection: close\r\n");
    rc |= buf_append_str(&b, "\r\n");
    if (rc < 0) {
        buf_free(&b);
        return UV_ENOMEM;
    }
    c->state = ST_READING;
    if (c->in_upgrade_cb)
        c->next_head_request = slice_eq(m, "HEAD"); /* begun once on_head returns */
    else
        begin_response(c, slice_eq(m, "HEAD"));
    arm_timer(c);
    long w = http_client_write(c, b.data, b.len);
    buf_free(&b);
    return w < 0 ? (int)w : 0;
}

void http_client_pause(http_client_t *c, int paused)
{
    c->paused = paused ? 1 : 0;
    if (c->link != NULL && !c->closing)
        link_pause(c->link, paused);
    else if (c->pipe != NULL && !c->closing)
        c->pipe_ops->pause(c->pipe, paused);
}

void http_client_cleanup(void)
{
    for (unsigned i = 0; i < RESOLVER_CACHE; i++) {
        if (resolvers[i].r != NULL)
            resolver_free(resolvers[i].r);
        resolvers[i].r = NULL;
    }
    recycle_clear(&arena_bin);
    link_cleanup();
}

/* ---- http_fetch ---- */

struct http_fetch {
    http_client_t *client;
    http_client_config_t cfg;
    http_fetch_cb cb;
    void *arg;
    buf_t body;
    const http_head_t *head; /* the client's, valid until its on_close */
    int too_big;
    int done; /* the callback ran */
};

static void fetch_report(http_fetch_t *f, int err, const http_fetch_response_t *res,
                         const char *why)
{
    if (f->done || f->cb == NULL)
        return;
    f->done = 1;
    f->cb(f->arg, err, res, why);
}

static void fetch_on_head(void *arg, const http_head_t *head)
{
    http_fetch_t *f = arg;
    f->head = head;
    if (head->status == 101)
        http_client_close(f->client, UV_EPROTO, "the server switched protocols", 1);
}

static void fetch_on_body(void *arg, const char *data, size_t len)
{
    http_fetch_t *f = arg;
    if (f->too_big)
        return;
    if (buf_append(&f->body, data, len) < 0) {
        f->too_big = 1;
        http_client_close(f->client, UV_E2BIG, "the response is larger than allowed", 1);
    }
}

static void fetch_on_end(void *arg)
{
    http_fetch_t *f = arg;
    if (buf_append(&f->body, "", 1) < 0) { /* the NUL; room for it is reserved below */
        http_client_close(f->client, UV_E2BIG, "the response is larger than allowed", 1);
        return;
    }
    http_fetch_response_t res = {
        .status = f->head->status,
        .head = f->head,
        .body = f->body.data,
        .body_len = f->body.len - 1,
    };
    fetch_report(f, 0, &res, NULL);
    http_client_close(f->client, 0, "done", 0);
}

static void fetch_on_data(void *arg, const char *data, size_t len)
{
    (void)arg, (void)data, (void)len;
}

static void fetch_on_close(void *arg, int err, const char *why)
{
    http_fetch_t *f = arg;
    fetch_report(f, err < 0 ? err : UV_EPROTO, NULL, why);
    buf_free(&f->body);
    free(f);
}

static const http_client_ops_t fetch_ops = {
    .on_head = fetch_on_head,
    .on_body = fetch_on_body,
    .on_end = fetch_on_end,
    .on_data = fetch_on_data,
    .on_close = fetch_on_close,
};

http_fetch_t *http_fetch(uv_loop_t *loop, const http_fetch_request_t *rq, http_fetch_cb cb,
                         void *arg, const char **why)
{
    http_url_t u;
    if (http_url_parse(rq->url, strlen(rq->url), &u, why) < 0)
        return NULL;
    http_fetch_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        *why = "out of memory";
        return NULL;
    }
    f->cb = cb;
    f->arg = arg;
    f->cfg.tls = rq->tls;
    f->cfg.timeout_ms = rq->timeout_ms ? rq->timeout_ms : 10000;
    f->cfg.timeout_is_deadline = 1; /* a slow drip must not keep the exchange alive */
    size_t queue = rq->body_len + 64 * 1024;
    f->cfg.max_queue = queue > DEFAULT_MAX_QUEUE ? queue : DEFAULT_MAX_QUEUE;
    f->body = BUF_INIT((rq->max_response ? rq->max_response : 1024 * 1024) + 1);
    f->client = http_client_open(loop, rq->url, &f->cfg, &fetch_ops, f, why);
    if (f->client == NULL) {
        free(f);
        return NULL;
    }
    int rc = http_client_request(f->client, rq->method, u.path, SLICE_NULL, rq->headers,
                                 rq->nheaders,
                                 rq->body != NULL || slice_eq(slice_from(rq->method), "POST")
                                     ? (int64_t)rq->body_len
                                     : -1);
    if (rc == 0 && rq->body_len > 0 && http_client_write(f->client, rq->body, rq->body_len) < 0)
        rc = UV_ENOBUFS;
    if (rc < 0) {
        /* Not reported: the caller learns it from the NULL. */
        f->cb = NULL;
        http_client_close(f->client, rc, "unusable request", 1);
        *why = rc == UV_EINVAL ? "a request header holds bytes that cannot be sent"
                               : "cannot queue the request";
        return NULL;
    }
    return f;
}

void http_fetch_cancel(http_fetch_t *f)
{
    f->cb = NULL;
    http_client_close(f->client, 0, "cancelled", 1);
}
