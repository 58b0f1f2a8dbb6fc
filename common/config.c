#include "common/config.h"

#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/log.h"

int cfg_load(const cfg_var_t *vars, size_t n, const char **values, FILE *err)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const cfg_var_t *v = &vars[i];
        const char *val = getenv(v->name);
        if (val != NULL && val[0] == '\0')
            val = NULL; /* an empty variable is as good as unset */
        if (val == NULL)
            val = v->default_value;
        values[i] = val;
        if (val == NULL) {
            if (v->flags & CFG_REQUIRED) {
                fprintf(err, "config: %s is required: %s\n", v->name, v->help);
                bad = 1;
            }
            continue;
        }
        const char *why = v->check ? v->check(val) : NULL;
        if (why != NULL) {
            if (v->flags & CFG_SECRET)
                fprintf(err, "config: %s is invalid: %s\n", v->name, why);
            else
                fprintf(err, "config: %s=\"%s\" is invalid: %s\n", v->name, val, why);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

void cfg_print_help(FILE *out, const char *usage, const cfg_var_t *vars, size_t n)
{
    fprintf(out, "%s\n\nEnvironment variables:\n", usage);
    for (size_t i = 0; i < n; i++) {
        const cfg_var_t *v = &vars[i];
        /* A default is in the source for all to read; only values set in the environment
         * are secret. */
        const char *def = v->flags & CFG_REQUIRED   ? "(required)"
                          : v->default_value == NULL ? "(unset)"
                                                     : v->default_value;
        fprintf(out, "  %-34s %-26s %s\n", v->name, def, v->help);
    }
}

const char *cfg_get(const cfg_var_t *vars, size_t n, const char **values, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(vars[i].name, name) == 0)
            return values[i];
    }
    return NULL;
}

const char *cfg_check_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v)
        return "expected host:port, e.g. 0.0.0.0:3721 or [::]:3721";
    if (v[0] == '[' && colon[-1] != ']')
        return "an IPv6 address goes in brackets, e.g. [::]:3721";
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return "the port must be a number from 0 to 65535";
    return NULL;
}

const char *cfg_check_http_url(const char *v)
{
    const char *rest;
    if (strncmp(v, "http://", 7) == 0)
        rest = v + 7;
    else if (strncmp(v, "https://", 8) == 0)
        rest = v + 8;
    else
        return "expected an http:// or https:// URL";
    if (rest[0] == '\0' || rest[0] == '/')
        return "the URL has no host";
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "the URL contains spaces or control characters";
    }
    return NULL;
}

const char *cfg_check_bool(const char *v)
{
    return (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) ? NULL : "expected 0 or 1";
}

const char *cfg_check_log_level(const char *v)
{
    enum log_level l;
    return log_parse_level(v, &l) == 0 ? NULL : "expected debug, info, warn or error";
}

const char *cfg_check_secret32(const char *v)
{
    return strlen(v) >= 32 ? NULL : "must be at least 32 bytes (e.g. openssl rand -base64 48)";
}

const char *cfg_check_key32_b64(const char *v)
{
    uint8_t key[48];
    long n = crypto_b64_decode(v, strlen(v), key, sizeof(key));
    if (n != 32)
        return "must be the base64 of exactly 32 random bytes (e.g. openssl rand -base64 32)";
    return NULL;
}

const char *cfg_check_positive_int(const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || n < 1 || n > 2147483647L)
        return "expected a positive whole number";
    return NULL;
}

int cfg_int(const char *v)
{
    return (int)strtol(v, NULL, 10);
}
