/*
 * libFuzzer target for the HTTP request path: common/http_reader.c (over llhttp), then
 * common/http_router.c and the header lookups a server does on every head, then jansson on
 * small bodies as common/http_json.c does.
 *
 * Input layout: byte 0 seeds a small PRNG that draws the size of every read (1 byte to the
 * whole input, depending on its low bits), so one input exercises the reader's state at every
 * split point a socket could produce; bit 3 chooses between the rest being the raw byte stream
 * of one connection or a template expanded into a well-formed request (build_request); the
 * high bits pick the template's method. Requests are read one after the other, as pipelined
 * requests are, until the input runs out, the reader fails, or an upgrade hands the rest to
 * another protocol.
 *
 * The arena is a heap block of exactly 16 KiB so ASan reports a byte written past it, and every
 * slice the reader or router hands out is checked to point into the arena, the path or the
 * current read: a slice into memory the caller does not expect is a use-after-free later.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/http_reader.h"
#include "common/http_router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

#define ARENA_SIZE (16 * 1024)
#define BODY_CAP (1024 * 1024)
#define JSON_MAX 4096 /* bigger bodies only cost time: the parser's paths are the same */

/*
 * A table shaped like the daemons': literals, params, rest, "*", trailing slash, root, and the
 * two routes with as many parameters as http_params_t holds (HTTP_MAX_PARAMS, rest included).
 */
static const char *const routes[][2] = {
    {"GET", "/"},
    {"GET", "/healthz"},
    {"GET", "/api/agents/me"},
    {"GET", "/api/agents/{id}"},
    {"DELETE", "/api/agents/{id}"},
    {"POST", "/api/agents/{id}/tokens/"},
    {"PUT", "/api/orgs/{org}/agents/{id}/tags/{tag}"},
    {"GET", "/static/{path...}"},
    {"*", "/tunnel/{agent}/{rest...}"},
    {"POST", "/a/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"},
    {"GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{rest...}"},
};

static http_router_t *router;

static void router_setup(void)
{
    if (router != NULL) return;
    router = http_router_new(); /* kept for the process: reachable, so not a leak */
    CHECK(router != NULL);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        CHECK(http_router_add(router, routes[i][0], routes[i][1], routes[i][1]) == 0);
}

static uint32_t prng_next(uint32_t *s)
{
    /* xorshift32: tiny, and deterministic per input so crashes reproduce. */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static int inside(slice_t s, const char *base, size_t len)
{
    if (s.len == 0) return s.ptr == NULL || (s.ptr >= base && s.ptr <= base + len);
    return s.ptr >= base && s.ptr <= base + len && s.len <= (size_t)(base + len - s.ptr);
}

static void check_head(const http_head_t *h, const char *arena)
{
    CHECK(h->nheaders <= HTTP_MAX_HEADERS);
    CHECK(inside(h->method, arena, ARENA_SIZE));
    CHECK(inside(h->target, arena, ARENA_SIZE));
    CHECK(inside(h->path, h->target.ptr, h->target.len));
    CHECK(inside(h->query, h->target.ptr, h->target.len));
    CHECK(h->path.len + (h->query.len ? h->query.len + 1 : 0) <= h->target.len);
    for (unsigned i = 0; i < h->nheaders; i++) {
        CHECK(inside(h->headers[i].name, arena, ARENA_SIZE));
        CHECK(inside(h->headers[i].value, arena, ARENA_SIZE));
    }
    CHECK(h->content_length >= -1);
    CHECK(!(h->chunked && h->content_length >= 0)); /* both framings at once is smuggling */

    static const char *const names[] = {
        "host",    "content-length", "transfer-encoding", "expect",       "connection",
        "upgrade", "cookie",         "authorization",     "content-type", "x-nope"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        slice_t v = http_head_header(h, names[i]);
        CHECK(inside(v, arena, ARENA_SIZE));
        (void)slice_has_token(v, "upgrade");
        (void)slice_has_token(v, "keep-alive");
    }
    unsigned long long cl;
    slice_t clv = http_head_header(h, "content-length");
    if (slice_to_u64(clv, 1ULL << 53, &cl) == 0 && h->content_length >= 0)
        CHECK((unsigned long long)h->content_length == cl);

    const void *route = NULL;
    http_params_t params;
    char allow[64];
    memset(&params, 0, sizeof(params));
    enum http_route_result rr =
        http_router_match(router, h->method, h->path, &route, &params, allow, sizeof(allow));
    switch (rr) {
    case HTTP_ROUTE_FOUND:
        CHECK(route != NULL);
        CHECK(params.n <= HTTP_MAX_PARAMS);
        for (unsigned i = 0; i < params.n; i++)
            CHECK(inside(params.values[i], h->path.ptr, h->path.len));
        /* {id} is one non-empty segment; a rest parameter may be empty. */
        CHECK(http_params_get(&params, "id").ptr == NULL || http_params_get(&params, "id").len);
        break;
    case HTTP_ROUTE_BAD_METHOD:
        CHECK(memchr(allow, '\0', sizeof(allow)) != NULL);
        CHECK(allow[0] != '\0');
        break;
    case HTTP_ROUTE_NOT_FOUND:
        break;
    default:
        abort();
    }
}

static void parse_json(const buf_t *body)
{
    if (body->len == 0 || body->len > JSON_MAX) return;
    json_error_t err;
    json_t *doc = json_loadb(body->data, body->len, JSON_REJECT_DUPLICATES, &err);
    json_decref(doc);
}

/*
 * Templated mode: a byte stream that is almost always a well-formed head, so the fuzzer spends
 * its time on bodies, routes and pipelining rather than on finding "HTTP/1.1\r\n\r\n". The input
 * is read as lines: the first is the request-target, the next ones headers up to an empty line,
 * the rest the body (which may hold further pipelined requests). A header line whose first byte
 * is 1..8 stands for a header the reader treats specially (see canned[]).
 */
static const char *const methods[16] = {"GET",     "POST",    "PUT",      "DELETE", "PATCH", "HEAD",
                                        "OPTIONS", "CONNECT", "GET",      "POST",   "TRACE", "PUT",
                                        "get",     "PRI",     "M-SEARCH", "POST"};

enum { CANNED_CL_BODY = 1, CANNED_CL_BYTE = 2, CANNED_CHUNKED = 3 };

static const char *const canned[9] = {
    NULL,
    NULL, /* Content-Length: the body's length */
    NULL, /* Content-Length: the line's next byte */
    "Transfer-Encoding: chunked",
    "Connection: Upgrade\r\nUpgrade: websocket",
    "Expect: 100-continue",
    "Connection: close",
    "Host: example.test",
    "Content-Type: application/json",
};

static char *build_request(const uint8_t *data, size_t size, uint8_t sel, uint32_t *seed,
                           size_t *out_len)
{
    const char *p = (const char *)data, *end = p + size;
    buf_t b = BUF_INIT(0);
    int chunked = 0, cl_body = 0;

    /* The body starts after the first empty line (past the target line). */
    const char *body = end;
    const char *nl = memchr(p, '\n', size);
    for (const char *q = nl; q != NULL && q + 1 <= end;) {
        const char *next = memchr(q + 1, '\n', (size_t)(end - q - 1));
        if (next == q + 1) {
            body = next + 1;
            break;
        }
        q = next;
    }
    const char *head_end = body == end ? end : body - 1;

    const char *version = prng_next(seed) % 8 == 0 ? "HTTP/1.0" : "HTTP/1.1";
    size_t tlen = nl ? (size_t)(nl - p) : size;
    if (tlen > (size_t)(head_end - p)) tlen = (size_t)(head_end - p);
    CHECK(buf_printf(&b, "%s ", methods[sel >> 4]) == 0);
    CHECK(buf_append(&b, tlen ? p : "/", tlen ? tlen : 1) == 0);
    CHECK(buf_printf(&b, " %s\r\n", version) == 0);

    for (const char *line = nl ? nl + 1 : end; line < head_end;) {
        const char *eol = memchr(line, '\n', (size_t)(head_end - line));
        size_t llen = eol ? (size_t)(eol - line) : (size_t)(head_end - line);
        unsigned char c = llen ? (unsigned char)line[0] : 0;
        if (c == CANNED_CL_BODY)
            cl_body = 1;
        else if (c == CANNED_CL_BYTE)
            CHECK(buf_printf(&b, "Content-Length: %u\r\n",
                             llen > 1 ? (unsigned char)line[1] : 0u) == 0);
        else if (c >= 3 && c <= 8)
            CHECK(buf_printf(&b, "%s\r\n", canned[c]) == 0);
        else
            CHECK(buf_append(&b, line, llen) == 0 && buf_append_str(&b, "\r\n") == 0);
        chunked |= c == CANNED_CHUNKED;
        line += llen + 1;
    }

    size_t blen = (size_t)(end - body);
    if (cl_body) CHECK(buf_printf(&b, "Content-Length: %zu\r\n", blen) == 0);
    CHECK(buf_append_str(&b, "\r\n") == 0);
    if (chunked) {
        for (size_t off = 0; off < blen;) {
            size_t n = 1 + prng_next(seed) % 64;
            n = n < blen - off ? n : blen - off;
            CHECK(buf_printf(&b, "%zx\r\n", n) == 0 && buf_append(&b, body + off, n) == 0 &&
                  buf_append_str(&b, "\r\n") == 0);
            off += n;
        }
        CHECK(buf_append_str(&b, "0\r\n\r\n") == 0);
    } else if (blen > 0) {
        CHECK(buf_append(&b, body, blen) == 0);
    }

    /* An exactly-sized copy, so a read past the stream is an ASan report. */
    char *stream = malloc(b.len ? b.len : 1);
    CHECK(stream != NULL);
    memcpy(stream, b.data, b.len);
    *out_len = b.len;
    buf_free(&b);
    return stream;
}

/* Reads one connection's bytes, request after request, as a server would. */
static void read_stream(const char *in, size_t len, size_t read_max, uint32_t *seed)
{
    char *arena = malloc(ARENA_SIZE);
    CHECK(arena != NULL);
    http_reader_t reader;
    http_head_t head;
    buf_t body = BUF_INIT(BODY_CAP);
    http_reader_init(&reader);
    http_reader_begin(&reader, &head, arena, ARENA_SIZE);

    size_t off = 0, avail = 0;
    int in_head = 1, stop = 0;
    /* Every call consumes input or reports an event (at most a few per byte): more is a hang. */
    size_t budget = 8 * len + 64;
    while (!stop) {
        CHECK(budget-- > 0);
        size_t used = (size_t)-1;
        slice_t piece = SLICE_NULL;
        enum http_reader_event ev = http_reader_feed(&reader, in + off, avail - off, &used, &piece);
        CHECK(used <= avail - off);
        off += used;
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            CHECK(off == avail);
            if (avail == len) {
                stop = 1;
                break;
            }
            {
                size_t n = read_max == SIZE_MAX ? len : 1 + prng_next(seed) % read_max;
                avail = n < len - avail ? avail + n : len;
            }
            break;
        case HTTP_READER_HEAD:
            CHECK(in_head);
            CHECK(http_reader_paused(&reader));
            in_head = 0;
            check_head(&head, arena);
            break;
        case HTTP_READER_BODY:
            CHECK(!in_head);
            CHECK(piece.len > 0);
            CHECK(piece.ptr >= in && piece.ptr + piece.len <= in + off);
            if (buf_append(&body, piece.ptr, piece.len) < 0)
                stop = 1; /* a server answers 413 here and closes */
            break;
        case HTTP_READER_DONE:
            CHECK(!in_head);
            /* An upgrade (CONNECT included) ends at its head: bytes after it are not body. */
            CHECK(head.upgrade || head.content_length < 0 ||
                  (uint64_t)head.content_length == body.len);
            parse_json(&body);
            buf_reset(&body);
            http_reader_begin(&reader, &head, arena, ARENA_SIZE);
            in_head = 1;
            break;
        case HTTP_READER_UPGRADE:
            stop = 1;
            break;
        case HTTP_READER_ERROR: {
            int st = http_reader_error_status(&reader);
            CHECK(st == 400 || st == 413 || st == 417 || st == 431 || st == 501 || st == 505);
            stop = 1;
            break;
        }
        default:
            abort();
        }
    }
    buf_free(&body);
    free(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    router_setup();
    uint8_t sel = data[0];
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)sel * 0x01010101u);
    /* Low bits pick how reads are sized: byte by byte up to everything at once. */
    static const size_t max_read[] = {1, 2, 3, 8, 64, 512, 4096, SIZE_MAX};
    size_t read_max = max_read[sel & 7];
    if (sel & 8) {
        size_t len = 0;
        char *stream = build_request(data + 1, size - 1, sel, &seed, &len);
        read_stream(stream, len, read_max, &seed);
        free(stream);
    } else {
        read_stream((const char *)data + 1, size - 1, read_max, &seed);
    }
    return 0;
}
