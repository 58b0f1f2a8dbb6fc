/*
 * The pure parts of devices and heartbeats: pairing codes (what a person types, normalised;
 * only hashes stored), uuid text (the only id shape that reaches a query or a Redis key), and
 * the heartbeat body's bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/heartbeat_body.c"
#include "api-server/pairing_code.c"
#include "api-server/uuid_text.c"

static int normalize(const char *in, char out[PAIRING_CODE_SYMBOLS + 1])
{
    return pairing_code_normalize(in, strlen(in), out);
}

static void test_new_codes_are_displayed_in_two_groups_of_the_alphabet(void **state)
{
    (void)state;
    char seen[64][PAIRING_CODE_DISPLAY_LEN + 1];
    for (int i = 0; i < 64; i++) {
        char *code = seen[i];
        assert_int_equal(pairing_code_new(code), 0);
        assert_int_equal(strlen(code), PAIRING_CODE_DISPLAY_LEN);
        assert_int_equal(code[4], '-');
        for (int j = 0; j < PAIRING_CODE_DISPLAY_LEN; j++)
            if (j != 4)
                assert_non_null(strchr(alphabet, code[j]));
        char n[PAIRING_CODE_SYMBOLS + 1];
        assert_int_equal(normalize(code, n), 0);
        assert_memory_equal(n, code, 4);
        assert_memory_equal(n + 4, code + 5, 4);
        for (int k = 0; k < i; k++) /* 40 bits: 64 codes never repeat */
            assert_string_not_equal(seen[k], code);
    }
}

static void test_typed_codes_normalise_case_separators_and_look_alikes(void **state)
{
    (void)state;
    char n[PAIRING_CODE_SYMBOLS + 1];
    assert_int_equal(normalize("ABCD-1234", n), 0);
    assert_string_equal(n, "ABCD1234");
    assert_int_equal(normalize(" abcd 1234 ", n), 0);
    assert_string_equal(n, "ABCD1234");
    assert_int_equal(normalize("a-b-c-d-1-2-3-4", n), 0);
    assert_string_equal(n, "ABCD1234");
    assert_int_equal(normalize("oOiI-lL10", n), 0);
    assert_string_equal(n, "00111110");
    /* U is not in the alphabet (Crockford keeps it out to avoid accidental words). */
    assert_int_equal(normalize("ABCD-123U", n), -1);
    assert_int_equal(normalize("ABCD-123", n), -1);
    assert_int_equal(normalize("ABCD-12345", n), -1);
    assert_int_equal(normalize("", n), -1);
    assert_int_equal(normalize("ABCD_1234", n), -1);
    static const char accented[] = "ABCD\xc3\xa9" "1234", with_nul[] = "ABCD\0" "1234";
    assert_int_equal(normalize(accented, n), -1);
    assert_int_equal(pairing_code_normalize(with_nul, sizeof(with_nul) - 1, n), -1);
    /* More than anyone types, even if it would reduce to a code. */
    char padded[PAIRING_CODE_INPUT_MAX + 2];
    memset(padded, ' ', sizeof(padded));
    memcpy(padded + 20, "ABCD1234", 8);
    assert_int_equal(pairing_code_normalize(padded, PAIRING_CODE_INPUT_MAX, n), 0);
    assert_int_equal(pairing_code_normalize(padded, PAIRING_CODE_INPUT_MAX + 1, n), -1);
}

static void test_code_hash_is_sha256_of_the_normalised_symbols(void **state)
{
    (void)state;
    char hash[CRYPTO_SHA256_HEX_LEN + 1];
    pairing_code_hash("ABCD1234", hash);
    assert_string_equal(hash, "1635c8525afbae58c37bede3c9440844e9143727cc7c160bed665ec378d8a262");
}

static void test_uuids_are_version_4_and_parse_back_lower_case(void **state)
{
    (void)state;
    char id[UUID_TEXT_LEN + 1], back[UUID_TEXT_LEN + 1];
    for (int i = 0; i < 32; i++) {
        assert_int_equal(uuid_text_new(id), 0);
        assert_int_equal(strlen(id), UUID_TEXT_LEN);
        assert_int_equal(id[14], '4');
        assert_non_null(strchr("89ab", id[19]));
        assert_int_equal(uuid_text_parse(slice_from(id), back), 0);
        assert_string_equal(back, id);
    }
    assert_int_equal(uuid_text_parse(slice_from("0E4C5B5E-8F5D-4B6A-9A1E-1C2D3E4F5A6B"), back), 0);
    assert_string_equal(back, "0e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6b");
    const char *bad[] = {
        "0e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6",   /* short */
        "0e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6b0", /* long */
        "0e4c5b5e8f5d-4b6a-9a1e-1c2d3e4f5a6b0",  /* dash missing */
        "0e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6g",  /* not hex */
        "{e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6b}", /* braces */
        "0e4c5b5e-8f5d-4b6a-9a1e+1c2d3e4f5a6b",  /* not a dash */
        "",                                      /* empty */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(uuid_text_parse(slice_from(bad[i]), back), -1);
    assert_int_equal(uuid_text_parse(SLICE_NULL, back), -1);
    slice_t with_nul = {"0e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6\0", 36};
    assert_int_equal(uuid_text_parse(with_nul, back), -1);
}

/* Parses text and validates it: 0 or the error code. */
static const char *heartbeat(const char *text, heartbeat_t *hb)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    heartbeat_error_t err;
    int rc = heartbeat_parse(doc, hb, &err);
    json_decref(doc);
    return rc == 0 ? NULL : err.code;
}

static void test_heartbeat_body_full_and_minimal(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"identifier\":\"web-1.example:9@x_y\",\"openclaw_version\":"
                             "\"1.4.2\",\"agents\":[\"main\",{\"name\":\"cron\",\"pid\":42,"
                             "\"ok\":true,\"note\":null}],\"cpu_pct\":12.5,\"mem_pct\":0,"
                             "\"disk_pct\":100,\"swap_pct\":null,\"extra\":[1]}",
                             0, NULL);
    heartbeat_t hb;
    heartbeat_error_t err;
    assert_int_equal(heartbeat_parse(doc, &hb, &err), 0);
    assert_string_equal(hb.identifier, "web-1.example:9@x_y");
    assert_string_equal(hb.openclaw_version, "1.4.2");
    assert_int_equal(json_array_size(hb.agents), 2);
    assert_true(hb.has_pct[HEARTBEAT_CPU] && hb.pct[HEARTBEAT_CPU] == 12.5);
    assert_true(hb.has_pct[HEARTBEAT_MEM] && hb.pct[HEARTBEAT_MEM] == 0);
    assert_true(hb.has_pct[HEARTBEAT_DISK] && hb.pct[HEARTBEAT_DISK] == 100);
    assert_false(hb.has_pct[HEARTBEAT_SWAP]);
    json_decref(doc);

    assert_null(heartbeat("{\"identifier\":\"a\",\"agents\":[]}", &hb));
    assert_null(hb.openclaw_version);
    for (int i = 0; i < HEARTBEAT_NPCT; i++)
        assert_false(hb.has_pct[i]);
}

static void test_heartbeat_body_refusals_name_the_problem(void **state)
{
    (void)state;
    heartbeat_t hb;
    const struct {
        const char *body, *code;
    } cases[] = {
        {"{\"agents\":[]}", "MISSING_FIELD"},
        {"{\"identifier\":\"a\"}", "MISSING_FIELD"},
        {"{\"identifier\":null,\"agents\":[]}", "MISSING_FIELD"},
        {"{\"identifier\":\"\",\"agents\":[]}", "INVALID_IDENTIFIER"},
        {"{\"identifier\":\"a b\",\"agents\":[]}", "INVALID_IDENTIFIER"},
        {"{\"identifier\":\"a\\u0000b\",\"agents\":[]}", "INVALID_IDENTIFIER"},
        {"{\"identifier\":7,\"agents\":[]}", "INVALID_IDENTIFIER"},
        {"{\"identifier\":\"a\",\"agents\":{}}", "INVALID_AGENTS"},
        {"{\"identifier\":\"a\",\"agents\":[[\"x\"]]}", "INVALID_AGENTS"},
        {"{\"identifier\":\"a\",\"agents\":[{\"\":1}]}", "INVALID_AGENTS"},
        {"{\"identifier\":\"a\",\"agents\":[{\"k\":{}}]}", "INVALID_AGENTS"},
        {"{\"identifier\":\"a\",\"agents\":[\"a\\u0000\"]}", "INVALID_AGENTS"},
        {"{\"identifier\":\"a\",\"agents\":[],\"openclaw_version\":\"\"}", "INVALID_VERSION"},
        {"{\"identifier\":\"a\",\"agents\":[],\"openclaw_version\":\"v\\u00e9\"}",
         "INVALID_VERSION"},
        {"{\"identifier\":\"a\",\"agents\":[],\"openclaw_version\":2}", "INVALID_VERSION"},
        {"{\"identifier\":\"a\",\"agents\":[],\"cpu_pct\":100.0001}", "INVALID_PERCENTAGE"},
        {"{\"identifier\":\"a\",\"agents\":[],\"mem_pct\":-0.5}", "INVALID_PERCENTAGE"},
        {"{\"identifier\":\"a\",\"agents\":[],\"disk_pct\":\"5\"}", "INVALID_PERCENTAGE"},
        {"{\"identifier\":\"a\",\"agents\":[],\"swap_pct\":false}", "INVALID_PERCENTAGE"},
        /* Out of a double's range: jansson refuses the document itself. */
        {"{\"identifier\":\"a\",\"agents\":[],\"swap_pct\":1e400}", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = json_loads(cases[i].body, JSON_ALLOW_NUL, NULL);
        if (cases[i].code == NULL) {
            assert_null(doc);
            continue;
        }
        assert_non_null(doc);
        heartbeat_error_t err;
        assert_int_equal(heartbeat_parse(doc, &hb, &err), -1);
        assert_string_equal(err.code, cases[i].code);
        assert_true(strlen(err.message) > 10);
        json_decref(doc);
    }
}

static void test_heartbeat_body_bounds_are_inclusive(void **state)
{
    (void)state;
    /* 256 agents of 256 bytes, 32 members of 64-byte keys, a 64-byte version, 128-byte id. */
    json_t *agents = json_array();
    char s[HEARTBEAT_AGENT_STRING_MAX + 2];
    memset(s, 'a', sizeof(s));
    s[HEARTBEAT_AGENT_STRING_MAX] = '\0';
    for (int i = 0; i < HEARTBEAT_AGENTS_MAX - 1; i++)
        json_array_append_new(agents, json_string(s));
    json_t *obj = json_object();
    for (int i = 0; i < HEARTBEAT_AGENT_MEMBERS_MAX; i++) {
        char key[HEARTBEAT_AGENT_KEY_MAX + 1];
        memset(key, 'k', HEARTBEAT_AGENT_KEY_MAX);
        snprintf(key, sizeof(key), "%02d", i);
        key[2] = 'k';
        key[HEARTBEAT_AGENT_KEY_MAX] = '\0';
        json_object_set_new(obj, key, json_string(s));
    }
    json_array_append_new(agents, obj);
    char id[HEARTBEAT_IDENTIFIER_MAX + 2], version[HEARTBEAT_VERSION_MAX + 2];
    memset(id, 'i', sizeof(id));
    id[HEARTBEAT_IDENTIFIER_MAX] = '\0';
    memset(version, 'v', sizeof(version));
    version[HEARTBEAT_VERSION_MAX] = '\0';
    json_t *doc =
        json_pack("{s:s,s:s,s:o}", "identifier", id, "openclaw_version", version, "agents", agents);
    heartbeat_t hb;
    heartbeat_error_t err;
    assert_int_equal(heartbeat_parse(doc, &hb, &err), 0);

    /* One more of each is refused. */
    json_array_append_new(agents, json_string("x"));
    assert_int_equal(heartbeat_parse(doc, &hb, &err), -1);
    assert_string_equal(err.code, "INVALID_AGENTS");
    json_array_remove(agents, HEARTBEAT_AGENTS_MAX);
    json_object_set_new(obj, "one-too-many", json_true());
    assert_int_equal(heartbeat_parse(doc, &hb, &err), -1);
    json_object_del(obj, "one-too-many");
    s[HEARTBEAT_AGENT_STRING_MAX] = 'a';
    s[HEARTBEAT_AGENT_STRING_MAX + 1] = '\0';
    json_array_set_new(agents, 0, json_string(s));
    assert_int_equal(heartbeat_parse(doc, &hb, &err), -1);
    json_array_set_new(agents, 0, json_string("ok"));
    assert_int_equal(heartbeat_parse(doc, &hb, &err), 0);
    id[HEARTBEAT_IDENTIFIER_MAX] = 'i';
    id[HEARTBEAT_IDENTIFIER_MAX + 1] = '\0';
    json_object_set_new(doc, "identifier", json_string(id));
    assert_int_equal(heartbeat_parse(doc, &hb, &err), -1);
    assert_string_equal(err.code, "INVALID_IDENTIFIER");
    json_object_set_new(doc, "identifier", json_string("ok"));
    version[HEARTBEAT_VERSION_MAX] = 'v';
    version[HEARTBEAT_VERSION_MAX + 1] = '\0';
    json_object_set_new(doc, "openclaw_version", json_string(version));
    assert_int_equal(heartbeat_parse(doc, &hb, &err), -1);
    assert_string_equal(err.code, "INVALID_VERSION");
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_codes_are_displayed_in_two_groups_of_the_alphabet),
        cmocka_unit_test(test_typed_codes_normalise_case_separators_and_look_alikes),
        cmocka_unit_test(test_code_hash_is_sha256_of_the_normalised_symbols),
        cmocka_unit_test(test_uuids_are_version_4_and_parse_back_lower_case),
        cmocka_unit_test(test_heartbeat_body_full_and_minimal),
        cmocka_unit_test(test_heartbeat_body_refusals_name_the_problem),
        cmocka_unit_test(test_heartbeat_body_bounds_are_inclusive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
