#include "api-server/mfa_keys.h"

#include <inttypes.h>
#include <mbedtls/gcm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define FORMAT_V1 0x01
/* Room for one base64 key (44 characters) and a little slack, to notice a longer one. */
#define KEY_B64_MAX 64

typedef struct mfa_key {
    uint8_t raw[KEY_LEN];
    char id[MFA_KEY_ID_LEN + 1];
} mfa_key_t;

struct mfa_keys {
    mfa_key_t current;
    mfa_key_t retired[MFA_KEYS_MAX_RETIRED];
    size_t nretired;
};

/* The id names a key without revealing it: an HMAC under the key itself, truncated. */
static void key_id(mfa_key_t *k)
{
    static const char label[] = "edgegate mfa key id v1";
    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(k->raw, KEY_LEN, label, sizeof(label) - 1, mac);
    crypto_hex(mac, MFA_KEY_ID_LEN / 2, k->id);
}

/* One base64 key of [s, s+len) into k. 0, or -1. */
static int parse_key(const char *s, size_t len, mfa_key_t *k)
{
    uint8_t raw[KEY_B64_MAX];
    long n = len <= KEY_B64_MAX ? crypto_b64_decode(s, len, raw, sizeof(raw)) : -1;
    int ok = n == KEY_LEN;
    if (ok) {
        memcpy(k->raw, raw, KEY_LEN);
        key_id(k);
    }
    explicit_bzero(raw, sizeof(raw));
    return ok ? 0 : -1;
}

/* Parses the retired list into keys (may be NULL: only check). NULL, or what is wrong. */
static const char *parse_list(const char *list, mfa_key_t *out, size_t *count)
{
    size_t n = 0;
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        mfa_key_t k;
        if (n == MFA_KEYS_MAX_RETIRED)
            return "lists more than 8 keys";
        if (parse_key(p, len, &k) < 0)
            return "must be a comma-separated list of base64 keys of exactly 32 bytes each";
        if (out != NULL)
            out[n] = k;
        explicit_bzero(&k, sizeof(k));
        n++;
        p = comma ? comma + 1 : NULL;
        if (p != NULL && *p == '\0')
            return "must not end with a comma";
    }
    if (count != NULL)
        *count = n;
    return NULL;
}

const char *mfa_keys_list_error(const char *retired_b64)
{
    return parse_list(retired_b64, NULL, NULL);
}

void mfa_keys_free(mfa_keys_t *keys)
{
    if (keys == NULL)
        return;
    explicit_bzero(keys, sizeof(*keys));
    free(keys);
}

mfa_keys_t *mfa_keys_new(const char *current_b64, const char *retired_b64, const char **why)
{
    mfa_keys_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        *why = "out of memory";
        return NULL;
    }
    *why = NULL;
    if (current_b64 == NULL || parse_key(current_b64, strlen(current_b64), &k->current) < 0)
        *why = "EDGEGATE_MFA_KEY must be the base64 of exactly 32 bytes";
    else if (parse_list(retired_b64, k->retired, &k->nretired) != NULL)
        *why = "EDGEGATE_MFA_RETIRED_KEYS is not a list of base64 keys of 32 bytes";
    for (size_t i = 0; *why == NULL && i < k->nretired; i++) {
        if (crypto_equal(k->retired[i].raw, k->current.raw, KEY_LEN))
            *why = "EDGEGATE_MFA_RETIRED_KEYS repeats the current EDGEGATE_MFA_KEY";
        for (size_t j = 0; *why == NULL && j < i; j++)
            if (crypto_equal(k->retired[i].raw, k->retired[j].raw, KEY_LEN))
                *why = "EDGEGATE_MFA_RETIRED_KEYS lists a key twice";
    }
    if (*why != NULL) {
        mfa_keys_free(k);
        return NULL;
    }
    return k;
}

const char *mfa_keys_current_id(const mfa_keys_t *keys)
{
    return keys->current.id;
}

size_t mfa_keys_retired_count(const mfa_keys_t *keys)
{
    return keys->nretired;
}

static const mfa_key_t *find_key(const mfa_keys_t *keys, const char *id)
{
    if (id == NULL || strlen(id) != MFA_KEY_ID_LEN)
        return NULL;
    if (strcmp(keys->current.id, id) == 0)
        return &keys->current;
    for (size_t i = 0; i < keys->nretired; i++)
        if (strcmp(keys->retired[i].id, id) == 0)
            return &keys->retired[i];
    return NULL;
}

/* The additional data: which account the secret belongs to. */
static size_t aad_for(int64_t account_id, char out[64])
{
    return (size_t)snprintf(out, 64, "edgegate/mfa-secret/v1/account/%" PRId64, account_id);
}

long mfa_keys_seal(const mfa_keys_t *keys, int64_t account_id, const uint8_t *plain, size_t len,
                   uint8_t *out, size_t out_size)
{
    if (out_size < MFA_SEALED_LEN(len))
        return -1;
    out[0] = FORMAT_V1;
    uint8_t *nonce = out + 1, *ct = nonce + NONCE_LEN, *tag = ct + len;
    /* A random 96-bit nonce per encryption: a few secrets per account over the key's life are
     * far below the 2^32 messages after which random GCM nonces risk repeating. */
    if (crypto_random(nonce, NONCE_LEN) < 0)
        return -1;
    char aad[64];
    size_t aad_len = aad_for(account_id, aad);
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, keys->current.raw, KEY_LEN * 8);
    if (rc == 0)
        rc = mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, NONCE_LEN,
                                       (const uint8_t *)aad, aad_len, plain, ct, TAG_LEN, tag);
    mbedtls_gcm_free(&gcm);
    if (rc != 0) {
        explicit_bzero(out, out_size);
        return -1;
    }
    return (long)MFA_SEALED_LEN(len);
}

long mfa_keys_open(const mfa_keys_t *keys, const char *key_id, int64_t account_id,
                   const uint8_t *sealed, size_t len, uint8_t *out, size_t out_size)
{
    const mfa_key_t *key = find_key(keys, key_id);
    if (key == NULL)
        return MFA_OPEN_UNKNOWN_KEY;
    if (len < MFA_SEALED_LEN(0) || sealed[0] != FORMAT_V1 || out_size < len - MFA_SEALED_LEN(0))
        return MFA_OPEN_BAD;
    size_t n = len - MFA_SEALED_LEN(0);
    const uint8_t *nonce = sealed + 1, *ct = nonce + NONCE_LEN, *tag = ct + n;
    char aad[64];
    size_t aad_len = aad_for(account_id, aad);
    mbedtls_gcm_context gcm;
    mbedtls_gcm_init(&gcm);
    int rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key->raw, KEY_LEN * 8);
    if (rc == 0)
        rc = mbedtls_gcm_auth_decrypt(&gcm, n, nonce, NONCE_LEN, (const uint8_t *)aad, aad_len,
                                      tag, TAG_LEN, ct, out);
    mbedtls_gcm_free(&gcm);
    if (rc != 0) {
        explicit_bzero(out, out_size);
        return MFA_OPEN_BAD;
    }
    return (long)n;
}
