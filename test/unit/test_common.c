/*
 * The small shared modules every daemon leans on: crypto (published test vectors), buf (the cap
 * that keeps a peer from growing one without bound), slice (header-value helpers), metrics (the
 * Prometheus text a scraper parses), config (what a misconfigured deployment is told, and what
 * it is never told) and log (what a hostile value can do to a log line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/slice.h"

/* ---- crypto ---- */

static void test_sha256_hex_matches_fips_180_vectors(void **state)
{
    char hex[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    crypto_sha256_hex(two_blocks, sizeof(two_blocks) - 1, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void assert_hmac_hex(const void *key, size_t key_len, const char *data, const char *want)
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    crypto_hmac_sha256(key, key_len, data, strlen(data), mac);
    crypto_hex(mac, sizeof(mac), hex);
    assert_string_equal(hex, want);
}

static void test_hmac_sha256_matches_rfc_4231(void **state)
{
    uint8_t key[131];
    memset(key, 0x0b, 20);
    assert_hmac_hex(key, 20, "Hi There",
                    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_hmac_hex("Jefe", 4, "what do ya want for nothing?",
                    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 6: a key longer than the block is hashed first. */
    memset(key, 0xaa, sizeof(key));
    assert_hmac_hex(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First",
                    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hex_is_lower_case_and_terminated(void **state)
{
    static const uint8_t bytes[] = {0x00, 0x0f, 0xa5, 0xff};
    char hex[9];
    memset(hex, 'x', sizeof(hex));
    crypto_hex(bytes, sizeof(bytes), hex);
    assert_string_equal(hex, "000fa5ff");
}

static void test_base64_round_trips_every_length_up_to_64(void **state)
{
    uint8_t data[64], back[64];
    char text[128];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 151 + 7); /* every residue class of 6-bit groups shows up */
    for (size_t len = 0; len <= sizeof(data); len++) {
        size_t n = crypto_b64_encode(data, len, text);
        assert_int_equal(n, crypto_b64_len(len));
        assert_int_equal(strlen(text), n);
        assert_int_equal(n % 4, 0);
        assert_int_equal(crypto_b64_decode(text, n, back, sizeof(back)), (long)len);
        assert_memory_equal(back, data, len);

        n = crypto_b64url_encode(data, len, text);
        assert_int_equal(n, crypto_b64url_len(len));
        assert_int_equal(strlen(text), n);
        assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789-_"),
                         n);
        assert_int_equal(crypto_b64url_decode(text, n, back, sizeof(back)), (long)len);
        assert_memory_equal(back, data, len);
    }
}

static void test_base64_matches_rfc_4648_vectors(void **state)
{
    static const char *const vectors[][3] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg==", "Zm9vYg"},
        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const char *plain = vectors[i][0];
        size_t len = strlen(plain);
        char text[16];
        uint8_t back[16];
        crypto_b64_encode(plain, len, text);
        assert_string_equal(text, vectors[i][1]);
        crypto_b64url_encode(plain, len, text);
        assert_string_equal(text, vectors[i][2]);
        assert_int_equal(crypto_b64_decode(vectors[i][1], strlen(vectors[i][1]), back, 16), len);
        assert_memory_equal(back, plain, len);
        assert_int_equal(crypto_b64url_decode(vectors[i][2], strlen(vectors[i][2]), back, 16), len);
        assert_memory_equal(back, plain, len);
    }
    /* The two alphabets differ exactly in the last two characters (RFC 4648 §5). */
    static const uint8_t high[] = {0xfb, 0xff, 0xbf};
    char text[8];
    crypto_b64_encode(high, 3, text);
    assert_string_equal(text, "+/+/");
    crypto_b64url_encode(high, 3, text);
    assert_string_equal(text, "-_-_");
}

static void test_base64_decode_rejects_malformed_input(void **state)
{
    static const char *const bad_std[] = {
        "Zm9v!", "Zm 9v", "Zm9v\n",   "Zm9-",  "Zm9_", /* outside the alphabet */
        "Zg=",   "Zg===", "Z===",     "Zm9v=", "=Zm9", "Zg==Zg==", "Zm=v", /* padding */
        "Zh==",  "Zm9=",  "Zm9vYh==",                                      /* trailing bits */
        "Zm9vY", "Z",                                                      /* 6 bits short */
    };
    uint8_t out[64];
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
        if (crypto_b64_decode(bad_std[i], strlen(bad_std[i]), out, sizeof(out)) != -1)
            fail_msg("crypto_b64_decode accepted \"%s\"", bad_std[i]);
    }
    static const char *const bad_url[] = {"Zm9+", "Zm9/", "Zm9v!", "Zh", "Zm9", "Zm9vY", "Z=="};
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        if (crypto_b64url_decode(bad_url[i], strlen(bad_url[i]), out, sizeof(out)) != -1)
            fail_msg("crypto_b64url_decode accepted \"%s\"", bad_url[i]);
    }
    /* "Zm9" is not canonical for "fo" either; "Zm8" is. */
    assert_int_equal(crypto_b64url_decode("Zm8", 3, out, sizeof(out)), 2);
}

static void test_base64_decode_refuses_too_small_output(void **state)
{
    /* Exactly-sized heap blocks, so a write past them is an ASan report, not luck. */
    uint8_t *five = malloc(5), *six = malloc(6);
    assert_non_null(five);
    assert_non_null(six);
    assert_int_equal(crypto_b64_decode("Zm9vYmFy", 8, five, 5), -1);
    assert_int_equal(crypto_b64url_decode("Zm9vYmFy", 8, five, 5), -1);
    assert_int_equal(crypto_b64_decode("Zm9vYmFy", 8, six, 6), 6);
    assert_memory_equal(six, "foobar", 6);
    assert_int_equal(crypto_b64_decode("Zm9vYmE=", 8, five, 4), -1);
    assert_int_equal(crypto_b64_decode("Zm9vYmE=", 8, five, 5), 5);
    assert_int_equal(crypto_b64_decode("", 0, NULL, 0), 0);
    free(five);
    free(six);
}

static void test_constant_time_compare(void **state)
{
    static const char a[] = "0123456789abcdef0123456789abcdef";
    char b[sizeof(a)];
    memcpy(b, a, sizeof(a));
    assert_true(crypto_equal(a, b, 32));
    assert_true(crypto_equal(a, b, 0));
    b[31] ^= 1;
    assert_false(crypto_equal(a, b, 32));
    assert_true(crypto_equal(a, b, 31));
    b[31] = a[31];
    b[0] ^= 0x80;
    assert_false(crypto_equal(a, b, 32));

    assert_true(crypto_equal_str("secret", 6, "secret", 6));
    assert_true(crypto_equal_str("", 0, "", 0));
    assert_false(crypto_equal_str("secret", 6, "secreT", 6));
    assert_false(crypto_equal_str("secret", 6, "secret!", 7));
    assert_false(crypto_equal_str("secret!", 7, "secret", 6));
    assert_false(crypto_equal_str("secret", 6, "", 0));
    assert_false(crypto_equal_str("", 0, "secret", 6));
}

static void assert_url_safe_token(const char *t)
{
    assert_int_equal(strlen(t), CRYPTO_TOKEN_LEN);
    assert_int_equal(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     CRYPTO_TOKEN_LEN);
}

static void test_random_token_is_43_url_safe_chars_and_fresh(void **state)
{
    char t1[CRYPTO_TOKEN_LEN + 1], t2[CRYPTO_TOKEN_LEN + 1];
    assert_int_equal(crypto_random_token(t1), 0);
    assert_int_equal(crypto_random_token(t2), 0);
    assert_url_safe_token(t1);
    assert_url_safe_token(t2);
    assert_string_not_equal(t1, t2);
    /* And it decodes back to the 32 random bytes it stands for. */
    uint8_t raw[32];
    assert_int_equal(crypto_b64url_decode(t1, 43, raw, sizeof(raw)), 32);

    uint8_t zero[64] = {0}, rnd[64] = {0};
    assert_int_equal(crypto_random(rnd, sizeof(rnd)), 0);
    assert_memory_not_equal(rnd, zero, sizeof(rnd));
}

/* ---- buf ---- */

static void test_buf_cap_is_enforced_and_contents_kept(void **state)
{
    buf_t b = BUF_INIT(8);
    assert_int_equal(buf_append_str(&b, "12345"), 0);
    assert_int_equal(buf_append_str(&b, "6789"), -ENOBUFS);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_printf(&b, "%d", 6789), -ENOBUFS);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_append(&b, "678", 3), 0); /* exactly at the cap */
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(buf_append(&b, "9", 1), -ENOBUFS);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), -ENOBUFS); /* no overflow into "fits" */
    assert_string_equal(b.data, "12345678");
    assert_true(b.cap <= b.max + 1); /* never allocates past the cap and its NUL */
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_buf_is_nul_terminated_after_every_append(void **state)
{
    buf_t b = BUF_INIT(0);
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    char chunk[100];
    memset(chunk, 'a', sizeof(chunk));
    for (int i = 0; i < 50; i++) { /* grows several times */
        assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
        assert_int_equal(b.len, (size_t)(i + 1) * sizeof(chunk));
        assert_int_equal(b.data[b.len], '\0');
        assert_int_equal(strlen(b.data), b.len);
    }
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_true(b.cap > 0); /* memory kept */
    buf_free(&b);
}

static void test_buf_printf_appends_formatted_text(void **state)
{
    buf_t b = BUF_INIT(4096);
    assert_int_equal(buf_append_str(&b, "head;"), 0);
    assert_int_equal(buf_printf(&b, "%s=%d;%.2f;%c", "n", -42, 1.5, 'z'), 0);
    assert_string_equal(b.data, "head;n=-42;1.50;z");
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, strlen("head;n=-42;1.50;z"));
    char big[300];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 17 + 301);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(b.data[b.len], '\0');
    buf_free(&b);
}

/* ---- slice ---- */

static void test_slice_has_token_in_connection_header(void **state)
{
    slice_t v = SLICE_LIT("keep-alive, Upgrade");
    assert_true(slice_has_token(v, "upgrade"));
    assert_true(slice_has_token(v, "Upgrade"));
    assert_true(slice_has_token(v, "keep-alive"));
    assert_true(slice_has_token(v, "KEEP-ALIVE"));
    assert_false(slice_has_token(v, "upgrad"));
    assert_false(slice_has_token(v, "alive"));
    assert_false(slice_has_token(v, "keep-alive, Upgrade"));
    assert_false(slice_has_token(v, "close"));
    assert_true(slice_has_token(SLICE_LIT(" ,\tclose\t , ,"), "close"));
    assert_true(slice_has_token(SLICE_LIT("Upgrade"), "upgrade"));
    assert_false(slice_has_token(SLICE_LIT(""), "upgrade"));
    /* Bytes past len are not part of the value. */
    assert_false(slice_has_token((slice_t){"keep-alive, Upgrade", 12}, "upgrade"));
}

static void test_slice_percent_decode_handles_escapes_plus_and_bounds(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(slice_percent_decode(SLICE_LIT("a%2Fb+c"), 1, out, sizeof(out)), 5);
    assert_string_equal(out, "a/b c");
    assert_int_equal(slice_percent_decode(SLICE_LIT("a+b"), 0, out, sizeof(out)), 3);
    assert_string_equal(out, "a+b"); /* '+' is a space only in query strings */
    assert_int_equal(slice_percent_decode(SLICE_LIT("%4"), 0, out, sizeof(out)), -1);
    assert_int_equal(slice_percent_decode(SLICE_LIT("%zz"), 0, out, sizeof(out)), -1);
    assert_int_equal(slice_percent_decode(SLICE_LIT("x%00y"), 0, out, sizeof(out)), -1);
    assert_int_equal(slice_percent_decode(SLICE_LIT("12345678"), 0, out, sizeof(out)), -1);
    assert_int_equal(slice_percent_decode(SLICE_LIT("1234567"), 0, out, sizeof(out)), 7);
    assert_int_equal(slice_percent_decode(SLICE_LIT(""), 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_slice_to_u64_rejects_overflow_and_junk(void **state)
{
    unsigned long long v = 7;
    assert_int_equal(slice_to_u64(SLICE_LIT("0"), ULLONG_MAX, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(slice_to_u64(SLICE_LIT("18446744073709551615"), ULLONG_MAX, &v), 0);
    assert_true(v == ULLONG_MAX);
    assert_int_equal(slice_to_u64(SLICE_LIT("18446744073709551616"), ULLONG_MAX, &v), -1);
    assert_int_equal(slice_to_u64(SLICE_LIT("99999999999999999999"), ULLONG_MAX, &v), -1);
    assert_int_equal(slice_to_u64(SLICE_LIT("123456789012345678901"), ULLONG_MAX, &v), -1);
    assert_int_equal(slice_to_u64(SLICE_LIT("122"), 122, &v), 0);
    assert_int_equal(v, 122);
    assert_int_equal(slice_to_u64(SLICE_LIT("123"), 122, &v), -1);
    assert_int_equal(slice_to_u64(SLICE_LIT("1000"), 999, &v), -1);

    static const char *const junk[] = {"", " 1", "1 ", "+1", "-1", "1x", "0x10", "1.0", "\xd9\xa1"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        v = 7;
        if (slice_to_u64(slice_from(junk[i]), ULLONG_MAX, &v) != -1)
            fail_msg("\"%s\" was parsed", junk[i]);
        assert_int_equal(v, 7); /* untouched on failure */
    }
    /* Only the slice's bytes count. */
    assert_int_equal(slice_to_u64((slice_t){"42abc", 2}, ULLONG_MAX, &v), 0);
    assert_int_equal(v, 42);
}

/* ---- metrics ---- */

static char *render(void)
{
    buf_t out = BUF_INIT(0);
    assert_int_equal(metrics_render(&out), 0);
    if (out.data == NULL) return strdup("");
    return out.data; /* the caller frees */
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_metrics_render_prometheus_text(void **state)
{
    metrics_reset();
    static const double bounds[] = {0.25, 0.5, 1};
    metric_t *ok = metrics_counter("t_requests_total", "Requests answered.", "code=\"2xx\"");
    metric_t *conns = metrics_gauge("t_connections", "Open connections.", NULL);
    metric_t *lat =
        metrics_histogram("t_latency_seconds", "Request latency.", "route=\"/a\"", bounds, 3);
    /* A series of the first family registered last still renders under its family. */
    metric_t *err = metrics_counter("t_requests_total", "Requests answered.", "code=\"5xx\"");

    metric_inc(ok);
    metric_inc(ok);
    metric_add(ok, 1.5);
    metric_inc(err);
    metric_set(conns, 7);
    metric_set(conns, 3);
    /* Bounds are inclusive upper limits ("le"): 0.25 lands in the first bucket. */
    metric_observe(lat, 0.25);
    metric_observe(lat, 0.5);
    metric_observe(lat, 1);
    metric_observe(lat, 4);
    assert_true(metric_value(ok) == 3.5);
    assert_true(metric_value(conns) == 3);
    assert_true(metric_value(lat) == 4);

    char *text = render();
    assert_string_equal(text, "# HELP t_requests_total Requests answered.\n"
                              "# TYPE t_requests_total counter\n"
                              "t_requests_total{code=\"2xx\"} 3.5\n"
                              "t_requests_total{code=\"5xx\"} 1\n"
                              "# HELP t_connections Open connections.\n"
                              "# TYPE t_connections gauge\n"
                              "t_connections 3\n"
                              "# HELP t_latency_seconds Request latency.\n"
                              "# TYPE t_latency_seconds histogram\n"
                              "t_latency_seconds_bucket{route=\"/a\",le=\"0.25\"} 1\n"
                              "t_latency_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
                              "t_latency_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
                              "t_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
                              "t_latency_seconds_sum{route=\"/a\"} 5.75\n"
                              "t_latency_seconds_count{route=\"/a\"} 4\n");
    free(text);
    metrics_reset();
}

static void test_metrics_histogram_without_labels_has_all_buckets(void **state)
{
    metrics_reset();
    metric_t *h =
        metrics_histogram("t_h", "H.", NULL, metrics_latency_bounds, metrics_latency_nbounds);
    metric_observe(h, 0.0001);
    metric_observe(h, 100);
    char *text = render();
    assert_int_equal(count(text, "t_h_bucket{le=\""), metrics_latency_nbounds + 1);
    assert_non_null(strstr(text, "t_h_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "t_h_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(text, "t_h_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "t_h_sum 100.0001"));
    assert_non_null(strstr(text, "\nt_h_count 2\n"));
    assert_int_equal(count(text, "# HELP t_h H.\n"), 1);
    assert_int_equal(count(text, "# TYPE t_h histogram\n"), 1);
    free(text);
    metrics_reset();
}

static void test_metrics_same_name_and_labels_is_same_metric(void **state)
{
    metrics_reset();
    metric_t *a = metrics_counter("t_c", "C.", "k=\"1\"");
    assert_ptr_equal(metrics_counter("t_c", "C.", "k=\"1\""), a);
    assert_ptr_not_equal(metrics_counter("t_c", "C.", "k=\"2\""), a);
    metric_t *plain = metrics_gauge("t_g", "G.", NULL);
    assert_ptr_equal(metrics_gauge("t_g", "G.", ""), plain);
    static const double bounds[] = {1, 2};
    metric_t *h = metrics_histogram("t_h", "H.", NULL, bounds, 2);
    assert_ptr_equal(metrics_histogram("t_h", "H.", NULL, bounds, 2), h);
    metric_inc(a);
    metric_inc(metrics_counter("t_c", "C.", "k=\"1\""));
    assert_true(metric_value(a) == 2);
    metrics_reset();
}

static void test_metrics_reset_frees_everything(void **state)
{
    /* Run under ASan: anything reset forgets is a leak report at exit. */
    static const double bounds[] = {1, 2, 3};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++) {
            char labels[32];
            snprintf(labels, sizeof(labels), "i=\"%d\"", i);
            metric_inc(metrics_counter("t_many_total", "Many.", labels));
            metric_observe(metrics_histogram("t_many_seconds", "Many.", labels, bounds, 3), 1);
        }
        metrics_reset();
        char *text = render();
        assert_string_equal(text, "");
        free(text);
    }
}

/* ---- config ---- */

static void check_all(cfg_check_fn check, const char *name, const char *const *good,
                      const char *const *bad)
{
    for (; *good != NULL; good++) {
        if (check(*good) != NULL) fail_msg("%s refused \"%s\": %s", name, *good, check(*good));
    }
    for (; *bad != NULL; bad++) {
        const char *why = check(*bad);
        if (why == NULL || why[0] == '\0') fail_msg("%s accepted \"%s\"", name, *bad);
    }
}

static void test_cfg_check_listen(void **state)
{
    static const char *const good[] = {
        "0.0.0.0:3721",     "127.0.0.1:0", "localhost:8080", "[::]:3721", "[::1]:65535",
        "api.internal:443", NULL};
    static const char *const bad[] = {"",
                                      "3721",
                                      ":3721",
                                      "host:",
                                      "host:65536",
                                      "host:-1",
                                      "host:80x",
                                      "[::1:80",
                                      "[::1]",
                                      "::",
                                      "host:99999999999999999999",
                                      NULL};
    check_all(cfg_check_listen, "cfg_check_listen", good, bad);
}

static void test_cfg_check_http_url(void **state)
{
    static const char *const good[] = {"http://localhost:3721", "https://api.example.test",
                                       "https://api.example.test/base/", "http://[::1]:8080", NULL};
    static const char *const bad[] = {"",
                                      "localhost:3721",
                                      "ftp://example.test",
                                      "http://",
                                      "https://",
                                      "https:///path",
                                      "http://a b",
                                      "http://a\tb",
                                      "http://a\nb",
                                      "http//a",
                                      NULL};
    check_all(cfg_check_http_url, "cfg_check_http_url", good, bad);
}

static void test_cfg_check_bool(void **state)
{
    static const char *const good[] = {"0", "1", NULL};
    static const char *const bad[] = {"", "2", "true", "yes", "01", "1 ", "on", NULL};
    check_all(cfg_check_bool, "cfg_check_bool", good, bad);
}

static void test_cfg_check_log_level(void **state)
{
    static const char *const good[] = {"debug", "info", "warn", "error", NULL};
    static const char *const bad[] = {"", "INFO", "warning", "trace", "info ", NULL};
    check_all(cfg_check_log_level, "cfg_check_log_level", good, bad);
    enum log_level l = LOG_LEVEL_DEBUG;
    assert_int_equal(log_parse_level("warn", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
}

static void test_cfg_check_secret32(void **state)
{
    static const char *const good[] = {"0123456789abcdef0123456789abcdef",
                                       "0123456789abcdef0123456789abcdef0123456789abcdef", NULL};
    static const char *const bad[] = {"", "short", "0123456789abcdef0123456789abcde", NULL};
    check_all(cfg_check_secret32, "cfg_check_secret32", good, bad);
}

static void test_cfg_check_key32_b64(void **state)
{
    uint8_t raw[33];
    char k32[64], k31[64], k33[64], k32url[64];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(0xfb - i); /* high bytes, so '+' and '/' appear */
    crypto_b64_encode(raw, 32, k32);
    crypto_b64_encode(raw, 31, k31);
    crypto_b64_encode(raw, 33, k33);
    crypto_b64url_encode(raw, 32, k32url);
    assert_true(strpbrk(k32, "+/") != NULL);

    const char *const good[] = {k32, NULL};
    const char *const bad[] = {"",  k31, k33, k32url, "not base64 at all, not at all!!!!!!!!!!!!!",
                               NULL};
    check_all(cfg_check_key32_b64, "cfg_check_key32_b64", good, bad);
}

static void test_cfg_check_positive_int(void **state)
{
    static const char *const good[] = {"1", "42", "2147483647", NULL};
    static const char *const bad[] = {"",   "0",   "-1",  "2147483648", "99999999999999999999",
                                      "1x", "1.5", "abc", NULL};
    check_all(cfg_check_positive_int, "cfg_check_positive_int", good, bad);
    assert_int_equal(cfg_int("2147483647"), 2147483647);
}

#define SECRET_VALUE "correct-horse-battery-staple-0123456789"

static const cfg_var_t test_vars[] = {
    {"EGT_LISTEN", "0.0.0.0:3721", 0, cfg_check_listen, "address to listen on"},
    {"EGT_DATABASE_URL", NULL, CFG_REQUIRED, NULL, "PostgreSQL connection URL"},
    {"EGT_SESSION_SECRET", NULL, CFG_REQUIRED | CFG_SECRET, cfg_check_secret32, "cookie key"},
    {"EGT_WORKERS", "4", 0, cfg_check_positive_int, "worker threads"},
    {"EGT_UPSTREAM", NULL, CFG_OPTIONAL, cfg_check_http_url, "optional upstream"},
};
#define NVARS (sizeof(test_vars) / sizeof(test_vars[0]))

static void clear_env(void)
{
    for (size_t i = 0; i < NVARS; i++)
        unsetenv(test_vars[i].name);
}

/* Runs cfg_load and returns what it printed (the caller frees). */
static char *load(int *rc, const char **values)
{
    char *text = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&text, &len);
    assert_non_null(err);
    *rc = cfg_load(test_vars, NVARS, values, err);
    assert_int_equal(fclose(err), 0);
    return text;
}

static void test_cfg_load_reports_every_missing_required_variable(void **state)
{
    const char *values[NVARS];
    int rc = 0;
    clear_env();
    char *out = load(&rc, values);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(out, "EGT_DATABASE_URL"));
    assert_non_null(strstr(out, "EGT_SESSION_SECRET"));
    assert_null(strstr(out, "EGT_LISTEN"));
    assert_null(strstr(out, "EGT_UPSTREAM"));
    free(out);
}

static void test_cfg_load_applies_defaults(void **state)
{
    const char *values[NVARS];
    int rc = -1;
    clear_env();
    setenv("EGT_DATABASE_URL", "postgresql://db/edgegate", 1);
    setenv("EGT_SESSION_SECRET", SECRET_VALUE, 1);
    setenv("EGT_WORKERS", "16", 1);
    char *out = load(&rc, values);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "");
    assert_string_equal(values[0], "0.0.0.0:3721");
    assert_string_equal(values[1], "postgresql://db/edgegate");
    assert_string_equal(values[2], SECRET_VALUE);
    assert_string_equal(values[3], "16");
    assert_null(values[4]);
    assert_string_equal(cfg_get(test_vars, NVARS, values, "EGT_LISTEN"), "0.0.0.0:3721");
    assert_null(cfg_get(test_vars, NVARS, values, "EGT_UPSTREAM"));
    assert_null(cfg_get(test_vars, NVARS, values, "EGT_NOT_DECLARED"));
    free(out);
    clear_env();
}

static void test_cfg_load_never_prints_a_secret_value(void **state)
{
    const char *values[NVARS];
    int rc = 0;
    clear_env();
    setenv("EGT_DATABASE_URL", "postgresql://db/edgegate", 1);
    /* Invalid (too short) secret: named, not echoed. */
    setenv("EGT_SESSION_SECRET", "hunter2-leaked", 1);
    setenv("EGT_LISTEN", "nonsense", 1);
    char *out = load(&rc, values);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(out, "EGT_SESSION_SECRET"));
    assert_null(strstr(out, "hunter2"));
    /* A non-secret bad value is echoed, which is what makes it easy to fix. */
    assert_non_null(strstr(out, "EGT_LISTEN"));
    assert_non_null(strstr(out, "nonsense"));
    free(out);

    /* A valid secret next to another error is not echoed either. */
    setenv("EGT_SESSION_SECRET", SECRET_VALUE, 1);
    out = load(&rc, values);
    assert_int_equal(rc, -1);
    assert_null(strstr(out, "correct-horse"));
    free(out);
    clear_env();
}

static void test_cfg_load_treats_empty_value_as_unset(void **state)
{
    const char *values[NVARS];
    int rc = 0;
    clear_env();
    setenv("EGT_DATABASE_URL", "", 1);
    setenv("EGT_SESSION_SECRET", SECRET_VALUE, 1);
    setenv("EGT_LISTEN", "", 1);
    setenv("EGT_UPSTREAM", "", 1);
    char *out = load(&rc, values);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(out, "EGT_DATABASE_URL"));
    assert_null(strstr(out, "EGT_LISTEN"));   /* the default applies, it is not "invalid" */
    assert_null(strstr(out, "EGT_UPSTREAM")); /* optional: unset is fine */
    assert_string_equal(values[0], "0.0.0.0:3721");
    assert_null(values[1]);
    assert_null(values[4]);
    free(out);
    clear_env();
}

/* ---- log ---- */

/* A quoted value must be one well-formed token: quote, escapes or printable bytes, quote. */
static void assert_well_quoted(const char *q, size_t out_size)
{
    size_t n = strlen(q);
    assert_true(n < out_size);
    assert_true(n >= 2);
    assert_int_equal(q[0], '"');
    assert_int_equal(q[n - 1], '"');
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = (unsigned char)q[i];
        assert_true(c >= 0x20 && c != 0x7f); /* nothing that could end the line */
        if (c == '\\') {
            char e = q[i + 1];
            if (e == 'x') {
                assert_non_null(strchr("0123456789abcdef", q[i + 2]));
                assert_non_null(strchr("0123456789abcdef", q[i + 3]));
                i += 3;
            } else {
                assert_true(e == '"' || e == '\\');
                i++;
            }
            assert_true(i < n - 1); /* an escape is never cut by the closing quote */
        } else {
            assert_true(c != '"');
        }
    }
}

static void test_log_quote_escapes_quotes_backslashes_and_newlines(void **state)
{
    char out[128];
    static const char evil[] = "GET /\"x\\y\nts=forged level=error\r\x01\x7f";
    log_quote(out, sizeof(out), evil, sizeof(evil) - 1);
    assert_string_equal(out, "\"GET /\\\"x\\\\y\\x0ats=forged level=error\\x0d\\x01\\x7f\"");
    assert_well_quoted(out, sizeof(out));
    assert_string_equal(log_quote(out, sizeof(out), "", 0), "\"\"");
    assert_string_equal(log_quote(out, sizeof(out), "plain", 5), "\"plain\"");
    /* Embedded NUL is data, not the end. */
    assert_string_equal(log_quote(out, sizeof(out), "a\0b", 3), "\"a\\x00b\"");
}

static void test_log_quote_truncates_within_the_buffer(void **state)
{
    char long_text[300], quotes[300], ctl[300];
    memset(long_text, 'a', sizeof(long_text));
    memset(quotes, '"', sizeof(quotes));
    memset(ctl, '\n', sizeof(ctl));
    const char *inputs[] = {long_text, quotes, ctl};
    for (size_t size = 8; size <= 64; size++) {
        for (size_t k = 0; k < 3; k++) {
            /* An exactly-sized heap buffer: a byte written past it is an ASan report. */
            char *out = malloc(size);
            assert_non_null(out);
            log_quote(out, size, inputs[k], 300);
            assert_well_quoted(out, size);
            size_t n = strlen(out);
            assert_true(n >= 5);
            assert_string_equal(out + n - 4, "...\"");
            free(out);
        }
    }
    /* Too small for even a truncated value: an empty string, not an overrun. */
    char tiny[7];
    memset(tiny, 'x', sizeof(tiny));
    log_quote(tiny, sizeof(tiny), "abc", 3);
    assert_string_equal(tiny, "");
}

static void test_log_token_prefix_shows_at_most_8_chars(void **state)
{
    char out[16];
    static const char token[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    assert_string_equal(log_token_prefix(out, token, sizeof(token) - 1), "abcdefgh...");
    assert_string_equal(log_token_prefix(out, token, 8), "abcdefgh...");
    assert_string_equal(log_token_prefix(out, "", 0), "-");
    /* A short token shows less than all of itself. */
    log_token_prefix(out, "abcd", 4);
    assert_true(strlen(out) - 3 < 4);
    assert_memory_equal(out + strlen(out) - 3, "...", 3);
    /* Bytes that could break the line are masked. */
    assert_string_equal(log_token_prefix(out, "ab\n\"\\ cdef", 10), "ab????cd...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_hex_matches_fips_180_vectors),
        cmocka_unit_test(test_hmac_sha256_matches_rfc_4231),
        cmocka_unit_test(test_hex_is_lower_case_and_terminated),
        cmocka_unit_test(test_base64_round_trips_every_length_up_to_64),
        cmocka_unit_test(test_base64_matches_rfc_4648_vectors),
        cmocka_unit_test(test_base64_decode_rejects_malformed_input),
        cmocka_unit_test(test_base64_decode_refuses_too_small_output),
        cmocka_unit_test(test_constant_time_compare),
        cmocka_unit_test(test_random_token_is_43_url_safe_chars_and_fresh),
        cmocka_unit_test(test_buf_cap_is_enforced_and_contents_kept),
        cmocka_unit_test(test_buf_is_nul_terminated_after_every_append),
        cmocka_unit_test(test_buf_printf_appends_formatted_text),
        cmocka_unit_test(test_slice_has_token_in_connection_header),
        cmocka_unit_test(test_slice_to_u64_rejects_overflow_and_junk),
        cmocka_unit_test(test_slice_percent_decode_handles_escapes_plus_and_bounds),
        cmocka_unit_test(test_metrics_render_prometheus_text),
        cmocka_unit_test(test_metrics_histogram_without_labels_has_all_buckets),
        cmocka_unit_test(test_metrics_same_name_and_labels_is_same_metric),
        cmocka_unit_test(test_metrics_reset_frees_everything),
        cmocka_unit_test(test_cfg_check_listen),
        cmocka_unit_test(test_cfg_check_http_url),
        cmocka_unit_test(test_cfg_check_bool),
        cmocka_unit_test(test_cfg_check_log_level),
        cmocka_unit_test(test_cfg_check_secret32),
        cmocka_unit_test(test_cfg_check_key32_b64),
        cmocka_unit_test(test_cfg_check_positive_int),
        cmocka_unit_test(test_cfg_load_reports_every_missing_required_variable),
        cmocka_unit_test(test_cfg_load_applies_defaults),
        cmocka_unit_test(test_cfg_load_never_prints_a_secret_value),
        cmocka_unit_test(test_cfg_load_treats_empty_value_as_unset),
        cmocka_unit_test(test_log_quote_escapes_quotes_backslashes_and_newlines),
        cmocka_unit_test(test_log_quote_truncates_within_the_buffer),
        cmocka_unit_test(test_log_token_prefix_shows_at_most_8_chars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
