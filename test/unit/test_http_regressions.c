/*
 * Regressions: each test is a bug found by review or fuzzing of the HTTP reader, router and
 * small helpers, kept so it stays fixed. The comment on an assertion says what it used to do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "common/http_reader.h"
#include "common/http_router.h"
#include "common/log.h"
#include "common/slice.h"

static void test_router_rest_after_eight_params_is_rejected_or_safe(void **state)
{
    http_router_t *r = http_router_new();
    const char *pat = "/s/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{rest...}";
    if (http_router_add(r, "GET", pat, pat) == 0) {
        const void *route;
        http_params_t p;
        /* UBSan: http_router.c:114 index 8 out of bounds for type 'slice_t [8]' */
        http_router_match(r, SLICE_LIT("GET"), SLICE_LIT("/s/1/2/3/4/5/6/7/8/x"), &route, &p, NULL, 0);
        assert_true(p.n <= HTTP_MAX_PARAMS);
    }
    http_router_free(r);
}

static void test_router_rest_after_eight_params_no_trailing_slash(void **state)
{
    http_router_t *r = http_router_new();
    const char *pat = "/s/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{rest...}";
    if (http_router_add(r, "GET", pat, pat) == 0) {
        const void *route;
        http_params_t p;
        /* the "also matches without the trailing slash" branch (http_router.c:129) */
        http_router_match(r, SLICE_LIT("GET"), SLICE_LIT("/s/1/2/3/4/5/6/7/8"), &route, &p, NULL, 0);
        assert_true(p.n <= HTTP_MAX_PARAMS);
    }
    http_router_free(r);
}

static void test_router_rejects_more_params_than_it_can_report(void **state)
{
    http_router_t *r = http_router_new();
    assert_int_equal(http_router_add(r, "GET", "/q/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", "q"), -1);
    http_router_free(r);
}

static void test_router_rejects_nameless_rest_and_stray_braces(void **state)
{
    http_router_t *r = http_router_new();
    assert_int_equal(http_router_add(r, "GET", "/{...}", "x"), -1);
    assert_int_equal(http_router_add(r, "GET", "/{id", "x"), -1);
    assert_int_equal(http_router_add(r, "GET", "/a{b}", "x"), -1);
    http_router_free(r);
}

static int feed(http_reader_t *rd, const char *in, size_t len, size_t *used)
{
    slice_t b;
    return http_reader_feed(rd, in, len, used, &b);
}

static void test_reader_reports_upgrade_right_after_head(void **state)
{
    static const char in[] = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nXYZ";
    http_reader_t rd;
    http_head_t h;
    char arena[1024];
    size_t used;
    http_reader_init(&rd);
    http_reader_begin(&rd, &h, arena, sizeof(arena));
    assert_int_equal(feed(&rd, in, sizeof(in) - 1, &used), HTTP_READER_HEAD);
    assert_int_equal(used, sizeof(in) - 4);
    assert_int_equal(feed(&rd, in + used, 3, &used), HTTP_READER_UPGRADE); /* gets DONE */
}

static void test_reader_does_not_merge_trailers_into_head(void **state)
{
    static const char in[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n0\r\nAuthorization: Bearer evil\r\n\r\n";
    http_reader_t rd;
    http_head_t h;
    char arena[1024];
    size_t used, off = 0;
    http_reader_init(&rd);
    http_reader_begin(&rd, &h, arena, sizeof(arena));
    int ev;
    while ((ev = feed(&rd, in + off, sizeof(in) - 1 - off, &used)) != HTTP_READER_DONE) {
        assert_true(ev != HTTP_READER_ERROR);
        off += used;
    }
    assert_int_equal(h.nheaders, 1);
    assert_null(http_head_header(&h, "authorization").ptr);
}

static void test_reader_ignores_trailing_ows_in_expect(void **state)
{
    static const char in[] = "POST / HTTP/1.1\r\nExpect: 100-continue \r\nContent-Length: 1\r\n\r\na";
    http_reader_t rd;
    http_head_t h;
    char arena[1024];
    size_t used;
    http_reader_init(&rd);
    http_reader_begin(&rd, &h, arena, sizeof(arena));
    assert_int_equal(feed(&rd, in, sizeof(in) - 1, &used), HTTP_READER_HEAD); /* ERROR 417 */
    assert_int_equal(h.expect_continue, 1);
}

static void test_reader_rejects_whitespace_in_header_names(void **state)
{
    static const char *const inputs[] = {"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
                                         "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
                                         "GET / HTTP/1.1\r\n: a\r\n\r\n"};
    for (int i = 0; i < 3; i++) {
        http_reader_t rd;
        http_head_t h;
        char arena[1024];
        size_t used;
        http_reader_init(&rd);
        http_reader_begin(&rd, &h, arena, sizeof(arena));
        assert_int_equal(feed(&rd, inputs[i], strlen(inputs[i]), &used), HTTP_READER_ERROR);
    }
}

static void test_slice_to_u64_respects_small_max(void **state)
{
    unsigned long long v = 0;
    assert_int_equal(slice_to_u64(SLICE_LIT("9"), 5, &v), -1); /* returns 0 with v = 9 */
}

static void test_log_quote_keeps_short_value_that_fits(void **state)
{
    char out[10];
    assert_string_equal(log_quote(out, sizeof(out), "ab", 2), "\"ab\""); /* gets "a..." */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_rest_after_eight_params_is_rejected_or_safe),
        cmocka_unit_test(test_router_rest_after_eight_params_no_trailing_slash),
        cmocka_unit_test(test_router_rejects_more_params_than_it_can_report),
        cmocka_unit_test(test_router_rejects_nameless_rest_and_stray_braces),
        cmocka_unit_test(test_reader_reports_upgrade_right_after_head),
        cmocka_unit_test(test_reader_does_not_merge_trailers_into_head),
        cmocka_unit_test(test_reader_ignores_trailing_ows_in_expect),
        cmocka_unit_test(test_reader_rejects_whitespace_in_header_names),
        cmocka_unit_test(test_slice_to_u64_respects_small_max),
        cmocka_unit_test(test_log_quote_keeps_short_value_that_fits),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
