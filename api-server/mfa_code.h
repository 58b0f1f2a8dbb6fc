/*
 * mfa_code: accepting a one-time code. Sign-in, verify, confirm and disable all take this one
 * path, so the rules hold everywhere:
 *
 *   0. the code is TOTP_DIGITS digits                               else 422 INVALID_OTP_CODE
 *   1. the account's MFA state fits the use: confirm needs a pending secret and MFA off (else
 *      400 MFA_NOT_STARTED, or 409 MFA_ALREADY_ENABLED); the others need MFA on (else 400
 *      MFA_NOT_ENABLED)
 *   2. the attempt is counted in `ratelimit:otp:<account id>`: MFA_CODE_FAILURES per
 *      MFA_CODE_WINDOW_SECONDS, shared by all four uses; beyond it 429 with Retry-After, the
 *      right code included (one audit row "locked" per window)
 *   3. the secret is opened (mfa_keys.h; a key that is not configured: 500, logged)
 *   4. the code matches within ±1 time step                          else 401 INVALID_OTP_CODE
 *   5. one conditional UPDATE records the accepted step, and only if it is later than the last
 *      accepted one and the secret is still the one checked: a code is good once, and of two
 *      requests racing with the same code exactly one wins           else 401 INVALID_OTP_CODE
 *      The same UPDATE makes the use's change (confirm: MFA on; disable: secret gone) and seals
 *      the secret again under the current key if it was under a retired one.
 *   6. the attempt is refunded: only failures count toward the limit.
 * Then cb runs; the caller sets or clears the mark, writes the "ok" audit row and replies.
 * Every refusal above is answered here, with an audit row (failures: event per use, outcome
 * "failed", reason bad_code / replayed); cb does not run then. Redis or PostgreSQL down: 503.
 */
#ifndef EDGEGATE_API_MFA_CODE_H
#define EDGEGATE_API_MFA_CODE_H

#include <stddef.h>
#include <stdint.h>

#include "api-server/mfa_state.h"
#include "common/http_server.h"

#define MFA_CODE_FAILURES 5
#define MFA_CODE_WINDOW_SECONDS (15 * 60)

enum mfa_use {
    MFA_USE_LOGIN,   /* audit event "login" */
    MFA_USE_CONFIRM, /* "mfa_enable": bind/confirm */
    MFA_USE_VERIFY,  /* "mfa_verify" */
    MFA_USE_DISABLE, /* "mfa_disable" */
};

typedef struct mfa_accepted {
    int64_t step;                          /* the time step of the accepted code */
    char verified_at[MFA_VERIFIED_AT_MAX]; /* now, as stored in mfa_last_verified_at */
} mfa_accepted_t;

typedef void (*mfa_code_cb)(http_request_t *req, const mfa_accepted_t *accepted);

void mfa_code_accept(http_request_t *req, int64_t account_id, const char *code, size_t code_len,
                     enum mfa_use use, mfa_code_cb cb);

/* The audit event of a use. */
const char *mfa_use_event(enum mfa_use use);

#endif
