/*
 * loop_support: what unit tests that drive a real libuv loop against real servers share.
 * Header-only (static inline) so that a test includes only what it uses without -Werror
 * complaining about the rest. The servers come from test/run.sh, which exports where they are.
 */
#ifndef EDGEGATE_TEST_LOOP_SUPPORT_H
#define EDGEGATE_TEST_LOOP_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

/* An environment variable test/run.sh sets; missing is a failure, never a skip. */
static inline const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        fail_msg("%s is not set: run the unit tests through test/run.sh", name);
    return v;
}

/* deploy/dev-services.sh WHAT DIR PORT, e.g. ("stop-pg", "EDGEGATE_TEST_PG_PORT"). */
static inline void services(const char *what, const char *port_var)
{
    const char *dir = need_env("EDGEGATE_TEST_SERVICES_DIR");
    const char *port = need_env(port_var);
    if (access("deploy/dev-services.sh", R_OK) != 0)
        fail_msg("deploy/dev-services.sh not found: run from the repository root");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "sh deploy/dev-services.sh %s '%s' '%s'", what, dir, port);
    assert_int_equal(system(cmd), 0);
}

static inline void set_flag(void *arg)
{
    (*(int *)arg)++;
}

/* Runs loop until cond(arg) holds or timeout_ms passes; 0 when it held. The caller keeps a
 * repeating timer on the loop so that UV_RUN_ONCE wakes up to look at the clock. */
static inline int run_until(uv_loop_t *loop, int (*cond)(void *arg), void *arg, int timeout_ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    while (!cond(arg)) {
        if (uv_hrtime() > deadline)
            return -1;
        uv_run(loop, UV_RUN_ONCE);
    }
    return 0;
}

struct loop_support_int_goal {
    const int *flag;
    int want;
};

static inline int loop_support_int_reached(void *arg)
{
    const struct loop_support_int_goal *g = arg;
    return *g->flag >= g->want;
}

/* Runs loop until *flag reaches want. */
static inline int run_until_int(uv_loop_t *loop, const int *flag, int want, int timeout_ms)
{
    struct loop_support_int_goal g = {flag, want};
    return run_until(loop, loop_support_int_reached, &g, timeout_ms);
}

static inline void run_for(uv_loop_t *loop, int ms)
{
    uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < until)
        uv_run(loop, UV_RUN_ONCE);
}

#endif
