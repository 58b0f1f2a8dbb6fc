#include "api-server/tunnel_close.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/uuid_text.h"
#include "common/http_client.h"
#include "common/log.h"

/* A route is a base URL a replica advertised (its EDGEGATE_INTERNAL_URL). */
#define BASE_MAX 2048

typedef struct closing {
    tunnel_close_cb cb;
    void *arg;
    char device_id[UUID_TEXT_LEN + 1];
} closing_t;

static void on_response(void *arg, int err, const http_fetch_response_t *res, const char *why)
{
    closing_t *c = arg;
    enum tunnel_close_result result = TUNNEL_CLOSE_FAILED;
    if (err < 0)
        log_warn("tunnel_close.failed", "device=%s error=\"%s\"", c->device_id, why);
    else if (res->status == 200)
        result = TUNNEL_CLOSE_CLOSED;
    else if (res->status == 404)
        result = TUNNEL_CLOSE_NONE;
    else
        log_warn("tunnel_close.failed", "device=%s status=%d", c->device_id, res->status);
    c->cb(c->arg, result);
    free(c);
}

int tunnel_close_device(api_app_t *app, const char *base, const char *device_id, tunnel_close_cb cb,
                        void *arg)
{
    if (base == NULL || base[0] == '\0')
        base = app->cfg->internal_url;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    const char *why = "route too long";
    closing_t *c = NULL;
    http_fetch_t *f = NULL;
    if (blen <= BASE_MAX && (c = calloc(1, sizeof(*c))) != NULL) {
        *c = (closing_t){.cb = cb, .arg = arg};
        snprintf(c->device_id, sizeof(c->device_id), "%s", device_id);
        char url[BASE_MAX + 64], auth[512];
        snprintf(url, sizeof(url), "%.*s/internal/session/%s/close", (int)blen, base, device_id);
        snprintf(auth, sizeof(auth), "Bearer %s", app->cfg->internal_token);
        http_header_t h[1] = {{SLICE_LIT("Authorization"), slice_from(auth)}};
        http_fetch_request_t rq = {.method = "POST",
                                   .url = url,
                                   .headers = h,
                                   .nheaders = 1,
                                   .timeout_ms = TUNNEL_CLOSE_TIMEOUT_MS,
                                   .max_response = 4096};
        f = http_fetch(app->loop, &rq, on_response, c, &why);
        explicit_bzero(auth, sizeof(auth));
    } else if (blen <= BASE_MAX) {
        why = "out of memory";
    }
    if (f != NULL)
        return 0;
    log_warn("tunnel_close.failed", "device=%s error=\"%s\"", device_id, why);
    free(c);
    return -1;
}
