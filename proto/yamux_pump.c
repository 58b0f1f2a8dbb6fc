#include "proto/yamux_pump.h"

#include <stdlib.h>
#include <string.h>

/* Write pieces small enough that a gate closing part-way holds the rest back. */
#define PUMP_SLICE (64 * 1024)

static int gated(const yamux_pump_t *p)
{
    return p->gate != NULL && *p->gate;
}

/* Writes from data until the window or the gate stops it: bytes written, or -1 (dst reset). */
static ssize_t pump_out(yamux_pump_t *p, const char *data, size_t len)
{
    size_t done = 0;
    while (done < len && !gated(p)) {
        size_t n = len - done < PUMP_SLICE ? len - done : PUMP_SLICE;
        ssize_t w = yamux_stream_write(p->dst, data + done, n);
        if (w < 0) {
            yamux_stream_reset(p->dst);
            return -1;
        }
        done += (size_t)w;
        if ((size_t)w < n)
            break; /* the window is shut: on_writable resumes */
    }
    return (ssize_t)done;
}

static void pump_fin(yamux_pump_t *p)
{
    /* Last: closing may finish the stream and run its on_closed at once. */
    if (p->fin && p->pending == NULL && p->dst != NULL)
        yamux_stream_close(p->dst);
}

ssize_t yamux_pump_write(yamux_pump_t *p, const void *data, size_t len)
{
    if (p->dst == NULL)
        return -1;
    ssize_t n = 0;
    if (p->pending == NULL) {
        n = pump_out(p, data, len);
        if (n < 0 || (size_t)n == len)
            return n;
    }
    char *grown = realloc(p->pending, p->pending_len + len - (size_t)n);
    if (grown == NULL) {
        yamux_stream_reset(p->dst);
        return -1;
    }
    memcpy(grown + p->pending_len, (const char *)data + n, len - (size_t)n);
    p->pending = grown;
    p->pending_len += len - (size_t)n;
    return n;
}

ssize_t yamux_pump_flush(yamux_pump_t *p)
{
    if (p->dst == NULL || p->pending == NULL)
        return 0;
    ssize_t n = pump_out(p, p->pending + p->pending_off, p->pending_len - p->pending_off);
    if (n < 0)
        return -1;
    p->pending_off += (size_t)n;
    if (p->pending_off == p->pending_len) {
        free(p->pending);
        p->pending = NULL;
        p->pending_len = p->pending_off = 0;
        pump_fin(p);
    }
    return n;
}

void yamux_pump_finish(yamux_pump_t *p)
{
    p->fin = 1;
    pump_fin(p);
}

size_t yamux_pump_pending(const yamux_pump_t *p)
{
    return p->pending_len - p->pending_off;
}

void yamux_pump_free(yamux_pump_t *p)
{
    free(p->pending);
    p->pending = NULL;
    p->pending_len = p->pending_off = 0;
}
