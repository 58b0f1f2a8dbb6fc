/*
 * The pure parts of api-server's OIDC sign-in: the pending-login cookie (its MAC bound to the
 * state, expiry, every altered byte refused), return_to (no open redirect), PKCE S256 and HTTP
 * Basic client credentials against the RFCs' own examples, form encoding, and the
 * configuration rules that join the EDGEGATE_OIDC_* variables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/oidc_config.c"
#include "api-server/oidc_form.c"
#include "api-server/oidc_pending.c"
#include "api-server/session_cookie.c"

static const char SECRET[] = "0123456789abcdef0123456789abcdef-test";
#define NOW 1800000000

static slice_t secret(void)
{
    return slice_from(SECRET);
}

static void new_pending(oidc_pending_t *p, const char *return_to)
{
    assert_int_equal(oidc_pending_new(p, return_to, NOW), 0);
}

/* "Cookie: <name>=<value>" for the Set-Cookie value made for p. */
static void cookie_header(const oidc_pending_t *p, slice_t key, char *out, size_t size)
{
    char set[OIDC_SET_COOKIE_MAX];
    oidc_pending_set_cookie(p, p->state, key, "/api/auth/callback", 1, set);
    size_t n = strcspn(set, ";");
    snprintf(out, size, "theme=dark; %.*s; other=1", (int)n, set);
}

static int read_back(const char *header, const char *state, int64_t now, oidc_pending_t *out)
{
    return oidc_pending_read(slice_from(header), secret(), slice_from(state), now, out);
}

static void test_new_sign_in_has_three_fresh_256_bit_values(void **state)
{
    (void)state;
    oidc_pending_t a, b;
    new_pending(&a, "/x");
    new_pending(&b, "/x");
    assert_int_equal(strlen(a.state), 43);
    assert_int_equal(strlen(a.nonce), 43);
    assert_int_equal(strlen(a.verifier), 43);
    assert_string_not_equal(a.state, a.nonce);
    assert_string_not_equal(a.nonce, a.verifier);
    assert_string_not_equal(a.state, b.state);
    assert_int_equal(a.expires, NOW + OIDC_PENDING_TTL_SECONDS);
}

static void test_pkce_challenge_is_rfc7636_s256(void **state)
{
    (void)state;
    oidc_pending_t p;
    new_pending(&p, "/");
    /* RFC 7636 Appendix B. */
    snprintf(p.verifier, sizeof(p.verifier), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    char challenge[CRYPTO_TOKEN_LEN + 1];
    oidc_pending_challenge(&p, challenge);
    assert_string_equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void test_cookie_round_trip_and_attributes(void **state)
{
    (void)state;
    oidc_pending_t p, got;
    new_pending(&p, "/devices?tab=2&x=%2F");
    char set[OIDC_SET_COOKIE_MAX], header[OIDC_SET_COOKIE_MAX + 64];
    oidc_pending_set_cookie(&p, p.state, secret(), "/api/auth/callback", 1, set);
    char name[80];
    snprintf(name, sizeof(name), "edgegate_oidc_%s=", p.state);
    assert_memory_equal(set, name, strlen(name));
    assert_non_null(strstr(set, "; Max-Age=600; Path=/api/auth/callback; HttpOnly; SameSite=Lax; "
                                "Secure"));
    oidc_pending_set_cookie(&p, p.state, secret(), "/cb", 0, set);
    assert_null(strstr(set, "Secure"));

    cookie_header(&p, secret(), header, sizeof(header));
    assert_int_equal(read_back(header, p.state, NOW + 599, &got), OIDC_PENDING_OK);
    assert_string_equal(got.state, p.state);
    assert_string_equal(got.nonce, p.nonce);
    assert_string_equal(got.verifier, p.verifier);
    assert_string_equal(got.return_to, "/devices?tab=2&x=%2F");
    assert_int_equal(got.expires, p.expires);
    assert_int_equal(read_back(header, p.state, NOW + 600, &got), OIDC_PENDING_EXPIRED);

    /* The deleting form. */
    oidc_pending_set_cookie(NULL, p.state, secret(), "/cb", 1, set);
    snprintf(name, sizeof(name), "edgegate_oidc_%s=; Max-Age=0; Path=/cb;", p.state);
    assert_memory_equal(set, name, strlen(name));
}

static void test_cookie_for_another_state_or_secret_is_refused(void **state)
{
    (void)state;
    oidc_pending_t p, q, got;
    new_pending(&p, "/");
    new_pending(&q, "/");
    char header[OIDC_SET_COOKIE_MAX + 64];
    cookie_header(&p, secret(), header, sizeof(header));
    assert_int_equal(read_back(header, q.state, NOW, &got), OIDC_PENDING_MISSING);
    assert_int_equal(read_back(header, "short", NOW, &got), OIDC_PENDING_MISSING);
    assert_int_equal(read_back("", p.state, NOW, &got), OIDC_PENDING_MISSING);
    /* p's value under q's name: the MAC covers the state. */
    char moved[OIDC_SET_COOKIE_MAX + 64];
    snprintf(moved, sizeof(moved), "%s", header);
    char *at = strstr(moved, p.state);
    memcpy(at, q.state, CRYPTO_TOKEN_LEN);
    assert_int_equal(read_back(moved, q.state, NOW, &got), OIDC_PENDING_BAD);
    /* Signed with another secret. */
    cookie_header(&p, slice_from("another-secret-of-thirty-two-bytes!!"), header, sizeof(header));
    assert_int_equal(read_back(header, p.state, NOW, &got), OIDC_PENDING_BAD);
}

static void test_every_altered_byte_of_the_value_is_refused(void **state)
{
    (void)state;
    oidc_pending_t p, got;
    new_pending(&p, "/somewhere");
    char header[OIDC_SET_COOKIE_MAX + 64];
    cookie_header(&p, secret(), header, sizeof(header));
    char *value = strchr(strstr(header, "edgegate_oidc_"), '=') + 1;
    size_t len = strcspn(value, ";");
    for (size_t i = 0; i < len; i++) {
        char keep = value[i];
        value[i] = keep == 'A' ? 'B' : 'A';
        if (read_back(header, p.state, NOW, &got) == OIDC_PENDING_OK)
            fail_msg("accepted with byte %zu of the value changed", i);
        value[i] = keep;
    }
    assert_int_equal(read_back(header, p.state, NOW, &got), OIDC_PENDING_OK);
    /* Cut short, or grown. */
    char cut[OIDC_SET_COOKIE_MAX + 64];
    snprintf(cut, sizeof(cut), "%.*s", (int)(value - header + len - 1), header);
    assert_int_equal(read_back(cut, p.state, NOW, &got), OIDC_PENDING_BAD);
}

static void test_return_to_is_a_local_path_only(void **state)
{
    (void)state;
    const char *good[] = {"/", "/devices", "/a/b?c=d&e=%2F%2F", "/x#frag", "/@evil.example"};
    const char *bad[] = {"", "devices", "//evil.example", "//", "/\\evil.example",
                         "https://evil.example/", "/a b", "/a\tb", "/caf\xc3\xa9", "\\\\x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(oidc_return_to_valid(slice_from(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (oidc_return_to_valid(slice_from(bad[i])))
            fail_msg("accepted return_to %s", bad[i]);
    char longest[OIDC_RETURN_TO_MAX + 2];
    memset(longest, 'x', sizeof(longest));
    longest[0] = '/';
    assert_true(oidc_return_to_valid((slice_t){longest, OIDC_RETURN_TO_MAX}));
    assert_false(oidc_return_to_valid((slice_t){longest, OIDC_RETURN_TO_MAX + 1}));
}

static void test_form_and_query_encoding(void **state)
{
    (void)state;
    buf_t b = BUF_INIT(256);
    assert_int_equal(oidc_form_add(&b, "scope", "openid email"), 0);
    assert_int_equal(oidc_form_add(&b, "redirect_uri", "https://e.example/cb?x=1&y=é~"), 0);
    assert_string_equal(b.data, "scope=openid%20email&redirect_uri=https%3A%2F%2Fe.example%2Fcb"
                                "%3Fx%3D1%26y%3D%C3%A9~");
    buf_free(&b);
    b = BUF_INIT(256);
    assert_int_equal(buf_append_str(&b, "https://op.example/auth"), 0);
    assert_int_equal(oidc_query_add(&b, "a", "1"), 0);
    assert_int_equal(oidc_query_add(&b, "b", "2"), 0);
    assert_string_equal(b.data, "https://op.example/auth?a=1&b=2");
    buf_free(&b);
    b = BUF_INIT(256);
    assert_int_equal(buf_append_str(&b, "https://op.example/auth?tenant=x"), 0);
    assert_int_equal(oidc_query_add(&b, "a", "1"), 0);
    assert_string_equal(b.data, "https://op.example/auth?tenant=x&a=1");
    buf_free(&b);
    /* Over the cap: refused, and the buffer as it was. */
    b = BUF_INIT(16);
    assert_int_equal(oidc_form_add(&b, "k", "v"), 0);
    assert_true(oidc_form_add(&b, "key", "a value far too long") < 0);
    assert_string_equal(b.data, "k=v");
    buf_free(&b);
}

static void test_basic_credentials_rfc6749_example(void **state)
{
    (void)state;
    buf_t b = BUF_INIT(256);
    /* RFC 6749 §2.3.1. */
    assert_int_equal(oidc_basic_credentials(&b, "s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw"), 0);
    assert_string_equal(b.data, "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3");
    buf_free(&b);
    /* Characters that must be form-encoded first: ':' in the id, '+' in the secret. */
    b = BUF_INIT(256);
    assert_int_equal(oidc_basic_credentials(&b, "a:b", "c+d"), 0);
    assert_string_equal(b.data, "Basic YSUzQWI6YyUyQmQ="); /* base64("a%3Ab:c%2Bd") */
    buf_free(&b);
}

static api_config_t config(const char *issuer)
{
    api_config_t c;
    memset(&c, 0, sizeof(c));
    c.public_origin = "https://edge.example.com";
    c.oidc_issuer = issuer;
    c.oidc_client_id = "edgegate";
    c.oidc_scopes = OIDC_DEFAULT_SCOPES;
    return c;
}

static int finish(api_config_t *c)
{
    FILE *devnull = fopen("/dev/null", "w");
    int rc = oidc_config_finish(c, devnull);
    fclose(devnull);
    return rc;
}

static void test_configuration_rules(void **state)
{
    (void)state;
    api_config_t c = config(NULL);
    assert_int_equal(finish(&c), 0); /* off: nothing else is looked at */
    assert_null(c.oidc_redirect_uri);

    c = config("https://op.example");
    assert_int_equal(finish(&c), 0);
    assert_string_equal(c.oidc_redirect_uri, "https://edge.example.com/api/auth/callback");
    assert_string_equal(c.oidc_auth_method, "none");
    assert_string_equal(oidc_callback_path(&c), "/api/auth/callback");

    c = config("https://op.example");
    c.oidc_client_secret = "s";
    assert_int_equal(finish(&c), 0);
    assert_int_equal(oidc_auth_method(&c), OIDC_AUTH_CLIENT_SECRET_BASIC);

    c = config("http://op.example");
    assert_int_equal(finish(&c), -1);
    c.dev = 1;
    assert_int_equal(finish(&c), 0);

    c = config("https://op.example");
    c.oidc_client_id = NULL;
    assert_int_equal(finish(&c), -1);
    c = config("https://op.example");
    c.oidc_auth_method = "client_secret_post";
    assert_int_equal(finish(&c), -1);
    c = config("https://op.example");
    c.oidc_auth_method = "none";
    c.oidc_client_secret = "s";
    assert_int_equal(finish(&c), -1);
    c = config("https://op.example");
    c.oidc_redirect_uri = "https://edge.example.com.evil.example/cb";
    assert_int_equal(finish(&c), -1);
    c.oidc_redirect_uri = "https://edge.example.com/custom/cb";
    assert_int_equal(finish(&c), 0);
    assert_string_equal(oidc_callback_path(&c), "/custom/cb");

    assert_null(oidc_check_scopes("openid"));
    assert_null(oidc_check_scopes("email openid profile"));
    assert_non_null(oidc_check_scopes("openidx email"));
    assert_non_null(oidc_check_scopes("email xopenid"));
    assert_non_null(oidc_check_scopes("openid \"x\""));
    assert_null(oidc_check_auth_method("client_secret_basic"));
    assert_non_null(oidc_check_auth_method("private_key_jwt"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_sign_in_has_three_fresh_256_bit_values),
        cmocka_unit_test(test_pkce_challenge_is_rfc7636_s256),
        cmocka_unit_test(test_cookie_round_trip_and_attributes),
        cmocka_unit_test(test_cookie_for_another_state_or_secret_is_refused),
        cmocka_unit_test(test_every_altered_byte_of_the_value_is_refused),
        cmocka_unit_test(test_return_to_is_a_local_path_only),
        cmocka_unit_test(test_form_and_query_encoding),
        cmocka_unit_test(test_basic_credentials_rfc6749_example),
        cmocka_unit_test(test_configuration_rules),
    };
    return cmocka_run_group_tests_name("api_oidc", tests, NULL, NULL);
}
