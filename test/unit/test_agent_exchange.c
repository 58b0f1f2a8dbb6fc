/*
 * exchange (the edge agent's HTTP view of a stream): where requests and responses end, and the
 * head the target gets instead of the client's.
 *
 * A driver feeds a message the way a socket delivers it (step bytes at a time, keeping what a
 * call did not take, as stream.c does) and records where it ended and how. Every byte of a
 * body is accounted for: the bytes a call says belong to the message are counted, so a test
 * can say "the response ends exactly at byte 63 and the next one is left alone".
 * The module is included whole (h2o style): it lives with the agent, not in the library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test/edge-agent/exchange.c"

/* ---- the head rewrite ---- */

static void assert_rewrite(const char *in, const char *want)
{
    size_t len = strlen(in);
    uint8_t *out = malloc(len); /* exactly len: ASan sees a write past it */
    assert_non_null(out);
    size_t n = exchange_rewrite_head((const uint8_t *)in, len, out);
    assert_true(n <= len);
    if (n != strlen(want) || memcmp(out, want, n) != 0)
        fail_msg("rewrite of\n%s\ngave\n%.*s\nwanted\n%s", in, (int)n, (const char *)out, want);
    free(out);
}

static void test_close_alone_drops_the_connection_field(void **state)
{
    (void)state;
    assert_rewrite("GET / HTTP/1.1\r\nHost: d\r\nConnection: close\r\nX-A: 1\r\n\r\n",
                   "GET / HTTP/1.1\r\nHost: d\r\nX-A: 1\r\n\r\n");
    assert_rewrite("GET / HTTP/1.1\r\nCONNECTION:CLOSE \r\n\r\n", "GET / HTTP/1.1\r\n\r\n");
}

static void test_close_is_taken_out_and_other_options_stay(void **state)
{
    (void)state;
    assert_rewrite("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
                   "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n");
    assert_rewrite("GET / HTTP/1.1\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n",
                   "GET / HTTP/1.1\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n");
    assert_rewrite("GET / HTTP/1.1\r\nConnection: a,close,b\r\n\r\n",
                   "GET / HTTP/1.1\r\nConnection: a,b\r\n\r\n");
    /* Two fields: each loses its close. */
    assert_rewrite("GET / HTTP/1.1\r\nConnection: close\r\nConnection: te, Close\r\n\r\n",
                   "GET / HTTP/1.1\r\nConnection: te\r\n\r\n");
}

static void test_heads_without_close_are_unchanged(void **state)
{
    (void)state;
    const char *same[] = {
        "GET / HTTP/1.1\r\nHost: d\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection:\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: closed, enclose\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Connection: close\r\nProxy-Connection: close\r\n\r\n",
        "GET /connection:close HTTP/1.1\r\n\r\n",
        /* Folded onto the next line: left alone (the target sees close; no reuse, no harm). */
        "GET / HTTP/1.1\r\nConnection: keep-alive,\r\n close\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        assert_rewrite(same[i], same[i]);
}

/* ---- the driver ---- */

typedef struct run {
    exchange_t *x;
    char log[32]; /* event letters: H head, E end, S switch, O opaque */
    size_t nlog;
    size_t head_end; /* input offset where the head ended */
    size_t end;      /* input offset where the message ended */
} run_t;

static void note(run_t *r, char c)
{
    assert_true(r->nlog + 1 < sizeof(r->log));
    r->log[r->nlog++] = c;
    r->log[r->nlog] = '\0';
}

/* A request, step bytes at a time: its head is held until complete (the caller keeps what a
 * call did not take), its body passed on. Returns where the request ended (or stopped). */
static size_t run_request(run_t *r, const char *in, size_t step)
{
    size_t len = strlen(in), off = 0, avail = 0, parsed = 0;
    int in_body = 0;
    for (int calls = 0; calls < 100000; calls++) {
        size_t used = 0;
        if (!in_body) {
            avail = avail + step < len ? avail + step : len;
            enum exchange_event ev =
                exchange_request_head(r->x, (const uint8_t *)in + parsed, avail - parsed, &used);
            parsed += used;
            if (ev == EXCHANGE_MORE) {
                assert_int_equal(parsed, avail);
                if (avail == len) return off;
                continue;
            }
            if (ev == EXCHANGE_OPAQUE) {
                note(r, 'O');
                return off;
            }
            assert_int_equal(ev, EXCHANGE_HEAD);
            note(r, 'H');
            off = r->head_end = parsed;
            in_body = 1;
            if (!exchange_request_plain(r->x)) return off;
            continue;
        }
        /* The body call is made even with nothing new: a request without one ends here. */
        enum exchange_event ev =
            exchange_request_body(r->x, (const uint8_t *)in + off, avail - off, &used);
        assert_true(used <= avail - off);
        off += used;
        if (ev == EXCHANGE_END) {
            note(r, 'E');
            r->end = off;
            return off;
        }
        if (ev == EXCHANGE_OPAQUE) {
            note(r, 'O');
            return off;
        }
        assert_int_equal(off, avail);
        if (avail == len) return off;
        avail = avail + step < len ? avail + step : len;
    }
    fail_msg("no progress");
    return 0;
}

/* A response, step bytes at a time; eof: the target closes after the input. */
static size_t run_response(run_t *r, const char *in, size_t step, int eof)
{
    size_t len = strlen(in), off = 0;
    while (off < len) {
        size_t avail = step < len - off ? step : len - off;
        size_t used = 0;
        enum exchange_event ev = exchange_response(r->x, (const uint8_t *)in + off, avail, &used);
        assert_true(used <= avail);
        off += used;
        if (ev == EXCHANGE_MORE) {
            assert_int_equal(used, avail);
            continue;
        }
        note(r, ev == EXCHANGE_END ? 'E' : ev == EXCHANGE_SWITCH ? 'S' : 'O');
        r->end = off;
        return off;
    }
    if (eof) {
        enum exchange_event ev = exchange_response_eof(r->x);
        note(r, ev == EXCHANGE_END ? 'E' : ev == EXCHANGE_MORE ? 'M' : 'O');
        r->end = off;
    }
    return off;
}

static void run_init(run_t *r)
{
    memset(r, 0, sizeof(*r));
    r->x = exchange_new();
    assert_non_null(r->x);
}

static const size_t steps[] = {1, 2, 3, 7, 64, 100000};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* ---- requests ---- */

static void test_get_with_close_is_plain_closing_and_ends_at_its_head(void **state)
{
    (void)state;
    const char *in = "GET /a HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n";
    for (size_t i = 0; i < NSTEPS; i++) {
        run_t r;
        run_init(&r);
        run_request(&r, in, steps[i]);
        assert_string_equal(r.log, "HE");
        size_t head = strlen(in) - strlen("GET /b HTTP/1.1\r\n");
        assert_int_equal(r.head_end, head);
        assert_int_equal(r.end, head); /* the next request is not touched */
        assert_true(exchange_request_plain(r.x));
        assert_true(exchange_request_close(r.x));
        assert_false(exchange_request_has_body(r.x));
        exchange_free(r.x);
    }
}

static void test_keep_alive_and_http10_requests(void **state)
{
    (void)state;
    run_t r;
    run_init(&r);
    run_request(&r, "GET / HTTP/1.1\r\nHost: d\r\n\r\n", 100);
    assert_false(exchange_request_close(r.x));
    exchange_request_next(r.x);
    r.nlog = 0;
    run_request(&r, "GET / HTTP/1.0\r\n\r\n", 100);
    assert_string_equal(r.log, "HE");
    assert_true(exchange_request_close(r.x)); /* HTTP/1.0 without keep-alive */
    exchange_free(r.x);
}

static void test_chunked_body_ends_at_its_last_chunk_for_any_split(void **state)
{
    (void)state;
    const char *in = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
                     "GET /next HTTP/1.1\r\n\r\n";
    size_t want_end = strlen(in) - strlen("GET /next HTTP/1.1\r\n\r\n");
    for (size_t i = 0; i < NSTEPS; i++) {
        run_t r;
        run_init(&r);
        run_request(&r, in, steps[i]);
        assert_string_equal(r.log, "HE");
        assert_true(exchange_request_has_body(r.x));
        assert_int_equal(r.end, want_end);
        exchange_free(r.x);
    }
}

static void test_sized_body_ends_at_its_length(void **state)
{
    (void)state;
    const char *in = "PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789GET";
    for (size_t i = 0; i < NSTEPS; i++) {
        run_t r;
        run_init(&r);
        run_request(&r, in, steps[i]);
        assert_string_equal(r.log, "HE");
        assert_int_equal(r.end, strlen(in) - 3);
        exchange_free(r.x);
    }
}

static void test_upgrade_and_connect_are_not_plain(void **state)
{
    (void)state;
    const char *ins[] = {
        "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        run_t r;
        run_init(&r);
        run_request(&r, ins[i], 5);
        assert_string_equal(r.log, "H");
        assert_false(exchange_request_plain(r.x));
        exchange_free(r.x);
    }
    /* Upgrade without Connection: upgrade is only a header (RFC 9110 §7.8). */
    run_t r;
    run_init(&r);
    run_request(&r, "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 5);
    assert_true(exchange_request_plain(r.x));
    exchange_free(r.x);
}

static void test_what_is_not_an_http1_request_is_opaque(void **state)
{
    (void)state;
    const char *ins[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "SSH-2.0-OpenSSH_9.2\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
        run_t r;
        run_init(&r);
        run_request(&r, ins[i], 1);
        assert_string_equal(r.log, "O");
        exchange_free(r.x);
    }
}

static void test_a_head_over_the_limit_is_opaque(void **state)
{
    (void)state;
    size_t n = EXCHANGE_MAX_HEAD + 2048;
    char *in = malloc(n + 1);
    assert_non_null(in);
    memcpy(in, "GET / HTTP/1.1\r\nX-Big: ", 23);
    memset(in + 23, 'a', n - 23);
    in[n] = '\0';
    run_t r;
    run_init(&r);
    size_t off = run_request(&r, in, 4096);
    assert_string_equal(r.log, "O");
    assert_int_equal(off, 0);
    exchange_free(r.x);
    free(in);
}

/* ---- responses ---- */

#define ANY_END ((size_t)-1)

static void response_case(const char *req, const char *resp, int eof, const char *want_log,
                          size_t want_end, int reusable)
{
    for (size_t i = 0; i < NSTEPS; i++) {
        run_t r;
        run_init(&r);
        run_request(&r, req, 100000);
        exchange_response_begin(r.x);
        r.nlog = 0;
        r.log[0] = '\0';
        run_response(&r, resp, steps[i], eof);
        if (strcmp(r.log, want_log) != 0)
            fail_msg("step %zu: events %s, wanted %s", steps[i], r.log, want_log);
        if (want_end != ANY_END) assert_int_equal(r.end, want_end);
        assert_int_equal(exchange_response_reusable(r.x), reusable);
        exchange_free(r.x);
    }
}

static const char get[] = "GET / HTTP/1.1\r\n\r\n";

static void test_sized_response_ends_at_its_length_and_is_reusable(void **state)
{
    (void)state;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200";
    response_case(get, resp, 0, "E", strlen(resp) - 12, 1);
}

static void test_interim_responses_belong_to_the_exchange(void **state)
{
    (void)state;
    const char *resp = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                       "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    response_case(get, resp, 0, "E", strlen(resp), 1);
}

static void test_head_204_and_304_have_no_body(void **state)
{
    (void)state;
    const char *sized = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
    response_case("HEAD / HTTP/1.1\r\n\r\n", sized, 0, "E", strlen(sized), 1);
    /* A HEAD answered without a length is not delimited by the close either. */
    const char *bare = "HTTP/1.1 200 OK\r\n\r\n";
    response_case("HEAD / HTTP/1.1\r\n\r\n", bare, 0, "E", strlen(bare), 1);
    const char *no_content = "HTTP/1.1 204 No Content\r\n\r\n";
    response_case(get, no_content, 0, "E", strlen(no_content), 1);
    const char *not_modified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
    response_case(get, not_modified, 0, "E", strlen(not_modified), 1);
}

static void test_chunked_response_ends_at_its_last_chunk(void **state)
{
    (void)state;
    const char *resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n\r\n";
    response_case(get, resp, 0, "E", strlen(resp), 1);
}

static void test_close_delimited_or_closing_responses_are_not_reusable(void **state)
{
    (void)state;
    const char *by_eof = "HTTP/1.1 200 OK\r\n\r\nuntil the end";
    response_case(get, by_eof, 1, "E", strlen(by_eof), 0);
    const char *close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    response_case(get, close, 0, "E", strlen(close), 0);
    const char *http10 = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    response_case(get, http10, 0, "E", strlen(http10), 0);
}

static void test_switching_protocols_stops_at_the_101_head(void **state)
{
    (void)state;
    const char *head = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Upgrade: websocket\r\n\r\n";
    char resp[256];
    snprintf(resp, sizeof(resp), "%s\x81\x02hi", head);
    response_case(get, resp, 0, "S", strlen(head), 0);
    /* Whatever the headers say: a 101 ends HTTP on that connection. */
    const char *bare = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    response_case(get, bare, 0, "S", strlen(bare), 0);
}

static void test_a_response_cut_short_or_missing_or_garbled(void **state)
{
    (void)state;
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    response_case(get, cut, 1, "O", strlen(cut), 0);
    response_case(get, "", 1, "M", 0, 0);
    response_case(get, "HTTP/1.1 abc\r\n\r\n", 0, "O", ANY_END, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_alone_drops_the_connection_field),
        cmocka_unit_test(test_close_is_taken_out_and_other_options_stay),
        cmocka_unit_test(test_heads_without_close_are_unchanged),
        cmocka_unit_test(test_get_with_close_is_plain_closing_and_ends_at_its_head),
        cmocka_unit_test(test_keep_alive_and_http10_requests),
        cmocka_unit_test(test_chunked_body_ends_at_its_last_chunk_for_any_split),
        cmocka_unit_test(test_sized_body_ends_at_its_length),
        cmocka_unit_test(test_upgrade_and_connect_are_not_plain),
        cmocka_unit_test(test_what_is_not_an_http1_request_is_opaque),
        cmocka_unit_test(test_a_head_over_the_limit_is_opaque),
        cmocka_unit_test(test_sized_response_ends_at_its_length_and_is_reusable),
        cmocka_unit_test(test_interim_responses_belong_to_the_exchange),
        cmocka_unit_test(test_head_204_and_304_have_no_body),
        cmocka_unit_test(test_chunked_response_ends_at_its_last_chunk),
        cmocka_unit_test(test_close_delimited_or_closing_responses_are_not_reusable),
        cmocka_unit_test(test_switching_protocols_stops_at_the_101_head),
        cmocka_unit_test(test_a_response_cut_short_or_missing_or_garbled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
