/*
 * http_client against a scripted server on a real socket: the server answers the Nth request
 * head it sees with the Nth scripted reply, so each test states the exact bytes a server sends.
 */
#include <string.h>

#include "common/http_client.h"
#include "test/unit/loop_support.h"

#define MAX_REPLIES 4

typedef struct server {
    uv_tcp_t listener;
    uv_tcp_t conn;
    int accepted;
    const char *replies[MAX_REPLIES];
    int close_after; /* close once every reply is sent */
    int heads_seen;
    char got[8192];
    size_t got_len;
    int port;
} server_t;

static uv_loop_t loop;
static server_t srv;
static uv_timer_t ticker; /* wakes UV_RUN_ONCE so run_until can look at the clock */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void srv_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h, (void)size;
    static char b[4096];
    *buf = uv_buf_init(b, sizeof(b));
}

static void srv_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void srv_send(const char *text)
{
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    uv_write(w, (uv_stream_t *)&srv.conn, &b, 1, srv_written);
}

static void srv_closed(uv_handle_t *h)
{
    (void)h;
}

static void srv_shutdown_done(uv_shutdown_t *s, int status)
{
    (void)status;
    if (!uv_is_closing((uv_handle_t *)&srv.conn))
        uv_close((uv_handle_t *)&srv.conn, srv_closed);
    free(s);
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)s;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)&srv.conn))
            uv_close((uv_handle_t *)&srv.conn, srv_closed);
        return;
    }
    size_t room = sizeof(srv.got) - 1 - srv.got_len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(srv.got + srv.got_len, buf->base, take);
    srv.got_len += take;
    srv.got[srv.got_len] = '\0';
    int heads = 0;
    for (const char *p = srv.got; (p = strstr(p, "\r\n\r\n")) != NULL; p += 4)
        heads++;
    while (srv.heads_seen < heads) {
        const char *reply = srv.heads_seen < MAX_REPLIES ? srv.replies[srv.heads_seen] : NULL;
        srv.heads_seen++;
        if (reply != NULL)
            srv_send(reply);
        int last = srv.heads_seen >= MAX_REPLIES || srv.replies[srv.heads_seen] == NULL;
        if (reply != NULL && last && srv.close_after) {
            uv_shutdown_t *sd = malloc(sizeof(*sd));
            uv_shutdown(sd, (uv_stream_t *)&srv.conn, srv_shutdown_done);
        }
    }
}

static void srv_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    uv_tcp_init(&loop, &srv.conn);
    assert_int_equal(uv_accept(l, (uv_stream_t *)&srv.conn), 0);
    srv.accepted++;
    uv_read_start((uv_stream_t *)&srv.conn, srv_alloc, srv_read);
}

static void srv_start(void)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &srv.listener);
    assert_int_equal(uv_tcp_bind(&srv.listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv.listener, 8, srv_accept), 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&bound, &len);
    srv.port = ntohs(bound.sin_port);
}

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    uv_loop_init(&loop);
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, on_tick, 10, 10);
    srv_start();
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    (void)state;
    http_client_cleanup();
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed: nothing leaked */
    return 0;
}

static void url_of(char *out, size_t size, const char *path)
{
    snprintf(out, size, "http://127.0.0.1:%d%s", srv.port, path);
}

/* ---- fetch ---- */

typedef struct fetched {
    int calls;
    int err;
    int status;
    char body[4096];
    size_t body_len;
    char ctype[64];
    char why[200];
} fetched_t;

static void on_fetched(void *arg, int err, const http_fetch_response_t *res, const char *why)
{
    fetched_t *f = arg;
    f->calls++;
    f->err = err;
    if (res != NULL) {
        f->status = res->status;
        assert_true(res->body_len < sizeof(f->body));
        memcpy(f->body, res->body, res->body_len + 1);
        f->body_len = res->body_len;
        slice_t ct = http_head_header(res->head, "content-type");
        snprintf(f->ctype, sizeof(f->ctype), "%.*s", (int)ct.len, ct.ptr ? ct.ptr : "");
    } else {
        snprintf(f->why, sizeof(f->why), "%s", why);
    }
}

static void fetch_one(fetched_t *f, const char *method, const char *path, const char *body,
                      size_t max_response, unsigned timeout_ms)
{
    char url[128];
    url_of(url, sizeof(url), path);
    http_header_t hdr[] = {{slice_from("Accept"), slice_from("application/json")}};
    http_fetch_request_t rq = {
        .method = method,
        .url = url,
        .headers = hdr,
        .nheaders = 1,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_response = max_response,
        .timeout_ms = timeout_ms,
    };
    const char *why = NULL;
    http_fetch_t *h = http_fetch(&loop, &rq, on_fetched, f, &why);
    assert_non_null(h);
    assert_int_equal(f->calls, 0); /* never from inside http_fetch */
    assert_int_equal(run_until_int(&loop, &f->calls, 1, 5000), 0);
    run_for(&loop, 20);
    assert_int_equal(f->calls, 1);
}

static void test_fetch_content_length(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     "11\r\n\r\n{\"ok\":true}";
    fetched_t f = {0};
    fetch_one(&f, "POST", "/token?x=1", "a=b&c=d", 0, 0);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 200);
    assert_string_equal(f.body, "{\"ok\":true}");
    assert_string_equal(f.ctype, "application/json");
    /* What went on the wire: request line, Host with the port, our header, framing. */
    assert_non_null(strstr(srv.got, "POST /token?x=1 HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", srv.port);
    assert_non_null(strstr(srv.got, host));
    assert_non_null(strstr(srv.got, "Accept: application/json\r\n"));
    assert_non_null(strstr(srv.got, "Content-Length: 7\r\n"));
    assert_non_null(strstr(srv.got, "Connection: close\r\n"));
    assert_non_null(strstr(srv.got, "\r\n\r\na=b&c=d"));
}

static void test_fetch_chunked_and_interim(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 0, 0);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.status, 404);
    assert_string_equal(f.body, "hello world");
    assert_null(strstr(srv.got, "Content-Length")); /* a GET without a body says nothing */
}

static void test_fetch_close_delimited(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 200 OK\r\n\r\nuntil the end";
    srv.close_after = 1;
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 0, 0);
    assert_int_equal(f.err, 0);
    assert_string_equal(f.body, "until the end");
}

static void test_fetch_truncated(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
    srv.close_after = 1;
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 0, 0);
    assert_int_equal(f.err, UV_EPROTO);
    assert_non_null(strstr(f.why, "before the response was complete"));
}

static void test_fetch_too_big(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789";
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 10, 0);
    assert_int_equal(f.err, UV_E2BIG);
}

static void test_fetch_malformed(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 2x0 OK\r\n\r\n";
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 0, 0);
    assert_int_equal(f.err, UV_EPROTO);
}

static void test_fetch_timeout(void **state)
{
    (void)state;
    /* The server never answers. */
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 0, 200);
    assert_int_equal(f.err, UV_ETIMEDOUT);
}

static void test_fetch_refused(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&srv.listener, NULL); /* nothing listens on the port any more */
    run_for(&loop, 10);
    fetched_t f = {0};
    fetch_one(&f, "GET", "/", NULL, 0, 0);
    assert_int_equal(f.err, UV_ECONNREFUSED);
    assert_non_null(strstr(f.why, "connect"));
}

static void test_fetch_cancel(void **state)
{
    (void)state;
    char url[128];
    url_of(url, sizeof(url), "/");
    http_fetch_request_t rq = {.method = "GET", .url = url};
    fetched_t f = {0};
    const char *why;
    http_fetch_t *h = http_fetch(&loop, &rq, on_fetched, &f, &why);
    assert_non_null(h);
    http_fetch_cancel(h);
    run_for(&loop, 50);
    assert_int_equal(f.calls, 0);
}

static void test_fetch_refuses_unusable_requests(void **state)
{
    (void)state;
    fetched_t f = {0};
    const char *why = NULL;
    http_fetch_request_t rq = {.method = "GET", .url = "https://127.0.0.1/"};
    assert_null(http_fetch(&loop, &rq, on_fetched, &f, &why)); /* https without TLS */
    assert_non_null(why);
    char url[128];
    url_of(url, sizeof(url), "/");
    http_header_t evil[] = {{slice_from("X-A"), slice_from("1\r\nX-Injected: 2")}};
    rq = (http_fetch_request_t){.method = "GET", .url = url, .headers = evil, .nheaders = 1};
    assert_null(http_fetch(&loop, &rq, on_fetched, &f, &why));
    run_for(&loop, 50);
    assert_int_equal(f.calls, 0);
    assert_null(strstr(srv.got, "X-Injected"));
}

/* ---- a driven client: a 101, then HTTP over the pipe, then a raw pipe ---- */

typedef struct driven {
    http_client_t *c;
    int heads, ends, closes;
    int statuses[4];
    char body[256];
    size_t body_len;
    char raw[256];
    size_t raw_len;
    int err;
    int second_request; /* send a request head from the 101's on_head */
} driven_t;

static void d_head(void *arg, const http_head_t *head)
{
    driven_t *d = arg;
    d->statuses[d->heads++] = head->status;
    if (head->status == 101 && d->second_request)
        assert_int_equal(http_client_request(d->c, "GET", slice_from("/device"), slice_from("dev"),
                                             NULL, 0, -1),
                         0);
}

static void d_body(void *arg, const char *data, size_t len)
{
    driven_t *d = arg;
    memcpy(d->body + d->body_len, data, len);
    d->body_len += len;
}

static void d_end(void *arg)
{
    ((driven_t *)arg)->ends++;
}

static void d_data(void *arg, const char *data, size_t len)
{
    driven_t *d = arg;
    memcpy(d->raw + d->raw_len, data, len);
    d->raw_len += len;
}

static void d_close(void *arg, int err, const char *why)
{
    (void)why;
    driven_t *d = arg;
    d->closes++;
    d->err = err;
}

static const http_client_ops_t d_ops = {d_head, d_body, d_end, d_data, NULL, d_close};

static const char *upgrade_reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                   "Upgrade: edgegate-stream\r\n\r\n";

static void open_driven(driven_t *d, const http_client_config_t *cfg)
{
    char url[128];
    url_of(url, sizeof(url), "/ignored");
    const char *why;
    d->c = http_client_open(&loop, url, cfg, &d_ops, d, &why);
    assert_non_null(d->c);
    http_header_t h[] = {{slice_from("Connection"), slice_from("Upgrade")},
                         {slice_from("Upgrade"), slice_from("edgegate-stream")}};
    assert_int_equal(http_client_request(d->c, "POST", slice_from("/internal/forward/raw"),
                                         SLICE_NULL, h, 2, 0),
                     0);
}

static void test_upgrade_then_http(void **state)
{
    (void)state;
    char both[256];
    /* The 101 and the device's answer can arrive in one read. */
    snprintf(both, sizeof(both), "%s", upgrade_reply);
    srv.replies[0] = both;
    srv.replies[1] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    driven_t d = {.second_request = 1};
    http_client_config_t cfg = {.timeout_ms = 5000};
    open_driven(&d, &cfg);
    assert_int_equal(run_until_int(&loop, &d.ends, 1, 5000), 0);
    assert_int_equal(d.heads, 2);
    assert_int_equal(d.statuses[0], 101);
    assert_int_equal(d.statuses[1], 200);
    assert_int_equal(d.body_len, 5);
    assert_memory_equal(d.body, "hello", 5);
    assert_non_null(strstr(srv.got, "GET /device HTTP/1.1\r\nHost: dev\r\n"));
    http_client_close(d.c, 0, "done", 0);
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
    assert_int_equal(d.err, 0);
}

static void test_upgrade_then_raw(void **state)
{
    (void)state;
    char reply[256];
    snprintf(reply, sizeof(reply), "%sraw bytes", upgrade_reply);
    srv.replies[0] = reply;
    srv.close_after = 1;
    driven_t d = {0};
    http_client_config_t cfg = {.timeout_ms = 100};
    open_driven(&d, &cfg);
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
    assert_int_equal(d.heads, 1);
    assert_int_equal(d.ends, 0);
    assert_int_equal(d.raw_len, 9);
    assert_memory_equal(d.raw, "raw bytes", 9);
    assert_int_equal(d.err, UV_EOF); /* the server's close, not the timeout: none in a pipe */
}

/* ---- a driven client over a pipe the test provides (as a yamux stream is) ---- */

typedef struct test_pipe {
    http_client_t *c;
    char out[1024];
    size_t out_len;
    long queued; /* what write reports as waiting */
    int paused, closes, reset, close_now;
} test_pipe_t;

static long tp_write(void *arg, const void *data, size_t len)
{
    test_pipe_t *p = arg;
    assert_true(p->out_len + len < sizeof(p->out));
    memcpy(p->out + p->out_len, data, len);
    p->out_len += len;
    p->out[p->out_len] = '\0';
    return p->queued;
}

static void tp_pause(void *arg, int paused)
{
    ((test_pipe_t *)arg)->paused = paused;
}

static void tp_close(void *arg, int reset)
{
    test_pipe_t *p = arg;
    p->closes++;
    p->reset = reset;
    if (p->close_now)
        http_client_pipe_closed(p->c, 0, "closed by its owner");
}

static const http_client_pipe_ops_t tp_ops = {tp_write, tp_pause, tp_close};

static void d_drain(void *arg)
{
    ((driven_t *)arg)->ends += 100; /* told apart from on_end */
}

static const http_client_ops_t dp_ops = {d_head, d_body, d_end, d_data, d_drain, d_close};

static void test_pipe_carries_the_same_exchange(void **state)
{
    (void)state;
    driven_t d = {.second_request = 1};
    test_pipe_t p = {.close_now = 1};
    http_client_config_t cfg = {.timeout_ms = 5000};
    d.c = p.c = http_client_open_pipe(&loop, &cfg, &dp_ops, &d, &tp_ops, &p);
    assert_non_null(d.c);
    http_header_t h[] = {{slice_from("Connection"), slice_from("Upgrade")},
                         {slice_from("Upgrade"), slice_from("edgegate-stream")}};
    assert_int_equal(http_client_request(d.c, "POST", slice_from("/internal/forward/raw"),
                                         slice_from("proxy"), h, 2, 0),
                     0);
    /* Written through the pipe at once: nothing waits for a connection. */
    assert_non_null(strstr(p.out, "POST /internal/forward/raw HTTP/1.1\r\nHost: proxy\r\n"));
    /* The 101 and the device's answer, split anywhere. */
    char in[512];
    int n = snprintf(in, sizeof(in), "%sHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                     upgrade_reply);
    for (int i = 0; i < n; i += 7)
        http_client_pipe_data(d.c, in + i, (size_t)(n - i < 7 ? n - i : 7));
    assert_int_equal(d.heads, 2);
    assert_int_equal(d.statuses[0], 101);
    assert_int_equal(d.statuses[1], 200);
    assert_int_equal(d.ends, 1);
    assert_memory_equal(d.body, "hello", 5);
    assert_non_null(strstr(p.out, "GET /device HTTP/1.1\r\nHost: dev\r\n"));
    /* Backpressure and drain go through the pipe both ways. */
    http_client_pause(d.c, 1);
    assert_int_equal(p.paused, 1);
    http_client_pause(d.c, 0);
    assert_int_equal(p.paused, 0);
    http_client_pipe_drain(d.c);
    assert_int_equal(d.ends, 101);
    http_client_close(d.c, 0, "done", 0);
    assert_int_equal(p.closes, 1);
    assert_int_equal(p.reset, 0);
    assert_int_equal(d.closes, 0); /* from the loop, never inside the call */
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
    assert_int_equal(d.err, 0);
}

static void test_pipe_end_by_the_peer_ends_a_close_delimited_response(void **state)
{
    (void)state;
    driven_t d = {0};
    test_pipe_t p = {0};
    http_client_config_t cfg = {.timeout_ms = 5000};
    d.c = p.c = http_client_open_pipe(&loop, &cfg, &dp_ops, &d, &tp_ops, &p);
    assert_int_equal(http_client_request(d.c, "GET", slice_from("/x"), slice_from("dev"), NULL,
                                         0, -1),
                     0);
    const char *in = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    http_client_pipe_data(d.c, in, strlen(in));
    assert_int_equal(d.ends, 0);
    http_client_pipe_closed(d.c, UV_EOF, "the peer ended the stream");
    assert_int_equal(d.ends, 1);
    assert_memory_equal(d.body, "until the end", 13);
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
    assert_int_equal(d.err, UV_EOF);
    assert_int_equal(p.closes, 0); /* the pipe ended by itself: nothing to close */
}

static void test_pipe_write_refused_fails_the_client(void **state)
{
    (void)state;
    driven_t d = {0};
    test_pipe_t p = {.queued = UV_ENOBUFS};
    http_client_config_t cfg = {.timeout_ms = 5000};
    d.c = p.c = http_client_open_pipe(&loop, &cfg, &dp_ops, &d, &tp_ops, &p);
    assert_true(http_client_request(d.c, "GET", slice_from("/x"), slice_from("dev"), NULL, 0,
                                    -1) < 0);
    assert_int_equal(p.closes, 1); /* the client gave up on the pipe */
    assert_int_equal(p.reset, 1);
    http_client_pipe_closed(d.c, 0, "reset");
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
    assert_int_equal(d.err, UV_ENOBUFS);
}

static void test_head_request_has_no_body(void **state)
{
    (void)state;
    srv.replies[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    driven_t d = {0};
    http_client_config_t cfg = {0};
    char url[128];
    url_of(url, sizeof(url), "/");
    const char *why;
    d.c = http_client_open(&loop, url, &cfg, &d_ops, &d, &why);
    assert_non_null(d.c);
    assert_int_equal(http_client_request(d.c, "HEAD", slice_from("/f"), SLICE_NULL, NULL, 0, -1),
                     0);
    assert_int_equal(run_until_int(&loop, &d.ends, 1, 5000), 0);
    assert_int_equal(d.statuses[0], 200);
    assert_int_equal(d.body_len, 0);
    http_client_close(d.c, 0, "done", 1);
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
}

static void test_head_too_large(void **state)
{
    (void)state;
    static char reply[4096];
    snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nX-Big: %0*d\r\n\r\n", 2000, 0);
    srv.replies[0] = reply;
    driven_t d = {0};
    http_client_config_t cfg = {.max_head = 1024};
    char url[128];
    url_of(url, sizeof(url), "/");
    const char *why;
    d.c = http_client_open(&loop, url, &cfg, &d_ops, &d, &why);
    assert_int_equal(http_client_request(d.c, "GET", slice_from("/"), SLICE_NULL, NULL, 0, -1), 0);
    assert_int_equal(run_until_int(&loop, &d.closes, 1, 5000), 0);
    assert_int_equal(d.err, UV_EPROTO);
    assert_int_equal(d.heads, 0);
}

/* ---- URLs ---- */

static void test_url_parse(void **state)
{
    (void)state;
    http_url_t u;
    const char *why;
    const char *s = "https://idp.example.com/realms/x/.well-known/openid-configuration?a=1";
    assert_int_equal(http_url_parse(s, strlen(s), &u, &why), 0);
    assert_int_equal(u.tls, 1);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.host, "idp.example.com");
    assert_true(slice_eq(u.authority, "idp.example.com"));
    assert_true(slice_eq(u.path, "/realms/x/.well-known/openid-configuration?a=1"));

    s = "http://[::1]:3801";
    assert_int_equal(http_url_parse(s, strlen(s), &u, &why), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 3801);
    assert_true(slice_eq(u.path, "/"));

    static const char *bad[] = {
        "ftp://x/",          "http://",           "http://:80/",     "http://x:0/",
        "http://x:65536/",   "http://x:8a/",      "http://u@x/",     "http://x/a b",
        "http://x/#frag",    "http://[::1/",      "http://[::1]x/",  "http://x?q",
        "http://x\r\n/",     "http://x:123456/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(http_url_parse(bad[i], strlen(bad[i]), &u, &why), -1);
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test_setup_teardown(test_fetch_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_chunked_and_interim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_close_delimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_refuses_unusable_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_then_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_then_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipe_carries_the_same_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipe_end_by_the_peer_ends_a_close_delimited_response,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipe_write_refused_fails_the_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_request_has_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_too_large, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
