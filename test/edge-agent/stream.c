#include "test/edge-agent/stream.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "test/edge-agent/agent.h"
#include "common/resolve.h"
#include "common/tcp_conn.h"

/* The proxy can have at most one receive window of ours in flight unconsumed, and we consume
 * only what the target socket took: the queue toward the target never passes the window. The
 * bound is twice that, as a guard against a bug rather than a limit anyone should meet. */
#define TARGET_QUEUE_MAX (2 * (size_t)YAMUX_INITIAL_WINDOW)

struct splice {
    agent_t *agent;
    yamux_stream *st; /* NULL once yamux has closed it */
    tcp_conn_t *tcp;  /* NULL once its handle is closed */
    resolve_req_t rreq;
    splice_queue_t *waitq; /* the queue it waits in for room on the tunnel, or NULL */
    splice_t *wprev, *wnext;
    uint8_t *pending; /* target bytes the stream's window has not taken yet (one read at most) */
    size_t pending_len, pending_off;
    unsigned connected : 1;
    unsigned peer_fin : 1;   /* the proxy half-closed: shut the target down after the queue */
    unsigned target_eof : 1; /* the target half-closed: FIN once pending is through */
    unsigned shut_done : 1;
    unsigned tcp_closing : 1;
};

static unsigned live;

unsigned splice_count(void)
{
    return live;
}

static void maybe_free(splice_t *sp)
{
    if (sp->st != NULL || sp->tcp != NULL) return;
    resolve_cancel(&sp->rreq);
    free(sp->pending);
    free(sp);
    live--;
}

static void close_tcp(splice_t *sp, int reset)
{
    if (sp->tcp == NULL || sp->tcp_closing) return;
    sp->tcp_closing = 1;
    tcp_conn_close(sp->tcp, reset);
}

/* Something broke: the proxy sees RST on the stream, the target an aborted connection. */
static void fail(splice_t *sp)
{
    close_tcp(sp, 1);
    if (sp->st != NULL) yamux_stream_reset(sp->st);
}

/* ---- waiting for room on the tunnel ---- */

static void unqueue(splice_t *sp)
{
    splice_queue_t *q = sp->waitq;
    if (q == NULL) return;
    if (sp->wprev)
        sp->wprev->wnext = sp->wnext;
    else
        q->head = sp->wnext;
    if (sp->wnext) sp->wnext->wprev = sp->wprev;
    sp->wprev = sp->wnext = NULL;
    sp->waitq = NULL;
}

static void enqueue(splice_t *sp, splice_queue_t *q)
{
    if (sp->waitq != NULL) return;
    sp->waitq = q;
    sp->wprev = NULL;
    sp->wnext = q->head;
    if (q->head) q->head->wprev = sp;
    q->head = sp;
}

/* Reads the target again unless something says wait: bytes the window has not taken, the end
 * of the target's data, or a full tunnel queue (then the tunnel's drain resumes us). */
static void resume(splice_t *sp)
{
    if (!sp->connected || sp->st == NULL || sp->pending != NULL || sp->target_eof ||
        sp->tcp_closing)
        return;
    if (agent_link_busy(sp->agent)) {
        tcp_conn_read(sp->tcp, 0);
        enqueue(sp, agent_link_waiters(sp->agent));
        return;
    }
    tcp_conn_read(sp->tcp, 1);
}

void splice_resume_all(splice_queue_t *q)
{
    /* Detached first: a splice that finds the queue busy again joins a fresh list. */
    splice_t *sp = q->head;
    q->head = NULL;
    while (sp != NULL) {
        splice_t *next = sp->wnext;
        sp->waitq = NULL;
        sp->wprev = sp->wnext = NULL;
        resume(sp);
        sp = next;
    }
}

/* ---- target → stream ---- */

static void send_fin(splice_t *sp)
{
    if (sp->st != NULL && yamux_stream_close(sp->st) < 0) fail(sp);
}

static void push_pending(splice_t *sp)
{
    while (sp->pending_off < sp->pending_len) {
        ssize_t n = yamux_stream_write(sp->st, sp->pending + sp->pending_off,
                                       sp->pending_len - sp->pending_off);
        if (n < 0) {
            fail(sp);
            return;
        }
        if (n == 0) return; /* on_writable brings us back */
        sp->pending_off += (size_t)n;
    }
    free(sp->pending);
    sp->pending = NULL;
    sp->pending_len = sp->pending_off = 0;
    if (sp->target_eof)
        send_fin(sp);
    else
        resume(sp);
}

static void tcp_on_read(void *arg, const uint8_t *data, size_t len)
{
    splice_t *sp = arg;
    if (sp->st == NULL) return;
    ssize_t n = yamux_stream_write(sp->st, data, len);
    if (n < 0) {
        fail(sp);
        return;
    }
    if ((size_t)n < len) {
        /* The window is shut: keep the rest of this read (the read buffer is shared) and read
         * no more until the proxy reopens it. */
        size_t rest = len - (size_t)n;
        sp->pending = malloc(rest);
        if (sp->pending == NULL) {
            fail(sp);
            return;
        }
        memcpy(sp->pending, data + n, rest);
        sp->pending_len = rest;
        sp->pending_off = 0;
        tcp_conn_read(sp->tcp, 0);
        return;
    }
    if (agent_link_busy(sp->agent)) resume(sp); /* parks it until the tunnel drains */
}

static void tcp_on_eof(void *arg)
{
    splice_t *sp = arg;
    sp->target_eof = 1;
    unqueue(sp);
    if (sp->pending == NULL) send_fin(sp);
}

/* ---- stream → target ---- */

void splice_on_data(yamux_stream *st, const uint8_t *data, size_t len)
{
    splice_t *sp = yamux_stream_user(st);
    if (sp->tcp == NULL || sp->tcp_closing) {
        yamux_stream_consumed(st, len);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    long n = tcp_conn_write(sp->tcp, &b, 1);
    if (n < 0) {
        fail(sp);
        return;
    }
    /* Only what the kernel took is consumed; on_written reports the rest as it goes. */
    if (n > 0) yamux_stream_consumed(st, (size_t)n);
}

static void tcp_on_written(void *arg, size_t n)
{
    splice_t *sp = arg;
    if (sp->st != NULL) yamux_stream_consumed(sp->st, n);
}

void splice_on_fin(yamux_stream *st)
{
    splice_t *sp = yamux_stream_user(st);
    sp->peer_fin = 1;
    if (sp->tcp != NULL && !sp->tcp_closing && tcp_conn_shutdown(sp->tcp) < 0) fail(sp);
}

static void tcp_on_shutdown(void *arg)
{
    splice_t *sp = arg;
    sp->shut_done = 1;
    if (sp->st == NULL) close_tcp(sp, 0); /* both ways are over and our last byte is out */
}

void splice_on_writable(yamux_stream *st)
{
    splice_t *sp = yamux_stream_user(st);
    if (sp->pending != NULL) push_pending(sp);
}

void splice_on_closed(yamux_stream *st, yamux_close_reason reason)
{
    splice_t *sp = yamux_stream_user(st);
    yamux_stream_set_user(st, NULL);
    sp->st = NULL;
    unqueue(sp);
    resolve_cancel(&sp->rreq);
    if (reason != YAMUX_CLOSE_NORMAL)
        close_tcp(sp, 1); /* aborted: the target must not take a cut-off request for whole */
    else if (sp->shut_done || !sp->connected)
        close_tcp(sp, 0);
    /* else: both FINs are through but bytes for the target are still queued; the shutdown's
     * completion closes it. */
    maybe_free(sp);
}

/* ---- the target connection ---- */

static void tcp_on_connect(void *arg, int status)
{
    splice_t *sp = arg;
    if (status < 0) {
        log_info("agent.target_unreachable", "stream=%u error=\"%s\"",
                 sp->st ? yamux_stream_id(sp->st) : 0, uv_strerror(status));
        fail(sp);
        return;
    }
    sp->connected = 1;
    if (sp->st == NULL) {
        close_tcp(sp, 1);
        return;
    }
    if (yamux_stream_accept(sp->st) < 0) {
        fail(sp);
        return;
    }
    resume(sp);
}

static void tcp_on_error(void *arg, int status)
{
    splice_t *sp = arg;
    log_debug("agent.target_error", "stream=%u error=\"%s\"", sp->st ? yamux_stream_id(sp->st) : 0,
              uv_strerror(status));
    fail(sp);
}

static void tcp_on_close(void *arg)
{
    splice_t *sp = arg;
    sp->tcp = NULL;
    if (sp->st != NULL)
        yamux_stream_reset(sp->st); /* only after a failure: a healthy target outlives its stream */
    maybe_free(sp);
}

static const tcp_conn_ops_t target_ops = {
    .on_connect = tcp_on_connect,
    .on_read = tcp_on_read,
    .on_eof = tcp_on_eof,
    .on_written = tcp_on_written,
    .on_error = tcp_on_error,
    .on_shutdown = tcp_on_shutdown,
    .on_close = tcp_on_close,
};

static void on_resolved(resolve_req_t *req, int status, const struct sockaddr *const *addrs,
                        unsigned n)
{
    splice_t *sp = req->data;
    if (sp->tcp == NULL || sp->tcp_closing) return;
    if (status < 0) {
        log_info("agent.target_unresolved", "error=\"%s\"", uv_strerror(status));
        fail(sp);
        return;
    }
    if (tcp_conn_connect(sp->tcp, addrs, n) < 0) fail(sp);
}

int splice_open(agent_t *a, yamux_stream *st)
{
    splice_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) return -1;
    /* The connection exists before it connects: bytes the proxy sends ahead of our accept
     * queue in it (bounded by our window) and go out once it is up. */
    sp->tcp = tcp_conn_new(agent_loop(a), TARGET_QUEUE_MAX, &target_ops, sp);
    if (sp->tcp == NULL) {
        free(sp);
        return -1;
    }
    live++;
    sp->agent = a;
    sp->st = st;
    sp->rreq.data = sp;
    yamux_stream_set_user(st, sp);
    resolver_get(agent_target(a), &sp->rreq, on_resolved);
    return 0;
}
