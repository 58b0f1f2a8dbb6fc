#include "api-server/push_publish.h"

#include <stdlib.h>

#include "api-server/db.h"
#include "api-server/push_message.h"
#include "common/log.h"

static void on_published(void *arg, redisReply *reply, const char *error)
{
    const char *what = arg;
    if (error != NULL || reply->type == REDIS_REPLY_ERROR)
        log_warn("push.publish_failed", "event=%s error=\"%s\"", what,
                 error ? error : "error reply");
}

void push_publish_text(api_app_t *app, const char *what, char *text)
{
    if (text == NULL) {
        log_warn("push.publish_failed", "event=%s error=\"out of memory\"", what);
        return;
    }
    /* what is a string literal: it outlives the command. */
    const char *argv[3] = {"PUBLISH", PUSH_CHANNEL, text};
    if (api_redis_send(app, on_published, (void *)what, 3, argv) < 0)
        log_warn("push.publish_failed", "event=%s error=\"command not accepted\"", what);
    free(text);
}

void push_publish_agent_status(api_app_t *app, const account_t *a)
{
    push_publish_text(app, "agent.status", push_event_agent_status(a->login, a->name, a->status));
}

void push_publish_session_ended(api_app_t *app, int64_t account_id, const char *session_hash)
{
    push_publish_text(app, "session.ended", push_event_session_ended(account_id, session_hash));
}

void push_publish_sessions_revoked(api_app_t *app, int64_t account_id, int64_t epoch)
{
    push_publish_text(app, "account.sessions_revoked",
                      push_event_sessions_revoked(account_id, epoch));
}

void push_publish_mfa_reset(api_app_t *app, int64_t account_id)
{
    push_publish_text(app, "mfa.reset", push_event_mfa_reset(account_id));
}
