#include "common/crypto.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

int crypto_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int crypto_equal(const void *a, const void *b, size_t len)
{
    /* volatile keeps the compiler from turning the loop into an early-exit memcmp. */
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

int crypto_equal_str(const char *a, size_t alen, const char *b, size_t blen)
{
    /* Compare over a's length against b (or against a itself when b is shorter, so the work is
     * the same) and fold the length mismatch in at the end. */
    const volatile uint8_t *x = (const uint8_t *)a;
    const volatile uint8_t *y = (const uint8_t *)(blen >= alen ? b : a);
    uint8_t diff = alen != blen;
    for (size_t i = 0; i < alen; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    mbedtls_sha256_ret(data, len, out, 0);
}

void crypto_hex(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(data, len, digest);
    crypto_hex(digest, sizeof(digest), out);
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN])
{
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, key_len, data, len, out);
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const char *alphabet, int pad, const uint8_t *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

static int b64_value(int url, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

static long b64_decode(int url, const char *in, size_t len, uint8_t *out, size_t out_size)
{
    /* Padding is optional; when present it must be correct and final. */
    size_t pads = 0;
    while (len > 0 && in[len - 1] == '=' && pads < 2) {
        len--;
        pads++;
    }
    if (pads > 0 && (len + pads) % 4 != 0)
        return -1;
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > out_size)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(url, (unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Non-canonical trailing bits would let two strings decode to the same bytes. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)o;
}

size_t crypto_b64url_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

size_t crypto_b64url_encode(const void *data, size_t len, char *out)
{
    return b64_encode(b64_url, 0, data, len, out);
}

long crypto_b64url_decode(const char *in, size_t len, uint8_t *out, size_t out_size)
{
    return b64_decode(1, in, len, out, out_size);
}

size_t crypto_b64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

size_t crypto_b64_encode(const void *data, size_t len, char *out)
{
    return b64_encode(b64_std, 1, data, len, out);
}

long crypto_b64_decode(const char *in, size_t len, uint8_t *out, size_t out_size)
{
    return b64_decode(0, in, len, out, out_size);
}

int crypto_random_token(char out[CRYPTO_TOKEN_LEN + 1])
{
    uint8_t raw[32];
    int rc = crypto_random(raw, sizeof(raw));
    if (rc < 0)
        return rc;
    crypto_b64url_encode(raw, sizeof(raw), out);
    return 0;
}
