/*
 * push_hub: api-server's real-time sockets and the channel that feeds them.
 *
 * The hub lists every open push connection (push_conn.h), by account and by kind, and
 * subscribes to `edgegate:events` (a second Redis connection, renewed after every reconnect:
 * redis.h). Each event is routed as push_message.h says: to the owner's sockets, to every
 * operator console, or it closes sockets whose session has ended. Events are acted on only as
 * they come back from the channel, never straight from the request that caused them, so every
 * replica delivers the same events (push_publish.h).
 *
 * One hub per process, made at start-up; freed after the HTTP server (every socket gone) and
 * the Redis client (no more messages) are closed.
 */
#ifndef EDGEGATE_API_PUSH_HUB_H
#define EDGEGATE_API_PUSH_HUB_H

#include <stddef.h>

#include "api-server/app.h"
#include "api-server/push_conn.h"

typedef struct push_hub push_hub_t;
typedef struct push_member push_member_t;

/* Subscribes to the channel. NULL on no memory. */
push_hub_t *push_hub_new(api_app_t *app);
void push_hub_free(push_hub_t *hub);

/* ---- for push_conn ---- */

/* Lists c; NULL on no memory. */
push_member_t *push_hub_add(push_hub_t *hub, push_conn_t *c);
void push_hub_remove(push_hub_t *hub, push_member_t *member);
/* {"type":"pong"}, shared. */
push_msg_t *push_hub_pong(push_hub_t *hub);

#endif
