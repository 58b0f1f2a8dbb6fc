/*
 * device_presence: keeps devices.last_seen_at current from remote-proxy's events on
 * `edgegate:events` (device.online when a tunnel comes up, device.offline when it goes), so a
 * device that is offline now still shows when it was last connected.
 *
 * Every api-server replica listens and writes the same value, which is harmless. Events are
 * lost while the subscription is down (pub/sub keeps nothing); the online state itself never
 * depends on them (it is tunnel:route:<id>, see device.h).
 */
#ifndef EDGEGATE_API_DEVICE_PRESENCE_H
#define EDGEGATE_API_DEVICE_PRESENCE_H

#include "api-server/app.h"

/* Subscribes on app->redis. 0, or -1 (logged; the daemon runs without it). */
int device_presence_start(api_app_t *app);

#endif
