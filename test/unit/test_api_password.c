/*
 * password: the policy, yescrypt hashing and verification on a real libuv thread pool, bcrypt
 * hashes from the old system (verified and upgraded), the dummy hash used for unknown accounts,
 * and the bound on jobs in flight. Every test ends with uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api-server/password.c"

typedef struct outcome {
    int calls;
    enum password_result result;
    char *new_hash;
} outcome_t;

static void record(void *arg, enum password_result result, char *new_hash)
{
    outcome_t *o = arg;
    o->calls++;
    o->result = result;
    free(o->new_hash);
    o->new_hash = new_hash;
}

static void run(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
}

/* Submits a verification, runs the loop until it is answered, returns the result. */
static enum password_result verify_now(uv_loop_t *loop, const char *pw, const char *hash,
                                       outcome_t *o)
{
    int calls = o->calls;
    assert_int_equal(password_verify(loop, pw, hash, record, o), 0);
    assert_int_equal(o->calls, calls); /* never from inside the call */
    run(loop);
    assert_int_equal(o->calls, calls + 1);
    return o->result;
}

/* The hash a callback delivered, now the caller's. */
static char *take_hash(outcome_t *o)
{
    char *hash = o->new_hash;
    o->new_hash = NULL;
    return hash;
}

static void finish(uv_loop_t *loop, outcome_t *o)
{
    free(o->new_hash);
    o->new_hash = NULL;
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A hash made synchronously with libxcrypt, as another system would have. */
static char *foreign_hash(const char *prefix, unsigned long cost, const char *pw)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn(prefix, cost, NULL, 0, salt, sizeof(salt)));
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    const char *out = crypt_rn(pw, salt, &cd, sizeof(cd));
    assert_non_null(out);
    return strdup(out);
}

static void test_policy_bounds_in_bytes(void **state)
{
    (void)state;
    assert_non_null(password_policy_error("1234567", 7));
    assert_null(password_policy_error("12345678", 8));
    char pw[PASSWORD_MAX_BYTES + 2];
    memset(pw, 'x', sizeof(pw));
    assert_null(password_policy_error(pw, PASSWORD_MAX_BYTES));
    assert_non_null(password_policy_error(pw, PASSWORD_MAX_BYTES + 1));
    assert_non_null(password_policy_error("1234\0" "5678", 9));
    /* Eight bytes of UTF-8 are enough, whatever they spell. */
    assert_null(password_policy_error("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8));
}

static void test_dummy_hash_has_the_parameters_of_new_hashes(void **state)
{
    (void)state;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$y$", PASSWORD_YESCRYPT_COST, NULL, 0, salt, sizeof(salt)));
    /* Same cost, so an unknown login takes as long as a wrong password. */
    assert_memory_equal(salt, PASSWORD_YESCRYPT_PARAMS, strlen(PASSWORD_YESCRYPT_PARAMS));
    assert_false(password_needs_rehash(password_dummy_hash));
    assert_true(password_needs_rehash("$2b$10$abcdefghijklmnopqrstuv"));
    assert_true(password_needs_rehash("$y$jAT$abc$def"));
}

static void test_hash_then_verify_right_and_wrong(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    outcome_t o = {0};
    assert_int_equal(password_hash(&loop, "correct horse", record, &o), 0);
    assert_int_equal(o.calls, 0); /* never from inside the call */
    run(&loop);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.result, PASSWORD_OK);
    assert_non_null(o.new_hash);
    assert_memory_equal(o.new_hash, PASSWORD_YESCRYPT_PARAMS, strlen(PASSWORD_YESCRYPT_PARAMS));
    char *hash = take_hash(&o);
    assert_int_equal(verify_now(&loop, "correct horse", hash, &o), PASSWORD_OK);
    assert_null(o.new_hash); /* current format: no rehash */
    assert_int_equal(verify_now(&loop, "correct horsf", hash, &o), PASSWORD_MISMATCH);
    free(hash);
    finish(&loop, &o);
}

static void test_no_hash_or_unsupported_hash_never_matches(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    outcome_t o = {0};
    assert_int_equal(verify_now(&loop, "anything", NULL, &o), PASSWORD_MISMATCH);
    /* MD5-crypt verifies in libxcrypt, but we do not accept it: the right password still fails. */
    char *md5 = foreign_hash("$1$", 0, "rightpass");
    assert_int_equal(verify_now(&loop, "rightpass", md5, &o), PASSWORD_MISMATCH);
    assert_int_equal(verify_now(&loop, "rightpass", "", &o), PASSWORD_MISMATCH);
    free(md5);
    finish(&loop, &o);
}

static void test_bcrypt_from_the_old_system_verifies_and_is_upgraded(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    outcome_t o = {0};
    const char *prefixes[] = {"$2b$", "$2a$", "$2y$"};
    for (size_t i = 0; i < 3; i++) {
        char *bcrypt = foreign_hash(prefixes[i], 4, "legacy-pass");
        assert_int_equal(verify_now(&loop, "legacy-pass", bcrypt, &o), PASSWORD_OK);
        char *upgraded = take_hash(&o);
        assert_non_null(upgraded);
        assert_memory_equal(upgraded, "$y$", 3);
        assert_int_equal(verify_now(&loop, "legacy-pass", upgraded, &o), PASSWORD_OK);
        assert_int_equal(verify_now(&loop, "legacy-pasS", bcrypt, &o), PASSWORD_MISMATCH);
        assert_null(o.new_hash);
        free(upgraded);
        free(bcrypt);
    }
    finish(&loop, &o);
}

static void test_change_needs_the_old_password(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    outcome_t o = {0};
    char *old = foreign_hash("$y$", PASSWORD_YESCRYPT_COST, "old-password");
    assert_int_equal(password_change(&loop, "not-the-old", old, "new-password", record, &o), 0);
    run(&loop);
    assert_int_equal(o.result, PASSWORD_MISMATCH);
    assert_null(o.new_hash);
    assert_int_equal(password_change(&loop, "old-password", old, "new-password", record, &o), 0);
    run(&loop);
    assert_int_equal(o.result, PASSWORD_OK);
    char *fresh = take_hash(&o);
    assert_int_equal(verify_now(&loop, "new-password", fresh, &o), PASSWORD_OK);
    free(fresh);
    free(old);
    finish(&loop, &o);
}

static void test_jobs_in_flight_are_bounded_and_long_input_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    outcome_t o[PASSWORD_MAX_JOBS + 1];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < PASSWORD_MAX_JOBS; i++)
        assert_int_equal(password_verify(&loop, "x", NULL, record, &o[i]), 0);
    assert_int_equal(password_verify(&loop, "x", NULL, record, &o[PASSWORD_MAX_JOBS]), -EBUSY);
    run(&loop);
    for (int i = 0; i < PASSWORD_MAX_JOBS; i++)
        assert_int_equal(o[i].calls, 1);
    assert_int_equal(o[PASSWORD_MAX_JOBS].calls, 0);
    /* The bound is on jobs in flight, not in total. */
    assert_int_equal(password_verify(&loop, "x", NULL, record, &o[0]), 0);
    run(&loop);
    char huge[PASSWORD_VERIFY_MAX_BYTES + 2];
    memset(huge, 'p', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(password_verify(&loop, huge, NULL, record, &o[0]), -E2BIG);
    assert_int_equal(o[0].calls, 2);
    finish(&loop, &o[0]);
}

static void test_blocking_hash_for_the_command_line(void **state)
{
    (void)state;
    char *hash = password_hash_blocking("cli-password");
    assert_non_null(hash);
    assert_false(password_needs_rehash(hash));
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    assert_string_equal(crypt_rn("cli-password", hash, &cd, sizeof(cd)), hash);
    free(hash);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_bounds_in_bytes),
        cmocka_unit_test(test_dummy_hash_has_the_parameters_of_new_hashes),
        cmocka_unit_test(test_hash_then_verify_right_and_wrong),
        cmocka_unit_test(test_no_hash_or_unsupported_hash_never_matches),
        cmocka_unit_test(test_bcrypt_from_the_old_system_verifies_and_is_upgraded),
        cmocka_unit_test(test_change_needs_the_old_password),
        cmocka_unit_test(test_jobs_in_flight_are_bounded_and_long_input_refused),
        cmocka_unit_test(test_blocking_hash_for_the_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
