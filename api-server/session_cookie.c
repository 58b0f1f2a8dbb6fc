#include "api-server/session_cookie.h"

#include <stdio.h>
#include <string.h>

int session_id_valid(slice_t s)
{
    if (s.ptr == NULL || s.len != SESSION_ID_LEN)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.ptr[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_';
        if (!ok)
            return 0;
    }
    return 1;
}

static void signature(slice_t secret, const char *id, char out[44])
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(secret.ptr, secret.len, id, SESSION_ID_LEN, mac);
    crypto_b64url_encode(mac, sizeof(mac), out);
}

void session_cookie_sign(slice_t secret, const char *id, char out[SESSION_COOKIE_VALUE_LEN + 1])
{
    memcpy(out, id, SESSION_ID_LEN);
    out[SESSION_ID_LEN] = '.';
    signature(secret, id, out + SESSION_ID_LEN + 1);
}

int session_cookie_verify(slice_t secret, slice_t value, char id[SESSION_ID_LEN + 1])
{
    if (value.len != SESSION_COOKIE_VALUE_LEN || value.ptr[SESSION_ID_LEN] != '.' ||
        !session_id_valid((slice_t){value.ptr, SESSION_ID_LEN}))
        return -1;
    memcpy(id, value.ptr, SESSION_ID_LEN);
    id[SESSION_ID_LEN] = '\0';
    char expect[44];
    signature(secret, id, expect);
    if (!crypto_equal(expect, value.ptr + SESSION_ID_LEN + 1, 43)) {
        id[0] = '\0';
        return -1;
    }
    return 0;
}

static slice_t trim(const char *p, size_t len)
{
    while (len > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    return (slice_t){p, len};
}

slice_t session_cookie_find(slice_t header, const char *name)
{
    size_t i = 0;
    while (header.ptr != NULL && i < header.len) {
        const char *start = header.ptr + i;
        const char *semi = memchr(start, ';', header.len - i);
        size_t len = semi ? (size_t)(semi - start) : header.len - i;
        const char *eq = memchr(start, '=', len);
        if (eq != NULL && slice_eq(trim(start, (size_t)(eq - start)), name))
            return trim(eq + 1, len - (size_t)(eq + 1 - start));
        i += len + 1;
    }
    return SLICE_NULL;
}

void session_set_cookie(char out[SESSION_SET_COOKIE_MAX], const char *value, int secure,
                        long max_age)
{
    snprintf(out, SESSION_SET_COOKIE_MAX, "%s=%s; Max-Age=%ld; Path=/; HttpOnly; SameSite=Lax%s",
             SESSION_COOKIE_NAME, value ? value : "", value ? max_age : 0L,
             secure ? "; Secure" : "");
}

enum session_cred session_credential(slice_t bearer, slice_t cookie_header, slice_t secret,
                                     char id[SESSION_ID_LEN + 1])
{
    if (bearer.ptr != NULL) {
        if (!session_id_valid(bearer))
            return SESSION_CRED_BAD;
        memcpy(id, bearer.ptr, SESSION_ID_LEN);
        id[SESSION_ID_LEN] = '\0';
        return SESSION_CRED_BEARER;
    }
    slice_t cookie = session_cookie_find(cookie_header, SESSION_COOKIE_NAME);
    if (cookie.ptr == NULL)
        return SESSION_CRED_NONE;
    return session_cookie_verify(secret, cookie, id) == 0 ? SESSION_CRED_COOKIE : SESSION_CRED_BAD;
}
