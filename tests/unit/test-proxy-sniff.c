// SPDX-License-Identifier: Apache-2.0
/* The proxy's readers of sandbox bytes (src/proxy/sniff.c) on their own: the TLS ClientHello's
 * server name (whole, cut anywhere, lying lengths, odd names), the HTTP sniff, and DNS queries
 * and replies (compression, responses, several questions, long names). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/sniff.h"

/* A ClientHello with the given server name (NULL: no SNI extension) into out; its length. */
static size_t client_hello(const char *sni, uint8_t *out)
{
        uint8_t body[1024];
        size_t n = 0, ext_start, hs_len;

        body[n++] = 3; /* client_version 3.3 */
        body[n++] = 3;
        memset(body + n, 0x11, 32); /* random */
        n += 32;
        body[n++] = 0; /* session id */
        body[n++] = 0; /* cipher suites: 2 bytes, one suite */
        body[n++] = 2;
        body[n++] = 0x13;
        body[n++] = 0x01;
        body[n++] = 1; /* compression: null */
        body[n++] = 0;
        ext_start = n;
        n += 2;
        /* an unrelated extension first */
        body[n++] = 0x00;
        body[n++] = 0x0b;
        body[n++] = 0;
        body[n++] = 2;
        body[n++] = 1;
        body[n++] = 0;
        if (sni) {
                size_t l = strlen(sni);
                body[n++] = 0; /* server_name */
                body[n++] = 0;
                body[n++] = (uint8_t)((l + 5) >> 8);
                body[n++] = (uint8_t)(l + 5);
                body[n++] = (uint8_t)((l + 3) >> 8);
                body[n++] = (uint8_t)(l + 3);
                body[n++] = 0; /* host_name */
                body[n++] = (uint8_t)(l >> 8);
                body[n++] = (uint8_t)l;
                memcpy(body + n, sni, l);
                n += l;
        }
        body[ext_start] = (uint8_t)((n - ext_start - 2) >> 8);
        body[ext_start + 1] = (uint8_t)(n - ext_start - 2);
        hs_len = n;
        out[0] = 0x16;
        out[1] = 3;
        out[2] = 1;
        out[3] = (uint8_t)((hs_len + 4) >> 8);
        out[4] = (uint8_t)(hs_len + 4);
        out[5] = 1;
        out[6] = 0;
        out[7] = (uint8_t)(hs_len >> 8);
        out[8] = (uint8_t)hs_len;
        memcpy(out + 9, body, hs_len);
        return hs_len + 9;
}

static void test_sni(void **unused)
{
        (void)unused;
        uint8_t m[1200];
        char name[SNIFF_NAME_MAX + 1];
        size_t n = client_hello("api.example.com", m);

        assert_int_equal(sniff_tls_sni(m, n, name), 1);
        assert_string_equal(name, "api.example.com");
        /* every cut asks for more, never reads past it */
        for (size_t i = 0; i < n; i++)
                assert_int_equal(sniff_tls_sni(m, i, name), -EAGAIN);
        n = client_hello(NULL, m);
        assert_int_equal(sniff_tls_sni(m, n, name), 0);
}

static void test_sni_refusals(void **unused)
{
        (void)unused;
        uint8_t m[1200];
        char name[SNIFF_NAME_MAX + 1];
        size_t n;

        assert_int_equal(sniff_tls_sni((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name), -EINVAL);
        assert_int_equal(sniff_tls_sni((const uint8_t *)"\x16\x02", 2, name), -EINVAL);
        n = client_hello("bad name", m); /* a space */
        assert_int_equal(sniff_tls_sni(m, n, name), -EINVAL);
        n = client_hello("nul\001x", m);
        assert_int_equal(sniff_tls_sni(m, n, name), -EINVAL);
        /* not a ClientHello (handshake type 2) */
        n = client_hello("a.example", m);
        m[5] = 2;
        assert_int_equal(sniff_tls_sni(m, n, name), -EINVAL);
        /* the server_name extension's length lies past the record */
        n = client_hello("a.example", m);
        m[n - 16] = 0xff;
        assert_true(sniff_tls_sni(m, n, name) < 0);
}

static void test_http_sniff(void **unused)
{
        (void)unused;
        assert_int_equal(sniff_http((const uint8_t *)"GET / HTTP/1.1", 14), 1);
        assert_int_equal(sniff_http((const uint8_t *)"CONNECT a:1 HTTP/1.1", 20), 1);
        assert_int_equal(sniff_http((const uint8_t *)"GE", 2), -EAGAIN);
        assert_int_equal(sniff_http((const uint8_t *)"get / HTTP/1.1", 14), 0);
        assert_int_equal(sniff_http((const uint8_t *)"SSH-2.0-OpenSSH", 15), 0);
        assert_int_equal(sniff_http((const uint8_t *)"\x16\x03\x01", 3), 0);
}

static size_t dns_q(const char *name, uint16_t qtype, uint8_t *out)
{
        size_t n = 12;
        const char *p = name;
        memset(out, 0, 12);
        out[0] = 0x12;
        out[1] = 0x34;
        out[2] = 0x01; /* RD */
        out[5] = 1;    /* one question */
        while (*p) {
                const char *dot = strchr(p, '.');
                size_t l = dot ? (size_t)(dot - p) : strlen(p);
                out[n++] = (uint8_t)l;
                memcpy(out + n, p, l);
                n += l;
                p += l + (dot ? 1 : 0);
        }
        out[n++] = 0;
        out[n++] = (uint8_t)(qtype >> 8);
        out[n++] = (uint8_t)qtype;
        out[n++] = 0;
        out[n++] = 1;
        return n;
}

static void test_dns(void **unused)
{
        (void)unused;
        uint8_t m[600], r[DNS_MSG_MAX];
        struct dns_question q;
        struct in_addr a[2];
        size_t n = dns_q("Api.Example.COM", DNS_TYPE_A, m), rl;

        assert_int_equal(dns_parse_query(m, n, &q), 0);
        assert_string_equal(q.name, "api.example.com");
        assert_int_equal(q.qtype, DNS_TYPE_A);
        assert_int_equal(q.id, 0x1234);
        assert_int_equal(q.question_end, n);
        inet_pton(AF_INET, "198.18.0.2", &a[0]);
        inet_pton(AF_INET, "198.18.0.3", &a[1]);
        rl = dns_build_reply(m, &q, DNS_RCODE_NOERROR, a, 2, 60, r);
        assert_int_equal(rl, n + 2 * 16);
        assert_int_equal(r[0], 0x12);
        assert_int_equal(r[2], 0x81); /* QR, RD */
        assert_int_equal(r[3], 0x80); /* RA, NOERROR */
        assert_int_equal(r[7], 2);
        assert_memory_equal(r + n + 12, &a[0].s_addr, 4);
        rl = dns_build_reply(m, &q, DNS_RCODE_NXDOMAIN, a, 2, 60, r);
        assert_int_equal(rl, n);
        assert_int_equal(r[3] & 15, DNS_RCODE_NXDOMAIN);
        assert_int_equal(r[7], 0);
}

static void test_dns_refusals(void **unused)
{
        (void)unused;
        uint8_t m[600];
        struct dns_question q;
        char longname[300];
        size_t n = dns_q("a.example", DNS_TYPE_A, m);

        m[12] = 0xc0; /* a compression pointer in the question */
        assert_int_equal(dns_parse_query(m, n, &q), -EINVAL);
        n = dns_q("a.example", DNS_TYPE_A, m);
        m[2] |= 0x80; /* a response */
        assert_int_equal(dns_parse_query(m, n, &q), -EINVAL);
        n = dns_q("a.example", DNS_TYPE_A, m);
        m[5] = 2; /* two questions */
        assert_int_equal(dns_parse_query(m, n, &q), -EINVAL);
        n = dns_q("a.example", DNS_TYPE_A, m);
        m[2] |= 0x10; /* opcode 2 (STATUS) */
        assert_int_equal(dns_parse_query(m, n, &q), -ENOTSUP);
        n = dns_q("a.example", DNS_TYPE_A, m);
        for (size_t cut = 0; cut < n; cut++) /* cut anywhere: refused, nothing read past it */
                assert_int_equal(dns_parse_query(m, cut, &q), -EINVAL);
        /* a name over 253 bytes (long labels: DNS tunnelling) */
        memset(longname, 'a', sizeof(longname));
        for (size_t i = 60; i < 280; i += 61)
                longname[i] = '.';
        longname[280] = '\0';
        n = dns_q(longname, DNS_TYPE_A, m);
        assert_int_equal(dns_parse_query(m, n, &q), -EINVAL);
        n = dns_q("with\001ctl.example", DNS_TYPE_A, m);
        assert_int_equal(dns_parse_query(m, n, &q), -EINVAL);
        n = dns_q("dot\\.in.example", DNS_TYPE_A, m);
        assert_int_equal(dns_parse_query(m, n, &q), 0); /* a backslash is a byte */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sni),          cmocka_unit_test(test_sni_refusals),
            cmocka_unit_test(test_http_sniff),   cmocka_unit_test(test_dns),
            cmocka_unit_test(test_dns_refusals),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
