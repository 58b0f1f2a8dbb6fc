/*
 * mfa_mark: `mfa:verified:<account id>` in Redis (TTL MFA_MARK_SECONDS), the mark that the
 * account passed MFA within the last 30 minutes. Set by every accepted code (sign-in, verify,
 * confirm); read by the guard on step-up routes; cleared by disable and by an admin's reset.
 * The value is the unix time of the verification, for people reading Redis; only presence
 * counts.
 *
 * Every call is request-bound and fails closed: when Redis does not answer the request gets
 * 503 and the callback never runs.
 */
#ifndef EDGEGATE_API_MFA_MARK_H
#define EDGEGATE_API_MFA_MARK_H

#include <stdint.h>

#include "common/http_server.h"

#define MFA_MARK_SECONDS 1800
#define MFA_EVENTS_CHANNEL "edgegate:events"

/* present: whether the account has a fresh mark (mfa_mark_check), 1 after a set, 0 after a
 * clear. */
typedef void (*mfa_mark_cb)(http_request_t *req, int present);

void mfa_mark_set(http_request_t *req, int64_t account_id, mfa_mark_cb cb);
void mfa_mark_check(http_request_t *req, int64_t account_id, mfa_mark_cb cb);
/* Deletes the mark. publish_reset: in the same script, publish
 * {"type":"mfa.reset","account_id":N} on MFA_EVENTS_CHANNEL (WebSocket push ends the account's
 * sockets on it). */
void mfa_mark_clear(http_request_t *req, int64_t account_id, int publish_reset, mfa_mark_cb cb);

#endif
