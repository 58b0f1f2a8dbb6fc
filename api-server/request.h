/*
 * request: what api-server hangs on every routed request, and the replies handlers share.
 *
 * The guard (api_dispatch) attaches a context to each request before anything else runs
 * (http_request_set_data); it is freed when the request is finished, whoever finishes it and
 * whenever. It holds:
 *   - the principal: the signed-in account and its session, on routes that need one;
 *   - the parsed JSON body (see fields.h), so validated strings live as long as the request;
 *   - one piece of handler state (api_state_new) for handlers that span several callbacks.
 * A helper that answers on the handler's behalf (503 from the database, 422 from validation)
 * therefore leaks nothing: whatever the handler allocated this way goes with the request.
 */
#ifndef EDGEGATE_API_REQUEST_H
#define EDGEGATE_API_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "api-server/account.h"
#include "common/crypto.h"
#include "common/http_server.h"

typedef struct api_principal {
    account_t account; /* as read from PostgreSQL for this request */
    char session_hash[CRYPTO_SHA256_HEX_LEN + 1]; /* sha256hex of the session id */
    int via_cookie; /* signed in by the browser cookie (not a bearer token) */
} api_principal_t;

/* The signed-in principal, or NULL on public and internal routes. */
const api_principal_t *api_principal(const http_request_t *req);

/*
 * Zeroed memory for the handler's own state, freed with the request (free_fn, if set, runs
 * first to release what the state points to). One per request. On no memory it answers 503
 * and returns NULL; the handler then just returns.
 */
void *api_state_new(http_request_t *req, size_t size, void (*free_fn)(void *state));
void *api_state(const http_request_t *req);

/* 503 SERVICE_UNAVAILABLE after logging which dependency failed and why. */
void api_reply_unavailable(http_request_t *req, const char *what, const char *why);
/* 500 INTERNAL after logging what went wrong (a bug, not a client error). */
void api_reply_internal(http_request_t *req, const char *what);
/* 429 RATE_LIMITED with Retry-After. */
void api_reply_rate_limited(http_request_t *req, long retry_after);
/* Numbers as query parameters (text-format libpq values). out holds 24 bytes. */
const char *api_i64(int64_t v, char out[24]);

/* ---- for the guard and fields.c ---- */

/* Creates and attaches the context; -1 on no memory (nothing attached). */
int api_request_attach(http_request_t *req);
/* The principal being established; api_principal() returns it once api_request_signed_in()
 * has been called, when every check has passed. */
api_principal_t *api_request_principal_slot(http_request_t *req);
void api_request_signed_in(http_request_t *req);
/* Keeps a JSON document alive until the request is finished (takes the reference). */
void api_request_keep_json(http_request_t *req, json_t *doc);

#endif
