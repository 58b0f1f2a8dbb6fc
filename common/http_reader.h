/*
 * http_reader: an incremental, socket-free HTTP/1.1 message reader over llhttp: requests for
 * the server, responses for the client (http_reader_init_response).
 *
 * Bytes go in with http_reader_feed(); it reports one event at a time and how many bytes it
 * consumed, so the owner decides when to go on (pipelined requests are read one after the
 * other, never ahead of their responses). Everything it keeps is bounded:
 *   - the head (request line + headers) is copied into a caller-provided arena of fixed size;
 *     a head that does not fit, or more than HTTP_MAX_HEADERS headers, is 431;
 *   - body bytes are not kept: each HTTP_READER_BODY event hands out a slice of the input.
 * Malformed input is 400 (501 for a transfer-coding we do not speak, 505 for another HTTP
 * version, 417 for an expectation other than 100-continue); after an error the reader stays
 * failed. Trailers after a chunked body are read and dropped.
 * llhttp runs in strict mode (the Makefile defines LLHTTP_STRICT_MODE=1).
 *
 * Slices in the head point into the arena and stay valid until the next http_reader_begin().
 */
#ifndef EDGEGATE_HTTP_READER_H
#define EDGEGATE_HTTP_READER_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "common/slice.h"

#define HTTP_MAX_HEADERS 64

typedef struct http_header {
    slice_t name;
    slice_t value;
} http_header_t;

typedef struct http_head {
    int status;          /* responses: the status code; requests: 0 */
    slice_t method;      /* "GET" (requests) */
    int method_id;       /* llhttp_method_t */
    slice_t target;      /* raw request-target as sent */
    slice_t path;        /* target before '?', not percent-decoded */
    slice_t query;       /* after '?', without it; empty when none */
    int http_minor;      /* HTTP/1.x */
    int64_t content_length; /* -1 when absent */
    unsigned chunked : 1;
    unsigned keep_alive : 1;
    unsigned upgrade : 1;         /* Connection: upgrade + Upgrade: x (llhttp's rule) */
    unsigned expect_continue : 1; /* Expect: 100-continue */
    unsigned nheaders;
    http_header_t headers[HTTP_MAX_HEADERS];
} http_head_t;

enum http_reader_event {
    HTTP_READER_NEED_MORE, /* all input consumed, nothing to report */
    HTTP_READER_HEAD,      /* the head is complete: inspect it before the body is read */
    HTTP_READER_BODY,      /* *body holds the next body bytes */
    HTTP_READER_DONE,      /* the message is complete; call http_reader_begin() for the next */
    HTTP_READER_UPGRADE,   /* the message is complete and the rest of the input is not HTTP */
    HTTP_READER_ERROR,     /* http_reader_error_status() says which status to answer */
};

typedef struct http_reader {
    llhttp_t parser;
    llhttp_settings_t settings;
    http_head_t *head;
    char *arena;
    size_t arena_len, arena_cap;
    size_t head_bytes; /* raw bytes seen in the head, whitespace included */
    int head_done;
    int header_open; /* a header's name or value is still arriving */
    int error_status;
    int pending;        /* an event found inside llhttp callbacks, reported on return */
    int is_response;
    int no_body;        /* responses: the request was HEAD, so no body whatever the head says */
    slice_t body;
} http_reader_t;

/* Prepares reader for one request; head and arena (arena_cap bytes) are owned by the caller. */
void http_reader_init(http_reader_t *reader);
/* The same for responses. Between messages, call http_reader_begin(), then
 * http_reader_expect_no_body() when the request was HEAD. A response's end that is marked by the
 * connection closing is reported by http_reader_finish(). 1xx responses are messages of their
 * own: a 100 Continue is a HEAD then DONE, and the real response follows after a begin. 1xx,
 * 204 and 304 responses have no body, whatever Content-Length they carry. */
void http_reader_init_response(http_reader_t *reader);
void http_reader_expect_no_body(http_reader_t *reader);
/* The peer closed the connection: HTTP_READER_DONE when that ends the message in progress
 * (a response delimited by close), HTTP_READER_NEED_MORE when no message had begun, else
 * HTTP_READER_ERROR (a truncated message). */
enum http_reader_event http_reader_finish(http_reader_t *reader);
void http_reader_begin(http_reader_t *reader, http_head_t *head, char *arena, size_t arena_cap);

/*
 * Consumes input up to and including the next event; *consumed says how much. Call again with
 * the rest. After HTTP_READER_HEAD the caller may call http_reader_skip_body() (e.g. for a
 * request it refuses) before feeding on.
 */
enum http_reader_event http_reader_feed(http_reader_t *reader, const char *data, size_t len,
                                        size_t *consumed, slice_t *body);
/* Stopped after HEAD or BODY: feed again, even with no new input, to move on. */
int http_reader_paused(const http_reader_t *reader);
/* The HTTP status for HTTP_READER_ERROR (400, 417, 431, 501, 505). */
int http_reader_error_status(const http_reader_t *reader);

/* The value of the first header named name (case-insensitive), or SLICE_NULL. */
slice_t http_head_header(const http_head_t *head, const char *name);

#endif
