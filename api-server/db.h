/*
 * db: PostgreSQL and Redis on behalf of a request, so handlers see only answers.
 *
 * api_db() and api_redis() call back only with a usable result. When the store does not
 * answer (down, timed out, queue full) they answer 503 SERVICE_UNAVAILABLE themselves; when it
 * answers with an error (SQL error, Redis error reply: a bug or a broken assumption) they
 * answer 500 INTERNAL and log it. In both cases the callback never runs. A handler therefore
 * reads: validate → query → look at rows → reply. The request must stay unfinished until the
 * callback: a handler returns right after calling either (the request may already be answered).
 * Several calls may be in flight for one request.
 *
 * api_db_background(): a write that must not hold up the reply (an audit row, a password
 * rehash). It is not tied to a request; a failure is logged and otherwise ignored.
 */
#ifndef EDGEGATE_API_DB_H
#define EDGEGATE_API_DB_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "api-server/app.h"
#include "common/http_server.h"

typedef void (*api_db_cb)(http_request_t *req, const PGresult *res);
typedef void (*api_redis_cb)(http_request_t *req, const redisReply *reply);

/* Text parameters $1..$n (values[i] NULL is SQL NULL); sql and values are copied. */
void api_db(http_request_t *req, api_db_cb cb, const char *sql, int nparams,
            const char *const *values);
void api_db_background(api_app_t *app, const char *what, const char *sql, int nparams,
                       const char *const *values);

/* One Redis command as an argument vector (NUL-terminated strings); copied. */
void api_redis(http_request_t *req, api_redis_cb cb, int argc, const char **argv);

/*
 * For modules that call pgpool / redis themselves (because they carry their own context):
 * given a callback's arguments, answer 503 / 500 as above and return 1, or return 0 when the
 * result is usable.
 */
int api_db_failed(http_request_t *req, const PGresult *res, const char *error);
int api_redis_failed(http_request_t *req, const redisReply *reply, const char *error);

/* pgpool_query / redis_commandv on the app's clients, or -1 once they are closed. */
int api_pg_send(api_app_t *app, const char *sql, int nparams, const char *const *values,
                pgpool_cb cb, void *arg);
int api_redis_send(api_app_t *app, redis_reply_cb cb, void *arg, int argc, const char **argv);

#endif
