/*
 * redis: see redis.h for the contract.
 *
 * Each of the two connections (commands, pub/sub) is a state machine around one hiredis async
 * context:
 *
 *   IDLE (pub/sub only, until the first subscribe)
 *   BACKOFF --timer--> [RESOLVING] --> CONNECTING --onConnect--> [HANDSHAKE] --AUTH/SELECT--> READY
 *      ^                                   |                         |                        |
 *      +----- connect failed / timed out --+-------------------------+--- disconnect/timeout -+
 *
 * hiredis 0.14 ownership rules shape the code:
 *   - After onConnect(REDIS_ERR) or onDisconnect, hiredis frees the context itself: we only
 *     forget the pointer there, never touch it again.
 *   - redisAsyncFree() is only called from our own uv callbacks (watchdog timer, idle handle),
 *     never from a hiredis callback; anything decided inside one (a failed AUTH, redis_close)
 *     is recorded and carried out on the next idle turn.
 *   - redisAsyncFree() runs every pending reply callback with a NULL reply before it returns,
 *     then onDisconnect: c->dropping / c->drop_reason tell those callbacks why.
 *
 * Error completions never run on the stack that detected them: they go on the "failed" list,
 * drained by a uv_idle handle on the next loop turn (one batch per turn). Replies are delivered
 * straight from hiredis's read callback, which is already asynchronous.
 *
 * hiredis 0.14's libuv adapter ignores poll errors (libuv reports POLLERR as status UV_EBADF
 * and stops the handle): a refused connect or a reset socket would hang forever. We attach
 * with redisLibuvAttach and then swap in event hooks whose callback treats an error as
 * readiness, so hiredis reads the socket error and disconnects.
 *
 * Writes on a connected context do not ask epoll for writability (two epoll_ctl calls per
 * command, and the bytes would wait for the next poll): the commands of a loop turn are written
 * together at its end, from a check handle, as common/link.c does; only a write the kernel
 * could not take whole arms the real poll.
 */
#include "common/redis.h"

#include "common/log.h"
#include "common/slice.h"

#include <hiredis/adapters/libuv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char redis_err_unavailable[] = "redis unavailable";
const char redis_err_timeout[] = "redis timed out";
const char redis_err_lost[] = "redis connection lost";
const char redis_err_closing[] = "redis closing";

static const int redis_default_timeout_ms = 2000;
static const int redis_watchdog_ms = 250;
static const int redis_backoff_min_ms = 100;
static const int redis_backoff_max_ms = 5000;

/* ---- URL ---- */

struct redis_url {
    int is_unix;
    char host[256];
    int port;
    char path[108]; /* sizeof(sun_path) */
    char user[128];
    char password[512];
    int db;
};

/* Percent-decodes s[0..n) into out (NUL-terminated). 0, or -1: bad escape or too long. */
static int redis_pct_decode(const char *s, size_t n, char *out, size_t out_size)
{
    return slice_percent_decode((slice_t){s, n}, 0, out, out_size) < 0 ? -1 : 0;
}

/* A decimal in s[0..n) no greater than max; -1 when empty, not digits, or too big. */
static long redis_parse_uint(const char *s, size_t n, long max)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

static const char *redis_url_query(const char *q, struct redis_url *u)
{
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (eq == NULL)
            return "redis URL query parameters must be key=value (db, password)";
        size_t klen = (size_t)(eq - q), vlen = n - klen - 1;
        if (klen == 2 && memcmp(q, "db", 2) == 0) {
            long db = redis_parse_uint(eq + 1, vlen, 1000000);
            if (db < 0)
                return "redis URL db must be a number";
            u->db = (int)db;
        } else if (klen == 8 && memcmp(q, "password", 8) == 0) {
            if (redis_pct_decode(eq + 1, vlen, u->password, sizeof(u->password)) != 0)
                return "redis URL password is malformed (bad %-escape) or too long";
        } else {
            return "redis URL has an unknown query parameter (db and password are accepted)";
        }
        q += n + (q[n] == '&');
    }
    return NULL;
}

static const char *redis_url_parse(const char *url, struct redis_url *u)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (url == NULL || url[0] == '\0')
        return "redis URL is empty";
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "redis URL contains spaces or control characters";
    }
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        if (*p != '/')
            return "unix:// URL needs an absolute socket path (unix:///path/to.sock)";
        size_t n = strcspn(p, "?");
        if (n >= sizeof(u->path))
            return "redis socket path is too long";
        memcpy(u->path, p, n);
        u->path[n] = '\0';
        u->is_unix = 1;
        return p[n] == '?' ? redis_url_query(p + n + 1, u) : NULL;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        return "rediss:// (TLS) is not supported; use redis:// or unix://";
    if (strncmp(url, "redis://", 8) != 0)
        return "redis URL must start with redis:// or unix://";

    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *s = p; s < end; s++) {
        if (*s == '@')
            at = s;
    }
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return "redis URL credentials must be :password@ or user:password@";
        if (redis_pct_decode(p, (size_t)(colon - p), u->user, sizeof(u->user)) != 0 ||
            redis_pct_decode(colon + 1, (size_t)(at - colon - 1), u->password,
                             sizeof(u->password)) != 0)
            return "redis URL credentials are malformed (bad %-escape) or too long";
        p = at + 1;
    }

    const char *host = p, *host_end, *after;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL)
            return "redis URL has an unterminated [IPv6] host";
        host = p + 1;
        host_end = close;
        after = close + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon ? colon : end;
        after = host_end;
    }
    if (host_end == host)
        return "redis URL has no host";
    if ((size_t)(host_end - host) >= sizeof(u->host))
        return "redis URL host is too long";
    memcpy(u->host, host, (size_t)(host_end - host));
    u->host[host_end - host] = '\0';
    if (after < end) {
        if (*after != ':')
            return "redis URL has unexpected text after the host";
        long port = redis_parse_uint(after + 1, (size_t)(end - after - 1), 65535);
        if (port <= 0)
            return "redis URL port must be a number from 1 to 65535";
        u->port = (int)port;
    }

    p = end;
    if (*p == '/') {
        p++;
        size_t n = strcspn(p, "?#");
        if (n > 0) {
            long db = redis_parse_uint(p, n, 1000000);
            if (db < 0)
                return "redis URL database must be a number (redis://host:port/0)";
            u->db = (int)db;
        }
        p += n;
    }
    if (*p == '?')
        return redis_url_query(p + 1, u);
    if (*p == '#')
        return "redis URL must not have a #fragment";
    return NULL;
}

const char *redis_url_error(const char *url)
{
    struct redis_url u;
    const char *err = redis_url_parse(url, &u);
    /* The parsed copy holds the password: do not leave it on the stack. */
    memset(&u, 0, sizeof(u));
    return err;
}

/* ---- client state ---- */

struct redis_req {
    struct redis_req *next;
    redis *r;
    redis_reply_cb cb;
    void *arg;
    const char *error;
};

struct redis_sub {
    struct redis_sub *next;
    redis_message_cb cb;
    void *arg;
    size_t len;
    char channel[];
};

enum rconn_state {
    RCONN_IDLE,       /* pub/sub connection before the first subscribe */
    RCONN_BACKOFF,    /* down; the timer starts the next attempt */
    RCONN_RESOLVING,  /* uv_getaddrinfo in flight */
    RCONN_CONNECTING, /* TCP/unix connect in progress */
    RCONN_HANDSHAKE,  /* connected, AUTH / SELECT replies outstanding */
    RCONN_READY,
    RCONN_CLOSED,
};

struct rconn {
    redis *r;
    const char *name; /* "cmd" or "sub", for logs */
    enum rconn_state state;
    redisAsyncContext *ac;
    uv_timer_t timer; /* backoff */
    uv_getaddrinfo_t gai;
    int gai_active;
    int backoff_ms;
    unsigned attempt;         /* picks the next resolved address on each attempt */
    uint64_t connect_started; /* loop time of entering CONNECTING */
    unsigned pending;         /* commands (cmd) or SUBSCRIBE confirmations (sub) outstanding */
    uint64_t last_progress;   /* loop time of the last reply, or of the first pending command */
    int handshake_left;
    char target[128];            /* ip:port or socket path, for logs (never the credentials) */
    int dropping;                /* inside our redisAsyncFree(): onDisconnect is ours to ignore */
    const char *drop_reason;     /* the error pending callbacks get while we free the context */
    const char *handshake_error; /* AUTH/SELECT refused: drop on the next idle turn */
    unsigned flush_wanted : 1;   /* commands buffered this turn: written at its end */
    unsigned flushing : 1;       /* inside that write: a partial one arms the real poll */
};

struct redis {
    uv_loop_t *loop;
    int timeout_ms;
    int connect_timeout_ms;
    struct redis_url url;
    struct rconn cmd, sub;
    uv_timer_t watchdog;
    uv_idle_t idle;
    uv_check_t flush;      /* writes the turn's commands at its end */
    uv_idle_t flush_awake; /* keeps the loop from sleeping in poll while a flush is due */
    struct redis_req *failed_head, *failed_tail;
    struct redis_sub *subs, *subs_tail;
    int starting; /* the first command-connection attempt is still running */
    int closing;
    int close_phase; /* 0 open or close requested, 1 contexts freed, 2 handles closing */
    int gai_pending;
    int handles_open;
    redis_done_cb done;
    void *done_arg;
    uint64_t rng;
};

static void rconn_connect(struct rconn *c);
static void redis_idle_cb(uv_idle_t *idle);

/* ---- helpers ---- */

static int redis_jitter(redis *r, int ms)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    int half = ms / 2;
    return half + (int)(r->rng % (uint64_t)(ms - half + 1));
}

static const char *redis_quote(char *out, size_t out_size, const char *msg)
{
    return log_quote(out, out_size, msg ? msg : "", msg ? strlen(msg) : 0);
}

static void redis_fail(redis *r, struct redis_req *req, const char *error)
{
    req->error = error;
    req->next = NULL;
    if (r->failed_tail != NULL)
        r->failed_tail->next = req;
    else
        r->failed_head = req;
    r->failed_tail = req;
    /* Once the idle handle is closing, its close callback drains the list instead. */
    if (r->close_phase < 2)
        uv_idle_start(&r->idle, redis_idle_cb);
}

/* One batch per loop turn, or everything (including late additions) when r is going away. */
static void redis_run_failed(redis *r, int all)
{
    do {
        struct redis_req *req = r->failed_head;
        r->failed_head = r->failed_tail = NULL;
        while (req != NULL) {
            struct redis_req *next = req->next;
            if (req->cb != NULL)
                req->cb(req->arg, NULL, req->error);
            free(req);
            req = next;
        }
    } while (all && r->failed_head != NULL);
}

/* ---- libuv event hooks (see the top comment) ---- */

static void redis_poll_cb(uv_poll_t *handle, int status, int events)
{
    redisLibuvEvents *p = handle->data;
    int ev = status < 0 ? p->events : events;
    if (p->context != NULL && (ev & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context != NULL && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void redis_ev_update(redisLibuvEvents *p)
{
    if (p->events != 0)
        uv_poll_start(&p->handle, p->events, redis_poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void redis_ev_add_read(void *privdata)
{
    redisLibuvEvents *p = privdata;
    if (p->events & UV_READABLE)
        return;
    p->events |= UV_READABLE;
    redis_ev_update(p);
}

static void redis_ev_del_read(void *privdata)
{
    redisLibuvEvents *p = privdata;
    p->events &= ~UV_READABLE;
    redis_ev_update(p);
}

static void redis_flush_awake_cb(uv_idle_t *idle)
{
    (void)idle;
}

static void redis_flush_cb(uv_check_t *check)
{
    redis *r = check->data;
    uv_check_stop(&r->flush);
    uv_idle_stop(&r->flush_awake);
    struct rconn *conns[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        struct rconn *c = conns[i];
        if (!c->flush_wanted)
            continue;
        c->flush_wanted = 0;
        if (c->ac == NULL)
            continue; /* dropped meanwhile: its callbacks have had their answer */
        c->flushing = 1;
        redisAsyncHandleWrite(c->ac); /* may disconnect, which clears c->ac */
        c->flushing = 0;
    }
}

static void redis_ev_add_write(void *privdata)
{
    redisLibuvEvents *p = privdata;
    if (p->events & UV_WRITABLE)
        return;
    struct rconn *c = p->context != NULL ? p->context->data : NULL;
    /* While connecting, writability is how hiredis learns the connect finished: poll. */
    if (c != NULL && !c->flushing && (c->state == RCONN_READY || c->state == RCONN_HANDSHAKE)) {
        if (!c->flush_wanted) {
            c->flush_wanted = 1;
            uv_check_start(&c->r->flush, redis_flush_cb);
            uv_idle_start(&c->r->flush_awake, redis_flush_awake_cb);
        }
        return;
    }
    p->events |= UV_WRITABLE;
    redis_ev_update(p);
}

static void redis_ev_del_write(void *privdata)
{
    redisLibuvEvents *p = privdata;
    if (!(p->events & UV_WRITABLE))
        return;
    p->events &= ~UV_WRITABLE;
    redis_ev_update(p);
}

/* ---- connection state machine ---- */

static void rconn_timer_cb(uv_timer_t *timer)
{
    rconn_connect(timer->data);
}

static void rconn_schedule(struct rconn *c)
{
    redis *r = c->r;
    if (r->closing) {
        c->state = RCONN_CLOSED;
        return;
    }
    c->state = RCONN_BACKOFF;
    uv_timer_start(&c->timer, rconn_timer_cb, (uint64_t)redis_jitter(r, c->backoff_ms), 0);
    c->backoff_ms =
        c->backoff_ms * 2 > redis_backoff_max_ms ? redis_backoff_max_ms : c->backoff_ms * 2;
}

/* An attempt that never reached READY: the backoff keeps growing. c->ac is already gone. */
static void rconn_attempt_failed(struct rconn *c, const char *why)
{
    char q[256];
    log_warn("redis.connect_failed", "conn=%s error=%s", c->name, redis_quote(q, sizeof(q), why));
    if (c == &c->r->cmd)
        c->r->starting = 0;
    rconn_schedule(c);
}

/* A connection that was up went away: the server was fine a moment ago, retry soon. */
static void rconn_lost(struct rconn *c)
{
    c->backoff_ms = redis_backoff_min_ms;
    rconn_schedule(c);
}

/*
 * Frees the context from one of our own callbacks (never a hiredis one). hiredis runs the
 * pending reply callbacks with NULL first (they fail with reason), then onDisconnect, which
 * sees c->dropping and leaves the rest to our caller.
 */
static void rconn_free_context(struct rconn *c, const char *reason)
{
    redisAsyncContext *ac = c->ac;
    if (ac == NULL)
        return;
    c->dropping = 1;
    c->drop_reason = reason;
    redisAsyncFree(ac);
    c->ac = NULL;
    c->dropping = 0;
    c->drop_reason = NULL;
    c->handshake_error = NULL;
}

static void redis_sub_cb(redisAsyncContext *ac, void *reply, void *privdata);

static void rconn_send_subscribe(struct rconn *c, const struct redis_sub *s)
{
    const char *argv[2] = {"SUBSCRIBE", s->channel};
    size_t argvlen[2] = {9, s->len};
    if (redisAsyncCommandArgv(c->ac, redis_sub_cb, c->r, 2, argv, argvlen) != REDIS_OK) {
        /* Only out of memory gets here; the watchdog cannot see it, so say it. */
        log_error("redis.subscribe_failed", "conn=%s", c->name);
        return;
    }
    if (c->pending++ == 0)
        c->last_progress = uv_now(c->r->loop);
}

/* The first subscription to its channel? Later ones share the first's SUBSCRIBE. */
static int redis_sub_is_first(const redis *r, const struct redis_sub *s)
{
    for (const struct redis_sub *o = r->subs; o != s; o = o->next) {
        if (o->len == s->len && memcmp(o->channel, s->channel, s->len) == 0)
            return 0;
    }
    return 1;
}

static void rconn_ready(struct rconn *c)
{
    redis *r = c->r;
    c->state = RCONN_READY;
    c->backoff_ms = redis_backoff_min_ms;
    c->last_progress = uv_now(r->loop);
    char q[160];
    log_info("redis.connected", "conn=%s target=%s", c->name, redis_quote(q, sizeof(q), c->target));
    if (c == &r->cmd) {
        r->starting = 0;
        return;
    }
    /* The old connection's confirmations died with it (hiredis hands channel callbacks a NULL
     * reply on teardown, which counts nothing): count this connection's SUBSCRIBEs afresh. */
    c->pending = 0;
    for (const struct redis_sub *s = r->subs; s != NULL && c->ac != NULL; s = s->next) {
        if (redis_sub_is_first(r, s))
            rconn_send_subscribe(c, s);
    }
}

static void rconn_on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct rconn *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return, then fails its callbacks (NULL reply):
         * with c->state no longer READY they report "unavailable". */
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr ? ac->errstr : "connect failed");
        c->ac = NULL;
        rconn_attempt_failed(c, why);
        return;
    }
    if (!c->r->url.is_unix)
        redisEnableKeepAlive(&ac->c); /* notices a silently dead peer on an idle connection */
    if (c->handshake_left == 0)
        rconn_ready(c);
    else
        c->state = RCONN_HANDSHAKE;
}

static void rconn_on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct rconn *c = ac->data;
    if (c->dropping)
        return;
    /* hiredis frees ac when we return. */
    c->ac = NULL;
    c->handshake_error = NULL;
    char q[256];
    log_warn("redis.disconnected", "conn=%s error=%s", c->name,
             redis_quote(q, sizeof(q), status == REDIS_OK ? "closed" : ac->errstr));
    if (c->state == RCONN_HANDSHAKE)
        rconn_attempt_failed(c, "disconnected during AUTH/SELECT");
    else
        rconn_lost(c);
}

static void rconn_handshake_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rconn *c = privdata;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac)
        return; /* the context is going away; its disconnect path handles the state */
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Wrong password, unknown user, bad db index: the reply text names no secret. */
        char q[256];
        log_error("redis.handshake_failed", "conn=%s error=%s", c->name,
                  log_quote(q, sizeof(q), rep->str, rep->len));
        c->handshake_error = "AUTH or SELECT refused";
        uv_idle_start(&c->r->idle, redis_idle_cb);
        return;
    }
    if (--c->handshake_left == 0 && c->state == RCONN_HANDSHAKE)
        rconn_ready(c);
}

/* Creates the hiredis context; ip is numeric (never a DNS name: hiredis would block). */
static void rconn_start(struct rconn *c, const char *ip)
{
    redis *r = c->r;
    const struct redis_url *u = &r->url;
    redisAsyncContext *ac = ip ? redisAsyncConnect(ip, u->port) : redisAsyncConnectUnix(u->path);
    c->attempt++;
    if (ip != NULL)
        snprintf(c->target, sizeof(c->target), "%s%s%s:%d", strchr(ip, ':') ? "[" : "", ip,
                 strchr(ip, ':') ? "]" : "", u->port);
    else
        snprintf(c->target, sizeof(c->target), "%s", u->path);
    if (ac == NULL) {
        rconn_attempt_failed(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac); /* not attached, no callbacks yet */
        rconn_attempt_failed(c, why);
        return;
    }
    ac->data = c;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        rconn_attempt_failed(c, "cannot poll the socket");
        return;
    }
    ac->ev.addRead = redis_ev_add_read;
    ac->ev.delRead = redis_ev_del_read;
    ac->ev.addWrite = redis_ev_add_write;
    ac->ev.delWrite = redis_ev_del_write;
    redisAsyncSetConnectCallback(ac, rconn_on_connect);
    redisAsyncSetDisconnectCallback(ac, rconn_on_disconnect);
    c->ac = ac;
    c->state = RCONN_CONNECTING;
    c->connect_started = uv_now(r->loop);
    c->handshake_left = 0;
    c->handshake_error = NULL;

    /* Queued now, written once connected, answered before anything sent after them. */
    int rc = REDIS_OK;
    if (u->password[0] != '\0') {
        const char *argv[3];
        size_t argvlen[3];
        int argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;
        if (u->user[0] != '\0') { /* Redis 6 ACL user; otherwise the default user */
            argv[argc] = u->user;
            argvlen[argc++] = strlen(u->user);
        }
        argv[argc] = u->password;
        argvlen[argc++] = strlen(u->password);
        rc = redisAsyncCommandArgv(ac, rconn_handshake_cb, c, argc, argv, argvlen);
        c->handshake_left += rc == REDIS_OK;
    }
    if (rc == REDIS_OK && c == &r->cmd && u->db != 0) {
        rc = redisAsyncCommand(ac, rconn_handshake_cb, c, "SELECT %d", u->db);
        c->handshake_left += rc == REDIS_OK;
    }
    if (rc != REDIS_OK) {
        rconn_free_context(c, redis_err_unavailable);
        rconn_attempt_failed(c, "out of memory");
    }
}

static void rconn_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct rconn *c = req->data;
    redis *r = c->r;
    c->gai_active = 0;
    r->gai_pending--;
    if (r->closing) {
        uv_freeaddrinfo(res);
        c->state = RCONN_CLOSED;
        if (r->close_phase == 1)
            uv_idle_start(&r->idle, redis_idle_cb); /* close was waiting for us */
        return;
    }
    if (status != 0) {
        uv_freeaddrinfo(res);
        rconn_attempt_failed(c, uv_strerror(status));
        return;
    }
    /* A name with several addresses (localhost: ::1 and 127.0.0.1) gets each in turn, one
     * per attempt, so a server listening on only one of them is still found. */
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        n += ai->ai_family == AF_INET || ai->ai_family == AF_INET6;
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned want = n ? c->attempt % n : 0, i = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        if (i++ != want)
            continue;
        if (ai->ai_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof(ip));
        else
            uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof(ip));
        break;
    }
    uv_freeaddrinfo(res);
    if (ip[0] == '\0') {
        rconn_attempt_failed(c, "no usable address");
        return;
    }
    rconn_start(c, ip);
}

static int redis_is_numeric_host(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void rconn_connect(struct rconn *c)
{
    redis *r = c->r;
    if (r->closing) {
        c->state = RCONN_CLOSED;
        return;
    }
    if (r->url.is_unix) {
        rconn_start(c, NULL);
        return;
    }
    if (redis_is_numeric_host(r->url.host)) {
        rconn_start(c, r->url.host);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    int rc = uv_getaddrinfo(r->loop, &c->gai, rconn_resolved, r->url.host, NULL, &hints);
    if (rc != 0) {
        rconn_attempt_failed(c, uv_strerror(rc));
        return;
    }
    c->state = RCONN_RESOLVING;
    c->gai_active = 1;
    r->gai_pending++;
}

/* ---- commands ---- */

static void redis_req_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_req *req = privdata;
    redis *r = req->r;
    struct rconn *c = &r->cmd;
    if (c->pending > 0)
        c->pending--;
    if (reply == NULL) {
        const char *err = c->drop_reason            ? c->drop_reason
                          : c->state == RCONN_READY ? redis_err_lost
                                                    : redis_err_unavailable;
        redis_fail(r, req, err);
        return;
    }
    c->last_progress = uv_now(r->loop);
    if (req->cb != NULL)
        req->cb(req->arg, reply, NULL);
    free(req);
}

/* The command name of a RESP-formatted command ("*N\r\n$L\r\nNAME\r\n..."), or 0 length. */
static size_t redis_cmd_name(const char *cmd, size_t len, const char **name)
{
    const char *end = cmd + len;
    const char *p = memchr(cmd, '\n', len);
    if (p == NULL || ++p >= end || *p != '$')
        return 0;
    size_t n = 0;
    for (p++; p < end && *p >= '0' && *p <= '9' && n < 64; p++)
        n = n * 10 + (size_t)(*p - '0');
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || (size_t)(end - p - 2) < n)
        return 0;
    *name = p + 2;
    return n;
}

static int redis_cmd_refused(const char *cmd, size_t len)
{
    static const char *const refused[] = {"subscribe", "psubscribe", "unsubscribe", "punsubscribe",
                                          "monitor"};
    const char *name = NULL;
    size_t n = redis_cmd_name(cmd, len, &name);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (n == strlen(refused[i]) && strncasecmp(name, refused[i], n) == 0)
            return 1;
    }
    return 0;
}

/* Takes ownership of cmd (formatted by hiredis; len < 0 means formatting failed). */
static int redis_submit(redis *r, redis_reply_cb cb, void *arg, char *cmd, int len)
{
    if (len < 0)
        return len == -1 ? -ENOMEM : -EINVAL; /* hiredis: -1 out of memory, -2 bad format */
    if (redis_cmd_refused(cmd, (size_t)len)) {
        redisFreeCommand(cmd);
        return -EINVAL;
    }
    struct redis_req *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        redisFreeCommand(cmd);
        return -ENOMEM;
    }
    req->r = r;
    req->cb = cb;
    req->arg = arg;
    struct rconn *c = &r->cmd;
    /* During the very first attempt, commands wait in hiredis's buffer behind AUTH/SELECT. */
    int usable = c->ac != NULL &&
                 (c->state == RCONN_READY ||
                  (r->starting && (c->state == RCONN_CONNECTING || c->state == RCONN_HANDSHAKE)));
    if (r->closing) {
        redis_fail(r, req, redis_err_closing);
    } else if (!usable || c->handshake_error != NULL) {
        redis_fail(r, req, redis_err_unavailable);
    } else if (redisAsyncFormattedCommand(c->ac, redis_req_cb, req, cmd, (size_t)len) != REDIS_OK) {
        redis_fail(r, req, redis_err_unavailable);
    } else if (c->pending++ == 0) {
        c->last_progress = uv_now(r->loop);
    }
    redisFreeCommand(cmd);
    return 0;
}

int redis_command(redis *r, redis_reply_cb cb, void *arg, const char *fmt, ...)
{
    if (r == NULL || fmt == NULL)
        return -EINVAL;
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    return redis_submit(r, cb, arg, cmd, len);
}

int redis_commandv(redis *r, redis_reply_cb cb, void *arg, int argc, const char **argv,
                   const size_t *argvlen)
{
    if (r == NULL || argc <= 0 || argv == NULL)
        return -EINVAL;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    return redis_submit(r, cb, arg, cmd, len);
}

int redis_connected(const redis *r)
{
    return r->cmd.state == RCONN_READY;
}

/* ---- pub/sub ---- */

static void redis_sub_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis *r = privdata;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return; /* NULL: the context is going away; resubscription follows the reconnect */
    struct rconn *c = &r->sub;
    const char *kind = rep->element[0]->str;
    if (strcasecmp(kind, "subscribe") == 0) {
        if (c->pending > 0)
            c->pending--;
        c->last_progress = uv_now(r->loop);
        return;
    }
    const redisReply *ch = rep->element[1], *msg = rep->element[2];
    if (strcasecmp(kind, "message") != 0 || ch->type != REDIS_REPLY_STRING ||
        msg->type != REDIS_REPLY_STRING)
        return;
    /* A callback may subscribe more (appended: the walk sees them) but never removes any. */
    for (const struct redis_sub *s = r->subs; s != NULL; s = s->next) {
        if (s->len == ch->len && memcmp(s->channel, ch->str, s->len) == 0)
            s->cb(s->arg, msg->str, msg->len);
    }
}

int redis_subscribe(redis *r, const char *channel, redis_message_cb on_message, void *arg)
{
    if (r == NULL || channel == NULL || on_message == NULL || r->closing)
        return -EINVAL;
    size_t len = strlen(channel);
    struct redis_sub *s = malloc(sizeof(*s) + len + 1);
    if (s == NULL)
        return -ENOMEM;
    s->next = NULL;
    s->cb = on_message;
    s->arg = arg;
    s->len = len;
    memcpy(s->channel, channel, len + 1);
    if (r->subs_tail != NULL)
        r->subs_tail->next = s;
    else
        r->subs = s;
    r->subs_tail = s;

    struct rconn *c = &r->sub;
    if (c->state == RCONN_IDLE)
        rconn_connect(c);
    else if (c->state == RCONN_READY && redis_sub_is_first(r, s))
        rconn_send_subscribe(c, s);
    return 0;
}

/* ---- watchdog, idle, close ---- */

static void rconn_check(struct rconn *c, uint64_t now)
{
    redis *r = c->r;
    if ((c->state == RCONN_CONNECTING || c->state == RCONN_HANDSHAKE) &&
        now - c->connect_started >= (uint64_t)r->connect_timeout_ms) {
        rconn_free_context(c, redis_err_unavailable);
        rconn_attempt_failed(c, "connect timed out");
    } else if (c->state == RCONN_READY && c->pending > 0 &&
               now - c->last_progress >= (uint64_t)r->timeout_ms) {
        log_warn("redis.timeout", "conn=%s pending=%u timeout_ms=%d", c->name, c->pending,
                 r->timeout_ms);
        rconn_free_context(c, redis_err_timeout);
        rconn_lost(c);
    }
}

static void redis_watchdog_cb(uv_timer_t *timer)
{
    redis *r = timer->data;
    uint64_t now = uv_now(r->loop);
    rconn_check(&r->cmd, now);
    rconn_check(&r->sub, now);
}

/* Close step 1: free both contexts (pending commands fail), stop timers, cancel lookups. */
static void redis_teardown(redis *r)
{
    r->close_phase = 1;
    struct rconn *conns[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        struct rconn *c = conns[i];
        rconn_free_context(c, redis_err_closing);
        if (c->gai_active)
            uv_cancel((uv_req_t *)&c->gai);
        uv_timer_stop(&c->timer);
        c->state = RCONN_CLOSED;
    }
    uv_timer_stop(&r->watchdog);
    uv_check_stop(&r->flush);
    uv_idle_stop(&r->flush_awake);
    int subs = 0;
    for (const struct redis_sub *s = r->subs; s != NULL; s = s->next)
        subs++;
    log_info("redis.closed", "subscriptions=%d", subs);
}

static void redis_free(redis *r)
{
    struct redis_sub *s = r->subs;
    while (s != NULL) {
        struct redis_sub *next = s->next;
        free(s);
        s = next;
    }
    memset(&r->url, 0, sizeof(r->url)); /* the password */
    free(r);
}

static void redis_handle_closed(uv_handle_t *handle)
{
    redis *r = handle->data;
    if (--r->handles_open > 0)
        return;
    redis_run_failed(r, 1);
    redis_done_cb done = r->done;
    void *arg = r->done_arg;
    redis_free(r);
    if (done != NULL)
        done(arg);
}

static void redis_idle_cb(uv_idle_t *idle)
{
    redis *r = idle->data;
    if (r->closing && r->close_phase == 0) {
        redis_teardown(r);
        redis_run_failed(r, 0);
        /* Step 2 waits for a later turn: the adapter's poll handles, closed by redisAsyncFree,
         * finish closing at the end of this one, so done runs with nothing of ours left. */
        return;
    }
    struct rconn *conns[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2 && !r->closing; i++) {
        if (conns[i]->handshake_error != NULL && conns[i]->ac != NULL) {
            const char *why = conns[i]->handshake_error;
            rconn_free_context(conns[i], redis_err_unavailable);
            rconn_attempt_failed(conns[i], why);
        }
    }
    redis_run_failed(r, 0);
    if (!r->closing || r->close_phase != 1 || r->failed_head != NULL) {
        if (r->failed_head == NULL && !r->closing)
            uv_idle_stop(idle);
        return;
    }
    if (r->gai_pending > 0) {
        /* A lookup already running in the threadpool cannot be cancelled: sleep until its
         * callback restarts us, rather than spinning. */
        uv_idle_stop(idle);
        return;
    }
    r->close_phase = 2;
    r->handles_open = 6;
    r->cmd.timer.data = r;
    r->sub.timer.data = r;
    uv_close((uv_handle_t *)&r->cmd.timer, redis_handle_closed);
    uv_close((uv_handle_t *)&r->sub.timer, redis_handle_closed);
    uv_close((uv_handle_t *)&r->watchdog, redis_handle_closed);
    uv_close((uv_handle_t *)&r->idle, redis_handle_closed);
    uv_close((uv_handle_t *)&r->flush, redis_handle_closed);
    uv_close((uv_handle_t *)&r->flush_awake, redis_handle_closed);
}

void redis_close(redis *r, redis_done_cb done, void *arg)
{
    if (r->closing)
        return;
    r->closing = 1;
    r->done = done;
    r->done_arg = arg;
    uv_idle_start(&r->idle, redis_idle_cb);
}

redis *redis_new(uv_loop_t *loop, const char *url, const redis_options *options)
{
    redis *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (redis_url_parse(url, &r->url) != NULL) {
        redis_free(r);
        return NULL;
    }
    r->loop = loop;
    r->timeout_ms = options && options->command_timeout_ms > 0 ? options->command_timeout_ms
                                                               : redis_default_timeout_ms;
    r->connect_timeout_ms =
        options && options->connect_timeout_ms > 0 ? options->connect_timeout_ms : r->timeout_ms;
    r->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)r;
    if (r->rng == 0)
        r->rng = 0x9e3779b97f4a7c15ULL;
    r->starting = 1;

    /* uv handle initialisation on Unix always succeeds. */
    struct rconn *conns[2] = {&r->cmd, &r->sub};
    const char *names[2] = {"cmd", "sub"};
    for (int i = 0; i < 2; i++) {
        struct rconn *c = conns[i];
        c->r = r;
        c->name = names[i];
        c->state = i == 0 ? RCONN_BACKOFF : RCONN_IDLE;
        c->backoff_ms = redis_backoff_min_ms;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
    }
    uv_timer_init(loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_start(&r->watchdog, redis_watchdog_cb, (uint64_t)redis_watchdog_ms,
                   (uint64_t)redis_watchdog_ms);
    uv_idle_init(loop, &r->idle);
    r->idle.data = r;
    uv_check_init(loop, &r->flush);
    r->flush.data = r;
    uv_idle_init(loop, &r->flush_awake);
    r->flush_awake.data = r;
    rconn_connect(&r->cmd);
    return r;
}
