#include "common/resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef union resolve_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} resolve_addr_t;

typedef struct lookup {
    uv_getaddrinfo_t req;
    resolver_t *resolver; /* NULL once the resolver is gone */
} lookup_t;

struct resolver {
    uv_loop_t *loop;
    char *host;
    char port[8];
    resolve_addr_t addrs[RESOLVE_MAX_ADDRS];
    unsigned naddrs;
    int numeric;      /* a literal: the answer never expires */
    uint64_t expires; /* loop time */
    lookup_t *lookup; /* in flight */
    unsigned gen;     /* lookups finished */
    resolve_req_t *head, *tail;
};

resolver_t *resolver_new(uv_loop_t *loop, const char *host, unsigned port)
{
    resolver_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->host = strdup(host)) == NULL) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    snprintf(r->port, sizeof(r->port), "%u", port);
    if (uv_ip4_addr(host, (int)port, &r->addrs[0].in4) == 0 ||
        uv_ip6_addr(host, (int)port, &r->addrs[0].in6) == 0) {
        r->numeric = 1;
        r->naddrs = 1;
    }
    return r;
}

static void unlink_req(resolver_t *r, resolve_req_t *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        r->head = req->next;
    if (req->next)
        req->next->prev = req->prev;
    else
        r->tail = req->prev;
    req->prev = req->next = NULL;
    req->resolver = NULL;
}

void resolve_cancel(resolve_req_t *req)
{
    if (req->resolver != NULL) unlink_req(req->resolver, req);
}

void resolver_free(resolver_t *r)
{
    if (r == NULL) return;
    while (r->head != NULL)
        unlink_req(r, r->head);
    if (r->lookup != NULL) {
        /* The thread pool may be running it: the callback frees it whichever way it ends. */
        r->lookup->resolver = NULL;
        uv_cancel((uv_req_t *)&r->lookup->req);
    }
    free(r->host);
    free(r);
}

static void deliver(resolver_t *r, int status);

static void on_lookup(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    lookup_t *l = (lookup_t *)req;
    resolver_t *r = l->resolver;
    free(l);
    if (r == NULL) {
        uv_freeaddrinfo(res);
        return;
    }
    r->lookup = NULL;
    if (status == 0) {
        r->naddrs = 0;
        for (struct addrinfo *ai = res; ai != NULL && r->naddrs < RESOLVE_MAX_ADDRS;
             ai = ai->ai_next) {
            if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in))
                memcpy(&r->addrs[r->naddrs++].in4, ai->ai_addr, sizeof(struct sockaddr_in));
            else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6))
                memcpy(&r->addrs[r->naddrs++].in6, ai->ai_addr, sizeof(struct sockaddr_in6));
        }
        if (r->naddrs == 0)
            status = UV_EAI_NONAME;
        else
            r->expires = uv_now(r->loop) + RESOLVE_TTL_MS;
    }
    uv_freeaddrinfo(res);
    deliver(r, status);
}

/* Answers every request that waited for the lookup that just ended. Requests made from inside
 * a callback carry the next generation and are left for the next lookup (or were answered at
 * once from the fresh cache). */
static void deliver(resolver_t *r, int status)
{
    unsigned gen = r->gen++;
    const struct sockaddr *addrs[RESOLVE_MAX_ADDRS];
    for (unsigned i = 0; i < r->naddrs; i++)
        addrs[i] = &r->addrs[i].sa;
    while (r->head != NULL && r->head->gen == gen) {
        resolve_req_t *req = r->head;
        unlink_req(r, req);
        if (status == 0)
            req->cb(req, 0, addrs, r->naddrs);
        else
            req->cb(req, status, NULL, 0);
    }
}

void resolver_get(resolver_t *r, resolve_req_t *req, resolve_cb cb)
{
    req->cb = cb;
    req->resolver = NULL;
    req->prev = req->next = NULL;
    if (r->numeric || (r->naddrs > 0 && uv_now(r->loop) < r->expires)) {
        const struct sockaddr *addrs[RESOLVE_MAX_ADDRS];
        for (unsigned i = 0; i < r->naddrs; i++)
            addrs[i] = &r->addrs[i].sa;
        cb(req, 0, addrs, r->naddrs);
        return;
    }
    req->resolver = r;
    req->gen = r->gen;
    req->prev = r->tail;
    if (r->tail)
        r->tail->next = req;
    else
        r->head = req;
    r->tail = req;
    if (r->lookup != NULL) return;
    lookup_t *l = calloc(1, sizeof(*l));
    int rc = UV_ENOMEM;
    if (l != NULL) {
        l->resolver = r;
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        rc = uv_getaddrinfo(r->loop, &l->req, on_lookup, r->host, r->port, &hints);
        if (rc == 0) {
            r->lookup = l;
            return;
        }
        free(l);
    }
    deliver(r, rc);
}
