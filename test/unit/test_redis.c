/*
 * redis against a real Redis (started by test/run.sh): round trips, binary values, error
 * replies, timeouts, a server restart under a live client (commands and pub/sub), and a clean
 * shutdown. Every test ends with uv_loop_close() == 0: the client left no handle behind.
 *
 * Needs EDGEGATE_TEST_REDIS_URL, and for the restart tests EDGEGATE_TEST_SERVICES_DIR and
 * EDGEGATE_TEST_REDIS_PORT; a missing variable is a failure, not a skip. Run from the
 * repository root (the restart tests call deploy/dev-services.sh).
 */
#include "common/redis.h"

#include "common/log.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test/unit/loop_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* ---- harness ---- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run(ONCE) so the run_until helpers can check the clock */
    redis *r;
};

struct reply {
    int called;
    const char *error;
    int type;
    long long integer;
    char str[256];
    size_t len;
    uint64_t done_ns;
};

struct inbox {
    int count;
    char last[128];
    size_t len;
};

static void tick_cb(uv_timer_t *t)
{
}

static void fx_open_url(struct fixture *fx, const char *url, const redis_options *opt)
{
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, tick_cb, 10, 10);
    fx->r = redis_new(&fx->loop, url, opt);
    assert_non_null(fx->r);
}

static void fx_open(struct fixture *fx, const redis_options *opt)
{
    fx_open_url(fx, need_env("EDGEGATE_TEST_REDIS_URL"), opt);
}

struct connected_goal {
    const redis *r;
    int want;
};

static int connected_reached(void *arg)
{
    const struct connected_goal *g = arg;
    return redis_connected(g->r) == g->want;
}

static int run_until_connected(struct fixture *fx, int want, int timeout_ms)
{
    struct connected_goal g = {fx->r, want};
    return run_until(&fx->loop, connected_reached, &g, timeout_ms);
}

static void fx_close(struct fixture *fx)
{
    int done = 0;
    uv_close((uv_handle_t *)&fx->tick, NULL);
    redis_close(fx->r, set_flag, &done);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    /* UV_EBUSY here would mean a handle of the client (or of hiredis) is still open. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static void on_reply(void *arg, redisReply *reply, const char *error)
{
    struct reply *r = arg;
    r->called++;
    r->error = error;
    r->done_ns = uv_hrtime();
    if (reply == NULL)
        return;
    r->type = reply->type;
    r->integer = reply->integer;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
        reply->type == REDIS_REPLY_ERROR) {
        r->len = reply->len;
        memcpy(r->str, reply->str, reply->len < sizeof(r->str) ? reply->len : sizeof(r->str));
    }
}

static void on_message(void *arg, const char *msg, size_t len)
{
    struct inbox *in = arg;
    in->count++;
    in->len = len;
    memcpy(in->last, msg, len < sizeof(in->last) ? len : sizeof(in->last));
}

/* A key of this process that expires by itself. */
static const char *test_key(const char *name)
{
    static char key[128];
    snprintf(key, sizeof(key), "edgegate:test:redis:%ld:%s", (long)getpid(), name);
    return key;
}

static void set_get(struct fixture *fx, const char *key, const char *value)
{
    struct reply set = {0}, get = {0};
    assert_int_equal(redis_command(fx->r, on_reply, &set, "SET %s %s PX 60000", key, value), 0);
    assert_int_equal(redis_command(fx->r, on_reply, &get, "GET %s", key), 0);
    assert_int_equal(run_until_int(&fx->loop, &get.called, 1, 5000), 0);
    assert_null(set.error);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_null(get.error);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_int_equal(get.len, strlen(value));
    assert_memory_equal(get.str, value, get.len);
}

/* Publishes every 100 ms until the inbox grows (a subscription is live only once confirmed). */
static int publish_until_received(struct fixture *fx, const char *channel, const char *msg,
                                  struct inbox *in, int timeout_ms)
{
    int before = in->count;
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while (in->count == before) {
        if (uv_hrtime() > deadline)
            return -1;
        redis_command(fx->r, NULL, NULL, "PUBLISH %s %b", channel, msg, strlen(msg));
        run_for(&fx->loop, 100);
    }
    return 0;
}

/* ---- tests ---- */

static void test_url_parsing_gives_clear_errors_without_secrets(void **state)
{
    assert_null(redis_url_error("redis://127.0.0.1:6379/0"));
    assert_null(redis_url_error("redis://cache"));
    assert_null(redis_url_error("redis://:p%40ss@cache:6380/2"));
    assert_null(redis_url_error("redis://app:pw@[::1]:6380"));
    assert_null(redis_url_error("unix:///run/redis/redis.sock"));
    assert_null(redis_url_error("unix:///run/redis/redis.sock?db=3&password=pw"));

    const char *bad[] = {
        "",
        "http://cache:6379",
        "rediss://cache:6380",
        "redis://",
        "redis://cache:0",
        "redis://cache:99999",
        "redis://cache:port",
        "redis://cache/zero",
        "redis://secretpw@cache",
        "redis://cache?timeout=1",
        "redis://:bad%zzsecretpw@cache",
        "redis://[::1:6379",
        "unix://relative.sock",
        "unix:///run/redis.sock?db=x",
        "redis://ca che",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = redis_url_error(bad[i]);
        if (err == NULL)
            fail_msg("accepted %s", bad[i]);
        else
            assert_null(strstr(err, "secretpw"));
    }

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_null(redis_new(&loop, "redis://cache:99999", NULL));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_set_get_round_trip(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);
    /* Sent at once: during the first connect, commands wait for it. */
    set_get(&fx, test_key("roundtrip"), "hello");
    assert_int_equal(redis_connected(fx.r), 1);
    fx_close(&fx);
}

static void test_binary_values_are_preserved(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);
    const char blob[] = {'a', '\0', '\r', '\n', (char)0xff, '%', 's', '\0'};
    const char *key = test_key("binary");

    struct reply set = {0}, get = {0}, getv = {0};
    assert_int_equal(
        redis_command(fx.r, on_reply, &set, "SET %s %b PX 60000", key, blob, sizeof(blob)), 0);
    assert_int_equal(redis_command(fx.r, on_reply, &get, "GET %b", key, strlen(key)), 0);
    const char *argv[] = {"GET", key};
    const size_t argvlen[] = {3, strlen(key)};
    assert_int_equal(redis_commandv(fx.r, on_reply, &getv, 2, argv, argvlen), 0);
    assert_int_equal(run_until_int(&fx.loop, &getv.called, 1, 5000), 0);

    assert_null(set.error);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_int_equal(get.len, sizeof(blob));
    assert_memory_equal(get.str, blob, sizeof(blob));
    assert_int_equal(getv.len, sizeof(blob));
    assert_memory_equal(getv.str, blob, sizeof(blob));
    fx_close(&fx);
}

static void test_error_reply_is_a_reply_and_mode_changing_commands_are_refused(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);
    const char *key = test_key("notanumber");

    struct reply set = {0}, incr = {0}, unknown = {0}, sub = {0};
    assert_int_equal(redis_command(fx.r, on_reply, &set, "SET %s abc PX 60000", key), 0);
    assert_int_equal(redis_command(fx.r, on_reply, &incr, "INCR %s", key), 0);
    assert_int_equal(redis_command(fx.r, on_reply, &unknown, "NOSUCHCOMMAND"), 0);
    assert_int_equal(run_until_int(&fx.loop, &unknown.called, 1, 5000), 0);
    assert_null(incr.error);
    assert_int_equal(incr.type, REDIS_REPLY_ERROR);
    assert_true(strncmp(incr.str, "ERR", 3) == 0);
    assert_int_equal(unknown.type, REDIS_REPLY_ERROR);

    /* They would switch the shared command connection into another mode. */
    assert_int_equal(redis_command(fx.r, on_reply, &sub, "SUBSCRIBE %s", "x"), -EINVAL);
    assert_int_equal(redis_command(fx.r, on_reply, &sub, "monitor"), -EINVAL);
    run_for(&fx.loop, 50);
    assert_int_equal(sub.called, 0);

    /* An error answer does not hurt the connection. */
    set_get(&fx, test_key("after-error"), "fine");
    fx_close(&fx);
}

static void test_connection_refused_fails_fast(void **state)
{
    /* A port nobody listens on: bind, learn it, close. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t slen = sizeof(sin);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &slen), 0);
    close(s);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", ntohs(sin.sin_port));

    struct fixture fx;
    redis_options opt = {.command_timeout_ms = 5000};
    fx_open_url(&fx, url, &opt);
    struct reply first = {0}, later = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(redis_command(fx.r, on_reply, &first, "PING"), 0);
    /* Well before the 5 s connect timeout: the refused connect itself was noticed. */
    assert_int_equal(run_until_int(&fx.loop, &first.called, 1, 2000), 0);
    assert_ptr_equal(first.error, redis_err_unavailable);
    assert_true(first.done_ns - t0 < 1000000000ull);

    assert_int_equal(redis_command(fx.r, on_reply, &later, "PING"), 0);
    assert_int_equal(later.called, 0); /* never from inside redis_command */
    assert_int_equal(run_until_int(&fx.loop, &later.called, 1, 1000), 0);
    assert_ptr_equal(later.error, redis_err_unavailable);
    assert_int_equal(redis_connected(fx.r), 0);
    fx_close(&fx);
}

static void test_command_timeout_drops_the_connection_then_recovers(void **state)
{
    struct fixture fx;
    redis_options opt = {.command_timeout_ms = 500};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_connected(&fx, 1, 5000), 0);

    /* The server stops answering everyone for 1.5 s (DEBUG SLEEP is disabled in Redis 7). */
    struct reply pause = {0}, stuck = {0};
    assert_int_equal(redis_command(fx.r, on_reply, &pause, "CLIENT PAUSE 1500 ALL"), 0);
    assert_int_equal(run_until_int(&fx.loop, &pause.called, 1, 5000), 0);
    assert_null(pause.error);
    assert_int_equal(pause.type, REDIS_REPLY_STATUS);

    uint64_t t0 = uv_hrtime();
    assert_int_equal(redis_command(fx.r, on_reply, &stuck, "GET %s", test_key("stuck")), 0);
    assert_int_equal(run_until_int(&fx.loop, &stuck.called, 1, 3000), 0);
    assert_ptr_equal(stuck.error, redis_err_timeout);
    uint64_t took = stuck.done_ns - t0;
    assert_true(took >= 450000000ull && took < 1200000000ull);

    /* Reconnects by itself; once the pause is over, commands work again. */
    uint64_t deadline = uv_hrtime() + 10000000000ull;
    struct reply ok = {0};
    while (uv_hrtime() < deadline) {
        memset(&ok, 0, sizeof(ok));
        if (redis_command(fx.r, on_reply, &ok, "PING") == 0 &&
            run_until_int(&fx.loop, &ok.called, 1, 3000) == 0 && ok.error == NULL)
            break;
        run_for(&fx.loop, 100);
    }
    assert_null(ok.error);
    assert_int_equal(ok.type, REDIS_REPLY_STATUS);
    assert_int_equal(stuck.called, 1);
    fx_close(&fx);
}

static void test_close_fails_pending_commands_and_lets_the_loop_end(void **state)
{
    struct fixture fx;
    redis_options opt = {.command_timeout_ms = 10000};
    fx_open(&fx, &opt);
    struct inbox in = {0};
    assert_int_equal(redis_subscribe(fx.r, test_key("close-channel"), on_message, &in), 0);
    assert_int_equal(run_until_connected(&fx, 1, 5000), 0);
    run_for(&fx.loop, 100); /* the pub/sub connection is up too */

    struct reply blocked = {0};
    assert_int_equal(
        redis_command(fx.r, on_reply, &blocked, "BLPOP %s 5", test_key("never-pushed")), 0);
    run_for(&fx.loop, 50);
    uint64_t t0 = uv_hrtime();
    fx_close(&fx);
    assert_true(uv_hrtime() - t0 < 500000000ull);
    assert_int_equal(blocked.called, 1);
    assert_ptr_equal(blocked.error, redis_err_closing);
}

static void test_server_stop_fails_fast_and_restart_recovers(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);
    assert_int_equal(run_until_connected(&fx, 1, 5000), 0);
    set_get(&fx, test_key("before-restart"), "before");

    services("stop-redis", "EDGEGATE_TEST_REDIS_PORT");
    assert_int_equal(run_until_connected(&fx, 0, 5000), 0);
    struct reply down = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(redis_command(fx.r, on_reply, &down, "PING"), 0);
    assert_int_equal(down.called, 0);
    assert_int_equal(run_until_int(&fx.loop, &down.called, 1, 1000), 0);
    assert_ptr_equal(down.error, redis_err_unavailable);
    assert_true(down.done_ns - t0 < 100000000ull);

    run_for(&fx.loop, 700); /* a few refused reconnects: the backoff grows */
    services("start-redis", "EDGEGATE_TEST_REDIS_PORT");
    assert_int_equal(run_until_connected(&fx, 1, 15000), 0);
    set_get(&fx, test_key("after-restart"), "after");
    fx_close(&fx);
}

static void test_pubsub_delivers_and_resubscribes_after_restart(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);
    const char *channel = test_key("events");
    char chan[128];
    snprintf(chan, sizeof(chan), "%s", channel);

    /* Two subscribers on one channel share one SUBSCRIBE and both get every message. */
    struct inbox a = {0}, b = {0};
    assert_int_equal(redis_subscribe(fx.r, chan, on_message, &a), 0);
    assert_int_equal(redis_subscribe(fx.r, chan, on_message, &b), 0);
    assert_int_equal(publish_until_received(&fx, chan, "hello-1", &a, 5000), 0);
    assert_int_equal(a.len, 7);
    assert_memory_equal(a.last, "hello-1", 7);
    assert_int_equal(b.count, a.count);

    services("stop-redis", "EDGEGATE_TEST_REDIS_PORT");
    assert_int_equal(run_until_connected(&fx, 0, 5000), 0);
    services("start-redis", "EDGEGATE_TEST_REDIS_PORT");
    assert_int_equal(run_until_connected(&fx, 1, 15000), 0);

    /* Nothing was re-subscribed by the test: the client did it after reconnecting. */
    assert_int_equal(publish_until_received(&fx, chan, "hello-2", &a, 15000), 0);
    assert_int_equal(a.len, 7);
    assert_memory_equal(a.last, "hello-2", 7);
    assert_memory_equal(b.last, "hello-2", 7);
    fx_close(&fx);
}

int main(void)
{
    enum log_level level = LOG_LEVEL_WARN;
    const char *env = getenv("EDGEGATE_LOG_LEVEL");
    if (env != NULL)
        log_parse_level(env, &level);
    log_init("test_redis", level);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parsing_gives_clear_errors_without_secrets),
        cmocka_unit_test(test_set_get_round_trip),
        cmocka_unit_test(test_binary_values_are_preserved),
        cmocka_unit_test(test_error_reply_is_a_reply_and_mode_changing_commands_are_refused),
        cmocka_unit_test(test_connection_refused_fails_fast),
        cmocka_unit_test(test_command_timeout_drops_the_connection_then_recovers),
        cmocka_unit_test(test_close_fails_pending_commands_and_lets_the_loop_end),
        /* Last: they restart the server the others use. */
        cmocka_unit_test(test_server_stop_fails_fast_and_restart_recovers),
        cmocka_unit_test(test_pubsub_delivers_and_resubscribes_after_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
