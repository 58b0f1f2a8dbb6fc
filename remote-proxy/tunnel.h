/*
 * tunnel: one edge agent's connection — a WebSocket carrying a yamux session (we are the yamux
 * client: we open the streams, the agent accepts them) — and the registry of live tunnels.
 *
 * A device has at most one live tunnel: registering a new one sends GoAway to the old one and
 * closes it. While a tunnel lives, `tunnel:route:<device_id>` in Redis names this replica's
 * internal URL (refreshed with the keepalive), and device.online / device.offline go out on
 * `edgegate:events`. Keepalive: a yamux Ping every interval; a tunnel that leaves two pings
 * unanswered is closed as dead.
 *
 * Streams: tunnel_open_stream() opens a yamux stream whose events go to the caller's
 * tunnel_stream_ops; the stream belongs to the session, and on_closed is its last event
 * (also when the tunnel goes away).
 */
#ifndef EDGEGATE_PROXY_TUNNEL_H
#define EDGEGATE_PROXY_TUNNEL_H

#include <stdint.h>

#include <jansson.h>

#include "common/ws.h"
#include "proto/yamux.h"
#include "remote-proxy/app.h"

typedef struct tunnel tunnel_t;

/* What a stream's owner embeds and hands to tunnel_open_stream: where its events go. */
typedef struct tunnel_stream_ops tunnel_stream_ops_t;
typedef struct tunnel_binding {
    const tunnel_stream_ops_t *ops;
    void *arg;
} tunnel_binding_t;

struct tunnel_stream_ops {
    void (*on_data)(void *arg, yamux_stream *st, const uint8_t *data, size_t len);
    void (*on_fin)(void *arg, yamux_stream *st);
    void (*on_writable)(void *arg, yamux_stream *st);
    void (*on_closed)(void *arg, yamux_stream *st, yamux_close_reason reason);
};

typedef struct tunnel_identity {
    const char *device_id;
    const char *user_id;
    const char *token; /* only its prefix is kept */
    size_t token_len;
    const char *agent_version; /* may be NULL */
    const char *remote_addr;
} tunnel_identity_t;

/*
 * A tunnel in two steps, because it is the argument of its WebSocket's callbacks:
 *   t = tunnel_new(app, &id);  ws = ws_accept(req, proto, &tunnel_ws_options,
 *                                            &tunnel_ws_callbacks, t);
 *   ws ? tunnel_start(t, ws) : tunnel_discard(t);
 * tunnel_start registers it (replacing an older tunnel of the device).
 */
tunnel_t *tunnel_new(proxy_app_t *app, const tunnel_identity_t *id);
void tunnel_start(tunnel_t *t, ws_t *ws);
void tunnel_discard(tunnel_t *t);
extern const ws_callbacks_t tunnel_ws_callbacks;
extern const ws_options_t tunnel_ws_options;

tunnel_t *tunnel_find_device(const char *device_id);
tunnel_t *tunnel_find_session(const char *session_id);
/* GoAway, then close. */
void tunnel_close(tunnel_t *t, const char *why);
/* Every tunnel: GoAway (for shutdown). */
void tunnel_goaway_all(void);
size_t tunnel_count(void);

/* A new stream on t bound to b (which must outlive the stream); NULL with *err set to a yamux
 * error when the session refuses one. */
yamux_stream *tunnel_open_stream(tunnel_t *t, tunnel_binding_t *b, int *err);

const char *tunnel_device_id(const tunnel_t *t);

/* The session as /internal/sessions shows it (new reference). */
json_t *tunnel_describe(const tunnel_t *t);
/* Calls fn for every live tunnel. */
void tunnel_each(void (*fn)(tunnel_t *t, void *arg), void *arg);

/* Process-wide set-up and teardown of the registry. */
int tunnel_registry_init(void);
void tunnel_registry_free(void);

#endif
