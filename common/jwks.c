#include "common/jwks.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include "common/crypto.h"

/* RSA moduli below 2048 bits are too weak to trust (NIST SP 800-131A); above 8192 bits
 * nobody publishes them and verification time grows with the square of the size. */
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define RSA_MAX_BYTES (RSA_MAX_BITS / 8)
/* Public exponents are 3 or 65537 in practice; 8 bytes leaves room without inviting abuse. */
#define RSA_MAX_E_BYTES 8
#define P256_COORD_BYTES 32

struct jwk {
    char kid[JWKS_KID_MAX + 1];
    size_t kid_len;
    int has_kid;
    enum jose_alg alg; /* what this key verifies: RS256 for RSA keys, ES256 for P-256 keys */
    mbedtls_pk_context pk;
};

struct jwks {
    size_t n;
    struct jwk keys[];
};

enum jose_alg jose_alg_parse(const char *name)
{
    if (name == NULL)
        return JOSE_ALG_UNSUPPORTED;
    if (strcmp(name, "RS256") == 0)
        return JOSE_ALG_RS256;
    if (strcmp(name, "ES256") == 0)
        return JOSE_ALG_ES256;
    return JOSE_ALG_UNSUPPORTED;
}

const char *jose_alg_name(enum jose_alg alg)
{
    switch (alg) {
    case JOSE_ALG_RS256:
        return "RS256";
    case JOSE_ALG_ES256:
        return "ES256";
    case JOSE_ALG_UNSUPPORTED:
        break;
    }
    return "unsupported";
}

long jose_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size)
{
    /* crypto_b64url_decode tolerates padding; JOSE forbids it, and one encoding per value
     * keeps a signed token from having look-alike twins. */
    if (memchr(in, '=', len) != NULL)
        return -1;
    return crypto_b64url_decode(in, len, out, out_size);
}

/* The base64url string member name of key, decoded into out; -1 when absent or bad. */
static long member_bytes(const json_t *key, const char *name, uint8_t *out, size_t out_size)
{
    const json_t *v = json_object_get(key, name);
    if (!json_is_string(v))
        return -1;
    return jose_b64url_decode(json_string_value(v), json_string_length(v), out, out_size);
}

/* Does the optional member name, if present, equal want? Absent: yes. */
static int optional_is(const json_t *key, const char *name, const char *want)
{
    const json_t *v = json_object_get(key, name);
    if (v == NULL)
        return 1;
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/* "key_ops", when present, must allow verification (RFC 7517 §4.3). */
static int allows_verify(const json_t *key)
{
    const json_t *ops = json_object_get(key, "key_ops");
    if (ops == NULL)
        return 1;
    size_t i;
    const json_t *op;
    json_array_foreach(ops, i, op)
    {
        if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
            return 1;
    }
    return 0;
}

static int load_rsa(struct jwk *k, const json_t *key)
{
    uint8_t n[RSA_MAX_BYTES + 1], e[RSA_MAX_E_BYTES];
    long nlen = member_bytes(key, "n", n, sizeof(n));
    long elen = member_bytes(key, "e", e, sizeof(e));
    if (nlen <= 0 || elen <= 0)
        return -1;
    if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0)
        return -1;
    mbedtls_rsa_context *rsa = mbedtls_pk_rsa(k->pk);
    if (mbedtls_rsa_import_raw(rsa, n, (size_t)nlen, NULL, 0, NULL, 0, NULL, 0, e,
                               (size_t)elen) != 0 ||
        mbedtls_rsa_complete(rsa) != 0 || mbedtls_rsa_check_pubkey(rsa) != 0)
        return -1;
    size_t bits = mbedtls_pk_get_bitlen(&k->pk);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
        return -1;
    k->alg = JOSE_ALG_RS256;
    return 0;
}

static int load_p256(struct jwk *k, const json_t *key)
{
    if (!optional_is(key, "crv", "P-256") || json_object_get(key, "crv") == NULL)
        return -1;
    /* RFC 7518 §6.2.1.2: each coordinate is the full 32 bytes, leading zeros kept. */
    uint8_t point[1 + 2 * P256_COORD_BYTES];
    point[0] = 0x04; /* SEC 1 uncompressed point */
    if (member_bytes(key, "x", point + 1, P256_COORD_BYTES) != P256_COORD_BYTES ||
        member_bytes(key, "y", point + 1 + P256_COORD_BYTES, P256_COORD_BYTES) !=
            P256_COORD_BYTES)
        return -1;
    if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0)
        return -1;
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
    /* A point off the curve would open invalid-curve attacks: check_pubkey refuses it. */
    if (mbedtls_ecp_group_load(&ec->grp, MBEDTLS_ECP_DP_SECP256R1) != 0 ||
        mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, point, sizeof(point)) != 0 ||
        mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q) != 0)
        return -1;
    k->alg = JOSE_ALG_ES256;
    return 0;
}

/* Fills k from one JWK; -1 (k to be freed by the caller) when it is not a key we use. */
static int load_key(struct jwk *k, const json_t *key)
{
    if (!json_is_object(key) || !optional_is(key, "use", "sig") || !allows_verify(key))
        return -1;
    const json_t *kid = json_object_get(key, "kid");
    if (kid != NULL) {
        if (!json_is_string(kid) || json_string_length(kid) > JWKS_KID_MAX)
            return -1;
        k->kid_len = json_string_length(kid);
        memcpy(k->kid, json_string_value(kid), k->kid_len);
        k->kid[k->kid_len] = '\0';
        k->has_kid = 1;
    }
    const char *kty = json_string_value(json_object_get(key, "kty"));
    int rc;
    if (kty != NULL && strcmp(kty, "RSA") == 0)
        rc = load_rsa(k, key);
    else if (kty != NULL && strcmp(kty, "EC") == 0)
        rc = load_p256(k, key);
    else
        return -1;
    if (rc < 0)
        return -1;
    /* A key restricted to another algorithm (RS512, PS256, ...) is not used for ours. */
    return optional_is(key, "alg", jose_alg_name(k->alg)) ? 0 : -1;
}

jwks_t *jwks_parse(const char *json, size_t len, const char **why)
{
    if (len > JWKS_MAX_BYTES) {
        *why = "key set too large";
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        *why = "not a JWK Set (no \"keys\" array)";
        return NULL;
    }
    size_t total = json_array_size(keys);
    if (total > JWKS_MAX_KEYS) {
        json_decref(doc);
        *why = "too many keys in the set";
        return NULL;
    }
    jwks_t *set = calloc(1, sizeof(*set) + total * sizeof(set->keys[0]));
    if (set == NULL) {
        json_decref(doc);
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < total; i++) {
        struct jwk *k = &set->keys[set->n];
        mbedtls_pk_init(&k->pk);
        if (load_key(k, json_array_get(keys, i)) == 0) {
            set->n++;
        } else {
            mbedtls_pk_free(&k->pk);
            memset(k, 0, sizeof(*k));
        }
    }
    json_decref(doc);
    return set;
}

void jwks_free(jwks_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        mbedtls_pk_free(&set->keys[i].pk);
    free(set);
}

size_t jwks_count(const jwks_t *set)
{
    return set ? set->n : 0;
}

jwk_t *jwks_find(jwks_t *set, const char *kid, size_t kid_len, enum jose_alg alg)
{
    if (set == NULL || alg == JOSE_ALG_UNSUPPORTED)
        return NULL;
    jwk_t *only = NULL;
    size_t candidates = 0;
    for (size_t i = 0; i < set->n; i++) {
        jwk_t *k = &set->keys[i];
        if (k->alg != alg)
            continue;
        if (kid == NULL) {
            only = k;
            candidates++;
        } else if (k->has_kid && k->kid_len == kid_len && memcmp(k->kid, kid, kid_len) == 0) {
            return k;
        }
    }
    return candidates == 1 ? only : NULL;
}

static int verify_es256(jwk_t *key, const uint8_t digest[32], const uint8_t *sig, size_t sig_len)
{
    /* JOSE writes an ECDSA signature as r || s, 32 bytes each (RFC 7518 §3.4), not as the DER
     * SEQUENCE that mbedtls_pk_verify expects: verify with the two numbers directly. */
    if (sig_len != 2 * P256_COORD_BYTES)
        return -1;
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    int rc = mbedtls_mpi_read_binary(&r, sig, P256_COORD_BYTES);
    if (rc == 0)
        rc = mbedtls_mpi_read_binary(&s, sig + P256_COORD_BYTES, P256_COORD_BYTES);
    if (rc == 0) /* checks 0 < r, s < n itself */
        rc = mbedtls_ecdsa_verify(&ec->grp, digest, 32, &ec->Q, &r, &s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return rc == 0 ? 0 : -1;
}

int jwk_verify(jwk_t *key, enum jose_alg alg, const uint8_t digest[32], const uint8_t *sig,
               size_t sig_len)
{
    if (key == NULL || alg != key->alg)
        return -1;
    if (alg == JOSE_ALG_ES256)
        return verify_es256(key, digest, sig, sig_len);
    /* RS256: RSASSA-PKCS1-v1_5 (mbedtls's default padding for an imported key). A signature
     * of any other length than the modulus is refused before mbedtls reads it. */
    if (sig_len != mbedtls_pk_get_len(&key->pk))
        return -1;
    return mbedtls_pk_verify(&key->pk, MBEDTLS_MD_SHA256, digest, 32, sig, sig_len) == 0 ? 0 : -1;
}
