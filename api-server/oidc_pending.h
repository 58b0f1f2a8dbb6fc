/*
 * oidc_pending: the pending-login cookie that carries one sign-in from GET /api/auth/login to
 * GET /api/auth/callback in the browser that started it. Pure: no I/O besides the CSPRNG.
 *
 *   name    edgegate_oidc_<state>     one cookie per sign-in: several tabs can sign in at once
 *   value   <expires>.<nonce>.<verifier>.<base64url(return_to)>.<mac>
 *   mac     base64url(HMAC-SHA256(EDGEGATE_SESSION_SECRET,
 *                                 "edgegate-oidc-pending" NUL state NUL value-before-the-mac))
 *   attributes  HttpOnly; SameSite=Lax; Path=<the callback's path>; Max-Age=600;
 *               Secure unless EDGEGATE_DEV=1
 *
 * state, nonce and the PKCE verifier are 256 random bits each (43 base64url characters). The
 * MAC binds the cookie to its state and the domain string keeps it from ever passing for
 * another signed value; expires is checked as well as Max-Age, as a browser may keep a cookie
 * longer. SameSite=Lax still sends the cookie on the provider's top-level redirect back to us.
 * The verifier never leaves our origin except as its SHA-256 (the code_challenge). Replays of a
 * callback are stopped elsewhere (a used state is remembered in Redis, oidc_callback.c).
 */
#ifndef EDGEGATE_API_OIDC_PENDING_H
#define EDGEGATE_API_OIDC_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "common/crypto.h"
#include "common/slice.h"

#define OIDC_PENDING_TTL_SECONDS 600
#define OIDC_PENDING_COOKIE_PREFIX "edgegate_oidc_"
#define OIDC_RETURN_TO_MAX 512
/* Room for a whole Set-Cookie value (the callback path is at most OIDC_PATH_MAX bytes). */
#define OIDC_PATH_MAX 256
#define OIDC_SET_COOKIE_MAX 1400

typedef struct oidc_pending {
    char state[CRYPTO_TOKEN_LEN + 1];
    char nonce[CRYPTO_TOKEN_LEN + 1];
    char verifier[CRYPTO_TOKEN_LEN + 1];
    char return_to[OIDC_RETURN_TO_MAX + 1];
    int64_t expires; /* Unix seconds */
} oidc_pending_t;

/* A new sign-in: fresh state, nonce and verifier; return_to must be valid (below). 0 or
 * -errno when the CSPRNG fails. */
int oidc_pending_new(oidc_pending_t *p, const char *return_to, int64_t now);
/* The PKCE S256 code_challenge: base64url(SHA-256(verifier)), 43 characters. */
void oidc_pending_challenge(const oidc_pending_t *p, char out[CRYPTO_TOKEN_LEN + 1]);

/* The Set-Cookie value that stores p, or (p NULL) the one that deletes state's cookie. */
void oidc_pending_set_cookie(const oidc_pending_t *p, const char *state, slice_t secret,
                             const char *path, int secure, char out[OIDC_SET_COOKIE_MAX]);

enum oidc_pending_result {
    OIDC_PENDING_OK = 0,
    OIDC_PENDING_MISSING = -1, /* no cookie for this state in this browser */
    OIDC_PENDING_BAD = -2,     /* malformed, or not signed by us for this state */
    OIDC_PENDING_EXPIRED = -3,
};
/* Finds and checks the cookie for state in a Cookie header; fills out on OIDC_PENDING_OK. */
int oidc_pending_read(slice_t cookie_header, slice_t secret, slice_t state, int64_t now,
                      oidc_pending_t *out);

/* Is s a state we could have issued (43 base64url characters)? */
int oidc_state_valid(slice_t s);
/* Is s a same-origin path to return to after sign-in: "/" then printable ASCII, not "//" or
 * anything with a backslash (browsers read "/\host" as "//host"), at most OIDC_RETURN_TO_MAX? */
int oidc_return_to_valid(slice_t s);

#endif
