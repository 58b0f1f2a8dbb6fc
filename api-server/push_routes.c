/*
 * GET /ws/{agent_id} (operator consoles; the path id is the account's login) and
 * GET /ws/h5/{employee_id} (end users' H5 pages; the path id is the account id).
 *
 * These routes authenticate themselves (access kind API_WEBSOCKET, routes.h): a browser's
 * WebSocket cannot read an HTTP 401, so a refused handshake is accepted and then closed with
 * 4001 and a reason the page can show:
 *   Missing token                        no credential at all
 *   Invalid or expired token             malformed, forged, unknown, ended or revoked
 *   Token-agent mismatch                 the session belongs to another id than the path's
 *                                        (or, on /ws/{agent_id}, to an account that is not an
 *                                        operator)
 *   Authentication service unavailable   Redis or PostgreSQL did not answer: fail closed
 *
 * The credential, in this order (ws_request_token): the subprotocol `bearer.<token>` (echoed in
 * the 101, refused or not, or the browser would abort before it sees the close), then
 * `Authorization: Bearer`, then `?token=` (deprecated: counted and logged, without the token).
 * Failing those, the session cookie of a browser signed in through the BFF, but only when
 * `Origin` is EDGEGATE_PUBLIC_ORIGIN: a WebSocket is not bound by the same-origin policy, and
 * the browser sends the cookie to us from any site's page (cross-site WebSocket hijacking).
 * The session is checked like any signed-in request's (principal.h).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/guard.h"
#include "api-server/handlers.h"
#include "api-server/principal.h"
#include "api-server/push_conn.h"
#include "api-server/request.h"
#include "api-server/session_cookie.h"
#include "common/log.h"
#include "common/metrics.h"

typedef struct handshake {
    enum push_kind kind;
    char *protocol; /* the subprotocol to echo, or NULL */
    char session_hash[CRYPTO_SHA256_HEX_LEN + 1];
} handshake_t;

static void handshake_free(void *state)
{
    free(((handshake_t *)state)->protocol);
}

static metric_t *m_query_token;

static metric_t *refused_metric(const char *reason)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    return metrics_counter("edgegate_ws_refused_total",
                           "Real-time WebSocket handshakes closed with 4001, by reason.", labels);
}

/* A refused handshake: nothing to do but let the close frame go out. */
static void ignore_message(void *arg, int is_text, const uint8_t *data, size_t len)
{
    (void)arg;
    (void)is_text;
    (void)data;
    (void)len;
}

static void ignore_close(void *arg, uint16_t code)
{
    (void)arg;
    (void)code;
}

static const ws_callbacks_t refused_callbacks = {.on_message = ignore_message,
                                                 .on_close = ignore_close};

/* reason_key: a metric label and log value; reason: the close reason the client reads. */
static void refuse(http_request_t *req, const char *reason_key, const char *reason)
{
    handshake_t *hs = api_state(req);
    metric_inc(refused_metric(reason_key));
    log_info("ws.refused", "req=%s reason=%s remote=%s", http_request_id(req), reason_key,
             http_request_remote_addr(req));
    http_request_set_log_note(req, "WS_REFUSED");
    ws_t *ws = ws_accept(req, hs->protocol, &push_ws_options, &refused_callbacks, NULL);
    if (ws != NULL)
        ws_close(ws, PUSH_CLOSE_AUTH, reason);
}

/* Does the path name this account? */
static int path_matches(http_request_t *req, enum push_kind kind, const account_t *a)
{
    char id[ACCOUNT_LOGIN_MAX + 1];
    slice_t raw = http_request_param(req, kind == PUSH_OPERATOR ? "agent_id" : "employee_id");
    long n = slice_percent_decode(raw, 0, id, sizeof(id));
    if (n <= 0)
        return 0;
    if (kind == PUSH_OPERATOR)
        return (a->roles & ACCOUNT_OPERATOR_ROLES) != 0 && a->login != NULL &&
               strcmp(a->login, id) == 0;
    char own[24];
    return strcmp(api_i64(a->id, own), id) == 0;
}

static void on_checked(void *arg, const principal_result_t *r)
{
    http_request_t *req = arg;
    handshake_t *hs = api_state(req);
    switch (r->status) {
    case PRINCIPAL_REFUSED:
        log_debug("ws.session_refused", "req=%s reason=%s", http_request_id(req), r->reason);
        refuse(req, "invalid_token", "Invalid or expired token");
        return;
    case PRINCIPAL_UNAVAILABLE:
    case PRINCIPAL_FAILED:
        log_warn("ws.auth_unavailable", "req=%s dependency=%s", http_request_id(req), r->reason);
        refuse(req, "unavailable", "Authentication service unavailable");
        return;
    case PRINCIPAL_OK:
        break;
    }
    account_t *a = r->account;
    if (!path_matches(req, hs->kind, a)) {
        account_clear(a);
        refuse(req, "mismatch", "Token-agent mismatch");
        return;
    }
    push_conn_t *c = push_conn_new(api_app(req), hs->kind, a, hs->session_hash);
    account_clear(a);
    if (c == NULL) {
        refuse(req, "unavailable", "Authentication service unavailable");
        return;
    }
    ws_t *ws = ws_accept(req, hs->protocol, &push_ws_options, &push_ws_callbacks, c);
    if (ws == NULL)
        push_conn_discard(c);
    else
        push_conn_start(c, ws);
}

static void ws_connect(http_request_t *req, enum push_kind kind)
{
    if (m_query_token == NULL)
        m_query_token =
            metrics_counter("edgegate_ws_query_token_total",
                            "Real-time sockets that sent the deprecated ?token=.", NULL);
    handshake_t *hs = api_state_new(req, sizeof(*hs), handshake_free);
    if (hs == NULL)
        return;
    hs->kind = kind;
    char query[SESSION_ID_LEN + 2]; /* room to tell a too-long value from a session id */
    slice_t token, protocol;
    enum ws_token_source source = ws_request_token(req, &token, &protocol, query, sizeof(query));
    if (protocol.ptr != NULL && (hs->protocol = strndup(protocol.ptr, protocol.len)) == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    if (source == WS_TOKEN_QUERY) {
        metric_inc(m_query_token);
        log_info("ws.deprecated_query_token", "req=%s remote=%s", http_request_id(req),
                 http_request_remote_addr(req));
    }
    /* The cookie counts only without a token and from our own origin (see above). */
    slice_t cookies = source == WS_TOKEN_NONE && api_origin_ok(req, 1)
                          ? http_request_header(req, "cookie")
                          : SLICE_NULL;
    char id[SESSION_ID_LEN + 1];
    enum session_cred cred =
        session_credential(source == WS_TOKEN_NONE ? SLICE_NULL : token, cookies,
                           slice_from(api_app(req)->cfg->session_secret), id);
    if (cred == SESSION_CRED_NONE || cred == SESSION_CRED_BAD)
        explicit_bzero(query, sizeof(query));
    if (cred == SESSION_CRED_NONE) {
        refuse(req, "missing_token", "Missing token");
        return;
    }
    if (cred == SESSION_CRED_BAD) {
        refuse(req, "invalid_token", "Invalid or expired token");
        return;
    }
    crypto_sha256_hex(id, SESSION_ID_LEN, hs->session_hash);
    explicit_bzero(id, sizeof(id));
    explicit_bzero(query, sizeof(query));
    if (principal_check(api_app(req), hs->session_hash, on_checked, req) < 0)
        refuse(req, "unavailable", "Authentication service unavailable");
}

void api_ws_agent(http_request_t *req)
{
    ws_connect(req, PUSH_OPERATOR);
}

void api_ws_h5(http_request_t *req)
{
    ws_connect(req, PUSH_H5);
}
