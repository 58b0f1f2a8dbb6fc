/*
 * The tunnel's receive path as an agent's bytes meet it: WebSocket frames (wslay, server side,
 * stream mode) whose binary payload feeds a yamux client session — exactly how
 * remote-proxy/tunnel.c wires them. The session also opens streams and writes, so replies,
 * window updates and GoAways travel back through ws into the (discarding) transport.
 * Must never crash, leak or hang, whatever the agent sends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ws.h"
#include "proto/yamux.h"

typedef struct rig {
    ws_t *ws;
    yamux_session *mux;
    int closed;
    int transport_closing;
} rig_t;

static long t_write(void *t, const uv_buf_t *bufs, unsigned n)
{
    (void)t;
    (void)bufs;
    (void)n;
    return 0; /* written at once */
}

static void t_pause(void *t, int paused)
{
    (void)t;
    (void)paused;
}

static void t_close(void *t)
{
    ((rig_t *)t)->transport_closing = 1;
}

static const ws_transport_t transport = {t_write, t_pause, t_close};

static int mux_send(void *user, const yamux_iov *iov, int iovcnt)
{
    rig_t *r = user;
    if (r->ws == NULL || r->closed)
        return -1;
    uv_buf_t b[2];
    for (int i = 0; i < iovcnt; i++)
        b[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    return ws_sendv(r->ws, b, (unsigned)iovcnt) < 0 ? -1 : 0;
}

static void mux_on_stream(void *user, yamux_stream *st)
{
    (void)user;
    yamux_stream_reset(st);
}

static void mux_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    (void)user;
    (void)data;
    yamux_stream_consumed(st, len);
}

static const yamux_callbacks mux_cb = {mux_send, mux_on_stream, mux_on_data, NULL,
                                       NULL,     NULL,          NULL,        NULL};

static void ws_on_data(void *arg, const uint8_t *data, size_t len)
{
    rig_t *r = arg;
    if (r->mux != NULL && yamux_session_feed(r->mux, data, len) < 0)
        ws_close(r->ws, WS_CLOSE_PROTOCOL_ERROR, "yamux protocol error");
}

static void ws_on_close(void *arg, uint16_t code)
{
    rig_t *r = arg;
    (void)code;
    r->closed = 1;
}

static const ws_callbacks_t ws_cb = {.on_data = ws_on_data, .on_close = ws_on_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rig_t r;
    memset(&r, 0, sizeof(r));
    ws_options_t opts = {.mode = WS_STREAM};
    r.ws = ws_server_new(&transport, &r, &opts, &ws_cb, &r);
    yamux_config cfg;
    yamux_config_init(&cfg, true);
    if (r.ws == NULL || yamux_session_new(&cfg, &mux_cb, &r, &r.mux) != 0)
        abort();
    /* A couple of streams the proxy opened, so Data and window traffic has somewhere to go. */
    yamux_stream *st;
    for (int i = 0; i < 2; i++)
        if (yamux_stream_open(r.mux, &st) == 0)
            yamux_stream_write(st, "GET / HTTP/1.1\r\n\r\n", 18);
    /* Chunk sizes come from the input itself, so frame boundaries land everywhere. */
    size_t i = 0;
    while (i < size && !r.transport_closing) {
        size_t n = 1 + data[i] % 97;
        i++;
        if (n > size - i)
            n = size - i;
        ws_feed(r.ws, data + i, n);
        i += n;
    }
    yamux_session_free(r.mux);
    r.mux = NULL;
    ws_transport_closed(r.ws); /* frees the ws after on_close */
    return 0;
}
