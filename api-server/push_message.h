/*
 * push_message: the JSON of real-time push, without sockets or stores. Pure functions, so that
 * the unit tests and the fuzz target reach every branch.
 *
 * Inbound, what a client may send on /ws/... (one JSON object per text message):
 *   {"type":"ping"}                              answered {"type":"pong"}
 *   {"type":"typing","conversation_id":S|N}      S: 1..128 bytes of text, N: an integer
 *   {"type":<anything else>, ...}                ignored
 * Anything that is not JSON, or not an object with a string "type", is a protocol error.
 *
 * The channel `edgegate:events` (DESIGN.md, Redis contract): every event every api-server
 * replica must act on, one JSON object per message, {"type":..., ...}:
 *   device.*        {user_id, device_id, ...}                   to the owner: online/offline
 *                                                               from remote-proxy, and whatever
 *                                                               else befalls a device
 *   agent.status    {user_id (login), name, status, at}         to every operator console
 *   typing          {conversation_id, sender{type,id,name}, at} to operator consoles but the
 *                                                               sender's own
 *   mfa.reset       {account_id}                                to the account, then 4001
 *   session.ended   {account_id, session_hash}                  logout: that session's sockets
 *   account.sessions_revoked {account_id, epoch}                session epoch moved on: the
 *                                                               account's older sockets
 * Account ids may arrive as JSON integers or decimal strings (remote-proxy writes user_id as
 * it stands in the device credential). Unknown types are ignored, so that a newer replica can
 * publish what an older one does not know yet.
 */
#ifndef EDGEGATE_API_PUSH_MESSAGE_H
#define EDGEGATE_API_PUSH_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/crypto.h"

#define PUSH_CHANNEL "edgegate:events"
#define PUSH_CONVERSATION_MAX 128
/* A sender id is a login (64 bytes at most) or an account id. */
#define PUSH_SENDER_ID_MAX 64
#define PUSH_TYPE_LOG_MAX 32

enum push_inbound_kind {
    PUSH_IN_NOT_JSON,  /* close 1003 */
    PUSH_IN_MALFORMED, /* JSON, but not an object with a string "type": close 1003 */
    PUSH_IN_PING,
    PUSH_IN_TYPING,
    PUSH_IN_BAD_TYPING, /* typing without a usable conversation_id: ignored */
    PUSH_IN_UNKNOWN,    /* any other type: ignored */
};

typedef struct push_inbound {
    enum push_inbound_kind kind;
    /* TYPING: the conversation id as sent, a string or an integer. */
    int conversation_is_number;
    long long conversation_number;
    char conversation[PUSH_CONVERSATION_MAX + 1];
    /* UNKNOWN: the type, cut at PUSH_TYPE_LOG_MAX bytes (for a debug log line, quoted). */
    char type[PUSH_TYPE_LOG_MAX + 1];
    size_t type_len;
} push_inbound_t;

void push_inbound_parse(const uint8_t *data, size_t len, push_inbound_t *out);

enum push_event_type {
    PUSH_EV_IGNORED, /* a type this replica does not act on */
    PUSH_EV_INVALID, /* a known type without the fields it needs */
    PUSH_EV_DEVICE,  /* device.*: device.online, device.offline, ... */
    PUSH_EV_AGENT_STATUS,
    PUSH_EV_TYPING,
    PUSH_EV_MFA_RESET,
    PUSH_EV_SESSION_ENDED,
    PUSH_EV_SESSIONS_REVOKED,
};

enum push_sender_type { PUSH_SENDER_AGENT, PUSH_SENDER_USER };

typedef struct push_event {
    enum push_event_type type;
    int64_t account_id; /* DEVICE (the owner), MFA_RESET, SESSION_ENDED, SESSIONS_REVOKED */
    int64_t epoch;      /* SESSIONS_REVOKED: the account's new session epoch */
    char session_hash[CRYPTO_SHA256_HEX_LEN + 1]; /* SESSION_ENDED */
    enum push_sender_type sender_type;            /* TYPING */
    char sender_id[PUSH_SENDER_ID_MAX + 1];       /* TYPING */
} push_event_t;

/* 0, or -1 when text is not a JSON object with a string "type". */
int push_event_parse(const char *text, size_t len, push_event_t *ev);

/* ---- messages built here (compact JSON, malloc'd; NULL on no memory) ---- */

char *push_event_typing(const push_inbound_t *in, enum push_sender_type sender_type,
                        const char *sender_id, const char *sender_name);
char *push_event_agent_status(const char *login, const char *name, const char *status);
char *push_event_session_ended(int64_t account_id, const char *session_hash);
char *push_event_sessions_revoked(int64_t account_id, int64_t epoch);
char *push_event_mfa_reset(int64_t account_id);

/* "agent" / "user", as typing events name their sender */
const char *push_sender_type_name(enum push_sender_type t);

#endif
