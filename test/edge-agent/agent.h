/*
 * agent: one tunnel's life, over and over: resolve the proxy, connect (TLS for wss://), the
 * WebSocket handshake with the credential, then a yamux session in the server role (the proxy
 * opens streams, we splice each to the target: stream.c) until the tunnel ends; then wait and
 * start again.
 *
 *   - Waiting between attempts: exponential backoff with full jitter (0.5 s doubling to 30 s;
 *     it starts over after a tunnel that lasted 30 s). A refused credential (401) waits much
 *     longer (refused_retry_ms, doubling to 10 min): retrying it fast helps nobody.
 *   - At most max_connecting attempts are between "resolve" and "101" at once, process-wide;
 *     the rest queue. That staggers a swarm's ten thousand tunnels (and their reconnection
 *     after a proxy restart) without capping the rate the proxy can take them at.
 *   - A proxy that sends nothing for idle_timeout_ms is dead: the tunnel is dropped and
 *     redialled. Halfway there we ping it ourselves (it pings every 30 s anyway).
 *   - GoAway from the proxy: no new streams; the tunnel closes once the open ones have ended
 *     (or after 30 s) and is redialled.
 *   - agent_stop: GoAway to the proxy, close, then on_stopped. No more attempts.
 *
 * Everything runs on cfg->loop. cfg is shared by every agent and outlives them.
 */
#ifndef EDGEGATE_AGENT_AGENT_H
#define EDGEGATE_AGENT_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/tls.h"
#include "common/resolve.h"
#include "test/edge-agent/stream.h"
#include "test/edge-agent/target_pool.h"

typedef struct agent_config {
    uv_loop_t *loop;
    const char *host;      /* the proxy's host name: DNS, and the name its certificate carries */
    const char *authority; /* what goes in Host: (host[:port] as in the URL) */
    const char *path;      /* "/tunnel" */
    tls_ctx_t *tls;        /* NULL: ws:// */
    resolver_t *proxy;
    resolver_t *target;
    target_pool_t *target_pool; /* idle target connections; NULL: opaque streams (stream.h) */
    const char *agent_version; /* X-Agent-Version, or NULL */
    uint64_t idle_timeout_ms;  /* nothing from the proxy this long: dead */
    uint64_t refused_retry_ms; /* first wait after 401 */
    unsigned max_connecting;
    int verbose; /* one line per tunnel event at info (a single tunnel) or debug (a swarm) */
    void (*on_stopped)(void *arg);
    void (*on_open)(void *arg); /* a tunnel came up (optional) */
    void *arg;
} agent_config_t;

/* token is copied (and wiped when the agent is freed). NULL when out of memory. */
agent_t *agent_new(const agent_config_t *cfg, unsigned index, const char *token, size_t len);
/* First attempt after delay_ms. */
void agent_start(agent_t *a, uint64_t delay_ms);
/* Winds down as described above; cfg->on_stopped(cfg->arg) when it is done (possibly from
 * inside this call). */
void agent_stop(agent_t *a);
/* Drops the connection at once (a second signal, or a stop that takes too long). */
void agent_abort(agent_t *a);
/* Only after on_stopped; the memory goes once the timer handle is closed. */
void agent_free(agent_t *a);

typedef struct agent_stats {
    unsigned tunnels;    /* agents */
    unsigned open;       /* tunnels up (including draining after a GoAway) */
    unsigned connecting; /* between resolve and 101, or queued for a slot */
    unsigned waiting;    /* waiting to retry */
    unsigned refused;    /* of those, after a 401 */
    unsigned streams;    /* live spliced streams */
    uint64_t connects, failures, refusals, disconnects; /* since start */
    const char *last_error;
} agent_stats_t;

void agent_get_stats(agent_stats_t *out);

/* For stream.c. */
uv_loop_t *agent_loop(const agent_t *a);
resolver_t *agent_target(const agent_t *a);
target_pool_t *agent_target_pool(const agent_t *a);
/* True while the tunnel's outgoing queue is above its bound: splices stop reading targets. */
int agent_link_busy(const agent_t *a);
splice_queue_t *agent_link_waiters(agent_t *a);

#endif
