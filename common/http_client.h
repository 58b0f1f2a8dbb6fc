/*
 * http_client: HTTP/1.1 client exchanges on libuv, over TCP or TLS (common/link: chain and host
 * name verified against the CA bundle of the tls_ctx_t), with llhttp reading the responses.
 *
 * Two levels:
 *
 *   http_fetch()      one request, the whole response in memory (bounded): discovery documents,
 *                     token endpoints, internal API calls. One callback, exactly once.
 *
 *   http_client_*     one connection, driven by the owner: a request head, body bytes streamed
 *                     with backpressure, the response reported as it arrives (head, body pieces,
 *                     end). After a 101 Switching Protocols the connection is a byte pipe
 *                     (on_data / http_client_write); the owner may also speak HTTP again over
 *                     that pipe by sending another request head, whose response is read the
 *                     same way (remote-proxy's forward/raw: 101, then the device's own HTTP).
 *
 * Every connection says `Connection: close` unless the owner's headers say otherwise: nothing is
 * pooled, so a response is never read from a connection someone else used. Redirects are not
 * followed. Response heads are bounded (max_head: 431-like failure beyond it); the write queue is
 * bounded (max_queue: a write past it fails the connection); nothing else is buffered here.
 *
 * Host names are resolved on libuv's thread pool, and answers are shared for a few seconds by
 * every connection to the same host and port (common/resolve.h).
 *
 * Single loop, single thread. Callbacks never run from inside the call that caused them, except
 * that on_head/on_body/on_end/on_data run from the loop's read callback. Call
 * http_client_cleanup() once every client is closed, before the loop is closed.
 */
#ifndef EDGEGATE_HTTP_CLIENT_H
#define EDGEGATE_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/http_reader.h"
#include "common/tls.h"

/* ---- URLs ---- */

#define HTTP_URL_MAX_HOST 253

typedef struct http_url {
    int tls;                          /* https:// or wss:// */
    char host[HTTP_URL_MAX_HOST + 1]; /* without IPv6 brackets */
    unsigned port;                    /* the scheme's default when absent */
    slice_t authority;                /* host[:port] as written: the Host header */
    slice_t path;                     /* path and query, "/" when the URL has none */
} http_url_t;

/*
 * http://, https://, ws:// and wss:// URLs with a host, an optional port and an optional path.
 * Userinfo (user@host), fragments, spaces, control bytes and ports outside 1..65535 are
 * refused. The slices point into url. 0, or -1 with why (a static string) set.
 */
int http_url_parse(const char *url, size_t len, http_url_t *out, const char **why);

/* ---- one connection, driven by its owner ---- */

typedef struct http_client http_client_t;

typedef struct http_client_ops {
    /*
     * The response head (head->status). Informational 1xx answers other than 101 are skipped.
     * The head and its slices stay valid until on_end, the next request head, or on_close.
     * After a 101 the connection is a byte pipe from here on.
     */
    void (*on_head)(void *arg, const http_head_t *head);
    /* Body bytes, already de-chunked; valid during the call. */
    void (*on_body)(void *arg, const char *data, size_t len);
    /* The response is complete (for a response delimited by the connection closing, just
     * before on_close). */
    void (*on_end)(void *arg);
    /* After a 101 and while no new request head was sent: the peer's bytes as they come. */
    void (*on_data)(void *arg, const char *data, size_t len);
    /* Everything written so far has left the process. Optional. */
    void (*on_drain)(void *arg);
    /*
     * The last callback: the connection is gone and the client is freed after it returns.
     * err: 0 when the owner closed it, UV_EOF when the peer closed it cleanly, UV_ETIMEDOUT,
     * a libuv or TLS error, or UV_EPROTO for a malformed response; why says it in words.
     */
    void (*on_close)(void *arg, int err, const char *why);
} http_client_ops_t;

typedef struct http_client_config {
    tls_ctx_t *tls;             /* required for https://; borrowed, must outlive the client */
    unsigned timeout_ms;        /* silence allowed while connecting or awaiting a response;
                                   0: none (the owner times out itself) */
    int timeout_is_deadline;    /* timeout_ms counts from the start, not from the last read */
    size_t max_head;            /* response head bytes; 0: 16 KiB */
    size_t max_queue;           /* bytes waiting to be written; 0: 1 MiB */
} http_client_config_t;

/*
 * Starts connecting to url's host (only its scheme, host and port are used). cfg and ops are
 * borrowed. Returns NULL (and why) when the URL is unusable, https has no tls context, or
 * memory runs out; otherwise every outcome, connection failures included, ends in on_close.
 */
http_client_t *http_client_open(uv_loop_t *loop, const char *url, const http_client_config_t *cfg,
                                const http_client_ops_t *ops, void *arg, const char **why);

/*
 * Sends a request head, and arms the reader for its response. May be called before the
 * connection is up (it is written once it is). target: origin-form ("/path?query"). headers
 * must not contain Host (taken from the URL unless host is given), Content-Length or
 * Transfer-Encoding; content_length >= 0 adds Content-Length, -1 adds nothing (a bodiless
 * request, or the owner frames the body itself with a Transfer-Encoding header of its own in
 * headers). Connection: close is added unless headers carry a Connection header. head_request:
 * the method is HEAD, so the response has no body. 0 or a negative error (UV_EINVAL for bytes
 * that cannot go into a head, UV_EBUSY while a response is being read).
 */
int http_client_request(http_client_t *c, const char *method, slice_t target, slice_t host,
                        const http_header_t *headers, size_t nheaders, int64_t content_length);

/* Body bytes after a request head, or pipe bytes after a 101. Returns the bytes now waiting
 * to be written, or a negative error (the connection is failing; on_close follows). */
long http_client_write(http_client_t *c, const void *data, size_t len);

/* Backpressure: stop (1) or resume (0) reading. Takes effect after the piece being delivered:
 * at most one socket read (64 KiB) more arrives. */
void http_client_pause(http_client_t *c, int paused);
/* Changes the timeout (0: none), restarting it. */
void http_client_set_timeout(http_client_t *c, unsigned timeout_ms);

/* Ends the connection now (reset: with RST, else after a FIN); on_close follows from the loop
 * with err (0 for an ordinary close). Idempotent. */
void http_client_close(http_client_t *c, int err, const char *why, int reset);

/*
 * The same client over a byte pipe its owner provides (a yamux stream): no URL, no connecting;
 * requests must name their Host. The client calls pipe_ops, never from inside the owner's
 * http_client_pipe_* calls except close:
 *   write  takes (copies) every byte; returns the bytes now waiting in the pipe, or <0 when
 *          the pipe cannot take them (the client then fails).
 *   pause  stop (1) or resume (0) delivering the peer's bytes.
 *   close  the client is done (reset: abort the pipe, else end it after what is written). The
 *          owner answers with http_client_pipe_closed(), from inside close or later.
 * The owner reports the pipe's events: its bytes (http_client_pipe_data), an empty write
 * queue (http_client_pipe_drain) and its end (http_client_pipe_closed: err 0, UV_EOF when the
 * peer ended it, or an error; exactly once, and no pipe_ops call follows it). on_close follows
 * from the loop as for a connection. NULL when memory runs out.
 */
typedef struct http_client_pipe_ops {
    long (*write)(void *pipe, const void *data, size_t len);
    void (*pause)(void *pipe, int paused);
    void (*close)(void *pipe, int reset);
} http_client_pipe_ops_t;

http_client_t *http_client_open_pipe(uv_loop_t *loop, const http_client_config_t *cfg,
                                     const http_client_ops_t *ops, void *arg,
                                     const http_client_pipe_ops_t *pipe_ops, void *pipe);
void http_client_pipe_data(http_client_t *c, const void *data, size_t len);
void http_client_pipe_drain(http_client_t *c);
void http_client_pipe_closed(http_client_t *c, int err, const char *why);

/* Releases the process-wide resolver cache and flush handles. */
void http_client_cleanup(void);

/* ---- one request, the whole response ---- */

typedef struct http_fetch http_fetch_t;

typedef struct http_fetch_request {
    const char *method;           /* "GET", "POST", ... */
    const char *url;              /* http(s)://host[:port]/path?query */
    const http_header_t *headers; /* extra request headers; not Host, Content-Length, Connection */
    size_t nheaders;
    const void *body; /* copied; may be NULL */
    size_t body_len;
    tls_ctx_t *tls;       /* required for https:// */
    unsigned timeout_ms;  /* the whole exchange; 0: 10 s */
    size_t max_response;  /* body bytes kept; 0: 1 MiB; more is an error */
} http_fetch_request_t;

typedef struct http_fetch_response {
    int status;
    const http_head_t *head; /* headers: http_head_header(res->head, "content-type") */
    const char *body;        /* NUL-terminated copy of body_len bytes */
    size_t body_len;
} http_fetch_response_t;

/*
 * Exactly once, from the loop (never inside http_fetch()), unless cancelled first. err 0: res is
 * the response, whatever its status. err < 0: it failed (UV_ETIMEDOUT, UV_ECONNREFUSED, UV_EAI_*,
 * a TLS error such as a refused certificate, UV_E2BIG for a response over max_response,
 * UV_EPROTO for a malformed one); res is NULL and why says it in words. All of it is valid
 * during the call only.
 */
typedef void (*http_fetch_cb)(void *arg, int err, const http_fetch_response_t *res,
                              const char *why);

/* NULL (and why) when the request is unusable: bad URL, https without tls, no memory. */
http_fetch_t *http_fetch(uv_loop_t *loop, const http_fetch_request_t *rq, http_fetch_cb cb,
                         void *arg, const char **why);
/* No callback will run; the connection is dropped. */
void http_fetch_cancel(http_fetch_t *f);

#endif
