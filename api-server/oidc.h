/*
 * oidc: what the OIDC handlers (oidc_login.c, oidc_callback.c) and the logout in auth.c share:
 * the on/off answer, the provider-unavailable answer, client credentials for HTTP Basic, and
 * the ID token kept with a session for RP-initiated logout.
 *
 * The ID token is stored in the session's own Redis hash (`session:<sha256hex(id)>`, field
 * `id_token`), so it lives and dies with the session. It is not a credential here (api-server
 * never accepts ID tokens as bearer tokens); it is kept only because the provider's
 * end_session_endpoint wants it back as id_token_hint (OpenID Connect RP-Initiated Logout §2).
 */
#ifndef EDGEGATE_API_OIDC_H
#define EDGEGATE_API_OIDC_H

#include "api-server/config.h"
#include "common/http_server.h"
#include "common/redis.h"

/* 0 when OIDC sign-in is configured; else answers 404 OIDC_NOT_CONFIGURED and returns -1. */
int oidc_enabled_or_reply(http_request_t *req);
/* 502 PROVIDER_UNAVAILABLE after logging what (metadata, token, jwks) failed and why. */
void oidc_reply_unavailable(http_request_t *req, const char *what, const char *why);

/* Stores id_token with the session whose id is session_id (if it still exists); cb gets the
 * Redis reply. -1 when the command cannot be sent (cb never runs). */
int oidc_session_keep_id_token(http_request_t *req, const char *session_id,
                               const char *id_token, redis_reply_cb cb);

/*
 * Logout, before the session is deleted: when the session came from an OIDC sign-in and the
 * provider has an end_session_endpoint, builds the URL that ends the provider's session too
 * (id_token_hint, client_id, post_logout_redirect_uri when configured); then done(req).
 * Uses the request's handler state (api_state). Redis failing answers 503 instead.
 */
void oidc_logout_prepare(http_request_t *req, const char *session_hash,
                         void (*done)(http_request_t *req));
/* The URL built by oidc_logout_prepare, or NULL. */
const char *oidc_logout_url(const http_request_t *req);

#endif
