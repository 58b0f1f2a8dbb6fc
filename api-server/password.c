#include "api-server/password.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"

const char password_dummy_hash[] =
    "$y$j9T$KM2i0DAK6sQ9g5TxndMER/$jvrB0zKLp7gZ19C6YMPc08I2H5jC.nxy5jOlgh6Llq4";

typedef struct job {
    uv_work_t work;
    password_cb cb;
    void *arg;
    int verify;    /* check pw against stored */
    int hash_new;  /* then hash new_pw */
    int rehash;    /* after a match, rehash pw when stored is outdated */
    enum password_result result;
    char *new_hash;
    char pw[PASSWORD_VERIFY_MAX_BYTES + 1];
    char new_pw[PASSWORD_VERIFY_MAX_BYTES + 1];
    char stored[CRYPT_OUTPUT_SIZE];
    struct crypt_data cd; /* ~32 KiB of libxcrypt scratch: per job, so jobs run in parallel */
} job_t;

/* Touched only on the loop thread (submit, after-work): no lock needed. */
static unsigned jobs_in_flight;

const char *password_policy_error(const char *pw, size_t len)
{
    if (len < PASSWORD_MIN_BYTES)
        return "The password must be at least 8 bytes long.";
    if (len > PASSWORD_MAX_BYTES)
        return "The password must be at most 128 bytes long.";
    if (memchr(pw, '\0', len) != NULL)
        return "The password must not contain NUL bytes.";
    return NULL;
}

static int supported(const char *hash)
{
    return strncmp(hash, "$y$", 3) == 0 || strncmp(hash, "$2b$", 4) == 0 ||
           strncmp(hash, "$2a$", 4) == 0 || strncmp(hash, "$2y$", 4) == 0;
}

int password_needs_rehash(const char *hash)
{
    return strncmp(hash, PASSWORD_YESCRYPT_PARAMS, strlen(PASSWORD_YESCRYPT_PARAMS)) != 0;
}

/* A fresh yescrypt hash of pw, malloc'd, or NULL. cd is the caller's scratch. */
static char *make_hash(struct crypt_data *cd, const char *pw)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    /* NULL random bytes: libxcrypt draws the salt from the kernel itself. */
    if (crypt_gensalt_rn("$y$", PASSWORD_YESCRYPT_COST, NULL, 0, salt, sizeof(salt)) == NULL)
        return NULL;
    const char *out = crypt_rn(pw, salt, cd, sizeof(*cd));
    return out != NULL && out[0] == '$' ? strdup(out) : NULL;
}

char *password_hash_blocking(const char *pw)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL)
        return NULL;
    char *hash = make_hash(cd, pw);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return hash;
}

/* Thread pool: only the job itself is touched here. */
static void work(uv_work_t *w)
{
    job_t *j = w->data;
    j->result = PASSWORD_OK;
    if (j->verify) {
        int real = supported(j->stored);
        const char *against = real ? j->stored : password_dummy_hash;
        const char *out = crypt_rn(j->pw, against, &j->cd, sizeof(j->cd));
        /* crypt_rn returns NULL for a setting it cannot parse; a malformed stored hash then
         * costs less than a real one, but it is our own data, not the attacker's choice. */
        int match = out != NULL && crypto_equal_str(out, strlen(out), against, strlen(against));
        j->result = match && real ? PASSWORD_OK : PASSWORD_MISMATCH;
        if (j->result == PASSWORD_OK && j->rehash && password_needs_rehash(j->stored))
            j->new_hash = make_hash(&j->cd, j->pw); /* NULL: the upgrade waits for the next login */
    }
    if (j->result == PASSWORD_OK && j->hash_new) {
        j->new_hash = make_hash(&j->cd, j->new_pw);
        if (j->new_hash == NULL)
            j->result = PASSWORD_ERROR;
    }
}

static void after_work(uv_work_t *w, int status)
{
    job_t *j = w->data;
    jobs_in_flight--;
    password_cb cb = j->cb;
    void *arg = j->arg;
    enum password_result result = status == 0 ? j->result : PASSWORD_ERROR;
    char *new_hash = status == 0 ? j->new_hash : NULL;
    if (status != 0)
        free(j->new_hash);
    explicit_bzero(j, sizeof(*j)); /* the passwords and libxcrypt's copies of them */
    free(j);
    cb(arg, result, new_hash);
}

static int copy_in(char *dst, size_t size, const char *src)
{
    size_t len = strlen(src);
    if (len >= size)
        return -E2BIG;
    memcpy(dst, src, len + 1);
    return 0;
}

static int submit(uv_loop_t *loop, const char *pw, const char *hash, const char *new_pw,
                  int verify, password_cb cb, void *arg)
{
    if (jobs_in_flight >= PASSWORD_MAX_JOBS)
        return -EBUSY;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    int rc = 0;
    j->verify = verify;
    j->rehash = verify && new_pw == NULL;
    j->hash_new = new_pw != NULL;
    if (pw != NULL)
        rc = copy_in(j->pw, sizeof(j->pw), pw);
    /* A stored hash too long to be one stays empty: unsupported, so the dummy is used. */
    if (rc == 0 && hash != NULL && copy_in(j->stored, sizeof(j->stored), hash) < 0)
        j->stored[0] = '\0';
    if (rc == 0 && new_pw != NULL)
        rc = copy_in(j->new_pw, sizeof(j->new_pw), new_pw);
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    if (rc == 0)
        rc = uv_queue_work(loop, &j->work, work, after_work);
    if (rc < 0) {
        explicit_bzero(j, sizeof(*j));
        free(j);
        return rc;
    }
    jobs_in_flight++;
    return 0;
}

int password_hash(uv_loop_t *loop, const char *pw, password_cb cb, void *arg)
{
    return submit(loop, NULL, NULL, pw, 0, cb, arg);
}

int password_verify(uv_loop_t *loop, const char *pw, const char *hash, password_cb cb, void *arg)
{
    /* stored stays empty for NULL: unsupported, so the dummy is used. */
    return submit(loop, pw, hash, NULL, 1, cb, arg);
}

int password_change(uv_loop_t *loop, const char *old_pw, const char *hash, const char *new_pw,
                    password_cb cb, void *arg)
{
    return submit(loop, old_pw, hash, new_pw, 1, cb, arg);
}
