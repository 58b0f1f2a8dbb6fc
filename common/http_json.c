#include "common/http_json.h"

#include <string.h>

/* Deeper documents are refused: nobody sends us legitimately nested JSON this deep, and a
 * recursive parser should not be walked by an attacker. */
#define JSON_MAX_DEPTH 32

void http_reply_json_h(http_request_t *req, int status, json_t *body,
                       const http_header_t *headers, size_t nheaders)
{
    http_header_t hdrs[8];
    size_t n = 0;
    hdrs[n++] = (http_header_t){SLICE_LIT("Content-Type"), SLICE_LIT("application/json")};
    hdrs[n++] = (http_header_t){SLICE_LIT("Cache-Control"), SLICE_LIT("no-store")};
    for (size_t i = 0; i < nheaders && n < sizeof(hdrs) / sizeof(hdrs[0]); i++)
        hdrs[n++] = headers[i];
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        static const char fallback[] =
            "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"Response could not be encoded.\"}}";
        http_respond(req, 500, hdrs, n, fallback, sizeof(fallback) - 1);
        return;
    }
    http_respond(req, status, hdrs, n, text, strlen(text));
    free(text);
}

void http_reply_json(http_request_t *req, int status, json_t *body)
{
    http_reply_json_h(req, status, body, NULL, 0);
}

void http_reply_error(http_request_t *req, int status, const char *code, const char *message)
{
    http_request_set_log_note(req, code);
    http_reply_json(req, status,
                    json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

static int too_deep(const char *p, size_t len)
{
    int depth = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = 0;
        } else if (ch == '"') {
            in_string = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return 1;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return 0;
}

json_t *http_body_json_or_reply(http_request_t *req)
{
    slice_t body = http_request_body(req);
    json_error_t err;
    json_t *doc = NULL;
    if (body.len > 0 && !too_deep(body.ptr, body.len))
        doc = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        http_reply_error(req, 400, "INVALID_JSON", "The request body must be a JSON object.");
        return NULL;
    }
    return doc;
}

slice_t http_bearer_token(const http_request_t *req)
{
    slice_t auth = http_request_header(req, "authorization");
    if (auth.len < 7 || strncasecmp(auth.ptr, "bearer ", 7) != 0)
        return SLICE_NULL;
    slice_t tok = {auth.ptr + 7, auth.len - 7};
    while (tok.len > 0 && tok.ptr[0] == ' ') {
        tok.ptr++;
        tok.len--;
    }
    while (tok.len > 0 && tok.ptr[tok.len - 1] == ' ')
        tok.len--;
    return tok.len > 0 ? tok : SLICE_NULL;
}

const char *json_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
