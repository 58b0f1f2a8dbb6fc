/*
 * stream: one yamux stream spliced to a TCP connection to the local target.
 *
 * splice_open() takes an inbound stream and accepts it only once it has a connected target
 * connection (a target that refuses makes the proxy see RST, not an empty answer). Then bytes
 * are copied both ways with backpressure, so a stream holds at most one yamux window plus one
 * read (in keep-alive mode also its reader, exchange.h, and one request head kept for a retry):
 *   stream → target: written to the socket; reported consumed to yamux (which reopens the
 *     proxy's window) only once the kernel has taken them.
 *   target → stream: what the stream's send window does not take is kept and the target is
 *     not read again until on_writable; reading also pauses while the tunnel's own queue is
 *     above its bound (agent_link_busy) and resumes with splice_resume_all().
 * Half-close both ways: the proxy's FIN becomes a TCP shutdown once the queued bytes are out;
 * the target's EOF becomes our FIN once its last bytes are in the stream. Errors reset the
 * stream; a reset stream closes the target connection with RST.
 *
 * Two modes, chosen per process (agent_target_pool):
 *   - opaque (--target-keepalive 0): a fresh connection per stream, bytes never looked at.
 *   - keep-alive (the default): the stream is read as HTTP/1.1 (exchange.h) so that target
 *     connections outlive streams (target_pool.h). Each plain request goes to an idle pooled
 *     connection, the stream's own, or a new one, without its "close" option; the response is
 *     relayed as it arrives, and when both are through the connection goes back to the pool
 *     (the response allowed it, nothing was left over) and the stream is FIN'd if the client
 *     asked for close (forward/http and the front door do); otherwise the next request is read
 *     from the stream. Upgrades, CONNECT and anything that is not an HTTP/1.x request are
 *     spliced opaquely on a fresh connection, the bytes already read replayed first; a 101 or
 *     a response we cannot read turns the rest of the stream opaque. A reused connection that
 *     fails before any byte of the answer, for a request without a body, is retried once on a
 *     fresh connection (the target closed it as we reused it). A stream that stays silent
 *     while the pool has connections is, after a moment, taken for a protocol in which the
 *     target speaks first and spliced opaquely; with an empty pool a fresh connection is made
 *     at once, and a target that speaks before any request makes the stream opaque.
 *
 * The agent routes its yamux callbacks for spliced streams here (splice_on_*). A splice frees
 * itself once its stream has closed and it holds no target connection.
 */
#ifndef EDGEGATE_AGENT_STREAM_H
#define EDGEGATE_AGENT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "proto/yamux.h"

typedef struct agent agent_t;
typedef struct splice splice_t;

/* Splices waiting for room in the tunnel's write queue; embedded in the agent. */
typedef struct splice_queue {
    splice_t *head;
} splice_queue_t;

/* 0, or <0 when out of memory (the caller resets the stream). */
int splice_open(agent_t *a, yamux_stream *st);

void splice_on_data(yamux_stream *st, const uint8_t *data, size_t len);
void splice_on_fin(yamux_stream *st);
void splice_on_writable(yamux_stream *st);
void splice_on_closed(yamux_stream *st, yamux_close_reason reason);

/* The tunnel's queue has drained: every splice waiting in q reads its target again. */
void splice_resume_all(splice_queue_t *q);

/* Live splices in the process (for the summary line). */
unsigned splice_count(void);

#endif
