/*
 * http_test_server: the common HTTP server with a handful of routes that exercise it, for the
 * integration tests of common/http_server.c over real sockets.
 *
 *   http_test_server PORT [GRACE_MS]     prints "listening PORT" when ready; SIGTERM stops it
 *
 *   GET  /hello                  "hello world\n"
 *   POST /echo                   the body back (1 MiB limit)
 *   POST /small                  the body back (1 KiB limit)
 *   GET  /delay?ms=N             answers after N ms from a timer (an async handler)
 *   GET  /stream?n=N&ms=M        N chunks, one every M ms (a streamed response)
 *   GET  /params/{id}/files/{rest...}   the path parameters as JSON
 *   GET  /stats                  requests aborted by their client so far
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/daemon.h"
#include "common/http_json.h"
#include "common/http_server.h"
#include "common/log.h"

static http_server_t *server;
static unsigned aborted_requests;

typedef struct delayed {
    uv_timer_t timer;
    http_request_t *req;
    int chunks_left;
    unsigned interval;
} delayed_t;

static void hello(http_request_t *req)
{
    http_header_t h[1] = {{SLICE_LIT("Content-Type"), SLICE_LIT("text/plain")}};
    http_respond(req, 200, h, 1, "hello world\n", 12);
}

static void echo(http_request_t *req)
{
    slice_t body = http_request_body(req);
    http_respond(req, 200, NULL, 0, body.ptr, body.len);
}

static void on_abort(http_request_t *req, void *arg)
{
    (void)req;
    (void)arg;
    aborted_requests++;
}

static void on_timer_closed(uv_handle_t *h);

/* A delayed answer nobody waits for any more: cancel the timer (so shutdown need not wait for
 * it) and finish the request, as every handler must. */
static void on_delay_abort(http_request_t *req, void *arg)
{
    delayed_t *d = arg;
    aborted_requests++;
    uv_timer_stop(&d->timer);
    http_respond(req, 200, NULL, 0, "late\n", 5);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    delayed_t *d = t->data;
    /* The client may be gone; answering is still the rule, and must be safe. */
    http_respond(d->req, 200, NULL, 0, "done\n", 5);
    d->timer.data = d;
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

static long query_long(http_request_t *req, const char *name, long def)
{
    char v[32];
    return http_request_query(req, name, v, sizeof(v)) > 0 ? strtol(v, NULL, 10) : def;
}

static void delay(http_request_t *req)
{
    delayed_t *d = calloc(1, sizeof(*d));
    d->req = req;
    http_request_on_abort(req, on_delay_abort, d);
    uv_timer_init(uv_default_loop(), &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, (uint64_t)query_long(req, "ms", 100), 0);
}

static void on_stream_tick(uv_timer_t *t)
{
    delayed_t *d = t->data;
    char line[64];
    int n = snprintf(line, sizeof(line), "data: chunk %d\n\n", d->chunks_left);
    if (http_respond_write(d->req, line, (size_t)n) < 0 || --d->chunks_left == 0) {
        http_respond_end(d->req);
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, on_timer_closed);
    }
}

static void stream(http_request_t *req)
{
    delayed_t *d = calloc(1, sizeof(*d));
    d->req = req;
    d->chunks_left = (int)query_long(req, "n", 3);
    http_request_on_abort(req, on_abort, d);
    http_header_t h[1] = {{SLICE_LIT("Content-Type"), SLICE_LIT("text/event-stream")}};
    http_respond_start(req, 200, h, 1);
    uv_timer_init(uv_default_loop(), &d->timer);
    d->timer.data = d;
    uint64_t ms = (uint64_t)query_long(req, "ms", 50);
    uv_timer_start(&d->timer, on_stream_tick, ms, ms);
}

static void params(http_request_t *req)
{
    slice_t id = http_request_param(req, "id"), rest = http_request_param(req, "rest");
    http_reply_json(req, 200, json_pack("{s:s%,s:s%}", "id", id.ptr, id.len, "rest", rest.ptr,
                                        rest.len));
}

static void stats(http_request_t *req)
{
    http_reply_json(req, 200, json_pack("{s:i,s:i}", "aborted", aborted_requests, "connections",
                                        http_server_connections(server)));
}

static const http_route_t routes[] = {
    {"GET", "/hello", hello, 0, NULL, 0},
    {"POST", "/echo", echo, 0, NULL, 0},
    {"POST", "/small", echo, 1024, NULL, 0},
    {"GET", "/delay", delay, 0, NULL, 0},
    {"GET", "/stream", stream, 0, NULL, 0},
    {"GET", "/params/{id}/files/{rest...}", params, 0, NULL, 0},
    {"GET", "/stats", stats, 0, NULL, 0},
};

static unsigned grace_ms = 5000;

static void on_closed(void *arg)
{
    (void)arg;
    http_server_free(server);
    daemon_signals_stop();
}

static void on_stop(void *arg, int signum)
{
    (void)arg;
    (void)signum;
    http_server_shutdown(server, grace_ms, on_closed, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: http_test_server PORT [GRACE_MS] [IDLE_MS]\n");
        return 2;
    }
    log_init("http-test-server", getenv("DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
    if (argc > 2)
        grace_ms = (unsigned)atoi(argv[2]);
    uv_loop_t *loop = uv_default_loop();
    http_server_config_t cfg = {.name = "test", .access_log = 1, .head_timeout_ms = 2000,
                                .body_timeout_ms = 2000,
                                .idle_timeout_ms = argc > 3 ? (unsigned)atoi(argv[3]) : 5000};
    server = http_server_new(loop, &cfg, routes, sizeof(routes) / sizeof(routes[0]));
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%s", argv[1]);
    if (server == NULL || http_server_listen(server, addr) < 0) {
        fprintf(stderr, "cannot listen on %s\n", addr);
        return 1;
    }
    printf("listening %d\n", http_server_port(server));
    fflush(stdout);
    daemon_signals_start(loop, on_stop, NULL);
    return daemon_run_loop(loop);
}
