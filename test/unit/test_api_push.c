/*
 * push_hub + push_conn on a real loop and a real Redis (test/run.sh's), with sockets stood in
 * for by a transport that records what the ws writes and says how much the "kernel" still
 * holds. Events go through the channel as in production; what each socket got is read back
 * from its frames. ASan's leak check at exit is what says a closed socket's memory went.
 */
#include "test/unit/loop_support.h"

#include <string.h>

#include "api-server/account.c"
#include "api-server/db.c"
#include "api-server/principal.c"
#include "api-server/push_conn.c"
#include "api-server/push_hub.c"
#include "api-server/push_message.c"
#include "api-server/push_publish.c"
#include "api-server/request.c"
#include "api-server/row_cache.c"
#include "api-server/session.c"
#include "api-server/session_cookie.c"

/* app.c is not linked in: nothing here goes through a request. */
api_app_t *api_app(const http_request_t *req)
{
    (void)req;
    return NULL;
}

/* ---- a socket ---- */

typedef struct client {
    push_conn_t *conn;
    ws_t *ws;
    uint8_t out[1 << 20]; /* every byte the ws wrote */
    size_t out_len;
    size_t read_at;     /* frames before this were looked at */
    int stuck;          /* the peer reads nothing: written bytes stay queued */
    size_t queued;      /* what the "kernel" still holds */
    int close_asked;
} client_t;

static long t_write(void *t, const uv_buf_t *bufs, unsigned n)
{
    client_t *cl = t;
    for (unsigned i = 0; i < n; i++) {
        assert_true(cl->out_len + bufs[i].len <= sizeof(cl->out));
        memcpy(cl->out + cl->out_len, bufs[i].base, bufs[i].len);
        cl->out_len += bufs[i].len;
        if (cl->stuck)
            cl->queued += bufs[i].len;
    }
    return (long)cl->queued;
}

static void t_pause(void *t, int paused)
{
    (void)t;
    (void)paused;
}

static void t_close(void *t)
{
    ((client_t *)t)->close_asked = 1;
}

static const ws_transport_t transport = {t_write, t_pause, t_close};

/* A server frame read back: opcode and payload (NUL-terminated copy). */
typedef struct frame {
    int opcode;
    char payload[4096];
    size_t len;
} frame_t;

/* The next frame the socket got, or 0 when there is none yet. */
static int next_frame(client_t *cl, frame_t *f)
{
    const uint8_t *p = cl->out + cl->read_at;
    size_t avail = cl->out_len - cl->read_at;
    if (avail < 2)
        return 0;
    size_t len = p[1] & 0x7f, head = 2;
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = (size_t)p[2] << 8 | p[3];
        head = 4;
    }
    assert_true(len != 127 && len < sizeof(f->payload));
    if (avail < head + len)
        return 0;
    f->opcode = p[0] & 0x0f;
    memcpy(f->payload, p + head, len);
    f->payload[len] = '\0';
    f->len = len;
    cl->read_at += head + len;
    return 1;
}

/* A masked client frame fed to the socket. */
static void feed(client_t *cl, int opcode, const char *payload, size_t len)
{
    uint8_t buf[16 * 1024];
    size_t h = 0;
    static const uint8_t mask[4] = {0xa1, 0x0b, 0x5c, 0x3e};
    buf[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        buf[h++] = (uint8_t)(0x80 | len);
    } else {
        assert_true(len < 65536 && len + 8 < sizeof(buf));
        buf[h++] = 0x80 | 126;
        buf[h++] = (uint8_t)(len >> 8);
        buf[h++] = (uint8_t)len;
    }
    memcpy(buf + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = (uint8_t)payload[i] ^ mask[i % 4];
    ws_feed(cl->ws, buf, h + len);
}

static void feed_text(client_t *cl, const char *text)
{
    feed(cl, 1, text, strlen(text));
}

/* ---- the app around them ---- */

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    api_config_t cfg;
    api_app_t app;
    client_t *clients[8];
    int nclients;
    int redis_closed;
} fixture_t;

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static int redis_up(void *arg)
{
    return redis_connected(arg);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, tick_cb, 10, 10);
    /* Keepalive rounds (and their session re-checks, which need PostgreSQL) stay out of the
     * way: integration tests cover them against the real daemon. */
    fx->cfg.ws_keepalive_ms = 3600 * 1000;
    fx->app.loop = &fx->loop;
    fx->app.cfg = &fx->cfg;
    fx->app.redis = redis_new(&fx->loop, need_env("EDGEGATE_TEST_REDIS_URL"), NULL);
    assert_non_null(fx->app.redis);
    assert_int_equal(run_until(&fx->loop, redis_up, fx->app.redis, 5000), 0);
    fx->app.push = push_hub_new(&fx->app);
    assert_non_null(fx->app.push);
    *state = fx;
    return 0;
}

static void on_redis_closed(void *arg)
{
    ((fixture_t *)arg)->redis_closed = 1;
}

static void on_tick_closed(uv_handle_t *h)
{
    (void)h;
}

static void client_gone(client_t *cl)
{
    if (cl->ws != NULL)
        ws_transport_closed(cl->ws); /* on_close: the connection lets go of everything */
    cl->ws = NULL;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < fx->nclients; i++) {
        client_gone(fx->clients[i]);
        free(fx->clients[i]);
    }
    redis_close(fx->app.redis, on_redis_closed, fx);
    assert_int_equal(run_until_int(&fx->loop, &fx->redis_closed, 1, 5000), 0);
    push_hub_free(fx->app.push);
    uv_close((uv_handle_t *)&fx->tick, on_tick_closed);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* every timer of every socket is closed */
    free(fx);
    return 0;
}

static const char *hash_of(const char *session, char out[CRYPTO_SHA256_HEX_LEN + 1])
{
    crypto_sha256_hex(session, strlen(session), out);
    return out;
}

static client_t *open_socket(fixture_t *fx, enum push_kind kind, int64_t id, const char *login,
                             int64_t epoch, const char *session)
{
    char name[32], hash[CRYPTO_SHA256_HEX_LEN + 1];
    snprintf(name, sizeof(name), "Name of %" PRId64, id);
    account_t a = {.id = id, .login = (char *)login, .name = name,
                   .roles = kind == PUSH_OPERATOR ? ACCOUNT_ROLE_AGENT : ACCOUNT_ROLE_USER,
                   .session_epoch = epoch};
    client_t *cl = calloc(1, sizeof(*cl));
    cl->conn = push_conn_new(&fx->app, kind, &a, hash_of(session, hash));
    assert_non_null(cl->conn);
    cl->ws = ws_server_new(&transport, cl, &push_ws_options, &push_ws_callbacks, cl->conn);
    assert_non_null(cl->ws);
    push_conn_start(cl->conn, cl->ws);
    assert_true(fx->nclients < 8);
    fx->clients[fx->nclients++] = cl;
    return cl;
}

static double connections(void)
{
    return metric_value(metrics_gauge("edgegate_ws_connections", "", NULL));
}

static void publish(fixture_t *fx, const char *event)
{
    assert_int_equal(redis_command(fx->app.redis, NULL, NULL, "PUBLISH %s %s", PUSH_CHANNEL,
                                   event),
                     0);
}

/* The next text frame of a socket, waiting for the channel; NULL when none comes in time. */
static const char *next_text(fixture_t *fx, client_t *cl, frame_t *f, int timeout_ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        while (next_frame(cl, f))
            if (f->opcode == 1)
                return f->payload;
        if (uv_hrtime() > deadline)
            return NULL;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

/* The close frame of a socket (skipping anything before it): code, and reason into f. */
static int close_code(client_t *cl, frame_t *f)
{
    while (next_frame(cl, f))
        if (f->opcode == 8)
            return f->len >= 2 ? ((uint8_t)f->payload[0] << 8 | (uint8_t)f->payload[1]) : -1;
    return 0;
}

/* Publishes event and waits for closing's close frame: 4001 with reason. staying, handled by
 * the same event, must have got nothing. */
static void event_closes(fixture_t *fx, const char *event, client_t *closing, const char *reason,
                         client_t *staying)
{
    publish(fx, event);
    frame_t f;
    int code = 0;
    uint64_t deadline = uv_hrtime() + 2000 * 1000000ull;
    while ((code = close_code(closing, &f)) == 0 && uv_hrtime() < deadline)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(code, 4001);
    assert_string_equal(f.payload + 2, reason);
    assert_int_equal(close_code(staying, &f), 0);
    client_gone(closing);
}

/* Subscriptions take a round trip to become live: publish a marker until it arrives. */
static void wait_subscribed(fixture_t *fx, client_t *user, int64_t user_id)
{
    char ev[128];
    snprintf(ev, sizeof(ev), "{\"type\":\"device.online\",\"user_id\":%" PRId64 ",\"m\":1}",
             user_id);
    frame_t f;
    for (int i = 0; i < 100; i++) {
        publish(fx, ev);
        if (next_text(fx, user, &f, 50) != NULL) {
            run_for(&fx->loop, 100);
            while (next_frame(user, &f)) /* markers still on their way */
                ;
            return;
        }
    }
    fail_msg("the hub never received a channel message");
}

/* ---- tests ---- */

static void test_ping_is_answered_and_bad_input_closes_1003_or_1009(void **state)
{
    fixture_t *fx = *state;
    client_t *cl = open_socket(fx, PUSH_OPERATOR, 1, "alice", 1, "s1");
    assert_true(connections() == 1);
    frame_t f;
    feed_text(cl, "{\"type\":\"ping\"}");
    feed_text(cl, "{\"type\":\"something\"}");
    feed_text(cl, "{\"type\":\"ping\"}");
    assert_true(next_frame(cl, &f));
    assert_string_equal(f.payload, "{\"type\":\"pong\"}");
    assert_true(next_frame(cl, &f));
    assert_string_equal(f.payload, "{\"type\":\"pong\"}"); /* nothing for the unknown type */
    assert_false(next_frame(cl, &f));

    feed(cl, 2, "\x01\x02", 2);
    assert_int_equal(close_code(cl, &f), 1003);
    assert_true(cl->close_asked);
    assert_true(connections() == 0); /* unlisted at once */
    feed_text(cl, "{\"type\":\"ping\"}"); /* after the close: ignored */
    assert_false(next_frame(cl, &f));
    client_gone(cl);

    cl = open_socket(fx, PUSH_H5, 2, NULL, 1, "s2");
    feed_text(cl, "{\"type\":");
    assert_int_equal(close_code(cl, &f), 1003);
    assert_string_equal(f.payload + 2, "Invalid JSON");
    client_gone(cl);

    cl = open_socket(fx, PUSH_H5, 2, NULL, 1, "s2");
    char big[PUSH_MAX_MESSAGE + 100];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"type\":\"ping\"}", 15);
    feed(cl, 1, big, sizeof(big));
    assert_int_equal(close_code(cl, &f), 1009);
    client_gone(cl);
}

static void test_events_reach_the_sockets_they_concern(void **state)
{
    fixture_t *fx = *state;
    client_t *alice1 = open_socket(fx, PUSH_OPERATOR, 1, "alice", 1, "a1");
    client_t *alice2 = open_socket(fx, PUSH_OPERATOR, 1, "alice", 1, "a2");
    client_t *bob = open_socket(fx, PUSH_OPERATOR, 2, "bob", 1, "b1");
    client_t *user = open_socket(fx, PUSH_H5, 3, NULL, 1, "u1");
    assert_true(connections() == 4);
    wait_subscribed(fx, user, 3);
    frame_t f;

    publish(fx, "{\"type\":\"agent.status\",\"user_id\":\"bob\",\"status\":\"busy\"}");
    publish(fx, "{\"type\":\"device.offline\",\"user_id\":\"3\",\"device_id\":\"d\"}");
    for (int i = 0; i < 3; i++) {
        client_t *op = (client_t *[]){alice1, alice2, bob}[i];
        const char *got = next_text(fx, op, &f, 2000);
        assert_non_null(got);
        assert_non_null(strstr(got, "agent.status"));
    }
    const char *got = next_text(fx, user, &f, 2000);
    assert_non_null(got);
    assert_non_null(strstr(got, "device.offline"));

    /* Typing from one of alice's tabs: bob hears it, neither of her tabs nor the H5 page. */
    feed_text(alice1, "{\"type\":\"typing\",\"conversation_id\":\"c9\"}");
    got = next_text(fx, bob, &f, 2000);
    assert_non_null(got);
    assert_non_null(strstr(got, "\"sender\":{\"type\":\"agent\",\"id\":\"alice\""));
    assert_non_null(strstr(got, "\"name\":\"Name of 1\""));
    run_for(&fx->loop, 200);
    assert_false(next_frame(alice1, &f));
    assert_false(next_frame(alice2, &f));
    assert_false(next_frame(user, &f));

    /* A burst of typing is cut at PUSH_TYPING_BURST. */
    for (int i = 0; i < 3 * PUSH_TYPING_BURST; i++)
        feed_text(user, "{\"type\":\"typing\",\"conversation_id\":1}");
    run_for(&fx->loop, 300);
    int n = 0;
    while (next_text(fx, bob, &f, 0) != NULL)
        n++;
    assert_in_range(n, PUSH_TYPING_BURST, PUSH_TYPING_BURST + 2);
}

static void test_session_events_close_exactly_the_sockets_they_name(void **state)
{
    fixture_t *fx = *state;
    client_t *old_a = open_socket(fx, PUSH_OPERATOR, 1, "alice", 4, "old-a");
    client_t *old_b = open_socket(fx, PUSH_OPERATOR, 1, "alice", 4, "old-b");
    client_t *fresh = open_socket(fx, PUSH_OPERATOR, 1, "alice", 5, "fresh");
    client_t *bob = open_socket(fx, PUSH_OPERATOR, 2, "bob", 1, "bob");
    client_t *user = open_socket(fx, PUSH_H5, 3, NULL, 1, "user");
    wait_subscribed(fx, user, 3);
    frame_t f;
    char hash[CRYPTO_SHA256_HEX_LEN + 1], ev[256];

    /* Logout of one session: only its socket. */
    snprintf(ev, sizeof(ev), "{\"type\":\"session.ended\",\"account_id\":1,\"session_hash\":\"%s\"}",
             hash_of("old-a", hash));
    event_closes(fx, ev, old_a, "Session ended", old_b);
    /* The account's epoch moved on to 5: older sockets go, the one at 5 stays. */
    event_closes(fx, "{\"type\":\"account.sessions_revoked\",\"account_id\":1,\"epoch\":5}",
                 old_b, "Session revoked", fresh);

    /* MFA reset: told first, then closed; other accounts untouched. */
    publish(fx, "{\"type\":\"mfa.reset\",\"account_id\":1}");
    const char *got = next_text(fx, fresh, &f, 2000);
    assert_non_null(got);
    assert_string_equal(got, "{\"type\":\"mfa.reset\",\"account_id\":1}");
    assert_int_equal(close_code(fresh, &f), 4001);
    assert_string_equal(f.payload + 2, "MFA reset");
    client_gone(fresh);
    assert_int_equal(close_code(bob, &f), 0);
    assert_true(connections() == 2);
}

static void test_a_socket_that_does_not_read_is_cut_at_the_outbox_bound(void **state)
{
    fixture_t *fx = *state;
    client_t *slow = open_socket(fx, PUSH_H5, 3, NULL, 1, "slow");
    client_t *other = open_socket(fx, PUSH_H5, 3, NULL, 1, "other");
    slow->stuck = 1;
    char text[1024];
    memset(text, 'e', sizeof(text));
    memcpy(text, "{\"e\":\"", 6);
    memcpy(text + sizeof(text) - 2, "\"}", 2);
    push_msg_t *m = push_msg_new(text, sizeof(text));
    int sent = 0;
    while (close_code(slow, &(frame_t){0}) == 0 && sent < 1000) {
        push_conn_send(slow->conn, m);
        push_conn_send(other->conn, m);
        sent++;
        /* What the socket was handed stays near PUSH_IN_FLIGHT however much is queued. */
        assert_true(slow->out_len <= PUSH_IN_FLIGHT + sizeof(text) + 64);
    }
    push_msg_unref(m);
    /* Cut once the outbox would pass its bound; the close went out ahead of what was dropped. */
    assert_in_range(sent, PUSH_OUTBOX_LIMIT / sizeof(text), PUSH_OUTBOX_LIMIT / sizeof(text) + 20);
    slow->read_at = 0;
    frame_t f;
    assert_int_equal(close_code(slow, &f), 1013);
    assert_true(slow->close_asked);
    assert_true(connections() == 1);
    /* The healthy socket of the same account got every message. */
    int n = 0;
    while (next_frame(other, &f))
        n += f.opcode == 1;
    assert_int_equal(n, sent);
    client_gone(slow); /* ASan: the outbox and the connection are freed */
}

int main(void)
{
    log_init("test_api_push", LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping_is_answered_and_bad_input_closes_1003_or_1009,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_reach_the_sockets_they_concern, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_events_close_exactly_the_sockets_they_name,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_socket_that_does_not_read_is_cut_at_the_outbox_bound,
                                        setup, teardown),
    };
    /* Metrics live for the process (push_conn.c keeps pointers to them), as in the daemon. */
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    metrics_reset();
    return failed;
}
