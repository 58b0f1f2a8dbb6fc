/*
 * routes: api-server's one route table. Every route is declared with API_ROUTE and states its
 * access rule; the guard (guard.h: api_dispatch) enforces the rule before the handler runs.
 * A route whose rule is left out or unset stops the daemon at start-up (api_routes_check),
 * and `api-server routes` prints the table that the route-walk test checks route by route.
 *
 *   API_ROUTE("GET", "/api/agents/me", api_agents_me, API_AGENT)
 *   API_ROUTE("POST", "/api/admin/agents", api_admin_agent_create, API_ADMIN | API_STEP_UP)
 *
 * Access (who may call at all):
 *   API_PUBLIC     no credentials: probes, sign-in routes
 *   API_INTERNAL   Authorization: Bearer <EDGEGATE_INTERNAL_TOKEN> (/metrics)
 *   API_SIGNED_IN  any signed-in account (session cookie or bearer token)
 *   API_AGENT      a signed-in operator: role agent or admin
 *   API_ADMIN      a signed-in admin
 *   API_WEBSOCKET  a WebSocket route that authenticates the session itself (push_routes.c):
 *                  a browser's WebSocket never sees an HTTP 401, so a refusal is an accepted
 *                  upgrade closed with 4001 and a reason. The guard only attaches the context.
 * Device credentials (pairing exchange, heartbeats) get their own access kinds with the
 * issues that add those routes.
 *
 * Flags:
 *   API_STEP_UP    the route needs a recent MFA verification (`mfa:verified:<account>`,
 *                  see guard.h), else 403 MFA_REQUIRED: admin routes, password change,
 *                  device revocation.
 */
#ifndef EDGEGATE_API_ROUTES_H
#define EDGEGATE_API_ROUTES_H

#include <stdio.h>

#include "common/http_server.h"

enum api_access {
    API_ACCESS_UNSET = 0, /* a route nobody thought about: refused at start-up */
    API_PUBLIC,
    API_INTERNAL,
    API_SIGNED_IN,
    API_AGENT,
    API_ADMIN,
    API_WEBSOCKET,
};
#define API_ACCESS_MASK 0xffu

/* Flags, or-ed onto the access kind. */
#define API_STEP_UP 0x100u

/* rule: an access kind, or-ed with flags. */
typedef struct api_rule {
    unsigned rule;
} api_rule_t;

#define API_ROUTE(m, p, fn, rule)                                                              \
    {                                                                                          \
        .method = (m), .pattern = (p), .handler = (fn), .data = &(const api_rule_t){(rule)},   \
    }

/* A route whose handler reads the request body as it arrives (http_request_body_stream),
 * up to max_body bytes, instead of the server's whole body of up to 1 MiB. */
#define API_ROUTE_STREAM(m, p, fn, rule, limit)                                                \
    {                                                                                          \
        .method = (m), .pattern = (p), .handler = (fn), .max_body = (limit),                   \
        .data = &(const api_rule_t){(rule)}, .stream_body = 1,                                 \
    }

static inline enum api_access api_rule_access(const api_rule_t *r)
{
    return (enum api_access)(r->rule & API_ACCESS_MASK);
}

const http_route_t *api_routes(size_t *n);
/* 0 when every route declares a rule; else logs the first offender and returns -1. */
int api_routes_check(const http_route_t *routes, size_t n);
/* `api-server routes`: one line per route, "METHOD PATTERN RULE" (e.g. "admin+step-up"). */
void api_routes_print(FILE *out);

#endif
