#include "api-server/events.h"

#include <jansson.h>
#include <stdlib.h>

#include "api-server/db.h"
#include "api-server/request.h"
#include "common/clock.h"
#include "common/log.h"

#define EVENTS_CHANNEL "edgegate:events"

static void on_published(void *arg, redisReply *reply, const char *error)
{
    const char *type = arg;
    if (error != NULL || reply->type == REDIS_REPLY_ERROR)
        log_warn("api.event_not_published", "type=%s error=\"%s\"", type,
                 error ? error : "error reply");
}

void api_event_device(api_app_t *app, const char *type, const char *device_id, int64_t owner)
{
    char at[CLOCK_ISO8601_LEN], user[24];
    clock_iso8601(clock_unix_ms(), at);
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "type", type, "device_id", device_id, "user_id",
                           api_i64(owner, user), "at", at);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    const char *argv[3] = {"PUBLISH", EVENTS_CHANNEL, text};
    /* type is a string literal: it outlives the command. */
    if (text == NULL || api_redis_send(app, on_published, (void *)type, 3, argv) < 0)
        log_warn("api.event_not_published", "type=%s error=\"not sent\"", type);
    free(text);
}
