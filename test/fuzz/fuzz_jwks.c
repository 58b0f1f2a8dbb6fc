/*
 * libFuzzer target for common/jwks.c: a JWK Set document as a provider's jwks_uri returns it.
 *
 * Two modes, by the low bit of byte 0:
 *   raw       the rest is the document (in a heap block of its own size);
 *   template  the rest drives a well-formed set: up to 8 keys, each built from the input as
 *             "kty \xff kid \xff member bytes \xff member bytes", with the members base64url-
 *             encoded here into n/e (RSA) or x/y (EC) — so the key loaders, and mbedtls's
 *             checks behind them, see structurally valid keys with hostile numbers.
 * Each usable key is then looked up by its kid and asked to verify a signature made of input
 * bytes; nothing may verify, and the set never holds more keys than JWKS_MAX_KEYS.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/crypto.h"
#include "common/jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

/* Splits [*p, end) at the next 0xff: returns the piece and moves *p past the separator. */
static size_t next_piece(const uint8_t **p, const uint8_t *end, const uint8_t **piece)
{
    const uint8_t *sep = memchr(*p, 0xff, (size_t)(end - *p));
    *piece = *p;
    size_t n = (size_t)((sep ? sep : end) - *p);
    *p = sep ? sep + 1 : end;
    return n;
}

static json_t *b64_string(const uint8_t *p, size_t n)
{
    char *s = malloc(crypto_b64url_len(n) + 1);
    if (s == NULL)
        return json_null();
    crypto_b64url_encode(p, n, s);
    json_t *v = json_string(s);
    free(s);
    return v ? v : json_null();
}

static char *template_set(const uint8_t *p, const uint8_t *end, size_t *len)
{
    json_t *keys = json_array();
    for (int k = 0; k < 8 && p < end; k++) {
        const uint8_t *kty, *kid, *a, *b;
        size_t nkty = next_piece(&p, end, &kty);
        size_t nkid = next_piece(&p, end, &kid);
        size_t na = next_piece(&p, end, &a);
        size_t nb = next_piece(&p, end, &b);
        int ec = nkty > 0 && (kty[0] & 1);
        json_t *key = json_pack("{s:s,s:s%}", "kty", ec ? "EC" : "RSA", "kid", (const char *)kid,
                                nkid);
        if (key == NULL) /* a kid that is not UTF-8 */
            key = json_pack("{s:s}", "kty", ec ? "EC" : "RSA");
        if (ec)
            json_object_set_new(key, "crv", json_string(nkty > 1 && (kty[1] & 1) ? "P-384"
                                                                                  : "P-256"));
        json_object_set_new(key, ec ? "x" : "n", b64_string(a, na));
        json_object_set_new(key, ec ? "y" : "e", b64_string(b, nb));
        json_array_append_new(keys, key);
    }
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    *len = text ? strlen(text) : 0;
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    char *doc;
    if (data[0] & 1) {
        doc = template_set(data + 1, data + size, &len);
    } else {
        doc = malloc(len ? len : 1);
        if (doc != NULL)
            memcpy(doc, data + 1, len);
    }
    if (doc == NULL)
        return 0;

    const char *why = NULL;
    jwks_t *set = jwks_parse(doc, len, &why);
    if (set == NULL) {
        CHECK(why != NULL);
    } else {
        CHECK(jwks_count(set) <= JWKS_MAX_KEYS);
        uint8_t digest[32], sig[512];
        crypto_sha256(data, size, digest);
        size_t sig_len = size < sizeof(sig) ? size : sizeof(sig);
        memset(sig, 0, sizeof(sig));
        memcpy(sig, data, sig_len);
        static const enum jose_alg algs[] = {JOSE_ALG_RS256, JOSE_ALG_ES256};
        for (size_t a = 0; a < 2; a++) {
            jwk_t *key = jwks_find(set, NULL, 0, algs[a]);
            if (key != NULL) {
                CHECK(jwk_verify(key, algs[a], digest, sig, sig_len) != 0);
                CHECK(jwk_verify(key, algs[1 - a], digest, sig, 64) != 0);
            }
        }
        jwks_free(set);
    }
    free(doc);
    return 0;
}
