/*
 * yamux_pump: bytes into a yamux stream as far as its send window takes them; the rest is kept
 * until the window reopens (the owner calls yamux_pump_flush from the stream's on_writable).
 *
 * yamux buffers nothing, so whoever writes into a stream must keep what the window refused.
 * The pump keeps it; the owner bounds it by taking nothing more from the source while bytes are
 * pending: a paused connection (at most one read more), or a yamux source whose bytes are
 * reported consumed only as the pump writes them (at most one window).
 *
 * gate (optional, owner's): while *gate is non-zero nothing is written and everything is kept,
 * for a transport beneath dst whose write queue is above its high-water mark.
 *
 * Failure: when dst refuses bytes or memory runs out, the pump resets dst and returns -1. The
 * reset may run dst's on_closed at once (when no callback of dst's session is on the stack), so
 * after -1 the owner touches the pump only if it knows it is still alive.
 */
#ifndef EDGEGATE_YAMUX_PUMP_H
#define EDGEGATE_YAMUX_PUMP_H

#include <stddef.h>
#include <sys/types.h>

#include "proto/yamux.h"

typedef struct yamux_pump {
    yamux_stream *dst; /* the owner's; set to NULL in dst's on_closed */
    const int *gate;
    char *pending;
    size_t pending_len, pending_off;
    unsigned fin : 1; /* FIN once nothing is pending */
} yamux_pump_t;

/* Writes what the window takes of data (nothing while gated) and keeps the rest. Returns the
 * bytes written now, or -1 (dst reset). */
ssize_t yamux_pump_write(yamux_pump_t *p, const void *data, size_t len);
/* Writes what is pending as far as the window takes it, then FIN when asked and all is out.
 * Returns the bytes written now, or -1 (dst reset). */
ssize_t yamux_pump_flush(yamux_pump_t *p);
/* Half-close dst once nothing is pending (at once when nothing is). */
void yamux_pump_finish(yamux_pump_t *p);
/* Bytes kept, not yet written. */
size_t yamux_pump_pending(const yamux_pump_t *p);
void yamux_pump_free(yamux_pump_t *p);

#endif
