/*
 * libFuzzer target for common/jwt.c and common/id_token.c: a token as it comes back from a
 * token endpoint, parsed, verified against a fixed key set (an RS256 and an ES256 key made by
 * openssl) and, when it parses, its claims judged as an ID token.
 *
 * Two modes, by the low bit of byte 0:
 *   raw       the rest is the token text (copied to a heap block of its own size, so ASan sees
 *             any read past it: the parser must go by the length, not a NUL);
 *   template  the rest is "header JSON \xff claims JSON \xff signature bytes", each base64url-
 *             encoded here and joined with dots — random bytes would rarely make base64url of
 *             JSON, and this is where the header and claims rules live.
 * Invariants: a parsed token names RS256 or ES256 with a signature of at most JWT_MAX_SIG
 * bytes, and nothing the fuzzer makes verifies (it cannot sign with the fixed keys).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/id_token.h"
#include "common/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static const char KEYS[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"nojhXN7o5BSKZhp85bmhhiiE_WfByquk6rX9RPJL_PorfUa7De2wJdgCDIpcF"
    "pcEoIEijH3bjV8tlPkSPdk_CA3USWjN8bc_pbfhHG2JXzPGE5NNlKt2XKFugSgMBmTLVavhIFEA1BmGSN50u4cRT"
    "4QXjHVcyHf3cqiDm-WyU1cvXb9fTNKTUksZI4oTz16P4fDsuhv2f6EC7owIdGxNvpGvR_Xl1nIKjvpuinzb4VjBX"
    "k9O0bGBs-vX9uSq9UqTomkT47MS1mBxuAT-4-LOXbpXdPACJc_d9O9CRV7WPJtbvjVVj4R4m1E1QVTWexnf6deo4"
    "mzpt3edzjpJW0xPbw\",\"e\":\"AQAB\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\"},{\"kty\":"
    "\"EC\",\"crv\":\"P-256\",\"x\":\"4xBjSky7hGZ16nDoJ6CT0tJuWZabKIQCnrqOh0kOxfU\",\"y\":\"3uzMq-M7G"
    "E4rSdjstUwyDEK5z5ECyMTkGZatD9fYp9s\",\"kid\":\"ec1\",\"use\":\"sig\",\"alg\":\"ES256\"}]}";

static jwks_t *keys;

/* Appends base64url of [p, p+n) to out at *o (out has room: the caller sized it). */
static void put_b64(char *out, size_t *o, const uint8_t *p, size_t n)
{
    *o += crypto_b64url_encode(p, n, out + *o);
}

/* Template mode: header, claims and signature split at 0xff bytes, encoded and joined. */
static char *template_token(const uint8_t *in, size_t n, size_t *len)
{
    char *out = malloc(crypto_b64url_len(n) + 8);
    if (out == NULL)
        return NULL;
    size_t o = 0, start = 0;
    int part = 0;
    for (size_t i = 0; i <= n && part < 3; i++) {
        if (i == n || (in[i] == 0xff && part < 2)) {
            put_b64(out, &o, in + start, i - start);
            if (part < 2)
                out[o++] = '.';
            part++;
            start = i + 1;
        }
    }
    *len = o;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (keys == NULL) {
        const char *why;
        keys = jwks_parse(KEYS, sizeof(KEYS) - 1, &why);
        CHECK(keys != NULL && jwks_count(keys) == 2);
    }
    if (size < 1)
        return 0;
    size_t len = size - 1;
    char *token;
    if (data[0] & 1) {
        token = template_token(data + 1, len, &len);
    } else {
        token = malloc(len ? len : 1);
        if (token != NULL)
            memcpy(token, data + 1, len);
    }
    if (token == NULL)
        return 0;

    jwt_t t;
    const char *why = NULL;
    int rc = jwt_parse(token, len, &t, &why);
    if (rc == JWT_OK) {
        CHECK(t.alg == JOSE_ALG_RS256 || t.alg == JOSE_ALG_ES256);
        CHECK(t.sig_len > 0 && t.sig_len <= JWT_MAX_SIG);
        CHECK(json_is_object(t.claims));
        CHECK(jwt_verify(&t, keys) != JWT_OK);
        id_token_expect_t e = {"https://op.example", "edgegate", "nonce", 1700000000};
        id_token_identity_t who;
        if (id_token_check(t.claims, &e, &who) == ID_TOKEN_OK)
            CHECK(who.sub != NULL && strlen(who.sub) <= ID_TOKEN_SUB_MAX);
        jwt_clear(&t);
    } else {
        CHECK(why != NULL && t.claims == NULL);
    }
    free(token);
    return 0;
}
