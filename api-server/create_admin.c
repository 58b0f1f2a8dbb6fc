#include "api-server/create_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "api-server/account.h"
#include "api-server/password.h"

/* Room for the longest acceptable password, its line ending, and one byte to notice more. */
#define LINE_MAX_BYTES (PASSWORD_MAX_BYTES + 3)

static const char upsert_sql[] =
    "WITH a AS ("
    " INSERT INTO accounts (login, display_name, roles, password_hash)"
    " VALUES ($1, COALESCE($2, $1), '{admin}', $3)"
    " ON CONFLICT (login) DO UPDATE SET"
    "  password_hash = EXCLUDED.password_hash,"
    "  roles = array(SELECT r FROM unnest(accounts.roles) r WHERE r NOT IN ('agent', 'admin'))"
    "          || 'admin'::text,"
    "  display_name = COALESCE($2, accounts.display_name),"
    "  disabled = false,"
    "  session_epoch = accounts.session_epoch + 1,"
    "  updated_at = now()"
    " RETURNING id, (xmax = 0) AS created)"
    " INSERT INTO audit_log (account_id, event, outcome, detail)"
    " SELECT id, 'create_admin', 'ok',"
    "  jsonb_build_object('via', 'command line', 'created', created)"
    " FROM a RETURNING account_id, detail->>'created'";

/* One line from stdin without its line ending; echo is off while a terminal types it. */
static int read_password(char *out, size_t size)
{
    int tty = isatty(STDIN_FILENO);
    struct termios saved, quiet;
    if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fprintf(stderr, "Password: ");
    } else {
        tty = 0;
    }
    char *got = fgets(out, (int)size, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fprintf(stderr, "\n");
    }
    if (got == NULL)
        return -1;
    size_t len = strlen(out);
    if (len > 0 && out[len - 1] == '\n')
        out[--len] = '\0';
    else if (len == size - 1)
        return -1; /* no line ending within the bound: longer than any acceptable password */
    if (len > 0 && out[len - 1] == '\r')
        out[--len] = '\0';
    return (int)len;
}

int api_create_admin(const char *database_url, const char *login, const char *name)
{
    if (login == NULL || !account_login_valid(login, strlen(login))) {
        fprintf(stderr, "create-admin: --login must be 1 to 64 of A-Z a-z 0-9 . _ @ -\n");
        return 2;
    }
    if (name != NULL && !account_name_valid(name, strlen(name))) {
        fprintf(stderr, "create-admin: --name must be 1 to 200 characters\n");
        return 2;
    }
    char pw[LINE_MAX_BYTES];
    int len = read_password(pw, sizeof(pw));
    const char *why = len < 0 ? "no password line on stdin (or longer than 128 bytes)"
                              : password_policy_error(pw, (size_t)len);
    if (why != NULL) {
        explicit_bzero(pw, sizeof(pw));
        fprintf(stderr, "create-admin: %s\n", why);
        return 2;
    }
    char *hash = password_hash_blocking(pw);
    explicit_bzero(pw, sizeof(pw));
    if (hash == NULL) {
        fprintf(stderr, "create-admin: hashing the password failed\n");
        return 1;
    }
    int status = 1;
    PGconn *db = PQconnectdb(database_url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "create-admin: cannot connect to the database: %s", PQerrorMessage(db));
    } else {
        const char *values[3] = {login, name, hash};
        PGresult *res = PQexecParams(db, upsert_sql, 3, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            printf("create-admin: %s admin '%s' (account %s)\n",
                   strcmp(PQgetvalue(res, 0, 1), "true") == 0 ? "created" : "updated", login,
                   PQgetvalue(res, 0, 0));
            status = 0;
        } else {
            fprintf(stderr, "create-admin: failed: %s", PQerrorMessage(db));
        }
        PQclear(res);
    }
    PQfinish(db);
    free(hash);
    return status;
}
