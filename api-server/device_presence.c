#include "api-server/device_presence.h"

#include <jansson.h>
#include <string.h>

#include "api-server/db.h"
#include "api-server/uuid_text.h"
#include "common/log.h"

/* remote-proxy's events are a few hundred bytes; anything far larger is not one of them. */
#define EVENT_MAX 4096

static void on_written(void *arg, const PGresult *res, const char *error)
{
    (void)arg;
    if (error != NULL || !pgpool_ok(res))
        log_warn("device_presence.write_failed", "error=\"%s\"", error ? error : "sql error");
}

static void on_event(void *arg, const char *msg, size_t len)
{
    api_app_t *app = arg;
    if (len > EVENT_MAX)
        return;
    json_t *ev = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *device = json_string_value(json_object_get(ev, "device_id"));
    char id[UUID_TEXT_LEN + 1];
    if (type != NULL && device != NULL &&
        (strcmp(type, "device.online") == 0 || strcmp(type, "device.offline") == 0) &&
        uuid_text_parse(slice_from(device), id) == 0) {
        const char *values[1] = {id};
        if (api_pg_send(app,
                        "UPDATE devices SET last_seen_at = now()"
                        " WHERE id = $1::uuid AND revoked_at IS NULL",
                        1, values, on_written, NULL) < 0)
            log_debug("device_presence.write_failed", "error=\"query not accepted\"");
    }
    json_decref(ev);
}

int device_presence_start(api_app_t *app)
{
    if (redis_subscribe(app->redis, "edgegate:events", on_event, app) < 0) {
        log_warn("device_presence.unavailable", "note=\"last_seen_at will not be updated\"");
        return -1;
    }
    return 0;
}
