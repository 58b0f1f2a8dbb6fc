/*
 * POST /api/agents/login {user_id, password, otp_code?} → 200 {token, agent{...}} + cookie.
 *
 * Steps, each a callback: count the attempt (10 per minute per client address, before any
 * hashing) → load the account → verify the password on the thread pool (against a dummy hash
 * when the account is unknown, disabled or has no password, so every failure costs the same
 * time and gets the same 401) → store a rehash of an old-format hash → second factor → new
 * session.
 *
 * Second factor, for accounts with MFA on: without otp_code the answer is 200
 * {require_otp: true} and no session (the console asks for the code and sends both again);
 * with one, the code goes through mfa_code.h (one use per code, 5 failures per 15 minutes per
 * account, 401 INVALID_OTP_CODE) and counts as an MFA verification: the new session comes with
 * the step-up mark set.
 *
 * Any account with a password may sign in here (plain `user` accounts get a session like
 * anyone; the agent routes then answer 403 for them).
 */
#include <stdlib.h>
#include <string.h>

#include "api-server/account.h"
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/fields.h"
#include "api-server/guard.h"
#include "api-server/handlers.h"
#include "api-server/mfa_code.h"
#include "api-server/mfa_mark.h"
#include "api-server/password.h"
#include "api-server/ratelimit.h"
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/http_json.h"

#define LOGIN_ATTEMPTS_PER_WINDOW 10
#define LOGIN_WINDOW_SECONDS 60

enum { F_USER_ID, F_PASSWORD, F_OTP, NFIELDS };
static const api_field_t fields[NFIELDS] = {
    [F_USER_ID] = {"user_id", API_FIELD_STRING, 1, 1, 256, NULL},
    [F_PASSWORD] = {"password", API_FIELD_STRING, 1, 1, PASSWORD_VERIFY_MAX_BYTES, NULL},
    [F_OTP] = {"otp_code", API_FIELD_STRING, 0, 0, 16, NULL},
};

typedef struct login {
    api_value_t in[NFIELDS];
    account_t account; /* id 0: no such login */
    char *stored_hash; /* what the password is checked against; NULL: the dummy */
    char *new_hash;    /* a rehash to store before the session is issued */
    const char *refusal; /* why verification was bound to fail: for the audit row */
    char session_id[SESSION_ID_LEN + 1]; /* issued after a code, until the mark is set */
} login_t;

static void login_free(void *state)
{
    login_t *l = state;
    account_clear(&l->account);
    explicit_bzero(l->session_id, sizeof(l->session_id));
    free(l->stored_hash);
    free(l->new_hash);
}

static json_t *detail(const login_t *l, const char *reason)
{
    return json_pack("{s:s,s:s?}", "login", l->in[F_USER_ID].str, "reason", reason);
}

static void on_session(http_request_t *req, const char *id)
{
    login_t *l = api_state(req);
    api_audit(req, "login", "ok", l->account.id, NULL);
    session_reply(req, id, &l->account);
}

static void on_mfa_session_marked(http_request_t *req, int present)
{
    (void)present;
    login_t *l = api_state(req);
    api_audit(req, "login", "ok", l->account.id, json_pack("{s:b}", "mfa", 1));
    session_reply(req, l->session_id, &l->account);
    explicit_bzero(l->session_id, sizeof(l->session_id));
}

static void on_mfa_session(http_request_t *req, const char *id)
{
    login_t *l = api_state(req);
    memcpy(l->session_id, id, sizeof(l->session_id));
    mfa_mark_set(req, l->account.id, on_mfa_session_marked);
}

static void on_code_accepted(http_request_t *req, const mfa_accepted_t *accepted)
{
    (void)accepted;
    login_t *l = api_state(req);
    session_create(req, &l->account, 0, on_mfa_session);
}

/* The password checked out: the second factor, when the account has one. */
static void after_password(http_request_t *req)
{
    login_t *l = api_state(req);
    if (!l->account.mfa_enabled) {
        session_create(req, &l->account, 0, on_session);
        return;
    }
    if (!l->in[F_OTP].present) {
        api_audit(req, "login", "denied", l->account.id, detail(l, "otp_required"));
        http_reply_json(req, 200, json_pack("{s:b}", "require_otp", 1));
        return;
    }
    mfa_code_accept(req, l->account.id, l->in[F_OTP].str, l->in[F_OTP].len, MFA_USE_LOGIN,
                    on_code_accepted);
}

static void on_rehashed(http_request_t *req, const PGresult *res)
{
    (void)res; /* 0 rows: the hash changed meanwhile; the newer one stands */
    after_password(req);
}

static void on_verified(void *arg, enum password_result result, char *new_hash)
{
    http_request_t *req = arg;
    login_t *l = api_state(req);
    l->new_hash = new_hash;
    if (result == PASSWORD_ERROR) {
        api_reply_unavailable(req, "password", "hashing failed");
        return;
    }
    if (result == PASSWORD_MISMATCH) {
        api_audit(req, "login", "failed", l->account.id,
                  detail(l, l->refusal ? l->refusal : "bad_password"));
        http_reply_error(req, 401, "INVALID_CREDENTIALS", "The user id or password is wrong.");
        return;
    }
    if (l->new_hash != NULL) {
        char id[24];
        const char *values[3] = {api_i64(l->account.id, id), l->new_hash, l->stored_hash};
        api_db(req, on_rehashed,
               "UPDATE accounts SET password_hash = $2, updated_at = now()"
               " WHERE id = $1 AND password_hash = $3",
               3, values);
        return;
    }
    after_password(req);
}

static void on_account(http_request_t *req, const PGresult *res)
{
    login_t *l = api_state(req);
    if (PQntuples(res) == 0) {
        l->refusal = "unknown_login";
    } else if (account_from_row(&l->account, res, 0, 0) < 0) {
        api_reply_unavailable(req, "memory", "account row");
        return;
    } else if (l->account.disabled) {
        l->refusal = "disabled";
    } else if (PQgetisnull(res, 0, ACCOUNT_NCOLUMNS)) {
        l->refusal = "no_password";
    } else if ((l->stored_hash = strdup(PQgetvalue(res, 0, ACCOUNT_NCOLUMNS))) == NULL) {
        api_reply_unavailable(req, "memory", "password hash");
        return;
    }
    /* With a refusal, stored_hash is NULL and the dummy is hashed: same time, then 401. */
    int rc = password_verify(api_app(req)->loop, l->in[F_PASSWORD].str, l->stored_hash,
                             on_verified, req);
    if (rc < 0)
        api_reply_unavailable(req, "password", "too many sign-ins at once");
}

static void on_counted(http_request_t *req, const ratelimit_result_t *r)
{
    login_t *l = api_state(req);
    if (r->limited) {
        /* One audit row per locked window, not one per refused attempt: a flood of attempts
         * must not become a flood of rows. */
        if (r->count == LOGIN_ATTEMPTS_PER_WINDOW + 1)
            api_audit(req, "login", "locked", 0, detail(l, "rate_limited"));
        api_reply_rate_limited(req, r->retry_after);
        return;
    }
    const char *values[1] = {l->in[F_USER_ID].str};
    api_db(req, on_account,
           "SELECT " ACCOUNT_COLUMNS ", password_hash FROM accounts WHERE login = $1", 1,
           values);
}

void api_agents_login(http_request_t *req)
{
    /* Login CSRF: a browser always sends Origin on a POST; another site's page must not be
     * able to sign the victim's browser into the attacker's account. */
    if (!api_origin_ok(req, 0)) {
        http_reply_error(req, 403, "CSRF_ORIGIN_MISMATCH",
                         "Sign-in must come from the application's own origin.");
        return;
    }
    login_t *l = api_state_new(req, sizeof(*l), login_free);
    if (l == NULL || api_fields_or_reply(req, fields, NFIELDS, l->in) < 0)
        return;
    ratelimit_hit(req, "login", http_request_remote_addr(req), LOGIN_ATTEMPTS_PER_WINDOW,
                  LOGIN_WINDOW_SECONDS, on_counted);
}
