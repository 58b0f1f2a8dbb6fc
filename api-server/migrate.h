/*
 * migrate: `api-server migrate [--dir DIR]`. Applies DIR/NNN_name.sql files in name order,
 * each in its own transaction together with its row in schema_migrations, under a PostgreSQL
 * advisory lock so that two replicas starting at once do not race. Applied files are skipped
 * (re-running is a no-op); a failing file is rolled back whole and named in the error.
 * A command-line tool: blocking libpq is fine here, it never runs on the daemon's loop.
 */
#ifndef EDGEGATE_API_MIGRATE_H
#define EDGEGATE_API_MIGRATE_H

/* Returns the process exit status: 0 applied or nothing to do, 1 failure. */
int api_migrate(const char *database_url, const char *dir);

/* The default migrations directory: $EXE/../sql, else /usr/share/edgegate/sql. */
const char *api_migrations_dir(void);

#endif
