#include "api-server/totp.h"

#include <liboath/oath.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"

/* liboath wants oath_init() before use; it only sets up its own crypto, so once is enough. */
static int oath_ready(void)
{
    static int ready;
    if (!ready && oath_init() == OATH_OK)
        ready = 1;
    return ready;
}

int totp_secret_new(uint8_t secret[TOTP_SECRET_LEN])
{
    return crypto_random(secret, TOTP_SECRET_LEN);
}

void totp_base32(const uint8_t secret[TOTP_SECRET_LEN], char out[TOTP_BASE32_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    /* 20 bytes = 160 bits = 32 groups of 5 bits, so no padding is ever needed. */
    size_t o = 0;
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < TOTP_SECRET_LEN; i++) {
        acc = (acc << 8) | secret[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = alphabet[(acc >> bits) & 31];
        }
    }
    out[o] = '\0';
}

int64_t totp_step(int64_t now)
{
    return now / TOTP_STEP_SECONDS;
}

int totp_code(const uint8_t *secret, size_t secret_len, int64_t now, unsigned digits, char out[9])
{
    if (!oath_ready() || digits < 6 || digits > 8)
        return -1;
    int rc = oath_totp_generate((const char *)secret, secret_len, (time_t)now, TOTP_STEP_SECONDS,
                                OATH_TOTP_DEFAULT_START_TIME, digits, out);
    return rc == OATH_OK ? 0 : -1;
}

int totp_code_well_formed(const char *code, size_t len)
{
    if (code == NULL || len != TOTP_DIGITS)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (code[i] < '0' || code[i] > '9')
            return 0;
    return 1;
}

/* liboath's comparison hook: 0 on a match, positive otherwise; never strcmp, whose running time
 * tells an attacker how many leading digits were right. */
static int equal_code(void *handle, const char *candidate)
{
    return crypto_equal(handle, candidate, TOTP_DIGITS) ? 0 : 1;
}

int64_t totp_match(const uint8_t *secret, size_t secret_len, const char *code, size_t code_len,
                   int64_t now)
{
    if (!totp_code_well_formed(code, code_len) || !oath_ready())
        return -1;
    char given[TOTP_DIGITS + 1];
    memcpy(given, code, TOTP_DIGITS);
    given[TOTP_DIGITS] = '\0';
    int pos = 0;
    uint64_t counter = 0;
    int rc = oath_totp_validate3_callback((const char *)secret, secret_len, (time_t)now,
                                          TOTP_STEP_SECONDS, OATH_TOTP_DEFAULT_START_TIME,
                                          TOTP_DIGITS, TOTP_WINDOW, &pos, &counter, equal_code,
                                          given);
    explicit_bzero(given, sizeof(given));
    if (rc < 0 || counter > (uint64_t)INT64_MAX)
        return -1;
    return (int64_t)counter;
}

/* Percent-encodes s (all but RFC 3986 unreserved) into out at *o; -1 when it does not fit. */
static int put_encoded(const char *s, char *out, size_t size, size_t *o)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (*o + need >= size)
            return -1;
        if (plain) {
            out[(*o)++] = (char)*p;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[*p >> 4];
            out[(*o)++] = hex[*p & 15];
        }
    }
    return 0;
}

static int put_text(const char *s, char *out, size_t size, size_t *o)
{
    size_t n = strlen(s);
    if (*o + n >= size)
        return -1;
    memcpy(out + *o, s, n);
    *o += n;
    return 0;
}

int totp_otpauth_uri(const char *issuer, const char *account, const char *base32, char *out,
                     size_t size)
{
    char tail[96];
    snprintf(tail, sizeof(tail), "&algorithm=SHA1&digits=%d&period=%d", TOTP_DIGITS,
             TOTP_STEP_SECONDS);
    size_t o = 0;
    /* The issuer appears twice on purpose: as the label prefix for old apps, as a parameter for
     * current ones (the Key URI format recommends both, and equal). */
    if (size == 0 || put_text("otpauth://totp/", out, size, &o) < 0 ||
        put_encoded(issuer, out, size, &o) < 0 || put_text(":", out, size, &o) < 0 ||
        put_encoded(account, out, size, &o) < 0 || put_text("?secret=", out, size, &o) < 0 ||
        put_encoded(base32, out, size, &o) < 0 || put_text("&issuer=", out, size, &o) < 0 ||
        put_encoded(issuer, out, size, &o) < 0 || put_text(tail, out, size, &o) < 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}
