/*
 * libFuzzer target for what MFA reads from outside: the one-time code a client sends (totp.c),
 * the sealed secret read back from the database (mfa_keys.c, mfa_state.c's base64 form) and the
 * key list of EDGEGATE_MFA_RETIRED_KEYS. Inputs are copied into heap blocks of their own size
 * (NUL added only where the API takes a C string), so ASan sees any read past them.
 *
 * Byte 0 picks the mode (mod 4), the rest is the input:
 *   0 code      the rest is the code, checked at a time drawn from it. Invariant: a match is
 *               exactly a 6-digit code equal to oath's own code of a step within ±1.
 *   1 sealed    the rest is a sealed blob under a key id. Invariant: random bytes never open.
 *   2 template  a real seal with one byte XOR-ed (position, mask from the input; mask 0 leaves
 *               it intact) for an account drawn from the input. Invariant: opens iff intact
 *               and the account is the sealing one.
 *   3 key list  the rest as EDGEGATE_MFA_RETIRED_KEYS. Invariant: mfa_keys_new accepts it
 *               exactly when the checker does and it repeats no key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/mfa_keys.c"
#include "api-server/totp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static const uint8_t SECRET[TOTP_SECRET_LEN] = "12345678901234567890";
static const char KEY[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

static uint64_t le64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void fuzz_code(const uint8_t *in, size_t n)
{
    /* Times up to year ~2500: far enough to cover any clock, small enough for time_t math. */
    int64_t now = (int64_t)(le64(in, n) % 16500000000ULL);
    char *code = malloc(n ? n : 1);
    CHECK(code != NULL);
    memcpy(code, in, n);
    int64_t step = totp_match(SECRET, sizeof(SECRET), code, n, now);
    if (step >= 0) {
        char expect[9];
        CHECK(totp_code_well_formed(code, n));
        CHECK(step >= totp_step(now) - TOTP_WINDOW && step <= totp_step(now) + TOTP_WINDOW);
        CHECK(totp_code(SECRET, sizeof(SECRET), step * TOTP_STEP_SECONDS, TOTP_DIGITS, expect) ==
              0);
        CHECK(memcmp(expect, code, TOTP_DIGITS) == 0);
    }
    free(code);
}

static void fuzz_sealed(const mfa_keys_t *keys, const uint8_t *in, size_t n)
{
    uint8_t *sealed = malloc(n ? n : 1);
    CHECK(sealed != NULL);
    memcpy(sealed, in, n);
    uint8_t plain[64];
    long got = mfa_keys_open(keys, mfa_keys_current_id(keys), (int64_t)le64(in, n), sealed, n,
                             plain, sizeof(plain));
    /* A forgery would need the 128-bit tag: random input never gets one right. */
    CHECK(got == MFA_OPEN_BAD);
    free(sealed);
}

static void fuzz_template(const mfa_keys_t *keys, const uint8_t *in, size_t n)
{
    int64_t account = n > 0 ? (int64_t)in[0] % 3 : 0;
    size_t pos = n > 1 ? in[1] : 0;
    uint8_t mask = n > 2 ? in[2] : 0;
    uint8_t sealed[MFA_SEALED_LEN(TOTP_SECRET_LEN)], plain[TOTP_SECRET_LEN];
    CHECK(mfa_keys_seal(keys, 1, SECRET, sizeof(SECRET), sealed, sizeof(sealed)) ==
          (long)sizeof(sealed));
    pos %= sizeof(sealed);
    sealed[pos] ^= mask;
    long got = mfa_keys_open(keys, mfa_keys_current_id(keys), account, sealed, sizeof(sealed),
                             plain, sizeof(plain));
    int intact = mask == 0 && account == 1;
    CHECK(intact ? got == TOTP_SECRET_LEN && memcmp(plain, SECRET, sizeof(SECRET)) == 0
                 : got == MFA_OPEN_BAD);
}

static void fuzz_key_list(const uint8_t *in, size_t n)
{
    char *list = malloc(n + 1);
    CHECK(list != NULL);
    memcpy(list, in, n);
    list[n] = '\0';
    const char *why;
    const char *bad = mfa_keys_list_error(list);
    mfa_keys_t *keys = mfa_keys_new(KEY, list, &why);
    if (bad != NULL)
        CHECK(keys == NULL);
    if (keys != NULL)
        CHECK(mfa_keys_retired_count(keys) <= MFA_KEYS_MAX_RETIRED);
    mfa_keys_free(keys);
    free(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfa_keys_t *keys;
    if (keys == NULL) {
        const char *why;
        keys = mfa_keys_new(KEY, NULL, &why);
        CHECK(keys != NULL);
    }
    if (size == 0)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0:
        fuzz_code(in, n);
        break;
    case 1:
        fuzz_sealed(keys, in, n);
        break;
    case 2:
        fuzz_template(keys, in, n);
        break;
    default:
        fuzz_key_list(in, n);
        break;
    }
    return 0;
}
