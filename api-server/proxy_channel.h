/*
 * proxy_channel: one multiplexed channel per remote-proxy replica, so that the front door's
 * plain requests need no connection (and no upgrade exchange) of their own.
 *
 * A channel is `GET /internal/mux` with the internal token, upgraded (101) to a yamux session
 * on which we are the client: each front-door request is one stream, carrying exactly what a
 * connection to POST /internal/forward/raw carries (remote-proxy/mux.c). Channels are keyed by
 * the replica's internal base URL (EDGEGATE_INTERNAL_URL, or the one `tunnel:route:<id>`
 * names), at most PROXY_CHANNELS_MAX of them.
 *
 * Nothing waits for a channel: proxy_channel_client() returns NULL unless the channel is up,
 * and the caller then takes its own connection as before. A channel is opened on first use,
 * and after a failure opened again on a later use once a backoff has passed (doubling up to
 * 30 s); a replica that answers the upgrade with anything but 101 (an older proxy: 404) is
 * left alone for a minute.
 *
 * Streams and memory: proxy_channel_client() gives an http_client (pipe mode,
 * common/http_client.h) over a new stream. Its writes go into the stream as far as the window
 * takes them; the rest is kept and counted in what http_client_write returns, so the owner's
 * own bound applies (past PROXY_STREAM_MAX_PENDING the write fails). While the channel's
 * connection has more than its high-water mark queued, no stream writes into it. While the
 * client is paused, what arrives is kept unconsumed (at most one window), so the proxy's window
 * closes. A yamux ping every 15 s finds a channel whose peer vanished without a word. The
 * channel's failure ends its streams (their clients see UV_ECONNRESET); a stream's failure is
 * its own.
 *
 * proxy_channels_close() closes every channel; done(arg) runs once the last one is gone (from
 * the loop, or at once when there is none), and the manager is freed. Single loop, one thread.
 */
#ifndef EDGEGATE_API_PROXY_CHANNEL_H
#define EDGEGATE_API_PROXY_CHANNEL_H

#include <uv.h>

#include "common/http_client.h"

#define PROXY_CHANNELS_MAX 64
#define PROXY_STREAM_MAX_PENDING (1024 * 1024)

typedef struct proxy_channels proxy_channels_t;

/* internal_token is borrowed and must outlive the manager. NULL when memory runs out. */
proxy_channels_t *proxy_channels_new(uv_loop_t *loop, const char *internal_token);

/* A client over a new stream of base_url's channel, or NULL when that channel is not up (it is
 * opened now when due). cfg and ops are borrowed as by http_client_open. */
http_client_t *proxy_channel_client(proxy_channels_t *pc, const char *base_url,
                                    const http_client_config_t *cfg,
                                    const http_client_ops_t *ops, void *arg);

void proxy_channels_close(proxy_channels_t *pc, void (*done)(void *arg), void *arg);

#endif
