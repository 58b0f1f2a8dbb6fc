/*
 * remote-proxy configuration: the environment variables it reads (DESIGN.md's table).
 */
#ifndef EDGEGATE_PROXY_CONFIG_H
#define EDGEGATE_PROXY_CONFIG_H

#include <stdio.h>

typedef struct proxy_config {
    const char *redis_url;
    const char *internal_token;
    const char *tunnel_listen;
    const char *internal_listen;
    const char *internal_url;
    const char *tls_cert;
    const char *tls_key;
    unsigned keepalive_ms;
    int dev;
    const char *log_level;
} proxy_config_t;

int proxy_config_load(proxy_config_t *cfg, FILE *err);
void proxy_config_help(FILE *out);

#endif
