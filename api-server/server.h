/*
 * server: the servers table (sql/004_devices.sql) as the API sees it: monitored servers that
 * report heartbeats, registered by a signed-in user (servers.c) and authenticated on each
 * heartbeat (heartbeat.c) by their registration challenge or their API key.
 *
 * Both secrets are shown once and stored as SHA-256 hex only. A challenge is a random uuid
 * valid for SERVER_CHALLENGE_SECONDS, hashed in its canonical lower-case form; the API key is
 * 256 random bits in base64url, hashed as sent.
 */
#ifndef EDGEGATE_API_SERVER_H
#define EDGEGATE_API_SERVER_H

#include <jansson.h>
#include <libpq-fe.h>

#include "api-server/sql_time.h"

#define SERVER_CHALLENGE_SECONDS 600

/*
 * Every query that shows servers selects these first, in this order, from servers AS s; the
 * stale flag needs the silence threshold in seconds as parameter $N (SERVER_COLUMNS_STALE).
 */
/* clang-format off */
#define SERVER_COLUMNS_STALE(param)                                                            \
    "s.id, s.owner_id, s.identifier, s.name, s.enabled, "                                      \
    SQL_ISO8601("s.created_at") ", " SQL_ISO8601("s.last_seen_at") ", "                        \
    "coalesce(s.last_seen_at, s.created_at) < now() - make_interval(secs => " param "::int), " \
    "s.last_auth, s.openclaw_version, s.agents, s.cpu_pct, s.mem_pct, s.disk_pct, s.swap_pct, " \
    SQL_ISO8601("s.challenge_expires_at") ", " SQL_ISO8601("s.challenge_first_used_at")
/* clang-format on */
#define SERVER_NCOLUMNS 17

/* A row of SERVER_COLUMNS_STALE → {server_id, owner_id, identifier, name, enabled, created_at,
 * last_seen_at, stale, last_auth, state{openclaw_version, agents, cpu_pct, ...} or null,
 * challenge_expires_at, challenge_first_used_at}. New reference, NULL on no memory. */
json_t *server_json(const PGresult *res, int row);

#endif
