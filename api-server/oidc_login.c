/*
 * GET /api/auth/login[?return_to=/path] → 302 to the provider's authorization endpoint.
 *
 * The authorization-code flow with PKCE (RFC 7636, S256), a fresh state and nonce, all three
 * kept in this browser's pending-login cookie (oidc_pending.h) until the callback. return_to
 * must be a path on our own origin (no open redirect); without it the browser returns to "/".
 * 404 OIDC_NOT_CONFIGURED without an issuer; 502 PROVIDER_UNAVAILABLE when the provider's
 * metadata cannot be had.
 */
#include <stdio.h>
#include <string.h>

#include "api-server/app.h"
#include "api-server/handlers.h"
#include "api-server/oidc.h"
#include "api-server/oidc_config.h"
#include "api-server/oidc_form.h"
#include "api-server/oidc_pending.h"
#include "api-server/oidc_provider.h"
#include "api-server/request.h"
#include "common/clock.h"
#include "common/http_json.h"
#include "common/log.h"

/* The authorization URL: the endpoint, our parameters, and room for a long endpoint. */
#define AUTH_URL_MAX 4096

static void on_metadata(void *arg, const oidc_metadata_t *md, const char *why)
{
    http_request_t *req = arg;
    api_app_t *app = api_app(req);
    const api_config_t *cfg = app->cfg;
    oidc_pending_t *pending = api_state(req);
    if (md == NULL) {
        oidc_reply_unavailable(req, "metadata", why);
        return;
    }
    char challenge[CRYPTO_TOKEN_LEN + 1];
    oidc_pending_challenge(pending, challenge);
    buf_t url = BUF_INIT(AUTH_URL_MAX);
    int rc = buf_append_str(&url, md->authorization_endpoint);
    const char *params[][2] = {
        {"response_type", "code"},
        {"client_id", cfg->oidc_client_id},
        {"redirect_uri", cfg->oidc_redirect_uri},
        {"scope", cfg->oidc_scopes},
        {"state", pending->state},
        {"nonce", pending->nonce},
        {"code_challenge", challenge},
        {"code_challenge_method", "S256"},
    };
    for (size_t i = 0; rc == 0 && i < sizeof(params) / sizeof(params[0]); i++)
        rc = oidc_query_add(&url, params[i][0], params[i][1]);
    if (rc < 0) {
        buf_free(&url);
        api_reply_internal(req, "authorization URL too long");
        return;
    }
    char cookie[OIDC_SET_COOKIE_MAX];
    oidc_pending_set_cookie(pending, pending->state, slice_from(cfg->session_secret),
                            oidc_callback_path(cfg), !cfg->dev, cookie);
    char state_prefix[16];
    log_info("oidc.login_started", "req=%s state=%s return_to_len=%zu", http_request_id(req),
             log_token_prefix(state_prefix, pending->state, strlen(pending->state)),
             strlen(pending->return_to));
    http_header_t h[] = {
        {SLICE_LIT("Location"), {url.data, url.len}},
        {SLICE_LIT("Set-Cookie"), slice_from(cookie)},
        {SLICE_LIT("Cache-Control"), SLICE_LIT("no-store")},
    };
    http_respond(req, 302, h, sizeof(h) / sizeof(h[0]), NULL, 0);
    buf_free(&url);
}

void api_auth_login(http_request_t *req)
{
    api_app_t *app = api_app(req);
    if (oidc_enabled_or_reply(req) < 0)
        return;
    char return_to[OIDC_RETURN_TO_MAX + 1] = "/";
    long n = http_request_query(req, "return_to", return_to, sizeof(return_to));
    if (n == -2 || (n >= 0 && !oidc_return_to_valid((slice_t){return_to, (size_t)n}))) {
        http_reply_error(req, 400, "INVALID_RETURN_TO",
                         "return_to must be a path on this site, such as /devices.");
        return;
    }
    if (n < 0)
        snprintf(return_to, sizeof(return_to), "/");
    oidc_pending_t *pending = api_state_new(req, sizeof(*pending), NULL);
    if (pending == NULL)
        return;
    if (oidc_pending_new(pending, return_to, clock_unix_ms() / 1000) < 0) {
        api_reply_unavailable(req, "random", "no randomness");
        return;
    }
    oidc_provider_metadata(app->oidc, on_metadata, req);
}
