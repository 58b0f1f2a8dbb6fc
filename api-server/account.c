#include "api-server/account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} role_names[] = {
    {"user", ACCOUNT_ROLE_USER},
    {"agent", ACCOUNT_ROLE_AGENT},
    {"admin", ACCOUNT_ROLE_ADMIN},
};
#define NROLES (sizeof(role_names) / sizeof(role_names[0]))

static char *dup_or_null(const PGresult *res, int row, int col, int *oom)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(res, row, col));
    if (s == NULL)
        *oom = 1;
    return s;
}

int account_from_row(account_t *a, const PGresult *res, int row, int first)
{
    memset(a, 0, sizeof(*a));
    if (PQnfields(res) < first + ACCOUNT_NCOLUMNS || row >= PQntuples(res))
        return -1;
    int oom = 0, c = first;
    a->id = strtoll(PQgetvalue(res, row, c++), NULL, 10);
    a->login = dup_or_null(res, row, c++, &oom);
    a->name = dup_or_null(res, row, c++, &oom);
    a->email = dup_or_null(res, row, c++, &oom);
    a->roles = account_roles_parse_array(PQgetvalue(res, row, c++));
    snprintf(a->status, sizeof(a->status), "%s", PQgetvalue(res, row, c++));
    a->current_load = atoi(PQgetvalue(res, row, c++));
    a->max_load = atoi(PQgetvalue(res, row, c++));
    a->mfa_enabled = PQgetvalue(res, row, c++)[0] == 't';
    a->disabled = PQgetvalue(res, row, c++)[0] == 't';
    a->session_epoch = strtoll(PQgetvalue(res, row, c++), NULL, 10);
    if (oom || a->name == NULL) {
        account_clear(a);
        return -1;
    }
    return 0;
}

void account_clear(account_t *a)
{
    free(a->login);
    free(a->name);
    free(a->email);
    memset(a, 0, sizeof(*a));
}

static int dup_field(char **dst, const char *src)
{
    *dst = src != NULL ? strdup(src) : NULL;
    return src != NULL && *dst == NULL ? -1 : 0;
}

int account_copy(account_t *dst, const account_t *src)
{
    *dst = *src;
    dst->login = dst->name = dst->email = NULL;
    if (dup_field(&dst->login, src->login) < 0 || dup_field(&dst->name, src->name) < 0 ||
        dup_field(&dst->email, src->email) < 0) {
        account_clear(dst);
        return -1;
    }
    return 0;
}

json_t *account_agent_json(const account_t *a, int with_admin_fields)
{
    json_t *o = json_pack("{s:s?,s:s,s:s,s:s,s:i,s:i,s:b}", "user_id", a->login, "name", a->name,
                          "role", account_role_name(a->roles), "status", a->status,
                          "current_load", a->current_load, "max_load", a->max_load,
                          "mfa_enabled", a->mfa_enabled);
    if (o != NULL && with_admin_fields)
        json_object_set_new(o, "disabled", json_boolean(a->disabled));
    return o;
}

json_t *account_profile_json(const account_t *a)
{
    json_t *roles = json_array();
    for (size_t i = 0; roles != NULL && i < NROLES; i++)
        if (a->roles & role_names[i].bit)
            json_array_append_new(roles, json_string(role_names[i].name));
    return json_pack("{s:I,s:s?,s:s,s:s?,s:o?}", "id", (json_int_t)a->id, "login", a->login,
                     "name", a->name, "email", a->email, "roles", roles);
}

const char *account_role_name(unsigned roles)
{
    if (roles & ACCOUNT_ROLE_ADMIN)
        return "admin";
    if (roles & ACCOUNT_ROLE_AGENT)
        return "agent";
    return "user";
}

unsigned account_role_parse(const char *name)
{
    for (size_t i = 0; name != NULL && i < NROLES; i++)
        if (strcmp(name, role_names[i].name) == 0)
            return role_names[i].bit;
    return 0;
}

unsigned account_roles_parse_array(const char *text)
{
    /* The table's CHECK constraint allows only the three plain words, so PostgreSQL never
     * quotes an element: "{user,agent}". */
    unsigned roles = 0;
    const char *p = text;
    if (*p == '{')
        p++;
    while (*p != '\0' && *p != '}') {
        size_t n = strcspn(p, ",}");
        for (size_t i = 0; i < NROLES; i++)
            if (strlen(role_names[i].name) == n && strncmp(p, role_names[i].name, n) == 0)
                roles |= role_names[i].bit;
        p += n;
        if (*p == ',')
            p++;
    }
    return roles;
}

const char *account_roles_text(unsigned roles, char out[32])
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NROLES; i++)
        if (roles & role_names[i].bit)
            used += (size_t)snprintf(out + used, 32 - used, "%s%s", used ? "," : "",
                                     role_names[i].name);
    return out;
}

int account_login_valid(const char *s, size_t len)
{
    if (len == 0 || len > ACCOUNT_LOGIN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '@' || ch == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int account_name_valid(const char *s, size_t len)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
        if ((ch & 0xc0) != 0x80)
            chars++;
    }
    return chars >= 1 && chars <= 200;
}

int account_status_valid(const char *s)
{
    return s != NULL &&
           (strcmp(s, "online") == 0 || strcmp(s, "busy") == 0 || strcmp(s, "offline") == 0);
}
