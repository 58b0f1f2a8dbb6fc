#include "test/edge-agent/stream.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/resolve.h"
#include "common/tcp_conn.h"
#include "test/edge-agent/agent.h"
#include "test/edge-agent/exchange.h"
#include "test/edge-agent/target_pool.h"

/* The proxy can have at most one receive window of ours in flight unconsumed, and we consume
 * only what the target socket took: the queue toward the target never passes the window. The
 * bound is twice that, as a guard against a bug rather than a limit anyone should meet. The
 * input buffer of the keep-alive mode holds only unconsumed bytes too, and has the same guard. */
#define TARGET_QUEUE_MAX (2 * (size_t)YAMUX_INITIAL_WINDOW)

/* Keep-alive mode with an idle pooled connection at hand: how long a new stream may stay
 * silent before it is taken for a protocol in which the target speaks first and spliced
 * opaquely on a fresh connection. Clients send their request with the SYN (forward/http,
 * forward/ws) or right after the proxy's 101 (forward/raw: one round trip between api-server
 * and the proxy); one that is later only misses the pool. */
#define FIRST_BYTES_MS 250

/* Where the stream's current request is (keep-alive mode). */
enum request_state {
    RQ_HEAD,  /* its head is arriving in the input buffer */
    RQ_BODY,  /* the head went to the target; the body follows as it arrives */
    RQ_WAIT,  /* sent whole; what the stream sends next waits until the response is through */
    RQ_DRAIN, /* the exchange ended the stream and our FIN is out: input is dropped */
};

struct splice {
    agent_t *agent;
    yamux_stream *st; /* NULL once yamux has closed it */
    tcp_conn_t *tcp;  /* the target connection, NULL while it has none */
    resolve_req_t rreq;
    splice_queue_t *waitq; /* the queue it waits in for room on the tunnel, or NULL */
    splice_t *wprev, *wnext;
    uint8_t *pending; /* target bytes the stream's window has not taken yet (one read at most) */
    size_t pending_len, pending_off;
    unsigned depth; /* entry points on the stack: freeing waits until the outermost returns */
    unsigned accepted : 1;
    unsigned peer_fin : 1; /* the proxy half-closed */
    /* the target connection's state */
    unsigned connected : 1;
    unsigned target_eof : 1; /* the target half-closed: FIN once pending is through */
    unsigned shut_done : 1;
    unsigned tcp_closing : 1;
    /* keep-alive mode, while x != NULL (the stream turns opaque for good when x goes) */
    exchange_t *x;
    enum request_state rq;
    uint8_t *in; /* stream bytes not sent yet: a head being read, the next request; unconsumed */
    size_t in_len, in_cap;
    size_t in_parsed; /* of in, bytes the request reader has seen */
    uint8_t *held;    /* the request as sent, kept whole for one retry */
    size_t held_len;
    size_t skip; /* bytes the target will take that were reported consumed already (a retry) */
    uv_timer_t timer; /* FIRST_BYTES_MS */
    unsigned timer_on : 1;    /* the timer handle exists */
    unsigned held_sent : 1;   /* held went to the connection (not refused at once) */
    unsigned sent_any : 1;    /* a request went to the target on this stream */
    unsigned rs_active : 1;   /* a response is due */
    unsigned rs_started : 1;  /* a byte of it came */
    unsigned rs_done : 1;     /* it is complete (its last bytes may still be pending) */
    unsigned reused : 1;      /* the connection carried an exchange before this one */
    unsigned dirty : 1;       /* the connection is out of step: never pooled */
};

static unsigned live;

unsigned splice_count(void)
{
    return live;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void maybe_free(splice_t *sp)
{
    if (sp->st != NULL || sp->tcp != NULL || sp->depth > 0) return;
    resolve_cancel(&sp->rreq);
    free(sp->pending);
    free(sp->in);
    free(sp->held);
    exchange_free(sp->x);
    sp->pending = sp->in = sp->held = NULL;
    sp->x = NULL;
    live--;
    sp->depth = 1; /* no second free from a late call */
    if (sp->timer_on) {
        uv_close((uv_handle_t *)&sp->timer, on_timer_closed);
        return;
    }
    free(sp);
}

/* Every entry point (a callback from yamux, the target connection or the timer) brackets its
 * work: a reset or a FIN can finish the stream synchronously and a connection can go back to
 * the pool, and the splice must outlive the code still running for it. */
static void enter(splice_t *sp)
{
    sp->depth++;
}

static void leave(splice_t *sp)
{
    if (--sp->depth == 0) maybe_free(sp);
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

/* n more stream bytes have left us (the kernel took them, or they were dropped). */
static void consumed(splice_t *sp, size_t n)
{
    size_t skip = n < sp->skip ? n : sp->skip;
    sp->skip -= skip;
    n -= skip;
    if (n > 0 && sp->st != NULL) yamux_stream_consumed(sp->st, n);
}

static int ensure_accepted(splice_t *sp)
{
    if (sp->accepted || sp->st == NULL) return 0;
    if (yamux_stream_accept(sp->st) < 0) {
        fail(sp);
        return -1;
    }
    sp->accepted = 1;
    return 0;
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
    if (sp->tcp == NULL || !sp->connected || sp->st == NULL || sp->pending != NULL ||
        sp->target_eof || sp->tcp_closing)
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

/* ---- the target connection ---- */

static const tcp_conn_ops_t target_ops;
static void on_resolved(resolve_req_t *req, int status, const struct sockaddr *const *addrs,
                        unsigned n);

static void conn_forget(splice_t *sp)
{
    unqueue(sp);
    resolve_cancel(&sp->rreq);
    sp->tcp = NULL;
    sp->connected = sp->target_eof = sp->shut_done = sp->tcp_closing = 0;
    sp->reused = sp->dirty = 0;
}

/* A new connection. It exists before it connects: bytes written now queue in it (bounded by
 * our window) and go out once it is up; the stream is accepted then. 0, or <0 when out of
 * memory; a failure to resolve or connect arrives later and resets the stream. */
static int open_target(splice_t *sp)
{
    conn_forget(sp);
    sp->tcp = tcp_conn_new(agent_loop(sp->agent), TARGET_QUEUE_MAX, &target_ops, sp);
    if (sp->tcp == NULL) return -1;
    resolver_get(agent_target(sp->agent), &sp->rreq, on_resolved);
    return 0;
}

/* Keep-alive mode: can the connection serve another exchange? */
static int conn_clean(const splice_t *sp)
{
    return sp->tcp != NULL && sp->connected && !sp->tcp_closing && !sp->target_eof &&
           !sp->dirty && tcp_conn_queued(sp->tcp) == 0;
}

/* Back to the pool, between two exchanges. */
static void release_target(splice_t *sp)
{
    tcp_conn_t *c = sp->tcp;
    conn_forget(sp);
    target_pool_put(agent_target_pool(sp->agent), c);
}

/* Closed without a word to the stream: the connection is not worth keeping, the stream goes on. */
static void drop_target(splice_t *sp, int reset)
{
    tcp_conn_t *c = sp->tcp;
    conn_forget(sp);
    target_pool_discard(c, reset);
}

static int take_pooled(splice_t *sp)
{
    tcp_conn_t *c = target_pool_take(agent_target_pool(sp->agent), &target_ops, sp);
    if (c == NULL) return 0;
    conn_forget(sp);
    sp->tcp = c;
    sp->connected = 1;
    sp->reused = 1;
    return 1;
}

/* Writes to the target; what the kernel took at once is consumed, the rest as on_written
 * reports it. 0 or <0. */
static int to_target(splice_t *sp, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    long n = tcp_conn_write(sp->tcp, &b, 1);
    if (n < 0) return (int)n;
    if (n > 0) consumed(sp, (size_t)n);
    return 0;
}

/* ---- keep-alive mode: the stream's input ---- */

static int in_append(splice_t *sp, const uint8_t *data, size_t len)
{
    if (sp->in_len + len > TARGET_QUEUE_MAX) return -1; /* beyond the window: a bug */
    if (sp->in_len + len > sp->in_cap) {
        size_t cap = sp->in_cap ? sp->in_cap * 2 : 1024;
        while (cap < sp->in_len + len)
            cap *= 2;
        uint8_t *p = realloc(sp->in, cap);
        if (p == NULL) return -1;
        sp->in = p;
        sp->in_cap = cap;
    }
    memcpy(sp->in + sp->in_len, data, len);
    sp->in_len += len;
    return 0;
}

/* The first n bytes are dealt with. An empty buffer is freed: a stream between requests holds
 * nothing. */
static void in_drop(splice_t *sp, size_t n)
{
    if (n >= sp->in_len) {
        free(sp->in);
        sp->in = NULL;
        sp->in_len = sp->in_cap = sp->in_parsed = 0;
        return;
    }
    memmove(sp->in, sp->in + n, sp->in_len - n);
    sp->in_len -= n;
    sp->in_parsed = sp->in_parsed > n ? sp->in_parsed - n : 0;
}

static void stop_timer(splice_t *sp)
{
    if (sp->timer_on) uv_timer_stop(&sp->timer);
}

/*
 * The stream is not (or no longer) HTTP we follow: from here on bytes go both ways as they
 * are, exactly as in the opaque mode, on the connection the stream has or a fresh one. What
 * the stream sent and we held goes first.
 */
static void go_opaque(splice_t *sp)
{
    stop_timer(sp);
    exchange_free(sp->x);
    sp->x = NULL;
    free(sp->held);
    sp->held = NULL;
    if (sp->st == NULL) return;
    if (sp->tcp == NULL && open_target(sp) < 0) {
        fail(sp);
        return;
    }
    if (sp->tcp_closing) return;
    if (sp->in_len > 0) {
        int rc = to_target(sp, sp->in, sp->in_len);
        in_drop(sp, sp->in_len);
        if (rc < 0) {
            fail(sp);
            return;
        }
    }
    if (sp->peer_fin && tcp_conn_shutdown(sp->tcp) < 0) {
        fail(sp);
        return;
    }
    if (sp->connected && ensure_accepted(sp) == 0) resume(sp);
}

static void send_fin(splice_t *sp)
{
    if (sp->st != NULL && yamux_stream_close(sp->st) < 0) fail(sp);
}

/* The exchange ends the stream: the connection goes back to the pool when it can, what the
 * client sends after the end is dropped (after Connection: close nothing more is a request,
 * RFC 9112 §9.6), and the proxy gets our FIN. */
static void end_stream(splice_t *sp)
{
    if (sp->tcp != NULL) {
        if (conn_clean(sp))
            release_target(sp);
        else
            drop_target(sp, 0);
    }
    sp->rq = RQ_DRAIN;
    if (sp->in_len > 0 && sp->st != NULL) yamux_stream_consumed(sp->st, sp->in_len);
    in_drop(sp, sp->in_len);
    send_fin(sp);
}

/*
 * A reused connection failed before any byte of the answer came, and the request had no body
 * and is held whole: the target most likely closed the idle connection as we reused it (RFC
 * 9112 §9.3.1). Once more on a fresh connection.
 */
static void retry(splice_t *sp)
{
    uint8_t *head = sp->held;
    size_t len = sp->held_len;
    /* What the old connection's kernel took was reported consumed; the rest was not. */
    size_t taken = sp->held_sent ? len - tcp_conn_queued(sp->tcp) : 0;
    sp->held = NULL;
    log_debug("agent.target_retry", "stream=%u bytes=%zu", sp->st ? yamux_stream_id(sp->st) : 0,
              len);
    drop_target(sp, 1);
    if (open_target(sp) < 0) {
        free(head);
        fail(sp);
        return;
    }
    sp->skip += taken;
    exchange_response_begin(sp->x);
    int rc = sp->tcp_closing ? 0 : to_target(sp, head, len);
    free(head);
    if (rc < 0) fail(sp);
}

/* A plain request head is complete in the input buffer: to the target (the stream's own
 * connection, an idle pooled one, or a new one) without its close option. 0, or <0 when the
 * stream failed. */
static int send_head(splice_t *sp)
{
    size_t raw = sp->in_parsed;
    uint8_t *head = malloc(raw);
    if (head == NULL) {
        fail(sp);
        return -1;
    }
    size_t len = exchange_rewrite_head(sp->in, raw, head);
    in_drop(sp, raw);
    /* The bytes taken out never reach the kernel: they are done with now. */
    if (raw > len) yamux_stream_consumed(sp->st, raw - len);
    if (sp->tcp == NULL && !take_pooled(sp) && open_target(sp) < 0) {
        free(head);
        fail(sp);
        return -1;
    }
    if (sp->tcp_closing || (sp->connected && ensure_accepted(sp) < 0)) {
        free(head);
        return -1;
    }
    sp->sent_any = 1;
    sp->rs_active = 1;
    sp->rs_started = sp->rs_done = 0;
    sp->rq = RQ_BODY;
    exchange_response_begin(sp->x);
    /* A reused connection may be closing under us: keep a request without a body for one
     * retry. One with a body is on its way already and cannot be told again. */
    int keep = sp->reused && !exchange_request_has_body(sp->x);
    int rc = to_target(sp, head, len);
    if (keep) {
        sp->held = head;
        sp->held_len = len;
        sp->held_sent = rc == 0;
        if (rc < 0) retry(sp);
        return sp->st != NULL && sp->tcp != NULL && !sp->tcp_closing ? 0 : -1;
    }
    free(head);
    if (rc < 0) {
        fail(sp);
        return -1;
    }
    return 0;
}

/* Both the request and its response are through. 1 when the stream goes on to its next
 * request on the same connection. */
static int finish_exchange(splice_t *sp)
{
    int keep = exchange_response_reusable(sp->x) && conn_clean(sp);
    sp->rs_active = sp->rs_started = sp->rs_done = 0;
    free(sp->held);
    sp->held = NULL;
    if (!keep && sp->tcp != NULL) drop_target(sp, 0);
    if (!keep || exchange_request_close(sp->x)) {
        /* The client asked for the end, or the target will not keep the connection: the
         * stream ends as a connection to the target would. */
        end_stream(sp);
        return 0;
    }
    sp->reused = 1;
    exchange_request_next(sp->x);
    sp->rq = RQ_HEAD;
    return 1;
}

/*
 * Moves the stream's HTTP along as far as the bytes at hand allow: heads and bodies to the
 * target, a finished exchange to its end or to the next request. Called whenever something
 * changed: stream bytes, a response through, the proxy's FIN.
 */
static void advance(splice_t *sp)
{
    for (;;) {
        if (sp->x == NULL || sp->st == NULL) return;
        size_t used = 0;
        enum exchange_event ev;
        if (sp->rq == RQ_HEAD) {
            if (sp->in_parsed == sp->in_len) break;
            ev = exchange_request_head(sp->x, sp->in + sp->in_parsed, sp->in_len - sp->in_parsed,
                                       &used);
            sp->in_parsed += used;
            if (ev == EXCHANGE_MORE) break;
            if (ev != EXCHANGE_HEAD || !exchange_request_plain(sp->x)) {
                go_opaque(sp); /* an upgrade, CONNECT, or not HTTP/1.x at all */
                return;
            }
            if (send_head(sp) < 0) return;
        } else if (sp->rq == RQ_BODY) {
            /* Also with an empty buffer: a request without a body ends right after its head. */
            ev = exchange_request_body(sp->x, sp->in, sp->in_len, &used);
            if (ev == EXCHANGE_OPAQUE) {
                go_opaque(sp);
                return;
            }
            int rc = used > 0 ? to_target(sp, sp->in, used) : 0;
            in_drop(sp, used);
            if (rc < 0) {
                fail(sp);
                return;
            }
            if (ev == EXCHANGE_MORE) break;
            sp->rq = RQ_WAIT;
        } else if (sp->rq == RQ_WAIT) {
            if (!sp->rs_done || sp->pending != NULL || !finish_exchange(sp)) return;
        } else {
            return;
        }
    }
    if (!sp->peer_fin) return;
    /* The proxy half-closed. Between two requests that is the end of the stream. Within one
     * (or before any byte), the target gets what came and then the end, as in opaque mode. */
    if (sp->rq == RQ_HEAD && sp->in_len == 0 && sp->sent_any)
        end_stream(sp);
    else
        go_opaque(sp);
}

static void on_first_bytes_timer(uv_timer_t *t)
{
    splice_t *sp = t->data;
    enter(sp);
    if (sp->x != NULL && sp->tcp == NULL && sp->in_len == 0 && !sp->sent_any) go_opaque(sp);
    leave(sp);
}

/* ---- target → stream ---- */

/* Everything read from the target is in the stream now. */
static void relayed(splice_t *sp)
{
    if (sp->x != NULL) {
        if (sp->rs_done) advance(sp);
        resume(sp); /* between exchanges too: a close or unasked bytes are seen at once */
        return;
    }
    if (sp->target_eof)
        send_fin(sp);
    else
        resume(sp);
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
    relayed(sp);
}

/*
 * Keep-alive mode: what of the target's bytes belong to the stream (*relay of len). 0 when
 * nothing is to be relayed, or the splice cannot take it any more.
 */
static int response_bytes(splice_t *sp, const uint8_t *data, size_t len, size_t *relay)
{
    *relay = len;
    if (!sp->rs_active) {
        if (!sp->sent_any) {
            go_opaque(sp); /* the target speaks first: not HTTP */
            return sp->tcp != NULL && !sp->tcp_closing;
        }
        /* Between exchanges nothing was asked: the connection is out of step. */
        log_debug("agent.target_unasked", "stream=%u bytes=%zu", yamux_stream_id(sp->st), len);
        drop_target(sp, 1);
        return 0;
    }
    if (sp->rs_done) {
        sp->dirty = 1; /* more than the response: dropped, and the connection with it */
        return 0;
    }
    if (!sp->rs_started) {
        sp->rs_started = 1;
        free(sp->held); /* answered: no retry */
        sp->held = NULL;
    }
    size_t used;
    switch (exchange_response(sp->x, data, len, &used)) {
    case EXCHANGE_MORE:
        return 1;
    case EXCHANGE_END:
        sp->rs_done = 1;
        if (used < len) {
            sp->dirty = 1;
            *relay = used;
        }
        return 1;
    default: /* a 101 (the rest is another protocol) or not HTTP we read: relayed as it is */
        go_opaque(sp);
        return sp->tcp != NULL && !sp->tcp_closing;
    }
}

static void tcp_on_read(void *arg, const uint8_t *data, size_t len)
{
    splice_t *sp = arg;
    if (sp->st == NULL) return;
    enter(sp);
    size_t relay = len;
    if (sp->x != NULL && !response_bytes(sp, data, len, &relay)) {
        leave(sp);
        return;
    }
    ssize_t n = relay > 0 ? yamux_stream_write(sp->st, data, relay) : 0;
    if (n < 0) {
        fail(sp);
    } else if ((size_t)n < relay) {
        /* The window is shut: keep the rest of this read (the read buffer is shared) and read
         * no more until the proxy reopens it. */
        size_t rest = relay - (size_t)n;
        sp->pending = malloc(rest);
        if (sp->pending == NULL) {
            fail(sp);
        } else {
            memcpy(sp->pending, data + n, rest);
            sp->pending_len = rest;
            sp->pending_off = 0;
            tcp_conn_read(sp->tcp, 0);
        }
    } else if (sp->x != NULL && sp->rs_done) {
        relayed(sp);
    } else if (agent_link_busy(sp->agent)) {
        resume(sp); /* parks it until the tunnel drains */
    }
    leave(sp);
}

/* Keep-alive mode: the target connection ended or broke. Between exchanges it is let go (the
 * next request takes another); before any byte of the answer to a request held whole, the
 * request goes again on a fresh one. 1 when that dealt with it. */
static int kept_conn_lost(splice_t *sp, int reset)
{
    if (sp->x == NULL) return 0;
    if (sp->sent_any && !sp->rs_active) {
        drop_target(sp, reset);
        return 1;
    }
    if (sp->held != NULL && !sp->rs_started) {
        retry(sp);
        return 1;
    }
    return 0;
}

static void tcp_on_eof(void *arg)
{
    splice_t *sp = arg;
    enter(sp);
    if (!kept_conn_lost(sp, 0)) {
        sp->target_eof = 1;
        unqueue(sp);
        if (sp->x != NULL && sp->sent_any &&
            (sp->rs_done || exchange_response_eof(sp->x) == EXCHANGE_END)) {
            /* Complete (the close may be what ended it); the connection is done. */
            sp->rs_done = 1;
            if (sp->pending == NULL) relayed(sp);
        } else {
            /* Before any request, no answer, or one cut short: the stream ends as the
             * connection did, as in opaque mode. */
            if (sp->x != NULL) go_opaque(sp);
            if (sp->pending == NULL) send_fin(sp);
        }
    }
    leave(sp);
}

/* ---- stream → target ---- */

/* Keep-alive mode: the stream's bytes for the current or a later request. */
static void request_bytes(splice_t *sp, const uint8_t *data, size_t len)
{
    stop_timer(sp);
    if (sp->rq == RQ_DRAIN) {
        yamux_stream_consumed(sp->st, len);
        return;
    }
    if (sp->rq == RQ_BODY && sp->in_len == 0) {
        /* A body arriving while nothing waits goes straight through, without a copy. */
        size_t used;
        enum exchange_event ev = exchange_request_body(sp->x, data, len, &used);
        if (ev != EXCHANGE_OPAQUE) { /* OPAQUE: held below, then advance gives up */
            if (used > 0 && to_target(sp, data, used) < 0) {
                fail(sp);
                return;
            }
            data += used;
            len -= used;
            if (ev == EXCHANGE_END) sp->rq = RQ_WAIT;
        }
    }
    if (len > 0 && in_append(sp, data, len) < 0) {
        fail(sp);
        return;
    }
    advance(sp);
}

void splice_on_data(yamux_stream *st, const uint8_t *data, size_t len)
{
    splice_t *sp = yamux_stream_user(st);
    enter(sp);
    if (sp->x != NULL) {
        request_bytes(sp, data, len);
    } else if (sp->tcp == NULL || sp->tcp_closing) {
        yamux_stream_consumed(st, len);
    } else if (to_target(sp, data, len) < 0) {
        fail(sp);
    }
    leave(sp);
}

static void tcp_on_written(void *arg, size_t n)
{
    splice_t *sp = arg;
    consumed(sp, n);
}

void splice_on_fin(yamux_stream *st)
{
    splice_t *sp = yamux_stream_user(st);
    enter(sp);
    sp->peer_fin = 1;
    stop_timer(sp);
    if (sp->x != NULL)
        advance(sp);
    else if (sp->tcp != NULL && !sp->tcp_closing && tcp_conn_shutdown(sp->tcp) < 0)
        fail(sp);
    leave(sp);
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
    enter(sp);
    if (sp->pending != NULL) push_pending(sp);
    leave(sp);
}

void splice_on_closed(yamux_stream *st, yamux_close_reason reason)
{
    splice_t *sp = yamux_stream_user(st);
    enter(sp);
    yamux_stream_set_user(st, NULL);
    sp->st = NULL;
    unqueue(sp);
    resolve_cancel(&sp->rreq);
    stop_timer(sp);
    if (sp->x != NULL && sp->tcp != NULL) {
        /* Between two exchanges the connection is as good as new; within one, the target
         * must not take a cut-off request for whole. */
        if (sp->rq == RQ_HEAD && sp->in_len == 0 && sp->sent_any && !sp->rs_active &&
            conn_clean(sp))
            release_target(sp);
        else
            drop_target(sp, 1);
    } else if (reason != YAMUX_CLOSE_NORMAL) {
        close_tcp(sp, 1); /* aborted: the target must not take a cut-off request for whole */
    } else if (sp->shut_done || !sp->connected) {
        close_tcp(sp, 0);
    }
    /* else: both FINs are through but bytes for the target are still queued; the shutdown's
     * completion closes it. */
    leave(sp);
}

static void tcp_on_connect(void *arg, int status)
{
    splice_t *sp = arg;
    enter(sp);
    if (status < 0) {
        log_info("agent.target_unreachable", "stream=%u error=\"%s\"",
                 sp->st ? yamux_stream_id(sp->st) : 0, uv_strerror(status));
        fail(sp);
    } else {
        sp->connected = 1;
        if (sp->st == NULL)
            close_tcp(sp, 1);
        else if (ensure_accepted(sp) == 0)
            resume(sp);
    }
    leave(sp);
}

static void tcp_on_error(void *arg, int status)
{
    splice_t *sp = arg;
    enter(sp);
    if (!kept_conn_lost(sp, 1)) {
        log_debug("agent.target_error", "stream=%u error=\"%s\"",
                  sp->st ? yamux_stream_id(sp->st) : 0, uv_strerror(status));
        fail(sp);
    }
    leave(sp);
}

static void tcp_on_close(void *arg)
{
    splice_t *sp = arg;
    enter(sp);
    sp->tcp = NULL;
    if (sp->st != NULL)
        yamux_stream_reset(sp->st); /* only after a failure: a healthy target outlives its stream */
    leave(sp);
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
    enter(sp);
    if (status < 0) {
        log_info("agent.target_unresolved", "error=\"%s\"", uv_strerror(status));
        fail(sp);
    } else if (tcp_conn_connect(sp->tcp, addrs, n) < 0) {
        fail(sp);
    }
    leave(sp);
}

int splice_open(agent_t *a, yamux_stream *st)
{
    splice_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) return -1;
    sp->agent = a;
    sp->st = st;
    sp->rreq.data = sp;
    target_pool_t *pool = agent_target_pool(a);
    if (pool != NULL) {
        sp->x = exchange_new();
        if (sp->x == NULL) {
            free(sp);
            return -1;
        }
        sp->rq = RQ_HEAD;
    }
    live++;
    yamux_stream_set_user(st, sp);
    target_pool_stats_t ps = {0};
    if (pool != NULL) target_pool_get_stats(pool, &ps);
    if (ps.idle > 0) {
        /* The request picks its connection once its head is in. */
        uv_timer_init(agent_loop(a), &sp->timer);
        sp->timer.data = sp;
        sp->timer_on = 1;
        uv_timer_start(&sp->timer, on_first_bytes_timer, FIRST_BYTES_MS, 0);
        return 0;
    }
    /* Opaque mode, or nothing to reuse: connecting now hides the connect's latency. */
    enter(sp);
    int rc = open_target(sp);
    if (rc < 0) {
        yamux_stream_set_user(st, NULL);
        sp->st = NULL;
    }
    leave(sp);
    return rc;
}
