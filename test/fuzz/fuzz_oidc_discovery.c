/*
 * libFuzzer target for the discovery-document check of api-server/oidc_provider.c (what the
 * provider's /.well-known/openid-configuration answers).
 *
 * Two modes, by the low bit of byte 0:
 *   raw       the rest is the document;
 *   template  a document with our issuer whose four endpoints are pieces of the input (split
 *             at 0xff bytes), so the endpoint checks (common/http_client.h's URL parser) see
 *             hostile URLs rather than JSON syntax errors. Bit 1 of byte 0: EDGEGATE_DEV=1.
 * Invariants: a document is taken only when it names our issuer exactly and its three required
 * endpoints parse as URLs (https unless dev); an end_session_endpoint that does not is dropped.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api-server/oidc_provider.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) abort();                                                                         \
    } while (0)

static const char ISSUER[] = "https://op.example";

static int usable(const oidc_provider_t *p, const char *url)
{
    http_url_t u;
    const char *why;
    return url != NULL && http_url_parse(url, strlen(url), &u, &why) == 0 && (u.tls || p->cfg->dev);
}

/* Template mode: the endpoints are input pieces (JSON strings need valid UTF-8: others are
 * left out, which the check must also survive). */
static char *template_document(const uint8_t *in, size_t n, size_t *len)
{
    static const char *const names[] = {"authorization_endpoint", "token_endpoint", "jwks_uri",
                                         "end_session_endpoint"};
    json_t *doc = json_pack("{s:s,s:[s]}", "issuer", ISSUER, "code_challenge_methods_supported",
                            "S256");
    const uint8_t *p = in, *end = in + n;
    for (size_t i = 0; i < 4 && doc != NULL; i++) {
        const uint8_t *sep = memchr(p, 0xff, (size_t)(end - p));
        size_t piece = (size_t)((sep ? sep : end) - p);
        json_t *v = json_stringn((const char *)p, piece);
        if (v != NULL)
            json_object_set_new(doc, names[i], v);
        p = sep ? sep + 1 : end;
    }
    char *text = doc ? json_dumps(doc, 0) : NULL;
    json_decref(doc);
    *len = text ? strlen(text) : 0;
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    api_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.oidc_issuer = ISSUER;
    cfg.dev = (data[0] >> 1) & 1;
    oidc_provider_t p;
    memset(&p, 0, sizeof(p));
    p.loop = uv_default_loop();
    p.cfg = &cfg;

    size_t len = size - 1;
    char *doc;
    if (data[0] & 1) {
        doc = template_document(data + 1, len, &len);
    } else {
        doc = malloc(len ? len : 1);
        if (doc != NULL)
            memcpy(doc, data + 1, len);
    }
    if (doc == NULL)
        return 0;
    const char *why = take_discovery(&p, doc, len);
    if (why == NULL) {
        CHECK(p.doc != NULL && strcmp(p.md.issuer, ISSUER) == 0);
        CHECK(usable(&p, p.md.authorization_endpoint) && usable(&p, p.md.token_endpoint) &&
              usable(&p, p.md.jwks_uri));
        CHECK(p.md.end_session_endpoint == NULL || usable(&p, p.md.end_session_endpoint));
    } else {
        CHECK(p.doc == NULL && p.md_at == 0);
    }
    json_decref(p.doc);
    free(doc);
    return 0;
}
