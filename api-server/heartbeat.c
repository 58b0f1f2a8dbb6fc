/*
 * Heartbeats from monitored servers (public routes: each request carries its own credential):
 *
 *   POST /api/server/heartbeat      X-Challenge-UUID: the registration challenge
 *   POST /api/server/heartbeat-v2   X-Api-Key: the API key
 *   body {identifier, openclaw_version?, agents[], cpu_pct?, mem_pct?, disk_pct?, swap_pct?}
 *   → 200 {ok, server_id, last_seen_at} (+ challenge_valid_until with a challenge)
 *
 * Refusals: no credential, an unknown one or an expired challenge 401; a disabled server 404;
 * a body that is not JSON 400, one that fails heartbeat_body.h's rules (or names another
 * server's identifier) 422. The credential is checked before the body is looked at.
 *
 * The server is found by the hash of its credential (an index lookup that reveals nothing
 * about near misses), and the stored hash is compared with ours in constant time besides.
 * The state is written with a condition on the same hash, so a challenge replaced or a
 * server disabled between the two statements does not let a heartbeat through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/db.h"
#include "api-server/handlers.h"
#include "api-server/heartbeat_body.h"
#include "api-server/request.h"
#include "api-server/server.h"
#include "api-server/uuid_text.h"
#include "common/crypto.h"
#include "common/http_json.h"
#include "common/log.h"

/* API keys are 43 characters; a header much longer than that is not one. */
#define API_KEY_MAX 256

typedef struct beat {
    int challenge; /* authenticated by challenge (else API key) */
    char hash[CRYPTO_SHA256_HEX_LEN + 1];
    char server_id[UUID_TEXT_LEN + 1];
} beat_t;

static void unauthorized(http_request_t *req, const char *code, const char *message)
{
    log_debug("heartbeat.refused", "req=%s code=%s remote=%s", http_request_id(req), code,
              http_request_remote_addr(req));
    http_reply_error(req, 401, code, message);
}

static void refuse_unknown(http_request_t *req, const beat_t *b)
{
    unauthorized(req, "INVALID_CREDENTIAL",
                 b->challenge ? "The challenge is unknown or was replaced."
                              : "The API key is unknown.");
}

static void on_stored(http_request_t *req, const PGresult *res)
{
    beat_t *b = api_state(req);
    if (PQntuples(res) != 1) { /* credential replaced, expired or disabled meanwhile */
        refuse_unknown(req, b);
        return;
    }
    json_t *body = json_pack("{s:b,s:s,s:s}", "ok", 1, "server_id", b->server_id, "last_seen_at",
                             PQgetvalue(res, 0, 0));
    if (body != NULL && b->challenge)
        json_object_set_new(body, "challenge_valid_until", json_string(PQgetvalue(res, 0, 1)));
    http_reply_json(req, 200, body);
}

/*
 * $1 server id, $2 the credential's hash, $3 'challenge' | 'api_key', $4 version, $5 agents,
 * $6..$9 percentages. Two statements differing only in the credential condition.
 */
#define STORE_SQL(condition)                                                                       \
    "UPDATE servers SET last_seen_at = now(), last_auth = $3, openclaw_version = $4,"              \
    " agents = $5::jsonb, cpu_pct = $6, mem_pct = $7, disk_pct = $8, swap_pct = $9,"               \
    " challenge_first_used_at = CASE WHEN $3 = 'challenge'"                                        \
    "   THEN coalesce(challenge_first_used_at, now()) ELSE challenge_first_used_at END"            \
    " WHERE id = $1::uuid AND enabled AND " condition                                              \
    " RETURNING " SQL_ISO8601("last_seen_at") ", " SQL_ISO8601("challenge_expires_at")

static const char store_challenge_sql[] =
    STORE_SQL("challenge_hash = $2 AND challenge_expires_at > now()");
static const char store_key_sql[] = STORE_SQL("api_key_hash = $2");

static void store(http_request_t *req, const char *identifier)
{
    beat_t *b = api_state(req);
    heartbeat_t hb;
    heartbeat_error_t err;
    json_t *doc = http_body_json_or_reply(req);
    if (doc == NULL)
        return;
    api_request_keep_json(req, doc);
    if (heartbeat_parse(doc, &hb, &err) < 0) {
        http_reply_error(req, 422, err.code, err.message);
        return;
    }
    if (strcmp(hb.identifier, identifier) != 0) {
        http_reply_error(req, 422, "IDENTIFIER_MISMATCH",
                         "The identifier is not the one this credential was issued for.");
        return;
    }
    char *agents = json_dumps(hb.agents, JSON_COMPACT);
    if (agents == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    char pct[HEARTBEAT_NPCT][32];
    const char *values[9] = {b->server_id, b->hash, b->challenge ? "challenge" : "api_key",
                             hb.openclaw_version, agents};
    for (int i = 0; i < HEARTBEAT_NPCT; i++) {
        snprintf(pct[i], sizeof(pct[i]), "%.17g", hb.pct[i]);
        values[5 + i] = hb.has_pct[i] ? pct[i] : NULL;
    }
    api_db(req, on_stored, b->challenge ? store_challenge_sql : store_key_sql, 9, values);
    free(agents);
}

/* Row: id, identifier, enabled, stored hash, live (challenge unexpired; true for keys). */
static void on_server(http_request_t *req, const PGresult *res)
{
    beat_t *b = api_state(req);
    if (PQntuples(res) != 1 ||
        !crypto_equal(PQgetvalue(res, 0, 3), b->hash, CRYPTO_SHA256_HEX_LEN)) {
        refuse_unknown(req, b);
        return;
    }
    if (PQgetvalue(res, 0, 4)[0] != 't') {
        unauthorized(req, "CHALLENGE_EXPIRED",
                     "The challenge has expired; issue a new one or use the API key.");
        return;
    }
    if (PQgetvalue(res, 0, 2)[0] != 't') {
        http_reply_error(req, 404, "SERVER_DISABLED", "This server is disabled.");
        return;
    }
    snprintf(b->server_id, sizeof(b->server_id), "%s", PQgetvalue(res, 0, 0));
    store(req, PQgetvalue(res, 0, 1));
}

void api_heartbeat_challenge(http_request_t *req)
{
    beat_t *b = api_state_new(req, sizeof(*b), NULL);
    if (b == NULL)
        return;
    b->challenge = 1;
    char uuid[UUID_TEXT_LEN + 1];
    slice_t h = http_request_header(req, "x-challenge-uuid");
    if (h.ptr == NULL) {
        unauthorized(req, "MISSING_CREDENTIAL", "X-Challenge-UUID is required.");
        return;
    }
    if (uuid_text_parse(h, uuid) < 0) {
        refuse_unknown(req, b);
        return;
    }
    crypto_sha256_hex(uuid, UUID_TEXT_LEN, b->hash);
    const char *values[1] = {b->hash};
    api_db(req, on_server,
           "SELECT id, identifier, enabled, challenge_hash, challenge_expires_at > now()"
           " FROM servers WHERE challenge_hash = $1",
           1, values);
}

void api_heartbeat_key(http_request_t *req)
{
    beat_t *b = api_state_new(req, sizeof(*b), NULL);
    if (b == NULL)
        return;
    slice_t key = http_request_header(req, "x-api-key");
    if (key.ptr == NULL || key.len == 0) {
        unauthorized(req, "MISSING_CREDENTIAL", "X-Api-Key is required.");
        return;
    }
    if (key.len > API_KEY_MAX) {
        refuse_unknown(req, b);
        return;
    }
    crypto_sha256_hex(key.ptr, key.len, b->hash);
    const char *values[1] = {b->hash};
    api_db(req, on_server,
           "SELECT id, identifier, enabled, api_key_hash, true FROM servers"
           " WHERE api_key_hash = $1",
           1, values);
}
