/*
 * app: the api-server process — its loop, dependencies, HTTP server and route table — and the
 * handlers' view of it. Handlers reach the app through api_app(req).
 */
#ifndef EDGEGATE_API_APP_H
#define EDGEGATE_API_APP_H

#include <uv.h>

#include "api-server/config.h"
#include "api-server/mfa_keys.h"
#include "common/http_server.h"
#include "common/pgpool.h"
#include "common/redis.h"

typedef struct api_app {
    uv_loop_t *loop;
    const api_config_t *cfg;
    /* NULL once closed at shutdown (see db.h: api_pg_send, api_redis_send). */
    pgpool *db;
    redis *redis;
    struct row_cache *rows; /* accounts and device owners between requests (row_cache.h) */
    http_server_t *http;
    struct oidc_provider *oidc; /* NULL when OIDC sign-in is off */
    mfa_keys_t *mfa_keys; /* TOTP secrets at rest, from EDGEGATE_MFA_KEY (+ retired keys) */
    struct push_hub *push; /* real-time sockets (push_hub.h); freed after Redis is closed */
    struct proxy_channels *channels; /* one channel per proxy replica (proxy_channel.h) */
    int stopping;
} api_app_t;

/* Serves until SIGTERM/SIGINT; returns the process exit status. */
int api_serve(const api_config_t *cfg);

api_app_t *api_app(const http_request_t *req);

#endif
