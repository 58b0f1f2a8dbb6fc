#include "api-server/pairing_code.h"

#include <string.h>

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int pairing_code_new(char out[PAIRING_CODE_DISPLAY_LEN + 1])
{
    unsigned char raw[PAIRING_CODE_SYMBOLS];
    int rc = crypto_random(raw, sizeof(raw));
    if (rc < 0)
        return rc;
    size_t o = 0;
    for (size_t i = 0; i < PAIRING_CODE_SYMBOLS; i++) {
        if (i == PAIRING_CODE_SYMBOLS / 2)
            out[o++] = '-';
        /* 256 is a multiple of 32: the low five bits of a uniform byte are uniform. */
        out[o++] = alphabet[raw[i] & 31];
    }
    out[o] = '\0';
    return 0;
}

/* The symbol's canonical form, or 0 when c is not one (Crockford's decoding rules). */
static char canonical(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    if (c == 'O')
        return '0';
    if (c == 'I' || c == 'L')
        return '1';
    if (c == 'U')
        return 0;
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))
        return c;
    return 0;
}

int pairing_code_normalize(const char *in, size_t len, char out[PAIRING_CODE_SYMBOLS + 1])
{
    if (len > PAIRING_CODE_INPUT_MAX)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '-' || in[i] == ' ')
            continue;
        char c = canonical(in[i]);
        if (c == 0 || n == PAIRING_CODE_SYMBOLS)
            return -1;
        out[n++] = c;
    }
    if (n != PAIRING_CODE_SYMBOLS)
        return -1;
    out[n] = '\0';
    return 0;
}

void pairing_code_hash(const char normalized[PAIRING_CODE_SYMBOLS + 1],
                       char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    crypto_sha256_hex(normalized, PAIRING_CODE_SYMBOLS, out);
}
