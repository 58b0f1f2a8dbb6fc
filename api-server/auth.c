/*
 * The session of whoever is signed in: GET /api/auth/me, POST /api/auth/logout.
 * The OIDC issue adds its fields to /me and the provider's logout URL to the logout answer.
 */
#include "api-server/audit.h"
#include "api-server/handlers.h"
#include "api-server/push_publish.h"
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/http_json.h"

void api_auth_me(http_request_t *req)
{
    http_reply_json(req, 200, account_profile_json(&api_principal(req)->account));
}

static void on_logged_out(http_request_t *req)
{
    const api_principal_t *p = api_principal(req);
    api_audit(req, "logout", "ok", p->account.id, NULL);
    push_publish_session_ended(api_app(req), p->account.id, p->session_hash);
    char cookie[SESSION_SET_COOKIE_MAX];
    session_set_cookie_for(api_app(req), NULL, cookie);
    http_header_t h[1] = {{SLICE_LIT("Set-Cookie"), slice_from(cookie)}};
    http_reply_json_h(req, 200, json_pack("{s:b}", "logged_out", 1), h, 1);
}

void api_auth_logout(http_request_t *req)
{
    const api_principal_t *p = api_principal(req);
    session_delete(req, p->account.id, p->session_hash, on_logged_out);
}
