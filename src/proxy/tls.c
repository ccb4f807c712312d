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
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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
        /* no renegotiation (a sandbox's cheap way to make the worker work), no session
         * tickets for the sandbox's clients (each connection is a fresh handshake anyway) */
        SSL_CTX_set_options(W.srv_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(W.srv_ctx, 0);
        SSL_CTX_set_session_cache_mode(W.srv_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(W.up_ctx, SSL_OP_NO_RENEGOTIATION);
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
        SSL_CTX_set_options(sb->up_ctx, SSL_OP_NO_RENEGOTIATION);
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

/* A leaf certificate for host (a checked DNS name), signed by sb's CA. */
static X509 *leaf_new(struct sandbox *sb, const char *host)
{
        X509 *cert = X509_new();
        X509_NAME *nm = X509_NAME_new();
        unsigned char serial[16];
        char san[NET_POLICY_HOST_MAX + 8];
        BIGNUM *bn = NULL;
        bool ok;

        ok = cert && nm && RAND_bytes(serial, sizeof(serial)) == 1;
        if (ok) {
                serial[0] &= 0x7f;
                bn = BN_bin2bn(serial, sizeof(serial), NULL);
                snprintf(san, sizeof(san), "DNS:%s", host);
                ok =
                    bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
                    X509_set_version(cert, 2) &&
                    (strlen(host) > 64 ||
                     X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)host,
                                                -1, -1, 0)) &&
                    X509_set_subject_name(cert, nm) &&
                    X509_set_issuer_name(cert, X509_get_subject_name(sb->ca)) &&
                    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
                    X509_gmtime_adj(X509_getm_notAfter(cert), 29L * 24 * 3600) &&
                    X509_set_pubkey(cert, sb->leaf_key) &&
                    mitm_x509_add_ext(sb->ca, cert, NID_subject_alt_name, san) &&
                    mitm_x509_add_ext(sb->ca, cert, NID_basic_constraints, "critical,CA:FALSE") &&
                    mitm_x509_add_ext(sb->ca, cert, NID_key_usage, "critical,digitalSignature") &&
                    mitm_x509_add_ext(sb->ca, cert, NID_ext_key_usage, "serverAuth") &&
                    mitm_x509_add_ext(sb->ca, cert, NID_authority_key_identifier, "keyid:always") &&
                    X509_sign(cert, sb->ca_key, EVP_sha256());
        }
        BN_free(bn);
        X509_NAME_free(nm);
        if (!ok) {
                ERR_clear_error();
                X509_free(cert);
                return NULL;
        }
        return cert;
}

/* The cached leaf for host, made when missing (replacing the least recently used). */
static X509 *leaf_for(struct sandbox *sb, const char *host)
{
        struct leaf *lru = &sb->leaves[0];
        for (size_t i = 0; i < LEAF_CACHE; i++) {
                struct leaf *l = &sb->leaves[i];
                if (l->cert && strcasecmp(l->host, host) == 0) {
                        l->used = W.now;
                        return l->cert;
                }
                if (!l->cert || (lru->cert && l->used < lru->used))
                        lru = l;
        }
        X509 *cert = leaf_new(sb, host);
        if (!cert)
                return NULL;
        X509_free(lru->cert);
        lru->cert = cert;
        lru->used = W.now;
        snprintf(lru->host, sizeof(lru->host), "%s", host);
        return cert;
}

/* Does the ALPN protocol list p (len bytes, without its length) hold name? */
static bool alpn_has(const unsigned char *p, size_t len, const char *name)
{
        size_t nl = strlen(name);
        for (size_t i = 0; i < len;) {
                size_t l = p[i];
                if (i + 1 + l > len)
                        break;
                if (l == nl && memcmp(p + i + 1, name, nl) == 0)
                        return true;
                i += 1 + l;
        }
        return false;
}

/* Did t's handshake choose h2? */
bool tls_is_h2(const struct tls_end *t)
{
        const unsigned char *p = NULL;
        unsigned int l = 0;
        if (!t || !t->hs_done)
                return false;
        SSL_get0_alpn_selected(t->ssl, &p, &l);
        return l == 2 && memcmp(p, "h2", 2) == 0;
}

/* Is c's upstream handshake still going (or its connection still being made)? */
static bool up_hs_pending(const struct conn *c)
{
        return c->connecting ||
               (c->ufd >= 0 && c->ut && !c->ut->hs_done && !c->ut->failed && !c->up_eof);
}

/* The ClientHello of an intercepted connection: ALPN is mirrored. A client that offers h2 waits
 * (SSL_CLIENT_HELLO_RETRY) until upstream, offered h2 and http/1.1, has chosen; one that does
 * not has upstream offered http/1.1 only and goes on at once. */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
        struct conn *c = SSL_get_app_data(ssl);
        (void)al;
        (void)arg;
        if (!c)
                return SSL_CLIENT_HELLO_SUCCESS;
        if (!c->alpn_seen) {
                const unsigned char *p;
                size_t len;
                c->alpn_seen = true;
                c->offer_h2 =
                    SSL_client_hello_get0_ext(
                        ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) == 1 &&
                    len > 2 && alpn_has(p + 2, len - 2, "h2");
                /* upstream's TLS starts now that its ALPN offer is known (or when it connects) */
                if (c->ufd >= 0 && c->upstream_ok && !c->ut && tls_up_start(c) < 0)
                        upstream_close(c); /* the first request connects again, or says why */
        }
        if (c->offer_h2 && up_hs_pending(c)) {
                c->hello_wait = true;
                return SSL_CLIENT_HELLO_RETRY;
        }
        c->hello_wait = false;
        return SSL_CLIENT_HELLO_SUCCESS;
}

bool tls_hello_ready(const struct conn *c)
{
        return c->hello_wait && !up_hs_pending(c);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
        struct conn *c = SSL_get_app_data(ssl);
        (void)arg;
        /* h2 when the client offers it and upstream chose it (mirrored), else HTTP/1.1 */
        if (c && c->offer_h2 && tls_is_h2(c->ut) && alpn_has(in, inlen, "h2")) {
                for (unsigned i = 0; i < inlen; i += 1u + in[i])
                        if (in[i] == 2 && i + 3 <= inlen && memcmp(in + i + 1, "h2", 2) == 0) {
                                *out = in + i + 1;
                                *outlen = 2;
                                c->offer_h2 = false;
                                return SSL_TLSEXT_ERR_OK;
                        }
        }
        if (c)
                c->offer_h2 = false; /* a later upstream connection offers http/1.1 only */
        for (unsigned i = 0; i < inlen;) {
                unsigned l = in[i];
                if (i + 1 + l > inlen)
                        break;
                if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
                        *out = in + i + 1;
                        *outlen = 8;
                        return SSL_TLSEXT_ERR_OK;
                }
                i += 1 + l;
        }
        return SSL_TLSEXT_ERR_NOACK;
}

void tls_end_free(struct tls_end **t)
{
        if (!*t)
                return;
        SSL_free((*t)->ssl); /* frees its BIOs */
        buf_free(&(*t)->out);
        free(*t);
        *t = NULL;
}

static struct tls_end *tls_end_new(SSL_CTX *ctx)
{
        struct tls_end *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->ssl = SSL_new(ctx);
        t->rb = BIO_new(BIO_s_mem());
        t->wb = BIO_new(BIO_s_mem());
        if (!t->ssl || !t->rb || !t->wb) {
                BIO_free(t->rb);
                BIO_free(t->wb);
                SSL_free(t->ssl);
                free(t);
                ERR_clear_error();
                return NULL;
        }
        BIO_set_mem_eof_return(t->rb, -1);
        SSL_set_bio(t->ssl, t->rb, t->wb);
        SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
        return t;
}

int tls_client_start(struct conn *c)
{
        X509 *leaf;
        if (!W.srv_ctx)
                return -ENOTSUP;
        leaf = leaf_for(c->sb, c->host);
        if (!leaf)
                return -ENOMEM;
        c->ct = tls_end_new(W.srv_ctx);
        if (!c->ct)
                return -ENOMEM;
        if (SSL_use_certificate(c->ct->ssl, leaf) != 1 ||
            SSL_use_PrivateKey(c->ct->ssl, c->sb->leaf_key) != 1 ||
            SSL_add1_chain_cert(c->ct->ssl, c->sb->ca) != 1) {
                ERR_clear_error();
                tls_end_free(&c->ct);
                return -ENOMEM;
        }
        SSL_set_app_data(c->ct->ssl, c);
        SSL_set_accept_state(c->ct->ssl);
        /* the ClientHello (and whatever came with it) was read already */
        if (buf_len(&c->cin)) {
                BIO_write(c->ct->rb, c->cin.d + c->cin.start, (int)buf_len(&c->cin));
                buf_free(&c->cin);
        }
        return 0;
}

int tls_up_start(struct conn *c)
{
        SSL_CTX *ctx = c->sb->up_ctx ? c->sb->up_ctx : W.up_ctx;
        if (!ctx)
                return -ENOTSUP;
        c->ut = tls_end_new(ctx);
        if (!c->ut)
                return -ENOMEM;
        if (SSL_set_tlsext_host_name(c->ut->ssl, c->host) != 1 ||
            SSL_set1_host(c->ut->ssl, c->host) != 1 ||
            (c->offer_h2
                 ? SSL_set_alpn_protos(c->ut->ssl, (const unsigned char *)"\x02h2\x08http/1.1", 12)
                 : SSL_set_alpn_protos(c->ut->ssl, (const unsigned char *)"\x08http/1.1", 9)) !=
                0) {
                ERR_clear_error();
                tls_end_free(&c->ut);
                return -ENOMEM;
        }
        SSL_set_verify(c->ut->ssl, SSL_VERIFY_PEER, NULL);
        SSL_set_connect_state(c->ut->ssl);
        (void)SSL_do_handshake(c->ut->ssl);
        return 0;
}

void tls_server_setup(void)
{
        if (W.srv_ctx) {
                SSL_CTX_set_alpn_select_cb(W.srv_ctx, alpn_select, NULL);
                SSL_CTX_set_client_hello_cb(W.srv_ctx, hello_cb, NULL);
        }
}

/* Moves what t's write BIO holds into t->out (within BUF_SIZE). */
static void tls_drain_wbio(struct tls_end *t)
{
        while (BIO_ctrl_pending(t->wb) && buf_room(&t->out)) {
                size_t room;
                uint8_t *p = buf_tail(&t->out, &room);
                int n;
                if (!p || !room)
                        return;
                n = BIO_read(t->wb, p, (int)MIN(room, (size_t)INT_MAX));
                if (n <= 0)
                        return;
                t->out.end += (size_t)n;
        }
}

bool tls_has_input(const struct tls_end *t)
{
        return t && (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rb) > 0);
}

bool tls_out_pending(const struct tls_end *t)
{
        return t && (buf_len(&t->out) || BIO_ctrl_pending(t->wb));
}

/* Why a handshake failed, in words (the verification's result first). */
static void tls_why(struct tls_end *t, unsigned long e)
{
        long v = SSL_get_verify_result(t->ssl);
        if (v != X509_V_OK)
                snprintf(t->why, sizeof(t->why), "certificate verification failed: %s",
                         X509_verify_cert_error_string(v));
        else if (e)
                snprintf(t->why, sizeof(t->why), "TLS handshake failed: %s",
                         ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
        else
                snprintf(t->why, sizeof(t->why), "TLS handshake failed: connection closed");
}

ssize_t tls_read(struct tls_end *t, int fd, struct buf *b, bool sock, bool *eof)
{
        ssize_t total = 0;
        *eof = false;
        if (sock && BIO_ctrl_pending(t->rb) < BUF_SIZE) {
                uint8_t tmp[16384];
                ssize_t n = read(fd, tmp, sizeof(tmp));
                if (n > 0)
                        BIO_write(t->rb, tmp, (int)n);
                else if (n == 0)
                        t->sock_eof = true;
                else if (errno != EAGAIN && errno != EINTR)
                        t->sock_eof = true;
        }
        if (!t->hs_done) {
                int r = SSL_do_handshake(t->ssl);
                if (r != 1) {
                        int e = SSL_get_error(t->ssl, r);
                        /* (a ClientHello waiting for upstream's handshake: tls_hello_ready) */
                        if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_CLIENT_HELLO_CB) &&
                            !t->sock_eof)
                                return -1;
                        tls_why(t, ERR_peek_error());
                        t->failed = true;
                        t->alert = ERR_GET_REASON(ERR_peek_error());
                        ERR_clear_error();
                        return -2;
                }
                t->hs_done = true;
        }
        while (buf_room(b)) {
                size_t room;
                uint8_t *p = buf_tail(b, &room);
                int n, e;
                if (!p || !room)
                        break;
                n = SSL_read(t->ssl, p, (int)MIN(room, (size_t)INT_MAX));
                if (n > 0) {
                        b->end += (size_t)n;
                        total += n;
                        continue;
                }
                if (b->start == b->end)
                        buf_free(b);
                e = SSL_get_error(t->ssl, n);
                ERR_clear_error();
                if (e == SSL_ERROR_WANT_READ) {
                        if (t->sock_eof && !BIO_ctrl_pending(t->rb))
                                *eof = true;
                        break;
                }
                *eof = true; /* close_notify, or an error: the end of this side's bytes */
                break;
        }
        return total ? total : *eof ? 0 : -1;
}

bool tls_write(struct tls_end *t, int fd, struct buf *b, bool *dead)
{
        tls_drain_wbio(t);
        while (t->hs_done && buf_len(b) && buf_len(&t->out) < BUF_SIZE / 2) {
                int n = SSL_write(t->ssl, b->d + b->start, (int)MIN(buf_len(b), (size_t)16384));
                if (n <= 0) {
                        ERR_clear_error();
                        break;
                }
                buf_consume(b, (size_t)n);
                tls_drain_wbio(t);
        }
        while (buf_len(&t->out)) {
                ssize_t n = send(fd, t->out.d + t->out.start, buf_len(&t->out),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return true;
                        *dead = true;
                        return false;
                }
                buf_consume(&t->out, (size_t)n);
                tls_drain_wbio(t);
        }
        return true;
}
