/*
 * The session of whoever is signed in: GET /api/auth/me, POST /api/auth/logout.
 *
 * /me is the account's profile and roles — id (the H5 WebSocket path id) and login (the agent
 * one) both, role (the highest), mfa_enabled, and oidc_issuer for accounts that sign in through
 * the OpenID provider (null for local operators).
 * Logout deletes the server-side session and the cookie; after an OIDC sign-in it also returns
 * end_session_url, the provider's logout page for this sign-in, for the browser to visit (the
 * member is absent otherwise).
 */
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/handlers.h"
#include "api-server/oidc.h"
#include "api-server/push_publish.h"
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/http_json.h"

static void on_issuer(http_request_t *req, const PGresult *res)
{
    const account_t *a = &api_principal(req)->account;
    json_t *me = account_profile_json(a);
    json_object_set_new(me, "role", json_string(account_role_name(a->roles)));
    json_object_set_new(me, "mfa_enabled", json_boolean(a->mfa_enabled));
    json_object_set_new(me, "oidc_issuer", PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
                                               ? json_string(PQgetvalue(res, 0, 0))
                                               : json_null());
    http_reply_json(req, 200, me);
}

void api_auth_me(http_request_t *req)
{
    char id[24];
    const char *values[1] = {api_i64(api_principal(req)->account.id, id)};
    api_db(req, on_issuer, "SELECT oidc_issuer FROM accounts WHERE id = $1", 1, values);
}

static void on_logged_out(http_request_t *req)
{
    const api_principal_t *p = api_principal(req);
    api_audit(req, "logout", "ok", p->account.id, NULL);
    push_publish_session_ended(api_app(req), p->account.id, p->session_hash);
    char cookie[SESSION_SET_COOKIE_MAX];
    session_set_cookie_for(api_app(req), NULL, cookie);
    http_header_t h[1] = {{SLICE_LIT("Set-Cookie"), slice_from(cookie)}};
    http_reply_json_h(req, 200,
                      json_pack("{s:b,s:s*}", "logged_out", 1, "end_session_url",
                                oidc_logout_url(req)),
                      h, 1);
}

static void delete_session(http_request_t *req)
{
    const api_principal_t *p = api_principal(req);
    session_delete(req, p->account.id, p->session_hash, on_logged_out);
}

void api_auth_logout(http_request_t *req)
{
    oidc_logout_prepare(req, api_principal(req)->session_hash, delete_session);
}
