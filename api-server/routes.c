#include "api-server/routes.h"

#include "api-server/handlers.h"
#include "common/log.h"
#include "common/ops.h"

static const http_route_t routes[] = {
    API_ROUTE("GET", "/healthz", ops_healthz, API_PUBLIC),
    API_ROUTE("GET", "/readyz", api_readyz, API_PUBLIC),
    API_ROUTE("GET", "/metrics", ops_metrics, API_INTERNAL),

    API_ROUTE("POST", "/api/agents/login", api_agents_login, API_PUBLIC),
    API_ROUTE("GET", "/api/agents/me", api_agents_me, API_AGENT),
    API_ROUTE("PUT", "/api/agents/me/status", api_agents_set_status, API_AGENT),
    API_ROUTE("GET", "/api/agents", api_agents_list, API_AGENT),
    API_ROUTE("POST", "/api/agents/password", api_agents_password, API_SIGNED_IN | API_STEP_UP),

    API_ROUTE("POST", "/api/admin/agents", api_admin_agent_create, API_ADMIN | API_STEP_UP),
    API_ROUTE("PATCH", "/api/admin/agents/{user_id}", api_admin_agent_update,
              API_ADMIN | API_STEP_UP),
    API_ROUTE("DELETE", "/api/admin/agents/{user_id}", api_admin_agent_disable,
              API_ADMIN | API_STEP_UP),

    /* Request bodies for devices stream through as they arrive, up to 1 GiB (firmware). */
    API_ROUTE_STREAM("*", "/api/devices/{id}/proxy/{path...}", api_device_proxy, API_SIGNED_IN,
                     1024u * 1024 * 1024),
    API_ROUTE("GET", "/api/mfa/status", api_mfa_status, API_SIGNED_IN),
    API_ROUTE("POST", "/api/mfa/bind/start", api_mfa_bind_start, API_SIGNED_IN),
    API_ROUTE("POST", "/api/mfa/bind/confirm", api_mfa_bind_confirm, API_SIGNED_IN),
    API_ROUTE("POST", "/api/mfa/verify", api_mfa_verify, API_SIGNED_IN),
    API_ROUTE("POST", "/api/mfa/disable", api_mfa_disable, API_SIGNED_IN),
    API_ROUTE("POST", "/api/admin/mfa/reset/{account}", api_admin_mfa_reset,
              API_ADMIN | API_STEP_UP),

    API_ROUTE("GET", "/api/auth/login", api_auth_login, API_PUBLIC),
    API_ROUTE("GET", "/api/auth/callback", api_auth_callback, API_PUBLIC),
    API_ROUTE("GET", "/api/auth/me", api_auth_me, API_SIGNED_IN),
    API_ROUTE("POST", "/api/auth/logout", api_auth_logout, API_SIGNED_IN),

    API_ROUTE("POST", "/api/devices/pairing", api_device_pairing_create, API_SIGNED_IN),
    API_ROUTE("POST", "/api/pairing/exchange", api_pairing_exchange, API_PUBLIC),
    API_ROUTE("GET", "/api/devices", api_devices_list, API_SIGNED_IN),
    API_ROUTE("GET", "/api/devices/{id}", api_device_get, API_SIGNED_IN),
    API_ROUTE("PATCH", "/api/devices/{id}", api_device_rename, API_SIGNED_IN),
    API_ROUTE("DELETE", "/api/devices/{id}", api_device_revoke, API_SIGNED_IN | API_STEP_UP),

    API_ROUTE("GET", "/api/servers", api_servers_list, API_SIGNED_IN),
    API_ROUTE("POST", "/api/servers", api_server_register, API_SIGNED_IN),
    API_ROUTE("POST", "/api/servers/{id}/challenge", api_server_challenge, API_SIGNED_IN),
    API_ROUTE("PATCH", "/api/servers/{id}", api_server_update, API_SIGNED_IN),
    API_ROUTE("POST", "/api/server/heartbeat", api_heartbeat_challenge, API_PUBLIC),
    API_ROUTE("POST", "/api/server/heartbeat-v2", api_heartbeat_key, API_PUBLIC),
    API_ROUTE("GET", "/ws/h5/{employee_id}", api_ws_h5, API_WEBSOCKET),
    API_ROUTE("GET", "/ws/{agent_id}", api_ws_agent, API_WEBSOCKET),
};

const http_route_t *api_routes(size_t *n)
{
    *n = sizeof(routes) / sizeof(routes[0]);
    return routes;
}

static const char *access_name(enum api_access access)
{
    switch (access) {
    case API_PUBLIC:
        return "public";
    case API_INTERNAL:
        return "internal";
    case API_SIGNED_IN:
        return "signed-in";
    case API_AGENT:
        return "agent";
    case API_ADMIN:
        return "admin";
    case API_WEBSOCKET:
        return "websocket";
    case API_ACCESS_UNSET:
        break;
    }
    return NULL;
}

int api_routes_check(const http_route_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const api_rule_t *rule = r[i].data;
        if (rule == NULL || access_name(api_rule_access(rule)) == NULL || r[i].handler == NULL ||
            (rule->rule & ~(API_ACCESS_MASK | API_STEP_UP)) != 0) {
            log_error("api.route_without_rule", "method=%s pattern=%s", r[i].method,
                      r[i].pattern);
            return -1;
        }
    }
    return 0;
}

void api_routes_print(FILE *out)
{
    size_t n;
    const http_route_t *r = api_routes(&n);
    for (size_t i = 0; i < n; i++) {
        const api_rule_t *rule = r[i].data;
        const char *access = rule ? access_name(api_rule_access(rule)) : NULL;
        fprintf(out, "%s %s %s%s\n", r[i].method, r[i].pattern, access ? access : "UNSET",
                rule && (rule->rule & API_STEP_UP) ? "+step-up" : "");
    }
}
