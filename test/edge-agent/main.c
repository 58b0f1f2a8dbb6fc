/*
 * edge-agent: the reference edge agent. It dials the proxy's tunnel port, authenticates with a
 * device credential and serves the streams the proxy opens by connecting each to a local
 * target. With --swarm it runs many independent tunnels in one process (benchmarks).
 * This file: the command line, the swarm, signals and the summary line; agent.c is a tunnel.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/log.h"
#include "common/tls.h"
#include "test/edge-agent/agent.h"
#include "common/link.h"
#include "common/resolve.h"
#include "test/edge-agent/upgrade.h"

#define VERSION "0.1"
/* A token file is a few bytes per line; this only stops a wrong path (a disk image) early. */
#define MAX_TOKEN_FILE (64 * 1024 * 1024)
#define MAX_TOKEN_LEN 4096
/* After SIGTERM every tunnel gets this long to close politely before it is cut. */
#define STOP_GRACE_MS 8000
#define SUMMARY_EVERY_MS 5000
#define SUMMARY_QUIET_MAX_MS 60000

static const char usage[] =
    "usage: edge-agent --url ws[s]://HOST[:PORT]/PATH (--token TOKEN | --token-file FILE)\n"
    "                  --target HOST:PORT [options]\n"
    "\n"
    "Dials the remote-proxy's tunnel port over WebSocket, authenticates with a device\n"
    "credential (sent as the subprotocol bearer.TOKEN) and serves the yamux streams the proxy\n"
    "opens by connecting each one to the local target and copying bytes both ways.\n"
    "Streams are read as HTTP/1.1 so that connections to the target are kept and reused\n"
    "between requests; anything else (upgrades, raw bytes) is copied as it is.\n"
    "Reconnects with exponential backoff and jitter; SIGTERM / SIGINT end it cleanly.\n"
    "\n"
    "  --url URL            ws://host:3800/tunnel, or wss://... for TLS\n"
    "  --token TOKEN        the device credential (visible in ps: prefer --token-file)\n"
    "  --token-file FILE    a file holding the credential\n"
    "  --target HOST:PORT   the local service streams are connected to\n"
    "  --ca-file FILE       PEM CA bundle for wss:// (default: the system bundle\n"
    "                       /etc/ssl/certs/ca-certificates.crt); the certificate must also\n"
    "                       name the URL's host\n"
    "  --swarm N            run N independent tunnels in this process (benchmarks)\n"
    "  --tokens-file FILE   with --swarm: one credential per line, at least N lines; the\n"
    "                       tokens must differ (one tunnel per device: a repeat replaces)\n"
    "  --agent-version V    sent as X-Agent-Version (default edge-agent/" VERSION ")\n"
    "  --idle-timeout S     redial when nothing arrives from the proxy for S seconds (90)\n"
    "  --refused-retry S    first wait after the proxy refuses the credential (30); doubles\n"
    "                       up to 10 minutes\n"
    "  --max-connecting N   at most N handshakes in flight at once (128)\n"
    "  --target-keepalive N keep up to N idle connections to the target for reuse by later\n"
    "                       requests (64); idle ones are closed after 2 s. 0: a fresh\n"
    "                       connection per stream and bytes never looked at\n"
    "  --log-level L        debug, info, warn, error (default: EDGEGATE_LOG_LEVEL or info)\n"
    "  --help               this text\n";

typedef struct options {
    const char *url;
    const char *token;
    const char *token_file;
    const char *target;
    const char *ca_file;
    const char *tokens_file;
    const char *agent_version;
    const char *log_level;
    unsigned long swarm;
    unsigned long idle_timeout_s;
    unsigned long refused_retry_s;
    unsigned long max_connecting;
    unsigned long target_keepalive;
} options_t;

typedef struct endpoint {
    char host[256];      /* without brackets */
    char authority[300]; /* as written in the URL */
    char path[2048];
    unsigned port;
    int tls;
} endpoint_t;

static struct {
    uv_loop_t *loop;
    agent_config_t cfg;
    target_pool_t *pool; /* NULL with --target-keepalive 0 */
    agent_t **agents;
    unsigned n;
    unsigned stopped;
    unsigned connected_once;
    int stopping;
    int in_stop_loop;
    uint64_t started_ms;
    uv_signal_t sigterm, sigint;
    uv_timer_t summary, grace;
    agent_stats_t last;
    uint64_t last_summary_ms;
} g;

static int fail_usage(const char *fmt, ...) LOG_PRINTF(1, 2);

/* A command-line mistake: one sentence and exit status 2. */
static int fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "edge-agent: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see edge-agent --help)\n");
    va_end(ap);
    return 2;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* host[:port] or [v6][:port] into host (no brackets) and port. */
static int split_host_port(const char *s, size_t len, char *host, size_t host_size, unsigned *port)
{
    const char *colon = NULL;
    const char *h = s;
    size_t hlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        if ((size_t)(close + 1 - s) < len) {
            if (close[1] != ':') return -1;
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        if (colon && memchr(colon + 1, ':', len - hlen - 1))
            return -1; /* a bare IPv6 address: it must be bracketed */
    }
    if (hlen == 0 || hlen >= host_size) return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (colon != NULL) {
        char num[8];
        size_t plen = len - (size_t)(colon + 1 - s);
        unsigned long p;
        if (plen == 0 || plen >= sizeof(num)) return -1;
        memcpy(num, colon + 1, plen);
        num[plen] = '\0';
        if (parse_ulong(num, 1, 65535, &p) < 0) return -1;
        *port = (unsigned)p;
    }
    return 0;
}

static int parse_url(const char *url, endpoint_t *ep)
{
    const char *rest;
    if (strncmp(url, "ws://", 5) == 0) {
        rest = url + 5;
        ep->tls = 0;
        ep->port = 80;
    } else if (strncmp(url, "wss://", 6) == 0) {
        rest = url + 6;
        ep->tls = 1;
        ep->port = 443;
    } else {
        return -1;
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0 || alen >= sizeof(ep->authority) || memchr(rest, '@', alen)) return -1;
    memcpy(ep->authority, rest, alen);
    ep->authority[alen] = '\0';
    if (split_host_port(rest, alen, ep->host, sizeof(ep->host), &ep->port) < 0) return -1;
    const char *path = rest + alen;
    if (*path == '#') return -1;
    snprintf(ep->path, sizeof(ep->path), "%s%s", *path == '/' ? "" : "/", path);
    if (strchr(ep->path, '#') != NULL) return -1;
    for (const char *c = ep->path; *c; c++) /* it goes into the request line */
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) return -1;
    return 0;
}

/* Reads a whole small file (blocking: start-up only). */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, n = 0;
    char *data = malloc(cap);
    while (data != NULL) {
        if (n + 1 >= cap) {
            if (cap >= MAX_TOKEN_FILE) {
                free(data);
                data = NULL;
                errno = EFBIG;
                break;
            }
            char *p = realloc(data, cap * 2);
            if (p == NULL) {
                free(data);
                data = NULL;
                break;
            }
            data = p;
            cap *= 2;
        }
        size_t r = fread(data + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                free(data);
                data = NULL;
            }
            break;
        }
    }
    fclose(f);
    if (data != NULL) {
        data[n] = '\0';
        *len = n;
    }
    return data;
}

static void wipe_free(char *p, size_t len)
{
    if (p == NULL) return;
    volatile char *v = p;
    for (size_t i = 0; i < len; i++)
        v[i] = 0;
    free(p);
}

typedef struct token_list {
    char *data; /* the file, with the line ends turned into NULs */
    size_t data_len;
    const char **tokens;
    size_t *lens;
    size_t n;
} token_list_t;

/* One token per line; blank lines are skipped, surrounding spaces trimmed. Errors name the
 * line, never the token. */
static int load_tokens(const char *path, token_list_t *out)
{
    memset(out, 0, sizeof(*out));
    out->data = read_file(path, &out->data_len);
    if (out->data == NULL) {
        fprintf(stderr, "edge-agent: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t lines = 1;
    for (size_t i = 0; i < out->data_len; i++)
        lines += out->data[i] == '\n';
    out->tokens = calloc(lines, sizeof(*out->tokens));
    out->lens = calloc(lines, sizeof(*out->lens));
    if (out->tokens == NULL || out->lens == NULL) {
        fprintf(stderr, "edge-agent: out of memory\n");
        return -1;
    }
    char *p = out->data, *end = out->data + out->data_len;
    unsigned lineno = 0;
    while (p < end) {
        lineno++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        char *s = p;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        size_t len = (size_t)(t - s);
        if (len > 0) {
            if (len > MAX_TOKEN_LEN || !upgrade_token_ok(s, len)) {
                fprintf(stderr,
                        "edge-agent: %s line %u: not a usable token (only letters, digits and "
                        "!#$%%&'*+-.^_`|~ may appear, at most %d of them)\n",
                        path, lineno, MAX_TOKEN_LEN);
                return -1;
            }
            *t = '\0';
            out->tokens[out->n] = s;
            out->lens[out->n] = len;
            out->n++;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static void free_tokens(token_list_t *t)
{
    wipe_free(t->data, t->data_len);
    free(t->tokens);
    free(t->lens);
}

/* ---- running ---- */

static void close_all(void)
{
    uv_close((uv_handle_t *)&g.sigterm, NULL);
    uv_close((uv_handle_t *)&g.sigint, NULL);
    uv_close((uv_handle_t *)&g.summary, NULL);
    uv_close((uv_handle_t *)&g.grace, NULL);
    for (unsigned i = 0; i < g.n; i++)
        agent_free(g.agents[i]);
    link_cleanup();
    target_pool_stats_t ps = {0};
    if (g.pool != NULL) {
        target_pool_get_stats(g.pool, &ps);
        target_pool_close(g.pool);
    }
    log_info("agent.exit", "tunnels=%u target_reused=%llu", g.n,
             (unsigned long long)ps.reused);
}

static void on_agent_stopped(void *arg)
{
    (void)arg;
    g.stopped++;
    if (g.stopped == g.n && !g.in_stop_loop) close_all();
}

static void on_grace(uv_timer_t *t)
{
    (void)t;
    log_warn("agent.stop_forced", "stopped=%u of=%u", g.stopped, g.n);
    for (unsigned i = 0; i < g.n; i++)
        agent_abort(g.agents[i]);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (g.stopping) {
        /* Asked twice: no more politeness. */
        on_grace(&g.grace);
        return;
    }
    g.stopping = 1;
    log_info("agent.stopping", "signal=%d tunnels=%u", signum, g.n);
    uv_timer_stop(&g.summary);
    uv_timer_start(&g.grace, on_grace, STOP_GRACE_MS, 0);
    g.in_stop_loop = 1;
    for (unsigned i = 0; i < g.n; i++)
        agent_stop(g.agents[i]);
    g.in_stop_loop = 0;
    if (g.stopped == g.n) close_all();
}

static int stats_equal(const agent_stats_t *a, const agent_stats_t *b)
{
    return a->open == b->open && a->connecting == b->connecting && a->waiting == b->waiting &&
           a->refused == b->refused && a->streams == b->streams && a->connects == b->connects &&
           a->failures == b->failures && a->refusals == b->refusals &&
           a->disconnects == b->disconnects;
}

/* A swarm logs one line every few seconds while anything changes (and once a minute when
 * nothing does) instead of a line per tunnel event. */
static void on_summary(uv_timer_t *t)
{
    agent_stats_t s;
    agent_get_stats(&s);
    uint64_t now = uv_now(t->loop);
    if (stats_equal(&s, &g.last) && now - g.last_summary_ms < SUMMARY_QUIET_MAX_MS) return;
    g.last = s;
    g.last_summary_ms = now;
    char err[200];
    log_quote(err, sizeof(err), s.last_error, strlen(s.last_error));
    target_pool_stats_t ps = {0};
    if (g.pool != NULL) target_pool_get_stats(g.pool, &ps);
    log_info("agent.summary",
             "tunnels=%u open=%u connecting=%u waiting=%u refused=%u streams=%u connects=%llu "
             "failures=%llu refusals=%llu disconnects=%llu target_idle=%u target_reused=%llu "
             "last_error=%s",
             s.tunnels, s.open, s.connecting, s.waiting, s.refused, s.streams,
             (unsigned long long)s.connects, (unsigned long long)s.failures,
             (unsigned long long)s.refusals, (unsigned long long)s.disconnects, ps.idle,
             (unsigned long long)ps.reused, err);
}

/* Logs once when every tunnel of a swarm has been up: how fast the proxy took them. */
static void check_all_open(void)
{
    if (g.connected_once || g.n < 2) return;
    agent_stats_t s;
    agent_get_stats(&s);
    if (s.open < g.n) return;
    g.connected_once = 1;
    uint64_t ms = uv_now(g.loop) - g.started_ms;
    log_info("agent.swarm_open", "tunnels=%u ms=%llu per_s=%.0f", g.n, (unsigned long long)ms,
             ms ? g.n * 1000.0 / (double)ms : 0.0);
}

static void on_tunnel_open(void *arg)
{
    (void)arg;
    check_all_open();
}

int main(int argc, char **argv)
{
    options_t o = {.swarm = 1,
                   .idle_timeout_s = 90,
                   .refused_retry_s = 30,
                   .max_connecting = 128,
                   .target_keepalive = 64};
    enum {
        O_URL = 256,
        O_TOKEN,
        O_TOKEN_FILE,
        O_TARGET,
        O_CA,
        O_SWARM,
        O_TOKENS,
        O_VERSION,
        O_IDLE,
        O_REFUSED,
        O_MAXCONN,
        O_LEVEL,
        O_KEEPALIVE,
        O_HELP
    };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"token", required_argument, NULL, O_TOKEN},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"target", required_argument, NULL, O_TARGET},
        {"ca-file", required_argument, NULL, O_CA},
        {"swarm", required_argument, NULL, O_SWARM},
        {"tokens-file", required_argument, NULL, O_TOKENS},
        {"agent-version", required_argument, NULL, O_VERSION},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"refused-retry", required_argument, NULL, O_REFUSED},
        {"max-connecting", required_argument, NULL, O_MAXCONN},
        {"log-level", required_argument, NULL, O_LEVEL},
        {"target-keepalive", required_argument, NULL, O_KEEPALIVE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_URL:
            o.url = optarg;
            break;
        case O_TOKEN:
            o.token = optarg;
            break;
        case O_TOKEN_FILE:
            o.token_file = optarg;
            break;
        case O_TARGET:
            o.target = optarg;
            break;
        case O_CA:
            o.ca_file = optarg;
            break;
        case O_TOKENS:
            o.tokens_file = optarg;
            break;
        case O_VERSION:
            o.agent_version = optarg;
            break;
        case O_LEVEL:
            o.log_level = optarg;
            break;
        case O_SWARM:
            if (parse_ulong(optarg, 1, 1000000, &o.swarm) < 0)
                return fail_usage("--swarm wants a number from 1 to 1000000, not \"%s\"", optarg);
            break;
        case O_IDLE:
            if (parse_ulong(optarg, 1, 86400, &o.idle_timeout_s) < 0)
                return fail_usage("--idle-timeout wants seconds (1-86400), not \"%s\"", optarg);
            break;
        case O_REFUSED:
            if (parse_ulong(optarg, 1, 86400, &o.refused_retry_s) < 0)
                return fail_usage("--refused-retry wants seconds (1-86400), not \"%s\"", optarg);
            break;
        case O_MAXCONN:
            if (parse_ulong(optarg, 1, 100000, &o.max_connecting) < 0)
                return fail_usage("--max-connecting wants a number (1-100000), not \"%s\"", optarg);
            break;
        case O_KEEPALIVE:
            if (parse_ulong(optarg, 0, 100000, &o.target_keepalive) < 0)
                return fail_usage("--target-keepalive wants a number (0-100000), not \"%s\"",
                                  optarg);
            break;
        case O_HELP:
            fputs(usage, stdout);
            return 0;
        default:
            return fail_usage("%s", "unknown option");
        }
    }
    if (optind < argc) return fail_usage("unexpected argument \"%s\"", argv[optind]);

    enum log_level level = LOG_LEVEL_INFO;
    const char *lv = o.log_level ? o.log_level : getenv("EDGEGATE_LOG_LEVEL");
    if (lv != NULL && *lv != '\0' && log_parse_level(lv, &level) < 0)
        return fail_usage("unknown log level \"%s\" (debug, info, warn, error)", lv);
    log_init("edge-agent", level);

    endpoint_t ep;
    char target_host[256];
    unsigned target_port = 0;
    if (o.url == NULL) return fail_usage("%s", "--url is required");
    if (parse_url(o.url, &ep) < 0)
        return fail_usage("--url \"%s\" is not ws[s]://HOST[:PORT]/PATH", o.url);
    if (o.target == NULL) return fail_usage("%s", "--target is required");
    if (split_host_port(o.target, strlen(o.target), target_host, sizeof(target_host),
                        &target_port) < 0 ||
        target_port == 0)
        return fail_usage("--target \"%s\" is not HOST:PORT", o.target);
    for (const char *v = o.agent_version; v != NULL && *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v >= 0x7f)
            return fail_usage("%s", "--agent-version must be printable ASCII");
    if (o.ca_file != NULL && !ep.tls)
        return fail_usage("--ca-file \"%s\" is only used with a wss:// URL", o.ca_file);

    token_list_t list = {0};
    char *single = NULL;
    size_t single_len = 0;
    if (o.tokens_file != NULL || o.swarm > 1) {
        if (o.tokens_file == NULL)
            return fail_usage("%s", "--swarm needs --tokens-file (one token per line)");
        if (o.token != NULL || o.token_file != NULL)
            return fail_usage("%s", "--tokens-file replaces --token / --token-file");
        if (load_tokens(o.tokens_file, &list) < 0) {
            free_tokens(&list);
            return 2;
        }
        if (list.n < o.swarm) {
            fprintf(stderr, "edge-agent: --swarm %lu but %s holds %zu tokens\n", o.swarm,
                    o.tokens_file, list.n);
            free_tokens(&list);
            return 2;
        }
    } else if (o.token != NULL && o.token_file != NULL) {
        return fail_usage("%s", "give --token or --token-file, not both");
    } else if (o.token != NULL) {
        single_len = strlen(o.token);
        single = strdup(o.token);
        if (single == NULL) return 1;
    } else if (o.token_file != NULL) {
        single = read_file(o.token_file, &single_len);
        if (single == NULL) {
            fprintf(stderr, "edge-agent: cannot read %s: %s\n", o.token_file, strerror(errno));
            return 2;
        }
        while (single_len > 0 && strchr(" \t\r\n", single[single_len - 1]) != NULL)
            single[--single_len] = '\0';
    } else {
        return fail_usage("%s", "--token or --token-file is required");
    }
    if (single != NULL &&
        (single_len == 0 || single_len > MAX_TOKEN_LEN || !upgrade_token_ok(single, single_len))) {
        wipe_free(single, single_len);
        return fail_usage("%s", "the token is empty or has characters a subprotocol cannot "
                                "carry (letters, digits and !#$%&'*+-.^_`|~ only)");
    }

    tls_ctx_t *tls = NULL;
    if (ep.tls) {
        char err[300];
        /* Never the insecure flag: a reference agent that skips verification would teach it. */
        tls = tls_ctx_client(o.ca_file, 0, err, sizeof(err));
        if (tls == NULL) {
            fprintf(stderr, "edge-agent: %s\n", err);
            wipe_free(single, single_len);
            free_tokens(&list);
            return 2;
        }
    }

    /* A proxy that vanished mid-write must not kill us with SIGPIPE: the write fails instead. */
    signal(SIGPIPE, SIG_IGN);
    g.loop = uv_default_loop();
    resolver_t *proxy = resolver_new(g.loop, ep.host, ep.port);
    resolver_t *target = resolver_new(g.loop, target_host, target_port);
    g.n = (unsigned)o.swarm;
    g.agents = calloc(g.n, sizeof(*g.agents));
    if (o.target_keepalive > 0) g.pool = target_pool_new(g.loop, (unsigned)o.target_keepalive);
    if (proxy == NULL || target == NULL || g.agents == NULL ||
        (o.target_keepalive > 0 && g.pool == NULL)) {
        fprintf(stderr, "edge-agent: out of memory\n");
        return 1;
    }
    g.cfg = (agent_config_t){
        .loop = g.loop,
        .host = ep.host,
        .authority = ep.authority,
        .path = ep.path,
        .tls = tls,
        .proxy = proxy,
        .target = target,
        .target_pool = g.pool,
        .agent_version = o.agent_version ? o.agent_version : "edge-agent/" VERSION,
        .idle_timeout_ms = (uint64_t)o.idle_timeout_s * 1000,
        .refused_retry_ms = (uint64_t)o.refused_retry_s * 1000,
        .max_connecting = (unsigned)o.max_connecting,
        .verbose = g.n == 1,
        .on_stopped = on_agent_stopped,
        .on_open = on_tunnel_open,
    };
    for (unsigned i = 0; i < g.n; i++) {
        const char *tok = single ? single : list.tokens[i];
        size_t len = single ? single_len : list.lens[i];
        g.agents[i] = agent_new(&g.cfg, i, tok, len);
        if (g.agents[i] == NULL) {
            fprintf(stderr, "edge-agent: out of memory at tunnel %u\n", i);
            return 1;
        }
    }
    wipe_free(single, single_len);
    free_tokens(&list);

    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_timer_init(g.loop, &g.summary);
    uv_timer_init(g.loop, &g.grace);
    if (g.n > 1) uv_timer_start(&g.summary, on_summary, SUMMARY_EVERY_MS, SUMMARY_EVERY_MS);

    log_info("agent.start",
             "url=%s://%s%s target=%s target_keepalive=%lu tunnels=%u tls=%s version=%s",
             ep.tls ? "wss" : "ws", ep.authority, ep.path, o.target, o.target_keepalive, g.n,
             ep.tls ? (o.ca_file ? o.ca_file : "system") : "off", g.cfg.agent_version);
    g.started_ms = uv_now(g.loop);
    for (unsigned i = 0; i < g.n; i++)
        agent_start(g.agents[i], 0);

    uv_run(g.loop, UV_RUN_DEFAULT);

    free(g.agents);
    if (g.pool != NULL) target_pool_free(g.pool);
    resolver_free(proxy);
    resolver_free(target);
    /* Lookups cancelled by resolver_free end in the thread pool; let their callbacks run. */
    uv_run(g.loop, UV_RUN_DEFAULT);
    tls_ctx_free(tls);
    int rc = uv_loop_close(g.loop);
    if (rc != 0) {
        log_error("agent.loop_not_empty", "error=\"%s\"", uv_strerror(rc));
        return 1;
    }
    return 0;
}
