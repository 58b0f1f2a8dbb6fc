#include "remote-proxy/app.h"

#include <string.h>

#include "common/daemon.h"
#include "common/http_json.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/tls.h"
#include "remote-proxy/routes.h"
#include "remote-proxy/tunnel.h"

#define SHUTDOWN_GRACE_MS 10000

proxy_app_t *proxy_app(const http_request_t *req)
{
    return http_server_data(http_request_server(req));
}

static void internal_only(http_request_t *req, const http_route_t *route)
{
    if (!ops_has_internal_token(req)) {
        http_reply_error(req, 401, "UNAUTHORIZED", "The internal token is missing or wrong.");
        return;
    }
    route->handler(req);
}

/* The internal API needs the token on every route but the probes. */
static void internal_dispatch(http_request_t *req, const http_route_t *route)
{
    if (route->data != NULL) /* data marks a probe */
        route->handler(req);
    else
        internal_only(req, route);
}

static void on_ping(void *arg, redisReply *reply, const char *error)
{
    http_request_t *req = arg;
    if (error != NULL || reply->type == REDIS_REPLY_ERROR)
        http_reply_json(req, 503, json_pack("{s:s,s:s}", "status", "unavailable", "redis",
                                            error ? error : "error reply"));
    else
        http_reply_json(req, 200, json_pack("{s:s,s:s}", "status", "ready", "redis", "ok"));
}

static void readyz(http_request_t *req)
{
    if (redis_command(proxy_app(req)->redis, on_ping, req, "PING") < 0)
        http_reply_error(req, 503, "SERVICE_UNAVAILABLE", "Redis is unavailable.");
}

static const char probe[] = "probe";

/* forward/http carries a base64 body of up to 1 MiB inside JSON. */
#define FORWARD_HTTP_MAX_BODY (1536 * 1024)

static const http_route_t internal_routes[] = {
    {"GET", "/healthz", ops_healthz, 0, probe, 0},
    {"GET", "/readyz", readyz, 0, probe, 0},
    {"GET", "/metrics", ops_metrics, 0, NULL, 0},
    {"GET", "/internal/sessions", proxy_sessions_list, 0, NULL, 0},
    {"GET", "/internal/session/{device_id}", proxy_session_get, 0, NULL, 0},
    {"POST", "/internal/session/{device_id}/close", proxy_session_close, 0, NULL, 0},
    {"POST", "/internal/forward/http", proxy_forward_http, FORWARD_HTTP_MAX_BODY, NULL, 0},
    {"POST", "/internal/forward/raw", proxy_forward_raw, 0, NULL, 0},
    {"GET", "/internal/forward/ws", proxy_forward_ws, 0, NULL, 0},
    {"GET", "/internal/mux", proxy_mux, 0, NULL, 0},
};

static const http_route_t tunnel_routes[] = {
    {"GET", "/tunnel", proxy_tunnel_connect, 0, NULL, 0},
    {"GET", "/healthz", ops_healthz, 0, probe, 0},
};

static void on_redis_closed(void *arg)
{
    (void)arg;
}

static void on_server_closed(void *arg)
{
    proxy_app_t *app = arg;
    if (--app->servers_open > 0)
        return;
    redis_close(app->redis, on_redis_closed, app);
    http_server_free(app->tunnel);
    http_server_free(app->internal);
    daemon_signals_stop();
}

/* Stops whatever has started (both servers, or only some of them after a failed start). */
static void stop_all(proxy_app_t *app, unsigned grace_ms)
{
    app->servers_open = (app->tunnel != NULL) + (app->internal != NULL);
    if (app->servers_open == 0) {
        redis_close(app->redis, on_redis_closed, app);
        daemon_signals_stop();
        return;
    }
    if (app->tunnel != NULL)
        http_server_shutdown(app->tunnel, grace_ms, on_server_closed, app);
    if (app->internal != NULL)
        http_server_shutdown(app->internal, grace_ms, on_server_closed, app);
}

static void on_stop(void *arg, int signum)
{
    (void)signum;
    stop_all(arg, SHUTDOWN_GRACE_MS);
}

/* Creates and binds one server; NULL after logging why (the server, if made, is stopped by
 * stop_all through the app). */
static http_server_t *start_server(proxy_app_t *app, http_server_t **slot, const char *name,
                                   const char *addr, const http_route_t *routes, size_t n,
                                   void (*dispatch)(http_request_t *, const http_route_t *),
                                   struct tls_ctx *tls)
{
    http_server_config_t hc = {.name = name, .data = app, .dispatch = dispatch, .access_log = 1,
                               .tls = tls};
    *slot = http_server_new(app->loop, &hc, routes, n);
    if (*slot == NULL)
        return NULL;
    int rc = http_server_listen(*slot, addr);
    if (rc < 0) {
        log_error("proxy.listen_failed", "server=%s addr=%s err=%s", name, addr, uv_strerror(rc));
        return NULL;
    }
    log_info("proxy.listening", "server=%s addr=%s port=%d tls=%d", name, addr,
             http_server_port(*slot), tls != NULL);
    return *slot;
}

int proxy_serve(const proxy_config_t *cfg)
{
    proxy_app_t app;
    memset(&app, 0, sizeof(app));
    int status = 1;
    ops_set_internal_token(cfg->internal_token);
    /* Everything that can fail without handles comes first: then a bad configuration exits
     * without a loop to unwind. */
    if (cfg->tls_cert != NULL) {
        char err[256];
        app.tls = tls_ctx_server(cfg->tls_cert, cfg->tls_key, err, sizeof(err));
        if (app.tls == NULL) {
            log_error("proxy.tls_failed",
                      "variables=EDGEGATE_TLS_CERT,EDGEGATE_TLS_KEY error=\"%s\"", err);
            return 1;
        }
    }
    if (tunnel_registry_init() < 0)
        goto out;
    uv_loop_t loop;
    uv_loop_init(&loop);
    app.loop = &loop;
    app.cfg = cfg;
    redis_options ropts = {0};
    app.redis = redis_new(&loop, cfg->redis_url, &ropts);
    if (app.redis == NULL) {
        log_error("proxy.start_failed", "reason=redis");
        uv_loop_close(&loop);
        goto out;
    }
    int started =
        start_server(&app, &app.tunnel, "tunnel", cfg->tunnel_listen, tunnel_routes,
                     sizeof(tunnel_routes) / sizeof(tunnel_routes[0]), NULL, app.tls) != NULL &&
        start_server(&app, &app.internal, "internal", cfg->internal_listen, internal_routes,
                     sizeof(internal_routes) / sizeof(internal_routes[0]), internal_dispatch,
                     NULL) != NULL;
    if (started)
        daemon_signals_start(&loop, on_stop, &app);
    else
        stop_all(&app, 0); /* unwind what did start, so the loop can end */
    int leaked = daemon_run_loop(&loop);
    status = !started || leaked;
    log_info("proxy.stopped", "clean=%d", !leaked);
out:
    tunnel_registry_free();
    tls_ctx_free(app.tls);
    return status;
}
