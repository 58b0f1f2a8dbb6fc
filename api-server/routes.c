#include "api-server/routes.h"

#include "common/http_json.h"
#include "common/log.h"
#include "common/ops.h"

static const http_route_t routes[] = {
    API_ROUTE("GET", "/healthz", ops_healthz, API_PUBLIC),
    API_ROUTE("GET", "/readyz", api_readyz, API_PUBLIC),
    API_ROUTE("GET", "/metrics", ops_metrics, API_INTERNAL),
};

const http_route_t *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

int api_routes_check(const http_route_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const api_rule_t *rule = r[i].data;
        if (rule == NULL || rule->access == API_ACCESS_UNSET || r[i].handler == NULL) {
            log_error("api.route_without_rule", "method=%s pattern=%s", r[i].method,
                      r[i].pattern);
            return -1;
        }
    }
    return 0;
}

void api_dispatch(http_request_t *req, const http_route_t *route)
{
    const api_rule_t *rule = route->data;
    switch (rule->access) {
    case API_PUBLIC:
        route->handler(req);
        return;
    case API_INTERNAL:
        if (!ops_has_internal_token(req)) {
            http_reply_error(req, 401, "UNAUTHORIZED", "The internal token is missing or wrong.");
            return;
        }
        route->handler(req);
        return;
    case API_ACCESS_UNSET:
        break;
    }
    /* Unreachable after api_routes_check(); refuse rather than serve an unguarded route. */
    http_reply_error(req, 500, "INTERNAL", "Route has no access rule.");
}
