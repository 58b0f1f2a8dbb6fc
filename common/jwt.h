/*
 * jwt: a JWS in compact serialisation (RFC 7515 §7.1) — header.payload.signature — parsed
 * strictly and verified with a key set (jwks.h). Pure: no I/O.
 *
 * Parsing (jwt_parse) refuses, with a short static reason:
 *   - anything but three non-empty base64url segments (no padding) within JWT_MAX_LEN bytes,
 *     a header over JWT_MAX_HEADER or claims over JWT_MAX_CLAIMS bytes once decoded;
 *   - a header or claims set that is not a JSON object, or repeats a member name;
 *   - an algorithm other than RS256 and ES256: "none" and the HMAC family (HS256, ...) above
 *     all, since a verifier that accepts them can be fooled with an unsigned token or one
 *     signed with the public key as an HMAC secret;
 *   - a "crit" header (extensions we do not understand must not be ignored, §4.1.11).
 * Key-carrying headers (jku, jwk, x5u, x5c) are ignored: a token never chooses its own key.
 *
 * jwt_verify() checks the signature with the key the header names (kid) in the given set.
 * Claims are not judged here (see id_token.h).
 *
 * Memory: a parsed jwt_t owns its claims document; jwt_clear() releases it. Nothing points
 * into the token text after jwt_parse() returns.
 */
#ifndef EDGEGATE_JWT_H
#define EDGEGATE_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jwks.h"

/* ID tokens are a few hundred bytes to a few KiB; 16 KiB leaves room for many claims. */
#define JWT_MAX_LEN (16 * 1024)
#define JWT_MAX_HEADER 2048
#define JWT_MAX_CLAIMS (12 * 1024)
/* An 8192-bit RSA signature; ES256 needs 64. */
#define JWT_MAX_SIG 1024

enum jwt_result {
    JWT_OK = 0,
    JWT_MALFORMED = -1,   /* not a well-formed compact JWS */
    JWT_BAD_ALG = -2,     /* none, HS*, or another algorithm we do not verify */
    JWT_UNKNOWN_KEY = -3, /* no key in the set for this kid and algorithm */
    JWT_BAD_SIGNATURE = -4,
};

typedef struct jwt {
    enum jose_alg alg;
    char kid[JWKS_KID_MAX + 1]; /* "" when has_kid is 0 */
    size_t kid_len;
    int has_kid;
    json_t *claims; /* the payload, a JSON object; owned */
    uint8_t digest[32]; /* SHA-256 of the signing input (both our algorithms hash with it) */
    uint8_t sig[JWT_MAX_SIG];
    size_t sig_len;
} jwt_t;

/* JWT_OK and *out filled, or a negative jwt_result with *why set (out is then cleared). */
int jwt_parse(const char *token, size_t len, jwt_t *out, const char **why);
/* JWT_OK, JWT_UNKNOWN_KEY (fetch the set again, then retry) or JWT_BAD_SIGNATURE. */
int jwt_verify(const jwt_t *t, jwks_t *keys);
void jwt_clear(jwt_t *t);

#endif
