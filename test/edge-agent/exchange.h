/*
 * exchange: where the HTTP/1.1 messages on one yamux stream begin and end, for the agent's
 * keep-alive mode (stream.c). Socket-free: bytes in, verdicts out.
 *
 * A stream carries HTTP/1.1 exchanges, or raw bytes after an upgrade (DESIGN "The tunnel").
 * To put a target connection back in a pool the splice must know when a request and its
 * response are both over, without holding either back and without changing a byte of them but
 * one: the request's "close" connection option, which would make the target hang up. Both
 * directions are read with common/http_reader; each call says how many of the bytes given
 * belong to the current message, and the caller relays them as they are.
 *
 *   Request (stream → target), one at a time:
 *     exchange_request_head() until EXCHANGE_HEAD: the head is complete after *used bytes
 *       (the caller holds the head's raw bytes: it needs them whole). exchange_request_plain()
 *       says whether it is a plain request; then exchange_rewrite_head() makes what the target
 *       is sent instead, and exchange_request_body() reads the body (framing included) until
 *       EXCHANGE_END. An upgrade, a CONNECT, or EXCHANGE_OPAQUE (not an HTTP/1.x request head
 *       we read, a head over EXCHANGE_MAX_HEAD, a body with bad framing): the rest of the
 *       stream is not ours to read, and goes to the target as it is.
 *     exchange_request_next() before the next request's head.
 *   Response (target → stream), once the request head is sent:
 *     exchange_response_begin(), then exchange_response() until EXCHANGE_END (complete after
 *     *used bytes; interim 1xx responses are part of it), EXCHANGE_SWITCH (a 101: what follows
 *     is another protocol) or EXCHANGE_OPAQUE (not HTTP we read). exchange_response_eof() when
 *     the target closes: EXCHANGE_END for a response that the close delimits, EXCHANGE_MORE
 *     when none had begun, EXCHANGE_OPAQUE when it is cut short.
 *     exchange_response_reusable() after EXCHANGE_END: the target keeps the connection.
 *
 * Memory: one head arena of EXCHANGE_MAX_HEAD bytes, shared by the two readers because they
 * never read a head at the same time (a response is read only once its request head has
 * been sent, and the next request head only once the response is over); bodies are never
 * held.
 */
#ifndef EDGEGATE_AGENT_EXCHANGE_H
#define EDGEGATE_AGENT_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

/* The servers' own head limit (DESIGN): anything api-server forwards fits. */
#define EXCHANGE_MAX_HEAD (16 * 1024)

typedef struct exchange exchange_t;

enum exchange_event {
    EXCHANGE_MORE,   /* every byte given belongs to the message, which goes on */
    EXCHANGE_HEAD,   /* request: the head ended after *used bytes */
    EXCHANGE_END,    /* the message ended after *used bytes */
    EXCHANGE_SWITCH, /* response: a 101 head ended after *used bytes */
    EXCHANGE_OPAQUE, /* not HTTP/1.x this module reads */
};

/* NULL when out of memory. */
exchange_t *exchange_new(void);
void exchange_free(exchange_t *x);

enum exchange_event exchange_request_head(exchange_t *x, const uint8_t *data, size_t len,
                                          size_t *used);
/* After EXCHANGE_HEAD. Plain: neither an upgrade nor a CONNECT. */
int exchange_request_plain(const exchange_t *x);
/* The client does not keep the connection after this exchange (Connection: close, or an
 * HTTP/1.0 request without keep-alive). */
int exchange_request_close(const exchange_t *x);
int exchange_request_has_body(const exchange_t *x);
enum exchange_event exchange_request_body(exchange_t *x, const uint8_t *data, size_t len,
                                          size_t *used);
void exchange_request_next(exchange_t *x);

/*
 * The head as the target gets it: raw (len bytes ending with the empty line) with the "close"
 * option taken out of every Connection field, and a Connection field left with no option
 * dropped; every other byte as it was. Writes at most len bytes to out and returns how many.
 */
size_t exchange_rewrite_head(const uint8_t *raw, size_t len, uint8_t *out);

void exchange_response_begin(exchange_t *x);
enum exchange_event exchange_response(exchange_t *x, const uint8_t *data, size_t len,
                                      size_t *used);
enum exchange_event exchange_response_eof(exchange_t *x);
int exchange_response_reusable(const exchange_t *x);

#endif
