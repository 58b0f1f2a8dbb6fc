#include "api-server/db.h"

#include <stdlib.h>
#include <string.h>

#include "api-server/request.h"
#include "common/log.h"

int api_pg_send(api_app_t *app, const char *sql, int nparams, const char *const *values,
                pgpool_cb cb, void *arg)
{
    return app->db == NULL ? -1 : pgpool_query(app->db, sql, nparams, values, NULL, cb, arg);
}

int api_redis_send(api_app_t *app, redis_reply_cb cb, void *arg, int argc, const char **argv)
{
    return app->redis == NULL ? -1 : redis_commandv(app->redis, cb, arg, argc, argv, NULL);
}

int api_db_failed(http_request_t *req, const PGresult *res, const char *error)
{
    if (error != NULL) {
        api_reply_unavailable(req, "postgres", error);
        return 1;
    }
    if (!pgpool_ok(res)) {
        const char *state = pgpool_sqlstate(res);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        char q[240];
        log_error("api.sql_error", "req=%s sqlstate=%s message=%s", http_request_id(req),
                  state ? state : "-",
                  msg ? log_quote(q, sizeof(q), msg, strlen(msg)) : "-");
        api_reply_internal(req, "database query failed");
        return 1;
    }
    return 0;
}

int api_redis_failed(http_request_t *req, const redisReply *reply, const char *error)
{
    if (error != NULL) {
        api_reply_unavailable(req, "redis", error);
        return 1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char q[240];
        log_error("api.redis_error", "req=%s reply=%s", http_request_id(req),
                  log_quote(q, sizeof(q), reply->str, reply->len));
        api_reply_internal(req, "redis command failed");
        return 1;
    }
    return 0;
}

typedef struct call {
    http_request_t *req;
    api_db_cb cb;
} call_t;

static void on_db(void *arg, const PGresult *res, const char *error)
{
    call_t *c = arg;
    http_request_t *req = c->req;
    api_db_cb cb = c->cb;
    free(c);
    if (!api_db_failed(req, res, error))
        cb(req, res);
}

void api_db(http_request_t *req, api_db_cb cb, const char *sql, int nparams,
            const char *const *values)
{
    call_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    *c = (call_t){req, cb};
    if (api_pg_send(api_app(req), sql, nparams, values, on_db, c) < 0) {
        free(c);
        api_reply_unavailable(req, "postgres", "query not accepted");
    }
}

static void on_background(void *arg, const PGresult *res, const char *error)
{
    const char *what = arg;
    if (error != NULL || !pgpool_ok(res)) {
        const char *state = res ? pgpool_sqlstate(res) : NULL;
        log_warn("api.background_write_failed", "what=%s error=\"%s\" sqlstate=%s", what,
                 error ? error : "sql error", state ? state : "-");
    }
}

void api_db_background(api_app_t *app, const char *what, const char *sql, int nparams,
                       const char *const *values)
{
    /* what is a string literal: it outlives the query. */
    if (api_pg_send(app, sql, nparams, values, on_background, (void *)what) < 0)
        log_warn("api.background_write_failed", "what=%s error=\"query not accepted\"", what);
}
