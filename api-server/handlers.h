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

/* auth.c: the session of whoever is signed in */
void api_auth_me(http_request_t *req);
void api_auth_logout(http_request_t *req);

/* push_routes.c: real-time WebSockets (they authenticate themselves: API_WEBSOCKET) */
void api_ws_agent(http_request_t *req);
void api_ws_h5(http_request_t *req);

#endif
