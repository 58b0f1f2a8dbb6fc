#include "common/link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/recycle.h"
#include "common/tcp_conn.h"

/* Staged bytes beyond this go out at once rather than at the end of the turn. */
#define STAGE_FLUSH_AT (64 * 1024)
/* A stage starts at this size; stages of this size are recycled (recycle.h). */
#define STAGE_SIZE (16 * 1024)

struct link {
    uv_loop_t *loop;
    tcp_conn_t *tcp;
    tls_t *tls;
    tls_ctx_t *tls_ctx;
    const char *hostname;
    const link_ops_t *ops;
    void *arg;
    size_t max_queue;
    uint8_t *stage; /* plaintext written this turn, not yet handed to TLS / TCP */
    size_t stage_len, stage_cap;
    link_t *fprev, *fnext; /* in the flush list while something is staged */
    int err;
    char why[160];
    unsigned open : 1;
    unsigned listed : 1;
    unsigned closing : 1;     /* close or abort asked for: no more callbacks but on_close */
    unsigned tcp_closing : 1; /* tcp_conn_close called */
    unsigned paused : 1;
};

/* ---- the end-of-turn flush, shared by every link ---- */

/* The check handle flushes after the loop's I/O callbacks; the idle handle keeps the loop
 * from sleeping in poll while something is staged from a timer or close callback. */
static uv_check_t flush_check;
static uv_idle_t flush_idle;
static int flush_ready;
static link_t *flush_head, *flush_tail;
static unsigned flush_count;

static void flush(link_t *l, int notify);

static recycle_t stage_bin = RECYCLE_INIT(STAGE_SIZE);

static void stage_release(uint8_t *p, size_t cap)
{
    if (cap == STAGE_SIZE)
        recycle_free(&stage_bin, p);
    else
        free(p);
}

static void unlist(link_t *l)
{
    if (!l->listed) return;
    if (l->fprev)
        l->fprev->fnext = l->fnext;
    else
        flush_head = l->fnext;
    if (l->fnext)
        l->fnext->fprev = l->fprev;
    else
        flush_tail = l->fprev;
    l->fprev = l->fnext = NULL;
    l->listed = 0;
    if (--flush_count == 0) {
        uv_check_stop(&flush_check);
        uv_idle_stop(&flush_idle);
    }
}

static void on_idle(uv_idle_t *h)
{
    (void)h;
}

static void on_check(uv_check_t *h)
{
    (void)h;
    /* Only the links staged before this turn's flush: one whose flush stages more (a drained
     * WebSocket pumping its next frames) waits for the next turn. */
    unsigned n = flush_count;
    while (n-- > 0 && flush_head != NULL) {
        link_t *l = flush_head;
        unlist(l);
        flush(l, 1);
    }
}

static void list_for_flush(link_t *l)
{
    if (l->listed) return;
    l->listed = 1;
    l->fprev = flush_tail;
    l->fnext = NULL;
    if (flush_tail)
        flush_tail->fnext = l;
    else
        flush_head = l;
    flush_tail = l;
    if (flush_count++ == 0) {
        uv_check_start(&flush_check, on_check);
        uv_idle_start(&flush_idle, on_idle);
    }
}

void link_cleanup(void)
{
    recycle_clear(&stage_bin);
    if (!flush_ready) return;
    flush_ready = 0;
    uv_close((uv_handle_t *)&flush_check, NULL);
    uv_close((uv_handle_t *)&flush_idle, NULL);
}

/* ---- ending ---- */

static void set_reason(link_t *l, int err, const char *why)
{
    if (l->why[0] != '\0') return; /* the first reason is the real one */
    l->err = err;
    snprintf(l->why, sizeof(l->why), "%s", why ? why : "closed");
}

static void close_tcp(link_t *l, int reset)
{
    if (l->tcp_closing) return;
    l->tcp_closing = 1;
    tcp_conn_close(l->tcp, reset);
}

void link_abort(link_t *l, int err, const char *why)
{
    set_reason(l, err, why);
    l->closing = 1;
    unlist(l);
    close_tcp(l, 1);
}

/* The peer ended it, or a socket or TLS error did. */
static void end(link_t *l, int err, const char *why)
{
    if (l->closing && l->tcp_closing) return;
    set_reason(l, err, why);
    l->closing = 1;
    unlist(l);
    close_tcp(l, err != UV_EOF);
}

void link_close(link_t *l, int err, const char *why)
{
    if (l->closing) return;
    set_reason(l, err, why);
    unlist(l);
    if (l->open) flush(l, 0);
    l->closing = 1;
    if (l->tcp_closing) return;
    if (l->tls != NULL && l->open) tls_close_notify(l->tls);
    /* uv_close would drop what is still queued (our close frame among it): FIN after the
     * queue instead, and close once that is out. */
    if (!l->open || tcp_conn_shutdown(l->tcp) < 0) close_tcp(l, 0);
}

/* ---- writing ---- */

static void maybe_drained(link_t *l)
{
    if (!l->closing && l->open && l->stage_len == 0 && tcp_conn_queued(l->tcp) == 0)
        l->ops->on_drain(l->arg);
}

/* notify: tell the owner when everything is out. Not from inside link_write, whose caller
 * learns it from the return value (and may be the WebSocket pump itself). */
static void flush(link_t *l, int notify)
{
    if (l->stage_len == 0 || l->tcp_closing) return;
    uint8_t *data = l->stage;
    size_t len = l->stage_len, cap = l->stage_cap;
    l->stage = NULL;
    l->stage_len = l->stage_cap = 0;
    int rc;
    if (l->tls != NULL) {
        rc = tls_write(l->tls, data, len);
    } else {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        long n = tcp_conn_write(l->tcp, &b, 1);
        rc = n < 0 ? (int)n : 0;
    }
    stage_release(data, cap);
    if (rc < 0) {
        char why[200], text[160];
        if (l->tls != NULL)
            snprintf(why, sizeof(why), "TLS: %s", tls_strerror(rc, text, sizeof(text)));
        else
            snprintf(why, sizeof(why), "write: %s", uv_strerror(rc));
        end(l, rc, why);
        return;
    }
    if (notify) maybe_drained(l);
}

long link_write(link_t *l, const uv_buf_t *bufs, unsigned nbufs)
{
    if (l->closing) return UV_EPIPE;
    if (!l->open) return UV_ENOTCONN;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    size_t waiting = l->stage_len + tcp_conn_queued(l->tcp);
    if (waiting + total > l->max_queue) {
        link_abort(l, UV_ENOBUFS, "write queue bound passed");
        return UV_ENOBUFS;
    }
    if (l->stage == NULL && total <= STAGE_SIZE) {
        l->stage = recycle_alloc(&stage_bin);
        if (l->stage == NULL) {
            link_abort(l, UV_ENOMEM, "out of memory");
            return UV_ENOMEM;
        }
        l->stage_cap = STAGE_SIZE;
    }
    if (l->stage_len + total > l->stage_cap) {
        size_t cap = l->stage_cap ? l->stage_cap : STAGE_SIZE;
        while (cap < l->stage_len + total)
            cap *= 2;
        uint8_t *p = realloc(l->stage, cap);
        if (p == NULL) {
            link_abort(l, UV_ENOMEM, "out of memory");
            return UV_ENOMEM;
        }
        l->stage = p;
        l->stage_cap = cap;
    }
    for (unsigned i = 0; i < nbufs; i++) {
        memcpy(l->stage + l->stage_len, bufs[i].base, bufs[i].len);
        l->stage_len += bufs[i].len;
    }
    if (l->stage_len >= STAGE_FLUSH_AT) {
        unlist(l);
        flush(l, 0);
    } else {
        list_for_flush(l);
    }
    if (l->closing) return UV_EPIPE;
    return (long)(l->stage_len + tcp_conn_queued(l->tcp));
}

void link_pause(link_t *l, int paused)
{
    l->paused = paused ? 1 : 0;
    if (l->open && !l->closing) tcp_conn_read(l->tcp, !paused);
}

/* ---- TLS ---- */

static int tls_send(void *user, const uint8_t *data, size_t len)
{
    link_t *l = user;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return tcp_conn_write(l->tcp, &b, 1) < 0 ? -1 : 0;
}

static void tls_on_ready(void *user)
{
    link_t *l = user;
    if (l->closing) return;
    l->open = 1;
    l->ops->on_open(l->arg);
}

static void tls_on_data(void *user, const uint8_t *data, size_t len)
{
    link_t *l = user;
    if (!l->closing) l->ops->on_data(l->arg, data, len);
}

static const tls_io_t tls_io = {tls_send, tls_on_data, tls_on_ready};

/* ---- TCP ---- */

static void tcp_on_connect(void *arg, int status)
{
    link_t *l = arg;
    char why[200];
    if (status < 0) {
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(status));
        end(l, status, why);
        return;
    }
    tcp_conn_read(l->tcp, !l->paused);
    if (l->tls_ctx == NULL) {
        l->open = 1;
        l->ops->on_open(l->arg);
        return;
    }
    /* The TLS state (mbedtls's two record buffers) exists only from here on: a tunnel that
     * cannot even connect costs none. */
    l->tls = tls_new(l->tls_ctx, l->hostname, &tls_io, l);
    if (l->tls == NULL) {
        end(l, UV_ENOMEM, "TLS: cannot set up the connection");
        return;
    }
    int rc = tls_start(l->tls);
    if (rc < 0) {
        char text[160];
        snprintf(why, sizeof(why), "TLS: %s", tls_strerror(rc, text, sizeof(text)));
        end(l, rc, why);
    }
}

static void tcp_on_read(void *arg, const uint8_t *data, size_t len)
{
    link_t *l = arg;
    if (l->closing) return;
    if (l->tls == NULL) {
        l->ops->on_data(l->arg, data, len);
        return;
    }
    int rc = tls_feed(l->tls, data, len);
    if (rc == TLS_CLOSED) {
        end(l, UV_EOF, "the peer closed the TLS connection");
    } else if (rc < 0) {
        char why[200], text[160];
        snprintf(why, sizeof(why), "TLS: %s", tls_strerror(rc, text, sizeof(text)));
        end(l, rc, why);
    }
}

static void tcp_on_eof(void *arg)
{
    end(arg, UV_EOF, "the peer closed the connection");
}

static void tcp_on_written(void *arg, size_t n)
{
    (void)n;
    maybe_drained(arg);
}

static void tcp_on_error(void *arg, int status)
{
    char why[120];
    snprintf(why, sizeof(why), "socket: %s", uv_strerror(status));
    end(arg, status, why);
}

static void tcp_on_shutdown(void *arg)
{
    close_tcp(arg, 0);
}

static void tcp_on_close(void *arg)
{
    link_t *l = arg;
    unlist(l);
    if (l->stage != NULL)
        stage_release(l->stage, l->stage_cap);
    tls_free(l->tls);
    l->ops->on_close(l->arg, l->err, l->why[0] ? l->why : "closed");
    free(l);
}

static const tcp_conn_ops_t tcp_ops = {
    .on_connect = tcp_on_connect,
    .on_read = tcp_on_read,
    .on_eof = tcp_on_eof,
    .on_written = tcp_on_written,
    .on_error = tcp_on_error,
    .on_shutdown = tcp_on_shutdown,
    .on_close = tcp_on_close,
};

link_t *link_new(uv_loop_t *loop, tls_ctx_t *tls, const char *hostname, size_t max_queue,
                 const link_ops_t *ops, void *arg)
{
    if (!flush_ready) {
        uv_check_init(loop, &flush_check);
        uv_idle_init(loop, &flush_idle);
        flush_ready = 1;
    }
    link_t *l = calloc(1, sizeof(*l));
    if (l == NULL) return NULL;
    l->loop = loop;
    l->tls_ctx = tls;
    l->hostname = hostname;
    l->max_queue = max_queue;
    l->ops = ops;
    l->arg = arg;
    /* TLS adds a record header and tag to every 16 KiB: room for that on top of the bound. */
    l->tcp = tcp_conn_new(loop, max_queue + max_queue / 16 + 4096, &tcp_ops, l);
    if (l->tcp == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

int link_connect(link_t *l, const struct sockaddr *const *addrs, unsigned n)
{
    int rc = tcp_conn_connect(l->tcp, addrs, n);
    if (rc < 0) {
        char why[120];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(rc));
        end(l, rc, why);
    }
    return rc;
}
