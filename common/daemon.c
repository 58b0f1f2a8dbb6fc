#include "common/daemon.h"

#include <signal.h>
#include <stdlib.h>

#include "common/log.h"

static uv_signal_t sig_term, sig_int;
static void (*stop_cb)(void *, int);
static void *stop_arg;
static int stop_requested;
static int signals_open;

static void on_signal(uv_signal_t *h, int signum)
{
    if (stop_requested) {
        log_warn("daemon.forced_exit", "signal=%d", signum);
        _Exit(1);
    }
    stop_requested = 1;
    log_info("daemon.stopping", "signal=%d", signum);
    stop_cb(stop_arg, signum);
}

int daemon_signals_start(uv_loop_t *loop, void (*on_stop)(void *, int), void *arg)
{
    signal(SIGPIPE, SIG_IGN);
    stop_cb = on_stop;
    stop_arg = arg;
    stop_requested = 0;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    signals_open = 1;
    int rc = uv_signal_start(&sig_term, on_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&sig_int, on_signal, SIGINT);
    return rc;
}

void daemon_signals_stop(void)
{
    if (!signals_open)
        return;
    signals_open = 0;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void report_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        log_error("daemon.handle_leak", "type=%s", uv_handle_type_name(uv_handle_get_type(h)));
    (void)arg;
}

int daemon_run_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    if (uv_loop_close(loop) != 0) {
        uv_walk(loop, report_handle, NULL);
        return 1;
    }
    return 0;
}
