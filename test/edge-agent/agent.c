#include "test/edge-agent/agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/ws.h"
#include "proto/yamux.h"
#include "common/link.h"
#include "test/edge-agent/upgrade.h"

/* Reconnect backoff (full jitter): a fleet that lost its proxy must not come back in step. */
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
/* A tunnel that lived this long was a success: the next failure starts the backoff over. */
#define STABLE_AFTER_MS 30000
#define REFUSED_CAP_MS (10 * 60 * 1000)
/* Resolve + connect + TLS + the 101, all together. */
#define HANDSHAKE_TIMEOUT_MS 15000
/* After a GoAway, streams in flight get this long to finish before we close anyway. */
#define DRAIN_TIMEOUT_MS 30000
/* A polite close (close frame, close_notify, FIN) that has not finished by then is cut. */
#define CLOSE_TIMEOUT_MS 5000
/* The tunnel's outgoing queue: splices stop reading their targets above LINK_BUSY_AT (so one
 * busy tunnel holds at most about that much), and the link refuses to grow past
 * LINK_MAX_QUEUE (a bug guard: the busy mark and the yamux windows keep it far below). */
#define LINK_BUSY_AT (512 * 1024)
#define LINK_MAX_QUEUE (4 * 1024 * 1024)

enum agent_state {
    ST_WAITING, /* timer armed for the next attempt */
    ST_QUEUED,  /* waiting for a connect slot */
    ST_RESOLVING,
    ST_CONNECTING, /* TCP, then TLS */
    ST_UPGRADING,  /* request sent, waiting for the 101 */
    ST_OPEN,
    ST_DRAINING, /* GoAway received: the open streams finish, no new ones */
    ST_CLOSING,  /* close asked for, waiting for the link to end */
    ST_STOPPED,
    ST_COUNT
};

struct agent {
    const agent_config_t *cfg;
    unsigned index;
    enum agent_state state;
    char *token;
    size_t token_len;
    char token_prefix[16];
    uv_timer_t timer; /* by state: retry, handshake timeout, keepalive, close timeout */
    resolve_req_t rreq;
    link_t *link;
    upgrade_t *up;
    ws_t *ws;
    yamux_session *mux;
    splice_queue_t waiters;
    agent_t *gate_prev, *gate_next;
    uint64_t opened_at; /* loop ms when the tunnel came up; 0 while it is not up */
    uint64_t last_rx;   /* loop ms of the last byte from the proxy */
    uint64_t drain_until;
    const char *ending; /* why we are closing the tunnel ourselves (a literal) */
    unsigned attempt;   /* failed attempts since the last stable tunnel */
    unsigned refusals;  /* 401s in a row */
    uint16_t close_code;
    unsigned gated : 1;           /* holds a connect slot */
    unsigned refused : 1;         /* the last attempt ended in 401 / 403 */
    unsigned counted_refused : 1; /* counted in n_refused_waiting */
    unsigned stopping : 1;
};

/* ---- process-wide state: connect slots, counters ---- */

static unsigned state_count[ST_COUNT];
static unsigned n_agents, n_refused_waiting;
static uint64_t n_connects, n_failures, n_refusals, n_disconnects;
static char last_error[160];

static unsigned gate_busy;
static agent_t *gate_head, *gate_tail;
static int gate_pumping;

static void set_state(agent_t *a, enum agent_state s)
{
    if (a->counted_refused) {
        n_refused_waiting--;
        a->counted_refused = 0;
    }
    state_count[a->state]--;
    state_count[s]++;
    a->state = s;
    if (s == ST_WAITING && a->refused) {
        n_refused_waiting++;
        a->counted_refused = 1;
    }
}

static void tlog(const agent_t *a, enum log_level level, const char *event, const char *fmt, ...)
    LOG_PRINTF(4, 5);

/* One line per tunnel event: at its level for a single tunnel, at debug in a swarm (where the
 * periodic summary says what matters). */
static void tlog(const agent_t *a, enum log_level level, const char *event, const char *fmt, ...)
{
    if (!a->cfg->verbose) level = LOG_LEVEL_DEBUG;
    if (!log_enabled(level)) return;
    char rest[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof(rest), fmt, ap);
    va_end(ap);
    log_write(level, event, "tunnel=%u token=%s %s", a->index, a->token_prefix, rest);
}

static void note_error(const char *why)
{
    snprintf(last_error, sizeof(last_error), "%s", why);
}

/* xorshift64*: jitter needs spread, not secrecy; seeded from the CSPRNG so a fleet started
 * from one image does not jitter in step. */
static uint64_t rng_next(void)
{
    static uint64_t s;
    if (s == 0) {
        if (crypto_random(&s, sizeof(s)) < 0 || s == 0) s = uv_hrtime() | 1;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

static uint64_t between(uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + rng_next() % (hi - lo + 1);
}

static uint64_t retry_delay(agent_t *a)
{
    if (a->refused) {
        unsigned k = a->refusals > 1 ? a->refusals - 1 : 0;
        uint64_t cap =
            a->cfg->refused_retry_ms > REFUSED_CAP_MS ? a->cfg->refused_retry_ms : REFUSED_CAP_MS;
        uint64_t d = a->cfg->refused_retry_ms << (k < 16 ? k : 16);
        if (d > cap) d = cap;
        return between(d / 2, d);
    }
    unsigned k = a->attempt < 16 ? a->attempt : 16;
    uint64_t ceiling = (uint64_t)BACKOFF_BASE_MS << k;
    if (ceiling > BACKOFF_CAP_MS) ceiling = BACKOFF_CAP_MS;
    a->attempt++;
    /* A floor of a few ms so a failure that is instant cannot spin within one loop turn. */
    return between(10, ceiling);
}

static void attempt_begin(agent_t *a);
static void on_timer(uv_timer_t *t);

static void gate_remove(agent_t *a)
{
    if (a->gate_prev)
        a->gate_prev->gate_next = a->gate_next;
    else if (gate_head == a)
        gate_head = a->gate_next;
    if (a->gate_next)
        a->gate_next->gate_prev = a->gate_prev;
    else if (gate_tail == a)
        gate_tail = a->gate_prev;
    a->gate_prev = a->gate_next = NULL;
}

static void gate_release(agent_t *a)
{
    if (!a->gated) return;
    a->gated = 0;
    gate_busy--;
    if (gate_pumping) return; /* the loop below, further up the stack, hands the slot on */
    gate_pumping = 1;
    while (gate_head != NULL && gate_busy < a->cfg->max_connecting) {
        agent_t *next = gate_head;
        gate_remove(next);
        attempt_begin(next);
    }
    gate_pumping = 0;
}

/* ---- the end of an attempt or a tunnel ---- */

/* why: what ended it, for the log (a reason the agent set itself takes precedence). */
static void attempt_over(agent_t *a, const char *why)
{
    uint64_t now = uv_now(a->cfg->loop);
    resolve_cancel(&a->rreq);
    gate_release(a);
    upgrade_free(a->up);
    a->up = NULL;
    int was_open = a->opened_at != 0;
    uint64_t lived = was_open ? now - a->opened_at : 0;
    a->opened_at = 0;
    const char *reason = a->ending ? a->ending : why;
    a->ending = NULL;
    if (a->stopping) {
        uv_timer_stop(&a->timer);
        set_state(a, ST_STOPPED);
        tlog(a, LOG_LEVEL_DEBUG, "agent.stopped", "reason=\"%s\"", reason);
        a->cfg->on_stopped(a->cfg->arg);
        return;
    }
    if (was_open && lived >= STABLE_AFTER_MS) a->attempt = 0;
    uint64_t delay = retry_delay(a);
    if (was_open) {
        n_disconnects++;
        tlog(a, LOG_LEVEL_INFO, "agent.disconnected",
             "reason=\"%s\" code=%u lived_ms=%llu retry_in_ms=%llu", reason, a->close_code,
             (unsigned long long)lived, (unsigned long long)delay);
    } else if (a->refused) {
        tlog(a, LOG_LEVEL_WARN, "agent.credential_refused",
             "reason=\"%s\" refusals=%u retry_in_ms=%llu", reason, a->refusals,
             (unsigned long long)delay);
    } else {
        n_failures++;
        note_error(reason);
        tlog(a, LOG_LEVEL_WARN, "agent.connect_failed", "reason=\"%s\" retry_in_ms=%llu", reason,
             (unsigned long long)delay);
    }
    a->close_code = 0;
    set_state(a, ST_WAITING);
    uv_timer_start(&a->timer, on_timer, delay, 0);
}

/* Ends an open tunnel politely: close frame, then the link's FIN. */
static void close_tunnel(agent_t *a, uint16_t code, const char *why)
{
    if (a->state == ST_CLOSING || a->state == ST_STOPPED || a->link == NULL) return;
    if (a->ending == NULL) a->ending = why;
    set_state(a, ST_CLOSING);
    uv_timer_start(&a->timer, on_timer, CLOSE_TIMEOUT_MS, 0);
    if (a->ws != NULL)
        ws_close(a->ws, code, why);
    else
        link_close(a->link, 0, why);
}

/* ---- yamux: we are the server; the proxy opens streams ---- */

static int mux_send(void *user, const yamux_iov *iov, int iovcnt)
{
    agent_t *a = user;
    if (a->ws == NULL) return -1;
    uv_buf_t bufs[2];
    for (int i = 0; i < iovcnt && i < 2; i++)
        bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    return ws_sendv(a->ws, bufs, (unsigned)iovcnt) < 0 ? -1 : 0;
}

static void mux_on_stream(void *user, yamux_stream *st)
{
    agent_t *a = user;
    /* After a GoAway (either way) the tunnel is on its way out: new work goes elsewhere. */
    if (a->state != ST_OPEN || a->stopping || splice_open(a, st) < 0) yamux_stream_reset(st);
}

static void mux_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    (void)user;
    if (yamux_stream_user(st) != NULL)
        splice_on_data(st, data, len);
    else
        yamux_stream_consumed(st, len);
}

static void mux_on_fin(void *user, yamux_stream *st)
{
    (void)user;
    if (yamux_stream_user(st) != NULL) splice_on_fin(st);
}

static void mux_on_writable(void *user, yamux_stream *st)
{
    (void)user;
    if (yamux_stream_user(st) != NULL) splice_on_writable(st);
}

static void mux_on_closed(void *user, yamux_stream *st, yamux_close_reason reason)
{
    agent_t *a = user;
    if (yamux_stream_user(st) != NULL) splice_on_closed(st, reason);
    if (a->state == ST_DRAINING && a->mux != NULL) {
        yamux_session_stats stats;
        yamux_session_get_stats(a->mux, &stats);
        if (stats.open_streams <= 1) /* this one is counted until we return */
            close_tunnel(a, WS_CLOSE_NORMAL, "GoAway from the proxy; streams drained");
    }
}

static void mux_on_pong(void *user, uint64_t rtt_ms)
{
    agent_t *a = user;
    tlog(a, LOG_LEVEL_DEBUG, "agent.pong", "rtt_ms=%llu", (unsigned long long)rtt_ms);
}

static void mux_on_goaway(void *user, uint32_t code)
{
    agent_t *a = user;
    tlog(a, LOG_LEVEL_INFO, "agent.goaway", "code=%u", code);
    if (a->state != ST_OPEN) return;
    set_state(a, ST_DRAINING);
    a->drain_until = uv_now(a->cfg->loop) + DRAIN_TIMEOUT_MS;
    yamux_session_stats stats;
    yamux_session_get_stats(a->mux, &stats);
    if (stats.open_streams == 0) close_tunnel(a, WS_CLOSE_NORMAL, "GoAway from the proxy");
}

static const yamux_callbacks mux_callbacks = {
    .send = mux_send,
    .on_stream = mux_on_stream,
    .on_data = mux_on_data,
    .on_fin = mux_on_fin,
    .on_writable = mux_on_writable,
    .on_closed = mux_on_closed,
    .on_pong = mux_on_pong,
    .on_goaway = mux_on_goaway,
};

/* ---- the WebSocket over the link ---- */

static long tr_write(void *t, const uv_buf_t *bufs, unsigned nbufs)
{
    agent_t *a = t;
    return a->link != NULL ? link_write(a->link, bufs, nbufs) : -1;
}

static void tr_pause(void *t, int paused)
{
    agent_t *a = t;
    if (a->link != NULL) link_pause(a->link, paused);
}

static void tr_close(void *t)
{
    agent_t *a = t;
    if (a->link != NULL) link_close(a->link, 0, "WebSocket closed");
}

static const ws_transport_t ws_transport = {tr_write, tr_pause, tr_close};

static void ws_on_data(void *arg, const uint8_t *data, size_t len)
{
    agent_t *a = arg;
    if (a->mux == NULL || a->state == ST_CLOSING) return;
    yamux_session_set_now(a->mux, uv_now(a->cfg->loop));
    int rc = yamux_session_feed(a->mux, data, len);
    if (rc < 0) {
        /* The session has told the proxy (GoAway, protocol error) when it was the proxy's
         * fault; either way this tunnel is over. */
        tlog(a, LOG_LEVEL_WARN, "agent.protocol_error", "error=\"%s\"", yamux_strerror(rc));
        note_error(yamux_strerror(rc));
        close_tunnel(a, WS_CLOSE_PROTOCOL_ERROR, "yamux protocol error");
    }
}

static void ws_on_writable(void *arg)
{
    agent_t *a = arg;
    splice_resume_all(&a->waiters);
}

static void ws_on_close(void *arg, uint16_t code)
{
    agent_t *a = arg;
    a->ws = NULL;
    a->close_code = code;
    yamux_session *mux = a->mux;
    a->mux = NULL;           /* streams closing below must not start a drain close */
    yamux_session_free(mux); /* every splice hears on_closed and drops its target */
}

static const ws_callbacks_t ws_callbacks = {
    .on_data = ws_on_data,
    .on_writable = ws_on_writable,
    .on_close = ws_on_close,
};

/* Binary messages carry a byte stream; nothing is buffered per message. */
static const ws_options_t ws_options = {.mode = WS_STREAM};

/* ---- the handshake ---- */

static void tunnel_up(agent_t *a)
{
    uint64_t now = uv_now(a->cfg->loop);
    upgrade_free(a->up);
    a->up = NULL;
    a->ws = ws_client_new(&ws_transport, a, &ws_options, &ws_callbacks, a);
    yamux_config cfg;
    yamux_config_init(&cfg, false);
    if (a->ws == NULL || yamux_session_new(&cfg, &mux_callbacks, a, &a->mux) != 0) {
        link_abort(a->link, UV_ENOMEM, "out of memory");
        return;
    }
    a->opened_at = now ? now : 1;
    a->last_rx = now;
    a->refusals = 0;
    a->close_code = 0;
    n_connects++;
    set_state(a, ST_OPEN);
    uint64_t every = a->cfg->idle_timeout_ms / 6;
    if (every < 500) every = 500;
    uv_timer_start(&a->timer, on_timer, every, every);
    tlog(a, LOG_LEVEL_INFO, "agent.connected", "proxy=%s%s", a->cfg->authority, a->cfg->path);
    gate_release(a);
    if (a->cfg->on_open != NULL) a->cfg->on_open(a->cfg->arg);
}

static void refused(agent_t *a, int status)
{
    char why[96];
    if (status == 401 || status == 403) {
        a->refused = 1;
        a->refusals++;
        n_refusals++;
        snprintf(why, sizeof(why), "credential refused by the proxy (HTTP %d)", status);
    } else if (status == 503) {
        snprintf(why, sizeof(why), "the proxy cannot take tunnels now (HTTP 503)");
    } else {
        snprintf(why, sizeof(why), "the proxy answered HTTP %d instead of 101", status);
    }
    link_close(a->link, UV_ECONNREFUSED, why);
}

static void handshake_data(agent_t *a, const uint8_t *data, size_t len)
{
    size_t used = 0;
    char why[160];
    switch (upgrade_feed(a->up, data, len, &used)) {
    case UPGRADE_MORE:
        return;
    case UPGRADE_OK:
        tunnel_up(a);
        /* Frames the proxy sent right behind its 101 (a Ping, a SYN) are the tunnel's. */
        if (a->ws != NULL && used < len) ws_feed(a->ws, data + used, len - used);
        return;
    case UPGRADE_REFUSED:
        refused(a, upgrade_status(a->up));
        return;
    case UPGRADE_BAD:
        snprintf(why, sizeof(why), "bad handshake answer: %s", upgrade_problem(a->up));
        link_abort(a->link, UV_EPROTO, why);
        return;
    }
}

/* ---- the link ---- */

static void link_on_open(void *arg)
{
    agent_t *a = arg;
    set_state(a, ST_UPGRADING);
    a->up = upgrade_new(a->token, a->token_len);
    if (a->up == NULL) {
        link_abort(a->link, UV_ENOMEM, "out of memory");
        return;
    }
    buf_t req = BUF_INIT(UPGRADE_MAX_HEAD);
    int rc = upgrade_request(a->up, &req, a->cfg->authority, a->cfg->path, a->cfg->agent_version);
    long w = UV_ENOBUFS;
    if (rc == 0) {
        uv_buf_t b = uv_buf_init(req.data, (unsigned)req.len);
        w = link_write(a->link, &b, 1);
    }
    /* The request carries the credential: wipe the copy. */
    if (req.data != NULL) {
        volatile char *p = req.data;
        for (size_t i = 0; i < req.cap; i++)
            p[i] = 0;
    }
    buf_free(&req);
    if (w < 0 && a->link != NULL) link_abort(a->link, (int)w, "cannot send the handshake");
}

static void link_on_data(void *arg, const uint8_t *data, size_t len)
{
    agent_t *a = arg;
    a->last_rx = uv_now(a->cfg->loop);
    if (a->state == ST_UPGRADING)
        handshake_data(a, data, len);
    else if (a->ws != NULL)
        ws_feed(a->ws, data, len);
}

static void link_on_drain(void *arg)
{
    agent_t *a = arg;
    if (a->ws != NULL) ws_transport_drained(a->ws);
}

static void link_on_close(void *arg, int err, const char *why)
{
    agent_t *a = arg;
    a->link = NULL;
    if (a->ws != NULL)
        ws_transport_closed(a->ws); /* ws_on_close: the session and its streams end */
    attempt_over(a, why);
}

static const link_ops_t link_ops = {link_on_open, link_on_data, link_on_drain, link_on_close};

static void on_resolved(resolve_req_t *req, int status, const struct sockaddr *const *addrs,
                        unsigned n)
{
    agent_t *a = req->data;
    char why[200];
    if (status < 0) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", a->cfg->host, uv_strerror(status));
        attempt_over(a, why);
        return;
    }
    a->link = link_new(a->cfg->loop, a->cfg->tls, a->cfg->host, LINK_MAX_QUEUE, &link_ops, a);
    if (a->link == NULL) {
        attempt_over(a, "out of memory");
        return;
    }
    set_state(a, ST_CONNECTING);
    link_connect(a->link, addrs, n); /* a failure arrives as link_on_close */
}

static void attempt_begin(agent_t *a)
{
    if (a->stopping) return;
    if (gate_busy >= a->cfg->max_connecting) {
        set_state(a, ST_QUEUED);
        a->gate_next = NULL;
        a->gate_prev = gate_tail;
        if (gate_tail)
            gate_tail->gate_next = a;
        else
            gate_head = a;
        gate_tail = a;
        return;
    }
    gate_busy++;
    a->gated = 1;
    set_state(a, ST_RESOLVING);
    a->refused = 0;
    uv_timer_start(&a->timer, on_timer, HANDSHAKE_TIMEOUT_MS, 0);
    resolver_get(a->cfg->proxy, &a->rreq, on_resolved);
}

/* ---- the timer: what it means depends on the state ---- */

static void keepalive(agent_t *a)
{
    uint64_t now = uv_now(a->cfg->loop);
    uint64_t idle = now - a->last_rx;
    if (idle >= a->cfg->idle_timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "nothing from the proxy for %llu s",
                 (unsigned long long)(idle / 1000));
        note_error(why);
        a->ending = "the proxy went silent";
        link_abort(a->link, UV_ETIMEDOUT, why);
        return;
    }
    if (a->state == ST_DRAINING && now >= a->drain_until) {
        close_tunnel(a, WS_CLOSE_NORMAL, "streams still open after GoAway");
        return;
    }
    /* The proxy pings every 30 s; a quiet tunnel halfway to the limit asks for itself, which
     * also tells a NAT box that the flow is alive. */
    if (idle >= a->cfg->idle_timeout_ms / 2 && a->mux != NULL &&
        !yamux_session_ping_outstanding(a->mux))
        yamux_session_ping(a->mux, now);
}

static void on_timer(uv_timer_t *t)
{
    agent_t *a = t->data;
    switch (a->state) {
    case ST_WAITING:
        attempt_begin(a);
        break;
    case ST_RESOLVING:
        resolve_cancel(&a->rreq);
        attempt_over(a, "resolving the proxy took too long");
        break;
    case ST_CONNECTING:
    case ST_UPGRADING:
        link_abort(a->link, UV_ETIMEDOUT, "the connection or handshake took too long");
        break;
    case ST_OPEN:
    case ST_DRAINING:
        keepalive(a);
        break;
    case ST_CLOSING:
        if (a->link != NULL) link_abort(a->link, UV_ETIMEDOUT, "the close took too long");
        break;
    default:
        break;
    }
}

/* ---- public ---- */

agent_t *agent_new(const agent_config_t *cfg, unsigned index, const char *token, size_t len)
{
    agent_t *a = calloc(1, sizeof(*a));
    if (a == NULL) return NULL;
    a->token = malloc(len + 1);
    if (a->token == NULL) {
        free(a);
        return NULL;
    }
    memcpy(a->token, token, len);
    a->token[len] = '\0';
    a->token_len = len;
    log_token_prefix(a->token_prefix, token, len);
    a->cfg = cfg;
    a->index = index;
    a->rreq.data = a;
    a->state = ST_STOPPED;
    state_count[ST_STOPPED]++;
    n_agents++;
    uv_timer_init(cfg->loop, &a->timer);
    a->timer.data = a;
    return a;
}

void agent_start(agent_t *a, uint64_t delay_ms)
{
    a->stopping = 0;
    set_state(a, ST_WAITING);
    uv_timer_start(&a->timer, on_timer, delay_ms, 0);
}

void agent_stop(agent_t *a)
{
    if (a->stopping || a->state == ST_STOPPED) return;
    a->stopping = 1;
    switch (a->state) {
    case ST_WAITING:
    case ST_QUEUED:
        if (a->state == ST_QUEUED) gate_remove(a);
        uv_timer_stop(&a->timer);
        set_state(a, ST_STOPPED);
        a->cfg->on_stopped(a->cfg->arg);
        break;
    case ST_RESOLVING:
        attempt_over(a, "stopping");
        break;
    case ST_CONNECTING:
    case ST_UPGRADING:
        link_abort(a->link, 0, "stopping");
        break;
    case ST_OPEN:
    case ST_DRAINING:
        /* Tell the proxy first, so it stops routing streams here before the close. */
        if (a->mux != NULL) yamux_session_goaway(a->mux, YAMUX_GOAWAY_NORMAL);
        close_tunnel(a, WS_CLOSE_GOING_AWAY, "agent stopping");
        break;
    default:
        break;
    }
}

void agent_abort(agent_t *a)
{
    if (a->link != NULL) link_abort(a->link, 0, "aborted");
}

static void on_timer_closed(uv_handle_t *h)
{
    agent_t *a = h->data;
    volatile char *p = a->token;
    for (size_t i = 0; i < a->token_len; i++)
        p[i] = 0;
    free(a->token);
    free(a);
}

void agent_free(agent_t *a)
{
    state_count[a->state]--;
    n_agents--;
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}

void agent_get_stats(agent_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->tunnels = n_agents;
    out->open = state_count[ST_OPEN] + state_count[ST_DRAINING];
    out->connecting = state_count[ST_QUEUED] + state_count[ST_RESOLVING] +
                      state_count[ST_CONNECTING] + state_count[ST_UPGRADING];
    out->waiting = state_count[ST_WAITING];
    out->refused = n_refused_waiting;
    out->streams = splice_count();
    out->connects = n_connects;
    out->failures = n_failures;
    out->refusals = n_refusals;
    out->disconnects = n_disconnects;
    out->last_error = last_error;
}

uv_loop_t *agent_loop(const agent_t *a)
{
    return a->cfg->loop;
}

resolver_t *agent_target(const agent_t *a)
{
    return a->cfg->target;
}

target_pool_t *agent_target_pool(const agent_t *a)
{
    return a->cfg->target_pool;
}

int agent_link_busy(const agent_t *a)
{
    return a->ws != NULL && ws_queued(a->ws) > LINK_BUSY_AT;
}

splice_queue_t *agent_link_waiters(agent_t *a)
{
    return &a->waiters;
}
