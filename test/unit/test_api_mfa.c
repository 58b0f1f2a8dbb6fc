/*
 * The pure parts of MFA: TOTP codes against RFC 6238's SHA-1 test vectors and the ±1 step
 * window, base32 and the otpauth URI, the AES-256-GCM sealing of secrets (tampering, another
 * account, key rotation) and the QR PNG's shape. The HTTP side is test/integration/test_mfa.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/mfa_keys.c"
#include "api-server/qr_png.c"
#include "api-server/totp.c"

/* RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890". */
static const uint8_t RFC_SEED[20] = "12345678901234567890";

static const struct {
    int64_t time;
    const char *code8;
} rfc_vectors[] = {
    {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
    {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000LL, "65353130"},
};

static void test_rfc6238_sha1_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
        char code[9];
        assert_int_equal(totp_code(RFC_SEED, 20, rfc_vectors[i].time, 8, code), 0);
        assert_string_equal(code, rfc_vectors[i].code8);
        /* Six digits are the same truncation mod 10^6: the last six of the eight. */
        assert_int_equal(totp_code(RFC_SEED, 20, rfc_vectors[i].time, 6, code), 0);
        assert_string_equal(code, rfc_vectors[i].code8 + 2);
        assert_int_equal(totp_match(RFC_SEED, 20, code, 6, rfc_vectors[i].time),
                         rfc_vectors[i].time / 30);
    }
}

static void test_window_is_one_step_either_side(void **state)
{
    (void)state;
    const int64_t now = 1700000015; /* mid-step */
    char code[9];
    for (int d = -3; d <= 3; d++) {
        assert_int_equal(totp_code(RFC_SEED, 20, now + d * 30, 6, code), 0);
        int64_t step = totp_match(RFC_SEED, 20, code, 6, now);
        if (d >= -1 && d <= 1)
            assert_int_equal(step, totp_step(now) + d); /* the step the code belongs to */
        else
            assert_int_equal(step, -1);
    }
    assert_int_equal(totp_code(RFC_SEED, 20, now, 6, code), 0);
    code[5] = code[5] == '9' ? '0' : (char)(code[5] + 1);
    assert_int_equal(totp_match(RFC_SEED, 20, code, 6, now), -1);
}

static void test_malformed_codes_never_match(void **state)
{
    (void)state;
    const int64_t now = 1111111111;
    assert_int_equal(totp_match(RFC_SEED, 20, "050471", 6, now), now / 30);
    assert_int_equal(totp_match(RFC_SEED, 20, "50471", 5, now), -1);
    assert_int_equal(totp_match(RFC_SEED, 20, "0504710", 7, now), -1);
    assert_int_equal(totp_match(RFC_SEED, 20, "14050471", 8, now), -1); /* the 8-digit code */
    assert_int_equal(totp_match(RFC_SEED, 20, "05047a", 6, now), -1);
    assert_int_equal(totp_match(RFC_SEED, 20, " 50471", 6, now), -1);
    assert_int_equal(totp_match(RFC_SEED, 20, "050471", 6, now), now / 30);
    assert_false(totp_code_well_formed(NULL, 0));
    assert_false(totp_code_well_formed("05\0471", 6));
    assert_true(totp_code_well_formed("000000", 6));
}

static void test_secrets_are_random_160_bits_in_base32(void **state)
{
    (void)state;
    char b32[TOTP_BASE32_LEN + 1];
    totp_base32(RFC_SEED, b32);
    assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");

    uint8_t a[TOTP_SECRET_LEN], b[TOTP_SECRET_LEN];
    assert_int_equal(totp_secret_new(a), 0);
    assert_int_equal(totp_secret_new(b), 0);
    assert_memory_not_equal(a, b, TOTP_SECRET_LEN);
    totp_base32(a, b32);
    assert_int_equal(strlen(b32), TOTP_BASE32_LEN);
    /* liboath's own decoder reads back the same bytes. */
    char *decoded = NULL;
    size_t decoded_len = 0;
    assert_int_equal(oath_base32_decode(b32, strlen(b32), &decoded, &decoded_len), OATH_OK);
    assert_int_equal(decoded_len, TOTP_SECRET_LEN);
    assert_memory_equal(decoded, a, TOTP_SECRET_LEN);
    free(decoded);
}

static void test_otpauth_uri_encodes_issuer_and_account(void **state)
{
    (void)state;
    char uri[TOTP_URI_MAX];
    int n = totp_otpauth_uri("edgegate", "ann@example.org", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
                             uri, sizeof(uri));
    assert_string_equal(uri, "otpauth://totp/edgegate:ann%40example.org"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=edgegate"
                             "&algorithm=SHA1&digits=6&period=30");
    assert_int_equal(n, (int)strlen(uri));
    assert_int_equal(totp_otpauth_uri("a b", "x:y/z", "S", uri, sizeof(uri)) > 0, 1);
    assert_string_equal(uri, "otpauth://totp/a%20b:x%3Ay%2Fz?secret=S&issuer=a%20b"
                             "&algorithm=SHA1&digits=6&period=30");
    /* Every size short of the whole URI is refused, none overflows. */
    for (size_t size = 0; size <= (size_t)n; size++)
        assert_int_equal(totp_otpauth_uri("edgegate", "ann@example.org",
                                          "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", uri, size),
                         -1);
}

/* ---- sealing ---- */

#define KEY_A "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" /* "0123456789abcdef" x2 */
#define KEY_B "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=" /* "ABC...Zabcdef" */
#define KEY_C "enl4d3Z1dHNycXBvbm1sa2ppaGdmZWRjYmEwMTIzNDU="

static void test_seal_opens_only_for_the_same_account_and_untampered(void **state)
{
    (void)state;
    const char *why;
    mfa_keys_t *k = mfa_keys_new(KEY_A, NULL, &why);
    assert_non_null(k);
    assert_int_equal(strlen(mfa_keys_current_id(k)), MFA_KEY_ID_LEN);

    uint8_t sealed[MFA_SEALED_LEN(TOTP_SECRET_LEN)], again[sizeof(sealed)];
    uint8_t plain[TOTP_SECRET_LEN];
    long n = mfa_keys_seal(k, 42, RFC_SEED, 20, sealed, sizeof(sealed));
    assert_int_equal(n, MFA_SEALED_LEN(20));
    assert_int_equal(mfa_keys_seal(k, 42, RFC_SEED, 20, again, sizeof(again)), n);
    assert_memory_not_equal(sealed, again, sizeof(sealed)); /* a fresh nonce every time */
    assert_null(memmem(sealed, sizeof(sealed), RFC_SEED, 20)); /* not the plaintext */

    assert_int_equal(mfa_keys_open(k, mfa_keys_current_id(k), 42, sealed, (size_t)n, plain,
                                   sizeof(plain)),
                     20);
    assert_memory_equal(plain, RFC_SEED, 20);
    assert_int_equal(mfa_keys_open(k, mfa_keys_current_id(k), 43, sealed, (size_t)n, plain,
                                   sizeof(plain)),
                     MFA_OPEN_BAD); /* copied onto another account's row */
    for (long i = 0; i < n; i++) {
        sealed[i] ^= 0x01;
        assert_int_equal(mfa_keys_open(k, mfa_keys_current_id(k), 42, sealed, (size_t)n, plain,
                                       sizeof(plain)),
                         MFA_OPEN_BAD);
        sealed[i] ^= 0x01;
    }
    for (long len = 0; len < n; len++)
        assert_int_equal(mfa_keys_open(k, mfa_keys_current_id(k), 42, sealed, (size_t)len, plain,
                                       sizeof(plain)),
                         MFA_OPEN_BAD);
    assert_int_equal(mfa_keys_open(k, "0000000000000000", 42, sealed, (size_t)n, plain,
                                   sizeof(plain)),
                     MFA_OPEN_UNKNOWN_KEY);
    assert_int_equal(mfa_keys_open(k, NULL, 42, sealed, (size_t)n, plain, sizeof(plain)),
                     MFA_OPEN_UNKNOWN_KEY);
    assert_int_equal(mfa_keys_seal(k, 42, RFC_SEED, 20, sealed, sizeof(sealed) - 1), -1);
    mfa_keys_free(k);
}

static void test_rotation_opens_under_retired_keys_and_seals_under_the_current(void **state)
{
    (void)state;
    const char *why;
    mfa_keys_t *old = mfa_keys_new(KEY_A, "", &why);
    mfa_keys_t *rotated = mfa_keys_new(KEY_B, KEY_C "," KEY_A, &why);
    mfa_keys_t *forgot = mfa_keys_new(KEY_B, NULL, &why);
    assert_non_null(old);
    assert_non_null(rotated);
    assert_non_null(forgot);
    assert_int_equal(mfa_keys_retired_count(rotated), 2);
    assert_string_not_equal(mfa_keys_current_id(old), mfa_keys_current_id(rotated));
    assert_string_equal(mfa_keys_current_id(rotated), mfa_keys_current_id(forgot));

    uint8_t sealed[MFA_SEALED_LEN(20)], plain[20];
    assert_int_equal(mfa_keys_seal(old, 7, RFC_SEED, 20, sealed, sizeof(sealed)),
                     (long)sizeof(sealed));
    const char *old_id = mfa_keys_current_id(old);
    assert_int_equal(mfa_keys_open(rotated, old_id, 7, sealed, sizeof(sealed), plain, 20), 20);
    assert_memory_equal(plain, RFC_SEED, 20);
    assert_int_equal(mfa_keys_open(forgot, old_id, 7, sealed, sizeof(sealed), plain, 20),
                     MFA_OPEN_UNKNOWN_KEY);
    /* Sealed again by the rotated keyring: under the new key, which the old one cannot open. */
    assert_int_equal(mfa_keys_seal(rotated, 7, plain, 20, sealed, sizeof(sealed)),
                     (long)sizeof(sealed));
    assert_int_equal(mfa_keys_open(forgot, mfa_keys_current_id(rotated), 7, sealed,
                                   sizeof(sealed), plain, 20),
                     20);
    assert_int_equal(mfa_keys_open(old, mfa_keys_current_id(rotated), 7, sealed, sizeof(sealed),
                                   plain, 20),
                     MFA_OPEN_UNKNOWN_KEY);
    mfa_keys_free(old);
    mfa_keys_free(rotated);
    mfa_keys_free(forgot);
}

static void test_bad_key_configuration_is_refused(void **state)
{
    (void)state;
    const char *why = NULL;
    static const char *bad_current[] = {
        "", "not base64!", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZQ==" /* 31 bytes */,
        KEY_A "AAAA"};
    for (size_t i = 0; i < sizeof(bad_current) / sizeof(bad_current[0]); i++) {
        why = NULL;
        assert_null(mfa_keys_new(bad_current[i], NULL, &why));
        assert_non_null(why);
        if (bad_current[i][0] != '\0')
            assert_null(strstr(why, bad_current[i])); /* never echoes a key */
    }
    static const char *bad_lists[] = {KEY_A ",", "," KEY_A, KEY_C ",,", KEY_C " ", "short"};
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        assert_non_null(mfa_keys_list_error(bad_lists[i]));
        assert_null(mfa_keys_new(KEY_B, bad_lists[i], &why));
    }
    assert_null(mfa_keys_list_error(KEY_C));
    assert_null(mfa_keys_list_error(""));
    assert_null(mfa_keys_new(KEY_A, KEY_C "," KEY_A, &why));
    assert_non_null(strstr(why, "repeats the current"));
    assert_null(mfa_keys_new(KEY_B, KEY_C "," KEY_C, &why));
    assert_non_null(strstr(why, "twice"));
    char nine[9 * 45 + 1] = "";
    for (int i = 0; i < 9; i++) {
        strcat(nine, i ? "," : "");
        strcat(nine, KEY_C);
    }
    assert_non_null(mfa_keys_list_error(nine));
}

/* ---- QR PNG ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_qr_png_is_a_one_bit_square_png_with_a_quiet_zone(void **state)
{
    (void)state;
    const char *uri = "otpauth://totp/edgegate:ann?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                      "&issuer=edgegate&algorithm=SHA1&digits=6&period=30";
    buf_t png = BUF_INIT(0);
    assert_int_equal(qr_png(uri, &png), 0);
    const uint8_t *p = (const uint8_t *)png.data;
    assert_true(png.len > 33);
    assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(p + 12, "IHDR", 4);
    uint32_t width = be32(p + 16), height = be32(p + 20);
    assert_int_equal(width, height);
    QRcode *qr = QRcode_encodeString(uri, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    assert_int_equal(width, (uint32_t)(qr->width + 8) * QR_PNG_SCALE);
    QRcode_free(qr);
    assert_int_equal(p[24], 1); /* bit depth */
    assert_int_equal(p[25], 0); /* grayscale */
    assert_memory_equal(png.data + png.len - 8, "IEND", 4);
    buf_free(&png);

    /* Beyond what a QR code holds at level M (2331 bytes): refused, nothing leaks. */
    static char huge[4000];
    memset(huge, 'x', sizeof(huge) - 1);
    png = BUF_INIT(0);
    assert_int_equal(qr_png(huge, &png), -1);
    buf_free(&png);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6238_sha1_vectors),
        cmocka_unit_test(test_window_is_one_step_either_side),
        cmocka_unit_test(test_malformed_codes_never_match),
        cmocka_unit_test(test_secrets_are_random_160_bits_in_base32),
        cmocka_unit_test(test_otpauth_uri_encodes_issuer_and_account),
        cmocka_unit_test(test_seal_opens_only_for_the_same_account_and_untampered),
        cmocka_unit_test(test_rotation_opens_under_retired_keys_and_seals_under_the_current),
        cmocka_unit_test(test_bad_key_configuration_is_refused),
        cmocka_unit_test(test_qr_png_is_a_one_bit_square_png_with_a_quiet_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
