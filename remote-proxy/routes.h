/*
 * The remote-proxy's handlers. Route tables live in app.c: the tunnel port serves /tunnel and
 * /healthz; the internal port serves the internal API (token required) and the probes.
 */
#ifndef EDGEGATE_PROXY_ROUTES_H
#define EDGEGATE_PROXY_ROUTES_H

#include "common/http_server.h"
#include "remote-proxy/tunnel.h"

void proxy_tunnel_connect(http_request_t *req);     /* GET /tunnel */

void proxy_sessions_list(http_request_t *req);      /* GET /internal/sessions */
void proxy_session_get(http_request_t *req);        /* GET /internal/session/{device_id} */
void proxy_session_close(http_request_t *req);      /* POST /internal/session/{device_id}/close */
void proxy_forward_http(http_request_t *req);       /* POST /internal/forward/http */
void proxy_forward_raw(http_request_t *req);        /* POST /internal/forward/raw */
void proxy_forward_ws(http_request_t *req);         /* GET /internal/forward/ws */
void proxy_mux(http_request_t *req);                /* GET /internal/mux */

/* Why a forward cannot go on: the status and JSON error it is answered with. */
typedef struct proxy_refusal {
    int status;
    const char *code, *message; /* static strings */
} proxy_refusal_t;

/* The tunnel a forward's head names (X-Device-Id / X-Session-Token, or the given values); NULL
 * with *no set: 400 MISSING_DEVICE or 502 TUNNEL_DISCONNECTED. */
tunnel_t *proxy_tunnel_named(const http_head_t *head, const char *device_id,
                             const char *session_token, proxy_refusal_t *no);

/*
 * The tunnel a forward names: X-Device-Id / X-Session-Token headers (or the given values).
 * NULL after answering 400 MISSING_DEVICE or 502 TUNNEL_DISCONNECTED.
 */
tunnel_t *proxy_tunnel_or_reply(http_request_t *req, const char *device_id,
                                const char *session_token);

#endif
