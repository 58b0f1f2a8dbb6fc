/*
 * ws: WebSocket (RFC 6455) connections on wslay, over any byte transport.
 *
 * Two ways to receive:
 *   WS_MESSAGES  whole text or binary messages up to max_message bytes (bigger: close 1009);
 *                for JSON push to consoles.
 *   WS_STREAM    binary payload handed out as it arrives, message boundaries ignored, nothing
 *                buffered beyond wslay's frame buffer; a text message is a protocol error
 *                (close 1003). For tunnels, where messages carry a byte stream.
 *
 * Server side: ws_accept() checks the upgrade request, answers 101 (echoing the subprotocol
 * the caller chose) and runs over the request's connection. Client side: the caller does the
 * opening handshake itself (ws_client_key / ws_client_accept_ok) and then creates the ws over
 * its own transport with ws_client_new(), feeding it bytes with ws_feed().
 *
 * Lifetime: callbacks may call any ws_* function, including ws_close(). on_close is the last
 * callback: the transport is gone, and the ws is freed right after it returns.
 * Sending copies the message (wslay queues it); ws_queued() tells a producer how much is
 * waiting, so it can stop at its own bound and resume on on_writable.
 */
#ifndef EDGEGATE_WS_H
#define EDGEGATE_WS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/http_server.h"

typedef struct ws ws_t;

enum ws_mode { WS_MESSAGES, WS_STREAM };

/* Close codes used here (RFC 6455 §7.4.1) and the application's own (4000-4999). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_ABNORMAL = 1006, /* never sent: the connection dropped without a close frame */
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_TRY_AGAIN_LATER = 1013,
};

typedef struct ws_callbacks {
    void (*on_message)(void *arg, int is_text, const uint8_t *data, size_t len); /* MESSAGES */
    void (*on_data)(void *arg, const uint8_t *data, size_t len);                 /* STREAM */
    void (*on_writable)(void *arg); /* the send queue emptied (optional) */
    void (*on_pong)(void *arg);     /* optional */
    /* The connection is gone. code: the peer's close code, or WS_CLOSE_ABNORMAL. */
    void (*on_close)(void *arg, uint16_t code);
    /* The server is shutting down: wind down and ws_close(). NULL: closed at once with 1001. */
    void (*on_shutdown)(void *arg);
} ws_callbacks_t;

typedef struct ws_options {
    enum ws_mode mode;
    size_t max_message;  /* WS_MESSAGES: default 64 KiB */
    size_t high_water;   /* transport bytes queued before wslay holds further frames; 256 KiB */
} ws_options_t;

/*
 * Accepts a WebSocket upgrade. protocol: the Sec-WebSocket-Protocol value to echo, or NULL.
 * On a bad handshake it answers 400 (or 426 for another version) and returns NULL; NULL also
 * when the client is already gone. Either way the request is finished.
 */
ws_t *ws_accept(http_request_t *req, const char *protocol, const ws_options_t *opts,
                const ws_callbacks_t *cb, void *arg);

/* Where the bearer credential of an upgrade request was found (ws_request_token). */
enum ws_token_source {
    WS_TOKEN_NONE,
    WS_TOKEN_PROTOCOL,      /* Sec-WebSocket-Protocol: bearer.<token> */
    WS_TOKEN_AUTHORIZATION, /* Authorization: Bearer <token> */
    WS_TOKEN_QUERY,         /* ?token=<token>: deprecated (it ends up in proxies' logs) */
};

/*
 * The bearer credential of an upgrade request, in the order browsers and agents can send it.
 * Browsers cannot set headers on a WebSocket, so they offer `bearer.<token>` as a subprotocol;
 * the 101 must then echo that very entry or the browser aborts: *protocol is set to it
 * (SLICE_NULL otherwise). Then `Authorization: Bearer`, then `?token=`, which is percent-decoded
 * into query_buf: a value that does not fit (or decodes to a NUL) gives WS_TOKEN_QUERY with an
 * empty token. Other slices point into the request and live until it is finished.
 */
enum ws_token_source ws_request_token(const http_request_t *req, slice_t *token, slice_t *protocol,
                                      char *query_buf, size_t query_size);

/* The `bearer.<token>` entry of a comma-separated Sec-WebSocket-Protocol list, or SLICE_NULL;
 * *token is set to the part after "bearer.". */
slice_t ws_bearer_protocol(slice_t list, slice_t *token);

/* ---- client side ---- */

/* How a client ws writes to and controls its transport. */
typedef struct ws_transport {
    /* Copies or writes the bytes; returns how many are still queued in the transport, or <0. */
    long (*write)(void *t, const uv_buf_t *bufs, unsigned nbufs);
    void (*pause)(void *t, int paused); /* stop / resume reading */
    void (*close)(void *t); /* after queued bytes are written; then call ws_transport_closed */
} ws_transport_t;

/* A fresh Sec-WebSocket-Key (24 base64 characters + NUL). */
int ws_client_key(char key[25]);
/* Does accept equal base64(SHA-1(key + GUID))? */
int ws_client_accept_ok(const char *key, slice_t accept);

ws_t *ws_client_new(const ws_transport_t *transport, void *transport_arg, const ws_options_t *opts,
                    const ws_callbacks_t *cb, void *arg);
/* The server side over a transport of the caller's (after its own handshake; fuzzing). */
ws_t *ws_server_new(const ws_transport_t *transport, void *transport_arg, const ws_options_t *opts,
                    const ws_callbacks_t *cb, void *arg);
/* Bytes from the transport. */
void ws_feed(ws_t *ws, const uint8_t *data, size_t len);
/* The transport wrote everything it had queued. */
void ws_transport_drained(ws_t *ws);
/* The transport is closed: on_close follows at once, then the ws is freed. */
void ws_transport_closed(ws_t *ws);

/* ---- both sides ---- */

/* Queues one message (copied). 0, or <0 once closing. */
int ws_send(ws_t *ws, int is_text, const void *data, size_t len);
/* Queues one binary message gathered from bufs (copied). */
int ws_sendv(ws_t *ws, const uv_buf_t *bufs, unsigned nbufs);
/* Bytes waiting: in wslay's queue plus the transport's. */
size_t ws_queued(const ws_t *ws);
int ws_ping(ws_t *ws);
/* Sends a close frame (reason truncated to 123 bytes) and closes after it is written. */
void ws_close(ws_t *ws, uint16_t code, const char *reason);
/* Closes at once without a close frame (a dead or misbehaving peer). */
void ws_abort(ws_t *ws);
/* Stop (1) / resume (0) reading from the peer: backpressure for WS_STREAM consumers. */
void ws_pause(ws_t *ws, int paused);
const char *ws_remote_addr(const ws_t *ws);

#endif
