/*
 * Admins managing operator accounts:
 *   POST   /api/admin/agents {user_id, name, role: agent|admin, password} → 201, 409 LOGIN_TAKEN
 *   PATCH  /api/admin/agents/{user_id} {name?, role?, max_load?, disabled?}
 *   DELETE /api/admin/agents/{user_id}  disables the account (rows are kept for the audit log)
 *
 * A role change or a disable revokes the account's sessions in the same UPDATE (session
 * epoch, see sql/002_session_epoch.sql); the Redis keys are then deleted as housekeeping. An
 * admin may not demote or disable their own account: that is how the last admin locks
 * everyone out, and `create-admin` is the way back, not a click away.
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
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/http_json.h"

#define MAX_LOAD_LIMIT 1000

static const char *operator_roles_array(unsigned role)
{
    return role == ACCOUNT_ROLE_ADMIN ? "{admin}" : "{agent}";
}

/* agent | admin → the role bit; 0 after answering 422 INVALID_ROLE. */
static unsigned operator_role_or_reply(http_request_t *req, const char *name)
{
    unsigned role = account_role_parse(name);
    if (role != ACCOUNT_ROLE_AGENT && role != ACCOUNT_ROLE_ADMIN) {
        http_reply_error(req, 422, "INVALID_ROLE", "The role must be agent or admin.");
        return 0;
    }
    return role;
}

static int name_ok_or_reply(http_request_t *req, const api_value_t *name)
{
    if (name->present && !account_name_valid(name->str, name->len)) {
        http_reply_error(req, 422, "INVALID_NAME",
                         "The name must be 1 to 200 characters without control characters.");
        return 0;
    }
    return 1;
}

static void reply_agent(http_request_t *req, int status, const PGresult *res)
{
    account_t a;
    if (account_from_row(&a, res, 0, 0) < 0) {
        api_reply_unavailable(req, "memory", "account row");
        return;
    }
    http_reply_json(req, status, account_agent_json(&a, 1));
    account_clear(&a);
}

/* ---- POST /api/admin/agents ---- */

enum { C_USER_ID, C_NAME, C_ROLE, C_PASSWORD, NCREATE };
static const api_field_t create_fields[NCREATE] = {
    [C_USER_ID] = {"user_id", API_FIELD_STRING, 1, 1, ACCOUNT_LOGIN_MAX, "INVALID_USER_ID"},
    [C_NAME] = {"name", API_FIELD_STRING, 1, 1, ACCOUNT_NAME_MAX_BYTES, "INVALID_NAME"},
    [C_ROLE] = {"role", API_FIELD_STRING, 1, 1, 16, "INVALID_ROLE"},
    [C_PASSWORD] = {"password", API_FIELD_STRING, 1, 0, PASSWORD_VERIFY_MAX_BYTES,
                    "INVALID_PASSWORD"},
};

typedef struct create {
    api_value_t in[NCREATE];
    unsigned role;
    char *hash;
} create_t;

static void create_free(void *state)
{
    free(((create_t *)state)->hash);
}

static void on_inserted(http_request_t *req, const PGresult *res)
{
    create_t *c = api_state(req);
    if (PQntuples(res) == 0) {
        http_reply_error(req, 409, "LOGIN_TAKEN", "An account with this user id exists.");
        return;
    }
    api_audit(req, "admin_create_agent", "ok", strtoll(PQgetvalue(res, 0, 0), NULL, 10),
              json_pack("{s:s,s:s}", "login", c->in[C_USER_ID].str, "role",
                        account_role_name(c->role)));
    reply_agent(req, 201, res);
}

static void on_create_hashed(void *arg, enum password_result result, char *hash)
{
    http_request_t *req = arg;
    create_t *c = api_state(req);
    c->hash = hash;
    if (result != PASSWORD_OK) {
        api_reply_unavailable(req, "password", "hashing failed");
        return;
    }
    const char *values[4] = {c->in[C_USER_ID].str, c->in[C_NAME].str,
                             operator_roles_array(c->role), c->hash};
    /* ON CONFLICT DO NOTHING: an existing login yields no row, which is the 409. */
    api_db(req, on_inserted,
           "INSERT INTO accounts (login, display_name, roles, password_hash)"
           " VALUES ($1, $2, $3::text[], $4) ON CONFLICT (login) DO NOTHING"
           " RETURNING " ACCOUNT_COLUMNS,
           4, values);
}

void api_admin_agent_create(http_request_t *req)
{
    create_t *c = api_state_new(req, sizeof(*c), create_free);
    if (c == NULL || api_fields_or_reply(req, create_fields, NCREATE, c->in) < 0)
        return;
    if (!account_login_valid(c->in[C_USER_ID].str, c->in[C_USER_ID].len)) {
        http_reply_error(req, 422, "INVALID_USER_ID",
                         "The user id must be 1 to 64 of A-Z a-z 0-9 . _ @ -.");
        return;
    }
    if (!name_ok_or_reply(req, &c->in[C_NAME]))
        return;
    if ((c->role = operator_role_or_reply(req, c->in[C_ROLE].str)) == 0)
        return;
    const char *why = password_policy_error(c->in[C_PASSWORD].str, c->in[C_PASSWORD].len);
    if (why != NULL) {
        http_reply_error(req, 422, "INVALID_PASSWORD", why);
        return;
    }
    if (password_hash(api_app(req)->loop, c->in[C_PASSWORD].str, on_create_hashed, req) < 0)
        api_reply_unavailable(req, "password", "too many password jobs at once");
}

/* ---- PATCH and DELETE /api/admin/agents/{user_id} ---- */

typedef struct update {
    char login[ACCOUNT_LOGIN_MAX + 1];
    const char *event;
    json_t *changes;
} update_t;

static void update_free(void *state)
{
    json_decref(((update_t *)state)->changes);
}

static void on_updated(http_request_t *req, const PGresult *res)
{
    update_t *u = api_state(req);
    if (PQntuples(res) == 0) {
        http_reply_error(req, 404, "NOT_FOUND", "No such agent.");
        return;
    }
    int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int revoked = PQgetvalue(res, 0, ACCOUNT_NCOLUMNS)[0] == 't';
    api_audit(req, u->event, "ok", id,
              u->changes != NULL ? json_pack("{s:O}", "changes", u->changes) : NULL);
    if (revoked) {
        session_revoke_all(api_app(req), id);
        /* Its open sockets close too; sessions issued from now on (a new epoch) are spared. */
        account_t a;
        if (account_from_row(&a, res, 0, 0) == 0) {
            push_publish_sessions_revoked(api_app(req), id, a.session_epoch);
            account_clear(&a);
        }
        api_audit(req, "session_revoked", "ok", id, json_pack("{s:s}", "reason", u->event));
    }
    reply_agent(req, 200, res);
}

/*
 * One statement: lock the operator's row, compute its new roles, apply every change and bump
 * the session epoch when the roles change or the account becomes disabled. Parameters:
 * $1 login, then NULL for "unchanged": $2 name, $3 role, $4 max_load, $5 disabled.
 */
static const char update_sql[] =
    "WITH t AS ("
    " SELECT id AS tid, disabled AS was_disabled, roles AS old_roles,"
    "  CASE WHEN $3::text IS NULL THEN roles"
    "   ELSE array(SELECT r FROM unnest(roles) r WHERE r NOT IN ('agent', 'admin')) || $3::text"
    "  END AS new_roles"
    " FROM accounts WHERE login = $1 AND roles && '{agent,admin}'::text[] FOR UPDATE)"
    " UPDATE accounts SET"
    "  display_name = COALESCE($2, display_name),"
    "  roles = t.new_roles,"
    "  max_load = COALESCE($4::int, max_load),"
    "  disabled = COALESCE($5::boolean, disabled),"
    "  session_epoch = session_epoch + CASE WHEN"
    "   NOT (t.new_roles @> t.old_roles AND t.new_roles <@ t.old_roles)"
    "   OR (COALESCE($5::boolean, false) AND NOT t.was_disabled) THEN 1 ELSE 0 END,"
    "  updated_at = now()"
    " FROM t WHERE id = t.tid"
    " RETURNING " ACCOUNT_COLUMNS ","
    "  (NOT (t.new_roles @> t.old_roles AND t.new_roles <@ t.old_roles)"
    "   OR (disabled AND NOT t.was_disabled)) AS revoked";

/* The target login from the path, refusing an admin's own demotion or disabling. */
static update_t *update_begin(http_request_t *req, const char *event)
{
    update_t *u = api_state_new(req, sizeof(*u), update_free);
    if (u == NULL || api_param_login_or_reply(req, "user_id", u->login) < 0)
        return NULL;
    u->event = event;
    return u;
}

static int is_self(http_request_t *req, const update_t *u)
{
    const char *own = api_principal(req)->account.login;
    return own != NULL && strcmp(own, u->login) == 0;
}

static void refuse_self(http_request_t *req)
{
    http_reply_error(req, 409, "SELF_LOCKOUT",
                     "Admins cannot demote or disable their own account.");
}

enum { U_NAME, U_ROLE, U_MAX_LOAD, U_DISABLED, NUPDATE };
static const api_field_t update_fields[NUPDATE] = {
    [U_NAME] = {"name", API_FIELD_STRING, 0, 1, ACCOUNT_NAME_MAX_BYTES, "INVALID_NAME"},
    [U_ROLE] = {"role", API_FIELD_STRING, 0, 1, 16, "INVALID_ROLE"},
    [U_MAX_LOAD] = {"max_load", API_FIELD_INT, 0, 0, MAX_LOAD_LIMIT, "INVALID_MAX_LOAD"},
    [U_DISABLED] = {"disabled", API_FIELD_BOOL, 0, 0, 0, "INVALID_DISABLED"},
};

void api_admin_agent_update(http_request_t *req)
{
    update_t *u = update_begin(req, "admin_update_agent");
    api_value_t in[NUPDATE];
    if (u == NULL || api_fields_or_reply(req, update_fields, NUPDATE, in) < 0)
        return;
    if (!name_ok_or_reply(req, &in[U_NAME]))
        return;
    unsigned role = 0;
    if (in[U_ROLE].present && (role = operator_role_or_reply(req, in[U_ROLE].str)) == 0)
        return;
    int demote = role != 0 && role != ACCOUNT_ROLE_ADMIN;
    int disable = in[U_DISABLED].present && in[U_DISABLED].flag;
    if (is_self(req, u) && (demote || disable)) {
        refuse_self(req);
        return;
    }
    char max_load[24];
    u->changes = json_object();
    if (in[U_NAME].present)
        json_object_set_new(u->changes, "name", json_string(in[U_NAME].str));
    if (role != 0)
        json_object_set_new(u->changes, "role", json_string(account_role_name(role)));
    if (in[U_MAX_LOAD].present)
        json_object_set_new(u->changes, "max_load", json_integer(in[U_MAX_LOAD].num));
    if (in[U_DISABLED].present)
        json_object_set_new(u->changes, "disabled", json_boolean(in[U_DISABLED].flag));
    const char *values[5] = {
        u->login,
        in[U_NAME].present ? in[U_NAME].str : NULL,
        role != 0 ? account_role_name(role) : NULL,
        in[U_MAX_LOAD].present ? api_i64(in[U_MAX_LOAD].num, max_load) : NULL,
        in[U_DISABLED].present ? (in[U_DISABLED].flag ? "true" : "false") : NULL,
    };
    api_db(req, on_updated, update_sql, 5, values);
}

void api_admin_agent_disable(http_request_t *req)
{
    update_t *u = update_begin(req, "admin_disable_agent");
    if (u == NULL)
        return;
    if (is_self(req, u)) {
        refuse_self(req);
        return;
    }
    const char *values[5] = {u->login, NULL, NULL, NULL, "true"};
    api_db(req, on_updated, update_sql, 5, values);
}
