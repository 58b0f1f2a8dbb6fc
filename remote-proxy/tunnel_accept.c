/*
 * GET /tunnel on :3800: an edge agent's WebSocket upgrade. The credential comes, in this order,
 * from `Sec-WebSocket-Protocol: bearer.<token>` (echoed, as browsers and gorilla clients expect),
 * `Authorization: Bearer <token>`, or `?token=` (deprecated, logged). It must name a live
 * `tunnel:cred:<sha256hex(token)>` in Redis; anything else is 401 before the upgrade, and Redis
 * being unreachable is 503 (fail closed).
 */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/http_json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "remote-proxy/routes.h"
#include "remote-proxy/tunnel.h"

/* Device credentials are 43 base64url characters; anything much longer is not one. */
#define MAX_TOKEN 256

typedef struct pending {
    http_request_t *req;
    char token[MAX_TOKEN + 1];
    size_t token_len;
    char protocol[MAX_TOKEN + 8]; /* the subprotocol to echo, or "" */
} pending_t;

static metric_t *m_refused, *m_query_token;

static void refuse(http_request_t *req, int status, const char *code, const char *message)
{
    metric_inc(m_refused);
    http_reply_error(req, status, code, message);
}

static void on_credential(void *arg, redisReply *reply, const char *error)
{
    pending_t *p = arg;
    http_request_t *req = p->req;
    if (error != NULL || reply->type == REDIS_REPLY_ERROR) {
        log_warn("tunnel.auth_unavailable", "error=\"%s\"", error ? error : reply->str);
        refuse(req, 503, "SERVICE_UNAVAILABLE", "Credentials cannot be checked right now.");
        return;
    }
    const char *device_id = NULL, *user_id = NULL;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *k = reply->element[i], *v = reply->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "device_id") == 0)
                device_id = v->str;
            else if (strcmp(k->str, "user_id") == 0)
                user_id = v->str;
        }
    }
    char prefix[16];
    log_token_prefix(prefix, p->token, p->token_len);
    if (device_id == NULL || device_id[0] == '\0' || strlen(device_id) >= 80 ||
        (user_id != NULL && strlen(user_id) >= 80)) {
        log_info("tunnel.auth_refused", "token=%s remote=%s", prefix,
                 http_request_remote_addr(req));
        refuse(req, 401, "INVALID_CREDENTIAL", "The device credential is unknown or revoked.");
        return;
    }
    slice_t version = http_request_header(req, "x-agent-version");
    char agent_version[64];
    snprintf(agent_version, sizeof(agent_version), "%.*s",
             (int)(version.len < 63 ? version.len : 63), version.ptr ? version.ptr : "");
    for (char *c = agent_version; *c; c++) /* it lands in logs and JSON: keep it printable */
        if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\' || (unsigned char)*c >= 0x7f)
            *c = '?';
    tunnel_identity_t id = {device_id, user_id ? user_id : "", p->token, p->token_len,
                            agent_version, http_request_remote_addr(req)};
    proxy_app_t *app = proxy_app(req);
    tunnel_t *t = tunnel_new(app, &id);
    if (t == NULL) {
        refuse(req, 503, "SERVICE_UNAVAILABLE", "Out of memory.");
        return;
    }
    ws_t *ws = ws_accept(req, p->protocol[0] ? p->protocol : NULL, &tunnel_ws_options,
                         &tunnel_ws_callbacks, t);
    if (ws == NULL)
        tunnel_discard(t);
    else
        tunnel_start(t, ws);
}

void proxy_tunnel_connect(http_request_t *req)
{
    if (m_refused == NULL) {
        m_refused = metrics_counter("edgegate_tunnel_refused_total",
                                    "Tunnel upgrades refused before the WebSocket began.", NULL);
        m_query_token = metrics_counter("edgegate_tunnel_query_token_total",
                                        "Tunnels authenticated with the deprecated ?token=.", NULL);
    }
    pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        refuse(req, 503, "SERVICE_UNAVAILABLE", "Out of memory.");
        return;
    }
    http_request_set_data(req, p, free);
    p->req = req;
    slice_t token, proto;
    enum ws_token_source source = ws_request_token(req, &token, &proto, p->token, sizeof(p->token));
    if (proto.ptr != NULL && proto.len < sizeof(p->protocol))
        memcpy(p->protocol, proto.ptr, proto.len);
    if (token.len > 0 && token.len <= MAX_TOKEN) {
        memmove(p->token, token.ptr, token.len); /* ?token= was decoded into p->token itself */
        p->token_len = token.len;
    }
    if (source == WS_TOKEN_QUERY && p->token_len > 0) {
        metric_inc(m_query_token);
        log_info("tunnel.deprecated_query_token", "remote=%s", http_request_remote_addr(req));
    }
    if (p->token_len == 0) {
        refuse(req, 401, "MISSING_CREDENTIAL", "A device credential is required.");
        return;
    }
    char hash[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex(p->token, p->token_len, hash);
    if (redis_command(proxy_app(req)->redis, on_credential, p, "HGETALL tunnel:cred:%s", hash) < 0)
        refuse(req, 503, "SERVICE_UNAVAILABLE", "Credentials cannot be checked right now.");
}
