/*
 * redis: an asynchronous Redis client on a libuv loop (hiredis 0.14 async API + its libuv
 * adapter), with what hiredis 0.14 lacks: command timeouts, reconnection, resubscription.
 *
 * Two connections at most: one for commands, made at redis_new(), and one for pub/sub, made
 * lazily by the first redis_subscribe(). Host names are resolved with uv_getaddrinfo so
 * nothing blocks the loop. AUTH (and SELECT, for the command connection) run on every connect.
 *
 * Callback contract (redis_reply_cb): for every accepted command the callback runs exactly once,
 * never from inside redis_command() itself.
 *   - reply != NULL, error == NULL: Redis answered. An error answer ("-ERR ...", "-WRONGTYPE")
 *     is a reply of type REDIS_REPLY_ERROR: the caller decides what it means.
 *     The reply is freed when the callback returns: copy what you keep.
 *   - reply == NULL, error != NULL: no answer; error is one of the redis_err_* strings below.
 *     Callers fail closed (503).
 * Callbacks may call redis_command(), redis_subscribe() and redis_close() on the same client.
 *
 * Availability: while the command connection is down, commands fail at once (on the next loop
 * turn) with redis_err_unavailable; only during the very first connection attempt do they wait
 * for it. A watchdog drops a connection whose oldest outstanding command has had no reply for
 * command_timeout_ms (every pending command then fails with redis_err_timeout) and reconnects.
 * Reconnection uses exponential backoff, 100 ms doubling to 5 s, jittered, forever. The
 * timeout applies to blocking commands (BLPOP...) too: keep their own timeout well below it.
 *
 * Pub/sub: messages for a channel go to every callback subscribed to it, in subscription order.
 * Subscriptions last until redis_close() and are renewed after every reconnect; messages
 * published while the pub/sub connection was down are lost (Redis pub/sub keeps nothing).
 *
 * Commands: do not send SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE / PUNSUBSCRIBE / MONITOR (they
 * would change the connection's mode; rejected with -EINVAL) nor SELECT (the URL names the db).
 *
 * One loop, one thread: every function must be called on the loop's thread.
 */
#ifndef EDGEGATE_REDIS_H
#define EDGEGATE_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct redis redis;

/* Zero (or a NULL options pointer) means the default for every field. */
typedef struct redis_options {
    int command_timeout_ms; /* no reply for this long: drop and reconnect; default 2000 */
    int connect_timeout_ms; /* TCP connect + AUTH/SELECT; default: the command timeout */
} redis_options;

/* The error strings a callback can receive (compare pointers or text). */
extern const char redis_err_unavailable[]; /* "redis unavailable": not connected */
extern const char redis_err_timeout[];     /* "redis timed out": the watchdog dropped it */
extern const char redis_err_lost[];        /* "redis connection lost" before the reply */
extern const char redis_err_closing[];     /* "redis closing" */

typedef void (*redis_reply_cb)(void *arg, redisReply *reply, const char *error);
typedef void (*redis_message_cb)(void *arg, const char *msg, size_t len);
typedef void (*redis_done_cb)(void *arg);

/*
 * Validates a URL for configuration checks: NULL when valid, otherwise a static message that
 * never repeats the URL (it may hold a password). Accepted forms:
 *   redis://[[user]:password@]host[:port][/db]     host may be [IPv6]; port 6379, db 0 by default
 *   unix:///path/to.sock[?db=N][&password=P]
 * User and password are percent-decoded. rediss:// (TLS) is not supported.
 */
const char *redis_url_error(const char *url);

/* Creates the client and starts connecting. NULL when the URL is invalid or memory runs out. */
redis *redis_new(uv_loop_t *loop, const char *url, const redis_options *options);

/*
 * Sends a command built by hiredis's printf-like format (%s a C string, %b a pointer and a
 * size_t length, binary-safe; every %-argument is one Redis argument). cb may be NULL (no
 * interest in the reply). Returns 0 (cb will run exactly once), -EINVAL for a bad format or a
 * refused command, -ENOMEM; on error cb never runs.
 */
int redis_command(redis *r, redis_reply_cb cb, void *arg, const char *fmt, ...);

/* The same with an argument vector; argvlen NULL means NUL-terminated arguments. */
int redis_commandv(redis *r, redis_reply_cb cb, void *arg, int argc, const char **argv,
                   const size_t *argvlen);

/* 1 when the command connection is up and ready (AUTH/SELECT done). For /readyz. */
int redis_connected(const redis *r);

/*
 * Subscribes on_message(arg, msg, len) to channel (copied); msg is valid during the call only.
 * Returns 0, -EINVAL (no channel or callback, or closing) or -ENOMEM. A subscription is live
 * once Redis has confirmed it: a message published before that is not seen.
 */
int redis_subscribe(redis *r, const char *channel, redis_message_cb on_message, void *arg);

/*
 * Disconnects both connections: pending commands fail with redis_err_closing, timers and every
 * uv handle are closed, then done(arg) runs (on a later loop turn) and r is freed. Commands sent
 * before done runs fail with redis_err_closing; r must not be touched after done. Call once.
 */
void redis_close(redis *r, redis_done_cb done, void *arg);

#endif
