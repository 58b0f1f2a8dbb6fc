#include "api-server/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/db.h"
#include "api-server/request.h"
#include "common/clock.h"
#include "common/http_json.h"
#include "common/log.h"

/*
 * KEYS: session key, account set. ARGV: account_id, roles, epoch, now, idle TTL, absolute
 * TTL, this session's hash, cap per account, "1" to end the account's other sessions.
 * Returns how many other sessions were ended.
 */
static const char create_script[] =
    "local ended = 0\n"
    "local live = {}\n"
    "for _, h in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  local key = 'session:' .. h\n"
    "  local created = redis.call('HGET', key, 'created')\n"
    "  if ARGV[9] == '1' or not created then\n"
    "    if created then ended = ended + 1 end\n"
    "    redis.call('DEL', key)\n"
    "    redis.call('SREM', KEYS[2], h)\n"
    "  else\n"
    "    live[#live + 1] = {h, tonumber(created) or 0}\n"
    "  end\n"
    "end\n"
    "local cap = tonumber(ARGV[8])\n"
    "if #live >= cap then\n"
    "  table.sort(live, function(a, b) return a[2] < b[2] end)\n"
    "  for i = 1, #live - cap + 1 do\n"
    "    redis.call('DEL', 'session:' .. live[i][1])\n"
    "    redis.call('SREM', KEYS[2], live[i][1])\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'account_id', ARGV[1], 'roles', ARGV[2], 'epoch', ARGV[3],\n"
    "           'created', ARGV[4], 'last_seen', ARGV[4])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
    "redis.call('SADD', KEYS[2], ARGV[7])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[6])\n"
    "return ended\n";

/*
 * KEYS: session key. ARGV: now, idle TTL, absolute TTL. Returns {account_id, epoch, created}
 * and restarts the idle timer (capped by what is left of the absolute lifetime), or nil.
 */
static const char lookup_script[] =
    "local h = redis.call('HMGET', KEYS[1], 'account_id', 'epoch', 'created')\n"
    "local created = tonumber(h[3])\n"
    "if not h[1] or not created then return false end\n"
    "local left = tonumber(ARGV[3]) - (tonumber(ARGV[1]) - created)\n"
    "if left <= 0 then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return false\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[1], math.floor(math.min(tonumber(ARGV[2]), left)))\n"
    "return {h[1], h[2] or '0', h[3]}\n";

/* KEYS: session key, account set. ARGV: the session's hash. */
static const char delete_script[] = "redis.call('DEL', KEYS[1])\n"
                                    "redis.call('SREM', KEYS[2], ARGV[1])\n"
                                    "return 1\n";

/* KEYS: account set. Returns how many sessions were ended. */
static const char revoke_all_script[] =
    "local members = redis.call('SMEMBERS', KEYS[1])\n"
    "for _, h in ipairs(members) do redis.call('DEL', 'session:' .. h) end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return #members\n";

#define SESSION_KEY_MAX (sizeof("session:") + CRYPTO_SHA256_HEX_LEN)
#define SET_KEY_MAX 48

static void session_key(const char *hash, char out[SESSION_KEY_MAX])
{
    snprintf(out, SESSION_KEY_MAX, "session:%s", hash);
}

static void set_key(int64_t account_id, char out[SET_KEY_MAX])
{
    snprintf(out, SET_KEY_MAX, "sessions:account:%" PRId64, account_id);
}

static const char *now_text(char out[24])
{
    return api_i64(clock_unix_ms() / 1000, out);
}

typedef struct pending {
    http_request_t *req;
    union {
        session_created_cb created;
        session_done_cb done;
    } cb;
    char id[SESSION_ID_LEN + 1];
} pending_t;

static pending_t *pending_new(http_request_t *req)
{
    pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        api_reply_unavailable(req, "memory", "out of memory");
    else
        p->req = req;
    return p;
}

/* Sends the script; on refusal answers 503 and frees p. */
static void eval(pending_t *p, redis_reply_cb on_reply, int argc, const char **argv)
{
    if (api_redis_send(api_app(p->req), on_reply, p, argc, argv) < 0) {
        api_reply_unavailable(p->req, "redis", "command not accepted");
        free(p);
    }
}

static void on_created(void *arg, redisReply *reply, const char *error)
{
    pending_t *p = arg;
    if (!api_redis_failed(p->req, reply, error)) {
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
            log_info("session.others_ended", "req=%s count=%lld", http_request_id(p->req),
                     reply->integer);
        p->cb.created(p->req, p->id);
    }
    explicit_bzero(p->id, sizeof(p->id));
    free(p);
}

void session_create(http_request_t *req, const account_t *account, int revoke_others,
                    session_created_cb cb)
{
    pending_t *p = pending_new(req);
    if (p == NULL)
        return;
    p->cb.created = cb;
    if (crypto_random_token(p->id) < 0) {
        free(p);
        api_reply_unavailable(req, "random", "no randomness");
        return;
    }
    char hash[CRYPTO_SHA256_HEX_LEN + 1], skey[SESSION_KEY_MAX], akey[SET_KEY_MAX];
    char acc[24], roles[32], epoch[24], now[24], idle[24], life[24], cap[24];
    crypto_sha256_hex(p->id, SESSION_ID_LEN, hash);
    session_key(hash, skey);
    set_key(account->id, akey);
    const char *argv[] = {
        "EVAL", create_script, "2", skey, akey, api_i64(account->id, acc),
        account_roles_text(account->roles, roles), api_i64(account->session_epoch, epoch),
        now_text(now), api_i64(SESSION_IDLE_SECONDS, idle),
        api_i64(SESSION_ABSOLUTE_SECONDS, life), hash, api_i64(SESSION_MAX_PER_ACCOUNT, cap),
        revoke_others ? "1" : "0",
    };
    eval(p, on_created, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

typedef struct finding {
    session_find_cb cb;
    void *arg;
} finding_t;

static void on_found(void *arg, redisReply *reply, const char *error)
{
    finding_t f = *(finding_t *)arg;
    free(arg);
    if (error != NULL) {
        f.cb(f.arg, SESSION_UNAVAILABLE, NULL, error);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        f.cb(f.arg, SESSION_FAILED, NULL, reply->str);
        return;
    }
    int found = reply->type == REDIS_REPLY_ARRAY && reply->elements == 3;
    for (size_t i = 0; found && i < 3; i++)
        found = reply->element[i]->type == REDIS_REPLY_STRING;
    if (!found) {
        f.cb(f.arg, SESSION_NOT_FOUND, NULL, NULL);
        return;
    }
    session_info_t info = {
        .account_id = strtoll(reply->element[0]->str, NULL, 10),
        .epoch = strtoll(reply->element[1]->str, NULL, 10),
        .created = strtoll(reply->element[2]->str, NULL, 10),
    };
    f.cb(f.arg, SESSION_FOUND, &info, NULL);
}

int session_find(api_app_t *app, const char *hash, session_find_cb cb, void *arg)
{
    finding_t *f = malloc(sizeof(*f));
    if (f == NULL)
        return -1;
    *f = (finding_t){cb, arg};
    char skey[SESSION_KEY_MAX], now[24], idle[24], life[24];
    session_key(hash, skey);
    const char *argv[] = {"EVAL", lookup_script, "1", skey, now_text(now),
                          api_i64(SESSION_IDLE_SECONDS, idle),
                          api_i64(SESSION_ABSOLUTE_SECONDS, life)};
    if (api_redis_send(app, on_found, f, (int)(sizeof(argv) / sizeof(argv[0])), argv) < 0) {
        free(f);
        return -1;
    }
    return 0;
}

static void on_deleted(void *arg, redisReply *reply, const char *error)
{
    pending_t *p = arg;
    if (!api_redis_failed(p->req, reply, error))
        p->cb.done(p->req);
    free(p);
}

void session_delete(http_request_t *req, int64_t account_id, const char *hash,
                    session_done_cb cb)
{
    pending_t *p = pending_new(req);
    if (p == NULL)
        return;
    p->cb.done = cb;
    char skey[SESSION_KEY_MAX], akey[SET_KEY_MAX];
    session_key(hash, skey);
    set_key(account_id, akey);
    const char *argv[] = {"EVAL", delete_script, "2", skey, akey, hash};
    eval(p, on_deleted, (int)(sizeof(argv) / sizeof(argv[0])), argv);
}

static void revoke_all_failed(const char *why)
{
    log_warn("session.revoke_all_failed",
             "error=\"%s\" note=\"the epoch bump already revoked them; only the keys remain "
             "until they expire\"",
             why);
}

static void on_revoked_all(void *arg, redisReply *reply, const char *error)
{
    (void)arg;
    if (error != NULL)
        revoke_all_failed(error);
    else if (reply->type == REDIS_REPLY_ERROR)
        revoke_all_failed("error reply");
}

void session_revoke_all(api_app_t *app, int64_t account_id)
{
    char akey[SET_KEY_MAX];
    set_key(account_id, akey);
    const char *argv[] = {"EVAL", revoke_all_script, "1", akey};
    if (api_redis_send(app, on_revoked_all, NULL, 4, argv) < 0)
        revoke_all_failed("command not accepted");
}

void session_set_cookie_for(const api_app_t *app, const char *id,
                            char out[SESSION_SET_COOKIE_MAX])
{
    char value[SESSION_COOKIE_VALUE_LEN + 1];
    if (id != NULL)
        session_cookie_sign(slice_from(app->cfg->session_secret), id, value);
    session_set_cookie(out, id ? value : NULL, !app->cfg->dev, SESSION_ABSOLUTE_SECONDS);
}

void session_reply(http_request_t *req, const char *id, const account_t *account)
{
    char cookie[SESSION_SET_COOKIE_MAX];
    session_set_cookie_for(api_app(req), id, cookie);
    http_header_t h[1] = {{SLICE_LIT("Set-Cookie"), slice_from(cookie)}};
    http_reply_json_h(req, 200,
                      json_pack("{s:s,s:o}", "token", id, "agent", account_agent_json(account, 0)),
                      h, 1);
}
