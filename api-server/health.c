/* /readyz: PostgreSQL and Redis both answer. Probes call it without credentials. */
#include <stdlib.h>

#include "api-server/app.h"
#include "api-server/db.h"
#include "api-server/handlers.h"
#include "common/http_json.h"

typedef struct readyz {
    http_request_t *req;
    int pending;
    const char *db_error;
    const char *redis_error;
} readyz_t;

static void readyz_finish(readyz_t *r)
{
    if (--r->pending > 0)
        return;
    int ok = r->db_error == NULL && r->redis_error == NULL;
    json_t *body = json_pack("{s:s,s:s,s:s}", "status", ok ? "ready" : "unavailable", "postgres",
                             r->db_error ? r->db_error : "ok", "redis",
                             r->redis_error ? r->redis_error : "ok");
    http_reply_json(r->req, ok ? 200 : 503, body);
    free(r);
}

static void on_db(void *arg, const PGresult *res, const char *error)
{
    readyz_t *r = arg;
    if (error != NULL)
        r->db_error = error;
    else if (!pgpool_ok(res))
        r->db_error = "query failed";
    readyz_finish(r);
}

static void on_redis(void *arg, redisReply *reply, const char *error)
{
    readyz_t *r = arg;
    if (error != NULL)
        r->redis_error = error;
    else if (reply->type == REDIS_REPLY_ERROR)
        r->redis_error = "error reply";
    readyz_finish(r);
}

void api_readyz(http_request_t *req)
{
    api_app_t *app = api_app(req);
    readyz_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        http_reply_error(req, 503, "SERVICE_UNAVAILABLE", "Out of memory.");
        return;
    }
    r->req = req;
    r->pending = 2;
    if (api_pg_send(app, "SELECT 1", 0, NULL, on_db, r) < 0) {
        r->db_error = "query not accepted";
        r->pending--;
    }
    const char *ping[1] = {"PING"};
    if (api_redis_send(app, on_redis, r, 1, ping) < 0) {
        r->redis_error = "command not accepted";
        r->pending--;
    }
    if (r->pending == 0) {
        r->pending = 1;
        readyz_finish(r);
    }
}
