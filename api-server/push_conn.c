#include "api-server/push_conn.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/principal.h"
#include "api-server/push_hub.h"
#include "api-server/push_message.h"
#include "api-server/push_publish.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/metrics.h"

typedef struct outbox_entry {
    struct outbox_entry *next;
    push_msg_t *msg;
} outbox_entry_t;

struct push_conn {
    api_app_t *app;
    ws_t *ws;              /* NULL before push_conn_start and once the socket is gone */
    push_member_t *member; /* the hub's entry; NULL once unlisted */
    enum push_kind kind;
    int64_t account_id;
    int64_t epoch;
    char session_hash[CRYPTO_SHA256_HEX_LEN + 1];
    char path_id[ACCOUNT_LOGIN_MAX + 1];
    char *name; /* display name, the sender name of typing events; may be NULL */
    outbox_entry_t *out_head, *out_tail;
    size_t out_bytes;
    uv_timer_t keepalive;
    /* The socket holds one reference, the keepalive timer's handle one, each session check in
     * flight one: the memory goes with the last of them. */
    unsigned refs;
    unsigned closing : 1; /* a close was asked for: nothing more is queued */
    unsigned pumping : 1;
    unsigned heard : 1;    /* something arrived during this keepalive round */
    unsigned pinged : 1;   /* a ping went out at the end of the last round */
    unsigned checking : 1; /* a session check is in flight */
    double typing_tokens;
    uint64_t typing_at_ms;
};

static metric_t *m_slow, *m_dead;

/* ---- shared messages ---- */

push_msg_t *push_msg_new(const char *text, size_t len)
{
    push_msg_t *m = malloc(sizeof(*m) + len);
    if (m == NULL)
        return NULL;
    m->refs = 1;
    m->len = len;
    memcpy(m->text, text, len);
    return m;
}

void push_msg_unref(push_msg_t *m)
{
    if (--m->refs == 0)
        free(m);
}

/* ---- lifetime ---- */

static void conn_unref(push_conn_t *c)
{
    if (--c->refs > 0)
        return;
    free(c->name);
    free(c);
}

/* The oldest queued message (its reference passes to the caller), or NULL. */
static push_msg_t *outbox_pop(push_conn_t *c)
{
    outbox_entry_t *e = c->out_head;
    if (e == NULL)
        return NULL;
    if ((c->out_head = e->next) == NULL)
        c->out_tail = NULL;
    push_msg_t *m = e->msg;
    c->out_bytes -= m->len;
    free(e);
    return m;
}

static void outbox_free(push_conn_t *c)
{
    push_msg_t *m;
    while ((m = outbox_pop(c)) != NULL)
        push_msg_unref(m);
}

static void unlist(push_conn_t *c)
{
    if (c->member == NULL)
        return;
    push_hub_remove(c->app->push, c->member);
    c->member = NULL;
}

static const char *kind_name(enum push_kind kind)
{
    return kind == PUSH_OPERATOR ? "operator" : "h5";
}

push_conn_t *push_conn_new(api_app_t *app, enum push_kind kind, const account_t *account,
                           const char *session_hash)
{
    push_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->app = app;
    c->kind = kind;
    c->account_id = account->id;
    c->epoch = account->session_epoch;
    snprintf(c->session_hash, sizeof(c->session_hash), "%s", session_hash);
    if (kind == PUSH_OPERATOR)
        snprintf(c->path_id, sizeof(c->path_id), "%s", account->login ? account->login : "");
    else
        snprintf(c->path_id, sizeof(c->path_id), "%" PRId64, account->id);
    if (account->name != NULL && (c->name = strdup(account->name)) == NULL) {
        free(c);
        return NULL;
    }
    c->typing_tokens = PUSH_TYPING_BURST;
    c->refs = 1;
    return c;
}

void push_conn_discard(push_conn_t *c)
{
    conn_unref(c);
}

static void on_tick(uv_timer_t *t);

void push_conn_start(push_conn_t *c, ws_t *ws)
{
    if (m_slow == NULL) {
        m_slow =
            metrics_counter("edgegate_ws_slow_consumers_total",
                            "Real-time sockets closed with 1013: events not read in time.", NULL);
        m_dead = metrics_counter("edgegate_ws_dead_total",
                                 "Real-time sockets dropped for not answering a ping.", NULL);
    }
    c->ws = ws;
    uv_loop_t *loop = c->app->loop;
    c->typing_at_ms = uv_now(loop);
    uv_timer_init(loop, &c->keepalive);
    c->keepalive.data = c;
    c->refs++;
    uint64_t interval = c->app->cfg->ws_keepalive_ms, phase = 0;
    if (crypto_random(&phase, sizeof(phase)) < 0)
        phase = 0;
    uv_timer_start(&c->keepalive, on_tick, interval / 2 + phase % interval, interval);
    log_info("ws.open", "account=%" PRId64 " kind=%s remote=%s", c->account_id, kind_name(c->kind),
             ws_remote_addr(ws));
    if ((c->member = push_hub_add(c->app->push, c)) == NULL)
        push_conn_close(c, WS_CLOSE_TRY_AGAIN_LATER, "Server out of memory");
}

/* ---- out ---- */

/* Hands queued messages to the ws while it holds little; on_writable brings us back. */
static void pump(push_conn_t *c)
{
    if (c->pumping || c->closing || c->ws == NULL)
        return;
    c->pumping = 1;
    push_msg_t *m;
    while (ws_queued(c->ws) < PUSH_IN_FLIGHT && (m = outbox_pop(c)) != NULL) {
        int rc = ws_send(c->ws, 1, m->text, m->len);
        push_msg_unref(m);
        if (rc < 0)
            break; /* the peer is closing: on_close frees the rest */
    }
    c->pumping = 0;
}

void push_conn_close(push_conn_t *c, uint16_t code, const char *reason)
{
    if (c->closing || c->ws == NULL)
        return;
    c->closing = 1;
    unlist(c);
    /* What was queued before the close goes first (the mfa.reset that explains a 4001); the
     * outbox bound already capped it. */
    push_msg_t *m;
    while ((m = outbox_pop(c)) != NULL) {
        ws_send(c->ws, 1, m->text, m->len);
        push_msg_unref(m);
    }
    log_info("ws.closing", "account=%" PRId64 " code=%u reason=\"%s\"", c->account_id, code,
             reason);
    ws_close(c->ws, code, reason);
}

void push_conn_send(push_conn_t *c, push_msg_t *m)
{
    if (c->closing || c->ws == NULL)
        return;
    outbox_entry_t *e = NULL;
    /* Out of memory for an entry is treated alike: the socket cannot be kept up to date. */
    if (c->out_bytes + m->len > PUSH_OUTBOX_LIMIT || (e = malloc(sizeof(*e))) == NULL) {
        metric_inc(m_slow);
        log_info("ws.slow_consumer", "account=%" PRId64 " queued=%zu", c->account_id, c->out_bytes);
        outbox_free(c); /* dropped, not sent: the close frame goes out next */
        push_conn_close(c, WS_CLOSE_TRY_AGAIN_LATER, "Too slow: events were not read in time");
        return;
    }
    m->refs++;
    e->msg = m;
    e->next = NULL;
    if (c->out_tail != NULL)
        c->out_tail->next = e;
    else
        c->out_head = e;
    c->out_tail = e;
    c->out_bytes += m->len;
    pump(c);
}

/* ---- in ---- */

static int typing_allowed(push_conn_t *c)
{
    uint64_t now = uv_now(c->app->loop);
    c->typing_tokens += (double)(now - c->typing_at_ms) * PUSH_TYPING_PER_SECOND / 1000.0;
    if (c->typing_tokens > PUSH_TYPING_BURST)
        c->typing_tokens = PUSH_TYPING_BURST;
    c->typing_at_ms = now;
    if (c->typing_tokens < 1.0)
        return 0;
    c->typing_tokens -= 1.0;
    return 1;
}

static void on_message(void *arg, int is_text, const uint8_t *data, size_t len)
{
    push_conn_t *c = arg;
    c->heard = 1;
    if (c->closing)
        return;
    if (!is_text) {
        push_conn_close(c, WS_CLOSE_UNSUPPORTED, "Binary messages are not accepted");
        return;
    }
    push_inbound_t in;
    push_inbound_parse(data, len, &in);
    switch (in.kind) {
    case PUSH_IN_NOT_JSON:
        push_conn_close(c, WS_CLOSE_UNSUPPORTED, "Invalid JSON");
        break;
    case PUSH_IN_MALFORMED:
        push_conn_close(c, WS_CLOSE_UNSUPPORTED, "Expected a JSON object with a string type");
        break;
    case PUSH_IN_PING:
        push_conn_send(c, push_hub_pong(c->app->push));
        break;
    case PUSH_IN_TYPING:
        if (!typing_allowed(c)) {
            log_debug("ws.typing_dropped", "account=%" PRId64 " reason=rate", c->account_id);
            break;
        }
        push_publish_text(
            c->app, "typing",
            push_event_typing(&in, c->kind == PUSH_OPERATOR ? PUSH_SENDER_AGENT : PUSH_SENDER_USER,
                              c->path_id, c->name));
        break;
    case PUSH_IN_BAD_TYPING:
        log_debug("ws.typing_dropped", "account=%" PRId64 " reason=conversation_id", c->account_id);
        break;
    case PUSH_IN_UNKNOWN: {
        char q[2 * PUSH_TYPE_LOG_MAX + 8];
        log_debug("ws.unknown_type", "account=%" PRId64 " type=%s", c->account_id,
                  log_quote(q, sizeof(q), in.type, in.type_len));
        break;
    }
    }
}

static void on_writable(void *arg)
{
    pump(arg);
}

static void on_pong(void *arg)
{
    ((push_conn_t *)arg)->heard = 1;
}

static void on_timer_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void on_close(void *arg, uint16_t code)
{
    push_conn_t *c = arg;
    log_info("ws.closed", "account=%" PRId64 " kind=%s code=%u", c->account_id, kind_name(c->kind),
             code);
    c->ws = NULL;
    unlist(c);
    outbox_free(c);
    uv_timer_stop(&c->keepalive);
    uv_close((uv_handle_t *)&c->keepalive, on_timer_closed);
    conn_unref(c);
}

static void on_shutdown(void *arg)
{
    push_conn_close(arg, WS_CLOSE_GOING_AWAY, "Server shutting down");
}

const ws_callbacks_t push_ws_callbacks = {
    .on_message = on_message,
    .on_writable = on_writable,
    .on_pong = on_pong,
    .on_close = on_close,
    .on_shutdown = on_shutdown,
};

const ws_options_t push_ws_options = {.mode = WS_MESSAGES, .max_message = PUSH_MAX_MESSAGE};

/* ---- keepalive and the session re-check ---- */

static void on_recheck(void *arg, const principal_result_t *r)
{
    push_conn_t *c = arg;
    c->checking = 0;
    if (r->status == PRINCIPAL_OK) {
        if (c->ws != NULL && r->account->name != NULL &&
            (c->name == NULL || strcmp(c->name, r->account->name) != 0)) {
            char *name = strdup(r->account->name); /* renamed meanwhile: typing says so */
            if (name != NULL) {
                free(c->name);
                c->name = name;
            }
        }
        account_clear(r->account);
    } else if (r->status == PRINCIPAL_REFUSED) {
        if (c->ws != NULL)
            log_info("ws.session_ended", "account=%" PRId64 " reason=%s", c->account_id, r->reason);
        push_conn_close(c, PUSH_CLOSE_AUTH, "Session ended");
    } else {
        /* The stores are down: keep the socket (it was checked before) and try next round; a
         * revocation meanwhile is caught then. Closing every console at each blip would only
         * make them all reconnect into the same outage. */
        log_debug("ws.recheck_unavailable", "account=%" PRId64 " dependency=%s", c->account_id,
                  r->reason);
    }
    conn_unref(c);
}

static void recheck(push_conn_t *c)
{
    if (c->checking)
        return;
    c->checking = 1;
    c->refs++;
    if (principal_check(c->app, c->session_hash, on_recheck, c) < 0) {
        c->checking = 0;
        c->refs--;
    }
}

static void on_tick(uv_timer_t *t)
{
    push_conn_t *c = t->data;
    if (c->ws == NULL || c->closing)
        return;
    if (c->heard) {
        c->pinged = 0;
    } else if (c->pinged) {
        metric_inc(m_dead);
        log_info("ws.dead", "account=%" PRId64 " remote=%s", c->account_id, ws_remote_addr(c->ws));
        c->closing = 1;
        unlist(c);
        outbox_free(c);
        ws_abort(c->ws); /* nobody is listening for a close frame */
        return;
    } else {
        ws_ping(c->ws);
        c->pinged = 1;
    }
    c->heard = 0;
    recheck(c);
}

/* ---- what the hub routes by ---- */

enum push_kind push_conn_kind(const push_conn_t *c)
{
    return c->kind;
}

int64_t push_conn_account_id(const push_conn_t *c)
{
    return c->account_id;
}

int64_t push_conn_epoch(const push_conn_t *c)
{
    return c->epoch;
}

const char *push_conn_session_hash(const push_conn_t *c)
{
    return c->session_hash;
}

const char *push_conn_path_id(const push_conn_t *c)
{
    return c->path_id;
}
