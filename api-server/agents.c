/*
 * The operator's own account: GET /api/agents/me, PUT /api/agents/me/status,
 * GET /api/agents?status=, POST /api/agents/password.
 */
#include <stdlib.h>
#include <string.h>

#include "api-server/account.h"
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/fields.h"
#include "api-server/handlers.h"
#include "api-server/password.h"
#include "api-server/push_publish.h"
#include "api-server/ratelimit.h"
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/http_json.h"

/* Old-password guesses by someone holding a session: as many as sign-in allows. */
#define PASSWORD_ATTEMPTS_PER_WINDOW 10
#define PASSWORD_WINDOW_SECONDS 60

void api_agents_me(http_request_t *req)
{
    http_reply_json(req, 200, account_agent_json(&api_principal(req)->account, 0));
}

/* ---- PUT /api/agents/me/status {status} ---- */

static void on_status_set(http_request_t *req, const PGresult *res)
{
    account_t a;
    if (PQntuples(res) != 1 || account_from_row(&a, res, 0, 0) < 0) {
        api_reply_internal(req, "status update returned no account");
        return;
    }
    push_publish_agent_status(api_app(req), &a);
    http_reply_json(req, 200, account_agent_json(&a, 0));
    account_clear(&a);
}

void api_agents_set_status(http_request_t *req)
{
    static const api_field_t fields[1] = {{"status", API_FIELD_STRING, 1, 1, 16, "INVALID_STATUS"}};
    api_value_t in[1];
    if (api_fields_or_reply(req, fields, 1, in) < 0)
        return;
    if (!account_status_valid(in[0].str)) {
        http_reply_error(req, 422, "INVALID_STATUS", "The status must be online, busy or offline.");
        return;
    }
    char id[24];
    const char *values[2] = {api_i64(api_principal(req)->account.id, id), in[0].str};
    api_db(req, on_status_set,
           "UPDATE accounts SET agent_status = $2, updated_at = now() WHERE id = $1"
           " RETURNING " ACCOUNT_COLUMNS,
           2, values);
}

/* ---- GET /api/agents?status= ---- */

static void on_agents(http_request_t *req, const PGresult *res)
{
    json_t *list = json_array();
    int n = PQntuples(res);
    for (int i = 0; list != NULL && i < n; i++) {
        account_t a;
        if (account_from_row(&a, res, i, 0) == 0) {
            json_array_append_new(list, account_agent_json(&a, 0));
            account_clear(&a);
        }
    }
    http_reply_json(req, 200, json_pack("{s:o?,s:i}", "agents", list, "total", n));
}

void api_agents_list(http_request_t *req)
{
    char status[16];
    long len = http_request_query(req, "status", status, sizeof(status));
    if (len == -2 || (len >= 0 && !account_status_valid(status))) {
        http_reply_error(req, 422, "INVALID_STATUS", "The status must be online, busy or offline.");
        return;
    }
    const char *values[1] = {len >= 0 ? status : NULL};
    api_db(req, on_agents,
           "SELECT " ACCOUNT_COLUMNS " FROM accounts"
           " WHERE roles && '{agent,admin}'::text[] AND NOT disabled"
           " AND ($1::text IS NULL OR agent_status = $1)"
           /* A console's routing view; the bound keeps one answer from growing without limit. */
           " ORDER BY login LIMIT 1000",
           1, values);
}

/* ---- POST /api/agents/password {old_password?, new_password} ---- */

enum { F_OLD, F_NEW, NFIELDS };
static const api_field_t password_fields[NFIELDS] = {
    [F_OLD] = {"old_password", API_FIELD_STRING, 0, 0, PASSWORD_VERIFY_MAX_BYTES, NULL},
    [F_NEW] = {"new_password", API_FIELD_STRING, 1, 0, PASSWORD_VERIFY_MAX_BYTES,
               "INVALID_PASSWORD"},
};

typedef struct change {
    api_value_t in[NFIELDS];
    char *old_hash; /* NULL: the account had no password */
    char *new_hash;
    account_t account; /* after the change: its new session epoch */
} change_t;

static void change_free(void *state)
{
    change_t *c = state;
    free(c->old_hash);
    free(c->new_hash);
    account_clear(&c->account);
}

static void on_new_session(http_request_t *req, const char *id)
{
    change_t *c = api_state(req);
    api_audit(req, "password_change", "ok", c->account.id, NULL);
    api_audit(req, "session_revoked", "ok", c->account.id,
              json_pack("{s:s}", "reason", "password_change"));
    session_reply(req, id, &c->account);
}

static void on_stored(http_request_t *req, const PGresult *res)
{
    change_t *c = api_state(req);
    if (PQntuples(res) != 1) {
        http_reply_error(req, 409, "CONFLICT",
                         "The password was changed by another request; sign in again.");
        return;
    }
    if (account_from_row(&c->account, res, 0, 0) < 0) {
        api_reply_unavailable(req, "memory", "account row");
        return;
    }
    /* The UPDATE bumped the session epoch: every session of the account, this one included,
     * is dead already. A new one replaces this one; the others' keys are deleted with it. */
    push_publish_sessions_revoked(api_app(req), c->account.id, c->account.session_epoch);
    session_create(req, &c->account, 1, on_new_session);
}

static void on_hashed(void *arg, enum password_result result, char *new_hash)
{
    http_request_t *req = arg;
    change_t *c = api_state(req);
    c->new_hash = new_hash;
    if (result == PASSWORD_ERROR) {
        api_reply_unavailable(req, "password", "hashing failed");
        return;
    }
    if (result == PASSWORD_MISMATCH) {
        api_audit(req, "password_change", "failed", api_principal(req)->account.id,
                  json_pack("{s:s}", "reason", "bad_old_password"));
        http_reply_error(req, 403, "INVALID_OLD_PASSWORD", "The current password is wrong.");
        return;
    }
    char id[24];
    const char *values[3] = {api_i64(api_principal(req)->account.id, id), c->new_hash,
                             c->old_hash};
    /* Compare-and-set on the old hash: two concurrent changes cannot both win. */
    api_db(req, on_stored,
           "UPDATE accounts SET password_hash = $2, session_epoch = session_epoch + 1,"
           " updated_at = now() WHERE id = $1 AND password_hash IS NOT DISTINCT FROM $3"
           " RETURNING " ACCOUNT_COLUMNS,
           3, values);
}

static void on_old_hash(http_request_t *req, const PGresult *res)
{
    change_t *c = api_state(req);
    if (PQntuples(res) != 1) {
        api_reply_internal(req, "signed-in account vanished");
        return;
    }
    uv_loop_t *loop = api_app(req)->loop;
    int rc;
    if (PQgetisnull(res, 0, 0)) {
        rc = password_hash(loop, c->in[F_NEW].str, on_hashed, req);
    } else if (!c->in[F_OLD].present) {
        http_reply_error(req, 422, "OLD_PASSWORD_REQUIRED",
                         "The current password is required to set a new one.");
        return;
    } else if ((c->old_hash = strdup(PQgetvalue(res, 0, 0))) == NULL) {
        api_reply_unavailable(req, "memory", "password hash");
        return;
    } else {
        rc = password_change(loop, c->in[F_OLD].str, c->old_hash, c->in[F_NEW].str, on_hashed,
                             req);
    }
    if (rc < 0)
        api_reply_unavailable(req, "password", "too many password jobs at once");
}

static void on_password_counted(http_request_t *req, const ratelimit_result_t *r)
{
    if (r->limited) {
        if (r->count == PASSWORD_ATTEMPTS_PER_WINDOW + 1)
            api_audit(req, "password_change", "locked", api_principal(req)->account.id, NULL);
        api_reply_rate_limited(req, r->retry_after);
        return;
    }
    char id[24];
    const char *values[1] = {api_i64(api_principal(req)->account.id, id)};
    api_db(req, on_old_hash, "SELECT password_hash FROM accounts WHERE id = $1", 1, values);
}

void api_agents_password(http_request_t *req)
{
    change_t *c = api_state_new(req, sizeof(*c), change_free);
    if (c == NULL || api_fields_or_reply(req, password_fields, NFIELDS, c->in) < 0)
        return;
    const char *why = password_policy_error(c->in[F_NEW].str, c->in[F_NEW].len);
    if (why != NULL) {
        http_reply_error(req, 422, "INVALID_PASSWORD", why);
        return;
    }
    char key[24];
    ratelimit_hit(req, "password", api_i64(api_principal(req)->account.id, key),
                  PASSWORD_ATTEMPTS_PER_WINDOW, PASSWORD_WINDOW_SECONDS, on_password_counted);
}
