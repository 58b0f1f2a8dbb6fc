#include "test/edge-agent/target_pool.h"

#include <stdlib.h>

#include "common/log.h"

/* One idle connection. It leaves the list when taken (freed at once: the new owner has the
 * connection) or when closed (freed by on_close, which is its last callback). */
typedef struct idle {
    target_pool_t *pool; /* NULL once it is closing */
    tcp_conn_t *conn;
    uint64_t since; /* loop ms when it was put */
    struct idle *prev, *next;
} idle_t;

struct target_pool {
    uv_loop_t *loop;
    uv_timer_t timer; /* the oldest one's idle limit */
    unsigned max_idle;
    unsigned n;
    idle_t *newest, *oldest;
    int closed;
    uint64_t reused, dropped;
};

/* ---- the list: newest at the head, oldest at the tail ---- */

static void unlink_idle(idle_t *e)
{
    target_pool_t *p = e->pool;
    if (e->prev)
        e->prev->next = e->next;
    else
        p->newest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->oldest = e->prev;
    e->prev = e->next = NULL;
    p->n--;
}

static void drop(idle_t *e, int reset)
{
    if (e->pool == NULL) return;
    e->pool->dropped++;
    unlink_idle(e);
    e->pool = NULL;
    tcp_conn_close(e->conn, reset);
}

/* ---- an idle connection's callbacks ---- */

static void idle_on_connect(void *arg, int status)
{
    (void)arg;
    (void)status; /* only connected connections are put */
}

/* Nothing was asked: bytes now would be taken for the answer to the next request. */
static void idle_on_read(void *arg, const uint8_t *data, size_t len)
{
    (void)data;
    log_debug("agent.pool_unasked", "bytes=%zu", len);
    drop(arg, 1);
}

static void idle_on_eof(void *arg)
{
    drop(arg, 0);
}

static void idle_on_written(void *arg, size_t n)
{
    (void)arg;
    (void)n; /* nothing is queued when a connection is put */
}

static void idle_on_error(void *arg, int status)
{
    (void)status;
    drop(arg, 1);
}

static void idle_on_close(void *arg)
{
    free(arg);
}

static const tcp_conn_ops_t idle_ops = {
    .on_connect = idle_on_connect,
    .on_read = idle_on_read,
    .on_eof = idle_on_eof,
    .on_written = idle_on_written,
    .on_error = idle_on_error,
    .on_close = idle_on_close,
};

/* ---- discarded connections: closing, nobody to tell ---- */

static void gone_on_connect(void *arg, int status)
{
    (void)arg;
    (void)status;
}

static void gone_on_read(void *arg, const uint8_t *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
}

static void gone_on_event(void *arg)
{
    (void)arg;
}

static void gone_on_written(void *arg, size_t n)
{
    (void)arg;
    (void)n;
}

static void gone_on_error(void *arg, int status)
{
    (void)arg;
    (void)status;
}

static const tcp_conn_ops_t gone_ops = {
    .on_connect = gone_on_connect,
    .on_read = gone_on_read,
    .on_eof = gone_on_event,
    .on_written = gone_on_written,
    .on_error = gone_on_error,
    .on_close = gone_on_event,
};

void target_pool_discard(tcp_conn_t *c, int reset)
{
    tcp_conn_rebind(c, &gone_ops, NULL);
    tcp_conn_close(c, reset);
}

/* ---- the idle limit ---- */

static void on_timer(uv_timer_t *t);

/* One timer for the pool, due when the oldest connection reaches the limit. */
static void arm(target_pool_t *p)
{
    if (p->oldest == NULL || p->closed) {
        uv_timer_stop(&p->timer);
        return;
    }
    uint64_t now = uv_now(p->loop);
    uint64_t due = p->oldest->since + TARGET_POOL_IDLE_MS;
    uv_timer_start(&p->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    target_pool_t *p = t->data;
    uint64_t now = uv_now(p->loop);
    while (p->oldest != NULL && now - p->oldest->since >= TARGET_POOL_IDLE_MS)
        drop(p->oldest, 0);
    arm(p);
}

/* ---- public ---- */

target_pool_t *target_pool_new(uv_loop_t *loop, unsigned max_idle)
{
    target_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->loop = loop;
    p->max_idle = max_idle ? max_idle : 1;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    return p;
}

tcp_conn_t *target_pool_take(target_pool_t *p, const tcp_conn_ops_t *ops, void *arg)
{
    idle_t *e = p->newest;
    if (e == NULL) return NULL;
    unlink_idle(e);
    tcp_conn_t *c = e->conn;
    free(e);
    tcp_conn_rebind(c, ops, arg);
    p->reused++;
    if (p->oldest == NULL) uv_timer_stop(&p->timer);
    return c;
}

void target_pool_put(target_pool_t *p, tcp_conn_t *c)
{
    idle_t *e = p->closed ? NULL : malloc(sizeof(*e));
    if (e == NULL) {
        target_pool_discard(c, 0);
        return;
    }
    e->pool = p;
    e->conn = c;
    e->since = uv_now(p->loop);
    e->prev = NULL;
    e->next = p->newest;
    if (p->newest)
        p->newest->prev = e;
    else
        p->oldest = e;
    p->newest = e;
    p->n++;
    tcp_conn_rebind(c, &idle_ops, e);
    tcp_conn_read(c, 1);
    if (p->n > p->max_idle) drop(p->oldest, 0);
    if (!uv_is_active((uv_handle_t *)&p->timer)) arm(p);
}

void target_pool_close(target_pool_t *p)
{
    p->closed = 1;
    while (p->oldest != NULL)
        drop(p->oldest, 0);
    uv_close((uv_handle_t *)&p->timer, NULL);
}

void target_pool_free(target_pool_t *p)
{
    free(p);
}

void target_pool_get_stats(const target_pool_t *p, target_pool_stats_t *out)
{
    out->idle = p->n;
    out->reused = p->reused;
    out->closed = p->dropped;
}
