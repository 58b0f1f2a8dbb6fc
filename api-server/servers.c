/*
 * Registering monitored servers (signed-in users; admins see and manage every server):
 *
 *   POST  /api/servers                  {identifier, name?} → 201 {server_id, identifier, name,
 *                                       api_key, challenge_uuid, challenge_expires_at}; the
 *                                       key and the challenge are shown this once; 409
 *                                       IDENTIFIER_TAKEN
 *   POST  /api/servers/{id}/challenge   a fresh challenge (the old one stops working)
 *   PATCH /api/servers/{id}             {enabled?, name?}
 *   GET   /api/servers                  {servers:[...], total}: last state, last_seen_at,
 *                                       stale (silent longer than
 *                                       EDGEGATE_HEARTBEAT_STALE_SECONDS)
 *
 * Someone else's server and a malformed id are 404.
 */
#include <stdlib.h>
#include <string.h>

#include "api-server/account.h"
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/device.h"
#include "api-server/fields.h"
#include "api-server/handlers.h"
#include "api-server/heartbeat_body.h"
#include "api-server/request.h"
#include "api-server/server.h"
#include "api-server/uuid_text.h"
#include "common/crypto.h"
#include "common/http_json.h"

#define SERVERS_LIST_MAX "1000"

static const char not_found[] = "No such server.";

/* The columns of SERVER_COLUMNS_STALE, in order (the percentages in heartbeat_pct_names order). */
enum {
    C_ID, C_OWNER, C_IDENTIFIER, C_NAME, C_ENABLED, C_CREATED, C_LAST_SEEN, C_STALE, C_LAST_AUTH,
    C_VERSION, C_AGENTS, C_CPU, C_MEM, C_DISK, C_SWAP, C_CHALLENGE_EXPIRES, C_CHALLENGE_USED,
};

typedef struct row {
    const PGresult *res;
    int n;
} row_t;

static json_t *text(row_t r, int col)
{
    return PQgetisnull(r.res, r.n, col) ? json_null() : json_string(PQgetvalue(r.res, r.n, col));
}

static json_t *number(row_t r, int col)
{
    return PQgetisnull(r.res, r.n, col) ? json_null()
                                        : json_real(strtod(PQgetvalue(r.res, r.n, col), NULL));
}

static json_t *flag(row_t r, int col)
{
    return json_boolean(PQgetvalue(r.res, r.n, col)[0] == 't');
}

/* What the last heartbeat reported, or null before the first one. */
static json_t *state(row_t r)
{
    if (PQgetisnull(r.res, r.n, C_LAST_SEEN))
        return json_null();
    json_t *st = json_object();
    json_object_set_new(st, "openclaw_version", text(r, C_VERSION));
    json_object_set_new(st, "agents", PQgetisnull(r.res, r.n, C_AGENTS)
                                          ? json_array()
                                          : json_loads(PQgetvalue(r.res, r.n, C_AGENTS), 0, NULL));
    for (int i = 0; i < HEARTBEAT_NPCT; i++)
        json_object_set_new(st, heartbeat_pct_names[i], number(r, C_CPU + i));
    return st;
}

json_t *server_json(const PGresult *res, int n)
{
    row_t r = {res, n};
    json_t *s = json_object();
    json_object_set_new(s, "server_id", text(r, C_ID));
    json_object_set_new(s, "owner_id",
                        json_integer(strtoll(PQgetvalue(res, n, C_OWNER), NULL, 10)));
    json_object_set_new(s, "identifier", text(r, C_IDENTIFIER));
    json_object_set_new(s, "name", text(r, C_NAME));
    json_object_set_new(s, "enabled", flag(r, C_ENABLED));
    json_object_set_new(s, "created_at", text(r, C_CREATED));
    json_object_set_new(s, "last_seen_at", text(r, C_LAST_SEEN));
    json_object_set_new(s, "stale", flag(r, C_STALE));
    json_object_set_new(s, "last_auth", text(r, C_LAST_AUTH));
    json_object_set_new(s, "state", state(r));
    json_object_set_new(s, "challenge_expires_at", text(r, C_CHALLENGE_EXPIRES));
    json_object_set_new(s, "challenge_first_used_at", text(r, C_CHALLENGE_USED));
    return s;
}

static const char *stale_seconds(const http_request_t *req, char out[24])
{
    return api_i64(api_app(req)->cfg->heartbeat_stale_s, out);
}

/* ---- GET /api/servers ---- */

static void on_list(http_request_t *req, const PGresult *res)
{
    json_t *list = json_array();
    int n = PQntuples(res);
    for (int i = 0; list != NULL && i < n; i++)
        json_array_append_new(list, server_json(res, i));
    http_reply_json(req, 200, json_pack("{s:o?,s:i}", "servers", list, "total", n));
}

void api_servers_list(http_request_t *req)
{
    device_params_t p;
    device_visible_params(req, NULL, &p);
    char stale[24];
    const char *values[3] = {p.values[1], p.values[2], stale_seconds(req, stale)};
    api_db(
        req, on_list,
        "SELECT " SERVER_COLUMNS_STALE("$3") " FROM servers s"
                                             " WHERE s.owner_id = $1 OR $2::boolean"
                                             " ORDER BY s.created_at, s.id LIMIT " SERVERS_LIST_MAX,
        3, values);
}

/* ---- POST /api/servers ---- */

/* Fresh secrets for a server: the API key (registration only) and a challenge. */
typedef struct secrets {
    char api_key[CRYPTO_TOKEN_LEN + 1];
    char api_key_hash[CRYPTO_SHA256_HEX_LEN + 1];
    char challenge[UUID_TEXT_LEN + 1];
    char challenge_hash[CRYPTO_SHA256_HEX_LEN + 1];
    char server_id[UUID_TEXT_LEN + 1];
} secrets_t;

static void secrets_free(void *state)
{
    explicit_bzero(state, sizeof(secrets_t));
}

/* 0, or -1 after answering 503. */
static int make_challenge(http_request_t *req, secrets_t *s)
{
    if (uuid_text_new(s->challenge) < 0) {
        api_reply_unavailable(req, "random", "no randomness");
        return -1;
    }
    crypto_sha256_hex(s->challenge, UUID_TEXT_LEN, s->challenge_hash);
    return 0;
}

static void on_registered(http_request_t *req, const PGresult *res)
{
    secrets_t *s = api_state(req);
    if (PQntuples(res) != 1) {
        http_reply_error(req, 409, "IDENTIFIER_TAKEN", "A server with this identifier exists.");
        return;
    }
    api_audit(req, "server_registered", "ok", api_principal(req)->account.id,
              json_pack("{s:s,s:s}", "server_id", PQgetvalue(res, 0, 0), "identifier",
                        PQgetvalue(res, 0, 1)));
    http_reply_json(req, 201,
                    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "server_id", PQgetvalue(res, 0, 0),
                              "identifier", PQgetvalue(res, 0, 1), "name", PQgetvalue(res, 0, 2),
                              "api_key", s->api_key, "challenge_uuid", s->challenge,
                              "challenge_expires_at", PQgetvalue(res, 0, 3)));
}

void api_server_register(http_request_t *req)
{
    enum { F_IDENTIFIER, F_NAME, NFIELDS };
    static const api_field_t fields[NFIELDS] = {
        [F_IDENTIFIER] = {"identifier", API_FIELD_STRING, 1, 1, HEARTBEAT_IDENTIFIER_MAX,
                          "INVALID_IDENTIFIER"},
        [F_NAME] = {"name", API_FIELD_STRING, 0, 1, ACCOUNT_NAME_MAX_BYTES, "INVALID_NAME"},
    };
    api_value_t in[NFIELDS];
    secrets_t *s = api_state_new(req, sizeof(*s), secrets_free);
    if (s == NULL || api_fields_or_reply(req, fields, NFIELDS, in) < 0)
        return;
    if (!heartbeat_identifier_valid(in[F_IDENTIFIER].str, in[F_IDENTIFIER].len)) {
        http_reply_error(req, 422, "INVALID_IDENTIFIER",
                         "The identifier must be 1 to 128 of A-Z a-z 0-9 . _ : @ -.");
        return;
    }
    if (in[F_NAME].present && !account_name_valid(in[F_NAME].str, in[F_NAME].len)) {
        http_reply_error(req, 422, "INVALID_NAME",
                         "The name must be 1 to 200 characters without control characters.");
        return;
    }
    if (crypto_random_token(s->api_key) < 0) {
        api_reply_unavailable(req, "random", "no randomness");
        return;
    }
    if (make_challenge(req, s) < 0)
        return;
    crypto_sha256_hex(s->api_key, CRYPTO_TOKEN_LEN, s->api_key_hash);
    char owner[24], life[24];
    const char *values[6] = {api_i64(api_principal(req)->account.id, owner),
                             in[F_IDENTIFIER].str,
                             in[F_NAME].present ? in[F_NAME].str : NULL,
                             s->api_key_hash,
                             s->challenge_hash,
                             api_i64(SERVER_CHALLENGE_SECONDS, life)};
    api_db(req, on_registered,
           "INSERT INTO servers (owner_id, identifier, name, api_key_hash, challenge_hash,"
           " challenge_expires_at)"
           " VALUES ($1, $2, coalesce($3, ''), $4, $5, now() + make_interval(secs => $6::int))"
           " ON CONFLICT (identifier) DO NOTHING"
           " RETURNING id, identifier, name, " SQL_ISO8601("challenge_expires_at"),
           6, values);
}

/* ---- POST /api/servers/{id}/challenge ---- */

static void on_challenge(http_request_t *req, const PGresult *res)
{
    secrets_t *s = api_state(req);
    if (PQntuples(res) != 1) {
        http_reply_error(req, 404, "NOT_FOUND", not_found);
        return;
    }
    api_audit(req, "server_challenge_issued", "ok", strtoll(PQgetvalue(res, 0, 1), NULL, 10),
              json_pack("{s:s}", "server_id", s->server_id));
    http_reply_json(req, 200,
                    json_pack("{s:s,s:s,s:s}", "server_id", s->server_id, "challenge_uuid",
                              s->challenge, "challenge_expires_at", PQgetvalue(res, 0, 0)));
}

void api_server_challenge(http_request_t *req)
{
    secrets_t *s = api_state_new(req, sizeof(*s), secrets_free);
    if (s == NULL || uuid_param_or_reply(req, "id", s->server_id, not_found) < 0 ||
        make_challenge(req, s) < 0)
        return;
    device_params_t p;
    device_visible_params(req, s->server_id, &p);
    char life[24];
    const char *values[5] = {p.values[0], p.values[1], p.values[2], s->challenge_hash,
                             api_i64(SERVER_CHALLENGE_SECONDS, life)};
    api_db(req, on_challenge,
           "UPDATE servers SET challenge_hash = $4,"
           " challenge_expires_at = now() + make_interval(secs => $5::int),"
           " challenge_first_used_at = NULL, updated_at = now()"
           " WHERE id = $1::uuid AND (owner_id = $2 OR $3::boolean)"
           " RETURNING " SQL_ISO8601("challenge_expires_at") ", owner_id",
           5, values);
}

/* ---- PATCH /api/servers/{id} {enabled?, name?} ---- */

static void on_updated(http_request_t *req, const PGresult *res)
{
    if (PQntuples(res) != 1) {
        http_reply_error(req, 404, "NOT_FOUND", not_found);
        return;
    }
    json_t *server = server_json(res, 0);
    api_audit(req, "server_updated", "ok", strtoll(PQgetvalue(res, 0, 1), NULL, 10),
              json_pack("{s:s,s:O?,s:O?}", "server_id", PQgetvalue(res, 0, 0), "enabled",
                        json_object_get(server, "enabled"), "name",
                        json_object_get(server, "name")));
    http_reply_json(req, 200, server);
}

void api_server_update(http_request_t *req)
{
    enum { F_ENABLED, F_NAME, NFIELDS };
    static const api_field_t fields[NFIELDS] = {
        [F_ENABLED] = {"enabled", API_FIELD_BOOL, 0, 0, 0, "INVALID_ENABLED"},
        [F_NAME] = {"name", API_FIELD_STRING, 0, 0, ACCOUNT_NAME_MAX_BYTES, "INVALID_NAME"},
    };
    char *id = api_state_new(req, UUID_TEXT_LEN + 1, NULL);
    api_value_t in[NFIELDS];
    if (id == NULL || uuid_param_or_reply(req, "id", id, not_found) < 0 ||
        api_fields_or_reply(req, fields, NFIELDS, in) < 0)
        return;
    /* An empty name clears it (the column's default); anything else is a display name. */
    if (in[F_NAME].present && in[F_NAME].len > 0 &&
        !account_name_valid(in[F_NAME].str, in[F_NAME].len)) {
        http_reply_error(req, 422, "INVALID_NAME",
                         "The name must be up to 200 characters without control characters.");
        return;
    }
    device_params_t p;
    device_visible_params(req, id, &p);
    char stale[24];
    const char *values[6] = {p.values[0],
                             p.values[1],
                             p.values[2],
                             in[F_ENABLED].present ? (in[F_ENABLED].flag ? "true" : "false") : NULL,
                             in[F_NAME].present ? in[F_NAME].str : NULL,
                             stale_seconds(req, stale)};
    api_db(req, on_updated,
           "UPDATE servers s SET enabled = coalesce($4::boolean, enabled),"
           " name = coalesce($5, name), updated_at = now()"
           " WHERE id = $1::uuid AND (owner_id = $2 OR $3::boolean)"
           " RETURNING " SERVER_COLUMNS_STALE("$6"),
           6, values);
}
