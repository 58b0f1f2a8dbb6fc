/*
 * api-server configuration: the environment variables it reads (DESIGN.md's table), checked at
 * start. api_config_load() prints every problem and returns -1; the daemon then exits 2.
 */
#ifndef EDGEGATE_API_CONFIG_H
#define EDGEGATE_API_CONFIG_H

#include <stdio.h>

typedef struct api_config {
    const char *database_url;
    const char *redis_url;
    const char *internal_token;
    const char *listen;
    const char *internal_url;
    const char *public_origin;
    const char *session_secret;
    const char *mfa_key_b64;
    const char *mfa_retired_keys_b64; /* NULL: none */
    int mfa_require_admin;            /* admin routes need the admin to have MFA enabled */
    int dev;
    const char *log_level;
    /* OIDC sign-in (oidc_config.h); oidc_issuer NULL: off */
    const char *oidc_issuer;
    const char *oidc_client_id;
    const char *oidc_client_secret;
    const char *oidc_auth_method;
    const char *oidc_redirect_uri;
    const char *oidc_scopes;
    const char *oidc_ca_file;
    const char *oidc_post_logout_redirect_uri;
    int heartbeat_stale_s;
    unsigned ws_keepalive_ms; /* EDGEGATE_WS_KEEPALIVE */
} api_config_t;

int api_config_load(api_config_t *cfg, FILE *err);
void api_config_help(FILE *out);

#endif
