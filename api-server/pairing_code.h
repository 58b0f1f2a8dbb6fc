/*
 * pairing_code: the short code a signed-in user reads off the screen and types into a device
 * being paired. Pure: no I/O besides the kernel CSPRNG.
 *
 * A code is 8 symbols of Crockford's base32 (0-9 A-Z without I L O U: nothing that reads as
 * another symbol), 40 bits, shown as "ABCD-EFGH". What a person types is normalised before it
 * is hashed: case is ignored, '-' and spaces may appear anywhere, and the look-alikes O, I and
 * L are read as 0, 1 and 1. Codes are stored and looked up only by the SHA-256 of the
 * normalised form: a wrong guess is a miss in an index, and how close it came is not
 * observable. 40 bits against a per-address attempt limit and a 10-minute life is out of
 * reach of guessing.
 */
#ifndef EDGEGATE_API_PAIRING_CODE_H
#define EDGEGATE_API_PAIRING_CODE_H

#include <stddef.h>

#include "common/crypto.h"

#define PAIRING_CODE_SYMBOLS 8
#define PAIRING_CODE_DISPLAY_LEN (PAIRING_CODE_SYMBOLS + 1) /* with the dash */
/* Longest input considered: the code with a separator between every pair of symbols and some
 * spaces around it. Anything longer is not a code someone typed. */
#define PAIRING_CODE_INPUT_MAX 32

/* A fresh random code in display form ("ABCD-EFGH"). Returns 0 or -errno. */
int pairing_code_new(char out[PAIRING_CODE_DISPLAY_LEN + 1]);

/* What a person typed → the 8 canonical symbols (NUL-terminated). 0, or -1 when it is not a
 * code (wrong length, a symbol outside the alphabet). */
int pairing_code_normalize(const char *in, size_t len, char out[PAIRING_CODE_SYMBOLS + 1]);

/* SHA-256 hex of a normalised code: the only form stored. */
void pairing_code_hash(const char normalized[PAIRING_CODE_SYMBOLS + 1],
                       char out[CRYPTO_SHA256_HEX_LEN + 1]);

#endif
