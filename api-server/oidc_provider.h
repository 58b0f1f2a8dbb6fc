/*
 * oidc_provider: api-server's view of its OpenID provider — the discovery document (OpenID
 * Connect Discovery 1.0), the signing keys (JWKS) and every HTTPS exchange with it (common/
 * http_client.h over common/tls.h: chain and host name verified against EDGEGATE_OIDC_CA_FILE
 * or the system bundle).
 *
 * Caching:
 *   - discovery is fetched at start (in the background) or on first use, and kept; after
 *     OIDC_METADATA_MAX_AGE_MS it is fetched again on the next use, which meanwhile goes on
 *     with what is in hand. Its "issuer" must be the configured issuer exactly (§4.3) and its
 *     endpoints https:// (http:// only with EDGEGATE_DEV=1);
 *   - the key set is fetched with it and kept the same way; an ID token whose kid is not in it
 *     makes one fetch of the set (key rotation at the provider just works), but no more often
 *     than every OIDC_JWKS_KID_REFRESH_MS, so tokens naming unknown keys cannot turn us into a
 *     flood of requests to the provider.
 * One fetch of each at a time: callers that arrive meanwhile wait for it.
 *
 * Callbacks run from the loop, never from inside the call that asked. oidc_provider_close()
 * cancels whatever is in flight: every pending callback then runs once with an error, so the
 * requests waiting on it are answered, and nothing runs after.
 */
#ifndef EDGEGATE_API_OIDC_PROVIDER_H
#define EDGEGATE_API_OIDC_PROVIDER_H

#include <stddef.h>
#include <uv.h>

#include "api-server/config.h"
#include "common/http_client.h"
#include "common/jwt.h"

#define OIDC_METADATA_MAX_AGE_MS (3600 * 1000)
#define OIDC_JWKS_KID_REFRESH_MS (10 * 1000)
/* Each exchange with the provider, connect to last byte. */
#define OIDC_FETCH_TIMEOUT_MS 10000

typedef struct oidc_provider oidc_provider_t;

typedef struct oidc_metadata {
    const char *issuer;
    const char *authorization_endpoint;
    const char *token_endpoint;
    const char *jwks_uri;
    const char *end_session_endpoint; /* NULL when the provider offers no RP-initiated logout */
} oidc_metadata_t;

/* NULL (and why in err) when the TLS client context cannot be made (e.g. a bad CA file). */
oidc_provider_t *oidc_provider_new(uv_loop_t *loop, const api_config_t *cfg, char *err,
                                   size_t err_size);
/* Cancels everything in flight (see above) and frees the provider. NULL is fine. */
void oidc_provider_close(oidc_provider_t *p);

/*
 * md: the provider's metadata, valid during the call only; NULL when it could not be had, and
 * why then says so in words (for the log: it names hosts and TLS errors, not secrets).
 */
typedef void (*oidc_metadata_cb)(void *arg, const oidc_metadata_t *md, const char *why);
void oidc_provider_metadata(oidc_provider_t *p, oidc_metadata_cb cb, void *arg);

/* result: JWT_OK, JWT_UNKNOWN_KEY (none in the set, even after a refresh), JWT_BAD_SIGNATURE,
 * or 1 when the key set could not be had (why says why). */
#define OIDC_KEYS_UNAVAILABLE 1
typedef void (*oidc_verify_cb)(void *arg, int result, const char *why);
/* Checks t's signature with the provider's keys; t must stay alive until cb. */
void oidc_provider_verify(oidc_provider_t *p, const jwt_t *t, oidc_verify_cb cb, void *arg);

/*
 * An exchange with the provider (the token endpoint): rq as for http_fetch, without tls (the
 * provider's is used) and with timeout and size limits filled in when zero. cb follows
 * http_fetch_cb's contract; it also runs (with UV_ECANCELED) when the provider is closed.
 * -1 when the request is unusable (then cb never runs).
 */
int oidc_provider_fetch(oidc_provider_t *p, const http_fetch_request_t *rq, http_fetch_cb cb,
                        void *arg);

/* The metadata in hand without fetching anything (NULL if none yet): for logout, which must
 * not wait on the provider. Valid until the next call into this module. */
const oidc_metadata_t *oidc_provider_cached(const oidc_provider_t *p);

#endif
