/*
 * pgpool against a real PostgreSQL (started by test/run.sh): queries, SQL errors, queueing,
 * timeouts, a server restart under a live pool, and a clean shutdown. Every test ends with
 * uv_loop_close() == 0, i.e. the pool left no handle behind.
 *
 * Needs EDGEGATE_TEST_DATABASE_URL, and for the restart test EDGEGATE_TEST_SERVICES_DIR and
 * EDGEGATE_TEST_PG_PORT; a missing variable is a failure, not a skip. Run from the repository
 * root (the restart test calls deploy/dev-services.sh).
 */
#include "common/pgpool.h"

#include "common/log.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test/unit/loop_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

/* ---- harness ---- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run(ONCE) so run_until can check its condition and clock */
    pgpool *pool;
};

struct result {
    int called;
    ExecStatusType status;
    const char *error;
    char sqlstate[6];
    char value[64];
    uint64_t done_ns;
};

static void tick_cb(uv_timer_t *t)
{
}

/* The test database, its sessions named application_name (so a test can find its own). */
static void fx_open_named(struct fixture *fx, const pgpool_options *opt, const char *application)
{
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, tick_cb, 10, 10);
    const char *url = need_env("EDGEGATE_TEST_DATABASE_URL");
    char conninfo[512];
    snprintf(conninfo, sizeof(conninfo), "%s%sapplication_name=%s", url,
             strchr(url, '?') ? "&" : "?", application);
    fx->pool = pgpool_new(&fx->loop, conninfo, opt);
    assert_non_null(fx->pool);
}

static void fx_open(struct fixture *fx, const pgpool_options *opt)
{
    fx_open_named(fx, opt, "test_pgpool");
}

/* Runs the loop until *flag reaches want or timeout_ms passes; returns 0 when it did. */
struct available_goal {
    const pgpool *pool;
    int want;
};

static int available_reached(void *arg)
{
    const struct available_goal *g = arg;
    return pgpool_available(g->pool) == g->want;
}

static int run_until_available(struct fixture *fx, int want, int timeout_ms)
{
    struct available_goal g = {fx->pool, want};
    return run_until(&fx->loop, available_reached, &g, timeout_ms);
}

static void fx_close(struct fixture *fx)
{
    int done = 0;
    uv_close((uv_handle_t *)&fx->tick, NULL);
    pgpool_close(fx->pool, set_flag, &done);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    /* UV_EBUSY here would mean a handle of the pool is still open. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static void on_result(void *arg, const PGresult *res, const char *error)
{
    struct result *r = arg;
    r->called++;
    r->error = error;
    r->done_ns = uv_hrtime();
    if (res == NULL)
        return;
    r->status = PQresultStatus(res);
    const char *state = pgpool_sqlstate(res);
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", state ? state : "");
    if (r->status == PGRES_TUPLES_OK && PQntuples(res) > 0)
        snprintf(r->value, sizeof(r->value), "%s", PQgetvalue(res, 0, 0));
}

static void query_ok(struct fixture *fx, const char *sql, const char *want)
{
    struct result r = {0};
    assert_int_equal(pgpool_query(fx->pool, sql, 0, NULL, NULL, on_result, &r), 0);
    assert_int_equal(run_until_int(&fx->loop, &r.called, 1, 10000), 0);
    assert_null(r.error);
    assert_int_equal(r.status, PGRES_TUPLES_OK);
    assert_string_equal(r.value, want);
}

/* ---- tests ---- */

static void test_conninfo_is_validated_without_echoing_secrets(void **state)
{
    char err[256];
    assert_int_equal(pgpool_check_conninfo("postgresql://u:pw@127.0.0.1:5432/db", err, sizeof(err)),
                     0);
    assert_int_equal(pgpool_check_conninfo("host=x password=hunter2 nonsense", err, sizeof(err)),
                     -1);
    assert_null(strstr(err, "hunter2"));
    assert_true(strlen(err) > 0);

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_null(pgpool_new(&loop, "host=x password=hunter2 nonsense", NULL));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_query_with_text_binary_and_null_params(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);

    /* Issued at once: it waits in the queue while the pool is still connecting. */
    const char *text[] = {"2", "40", NULL};
    struct result r1 = {0};
    assert_int_equal(pgpool_query(fx.pool, "SELECT ($1::int + $2::int)::text || coalesce($3, '!')",
                                  3, text, NULL, on_result, &r1),
                     0);

    /* Binary parameters are length-delimited: an embedded NUL survives. */
    const char blob[] = {'a', '\0', 'b'};
    const char *bin[] = {blob};
    const int lens[] = {3};
    struct result r2 = {0};
    assert_int_equal(
        pgpool_query(fx.pool, "SELECT length($1::bytea)", 1, bin, lens, on_result, &r2), 0);

    assert_int_equal(run_until_int(&fx.loop, &r1.called, 1, 10000), 0);
    assert_int_equal(run_until_int(&fx.loop, &r2.called, 1, 10000), 0);
    assert_null(r1.error);
    assert_int_equal(r1.status, PGRES_TUPLES_OK);
    assert_string_equal(r1.value, "42!");
    assert_null(r2.error);
    assert_string_equal(r2.value, "3");
    assert_int_equal(r1.called, 1);
    assert_int_equal(r2.called, 1);

    assert_int_equal(pgpool_query(fx.pool, NULL, 0, NULL, NULL, on_result, &r1), -EINVAL);
    assert_int_equal(pgpool_query(fx.pool, "SELECT $1", 1, NULL, NULL, on_result, &r1), -EINVAL);
    fx_close(&fx);
}

static void test_sql_error_is_a_result_with_sqlstate(void **state)
{
    struct fixture fx;
    fx_open(&fx, NULL);

    struct result r = {0};
    assert_int_equal(pgpool_query(fx.pool, "SELECT 1/0", 0, NULL, NULL, on_result, &r), 0);
    assert_int_equal(run_until_int(&fx.loop, &r.called, 1, 10000), 0);
    assert_null(r.error);
    assert_int_equal(r.status, PGRES_FATAL_ERROR);
    assert_string_equal(r.sqlstate, "22012");

    /* A unique violation, self-contained: the failed DO block rolls its temp table back. */
    struct result u = {0};
    assert_int_equal(pgpool_query(fx.pool,
                                  "DO $$ BEGIN CREATE TEMP TABLE pgpool_uniq (k int PRIMARY KEY) "
                                  "ON COMMIT DROP; INSERT INTO pgpool_uniq VALUES (1), (1); END $$",
                                  0, NULL, NULL, on_result, &u),
                     0);
    assert_int_equal(run_until_int(&fx.loop, &u.called, 1, 10000), 0);
    assert_null(u.error);
    assert_string_equal(u.sqlstate, "23505");

    /* The connection that carried the errors is still fine. */
    assert_int_equal(run_until_available(&fx, 4, 10000), 0);
    query_ok(&fx, "SELECT 'still here'", "still here");
    fx_close(&fx);
}

#define MANY 200

static void test_200_concurrent_queries_over_4_connections_all_complete(void **state)
{
    struct fixture fx;
    pgpool_options opt = {.size = 4};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_available(&fx, 4, 10000), 0);

    static struct result r[MANY];
    static char num[MANY][12];
    memset(r, 0, sizeof(r));
    int completed = 0;
    for (int i = 0; i < MANY; i++) {
        snprintf(num[i], sizeof(num[i]), "%d", i);
        const char *v[] = {num[i]};
        assert_int_equal(pgpool_query(fx.pool, "SELECT $1::int * 2, pg_sleep(0.002)", 1, v, NULL,
                                      on_result, &r[i]),
                         0);
    }
    uint64_t deadline = uv_hrtime() + 20000000000ull;
    while (completed < MANY && uv_hrtime() < deadline) {
        uv_run(&fx.loop, UV_RUN_ONCE);
        completed = 0;
        for (int i = 0; i < MANY; i++)
            completed += r[i].called;
    }
    assert_int_equal(completed, MANY);
    for (int i = 0; i < MANY; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i * 2);
        assert_int_equal(r[i].called, 1);
        assert_null(r[i].error);
        assert_string_equal(r[i].value, want);
    }
    fx_close(&fx);
}

static void test_queue_limit_fails_the_excess_query_asynchronously(void **state)
{
    struct fixture fx;
    pgpool_options opt = {.size = 1, .max_queued = 2};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_available(&fx, 1, 10000), 0);

    struct result busy = {0}, q1 = {0}, q2 = {0}, over = {0};
    assert_int_equal(pgpool_query(fx.pool, "SELECT pg_sleep(0.3)", 0, NULL, NULL, on_result, &busy),
                     0);
    assert_int_equal(pgpool_query(fx.pool, "SELECT 'q1'", 0, NULL, NULL, on_result, &q1), 0);
    assert_int_equal(pgpool_query(fx.pool, "SELECT 'q2'", 0, NULL, NULL, on_result, &q2), 0);
    assert_int_equal(pgpool_query(fx.pool, "SELECT 'over'", 0, NULL, NULL, on_result, &over), 0);
    assert_int_equal(over.called, 0); /* never from inside pgpool_query */

    assert_int_equal(run_until_int(&fx.loop, &over.called, 1, 1000), 0);
    assert_ptr_equal(over.error, pgpool_err_queue_full);
    assert_int_equal(busy.called, 0); /* the failure did not wait for the busy connection */

    assert_int_equal(run_until_int(&fx.loop, &q2.called, 1, 10000), 0);
    assert_null(busy.error);
    assert_string_equal(q1.value, "q1");
    assert_string_equal(q2.value, "q2");
    assert_int_equal(over.called, 1);
    fx_close(&fx);
}

static void test_query_timeout_fails_then_pool_recovers(void **state)
{
    struct fixture fx;
    /* No server-side timeout: this checks the client timer, the backstop for a dead server. */
    pgpool_options opt = {.size = 1, .query_timeout_ms = 300, .statement_timeout_ms = -1};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_available(&fx, 1, 10000), 0);

    struct result slow = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(pgpool_query(fx.pool, "SELECT pg_sleep(5)", 0, NULL, NULL, on_result, &slow),
                     0);
    assert_int_equal(run_until_int(&fx.loop, &slow.called, 1, 3000), 0);
    assert_ptr_equal(slow.error, pgpool_err_timeout);
    assert_true(slow.done_ns - t0 < 1500000000ull);

    /* The stuck connection was dropped and comes back by itself. */
    assert_int_equal(run_until_available(&fx, 1, 10000), 0);
    query_ok(&fx, "SELECT 'recovered'", "recovered");
    assert_int_equal(slow.called, 1);
    fx_close(&fx);
}

/*
 * A "server" that completes the TCP handshake and then never says a word: the pool is still
 * starting, so a query waits in the queue and must expire there; then the connect timeout ends
 * the attempts, start-up is over, and with nothing up the next query fails at once.
 */
static void test_unresponsive_server_expires_queued_query_and_connect(void **state)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(ls, 16), 0);
    socklen_t slen = sizeof(sin);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sin, &slen), 0);
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d user=nobody dbname=nothing",
             ntohs(sin.sin_port));

    struct fixture fx;
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    uv_timer_init(&fx.loop, &fx.tick);
    uv_timer_start(&fx.tick, tick_cb, 10, 10);
    pgpool_options opt = {.size = 2, .query_timeout_ms = 300, .connect_timeout_ms = 800};
    fx.pool = pgpool_new(&fx.loop, conninfo, &opt);
    assert_non_null(fx.pool);

    struct result queued = {0}, later = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(pgpool_query(fx.pool, "SELECT 1", 0, NULL, NULL, on_result, &queued), 0);
    assert_int_equal(run_until_int(&fx.loop, &queued.called, 1, 3000), 0);
    assert_ptr_equal(queued.error, pgpool_err_timeout);
    assert_true(queued.done_ns - t0 >= 250000000ull && queued.done_ns - t0 < 700000000ull);

    /* Past the connect timeout both attempts have failed: start-up is over. */
    uint64_t pause = t0 + 1200000000ull;
    while (uv_hrtime() < pause)
        uv_run(&fx.loop, UV_RUN_ONCE);
    assert_int_equal(pgpool_available(fx.pool), 0);
    t0 = uv_hrtime();
    assert_int_equal(pgpool_query(fx.pool, "SELECT 1", 0, NULL, NULL, on_result, &later), 0);
    assert_int_equal(run_until_int(&fx.loop, &later.called, 1, 1000), 0);
    assert_ptr_equal(later.error, pgpool_err_unavailable);
    assert_true(later.done_ns - t0 < 100000000ull);

    fx_close(&fx);
    close(ls);
}

static void test_server_side_statement_timeout_keeps_the_connection(void **state)
{
    struct fixture fx;
    pgpool_options opt = {.size = 1, .query_timeout_ms = 5000, .statement_timeout_ms = 200};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_available(&fx, 1, 10000), 0);

    struct result r = {0};
    assert_int_equal(pgpool_query(fx.pool, "SELECT pg_sleep(5)", 0, NULL, NULL, on_result, &r), 0);
    assert_int_equal(run_until_int(&fx.loop, &r.called, 1, 3000), 0);
    assert_null(r.error);
    assert_string_equal(r.sqlstate, "57014"); /* query_canceled */
    assert_int_equal(pgpool_available(fx.pool), 1);
    query_ok(&fx, "SELECT 'same connection'", "same connection");
    fx_close(&fx);
}

static void test_close_fails_pending_queries_and_lets_the_loop_end(void **state)
{
    struct fixture fx;
    pgpool_options opt = {.size = 2};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_available(&fx, 2, 10000), 0);

    struct result r[6];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 6; i++)
        assert_int_equal(
            pgpool_query(fx.pool, "SELECT pg_sleep(1)", 0, NULL, NULL, on_result, &r[i]), 0);
    uint64_t t0 = uv_hrtime();
    fx_close(&fx); /* in flight and queued alike */
    assert_true(uv_hrtime() - t0 < 500000000ull);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].called, 1);
        assert_ptr_equal(r[i].error, pgpool_err_closing);
    }
}

/* ---- LISTEN ---- */

struct listened {
    int ready, lost, notified;
    char payload[64];
};

static void on_listen(void *arg, enum pgpool_listen_event event, const char *payload)
{
    struct listened *l = arg;
    switch (event) {
    case PGPOOL_LISTEN_READY:
        l->ready++;
        break;
    case PGPOOL_LISTEN_LOST:
        l->lost++;
        break;
    case PGPOOL_LISTEN_NOTIFY:
        l->notified++;
        snprintf(l->payload, sizeof(l->payload), "%s", payload);
        break;
    }
}

static void notify(struct fixture *fx, const char *payload)
{
    struct result r = {0};
    const char *values[1] = {payload};
    assert_int_equal(pgpool_query(fx->pool, "SELECT pg_notify('edgegate_test', $1)::text", 1,
                                  values, NULL, on_result, &r),
                     0);
    assert_int_equal(run_until_int(&fx->loop, &r.called, 1, 10000), 0);
    assert_null(r.error);
}

static void test_listen_channel_must_be_a_plain_name(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    const char *bad[] = {"", "1abc", "a-b", "Upper", "a;b", "a b",
                         "a234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pgpool_options opt = {.listen_channel = bad[i]};
        assert_null(pgpool_new(&loop, "dbname=x", &opt));
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Notifies until one notification is heard by `listeners` connections: a connection that has
 * just come up may still be sending its LISTEN. Returns 0 when it was. */
static int notify_until_heard(struct fixture *fx, struct listened *l, const char *payload,
                              int listeners)
{
    for (int tries = 0; tries < 50; tries++) {
        l->notified = 0;
        notify(fx, payload);
        if (run_until_int(&fx->loop, &l->notified, listeners, 200) == 0)
            return 0;
    }
    return -1;
}

/* Terminates the pool's other connection (the asking one is spared). */
static void kill_the_other_connection(struct fixture *fx)
{
    query_ok(fx,
             "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity"
             " WHERE pid <> pg_backend_pid() AND application_name = 'listen_test'",
             "1");
}

static void test_listen_delivers_notifications_and_reports_a_lost_connection(void **state)
{
    struct fixture fx;
    struct listened l = {0};
    pgpool_options opt = {.size = 2, .listen_channel = "edgegate_test", .on_listen = on_listen,
                          .listen_arg = &l};
    fx_open_named(&fx, &opt, "listen_test");
    assert_int_equal(run_until_int(&fx.loop, &l.ready, 1, 10000), 0);
    assert_int_equal(run_until_available(&fx, 2, 10000), 0);

    /* Every listening connection hears it: the callback sees it once per connection. */
    assert_int_equal(notify_until_heard(&fx, &l, "accounts:42", 2), 0);
    assert_string_equal(l.payload, "accounts:42");
    assert_int_equal(l.ready, 1); /* READY once, however many connections listen */

    /* One connection killed: the other still listens, nothing is lost. It comes back. */
    kill_the_other_connection(&fx);
    assert_int_equal(run_until_available(&fx, 1, 5000), 0);
    assert_int_equal(notify_until_heard(&fx, &l, "devices:7", 2), 0); /* the new one too */
    assert_string_equal(l.payload, "devices:7");
    assert_int_equal(l.lost, 0);

    /* Both killed (the server going away): LOST, then READY again once one listens. */
    services("stop-pg", "EDGEGATE_TEST_PG_PORT");
    assert_int_equal(run_until_int(&fx.loop, &l.lost, 1, 10000), 0);
    services("start-pg", "EDGEGATE_TEST_PG_PORT");
    assert_int_equal(run_until_int(&fx.loop, &l.ready, 2, 20000), 0);
    l.notified = 0;
    notify(&fx, "*");
    assert_int_equal(run_until_int(&fx.loop, &l.notified, 1, 5000), 0);
    assert_string_equal(l.payload, "*");
    fx_close(&fx);
}

/* The order a cache relies on: a query's own NOTIFY is handed on before its callback. */
struct own_write {
    struct listened *l;
    int notified_before_result;
    int called;
};

static void on_own_write(void *arg, const PGresult *res, const char *error)
{
    struct own_write *w = arg;
    w->called = 1;
    w->notified_before_result = w->l->notified;
}

static void test_listen_hands_a_query_its_own_notification_before_its_result(void **state)
{
    struct fixture fx;
    struct listened l = {0};
    pgpool_options opt = {.size = 1, .listen_channel = "edgegate_test", .on_listen = on_listen,
                          .listen_arg = &l};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_int(&fx.loop, &l.ready, 1, 10000), 0);
    for (int i = 0; i < 20; i++) {
        struct own_write w = {.l = &l};
        l.notified = 0;
        assert_int_equal(pgpool_query(fx.pool, "SELECT pg_notify('edgegate_test', 'mine')", 0,
                                      NULL, NULL, on_own_write, &w),
                         0);
        assert_int_equal(run_until_int(&fx.loop, &w.called, 1, 5000), 0);
        assert_int_equal(w.notified_before_result, 1);
    }
    fx_close(&fx);
}

static void test_server_stop_fails_fast_and_start_recovers_without_restart(void **state)
{
    struct fixture fx;
    pgpool_options opt = {.size = 2};
    fx_open(&fx, &opt);
    assert_int_equal(run_until_available(&fx, 2, 10000), 0);
    query_ok(&fx, "SELECT 'before'", "before");

    services("stop-pg", "EDGEGATE_TEST_PG_PORT");
    assert_int_equal(run_until_available(&fx, 0, 10000), 0);

    struct result down = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(pgpool_query(fx.pool, "SELECT 1", 0, NULL, NULL, on_result, &down), 0);
    assert_int_equal(down.called, 0);
    assert_int_equal(run_until_int(&fx.loop, &down.called, 1, 1000), 0);
    assert_ptr_equal(down.error, pgpool_err_unavailable);
    assert_true(down.done_ns - t0 < 100000000ull); /* fast: no waiting for a timeout */

    /* Let a few reconnect attempts fail, so the backoff has grown, then bring it back. */
    uint64_t pause = uv_hrtime() + 700000000ull;
    while (uv_hrtime() < pause)
        uv_run(&fx.loop, UV_RUN_ONCE);

    services("start-pg", "EDGEGATE_TEST_PG_PORT");
    assert_int_equal(run_until_available(&fx, 2, 20000), 0);
    query_ok(&fx, "SELECT 'after'", "after");
    fx_close(&fx);
}

int main(void)
{
    enum log_level level = LOG_LEVEL_WARN;
    const char *env = getenv("EDGEGATE_LOG_LEVEL");
    if (env != NULL)
        log_parse_level(env, &level);
    log_init("test_pgpool", level);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conninfo_is_validated_without_echoing_secrets),
        cmocka_unit_test(test_query_with_text_binary_and_null_params),
        cmocka_unit_test(test_sql_error_is_a_result_with_sqlstate),
        cmocka_unit_test(test_200_concurrent_queries_over_4_connections_all_complete),
        cmocka_unit_test(test_queue_limit_fails_the_excess_query_asynchronously),
        cmocka_unit_test(test_query_timeout_fails_then_pool_recovers),
        cmocka_unit_test(test_server_side_statement_timeout_keeps_the_connection),
        cmocka_unit_test(test_unresponsive_server_expires_queued_query_and_connect),
        cmocka_unit_test(test_close_fails_pending_queries_and_lets_the_loop_end),
        cmocka_unit_test(test_listen_channel_must_be_a_plain_name),
        cmocka_unit_test(test_listen_hands_a_query_its_own_notification_before_its_result),
        cmocka_unit_test(test_listen_delivers_notifications_and_reports_a_lost_connection),
        /* Last: it restarts the server the others use. */
        cmocka_unit_test(test_server_stop_fails_fast_and_start_recovers_without_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
