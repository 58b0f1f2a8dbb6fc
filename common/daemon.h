/*
 * daemon: process-level plumbing shared by both daemons.
 *
 * daemon_signals_start() turns the first SIGTERM or SIGINT into a call of on_stop (the daemon
 * then shuts down gracefully and lets its loop end); a second one exits at once with status 1,
 * for an operator who does not want to wait. SIGPIPE is ignored: a peer closing mid-write is
 * an error value from libuv, not a signal.
 */
#ifndef EDGEGATE_DAEMON_H
#define EDGEGATE_DAEMON_H

#include <uv.h>

int daemon_signals_start(uv_loop_t *loop, void (*on_stop)(void *arg, int signum), void *arg);
/* Closes the signal handles so uv_run can return. */
void daemon_signals_stop(void);

/* Runs the loop to completion and closes it; returns 0, or 1 when handles were left open. */
int daemon_run_loop(uv_loop_t *loop);

#endif
