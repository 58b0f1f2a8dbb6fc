/*
 * account: one row of the accounts table as the API sees it, and its JSON views.
 *
 * Every query that loads an account selects ACCOUNT_COLUMNS first, in that order, so
 * account_from_row() reads any of them. An account_t owns its strings: account_clear() frees
 * them. Nothing here talks to the database or the network.
 *
 * Roles: `user` (OIDC owners of devices), `agent` (operators), `admin` (operators who manage
 * operators). The API speaks of one operator role; the table keeps a set so that an OIDC user
 * can also be an operator. Access rules treat admin as a superset of agent.
 */
#ifndef EDGEGATE_API_ACCOUNT_H
#define EDGEGATE_API_ACCOUNT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

enum account_role {
    ACCOUNT_ROLE_USER = 1,
    ACCOUNT_ROLE_AGENT = 2,
    ACCOUNT_ROLE_ADMIN = 4,
};
#define ACCOUNT_OPERATOR_ROLES (ACCOUNT_ROLE_AGENT | ACCOUNT_ROLE_ADMIN)

/* The login pattern of the table's CHECK constraint: [A-Za-z0-9._@-]{1,64}. */
#define ACCOUNT_LOGIN_MAX 64
/* display_name: at most 200 characters in the table; 4 bytes per UTF-8 character at most. */
#define ACCOUNT_NAME_MAX_BYTES 800

#define ACCOUNT_COLUMNS                                                                        \
    "id, login, display_name, email, roles, agent_status, current_load, max_load, "            \
    "mfa_enabled, disabled, session_epoch"
#define ACCOUNT_NCOLUMNS 11

typedef struct account {
    int64_t id;
    char *login; /* NULL for accounts without a local login (OIDC users) */
    char *name;
    char *email; /* NULL when unknown */
    unsigned roles; /* enum account_role bits */
    char status[8]; /* online | busy | offline */
    int current_load;
    int max_load;
    int mfa_enabled;
    int disabled;
    int64_t session_epoch;
} account_t;

/* Reads ACCOUNT_COLUMNS starting at column `first` of row. Returns 0, or -1 (out of memory or
 * an unexpected shape; a is left cleared). */
int account_from_row(account_t *a, const PGresult *res, int row, int first);
void account_clear(account_t *a);
/* A deep copy of src into dst: 0, or -1 on no memory (dst is left cleared). */
int account_copy(account_t *dst, const account_t *src);

/* The helpdesk console's agent object: {user_id, name, role, status, current_load, max_load,
 * mfa_enabled}, plus `disabled` when with_admin_fields. New reference (NULL on no memory). */
json_t *account_agent_json(const account_t *a, int with_admin_fields);
/* /api/auth/me: {id, login, name, email, roles:[...]}. */
json_t *account_profile_json(const account_t *a);

/* "admin", "agent" or "user": the highest role held. */
const char *account_role_name(unsigned roles);
/* "agent" → ACCOUNT_ROLE_AGENT, ...; 0 for anything else. */
unsigned account_role_parse(const char *name);
/* PostgreSQL's text form of a text[] ("{user,agent}") → role bits; unknown names ignored. */
unsigned account_roles_parse_array(const char *text);
/* Role bits → "agent,admin" (the session record's form). out must hold 32 bytes. */
const char *account_roles_text(unsigned roles, char out[32]);

/* Is [s, s+len) a valid login ([A-Za-z0-9._@-]{1,64})? */
int account_login_valid(const char *s, size_t len);
/* A display name: 1 to 200 characters (the table's limit), no control characters. s is valid
 * UTF-8 (jansson checked it), so characters are the bytes that do not continue one. */
int account_name_valid(const char *s, size_t len);
/* online | busy | offline */
int account_status_valid(const char *s);

#endif
