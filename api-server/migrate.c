#include "api-server/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/crypto.h"

/* An arbitrary constant naming "edgegate migrations" in pg_advisory_lock's key space. */
#define MIGRATION_LOCK_KEY "7468923410045"
#define MAX_MIGRATION_BYTES (4 * 1024 * 1024)
#define MAX_MIGRATIONS 1000

const char *api_migrations_dir(void)
{
    static char dir[PATH_MAX];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        snprintf(dir, sizeof(dir), "%s/../sql", dirname(exe));
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return dir;
    }
    return "/usr/share/edgegate/sql";
}

/* NNN_name.sql: three or more digits, an underscore, a name. */
static int is_migration_name(const char *name)
{
    size_t len = strlen(name), digits = 0;
    while (name[digits] >= '0' && name[digits] <= '9')
        digits++;
    return digits >= 3 && name[digits] == '_' && len > digits + 5 &&
           strcmp(name + len - 4, ".sql") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = malloc(MAX_MIGRATION_BYTES + 1);
    size_t n = data ? fread(data, 1, MAX_MIGRATION_BYTES + 1, f) : 0;
    fclose(f);
    if (data == NULL || n > MAX_MIGRATION_BYTES) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

static int exec_ok(PGconn *db, const char *sql, const char *what)
{
    PGresult *res = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "migrate: %s failed: %s", what, PQerrorMessage(db));
    PQclear(res);
    return ok;
}

/* 1 applied now, 0 already applied, -1 failed (rolled back). */
static int apply_one(PGconn *db, const char *dir, const char *name)
{
    const char *params[2] = {name, NULL};
    PGresult *res = PQexecParams(db, "SELECT checksum FROM schema_migrations WHERE version = $1",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "migrate: reading schema_migrations failed: %s", PQerrorMessage(db));
        PQclear(res);
        return -1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    size_t len = 0;
    char *sql = read_file(path, &len);
    if (sql == NULL) {
        fprintf(stderr, "migrate: %s: cannot read (or larger than %d bytes)\n", path,
                MAX_MIGRATION_BYTES);
        PQclear(res);
        return -1;
    }
    char sum[CRYPTO_SHA256_HEX_LEN + 1];
    crypto_sha256_hex(sql, len, sum);
    if (PQntuples(res) > 0) {
        if (strcmp(PQgetvalue(res, 0, 0), sum) != 0)
            fprintf(stderr, "migrate: warning: %s changed after it was applied; "
                            "add a new migration instead of editing an old one\n", name);
        PQclear(res);
        free(sql);
        return 0;
    }
    PQclear(res);
    int ok = exec_ok(db, "BEGIN", "BEGIN");
    if (ok) {
        res = PQexec(db, sql);
        ExecStatusType st = PQresultStatus(res);
        ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
        if (!ok)
            fprintf(stderr, "migrate: %s failed: %s", name, PQerrorMessage(db));
        PQclear(res);
    }
    if (ok) {
        params[1] = sum;
        res = PQexecParams(db, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                           2, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "migrate: recording %s failed: %s", name, PQerrorMessage(db));
        PQclear(res);
    }
    ok = ok && exec_ok(db, "COMMIT", name);
    if (!ok)
        exec_ok(db, "ROLLBACK", "ROLLBACK");
    free(sql);
    if (ok)
        printf("migrate: applied %s\n", name);
    return ok ? 1 : -1;
}

int api_migrate(const char *database_url, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "migrate: cannot open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char *names[MAX_MIGRATIONS] = {0};
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_migration_name(e->d_name))
            continue;
        if (n == MAX_MIGRATIONS) {
            fprintf(stderr, "migrate: more than %d migrations in %s\n", MAX_MIGRATIONS, dir);
            break;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_names);

    int status = 1;
    PGconn *db = PQconnectdb(database_url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "migrate: cannot connect to the database: %s", PQerrorMessage(db));
        goto out;
    }
    PQclear(PQexec(db, "SET client_min_messages = warning"));
    if (!exec_ok(db, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", "taking the lock"))
        goto out;
    if (!exec_ok(db,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version text PRIMARY KEY,"
                 " checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating schema_migrations"))
        goto out;
    int applied = 0;
    status = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = apply_one(db, dir, names[i]);
        if (rc < 0) {
            fprintf(stderr, "migrate: stopped at %s; nothing of it was applied\n", names[i]);
            status = 1;
            break;
        }
        applied += rc;
    }
    if (status == 0)
        printf("migrate: %d applied, %zu already applied\n", applied, n - (size_t)applied);
    exec_ok(db, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", "releasing the lock");
out:
    PQfinish(db);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return status;
}
