#include "api-server/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/db.h"
#include "api-server/request.h"
#include "api-server/row_cache.h"
#include "common/clock.h"
#include "common/http_json.h"

static const char not_found[] = "No such device.";

int device_principal_is_admin(const http_request_t *req)
{
    const api_principal_t *p = api_principal(req);
    return p != NULL && (p->account.roles & ACCOUNT_ROLE_ADMIN) != 0;
}

void device_visible_params(const http_request_t *req, const char *device_id, device_params_t *p)
{
    const api_principal_t *who = api_principal(req);
    p->values[0] = device_id;
    p->values[1] = api_i64(who ? who->account.id : 0, p->account);
    p->values[2] = device_principal_is_admin(req) ? "true" : "false";
}

void device_cred_key(const char *token_hash, char out[DEVICE_CRED_KEY_MAX])
{
    snprintf(out, DEVICE_CRED_KEY_MAX, DEVICE_CRED_PREFIX "%s", token_hash);
}

void device_route_key(const char *device_id, char out[DEVICE_ROUTE_KEY_MAX])
{
    snprintf(out, DEVICE_ROUTE_KEY_MAX, DEVICE_ROUTE_PREFIX "%s", device_id);
}

/* ---- the ownership check ---- */

/* One lookup for both entry points: exactly one of found / checked is set. */
typedef struct find {
    http_request_t *req;
    device_found_cb found;
    device_checked_cb checked;
    uint64_t ticket; /* row_cache_ticket() when the query was sent */
} find_t;

static void on_found(void *arg, const PGresult *res, const char *error)
{
    find_t f = *(find_t *)arg;
    free(arg);
    if (api_db_failed(f.req, res, error))
        return;
    if (PQntuples(res) != 1) {
        http_reply_error(f.req, 404, "NOT_FOUND", not_found);
        return;
    }
    /* A row means: not revoked, and visible to this principal; its owner is what the next
     * check needs. */
    const char *id = PQgetvalue(res, 0, 0);
    row_cache_put_device_owner(api_app(f.req)->rows, f.ticket, id,
                               strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    if (f.found != NULL)
        f.found(f.req, res);
    else
        f.checked(f.req, id);
}

static void find_visible(const find_t *how, const char *id)
{
    http_request_t *req = how->req;
    find_t *f = malloc(sizeof(*f));
    if (f == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    *f = *how;
    f->ticket = row_cache_ticket(api_app(req)->rows);
    device_params_t p;
    device_visible_params(req, id, &p);
    if (api_pg_send(api_app(req), "SELECT " DEVICE_COLUMNS " FROM devices d WHERE " DEVICE_VISIBLE,
                    3, p.values, on_found, f) < 0) {
        free(f);
        api_reply_unavailable(req, "postgres", "query not accepted");
    }
}

void device_find_or_reply(http_request_t *req, const char *param, device_found_cb cb)
{
    char id[UUID_TEXT_LEN + 1];
    if (uuid_param_or_reply(req, param, id, not_found) == 0)
        find_visible(&(find_t){.req = req, .found = cb}, id);
}

void device_check_or_reply(http_request_t *req, const char *param, device_checked_cb cb)
{
    char id[UUID_TEXT_LEN + 1];
    if (uuid_param_or_reply(req, param, id, not_found) < 0)
        return;
    int64_t owner;
    if (!row_cache_get_device_owner(api_app(req)->rows, id, &owner)) {
        find_visible(&(find_t){.req = req, .checked = cb}, id);
        return;
    }
    const api_principal_t *who = api_principal(req);
    if ((who != NULL && who->account.id == owner) || device_principal_is_admin(req))
        cb(req, id);
    else
        http_reply_error(req, 404, "NOT_FOUND", not_found);
}

/* ---- the JSON view, with online state from Redis ---- */

typedef struct presence {
    http_request_t *req;
    json_t *devices; /* array, in row order */
    int status;
    int single;
} presence_t;

static json_t *row_json(const PGresult *res, int row)
{
    return json_pack("{s:s,s:s,s:I,s:b,s:s,s:s?}", "device_id", PQgetvalue(res, row, 0), "name",
                     PQgetvalue(res, row, 2), "owner_id",
                     (json_int_t)strtoll(PQgetvalue(res, row, 1), NULL, 10), "online", 0,
                     "created_at", PQgetvalue(res, row, 3), "last_seen_at",
                     PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4));
}

static void on_routes(void *arg, redisReply *reply, const char *error)
{
    presence_t *p = arg;
    if (!api_redis_failed(p->req, reply, error)) {
        size_t n = json_array_size(p->devices);
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
            api_reply_internal(p->req, "unexpected MGET reply");
        } else {
            char now[CLOCK_ISO8601_LEN];
            clock_iso8601(clock_unix_ms(), now);
            for (size_t i = 0; i < n; i++) {
                if (reply->element[i]->type != REDIS_REPLY_STRING)
                    continue;
                /* A live tunnel: the device is being seen right now. */
                json_t *d = json_array_get(p->devices, i);
                json_object_set_new(d, "online", json_true());
                json_object_set_new(d, "last_seen_at", json_string(now));
            }
            json_t *body =
                p->single ? json_incref(json_array_get(p->devices, 0))
                          : json_pack("{s:O,s:I}", "devices", p->devices, "total", (json_int_t)n);
            http_reply_json(p->req, p->status, body);
        }
    }
    json_decref(p->devices);
    free(p);
}

void device_reply(http_request_t *req, const PGresult *res, int status, int single)
{
    int n = PQntuples(res);
    if (n == 0) { /* nothing to ask Redis */
        http_reply_json(req, status, json_pack("{s:[],s:i}", "devices", "total", 0));
        return;
    }
    presence_t *p = calloc(1, sizeof(*p));
    json_t *devices = json_array();
    const char **argv = calloc((size_t)n + 1, sizeof(*argv));
    char(*keys)[DEVICE_ROUTE_KEY_MAX] = calloc((size_t)n, sizeof(*keys));
    if (p == NULL || devices == NULL || argv == NULL || keys == NULL)
        goto no_memory;
    argv[0] = "MGET";
    for (int i = 0; i < n; i++) {
        if (json_array_append_new(devices, row_json(res, i)) < 0)
            goto no_memory;
        device_route_key(PQgetvalue(res, i, 0), keys[i]);
        argv[i + 1] = keys[i];
    }
    *p = (presence_t){req, devices, status, single};
    if (api_redis_send(api_app(req), on_routes, p, n + 1, argv) < 0) {
        api_reply_unavailable(req, "redis", "command not accepted");
        goto fail;
    }
    free(argv); /* the command copied its arguments */
    free(keys);
    return;
no_memory:
    api_reply_unavailable(req, "memory", "out of memory");
fail:
    json_decref(devices);
    free(p);
    free(argv);
    free(keys);
}
