/*
 * http_router: maps (method, path) to an owner-supplied route record.
 *
 * Patterns are literal segments, `{name}` (one non-empty segment) and a final `{name...}`
 * (the rest of the path, possibly empty). Routes are tried in the order they were added;
 * the first whose pattern and method match wins. When patterns match but no method does,
 * the answer is 405 with the methods that would have matched (for `Allow`).
 * Paths are matched as sent (not percent-decoded), so an encoded '/' never splits a segment.
 */
#ifndef EDGEGATE_HTTP_ROUTER_H
#define EDGEGATE_HTTP_ROUTER_H

#include <stddef.h>

#include "common/slice.h"

#define HTTP_MAX_PARAMS 8

typedef struct http_params {
    unsigned n;
    slice_t names[HTTP_MAX_PARAMS];
    slice_t values[HTTP_MAX_PARAMS];
} http_params_t;

enum http_route_result { HTTP_ROUTE_FOUND, HTTP_ROUTE_NOT_FOUND, HTTP_ROUTE_BAD_METHOD };

typedef struct http_router http_router_t;

http_router_t *http_router_new(void);
void http_router_free(http_router_t *router);

/*
 * method is "GET", "POST", ... or "*" for any. pattern and route are borrowed and must outlive
 * the router (route tables are static). Returns 0, or -1 for a malformed pattern.
 */
int http_router_add(http_router_t *router, const char *method, const char *pattern,
                    const void *route);

/*
 * On HTTP_ROUTE_FOUND, *route and *params are set (param values are raw slices of path).
 * On HTTP_ROUTE_BAD_METHOD, allow receives "GET, POST" (NUL-terminated, truncated to size).
 */
enum http_route_result http_router_match(const http_router_t *router, slice_t method,
                                         slice_t path, const void **route,
                                         http_params_t *params, char *allow, size_t allow_size);

/* The value of path parameter name, or SLICE_NULL. */
slice_t http_params_get(const http_params_t *params, const char *name);

#endif
