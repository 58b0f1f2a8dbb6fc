#include "api-server/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>

#include "api-server/app.h"
#include "api-server/db.h"
#include "api-server/request.h"
#include "common/log.h"

/* KEYS: the counter. ARGV: window seconds. Returns {count, ttl}. */
static const char hit_script[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "local ttl = redis.call('TTL', KEYS[1])\n"
    "if n == 1 or ttl < 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "  ttl = tonumber(ARGV[1])\n"
    "end\n"
    "return {n, ttl}\n";

/* KEYS: the counter. Decrements an existing counter; at zero it goes (its TTL with it). */
static const char refund_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('DECR', KEYS[1]) <= 0 then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

typedef struct hit {
    http_request_t *req;
    ratelimit_cb cb;
    ratelimit_arg_cb arg_cb;
    void *arg;
    int limit;
} hit_t;

/* The request has been answered (503 / 500) without a count: an arg caller still hears of it,
 * with r NULL, to release its context. */
static void hit_failed(hit_t *h)
{
    if (h->arg_cb != NULL)
        h->arg_cb(h->req, NULL, h->arg);
    free(h);
}

static void on_hit(void *arg, redisReply *reply, const char *error)
{
    hit_t *h = arg;
    if (api_redis_failed(h->req, reply, error)) {
        hit_failed(h);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        api_reply_internal(h->req, "unexpected rate-limit reply");
        hit_failed(h);
        return;
    }
    ratelimit_result_t r = {0};
    r.count = (long)reply->element[0]->integer;
    r.retry_after = (long)reply->element[1]->integer;
    r.limited = r.count > h->limit;
    if (h->arg_cb != NULL)
        h->arg_cb(h->req, &r, h->arg);
    else
        h->cb(h->req, &r);
    free(h);
}

static void counter_key(const char *what, const char *key, char out[160])
{
    snprintf(out, 160, "ratelimit:%s:%s", what, key);
}

static void hit(const char *what, const char *key, int window_s, const hit_t *how)
{
    hit_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        api_reply_unavailable(how->req, "memory", "out of memory");
        if (how->arg_cb != NULL)
            how->arg_cb(how->req, NULL, how->arg);
        return;
    }
    *h = *how;
    char rkey[160], window[24];
    counter_key(what, key, rkey);
    snprintf(window, sizeof(window), "%d", window_s);
    const char *argv[] = {"EVAL", hit_script, "1", rkey, window};
    if (api_redis_send(api_app(h->req), on_hit, h, 5, argv) < 0) {
        api_reply_unavailable(h->req, "redis", "command not accepted");
        hit_failed(h);
    }
}

void ratelimit_hit(http_request_t *req, const char *what, const char *key, int limit,
                   int window_s, ratelimit_cb cb)
{
    hit(what, key, window_s, &(hit_t){req, cb, NULL, NULL, limit});
}

void ratelimit_hit_arg(http_request_t *req, const char *what, const char *key, int limit,
                       int window_s, ratelimit_arg_cb cb, void *arg)
{
    hit(what, key, window_s, &(hit_t){req, NULL, cb, arg, limit});
}

static void on_refund(void *arg, redisReply *reply, const char *error)
{
    (void)arg;
    if (error != NULL || reply->type == REDIS_REPLY_ERROR)
        log_warn("ratelimit.refund_failed", "error=\"%s\"", error ? error : "error reply");
}

void ratelimit_refund(api_app_t *app, const char *what, const char *key)
{
    char rkey[160];
    counter_key(what, key, rkey);
    const char *argv[] = {"EVAL", refund_script, "1", rkey};
    if (api_redis_send(app, on_refund, NULL, 4, argv) < 0)
        log_warn("ratelimit.refund_failed", "error=\"command not accepted\"");
}
