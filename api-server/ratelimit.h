/*
 * ratelimit: fixed-window attempt counters in Redis, `ratelimit:<what>:<key>`.
 *
 * One script increments the counter and sets its expiry on the first hit, atomically, so a
 * counter can never be left without a TTL (which would lock the key out for good). Callers
 * count *before* doing the expensive or sensitive work (a password hash), so the limit bounds
 * the CPU an attacker can make us spend as well as the guesses they get.
 *
 * Fail closed: when Redis does not answer the request gets 503 and the callback never runs.
 */
#ifndef EDGEGATE_API_RATELIMIT_H
#define EDGEGATE_API_RATELIMIT_H

#include "common/http_server.h"

typedef struct ratelimit_result {
    long count;       /* attempts in the current window, this one included */
    int limited;      /* count > limit */
    long retry_after; /* seconds until the window ends (for Retry-After) */
} ratelimit_result_t;

typedef void (*ratelimit_cb)(http_request_t *req, const ratelimit_result_t *r);

/* Counts one attempt against ratelimit:<what>:<key>, allowing limit per window_s seconds. */
void ratelimit_hit(http_request_t *req, const char *what, const char *key, int limit,
                   int window_s, ratelimit_cb cb);

#endif
