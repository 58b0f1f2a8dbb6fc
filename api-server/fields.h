/*
 * fields: validation of what clients send — JSON body members and path parameters — so a
 * handler starts from values that are known to be present, typed and within bounds.
 *
 * Every string that passes is valid UTF-8 (jansson checks that), holds no NUL byte (C APIs
 * such as crypt() and libpq would silently cut it) and is within its byte bounds.
 */
#ifndef EDGEGATE_API_FIELDS_H
#define EDGEGATE_API_FIELDS_H

#include <stddef.h>

#include "common/http_server.h"

enum api_field_type { API_FIELD_STRING = 1, API_FIELD_INT, API_FIELD_BOOL };

typedef struct api_field {
    const char *name;
    enum api_field_type type;
    int required;
    long long min, max; /* strings: length in bytes; integers: value */
    const char *code;   /* the 422 error code when present but invalid; NULL: INVALID_FIELD */
} api_field_t;

typedef struct api_value {
    int present;
    const char *str; /* strings: NUL-terminated, valid until the request is finished */
    size_t len;
    long long num;
    int flag; /* booleans */
} api_value_t;

/*
 * Parses the body as a JSON object (else 400 INVALID_JSON) and checks fields[0..n) into
 * out[0..n): a missing required member is 422 MISSING_FIELD, a member of the wrong type or
 * out of bounds 422 with the field's code; JSON null counts as absent. Members not listed are
 * ignored (the helpdesk consoles send extras). Returns 0, or -1 after answering.
 */
int api_fields_or_reply(http_request_t *req, const api_field_t *fields, size_t n,
                        api_value_t *out);

/*
 * The path parameter `name` as a login: percent-decoded into out and checked against the
 * login pattern. Returns 0, or -1 after answering 404 NOT_FOUND (no such login can exist).
 */
int api_param_login_or_reply(http_request_t *req, const char *name, char out[65]);

#endif
