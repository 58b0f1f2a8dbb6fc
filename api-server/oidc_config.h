/*
 * oidc_config: the EDGEGATE_OIDC_* variables — their checkers (used by config.c's table) and
 * the rules that join them, applied once every variable has been read:
 *
 *   EDGEGATE_OIDC_ISSUER                 unset: OIDC sign-in is off (the routes answer 404).
 *                                        https://, or http:// with EDGEGATE_DEV=1 only
 *   EDGEGATE_OIDC_CLIENT_ID              required with an issuer
 *   EDGEGATE_OIDC_CLIENT_SECRET          a confidential client's secret; unset: public client
 *   EDGEGATE_OIDC_AUTH_METHOD            none | client_secret_basic | client_secret_post;
 *                                        default client_secret_basic with a secret, else none.
 *                                        A secret with "none", or a secret method without a
 *                                        secret, is refused (one of them is a mistake)
 *   EDGEGATE_OIDC_REDIRECT_URI           default EDGEGATE_PUBLIC_ORIGIN/api/auth/callback; must
 *                                        be under the public origin (the pending-login cookie
 *                                        is ours and must come back with the browser)
 *   EDGEGATE_OIDC_SCOPES                 default "openid email profile"; must include openid
 *   EDGEGATE_OIDC_CA_FILE                PEM CAs for the provider's certificate; unset: the
 *                                        system bundle
 *   EDGEGATE_OIDC_POST_LOGOUT_REDIRECT_URI  where the provider sends the browser after logout
 */
#ifndef EDGEGATE_API_OIDC_CONFIG_H
#define EDGEGATE_API_OIDC_CONFIG_H

#include <stdio.h>

#include "api-server/config.h"

#define OIDC_DEFAULT_SCOPES "openid email profile"
#define OIDC_CALLBACK_PATH "/api/auth/callback"

enum oidc_auth_method {
    OIDC_AUTH_NONE,                /* public client: PKCE only, client_id in the body */
    OIDC_AUTH_CLIENT_SECRET_BASIC, /* HTTP Basic with the url-encoded id and secret */
    OIDC_AUTH_CLIENT_SECRET_POST,  /* client_id and client_secret in the body */
};

/* Checkers for config.c's table (NULL: fine, else why not). */
const char *oidc_check_auth_method(const char *v);
const char *oidc_check_scopes(const char *v);
const char *oidc_check_ca_file(const char *v);

/* The cross-variable rules and defaults above; 0, or -1 after printing each problem to err. */
int oidc_config_finish(api_config_t *cfg, FILE *err);

/* cfg->oidc_auth_method (checked) as an enum. */
enum oidc_auth_method oidc_auth_method(const api_config_t *cfg);
/* The path part of EDGEGATE_OIDC_REDIRECT_URI: where the pending-login cookie is sent. */
const char *oidc_callback_path(const api_config_t *cfg);

#endif
