/*
 * tcp_conn: a client TCP connection on libuv with a bounded write queue: the socket layer under
 * link.h (the edge agent's tunnel, http_client) and the agent's connections to its target.
 *
 * Connecting: tcp_conn_connect() takes up to TCP_CONN_MAX_ADDRS resolved addresses and tries
 * them in order (a name often resolves to ::1 and 127.0.0.1 while the service listens on one).
 *
 * Writing: tcp_conn_write() hands the bytes to the socket at once when it takes them
 * (uv_try_write) and copies the rest into the queue; it says how much went out at once, and
 * on_written reports the queued rest as the kernel takes it, in order. So a caller that must
 * know when its bytes have left the process (yamux's window) knows. Writes made before the
 * connection is up are queued and go out once it is. The queue never holds more than
 * max_queue bytes: a write that would pass it fails with UV_ENOBUFS and writes nothing.
 *
 * Reading: every connection reads into one buffer shared by the whole process (libuv reads one
 * socket at a time and on_read runs before the next read), so a connection holds no read
 * memory at rest. on_read's bytes are valid during the call only.
 *
 * Lifetime: tcp_conn_close() (or a failed connect, which the caller answers with close) ends
 * it; on_close is the last callback and the conn is freed right after it returns. After
 * close no other callback runs. Callbacks may call any tcp_conn_* function on their conn.
 *
 * Owner: ops and arg can change hands (tcp_conn_rebind), so a pool can keep an idle connection
 * between two users; from then on every callback goes to the new owner.
 */
#ifndef EDGEGATE_TCP_CONN_H
#define EDGEGATE_TCP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define TCP_CONN_MAX_ADDRS 4

typedef struct tcp_conn tcp_conn_t;

typedef struct tcp_conn_ops {
    /* Connected (status 0), or every address failed (the last error). */
    void (*on_connect)(void *arg, int status);
    void (*on_read)(void *arg, const uint8_t *data, size_t len);
    /* The peer shut down its sending side; reading has stopped. */
    void (*on_eof)(void *arg);
    /* n more queued bytes were taken by the kernel. */
    void (*on_written)(void *arg, size_t n);
    /* Reading, writing or shutting down failed; the caller closes. */
    void (*on_error)(void *arg, int status);
    /* tcp_conn_shutdown's FIN went out after every queued byte (optional). */
    void (*on_shutdown)(void *arg);
    void (*on_close)(void *arg);
} tcp_conn_ops_t;

/* ops is borrowed and must outlive the conn. NULL when out of memory. */
tcp_conn_t *tcp_conn_new(uv_loop_t *loop, size_t max_queue, const tcp_conn_ops_t *ops, void *arg);

/* Starts connecting to addrs[0..n) (copied; n is capped at TCP_CONN_MAX_ADDRS). 0 or <0; the
 * result of a started connect arrives through on_connect. */
int tcp_conn_connect(tcp_conn_t *c, const struct sockaddr *const *addrs, unsigned n);

/* Bytes that went out at once (0..total), the rest queued; or <0: UV_ENOBUFS (queue bound),
 * UV_EPIPE (after shutdown or close), or the socket's error. */
long tcp_conn_write(tcp_conn_t *c, const uv_buf_t *bufs, unsigned nbufs);
size_t tcp_conn_queued(const tcp_conn_t *c);

/* Reading is off until started; start before the connect finishes is remembered. */
void tcp_conn_read(tcp_conn_t *c, int on);

/* Sends FIN once every queued byte is written. 0 or <0. */
int tcp_conn_shutdown(tcp_conn_t *c);

/* Closes now; queued bytes are dropped. reset: abort with RST (the peer sees an error, not a
 * clean end). Idempotent. */
void tcp_conn_close(tcp_conn_t *c, int reset);

/* Every later callback goes to ops / arg (borrowed as in tcp_conn_new). Callable from inside a
 * callback of c: the rest of that callback still belongs to the old owner. */
void tcp_conn_rebind(tcp_conn_t *c, const tcp_conn_ops_t *ops, void *arg);

/* "ip:port" of the connected peer, for logs. */
const char *tcp_conn_peer(const tcp_conn_t *c, char *out, size_t size);

#endif
