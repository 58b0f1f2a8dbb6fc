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

#include "api-server/app.h"
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
/* The same for modules that carry their own context. Unlike ratelimit_hit, cb also runs when
 * the request was answered without a count (Redis down: 503), with r NULL, so that arg can be
 * released; the caller then does nothing else with the request. */
typedef void (*ratelimit_arg_cb)(http_request_t *req, const ratelimit_result_t *r, void *arg);
void ratelimit_hit_arg(http_request_t *req, const char *what, const char *key, int limit,
                       int window_s, ratelimit_arg_cb cb, void *arg);

/*
 * Gives one counted attempt back (never below zero, never creating a counter). A limit on
 * *failures* counts every attempt first, so that many guesses sent at once are bounded too,
 * then refunds the attempts that succeeded. Not request-bound: a failure is only logged.
 */
void ratelimit_refund(api_app_t *app, const char *what, const char *key);

#endif
