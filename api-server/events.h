/*
 * events: what api-server announces on the Redis channel `edgegate:events` (DESIGN.md's Redis
 * contract), beside what remote-proxy announces there (device.online, device.offline).
 *
 * Fire-and-forget: publishing never delays or changes an answer. Pub/sub keeps nothing, so an
 * event nobody listens to is gone; the audit log is the record, events are notifications.
 */
#ifndef EDGEGATE_API_EVENTS_H
#define EDGEGATE_API_EVENTS_H

#include <stdint.h>

#include "api-server/app.h"

/* {"type":type,"device_id":device_id,"user_id":"<owner account id>","at":"<ISO 8601>"}:
 * user_id is text, as in the credential record and remote-proxy's events. */
void api_event_device(api_app_t *app, const char *type, const char *device_id, int64_t owner);

#endif
