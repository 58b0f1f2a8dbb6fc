/*
 * account: the role set as PostgreSQL prints it and as sessions store it, the agent and
 * profile JSON views, and the validation of logins, display names and agent statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/account.c"

static void test_roles_parse_and_print(void **state)
{
    (void)state;
    assert_int_equal(account_roles_parse_array("{user}"), ACCOUNT_ROLE_USER);
    assert_int_equal(account_roles_parse_array("{user,agent}"),
                     ACCOUNT_ROLE_USER | ACCOUNT_ROLE_AGENT);
    assert_int_equal(account_roles_parse_array("{admin}"), ACCOUNT_ROLE_ADMIN);
    assert_int_equal(account_roles_parse_array("{}"), 0);
    assert_int_equal(account_roles_parse_array("{administrator,age}"), 0); /* no prefixes */
    char text[32];
    assert_string_equal(account_roles_text(ACCOUNT_ROLE_USER | ACCOUNT_ROLE_ADMIN, text),
                        "user,admin");
    assert_string_equal(account_roles_text(0, text), "");
    assert_string_equal(account_role_name(ACCOUNT_ROLE_AGENT | ACCOUNT_ROLE_ADMIN), "admin");
    assert_string_equal(account_role_name(ACCOUNT_ROLE_USER | ACCOUNT_ROLE_AGENT), "agent");
    assert_string_equal(account_role_name(ACCOUNT_ROLE_USER), "user");
    assert_int_equal(account_role_parse("agent"), ACCOUNT_ROLE_AGENT);
    assert_int_equal(account_role_parse("Admin"), 0);
    assert_int_equal(account_role_parse(NULL), 0);
}

static void test_login_pattern(void **state)
{
    (void)state;
    assert_true(account_login_valid("alice", 5));
    assert_true(account_login_valid("a.b_c-d@example.org", 19));
    assert_false(account_login_valid("", 0));
    assert_false(account_login_valid("has space", 9));
    assert_false(account_login_valid("semi;colon", 10));
    assert_false(account_login_valid("caf\xc3\xa9", 5));
    assert_false(account_login_valid("a\0b", 3));
    char longest[ACCOUNT_LOGIN_MAX + 1];
    memset(longest, 'a', sizeof(longest));
    assert_true(account_login_valid(longest, ACCOUNT_LOGIN_MAX));
    assert_false(account_login_valid(longest, ACCOUNT_LOGIN_MAX + 1));
}

static void test_display_names_count_characters_not_bytes(void **state)
{
    (void)state;
    char name[1000];
    memset(name, 'n', 201);
    assert_true(account_name_valid(name, 200));
    assert_false(account_name_valid(name, 201));
    assert_false(account_name_valid(name, 0));
    /* 200 two-byte characters are 400 bytes and still fit the table's 200-character limit. */
    for (int i = 0; i < 201; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    assert_true(account_name_valid(name, 400));
    assert_false(account_name_valid(name, 402));
    assert_false(account_name_valid("tab\there", 8));
    assert_false(account_name_valid("del\x7f", 4));
}

static void test_status_values(void **state)
{
    (void)state;
    assert_true(account_status_valid("online"));
    assert_true(account_status_valid("busy"));
    assert_true(account_status_valid("offline"));
    assert_false(account_status_valid("away"));
    assert_false(account_status_valid("Online"));
    assert_false(account_status_valid(""));
    assert_false(account_status_valid(NULL));
}

static void test_json_views(void **state)
{
    (void)state;
    account_t a = {.id = 42, .login = "alice", .name = "Alice", .email = NULL,
                   .roles = ACCOUNT_ROLE_USER | ACCOUNT_ROLE_AGENT, .status = "busy",
                   .current_load = 2, .max_load = 5, .mfa_enabled = 1, .disabled = 0};
    json_t *j = account_agent_json(&a, 0);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"current_load\":2,\"max_load\":5,\"mfa_enabled\":true,"
                              "\"name\":\"Alice\",\"role\":\"agent\",\"status\":\"busy\","
                              "\"user_id\":\"alice\"}");
    free(text);
    json_decref(j);
    j = account_agent_json(&a, 1);
    assert_true(json_is_false(json_object_get(j, "disabled")));
    json_decref(j);
    j = account_profile_json(&a);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"email\":null,\"id\":42,\"login\":\"alice\",\"name\":\"Alice\","
                              "\"roles\":[\"user\",\"agent\"]}");
    free(text);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_parse_and_print),
        cmocka_unit_test(test_login_pattern),
        cmocka_unit_test(test_display_names_count_characters_not_bytes),
        cmocka_unit_test(test_status_values),
        cmocka_unit_test(test_json_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
