#include "common/http_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/tls.h"

/*
 * A connection reads into one input buffer of IN_CAP bytes, taken from a per-server free list
 * when bytes arrive and given back when everything in it has been consumed, so an idle
 * connection holds no buffer. Output the socket does not take at once goes into a queue of
 * chunks, written with one uv_write at a time.
 */
#define IN_CAP (64 * 1024)
#define WCHUNK_MIN (16 * 1024)
/* Writes smaller than this are gathered and flushed once per loop iteration (in the check phase,
 * right after the I/O callbacks that produced them): a tunnel turns one request into several
 * small frames, and one writev beats one write() each. Larger writes go out at once. */
#define COALESCE_BELOW (16 * 1024)
#define WRITE_IOV_MAX 16
#define FREELIST_MAX 64
#define DEFAULT_MAX_HEAD (16 * 1024)
#define DEFAULT_MAX_BODY (1024 * 1024)
/* TLS: ciphertext is read one record's worth at a time into a scratch buffer shared by the
 * server (reads are processed synchronously), so plaintext never outgrows the input buffer. */
#define TLS_READ_CHUNK (16 * 1024 + 512)

enum conn_state {
    CONN_IDLE,       /* keep-alive, waiting for the first byte of a request */
    CONN_HEAD,       /* reading a request head */
    CONN_BODY,       /* reading a request body */
    CONN_HANDLER,    /* the handler owns the request; input is buffered, not parsed */
    CONN_COMPLETING, /* the response is finished; waiting for its bytes to be written */
    CONN_UPGRADED,   /* a raw byte stream (ops) */
    CONN_CLOSING,
};

enum timer_kind { TIMER_NONE, TIMER_IDLE, TIMER_HEAD, TIMER_BODY, TIMER_WRITE };

typedef struct wchunk {
    struct wchunk *next;
    size_t off, len, cap;
    char data[];
} wchunk_t;

struct http_request {
    http_conn_t *conn; /* NULL once the client has gone */
    http_server_t *server;
    const http_route_t *route;
    http_params_t params;
    buf_t body;
    uint64_t start_ns;
    void *data;
    void (*data_free)(void *);
    void (*abort_cb)(http_request_t *, void *);
    void *abort_arg;
    void (*drain_cb)(http_request_t *, void *);
    void *drain_arg;
    int status;
    uint64_t bytes_out;
    int error_status;        /* a routing error answered once the head (and no body) is read */
    char allow[64];          /* for 405 */
    unsigned with_handler : 1; /* the handler owns it (dispatched, not finished) */
    unsigned streaming : 1;  /* http_respond_start() was called */
    unsigned chunked : 1;
    unsigned no_body : 1;    /* HEAD request, or a status without a body */
    unsigned body_paused : 1; /* streamed body: the handler asked for a pause */
    unsigned body_end_due : 1; /* streamed body: on_end(0) to run (a request without a body) */
    http_body_cb body_cb;     /* streamed body: the handler's reader, once it asked */
    http_body_end_cb body_end_cb;
    void *body_arg;
    uint64_t body_read;
    char id[48];
    char note[64];
    http_head_t head;
    char arena[]; /* the head's bytes; server->max_head long */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_server_t *server;
    http_conn_t *prev, *next;           /* the server's list */
    http_conn_t *defer_prev, *defer_next; /* the server's deferred-work list */
    http_conn_t *flush_next;              /* the server's list of connections to flush */
    unsigned flush_pending : 1;
    enum conn_state state;
    enum timer_kind timer_kind;
    int handles_open;
    char *in;
    size_t in_off, in_len; /* unconsumed input is in[in_off .. in_off+in_len) */
    http_reader_t reader;
    http_request_t *req;
    wchunk_t *wq_head, *wq_tail;
    size_t wq_bytes;
    size_t writing_bytes;
    uv_write_t wreq;
    const http_conn_ops_t *ops;
    void *ops_arg;
    tls_t *tls;
    unsigned keep_alive : 1;
    unsigned reading : 1;
    unsigned paused : 1;
    unsigned deferred : 1;
    unsigned close_after_write : 1;
    unsigned shutdown_told : 1;
    unsigned eof : 1;
    unsigned body_open : 1; /* a streamed body is still being read while the handler runs */
    char remote[48];
};

struct http_server {
    uv_loop_t *loop;
    http_server_config_t cfg;
    http_router_t *router;
    uv_tcp_t listener;
    uv_idle_t defer_idle;
    uv_check_t flush_check;
    uv_idle_t flush_awake; /* keeps the poll from blocking while a flush is pending */
    http_conn_t *flush_head;
    uv_timer_t grace_timer;
    int handles_open; /* listener, defer idle, flush check + idle, grace timer */
    int listening;
    http_conn_t *conns;
    unsigned nconns;
    unsigned nrequests; /* requests alive, with or without a connection */
    http_conn_t *defer_head, *defer_tail;
    unsigned ndeferred;
    int closing_handles;
    char *in_free[FREELIST_MAX];
    unsigned in_nfree;
    http_request_t *req_free[FREELIST_MAX];
    unsigned req_nfree;
    wchunk_t *chunk_free[FREELIST_MAX]; /* write chunks of WCHUNK_MIN bytes, for reuse */
    unsigned chunk_nfree;
    int shutting_down;
    int free_pending;
    void (*done_cb)(void *);
    void *done_arg;
    char tls_in[TLS_READ_CHUNK];
    char rid_prefix[12];
    uint64_t rid_counter;
    time_t date_sec;
    char date[40];
    metric_t *m_conns, *m_req_2xx, *m_req_3xx, *m_req_4xx, *m_req_5xx, *m_duration, *m_rejected;
};

static void conn_process(http_conn_t *c);
static void conn_close(http_conn_t *c);
static void conn_send_error(http_conn_t *c, int status, const char *allow);
static void request_release(http_request_t *req);
static void server_maybe_done(http_server_t *s);
static void conn_flush(http_conn_t *c);
static void conn_start_reading(http_conn_t *c);
static void body_end(http_conn_t *c, int status);
static void chunk_put(http_server_t *s, wchunk_t *w);

/* ---- small helpers ---- */

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static const char *status_code_name(int status)
{
    switch (status) {
    case 400: return "BAD_REQUEST";
    case 404: return "NOT_FOUND";
    case 405: return "METHOD_NOT_ALLOWED";
    case 408: return "REQUEST_TIMEOUT";
    case 413: return "PAYLOAD_TOO_LARGE";
    case 417: return "EXPECTATION_FAILED";
    case 431: return "HEADERS_TOO_LARGE";
    case 501: return "NOT_IMPLEMENTED";
    case 503: return "SERVICE_UNAVAILABLE";
    case 505: return "HTTP_VERSION_NOT_SUPPORTED";
    default: return "ERROR";
    }
}

static const char *server_date(http_server_t *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static int status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* ---- deferred work: things that must not run inside the caller's stack ---- */

static void defer_unlink(http_conn_t *c)
{
    http_server_t *s = c->server;
    if (!c->deferred)
        return;
    if (c->defer_prev)
        c->defer_prev->defer_next = c->defer_next;
    else
        s->defer_head = c->defer_next;
    if (c->defer_next)
        c->defer_next->defer_prev = c->defer_prev;
    else
        s->defer_tail = c->defer_prev;
    c->defer_prev = c->defer_next = NULL;
    c->deferred = 0;
    s->ndeferred--;
}

static void on_defer_idle(uv_idle_t *idle)
{
    http_server_t *s = idle->data;
    /* Only as many as were waiting when the turn began: work scheduled now runs on the next
     * turn, so one busy pipelining client cannot starve the loop. */
    unsigned n = s->ndeferred;
    while (n-- > 0 && s->defer_head != NULL) {
        http_conn_t *c = s->defer_head;
        defer_unlink(c);
        conn_process(c);
    }
    if (s->defer_head == NULL)
        uv_idle_stop(&s->defer_idle);
}

static void conn_defer(http_conn_t *c)
{
    http_server_t *s = c->server;
    if (c->deferred || c->state == CONN_CLOSING)
        return;
    c->deferred = 1;
    c->defer_next = NULL;
    c->defer_prev = s->defer_tail;
    if (s->defer_tail)
        s->defer_tail->defer_next = c;
    else
        s->defer_head = c;
    s->defer_tail = c;
    s->ndeferred++;
    uv_idle_start(&s->defer_idle, on_defer_idle);
}

/* ---- buffers ---- */

static char *in_get(http_server_t *s)
{
    if (s->in_nfree > 0)
        return s->in_free[--s->in_nfree];
    return malloc(IN_CAP);
}

static void in_put(http_server_t *s, char *p)
{
    if (p == NULL)
        return;
    if (s->in_nfree < FREELIST_MAX && !s->shutting_down)
        s->in_free[s->in_nfree++] = p;
    else
        free(p);
}

/* Gives the input buffer back when nothing is left in it. */
static void conn_input_release(http_conn_t *c)
{
    if (c->in != NULL && c->in_len == 0) {
        in_put(c->server, c->in);
        c->in = NULL;
        c->in_off = 0;
    }
}

/* ---- timers ---- */

static void on_conn_timer(uv_timer_t *t);

static void conn_timer(http_conn_t *c, enum timer_kind kind, unsigned ms)
{
    if (c->state == CONN_CLOSING && kind != TIMER_WRITE)
        return;
    c->timer_kind = kind;
    if (kind == TIMER_NONE || ms == 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

static void conn_timer_after_io(http_conn_t *c)
{
    /* While a request is being read its own deadline applies; afterwards, output waiting
     * for the peer is what is watched. */
    if (c->state == CONN_IDLE || c->state == CONN_HEAD || c->state == CONN_BODY)
        return;
    if (c->wq_bytes > 0) {
        if (c->timer_kind != TIMER_WRITE || c->writing_bytes == 0)
            conn_timer(c, TIMER_WRITE, c->server->cfg.write_timeout_ms);
        return;
    }
    if (c->timer_kind == TIMER_WRITE)
        conn_timer(c, TIMER_NONE, 0);
}

static void on_conn_timer(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    enum timer_kind kind = c->timer_kind;
    c->timer_kind = TIMER_NONE;
    switch (kind) {
    case TIMER_IDLE:
        conn_close(c);
        break;
    case TIMER_BODY:
        if (c->state == CONN_HANDLER && c->body_open) { /* a streamed body went silent */
            log_info("http.timeout", "server=%s remote=%s phase=body", c->server->cfg.name,
                     c->remote);
            body_end(c, 408);
            break;
        }
        /* fall through */
    case TIMER_HEAD:
        log_info("http.timeout", "server=%s remote=%s phase=%s", c->server->cfg.name,
                 c->remote, kind == TIMER_HEAD ? "head" : "body");
        conn_send_error(c, 408, NULL);
        break;
    case TIMER_WRITE:
        log_info("http.write_timeout", "server=%s remote=%s queued=%zu", c->server->cfg.name,
                 c->remote, c->wq_bytes);
        c->wq_bytes = 0; /* abandon: the peer does not read */
        c->close_after_write = 0;
        conn_close(c);
        break;
    case TIMER_NONE:
        break;
    }
}

/* ---- connection lifecycle ---- */

static void flush_unlink(http_conn_t *c)
{
    if (!c->flush_pending)
        return;
    for (http_conn_t **p = &c->server->flush_head; *p != NULL; p = &(*p)->flush_next) {
        if (*p == c) {
            *p = c->flush_next;
            break;
        }
    }
    c->flush_pending = 0;
}

static void conn_free(http_conn_t *c)
{
    http_server_t *s = c->server;
    defer_unlink(c);
    flush_unlink(c);
    wchunk_t *w = c->wq_head;
    while (w != NULL) {
        wchunk_t *next = w->next;
        chunk_put(s, w);
        w = next;
    }
    in_put(s, c->in);
    tls_free(c->tls);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    metric_set(s->m_conns, s->nconns);
    free(c);
    server_maybe_done(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    /* An upgraded connection's owner hears of the close only now, from libuv, never from
     * inside one of its own calls (http_conn_close, a write that failed): it may free
     * itself in on_close without pulling the ground from under a caller. */
    if (c->ops != NULL && c->ops->on_close)
        c->ops->on_close(c->ops_arg);
    conn_free(c);
}

/* Closes now: queued output is dropped, the request (if any) is orphaned or released. */
static void conn_close(http_conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return;
    enum conn_state was = c->state;
    c->state = CONN_CLOSING;
    defer_unlink(c);
    http_request_t *req = c->req;
    c->req = NULL;
    if (req != NULL) {
        req->conn = NULL;
        if (req->with_handler) {
            if (req->abort_cb)
                req->abort_cb(req, req->abort_arg);
        } else {
            request_release(req);
        }
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    (void)was;
}

/* Closes once queued output has been written (bounded by the write timeout). */
static void conn_close_after_write(http_conn_t *c)
{
    if (c->wq_bytes == 0 && c->writing_bytes == 0) {
        conn_close(c);
        return;
    }
    c->close_after_write = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    conn_timer(c, TIMER_WRITE, c->server->cfg.write_timeout_ms);
}

/* ---- writing ---- */

/* Write chunks come and go with every burst of output; the common size is recycled. */
static wchunk_t *chunk_get(http_server_t *s, size_t cap)
{
    if (cap == WCHUNK_MIN && s->chunk_nfree > 0)
        return s->chunk_free[--s->chunk_nfree];
    wchunk_t *w = malloc(sizeof(wchunk_t) + cap);
    if (w != NULL)
        w->cap = cap;
    return w;
}

static void chunk_put(http_server_t *s, wchunk_t *w)
{
    if (w->cap == WCHUNK_MIN && s->chunk_nfree < FREELIST_MAX && !s->shutting_down)
        s->chunk_free[s->chunk_nfree++] = w;
    else
        free(w);
}

static int wq_append(http_conn_t *c, const char *p, size_t len)
{
    while (len > 0) {
        wchunk_t *t = c->wq_tail;
        if (t == NULL || t->len == t->cap) {
            size_t cap = len > WCHUNK_MIN ? len : WCHUNK_MIN;
            t = chunk_get(c->server, cap);
            if (t == NULL)
                return -ENOMEM;
            t->next = NULL;
            t->off = t->len = 0;
            if (c->wq_tail)
                c->wq_tail->next = t;
            else
                c->wq_head = t;
            c->wq_tail = t;
        }
        size_t take = t->cap - t->len < len ? t->cap - t->len : len;
        memcpy(t->data + t->len, p, take);
        t->len += take;
        c->wq_bytes += take;
        p += take;
        len -= take;
    }
    return 0;
}

static void on_conn_drained(http_conn_t *c);

static void on_write(uv_write_t *wr, int status)
{
    http_conn_t *c = wr->data;
    size_t done = c->writing_bytes;
    c->writing_bytes = 0;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        log_debug("http.write_error", "server=%s remote=%s err=%s", c->server->cfg.name,
                  c->remote, uv_strerror(status));
        conn_close(c);
        return;
    }
    c->wq_bytes -= done;
    while (done > 0) {
        wchunk_t *w = c->wq_head;
        size_t take = w->len - w->off < done ? w->len - w->off : done;
        w->off += take;
        done -= take;
        if (w->off == w->len) {
            c->wq_head = w->next;
            if (c->wq_tail == w)
                c->wq_tail = NULL;
            chunk_put(c->server, w);
        }
    }
    if (c->wq_bytes > 0) {
        conn_flush(c);
        conn_timer(c, TIMER_WRITE, c->server->cfg.write_timeout_ms); /* progress: re-arm */
        return;
    }
    on_conn_drained(c);
}

static void conn_flush(http_conn_t *c)
{
    if (c->writing_bytes > 0 || c->wq_bytes == 0 || c->state == CONN_CLOSING)
        return;
    uv_buf_t iov[WRITE_IOV_MAX];
    unsigned n = 0;
    size_t total = 0;
    for (wchunk_t *w = c->wq_head; w != NULL && n < WRITE_IOV_MAX; w = w->next) {
        if (w->len == w->off)
            continue;
        iov[n++] = uv_buf_init(w->data + w->off, (unsigned)(w->len - w->off));
        total += w->len - w->off;
    }
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, iov, n, on_write);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    c->writing_bytes = total;
}

/*
 * Sends bufs: as much as the socket takes right now without copying, the rest copied into the
 * queue. Returns the bytes queued afterwards, or a negative error (the connection is closed).
 */
static void on_flush_awake(uv_idle_t *idle)
{
    (void)idle;
}

static void on_flush_check(uv_check_t *check)
{
    http_server_t *s = check->data;
    http_conn_t *list = s->flush_head;
    s->flush_head = NULL;
    uv_check_stop(check);
    uv_idle_stop(&s->flush_awake);
    while (list != NULL) {
        http_conn_t *c = list;
        list = c->flush_next;
        c->flush_pending = 0;
        conn_flush(c);
    }
}

static long conn_send_raw(http_conn_t *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (c->state == CONN_CLOSING)
        return UV_EPIPE;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total < COALESCE_BELOW) {
        for (unsigned i = 0; i < nbufs; i++) {
            if (wq_append(c, bufs[i].base, bufs[i].len) < 0) {
                conn_close(c);
                return UV_ENOMEM;
            }
        }
        if (c->writing_bytes == 0 && !c->flush_pending) { /* else on_write sends it along */
            c->flush_pending = 1;
            c->flush_next = c->server->flush_head;
            c->server->flush_head = c;
            uv_check_start(&c->server->flush_check, on_flush_check);
            /* Check callbacks run after the poll, and only an active idle handle stops the
             * poll from blocking: without it a write made from a timer would wait for I/O. */
            uv_idle_start(&c->server->flush_awake, on_flush_awake);
        }
        conn_timer_after_io(c);
        return (long)c->wq_bytes;
    }
    size_t skip = 0;
    if (c->wq_bytes == 0 && c->writing_bytes == 0) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
        if (n >= 0) {
            skip = (size_t)n;
        } else if (n != UV_EAGAIN) {
            conn_close(c);
            return n;
        }
    }
    for (unsigned i = 0; i < nbufs; i++) {
        size_t len = bufs[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (wq_append(c, bufs[i].base + skip, len - skip) < 0) {
            conn_close(c);
            return UV_ENOMEM;
        }
        skip = 0;
    }
    if (c->wq_bytes > 0) {
        conn_flush(c);
        conn_timer_after_io(c);
    }
    return (long)c->wq_bytes;
}

static int tls_send_cipher(void *arg, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return conn_send_raw(arg, &b, 1) < 0 ? -1 : 0;
}

/* Plaintext bytes out: encrypted first when the connection speaks TLS. */
static long conn_send(http_conn_t *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (c->tls == NULL)
        return conn_send_raw(c, bufs, nbufs);
    if (c->state == CONN_CLOSING)
        return UV_EPIPE;
    for (unsigned i = 0; i < nbufs; i++) {
        if (bufs[i].len > 0 && tls_write(c->tls, (const uint8_t *)bufs[i].base, bufs[i].len) < 0) {
            conn_close(c);
            return UV_EPIPE;
        }
    }
    return (long)c->wq_bytes;
}

/* ---- requests ---- */

static http_request_t *request_new(http_conn_t *c)
{
    http_server_t *s = c->server;
    http_request_t *req;
    if (s->req_nfree > 0) {
        req = s->req_free[--s->req_nfree];
    } else {
        req = malloc(sizeof(http_request_t) + s->cfg.max_head);
        if (req == NULL)
            return NULL;
    }
    memset(req, 0, offsetof(http_request_t, head));
    req->conn = c;
    req->server = s;
    req->body = BUF_INIT(0);
    req->start_ns = uv_hrtime();
    s->nrequests++;
    http_reader_begin(&c->reader, &req->head, req->arena, s->cfg.max_head);
    return req;
}

static void request_release(http_request_t *req)
{
    http_server_t *s = req->server;
    if (req->data_free != NULL)
        req->data_free(req->data);
    buf_free(&req->body);
    s->nrequests--;
    if (s->req_nfree < FREELIST_MAX && !s->shutting_down && !s->free_pending)
        s->req_free[s->req_nfree++] = req;
    else
        free(req);
    if (s->free_pending && s->nrequests == 0) {
        s->free_pending = 0;
        http_server_free(s);
    }
}

static void request_assign_id(http_request_t *req)
{
    slice_t given = http_head_header(&req->head, "x-request-id");
    int ok = given.len > 0 && given.len < sizeof(req->id);
    for (size_t i = 0; ok && i < given.len; i++) {
        char ch = given.ptr[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || ch == '.';
    }
    if (ok) {
        memcpy(req->id, given.ptr, given.len);
        req->id[given.len] = '\0';
    } else {
        http_server_t *s = req->server;
        snprintf(req->id, sizeof(req->id), "%s-%llx", s->rid_prefix,
                 (unsigned long long)++s->rid_counter);
    }
}

/* Query parameters whose values are credentials: `token` (WebSocket and tunnel clients that
 * cannot set headers), an OIDC callback's authorization `code`, ... Returns the length of
 * "name=" when the parameter at p (len bytes left) is one of them, else 0. */
static size_t secret_param(const char *p, size_t len)
{
    static const char *const names[] = {"token=", "code=", "access_token=", "id_token=",
                                        "id_token_hint=", "refresh_token=", "client_secret="};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (len >= n && memcmp(p, names[i], n) == 0)
            return n;
    }
    return 0;
}

/*
 * The request-target for the access log, with the values of credential query parameters
 * (secret_param) replaced: a log must never hold one. Copies at most size - 1 bytes; returns
 * the length.
 */
static size_t target_for_log(slice_t target, char *out, size_t size)
{
    size_t o = 0, i = 0;
    int in_query = 0;
    while (i < target.len && o + 1 < size) {
        char ch = target.ptr[i];
        if ((ch == '?' && !in_query) || (ch == '&' && in_query)) {
            in_query = 1;
            out[o++] = ch;
            i++;
            size_t name = secret_param(target.ptr + i, target.len - i);
            if (name > 0) {
                static const char hidden[] = "[hidden]";
                for (size_t k = 0; k < name + sizeof(hidden) - 1 && o + 1 < size; k++)
                    out[o++] = k < name ? target.ptr[i + k] : hidden[k - name];
                while (i < target.len && target.ptr[i] != '&')
                    i++;
            }
            continue;
        }
        out[o++] = ch;
        i++;
    }
    out[o] = '\0';
    return o;
}

static void request_log(http_request_t *req, const http_conn_t *c)
{
    http_server_t *s = req->server;
    double secs = (double)(uv_hrtime() - req->start_ns) / 1e9;
    int st = req->status;
    metric_t *m = st >= 500 ? s->m_req_5xx : st >= 400 ? s->m_req_4xx : st >= 300 ? s->m_req_3xx
                                                                                : s->m_req_2xx;
    metric_inc(m);
    metric_observe(s->m_duration, secs);
    if (!s->cfg.access_log)
        return;
    char path[256], method[24], target[256];
    size_t target_len = target_for_log(req->head.target, target, sizeof(target));
    log_quote(path, sizeof(path), target, target_len);
    log_quote(method, sizeof(method), req->head.method.ptr, req->head.method.len);
    log_info("http.access", "server=%s rid=%s remote=%s method=%s target=%s status=%d bytes=%llu "
                            "ms=%.2f%s%s",
             s->cfg.name, req->id[0] ? req->id : "-", c ? c->remote : req->conn ? "?" : "gone",
             method, path, st, (unsigned long long)req->bytes_out, secs * 1000.0,
             req->note[0] ? " note=" : "", req->note);
}

/* The response's bytes are all written (or handed to the kernel): on to the next request. */
static void conn_response_complete(http_conn_t *c)
{
    http_request_t *req = c->req;
    c->req = NULL;
    if (req != NULL) {
        request_log(req, c);
        request_release(req);
    }
    if (!c->keep_alive || c->server->shutting_down) {
        conn_close(c);
        return;
    }
    c->state = CONN_IDLE;
    conn_timer(c, TIMER_IDLE, c->server->cfg.idle_timeout_ms);
    conn_start_reading(c);
    conn_defer(c); /* pipelined bytes may be waiting */
}

static void on_conn_drained(http_conn_t *c)
{
    conn_timer_after_io(c);
    if (c->close_after_write) {
        conn_close(c);
        return;
    }
    switch (c->state) {
    case CONN_COMPLETING:
        conn_response_complete(c);
        break;
    case CONN_HANDLER:
        if (c->req && c->req->drain_cb)
            c->req->drain_cb(c->req, c->req->drain_arg);
        break;
    case CONN_UPGRADED:
        if (c->ops && c->ops->on_drain)
            c->ops->on_drain(c->ops_arg);
        break;
    default:
        break;
    }
}

/* Builds a status line and headers into out; returns its length or -1 when it does not fit. */
static long build_head(http_request_t *req, char *out, size_t size, int status,
                       const http_header_t *headers, size_t nheaders, const char *framing)
{
    http_server_t *s = req->server;
    http_conn_t *c = req->conn;
    int keep = c && c->keep_alive && !s->shutting_down;
    int minor = req->head.http_minor;
    size_t o = 0;
    int n = snprintf(out, size, "HTTP/1.%d %d %s\r\nDate: %s\r\n", minor == 0 ? 0 : 1, status,
                     http_status_text(status), server_date(s));
    if (n < 0 || (size_t)n >= size)
        return -1;
    o = (size_t)n;
    for (size_t i = 0; i < nheaders; i++) {
        const http_header_t *h = &headers[i];
        if (o + h->name.len + h->value.len + 4 >= size)
            return -1;
        memcpy(out + o, h->name.ptr, h->name.len);
        o += h->name.len;
        out[o++] = ':';
        out[o++] = ' ';
        memcpy(out + o, h->value.ptr, h->value.len);
        o += h->value.len;
        out[o++] = '\r';
        out[o++] = '\n';
    }
    const char *conn_hdr = status == 101 ? "" : keep ? (minor == 0 ? "Connection: keep-alive\r\n" : "")
                                                     : "Connection: close\r\n";
    n = snprintf(out + o, size - o, "%s%sX-Request-Id: %s\r\n\r\n", framing ? framing : "",
                 conn_hdr, req->id);
    if (n < 0 || (size_t)n >= size - o)
        return -1;
    return (long)(o + (size_t)n);
}

static size_t headers_size(const http_header_t *headers, size_t n)
{
    size_t total = 256; /* status line, Date, framing, Connection, X-Request-Id */
    for (size_t i = 0; i < n; i++)
        total += headers[i].name.len + headers[i].value.len + 4;
    return total;
}

/* Writes a head, with the stack for the usual small one and the heap for a large one. */
static long send_head_and_body(http_request_t *req, int status, const http_header_t *headers,
                               size_t nheaders, const char *framing, const void *body,
                               size_t len)
{
    char stack[2048];
    size_t need = headers_size(headers, nheaders);
    char *head = need <= sizeof(stack) ? stack : malloc(need);
    if (head == NULL)
        return UV_ENOMEM;
    long hl = build_head(req, head, need <= sizeof(stack) ? sizeof(stack) : need, status,
                         headers, nheaders, framing);
    long rc;
    if (hl < 0) {
        rc = UV_E2BIG;
    } else {
        uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init((char *)body, (unsigned)len)};
        rc = conn_send(req->conn, bufs, len > 0 ? 2 : 1);
        req->bytes_out += len;
    }
    if (head != stack)
        free(head);
    return rc;
}

static void request_finish(http_request_t *req)
{
    http_conn_t *c = req->conn;
    req->with_handler = 0;
    if (c == NULL) { /* the client went away while the handler worked */
        request_log(req, NULL);
        request_release(req);
        return;
    }
    if (c->body_open) { /* the rest of the body is never read: this connection ends */
        c->body_open = 0;
        c->keep_alive = 0;
    }
    c->state = CONN_COMPLETING;
    if (c->wq_bytes == 0 && c->writing_bytes == 0)
        conn_response_complete(c);
}

void http_respond(http_request_t *req, int status, const http_header_t *headers,
                  size_t nheaders, const void *body, size_t len)
{
    req->status = status;
    if (req->conn == NULL || req->streaming) {
        if (req->streaming) /* a programming error; finish rather than leak */
            log_error("http.respond_misuse", "rid=%s", req->id);
        request_finish(req);
        return;
    }
    char framing[48];
    int has_body = status_has_body(status);
    if (has_body)
        snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", len);
    else
        framing[0] = '\0';
    int send_body = has_body && !(req->head.method_id == HTTP_HEAD);
    long rc = send_head_and_body(req, status, headers, nheaders, framing, send_body ? body : NULL,
                                 send_body ? len : 0);
    if (rc == UV_E2BIG) {
        log_error("http.head_too_large", "rid=%s", req->id);
        send_head_and_body(req, 500, NULL, 0, "Content-Length: 0\r\n", NULL, 0);
        req->status = 500;
    }
    request_finish(req);
}

int http_respond_start(http_request_t *req, int status, const http_header_t *headers,
                       size_t nheaders)
{
    req->status = status;
    req->streaming = 1;
    if (req->conn == NULL)
        return UV_EPIPE;
    int has_length = 0;
    for (size_t i = 0; i < nheaders; i++)
        has_length |= slice_case_eq(headers[i].name, "content-length");
    const char *framing = NULL;
    req->no_body = !status_has_body(status) || req->head.method_id == HTTP_HEAD;
    if (!has_length && !req->no_body) {
        if (req->head.http_minor >= 1) {
            framing = "Transfer-Encoding: chunked\r\n";
            req->chunked = 1;
        } else {
            req->conn->keep_alive = 0; /* HTTP/1.0: the end of the body is the close */
        }
    }
    long rc = send_head_and_body(req, status, headers, nheaders, framing, NULL, 0);
    return rc < 0 ? (int)rc : 0;
}

long http_respond_write(http_request_t *req, const void *data, size_t len)
{
    if (req->conn == NULL)
        return UV_EPIPE;
    if (len == 0 || req->no_body)
        return (long)req->conn->wq_bytes;
    req->bytes_out += len;
    if (!req->chunked) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        return conn_send(req->conn, &b, 1);
    }
    char size_line[24];
    int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
    uv_buf_t bufs[3] = {uv_buf_init(size_line, (unsigned)n), uv_buf_init((char *)data, (unsigned)len),
                        uv_buf_init("\r\n", 2)};
    return conn_send(req->conn, bufs, 3);
}

void http_respond_on_drain(http_request_t *req, void (*cb)(http_request_t *, void *), void *arg)
{
    req->drain_cb = cb;
    req->drain_arg = arg;
}

void http_respond_end(http_request_t *req)
{
    if (req->conn != NULL && req->chunked) {
        uv_buf_t b = uv_buf_init("0\r\n\r\n", 5);
        conn_send(req->conn, &b, 1);
    }
    request_finish(req);
}

void http_respond_abort(http_request_t *req)
{
    if (req->conn != NULL)
        req->conn->keep_alive = 0;
    snprintf(req->note, sizeof(req->note), "%s", "aborted");
    request_finish(req);
}

int http_request_has_body(const http_request_t *req)
{
    return req->head.chunked || req->head.content_length > 0;
}

void http_request_body_stream(http_request_t *req, http_body_cb on_body, http_body_end_cb on_end,
                              void *arg)
{
    req->body_cb = on_body;
    req->body_end_cb = on_end;
    req->body_arg = arg;
    http_conn_t *c = req->conn;
    if (c == NULL || c->req != req)
        return; /* the client is gone: the abort callback tells */
    if (!c->body_open)
        req->body_end_due = 1; /* no body, or it was read whole: just the end */
    conn_defer(c);         /* never from inside this call */
}

void http_request_body_pause(http_request_t *req, int paused)
{
    req->body_paused = paused ? 1 : 0;
    http_conn_t *c = req->conn;
    if (!paused && c != NULL && c->req == req && c->body_open) {
        conn_start_reading(c);
        conn_defer(c);
    }
}

/* ---- errors the server answers itself ---- */

static void conn_send_error(http_conn_t *c, int status, const char *allow)
{
    if (c->state == CONN_CLOSING)
        return;
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     status_code_name(status), http_status_text(status));
    http_request_t *req = c->req;
    if (req == NULL) {
        req = request_new(c);
        if (req == NULL) {
            conn_close(c);
            return;
        }
        c->req = req;
    }
    if (req->id[0] == '\0')
        request_assign_id(req);
    c->keep_alive = 0;
    req->status = status;
    snprintf(req->note, sizeof(req->note), "%s", status_code_name(status));
    http_header_t hdrs[2] = {{SLICE_LIT("Content-Type"), SLICE_LIT("application/json")}};
    size_t nh = 1;
    if (allow != NULL)
        hdrs[nh++] = (http_header_t){SLICE_LIT("Allow"), slice_from(allow)};
    char framing[48];
    snprintf(framing, sizeof(framing), "Content-Length: %d\r\n", n);
    send_head_and_body(req, status, hdrs, nh, framing, body, (size_t)n);
    if (c->req == req) { /* not released by a failed write */
        c->req = NULL;
        request_log(req, c);
        request_release(req);
    }
    if (c->state != CONN_CLOSING) {
        c->state = CONN_COMPLETING;
        conn_close_after_write(c);
    }
}

/* ---- reading and dispatch ---- */

static void dispatch(http_conn_t *c)
{
    http_request_t *req = c->req;
    http_server_t *s = c->server;
    conn_timer(c, TIMER_NONE, 0);
    c->state = CONN_HANDLER;
    req->with_handler = 1;
    if (s->shutting_down)
        c->keep_alive = 0;
    if (s->cfg.dispatch)
        s->cfg.dispatch(req, req->route);
    else
        req->route->handler(req);
}

/* The head is complete: route it and decide about the body before reading any of it. */
static int on_head(http_conn_t *c)
{
    http_request_t *req = c->req;
    http_server_t *s = c->server;
    const http_head_t *h = &req->head;
    c->keep_alive = h->keep_alive;
    request_assign_id(req);
    const void *route = NULL;
    enum http_route_result rr = http_router_match(s->router, h->method, h->path, &route,
                                                  &req->params, req->allow, sizeof(req->allow));
    int has_body = h->chunked || h->content_length > 0;
    if (rr != HTTP_ROUTE_FOUND) {
        req->error_status = rr == HTTP_ROUTE_NOT_FOUND ? 404 : 405;
        if (has_body) { /* do not read a body nobody wants: answer and close */
            conn_send_error(c, req->error_status, rr == HTTP_ROUTE_BAD_METHOD ? req->allow : NULL);
            return -1;
        }
        return 0;
    }
    req->route = route;
    size_t limit = req->route->max_body ? req->route->max_body : s->cfg.max_body;
    if (h->content_length > 0 && (uint64_t)h->content_length > limit) {
        conn_send_error(c, 413, NULL);
        return -1;
    }
    if (req->route->stream_body && has_body) {
        if (h->expect_continue && h->http_minor >= 1) {
            uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
            if (conn_send(c, &b, 1) < 0)
                return -1;
        }
        c->body_open = 1;
        return 0;
    }
    req->body.max = limit;
    if (h->content_length > 0 && buf_reserve(&req->body, (size_t)h->content_length) < 0) {
        conn_send_error(c, 503, NULL);
        return -1;
    }
    if (h->expect_continue && has_body && h->http_minor >= 1) {
        uv_buf_t b = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (conn_send(c, &b, 1) < 0)
            return -1;
    }
    return 0;
}

static void body_end(http_conn_t *c, int status)
{
    http_request_t *req = c->req;
    c->body_open = 0;
    if (status != 0) {
        c->keep_alive = 0;
        log_debug("http.body_failed", "server=%s remote=%s status=%d", c->server->cfg.name,
                  c->remote, status);
    }
    if (c->timer_kind == TIMER_BODY)
        conn_timer(c, TIMER_NONE, 0);
    if (req->body_end_cb != NULL)
        req->body_end_cb(req, req->body_arg, status);
}

/* The connection's reader over its unconsumed input; consumes what the reader used. */
static enum http_reader_event conn_feed(http_conn_t *c, slice_t *body)
{
    size_t used = 0;
    enum http_reader_event ev = http_reader_feed(&c->reader, c->in ? c->in + c->in_off : "",
                                                 c->in_len, &used, body);
    c->in_off += used;
    c->in_len -= used;
    return ev;
}

/* A streamed body: hand the handler what has arrived, as long as it reads. */
static void body_pump(http_conn_t *c)
{
    http_request_t *req = c->req;
    size_t limit = req->route->max_body ? req->route->max_body : c->server->cfg.max_body;
    while (c->state == CONN_HANDLER && c->body_open && c->req == req && !req->body_paused) {
        if (c->in_len == 0 && !http_reader_paused(&c->reader)) {
            conn_input_release(c);
            if (c->eof) {
                body_end(c, 400); /* the client stopped sending mid-body */
                return;
            }
            conn_timer(c, TIMER_BODY, c->server->cfg.body_timeout_ms);
            conn_start_reading(c);
            return;
        }
        slice_t body = SLICE_NULL;
        enum http_reader_event ev = conn_feed(c, &body);
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            break;
        case HTTP_READER_BODY:
            req->body_read += body.len;
            if (req->body_read > limit) {
                body_end(c, 413);
                return;
            }
            req->body_cb(req, req->body_arg, body.ptr, body.len);
            break;
        case HTTP_READER_DONE:
        case HTTP_READER_UPGRADE:
            body_end(c, 0);
            return;
        case HTTP_READER_HEAD:
        case HTTP_READER_ERROR:
            body_end(c, 400);
            return;
        }
    }
    if (c->state == CONN_HANDLER && c->body_open && req->body_paused &&
        c->timer_kind == TIMER_BODY)
        conn_timer(c, TIMER_NONE, 0); /* we stopped reading, not the client */
}

static void conn_process(http_conn_t *c)
{
    http_server_t *s = c->server;
    if (c->state == CONN_HANDLER && c->req != NULL) {
        if (c->req->body_end_due) {
            c->req->body_end_due = 0;
            if (c->req->body_end_cb != NULL)
                c->req->body_end_cb(c->req, c->req->body_arg, 0);
        } else if (c->body_open && c->req->body_cb != NULL) {
            body_pump(c);
        }
        return;
    }
    if (c->state == CONN_UPGRADED) {
        /* Bytes that arrived with the upgrade request belong to the new protocol. */
        if (c->in_len > 0 && !c->paused) {
            size_t len = c->in_len;
            c->in_len = 0;
            char *in = c->in;
            c->in = NULL;
            c->ops->on_data(c->ops_arg, in + c->in_off, len);
            c->in_off = 0;
            in_put(s, in);
        }
        return;
    }
    while (c->state == CONN_IDLE || c->state == CONN_HEAD || c->state == CONN_BODY) {
        if (c->in_len == 0 && !(c->state != CONN_IDLE && http_reader_paused(&c->reader))) {
            conn_input_release(c);
            if (c->eof) {
                if (c->state == CONN_IDLE)
                    conn_close(c);
                else
                    conn_send_error(c, 400, NULL); /* the request was cut short */
            }
            return;
        }
        if (c->state == CONN_IDLE) {
            c->req = request_new(c);
            if (c->req == NULL) {
                conn_close(c);
                return;
            }
            c->state = CONN_HEAD;
            conn_timer(c, TIMER_HEAD, s->cfg.head_timeout_ms);
        }
        slice_t body = SLICE_NULL;
        enum http_reader_event ev = conn_feed(c, &body);
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            break;
        case HTTP_READER_HEAD:
            if (on_head(c) < 0)
                return;
            if (c->body_open) {
                dispatch(c); /* the handler reads the body as it comes */
                return;
            }
            c->state = CONN_BODY;
            conn_timer(c, TIMER_BODY, s->cfg.body_timeout_ms);
            break;
        case HTTP_READER_BODY:
            if (c->req->error_status == 0 && buf_append(&c->req->body, body.ptr, body.len) < 0) {
                conn_send_error(c, 413, NULL);
                return;
            }
            break;
        case HTTP_READER_DONE:
        case HTTP_READER_UPGRADE:
            if (c->req->error_status) {
                int st = c->req->error_status;
                c->state = CONN_HANDLER;
                c->req->with_handler = 1;
                char body_json[128];
                int n = snprintf(body_json, sizeof(body_json),
                                 "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                                 status_code_name(st), http_status_text(st));
                http_header_t hdrs[2] = {{SLICE_LIT("Content-Type"), SLICE_LIT("application/json")},
                                         {SLICE_LIT("Allow"), slice_from(c->req->allow)}};
                if (ev == HTTP_READER_UPGRADE)
                    c->keep_alive = 0;
                snprintf(c->req->note, sizeof(c->req->note), "%s", status_code_name(st));
                http_respond(c->req, st, hdrs, st == 405 ? 2 : 1, body_json, (size_t)n);
                return;
            }
            if (ev == HTTP_READER_UPGRADE)
                c->keep_alive = 0; /* unless the handler upgrades, this connection ends here */
            dispatch(c);
            return;
        case HTTP_READER_ERROR: {
            int st = http_reader_error_status(&c->reader);
            log_debug("http.bad_request", "server=%s remote=%s status=%d reason=%s",
                      s->cfg.name, c->remote, st, llhttp_get_error_reason(&c->reader.parser)
                                                      ? llhttp_get_error_reason(&c->reader.parser)
                                                      : "-");
            conn_send_error(c, st, NULL);
            return;
        }
        }
    }
}

static void conn_input_arrived(http_conn_t *c, size_t nread);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = h->data;
    if (c->tls != NULL) {
        *buf = uv_buf_init(c->server->tls_in, sizeof(c->server->tls_in));
        return;
    }
    if (c->in == NULL) {
        c->in = in_get(c->server);
        c->in_off = c->in_len = 0;
        if (c->in == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
    }
    if (c->in_off > 0 && c->in_off + c->in_len > IN_CAP / 2) { /* make room at the end */
        memmove(c->in, c->in + c->in_off, c->in_len);
        c->in_off = 0;
    }
    size_t end = c->in_off + c->in_len;
    *buf = uv_buf_init(c->in + end, (unsigned)(IN_CAP - end));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) { /* the input buffer is full: stop until it drains */
            uv_read_stop(stream);
            c->reading = 0;
            return;
        }
        uv_read_stop(stream);
        c->reading = 0;
        if (c->state == CONN_UPGRADED && nread == UV_EOF && c->ops->on_eof) {
            c->eof = 1;
            c->paused = 1; /* nothing more to read; keep the write side */
            c->ops->on_eof(c->ops_arg);
            return;
        }
        if (c->state == CONN_UPGRADED || c->state == CONN_HANDLER ||
            c->state == CONN_COMPLETING || nread != UV_EOF) {
            /* A client that leaves while its request is handled is gone: the handler is told.
             * (A half-close after a complete request is treated the same, as most servers do.) */
            conn_close(c);
            return;
        }
        c->eof = 1;
        conn_process(c);
        return;
    }
    if (c->tls != NULL) {
        int rc = tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread);
        if (rc < 0 && c->state != CONN_CLOSING) {
            char why[96];
            log_debug("http.tls_error", "server=%s remote=%s error=\"%s\"", c->server->cfg.name,
                      c->remote, tls_strerror(rc, why, sizeof(why)));
            conn_close(c);
        }
        return;
    }
    if (c->state == CONN_UPGRADED) {
        c->in_len += (size_t)nread;
        conn_process(c);
        return;
    }
    conn_input_arrived(c, (size_t)nread);
}

/* nread new bytes are at the end of the input buffer: move the connection on. */
static void conn_input_arrived(http_conn_t *c, size_t nread)
{
    uv_stream_t *stream = (uv_stream_t *)&c->tcp;
    c->in_len += nread;
    if (c->state == CONN_BODY)
        conn_timer(c, TIMER_BODY, c->server->cfg.body_timeout_ms);
    if (c->state == CONN_IDLE || c->state == CONN_HEAD || c->state == CONN_BODY) {
        conn_process(c);
    } else if (c->state == CONN_HANDLER && c->body_open && c->req->body_cb != NULL &&
               !c->req->body_paused) {
        conn_process(c);
    } else if (c->in_off + c->in_len >= IN_CAP) {
        /* Pipelined input while a request is handled: keep what fits, then stop reading. */
        uv_read_stop(stream);
        c->reading = 0;
    }
}

/* Decrypted bytes: into the input buffer, then on as if they had been read in the clear. */
static void tls_on_plain(void *arg, const uint8_t *data, size_t len)
{
    http_conn_t *c = arg;
    if (c->state == CONN_CLOSING)
        return;
    if (c->in == NULL) {
        c->in = in_get(c->server);
        c->in_off = c->in_len = 0;
    }
    if (c->in_off > 0 && c->in_off + c->in_len + len > IN_CAP) {
        memmove(c->in, c->in + c->in_off, c->in_len);
        c->in_off = 0;
    }
    if (c->in == NULL || c->in_len + len > IN_CAP) {
        /* Only a client pipelining far ahead of its responses gets here. */
        log_info("http.input_overflow", "server=%s remote=%s", c->server->cfg.name, c->remote);
        conn_close(c);
        return;
    }
    memcpy(c->in + c->in_off + c->in_len, data, len);
    if (c->state == CONN_UPGRADED) {
        c->in_len += len;
        conn_process(c);
        return;
    }
    conn_input_arrived(c, len);
}

static const tls_io_t conn_tls_io = {tls_send_cipher, tls_on_plain, NULL};

static void conn_start_reading(http_conn_t *c)
{
    if (c->reading || c->paused || c->state == CONN_CLOSING ||
        (c->eof && c->state == CONN_UPGRADED))
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status < 0) {
        log_warn("http.accept_error", "server=%s err=%s", s->cfg.name, uv_strerror(status));
        return;
    }
    http_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    metric_set(s->m_conns, s->nconns);
    http_reader_init(&c->reader);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    if (s->nconns > s->cfg.max_connections || s->shutting_down) {
        metric_inc(s->m_rejected);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof(c->remote));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof(c->remote));
    } else {
        strcpy(c->remote, "?");
    }
    if (s->cfg.tls != NULL) {
        c->tls = tls_new(s->cfg.tls, NULL, &conn_tls_io, c);
        if (c->tls == NULL) {
            conn_close(c);
            return;
        }
    }
    c->state = CONN_IDLE;
    conn_timer(c, TIMER_IDLE, s->cfg.idle_timeout_ms);
    conn_start_reading(c);
}

/* ---- upgrades ---- */

http_conn_t *http_request_upgrade(http_request_t *req, const http_header_t *headers,
                                  size_t nheaders, const http_conn_ops_t *ops, void *arg)
{
    http_conn_t *c = req->conn;
    req->status = 101;
    if (c == NULL) {
        request_finish(req);
        return NULL;
    }
    long rc = send_head_and_body(req, 101, headers, nheaders, NULL, NULL, 0);
    req->with_handler = 0;
    if (rc < 0 || c->state == CONN_CLOSING) {
        if (c->req == req) {
            c->req = NULL;
            request_log(req, c);
            request_release(req);
        }
        return NULL;
    }
    c->req = NULL;
    request_log(req, c);
    request_release(req);
    c->state = CONN_UPGRADED;
    c->ops = ops;
    c->ops_arg = arg;
    c->keep_alive = 0;
    conn_timer_after_io(c);
    if (c->in_len > 0)
        conn_defer(c);
    else
        conn_input_release(c);
    conn_start_reading(c);
    return c;
}

long http_conn_write(http_conn_t *c, const void *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return conn_send(c, &b, 1);
}

long http_conn_writev(http_conn_t *c, const uv_buf_t *bufs, unsigned nbufs)
{
    return conn_send(c, bufs, nbufs);
}

size_t http_conn_queued(const http_conn_t *c)
{
    return c->wq_bytes;
}

void http_conn_pause(http_conn_t *c, int paused)
{
    if (c->state == CONN_CLOSING)
        return;
    c->paused = paused ? 1 : 0;
    if (paused && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    } else if (!paused) {
        if (c->in_len > 0)
            conn_defer(c);
        conn_start_reading(c);
    }
}

void http_conn_close(http_conn_t *c)
{
    if (c->state == CONN_CLOSING || c->close_after_write)
        return;
    conn_close_after_write(c);
}

const char *http_conn_remote_addr(const http_conn_t *c)
{
    return c->remote;
}

uv_loop_t *http_conn_loop(const http_conn_t *c)
{
    return c->server->loop;
}

/* ---- request accessors ---- */

const http_head_t *http_request_head(const http_request_t *req)
{
    return &req->head;
}

slice_t http_request_method(const http_request_t *req)
{
    return req->head.method;
}

slice_t http_request_path(const http_request_t *req)
{
    return req->head.path;
}

slice_t http_request_header(const http_request_t *req, const char *name)
{
    return http_head_header(&req->head, name);
}

slice_t http_request_param(const http_request_t *req, const char *name)
{
    return http_params_get(&req->params, name);
}

long http_request_query(const http_request_t *req, const char *name, char *out, size_t size)
{
    slice_t q = req->head.query;
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < q.len) {
        size_t end = i;
        while (end < q.len && q.ptr[end] != '&')
            end++;
        const char *eq = memchr(q.ptr + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (q.ptr + i)) : end - i;
        if (klen == nlen && memcmp(q.ptr + i, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : q.ptr + end;
            long n = slice_percent_decode((slice_t){v, (size_t)(q.ptr + end - v)}, 1, out, size);
            return n < 0 ? -2 : n;
        }
        i = end + 1;
    }
    return -1;
}

slice_t http_request_body(const http_request_t *req)
{
    return (slice_t){req->body.data ? req->body.data : "", req->body.len};
}

const http_route_t *http_request_route(const http_request_t *req)
{
    return req->route;
}

http_server_t *http_request_server(const http_request_t *req)
{
    return req->server;
}

const char *http_request_remote_addr(const http_request_t *req)
{
    return req->conn ? req->conn->remote : "gone";
}

const char *http_request_id(const http_request_t *req)
{
    return req->id;
}

int http_request_aborted(const http_request_t *req)
{
    return req->conn == NULL;
}

void http_request_set_data(http_request_t *req, void *data, void (*free_fn)(void *))
{
    if (req->data_free != NULL && req->data != data)
        req->data_free(req->data);
    req->data = data;
    req->data_free = free_fn;
}

void *http_request_data(const http_request_t *req)
{
    return req->data;
}

void http_request_on_abort(http_request_t *req, void (*cb)(http_request_t *, void *), void *arg)
{
    req->abort_cb = cb;
    req->abort_arg = arg;
}

void http_request_set_log_note(http_request_t *req, const char *note)
{
    snprintf(req->note, sizeof(req->note), "%s", note);
}

/* ---- server ---- */

static void server_metrics(http_server_t *s)
{
    char labels[96];
    const char *n = s->cfg.name;
    snprintf(labels, sizeof(labels), "server=\"%s\"", n);
    s->m_conns = metrics_gauge("edgegate_http_connections", "Open HTTP connections.", labels);
    s->m_rejected = metrics_counter("edgegate_http_connections_rejected_total",
                                    "Connections refused over the connection limit.", labels);
    s->m_duration = metrics_histogram("edgegate_http_request_duration_seconds",
                                      "Time from first byte to finished response.", labels,
                                      metrics_latency_bounds, metrics_latency_nbounds);
    const char *help = "HTTP responses by status class.";
    snprintf(labels, sizeof(labels), "server=\"%s\",code=\"2xx\"", n);
    s->m_req_2xx = metrics_counter("edgegate_http_responses_total", help, labels);
    snprintf(labels, sizeof(labels), "server=\"%s\",code=\"3xx\"", n);
    s->m_req_3xx = metrics_counter("edgegate_http_responses_total", help, labels);
    snprintf(labels, sizeof(labels), "server=\"%s\",code=\"4xx\"", n);
    s->m_req_4xx = metrics_counter("edgegate_http_responses_total", help, labels);
    snprintf(labels, sizeof(labels), "server=\"%s\",code=\"5xx\"", n);
    s->m_req_5xx = metrics_counter("edgegate_http_responses_total", help, labels);
}

http_server_t *http_server_new(uv_loop_t *loop, const http_server_config_t *config,
                               const http_route_t *routes, size_t nroutes)
{
    http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->cfg = *config;
    if (!s->cfg.name)
        s->cfg.name = "http";
    if (!s->cfg.max_head)
        s->cfg.max_head = DEFAULT_MAX_HEAD;
    if (!s->cfg.max_body)
        s->cfg.max_body = DEFAULT_MAX_BODY;
    if (!s->cfg.head_timeout_ms)
        s->cfg.head_timeout_ms = 10000;
    if (!s->cfg.body_timeout_ms)
        s->cfg.body_timeout_ms = 30000;
    if (!s->cfg.idle_timeout_ms)
        s->cfg.idle_timeout_ms = 60000;
    if (!s->cfg.write_timeout_ms)
        s->cfg.write_timeout_ms = 60000;
    if (!s->cfg.max_connections)
        s->cfg.max_connections = 10000;
    s->router = http_router_new();
    if (s->router == NULL) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < nroutes; i++) {
        if (http_router_add(s->router, routes[i].method, routes[i].pattern, &routes[i]) < 0) {
            log_error("http.bad_route", "pattern=%s", routes[i].pattern);
            http_router_free(s->router);
            free(s);
            return NULL;
        }
    }
    uint8_t rnd[4];
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), s->rid_prefix);
    uv_idle_init(loop, &s->defer_idle);
    s->defer_idle.data = s;
    uv_check_init(loop, &s->flush_check);
    s->flush_check.data = s;
    uv_idle_init(loop, &s->flush_awake);
    s->flush_awake.data = s;
    uv_timer_init(loop, &s->grace_timer);
    s->grace_timer.data = s;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles_open = 5;
    server_metrics(s);
    return s;
}

static int parse_host_port(const char *host_port, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon = strrchr(host_port, ':');
    if (colon == NULL || (size_t)(colon - host_port) >= sizeof(host))
        return UV_EINVAL;
    size_t hl = (size_t)(colon - host_port);
    memcpy(host, host_port, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || colon[1] == '\0')
        return UV_EINVAL;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss);
    }
    return uv_ip4_addr(host[0] ? host : "0.0.0.0", (int)port, (struct sockaddr_in *)ss);
}

int http_server_listen(http_server_t *s, const char *host_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = parse_host_port(host_port, &ss);
    if (rc < 0)
        return rc;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc < 0)
        return rc;
    rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc < 0)
        return rc;
    s->listening = 1;
    return 0;
}

int http_server_port(const http_server_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void *http_server_data(const http_server_t *s)
{
    return s->cfg.data;
}

unsigned http_server_connections(const http_server_t *s)
{
    return s->nconns;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->handles_open--;
    server_maybe_done(s);
}

/* Shutdown ends when every connection is gone; then the server's own handles close. */
static void server_maybe_done(http_server_t *s)
{
    if (!s->shutting_down || s->done_cb == NULL || s->nconns > 0)
        return;
    if (!s->closing_handles) {
        s->closing_handles = 1;
        uv_close((uv_handle_t *)&s->grace_timer, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->defer_idle, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->flush_check, on_server_handle_closed);
        uv_close((uv_handle_t *)&s->flush_awake, on_server_handle_closed);
        return;
    }
    if (s->handles_open == 0) {
        void (*cb)(void *) = s->done_cb;
        s->done_cb = NULL;
        cb(s->done_arg);
    }
}

static void on_grace_expired(uv_timer_t *t)
{
    http_server_t *s = t->data;
    if (s->nconns > 0)
        log_warn("http.shutdown_forced", "server=%s connections=%u", s->cfg.name, s->nconns);
    http_conn_t *c = s->conns;
    while (c != NULL) {
        http_conn_t *next = c->next;
        conn_close(c);
        c = next;
    }
}

void http_server_shutdown(http_server_t *s, unsigned grace_ms, void (*done)(void *), void *arg)
{
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    s->done_cb = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_timer_start(&s->grace_timer, on_grace_expired, grace_ms, 0);
    http_conn_t *c = s->conns;
    while (c != NULL) {
        http_conn_t *next = c->next;
        if (c->state == CONN_IDLE && c->in_len == 0) {
            conn_close(c);
        } else if (c->state == CONN_UPGRADED) {
            if (c->ops && c->ops->on_shutdown && !c->shutdown_told) {
                c->shutdown_told = 1;
                c->ops->on_shutdown(c->ops_arg);
            } else {
                conn_close(c);
            }
        } else {
            c->keep_alive = 0; /* the response in progress closes the connection */
        }
        c = next;
    }
    server_maybe_done(s);
}

void http_server_free(http_server_t *s)
{
    if (s == NULL)
        return;
    if (s->nrequests > 0) { /* handlers still hold requests: free with the last of them */
        s->free_pending = 1;
        return;
    }
    while (s->in_nfree > 0)
        free(s->in_free[--s->in_nfree]);
    while (s->req_nfree > 0)
        free(s->req_free[--s->req_nfree]);
    while (s->chunk_nfree > 0)
        free(s->chunk_free[--s->chunk_nfree]);
    http_router_free(s->router);
    free(s);
}
