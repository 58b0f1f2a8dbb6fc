/*
 * principal: who a session id belongs to, checked the way every signed-in request is.
 *
 * Given the hash of a session id:
 *   1. the session in Redis, within its idle and absolute lifetimes (and marked used);
 *   2. the account as PostgreSQL holds it now, so that a disabled account or a revoked session
 *      (its epoch is no longer the account's, sql/002_session_epoch.sql) stops working at once:
 *      from the row cache (row_cache.h), which PostgreSQL itself tells of every change, else
 *      read and cached.
 * The guard runs it for every request on a signed-in route and turns the outcome into
 * 401 / 503 / 500; the WebSocket routes run it at the handshake and again at every keepalive
 * round and turn it into a 4001 close. Not tied to a request: the caller's arg must stay valid
 * until the callback has run.
 */
#ifndef EDGEGATE_API_PRINCIPAL_H
#define EDGEGATE_API_PRINCIPAL_H

#include "api-server/account.h"
#include "api-server/app.h"

enum principal_status {
    PRINCIPAL_OK,
    PRINCIPAL_REFUSED,     /* no such session, account gone or disabled, session revoked */
    PRINCIPAL_UNAVAILABLE, /* Redis or PostgreSQL did not answer: fail closed */
    PRINCIPAL_FAILED,      /* a store answered with an error: a bug, not the caller's fault */
};

typedef struct principal_result {
    enum principal_status status;
    /* REFUSED: why, for the log only (no_session, account_gone, account_disabled,
     * session_revoked). UNAVAILABLE / FAILED: the dependency (redis, postgres, memory). */
    const char *reason;
    const char *detail; /* UNAVAILABLE / FAILED: the error text; else NULL */
    /* OK: the account as read now (its session_epoch is the session's). The callback owns it:
     * it moves it away (struct copy) or account_clear()s it. */
    account_t *account;
} principal_result_t;

typedef void (*principal_cb)(void *arg, const principal_result_t *result);

/* Returns 0 when the check started (cb runs exactly once, later), or -1 (cb never runs):
 * treat that as PRINCIPAL_UNAVAILABLE. session_hash is copied. */
int principal_check(api_app_t *app, const char *session_hash, principal_cb cb, void *arg);

#endif
