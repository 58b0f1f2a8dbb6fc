/*
 * crypto: the few primitives every module needs, over mbedtls and the kernel CSPRNG.
 * All functions are pure or read only /dev/urandom (getrandom); none allocate.
 */
#ifndef EDGEGATE_CRYPTO_H
#define EDGEGATE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_SHA256_HEX_LEN 64

/* Fills buf with len bytes from the kernel CSPRNG. Returns 0, or -errno (never partial). */
int crypto_random(void *buf, size_t len);

/* Constant-time equality of two equal-length buffers: 1 when equal. Time depends only on len. */
int crypto_equal(const void *a, const void *b, size_t len);
/* Constant-time comparison of two strings of possibly different lengths (length may leak). */
int crypto_equal_str(const char *a, size_t alen, const char *b, size_t blen);

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);
/* Lower-case hex of the SHA-256 of data, NUL-terminated. */
void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN + 1]);
void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN]);

/* Lower-case hex; out must hold 2*len+1. */
void crypto_hex(const void *data, size_t len, char *out);

/*
 * base64url without padding (RFC 4648 §5), as used in JWTs, cookies and tokens.
 * encode: out must hold crypto_b64url_len(len)+1; returns the length written (NUL-terminated).
 * decode: accepts missing padding, rejects anything outside the alphabet; returns the decoded
 * length or -1 (bad input or out too small).
 */
size_t crypto_b64url_len(size_t len);
size_t crypto_b64url_encode(const void *data, size_t len, char *out);
long crypto_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size);

/* Standard base64 with padding (RFC 4648 §4). Same conventions as the base64url functions. */
size_t crypto_b64_len(size_t len);
size_t crypto_b64_encode(const void *data, size_t len, char *out);
long crypto_b64_decode(const char *in, size_t len, uint8_t *out, size_t out_size);

/* A random 256-bit token as 43 base64url characters (NUL-terminated). Returns 0 or -errno. */
#define CRYPTO_TOKEN_LEN 43
int crypto_random_token(char out[CRYPTO_TOKEN_LEN + 1]);

#endif
