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
    int dev;
    const char *log_level;
    unsigned ws_keepalive_ms; /* EDGEGATE_WS_KEEPALIVE */
} api_config_t;

int api_config_load(api_config_t *cfg, FILE *err);
void api_config_help(FILE *out);

#endif
