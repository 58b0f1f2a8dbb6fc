#include "remote-proxy/tunnel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/strmap.h"

/* A Ping every EDGEGATE_TUNNEL_KEEPALIVE (30 s); a tunnel that sends nothing for two intervals
 * and a bit is dead. The route key outlives three refreshes, so one slow turn of the loop does
 * not make a device unreachable. */

struct tunnel {
    proxy_app_t *app;
    ws_t *ws;
    yamux_session *mux;
    uv_timer_t keepalive;
    uint64_t last_rx_ms;       /* loop time of the last byte from the agent */
    int64_t connected_at;      /* unix ms */
    int64_t last_heartbeat;    /* unix ms of the last pong */
    unsigned registered : 1;   /* it is the device's live tunnel */
    unsigned closing : 1;
    unsigned draining : 1;     /* shutting down: close once the last stream ends */
    char device_id[80];
    char user_id[80];
    char session_id[25]; /* 24 hex characters */
    char token_prefix[16];
    char agent_version[64];
    char remote[48];
};

static strmap_t *by_device, *by_session;

static uint64_t dead_after_ms(const tunnel_t *t)
{
    uint64_t k = t->app->cfg->keepalive_ms;
    return 2 * k + (k < 5000 ? k / 2 : 5000);
}

static int route_ttl_s(const tunnel_t *t)
{
    return (int)(3 * t->app->cfg->keepalive_ms / 1000 + 5);
}
static metric_t *m_tunnels, *m_connects, *m_replaced, *m_dead, *m_protocol_errors;

int tunnel_registry_init(void)
{
    by_device = strmap_new();
    by_session = strmap_new();
    m_tunnels = metrics_gauge("edgegate_tunnels", "Live edge-agent tunnels.", NULL);
    m_connects = metrics_counter("edgegate_tunnel_connects_total", "Tunnels established.", NULL);
    m_replaced = metrics_counter("edgegate_tunnel_replaced_total",
                                 "Tunnels replaced by a newer one of the same device.", NULL);
    m_dead = metrics_counter("edgegate_tunnel_dead_total",
                             "Tunnels closed because the agent stopped answering pings.", NULL);
    m_protocol_errors = metrics_counter("edgegate_tunnel_protocol_errors_total",
                                        "Tunnels closed for a yamux or WebSocket violation.", NULL);
    return by_device && by_session ? 0 : -1;
}

void tunnel_registry_free(void)
{
    strmap_free(by_device);
    strmap_free(by_session);
    by_device = by_session = NULL;
}

static void ignore_reply(void *arg, redisReply *reply, const char *error)
{
    const char *what = arg;
    if (error != NULL)
        log_warn("tunnel.redis_failed", "op=%s error=\"%s\"", what, error);
    (void)reply;
}

static void publish_event(tunnel_t *t, const char *type)
{
    char at[CLOCK_ISO8601_LEN];
    clock_iso8601(clock_unix_ms(), at);
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "device_id", t->device_id,
                           "user_id", t->user_id, "session_id", t->session_id, "at", at);
    char *text = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (text != NULL)
        redis_command(t->app->redis, ignore_reply, (void *)"publish", "PUBLISH edgegate:events %s",
                      text);
    free(text);
}

static void refresh_route(tunnel_t *t)
{
    redis_command(t->app->redis, ignore_reply, (void *)"route", "SET tunnel:route:%s %s EX %d",
                  t->device_id, t->app->cfg->internal_url, route_ttl_s(t));
}

/* Deletes the route only while it still names this replica: a newer tunnel of the device may
 * already be registered elsewhere. */
static void drop_route(tunnel_t *t)
{
    redis_command(t->app->redis, ignore_reply, (void *)"unroute",
                  "EVAL %s 1 tunnel:route:%s %s",
                  "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                  "return redis.call('DEL', KEYS[1]) end return 0",
                  t->device_id, t->app->cfg->internal_url);
}

static void unregister(tunnel_t *t)
{
    if (!t->registered)
        return;
    t->registered = 0;
    if (strmap_get(by_device, t->device_id) == t)
        strmap_del(by_device, t->device_id);
    strmap_del(by_session, t->session_id);
    metric_set(m_tunnels, (double)strmap_count(by_session));
}

/* ---- yamux ---- */

static int mux_send(void *user, const yamux_iov *iov, int iovcnt)
{
    tunnel_t *t = user;
    if (t->ws == NULL || t->closing)
        return -1;
    uv_buf_t bufs[2];
    for (int i = 0; i < iovcnt; i++)
        bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    return ws_sendv(t->ws, bufs, (unsigned)iovcnt) < 0 ? -1 : 0;
}

static void mux_on_stream(void *user, yamux_stream *st)
{
    /* Agents accept streams; they do not open them. */
    (void)user;
    yamux_stream_reset(st);
}

static void mux_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    tunnel_binding_t *b = yamux_stream_user(st);
    (void)user;
    if (b != NULL && b->ops->on_data)
        b->ops->on_data(b->arg, st, data, len);
    else
        yamux_stream_consumed(st, len);
}

static void mux_on_fin(void *user, yamux_stream *st)
{
    tunnel_binding_t *b = yamux_stream_user(st);
    (void)user;
    if (b != NULL && b->ops->on_fin)
        b->ops->on_fin(b->arg, st);
}

static void mux_on_writable(void *user, yamux_stream *st)
{
    tunnel_binding_t *b = yamux_stream_user(st);
    (void)user;
    if (b != NULL && b->ops->on_writable)
        b->ops->on_writable(b->arg, st);
}

static void mux_on_closed(void *user, yamux_stream *st, yamux_close_reason reason)
{
    tunnel_t *t = user;
    tunnel_binding_t *b = yamux_stream_user(st);
    yamux_stream_set_user(st, NULL);
    if (b != NULL && b->ops->on_closed)
        b->ops->on_closed(b->arg, st, reason);
    if (t->draining && t->ws != NULL && !t->closing) {
        yamux_session_stats stats;
        yamux_session_get_stats(t->mux, &stats);
        if (stats.open_streams <= 1) /* this one is still counted until we return */
            tunnel_close(t, "drained");
    }
}

static void mux_on_pong(void *user, uint64_t rtt_ms)
{
    tunnel_t *t = user;
    t->last_heartbeat = clock_unix_ms();
    log_debug("tunnel.pong", "device=%s rtt_ms=%llu", t->device_id, (unsigned long long)rtt_ms);
}

static void mux_on_goaway(void *user, uint32_t code)
{
    tunnel_t *t = user;
    log_info("tunnel.agent_goaway", "device=%s code=%u", t->device_id, code);
}

static const yamux_callbacks mux_callbacks = {
    mux_send,        mux_on_stream, mux_on_data,    mux_on_fin,
    mux_on_writable, mux_on_closed, mux_on_pong,    mux_on_goaway,
};

/* ---- keepalive ---- */

static void on_keepalive(uv_timer_t *timer)
{
    tunnel_t *t = timer->data;
    if (t->closing || t->mux == NULL)
        return;
    uint64_t now = uv_now(timer->loop);
    if (now - t->last_rx_ms > dead_after_ms(t)) {
        metric_inc(m_dead);
        log_info("tunnel.dead", "device=%s session=%s silent_ms=%llu", t->device_id,
                 t->session_id, (unsigned long long)(now - t->last_rx_ms));
        t->closing = 1;
        ws_abort(t->ws);
        return;
    }
    yamux_session_ping(t->mux, now);
    if (t->registered)
        refresh_route(t);
}

/* ---- WebSocket ---- */

static void ws_on_data(void *arg, const uint8_t *data, size_t len)
{
    tunnel_t *t = arg;
    if (t->mux == NULL || t->closing)
        return;
    t->last_rx_ms = uv_now(t->app->loop);
    yamux_session_set_now(t->mux, t->last_rx_ms);
    int rc = yamux_session_feed(t->mux, data, len);
    if (rc < 0) {
        /* The GoAway went out with the session's failure; the agent's tunnel ends here and
         * nothing else is affected. */
        metric_inc(m_protocol_errors);
        log_warn("tunnel.protocol_error", "device=%s session=%s error=\"%s\"", t->device_id,
                 t->session_id, yamux_strerror(rc));
        t->closing = 1;
        ws_close(t->ws, WS_CLOSE_PROTOCOL_ERROR, "yamux protocol error");
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ws_on_close(void *arg, uint16_t code)
{
    tunnel_t *t = arg;
    int was_live = t->registered;
    unregister(t);
    t->closing = 1;
    t->ws = NULL;
    log_info("tunnel.closed", "device=%s session=%s code=%u live=%d", t->device_id,
             t->session_id, code, was_live);
    if (was_live) {
        drop_route(t);
        publish_event(t, "device.offline");
    }
    if (t->mux != NULL) {
        yamux_session_free(t->mux); /* every stream's owner hears on_closed */
        t->mux = NULL;
    }
    uv_timer_stop(&t->keepalive);
    uv_close((uv_handle_t *)&t->keepalive, on_timer_closed);
}

static void ws_on_shutdown(void *arg)
{
    tunnel_t *t = arg;
    if (t->mux == NULL || t->closing)
        return;
    yamux_session_goaway(t->mux, YAMUX_GOAWAY_NORMAL);
    yamux_session_stats stats;
    yamux_session_get_stats(t->mux, &stats);
    if (stats.open_streams == 0)
        tunnel_close(t, "shutdown");
    else
        t->draining = 1; /* the last stream to end closes it; the server's grace bounds it */
}

const ws_callbacks_t tunnel_ws_callbacks = {
    .on_data = ws_on_data, .on_close = ws_on_close, .on_shutdown = ws_on_shutdown,
};

/* Binary messages are a byte stream; a frame of any size is fine as nothing is buffered. */
const ws_options_t tunnel_ws_options = {.mode = WS_STREAM};

/* ---- lifecycle ---- */

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

tunnel_t *tunnel_new(proxy_app_t *app, const tunnel_identity_t *id)
{
    tunnel_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->app = app;
    copy_str(t->device_id, sizeof(t->device_id), id->device_id);
    copy_str(t->user_id, sizeof(t->user_id), id->user_id);
    copy_str(t->agent_version, sizeof(t->agent_version), id->agent_version);
    copy_str(t->remote, sizeof(t->remote), id->remote_addr);
    log_token_prefix(t->token_prefix, id->token, id->token_len);
    uint8_t rnd[12];
    crypto_random(rnd, sizeof(rnd));
    crypto_hex(rnd, sizeof(rnd), t->session_id);
    yamux_config cfg;
    yamux_config_init(&cfg, true);
    if (yamux_session_new(&cfg, &mux_callbacks, t, &t->mux) != 0) {
        free(t);
        return NULL;
    }
    uv_timer_init(app->loop, &t->keepalive);
    t->keepalive.data = t;
    return t;
}

void tunnel_discard(tunnel_t *t)
{
    yamux_session_free(t->mux);
    t->mux = NULL;
    uv_close((uv_handle_t *)&t->keepalive, on_timer_closed);
}

void tunnel_start(tunnel_t *t, ws_t *ws)
{
    t->ws = ws;
    t->connected_at = clock_unix_ms();
    t->last_heartbeat = t->connected_at;
    t->last_rx_ms = uv_now(t->app->loop);
    tunnel_t *old = strmap_get(by_device, t->device_id);
    if (old != NULL) {
        /* Agents reconnect after network changes; the newest tunnel is the real one. */
        metric_inc(m_replaced);
        log_info("tunnel.replaced", "device=%s old_session=%s new_session=%s", t->device_id,
                 old->session_id, t->session_id);
        unregister(old);
        tunnel_close(old, "replaced");
    }
    int err = 0;
    strmap_put(by_device, t->device_id, t, &err);
    strmap_put(by_session, t->session_id, t, &err);
    if (err) {
        log_error("tunnel.registry_full", "device=%s", t->device_id);
        t->closing = 1;
        ws_abort(ws);
        return;
    }
    t->registered = 1;
    metric_inc(m_connects);
    metric_set(m_tunnels, (double)strmap_count(by_session));
    uv_timer_start(&t->keepalive, on_keepalive, t->app->cfg->keepalive_ms,
                   t->app->cfg->keepalive_ms);
    refresh_route(t);
    publish_event(t, "device.online");
    log_info("tunnel.open", "device=%s user=%s session=%s remote=%s token=%s agent_version=\"%s\"",
             t->device_id, t->user_id, t->session_id, t->remote, t->token_prefix,
             t->agent_version);
}

void tunnel_close(tunnel_t *t, const char *why)
{
    if (t->closing || t->ws == NULL)
        return;
    t->closing = 1;
    log_debug("tunnel.closing", "device=%s session=%s why=%s", t->device_id, t->session_id, why);
    if (t->mux != NULL)
        yamux_session_goaway(t->mux, YAMUX_GOAWAY_NORMAL);
    ws_close(t->ws, WS_CLOSE_NORMAL, why);
}

static void goaway_one(const char *key, void *value, void *arg)
{
    (void)key;
    (void)arg;
    tunnel_t *t = value;
    if (t->mux != NULL)
        yamux_session_goaway(t->mux, YAMUX_GOAWAY_NORMAL);
}

void tunnel_goaway_all(void)
{
    strmap_each(by_session, goaway_one, NULL);
}

size_t tunnel_count(void)
{
    return by_session ? strmap_count(by_session) : 0;
}

tunnel_t *tunnel_find_device(const char *device_id)
{
    return strmap_get(by_device, device_id);
}

tunnel_t *tunnel_find_session(const char *session_id)
{
    return strmap_get(by_session, session_id);
}

yamux_stream *tunnel_open_stream(tunnel_t *t, tunnel_binding_t *b, int *err)
{
    yamux_stream *st = NULL;
    if (t->closing || t->mux == NULL) {
        *err = YAMUX_EGOAWAY;
        return NULL;
    }
    int rc = yamux_stream_open(t->mux, &st);
    if (rc != 0) {
        *err = rc;
        return NULL;
    }
    yamux_stream_set_user(st, b);
    return st;
}

const char *tunnel_device_id(const tunnel_t *t)
{
    return t->device_id;
}

json_t *tunnel_describe(const tunnel_t *t)
{
    yamux_session_stats stats = {0};
    if (t->mux != NULL)
        yamux_session_get_stats(t->mux, &stats);
    char connected[CLOCK_ISO8601_LEN], heartbeat[CLOCK_ISO8601_LEN];
    clock_iso8601(t->connected_at, connected);
    clock_iso8601(t->last_heartbeat, heartbeat);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:s}", "session_id", t->session_id,
                     "device_id", t->device_id, "user_id", t->user_id, "remote_addr", t->remote,
                     "connected_at", connected, "last_heartbeat", heartbeat, "open_streams",
                     (int)stats.open_streams, "bytes_in", (json_int_t)stats.bytes_in, "bytes_out",
                     (json_int_t)stats.bytes_out, "agent_version", t->agent_version,
                     "token_prefix", t->token_prefix);
}

typedef struct each_ctx {
    void (*fn)(tunnel_t *, void *);
    void *arg;
} each_ctx_t;

static void each_one(const char *key, void *value, void *arg)
{
    each_ctx_t *c = arg;
    (void)key;
    c->fn(value, c->arg);
}

void tunnel_each(void (*fn)(tunnel_t *, void *), void *arg)
{
    each_ctx_t c = {fn, arg};
    strmap_each(by_session, each_one, &c);
}
