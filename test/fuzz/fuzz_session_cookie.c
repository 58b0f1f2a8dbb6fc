/*
 * libFuzzer target for the session credential parsers of api-server/session_cookie.c: the
 * Cookie header scan, the signed-cookie check and the bearer-token check, on the bytes exactly
 * as they come off the wire (no NUL terminator: the input is copied into a heap block of its
 * own size, so ASan sees any read past it).
 *
 * Two modes, by the low bit of byte 0:
 *   raw       byte 1 picks how the rest is split between an Authorization bearer value and a
 *             Cookie header (its value times the rest's length / 256);
 *   template  a correctly signed cookie for an id drawn from the input, with one byte XOR-ed
 *             (position and mask from bytes 1 and 2; mask 0 leaves it intact), in a header
 *             between other cookies — random bytes would never reach the HMAC comparison.
 * Invariants checked:
 *   - whatever the scan finds lies inside the header;
 *   - a credential is accepted only in its exact form: a bearer id is 43 base64url characters,
 *     an accepted cookie signs back to the very bytes that were sent, and in template mode the
 *     cookie is accepted exactly when it was left intact.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/session_cookie.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static const char SECRET[] = "fuzz-secret-that-is-at-least-32-bytes-long";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Template mode: a signed cookie with at most one byte changed. Returns 1 when it is intact. */
static int template_cookie(const uint8_t *data, size_t size, char *bytes, size_t *len)
{
    char id[SESSION_ID_LEN + 1];
    for (size_t i = 0; i < SESSION_ID_LEN; i++)
        id[i] = B64URL[(3 + i < size ? data[3 + i] : i) & 63];
    id[SESSION_ID_LEN] = '\0';
    char value[SESSION_COOKIE_VALUE_LEN + 1];
    session_cookie_sign(slice_from(SECRET), id, value);
    uint8_t mask = size > 2 ? data[2] : 0;
    value[(size > 1 ? data[1] : 0) % SESSION_COOKIE_VALUE_LEN] ^= (char)mask;
    *len = (size_t)snprintf(bytes, 160, "a=b; %s=%s; c=d", SESSION_COOKIE_NAME, value);
    return mask == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t rest = size - 2;
    int template_mode = data[0] & 1;
    char *bytes = malloc(template_mode ? 160 : rest ? rest : 1);
    if (bytes == NULL)
        return 0;
    size_t split = 0, len = rest;
    int intact = 0;
    if (template_mode) {
        intact = template_cookie(data, size, bytes, &len);
    } else {
        memcpy(bytes, data + 2, rest);
        split = (size_t)data[1] * rest / 256;
    }
    slice_t bearer = {bytes, split};
    slice_t header = {bytes + split, len - split};
    slice_t secret = slice_from(SECRET);

    slice_t found = session_cookie_find(header, SESSION_COOKIE_NAME);
    if (found.ptr != NULL)
        CHECK(found.ptr >= header.ptr && found.ptr + found.len <= header.ptr + header.len);

    char id[SESSION_ID_LEN + 1];
    enum session_cred cred =
        session_credential(split ? bearer : SLICE_NULL, header, secret, id);
    if (cred == SESSION_CRED_BEARER) {
        CHECK(bearer.len == SESSION_ID_LEN && memcmp(id, bearer.ptr, SESSION_ID_LEN) == 0);
        CHECK(session_id_valid(bearer));
    } else if (cred == SESSION_CRED_COOKIE) {
        char resigned[SESSION_COOKIE_VALUE_LEN + 1];
        session_cookie_sign(secret, id, resigned);
        CHECK(found.len == SESSION_COOKIE_VALUE_LEN &&
              memcmp(resigned, found.ptr, SESSION_COOKIE_VALUE_LEN) == 0);
    }
    if (template_mode)
        CHECK((cred == SESSION_CRED_COOKIE) == intact);
    free(bytes);
    return 0;
}
