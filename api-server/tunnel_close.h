/*
 * tunnel_close: asks remote-proxy to close a device's live tunnel, through its internal API:
 *
 *   POST <base>/internal/session/<device_id>/close
 *   Authorization: Bearer <EDGEGATE_INTERNAL_TOKEN>
 *
 * base is the replica that holds the tunnel (the value of tunnel:route:<device_id>), or
 * EDGEGATE_INTERNAL_URL when Redis names none. The whole exchange is bounded by
 * TUNNEL_CLOSE_TIMEOUT_MS so that a revoke answers promptly even when the replica is gone.
 */
#ifndef EDGEGATE_API_TUNNEL_CLOSE_H
#define EDGEGATE_API_TUNNEL_CLOSE_H

#include "api-server/app.h"

#define TUNNEL_CLOSE_TIMEOUT_MS 2000

enum tunnel_close_result {
    TUNNEL_CLOSE_CLOSED = 1, /* there was a tunnel; it is closed */
    TUNNEL_CLOSE_NONE,       /* the replica holds no tunnel for the device (404) */
    TUNNEL_CLOSE_FAILED,     /* no answer, or an unexpected one (logged) */
};

/* Exactly once, from the loop (never from inside tunnel_close_device()). */
typedef void (*tunnel_close_cb)(void *arg, enum tunnel_close_result result);

/* base NULL or "": the configured internal URL. device_id: canonical uuid text. Returns 0
 * (cb will run), or -1 when the request could not even start (logged; cb never runs). */
int tunnel_close_device(api_app_t *app, const char *base, const char *device_id, tunnel_close_cb cb,
                        void *arg);

#endif
