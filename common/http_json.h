/*
 * http_json: the JSON side of handlers, on jansson.
 *
 * Errors are always {"error":{"code":"UPPER_SNAKE","message":"human sentence"}}; the code also
 * goes into the access log line. Functions named *_or_reply either return what was asked for
 * or answer the request themselves (and then the handler just returns).
 */
#ifndef EDGEGATE_HTTP_JSON_H
#define EDGEGATE_HTTP_JSON_H

#include <jansson.h>

#include "common/http_server.h"

/* Answers with body as compact JSON; takes the reference to body. Extra headers optional. */
void http_reply_json(http_request_t *req, int status, json_t *body);
void http_reply_json_h(http_request_t *req, int status, json_t *body,
                       const http_header_t *headers, size_t nheaders);
void http_reply_error(http_request_t *req, int status, const char *code, const char *message);

/*
 * The request body as a JSON object, or NULL after answering 400 INVALID_JSON (not JSON, not
 * an object, or too deeply nested). The caller owns the returned reference.
 */
json_t *http_body_json_or_reply(http_request_t *req);

/* The token of `Authorization: Bearer <token>`, or SLICE_NULL. */
slice_t http_bearer_token(const http_request_t *req);

/* Reads a string member; NULL when absent or not a string. */
const char *json_str(const json_t *obj, const char *key);

#endif
