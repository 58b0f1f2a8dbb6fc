#include "remote-proxy/config.h"

#include <string.h>

#include "common/config.h"
#include "common/redis.h"

/* The Redis module's own parser, so that what passes here is what it connects to. */
static const char *check_redis_url(const char *v)
{
    return redis_url_error(v);
}

static const cfg_var_t vars[] = {
    {"EDGEGATE_REDIS_URL", "redis://127.0.0.1:6379/0", CFG_SECRET, check_redis_url,
     "Redis: redis://[:password@]host:port/db or unix:///path"},
    {"EDGEGATE_INTERNAL_TOKEN", NULL, CFG_REQUIRED | CFG_SECRET, cfg_check_secret32,
     "shared secret every internal API call must carry (>= 32 bytes)"},
    {"EDGEGATE_TUNNEL_LISTEN", "0.0.0.0:3800", 0, cfg_check_listen,
     "address edge agents connect to"},
    {"EDGEGATE_INTERNAL_LISTEN", "0.0.0.0:3801", 0, cfg_check_listen,
     "address of the internal API (never expose it publicly)"},
    {"EDGEGATE_INTERNAL_URL", "http://127.0.0.1:3801", 0, cfg_check_http_url,
     "how api-server reaches this replica (written to tunnel:route:*)"},
    {"EDGEGATE_TLS_CERT", NULL, CFG_OPTIONAL, NULL,
     "PEM certificate chain for wss:// on the tunnel port (plain ws:// when unset)"},
    {"EDGEGATE_TLS_KEY", NULL, CFG_OPTIONAL | CFG_SECRET, NULL,
     "PEM private key for EDGEGATE_TLS_CERT"},
    {"EDGEGATE_TUNNEL_KEEPALIVE", "30", 0, cfg_check_positive_int,
     "seconds between yamux pings; a tunnel silent for two of them is closed"},
    {"EDGEGATE_DEV", "0", 0, cfg_check_bool, "1 marks a development set-up in the log"},
    {"EDGEGATE_LOG_LEVEL", "info", 0, cfg_check_log_level, "debug, info, warn or error"},
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

int proxy_config_load(proxy_config_t *cfg, FILE *err)
{
    const char *v[NVARS];
    if (cfg_load(vars, NVARS, v, err) < 0)
        return -1;
    cfg->redis_url = cfg_get(vars, NVARS, v, "EDGEGATE_REDIS_URL");
    cfg->internal_token = cfg_get(vars, NVARS, v, "EDGEGATE_INTERNAL_TOKEN");
    cfg->tunnel_listen = cfg_get(vars, NVARS, v, "EDGEGATE_TUNNEL_LISTEN");
    cfg->internal_listen = cfg_get(vars, NVARS, v, "EDGEGATE_INTERNAL_LISTEN");
    cfg->internal_url = cfg_get(vars, NVARS, v, "EDGEGATE_INTERNAL_URL");
    cfg->tls_cert = cfg_get(vars, NVARS, v, "EDGEGATE_TLS_CERT");
    cfg->tls_key = cfg_get(vars, NVARS, v, "EDGEGATE_TLS_KEY");
    cfg->keepalive_ms = 1000u * (unsigned)cfg_int(cfg_get(vars, NVARS, v, "EDGEGATE_TUNNEL_KEEPALIVE"));
    cfg->dev = strcmp(cfg_get(vars, NVARS, v, "EDGEGATE_DEV"), "1") == 0;
    cfg->log_level = cfg_get(vars, NVARS, v, "EDGEGATE_LOG_LEVEL");
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        fprintf(err, "config: EDGEGATE_TLS_CERT and EDGEGATE_TLS_KEY go together: set both or "
                     "neither\n");
        return -1;
    }
    return 0;
}

void proxy_config_help(FILE *out)
{
    cfg_print_help(out,
                   "usage: remote-proxy\n\n"
                   "Serves edge-agent tunnels (WebSocket + yamux) and the internal API.",
                   vars, NVARS);
}
