/*
 * yamux session and streams; the contract is in yamux.h.
 *
 * Re-entrancy scheme: every public entry point brackets its work with enter()/leave(). A
 * stream that finishes (FIN both ways, RST, session failure) is unlinked from the id table at
 * once, so later frames for its id are drained like any unknown id, and parked on a dead list
 * with its memory intact. Only when the outermost call is about to return (or between frames in
 * feed) is the dead list flushed: on_closed fires there, at depth 1, and the memory is freed
 * after it. A callback that resets or closes "its" stream therefore never pulls memory out from
 * under the code that called it.
 */
#include "proto/yamux.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct yamux_stream {
    yamux_session *sess;
    struct yamux_stream *prev, *next; /* live list, or the dead list once finished */
    void *user;
    uint32_t id;
    uint32_t send_window; /* bytes the peer still lets us send */
    uint32_t recv_window; /* bytes we still let the peer send */
    uint32_t unconsumed;  /* delivered to on_data, not yet reported consumed */
    uint32_t pending;     /* consumed, not yet returned to the peer by a window update */
    uint64_t bytes_in, bytes_out;
    yamux_close_reason reason;
    bool outbound;
    bool accepted; /* outbound streams are born accepted */
    bool acked;
    bool local_closed;
    bool remote_closed;
    bool finished;
    bool exposed; /* the application knows it, so it is owed an on_closed */
    bool want_writable;
};

struct yamux_session {
    yamux_config cfg;
    yamux_callbacks cb;
    void *user;

    /* Receive state: a header being assembled, or the rest of a Data payload. */
    uint8_t hdr[YAMUX_HEADER_SIZE];
    size_t hdr_len;
    uint32_t rx_remaining;
    yamux_stream *rx_stream; /* NULL: drain the payload */
    bool rx_fin;             /* FIN to apply once the payload is through */

    /* Open-addressed table of live streams by id (linear probing, backward-shift delete). */
    yamux_stream **slots;
    uint32_t cap; /* power of two, or 0 */
    uint32_t count;

    yamux_stream *live;
    yamux_stream *dead_head, *dead_tail;

    uint64_t next_id;
    uint32_t pending_accept;

    uint32_t ping_id;
    bool ping_outstanding;
    uint64_t ping_sent_ms;
    uint64_t now_ms;

    bool goaway_sent, goaway_received;
    int failed;
    unsigned depth;
    bool in_send;

    yamux_session_stats stats;
};

/* ---- Errors ------------------------------------------------------------------------------- */

const char *yamux_strerror(int err)
{
    switch (err) {
    case YAMUX_OK:
        return "success";
    case YAMUX_EINVAL:
        return "invalid argument";
    case YAMUX_ENOMEM:
        return "out of memory";
    case YAMUX_EBUSY:
        return "not allowed from this callback";
    case YAMUX_ETRANSPORT:
        return "transport send failed";
    case YAMUX_ESESSION:
        return "session is closing";
    case YAMUX_EGOAWAY:
        return "session is going away";
    case YAMUX_ELIMIT:
        return "too many open streams";
    case YAMUX_EIDS:
        return "stream ids exhausted";
    case YAMUX_ECLOSED:
        return "stream closed";
    case YAMUX_ESTATE:
        return "stream not in a state that allows this";
    case YAMUX_EVERSION:
        return "protocol error: unsupported version";
    case YAMUX_ETYPE:
        return "protocol error: unknown frame type";
    case YAMUX_EBADID:
        return "protocol error: invalid stream id";
    case YAMUX_EDUPSYN:
        return "protocol error: duplicate SYN";
    case YAMUX_EWINDOW:
        return "protocol error: receive window exceeded";
    case YAMUX_EPROTO:
        return "protocol error";
    }
    return "unknown yamux error";
}

bool yamux_is_protocol_error(int err)
{
    return err <= YAMUX_EVERSION && err >= YAMUX_EPROTO;
}

/* ---- Header ------------------------------------------------------------------------------- */

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void yamux_header_encode(const yamux_header *h, uint8_t out[YAMUX_HEADER_SIZE])
{
    out[0] = h->version;
    out[1] = h->type;
    put_be16(out + 2, h->flags);
    put_be32(out + 4, h->stream_id);
    put_be32(out + 8, h->length);
}

void yamux_header_decode(const uint8_t in[YAMUX_HEADER_SIZE], yamux_header *h)
{
    h->version = in[0];
    h->type = in[1];
    h->flags = get_be16(in + 2);
    h->stream_id = get_be32(in + 4);
    h->length = get_be32(in + 8);
}

/* ---- Config ------------------------------------------------------------------------------- */

void yamux_config_init(yamux_config *cfg, bool is_client)
{
    *cfg = (yamux_config){0};
    cfg->is_client = is_client;
    cfg->window = YAMUX_INITIAL_WINDOW;
    cfg->max_streams = YAMUX_DEFAULT_MAX_STREAMS;
    cfg->accept_backlog = YAMUX_DEFAULT_ACCEPT_BACKLOG;
    cfg->max_frame = YAMUX_DEFAULT_MAX_FRAME;
}

/* ---- Stream table ------------------------------------------------------------------------- */

static uint32_t id_hash(uint32_t id)
{
    /* Ids are sequential (step 2); Fibonacci hashing spreads them over the whole table. */
    uint32_t h = id * 0x9E3779B1u;
    return h ^ (h >> 16);
}

static yamux_stream *table_find(const yamux_session *s, uint32_t id)
{
    if (s->cap == 0) return NULL;
    uint32_t mask = s->cap - 1;
    for (uint32_t i = id_hash(id) & mask; s->slots[i]; i = (i + 1) & mask) {
        if (s->slots[i]->id == id) return s->slots[i];
    }
    return NULL;
}

static void table_place(yamux_stream **slots, uint32_t cap, yamux_stream *st)
{
    uint32_t mask = cap - 1;
    uint32_t i = id_hash(st->id) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = st;
}

/* Makes room for one more entry, keeping the load at most 1/2 so probes stay short. */
static int table_reserve(yamux_session *s)
{
    if ((uint64_t)(s->count + 1) * 2 <= s->cap) return 0;
    uint32_t ncap = s->cap ? s->cap * 2 : 16;
    yamux_stream **nslots = calloc(ncap, sizeof(*nslots));
    if (!nslots) return YAMUX_ENOMEM;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (s->slots[i]) table_place(nslots, ncap, s->slots[i]);
    }
    free(s->slots);
    s->slots = nslots;
    s->cap = ncap;
    return 0;
}

static void table_insert(yamux_session *s, yamux_stream *st)
{
    table_place(s->slots, s->cap, st);
    s->count++;
}

static void table_remove(yamux_session *s, uint32_t id)
{
    uint32_t mask = s->cap - 1;
    uint32_t i = id_hash(id) & mask;
    while (s->slots[i]->id != id)
        i = (i + 1) & mask;
    s->slots[i] = NULL;
    s->count--;
    if (s->count == 0 && s->cap > 64) {
        /* An idle tunnel should not keep the table of its busiest moment. */
        free(s->slots);
        s->slots = NULL;
        s->cap = 0;
        return;
    }
    /* Backward-shift: pull later members of the probe run into the hole, so lookups never need
     * tombstones. An entry may move into the hole only if the hole is not before its home slot
     * (cyclically), i.e. its distance from home is at least the distance from the hole. */
    for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        uint32_t home = id_hash(s->slots[j]->id) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            s->slots[i] = s->slots[j];
            s->slots[j] = NULL;
            i = j;
        }
    }
}

/* ---- Output ------------------------------------------------------------------------------- */

/* Hands one frame to the transport, ignoring session state (used for the final GoAway too). */
static int transmit(yamux_session *s, uint8_t type, uint16_t flags, uint32_t id, uint32_t length,
                    const uint8_t *payload, size_t plen)
{
    uint8_t hdr[YAMUX_HEADER_SIZE];
    yamux_header h = {YAMUX_VERSION, type, flags, id, length};
    yamux_header_encode(&h, hdr);
    yamux_iov iov[2] = {{hdr, sizeof(hdr)}, {payload, plen}};
    s->in_send = true;
    int rc = s->cb.send(s->user, iov, plen ? 2 : 1);
    s->in_send = false;
    if (rc != 0) return YAMUX_ETRANSPORT;
    s->stats.bytes_out += sizeof(hdr) + plen;
    return 0;
}

static void finish_stream(yamux_stream *st, yamux_close_reason reason);

/* Fails the session once: records why, optionally says GoAway(protocol error), finishes every
 * stream. Nothing is transmitted after this. */
static void session_fail(yamux_session *s, int err, bool goaway)
{
    if (s->failed) return;
    s->failed = err;
    if (goaway) {
        s->goaway_sent = true;
        (void)transmit(s, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL_ERROR, NULL, 0);
    }
    while (s->live)
        finish_stream(s->live, YAMUX_CLOSE_SESSION);
}

static int emit(yamux_session *s, uint8_t type, uint16_t flags, uint32_t id, uint32_t length,
                const uint8_t *payload, size_t plen)
{
    if (s->failed) return s->failed;
    if (transmit(s, type, flags, id, length, payload, plen) != 0) {
        session_fail(s, YAMUX_ETRANSPORT, false);
        return YAMUX_ETRANSPORT;
    }
    return 0;
}

/* ---- Deferred release --------------------------------------------------------------------- */

static void flush_dead(yamux_session *s)
{
    yamux_stream *st;
    while ((st = s->dead_head) != NULL) {
        s->dead_head = st->next;
        if (!s->dead_head) s->dead_tail = NULL;
        if (st->exposed && s->cb.on_closed) s->cb.on_closed(s->user, st, st->reason);
        free(st);
    }
}

static void enter(yamux_session *s)
{
    s->depth++;
}

static void leave(yamux_session *s)
{
    if (s->depth == 1) flush_dead(s);
    s->depth--;
}

/* Unlinks a stream from the id table and the live list and parks it for flush_dead. */
static void finish_stream(yamux_stream *st, yamux_close_reason reason)
{
    yamux_session *s = st->sess;
    if (st->finished) return;
    st->finished = true;
    st->reason = reason;
    table_remove(s, st->id);
    if (st->prev)
        st->prev->next = st->next;
    else
        s->live = st->next;
    if (st->next) st->next->prev = st->prev;
    st->prev = NULL;
    st->next = NULL;
    if (s->dead_tail)
        s->dead_tail->next = st;
    else
        s->dead_head = st;
    s->dead_tail = st;
    if (!st->accepted) s->pending_accept--;
    /* The rest of a Data frame in flight for this stream is drained, not delivered. */
    if (s->rx_stream == st) s->rx_stream = NULL;
}

static yamux_stream *stream_alloc(yamux_session *s, uint32_t id, bool outbound)
{
    yamux_stream *st = calloc(1, sizeof(*st));
    if (!st) return NULL;
    st->sess = s;
    st->id = id;
    st->outbound = outbound;
    st->accepted = outbound;
    st->acked = !outbound;
    st->send_window = YAMUX_INITIAL_WINDOW;
    /* An outbound stream advertises the full window with its SYN; an inbound one is held to the
     * default until the ACK carries the surplus. */
    st->recv_window = outbound ? s->cfg.window : YAMUX_INITIAL_WINDOW;
    return st;
}

/* Makes a stream live: id table (slot reserved by the caller) and live list. */
static void stream_register(yamux_session *s, yamux_stream *st)
{
    table_insert(s, st);
    st->next = s->live;
    if (s->live) s->live->prev = st;
    s->live = st;
    if (!st->accepted) s->pending_accept++;
}

/* Returns consumed bytes to the peer once they reach half the window (hashicorp's rule), so
 * that small reads do not cost a frame each. */
static int maybe_window_update(yamux_stream *st)
{
    yamux_session *s = st->sess;
    if (!st->accepted || st->remote_closed || st->finished || st->pending < s->cfg.window / 2)
        return 0;
    uint32_t delta = st->pending;
    st->pending = 0;
    st->recv_window += delta;
    return emit(s, YAMUX_TYPE_WINDOW_UPDATE, 0, st->id, delta, NULL, 0);
}

/* ---- Session ------------------------------------------------------------------------------ */

int yamux_session_new(const yamux_config *cfg, const yamux_callbacks *cb, void *user,
                      yamux_session **out)
{
    if (!cfg || !cb || !cb->send || !out) return YAMUX_EINVAL;
    if (cfg->window < YAMUX_INITIAL_WINDOW || cfg->max_streams == 0 || cfg->accept_backlog == 0 ||
        cfg->max_frame == 0)
        return YAMUX_EINVAL;
    yamux_session *s = calloc(1, sizeof(*s));
    if (!s) return YAMUX_ENOMEM;
    s->cfg = *cfg;
    s->cb = *cb;
    s->user = user;
    s->next_id = cfg->is_client ? 1 : 2;
    *out = s;
    return 0;
}

void yamux_session_free(yamux_session *s)
{
    if (!s) return;
    assert(s->depth == 0 && "yamux_session_free called from a callback");
    /* Calls made from on_closed below see a dead session and do nothing. */
    if (!s->failed) s->failed = YAMUX_ESESSION;
    while (s->live)
        finish_stream(s->live, YAMUX_CLOSE_SESSION);
    enter(s);
    leave(s);
    free(s->slots);
    free(s);
}

/* A stream-level frame (Data or WindowUpdate) whose header has just been read. */
static int on_stream_frame(yamux_session *s, const yamux_header *h)
{
    uint32_t payload = h->type == YAMUX_TYPE_DATA ? h->length : 0;
    uint32_t delta = h->type == YAMUX_TYPE_WINDOW_UPDATE ? h->length : 0;
    yamux_stream *st;
    bool created = false;

    s->rx_stream = NULL;
    s->rx_remaining = payload;
    s->rx_fin = false;
    if (h->type == YAMUX_TYPE_DATA && h->stream_id == 0) return YAMUX_EBADID;

    if (h->flags & YAMUX_FLAG_SYN) {
        /* Ids of our own parity are ours to open; a peer using them would collide with us. */
        uint32_t peer_parity = s->cfg.is_client ? 0 : 1;
        if (h->stream_id == 0 || (h->stream_id & 1) != peer_parity) return YAMUX_EBADID;
        if (table_find(s, h->stream_id)) return YAMUX_EDUPSYN;
        st = NULL;
        if (!s->goaway_sent && s->cb.on_stream && s->count < s->cfg.max_streams &&
            s->pending_accept < s->cfg.accept_backlog && table_reserve(s) == 0)
            st = stream_alloc(s, h->stream_id, false);
        if (!st) {
            /* Refused (going away, limits, no memory): RST, as hashicorp does for a full
             * backlog; any payload with the SYN is drained. */
            return emit(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, h->stream_id, 0, NULL, 0);
        }
        stream_register(s, st);
        created = true;
    } else {
        st = table_find(s, h->stream_id);
        if (!st) return 0; /* closed or never known: drain */
    }

    if (h->flags & YAMUX_FLAG_RST) {
        finish_stream(st, YAMUX_CLOSE_REMOTE_RESET);
        return 0;
    }
    if ((h->flags & YAMUX_FLAG_ACK) && st->outbound) st->acked = true;
    if (delta) {
        uint64_t w = (uint64_t)st->send_window + delta;
        /* A correct peer never grants more than 4 GiB; saturate rather than wrap. */
        st->send_window = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    }

    if (created) {
        st->exposed = true;
        s->stats.streams_inbound++;
        s->cb.on_stream(s->user, st);
    } else if (delta && st->want_writable && !st->local_closed) {
        st->want_writable = false;
        if (s->cb.on_writable) s->cb.on_writable(s->user, st);
    }
    if (s->failed) return s->failed;
    if (st->finished) return 0; /* a callback closed it: drain */

    if (payload) {
        if (st->remote_closed) return YAMUX_EPROTO;
        if (payload > st->recv_window) return YAMUX_EWINDOW;
        st->recv_window -= payload;
    }
    s->rx_stream = st;
    s->rx_fin = (h->flags & YAMUX_FLAG_FIN) != 0;
    return 0;
}

static void on_ping(yamux_session *s, const yamux_header *h)
{
    if (h->flags & YAMUX_FLAG_SYN) {
        (void)emit(s, YAMUX_TYPE_PING, YAMUX_FLAG_ACK, 0, h->length, NULL, 0);
    } else if ((h->flags & YAMUX_FLAG_ACK) && s->ping_outstanding && h->length == s->ping_id) {
        s->ping_outstanding = false;
        uint64_t rtt = s->now_ms > s->ping_sent_ms ? s->now_ms - s->ping_sent_ms : 0;
        if (s->cb.on_pong) s->cb.on_pong(s->user, rtt);
    }
}

static int on_header(yamux_session *s)
{
    yamux_header h;
    yamux_header_decode(s->hdr, &h);
    if (h.version != YAMUX_VERSION) return YAMUX_EVERSION;
    switch (h.type) {
    case YAMUX_TYPE_DATA:
    case YAMUX_TYPE_WINDOW_UPDATE:
        return on_stream_frame(s, &h);
    case YAMUX_TYPE_PING:
        on_ping(s, &h);
        return s->failed;
    case YAMUX_TYPE_GO_AWAY:
        s->goaway_received = true;
        if (s->cb.on_goaway) s->cb.on_goaway(s->user, h.length);
        return s->failed;
    default:
        return YAMUX_ETYPE;
    }
}

/* The current frame is complete: a FIN it carried takes effect after its payload. */
static void end_frame(yamux_session *s)
{
    yamux_stream *st = s->rx_stream;
    bool fin = s->rx_fin;
    s->rx_stream = NULL;
    s->rx_fin = false;
    if (!st || !fin || st->remote_closed) return;
    st->remote_closed = true;
    if (s->cb.on_fin) s->cb.on_fin(s->user, st);
    if (!st->finished && st->local_closed) finish_stream(st, YAMUX_CLOSE_NORMAL);
}

static void deliver(yamux_session *s, const uint8_t *p, size_t n)
{
    yamux_stream *st = s->rx_stream;
    if (!st) return;
    st->unconsumed += (uint32_t)n;
    st->bytes_in += n;
    s->stats.payload_in += n;
    if (s->cb.on_data) {
        s->cb.on_data(s->user, st, p, n);
    } else {
        st->unconsumed -= (uint32_t)n;
        st->pending += (uint32_t)n;
        (void)maybe_window_update(st);
    }
}

int yamux_session_feed(yamux_session *s, const void *data, size_t len)
{
    if (!s || (!data && len)) return YAMUX_EINVAL;
    if (s->in_send || s->depth > 0) return YAMUX_EBUSY;
    if (s->failed) return s->failed;

    const uint8_t *p = data;
    size_t left = len;
    enter(s);
    while (left > 0 && !s->failed) {
        if (s->rx_remaining > 0) {
            size_t n = left < s->rx_remaining ? left : s->rx_remaining;
            s->rx_remaining -= (uint32_t)n;
            deliver(s, p, n);
            p += n;
            left -= n;
            if (s->rx_remaining == 0) end_frame(s);
        } else {
            size_t n = YAMUX_HEADER_SIZE - s->hdr_len;
            if (n > left) n = left;
            memcpy(s->hdr + s->hdr_len, p, n);
            s->hdr_len += n;
            p += n;
            left -= n;
            if (s->hdr_len < YAMUX_HEADER_SIZE) break;
            s->hdr_len = 0;
            int rc = on_header(s);
            if (rc != 0) {
                session_fail(s, rc, yamux_is_protocol_error(rc));
                break;
            }
            if (s->rx_remaining == 0) end_frame(s);
        }
        /* Between frames at the top level: deliver on_closed promptly, not after a megabyte. */
        if (s->depth == 1) flush_dead(s);
    }
    s->stats.bytes_in += len - left;
    int rc = s->failed;
    leave(s);
    return rc;
}

void yamux_session_set_now(yamux_session *s, uint64_t now_ms)
{
    s->now_ms = now_ms;
}

int yamux_session_ping(yamux_session *s, uint64_t now_ms)
{
    if (!s) return YAMUX_EINVAL;
    if (s->in_send) return YAMUX_EBUSY;
    if (s->failed) return s->failed;
    s->now_ms = now_ms;
    s->ping_id++;
    s->ping_sent_ms = now_ms;
    s->ping_outstanding = true;
    enter(s);
    int rc = emit(s, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, s->ping_id, NULL, 0);
    leave(s);
    return rc;
}

bool yamux_session_ping_outstanding(const yamux_session *s)
{
    return s->ping_outstanding;
}

int yamux_session_goaway(yamux_session *s, uint32_t code)
{
    if (!s) return YAMUX_EINVAL;
    if (s->in_send) return YAMUX_EBUSY;
    if (s->failed) return s->failed;
    if (s->goaway_sent) return 0;
    s->goaway_sent = true;
    enter(s);
    int rc = emit(s, YAMUX_TYPE_GO_AWAY, 0, 0, code, NULL, 0);
    leave(s);
    return rc;
}

int yamux_session_error(const yamux_session *s)
{
    return s->failed;
}

bool yamux_session_is_client(const yamux_session *s)
{
    return s->cfg.is_client;
}

void yamux_session_get_stats(const yamux_session *s, yamux_session_stats *out)
{
    *out = s->stats;
    out->open_streams = s->count;
    out->pending_accept = s->pending_accept;
    out->goaway_sent = s->goaway_sent;
    out->goaway_received = s->goaway_received;
}

/* ---- Streams ------------------------------------------------------------------------------ */

/* Common guard for calls on a stream: the session must be usable from here. */
static int stream_guard(const yamux_stream *st)
{
    if (!st) return YAMUX_EINVAL;
    if (st->sess->in_send) return YAMUX_EBUSY;
    if (st->finished) return YAMUX_ECLOSED;
    return st->sess->failed;
}

int yamux_stream_open(yamux_session *s, yamux_stream **out)
{
    if (!s || !out) return YAMUX_EINVAL;
    if (s->in_send) return YAMUX_EBUSY;
    if (s->failed) return s->failed;
    if (s->goaway_sent || s->goaway_received) return YAMUX_EGOAWAY;
    if (s->count >= s->cfg.max_streams) return YAMUX_ELIMIT;
    if (s->next_id > UINT32_MAX) return YAMUX_EIDS;
    if (table_reserve(s) != 0) return YAMUX_ENOMEM;

    yamux_stream *st = stream_alloc(s, (uint32_t)s->next_id, true);
    if (!st) return YAMUX_ENOMEM;
    enter(s);
    /* Send the SYN before registering the stream: if the transport fails, the stream never
     * existed and is owed no on_closed. */
    int rc = emit(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, st->id,
                  s->cfg.window - YAMUX_INITIAL_WINDOW, NULL, 0);
    if (rc == 0) {
        s->next_id += 2;
        stream_register(s, st);
        st->exposed = true;
        s->stats.streams_opened++;
        *out = st;
    } else {
        free(st);
    }
    leave(s);
    return rc;
}

int yamux_stream_accept(yamux_stream *st)
{
    int rc = stream_guard(st);
    if (rc) return rc;
    if (st->accepted) return YAMUX_ESTATE;
    yamux_session *s = st->sess;
    st->accepted = true;
    s->pending_accept--;
    /* The ACK grants the window surplus plus anything consumed before the accept. */
    uint32_t delta = (s->cfg.window - YAMUX_INITIAL_WINDOW) + st->pending;
    st->pending = 0;
    st->recv_window += delta;
    enter(s);
    rc = emit(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_ACK, st->id, delta, NULL, 0);
    leave(s);
    return rc;
}

ssize_t yamux_stream_write(yamux_stream *st, const void *data, size_t len)
{
    int rc = stream_guard(st);
    if (rc) return rc;
    if (!data && len) return YAMUX_EINVAL;
    if (st->local_closed) return YAMUX_ECLOSED;
    if (!st->accepted) return YAMUX_ESTATE;
    yamux_session *s = st->sess;
    const uint8_t *p = data;
    size_t done = 0;
    enter(s);
    while (done < len && st->send_window > 0) {
        size_t n = len - done;
        if (n > st->send_window) n = st->send_window;
        if (n > s->cfg.max_frame) n = s->cfg.max_frame;
        if (emit(s, YAMUX_TYPE_DATA, 0, st->id, (uint32_t)n, p + done, n) != 0) break;
        st->send_window -= (uint32_t)n;
        st->bytes_out += n;
        s->stats.payload_out += n;
        done += n;
    }
    if (done < len && !s->failed) st->want_writable = true;
    rc = s->failed;
    leave(s);
    return rc ? rc : (ssize_t)done;
}

int yamux_stream_consumed(yamux_stream *st, size_t n)
{
    if (!st) return YAMUX_EINVAL;
    if (st->finished) return 0;
    int rc = stream_guard(st);
    if (rc) return rc;
    if (n > st->unconsumed) return YAMUX_EINVAL;
    st->unconsumed -= (uint32_t)n;
    st->pending += (uint32_t)n;
    enter(st->sess);
    rc = maybe_window_update(st);
    leave(st->sess);
    return rc;
}

int yamux_stream_close(yamux_stream *st)
{
    int rc = stream_guard(st);
    if (rc) return rc;
    if (!st->accepted) return YAMUX_ESTATE;
    if (st->local_closed) return 0;
    yamux_session *s = st->sess;
    st->local_closed = true;
    st->want_writable = false;
    enter(s);
    rc = emit(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_FIN, st->id, 0, NULL, 0);
    if (rc == 0 && st->remote_closed) finish_stream(st, YAMUX_CLOSE_NORMAL);
    leave(s);
    return rc;
}

int yamux_stream_reset(yamux_stream *st)
{
    int rc = stream_guard(st);
    if (rc) return rc;
    yamux_session *s = st->sess;
    enter(s);
    rc = emit(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, st->id, 0, NULL, 0);
    if (rc == 0) finish_stream(st, YAMUX_CLOSE_LOCAL_RESET);
    leave(s);
    return rc;
}

uint32_t yamux_stream_id(const yamux_stream *st)
{
    return st->id;
}

yamux_session *yamux_stream_session(const yamux_stream *st)
{
    return st->sess;
}

void yamux_stream_set_user(yamux_stream *st, void *data)
{
    st->user = data;
}

void *yamux_stream_user(const yamux_stream *st)
{
    return st->user;
}

uint32_t yamux_stream_send_window(const yamux_stream *st)
{
    return st->send_window;
}

uint64_t yamux_stream_bytes_in(const yamux_stream *st)
{
    return st->bytes_in;
}

uint64_t yamux_stream_bytes_out(const yamux_stream *st)
{
    return st->bytes_out;
}

bool yamux_stream_is_acked(const yamux_stream *st)
{
    return st->acked;
}
