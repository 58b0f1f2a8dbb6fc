#include "api-server/oidc_config.h"

#include <string.h>
#include <unistd.h>

#include "common/config.h"

/* Room for EDGEGATE_PUBLIC_ORIGIN + OIDC_CALLBACK_PATH when the redirect URI is defaulted. */
#define REDIRECT_MAX 512

static const char *const method_names[] = {
    [OIDC_AUTH_NONE] = "none",
    [OIDC_AUTH_CLIENT_SECRET_BASIC] = "client_secret_basic",
    [OIDC_AUTH_CLIENT_SECRET_POST] = "client_secret_post",
};
#define NMETHODS (sizeof(method_names) / sizeof(method_names[0]))

const char *oidc_check_auth_method(const char *v)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(v, method_names[i]) == 0)
            return NULL;
    return "expected none, client_secret_basic or client_secret_post";
}

enum oidc_auth_method oidc_auth_method(const api_config_t *cfg)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (cfg->oidc_auth_method != NULL && strcmp(cfg->oidc_auth_method, method_names[i]) == 0)
            return (enum oidc_auth_method)i;
    return OIDC_AUTH_NONE;
}

const char *oidc_check_scopes(const char *v)
{
    /* RFC 6749 §3.3: scope tokens are printable ASCII without '"' and '\'; space-separated. */
    for (const char *p = v; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            return "scopes are space-separated printable ASCII words";
    size_t n = strlen("openid");
    for (const char *p = v; (p = strstr(p, "openid")) != NULL; p += n)
        if ((p == v || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return NULL;
    return "must include openid";
}

const char *oidc_check_ca_file(const char *v)
{
    return access(v, R_OK) == 0 ? NULL : "cannot read the file";
}

/* Does url start with origin followed by '/'? */
static int under_origin(const char *url, const char *origin)
{
    size_t n = strlen(origin);
    return strncmp(url, origin, n) == 0 && url[n] == '/';
}

int oidc_config_finish(api_config_t *cfg, FILE *err)
{
    static char redirect[REDIRECT_MAX];
    if (cfg->oidc_issuer == NULL)
        return 0;
    int bad = 0;
    if (strncmp(cfg->oidc_issuer, "https://", 8) != 0 && !cfg->dev) {
        fprintf(err, "config: EDGEGATE_OIDC_ISSUER must be an https:// URL (http:// only with "
                     "EDGEGATE_DEV=1)\n");
        bad = 1;
    }
    if (cfg->oidc_client_id == NULL) {
        fprintf(err, "config: EDGEGATE_OIDC_CLIENT_ID is required with EDGEGATE_OIDC_ISSUER\n");
        bad = 1;
    }
    if (cfg->oidc_auth_method == NULL)
        cfg->oidc_auth_method = method_names[cfg->oidc_client_secret ? OIDC_AUTH_CLIENT_SECRET_BASIC
                                                                    : OIDC_AUTH_NONE];
    int public_client = oidc_auth_method(cfg) == OIDC_AUTH_NONE;
    if (public_client && cfg->oidc_client_secret != NULL) {
        fprintf(err, "config: EDGEGATE_OIDC_CLIENT_SECRET is set but EDGEGATE_OIDC_AUTH_METHOD is "
                     "none (a public client has no secret)\n");
        bad = 1;
    } else if (!public_client && cfg->oidc_client_secret == NULL) {
        fprintf(err, "config: EDGEGATE_OIDC_AUTH_METHOD=%s needs EDGEGATE_OIDC_CLIENT_SECRET\n",
                cfg->oidc_auth_method);
        bad = 1;
    }
    if (cfg->oidc_redirect_uri == NULL) {
        if (strlen(cfg->public_origin) + strlen(OIDC_CALLBACK_PATH) >= sizeof(redirect)) {
            fprintf(err, "config: EDGEGATE_PUBLIC_ORIGIN is too long to derive "
                         "EDGEGATE_OIDC_REDIRECT_URI from it\n");
            return -1;
        }
        snprintf(redirect, sizeof(redirect), "%s%s", cfg->public_origin, OIDC_CALLBACK_PATH);
        cfg->oidc_redirect_uri = redirect;
    } else if (!under_origin(cfg->oidc_redirect_uri, cfg->public_origin) ||
               strchr(cfg->oidc_redirect_uri, '?') || strchr(cfg->oidc_redirect_uri, '#')) {
        fprintf(err, "config: EDGEGATE_OIDC_REDIRECT_URI must be a path under "
                     "EDGEGATE_PUBLIC_ORIGIN (%s/...), without query or fragment\n",
                cfg->public_origin);
        bad = 1;
    }
    return bad ? -1 : 0;
}

const char *oidc_callback_path(const api_config_t *cfg)
{
    /* oidc_config_finish() made sure the redirect URI starts with the public origin. */
    return cfg->oidc_redirect_uri + strlen(cfg->public_origin);
}
