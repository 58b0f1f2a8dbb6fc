/*
 * create-admin: `api-server create-admin --login NAME [--name "Display Name"]`, the way to the
 * first admin of a fresh install, and back in when every admin is locked out.
 *
 * Reads the password as one line from stdin (echo off when stdin is a terminal) and checks the
 * password policy. Then, in one statement: creates the account as admin, or, when the login
 * exists, makes it an admin, sets the password, re-enables it and ends its sessions (session
 * epoch); and writes the audit row. Needs only EDGEGATE_DATABASE_URL. A command-line tool:
 * blocking libpq and hashing on the calling thread are fine here.
 */
#ifndef EDGEGATE_API_CREATE_ADMIN_H
#define EDGEGATE_API_CREATE_ADMIN_H

/* Returns the exit status: 0 done, 1 failure, 2 bad arguments or password. */
int api_create_admin(const char *database_url, const char *login, const char *name);

#endif
