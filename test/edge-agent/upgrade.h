/*
 * upgrade: the client half of a tunnel's WebSocket opening handshake (RFC 6455 §4.1).
 *
 * upgrade_request() writes the GET request: the credential travels as the subprotocol
 * `bearer.<token>` (DESIGN.md, "The tunnel"), which the proxy must echo. upgrade_feed() reads
 * the answer with llhttp and judges it once its head is complete: 101 with Upgrade: websocket,
 * Connection: upgrade, the Sec-WebSocket-Accept that belongs to our key and our subprotocol
 * echoed is UPGRADE_OK, and the bytes after the head belong to the WebSocket; any other status
 * is UPGRADE_REFUSED (upgrade_status() says which); anything malformed, or a head larger than
 * UPGRADE_MAX_HEAD, is UPGRADE_BAD (upgrade_problem() says why).
 *
 * An upgrade lives only for the handshake: it holds the token's subprotocol string and a
 * parser, and is freed as soon as the answer is judged.
 */
#ifndef EDGEGATE_AGENT_UPGRADE_H
#define EDGEGATE_AGENT_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define UPGRADE_MAX_HEAD (16 * 1024)

typedef struct upgrade upgrade_t;

enum upgrade_result { UPGRADE_MORE, UPGRADE_OK, UPGRADE_REFUSED, UPGRADE_BAD };

/* NULL when out of memory or the CSPRNG fails (the key must be random). */
upgrade_t *upgrade_new(const char *token, size_t token_len);
void upgrade_free(upgrade_t *u);

/* Appends the request to out. host: the URL's authority as it goes in Host. path: starts with
 * '/'. agent_version may be NULL. 0 or -ENOBUFS. */
int upgrade_request(const upgrade_t *u, buf_t *out, const char *host, const char *path,
                    const char *agent_version);

/* Feeds the answer. *used: how many bytes of data belong to the head (the rest, after OK,
 * belongs to the WebSocket). */
enum upgrade_result upgrade_feed(upgrade_t *u, const uint8_t *data, size_t len, size_t *used);

/* The answer's status once the head is complete, else 0. */
int upgrade_status(const upgrade_t *u);
/* Why the answer was UPGRADE_BAD. */
const char *upgrade_problem(const upgrade_t *u);

/* True when token can travel in a subprotocol: RFC 7230 token characters only. */
int upgrade_token_ok(const char *token, size_t len);

#endif
