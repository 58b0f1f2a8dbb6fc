/*
 * target_pool: idle keep-alive connections to the agent's target, kept for the next stream
 * (stream.c's keep-alive mode). A new TCP connection per request costs the agent a connect,
 * epoll registrations and a teardown, and the target its handshake: most of a small GET.
 *
 *   - target_pool_put() takes a connection between two HTTP exchanges: connected, nothing
 *     queued, nothing unread, the last response allowing keep-alive. From then on its callbacks
 *     come here and it is read, so a target that closes it (EOF, error) or sends anything
 *     nobody asked for (a protocol error) has it closed at once instead of handed out.
 *   - target_pool_take() hands out the most recently used one (the least likely to be closed
 *     by the target's own idle timer) and makes ops / arg its owner; NULL when none is idle.
 *   - At most max_idle are kept: a put beyond that closes the oldest. One idle for
 *     TARGET_POOL_IDLE_MS is closed.
 *   - target_pool_discard() closes a connection for its owner without another callback to it
 *     (for a connection the owner decided not to keep).
 *
 * One pool per process: every tunnel of a swarm has the same target. Everything runs on the
 * loop given to target_pool_new(). target_pool_close() closes the idle connections and the
 * timer (later puts close what they are given); target_pool_free() once the loop has run the
 * closes.
 */
#ifndef EDGEGATE_AGENT_TARGET_POOL_H
#define EDGEGATE_AGENT_TARGET_POOL_H

#include <stdint.h>

#include <uv.h>

#include "common/tcp_conn.h"

/* Targets close idle keep-alive connections on their own timer (nginx 75 s, small embedded
 * servers often 5 s); one that does so at the moment we reuse the connection costs a retry.
 * 2 s stays under nearly all of them and still carries a busy device's next request. */
#define TARGET_POOL_IDLE_MS 2000

typedef struct target_pool target_pool_t;

/* max_idle >= 1. NULL when out of memory. */
target_pool_t *target_pool_new(uv_loop_t *loop, unsigned max_idle);
void target_pool_close(target_pool_t *p);
void target_pool_free(target_pool_t *p);

tcp_conn_t *target_pool_take(target_pool_t *p, const tcp_conn_ops_t *ops, void *arg);
void target_pool_put(target_pool_t *p, tcp_conn_t *c);
void target_pool_discard(tcp_conn_t *c, int reset);

typedef struct target_pool_stats {
    unsigned idle;   /* connections in the pool now */
    uint64_t reused; /* connections handed out by take, since start */
    uint64_t closed; /* idle ones closed: by the target, timed out, or over max_idle */
} target_pool_stats_t;

void target_pool_get_stats(const target_pool_t *p, target_pool_stats_t *out);

#endif
