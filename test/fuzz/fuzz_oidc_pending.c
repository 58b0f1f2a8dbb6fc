/*
 * libFuzzer target for api-server/oidc_pending.c: the pending-login cookie as the callback reads
 * it — a Cookie header and a state from the query string, both the client's.
 *
 * Two modes, by the low bit of byte 0:
 *   raw       byte 1 splits the rest between the state and the Cookie header (heap blocks of
 *             their own size, so ASan sees any read past them);
 *   template  a correctly signed cookie for a state drawn from the input, one byte of it XOR-ed
 *             (position and mask from bytes 1 and 2; mask 0 leaves it intact), between other
 *             cookies — random bytes would never get past the MAC.
 * Invariants: an accepted cookie yields 43-character nonce and verifier and a valid return_to;
 * in template mode it is accepted exactly when it was left intact, and yields what was signed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/oidc_pending.c"
#include "api-server/session_cookie.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static const char SECRET[] = "fuzz-secret-that-is-at-least-32-bytes-long";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
#define NOW 1800000000

/* A pending sign-in whose values come from the input (so runs differ), signed as the server
 * signs it. */
static void template_pending(const uint8_t *data, size_t size, oidc_pending_t *p)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < CRYPTO_TOKEN_LEN; i++) {
        p->state[i] = B64URL[(3 + i < size ? data[3 + i] : i) & 63];
        p->nonce[i] = B64URL[(i * 7) & 63];
        p->verifier[i] = B64URL[(i * 13 + size) & 63];
    }
    size_t rt = size > 3 + CRYPTO_TOKEN_LEN ? (size - 3 - CRYPTO_TOKEN_LEN) % 64 : 0;
    p->return_to[0] = '/';
    for (size_t i = 1; i <= rt; i++)
        p->return_to[i] = (char)('a' + data[3 + CRYPTO_TOKEN_LEN + i - 1] % 26);
    p->expires = NOW + 60;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    slice_t secret = slice_from(SECRET);
    oidc_pending_t got;
    if (data[0] & 1) {
        oidc_pending_t p;
        template_pending(data, size, &p);
        char set[OIDC_SET_COOKIE_MAX], header[OIDC_SET_COOKIE_MAX + 32];
        oidc_pending_set_cookie(&p, p.state, secret, "/cb", 1, set);
        size_t n = strcspn(set, ";");
        size_t len = (size_t)snprintf(header, sizeof(header), "a=b; %.*s; c=d", (int)n, set);
        uint8_t mask = size > 2 ? data[2] : 0;
        size_t at = 5 + (data[1] % n); /* inside the name=value pair */
        header[at] ^= (char)mask;
        int rc = oidc_pending_read((slice_t){header, len}, secret, slice_from(p.state), NOW, &got);
        CHECK((rc == OIDC_PENDING_OK) == (mask == 0));
        if (rc == OIDC_PENDING_OK) {
            CHECK(strcmp(got.nonce, p.nonce) == 0 && strcmp(got.verifier, p.verifier) == 0);
            CHECK(strcmp(got.return_to, p.return_to) == 0 && got.expires == p.expires);
        }
        return 0;
    }
    size_t rest = size - 2;
    size_t split = (size_t)data[1] * rest / 256;
    char *state = malloc(split ? split : 1), *header = malloc(rest - split ? rest - split : 1);
    if (state == NULL || header == NULL) {
        free(state);
        free(header);
        return 0;
    }
    memcpy(state, data + 2, split);
    memcpy(header, data + 2 + split, rest - split);
    int rc = oidc_pending_read((slice_t){header, rest - split}, secret, (slice_t){state, split},
                               NOW, &got);
    if (rc == OIDC_PENDING_OK) {
        CHECK(strlen(got.nonce) == CRYPTO_TOKEN_LEN && strlen(got.verifier) == CRYPTO_TOKEN_LEN);
        CHECK(oidc_return_to_valid(slice_from(got.return_to)));
    }
    free(state);
    free(header);
    return 0;
}
