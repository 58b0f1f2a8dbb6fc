/*
 * GET /api/auth/callback?code=...&state=...[&iss=...] — the provider sends the browser back.
 *
 * Steps, each a callback:
 *   1. count the attempt (OIDC_CALLBACKS_PER_MINUTE per client address: every callback costs
 *      us a request to the provider);
 *   2. an `error=` from the provider is shown as it is: 400 PROVIDER_ERROR;
 *   3. state: missing 400 STATE_MISSING; no pending-login cookie for it in this browser, or one
 *      we did not sign, 400 STATE_MISMATCH; older than 10 minutes 400 STATE_EXPIRED; `iss`
 *      (RFC 9207), when sent, must be our issuer (mix-up defence);
 *   4. the state is marked used in Redis (`oidc:state:<sha256hex(state)>`, SET NX, 10 min)
 *      before anything else happens: a second use is 400 STATE_REPLAYED;
 *   5. the code goes to the token endpoint with the PKCE verifier, authenticated as the
 *      configuration says (none: client_id in the body; client_secret_basic; client_secret_post);
 *      the provider unreachable is 502 PROVIDER_UNAVAILABLE, a refusal 502 TOKEN_EXCHANGE_FAILED;
 *   6. the ID token: parsed strictly (jwt.h), signed by a key of the provider's set (fetched
 *      again once for an unknown kid), its claims checked (id_token.h) against our issuer,
 *      client id and this sign-in's nonce. Any failure is 401 ID_TOKEN_INVALID with the reason;
 *   7. the account is found or created by (issuer, subject), email and name kept current;
 *      a disabled account is 403 ACCOUNT_DISABLED;
 *   8. a new session (a fresh id: fixation defence), the ID token kept with it for the logout
 *      hint, then 302 to return_to with the session cookie.
 * Every answer deletes the pending-login cookie; every outcome is an audit row (event login,
 * detail.method oidc). Neither the code nor any token is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/account.h"
#include "api-server/audit.h"
#include "api-server/db.h"
#include "api-server/handlers.h"
#include "api-server/oidc.h"
#include "api-server/oidc_config.h"
#include "api-server/oidc_form.h"
#include "api-server/oidc_pending.h"
#include "api-server/oidc_provider.h"
#include "api-server/ratelimit.h"
#include "api-server/request.h"
#include "api-server/session.h"
#include "common/clock.h"
#include "common/http_json.h"
#include "common/id_token.h"
#include "common/log.h"

#define OIDC_CALLBACKS_PER_MINUTE 30
/* Authorization codes are opaque; real ones are well under 1 KiB. */
#define CODE_MAX 2048
#define ISS_MAX 512
#define PROVIDER_ERROR_MAX 64
#define PROVIDER_DESCRIPTION_MAX 300
#define TOKEN_BODY_MAX 8192
#define TOKEN_RESPONSE_MAX (64 * 1024)
/* accounts.display_name holds at most 200 characters. */
#define DISPLAY_NAME_CHARS 200

typedef struct callback {
    oidc_pending_t pending;
    int have_state; /* pending.state is known: answers delete its cookie */
    char code[CODE_MAX + 1];
    char *id_token;
    jwt_t token;
    id_token_identity_t who;
    account_t account;
    int created;
    char session_id[SESSION_ID_LEN + 1];
} callback_t;

static void callback_free(void *state)
{
    callback_t *c = state;
    explicit_bzero(c->code, sizeof(c->code));
    explicit_bzero(&c->pending, sizeof(c->pending));
    explicit_bzero(c->session_id, sizeof(c->session_id));
    free(c->id_token);
    jwt_clear(&c->token);
    account_clear(&c->account);
}

/* ---- answers ---- */

/* The headers every answer carries: the pending cookie deleted, and no caching. */
static size_t common_headers(http_request_t *req, http_header_t *h,
                             char cookie[OIDC_SET_COOKIE_MAX])
{
    callback_t *c = api_state(req);
    size_t n = 0;
    h[n++] = (http_header_t){SLICE_LIT("Cache-Control"), SLICE_LIT("no-store")};
    if (c != NULL && c->have_state) {
        const api_config_t *cfg = api_app(req)->cfg;
        oidc_pending_set_cookie(NULL, c->pending.state, slice_from(cfg->session_secret),
                                oidc_callback_path(cfg), !cfg->dev, cookie);
        h[n++] = (http_header_t){SLICE_LIT("Set-Cookie"), slice_from(cookie)};
    }
    return n;
}

/* A failed sign-in: audit row, then the JSON error. */
static void fail(http_request_t *req, int status, const char *code, const char *message,
                 const char *reason)
{
    callback_t *c = api_state(req);
    api_audit(req, "login", status == 403 ? "denied" : "failed", c ? c->account.id : 0,
              json_pack("{s:s,s:s,s:s?}", "method", "oidc", "reason", code, "detail", reason));
    log_info("oidc.sign_in_failed", "req=%s code=%s reason=\"%s\"", http_request_id(req), code,
             reason ? reason : "-");
    http_header_t h[2];
    char cookie[OIDC_SET_COOKIE_MAX];
    size_t n = common_headers(req, h, cookie);
    http_reply_json_h(req, status,
                      json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message), h,
                      n);
}

static void id_token_invalid(http_request_t *req, const char *why)
{
    char message[200];
    snprintf(message, sizeof(message), "The provider's ID token was refused: %s.", why);
    fail(req, 401, "ID_TOKEN_INVALID", message, why);
}

/* ---- 8. session ---- */

static void on_token_kept(void *arg, redisReply *reply, const char *error)
{
    http_request_t *req = arg;
    if (api_redis_failed(req, reply, error))
        return;
    callback_t *c = api_state(req);
    api_app_t *app = api_app(req);
    api_audit(req, "login", "ok", c->account.id,
              json_pack("{s:s,s:s,s:b}", "method", "oidc", "issuer", app->cfg->oidc_issuer,
                        "created", c->created));
    http_header_t h[4];
    char pending_cookie[OIDC_SET_COOKIE_MAX], session_cookie[SESSION_SET_COOKIE_MAX];
    size_t n = common_headers(req, h, pending_cookie);
    session_set_cookie_for(app, c->session_id, session_cookie);
    h[n++] = (http_header_t){SLICE_LIT("Set-Cookie"), slice_from(session_cookie)};
    h[n++] = (http_header_t){SLICE_LIT("Location"), slice_from(c->pending.return_to)};
    http_respond(req, 302, h, n, NULL, 0);
}

static void on_session(http_request_t *req, const char *id)
{
    callback_t *c = api_state(req);
    memcpy(c->session_id, id, SESSION_ID_LEN + 1);
    if (oidc_session_keep_id_token(req, id, c->id_token, on_token_kept) < 0)
        api_reply_unavailable(req, "redis", "command not accepted");
}

/* ---- 7. account ---- */

/* The name to show: at most DISPLAY_NAME_CHARS characters of name (valid UTF-8), or "". */
static void display_name(const char *name, char *out, size_t size)
{
    size_t chars = 0, i = 0;
    if (name != NULL) {
        for (; name[i] != '\0' && i + 1 < size; i++) {
            if (((unsigned char)name[i] & 0xc0) != 0x80 && ++chars > DISPLAY_NAME_CHARS)
                break;
        }
        /* Never cut a character in half. */
        while (i > 0 && i < strlen(name) && ((unsigned char)name[i] & 0xc0) == 0x80)
            i--;
        memcpy(out, name, i);
    }
    out[i] = '\0';
}

static void on_account(http_request_t *req, const PGresult *res)
{
    callback_t *c = api_state(req);
    if (PQntuples(res) != 1 || account_from_row(&c->account, res, 0, 0) < 0) {
        api_reply_internal(req, "account upsert returned no usable row");
        return;
    }
    c->created = PQgetvalue(res, 0, ACCOUNT_NCOLUMNS)[0] == 't';
    if (c->account.disabled) {
        fail(req, 403, "ACCOUNT_DISABLED", "This account is disabled; ask an administrator.",
             NULL);
        return;
    }
    if (c->created)
        log_info("oidc.account_created", "req=%s account=%lld", http_request_id(req),
                 (long long)c->account.id);
    session_create(req, &c->account, 0, on_session);
}

static void upsert_account(http_request_t *req)
{
    callback_t *c = api_state(req);
    char name[ID_TOKEN_NAME_MAX + 1];
    display_name(c->who.name, name, sizeof(name));
    const char *values[4] = {api_app(req)->cfg->oidc_issuer, c->who.sub, c->who.email, name};
    /* The provider is the source of the profile: email and name follow it at each sign-in,
     * but a sign-in without them does not erase what we had. */
    api_db(req, on_account,
           "INSERT INTO accounts (oidc_issuer, oidc_subject, email, display_name)"
           " VALUES ($1, $2, $3, $4)"
           " ON CONFLICT (oidc_issuer, oidc_subject) DO UPDATE SET"
           "   email = coalesce(excluded.email, accounts.email),"
           "   display_name = CASE WHEN excluded.display_name <> '' THEN excluded.display_name"
           "                  ELSE accounts.display_name END,"
           "   updated_at = now()"
           " RETURNING " ACCOUNT_COLUMNS ", (xmax = 0)",
           4, values);
}

/* ---- 6. ID token ---- */

static void on_verified(void *arg, int result, const char *why)
{
    http_request_t *req = arg;
    callback_t *c = api_state(req);
    if (result == OIDC_KEYS_UNAVAILABLE) {
        oidc_reply_unavailable(req, "jwks", why);
        return;
    }
    if (result == JWT_UNKNOWN_KEY) {
        id_token_invalid(req, "it is signed by a key the provider does not publish");
        return;
    }
    if (result != JWT_OK) {
        id_token_invalid(req, "its signature is not valid");
        return;
    }
    const api_config_t *cfg = api_app(req)->cfg;
    id_token_expect_t expect = {cfg->oidc_issuer, cfg->oidc_client_id, c->pending.nonce,
                                clock_unix_ms() / 1000};
    int rc = id_token_check(c->token.claims, &expect, &c->who);
    static const char *const reasons[] = {
        [-ID_TOKEN_BAD_ISSUER] = "it was issued by another issuer",
        [-ID_TOKEN_BAD_AUDIENCE] = "it was issued to another client",
        [-ID_TOKEN_EXPIRED] = "it has expired",
        [-ID_TOKEN_NOT_YET_VALID] = "its issue time is missing, too old or in the future",
        [-ID_TOKEN_BAD_NONCE] = "its nonce is not this sign-in's",
        [-ID_TOKEN_BAD_SUBJECT] = "it names no usable subject",
    };
    if (rc != ID_TOKEN_OK) {
        id_token_invalid(req, rc < 0 && -rc < (int)(sizeof(reasons) / sizeof(reasons[0]))
                                  ? reasons[-rc]
                                  : id_token_result_name(rc));
        return;
    }
    upsert_account(req);
}

static void check_id_token(http_request_t *req, const char *id_token, size_t len)
{
    callback_t *c = api_state(req);
    const char *why = "malformed";
    int rc = jwt_parse(id_token, len, &c->token, &why);
    if (rc != JWT_OK) {
        id_token_invalid(req, why);
        return;
    }
    if ((c->id_token = strndup(id_token, len)) == NULL) {
        api_reply_unavailable(req, "memory", "out of memory");
        return;
    }
    oidc_provider_verify(api_app(req)->oidc, &c->token, on_verified, req);
}

/* ---- 5. code exchange ---- */

/* The provider's error code from a token response, made safe to show and log. */
static const char *error_code(const json_t *doc, char out[PROVIDER_ERROR_MAX + 1])
{
    const char *e = json_string_value(json_object_get(doc, "error"));
    size_t n = e ? strlen(e) : 0;
    if (n == 0 || n > PROVIDER_ERROR_MAX || strspn(e, "abcdefghijklmnopqrstuvwxyz_") != n)
        return "unknown";
    memcpy(out, e, n + 1);
    return out;
}

static void on_token(void *arg, int err, const http_fetch_response_t *res, const char *why)
{
    http_request_t *req = arg;
    if (err == UV_ECANCELED) {
        api_reply_unavailable(req, "oidc", why);
        return;
    }
    if (err < 0) {
        oidc_reply_unavailable(req, "token", why);
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(res->body, res->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (res->status != 200) {
        char code[PROVIDER_ERROR_MAX + 1], message[200];
        snprintf(message, sizeof(message),
                 "The provider refused to exchange the sign-in code (%d %s).", res->status,
                 error_code(doc, code));
        json_decref(doc);
        fail(req, 502, "TOKEN_EXCHANGE_FAILED", message, message);
        return;
    }
    const json_t *id_token = json_object_get(doc, "id_token");
    if (!json_is_string(id_token)) {
        json_decref(doc);
        fail(req, 502, "TOKEN_EXCHANGE_FAILED", "The provider's token response has no ID token.",
             "no id_token");
        return;
    }
    check_id_token(req, json_string_value(id_token), json_string_length(id_token));
    json_decref(doc);
}

static void on_metadata(void *arg, const oidc_metadata_t *md, const char *why)
{
    http_request_t *req = arg;
    callback_t *c = api_state(req);
    const api_config_t *cfg = api_app(req)->cfg;
    if (md == NULL) {
        oidc_reply_unavailable(req, "metadata", why);
        return;
    }
    enum oidc_auth_method method = oidc_auth_method(cfg);
    buf_t body = BUF_INIT(TOKEN_BODY_MAX), basic = BUF_INIT(1024);
    int rc = oidc_form_add(&body, "grant_type", "authorization_code");
    if (rc == 0)
        rc = oidc_form_add(&body, "code", c->code);
    if (rc == 0)
        rc = oidc_form_add(&body, "redirect_uri", cfg->oidc_redirect_uri);
    if (rc == 0)
        rc = oidc_form_add(&body, "code_verifier", c->pending.verifier);
    if (rc == 0 && method != OIDC_AUTH_CLIENT_SECRET_BASIC)
        rc = oidc_form_add(&body, "client_id", cfg->oidc_client_id);
    if (rc == 0 && method == OIDC_AUTH_CLIENT_SECRET_POST)
        rc = oidc_form_add(&body, "client_secret", cfg->oidc_client_secret);
    if (rc == 0 && method == OIDC_AUTH_CLIENT_SECRET_BASIC)
        rc = oidc_basic_credentials(&basic, cfg->oidc_client_id, cfg->oidc_client_secret);
    if (rc < 0) {
        buf_free(&body);
        buf_free(&basic);
        api_reply_internal(req, "token request too large");
        return;
    }
    http_header_t h[3] = {
        {SLICE_LIT("Content-Type"), SLICE_LIT("application/x-www-form-urlencoded")},
        {SLICE_LIT("Accept"), SLICE_LIT("application/json")},
        {SLICE_LIT("Authorization"), {basic.data, basic.len}},
    };
    http_fetch_request_t rq = {
        .method = "POST",
        .url = md->token_endpoint,
        .headers = h,
        .nheaders = method == OIDC_AUTH_CLIENT_SECRET_BASIC ? 3 : 2,
        .body = body.data,
        .body_len = body.len,
        .max_response = TOKEN_RESPONSE_MAX,
    };
    rc = oidc_provider_fetch(api_app(req)->oidc, &rq, on_token, req);
    explicit_bzero(body.data, body.len);
    if (basic.data != NULL)
        explicit_bzero(basic.data, basic.len);
    buf_free(&body);
    buf_free(&basic);
    if (rc < 0)
        oidc_reply_unavailable(req, "token", "the request could not be started");
}

/* ---- 4. the state is used once ---- */

static void on_state_marked(void *arg, redisReply *reply, const char *error)
{
    http_request_t *req = arg;
    if (api_redis_failed(req, reply, error))
        return;
    if (reply->type == REDIS_REPLY_NIL) {
        fail(req, 400, "STATE_REPLAYED",
             "This sign-in has already been completed or attempted; start again.", NULL);
        return;
    }
    oidc_provider_metadata(api_app(req)->oidc, on_metadata, req);
}

static void mark_state_used(http_request_t *req)
{
    callback_t *c = api_state(req);
    char hash[CRYPTO_SHA256_HEX_LEN + 1], key[sizeof("oidc:state:") + CRYPTO_SHA256_HEX_LEN];
    char ttl[24];
    crypto_sha256_hex(c->pending.state, strlen(c->pending.state), hash);
    snprintf(key, sizeof(key), "oidc:state:%s", hash);
    const char *argv[] = {"SET", key, "1", "NX", "EX", api_i64(OIDC_PENDING_TTL_SECONDS, ttl)};
    if (api_redis_send(api_app(req), on_state_marked, req, 6, argv) < 0)
        api_reply_unavailable(req, "redis", "command not accepted");
}

/* ---- 2–3. what the provider sent back ---- */

/* The provider's error= and error_description=, shown as they are when they are sane. */
static void provider_error(http_request_t *req, const char *error)
{
    char description[PROVIDER_DESCRIPTION_MAX + 1], message[PROVIDER_DESCRIPTION_MAX + 160];
    long n = http_request_query(req, "error_description", description, sizeof(description));
    int printable = n > 0;
    for (long i = 0; i < n; i++)
        printable &= description[i] >= 0x20 && description[i] < 0x7f;
    /* RFC 6749 §4.1.2.1 error codes are lower-case words joined by '_'. */
    int known = error[0] != '\0' && strlen(error) <= PROVIDER_ERROR_MAX &&
                strspn(error, "abcdefghijklmnopqrstuvwxyz_") == strlen(error);
    snprintf(message, sizeof(message), "The sign-in provider answered %s%s%s%s.",
             known ? error : "an error", printable ? " (" : "", printable ? description : "",
             printable ? ")" : "");
    fail(req, 400, "PROVIDER_ERROR", message, known ? error : "unknown");
}

static void on_counted(http_request_t *req, const ratelimit_result_t *r)
{
    callback_t *c = api_state(req);
    const api_config_t *cfg = api_app(req)->cfg;
    if (r->limited) {
        api_reply_rate_limited(req, r->retry_after);
        return;
    }
    char state[CRYPTO_TOKEN_LEN + 2], error[PROVIDER_ERROR_MAX + 2], iss[ISS_MAX + 1];
    long state_len = http_request_query(req, "state", state, sizeof(state));
    slice_t state_slice = {state, state_len > 0 ? (size_t)state_len : 0};
    if (state_len > 0 && oidc_state_valid(state_slice)) {
        memcpy(c->pending.state, state, (size_t)state_len + 1);
        c->have_state = 1; /* from here on, answers delete this state's cookie */
    }
    long error_len = http_request_query(req, "error", error, sizeof(error));
    if (error_len != -1) {
        provider_error(req, error_len > 0 ? error : "");
        return;
    }
    if (state_len == -1) {
        fail(req, 400, "STATE_MISSING", "The sign-in answer carries no state.", NULL);
        return;
    }
    int64_t now = clock_unix_ms() / 1000;
    int rc = oidc_pending_read(http_request_header(req, "cookie"),
                               slice_from(cfg->session_secret), state_slice, now, &c->pending);
    if (rc == OIDC_PENDING_EXPIRED) {
        fail(req, 400, "STATE_EXPIRED", "This sign-in took too long; start again.", NULL);
        return;
    }
    if (rc != OIDC_PENDING_OK) {
        fail(req, 400, "STATE_MISMATCH",
             "This sign-in was not started in this browser, or its state was altered.",
             rc == OIDC_PENDING_MISSING ? "no pending cookie" : "bad pending cookie");
        return;
    }
    long iss_len = http_request_query(req, "iss", iss, sizeof(iss));
    if (iss_len != -1 && (iss_len < 0 || strcmp(iss, cfg->oidc_issuer) != 0)) {
        fail(req, 400, "ISSUER_MISMATCH", "The sign-in answer comes from another issuer.", NULL);
        return;
    }
    long code_len = http_request_query(req, "code", c->code, sizeof(c->code));
    if (code_len <= 0) {
        fail(req, 400, "CODE_MISSING", "The sign-in answer carries no usable code.", NULL);
        return;
    }
    mark_state_used(req);
}

void api_auth_callback(http_request_t *req)
{
    if (oidc_enabled_or_reply(req) < 0)
        return;
    if (api_state_new(req, sizeof(callback_t), callback_free) == NULL)
        return;
    ratelimit_hit(req, "oidc_callback", http_request_remote_addr(req), OIDC_CALLBACKS_PER_MINUTE,
                  60, on_counted);
}
