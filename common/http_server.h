/*
 * http_server: HTTP/1.1 on libuv, used by both daemons.
 *
 * Requests on a connection are read and answered one at a time, in order: a pipelined request
 * is not parsed until the response before it is complete, so responses can never be reordered
 * and a connection holds at most one request. Every buffer is bounded (see the config); a
 * limit that is hit is answered with the status that names it (408, 413, 431) and the
 * connection is closed.
 *
 * Ownership and the one rule handlers must follow:
 *   Every request handed to a handler must be finished exactly once, by http_respond(),
 *   http_respond_end() after http_respond_start(), or http_request_upgrade(). That call
 *   releases the request. It may happen later, from any loop callback (a database reply, a
 *   timer). If the client goes away first, the request stays valid; the abort callback (if
 *   set) is told, and the eventual response is discarded. So a handler never needs to know
 *   whether its client is still there.
 *
 * Nothing here calls a handler from inside another call into this module: dispatch happens
 * from libuv callbacks only. Single loop, single thread.
 */
#ifndef EDGEGATE_HTTP_SERVER_H
#define EDGEGATE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/http_reader.h"
#include "common/http_router.h"
#include "common/slice.h"

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;
typedef struct http_conn http_conn_t;

typedef void (*http_handler_fn)(http_request_t *req);

typedef struct http_route {
    const char *method;     /* "GET", ... or "*" */
    const char *pattern;    /* "/api/devices/{id}/proxy/{rest...}" */
    http_handler_fn handler;
    size_t max_body;        /* 0: the server's default */
    const void *data;       /* the owner's per-route record (e.g. the access rule) */
    int stream_body;        /* dispatch at the head; the handler reads the body as it comes
                               (http_request_body_stream) instead of http_request_body() */
} http_route_t;

typedef struct http_server_config {
    const char *name;            /* "api", "tunnel", "internal": logs and metric labels */
    size_t max_head;             /* request line + headers; default 16 KiB (431) */
    size_t max_body;             /* default per-route body limit; default 1 MiB (413) */
    unsigned head_timeout_ms;    /* first byte to end of head; default 10 s (408) */
    unsigned body_timeout_ms;    /* silence while a body is arriving; default 30 s (408) */
    unsigned idle_timeout_ms;    /* keep-alive with no request; default 60 s (close) */
    unsigned write_timeout_ms;   /* no write progress while output is queued; default 60 s */
    unsigned max_connections;    /* default 10000; beyond it new connections are closed */
    int access_log;              /* one log line per request (default on) */
    /*
     * Called for every routed request instead of the route's handler when set; it decides
     * (e.g. after an asynchronous credential check) whether to run route->handler or answer
     * itself. NULL: the handler runs directly.
     */
    void (*dispatch)(http_request_t *req, const http_route_t *route);
    void *data; /* the owner's context: http_server_data() */
    /* TLS on every connection when set (common/tls.h, server context); borrowed. */
    struct tls_ctx *tls;
} http_server_config_t;

/* routes are borrowed (static tables). Returns NULL on a malformed route pattern. */
http_server_t *http_server_new(uv_loop_t *loop, const http_server_config_t *config,
                               const http_route_t *routes, size_t nroutes);
/* "host:port" (IPv4 or [IPv6]); 0 or a negative libuv error. */
int http_server_listen(http_server_t *server, const char *host_port);
/* The bound port (useful after listening on port 0). */
int http_server_port(const http_server_t *server);
void *http_server_data(const http_server_t *server);
unsigned http_server_connections(const http_server_t *server);

/*
 * Graceful shutdown: stop accepting, close idle connections, let in-flight requests finish
 * (their responses carry Connection: close), ask upgraded connections to wind down
 * (ops->on_shutdown), and force-close whatever is left after grace_ms. done runs once every
 * connection and handle is closed; then http_server_free() may be called.
 */
void http_server_shutdown(http_server_t *server, unsigned grace_ms, void (*done)(void *arg),
                          void *arg);
void http_server_free(http_server_t *server);

/* ---- requests ---- */

const http_head_t *http_request_head(const http_request_t *req);
slice_t http_request_method(const http_request_t *req);
slice_t http_request_path(const http_request_t *req);
slice_t http_request_header(const http_request_t *req, const char *name);
/* A path parameter from the route pattern, raw (percent-encoded as sent). */
slice_t http_request_param(const http_request_t *req, const char *name);
/*
 * A query parameter, percent-decoded into out (NUL-terminated). Returns its length, or -1
 * when absent, or -2 when it does not fit or decodes to bytes we refuse (NUL).
 */
long http_request_query(const http_request_t *req, const char *name, char *out, size_t size);
slice_t http_request_body(const http_request_t *req);
const http_route_t *http_request_route(const http_request_t *req);
http_server_t *http_request_server(const http_request_t *req);
/* The peer's address as text ("127.0.0.1", "::1"). */
const char *http_request_remote_addr(const http_request_t *req);
/* X-Request-Id from the client when it is sane, else one we made; echoed in the response. */
const char *http_request_id(const http_request_t *req);
/* The client went away (the response will be discarded). */
int http_request_aborted(const http_request_t *req);

/*
 * A slot for the dispatcher's or handler's own state (e.g. the signed-in principal). When
 * free_fn is set it runs when the request is released, whoever finishes it and whenever.
 */
void http_request_set_data(http_request_t *req, void *data, void (*free_fn)(void *data));
void *http_request_data(const http_request_t *req);
void http_request_on_abort(http_request_t *req, void (*cb)(http_request_t *req, void *arg),
                           void *arg);

/* Text after the status code in logs: e.g. the error code of a JSON error. Copied. */
void http_request_set_log_note(http_request_t *req, const char *note);

/*
 * Streamed request bodies, on routes with stream_body set: the handler runs as soon as the head
 * is read, and nothing of the body is buffered beyond the connection's input buffer. The
 * handler (or whoever it hands the request to) calls http_request_body_stream() once; on_body
 * gets the body's bytes as they arrive (de-chunked; valid during the call), and on_end runs
 * once: 0 at the end of the body (at once, from the loop, for a request without one), or 400
 * (malformed chunking, the client half-closed early), 408 (the client went silent while being
 * read), 413 (more than the route's max_body). After a non-zero end the connection closes once
 * the response is done. Pausing stops the callbacks and, once the input buffer is full,
 * reading from the socket: backpressure to the client. Finishing the request before the body
 * has been read closes the connection after the response (the rest is never read). Neither
 * callback runs once the client is gone (the abort callback says so) or the request is done.
 */
typedef void (*http_body_cb)(http_request_t *req, void *arg, const char *data, size_t len);
typedef void (*http_body_end_cb)(http_request_t *req, void *arg, int status);
void http_request_body_stream(http_request_t *req, http_body_cb on_body, http_body_end_cb on_end,
                              void *arg);
void http_request_body_pause(http_request_t *req, int paused);
/* Does the request carry a body (Content-Length > 0 or chunked)? */
int http_request_has_body(const http_request_t *req);

/* ---- responses ---- */

/*
 * The whole response at once. headers must not include Content-Length, Connection or
 * Transfer-Encoding (the server writes those). Bytes are copied as needed; nothing passed in
 * needs to outlive the call. Finishes the request.
 */
void http_respond(http_request_t *req, int status, const http_header_t *headers,
                  size_t nheaders, const void *body, size_t len);

/*
 * A streamed response: start, any number of writes, end. Without a Content-Length among the
 * headers the body is chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
 * http_respond_write() copies what the socket does not take at once and returns the number
 * of bytes now queued for this client, or a negative error once the client is gone; a
 * producer stops at its own bound and waits for on_drain, which fires when the queue is
 * empty again. http_respond_end() finishes the request.
 */
int http_respond_start(http_request_t *req, int status, const http_header_t *headers,
                       size_t nheaders);
long http_respond_write(http_request_t *req, const void *data, size_t len);
void http_respond_on_drain(http_request_t *req, void (*cb)(http_request_t *req, void *arg),
                           void *arg);
void http_respond_end(http_request_t *req);
/* Finishes a streamed response without completing it (no final chunk) and closes the
 * connection once the queued bytes are out, so the client sees a truncated message rather
 * than a short one that looks whole: for a relayed body whose source failed half-way. */
void http_respond_abort(http_request_t *req);

/* ---- upgrades (WebSocket, raw streams) ---- */

typedef struct http_conn_ops {
    /* Bytes from the peer. The slice is valid only during the call. */
    void (*on_data)(void *arg, const char *data, size_t len);
    /* The write queue became empty. Optional. */
    void (*on_drain)(void *arg);
    /* The connection is closed (by either side); the last callback, always from the loop
     * (never from inside an http_conn_* call). arg may be freed. */
    void (*on_close)(void *arg);
    /* The server is shutting down: wind down, then http_conn_close(). NULL: closed at once. */
    void (*on_shutdown)(void *arg);
    /* The peer half-closed (sent FIN); writing goes on until http_conn_close(). NULL: a FIN
     * from the peer closes the connection. */
    void (*on_eof)(void *arg);
} http_conn_ops_t;

/*
 * Answers 101 Switching Protocols with headers, finishes the request and turns its connection
 * into a plain byte stream handled by ops. Bytes the client sent after the request head are
 * delivered to ops->on_data from the loop, never from inside this call. Returns the
 * connection, or NULL when the client is already gone (ops->on_close is not called then).
 */
http_conn_t *http_request_upgrade(http_request_t *req, const http_header_t *headers,
                                  size_t nheaders, const http_conn_ops_t *ops, void *arg);

/* Like http_respond_write(): copies what the socket does not take; returns bytes queued. */
long http_conn_write(http_conn_t *conn, const void *data, size_t len);
long http_conn_writev(http_conn_t *conn, const uv_buf_t *bufs, unsigned nbufs);
size_t http_conn_queued(const http_conn_t *conn);
/* Backpressure: stop (1) or resume (0) reading from the peer. */
void http_conn_pause(http_conn_t *conn, int paused);
/* Closes after the queued bytes are written (at most write_timeout_ms). on_close follows. */
void http_conn_close(http_conn_t *conn);
const char *http_conn_remote_addr(const http_conn_t *conn);
uv_loop_t *http_conn_loop(const http_conn_t *conn);

/* "OK", "Not Found", ... for a status code. */
const char *http_status_text(int status);

#endif
