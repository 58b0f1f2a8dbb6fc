#include "api-server/guard.h"

#include <string.h>

#include "api-server/app.h"
#include "api-server/mfa_mark.h"
#include "api-server/principal.h"
#include "api-server/request.h"
#include "api-server/routes.h"
#include "api-server/session.h"
#include "common/http_json.h"
#include "common/log.h"
#include "common/ops.h"

static void unauthorized(http_request_t *req, const char *reason)
{
    /* The reason goes to the log only: the client learns nothing about which check failed. */
    log_debug("auth.refused", "req=%s reason=%s", http_request_id(req), reason);
    http_reply_error(req, 401, "UNAUTHORIZED",
                     "Sign in first: the session is missing, invalid or has ended.");
}

int api_origin_ok(const http_request_t *req, int required)
{
    slice_t origin = http_request_header(req, "origin");
    if (origin.ptr == NULL)
        return !required;
    return slice_eq(origin, api_app(req)->cfg->public_origin);
}

static int safe_method(const http_request_t *req)
{
    slice_t m = http_request_method(req);
    return slice_eq(m, "GET") || slice_eq(m, "HEAD") || slice_eq(m, "OPTIONS");
}

static int role_ok(enum api_access access, unsigned roles)
{
    switch (access) {
    case API_SIGNED_IN:
        return 1;
    case API_AGENT:
        return (roles & ACCOUNT_OPERATOR_ROLES) != 0;
    case API_ADMIN:
        return (roles & ACCOUNT_ROLE_ADMIN) != 0;
    default:
        return 0;
    }
}

static void admit(http_request_t *req)
{
    api_request_signed_in(req);
    http_request_route(req)->handler(req);
}

static void on_step_up_mark(http_request_t *req, int present)
{
    if (present) {
        admit(req);
        return;
    }
    const api_principal_t *p = api_request_principal_slot(req);
    http_reply_error(req, 403, "MFA_REQUIRED",
                     p->account.mfa_enabled
                         ? "This action needs a recent MFA verification: POST /api/mfa/verify "
                           "with a current code, then try again."
                         : "This action needs MFA: enable it (POST /api/mfa/bind/start, then "
                           "/api/mfa/bind/confirm), then try again.");
}

/* Steps 6 and 7 (guard.h): MFA enrolment for admin routes, the step-up mark. */
static void check_mfa(http_request_t *req, const api_rule_t *rule)
{
    const api_principal_t *p = api_request_principal_slot(req);
    if (api_rule_access(rule) == API_ADMIN && api_app(req)->cfg->mfa_require_admin &&
        !p->account.mfa_enabled) {
        http_reply_error(req, 403, "MFA_ENROLMENT_REQUIRED",
                         "Admins must enable MFA before using admin routes: POST "
                         "/api/mfa/bind/start, then /api/mfa/bind/confirm.");
        return;
    }
    if (rule->rule & API_STEP_UP) {
        mfa_mark_check(req, p->account.id, on_step_up_mark);
        return;
    }
    admit(req);
}

static void on_principal(void *arg, const principal_result_t *r)
{
    http_request_t *req = arg;
    switch (r->status) {
    case PRINCIPAL_REFUSED:
        unauthorized(req, r->reason);
        return;
    case PRINCIPAL_UNAVAILABLE:
        api_reply_unavailable(req, r->reason, r->detail);
        return;
    case PRINCIPAL_FAILED: {
        char q[240];
        const char *detail = r->detail ? r->detail : "-";
        log_error("auth.check_failed", "req=%s dependency=%s error=%s", http_request_id(req),
                  r->reason, log_quote(q, sizeof(q), detail, strlen(detail)));
        api_reply_internal(req, "session check failed");
        return;
    }
    case PRINCIPAL_OK:
        break;
    }
    api_principal_t *p = api_request_principal_slot(req);
    p->account = *r->account; /* the request's context owns it from here */
    if (p->via_cookie && !safe_method(req) && !api_origin_ok(req, 1)) {
        http_reply_error(req, 403, "CSRF_ORIGIN_MISMATCH",
                         "A request authenticated by the session cookie must come from the "
                         "application's own origin.");
        return;
    }
    const http_route_t *route = http_request_route(req);
    const api_rule_t *rule = route->data;
    if (!role_ok(api_rule_access(rule), p->account.roles)) {
        http_reply_error(req, 403, "FORBIDDEN", "This account may not do that.");
        return;
    }
    check_mfa(req, rule);
}

static void authenticate(http_request_t *req)
{
    char id[SESSION_ID_LEN + 1];
    slice_t secret = slice_from(api_app(req)->cfg->session_secret);
    enum session_cred cred = session_credential(
        http_bearer_token(req), http_request_header(req, "cookie"), secret, id);
    if (cred == SESSION_CRED_NONE || cred == SESSION_CRED_BAD) {
        unauthorized(req, cred == SESSION_CRED_NONE ? "no_credential" : "bad_credential");
        return;
    }
    api_principal_t *p = api_request_principal_slot(req);
    p->via_cookie = cred == SESSION_CRED_COOKIE;
    crypto_sha256_hex(id, SESSION_ID_LEN, p->session_hash);
    explicit_bzero(id, sizeof(id));
    if (principal_check(api_app(req), p->session_hash, on_principal, req) < 0)
        api_reply_unavailable(req, "redis", "command not accepted");
}

void api_dispatch(http_request_t *req, const http_route_t *route)
{
    const api_rule_t *rule = route->data;
    if (api_request_attach(req) < 0) {
        http_reply_error(req, 503, "SERVICE_UNAVAILABLE", "Out of memory.");
        return;
    }
    switch (api_rule_access(rule)) {
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
    case API_SIGNED_IN:
    case API_AGENT:
    case API_ADMIN:
        authenticate(req);
        return;
    case API_WEBSOCKET:
        route->handler(req); /* it checks the session itself (push_routes.c) */
        return;
    case API_ACCESS_UNSET:
        break;
    }
    /* Unreachable after api_routes_check(); refuse rather than serve an unguarded route. */
    http_reply_error(req, 500, "INTERNAL", "Route has no access rule.");
}
