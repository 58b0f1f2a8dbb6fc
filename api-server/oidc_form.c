#include "api-server/oidc_form.h"

#include <string.h>

#include "common/crypto.h"

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int oidc_form_encode(buf_t *b, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(value), start = b->len;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        rc = unreserved(c) ? buf_append(b, &value[i], 1) : buf_append(b, esc, 3);
    }
    if (rc < 0 && b->data != NULL) {
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

static int add(buf_t *b, const char *sep, const char *key, const char *value)
{
    size_t start = b->len;
    int rc = buf_append_str(b, sep);
    if (rc == 0)
        rc = oidc_form_encode(b, key);
    if (rc == 0)
        rc = buf_append(b, "=", 1);
    if (rc == 0)
        rc = oidc_form_encode(b, value);
    if (rc < 0 && b->data != NULL) {
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

int oidc_form_add(buf_t *b, const char *key, const char *value)
{
    return add(b, b->len > 0 ? "&" : "", key, value);
}

int oidc_query_add(buf_t *b, const char *key, const char *value)
{
    const char *q = b->data ? memchr(b->data, '?', b->len) : NULL;
    const char *sep = q == NULL ? "?" : (b->data[b->len - 1] == '?' || b->data[b->len - 1] == '&')
                                            ? ""
                                            : "&";
    return add(b, sep, key, value);
}

int oidc_basic_credentials(buf_t *out, const char *client_id, const char *client_secret)
{
    buf_t plain = BUF_INIT(1024);
    int rc = oidc_form_encode(&plain, client_id);
    if (rc == 0)
        rc = buf_append(&plain, ":", 1);
    if (rc == 0)
        rc = oidc_form_encode(&plain, client_secret);
    if (rc == 0)
        rc = buf_append_str(out, "Basic ");
    if (rc == 0)
        rc = buf_reserve(out, crypto_b64_len(plain.len));
    if (rc == 0)
        out->len += crypto_b64_encode(plain.data, plain.len, out->data + out->len);
    if (plain.data != NULL)
        explicit_bzero(plain.data, plain.len);
    buf_free(&plain);
    return rc;
}
