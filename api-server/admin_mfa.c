/*
 * POST /api/admin/mfa/reset/{account}: an admin switches an account's MFA off without a code
 * (the user lost their phone). {account} is the account id (OIDC users have no login).
 *
 * In one UPDATE: secret, pending secret, key id and replay step go, and when the account had MFA
 * at all its session epoch moves on, which ends every session it has (its second factor is gone,
 * so whatever was signed in with it is not trusted further; sql/002_session_epoch.sql). Then, in
 * one Redis script, the step-up mark goes and `{"type":"mfa.reset","account_id":N}` is published
 * on edgegate:events, on which WebSocket push closes the account's sockets. Audited with the
 * admin as actor. Resetting an account without MFA changes nothing and still answers 200.
 */
#include <stdlib.h>

#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/handlers.h"
#include "api-server/mfa_mark.h"
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/http_json.h"

typedef struct reset {
    int64_t account_id;
    int had_mfa;
} reset_t;

static void on_unmarked(http_request_t *req, int present)
{
    (void)present;
    reset_t *r = api_state(req);
    api_audit(req, "mfa_reset", "ok", r->account_id, json_pack("{s:b}", "had_mfa", r->had_mfa));
    if (r->had_mfa) {
        session_revoke_all(api_app(req), r->account_id);
        api_audit(req, "session_revoked", "ok", r->account_id,
                  json_pack("{s:s}", "reason", "mfa_reset"));
    }
    http_reply_json(req, 200,
                    json_pack("{s:b,s:I}", "reset", 1, "account_id", (json_int_t)r->account_id));
}

static void on_reset(http_request_t *req, const PGresult *res)
{
    reset_t *r = api_state(req);
    if (PQntuples(res) != 1) {
        http_reply_error(req, 404, "NOT_FOUND", "No such account.");
        return;
    }
    r->had_mfa = PQgetvalue(res, 0, 0)[0] == 't';
    mfa_mark_clear(req, r->account_id, 1, on_unmarked);
}

void api_admin_mfa_reset(http_request_t *req)
{
    reset_t *r = api_state_new(req, sizeof(*r), NULL);
    if (r == NULL)
        return;
    unsigned long long id;
    if (slice_to_u64(http_request_param(req, "account"), INT64_MAX, &id) < 0 || id == 0) {
        http_reply_error(req, 404, "NOT_FOUND", "No such account.");
        return;
    }
    r->account_id = (int64_t)id;
    char idt[24];
    const char *values[1] = {api_i64(r->account_id, idt)};
    api_db(req, on_reset,
           "WITH t AS (SELECT id AS tid, mfa_enabled OR mfa_pending_enc IS NOT NULL AS had"
           " FROM accounts WHERE id = $1 FOR UPDATE)"
           " UPDATE accounts SET mfa_enabled = false, mfa_secret_enc = NULL,"
           "  mfa_pending_enc = NULL, mfa_key_id = NULL, mfa_last_step = NULL,"
           "  session_epoch = session_epoch + CASE WHEN t.had THEN 1 ELSE 0 END,"
           "  updated_at = now()"
           " FROM t WHERE id = t.tid RETURNING t.had",
           1, values);
}
