#include "common/id_token.h"

#include <string.h>

#include "common/crypto.h"

static int string_is(const json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want) &&
           memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

/* A NumericDate claim (seconds; JSON numbers may carry a fraction). -1 when absent or bad. */
static int numeric_date(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(claims, name);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0 && d < 9e15)) /* also false for NaN */
            return -1;
        *out = (int64_t)d;
    } else {
        return -1;
    }
    return *out >= 0 ? 0 : -1;
}

static int audience_ok(const json_t *claims, const char *client_id)
{
    const json_t *aud = json_object_get(claims, "aud");
    const json_t *azp = json_object_get(claims, "azp");
    if (azp != NULL && !string_is(azp, client_id))
        return 0;
    if (json_is_string(aud))
        return string_is(aud, client_id);
    if (!json_is_array(aud) || json_array_size(aud) == 0)
        return 0;
    int found = 0;
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (!json_is_string(a))
            return 0;
        found |= string_is(a, client_id);
    }
    /* Several audiences: the token must say it was issued to us (azp, §3.1.3.7 step 4). */
    if (json_array_size(aud) > 1 && azp == NULL)
        return 0;
    return found;
}

static int times_ok(const json_t *claims, int64_t now, int *result)
{
    int64_t exp, iat, nbf;
    if (numeric_date(claims, "exp", &exp) < 0 || exp + ID_TOKEN_SKEW_SECONDS <= now) {
        *result = ID_TOKEN_EXPIRED;
        return 0;
    }
    if (numeric_date(claims, "iat", &iat) < 0 || iat > now + ID_TOKEN_SKEW_SECONDS ||
        iat + ID_TOKEN_MAX_AGE_SECONDS + ID_TOKEN_SKEW_SECONDS < now) {
        *result = ID_TOKEN_NOT_YET_VALID;
        return 0;
    }
    if (json_object_get(claims, "nbf") != NULL &&
        (numeric_date(claims, "nbf", &nbf) < 0 || nbf > now + ID_TOKEN_SKEW_SECONDS)) {
        *result = ID_TOKEN_NOT_YET_VALID;
        return 0;
    }
    return 1;
}

/* A string claim of at most max bytes with no control characters, else NULL. */
static const char *profile_string(const json_t *claims, const char *name, size_t max)
{
    const json_t *v = json_object_get(claims, name);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return NULL;
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return NULL;
    return (const char *)s;
}

int id_token_check(const json_t *claims, const id_token_expect_t *e, id_token_identity_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!string_is(json_object_get(claims, "iss"), e->issuer))
        return ID_TOKEN_BAD_ISSUER;
    if (!audience_ok(claims, e->client_id))
        return ID_TOKEN_BAD_AUDIENCE;
    int result = ID_TOKEN_OK;
    if (!times_ok(claims, e->now, &result))
        return result;
    const json_t *nonce = json_object_get(claims, "nonce");
    if (!json_is_string(nonce) || !crypto_equal_str(json_string_value(nonce),
                                                    json_string_length(nonce), e->nonce,
                                                    strlen(e->nonce)))
        return ID_TOKEN_BAD_NONCE;
    out->sub = profile_string(claims, "sub", ID_TOKEN_SUB_MAX);
    if (out->sub == NULL)
        return ID_TOKEN_BAD_SUBJECT;
    out->email = profile_string(claims, "email", ID_TOKEN_EMAIL_MAX);
    out->name = profile_string(claims, "name", ID_TOKEN_NAME_MAX);
    if (out->name == NULL)
        out->name = profile_string(claims, "preferred_username", ID_TOKEN_NAME_MAX);
    return ID_TOKEN_OK;
}

const char *id_token_result_name(int result)
{
    switch (result) {
    case ID_TOKEN_OK:
        return "ok";
    case ID_TOKEN_BAD_ISSUER:
        return "bad_issuer";
    case ID_TOKEN_BAD_AUDIENCE:
        return "bad_audience";
    case ID_TOKEN_EXPIRED:
        return "expired";
    case ID_TOKEN_NOT_YET_VALID:
        return "bad_time";
    case ID_TOKEN_BAD_NONCE:
        return "bad_nonce";
    case ID_TOKEN_BAD_SUBJECT:
        return "bad_subject";
    default:
        return "unknown";
    }
}
