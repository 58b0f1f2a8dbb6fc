#include "test/edge-agent/upgrade.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "common/crypto.h"
#include "common/slice.h"
#include "common/ws.h"

/* The answer's headers we judge; any other header is skipped without being kept. */
enum which { H_NONE, H_ACCEPT, H_PROTOCOL, H_UPGRADE, H_CONNECTION, H_COUNT };

typedef struct hval {
    char v[96];
    size_t len;
    unsigned seen;
    int overflow;
} hval_t;

struct upgrade {
    llhttp_t parser;
    llhttp_settings_t settings;
    char key[25];
    char *protocol; /* "bearer.<token>": what we offer and expect back */
    size_t protocol_len;
    char field[32];
    size_t field_len; /* sizeof(field) + 1: longer than any name we look for */
    enum which cur;
    hval_t h[H_COUNT];
    size_t head_bytes;
    int head_done;
    int status;
    const char *problem;
};

static upgrade_t *of(llhttp_t *p)
{
    return p->data;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    upgrade_t *u = of(p);
    if (u->field_len + len <= sizeof(u->field)) {
        memcpy(u->field + u->field_len, at, len);
        u->field_len += len;
    } else {
        u->field_len = sizeof(u->field) + 1;
    }
    return 0;
}

static int on_field_done(llhttp_t *p)
{
    upgrade_t *u = of(p);
    slice_t f = {u->field, u->field_len <= sizeof(u->field) ? u->field_len : 0};
    u->cur = slice_case_eq(f, "sec-websocket-accept")     ? H_ACCEPT
             : slice_case_eq(f, "sec-websocket-protocol") ? H_PROTOCOL
             : slice_case_eq(f, "upgrade")                ? H_UPGRADE
             : slice_case_eq(f, "connection")             ? H_CONNECTION
                                                          : H_NONE;
    if (u->cur != H_NONE) u->h[u->cur].seen++;
    u->field_len = 0;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    upgrade_t *u = of(p);
    if (u->cur == H_NONE) return 0;
    hval_t *h = &u->h[u->cur];
    if (h->len + len < sizeof(h->v)) {
        memcpy(h->v + h->len, at, len);
        h->len += len;
    } else {
        h->overflow = 1;
    }
    return 0;
}

static int on_value_done(llhttp_t *p)
{
    of(p)->cur = H_NONE;
    return 0;
}

static int on_headers_done(llhttp_t *p)
{
    upgrade_t *u = of(p);
    u->head_done = 1;
    u->status = llhttp_get_status_code(p);
    /* Stop right after the head: what follows is WebSocket frames (or a body we ignore). */
    return HPE_PAUSED;
}

upgrade_t *upgrade_new(const char *token, size_t token_len)
{
    upgrade_t *u = calloc(1, sizeof(*u));
    if (u == NULL) return NULL;
    u->protocol_len = 7 + token_len;
    u->protocol = malloc(u->protocol_len + 1);
    if (u->protocol == NULL || ws_client_key(u->key) < 0) {
        upgrade_free(u);
        return NULL;
    }
    memcpy(u->protocol, "bearer.", 7);
    memcpy(u->protocol + 7, token, token_len);
    u->protocol[u->protocol_len] = '\0';
    llhttp_settings_init(&u->settings);
    u->settings.on_header_field = on_field;
    u->settings.on_header_field_complete = on_field_done;
    u->settings.on_header_value = on_value;
    u->settings.on_header_value_complete = on_value_done;
    u->settings.on_headers_complete = on_headers_done;
    llhttp_init(&u->parser, HTTP_RESPONSE, &u->settings);
    u->parser.data = u;
    return u;
}

void upgrade_free(upgrade_t *u)
{
    if (u == NULL) return;
    if (u->protocol != NULL) {
        /* It holds the credential: do not leave it in freed memory. */
        volatile char *p = u->protocol;
        for (size_t i = 0; i < u->protocol_len; i++)
            p[i] = 0;
        free(u->protocol);
    }
    free(u);
}

int upgrade_request(const upgrade_t *u, buf_t *out, const char *host, const char *path,
                    const char *agent_version)
{
    int rc = buf_printf(out,
                        "GET %s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Protocol: %s\r\n",
                        path, host, u->key, u->protocol);
    if (rc == 0 && agent_version != NULL)
        rc = buf_printf(out, "X-Agent-Version: %s\r\n", agent_version);
    if (rc == 0) rc = buf_append_str(out, "\r\n");
    return rc < 0 ? -ENOBUFS : 0;
}

static slice_t value(const upgrade_t *u, enum which w)
{
    return (slice_t){u->h[w].v, u->h[w].len};
}

static enum upgrade_result bad(upgrade_t *u, const char *problem)
{
    u->problem = problem;
    return UPGRADE_BAD;
}

/* RFC 6455 §4.1, the client's checks of the server's answer, in its order. */
static enum upgrade_result judge(upgrade_t *u)
{
    if (u->status != 101) return UPGRADE_REFUSED;
    for (int w = H_ACCEPT; w < H_COUNT; w++)
        if (u->h[w].overflow) return bad(u, "a handshake header is too long");
    if (!slice_has_token(value(u, H_UPGRADE), "websocket"))
        return bad(u, "101 without Upgrade: websocket");
    if (!slice_has_token(value(u, H_CONNECTION), "upgrade"))
        return bad(u, "101 without Connection: upgrade");
    if (u->h[H_ACCEPT].seen != 1 || !ws_client_accept_ok(u->key, value(u, H_ACCEPT)))
        return bad(u, "Sec-WebSocket-Accept does not match our key");
    slice_t proto = value(u, H_PROTOCOL);
    if (u->h[H_PROTOCOL].seen != 1 ||
        !crypto_equal_str(proto.ptr, proto.len, u->protocol, u->protocol_len))
        return bad(u, "the proxy did not echo the bearer subprotocol");
    return UPGRADE_OK;
}

enum upgrade_result upgrade_feed(upgrade_t *u, const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    if (u->problem != NULL) return UPGRADE_BAD;
    if (len == 0) return UPGRADE_MORE;
    const char *p = (const char *)data;
    llhttp_errno_t err = llhttp_execute(&u->parser, p, len);
    size_t n = len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&u->parser);
        if (pos != NULL && pos >= p && pos <= p + len) n = (size_t)(pos - p);
    } else if (err != HPE_OK) {
        return bad(u, "the answer is not HTTP");
    }
    *used = n;
    u->head_bytes += n;
    if (!u->head_done) {
        if (u->head_bytes > UPGRADE_MAX_HEAD) return bad(u, "the answer's head is too large");
        return UPGRADE_MORE;
    }
    return judge(u);
}

int upgrade_status(const upgrade_t *u)
{
    return u->head_done ? u->status : 0;
}

const char *upgrade_problem(const upgrade_t *u)
{
    return u->problem ? u->problem : "no problem";
}

int upgrade_token_ok(const char *token, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr(extra, c) != NULL)))
            return 0;
    }
    return 1;
}
