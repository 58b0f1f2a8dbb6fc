/* api-server: REST + WebSocket API of edgegate. See README.md and ../shared/DESIGN.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/app.h"
#include "api-server/config.h"
#include "api-server/create_admin.h"
#include "api-server/migrate.h"
#include "api-server/routes.h"
#include "api-server/sync_credentials.h"
#include "common/log.h"
#include "common/pgpool.h"

/*
 * Subcommands need only the database: a migration job or an operator at a shell should not
 * have to hold the daemon's other secrets. NULL after explaining what is wrong.
 */
static const char *database_url(void)
{
    const char *url = getenv("EDGEGATE_DATABASE_URL");
    char err[160];
    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "config: EDGEGATE_DATABASE_URL is required\n");
        return NULL;
    }
    if (pgpool_check_conninfo(url, err, sizeof(err)) < 0) {
        fprintf(stderr, "config: EDGEGATE_DATABASE_URL is invalid: %s\n", err);
        return NULL;
    }
    return url;
}

static int cmd_migrate(int argc, char **argv)
{
    const char *dir = api_migrations_dir();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else {
            fprintf(stderr, "usage: api-server migrate [--dir DIR]\n");
            return 2;
        }
    }
    const char *url = database_url();
    return url == NULL ? 2 : api_migrate(url, dir);
}

static int cmd_create_admin(int argc, char **argv)
{
    const char *login = NULL, *name = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--login") == 0 && i + 1 < argc) {
            login = argv[++i];
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else {
            login = NULL;
            break;
        }
    }
    if (login == NULL) {
        fprintf(stderr, "usage: api-server create-admin --login NAME [--name \"Display Name\"]"
                        " < password\n");
        return 2;
    }
    const char *url = database_url();
    return url == NULL ? 2 : api_create_admin(url, login, name);
}

/* Needs the database and Redis, nothing else (EDGEGATE_REDIS_URL has its default). */
static int cmd_sync_credentials(int argc)
{
    if (argc > 2) {
        fprintf(stderr, "usage: api-server sync-credentials\n");
        return 2;
    }
    const char *url = database_url();
    const char *redis_url = getenv("EDGEGATE_REDIS_URL");
    if (redis_url == NULL || redis_url[0] == '\0')
        redis_url = "redis://127.0.0.1:6379/0";
    return url == NULL ? 2 : api_sync_credentials(url, redis_url);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (cmd != NULL && (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
                        strcmp(cmd, "help") == 0)) {
        api_config_help(stdout);
        return 0;
    }
    if (cmd != NULL && strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc, argv);
    if (cmd != NULL && strcmp(cmd, "create-admin") == 0)
        return cmd_create_admin(argc, argv);
    if (cmd != NULL && strcmp(cmd, "sync-credentials") == 0)
        return cmd_sync_credentials(argc);
    /* Not in --help: the route table as the daemon serves it, for the route-walk test. */
    if (cmd != NULL && strcmp(cmd, "routes") == 0) {
        api_routes_print(stdout);
        return 0;
    }
    if (cmd != NULL) {
        fprintf(stderr, "api-server: unknown command '%s' (see --help)\n", cmd);
        return 2;
    }
    api_config_t cfg;
    if (api_config_load(&cfg, stderr) < 0) {
        fprintf(stderr, "api-server: configuration invalid (see --help)\n");
        return 2;
    }
    enum log_level level;
    log_parse_level(cfg.log_level, &level);
    log_init("api-server", level);
    return api_serve(&cfg);
}
