#include "api-server/proxy_channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/yamux.h"
#include "proto/yamux_pump.h"

#define CHANNEL_URL_MAX 256
/* Output queued on the channel's connection before streams stop writing into it. */
#define CHANNEL_HIGH_WATER (1024 * 1024)
/* The connection's own bound: the high-water mark plus what is already under way. */
#define CHANNEL_MAX_QUEUE (8 * 1024 * 1024)
#define CHANNEL_CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
/* A replica without /internal/mux (an older proxy) is asked again after this long. */
#define REFUSED_RETRY_MS 60000
/* A channel whose ping is still unanswered at the next one is dead (a peer gone silently,
 * without a FIN or RST): it is closed, and its requests fail instead of waiting. */
#define CHANNEL_PING_MS 15000
/* Bytes handed to a paused client in one piece when it resumes. */
#define DELIVER_PIECE (16 * 1024)

typedef struct pstream pstream_t;

enum channel_state { CH_DOWN, CH_CONNECTING, CH_UP };

typedef struct channel {
    proxy_channels_t *pc;
    char url[CHANNEL_URL_MAX];
    enum channel_state state;
    http_client_t *client; /* the channel's connection; NULL while down */
    yamux_session *sess;   /* while up */
    int refused;           /* the replica answered the upgrade with something else */
    int congested;         /* the connection's queue is above CHANNEL_HIGH_WATER */
    uint64_t retry_at;     /* uv_now() from which a use may open it again */
    unsigned backoff_ms;
    pstream_t *streams;
    uv_timer_t ping; /* while up; closed with the manager */
    struct channel *next;
} channel_t;

struct proxy_channels {
    uv_loop_t *loop;
    char bearer[320];
    http_client_config_t cfg; /* the channels' connections */
    channel_t *channels;
    unsigned nchannels;
    unsigned timers_open;
    int closing;
    void (*done)(void *arg);
    void *done_arg;
};

struct pstream {
    channel_t *ch;         /* NULL once unlinked */
    yamux_stream *st;      /* NULL once closed */
    http_client_t *client; /* NULL once told the pipe is closed */
    yamux_pump_t to_proxy; /* the client's bytes, the rest kept for the window */
    char *in;              /* the proxy's bytes that arrived while the client was paused */
    size_t in_len, in_off;
    int paused;
    int fin_in; /* the proxy's FIN, reported once `in` is delivered */
    int in_op;  /* inside a pipe op: a close is reported by the op's failure, not from here */
    int busy;
    pstream_t *prev, *next;
};

/* ---- streams ---- */

static void ps_maybe_free(pstream_t *ps)
{
    if (ps->st != NULL || ps->client != NULL || ps->busy > 0)
        return;
    yamux_pump_free(&ps->to_proxy);
    free(ps->in);
    free(ps);
}

static void ps_unlink(pstream_t *ps)
{
    if (ps->ch == NULL)
        return;
    if (ps->prev != NULL)
        ps->prev->next = ps->next;
    else
        ps->ch->streams = ps->next;
    if (ps->next != NULL)
        ps->next->prev = ps->prev;
    ps->prev = ps->next = NULL;
    ps->ch = NULL;
}

/* Tells the client its pipe has ended; the client is ours no more. */
static void ps_report_closed(pstream_t *ps, int err, const char *why)
{
    http_client_t *c = ps->client;
    if (c == NULL)
        return;
    ps->client = NULL;
    free(ps->in);
    ps->in = NULL;
    ps->in_len = ps->in_off = 0;
    http_client_pipe_closed(c, err, why);
    /* Nobody reads what is still to come: our side ends too. */
    if (ps->st != NULL)
        yamux_pump_finish(&ps->to_proxy);
}

/* Hands kept bytes to the client while it takes them; then the proxy's FIN if it came. */
static void ps_deliver(pstream_t *ps)
{
    ps->busy++;
    while (ps->client != NULL && !ps->paused && ps->in_off < ps->in_len) {
        size_t n = ps->in_len - ps->in_off;
        if (n > DELIVER_PIECE)
            n = DELIVER_PIECE;
        const char *piece = ps->in + ps->in_off;
        ps->in_off += n;
        http_client_pipe_data(ps->client, piece, n);
        if (ps->st != NULL)
            yamux_stream_consumed(ps->st, n);
    }
    if (ps->in != NULL && ps->in_off == ps->in_len) {
        free(ps->in);
        ps->in = NULL;
        ps->in_len = ps->in_off = 0;
    }
    if (ps->in == NULL && ps->fin_in && ps->client != NULL)
        ps_report_closed(ps, UV_EOF, "the proxy ended the stream");
    ps->busy--;
    ps_maybe_free(ps);
}

/* Moves kept client bytes into the stream; the client hears of it once all are out. */
static void ps_flush(pstream_t *ps)
{
    if (yamux_pump_pending(&ps->to_proxy) == 0)
        return;
    ps->busy++;
    if (yamux_pump_flush(&ps->to_proxy) >= 0 && yamux_pump_pending(&ps->to_proxy) == 0 &&
        ps->client != NULL)
        http_client_pipe_drain(ps->client);
    ps->busy--;
    ps_maybe_free(ps);
}

/* ---- the pipe under each stream's client ---- */

static long pipe_write(void *pipe, const void *data, size_t len)
{
    pstream_t *ps = pipe;
    if (ps->st == NULL)
        return UV_ECONNRESET;
    ps->in_op++;
    ssize_t n = yamux_pump_write(&ps->to_proxy, data, len);
    ps->in_op--;
    if (n < 0 || ps->st == NULL)
        return UV_ECONNRESET;
    size_t pending = yamux_pump_pending(&ps->to_proxy);
    if (pending > PROXY_STREAM_MAX_PENDING)
        return UV_ENOBUFS;
    return (long)pending;
}

static void pipe_pause(void *pipe, int paused)
{
    pstream_t *ps = pipe;
    ps->paused = paused;
    if (!paused && ps->in != NULL)
        ps_deliver(ps);
}

static void pipe_close(void *pipe, int reset)
{
    pstream_t *ps = pipe;
    http_client_t *c = ps->client;
    ps->client = NULL;
    ps->busy++;
    if (ps->st != NULL) {
        if (reset)
            yamux_stream_reset(ps->st);
        else
            yamux_pump_finish(&ps->to_proxy); /* FIN after what is kept; the rest is dropped */
    }
    http_client_pipe_closed(c, 0, NULL);
    ps->busy--;
    ps_maybe_free(ps);
}

static const http_client_pipe_ops_t stream_pipe_ops = {pipe_write, pipe_pause, pipe_close};

/* ---- the channel's yamux session ---- */

static int ch_send(void *user, const yamux_iov *iov, int iovcnt)
{
    channel_t *ch = user;
    if (ch->client == NULL)
        return -1;
    for (int i = 0; i < iovcnt; i++) {
        long queued = http_client_write(ch->client, iov[i].base, iov[i].len);
        if (queued < 0)
            return -1;
        if (queued > CHANNEL_HIGH_WATER)
            ch->congested = 1; /* until the connection drains */
    }
    return 0;
}

static void st_on_data(void *user, yamux_stream *st, const uint8_t *data, size_t len)
{
    (void)user;
    pstream_t *ps = yamux_stream_user(st);
    if (ps->client == NULL) {
        yamux_stream_consumed(st, len);
        return;
    }
    if (ps->paused || ps->in != NULL) {
        /* Not consumed: the window bounds what can arrive before the client resumes. */
        char *grown = realloc(ps->in, ps->in_len + len);
        if (grown == NULL) {
            yamux_stream_reset(st);
            return;
        }
        memcpy(grown + ps->in_len, data, len);
        ps->in = grown;
        ps->in_len += len;
        return;
    }
    ps->busy++;
    http_client_pipe_data(ps->client, (const char *)data, len);
    yamux_stream_consumed(st, len);
    ps->busy--;
}

static void st_on_fin(void *user, yamux_stream *st)
{
    (void)user;
    pstream_t *ps = yamux_stream_user(st);
    ps->fin_in = 1;
    if (ps->in == NULL)
        ps_report_closed(ps, UV_EOF, "the proxy ended the stream");
}

static void st_on_writable(void *user, yamux_stream *st)
{
    (void)user;
    ps_flush(yamux_stream_user(st));
}

static void st_on_closed(void *user, yamux_stream *st, yamux_close_reason reason)
{
    (void)user;
    pstream_t *ps = yamux_stream_user(st);
    ps->st = NULL;
    ps->to_proxy.dst = NULL;
    ps_unlink(ps);
    if (!ps->in_op)
        ps_report_closed(ps, reason == YAMUX_CLOSE_NORMAL ? UV_EOF : UV_ECONNRESET,
                         reason == YAMUX_CLOSE_SESSION ? "the channel to the proxy failed"
                                                       : "the proxy reset the stream");
    ps_maybe_free(ps);
}

static const yamux_callbacks channel_callbacks = {
    .send = ch_send,
    .on_data = st_on_data,
    .on_fin = st_on_fin,
    .on_writable = st_on_writable,
    .on_closed = st_on_closed,
};

/* ---- the channel's connection ---- */

/* The end of the manager: every channel (their timers closed), then done. */
static void channels_free(proxy_channels_t *pc)
{
    while (pc->channels != NULL) {
        channel_t *c = pc->channels;
        pc->channels = c->next;
        free(c);
    }
    void (*done)(void *) = pc->done;
    void *arg = pc->done_arg;
    free(pc);
    if (done != NULL)
        done(arg);
}

static void on_ping_timer_closed(uv_handle_t *h)
{
    channel_t *ch = h->data;
    if (--ch->pc->timers_open == 0)
        channels_free(ch->pc);
}

/* Closing, and no channel has a connection any more: the timers go, then the manager. */
static void channels_maybe_done(proxy_channels_t *pc)
{
    if (!pc->closing)
        return;
    for (channel_t *ch = pc->channels; ch != NULL; ch = ch->next)
        if (ch->client != NULL)
            return;
    if (pc->channels == NULL) {
        channels_free(pc);
        return;
    }
    for (channel_t *ch = pc->channels; ch != NULL; ch = ch->next)
        uv_close((uv_handle_t *)&ch->ping, on_ping_timer_closed);
}

static void on_ping(uv_timer_t *t)
{
    channel_t *ch = t->data;
    if (ch->sess == NULL || ch->client == NULL)
        return;
    if (yamux_session_ping_outstanding(ch->sess)) {
        http_client_close(ch->client, UV_ETIMEDOUT, "the proxy did not answer a ping", 1);
        return;
    }
    yamux_session_ping(ch->sess, uv_now(ch->pc->loop));
}

static void ch_on_head(void *arg, const http_head_t *head)
{
    channel_t *ch = arg;
    if (head->status != 101) {
        ch->refused = 1;
        log_warn("proxy_channel.refused", "url=%s status=%d retry_s=%d", ch->url, head->status,
                 REFUSED_RETRY_MS / 1000);
        http_client_close(ch->client, 0, "no channel here", 1);
        return;
    }
    yamux_config cfg;
    yamux_config_init(&cfg, true);
    if (yamux_session_new(&cfg, &channel_callbacks, ch, &ch->sess) < 0) {
        http_client_close(ch->client, UV_ENOMEM, "out of memory", 1);
        return;
    }
    ch->state = CH_UP;
    ch->backoff_ms = 0;
    uv_timer_start(&ch->ping, on_ping, CHANNEL_PING_MS, CHANNEL_PING_MS);
    log_info("proxy_channel.up", "url=%s", ch->url);
}

static void ch_on_body(void *arg, const char *data, size_t len)
{
    (void)arg, (void)data, (void)len;
}

static void ch_on_end(void *arg)
{
    channel_t *ch = arg;
    http_client_close(ch->client, 0, "no channel here", 1);
}

static void ch_on_data(void *arg, const char *data, size_t len)
{
    channel_t *ch = arg;
    if (ch->sess == NULL)
        return;
    int rc = yamux_session_feed(ch->sess, data, len);
    if (rc < 0)
        http_client_close(ch->client, UV_EPROTO, yamux_strerror(rc), 1);
}

/* The queue is empty: streams held back by the high-water mark write again. */
static void ch_on_drain(void *arg)
{
    channel_t *ch = arg;
    ch->congested = 0;
    pstream_t *ps = ch->streams;
    while (ps != NULL && !ch->congested && ch->sess != NULL) {
        pstream_t *next = ps->next; /* ps leaves the list if its stream closes */
        ps_flush(ps);
        if (yamux_session_error(ch->sess) != 0)
            break; /* the session failed while writing: every stream is gone */
        ps = next;
    }
}

static void ch_on_close(void *arg, int err, const char *why)
{
    channel_t *ch = arg;
    uint64_t now = uv_now(ch->pc->loop);
    ch->client = NULL;
    uv_timer_stop(&ch->ping);
    if (ch->sess != NULL) {
        log_warn("proxy_channel.down", "url=%s why=\"%s\"", ch->url, why);
        /* Every stream ends with YAMUX_CLOSE_SESSION: their requests fail, nothing else. */
        yamux_session_free(ch->sess);
        ch->sess = NULL;
        ch->backoff_ms = 0; /* it was up: try again at the next use */
        ch->retry_at = now;
    } else if (ch->refused) {
        ch->retry_at = now + REFUSED_RETRY_MS;
    } else {
        log_info("proxy_channel.connect_failed", "url=%s err=%d why=\"%s\"", ch->url, err, why);
        ch->backoff_ms = ch->backoff_ms ? ch->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (ch->backoff_ms > BACKOFF_MAX_MS)
            ch->backoff_ms = BACKOFF_MAX_MS;
        ch->retry_at = now + ch->backoff_ms;
    }
    ch->refused = 0;
    ch->congested = 0;
    ch->state = CH_DOWN;
    channels_maybe_done(ch->pc);
}

static const http_client_ops_t channel_ops = {
    .on_head = ch_on_head,
    .on_body = ch_on_body,
    .on_end = ch_on_end,
    .on_data = ch_on_data,
    .on_drain = ch_on_drain,
    .on_close = ch_on_close,
};

static void channel_open(channel_t *ch)
{
    proxy_channels_t *pc = ch->pc;
    const char *why = NULL;
    ch->client = http_client_open(pc->loop, ch->url, &pc->cfg, &channel_ops, ch, &why);
    if (ch->client == NULL) {
        log_warn("proxy_channel.bad_url", "url=%s why=\"%s\"", ch->url, why);
        ch->retry_at = uv_now(pc->loop) + REFUSED_RETRY_MS;
        return;
    }
    ch->state = CH_CONNECTING;
    http_header_t h[] = {{SLICE_LIT("Authorization"), slice_from(pc->bearer)},
                         {SLICE_LIT("Connection"), SLICE_LIT("Upgrade")},
                         {SLICE_LIT("Upgrade"), SLICE_LIT("edgegate-mux")}};
    int rc = http_client_request(ch->client, "GET", SLICE_LIT("/internal/mux"), SLICE_NULL, h,
                                 sizeof(h) / sizeof(h[0]), -1);
    if (rc < 0)
        http_client_close(ch->client, rc, "the upgrade request could not be sent", 1);
}

static channel_t *channel_for(proxy_channels_t *pc, const char *url)
{
    for (channel_t *ch = pc->channels; ch != NULL; ch = ch->next)
        if (strcmp(ch->url, url) == 0)
            return ch;
    if (pc->nchannels >= PROXY_CHANNELS_MAX || strlen(url) >= CHANNEL_URL_MAX)
        return NULL;
    channel_t *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    ch->pc = pc;
    snprintf(ch->url, sizeof(ch->url), "%s", url);
    ch->retry_at = uv_now(pc->loop);
    uv_timer_init(pc->loop, &ch->ping);
    ch->ping.data = ch;
    pc->timers_open++;
    ch->next = pc->channels;
    pc->channels = ch;
    pc->nchannels++;
    return ch;
}

/* ---- the manager ---- */

proxy_channels_t *proxy_channels_new(uv_loop_t *loop, const char *internal_token)
{
    proxy_channels_t *pc = calloc(1, sizeof(*pc));
    if (pc == NULL)
        return NULL;
    pc->loop = loop;
    snprintf(pc->bearer, sizeof(pc->bearer), "Bearer %s", internal_token);
    pc->cfg.timeout_ms = CHANNEL_CONNECT_TIMEOUT_MS; /* none once upgraded: a pipe has none */
    pc->cfg.max_queue = CHANNEL_MAX_QUEUE;
    return pc;
}

http_client_t *proxy_channel_client(proxy_channels_t *pc, const char *base_url,
                                    const http_client_config_t *cfg,
                                    const http_client_ops_t *ops, void *arg)
{
    if (pc == NULL || pc->closing)
        return NULL;
    channel_t *ch = channel_for(pc, base_url);
    if (ch == NULL)
        return NULL;
    if (ch->state == CH_DOWN && uv_now(pc->loop) >= ch->retry_at)
        channel_open(ch);
    if (ch->state != CH_UP)
        return NULL;
    pstream_t *ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    if (yamux_stream_open(ch->sess, &ps->st) < 0) {
        free(ps);
        return NULL; /* GoAway, stream limit: the caller's own connection will do */
    }
    yamux_stream_set_user(ps->st, ps);
    ps->to_proxy.dst = ps->st;
    ps->to_proxy.gate = &ch->congested;
    ps->ch = ch;
    ps->next = ch->streams;
    if (ch->streams != NULL)
        ch->streams->prev = ps;
    ch->streams = ps;
    ps->client = http_client_open_pipe(pc->loop, cfg, ops, arg, &stream_pipe_ops, ps);
    if (ps->client == NULL) {
        yamux_stream_reset(ps->st); /* its on_closed frees ps */
        return NULL;
    }
    return ps->client;
}

void proxy_channels_close(proxy_channels_t *pc, void (*done)(void *arg), void *arg)
{
    pc->closing = 1;
    pc->done = done;
    pc->done_arg = arg;
    int open = 0;
    for (channel_t *ch = pc->channels; ch != NULL; ch = ch->next) {
        if (ch->client != NULL) {
            open = 1;
            http_client_close(ch->client, 0, "shutting down", 1);
        }
    }
    if (!open)
        channels_maybe_done(pc);
}
