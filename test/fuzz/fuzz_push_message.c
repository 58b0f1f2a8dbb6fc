/*
 * libFuzzer target for what real-time push parses (api-server/push_message.c and the
 * subprotocol scan of common/ws.c), on bytes exactly as they arrive (copied into a heap block
 * of their own size, so ASan sees any read past them):
 *   - a client's WebSocket text message (push_inbound_parse);
 *   - a message on the channel edgegate:events (push_event_parse);
 *   - a Sec-WebSocket-Protocol header (ws_bearer_protocol).
 * Invariants checked:
 *   - every parse yields a known kind, and the fields that kind promises are within bounds;
 *   - a typing message that parses becomes an event that parses back as typing from the same
 *     sender (what one replica publishes, every replica understands);
 *   - the bearer entry found lies inside the header and is "bearer." followed by a token.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/push_message.c"
#include "common/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

static void check_inbound(const uint8_t *bytes, size_t size)
{
    push_inbound_t in;
    push_inbound_parse(bytes, size, &in);
    CHECK(in.kind >= PUSH_IN_NOT_JSON && in.kind <= PUSH_IN_UNKNOWN);
    CHECK(in.type_len <= PUSH_TYPE_LOG_MAX);
    if (in.kind != PUSH_IN_TYPING)
        return;
    if (!in.conversation_is_number) {
        size_t n = strlen(in.conversation);
        CHECK(n >= 1 && n <= PUSH_CONVERSATION_MAX);
    }
    enum push_sender_type who = size % 2 ? PUSH_SENDER_AGENT : PUSH_SENDER_USER;
    char *text = push_event_typing(&in, who, "sender-1", size % 3 ? "A Name" : NULL);
    CHECK(text != NULL);
    push_event_t ev;
    CHECK(push_event_parse(text, strlen(text), &ev) == 0);
    CHECK(ev.type == PUSH_EV_TYPING && ev.sender_type == who);
    CHECK(strcmp(ev.sender_id, "sender-1") == 0);
    free(text);
}

static void check_event(const char *text, size_t size)
{
    push_event_t ev;
    if (push_event_parse(text, size, &ev) < 0)
        return;
    CHECK(ev.type >= PUSH_EV_IGNORED && ev.type <= PUSH_EV_SESSIONS_REVOKED);
    switch (ev.type) {
    case PUSH_EV_DEVICE:
    case PUSH_EV_MFA_RESET:
        CHECK(ev.account_id > 0);
        break;
    case PUSH_EV_SESSION_ENDED:
        CHECK(ev.account_id > 0 && strlen(ev.session_hash) == CRYPTO_SHA256_HEX_LEN);
        break;
    case PUSH_EV_SESSIONS_REVOKED:
        CHECK(ev.account_id > 0 && ev.epoch >= 0);
        break;
    case PUSH_EV_TYPING: {
        size_t n = strlen(ev.sender_id);
        CHECK(n >= 1 && n <= PUSH_SENDER_ID_MAX);
        break;
    }
    default:
        break;
    }
}

static void check_protocols(const char *header, size_t size)
{
    slice_t token = SLICE_NULL;
    slice_t item = ws_bearer_protocol((slice_t){header, size}, &token);
    if (item.ptr == NULL) {
        CHECK(token.ptr == NULL);
        return;
    }
    CHECK(item.ptr >= header && item.ptr + item.len <= header + size);
    CHECK(item.len > 7 && memcmp(item.ptr, "bearer.", 7) == 0);
    CHECK(token.ptr == item.ptr + 7 && token.len == item.len - 7);
    CHECK(memchr(item.ptr, ',', item.len) == NULL && memchr(item.ptr, ' ', item.len) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *bytes = malloc(size ? size : 1);
    if (bytes == NULL)
        return 0;
    memcpy(bytes, data, size);
    check_inbound(bytes, size);
    check_event((const char *)bytes, size);
    check_protocols((const char *)bytes, size);
    free(bytes);
    return 0;
}
