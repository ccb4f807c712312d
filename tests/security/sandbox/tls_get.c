// SPDX-License-Identifier: Apache-2.0
/*
 * A minimal HTTPS client for guests that have no curl or python (the microvm tests' busybox
 * image): `tls_get IP PORT HOST PATH [HEADER]` connects to IP:PORT, handshakes with SNI HOST,
 * verifies the server's chain against the file $SSL_CERT_FILE names and the name HOST (as any
 * client that trusts agentkernel's CA by that variable does), sends one GET with HEADER, prints
 * the response (head and body) on stdout. Exit 0 on a response, 2 when verification fails, 1 on
 * any other error (the reason on stderr). Compiled static by the test, against Debian's libssl.a.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what)
{
        fprintf(stderr, "tls_get: %s\n", what);
        ERR_print_errors_fp(stderr);
        return 1;
}

int main(int argc, char **argv)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        const char *ca = getenv("SSL_CERT_FILE");
        char req[4096], buf[4096];
        SSL_CTX *ctx;
        SSL *ssl;
        int fd, n;

        if (argc < 5)
                return fail("usage: tls_get IP PORT HOST PATH [HEADER]");
        if (!ca)
                return fail("SSL_CERT_FILE is not set");
        sa.sin_port = htons((unsigned short)atoi(argv[2]));
        if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
                return fail("bad IP");
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return fail("connect");
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
                return fail("the CA file");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, argv[3]);
        SSL_set1_host(ssl, argv[3]);
        if (SSL_connect(ssl) != 1) {
                long v = SSL_get_verify_result(ssl);
                if (v != X509_V_OK) {
                        fprintf(stderr, "tls_get: verify: %s\n", X509_verify_cert_error_string(v));
                        return 2;
                }
                return fail("handshake");
        }
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\n%s%sConnection: close\r\n\r\n", argv[4],
                     argv[3], argc > 5 ? argv[5] : "", argc > 5 ? "\r\n" : "");
        if (n < 0 || (size_t)n >= sizeof(req) || SSL_write(ssl, req, n) != n)
                return fail("write");
        while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
                fwrite(buf, 1, (size_t)n, stdout);
        return 0;
}
