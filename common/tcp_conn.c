#include "common/tcp_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One read buffer for every connection of the process: libuv reads one socket at a time and
 * hands the bytes to on_read before it reads the next, and no caller keeps a pointer into it
 * past on_read. 64 KiB lets a bulk stream move a lot per wake-up. */
static char shared_read_buf[64 * 1024];

/* Bytes the socket did not take at once, in write order. */
typedef struct wreq {
    uv_write_t req;
    tcp_conn_t *conn;
    struct wreq *next; /* while waiting for the connect */
    size_t len;
    char data[];
} wreq_t;

typedef union tcp_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} tcp_addr_t;

struct tcp_conn {
    uv_tcp_t handle;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    uv_loop_t *loop;
    const tcp_conn_ops_t *ops;
    void *arg;
    size_t max_queue;
    size_t queued;
    wreq_t *pre_head, *pre_tail;
    tcp_addr_t addrs[TCP_CONN_MAX_ADDRS];
    unsigned naddrs, next_addr;
    unsigned connected : 1;
    unsigned want_read : 1;
    unsigned shut : 1;      /* shutdown asked for */
    unsigned shut_sent : 1; /* uv_shutdown issued */
    unsigned closing : 1;
    unsigned retrying : 1; /* the handle is being closed to try the next address */
    unsigned error_told : 1;
};

static void on_closed(uv_handle_t *h);

static void free_pre(tcp_conn_t *c)
{
    while (c->pre_head != NULL) {
        wreq_t *w = c->pre_head;
        c->pre_head = w->next;
        c->queued -= w->len;
        free(w);
    }
    c->pre_tail = NULL;
}

static void report_error(tcp_conn_t *c, int status)
{
    if (c->closing || c->error_told) return;
    c->error_told = 1;
    c->ops->on_error(c->arg, status);
}

tcp_conn_t *tcp_conn_new(uv_loop_t *loop, size_t max_queue, const tcp_conn_ops_t *ops, void *arg)
{
    tcp_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    c->loop = loop;
    c->ops = ops;
    c->arg = arg;
    c->max_queue = max_queue;
    uv_tcp_init(loop, &c->handle);
    c->handle.data = c;
    return c;
}

/* ---- connect ---- */

static void on_connect(uv_connect_t *req, int status);

static int start_connect(tcp_conn_t *c)
{
    int rc = UV_EINVAL;
    while (c->next_addr < c->naddrs) {
        const struct sockaddr *sa = &c->addrs[c->next_addr++].sa;
        rc = uv_tcp_connect(&c->connect_req, &c->handle, sa, on_connect);
        if (rc == 0) return 0;
        if (c->next_addr < c->naddrs) {
            /* A failed uv_tcp_connect may have created the socket: start from a fresh handle. */
            c->retrying = 1;
            uv_close((uv_handle_t *)&c->handle, on_closed);
            return 0;
        }
    }
    return rc;
}

static void on_write(uv_write_t *req, int status);

static void on_connected(tcp_conn_t *c)
{
    c->connected = 1;
    /* Tunnel frames and request heads are small and latency-bound: no Nagle delay. */
    uv_tcp_nodelay(&c->handle, 1);
    while (c->pre_head != NULL && !c->closing) {
        wreq_t *w = c->pre_head;
        c->pre_head = w->next;
        if (c->pre_head == NULL) c->pre_tail = NULL;
        uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
        int rc = uv_write(&w->req, (uv_stream_t *)&c->handle, &b, 1, on_write);
        if (rc < 0) {
            c->queued -= w->len;
            free(w);
            report_error(c, rc);
        }
    }
}

static void on_shutdown(uv_shutdown_t *req, int status);

static void on_connect(uv_connect_t *req, int status)
{
    tcp_conn_t *c = req->handle->data;
    if (c->closing) return;
    if (status < 0) {
        if (c->next_addr < c->naddrs) {
            c->retrying = 1;
            uv_close((uv_handle_t *)&c->handle, on_closed);
            return;
        }
        c->ops->on_connect(c->arg, status);
        return;
    }
    on_connected(c);
    if (c->closing) return;
    if (c->want_read) tcp_conn_read(c, 1);
    if (c->shut && !c->shut_sent) {
        c->shut_sent = 1;
        int rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->handle, on_shutdown);
        if (rc < 0) report_error(c, rc);
    }
    if (!c->closing) c->ops->on_connect(c->arg, 0);
}

int tcp_conn_connect(tcp_conn_t *c, const struct sockaddr *const *addrs, unsigned n)
{
    if (n > TCP_CONN_MAX_ADDRS) n = TCP_CONN_MAX_ADDRS;
    c->naddrs = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = addrs[i]->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                     : sizeof(struct sockaddr_in);
        memcpy(&c->addrs[c->naddrs++], addrs[i], len);
    }
    c->next_addr = 0;
    return start_connect(c);
}

/* ---- write ---- */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    tcp_conn_t *c = w->conn;
    size_t len = w->len;
    free(w);
    c->queued -= len;
    if (c->closing || status == UV_ECANCELED) return;
    if (status < 0) {
        report_error(c, status);
        return;
    }
    c->ops->on_written(c->arg, len);
}

long tcp_conn_write(tcp_conn_t *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (c->closing || c->shut) return UV_EPIPE;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0) return 0;
    if (c->queued + total > c->max_queue) return UV_ENOBUFS;
    size_t done = 0;
    if (c->connected && c->queued == 0) {
        int rc = uv_try_write((uv_stream_t *)&c->handle, bufs, nbufs);
        if (rc >= 0)
            done = (size_t)rc;
        else if (rc != UV_EAGAIN)
            return rc;
        if (done == total) return (long)total;
    }
    size_t rest = total - done;
    wreq_t *w = malloc(sizeof(*w) + rest);
    if (w == NULL) return UV_ENOMEM;
    w->conn = c;
    w->next = NULL;
    w->len = rest;
    size_t skip = done, off = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        size_t blen = bufs[i].len;
        if (skip >= blen) {
            skip -= blen;
            continue;
        }
        memcpy(w->data + off, bufs[i].base + skip, blen - skip);
        off += blen - skip;
        skip = 0;
    }
    if (c->connected) {
        uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
        int rc = uv_write(&w->req, (uv_stream_t *)&c->handle, &b, 1, on_write);
        if (rc < 0) {
            free(w);
            return rc;
        }
    } else {
        if (c->pre_tail != NULL)
            c->pre_tail->next = w;
        else
            c->pre_head = w;
        c->pre_tail = w;
    }
    c->queued += rest;
    return (long)done;
}

size_t tcp_conn_queued(const tcp_conn_t *c)
{
    return c->queued;
}

/* ---- read ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(shared_read_buf, sizeof(shared_read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    tcp_conn_t *c = s->data;
    if (c->closing) return;
    if (nread > 0) {
        c->ops->on_read(c->arg, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (nread == 0) return;
    uv_read_stop(s);
    c->want_read = 0;
    if (nread == UV_EOF)
        c->ops->on_eof(c->arg);
    else
        report_error(c, (int)nread);
}

void tcp_conn_read(tcp_conn_t *c, int on)
{
    c->want_read = on ? 1 : 0;
    if (!c->connected || c->closing) return;
    if (on) {
        int rc = uv_read_start((uv_stream_t *)&c->handle, on_alloc, on_read);
        if (rc < 0 && rc != UV_EALREADY) report_error(c, rc);
    } else {
        uv_read_stop((uv_stream_t *)&c->handle);
    }
}

/* ---- shutdown and close ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    tcp_conn_t *c = req->handle->data;
    if (c->closing || status == UV_ECANCELED) return;
    if (status < 0) {
        report_error(c, status);
        return;
    }
    if (c->ops->on_shutdown) c->ops->on_shutdown(c->arg);
}

int tcp_conn_shutdown(tcp_conn_t *c)
{
    if (c->closing) return UV_EPIPE;
    if (c->shut) return 0;
    c->shut = 1;
    if (!c->connected) return 0; /* issued once connected, after the queued writes */
    c->shut_sent = 1;
    return uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->handle, on_shutdown);
}

static void on_closed(uv_handle_t *h)
{
    tcp_conn_t *c = h->data;
    if (c->retrying && !c->closing) {
        c->retrying = 0;
        uv_tcp_init(c->loop, &c->handle);
        c->handle.data = c;
        int rc = start_connect(c);
        if (rc < 0) c->ops->on_connect(c->arg, rc);
        return;
    }
    c->ops->on_close(c->arg);
    free(c);
}

void tcp_conn_close(tcp_conn_t *c, int reset)
{
    if (c->closing) return;
    c->closing = 1;
    free_pre(c);
    if (c->retrying) return; /* the handle is already closing; on_closed finishes the job */
    uv_handle_t *h = (uv_handle_t *)&c->handle;
    /* close_reset refuses a handle with a shutdown in flight; then a plain close will do. */
    if (reset && c->connected && !c->shut_sent && uv_tcp_close_reset(&c->handle, on_closed) == 0)
        return;
    uv_close(h, on_closed);
}

void tcp_conn_rebind(tcp_conn_t *c, const tcp_conn_ops_t *ops, void *arg)
{
    c->ops = ops;
    c->arg = arg;
}

const char *tcp_conn_peer(const tcp_conn_t *c, char *out, size_t size)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    snprintf(out, size, "-");
    if (uv_tcp_getpeername(&c->handle, (struct sockaddr *)&ss, &len) != 0) return out;
    char ip[64];
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(out, size, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(out, size, "%s:%u", ip, ntohs(a->sin_port));
    }
    return out;
}
