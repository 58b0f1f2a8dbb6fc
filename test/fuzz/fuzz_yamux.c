/*
 * libFuzzer target for proto/yamux.c.
 *
 * Input layout: byte 0 picks the mode and role bits, byte 1 the configuration, byte 2 the length
 * L of a control section that callbacks and the driver read (cyclically) to decide what to do,
 * then the body.
 *   raw mode:  the body is wire bytes, fed to a client and to a server session in chunks whose
 *              sizes come from the control section; between chunks the driver and the callbacks
 *              open, write, consume, close and reset streams.
 *   pair mode: a client and a server wired back to back; the body is a list of commands (open,
 *              write, close, reset, consume, ping, GoAway, partial pumps, raw injection).
 *              Until bytes are injected, neither side may ever see a protocol error: that checks
 *              that our sender and our receiver agree on windows, FIN and ids.
 * Every stream the application sees owns a heap tracker freed in on_closed, so a missing
 * on_closed is a leak and a second one a double free; both are reported by ASan.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/yamux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

#define TRACKER_MAGIC 0x59414d58u

typedef struct tracker {
    struct tracker *prev, *next;
    yamux_stream *st;
    uint64_t unconsumed;
    uint32_t magic;
    bool pending; /* announced by on_stream, not yet accepted or reset */
} tracker;

typedef struct harness harness;

typedef struct side {
    harness *h;
    yamux_session *s;
    tracker *streams;
    size_t nstreams;
    /* Pair mode: bytes on their way to the other side, q[qoff..qlen). The buffers outlive the
     * run (static), because large per-run allocations make ASan runs crawl. */
    uint8_t **q;
    size_t *qcap;
    size_t qoff, qlen;
    uint32_t window;
} side;

struct harness {
    const uint8_t *ctl;
    size_t ctl_len, ctl_pos;
    bool pair;
    bool corrupted; /* raw bytes were injected: protocol errors become legitimate */
    bool may_fail_send;
    size_t write_budget; /* payload bytes the application may still write: keeps runs fast */
    side sides[2];
};

static uint8_t pattern[64 * 1024];
static uint8_t *queue[2];
static size_t queue_cap[2];

static uint8_t ctl(harness *h)
{
    if (h->ctl_len == 0) return (uint8_t)(h->ctl_pos++ * 37);
    return h->ctl[h->ctl_pos++ % h->ctl_len];
}

/* Any value a yamux call returns must be success or one of the documented codes. */
static void check_rc(long rc)
{
    if (rc < 0) CHECK(strcmp(yamux_strerror((int)rc), "unknown yamux error") != 0);
}

static tracker *track(side *sd, yamux_stream *st, bool pending)
{
    tracker *t = calloc(1, sizeof(*t));
    CHECK(t);
    t->st = st;
    t->magic = TRACKER_MAGIC;
    t->pending = pending;
    t->next = sd->streams;
    if (sd->streams) sd->streams->prev = t;
    sd->streams = t;
    sd->nstreams++;
    yamux_stream_set_user(st, t);
    return t;
}

static tracker *pick(side *sd, uint8_t b)
{
    if (sd->nstreams == 0) return NULL;
    tracker *t = sd->streams;
    for (size_t i = b % sd->nstreams; i > 0; i--)
        t = t->next;
    return t;
}

static void do_write(side *sd, tracker *t, size_t n)
{
    if (n > sizeof(pattern)) n = sizeof(pattern);
    ssize_t rc = yamux_stream_write(t->st, pattern, n);
    check_rc(rc);
    CHECK(rc < 0 || (size_t)rc <= n);
}

static void do_open(side *sd)
{
    yamux_stream *st = NULL;
    int rc = yamux_stream_open(sd->s, &st);
    check_rc(rc);
    if (rc == 0)
        track(sd, st, false);
    else
        CHECK(st == NULL);
}

static void do_consume(tracker *t, uint64_t n)
{
    int rc = yamux_stream_consumed(t->st, (size_t)n);
    check_rc(rc);
    if (rc == 0) t->unconsumed -= n;
}

/* ---- Callbacks ---------------------------------------------------------------------------- */

static int cb_send(void *user, const yamux_iov *iov, int iovcnt)
{
    side *sd = user;
    harness *h = sd->h;
    CHECK(iovcnt == 1 || iovcnt == 2);
    CHECK(iov[0].len == YAMUX_HEADER_SIZE);
    if (!h->pair) {
        /* Rarely, the transport dies under the session. */
        return h->may_fail_send && ctl(h) == 0xFF ? -1 : 0;
    }
    for (int i = 0; i < iovcnt; i++) {
        if (sd->qlen + iov[i].len > *sd->qcap) {
            size_t ncap = *sd->qcap ? *sd->qcap : 4096;
            while (ncap < sd->qlen + iov[i].len)
                ncap *= 2;
            *sd->q = realloc(*sd->q, ncap);
            CHECK(*sd->q);
            *sd->qcap = ncap;
        }
        memcpy(*sd->q + sd->qlen, iov[i].base, iov[i].len);
        sd->qlen += iov[i].len;
    }
    return 0;
}

static void cb_on_stream(void *user, yamux_stream *st)
{
    side *sd = user;
    tracker *t = track(sd, st, true);
    uint8_t b = ctl(sd->h);
    switch (b % 4) {
    case 0:
        check_rc(yamux_stream_accept(st));
        t->pending = false;
        break;
    case 1:
        check_rc(yamux_stream_reset(st));
        break;
    case 2:
        break; /* leave it in the backlog; the driver may accept it later */
    default:
        check_rc(yamux_stream_accept(st));
        t->pending = false;
        do_write(sd, t, (size_t)ctl(sd->h) * 97);
        break;
    }
}

static void cb_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    side *sd = user;
    tracker *t = yamux_stream_user(st);
    CHECK(t && t->magic == TRACKER_MAGIC && t->st == st);
    CHECK(len > 0);
    /* The window is the promise that the application never holds more than this. */
    t->unconsumed += len;
    CHECK(t->unconsumed <= sd->window);
    /* Touch both ends so ASan sees a pointer/length pair that leaves the input. */
    volatile uint8_t sink = data[0];
    sink ^= data[len - 1];
    (void)sink;
    uint8_t b = ctl(sd->h);
    switch (b % 8) {
    case 0:
    case 1:
    case 2:
    case 3:
        do_consume(t, t->unconsumed);
        break;
    case 4:
        do_consume(t, t->unconsumed / 2);
        break;
    case 5:
        break;
    case 6:
        do_write(sd, t, len);
        break;
    default:
        if (b & 0x80)
            check_rc(yamux_stream_reset(st));
        else
            check_rc(yamux_stream_close(st));
        if (b & 0x40) do_open(sd);
        break;
    }
}

static void cb_on_fin(void *user, yamux_stream *st)
{
    side *sd = user;
    tracker *t = yamux_stream_user(st);
    CHECK(t && t->magic == TRACKER_MAGIC);
    uint8_t b = ctl(sd->h);
    if (b % 3 == 0)
        check_rc(yamux_stream_close(st));
    else if (b % 3 == 1)
        check_rc(yamux_stream_reset(st));
}

static void cb_on_writable(void *user, yamux_stream *st)
{
    side *sd = user;
    tracker *t = yamux_stream_user(st);
    CHECK(t && t->magic == TRACKER_MAGIC);
    CHECK(yamux_stream_send_window(st) > 0);
    do_write(sd, t, (size_t)ctl(sd->h) * 257);
}

static void cb_on_closed(void *user, yamux_stream *st, yamux_close_reason reason)
{
    side *sd = user;
    tracker *t = yamux_stream_user(st);
    CHECK(t && t->magic == TRACKER_MAGIC && t->st == st);
    CHECK(reason >= YAMUX_CLOSE_NORMAL && reason <= YAMUX_CLOSE_SESSION);
    /* Calls on a finished stream are refused, never crash. */
    CHECK(yamux_stream_write(st, "x", 1) == YAMUX_ECLOSED);
    CHECK(yamux_stream_consumed(st, 1) == 0);
    if (t->prev)
        t->prev->next = t->next;
    else
        sd->streams = t->next;
    if (t->next) t->next->prev = t->prev;
    sd->nstreams--;
    t->magic = 0;
    free(t);
}

static void cb_on_pong(void *user, uint64_t rtt_ms)
{
    side *sd = user;
    /* The driver's clock only takes values 0..255. */
    CHECK(rtt_ms <= 255);
    CHECK(!yamux_session_ping_outstanding(sd->s));
}

static void cb_on_goaway(void *user, uint32_t code)
{
    side *sd = user;
    yamux_stream *st = NULL;
    CHECK(yamux_stream_open(sd->s, &st) == YAMUX_EGOAWAY || yamux_session_error(sd->s) != 0);
}

static const yamux_callbacks callbacks = {
    .send = cb_send,
    .on_stream = cb_on_stream,
    .on_data = cb_on_data,
    .on_fin = cb_on_fin,
    .on_writable = cb_on_writable,
    .on_closed = cb_on_closed,
    .on_pong = cb_on_pong,
    .on_goaway = cb_on_goaway,
};

/* ---- Driver ------------------------------------------------------------------------------- */

static void side_init(harness *h, side *sd, bool client, uint8_t conf)
{
    yamux_config cfg;
    yamux_config_init(&cfg, client);
    /* Small limits so that backlog, max_streams, frame splitting and windows are reached. */
    cfg.window = YAMUX_INITIAL_WINDOW + (conf & 3u) * 100000u;
    cfg.max_frame = (conf & 4) ? 1000 : YAMUX_DEFAULT_MAX_FRAME;
    cfg.accept_backlog = 1 + ((conf >> 3) & 3u);
    cfg.max_streams = 2 + ((conf >> 5) & 7u) * 3;
    sd->h = h;
    sd->window = cfg.window;
    CHECK(yamux_session_new(&cfg, &callbacks, sd, &sd->s) == 0);
}

static void side_free(side *sd)
{
    yamux_session_free(sd->s);
    CHECK(sd->streams == NULL && sd->nstreams == 0);
}

/* One action of the application, outside any callback. */
static void act(side *sd, uint8_t op, uint8_t arg)
{
    harness *h = sd->h;
    tracker *t = pick(sd, arg);
    switch (op % 9) {
    case 0:
        do_open(sd);
        break;
    case 1:
        if (t) do_write(sd, t, (size_t)arg * 300);
        break;
    case 2:
        if (t) check_rc(yamux_stream_close(t->st));
        break;
    case 3:
        if (t) check_rc(yamux_stream_reset(t->st));
        break;
    case 4:
        for (tracker *u = sd->streams; u; u = u->next) {
            if (u->unconsumed) do_consume(u, u->unconsumed);
        }
        break;
    case 5:
        check_rc(yamux_session_ping(sd->s, arg));
        break;
    case 6:
        /* Rarely: GoAway stops all new streams for the rest of the input. */
        if ((arg & 0xF0) == 0xF0) check_rc(yamux_session_goaway(sd->s, arg & 3));
        yamux_session_set_now(sd->s, arg);
        break;
    case 7:
        for (tracker *u = sd->streams; u; u = u->next) {
            if (u->pending) {
                u->pending = false;
                check_rc(yamux_stream_accept(u->st));
                break;
            }
        }
        break;
    default: {
        yamux_session_stats st;
        yamux_session_get_stats(sd->s, &st);
        CHECK(st.pending_accept <= st.open_streams);
        if (t) {
            (void)yamux_stream_bytes_in(t->st);
            (void)yamux_stream_is_acked(t->st);
            CHECK(yamux_stream_session(t->st) == sd->s);
        }
        if (h->pair) CHECK(yamux_session_is_client(sd->s) == (sd == &h->sides[0]));
        break;
    }
    }
}

static void raw_mode(harness *h, uint8_t conf, const uint8_t *body, size_t len)
{
    for (int role = 0; role < 2; role++) {
        side *sd = &h->sides[0];
        memset(sd, 0, sizeof(*sd));
        side_init(h, sd, role == 0, conf);
        size_t at = 0;
        int rc = 0;
        while (at < len && rc == 0) {
            size_t n = 1 + ctl(h) % 64;
            if (n > len - at) n = len - at;
            rc = yamux_session_feed(sd->s, body + at, n);
            check_rc(rc);
            at += n;
            uint8_t op = ctl(h);
            act(sd, op, ctl(h));
        }
        side_free(sd);
    }
}

/* Delivers up to max bytes queued by `from` to the other side. */
static void deliver(harness *h, int from, size_t max)
{
    side *src = &h->sides[from];
    side *dst = &h->sides[1 - from];
    size_t n = src->qlen - src->qoff;
    if (n > max) n = max;
    if (n == 0) return;
    /* Fed in place: dst's callbacks only act on dst, so they append to dst's queue, never to
     * this one. */
    const uint8_t *p = *src->q + src->qoff;
    src->qoff += n;
    int rc = yamux_session_feed(dst->s, p, n);
    if (src->qoff == src->qlen) src->qoff = src->qlen = 0;
    check_rc(rc);
    if (!h->corrupted) CHECK(rc == 0);
}

static void pump_all(harness *h)
{
    /* Each round trip lets windows reopen; stop if the sides just keep talking. */
    for (int rounds = 0; rounds < 16 && (h->sides[0].qlen || h->sides[1].qlen); rounds++) {
        deliver(h, 0, SIZE_MAX);
        deliver(h, 1, SIZE_MAX);
    }
}

static void pair_mode(harness *h, uint8_t conf, const uint8_t *body, size_t len)
{
    memset(h->sides, 0, sizeof(h->sides));
    side_init(h, &h->sides[0], true, conf);
    side_init(h, &h->sides[1], false, (uint8_t)(conf * 7));
    for (int i = 0; i < 2; i++) {
        h->sides[i].q = &queue[i];
        h->sides[i].qcap = &queue_cap[i];
    }
    size_t at = 0;
    while (at + 2 <= len) {
        uint8_t op = body[at++];
        uint8_t arg = body[at++];
        side *sd = &h->sides[(op >> 7) & 1];
        switch ((op >> 4) & 7) {
        case 0:
        case 1:
        case 2:
        case 3:
            act(sd, op & 15, arg);
            break;
        case 4:
            deliver(h, (op >> 7) & 1, (size_t)arg * 13 + 1);
            break;
        case 5:
            pump_all(h);
            break;
        case 6: {
            size_t n = arg % 32;
            if (n > len - at) n = len - at;
            h->corrupted = true;
            check_rc(yamux_session_feed(sd->s, body + at, n));
            at += n;
            break;
        }
        default:
            for (tracker *u = sd->streams; u; u = u->next) {
                if (u->unconsumed) do_consume(u, u->unconsumed);
            }
            pump_all(h);
            break;
        }
    }
    pump_all(h);
    if (!h->corrupted) {
        CHECK(yamux_session_error(h->sides[0].s) == 0);
        CHECK(yamux_session_error(h->sides[1].s) == 0);
    }
    side_free(&h->sides[0]);
    side_free(&h->sides[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    if (pattern[0] == 0) {
        for (size_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = (uint8_t)(i * 131 + 7);
    }
    harness h;
    memset(&h, 0, sizeof(h));
    size_t l = data[2];
    if (l > size - 3) l = size - 3;
    h.ctl = data + 3;
    h.ctl_len = l;
    h.pair = data[0] & 1;
    h.may_fail_send = (data[0] & 2) != 0;
    /* Enough to exhaust a few windows, little enough for thousands of runs a second. */
    h.write_budget = 320u * 1024;
    const uint8_t *body = data + 3 + l;
    size_t len = size - 3 - l;
    if (h.pair)
        pair_mode(&h, data[1], body, len);
    else
        raw_mode(&h, data[1], body, len);
    return 0;
}
