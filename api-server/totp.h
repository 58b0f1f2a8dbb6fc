/*
 * totp: time-based one-time passwords (RFC 6238) over liboath, as authenticator apps make them:
 * HMAC-SHA-1, 6 digits, 30-second steps counted from the Unix epoch, 160-bit secrets, shown to
 * people as base32 (RFC 4648, no padding) inside an otpauth:// URI (Google's Key URI format).
 *
 * Pure functions on the caller's buffers: no I/O apart from the kernel CSPRNG for new secrets,
 * no allocation that outlives a call. Cheap enough for the event loop: a check is at most three
 * HMAC-SHA-1 computations.
 */
#ifndef EDGEGATE_API_TOTP_H
#define EDGEGATE_API_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define TOTP_SECRET_LEN 20 /* 160 bits: RFC 4226 §4 recommends at least that */
#define TOTP_BASE32_LEN 32 /* 20 bytes are exactly 32 base32 characters */
#define TOTP_DIGITS 6
#define TOTP_STEP_SECONDS 30
/* Steps accepted either side of the current one: clocks drift and people type slowly. */
#define TOTP_WINDOW 1
#define TOTP_URI_MAX 512

/* A new secret from the kernel CSPRNG. 0 or -errno. */
int totp_secret_new(uint8_t secret[TOTP_SECRET_LEN]);

/* base32 of a secret, upper case, NUL-terminated. */
void totp_base32(const uint8_t secret[TOTP_SECRET_LEN], char out[TOTP_BASE32_LEN + 1]);

/* The time step that contains unix time `now`. */
int64_t totp_step(int64_t now);

/* The code of `digits` (6..8) digits for unix time `now`, NUL-terminated. 0, or -1. */
int totp_code(const uint8_t *secret, size_t secret_len, int64_t now, unsigned digits,
              char out[9]);

/*
 * Does `code` (exactly TOTP_DIGITS ASCII digits, else it never matches) match the secret at
 * `now` within ±TOTP_WINDOW steps? Returns the matching time step, or -1. Codes are compared
 * in constant time. Whether that step was already used is the caller's business (see mfa_code.h).
 */
int64_t totp_match(const uint8_t *secret, size_t secret_len, const char *code, size_t code_len,
                   int64_t now);

/* Is it TOTP_DIGITS ASCII digits? (What a client may send at all.) */
int totp_code_well_formed(const char *code, size_t len);

/*
 * otpauth://totp/ISSUER:ACCOUNT?secret=B32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 * with issuer and account percent-encoded (everything but RFC 3986 unreserved characters).
 * Returns the length written (NUL-terminated), or -1 when it does not fit in size.
 */
int totp_otpauth_uri(const char *issuer, const char *account, const char *base32, char *out,
                     size_t size);

#endif
