#include "api-server/mfa_mark.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "api-server/app.h"
#include "api-server/db.h"
#include "api-server/request.h"
#include "common/clock.h"

/* KEYS: the mark. ARGV: "1" to publish, the channel, the event. One round trip, and the event
 * goes out only if the mark is really gone. */
static const char clear_script[] =
    "redis.call('DEL', KEYS[1])\n"
    "if ARGV[1] == '1' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end\n"
    "return 0\n";

#define MARK_KEY_MAX 48

typedef struct mark_call {
    http_request_t *req;
    mfa_mark_cb cb;
    int (*present)(const redisReply *reply);
} mark_call_t;

static void mark_key(int64_t account_id, char out[MARK_KEY_MAX])
{
    snprintf(out, MARK_KEY_MAX, "mfa:verified:%" PRId64, account_id);
}

static int always(const redisReply *reply)
{
    (void)reply;
    return 1;
}

static int never(const redisReply *reply)
{
    (void)reply;
    return 0;
}

static int found(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_STRING;
}

static void on_reply(void *arg, redisReply *reply, const char *error)
{
    mark_call_t *c = arg;
    if (!api_redis_failed(c->req, reply, error))
        c->cb(c->req, c->present(reply));
    free(c);
}

static void mark_send(http_request_t *req, mfa_mark_cb cb, int (*present)(const redisReply *),
                 int argc, const char **argv)
{
    mark_call_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    *c = (mark_call_t){req, cb, present};
    if (api_redis_send(api_app(req), on_reply, c, argc, argv) < 0) {
        free(c);
        api_reply_unavailable(req, "redis", "command not accepted");
    }
}

void mfa_mark_set(http_request_t *req, int64_t account_id, mfa_mark_cb cb)
{
    char key[MARK_KEY_MAX], now[24], ttl[24];
    mark_key(account_id, key);
    const char *argv[] = {"SET", key, api_i64(clock_unix_ms() / 1000, now), "EX",
                          api_i64(MFA_MARK_SECONDS, ttl)};
    mark_send(req, cb, always, 5, argv);
}

void mfa_mark_check(http_request_t *req, int64_t account_id, mfa_mark_cb cb)
{
    char key[MARK_KEY_MAX];
    mark_key(account_id, key);
    const char *argv[] = {"GET", key};
    mark_send(req, cb, found, 2, argv);
}

void mfa_mark_clear(http_request_t *req, int64_t account_id, int publish_reset, mfa_mark_cb cb)
{
    char key[MARK_KEY_MAX], event[80];
    mark_key(account_id, key);
    snprintf(event, sizeof(event), "{\"type\":\"mfa.reset\",\"account_id\":%" PRId64 "}",
             account_id);
    const char *argv[] = {"EVAL", clear_script, "1", key, publish_reset ? "1" : "0",
                          MFA_EVENTS_CHANNEL, event};
    mark_send(req, cb, never, 7, argv);
}
