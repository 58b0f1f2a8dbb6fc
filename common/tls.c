#include "common/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "common/log.h"

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

struct tls_ctx {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt chain; /* server: own chain; client: trusted CAs */
    mbedtls_pk_context key;
    int is_server;
    int insecure;
};

struct tls {
    mbedtls_ssl_context ssl;
    tls_ctx_t *ctx;
    const tls_io_t *io;
    void *arg;
    const uint8_t *in;
    size_t in_len;
    int ready;
    int failed;
};

static void describe(int rc, char *err, size_t size)
{
    char text[128];
    mbedtls_strerror(rc, text, sizeof(text));
    snprintf(err, size, "%s", text);
}

static tls_ctx_t *ctx_new(int endpoint, char *err, size_t err_size)
{
    tls_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_x509_crt_init(&c->chain);
    mbedtls_pk_init(&c->key);
    c->is_server = endpoint == MBEDTLS_SSL_IS_SERVER;
    static const char pers[] = "edgegate-tls";
    int rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                                   (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc == 0)
        rc = mbedtls_ssl_config_defaults(&c->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        describe(rc, err, err_size);
        tls_ctx_free(c);
        return NULL;
    }
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    /* TLS 1.2 or newer: older versions have known weaknesses and nobody needs them. */
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    return c;
}

tls_ctx_t *tls_ctx_server(const char *cert_file, const char *key_file, char *err, size_t err_size)
{
    tls_ctx_t *c = ctx_new(MBEDTLS_SSL_IS_SERVER, err, err_size);
    if (c == NULL)
        return NULL;
    int rc = mbedtls_x509_crt_parse_file(&c->chain, cert_file);
    if (rc != 0) {
        char why[128];
        describe(rc, why, sizeof(why));
        snprintf(err, err_size, "certificate %s: %s", cert_file, why);
        tls_ctx_free(c);
        return NULL;
    }
    rc = mbedtls_pk_parse_keyfile(&c->key, key_file, NULL);
    if (rc == 0)
        rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->chain, &c->key);
    if (rc != 0) {
        char why[128];
        describe(rc, why, sizeof(why));
        snprintf(err, err_size, "key %s: %s", key_file, why);
        tls_ctx_free(c);
        return NULL;
    }
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE); /* no client certificates */
    return c;
}

tls_ctx_t *tls_ctx_client(const char *ca_file, int insecure, char *err, size_t err_size)
{
    tls_ctx_t *c = ctx_new(MBEDTLS_SSL_IS_CLIENT, err, err_size);
    if (c == NULL)
        return NULL;
    c->insecure = insecure;
    if (insecure) {
        log_warn("tls.insecure", "note=\"server certificates are NOT verified (dev flag)\"");
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
        return c;
    }
    const char *file = ca_file ? ca_file : SYSTEM_CA_BUNDLE;
    int rc = mbedtls_x509_crt_parse_file(&c->chain, file);
    if (rc < 0) { /* > 0: some certificates of a bundle did not parse; the rest are usable */
        char why[128];
        describe(rc, why, sizeof(why));
        snprintf(err, err_size, "CA file %s: %s", file, why);
        tls_ctx_free(c);
        return NULL;
    }
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->chain, NULL);
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    return c;
}

void tls_ctx_free(tls_ctx_t *c)
{
    if (c == NULL)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_x509_crt_free(&c->chain);
    mbedtls_pk_free(&c->key);
    free(c);
}

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    tls_t *t = arg;
    if (t->io->send_cipher(t->arg, buf, len) < 0)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    return (int)len;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    tls_t *t = arg;
    if (t->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = t->in_len < len ? t->in_len : len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

tls_t *tls_new(tls_ctx_t *ctx, const char *hostname, const tls_io_t *io, void *arg)
{
    if (!ctx->is_server && !ctx->insecure && (hostname == NULL || hostname[0] == '\0'))
        return NULL; /* verification without a name would accept any valid certificate */
    tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ctx = ctx;
    t->io = io;
    t->arg = arg;
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &ctx->conf) != 0 ||
        (hostname != NULL && mbedtls_ssl_set_hostname(&t->ssl, hostname) != 0)) {
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return NULL;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return t;
}

void tls_free(tls_t *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_free(&t->ssl);
    free(t);
}

static int step_handshake(tls_t *t)
{
    int rc = mbedtls_ssl_handshake(&t->ssl);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (rc != 0) {
        t->failed = rc;
        return rc;
    }
    t->ready = 1;
    if (t->io->on_ready)
        t->io->on_ready(t->arg);
    return 0;
}

int tls_start(tls_t *t)
{
    return t->ctx->is_server ? 0 : step_handshake(t);
}

int tls_feed(tls_t *t, const uint8_t *data, size_t len)
{
    if (t->failed)
        return t->failed;
    t->in = data;
    t->in_len = len;
    if (!t->ready) {
        int rc = step_handshake(t);
        if (rc != 0 || !t->ready) {
            t->in_len = 0;
            return rc;
        }
    }
    uint8_t plain[16384];
    for (;;) {
        int n = mbedtls_ssl_read(&t->ssl, plain, sizeof(plain));
        if (n > 0) {
            t->io->on_plain(t->arg, plain, (size_t)n);
            if (t->failed)
                break;
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        t->failed = (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) ? TLS_CLOSED : n;
        break;
    }
    t->in_len = 0;
    return t->failed;
}

int tls_write(tls_t *t, const uint8_t *data, size_t len)
{
    if (t->failed)
        return t->failed;
    if (!t->ready)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    while (len > 0) {
        int n = mbedtls_ssl_write(&t->ssl, data, len);
        if (n < 0) {
            /* bio_send never blocks (it queues), so WANT_WRITE cannot happen here. */
            t->failed = n;
            return n;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

void tls_close_notify(tls_t *t)
{
    if (t->ready && !t->failed)
        mbedtls_ssl_close_notify(&t->ssl);
}

int tls_ready(const tls_t *t)
{
    return t->ready;
}

const char *tls_strerror(int err, char *buf, size_t size)
{
    if (err == TLS_CLOSED)
        snprintf(buf, size, "closed by the peer");
    else
        describe(err, buf, size);
    return buf;
}
