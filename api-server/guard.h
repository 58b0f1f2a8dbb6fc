/*
 * guard: the auth guard, http_server's dispatch hook for api-server. It attaches the request
 * context (request.h) and enforces the route's rule (routes.h) before the handler runs:
 *
 *   public     the handler runs
 *   websocket  the handler runs and checks the session itself, the same way (principal.h),
 *              answering a refusal with a WebSocket close 4001 instead of 401
 *   internal   the internal token (constant-time comparison), else 401
 *   signed-in, agent, admin:
 *     1. a credential: bearer token, or session cookie with a valid HMAC (a forged cookie
 *        never reaches Redis)                                             else 401
 *     2. the session in Redis, within its idle and absolute lifetimes     else 401
 *     3. the account in PostgreSQL, read for every request so that a disabled account or a
 *        revoked session (epoch moved on) stops working at once           else 401
 *        (steps 2-3 are principal_check(), shared with the WebSocket routes)
 *     4. CSRF: a cookie-authenticated request whose method is not GET/HEAD/OPTIONS needs
 *        `Origin` equal to EDGEGATE_PUBLIC_ORIGIN                         else 403
 *     5. the role the route needs                                         else 403
 *     6. admin routes, with EDGEGATE_MFA_REQUIRE_ADMIN=1: the admin has MFA enabled
 *                                                      else 403 MFA_ENROLMENT_REQUIRED
 *     7. API_STEP_UP routes: `mfa:verified:<account id>` exists in Redis (mfa_mark.h), i.e.
 *        a code was accepted within 30 minutes; an account without MFA never has it
 *                                                      else 403 MFA_REQUIRED
 *   then the principal is attached (api_principal) and the handler runs.
 *
 * Every 401 carries the same body whichever check failed. When Redis or PostgreSQL does not
 * answer at steps 2–3 or 7 the answer is 503 SERVICE_UNAVAILABLE: never a fallback that lets a
 * request through.
 */
#ifndef EDGEGATE_API_GUARD_H
#define EDGEGATE_API_GUARD_H

#include "common/http_server.h"

void api_dispatch(http_request_t *req, const http_route_t *route);

/* Is the request's Origin the public origin? required=0 also accepts no Origin at all
 * (API clients send none; browsers always send one on POST). */
int api_origin_ok(const http_request_t *req, int required);

#endif
