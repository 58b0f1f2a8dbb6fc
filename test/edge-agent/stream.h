/*
 * stream: one yamux stream spliced to a fresh TCP connection to the local target.
 *
 * splice_open() takes an inbound stream: it connects to the target and accepts the stream only
 * once the connect succeeded (a target that refuses makes the proxy see RST, not an empty
 * answer). Then bytes are copied both ways with backpressure, so a stream holds at most one
 * yamux window plus one read:
 *   stream → target: written to the socket; reported consumed to yamux (which reopens the
 *     proxy's window) only once the kernel has taken them.
 *   target → stream: what the stream's send window does not take is kept and the target is
 *     not read again until on_writable; reading also pauses while the tunnel's own queue is
 *     above its bound (agent_link_busy) and resumes with splice_resume_all().
 * Half-close both ways: the proxy's FIN becomes a TCP shutdown once the queued bytes are out;
 * the target's EOF becomes our FIN once its last bytes are in the stream. Errors reset the
 * stream; a reset stream closes the target connection with RST.
 *
 * The agent routes its yamux callbacks for spliced streams here (splice_on_*). A splice frees
 * itself once its stream has closed and its target connection is gone.
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
