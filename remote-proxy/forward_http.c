/*
 * POST /internal/forward/http: one HTTP/1.1 exchange with the device, described in JSON.
 *   in   {device_id | session_token, method, path, headers{name: value | [values]}, body: base64}
 *   out  200 {status, headers{name: [values]}, body: base64}
 * The request goes out on a fresh yamux stream (as much as the window takes, the rest when it
 * reopens); the response is parsed with llhttp and collected up to MAX_RESPONSE. Errors are
 * 502 with TUNNEL_DISCONNECTED / TUNNEL_ERROR / TUNNEL_WRITE_ERROR / TUNNEL_READ_ERROR.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/http_json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "remote-proxy/routes.h"

/* Whole bodies travel base64'd inside JSON here; big or streaming bodies use forward/raw. */
#define MAX_REQUEST_BODY (1024 * 1024)
#define MAX_RESPONSE (8 * 1024 * 1024)
#define MAX_HEADER_FIELD 256
#define FORWARD_TIMEOUT_MS 30000

typedef struct forward {
    tunnel_binding_t binding;
    http_request_t *req; /* NULL once answered */
    yamux_stream *st;
    uv_timer_t timer;
    buf_t out;           /* the request bytes for the device */
    size_t out_off;
    llhttp_t parser;
    llhttp_settings_t settings;
    json_t *headers;     /* response headers: name -> [values] */
    char field[MAX_HEADER_FIELD];
    size_t field_len;
    buf_t value;
    buf_t body;
    uint64_t started_ns;
    int head_request;
    int complete;
} forward_t;

static metric_t *m_latency, *m_errors_disconnected, *m_errors_tunnel, *m_errors_write,
    *m_errors_read;

static void metrics_init(void)
{
    if (m_latency != NULL)
        return;
    m_latency = metrics_histogram("edgegate_forward_http_duration_seconds",
                                  "forward/http from request to the device's full answer.", NULL,
                                  metrics_latency_bounds, metrics_latency_nbounds);
    const char *h = "Forwarding errors by code.";
    m_errors_disconnected =
        metrics_counter("edgegate_forward_errors_total", h, "code=\"TUNNEL_DISCONNECTED\"");
    m_errors_tunnel = metrics_counter("edgegate_forward_errors_total", h, "code=\"TUNNEL_ERROR\"");
    m_errors_write =
        metrics_counter("edgegate_forward_errors_total", h, "code=\"TUNNEL_WRITE_ERROR\"");
    m_errors_read = metrics_counter("edgegate_forward_errors_total", h, "code=\"TUNNEL_READ_ERROR\"");
}

static void on_timer_closed(uv_handle_t *h)
{
    forward_t *f = h->data;
    json_decref(f->headers);
    buf_free(&f->out);
    buf_free(&f->value);
    buf_free(&f->body);
    free(f);
}

/* The forward ends once it has answered and its stream is gone. */
static void forward_maybe_free(forward_t *f)
{
    if (f->req == NULL && f->st == NULL && !uv_is_closing((uv_handle_t *)&f->timer))
        uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void fail(forward_t *f, const char *code, const char *message)
{
    if (f->req == NULL)
        return;
    metric_t *m = strcmp(code, "TUNNEL_DISCONNECTED") == 0 ? m_errors_disconnected
                  : strcmp(code, "TUNNEL_WRITE_ERROR") == 0 ? m_errors_write
                  : strcmp(code, "TUNNEL_READ_ERROR") == 0  ? m_errors_read
                                                             : m_errors_tunnel;
    metric_inc(m);
    http_reply_error(f->req, 502, code, message);
    f->req = NULL;
    uv_timer_stop(&f->timer);
    if (f->st != NULL)
        yamux_stream_reset(f->st);
    forward_maybe_free(f);
}

static void succeed(forward_t *f)
{
    if (f->req == NULL)
        return;
    size_t b64len = crypto_b64_len(f->body.len);
    char *b64 = malloc(b64len + 1);
    if (b64 == NULL) {
        fail(f, "TUNNEL_READ_ERROR", "Out of memory.");
        return;
    }
    crypto_b64_encode(f->body.data ? f->body.data : "", f->body.len, b64);
    json_t *doc = json_pack("{s:i,s:O,s:s}", "status", llhttp_get_status_code(&f->parser),
                            "headers", f->headers, "body", b64);
    free(b64);
    metric_observe(m_latency, (double)(uv_hrtime() - f->started_ns) / 1e9);
    http_reply_json(f->req, 200, doc);
    f->req = NULL;
    uv_timer_stop(&f->timer);
    if (f->st != NULL)
        yamux_stream_close(f->st); /* we are done sending too; the stream ends cleanly */
    forward_maybe_free(f);
}

/* ---- the device's response ---- */

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    forward_t *f = p->data;
    if (f->field_len + len >= sizeof(f->field))
        return -1;
    memcpy(f->field + f->field_len, at, len);
    f->field_len += len;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    forward_t *f = p->data;
    return buf_append(&f->value, at, len) < 0 ? -1 : 0;
}

static int on_value_done(llhttp_t *p)
{
    forward_t *f = p->data;
    char name[MAX_HEADER_FIELD];
    for (size_t i = 0; i < f->field_len; i++) /* header names are case-insensitive: lower */
        name[i] = (char)((f->field[i] >= 'A' && f->field[i] <= 'Z') ? f->field[i] + 32 : f->field[i]);
    name[f->field_len] = '\0';
    json_t *list = json_object_get(f->headers, name);
    if (list == NULL) {
        list = json_array();
        json_object_set_new(f->headers, name, list);
    }
    json_array_append_new(list, json_stringn(f->value.data ? f->value.data : "", f->value.len));
    f->field_len = 0;
    buf_reset(&f->value);
    return 0;
}

static int on_headers_done(llhttp_t *p)
{
    forward_t *f = p->data;
    /* A response to HEAD has no body whatever its Content-Length says. */
    return f->head_request ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    forward_t *f = p->data;
    return buf_append(&f->body, at, len) < 0 ? -1 : 0;
}

static int on_complete(llhttp_t *p)
{
    forward_t *f = p->data;
    f->complete = 1;
    return HPE_PAUSED;
}

static void st_on_data(void *arg, yamux_stream *st, const uint8_t *data, size_t len)
{
    forward_t *f = arg;
    yamux_stream_consumed(st, len); /* collected in memory, bounded by MAX_RESPONSE */
    if (f->req == NULL || f->complete)
        return;
    enum llhttp_errno err = llhttp_execute(&f->parser, (const char *)data, len);
    if (f->complete) {
        succeed(f);
    } else if (err != HPE_OK) {
        fail(f, "TUNNEL_READ_ERROR",
             f->body.len >= MAX_RESPONSE ? "The device's answer is too large for forward/http."
                                         : "The device's answer is not valid HTTP.");
    }
}

static void st_on_fin(void *arg, yamux_stream *st)
{
    forward_t *f = arg;
    (void)st;
    if (f->req == NULL || f->complete)
        return;
    /* A body delimited by the end of the connection ends here. on_complete pauses, and
     * llhttp_finish passes that on: HPE_PAUSED is a complete response too. */
    enum llhttp_errno err = llhttp_finish(&f->parser);
    if ((err == HPE_OK || err == HPE_PAUSED) && f->complete)
        succeed(f);
    else
        fail(f, "TUNNEL_READ_ERROR", "The device closed the stream before answering.");
}

static void push_request(forward_t *f)
{
    while (f->out_off < f->out.len) {
        ssize_t n = yamux_stream_write(f->st, f->out.data + f->out_off, f->out.len - f->out_off);
        if (n < 0) {
            fail(f, "TUNNEL_WRITE_ERROR", "The request could not be sent to the device.");
            return;
        }
        if (n == 0)
            return; /* the window reopens later: on_writable */
        f->out_off += (size_t)n;
    }
    buf_free(&f->out);
}

static void st_on_writable(void *arg, yamux_stream *st)
{
    (void)st;
    push_request(arg);
}

static void st_on_closed(void *arg, yamux_stream *st, yamux_close_reason reason)
{
    forward_t *f = arg;
    (void)st;
    f->st = NULL;
    if (reason == YAMUX_CLOSE_SESSION)
        fail(f, "TUNNEL_DISCONNECTED", "The device disconnected.");
    else if (!f->complete)
        fail(f, "TUNNEL_ERROR", "The device reset the stream.");
    forward_maybe_free(f);
}

static const tunnel_stream_ops_t forward_ops = {st_on_data, st_on_fin, st_on_writable,
                                                st_on_closed};

static void on_timeout(uv_timer_t *t)
{
    fail(t->data, "TUNNEL_READ_ERROR", "The device did not answer in time.");
}

static void on_abort(http_request_t *req, void *arg)
{
    forward_t *f = arg;
    (void)req;
    /* The request must still be finished: answering an aborted request discards it. */
    fail(f, "TUNNEL_ERROR", "The client went away.");
}

/* ---- the request ---- */

static int token_ok(const char *s, int allow_space)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || (c == ' ' && !allow_space) || c == '\r' || c == '\n')
            return 0;
    }
    return 1;
}

static int hop_by_hop(const char *name)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                      "trailer", "transfer-encoding", "upgrade", "host",
                                      "content-length"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (strcasecmp(name, hop[i]) == 0)
            return 1;
    return 0;
}

/* Writes the request for the device into out; returns NULL or why the JSON is refused. */
static const char *build_request(buf_t *out, const char *method, const char *path,
                                 const json_t *headers, const uint8_t *body, size_t body_len)
{
    if (!token_ok(method, 0) || strlen(method) > 32)
        return "method must be an HTTP method token";
    if (path[0] != '/' || !token_ok(path, 0))
        return "path must start with / and hold no spaces or control characters";
    if (headers != NULL && !json_is_object(headers))
        return "headers must be an object";
    buf_printf(out, "%s %s HTTP/1.1\r\nHost: device\r\nConnection: close\r\n", method, path);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)headers, name, v)
    {
        if (!token_ok(name, 0) || strchr(name, ':') != NULL)
            return "header names must be tokens";
        if (hop_by_hop(name))
            continue;
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;
            if (!json_is_string(one) || !token_ok(json_string_value(one), 1))
                return "header values must be strings without control characters";
            if (buf_printf(out, "%s: %s\r\n", name, json_string_value(one)) < 0)
                return "headers too large";
        }
    }
    if (buf_printf(out, "Content-Length: %zu\r\n\r\n", body_len) < 0 ||
        buf_append(out, body, body_len) < 0)
        return "request too large";
    return NULL;
}

void proxy_forward_http(http_request_t *req)
{
    metrics_init();
    json_t *doc = http_body_json_or_reply(req);
    if (doc == NULL)
        return;
    const char *device_id = json_str(doc, "device_id");
    const char *session_token = json_str(doc, "session_token");
    const char *method = json_str(doc, "method");
    const char *path = json_str(doc, "path");
    const char *body64 = json_str(doc, "body");
    if (method == NULL)
        method = "GET";
    if (path == NULL)
        path = "/";
    uint8_t *body = NULL;
    long body_len = 0;
    if (body64 != NULL && body64[0] != '\0') {
        size_t cap = strlen(body64) / 4 * 3 + 3;
        body = malloc(cap);
        body_len = body ? crypto_b64_decode(body64, strlen(body64), body, cap) : -1;
        if (body_len < 0 || body_len > MAX_REQUEST_BODY) {
            free(body);
            json_decref(doc);
            http_reply_error(req, 400, "INVALID_BODY", "body must be base64 (at most 1 MiB).");
            return;
        }
    }
    forward_t *f = calloc(1, sizeof(*f));
    f->out = BUF_INIT(MAX_REQUEST_BODY + 64 * 1024);
    const char *why = build_request(&f->out, method, path, json_object_get(doc, "headers"),
                                    body ? body : (const uint8_t *)"", (size_t)body_len);
    f->head_request = strcmp(method, "HEAD") == 0;
    free(body);
    if (why != NULL) {
        json_decref(doc);
        buf_free(&f->out);
        free(f);
        http_reply_error(req, 400, "INVALID_JSON", why);
        return;
    }
    tunnel_t *t = proxy_tunnel_or_reply(req, device_id, session_token);
    json_decref(doc);
    if (t == NULL) {
        metric_inc(m_errors_disconnected);
        buf_free(&f->out);
        free(f);
        return;
    }
    f->binding = (tunnel_binding_t){&forward_ops, f};
    f->headers = json_object();
    f->value = BUF_INIT(16 * 1024);
    f->body = BUF_INIT(MAX_RESPONSE);
    f->started_ns = uv_hrtime();
    llhttp_settings_init(&f->settings);
    f->settings.on_header_field = on_field;
    f->settings.on_header_value = on_value;
    f->settings.on_header_value_complete = on_value_done;
    f->settings.on_headers_complete = on_headers_done;
    f->settings.on_body = on_body;
    f->settings.on_message_complete = on_complete;
    llhttp_init(&f->parser, HTTP_RESPONSE, &f->settings);
    f->parser.data = f;
    uv_timer_init(proxy_app(req)->loop, &f->timer);
    f->timer.data = f;
    f->req = req;
    int err = 0;
    f->st = tunnel_open_stream(t, &f->binding, &err);
    if (f->st == NULL) {
        fail(f, "TUNNEL_ERROR", yamux_strerror(err));
        return;
    }
    http_request_on_abort(req, on_abort, f);
    uv_timer_start(&f->timer, on_timeout, FORWARD_TIMEOUT_MS, 0);
    push_request(f);
}
