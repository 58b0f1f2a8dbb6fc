/*
 * resolve: a host name to addresses with uv_getaddrinfo (libuv's thread pool, so the loop never
 * blocks on DNS), shared by everything in the process that connects to that host.
 *
 * One resolver per host:port. Its answer is kept for RESOLVE_TTL_MS and one lookup at most is in
 * flight: ten thousand tunnels reconnecting at once cost one lookup, not ten thousand. A
 * numeric host (an IPv4 or IPv6 literal) is parsed once and never looked up. Failures are not
 * kept: the next request looks again.
 *
 * A request is owned by the caller (embed it) and must stay put until its callback ran or it
 * was cancelled. The callback runs exactly once unless cancelled: from inside resolver_get()
 * when the answer is at hand (a fresh cache, or a lookup that cannot even start), otherwise
 * from the loop. The addresses are valid during the callback only.
 */
#ifndef EDGEGATE_RESOLVE_H
#define EDGEGATE_RESOLVE_H

#include <uv.h>

#define RESOLVE_TTL_MS 30000
#define RESOLVE_MAX_ADDRS 4

typedef struct resolver resolver_t;
typedef struct resolve_req resolve_req_t;

/* status 0 with n >= 1 addresses, or a negative libuv error (UV_EAI_*). */
typedef void (*resolve_cb)(resolve_req_t *req, int status, const struct sockaddr *const *addrs,
                           unsigned n);

struct resolve_req {
    resolve_req_t *prev, *next; /* waiting for the lookup */
    resolver_t *resolver;       /* non-NULL while pending */
    resolve_cb cb;
    unsigned gen; /* the lookup it waits for */
    void *data;   /* the caller's */
};

/* host without brackets ("::1", "example.com"). NULL when out of memory. */
resolver_t *resolver_new(uv_loop_t *loop, const char *host, unsigned port);
/* Cancels every pending request; a lookup in flight finishes in the background. */
void resolver_free(resolver_t *r);

void resolver_get(resolver_t *r, resolve_req_t *req, resolve_cb cb);
/* No callback will run for req. Harmless when it is not pending. */
void resolve_cancel(resolve_req_t *req);

static inline int resolve_pending(const resolve_req_t *req)
{
    return req->resolver != NULL;
}

#endif
