#include "api-server/push_hub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/push_message.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/strmap.h"

/* Events are small (a device event is ~200 bytes); anything far bigger on the channel is not
 * one of ours and is not copied into thousands of outboxes. */
#define PUSH_EVENT_MAX (64 * 1024)

struct push_member {
    push_conn_t *conn;
    push_member_t *account_prev, *account_next; /* the account's sockets */
    push_member_t *kind_prev, *kind_next;       /* every socket of this kind */
    char account_key[24];
};

struct push_hub {
    api_app_t *app;
    strmap_t *by_account; /* account id (decimal) → its first member */
    push_member_t *by_kind[2];
    size_t count;
    push_msg_t *pong;
    metric_t *m_connections, *m_events;
};

/* One event on its way to the sockets it concerns: the shared message is made at the first
 * socket that wants it. */
typedef struct delivery {
    const char *text;
    size_t len;
    push_msg_t *msg;
    int failed;
} delivery_t;

static void deliver(delivery_t *d, push_conn_t *c)
{
    if (d->msg == NULL && !d->failed && (d->msg = push_msg_new(d->text, d->len)) == NULL) {
        d->failed = 1;
        log_warn("push.event_dropped", "reason=\"out of memory\"");
    }
    if (d->msg != NULL)
        push_conn_send(c, d->msg);
}

static void delivery_done(delivery_t *d)
{
    if (d->msg != NULL)
        push_msg_unref(d->msg);
}

static push_member_t *account_first(const push_hub_t *hub, int64_t account_id)
{
    char key[24];
    snprintf(key, sizeof(key), "%" PRId64, account_id);
    return strmap_get(hub->by_account, key);
}

/*
 * The loops below take the next member before acting on one: closing a socket unlists it at
 * once (push_conn_close), and a full outbox closes it from push_conn_send. Nothing else is
 * unlisted meanwhile: no callback of another socket runs inside these calls.
 */

static void to_account(push_hub_t *hub, const push_event_t *ev, delivery_t *d)
{
    for (push_member_t *m = account_first(hub, ev->account_id), *next; m != NULL; m = next) {
        next = m->account_next;
        deliver(d, m->conn);
    }
}

static void to_operators(push_hub_t *hub, const push_event_t *ev, delivery_t *d)
{
    for (push_member_t *m = hub->by_kind[PUSH_OPERATOR], *next; m != NULL; m = next) {
        next = m->kind_next;
        /* A typing event is news for everyone but its sender's own tabs. */
        if (ev->type == PUSH_EV_TYPING && ev->sender_type == PUSH_SENDER_AGENT &&
            strcmp(push_conn_path_id(m->conn), ev->sender_id) == 0)
            continue;
        deliver(d, m->conn);
    }
}

static void close_sockets(push_hub_t *hub, const push_event_t *ev, delivery_t *d)
{
    for (push_member_t *m = account_first(hub, ev->account_id), *next; m != NULL; m = next) {
        next = m->account_next;
        push_conn_t *c = m->conn;
        switch (ev->type) {
        case PUSH_EV_MFA_RESET:
            deliver(d, c); /* the console learns why before the close */
            push_conn_close(c, PUSH_CLOSE_AUTH, "MFA reset");
            break;
        case PUSH_EV_SESSION_ENDED:
            if (strcmp(push_conn_session_hash(c), ev->session_hash) == 0)
                push_conn_close(c, PUSH_CLOSE_AUTH, "Session ended");
            break;
        case PUSH_EV_SESSIONS_REVOKED:
            /* Sessions issued at the new epoch (the one a password change hands out) live on. */
            if (push_conn_epoch(c) < ev->epoch)
                push_conn_close(c, PUSH_CLOSE_AUTH, "Session revoked");
            break;
        default:
            break;
        }
    }
}

static void on_event(void *arg, const char *text, size_t len)
{
    push_hub_t *hub = arg;
    if (len > PUSH_EVENT_MAX) {
        log_warn("push.event_too_big", "bytes=%zu", len);
        return;
    }
    push_event_t ev;
    if (push_event_parse(text, len, &ev) < 0) {
        char q[120];
        log_warn("push.bad_event", "event=%s", log_quote(q, sizeof(q), text, len));
        return;
    }
    metric_inc(hub->m_events);
    delivery_t d = {text, len, NULL, 0};
    switch (ev.type) {
    case PUSH_EV_IGNORED:
        break;
    case PUSH_EV_INVALID: {
        char q[120];
        log_warn("push.invalid_event", "event=%s", log_quote(q, sizeof(q), text, len));
        break;
    }
    case PUSH_EV_DEVICE:
        to_account(hub, &ev, &d);
        break;
    case PUSH_EV_AGENT_STATUS:
    case PUSH_EV_TYPING:
        to_operators(hub, &ev, &d);
        break;
    case PUSH_EV_MFA_RESET:
    case PUSH_EV_SESSION_ENDED:
    case PUSH_EV_SESSIONS_REVOKED:
        close_sockets(hub, &ev, &d);
        break;
    }
    delivery_done(&d);
}

push_hub_t *push_hub_new(api_app_t *app)
{
    static const char pong[] = "{\"type\":\"pong\"}";
    push_hub_t *hub = calloc(1, sizeof(*hub));
    if (hub == NULL)
        return NULL;
    hub->app = app;
    hub->by_account = strmap_new();
    hub->pong = push_msg_new(pong, sizeof(pong) - 1);
    if (hub->by_account == NULL || hub->pong == NULL ||
        redis_subscribe(app->redis, PUSH_CHANNEL, on_event, hub) < 0) {
        push_hub_free(hub);
        return NULL;
    }
    hub->m_connections =
        metrics_gauge("edgegate_ws_connections", "Open real-time WebSocket connections.", NULL);
    hub->m_events = metrics_counter("edgegate_ws_events_total",
                                    "Events received on the edgegate:events channel.", NULL);
    return hub;
}

void push_hub_free(push_hub_t *hub)
{
    if (hub == NULL)
        return;
    strmap_free(hub->by_account);
    if (hub->pong != NULL)
        push_msg_unref(hub->pong);
    free(hub);
}

push_member_t *push_hub_add(push_hub_t *hub, push_conn_t *c)
{
    push_member_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->conn = c;
    snprintf(m->account_key, sizeof(m->account_key), "%" PRId64, push_conn_account_id(c));
    push_member_t *first = strmap_get(hub->by_account, m->account_key);
    int err = 0;
    strmap_put(hub->by_account, m->account_key, m, &err);
    if (err) {
        free(m);
        return NULL;
    }
    m->account_next = first;
    if (first != NULL)
        first->account_prev = m;
    enum push_kind kind = push_conn_kind(c);
    m->kind_next = hub->by_kind[kind];
    if (m->kind_next != NULL)
        m->kind_next->kind_prev = m;
    hub->by_kind[kind] = m;
    hub->count++;
    metric_set(hub->m_connections, (double)hub->count);
    return m;
}

void push_hub_remove(push_hub_t *hub, push_member_t *m)
{
    if (m->account_prev != NULL) {
        m->account_prev->account_next = m->account_next;
    } else if (m->account_next != NULL) {
        int err = 0; /* replacing an existing key allocates nothing */
        strmap_put(hub->by_account, m->account_key, m->account_next, &err);
    } else {
        strmap_del(hub->by_account, m->account_key);
    }
    if (m->account_next != NULL)
        m->account_next->account_prev = m->account_prev;
    enum push_kind kind = push_conn_kind(m->conn);
    if (m->kind_prev != NULL)
        m->kind_prev->kind_next = m->kind_next;
    else
        hub->by_kind[kind] = m->kind_next;
    if (m->kind_next != NULL)
        m->kind_next->kind_prev = m->kind_prev;
    hub->count--;
    metric_set(hub->m_connections, (double)hub->count);
    free(m);
}

push_msg_t *push_hub_pong(push_hub_t *hub)
{
    return hub->pong;
}
