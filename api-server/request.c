#include "api-server/request.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/http_json.h"
#include "common/log.h"

typedef struct api_ctx {
    int signed_in;
    api_principal_t principal;
    json_t *body;
    void *state;
    void (*state_free)(void *state);
} api_ctx_t;

static void ctx_free(void *data)
{
    api_ctx_t *ctx = data;
    if (ctx->state_free != NULL && ctx->state != NULL)
        ctx->state_free(ctx->state);
    free(ctx->state);
    json_decref(ctx->body);
    account_clear(&ctx->principal.account);
    free(ctx);
}

int api_request_attach(http_request_t *req)
{
    api_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return -1;
    http_request_set_data(req, ctx, ctx_free);
    return 0;
}

api_principal_t *api_request_principal_slot(http_request_t *req)
{
    api_ctx_t *ctx = http_request_data(req);
    return &ctx->principal;
}

void api_request_signed_in(http_request_t *req)
{
    api_ctx_t *ctx = http_request_data(req);
    ctx->signed_in = 1;
}

const api_principal_t *api_principal(const http_request_t *req)
{
    const api_ctx_t *ctx = http_request_data(req);
    return ctx != NULL && ctx->signed_in ? &ctx->principal : NULL;
}

void api_request_keep_json(http_request_t *req, json_t *doc)
{
    api_ctx_t *ctx = http_request_data(req);
    json_decref(ctx->body);
    ctx->body = doc;
}

void *api_state_new(http_request_t *req, size_t size, void (*free_fn)(void *state))
{
    api_ctx_t *ctx = http_request_data(req);
    void *state = calloc(1, size);
    if (state == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return NULL;
    }
    ctx->state = state;
    ctx->state_free = free_fn;
    return state;
}

void *api_state(const http_request_t *req)
{
    const api_ctx_t *ctx = http_request_data(req);
    return ctx->state;
}

void api_reply_unavailable(http_request_t *req, const char *what, const char *why)
{
    log_warn("api.unavailable", "req=%s dependency=%s error=\"%s\"", http_request_id(req), what,
             why);
    http_reply_error(req, 503, "SERVICE_UNAVAILABLE",
                     "A service this request needs is unavailable; try again shortly.");
}

void api_reply_internal(http_request_t *req, const char *what)
{
    log_error("api.internal_error", "req=%s what=\"%s\"", http_request_id(req), what);
    http_reply_error(req, 500, "INTERNAL", "Something went wrong on our side.");
}

void api_reply_rate_limited(http_request_t *req, long retry_after)
{
    char secs[24];
    snprintf(secs, sizeof(secs), "%ld", retry_after > 0 ? retry_after : 1);
    http_header_t h[1] = {{SLICE_LIT("Retry-After"), slice_from(secs)}};
    http_request_set_log_note(req, "RATE_LIMITED");
    http_reply_json_h(req, 429,
                      json_pack("{s:{s:s,s:s}}", "error", "code", "RATE_LIMITED", "message",
                                "Too many attempts; wait before trying again."),
                      h, 1);
}

const char *api_i64(int64_t v, char out[24])
{
    snprintf(out, 24, "%" PRId64, v);
    return out;
}
