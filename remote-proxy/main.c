/* remote-proxy: edge-agent tunnels and the internal forwarding API. See README.md. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "remote-proxy/app.h"
#include "remote-proxy/config.h"

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        proxy_config_help(stdout);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "remote-proxy: unknown argument '%s' (see --help)\n", argv[1]);
        return 2;
    }
    proxy_config_t cfg;
    if (proxy_config_load(&cfg, stderr) < 0) {
        fprintf(stderr, "remote-proxy: configuration invalid (see --help)\n");
        return 2;
    }
    enum log_level level;
    log_parse_level(cfg.log_level, &level);
    log_init("remote-proxy", level);
    return proxy_serve(&cfg);
}
