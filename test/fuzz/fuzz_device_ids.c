/*
 * libFuzzer target for the two identifiers devices bring in from the network: a pairing code
 * as a person typed it (pairing_code_normalize) and a uuid in a URL path or header
 * (uuid_text_parse), on the input's bytes exactly (a heap copy of its own size, no NUL: ASan
 * sees any read past it).
 *
 * Invariants: an accepted code is 8 symbols of the alphabet and normalises to itself; an
 * accepted uuid is canonical lower case, equal to the input but for case, and parses to itself.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/pairing_code.c"
#include "api-server/uuid_text.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *bytes = malloc(size ? size : 1);
    if (bytes == NULL)
        return 0;
    memcpy(bytes, data, size);

    char code[PAIRING_CODE_SYMBOLS + 1], again[PAIRING_CODE_SYMBOLS + 1];
    if (pairing_code_normalize(bytes, size, code) == 0) {
        CHECK(strlen(code) == PAIRING_CODE_SYMBOLS);
        for (size_t i = 0; i < PAIRING_CODE_SYMBOLS; i++)
            CHECK(strchr(alphabet, code[i]) != NULL && code[i] != '\0');
        CHECK(pairing_code_normalize(code, PAIRING_CODE_SYMBOLS, again) == 0);
        CHECK(strcmp(code, again) == 0);
    }

    char id[UUID_TEXT_LEN + 1], id2[UUID_TEXT_LEN + 1];
    if (uuid_text_parse((slice_t){bytes, size}, id) == 0) {
        CHECK(size == UUID_TEXT_LEN && strlen(id) == UUID_TEXT_LEN);
        for (size_t i = 0; i < UUID_TEXT_LEN; i++) {
            CHECK(tolower((unsigned char)bytes[i]) == id[i]);
            CHECK(!isupper((unsigned char)id[i]));
        }
        CHECK(uuid_text_parse(slice_from(id), id2) == 0 && strcmp(id, id2) == 0);
    }
    free(bytes);
    return 0;
}
