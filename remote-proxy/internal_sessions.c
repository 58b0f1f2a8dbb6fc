/* /internal/sessions and /internal/session/{device_id}: what is connected, and closing it. */
#include <string.h>

#include "common/http_json.h"
#include "remote-proxy/routes.h"

static void add_session(tunnel_t *t, void *arg)
{
    json_array_append_new(arg, tunnel_describe(t));
}

void proxy_sessions_list(http_request_t *req)
{
    json_t *list = json_array();
    tunnel_each(add_session, list);
    size_t n = json_array_size(list);
    http_reply_json(req, 200, json_pack("{s:o,s:I}", "sessions", list, "total", (json_int_t)n));
}

/* Device ids travel in the path as sent; they are ours (UUIDs), so no decoding is needed, but
 * a length bound keeps the lookup key sane. */
static tunnel_t *tunnel_from_path(http_request_t *req)
{
    slice_t id = http_request_param(req, "device_id");
    char key[128];
    if (id.len == 0 || id.len >= sizeof(key)) {
        http_reply_error(req, 404, "NOT_FOUND", "No session for that device.");
        return NULL;
    }
    memcpy(key, id.ptr, id.len);
    key[id.len] = '\0';
    tunnel_t *t = tunnel_find_device(key);
    if (t == NULL)
        http_reply_error(req, 404, "NOT_FOUND", "No session for that device.");
    return t;
}

void proxy_session_get(http_request_t *req)
{
    tunnel_t *t = tunnel_from_path(req);
    if (t != NULL)
        http_reply_json(req, 200, tunnel_describe(t));
}

void proxy_session_close(http_request_t *req)
{
    tunnel_t *t = tunnel_from_path(req);
    if (t == NULL)
        return;
    tunnel_close(t, "closed by the internal API");
    http_reply_json(req, 200, json_pack("{s:b}", "closed", 1));
}

tunnel_t *proxy_tunnel_named(const http_head_t *head, const char *device_id,
                            const char *session_token, proxy_refusal_t *no)
{
    char dev[128], sess[64];
    if (device_id == NULL) {
        slice_t h = http_head_header(head, "x-device-id");
        if (h.len > 0 && h.len < sizeof(dev)) {
            memcpy(dev, h.ptr, h.len);
            dev[h.len] = '\0';
            device_id = dev;
        }
    }
    if (device_id == NULL && session_token == NULL) {
        slice_t h = http_head_header(head, "x-session-token");
        if (h.len > 0 && h.len < sizeof(sess)) {
            memcpy(sess, h.ptr, h.len);
            sess[h.len] = '\0';
            session_token = sess;
        }
    }
    if (device_id == NULL && session_token == NULL) {
        *no = (proxy_refusal_t){400, "MISSING_DEVICE", "Name the device (device_id or X-Device-Id)."};
        return NULL;
    }
    tunnel_t *t = device_id ? tunnel_find_device(device_id) : tunnel_find_session(session_token);
    if (t == NULL)
        *no = (proxy_refusal_t){502, "TUNNEL_DISCONNECTED", "The device is not connected."};
    return t;
}

tunnel_t *proxy_tunnel_or_reply(http_request_t *req, const char *device_id,
                                const char *session_token)
{
    proxy_refusal_t no;
    tunnel_t *t = proxy_tunnel_named(http_request_head(req), device_id, session_token, &no);
    if (t == NULL)
        http_reply_error(req, no.status, no.code, no.message);
    return t;
}
