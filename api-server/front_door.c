/*
 * The front door to device traffic: ANY /api/devices/{id}/proxy/{path...}.
 *
 *   1. The device must be the caller's (or the caller an admin) and not revoked; otherwise 404,
 *      the same answer as for a device that does not exist, so ids leak nothing (device.h).
 *   2. The proxy replica holding the device's tunnel is `tunnel:route:<id>` in Redis (several
 *      replicas), else EDGEGATE_INTERNAL_URL.
 *   3. Plain requests: POST /internal/forward/raw upgrades to a byte pipe onto a new stream on
 *      the device's tunnel (sent over a stream of the replica's channel when it is up,
 *      proxy_channel.h, else over a connection of its own); the request goes through it as
 *      HTTP/1.1 (Connection: close) and the
 *      device's response is read as it arrives and relayed as it arrives, with backpressure:
 *      when the browser reads slowly the pipe stops being read, the proxy's yamux window
 *      closes, and the device stops sending. Memory per request stays at one socket read plus
 *      the browser connection's bounded queue, however large or long the response (downloads,
 *      MJPEG, server-sent events).
 *      WebSocket upgrades: GET /internal/forward/ws relays the handshake to the device; its 101
 *      is answered to the browser and the two connections are spliced, both ways, with the
 *      same backpressure.
 *   4. The device never sees platform credentials: Cookie, Authorization and hop-by-hop
 *      headers stay here; its Set-Cookie headers stay here too (a device must not set cookies
 *      on the platform's origin, and since Cookie is never forwarded they could not work).
 */
#include <stdlib.h>
#include <string.h>

#include "api-server/app.h"
#include "api-server/db.h"
#include "api-server/device.h"
#include "api-server/handlers.h"
#include "api-server/proxy_channel.h"
#include "api-server/request.h"
#include "common/buf.h"
#include "common/http_client.h"
#include "common/http_json.h"
#include "common/log.h"

/* Bytes queued towards either side before the other side stops being read. */
#define RELAY_HIGH_WATER (256 * 1024)
/* A proxy's refusal (JSON error) kept to relay it. */
#define REFUSAL_MAX 4096
/* Establishing the stream and waiting for the device's response head. */
#define HEAD_TIMEOUT_MS 30000
#define ROUTE_URL_MAX 256

enum front_phase {
    PH_PROXY,  /* waiting for the proxy's 101 */
    PH_DEVICE, /* the request went to the device; waiting for its response head */
    PH_BODY,   /* relaying the device's response body */
    PH_SPLICE, /* WebSocket: both connections spliced */
};

typedef struct front {
    http_request_t *req; /* NULL once finished */
    http_client_t *client;
    http_conn_t *conn; /* WebSocket: the browser's connection after the 101 */
    enum front_phase phase;
    int websocket;
    int via_channel; /* a stream of the replica's channel, not a connection of its own */
    int refs; /* the client, and the browser connection once spliced */
    int status; /* the proxy's refusal */
    int body_chunked; /* the browser's body is re-chunked towards the device */
    int body_paused;
    buf_t refusal;
    char device_id[UUID_TEXT_LEN + 1];
} front_t;

static const http_client_config_t proxy_client_cfg = {
    .timeout_ms = HEAD_TIMEOUT_MS,
    .max_head = 16 * 1024,
    .max_queue = RELAY_HIGH_WATER + 64 * 1024,
};

static void front_unref(front_t *f)
{
    if (--f->refs > 0)
        return;
    buf_free(&f->refusal);
    free(f);
}

/* ---- headers ---- */

/* Headers that describe one hop (RFC 9110 §7.6.1), or are named by Connection. */
static int hop_by_hop(slice_t name, slice_t connection)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection",
                                      "proxy-authenticate", "proxy-authorization", "te",
                                      "trailer", "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (slice_case_eq(name, hop[i]))
            return 1;
    if (connection.len > 0 && name.len < 64) {
        char lower[64];
        memcpy(lower, name.ptr, name.len);
        lower[name.len] = '\0';
        return slice_has_token(connection, lower);
    }
    return 0;
}

/* What the device may not see: platform credentials, and what we set ourselves. */
static int kept_from_device(slice_t name)
{
    static const char *const ours[] = {"cookie", "authorization", "host", "content-length",
                                       "x-forwarded-for", "x-forwarded-proto",
                                       "x-forwarded-host", "x-forwarded-prefix", "forwarded",
                                       "x-device-id", "x-session-token", "x-forward-path",
                                       "expect"};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (slice_case_eq(name, ours[i]))
            return 1;
    return 0;
}

/* ---- finishing ---- */

static void finish_error(front_t *f, int status, const char *code, const char *message)
{
    http_request_t *req = f->req;
    if (req == NULL)
        return;
    f->req = NULL;
    http_reply_error(req, status, code, message);
}

/* The browser's request ends here however far the relay got. */
static void finish_request(front_t *f, int complete)
{
    http_request_t *req = f->req;
    if (req == NULL)
        return;
    f->req = NULL;
    if (complete)
        http_respond_end(req);
    else
        http_respond_abort(req);
}

static void on_browser_gone(http_request_t *req, void *arg)
{
    (void)req;
    front_t *f = arg;
    if (f->client != NULL)
        http_client_close(f->client, 0, "the browser went away", 1);
}

/* ---- the device's response ---- */

static void on_browser_drain(http_request_t *req, void *arg)
{
    (void)req;
    front_t *f = arg;
    if (f->client != NULL)
        http_client_pause(f->client, 0);
}

static void relay_head(front_t *f, const http_head_t *head)
{
    http_request_t *req = f->req;
    if (req == NULL)
        return;
    slice_t connection = http_head_header(head, "connection");
    http_header_t out[HTTP_MAX_HEADERS];
    size_t n = 0;
    for (unsigned i = 0; i < head->nheaders; i++) {
        slice_t name = head->headers[i].name;
        if (hop_by_hop(name, connection) || slice_case_eq(name, "set-cookie"))
            continue;
        /* A chunked answer is re-chunked by our server; a Content-Length one keeps its
         * length, so a download shows its size and the browser sees a cut-off as one. */
        if (slice_case_eq(name, "content-length") && head->chunked)
            continue;
        out[n++] = head->headers[i];
    }
    f->phase = PH_BODY;
    http_client_set_timeout(f->client, 0); /* a stream may go quiet (SSE); the browser decides */
    http_respond_on_drain(req, on_browser_drain, f);
    if (http_respond_start(req, head->status, out, n) < 0)
        http_client_close(f->client, 0, "the browser went away", 1);
}

/* ---- the browser's request body, streamed as it arrives ---- */

static void on_request_body(http_request_t *req, void *arg, const char *data, size_t len)
{
    front_t *f = arg;
    if (f->client == NULL)
        return;
    long queued;
    if (f->body_chunked) { /* the browser's chunks, re-framed: sizes are per hop */
        char size_line[24];
        int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
        queued = http_client_write(f->client, size_line, (size_t)n);
        if (queued >= 0)
            queued = http_client_write(f->client, data, len);
        if (queued >= 0)
            queued = http_client_write(f->client, "\r\n", 2);
    } else {
        queued = http_client_write(f->client, data, len);
    }
    if (queued > RELAY_HIGH_WATER) {
        f->body_paused = 1;
        http_request_body_pause(req, 1); /* until on_proxy_drain */
    }
}

static void on_request_body_end(http_request_t *req, void *arg, int status)
{
    (void)req;
    front_t *f = arg;
    if (f->client == NULL)
        return;
    if (status == 0) {
        if (f->body_chunked)
            http_client_write(f->client, "0\r\n\r\n", 5);
        return;
    }
    /* The browser's body failed: the device must not take a partial one for a whole one. */
    if (f->phase == PH_DEVICE)
        finish_error(f, status, status == 413 ? "PAYLOAD_TOO_LARGE" : "INVALID_BODY",
                     status == 413 ? "The request body is larger than allowed."
                                   : "The request body was cut short or malformed.");
    http_client_close(f->client, UV_ECANCELED, "the browser's body failed", 1);
}

/* The pipe to the device is open: send it the browser's request. */
static void send_device_request(front_t *f)
{
    http_request_t *req = f->req;
    const http_head_t *h = http_request_head(req);
    slice_t rest = http_request_param(req, "path");
    buf_t target = BUF_INIT(16 * 1024);
    int rc = buf_printf(&target, "/%.*s", (int)rest.len, rest.ptr);
    if (h->query.len > 0)
        rc |= buf_printf(&target, "?%.*s", (int)h->query.len, h->query.ptr);
    slice_t connection = http_head_header(h, "connection");
    http_header_t out[HTTP_MAX_HEADERS + 5];
    size_t n = 0;
    for (unsigned i = 0; i < h->nheaders; i++) {
        slice_t name = h->headers[i].name;
        if (!hop_by_hop(name, connection) && !kept_from_device(name))
            out[n++] = h->headers[i];
    }
    const api_config_t *cfg = api_app(req)->cfg;
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "/api/devices/%s/proxy", f->device_id);
    out[n++] = (http_header_t){SLICE_LIT("X-Forwarded-For"),
                               slice_from(http_request_remote_addr(req))};
    out[n++] = (http_header_t){SLICE_LIT("X-Forwarded-Proto"),
                               strncmp(cfg->public_origin, "https:", 6) == 0 ? SLICE_LIT("https")
                                                                             : SLICE_LIT("http")};
    out[n++] = (http_header_t){SLICE_LIT("X-Forwarded-Prefix"), slice_from(prefix)};
    /* The body's framing towards the device: its length when the browser gave one, else
     * chunked; a body-less request says nothing (or Content-Length: 0 when the browser did). */
    int64_t length = h->chunked ? -1 : h->content_length;
    if (h->chunked) {
        f->body_chunked = 1;
        out[n++] = (http_header_t){SLICE_LIT("Transfer-Encoding"), SLICE_LIT("chunked")};
    }
    slice_t host = http_request_header(req, "host");
    char method[32];
    snprintf(method, sizeof(method), "%.*s", (int)h->method.len, h->method.ptr);
    rc = rc < 0 ? UV_ENOMEM
                : http_client_request(f->client, method, (slice_t){target.data, target.len},
                                      host.len ? host : SLICE_LIT("device"), out, n, length);
    buf_free(&target);
    if (rc < 0) {
        finish_error(f, 502, "TUNNEL_WRITE_ERROR", "The request could not be sent to the device.");
        http_client_close(f->client, rc, "request not sent", 1);
        return;
    }
    f->phase = PH_DEVICE;
    http_request_body_stream(req, on_request_body, on_request_body_end, f);
}

/* ---- WebSocket splice ---- */

static void ws_on_data(void *arg, const char *data, size_t len)
{
    front_t *f = arg;
    if (f->client == NULL)
        return;
    long queued = http_client_write(f->client, data, len);
    if (queued > RELAY_HIGH_WATER)
        http_conn_pause(f->conn, 1); /* until the pipe drains */
}

static void ws_on_drain(void *arg)
{
    front_t *f = arg;
    if (f->client != NULL)
        http_client_pause(f->client, 0);
}

static void ws_on_close(void *arg)
{
    front_t *f = arg;
    f->conn = NULL;
    if (f->client != NULL)
        http_client_close(f->client, 0, "the browser closed", 0);
    front_unref(f);
}

static const http_conn_ops_t ws_ops = {
    .on_data = ws_on_data,
    .on_drain = ws_on_drain,
    .on_close = ws_on_close,
};

static void splice_browser(front_t *f, const http_head_t *head)
{
    static const char *const pass[] = {"sec-websocket-accept", "sec-websocket-protocol",
                                       "sec-websocket-extensions"};
    http_header_t out[2 + 3] = {{SLICE_LIT("Upgrade"), SLICE_LIT("websocket")},
                                {SLICE_LIT("Connection"), SLICE_LIT("Upgrade")}};
    size_t n = 2;
    for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
        slice_t v = http_head_header(head, pass[i]);
        if (v.ptr != NULL)
            out[n++] = (http_header_t){slice_from(pass[i]), v};
    }
    http_request_t *req = f->req;
    f->req = NULL;
    f->conn = http_request_upgrade(req, out, n, &ws_ops, f);
    if (f->conn == NULL) {
        http_client_close(f->client, 0, "the browser went away", 1);
        return;
    }
    f->refs++;
    f->phase = PH_SPLICE;
}

/* ---- the proxy connection ---- */

static void on_proxy_head(void *arg, const http_head_t *head)
{
    front_t *f = arg;
    if (f->phase == PH_PROXY) {
        if (head->status != 101) {
            f->status = head->status; /* a refusal: its JSON body follows */
            return;
        }
        if (f->req == NULL) { /* the browser left meanwhile */
            http_client_close(f->client, 0, "the browser went away", 1);
            return;
        }
        if (f->websocket)
            splice_browser(f, head);
        else
            send_device_request(f);
        return;
    }
    if (f->phase == PH_DEVICE)
        relay_head(f, head);
}

static void on_proxy_body(void *arg, const char *data, size_t len)
{
    front_t *f = arg;
    if (f->phase == PH_PROXY) {
        buf_append(&f->refusal, data, len); /* beyond REFUSAL_MAX it is cut: not needed */
        return;
    }
    if (f->req == NULL)
        return;
    long queued = http_respond_write(f->req, data, len);
    if (queued < 0)
        http_client_close(f->client, 0, "the browser went away", 1);
    else if (queued > RELAY_HIGH_WATER)
        http_client_pause(f->client, 1); /* until on_browser_drain */
}

/* The proxy's refusal before any stream existed: its status and error code are ours too
 * (502 TUNNEL_DISCONNECTED for an offline device), its internals are not. */
static void relay_refusal(front_t *f)
{
    const char *code = "TUNNEL_ERROR";
    json_t *doc = f->refusal.len ? json_loadb(f->refusal.data, f->refusal.len, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    if (c != NULL && (strcmp(c, "TUNNEL_DISCONNECTED") == 0 || strcmp(c, "TUNNEL_ERROR") == 0 ||
                      strcmp(c, "TUNNEL_WRITE_ERROR") == 0))
        code = c;
    if (strcmp(code, "TUNNEL_DISCONNECTED") == 0)
        finish_error(f, 502, code, "The device is not connected.");
    else
        finish_error(f, 502, code, "The device could not be reached.");
    if (f->status == 401)
        log_error("front_door.internal_token_refused", "device=%s", f->device_id);
    json_decref(doc);
}

static void on_proxy_end(void *arg)
{
    front_t *f = arg;
    if (f->phase == PH_PROXY)
        relay_refusal(f);
    else
        finish_request(f, 1);
    http_client_close(f->client, 0, "done", 0);
}

static void on_proxy_data(void *arg, const char *data, size_t len)
{
    front_t *f = arg;
    if (f->conn == NULL)
        return;
    long queued = http_conn_write(f->conn, data, len);
    if (queued > RELAY_HIGH_WATER)
        http_client_pause(f->client, 1); /* until ws_on_drain */
}

static void on_proxy_drain(void *arg)
{
    front_t *f = arg;
    if (f->conn != NULL) {
        http_conn_pause(f->conn, 0);
    } else if (f->body_paused && f->req != NULL) {
        f->body_paused = 0;
        http_request_body_pause(f->req, 0);
    }
}

static void on_proxy_close(void *arg, int err, const char *why)
{
    front_t *f = arg;
    f->client = NULL;
    if (f->req != NULL) {
        if (f->phase == PH_BODY) {
            log_info("front_door.cut", "device=%s why=\"%s\"", f->device_id, why);
            finish_request(f, 0);
        } else if (err == UV_ETIMEDOUT) {
            finish_error(f, 504, "TUNNEL_TIMEOUT", "The device did not answer in time.");
        } else if (f->phase == PH_DEVICE) {
            finish_error(f, 502, "TUNNEL_READ_ERROR", "The device's answer was cut short or was "
                                                      "not HTTP.");
        } else {
            log_error("front_door.proxy_unreachable", "device=%s why=\"%s\"", f->device_id, why);
            finish_error(f, 502, "TUNNEL_ERROR", "The device could not be reached.");
        }
    }
    if (f->conn != NULL)
        http_conn_close(f->conn);
    front_unref(f);
}

static const http_client_ops_t proxy_ops = {
    .on_head = on_proxy_head,
    .on_body = on_proxy_body,
    .on_end = on_proxy_end,
    .on_data = on_proxy_data,
    .on_drain = on_proxy_drain,
    .on_close = on_proxy_close,
};

static void open_stream(http_request_t *req, const char *device_id, const char *base_url)
{
    front_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        api_reply_unavailable(req, "memory", "front door");
        return;
    }
    f->req = req;
    f->refs = 1;
    f->refusal = BUF_INIT(REFUSAL_MAX);
    snprintf(f->device_id, sizeof(f->device_id), "%s", device_id);
    f->websocket = slice_eq(http_request_method(req), "GET") &&
                   slice_case_eq(http_request_header(req, "upgrade"), "websocket");
    const char *why = NULL;
    /* WebSocket upgrades keep a connection of their own (forward/ws); plain requests take a
     * stream of the replica's channel when it is up. */
    if (!f->websocket)
        f->client = proxy_channel_client(api_app(req)->channels, base_url, &proxy_client_cfg,
                                         &proxy_ops, f);
    f->via_channel = f->client != NULL;
    if (f->client == NULL)
        f->client = http_client_open(api_app(req)->loop, base_url, &proxy_client_cfg,
                                     &proxy_ops, f, &why);
    if (f->client == NULL) {
        log_error("front_door.bad_route", "device=%s why=\"%s\"", device_id, why);
        free(f);
        http_reply_error(req, 502, "TUNNEL_ERROR", "The device could not be reached.");
        return;
    }
    http_request_on_abort(req, on_browser_gone, f);
    const api_config_t *cfg = api_app(req)->cfg;
    char bearer[300];
    snprintf(bearer, sizeof(bearer), "Bearer %s", cfg->internal_token);
    http_header_t h[HTTP_MAX_HEADERS];
    size_t n = 0;
    if (!f->via_channel) /* the channel was authenticated when it opened */
        h[n++] = (http_header_t){SLICE_LIT("Authorization"), slice_from(bearer)};
    h[n++] = (http_header_t){SLICE_LIT("X-Device-Id"), slice_from(f->device_id)};
    h[n++] = (http_header_t){SLICE_LIT("X-Request-Id"), slice_from(http_request_id(req))};
    h[n++] = (http_header_t){SLICE_LIT("Connection"), SLICE_LIT("Upgrade")};
    buf_t path = BUF_INIT(16 * 1024);
    int rc;
    if (!f->websocket) {
        h[n++] = (http_header_t){SLICE_LIT("Upgrade"), SLICE_LIT("edgegate-stream")};
        rc = http_client_request(f->client, "POST", SLICE_LIT("/internal/forward/raw"),
                                 f->via_channel ? SLICE_LIT("remote-proxy") : SLICE_NULL, h, n,
                                 0);
    } else {
        /* The browser's handshake headers travel to the device; the proxy keeps the rest. */
        const http_head_t *bh = http_request_head(req);
        slice_t rest = http_request_param(req, "path");
        rc = buf_printf(&path, "/%.*s", (int)rest.len, rest.ptr);
        if (bh->query.len > 0)
            rc |= buf_printf(&path, "?%.*s", (int)bh->query.len, bh->query.ptr);
        h[n++] = (http_header_t){SLICE_LIT("Upgrade"), SLICE_LIT("websocket")};
        h[n++] = (http_header_t){SLICE_LIT("X-Forward-Path"), (slice_t){path.data, path.len}};
        for (unsigned i = 0; i < bh->nheaders && n < HTTP_MAX_HEADERS; i++) {
            slice_t name = bh->headers[i].name;
            if (name.len > 14 && strncasecmp(name.ptr, "sec-websocket-", 14) == 0)
                h[n++] = bh->headers[i];
        }
        rc = rc < 0 ? UV_ENOMEM
                    : http_client_request(f->client, "GET", SLICE_LIT("/internal/forward/ws"),
                                          SLICE_NULL, h, n, -1);
    }
    buf_free(&path);
    if (rc < 0) {
        finish_error(f, 400, "INVALID_REQUEST", "The request cannot be forwarded.");
        http_client_close(f->client, rc, "request not sent", 1);
    }
}

/* ---- the handler: ownership, then the route ---- */

static void on_route(void *arg, redisReply *reply, const char *error)
{
    http_request_t *req = arg;
    if (api_redis_failed(req, reply, error))
        return;
    const char *device_id = api_state(req);
    const char *base = api_app(req)->cfg->internal_url;
    if (reply->type == REDIS_REPLY_STRING && reply->len > 0 && reply->len < ROUTE_URL_MAX)
        base = reply->str;
    open_stream(req, device_id, base);
}

static void on_device(http_request_t *req, const char *id)
{
    char *device_id = api_state_new(req, UUID_TEXT_LEN + 1, NULL);
    if (device_id == NULL)
        return;
    snprintf(device_id, UUID_TEXT_LEN + 1, "%s", id);
    char key[DEVICE_ROUTE_KEY_MAX];
    device_route_key(device_id, key);
    const char *argv[2] = {"GET", key};
    if (api_redis_send(api_app(req), on_route, req, 2, argv) < 0)
        api_reply_unavailable(req, "redis", "closed");
}

void api_device_proxy(http_request_t *req)
{
    device_check_or_reply(req, "id", on_device);
}
