#include "api-server/oidc_pending.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/session_cookie.h"

#define MAC_DOMAIN "edgegate-oidc-pending"
#define NAME_MAX_LEN (sizeof(OIDC_PENDING_COOKIE_PREFIX) - 1 + CRYPTO_TOKEN_LEN)
/* expires . nonce . verifier . return_to . mac, at their largest. */
#define VALUE_MAX (20 + 1 + CRYPTO_TOKEN_LEN + 1 + CRYPTO_TOKEN_LEN + 1 +                        \
                   (OIDC_RETURN_TO_MAX * 4 + 2) / 3 + 1 + CRYPTO_TOKEN_LEN)

int oidc_state_valid(slice_t s)
{
    /* The same form as a session id: 256 random bits in base64url. */
    return session_id_valid(s);
}

int oidc_return_to_valid(slice_t s)
{
    if (s.ptr == NULL || s.len == 0 || s.len > OIDC_RETURN_TO_MAX || s.ptr[0] != '/')
        return 0;
    if (s.len > 1 && s.ptr[1] == '/') /* "//host/...": another site */
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] <= 0x20 || (unsigned char)s.ptr[i] >= 0x7f || s.ptr[i] == '\\')
            return 0;
    return 1;
}

int oidc_pending_new(oidc_pending_t *p, const char *return_to, int64_t now)
{
    memset(p, 0, sizeof(*p));
    int rc = crypto_random_token(p->state);
    if (rc == 0)
        rc = crypto_random_token(p->nonce);
    if (rc == 0)
        rc = crypto_random_token(p->verifier);
    snprintf(p->return_to, sizeof(p->return_to), "%s", return_to);
    p->expires = now + OIDC_PENDING_TTL_SECONDS;
    return rc;
}

void oidc_pending_challenge(const oidc_pending_t *p, char out[CRYPTO_TOKEN_LEN + 1])
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(p->verifier, strlen(p->verifier), digest);
    crypto_b64url_encode(digest, sizeof(digest), out);
}

static void mac(slice_t secret, slice_t state, const char *value, size_t len,
                char out[CRYPTO_TOKEN_LEN + 1])
{
    char input[sizeof(MAC_DOMAIN) + CRYPTO_TOKEN_LEN + 1 + VALUE_MAX];
    size_t n = 0;
    memcpy(input, MAC_DOMAIN, sizeof(MAC_DOMAIN)); /* NUL included: the separator */
    n += sizeof(MAC_DOMAIN);
    memcpy(input + n, state.ptr, state.len);
    n += state.len;
    input[n++] = '\0';
    memcpy(input + n, value, len);
    n += len;
    uint8_t raw[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(secret.ptr, secret.len, input, n, raw);
    crypto_b64url_encode(raw, sizeof(raw), out);
}

void oidc_pending_set_cookie(const oidc_pending_t *p, const char *state, slice_t secret,
                             const char *path, int secure, char out[OIDC_SET_COOKIE_MAX])
{
    char value[VALUE_MAX + 1] = "";
    if (p != NULL) {
        char rt[(OIDC_RETURN_TO_MAX * 4 + 2) / 3 + 1];
        crypto_b64url_encode(p->return_to, strlen(p->return_to), rt);
        int n = snprintf(value, sizeof(value), "%lld.%s.%s.%s.", (long long)p->expires, p->nonce,
                         p->verifier, rt);
        mac(secret, slice_from(state), value, (size_t)n, value + n);
    }
    snprintf(out, OIDC_SET_COOKIE_MAX, "%s%s=%s; Max-Age=%d; Path=%s; HttpOnly; SameSite=Lax%s",
             OIDC_PENDING_COOKIE_PREFIX, state, value, p ? OIDC_PENDING_TTL_SECONDS : 0, path,
             secure ? "; Secure" : "");
}

/* The next '.'-separated field of [*pos, end), or a NULL slice when there is no '.' left. */
static slice_t field(const char **pos, const char *end)
{
    const char *dot = memchr(*pos, '.', (size_t)(end - *pos));
    if (dot == NULL)
        return SLICE_NULL;
    slice_t s = {*pos, (size_t)(dot - *pos)};
    *pos = dot + 1;
    return s;
}

static int copy_token(slice_t s, char out[CRYPTO_TOKEN_LEN + 1])
{
    if (s.ptr == NULL || !session_id_valid(s))
        return -1;
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return 0;
}

int oidc_pending_read(slice_t cookie_header, slice_t secret, slice_t state, int64_t now,
                      oidc_pending_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!oidc_state_valid(state))
        return OIDC_PENDING_MISSING;
    char name[NAME_MAX_LEN + 1];
    snprintf(name, sizeof(name), "%s%.*s", OIDC_PENDING_COOKIE_PREFIX, (int)state.len, state.ptr);
    slice_t v = session_cookie_find(cookie_header, name);
    if (v.ptr == NULL)
        return OIDC_PENDING_MISSING;
    if (v.len > VALUE_MAX)
        return OIDC_PENDING_BAD;
    /* The MAC first: nothing of an unsigned value is looked at. */
    const char *last_dot = v.len ? memrchr(v.ptr, '.', v.len) : NULL;
    if (last_dot == NULL)
        return OIDC_PENDING_BAD;
    size_t signed_len = (size_t)(last_dot + 1 - v.ptr);
    char expect[CRYPTO_TOKEN_LEN + 1];
    mac(secret, state, v.ptr, signed_len, expect);
    if (v.len - signed_len != CRYPTO_TOKEN_LEN ||
        !crypto_equal(expect, last_dot + 1, CRYPTO_TOKEN_LEN))
        return OIDC_PENDING_BAD;

    const char *pos = v.ptr, *end = last_dot + 1;
    slice_t exp = field(&pos, end), nonce = field(&pos, end), verifier = field(&pos, end),
            rt = field(&pos, end);
    unsigned long long expires;
    if (rt.ptr == NULL || pos != end || slice_to_u64(exp, 1ull << 62, &expires) < 0 ||
        copy_token(nonce, out->nonce) < 0 || copy_token(verifier, out->verifier) < 0)
        return OIDC_PENDING_BAD;
    long n = crypto_b64url_decode(rt.ptr, rt.len, (uint8_t *)out->return_to, OIDC_RETURN_TO_MAX);
    if (n <= 0 || !oidc_return_to_valid((slice_t){out->return_to, (size_t)n}))
        return OIDC_PENDING_BAD;
    out->return_to[n] = '\0';
    memcpy(out->state, state.ptr, state.len);
    out->state[state.len] = '\0';
    out->expires = (int64_t)expires;
    return out->expires > now ? OIDC_PENDING_OK : OIDC_PENDING_EXPIRED;
}
