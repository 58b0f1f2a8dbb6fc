/*
 * row_cache: what may be stored and answered, driven the way pgpool drives it (READY / NOTIFY /
 * LOST events) without a database: a change notification drops its entry, a read that raced a
 * notification is not stored, nothing is trusted while LISTEN is down, "*" empties everything,
 * and the table never grows past its bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/account.c"
#include "api-server/row_cache.c"

static const char device[] = "0b6f3c1e-8d2a-4c55-9a51-2f7d3b9e4a10";

static row_cache_t *trusted_cache(uv_loop_t *loop)
{
    assert_int_equal(uv_loop_init(loop), 0);
    row_cache_t *c = row_cache_new(loop);
    assert_non_null(c);
    row_cache_on_listen(c, PGPOOL_LISTEN_READY, NULL);
    return c;
}

static void done(row_cache_t *c, uv_loop_t *loop)
{
    row_cache_free(c);
    assert_int_equal(uv_loop_close(loop), 0);
    metrics_reset();
}

static account_t sample_account(int64_t id, int64_t epoch)
{
    static char login[] = "ops", name[] = "Operator";
    return (account_t){.id = id, .login = login, .name = name, .roles = ACCOUNT_ROLE_AGENT,
                       .status = "online", .session_epoch = epoch};
}

static void test_stored_rows_are_answered_as_copies(void **state)
{
    (void)state;
    uv_loop_t loop;
    row_cache_t *c = trusted_cache(&loop);
    account_t a = sample_account(42, 3), got;
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);
    row_cache_put_account(c, row_cache_ticket(c), &a);
    assert_int_equal(row_cache_get_account(c, 42, &got), 1);
    assert_int_equal(got.session_epoch, 3);
    assert_string_equal(got.name, "Operator");
    assert_ptr_not_equal(got.name, a.name); /* the caller owns its copy */
    account_clear(&got);

    int64_t owner = 0;
    assert_int_equal(row_cache_get_device_owner(c, device, &owner), 0);
    row_cache_put_device_owner(c, row_cache_ticket(c), device, 42);
    assert_int_equal(row_cache_get_device_owner(c, device, &owner), 1);
    assert_int_equal(owner, 42);
    done(c, &loop);
}

static void test_a_notification_drops_its_entry_only(void **state)
{
    (void)state;
    uv_loop_t loop;
    row_cache_t *c = trusted_cache(&loop);
    account_t a = sample_account(42, 1), b = sample_account(7, 1), got;
    row_cache_put_account(c, row_cache_ticket(c), &a);
    row_cache_put_account(c, row_cache_ticket(c), &b);
    row_cache_put_device_owner(c, row_cache_ticket(c), device, 42);

    row_cache_on_listen(c, PGPOOL_LISTEN_NOTIFY, "accounts:42");
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);
    assert_int_equal(row_cache_get_account(c, 7, &got), 1);
    account_clear(&got);

    char payload[64];
    snprintf(payload, sizeof(payload), "devices:%s", device);
    int64_t owner;
    row_cache_on_listen(c, PGPOOL_LISTEN_NOTIFY, payload);
    assert_int_equal(row_cache_get_device_owner(c, device, &owner), 0);

    row_cache_on_listen(c, PGPOOL_LISTEN_NOTIFY, "*"); /* a truncate: everything goes */
    assert_int_equal(row_cache_get_account(c, 7, &got), 0);
    done(c, &loop);
}

static void test_a_read_that_raced_a_change_is_not_stored(void **state)
{
    (void)state;
    uv_loop_t loop;
    row_cache_t *c = trusted_cache(&loop);
    uint64_t ticket = row_cache_ticket(c); /* the query goes out ... */
    row_cache_on_listen(c, PGPOOL_LISTEN_NOTIFY, "accounts:99"); /* ... any change arrives ... */
    account_t a = sample_account(42, 1), got;
    row_cache_put_account(c, ticket, &a); /* ... and the answer may predate it */
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);
    row_cache_put_device_owner(c, ticket, device, 42);
    int64_t owner;
    assert_int_equal(row_cache_get_device_owner(c, device, &owner), 0);
    done(c, &loop);
}

static void test_nothing_is_trusted_while_listen_is_down(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    row_cache_t *c = row_cache_new(&loop);
    account_t a = sample_account(42, 1), got;
    /* Before the first READY: neither stored nor answered. */
    row_cache_put_account(c, row_cache_ticket(c), &a);
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);

    row_cache_on_listen(c, PGPOOL_LISTEN_READY, NULL);
    row_cache_put_account(c, row_cache_ticket(c), &a);
    assert_int_equal(row_cache_get_account(c, 42, &got), 1);
    account_clear(&got);

    /* Lost: what was kept may have changed unheard; the ticket of a read in flight is stale. */
    uint64_t ticket = row_cache_ticket(c);
    row_cache_on_listen(c, PGPOOL_LISTEN_LOST, NULL);
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);
    row_cache_put_account(c, row_cache_ticket(c), &a);
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);

    /* Back: it starts empty, and the read that straddled the outage is still refused. */
    row_cache_on_listen(c, PGPOOL_LISTEN_READY, NULL);
    row_cache_put_account(c, ticket, &a);
    assert_int_equal(row_cache_get_account(c, 42, &got), 0);
    done(c, &loop);
}

static void test_the_table_stays_within_its_bound(void **state)
{
    (void)state;
    uv_loop_t loop;
    row_cache_t *c = trusted_cache(&loop);
    for (int64_t id = 1; id <= ROW_CACHE_MAX_ENTRIES + 10; id++) {
        account_t a = sample_account(id, 1);
        row_cache_put_account(c, row_cache_ticket(c), &a);
        assert_true(strmap_count(c->map) <= ROW_CACHE_MAX_ENTRIES);
    }
    account_t got;
    assert_int_equal(row_cache_get_account(c, ROW_CACHE_MAX_ENTRIES + 10, &got), 1);
    account_clear(&got);
    done(c, &loop);
}

static void test_a_null_cache_holds_nothing(void **state)
{
    (void)state;
    account_t a = sample_account(42, 1), got;
    int64_t owner;
    row_cache_put_account(NULL, row_cache_ticket(NULL), &a);
    row_cache_put_device_owner(NULL, 0, device, 42);
    assert_int_equal(row_cache_get_account(NULL, 42, &got), 0);
    assert_int_equal(row_cache_get_device_owner(NULL, device, &owner), 0);
    row_cache_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_rows_are_answered_as_copies),
        cmocka_unit_test(test_a_notification_drops_its_entry_only),
        cmocka_unit_test(test_a_read_that_raced_a_change_is_not_stored),
        cmocka_unit_test(test_nothing_is_trusted_while_listen_is_down),
        cmocka_unit_test(test_the_table_stays_within_its_bound),
        cmocka_unit_test(test_a_null_cache_holds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
