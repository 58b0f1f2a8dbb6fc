/*
 * POST /internal/forward/raw and GET /internal/forward/ws: a client connection spliced to a new
 * yamux stream on the device's tunnel, both ways, until either side ends.
 *
 * Backpressure, end to end, with memory per splice bounded by one yamux window plus one read:
 *   device → client: bytes go to the client connection; they are reported consumed to yamux
 *     (which reopens the device's window) only once the connection has written them, so a slow
 *     client stops the device within one window.
 *   client → device: what the stream's window does not take is kept and the client connection
 *     is paused until the window reopens.
 * forward/ws first relays the WebSocket opening handshake to the device and answers the client
 * with the device's 101, then splices exactly like forward/raw.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/http_json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "remote-proxy/routes.h"
#include "proto/yamux_pump.h"

/* The device's answer to a relayed WebSocket handshake: a head, nothing more. */
#define MAX_RELAY_HEAD (16 * 1024)

typedef struct splice {
    tunnel_binding_t binding;
    http_conn_t *conn;
    yamux_stream *st;
    http_request_t *req; /* forward/ws until the device has answered the handshake */
    yamux_pump_t to_device; /* client bytes into the stream, the rest kept for its window */
    size_t unconsumed;   /* device bytes handed to the connection, not yet written by it */
    unsigned client_eof : 1;
    /* forward/ws: the device's response head, parsed as it arrives */
    llhttp_t parser;
    llhttp_settings_t settings;
    buf_t head;
    int head_done;
    char accept[64];
    char protocol[256];
    char extensions[256]; /* negotiated end to end: the client must see what the device chose */
    char field[64];
    size_t field_len;
    int in_accept, in_protocol, in_extensions;
} splice_t;

static metric_t *m_raw_streams, *m_ws_streams, *m_bytes_to_device, *m_bytes_to_client;

static void metrics_init(void)
{
    if (m_raw_streams != NULL)
        return;
    const char *h = "Streams spliced through the internal API.";
    m_raw_streams = metrics_counter("edgegate_forward_streams_total", h, "kind=\"raw\"");
    m_ws_streams = metrics_counter("edgegate_forward_streams_total", h, "kind=\"ws\"");
    const char *hb = "Payload bytes through spliced streams.";
    m_bytes_to_device = metrics_counter("edgegate_forward_bytes_total", hb, "dir=\"to_device\"");
    m_bytes_to_client = metrics_counter("edgegate_forward_bytes_total", hb, "dir=\"to_client\"");
}

static void splice_maybe_free(splice_t *s)
{
    if (s->conn != NULL || s->st != NULL || s->req != NULL)
        return;
    yamux_pump_free(&s->to_device);
    buf_free(&s->head);
    free(s);
}

/* ---- client connection ---- */

static void push_to_device(splice_t *s)
{
    ssize_t n = yamux_pump_flush(&s->to_device);
    if (n < 0)
        return;
    metric_add(m_bytes_to_device, (double)n);
    if (yamux_pump_pending(&s->to_device) == 0 && !s->client_eof && s->conn != NULL)
        http_conn_pause(s->conn, 0);
}

static void conn_on_data(void *arg, const char *data, size_t len)
{
    splice_t *s = arg;
    if (s->st == NULL)
        return;
    ssize_t n = yamux_pump_write(&s->to_device, data, len);
    if (n < 0)
        return;
    metric_add(m_bytes_to_device, (double)n);
    /* The rest (at most this read) waits for the window: no more reads until it is out. */
    if (yamux_pump_pending(&s->to_device) > 0)
        http_conn_pause(s->conn, 1);
}

static void conn_on_drain(void *arg)
{
    splice_t *s = arg;
    if (s->st != NULL && s->unconsumed > 0)
        yamux_stream_consumed(s->st, s->unconsumed);
    s->unconsumed = 0;
}

static void conn_on_eof(void *arg)
{
    splice_t *s = arg;
    s->client_eof = 1;
    if (s->st != NULL)
        yamux_pump_finish(&s->to_device); /* half-close: the device may still answer */
}

static void conn_on_close(void *arg)
{
    splice_t *s = arg;
    s->conn = NULL;
    if (s->st != NULL) {
        /* Nobody is left to read what the device sends. yamux delivers on_closed before the
         * reset returns, and st_on_closed frees the splice: s is gone after this call. */
        yamux_stream_reset(s->st);
        return;
    }
    splice_maybe_free(s);
}

static const http_conn_ops_t splice_conn_ops = {
    .on_data = conn_on_data, .on_drain = conn_on_drain, .on_close = conn_on_close,
    .on_eof = conn_on_eof};

/* ---- the stream ---- */

static void to_client(splice_t *s, const uint8_t *data, size_t len)
{
    long queued = http_conn_write(s->conn, data, len);
    metric_add(m_bytes_to_client, (double)len);
    if (queued == 0)
        yamux_stream_consumed(s->st, len);
    else if (queued > 0)
        s->unconsumed += len; /* reported when the connection drains */
}

static void relay_handshake_data(splice_t *s, const uint8_t *data, size_t len);

static void st_on_data(void *arg, yamux_stream *st, const uint8_t *data, size_t len)
{
    splice_t *s = arg;
    if (s->req != NULL) {
        relay_handshake_data(s, data, len);
        return;
    }
    if (s->conn == NULL) {
        yamux_stream_consumed(st, len);
        return;
    }
    to_client(s, data, len);
}

static void st_on_fin(void *arg, yamux_stream *st)
{
    splice_t *s = arg;
    (void)st;
    if (s->req != NULL) {
        http_reply_error(s->req, 502, "TUNNEL_ERROR", "The device closed the stream.");
        s->req = NULL;
        yamux_stream_reset(s->st);
        return;
    }
    if (s->conn != NULL)
        http_conn_close(s->conn); /* after what is queued has been written */
}

static void st_on_writable(void *arg, yamux_stream *st)
{
    splice_t *s = arg;
    (void)st;
    push_to_device(s);
}

static void st_on_closed(void *arg, yamux_stream *st, yamux_close_reason reason)
{
    splice_t *s = arg;
    (void)st;
    s->st = NULL;
    s->to_device.dst = NULL;
    if (s->req != NULL) {
        http_reply_error(s->req, 502, reason == YAMUX_CLOSE_SESSION ? "TUNNEL_DISCONNECTED"
                                                                    : "TUNNEL_ERROR",
                         "The device ended the stream before answering.");
        s->req = NULL;
    }
    if (s->conn != NULL)
        http_conn_close(s->conn);
    splice_maybe_free(s);
}

static const tunnel_stream_ops_t splice_stream_ops = {st_on_data, st_on_fin, st_on_writable,
                                                       st_on_closed};

static void on_request_abort(http_request_t *req, void *arg)
{
    splice_t *s = arg;
    (void)req;
    if (s->st != NULL)
        yamux_stream_reset(s->st);
}

/* The splice for the device the request names, on a new stream; NULL after answering. */
static splice_t *splice_open(http_request_t *req)
{
    tunnel_t *t = proxy_tunnel_or_reply(req, NULL, NULL);
    if (t == NULL)
        return NULL;
    splice_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        http_reply_error(req, 503, "SERVICE_UNAVAILABLE", "Out of memory.");
        return NULL;
    }
    s->binding = (tunnel_binding_t){&splice_stream_ops, s};
    s->head = BUF_INIT(MAX_RELAY_HEAD);
    int err = 0;
    s->st = tunnel_open_stream(t, &s->binding, &err);
    s->to_device.dst = s->st;
    if (s->st == NULL) {
        free(s);
        http_reply_error(req, 502, "TUNNEL_ERROR", yamux_strerror(err));
        return NULL;
    }
    return s;
}

/* Answers 101 and turns the request's connection into the client side of the splice. */
static void splice_start(splice_t *s, http_request_t *req, const http_header_t *hdrs, size_t n)
{
    s->req = NULL;
    s->conn = http_request_upgrade(req, hdrs, n, &splice_conn_ops, s);
    if (s->conn == NULL && s->st != NULL)
        yamux_stream_reset(s->st);
}

void proxy_forward_raw(http_request_t *req)
{
    metrics_init();
    if (!http_request_head(req)->upgrade ||
        !slice_has_token(http_request_header(req, "upgrade"), "edgegate-stream")) {
        http_reply_error(req, 400, "UPGRADE_REQUIRED",
                         "Send Connection: Upgrade and Upgrade: edgegate-stream.");
        return;
    }
    splice_t *s = splice_open(req);
    if (s == NULL)
        return;
    metric_inc(m_raw_streams);
    http_header_t hdrs[2] = {{SLICE_LIT("Upgrade"), SLICE_LIT("edgegate-stream")},
                             {SLICE_LIT("Connection"), SLICE_LIT("Upgrade")}};
    splice_start(s, req, hdrs, 2);
}

/* ---- forward/ws: relay the opening handshake ---- */

static int on_hfield(llhttp_t *p, const char *at, size_t len)
{
    splice_t *s = p->data;
    if (s->field_len + len < sizeof(s->field)) {
        memcpy(s->field + s->field_len, at, len);
        s->field_len += len;
    }
    return 0;
}

static int on_hfield_done(llhttp_t *p)
{
    splice_t *s = p->data;
    slice_t f = {s->field, s->field_len};
    s->in_accept = slice_case_eq(f, "sec-websocket-accept");
    s->in_protocol = slice_case_eq(f, "sec-websocket-protocol");
    s->in_extensions = slice_case_eq(f, "sec-websocket-extensions");
    s->field_len = 0;
    return 0;
}

static void append_value(char *dst, size_t size, const char *at, size_t len)
{
    size_t used = strlen(dst);
    if (used + len < size) {
        memcpy(dst + used, at, len);
        dst[used + len] = '\0';
    }
}

static int on_hvalue(llhttp_t *p, const char *at, size_t len)
{
    splice_t *s = p->data;
    if (s->in_accept)
        append_value(s->accept, sizeof(s->accept), at, len);
    else if (s->in_protocol)
        append_value(s->protocol, sizeof(s->protocol), at, len);
    else if (s->in_extensions)
        append_value(s->extensions, sizeof(s->extensions), at, len);
    return 0;
}

static int on_hdone(llhttp_t *p)
{
    splice_t *s = p->data;
    s->head_done = 1;
    return HPE_PAUSED;
}

static void relay_handshake_data(splice_t *s, const uint8_t *data, size_t len)
{
    http_request_t *req = s->req;
    enum llhttp_errno err = llhttp_execute(&s->parser, (const char *)data, len);
    size_t used = len;
    if (err == HPE_PAUSED)
        used = (size_t)(llhttp_get_error_pos(&s->parser) - (const char *)data);
    yamux_stream_consumed(s->st, used);
    s->head.len += used;
    if (err != HPE_OK && err != HPE_PAUSED) {
        s->req = NULL;
        http_reply_error(req, 502, "TUNNEL_ERROR", "The device's answer was not HTTP.");
        yamux_stream_reset(s->st);
        return;
    }
    if (!s->head_done) {
        if (s->head.len > MAX_RELAY_HEAD) {
            s->req = NULL;
            http_reply_error(req, 502, "TUNNEL_ERROR", "The device's answer head is too large.");
            yamux_stream_reset(s->st);
        }
        return;
    }
    int status = llhttp_get_status_code(&s->parser);
    if (status != 101) {
        char msg[96];
        snprintf(msg, sizeof(msg), "The device refused the WebSocket upgrade (status %d).",
                 status);
        s->req = NULL;
        http_reply_error(req, 502, "TUNNEL_ERROR", msg);
        yamux_stream_reset(s->st);
        return;
    }
    http_header_t hdrs[5] = {{SLICE_LIT("Upgrade"), SLICE_LIT("websocket")},
                             {SLICE_LIT("Connection"), SLICE_LIT("Upgrade")},
                             {SLICE_LIT("Sec-WebSocket-Accept"), slice_from(s->accept)}};
    size_t n = 3;
    if (s->protocol[0])
        hdrs[n++] = (http_header_t){SLICE_LIT("Sec-WebSocket-Protocol"), slice_from(s->protocol)};
    if (s->extensions[0])
        hdrs[n++] =
            (http_header_t){SLICE_LIT("Sec-WebSocket-Extensions"), slice_from(s->extensions)};
    splice_start(s, req, hdrs, n);
    /* Frames the device sent right after its 101 belong to the client. */
    if (s->conn != NULL && used < len)
        to_client(s, data + used, len - used);
}

/* Request headers that describe this hop or carry our credentials stay here. */
static int hop_header(slice_t name)
{
    static const char *const skip[] = {"host", "connection", "upgrade", "keep-alive",
                                       "proxy-connection", "te", "trailer", "transfer-encoding",
                                       "authorization", "cookie", "x-device-id",
                                       "x-session-token", "x-forward-path", "content-length"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (slice_case_eq(name, skip[i]))
            return 1;
    return 0;
}

void proxy_forward_ws(http_request_t *req)
{
    metrics_init();
    slice_t path = http_request_header(req, "x-forward-path");
    if (path.len == 0 || path.ptr[0] != '/' || memchr(path.ptr, '\r', path.len) ||
        memchr(path.ptr, '\n', path.len) || memchr(path.ptr, ' ', path.len)) {
        http_reply_error(req, 400, "INVALID_PATH", "X-Forward-Path must be an absolute path.");
        return;
    }
    if (http_request_header(req, "sec-websocket-key").len == 0) {
        http_reply_error(req, 400, "BAD_WEBSOCKET_HANDSHAKE", "A WebSocket upgrade was expected.");
        return;
    }
    splice_t *s = splice_open(req);
    if (s == NULL)
        return;
    metric_inc(m_ws_streams);
    s->req = req;
    http_request_on_abort(req, on_request_abort, s);
    llhttp_settings_init(&s->settings);
    s->settings.on_header_field = on_hfield;
    s->settings.on_header_field_complete = on_hfield_done;
    s->settings.on_header_value = on_hvalue;
    s->settings.on_headers_complete = on_hdone;
    llhttp_init(&s->parser, HTTP_RESPONSE, &s->settings);
    s->parser.data = s;

    buf_t out = BUF_INIT(64 * 1024);
    buf_printf(&out, "GET %.*s HTTP/1.1\r\nHost: device\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\n",
               (int)path.len, path.ptr);
    const http_head_t *h = http_request_head(req);
    for (unsigned i = 0; i < h->nheaders; i++) {
        if (hop_header(h->headers[i].name))
            continue;
        buf_printf(&out, "%.*s: %.*s\r\n", (int)h->headers[i].name.len, h->headers[i].name.ptr,
                   (int)h->headers[i].value.len, h->headers[i].value.ptr);
    }
    if (buf_append_str(&out, "\r\n") < 0) {
        buf_free(&out);
        s->req = NULL;
        yamux_stream_reset(s->st);
        http_reply_error(req, 431, "HEADERS_TOO_LARGE", "The handshake is too large to relay.");
        return;
    }
    /* A request head is far smaller than a fresh stream's 256 KiB window. */
    ssize_t n = yamux_stream_write(s->st, out.data, out.len);
    buf_free(&out);
    if (n < 0) {
        s->req = NULL;
        yamux_stream_reset(s->st);
        http_reply_error(req, 502, "TUNNEL_WRITE_ERROR", "The handshake could not be sent.");
    }
}
