#include "common/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha1.h>
#include <wslay/wslay.h>

#include "common/crypto.h"
#include "common/http_json.h"
#include "common/log.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define DEFAULT_MAX_MESSAGE (64 * 1024)
#define DEFAULT_HIGH_WATER (256 * 1024)

/*
 * Stream mode has a fast path for data frames. wslay masks and unmasks a byte at a time and
 * copies every message into its queue, which measured as ~40% of a tunnel's CPU. In WS_STREAM
 * mode binary and continuation frames are parsed, unmasked and built here, a machine word at a
 * time and without a queue; wslay still sees, and answers, every control frame (ping, pong,
 * close), which it is only ever handed whole.
 */
#define WS_MAX_HEADER 14
#define WS_MAX_CONTROL_PAYLOAD 125

typedef struct ws_fast_in {
    uint8_t hdr[WS_MAX_HEADER];
    size_t hdr_len;
    uint64_t payload_left; /* of the data frame being received */
    uint8_t mask[4];
    unsigned mask_off;
    int in_message;        /* a binary message is open: continuation frames are allowed */
    uint8_t ctrl[WS_MAX_HEADER + WS_MAX_CONTROL_PAYLOAD];
    size_t ctrl_len, ctrl_need; /* a control frame being gathered for wslay */
} ws_fast_in_t;

struct ws {
    wslay_event_context_ptr ctx;
    ws_options_t opts;
    const ws_callbacks_t *cb;
    void *arg;
    const ws_transport_t *transport;
    void *transport_arg;
    http_conn_t *conn; /* server side */
    const uint8_t *in;
    size_t in_len;
    size_t transport_queued;
    uint8_t mask_pool[64];
    size_t mask_left;
    unsigned closing : 1;     /* close frame queued or transport closing */
    unsigned closed : 1;      /* transport closed: only on_close remains */
    unsigned paused : 1;
    unsigned feeding : 1;
    unsigned pumping : 1;
    unsigned transport_closing : 1;
    unsigned want_writable : 1; /* a producer queued something: tell it when all is out */
    unsigned close_deferred : 1; /* ws_close() waits for queued messages to go first */
    uint16_t close_code;
    char close_reason[124];
    int is_server;
    ws_fast_in_t fast;
};

/* ---- transport over the server's connection ---- */

static long conn_write_adapter(void *t, const uv_buf_t *bufs, unsigned n)
{
    return http_conn_writev(t, bufs, n);
}

static void conn_pause_adapter(void *t, int paused)
{
    http_conn_pause(t, paused);
}

static void conn_close_adapter(void *t)
{
    http_conn_close(t);
}

static const ws_transport_t conn_transport = {conn_write_adapter, conn_pause_adapter,
                                              conn_close_adapter};

/* ---- wslay callbacks ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
    ws_t *ws = user;
    (void)flags;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = ws->in_len < len ? ws->in_len : len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    ws_t *ws = user;
    (void)flags;
    if (ws->closed) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    /* Hold further frames in wslay once the transport has enough queued: memory stays bounded
     * by high_water plus what producers queue, and they watch ws_queued(). */
    if (ws->transport_queued >= ws->opts.high_water) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    long queued = ws->transport->write(ws->transport_arg, &b, 1);
    if (queued < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ws->transport_queued = (size_t)queued;
    return (ssize_t)len;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    ws_t *ws = user;
    (void)ctx;
    /* Masks come from the CSPRNG (RFC 6455 §5.3), drawn in batches: one syscall per 16 frames. */
    if (ws->mask_left < len) {
        if (crypto_random(ws->mask_pool, sizeof(ws->mask_pool)) < 0)
            return -1;
        ws->mask_left = sizeof(ws->mask_pool);
    }
    memcpy(buf, ws->mask_pool + sizeof(ws->mask_pool) - ws->mask_left, len);
    ws->mask_left -= len;
    return 0;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    ws_t *ws = user;
    (void)ctx;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME:
        if (ws->opts.mode == WS_MESSAGES && !ws->closing)
            ws->cb->on_message(ws->arg, arg->opcode == WSLAY_TEXT_FRAME, arg->msg,
                               arg->msg_length);
        break;
    case WSLAY_PONG:
        if (ws->cb->on_pong)
            ws->cb->on_pong(ws->arg);
        break;
    case WSLAY_CONNECTION_CLOSE:
        ws->closing = 1; /* wslay has queued the reply; the transport closes once it is sent */
        break;
    default:
        break;
    }
}

/* No frame-level callbacks: in stream mode data frames never reach wslay (the fast path has
 * them), and wslay reports control frames' payload through the chunk callback too, which would
 * inject a ping's bytes into the stream. Messages and control frames arrive through on_msg. */
static const struct wslay_event_callbacks wslay_callbacks = {
    on_recv, on_send, on_genmask, NULL, NULL, NULL, on_msg,
};

/* ---- the engine ---- */

static void close_transport(ws_t *ws)
{
    ws->closing = 1;
    if (ws->transport_closing)
        return;
    ws->transport_closing = 1;
    ws->transport->close(ws->transport_arg);
}

/*
 * Moves queued frames to the transport and tells a waiting producer when everything is out.
 * A loop rather than recursion: on_writable may queue more, which the next round sends.
 */
static void ws_pump(ws_t *ws)
{
    if (ws->closed || ws->pumping || ws->transport_closing)
        return;
    ws->pumping = 1;
    for (;;) {
        if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) < 0) {
            close_transport(ws);
            break;
        }
        if (ws->close_deferred && wslay_event_get_queued_msg_count(ws->ctx) == 0) {
            ws->close_deferred = 0;
            wslay_event_queue_close(ws->ctx, ws->close_code, (const uint8_t *)ws->close_reason,
                                    strlen(ws->close_reason));
            continue;
        }
        /* Done once our close frame is out, or when wslay stopped both ways after an error. */
        if (wslay_event_get_close_sent(ws->ctx) ||
            (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))) {
            close_transport(ws);
            break;
        }
        if (ws->want_writable && !wslay_event_want_write(ws->ctx) && ws->transport_queued == 0) {
            ws->want_writable = 0;
            if (ws->cb->on_writable) {
                ws->cb->on_writable(ws->arg);
                if (!ws->closed && wslay_event_want_write(ws->ctx))
                    continue;
            }
        }
        break;
    }
    ws->pumping = 0;
}

/* XORs src with the 4-byte mask (continuing at *off) into dst, eight bytes at a time. */
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                      unsigned *off)
{
    unsigned o = *off & 3;
    size_t i = 0;
    for (; i < n && o != 0; i++, o = (o + 1) & 3)
        dst[i] = src[i] ^ mask[o];
    uint32_t m32;
    memcpy(&m32, mask, 4); /* memory order: the same bytes in every 4-byte lane */
    uint64_t m64 = (uint64_t)m32 << 32 | m32;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++, o = (o + 1) & 3)
        dst[i] = src[i] ^ mask[o];
    *off = o;
}

static int fast_sendv(ws_t *ws, const uv_buf_t *bufs, unsigned nbufs);

static void fast_fail(ws_t *ws, uint16_t code, const char *why)
{
    ws_close(ws, code, why);
}

/* Hands a whole control frame to wslay, which answers pings and closes. */
static int fast_control(ws_t *ws)
{
    ws->in = ws->fast.ctrl;
    ws->in_len = ws->fast.ctrl_len;
    int rc = wslay_event_recv(ws->ctx);
    ws->in_len = 0;
    ws->fast.ctrl_len = ws->fast.ctrl_need = 0;
    return rc;
}

/* Parses a complete frame header; returns 0, or -1 after closing for a protocol error. */
static int fast_header(ws_t *ws)
{
    ws_fast_in_t *f = &ws->fast;
    uint8_t b0 = f->hdr[0], b1 = f->hdr[1];
    int fin = b0 & 0x80, opcode = b0 & 0x0f, masked = b1 & 0x80;
    uint64_t plen = b1 & 0x7f;
    size_t at = 2;
    if (plen == 126) {
        plen = (uint64_t)f->hdr[2] << 8 | f->hdr[3];
        at = 4;
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | f->hdr[2 + i];
        at = 10;
    }
    if ((b0 & 0x70) != 0 || plen >> 63) {
        fast_fail(ws, WS_CLOSE_PROTOCOL_ERROR, "bad frame header");
        return -1;
    }
    /* RFC 6455 §5.1: clients mask every frame, servers none. */
    if ((masked != 0) != ws->is_server) {
        fast_fail(ws, WS_CLOSE_PROTOCOL_ERROR, masked ? "masked frame" : "unmasked frame");
        return -1;
    }
    if (masked)
        memcpy(f->mask, f->hdr + at, 4);
    f->mask_off = 0;
    switch (opcode) {
    case WSLAY_CONTINUATION_FRAME:
    case WSLAY_BINARY_FRAME:
        if ((opcode == WSLAY_CONTINUATION_FRAME) != (f->in_message != 0)) {
            fast_fail(ws, WS_CLOSE_PROTOCOL_ERROR, "unexpected data frame");
            return -1;
        }
        f->in_message = !fin;
        f->payload_left = plen;
        return 0;
    case WSLAY_TEXT_FRAME:
        fast_fail(ws, WS_CLOSE_UNSUPPORTED, "text not accepted");
        return -1;
    case WSLAY_CONNECTION_CLOSE:
    case WSLAY_PING:
    case WSLAY_PONG:
        if (!fin || plen > WS_MAX_CONTROL_PAYLOAD) {
            fast_fail(ws, WS_CLOSE_PROTOCOL_ERROR, "bad control frame");
            return -1;
        }
        memcpy(f->ctrl, f->hdr, f->hdr_len);
        f->ctrl_len = f->hdr_len;
        f->ctrl_need = f->hdr_len + (size_t)plen;
        return 0;
    default:
        fast_fail(ws, WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
        return -1;
    }
}

/* The header's full length once its first two bytes are known. */
static size_t fast_header_len(const ws_fast_in_t *f)
{
    size_t n = 2;
    if ((f->hdr[1] & 0x7f) == 126)
        n += 2;
    else if ((f->hdr[1] & 0x7f) == 127)
        n += 8;
    return n + ((f->hdr[1] & 0x80) ? 4 : 0);
}

static void fast_feed(ws_t *ws, const uint8_t *data, size_t len)
{
    ws_fast_in_t *f = &ws->fast;
    uint8_t plain[16384];
    while (len > 0 && !ws->closing && !ws->closed) {
        if (f->ctrl_need > 0) {
            size_t n = f->ctrl_need - f->ctrl_len < len ? f->ctrl_need - f->ctrl_len : len;
            memcpy(f->ctrl + f->ctrl_len, data, n);
            f->ctrl_len += n;
            data += n;
            len -= n;
            if (f->ctrl_len == f->ctrl_need && fast_control(ws) < 0) {
                close_transport(ws);
                return;
            }
            continue;
        }
        if (f->payload_left > 0) {
            size_t n = len < sizeof(plain) ? len : sizeof(plain);
            if (n > f->payload_left)
                n = (size_t)f->payload_left;
            if (ws->is_server) {
                mask_copy(plain, data, n, f->mask, &f->mask_off);
                ws->cb->on_data(ws->arg, plain, n);
            } else {
                ws->cb->on_data(ws->arg, data, n); /* frames from a server are not masked */
            }
            f->payload_left -= n;
            data += n;
            len -= n;
            continue;
        }
        /* A header: two bytes say how long it is; then gather the rest. */
        size_t need = f->hdr_len < 2 ? 2 : fast_header_len(f);
        size_t n = need - f->hdr_len < len ? need - f->hdr_len : len;
        memcpy(f->hdr + f->hdr_len, data, n);
        f->hdr_len += n;
        data += n;
        len -= n;
        if (f->hdr_len < 2 || f->hdr_len < fast_header_len(f))
            continue;
        int rc = fast_header(ws);
        f->hdr_len = 0;
        if (rc < 0)
            return;
    }
}

void ws_feed(ws_t *ws, const uint8_t *data, size_t len)
{
    if (ws->closed || ws->feeding)
        return;
    if (ws->opts.mode == WS_STREAM) {
        ws->feeding = 1;
        fast_feed(ws, data, len);
        ws->feeding = 0;
        ws_pump(ws);
        return;
    }
    ws->in = data;
    ws->in_len = len;
    ws->feeding = 1;
    int rc = wslay_event_recv(ws->ctx);
    ws->feeding = 0;
    ws->in_len = 0;
    /* After an error wslay reads no more, but frames queued meanwhile (a GoAway, a close
     * frame) still go out before the transport closes. */
    ws_pump(ws);
    if (rc < 0)
        close_transport(ws);
}

void ws_transport_drained(ws_t *ws)
{
    ws->transport_queued = 0;
    ws_pump(ws);
}

void ws_transport_closed(ws_t *ws)
{
    if (ws->closed)
        return;
    ws->closed = 1;
    uint16_t code = wslay_event_get_status_code_received(ws->ctx);
    if (code == 0 || code == WSLAY_CODE_NO_STATUS_RCVD)
        code = WS_CLOSE_ABNORMAL;
    ws->cb->on_close(ws->arg, code);
    wslay_event_context_free(ws->ctx);
    free(ws);
}

static ws_t *ws_new(int server, const ws_transport_t *t, void *targ, const ws_options_t *opts,
                    const ws_callbacks_t *cb, void *arg)
{
    ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    ws->opts = opts ? *opts : (ws_options_t){WS_MESSAGES, 0, 0};
    if (ws->opts.max_message == 0)
        ws->opts.max_message = DEFAULT_MAX_MESSAGE;
    if (ws->opts.high_water == 0)
        ws->opts.high_water = DEFAULT_HIGH_WATER;
    ws->cb = cb;
    ws->arg = arg;
    ws->transport = t;
    ws->transport_arg = targ;
    ws->is_server = server;
    int rc = server ? wslay_event_context_server_init(&ws->ctx, &wslay_callbacks, ws)
                    : wslay_event_context_client_init(&ws->ctx, &wslay_callbacks, ws);
    if (rc != 0) {
        free(ws);
        return NULL;
    }
    /* In stream mode wslay only ever sees control frames (the fast path takes the data). */
    if (ws->opts.mode == WS_MESSAGES)
        wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->opts.max_message);
    return ws;
}

/* ---- server side ---- */

static void accept_key(const char *key, size_t len, char out[29])
{
    uint8_t digest[20];
    mbedtls_sha1_context sha;
    mbedtls_sha1_init(&sha);
    mbedtls_sha1_starts_ret(&sha);
    mbedtls_sha1_update_ret(&sha, (const uint8_t *)key, len);
    mbedtls_sha1_update_ret(&sha, (const uint8_t *)WS_GUID, sizeof(WS_GUID) - 1);
    mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    crypto_b64_encode(digest, sizeof(digest), out);
}

static void conn_on_data(void *arg, const char *data, size_t len)
{
    ws_feed(arg, (const uint8_t *)data, len);
}

static void conn_on_drain(void *arg)
{
    ws_transport_drained(arg);
}

static void conn_on_close(void *arg)
{
    ws_transport_closed(arg);
}

static void conn_on_shutdown(void *arg)
{
    ws_t *ws = arg;
    if (ws->cb->on_shutdown)
        ws->cb->on_shutdown(ws->arg);
    else
        ws_close(ws, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static const http_conn_ops_t conn_ops = {
    .on_data = conn_on_data, .on_drain = conn_on_drain, .on_close = conn_on_close,
    .on_shutdown = conn_on_shutdown};

ws_t *ws_accept(http_request_t *req, const char *protocol, const ws_options_t *opts,
                const ws_callbacks_t *cb, void *arg)
{
    const http_head_t *h = http_request_head(req);
    slice_t key = http_request_header(req, "sec-websocket-key");
    slice_t version = http_request_header(req, "sec-websocket-version");
    uint8_t raw[20];
    if (!h->upgrade || !slice_has_token(http_request_header(req, "upgrade"), "websocket") ||
        key.len == 0 || key.len > 32 ||
        crypto_b64_decode(key.ptr, key.len, raw, sizeof(raw)) != 16) {
        static const char body[] = "{\"error\":{\"code\":\"BAD_WEBSOCKET_HANDSHAKE\","
                                   "\"message\":\"A WebSocket upgrade was expected.\"}}";
        http_header_t hd[1] = {{SLICE_LIT("Content-Type"), SLICE_LIT("application/json")}};
        http_request_set_log_note(req, "BAD_WEBSOCKET_HANDSHAKE");
        http_respond(req, 400, hd, 1, body, sizeof(body) - 1);
        return NULL;
    }
    if (!slice_eq(version, "13")) {
        static const char body[] = "{\"error\":{\"code\":\"UNSUPPORTED_WEBSOCKET_VERSION\","
                                   "\"message\":\"Only WebSocket version 13 is spoken here.\"}}";
        http_header_t hd[2] = {{SLICE_LIT("Content-Type"), SLICE_LIT("application/json")},
                               {SLICE_LIT("Sec-WebSocket-Version"), SLICE_LIT("13")}};
        http_request_set_log_note(req, "UNSUPPORTED_WEBSOCKET_VERSION");
        http_respond(req, 426, hd, 2, body, sizeof(body) - 1);
        return NULL;
    }
    char accept[29];
    accept_key(key.ptr, key.len, accept);
    ws_t *ws = ws_new(1, &conn_transport, NULL, opts, cb, arg);
    if (ws == NULL) {
        http_respond(req, 503, NULL, 0, NULL, 0);
        return NULL;
    }
    http_header_t hd[4] = {{SLICE_LIT("Upgrade"), SLICE_LIT("websocket")},
                           {SLICE_LIT("Connection"), SLICE_LIT("Upgrade")},
                           {SLICE_LIT("Sec-WebSocket-Accept"), slice_from(accept)}};
    size_t n = 3;
    if (protocol != NULL)
        hd[n++] = (http_header_t){SLICE_LIT("Sec-WebSocket-Protocol"), slice_from(protocol)};
    http_conn_t *conn = http_request_upgrade(req, hd, n, &conn_ops, ws);
    if (conn == NULL) {
        wslay_event_context_free(ws->ctx);
        free(ws);
        return NULL;
    }
    ws->conn = conn;
    ws->transport_arg = conn;
    return ws;
}

slice_t ws_bearer_protocol(slice_t list, slice_t *token)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ',' && list.ptr[i] != ' ')
            i++;
        slice_t item = {list.ptr + start, i - start};
        if (item.len > 7 && memcmp(item.ptr, "bearer.", 7) == 0) {
            *token = (slice_t){item.ptr + 7, item.len - 7};
            return item;
        }
    }
    return SLICE_NULL;
}

enum ws_token_source ws_request_token(const http_request_t *req, slice_t *token, slice_t *protocol,
                                      char *query_buf, size_t query_size)
{
    *token = SLICE_NULL;
    *protocol = ws_bearer_protocol(http_request_header(req, "sec-websocket-protocol"), token);
    if (protocol->ptr != NULL)
        return WS_TOKEN_PROTOCOL;
    *token = http_bearer_token(req);
    if (token->ptr != NULL)
        return WS_TOKEN_AUTHORIZATION;
    long n = http_request_query(req, "token", query_buf, query_size);
    if (n > 0 || n == -2) {
        *token = (slice_t){query_buf, n > 0 ? (size_t)n : 0};
        return WS_TOKEN_QUERY;
    }
    *token = SLICE_NULL;
    return WS_TOKEN_NONE;
}

/* ---- client side ---- */

int ws_client_key(char key[25])
{
    uint8_t raw[16];
    int rc = crypto_random(raw, sizeof(raw));
    if (rc < 0)
        return rc;
    crypto_b64_encode(raw, sizeof(raw), key);
    return 0;
}

int ws_client_accept_ok(const char *key, slice_t accept)
{
    char expect[29];
    accept_key(key, strlen(key), expect);
    return crypto_equal_str(accept.ptr, accept.len, expect, strlen(expect));
}

ws_t *ws_client_new(const ws_transport_t *transport, void *transport_arg, const ws_options_t *opts,
                    const ws_callbacks_t *cb, void *arg)
{
    return ws_new(0, transport, transport_arg, opts, cb, arg);
}

ws_t *ws_server_new(const ws_transport_t *transport, void *transport_arg, const ws_options_t *opts,
                    const ws_callbacks_t *cb, void *arg)
{
    return ws_new(1, transport, transport_arg, opts, cb, arg);
}

/* ---- both sides ---- */

int ws_send(ws_t *ws, int is_text, const void *data, size_t len)
{
    if (ws->closing || ws->closed)
        return -1;
    if (ws->opts.mode == WS_STREAM && !is_text) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        return fast_sendv(ws, &b, 1);
    }
    struct wslay_event_msg msg = {is_text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, data, len};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0)
        return -1;
    ws->want_writable = 1;
    if (!ws->feeding)
        ws_pump(ws);
    return 0;
}

/* A binary frame written straight to the transport: stream mode's data never waits in wslay's
 * queue, so frames cannot be reordered (that queue holds only control frames here). */
static int fast_sendv(ws_t *ws, const uv_buf_t *bufs, unsigned nbufs)
{
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = 0;
    hdr[h++] = 0x80 | WSLAY_BINARY_FRAME;
    uint8_t maskbit = ws->is_server ? 0 : 0x80;
    if (total < 126) {
        hdr[h++] = maskbit | (uint8_t)total;
    } else if (total < 65536) {
        hdr[h++] = maskbit | 126;
        hdr[h++] = (uint8_t)(total >> 8);
        hdr[h++] = (uint8_t)total;
    } else {
        hdr[h++] = maskbit | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)total >> (8 * i));
    }
    long queued;
    if (ws->is_server) {
        uv_buf_t iov[8];
        if (nbufs > 7)
            return -1;
        iov[0] = uv_buf_init((char *)hdr, (unsigned)h);
        for (unsigned i = 0; i < nbufs; i++)
            iov[i + 1] = bufs[i];
        queued = ws->transport->write(ws->transport_arg, iov, nbufs + 1);
    } else {
        uint8_t mask[4];
        if (on_genmask(ws->ctx, mask, 4, ws) < 0)
            return -1;
        memcpy(hdr + h, mask, 4);
        h += 4;
        uint8_t stack[16384 + WS_MAX_HEADER];
        uint8_t *out = h + total <= sizeof(stack) ? stack : malloc(h + total);
        if (out == NULL)
            return -1;
        memcpy(out, hdr, h);
        unsigned off = 0;
        size_t o = h;
        for (unsigned i = 0; i < nbufs; i++) {
            mask_copy(out + o, (const uint8_t *)bufs[i].base, bufs[i].len, mask, &off);
            o += bufs[i].len;
        }
        uv_buf_t b = uv_buf_init((char *)out, (unsigned)o);
        queued = ws->transport->write(ws->transport_arg, &b, 1);
        if (out != stack)
            free(out);
    }
    if (queued < 0) {
        close_transport(ws);
        return -1;
    }
    ws->transport_queued = (size_t)queued;
    if (queued > 0)
        ws->want_writable = 1;
    return 0;
}

int ws_sendv(ws_t *ws, const uv_buf_t *bufs, unsigned nbufs)
{
    if (ws->opts.mode == WS_STREAM) {
        if (ws->closing || ws->closed)
            return -1;
        return fast_sendv(ws, bufs, nbufs);
    }
    if (nbufs == 1)
        return ws_send(ws, 0, bufs[0].base, bufs[0].len);
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    if (total == 0)
        return ws_send(ws, 0, "", 0);
    uint8_t stack[4096];
    uint8_t *p = total <= sizeof(stack) ? stack : malloc(total);
    if (p == NULL)
        return -1;
    size_t o = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        memcpy(p + o, bufs[i].base, bufs[i].len);
        o += bufs[i].len;
    }
    int rc = ws_send(ws, 0, p, total);
    if (p != stack)
        free(p);
    return rc;
}

size_t ws_queued(const ws_t *ws)
{
    return wslay_event_get_queued_msg_length(ws->ctx) + ws->transport_queued;
}

int ws_ping(ws_t *ws)
{
    if (ws->closing || ws->closed)
        return -1;
    struct wslay_event_msg msg = {WSLAY_PING, NULL, 0};
    if (wslay_event_queue_msg(ws->ctx, &msg) != 0)
        return -1;
    if (!ws->feeding)
        ws_pump(ws);
    return 0;
}

void ws_close(ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->closing || ws->closed)
        return;
    ws->closing = 1;
    /* wslay sends control frames ahead of queued messages; the close must not overtake
     * what was sent before it (a tunnel's last GoAway), so it is queued once those are out.
     * A close frame's payload is at most 125 bytes, 2 of them the code. */
    ws->close_deferred = 1;
    ws->close_code = code;
    snprintf(ws->close_reason, sizeof(ws->close_reason), "%s", reason ? reason : "");
    wslay_event_shutdown_read(ws->ctx);
    if (!ws->feeding)
        ws_pump(ws);
}

void ws_abort(ws_t *ws)
{
    if (ws->closed)
        return;
    wslay_event_shutdown_read(ws->ctx);
    wslay_event_shutdown_write(ws->ctx);
    close_transport(ws);
}

void ws_pause(ws_t *ws, int paused)
{
    if (ws->closed || ws->paused == (paused ? 1u : 0u))
        return;
    ws->paused = paused ? 1 : 0;
    ws->transport->pause(ws->transport_arg, paused);
}

const char *ws_remote_addr(const ws_t *ws)
{
    return ws->conn ? http_conn_remote_addr(ws->conn) : "-";
}
