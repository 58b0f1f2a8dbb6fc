/*
 * mfa_keys: TOTP secrets at rest, sealed with AES-256-GCM (mbedtls) under EDGEGATE_MFA_KEY.
 *
 * A sealed secret is  0x01 (format) · 12-byte random nonce · ciphertext · 16-byte tag;  the
 * additional data is the account id, so a ciphertext copied onto another account's row does
 * not open there. Each key has an id (16 hex digits of an HMAC of the key, which says nothing
 * about the key) that is stored beside the ciphertext (accounts.mfa_key_id).
 *
 * Rotation: the new key goes into EDGEGATE_MFA_KEY and the old one into
 * EDGEGATE_MFA_RETIRED_KEYS (comma-separated, base64 each). Retired keys only open; whoever
 * opens a secret under a retired key seals it again under the current one when it next writes
 * the row (mfa_code.c does so on every accepted code). Rows still under an old key:
 *   SELECT count(*) FROM accounts WHERE mfa_key_id <> '<current id from the start-up log>';
 *
 * The keyring is immutable after mfa_keys_new and holds the only copies of the raw keys (wiped
 * by mfa_keys_free). Nothing here allocates per call or blocks.
 */
#ifndef EDGEGATE_API_MFA_KEYS_H
#define EDGEGATE_API_MFA_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define MFA_KEY_ID_LEN 16
#define MFA_KEYS_MAX_RETIRED 8
/* Bytes a sealed secret of n bytes takes. */
#define MFA_SEALED_LEN(n) (1 + 12 + (n) + 16)

typedef struct mfa_keys mfa_keys_t;

enum mfa_open_error {
    MFA_OPEN_BAD = -1,         /* malformed, tampered, another account's, or the wrong key */
    MFA_OPEN_UNKNOWN_KEY = -2, /* key_id is neither the current nor a retired key */
};

/*
 * current_b64: base64 of exactly 32 bytes. retired_b64: NULL, "" or a comma-separated list of
 * such keys (at most MFA_KEYS_MAX_RETIRED, none equal to the current one). NULL on bad input,
 * with *why saying what is wrong (never echoing a key), or on no memory (*why says so).
 */
mfa_keys_t *mfa_keys_new(const char *current_b64, const char *retired_b64, const char **why);
void mfa_keys_free(mfa_keys_t *keys);

/* The configuration checker of EDGEGATE_MFA_RETIRED_KEYS: NULL when acceptable. */
const char *mfa_keys_list_error(const char *retired_b64);

const char *mfa_keys_current_id(const mfa_keys_t *keys);
size_t mfa_keys_retired_count(const mfa_keys_t *keys);

/* Seals plain under the current key for account_id into out (MFA_SEALED_LEN(len) bytes).
 * Returns that length, or -1 (out too small, CSPRNG or cipher failure). */
long mfa_keys_seal(const mfa_keys_t *keys, int64_t account_id, const uint8_t *plain, size_t len,
                   uint8_t *out, size_t out_size);

/* Opens what mfa_keys_seal made under key key_id for account_id. Returns the plaintext length,
 * or an mfa_open_error. out is wiped on failure. */
long mfa_keys_open(const mfa_keys_t *keys, const char *key_id, int64_t account_id,
                   const uint8_t *sealed, size_t len, uint8_t *out, size_t out_size);

#endif
