#include "api-server/fields.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "api-server/account.h"
#include "api-server/request.h"
#include "common/http_json.h"

static int field_error(http_request_t *req, const api_field_t *f, int missing)
{
    char msg[160];
    if (missing) {
        snprintf(msg, sizeof(msg), "The field '%s' is required.", f->name);
        http_reply_error(req, 422, "MISSING_FIELD", msg);
    } else if (f->type == API_FIELD_STRING) {
        snprintf(msg, sizeof(msg), "The field '%s' must be a string of %lld to %lld bytes.",
                 f->name, f->min, f->max);
        http_reply_error(req, 422, f->code ? f->code : "INVALID_FIELD", msg);
    } else if (f->type == API_FIELD_INT) {
        snprintf(msg, sizeof(msg), "The field '%s' must be an integer from %lld to %lld.",
                 f->name, f->min, f->max);
        http_reply_error(req, 422, f->code ? f->code : "INVALID_FIELD", msg);
    } else {
        snprintf(msg, sizeof(msg), "The field '%s' must be true or false.", f->name);
        http_reply_error(req, 422, f->code ? f->code : "INVALID_FIELD", msg);
    }
    return -1;
}

/* 1 valid, 0 invalid. */
static int check_value(const api_field_t *f, const json_t *v, api_value_t *out)
{
    switch (f->type) {
    case API_FIELD_STRING: {
        if (!json_is_string(v))
            return 0;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (strlen(s) != len || (long long)len < f->min || (long long)len > f->max)
            return 0;
        out->str = s;
        out->len = len;
        return 1;
    }
    case API_FIELD_INT:
        if (!json_is_integer(v))
            return 0;
        out->num = json_integer_value(v);
        return out->num >= f->min && out->num <= f->max;
    case API_FIELD_BOOL:
        if (!json_is_boolean(v))
            return 0;
        out->flag = json_is_true(v);
        return 1;
    }
    return 0;
}

int api_fields_or_reply(http_request_t *req, const api_field_t *fields, size_t n,
                        api_value_t *out)
{
    json_t *doc = http_body_json_or_reply(req);
    if (doc == NULL)
        return -1;
    api_request_keep_json(req, doc);
    memset(out, 0, n * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(doc, fields[i].name);
        if (v == NULL || json_is_null(v)) {
            if (fields[i].required)
                return field_error(req, &fields[i], 1);
            continue;
        }
        if (!check_value(&fields[i], v, &out[i]))
            return field_error(req, &fields[i], 0);
        out[i].present = 1;
    }
    return 0;
}

int api_param_login_or_reply(http_request_t *req, const char *name, char out[65])
{
    slice_t raw = http_request_param(req, name);
    long n = raw.ptr ? slice_percent_decode(raw, 0, out, ACCOUNT_LOGIN_MAX + 1) : -1;
    int ok = n >= 0;
    size_t o = ok ? (size_t)n : 0;
    if (!ok || !account_login_valid(out, o)) {
        http_reply_error(req, 404, "NOT_FOUND", "No such agent.");
        return -1;
    }
    return 0;
}
