/*
 * The devices API (the owner's view; admins see every device):
 *
 *   GET    /api/devices        {devices:[...], total}: own devices, oldest first, at most 1000
 *   GET    /api/devices/{id}   one device
 *   PATCH  /api/devices/{id}   {name} renames it
 *   DELETE /api/devices/{id}   revokes it: {device_id, revoked, tunnel_closed}
 *
 * Someone else's device, a revoked one and a malformed id are all 404 (device.h).
 *
 * Revoking, in the order that keeps PostgreSQL — the record sync-credentials rebuilds Redis
 * from — never ahead of Redis in what it allows:
 *   1. find the device and its credential hash (visible to the caller, not yet revoked);
 *   2. one Redis script deletes tunnel:cred:<hash> and reads tunnel:route:<id>: from here on
 *      remote-proxy refuses the credential (401);
 *   3. the row is revoked (revoked_at, token_hash NULL), conditionally on the hash of step 1,
 *      so of two concurrent revokes one answers 404;
 *   4. the live tunnel is closed through the internal API of the replica the route names
 *      (EDGEGATE_INTERNAL_URL when none): the device loses its connection at once instead of
 *      at its next reconnect;
 *   5. audit row, device.revoked event, answer.
 * A failure at 2 changes nothing; at 3 the credential is withdrawn but the device is not
 * revoked: the request answers 503 and can be repeated.
 */
#include <stdlib.h>
#include <string.h>

#include "api-server/account.h"
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/device.h"
#include "api-server/events.h"
#include "api-server/fields.h"
#include "api-server/handlers.h"
#include "api-server/request.h"
#include "api-server/tunnel_close.h"
#include "common/http_json.h"

#define DEVICES_LIST_MAX "1000"

static const char not_found[] = "No such device.";

/* ---- GET ---- */

static void on_list(http_request_t *req, const PGresult *res)
{
    device_reply(req, res, 200, 0);
}

void api_devices_list(http_request_t *req)
{
    device_params_t p;
    device_visible_params(req, NULL, &p);
    api_db(req, on_list,
           "SELECT " DEVICE_COLUMNS " FROM devices d"
           " WHERE d.revoked_at IS NULL AND (d.owner_id = $1 OR $2::boolean)"
           " ORDER BY d.created_at, d.id LIMIT " DEVICES_LIST_MAX,
           2, p.values + 1);
}

static void on_device(http_request_t *req, const PGresult *res)
{
    device_reply(req, res, 200, 1);
}

void api_device_get(http_request_t *req)
{
    device_find_or_reply(req, "id", on_device);
}

/* ---- PATCH {name} ---- */

typedef struct rename {
    char id[UUID_TEXT_LEN + 1];
    api_value_t name;
} rename_t;

static void on_renamed(http_request_t *req, const PGresult *res)
{
    rename_t *r = api_state(req);
    if (PQntuples(res) != 1) {
        http_reply_error(req, 404, "NOT_FOUND", not_found);
        return;
    }
    api_audit(req, "device_renamed", "ok", strtoll(PQgetvalue(res, 0, 1), NULL, 10),
              json_pack("{s:s,s:s}", "device_id", r->id, "name", r->name.str));
    device_reply(req, res, 200, 1);
}

void api_device_rename(http_request_t *req)
{
    static const api_field_t fields[1] = {
        {"name", API_FIELD_STRING, 1, 1, ACCOUNT_NAME_MAX_BYTES, "INVALID_NAME"}};
    rename_t *r = api_state_new(req, sizeof(*r), NULL);
    if (r == NULL || uuid_param_or_reply(req, "id", r->id, not_found) < 0 ||
        api_fields_or_reply(req, fields, 1, &r->name) < 0)
        return;
    if (!account_name_valid(r->name.str, r->name.len)) {
        http_reply_error(req, 422, "INVALID_NAME",
                         "The name must be 1 to 200 characters without control characters.");
        return;
    }
    device_params_t p;
    device_visible_params(req, r->id, &p);
    const char *values[4] = {p.values[0], p.values[1], p.values[2], r->name.str};
    api_db(req, on_renamed,
           "UPDATE devices d SET name = $4 WHERE " DEVICE_VISIBLE " RETURNING " DEVICE_COLUMNS, 4,
           values);
}

/* ---- DELETE: revoke ---- */

/* KEYS: the credential, the route. Withdraws the one, returns the other (or nil). */
static const char withdraw_script[] = "redis.call('DEL', KEYS[1])\n"
                                      "return redis.call('GET', KEYS[2])\n";

typedef struct revoke {
    http_request_t *req;
    char id[UUID_TEXT_LEN + 1];
    char token_hash[CRYPTO_SHA256_HEX_LEN + 1];
    char *route; /* the replica holding the tunnel, or NULL */
    int64_t owner;
} revoke_t;

static void revoke_free(void *state)
{
    free(((revoke_t *)state)->route);
}

static const char *tunnel_outcome(enum tunnel_close_result result)
{
    switch (result) {
    case TUNNEL_CLOSE_CLOSED:
        return "closed";
    case TUNNEL_CLOSE_NONE:
        return "none";
    case TUNNEL_CLOSE_FAILED:
        break;
    }
    return "close_failed";
}

static void on_tunnel_closed(void *arg, enum tunnel_close_result result)
{
    revoke_t *r = arg;
    http_request_t *req = r->req;
    api_audit(req, "device_revoked", "ok", r->owner,
              json_pack("{s:s,s:s}", "device_id", r->id, "tunnel", tunnel_outcome(result)));
    api_event_device(api_app(req), "device.revoked", r->id, r->owner);
    http_reply_json(req, 200,
                    json_pack("{s:s,s:b,s:b}", "device_id", r->id, "revoked", 1, "tunnel_closed",
                              result == TUNNEL_CLOSE_CLOSED));
}

static void on_revoked(http_request_t *req, const PGresult *res)
{
    revoke_t *r = api_state(req);
    if (PQntuples(res) != 1) { /* revoked meanwhile by another request */
        http_reply_error(req, 404, "NOT_FOUND", not_found);
        return;
    }
    if (tunnel_close_device(api_app(req), r->route, r->id, on_tunnel_closed, r) < 0)
        on_tunnel_closed(r, TUNNEL_CLOSE_FAILED);
}

static void on_withdrawn(void *arg, redisReply *reply, const char *error)
{
    revoke_t *r = arg;
    if (api_redis_failed(r->req, reply, error))
        return;
    if (reply->type == REDIS_REPLY_STRING && reply->len > 0 &&
        (r->route = strdup(reply->str)) == NULL) {
        api_reply_unavailable(r->req, "memory", "out of memory");
        return;
    }
    const char *values[2] = {r->id, r->token_hash};
    api_db(r->req, on_revoked,
           "UPDATE devices SET revoked_at = now(), token_hash = NULL"
           " WHERE id = $1::uuid AND token_hash = $2 RETURNING owner_id",
           2, values);
}

static void on_credential(http_request_t *req, const PGresult *res)
{
    revoke_t *r = api_state(req);
    if (PQntuples(res) != 1) {
        http_reply_error(req, 404, "NOT_FOUND", not_found);
        return;
    }
    snprintf(r->token_hash, sizeof(r->token_hash), "%s", PQgetvalue(res, 0, 0));
    r->owner = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    char cred[DEVICE_CRED_KEY_MAX], route[DEVICE_ROUTE_KEY_MAX];
    device_cred_key(r->token_hash, cred);
    device_route_key(r->id, route);
    const char *argv[5] = {"EVAL", withdraw_script, "2", cred, route};
    if (api_redis_send(api_app(req), on_withdrawn, r, 5, argv) < 0)
        api_reply_unavailable(req, "redis", "command not accepted");
}

void api_device_revoke(http_request_t *req)
{
    revoke_t *r = api_state_new(req, sizeof(*r), revoke_free);
    if (r == NULL || uuid_param_or_reply(req, "id", r->id, not_found) < 0)
        return;
    r->req = req;
    device_params_t p;
    device_visible_params(req, r->id, &p);
    api_db(req, on_credential,
           "SELECT d.token_hash, d.owner_id FROM devices d WHERE " DEVICE_VISIBLE, 3, p.values);
}
