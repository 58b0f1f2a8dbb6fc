/*
 * jwt, jwks, id_token: JWS parsing and signature checks against keys and tokens that openssl
 * made (test/unit/jwt_fixtures.py runs at set-up into a temporary directory), so RS256 and
 * ES256 are checked against an implementation that is not ours; then the strict-parsing
 * refusals, the key-set rules, and the ID token claim rules with an explicit clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/crypto.h"
#include "common/id_token.h"
#include "common/jwks.h"
#include "common/jwt.h"

static char fixtures[] = "/tmp/edgegate-jwt-XXXXXX";
static char *jwks_text;
static size_t jwks_len;

static char *slurp(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(JWKS_MAX_BYTES);
    size_t n = buf ? fread(buf, 1, JWKS_MAX_BYTES - 1, f) : 0;
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(fixtures) == NULL)
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 test/unit/jwt_fixtures.py %s", fixtures);
    if (system(cmd) != 0)
        return -1;
    jwks_text = slurp("jwks.json", &jwks_len);
    return jwks_text ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(jwks_text);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fixtures);
    return system(cmd) == 0 ? 0 : -1;
}

static jwks_t *fixture_set(void)
{
    const char *why = NULL;
    jwks_t *set = jwks_parse(jwks_text, jwks_len, &why);
    assert_non_null(set);
    return set;
}

/* Parses and verifies a token text against the fixture set: a jwt_result. */
static int check_text(const char *token, size_t len)
{
    jwt_t t;
    const char *why = NULL;
    int rc = jwt_parse(token, len, &t, &why);
    if (rc != JWT_OK) {
        assert_non_null(why);
        return rc;
    }
    jwks_t *set = fixture_set();
    rc = jwt_verify(&t, set);
    jwks_free(set);
    jwt_clear(&t);
    return rc;
}

static int check_file(const char *name)
{
    size_t len;
    char *token = slurp(name, &len);
    assert_non_null(token);
    int rc = check_text(token, len);
    free(token);
    return rc;
}

/* ---- key sets ---- */

static void test_set_keeps_only_usable_signing_keys(void **state)
{
    (void)state;
    jwks_t *set = fixture_set();
    /* Of seven: rsa1 and ec1. Skipped: use=enc, 1024-bit RSA, P-384, alg PS256, Ed25519. */
    assert_int_equal(jwks_count(set), 2);
    assert_non_null(jwks_find(set, "rsa1", 4, JOSE_ALG_RS256));
    assert_non_null(jwks_find(set, "ec1", 3, JOSE_ALG_ES256));
    assert_null(jwks_find(set, "ec1", 3, JOSE_ALG_RS256));
    assert_null(jwks_find(set, "rsa1", 3, JOSE_ALG_RS256)); /* a prefix is another kid */
    assert_null(jwks_find(set, "enc", 3, JOSE_ALG_RS256));
    assert_null(jwks_find(set, "weak", 4, JOSE_ALG_RS256));
    assert_null(jwks_find(set, "ps", 2, JOSE_ALG_RS256));
    assert_ptr_equal(jwks_find(set, NULL, 0, JOSE_ALG_RS256),
                     jwks_find(set, "rsa1", 4, JOSE_ALG_RS256));
    assert_null(jwks_find(set, "rsa1", 4, JOSE_ALG_UNSUPPORTED));
    jwks_free(set);
}

static jwks_t *parse_text(const char *text)
{
    const char *why = NULL;
    jwks_t *set = jwks_parse(text, strlen(text), &why);
    if (set == NULL)
        assert_non_null(why);
    return set;
}

static void test_set_documents_that_are_refused(void **state)
{
    (void)state;
    assert_null(parse_text(""));
    assert_null(parse_text("[]"));
    assert_null(parse_text("{\"keys\":{}}"));
    assert_null(parse_text("{\"keys\":[],\"keys\":[]}"));
    /* More keys than JWKS_MAX_KEYS. */
    char many[8 * (JWKS_MAX_KEYS + 2) + 16] = "{\"keys\":[";
    for (int i = 0; i <= JWKS_MAX_KEYS; i++)
        strcat(many, i ? ",{}" : "{}");
    strcat(many, "]}");
    assert_null(parse_text(many));
    jwks_t *empty = parse_text("{\"keys\":[]}");
    assert_non_null(empty);
    assert_int_equal(jwks_count(empty), 0);
    assert_null(jwks_find(empty, NULL, 0, JOSE_ALG_RS256));
    jwks_free(empty);
}

/* The fixture's ec1 key with one member replaced. */
static size_t ec_with(const char *member, const char *value)
{
    json_error_t err;
    json_t *doc = json_loads(jwks_text, 0, &err);
    json_t *ec = json_deep_copy(json_array_get(json_object_get(doc, "keys"), 2));
    assert_string_equal(json_string_value(json_object_get(ec, "kid")), "ec1");
    json_object_set_new(ec, member, json_string(value));
    json_t *one = json_pack("{s:[o]}", "keys", ec);
    char *text = json_dumps(one, 0);
    json_decref(one);
    json_decref(doc);
    const char *why = NULL;
    jwks_t *set = jwks_parse(text, strlen(text), &why);
    free(text);
    assert_non_null(set);
    size_t n = jwks_count(set);
    jwks_free(set);
    return n;
}

static void test_malformed_ec_keys_are_skipped(void **state)
{
    (void)state;
    assert_int_equal(ec_with("kid", "ec1"), 1); /* the unchanged key is kept */
    /* A coordinate one byte short (RFC 7518 wants the full 32 bytes). */
    assert_int_equal(ec_with("x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0);
    /* A point that is not on the curve: x = y = 1. */
    assert_int_equal(ec_with("y", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"), 0);
    assert_int_equal(ec_with("crv", "P-521"), 0);
    assert_int_equal(ec_with("use", "enc"), 0);
    assert_int_equal(ec_with("alg", "ES384"), 0);
    assert_int_equal(ec_with("x", "not base64url!"), 0);
}

/* ---- signatures ---- */

static void test_rs256_and_es256_tokens_from_openssl_verify(void **state)
{
    (void)state;
    assert_int_equal(check_file("rs256.jwt"), JWT_OK);
    assert_int_equal(check_file("es256.jwt"), JWT_OK);
    /* Without a kid, the only RS256 key of the set is the one. */
    assert_int_equal(check_file("rs256_nokid.jwt"), JWT_OK);
}

static void test_parsed_token_carries_alg_kid_and_claims(void **state)
{
    (void)state;
    size_t len;
    char *token = slurp("es256.jwt", &len);
    jwt_t t;
    const char *why = NULL;
    assert_int_equal(jwt_parse(token, len, &t, &why), JWT_OK);
    assert_int_equal(t.alg, JOSE_ALG_ES256);
    assert_true(t.has_kid);
    assert_string_equal(t.kid, "ec1");
    assert_int_equal(t.sig_len, 64);
    assert_string_equal(json_string_value(json_object_get(t.claims, "sub")), "user-42");
    jwt_clear(&t);
    assert_null(t.claims);
    free(token);
}

static void test_wrong_keys_and_wrong_forms_are_refused(void **state)
{
    (void)state;
    assert_int_equal(check_file("rs256_other_key.jwt"), JWT_BAD_SIGNATURE);
    assert_int_equal(check_file("rs256_unknown_kid.jwt"), JWT_UNKNOWN_KEY);
    /* openssl's DER signature sent as is: not the 64-byte r || s of JOSE. */
    assert_int_equal(check_file("es256_der.jwt"), JWT_BAD_SIGNATURE);
    /* An EC key named under RS256: no RS256 key has that kid. */
    assert_int_equal(check_file("es256_as_rs256.jwt"), JWT_UNKNOWN_KEY);
    /* Signed by the 1024-bit key that the set skips. */
    assert_int_equal(check_file("weak_rsa.jwt"), JWT_UNKNOWN_KEY);
}

static void test_alg_none_and_hmac_are_refused_before_any_key_is_used(void **state)
{
    (void)state;
    assert_int_equal(check_file("none.jwt"), JWT_BAD_ALG);
    /* The classic key confusion: HS256 with the RSA public key as the secret. */
    assert_int_equal(check_file("hs256_pubkey.jwt"), JWT_BAD_ALG);
    /* "none" with a signature attached is still "none". */
    size_t len;
    char *token = slurp("none.jwt", &len);
    char with_sig[JWT_MAX_LEN];
    snprintf(with_sig, sizeof(with_sig), "%.*sAAAA", (int)len, token);
    assert_int_equal(check_text(with_sig, strlen(with_sig)), JWT_BAD_ALG);
    free(token);
    assert_int_equal(check_file("crit.jwt"), JWT_MALFORMED);
}

static void test_every_changed_character_breaks_the_token(void **state)
{
    (void)state;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *files[] = {"rs256.jwt", "es256.jwt"};
    for (size_t f = 0; f < 2; f++) {
        size_t len;
        char *token = slurp(files[f], &len);
        for (size_t i = 0; i < len; i++) {
            if (token[i] == '.')
                continue;
            char keep = token[i];
            token[i] = alphabet[(strchr(alphabet, keep) - alphabet + 1 + i % 63) % 64];
            if (check_text(token, len) == JWT_OK)
                fail_msg("%s still verifies with position %zu changed", files[f], i);
            token[i] = keep;
        }
        assert_int_equal(check_text(token, len), JWT_OK);
        free(token);
    }
}

static void test_structure_and_size_limits(void **state)
{
    (void)state;
    size_t len;
    char *token = slurp("rs256.jwt", &len);
    char buf[JWT_MAX_LEN + 64];
    /* Two segments; four segments; padding; a space; a trailing dot. */
    const char *dot2 = strrchr(token, '.');
    assert_int_equal(check_text(token, (size_t)(dot2 - token)), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.AAAA", token);
    assert_int_equal(check_text(buf, strlen(buf)), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s==", token);
    assert_int_equal(check_text(buf, strlen(buf)), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), " %s", token);
    assert_int_equal(check_text(buf, strlen(buf)), JWT_MALFORMED);
    assert_int_equal(check_text(token, len - 1), JWT_MALFORMED); /* 341 characters: no length */
    /* A well-encoded signature one byte short of the modulus. */
    uint8_t sig[JWT_MAX_SIG];
    long sig_len = jose_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig));
    assert_int_equal(sig_len, 256);
    size_t head = (size_t)(dot2 + 1 - token);
    memcpy(buf, token, head);
    size_t n = head + crypto_b64url_encode(sig, (size_t)sig_len - 1, buf + head);
    assert_int_equal(check_text(buf, n), JWT_BAD_SIGNATURE);
    /* A NUL inside the token (the length says where it ends, not a terminator). */
    memcpy(buf, token, len);
    buf[10] = '\0';
    assert_int_equal(check_text(buf, len), JWT_MALFORMED);
    /* Over JWT_MAX_LEN, whatever it holds. */
    memset(buf, 'A', sizeof(buf));
    assert_int_equal(check_text(buf, JWT_MAX_LEN + 1), JWT_MALFORMED);
    free(token);
}

/* A token with the given header and payload JSON and a dummy signature. */
static int with_parts(const char *header, const char *payload)
{
    char h[4096], p[4096], token[8300];
    crypto_b64url_encode(header, strlen(header), h);
    crypto_b64url_encode(payload, strlen(payload), p);
    snprintf(token, sizeof(token), "%s.%s.AAAA", h, p);
    return check_text(token, strlen(token));
}

static void test_headers_and_payloads_that_are_refused(void **state)
{
    (void)state;
    /* The dummy signature fails, but only after the parts were accepted. */
    assert_int_equal(with_parts("{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "{}"), JWT_BAD_SIGNATURE);
    assert_int_equal(with_parts("{\"alg\":\"RS256\"}", "[]"), JWT_MALFORMED);
    assert_int_equal(with_parts("{\"alg\":\"RS256\"}", "not json"), JWT_MALFORMED);
    assert_int_equal(with_parts("{\"alg\":\"RS256\"}", "{\"a\":1,\"a\":2}"), JWT_MALFORMED);
    assert_int_equal(with_parts("{\"alg\":\"RS256\",\"alg\":\"none\"}", "{}"), JWT_MALFORMED);
    assert_int_equal(with_parts("[\"RS256\"]", "{}"), JWT_MALFORMED);
    assert_int_equal(with_parts("{}", "{}"), JWT_MALFORMED);
    assert_int_equal(with_parts("{\"alg\":1}", "{}"), JWT_MALFORMED);
    assert_int_equal(with_parts("{\"alg\":\"rs256\"}", "{}"), JWT_BAD_ALG);
    assert_int_equal(with_parts("{\"alg\":\"RS512\"}", "{}"), JWT_BAD_ALG);
    assert_int_equal(with_parts("{\"alg\":\"PS256\"}", "{}"), JWT_BAD_ALG);
    assert_int_equal(with_parts("{\"alg\":\"HS512\"}", "{}"), JWT_BAD_ALG);
    assert_int_equal(with_parts("{\"alg\":\"NONE\"}", "{}"), JWT_BAD_ALG);
    assert_int_equal(with_parts("{\"alg\":\"RS256\",\"kid\":7}", "{}"), JWT_MALFORMED);
    char header[512];
    snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"kid\":\"%0*d\"}", JWKS_KID_MAX + 1,
             0);
    assert_int_equal(with_parts(header, "{}"), JWT_MALFORMED);
    /* A key-carrying header does not bring its own key: the set decides. */
    assert_int_equal(
        with_parts("{\"alg\":\"RS256\",\"kid\":\"x\",\"jku\":\"https://evil.example/k\"}", "{}"),
        JWT_UNKNOWN_KEY);
}

/* ---- ID token claims ---- */

#define NOW 1700000100

static json_t *good_claims(void)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "iss", "https://op.example", "sub",
                     "user-42", "aud", "edgegate", "exp", (json_int_t)NOW + 300, "iat",
                     (json_int_t)NOW - 2, "nonce", "n-0S6_WzA2Mj", "email", "ada@example.org",
                     "name", "Ada Lovelace");
}

static int claims_result(json_t *claims, int64_t now)
{
    id_token_expect_t e = {"https://op.example", "edgegate", "n-0S6_WzA2Mj", now};
    id_token_identity_t who;
    int rc = id_token_check(claims, &e, &who);
    json_decref(claims);
    return rc;
}

static json_t *with(const char *name, json_t *value)
{
    json_t *c = good_claims();
    if (value == NULL)
        json_object_del(c, name);
    else
        json_object_set_new(c, name, value);
    return c;
}

static void test_good_claims_give_the_identity(void **state)
{
    (void)state;
    json_t *c = good_claims();
    id_token_expect_t e = {"https://op.example", "edgegate", "n-0S6_WzA2Mj", NOW};
    id_token_identity_t who;
    assert_int_equal(id_token_check(c, &e, &who), ID_TOKEN_OK);
    assert_string_equal(who.sub, "user-42");
    assert_string_equal(who.email, "ada@example.org");
    assert_string_equal(who.name, "Ada Lovelace");
    json_decref(c);

    /* name falls back to preferred_username; an unusable email is left out, not fatal. */
    c = with("name", NULL);
    json_object_set_new(c, "preferred_username", json_string("ada"));
    json_object_set_new(c, "email", json_string("line\nbreak@example.org"));
    assert_int_equal(id_token_check(c, &e, &who), ID_TOKEN_OK);
    assert_string_equal(who.name, "ada");
    assert_null(who.email);
    json_decref(c);
}

static void test_issuer_audience_and_azp(void **state)
{
    (void)state;
    assert_int_equal(claims_result(with("iss", json_string("https://op.example/")), NOW),
                     ID_TOKEN_BAD_ISSUER);
    assert_int_equal(claims_result(with("iss", NULL), NOW), ID_TOKEN_BAD_ISSUER);
    assert_int_equal(claims_result(with("aud", json_string("other")), NOW),
                     ID_TOKEN_BAD_AUDIENCE);
    assert_int_equal(claims_result(with("aud", json_string("edgegate2")), NOW),
                     ID_TOKEN_BAD_AUDIENCE);
    assert_int_equal(claims_result(with("aud", NULL), NOW), ID_TOKEN_BAD_AUDIENCE);
    assert_int_equal(claims_result(with("aud", json_pack("[s]", "edgegate")), NOW), ID_TOKEN_OK);
    assert_int_equal(claims_result(with("aud", json_pack("[]")), NOW), ID_TOKEN_BAD_AUDIENCE);
    /* Several audiences need azp naming us. */
    assert_int_equal(claims_result(with("aud", json_pack("[s,s]", "edgegate", "other")), NOW),
                     ID_TOKEN_BAD_AUDIENCE);
    json_t *c = with("aud", json_pack("[s,s]", "other", "edgegate"));
    json_object_set_new(c, "azp", json_string("edgegate"));
    assert_int_equal(claims_result(c, NOW), ID_TOKEN_OK);
    assert_int_equal(claims_result(with("azp", json_string("other")), NOW),
                     ID_TOKEN_BAD_AUDIENCE);
    assert_int_equal(claims_result(with("aud", json_pack("[s,i]", "edgegate", 1)), NOW),
                     ID_TOKEN_BAD_AUDIENCE);
}

static void test_times_with_skew(void **state)
{
    (void)state;
    int skew = ID_TOKEN_SKEW_SECONDS;
    assert_int_equal(claims_result(with("exp", json_integer(NOW - skew)), NOW), ID_TOKEN_EXPIRED);
    assert_int_equal(claims_result(with("exp", json_integer(NOW - skew + 1)), NOW), ID_TOKEN_OK);
    assert_int_equal(claims_result(with("exp", NULL), NOW), ID_TOKEN_EXPIRED);
    assert_int_equal(claims_result(with("exp", json_string("2000000000")), NOW),
                     ID_TOKEN_EXPIRED);
    assert_int_equal(claims_result(with("exp", json_real(NOW + 10.5)), NOW), ID_TOKEN_OK);
    assert_int_equal(claims_result(with("iat", json_integer(NOW + skew + 1)), NOW),
                     ID_TOKEN_NOT_YET_VALID);
    assert_int_equal(claims_result(with("iat", json_integer(NOW + skew)), NOW), ID_TOKEN_OK);
    assert_int_equal(claims_result(with("iat", NULL), NOW), ID_TOKEN_NOT_YET_VALID);
    assert_int_equal(
        claims_result(with("iat", json_integer(NOW - ID_TOKEN_MAX_AGE_SECONDS - skew - 1)), NOW),
        ID_TOKEN_NOT_YET_VALID);
    assert_int_equal(claims_result(with("nbf", json_integer(NOW + skew + 1)), NOW),
                     ID_TOKEN_NOT_YET_VALID);
    assert_int_equal(claims_result(with("nbf", json_integer(NOW)), NOW), ID_TOKEN_OK);
    assert_int_equal(claims_result(with("nbf", json_true()), NOW), ID_TOKEN_NOT_YET_VALID);
}

static void test_nonce_and_subject(void **state)
{
    (void)state;
    assert_int_equal(claims_result(with("nonce", json_string("n-0S6_WzA2Mk")), NOW),
                     ID_TOKEN_BAD_NONCE);
    assert_int_equal(claims_result(with("nonce", json_string("n-0S6_WzA2M")), NOW),
                     ID_TOKEN_BAD_NONCE);
    assert_int_equal(claims_result(with("nonce", NULL), NOW), ID_TOKEN_BAD_NONCE);
    assert_int_equal(claims_result(with("sub", NULL), NOW), ID_TOKEN_BAD_SUBJECT);
    assert_int_equal(claims_result(with("sub", json_string("")), NOW), ID_TOKEN_BAD_SUBJECT);
    assert_int_equal(claims_result(with("sub", json_integer(42)), NOW), ID_TOKEN_BAD_SUBJECT);
    char long_sub[ID_TOKEN_SUB_MAX + 2];
    memset(long_sub, 's', sizeof(long_sub) - 1);
    long_sub[sizeof(long_sub) - 1] = '\0';
    assert_int_equal(claims_result(with("sub", json_string(long_sub)), NOW),
                     ID_TOKEN_BAD_SUBJECT);
    long_sub[ID_TOKEN_SUB_MAX] = '\0';
    assert_int_equal(claims_result(with("sub", json_string(long_sub)), NOW), ID_TOKEN_OK);
    assert_string_equal(id_token_result_name(ID_TOKEN_BAD_NONCE), "bad_nonce");
}

/* The fixture token's claims are what jwt_fixtures.py wrote, and pass the claim checks. */
static void test_fixture_token_claims_pass_the_id_token_rules(void **state)
{
    (void)state;
    size_t len;
    char *token = slurp("rs256.jwt", &len);
    jwt_t t;
    const char *why = NULL;
    assert_int_equal(jwt_parse(token, len, &t, &why), JWT_OK);
    id_token_expect_t e = {"https://op.example", "edgegate", "n-0S6_WzA2Mj", 1700000030};
    id_token_identity_t who;
    assert_int_equal(id_token_check(t.claims, &e, &who), ID_TOKEN_OK);
    assert_string_equal(who.name, "Ada Lovelace");
    jwt_clear(&t);
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_keeps_only_usable_signing_keys),
        cmocka_unit_test(test_set_documents_that_are_refused),
        cmocka_unit_test(test_malformed_ec_keys_are_skipped),
        cmocka_unit_test(test_rs256_and_es256_tokens_from_openssl_verify),
        cmocka_unit_test(test_parsed_token_carries_alg_kid_and_claims),
        cmocka_unit_test(test_wrong_keys_and_wrong_forms_are_refused),
        cmocka_unit_test(test_alg_none_and_hmac_are_refused_before_any_key_is_used),
        cmocka_unit_test(test_every_changed_character_breaks_the_token),
        cmocka_unit_test(test_structure_and_size_limits),
        cmocka_unit_test(test_headers_and_payloads_that_are_refused),
        cmocka_unit_test(test_good_claims_give_the_identity),
        cmocka_unit_test(test_issuer_audience_and_azp),
        cmocka_unit_test(test_times_with_skew),
        cmocka_unit_test(test_nonce_and_subject),
        cmocka_unit_test(test_fixture_token_claims_pass_the_id_token_rules),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
