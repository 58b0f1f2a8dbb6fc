#include "api-server/sync_credentials.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/device.h"
#include "common/pgpool.h"
#include "common/redis.h"

/* Rows per round trip: one page of HSETs is in flight at a time, which bounds memory and
 * keeps a large fleet from flooding Redis's input buffer. */
#define PAGE_ROWS "500"
#define FIRST_ID "00000000-0000-0000-0000-000000000000"

typedef struct sync {
    uv_loop_t *loop;
    pgpool *db;
    redis *redis;
    char after[UUID_TEXT_LEN + 1]; /* keyset pagination: the last id of the previous page */
    int pending;                   /* HSETs of the current page still unanswered */
    int page_full;
    long written;
    int failed;
} sync_t;

static void next_page(sync_t *s);

static void finish(sync_t *s, const char *why)
{
    if (why != NULL) {
        fprintf(stderr, "sync-credentials: %s\n", why);
        s->failed = 1;
    }
    printf("sync-credentials: %ld device credentials written to Redis\n", s->written);
    pgpool_close(s->db, NULL, NULL);
    redis_close(s->redis, NULL, NULL);
}

static void on_stored(void *arg, redisReply *reply, const char *error)
{
    sync_t *s = arg;
    if (error != NULL || reply->type == REDIS_REPLY_ERROR) {
        if (!s->failed)
            fprintf(stderr, "sync-credentials: redis: %s\n", error ? error : reply->str);
        s->failed = 1;
    } else {
        s->written++;
    }
    if (--s->pending > 0)
        return;
    if (s->failed)
        finish(s, "stopped after a Redis failure");
    else if (s->page_full)
        next_page(s);
    else
        finish(s, NULL);
}

static void on_page(void *arg, const PGresult *res, const char *error)
{
    sync_t *s = arg;
    if (error != NULL || !pgpool_ok(res)) {
        finish(s, error ? error : PQresultErrorMessage(res));
        return;
    }
    int n = PQntuples(res);
    s->page_full = n == atoi(PAGE_ROWS);
    if (n == 0) {
        finish(s, NULL);
        return;
    }
    s->pending = n;
    for (int i = 0; i < n; i++) {
        char key[DEVICE_CRED_KEY_MAX];
        device_cred_key(PQgetvalue(res, i, 2), key);
        const char *argv[6] = {
            "HSET", key, "device_id", PQgetvalue(res, i, 0), "user_id", PQgetvalue(res, i, 1)};
        if (redis_commandv(s->redis, on_stored, s, 6, argv, NULL) < 0) {
            /* Nothing was sent for this row or the ones after it. */
            s->failed = 1;
            s->pending -= n - i;
            if (s->pending == 0)
                finish(s, "redis command not accepted");
            return;
        }
    }
    snprintf(s->after, sizeof(s->after), "%s", PQgetvalue(res, n - 1, 0));
}

static void next_page(sync_t *s)
{
    const char *values[1] = {s->after};
    if (pgpool_query(s->db,
                     "SELECT id, owner_id, token_hash FROM devices"
                     " WHERE revoked_at IS NULL AND token_hash IS NOT NULL AND id > $1::uuid"
                     " ORDER BY id LIMIT " PAGE_ROWS,
                     1, values, NULL, on_page, s) < 0)
        finish(s, "query not accepted");
}

int api_sync_credentials(const char *database_url, const char *redis_url)
{
    const char *why = redis_url_error(redis_url);
    if (why != NULL) {
        fprintf(stderr, "config: EDGEGATE_REDIS_URL is invalid: %s\n", why);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    sync_t s = {.loop = &loop, .after = FIRST_ID};
    s.db = pgpool_new(&loop, database_url, &(pgpool_options){.size = 1});
    s.redis = redis_new(&loop, redis_url, NULL);
    if (s.db != NULL && s.redis != NULL) {
        next_page(&s);
    } else {
        fprintf(stderr, "sync-credentials: cannot start the %s client\n",
                s.db == NULL ? "PostgreSQL" : "Redis");
        s.failed = 1;
        if (s.db != NULL)
            pgpool_close(s.db, NULL, NULL);
        if (s.redis != NULL)
            redis_close(s.redis, NULL, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return s.failed ? 1 : 0;
}
