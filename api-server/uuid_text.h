/*
 * uuid_text: UUIDs in their canonical text form (8-4-4-4-12 lower-case hex), the form device
 * and server ids take everywhere: PostgreSQL, Redis keys, events, URLs.
 *
 * Ids arrive in URL paths and headers; uuid_text_parse() is the gate: only the canonical
 * shape (either case) passes, so nothing else ever reaches a query or a Redis key name.
 */
#ifndef EDGEGATE_API_UUID_TEXT_H
#define EDGEGATE_API_UUID_TEXT_H

#include <stddef.h>

#include "common/http_server.h"
#include "common/slice.h"

#define UUID_TEXT_LEN 36

/* A random (version 4) UUID from the kernel CSPRNG. Returns 0 or -errno. */
int uuid_text_new(char out[UUID_TEXT_LEN + 1]);

/* 0 and the lower-case canonical form in out, or -1 when in is not a UUID in text form. */
int uuid_text_parse(slice_t in, char out[UUID_TEXT_LEN + 1]);

/* The path parameter `name` as a UUID: 0, or -1 after answering 404 NOT_FOUND with message
 * (no such id can exist: the same answer as an id that is not there). */
int uuid_param_or_reply(http_request_t *req, const char *name, char out[UUID_TEXT_LEN + 1],
                        const char *message);

#endif
