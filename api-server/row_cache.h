/*
 * row_cache: the PostgreSQL rows every signed-in request reads (its account; for the front door,
 * the device's owner), kept in memory between requests so the hot path makes no query.
 *
 * Why it cannot serve a stale row for longer than a notification takes to arrive:
 *   - PostgreSQL tells us. Triggers (sql/005_row_cache_notify.sql) NOTIFY on channel
 *     edgegate_cache with "accounts:<id>" / "devices:<uuid>" after every change of a cached
 *     column, every delete, and "*" after a truncate, in the changing transaction, so every
 *     writer is covered (this replica, another one, an operator in psql). The pool's LISTEN
 *     connection (pgpool.h) hands them to row_cache_on_listen, which drops that entry.
 *   - A read that raced a change is not stored. row_cache_ticket() is taken before the query;
 *     every notification advances the generation, so an answer computed before a change whose
 *     notification has since arrived carries an old ticket and row_cache_put_*() ignores it.
 *   - While the LISTEN connection is down (not yet up, lost), changes could go unheard: the
 *     cache is emptied and neither answers nor stores until LISTEN is in force again.
 *   - As a backstop, an entry lives at most ROW_CACHE_TTL_MS, and the table holds at most
 *     ROW_CACHE_MAX_ENTRIES (when full it is emptied: memory stays bounded, correctness never
 *     depends on what is kept).
 * Sessions stay in Redis and are read on every request: logout and expiry take effect at once.
 *
 * /metrics: edgegate_row_cache_{hits,misses,invalidations}_total{kind="account"|"device"} and
 * edgegate_row_cache_trusted (1 while LISTEN is in force).
 *
 * One loop, one thread. The cache belongs to the app (api_app_t.rows); every function takes a
 * NULL cache as "nothing cached" (after shutdown freed it).
 */
#ifndef EDGEGATE_API_ROW_CACHE_H
#define EDGEGATE_API_ROW_CACHE_H

#include <stdint.h>
#include <uv.h>

#include "api-server/account.h"
#include "common/pgpool.h"

#define ROW_CACHE_CHANNEL "edgegate_cache"
#define ROW_CACHE_TTL_MS 10000
#define ROW_CACHE_MAX_ENTRIES 20000

typedef struct row_cache row_cache_t;

row_cache_t *row_cache_new(uv_loop_t *loop);
void row_cache_free(row_cache_t *c);

/* For pgpool_options.on_listen (listen_arg = the cache). */
void row_cache_on_listen(void *cache, enum pgpool_listen_event event, const char *payload);

/* Taken just before the query whose answer may be stored. */
uint64_t row_cache_ticket(const row_cache_t *c);

/* 1 and a copy in *out (the caller account_clear()s it) when the account is cached; 0 when not
 * (or out of memory): read it from PostgreSQL. */
int row_cache_get_account(row_cache_t *c, int64_t id, account_t *out);
/* Stores a copy of a, unless the ticket is stale or the cache is not trusted right now. */
void row_cache_put_account(row_cache_t *c, uint64_t ticket, const account_t *a);

/* The owner of a device that is not revoked: 1 and *owner when cached, else 0. device_id is the
 * canonical text form (uuid_text.h). */
int row_cache_get_device_owner(row_cache_t *c, const char *device_id, int64_t *owner);
void row_cache_put_device_owner(row_cache_t *c, uint64_t ticket, const char *device_id,
                                int64_t owner);

#endif
