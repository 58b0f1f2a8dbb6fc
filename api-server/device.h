/*
 * device: the devices table (sql/004_devices.sql) as the API sees it, and what pairing, the
 * devices API and the front door to device traffic share:
 *
 *   - who may see a device: its owner, or any admin; a revoked device is seen by nobody. Any
 *     other case answers 404 NOT_FOUND exactly like an id that does not exist, so another
 *     user's device is never confirmed to exist (never 403);
 *   - the Redis keys of the contract: tunnel:cred:<sha256hex(token)> (written here) and
 *     tunnel:route:<device id> (written by remote-proxy while a tunnel lives: "online");
 *   - the JSON view {device_id, name, owner_id, online, created_at, last_seen_at}.
 *
 * Device ids are uuids in canonical text form (uuid_text.h).
 */
#ifndef EDGEGATE_API_DEVICE_H
#define EDGEGATE_API_DEVICE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "api-server/sql_time.h"
#include "api-server/uuid_text.h"
#include "common/crypto.h"
#include "common/http_server.h"

/* Every query that shows devices selects these first, in this order, from devices AS d. */
#define DEVICE_COLUMNS                                                                             \
    "d.id, d.owner_id, d.name, " SQL_ISO8601("d.created_at") ", " SQL_ISO8601("d.last_seen_at")
#define DEVICE_NCOLUMNS 5

/* The visibility rule over devices AS d, for queries whose $1 is the device id, $2 the
 * principal's account id and $3 whether the principal is an admin (device_visible_params). */
#define DEVICE_VISIBLE                                                                             \
    "d.id = $1::uuid AND d.revoked_at IS NULL AND (d.owner_id = $2 OR $3::boolean)"

#define DEVICE_CRED_PREFIX "tunnel:cred:"
#define DEVICE_ROUTE_PREFIX "tunnel:route:"
#define DEVICE_CRED_KEY_MAX (sizeof(DEVICE_CRED_PREFIX) + CRYPTO_SHA256_HEX_LEN)
#define DEVICE_ROUTE_KEY_MAX (sizeof(DEVICE_ROUTE_PREFIX) + UUID_TEXT_LEN)

typedef struct device_params {
    char account[24];
    const char *values[3]; /* $1 device id, $2 account id, $3 admin */
} device_params_t;

/* Fills p for DEVICE_VISIBLE with the signed-in principal of req; device_id must outlive p. */
void device_visible_params(const http_request_t *req, const char *device_id, device_params_t *p);

/* Is the signed-in principal an admin (sees every device and server)? */
int device_principal_is_admin(const http_request_t *req);

typedef void (*device_found_cb)(http_request_t *req, const PGresult *res);

/*
 * The ownership check: loads the device named by path parameter `param` when the signed-in
 * principal may see it, and calls cb with exactly one row of DEVICE_COLUMNS. Otherwise
 * (malformed id, unknown, revoked, someone else's) answers 404 NOT_FOUND and cb never runs;
 * PostgreSQL trouble answers 503 (db.h). For any route under /api/devices/{id}.
 */
void device_find_or_reply(http_request_t *req, const char *param, device_found_cb cb);

/*
 * The same check for routes that need only the device's id (the front door, on every proxied
 * request): answered from the row cache (row_cache.h) when it holds the device's owner, else
 * from PostgreSQL, whose answer fills the cache. cb gets the id in canonical form (valid for the
 * callback only); the refusals are device_find_or_reply's.
 */
typedef void (*device_checked_cb)(http_request_t *req, const char *device_id);
void device_check_or_reply(http_request_t *req, const char *param, device_checked_cb cb);

void device_cred_key(const char *token_hash, char out[DEVICE_CRED_KEY_MAX]);
void device_route_key(const char *device_id, char out[DEVICE_ROUTE_KEY_MAX]);

/*
 * Answers status with the devices in res (rows of DEVICE_COLUMNS): one object when single,
 * else {devices:[...], total}. Online state comes from Redis (one MGET of the route keys);
 * Redis not answering is 503.
 */
void device_reply(http_request_t *req, const PGresult *res, int status, int single);

#endif
