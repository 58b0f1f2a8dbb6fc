/*
 * session_cookie: the wire forms of a session id — the signed cookie, the bearer token, and
 * which of them a request carries. Byte-level cases an attacker would try: a flipped bit in
 * the id or the signature, a cookie signed with another secret, truncation, padding, cookie
 * names that merely end in ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/session_cookie.c"

static const char SECRET[] = "0123456789abcdef0123456789abcdef-test";
static const char ID[] = "G0pp4tXyMp-AjVWrBiaM8ELoqcdl5sZDpgvpQ3e30Fc";

static slice_t secret(void)
{
    return slice_from(SECRET);
}

static void signed_cookie(char out[SESSION_COOKIE_VALUE_LEN + 1])
{
    session_cookie_sign(secret(), ID, out);
}

static int verify(slice_t value)
{
    char id[SESSION_ID_LEN + 1];
    return session_cookie_verify(secret(), value, id);
}

static slice_t find(const char *header)
{
    return session_cookie_find(slice_from(header), SESSION_COOKIE_NAME);
}

/* NULL for an absent header. */
static enum session_cred cred(const char *bearer, const char *cookie_header,
                              char id[SESSION_ID_LEN + 1])
{
    return session_credential(slice_from(bearer), slice_from(cookie_header), secret(), id);
}

static void test_signed_cookie_verifies_and_yields_the_id(void **state)
{
    (void)state;
    char value[SESSION_COOKIE_VALUE_LEN + 1], id[SESSION_ID_LEN + 1];
    signed_cookie(value);
    assert_int_equal(strlen(value), SESSION_COOKIE_VALUE_LEN);
    assert_memory_equal(value, ID, SESSION_ID_LEN);
    assert_int_equal(value[SESSION_ID_LEN], '.');
    assert_int_equal(session_cookie_verify(secret(), slice_from(value), id), 0);
    assert_string_equal(id, ID);
}

static void test_any_flipped_character_is_refused(void **state)
{
    (void)state;
    char value[SESSION_COOKIE_VALUE_LEN + 1], id[SESSION_ID_LEN + 1];
    signed_cookie(value);
    for (size_t i = 0; i < SESSION_COOKIE_VALUE_LEN; i++) {
        char tampered[SESSION_COOKIE_VALUE_LEN + 1];
        memcpy(tampered, value, sizeof(tampered));
        tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
        assert_int_equal(session_cookie_verify(secret(), slice_from(tampered), id), -1);
    }
}

static void test_cookie_signed_with_another_secret_is_refused(void **state)
{
    (void)state;
    char value[SESSION_COOKIE_VALUE_LEN + 1], id[SESSION_ID_LEN + 1];
    session_cookie_sign(slice_from("another-secret-of-at-least-32-bytes!!"), ID, value);
    assert_int_equal(session_cookie_verify(secret(), slice_from(value), id), -1);
}

static void test_malformed_cookie_values_are_refused(void **state)
{
    (void)state;
    char value[SESSION_COOKIE_VALUE_LEN + 1];
    signed_cookie(value);
    /* truncated, extended, padded, dot moved, bare id, empty */
    assert_int_equal(verify((slice_t){value, SESSION_COOKIE_VALUE_LEN - 1}), -1);
    char longer[SESSION_COOKIE_VALUE_LEN + 2];
    snprintf(longer, sizeof(longer), "%s=", value);
    assert_int_equal(verify(slice_from(longer)), -1);
    char moved[SESSION_COOKIE_VALUE_LEN + 1];
    memcpy(moved, value, sizeof(moved));
    moved[SESSION_ID_LEN] = moved[SESSION_ID_LEN - 1];
    moved[SESSION_ID_LEN - 1] = '.';
    assert_int_equal(verify(slice_from(moved)), -1);
    assert_int_equal(verify(slice_from(ID)), -1);
    assert_int_equal(verify(slice_from("")), -1);
}

static void test_session_id_format(void **state)
{
    (void)state;
    assert_true(session_id_valid(slice_from(ID)));
    assert_false(session_id_valid((slice_t){ID, SESSION_ID_LEN - 1}));
    char bad[SESSION_ID_LEN + 2];
    snprintf(bad, sizeof(bad), "%sA", ID);
    assert_false(session_id_valid(slice_from(bad)));
    const char *alphabet_outsiders = "+/=. \"%";
    for (const char *c = alphabet_outsiders; *c; c++) {
        memcpy(bad, ID, sizeof(ID));
        bad[10] = *c;
        assert_false(session_id_valid(slice_from(bad)));
    }
    assert_false(session_id_valid(SLICE_NULL));
}

static void test_cookie_is_found_among_others_by_exact_name(void **state)
{
    (void)state;
    assert_true(slice_eq(find("a=1; edgegate_session=abc; b=2"), "abc"));
    assert_true(slice_eq(find("xedgegate_session=evil;edgegate_session = good "), "good"));
    assert_null(find("edgegate_sessionx=evil").ptr);
    assert_true(slice_eq(find("edgegate_session=first; edgegate_session=second"), "first"));
    assert_true(slice_eq(find("edgegate_session=a=b"), "a=b"));
    assert_null(find(NULL).ptr);
    assert_null(find(";;;").ptr);
}

static void test_credential_prefers_bearer_and_never_falls_back(void **state)
{
    (void)state;
    char value[SESSION_COOKIE_VALUE_LEN + 1], header[200], id[SESSION_ID_LEN + 1];
    signed_cookie(value);
    snprintf(header, sizeof(header), "other=1; edgegate_session=%s", value);

    assert_int_equal(cred(NULL, NULL, id), SESSION_CRED_NONE);
    assert_int_equal(cred(NULL, "a=b", id), SESSION_CRED_NONE);

    assert_int_equal(cred(NULL, header, id), SESSION_CRED_COOKIE);
    assert_string_equal(id, ID);

    const char *other = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ";
    assert_int_equal(cred(other, header, id), SESSION_CRED_BEARER);
    assert_string_equal(id, other);

    /* A garbage bearer token is refused even though the cookie is good. */
    assert_int_equal(cred("garbage", header, id), SESSION_CRED_BAD);
    /* The signed cookie value is not a bearer token. */
    assert_int_equal(cred(value, NULL, id), SESSION_CRED_BAD);
    /* A bare id in the cookie (no signature) is refused before any lookup. */
    snprintf(header, sizeof(header), "edgegate_session=%s", ID);
    assert_int_equal(cred(NULL, header, id), SESSION_CRED_BAD);
}

static void test_set_cookie_attributes(void **state)
{
    (void)state;
    char out[SESSION_SET_COOKIE_MAX], value[SESSION_COOKIE_VALUE_LEN + 1];
    signed_cookie(value);
    session_set_cookie(out, value, 1, 604800);
    char expect[SESSION_SET_COOKIE_MAX];
    snprintf(expect, sizeof(expect),
             "edgegate_session=%s; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax; Secure", value);
    assert_string_equal(out, expect);
    session_set_cookie(out, value, 0, 604800);
    assert_null(strstr(out, "Secure"));
    assert_non_null(strstr(out, "HttpOnly"));
    session_set_cookie(out, NULL, 1, 604800);
    assert_string_equal(out,
                        "edgegate_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_cookie_verifies_and_yields_the_id),
        cmocka_unit_test(test_any_flipped_character_is_refused),
        cmocka_unit_test(test_cookie_signed_with_another_secret_is_refused),
        cmocka_unit_test(test_malformed_cookie_values_are_refused),
        cmocka_unit_test(test_session_id_format),
        cmocka_unit_test(test_cookie_is_found_among_others_by_exact_name),
        cmocka_unit_test(test_credential_prefers_bearer_and_never_falls_back),
        cmocka_unit_test(test_set_cookie_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
