/*
 * GET /internal/mux: one connection from an api-server carrying many forward/raw exchanges at
 * once, as a yamux session (the api-server is the yamux client and opens the streams).
 *
 * Each stream carries what one connection to POST /internal/forward/raw carries: a request
 * head (read with http_reader, bounded), then either our 101 and the device's bytes both ways,
 * or the JSON error forward/raw would give and the end of the stream. The channel itself is
 * authenticated (the internal token on the upgrade), so stream heads carry no credential.
 *
 * The splice between a channel stream and a device stream keeps forward/raw's guarantees, with
 * a yamux_pump per direction: a side's bytes are reported consumed (which reopens its window)
 * only as the other side's window takes them, so at most one window waits per direction; FIN
 * and RST cross over. The channel connection's write queue has a high-water mark: above it
 * no stream moves device bytes into the channel until the queue drains, so many streams
 * cannot pile up output. A stream's failure is its own; the channel's failure ends its streams.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/http_json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "remote-proxy/routes.h"
#include "proto/yamux_pump.h"

/* A stream's request head: the same bound as the internal port's. */
#define MUX_MAX_HEAD (16 * 1024)
/* Output queued on the channel connection before device bytes stop moving into it. */
#define MUX_HIGH_WATER (1024 * 1024)

typedef struct mux_stream mux_stream_t;

typedef struct channel {
    http_conn_t *conn; /* NULL once closed */
    yamux_session *sess;
    mux_stream_t *streams; /* every stream of the channel, for the drain */
    int congested;         /* the connection's queue is above MUX_HIGH_WATER */
} channel_t;

/* Reading a stream's head; freed once it is read. */
typedef struct mux_head {
    http_reader_t reader;
    http_head_t head;
    char arena[MUX_MAX_HEAD];
} mux_head_t;

struct mux_stream {
    channel_t *ch;
    yamux_stream *cst; /* on the channel; NULL once closed */
    yamux_stream *dst; /* on the device's tunnel; NULL before the splice and once closed */
    tunnel_binding_t binding;
    yamux_pump_t to_device;  /* channel bytes into dst */
    yamux_pump_t to_channel; /* device bytes (and our answers) into cst */
    mux_head_t *head;         /* while the head is read */
    int busy;                 /* an entry point from the loop is using it: not freed yet */
    mux_stream_t *prev, *next;
};

static metric_t *m_channels, *m_streams;

static void metrics_init(void)
{
    if (m_channels != NULL)
        return;
    m_channels = metrics_gauge("edgegate_mux_channels", "Open channels from api-servers.", NULL);
    m_streams = metrics_counter("edgegate_mux_streams_total",
                                "Streams carried by channels from api-servers.", NULL);
}

static void ms_maybe_free(mux_stream_t *ms)
{
    if (ms->cst != NULL || ms->dst != NULL || ms->busy > 0)
        return;
    yamux_pump_free(&ms->to_device);
    yamux_pump_free(&ms->to_channel);
    free(ms->head);
    free(ms);
}

static void ms_unlink(mux_stream_t *ms)
{
    if (ms->prev != NULL)
        ms->prev->next = ms->next;
    else if (ms->ch != NULL)
        ms->ch->streams = ms->next;
    if (ms->next != NULL)
        ms->next->prev = ms->prev;
    ms->prev = ms->next = NULL;
    ms->ch = NULL;
}

/* ---- the device's stream ---- */

static void dev_on_data(void *arg, yamux_stream *st, const uint8_t *data, size_t len)
{
    mux_stream_t *ms = arg;
    if (ms->cst == NULL) {
        yamux_stream_consumed(st, len); /* nobody left to read it */
        return;
    }
    ssize_t n = yamux_pump_write(&ms->to_channel, data, len);
    if (n > 0)
        yamux_stream_consumed(st, (size_t)n); /* the rest when the channel takes it */
}

static void dev_on_fin(void *arg, yamux_stream *st)
{
    mux_stream_t *ms = arg;
    (void)st;
    yamux_pump_finish(&ms->to_channel);
}

static void dev_on_writable(void *arg, yamux_stream *st)
{
    mux_stream_t *ms = arg;
    (void)st;
    yamux_stream *cst = ms->cst;
    ssize_t n = yamux_pump_flush(&ms->to_device);
    if (n > 0 && cst != NULL && ms->cst == cst)
        yamux_stream_consumed(cst, (size_t)n);
}

static void dev_on_closed(void *arg, yamux_stream *st, yamux_close_reason reason)
{
    mux_stream_t *ms = arg;
    (void)st;
    ms->dst = NULL;
    ms->to_device.dst = NULL;
    /* Both ends said FIN: the channel side ends once what is pending is out. Otherwise the
     * device's reset (or its tunnel's end) is the client's too. */
    if (reason != YAMUX_CLOSE_NORMAL && ms->cst != NULL) {
        yamux_stream_reset(ms->cst); /* may free ms through cst's on_closed */
        return;
    }
    ms_maybe_free(ms);
}

static const tunnel_stream_ops_t dev_ops = {dev_on_data, dev_on_fin, dev_on_writable,
                                            dev_on_closed};

/* ---- answering a stream's head ---- */

/* The JSON error forward/raw gives, then the end of our side of the stream. */
static void ms_refuse(mux_stream_t *ms, int status, const char *code, const char *message)
{
    free(ms->head); /* what follows on the stream is dropped, never read as a head again */
    ms->head = NULL;
    json_t *doc = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, http_status_text(status), body ? strlen(body) : 0);
    if (yamux_pump_write(&ms->to_channel, head, (size_t)n) >= 0 &&
        (body == NULL || yamux_pump_write(&ms->to_channel, body, strlen(body)) >= 0))
        yamux_pump_finish(&ms->to_channel);
    free(body);
}

/* The head is read: open the device's stream and answer 101, or refuse. rest: bytes after the
 * head, already the device's. Returns the bytes of rest that may be reported consumed. */
static size_t ms_start(mux_stream_t *ms, const char *rest, size_t len)
{
    const http_head_t *h = &ms->head->head;
    if (!slice_eq(h->method, "POST") || !slice_eq(h->path, "/internal/forward/raw")) {
        ms_refuse(ms, 404, "NOT_FOUND", "A channel stream carries POST /internal/forward/raw.");
        return len;
    }
    if (!h->upgrade || !slice_has_token(http_head_header(h, "upgrade"), "edgegate-stream")) {
        ms_refuse(ms, 400, "UPGRADE_REQUIRED",
                  "Send Connection: Upgrade and Upgrade: edgegate-stream.");
        return len;
    }
    proxy_refusal_t no;
    tunnel_t *t = proxy_tunnel_named(h, NULL, NULL, &no);
    if (t == NULL) {
        ms_refuse(ms, no.status, no.code, no.message);
        return len;
    }
    int err = 0;
    ms->binding = (tunnel_binding_t){&dev_ops, ms};
    ms->dst = tunnel_open_stream(t, &ms->binding, &err);
    if (ms->dst == NULL) {
        ms_refuse(ms, 502, "TUNNEL_ERROR", yamux_strerror(err));
        return len;
    }
    ms->to_device.dst = ms->dst;
    free(ms->head);
    ms->head = NULL;
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: edgegate-stream\r\n"
                             "Connection: Upgrade\r\n\r\n";
    if (yamux_pump_write(&ms->to_channel, ok, sizeof(ok) - 1) < 0 || len == 0)
        return 0;
    ssize_t n = yamux_pump_write(&ms->to_device, rest, len);
    return n > 0 ? (size_t)n : 0;
}

/* Head bytes from the channel. Returns the bytes that may be reported consumed now. */
static size_t ms_read_head(mux_stream_t *ms, const char *data, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        slice_t body;
        enum http_reader_event ev =
            http_reader_feed(&ms->head->reader, data + off, len - off, &used, &body);
        off += used;
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            return off;
        case HTTP_READER_HEAD:
        case HTTP_READER_BODY:
            break; /* a body is not expected; it is read and dropped */
        case HTTP_READER_DONE:
        case HTTP_READER_UPGRADE:
            return off + ms_start(ms, data + off, len - off);
        case HTTP_READER_ERROR: {
            int status = http_reader_error_status(&ms->head->reader);
            ms_refuse(ms, status, status == 431 ? "HEADERS_TOO_LARGE" : "BAD_REQUEST",
                      "The stream's request head is malformed.");
            return len;
        }
        }
    }
}

/* ---- the channel's streams ---- */

static void ch_on_stream(void *user, yamux_stream *st)
{
    channel_t *ch = user;
    mux_stream_t *ms = calloc(1, sizeof(*ms));
    mux_head_t *head = ms ? malloc(sizeof(*head)) : NULL;
    if (head == NULL || yamux_stream_accept(st) < 0) {
        free(ms);
        free(head);
        yamux_stream_reset(st);
        return;
    }
    metric_inc(m_streams);
    ms->ch = ch;
    ms->cst = st;
    ms->head = head;
    ms->to_channel.dst = st;
    ms->to_channel.gate = &ch->congested;
    http_reader_init(&head->reader);
    http_reader_begin(&head->reader, &head->head, head->arena, sizeof(head->arena));
    yamux_stream_set_user(st, ms);
    ms->next = ch->streams;
    if (ch->streams != NULL)
        ch->streams->prev = ms;
    ch->streams = ms;
}

static void ch_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    (void)user;
    mux_stream_t *ms = yamux_stream_user(st);
    size_t done;
    if (ms->head != NULL)
        done = ms_read_head(ms, (const char *)data, len);
    else if (ms->dst != NULL) {
        ssize_t n = yamux_pump_write(&ms->to_device, data, len);
        done = n > 0 ? (size_t)n : 0; /* the rest when the device's window takes it */
    } else
        done = len; /* refused, or the device's side is gone: dropped */
    yamux_stream_consumed(st, done);
}

static void ch_on_fin(void *user, yamux_stream *st)
{
    (void)user;
    mux_stream_t *ms = yamux_stream_user(st);
    if (ms->head != NULL) {
        yamux_stream_reset(st); /* ended before its head did */
        return;
    }
    yamux_pump_finish(&ms->to_device);
}

static void ch_on_writable(void *user, yamux_stream *st)
{
    (void)user;
    mux_stream_t *ms = yamux_stream_user(st);
    yamux_stream *dst = ms->dst;
    ssize_t n = yamux_pump_flush(&ms->to_channel);
    if (n > 0 && dst != NULL && ms->dst == dst)
        yamux_stream_consumed(dst, (size_t)n);
}

static void ch_on_closed(void *user, yamux_stream *st, yamux_close_reason reason)
{
    (void)user;
    mux_stream_t *ms = yamux_stream_user(st);
    if (ms == NULL)
        return; /* refused before it had one */
    ms_unlink(ms);
    ms->cst = NULL;
    ms->to_channel.dst = NULL;
    /* After FIN both ways the device's side ends on its own once its bytes are out; a reset or
     * the channel's end is passed on. */
    if (reason != YAMUX_CLOSE_NORMAL && ms->dst != NULL) {
        yamux_stream_reset(ms->dst); /* may free ms through dev_on_closed */
        return;
    }
    ms_maybe_free(ms);
}

static int ch_send(void *user, const yamux_iov *iov, int iovcnt)
{
    channel_t *ch = user;
    if (ch->conn == NULL)
        return -1;
    uv_buf_t bufs[2];
    for (int i = 0; i < iovcnt; i++)
        bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    long queued = http_conn_writev(ch->conn, bufs, (unsigned)iovcnt);
    if (queued < 0)
        return -1;
    if (queued > MUX_HIGH_WATER)
        ch->congested = 1; /* until the connection drains */
    return 0;
}

static const yamux_callbacks ch_callbacks = {
    .send = ch_send,
    .on_stream = ch_on_stream,
    .on_data = ch_on_data,
    .on_fin = ch_on_fin,
    .on_writable = ch_on_writable,
    .on_closed = ch_on_closed,
};

/* ---- the channel's connection ---- */

static void conn_on_data(void *arg, const char *data, size_t len)
{
    channel_t *ch = arg;
    int rc = yamux_session_feed(ch->sess, data, len);
    if (rc < 0 && ch->conn != NULL) {
        log_warn("mux.channel_failed", "remote=%s err=\"%s\"", http_conn_remote_addr(ch->conn),
                 yamux_strerror(rc));
        http_conn_close(ch->conn);
    }
}

/* The queue is empty: the streams held back by the high-water mark move again. */
static void conn_on_drain(void *arg)
{
    channel_t *ch = arg;
    ch->congested = 0;
    mux_stream_t *ms = ch->streams;
    while (ms != NULL && !ch->congested) {
        mux_stream_t *next = ms->next; /* ms leaves the list if its channel stream closes */
        ms->busy++;
        if (yamux_pump_pending(&ms->to_channel) > 0) {
            yamux_stream *dst = ms->dst;
            ssize_t n = yamux_pump_flush(&ms->to_channel);
            if (n > 0 && dst != NULL && ms->dst == dst)
                yamux_stream_consumed(dst, (size_t)n);
        }
        ms->busy--;
        ms_maybe_free(ms); /* unlinked when its channel stream closed meanwhile */
        if (yamux_session_error(ch->sess) != 0)
            break; /* the session failed while writing: every stream is gone */
        ms = next;
    }
}

static void conn_on_close(void *arg)
{
    channel_t *ch = arg;
    ch->conn = NULL;
    /* Every stream ends (on_closed with YAMUX_CLOSE_SESSION), and so do their device sides. */
    yamux_session_free(ch->sess);
    metric_add(m_channels, -1);
    free(ch);
}

static void conn_on_shutdown(void *arg)
{
    channel_t *ch = arg;
    yamux_session_goaway(ch->sess, YAMUX_GOAWAY_NORMAL);
    http_conn_close(ch->conn);
}

static const http_conn_ops_t channel_conn_ops = {
    .on_data = conn_on_data,
    .on_drain = conn_on_drain,
    .on_close = conn_on_close,
    .on_shutdown = conn_on_shutdown,
};

void proxy_mux(http_request_t *req)
{
    metrics_init();
    if (!http_request_head(req)->upgrade ||
        !slice_has_token(http_request_header(req, "upgrade"), "edgegate-mux")) {
        http_reply_error(req, 400, "UPGRADE_REQUIRED",
                         "Send Connection: Upgrade and Upgrade: edgegate-mux.");
        return;
    }
    channel_t *ch = calloc(1, sizeof(*ch));
    yamux_config cfg;
    yamux_config_init(&cfg, false);
    if (ch == NULL || yamux_session_new(&cfg, &ch_callbacks, ch, &ch->sess) < 0) {
        free(ch);
        http_reply_error(req, 503, "SERVICE_UNAVAILABLE", "Out of memory.");
        return;
    }
    http_header_t hdrs[2] = {{SLICE_LIT("Upgrade"), SLICE_LIT("edgegate-mux")},
                             {SLICE_LIT("Connection"), SLICE_LIT("Upgrade")}};
    ch->conn = http_request_upgrade(req, hdrs, 2, &channel_conn_ops, ch);
    if (ch->conn == NULL) {
        yamux_session_free(ch->sess);
        free(ch);
        return;
    }
    metric_add(m_channels, 1);
    log_info("mux.channel_open", "remote=%s", http_conn_remote_addr(ch->conn));
}
