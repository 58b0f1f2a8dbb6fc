/*
 * session_cookie: the wire forms of a session id. Pure functions: no I/O, no allocation.
 *
 *   id      43 base64url characters: 256 random bits (crypto_random_token)
 *   bearer  `Authorization: Bearer <id>` — API and WebSocket clients; the login's `token`
 *   cookie  `edgegate_session=<id>.<base64url(HMAC-SHA256(EDGEGATE_SESSION_SECRET, id))>`
 *           — browsers; HttpOnly, SameSite=Lax, Path=/, and Secure unless EDGEGATE_DEV=1
 *
 * The HMAC lets the guard refuse a forged or mangled cookie before any Redis lookup, so
 * guessing costs the attacker a round trip and us no I/O. The signature is compared in
 * constant time.
 */
#ifndef EDGEGATE_API_SESSION_COOKIE_H
#define EDGEGATE_API_SESSION_COOKIE_H

#include <stddef.h>

#include "common/crypto.h"
#include "common/slice.h"

#define SESSION_ID_LEN CRYPTO_TOKEN_LEN
#define SESSION_COOKIE_NAME "edgegate_session"
#define SESSION_COOKIE_VALUE_LEN (SESSION_ID_LEN + 1 + 43) /* id "." base64url(32 bytes) */
/* Room for a whole Set-Cookie value with every attribute. */
#define SESSION_SET_COOKIE_MAX 192

/* Is s a well-formed session id (exactly 43 base64url characters)? */
int session_id_valid(slice_t s);

/* out = id "." signature (NUL-terminated). */
void session_cookie_sign(slice_t secret, const char *id, char out[SESSION_COOKIE_VALUE_LEN + 1]);
/* 0 and the id copied out when value is a well-formed, correctly signed cookie; else -1. */
int session_cookie_verify(slice_t secret, slice_t value, char id[SESSION_ID_LEN + 1]);

/* The value of the first cookie called name in a Cookie header, or SLICE_NULL. */
slice_t session_cookie_find(slice_t header, const char *name);

/* A Set-Cookie value carrying value for max_age seconds; value NULL clears the cookie. */
void session_set_cookie(char out[SESSION_SET_COOKIE_MAX], const char *value, int secure,
                        long max_age);

enum session_cred {
    SESSION_CRED_NONE,   /* neither a bearer token nor our cookie */
    SESSION_CRED_BEARER, /* id from Authorization: Bearer */
    SESSION_CRED_COOKIE, /* id from a correctly signed cookie */
    SESSION_CRED_BAD,    /* one was sent but is malformed or forged */
};

/*
 * The credential a request carries. A bearer token takes precedence over the cookie, and a
 * bad bearer token is BAD even when a good cookie is also present (no silent fallback). id is
 * filled for BEARER and COOKIE.
 */
enum session_cred session_credential(slice_t bearer, slice_t cookie_header, slice_t secret,
                                     char id[SESSION_ID_LEN + 1]);

#endif
