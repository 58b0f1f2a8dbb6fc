#include "common/jwt.h"

#include <string.h>

#include "common/crypto.h"

/* The three segments of a compact JWS, as slices of the token. */
typedef struct segments {
    const char *part[3];
    size_t len[3];
} segments_t;

static int split(const char *token, size_t len, segments_t *s)
{
    const char *p = token, *end = token + len;
    for (int i = 0; i < 3; i++) {
        const char *dot = i < 2 ? memchr(p, '.', (size_t)(end - p)) : end;
        if (dot == NULL)
            return -1;
        s->part[i] = p;
        s->len[i] = (size_t)(dot - p);
        /* An empty signature (how alg "none" tokens look) passes here so that the header
         * check can say why the token is refused. */
        if (i < 2 && s->len[i] == 0)
            return -1;
        if (i < 2)
            p = dot + 1;
    }
    /* A fourth dot would have ended up in the signature segment, whose alphabet refuses it. */
    return 0;
}

/* Decodes a segment that must be a JSON object of at most max bytes; NULL otherwise. */
static json_t *segment_json(const char *b64, size_t len, size_t max)
{
    uint8_t buf[JWT_MAX_CLAIMS];
    long n = jose_b64url_decode(b64, len, buf, max < sizeof(buf) ? max : sizeof(buf));
    if (n <= 0)
        return NULL;
    json_error_t err;
    json_t *doc = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* Reads alg, kid and crit from the header into t. */
static int read_header(const json_t *header, jwt_t *t, const char **why)
{
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (alg == NULL) {
        *why = "header without \"alg\"";
        return JWT_MALFORMED;
    }
    t->alg = jose_alg_parse(alg);
    if (t->alg == JOSE_ALG_UNSUPPORTED) {
        *why = strcmp(alg, "none") == 0 ? "unsigned token (alg none) refused"
               : strncmp(alg, "HS", 2) == 0 ? "HMAC-signed token refused"
                                            : "signature algorithm not supported";
        return JWT_BAD_ALG;
    }
    if (json_object_get(header, "crit") != NULL) {
        *why = "critical header extensions are not supported";
        return JWT_MALFORMED;
    }
    const json_t *kid = json_object_get(header, "kid");
    if (kid != NULL) {
        if (!json_is_string(kid) || json_string_length(kid) > JWKS_KID_MAX) {
            *why = "bad \"kid\"";
            return JWT_MALFORMED;
        }
        t->kid_len = json_string_length(kid);
        memcpy(t->kid, json_string_value(kid), t->kid_len);
        t->kid[t->kid_len] = '\0';
        t->has_kid = 1;
    }
    return JWT_OK;
}

int jwt_parse(const char *token, size_t len, jwt_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    segments_t s;
    if (len > JWT_MAX_LEN) {
        *why = "token too long";
        return JWT_MALFORMED;
    }
    if (split(token, len, &s) < 0) {
        *why = "not three dot-separated segments";
        return JWT_MALFORMED;
    }
    json_t *header = segment_json(s.part[0], s.len[0], JWT_MAX_HEADER);
    if (header == NULL) {
        *why = "header is not a base64url JSON object";
        return JWT_MALFORMED;
    }
    int rc = read_header(header, out, why);
    json_decref(header);
    if (rc != JWT_OK) {
        jwt_clear(out);
        return rc;
    }
    long sig_len = jose_b64url_decode(s.part[2], s.len[2], out->sig, sizeof(out->sig));
    if (sig_len <= 0) {
        jwt_clear(out);
        *why = "signature missing, not base64url, or too long";
        return JWT_MALFORMED;
    }
    out->sig_len = (size_t)sig_len;
    out->claims = segment_json(s.part[1], s.len[1], JWT_MAX_CLAIMS);
    if (out->claims == NULL) {
        jwt_clear(out);
        *why = "payload is not a base64url JSON object";
        return JWT_MALFORMED;
    }
    /* The signing input is the header and payload exactly as sent, dot included (§5.2). */
    crypto_sha256(token, s.len[0] + 1 + s.len[1], out->digest);
    return JWT_OK;
}

int jwt_verify(const jwt_t *t, jwks_t *keys)
{
    jwk_t *key = jwks_find(keys, t->has_kid ? t->kid : NULL, t->kid_len, t->alg);
    if (key == NULL)
        return JWT_UNKNOWN_KEY;
    return jwk_verify(key, t->alg, t->digest, t->sig, t->sig_len) == 0 ? JWT_OK
                                                                        : JWT_BAD_SIGNATURE;
}

void jwt_clear(jwt_t *t)
{
    json_decref(t->claims);
    memset(t, 0, sizeof(*t));
}
