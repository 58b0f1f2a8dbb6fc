/*
 * http_reader: request heads and bodies fed the way a socket delivers them.
 *
 * A driver feeds an input in pieces of a chosen size (one byte, a few bytes, all at once) and
 * records what the reader reported as a string of event letters (H head, B body, D done,
 * U upgrade, E error), the concatenated body and where each event left the input. A test then
 * reads as the exchange it pins down: "HBD" with body "hello" and nothing left over.
 * Arenas are heap blocks of exactly the advertised size, so ASan sees any write past them.
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

#define ARENA_CAP 4096

typedef struct drive {
    http_reader_t reader;
    http_head_t head;
    char *arena;
    size_t arena_cap;
    char log[64];
    size_t nlog;
    char body[4096];
    size_t body_len;
    size_t head_end; /* input offset when HEAD was reported */
    int status;      /* error status after E */
} drive_t;

static void drive_init(drive_t *d, size_t arena_cap)
{
    memset(d, 0, sizeof(*d));
    d->arena = malloc(arena_cap);
    assert_non_null(d->arena);
    d->arena_cap = arena_cap;
    http_reader_init(&d->reader);
    http_reader_begin(&d->reader, &d->head, d->arena, d->arena_cap);
}

/* Starts the next request on the same connection; the event log starts afresh too. */
static void drive_next(drive_t *d)
{
    http_reader_begin(&d->reader, &d->head, d->arena, d->arena_cap);
    d->nlog = 0;
    d->log[0] = '\0';
    d->body_len = 0;
    d->head_end = 0;
}

static void drive_free(drive_t *d)
{
    free(d->arena);
    d->arena = NULL;
}

static void drive_note(drive_t *d, char c)
{
    assert_true(d->nlog + 1 < sizeof(d->log));
    d->log[d->nlog++] = c;
    d->log[d->nlog] = '\0';
}

/*
 * Feeds in[0..len) as if it arrived step bytes at a time, until DONE, UPGRADE, ERROR or the
 * input runs out. Returns how much of the input the reader consumed.
 */
static size_t drive_feed(drive_t *d, const char *in, size_t len, size_t step)
{
    size_t off = 0;
    size_t avail = step < len ? step : len;
    /* Every feed either consumes a byte or reports an event; far more calls means a loop. */
    for (size_t calls = 0; calls < 4 * len + 64; calls++) {
        size_t used = 999999;
        slice_t body = SLICE_NULL;
        enum http_reader_event ev =
            http_reader_feed(&d->reader, in + off, avail - off, &used, &body);
        assert_true(used <= avail - off);
        off += used;
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            assert_int_equal(off, avail); /* "all input consumed" */
            if (avail == len) return off;
            avail = avail + step < len ? avail + step : len;
            break;
        case HTTP_READER_HEAD:
            drive_note(d, 'H');
            d->head_end = off;
            assert_true(http_reader_paused(&d->reader));
            break;
        case HTTP_READER_BODY:
            drive_note(d, 'B');
            assert_true(body.len > 0);
            /* A body slice is a view of the input just consumed, not a copy. */
            assert_true(body.ptr >= in && body.ptr + body.len <= in + off);
            assert_true(d->body_len + body.len <= sizeof(d->body));
            memcpy(d->body + d->body_len, body.ptr, body.len);
            d->body_len += body.len;
            break;
        case HTTP_READER_DONE:
            drive_note(d, 'D');
            return off;
        case HTTP_READER_UPGRADE:
            drive_note(d, 'U');
            return off;
        case HTTP_READER_ERROR:
            drive_note(d, 'E');
            d->status = http_reader_error_status(&d->reader);
            return off;
        }
    }
    fail_msg("the reader did not make progress");
    return 0;
}

static void assert_slice(slice_t s, const char *want)
{
    assert_non_null(s.ptr);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

/* Everything a head says, as one string, so two heads compare in one assertion. */
static void head_summary(const http_head_t *h, char *out, size_t size)
{
    int n = snprintf(out, size, "%.*s|%d|%.*s|%.*s|%.*s|1.%d|cl=%lld|ch=%u|ka=%u|up=%u|ec=%u|",
                     (int)h->method.len, h->method.ptr, h->method_id, (int)h->target.len,
                     h->target.ptr, (int)h->path.len, h->path.ptr, (int)h->query.len, h->query.ptr,
                     h->http_minor, (long long)h->content_length, h->chunked, h->keep_alive,
                     h->upgrade, h->expect_continue);
    for (unsigned i = 0; i < h->nheaders && n > 0 && (size_t)n < size; i++)
        n +=
            snprintf(out + n, size - (size_t)n, "%.*s=%.*s;", (int)h->headers[i].name.len,
                     h->headers[i].name.ptr, (int)h->headers[i].value.len, h->headers[i].value.ptr);
}

static const char get_request[] = "GET /items?id=7&sort=asc HTTP/1.1\r\n"
                                  "Host: example.test\r\n"
                                  "Accept: */*\r\n"
                                  "\r\n";

static void test_get_in_one_feed_reports_head_then_done(void **state)
{
    drive_t d;
    drive_init(&d, ARENA_CAP);
    size_t len = sizeof(get_request) - 1;
    assert_int_equal(drive_feed(&d, get_request, len, len), len);
    assert_string_equal(d.log, "HD");
    assert_int_equal(d.head_end, len);

    const http_head_t *h = &d.head;
    assert_slice(h->method, "GET");
    assert_int_equal(h->method_id, HTTP_GET);
    assert_slice(h->target, "/items?id=7&sort=asc");
    assert_slice(h->path, "/items");
    assert_slice(h->query, "id=7&sort=asc");
    assert_int_equal(h->http_minor, 1);
    assert_int_equal(h->content_length, -1);
    assert_int_equal(h->chunked, 0);
    assert_int_equal(h->keep_alive, 1);
    assert_int_equal(h->upgrade, 0);
    assert_int_equal(h->expect_continue, 0);
    assert_int_equal(h->nheaders, 2);
    assert_slice(h->headers[0].name, "Host");
    assert_slice(h->headers[0].value, "example.test");
    assert_slice(h->headers[1].name, "Accept");
    assert_slice(h->headers[1].value, "*/*");
    /* The head lives in the arena, not in the input buffer the caller will reuse. */
    assert_true(h->target.ptr >= d.arena && h->target.ptr < d.arena + d.arena_cap);
    drive_free(&d);
}

static void test_target_without_query_has_empty_query(void **state)
{
    static const char req[] = "GET /health HTTP/1.1\r\n\r\n";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_string_equal(d.log, "HD");
    assert_slice(d.head.path, "/health");
    assert_int_equal(d.head.query.len, 0);
    drive_free(&d);
}

static void test_get_fed_byte_by_byte_matches_one_feed(void **state)
{
    size_t len = sizeof(get_request) - 1;
    char whole[1024], split[1024];
    drive_t d;

    drive_init(&d, ARENA_CAP);
    drive_feed(&d, get_request, len, len);
    assert_string_equal(d.log, "HD");
    head_summary(&d.head, whole, sizeof(whole));
    drive_free(&d);

    for (size_t step = 1; step <= 7; step++) {
        drive_init(&d, ARENA_CAP);
        assert_int_equal(drive_feed(&d, get_request, len, step), len);
        assert_string_equal(d.log, "HD");
        assert_int_equal(d.head_end, len);
        head_summary(&d.head, split, sizeof(split));
        assert_string_equal(split, whole);
        drive_free(&d);
    }
}

static const char post_request[] = "POST /api/things HTTP/1.1\r\n"
                                   "Host: example.test\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Content-Length: 24\r\n"
                                   "\r\n"
                                   "{\"name\":\"widget\",\"n\":42}";

static void test_content_length_body_arrives_as_body_events(void **state)
{
    size_t len = sizeof(post_request) - 1;
    drive_t d;
    drive_init(&d, ARENA_CAP);
    assert_int_equal(drive_feed(&d, post_request, len, len), len);
    assert_string_equal(d.log, "HBD");
    assert_int_equal(d.head.content_length, 24);
    assert_int_equal(d.head.chunked, 0);
    assert_int_equal(d.body_len, 24);
    assert_memory_equal(d.body, "{\"name\":\"widget\",\"n\":42}", 24);
    drive_free(&d);
}

static void test_content_length_body_byte_by_byte_concatenates(void **state)
{
    size_t len = sizeof(post_request) - 1;
    drive_t d;
    drive_init(&d, ARENA_CAP);
    assert_int_equal(drive_feed(&d, post_request, len, 1), len);
    /* One BODY event per byte: H, 24 x B, D. */
    assert_int_equal(strlen(d.log), 26);
    assert_int_equal(d.log[0], 'H');
    assert_int_equal(strspn(d.log + 1, "B"), 24);
    assert_int_equal(d.log[25], 'D');
    assert_int_equal(d.head_end, len - 24);
    assert_int_equal(d.body_len, 24);
    assert_memory_equal(d.body, "{\"name\":\"widget\",\"n\":42}", 24);
    drive_free(&d);
}

static void test_chunked_body_is_dechunked_for_any_split(void **state)
{
    /* RFC 9112 §7.1, with a chunk extension the reader must skip. */
    static const char req[] = "POST /upload HTTP/1.1\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n"
                              "4\r\nWiki\r\n"
                              "6;name=value\r\npedia \r\n"
                              "E\r\nin \r\n\r\nchunks.\r\n"
                              "0\r\n"
                              "\r\n";
    static const char want[] = "Wikipedia in \r\n\r\nchunks.";
    size_t len = sizeof(req) - 1;
    static const size_t steps[] = {1, 2, 3, 5, 8, 13, 64, sizeof(req) - 1};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        drive_t d;
        drive_init(&d, ARENA_CAP);
        assert_int_equal(drive_feed(&d, req, len, steps[i]), len);
        assert_int_equal(d.log[0], 'H');
        assert_int_equal(d.log[strlen(d.log) - 1], 'D');
        assert_int_equal(d.head.chunked, 1);
        assert_int_equal(d.head.content_length, -1);
        assert_int_equal(d.body_len, sizeof(want) - 1);
        assert_memory_equal(d.body, want, d.body_len);
        drive_free(&d);
    }
}

static void test_bodiless_request_completes_after_head_without_more_input(void **state)
{
    static const char req[] = "DELETE /things/9 HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = sizeof(req) - 1;
    drive_t d;
    drive_init(&d, ARENA_CAP);
    size_t used = 0;
    slice_t body = SLICE_NULL;

    /* Nothing arrived yet: nothing to do, and not paused. */
    assert_int_equal(http_reader_feed(&d.reader, req, 0, &used, &body), HTTP_READER_NEED_MORE);
    assert_false(http_reader_paused(&d.reader));

    assert_int_equal(http_reader_feed(&d.reader, req, len, &used, &body), HTTP_READER_HEAD);
    assert_int_equal(used, len);
    assert_true(http_reader_paused(&d.reader));
    /* The socket has nothing more to give; the reader must still finish the request. */
    assert_int_equal(http_reader_feed(&d.reader, req + len, 0, &used, &body), HTTP_READER_DONE);
    assert_int_equal(used, 0);
    assert_false(http_reader_paused(&d.reader));
    /* DONE stays DONE until the next request begins. */
    assert_int_equal(http_reader_feed(&d.reader, req + len, 0, &used, &body), HTTP_READER_DONE);
    assert_int_equal(used, 0);
    drive_free(&d);
}

static void test_content_length_zero_completes_without_body_event(void **state)
{
    static const char req[] = "POST /ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_string_equal(d.log, "HD");
    assert_int_equal(d.head.content_length, 0);
    drive_free(&d);
}

static void test_pipelined_requests_are_read_one_after_the_other(void **state)
{
    static const char first[] = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    static const char second[] = "GET /b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    char both[256];
    size_t len1 = sizeof(first) - 1, len2 = sizeof(second) - 1;
    memcpy(both, first, len1);
    memcpy(both + len1, second, len2);

    for (size_t step = 1; step <= len1 + len2; step += (step < 8 ? 1 : 37)) {
        drive_t d;
        drive_init(&d, ARENA_CAP);
        size_t off = drive_feed(&d, both, len1 + len2, step);
        assert_int_equal(d.log[strlen(d.log) - 1], 'D');
        /* Never reads into the next request before the first is answered. */
        assert_int_equal(off, len1);
        assert_slice(d.head.path, "/a");
        assert_memory_equal(d.body, "abc", 3);

        drive_next(&d);
        assert_int_equal(drive_feed(&d, both + off, len1 + len2 - off, step), len2);
        assert_string_equal(d.log, "HD");
        assert_slice(d.head.method, "GET");
        assert_slice(d.head.path, "/b");
        assert_slice(d.head.query, "x=1");
        assert_int_equal(d.head.nheaders, 1);
        assert_int_equal(d.body_len, 0);
        drive_free(&d);
    }
}

static void test_head_over_arena_size_is_431(void **state)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET /%0200d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    for (size_t step = 1; step <= (size_t)n; step *= 3) {
        drive_t d;
        drive_init(&d, 128); /* the target alone is 201 bytes */
        drive_feed(&d, req, (size_t)n, step);
        assert_string_equal(d.log, "E");
        assert_int_equal(d.status, 431);
        drive_free(&d);
    }
}

static void test_header_value_over_arena_size_is_431(void **state)
{
    char req[8192];
    int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nCookie: %04000d\r\n\r\n", 0);
    drive_t d;
    drive_init(&d, 1024);
    drive_feed(&d, req, (size_t)n, 100);
    assert_string_equal(d.log, "E");
    assert_int_equal(d.status, 431);
    drive_free(&d);
}

static size_t many_headers(char *out, size_t size, unsigned count)
{
    size_t n = (size_t)snprintf(out, size, "GET / HTTP/1.1\r\n");
    for (unsigned i = 0; i < count; i++)
        n += (size_t)snprintf(out + n, size - n, "X-H%u: v%u\r\n", i, i);
    n += (size_t)snprintf(out + n, size - n, "\r\n");
    assert_true(n < size);
    return n;
}

static void test_headers_up_to_the_limit_are_kept(void **state)
{
    char req[4096];
    size_t n = many_headers(req, sizeof(req), HTTP_MAX_HEADERS);
    drive_t d;
    drive_init(&d, 16384);
    drive_feed(&d, req, n, n);
    assert_string_equal(d.log, "HD");
    assert_int_equal(d.head.nheaders, HTTP_MAX_HEADERS);
    assert_slice(d.head.headers[HTTP_MAX_HEADERS - 1].name, "X-H63");
    assert_slice(d.head.headers[HTTP_MAX_HEADERS - 1].value, "v63");
    drive_free(&d);
}

static void test_more_than_max_headers_is_431(void **state)
{
    char req[4096];
    size_t n = many_headers(req, sizeof(req), HTTP_MAX_HEADERS + 1);
    drive_t d;
    drive_init(&d, 16384); /* the bytes fit: the count alone is over */
    drive_feed(&d, req, n, n);
    assert_string_equal(d.log, "E");
    assert_int_equal(d.status, 431);
    assert_int_equal(d.head.nheaders, HTTP_MAX_HEADERS);
    drive_free(&d);
}

/*
 * llhttp skips some whitespace without handing it to a callback, so it never reaches the arena;
 * the reader must still refuse a head that is mostly whitespace instead of reading forever.
 */
static void test_whitespace_in_head_is_bounded(void **state)
{
    static const char *const shapes[][2] = {
        {"", "GET / HTTP/1.1\r\n\r\n"},             /* empty lines before the request */
        {"GET / HTTP/1.1\r\nX-Pad:", "v\r\n\r\n"},  /* whitespace before a value */
        {"GET / HTTP/1.1\r\nX-Pad: v", "\r\n\r\n"}, /* whitespace after a value */
        {"GET /", "HTTP/1.1\r\n\r\n"},              /* spaces after the target */
    };
    const size_t pad = 1 << 20;
    char *in = malloc(pad + 64);
    assert_non_null(in);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        size_t pre = strlen(shapes[i][0]), post = strlen(shapes[i][1]);
        memcpy(in, shapes[i][0], pre);
        if (i == 0) {
            for (size_t k = 0; k < pad; k += 2)
                memcpy(in + pre + k, "\r\n", 2);
        } else {
            memset(in + pre, ' ', pad);
        }
        memcpy(in + pre + pad, shapes[i][1], post);
        size_t len = pre + pad + post;

        static const size_t steps[] = {4096, 1 << 20};
        for (size_t s = 0; s < 2; s++) {
            drive_t d;
            drive_init(&d, ARENA_CAP);
            size_t off = drive_feed(&d, in, len, steps[s]);
            assert_string_equal(d.log, "E");
            assert_true(d.status == 431 || d.status == 400);
            /* Stopped within one read of the bound, not at the end of the megabyte. */
            assert_true(off <= ARENA_CAP + 1024 + steps[s]);
            drive_free(&d);
        }
    }
    free(in);
}

static void test_garbage_is_400(void **state)
{
    static const char *const inputs[] = {
        "\x01\x02\x03garbage\r\n\r\n",
        "HELLO WORLD\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rz\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET / FTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        drive_t d;
        drive_init(&d, ARENA_CAP);
        drive_feed(&d, inputs[i], strlen(inputs[i]), strlen(inputs[i]));
        assert_int_equal(d.log[strlen(d.log) - 1], 'E');
        assert_int_equal(d.status, 400);
        drive_free(&d);
    }
}

static void test_error_is_sticky(void **state)
{
    static const char bad[] = "\x01garbage\r\n\r\n";
    static const char good[] = "GET / HTTP/1.1\r\n\r\n";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, bad, sizeof(bad) - 1, sizeof(bad) - 1);
    assert_string_equal(d.log, "E");
    size_t used = 99;
    slice_t body = SLICE_NULL;
    assert_int_equal(http_reader_feed(&d.reader, good, sizeof(good) - 1, &used, &body),
                     HTTP_READER_ERROR);
    assert_int_equal(used, 0);
    drive_free(&d);
}

static void test_http2_request_line_is_an_error(void **state)
{
    static const char *const inputs[] = {
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", /* the HTTP/2 connection preface */
    };
    for (size_t i = 0; i < 2; i++) {
        drive_t d;
        drive_init(&d, ARENA_CAP);
        drive_feed(&d, inputs[i], strlen(inputs[i]), strlen(inputs[i]));
        assert_string_equal(d.log, "E");
        assert_true(d.status >= 400 && d.status <= 505);
        drive_free(&d);
    }
}

static void test_content_length_with_transfer_encoding_is_refused(void **state)
{
    /* RFC 9112 §6.1: the classic request-smuggling shape. */
    static const char *const inputs[] = {
        "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        drive_t d;
        drive_init(&d, ARENA_CAP);
        drive_feed(&d, inputs[i], strlen(inputs[i]), strlen(inputs[i]));
        assert_string_equal(d.log, "E");
        assert_int_equal(d.status, 400);
        drive_free(&d);
    }
}

static void test_conflicting_content_lengths_are_400(void **state)
{
    static const char req[] =
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_string_equal(d.log, "E");
    assert_int_equal(d.status, 400);
    drive_free(&d);
}

static void test_unknown_transfer_coding_is_501(void **state)
{
    static const char req[] = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxxxx";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_int_equal(d.log[strlen(d.log) - 1], 'E');
    assert_int_equal(d.status, 501);
    assert_int_equal(d.body_len, 0);
    drive_free(&d);
}

static void test_expect_100_continue_sets_flag(void **state)
{
    static const char req[] =
        "PUT /blob HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_string_equal(d.log, "HBD");
    assert_int_equal(d.head.expect_continue, 1);
    assert_memory_equal(d.body, "ok", 2);
    drive_free(&d);
}

static void test_unknown_expectation_is_417(void **state)
{
    static const char req[] = "PUT /blob HTTP/1.1\r\nExpect: the-unexpected\r\n\r\n";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_string_equal(d.log, "E");
    assert_int_equal(d.status, 417);
    drive_free(&d);
}

static void test_empty_header_value_keeps_count_and_names(void **state)
{
    static const char *const inputs[] = {
        "GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\nX-Last:\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Empty: \r\nHost: h\r\nX-Last:  \r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        for (size_t step = 1; step <= strlen(inputs[i]); step += strlen(inputs[i]) - 1) {
            drive_t d;
            drive_init(&d, ARENA_CAP);
            drive_feed(&d, inputs[i], strlen(inputs[i]), step);
            assert_string_equal(d.log, "HD");
            const http_head_t *h = &d.head;
            assert_int_equal(h->nheaders, 3);
            assert_slice(h->headers[0].name, "X-Empty");
            assert_int_equal(h->headers[0].value.len, 0);
            assert_slice(h->headers[1].name, "Host");
            assert_slice(h->headers[1].value, "h");
            assert_slice(h->headers[2].name, "X-Last");
            assert_int_equal(h->headers[2].value.len, 0);
            /* Present but empty is not the same as absent. */
            assert_non_null(http_head_header(h, "x-empty").ptr);
            assert_null(http_head_header(h, "x-absent").ptr);
            drive_free(&d);
        }
    }
}

/*
 * The bytes after an upgrade request's head belong to the new protocol: the reader must stop
 * at the end of the head, report UPGRADE and never hand them out as body or parse them.
 */
static void test_upgrade_leaves_following_bytes_to_the_new_protocol(void **state)
{
    static const char head[] = "GET /ws HTTP/1.1\r\n"
                               "Host: h\r\n"
                               "Connection: keep-alive, Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "\r\n";
    static const char frame[] = "\x81\x05hello";
    char in[256];
    size_t hlen = sizeof(head) - 1, len = hlen + sizeof(frame) - 1;
    memcpy(in, head, hlen);
    memcpy(in + hlen, frame, sizeof(frame) - 1);

    drive_t d;
    drive_init(&d, ARENA_CAP);
    size_t off = drive_feed(&d, in, len, len);
    assert_int_equal(d.log[0], 'H');
    assert_int_equal(d.head_end, hlen);
    assert_int_equal(d.head.upgrade, 1);
    assert_slice(http_head_header(&d.head, "upgrade"), "websocket");

    /* Drive on as a server would (a DONE starts the next request) until the reader says the
     * rest is not HTTP. */
    for (int i = 0; i < 3 && d.log[strlen(d.log) - 1] == 'D'; i++) {
        drive_next(&d);
        off += drive_feed(&d, in + off, len - off, len - off);
    }
    assert_int_equal(d.log[strlen(d.log) - 1], 'U');
    assert_int_equal(off, hlen);
    assert_int_equal(d.body_len, 0);

    /* And it stays there, consuming nothing. */
    size_t used = 99;
    slice_t body = SLICE_NULL;
    assert_int_equal(http_reader_feed(&d.reader, in + off, len - off, &used, &body),
                     HTTP_READER_UPGRADE);
    assert_int_equal(used, 0);
    drive_free(&d);
}

static void test_keep_alive_follows_version_and_connection(void **state)
{
    static const struct {
        const char *req;
        int minor, keep_alive;
    } cases[] = {
        {"GET / HTTP/1.0\r\nHost: h\r\n\r\n", 0, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 1},
        {"GET / HTTP/1.1\r\n\r\n", 1, 1},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        drive_t d;
        drive_init(&d, ARENA_CAP);
        drive_feed(&d, cases[i].req, strlen(cases[i].req), strlen(cases[i].req));
        assert_string_equal(d.log, "HD");
        assert_int_equal(d.head.http_minor, cases[i].minor);
        assert_int_equal(d.head.keep_alive, cases[i].keep_alive);
        drive_free(&d);
    }
}

static void test_header_lookup_is_case_insensitive(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "content-TYPE: text/plain\r\n"
                              "X-Dup: first\r\n"
                              "x-dup: second\r\n"
                              "\r\n";
    drive_t d;
    drive_init(&d, ARENA_CAP);
    drive_feed(&d, req, sizeof(req) - 1, sizeof(req) - 1);
    assert_string_equal(d.log, "HD");
    assert_slice(http_head_header(&d.head, "Content-Type"), "text/plain");
    assert_slice(http_head_header(&d.head, "CONTENT-TYPE"), "text/plain");
    assert_slice(http_head_header(&d.head, "content-type"), "text/plain");
    assert_slice(http_head_header(&d.head, "x-dup"), "first");
    assert_null(http_head_header(&d.head, "content-typ").ptr);
    assert_null(http_head_header(&d.head, "content-type-x").ptr);
    drive_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_in_one_feed_reports_head_then_done),
        cmocka_unit_test(test_target_without_query_has_empty_query),
        cmocka_unit_test(test_get_fed_byte_by_byte_matches_one_feed),
        cmocka_unit_test(test_content_length_body_arrives_as_body_events),
        cmocka_unit_test(test_content_length_body_byte_by_byte_concatenates),
        cmocka_unit_test(test_chunked_body_is_dechunked_for_any_split),
        cmocka_unit_test(test_bodiless_request_completes_after_head_without_more_input),
        cmocka_unit_test(test_content_length_zero_completes_without_body_event),
        cmocka_unit_test(test_pipelined_requests_are_read_one_after_the_other),
        cmocka_unit_test(test_head_over_arena_size_is_431),
        cmocka_unit_test(test_header_value_over_arena_size_is_431),
        cmocka_unit_test(test_headers_up_to_the_limit_are_kept),
        cmocka_unit_test(test_more_than_max_headers_is_431),
        cmocka_unit_test(test_whitespace_in_head_is_bounded),
        cmocka_unit_test(test_garbage_is_400),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_http2_request_line_is_an_error),
        cmocka_unit_test(test_content_length_with_transfer_encoding_is_refused),
        cmocka_unit_test(test_conflicting_content_lengths_are_400),
        cmocka_unit_test(test_unknown_transfer_coding_is_501),
        cmocka_unit_test(test_expect_100_continue_sets_flag),
        cmocka_unit_test(test_unknown_expectation_is_417),
        cmocka_unit_test(test_empty_header_value_keeps_count_and_names),
        cmocka_unit_test(test_upgrade_leaves_following_bytes_to_the_new_protocol),
        cmocka_unit_test(test_keep_alive_follows_version_and_connection),
        cmocka_unit_test(test_header_lookup_is_case_insensitive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
