#include "api-server/uuid_text.h"

#include "common/crypto.h"
#include "common/http_json.h"

int uuid_text_new(char out[UUID_TEXT_LEN + 1])
{
    unsigned char b[16];
    int rc = crypto_random(b, sizeof(b));
    if (rc < 0)
        return rc;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 (RFC 4122 §4.4) */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return 0;
}

int uuid_text_parse(slice_t in, char out[UUID_TEXT_LEN + 1])
{
    if (in.ptr == NULL || in.len != UUID_TEXT_LEN)
        return -1;
    for (size_t i = 0; i < UUID_TEXT_LEN; i++) {
        char c = in.ptr[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return -1;
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return -1;
        }
        out[i] = c;
    }
    out[UUID_TEXT_LEN] = '\0';
    return 0;
}

int uuid_param_or_reply(http_request_t *req, const char *name, char out[UUID_TEXT_LEN + 1],
                        const char *message)
{
    if (uuid_text_parse(http_request_param(req, name), out) < 0) {
        http_reply_error(req, 404, "NOT_FOUND", message);
        return -1;
    }
    return 0;
}
