#include "api-server/app.h"

#include <stdlib.h>
#include <string.h>

#include "api-server/device_presence.h"
#include "api-server/guard.h"
#include "api-server/proxy_channel.h"
#include "api-server/oidc_provider.h"
#include "api-server/push_hub.h"
#include "api-server/routes.h"
#include "api-server/row_cache.h"
#include "common/daemon.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/ops.h"

/* In-flight requests get this long to finish after SIGTERM (Kubernetes allows 30 s). */
#define SHUTDOWN_GRACE_MS 10000

api_app_t *api_app(const http_request_t *req)
{
    return http_server_data(http_request_server(req));
}

/* A request that outlived the HTTP server's grace period (a password job still on the thread
 * pool) may call back after the clients are gone: it then finds NULL and answers 503. */
static void on_redis_closed(void *arg)
{
    api_app_t *app = arg;
    app->redis = NULL;
    /* Every socket closed with the HTTP server, and no channel message comes any more. */
    push_hub_free(app->push);
    app->push = NULL;
}

static void on_db_closed(void *arg)
{
    api_app_t *app = arg;
    app->db = NULL;
    row_cache_free(app->rows); /* its LISTEN connection is gone */
    app->rows = NULL;
}

/* The front door's clients ended with their requests, the channels just now. */
static void on_channels_closed(void *arg)
{
    (void)arg;
    http_client_cleanup();
}

static void on_http_closed(void *arg)
{
    api_app_t *app = arg;
    log_info("api.http_closed", "server=api");
    /* Requests still waiting on PostgreSQL or Redis are answered by the errors that closing
     * the clients delivers; the server itself is freed with the last of them. */
    oidc_provider_close(app->oidc); /* requests waiting on the provider answer now */
    app->oidc = NULL;
    pgpool_close(app->db, on_db_closed, app);
    redis_close(app->redis, on_redis_closed, app);
    http_server_free(app->http);
    proxy_channels_close(app->channels, on_channels_closed, app);
    app->channels = NULL;
    daemon_signals_stop();
}

static void on_stop(void *arg, int signum)
{
    api_app_t *app = arg;
    (void)signum;
    app->stopping = 1;
    http_server_shutdown(app->http, SHUTDOWN_GRACE_MS, on_http_closed, app);
}

int api_serve(const api_config_t *cfg)
{
    api_app_t app;
    memset(&app, 0, sizeof(app));
    /* Before anything else exists: a bad key list is a configuration error (exit 2). */
    const char *why;
    app.mfa_keys = mfa_keys_new(cfg->mfa_key_b64, cfg->mfa_retired_keys_b64, &why);
    if (app.mfa_keys == NULL) {
        log_error("api.start_failed", "reason=mfa_keys error=\"%s\"", why);
        return 2;
    }
    log_info("api.mfa_keys", "current_key_id=%s retired_keys=%zu require_admin=%d",
             mfa_keys_current_id(app.mfa_keys), mfa_keys_retired_count(app.mfa_keys),
             cfg->mfa_require_admin);
    uv_loop_t loop;
    uv_loop_init(&loop);
    app.loop = &loop;
    app.cfg = cfg;
    ops_set_internal_token(cfg->internal_token);
    if (cfg->dev)
        log_warn("api.dev_mode", "note=\"EDGEGATE_DEV=1: non-Secure cookies and http:// issuers "
                                 "allowed; never in production\"");

    app.rows = row_cache_new(&loop);
    pgpool_options popts = {.listen_channel = ROW_CACHE_CHANNEL,
                            .on_listen = row_cache_on_listen,
                            .listen_arg = app.rows};
    app.db = app.rows != NULL ? pgpool_new(&loop, cfg->database_url, &popts) : NULL;
    redis_options ropts = {0};
    app.redis = redis_new(&loop, cfg->redis_url, &ropts);
    if (app.db == NULL || app.redis == NULL) {
        log_error("api.start_failed", "reason=%s", app.db == NULL ? "database" : "redis");
        return 1;
    }
    if (cfg->oidc_issuer != NULL) {
        char err[200];
        app.oidc = oidc_provider_new(&loop, cfg, err, sizeof(err));
        if (app.oidc == NULL) {
            log_error("api.start_failed", "reason=oidc error=\"%s\"", err);
            return 1;
        }
    }
    app.channels = proxy_channels_new(&loop, cfg->internal_token);
    if (app.channels == NULL) {
        log_error("api.start_failed", "reason=memory");
        return 1;
    }
    device_presence_start(&app);
    if ((app.push = push_hub_new(&app)) == NULL) {
        log_error("api.start_failed", "reason=push");
        return 1;
    }
    size_t nroutes;
    const http_route_t *routes = api_routes(&nroutes);
    if (api_routes_check(routes, nroutes) < 0)
        return 1;
    http_server_config_t hc = {.name = "api", .data = &app, .dispatch = api_dispatch,
                               .access_log = 1};
    app.http = http_server_new(&loop, &hc, routes, nroutes);
    if (app.http == NULL) {
        log_error("api.start_failed", "reason=routes");
        return 1;
    }
    int rc = http_server_listen(app.http, cfg->listen);
    if (rc < 0) {
        log_error("api.listen_failed", "addr=%s err=%s", cfg->listen, uv_strerror(rc));
        return 1;
    }
    log_info("api.listening", "addr=%s port=%d", cfg->listen, http_server_port(app.http));
    daemon_signals_start(&loop, on_stop, &app);
    int leaked = daemon_run_loop(&loop);
    mfa_keys_free(app.mfa_keys);
    log_info("api.stopped", "clean=%d", !leaked);
    return leaked ? 1 : 0;
}
