#include "api-server/mfa_code.h"

#include <stdlib.h>
#include <string.h>

#include "api-server/app.h"
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/ratelimit.h"
#include "api-server/request.h"
#include "common/clock.h"
#include "common/http_json.h"
#include "common/log.h"

#define LIMIT_WHAT "otp"

/* $1 account, $2 the code's time step, $3 the sealed secret the code was checked against,
 * $4 the same secret sealed under the current key (equal to $3 unless rotating), $5 that key's
 * id. Each statement changes the row only if the secret is still $3 and the step is new. */
#define STEP_IS_NEW " AND (mfa_last_step IS NULL OR mfa_last_step < $2)"
#define RETURNING " RETURNING " MFA_SQL_VERIFIED_AT

static const char verify_sql[] =
    "UPDATE accounts SET mfa_last_step = $2, mfa_last_verified_at = now(),"
    " mfa_secret_enc = decode($4, 'base64'), mfa_key_id = $5"
    " WHERE id = $1 AND mfa_enabled AND mfa_secret_enc = decode($3, 'base64')" STEP_IS_NEW
        RETURNING;

static const char confirm_sql[] =
    "UPDATE accounts SET mfa_enabled = true, mfa_secret_enc = decode($4, 'base64'),"
    " mfa_pending_enc = NULL, mfa_key_id = $5, mfa_last_step = $2,"
    " mfa_last_verified_at = now(), updated_at = now()"
    " WHERE id = $1 AND NOT mfa_enabled AND mfa_pending_enc = decode($3, 'base64')" STEP_IS_NEW
        RETURNING;

/* The replay rule dies with the secret: codes of a later secret have never been used. */
static const char disable_sql[] =
    "UPDATE accounts SET mfa_enabled = false, mfa_secret_enc = NULL, mfa_pending_enc = NULL,"
    " mfa_key_id = NULL, mfa_last_step = NULL, mfa_last_verified_at = now(), updated_at = now()"
    " WHERE id = $1 AND mfa_enabled AND mfa_secret_enc = decode($3, 'base64')" STEP_IS_NEW
        RETURNING;

typedef struct accept {
    http_request_t *req;
    enum mfa_use use;
    mfa_code_cb cb;
    int64_t account_id;
    char id_text[24]; /* the account id: query parameter and rate-limit key */
    char code[TOTP_DIGITS + 1];
    mfa_state_t state;
    int64_t step;
} accept_t;

const char *mfa_use_event(enum mfa_use use)
{
    switch (use) {
    case MFA_USE_LOGIN:
        return "login";
    case MFA_USE_CONFIRM:
        return "mfa_enable";
    case MFA_USE_VERIFY:
        return "mfa_verify";
    case MFA_USE_DISABLE:
        break;
    }
    return "mfa_disable";
}

static void accept_free(accept_t *a)
{
    mfa_state_wipe(&a->state);
    explicit_bzero(a->code, sizeof(a->code));
    free(a);
}

static void refuse(accept_t *a, const char *reason)
{
    api_audit(a->req, mfa_use_event(a->use), "failed", a->account_id,
              json_pack("{s:s}", "reason", reason));
    http_reply_error(a->req, 401, "INVALID_OTP_CODE",
                     "The code is wrong, expired or already used; wait for the next one.");
    accept_free(a);
}

static void on_updated(void *arg, const PGresult *res, const char *error)
{
    accept_t *a = arg;
    if (api_db_failed(a->req, res, error)) {
        accept_free(a);
        return;
    }
    if (PQntuples(res) != 1) {
        /* The step was not later than the last accepted one, or the secret changed meanwhile
         * (a concurrent request with the same code, disable, reset). */
        refuse(a, "replayed");
        return;
    }
    mfa_accepted_t accepted = {.step = a->step};
    const char *at = PQgetvalue(res, 0, 0);
    if (strlen(at) < sizeof(accepted.verified_at))
        strcpy(accepted.verified_at, at);
    http_request_t *req = a->req;
    mfa_code_cb cb = a->cb;
    ratelimit_refund(api_app(req), LIMIT_WHAT, a->id_text);
    accept_free(a);
    cb(req, &accepted);
}

/* The code matched: record its step (and the use's change) in one conditional UPDATE. */
static void record(accept_t *a)
{
    const mfa_keys_t *keys = api_app(a->req)->mfa_keys;
    char step[24], sealed[MFA_SEALED_B64_MAX];
    if (mfa_state_seal(&a->state, keys, a->account_id, a->state.secret, sealed) < 0) {
        api_reply_unavailable(a->req, "crypto", "sealing the secret failed");
        accept_free(a);
        return;
    }
    if (!mfa_state_key_current(&a->state, keys))
        log_info("mfa.secret_rekeyed", "req=%s account=%s from_key=%s to_key=%s",
                 http_request_id(a->req), a->id_text, a->state.key_id, mfa_keys_current_id(keys));
    const char *values[5] = {a->id_text, api_i64(a->step, step), a->state.stored_b64, sealed,
                             mfa_keys_current_id(keys)};
    const char *sql = a->use == MFA_USE_CONFIRM   ? confirm_sql
                      : a->use == MFA_USE_DISABLE ? disable_sql
                                                  : verify_sql;
    int nparams = a->use == MFA_USE_DISABLE ? 3 : 5;
    if (api_pg_send(api_app(a->req), sql, nparams, values, on_updated, a) < 0) {
        api_reply_unavailable(a->req, "postgres", "query not accepted");
        accept_free(a);
    }
}

/* The secret could not be opened: a pending one is simply unusable (bind/start replaces it);
 * an active one means a key is missing from the configuration. */
static void unreadable(accept_t *a, int why)
{
    ratelimit_refund(api_app(a->req), LIMIT_WHAT, a->id_text); /* no code was tested */
    if (a->use == MFA_USE_CONFIRM) {
        http_reply_error(a->req, 400, "MFA_NOT_STARTED",
                         "The set-up can no longer be read; start again with bind/start.");
    } else {
        log_error("mfa.secret_unreadable", "req=%s account=%s key_id=%s reason=%s",
                  http_request_id(a->req), a->id_text, a->state.key_id[0] ? a->state.key_id : "-",
                  why == MFA_OPEN_UNKNOWN_KEY ? "key_not_configured" : "does_not_open");
        api_reply_internal(a->req, "TOTP secret does not open");
    }
    accept_free(a);
}

static void on_counted(http_request_t *req, const ratelimit_result_t *r, void *arg)
{
    accept_t *a = arg;
    if (r == NULL) {
        accept_free(a);
        return;
    }
    if (r->limited) {
        /* One row per locked window, not one per refused attempt. */
        if (r->count == MFA_CODE_FAILURES + 1)
            api_audit(req, mfa_use_event(a->use), "locked", a->account_id,
                      json_pack("{s:s}", "reason", "otp_rate_limited"));
        api_reply_rate_limited(req, r->retry_after);
        accept_free(a);
        return;
    }
    int rc = mfa_state_open(&a->state, api_app(req)->mfa_keys, a->account_id);
    if (rc != 0) {
        unreadable(a, rc);
        return;
    }
    a->step = totp_match(a->state.secret, TOTP_SECRET_LEN, a->code, TOTP_DIGITS,
                         clock_unix_ms() / 1000);
    if (a->step < 0) {
        refuse(a, "bad_code");
        return;
    }
    record(a);
}

/* 1 when the account's state allows this use; else answers and returns 0. */
static int state_fits(accept_t *a)
{
    const mfa_state_t *s = &a->state;
    if (a->use == MFA_USE_CONFIRM && s->enabled) {
        http_reply_error(a->req, 409, "MFA_ALREADY_ENABLED", "MFA is already enabled.");
        return 0;
    }
    if (a->use == MFA_USE_CONFIRM && !s->pending) {
        http_reply_error(a->req, 400, "MFA_NOT_STARTED",
                         "Nothing to confirm: start with POST /api/mfa/bind/start.");
        return 0;
    }
    if (a->use != MFA_USE_CONFIRM && !s->enabled) {
        http_reply_error(a->req, 400, "MFA_NOT_ENABLED", "MFA is not enabled for this account.");
        return 0;
    }
    return 1;
}

static void on_state(void *arg, const PGresult *res, const char *error)
{
    accept_t *a = arg;
    if (api_db_failed(a->req, res, error)) {
        accept_free(a);
        return;
    }
    if (mfa_state_read(&a->state, res) < 0) {
        api_reply_internal(a->req, "account MFA state unreadable");
        accept_free(a);
        return;
    }
    if (!state_fits(a)) {
        accept_free(a);
        return;
    }
    ratelimit_hit_arg(a->req, LIMIT_WHAT, a->id_text, MFA_CODE_FAILURES, MFA_CODE_WINDOW_SECONDS,
                      on_counted, a);
}

void mfa_code_accept(http_request_t *req, int64_t account_id, const char *code, size_t code_len,
                     enum mfa_use use, mfa_code_cb cb)
{
    if (!totp_code_well_formed(code, code_len)) {
        http_reply_error(req, 422, "INVALID_OTP_CODE", "The code must be 6 digits.");
        return;
    }
    accept_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    a->req = req;
    a->use = use;
    a->cb = cb;
    a->account_id = account_id;
    api_i64(account_id, a->id_text);
    memcpy(a->code, code, TOTP_DIGITS);
    const char *values[1] = {a->id_text};
    if (api_pg_send(api_app(req), MFA_STATE_SQL, 1, values, on_state, a) < 0) {
        api_reply_unavailable(req, "postgres", "query not accepted");
        accept_free(a);
    }
}
