/*
 * The signed-in account's own MFA (TOTP):
 *   GET  /api/mfa/status        → {bound, enabled, last_verified_at}
 *   POST /api/mfa/bind/start    → {secret, otpauth_url, qr_code_base64}; 409 when MFA is on
 *   POST /api/mfa/bind/confirm  {otp_code} → MFA on (400 before bind/start)
 *   POST /api/mfa/verify        {otp_code} → {verified, expires_in}: the step-up mark
 *   POST /api/mfa/disable       {otp_code} → MFA off, secret and mark gone
 *
 * `bound`: a secret is tied to the account, confirmed or still pending; `enabled`: MFA is on.
 * bind/start hands out the pending secret again while it is unconfirmed (the QR code can be
 * shown again), and a new one otherwise. Every code goes through mfa_code.h (replay, limits,
 * audit); every accepted code sets the mark (mfa_mark.h), a disable clears it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/fields.h"
#include "api-server/handlers.h"
#include "api-server/mfa_code.h"
#include "api-server/mfa_mark.h"
#include "api-server/mfa_state.h"
#include "api-server/qr_png.h"
#include "api-server/request.h"
#include "common/crypto.h"
#include "common/http_json.h"

#define MFA_ISSUER "edgegate"

static const char *self_id(http_request_t *req, char out[24])
{
    return api_i64(api_principal(req)->account.id, out);
}

static json_t *status_json(int bound, int enabled, const char *verified_at)
{
    return json_pack("{s:b,s:b,s:s?}", "bound", bound, "enabled", enabled, "last_verified_at",
                     verified_at != NULL && verified_at[0] != '\0' ? verified_at : NULL);
}

/* ---- GET /api/mfa/status ---- */

static void on_status(http_request_t *req, const PGresult *res)
{
    mfa_state_t s;
    if (mfa_state_read(&s, res) < 0) {
        api_reply_internal(req, "account MFA state unreadable");
        return;
    }
    http_reply_json(req, 200, status_json(s.enabled || s.pending, s.enabled, s.verified_at));
}

void api_mfa_status(http_request_t *req)
{
    char id[24];
    const char *values[1] = {self_id(req, id)};
    api_db(req, on_status, MFA_STATE_SQL, 1, values);
}

/* ---- POST /api/mfa/bind/start ---- */

typedef struct bind {
    uint8_t secret[TOTP_SECRET_LEN];
    int reused;
} bind_t;

static void bind_free(void *state)
{
    explicit_bzero(((bind_t *)state)->secret, TOTP_SECRET_LEN);
}

/* The name an authenticator app shows under the issuer: the login, else what we know. */
static void account_label(const account_t *a, char *out, size_t size)
{
    if (a->login != NULL)
        snprintf(out, size, "%s", a->login);
    else if (a->email != NULL)
        snprintf(out, size, "%s", a->email);
    else
        snprintf(out, size, "account-%lld", (long long)a->id);
}

static void reply_secret(http_request_t *req)
{
    bind_t *b = api_state(req);
    /* A label of up to 399 bytes (an e-mail address fits) takes three times that encoded. */
    char b32[TOTP_BASE32_LEN + 1], label[400], uri[TOTP_URI_MAX + 3 * sizeof(label)];
    totp_base32(b->secret, b32);
    account_label(&api_principal(req)->account, label, sizeof(label));
    buf_t png = BUF_INIT(0);
    char *png_b64 = NULL;
    if (totp_otpauth_uri(MFA_ISSUER, label, b32, uri, sizeof(uri)) < 0 || qr_png(uri, &png) < 0 ||
        (png_b64 = malloc(crypto_b64_len(png.len) + 1)) == NULL) {
        api_reply_internal(req, "otpauth URI or QR code");
    } else {
        crypto_b64_encode(png.data, png.len, png_b64);
        api_audit(req, "mfa_bind_start", "ok", api_principal(req)->account.id,
                  json_pack("{s:b}", "reused", b->reused));
        /* The answer holds the secret: no cache, shared or private, may keep it. */
        http_header_t h[1] = {{SLICE_LIT("Cache-Control"), SLICE_LIT("no-store")}};
        http_reply_json_h(req, 200,
                          json_pack("{s:s,s:s,s:s}", "secret", b32, "otpauth_url", uri,
                                    "qr_code_base64", png_b64),
                          h, 1);
    }
    explicit_bzero(b32, sizeof(b32));
    explicit_bzero(uri, sizeof(uri));
    free(png_b64);
    buf_free(&png);
}

static void on_pending_stored(http_request_t *req, const PGresult *res)
{
    if (PQntuples(res) != 1) {
        /* MFA was switched on, or another bind/start stored its secret, since we looked. */
        http_reply_error(req, 409, "CONFLICT",
                         "The MFA set-up changed meanwhile; ask for its status and try again.");
        return;
    }
    reply_secret(req);
}

static void on_bind_state(http_request_t *req, const PGresult *res)
{
    bind_t *b = api_state(req);
    const mfa_keys_t *keys = api_app(req)->mfa_keys;
    int64_t id = api_principal(req)->account.id;
    mfa_state_t s;
    if (mfa_state_read(&s, res) < 0) {
        api_reply_internal(req, "account MFA state unreadable");
        return;
    }
    if (s.enabled) {
        http_reply_error(req, 409, "MFA_ALREADY_ENABLED",
                         "MFA is already enabled; disable it first to bind a new secret.");
        return;
    }
    /* The pending secret again, so a QR code can be shown twice; a new one when there is none
     * or it no longer opens (a key that was dropped from the configuration). */
    b->reused = s.pending && mfa_state_open(&s, keys, id) == 0;
    if (b->reused)
        memcpy(b->secret, s.secret, TOTP_SECRET_LEN);
    mfa_state_wipe(&s);
    if (b->reused && mfa_state_key_current(&s, keys)) {
        reply_secret(req);
        return;
    }
    if (!b->reused && totp_secret_new(b->secret) < 0) {
        api_reply_unavailable(req, "random", "no randomness");
        return;
    }
    char sealed[MFA_SEALED_B64_MAX], idt[24];
    if (mfa_state_seal(NULL, keys, id, b->secret, sealed) < 0) {
        api_reply_unavailable(req, "crypto", "sealing the secret failed");
        return;
    }
    /* Only over what we saw: two bind/starts at once must not hand out two secrets of which
     * only one is stored. */
    const char *values[4] = {api_i64(id, idt), sealed, mfa_keys_current_id(keys),
                             s.pending ? s.stored_b64 : NULL};
    api_db(req, on_pending_stored,
           "UPDATE accounts SET mfa_pending_enc = decode($2, 'base64'), mfa_key_id = $3,"
           " updated_at = now()"
           " WHERE id = $1 AND NOT mfa_enabled"
           " AND mfa_pending_enc IS NOT DISTINCT FROM decode($4, 'base64') RETURNING id",
           4, values);
}

void api_mfa_bind_start(http_request_t *req)
{
    if (api_state_new(req, sizeof(bind_t), bind_free) == NULL)
        return;
    char id[24];
    const char *values[1] = {self_id(req, id)};
    api_db(req, on_bind_state, MFA_STATE_SQL, 1, values);
}

/* ---- the code-taking routes ---- */

static const api_field_t code_field[1] = {
    {"otp_code", API_FIELD_STRING, 1, 1, 16, "INVALID_OTP_CODE"},
};

static void with_code(http_request_t *req, enum mfa_use use, mfa_code_cb cb)
{
    api_value_t in[1];
    if (api_fields_or_reply(req, code_field, 1, in) < 0)
        return;
    mfa_code_accept(req, api_principal(req)->account.id, in[0].str, in[0].len, use, cb);
}

/* Accepted codes leave their time in the request's state until the mark is set. */
typedef struct accepted_at {
    char verified_at[MFA_VERIFIED_AT_MAX];
} accepted_at_t;

static int keep_verified_at(http_request_t *req, const mfa_accepted_t *accepted)
{
    accepted_at_t *t = api_state_new(req, sizeof(*t), NULL);
    if (t != NULL)
        memcpy(t->verified_at, accepted->verified_at, sizeof(t->verified_at));
    return t != NULL;
}

/* Confirm and disable answer with the new status once the mark is set or cleared. */
static void reply_switched(http_request_t *req, int on)
{
    accepted_at_t *t = api_state(req);
    api_audit(req, on ? "mfa_enable" : "mfa_disable", "ok", api_principal(req)->account.id, NULL);
    http_reply_json(req, 200, status_json(on, on, t->verified_at));
}

static void on_enabled_marked(http_request_t *req, int present)
{
    (void)present;
    reply_switched(req, 1);
}

static void on_confirmed(http_request_t *req, const mfa_accepted_t *accepted)
{
    /* The first code proves the app holds the secret: it counts as a verification too. */
    if (keep_verified_at(req, accepted))
        mfa_mark_set(req, api_principal(req)->account.id, on_enabled_marked);
}

void api_mfa_bind_confirm(http_request_t *req)
{
    with_code(req, MFA_USE_CONFIRM, on_confirmed);
}

static void on_verified_marked(http_request_t *req, int present)
{
    (void)present;
    api_audit(req, "mfa_verify", "ok", api_principal(req)->account.id, NULL);
    http_reply_json(req, 200,
                    json_pack("{s:b,s:i}", "verified", 1, "expires_in", MFA_MARK_SECONDS));
}

static void on_verified(http_request_t *req, const mfa_accepted_t *accepted)
{
    (void)accepted;
    mfa_mark_set(req, api_principal(req)->account.id, on_verified_marked);
}

void api_mfa_verify(http_request_t *req)
{
    with_code(req, MFA_USE_VERIFY, on_verified);
}

static void on_disabled_unmarked(http_request_t *req, int present)
{
    (void)present;
    reply_switched(req, 0);
}

static void on_disabled(http_request_t *req, const mfa_accepted_t *accepted)
{
    if (keep_verified_at(req, accepted))
        mfa_mark_clear(req, api_principal(req)->account.id, 0, on_disabled_unmarked);
}

void api_mfa_disable(http_request_t *req)
{
    with_code(req, MFA_USE_DISABLE, on_disabled);
}
