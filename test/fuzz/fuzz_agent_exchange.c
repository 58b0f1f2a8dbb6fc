/*
 * libFuzzer target for the edge agent's HTTP view of a stream (test/edge-agent/exchange.c):
 * request heads and bodies as a proxy sends them, the head rewrite that takes "close" out of
 * Connection, and responses as a target sends them, read the way stream.c reads them.
 *
 * Input layout: byte 0 seeds the read sizes; the rest up to the first NUL byte is the
 * stream's input (requests, one after the other, while they are plain), what follows it is the
 * target's (responses); the end of input is the target closing.
 * Checked: every call's count stays within what it was given, a rewritten head is never longer
 * than the head and still ends with its empty line, and nothing loops.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test/edge-agent/exchange.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static uint32_t next_step(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return 1 + (*seed >> 16) % 97;
}

/* One request from in (held until its head is whole, as stream.c does); the bytes it took, or
 * 0 when the stream would turn opaque or the input ends first. */
static size_t one_request(exchange_t *x, const uint8_t *in, size_t len, uint32_t *seed)
{
    size_t avail = 0, parsed = 0;
    for (;;) {
        avail += next_step(seed);
        if (avail > len) avail = len;
        size_t used = 0;
        enum exchange_event ev = exchange_request_head(x, in + parsed, avail - parsed, &used);
        CHECK(used <= avail - parsed);
        parsed += used;
        if (ev == EXCHANGE_OPAQUE) return 0;
        if (ev == EXCHANGE_MORE) {
            CHECK(parsed == avail);
            if (avail == len) return 0;
            continue;
        }
        CHECK(ev == EXCHANGE_HEAD);
        break;
    }
    uint8_t *out = malloc(parsed);
    CHECK(out != NULL);
    size_t n = exchange_rewrite_head(in, parsed, out);
    CHECK(n <= parsed);
    CHECK(n >= 2 && out[n - 1] == '\n');
    free(out);
    if (!exchange_request_plain(x)) return 0;
    size_t off = parsed;
    for (int calls = 0;; calls++) {
        CHECK(calls < 1000000);
        size_t used = 0;
        enum exchange_event ev = exchange_request_body(x, in + off, avail - off, &used);
        CHECK(used <= avail - off);
        off += used;
        if (ev == EXCHANGE_END) return off;
        if (ev == EXCHANGE_OPAQUE) return 0;
        CHECK(off == avail);
        if (avail == len) return 0;
        avail += next_step(seed);
        if (avail > len) avail = len;
    }
}

static void responses(exchange_t *x, const uint8_t *in, size_t len, uint32_t *seed)
{
    size_t off = 0;
    exchange_response_begin(x);
    while (off < len) {
        size_t step = next_step(seed);
        size_t avail = step < len - off ? step : len - off;
        size_t used = 0;
        enum exchange_event ev = exchange_response(x, in + off, avail, &used);
        CHECK(used <= avail);
        off += used;
        if (ev == EXCHANGE_END) {
            if (!exchange_response_reusable(x)) return;
            exchange_response_begin(x); /* the next exchange on the same connection */
            continue;
        }
        if (ev != EXCHANGE_MORE) return;
        CHECK(used == avail);
    }
    enum exchange_event ev = exchange_response_eof(x);
    CHECK(ev == EXCHANGE_END || ev == EXCHANGE_MORE || ev == EXCHANGE_OPAQUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint32_t seed = data[0] | 1u;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    const uint8_t *nul = memchr(in, 0, len);
    size_t req_len = nul ? (size_t)(nul - in) : len;
    exchange_t *x = exchange_new();
    CHECK(x != NULL);
    size_t off = 0;
    while (off < req_len) {
        size_t n = one_request(x, in + off, req_len - off, &seed);
        if (n == 0) break;
        off += n;
        exchange_request_next(x);
    }
    if (nul != NULL) responses(x, nul + 1, len - req_len - 1, &seed);
    exchange_free(x);
    return 0;
}
