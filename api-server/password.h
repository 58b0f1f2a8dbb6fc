/*
 * password: hashing and verification with libxcrypt, always on the libuv thread pool.
 *
 * New hashes are yescrypt ($y$, libxcrypt's default cost). Verification accepts yescrypt and
 * the bcrypt hashes of the old system ($2b$, $2a$, $2y$); a password that verifies against a
 * hash made with other parameters (bcrypt, or yescrypt of another cost) is rehashed in the same
 * job, so callers can store the upgrade at once.
 *
 * Timing: verifying against no hash (unknown login, disabled account) or an unsupported one
 * computes the same yescrypt over password_dummy_hash and reports a mismatch, so the answer
 * takes as long as a wrong password for a real account. Results are compared in constant time.
 *
 * Threads: the work runs on the thread pool and touches nothing but its own job (copies of
 * the inputs, wiped before the job is freed). The callback runs on the loop thread, exactly
 * once, never from inside the submitting call. At most PASSWORD_MAX_JOBS jobs are in flight
 * (queued or running): each costs ~60 ms of CPU and tens of MiB, and the same pool resolves
 * host names for PostgreSQL and Redis; beyond that submissions fail with -EBUSY.
 */
#ifndef EDGEGATE_API_PASSWORD_H
#define EDGEGATE_API_PASSWORD_H

#include <stddef.h>
#include <uv.h>

/* Policy for new passwords, in bytes (UTF-8 text is allowed). */
#define PASSWORD_MIN_BYTES 8
#define PASSWORD_MAX_BYTES 128
/* A password offered for verification may be longer than new ones may be (the old system had
 * its own rule); anything longer cannot match what we store and is not worth hashing. */
#define PASSWORD_VERIFY_MAX_BYTES 256
#define PASSWORD_MAX_JOBS 16

/* libxcrypt's yescrypt cost (its default), and the parameter field it produces. */
#define PASSWORD_YESCRYPT_COST 5
#define PASSWORD_YESCRYPT_PARAMS "$y$j9T$"

enum password_result {
    PASSWORD_OK = 0,       /* verified (and/or hashed) */
    PASSWORD_MISMATCH = 1, /* the password does not match */
    PASSWORD_ERROR = -1,   /* hashing failed (no memory, no randomness) */
};

/* new_hash is malloc'd and now the callee's (free it), or NULL when no hash was made. */
typedef void (*password_cb)(void *arg, enum password_result result, char *new_hash);

/* A yescrypt hash of a random password nobody knows, with the current parameters. */
extern const char password_dummy_hash[];

/* NULL when pw[0..len) is acceptable as a new password, else a sentence saying why not. */
const char *password_policy_error(const char *pw, size_t len);
/* Would a hash in this format or with these parameters be replaced at the next login? */
int password_needs_rehash(const char *hash);

/*
 * The submitting calls copy their inputs and return 0 (cb will run), -E2BIG (a password longer
 * than PASSWORD_VERIFY_MAX_BYTES), -EBUSY or -ENOMEM; then cb never runs.
 */

/* Hashes pw: PASSWORD_OK with new_hash. */
int password_hash(uv_loop_t *loop, const char *pw, password_cb cb, void *arg);
/* Verifies pw against hash (NULL: the dummy); new_hash set when it matched and needs rehash. */
int password_verify(uv_loop_t *loop, const char *pw, const char *hash, password_cb cb,
                    void *arg);
/* Verifies old_pw against hash, then hashes new_pw: PASSWORD_OK with new_hash, or MISMATCH.
 * An account without a password has nothing to verify: use password_hash() for it. */
int password_change(uv_loop_t *loop, const char *old_pw, const char *hash, const char *new_pw,
                    password_cb cb, void *arg);

/* The same hash as password_hash(), computed on the calling thread: for command-line tools
 * (create-admin), never on the daemon's loop. malloc'd, or NULL. */
char *password_hash_blocking(const char *pw);

#endif
