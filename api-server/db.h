/*
 * db: PostgreSQL and Redis on behalf of a request, so handlers see only answers.
 *
 * api_db() calls back only with a usable result. When PostgreSQL does not answer (down,
 * timed out, queue full) it answers 503 SERVICE_UNAVAILABLE itself; when it answers with an
 * error (a bug or a broken assumption) it answers 500 INTERNAL and logs the SQLSTATE. In both
 * cases the callback never runs. A handler therefore reads: validate → query → look at rows →
 * reply. The request must stay unfinished until the callback: a handler returns right after
 * calling api_db() (the request may already be answered). Several may be in flight at once.
 *
 * Modules that call the stores with their own context (sessions, rate limits: Redis scripts)
 * use api_pg_send / api_redis_send and, in their callback, api_db_failed / api_redis_failed,
 * which give the same 503 / 500 answers.
 *
 * api_db_background(): a write that must not hold up the reply (an audit row). It is not tied
 * to a request; a failure is logged and otherwise ignored.
 */
#ifndef EDGEGATE_API_DB_H
#define EDGEGATE_API_DB_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "api-server/app.h"
#include "common/http_server.h"

typedef void (*api_db_cb)(http_request_t *req, const PGresult *res);

/* Text parameters $1..$n (values[i] NULL is SQL NULL); sql and values are copied. */
void api_db(http_request_t *req, api_db_cb cb, const char *sql, int nparams,
            const char *const *values);
void api_db_background(api_app_t *app, const char *what, const char *sql, int nparams,
                       const char *const *values);

/* pgpool_query / redis_commandv (NUL-terminated arguments, copied) on the app's clients;
 * -1 once they are closed at shutdown (a late request then answers 503, see app.c). */
int api_pg_send(api_app_t *app, const char *sql, int nparams, const char *const *values,
                pgpool_cb cb, void *arg);
int api_redis_send(api_app_t *app, redis_reply_cb cb, void *arg, int argc, const char **argv);

/* Given a callback's arguments: answer 503 / 500 as above and return 1, or return 0 when the
 * result is usable. */
int api_db_failed(http_request_t *req, const PGresult *res, const char *error);
int api_redis_failed(http_request_t *req, const redisReply *reply, const char *error);

#endif
