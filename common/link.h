/*
 * link: a client connection as a plaintext byte pipe: TCP, with TLS on top for wss:// and
 * https:// (common/tls in client mode: the chain checked against the CA bundle, the certificate
 * against the host name; a failure ends the link with the reason). Used by the edge agent's
 * tunnel and by http_client.
 *
 * Writes are gathered: what the WebSocket layer writes during one turn of the loop (a client
 * frame reaches us as a header and 4 KiB masked pieces) is staged and goes out as one write
 * (and, with TLS, as full-size records) at the end of the turn, or at once when 64 KiB are
 * staged. The staging memory exists only while something is staged.
 *
 * Lifetime: link_new, link_connect, then on_open; link_close (polite: staged and queued bytes,
 * TLS close_notify, then FIN) or link_abort (now, with RST). However it ends, on_close is the
 * last callback and the link is freed right after it returns; no other callback runs after a
 * close or abort was asked for. Callbacks may call any link_* function on their link.
 */
#ifndef EDGEGATE_LINK_H
#define EDGEGATE_LINK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/tls.h"

typedef struct link link_t;

typedef struct link_ops {
    /* Connected, and for TLS the handshake is done and the peer verified. */
    void (*on_open)(void *arg);
    /* Plaintext from the peer; valid during the call only. */
    void (*on_data)(void *arg, const uint8_t *data, size_t len);
    /* Everything written so far has left the process. */
    void (*on_drain)(void *arg);
    /* The end. err: 0 when the owner closed it, UV_EOF when the proxy did, otherwise the libuv
     * or TLS error; why says it in words (certificate problems included). UV_EOF: the peer
     * closed. */
    void (*on_close)(void *arg, int err, const char *why);
} link_ops_t;

/* tls: NULL for plain TCP; otherwise hostname is what the certificate must name. hostname and
 * ops are borrowed and must outlive the link. max_queue bounds the bytes waiting to be written
 * (beyond it a write fails and the link is aborted). */
link_t *link_new(uv_loop_t *loop, tls_ctx_t *tls, const char *hostname, size_t max_queue,
                 const link_ops_t *ops, void *arg);

/* Tries addrs in order. 0, or <0 when nothing could start (on_close follows either way). */
int link_connect(link_t *l, const struct sockaddr *const *addrs, unsigned n);

/* Takes (copies) all the bytes. Returns how many bytes are waiting in the link afterwards, or
 * <0 when it is closing or its queue bound is passed. */
long link_write(link_t *l, const uv_buf_t *bufs, unsigned nbufs);

void link_pause(link_t *l, int paused);
/* Releases the process-wide flush handles; call once every link is gone, before the loop is
 * closed. */
void link_cleanup(void);
/* why (borrowed, copied) is what on_close will report. */
void link_close(link_t *l, int err, const char *why);
void link_abort(link_t *l, int err, const char *why);

#endif
