/*
 * common/ws.c in stream mode, the tunnel's data path: frames parsed, unmasked and built by our
 * fast path, control frames answered by wslay. A transport that records what it is given stands
 * in for the socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ws.h"

typedef struct rig {
    ws_t *ws;
    uint8_t out[1 << 20]; /* what the ws wrote to its transport */
    size_t out_len;
    uint8_t got[1 << 20]; /* what on_data delivered */
    size_t got_len;
    int closing;
    int closed;
    uint16_t close_code;
} rig_t;

static long t_write(void *t, const uv_buf_t *bufs, unsigned n)
{
    rig_t *r = t;
    for (unsigned i = 0; i < n; i++) {
        assert_true(r->out_len + bufs[i].len <= sizeof(r->out));
        memcpy(r->out + r->out_len, bufs[i].base, bufs[i].len);
        r->out_len += bufs[i].len;
    }
    return 0;
}

static void t_pause(void *t, int paused)
{
    (void)t;
    (void)paused;
}

static void t_close(void *t)
{
    ((rig_t *)t)->closing = 1;
}

static const ws_transport_t transport = {t_write, t_pause, t_close};

static void on_data(void *arg, const uint8_t *data, size_t len)
{
    rig_t *r = arg;
    assert_true(r->got_len + len <= sizeof(r->got));
    memcpy(r->got + r->got_len, data, len);
    r->got_len += len;
}

static void on_close(void *arg, uint16_t code)
{
    rig_t *r = arg;
    r->closed = 1;
    r->close_code = code;
}

static const ws_callbacks_t callbacks = {.on_data = on_data, .on_close = on_close};
static const ws_options_t stream = {.mode = WS_STREAM};

static rig_t *rig_server(void)
{
    rig_t *r = calloc(1, sizeof(*r));
    r->ws = ws_server_new(&transport, r, &stream, &callbacks, r);
    assert_non_null(r->ws);
    return r;
}

static void rig_free(rig_t *r)
{
    ws_transport_closed(r->ws);
    free(r);
}

/* A client frame: FIN + opcode, masked with a fixed key, 7/16/64-bit length as needed. */
static size_t frame(uint8_t *out, int fin, int opcode, int masked, const uint8_t *p, size_t n)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (n < 126) {
        out[h++] = (uint8_t)(m | n);
    } else if (n < 65536) {
        out[h++] = m | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (masked) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++)
        out[h + i] = masked ? p[i] ^ key[i % 4] : p[i];
    return h + n;
}

/* The close code of the close frame the ws wrote (server frames are unmasked), or 0. */
static unsigned close_code_sent(const rig_t *r)
{
    for (size_t i = 0; i + 4 <= r->out_len;) {
        uint8_t op = r->out[i] & 0x0f;
        size_t len = r->out[i + 1] & 0x7f, h = 2;
        if (len == 126) {
            len = (size_t)r->out[i + 2] << 8 | r->out[i + 3];
            h = 4;
        }
        if (op == 8)
            return (unsigned)r->out[i + h] << 8 | r->out[i + h + 1];
        i += h + len;
    }
    return 0;
}

static void test_masked_binary_frames_split_at_every_byte_arrive_whole(void **state)
{
    (void)state;
    rig_t *r = rig_server();
    uint8_t payload[70000], wire[71000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    size_t n = frame(wire, 1, 2, 1, payload, sizeof(payload));        /* 64-bit length */
    n += frame(wire + n, 1, 2, 1, payload, 300);                      /* 16-bit length */
    n += frame(wire + n, 1, 2, 1, payload, 5);                        /* 7-bit length */
    for (size_t i = 0; i < n; i++)
        ws_feed(r->ws, wire + i, 1);
    assert_int_equal(r->got_len, sizeof(payload) + 305);
    assert_memory_equal(r->got, payload, sizeof(payload));
    assert_memory_equal(r->got + sizeof(payload), payload, 300);
    assert_memory_equal(r->got + sizeof(payload) + 300, payload, 5);
    assert_false(r->closing);
    rig_free(r);
}

static void test_fragmented_message_with_a_ping_in_the_middle(void **state)
{
    (void)state;
    rig_t *r = rig_server();
    uint8_t wire[256];
    size_t n = frame(wire, 0, 2, 1, (const uint8_t *)"abc", 3);
    n += frame(wire + n, 1, 9, 1, (const uint8_t *)"hi", 2);   /* ping between fragments */
    n += frame(wire + n, 1, 0, 1, (const uint8_t *)"def", 3); /* continuation, final */
    ws_feed(r->ws, wire, n);
    assert_int_equal(r->got_len, 6);
    assert_memory_equal(r->got, "abcdef", 6);
    /* wslay answered the ping with a pong carrying the same payload. */
    assert_int_equal(r->out_len, 4);
    assert_int_equal(r->out[0], 0x8a);
    assert_memory_equal(r->out + 2, "hi", 2);
    rig_free(r);
}

static void test_unmasked_client_frame_is_a_protocol_error(void **state)
{
    (void)state;
    rig_t *r = rig_server();
    uint8_t wire[64];
    size_t n = frame(wire, 1, 2, 0, (const uint8_t *)"oops", 4);
    ws_feed(r->ws, wire, n);
    assert_int_equal(r->got_len, 0);
    assert_int_equal(close_code_sent(r), WS_CLOSE_PROTOCOL_ERROR);
    assert_true(r->closing);
    rig_free(r);
}

static void test_text_frame_is_refused_with_1003(void **state)
{
    (void)state;
    rig_t *r = rig_server();
    uint8_t wire[64];
    size_t n = frame(wire, 1, 1, 1, (const uint8_t *)"{}", 2);
    ws_feed(r->ws, wire, n);
    assert_int_equal(r->got_len, 0);
    assert_int_equal(close_code_sent(r), WS_CLOSE_UNSUPPORTED);
    rig_free(r);
}

static void test_continuation_without_a_message_and_reserved_bits_are_errors(void **state)
{
    (void)state;
    uint8_t wire[64];
    rig_t *r = rig_server();
    size_t n = frame(wire, 1, 0, 1, (const uint8_t *)"x", 1);
    ws_feed(r->ws, wire, n);
    assert_int_equal(close_code_sent(r), WS_CLOSE_PROTOCOL_ERROR);
    rig_free(r);
    r = rig_server();
    n = frame(wire, 1, 2, 1, (const uint8_t *)"x", 1);
    wire[0] |= 0x40; /* RSV1 without a negotiated extension */
    ws_feed(r->ws, wire, n);
    assert_int_equal(close_code_sent(r), WS_CLOSE_PROTOCOL_ERROR);
    assert_int_equal(r->got_len, 0);
    rig_free(r);
}

static void test_oversized_control_frame_is_an_error(void **state)
{
    (void)state;
    rig_t *r = rig_server();
    uint8_t payload[200] = {0}, wire[256];
    size_t n = frame(wire, 1, 9, 1, payload, sizeof(payload));
    ws_feed(r->ws, wire, n);
    assert_int_equal(close_code_sent(r), WS_CLOSE_PROTOCOL_ERROR);
    rig_free(r);
}

static void test_peer_close_is_answered_and_nothing_after_it_is_delivered(void **state)
{
    (void)state;
    rig_t *r = rig_server();
    uint8_t wire[64];
    const uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
    size_t n = frame(wire, 1, 8, 1, code, 2);
    n += frame(wire + n, 1, 2, 1, (const uint8_t *)"late", 4);
    ws_feed(r->ws, wire, n);
    assert_int_equal(r->got_len, 0);
    assert_int_equal(close_code_sent(r), 1000);
    assert_true(r->closing);
    rig_free(r);
}

static void test_server_frames_are_unmasked_with_the_right_length_form(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 125, 126, 65535, 65536};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        rig_t *r = rig_server();
        uint8_t *p = calloc(1, sizes[k] + 1);
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)sizes[k]);
        assert_int_equal(ws_sendv(r->ws, &b, 1), 0);
        size_t h = sizes[k] < 126 ? 2 : sizes[k] < 65536 ? 4 : 10;
        assert_int_equal(r->out_len, h + sizes[k]);
        assert_int_equal(r->out[0], 0x82);
        assert_int_equal(r->out[1] & 0x80, 0); /* servers do not mask */
        free(p);
        rig_free(r);
    }
}

/* What a client sends (masked) is exactly what a server receives: our two fast paths agree. */
static void test_client_frames_round_trip_into_a_server(void **state)
{
    (void)state;
    rig_t *client = calloc(1, sizeof(*client));
    client->ws = ws_client_new(&transport, client, &stream, &callbacks, client);
    rig_t *server = rig_server();
    uint8_t a[3000], b[40000];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(255 - i);
    uv_buf_t bufs[2] = {uv_buf_init((char *)a, sizeof(a)), uv_buf_init((char *)b, sizeof(b))};
    assert_int_equal(ws_sendv(client->ws, bufs, 2), 0);
    assert_int_equal(ws_sendv(client->ws, bufs, 1), 0);
    assert_int_equal(client->out[1] & 0x80, 0x80); /* clients mask */
    ws_feed(server->ws, client->out, client->out_len);
    assert_int_equal(server->got_len, sizeof(a) + sizeof(b) + sizeof(a));
    assert_memory_equal(server->got, a, sizeof(a));
    assert_memory_equal(server->got + sizeof(a), b, sizeof(b));
    assert_memory_equal(server->got + sizeof(a) + sizeof(b), a, sizeof(a));
    assert_false(server->closing);
    rig_free(server);
    rig_free(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masked_binary_frames_split_at_every_byte_arrive_whole),
        cmocka_unit_test(test_fragmented_message_with_a_ping_in_the_middle),
        cmocka_unit_test(test_unmasked_client_frame_is_a_protocol_error),
        cmocka_unit_test(test_text_frame_is_refused_with_1003),
        cmocka_unit_test(test_continuation_without_a_message_and_reserved_bits_are_errors),
        cmocka_unit_test(test_oversized_control_frame_is_an_error),
        cmocka_unit_test(test_peer_close_is_answered_and_nothing_after_it_is_delivered),
        cmocka_unit_test(test_server_frames_are_unmasked_with_the_right_length_form),
        cmocka_unit_test(test_client_frames_round_trip_into_a_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
