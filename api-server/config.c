#include "api-server/config.h"

#include <string.h>

#include "api-server/oidc_config.h"
#include "api-server/mfa_keys.h"
#include "common/config.h"
#include "common/pgpool.h"
#include "common/redis.h"

static const char *check_database_url(const char *v)
{
    char err[160];
    return pgpool_check_conninfo(v, err, sizeof(err)) == 0
               ? NULL
               : "expected a libpq URI (postgresql://user@host:port/db) or key=value string";
}

static const char *check_origin(const char *v)
{
    const char *why = cfg_check_http_url(v);
    if (why != NULL)
        return why;
    const char *host = strstr(v, "://") + 3;
    if (strchr(host, '/') != NULL)
        return "an origin is scheme://host[:port] with no path (no trailing slash)";
    return NULL;
}

/* The Redis module's own parser, so that what passes here is what it connects to. */
static const char *check_redis_url(const char *v)
{
    return redis_url_error(v);
}

/* Beyond an hour a dead console would hold its socket for most of a working day. */
static const char *check_ws_keepalive(const char *v)
{
    const char *why = cfg_check_positive_int(v);
    if (why == NULL && cfg_int(v) > 3600)
        why = "at most 3600 seconds";
    return why;
}

static const cfg_var_t vars[] = {
    {"EDGEGATE_DATABASE_URL", NULL, CFG_REQUIRED | CFG_SECRET, check_database_url,
     "PostgreSQL connection (libpq URI or conninfo)"},
    {"EDGEGATE_REDIS_URL", "redis://127.0.0.1:6379/0", CFG_SECRET, check_redis_url,
     "Redis: redis://[:password@]host:port/db or unix:///path"},
    {"EDGEGATE_INTERNAL_TOKEN", NULL, CFG_REQUIRED | CFG_SECRET, cfg_check_secret32,
     "shared secret for remote-proxy's internal API and /metrics (>= 32 bytes)"},
    {"EDGEGATE_API_LISTEN", "0.0.0.0:3721", 0, cfg_check_listen, "address of the API"},
    {"EDGEGATE_INTERNAL_URL", "http://127.0.0.1:3801", 0, cfg_check_http_url,
     "remote-proxy internal API when no tunnel route names one"},
    {"EDGEGATE_PUBLIC_ORIGIN", NULL, CFG_REQUIRED, check_origin,
     "public origin of the API (cookies, CSRF check, OIDC redirect), e.g. https://edge.example.com"},
    {"EDGEGATE_SESSION_SECRET", NULL, CFG_REQUIRED | CFG_SECRET, cfg_check_secret32,
     "HMAC key of session cookies (>= 32 bytes)"},
    {"EDGEGATE_MFA_KEY", NULL, CFG_REQUIRED | CFG_SECRET, cfg_check_key32_b64,
     "AES-256-GCM key of TOTP secrets at rest (base64 of 32 bytes)"},
    {"EDGEGATE_MFA_RETIRED_KEYS", NULL, CFG_OPTIONAL | CFG_SECRET, mfa_keys_list_error,
     "earlier EDGEGATE_MFA_KEY values, comma-separated: read old secrets, re-encrypted on use"},
    {"EDGEGATE_MFA_REQUIRE_ADMIN", "1", 0, cfg_check_bool,
     "1: admin routes answer 403 until the admin has enabled MFA"},
    {"EDGEGATE_DEV", "0", 0, cfg_check_bool,
     "1 allows non-Secure cookies and http:// issuers (development only)"},
    {"EDGEGATE_LOG_LEVEL", "info", 0, cfg_check_log_level, "debug, info, warn or error"},
    {"EDGEGATE_OIDC_ISSUER", NULL, CFG_OPTIONAL, cfg_check_http_url,
     "OpenID provider's issuer URL; unset: OIDC sign-in off"},
    {"EDGEGATE_OIDC_CLIENT_ID", NULL, CFG_OPTIONAL, NULL, "client id registered at the provider"},
    {"EDGEGATE_OIDC_CLIENT_SECRET", NULL, CFG_OPTIONAL | CFG_SECRET, NULL,
     "client secret of a confidential client; unset: public client (PKCE only)"},
    {"EDGEGATE_OIDC_AUTH_METHOD", NULL, CFG_OPTIONAL, oidc_check_auth_method,
     "none, client_secret_basic or client_secret_post (default: basic with a secret, else none)"},
    {"EDGEGATE_OIDC_REDIRECT_URI", NULL, CFG_OPTIONAL, cfg_check_http_url,
     "registered redirect URI (default: EDGEGATE_PUBLIC_ORIGIN/api/auth/callback)"},
    {"EDGEGATE_OIDC_SCOPES", OIDC_DEFAULT_SCOPES, 0, oidc_check_scopes,
     "scopes asked for; must include openid"},
    {"EDGEGATE_OIDC_CA_FILE", NULL, CFG_OPTIONAL, oidc_check_ca_file,
     "PEM CA certificates for the provider's TLS (default: the system bundle)"},
    {"EDGEGATE_OIDC_POST_LOGOUT_REDIRECT_URI", NULL, CFG_OPTIONAL, cfg_check_http_url,
     "where the provider sends the browser after logout (registered at the provider)"},
    {"EDGEGATE_HEARTBEAT_STALE_SECONDS", "300", 0, cfg_check_positive_int,
     "a monitored server silent this long is listed as stale"},
    {"EDGEGATE_WS_KEEPALIVE", "30", 0, check_ws_keepalive,
     "seconds between pings and session re-checks on /ws sockets (a socket silent through a "
     "ping is closed)"},
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

int api_config_load(api_config_t *cfg, FILE *err)
{
    const char *v[NVARS];
    if (cfg_load(vars, NVARS, v, err) < 0)
        return -1;
    cfg->database_url = cfg_get(vars, NVARS, v, "EDGEGATE_DATABASE_URL");
    cfg->redis_url = cfg_get(vars, NVARS, v, "EDGEGATE_REDIS_URL");
    cfg->internal_token = cfg_get(vars, NVARS, v, "EDGEGATE_INTERNAL_TOKEN");
    cfg->listen = cfg_get(vars, NVARS, v, "EDGEGATE_API_LISTEN");
    cfg->internal_url = cfg_get(vars, NVARS, v, "EDGEGATE_INTERNAL_URL");
    cfg->public_origin = cfg_get(vars, NVARS, v, "EDGEGATE_PUBLIC_ORIGIN");
    cfg->session_secret = cfg_get(vars, NVARS, v, "EDGEGATE_SESSION_SECRET");
    cfg->mfa_key_b64 = cfg_get(vars, NVARS, v, "EDGEGATE_MFA_KEY");
    cfg->mfa_retired_keys_b64 = cfg_get(vars, NVARS, v, "EDGEGATE_MFA_RETIRED_KEYS");
    cfg->mfa_require_admin =
        strcmp(cfg_get(vars, NVARS, v, "EDGEGATE_MFA_REQUIRE_ADMIN"), "1") == 0;
    cfg->dev = strcmp(cfg_get(vars, NVARS, v, "EDGEGATE_DEV"), "1") == 0;
    cfg->log_level = cfg_get(vars, NVARS, v, "EDGEGATE_LOG_LEVEL");
    cfg->oidc_issuer = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_ISSUER");
    cfg->oidc_client_id = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_CLIENT_ID");
    cfg->oidc_client_secret = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_CLIENT_SECRET");
    cfg->oidc_auth_method = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_AUTH_METHOD");
    cfg->oidc_redirect_uri = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_REDIRECT_URI");
    cfg->oidc_scopes = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_SCOPES");
    cfg->oidc_ca_file = cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_CA_FILE");
    cfg->oidc_post_logout_redirect_uri =
        cfg_get(vars, NVARS, v, "EDGEGATE_OIDC_POST_LOGOUT_REDIRECT_URI");
    cfg->heartbeat_stale_s = cfg_int(cfg_get(vars, NVARS, v, "EDGEGATE_HEARTBEAT_STALE_SECONDS"));
    cfg->ws_keepalive_ms =
        1000u * (unsigned)cfg_int(cfg_get(vars, NVARS, v, "EDGEGATE_WS_KEEPALIVE"));
    return oidc_config_finish(cfg, err);
}

void api_config_help(FILE *out)
{
    cfg_print_help(out,
                   "usage: api-server [COMMAND]\n\n"
                   "Commands:\n"
                   "  (none)                  serve the API\n"
                   "  migrate [--dir DIR]     apply sql/NNN_*.sql migrations in order, once\n"
                   "  create-admin --login NAME [--name \"Display Name\"]\n"
                   "                          create (or restore) an admin; password on stdin\n"
                   "  sync-credentials        rewrite Redis's device credentials from PostgreSQL\n"
                   "                          (after Redis lost its data)\n"
                   "  --help                  this text",
                   vars, NVARS);
}
