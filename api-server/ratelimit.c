#include "api-server/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>

#include "api-server/app.h"
#include "api-server/db.h"
#include "api-server/request.h"

/* KEYS: the counter. ARGV: window seconds. Returns {count, ttl}. */
static const char hit_script[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "local ttl = redis.call('TTL', KEYS[1])\n"
    "if n == 1 or ttl < 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "  ttl = tonumber(ARGV[1])\n"
    "end\n"
    "return {n, ttl}\n";

typedef struct hit {
    http_request_t *req;
    ratelimit_cb cb;
    int limit;
} hit_t;

static void on_hit(void *arg, redisReply *reply, const char *error)
{
    hit_t *h = arg;
    if (!api_redis_failed(h->req, reply, error)) {
        ratelimit_result_t r = {0};
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER &&
            reply->element[1]->type == REDIS_REPLY_INTEGER) {
            r.count = (long)reply->element[0]->integer;
            r.retry_after = (long)reply->element[1]->integer;
            r.limited = r.count > h->limit;
            h->cb(h->req, &r);
        } else {
            api_reply_internal(h->req, "unexpected rate-limit reply");
        }
    }
    free(h);
}

void ratelimit_hit(http_request_t *req, const char *what, const char *key, int limit,
                   int window_s, ratelimit_cb cb)
{
    hit_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    *h = (hit_t){req, cb, limit};
    char rkey[160], window[24];
    snprintf(rkey, sizeof(rkey), "ratelimit:%s:%s", what, key);
    snprintf(window, sizeof(window), "%d", window_s);
    const char *argv[] = {"EVAL", hit_script, "1", rkey, window};
    if (api_redis_send(api_app(req), on_hit, h, 5, argv) < 0) {
        free(h);
        api_reply_unavailable(req, "redis", "command not accepted");
    }
}
