#include "api-server/oidc_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/tls.h"

#define DISCOVERY_PATH "/.well-known/openid-configuration"
/* Real discovery documents are a few KiB; key sets are bounded by jwks.h. */
#define DISCOVERY_MAX_BYTES (64 * 1024)

/* An exchange in flight; every one is on the provider's list so that close can cancel it. */
typedef struct call {
    struct call *next;
    struct call **pprev;
    oidc_provider_t *p;
    http_fetch_t *fetch;
    http_fetch_cb cb;
    void *arg;
} call_t;

/* A caller waiting for the discovery document or for the key set. */
typedef struct waiter {
    struct waiter *next;
    oidc_metadata_cb md_cb;
    oidc_verify_cb verify_cb;
    const jwt_t *token;
    void *arg;
} waiter_t;

struct oidc_provider {
    uv_loop_t *loop;
    const api_config_t *cfg;
    tls_ctx_t *tls;
    char *discovery_url;
    int closing;

    json_t *doc; /* the discovery document; md's strings point into it */
    oidc_metadata_t md;
    uint64_t md_at; /* uv_now() of the fetch; 0: never */
    int md_fetching;
    waiter_t *md_waiters;

    jwks_t *keys;
    uint64_t keys_at;
    uint64_t kid_refresh_at; /* the last fetch caused by an unknown kid; 0: never */
    int keys_fetching;
    waiter_t *key_waiters;

    call_t *calls;
};

static void start_discovery(oidc_provider_t *p);
static void start_keys(oidc_provider_t *p);

/* ---- tracked exchanges ---- */

static void call_unlink(call_t *c)
{
    *c->pprev = c->next;
    if (c->next != NULL)
        c->next->pprev = c->pprev;
}

static void on_call_done(void *arg, int err, const http_fetch_response_t *res, const char *why)
{
    call_t *c = arg;
    call_unlink(c);
    c->cb(c->arg, err, res, why);
    free(c);
}

/* Starts rq with the provider's TLS context and limits; NULL (and why) when it cannot start. */
static call_t *call_start(oidc_provider_t *p, const http_fetch_request_t *rq, http_fetch_cb cb,
                          void *arg, const char **why)
{
    if (p->closing) {
        *why = "shutting down";
        return NULL;
    }
    call_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        *why = "out of memory";
        return NULL;
    }
    http_fetch_request_t full = *rq;
    full.tls = p->tls;
    if (full.timeout_ms == 0)
        full.timeout_ms = OIDC_FETCH_TIMEOUT_MS;
    c->p = p;
    c->cb = cb;
    c->arg = arg;
    c->fetch = http_fetch(p->loop, &full, on_call_done, c, why);
    if (c->fetch == NULL) {
        free(c);
        return NULL;
    }
    c->next = p->calls;
    c->pprev = &p->calls;
    if (p->calls != NULL)
        p->calls->pprev = &c->next;
    p->calls = c;
    return c;
}

int oidc_provider_fetch(oidc_provider_t *p, const http_fetch_request_t *rq, http_fetch_cb cb,
                        void *arg)
{
    const char *why = NULL;
    if (call_start(p, rq, cb, arg, &why) != NULL)
        return 0;
    log_warn("oidc.fetch_refused", "url=%s error=\"%s\"", rq->url, why);
    return -1;
}

/* ---- waiters ---- */

static int wait_on(waiter_t **list, oidc_metadata_cb md_cb, oidc_verify_cb verify_cb,
                   const jwt_t *token, void *arg)
{
    waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    *w = (waiter_t){*list, md_cb, verify_cb, token, arg};
    *list = w;
    return 0;
}

/* Detaches the whole list, so that callbacks may queue new waiters meanwhile. */
static waiter_t *take(waiter_t **list)
{
    waiter_t *w = *list;
    *list = NULL;
    return w;
}

static void answer_metadata_waiters(oidc_provider_t *p, const char *why)
{
    for (waiter_t *w = take(&p->md_waiters), *next; w != NULL; w = next) {
        next = w->next;
        w->md_cb(w->arg, why ? NULL : &p->md, why);
        free(w);
    }
}

static void answer_key_waiters(oidc_provider_t *p, const char *why)
{
    for (waiter_t *w = take(&p->key_waiters), *next; w != NULL; w = next) {
        next = w->next;
        if (why != NULL)
            w->verify_cb(w->arg, OIDC_KEYS_UNAVAILABLE, why);
        else
            w->verify_cb(w->arg, jwt_verify(w->token, p->keys), NULL);
        free(w);
    }
}

/* ---- discovery ---- */

/* An endpoint the provider names: a URL we can fetch, https unless EDGEGATE_DEV=1. */
static int endpoint_ok(const oidc_provider_t *p, const char *url)
{
    http_url_t u;
    const char *why;
    if (url == NULL || http_url_parse(url, strlen(url), &u, &why) < 0)
        return 0;
    return u.tls || p->cfg->dev;
}

static int lists(const json_t *array, const char *value)
{
    size_t i;
    const json_t *v;
    json_array_foreach(array, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
            return 1;
    }
    return 0;
}

/* Checks a discovery document and takes it in; a static reason when it is unusable. */
static const char *take_discovery(oidc_provider_t *p, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return "the discovery document is not a JSON object";
    }
    oidc_metadata_t md = {
        json_string_value(json_object_get(doc, "issuer")),
        json_string_value(json_object_get(doc, "authorization_endpoint")),
        json_string_value(json_object_get(doc, "token_endpoint")),
        json_string_value(json_object_get(doc, "jwks_uri")),
        json_string_value(json_object_get(doc, "end_session_endpoint")),
    };
    const char *why = NULL;
    const json_t *pkce = json_object_get(doc, "code_challenge_methods_supported");
    /* OpenID Connect Discovery §4.3: the issuer must be exactly the one we asked, or a
     * provider could speak for another. */
    if (md.issuer == NULL || strcmp(md.issuer, p->cfg->oidc_issuer) != 0)
        why = "the discovery document names another issuer";
    else if (!endpoint_ok(p, md.authorization_endpoint) || !endpoint_ok(p, md.token_endpoint) ||
             !endpoint_ok(p, md.jwks_uri))
        why = "the discovery document lacks a usable authorization, token or jwks endpoint";
    else if (json_is_array(pkce) && !lists(pkce, "S256"))
        why = "the provider does not support PKCE with S256";
    if (why != NULL) {
        json_decref(doc);
        return why;
    }
    if (md.end_session_endpoint != NULL && !endpoint_ok(p, md.end_session_endpoint))
        md.end_session_endpoint = NULL;
    int new_jwks_uri = p->md.jwks_uri == NULL || strcmp(p->md.jwks_uri, md.jwks_uri) != 0;
    json_decref(p->doc);
    p->doc = doc;
    p->md = md;
    p->md_at = uv_now(p->loop) | 1; /* never 0 */
    if (new_jwks_uri && p->keys != NULL) {
        jwks_free(p->keys); /* another provider's keys, or another set: not to be used */
        p->keys = NULL;
    }
    return NULL;
}

static void on_discovery(void *arg, int err, const http_fetch_response_t *res, const char *why)
{
    oidc_provider_t *p = arg;
    char status[64];
    p->md_fetching = 0;
    if (err == 0 && res->status != 200) {
        snprintf(status, sizeof(status), "the discovery document answered %d", res->status);
        why = status;
    } else if (err == 0) {
        why = take_discovery(p, res->body, res->body_len);
    }
    if (why != NULL) {
        log_warn("oidc.discovery_failed", "url=%s error=\"%s\"%s", p->discovery_url, why,
                 p->md_at ? " note=\"going on with the document in hand\"" : "");
        answer_metadata_waiters(p, p->md_at ? NULL : why);
        return;
    }
    log_info("oidc.discovery", "issuer=%s end_session=%s", p->md.issuer,
             p->md.end_session_endpoint ? "yes" : "no");
    if (p->keys == NULL || uv_now(p->loop) - p->keys_at >= OIDC_METADATA_MAX_AGE_MS)
        start_keys(p);
    answer_metadata_waiters(p, NULL);
}

static void start_discovery(oidc_provider_t *p)
{
    if (p->md_fetching)
        return;
    http_fetch_request_t rq = {.method = "GET", .url = p->discovery_url,
                               .max_response = DISCOVERY_MAX_BYTES};
    http_header_t accept = {SLICE_LIT("Accept"), SLICE_LIT("application/json")};
    rq.headers = &accept;
    rq.nheaders = 1;
    const char *why = NULL;
    if (call_start(p, &rq, on_discovery, p, &why) == NULL) {
        log_warn("oidc.discovery_failed", "url=%s error=\"%s\"", p->discovery_url, why);
        answer_metadata_waiters(p, p->md_at ? NULL : why);
        return;
    }
    p->md_fetching = 1;
}

void oidc_provider_metadata(oidc_provider_t *p, oidc_metadata_cb cb, void *arg)
{
    if (p->md_at != 0) {
        if (uv_now(p->loop) - p->md_at >= OIDC_METADATA_MAX_AGE_MS)
            start_discovery(p); /* meanwhile, the document in hand */
        cb(arg, &p->md, NULL);
        return;
    }
    if (wait_on(&p->md_waiters, cb, NULL, NULL, arg) < 0) {
        cb(arg, NULL, "out of memory");
        return;
    }
    start_discovery(p);
}

const oidc_metadata_t *oidc_provider_cached(const oidc_provider_t *p)
{
    return p != NULL && p->md_at != 0 ? &p->md : NULL;
}

/* ---- keys ---- */

static void on_keys(void *arg, int err, const http_fetch_response_t *res, const char *why)
{
    oidc_provider_t *p = arg;
    char status[64];
    p->keys_fetching = 0;
    jwks_t *keys = NULL;
    if (err == 0 && res->status != 200) {
        snprintf(status, sizeof(status), "the key set answered %d", res->status);
        why = status;
    } else if (err == 0) {
        keys = jwks_parse(res->body, res->body_len, &why);
    }
    if (keys == NULL) {
        log_warn("oidc.jwks_failed", "url=%s error=\"%s\"", p->md.jwks_uri, why);
        answer_key_waiters(p, why);
        return;
    }
    jwks_free(p->keys);
    p->keys = keys;
    p->keys_at = uv_now(p->loop) | 1;
    log_info("oidc.jwks", "url=%s usable_keys=%zu", p->md.jwks_uri, jwks_count(keys));
    answer_key_waiters(p, NULL);
}

static void start_keys(oidc_provider_t *p)
{
    if (p->keys_fetching)
        return;
    http_fetch_request_t rq = {.method = "GET", .url = p->md.jwks_uri,
                               .max_response = JWKS_MAX_BYTES};
    const char *why = NULL;
    if (call_start(p, &rq, on_keys, p, &why) == NULL) {
        log_warn("oidc.jwks_failed", "url=%s error=\"%s\"", p->md.jwks_uri, why);
        answer_key_waiters(p, why);
        return;
    }
    p->keys_fetching = 1;
}

void oidc_provider_verify(oidc_provider_t *p, const jwt_t *t, oidc_verify_cb cb, void *arg)
{
    uint64_t now = uv_now(p->loop);
    int result = JWT_UNKNOWN_KEY;
    if (p->keys != NULL && !p->keys_fetching) {
        result = jwt_verify(t, p->keys);
        if (result != JWT_UNKNOWN_KEY) {
            if (now - p->keys_at >= OIDC_METADATA_MAX_AGE_MS && p->md_at != 0)
                start_keys(p);
            cb(arg, result, NULL);
            return;
        }
        /* An unknown kid: the provider may have rotated its keys. Once per interval. */
        if (p->kid_refresh_at != 0 && now - p->kid_refresh_at < OIDC_JWKS_KID_REFRESH_MS) {
            cb(arg, JWT_UNKNOWN_KEY, "no such key, and the key set was fetched again lately");
            return;
        }
        p->kid_refresh_at = now | 1;
        log_info("oidc.jwks_refresh", "reason=unknown_kid");
    }
    if (p->md_at == 0) {
        cb(arg, OIDC_KEYS_UNAVAILABLE, "the provider's metadata is not known");
        return;
    }
    if (wait_on(&p->key_waiters, NULL, cb, t, arg) < 0) {
        cb(arg, OIDC_KEYS_UNAVAILABLE, "out of memory");
        return;
    }
    start_keys(p);
}

/* ---- life ---- */

oidc_provider_t *oidc_provider_new(uv_loop_t *loop, const api_config_t *cfg, char *err,
                                   size_t err_size)
{
    oidc_provider_t *p = calloc(1, sizeof(*p));
    size_t n = strlen(cfg->oidc_issuer);
    if (p != NULL)
        p->discovery_url = malloc(n + sizeof(DISCOVERY_PATH));
    if (p == NULL || p->discovery_url == NULL) {
        free(p);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    /* OpenID Connect Discovery §4: the issuer without a trailing slash, then the path. */
    while (n > 0 && cfg->oidc_issuer[n - 1] == '/')
        n--;
    snprintf(p->discovery_url, n + sizeof(DISCOVERY_PATH), "%.*s%s", (int)n, cfg->oidc_issuer,
             DISCOVERY_PATH);
    p->loop = loop;
    p->cfg = cfg;
    p->tls = tls_ctx_client(cfg->oidc_ca_file, 0, err, err_size);
    if (p->tls == NULL) {
        free(p->discovery_url);
        free(p);
        return NULL;
    }
    log_info("oidc.enabled", "issuer=%s client_id=%s auth_method=%s redirect_uri=%s%s",
             cfg->oidc_issuer, cfg->oidc_client_id, cfg->oidc_auth_method,
             cfg->oidc_redirect_uri,
             strncmp(cfg->oidc_issuer, "http://", 7) == 0
                 ? " note=\"plain http:// issuer allowed by EDGEGATE_DEV=1; never in production\""
                 : "");
    start_discovery(p);
    return p;
}

void oidc_provider_close(oidc_provider_t *p)
{
    if (p == NULL)
        return;
    p->closing = 1; /* from here on nothing new starts, so the list only shrinks */
    call_t *c = p->calls;
    p->calls = NULL;
    while (c != NULL) {
        call_t *next = c->next;
        http_fetch_cancel(c->fetch);
        c->cb(c->arg, UV_ECANCELED, NULL, "the server is shutting down");
        free(c);
        c = next;
    }
    answer_metadata_waiters(p, "the server is shutting down");
    answer_key_waiters(p, "the server is shutting down");
    json_decref(p->doc);
    jwks_free(p->keys);
    tls_ctx_free(p->tls);
    free(p->discovery_url);
    free(p);
}
