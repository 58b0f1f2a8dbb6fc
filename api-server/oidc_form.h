/*
 * oidc_form: the percent-encoded parameters of the requests we send to the provider — the
 * authorization URL's query, the token request's application/x-www-form-urlencoded body, the
 * logout URL — and the form-encoding of client credentials for HTTP Basic (RFC 6749 §2.3.1).
 * Everything but RFC 3986's unreserved characters is encoded, so any value is safe in any of
 * them. Appends fail with buf.h's cap (-ENOBUFS) and leave the buffer unchanged otherwise.
 */
#ifndef EDGEGATE_API_OIDC_FORM_H
#define EDGEGATE_API_OIDC_FORM_H

#include "common/buf.h"

/* Appends value percent-encoded. */
int oidc_form_encode(buf_t *b, const char *value);
/* Appends key=value to a form body: '&' before every pair but the first. */
int oidc_form_add(buf_t *b, const char *key, const char *value);
/* Appends key=value to a URL: '?' before the first query parameter, '&' after. */
int oidc_query_add(buf_t *b, const char *key, const char *value);
/* Appends "Basic base64(urlencode(id) ":" urlencode(secret))" (RFC 6749 §2.3.1). */
int oidc_basic_credentials(buf_t *out, const char *client_id, const char *client_secret);

#endif
