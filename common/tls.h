/*
 * tls: TLS on mbedtls without sockets. Ciphertext from the network goes in with tls_feed();
 * plaintext comes out through io->on_plain; plaintext goes in with tls_write() and ciphertext
 * comes out through io->send_cipher. The loop owns the socket; nothing here blocks.
 *
 * A tls_ctx_t holds what connections share (certificates, CA chain, a seeded DRBG): one per
 * listener or per client configuration. Clients always verify the server's chain and host
 * name against the CA file (or the system bundle); turning that off takes an explicit insecure
 * flag, which logs a warning. Servers speak TLS 1.2 (what Debian's mbedtls 2.28 offers).
 *
 * Memory: mbedtls keeps a 16 KiB record buffer each way per connection; nothing else is
 * buffered here (a partial record stays inside mbedtls). Callbacks run inside tls_feed /
 * tls_write / tls_start; they must not free the tls (close it afterwards instead).
 */
#ifndef EDGEGATE_TLS_H
#define EDGEGATE_TLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tls_ctx tls_ctx_t;
typedef struct tls tls_t;

/* PEM certificate chain and key files. NULL and a message in err on failure. */
tls_ctx_t *tls_ctx_server(const char *cert_file, const char *key_file, char *err, size_t err_size);
/* ca_file NULL: the system bundle. insecure: no verification at all (dev only, warned). */
tls_ctx_t *tls_ctx_client(const char *ca_file, int insecure, char *err, size_t err_size);
void tls_ctx_free(tls_ctx_t *ctx);

typedef struct tls_io {
    /* Ciphertext for the peer. Return 0, or <0 when the transport is gone. */
    int (*send_cipher)(void *arg, const uint8_t *data, size_t len);
    /* Decrypted bytes from the peer (valid during the call). */
    void (*on_plain)(void *arg, const uint8_t *data, size_t len);
    /* The handshake is done: the peer is verified (client side) and writes may begin. */
    void (*on_ready)(void *arg);
} tls_io_t;

/* hostname: client side, for SNI and verification (required unless insecure); NULL server. */
tls_t *tls_new(tls_ctx_t *ctx, const char *hostname, const tls_io_t *io, void *arg);
void tls_free(tls_t *t);

/* Client: sends the ClientHello. Server: nothing (it waits for one). */
int tls_start(tls_t *t);
/*
 * Ciphertext from the network. Returns 0, or a negative mbedtls error once the connection has
 * failed (bad handshake, verification failure, alert, or the peer's close_notify, which is
 * TLS_CLOSED): then close the transport.
 */
int tls_feed(tls_t *t, const uint8_t *data, size_t len);
/* Encrypts everything (in records of up to 16 KiB). Before on_ready: an error. */
int tls_write(tls_t *t, const uint8_t *data, size_t len);
/* Sends close_notify. */
void tls_close_notify(tls_t *t);
int tls_ready(const tls_t *t);

/* The peer sent close_notify (outside mbedtls's error range). */
#define TLS_CLOSED (-0x10000)
/* A short description of an error from this module. */
const char *tls_strerror(int err, char *buf, size_t size);

#endif
