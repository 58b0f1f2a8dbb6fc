/*
 * handlers: every route handler of api-server, by the file that defines it. Routes and their
 * access rules are in routes.c; a handler runs only after the guard has enforced the rule, so
 * on signed-in routes api_principal(req) is never NULL.
 */
#ifndef EDGEGATE_API_HANDLERS_H
#define EDGEGATE_API_HANDLERS_H

#include "common/http_server.h"

/* health.c */
void api_readyz(http_request_t *req);

/* login.c: POST /api/agents/login */
void api_agents_login(http_request_t *req);

/* agents.c: the operator's own account */
void api_agents_me(http_request_t *req);
void api_agents_set_status(http_request_t *req);
void api_agents_list(http_request_t *req);
void api_agents_password(http_request_t *req);

/* admin_agents.c: admins managing operator accounts */
void api_admin_agent_create(http_request_t *req);
void api_admin_agent_update(http_request_t *req);
void api_admin_agent_disable(http_request_t *req);

/* mfa.c: the signed-in account's own TOTP MFA */
void api_mfa_status(http_request_t *req);
void api_mfa_bind_start(http_request_t *req);
void api_mfa_bind_confirm(http_request_t *req);
void api_mfa_verify(http_request_t *req);
void api_mfa_disable(http_request_t *req);

/* admin_mfa.c: POST /api/admin/mfa/reset/{account} */
void api_admin_mfa_reset(http_request_t *req);

/* auth.c: the session of whoever is signed in */
void api_auth_me(http_request_t *req);
void api_auth_logout(http_request_t *req);

/* pairing.c: pairing codes (signed in) and their exchange for a credential (the device) */
void api_device_pairing_create(http_request_t *req);
void api_pairing_exchange(http_request_t *req);

/* devices.c: the owner's devices */
void api_devices_list(http_request_t *req);
void api_device_get(http_request_t *req);
void api_device_rename(http_request_t *req);
void api_device_revoke(http_request_t *req);

/* servers.c: registering monitored servers */
void api_servers_list(http_request_t *req);
void api_server_register(http_request_t *req);
void api_server_challenge(http_request_t *req);
void api_server_update(http_request_t *req);

/* heartbeat.c: heartbeats of monitored servers (their own credential) */
void api_heartbeat_challenge(http_request_t *req);
void api_heartbeat_key(http_request_t *req);

/* front_door.c: ANY /api/devices/{id}/proxy/{path...} */
void api_device_proxy(http_request_t *req);

/* oidc_login.c, oidc_callback.c: sign-in through the OpenID provider */
void api_auth_login(http_request_t *req);
void api_auth_callback(http_request_t *req);

/* push_routes.c: real-time WebSockets (they authenticate themselves: API_WEBSOCKET) */
void api_ws_agent(http_request_t *req);
void api_ws_h5(http_request_t *req);

#endif
