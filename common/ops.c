#include "common/ops.h"

#include <string.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/http_json.h"
#include "common/metrics.h"

static const char *internal_token;

void ops_set_internal_token(const char *token)
{
    internal_token = token;
}

int ops_has_internal_token(const http_request_t *req)
{
    slice_t tok = http_bearer_token(req);
    if (internal_token == NULL || tok.ptr == NULL)
        return 0;
    return crypto_equal_str(tok.ptr, tok.len, internal_token, strlen(internal_token));
}

void ops_healthz(http_request_t *req)
{
    http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void ops_metrics(http_request_t *req)
{
    if (!ops_has_internal_token(req)) {
        http_reply_error(req, 401, "UNAUTHORIZED", "The internal token is missing or wrong.");
        return;
    }
    buf_t out = BUF_INIT(0);
    if (metrics_render(&out) < 0) {
        buf_free(&out);
        http_reply_error(req, 500, "INTERNAL", "Metrics could not be rendered.");
        return;
    }
    http_header_t h[1] = {
        {SLICE_LIT("Content-Type"), SLICE_LIT("text/plain; version=0.0.4; charset=utf-8")}};
    http_respond(req, 200, h, 1, out.data ? out.data : "", out.len);
    buf_free(&out);
}
