/*
 * pgpool: see pgpool.h for the contract.
 *
 * Each connection is a small state machine driven by two uv handles, a poll on PQsocket and a
 * timer whose meaning follows the state:
 *
 *   BACKOFF --timer--> RESOLVING ----> CONNECTING --PQconnectPoll OK--> IDLE <-----+
 *      ^             (DNS names only)  (timer: connect timeout)            |  send  | result
 *      |                                       |                           v        |
 *      |                                       |                          BUSY -----+
 *      |                                       |                   (timer: deadline)|
 *      +-- attempt failed <--------------------+    connection lost / timed out ----+
 *
 * Error completions (res == NULL) never run on the stack that detected them: they go on the
 * pool's "failed" list, drained by a uv_idle handle on the next loop turn. That keeps the
 * "never from inside pgpool_query" promise without special cases, and it means no user callback
 * runs while a connection is half torn down. Results are delivered straight from the poll
 * callback, which is already asynchronous.
 *
 * Closing runs in three steps so that uv_run can return: pgpool_close() only marks the pool;
 * the next idle turn fails everything and finishes the connections; once the poll handles and
 * resolver requests are gone, the timers and the idle handle are closed, and the last close
 * callback calls done and frees the pool.
 */
#include "common/pgpool.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char pgpool_err_unavailable[] = "database unavailable";
const char pgpool_err_timeout[] = "query timed out";
const char pgpool_err_queue_full[] = "query queue full";
const char pgpool_err_lost[] = "database connection lost";
const char pgpool_err_closing[] = "pool closing";
const char pgpool_err_unsupported[] = "unsupported result";

#define PGPOOL_DEFAULT_SIZE 4
#define PGPOOL_DEFAULT_QUERY_TIMEOUT_MS 5000
#define PGPOOL_DEFAULT_MAX_QUEUED 1024
#define PGPOOL_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define PGPOOL_BACKOFF_MIN_MS 100
#define PGPOOL_BACKOFF_MAX_MS 5000
/* libpq tries every address of a host name in turn; we hand it at most this many per name. */
#define PGPOOL_MAX_ADDRS_PER_HOST 8
/* The protocol's limit on bind parameters (a 16-bit count). */
#define PGPOOL_MAX_PARAMS 65535

struct pgpool_query {
    struct pgpool_query *next;
    pgpool_cb cb;
    void *arg;
    const char *error; /* set once the query is on the failed list */
    uint64_t deadline; /* loop time (ms) by which the answer is due */
    int nparams;
    const char *sql;
    const char **values;
    int *lengths; /* NULL for text parameters */
    int *formats; /* NULL for text parameters */
    /* the arrays, sql and parameter bytes follow in the same allocation */
};

enum pgconn_state {
    PGCONN_BACKOFF,    /* down; the timer starts the next attempt */
    PGCONN_RESOLVING,  /* uv_getaddrinfo in flight for one of the host names */
    PGCONN_CONNECTING, /* PQconnectPoll in progress; the timer is the connect timeout */
    PGCONN_IDLE,       /* up, no query; polled for readable to notice EOF */
    PGCONN_BUSY,       /* up, one query in flight; the timer is its deadline */
    PGCONN_CLOSED,     /* the pool is closing */
};

struct pgbuf {
    char *ptr;
    size_t len, cap;
};

struct pgconn {
    pgpool *pool;
    int id;
    enum pgconn_state state;
    PGconn *conn;
    /* On the heap: PQsocket can change while connecting, and a handle being replaced must
     * live until its close callback. */
    uv_poll_t *poll;
    int poll_fd;
    int flushing; /* PQflush returned 1: also poll for writable */
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    int gai_active;
    int first_done; /* the first connection attempt has finished, either way */
    int backoff_ms;
    int resolve_index;
    int nentries;
    struct pgbuf hosts, addrs, ports; /* rewritten host / hostaddr / port lists */
    struct pgpool_query *query;
    PGresult *result;
    int listening; /* LISTEN has taken effect on this connection since it came up */
};

/* One entry of the host list, as libpq will see it. */
struct pghost {
    char *name;
    char *port; /* NULL: libpq's default */
    int lookup; /* a DNS name that we resolve off the loop */
};

struct pgpool {
    uv_loop_t *loop;
    pgpool_options opt;

    PQconninfoOption *info; /* the parsed conninfo; kw/val point into it */
    char *options_value;    /* "options" with statement_timeout appended */
    const char **kw, **val;
    int nkw;
    struct pghost *hosts;
    int nhosts;
    int rewrite_hosts; /* some host needs a lookup: pass host/hostaddr/port lists ourselves */

    struct pgconn *conns;
    char listen_channel[64]; /* "" when the pool does not listen */
    int listening;           /* connections listening right now */
    struct pgpool_query *queue_head, *queue_tail;
    int queued;
    uv_timer_t queue_timer;

    struct pgpool_query *failed_head, *failed_tail;
    uv_idle_t idle;

    int starting; /* no connection has come up and some first attempt is still running */
    int closing;
    int close_phase; /* 0 open or close requested, 1 torn down, 2 handles closing */
    int polls_open;
    int gai_pending;
    int handles_open;
    pgpool_done_cb done;
    void *done_arg;
    uint64_t rng;
};

static void pgconn_attempt(struct pgconn *c);
static void pgconn_poll_cb(uv_poll_t *handle, int status, int events);
static void pgconn_timer_cb(uv_timer_t *timer);
static void pgconn_dispatch_next(struct pgconn *c);
static void pgpool_idle_cb(uv_idle_t *idle);
static void pgconn_listen_lost(struct pgconn *c);
static void pgconn_send_listen(struct pgconn *c);

/* ---- small helpers ---- */

static int pgbuf_add(struct pgbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->ptr, cap);
        if (p == NULL)
            return -ENOMEM;
        b->ptr = p;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, s, n + 1);
    b->len += n;
    return 0;
}

static void pgbuf_reset(struct pgbuf *b)
{
    b->len = 0;
    if (b->ptr != NULL)
        b->ptr[0] = '\0';
}

/* xorshift64: backoff jitter only, nothing secret. */
static int pgpool_jitter(pgpool *pool, int ms)
{
    pool->rng ^= pool->rng << 13;
    pool->rng ^= pool->rng >> 7;
    pool->rng ^= pool->rng << 17;
    int half = ms / 2;
    return half + (int)(pool->rng % (uint64_t)(ms - half + 1));
}

/* libpq messages end in a newline and may span lines; log_quote escapes, we trim the tail. */
static const char *pg_quote_msg(char *out, size_t out_size, const char *msg)
{
    size_t len = msg ? strlen(msg) : 0;
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    return log_quote(out, out_size, msg ? msg : "", len);
}

static int pg_is_numeric_host(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static const char *pg_option(const PQconninfoOption *info, const char *keyword)
{
    for (const PQconninfoOption *o = info; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    }
    return NULL;
}

/* ---- deferred failures ---- */

static void pgpool_fail(pgpool *pool, struct pgpool_query *q, const char *error)
{
    q->error = error;
    q->next = NULL;
    if (pool->failed_tail != NULL)
        pool->failed_tail->next = q;
    else
        pool->failed_head = q;
    pool->failed_tail = q;
    /* Once the idle handle is closing, its close callback drains the list instead. */
    if (pool->close_phase < 2)
        uv_idle_start(&pool->idle, pgpool_idle_cb);
}

/*
 * Runs the failed callbacks. One batch per loop turn (a callback that retries at once must not
 * starve I/O), or everything, including failures added meanwhile, when the pool is going away.
 */
static void pgpool_run_failed(pgpool *pool, int all)
{
    do {
        struct pgpool_query *q = pool->failed_head;
        pool->failed_head = pool->failed_tail = NULL;
        while (q != NULL) {
            struct pgpool_query *next = q->next;
            if (q->cb != NULL)
                q->cb(q->arg, NULL, q->error);
            free(q);
            q = next;
        }
    } while (all && pool->failed_head != NULL);
}

/* ---- the queue ---- */

static void pgpool_queue_timer_cb(uv_timer_t *timer);

/* Every query has the same timeout and the queue is FIFO, so its head expires first. */
static void pgpool_arm_queue_timer(pgpool *pool)
{
    if (pool->queue_head == NULL || pool->close_phase > 0) {
        uv_timer_stop(&pool->queue_timer);
        return;
    }
    uint64_t now = uv_now(pool->loop);
    uint64_t deadline = pool->queue_head->deadline;
    uv_timer_start(&pool->queue_timer, pgpool_queue_timer_cb, deadline > now ? deadline - now : 0,
                   0);
}

static struct pgpool_query *pgpool_queue_pop(pgpool *pool)
{
    struct pgpool_query *q = pool->queue_head;
    if (q == NULL)
        return NULL;
    pool->queue_head = q->next;
    if (pool->queue_head == NULL)
        pool->queue_tail = NULL;
    pool->queued--;
    q->next = NULL;
    return q;
}

static void pgpool_queue_timer_cb(uv_timer_t *timer)
{
    pgpool *pool = timer->data;
    uint64_t now = uv_now(pool->loop);
    while (pool->queue_head != NULL && pool->queue_head->deadline <= now)
        pgpool_fail(pool, pgpool_queue_pop(pool), pgpool_err_timeout);
    pgpool_arm_queue_timer(pool);
}

static void pgpool_fail_queue(pgpool *pool, const char *error)
{
    struct pgpool_query *q;
    while ((q = pgpool_queue_pop(pool)) != NULL)
        pgpool_fail(pool, q, error);
    uv_timer_stop(&pool->queue_timer);
}

int pgpool_available(const pgpool *pool)
{
    int n = 0;
    for (int i = 0; i < pool->opt.size; i++) {
        if (pool->conns[i].state == PGCONN_IDLE || pool->conns[i].state == PGCONN_BUSY)
            n++;
    }
    return n;
}

/* The invariant behind "fail fast": with no connection up (after start-up), nothing waits. */
static void pgpool_check_down(pgpool *pool)
{
    if (!pool->starting && pool->queue_head != NULL && pgpool_available(pool) == 0)
        pgpool_fail_queue(pool, pgpool_err_unavailable);
}

static void pgpool_first_attempt_done(struct pgconn *c, int up)
{
    pgpool *pool = c->pool;
    if (!c->first_done) {
        c->first_done = 1;
        int pending = 0;
        for (int i = 0; i < pool->opt.size; i++)
            pending += !pool->conns[i].first_done;
        if (pending == 0)
            pool->starting = 0;
    }
    if (up)
        pool->starting = 0;
}

/* ---- connection plumbing ---- */

/* pgpool_close waits for the poll handles and lookups to finish: the last one wakes it. */
static void pgpool_close_progress(pgpool *pool)
{
    if (pool->close_phase == 1 && pool->polls_open == 0 && pool->gai_pending == 0)
        uv_idle_start(&pool->idle, pgpool_idle_cb);
}

static void pgconn_poll_closed(uv_handle_t *handle)
{
    struct pgconn *c = handle->data;
    c->pool->polls_open--;
    free(handle);
    pgpool_close_progress(c->pool);
}

/* Must run before libpq closes the socket, or right after (nothing else can take the fd). */
static void pgconn_close_poll(struct pgconn *c)
{
    if (c->poll == NULL)
        return;
    uv_close((uv_handle_t *)c->poll, pgconn_poll_closed);
    c->poll = NULL;
    c->poll_fd = -1;
}

/*
 * Polls PQsocket for events. libpq may replace the socket while connecting (next host, SSL or
 * GSS retry), possibly with the same descriptor number: uv_poll_start re-registers the fd with
 * epoll every time, so a same-numbered new socket is watched too, and a new number gets a new
 * handle.
 */
static int pgconn_watch(struct pgconn *c, int events)
{
    int fd = PQsocket(c->conn);
    if (fd < 0)
        return -EBADF;
    if (c->poll != NULL && c->poll_fd != fd)
        pgconn_close_poll(c);
    if (c->poll == NULL) {
        uv_poll_t *poll = malloc(sizeof(*poll));
        if (poll == NULL)
            return -ENOMEM;
        int rc = uv_poll_init(c->pool->loop, poll, fd);
        if (rc != 0) {
            free(poll);
            return rc;
        }
        poll->data = c;
        c->poll = poll;
        c->poll_fd = fd;
        c->pool->polls_open++;
    }
    return uv_poll_start(c->poll, events, pgconn_poll_cb);
}

/* Forgets the connection: poll first (the fd must not be polled once closed), then libpq. */
static void pgconn_release(struct pgconn *c)
{
    pgconn_close_poll(c);
    if (c->conn != NULL) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    if (c->result != NULL) {
        PQclear(c->result);
        c->result = NULL;
    }
    c->flushing = 0;
    uv_timer_stop(&c->timer);
}

static void pgconn_schedule(struct pgconn *c)
{
    pgpool *pool = c->pool;
    if (pool->closing) {
        c->state = PGCONN_CLOSED;
        return;
    }
    c->state = PGCONN_BACKOFF;
    uv_timer_start(&c->timer, pgconn_timer_cb, (uint64_t)pgpool_jitter(pool, c->backoff_ms), 0);
    c->backoff_ms =
        c->backoff_ms * 2 > PGPOOL_BACKOFF_MAX_MS ? PGPOOL_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void pgconn_attempt_failed(struct pgconn *c, const char *why)
{
    char q[512];
    log_warn("pg.connect_failed", "conn=%d error=%s", c->id, pg_quote_msg(q, sizeof(q), why));
    pgconn_release(c);
    pgpool_first_attempt_done(c, 0);
    pgconn_schedule(c);
    pgpool_check_down(c->pool);
}

/*
 * Drops a connection that was up (or failed while sending): its query, if any, fails with qerr,
 * and it reconnects after the shortest backoff, since the server was fine a moment ago.
 */
static void pgconn_drop(struct pgconn *c, const char *qerr, const char *why)
{
    char q[512];
    log_warn("pg.disconnected", "conn=%d reason=%s", c->id, pg_quote_msg(q, sizeof(q), why));
    if (c->query != NULL) {
        pgpool_fail(c->pool, c->query, qerr);
        c->query = NULL;
    }
    pgconn_release(c);
    c->backoff_ms = PGPOOL_BACKOFF_MIN_MS;
    pgconn_schedule(c);
    pgpool_check_down(c->pool);
    pgconn_listen_lost(c);
}

static void pgconn_notice(void *arg, const char *message)
{
    struct pgconn *c = arg;
    char q[512];
    log_debug("pg.notice", "conn=%d msg=%s", c->id, pg_quote_msg(q, sizeof(q), message));
}

/* ---- LISTEN ---- */

static void pgpool_listen_event(pgpool *pool, enum pgpool_listen_event event, const char *payload)
{
    if (pool->opt.on_listen != NULL)
        pool->opt.on_listen(pool->opt.listen_arg, event, payload);
}

/* Hands on what arrived (every listening connection hears every notification: the callback
 * sees each one once per connection), and drops the rest so nothing accumulates. */
static void pgconn_take_notifies(struct pgconn *c)
{
    PGnotify *n;
    while (c->conn != NULL && (n = PQnotifies(c->conn)) != NULL) {
        if (c->listening)
            pgpool_listen_event(c->pool, PGPOOL_LISTEN_NOTIFY, n->extra ? n->extra : "");
        PQfreemem(n);
    }
}

static void pgconn_listen_lost(struct pgconn *c)
{
    if (!c->listening)
        return;
    c->listening = 0;
    if (--c->pool->listening == 0)
        pgpool_listen_event(c->pool, PGPOOL_LISTEN_LOST, NULL);
}

static void pgconn_listen_done(void *arg, const PGresult *res, const char *error)
{
    struct pgconn *c = arg;
    pgpool *pool = c->pool;
    if (error != NULL || pool->closing)
        return; /* the connection was dropped (it reconnects), or the pool is going away */
    if (!pgpool_ok(res)) {
        char q[512];
        log_error("pg.listen_failed", "conn=%d channel=%s error=%s", c->id, pool->listen_channel,
                  pg_quote_msg(q, sizeof(q), PQresultErrorMessage(res)));
        return; /* up but deaf: the others may still listen */
    }
    c->listening = 1;
    if (pool->listening++ == 0)
        pgpool_listen_event(pool, PGPOOL_LISTEN_READY, NULL);
}

/* ---- connecting ---- */

static void pgconn_connect(struct pgconn *c)
{
    pgpool *pool = c->pool;
    const char **kw = malloc(sizeof(*kw) * (size_t)(pool->nkw + 4));
    const char **val = malloc(sizeof(*val) * (size_t)(pool->nkw + 4));
    if (kw == NULL || val == NULL) {
        free(kw);
        free(val);
        pgconn_attempt_failed(c, "out of memory");
        return;
    }
    int n = pool->nkw;
    memcpy(kw, pool->kw, sizeof(*kw) * (size_t)n);
    memcpy(val, pool->val, sizeof(*val) * (size_t)n);
    if (pool->rewrite_hosts) {
        kw[n] = "host";
        val[n++] = c->hosts.ptr;
        kw[n] = "hostaddr";
        val[n++] = c->addrs.ptr;
        if (c->ports.len > 0) {
            kw[n] = "port";
            val[n++] = c->ports.ptr;
        }
    }
    kw[n] = NULL;
    val[n] = NULL;
    /* expand_dbname 0: the conninfo was parsed (and URIs expanded) once, in pgpool_new. */
    c->conn = PQconnectStartParams(kw, val, 0);
    free(kw);
    free(val);
    if (c->conn == NULL) {
        pgconn_attempt_failed(c, "out of memory");
        return;
    }
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        pgconn_attempt_failed(c, PQerrorMessage(c->conn));
        return;
    }
    PQsetNoticeProcessor(c->conn, pgconn_notice, c);
    c->state = PGCONN_CONNECTING;
    uv_timer_start(&c->timer, pgconn_timer_cb, (uint64_t)pool->opt.connect_timeout_ms, 0);
    /* libpq: "act as if PQconnectPoll had last returned PGRES_POLLING_WRITING". */
    if (pgconn_watch(c, UV_WRITABLE) != 0)
        pgconn_attempt_failed(c, "cannot poll the socket");
}

static int pgconn_add_entry(struct pgconn *c, const struct pghost *h, const char *addr)
{
    const char *sep = c->nentries > 0 ? "," : "";
    if (pgbuf_add(&c->hosts, sep) || pgbuf_add(&c->hosts, h->name) || pgbuf_add(&c->addrs, sep) ||
        pgbuf_add(&c->addrs, addr))
        return -ENOMEM;
    if (h->port != NULL && (pgbuf_add(&c->ports, sep) || pgbuf_add(&c->ports, h->port)))
        return -ENOMEM;
    c->nentries++;
    return 0;
}

static void pgconn_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);

/*
 * Walks the host list, resolving names with uv_getaddrinfo (libpq's own lookup would block the
 * loop). Every address becomes its own host/hostaddr entry so libpq still tries them in order;
 * a name that does not resolve is left out rather than failing the whole list.
 */
static void pgconn_resolve_next(struct pgconn *c)
{
    pgpool *pool = c->pool;
    while (c->resolve_index < pool->nhosts) {
        const struct pghost *h = &pool->hosts[c->resolve_index];
        if (!h->lookup) {
            const char *addr = pg_is_numeric_host(h->name) ? h->name : "";
            if (pgconn_add_entry(c, h, addr) != 0) {
                pgconn_attempt_failed(c, "out of memory");
                return;
            }
            c->resolve_index++;
            continue;
        }
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        c->gai.data = c;
        int rc = uv_getaddrinfo(pool->loop, &c->gai, pgconn_resolved, h->name, NULL, &hints);
        if (rc == 0) {
            c->gai_active = 1;
            pool->gai_pending++;
            return;
        }
        char q[300];
        log_warn("pg.resolve_failed", "conn=%d host=%s error=%s", c->id,
                 log_quote(q, sizeof(q), h->name, strlen(h->name)), uv_strerror(rc));
        c->resolve_index++;
    }
    if (c->nentries == 0) {
        pgconn_attempt_failed(c, "no database host name could be resolved");
        return;
    }
    pgconn_connect(c);
}

static void pgconn_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct pgconn *c = req->data;
    pgpool *pool = c->pool;
    c->gai_active = 0;
    pool->gai_pending--;
    if (pool->closing) {
        uv_freeaddrinfo(res);
        c->state = PGCONN_CLOSED;
        pgpool_close_progress(pool);
        return;
    }
    const struct pghost *h = &pool->hosts[c->resolve_index];
    if (status != 0) {
        char q[300];
        log_warn("pg.resolve_failed", "conn=%d host=%s error=%s", c->id,
                 log_quote(q, sizeof(q), h->name, strlen(h->name)), uv_strerror(status));
    }
    int added = 0;
    for (struct addrinfo *ai = status == 0 ? res : NULL;
         ai != NULL && added < PGPOOL_MAX_ADDRS_PER_HOST; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        int rc;
        if (ai->ai_family == AF_INET)
            rc = uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip));
        else if (ai->ai_family == AF_INET6)
            rc = uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip));
        else
            continue;
        if (rc != 0)
            continue;
        if (pgconn_add_entry(c, h, ip) != 0) {
            uv_freeaddrinfo(res);
            pgconn_attempt_failed(c, "out of memory");
            return;
        }
        added++;
    }
    uv_freeaddrinfo(res);
    c->resolve_index++;
    pgconn_resolve_next(c);
}

static void pgconn_attempt(struct pgconn *c)
{
    pgpool *pool = c->pool;
    if (pool->closing) {
        c->state = PGCONN_CLOSED;
        return;
    }
    if (!pool->rewrite_hosts) {
        pgconn_connect(c);
        return;
    }
    pgbuf_reset(&c->hosts);
    pgbuf_reset(&c->addrs);
    pgbuf_reset(&c->ports);
    c->nentries = 0;
    c->resolve_index = 0;
    c->state = PGCONN_RESOLVING;
    pgconn_resolve_next(c);
}

static void pgconn_connected(struct pgconn *c)
{
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->conn, 1) != 0) {
        pgconn_attempt_failed(c, PQerrorMessage(c->conn));
        return;
    }
    if (pgconn_watch(c, UV_READABLE) != 0) {
        pgconn_attempt_failed(c, "cannot poll the socket");
        return;
    }
    c->state = PGCONN_IDLE;
    c->backoff_ms = PGPOOL_BACKOFF_MIN_MS;
    const char *host = PQhost(c->conn), *port = PQport(c->conn);
    char qh[300];
    log_info("pg.connected", "conn=%d host=%s port=%s server_version=%d", c->id,
             log_quote(qh, sizeof(qh), host ? host : "", host ? strlen(host) : 0),
             port ? port : "-", PQserverVersion(c->conn));
    pgpool_first_attempt_done(c, 1);
    if (c->pool->listen_channel[0] != '\0')
        pgconn_send_listen(c); /* its completion dispatches the queue */
    else
        pgconn_dispatch_next(c);
}

static void pgconn_connect_step(struct pgconn *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        if (pgconn_watch(c, UV_READABLE) != 0)
            pgconn_attempt_failed(c, "cannot poll the socket");
        break;
    case PGRES_POLLING_WRITING:
        if (pgconn_watch(c, UV_WRITABLE) != 0)
            pgconn_attempt_failed(c, "cannot poll the socket");
        break;
    case PGRES_POLLING_OK:
        pgconn_connected(c);
        break;
    default:
        pgconn_attempt_failed(c, PQerrorMessage(c->conn));
        break;
    }
}

/* ---- queries ---- */

/* Polls for writable only while libpq still holds unsent output. Returns 0, or -1: dropped. */
static int pgconn_flush(struct pgconn *c)
{
    int rc = PQflush(c->conn);
    if (rc < 0) {
        pgconn_drop(c, pgpool_err_lost, PQerrorMessage(c->conn));
        return -1;
    }
    int flushing = rc == 1;
    if (flushing != c->flushing) {
        c->flushing = flushing;
        if (pgconn_watch(c, UV_READABLE | (flushing ? UV_WRITABLE : 0)) != 0) {
            pgconn_drop(c, pgpool_err_lost, "cannot poll the socket");
            return -1;
        }
    }
    return 0;
}

static void pgconn_send(struct pgconn *c, struct pgpool_query *q)
{
    pgpool *pool = c->pool;
    uint64_t now = uv_now(pool->loop);
    if (q->deadline <= now) {
        pgpool_fail(pool, q, pgpool_err_timeout);
        return;
    }
    c->query = q;
    if (!PQsendQueryParams(c->conn, q->sql, q->nparams, NULL, q->values, q->lengths, q->formats,
                           0)) {
        /* Parameters were checked in pgpool_query: this is a broken connection. */
        pgconn_drop(c, pgpool_err_lost, PQerrorMessage(c->conn));
        return;
    }
    c->state = PGCONN_BUSY;
    uv_timer_start(&c->timer, pgconn_timer_cb, q->deadline - now, 0);
    pgconn_flush(c);
}

static void pgconn_dispatch_next(struct pgconn *c)
{
    pgpool *pool = c->pool;
    int popped = 0;
    while (c->state == PGCONN_IDLE && !pool->closing && pool->queue_head != NULL) {
        pgconn_send(c, pgpool_queue_pop(pool));
        popped = 1;
    }
    if (popped)
        pgpool_arm_queue_timer(pool);
}

static void pgconn_complete(struct pgconn *c)
{
    struct pgpool_query *q = c->query;
    PGresult *res = c->result;
    c->result = NULL;
    uv_timer_stop(&c->timer);
    /* libpq reports a connection lost mid-query as a FATAL_ERROR result without SQLSTATE:
     * that is "no answer", not a SQL error. */
    if (res == NULL || PQstatus(c->conn) == CONNECTION_BAD) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", res ? PQresultErrorMessage(res) : "no result");
        PQclear(res);
        pgconn_drop(c, pgpool_err_lost, msg);
        return;
    }
    /* A transaction's own NOTIFY arrives before its ReadyForQuery, so it is here now: handed on
     * before the callback, a writer never reads its own change from a stale cache. */
    pgconn_take_notifies(c);
    c->query = NULL;
    c->state = PGCONN_IDLE;
    if (q->cb != NULL)
        q->cb(q->arg, res, NULL);
    PQclear(res);
    free(q);
    /* The callback may have queued (then c is BUSY again) or closed the pool. */
    pgconn_dispatch_next(c);
}

/* Collects results until libpq would block; a query is done when PQgetResult says NULL. */
static void pgconn_collect(struct pgconn *c)
{
    while (!PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (r == NULL) {
            pgconn_complete(c);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            /* A connection in COPY state would never go idle again. */
            PQclear(r);
            pgconn_drop(c, pgpool_err_unsupported, "COPY is not supported");
            return;
        }
        /* Keep the first error, else the last result. */
        if (c->result == NULL) {
            c->result = r;
        } else if (PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(c->result);
            c->result = r;
        }
    }
    if (PQstatus(c->conn) == CONNECTION_BAD)
        pgconn_drop(c, pgpool_err_lost, PQerrorMessage(c->conn));
}

static void pgconn_busy_io(struct pgconn *c, int status, int events)
{
    if (status < 0) {
        pgconn_drop(c, pgpool_err_lost, uv_strerror(status));
        return;
    }
    if ((events & UV_WRITABLE) && c->flushing && pgconn_flush(c) != 0)
        return;
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->conn)) {
            pgconn_drop(c, pgpool_err_lost, PQerrorMessage(c->conn));
            return;
        }
        /* libpq: after read-ready while flushing, consume input, then flush again. */
        if (c->flushing && pgconn_flush(c) != 0)
            return;
        pgconn_take_notifies(c); /* a long query must not hold up other writers' changes */
    }
    pgconn_collect(c);
}

/* An idle connection only ever reads EOF, a server-side termination, or a stray notice. */
static void pgconn_idle_io(struct pgconn *c, int status)
{
    if (status < 0) {
        pgconn_drop(c, pgpool_err_lost, uv_strerror(status));
        return;
    }
    if (!PQconsumeInput(c->conn) || PQstatus(c->conn) == CONNECTION_BAD) {
        pgconn_drop(c, pgpool_err_lost, PQerrorMessage(c->conn));
        return;
    }
    pgconn_take_notifies(c);
}

static void pgconn_poll_cb(uv_poll_t *handle, int status, int events)
{
    struct pgconn *c = handle->data;
    switch (c->state) {
    case PGCONN_CONNECTING:
        /* On a poll error PQconnectPoll reads the socket error itself and moves on. */
        pgconn_connect_step(c);
        break;
    case PGCONN_IDLE:
        pgconn_idle_io(c, status);
        break;
    case PGCONN_BUSY:
        pgconn_busy_io(c, status, events);
        break;
    default:
        break;
    }
}

static void pgconn_timer_cb(uv_timer_t *timer)
{
    struct pgconn *c = timer->data;
    switch (c->state) {
    case PGCONN_BACKOFF:
        pgconn_attempt(c);
        break;
    case PGCONN_CONNECTING:
        pgconn_attempt_failed(c, "connect timed out");
        break;
    case PGCONN_BUSY:
        log_warn("pg.query_timeout", "conn=%d timeout_ms=%d", c->id, c->pool->opt.query_timeout_ms);
        pgconn_drop(c, pgpool_err_timeout, "query timed out");
        break;
    default:
        break;
    }
}

/* ---- public API ---- */

int pgpool_check_conninfo(const char *conninfo, char *err, size_t err_size)
{
    char *msg = NULL;
    PQconninfoOption *info = PQconninfoParse(conninfo ? conninfo : "", &msg);
    if (info == NULL) {
        /* libpq's message can quote the input, password included: do not pass it on. */
        PQfreemem(msg);
        snprintf(err, err_size, "not a valid libpq connection string or postgres:// URI");
        return -1;
    }
    PQconninfoFree(info);
    return 0;
}

/*
 * Splits the effective host list so names can be resolved off the loop. Leaves rewrite_hosts 0
 * (libpq sees the conninfo as given) when there is nothing to look up, when hostaddr is already
 * set, or when the port list does not match the host list (libpq then reports the mistake).
 */
static int pgpool_parse_hosts(pgpool *pool)
{
    const char *host = pg_option(pool->info, "host");
    const char *hostaddr = pg_option(pool->info, "hostaddr");
    const char *port = pg_option(pool->info, "port");
    if (host == NULL)
        host = getenv("PGHOST");
    if (hostaddr == NULL)
        hostaddr = getenv("PGHOSTADDR");
    if (port == NULL)
        port = getenv("PGPORT");
    if (host == NULL || host[0] == '\0' || (hostaddr != NULL && hostaddr[0] != '\0'))
        return 0;

    int nhosts = 1, nports = port ? 1 : 0;
    for (const char *p = host; *p; p++)
        nhosts += *p == ',';
    for (const char *p = port; p && *p; p++)
        nports += *p == ',';
    if (nports > 1 && nports != nhosts)
        return 0;

    pool->hosts = calloc((size_t)nhosts, sizeof(*pool->hosts));
    if (pool->hosts == NULL)
        return -ENOMEM;
    pool->nhosts = nhosts;
    const char *hp = host, *pp = port;
    for (int i = 0; i < nhosts; i++) {
        size_t hl = strcspn(hp, ",");
        struct pghost *h = &pool->hosts[i];
        h->name = strndup(hp, hl);
        if (h->name == NULL)
            return -ENOMEM;
        hp += hl + (hp[hl] == ',');
        if (nports > 0) {
            size_t pl = strcspn(pp, ",");
            h->port = strndup(pp, pl);
            if (h->port == NULL)
                return -ENOMEM;
            if (nports > 1)
                pp += pl + (pp[pl] == ',');
        }
        h->lookup = h->name[0] != '\0' && h->name[0] != '/' && h->name[0] != '@' &&
                    !pg_is_numeric_host(h->name);
        if (h->lookup)
            pool->rewrite_hosts = 1;
    }
    return 0;
}

/* Builds the keyword/value arrays handed to every PQconnectStartParams. */
static int pgpool_build_params(pgpool *pool)
{
    int count = 0;
    for (const PQconninfoOption *o = pool->info; o->keyword != NULL; o++)
        count++;
    pool->kw = calloc((size_t)count + 4, sizeof(*pool->kw));
    pool->val = calloc((size_t)count + 4, sizeof(*pool->val));
    if (pool->kw == NULL || pool->val == NULL)
        return -ENOMEM;

    int st = pool->opt.statement_timeout_ms;
    const char *user_options = pg_option(pool->info, "options");
    if (st > 0) {
        size_t len = (user_options ? strlen(user_options) : 0) + 48;
        pool->options_value = malloc(len);
        if (pool->options_value == NULL)
            return -ENOMEM;
        snprintf(pool->options_value, len, "%s%s-c statement_timeout=%d",
                 user_options ? user_options : "", user_options ? " " : "", st);
    }

    int n = 0, has_app = 0, has_gss = getenv("PGGSSENCMODE") != NULL;
    for (const PQconninfoOption *o = pool->info; o->keyword != NULL; o++) {
        if (o->val == NULL || strcmp(o->keyword, "options") == 0)
            continue;
        if (pool->rewrite_hosts &&
            (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
             strcmp(o->keyword, "port") == 0))
            continue;
        has_app |= strcmp(o->keyword, "fallback_application_name") == 0;
        has_gss |= strcmp(o->keyword, "gssencmode") == 0;
        pool->kw[n] = o->keyword;
        pool->val[n++] = o->val;
    }
    if (pool->options_value != NULL || user_options != NULL) {
        pool->kw[n] = "options";
        pool->val[n++] = pool->options_value ? pool->options_value : user_options;
    }
    if (!has_app) {
        pool->kw[n] = "fallback_application_name";
        pool->val[n++] = "edgegate";
    }
    if (!has_gss) {
        /* libpq's default "prefer" probes the Kerberos credential cache (file reads, krb5.conf)
         * inside PQconnectPoll, on the loop, on every connect: off unless asked for. */
        pool->kw[n] = "gssencmode";
        pool->val[n++] = "disable";
    }
    pool->nkw = n;
    return 0;
}

static void pgpool_free(pgpool *pool)
{
    if (pool->hosts != NULL) {
        for (int i = 0; i < pool->nhosts; i++) {
            free(pool->hosts[i].name);
            free(pool->hosts[i].port);
        }
        free(pool->hosts);
    }
    if (pool->conns != NULL) {
        for (int i = 0; i < pool->opt.size; i++) {
            free(pool->conns[i].hosts.ptr);
            free(pool->conns[i].addrs.ptr);
            free(pool->conns[i].ports.ptr);
        }
        free(pool->conns);
    }
    free(pool->kw);
    free(pool->val);
    free(pool->options_value);
    if (pool->info != NULL)
        PQconninfoFree(pool->info);
    free(pool);
}

pgpool *pgpool_new(uv_loop_t *loop, const char *conninfo, const pgpool_options *options)
{
    pgpool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    if (options != NULL)
        pool->opt = *options;
    if (pool->opt.size <= 0)
        pool->opt.size = PGPOOL_DEFAULT_SIZE;
    if (pool->opt.query_timeout_ms <= 0)
        pool->opt.query_timeout_ms = PGPOOL_DEFAULT_QUERY_TIMEOUT_MS;
    if (pool->opt.max_queued <= 0)
        pool->opt.max_queued = PGPOOL_DEFAULT_MAX_QUEUED;
    if (pool->opt.connect_timeout_ms <= 0)
        pool->opt.connect_timeout_ms = PGPOOL_DEFAULT_CONNECT_TIMEOUT_MS;
    /* Default to 90% of the client deadline, so the server normally cancels first (57014)
     * and the connection survives; the client timer is the backstop. */
    if (pool->opt.statement_timeout_ms == 0)
        pool->opt.statement_timeout_ms = pool->opt.query_timeout_ms * 9 / 10;

    char *msg = NULL;
    pool->info = PQconninfoParse(conninfo ? conninfo : "", &msg);
    if (pool->info == NULL) {
        PQfreemem(msg);
        pgpool_free(pool);
        return NULL;
    }
    const char *ch = pool->opt.listen_channel;
    if (ch != NULL) {
        size_t n = strlen(ch);
        if (n == 0 || n >= sizeof(pool->listen_channel) || isdigit((unsigned char)ch[0]) ||
            strspn(ch, "abcdefghijklmnopqrstuvwxyz0123456789_") != n) {
            pgpool_free(pool);
            return NULL;
        }
        memcpy(pool->listen_channel, ch, n + 1);
        pool->opt.listen_channel = pool->listen_channel;
    }
    pool->conns = calloc((size_t)pool->opt.size, sizeof(*pool->conns));
    if (pool->conns == NULL || pgpool_parse_hosts(pool) != 0 || pgpool_build_params(pool) != 0) {
        pgpool_free(pool);
        return NULL;
    }

    /* Nothing below can fail: uv handle initialisation on Unix always succeeds. */
    pool->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)pool;
    if (pool->rng == 0)
        pool->rng = 0x9e3779b97f4a7c15ULL;
    pool->starting = 1;
    uv_timer_init(loop, &pool->queue_timer);
    pool->queue_timer.data = pool;
    uv_idle_init(loop, &pool->idle);
    pool->idle.data = pool;
    for (int i = 0; i < pool->opt.size; i++) {
        struct pgconn *c = &pool->conns[i];
        c->pool = pool;
        c->id = i;
        c->poll_fd = -1;
        c->backoff_ms = PGPOOL_BACKOFF_MIN_MS;
        c->state = PGCONN_BACKOFF;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
    }
    for (int i = 0; i < pool->opt.size; i++)
        pgconn_attempt(&pool->conns[i]);
    return pool;
}

/* One allocation: the struct, then the pointer and int arrays, then sql and the values. */
static struct pgpool_query *pgpool_query_new(const char *sql, int nparams,
                                             const char *const *values, const int *lengths)
{
    size_t sql_len = strlen(sql) + 1;
    size_t data = 0;
    for (int i = 0; i < nparams; i++) {
        if (values[i] != NULL)
            data += lengths ? (size_t)lengths[i] : strlen(values[i]) + 1;
    }
    size_t n = (size_t)nparams;
    size_t size = sizeof(struct pgpool_query) + n * sizeof(char *) +
                  (lengths ? 2 * n * sizeof(int) : 0) + sql_len + data;
    struct pgpool_query *q = malloc(size);
    if (q == NULL)
        return NULL;
    memset(q, 0, sizeof(*q));
    char *p = (char *)(q + 1);
    q->values = (const char **)(void *)p;
    p += n * sizeof(char *);
    if (lengths != NULL) {
        q->lengths = (int *)(void *)p;
        p += n * sizeof(int);
        q->formats = (int *)(void *)p;
        p += n * sizeof(int);
    }
    memcpy(p, sql, sql_len);
    q->sql = p;
    p += sql_len;
    for (int i = 0; i < nparams; i++) {
        if (values[i] == NULL) {
            q->values[i] = NULL;
        } else {
            size_t len = lengths ? (size_t)lengths[i] : strlen(values[i]) + 1;
            memcpy(p, values[i], len);
            q->values[i] = p;
            p += len;
        }
        if (lengths != NULL) {
            q->lengths[i] = values[i] ? lengths[i] : 0;
            q->formats[i] = 1;
        }
    }
    q->nparams = nparams;
    return q;
}

int pgpool_query(pgpool *pool, const char *sql, int nparams, const char *const *values,
                 const int *lengths, pgpool_cb cb, void *arg)
{
    if (pool == NULL || sql == NULL || nparams < 0 || nparams > PGPOOL_MAX_PARAMS ||
        (nparams > 0 && values == NULL))
        return -EINVAL;
    for (int i = 0; lengths != NULL && i < nparams; i++) {
        if (values[i] != NULL && lengths[i] < 0)
            return -EINVAL;
    }
    struct pgpool_query *q = pgpool_query_new(sql, nparams, values, lengths);
    if (q == NULL)
        return -ENOMEM;
    q->cb = cb;
    q->arg = arg;
    q->deadline = uv_now(pool->loop) + (uint64_t)pool->opt.query_timeout_ms;

    if (pool->closing) {
        pgpool_fail(pool, q, pgpool_err_closing);
        return 0;
    }
    for (int i = 0; i < pool->opt.size; i++) {
        if (pool->conns[i].state == PGCONN_IDLE) {
            pgconn_send(&pool->conns[i], q);
            return 0;
        }
    }
    if (!pool->starting && pgpool_available(pool) == 0) {
        pgpool_fail(pool, q, pgpool_err_unavailable);
        return 0;
    }
    if (pool->queued >= pool->opt.max_queued) {
        pgpool_fail(pool, q, pgpool_err_queue_full);
        return 0;
    }
    q->next = NULL;
    if (pool->queue_tail != NULL)
        pool->queue_tail->next = q;
    else
        pool->queue_head = q;
    pool->queue_tail = q;
    if (pool->queued++ == 0)
        pgpool_arm_queue_timer(pool);
    return 0;
}

/* LISTEN on every (re)connect, before the connection takes queries; the channel was checked
 * to be a plain name, so it needs no quoting. */
static void pgconn_send_listen(struct pgconn *c)
{
    pgpool *pool = c->pool;
    char sql[16 + sizeof(pool->listen_channel)];
    snprintf(sql, sizeof(sql), "LISTEN %s", pool->listen_channel);
    struct pgpool_query *q = pgpool_query_new(sql, 0, NULL, NULL);
    if (q == NULL) {
        pgconn_drop(c, NULL, "out of memory for LISTEN");
        return;
    }
    q->cb = pgconn_listen_done;
    q->arg = c;
    q->deadline = uv_now(pool->loop) + (uint64_t)pool->opt.query_timeout_ms;
    pgconn_send(c, q);
}

/* Close step 1 (from the idle callback, so never inside a result callback): fail, finish. */
static void pgpool_teardown(pgpool *pool)
{
    pool->close_phase = 1;
    pgpool_fail_queue(pool, pgpool_err_closing);
    for (int i = 0; i < pool->opt.size; i++) {
        struct pgconn *c = &pool->conns[i];
        if (c->query != NULL) {
            pgpool_fail(pool, c->query, pgpool_err_closing);
            c->query = NULL;
        }
        pgconn_release(c);
        if (c->gai_active)
            uv_cancel((uv_req_t *)&c->gai);
        c->state = PGCONN_CLOSED;
    }
    log_info("pg.closed", "connections=%d", pool->opt.size);
}

static void pgpool_handle_closed(pgpool *pool)
{
    if (--pool->handles_open > 0)
        return;
    /* Calls made from the last callbacks still get their answer before done. */
    pgpool_run_failed(pool, 1);
    pgpool_done_cb done = pool->done;
    void *arg = pool->done_arg;
    pgpool_free(pool);
    if (done != NULL)
        done(arg);
}

static void pgpool_pool_handle_closed(uv_handle_t *handle)
{
    pgpool_handle_closed(handle->data);
}

static void pgconn_timer_closed(uv_handle_t *handle)
{
    struct pgconn *c = handle->data;
    pgpool_handle_closed(c->pool);
}

static void pgpool_idle_cb(uv_idle_t *idle)
{
    pgpool *pool = idle->data;
    if (pool->closing && pool->close_phase == 0) {
        pgpool_teardown(pool);
        pgpool_run_failed(pool, 0);
        return; /* the poll handles finish closing at the end of this turn */
    }
    pgpool_run_failed(pool, 0);
    if (!pool->closing || pool->close_phase != 1 || pool->failed_head != NULL) {
        if (pool->failed_head == NULL && !pool->closing)
            uv_idle_stop(idle);
        return;
    }
    if (pool->polls_open > 0 || pool->gai_pending > 0) {
        /* A lookup already running in the threadpool cannot be cancelled: sleep until the
         * last poll close or resolver callback restarts us, rather than spinning. */
        uv_idle_stop(idle);
        return;
    }
    /* Close step 2: the timers and the idle handle itself. */
    pool->close_phase = 2;
    pool->handles_open = pool->opt.size + 2;
    for (int i = 0; i < pool->opt.size; i++)
        uv_close((uv_handle_t *)&pool->conns[i].timer, pgconn_timer_closed);
    uv_close((uv_handle_t *)&pool->queue_timer, pgpool_pool_handle_closed);
    uv_close((uv_handle_t *)&pool->idle, pgpool_pool_handle_closed);
}

void pgpool_close(pgpool *pool, pgpool_done_cb done, void *arg)
{
    if (pool->closing)
        return;
    pool->closing = 1;
    pool->done = done;
    pool->done_arg = arg;
    uv_idle_start(&pool->idle, pgpool_idle_cb);
}

const char *pgpool_sqlstate(const PGresult *res)
{
    if (res == NULL)
        return NULL;
    return PQresultErrorField(res, PG_DIAG_SQLSTATE);
}

int pgpool_ok(const PGresult *res)
{
    if (res == NULL)
        return 0;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}
