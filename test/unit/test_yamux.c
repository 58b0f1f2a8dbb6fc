/*
 * yamux: byte vectors for the wire format and scenarios between two sessions wired back to back.
 *
 * Each peer records what the session did in a text log ("open" events, data, FIN, close
 * reasons) and captures its output bytes, so a test reads as the exchange it pins down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/yamux.h"

/* A header as bytes: version 0, type, flags, id, length, all big-endian. */
#define BE32(x)                                                                                    \
    (uint8_t)((uint32_t)(x) >> 24), (uint8_t)((uint32_t)(x) >> 16), (uint8_t)((uint32_t)(x) >> 8), \
        (uint8_t)(x)
#define HDR(type, flags, id, len) 0, (type), 0, (flags), BE32(id), BE32(len)

enum { T_DATA = 0, T_WU = 1, T_PING = 2, T_GOAWAY = 3 };
enum { F_SYN = 1, F_ACK = 2, F_FIN = 4, F_RST = 8 };

#define MAX_SEEN 8192

/* What a callback does to the stream it is called for. */
enum action { ACT_NONE, ACT_CLOSE, ACT_RESET, ACT_ACCEPT, ACT_ACCEPT_WRITE_CLOSE, ACT_OPEN };

typedef struct peer {
    yamux_session *s;
    uint8_t *out;
    size_t out_len, out_cap;
    int send_fail;
    bool nolog;
    char log[16384];
    size_t log_len;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    yamux_stream *last_stream;
    yamux_stream *opened_in_cb;
    int streams_seen, closed_seen;
    uint32_t seen_ids[MAX_SEEN];
    int closed_per_seen[MAX_SEEN];
    yamux_close_reason last_reason;
    int pongs;
    uint64_t last_rtt;
    int goaways;
    uint32_t last_goaway;
    int writables;
    bool auto_consume;
    enum action on_stream_act, on_data_act, on_fin_act, on_writable_act;
    bool write_in_closed; /* on_closed tries a write and records the result */
    ssize_t write_in_closed_rc;
    bool feed_in_data;
    int feed_in_data_rc;
} peer;

static void logf_(peer *p, const char *fmt, ...)
{
    va_list ap;
    if (p->nolog) return;
    va_start(ap, fmt);
    int n = vsnprintf(p->log + p->log_len, sizeof(p->log) - p->log_len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(p->log) - p->log_len);
    p->log_len += (size_t)n;
}

static void append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *data, size_t n)
{
    if (*len + n > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (ncap < *len + n)
            ncap *= 2;
        *buf = realloc(*buf, ncap);
        assert_non_null(*buf);
        *cap = ncap;
    }
    if (n) memcpy(*buf + *len, data, n);
    *len += n;
}

static int cb_send(void *user, const yamux_iov *iov, int iovcnt)
{
    peer *p = user;
    assert_true(iovcnt == 1 || iovcnt == 2);
    assert_int_equal(iov[0].len, YAMUX_HEADER_SIZE);
    if (p->send_fail) return -1;
    for (int i = 0; i < iovcnt; i++)
        append(&p->out, &p->out_len, &p->out_cap, iov[i].base, iov[i].len);
    /* The transport may not call back in. */
    assert_int_equal(yamux_session_ping(p->s, 0), YAMUX_EBUSY);
    return 0;
}

static void remember(peer *p, yamux_stream *st)
{
    assert_true(p->streams_seen < MAX_SEEN);
    p->seen_ids[p->streams_seen] = yamux_stream_id(st);
    yamux_stream_set_user(st, &p->closed_per_seen[p->streams_seen]);
    p->streams_seen++;
}

static void run_action(peer *p, yamux_stream *st, enum action a)
{
    switch (a) {
    case ACT_NONE:
        break;
    case ACT_CLOSE:
        assert_int_equal(yamux_stream_close(st), 0);
        break;
    case ACT_RESET:
        assert_int_equal(yamux_stream_reset(st), 0);
        break;
    case ACT_ACCEPT:
        assert_int_equal(yamux_stream_accept(st), 0);
        break;
    case ACT_ACCEPT_WRITE_CLOSE:
        assert_int_equal(yamux_stream_accept(st), 0);
        assert_int_equal(yamux_stream_write(st, "hi", 2), 2);
        assert_int_equal(yamux_stream_close(st), 0);
        break;
    case ACT_OPEN: {
        yamux_stream *ns;
        assert_int_equal(yamux_stream_open(p->s, &ns), 0);
        remember(p, ns);
        p->opened_in_cb = ns;
        break;
    }
    }
}

static void cb_on_stream(void *user, yamux_stream *st)
{
    peer *p = user;
    logf_(p, "stream %u;", yamux_stream_id(st));
    remember(p, st);
    p->last_stream = st;
    run_action(p, st, p->on_stream_act);
}

static void cb_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    peer *p = user;
    append(&p->rx, &p->rx_len, &p->rx_cap, data, len);
    if (p->auto_consume) assert_int_equal(yamux_stream_consumed(st, len), 0);
    if (p->feed_in_data) p->feed_in_data_rc = yamux_session_feed(p->s, "x", 1);
    run_action(p, st, p->on_data_act);
}

static void cb_on_fin(void *user, yamux_stream *st)
{
    peer *p = user;
    logf_(p, "fin %u;", yamux_stream_id(st));
    run_action(p, st, p->on_fin_act);
}

static void cb_on_writable(void *user, yamux_stream *st)
{
    peer *p = user;
    logf_(p, "writable %u;", yamux_stream_id(st));
    p->writables++;
    run_action(p, st, p->on_writable_act);
}

static void cb_on_closed(void *user, yamux_stream *st, yamux_close_reason reason)
{
    static const char *names[] = {"normal", "local-reset", "remote-reset", "session"};
    peer *p = user;
    int *count = yamux_stream_user(st);
    assert_non_null(count);
    (*count)++;
    p->closed_seen++;
    p->last_reason = reason;
    logf_(p, "closed %u %s;", yamux_stream_id(st), names[reason]);
    if (p->write_in_closed) p->write_in_closed_rc = yamux_stream_write(st, "z", 1);
    if (p->last_stream == st) p->last_stream = NULL;
}

static void cb_on_pong(void *user, uint64_t rtt_ms)
{
    peer *p = user;
    p->pongs++;
    p->last_rtt = rtt_ms;
}

static void cb_on_goaway(void *user, uint32_t code)
{
    peer *p = user;
    p->goaways++;
    p->last_goaway = code;
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

static peer *peer_new_cfg(const yamux_config *cfg)
{
    peer *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    assert_int_equal(yamux_session_new(cfg, &callbacks, p, &p->s), 0);
    return p;
}

static peer *peer_new(bool client)
{
    yamux_config cfg;
    yamux_config_init(&cfg, client);
    return peer_new_cfg(&cfg);
}

/* Frees the session and checks that every stream the application saw got one on_closed. */
static void peer_free(peer *p)
{
    yamux_session_free(p->s);
    for (int i = 0; i < p->streams_seen; i++) {
        if (p->closed_per_seen[i] != 1)
            fail_msg("stream %u closed %d times", p->seen_ids[i], p->closed_per_seen[i]);
    }
    free(p->out);
    free(p->rx);
    free(p);
}

static void clear_out(peer *p)
{
    p->out_len = 0;
}

static void clear_log(peer *p)
{
    p->log_len = 0;
    p->log[0] = 0;
}

static void expect_out(peer *p, const uint8_t *exp, size_t n)
{
    assert_int_equal(p->out_len, n);
    assert_memory_equal(p->out, exp, n);
    clear_out(p);
}

static void expect_log(peer *p, const char *exp)
{
    assert_string_equal(p->log, exp);
    clear_log(p);
}

static int feed(peer *p, const uint8_t *data, size_t n)
{
    return yamux_session_feed(p->s, data, n);
}

/* Moves a's output into b and b's into a until both are quiet. */
static void pump(peer *a, peer *b)
{
    while (a->out_len || b->out_len) {
        peer *from = a->out_len ? a : b;
        peer *to = from == a ? b : a;
        size_t n = from->out_len;
        uint8_t *tmp = malloc(n);
        assert_non_null(tmp);
        memcpy(tmp, from->out, n);
        clear_out(from);
        assert_int_equal(feed(to, tmp, n), 0);
        free(tmp);
    }
}

static yamux_stream *open_stream(peer *p)
{
    yamux_stream *st = NULL;
    assert_int_equal(yamux_stream_open(p->s, &st), 0);
    assert_non_null(st);
    remember(p, st);
    return st;
}

static void expect_failed_with_goaway(peer *p, int rc, int err)
{
    static const uint8_t goaway_proto[] = {HDR(T_GOAWAY, 0, 0, 1)};
    assert_int_equal(rc, err);
    assert_true(yamux_is_protocol_error(rc));
    expect_out(p, goaway_proto, sizeof(goaway_proto));
    assert_int_equal(yamux_session_error(p->s), err);
    /* Failure is sticky: more input is ignored and nothing more is sent. */
    static const uint8_t ping[] = {HDR(T_PING, F_SYN, 0, 5)};
    assert_int_equal(feed(p, ping, sizeof(ping)), err);
    assert_int_equal(p->out_len, 0);
}

/* ---- Header ------------------------------------------------------------------------------- */

static void test_header_encode_is_big_endian(void **state)
{
    yamux_header h = {0, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN | YAMUX_FLAG_FIN, 0x01020304,
                      0xA0B0C0D0};
    uint8_t out[12];
    static const uint8_t exp[] = {0x00, 0x01, 0x00, 0x05, 0x01, 0x02,
                                  0x03, 0x04, 0xA0, 0xB0, 0xC0, 0xD0};
    yamux_header_encode(&h, out);
    assert_memory_equal(out, exp, sizeof(exp));
}

static void test_header_decode_reads_every_field(void **state)
{
    static const uint8_t in[] = {0x07, 0x03, 0x80, 0x0F, 0xFF, 0xFF,
                                 0xFF, 0xFE, 0x00, 0x00, 0x01, 0x00};
    yamux_header h;
    yamux_header_decode(in, &h);
    assert_int_equal(h.version, 7);
    assert_int_equal(h.type, 3);
    assert_int_equal(h.flags, 0x800F);
    assert_int_equal(h.stream_id, 0xFFFFFFFEu);
    assert_int_equal(h.length, 256);
}

static void test_strerror_names_every_code(void **state)
{
    static const int codes[] = {
        YAMUX_OK,      YAMUX_EINVAL, YAMUX_ENOMEM,  YAMUX_EBUSY,   YAMUX_ETRANSPORT, YAMUX_ESESSION,
        YAMUX_EGOAWAY, YAMUX_ELIMIT, YAMUX_EIDS,    YAMUX_ECLOSED, YAMUX_ESTATE,     YAMUX_EVERSION,
        YAMUX_ETYPE,   YAMUX_EBADID, YAMUX_EDUPSYN, YAMUX_EWINDOW, YAMUX_EPROTO,
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_non_null(yamux_strerror(codes[i]));
        assert_string_not_equal(yamux_strerror(codes[i]), "unknown yamux error");
    }
    assert_string_equal(yamux_strerror(12345), "unknown yamux error");
    assert_true(yamux_is_protocol_error(YAMUX_EWINDOW));
    assert_false(yamux_is_protocol_error(YAMUX_ETRANSPORT));
}

static void test_config_rejects_window_below_default_and_missing_send(void **state)
{
    yamux_config cfg;
    yamux_session *s = NULL;
    yamux_callbacks cb = callbacks;
    yamux_config_init(&cfg, true);
    cfg.window = YAMUX_INITIAL_WINDOW - 1;
    assert_int_equal(yamux_session_new(&cfg, &cb, NULL, &s), YAMUX_EINVAL);
    yamux_config_init(&cfg, true);
    cb.send = NULL;
    assert_int_equal(yamux_session_new(&cfg, &cb, NULL, &s), YAMUX_EINVAL);
    assert_null(s);
}

/* ---- Opening and accepting ---------------------------------------------------------------- */

static void test_client_open_sends_window_update_syn_id1_delta0(void **state)
{
    peer *c = peer_new(true);
    static const uint8_t syn1[] = {0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                                   0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t syn3[] = {HDR(T_WU, F_SYN, 3, 0)};
    yamux_stream *st = open_stream(c);
    assert_int_equal(yamux_stream_id(st), 1);
    assert_false(yamux_stream_is_acked(st));
    expect_out(c, syn1, sizeof(syn1));
    st = open_stream(c);
    assert_int_equal(yamux_stream_id(st), 3);
    expect_out(c, syn3, sizeof(syn3));
    peer_free(c);
}

static void test_server_open_uses_even_ids_from_2(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t syn2[] = {HDR(T_WU, F_SYN, 2, 0)};
    static const uint8_t syn4[] = {HDR(T_WU, F_SYN, 4, 0)};
    assert_int_equal(yamux_stream_id(open_stream(s)), 2);
    expect_out(s, syn2, sizeof(syn2));
    assert_int_equal(yamux_stream_id(open_stream(s)), 4);
    expect_out(s, syn4, sizeof(syn4));
    peer_free(s);
}

static void test_server_accept_sends_window_update_ack(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t syn[] = {0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                                  0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t ack[] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x00,
                                  0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    assert_int_equal(feed(s, syn, sizeof(syn)), 0);
    expect_log(s, "stream 1;");
    /* Nothing is said until the application accepts (it may connect to its target first). */
    assert_int_equal(s->out_len, 0);
    yamux_session_stats st;
    yamux_session_get_stats(s->s, &st);
    assert_int_equal(st.pending_accept, 1);
    assert_int_equal(yamux_stream_write(s->last_stream, "x", 1), YAMUX_ESTATE);
    assert_int_equal(yamux_stream_accept(s->last_stream), 0);
    expect_out(s, ack, sizeof(ack));
    assert_int_equal(yamux_stream_accept(s->last_stream), YAMUX_ESTATE);
    yamux_session_get_stats(s->s, &st);
    assert_int_equal(st.pending_accept, 0);
    assert_int_equal(st.open_streams, 1);
    peer_free(s);
}

static void test_client_sees_ack_from_server(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    yamux_stream *st = open_stream(c);
    pump(c, s);
    assert_true(yamux_stream_is_acked(st));
    peer_free(c);
    peer_free(s);
}

static void test_data_frame_with_syn_opens_stream_and_delivers_payload(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {HDR(T_DATA, F_SYN, 1, 3), 'a', 'b', 'c'};
    assert_int_equal(feed(s, in, sizeof(in)), 0);
    expect_log(s, "stream 1;");
    assert_int_equal(s->rx_len, 3);
    assert_memory_equal(s->rx, "abc", 3);
    peer_free(s);
}

/* ---- Data --------------------------------------------------------------------------------- */

static void test_data_round_trip_and_close_between_two_sessions(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    s->auto_consume = c->auto_consume = true;
    yamux_stream *cs = open_stream(c);
    assert_int_equal(yamux_stream_write(cs, "hello", 5), 5);
    static const uint8_t exp[] = {
        HDR(T_WU, F_SYN, 1, 0), HDR(T_DATA, 0, 1, 5), 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(c->out_len, sizeof(exp));
    assert_memory_equal(c->out, exp, sizeof(exp));
    pump(c, s);
    assert_int_equal(s->rx_len, 5);
    assert_memory_equal(s->rx, "hello", 5);
    assert_int_equal(yamux_stream_write(s->last_stream, "world!", 6), 6);
    assert_int_equal(yamux_stream_close(s->last_stream), 0);
    pump(c, s);
    assert_int_equal(c->rx_len, 6);
    assert_memory_equal(c->rx, "world!", 6);
    expect_log(c, "fin 1;");
    assert_int_equal(yamux_stream_bytes_in(cs), 6);
    assert_int_equal(yamux_stream_bytes_out(cs), 5);
    assert_int_equal(yamux_stream_close(cs), 0);
    expect_log(c, "closed 1 normal;");
    pump(c, s);
    expect_log(s, "stream 1;fin 1;closed 1 normal;");

    yamux_session_stats cst, sst;
    yamux_session_get_stats(c->s, &cst);
    yamux_session_get_stats(s->s, &sst);
    assert_int_equal(cst.open_streams, 0);
    assert_int_equal(sst.open_streams, 0);
    assert_int_equal(cst.payload_out, 5);
    assert_int_equal(cst.payload_in, 6);
    assert_int_equal(cst.streams_opened, 1);
    assert_int_equal(sst.streams_inbound, 1);
    assert_int_equal(cst.bytes_out, sst.bytes_in);
    assert_int_equal(sst.bytes_out, cst.bytes_in);
    /* SYN, Data(5), FIN from the client. */
    assert_int_equal(cst.bytes_out, 12 + 12 + 5 + 12);
    peer_free(c);
    peer_free(s);
}

static void test_write_splits_into_frames_of_max_frame(void **state)
{
    peer *c = peer_new(true);
    yamux_stream *st = open_stream(c);
    clear_out(c);
    static uint8_t buf[40000];
    memset(buf, 0x5A, sizeof(buf));
    assert_int_equal(yamux_stream_write(st, buf, sizeof(buf)), 40000);
    static const uint8_t h1[] = {HDR(T_DATA, 0, 1, 16384)};
    static const uint8_t h3[] = {HDR(T_DATA, 0, 1, 7232)};
    assert_int_equal(c->out_len, 3 * 12 + 40000);
    assert_memory_equal(c->out, h1, 12);
    assert_memory_equal(c->out + 12 + 16384, h1, 12);
    assert_memory_equal(c->out + 2 * (12 + 16384), h3, 12);
    assert_int_equal(yamux_stream_send_window(st), YAMUX_INITIAL_WINDOW - 40000);
    peer_free(c);
}

/* A fixed conversation, as a server would receive it from a client. */
static const uint8_t conversation[] = {
    HDR(T_WU, F_SYN, 1, 0),
    HDR(T_DATA, 0, 1, 5),
    'h',
    'e',
    'l',
    'l',
    'o',
    HDR(T_DATA, F_SYN, 3, 2),
    'o',
    'k',
    HDR(T_PING, F_SYN, 0, 0x1234),
    HDR(T_DATA, 0, 9, 4),
    'z',
    'z',
    'z',
    'z', /* unknown stream: drained */
    HDR(T_WU, 0, 1, 100),
    HDR(T_DATA, F_FIN, 1, 3),
    'a',
    'b',
    'c',
    HDR(T_DATA, 0, 3, 0),
    HDR(T_WU, F_RST, 3, 0),
    HDR(T_GOAWAY, 0, 0, 0),
};

typedef struct outcome {
    char log[1024];
    uint8_t rx[64];
    size_t rx_len;
    uint8_t out[256];
    size_t out_len;
} outcome;

static void run_conversation(const size_t *cuts, size_t ncuts, outcome *o)
{
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : sizeof(conversation);
        assert_int_equal(feed(s, conversation + at, end - at), 0);
        at = end;
    }
    assert_true(s->rx_len <= sizeof(o->rx) && s->out_len <= sizeof(o->out));
    assert_true(s->log_len < sizeof(o->log));
    memcpy(o->log, s->log, s->log_len + 1);
    memcpy(o->rx, s->rx, s->rx_len);
    o->rx_len = s->rx_len;
    memcpy(o->out, s->out, s->out_len);
    o->out_len = s->out_len;
    assert_int_equal(s->goaways, 1);
    peer_free(s);
}

static void assert_same_outcome(const outcome *a, const outcome *b)
{
    assert_string_equal(a->log, b->log);
    assert_int_equal(a->rx_len, b->rx_len);
    assert_memory_equal(a->rx, b->rx, a->rx_len);
    assert_int_equal(a->out_len, b->out_len);
    assert_memory_equal(a->out, b->out, a->out_len);
}

static void test_frames_split_at_every_byte_boundary_give_same_result(void **state)
{
    static outcome whole, piece;
    static const size_t no_cuts[1];
    run_conversation(no_cuts, 0, &whole);
    assert_string_equal(whole.log, "stream 1;stream 3;fin 1;closed 3 remote-reset;");
    assert_int_equal(whole.rx_len, 10);
    assert_memory_equal(whole.rx, "hellookabc", 10);
    static const uint8_t out[] = {HDR(T_WU, F_ACK, 1, 0), HDR(T_WU, F_ACK, 3, 0),
                                  HDR(T_PING, F_ACK, 0, 0x1234)};
    assert_int_equal(whole.out_len, sizeof(out));
    assert_memory_equal(whole.out, out, sizeof(out));

    /* One byte at a time. */
    size_t cuts[sizeof(conversation)];
    for (size_t i = 0; i + 1 < sizeof(conversation); i++)
        cuts[i] = i + 1;
    run_conversation(cuts, sizeof(conversation) - 1, &piece);
    assert_same_outcome(&whole, &piece);
    /* Every two-piece split. */
    for (size_t i = 1; i < sizeof(conversation); i++) {
        run_conversation(&i, 1, &piece);
        assert_same_outcome(&whole, &piece);
    }
}

/* ---- Flow control ------------------------------------------------------------------------- */

static void test_writer_stops_at_window_and_resumes_after_half_consumed(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    yamux_stream *cs = open_stream(c);
    static uint8_t big[300 * 1024];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(yamux_stream_write(cs, big, sizeof(big)), YAMUX_INITIAL_WINDOW);
    assert_int_equal(yamux_stream_send_window(cs), 0);
    assert_int_equal(yamux_stream_write(cs, big, 1), 0);
    pump(c, s);
    assert_int_equal(s->rx_len, YAMUX_INITIAL_WINDOW);
    assert_memory_equal(s->rx, big, YAMUX_INITIAL_WINDOW);
    yamux_stream *ss = s->last_stream;

    /* Half the window minus one byte consumed: still no update. */
    assert_int_equal(yamux_stream_consumed(ss, YAMUX_INITIAL_WINDOW / 2 - 1), 0);
    assert_int_equal(s->out_len, 0);
    assert_int_equal(yamux_stream_consumed(ss, 1), 0);
    static const uint8_t wu[] = {HDR(T_WU, 0, 1, 0x20000)};
    assert_int_equal(s->out_len, sizeof(wu));
    assert_memory_equal(s->out, wu, sizeof(wu));
    assert_int_equal(c->writables, 0);
    pump(c, s);
    assert_int_equal(c->writables, 1);
    assert_int_equal(yamux_stream_send_window(cs), 0x20000);
    size_t rest = sizeof(big) - YAMUX_INITIAL_WINDOW;
    assert_int_equal(yamux_stream_write(cs, big + YAMUX_INITIAL_WINDOW, rest), rest);
    pump(c, s);
    assert_int_equal(s->rx_len, sizeof(big));
    assert_memory_equal(s->rx, big, sizeof(big));
    /* Consumed more than was delivered: refused. */
    assert_int_equal(yamux_stream_consumed(ss, sizeof(big)), YAMUX_EINVAL);
    peer_free(c);
    peer_free(s);
}

static void test_window_update_sent_on_consume_not_on_receipt(void **state)
{
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    static const uint8_t syn[] = {HDR(T_WU, F_SYN, 1, 0)};
    static uint8_t data[12 + 200000];
    const uint8_t h[] = {HDR(T_DATA, 0, 1, 200000)};
    memcpy(data, h, 12);
    assert_int_equal(feed(s, syn, sizeof(syn)), 0);
    clear_out(s);
    assert_int_equal(feed(s, data, sizeof(data)), 0);
    assert_int_equal(s->rx_len, 200000);
    assert_int_equal(s->out_len, 0); /* received 200000 > half, but nothing consumed */
    assert_int_equal(yamux_stream_consumed(s->last_stream, 100000), 0);
    assert_int_equal(s->out_len, 0);
    assert_int_equal(yamux_stream_consumed(s->last_stream, 100000), 0);
    static const uint8_t wu[] = {HDR(T_WU, 0, 1, 200000)};
    expect_out(s, wu, sizeof(wu));
    peer_free(s);
}

static void test_window_overrun_sends_goaway_protocol_error_and_fails(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t syn[] = {HDR(T_WU, F_SYN, 1, 0)};
    static uint8_t full[12 + YAMUX_INITIAL_WINDOW];
    const uint8_t h[] = {HDR(T_DATA, 0, 1, YAMUX_INITIAL_WINDOW)};
    memcpy(full, h, 12);
    static const uint8_t one_more[] = {HDR(T_DATA, 0, 1, 1), 'x'};
    assert_int_equal(feed(s, syn, sizeof(syn)), 0);
    assert_int_equal(yamux_stream_accept(s->last_stream), 0);
    clear_out(s);
    assert_int_equal(feed(s, full, sizeof(full)), 0); /* exactly the window: fine */
    int rc = feed(s, one_more, sizeof(one_more));
    static const uint8_t goaway[] = {0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
    assert_int_equal(s->out_len, 12);
    assert_memory_equal(s->out, goaway, 12);
    expect_failed_with_goaway(s, rc, YAMUX_EWINDOW);
    expect_log(s, "stream 1;closed 1 session;");
    /* Every call on the dead session reports why it died. */
    yamux_stream *st;
    assert_int_equal(yamux_stream_open(s->s, &st), YAMUX_EWINDOW);
    assert_int_equal(yamux_session_ping(s->s, 1), YAMUX_EWINDOW);
    peer_free(s);
}

static void test_window_overrun_in_single_frame_is_detected_at_header(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {HDR(T_WU, F_SYN, 1, 0),
                                 HDR(T_DATA, 0, 1, YAMUX_INITIAL_WINDOW + 1)};
    int rc = feed(s, in, sizeof(in));
    expect_failed_with_goaway(s, rc, YAMUX_EWINDOW);
    assert_int_equal(s->rx_len, 0);
    peer_free(s);
}

static void test_larger_window_is_advertised_in_syn_and_ack_delta(void **state)
{
    yamux_config cfg;
    yamux_config_init(&cfg, true);
    cfg.window = 1024 * 1024;
    peer *c = peer_new_cfg(&cfg);
    cfg.is_client = false;
    peer *s = peer_new_cfg(&cfg);
    s->on_stream_act = ACT_ACCEPT;

    yamux_stream *cs = open_stream(c);
    static const uint8_t syn[] = {0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                                  0x00, 0x01, 0x00, 0x0C, 0x00, 0x00}; /* delta 768 KiB */
    assert_int_equal(c->out_len, 12);
    assert_memory_equal(c->out, syn, 12);
    clear_out(c);
    assert_int_equal(feed(s, syn, sizeof(syn)), 0);
    static const uint8_t ack[] = {HDR(T_WU, F_ACK, 1, 0xC0000)};
    assert_int_equal(s->out_len, sizeof(ack));
    assert_memory_equal(s->out, ack, sizeof(ack));
    pump(c, s);
    /* The delta adds to the 256 KiB default on both sides. */
    assert_int_equal(yamux_stream_send_window(s->last_stream), 1024 * 1024);
    assert_int_equal(yamux_stream_send_window(cs), 1024 * 1024);

    /* The server may now send a whole MiB without overrunning the client. */
    static uint8_t mib[1024 * 1024];
    assert_int_equal(yamux_stream_write(s->last_stream, mib, sizeof(mib)), sizeof(mib));
    pump(c, s);
    assert_int_equal(c->rx_len, sizeof(mib));
    /* Threshold is half the configured window. */
    assert_int_equal(yamux_stream_consumed(cs, 512 * 1024 - 1), 0);
    assert_int_equal(c->out_len, 0);
    assert_int_equal(yamux_stream_consumed(cs, 1), 0);
    static const uint8_t wu[] = {HDR(T_WU, 0, 1, 512 * 1024)};
    expect_out(c, wu, sizeof(wu));
    peer_free(c);
    peer_free(s);
}

static void test_accept_ack_carries_window_surplus(void **state)
{
    yamux_config cfg;
    yamux_config_init(&cfg, false);
    cfg.window = 512 * 1024;
    peer *s = peer_new_cfg(&cfg);
    static const uint8_t in[] = {HDR(T_WU, F_SYN, 1, 0), HDR(T_DATA, 0, 1, 4), 1, 2, 3, 4};
    assert_int_equal(feed(s, in, sizeof(in)), 0);
    /* Consumed before accept: no update yet, it rides on the ACK. */
    assert_int_equal(yamux_stream_consumed(s->last_stream, 4), 0);
    assert_int_equal(s->out_len, 0);
    assert_int_equal(yamux_stream_accept(s->last_stream), 0);
    static const uint8_t ack[] = {HDR(T_WU, F_ACK, 1, 256 * 1024 + 4)};
    expect_out(s, ack, sizeof(ack));
    peer_free(s);
}

static void test_peer_syn_delta_adds_to_default_send_window(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {HDR(T_WU, F_SYN, 1, 1000)};
    assert_int_equal(feed(s, in, sizeof(in)), 0);
    assert_int_equal(yamux_stream_send_window(s->last_stream), YAMUX_INITIAL_WINDOW + 1000);
    peer_free(s);
}

/* ---- Half-close and reset ----------------------------------------------------------------- */

static void test_fin_local_first_then_remote_releases_stream(void **state)
{
    peer *c = peer_new(true);
    yamux_stream *st = open_stream(c);
    clear_out(c);
    assert_int_equal(yamux_stream_close(st), 0);
    static const uint8_t fin[] = {0x00, 0x01, 0x00, 0x04, 0x00, 0x00,
                                  0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    expect_out(c, fin, sizeof(fin));
    assert_int_equal(yamux_stream_close(st), 0); /* idempotent, sends nothing */
    assert_int_equal(c->out_len, 0);
    assert_int_equal(yamux_stream_write(st, "x", 1), YAMUX_ECLOSED);
    /* The peer may still talk, and still update our (closed) window. */
    static const uint8_t in[] = {HDR(T_WU, F_ACK, 1, 10), HDR(T_DATA, 0, 1, 2), 'o', 'k',
                                 HDR(T_WU, F_FIN, 1, 0)};
    assert_int_equal(feed(c, in, sizeof(in)), 0);
    assert_int_equal(c->rx_len, 2);
    expect_log(c, "fin 1;closed 1 normal;");
    /* Late updates for the finished stream are ignored. */
    static const uint8_t late[] = {HDR(T_WU, 0, 1, 10), HDR(T_DATA, 0, 1, 1), 'x'};
    assert_int_equal(feed(c, late, sizeof(late)), 0);
    assert_int_equal(c->rx_len, 2);
    assert_int_equal(c->log_len, 0);
    peer_free(c);
}

static void test_fin_remote_first_then_local_releases_stream(void **state)
{
    peer *c = peer_new(true);
    yamux_stream *st = open_stream(c);
    clear_out(c);
    static uint8_t in[12 + 200000];
    const uint8_t h[] = {HDR(T_DATA, F_ACK | F_FIN, 1, 200000)};
    memcpy(in, h, 12);
    assert_int_equal(feed(c, in, sizeof(in)), 0);
    expect_log(c, "fin 1;");
    assert_int_equal(c->rx_len, 200000);
    yamux_session_stats stats;
    yamux_session_get_stats(c->s, &stats);
    assert_int_equal(stats.open_streams, 1);
    /* Our direction is still open. */
    assert_int_equal(yamux_stream_write(st, "x", 1), 1);
    clear_out(c);
    /* No window update after the peer's FIN, however much is consumed: it sends no more. */
    assert_int_equal(yamux_stream_consumed(st, 200000), 0);
    assert_int_equal(c->out_len, 0);
    assert_int_equal(yamux_stream_close(st), 0);
    expect_log(c, "closed 1 normal;");
    yamux_session_get_stats(c->s, &stats);
    assert_int_equal(stats.open_streams, 0);
    peer_free(c);
}

static void test_data_after_peer_fin_is_protocol_error(void **state)
{
    peer *c = peer_new(true);
    open_stream(c);
    clear_out(c);
    static const uint8_t in[] = {HDR(T_WU, F_FIN, 1, 0), HDR(T_DATA, 0, 1, 1), 'x'};
    int rc = feed(c, in, sizeof(in));
    expect_failed_with_goaway(c, rc, YAMUX_EPROTO);
    peer_free(c);
}

static void test_inbound_rst_closes_stream_as_remote_reset(void **state)
{
    peer *c = peer_new(true);
    open_stream(c);
    static const uint8_t rst[] = {HDR(T_WU, F_RST, 1, 0)};
    assert_int_equal(feed(c, rst, sizeof(rst)), 0);
    expect_log(c, "closed 1 remote-reset;");
    assert_int_equal(c->last_reason, YAMUX_CLOSE_REMOTE_RESET);
    yamux_session_stats stats;
    yamux_session_get_stats(c->s, &stats);
    assert_int_equal(stats.open_streams, 0);
    peer_free(c);
}

static void test_local_reset_sends_rst_and_drains_later_frames(void **state)
{
    peer *c = peer_new(true);
    yamux_stream *st = open_stream(c);
    clear_out(c);
    assert_int_equal(yamux_stream_reset(st), 0);
    static const uint8_t rst[] = {0x00, 0x01, 0x00, 0x08, 0x00, 0x00,
                                  0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    expect_out(c, rst, sizeof(rst));
    expect_log(c, "closed 1 local-reset;");
    /* Data the peer sent before it saw the RST is drained, the frame after it is still parsed. */
    static const uint8_t in[] = {HDR(T_DATA, 0, 1, 3), 'a', 'b', 'c', HDR(T_PING, F_SYN, 0, 9)};
    assert_int_equal(feed(c, in, sizeof(in)), 0);
    assert_int_equal(c->rx_len, 0);
    static const uint8_t pong[] = {HDR(T_PING, F_ACK, 0, 9)};
    expect_out(c, pong, sizeof(pong));
    peer_free(c);
}

static void test_rst_between_sessions_reaches_both_sides(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    yamux_stream *cs = open_stream(c);
    pump(c, s);
    assert_int_equal(yamux_stream_reset(cs), 0);
    pump(c, s);
    expect_log(c, "closed 1 local-reset;");
    expect_log(s, "stream 1;closed 1 remote-reset;");
    peer_free(c);
    peer_free(s);
}

/* ---- Protocol errors ---------------------------------------------------------------------- */

static void test_duplicate_syn_is_protocol_error(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {HDR(T_WU, F_SYN, 1, 0), HDR(T_DATA, F_SYN, 1, 0)};
    int rc = feed(s, in, sizeof(in));
    expect_failed_with_goaway(s, rc, YAMUX_EDUPSYN);
    expect_log(s, "stream 1;closed 1 session;");
    peer_free(s);
}

static void test_syn_with_wrong_parity_is_protocol_error(void **state)
{
    /* A server only accepts odd ids, a client only even ones. */
    peer *s = peer_new(false);
    static const uint8_t even[] = {HDR(T_WU, F_SYN, 2, 0)};
    expect_failed_with_goaway(s, feed(s, even, sizeof(even)), YAMUX_EBADID);
    peer_free(s);

    peer *c = peer_new(true);
    static const uint8_t odd[] = {HDR(T_WU, F_SYN, 1, 0)};
    expect_failed_with_goaway(c, feed(c, odd, sizeof(odd)), YAMUX_EBADID);
    peer_free(c);

    c = peer_new(true);
    static const uint8_t zero[] = {HDR(T_WU, F_SYN, 0, 0)};
    expect_failed_with_goaway(c, feed(c, zero, sizeof(zero)), YAMUX_EBADID);
    peer_free(c);
}

static void test_data_on_stream_zero_is_protocol_error(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {HDR(T_DATA, 0, 0, 1), 'x'};
    expect_failed_with_goaway(s, feed(s, in, sizeof(in)), YAMUX_EBADID);
    peer_free(s);
}

static void test_bad_version_is_protocol_error(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {0x01, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_failed_with_goaway(s, feed(s, in, sizeof(in)), YAMUX_EVERSION);
    peer_free(s);
}

static void test_unknown_type_is_protocol_error(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_failed_with_goaway(s, feed(s, in, sizeof(in)), YAMUX_ETYPE);
    peer_free(s);
}

static void test_unknown_stream_frames_are_drained_and_ignored(void **state)
{
    peer *c = peer_new(true);
    static const uint8_t in[] = {HDR(T_DATA, 0, 7, 5),
                                 'x',
                                 'x',
                                 'x',
                                 'x',
                                 'x',
                                 HDR(T_WU, F_FIN, 9, 77),
                                 HDR(T_WU, F_RST, 11, 0),
                                 HDR(T_WU, 0, 0, 5),
                                 HDR(T_PING, F_SYN, 0, 1)};
    /* Split inside the drained payload too. */
    assert_int_equal(feed(c, in, 15), 0);
    assert_int_equal(feed(c, in + 15, sizeof(in) - 15), 0);
    assert_int_equal(c->rx_len, 0);
    assert_int_equal(c->log_len, 0);
    static const uint8_t pong[] = {HDR(T_PING, F_ACK, 0, 1)};
    expect_out(c, pong, sizeof(pong));
    peer_free(c);
}

static void test_send_failure_fails_session_and_closes_streams(void **state)
{
    peer *c = peer_new(true);
    yamux_stream *st = open_stream(c);
    c->send_fail = 1;
    assert_int_equal(yamux_stream_write(st, "abc", 3), YAMUX_ETRANSPORT);
    expect_log(c, "closed 1 session;");
    assert_int_equal(yamux_session_error(c->s), YAMUX_ETRANSPORT);
    static const uint8_t ping[] = {HDR(T_PING, F_SYN, 0, 1)};
    assert_int_equal(feed(c, ping, sizeof(ping)), YAMUX_ETRANSPORT);
    yamux_stream *st2 = NULL;
    assert_int_equal(yamux_stream_open(c->s, &st2), YAMUX_ETRANSPORT);
    assert_null(st2);
    peer_free(c);
}

/* ---- Ping and GoAway ---------------------------------------------------------------------- */

static void test_ping_ack_reports_rtt_from_callers_clock(void **state)
{
    peer *c = peer_new(true);
    assert_int_equal(yamux_session_ping(c->s, 1000), 0);
    static const uint8_t ping[] = {0x00, 0x02, 0x00, 0x01, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
    expect_out(c, ping, sizeof(ping));
    assert_true(yamux_session_ping_outstanding(c->s));
    /* An ACK for some other value is not ours. */
    static const uint8_t stale[] = {HDR(T_PING, F_ACK, 0, 0)};
    yamux_session_set_now(c->s, 1010);
    assert_int_equal(feed(c, stale, sizeof(stale)), 0);
    assert_int_equal(c->pongs, 0);
    yamux_session_set_now(c->s, 1042);
    static const uint8_t pong[] = {HDR(T_PING, F_ACK, 0, 1)};
    assert_int_equal(feed(c, pong, sizeof(pong)), 0);
    assert_int_equal(c->pongs, 1);
    assert_int_equal(c->last_rtt, 42);
    assert_false(yamux_session_ping_outstanding(c->s));
    /* A duplicate ACK is not a second pong. */
    assert_int_equal(feed(c, pong, sizeof(pong)), 0);
    assert_int_equal(c->pongs, 1);
    /* The next ping carries a fresh value. */
    assert_int_equal(yamux_session_ping(c->s, 2000), 0);
    static const uint8_t ping2[] = {HDR(T_PING, F_SYN, 0, 2)};
    expect_out(c, ping2, sizeof(ping2));
    peer_free(c);
}

static void test_ping_between_sessions_round_trips(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    assert_int_equal(yamux_session_ping(c->s, 5), 0);
    yamux_session_set_now(c->s, 12);
    pump(c, s);
    assert_int_equal(c->pongs, 1);
    assert_int_equal(c->last_rtt, 7);
    peer_free(c);
    peer_free(s);
}

static void test_inbound_ping_answered_with_ack_echoing_value(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t ping[] = {0x00, 0x02, 0x00, 0x01, 0x00, 0x00,
                                   0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF};
    static const uint8_t ack[] = {0x00, 0x02, 0x00, 0x02, 0x00, 0x00,
                                  0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF};
    assert_int_equal(feed(s, ping, sizeof(ping)), 0);
    expect_out(s, ack, sizeof(ack));
    assert_int_equal(s->pongs, 0);
    peer_free(s);
}

static void test_goaway_out_refuses_new_streams_both_ways(void **state)
{
    peer *c = peer_new(true);
    yamux_stream *st = open_stream(c);
    clear_out(c);
    assert_int_equal(yamux_session_goaway(c->s, YAMUX_GOAWAY_NORMAL), 0);
    static const uint8_t goaway[] = {0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    expect_out(c, goaway, sizeof(goaway));
    assert_int_equal(yamux_session_goaway(c->s, YAMUX_GOAWAY_NORMAL), 0);
    assert_int_equal(c->out_len, 0);
    yamux_stream *st2;
    assert_int_equal(yamux_stream_open(c->s, &st2), YAMUX_EGOAWAY);
    /* The peer's new stream is refused with RST, as hashicorp does after its own GoAway. */
    static const uint8_t syn[] = {HDR(T_WU, F_SYN, 2, 0)};
    static const uint8_t rst[] = {HDR(T_WU, F_RST, 2, 0)};
    assert_int_equal(feed(c, syn, sizeof(syn)), 0);
    expect_out(c, rst, sizeof(rst));
    assert_int_equal(c->log_len, 0);
    /* The existing stream carries on. */
    assert_int_equal(yamux_stream_write(st, "ok", 2), 2);
    yamux_session_stats stats;
    yamux_session_get_stats(c->s, &stats);
    assert_true(stats.goaway_sent);
    assert_false(stats.goaway_received);
    peer_free(c);
}

static void test_goaway_in_is_reported_and_open_refused_after(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    yamux_stream *cs = open_stream(c);
    pump(c, s);
    assert_int_equal(yamux_session_goaway(s->s, YAMUX_GOAWAY_INTERNAL_ERROR), 0);
    pump(c, s);
    assert_int_equal(c->goaways, 1);
    assert_int_equal(c->last_goaway, YAMUX_GOAWAY_INTERNAL_ERROR);
    yamux_stream *st2;
    assert_int_equal(yamux_stream_open(c->s, &st2), YAMUX_EGOAWAY);
    assert_int_equal(yamux_stream_write(cs, "still", 5), 5);
    pump(c, s);
    assert_int_equal(s->rx_len, 5);
    yamux_session_stats stats;
    yamux_session_get_stats(c->s, &stats);
    assert_true(stats.goaway_received);
    assert_int_equal(yamux_session_error(c->s), 0);
    peer_free(c);
    peer_free(s);
}

/* ---- Limits ------------------------------------------------------------------------------- */

static void test_full_accept_backlog_answers_rst(void **state)
{
    yamux_config cfg;
    yamux_config_init(&cfg, false);
    cfg.accept_backlog = 2;
    peer *s = peer_new_cfg(&cfg);
    static const uint8_t in[] = {HDR(T_WU, F_SYN, 1, 0), HDR(T_WU, F_SYN, 3, 0),
                                 HDR(T_DATA, F_SYN, 5, 2), 'h', 'i'};
    assert_int_equal(feed(s, in, sizeof(in)), 0);
    expect_log(s, "stream 1;stream 3;");
    static const uint8_t rst5[] = {0x00, 0x01, 0x00, 0x08, 0x00, 0x00,
                                   0x00, 0x05, 0x00, 0x00, 0x00, 0x00};
    expect_out(s, rst5, sizeof(rst5));
    assert_int_equal(s->rx_len, 0); /* the refused SYN's payload was drained */
    /* Accepting one frees a backlog slot. */
    assert_int_equal(yamux_stream_accept(s->last_stream), 0);
    clear_out(s);
    static const uint8_t syn7[] = {HDR(T_WU, F_SYN, 7, 0)};
    assert_int_equal(feed(s, syn7, sizeof(syn7)), 0);
    expect_log(s, "stream 7;");
    assert_int_equal(s->out_len, 0);
    /* So does a pending stream that the peer resets before we decide. */
    static const uint8_t more[] = {HDR(T_WU, F_SYN, 9, 0), HDR(T_WU, F_RST, 7, 0),
                                   HDR(T_WU, F_SYN, 11, 0)};
    assert_int_equal(feed(s, more, sizeof(more)), 0);
    static const uint8_t rst9[] = {HDR(T_WU, F_RST, 9, 0)};
    expect_out(s, rst9, sizeof(rst9));
    expect_log(s, "closed 7 remote-reset;stream 11;");
    yamux_session_stats stats;
    yamux_session_get_stats(s->s, &stats);
    assert_int_equal(stats.pending_accept, 2);
    assert_int_equal(stats.open_streams, 3);
    peer_free(s);
}

static void test_max_streams_limits_open_and_inbound(void **state)
{
    yamux_config cfg;
    yamux_config_init(&cfg, true);
    cfg.max_streams = 2;
    peer *c = peer_new_cfg(&cfg);
    yamux_stream *a = open_stream(c);
    open_stream(c);
    yamux_stream *st;
    assert_int_equal(yamux_stream_open(c->s, &st), YAMUX_ELIMIT);
    clear_out(c);
    static const uint8_t syn[] = {HDR(T_WU, F_SYN, 2, 0)};
    static const uint8_t rst[] = {HDR(T_WU, F_RST, 2, 0)};
    assert_int_equal(feed(c, syn, sizeof(syn)), 0);
    expect_out(c, rst, sizeof(rst));
    /* A finished stream frees its slot. */
    assert_int_equal(yamux_stream_reset(a), 0);
    clear_out(c);
    st = open_stream(c);
    assert_int_equal(yamux_stream_id(st), 5);
    peer_free(c);
}

static void test_thousands_of_streams_stay_addressable(void **state)
{
    /* Exercises the id table through growth and deletions in the middle of probe runs. */
    peer *c = peer_new(true);
    c->nolog = true;
    enum { N = 3000 };
    static yamux_stream *st[N];
    for (int i = 0; i < N; i++)
        st[i] = open_stream(c);
    for (int i = 0; i < N; i += 3)
        assert_int_equal(yamux_stream_reset(st[i]), 0);
    clear_out(c);
    clear_log(c);
    /* One byte to every stream id: reset ones are drained, live ones deliver. */
    for (int i = 0; i < N; i++) {
        const uint8_t f[] = {HDR(T_DATA, 0, 2 * i + 1, 1), (uint8_t)i};
        assert_int_equal(feed(c, f, sizeof(f)), 0);
    }
    assert_int_equal(c->rx_len, N - N / 3);
    yamux_session_stats stats;
    yamux_session_get_stats(c->s, &stats);
    assert_int_equal(stats.open_streams, N - N / 3);
    for (int i = 1; i < N; i += 3)
        assert_int_equal(yamux_stream_reset(st[i]), 0);
    for (int i = 2; i < N; i += 3) {
        const uint8_t f[] = {HDR(T_WU, F_RST, 2 * i + 1, 0)};
        assert_int_equal(feed(c, f, sizeof(f)), 0);
    }
    yamux_session_get_stats(c->s, &stats);
    assert_int_equal(stats.open_streams, 0);
    /* Emptied, the table is given back; the next stream builds a small one again. */
    yamux_stream *again = open_stream(c);
    const uint8_t f[] = {HDR(T_DATA, 0, yamux_stream_id(again), 1), 'k'};
    size_t before = c->rx_len;
    assert_int_equal(feed(c, f, sizeof(f)), 0);
    assert_int_equal(c->rx_len, before + 1);
    peer_free(c);
}

/* ---- Re-entrancy -------------------------------------------------------------------------- */

static void test_reset_from_on_data_drains_rest_of_frame(void **state)
{
    peer *c = peer_new(true);
    c->on_data_act = ACT_RESET;
    open_stream(c);
    clear_out(c);
    static const uint8_t in[] = {
        HDR(T_DATA, 0, 1, 6),    'a', 'b', 'c', 'd', 'e', 'f', HDR(T_DATA, F_FIN, 1, 1), 'g',
        HDR(T_PING, F_SYN, 0, 3)};
    /* The first piece stops mid-payload; the rest of it belongs to a dead stream. */
    assert_int_equal(feed(c, in, 14), 0);
    expect_log(c, "closed 1 local-reset;");
    assert_int_equal(feed(c, in + 14, sizeof(in) - 14), 0);
    assert_int_equal(c->rx_len, 2);
    assert_int_equal(c->log_len, 0);
    static const uint8_t out[] = {HDR(T_WU, F_RST, 1, 0), HDR(T_PING, F_ACK, 0, 3)};
    expect_out(c, out, sizeof(out));
    peer_free(c);
}

static void test_close_from_on_data_and_fin_in_same_frame(void **state)
{
    peer *c = peer_new(true);
    c->on_data_act = ACT_CLOSE;
    open_stream(c);
    clear_out(c);
    static const uint8_t in[] = {HDR(T_DATA, F_FIN, 1, 2), 'o', 'k'};
    assert_int_equal(feed(c, in, sizeof(in)), 0);
    expect_log(c, "fin 1;closed 1 normal;");
    static const uint8_t fin[] = {HDR(T_WU, F_FIN, 1, 0)};
    expect_out(c, fin, sizeof(fin));
    peer_free(c);
}

static void test_reset_from_on_stream_refuses_and_drains_syn_payload(void **state)
{
    peer *s = peer_new(false);
    s->on_stream_act = ACT_RESET;
    static const uint8_t in[] = {HDR(T_DATA, F_SYN | F_FIN, 1, 3), 'a', 'b', 'c'};
    assert_int_equal(feed(s, in, sizeof(in)), 0);
    expect_log(s, "stream 1;closed 1 local-reset;");
    assert_int_equal(s->rx_len, 0);
    static const uint8_t rst[] = {HDR(T_WU, F_RST, 1, 0)};
    expect_out(s, rst, sizeof(rst));
    peer_free(s);
}

static void test_close_from_on_fin_finishes_stream_once(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    s->on_fin_act = ACT_CLOSE;
    yamux_stream *cs = open_stream(c);
    assert_int_equal(yamux_stream_close(cs), 0);
    pump(c, s);
    expect_log(s, "stream 1;fin 1;closed 1 normal;");
    expect_log(c, "fin 1;closed 1 normal;");
    peer_free(c);
    peer_free(s);
}

static void test_reset_from_on_writable(void **state)
{
    peer *c = peer_new(true);
    c->on_writable_act = ACT_RESET;
    yamux_stream *st = open_stream(c);
    static uint8_t big[YAMUX_INITIAL_WINDOW + 1];
    assert_int_equal(yamux_stream_write(st, big, sizeof(big)), YAMUX_INITIAL_WINDOW);
    clear_out(c);
    static const uint8_t in[] = {HDR(T_WU, 0, 1, 10), HDR(T_WU, 0, 1, 10)};
    assert_int_equal(feed(c, in, sizeof(in)), 0);
    expect_log(c, "writable 1;closed 1 local-reset;");
    assert_int_equal(c->writables, 1);
    peer_free(c);
}

static void test_accept_write_close_from_on_stream(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT_WRITE_CLOSE;
    open_stream(c);
    pump(c, s);
    expect_log(c, "fin 1;");
    assert_int_equal(c->rx_len, 2);
    assert_memory_equal(c->rx, "hi", 2);
    peer_free(c);
    peer_free(s);
}

static void test_open_from_on_data_callback(void **state)
{
    peer *c = peer_new(true);
    peer *s = peer_new(false);
    s->on_stream_act = ACT_ACCEPT;
    c->on_stream_act = ACT_ACCEPT;
    s->on_data_act = ACT_OPEN;
    yamux_stream *cs = open_stream(c);
    assert_int_equal(yamux_stream_write(cs, "x", 1), 1);
    pump(c, s);
    assert_non_null(s->opened_in_cb);
    assert_int_equal(yamux_stream_id(s->opened_in_cb), 2);
    expect_log(c, "stream 2;");
    peer_free(c);
    peer_free(s);
}

static void test_calls_from_on_closed_see_a_closed_stream(void **state)
{
    peer *c = peer_new(true);
    c->write_in_closed = true;
    yamux_stream *st = open_stream(c);
    assert_int_equal(yamux_stream_reset(st), 0);
    assert_int_equal(c->write_in_closed_rc, YAMUX_ECLOSED);
    peer_free(c);
}

static void test_feed_from_callback_is_refused(void **state)
{
    peer *c = peer_new(true);
    c->feed_in_data = true;
    open_stream(c);
    static const uint8_t in[] = {HDR(T_DATA, 0, 1, 1), 'a'};
    assert_int_equal(feed(c, in, sizeof(in)), 0);
    assert_int_equal(c->feed_in_data_rc, YAMUX_EBUSY);
    peer_free(c);
}

static void test_free_closes_live_streams_with_session_reason(void **state)
{
    peer *c = peer_new(true);
    c->write_in_closed = true;
    open_stream(c);
    open_stream(c);
    yamux_session_free(c->s);
    c->s = NULL;
    assert_string_equal(c->log, "closed 3 session;closed 1 session;");
    assert_int_equal(c->write_in_closed_rc, YAMUX_ECLOSED);
    assert_int_equal(c->closed_per_seen[0], 1);
    assert_int_equal(c->closed_per_seen[1], 1);
    free(c->out);
    free(c);
}

static void test_unaccepted_stream_gets_data_and_fin_before_accept(void **state)
{
    peer *s = peer_new(false);
    static const uint8_t in[] = {HDR(T_WU, F_SYN, 1, 0), HDR(T_DATA, F_FIN, 1, 3), 'G', 'E', 'T'};
    assert_int_equal(feed(s, in, sizeof(in)), 0);
    expect_log(s, "stream 1;fin 1;");
    assert_int_equal(s->rx_len, 3);
    assert_int_equal(yamux_stream_close(s->last_stream), YAMUX_ESTATE);
    assert_int_equal(yamux_stream_accept(s->last_stream), 0);
    assert_int_equal(yamux_stream_write(s->last_stream, "200", 3), 3);
    assert_int_equal(yamux_stream_close(s->last_stream), 0);
    expect_log(s, "closed 1 normal;");
    static const uint8_t out[] = {HDR(T_WU, F_ACK, 1, 0), HDR(T_DATA, 0, 1, 3), '2', '0', '0',
                                  HDR(T_WU, F_FIN, 1, 0)};
    expect_out(s, out, sizeof(out));
    peer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_encode_is_big_endian),
        cmocka_unit_test(test_header_decode_reads_every_field),
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_config_rejects_window_below_default_and_missing_send),
        cmocka_unit_test(test_client_open_sends_window_update_syn_id1_delta0),
        cmocka_unit_test(test_server_open_uses_even_ids_from_2),
        cmocka_unit_test(test_server_accept_sends_window_update_ack),
        cmocka_unit_test(test_client_sees_ack_from_server),
        cmocka_unit_test(test_data_frame_with_syn_opens_stream_and_delivers_payload),
        cmocka_unit_test(test_data_round_trip_and_close_between_two_sessions),
        cmocka_unit_test(test_write_splits_into_frames_of_max_frame),
        cmocka_unit_test(test_frames_split_at_every_byte_boundary_give_same_result),
        cmocka_unit_test(test_writer_stops_at_window_and_resumes_after_half_consumed),
        cmocka_unit_test(test_window_update_sent_on_consume_not_on_receipt),
        cmocka_unit_test(test_window_overrun_sends_goaway_protocol_error_and_fails),
        cmocka_unit_test(test_window_overrun_in_single_frame_is_detected_at_header),
        cmocka_unit_test(test_larger_window_is_advertised_in_syn_and_ack_delta),
        cmocka_unit_test(test_accept_ack_carries_window_surplus),
        cmocka_unit_test(test_peer_syn_delta_adds_to_default_send_window),
        cmocka_unit_test(test_fin_local_first_then_remote_releases_stream),
        cmocka_unit_test(test_fin_remote_first_then_local_releases_stream),
        cmocka_unit_test(test_data_after_peer_fin_is_protocol_error),
        cmocka_unit_test(test_inbound_rst_closes_stream_as_remote_reset),
        cmocka_unit_test(test_local_reset_sends_rst_and_drains_later_frames),
        cmocka_unit_test(test_rst_between_sessions_reaches_both_sides),
        cmocka_unit_test(test_duplicate_syn_is_protocol_error),
        cmocka_unit_test(test_syn_with_wrong_parity_is_protocol_error),
        cmocka_unit_test(test_data_on_stream_zero_is_protocol_error),
        cmocka_unit_test(test_bad_version_is_protocol_error),
        cmocka_unit_test(test_unknown_type_is_protocol_error),
        cmocka_unit_test(test_unknown_stream_frames_are_drained_and_ignored),
        cmocka_unit_test(test_send_failure_fails_session_and_closes_streams),
        cmocka_unit_test(test_ping_ack_reports_rtt_from_callers_clock),
        cmocka_unit_test(test_ping_between_sessions_round_trips),
        cmocka_unit_test(test_inbound_ping_answered_with_ack_echoing_value),
        cmocka_unit_test(test_goaway_out_refuses_new_streams_both_ways),
        cmocka_unit_test(test_goaway_in_is_reported_and_open_refused_after),
        cmocka_unit_test(test_full_accept_backlog_answers_rst),
        cmocka_unit_test(test_max_streams_limits_open_and_inbound),
        cmocka_unit_test(test_thousands_of_streams_stay_addressable),
        cmocka_unit_test(test_reset_from_on_data_drains_rest_of_frame),
        cmocka_unit_test(test_close_from_on_data_and_fin_in_same_frame),
        cmocka_unit_test(test_reset_from_on_stream_refuses_and_drains_syn_payload),
        cmocka_unit_test(test_close_from_on_fin_finishes_stream_once),
        cmocka_unit_test(test_reset_from_on_writable),
        cmocka_unit_test(test_accept_write_close_from_on_stream),
        cmocka_unit_test(test_open_from_on_data_callback),
        cmocka_unit_test(test_calls_from_on_closed_see_a_closed_stream),
        cmocka_unit_test(test_feed_from_callback_is_refused),
        cmocka_unit_test(test_free_closes_live_streams_with_session_reason),
        cmocka_unit_test(test_unaccepted_stream_gets_data_and_fin_before_accept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
