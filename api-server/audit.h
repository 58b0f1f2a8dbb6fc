/*
 * audit: security events (sign-in, sign-out, password change, revoked sessions, account
 * administration) into audit_log, plus one `audit` log line each.
 *
 * Fire-and-forget: the insert never delays or changes the answer; if it fails, the log line
 * still records the event and the failure is logged. Who: account_id is the account the event
 * is about (0 when there is none, e.g. a failed login for an unknown name); the actor is the
 * signed-in principal when that is someone else (an admin acting on an agent). The remote
 * address and request id come from the request. detail is a JSON object or NULL; the reference
 * is taken. It must not hold secrets: no passwords, no tokens.
 */
#ifndef EDGEGATE_API_AUDIT_H
#define EDGEGATE_API_AUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "common/http_server.h"

/* outcome: "ok", "failed", "denied" or "locked" (the table's CHECK constraint). */
void api_audit(http_request_t *req, const char *event, const char *outcome, int64_t account_id,
               json_t *detail);

#endif
