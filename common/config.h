/*
 * config: environment variables, declared in one table per daemon, validated at start.
 *
 * Each daemon lists its variables (name, default, help, checker). cfg_load() reads them all,
 * runs every checker and reports every bad or missing variable by name on stderr, so a
 * misconfigured deployment fails at once with a message that says what to fix. --help prints
 * the same table (`cfg_print_help`), which is what the docs and deploy checks compare against.
 * Secret values set in the environment are never printed; defaults are in the source, so
 * --help shows them.
 */
#ifndef EDGEGATE_CONFIG_H
#define EDGEGATE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* A checker returns NULL when value is acceptable, else a short reason. */
typedef const char *(*cfg_check_fn)(const char *value);

enum cfg_flags {
    CFG_REQUIRED = 1, /* no default: must be set */
    CFG_SECRET = 2,   /* never echoed */
    CFG_OPTIONAL = 4, /* may stay unset (value NULL) */
};

typedef struct cfg_var {
    const char *name;
    const char *default_value; /* NULL with CFG_REQUIRED or CFG_OPTIONAL */
    unsigned flags;
    cfg_check_fn check;        /* NULL: any non-empty value */
    const char *help;
} cfg_var_t;

/*
 * Fills values[i] for vars[i] (pointers into the environment or the defaults; valid for the
 * process lifetime). Returns 0, or -1 after printing one line per problem to err.
 */
int cfg_load(const cfg_var_t *vars, size_t n, const char **values, FILE *err);
void cfg_print_help(FILE *out, const char *usage, const cfg_var_t *vars, size_t n);
/* The value loaded for name (NULL when unset or unknown). */
const char *cfg_get(const cfg_var_t *vars, size_t n, const char **values, const char *name);

/* Checkers shared by both daemons. */
const char *cfg_check_listen(const char *v);       /* host:port, [v6]:port */
const char *cfg_check_http_url(const char *v);     /* http:// or https:// base URL */
const char *cfg_check_bool(const char *v);         /* 0 or 1 */
const char *cfg_check_log_level(const char *v);    /* debug|info|warn|error */
const char *cfg_check_secret32(const char *v);     /* at least 32 bytes */
const char *cfg_check_key32_b64(const char *v);    /* base64 of exactly 32 bytes */
const char *cfg_check_positive_int(const char *v); /* 1 .. 2^31-1 */

/* Parses a checked positive integer value. */
int cfg_int(const char *v);

#endif
