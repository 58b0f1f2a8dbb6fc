/*
 * push_publish: what api-server announces on the Redis channel `edgegate:events` (see
 * push_message.h for the shapes). Every replica, this one included, acts on an event only when
 * it comes back from the channel, so a console sees the same thing whichever replica it is
 * connected to and whichever replica handled the request.
 *
 * Fire and forget: a handler does not wait for Redis and a failure is only logged (its reply
 * does not depend on the event). Redis pub/sub keeps nothing for a replica that is not
 * listening; what matters for security (revocation) is also re-checked by every socket at each
 * keepalive round (push_conn.h), so a lost event delays it by one round at most.
 */
#ifndef EDGEGATE_API_PUSH_PUBLISH_H
#define EDGEGATE_API_PUSH_PUBLISH_H

#include <stdint.h>

#include "api-server/account.h"
#include "api-server/app.h"

/* An operator's new status (PUT /api/agents/me/status). */
void push_publish_agent_status(api_app_t *app, const account_t *account);
/* One session ended (logout): its sockets close with 4001. */
void push_publish_session_ended(api_app_t *app, int64_t account_id, const char *session_hash);
/* The account's session epoch moved on to epoch (password change, role change, disable):
 * sockets of sessions issued before close with 4001. */
void push_publish_sessions_revoked(api_app_t *app, int64_t account_id, int64_t epoch);
/* The account's MFA was reset by an admin: its consoles are told, then closed with 4001. */
void push_publish_mfa_reset(api_app_t *app, int64_t account_id);

/* Publishes text as it is (what push_message.c builds); takes ownership of text (may be NULL
 * after a failed build: then only logged). */
void push_publish_text(api_app_t *app, const char *what, char *text);

#endif
