/*
 * push_message: what a client may send on /ws/..., what travels on edgegate:events, and the
 * events api-server builds. Cases a hostile client or a confused publisher would try: almost
 * JSON, duplicate keys, the wrong types, ids that overflow, ids with signs and spaces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api-server/push_message.c"
#include "common/ws.h"

static push_inbound_t inbound(const char *text)
{
    push_inbound_t in;
    push_inbound_parse((const uint8_t *)text, strlen(text), &in);
    return in;
}

static push_event_t event(const char *text, int expect_rc)
{
    push_event_t ev;
    assert_int_equal(push_event_parse(text, strlen(text), &ev), expect_rc);
    return ev;
}

static void test_ping_and_unknown_types(void **state)
{
    (void)state;
    assert_int_equal(inbound("{\"type\":\"ping\"}").kind, PUSH_IN_PING);
    assert_int_equal(inbound(" {\"type\" : \"ping\", \"extra\": [1, {}]} ").kind, PUSH_IN_PING);
    push_inbound_t in = inbound("{\"type\":\"chat.message\",\"text\":\"hi\"}");
    assert_int_equal(in.kind, PUSH_IN_UNKNOWN);
    assert_int_equal(in.type_len, strlen("chat.message"));
    assert_memory_equal(in.type, "chat.message", in.type_len);
    /* A long type is cut for the log line, never overflowing. */
    char text[200];
    snprintf(text, sizeof(text), "{\"type\":\"%0100d\"}", 0);
    in = inbound(text);
    assert_int_equal(in.kind, PUSH_IN_UNKNOWN);
    assert_int_equal(in.type_len, PUSH_TYPE_LOG_MAX);
    /* Case matters: "PING" is some other type. */
    assert_int_equal(inbound("{\"type\":\"PING\"}").kind, PUSH_IN_UNKNOWN);
}

static void test_not_json_and_malformed_messages(void **state)
{
    (void)state;
    const char *not_json[] = {
        "", "{", "ping", "{\"type\":\"ping\"", "{\"type\":\"ping\"}}", "{'type':'ping'}",
        /* two "type" members: one reader would see ping, another typing */
        "{\"type\":\"ping\",\"type\":\"typing\"}",
        "{\"type\":\"\\u0000ping\"}", /* NUL inside a string */
        "\xff\xfe{}",                 /* not UTF-8 */
    };
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++)
        assert_int_equal(inbound(not_json[i]).kind, PUSH_IN_NOT_JSON);
    const char *malformed[] = {
        "[]", "\"ping\"", "42", "null", "{}", "{\"type\":7}", "{\"type\":null}",
        "{\"type\":[\"ping\"]}", "{\"Type\":\"ping\"}",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
        assert_int_equal(inbound(malformed[i]).kind, PUSH_IN_MALFORMED);
    /* Bytes after the length are not read: the slice is all there is. */
    push_inbound_t in;
    push_inbound_parse((const uint8_t *)"{\"type\":\"ping\"}garbage", 15, &in);
    assert_int_equal(in.kind, PUSH_IN_PING);
}

static void test_typing_needs_a_conversation_id_of_text_or_integer(void **state)
{
    (void)state;
    push_inbound_t in = inbound("{\"type\":\"typing\",\"conversation_id\":\"c-1\"}");
    assert_int_equal(in.kind, PUSH_IN_TYPING);
    assert_false(in.conversation_is_number);
    assert_string_equal(in.conversation, "c-1");
    in = inbound("{\"type\":\"typing\",\"conversation_id\":-9007199254740993}");
    assert_int_equal(in.kind, PUSH_IN_TYPING);
    assert_true(in.conversation_is_number);
    assert_true(in.conversation_number == -9007199254740993LL);
    const char *bad[] = {
        "{\"type\":\"typing\"}",
        "{\"type\":\"typing\",\"conversation_id\":\"\"}",
        "{\"type\":\"typing\",\"conversation_id\":1.5}",
        "{\"type\":\"typing\",\"conversation_id\":null}",
        "{\"type\":\"typing\",\"conversation_id\":{\"id\":1}}",
        "{\"type\":\"typing\",\"conversation_id\":true}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(inbound(bad[i]).kind, PUSH_IN_BAD_TYPING);
    /* 128 bytes is the limit: one more is refused (UTF-8 counts bytes). */
    char text[400], id[PUSH_CONVERSATION_MAX + 2];
    memset(id, 'x', PUSH_CONVERSATION_MAX);
    id[PUSH_CONVERSATION_MAX] = '\0';
    snprintf(text, sizeof(text), "{\"type\":\"typing\",\"conversation_id\":\"%s\"}", id);
    assert_int_equal(inbound(text).kind, PUSH_IN_TYPING);
    id[PUSH_CONVERSATION_MAX] = 'x';
    id[PUSH_CONVERSATION_MAX + 1] = '\0';
    snprintf(text, sizeof(text), "{\"type\":\"typing\",\"conversation_id\":\"%s\"}", id);
    assert_int_equal(inbound(text).kind, PUSH_IN_BAD_TYPING);
}

static void test_typing_event_round_trips_with_its_sender(void **state)
{
    (void)state;
    push_inbound_t in = inbound("{\"type\":\"typing\",\"conversation_id\":\"c\\\"42\"}");
    assert_int_equal(in.kind, PUSH_IN_TYPING);
    char *text = push_event_typing(&in, PUSH_SENDER_AGENT, "alice", "Alice \"A\" Doe");
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "conversation_id")), "c\"42");
    json_t *sender = json_object_get(doc, "sender");
    assert_string_equal(json_string_value(json_object_get(sender, "type")), "agent");
    assert_string_equal(json_string_value(json_object_get(sender, "id")), "alice");
    assert_string_equal(json_string_value(json_object_get(sender, "name")), "Alice \"A\" Doe");
    assert_non_null(json_string_value(json_object_get(doc, "at")));
    json_decref(doc);
    push_event_t ev = event(text, 0);
    assert_int_equal(ev.type, PUSH_EV_TYPING);
    assert_int_equal(ev.sender_type, PUSH_SENDER_AGENT);
    assert_string_equal(ev.sender_id, "alice");
    free(text);
    /* An integer conversation stays an integer; a user without a name is still a sender. */
    in = inbound("{\"type\":\"typing\",\"conversation_id\":7}");
    text = push_event_typing(&in, PUSH_SENDER_USER, "12", NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"conversation_id\":7"));
    ev = event(text, 0);
    assert_int_equal(ev.sender_type, PUSH_SENDER_USER);
    assert_string_equal(ev.sender_id, "12");
    free(text);
}

static void test_device_events_name_their_owner_by_id_or_decimal_text(void **state)
{
    (void)state;
    push_event_t ev = event("{\"type\":\"device.online\",\"device_id\":\"d\",\"user_id\":\"42\"}", 0);
    assert_int_equal(ev.type, PUSH_EV_DEVICE);
    assert_int_equal(ev.account_id, 42);
    ev = event("{\"type\":\"device.offline\",\"user_id\":42}", 0);
    assert_int_equal(ev.type, PUSH_EV_DEVICE);
    assert_int_equal(ev.account_id, 42);
    /* Whatever else befalls a device goes to its owner too. */
    ev = event("{\"type\":\"device.revoked\",\"device_id\":\"d\",\"user_id\":\"7\"}", 0);
    assert_int_equal(ev.type, PUSH_EV_DEVICE);
    assert_int_equal(ev.account_id, 7);
    assert_int_equal(event("{\"type\":\"devices.online\",\"user_id\":7}", 0).type,
                     PUSH_EV_IGNORED);
    const char *no_owner[] = {
        "{\"type\":\"device.online\"}",
        "{\"type\":\"device.online\",\"user_id\":\"\"}",
        "{\"type\":\"device.online\",\"user_id\":\"user-1\"}",
        "{\"type\":\"device.online\",\"user_id\":\"-4\"}",
        "{\"type\":\"device.online\",\"user_id\":\" 4\"}",
        "{\"type\":\"device.online\",\"user_id\":\"4 \"}",
        "{\"type\":\"device.online\",\"user_id\":\"+4\"}",
        "{\"type\":\"device.online\",\"user_id\":0}",
        "{\"type\":\"device.online\",\"user_id\":-4}",
        "{\"type\":\"device.online\",\"user_id\":4.0}",
        /* 19 digits could overflow int64: refused rather than wrapped onto someone else */
        "{\"type\":\"device.online\",\"user_id\":\"9999999999999999999\"}",
    };
    for (size_t i = 0; i < sizeof(no_owner) / sizeof(no_owner[0]); i++)
        assert_int_equal(event(no_owner[i], 0).type, PUSH_EV_INVALID);
}

static void test_revocation_events_need_every_field(void **state)
{
    (void)state;
    char hash[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex("session", 7, hash);
    char *text = push_event_session_ended(9, hash);
    push_event_t ev = event(text, 0);
    free(text);
    assert_int_equal(ev.type, PUSH_EV_SESSION_ENDED);
    assert_int_equal(ev.account_id, 9);
    assert_string_equal(ev.session_hash, hash);
    /* Only a lowercase hex SHA-256 is a session hash. */
    char upper[CRYPTO_SHA256_HEX_LEN + 1];
    for (size_t i = 0; i <= CRYPTO_SHA256_HEX_LEN; i++)
        upper[i] = (char)(hash[i] >= 'a' && hash[i] <= 'f' ? hash[i] - 32 : hash[i]);
    char bad[256];
    snprintf(bad, sizeof(bad), "{\"type\":\"session.ended\",\"account_id\":9,\"session_hash\":\"%s\"}",
             upper);
    assert_int_equal(event(bad, 0).type, PUSH_EV_INVALID);
    snprintf(bad, sizeof(bad), "{\"type\":\"session.ended\",\"account_id\":9,\"session_hash\":\"%.63s\"}",
             hash);
    assert_int_equal(event(bad, 0).type, PUSH_EV_INVALID);
    assert_int_equal(event("{\"type\":\"session.ended\",\"account_id\":9}", 0).type,
                     PUSH_EV_INVALID);

    text = push_event_sessions_revoked(9, 3);
    ev = event(text, 0);
    free(text);
    assert_int_equal(ev.type, PUSH_EV_SESSIONS_REVOKED);
    assert_int_equal(ev.account_id, 9);
    assert_int_equal(ev.epoch, 3);
    assert_int_equal(event("{\"type\":\"account.sessions_revoked\",\"account_id\":9}", 0).type,
                     PUSH_EV_INVALID);
    assert_int_equal(
        event("{\"type\":\"account.sessions_revoked\",\"account_id\":9,\"epoch\":-1}", 0).type,
        PUSH_EV_INVALID);

    text = push_event_mfa_reset(5);
    assert_string_equal(text, "{\"type\":\"mfa.reset\",\"account_id\":5}");
    ev = event(text, 0);
    free(text);
    assert_int_equal(ev.type, PUSH_EV_MFA_RESET);
    assert_int_equal(ev.account_id, 5);
    assert_int_equal(event("{\"type\":\"mfa.reset\"}", 0).type, PUSH_EV_INVALID);
}

static void test_agent_status_and_events_from_elsewhere(void **state)
{
    (void)state;
    char *text = push_event_agent_status("alice", "Alice", "busy");
    push_event_t ev = event(text, 0);
    assert_int_equal(ev.type, PUSH_EV_AGENT_STATUS);
    assert_non_null(strstr(text, "\"user_id\":\"alice\""));
    assert_non_null(strstr(text, "\"status\":\"busy\""));
    free(text);
    /* A type this replica does not know is ignored, not an error: newer replicas may publish. */
    assert_int_equal(event("{\"type\":\"conversation.assigned\",\"id\":1}", 0).type,
                     PUSH_EV_IGNORED);
    event("{\"type\":1}", -1);
    event("[\"device.online\"]", -1);
    event("not json", -1);
    event("{\"type\":\"mfa.reset\",\"type\":\"device.online\"}", -1);
    assert_int_equal(event("{\"type\":\"typing\",\"sender\":{\"type\":\"robot\",\"id\":\"x\"}}", 0)
                         .type,
                     PUSH_EV_INVALID);
    assert_int_equal(event("{\"type\":\"typing\",\"sender\":{\"type\":\"agent\"}}", 0).type,
                     PUSH_EV_INVALID);
}

static void test_bearer_subprotocol_is_found_in_a_list(void **state)
{
    (void)state;
    slice_t token = SLICE_NULL;
    slice_t item = ws_bearer_protocol(SLICE_LIT("chat.v1, bearer.abc.def ,x"), &token);
    assert_int_equal(item.len, strlen("bearer.abc.def"));
    assert_memory_equal(item.ptr, "bearer.abc.def", item.len);
    assert_int_equal(token.len, 7);
    assert_memory_equal(token.ptr, "abc.def", 7);
    /* "bearer." alone carries no token; other prefixes are not it. */
    token = SLICE_NULL;
    assert_null(ws_bearer_protocol(SLICE_LIT("bearer., Bearer.x, xbearer.y"), &token).ptr);
    assert_null(token.ptr);
    assert_null(ws_bearer_protocol(SLICE_NULL, &token).ptr);
    assert_null(ws_bearer_protocol(SLICE_LIT(" , ,"), &token).ptr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_and_unknown_types),
        cmocka_unit_test(test_not_json_and_malformed_messages),
        cmocka_unit_test(test_typing_needs_a_conversation_id_of_text_or_integer),
        cmocka_unit_test(test_typing_event_round_trips_with_its_sender),
        cmocka_unit_test(test_device_events_name_their_owner_by_id_or_decimal_text),
        cmocka_unit_test(test_revocation_events_need_every_field),
        cmocka_unit_test(test_agent_status_and_events_from_elsewhere),
        cmocka_unit_test(test_bearer_subprotocol_is_found_in_a_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
