/*
 * http_router: which route a (method, path) pair reaches, with what parameters, and what the
 * answer is when none does. Each test builds a small route table the way a daemon does (route
 * records are static strings here: the pattern itself, so a failure shows which route won).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/http_router.h"

typedef struct match {
    enum http_route_result result;
    const char *route;
    http_params_t params;
    char allow[64];
} match_t;

static http_router_t *router_with(const char *const (*table)[2], size_t n)
{
    http_router_t *r = http_router_new();
    assert_non_null(r);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(http_router_add(r, table[i][0], table[i][1], table[i][1]), 0);
    return r;
}

static match_t route(const http_router_t *r, const char *method, const char *path)
{
    match_t m;
    const void *found = NULL;
    memset(&m, 0, sizeof(m));
    memset(m.allow, 'x', sizeof(m.allow) - 1); /* stale bytes must not leak into Allow */
    m.result = http_router_match(r, slice_from(method), slice_from(path), &found, &m.params,
                                 m.allow, sizeof(m.allow));
    m.route = found;
    return m;
}

static void assert_param(const match_t *m, const char *name, const char *want)
{
    slice_t v = http_params_get(&m->params, name);
    assert_non_null(v.ptr);
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.ptr, want, v.len);
}

#define ROUTER(table) router_with((table), sizeof(table) / sizeof((table)[0]))

static void test_literal_route_matches_only_its_path(void **state)
{
    static const char *const table[][2] = {{"GET", "/api/health"}, {"GET", "/api/ready"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "GET", "/api/health");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_string_equal(m.route, "/api/health");
    assert_int_equal(m.params.n, 0);
    assert_string_equal(route(r, "GET", "/api/ready").route, "/api/ready");

    static const char *const misses[] = {"/api/healthz", "/api", "/api/health/x", "/API/health",
                                         "/api/heal",    "",     "api/health",    "//api/health"};
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++)
        assert_int_equal(route(r, "GET", misses[i]).result, HTTP_ROUTE_NOT_FOUND);
    http_router_free(r);
}

static void test_param_matches_one_non_empty_segment(void **state)
{
    static const char *const table[][2] = {{"GET", "/users/{id}"},
                                           {"GET", "/orgs/{org}/users/{id}"}};
    http_router_t *r = ROUTER(table);
    const char *path = "/users/42";
    const void *found = NULL;
    http_params_t p;
    assert_int_equal(http_router_match(r, SLICE_LIT("GET"), slice_from(path), &found, &p, NULL, 0),
                     HTTP_ROUTE_FOUND);
    assert_int_equal(p.n, 1);
    /* Values are views of the path itself, not copies. */
    assert_ptr_equal(http_params_get(&p, "id").ptr, path + 7);
    assert_int_equal(http_params_get(&p, "id").len, 2);

    match_t m = route(r, "GET", "/orgs/acme/users/7");
    assert_string_equal(m.route, "/orgs/{org}/users/{id}");
    assert_int_equal(m.params.n, 2);
    assert_param(&m, "org", "acme");
    assert_param(&m, "id", "7");

    static const char *const misses[] = {"/users/",          "/users",   "/users/42/",
                                         "/users/42/x",      "/users//", "/orgs//users/7",
                                         "/orgs/acme/users/"};
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++)
        assert_int_equal(route(r, "GET", misses[i]).result, HTTP_ROUTE_NOT_FOUND);
    http_router_free(r);
}

static void test_rest_param_takes_the_rest_of_the_path(void **state)
{
    static const char *const table[][2] = {{"GET", "/static/{path...}"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "GET", "/static/css/site/main.css");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_param(&m, "path", "css/site/main.css");

    m = route(r, "GET", "/static/a//b/");
    assert_param(&m, "path", "a//b/");

    /* Empty rest, with and without the trailing slash. */
    m = route(r, "GET", "/static/");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_param(&m, "path", "");
    m = route(r, "GET", "/static");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_param(&m, "path", "");

    assert_int_equal(route(r, "GET", "/staticx").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/stati").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/").result, HTTP_ROUTE_NOT_FOUND);
    http_router_free(r);
}

static void test_rest_param_after_params_and_at_root(void **state)
{
    static const char *const table[][2] = {{"PUT", "/blobs/{bucket}/{key...}"},
                                           {"GET", "/{all...}"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "PUT", "/blobs/b1/dir/file.txt");
    assert_string_equal(m.route, "/blobs/{bucket}/{key...}");
    assert_int_equal(m.params.n, 2);
    assert_param(&m, "bucket", "b1");
    assert_param(&m, "key", "dir/file.txt");

    m = route(r, "PUT", "/blobs/b1");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_param(&m, "key", "");

    m = route(r, "GET", "/");
    assert_string_equal(m.route, "/{all...}");
    assert_param(&m, "all", "");
    m = route(r, "GET", "/anything/at/all");
    assert_param(&m, "all", "anything/at/all");
    http_router_free(r);
}

static void test_first_added_route_wins(void **state)
{
    static const char *const me_first[][2] = {{"GET", "/users/me"}, {"GET", "/users/{id}"}};
    static const char *const param_first[][2] = {{"GET", "/users/{id}"}, {"GET", "/users/me"}};
    http_router_t *r = ROUTER(me_first);
    assert_string_equal(route(r, "GET", "/users/me").route, "/users/me");
    assert_string_equal(route(r, "GET", "/users/you").route, "/users/{id}");
    http_router_free(r);

    r = ROUTER(param_first);
    match_t m = route(r, "GET", "/users/me");
    assert_string_equal(m.route, "/users/{id}");
    assert_param(&m, "id", "me");
    http_router_free(r);
}

static void test_route_that_only_matches_on_method_is_tried_after_earlier_ones(void **state)
{
    /* A pattern that matches with the wrong method does not stop the search. */
    static const char *const table[][2] = {{"POST", "/items/{id}"}, {"GET", "/items/{name}"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "GET", "/items/9");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_string_equal(m.route, "/items/{name}");
    assert_int_equal(m.params.n, 1);
    assert_param(&m, "name", "9");
    assert_null(http_params_get(&m.params, "id").ptr);
    http_router_free(r);
}

static void test_unknown_path_is_404_and_wrong_method_405_with_allow(void **state)
{
    static const char *const table[][2] = {
        {"GET", "/items"},         {"POST", "/items"},     {"GET", "/items/{id}"},
        {"DELETE", "/items/{id}"}, {"PUT", "/items/{id}"}, {"GET", "/{rest...}"},
    };
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "PATCH", "/items");
    assert_int_equal(m.result, HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, POST");

    /* GET matches twice (/items/{id} and /{rest...}) but is listed once. */
    m = route(r, "PATCH", "/items/3");
    assert_int_equal(m.result, HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, DELETE, PUT");

    m = route(r, "POST", "/elsewhere");
    assert_int_equal(m.result, HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET");
    http_router_free(r);

    static const char *const small[][2] = {{"GET", "/a"}};
    r = ROUTER(small);
    m = route(r, "GET", "/b");
    assert_int_equal(m.result, HTTP_ROUTE_NOT_FOUND);
    assert_string_equal(m.allow, "");
    /* Methods are case-sensitive tokens (RFC 9110 §9.1). */
    m = route(r, "get", "/a");
    assert_int_equal(m.result, HTTP_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET");
    http_router_free(r);
}

static void test_allow_list_is_truncated_to_its_buffer(void **state)
{
    static const char *const table[][2] = {{"GET", "/x"}, {"POST", "/x"}, {"DELETE", "/x"}};
    http_router_t *r = ROUTER(table);
    char allow[8];
    memset(allow, 'x', sizeof(allow));
    const void *found = NULL;
    http_params_t p;
    assert_int_equal(
        http_router_match(r, SLICE_LIT("PUT"), SLICE_LIT("/x"), &found, &p, allow, sizeof(allow)),
        HTTP_ROUTE_BAD_METHOD);
    assert_true(memchr(allow, '\0', sizeof(allow)) != NULL);
    assert_memory_equal(allow, "GET, ", 5);
    /* No Allow buffer at all is fine too. */
    assert_int_equal(http_router_match(r, SLICE_LIT("PUT"), SLICE_LIT("/x"), &found, &p, NULL, 0),
                     HTTP_ROUTE_BAD_METHOD);
    http_router_free(r);
}

static void test_star_method_matches_any_method(void **state)
{
    static const char *const table[][2] = {{"*", "/proxy/{rest...}"}, {"GET", "/other"}};
    http_router_t *r = ROUTER(table);
    static const char *const methods[] = {"GET", "POST", "DELETE", "OPTIONS", "BREW"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        match_t m = route(r, methods[i], "/proxy/a/b");
        assert_int_equal(m.result, HTTP_ROUTE_FOUND);
        assert_string_equal(m.route, "/proxy/{rest...}");
        assert_param(&m, "rest", "a/b");
    }
    http_router_free(r);
}

static void test_trailing_slash_is_a_different_path(void **state)
{
    static const char *const table[][2] = {{"GET", "/a"}, {"GET", "/a/"}, {"GET", "/only"}};
    http_router_t *r = ROUTER(table);
    assert_string_equal(route(r, "GET", "/a").route, "/a");
    assert_string_equal(route(r, "GET", "/a/").route, "/a/");
    assert_int_equal(route(r, "GET", "/a//").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/only/").result, HTTP_ROUTE_NOT_FOUND);
    http_router_free(r);

    static const char *const slash_only[][2] = {{"GET", "/dir/"}};
    r = ROUTER(slash_only);
    assert_int_equal(route(r, "GET", "/dir").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/dir/").result, HTTP_ROUTE_FOUND);
    http_router_free(r);
}

static void test_root_route_matches_only_root(void **state)
{
    static const char *const table[][2] = {{"GET", "/"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "GET", "/");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_string_equal(m.route, "/");
    assert_int_equal(m.params.n, 0);
    assert_int_equal(route(r, "GET", "//").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/x").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "POST", "/").result, HTTP_ROUTE_BAD_METHOD);
    http_router_free(r);
}

static void test_targets_that_are_not_paths_match_nothing(void **state)
{
    /* OPTIONS * and CONNECT authority-form reach the router as they were sent. */
    static const char *const table[][2] = {{"*", "/{rest...}"}, {"*", "/"}};
    http_router_t *r = ROUTER(table);
    assert_int_equal(route(r, "OPTIONS", "*").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "CONNECT", "example.test:443").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "").result, HTTP_ROUTE_NOT_FOUND);
    http_router_free(r);
}

static void test_malformed_patterns_are_rejected(void **state)
{
    static const char *const bad[] = {
        "",                                           /* not a path */
        "users",                                      /* no leading slash */
        "users/{id}",                                 /* no leading slash */
        "/{}",                                        /* a parameter needs a name */
        "/a/{}/b",                                    /* ... wherever it is */
        "/{rest...}/more",                            /* a rest parameter must be last */
        "/a/{rest...}/",                              /* ... even before a trailing slash */
        "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", /* more segments than the router keeps */
    };
    http_router_t *r = http_router_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (http_router_add(r, "GET", bad[i], bad[i]) != -1)
            fail_msg("pattern \"%s\" was accepted", bad[i]);
    }
    /* A rejected pattern leaves nothing behind that could match. */
    assert_int_equal(route(r, "GET", "/a/x/b").result, HTTP_ROUTE_NOT_FOUND);
    assert_int_equal(route(r, "GET", "/x/more").result, HTTP_ROUTE_NOT_FOUND);

    static const char *const good[] = {"/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16",
                                       "/",
                                       "/a",
                                       "/a/",
                                       "/{id}",
                                       "/a/{id}/b",
                                       "/{rest...}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (http_router_add(r, "GET", good[i], good[i]) != 0)
            fail_msg("pattern \"%s\" was refused", good[i]);
    }
    assert_string_equal(route(r, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16").route,
                        "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16");
    http_router_free(r);
}

static void test_max_params_are_all_reported(void **state)
{
    static const char *const table[][2] = {{"GET", "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"},
                                           {"GET", "/r/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{rest...}"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "GET", "/p/1/2/3/4/5/6/7/8");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_int_equal(m.params.n, HTTP_MAX_PARAMS);
    assert_param(&m, "a", "1");
    assert_param(&m, "h", "8");

    m = route(r, "GET", "/r/1/2/3/4/5/6/7/x/y");
    assert_int_equal(m.result, HTTP_ROUTE_FOUND);
    assert_int_equal(m.params.n, HTTP_MAX_PARAMS);
    assert_param(&m, "rest", "x/y");
    m = route(r, "GET", "/r/1/2/3/4/5/6/7");
    assert_int_equal(m.params.n, HTTP_MAX_PARAMS);
    assert_param(&m, "rest", "");
    http_router_free(r);
}

static void test_more_than_max_params_never_overflow(void **state)
{
    /* Either refused up front or never matched: params can hold only HTTP_MAX_PARAMS. */
    http_router_t *r = http_router_new();
    const char *nine = "/q/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}";
    if (http_router_add(r, "GET", nine, nine) == 0) {
        match_t m = route(r, "GET", "/q/1/2/3/4/5/6/7/8/9");
        assert_int_not_equal(m.result, HTTP_ROUTE_FOUND);
        assert_true(m.params.n <= HTTP_MAX_PARAMS);
    }
    http_router_free(r);
}

static void test_percent_encoded_slash_stays_inside_one_segment(void **state)
{
    static const char *const table[][2] = {{"GET", "/files/{name}"},
                                           {"GET", "/files/{dir}/{name}"}};
    http_router_t *r = ROUTER(table);
    match_t m = route(r, "GET", "/files/a%2Fb");
    assert_string_equal(m.route, "/files/{name}");
    assert_param(&m, "name", "a%2Fb"); /* raw, not decoded */
    m = route(r, "GET", "/files/..%2f..%2fetc%2fpasswd");
    assert_string_equal(m.route, "/files/{name}");
    assert_param(&m, "name", "..%2f..%2fetc%2fpasswd");
    m = route(r, "GET", "/files/a/b");
    assert_string_equal(m.route, "/files/{dir}/{name}");
    http_router_free(r);
}

static void test_slices_need_no_terminating_nul(void **state)
{
    /* Method and path come off the wire as (ptr, len): bytes past len must not matter. */
    static const char *const table[][2] = {{"GET", "/users/{id}"}};
    http_router_t *r = ROUTER(table);
    static const char wire[] = "GETX /users/42?x=1";
    const void *found = NULL;
    http_params_t p;
    char allow[16];
    assert_int_equal(http_router_match(r, (slice_t){wire, 3}, (slice_t){wire + 5, 9}, &found, &p,
                                       allow, sizeof(allow)),
                     HTTP_ROUTE_FOUND);
    assert_int_equal(http_params_get(&p, "id").len, 2);
    assert_int_equal(http_router_match(r, (slice_t){wire, 2}, (slice_t){wire + 5, 9}, &found, &p,
                                       allow, sizeof(allow)),
                     HTTP_ROUTE_BAD_METHOD);
    http_router_free(r);
}

static void test_many_routes_all_reachable(void **state)
{
    /* More routes than the first allocation holds, so the table grows under ASan. */
    static char patterns[200][24];
    http_router_t *r = http_router_new();
    for (int i = 0; i < 200; i++) {
        snprintf(patterns[i], sizeof(patterns[i]), "/r%d/{id}", i);
        assert_int_equal(http_router_add(r, "GET", patterns[i], patterns[i]), 0);
    }
    for (int i = 0; i < 200; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/r%d/x", i);
        assert_ptr_equal(route(r, "GET", path).route, patterns[i]);
    }
    http_router_free(r);
    http_router_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_route_matches_only_its_path),
        cmocka_unit_test(test_param_matches_one_non_empty_segment),
        cmocka_unit_test(test_rest_param_takes_the_rest_of_the_path),
        cmocka_unit_test(test_rest_param_after_params_and_at_root),
        cmocka_unit_test(test_first_added_route_wins),
        cmocka_unit_test(test_route_that_only_matches_on_method_is_tried_after_earlier_ones),
        cmocka_unit_test(test_unknown_path_is_404_and_wrong_method_405_with_allow),
        cmocka_unit_test(test_allow_list_is_truncated_to_its_buffer),
        cmocka_unit_test(test_star_method_matches_any_method),
        cmocka_unit_test(test_trailing_slash_is_a_different_path),
        cmocka_unit_test(test_root_route_matches_only_root),
        cmocka_unit_test(test_targets_that_are_not_paths_match_nothing),
        cmocka_unit_test(test_malformed_patterns_are_rejected),
        cmocka_unit_test(test_max_params_are_all_reported),
        cmocka_unit_test(test_more_than_max_params_never_overflow),
        cmocka_unit_test(test_percent_encoded_slash_stays_inside_one_segment),
        cmocka_unit_test(test_slices_need_no_terminating_nul),
        cmocka_unit_test(test_many_routes_all_reachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
