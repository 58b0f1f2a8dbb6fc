#include "api-server/push_message.h"

#include <jansson.h>
#include <string.h>

#include "common/clock.h"

/* Duplicate keys are refused: two "type" members would let one reader see a ping where
 * another sees something else. */
static json_t *load_object(const char *text, size_t len)
{
    json_error_t err;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* A positive account id from a JSON integer or a decimal string (at most 18 digits, so it
 * cannot overflow). 0 when it is neither. */
static int64_t account_id_of(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
    if (!json_is_string(v))
        return 0;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 18)
        return 0;
    int64_t id = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        id = id * 10 + (s[i] - '0');
    }
    return id;
}

static void parse_conversation(const json_t *v, push_inbound_t *out)
{
    if (json_is_integer(v)) {
        out->conversation_is_number = 1;
        out->conversation_number = (long long)json_integer_value(v);
        out->kind = PUSH_IN_TYPING;
        return;
    }
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    /* jansson strings may hold NUL only with JSON_ALLOW_NUL, which is not set: n is exact. */
    if (n == 0 || n > PUSH_CONVERSATION_MAX) {
        out->kind = PUSH_IN_BAD_TYPING;
        return;
    }
    memcpy(out->conversation, json_string_value(v), n);
    out->conversation[n] = '\0';
    out->kind = PUSH_IN_TYPING;
}

void push_inbound_parse(const uint8_t *data, size_t len, push_inbound_t *out)
{
    memset(out, 0, sizeof(*out));
    json_error_t err;
    json_t *doc =
        json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (doc == NULL) {
        out->kind = PUSH_IN_NOT_JSON;
        return;
    }
    const json_t *type = json_object_get(doc, "type"); /* NULL for a non-object */
    if (!json_is_string(type)) {
        out->kind = PUSH_IN_MALFORMED;
    } else if (strcmp(json_string_value(type), "ping") == 0) {
        out->kind = PUSH_IN_PING;
    } else if (strcmp(json_string_value(type), "typing") == 0) {
        parse_conversation(json_object_get(doc, "conversation_id"), out);
    } else {
        out->kind = PUSH_IN_UNKNOWN;
        size_t n = json_string_length(type);
        out->type_len = n < PUSH_TYPE_LOG_MAX ? n : PUSH_TYPE_LOG_MAX;
        memcpy(out->type, json_string_value(type), out->type_len);
    }
    json_decref(doc);
}

static void parse_typing(const json_t *doc, push_event_t *ev)
{
    const json_t *sender = json_object_get(doc, "sender");
    const char *type = json_string_value(json_object_get(sender, "type"));
    const json_t *id = json_object_get(sender, "id");
    size_t n = json_is_string(id) ? json_string_length(id) : 0;
    if (type == NULL || n == 0 || n > PUSH_SENDER_ID_MAX) {
        ev->type = PUSH_EV_INVALID;
        return;
    }
    if (strcmp(type, "agent") == 0)
        ev->sender_type = PUSH_SENDER_AGENT;
    else if (strcmp(type, "user") == 0)
        ev->sender_type = PUSH_SENDER_USER;
    else {
        ev->type = PUSH_EV_INVALID;
        return;
    }
    memcpy(ev->sender_id, json_string_value(id), n);
    ev->sender_id[n] = '\0';
    ev->type = PUSH_EV_TYPING;
}

static int is_hex64(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) != CRYPTO_SHA256_HEX_LEN)
        return 0;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < CRYPTO_SHA256_HEX_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int push_event_parse(const char *text, size_t len, push_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    json_t *doc = load_object(text, len);
    const char *type = doc ? json_string_value(json_object_get(doc, "type")) : NULL;
    if (type == NULL) {
        json_decref(doc);
        return -1;
    }
    if (strncmp(type, "device.", 7) == 0) {
        ev->account_id = account_id_of(json_object_get(doc, "user_id"));
        ev->type = ev->account_id > 0 ? PUSH_EV_DEVICE : PUSH_EV_INVALID;
    } else if (strcmp(type, "agent.status") == 0) {
        ev->type = PUSH_EV_AGENT_STATUS;
    } else if (strcmp(type, "typing") == 0) {
        parse_typing(doc, ev);
    } else if (strcmp(type, "mfa.reset") == 0) {
        ev->account_id = account_id_of(json_object_get(doc, "account_id"));
        ev->type = ev->account_id > 0 ? PUSH_EV_MFA_RESET : PUSH_EV_INVALID;
    } else if (strcmp(type, "session.ended") == 0) {
        const json_t *hash = json_object_get(doc, "session_hash");
        ev->account_id = account_id_of(json_object_get(doc, "account_id"));
        ev->type = ev->account_id > 0 && is_hex64(hash) ? PUSH_EV_SESSION_ENDED : PUSH_EV_INVALID;
        if (ev->type == PUSH_EV_SESSION_ENDED)
            memcpy(ev->session_hash, json_string_value(hash), CRYPTO_SHA256_HEX_LEN + 1);
    } else if (strcmp(type, "account.sessions_revoked") == 0) {
        const json_t *epoch = json_object_get(doc, "epoch");
        ev->account_id = account_id_of(json_object_get(doc, "account_id"));
        ev->epoch = json_is_integer(epoch) ? (int64_t)json_integer_value(epoch) : -1;
        ev->type =
            ev->account_id > 0 && ev->epoch >= 0 ? PUSH_EV_SESSIONS_REVOKED : PUSH_EV_INVALID;
    } else {
        ev->type = PUSH_EV_IGNORED;
    }
    json_decref(doc);
    return 0;
}

/* ---- building ---- */

static char *dump(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

static const char *now(char out[CLOCK_ISO8601_LEN])
{
    clock_iso8601(clock_unix_ms(), out);
    return out;
}

const char *push_sender_type_name(enum push_sender_type t)
{
    return t == PUSH_SENDER_AGENT ? "agent" : "user";
}

char *push_event_typing(const push_inbound_t *in, enum push_sender_type sender_type,
                        const char *sender_id, const char *sender_name)
{
    char at[CLOCK_ISO8601_LEN];
    json_t *conversation = in->conversation_is_number
                               ? json_integer((json_int_t)in->conversation_number)
                               : json_string(in->conversation);
    return dump(json_pack("{s:s,s:o,s:{s:s,s:s,s:s?},s:s}", "type", "typing", "conversation_id",
                          conversation, "sender", "type", push_sender_type_name(sender_type), "id",
                          sender_id, "name", sender_name, "at", now(at)));
}

char *push_event_agent_status(const char *login, const char *name, const char *status)
{
    char at[CLOCK_ISO8601_LEN];
    return dump(json_pack("{s:s,s:s,s:s?,s:s,s:s}", "type", "agent.status", "user_id", login,
                          "name", name, "status", status, "at", now(at)));
}

char *push_event_session_ended(int64_t account_id, const char *session_hash)
{
    return dump(json_pack("{s:s,s:I,s:s}", "type", "session.ended", "account_id",
                          (json_int_t)account_id, "session_hash", session_hash));
}

char *push_event_sessions_revoked(int64_t account_id, int64_t epoch)
{
    return dump(json_pack("{s:s,s:I,s:I}", "type", "account.sessions_revoked", "account_id",
                          (json_int_t)account_id, "epoch", (json_int_t)epoch));
}

char *push_event_mfa_reset(int64_t account_id)
{
    return dump(json_pack("{s:s,s:I}", "type", "mfa.reset", "account_id", (json_int_t)account_id));
}
