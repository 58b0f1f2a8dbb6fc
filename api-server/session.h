/*
 * session: server-side login sessions in Redis (see session_cookie.h for their wire forms).
 *
 *   session:<sha256hex(id)>       hash {account_id, roles, epoch, created, last_seen}
 *                                 TTL = idle timeout, refreshed at every use, but never past
 *                                 created + absolute lifetime (also checked against created)
 *   sessions:account:<account id> set of that account's session hashes, so that all of them
 *                                 can be ended at once; pruned of expired members and capped
 *                                 at SESSION_MAX_PER_ACCOUNT (the oldest is ended)
 *
 * Only the hash of an id is stored, so a Redis dump does not hand out live sessions. Each
 * operation is one Lua script: atomic, one round trip. The scripts name keys they derive from
 * the set, which a single Redis (not Redis Cluster) allows.
 *
 * `epoch` is accounts.session_epoch when the session was issued; the guard refuses a session
 * whose epoch is no longer the account's (sql/002_session_epoch.sql). That is what revokes;
 * deleting the keys (session_revoke_all) only tidies up. `roles` records what the session was
 * issued with, for operators reading Redis; the guard goes by the account's current roles,
 * and every role change bumps the epoch anyway.
 *
 * Request-bound calls answer 503 themselves when Redis does not answer (fail closed) and then
 * do not call back; session_find, which is not tied to a request (the WebSocket routes check a
 * session long after its request is gone), reports the failure instead. Times are wall-clock
 * seconds.
 */
#ifndef EDGEGATE_API_SESSION_H
#define EDGEGATE_API_SESSION_H

#include <stdint.h>

#include "api-server/account.h"
#include "api-server/app.h"
#include "api-server/session_cookie.h"
#include "common/http_server.h"

#define SESSION_IDLE_SECONDS (8 * 3600)
#define SESSION_ABSOLUTE_SECONDS (7 * 24 * 3600)
#define SESSION_MAX_PER_ACCOUNT 64

typedef struct session_info {
    int64_t account_id;
    int64_t epoch;
    int64_t created;
} session_info_t;

/* id: the new session id (the bearer token), valid during the call only. */
typedef void (*session_created_cb)(http_request_t *req, const char *id);
enum session_find_status {
    SESSION_FOUND,
    SESSION_NOT_FOUND,   /* never existed, expired, logged out, revoked */
    SESSION_UNAVAILABLE, /* Redis did not answer (error says why): fail closed */
    SESSION_FAILED,      /* Redis answered with an error (error is its text): a bug */
};
/* info: set when FOUND, valid during the call only. */
typedef void (*session_find_cb)(void *arg, enum session_find_status status,
                                const session_info_t *info, const char *error);
typedef void (*session_done_cb)(http_request_t *req);

/*
 * A new session for account (its id, roles and session_epoch), with a fresh random id: every
 * sign-in and privilege change gets a new one (fixation defence). revoke_others: end the
 * account's other sessions in the same step (password change).
 */
void session_create(http_request_t *req, const account_t *account, int revoke_others,
                    session_created_cb cb);
/*
 * Finds the session by the hash of its id and marks it used (idle timer restarted). Returns 0
 * when the command was sent (cb runs exactly once, later), or -1 (cb never runs): treat that as
 * SESSION_UNAVAILABLE.
 */
int session_find(api_app_t *app, const char *hash, session_find_cb cb, void *arg);
/* Ends one session (logout). */
void session_delete(http_request_t *req, int64_t account_id, const char *hash,
                    session_done_cb cb);
/* Deletes every session key of an account; not request-bound, failures are only logged. */
void session_revoke_all(api_app_t *app, int64_t account_id);

/* Answers 200 {token, agent{...}} with the session's cookie: a sign-in's reply. */
void session_reply(http_request_t *req, const char *id, const account_t *account);

/* The Set-Cookie value for a session id (signed; Secure unless EDGEGATE_DEV=1), or, with id
 * NULL, the one that clears the cookie. */
void session_set_cookie_for(const api_app_t *app, const char *id,
                            char out[SESSION_SET_COOKIE_MAX]);

#endif
