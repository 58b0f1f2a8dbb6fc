/*
 * push_conn: one real-time WebSocket (an operator console tab, an H5 page) once its handshake
 * has been authenticated (push_routes.c).
 *
 * Out: events are queued in the connection's outbox as shared, reference-counted messages
 * (one copy of an event however many sockets get it) and handed to the ws a few at a time, so
 * that the ws and the socket hold at most about PUSH_IN_FLIGHT bytes. The outbox itself is
 * bounded (PUSH_OUTBOX_LIMIT bytes): a client that lets it fill is too slow; it is closed with
 * 1013 and its outbox freed at once.
 *
 * In: JSON text messages (push_message.h). ping → pong (through the outbox, so a client that
 * pings without reading runs into the same bound); typing → published on the channel, at most
 * PUSH_TYPING_BURST at once and PUSH_TYPING_PER_SECOND after that; unknown types are ignored;
 * binary or invalid JSON closes with 1003; a message over PUSH_MAX_MESSAGE with 1009 (ws.h).
 *
 * Keepalive, every EDGEGATE_WS_KEEPALIVE: a socket that sent nothing since the last round is
 * pinged, one that stayed silent through a ping for a whole round is dropped as dead, and the
 * session is checked again (principal.h) so that an ended session closes its sockets (4001)
 * even when the event that says so was lost. Rounds start at a random phase, so sockets opened
 * together do not all query the stores at once.
 *
 * Lifetime: push_conn_new() after the check, then push_conn_start() after ws_accept() (or
 * push_conn_discard() when it failed). The hub lists the connection from start until a close
 * is asked for or the socket goes; the memory goes with the socket, or with the last session
 * check still in flight.
 */
#ifndef EDGEGATE_API_PUSH_CONN_H
#define EDGEGATE_API_PUSH_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "api-server/account.h"
#include "api-server/app.h"
#include "common/ws.h"

#define PUSH_MAX_MESSAGE (8 * 1024)
#define PUSH_OUTBOX_LIMIT (256 * 1024)
#define PUSH_IN_FLIGHT (16 * 1024)
#define PUSH_TYPING_BURST 10
#define PUSH_TYPING_PER_SECOND 5

/* Close codes of the application (RFC 6455 §7.4.2: 4000-4999 are ours). */
#define PUSH_CLOSE_AUTH 4001

typedef struct push_conn push_conn_t;

enum push_kind {
    PUSH_OPERATOR, /* /ws/{agent_id}: an operator console; the path id is the login */
    PUSH_H5,       /* /ws/h5/{employee_id}: an end user's page; the path id is the account id */
};

/* A message shared by every outbox it is queued in. */
typedef struct push_msg {
    unsigned refs;
    size_t len;
    char text[];
} push_msg_t;

/* A message with one reference (the caller's), or NULL on no memory. */
push_msg_t *push_msg_new(const char *text, size_t len);
void push_msg_unref(push_msg_t *m);

extern const ws_options_t push_ws_options;
extern const ws_callbacks_t push_ws_callbacks;

/* account: as the session check read it (copied). NULL on no memory. */
push_conn_t *push_conn_new(api_app_t *app, enum push_kind kind, const account_t *account,
                           const char *session_hash);
/* After ws_accept() succeeded with push_ws_callbacks and this connection as arg: lists it in
 * the hub and starts the keepalive. */
void push_conn_start(push_conn_t *c, ws_t *ws);
/* ws_accept() failed: nothing was started. */
void push_conn_discard(push_conn_t *c);

/* Queues m (takes a reference of its own); a full outbox closes the socket with 1013. */
void push_conn_send(push_conn_t *c, push_msg_t *m);
/* Closes after what is queued, unlisting it at once: no event reaches it afterwards. */
void push_conn_close(push_conn_t *c, uint16_t code, const char *reason);

enum push_kind push_conn_kind(const push_conn_t *c);
int64_t push_conn_account_id(const push_conn_t *c);
/* The session epoch the socket was opened with; its session's hash. */
int64_t push_conn_epoch(const push_conn_t *c);
const char *push_conn_session_hash(const push_conn_t *c);
/* The path id: the login (operators) or the account id (H5). */
const char *push_conn_path_id(const push_conn_t *c);

#endif
