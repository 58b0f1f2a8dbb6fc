/*
 * libFuzzer target for what http_client reads from a server: common/http_reader.c in response
 * mode (status line, headers, Content-Length / chunked / close-delimited bodies, 1xx interim
 * answers, 101 upgrades, HEAD answers) and http_url_parse() on the first line of the input.
 *
 * Input layout: byte 0 seeds the read sizes (as in fuzz_http_request.c) and bit 7 says the
 * request was HEAD; the rest up to the first newline is a URL for http_url_parse, and what
 * follows is the server's byte stream, read response after response the way http_client does
 * (a 1xx begins the next message on the same parser; DONE begins a fresh one), until it ends,
 * fails or upgrades; then the end of input is reported as the server closing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_client.h"
#include "common/http_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

#define ARENA_SIZE 4096

static int inside(slice_t s, const char *base, size_t len)
{
    return s.ptr == NULL || (s.ptr >= base && s.ptr + s.len <= base + len);
}

static void fuzz_url(const char *p, size_t len)
{
    http_url_t u;
    const char *why = NULL;
    if (http_url_parse(p, len, &u, &why) == 0) {
        CHECK(u.port >= 1 && u.port <= 65535);
        CHECK(u.host[0] != '\0' && strlen(u.host) <= HTTP_URL_MAX_HOST);
        CHECK(inside(u.authority, p, len));
        CHECK(u.path.len > 0 && u.path.ptr[0] == '/');
    } else {
        CHECK(why != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t seed = data[0] | 1u;
    int head_request = (data[0] & 0x80) != 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    const char *nl = memchr(in, '\n', len);
    size_t url_len = nl ? (size_t)(nl - in) : len;
    fuzz_url(in, url_len);
    if (nl == NULL)
        return 0;
    in = nl + 1;
    len -= url_len + 1;

    char *arena = malloc(ARENA_SIZE);
    http_head_t *head = malloc(sizeof(*head));
    http_reader_t reader;
    http_reader_init_response(&reader);
    http_reader_begin(&reader, head, arena, ARENA_SIZE);
    if (head_request)
        http_reader_expect_no_body(&reader);

    size_t off = 0;
    int done = 0;
    int no_body_now = head_request; /* the first final answer is the HEAD's */
    while (!done) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = (seed >> 16) % 64 + 1;
        if (seed & 0x100)
            chunk = len - off;
        if (chunk > len - off)
            chunk = len - off;
        const char *p = in + off;
        size_t used = 0;
        slice_t body = SLICE_NULL;
        enum http_reader_event ev = http_reader_feed(&reader, p, chunk, &used, &body);
        CHECK(used <= chunk);
        off += used;
        switch (ev) {
        case HTTP_READER_NEED_MORE:
            if (off == len) {
                ev = http_reader_finish(&reader); /* the server closed */
                CHECK(ev == HTTP_READER_DONE || ev == HTTP_READER_NEED_MORE ||
                      ev == HTTP_READER_ERROR);
                done = 1;
            }
            break;
        case HTTP_READER_HEAD:
            CHECK(head->status >= 100 && head->status <= 999);
            for (unsigned i = 0; i < head->nheaders; i++) {
                CHECK(inside(head->headers[i].name, arena, ARENA_SIZE));
                CHECK(inside(head->headers[i].value, arena, ARENA_SIZE));
            }
            break;
        case HTTP_READER_BODY:
            CHECK(body.len > 0 && inside(body, p, chunk));
            CHECK(!no_body_now || head->status < 200); /* a HEAD's answer carries no body */
            break;
        case HTTP_READER_DONE:
            if (head->status < 200) {
                int no_body = reader.no_body;
                http_reader_begin(&reader, head, arena, ARENA_SIZE);
                if (no_body)
                    http_reader_expect_no_body(&reader);
            } else {
                no_body_now = 0;
                http_reader_init_response(&reader);
                http_reader_begin(&reader, head, arena, ARENA_SIZE);
            }
            break;
        case HTTP_READER_UPGRADE:
        case HTTP_READER_ERROR:
            done = 1;
            break;
        }
    }
    free(head);
    free(arena);
    return 0;
}
