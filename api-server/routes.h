/*
 * routes: api-server's one route table. Every route states its access rule, and the guard
 * (api_dispatch) enforces that rule before the handler runs; a route whose rule is left unset
 * stops the daemon at start-up (api_routes_check) and fails the route-table test.
 */
#ifndef EDGEGATE_API_ROUTES_H
#define EDGEGATE_API_ROUTES_H

#include "common/http_server.h"

enum api_access {
    API_ACCESS_UNSET = 0, /* a route nobody thought about: refused at start-up */
    API_PUBLIC,           /* probes, sign-in routes */
    API_INTERNAL,         /* Authorization: Bearer <EDGEGATE_INTERNAL_TOKEN> */
};

typedef struct api_rule {
    enum api_access access;
} api_rule_t;

#define API_ROUTE(method, pattern, handler, access_rule)                                       \
    {                                                                                          \
        (method), (pattern), (handler), 0, &(const api_rule_t) { (access_rule) }               \
    }

const http_route_t *api_routes(size_t *n);
/* 0 when every route declares a rule; else logs the first offender and returns -1. */
int api_routes_check(const http_route_t *routes, size_t n);
/* The auth guard: http_server's dispatch hook. */
void api_dispatch(http_request_t *req, const http_route_t *route);

/* handlers in api-server/health.c */
void api_readyz(http_request_t *req);

#endif
