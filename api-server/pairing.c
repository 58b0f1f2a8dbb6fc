/*
 * Pairing a device to the account of the person who pairs it:
 *
 *   POST /api/devices/pairing      signed in → 201 {code, expires_at, expires_in}
 *   POST /api/pairing/exchange     public (the device) {code, device_name}
 *                                  → 200 {device_id, token, name}
 *
 * A code lives 10 minutes and serves once; an account holds at most 10 open codes. The
 * exchange, step by step:
 *
 *   1. count the attempt against the client address (10 a minute), before anything else, so
 *      guessing codes is bounded however it is done;
 *   2. normalise the code and find it by its hash, unused and unexpired; anything else is
 *      401 INVALID_PAIRING_CODE, one answer for every way of being wrong;
 *   3. a fresh 256-bit credential and device id; the credential's hash goes to Redis as
 *      tunnel:cred:<hash> {device_id, user_id}, the record remote-proxy checks;
 *   4. ONE statement marks the code used, on condition that it still is unused and unexpired,
 *      and creates the device row with the credential's hash. Of any number of concurrent
 *      exchanges of one code exactly one gets its row; PostgreSQL never holds a credential
 *      whose code was not marked for it;
 *   5. no row (another exchange won, the code expired meanwhile) or no answer: the Redis key
 *      of step 3 is deleted before the exchange fails, so the losing credential exists
 *      nowhere (it never left this process either);
 *   6. the token is answered, once; audit row and device.paired event.
 *
 * Redis is written before the code is marked so that Redis being down fails the exchange
 * without burning the code.
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
#include "api-server/pairing_code.h"
#include "api-server/ratelimit.h"
#include "api-server/request.h"
#include "common/http_json.h"
#include "common/log.h"

#define PAIRING_CODE_SECONDS 600
#define PAIRING_OPEN_CODES_MAX 10
#define PAIRING_ATTEMPTS_PER_WINDOW 10
#define PAIRING_WINDOW_SECONDS 60
/* Two random 40-bit codes colliding is rare enough that a third try means a bug. */
#define PAIRING_CODE_TRIES 3

/* ---- POST /api/devices/pairing ---- */

/*
 * $1 owner, $2 code hash, $3 lifetime seconds, $4 open-code limit. One row: how many codes
 * the owner had open, and the new code's expiry (NULL when the limit was reached or the hash
 * collided). Codes expired for a day are purged on the way: the table stays small without a
 * background job.
 */
static const char create_sql[] =
    "WITH open AS (SELECT count(*) AS n FROM pairing_codes"
    "   WHERE owner_id = $1 AND used_at IS NULL AND expires_at > now()),"
    " purged AS (DELETE FROM pairing_codes WHERE expires_at < now() - interval '1 day'),"
    " ins AS (INSERT INTO pairing_codes (code_hash, owner_id, expires_at)"
    "   SELECT $2, $1, now() + make_interval(secs => $3::int) FROM open WHERE n < $4::int"
    "   ON CONFLICT (code_hash) DO NOTHING RETURNING expires_at)"
    " SELECT (SELECT n FROM open), (SELECT " SQL_ISO8601("expires_at") " FROM ins)";

typedef struct pairing {
    char code[PAIRING_CODE_DISPLAY_LEN + 1];
    int tries;
} pairing_t;

static void issue_code(http_request_t *req);

static void on_code_stored(http_request_t *req, const PGresult *res)
{
    pairing_t *p = api_state(req);
    int64_t owner = api_principal(req)->account.id;
    if (strtoll(PQgetvalue(res, 0, 0), NULL, 10) >= PAIRING_OPEN_CODES_MAX) {
        http_reply_error(req, 409, "TOO_MANY_OPEN_CODES",
                         "This account has 10 unused pairing codes; use one or let them expire.");
        return;
    }
    if (PQgetisnull(res, 0, 1)) {
        if (p->tries < PAIRING_CODE_TRIES)
            issue_code(req);
        else
            api_reply_internal(req, "pairing code collided three times");
        return;
    }
    api_audit(req, "pairing_code_created", "ok", owner, NULL);
    http_reply_json(req, 201,
                    json_pack("{s:s,s:s,s:i}", "code", p->code, "expires_at", PQgetvalue(res, 0, 1),
                              "expires_in", PAIRING_CODE_SECONDS));
}

static void issue_code(http_request_t *req)
{
    pairing_t *p = api_state(req);
    char normalized[PAIRING_CODE_SYMBOLS + 1], hash[CRYPTO_SHA256_HEX_LEN + 1];
    p->tries++;
    if (pairing_code_new(p->code) < 0 ||
        pairing_code_normalize(p->code, strlen(p->code), normalized) < 0) {
        api_reply_unavailable(req, "random", "no randomness");
        return;
    }
    pairing_code_hash(normalized, hash);
    char owner[24], life[24], limit[24];
    const char *values[4] = {api_i64(api_principal(req)->account.id, owner), hash,
                             api_i64(PAIRING_CODE_SECONDS, life),
                             api_i64(PAIRING_OPEN_CODES_MAX, limit)};
    api_db(req, on_code_stored, create_sql, 4, values);
}

void api_device_pairing_create(http_request_t *req)
{
    if (api_state_new(req, sizeof(pairing_t), NULL) != NULL)
        issue_code(req);
}

/* ---- POST /api/pairing/exchange ---- */

enum { F_CODE, F_NAME, NFIELDS };
static const api_field_t exchange_fields[NFIELDS] = {
    [F_CODE] = {"code", API_FIELD_STRING, 1, 1, 64, "INVALID_PAIRING_CODE"},
    [F_NAME] = {"device_name", API_FIELD_STRING, 1, 1, ACCOUNT_NAME_MAX_BYTES,
                "INVALID_DEVICE_NAME"},
};

/* Why a credential written to Redis is being withdrawn. */
enum withdraw_reason { WITHDRAW_LOST = 1, WITHDRAW_DB_DOWN, WITHDRAW_DB_ERROR };

typedef struct exchange {
    http_request_t *req;
    api_value_t in[NFIELDS];
    char code_id[24];
    char owner[24];
    char device_id[UUID_TEXT_LEN + 1];
    char token[CRYPTO_TOKEN_LEN + 1];
    char token_hash[CRYPTO_SHA256_HEX_LEN + 1];
    char cred_key[DEVICE_CRED_KEY_MAX];
    enum withdraw_reason withdraw;
} exchange_t;

static void exchange_free(void *state)
{
    exchange_t *x = state;
    explicit_bzero(x->token, sizeof(x->token));
}

static void refuse(http_request_t *req, const char *reason)
{
    api_audit(req, "device_pairing", "failed", 0, json_pack("{s:s}", "reason", reason));
    http_reply_error(req, 401, "INVALID_PAIRING_CODE",
                     "The pairing code is wrong, used or expired; create a new one.");
}

/* The withdrawal is done (failure NULL) or failed; either way the exchange fails now. */
static void withdrawn(exchange_t *x, const char *failure)
{
    http_request_t *req = x->req;
    if (failure != NULL)
        /* The token never left this process: the key names a credential nobody holds. */
        log_error("pairing.credential_not_withdrawn", "req=%s device=%s error=\"%s\"",
                  http_request_id(req), x->device_id, failure);
    switch (x->withdraw) {
    case WITHDRAW_LOST:
        refuse(req, "code_taken");
        break;
    case WITHDRAW_DB_DOWN:
        api_reply_unavailable(req, "postgres", "pairing not recorded");
        break;
    case WITHDRAW_DB_ERROR:
        api_reply_internal(req, "pairing not recorded");
        break;
    }
}

static void on_withdrawn(void *arg, redisReply *reply, const char *error)
{
    if (error == NULL && reply->type == REDIS_REPLY_ERROR)
        error = "error reply";
    withdrawn(arg, error);
}

static void withdraw_credential(exchange_t *x, enum withdraw_reason why)
{
    x->withdraw = why;
    const char *argv[2] = {"DEL", x->cred_key};
    if (api_redis_send(api_app(x->req), on_withdrawn, x, 2, argv) < 0)
        withdrawn(x, "command not accepted");
}

/*
 * $1 code id, $2 device id, $3 device name, $4 credential hash. The mark and the device are
 * one statement: the UPDATE's condition is re-checked on the locked row, so a concurrent
 * exchange that committed first leaves this one with no code row, hence no device row.
 */
static const char pair_sql[] =
    "WITH code AS (UPDATE pairing_codes SET used_at = now(), device_id = $2::uuid"
    "   WHERE id = $1 AND used_at IS NULL AND expires_at > now() RETURNING owner_id)"
    " INSERT INTO devices AS d (id, owner_id, name, token_hash)"
    " SELECT $2::uuid, owner_id, $3, $4 FROM code RETURNING d.id";

static void on_paired(void *arg, const PGresult *res, const char *error)
{
    exchange_t *x = arg;
    http_request_t *req = x->req;
    if (error != NULL) {
        log_warn("pairing.not_recorded", "req=%s error=\"%s\"", http_request_id(req), error);
        withdraw_credential(x, WITHDRAW_DB_DOWN);
        return;
    }
    if (!pgpool_ok(res)) {
        const char *state = pgpool_sqlstate(res);
        log_error("pairing.not_recorded", "req=%s sqlstate=%s", http_request_id(req),
                  state ? state : "-");
        withdraw_credential(x, WITHDRAW_DB_ERROR);
        return;
    }
    if (PQntuples(res) != 1) {
        withdraw_credential(x, WITHDRAW_LOST);
        return;
    }
    int64_t owner = strtoll(x->owner, NULL, 10);
    api_audit(req, "device_paired", "ok", owner,
              json_pack("{s:s,s:s}", "device_id", x->device_id, "name", x->in[F_NAME].str));
    api_event_device(api_app(req), "device.paired", x->device_id, owner);
    http_reply_json(req, 200,
                    json_pack("{s:s,s:s,s:s}", "device_id", x->device_id, "token", x->token, "name",
                              x->in[F_NAME].str));
}

static void on_credential_stored(void *arg, redisReply *reply, const char *error)
{
    exchange_t *x = arg;
    if (api_redis_failed(x->req, reply, error))
        return;
    const char *values[4] = {x->code_id, x->device_id, x->in[F_NAME].str, x->token_hash};
    if (api_pg_send(api_app(x->req), pair_sql, 4, values, on_paired, x) < 0)
        on_paired(x, NULL, "query not accepted");
}

static void on_code(http_request_t *req, const PGresult *res)
{
    exchange_t *x = api_state(req);
    if (PQntuples(res) != 1) {
        refuse(req, "unknown_code");
        return;
    }
    snprintf(x->code_id, sizeof(x->code_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(x->owner, sizeof(x->owner), "%s", PQgetvalue(res, 0, 1));
    if (crypto_random_token(x->token) < 0 || uuid_text_new(x->device_id) < 0) {
        api_reply_unavailable(req, "random", "no randomness");
        return;
    }
    crypto_sha256_hex(x->token, CRYPTO_TOKEN_LEN, x->token_hash);
    device_cred_key(x->token_hash, x->cred_key);
    const char *argv[6] = {"HSET", x->cred_key, "device_id", x->device_id, "user_id", x->owner};
    if (api_redis_send(api_app(req), on_credential_stored, x, 6, argv) < 0)
        api_reply_unavailable(req, "redis", "command not accepted");
}

static void on_counted(http_request_t *req, const ratelimit_result_t *r)
{
    exchange_t *x = api_state(req);
    if (r->limited) {
        /* One audit row per locked window, not one per refused guess. */
        if (r->count == PAIRING_ATTEMPTS_PER_WINDOW + 1)
            api_audit(req, "device_pairing", "locked", 0,
                      json_pack("{s:s}", "reason", "rate_limited"));
        api_reply_rate_limited(req, r->retry_after);
        return;
    }
    char normalized[PAIRING_CODE_SYMBOLS + 1], hash[CRYPTO_SHA256_HEX_LEN + 1];
    if (pairing_code_normalize(x->in[F_CODE].str, x->in[F_CODE].len, normalized) < 0) {
        refuse(req, "malformed_code");
        return;
    }
    pairing_code_hash(normalized, hash);
    const char *values[1] = {hash};
    /* A code outlives nothing: not its expiry, not its use, not its owner being disabled. */
    api_db(req, on_code,
           "SELECT p.id, p.owner_id FROM pairing_codes p JOIN accounts a ON a.id = p.owner_id"
           " WHERE p.code_hash = $1 AND p.used_at IS NULL AND p.expires_at > now()"
           " AND NOT a.disabled",
           1, values);
}

void api_pairing_exchange(http_request_t *req)
{
    exchange_t *x = api_state_new(req, sizeof(*x), exchange_free);
    if (x == NULL || api_fields_or_reply(req, exchange_fields, NFIELDS, x->in) < 0)
        return;
    x->req = req;
    if (!account_name_valid(x->in[F_NAME].str, x->in[F_NAME].len)) {
        http_reply_error(req, 422, "INVALID_DEVICE_NAME",
                         "The device name must be 1 to 200 characters without control "
                         "characters.");
        return;
    }
    ratelimit_hit(req, "pairing", http_request_remote_addr(req), PAIRING_ATTEMPTS_PER_WINDOW,
                  PAIRING_WINDOW_SECONDS, on_counted);
}
