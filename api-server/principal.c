#include "api-server/principal.h"

#include <stdlib.h>
#include <string.h>

#include "api-server/db.h"
#include "api-server/request.h"
#include "api-server/row_cache.h"
#include "api-server/session.h"

typedef struct check {
    api_app_t *app;
    principal_cb cb;
    void *arg;
    int64_t session_epoch;
    uint64_t ticket; /* row_cache_ticket() when the account query was sent */
} check_t;

static void finish(check_t *c, enum principal_status status, const char *reason, const char *detail,
                   account_t *account)
{
    principal_result_t r = {status, reason, detail, account};
    principal_cb cb = c->cb;
    void *arg = c->arg;
    free(c);
    cb(arg, &r);
}

/* The account as it is now: the session's epoch must still be its epoch. a is ours. */
static void judge(check_t *c, account_t *a)
{
    const char *refusal = a->disabled                            ? "account_disabled"
                          : a->session_epoch != c->session_epoch ? "session_revoked"
                                                                 : NULL;
    if (refusal != NULL) {
        account_clear(a);
        finish(c, PRINCIPAL_REFUSED, refusal, NULL, NULL);
        return;
    }
    finish(c, PRINCIPAL_OK, NULL, NULL, a);
}

static void on_account(void *arg, const PGresult *res, const char *error)
{
    check_t *c = arg;
    if (error != NULL) {
        finish(c, PRINCIPAL_UNAVAILABLE, "postgres", error, NULL);
        return;
    }
    if (!pgpool_ok(res)) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        finish(c, PRINCIPAL_FAILED, "postgres", msg ? msg : "sql error", NULL);
        return;
    }
    if (PQntuples(res) != 1) {
        finish(c, PRINCIPAL_REFUSED, "account_gone", NULL, NULL);
        return;
    }
    account_t a;
    if (account_from_row(&a, res, 0, 0) < 0) {
        finish(c, PRINCIPAL_UNAVAILABLE, "memory", "account row", NULL);
        return;
    }
    row_cache_put_account(c->app->rows, c->ticket, &a);
    judge(c, &a);
}

static void on_session(void *arg, enum session_find_status status, const session_info_t *info,
                       const char *error)
{
    check_t *c = arg;
    switch (status) {
    case SESSION_UNAVAILABLE:
        finish(c, PRINCIPAL_UNAVAILABLE, "redis", error, NULL);
        return;
    case SESSION_FAILED:
        finish(c, PRINCIPAL_FAILED, "redis", error, NULL);
        return;
    case SESSION_NOT_FOUND:
        finish(c, PRINCIPAL_REFUSED, "no_session", NULL, NULL);
        return;
    case SESSION_FOUND:
        break;
    }
    c->session_epoch = info->epoch;
    account_t a;
    if (row_cache_get_account(c->app->rows, info->account_id, &a)) {
        judge(c, &a);
        return;
    }
    c->ticket = row_cache_ticket(c->app->rows);
    char id[24];
    const char *values[1] = {api_i64(info->account_id, id)};
    if (api_pg_send(c->app, "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id = $1", 1, values,
                    on_account, c) < 0)
        finish(c, PRINCIPAL_UNAVAILABLE, "postgres", "query not accepted", NULL);
}

int principal_check(api_app_t *app, const char *session_hash, principal_cb cb, void *arg)
{
    check_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    *c = (check_t){.app = app, .cb = cb, .arg = arg};
    if (session_find(app, session_hash, on_session, c) < 0) {
        free(c);
        return -1;
    }
    return 0;
}
