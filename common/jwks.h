/*
 * jwks: a JSON Web Key Set (RFC 7517) turned into mbedtls public keys, and JWS signature
 * checks with them (RFC 7518 §3.3 RS256, §3.4 ES256). Pure: no I/O; the set is fetched by
 * whoever calls jwks_parse() (api-server/oidc_provider.c).
 *
 * What is kept: signing keys of the two algorithms we verify —
 *   RSA (n, e), 2048 to 8192 bits of modulus, for RS256;
 *   EC on P-256 (x, y: 32 bytes each, a point on the curve), for ES256.
 * What is skipped, not refused: keys for encryption ("use":"enc"), keys restricted to another
 * "alg", other key types and curves (a provider may publish Ed25519 or P-384 keys beside
 * ours), and malformed keys (one bad key must not stop sign-in with the good ones). A set
 * that is not JSON, has no "keys" array, or lists more than JWKS_MAX_KEYS entries is refused.
 *
 * Memory: jwks_parse() returns a set the caller frees with jwks_free(); jwks_find() returns a
 * key that lives as long as its set.
 */
#ifndef EDGEGATE_JWKS_H
#define EDGEGATE_JWKS_H

#include <stddef.h>
#include <stdint.h>

/* The JWS algorithms we accept. Anything else ("none", HS256, PS256, ...) has no value here. */
enum jose_alg {
    JOSE_ALG_UNSUPPORTED = 0,
    JOSE_ALG_RS256,
    JOSE_ALG_ES256,
};

/* A JWK Set document larger than this is refused (real sets are a few KiB). */
#define JWKS_MAX_BYTES (256 * 1024)
#define JWKS_MAX_KEYS 64
/* Longer key ids are refused in sets and tokens alike. */
#define JWKS_KID_MAX 128

typedef struct jwks jwks_t;
typedef struct jwk jwk_t;

/* "RS256" → JOSE_ALG_RS256, ...; JOSE_ALG_UNSUPPORTED for anything else. */
enum jose_alg jose_alg_parse(const char *name);
const char *jose_alg_name(enum jose_alg alg);

/* base64url as JOSE writes it (RFC 7515 §2): no padding, canonical. Returns the decoded
 * length, or -1 (bad character, '=' padding, non-canonical tail, more than out_size bytes). */
long jose_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size);

/* NULL (and a reason in *why, a static string) when the document is not a usable set. A set
 * with zero usable keys is returned (and verifies nothing). */
jwks_t *jwks_parse(const char *json, size_t len, const char **why);
void jwks_free(jwks_t *set);
/* How many usable keys the set holds. */
size_t jwks_count(const jwks_t *set);

/*
 * The key to verify a signature by alg: the one whose "kid" is kid (kid_len bytes), or, when
 * the token names no kid (kid NULL), the only usable key for alg. NULL when there is none
 * (an unknown kid: time to fetch the set again) or, without kid, when several would do.
 */
jwk_t *jwks_find(jwks_t *set, const char *kid, size_t kid_len, enum jose_alg alg);

/* 0 when sig is a valid alg signature of the SHA-256 digest by key; else -1. Not const: mbedtls
 * may cache precomputed points in the key's curve group. */
int jwk_verify(jwk_t *key, enum jose_alg alg, const uint8_t digest[32], const uint8_t *sig,
               size_t sig_len);

#endif
