// SPDX-License-Identifier: Apache-2.0
/*
 * TLS for intercepted connections (docs/network.md, "Interception"): the sandbox's CA and leaf
 * certificates (one EC P-256 key per sandbox, a certificate per host, cached and bounded), the
 * upstream trust (the system store, plus the registration's upstream_ca), and the TLS ends of a
 * connection. OpenSSL never touches a socket: each end is an SSL object between two memory BIOs,
 * fed from and drained into the connection's own buffers, so the epoll loop keeps its
 * nonblocking reads and writes and its backpressure. Must never: send a value upstream before
 * the upstream's certificate and name are verified, keep an SSL object past its connection, or
 * hold the CA's key anywhere but this process's memory.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "shared/macro.h"
#include "worker-private.h"

int tls_worker_init(void)
{
        if (OPENSSL_init_ssl(0, NULL) != 1)
                return -ENOMEM;
        W.srv_ctx = SSL_CTX_new(TLS_server_method());
        W.up_ctx = SSL_CTX_new(TLS_client_method());
        if (!W.srv_ctx || !W.up_ctx)
                return -ENOMEM;
        SSL_CTX_set_min_proto_version(W.srv_ctx, TLS1_2_VERSION);
        SSL_CTX_set_min_proto_version(W.up_ctx, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(W.up_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_verify(W.up_ctx, SSL_VERIFY_PEER, NULL);
        /* the system store (OpenSSL's default paths: Debian's ca-certificates) */
        if (SSL_CTX_set_default_verify_paths(W.up_ctx) != 1)
                ERR_clear_error();
        return 0;
}

void tls_worker_done(void)
{
        SSL_CTX_free(W.srv_ctx);
        SSL_CTX_free(W.up_ctx);
        W.srv_ctx = W.up_ctx = NULL;
}

int sandbox_tls_init(struct sandbox *sb, const char *ca_pem, const uint8_t *key, size_t key_len,
                     const char *upstream_ca, struct ak_err *err)
{
        const unsigned char *p = key;
        BIO *b;
        X509 *x;
        size_t n = 0;

        if (!sb->n_grants)
                return 0;
        if (!ca_pem || !key || !key_len)
                return ak_err_set(err, -EINVAL, "register: grants without a CA");
        b = BIO_new_mem_buf(ca_pem, -1);
        sb->ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        sb->ca_key = d2i_AutoPrivateKey(NULL, &p, (long)key_len);
        sb->leaf_key = EVP_EC_gen("P-256");
        if (!sb->ca || !sb->ca_key || !sb->leaf_key) {
                ERR_clear_error();
                return ak_err_set(err, -EINVAL, "register: bad CA");
        }
        if (!upstream_ca)
                return 0;
        /* the system store and the extra anchors */
        sb->up_ctx = SSL_CTX_new(TLS_client_method());
        b = BIO_new_mem_buf(upstream_ca, -1);
        if (!sb->up_ctx || !b) {
                BIO_free(b);
                return ak_err_set(err, -ENOMEM, "out of memory");
        }
        SSL_CTX_set_min_proto_version(sb->up_ctx, TLS1_2_VERSION);
        SSL_CTX_set_session_cache_mode(sb->up_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_verify(sb->up_ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(sb->up_ctx) != 1)
                ERR_clear_error();
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
                if (X509_STORE_add_cert(SSL_CTX_get_cert_store(sb->up_ctx), x) == 1)
                        n++;
                X509_free(x);
        }
        ERR_clear_error();
        BIO_free(b);
        if (!n)
                return ak_err_set(err, -EINVAL, "upstream_ca: no certificate");
        return 0;
}

void sandbox_tls_done(struct sandbox *sb)
{
        for (size_t i = 0; i < LEAF_CACHE; i++) {
                X509_free(sb->leaves[i].cert);
                sb->leaves[i].cert = NULL;
        }
        X509_free(sb->ca);
        EVP_PKEY_free(sb->ca_key);
        EVP_PKEY_free(sb->leaf_key);
        SSL_CTX_free(sb->up_ctx);
        sb->ca = NULL;
        sb->ca_key = sb->leaf_key = NULL;
        sb->up_ctx = NULL;
}
