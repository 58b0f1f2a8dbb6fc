/*
 * mfa_state: an account's MFA columns as every MFA step reads them, and its TOTP secret opened.
 *
 * MFA_STATE_SQL reads them for account $1. An account stores at most one secret (the pending one
 * of an unfinished bind, or the active one; sql/003_mfa.sql), sealed by mfa_keys.h and carried
 * here in base64 exactly as stored, so that a write can be made conditional on it ("only if
 * the secret is still the one I checked the code against").
 *
 * Pure: no I/O. The opened secret lives in the struct; mfa_state_wipe() clears it.
 */
#ifndef EDGEGATE_API_MFA_STATE_H
#define EDGEGATE_API_MFA_STATE_H

#include <libpq-fe.h>
#include <stdint.h>

#include "api-server/mfa_keys.h"
#include "api-server/totp.h"

/* Sealed secrets cross libpq as base64 text: PostgreSQL breaks base64 lines, hence translate. */
#define MFA_SQL_B64(col) "translate(encode(" col ", 'base64'), E'\\n', '')"
#define MFA_SQL_VERIFIED_AT                                                                    \
    "to_char(mfa_last_verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

#define MFA_STATE_SQL                                                                          \
    "SELECT mfa_enabled, " MFA_SQL_B64("mfa_secret_enc") ", " MFA_SQL_B64(                     \
        "mfa_pending_enc") ", mfa_key_id, " MFA_SQL_VERIFIED_AT " FROM accounts WHERE id = $1"

#define MFA_SEALED_MAX MFA_SEALED_LEN(TOTP_SECRET_LEN)
#define MFA_SEALED_B64_MAX 96 /* base64 of MFA_SEALED_MAX bytes, with room to spare */
#define MFA_VERIFIED_AT_MAX 32

typedef struct mfa_state {
    int enabled; /* an active secret: MFA is on */
    int pending; /* a secret from bind/start awaits its first code */
    char stored_b64[MFA_SEALED_B64_MAX]; /* whichever secret is stored, as stored; "" if none */
    char key_id[MFA_KEY_ID_LEN + 1];
    char verified_at[MFA_VERIFIED_AT_MAX]; /* ISO 8601 UTC; "" when never */
    uint8_t secret[TOTP_SECRET_LEN];       /* after mfa_state_open() */
} mfa_state_t;

/* Row 0 of an MFA_STATE_SQL result into s. 0, or -1 (no row, or a shape we do not expect). */
int mfa_state_read(mfa_state_t *s, const PGresult *res);

/* Opens the stored secret into s->secret. 0, or an mfa_open_error (MFA_OPEN_BAD also for no
 * secret at all or one of the wrong size). */
int mfa_state_open(mfa_state_t *s, const mfa_keys_t *keys, int64_t account_id);

/* Is the stored secret sealed under the current key? */
int mfa_state_key_current(const mfa_state_t *s, const mfa_keys_t *keys);

/*
 * secret sealed for account_id under the current key, as base64 for a query parameter. With
 * s given and its stored secret already under the current key, that stored text is reused
 * (nothing to rotate). 0, or -1.
 */
int mfa_state_seal(const mfa_state_t *s, const mfa_keys_t *keys, int64_t account_id,
                   const uint8_t secret[TOTP_SECRET_LEN], char out[MFA_SEALED_B64_MAX]);

void mfa_state_wipe(mfa_state_t *s);

#endif
