#include "api-server/mfa_state.h"

#include <string.h>

#include "common/crypto.h"

/* Copies column col of row 0 into out (size bytes); "" for NULL. -1 when it does not fit. */
static int copy_text(const PGresult *res, int col, char *out, size_t size)
{
    out[0] = '\0';
    if (PQgetisnull(res, 0, col))
        return 0;
    const char *v = PQgetvalue(res, 0, col);
    size_t len = strlen(v);
    if (len >= size)
        return -1;
    memcpy(out, v, len + 1);
    return 0;
}

int mfa_state_read(mfa_state_t *s, const PGresult *res)
{
    memset(s, 0, sizeof(*s));
    if (PQntuples(res) != 1 || PQnfields(res) != 5)
        return -1;
    char secret[MFA_SEALED_B64_MAX], pending[MFA_SEALED_B64_MAX];
    if (copy_text(res, 1, secret, sizeof(secret)) < 0 ||
        copy_text(res, 2, pending, sizeof(pending)) < 0 ||
        copy_text(res, 3, s->key_id, sizeof(s->key_id)) < 0 ||
        copy_text(res, 4, s->verified_at, sizeof(s->verified_at)) < 0)
        return -1;
    s->enabled = PQgetvalue(res, 0, 0)[0] == 't';
    s->pending = pending[0] != '\0';
    memcpy(s->stored_b64, s->enabled ? secret : pending, sizeof(s->stored_b64));
    return 0;
}

int mfa_state_open(mfa_state_t *s, const mfa_keys_t *keys, int64_t account_id)
{
    uint8_t sealed[MFA_SEALED_MAX + 1];
    long n = crypto_b64_decode(s->stored_b64, strlen(s->stored_b64), sealed, sizeof(sealed));
    if (s->stored_b64[0] == '\0' || n != (long)MFA_SEALED_MAX)
        return MFA_OPEN_BAD;
    uint8_t plain[TOTP_SECRET_LEN];
    long got = mfa_keys_open(keys, s->key_id, account_id, sealed, (size_t)n, plain, sizeof(plain));
    if (got == TOTP_SECRET_LEN)
        memcpy(s->secret, plain, sizeof(plain));
    explicit_bzero(plain, sizeof(plain));
    return got == TOTP_SECRET_LEN ? 0 : got < 0 ? (int)got : MFA_OPEN_BAD;
}

int mfa_state_key_current(const mfa_state_t *s, const mfa_keys_t *keys)
{
    return strcmp(s->key_id, mfa_keys_current_id(keys)) == 0;
}

int mfa_state_seal(const mfa_state_t *s, const mfa_keys_t *keys, int64_t account_id,
                   const uint8_t secret[TOTP_SECRET_LEN], char out[MFA_SEALED_B64_MAX])
{
    if (s != NULL && s->stored_b64[0] != '\0' && mfa_state_key_current(s, keys)) {
        memcpy(out, s->stored_b64, MFA_SEALED_B64_MAX);
        return 0;
    }
    uint8_t sealed[MFA_SEALED_MAX];
    if (mfa_keys_seal(keys, account_id, secret, TOTP_SECRET_LEN, sealed, sizeof(sealed)) < 0)
        return -1;
    crypto_b64_encode(sealed, sizeof(sealed), out);
    return 0;
}

void mfa_state_wipe(mfa_state_t *s)
{
    explicit_bzero(s->secret, sizeof(s->secret));
}
