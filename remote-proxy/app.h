/*
 * app: the remote-proxy process — its loop, Redis, the tunnel listener and the internal API.
 * Handlers reach it through proxy_app(req).
 */
#ifndef EDGEGATE_PROXY_APP_H
#define EDGEGATE_PROXY_APP_H

#include <uv.h>

#include "common/http_server.h"
#include "common/redis.h"
#include "remote-proxy/config.h"

typedef struct proxy_app {
    uv_loop_t *loop;
    const proxy_config_t *cfg;
    redis *redis;
    http_server_t *tunnel;
    http_server_t *internal;
    struct tls_ctx *tls; /* the tunnel port's certificate, when configured */
    int servers_open;
} proxy_app_t;

int proxy_serve(const proxy_config_t *cfg);
proxy_app_t *proxy_app(const http_request_t *req);

#endif
