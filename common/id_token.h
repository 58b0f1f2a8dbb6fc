/*
 * id_token: the claim checks of an OpenID Connect ID token (OIDC Core §3.1.3.7, steps 2–11),
 * once its signature has been verified (jwt.h). Pure: the caller supplies the time.
 *
 *   iss    exactly the configured issuer
 *   aud    the client id, alone or among several; with several, azp must be present
 *   azp    when present, the client id
 *   exp    in the future (allowing the skew)
 *   iat    present, not in the future, not older than ID_TOKEN_MAX_AGE (all with the skew):
 *          the token was just issued to us at the token endpoint
 *   nbf    when present, not in the future
 *   nonce  exactly the one this sign-in sent (constant-time comparison)
 *   sub    present, 1 to 255 bytes, no control characters (§2)
 * email and name are read when they are strings of sane length, and otherwise left NULL: they
 * are profile data, never used to decide who someone is.
 */
#ifndef EDGEGATE_ID_TOKEN_H
#define EDGEGATE_ID_TOKEN_H

#include <jansson.h>
#include <stdint.h>

/* Clocks of the provider and ours may differ a little. */
#define ID_TOKEN_SKEW_SECONDS 60
#define ID_TOKEN_MAX_AGE_SECONDS 600
#define ID_TOKEN_SUB_MAX 255
#define ID_TOKEN_EMAIL_MAX 320
#define ID_TOKEN_NAME_MAX 800

enum id_token_result {
    ID_TOKEN_OK = 0,
    ID_TOKEN_BAD_ISSUER = -1,
    ID_TOKEN_BAD_AUDIENCE = -2, /* aud or azp */
    ID_TOKEN_EXPIRED = -3,
    ID_TOKEN_NOT_YET_VALID = -4, /* iat or nbf in the future, or iat missing or too old */
    ID_TOKEN_BAD_NONCE = -5,
    ID_TOKEN_BAD_SUBJECT = -6,
};

typedef struct id_token_expect {
    const char *issuer;
    const char *client_id;
    const char *nonce;
    int64_t now; /* Unix seconds */
} id_token_expect_t;

/* Pointers into the claims document: valid as long as it is. */
typedef struct id_token_identity {
    const char *sub;
    const char *email; /* NULL when absent or unusable */
    const char *name;  /* name, else preferred_username; NULL when neither is usable */
} id_token_identity_t;

int id_token_check(const json_t *claims, const id_token_expect_t *expect,
                   id_token_identity_t *out);
/* A short machine-friendly name for a result ("bad_issuer", ...), for logs and audit rows. */
const char *id_token_result_name(int result);

#endif
