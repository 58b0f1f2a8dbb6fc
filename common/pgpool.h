/*
 * pgpool: a small pool of asynchronous PostgreSQL connections on a libuv loop.
 *
 * Nothing here blocks the loop: host names are resolved with uv_getaddrinfo and handed to
 * libpq as hostaddr, connections are made with PQconnectStartParams / PQconnectPoll, queries
 * are sent with PQsendQueryParams on non-blocking connections, and every socket is driven by a
 * uv_poll handle. A query goes to an idle connection, or waits in a bounded FIFO queue.
 *
 * Callback contract (pgpool_cb): for every accepted query the callback runs exactly once, and
 * never from inside pgpool_query() itself.
 *   - res != NULL, error == NULL: the server answered. A SQL error is a result with status
 *     PGRES_FATAL_ERROR; pgpool_sqlstate() reads its code (e.g. "23505", unique violation).
 *     The pool owns res and PQclear()s it when the callback returns: copy what you keep.
 *   - res == NULL, error != NULL: no answer. error is a short static string, one of the
 *     pgpool_err_* texts below; callers answer 503 (or 500) and log it.
 * The callback may call pgpool_query() and pgpool_close() on the same pool.
 *
 * Availability: when no connection is up (server down, network gone), queries fail at once with
 * pgpool_err_unavailable instead of waiting, so HTTP callers answer 503 quickly. The one
 * exception is start-up: until the first connection attempts have finished, queries queue.
 * Broken connections (server restart, network error, query timeout) are finished and reconnect
 * in the background with exponential backoff (100 ms doubling to 5 s, jittered), forever.
 *
 * Timeouts: query_timeout_ms is a deadline from pgpool_query() to the answer, queue time
 * included. A query that expires in the queue just fails; one that expires on a connection
 * fails and that connection is dropped and reconnected (PQcancel would block the loop). The
 * server-side statement_timeout is set at connect, so the server normally gives up first and
 * answers SQLSTATE 57014 on a connection that stays usable.
 *
 * Connection settings: the conninfo as given (URI or key=value, PG* environment variables as
 * libpq reads them), plus "-c statement_timeout=N" appended to options, and, unless set,
 * fallback_application_name=edgegate and gssencmode=disable (libpq's default probes Kerberos
 * files inside PQconnectPoll). Host names are looked up with uv_getaddrinfo and passed as
 * hostaddr, one entry per address, so libpq never resolves on the loop.
 *
 * One loop, one thread: every function must be called on the loop's thread.
 */
#ifndef EDGEGATE_PGPOOL_H
#define EDGEGATE_PGPOOL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <uv.h>

typedef struct pgpool pgpool;

/* What a listening pool reports (pgpool_options.listen_channel). */
enum pgpool_listen_event {
    PGPOOL_LISTEN_READY,  /* LISTEN is in force: from now on every NOTIFY reaches us */
    PGPOOL_LISTEN_NOTIFY, /* one notification; payload is its text ("" when none) */
    PGPOOL_LISTEN_LOST,   /* no connection listens any more: notifications sent from now until
                             the next READY are lost (a cache must stop trusting itself) */
};
typedef void (*pgpool_listen_cb)(void *arg, enum pgpool_listen_event event, const char *payload);

/* Zero (or a NULL options pointer) means the default for every field. */
typedef struct pgpool_options {
    int size;                 /* connections; default 4 */
    int query_timeout_ms;     /* client-side deadline per query; default 5000 */
    int max_queued;           /* queries waiting for a connection; default 1024 */
    int connect_timeout_ms;   /* one connection attempt, TCP to ready; default 5000 */
    int statement_timeout_ms; /* server-side statement_timeout set at connect: 0 = 90% of the
                                 query timeout (the server gives up first and the connection
                                 survives), negative = leave the server's setting alone */
    /* LISTEN: with a channel name ([a-z_][a-z0-9_]*, at most 63 bytes, copied), every
     * connection runs LISTEN when it comes up, before its first query, and hands each
     * notification to on_listen(listen_arg, ...): once per listening connection, so the callback
     * must be idempotent. READY when the first connection listens, LOST when the last one stops.
     * Read-your-writes: a notification raised by a query's own transaction is handed on before
     * that query's callback runs. */
    const char *listen_channel;
    pgpool_listen_cb on_listen;
    void *listen_arg;
} pgpool_options;

/* The error strings a callback can receive (compare pointers or text). */
extern const char pgpool_err_unavailable[]; /* "database unavailable": no connection is up */
extern const char pgpool_err_timeout[];     /* "query timed out" */
extern const char pgpool_err_queue_full[];  /* "query queue full" */
extern const char pgpool_err_lost[];        /* "database connection lost" mid-query */
extern const char pgpool_err_closing[];     /* "pool closing" */
extern const char pgpool_err_unsupported[]; /* "unsupported result": COPY is not supported */

typedef void (*pgpool_cb)(void *arg, const PGresult *res, const char *error);
typedef void (*pgpool_done_cb)(void *arg);

/*
 * Checks that conninfo is a libpq key=value string or postgres:// URI. Returns 0, or -1 with a
 * message in err that never repeats the input (it may hold a password).
 */
int pgpool_check_conninfo(const char *conninfo, char *err, size_t err_size);

/*
 * Creates the pool and starts connecting in the background. conninfo is copied. Returns NULL
 * when conninfo does not parse (see pgpool_check_conninfo), the listen channel is not a plain
 * name, or memory runs out.
 */
pgpool *pgpool_new(uv_loop_t *loop, const char *conninfo, const pgpool_options *options);

/*
 * Runs sql with nparams parameters ($1..$n). values[i] == NULL is SQL NULL. lengths == NULL:
 * the values are NUL-terminated text; otherwise every value is binary, lengths[i] bytes. sql and
 * the parameters are copied (the query may wait in the queue). Results come back in text format.
 * Returns 0 (cb will run exactly once), or -EINVAL / -ENOMEM when the query could not even be
 * recorded; then cb never runs.
 */
int pgpool_query(pgpool *pool, const char *sql, int nparams, const char *const *values,
                 const int *lengths, pgpool_cb cb, void *arg);

/* Connections up right now (idle or busy); 0 means queries fail fast. For /readyz. */
int pgpool_available(const pgpool *pool);

/*
 * Shuts the pool down: queued and in-flight queries fail with pgpool_err_closing, connections
 * are finished, every uv handle is closed, then done(arg) runs (on a later loop turn) and the
 * pool is freed. Queries submitted before done runs fail with pgpool_err_closing; the pool must
 * not be touched after done. Call once.
 */
void pgpool_close(pgpool *pool, pgpool_done_cb done, void *arg);

/* The five-character SQLSTATE of an error result, or NULL (no result, or no code). */
const char *pgpool_sqlstate(const PGresult *res);

/* 1 when res is a successful result (PGRES_TUPLES_OK or PGRES_COMMAND_OK), else 0. */
int pgpool_ok(const PGresult *res);

#endif
