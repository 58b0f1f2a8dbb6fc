#include "api-server/oidc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/app.h"
#include "api-server/db.h"
#include "api-server/oidc_form.h"
#include "api-server/oidc_provider.h"
#include "api-server/request.h"
#include "api-server/session_cookie.h"
#include "common/crypto.h"
#include "common/http_json.h"
#include "common/jwt.h"
#include "common/log.h"

/* The end-session URL: the endpoint, an ID token of at most JWT_MAX_LEN, a few parameters. */
#define LOGOUT_URL_MAX (JWT_MAX_LEN + 4096)
#define SESSION_KEY_MAX (sizeof("session:") + CRYPTO_SHA256_HEX_LEN)

int oidc_enabled_or_reply(http_request_t *req)
{
    if (api_app(req)->oidc != NULL)
        return 0;
    http_reply_error(req, 404, "OIDC_NOT_CONFIGURED",
                     "Sign-in with an identity provider is not configured on this server.");
    return -1;
}

void oidc_reply_unavailable(http_request_t *req, const char *what, const char *why)
{
    log_warn("oidc.provider_unavailable", "req=%s step=%s error=\"%s\"", http_request_id(req),
             what, why ? why : "-");
    http_reply_error(req, 502, "PROVIDER_UNAVAILABLE",
                     "The sign-in provider could not be reached; try again shortly.");
}

static void session_key(const char *hash, char out[SESSION_KEY_MAX])
{
    snprintf(out, SESSION_KEY_MAX, "session:%s", hash);
}

int oidc_session_keep_id_token(http_request_t *req, const char *session_id,
                               const char *id_token, redis_reply_cb cb)
{
    /* Only into a session that exists: a session ended meanwhile must not be recreated as a
     * hash without an account (and without a TTL). */
    static const char script[] = "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
                                 "  redis.call('HSET', KEYS[1], 'id_token', ARGV[1])\n"
                                 "  return 1\n"
                                 "end\n"
                                 "return 0\n";
    char hash[CRYPTO_SHA256_HEX_LEN + 1], key[SESSION_KEY_MAX];
    crypto_sha256_hex(session_id, SESSION_ID_LEN, hash);
    session_key(hash, key);
    const char *argv[] = {"EVAL", script, "1", key, id_token};
    return api_redis_send(api_app(req), cb, req, 5, argv);
}

typedef struct logout {
    char *url;
    void (*done)(http_request_t *req);
} logout_t;

static void logout_free(void *state)
{
    logout_t *l = state;
    free(l->url);
}

/* id_token_hint, client_id and the post-logout redirect on the provider's endpoint. */
static char *end_session_url(const api_config_t *cfg, const char *endpoint, const char *id_token)
{
    buf_t url = BUF_INIT(LOGOUT_URL_MAX);
    int rc = buf_append_str(&url, endpoint);
    if (rc == 0)
        rc = oidc_query_add(&url, "id_token_hint", id_token);
    if (rc == 0)
        rc = oidc_query_add(&url, "client_id", cfg->oidc_client_id);
    if (rc == 0 && cfg->oidc_post_logout_redirect_uri != NULL)
        rc = oidc_query_add(&url, "post_logout_redirect_uri", cfg->oidc_post_logout_redirect_uri);
    if (rc < 0) {
        buf_free(&url);
        return NULL;
    }
    return url.data;
}

static void on_id_token(void *arg, redisReply *reply, const char *error)
{
    http_request_t *req = arg;
    if (api_redis_failed(req, reply, error))
        return;
    logout_t *l = api_state(req);
    api_app_t *app = api_app(req);
    const oidc_metadata_t *md = oidc_provider_cached(app->oidc);
    if (reply->type == REDIS_REPLY_STRING && md != NULL && md->end_session_endpoint != NULL)
        l->url = end_session_url(app->cfg, md->end_session_endpoint, reply->str);
    l->done(req);
}

void oidc_logout_prepare(http_request_t *req, const char *session_hash,
                         void (*done)(http_request_t *req))
{
    if (api_app(req)->oidc == NULL) {
        done(req);
        return;
    }
    logout_t *l = api_state_new(req, sizeof(*l), logout_free);
    if (l == NULL)
        return;
    l->done = done;
    char key[SESSION_KEY_MAX];
    session_key(session_hash, key);
    const char *argv[] = {"HGET", key, "id_token"};
    if (api_redis_send(api_app(req), on_id_token, req, 3, argv) < 0)
        api_reply_unavailable(req, "redis", "command not accepted");
}

const char *oidc_logout_url(const http_request_t *req)
{
    const logout_t *l = api_app(req)->oidc != NULL ? api_state(req) : NULL;
    return l != NULL ? l->url : NULL;
}
